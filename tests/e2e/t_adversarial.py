#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 420
"""
t_adversarial.py - hostile clients end to end, on both engines. Every byte a
client receives is checked against the reply grammar: replies
"NNN[ X.Y.Z] <host>[ text]\\r\\n" with the configured host, printable ASCII
only, a multi-line one ("NNN-" lines, then "NNN ") counted once.

  noread:   4 sessions each write 4 MB of "NOOP\\r\\n" (200 commands a write,
            each once the last is acknowledged, TCP_NODELAY, autocorking off:
            no segment asks for 60 KiB of replies at once) and read nothing; hostname 253 characters. The
            server must close each within 10 s, its last reply a 421; the
            peak rise of SUnreclaim (the machine's) and of the controller's
            VmRSS while they run: under 8 MiB each.
  sighup:   100 SIGHUPs, hostnames of 1 and 253 characters in turn, during
            20,000 pipelined sessions: each reply line exactly the one the
            wire table gives, with the old or the new hostname.
  slow:     5,000 slow clients (one byte every 2 s, never a line end) held at
            --max-sessions 5000; a client beyond them gets "421 <host> too many
            sessions" within 1 s, the held ones are still open.
  flood:    100 MB without a line end: the flood 421 and a close within 5 s;
            the client gets less than 32 MiB written before that.
  binary:   200 sessions of seeded random bytes (MLT_SEED): the transcript is
            exactly what the wire table's model predicts.
  resets:   3,000 connections reset at once after connect, after the greeting
            or in the middle of a line, then 20,000 loadgen `reset` sessions:
            the server still answers, active sessions and the sessions map
            return to 0, the controller has as many descriptors as before.

Expected before the fixes of issue 9: noread fails on the kernel engine (it
queues every reply outside tcp_mem, never closes) and on the user engine
(it stops reading and holds the session until the idle timeout).
"""
import fcntl
import os
import random
import re
import select
import selectors
import socket
import sys
import termios
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import (PREFIX, Env, Replies, Session, StartError, Suite, connect, converse,
                    engines, model, netns, show, skipped_engines, split_replies)
from soak import (answering, describe, fd_count, loadgen, proc_status, session_entries,
                  stats, sunreclaim, wait_idle)

t = Suite("t_adversarial")
# Every client of these tests comes from one address: no per-source limit.
NOSRC = ["--max-sessions-per-source", "0"]

SEED = int(os.environ.get("MLT_SEED", random.randrange(1 << 30)))
MIB = 1024 * 1024
H1 = "a"
H253 = ".".join(["h" * 63, "o" * 63, "s" * 63, "t" * 61])
assert len(H253) == 253

# A reply's first line: code, an RFC 3463 enhanced code of the same class or
# none, the host name; its other lines (after "NNN-"): code and text.
FIRST_RE = re.compile(rb"([2-5])([0-9][0-9])([ -])(?:\1\.[0-9]{1,3}\.[0-9]{1,3} )?([!-~]+)"
                      rb"(?: [ -~]*)?\r\n")
NEXT_RE = re.compile(rb"([2-5][0-9][0-9])([ -])[ -~]*\r\n")


def grammar(data, hosts):
    """Check data is whole replies naming one of hosts; returns their codes,
    one a reply. Raises AssertionError at the first octet that is not."""
    codes = []
    pos = 0
    first = None  # the open multi-line reply's code
    while pos < len(data):
        m = (FIRST_RE if first is None else NEXT_RE).match(data, pos)
        if not m:
            end = data.find(b"\n", pos)
            raise AssertionError("not a reply line at offset %d of %d: %s"
                                 % (pos, len(data), show(data[pos:pos + 300 if end < 0 else end + 1])))
        if len(m.group(0)) > 512:
            raise AssertionError("reply line at offset %d is %d octets" % (pos, len(m.group(0))))
        if first is None:
            code, more = int(m.group(1) + m.group(2)), m.group(3) == b"-"
            if m.group(4).decode() not in hosts:
                raise AssertionError("reply at offset %d names host %s, not %s"
                                     % (pos, show(m.group(4)[:80]),
                                        " or ".join(h[:20] for h in hosts)))
        else:
            code, more = int(m.group(1)), m.group(2) == b"-"
            if code != first:
                raise AssertionError("line at offset %d: code %d inside a %d reply"
                                     % (pos, code, first))
        first = code if more else None
        if not more:
            codes.append(code)
        pos = m.end()
    if first is not None:
        raise AssertionError("the data ends inside a %d reply" % first)
    return codes


