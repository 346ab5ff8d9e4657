#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# versions.sh - print the toolchain a build here uses, as one comment line:
#   # toolchain: LABEL (Debian 13.2): BPF: clang 19.1.7; C: gcc 14.2.0; libbpf 1.5.0, ...
# The compilers are those the Makefile picks ($CLANG, $CC, $BPFTOOL, default
# clang, cc, bpftool); libbpf and libxdp are the -dev packages' pkg-config
# versions (what the build links against). With a binary as $2, also the libbpf
# it reports at run time (`mailless --version`). tests/run.sh prints the host's,
# tests/e2e/t_toolchain.sh its Debian 13 root's.
set -u
label=${1:-host}
bin=${2:-}

first() { "$@" 2>/dev/null | head -n1; }
# The first word that looks like a version number (1.2 or 1.2.3), else "?".
ver() { grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?' | head -n1 | grep . || echo '?'; }

os=$(. /etc/os-release 2>/dev/null && echo "${NAME%% *}")
os="${os:-?} $(cat /etc/debian_version 2>/dev/null || echo '?')"
clang=$(first "${CLANG:-clang}" --version | sed 's/.*version //' | ver)
# `cc -v` names the compiler behind cc: "gcc version 14.2.0 (...)", "clang version ...".
cc=$("${CC:-cc}" -v 2>&1 | grep -m1 ' version ' | sed 's/^\(.* \)\{0,1\}\([^ ]*\) version \([^ ]*\).*/\2 \3/')
bpftool=$(first "${BPFTOOL:-bpftool}" version | ver)
libbpf=$(pkg-config --modversion libbpf 2>/dev/null | ver)
libxdp=$(pkg-config --modversion libxdp 2>/dev/null | ver)
line="BPF: clang $clang; C: ${cc:-cc ?}; libbpf $libbpf, libxdp $libxdp, bpftool $bpftool"
if [ -n "$bin" ]; then
	line+="; $(basename "$bin") runs with libbpf $("$bin" --version 2>/dev/null | sed -n 's/.*libbpf v\{0,1\}\([0-9.]*\).*/\1/p' | head -n1)"
fi
echo "# toolchain: $label ($os): $line"
