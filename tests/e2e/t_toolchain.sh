#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 1200
# t_toolchain.sh - the Debian 13 toolchain stage: build mailless from this
# tree's tracked files (uncommitted changes included) with trixie's clang,
# libbpf, libxdp and bpftool in a cached minimal Debian 13 root, then run the
# kernel-engine wire and lifecycle tests (t_wire.py, t_lifecycle.py,
# MLT_ENGINES=kernel) with that build on the host kernel. Their result lines
# come out as "ok - debian13 toolchain: ...", so tests/run.sh counts them once.
#
# The root: tests/e2e/toolchain/root.sh (built when missing or when the Makefile's
# DEPS_TOOLCHAIN changes; MLT_TOOLCHAIN_CACHE moves it). The build and the
# tests: tests/e2e/toolchain/stage.sh, in a private mount namespace. The limit
# above leaves room for a cold root (~1 minute measured here, more on a slow
# link) plus the build and both tests (~1 minute).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
T="debian13 toolchain"
P=${MLT_PREFIX:-mlt-$$}-d13
spid=""

fail() { echo "not ok - $T: $1: $(printf '%s' "$2" | tr '\n' '|' | cut -c1-1500)"; }

# Interrupted (run.sh's time limit or a signal): the stage cleans up after
# itself; give it 4.5 s (run.sh waits 5), then kill it and remove what its
# tests left.
on_exit() {
	local _ pid d
	trap '' INT TERM HUP
	if [ -n "$spid" ] && kill -0 "$spid" 2>/dev/null; then
		kill -TERM "$spid" 2>/dev/null
		for _ in $(seq 45); do
			kill -0 "$spid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$spid" 2>/dev/null
	fi
	for pid in $(grep -lzx "MLT_PREFIX=$P" /proc/[0-9]*/environ 2>/dev/null |
		sed -n 's|^/proc/\([0-9]*\)/environ$|\1|p'); do
		kill -KILL "$pid" 2>/dev/null && echo "# $T: killed leftover process $pid"
	done
	for d in /sys/fs/bpf/"$P"-*; do
		[ -e "$d" ] && rm -rf "$d" && echo "# $T: removed leftover pin dir $d"
	done
}
trap on_exit EXIT
trap 'exit 130' INT TERM HUP

[ "$(id -u)" -eq 0 ] || { fail "setup" "needs root (mmdebstrap, chroot, namespaces)"; exit 1; }
if ! pkgs=$(make -s --no-print-directory -C "$top" toolchain-deps) || [ -z "$pkgs" ]; then
	fail "setup" "make toolchain-deps printed no package list"
	exit 1
fi
# shellcheck disable=SC2086 # the list is words
set -- $pkgs
root=$(bash "$here/toolchain/root.sh" --path)

# Use the root under a shared lock (a rebuild waits for us, parallel runs do
# not wait for each other); when it is missing or stale, root.sh builds it
# under an exclusive lock, and we look again.
if ! mkdir -p "$(dirname "$root")" || ! exec 9>>"$root.lock"; then
	fail "Debian 13 root" "cannot open $root.lock"
	exit 1
fi
t0=$(date +%s)
for try in 1 2 3 4; do
	flock -s -w 1800 9 || { fail "Debian 13 root" "$root.lock: no shared lock in 30 minutes"; exit 1; }
	bash "$here/toolchain/root.sh" --check "$@" && break
	flock -u 9
	if [ "$try" -eq 4 ]; then
		fail "Debian 13 root" "still not current after three builds (another checkout with another DEPS_TOOLCHAIN?)"
		exit 1
	fi
	if ! err=$(bash "$here/toolchain/root.sh" "$@" 9>&- 2>&1); then
		fail "Debian 13 root" "$err"
		exit 1
	fi
	printf '%s\n' "$err"
done
echo "# $T: root ready in $(($(date +%s) - t0))s: $root, built $(sed -n 's/^built=//p' "$root/etc/mailless-root")"

# The stage does not inherit the lock: a process it leaves behind must not
# keep the root from being rebuilt.
unshare --mount --propagation private -- bash "$here/toolchain/stage.sh" "$root" "$top" 9<&- &
spid=$!
wait "$spid"
rc=$?
spid=""
exit "$rc"
