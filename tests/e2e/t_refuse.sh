#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 180
# t_refuse.sh - when the kernel engine cannot run, mailless says why in terms
# a user can act on, and --engine auto serves with the user engine instead.
#
#   missing capability: CAP_PERFMON, CAP_BPF or CAP_NET_ADMIN dropped from
#     the bounding set (setpriv; CAP_SYS_ADMIN too, which stands in for all
#     three): the message names the one missing, checked before anything is
#     loaded. Before, a missing CAP_PERFMON printed the verifier's log and
#     "the kernel lacks a feature", a missing CAP_NET_ADMIN "the kernel
#     refused although we hold the capabilities". The XDP guard likewise
#     names CAP_BPF or CAP_NET_ADMIN (it said "attaching the guard to veth0:
#     Operation not permitted"), and a libxdp without its dispatcher object
#     (LIBXDP_OBJECT_PATH pointing elsewhere) names xdp-dispatcher.o instead
#     of "No such file or directory".
#   verifier rejection: .output/tests/mailless-reject carries an sk_msg
#     program with an unchecked packet read (MLT_VERIFIER_REJECT): the
#     message names ml_msg, quotes the verifier's complaint (a line of the
#     log libbpf printed) and asks for a report.
#   The kernel too old (a missing bpf_loop() and the release that added it)
#   is tested on Debian 11's 5.10 in a VM (tests/vm/t_kernel510.sh), kernel lockdown
#   there too: neither can be arranged on the host.
. "$(dirname "$0")/lib.sh"
ml_init t_refuse
REJECT=$ML_TOP/.output/tests/mailless-reject

if ! command -v setpriv >/dev/null; then
	fail "t_refuse: setup" "setpriv missing (util-linux)"
	ml_finish
	exit
fi
ml_pair r 61 || { fail "t_refuse: setup" "namespace pair"; ml_finish; exit; }
HOST=refuse.mx.test

# refuse BINARY DROP [SECS]: run the kernel engine with DROP removed from
# the bounding set ("" for none), for at most SECS (30; timeout's SIGTERM
# ends one that serves); OUT gets what it printed, RC its exit status.
refuse() {
	local bin=$1 drop=$2 secs=${3:-30}
	local -a pre=()
	[ -n "$drop" ] && pre=(setpriv --bounding-set "$drop" --inh-caps -all)
	OUT=$(timeout "$secs" nsenter --net="/run/netns/$SRV_NS" "${pre[@]}" "$bin" run \
		-l "$SRV4:25" -H "$HOST" --engine kernel --pin-dir "/sys/fs/bpf/$PREFIX-refuse" \
		-t 5 2>&1 </dev/null)
	RC=$?
}

# serves NAME BINARY DROP WANT: --engine auto under the same conditions must
# print WANT (as a warning: nothing failed that is not recovered from), fall
# back to the user engine and answer a session.
serves() {
	local name=$1 bin=$2 drop=$3 want=$4 wrap=$ML_TMP/wrap-$RANDOM got saved=$MAILLESS
	if [ -n "$drop" ]; then
		printf '#!/bin/sh\nexec setpriv --bounding-set %s --inh-caps -all %s "$@"\n' \
			"$drop" "$bin" > "$wrap"
	else
		printf '#!/bin/sh\nexec %s "$@"\n' "$bin" > "$wrap"
	fi
	chmod 755 "$wrap"
	MAILLESS=$wrap
	if ! ml_start SRV "$SRV_NS" "/sys/fs/bpf/$PREFIX-auto" -l "$SRV4:25" -H "$HOST" \
			--engine auto -t 5 > "$ML_TMP/why"; then
		MAILLESS=$saved
		fail "$name" "$(cat "$ML_TMP/why")"
		return
	fi
	MAILLESS=$saved
	got=$(printf 'QUIT\r\n' | mlpy converse "$CLI_NS" "$SRV4" 25 --timeout 5 2>/dev/null |
		tr -d '\r')
	ml_stop "$SRV"
	if [[ $got != "220 $HOST "*"221 "* ]]; then
		fail "$name" "no session: '$got'; log: $(tail -n 5 "$SRV_LOG")"
	elif ! grep -qF -- "$want" "$SRV_LOG"; then
		fail "$name" "no '$want' in the log: $(cat "$SRV_LOG")"
	elif [ -z "${ERROR_OK:-}" ] && grep -q "mailless: Error" "$SRV_LOG"; then
		fail "$name" "a recovered failure logged as an error: $(grep 'mailless: Error' "$SRV_LOG")"
	elif ! grep -q "falling back to the user engine" "$SRV_LOG"; then
		fail "$name" "no fallback line: $(cat "$SRV_LOG")"
	else
		ok "$name"
	fi
}

