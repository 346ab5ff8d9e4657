#!/bin/bash
# Pure C unit tests of include/proto.h (the framing both engines run) and of
# user/srctab.c (open sessions per source, for max-sessions-per-source).
top=$(cd "$(dirname "$0")/.." && pwd)
rc=0
for t in unit_proto unit_srctab; do
	bin=$top/.output/tests/$t
	if [ ! -x "$bin" ]; then
		echo "not ok - $t not built (make tests-build)"
		rc=1
		continue
	fi
	"$bin" || rc=1
done
exit $rc
