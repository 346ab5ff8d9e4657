#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""
mltest.py - the harness of the mailless tests (e2e, interop, fuzz): every
Python test file imports it; there is no other.

  Suite        results: "ok - NAME", "not ok - NAME: why", "skip - NAME:
               reason", which tests/run.sh numbers into TAP 13; every case
               runs under a try so that one failure never hides the others.
  Env          network namespaces (a veth pair between a server and a client
               namespace, IPv4 10.231.X.0/24 and IPv6 fd00:231:X::/64), mailless
               servers and pin dirs, all torn down in cleanup() whatever
               happens (also on SIGTERM from the runner's time limit).
  Server       one `mailless run` inside a server namespace, entered with
               nsenter --net= (not `ip netns exec`, which hides /sys/fs/bpf).
  netns()      enter a namespace for the calling thread only (setns(2)), so
               that client sockets are created in the client namespace.
  converse()   raw client: byte scripts with chosen cuts and delays, reads
               until the server closes, returns every byte received.
  Session      stepwise raw client: send, expect exact bytes, expect close.
  TEXTS        the wire table: every reply text, per dialect (one line each).
  Replies      those replies, exact, for one hostname and dialect.
  split_replies()  whole replies (multi-line ones as one) in received octets.
  model()      a reference model of the dialogue written from the wire table
               (not from include/proto.h), used to predict transcripts.

Also a small CLI of client helpers (sessions, fill, converse, reply), which
t_kernel.py runs as separate processes: `python3 tests/e2e/mltest.py --help`.
"""
import ctypes
import json
import os
import random
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAILLESS = os.environ.get("MAILLESS", os.path.join(TOP, "mailless"))
PREFIX = os.environ.get("MLT_PREFIX", "mlt-%d" % os.getpid())
ALL_ENGINES = ("kernel", "user")
PROG_NAMES = ("ml_sockops", "ml_verdict", "ml_msg")
BPFFS = "/sys/fs/bpf"


def engines():
    """Engines to test: MLT_ENGINES="user" restricts (the rest are skipped)."""
    want = os.environ.get("MLT_ENGINES", "kernel user").split()
    return [e for e in ALL_ENGINES if e in want]


def skipped_engines():
    return [e for e in ALL_ENGINES if e not in engines()]


# --------------------------------------------------------------- reporting

class Skip(Exception):
    """Raise inside a case to report it as skipped, with a reason."""


def one_line(s, limit=1500):
    s = " | ".join(str(s).strip().splitlines())
    return s if len(s) <= limit else s[:limit] + " ...(truncated)"


def show(b, limit=300):
    """repr() of bytes, shortened in the middle when long."""
    r = repr(bytes(b))
    if len(r) <= limit:
        return r
    return r[: limit // 2] + " ...(%d bytes)... " % len(b) + r[-limit // 2:]


def bytes_diff(exp, got):
    """Human-readable description of the first difference."""
    exp, got = bytes(exp), bytes(got)
    if exp == got:
        return "identical"
    i = 0
    n = min(len(exp), len(got))
    while i < n and exp[i] == got[i]:
        i += 1
    lo = max(0, i - 60)
    return ("differ at offset %d (expected %d bytes, got %d): expected ...%s, got ...%s"
            % (i, len(exp), len(got), show(exp[lo:i + 120]), show(got[lo:i + 120])))


def assert_bytes(exp, got, what="reply"):
    if bytes(exp) != bytes(got):
        raise AssertionError("%s: %s" % (what, bytes_diff(exp, got)))


class Suite:
    def __init__(self, name):
        self.name = name
        self.passed = self.failed = self.skipped = 0
        self.t0 = time.monotonic()
        print("# %s (pid %d, prefix %s, binary %s)" % (name, os.getpid(), PREFIX, MAILLESS),
              flush=True)

    def ok(self, name):
        self.passed += 1
        print("ok - %s" % name, flush=True)

    def fail(self, name, why):
        self.failed += 1
        print("not ok - %s: %s" % (name, one_line(why)), flush=True)

    def skip(self, name, why):
        self.skipped += 1
        print("skip - %s: %s" % (name, one_line(why)), flush=True)

    def note(self, msg):
        print("# " + one_line(msg, 4000), flush=True)

    def run(self, name, fn, *args, **kw):
        """Run one case; returns True if it passed."""
        try:
            fn(*args, **kw)
        except Skip as e:
            self.skip(name, str(e))
            return False
        except AssertionError as e:
            self.fail(name, str(e) or "assertion failed")
            return False
        except (KeyboardInterrupt, SystemExit):
            self.fail(name, "interrupted")
            raise
        except Exception as e:  # a crash in a case is a failure of that case
            self.fail(name, "%s: %s" % (type(e).__name__, e))
            return False
        self.ok(name)
        return True

    def run_parallel(self, cases):
        """Run [(name, fn, args)] concurrently (for cases that mostly wait),
        then report them in order."""
        results = [None] * len(cases)

        def work(i, fn, args):
            try:
                fn(*args)
                results[i] = ("ok", None)
            except Skip as e:
                results[i] = ("skip", str(e))
            except AssertionError as e:
                results[i] = ("fail", str(e) or "assertion failed")
            except Exception as e:
                results[i] = ("fail", "%s: %s" % (type(e).__name__, e))
        threads = [threading.Thread(target=work, args=(i, fn, args), daemon=True)
                   for i, (_, fn, args) in enumerate(cases)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        for (name, _, _), res in zip(cases, results):
            kind, why = res or ("fail", "did not finish")
            if kind == "ok":
                self.ok(name)
            elif kind == "skip":
                self.skip(name, why)
            else:
                self.fail(name, why)

    def finish(self):
        self.note("%s: %d passed, %d failed, %d skipped in %.1fs"
                  % (self.name, self.passed, self.failed, self.skipped,
                     time.monotonic() - self.t0))
        return 1 if self.failed else 0


# --------------------------------------------------------------- namespaces

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def _setns(fd):
    if hasattr(os, "setns"):
        os.setns(fd, CLONE_NEWNET)
        return
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


@contextmanager
def netns(name):
    """Enter network namespace NAME in the calling thread only (setns(2) is per
    thread); sockets created inside keep that namespace for their life."""
    cur = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        tgt = os.open("/run/netns/%s" % name, os.O_RDONLY)
        try:
            _setns(tgt)
        finally:
            os.close(tgt)
        try:
            yield
        finally:
            _setns(cur)
    finally:
        os.close(cur)


def sh(*cmd, check=True, timeout=30, input=None):
    """Run a command, return CompletedProcess (text)."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, text=True, input=input)
    if check and p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), p.returncode,
                                                one_line(p.stderr or p.stdout)))
    return p


