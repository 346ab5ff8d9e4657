# SPDX-License-Identifier: GPL-2.0
# interop.sh - one message from a real MTA to mailless, and what comes back.
# Sourced after tests/interop/lib.sh by tests/interop/t_interop.sh (the default row, in `make
# test`) and tests/interop/matrix.sh (`make interop`, the whole matrix).
#
# interop_run MTA ENGINE DIALECT WINDOW X
#   Two namespaces joined by a veth (lib.sh's ml_pair, 192.0.2.0/24):
#     receiver: mailless -H mx.mailless.test -e ENGINE -d DIALECT on port 25
#               (ENGINE none: nothing listens there, the baseline)
#     sender:   dnsmasq on 127.0.0.1 (MX of mailless.test: mx.mailless.test at
#               the receiver's address; sender.test at the sender's), and the
#               MTA's jail (jail.sh: Debian's package in a private root)
#   alice@sender.test sends one message to bob@mailless.test with the MTA's
#   sendmail(1); the run watches alice's mailbox for up to WINDOW seconds.
#   Sets, for the caller:
#     IR_OUTCOME  bounced (a DSN came back), relayed (the MTA sent its DSN
#                 to mailless too: it has no local delivery), deferred (none
#                 in WINDOW s; the message is still queued), lost (none, and
#                 not queued), error (the run failed: IR_WHY says why)
#     IR_SECS     seconds from submission to the DSN in the mailbox (bounced)
#     IR_REASON IR_SOFT IR_STATUS IR_DIAG  Sisimai's reason, softbounce,
#                 delivery status and diagnostic code of the DSN
#     IR_SESSION  mailless's session line for the MTA's session(s)
#     IR_WHY      error text, or the MTA's own log lines about the message
#     IR_VERSION  the MTA and its package version
#     IR_DIR      the run's files: transcript (the SMTP dialogue, from
#                 wire.pcap: tcpdump on the receiver's veth), mailless.log,
#                 dsn (the sink), syslog (the MTA's log), queue, dns.log
# The callers build the MTAs' roots first, with ir_roots.

IR_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/interop/mta.sh
. "$IR_HERE/mta.sh"

# Run a command inside the jail whose unshare process is $IR_JAIL: its mount,
# UTS, PID and network namespaces, in its root. -r: entering a mount
# namespace moves a process to that namespace's root mount; when the tests run
# chrooted (as in a fresh Debian root), the jail's root is the chroot's, and
# there alone are this tree and the jail's root.
jx() {
	local pid1
	pid1=$(awk '{print $1}' "/proc/$IR_JAIL/task/$IR_JAIL/children" 2>/dev/null)
	[ -n "$pid1" ] || return 125
	J=$IR_DIR/root nsenter -t "$pid1" -m -u -p -n -r -- bash -c '. "$1"; shift; "$@"' jx "$IR_HERE/mta.sh" "$@"
}

ir_reset() {
	IR_OUTCOME=error IR_SECS="" IR_REASON="" IR_SOFT="" IR_STATUS="" IR_DIAG=""
	IR_SESSION="" IR_WHY="" IR_VERSION=""
}

# ir_stop_jail: end the jail. unshare --fork ignores SIGTERM (it leaves
# signals to its child), so SIGKILL: its --kill-child then SIGKILLs PID 1, and
# the PID namespace takes every MTA process with it.
ir_stop_jail() {
	[ -n "${IR_JAIL:-}" ] || return 0
	kill -KILL "$IR_JAIL" 2>/dev/null
	wait "$IR_JAIL" 2>/dev/null
	IR_JAIL=""
}

# ir_roots MTA...: build the roots that are missing or stale, three at a time
# (a build is mostly download and dpkg: three take about as long as one on
# two cores). Prints one line per root built; returns 1 if any build failed.
ir_roots() {
	local m
	for m in "$@"; do
		bash "$IR_HERE/root.sh" --check "$m" || echo "$m"
	done | xargs -r -P 3 -n 1 bash "$IR_HERE/root.sh" 2>&1 | grep -v '^# .* root: building'
	for m in "$@"; do
		bash "$IR_HERE/root.sh" --check "$m" || return 1
	done
}

# The run's namespaces go with it (the EXIT trap would remove them too).
ir_del_pair() { ip netns del "$SRV_NS" 2>/dev/null; ip netns del "$CLI_NS" 2>/dev/null; }

