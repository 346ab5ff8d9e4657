#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 180
"""
t_robust.py - fallback and hostile conditions.

  --engine auto without BPF capabilities falls back to the user engine and
  says why; --engine kernel refuses instead, leaving no pin dir; bad
  settings are errors that name file and line; out of descriptors, accept()
  pauses and never spins, says so, and service resumes; aborted connections
  leave nothing in the kernel engine's session map.
"""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import (BPFFS, MAILLESS, PREFIX, TOP, Env, StartError, Suite, bpftool_json,
                    engines, sh, skipped_engines)

t = Suite("t_robust")
WIRE = os.path.join(TOP, ".output", "tests", "wirecheck")
DROP = "-bpf,-sys_admin,-net_admin,-perfmon"
SETPRIV = ["setpriv", "--bounding-set", DROP, "--inh-caps", DROP]


def wirecheck(pair, host):
    """tests/e2e/c/wirecheck.c from the client namespace: every row, exact."""
    r = sh("nsenter", "--net=/run/netns/%s" % pair.cli, WIRE, pair.v4, "25", host, "rcpt",
           check=False, timeout=60)
    assert r.returncode == 0, "wirecheck: exit %d: %s" % (r.returncode, r.stdout + r.stderr)


def fallback(env, pair):
    srv = None

    def starts():
        nonlocal srv
        srv = env.server(pair, engine=None, host="fb.test", family="4", tag="fb",
                         wrap=SETPRIV)
        log = "\n".join(srv.log)
        for want in ("ready: engine user", "this process lacks CAP_BPF",
                     "falling back to the user engine"):
            assert want in log, "no '%s' in: %s" % (want, srv.log_tail(20))
    if not t.run("auto engine without CAP_BPF falls back and says why", starts):
        return
    t.run("fallback user engine answers the wire", wirecheck, pair, "fb.test")

    def stops():
        rc = srv.stop()
        assert rc == 0, "status %s: %s" % (rc, srv.log_tail(20))
    t.run("fallback: SIGTERM exits 0", stops)


def refusal(env, pair):
    pin = env.pin_dir("fb2")
    r = sh("nsenter", "--net=/run/netns/%s" % pair.srv, "timeout", "10", *SETPRIV, MAILLESS,
           "run", "--engine", "kernel", "-l", "%s:25" % pair.v4, "--pin-dir", pin,
           check=False, timeout=20)
    out = r.stdout + r.stderr

    def refuses():
        assert r.returncode == 1, "rc=%d %s" % (r.returncode, out)
        assert "this process lacks CAP_BPF" in out and "--engine user" in out, out
        assert "ready" not in out, "it served: %s" % out
    t.run("--engine kernel without CAP_BPF refuses with the reason", refuses)

    def no_pins():
        assert not os.path.exists(pin), "left: %s" % os.listdir(pin)
    t.run("refused run leaves no pin dir", no_pins)


def bad_settings():
    def run(*args):
        r = sh(MAILLESS, "run", *args, check=False, timeout=20)
        return r.returncode, r.stdout + r.stderr

    def conf_error(text, want):
        """-c FILE holding text exits 2 with FILE:want."""
        with tempfile.NamedTemporaryFile("w", prefix=PREFIX + ".", suffix=".conf") as f:
            f.write(text)
            f.flush()
            rc, out = run("-c", f.name)
            assert rc == 2 and "%s:%s" % (f.name, want) in out, "rc=%d %s" % (rc, out)
    t.run("unknown key names file and line", conf_error,
          "hostname = ok.test\n# comment\nbogus = 1\n", "3: unknown key 'bogus'")
    t.run("bad value names file and line", conf_error, "timeout = 0\n",
          "1: bad value '0' for timeout")

    def bad_port():
        rc, out = run("-l", "1.2.3.4:99999")
        assert rc == 2 and "bad port" in out, "rc=%d %s" % (rc, out)
    t.run("bad listen port refused", bad_port)

    def missing_file():
        rc, out = run("-c", "/nonexistent/mailless.conf")
        assert rc == 2 and "cannot read config /nonexistent/mailless.conf" in out, \
            "rc=%d %s" % (rc, out)
    t.run("missing -c file is an error", missing_file)


def cpu_ticks(pid):
    """utime + stime of pid, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


HOLD = r"""
import socket, sys, time
socks = []
for i in range(80):
    s = socket.socket(); s.settimeout(5); s.connect((sys.argv[1], 25)); socks.append(s)
time.sleep(4)
"""


def emfile(env, pair, eng):
    try:
        srv = env.server(pair, engine=eng, host="nf.test", family="4", tag="nf-" + eng,
                         extra=["--max-sessions", "1000"])
    except StartError as e:
        t.fail("EMFILE never spins (%s)" % eng, "start: %s" % e)
        return
    sh("prlimit", "--pid", str(srv.pid), "--nofile=48:48")
    # Hold 80 connections open: the process runs out of descriptors.
    holder = subprocess.Popen(["nsenter", "--net=/run/netns/%s" % pair.cli, "python3", "-c",
                               HOLD, pair.v4])
    try:
        time.sleep(1.5)
        c0 = cpu_ticks(srv.pid)
        time.sleep(2)
        ticks = cpu_ticks(srv.pid) - c0
        if ticks <= 20:
            t.ok("EMFILE: accept pauses, %d CPU ticks in 2 s (%s)" % (ticks, eng))
        else:
            t.fail("EMFILE: accept pauses (%s)" % eng, "%d CPU ticks in 2 s (spinning)" % ticks)

        def logged():
            assert any("cannot accept" in l for l in srv.log), srv.log_tail(20)
        t.run("EMFILE is logged with advice (%s)" % eng, logged)
    finally:
        holder.wait(15)
    time.sleep(1)
    t.run("service resumes after descriptors free up (%s)" % eng, wirecheck, pair, "nf.test")
    if eng == "kernel":
        def no_entries():
            time.sleep(1)
            n = len(bpftool_json("map", "dump", "pinned", srv.pin_dir + "/sessions") or [])
            assert n == 0, "%d entries left" % n
        t.run("aborted and refused connections leave no session entries", no_entries)

    def stops():
        rc = srv.stop()
        assert rc == 0, "status %s: %s" % (rc, srv.log_tail(3))
    t.run("EMFILE run stops cleanly (%s)" % eng, stops)


with Env(t) as env:
    pair = env.pair(x=201, tag="fb")
    fallback(env, pair)
    refusal(env, pair)
    bad_settings()
    for e in engines():
        emfile(env, pair, e)
    for e in skipped_engines():
        t.skip("EMFILE never spins (%s)" % e, "engine disabled")
sys.exit(t.finish())
