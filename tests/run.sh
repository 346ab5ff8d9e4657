#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# run.sh - run the mailless tests (what `make test` calls).
#
# Usage: tests/run.sh [PATTERN...]
#   Runs every tests/LAYER/t_*.sh (bash) and t_*.py (python3) in file name
#   order, LAYER being unit (C, no root), e2e (namespaces, real kernel
#   programs and clients), vm (other Debian kernels under qemu), fuzz and
#   interop (Debian's MTAs); or only those whose LAYER/FILE contains one of
#   the PATTERNs (shell globs allowed: `tests/run.sh wire 'l*s' unit/`). Each file runs under a time limit (a
#   "mlt-timeout: SECS" comment near its top, default 300) and prints lines
#     ok - NAME | not ok - NAME: why | skip - NAME: reason
#   which are numbered here into TAP version 13 (ok N - NAME, not ok N - NAME,
#   ok N - NAME # SKIP reason; the plan last), so `prove -e bash tests/run.sh`
#   reads it. A file that exits non-zero without a "not ok" line counts as
#   one failure. The last line is "N passed, N failed, N skipped"; the exit
#   status is non-zero iff something failed.
#
# Environment: MAILLESS (binary, default ./mailless at the repo top),
#   MLT_FILTER (an awk extended regex, `make test T=REGEX`): only results
#   whose text (the case's name, and a failure's reason) matches are reported
#   and counted. Every file
#   still runs all its cases (later ones may need earlier ones): choose files
#   with PATTERNs to save time, e.g. `tests/run.sh lifecycle` with
#   MLT_FILTER=SIGHUP.
#   MLT_ENGINES ("kernel user" by default; the others are reported as skipped),
#   MLT_SEED (seed of the random tests), MLT_TIME_LIMIT (override every limit),
#   MLT_USER (every e2e server started through mltest drops to that user,
#   --user, and is unloaded after it stops, as under the systemd unit).
#
# Needs root (namespaces, bpffs, BPF), but for the files marked
# "mlt-root: no" (the unit layer, the fuzzers, the hardening check): without
# root only those run, and every
# other file is reported as one skip. Everything a test creates is named with
# MLT_PREFIX (mlt-<runner pid>-<file index>); after each file whatever is left
# with that prefix (processes that carry it in their environment, network
# namespaces, pin dirs) is removed and reported.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
export MAILLESS=${MAILLESS:-$top/mailless}
export PYTHONDONTWRITEBYTECODE=1
cd "$top" || exit 1

passed=0 failed=0 skipped=0
echo "TAP version 13"
# tap ok|fail|skip TEXT: one numbered line of the runner's own.
tap() {
	local n=$((passed + failed + skipped + 1))
	case $1 in
	ok) echo "ok $n - $2"; passed=$((passed + 1)) ;;
	fail) echo "not ok $n - $2"; failed=$((failed + 1)) ;;
	skip) echo "ok $n - ${2%%: *} # SKIP ${2#*: }"; skipped=$((skipped + 1)) ;;
	esac
}
summary() {
	echo "1..$((passed + failed + skipped))"
	echo "$passed passed, $failed failed, $skipped skipped"
	[ "$failed" -eq 0 ]
	exit $?
}
if [ -n "${MLT_FILTER:-}" ] && ! awk -v re="$MLT_FILTER" 'BEGIN { if ("" ~ re) {} }' 2>/dev/null; then
	tap fail "run.sh: MLT_FILTER '$MLT_FILTER' is not an extended regex"
	summary
fi

root=1
if [ "$(id -u)" -ne 0 ]; then
	root=0
	echo "# not root: only the unit tests run (the rest need network namespaces, bpffs, BPF)"
elif ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf || { tap fail "run.sh: cannot mount bpffs"; summary; }
fi
if [ $root -eq 1 ] && [ ! -x "$MAILLESS" ]; then
	tap fail "run.sh: $MAILLESS not found: build it with 'make mailless'"
	summary
fi

# Which compilers and libraries the host stage uses (t_toolchain.sh prints its
# Debian 13 root's the same way).
bash "$here/e2e/toolchain/versions.sh" host "$MAILLESS"

