#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 300
# t_fuzz.sh - every libFuzzer harness (tests/fuzz/fuzz_*.c, built by `make
# fuzz-build`, which `make test` runs) for FUZZ_TEST_SECONDS (default 10)
# from its seeds in tests/fuzz/corpus/NAME/ (the crash inputs of fixed bugs
# among them), new inputs into a temporary directory: "ok" per harness that
# ran its time without a crash, its executions as a note. Longer runs:
# `make fuzz FUZZ_SECONDS=...` (README "Development").
. "$(dirname "$0")/../e2e/lib.sh"
ml_init t_fuzz
secs=${FUZZ_TEST_SECONDS:-10}
FUZZ_CORPUS=$ML_TMP/corpus bash "$ML_TESTS/fuzz/run.sh" "$secs" >"$ML_TMP/out" 2>&1
rc=$?
while IFS= read -r line; do
	case $line in
	"ok - "*)
		ML_PASSED=$((ML_PASSED + 1))
		echo "ok - ${line#ok - }" | sed 's/: [0-9]* executions.*//'
		note "${line#ok - }" ;;
	"not ok - "*) ML_FAILED=$((ML_FAILED + 1)); echo "$line" ;;
	*) echo "$line" ;;
	esac
done <"$ML_TMP/out"
if [ "$rc" -ne 0 ] && [ "$ML_FAILED" -eq 0 ]; then
	fail "fuzz" "tests/fuzz/run.sh exited $rc"
fi
if [ -d "$ML_TMP/corpus/../crash" ] && [ -n "$(ls -A "$ML_TMP/corpus/../crash" 2>/dev/null)" ]; then
	note "crash inputs (copied to .output/fuzz/crash/): $(ls "$ML_TMP/corpus/../crash" | tr '\n' ' ')"
	mkdir -p "$ML_TOP/.output/fuzz/crash" && cp "$ML_TMP"/corpus/../crash/* "$ML_TOP/.output/fuzz/crash/"
fi
ml_finish
