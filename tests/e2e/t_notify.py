#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 90
"""
t_notify.py - the systemd notification protocol (Type=notify), both engines,
with a real datagram socket in NOTIFY_SOCKET as systemd gives one: READY=1
(with MAINPID, the server's pid), after which a session is answered, RELOADING=1
with MONOTONIC_USEC then READY=1 again on SIGHUP (also when the new settings
are refused), STOPPING=1 on SIGTERM before the exit.
"""
import os
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import Env, PREFIX, Replies, Session, Suite, engines, skipped_engines

t = Suite("t_notify")


class Notify:
    """What systemd would receive: one datagram per sd_notify call."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)

    def messages(self, secs):
        """Datagrams received within secs, each as a dict of its lines."""
        out, deadline = [], time.monotonic() + secs
        while time.monotonic() < deadline:
            try:
                d = self.sock.recv(4096).decode()
            except socket.timeout:
                if out:
                    break
                continue
            out.append(dict(l.split("=", 1) for l in d.split("\n") if "=" in l))
        return out


def notify(env, engine, tmp):
    path = os.path.join(tmp, "notify-%s" % engine)
    n = Notify(path)
    conf = os.path.join(tmp, "%s.conf" % engine)
    with open(conf, "w") as f:
        f.write("hostname = one.notify.test\n")
    pair = env.pair()
    os.environ["NOTIFY_SOCKET"] = path
    try:
        srv = env.server(pair, engine=engine, host=None, config=conf, family="4")
    finally:
        del os.environ["NOTIFY_SOCKET"]
    msgs = n.messages(5)
    ready = [m for m in msgs if m.get("READY") == "1"]
    assert ready, "no READY=1 within 5 s of 'ready' (got %s)" % msgs
    assert ready[0].get("MAINPID") == str(srv.pid), "MAINPID %s, the server is %d" % (
        ready[0].get("MAINPID"), srv.pid)
    s = Session(pair.cli, pair.v4)
    s.expect(Replies("one.notify.test").greet_rcpt, what="greeting after READY=1")
    s.close()

    def reload(host, good):
        with open(conf, "w") as f:
            f.write("hostname = %s\n" % host)
        srv.signal(signal.SIGHUP)
        got = n.messages(5)
        kinds = [("RELOADING" if "RELOADING" in m else "READY" if "READY" in m else "?")
                 for m in got]
        assert kinds[:2] == ["RELOADING", "READY"], "%s SIGHUP: %s" % (
            "a" if good else "a refused", got)
        assert int(got[0].get("MONOTONIC_USEC", "0")) > 0, "no MONOTONIC_USEC: %s" % got[0]
    reload("two.notify.test", True)
    reload("bad host name", False)

    n.messages(0.3)
    rc = srv.stop()
    got = n.messages(1)
    assert rc == 0, "exit %s" % rc
    assert any(m.get("STOPPING") == "1" for m in got), "no STOPPING=1: %s" % got
    n.sock.close()


tmp = tempfile.mkdtemp(prefix=PREFIX + ".")
try:
    with Env(t) as env:
        for e in engines():
            t.run("notify/%s: READY=1 when serving, RELOADING=1 and READY=1 on SIGHUP, "
                  "STOPPING=1 on SIGTERM" % e, notify, env, e, tmp)
        for e in skipped_engines():
            t.skip("notify/%s" % e, "engine not selected (MLT_ENGINES)")
finally:
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(t.finish())
