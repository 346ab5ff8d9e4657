#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""
matrix.py - `make interop`: every MTA x {nothing listening, rcpt, rfc7504} x
{kernel, user}, one message each (tests/interop/interop.py), then
docs/interop.md and the README's "Why rcpt is the default" table, both
generated from this run by report.py.

Usage: tests/interop/matrix.py [--window SECS] [--mtas "LIST"] [--no-docs]
  --window   how long each run watches for the DSN (default 15)
  --mtas     a subset (default: all of interop.MTAS)
  --no-docs  print the results only (.output/interop/results.tsv)
Prints the same ok / not ok lines as the tests: a run that fails to run is
"not ok"; an MTA that defers is a result, not a failure.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, HERE)
import interop
from mltest import PREFIX, TOP, Env, Suite

t = Suite("interop-matrix")
ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--window", type=int, default=15)
ap.add_argument("--mtas", default=" ".join(interop.MTAS))
ap.add_argument("--no-docs", action="store_true")
a = ap.parse_args()
mtas = a.mtas.split()


def clean(s):
    return (s or "").replace("\t", " ").replace("\n", " ")[:600]


def main(env, tmp):
    out = os.path.join(TOP, ".output", "interop")
    os.makedirs(os.path.join(out, "runs"), exist_ok=True)
    tsv = os.path.join(out, "results.tsv")
    with open(tsv, "w") as f:
        f.write("mta\tversion\tengine\tdialect\toutcome\tsecs\treason\tsoftbounce\tstatus\t"
                "diagnostic\tsession\twhy\n")
    good, log = interop.roots(mtas)
    if not good:
        t.fail("matrix: MTA roots", "tests/interop/root.sh failed: %s" % " | ".join(log[-20:]))
        return
    x = 150
    for mta in mtas:
        for engine, dialect in (("none", "-"), ("kernel", "rcpt"), ("user", "rcpt"),
                                ("kernel", "rfc7504"), ("user", "rfc7504")):
            x += 1
            name = "matrix/%s/%s/%s" % (mta, engine, dialect)
            r = interop.run(env, mta, engine, "rcpt" if dialect == "-" else dialect,
                            a.window, x, tmp)
            if r.outcome == "error":
                t.fail(name, r.why)
            else:
                t.ok(" ".join(w for w in ("%s: %s" % (name, r.outcome),
                                          "in %s s" % r.secs if r.secs else "",
                                          "Sisimai %s/%s" % (r.reason, r.soft) if r.reason
                                          else "") if w))
            keep = os.path.join(out, "runs", "%s-%s-%s" % (mta, engine, dialect))
            shutil.rmtree(keep, ignore_errors=True)
            os.makedirs(keep)
            for f in ("transcript", "mailless.log", "dsn", "syslog", "queue", "classify",
                      "wire.pcap"):
                p = os.path.join(r.dir, f)
                if os.path.isdir(p):
                    shutil.copytree(p, os.path.join(keep, f))
                elif os.path.exists(p):
                    shutil.copy(p, keep)
            with open(tsv, "a") as f:
                f.write("\t".join([mta, clean(r.version), engine, dialect, r.outcome,
                                   r.secs or "-", r.reason or "-", r.soft or "-",
                                   r.status or "-", clean(r.diag), clean(r.session),
                                   clean(r.why)]) + "\n")
            shutil.rmtree(r.dir, ignore_errors=True)
    t.note("results: %s; each run's transcript, DSN, MTA log and queue: %s/runs/" % (tsv, out))
    if not a.no_docs:
        cmd = "make interop" if mtas == list(interop.MTAS) else \
            'tests/interop/matrix.py --mtas "%s"' % " ".join(mtas)
        sisimai = subprocess.run(["perl", "-MSisimai", "-e", "print $Sisimai::VERSION"],
                                 stdout=subprocess.PIPE, text=True).stdout
        p = subprocess.run(["python3", os.path.join(HERE, "report.py"), tsv,
                            os.path.join(TOP, "docs", "interop.md"),
                            os.path.join(TOP, "README.md"), cmd, str(a.window), sisimai])
        if p.returncode == 0:
            t.ok("matrix: docs/interop.md and README.md written")
        else:
            t.fail("matrix: docs/interop.md and README.md written", "report.py failed")


tmp = tempfile.mkdtemp(prefix=PREFIX + ".")
try:
    with Env(t) as env:
        main(env, tmp)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(t.finish())
