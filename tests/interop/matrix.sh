#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# matrix.sh - `make interop`: every MTA x {nothing listening, rcpt, rfc7504}
# x {kernel, user}, one message each (tests/interop/interop.sh), then
# docs/interop.md and the README's "Why rcpt is the default" table, both
# generated from this run by report.py.
#
# Usage: tests/interop/matrix.sh [--window SECS] [--mtas "LIST"] [--no-docs]
#   --window   how long each run watches for the DSN (default 15)
#   --mtas     a subset (default: all of tests/interop/expect.sh's IR_MTAS)
#   --no-docs  print the results only (.output/interop/results.tsv)
# Prints the same ok / not ok lines as the tests: a run that fails to run is
# "not ok"; an MTA that defers is a result, not a failure.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ml_init interop-matrix
. "$ML_TESTS/interop/interop.sh"
. "$ML_TESTS/interop/expect.sh"

window=15 mtas=$IR_MTAS docs=1
while [ $# -gt 0 ]; do
	case $1 in
	--window) window=$2; shift 2 ;;
	--mtas) mtas=$2; shift 2 ;;
	--no-docs) docs=0; shift ;;
	*) echo "matrix.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
out=$ML_TOP/.output/interop
mkdir -p "$out/runs"
tsv=$out/results.tsv
printf 'mta\tversion\tengine\tdialect\toutcome\tsecs\treason\tsoftbounce\tstatus\tdiagnostic\tsession\twhy\n' >"$tsv"

clean() { printf '%s' "$1" | tr '\t\n' '  ' | cut -c1-600; }

# shellcheck disable=SC2086 # a list of words
ir_roots $mtas || { fail "matrix: MTA roots" "tests/interop/root.sh failed"; ml_finish; exit; }
x=150
for mta in $mtas; do
	for row in "none -" "kernel rcpt" "user rcpt" "kernel rfc7504" "user rfc7504"; do
		read -r engine dialect <<<"$row"
		x=$((x + 1))
		name="matrix/$mta/$engine/$dialect"
		interop_run "$mta" "$engine" "${dialect/-/rcpt}" "$window" $x
		if [ "$IR_OUTCOME" = error ]; then
			fail "$name" "$IR_WHY"
		else
			ok "$name: $IR_OUTCOME ${IR_SECS:+in $IR_SECS s} ${IR_REASON:+Sisimai $IR_REASON/$IR_SOFT}"
		fi
		rm -rf "$out/runs/$mta-$engine-$dialect"
		mkdir -p "$out/runs/$mta-$engine-$dialect"
		for f in transcript mailless.log dsn syslog queue classify wire.pcap; do
			[ -e "$IR_DIR/$f" ] && cp -a "$IR_DIR/$f" "$out/runs/$mta-$engine-$dialect/"
		done
		printf '%s\t' "$mta" "$(clean "$IR_VERSION")" "$engine" "$dialect" "$IR_OUTCOME" \
			"${IR_SECS:--}" "${IR_REASON:--}" "${IR_SOFT:--}" "${IR_STATUS:--}" \
			"$(clean "$IR_DIAG")" "$(clean "$IR_SESSION")" >>"$tsv"
		printf '%s\n' "$(clean "$IR_WHY")" >>"$tsv"
		rm -rf "$IR_DIR"
	done
done
note "results: $tsv; each run's transcript, DSN, MTA log and queue: $out/runs/"
if [ "$docs" = 1 ]; then
	cmd="make interop"
	[ "$mtas" = "$IR_MTAS" ] || cmd="tests/interop/matrix.sh --mtas \"$mtas\""
	if python3 "$ML_TESTS/interop/report.py" "$tsv" "$ML_TOP/docs/interop.md" "$ML_TOP/README.md" \
		"$cmd" "$window" "$(perl -MSisimai -e 'print $Sisimai::VERSION')"; then
		ok "matrix: docs/interop.md and README.md written"
	else
		fail "matrix: docs/interop.md and README.md written" "report.py failed"
	fi
fi
ml_finish