def stop_process(proc, sig=signal.SIGTERM, timeout=10):
    """End a helper process the test started (strace, tcpdump, dnsmasq):
    sig, a bounded wait, then SIGKILL."""
    if proc and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ensure_bpffs():
    r = sh("mountpoint", "-q", BPFFS, check=False)
    if r.returncode != 0:
        sh("mount", "-t", "bpf", "bpf", BPFFS)


class Pair:
    """A server namespace and a client namespace joined by veth."""

    def __init__(self, tag, x, net4=None, net6=None):
        """net4, net6: the /24 and /64 (default 10.231.X and fd00:231:X)."""
        net4 = net4 or "10.231.%d" % x
        net6 = net6 or "fd00:231:%x" % x
        self.x = x
        self.srv = "%s-%ss" % (PREFIX, tag)
        self.cli = "%s-%sc" % (PREFIX, tag)
        self.v4 = net4 + ".1"
        self.v4c = net4 + ".2"
        self.v6 = net6 + "::1"
        self.v6c = net6 + "::2"

    def create(self):
        s, c = self.srv, self.cli
        sh("ip", "netns", "add", s)
        sh("ip", "netns", "add", c)
        sh("ip", "-n", s, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
           "netns", c)
        sh("ip", "-n", s, "addr", "add", self.v4 + "/24", "dev", "veth0")
        sh("ip", "-n", s, "-6", "addr", "add", self.v6 + "/64", "dev", "veth0", "nodad")
        sh("ip", "-n", c, "addr", "add", self.v4c + "/24", "dev", "veth1")
        sh("ip", "-n", c, "-6", "addr", "add", self.v6c + "/64", "dev", "veth1", "nodad")
        for ns, dev in ((s, "veth0"), (c, "veth1")):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        # Wait until the link is up and the addresses usable (bounded).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            out = sh("ip", "-n", c, "-o", "addr", "show", "dev", "veth1", check=False).stdout
            if "tentative" not in out and sh("ip", "-n", c, "-o", "link", "show", "veth1",
                                             check=False).stdout.find("LOWER_UP") >= 0:
                break
            time.sleep(0.05)

    def destroy(self):
        for ns in (self.cli, self.srv):
            sh("ip", "netns", "del", ns, check=False)


# --------------------------------------------------------------- servers

