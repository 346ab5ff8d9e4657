#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# root.sh - the cached Debian 13 (trixie) root that tests/t_toolchain.sh builds
# mailless in and runs the kernel-engine tests from (README "Development").
#
# Usage: tests/toolchain/root.sh [--rebuild | --check | --path] [PACKAGE...]
#   (no option)  make sure the root exists and holds exactly PACKAGE... (plus
#                what mmdebstrap's apt variant brings: Essential:yes and apt);
#                build it if it is missing or was built for another list
#   --rebuild    build it anew even if it is current
#   --check      exit 0 iff the root exists and is current (no lock, no build)
#   --path       print the root's path and exit
#   PACKAGE... defaults to the Makefile's DEPS_TOOLCHAIN (`make -s toolchain-deps`),
#   which t_toolchain.sh passes too.
#
# Where: MLT_TOOLCHAIN_CACHE (default /var/cache/mailless/toolchain) holds the
# root as trixie/, its lock trixie.lock, the last build's log trixie.log and,
# while one is built, .trixie.new.PID and .trixie.log.
# Outside any clone, so every checkout and `make clean` share it.
#
# How: mmdebstrap --mode=root from Debian's archive only (MLT_DEBIAN_MIRROR,
# default http://deb.debian.org/debian, and deb.debian.org/debian-security):
# trixie, trixie-updates and trixie-security, main. mmdebstrap uses an apt
# configuration of its own; the host's apt sources and state are never
# touched. The root is built next to its final place and renamed there when
# complete, so an interrupted build leaves no half root under the real name
# (leftovers are removed by the next build). An exclusive flock on trixie.lock
# serialises builds; users hold a shared one while they use the root, so it is
# never replaced under them. The stamp /etc/mailless-toolchain in the root
# records what it was built from; a different package list, suite, mirror or
# RECIPE (bump it when the build recipe below changes) means a rebuild.
#
# Cost, measured on a 2-core VM with a fast link to deb.debian.org: a build
# takes about 50 s and the root about 710 MB (of it 370 MB in the LLVM/clang
# libraries); a current root costs nothing (the check reads the stamp).
set -u
set -o pipefail

SUITE=trixie
RECIPE=1 # bump when the mmdebstrap command below changes in a way that matters
CACHE=${MLT_TOOLCHAIN_CACHE:-/var/cache/mailless/toolchain}
MIRROR=${MLT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${MLT_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
ROOT=$CACHE/$SUITE
LOCK=$CACHE/$SUITE.lock
STAMP=etc/mailless-toolchain

say() { printf '# toolchain root: %s\n' "$*"; }
die() { printf 'root.sh: error: %s\n' "$*" >&2; exit 1; }

mode=ensure
case ${1:-} in
--rebuild) mode=rebuild; shift ;;
--check) mode=check; shift ;;
--path) echo "$ROOT"; exit 0 ;;
-*) die "unknown option $1 (see the comment at the top of $0)" ;;
esac
if [ $# -eq 0 ]; then
	top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	# shellcheck disable=SC2046 # the list is words
	set -- $(make -s --no-print-directory -C "$top" toolchain-deps)
	[ $# -gt 0 ] || die "no packages given and \`make -s toolchain-deps\` printed none"
fi

# What the root must be built from: one line, compared with the stamp's first.
pkgs=$(printf '%s\n' "$@" | sort -u | tr '\n' ' ')
want="recipe=$RECIPE suite=$SUITE mirror=$MIRROR security=$SECURITY packages=${pkgs% }"

current() { [ -f "$ROOT/$STAMP" ] && [ "$(head -n1 "$ROOT/$STAMP")" = "$want" ]; }

if [ "$mode" = check ]; then
	current
	exit $?
fi

[ "$(id -u)" -eq 0 ] || die "building the root needs root (mmdebstrap --mode=root, chroot)"
mkdir -p "$CACHE" || die "cannot create $CACHE"
exec 9>>"$LOCK" || die "cannot open $LOCK"
if ! flock -x -w 1800 9; then
	die "$LOCK: still locked after 30 minutes (another build or test holds it)"
fi

if [ "$mode" = ensure ] && current; then
	say "$ROOT is current (built $(sed -n 's/^built=//p' "$ROOT/$STAMP"))"
	exit 0
fi
command -v mmdebstrap >/dev/null ||
	die "mmdebstrap is missing: install it (apt-get install mmdebstrap, or make deps-test)"

if [ -e "$ROOT" ]; then
	if [ "$mode" = rebuild ]; then
		say "rebuilding $ROOT (--rebuild)"
	elif [ -f "$ROOT/$STAMP" ]; then
		say "rebuilding $ROOT: built from '$(head -n1 "$ROOT/$STAMP")', now wanted: '$want'"
	else
		say "rebuilding $ROOT: it has no stamp"
	fi
else
	say "building $ROOT (missing)"
fi
# Leftovers of interrupted builds (we hold the exclusive lock: nobody uses them).
for d in "$CACHE"/.$SUITE.new.* "$CACHE"/.$SUITE.old.*; do
	[ -e "$d" ] && rm -rf --one-file-system "$d"
done

new=$CACHE/.$SUITE.new.$$
t0=$(date +%s)
# mmdebstrap --mode=root mounts /proc, /sys and /dev in the target while it
# runs: a private mount namespace keeps them off the host's table and removes
# them even if it is killed. The apt variant is Essential:yes plus apt: the
# smallest root apt can install the packages into; documentation, man pages
# and translations are left out (the copyright files stay).
#   /etc/hosts: t_toolchain.sh binds the host's file onto it (the tests resolve
#   the host name as the host does); an empty one has to exist to bind onto.
log=$CACHE/.$SUITE.log
# shellcheck disable=SC2016 # $1 is the hook's argument, expanded by mmdebstrap's sh
if ! unshare --mount --propagation private -- \
	mmdebstrap --mode=root --format=directory --variant=apt --components=main \
	--include="$(printf '%s\n' "$@" | sort -u | paste -sd,)" \
	--aptopt='Acquire::Retries "3"' \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--customize-hook='touch "$1/etc/hosts" "$1/etc/resolv.conf"' \
	"$SUITE" "$new" \
	"deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
	"deb $SECURITY $SUITE-security main" </dev/null >"$log" 2>&1 9>&-; then
	tail -n 20 "$log" | sed 's/^/# mmdebstrap: /'
	rm -rf --one-file-system "$new"
	die "mmdebstrap failed (whole log: $log)"
fi
dt=$(($(date +%s) - t0))
{
	echo "$want"
	echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) in ${dt}s by $(mmdebstrap --version 2>/dev/null)"
} >"$new/$STAMP"
if [ -e "$ROOT" ]; then
	mv "$ROOT" "$CACHE/.$SUITE.old.$$" && mv "$new" "$ROOT" &&
		rm -rf --one-file-system "$CACHE/.$SUITE.old.$$"
else
	mv "$new" "$ROOT"
fi || die "cannot move $new to $ROOT"
mv -f "$log" "$CACHE/$SUITE.log" # the last build's log, for what it fetched
say "built $ROOT in ${dt}s, $(du -sh --one-file-system "$ROOT" | cut -f1)"