for cap in perfmon bpf net_admin; do
	CAP=CAP_${cap^^}
	refuse "$MAILLESS" "-sys_admin,-$cap"
	name="refuse: without $CAP the kernel engine names it"
	if [ "$RC" -eq 0 ]; then
		fail "$name" "exit status 0: $OUT"
	elif [[ $OUT != *"this process lacks $CAP: run it as root"* ]]; then
		fail "$name" "$OUT"
	elif [[ $OUT == *"libbpf:"* ]]; then
		fail "$name" "it tried to load first: $OUT"
	else
		ok "$name"
	fi
done
serves "refuse: without CAP_PERFMON, --engine auto serves with the user engine" \
	"$MAILLESS" "-sys_admin,-perfmon" "lacks CAP_PERFMON"

for cap in bpf net_admin; do
	CAP=CAP_${cap^^}
	OUT=$(timeout 30 nsenter --net="/run/netns/$SRV_NS" setpriv --bounding-set "-sys_admin,-$cap" \
		--inh-caps -all "$MAILLESS" run -l "$SRV4:25" -H "$HOST" --engine user --xdp veth0 \
		--pin-dir "/sys/fs/bpf/$PREFIX-refuse" 2>&1 </dev/null)
	RC=$?
	name="refuse: without $CAP the XDP guard names it"
	if [ "$RC" -eq 0 ]; then
		fail "$name" "exit status 0: $OUT"
	elif [[ $OUT != *"the XDP guard needs the capabilities CAP_BPF CAP_NET_ADMIN"*"lacks $CAP:"* ]]; then
		fail "$name" "$OUT"
	else
		ok "$name"
	fi
done

OUT=$(LIBXDP_OBJECT_PATH=$ML_TMP/none timeout 30 nsenter --net="/run/netns/$SRV_NS" "$MAILLESS" \
	run -l "$SRV4:25" -H "$HOST" --engine user --xdp veth0 --pin-dir "/sys/fs/bpf/$PREFIX-refuse" \
	2>&1 </dev/null)
RC=$?
name="refuse: the XDP guard without libxdp's dispatcher object names it"
if [ "$RC" -ne 0 ] && [[ $OUT == *"libxdp found no xdp-dispatcher.o (package libxdp1"* ]]; then
	ok "$name"
else
	fail "$name" "exit $RC: $OUT"
fi

refuse "$MAILLESS" "-sys_admin" 3
name="refuse: CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN without CAP_SYS_ADMIN are enough"
if [ "$RC" -eq 124 ] && [[ $OUT == *"mailless: ready: engine kernel"* ]]; then
	ok "$name"
else
	fail "$name" "exit $RC: $OUT"
fi

if [ ! -x "$REJECT" ]; then
	fail "refuse: verifier rejection" "$REJECT missing: make tests-build"
else
	refuse "$REJECT" ""
	name="refuse: a verifier rejection names the program and the verifier's complaint"
	line=$(printf '%s\n' "$OUT" | sed -n "s/.*verifier rejected program 'ml_msg': \"\(.*\)\"\. .*/\1/p")
	if [ "$RC" -eq 0 ]; then
		fail "$name" "exit status 0: $(printf '%s\n' "$OUT" | tail -n 3)"
	elif [ -z "$line" ]; then
		fail "$name" "$(printf '%s\n' "$OUT" | grep 'mailless:')"
	elif ! printf '%s\n' "$OUT" | grep -qxF -- "$line"; then
		fail "$name" "'$line' is not a line of the verifier's log"
	elif [[ $OUT != *"please report it"* ]]; then
		fail "$name" "no request for a report: $(printf '%s\n' "$OUT" | grep 'mailless:')"
	else
		ok "$name"
		note "mailless-reject: $(printf '%s\n' "$OUT" | grep 'verifier rejected' | cut -c1-160)"
	fi
	# A verifier rejection is a bug to report: an error even under auto.
	ERROR_OK=1 serves "refuse: a verifier rejection with --engine auto serves with the user engine" \
		"$REJECT" "" "Error: loading the BPF programs: Permission denied: the kernel's verifier rejected program 'ml_msg'"
fi
ml_finish
