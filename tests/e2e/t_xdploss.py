#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 120
"""
t_xdploss.py - engine xdp under loss: a test-only XDP program on the
client's veth (tests/e2e/bpf/xdpdrop.bpf.c, loaded with bpftool) drops a
chosen segment of the responder's once, and an smtplib session must still
complete, within 5 s, with the responder's own resend counted: a lost reply
(the client sends its command again: the responder answers it again from
the queued opcode) and the lost 221 with its FIN (the client sends QUIT
again), and a lost greeting (the client sends nothing until it arrives:
the controller's sweep makes the program send it again after 1 s). Then
the responder in native mode, byte-exact (wirecheck): native XDP_TX on
veth arrives because the peer has a program, the drop program. Last, a SYN
flood in native mode (tools/synflood, 50,000 SYNs a second for a second):
one SYN-ACK per SYN and nothing else, no bad cookie, and no state: the
responder's two LRU maps hold as many entries after it as before.
"""
import json
import os
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import BPFFS, MAILLESS, PREFIX, TOP, Env, StartError, Suite, pinned_entries

t = Suite("t_xdploss")
DROP = os.path.join(TOP, ".output", "tests", "xdpdrop.bpf.o")
PROG = "%s/%s-xdpdrop" % (BPFFS, PREFIX)
MAPS = "%s/%s-xdpdrop-maps" % (BPFFS, PREFIX)
HOST = "mx.loss.test"
SYNFLOOD = os.path.join(TOP, ".output", "tools", "synflood")


def run(*cmd, ns=None, timeout=60):
    if ns:
        cmd = ("nsenter", "--net=/run/netns/" + ns) + cmd
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)


def set_drop(prefix, count):
    """Drop the next `count` segments from port 25 starting with prefix
    (4 octets; b"" for: with FIN); the dropped count starts again at 0."""
    word = prefix if prefix else b"\0\0\0\0"
    val = word + struct.pack("<II", count, 0)
    r = run("bpftool", "map", "update", "pinned", MAPS + "/drop_cfg", "key", "0", "0", "0", "0",
            "value", *[str(b) for b in val])
    assert r.returncode == 0, r.stdout


def dropped():
    r = run("bpftool", "-j", "map", "lookup", "pinned", MAPS + "/drop_cfg", "key", "0", "0",
            "0", "0")
    v = json.loads(r.stdout)
    raw = bytes(int(b, 16) for b in v["value"])
    return struct.unpack("<4sII", raw)[2]


def session(pair):
    """EHLO, MAIL, RCPT, QUIT with smtplib (10 s timeout); seconds taken."""
    code = ("import smtplib,sys,time\n"
            "t0=time.monotonic()\n"
            "s=smtplib.SMTP(sys.argv[1],25,timeout=10)\n"
            "s.ehlo('c.test'); s.mail('a@example.org')\n"
            "c,m=s.rcpt('b@example.net'); assert c==521,(c,m)\n"
            "c,m=s.docmd('QUIT'); assert c==221,(c,m)\n"
            "print('%.3f' % (time.monotonic()-t0))\n")
    r = run(sys.executable, "-c", code, pair.v4, ns=pair.cli, timeout=30)
    assert r.returncode == 0, "smtplib: %s" % r.stdout[-800:]
    return float(r.stdout.split()[-1])


def xdp_stat(srv, name):
    r = run(MAILLESS, "stats", "-j", "--pin-dir", srv.pin_dir)
    return json.loads(r.stdout)["xdp"][name]



def resent(srv):
    return xdp_stat(srv, "responder_resent")


def greet_resent(srv):
    return xdp_stat(srv, "responder_greet_resent")


