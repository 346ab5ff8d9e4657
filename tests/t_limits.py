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
  after two sessions end, exactly two new ones are served again.
"""
import os
import resource
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import (Env, Replies, Session, StartError, Suite, bytes_diff, engines, netns,
                    show, skipped_engines)

t = Suite("t_limits")
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
    steps_pipe = [(pipelined, R.helo + R.ok + R.reject + R.quit)]
    steps_step = [(b"EHLO c.test\r\n", R.helo), (b"MAIL FROM:<a@b.test>\r\n", R.ok),
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
        s.expect(R.greet_rcpt + R.helo + R.ok, what="greeting and replies")
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
        held[-1].cmd(b"EHLO c\r\n", R.helo).cmd(b"QUIT\r\n", R.quit).expect_eof()
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
                pb, pi, pm, pn = (env.pair(x=x + k, tag="%s%s" % (engine[0], tg))
                                  for k, tg in enumerate("bimn"))
                hb, hi, hm, hn = ("%s-%s.limits.test" % (engine[0], w)
                                  for w in ("many", "idle", "maxtime", "busy"))
                servers = {}
                for key, pair, host, extra in (
                        ("many", pb, hb, ["-t", "120"]),
                        ("idle", pi, hi, ["-t", "2"]),
                        ("maxtime", pm, hm, ["-t", "10", "--max-session-time", "3"]),
                        ("busy", pn, hn, ["-t", "30", "--max-sessions", "5"])):
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
                t.run_parallel(cases)
                for key, s in servers.items():
                    def stops(s=s):
                        rc = s.stop()
                        assert rc == 0, "exit status %s: %s" % (rc, s.log_tail())
                    t.run("%s/%s: exit status 0 on SIGTERM" % (name, key), stops)
    except StartError as e:
        t.fail("limits: setup", str(e))
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
