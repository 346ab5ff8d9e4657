# SPDX-License-Identifier: GPL-2.0
# lib.sh - the shell side of the interop harness (t_interop.sh, matrix.sh,
# which source interop.sh after it): the MTAs run in chroot jails driven
# from shell. Every other end-to-end test uses tests/e2e/mltest.py, whose
# Env, Pair and Server these functions follow; moving interop onto it
# would leave one harness. Source it, then call ml_init NAME.
#
#   ok NAME / fail NAME WHY / skip NAME REASON    TAP-ish result lines
#   ml_pair TAG X [NET4 NET6]  server ns $PREFIX-${TAG}s, client ns
#                      $PREFIX-${TAG}c, veth, NET4.1/.2 (default 10.231.X)
#                      and NET6::1/::2 (default fd00:231:X); sets
#                      SRV_NS CLI_NS SRV4 CLI4 SRV6 CLI6
#   ml_start VAR NS PINDIR ARGS...   start `mailless run --pin-dir PINDIR ARGS`
#                      in NS, wait for "mailless: ready"; VAR gets the PID,
#                      ${VAR}_LOG the log file. Returns 1 (log tail on stdout)
#                      if it did not become ready.
#   ml_stop PID        SIGTERM and wait (bounded); ML_RC = exit status
#   in_ns NS CMD...    run CMD in network namespace NS (nsenter --net=)
# Everything is torn down by the EXIT trap: started processes (by PID only),
# `mailless unload` for the pin dirs used, namespaces, temp files.

ML_TESTS=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)	# tests/
ML_TOP=$(cd "$ML_TESTS/.." && pwd)
MAILLESS=${MAILLESS:-$ML_TOP/mailless}
PREFIX=${MLT_PREFIX:-mlt-$$}
ML_PIDS=()
ML_NS=()
ML_PINS=()
ML_TMP=$(mktemp -d "/tmp/$PREFIX.XXXXXX")
ML_PASSED=0
ML_FAILED=0
ML_SKIPPED=0
ML_ENGINES=${MLT_ENGINES:-kernel user}

ok()   { ML_PASSED=$((ML_PASSED + 1)); echo "ok - $1"; }
fail() { ML_FAILED=$((ML_FAILED + 1)); echo "not ok - $1: $(printf '%s' "$2" | tr '\n' '|' | cut -c1-1500)"; }
skip() { ML_SKIPPED=$((ML_SKIPPED + 1)); echo "skip - $1: $2"; }
note() { echo "# $*"; }

engine_enabled() { [[ " $ML_ENGINES " == *" $1 "* ]]; }

ml_init() {
	ML_NAME=$1
	note "$ML_NAME (pid $$, prefix $PREFIX, binary $MAILLESS)"
	trap ml_cleanup EXIT
	trap 'exit 130' INT TERM HUP
	if ! mountpoint -q /sys/fs/bpf; then
		mount -t bpf bpf /sys/fs/bpf || { fail "$ML_NAME: setup" "cannot mount bpffs"; exit 1; }
	fi
	if [ ! -x "$MAILLESS" ]; then
		fail "$ML_NAME: setup" "$MAILLESS missing: run 'make mailless'"
		exit 1
	fi
}

ml_finish() {
	note "$ML_NAME: $ML_PASSED passed, $ML_FAILED failed, $ML_SKIPPED skipped"
	[ "$ML_FAILED" -eq 0 ]
}

ml_cleanup() {
	local pid d ns i
	for pid in "${ML_PIDS[@]}"; do
		kill -0 "$pid" 2>/dev/null || continue
		kill -TERM "$pid" 2>/dev/null
		for i in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
	done
	wait 2>/dev/null
	for d in "${ML_PINS[@]}"; do
		[ -e "$d" ] && timeout 20 "$MAILLESS" unload --pin-dir "$d" >/dev/null 2>&1
		[ -e "$d" ] && rm -rf "$d"
	done
	for ns in "${ML_NS[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$ML_TMP"
}

ml_pair() {
	local tag=$1 net4=${3:-10.231.$2} net6=${4:-$(printf 'fd00:231:%x' "$2")}
	SRV_NS=$PREFIX-${tag}s
	CLI_NS=$PREFIX-${tag}c
	SRV4=$net4.1
	CLI4=$net4.2
	SRV6=$net6::1
	CLI6=$net6::2
	ip netns add "$SRV_NS" || return 1
	ML_NS+=("$SRV_NS")
	ip netns add "$CLI_NS" || return 1
	ML_NS+=("$CLI_NS")
	ip -n "$SRV_NS" link add veth0 type veth peer name veth1 netns "$CLI_NS" &&
	ip -n "$SRV_NS" addr add "$SRV4/24" dev veth0 &&
	ip -n "$SRV_NS" -6 addr add "$SRV6/64" dev veth0 nodad &&
	ip -n "$CLI_NS" addr add "$CLI4/24" dev veth1 &&
	ip -n "$CLI_NS" -6 addr add "$CLI6/64" dev veth1 nodad &&
	ip -n "$SRV_NS" link set lo up && ip -n "$SRV_NS" link set veth0 up &&
	ip -n "$CLI_NS" link set lo up && ip -n "$CLI_NS" link set veth1 up || return 1
	for _ in $(seq 50); do
		ip -n "$CLI_NS" -o link show veth1 | grep -q LOWER_UP && break
		sleep 0.1
	done
}

in_ns() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@"
}


# ml_start VAR NS PINDIR ARGS...
ml_start() {
	local var=$1 ns=$2 pin=$3 log pid i
	shift 3
	log=$ML_TMP/$var.log
	ML_PINS+=("$pin")
	note "start $var in $ns: mailless run --pin-dir $pin $*"
	nsenter --net="/run/netns/$ns" "$MAILLESS" run --pin-dir "$pin" "$@" >"$log" 2>&1 </dev/null &
	pid=$!
	ML_PIDS+=("$pid")
	printf -v "$var" '%s' "$pid"
	printf -v "${var}_LOG" '%s' "$log"
	for i in $(seq 200); do
		grep -q 'mailless: ready' "$log" && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "not ready: $(tail -n 5 "$log" | tr '\n' '|')"
	return 1
}

# ml_stop PID: SIGTERM, wait up to 10 s; sets ML_RC to the exit status (or
# "timeout"). Call it directly, not in $(...): only this shell can wait for PID.
ml_stop() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		ML_RC=timeout
		return
	fi
	wait "$pid"
	ML_RC=$?
}
