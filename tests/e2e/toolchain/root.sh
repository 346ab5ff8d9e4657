#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# root.sh - the cached Debian 13 (trixie) root that tests/e2e/t_toolchain.sh builds
# mailless in and runs the kernel-engine tests from (README "Development").
#
# Usage: tests/e2e/toolchain/root.sh [--rebuild | --check | --path] [PACKAGE...]
#   The options are tests/debroot.sh's. PACKAGE... defaults to the Makefile's
#   DEPS_TOOLCHAIN (`make -s toolchain-deps`), which t_toolchain.sh passes too.
#
# Where: MLT_TOOLCHAIN_CACHE (default /var/cache/mailless/toolchain) holds the
# root as trixie/ (tests/debroot.sh says what else lies there).
#
# Cost, measured on a 2-core VM with a fast link to deb.debian.org: a build
# takes about 50 s and the root about 710 MB (of it 370 MB in the LLVM/clang
# libraries); a current root costs nothing (the check reads the stamp).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
opt=()
case ${1:-} in -*) opt=("$1"); shift ;; esac
if [ $# -eq 0 ]; then
	# shellcheck disable=SC2046 # the list is words
	set -- $(make -s --no-print-directory -C "$here/../../.." toolchain-deps)
fi
exec bash "$here/../../debroot.sh" "${opt[@]}" "${MLT_TOOLCHAIN_CACHE:-/var/cache/mailless/toolchain}" trixie trixie "$@"
