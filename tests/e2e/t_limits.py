#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 300
"""
t_limits.py - many sessions and the time and count limits, both engines.

  2,000 concurrent sessions: all opened and greeted first, then half run
  EHLO/MAIL/RCPT/QUIT pipelined in one write and half step by step; every
  byte checked, bounded time;
  -t 2: a silent session gets the idle 421 after about 2 s, then a close; a
  session sending NOOP every second outlives the timeout and then times out
  2 s after its last command; a half line does not keep a session forever;
  --max-session-time 3: a session sending NOOP every 0.5 s is closed with the
  session time limit 421 after about 3 s;
  --max-sessions 5: the 6th and 7th connections get the busy 421 and a close;
  after two sessions end, exactly two new ones are served again;
  max-sessions-per-source 3 (settings file): the 4th session from one IPv4
  address gets the busy 421 while another address is served, a close frees
  a place; two IPv6 addresses of one /64 share a count, another /64 does not;
  each refusal is counted in close_busy_source (not close_busy) and logged
  end=busy_source; SIGHUP to 4 admits a 4th; the default is 50 a source.
"""
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import (MAILLESS, Env, Replies, Session, StartError, Suite, bytes_diff, engines,
                    family_of, netns, sh, show, skipped_engines)

t = Suite("t_limits")
TMP = tempfile.mkdtemp(prefix="mlt-limits-")
N_SESSIONS = int(os.environ.get("MLT_SESSIONS", "2000"))


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------- 2,000 sessions

class Conn:
    __slots__ = ("sock", "steps", "step", "buf", "done", "err", "connected", "got")

    def __init__(self, sock, steps):
        self.sock, self.steps, self.step = sock, steps, 0
        self.buf = bytearray()
        self.got = bytearray()
        self.done = False
        self.err = None
        self.connected = False


