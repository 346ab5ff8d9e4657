#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 240
"""
t_stats.py - counters and logs an operator can trust, in both engines.

  37 sessions of known shapes give exact per-verb, per-code and per-reason
  counts in `mailless stats -j`, on GET /metrics and in the metrics file;
  promtool accepts the scrape and the file; /metrics refuses other paths and
  methods; a scrape under load returns promptly;
  /metrics slots: a client without a complete request head is dropped 2 s
  after accept (silent or trickling), and 16 idle connections cannot lock a
  scraper out (the oldest idle one is evicted); HEAD answers GET's headers,
  Content-Length included, and no body;
  the metrics file is written through mkstemp: a symlink planted at the old
  predictable temp name is not followed, no temp file is left;
  one log line per session, with the envelope, hostile envelopes escaped and
  truncated; the per-second budget holds and what it drops is counted.
"""
import json
import os
import re
import shutil
import tempfile
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import (MAILLESS, Env, Replies, Session, Suite, converse, connect, engines,
                    netns, skipped_engines)

t = Suite("t_stats")
HOST = "st.mx.test"
TMP = tempfile.mkdtemp(prefix="mlt-stats-")
MPORT = 9525

# (name, count, script, {counter: per-session increment}); rcpt dialect.
# Every script ends the session; "close" shapes end without QUIT.
PIPE = b"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nRSET\r\nNOOP\r\nQUIT\r\n"
SHAPES = [
    ("greet-quit", 10, [b"QUIT\r\n"],
     dict(cmd_quit=1, reply_220=1, reply_221=1, close_quit=1)),
    ("dialog", 10, [b"EHLO c.test\r\n", 0.02, b"MAIL FROM:<a@b.test>\r\n", 0.02,
                    b"RCPT TO:<c@d.test>\r\n", 0.02, b"DATA\r\n", 0.02, b"QUIT\r\n"],
     dict(cmd_ehlo=1, cmd_mail=1, cmd_rcpt=1, cmd_data=1, cmd_quit=1, reply_220=1,
          reply_250=2, reply_521=1, reply_554=1, reply_221=1, close_quit=1)),
    ("pipelined", 5, [PIPE],
     dict(cmd_ehlo=1, cmd_mail=1, cmd_rcpt=1, cmd_rset=1, cmd_noop=1, cmd_quit=1,
          reply_220=1, reply_250=4, reply_521=1, reply_221=1, close_quit=1, multi_line=1)),
    ("client closes", 5, [b"NOOP\r\n", 0.2],
     dict(cmd_noop=1, reply_220=1, reply_250=1, close_client=1)),
    ("long line", 3, [b"NOOP " + b"x" * 600 + b"\r\n", 0.02, b"QUIT\r\n"],
     dict(cmd_other=1, long_lines=1, cmd_quit=1, reply_220=1, reply_500=1, reply_221=1,
          close_quit=1)),
    ("junk", 2, [b"VRFY x\r\n\r\nQUIT\r\n"],
     dict(cmd_other=2, cmd_quit=1, reply_220=1, reply_521=2, reply_221=1, close_quit=1,
          multi_line=1)),
    ("flood", 2, [b"x" * 70000],
     dict(reply_220=1, reply_421=1, close_flood=1)),
]


def expected():
    exp = {}
    for _, n, _, inc in SHAPES:
        for k, v in inc.items():
            exp[k] = exp.get(k, 0) + n * v
    exp["admitted"] = sum(n for _, n, _, _ in SHAPES)
    exp["pipeline_max"] = 6
    exp["active"] = 0
    exp["log_dropped"] = 0
    exp["events_lost"] = 0
    exp["close_busy_source"] = 0
    return exp


def run_shapes(pair):
    sent = 0
    for name, n, script, _ in SHAPES:
        for _ in range(n):
            if name == "client closes":
                s = Session(pair.cli, pair.v4)
                s.read_line()
                s.send(script[0])
                s.read_line()
                s.sock.close()
                sent += len(script[0])
                continue
            r = converse(pair.cli, pair.v4, 25, script, timeout=10, greet_first=True)
            assert r.end == "eof", "%s: server did not close (%s)" % (name, r.end)
            sent += sum(len(x) for x in script if isinstance(x, bytes))
    return sent


