#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 900
# t_interop.sh - every MTA in Debian that queues and bounces mail, each as
# Debian's package installs it, sends one message to mailless in its default
# configuration (dialect rcpt), in both engines (tests/interop/interop.sh).
# Each run must meet tests/interop/expect.sh: a bounce within 2 s that
# Sisimai reads as a hard bounce, reason notaccept (dma and nullmailer: what
# they do instead); the transcript (tcpdump on the receiver's veth) must show
# the MTA's RCPT answered 521 5.3.2; and mailless's session line must name the
# MTA's address and the envelope. `make interop` runs the whole matrix (docs/interop.md).
#
# The MTAs' roots (tests/interop/root.sh) are built when missing: about 1 GB
# and 1 minute each on first use, cached in /var/cache/mailless/interop.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ml_init t_interop
. "$ML_TESTS/interop/interop.sh"
. "$ML_TESTS/interop/expect.sh"

missing=""
for c in mmdebstrap dnsmasq perl tcpdump; do
	command -v "$c" >/dev/null || missing="$missing $c"
done
perl -MSisimai -e1 2>/dev/null || missing="$missing libsisimai-perl"
if [ -n "$missing" ]; then
	fail "interop: setup" "missing:$missing (make deps-test installs them)"
	ml_finish
	exit
fi
sisimai=$(perl -MSisimai -e 'print $Sisimai::VERSION')
note "Sisimai $sisimai"
sisimai_major=$(echo "$sisimai" | sed -n 's/^v\{0,1\}\([0-9]*\).*/\1/p')
t0=$(date +%s)
# shellcheck disable=SC2086 # a list of words
if ir_roots ${MLT_INTEROP_MTAS:-$IR_MTAS} >"$ML_TMP/roots.log"; then
	note "MTA roots ready in $(($(date +%s) - t0)) s $(tr '\n' ' ' <"$ML_TMP/roots.log")"
else
	fail "interop: MTA roots" "$(tail -n 20 "$ML_TMP/roots.log" | tr '\n' '|')"
fi

x=150
for mta in ${MLT_INTEROP_MTAS:-$IR_MTAS}; do
	read -r want_outcome want_reason want_soft <<<"$(expect_row "$mta" "${sisimai_major:-0}")"
	for engine in kernel user; do
		name="interop/$mta/$engine"
		if ! engine_enabled $engine; then
			skip "$name" "engine excluded by MLT_ENGINES"
			continue
		fi
		x=$((x + 1))
		if ! interop_run "$mta" "$engine" rcpt 10 $x || [ "$IR_OUTCOME" = error ]; then
			fail "$name: run" "$IR_WHY"
			continue
		fi
		got="$IR_OUTCOME in ${IR_SECS:-?} s, Sisimai: ${IR_REASON:--} softbounce ${IR_SOFT:--} status ${IR_STATUS:--} ($IR_DIAG); $IR_WHY"
		note "$name: $IR_VERSION: $got"
		if [ "$IR_OUTCOME" = "$want_outcome" ] &&
			awk -v s="${IR_SECS:-99}" -v t="$IR_TARGET_SECS" 'BEGIN { exit !(s <= t) }'; then
			ok "$name: $want_outcome within $IR_TARGET_SECS s"
		else
			fail "$name: $want_outcome within $IR_TARGET_SECS s" "$got"
		fi
		if [ "$want_outcome" = bounced ]; then
			if [ "$IR_REASON" = "$want_reason" ] && [ "${IR_SOFT:--}" = "$want_soft" ]; then
				ok "$name: Sisimai reads reason $want_reason, softbounce $want_soft"
			else
				fail "$name: Sisimai reads reason $want_reason, softbounce $want_soft" "$got"
			fi
		fi
		if [ "$mta" = dma ]; then
			# What the reader of dma's bounce has: mailless's line, quoted.
			if grep -qF "521 5.3.2 $IR_MX does not accept mail" "$IR_DIR/dsn" 2>/dev/null; then
				ok "$name: the bounce quotes the 521 line"
			else
				fail "$name: the bounce quotes the 521 line" "$(head -c 1200 "$IR_DIR/dsn" 2>/dev/null)"
			fi
		fi
		if [ "$mta" = nullmailer ]; then
			if grep -qF "Not generating double bounce" "$IR_DIR/syslog"; then
				ok "$name: no double bounce"
			else
				fail "$name: no double bounce" "$(tail -n 5 "$IR_DIR/syslog" | tr '\n' '|')"
			fi
		fi
		# The wire: the MTA's RCPT (sendmail writes "RCPT To:"), answered 521 5.3.2.
		if grep -A1 -ixF "C: RCPT TO:<$IR_RCPT>" "$IR_DIR/transcript" |
			grep -qxF "S: 521 5.3.2 $IR_MX does not accept mail"; then
			ok "$name: the transcript has RCPT answered 521 5.3.2"
		else
			fail "$name: the transcript has RCPT answered 521 5.3.2" "$(head -c 1200 "$IR_DIR/transcript")"
		fi
		# Who misaddressed mail: the MTA's address and the envelope.
		case $IR_SESSION in
		*" client=$CLI4:"*" from=\"<$IR_FROM>\" rcpt=\"<$IR_RCPT>\" "*)
			ok "$name: the session line names the sender and the envelope" ;;
		*)
			fail "$name: the session line names the sender and the envelope" \
				"${IR_SESSION:-no session line from $CLI4}: $(tail -n 3 "$IR_DIR/mailless.log" | tr '\n' '|')" ;;
		esac
	done
done
ml_finish
