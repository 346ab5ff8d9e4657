#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 90
"""
t_table.py - the BPF_PROG_TEST_RUN table tests of the XDP programs, each a
C program that loads the real object through its skeleton: crafted frames
in, verdicts, frames out, counters (root, as loading needs it).
  .output/tests/guard_table    bpf/guard.bpf.c (the token bucket's pure C
                               test is in tests/unit/t_unit.sh)
  .output/tests/xdpresp_table  bpf/xdpresp.bpf.h, the XDP responder, run
                               inside the guard's program
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import TOP, Suite

t = Suite("t_table")
for name in ("guard_table", "xdpresp_table"):
    binary = os.path.join(TOP, ".output", "tests", name)
    if not os.access(binary, os.X_OK):
        t.fail(name, "not built (make tests-build)")
        continue
    p = subprocess.run([binary], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    failed = t.failed
    for line in p.stdout.splitlines():
        # libbpf's note about the .maps-less sections the skeletons carry
        if "libbpf: elf: skipping unrecognized data section" in line:
            continue
        if line.startswith("ok - "):
            t.ok(line[5:])
        elif line.startswith("not ok - "):
            case, _, why = line[9:].partition(": ")
            t.fail(case, why)
        else:
            print(line if line.startswith("#") else "# " + line, flush=True)
    if p.returncode != 0 and t.failed == failed:
        t.fail(name, "exit status %d without a failure line" % p.returncode)
sys.exit(t.finish())
