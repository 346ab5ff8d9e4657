#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 600
"""
t_soak.py - the kernel engine keeps serving sessions that end the way
Postfix, Exim and smtplib end: read the 221 to QUIT and close at once,
without waiting for the server's close.

  small table: mailless started with RLIMIT_NOFILE 256 (--max-sessions 180):
  60,000 quit-close sessions, 32 in flight. A session stays open at the
  server until the controller has seen the client's close, so max-sessions
  leaves room for the controller to lag: with 100 a fresh Debian root once
  refused one session busy (a lag of about 5 ms at 13,700 sessions/s); 180
  is the most that 256 descriptors allow without waiting (64 kept spare). The controller sizes its tables
  from RLIMIT_NOFILE, so a leak of one slot per so many sessions fills them
  within seconds here instead of after 74,000 sessions or more (it did at
  about 12,800 with 256).
  250,000 sessions: default settings, 32 in flight, a `nice 10` busy loop
  beside the server (the timing the hang wants).

Each: no session failed (loadgen stops after 32 failures, each within -t 5),
a new session after the run is still greeted, the sessions map and active
sessions back to 0, and SIGTERM ends mailless within 5 s.

Expected on the kernel engine before its fix: the sessions stop being
greeted (the controller spins at 100 % CPU in its close-event table) and
SIGTERM is ignored.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import Env, StartError, Suite, engines
from soak import (CpuHog, answering, box, describe, loadgen, session_entries, sigterm,
                  wait_idle)

t = Suite("t_soak")
N_BIG = int(os.environ.get("MLT_SOAK_SESSIONS", 250000))
N_SMALL = 60000
CONC = 32


def cpu_share(pid, secs=1.0):
    """Share of one CPU the process used over secs (from /proc/PID/stat)."""
    def ticks():
        with open("/proc/%d/stat" % pid) as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return int(parts[11]) + int(parts[12])
    try:
        a = ticks()
        time.sleep(secs)
        return (ticks() - a) / os.sysconf("SC_CLK_TCK") / secs
    except OSError:
        return None


def scenario(env, name, n, nofile=None, extra=(), hog=False, limit=400):
    try:
        pair, srv = box(env, "kernel", name.split()[0], extra=extra, nofile=nofile)
    except StartError as e:
        t.fail("soak/kernel/%s: starts" % name, str(e))
        return
    ns, pin = pair.srv, srv.pin_dir
    state = {}

    def run():
        h = CpuHog(limit + 30) if hog else None
        t0 = time.monotonic()
        try:
            r = loadgen(ns, ["-s", "quit-close", "-c", str(CONC), "-n", str(n), "-t", "5",
                             "--max-errors", "32", "127.0.0.1:25"], timeout=limit,
                        note=t.note)
        finally:
            if h:
                h.stop()
        state["r"] = r
        t.note("%s: %s (%.1f s with%s the CPU hog)" % (name, describe(r), time.monotonic() - t0,
                                                       "" if hog else "out"))
        assert r["errors"] == 0 and r["sessions"] == n and not r["killed"], describe(r)

    def still_answering():
        ok, res = answering(ns)
        if not ok:
            cpu = cpu_share(srv.pid)
            raise AssertionError("a new session after %d sessions: %s; the controller used "
                                 "%s of a CPU over 1 s" % (state["r"]["sessions"], res,
                                                          "%.0f%%" % (cpu * 100) if cpu is not None
                                                          else "?"))

    def back_to_zero():
        left = wait_idle(pin, 10)
        entries = session_entries(pin)
        assert left == 0 and entries == 0, ("10 s after the run: %d active sessions, %d "
                                            "sessions map entries" % (left, entries))

    def term():
        secs = sigterm(srv)
        assert secs is not None, "mailless did not exit within 5 s of SIGTERM (SIGKILLed)"
        assert srv.rc == 0, "exit status %s after SIGTERM" % srv.rc

    if not t.run("soak/kernel/%s: %d quit-close sessions, %d in flight, none failed"
                 % (name, n, CONC), run) and "r" not in state:
        return
    t.run("soak/kernel/%s: still greets a new session" % name, still_answering)
    t.run("soak/kernel/%s: sessions map and active sessions back to 0" % name, back_to_zero)
    t.run("soak/kernel/%s: SIGTERM ends it within 5 s" % name, term)


def main():
    if "kernel" not in engines():
        t.skip("soak/kernel", "MLT_ENGINES leaves the kernel engine out")
        return t.finish()
    with Env(t) as env:
        scenario(env, "small-table (RLIMIT_NOFILE 256)", N_SMALL, nofile=256,
                 extra=["--max-sessions", "180"], limit=150)
        scenario(env, "default settings, CPU hog beside it", N_BIG, hog=True, limit=400)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
