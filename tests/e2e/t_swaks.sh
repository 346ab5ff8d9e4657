#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 120
# t_swaks.sh - a real SMTP client nobody here wrote: swaks, run inside the
# client namespace against each engine and dialect, IPv4 and IPv6. The whole
# transcript must match (220, 250 with ENHANCEDSTATUSCODES, 250, 521 at RCPT,
# clean 221; or 521 at the banner in the rfc7504 dialect; the texts from
# tests/e2e/mltest.py), and so must swaks's exit status (24: RCPT rejected, 21:
# banner rejected).
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ml_init t_swaks

if ! command -v swaks >/dev/null; then
	skip "swaks" "swaks is not installed (apt-get install swaks)"
	ml_finish
	exit
fi
note "$(swaks --version 2>&1 | head -n1)"

# One reply of the wire table (tests/e2e/mltest.py TEXTS) as swaks prints it:
# every line after PREFIX ("<-  " received, "<** " a rejection).
reply() { # PREFIX DIALECT HOST KIND
	mlpy reply "$2" "$3" "$4" | tr -d '\r' | sed "s/^/$1/"
}

expect_rcpt() { # ADDR HOST
	echo "=== Trying $1:25..."
	echo "=== Connected to $1."
	reply "<-  " rcpt "$2" greet
	echo " -> EHLO client.test"
	reply "<-  " rcpt "$2" ehlo
	echo " -> MAIL FROM:<a@b>"
	reply "<-  " rcpt "$2" ok
	echo " -> RCPT TO:<x@y>"
	reply "<** " rcpt "$2" reject
	echo " -> QUIT"
	reply "<-  " rcpt "$2" quit
	echo "=== Connection closed with remote host."
}

expect_rfc7504() { # ADDR HOST
	echo "=== Trying $1:25..."
	echo "=== Connected to $1."
	reply "<** " rfc7504 "$2" greet
	echo " -> QUIT"
	reply "<-  " rfc7504 "$2" quit
	echo "=== Connection closed with remote host."
}

x=50
for engine in kernel user; do
	if ! engine_enabled $engine; then
		skip "swaks/$engine" "engine excluded by MLT_ENGINES"
		continue
	fi
	for dialect in rcpt rfc7504; do
		x=$((x + 1))
		name="swaks/$engine/$dialect"
		host="${engine:0:1}-$dialect.swaks.test"
		if ! ml_pair "${engine:0:1}${dialect:0:2}" $x; then
			fail "$name: setup" "cannot create namespaces"
			continue
		fi
		pin=/sys/fs/bpf/$PREFIX-$engine-$dialect
		if ! ml_start SRV "$SRV_NS" "$pin" -l "$SRV4:25" -l "[$SRV6]:25" -H "$host" \
			-d "$dialect" --engine "$engine" >"$ML_TMP/start.msg"; then
			fail "$name: server starts" "$(cat "$ML_TMP/start.msg")"
			continue
		fi
		for addr in "$SRV4" "$SRV6"; do
			fam=IPv4
			[[ $addr == *:* ]] && fam=IPv6
			out=$ML_TMP/swaks.out
			timeout 30 nsenter --net="/run/netns/$CLI_NS" swaks --server "$addr" --port 25 \
				--to x@y --from a@b --helo client.test --timeout 10 >"$out" 2>&1
			rc=$?
			if [ "$dialect" = rcpt ]; then
				expect_rcpt "$addr" "$host" >"$ML_TMP/exp"
				want_rc=24
			else
				expect_rfc7504 "$addr" "$host" >"$ML_TMP/exp"
				want_rc=21
			fi
			if ! d=$(diff "$ML_TMP/exp" "$out"); then
				fail "$name: transcript ($fam)" "swaks transcript differs (- expected, + got): $(echo "$d" | head -n 20)"
			elif [ "$rc" -ne "$want_rc" ]; then
				fail "$name: transcript ($fam)" "swaks exit status $rc, expected $want_rc"
			else
				ok "$name: transcript ($fam)"
			fi
		done
		ml_stop "$SRV"
		rc=$ML_RC
		if [ "$rc" = 0 ]; then
			ok "$name: exit status 0 on SIGTERM"
		else
			fail "$name: exit status 0 on SIGTERM" "exit status $rc: $(tail -n 3 "$SRV_LOG" | tr '\n' '|')"
		fi
	done
done
ml_finish