def many_sessions(pair, host, n, timeout=90):
    R = Replies(host)
    pipelined = b"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nQUIT\r\n"
    steps_pipe = [(pipelined, R.ehlo + R.ok + R.reject + R.quit)]
    steps_step = [(b"EHLO c.test\r\n", R.ehlo), (b"MAIL FROM:<a@b.test>\r\n", R.ok),
                  (b"RCPT TO:<c@d.test>\r\n", R.reject), (b"QUIT\r\n", R.quit)]
    sel = selectors.DefaultSelector()
    conns = []
    deadline = time.monotonic() + timeout
    t0 = time.monotonic()
    try:
        # Phase 1: open all, each reads its greeting; nobody talks yet.
        with netns(pair.cli):
            for i in range(n):
                s = socket.socket(socket.AF_INET6 if i % 5 == 4 else socket.AF_INET)
                s.setblocking(False)
                conns.append(Conn(s, steps_pipe if i % 2 == 0 else steps_step))
        for i, c in enumerate(conns):
            addr = pair.v6 if i % 5 == 4 else pair.v4
            c.sock.connect_ex((addr, 25))
            sel.register(c.sock, selectors.EVENT_READ, c)
        greeted = 0
        while greeted < n and time.monotonic() < deadline:
            for key, _ in sel.select(0.5):
                c = key.data
                try:
                    chunk = c.sock.recv(4096)
                except (ConnectionResetError, ConnectionRefusedError) as e:
                    c.err = "phase 1: %s" % e
                    sel.unregister(c.sock)
                    greeted += 1
                    continue
                if not chunk:
                    c.err = "closed before all sessions were open (got %s)" % show(c.buf)
                    sel.unregister(c.sock)
                    greeted += 1
                    continue
                c.buf += chunk
                c.got += chunk
                if len(c.buf) >= len(R.greet_rcpt):
                    if bytes(c.buf) != R.greet_rcpt:
                        c.err = "greeting: " + bytes_diff(R.greet_rcpt, c.buf)
                        sel.unregister(c.sock)
                    else:
                        c.buf.clear()
                    greeted += 1
                    c.connected = True
        t1 = time.monotonic()
        missing = sum(1 for c in conns if not c.connected and c.err is None)
        errs = [c.err for c in conns if c.err]
        assert not missing, "%d of %d sessions not greeted within %ss" % (missing, n, timeout)
        assert not errs, "%d sessions failed while opening: %s" % (len(errs), errs[0])

        # Phase 2: everybody talks; pipelined or step by step.
        for c in conns:
            c.sock.send(c.steps[0][0])
        open_ = n
        while open_ and time.monotonic() < deadline:
            for key, _ in sel.select(0.5):
                c = key.data
                try:
                    chunk = c.sock.recv(4096)
                except ConnectionResetError:
                    chunk = None
                if not chunk:
                    if c.step < len(c.steps):
                        c.err = "closed at step %d, got %s" % (c.step, show(c.got))
                    elif c.buf:
                        c.err = "extra bytes %s" % show(c.buf)
                    elif chunk is None:
                        c.err = "reset after QUIT"
                    c.done = True
                    sel.unregister(c.sock)
                    open_ -= 1
                    continue
                c.buf += chunk
                c.got += chunk
                while c.step < len(c.steps) and len(c.buf) >= len(c.steps[c.step][1]):
                    exp = c.steps[c.step][1]
                    if bytes(c.buf[:len(exp)]) != exp:
                        c.err = "step %d: %s" % (c.step, bytes_diff(exp, c.buf))
                        c.step = len(c.steps) + 1
                        break
                    del c.buf[:len(exp)]
                    c.step += 1
                    if c.step < len(c.steps):
                        c.sock.send(c.steps[c.step][0])
        t2 = time.monotonic()
        stuck = sum(1 for c in conns if not c.done)
        errs = [c.err for c in conns if c.err]
        assert not errs, "%d of %d sessions wrong: %s" % (len(errs), n, errs[0])
        assert not stuck, "%d of %d sessions not closed within %ss" % (stuck, n, timeout)
        t.note("%d sessions: all open and greeted in %.1fs, dialogues done in %.1fs"
               % (n, t1 - t0, t2 - t1))
    finally:
        sel.close()
        for c in conns:
            c.sock.close()


# ---------------------------------------------------------------- timeouts

def idle_silent(pair, R):
    s = Session(pair.cli, pair.v4, timeout=10)
    try:
        s.expect(R.greet_rcpt, what="greeting")
        t0 = time.monotonic()
        s.expect(R.idle, timeout=8, what="idle timeout reply")
        dt = time.monotonic() - t0
        s.expect_eof()
        assert 1.5 <= dt <= 4.5, "idle 421 after %.2fs with -t 2" % dt
    finally:
        s.close()


def idle_activity(pair, R):
    s = Session(pair.cli, pair.v4, timeout=10)
    try:
        s.expect(R.greet_rcpt, what="greeting")
        for i in range(4):  # 4 commands 1 s apart: 4 s > 2 s, never idle 2 s
            time.sleep(1.0)
            s.cmd(b"NOOP\r\n", R.ok, what="NOOP %d (at %ds)" % (i + 1, i + 1))
        t0 = time.monotonic()
        s.expect(R.idle, timeout=8, what="idle timeout reply after the last command")
        dt = time.monotonic() - t0
        s.expect_eof()
        assert 1.5 <= dt <= 4.5, "idle 421 %.2fs after the last command with -t 2" % dt
    finally:
        s.close()


def idle_half_line(pair, R):
    s = Session(pair.cli, pair.v4, timeout=10)
    try:
        s.expect(R.greet_rcpt, what="greeting")
        t0 = time.monotonic()
        s.send(b"MAIL FROM:<a@b>")
        s.expect(R.idle, timeout=8, what="idle timeout reply with a half line pending")
        dt = time.monotonic() - t0
        s.expect_eof()
        assert 1.5 <= dt <= 4.5, "idle 421 after %.2fs with -t 2" % dt
    finally:
        s.close()


