#!/bin/bash
# mlt-timeout: 180
# Fallback and hostile conditions: --engine auto without BPF capabilities falls
# back to the user engine and says why; --engine kernel refuses instead; out
# of descriptors, accept() pauses and never spins; bad settings are errors that
# name file and line; aborted connections leave nothing in the session map.
. "$(dirname "$0")/lib.sh"
ml_init t_robust
WIRE=$ML_TOP/.output/tests/wirecheck
DROP=-bpf,-sys_admin,-net_admin,-perfmon

# SIGTERM PID and wait in this shell (a $(...) subshell cannot wait for our
# children); sets RC to its exit status, or "timeout".
stop_rc() {
	kill -TERM "$1"
	for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$1" 2>/dev/null; then kill -KILL "$1"; RC=timeout; return; fi
	wait "$1"
	RC=$?
}

ml_pair fb 201 || { fail "setup" "ml_pair"; exit 1; }

# 1. auto without capabilities: user engine, with the reason.
log=$ML_TMP/fb.log
# nsenter, not in_ns: a shell function in the background would make $! a
# subshell, and SIGTERM would miss mailless.
nsenter --net="/run/netns/$SRV_NS" setpriv --bounding-set $DROP --inh-caps $DROP \
	"$MAILLESS" run -l "$SRV4:25" -H fb.test --pin-dir /sys/fs/bpf/$PREFIX-fb >"$log" 2>&1 </dev/null &
pid=$!
ML_PIDS+=("$pid")
ML_PINS+=("/sys/fs/bpf/$PREFIX-fb")
for _ in $(seq 50); do grep -q 'mailless: ready' "$log" && break; sleep 0.1; done
if grep -q 'ready: engine user' "$log" && grep -q 'this process lacks CAP_BPF' "$log" &&
   grep -q 'falling back to the user engine' "$log"; then
	ok "auto engine without CAP_BPF falls back and says why"
else
	fail "auto engine without CAP_BPF falls back and says why" "$(cat "$log")"
fi
if out=$(in_ns "$CLI_NS" "$WIRE" "$SRV4" 25 fb.test rcpt); then
	ok "fallback user engine answers the wire"
else
	fail "fallback user engine answers the wire" "$out"
fi
stop_rc "$pid"
[ "$RC" = 0 ] && ok "fallback: SIGTERM exits 0" || fail "fallback: SIGTERM exits 0" "status $RC: $(cat "$log")"

# 2. --engine kernel without capabilities: a clear refusal, no fallback.
out=$(in_ns "$SRV_NS" timeout 10 setpriv --bounding-set $DROP --inh-caps $DROP \
	"$MAILLESS" run --engine kernel -l "$SRV4:25" --pin-dir /sys/fs/bpf/$PREFIX-fb2 2>&1 </dev/null)
rc=$?
ML_PINS+=("/sys/fs/bpf/$PREFIX-fb2")
if [ $rc = 1 ] && [[ $out == *"this process lacks CAP_BPF"* ]] && [[ $out == *"--engine user"* ]] &&
   [[ $out != *ready* ]]; then
	ok "--engine kernel without CAP_BPF refuses with the reason"
else
	fail "--engine kernel without CAP_BPF refuses with the reason" "rc=$rc $out"
fi
[ -e /sys/fs/bpf/$PREFIX-fb2 ] && fail "refused run leaves no pin dir" "$(ls /sys/fs/bpf/$PREFIX-fb2)" ||
	ok "refused run leaves no pin dir"

# 3. Bad settings name the file and the line.
conf=$ML_TMP/bad.conf
printf 'hostname = ok.test\n# comment\nbogus = 1\n' >"$conf"
out=$("$MAILLESS" run -c "$conf" 2>&1); rc=$?
[ $rc = 2 ] && [[ $out == *"$conf:3: unknown key 'bogus'"* ]] &&
	ok "unknown key names file and line" || fail "unknown key names file and line" "rc=$rc $out"
printf 'timeout = 0\n' >"$conf"
out=$("$MAILLESS" run -c "$conf" 2>&1); rc=$?
[ $rc = 2 ] && [[ $out == *"$conf:1: bad value '0' for timeout"* ]] &&
	ok "bad value names file and line" || fail "bad value names file and line" "rc=$rc $out"
out=$("$MAILLESS" run -l 1.2.3.4:99999 2>&1); rc=$?
[ $rc = 2 ] && [[ $out == *"bad port"* ]] && ok "bad listen port refused" || fail "bad listen port refused" "rc=$rc $out"
out=$("$MAILLESS" run -c /nonexistent/mailless.conf 2>&1); rc=$?
[ $rc = 2 ] && [[ $out == *"cannot read config /nonexistent/mailless.conf"* ]] &&
	ok "missing -c file is an error" || fail "missing -c file is an error" "rc=$rc $out"

# 4. Out of descriptors: accept pauses, the CPU stays idle, service resumes.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }	# utime + stime, ticks
for eng in kernel user; do
	engine_enabled $eng || { skip "EMFILE never spins ($eng)" "engine disabled"; continue; }
	ml_start P "$SRV_NS" "/sys/fs/bpf/$PREFIX-nf-$eng" --engine $eng -l "$SRV4:25" \
		-H nf.test --max-sessions 1000 || { fail "EMFILE never spins ($eng)" "start"; continue; }
	prlimit --pid "$P" --nofile=48:48
	# Hold 80 connections open: the process runs out of descriptors.
	in_ns "$CLI_NS" python3 -c '
import socket, sys, time
socks = []
for i in range(80):
    s = socket.socket(); s.settimeout(5); s.connect((sys.argv[1], 25)); socks.append(s)
time.sleep(4)
' "$SRV4" &
holder=$!
sleep 1.5
c0=$(cpu "$P"); sleep 2; c1=$(cpu "$P")
ticks=$((c1 - c0))
	if [ "$ticks" -le 20 ]; then
		ok "EMFILE: accept pauses, $ticks CPU ticks in 2 s ($eng)"
	else
		fail "EMFILE: accept pauses ($eng)" "$ticks CPU ticks in 2 s (spinning)"
	fi
	grep -q 'cannot accept' "$P_LOG" && ok "EMFILE is logged with advice ($eng)" ||
		fail "EMFILE is logged with advice ($eng)" "$(cat "$P_LOG")"
	wait "$holder"
	sleep 1
	if out=$(in_ns "$CLI_NS" "$WIRE" "$SRV4" 25 nf.test rcpt); then
		ok "service resumes after descriptors free up ($eng)"
	else
		fail "service resumes after descriptors free up ($eng)" "$out"
	fi
	if [ $eng = kernel ]; then
		sleep 1
		n=$(bpftool map dump pinned "/sys/fs/bpf/$PREFIX-nf-$eng/sessions" | grep -c '"key"')
		[ "$n" = 0 ] && ok "aborted and refused connections leave no session entries" ||
			fail "aborted and refused connections leave no session entries" "$n entries left"
	fi
	stop_rc "$P"
	[ "$RC" = 0 ] && ok "EMFILE run stops cleanly ($eng)" ||
		fail "EMFILE run stops cleanly ($eng)" "status $RC: $(tail -3 "$P_LOG")"
done
ml_finish
