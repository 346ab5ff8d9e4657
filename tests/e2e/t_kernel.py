#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 180
"""
t_kernel.py - properties of the kernel engine only.

 - no userspace read: while sessions carrying a unique marker run, strace on
   the server never shows the marker in a read-family call (read, recvfrom,
   recvmsg, readv, recvmmsg, pread64, preadv, preadv2; all calls are traced,
   so "resumed" lines are seen too). A control run against the user engine
   must show it, or the method proves nothing;
 - no session map leak: after sessions that end by QUIT, client close,
   client RST, idle timeout, flood, and connections refused as busy,
   `bpftool map dump pinned PIN/sessions` is empty (and status -j says 0);
 - `bpftool map dump pinned PIN/config` shows the hostname field with the
   configured name;
 - ring buffer overflow: with the event ring shrunk to 4 KiB
   (MAILLESS_TEST_RING_KIB, in the test build only), 3,000 idle sessions
   quitting at once overflow it (events_lost > 0, or the test proves
   nothing), and still every one gets its 221 and its close, and the
   session map ends empty.
"""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from mltest import (MAILLESS, TOP, Env, StartError, Suite, bpftool_json, engines, one_line, sh,
                    stop_process)

t = Suite("t_kernel")
HOST = "kern.mx.test"
MARKER = "MLTMARK%dx%d" % (os.getpid(), random.randrange(1 << 30))
READS = re.compile(r"^[0-9]+ +((read|recvfrom|recvmsg|readv|recvmmsg|pread64|preadv2?)\(|"
                   r"<\.\.\. (read|recvfrom|recvmsg|readv|recvmmsg|pread64|preadv2?) resumed>)")
TMP = tempfile.mkdtemp(prefix=os.environ.get("MLT_PREFIX", "mlt") + ".")


def client(*args, timeout=60):
    """mltest.py's client commands (sessions, fill) in a namespace."""
    return subprocess.run([sys.executable, os.path.join(HERE, "mltest.py")] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout)


def traced_sessions(srv, pair, out):
    """strace every syscall of the server (not only the read family: the
    marker must not show up anywhere) while marker sessions run; returns the
    client's CompletedProcess."""
    st = subprocess.Popen(["strace", "-f", "-qq", "-s", "65536", "-e", "trace=all", "-o", out,
                           "-p", str(srv.pid)], stderr=open(out + ".err", "w"))
    try:
        for _ in range(100):  # bounded wait until strace is attached
            with open("/proc/%d/status" % srv.pid) as f:
                if re.search(r"^TracerPid:\s*[1-9]", f.read(), re.M):
                    break
            time.sleep(0.05)
        time.sleep(0.2)
        c = client("sessions", pair.cli, pair.v4, "25", "--host", HOST, "--count", "12",
                   "--marker", MARKER, "--close", "mixed", "--timeout", "40")
        time.sleep(0.3)
    finally:
        stop_process(st, signal.SIGINT, 5)
    return c


def lines(path):
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


def map_entries(pin):
    """Entries of PIN/sessions, or a string saying why they could not be read."""
    try:
        return len(bpftool_json("map", "dump", "pinned", pin + "/sessions") or [])
    except Exception as e:
        return "error: %s" % one_line(e, 200)


def wait_empty(pin):
    e = None
    for _ in range(50):  # the last closes may still be in flight
        e = map_entries(pin)
        if e == 0:
            break
        time.sleep(0.1)
    return e


def no_read(env):
    pair = env.pair(x=120, tag="k")
    try:
        srv = env.server(pair, engine="kernel", host=HOST, tag="kernel",
                         extra=["-t", "2", "--max-sessions", "30"])
    except StartError as e:
        t.fail("kernel: server starts", str(e))
        return None, None
    t.ok("kernel: server starts (-t 2 --max-sessions 30)")
    out = os.path.join(TMP, "strace.kernel")
    c = traced_sessions(srv, pair, out)

    def exact():
        assert c.returncode == 0, one_line(c.stderr)
    t.run("kernel: marker sessions under strace get exact replies", exact)
    tr = lines(out)
    reads = [l for l in tr if READS.search(l)]
    other = [l for l in tr if MARKER in l and not READS.search(l)]
    t.note("strace of the kernel engine: %d syscall lines, %d of the read family; the marker "
           "in %d other lines (e.g. the session log echoing the envelope)"
           % (len(tr), len(reads), len(other)))

    def no_userspace_read():
        err = lines(out + ".err")
        assert tr or not err, "strace failed: %s" % " ".join(err)[:500]
        seen = [l[:300] for l in reads if MARKER in l]
        assert not seen, "marker read by the server: %s" % " | ".join(seen[:3])
    t.run("kernel: no client byte read by userspace (strace: %d read-family calls, none with "
          "the marker)" % len(reads), no_userspace_read)
    return pair, srv


def control(env):
    """The same method sees the marker with the user engine."""
    pair = env.pair(x=121, tag="u")
    try:
        srv = env.server(pair, engine="user", host=HOST, family="4", tag="user",
                         extra=["-t", "2"])
    except StartError as e:
        t.fail("kernel: control: user engine under strace", str(e))
        return
    out = os.path.join(TMP, "strace.user")
    c = traced_sessions(srv, pair, out)
    if c.returncode != 0:
        t.fail("kernel: control: user engine under strace", "client: %s" % one_line(c.stderr))
    else:
        def sees():
            tr = lines(out)
            assert any(READS.search(l) and MARKER in l for l in tr), \
                "marker not in strace output (%d lines): the method is broken" % len(tr)
        t.run("kernel: control: strace does see the marker in the user engine", sees)
    srv.stop()


