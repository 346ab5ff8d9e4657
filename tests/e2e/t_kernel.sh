#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 180
# t_kernel.sh - properties of the kernel engine only.
#
#  - no userspace read: while sessions carrying a unique marker run, strace
#    on the server never shows the marker in a read-family call (read,
#    recvfrom, recvmsg, readv, recvmmsg, pread64, preadv, preadv2; all calls
#    are traced, so "resumed" lines are seen too). A control run against the user engine must show
#    it, or the method proves nothing;
#  - no session map leak: after sessions that end by QUIT, client close,
#    client RST, idle timeout, flood, and connections refused as busy,
#    `bpftool map dump pinned PIN/sessions` is empty (and status -j says 0);
#  - `bpftool map dump pinned PIN/config` shows the hostname field with the
#    configured name;
#  - ring buffer overflow: with the event ring shrunk to 4 KiB
#    (MAILLESS_TEST_RING_KIB), 3,000 idle sessions quitting at once overflow it
#    (events_lost > 0, or the test proves nothing), and still every one gets
#    its 221 and its close, and the session map ends empty.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ml_init t_kernel

if ! engine_enabled kernel; then
	skip "kernel" "engine excluded by MLT_ENGINES"
	ml_finish
	exit
fi
for tool in strace bpftool; do
	command -v $tool >/dev/null || { fail "kernel: setup" "$tool is not installed"; ml_finish; exit; }
done

HOST=kern.mx.test
marker="MLTMARK${$}x${RANDOM}${RANDOM}"

# traced_sessions PID OUT: strace the server while marker sessions run.
# Sets TR_CLIENT (client exit status), TR_MSG (client stderr).
traced_sessions() {
	local pid=$1 out=$2 st i
	# Every syscall, not only the read family (read, recvfrom, recvmsg, readv,
	# recvmmsg, ...): the marker must not show up anywhere.
	strace -f -qq -s 65536 -e trace=all -o "$out" -p "$pid" 2>"$out.err" &
	st=$!
	ML_PIDS+=("$st")
	for i in $(seq 100); do # bounded wait until strace is attached
		[ "$(awk '/^TracerPid:/ {print $2}' /proc/"$pid"/status 2>/dev/null)" != 0 ] && break
		sleep 0.05
	done
	sleep 0.2
	mlpy sessions "$CLI_NS" "$SRV4" 25 --host "$HOST" --count 12 --marker "$marker" \
		--close mixed --timeout 40 >"$ML_TMP/client.out" 2>"$ML_TMP/client.err"
	TR_CLIENT=$?
	TR_MSG=$(tr '\n' '|' <"$ML_TMP/client.err")
	sleep 0.3
	kill -INT "$st" 2>/dev/null
	for i in $(seq 50); do
		kill -0 "$st" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$st" 2>/dev/null
	wait "$st" 2>/dev/null
}

if ! ml_pair k 120; then
	fail "kernel: setup" "cannot create namespaces"
	ml_finish
	exit
fi
K_SRV_NS=$SRV_NS K_CLI_NS=$CLI_NS K_SRV4=$SRV4 K_SRV6=$SRV6
PIN=/sys/fs/bpf/$PREFIX-kernel
if ! ml_start SRV "$SRV_NS" "$PIN" -l "$SRV4:25" -l "[$SRV6]:25" -H "$HOST" --engine kernel \
	-t 2 --max-sessions 30 >"$ML_TMP/start.msg"; then
	fail "kernel: server starts" "$(cat "$ML_TMP/start.msg")"
	ml_finish
	exit
fi
ok "kernel: server starts (-t 2 --max-sessions 30)"

# ---- no client byte read by userspace
traced_sessions "$SRV" "$ML_TMP/strace.kernel"
if [ "$TR_CLIENT" -ne 0 ]; then
	fail "kernel: marker sessions under strace get exact replies" "$TR_MSG"
else
	ok "kernel: marker sessions under strace get exact replies"
