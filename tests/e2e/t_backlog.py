#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 240
"""
t_backlog.py - a client that does not read its replies, both engines.

  non-reading pipeliner: 253-character hostname, 20,000 NOOPs (120 KB) sent
  without reading. The server may hold at most 64 KiB of replies the
  client has not acknowledged (ml_backlog_limit() of the listener's fixed
  send buffer): then `421 4.5.0 <host> too many unread replies, closing
  connection` and a close (reason unread_backlog). When the client reads,
  a second later, every octet is a 250 line for the configured name, then
  that 421, then the end: nothing else, no byte lost between, and in all
  no more than 256 KiB (its own receive buffer took some of it).
  Before the bound, the kernel engine queued all 5.8 MB of replies in
  kernel memory outside tcp_mem, the user engine in its own.

  SIGHUP during a backlog (issue 9 findings 3 and 4): rfc7504, hostname
  `a`, 60,000 empty lines in 120 writes of 500, a 4 KiB receive buffer
  read slowly, and a reload to a 253-character name midway. Every octet
  received must be reply text for the old or the new name (never both
  mixed in a line, never the old after the new), ending with the 421.
  Before the fix, the kernel engine sent ~1 MB of kernel memory and raw
  opcode octets to such a client.
"""
import os
import re
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import (PREFIX, Env, Replies, Suite, connect, counters, engines, netns, show,
                    skipped_engines)

t = Suite("t_backlog")
BACKLOG_MAX = 256 * 1024
H253 = ".".join(["h" * 62, "o" * 62, "s" * 62, "t" * 62, "x"])  # 253 octets
assert len(H253) == 253
R = Replies(H253)


def read_all(sock, timeout):
    """Everything until EOF or reset; returns (bytes, how it ended)."""
    buf = bytearray()
    sock.settimeout(timeout)
    end = "timeout"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            b = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            end = "reset"
            break
        if not b:
            end = "eof"
            break
        buf += b
    return bytes(buf), end


def non_reader(env, engine):
    pair = env.pair()
    srv = env.server(pair, engine=engine, host=H253, family="4")
    s = connect(pair.cli, pair.v4, timeout=10)
    greet = s.recv(1024)
    assert greet == R.greet, "greeting %s" % show(greet)
    # 100 lines a write: segments small enough that the per-segment
    # limit (60 KiB of replies, kernel engine) is not what stops them.
    s.settimeout(20)
    try:
        for _ in range(200):
            s.sendall(b"NOOP\r\n" * 100)
            time.sleep(0.001)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may close before the last octets
    time.sleep(1.0)  # no reading: the server decides meanwhile
    got, end = read_all(s, 15)
    s.close()
    ok_line, bye = R.ok, R.backlog
    n_ok = 0
    i = 0
    while got.startswith(ok_line, i):
        i += len(ok_line)
        n_ok += 1
    rest = got[i:]
    assert rest == bye, ("after %d 250 lines (%d octets) expected the backlog 421 and the "
                         "end, got %s (end: %s; counters %s; log %s)" % (
                             n_ok, i, show(rest), end,
                             {k: v for k, v in counters(srv.pin_dir).items()
                              if k.startswith("close") and v}, srv.log_tail(3)))
    assert end == "eof", "the connection ended by %s, not a close" % end
    assert i + len(bye) <= BACKLOG_MAX, "%d octets of replies exceed the bound %d" % (
        i + len(bye), BACKLOG_MAX)
    assert n_ok < 20000, "all 20,000 replies were produced: no bound"
    env.note("%s: %d replies (%d octets) then the 421" % (engine, n_ok, len(got)))
    # The log line comes through the server's output pipe, read by another
    # thread: wait for it as for the counters.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        st = counters(srv.pin_dir)
        if st.get("close_backlog") == 1 and st.get("active") == 0 and \
                any("end=unread_backlog" in l for l in srv.log):
            break
        time.sleep(0.2)
    assert st.get("close_backlog") == 1, "close_backlog %s" % st.get("close_backlog")
    assert any("end=unread_backlog" in l for l in srv.log), \
        "no session log line with end=unread_backlog: %s" % srv.log_tail(3)


LINE = re.compile(rb"(5[0-9][0-9]|4[0-9][0-9]|2[0-9][0-9]) (a|%s) [ -~]*\r\n" % H253.encode())


