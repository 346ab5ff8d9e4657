#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 300
# mlt-root: no
"""
t_fuzz.py - every libFuzzer harness (tests/fuzz/fuzz_*.c, built by `make
fuzz-build`, which `make test` runs) for FUZZ_TEST_SECONDS (default 10) from
its seeds in tests/fuzz/corpus/NAME/ (the crash inputs of fixed bugs among
them), new inputs into a temporary directory: "ok" per harness that ran its
time without a crash, its executions as a note; crash inputs are copied to
.output/fuzz/crash/. Longer runs: `make fuzz FUZZ_SECONDS=...` (README
"Development"). No root: the harnesses run the parsers in this process.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from mltest import TOP, Suite

t = Suite("t_fuzz")
secs = os.environ.get("FUZZ_TEST_SECONDS", "10")
tmp = tempfile.mkdtemp(prefix=os.environ.get("MLT_PREFIX", "mlt") + ".")
try:
    corpus = os.path.join(tmp, "corpus")
    p = subprocess.run(["bash", os.path.join(TOP, "tests", "fuzz", "run.sh"), secs],
                       env=dict(os.environ, FUZZ_CORPUS=corpus), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    reported_failure = False
    for line in p.stdout.splitlines():
        if line.startswith("ok - "):
            # The name without the numbers, which change from run to run.
            t.ok(re.sub(r": [0-9]* executions.*", "", line[5:]))
            t.note(line[5:])
        elif line.startswith("not ok - "):
            name, _, why = line[9:].partition(": ")
            t.fail(name, why)
            reported_failure = True
        else:
            print(line, flush=True)
    if p.returncode != 0 and not reported_failure:
        t.fail("fuzz", "tests/fuzz/run.sh exited %d" % p.returncode)
    crash = os.path.join(tmp, "crash")
    if os.path.isdir(crash) and os.listdir(crash):
        keep = os.path.join(TOP, ".output", "fuzz", "crash")
        os.makedirs(keep, exist_ok=True)
        for f in os.listdir(crash):
            shutil.copy(os.path.join(crash, f), keep)
        t.note("crash inputs (copied to .output/fuzz/crash/): %s" % " ".join(os.listdir(crash)))
finally:
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(t.finish())