fi
READS='^[0-9]+ +((read|recvfrom|recvmsg|readv|recvmmsg|pread64|preadv2?)\(|<\.\.\. (read|recvfrom|recvmsg|readv|recvmmsg|pread64|preadv2?) resumed>)'
n=$(grep -c . "$ML_TMP/strace.kernel" 2>/dev/null)
n=${n:-0}
nr=$(grep -cE "$READS" "$ML_TMP/strace.kernel" 2>/dev/null)
nr=${nr:-0}
other=$(grep "$marker" "$ML_TMP/strace.kernel" | grep -vcE "$READS")
note "strace of the kernel engine: $n syscall lines, $nr of the read family; the marker in $other other lines (e.g. the session log echoing the envelope)"
if [ ! -s "$ML_TMP/strace.kernel" ] && [ -s "$ML_TMP/strace.kernel.err" ]; then
	fail "kernel: no client byte read by userspace" "strace failed: $(head -c 500 "$ML_TMP/strace.kernel.err")"
elif grep -E "$READS" "$ML_TMP/strace.kernel" | grep -q "$marker"; then
	fail "kernel: no client byte read by userspace" \
		"marker read by the server: $(grep -E "$READS" "$ML_TMP/strace.kernel" | grep "$marker" | head -n 3 | cut -c1-300)"
else
	ok "kernel: no client byte read by userspace (strace: $nr read-family calls, none with the marker)"
fi

# ---- control: the same method sees the marker with the user engine
if ml_pair u 121 && ml_start USRV "$SRV_NS" "/sys/fs/bpf/$PREFIX-user" -l "$SRV4:25" -H "$HOST" \
	--engine user -t 2 >"$ML_TMP/start.msg"; then
	traced_sessions "$USRV" "$ML_TMP/strace.user"
	if [ "$TR_CLIENT" -ne 0 ]; then
		fail "kernel: control: user engine under strace" "client: $TR_MSG"
	elif grep -E "$READS" "$ML_TMP/strace.user" | grep -q "$marker"; then
		ok "kernel: control: strace does see the marker in the user engine"
	else
		fail "kernel: control: strace does see the marker in the user engine" \
			"marker not in strace output ($(grep -c . "$ML_TMP/strace.user") lines): the method is broken"
	fi
	ml_stop "$USRV"
else
	fail "kernel: control: user engine under strace" "$(cat "$ML_TMP/start.msg")"
fi
SRV_NS=$K_SRV_NS CLI_NS=$K_CLI_NS SRV4=$K_SRV4 SRV6=$K_SRV6

# ---- the session map does not leak
map_entries() { # prints the number of entries of PIN/sessions, or "error: ..."
	bpftool -j map dump pinned "$PIN/sessions" 2>&1 |
		python3 -c 'import json,sys
d=sys.stdin.read()
try: print(len(json.loads(d)))
except Exception: print("error: " + " ".join(d.split())[:200])'
}
e=$(map_entries)
note "session map entries now: $e"
mlpy sessions "$CLI_NS" "$SRV6" 25 --host "$HOST" --count 20 --marker leak --close mixed \
	--timeout 40 2>"$ML_TMP/client.err"
rc1=$?
mlpy fill "$CLI_NS" "$SRV4" 25 --host "$HOST" --count 30 --extra 5 --map "$PIN/sessions" \
	>"$ML_TMP/fill.out" 2>>"$ML_TMP/client.err"
rc2=$?
full=$(sed -n 's/^entries=//p' "$ML_TMP/fill.out")
if [ $rc1 -ne 0 ] || [ $rc2 -ne 0 ]; then
	fail "kernel: sessions ending every way get exact replies" "$(tr '\n' '|' <"$ML_TMP/client.err")"
else
	ok "kernel: sessions ending every way get exact replies"
fi
if [ "${full:-0}" -ge 30 ] 2>/dev/null; then
	ok "kernel: session map holds the open sessions ($full with 30 open)"
else
	fail "kernel: session map holds the open sessions" "entries with 30 sessions open: ${full:-unknown}"
fi
for i in $(seq 50); do # the last closes may still be in flight
	e=$(map_entries)
	[ "$e" = 0 ] && break
	sleep 0.1
done
if [ "$e" = 0 ]; then
	ok "kernel: session map empty after all sessions closed"
else
	fail "kernel: session map empty after all sessions closed" \
		"bpftool map dump pinned $PIN/sessions: $e entries 5 s after the last close: $(bpftool map dump pinned "$PIN/sessions" 2>&1 | head -c 600 | tr '\n' ' ')"
