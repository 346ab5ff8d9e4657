#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 900
# t_zsan.sh - the controller under AddressSanitizer, LeakSanitizer and UBSan.
#
# Runs, with MAILLESS pointing at the sanitizer build (./mailless-san, from
# `make SAN=1`; `make test` builds it; MAILLESS_SAN overrides the path):
#   MLT_ENGINES=user    t_wire.py t_limits.py t_lifecycle.py t_stats.py
#   MLT_ENGINES=kernel  t_lifecycle.py
# through tests/run.sh, reporting their results here as "SAN <engine>: ...".
# Every sanitizer report (heap/stack errors, leaks at exit, "runtime error:")
# goes to a file under a fresh log_path directory; any file there, or any
# such line in the tests' output, is a failure that shows the report.
# Builds nothing itself. Named t_z* so that it runs last.
. "$(dirname "$0")/lib.sh"
SAN_BIN=${MAILLESS_SAN:-$ML_TOP/mailless-san}
ml_init t_zsan

if [ ! -x "$SAN_BIN" ]; then
	fail "sanitizer build" "$SAN_BIN missing: build it with 'make SAN=1' (make test does)"
	ml_finish
	exit 1
fi
libs=$(readelf -dW "$SAN_BIN" 2>/dev/null)
if grep -q 'libasan' <<<"$libs" && grep -q 'libubsan' <<<"$libs"; then
	ok "sanitizer build: $(basename "$SAN_BIN") links libasan and libubsan"
else
	fail "sanitizer build" "$SAN_BIN does not link libasan and libubsan: rebuild with 'make SAN=1'"
	ml_finish
	exit 1
fi

logs=$ML_TMP/san
mkdir -p "$logs"
# halt_on_error / abort: the first report ends mailless, which the test then
# sees as well (exit status, missing replies); leaks are checked at exit.
export ASAN_OPTIONS="log_path=$logs/asan:detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1"
export UBSAN_OPTIONS="log_path=$logs/ubsan:print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="log_path=$logs/lsan"

# stage ENGINE FILE...: the files through run.sh with the sanitizer build.
stage() {
	local engine=$1 out rc line
	shift
	out=$ML_TMP/run-$engine.txt
	note "SAN $engine: tests/run.sh $*"
	MAILLESS=$SAN_BIN MLT_ENGINES=$engine bash "$ML_TESTS/run.sh" "$@" >"$out" 2>&1
	rc=$?
	while IFS= read -r line; do
		# run.sh's TAP: "ok N - NAME", "not ok N - NAME: why",
		# "ok N - NAME # SKIP reason", "# === FILE: counts".
		case $line in
		"ok "[0-9]*" - "*"# SKIP "*"by MLT_ENGINES"*)	# chosen here
			note "SAN $engine: ${line#* - }" ;;
		"ok "[0-9]*" - "*"# SKIP "*)
			line=${line#* - }
			ML_SKIPPED=$((ML_SKIPPED + 1))
			echo "skip - SAN $engine: ${line% \# SKIP *}: ${line##* \# SKIP }" ;;
		"ok "[0-9]*" - "*) ok "SAN $engine: ${line#* - }" ;;
		"not ok "[0-9]*" - "*) ML_FAILED=$((ML_FAILED + 1)); echo "not ok - SAN $engine: ${line#* - }" ;;
		"# === "*": "*) note "SAN $engine: ${line#\# === }" ;;	# per-file counts
		*"ERROR: AddressSanitizer"* | *"runtime error:"* | *"LeakSanitizer"*)
			fail "SAN $engine: sanitizer output in the test log" "$line" ;;
		esac
	done <"$out"
	note "SAN $engine: run.sh exit $rc: $(tail -n 1 "$out")"
}

stage user t_wire.py t_limits.py t_lifecycle.py t_stats.py
stage kernel t_lifecycle.py

reports=$(find "$logs" -type f | sort)
if [ -z "$reports" ]; then
	ok "no sanitizer reports (ASan, LSan, UBSan)"
else
	n=0
	for r in $reports; do	# the first three in full, the rest by name
		n=$((n + 1))
		note "--- $r"
		[ $n -le 3 ] && sed 's/^/# /' "$r" | head -n 60
	done
	fail "sanitizer reports" "$(echo "$reports" | wc -l) report file(s); first: $(grep -m1 -E 'ERROR|runtime error|SUMMARY' $reports | head -n 1)"
fi
ml_finish
