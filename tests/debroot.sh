#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# debroot.sh - a cached minimal Debian root, built with mmdebstrap from
# Debian's archive only: tests/e2e/toolchain/root.sh (the Debian 13 toolchain
# root) and tests/interop/root.sh (one root per MTA) are its users.
#
# Usage: tests/debroot.sh [--rebuild | --check | --path] CACHE NAME SUITE PACKAGE...
#   (no option)  make sure CACHE/NAME exists and holds exactly PACKAGE... of
#                SUITE (plus what mmdebstrap's apt variant brings: Essential:yes
#                and apt); build it if it is missing or was built for another
#                list, suite or mirror
#   --rebuild    build it anew even if it is current
#   --check      exit 0 iff the root exists and is current (no lock, no build)
#   --path       print the root's path and exit
#
# Where: CACHE holds the root as NAME/, its lock NAME.lock, the last build's
# log NAME.log and, while one is built, .NAME.new.PID and .NAME.log. Callers
# keep CACHE outside any clone (under /var/cache/mailless), so every checkout
# and `make clean` share it.
#
# How: mmdebstrap --mode=root from Debian's archive only (MLT_DEBIAN_MIRROR,
# default http://deb.debian.org/debian, and deb.debian.org/debian-security):
# SUITE, SUITE-updates and SUITE-security, main. mmdebstrap uses an apt
# configuration of its own; the host's apt sources and state are never
# touched, and its policy-rc.d keeps the packages' daemons from starting.
# The root is built next to its final place and renamed there when
# complete, so an interrupted build leaves no half root under the real name
# (leftovers are removed by the next build). An exclusive flock on NAME.lock
# serialises builds; users hold a shared one while they use the root, so it is
# never replaced under them. The stamp /etc/mailless-root in the root
# records what it was built from; a different package list, suite, mirror or
# RECIPE (bump it when the build recipe below changes) means a rebuild.
set -u
set -o pipefail

RECIPE=1 # bump when the mmdebstrap command below changes in a way that matters
MIRROR=${MLT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${MLT_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
STAMP=etc/mailless-root

die() { printf 'debroot.sh: error: %s\n' "$*" >&2; exit 1; }

mode=ensure
case ${1:-} in
--rebuild) mode=rebuild; shift ;;
--check) mode=check; shift ;;
--path) mode=path; shift ;;
-*) die "unknown option $1 (see the comment at the top of $0)" ;;
esac
[ $# -ge 3 ] || die "usage: $0 [--rebuild | --check | --path] CACHE NAME SUITE PACKAGE..."
CACHE=$1 NAME=$2 SUITE=$3
shift 3
ROOT=$CACHE/$NAME
LOCK=$CACHE/$NAME.lock
[ "$mode" = path ] && { echo "$ROOT"; exit 0; }
[ $# -gt 0 ] || die "no packages given for $ROOT"

say() { printf '# %s root: %s\n' "$NAME" "$*"; }

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
for d in "$CACHE/.$NAME".new.* "$CACHE/.$NAME".old.*; do
	[ -e "$d" ] && rm -rf --one-file-system "$d"
done

new=$CACHE/.$NAME.new.$$
t0=$(date +%s)
# mmdebstrap --mode=root mounts /proc, /sys and /dev in the target while it
# runs: a private mount namespace keeps them off the host's table and removes
# them even if it is killed. The apt variant is Essential:yes plus apt: the
# smallest root apt can install the packages into; documentation, man pages
# and translations are left out (the copyright files stay).
#   /etc/hosts, /etc/resolv.conf: users bind files onto them (t_toolchain.sh
#   the host's, the interop jails their own); they have to exist to bind onto.
log=$CACHE/.$NAME.log
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
	mv "$ROOT" "$CACHE/.$NAME.old.$$" && mv "$new" "$ROOT" &&
		rm -rf --one-file-system "$CACHE/.$NAME.old.$$"
else
	mv "$new" "$ROOT"
fi || die "cannot move $new to $ROOT"
mv -f "$log" "$CACHE/$NAME.log" # the last build's log, for what it fetched
say "built $ROOT in ${dt}s, $(du -sh --one-file-system "$ROOT" | cut -f1)"