fi
st=$("$MAILLESS" status -j --pin-dir "$PIN" 2>&1)
if echo "$st" | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin).get("sessions") == 0 else 1)' 2>/dev/null; then
	ok "kernel: status -j reports 0 sessions"
else
	fail "kernel: status -j reports 0 sessions" "$(echo "$st" | head -c 400)"
fi

# ---- config map shows the hostname
cfg=$(bpftool -j map dump pinned "$PIN/config" 2>&1)
res=$(echo "$cfg" | python3 -c '
import json, sys
host = sys.argv[1]
try:
    d = json.load(sys.stdin)
except Exception as e:
    print("not JSON: %s" % e); sys.exit(1)
vals = []
for el in d if isinstance(d, list) else []:
    if not isinstance(el, dict):
        continue
    # bpftool -j: raw hex "key"/"value", and the BTF view under "formatted"
    v = (el.get("formatted") or el).get("value")
    if isinstance(v, dict) and "hostname" in v:
        h = v["hostname"]
        if isinstance(h, list):
            h = bytes(int(x, 0) if isinstance(x, str) else x for x in h).split(b"\0")[0].decode()
        vals.append(h)
if not vals:
    print("no hostname field in %s" % json.dumps(d)[:300]); sys.exit(1)
if host not in vals:
    print("hostname values %r, expected %r" % (vals, host)); sys.exit(1)
print("hostname values %r" % vals)
' "$HOST")
if [ $? -eq 0 ]; then
	ok "kernel: config map shows the hostname field ($res)"
else
	fail "kernel: config map shows the hostname field" "$res"
fi

ml_stop "$SRV"
if [ "$ML_RC" = 0 ]; then
	ok "kernel: exit status 0 on SIGTERM"
else
	fail "kernel: exit status 0 on SIGTERM" "exit status $ML_RC: $(tail -n 3 "$SRV_LOG" | tr '\n' '|')"
fi

# ---- ring buffer overflow: lost events are recovered from the session map
# (the test build: the shipped binary has no MAILLESS_TEST_RING_KIB)
if ml_pair r 122 && MAILLESS=$ML_TOP/.output/tests/mailless-hooks MAILLESS_TEST_RING_KIB=4 ml_start RSRV "$SRV_NS" "$PIN-ring" -l "$SRV4:25" \
	-H "$HOST" --engine kernel --max-sessions 4000 --max-sessions-per-source 0 --log-rate 0 \
	>"$ML_TMP/start.msg"; then
	res=$(in_ns "$CLI_NS" "$ML_TOP/.output/tools/loadgen" -q --allow-remote -s idle -c 3000 -d 1 \
		-t 20 "$SRV4:25" 2>&1 | tail -n 1)
	note "loadgen: $res"
	for i in $(seq 50); do # the sweep runs within 100 ms; closes may be in flight
		sj=$("$MAILLESS" stats -j --pin-dir "$PIN-ring" 2>&1)
		echo "$sj" | python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)["counters"]["active"] != 0)' \
			2>/dev/null && break
		sleep 0.1
	done
	got=$(echo "$sj" | python3 -c 'import json,sys
d = json.load(sys.stdin)["counters"]
print(d["close_quit"], d["events_lost"], d["active"])' 2>&1)
	read -r quit lost active <<<"$got"
	if [[ "$res" == *" held=3000 errors=0 "* ]] && [ "$quit" = 3000 ] && [ "$active" = 0 ] &&
		[ "${lost:-0}" -gt 0 ] 2>/dev/null; then
		ok "kernel: 4 KiB ring overflowed ($lost events lost), all 3000 QUITs got 221 and a close"
	else
		fail "kernel: ring overflow recovered" "loadgen: $res; close_quit active events_lost: $got"
	fi
	PIN_SAVE=$PIN PIN=$PIN-ring
	e=$(map_entries)
	PIN=$PIN_SAVE
	[ "$e" = 0 ] && ok "kernel: session map empty after the overflow" ||
		fail "kernel: session map empty after the overflow" "$e entries"
	ml_stop "$RSRV"
else
	fail "kernel: ring overflow: server starts" "$(cat "$ML_TMP/start.msg" 2>/dev/null)"
fi
ml_finish
