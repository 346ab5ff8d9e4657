#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# stage.sh ROOT TOP - the inside of tests/e2e/t_toolchain.sh: build mailless from
# TOP's tracked files with the Debian 13 root ROOT's toolchain, then run the
# kernel-engine wire and lifecycle tests with that build on the host kernel.
#
# Runs in a private mount namespace of its own (t_toolchain.sh starts it with
# unshare --mount --propagation private): every mount below exists only there
# and vanishes with its last process, so nothing leaks to the host. In the root:
#   /            ROOT, bound read-only: the cache is never written to
#   /proc        a new procfs (same PID namespace: the host sees the processes)
#   /sys         the host's, recursively: its bpffs (pins are visible to the
#                host, and so to tests/run.sh's sweep) and its cgroup2 mount at
#                the host's place (the tests find it in mountinfo)
#   /dev         the host's, recursively
#   /run, /tmp   new tmpfs: /run/netns starts empty (`ip netns add` sets it up,
#                the namespaces die with this mount namespace at the latest);
#                the copied tree, the build and the tests' files live in /tmp
#   /etc/hosts, /etc/resolv.conf  the host's (name lookups as on the host)
# The tests run with MLT_PREFIX=$MLT_PREFIX-d13: their pin dirs and
# namespaces carry run.sh's prefix; their processes are found by that
# environment value. Result lines are relayed as "ok - debian13 toolchain: ...".
set -u
root=$1
top=$2
T="debian13 toolchain"
P=${MLT_PREFIX:-mlt-$$}-d13
W=/tmp/mailless # the tree's copy, inside the root
CLEAN_PATH=/usr/sbin:/usr/bin:/sbin:/bin
IN_ROOT=(chroot "$root" /usr/bin/env -i "PATH=$CLEAN_PATH" HOME=/tmp TERM=dumb LANG=C.UTF-8)
failed=0
tpid=""

ok()   { echo "ok - $T: $1"; }
fail() { failed=1; echo "not ok - $T: $1: $(printf '%s' "$2" | tr '\n' '|' | cut -c1-1500)"; }
note() { echo "# $T: $*"; }

