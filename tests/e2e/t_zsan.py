#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 900
"""
t_zsan.py - the controller under AddressSanitizer, LeakSanitizer and UBSan.

Runs, with MAILLESS pointing at the sanitizer build (./mailless-san, from
`make SAN=1`; `make test` builds it; MAILLESS_SAN overrides the path):
  MLT_ENGINES=user    t_wire.py t_limits.py t_lifecycle.py t_stats.py
  MLT_ENGINES=kernel  t_lifecycle.py
through tests/run.sh, reporting their results here as "SAN <engine>: ...".
Every sanitizer report (heap/stack errors, leaks at exit, "runtime error:")
goes to a file under a fresh log_path directory; any file there, or any such
line in the tests' output, is a failure that shows the report. Builds
nothing itself. Named t_z* so that it runs last.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import TOP, Suite

t = Suite("t_zsan")
SAN_BIN = os.environ.get("MAILLESS_SAN", os.path.join(TOP, "mailless-san"))
# run.sh's TAP: "ok N - NAME", "not ok N - NAME: why", "ok N - NAME # SKIP
# reason", "# === FILE: counts".
TAP = re.compile(r"^(ok|not ok) [0-9]+ - (.*?)(?: # SKIP (.*))?$")
SAN_LINE = re.compile(r"ERROR: AddressSanitizer|runtime error:|LeakSanitizer")


def stage(env, engine, files):
    """The files through run.sh with the sanitizer build."""
    t.note("SAN %s: tests/run.sh %s" % (engine, " ".join(files)))
    p = subprocess.run(["bash", os.path.join(TOP, "tests", "run.sh")] + files,
                       env=dict(env, MAILLESS=SAN_BIN, MLT_ENGINES=engine),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       stdin=subprocess.DEVNULL)
    out = p.stdout.splitlines()
    for line in out:
        m = TAP.match(line)
        if m and m.group(3) is not None:
            if "by MLT_ENGINES" in m.group(3):  # chosen here
                t.note("SAN %s: %s: %s" % (engine, m.group(2), m.group(3)))
            else:
                t.skip("SAN %s: %s" % (engine, m.group(2)), m.group(3))
        elif m and m.group(1) == "ok":
            t.ok("SAN %s: %s" % (engine, m.group(2)))
        elif m:
            name, _, why = m.group(2).partition(": ")
            t.fail("SAN %s: %s" % (engine, name), why)
        elif line.startswith("# === ") and ": " in line:  # per-file counts
            t.note("SAN %s: %s" % (engine, line[6:]))
        elif SAN_LINE.search(line):
            t.fail("SAN %s: sanitizer output in the test log" % engine, line)
    t.note("SAN %s: run.sh exit %d: %s" % (engine, p.returncode, out[-1] if out else ""))


def main(logs):
    if not os.access(SAN_BIN, os.X_OK):
        t.fail("sanitizer build", "%s missing: build it with 'make SAN=1' (make test does)"
               % SAN_BIN)
        return
    libs = subprocess.run(["readelf", "-dW", SAN_BIN], stdout=subprocess.PIPE, text=True,
                          stderr=subprocess.DEVNULL).stdout
    if "libasan" not in libs or "libubsan" not in libs:
        t.fail("sanitizer build", "%s does not link libasan and libubsan: rebuild with "
               "'make SAN=1'" % SAN_BIN)
        return
    t.ok("sanitizer build: %s links libasan and libubsan" % os.path.basename(SAN_BIN))
    # halt_on_error / abort: the first report ends mailless, which the test
    # then sees as well (exit status, missing replies); leaks are checked at exit.
    env = dict(os.environ,
               ASAN_OPTIONS="log_path=%s/asan:detect_leaks=1:halt_on_error=1:"
                            "detect_stack_use_after_return=1:strict_string_checks=1" % logs,
               UBSAN_OPTIONS="log_path=%s/ubsan:print_stacktrace=1:halt_on_error=1" % logs,
               LSAN_OPTIONS="log_path=%s/lsan" % logs)
    stage(env, "user", ["t_wire.py", "t_limits.py", "t_lifecycle.py", "t_stats.py"])
    stage(env, "kernel", ["t_lifecycle.py"])
    reports = sorted(os.path.join(d, f) for d, _, fs in os.walk(logs) for f in fs)
    if not reports:
        t.ok("no sanitizer reports (ASan, LSan, UBSan)")
        return
    first = ""
    for i, r in enumerate(reports):  # the first three in full, the rest by name
        t.note("--- %s" % r)
        with open(r, errors="replace") as f:
            text = f.read().splitlines()
        if i < 3:
            for l in text[:60]:
                print("# " + l)
        first = first or next((l for l in text if re.search("ERROR|runtime error|SUMMARY", l)),
                              "")
    t.fail("sanitizer reports", "%d report file(s); first: %s" % (len(reports), first))


logs = tempfile.mkdtemp(prefix=os.environ.get("MLT_PREFIX", "mlt") + ".san.")
try:
    main(logs)
finally:
    shutil.rmtree(logs, ignore_errors=True)
sys.exit(t.finish())