class StartError(Exception):
    pass


class Server:
    """`mailless run ...` inside namespace ns. Log lines go to self.log."""

    def __init__(self, env, ns, args, pin_dir=None, host=None, engine=None, name="",
                 wrap=(), nofile=None):
        self.env, self.ns, self.args = env, ns, list(args)
        # argv put between nsenter and mailless (it must exec mailless), e.g.
        # unshare --uts ...
        self.wrap = list(wrap)
        self.nofile = nofile  # RLIMIT_NOFILE (soft = hard) to start it with
        self.pin_dir, self.host, self.engine, self.name = pin_dir, host, engine, name
        self.proc = None
        self.log = []
        self.ready = threading.Event()
        self.rc = None
        self.error = None

    def start(self, timeout=20):
        cmd = (["nsenter", "--net=/run/netns/%s" % self.ns] + self.wrap + [MAILLESS, "run"]
               + self.args)
        self.env.note("start %s: %s%s" % (self.name, " ".join(cmd[2:]),
                                          " (RLIMIT_NOFILE %d)" % self.nofile
                                          if self.nofile else ""))
        pre = None
        if self.nofile:
            import resource
            n = self.nofile
            pre = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=pre)
        self.reader = threading.Thread(target=self._reader, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.05):
            if self.proc.poll() is not None:
                time.sleep(0.1)  # let the reader collect the last lines
                self.error = ("mailless exited with %s before ready: %s"
                              % (self.proc.returncode, self.log_tail()))
                raise StartError(self.error)
            if time.monotonic() > deadline:
                self.error = "no 'mailless: ready' within %ss: %s" % (timeout, self.log_tail())
                self.kill()
                raise StartError(self.error)
        return self

    def _reader(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.log.append(line)
            if "mailless: ready" in line:
                self.ready.set()

    def log_tail(self, n=8):
        return " | ".join(self.log[-n:]) or "(no output)"

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stop(self, timeout=10):
        """SIGTERM, wait; returns the exit code (raises on timeout, then kills)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("mailless did not exit within %ss of SIGTERM: %s"
                                     % (timeout, self.log_tail()))
        self.rc = self.proc.returncode
        # Its last lines (the one unload_dropped looks for is printed at
        # exit) may still be in the pipe: read to its end (bounded: a child
        # that inherited the pipe could hold it open).
        self.reader.join(5)
        self.unload_dropped()
        return self.rc

    def unload_dropped(self):
        """What a server that gave up root left pinned or attached: removed
        as the unit's ExecStopPost=+mailless unload does."""
        if self.pin_dir and any("stay for `mailless unload`" in l for l in self.log):
            sh("nsenter", "--net=/run/netns/%s" % self.ns, MAILLESS, "unload",
               "--pin-dir", self.pin_dir, check=False, timeout=20)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


class Env:
    """Owns namespaces, servers and pin dirs of one test file."""

    def __init__(self, suite=None):
        self.suite = suite
        self.pairs = []
        self.servers = []
        self.pin_dirs = []
        self.npairs = 0
        self._closed = False

    def note(self, msg):
        if self.suite:
            self.suite.note(msg)

    def __enter__(self):
        ensure_bpffs()
        # libxdp makes /sys/fs/bpf/xdp (its lock and dispatcher state) and
        # leaves it: removed again at cleanup if this file's servers made it.
        self.xdpdir_existed = os.path.isdir(BPFFS + "/xdp")
        if not os.access(MAILLESS, os.X_OK):
            raise StartError("%s is missing: run `make mailless` first" % MAILLESS)
        signal.signal(signal.SIGTERM, _sigterm)
        signal.signal(signal.SIGHUP, _sigterm)
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def pair(self, x=None, tag=None, net4=None, net6=None):
        self.npairs += 1
        p = Pair(tag or str(self.npairs), x if x is not None else self.npairs, net4, net6)
        self.pairs.append(p)
        p.create()
        return p

    def pin_dir(self, tag):
        d = "%s/%s-%s" % (BPFFS, PREFIX, tag)
        self.pin_dirs.append(d)
        return d

    def server(self, pair, engine="user", host="mx.test", dialect=None, listen=None,
               extra=(), tag=None, start=True, family="both", config=None, timeout=20,
               pin_dir=None, pin_arg=True, wrap=(), nofile=None):
        """Start mailless in pair.srv. listen: list of -l values (default: the
        pair's IPv4 and IPv6 address on port 25). pin_dir: reuse this pin dir
        (default: a new one); pin_arg=False: no --pin-dir option (the config
        file names it). wrap: a command run between nsenter and mailless that
        execs its arguments (the server's pid stays mailless's). nofile:
        RLIMIT_NOFILE (soft = hard) to start it with."""
        tag = tag or "%s-%s" % (engine, len(self.servers) + 1)
        if pin_dir is None:
            pin_dir = self.pin_dir(tag)
        elif pin_dir not in self.pin_dirs:
            self.pin_dirs.append(pin_dir)
        pin = pin_dir
        args = []
        if config:
            args += ["-c", config]
        if listen is None:
            listen = []
            if family in ("both", "4"):
                listen.append("%s:25" % pair.v4)
            if family in ("both", "6"):
                listen.append("[%s]:25" % pair.v6)
        for l in listen:
            args += ["-l", l]
        if host:
            args += ["-H", host]
        if dialect:
            args += ["-d", dialect]
        if engine:
            args += ["--engine", engine]
        if pin_arg:
            args += ["--pin-dir", pin]
        args += list(extra)
        # MLT_USER=NAME: every server drops to NAME once serving (--user),
        # and its pins go with `mailless unload` after it stops, as in the
        # systemd unit (tests/e2e/t_privs.py runs the suite's core so).
        if os.environ.get("MLT_USER") and "--user" not in args and "-u" not in args:
            args += ["--user", os.environ["MLT_USER"]]
        s = Server(self, pair.srv, args, pin_dir=pin, host=host, engine=engine,
                   name="%s@%s" % (tag, pair.srv), wrap=wrap, nofile=nofile)
        s.pair = pair
        self.servers.append(s)
        if start:
            s.start(timeout=timeout)
        return s

    def cleanup(self):
        if self._closed:
            return
        self._closed = True
        for s in self.servers:
            try:
                if s.alive():
                    s.signal(signal.SIGTERM)
                    try:
                        s.proc.wait(5)
                    except subprocess.TimeoutExpired:
                        s.kill()
            except Exception:
                pass
        for d in self.pin_dirs:
            if os.path.exists(d):
                sh(MAILLESS, "unload", "--pin-dir", d, check=False, timeout=20)
            if os.path.exists(d):
                sh("rm", "-rf", d, check=False)
        for p in self.pairs:
            p.destroy()
        if not getattr(self, "xdpdir_existed", True):
            try:
                os.rmdir(BPFFS + "/xdp")  # only if empty
            except OSError:
                pass


def _sigterm(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


# --------------------------------------------------------------- wire text

# The wire table: every reply mailless sends, per dialect, one text a line
# ("<host>" is the host name; the CRLF after each line is added, EHLO's
# inner one is written). rcpt: RFC 3463 enhanced codes after the code in all
# but the greeting, HELO, EHLO and BUSY. rfc7504 answers every command but
# QUIT with "reject" and negotiates nothing: None marks what it never sends.
# The server's copy is ml_render() in user/replies.c; tests/e2e/c/wirecheck.c
# (no Python in the VMs) has a third.
TEXTS = {
    "rcpt": {
        "greet":    b"220 <host> ESMTP mailless: this host does not accept mail",
        "helo":     b"250 <host>",
        "ehlo":     b"250-<host>\r\n250 ENHANCEDSTATUSCODES",
        "ok":       b"250 2.0.0 <host> OK",
        "reject":   b"521 5.3.2 <host> does not accept mail",
        "norcpt":   b"554 5.3.2 <host> no valid recipients",
        "quit":     b"221 2.0.0 <host> closing connection",
        "toolong":  b"500 5.5.2 <host> line too long",
        "flood":    b"421 4.5.2 <host> no line end in 64 KiB, closing connection",
        "pipeline": b"421 4.5.0 <host> too many pipelined commands, closing connection",
        "backlog":  b"421 4.5.0 <host> too many unread replies, closing connection",
        "error":    b"421 4.3.0 <host> internal error, closing connection",
        "idle":     b"421 4.4.2 <host> idle timeout, closing connection",
        "maxtime":  b"421 4.4.2 <host> session time limit, closing connection",
        "busy":     b"421 <host> too many sessions, try again later",
        "shutdown": b"421 4.3.2 <host> shutting down, closing connection",
    },
    "rfc7504": {
        "greet":    b"521 <host> does not accept mail (5.3.2)",
        "helo":     None,
        "ehlo":     None,
        "ok":       None,
        "reject":   b"521 <host> does not accept mail (5.3.2)",
        "norcpt":   None,
        "quit":     b"221 <host> closing connection",
        "toolong":  b"500 <host> line too long",
        "flood":    b"421 <host> no line end in 64 KiB, closing connection",
        "pipeline": b"421 <host> too many pipelined commands, closing connection",
        "backlog":  b"421 <host> too many unread replies, closing connection",
        "error":    b"421 <host> internal error, closing connection",
        "idle":     b"421 <host> idle timeout, closing connection",
        "maxtime":  b"421 <host> session time limit, closing connection",
        "busy":     b"421 <host> too many sessions, try again later",
        "shutdown": b"421 <host> shutting down, closing connection",
    },
}


def reply_text(dialect, host, kind):
    """One reply of TEXTS as sent (CRLF included), None if never sent."""
    text = TEXTS[dialect][kind]
    return None if text is None else text.replace(b"<host>", host.encode()) + b"\r\n"


class Replies:
    """The exact replies of the wire table for hostname h in one dialect:
    R.ok, R.reject, ... (bytes, CRLF included; None where the dialect never
    sends it), and both dialects' greetings as R.greet_rcpt, R.greet_rfc7504."""

    def __init__(self, h, dialect="rcpt"):
        self.h, self.dialect = h, dialect
        for kind in TEXTS[dialect]:
            setattr(self, kind, reply_text(dialect, h, kind))
        self.greet_rcpt = reply_text("rcpt", h, "greet")
        self.greet_rfc7504 = reply_text("rfc7504", h, "greet")

    def greeting(self, dialect=None):
        if dialect not in (None, self.dialect):
            raise ValueError("Replies for %s asked for the %s greeting" % (self.dialect, dialect))
        return self.greet

    def smtplib(self, kind):
        """(code, message) as smtplib returns the reply: the lines' texts
        after their codes, joined by LF."""
        lines = getattr(self, kind).split(b"\r\n")[:-1]
        return int(lines[-1][:3]), b"\n".join(l[4:] for l in lines)


REPLY_LINE = re.compile(rb"([2-5][0-9][0-9])([ -])[^\r\n]*\r\n")


def split_replies(data):
    """Whole replies in data, multi-line ones as one ("NNN-" lines, then the
    "NNN " line): returns (list of replies, the octets after the last)."""
    out, pos, start = [], 0, 0
    while True:
        m = REPLY_LINE.match(data, pos)
        if not m:
            return out, data[start:]
        pos = m.end()
        if m.group(2) == b" ":
            out.append(data[start:pos])
            start = pos


LINE_MAX = 512
PENDING_MAX = 65536

VERBS = {b"HELO": "helo", b"EHLO": "ehlo", b"MAIL": "ok", b"RSET": "ok", b"NOOP": "ok",
         b"RCPT": "reject", b"DATA": "norcpt"}


def classify(seg):
    """seg: the octets of one line before its LF. Returns a kind."""
    if len(seg) + 1 > LINE_MAX:
        return "toolong"
    content = seg[:-1] if seg.endswith(b"\r") else seg
    if not content:
        return "empty"
    if len(content) < 4:
        return "other"
    verb, rest = content[:4].upper(), content[4:]
    if rest and rest[:1] != b" ":
        return "other"
    if verb == b"QUIT":
        return "quit" if rest.strip(b" ") == b"" else "other"
    return VERBS.get(verb, "other")


def model(dialect, host, data, greet=True):
    """Expected bytes for client bytes `data` (everything the client sends in
    the session), and whether the server closes: returns (bytes, closes)."""
    R = Replies(host, dialect)
    out = [R.greet] if greet else []
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            if len(data) - pos > PENDING_MAX:
                out.append(R.flood)
                return b"".join(out), True
            return b"".join(out), False
        seg = data[pos:nl]
        if len(seg) > PENDING_MAX:  # octet 65537 arrived before the LF
            out.append(R.flood)
            return b"".join(out), True
        pos = nl + 1
        kind = classify(seg)
        if kind == "quit":
            out.append(R.quit)
            return b"".join(out), True
        if kind == "toolong":
            out.append(R.toolong)
        elif dialect == "rfc7504":
            out.append(R.reject)
        elif kind in ("empty", "other"):
            out.append(R.reject)
        else:
            out.append(getattr(R, kind))


# --------------------------------------------------------------- clients

def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def counters(pin_dir):
    """`mailless stats -j` of the instance pinned at pin_dir: its counters
    (close reasons, replies, active, ...). Raises if it cannot be read."""
    out = subprocess.run([MAILLESS, "stats", "--pin-dir", pin_dir, "-j"], capture_output=True,
                         text=True, timeout=20)
    if out.returncode:
        raise AssertionError("mailless stats --pin-dir %s: exit %d: %s"
                             % (pin_dir, out.returncode, (out.stderr or out.stdout).strip()))
    return json.loads(out.stdout)["counters"]


def connect(ns, addr, port=25, timeout=5.0, nodelay=True):
    """A TCP connection from namespace ns (None: the current one)."""
    if ns:
        with netns(ns):
            s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    else:
        s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    if nodelay:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(timeout)
    try:
        s.connect((addr, port))
    except Exception:
        s.close()
        raise
    return s


class Result:
    def __init__(self, data, end, elapsed, send_error=None):
        self.data, self.end, self.elapsed, self.send_error = data, end, elapsed, send_error

    def __repr__(self):
        return "Result(%s, end=%s, %.2fs)" % (show(self.data), self.end, self.elapsed)


def converse(ns, addr, port, script, timeout=10.0, greet_first=False, sock=None,
             settle=None):
    """Run a byte script and read until the server closes.

    script: a list of bytes (sent as one send each, TCP_NODELAY) and numbers
    (seconds to sleep between sends, while reading). greet_first: read the
    first reply line before sending anything (otherwise the first bytes go out
    right after connect). settle: after the script, if the server has not
    closed, stop reading once nothing arrived for this many seconds (end =
    'open'). Returns a Result with end in eof, reset, timeout, open."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    s = sock or connect(ns, addr, port, timeout=timeout)
    s.setblocking(False)
    buf = bytearray()
    end = None
    send_error = None
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ)

    def pump(until, stop_on_line=False, stop_on_data=False):
        """Read until time `until` (or EOF). Returns False once closed."""
        nonlocal end
        start = len(buf)
        while end is None:
            left = until - time.monotonic()
            if left <= 0:
                return True
            if stop_on_line and b"\n" in buf:
                return True
            if stop_on_data and len(buf) > start:
                return True
            if not sel.select(min(left, 0.5)):
                continue
            try:
                chunk = s.recv(262144)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                end = "reset"
                return False
            if not chunk:
                end = "eof"
                return False
            buf.extend(chunk)
        return False

    try:
        if greet_first:
            pump(deadline, stop_on_line=True)
        for item in script:
            if end is not None:
                break
            if isinstance(item, (int, float)):
                pump(time.monotonic() + item)
                continue
            view = memoryview(bytes(item))
            while view and end is None and send_error is None:
                try:
                    n = s.send(view)
                    view = view[n:]
                except BlockingIOError:
                    # Peer window full: read while waiting to be writable.
                    ws = selectors.DefaultSelector()
                    ws.register(s, selectors.EVENT_WRITE)
                    ws.select(0.05)
                    ws.close()
                    pump(time.monotonic() + 0.001)
                except (BrokenPipeError, ConnectionResetError) as e:
                    send_error = e.__class__.__name__
                if time.monotonic() > deadline:
                    end = "timeout"
        if end is None:
            if settle is not None:
                while end is None and time.monotonic() < deadline:
                    last = len(buf)
                    pump(min(deadline, time.monotonic() + settle), stop_on_data=True)
                    if end is None and len(buf) == last:
                        end = "open"
            else:
                pump(deadline)
        if end is None:
            end = "timeout"
    finally:
        sel.close()
        if sock is None:
            s.close()
    return Result(bytes(buf), end, time.monotonic() - t0, send_error)


class Session:
    """Stepwise raw client."""

    def __init__(self, ns, addr, port=25, timeout=5.0, sock=None):
        self.sock = sock or connect(ns, addr, port, timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = bytearray()
        self.timeout = timeout
        self.eof = False
        self.reset = False
        self.transcript = bytearray()

    def send(self, data):
        self.sock.sendall(data)
        return self

    def _fill(self, want, deadline):
        while len(self.buf) < want and not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                self.eof = self.reset = True
                break
            if not chunk:
                self.eof = True
                break
            self.buf.extend(chunk)
            self.transcript.extend(chunk)

    def expect(self, exp, timeout=None, what="reply"):
        """Assert that the next bytes received are exactly exp."""
        deadline = time.monotonic() + (timeout or self.timeout)
        self._fill(len(exp), deadline)
        got = bytes(self.buf[:len(exp)])
        if got != exp:
            # Collect what else arrives soon, for a better message.
            self._fill(len(exp) + 4096, time.monotonic() + 0.2)
            raise AssertionError("%s: %s%s" % (what, bytes_diff(exp, bytes(self.buf)),
                                               " (server closed)" if self.eof else ""))
        del self.buf[:len(exp)]
        return self

    def cmd(self, line, exp, **kw):
        return self.send(line).expect(exp, **kw)

    def read_line(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf and not self.eof and time.monotonic() < deadline:
            self._fill(len(self.buf) + 1, deadline)
        i = self.buf.find(b"\n")
        if i < 0:
            line = bytes(self.buf)
            self.buf.clear()
            return line
        line = bytes(self.buf[:i + 1])
        del self.buf[:i + 1]
        return line

    def expect_eof(self, timeout=None, allow_reset=False):
        """Assert nothing more arrives and the server closes."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.eof and time.monotonic() < deadline:
            self._fill(len(self.buf) + 65536, deadline)
            if self.buf:
                break
        if self.buf:
            raise AssertionError("unexpected bytes after the last reply: %s" % show(self.buf))
        if not self.eof:
            raise AssertionError("server did not close within %ss" % (timeout or self.timeout))
        if self.reset and not allow_reset:
            raise AssertionError("server reset the connection instead of closing it")
        return self

    def expect_silence(self, secs):
        """Assert nothing arrives and the connection stays open for secs."""
        self._fill(len(self.buf) + 1, time.monotonic() + secs)
        if self.buf:
            raise AssertionError("unexpected bytes: %s" % show(self.buf))
        if self.eof:
            raise AssertionError("server closed the connection unexpectedly")
        return self

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------- BPF state

def bpftool_json(*args, timeout=20):
    p = sh("bpftool", "-j", *args, check=False, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("bpftool %s: exit %d: %s" % (" ".join(args), p.returncode,
                                                          one_line(p.stderr or p.stdout)))
    out = p.stdout.strip()
    return json.loads(out) if out else None


def pinned_entries(pin_dir, name):
    """Entries in the map pinned at PIN_DIR/NAME."""
    return len(bpftool_json("map", "dump", "pinned", "%s/%s" % (pin_dir, name)) or [])


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            if parts[sep + 1] == "cgroup2":
                return parts[4]
    raise RuntimeError("no cgroup2 mount in /proc/self/mountinfo")


def cgroup_path(pid):
    """The cgroup2 directory of process pid."""
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            if line.startswith("0::"):
                rel = line[3:].strip()
                return os.path.normpath(cgroup2_mount() + "/" + rel.lstrip("/"))
    raise RuntimeError("pid %d has no cgroup2 entry" % pid)


def cgroup_progs(path):
    """Programs attached to cgroup path: list of dicts (id, attach_type, name)."""
    return bpftool_json("cgroup", "show", path) or []


def ml_progs():
    """Loaded programs named like mailless's: {id: name}."""
    progs = bpftool_json("prog", "show") or []
    return {p["id"]: p.get("name", "") for p in progs if p.get("name") in PROG_NAMES}


def pins(pin_dir):
    """Everything under pin_dir (relative names), [] if it does not exist."""
    out = []
    for root, dirs, files in os.walk(pin_dir):
        for n in dirs + files:
            out.append(os.path.relpath(os.path.join(root, n), pin_dir))
    return sorted(out)


# --------------------------------------------------------------- CLI

def _cli():
    import argparse
    ap = argparse.ArgumentParser(description="mailless test clients, in a namespace (t_kernel.py runs them as processes)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("converse", help="send stdin, print every byte received")
    c.add_argument("ns")
    c.add_argument("addr")
    c.add_argument("port", type=int)
    c.add_argument("--greet-first", action="store_true")
    c.add_argument("--timeout", type=float, default=10)
    m = sub.add_parser("model", help="print the expected transcript for stdin")
    m.add_argument("dialect")
    m.add_argument("host")
    r = sub.add_parser("reply", help="print one reply of the wire table (TEXTS), CRLFs "
                       "included; exit 1 if the dialect never sends it")
    r.add_argument("dialect", choices=sorted(TEXTS))
    r.add_argument("host")
    r.add_argument("kind", choices=sorted(TEXTS["rcpt"]))
    k = sub.add_parser("sessions", help="N concurrent stepwise sessions carrying a marker; "
                       "exit 0 iff every reply was exact")
    k.add_argument("ns")
    k.add_argument("addr")
    k.add_argument("port", type=int)
    k.add_argument("--host", required=True)
    k.add_argument("--count", type=int, default=10)
    k.add_argument("--marker", required=True)
    k.add_argument("--close", default="quit",
                   help="how sessions end: quit, close, reset, idle (wait for the idle "
                   "421), flood, or mixed (all of these in turn)")
    k.add_argument("--timeout", type=float, default=30)
    f = sub.add_parser("fill", help="open N sessions and M more that must get the busy 421; "
                       "then close all (half by RST); exit 0 iff all replies were exact")
    f.add_argument("ns")
    f.add_argument("addr")
    f.add_argument("port", type=int)
    f.add_argument("--host", required=True)
    f.add_argument("--count", type=int, required=True)
    f.add_argument("--extra", type=int, default=0)
    f.add_argument("--map", help="pinned session map: print entries=N while all are open")
    a = ap.parse_args()
    if a.cmd == "converse":
        r = converse(a.ns, a.addr, a.port, [sys.stdin.buffer.read()],
                     timeout=a.timeout, greet_first=a.greet_first)
        sys.stdout.buffer.write(r.data)
        print("end=%s" % r.end, file=sys.stderr)
        return 0
    if a.cmd == "model":
        sys.stdout.buffer.write(model(a.dialect, a.host, sys.stdin.buffer.read())[0])
        return 0
    if a.cmd == "reply":
        text = reply_text(a.dialect, a.host, a.kind)
        sys.stdout.buffer.write(text or b"")
        return 0 if text else 1
    try:
        if a.cmd == "sessions":
            _cli_sessions(a)
        elif a.cmd == "fill":
            _cli_fill(a)
    except (AssertionError, OSError) as e:
        print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    return 0


def _rst_close(s):
    s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()


def _cli_sessions(a):
    """Open a.count sessions at once; each sends marker-carrying commands step
    by step (three rounds) and checks every reply; then each ends as --close says."""
    R = Replies(a.host)
    deadline = time.monotonic() + a.timeout
    sess = []
    try:
        for i in range(a.count):
            s = Session(a.ns, a.addr, a.port, timeout=5)
            sess.append(s)
            s.expect(R.greet_rcpt, what="greeting %d" % i)
        for step in range(3):
            for i, s in enumerate(sess):
                m = ("%s-%d-%d" % (a.marker, i, step)).encode()
                s.cmd(b"EHLO " + m + b"\r\n", R.ehlo)
                s.cmd(b"MAIL FROM:<" + m + b"@example.test>\r\n", R.ok)
                s.cmd(b"RCPT TO:<" + m + b"@example.test>\r\n", R.reject)
                s.cmd(b"NOOP " + m + b"\r\n", R.ok)
                s.cmd(b"X" + m + b"\r\n", R.reject)
            time.sleep(0.1)
        kinds = ("quit", "close", "reset", "idle", "flood")
        waiting = []
        for i, s in enumerate(sess):
            how = a.close if a.close != "mixed" else kinds[i % len(kinds)]
            if how == "quit":
                s.cmd(b"QUIT\r\n", R.quit).expect_eof()
                s.close()
            elif how == "close":
                s.close()
            elif how == "reset":
                _rst_close(s)
            elif how == "flood":
                s.send(a.marker.encode() * (70000 // len(a.marker) + 1))
                s.expect(R.flood, what="flood reply").expect_eof(allow_reset=True)
                s.close()
            elif how == "idle":
                waiting.append(s)
            else:
                raise AssertionError("unknown --close %s" % how)
        for s in waiting:
            s.expect(R.idle, timeout=max(1, deadline - time.monotonic()),
                     what="idle timeout reply").expect_eof()
            s.close()
    finally:
        for s in sess:
            s.close()
    if time.monotonic() > deadline:
        raise AssertionError("took longer than %ss" % a.timeout)


def _cli_fill(a):
    R = Replies(a.host)
    held = []
    try:
        for i in range(a.count):
            s = Session(a.ns, a.addr, a.port, timeout=5)
            held.append(s)
            s.expect(R.greet_rcpt, what="greeting %d of %d" % (i + 1, a.count))
        for i in range(a.extra):
            s = Session(a.ns, a.addr, a.port, timeout=5)
            try:
                s.expect(R.busy, what="busy reply to extra connection %d" % (i + 1))
                s.expect_eof()
            finally:
                s.close()
        if a.map:
            entries = bpftool_json("map", "dump", "pinned", a.map)
            print("entries=%d" % len(entries or []), flush=True)
        for i, s in enumerate(held):
            if i % 2:
                _rst_close(s)
            else:
                s.close()
    finally:
        for s in held:
            s.close()


if __name__ == "__main__":
    sys.exit(_cli())