# Every layer's t_* files, in name order across layers (as one flat list);
# a PATTERN matches LAYER/FILE, so `unit/` or `vm/` picks a layer.
files=()
for f in "$here"/*/t_*.sh "$here"/*/t_*.py; do
	[ -e "$f" ] || continue
	name=$(basename "$(dirname "$f")")/$(basename "$f")
	if [ $# -gt 0 ]; then
		match=0
		for pat in "$@"; do
			# shellcheck disable=SC2053
			[[ $name == *$pat* ]] && match=1
		done
		[ $match -eq 1 ] || continue
	fi
	files+=("$(basename "$f")"$'\t'"$f")
done
mapfile -t files < <(printf '%s\n' "${files[@]}" | sort | cut -f2)
if [ ${#files[@]} -eq 0 ] || [ -z "${files[0]}" ]; then
	tap fail "run.sh: no test file matches: $*"
	summary
fi

# Remove whatever a test file left behind (only things named with its prefix).
sweep() {
	local prefix=$1 name=$2 left=() pid d ns cmd
	# Processes a test started carry its MLT_PREFIX in their environment.
	while read -r pid; do
		if [ -z "$pid" ] || [ "$pid" = "$$" ]; then continue; fi
		cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-60)
		kill -KILL "$pid" 2>/dev/null && left+=("process $pid ($cmd)")
	done < <(prefixed_pids "$prefix")
	for d in /sys/fs/bpf/"$prefix"-*; do
		[ -e "$d" ] || continue
		"$MAILLESS" unload --pin-dir "$d" >/dev/null 2>&1
		[ -e "$d" ] && rm -rf "$d"
		left+=("pin dir $d")
	done
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$prefix-"); do
		ip netns del "$ns" 2>/dev/null
		left+=("netns $ns")
	done
	rm -rf /tmp/"$prefix".* /tmp/"$prefix"-*.conf 2>/dev/null # the harness's temp files
	if [ ${#left[@]} -gt 0 ]; then
		echo "# $name left behind (removed now): ${left[*]}"
	fi
}

# Interrupted: SIGTERM the running test's processes (they carry its prefix),
# give them 5 s to clean up, sweep, and stop.
tpid=""
prefix=""
# (Its own prefix or one derived from it, as t_toolchain.sh's MLT_PREFIX-d13.)
prefixed_pids() {
	grep -lzxE "MLT_PREFIX=$1(-[^[:space:]]*)?" /proc/[0-9]*/environ 2>/dev/null |
		sed -n 's|^/proc/\([0-9]*\)/environ$|\1|p'
}
on_signal() {
	local pid _
	if [ -n "$tpid" ]; then
		for pid in $(prefixed_pids "$prefix"); do
			kill -TERM "$pid" 2>/dev/null
		done
		for _ in $(seq 50); do
			kill -0 "$tpid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	[ -n "$prefix" ] && sweep "$prefix" interrupted
	tap fail "run.sh: interrupted"
	summary
}
trap on_signal INT TERM HUP

t_all=$(date +%s)
i=0
for f in "${files[@]}"; do
	i=$((i + 1))
	name=$(basename "$f")
	prefix="mlt-$$-$i"
	if [ $root -eq 0 ] && ! sed -n '1,30p' "$f" | grep -q 'mlt-root: no'; then
		tap skip "$name: needs root"
		continue
	fi
	limit=$(sed -n '1,30s/.*mlt-timeout: *\([0-9][0-9]*\).*/\1/p' "$f" | head -n1)
	limit=${MLT_TIME_LIMIT:-${limit:-300}}
	case $name in
	*.py) interp=python3 ;;
	*) interp=bash ;;
	esac
	out=$(mktemp "/tmp/$prefix-out.XXXXXX")
	echo "# === $name (limit ${limit}s)"
	t0=$(date +%s)
	# Output goes to a file that tail follows until the test ends: a process a
	# test leaves behind cannot hold a pipe open and stall the run.
	# (In a subshell, so that bash prints no "Killed" job notice.)
	(MLT_PREFIX=$prefix timeout -k 15 "$limit" "$interp" "$f" >"$out" 2>&1 </dev/null; exit $?) 2>/dev/null &
	tpid=$!
	# Numbered as they come: this file's results follow the ones before.
	# Results whose name MLT_FILTER does not match are left out; the counts
	# of what was reported go to $out.n.
	tail -s 0.2 -n +1 -f --pid="$tpid" "$out" |
		awk -v n=$((passed + failed + skipped)) -v re="${MLT_FILTER:-}" -v cnt="$out.n" '
			function want(s) { return re == "" || s ~ re }
			/^ok - / { s = substr($0, 6); if (want(s)) { print "ok " ++n " - " s; p++ }
				   fflush(); next }
			/^not ok - / { s = substr($0, 10); if (want(s)) { print "not ok " ++n " - " s; f++ }
				       fflush(); next }
			/^skip - / { s = substr($0, 8); r = index(s, ": ")
				     if (want(s)) { k++
					if (r) print "ok " ++n " - " substr(s, 1, r - 1) " # SKIP " substr(s, r + 2)
					else print "ok " ++n " - " s " # SKIP" }
				     fflush(); next }
			/^#/ || /^$/ { print; fflush(); next }
			{ print "# " $0; fflush() }
			END { print p + 0, f + 0, k + 0 > cnt }' &
	tailpid=$!
	wait "$tpid"
	rc=$?
	wait "$tailpid"
	tpid=""
	dt=$(($(date +%s) - t0))
	sweep "$prefix" "$name"
	read -r p n s <"$out.n"
	passed=$((passed + p)) failed=$((failed + n)) skipped=$((skipped + s))
	if [ "$rc" -ne 0 ] && [ "$n" -eq 0 ] && [ -n "${MLT_FILTER:-}" ] &&
	   grep -q '^not ok - ' "$out"; then
		echo "# $name: exit $rc from failures MLT_FILTER does not report"
	elif [ "$rc" -ne 0 ] && [ "$n" -eq 0 ]; then
		if [ "$rc" -eq 124 ]; then
			tap fail "$name: exceeded its time limit of ${limit}s"
		elif [ "$rc" -eq 137 ]; then
			tap fail "$name: killed (SIGKILL: time limit of ${limit}s plus grace, or a crash)"
		else
			tap fail "$name: exited with status $rc without a failure line"
		fi
		n=1
	fi
	echo "# === $name: $p passed, $n failed, $s skipped in ${dt}s (exit $rc)"
	rm -f "$out" "$out.n"
done
echo "# total time $(($(date +%s) - t_all))s"
summary