def reload_midway(env, engine):
    pair = env.pair()
    conf = "/tmp/%s-backlog-%s.conf" % (PREFIX, engine)
    with open(conf, "w") as f:
        f.write("hostname = a\ndialect = rfc7504\n")
    srv = env.server(pair, engine=engine, host=None, family="4", config=conf)
    s = connect(pair.cli, pair.v4, timeout=10, nodelay=True)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    got = bytearray()
    stop = threading.Event()
    end = ["open"]

    def reader():
        s2 = s.dup()
        s2.settimeout(0.5)
        while not stop.is_set():
            try:
                b = s2.recv(4096)
            except socket.timeout:
                continue
            except (ConnectionResetError, OSError):
                end[0] = "reset"
                return
            if not b:
                end[0] = "eof"
                return
            got.extend(b)
            time.sleep(0.01)  # slowly
        s2.close()

    th = threading.Thread(target=reader)
    th.start()
    s.settimeout(10)
    try:
        for k in range(120):
            s.sendall(b"\r\n" * 500)
            if k == 0:
                with open(conf, "w") as f:
                    f.write("hostname = %s\ndialect = rfc7504\n" % H253)
                srv.signal(signal.SIGHUP)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    th.join(60)
    stop.set()
    th.join(5)
    s.close()
    data = bytes(got)
    pos = 0
    names = []
    while pos < len(data):
        m = LINE.match(data, pos)
        if not m:
            raise AssertionError("octet %d of %d is not reply text: %s" % (
                pos, len(data), show(data[pos:pos + 120])))
        names.append(m.group(2))
        pos = m.end()
    flips = sum(1 for a, b in zip(names, names[1:]) if a != b)
    assert flips <= 1, "the name changed %d times: old after new" % flips
    byes = [getattr(Replies(h, "rfc7504"), k) for h in ("a", H253)
            for k in (("backlog", "pipeline") if engine == "kernel" else ("backlog",))]
    assert any(data.endswith(b) for b in byes), \
        "ended %s without the 421: %s" % (end[0], show(data[-200:]))
    env.note("%s: %d reply lines, %d octets, names %s -> %s, end %s" % (
        engine, len(names), len(data), names[0][:8], names[-1][:8], end[0]))


def tiny_mss(env, engine, rounds=4):
    """A client with an MSS of 88 and a 1 KiB receive buffer pipelines 5,000
    NOOPs without reading, then reads. Each skb of the server's write queue
    then carries about 76 octets of replies for some 1,300 of overhead, so
    the send buffer fills long before the backlog bound; the kernel engine's
    sk_msg must not expand a message that cannot go whole (send_fits): before
    it did that check, tcp_bpf freed the rest of such a message and sent raw
    opcode octets in its place (seen in about half the sessions). Every
    octet must be a whole reply line for the name, ending with the 421."""
    pair = env.pair()
    srv = env.server(pair, engine=engine, host=H253, family="4")
    ok_line, bye = R.ok, R.backlog
    for r in range(rounds):
        with netns(pair.cli):
            s = socket.socket()
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 88)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            s.settimeout(10)
            s.connect((pair.v4, 25))
        try:
            for _ in range(100):
                s.sendall(b"NOOP\r\n" * 50)
                time.sleep(0.002)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        time.sleep(0.5)
        got, end = read_all(s, 20)
        s.close()
        greet, _, rest = got.partition(b"\r\n")
        assert greet + b"\r\n" == R.greet, "round %d: greeting %s" % (r, show(greet[:80]))
        rest = rest[:len(rest) - len(bye)] if rest.endswith(bye) else None
        assert rest is not None, "round %d: %d octets, ended %s without the 421: %s" % (
            r, len(got), end, show(got[-120:]))
        assert rest == ok_line * (len(rest) // len(ok_line)), (
            "round %d: not only whole 250 lines before the 421: %s" % (
                r, show(rest[next(i for i in range(len(rest)) if rest[i] !=
                                  (ok_line * (len(rest) // len(ok_line) + 1))[i]):][:120])))
        assert end == "eof", "round %d: ended by %s" % (r, end)
    if engine == "kernel":
        env.note("kernel: sndbuf_full %s after %d rounds" % (
            counters(srv.pin_dir).get("sndbuf_full"), rounds))


with Env(t) as env:
    for e in engines():
        t.run("backlog/%s: a non-reading pipeliner is cut off with a 421" % e,
              non_reader, env, e)
        t.run("backlog/%s: MSS 88, 1 KiB receive buffer, not reading: whole replies, "
              "then the 421" % e, tiny_mss, env, e)
        t.run("backlog/%s: SIGHUP during a backlog: only reply text, old or new name" % e,
              reload_midway, env, e)
    for e in skipped_engines():
        t.skip("backlog/%s" % e, "engine not selected (MLT_ENGINES)")
sys.exit(t.finish())
