#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 60
"""
t_unit_guard.py - the XDP guard's BPF_PROG_TEST_RUN table tests of
bpf/guard.bpf.c (.output/tests/guard_table: crafted IPv4/IPv6 frames,
verdicts, counters); root, as loading the program needs it. Its token
bucket's pure C test is in tests/unit/t_unit.sh.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import TOP, Suite

t = Suite("t_unit_guard")
binary = os.path.join(TOP, ".output", "tests", "guard_table")
if not os.access(binary, os.X_OK):
    t.fail("guard_table", "not built (make tests-build)")
else:
    p = subprocess.run([binary], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in p.stdout.splitlines():
        # libbpf's note about the .maps-less sections the skeleton carries
        if "libbpf: elf: skipping unrecognized data section" in line:
            continue
        if line.startswith("ok - "):
            t.ok(line[5:])
        elif line.startswith("not ok - "):
            name, _, why = line[9:].partition(": ")
            t.fail(name, why)
        else:
            print(line if line.startswith("#") else "# " + line, flush=True)
    if p.returncode != 0 and not t.failed:
        t.fail("guard_table", "exit status %d without a failure line" % p.returncode)
sys.exit(t.finish())