# Whatever the tests left (only what carries $P): processes by PID, pin dirs
# (unloaded by the build under test), namespaces.
sweep() {
	local left=() pid d ns
	for pid in $(grep -lzx "MLT_PREFIX=$P" /proc/[0-9]*/environ 2>/dev/null |
		sed -n 's|^/proc/\([0-9]*\)/environ$|\1|p'); do
		kill -KILL "$pid" 2>/dev/null && left+=("process $pid")
	done
	for d in /sys/fs/bpf/"$P"-*; do
		[ -e "$d" ] || continue
		[ -x "$root$W/mailless" ] && timeout 20 "${IN_ROOT[@]}" "$W/mailless" unload --pin-dir "$d" >/dev/null 2>&1
		[ -e "$d" ] && rm -rf "$d"
		left+=("pin dir $d")
	done
	for ns in $("${IN_ROOT[@]}" ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P-"); do
		"${IN_ROOT[@]}" ip netns del "$ns" 2>/dev/null
		left+=("netns $ns")
	done
	[ ${#left[@]} -eq 0 ] || note "left behind (removed now): ${left[*]}"
}

# run.sh allows an interrupted test 5 s before it kills what carries its
# prefix: the test gets 3 s to tear down its own servers, the sweep the rest.
cleanup() {
	local _
	trap '' INT TERM HUP # a second signal must not cut the cleanup short
	if [ -n "$tpid" ] && kill -0 "$tpid" 2>/dev/null; then
		kill -TERM "$tpid" 2>/dev/null # timeout(1) passes it on to the test
		for _ in $(seq 30); do
			kill -0 "$tpid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$tpid" 2>/dev/null
	fi
	sweep
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

mnt() { mount "$@" || { fail "setup" "mount $* failed"; exit 1; }; }
mnt --make-rprivate /
mnt --bind "$root" "$root"
mnt -o remount,bind,ro "$root"
mnt -t proc -o nosuid,nodev,noexec proc "$root/proc"
mnt --rbind /sys "$root/sys"
mnt --rbind /dev "$root/dev"
mnt -t tmpfs -o nosuid,nodev,mode=755 tmpfs "$root/run"
mkdir -p "$root/run/lock"
mnt -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$root/tmp"
for f in /etc/hosts /etc/resolv.conf; do
	src=$(readlink -f "$f")
	[ -f "$src" ] && [ -f "$root$f" ] && [ ! -L "$root$f" ] && mnt --bind "$src" "$root$f"
done

# The tree as it is now: tracked files, with uncommitted changes, no build
# output. (Files not yet `git add`ed are not part of it.)
mkdir -p "$root$W"
if git -c safe.directory="$top" -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	how="git ls-files of $top"
	git -c safe.directory="$top" -C "$top" ls-files -z |
		while IFS= read -r -d '' f; do
			[ -e "$top/$f" ] || [ -L "$top/$f" ] && printf '%s\0' "$f"
		done | tar -C "$top" --null -T - -cf - | tar -C "$root$W" -xf -
else
	how="$top without .git and build output (not a git checkout)"
	tar -C "$top" --exclude=./.git --exclude=./.output --exclude=./mailless \
		--exclude=./mailless-san -cf - . |
		tar -C "$root$W" -xf -
fi
[ -f "$root$W/Makefile" ] || { fail "setup" "copying $top into the root failed"; exit 1; }
note "tree: $how ($(find "$root$W" -type f | wc -l) files)"

# Build with Debian 13's compilers, libbpf, libxdp and bpftool.
t0=$(date +%s)
if ! "${IN_ROOT[@]}" make -C "$W" -j"$(nproc)" mailless >"$root/tmp/build.log" 2>&1 </dev/null; then
	fail "build (make mailless)" "$(tail -n 15 "$root/tmp/build.log")"
	exit 1
fi
if ! "${IN_ROOT[@]}" bash "$W/tests/e2e/toolchain/versions.sh" debian13 "$W/mailless"; then
	fail "toolchain versions" "tests/e2e/toolchain/versions.sh failed in the root"
fi
ok "build (make mailless, $(($(date +%s) - t0))s)"

# The tests, one file at a time, each under its own mlt-timeout like run.sh.
for f in t_wire.py t_lifecycle.py; do
	limit=$(sed -n '1,30s/.*mlt-timeout: *\([0-9][0-9]*\).*/\1/p' "$root$W/tests/e2e/$f" | head -n1)
	limit=${MLT_TIME_LIMIT:-${limit:-300}}
	out=$root/tmp/$f.out
	note "=== $f (kernel engine, limit ${limit}s)"
	t0=$(date +%s)
	"${IN_ROOT[@]}" MLT_PREFIX="$P" MLT_ENGINES=kernel PYTHONDONTWRITEBYTECODE=1 \
		MAILLESS="$W/mailless" ${MLT_SEED:+MLT_SEED="$MLT_SEED"} \
		timeout -k 15 "$limit" python3 "$W/tests/e2e/$f" >"$out" 2>&1 </dev/null &
	tpid=$!
	# Relayed as they come; a file, not a pipe, so a leftover cannot stall us.
	tail -s 0.2 -n +1 -f --pid="$tpid" "$out" | awk -v t="$T" '
		/^ok - /     { print "ok - " t ": " substr($0, 6); fflush(); next }
		/^not ok - / { print "not ok - " t ": " substr($0, 10); fflush(); next }
		/^skip - /   { print "skip - " t ": " substr($0, 8); fflush(); next }
		/^#/         { print "# " t ": " substr($0, 3); fflush(); next }
		             { print "# " t ": | " $0; fflush() }' &
	relay=$!
	wait "$tpid"
	rc=$?
	tpid=""
	wait "$relay"
	if [ "$rc" -ne 0 ] && ! grep -q '^not ok - ' "$out"; then
		case $rc in
		124) fail "$f" "exceeded its time limit of ${limit}s" ;;
		137) fail "$f" "killed (SIGKILL: time limit of ${limit}s plus grace, or a crash)" ;;
		*) fail "$f" "exited with status $rc without a failure line" ;;
		esac
	fi
	grep -q '^not ok - ' "$out" && failed=1
	note "=== $f: exit $rc in $(($(date +%s) - t0))s"
	sweep
done
exit "$failed"