interop_run() {
	local mta=$1 engine=$2 dialect=$3 window=$4 x=$5
	local root tag pin dns cap t0 t1 tfirst trelay sink mta_log words i
	ir_reset
	tag=$mta-$engine-$dialect
	IR_DIR=$ML_TMP/$tag
	rm -rf "$IR_DIR"
	mkdir -p "$IR_DIR"
	root=$(bash "$IR_HERE/root.sh" --path "$mta")
	if ! bash "$IR_HERE/root.sh" --check "$mta"; then
		IR_WHY="no current root for $mta in $root (ir_roots builds it)"
		return 1
	fi
	# Documentation prefixes (RFC 5737, RFC 3849), not private ones: Debian's
	# Exim ignores MX hosts in 10/8, 172.16/12, 192.168/16 and fc00::/7.
	if ! ml_pair "i$x" "$x" 192.0.2 2001:db8:"$(printf %x "$x")"; then
		IR_WHY="cannot create the namespaces"
		return 1
	fi
	pin=/sys/fs/bpf/$PREFIX-i$x
	IR_SRV=""
	if [ "$engine" != none ] && ! ml_start IR_SRV "$SRV_NS" "$pin" -l "$SRV4:25" -H "$IR_MX" -d "$dialect" \
		--engine "$engine" --log-level info >"$IR_DIR/start.msg"; then
		IR_WHY="mailless did not start: $(cat "$IR_DIR/start.msg")"
		ir_del_pair
		return 1
	fi
	# Started directly (not through in_ns, a function: "&" would fork a
	# subshell, and $! would not be the process to stop).
	#   tcpdump: the wire, on the receiver's veth, for the transcript
	#   (--immediate-mode -U: each packet read and written as it comes;
	#   without, a block of the last second's packets is lost at the stop).
	cap=""
	if command -v tcpdump >/dev/null; then
		nsenter --net="/run/netns/$SRV_NS" tcpdump -i veth0 --immediate-mode -U -n -s 0 -w "$IR_DIR/wire.pcap" \
			tcp port 25 >"$IR_DIR/tcpdump.log" 2>&1 </dev/null &
		cap=$!
		ML_PIDS+=("$cap")
		for i in $(seq 50); do
			grep -q 'listening on' "$IR_DIR/tcpdump.log" && break
			sleep 0.1
		done
	fi
	nsenter --net="/run/netns/$CLI_NS" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
		--no-poll --listen-address=127.0.0.1 --bind-interfaces --pid-file= --local=/test/ \
		--mx-host=mailless.test,$IR_MX,10 --host-record=$IR_MX,"$SRV4" \
		--host-record=sender.test,"$CLI4" --log-queries --log-facility=- \
		>"$IR_DIR/dns.log" 2>&1 </dev/null &
	dns=$!
	ML_PIDS+=("$dns")
	nsenter --net="/run/netns/$CLI_NS" unshare --mount --uts --pid --fork --kill-child --propagation private \
		bash "$IR_HERE/jail.sh" "$root" "$IR_DIR" "$mta" sender.test "$CLI4" \
		>"$IR_DIR/jail.log" 2>&1 </dev/null &
	IR_JAIL=$!
	ML_PIDS+=("$IR_JAIL")
	for i in $(seq 300); do
		[ -e "$IR_DIR/ready" ] || [ -e "$IR_DIR/failed" ] && break
		kill -0 "$IR_JAIL" 2>/dev/null || break
		sleep 0.1
	done
	if [ ! -e "$IR_DIR/ready" ]; then
		IR_WHY=$(cat "$IR_DIR/failed" "$IR_DIR/jail.log" 2>/dev/null | head -c 1500)
		IR_WHY=${IR_WHY:-"the $mta jail was not ready in 30 s"}
		ir_stop_jail; ml_stop "$dns"; [ -n "$cap" ] && ml_stop "$cap"
		[ -n "$IR_SRV" ] && ml_stop "$IR_SRV"; ir_del_pair
		return 1
	fi
	IR_VERSION=$(jx "${mta}_version")
	sink=$IR_DIR/upper$("${mta}_sink")
	mta_log=""
	declare -F "${mta}_log" >/dev/null && mta_log=$("${mta}_log")
	printf 'From: Alice <%s>\nTo: <%s>\nSubject: interop %s\nMessage-ID: <%s.%s@sender.test>\n\nA message to a host that does not accept mail.\n' \
		"$IR_FROM" "$IR_RCPT" "$tag" "$tag" "$$" >"$IR_DIR/message"
	t0=$(date +%s.%N)
	if ! jx jroot /usr/sbin/sendmail -f "$IR_FROM" -i "$IR_RCPT" <"$IR_DIR/message" >"$IR_DIR/submit.log" 2>&1; then
		IR_WHY="$mta's sendmail failed: $(head -c 800 "$IR_DIR/submit.log")"
	fi
	# The DSN has come back once Sisimai can read it; IR_SECS counts to the
	# moment its first byte landed in the sink.
	t1="" tfirst="" trelay=""
	for i in $(seq $((window * 20))); do
		if { [ -f "$sink" ] && [ -s "$sink" ]; } || { [ -d "$sink" ] && [ -n "$(ls -A "$sink")" ]; }; then
			[ -n "$tfirst" ] || tfirst=$(date +%s.%N)
			if perl "$IR_HERE/classify.pl" "$sink" >"$IR_DIR/classify" 2>"$IR_DIR/classify.err"; then
				t1=$(date +%s.%N)
				break
			fi
			# A DSN Sisimai cannot read stays unreadable.
			awk -v a="$tfirst" -v b="$(date +%s.%N)" 'BEGIN { exit !(b - a > 2) }' && break
		elif [ -n "$IR_SRV" ] && grep -qF "from=\"<>\" rcpt=\"<$IR_FROM>\"" "$IR_SRV_LOG"; then
			trelay=$(date +%s.%N) # the MTA's DSN to alice came to mailless
			break
		elif declare -F "${mta}_kick" >/dev/null && [ $((i % 10)) -eq 0 ]; then
			jx "${mta}_kick" >/dev/null 2>&1
		fi
		sleep 0.05
	done
	sleep 0.3 # let the MTA finish its log lines
	jx "${mta}_queue" >"$IR_DIR/queue" 2>&1
	# The MTA's log: syslog, and its own file if it keeps one.
	cat "$IR_DIR/upper/var/log/syslog" \
		${mta_log:+"$IR_DIR/upper$mta_log"} >"$IR_DIR/syslog" 2>/dev/null
	ir_stop_jail
	ml_stop "$dns"
	[ -n "$IR_SRV" ] && ml_stop "$IR_SRV" && cp "$IR_SRV_LOG" "$IR_DIR/mailless.log"
	if [ -n "$cap" ]; then
		ml_stop "$cap"
		python3 "$IR_HERE/transcript.py" "$IR_DIR/wire.pcap" 25 >"$IR_DIR/transcript" 2>&1
	else
		echo "(tcpdump is not installed: no transcript)" >"$IR_DIR/transcript"
	fi
	ir_del_pair
	touch "$IR_DIR/mailless.log"
	IR_SESSION=$(grep -F " session client=$CLI4:" "$IR_DIR/mailless.log" | head -n 1)
	if [ -n "$tfirst" ]; then
		IR_OUTCOME=bounced
		IR_SECS=$(awk -v a="$t0" -v b="$tfirst" 'BEGIN { printf "%.2f", b - a }')
		rm -rf "$IR_DIR/dsn"
		cp -a "$sink" "$IR_DIR/dsn"
		if [ -n "$t1" ]; then
			IFS=$'\t' read -r IR_REASON IR_SOFT IR_STATUS _ _ _ IR_DIAG <"$IR_DIR/classify"
		else
			IR_REASON="(none)" IR_WHY="Sisimai reads no bounce in it$(head -c 300 "$IR_DIR/classify.err" | sed "s/^/: /")"
		fi
	elif [ -n "$trelay" ]; then
		IR_OUTCOME=relayed
		IR_SECS=$(awk -v a="$t0" -v b="$trelay" 'BEGIN { printf "%.2f", b - a }')
	elif grep -qF "$IR_RCPT" "$IR_DIR/queue"; then
		IR_OUTCOME=deferred
	elif [ "$(grep -cF " session client=$CLI4:" "$IR_DIR/mailless.log")" -ge 2 ]; then
		# Not queued, no DSN, a second session: the DSN went to mailless
		# (after a 521 greeting it never names its envelope).
		IR_OUTCOME=relayed
	else
		IR_OUTCOME=lost
	fi
	# The MTA's own words about the message, for the matrix, wherever no
	# DSN that Sisimai reads tells what happened.
	if [ -z "$t1" ]; then
		words=$(grep -iE 'defer|bounc|refused|status=|error|fail|double bounce| [245][0-9][0-9][ -]' \
			"$IR_DIR/syslog" 2>/dev/null | tail -n 2 | cut -c1-300 |
			sed -E 's/^[A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} sender [a-z]+\.[a-z]+ //; s/^[0-9-]{10} [0-9:]{8} //' |
			paste -sd'|' | sed 's/|/ | /g')
		IR_WHY=${IR_WHY:+$IR_WHY; its log: }$words
	fi
	return 0
}