def main(env):
    if not os.path.exists(DROP):
        t.fail("xdp loss: setup", "%s not built (make tests-build)" % DROP)
        return
    pair = env.pair(tag="xl")
    try:
        srv = env.server(pair, engine="xdp", host=HOST, family="4",
                         extra=["--xdp", "veth0", "--xdp-mode", "skb", "--syn-rate", "0"])
    except StartError as e:
        t.fail("xdp loss: starts", str(e))
        return
    r = run("bpftool", "prog", "load", DROP, PROG, "type", "xdp", "pinmaps", MAPS)
    if r.returncode:
        t.fail("xdp loss: the drop program loads", r.stdout)
        return
    # Native: it also turns on NAPI on the client's veth, which the server's
    # side needs to send with native XDP (the greeting's resend does).
    r = run("bpftool", "net", "attach", "xdpdrv", "pinned", PROG, "dev", "veth1",
            ns=pair.cli)
    if r.returncode:
        t.fail("xdp loss: the drop program attaches", r.stdout)
        return
    t.ok("xdp loss: a drop program on the client's veth")

    # First, before any session has woken the controller's loop: its
    # first tick must not wait for an event (it did: the greeting of a
    # server's first session was never sent again).
    def greeting():
        set_drop(b"220 ", 1)
        r0 = greet_resent(srv)
        secs = session(pair)
        assert dropped() == 1, "nothing was dropped: the case tested nothing"
        assert 0.9 < secs < 5, "%.3f s (the resend waits 1 s)" % secs
        assert greet_resent(srv) == r0 + 1, "greetings resent: %d, want %d" % (
            greet_resent(srv), r0 + 1)
        t.note("a lost greeting: completed in %.3f s" % secs)
    t.run("xdp loss: a lost greeting is sent again after 1 s: the session completes within "
          "5 s", greeting)

    def clean():
        secs = session(pair)
        assert secs < 2, "%.3f s without loss" % secs
        t.note("no loss: %.3f s" % secs)
    t.run("xdp loss: a session without loss", clean)

    for what, prefix in (("a lost reply (MAIL's 250)", b"250 "),
                         ("the lost 221 and FIN", b"")):
        def lossy():
            res0 = resent(srv)
            set_drop(prefix, 1)  # its dropped count starts at 0
            secs = session(pair)
            assert dropped() == 1, "nothing was dropped: the case tested nothing"
            assert secs < 5, "%.3f s" % secs
            assert resent(srv) > res0, "the responder counted no octets sent again"
            t.note("%s: completed in %.3f s" % (what, secs))
        t.run("xdp loss: %s: the session still completes within 5 s" % what, lossy)

    # Native mode: XDP_TX on veth arrives where the peer has a program, as
    # the drop program (dropping nothing now) is.
    srv.stop()
    try:
        nat = env.server(pair, engine="xdp", host=HOST, family="4", tag="native",
                         extra=["--xdp", "veth0", "--xdp-mode", "native", "--syn-rate", "0"])
    except StartError as e:
        t.fail("xdp native: starts", str(e))
        return

    def native():
        assert any("native mode" in l for l in nat.log), nat.log_tail()
        r = run(os.path.join(TOP, ".output", "tests", "wirecheck"), pair.v4, "25", HOST, "rcpt",
                "xdp", ns=pair.cli, timeout=200)
        bad = [l for l in r.stdout.splitlines() if l.startswith("not ok")]
        assert r.returncode == 0 and not bad, r.stdout[-2000:]
        # Every session has ended, at the client's last segment: none waits
        # for a retransmission (200 ms at least) to be taken.
        for _ in range(10):
            n = pinned_entries(nat.pin_dir, "xr_flows")
            if not n:
                break
            time.sleep(0.01)
        assert n == 0, "%d flows still open 0.1 s after wirecheck" % n
    t.run("xdp native: wirecheck byte-exact in native mode (a program on the peer), and no "
          "flow left open", native)

    def synflood():
        # synflood attaches its own counter on veth1: the drop program goes.
        r = run("ip", "link", "set", "dev", "veth1", "xdpdrv", "off", ns=pair.cli)
        assert r.returncode == 0, r.stdout
        mac = json.loads(run("ip", "-j", "link", "show", "veth0", ns=pair.srv).stdout)[0]["address"]
        st0 = {k: xdp_stat(nat, k) for k in ("responder_syn_acks", "responder_bad_cookie",
                                             "responder_bad_segment")}
        m0 = {m: pinned_entries(nat.pin_dir, m) for m in ("xr_flows", "xr_greet")}
        # From 16 addresses of the /24 that no session uses: the sink counts
        # only what comes back to them.
        r = run(SYNFLOOD, "-j", "-i", "veth1", "--dst-mac", mac, "-s", pair.v4[:-1] + "100",
                "--addrs", "16", "-r", "50000", "-D", "1", "%s:25" % pair.v4, ns=pair.cli,
                timeout=30)
        assert r.returncode == 0, r.stdout
        f = json.loads(r.stdout)
        st1 = {k: xdp_stat(nat, k) for k in st0}
        m1 = {m: pinned_entries(nat.pin_dir, m) for m in m0}
        acks = st1["responder_syn_acks"] - st0["responder_syn_acks"]
        t.note("synflood: %d SYNs in %.2f s, the responder sent %d SYN-ACKs, %d came back, "
               "%d other; LRU entries %s before, %s after" % (
                   f["sent"], f["secs"], acks, f["synack"], f["other"], m0, m1))
        assert f["sent"] >= 25000, "only %d SYNs sent" % f["sent"]
        assert acks == f["sent"], "%d SYN-ACKs for %d SYNs" % (acks, f["sent"])
        assert f["synack"] == f["sent"] and f["other"] == 0, f
        assert st1["responder_bad_cookie"] == st0["responder_bad_cookie"], (st0, st1)
        assert st1["responder_bad_segment"] == st0["responder_bad_segment"], (st0, st1)
        assert all(m1[m] <= m0[m] for m in m0), "SYNs left state: %s before, %s after" % (m0, m1)
        # Native XDP_TX needs a program on the peer again for the session.
        r = run("bpftool", "net", "attach", "xdpdrv", "pinned", PROG, "dev", "veth1",
                ns=pair.cli)
        assert r.returncode == 0, r.stdout
        secs = session(pair)
        assert secs < 2, "a session after the flood: %.3f s" % secs
    t.run("xdp native: a SYN flood (50,000/s for 1 s) gets one SYN-ACK per SYN, nothing "
          "else, and leaves no state", synflood)


try:
    with Env(t) as env:
        try:
            main(env)
        finally:
            for p in (PROG,):
                if os.path.exists(p):
                    os.unlink(p)
            if os.path.isdir(MAPS):
                for f in os.listdir(MAPS):
                    os.unlink(os.path.join(MAPS, f))
                os.rmdir(MAPS)
except Exception as e:
    t.fail("t_xdploss", "%s: %s" % (type(e).__name__, e))
sys.exit(t.finish())