def no_leak(env, pair, srv):
    t.note("session map entries now: %s" % map_entries(srv.pin_dir))
    c1 = client("sessions", pair.cli, pair.v6, "25", "--host", HOST, "--count", "20",
                "--marker", "leak", "--close", "mixed", "--timeout", "40")
    c2 = client("fill", pair.cli, pair.v4, "25", "--host", HOST, "--count", "30", "--extra",
                "5", "--map", srv.pin_dir + "/sessions")
    m = re.search(r"^entries=(\d+)", c2.stdout, re.M)
    full = int(m.group(1)) if m else None

    def exact():
        assert c1.returncode == 0 and c2.returncode == 0, one_line(c1.stderr + c2.stderr)
    t.run("kernel: sessions ending every way get exact replies", exact)
    if full is not None and full >= 30:
        t.ok("kernel: session map holds the open sessions (%d with 30 open)" % full)
    else:
        t.fail("kernel: session map holds the open sessions",
               "entries with 30 sessions open: %s" % (full if full is not None else "unknown"))

    def empty():
        e = wait_empty(srv.pin_dir)
        assert e == 0, "bpftool map dump pinned %s/sessions: %s entries 5 s after the last " \
            "close: %s" % (srv.pin_dir, e, one_line(sh("bpftool", "map", "dump", "pinned",
                                                      srv.pin_dir + "/sessions",
                                                      check=False).stdout, 600))
    t.run("kernel: session map empty after all sessions closed", empty)

    def status_zero():
        st = sh(MAILLESS, "status", "-j", "--pin-dir", srv.pin_dir, check=False)
        try:
            n = json.loads(st.stdout).get("sessions")
        except ValueError:
            n = None
        assert n == 0, (st.stdout + st.stderr)[:400]
    t.run("kernel: status -j reports 0 sessions", status_zero)


def config_hostname(srv):
    d = bpftool_json("map", "dump", "pinned", srv.pin_dir + "/config")
    vals = []
    for el in d if isinstance(d, list) else []:
        if not isinstance(el, dict):
            continue
        # bpftool -j: raw hex "key"/"value", and the BTF view under "formatted"
        v = (el.get("formatted") or el).get("value")
        if isinstance(v, dict) and "hostname" in v:
            h = v["hostname"]
            if isinstance(h, list):
                h = bytes(int(x, 0) if isinstance(x, str) else x
                          for x in h).split(b"\0")[0].decode()
            vals.append(h)
    assert vals, "no hostname field in %s" % json.dumps(d)[:300]
    assert HOST in vals, "hostname values %r, expected %r" % (vals, HOST)
    t.note("config map hostname values %r" % vals)


def ring_overflow(env):
    """Lost events are recovered from the session map (the test build: the
    shipped binary has no MAILLESS_TEST_RING_KIB)."""
    pair = env.pair(x=122, tag="r")
    hooks = os.path.join(TOP, ".output", "tests", "mailless-hooks")
    wrap = ["env", "MAILLESS_TEST_RING_KIB=4", "sh", "-c", 'shift; exec "$0" "$@"', hooks]
    try:
        srv = env.server(pair, engine="kernel", host=HOST, family="4", tag="kernel-ring",
                         extra=["--max-sessions", "4000", "--max-sessions-per-source", "0",
                                "--log-rate", "0"], wrap=wrap)
    except StartError as e:
        t.fail("kernel: ring overflow: server starts", str(e))
        return
    lg = sh("nsenter", "--net=/run/netns/%s" % pair.cli,
            os.path.join(TOP, ".output", "tools", "loadgen"), "-q", "--allow-remote", "-s",
            "idle", "-c", "3000", "-d", "1", "-t", "20", "%s:25" % pair.v4, check=False,
            timeout=60)
    res = ((lg.stdout + lg.stderr).strip().splitlines() or [""])[-1]
    t.note("loadgen: %s" % res)
    c = {}
    for _ in range(50):  # the sweep runs within 100 ms; closes may be in flight
        try:
            c = json.loads(sh(MAILLESS, "stats", "-j", "--pin-dir", srv.pin_dir,
                              check=False).stdout)["counters"]
        except (ValueError, KeyError):
            c = {}
        if c.get("active") == 0:
            break
        time.sleep(0.1)
    quit, lost, active = c.get("close_quit"), c.get("events_lost"), c.get("active")
    if " held=3000 errors=0 " in res and quit == 3000 and active == 0 and (lost or 0) > 0:
        t.ok("kernel: 4 KiB ring overflowed (%d events lost), all 3000 QUITs got 221 and a "
             "close" % lost)
    else:
        t.fail("kernel: ring overflow recovered", "loadgen: %s; close_quit active "
               "events_lost: %s %s %s" % (res, quit, active, lost))
    e = map_entries(srv.pin_dir)
    if e == 0:
        t.ok("kernel: session map empty after the overflow")
    else:
        t.fail("kernel: session map empty after the overflow", "%s entries" % e)
    srv.stop()


def main(env):
    if "kernel" not in engines():
        t.skip("kernel", "engine excluded by MLT_ENGINES")
        return
    for tool in ("strace", "bpftool"):
        if not shutil.which(tool):
            t.fail("kernel: setup", "%s is not installed" % tool)
            return
    pair, srv = no_read(env)
    if not srv:
        return
    control(env)
    no_leak(env, pair, srv)
    t.run("kernel: config map shows the hostname field", config_hostname, srv)

    def stops():
        rc = srv.stop()
        assert rc == 0, "exit status %s: %s" % (rc, srv.log_tail(3))
    t.run("kernel: exit status 0 on SIGTERM", stops)
    ring_overflow(env)


try:
    with Env(t) as env:
        main(env)
finally:
    shutil.rmtree(TMP, ignore_errors=True)
sys.exit(t.finish())