def counters_json(pin):
    out = subprocess.run([MAILLESS, "stats", "-j", "--pin-dir", pin], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 0, "mailless stats: %s" % out.stderr
    return json.loads(out.stdout)


def scrape(pair, path="/metrics", method="GET", timeout=5):
    with netns(pair.cli):
        req = urllib.request.Request("http://%s:%d%s" % (pair.v4, MPORT, path), method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.headers.get("Content-Type", ""), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def prom_values(text):
    vals = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            vals[k] = float(v)
    return vals


PROM = {
    "admitted": "mailless_connections_admitted_total",
    "close_quit": 'mailless_sessions_total{reason="quit"}',
    "close_client": 'mailless_sessions_total{reason="client_closed"}',
    "close_flood": 'mailless_sessions_total{reason="line_flood"}',
    "close_busy_source": 'mailless_sessions_total{reason="busy_source"}',
    "cmd_ehlo": 'mailless_commands_total{verb="ehlo"}',
    "cmd_rcpt": 'mailless_commands_total{verb="rcpt"}',
    "cmd_other": 'mailless_commands_total{verb="other"}',
    "reply_250": 'mailless_replies_total{code="250"}',
    "reply_521": 'mailless_replies_total{code="521"}',
    "long_lines": "mailless_long_lines_total",
    "active": "mailless_sessions_active",
}


def promtool(text, what):
    if not shutil.which("promtool"):
        raise AssertionError("promtool missing (Debian package prometheus)")
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0, "promtool on %s: %s %s" % (what, r.stdout, r.stderr)


def exact_counts(env, engine):
    pair = env.pair(x=140 + len(env.servers))
    mfile = os.path.join(TMP, "metrics-%s.prom" % engine)
    srv = env.server(pair, engine=engine, host=HOST, extra=[
        "--metrics-listen", "%s:%d" % (pair.v4, MPORT), "--metrics-file", mfile,
        "--metrics-interval", "1", "--log-rate", "1000"])
    sent = run_shapes(pair)
    time.sleep(0.6)  # the controller's counters are flushed every 100 ms
    exp = expected()
    got = counters_json(srv.pin_dir)
    c = got["counters"]
    diff = {k: (v, c.get(k)) for k, v in exp.items() if c.get(k) != v}
    zero = [k for k, v in c.items() if k not in exp and k not in ("rx_bytes", "tx_bytes")
            and v != 0]
    assert not diff and not zero, "counters (want, got): %s; unexpected non-zero: %s" % (
        diff, zero)
    # Octets: everything but the two floods is counted exactly; a flood's
    # bytes after the 421 are discarded uncounted.
    flood = 70000 * 2
    assert sent - flood + 65537 * 2 <= c["rx_bytes"] <= sent, "rx_bytes %d, sent %d" % (
        c["rx_bytes"], sent)
    R = Replies(HOST)
    tx = (37 * len(R.greet_rcpt) + 35 * 0)
    per = {"reply_221": R.quit, "reply_554": R.norcpt, "reply_500": R.toolong,
           "reply_421": R.flood}
    tx += sum(exp[k] * len(v) for k, v in per.items())
    tx += exp["reply_521"] * len(R.reject)
    # EHLO's two-line reply is one 250 (in reply_250 once), all its octets
    # in tx_bytes; the other 250s are OK.
    ehlo = exp["cmd_ehlo"]
    tx += ehlo * len(R.ehlo) + (exp["reply_250"] - ehlo) * len(R.ok)
    assert c["tx_bytes"] == tx, "tx_bytes %d, want %d" % (c["tx_bytes"], tx)
    assert got["engine"] == engine and got["dialect"] == "rcpt" and got["hostname"] == HOST, got

    # The same numbers on /metrics and in the file.
    status, ctype, text = scrape(pair)
    assert status == 200 and "version=0.0.4" in ctype, (status, ctype)
    promtool(text, "/metrics")
    vals = prom_values(text)
    for k, name in PROM.items():
        assert vals.get(name) == exp[k], "%s: %s, want %s" % (name, vals.get(name), exp[k])
    assert ('mailless_build_info{version="%s",engine="%s",dialect="rcpt"}'
            % (got["version"], engine)) in vals, "build_info missing"
    time.sleep(1.2)
    with open(mfile) as f:
        ftext = f.read()
    promtool(ftext, "the metrics file")
    fvals = prom_values(ftext)
    assert fvals.get(PROM["cmd_rcpt"]) == exp["cmd_rcpt"], "file: %s" % fvals.get(PROM["cmd_rcpt"])
    assert not [p for p in os.listdir(TMP) if ".tmp." in p], "temp files left"

    # --watch: printed again after each interval, with per-second rates.
    w = subprocess.run(["timeout", "-s", "INT", "2.6", MAILLESS, "stats", "--watch", "1",
                        "--pin-dir", srv.pin_dir], capture_output=True, text=True)
    tables = w.stdout.count("connections admitted")
    assert tables >= 2 and "/s" in w.stdout and w.returncode in (0, 124), (
        "stats --watch: %d tables, rc %s: %s" % (tables, w.returncode, w.stdout[-300:]))

    # One log line per session.
    time.sleep(0.2)
    lines = [l for l in srv.log if " session client=" in l]
    assert len(lines) == 37, "%d session lines, want 37: %s" % (len(lines), lines[-3:])
    ends = {}
    for l in lines:
        m = re.search(r" end=(\S+)$", l)
        ends[m.group(1)] = ends.get(m.group(1), 0) + 1
    assert ends == {"quit": 30, "client_closed": 5, "line_flood": 2}, ends
    d = [l for l in lines if "verbs=EHLO,MAIL,RCPT,DATA,QUIT " in l]
    assert len(d) == 10 and 'from="<a@b.test>" rcpt="<c@d.test>" rcpts=1' in d[0], d[:1]
    assert "client=%s:" % pair.v6 not in d[0] and "local=%s:25" % pair.v4 in d[0], d[0]
    srv.stop()


def http_errors(env, engine):
    pair = env.pair(x=150 + len(env.servers))
    env.server(pair, engine=engine, host=HOST,
               extra=["--metrics-listen", "%s:%d" % (pair.v4, MPORT)])
    assert scrape(pair, "/")[0] == 404, "GET / is not 404"
    assert scrape(pair, "/metrics", "POST")[0] == 405, "POST is not 405"
    # Garbage and a silent client do not disturb the next scrape.
    with netns(pair.cli):
        import socket
        g = socket.create_connection((pair.v4, MPORT), timeout=5)
        g.sendall(b"\x16\x03\x01garbage\r\n\r\n")
        assert g.recv(100).startswith(b"HTTP/1.1 400"), "garbage is not 400"
        g.close()
        silent = socket.create_connection((pair.v4, MPORT), timeout=5)
    assert scrape(pair)[0] == 200, "scrape after garbage"
    silent.close()


def raw_http(pair, req, timeout=8):
    """Send req on a new connection, read to EOF: (head text, body bytes)."""
    import socket
    with netns(pair.cli):
        c = socket.create_connection((pair.v4, MPORT), timeout=timeout)
    try:
        c.sendall(req)
        data = b""
        while True:
            x = c.recv(65536)
            if not x:
                break
            data += x
    finally:
        c.close()
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, "no end of response head: %r" % data[:200]
    return head.decode(), body


def content_length(head):
    m = re.search(r"(?im)^content-length: *(\d+)\r?$", head)
    assert m, "no Content-Length in %r" % head
    return int(m.group(1))


def metrics_server(env, engine):
    pair = env.pair(x=155 + len(env.servers))
    env.server(pair, engine=engine, host=HOST,
               extra=["--metrics-listen", "%s:%d" % (pair.v4, MPORT)])
    return pair


def head_like_get(pair):
    """HEAD: the same status line and headers as GET, no body."""
    hh, hb = raw_http(pair, b"HEAD /metrics HTTP/1.1\r\nHost: m\r\n\r\n")
    gh, gb = raw_http(pair, b"GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n")
    assert gh.startswith("HTTP/1.1 200") and hh.startswith("HTTP/1.1 200"), (hh, gh)
    assert content_length(gh) == len(gb) > 0, "GET: Content-Length %d, body %d" % (
        content_length(gh), len(gb))
    assert content_length(hh) == content_length(gh), \
        "HEAD Content-Length %d, GET's %d" % (content_length(hh), content_length(gh))
    assert hb == b"", "HEAD sent a body of %d bytes" % len(hb)
    assert hh == gh, "HEAD and GET headers differ: %r vs %r" % (hh, gh)
    # A head that never ends within 4 KiB is 431 (exactly 4096 octets sent:
    # unread octets would turn the close into a reset); a NUL in a header
    # is fine.
    big = b"GET /metrics HTTP/1.1\r\nX: "
    h431, _ = raw_http(pair, big + b"a" * (4096 - len(big)))
    assert h431.startswith("HTTP/1.1 431"), h431
    hn, _ = raw_http(pair, b"GET /metrics HTTP/1.1\r\nX: a\x00b\r\n\r\n")
    assert hn.startswith("HTTP/1.1 200"), hn


def head_deadline(pair, engine):
    """2 s from accept to a complete head, silent or trickling. (Bound:
    3.5 s; the whole-scrape limit of 5 s fails it.)"""
    import socket

    def closed_after(sock, trickle):
        t0 = time.monotonic()
        sock.settimeout(0.3)
        if trickle:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nX: ")
        while time.monotonic() - t0 < 8:
            try:
                if sock.recv(100) == b"":
                    return time.monotonic() - t0
            except socket.timeout:
                if trickle:
                    sock.sendall(b"y")
            except ConnectionResetError:
                return time.monotonic() - t0
        return None
    for trickle in (False, True):
        with netns(pair.cli):
            c = socket.create_connection((pair.v4, MPORT), timeout=5)
        took = closed_after(c, trickle)
        c.close()
        what = "trickling" if trickle else "silent"
        assert took is not None and took < 3.5, "%s client not dropped %s" % (
            what, "within 8 s" if took is None else "until %.1f s" % took)
        t.note("%s: %s client without a complete head dropped after %.2f s" % (
            engine, what, took))


def idle_evicted(pair):
    """16 idle connections take every slot; the next scraper is served and
    the oldest idle one is the one evicted."""
    import socket
    idle = []
    with netns(pair.cli):
        for _ in range(16):
            idle.append(socket.create_connection((pair.v4, MPORT), timeout=5))
            time.sleep(0.005)  # distinct accept times, oldest first
    try:
        time.sleep(0.1)
        for round_ in range(2):
            if round_:  # the first scrape's slot is free again: fill it
                with netns(pair.cli):
                    idle.append(socket.create_connection((pair.v4, MPORT), timeout=5))
                time.sleep(0.05)
            status, _, text = scrape(pair, timeout=3)
            assert status == 200 and "mailless_connections_admitted_total" in text, \
                "scrape %d with 16 idle connections: %s" % (round_ + 1, status)
            victim = idle[round_]
            victim.settimeout(1)
            try:
                gone = victim.recv(10) == b""
            except ConnectionResetError:
                gone = True
            except socket.timeout:
                gone = False
            assert gone, "the oldest idle connection (#%d) was not evicted" % (round_ + 1)
            young = idle[-1]
            young.setblocking(False)
            try:
                still = young.recv(10) != b""
            except BlockingIOError:
                still = True
            except ConnectionResetError:
                still = False
            assert still, "the youngest idle connection was closed, not the oldest"
    finally:
        for c in idle:
            c.close()


def file_symlink(env, engine):
    """A symlink planted at the old temp name PATH.tmp.PID is not followed."""
    d = os.path.join(TMP, "sym")
    os.mkdir(d)
    mfile = os.path.join(d, "m.prom")
    victim = os.path.join(TMP, "victim")
    with open(victim, "w") as f:
        f.write("precious\n")
    pair = env.pair(x=165 + len(env.servers))
    srv = env.server(pair, engine=engine, host=HOST,
                     extra=["--metrics-file", mfile, "--metrics-interval", "1"])
    planted = "%s.tmp.%d" % (mfile, srv.pid)
    for _ in range(50):  # the old code's own temp file may be there a moment
        try:
            os.symlink(victim, planted)
            break
        except FileExistsError:
            time.sleep(0.01)
    assert os.path.islink(planted), "could not plant %s" % planted
    deadline = time.monotonic() + 6
    first = os.stat(mfile).st_mtime_ns if os.path.exists(mfile) else None
    while time.monotonic() < deadline:  # two more writes after the plant
        time.sleep(0.5)
        if os.path.lexists(mfile) and os.lstat(mfile).st_mtime_ns != first:
            break
    time.sleep(1.2)
    srv.stop()
    with open(victim) as f:
        v = f.read()
    assert v == "precious\n", "the victim behind the symlink was written: %r" % v[:80]
    assert not os.path.islink(mfile), "the metrics file is now a symlink to %s" % (
        os.readlink(mfile))
    st = os.stat(mfile)
    assert oct(st.st_mode & 0o777) == oct(0o644), "metrics file mode %o" % (st.st_mode & 0o777)
    with open(mfile) as f:
        assert "mailless_connections_admitted_total" in f.read(), "metrics file lacks metrics"
    left = sorted(p for p in os.listdir(d) if ".tmp." in p and os.path.join(d, p) != planted)
    assert not left, "temp files left: %s" % left


def scrape_under_load(env, engine):
    pair = env.pair(x=160 + len(env.servers))
    env.server(pair, engine=engine, host=HOST,   # 300 held from one address:
               extra=["--metrics-listen", "%s:%d" % (pair.v4, MPORT),
                      "--max-sessions-per-source", "0"])
    stop = threading.Event()
    held = [connect(pair.cli, pair.v4, 25) for _ in range(300)]

    def load():
        while not stop.is_set():
            converse(pair.cli, pair.v4, 25, [PIPE], timeout=10, greet_first=True)
    th = [threading.Thread(target=load) for _ in range(4)]
    for x in th:
        x.start()
    try:
        time.sleep(0.5)
        worst = 0
        for _ in range(5):
            t0 = time.monotonic()
            status, _, text = scrape(pair, timeout=5)
            worst = max(worst, time.monotonic() - t0)
            assert status == 200, status
        active = prom_values(text)["mailless_sessions_active"]
        assert active >= 300, "sessions_active %s with 300 held" % active
        assert worst < 1.0, "a scrape under load took %.2f s" % worst
        t.note("%s: slowest of 5 scrapes under load %.0f ms" % (engine, worst * 1000))
    finally:
        stop.set()
        for x in th:
            x.join()
        for s in held:
            s.close()


def hostile_and_budget(env, engine):
    pair = env.pair(x=170 + len(env.servers))
    srv = env.server(pair, engine=engine, host=HOST, extra=["--log-rate", "5"])
    evil = b"MAIL FROM:<\x1b[31mred\x00nul\xff" + b"A" * 10000 + b">\r\n"
    r = converse(pair.cli, pair.v4, 25, [evil, 0.05, b"RCPT TO:<\"x\\y\"@z>\r\n", 0.05,
                                         b"QUIT\r\n"], timeout=10, greet_first=True)
    assert r.end == "eof", r.end
    for _ in range(39):
        converse(pair.cli, pair.v4, 25, [b"QUIT\r\n"], timeout=10, greet_first=True)
    time.sleep(0.6)
    lines = [l for l in srv.log if " session client=" in l]
    first = lines[0] if lines else ""
    assert "\x1b" not in first and "\\x1b[31mred\\x00nul\\xff" in first, first[:200]
    total = len(evil) - len(b"MAIL \r\n")
    assert "...(%d octets)" % total in first, "no truncation mark: %s" % first[:300]
    assert len(first) < 700, "log line of %d characters" % len(first)
    assert 'rcpt="<\\x22x\\x5cy\\x22@z>"' in first, first
    c = counters_json(srv.pin_dir)["counters"]
    # 5 lines of burst, plus 5 a second while the 40 sessions last.
    assert 5 <= len(lines) <= 5 + 5 * 3, "%d lines with --log-rate 5" % len(lines)
    assert len(lines) + c["log_dropped"] == 40, "%d lines + %d dropped != 40" % (
        len(lines), c["log_dropped"])


def json_names(env, engine):
    """status -j and stats -j are JSON whatever the pin dir's name holds:
    names from the file system are escaped, not pasted."""
    pair = env.pair(x=190 + len(env.servers))
    pin = env.pin_dir("%s-q" % engine) + '-"q\\b'
    srv = env.server(pair, engine=engine, host=HOST, pin_dir=pin)
    for cmd in (["status", "-j"], ["stats", "-j"]):
        out = subprocess.run([MAILLESS] + cmd + ["--pin-dir", srv.pin_dir],
                             capture_output=True, text=True, timeout=10)
        try:
            doc = json.loads(out.stdout)
        except ValueError as e:
            raise AssertionError("mailless %s: not JSON (%s): %s" % (" ".join(cmd), e,
                                                                    out.stdout[:300]))
        if cmd[0] == "status":
            assert doc["pin_dir"] == pin, (doc["pin_dir"], pin)
            assert doc["maps"][0] == pin + "/config", doc["maps"][:1]
        else:
            assert doc["hostname"] == HOST, doc.get("hostname")
    # Nothing pinned there: the error is JSON too, and names the dir.
    gone = pin + "-none"
    for cmd in (["status", "-j"], ["stats", "-j"]):
        out = subprocess.run([MAILLESS] + cmd + ["--pin-dir", gone], capture_output=True,
                             text=True, timeout=10)
        doc = json.loads(out.stdout)
        assert doc.get("pin_dir") == gone or gone in doc.get("error", ""), doc


def main():
    for e in skipped_engines():
        t.skip("stats/%s" % e, "engine disabled by MLT_ENGINES")
    with Env(t) as env:
        for e in engines():
            t.run("stats/%s: 37 sessions give exact counters, /metrics, file, log" % e,
                  exact_counts, env, e)
            t.run("stats/%s: /metrics refuses other paths and methods" % e,
                  http_errors, env, e)
            t.run("stats/%s: a scrape under load returns promptly" % e,
                  scrape_under_load, env, e)
        e = engines()[0] if engines() else None
        if e:  # the endpoint and the file are the controller's, the same in both
            mp = []
            t.run("stats/%s: starts with --metrics-listen" % e,
                  lambda: mp.append(metrics_server(env, e)))
            mp = mp[0] if mp else None
            t.run("stats/%s: HEAD answers GET's headers and Content-Length, no body"
                  % e, head_like_get, mp)
            t.run("stats/%s: a client without a complete head is dropped after 2 s"
                  % e, head_deadline, mp, e)
            t.run("stats/%s: 16 idle connections do not lock a scraper out "
                  "(the oldest is evicted)" % e, idle_evicted, mp)
            t.run("stats/%s: metrics file: a planted symlink is not followed, "
                  "no temp file left" % e, file_symlink, env, e)
        for e in engines():
            t.run("stats/%s: hostile envelopes escaped and truncated; log budget holds" % e,
                  hostile_and_budget, env, e)
            t.run("stats/%s: status -j and stats -j stay JSON with '\"' and '\\\\' "
                  "in the pin dir" % e, json_names, env, e)
    shutil.rmtree(TMP, ignore_errors=True)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