def srv_state(srv, engine):
    s = {"fds": fd_count(srv.pid), "active": stats(srv.pin_dir)["active"]}
    if engine == "kernel":
        s["entries"] = session_entries(srv.pin_dir)
    return s


def sysctl(ns, key, value):
    with netns(ns):
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(value)


# --------------------------------------------------------------- noread

def noread(env, engine):
    pair = env.pair(tag="%sn" % engine[0])
    sysctl(pair.cli, "net.ipv4.tcp_autocorking", "0")
    srv = env.server(pair, engine=engine, host=H253, family="4", tag="%s-noread" % engine,
                     extra=NOSRC)
    total = 4 * 1000 * 1000
    chunk = b"NOOP\r\n" * 200
    bound = 10.0
    slab0, rss0 = sunreclaim(), proc_status(srv.pid)
    peak = {"slab": slab0, "rss": rss0}
    res = [None] * 4
    done = threading.Event()

    def sampler():
        while not done.wait(0.1):
            peak["slab"] = max(peak["slab"], sunreclaim())
            r = proc_status(srv.pid)
            if r:
                peak["rss"] = max(peak["rss"], r)

    def client(i):
        s = connect(pair.cli, pair.v4, timeout=5)
        s.setblocking(False)
        sent, closed, how = 0, None, None
        t0 = time.monotonic()
        p = select.poll()
        p.register(s, select.POLLOUT | select.POLLRDHUP | select.POLLHUP | select.POLLERR)
        while time.monotonic() - t0 < bound:
            ev = dict(p.poll(100)).get(s.fileno(), 0)
            if ev & (select.POLLRDHUP | select.POLLHUP | select.POLLERR):
                closed, how = time.monotonic() - t0, "FIN" if not ev & select.POLLERR else "RST"
                break
            if ev & select.POLLOUT and sent < total:
                # One write a segment: wait until the last is acknowledged, so
                # that none coalesces past the 60 KiB pipelining limit.
                if fcntl.ioctl(s, termios.TIOCOUTQ, b"\0\0\0\0") != b"\0\0\0\0":
                    time.sleep(0.0002)
                    continue
                try:
                    sent += s.send(chunk[:min(len(chunk), total - sent)])
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    closed, how = time.monotonic() - t0, "RST (on write)"
                    break
            elif sent >= total:
                p.modify(s, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
        data = bytearray()
        if closed is not None:
            # The server closed: read what it sent (bounded).
            s.setblocking(True)
            s.settimeout(3)
            try:
                while len(data) < 64 * MIB:
                    c = s.recv(1 << 20)
                    if not c:
                        break
                    data += c
            except (ConnectionResetError, socket.timeout):
                pass
        s.close()
        res[i] = (sent, closed, how, bytes(data))

    th = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    smp = threading.Thread(target=sampler, daemon=True)
    smp.start()
    for x in th:
        x.start()
    for x in th:
        x.join(bound + 30)
    done.set()
    smp.join(2)
    d_slab, d_rss = peak["slab"] - slab0, peak["rss"] - rss0
    t.note("noread/%s: SUnreclaim peak %+.1f MiB, controller VmRSS peak %+.1f MiB; sessions: %s"
           % (engine, d_slab / MIB, d_rss / MIB,
              "; ".join("sent %d, %s, %d octets back" % (r[0], "closed by %s after %.2f s" % (r[2], r[1])
                                                         if r[1] is not None else "not closed",
                                                         len(r[3])) if r else "crashed"
                        for r in res)))

    def closes():
        bad = [i for i, r in enumerate(res) if not r or r[1] is None]
        assert not bad, ("%d of 4 sessions not closed by the server within %gs of starting to "
                         "write 4 MB without reading" % (len(bad), bound))

    def replies():
        # A session the server ended with FIN: every reply, then the 421.
        # One it reset: its 421 sat behind replies the client's full
        # receive buffer could not take, and the client took none of them
        # for ML_LINGER_MS (2 s); what had arrived is whole reply lines,
        # the last one possibly cut where the reset came, and the server
        # logged the session as ended by its 421.
        checked = 0
        ok_line = Replies(H253).ok
        for i, r in enumerate(res):
            if not r or r[1] is None:
                continue
            checked += 1
            data, how = r[3], r[2]
            cut = data.rfind(b"\n") + 1
            codes = grammar(data[:cut], [H253])
            assert codes and codes[0] == 220, "session %d: no greeting first" % i
            assert all(c == 250 for c in codes[1:-1]), "session %d: codes %s" % (i, set(codes))
            if how == "FIN":
                assert cut == len(data) and codes[-1] == 421, (
                    "session %d, closed by FIN: %d replies, the last %s, not a 421: %s"
                    % (i, len(codes), codes[-1], show(data[-300:])))
                assert data.endswith(b" closing connection\r\n"), show(data[-200:])
            else:
                assert codes[-1] in (250, 421) and ok_line.startswith(data[cut:]), (
                    "session %d, reset: ends %s" % (i, show(data[-300:])))
        assert checked == 4, "only %d of 4 closed (the others: nothing to check)" % checked
        deadline = time.monotonic() + 5  # srv.log is filled by a reader thread
        while True:
            ends = [l for l in srv.log if " end=unread_backlog" in l or " end=line_flood" in l]
            if len(ends) >= 4 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert len(ends) == 4, "%d of 4 sessions logged as ended by a 421: %s" % (
            len(ends), srv.log_tail(4))

    def memory():
        assert d_slab < 8 * MIB and d_rss < 8 * MIB, (
            "4 non-reading sessions raised SUnreclaim by %.1f MiB and the controller's VmRSS "
            "by %.1f MiB at their peak (bound: under 8 MiB each)" % (d_slab / MIB, d_rss / MIB))

    n = "adversarial/%s/noread" % engine
    t.run("%s: the server closes each of 4 non-reading 4 MB pipeliners within %gs" % (n, bound),
          closes)
    t.run("%s: what they read is reply grammar (host of 253), ending with a 421 when closed by FIN, "
          "whole lines up to a reset after 2 s of taking none" % n, replies)
    t.run("%s: SUnreclaim and controller VmRSS rise under 8 MiB" % n, memory)
    t.run("%s: active sessions back to 0" % n, lambda: _zero(wait_idle(srv.pin_dir, 20)))
    srv.stop()


# --------------------------------------------------------------- SIGHUP

def write_config(path, pair, engine, host, pin):
    with open(path + ".tmp", "w") as f:
        f.write("listen = %s:25\nhostname = %s\nengine = %s\npin-dir = %s\n"
                "max-sessions-per-source = 0\n" % (pair.v4, host, engine, pin))
    os.rename(path + ".tmp", path)


PIPE = b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nNOOP\r\nQUIT\r\n"
PIPE_KINDS = ("greet", "ehlo", "ok", "reject", "norcpt", "ok", "quit")


def sighup(env, engine):
    pair = env.pair(tag="%sh" % engine[0])
    conf = "/tmp/%s-adv-%s.conf" % (PREFIX, engine)
    pin = env.pin_dir("adv-hup-%s" % engine)
    write_config(conf, pair, engine, H1, pin)
    srv = env.server(pair, engine=None, host=None, listen=[], config=conf, pin_dir=pin,
                     pin_arg=False, tag="%s-hup" % engine)
    exp = [set(getattr(Replies(h), k) for h in (H1, H253)) for k in PIPE_KINDS]
    n_sess, n_hup, nthreads = 20000, 100, 8
    lock = threading.Lock()
    count = {"done": 0, "bad": [], "hosts": set(), "errors": []}
    stop = threading.Event()
    hup_done = threading.Event()

    def worker(k):
        try:
            with netns(pair.cli):
                while not stop.is_set():
                    with lock:
                        # At least n_sess, and on until the last SIGHUP.
                        if count["done"] >= n_sess and hup_done.is_set():
                            return
                        count["done"] += 1
                    r = converse(None, pair.v4, 25, [PIPE], timeout=10,
                                 sock=connect(None, pair.v4, timeout=10))
                    got, rest = split_replies(r.data)
                    ok = r.end == "eof" and rest == b"" and len(got) == len(exp) and \
                        all(g in e for g, e in zip(got, exp))
                    if not ok:
                        with lock:
                            count["bad"].append(r)
                    else:
                        with lock:
                            count["hosts"].add(got[0].split(b" ")[1][:8])
        except Exception as e:
            with lock:
                count["errors"].append("%s: %s" % (type(e).__name__, e))

    th = [threading.Thread(target=worker, args=(k,)) for k in range(nthreads)]
    t0 = time.monotonic()
    for x in th:
        x.start()
    hups = 0
    while hups < n_hup and any(x.is_alive() for x in th):
        time.sleep(0.03)
        hups += 1
        write_config(conf, pair, engine, H253 if hups % 2 else H1, pin)
        srv.signal(1)  # SIGHUP
    hup_done.set()
    for x in th:
        x.join(180)
    stop.set()
    secs = time.monotonic() - t0
    t.note("sighup/%s: %d sessions, %d SIGHUPs in %.1f s; %d wrong; greeting hosts seen %s"
           % (engine, count["done"], hups, secs, len(count["bad"]), sorted(count["hosts"])))

    def check():
        assert not count["errors"], "client errors: %s" % count["errors"][:3]
        assert hups == n_hup, "only %d SIGHUPs were sent before the sessions ended" % hups
        assert not count["bad"], ("%d of %d sessions got other bytes than the wire table's, e.g. "
                                  "%s" % (len(count["bad"]), count["done"], count["bad"][0]))
        assert srv.alive(), "mailless exited: %s" % srv.log_tail()
        assert len(count["hosts"]) == 2, "greetings named only %s" % count["hosts"]

    t.run("adversarial/%s/sighup: 100 SIGHUPs (hostname of 1 and 253 characters) during "
          "%d pipelined sessions, every reply exact" % (engine, n_sess), check)
    srv.stop()
    os.unlink(conf)


# --------------------------------------------------------------- slow clients

def slow(env, engine):
    pair = env.pair(tag="%ss" % engine[0])
    n = 5000
    host = "slow.test"
    R = Replies(host)
    srv = env.server(pair, engine=engine, host=host, family="4", tag="%s-slow" % engine,
                     extra=NOSRC + ["--max-sessions", str(n)])
    socks, bad = [], []
    sel = selectors.DefaultSelector()
    t0 = time.monotonic()
    try:
        with netns(pair.cli):
            pending = {}
            while len(socks) + len(pending) < n or pending:
                while len(socks) + len(pending) < n and len(pending) < 200:
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setblocking(False)
                    s.connect_ex((pair.v4, 25))
                    pending[s] = bytearray()
                    sel.register(s, selectors.EVENT_READ)
                if time.monotonic() - t0 > 60:
                    raise AssertionError("%d of %d greeted within 60 s" % (len(socks), n))
                for key, _ in sel.select(1):
                    s = key.fileobj
                    try:
                        c = s.recv(4096)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as e:
                        c = b""
                        bad.append("greeting: %s" % e)
                    pending[s] += c
                    if not c or b"\n" in pending[s]:
                        if bytes(pending[s]) != R.greet_rcpt:
                            bad.append(bytes(pending[s]))
                        sel.unregister(s)
                        del pending[s]
                        socks.append(s)
        opened = time.monotonic() - t0
        t.note("slow/%s: %d greeted in %.1f s" % (engine, len(socks), opened))
        busy = []
        for rnd in range(4):  # one byte each, every 2 s, never a line end
            for s in socks:
                try:
                    s.send(b"X")
                except OSError as e:
                    bad.append("drip: %s" % e)
            t1 = time.monotonic()
            x = Session(pair.cli, pair.v4, timeout=5)
            try:
                x.expect(R.busy, timeout=1, what="client %d beyond --max-sessions" % (n + 1))
                x.expect_eof(timeout=2)
                busy.append(time.monotonic() - t1)
            except AssertionError as e:
                busy.append("%s (after %.2f s)" % (e, time.monotonic() - t1))
            finally:
                x.close()
            time.sleep(max(0, 2 - (time.monotonic() - t1)))
        # Still held, nothing sent to them.
        r, _, _ = select.select(socks[:1000], [], [], 0)
        woke = len(r)
        for s in r[:5]:
            try:
                bad.append("held session got %s" % show(s.recv(4096)))
            except OSError as e:
                bad.append("held session: %s" % e)
    finally:
        for s in socks:
            s.close()
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()
    t.note("slow/%s: busy 421 after %s" % (engine, ", ".join(
        "%.3f s" % b if isinstance(b, float) else b for b in busy)))

    def check():
        assert len(socks) == n, "%d of %d slow sessions greeted" % (len(socks), n)
        assert not bad, "%d wrong: %s" % (len(bad), [show(b) if isinstance(b, bytes) else b
                                                     for b in bad[:3]])
        late = [b for b in busy if not isinstance(b, float)]
        assert not late, "the client beyond them: %s" % late[0]
        assert woke == 0, "%d held sessions got bytes or were closed" % woke

    t.run("adversarial/%s/slow: %d slow clients held at --max-sessions %d, one more gets the "
          "busy 421 within 1 s" % (engine, n, n), check)
    t.run("adversarial/%s/slow: active sessions back to 0" % engine,
          lambda: _zero(wait_idle(srv.pin_dir, 20)))
    srv.stop()


def _exit0(rc):
    assert rc == 0, "exit status %s after SIGTERM" % rc


def _zero(a):
    assert a == 0, "%d active sessions 20 s after the clients closed" % a


# --------------------------------------------------------------- one server, small cases

def flood(pair, host):
    R = Replies(host)
    s = connect(pair.cli, pair.v4, timeout=5)
    s.setblocking(False)
    chunk = b"x" * 65536
    sent, data, end = 0, bytearray(), None
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5 and sent < 100 * 1000 * 1000 and end is None:
        r, w, _ = select.select([s], [s], [], 0.5)
        if r:
            try:
                c = s.recv(65536)
                if not c:
                    end = "eof"
                data += c
            except ConnectionResetError:
                end = "reset"
        if w and end is None:
            try:
                sent += s.send(chunk)
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                end = "reset on write"
    secs = time.monotonic() - t0
    if end not in (None, "eof"):
        s.setblocking(True)
        s.settimeout(1)
        try:
            while True:
                c = s.recv(65536)
                if not c:
                    break
                data += c
        except OSError:
            pass
    s.close()
    t.note("flood: %d octets written, %s after %.2f s, got %s" % (sent, end, secs, show(data)))
    assert end is not None, "100 MB without a line end: no close within 5 s (%d octets written)" % sent
    assert bytes(data) == R.greet_rcpt + R.flood, "got %s" % show(data)
    assert sent < 32 * MIB, "the client wrote %d octets before the server closed" % sent


def binary(pair, host, seed):
    rnd = random.Random(seed)
    bad = []
    for i in range(200):
        parts = []
        for _ in range(rnd.randint(1, 4)):
            n = rnd.choice((0, 1, 5, 30, 200, 511, 600))
            b = bytes(rnd.getrandbits(8) for _ in range(n)).replace(b"\n", b"")
            parts.append(b + rnd.choice((b"\r\n", b"\n", b"\r\r\n", b"\x00\n")))
        data = b"".join(parts) + rnd.choice((b"", b"QUIT\r\n"))
        exp, closes = model("rcpt", host, data)
        script = [data] if closes else [data, b"QUIT\r\n"]
        if not closes:
            exp = model("rcpt", host, data + b"QUIT\r\n")[0]
        r = converse(pair.cli, pair.v4, 25, script, timeout=5, greet_first=True)
        grammar(r.data, [host])
        if r.data != exp or r.end != "eof":
            bad.append("session %d (seed %d): sent %s, expected %s, got %s (%s)"
                       % (i, seed, show(data, 120), show(exp, 120), show(r.data, 120), r.end))
    assert not bad, "%d of 200 differ; %s" % (len(bad), bad[0])


def resets(pair, srv, engine, before):
    def one(kind):
        with netns(pair.cli):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect((pair.v4, 25))
        if kind >= 1:
            s.recv(4096)
        if kind == 2:
            s.send(b"EHLO half-a-li")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()

    errs = []

    def worker(k):
        for i in range(k, 3000, 6):
            try:
                one(i % 3)
            except OSError as e:
                errs.append("%s" % e)

    th = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for x in th:
        x.start()
    for x in th:
        x.join(120)
    # loadgen loads only addresses of its own namespace: the server's.
    r = loadgen(pair.srv, ["-s", "reset", "-c", "64", "-n", "20000", "-t", "10",
                           "--max-errors", "32", "%s:25" % pair.v4], timeout=120, note=t.note)
    ok, res = answering(pair.cli, pair.v4)
    wait_idle(srv.pin_dir, 15)
    time.sleep(0.5)
    after = srv_state(srv, engine)
    t.note("resets/%s: before %s, after %s; loadgen %s" % (engine, before, after, describe(r)))
    assert not errs, "%d client errors: %s" % (len(errs), errs[:3])
    assert r["errors"] == 0 and r["sessions"] == 20000, describe(r)
    assert ok, "a new session after the resets: %s" % res
    assert after["active"] == 0, "%d sessions still active" % after["active"]
    assert after.get("entries", 0) == 0, "%d sessions map entries left" % after["entries"]
    assert after["fds"] == before["fds"], "controller descriptors %d before, %d after" % (
        before["fds"], after["fds"])


def small_cases(env, engine):
    pair = env.pair(tag="%sm" % engine[0])
    host = "adv.test"
    srv = env.server(pair, engine=engine, host=host, family="4", tag="%s-misc" % engine,
                     extra=NOSRC)
    before = srv_state(srv, engine)
    t.run("adversarial/%s/flood: 100 MB without a line end: 421 and close within 5 s" % engine,
          flood, pair, host)
    t.run("adversarial/%s/binary: 200 sessions of random bytes (seed %d) exactly as modelled"
          % (engine, SEED), binary, pair, host, SEED)
    t.run("adversarial/%s/resets: 3,000 raw resets and 20,000 loadgen resets leave nothing "
          "behind" % engine, resets, pair, srv, engine, before)
    rc = srv.stop()
    t.run("adversarial/%s: exit 0 on SIGTERM" % engine, _exit0, rc)


def main():
    t.note("seed %d (MLT_SEED to repeat)" % SEED)
    for e in skipped_engines():
        t.skip("adversarial/%s" % e, "MLT_ENGINES leaves it out")
    with Env(t) as env:
        for engine in engines():
            for case in (small_cases, noread, sighup, slow):
                try:
                    case(env, engine)
                except StartError as e:
                    t.fail("adversarial/%s/%s: starts" % (engine, case.__name__), str(e))
                except Exception as e:
                    t.fail("adversarial/%s/%s" % (engine, case.__name__),
                           "%s: %s" % (type(e).__name__, e))
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
