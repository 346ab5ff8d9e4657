#!/bin/bash
# The XDP guard's BPF_PROG_TEST_RUN table tests of bpf/guard.bpf.c (crafted
# IPv4/IPv6 frames, verdicts, counters); root. Its token bucket's pure C
# test is in t_unit.sh.
# mlt-timeout: 60
top=$(cd "$(dirname "$0")/../.." && pwd)
rc=0
for t in guard_table; do
	bin=$top/.output/tests/$t
	if [ ! -x "$bin" ]; then
		echo "not ok - $t not built (make tests-build)"
		rc=1
		continue
	fi
	"$bin" 2>&1 | grep -v '^libbpf: elf: skipping unrecognized data section' || rc=1
	[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
done
exit $rc
