#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 120
"""
t_swaks.py - a real SMTP client nobody here wrote: swaks, run inside the
client namespace against each engine and dialect, IPv4 and IPv6. The whole
transcript must match (220, 250 with ENHANCEDSTATUSCODES, 250, 521 at RCPT,
clean 221; or 521 at the banner in the rfc7504 dialect; the texts from
mltest.py's TEXTS), and so must swaks's exit status (24: RCPT rejected, 21:
banner rejected).
"""
import difflib
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import ALL_ENGINES, Env, StartError, Suite, engines, reply_text

t = Suite("t_swaks")


def reply(prefix, dialect, host, kind):
    """One reply of the wire table as swaks prints it: every line after
    prefix ("<-  " received, "<** " a rejection)."""
    text = reply_text(dialect, host, kind).decode().replace("\r", "")
    return [prefix + l for l in text.splitlines()]


def expected(dialect, addr, host):
    lines = ["=== Trying %s:25..." % addr, "=== Connected to %s." % addr]
    if dialect == "rcpt":
        lines += reply("<-  ", "rcpt", host, "greet")
        lines += [" -> EHLO client.test"] + reply("<-  ", "rcpt", host, "ehlo")
        lines += [" -> MAIL FROM:<a@b>"] + reply("<-  ", "rcpt", host, "ok")
        lines += [" -> RCPT TO:<x@y>"] + reply("<** ", "rcpt", host, "reject")
        lines += [" -> QUIT"] + reply("<-  ", "rcpt", host, "quit")
    else:
        lines += reply("<** ", "rfc7504", host, "greet")
        lines += [" -> QUIT"] + reply("<-  ", "rfc7504", host, "quit")
    return lines + ["=== Connection closed with remote host."]


def transcript(pair, dialect, addr, host):
    p = subprocess.run(["timeout", "30", "nsenter", "--net=/run/netns/%s" % pair.cli, "swaks",
                        "--server", addr, "--port", "25", "--to", "x@y", "--from", "a@b",
                        "--helo", "client.test", "--timeout", "10"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       stdin=subprocess.DEVNULL)
    want = expected(dialect, addr, host)
    got = p.stdout.splitlines()
    if got != want:
        d = list(difflib.unified_diff(want, got, "expected", "got", lineterm="", n=1))
        raise AssertionError("swaks transcript differs (- expected, + got): %s"
                             % " | ".join(d[:20]))
    want_rc = 24 if dialect == "rcpt" else 21
    assert p.returncode == want_rc, "swaks exit status %d, expected %d" % (p.returncode,
                                                                          want_rc)


def main(env):
    if not shutil.which("swaks"):
        t.skip("swaks", "swaks is not installed (apt-get install swaks)")
        return
    v = subprocess.run(["swaks", "--version"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True).stdout.splitlines()
    t.note(v[0] if v else "swaks --version printed nothing")
    x = 50
    for engine in ALL_ENGINES:
        if engine not in engines():
            t.skip("swaks/%s" % engine, "engine excluded by MLT_ENGINES")
            continue
        for dialect in ("rcpt", "rfc7504"):
            x += 1
            name = "swaks/%s/%s" % (engine, dialect)
            host = "%s-%s.swaks.test" % (engine[0], dialect)
            pair = env.pair(x=x, tag=engine[0] + dialect[:2])
            try:
                srv = env.server(pair, engine=engine, host=host, dialect=dialect,
                                 tag="%s-%s" % (engine, dialect))
            except StartError as e:
                t.fail("%s: server starts" % name, str(e))
                continue
            for addr, fam in ((pair.v4, "IPv4"), (pair.v6, "IPv6")):
                t.run("%s: transcript (%s)" % (name, fam), transcript, pair, dialect, addr,
                      host)

            def stops():
                rc = srv.stop()
                assert rc == 0, "exit status %s: %s" % (rc, srv.log_tail(3))
            t.run("%s: exit status 0 on SIGTERM" % name, stops)


with Env(t) as env:
    main(env)
sys.exit(t.finish())
