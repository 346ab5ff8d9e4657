#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 900
"""
t_interop.py - every MTA in Debian that queues and bounces mail, each as
Debian's package installs it, sends one message to mailless in its default
configuration (dialect rcpt), in both engines and against the XDP responder
(--engine xdp) (tests/interop/interop.py).
Each run must meet interop.expect(): a bounce within 2 s that Sisimai reads
as a hard bounce, reason notaccept (dma and nullmailer: what they do
instead); the transcript (tcpdump on the receiver's veth) must show the
MTA's RCPT answered 521 5.3.2; and mailless's session line must name the
MTA's address and the envelope. `make interop` runs the whole matrix
(docs/interop.md).

The MTAs' roots (tests/interop/root.sh) are built when missing: about 1 GB
and 1 minute each on first use, cached in /var/cache/mailless/interop.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, HERE)
import interop
from interop import FROM, MX, RCPT, TARGET_SECS
from mltest import ALL_ENGINES, PREFIX, Env, Suite, engines

t = Suite("t_interop")


def read(path, limit=None):
    try:
        with open(path, errors="replace") as f:
            return f.read()[:limit]
    except OSError:
        return ""


def check(mta, engine, r, want):
    name = "interop/%s/%s" % (mta, engine)
    want_outcome, want_reason, want_soft = want
    got = "%s in %s s, Sisimai: %s softbounce %s status %s (%s); %s" % (
        r.outcome, r.secs or "?", r.reason or "-", r.soft or "-", r.status or "-", r.diag,
        r.why)
    t.note("%s: %s: %s" % (name, r.version, got))
    if r.outcome == want_outcome and float(r.secs or 99) <= TARGET_SECS:
        t.ok("%s: %s within %d s" % (name, want_outcome, TARGET_SECS))
    else:
        t.fail("%s: %s within %d s" % (name, want_outcome, TARGET_SECS), got)
    if want_outcome == "bounced":
        if r.reason == want_reason and (r.soft or "-") == want_soft:
            t.ok("%s: Sisimai reads reason %s, softbounce %s" % (name, want_reason, want_soft))
        else:
            t.fail("%s: Sisimai reads reason %s, softbounce %s" % (name, want_reason,
                                                                   want_soft), got)
    if mta == "dma":
        # What the reader of dma's bounce has: mailless's line, quoted.
        dsn = os.path.join(r.dir, "dsn")
        text = read(dsn) if os.path.isfile(dsn) else ""
        if "521 5.3.2 %s does not accept mail" % MX in text:
            t.ok("%s: the bounce quotes the 521 line" % name)
        else:
            t.fail("%s: the bounce quotes the 521 line" % name, text[:1200])
    if mta == "nullmailer":
        log = read(os.path.join(r.dir, "syslog"))
        if "Not generating double bounce" in log:
            t.ok("%s: no double bounce" % name)
        else:
            t.fail("%s: no double bounce" % name, " | ".join(log.splitlines()[-5:]))
    # The wire: the MTA's RCPT (sendmail writes "RCPT To:"), answered 521 5.3.2.
    tr = read(os.path.join(r.dir, "transcript")).splitlines()
    answered = any(l.lower() == ("C: RCPT TO:<%s>" % RCPT).lower() and i + 1 < len(tr) and
                   tr[i + 1] == "S: 521 5.3.2 %s does not accept mail" % MX
                   for i, l in enumerate(tr))
    if answered:
        t.ok("%s: the transcript has RCPT answered 521 5.3.2" % name)
    else:
        t.fail("%s: the transcript has RCPT answered 521 5.3.2" % name,
               "\n".join(tr)[:1200])
    # Who misaddressed mail: the MTA's address and the envelope.
    if re.search(r' client=%s:.* from="<%s>" rcpt="<%s>" ' % (re.escape(r.cli), re.escape(FROM),
                                                           re.escape(RCPT)), r.session):
        t.ok("%s: the session line names the sender and the envelope" % name)
    else:
        t.fail("%s: the session line names the sender and the envelope" % name, "%s: %s" % (
            r.session or "no session line from %s" % r.cli,
            " | ".join(read(os.path.join(r.dir, "mailless.log")).splitlines()[-3:])))


def main(env, tmp):
    missing = [c for c in ("mmdebstrap", "dnsmasq", "perl", "tcpdump") if not shutil.which(c)]
    if subprocess.run(["perl", "-MSisimai", "-e1"], stderr=subprocess.DEVNULL).returncode:
        missing.append("libsisimai-perl")
    if missing:
        t.fail("interop: setup", "missing: %s (make deps-test installs them)" % " ".join(missing))
        return
    sisimai = subprocess.run(["perl", "-MSisimai", "-e", "print $Sisimai::VERSION"],
                             stdout=subprocess.PIPE, text=True).stdout
    t.note("Sisimai %s" % sisimai)
    m = re.match(r"v?(\d+)", sisimai)
    major = int(m.group(1)) if m else 0
    mtas = os.environ.get("MLT_INTEROP_MTAS", " ".join(interop.MTAS)).split()
    t0 = time.monotonic()
    good, log = interop.roots(mtas)
    if good:
        t.note("MTA roots ready in %d s %s" % (time.monotonic() - t0, " ".join(log)))
    else:
        t.fail("interop: MTA roots", " | ".join(log[-20:]))
    x = 150
    for mta in mtas:
        want = interop.expect(mta, major)
        # and the XDP responder (--engine xdp), whatever MLT_ENGINES says of
        # the socket engines
        for engine in ALL_ENGINES + ("xdp",):
            name = "interop/%s/%s" % (mta, engine)
            if engine != "xdp" and engine not in engines():
                t.skip(name, "engine excluded by MLT_ENGINES")
                continue
            x += 1
            r = interop.run(env, mta, engine, "rcpt", 10, x, tmp)
            if r.outcome == "error":
                t.fail("%s: run" % name, r.why)
                continue
            check(mta, engine, r, want)


tmp = tempfile.mkdtemp(prefix=PREFIX + ".")
try:
    with Env(t) as env:
        main(env, tmp)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(t.finish())
