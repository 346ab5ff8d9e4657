#!/bin/bash
# The C unit tests (make unit, make check): include/proto.h (the framing both
# engines run), user/srctab.c (open sessions per source), include/bucket.h
# (the guard's SYN token bucket, with controlled time), user/options.c and
# config.c (the option table and where settings come from).
# mlt-root: no
top=$(cd "$(dirname "$0")/../.." && pwd)
rc=0
for t in unit_proto unit_srctab unit_bucket unit_options; do
	bin=$top/.output/tests/$t
	if [ ! -x "$bin" ]; then
		echo "not ok - $t not built (make unit)"
		rc=1
		continue
	fi
	"$bin" || rc=1
done
exit $rc
