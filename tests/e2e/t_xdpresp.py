#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 240
"""
t_xdpresp.py - engine xdp, live: the XDP responder inside the guard's
program answers on a veth pair between two namespaces (generic mode: native
XDP_TX on veth needs a program on the peer too). Clients nobody here wrote
(Python's smtplib, swaks) and tests/e2e/c/wirecheck.c byte-exact (its xdp
row: 15 pipelined replies, then 421), both dialects, IPv4 and IPv6; no
socket is ever accepted during those sessions; the dialogue counters and
the responder's own in `stats`; SIGHUP renders new replies for new
sessions; 14,000 sessions that end every way a client ends them (QUIT,
RST, half-close, never reading) leave no flow state, no greeting to
resend and no growth in the controller; on stop the program is detached
and the pins are gone.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import MAILLESS, PREFIX, TOP, Env, StartError, Suite, pinned_entries, reply_text
from soak import RSS_MARGIN, fd_count, loadgen, proc_status

t = Suite("t_xdpresp")
WIRE = os.path.join(TOP, ".output", "tests", "wirecheck")


def in_ns(ns, *cmd, timeout=120):
    return subprocess.run(["nsenter", "--net=/run/netns/" + ns] + list(cmd),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)


def stats(srv):
    p = subprocess.run([MAILLESS, "stats", "-j", "--pin-dir", srv.pin_dir],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.returncode == 0, "stats: %s" % p.stderr
    return json.loads(p.stdout)



# Every way loadgen ends a session but `long` (100 commands in one write
# get 421 past the 15 unacknowledged replies, by design), 2,000 each.
CHURN = ("quit-close", "server-close", "reset", "half-close", "dialog", "pipelined", "noread")
CHURN_EACH = 2000


def established(pair):
    """Sockets on port 25 in the server namespace that are not listeners."""
    out = in_ns(pair.srv, "ss", "-Htan", "sport = :25").stdout
    return [l for l in out.splitlines() if l and not l.startswith("LISTEN")]


def smtplib_session(pair, host, addr):
    """EHLO, MAIL, RCPT (521), QUIT from the client namespace, via a child
    python (smtplib) there; returns its transcript lines."""
    code = (
        "import smtplib,sys\n"
        "s=smtplib.SMTP(sys.argv[1],25,timeout=10)\n"
        "c,m=s.ehlo('client.test'); print('ehlo',c,m.decode().split()[0])\n"
        "c,m=s.mail('a@example.org'); print('mail',c)\n"
        "c,m=s.rcpt('b@example.net'); print('rcpt',c,m.decode())\n"
        "c,m=s.docmd('QUIT'); print('quit',c)\n")
    r = in_ns(pair.cli, sys.executable, "-c", code, addr, timeout=60)
    assert r.returncode == 0, "smtplib: %s" % r.stdout[-1500:]
    return r.stdout.splitlines()


def main(env):
    pair = env.pair(tag="xr")
    conf = "/tmp/%s-xdp.conf" % PREFIX
    env.cleanup_files = getattr(env, "cleanup_files", []) + [conf]
    for dialect in ("rcpt", "rfc7504"):
        host = "mx.%s.xdp.test" % dialect
        with open(conf, "w") as f:  # the hostname from a file: SIGHUP re-reads it
            f.write("hostname = %s\n" % host)
        try:
            srv = env.server(pair, engine="xdp", host=None, dialect=dialect, config=conf,
                             # no SYN limit: the churn case opens 14,000 sessions
                             # from one address (t_guard tests the limit)
                             extra=["--xdp", "veth0", "--xdp-mode", "skb", "--syn-rate", "0"])
        except StartError as e:
            t.fail("xdp %s: starts" % dialect, str(e))
            continue
        t.ok("xdp %s: starts (%s)" % (dialect, [l for l in srv.log if "ready:" in l][-1:]))

        def wire(addr):
            r = in_ns(pair.cli, WIRE, addr, "25", host, dialect, "xdp", timeout=200)
            bad = [l for l in r.stdout.splitlines() if l.startswith("not ok")]
            assert r.returncode == 0 and not bad, r.stdout[-3000:]
        t.run("xdp %s: wirecheck byte-exact over IPv4" % dialect, wire, pair.v4)
        t.run("xdp %s: wirecheck byte-exact over IPv6" % dialect, wire, pair.v6)

        if dialect == "rcpt":
            def smtp():
                lines = smtplib_session(pair, host, pair.v4)
                assert ("rcpt 521 5.3.2 %s does not accept mail" % host) in lines, lines
                assert "mail 250" in lines and "quit 221" in lines, lines
            t.run("xdp rcpt: smtplib gets 521 at RCPT, 221 at QUIT", smtp)

            def session_line():
                # the responder's record, through its ring buffer, as the
                # other engines' log line (sesslog.c)
                want = re.compile(r' client=%s:\d+ .*from="<a@example.org>" '
                                  r'rcpt="<b@example.net>" .*end=quit' % re.escape(pair.v4c))
                # The record wakes nobody (a quarter of the ring would):
                # the controller's loop reads it within its 200 ms tick.
                t0 = time.monotonic()
                while time.monotonic() < t0 + 5 and not any(want.search(l) for l in srv.log):
                    time.sleep(0.02)
                lines = [l for l in srv.log if "client=" in l]
                assert any(want.search(l) for l in lines), "no such session line: %s" % lines[-3:]
                secs = time.monotonic() - t0
                assert secs < 1, "the session line came after %.2f s" % secs
                t.note("the session line after %.2f s" % secs)
            t.run("xdp rcpt: the session line names the client and the envelope", session_line)

        if shutil.which("swaks"):
            def swaks():
                r = in_ns(pair.cli, "swaks", "--server", pair.v6, "--port", "25", "--to", "x@y",
                          "--from", "a@b", "--helo", "client.test", "--timeout", "10",
                          timeout=60)
                want = 24 if dialect == "rcpt" else 21
                assert r.returncode == want, "swaks exit %d, want %d: %s" % (
                    r.returncode, want, r.stdout[-1500:])
                first = reply_text(dialect, host, "greet").decode().split("\r\n")[0]
                assert first in r.stdout, "no greeting %r in %s" % (first, r.stdout[-800:])
            t.run("xdp %s: swaks over IPv6 is refused as it should be" % dialect, swaks)

        def no_socket():
            # A session held open while the socket table is read.
            code = ("import socket,sys,time\n"
                    "s=socket.create_connection((sys.argv[1],25),timeout=5)\n"
                    "s.recv(512); s.sendall(b'EHLO x\\r\\n'); s.recv(512)\n"
                    "print('open', flush=True); time.sleep(1.5); s.sendall(b'QUIT\\r\\n')\n"
                    "print(s.recv(512).decode().split()[0])\n")
            p = subprocess.Popen(["nsenter", "--net=/run/netns/" + pair.cli, sys.executable,
                                  "-c", code, pair.v4], stdout=subprocess.PIPE, text=True)
            try:
                assert p.stdout.readline().strip() == "open", "session did not open"
                est = established(pair)
                out = p.stdout.read()
            finally:
                p.wait(timeout=10)
            assert not est, "sockets accepted: %s" % est
            assert out.strip() == "221", "no 221: %r" % out
        t.run("xdp %s: no socket is accepted for a session" % dialect, no_socket)

        def counters():
            j = stats(srv)
            c, x = j["counters"], j.get("xdp", {})
            assert j["engine"] == "xdp", j["engine"]
            assert x.get("responder_greetings", 0) >= 20, x
            assert c["admitted"] == x["responder_greetings"], (c["admitted"], x)
            assert c["reply_221"] >= 10 and c["cmd_quit"] >= 10, c
            assert x["responder_syn_acks"] >= x["responder_greetings"], x
            assert x["responder_bad_cookie"] == 0, x
            assert c["close_flood"] >= 2, "the 1000-pipelined and the flood rows: %s" % c
        t.run("xdp %s: stats has the dialogue and the responder's counters" % dialect, counters)

        if dialect == "rcpt":
            def churn():
                pid = srv.proc.pid
                r0, f0 = proc_status(pid), fd_count(pid)
                done = []
                for shape in CHURN:
                    r = loadgen(pair.cli, ["-s", shape, "-c", "32", "-n", str(CHURN_EACH),
                                           "-t", "10", "--max-errors", "10", "--allow-remote",
                                           "%s:25" % pair.v4], timeout=120)
                    assert r["errors"] == 0 and r["sessions"] == CHURN_EACH, (shape, r)
                    done.append("%s %.0f/s" % (shape, r["rate"]))
                # The last sessions' last segments are in flight for a moment.
                for _ in range(20):
                    left = {m: pinned_entries(srv.pin_dir, m)
                            for m in ("xr_flows", "xr_greet")}
                    if not any(left.values()):
                        break
                    time.sleep(0.05)
                r1, f1 = proc_status(pid), fd_count(pid)
                t.note("churn: %s; controller VmRSS %+d KiB, fds %d -> %d; busy drops %d" % (
                    ", ".join(done), (r1 - r0) // 1024, f0, f1,
                    stats(srv)["xdp"]["responder_busy"]))
                assert not any(left.values()), "state left after %d sessions: %s" % (
                    len(CHURN) * CHURN_EACH, left)
                assert r1 - r0 <= RSS_MARGIN and f1 == f0, (r0, r1, f0, f1)
                assert "rcpt 521 5.3.2 %s does not accept mail" % host in \
                    smtplib_session(pair, host, pair.v4)
            t.run("xdp rcpt: %d sessions ended every way leave no flow, no greeting to resend, "
                  "no controller growth" % (len(CHURN) * CHURN_EACH), churn)

            def reload():
                with open(conf, "w") as f:
                    f.write("hostname = mx.reloaded.test\n")
                srv.signal(signal.SIGHUP)
                deadline = time.monotonic() + 10
                lines = []
                while time.monotonic() < deadline:
                    lines = smtplib_session(pair, host, pair.v4)
                    if "rcpt 521 5.3.2 mx.reloaded.test does not accept mail" in lines:
                        break
                    time.sleep(0.2)
                assert "rcpt 521 5.3.2 mx.reloaded.test does not accept mail" in lines, lines
                assert srv.alive(), srv.log_tail()
            t.run("xdp rcpt: SIGHUP: new sessions get the new hostname", reload)

        rc = srv.stop()

        def stopped():
            assert rc == 0, "exit %s: %s" % (rc, srv.log_tail())
            link = in_ns(pair.srv, "ip", "link", "show", "veth0").stdout
            assert "xdp" not in link, "still attached: %s" % link
            assert not os.path.exists(srv.pin_dir), "pins left: %s" % os.listdir(srv.pin_dir)
        t.run("xdp %s: stop detaches and unpins" % dialect, stopped)


try:
    with Env(t) as env:
        main(env)
except Exception as e:
    t.fail("t_xdpresp", "%s: %s" % (type(e).__name__, e))
sys.exit(t.finish())
