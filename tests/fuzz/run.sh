#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# run.sh SECONDS [NAME...] - run each built harness .output/fuzz/fuzz_NAME
# (all of tests/fuzz/fuzz_*.c, or the NAMEs given) for SECONDS with
# libFuzzer's -max_total_time, seeds from tests/fuzz/corpus/NAME/, new inputs
# into $FUZZ_CORPUS/NAME/ (default .output/fuzz/corpus), crashes into
# $FUZZ_CORPUS/../crash/. Prints TAP-ish lines, one per harness, with its
# executions, exec/s and crashes, and a total; exit 1 if any crashed.
# `make fuzz` calls it with FUZZ_SECONDS; tests/fuzz/t_fuzz.py with 10.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-60}
shift
corp=${FUZZ_CORPUS:-$top/.output/fuzz/corpus}
crash=$corp/../crash
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
	for f in "$top"/tests/fuzz/fuzz_*.c; do
		[ -e "$f" ] || continue
		n=$(basename "$f" .c)
		names+=("${n#fuzz_}")
	done
fi
mkdir -p "$crash"
tot_exec=0 tot_crash=0 bad=0
for n in "${names[@]}"; do
	bin=$top/.output/fuzz/fuzz_$n
	if [ ! -x "$bin" ]; then
		echo "not ok - fuzz $n: $bin not built (make fuzz-build)"
		bad=1
		continue
	fi
	mkdir -p "$corp/$n"
	seeds=$top/tests/fuzz/corpus/$n
	[ -d "$seeds" ] || seeds=
	log=$(mktemp /tmp/fuzz-$n.XXXXXX)
	"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
		-artifact_prefix="$crash/$n-" "$corp/$n" ${seeds:+"$seeds"} >"$log" 2>&1 </dev/null
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
	cr=$(grep -c -E '^==[0-9]+==ERROR|^SUMMARY: |deadly signal|Test unit written' "$log")
	execs=${execs:-0}
	tot_exec=$((tot_exec + execs))
	if [ "$rc" -eq 0 ]; then
		echo "ok - fuzz $n: $execs executions in ${secs}s (${rate:-?}/s), 0 crashes, corpus $(ls "$corp/$n" | wc -l) files"
	else
		tot_crash=$((tot_crash + 1))
		bad=1
		echo "not ok - fuzz $n: exit $rc after $execs executions: $(grep -m1 -E 'ERROR|fuzz_[a-z]*:|runtime error' "$log" | cut -c1-300); input: $(sed -n 's/.*Test unit written to //p' "$log" | head -n1)"
		grep -E -A14 '^==[0-9]+==ERROR|fuzz_[a-z]*: |runtime error' "$log" |
			grep -v -E 'fuzzer::|__sanitizer_print|libc|raise|abort' | head -n 24 | sed 's/^/# /'
	fi
	rm -f "$log"
done
echo "# fuzz total: $tot_exec executions, $tot_crash crashing harness(es), ${#names[@]} harnesses x ${secs}s"
exit $bad