def idle_after_pipelined(pair, R):
    """Early talker then silence: the timeout still applies."""
    s = Session(pair.cli, pair.v6, timeout=10)
    try:
        s.send(b"EHLO c\r\nNOOP\r\n")
        s.expect(R.greet_rcpt + R.ehlo + R.ok, what="greeting and replies")
        s.expect(R.idle, timeout=8, what="idle timeout reply")
        s.expect_eof()
    finally:
        s.close()


def max_session_time(pair, R):
    s = Session(pair.cli, pair.v4, timeout=10)
    try:
        t0 = time.monotonic()
        s.expect(R.greet_rcpt, what="greeting")
        noops = 0
        got = b""
        while time.monotonic() - t0 < 10:
            time.sleep(0.5)
            try:
                s.send(b"NOOP\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            line = s.read_line(timeout=2)
            if line == R.ok:
                noops += 1
                continue
            got = line
            break
        dt = time.monotonic() - t0
        assert got == R.maxtime, "after %d NOOPs (%.1fs) got %s, expected %s" % (
            noops, dt, show(got), show(R.maxtime))
        s.expect_eof(allow_reset=True)
        assert 2.5 <= dt <= 5.5, "session time limit 421 after %.2fs with 3 s" % dt
        assert noops >= 4, "only %d NOOPs answered before the limit" % noops
    finally:
        s.close()


# ---------------------------------------------------------------- --max-sessions

def busy(pair, R, srv, limit=5):
    held = []
    try:
        for i in range(limit):
            s = Session(pair.cli, pair.v4, timeout=5)
            held.append(s)
            s.expect(R.greet_rcpt, what="greeting of session %d of %d" % (i + 1, limit))
        for extra in (limit + 1, limit + 2):
            s = Session(pair.cli, pair.v4 if extra % 2 else pair.v6, timeout=5)
            try:
                s.expect(R.busy, what="connection %d over --max-sessions %d" % (extra, limit))
                s.expect_eof(allow_reset=False)
            finally:
                s.close()
        # The held sessions still work.
        for s in held:
            s.cmd(b"NOOP\r\n", R.ok, what="NOOP in a held session")
        # Two end: one by QUIT, one by the client closing.
        held[0].cmd(b"QUIT\r\n", R.quit).expect_eof()
        held[0].close()
        held[1].close()
        held = held[2:]
        # Exactly two new sessions are served again (the server may take a
        # moment to notice the client's close).
        for k in range(2):
            deadline = time.monotonic() + 5
            busy_seen = 0
            while True:
                s = Session(pair.cli, pair.v4, timeout=5)
                first = s.read_line()
                if first == R.greet_rcpt:
                    held.append(s)
                    break
                s.close()
                assert first == R.busy, "new session %d: got %s" % (k + 1, show(first))
                busy_seen += 1
                assert time.monotonic() < deadline, \
                    "new session %d still busy 5 s after two sessions ended" % (k + 1)
                time.sleep(0.1)
        held[-1].cmd(b"EHLO c\r\n", R.ehlo).cmd(b"QUIT\r\n", R.quit).expect_eof()
        held[-1].close()
        held.pop()
        held[-1].cmd(b"MAIL FROM:<a@b>\r\n", R.ok)
        # Now 4 held + ... the one just closed frees one slot: fill it, then busy again.
        deadline = time.monotonic() + 5
        while True:
            s = Session(pair.cli, pair.v4, timeout=5)
            first = s.read_line()
            if first == R.greet_rcpt:
                held.append(s)
                break
            s.close()
            assert first == R.busy and time.monotonic() < deadline, \
                "refill: got %s" % show(first)
            time.sleep(0.1)
        s = Session(pair.cli, pair.v4, timeout=5)
        try:
            s.expect(R.busy, what="connection over the limit after refilling")
            s.expect_eof()
        finally:
            s.close()
        # Each refused session is logged with the one reply it got, the 421
        # (the user engine once lost it: its state was made after the 421).
        deadline = time.monotonic() + 5
        while True:
            lines = [l for l in srv.log if " session client=" in l and l.endswith(" end=busy")]
            if len(lines) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert len(lines) >= 3, "busy session log lines: %d, want >= 3" % len(lines)
        for l in lines:
            assert " commands=0 replies=1 end=busy" in l, "busy session line: %s" % l
    finally:
        for s in held:
            s.close()


# ---------------------------------------------------------------- per source

def add_sources(pair):
    """A second IPv4 address and a second IPv6 address in the same /64 on the
    client, and a second /64 on both ends."""
    c, s = pair.cli, pair.srv
    sh("ip", "-n", c, "addr", "add", "10.231.%d.3/24" % pair.x, "dev", "veth1")
    sh("ip", "-n", c, "-6", "addr", "add", "fd00:231:%x::3/64" % pair.x, "dev", "veth1",
       "nodad")
    sh("ip", "-n", c, "-6", "addr", "add", "fd00:232:%x::2/64" % pair.x, "dev", "veth1",
       "nodad")
    sh("ip", "-n", s, "-6", "addr", "add", "fd00:232:%x::1/64" % pair.x, "dev", "veth0",
       "nodad")


def session_from(pair, src, dst, timeout=5):
    with netns(pair.cli):
        sock = socket.socket(family_of(dst), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((src, 0))
        sock.settimeout(timeout)
        sock.connect((dst, 25))
    except Exception:
        sock.close()
        raise
    return Session(None, None, sock=sock, timeout=timeout)


def counters(srv):
    out = subprocess.run([MAILLESS, "stats", "-j", "--pin-dir", srv.pin_dir],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, "mailless stats: %s" % out.stderr
    return json.loads(out.stdout)["counters"]


def counters_reach(srv, want, timeout=3):
    """Poll until the counters in want have those values (the controller
    flushes every 100 ms); returns the last reading."""
    deadline = time.monotonic() + timeout
    while True:
        c = counters(srv)
        if all(c.get(k) == v for k, v in want.items()) or time.monotonic() > deadline:
            return c
        time.sleep(0.1)


def refused(s, R, what):
    try:
        s.expect(R.busy, what=what)
        s.expect_eof(allow_reset=False)
    finally:
        s.close()


def per_source(pair, R, srv, conf):
    v4a, v4b = pair.v4c, "10.231.%d.3" % pair.x
    v6a, v6b = pair.v6c, "fd00:231:%x::3" % pair.x     # one /64
    v6c = "fd00:232:%x::2" % pair.x                  # another /64
    held = []
    c0 = counters(srv)
    try:
        # IPv4, /32: three from one address are served and held.
        a = [session_from(pair, v4a, pair.v4) for _ in range(3)]
        held += a
        for i, s in enumerate(a):
            s.expect(R.greet_rcpt, what="greeting of %s session %d of 3" % (v4a, i + 1))
        refused(session_from(pair, v4a, pair.v4), R,
                "4th session from %s over max-sessions-per-source 3" % v4a)
        # Another address is still served, and so are the held ones.
        b = session_from(pair, v4b, pair.v4)
        held.append(b)
        b.expect(R.greet_rcpt, what="greeting of a session from %s" % v4b)
        b.cmd(b"NOOP\r\n", R.ok, what="NOOP from %s" % v4b)
        for s in a:
            s.cmd(b"NOOP\r\n", R.ok, what="NOOP in a held session from %s" % v4a)
        c = counters_reach(srv, {"close_busy_source": c0["close_busy_source"] + 1})
        assert c["close_busy_source"] == c0["close_busy_source"] + 1, \
            "close_busy_source %d -> %d after one refusal" % (c0["close_busy_source"],
                                                               c["close_busy_source"])
        assert c["close_busy"] == c0["close_busy"], \
            "close_busy moved %d -> %d: a per-source refusal is not max-sessions" % (
                c0["close_busy"], c["close_busy"])
        # One ends: the count goes down, a new one from that address is served.
        # (Once the server has closed it: the user engine waits for the
        # client's FIN after the 221, as for --max-sessions.)
        a[0].cmd(b"QUIT\r\n", R.quit).expect_eof()
        a[0].close()
        c = counters_reach(srv, {"active": 3}, 5)
        assert c["active"] == 3, "sessions_active %d, want 3 after a QUIT" % c["active"]
        s = session_from(pair, v4a, pair.v4)
        held.append(s)
        s.expect(R.greet_rcpt, what="greeting from %s after one of its 3 ended" % v4a)
        c1 = counters_reach(srv, {"close_busy_source": c0["close_busy_source"] + 1}, 0.5)
        assert c1["close_busy_source"] == c0["close_busy_source"] + 1, \
            "close_busy_source moved by %d, want exactly 1" % (
                c1["close_busy_source"] - c0["close_busy_source"])

        # IPv6, /64: two addresses of one /64 share a count of 3.
        six = [session_from(pair, v6a, pair.v6), session_from(pair, v6b, pair.v6),
               session_from(pair, v6a, pair.v6)]
        held += six
        for i, s in enumerate(six):
            s.expect(R.greet_rcpt, what="greeting of IPv6 session %d of 3" % (i + 1))
        refused(session_from(pair, v6b, pair.v6), R,
                "session from %s: 4th of its /64 (3 from it and %s)" % (v6b, v6a))
        # Another /64 has its own count.
        s = session_from(pair, v6c, pair.v6)
        held.append(s)
        s.expect(R.greet_rcpt, what="greeting of a session from another /64 (%s)" % v6c)
        c = counters_reach(srv, {"close_busy_source": c1["close_busy_source"] + 1})
        assert c["close_busy_source"] == c1["close_busy_source"] + 1, \
            "close_busy_source %d -> %d after the /64 refusal" % (c1["close_busy_source"],
                                                                   c["close_busy_source"])
        # Each refusal is logged with the one reply it got.
        deadline = time.monotonic() + 5
        while True:
            lines = [l for l in srv.log if " session client=" in l and
                     l.endswith(" end=busy_source")]
            if len(lines) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert len(lines) == 2, "end=busy_source log lines: %d, want 2" % len(lines)
        for l in lines:
            assert " commands=0 replies=1 end=busy_source" in l, "refusal's line: %s" % l

        # SIGHUP applies a new limit to the sessions already open: 4 admits a
        # 4th from v4a (3 held), and a 5th is refused.
        with open(conf, "w") as f:
            f.write("max-sessions-per-source = 4\n")
        n = sum(1 for l in srv.log if "reloaded" in l)
        srv.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while sum(1 for l in srv.log if "reloaded" in l) == n:
            assert time.monotonic() < deadline, "no 'reloaded' line: %s" % srv.log_tail()
            time.sleep(0.05)
        s = session_from(pair, v4a, pair.v4)
        held.append(s)
        s.expect(R.greet_rcpt, what="4th session from %s after SIGHUP to 4" % v4a)
        refused(session_from(pair, v4a, pair.v4), R, "5th session from %s over 4" % v4a)
    finally:
        for s in held:
            s.close()


def per_source_default(pair, R):
    """Without the option, 50 sessions from one address are served, the 51st
    gets the busy 421."""
    held = []
    try:
        for i in range(50):
            s = Session(pair.cli, pair.v4, timeout=5)
            held.append(s)
            s.expect(R.greet_rcpt, what="greeting of session %d of 50" % (i + 1))
        refused(Session(pair.cli, pair.v4, timeout=5), R,
                "51st session from one address with the default of 50")
    finally:
        for s in held:
            s.close()


def check_alive(srv):
    assert srv.alive(), "server died: %s" % srv.log_tail()


def main():
    nofile = raise_nofile()
    t.note("RLIMIT_NOFILE %d" % nofile)
    for e in skipped_engines():
        t.skip("limits/%s" % e, "engine excluded by MLT_ENGINES")
    try:
        with Env(t) as env:
            x = 100
            for engine in engines():
                name = "limits/%s" % engine
                x += 10
                pb, pi, pm, pn, ps, pd = (env.pair(x=x + k, tag="%s%s" % (engine[0], tg))
                                          for k, tg in enumerate("bimnsd"))
                hb, hi, hm, hn, hs, hd = ("%s-%s.limits.test" % (engine[0], w)
                                          for w in ("many", "idle", "maxtime", "busy", "src",
                                                    "dflt"))
                add_sources(ps)
                conf = os.path.join(TMP, "src-%s.conf" % engine)
                with open(conf, "w") as f:
                    f.write("# t_limits: the per-source limit from the settings file\n"
                            "max-sessions-per-source = 3\n")
                servers = {}
                for key, pair, host, extra in (
                        ("many", pb, hb, ["-t", "120", "--max-sessions-per-source", "0"]),
                        ("idle", pi, hi, ["-t", "2"]),
                        ("maxtime", pm, hm, ["-t", "10", "--max-session-time", "3"]),
                        ("busy", pn, hn, ["-t", "30", "--max-sessions", "5"]),
                        ("src", ps, hs, ["-t", "30", "-c", conf]),
                        ("dflt", pd, hd, ["-t", "30"])):
                    try:
                        servers[key] = env.server(pair, engine=engine, host=host, extra=extra)
                    except StartError as e:
                        t.fail("%s/%s: server starts" % (name, key), str(e))
                n = min(N_SESSIONS, max(100, (nofile - 200) // 1))
                if "many" in servers:
                    t.run("%s: %d concurrent sessions, every reply exact" % (name, n),
                          many_sessions, pb, hb, n)
                    t.run("%s: server alive after %d sessions" % (name, n),
                          check_alive, servers["many"])
                cases = []
                if "idle" in servers:
                    Ri = Replies(hi)
                    cases += [("%s: -t 2: silent session gets the idle 421" % name,
                               idle_silent, (pi, Ri)),
                              ("%s: -t 2: commands reset the idle timer" % name,
                               idle_activity, (pi, Ri)),
                              ("%s: -t 2: a half line does not keep the session" % name,
                               idle_half_line, (pi, Ri)),
                              ("%s: -t 2: early talker then silence times out" % name,
                               idle_after_pipelined, (pi, Ri))]
                if "maxtime" in servers:
                    cases.append(("%s: --max-session-time 3 closes a busy session" % name,
                                  max_session_time, (pm, Replies(hm))))
                if "busy" in servers:
                    cases.append(("%s: --max-sessions 5: busy 421, then served again" % name,
                                  busy, (pn, Replies(hn), servers["busy"])))
                if "src" in servers:
                    cases.append(("%s: max-sessions-per-source 3: 421 busy for that source "
                                  "(/32, /64), others served, counted, reloadable" % name,
                                  per_source, (ps, Replies(hs), servers["src"], conf)))
                if "dflt" in servers:
                    cases.append(("%s: max-sessions-per-source defaults to 50" % name,
                                  per_source_default, (pd, Replies(hd))))
                t.run_parallel(cases)
                for key, s in servers.items():
                    def stops(s=s):
                        rc = s.stop()
                        assert rc == 0, "exit status %s: %s" % (rc, s.log_tail())
                    t.run("%s/%s: exit status 0 on SIGTERM" % (name, key), stops)
    except StartError as e:
        t.fail("limits: setup", str(e))
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
