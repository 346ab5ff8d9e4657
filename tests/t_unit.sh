#!/bin/bash
# Pure C unit tests of include/proto.h (the framing both engines run).
top=$(cd "$(dirname "$0")/.." && pwd)
bin=$top/.output/tests/unit_proto
[ -x "$bin" ] || { echo "not ok - unit_proto not built (make tests-build)"; exit 1; }
"$bin"
