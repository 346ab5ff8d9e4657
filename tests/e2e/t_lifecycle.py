#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 240
"""
t_lifecycle.py - instances, reloads, shutdown and cleanup.

  two instances at once, in two namespaces, both on port 25 of the SAME
  addresses (10.231.90.1, fd00:231:5a::1): interleaved sessions, each only
  ever names its own host;
  SIGHUP with -c FILE: the hostname (and then the dialect) changes in the file;
  open sessions keep working, their next replies carry the new name, no
  session is dropped; a change to restart-only keys is named in a warning
  and the rest still applies; without a hostname anywhere, a SIGHUP does not resolve
  the default one again (no /etc/hosts, resolv.conf, nscd or DNS socket seen
  by strace: the name found at start is reused);
  `mailless status -j`: JSON naming the programs and the attachments, checked
  against bpftool;
  SIGTERM: open sessions get the shutdown 421 and a close, exit status 0,
  nothing left under the pin dir, the kernel engine's own cgroup
  (<start cgroup>/mailless-<pid>, where its sock_ops was) removed and its
  sock_ops not on the start cgroup, none of its programs loaded;
  kill -9, then `mailless unload --pin-dir`: pins removed, the killed
  instance's empty cgroup removed, nothing attached or loaded.
  the pin dir: created with mode 0700; an existing one with group/other
  access (0755) or a symlink is refused with a message saying what to do;
  a lock held by another process (a plain `flock`) names its pid.
"""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import (MAILLESS, PREFIX, PROG_NAMES, Env, Replies, Session, StartError, Suite,
                    cgroup_path, cgroup_progs, engines, ml_progs, model, converse, pins, sh,
                    show, skipped_engines)

t = Suite("t_lifecycle")


# ---------------------------------------------------------------- two instances

def two_instances(env, engine):
    name = "lifecycle/%s/two instances" % engine
    pa = env.pair(x=90, tag="%sA" % engine[0])
    pb = env.pair(x=90, tag="%sB" % engine[0])
    ha, hb = "a-%s.life.test" % engine, "b-%s.life.test" % engine
    try:
        sa = env.server(pa, engine=engine, host=ha)
        sb = env.server(pb, engine=engine, host=hb)
    except StartError as e:
        t.fail("%s: both start on the same address and port" % name, str(e))
        return
    t.ok("%s: both start on the same address and port" % name)
    Ra, Rb = Replies(ha), Replies(hb)

    def interleaved():
        for addr in (pa.v4, pa.v6):
            a = Session(pa.cli, addr)
            b = Session(pb.cli, addr)
            try:
                a.expect(Ra.greet_rcpt, what="A greeting")
                b.expect(Rb.greet_rcpt, what="B greeting")
                for line, kind in ((b"EHLO c\r\n", "ehlo"), (b"MAIL FROM:<x@y>\r\n", "ok"),
                                   (b"RCPT TO:<z@w>\r\n", "reject"), (b"DATA\r\n", "norcpt"),
                                   (b"RSET\r\n", "ok")):
                    a.cmd(line, getattr(Ra, kind), what="A reply to %s" % show(line))
                    b.cmd(line, getattr(Rb, kind), what="B reply to %s" % show(line))
                a.cmd(b"QUIT\r\n", Ra.quit, what="A QUIT")
                b.cmd(b"NOOP\r\n", Rb.ok, what="B still open after A quit")
                b.cmd(b"QUIT\r\n", Rb.quit, what="B QUIT")
                a.expect_eof()
                b.expect_eof()
            finally:
                a.close()
                b.close()

    def burst():
        """Many concurrent pipelined sessions on both; each transcript exact."""
        data = b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nNOOP\r\nQUIT\r\n"
        socks = []
        for i in range(40):
            p, h = (pa, ha) if i % 2 == 0 else (pb, hb)
            socks.append((h, Session(p.cli, p.v4 if i % 4 < 2 else p.v6)))
        try:
            for h, s in socks:
                s.send(data)
            for h, s in socks:
                s.expect(model("rcpt", h, data)[0], what="session on %s" % h)
                s.expect_eof()
        finally:
            for _, s in socks:
                s.close()

    t.run("%s: interleaved sessions each name their own host" % name, interleaved)
    t.run("%s: 40 concurrent sessions, no crosstalk" % name, burst)

    def both_stop():
        for s in (sa, sb):
            rc = s.stop()
            assert rc == 0, "%s: exit status %s: %s" % (s.name, rc, s.log_tail())
    t.run("%s: both exit 0 on SIGTERM" % name, both_stop)


# ---------------------------------------------------------------- SIGHUP

def write_config(path, pair, engine, host, dialect="rcpt", pin=None, extra=""):
    with open(path + ".tmp", "w") as f:
        f.write("# mailless test config\n")
        f.write("listen = %s:25\n" % pair.v4)
        f.write("hostname = %s\n" % host)
        f.write("dialect = %s\n" % dialect)
        f.write("timeout = 60\n")
        f.write("engine = %s\n" % engine)
        f.write("pin-dir = %s\n" % pin)
        f.write(extra)
    os.rename(path + ".tmp", path)


def wait_greeting(pair, exp, timeout=6):
    """Poll new sessions until one is greeted with exp (bounded)."""
    deadline = time.monotonic() + timeout
    last = b""
    while time.monotonic() < deadline:
        r = converse(pair.cli, pair.v4, 25, [b"QUIT\r\n"], timeout=3, greet_first=True)
        last = r.data
        if r.data.startswith(exp):
            return
        time.sleep(0.2)
    raise AssertionError("no new session greeted with %s within %ss; last: %s"
                         % (show(exp), timeout, show(last)))


def sighup(env, engine):
    name = "lifecycle/%s/SIGHUP" % engine
    pair = env.pair(x=91, tag="%sH" % engine[0])
    old, new = "old-%s.life.test" % engine, "new-%s.life.test" % engine
    Ro, Rn = Replies(old), Replies(new)
    conf = "/tmp/%s-%s.conf" % (PREFIX, engine)
    pin = env.pin_dir("hup-%s" % engine)
    write_config(conf, pair, engine, old, pin=pin)
    env.cleanup_files = getattr(env, "cleanup_files", []) + [conf]
    try:
        # Everything (listen, hostname, dialect, engine, pin-dir) from the file.
        srv = env.server(pair, engine=None, host=None, listen=[], config=conf,
                         pin_dir=pin, pin_arg=False)
    except StartError as e:
        t.fail("%s: starts from -c FILE" % name, str(e))
        return
    s1 = s2 = None
    try:
        def start_sessions():
            nonlocal s1, s2
            s1 = Session(pair.cli, pair.v4, timeout=5)
            s1.expect(Ro.greet_rcpt, what="greeting from the config's hostname")
            s1.cmd(b"EHLO c\r\n", Ro.ehlo)
            s2 = Session(pair.cli, pair.v4, timeout=5)
            s2.expect(Ro.greet_rcpt, what="second session greeting")
            s2.send(b"NOOP")  # half a line, in flight across the reload
        if not t.run("%s: starts from -c FILE, names the configured host" % name,
                     start_sessions):
            return

        def reload():
            write_config(conf, pair, engine, new, pin=pin)
            srv.signal(signal.SIGHUP)
            wait_greeting(pair, Rn.greet_rcpt)
            assert srv.alive(), "server died on SIGHUP: %s" % srv.log_tail()
        t.run("%s: new sessions greeted with the new hostname" % name, reload)

        def open_session_continues():
            s1.cmd(b"NOOP\r\n", Rn.ok, what="NOOP after reload in the open session")
            s1.cmd(b"MAIL FROM:<a@b>\r\n", Rn.ok)
            s1.cmd(b"RCPT TO:<c@d>\r\n", Rn.reject)
            s1.cmd(b"QUIT\r\n", Rn.quit)
            s1.expect_eof()
        t.run("%s: open session keeps working, replies carry the new name" % name,
              open_session_continues)

        def half_line_survives():
            s2.send(b" x\r\n").expect(Rn.ok, what="end of the line begun before the reload")
            s2.cmd(b"QUIT\r\n", Rn.quit)
            s2.expect_eof()
        t.run("%s: a line split across the reload is answered once" % name, half_line_survives)

        def dialect_change():
            write_config(conf, pair, engine, new, dialect="rfc7504", pin=pin)
            s3 = Session(pair.cli, pair.v4)
            try:
                s3.expect(Rn.greet_rcpt, what="greeting before the second reload")
                srv.signal(signal.SIGHUP)
                wait_greeting(pair, Rn.greet_rfc7504)
                R7 = Replies(new, "rfc7504")
                s3.cmd(b"EHLO c\r\n", R7.reject, what="EHLO in rfc7504 dialect after reload")
                s3.cmd(b"QUIT\r\n", R7.quit)
                s3.expect_eof()
            finally:
                s3.close()
        t.run("%s: dialect change applies to open and new sessions" % name, dialect_change)

        def restart_keys():
            # Keys the option table marks restart-only: named in a warning,
            # the running values kept, serving goes on.
            write_config(conf, pair, engine, new, dialect="rfc7504", pin=pin,
                         extra="metrics-interval = 30\nlog-rate = 7\n")
            n = len(srv.log)
            srv.signal(signal.SIGHUP)
            want = "reload: metrics-interval, log-rate changed; that applies after a restart"
            deadline = time.monotonic() + 5
            while not any(want in l for l in srv.log[n:]) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert any(want in l for l in srv.log[n:]), \
                "no warning '%s' after the SIGHUP: %s" % (want, srv.log_tail())
            assert not any("listen" in l and "restart" in l for l in srv.log[n:]), \
                "an unchanged listen named: %s" % srv.log_tail()
            wait_greeting(pair, Replies(new, "rfc7504").greet_rfc7504)
        t.run("%s: a SIGHUP names the restart-only keys it changed, and serves on" % name,
              restart_keys)

        def stops():
            rc = srv.stop()
            assert rc == 0, "exit status %s: %s" % (rc, srv.log_tail())
        t.run("%s: exit status 0 on SIGTERM after reloads" % name, stops)
    finally:
        for s in (s1, s2):
            if s:
                s.close()


NAME_LOOKUP = ("/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/host.conf",
               "/etc/gai.conf", "nscd", "SOCK_DGRAM", "htons(53)")


def sighup_no_dns(env, engine):
    """A dotless host name (set in a UTS namespace of the server's own) makes
    the default hostname a getaddrinfo() lookup; strace, attached after
    start, must see the reload read the config file and look up no name."""
    pair = env.pair(x=95, tag="%sN" % engine[0])
    conf = "/tmp/%s-%s-nodns.conf" % (PREFIX, engine)
    with open(conf, "w") as f:
        f.write("timeout = 60\n")
    env.cleanup_files = getattr(env, "cleanup_files", []) + [conf]
    trace = conf + ".strace"
    env.cleanup_files.append(trace)
    srv = env.server(pair, engine=engine, host=None, config=conf, wrap=[
        "unshare", "--uts", "sh", "-c", 'hostname mltnodot && exec "$@"', "sh"])
    st = subprocess.Popen(["strace", "-f", "-qq", "-p", str(srv.pid), "-o", trace,
                           "-e", "trace=open,openat,socket,connect"],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until strace is attached
            with open("/proc/%d/status" % srv.pid) as f:
                if any(l.startswith("TracerPid:") and l.split()[1] != "0" for l in f):
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("strace did not attach: %s" % st.stderr.read1(500))
        n = len(srv.log)
        srv.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not any("reloaded" in l for l in srv.log[n:]):
            assert time.monotonic() < deadline, "no 'reloaded' line: %s" % srv.log_tail()
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        st.send_signal(signal.SIGINT)  # strace detaches and exits
        st.wait(10)
    with open(trace) as f:
        calls = f.read().splitlines()
    assert any(conf in l for l in calls), \
        "strace did not see the reload open %s (%d calls traced)" % (conf, len(calls))
    looked = [l for l in calls if any(w in l for w in NAME_LOOKUP)]
    assert not looked, "SIGHUP looked a name up: %s" % " | ".join(looked[:4])
    greet = converse(pair.cli, pair.v4, 25, [b"QUIT\r\n"], timeout=5, greet_first=True)
    assert greet.data.startswith(b"220 mltnodot"), "greeting %s" % show(greet.data)
    assert srv.stop() == 0


# ---------------------------------------------------------------- status, SIGTERM

def status_json(pin):
    p = sh(MAILLESS, "status", "-j", "--pin-dir", pin, check=False, timeout=20)
    try:
        return p.returncode, json.loads(p.stdout), p
    except ValueError:
        raise AssertionError("status -j printed no JSON (exit %d): %s %s"
                             % (p.returncode, show(p.stdout.encode()), p.stderr.strip()))


def prog_ids_from_status(st):
    progs = st.get("programs") or []
    return {p.get("name"): p.get("id") for p in progs if isinstance(p, dict)}


def sigterm(env, engine):
    name = "lifecycle/%s/SIGTERM" % engine
    pair = env.pair(x=92, tag="%sT" % engine[0])
    host = "term-%s.life.test" % engine
    R = Replies(host)
    try:
        srv = env.server(pair, engine=engine, host=host)
    except StartError as e:
        t.fail("%s: server starts" % name, str(e))
        return
    cg = cgroup_path(srv.pid)
    start_cg = cgroup_path(os.getpid())
    ours = {}

    def status():
        rc, st, p = status_json(srv.pin_dir)
        assert rc == 0, "exit status %d: %s" % (rc, p.stderr.strip())
        assert st.get("running") is True, "running is %r" % st.get("running")
        assert st.get("pid") == srv.pid, "pid %r, server is %d" % (st.get("pid"), srv.pid)
        ids = prog_ids_from_status(st)
        for n in PROG_NAMES:
            assert ids.get(n), "program %s missing or without id in %r" % (n, st.get("programs"))
        ours.update(ids)
        att = st.get("attachments")
        assert isinstance(att, dict) and att and all(v is True for v in att.values()), \
            "attachments: %r" % att
        loaded = ml_progs()
        for n, i in ids.items():
            assert loaded.get(i) == n, "bpftool prog show has no %s with id %d" % (n, i)
        attached = [p.get("id") for p in cgroup_progs(cg)
                    if "sock_ops" in str(p.get("attach_type"))]
        assert ids["ml_sockops"] in attached, \
            "bpftool cgroup show %s: sock_ops ids %r, status says %d" % (
                cg, attached, ids["ml_sockops"])
        assert pins(srv.pin_dir), "nothing pinned under %s while running" % srv.pin_dir

    def status_user():
        """A user-engine instance is one (it said "engine kernel" and listed
        ml_sockops etc. as "NOT attached", which looks like a broken kernel
        engine to whoever reads it)."""
        rc, st, p = status_json(srv.pin_dir)
        assert rc == 0, "exit status %d: %s" % (rc, p.stderr.strip())
        assert st.get("running") is True and st.get("pid") == srv.pid, "status: %r" % st
        assert st.get("engine") == "user", "engine %r" % st.get("engine")
        assert st.get("programs") == [] and st.get("attachments") == {}, \
            "programs %r, attachments %r" % (st.get("programs"), st.get("attachments"))
        txt = sh(MAILLESS, "status", "--pin-dir", srv.pin_dir, check=False, timeout=20).stdout
        assert "engine user" in txt and "NOT attached" not in txt, "status: %s" % txt

    if engine == "kernel":
        t.run("%s: status -j while running matches bpftool" % name, status)
    else:
        t.run("%s: status names the user engine, no programs" % name, status_user)

    sessions = []

    def shutdown_421():
        a = Session(pair.cli, pair.v4, timeout=10)
        a.expect(R.greet_rcpt, what="greeting")
        a.cmd(b"EHLO c\r\n", R.ehlo)
        b = Session(pair.cli, pair.v6, timeout=10)
        b.expect(R.greet_rcpt, what="greeting")
        b.send(b"MAIL FROM:<a@b>")  # half a line
        c = Session(pair.cli, pair.v4, timeout=10)  # greeted, never talked
        c.expect(R.greet_rcpt, what="greeting")
        sessions.extend((a, b, c))
        time.sleep(0.2)
        srv.signal(signal.SIGTERM)
        for s, what in ((a, "after EHLO"), (b, "mid-line"), (c, "silent")):
            s.expect(R.shutdown, what="shutdown reply to the session %s" % what)
            s.expect_eof(allow_reset=False)

    t.run("%s: open sessions get the shutdown 421 and a close" % name, shutdown_421)
    for s in sessions:
        s.close()

    def exits_0():
        try:
            srv.proc.wait(10)
        except Exception:
            pass
        rc = srv.stop()
        assert rc == 0, "exit status %s: %s" % (rc, srv.log_tail())
    t.run("%s: exit status 0" % name, exits_0)

    def nothing_pinned():
        left = pins(srv.pin_dir)
        assert not left, "left under %s: %s" % (srv.pin_dir, " ".join(left))
    t.run("%s: nothing left under the pin dir" % name, nothing_pinned)

    if engine != "kernel":
        return

    def detached():
        if not ours:
            raise AssertionError("program ids unknown (status -j failed)")
        assert cg != start_cg, "the server ran in the start cgroup %s" % cg
        assert not os.path.exists(cg), "its cgroup %s is still there" % cg
        attached = [p for p in cgroup_progs(start_cg) if p.get("id") in ours.values()]
        assert not attached, "attached to %s: %r" % (start_cg, attached)
    t.run("%s: its own cgroup removed, sock_ops on no cgroup" % name, detached)

    def unloaded():
        if not ours:
            raise AssertionError("program ids unknown (status -j failed)")
        deadline = time.monotonic() + 3  # freeing is asynchronous (RCU)
        while True:
            left = {i: n for i, n in ml_progs().items() if i in ours.values()}
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert not left, "still loaded: %r" % left
        others = ml_progs()
        if others:
            t.note("programs named like mailless's from other instances: %r" % others)
    t.run("%s: no ml_sockops/ml_verdict/ml_msg of this instance loaded" % name, unloaded)

    def status_after():
        p = sh(MAILLESS, "status", "-j", "--pin-dir", srv.pin_dir, check=False)
        try:
            st = json.loads(p.stdout)
        except ValueError:
            raise AssertionError("no JSON: %s" % show(p.stdout.encode()))
        assert st.get("running") is False, "status after exit: %r" % st
    t.run("%s: status -j says not running afterwards" % name, status_after)


# ---------------------------------------------------------------- kill -9

def kill9(env):
    name = "lifecycle/kernel/kill -9"
    pair = env.pair(x=93, tag="k9")
    host = "k9.life.test"
    try:
        srv = env.server(pair, engine="kernel", host=host)
    except StartError as e:
        t.fail("%s: server starts" % name, str(e))
        return
    cg = cgroup_path(srv.pid)
    start_cg = cgroup_path(os.getpid())
    rc, st, _ = status_json(srv.pin_dir)
    ours = prog_ids_from_status(st)
    R = Replies(host)
    s = Session(pair.cli, pair.v4)
    s.expect(R.greet_rcpt)
    srv.kill()
    s.close()
    before = pins(srv.pin_dir)
    t.note("pinned after kill -9: %s" % (" ".join(before) or "nothing"))

    def unload():
        p = sh(MAILLESS, "unload", "--pin-dir", srv.pin_dir, check=False)
        assert p.returncode == 0, "unload exit %d: %s" % (p.returncode,
                                                          (p.stderr + p.stdout).strip())
        left = pins(srv.pin_dir)
        assert not left, "left under %s after unload: %s" % (srv.pin_dir, " ".join(left))
        assert not os.path.exists(srv.pin_dir) or not os.listdir(srv.pin_dir)
    t.run("%s: mailless unload removes the pins" % name, unload)

    def nothing_attached():
        assert ours, "program ids unknown"
        assert cg != start_cg, "the server ran in the start cgroup %s" % cg
        assert not os.path.exists(cg), "the killed server's cgroup %s is still there" % cg
        attached = [p for p in cgroup_progs(start_cg) if p.get("id") in ours.values()]
        assert not attached, "still attached to %s: %r" % (start_cg, attached)
        deadline = time.monotonic() + 3
        while True:
            left = {i: n for i, n in ml_progs().items() if i in ours.values()}
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert not left, "still loaded: %r" % left
    t.run("%s: its cgroup removed, nothing attached or loaded after unload" % name,
          nothing_attached)

    def restart():
        srv2 = env.server(pair, engine="kernel", host=host, pin_dir=srv.pin_dir)
        r = converse(pair.cli, pair.v4, 25, [b"EHLO c\r\nQUIT\r\n"], greet_first=True)
        assert r.data == R.greet_rcpt + R.ehlo + R.quit, show(r.data)
        assert srv2.stop() == 0
    t.run("%s: a new instance serves after unload" % name, restart)


# ---------------------------------------------------------------- pin dir rules

def start_refused(env, pair, engine, pin, want):
    """Start with --pin-dir pin: the kernel engine must refuse to start, the
    user engine (whose pins are optional) must start without them; both
    must say why, with every string of want in the message."""
    try:
        srv = env.server(pair, engine=engine, host="pin.life.test", pin_dir=pin, timeout=15)
    except StartError as e:
        assert engine == "kernel", "the user engine did not start: %s" % e
        srv = env.servers[-1]
    else:
        srv.stop()
        assert engine == "user", "the kernel engine started with pin dir %s" % pin
    lines = [l for l in srv.log if pin in l and ("pin dir" in l or "lock on" in l)]
    assert lines, "no message about %s: %s" % (pin, srv.log_tail())
    for w in want:
        assert w in lines[0], "%r not in %r" % (w, lines[0])
    return lines[0]


def pin_dir_rules(env, engine):
    name = "lifecycle/%s/pin dir" % engine
    pair = env.pair(x=94, tag="%sP" % engine[0])

    def created_0700():
        srv = env.server(pair, engine=engine, host="pin.life.test")
        mode = os.stat(srv.pin_dir).st_mode & 0o7777
        assert mode == 0o700, "a new pin dir has mode %04o" % mode
        assert srv.stop() == 0
    t.run("%s: a missing pin dir is created with mode 0700" % name, created_0700)

    def mode_0755():
        d = env.pin_dir("%s-0755" % engine)
        os.mkdir(d)
        os.chmod(d, 0o755)
        msg = start_refused(env, pair, engine, d, ["mode 0755", "chmod 0700 %s" % d])
        t.note("%s: %s" % (engine, msg))
    t.run("%s: an existing pin dir with mode 0755 is refused, saying chmod 0700" % name,
          mode_0755)

    def symlink():
        real = env.pin_dir("%s-real" % engine)
        link = env.pin_dir("%s-link" % engine)
        os.mkdir(real, 0o700)
        os.symlink(real, link)
        try:
            start_refused(env, pair, engine, link, ["symbolic link"])
            assert not os.listdir(real), "pinned through the link: %s" % os.listdir(real)
        finally:  # Env's cleanup would miss it once real is gone (dangling)
            os.unlink(link)
    t.run("%s: a symlink as pin dir is refused" % name, symlink)

    def locked():
        d = env.pin_dir("%s-locked" % engine)
        os.mkdir(d, 0o700)
        # Its own process group: flock(1) and its `sleep` child, which
        # inherits the locked descriptor, end together.
        holder = subprocess.Popen(["flock", d, "sleep", "60"], stdin=subprocess.DEVNULL,
                                  start_new_session=True)
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # until the lock is taken
                with open("/proc/locks") as f:
                    if any(" %d " % holder.pid in l for l in f):
                        break
                time.sleep(0.05)
            msg = start_refused(env, pair, engine, d,
                                ["another process (pid %d, flock)" % holder.pid, d])
            t.note("%s: %s" % (engine, msg))
        finally:
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait(5)
    t.run("%s: a lock held by `flock` is refused, naming its pid" % name, locked)


def main():
    for e in skipped_engines():
        t.skip("lifecycle/%s" % e, "engine excluded by MLT_ENGINES")
    try:
        with Env(t) as env:
            try:
                for engine in engines():
                    two_instances(env, engine)
                    sighup(env, engine)
                    sigterm(env, engine)
                if "kernel" in engines():
                    kill9(env)
                for engine in engines():
                    pin_dir_rules(env, engine)
                e = "user" if "user" in engines() else engines()[0] if engines() else None
                if e:  # the reload is the controller's, the same for both engines
                    t.run("lifecycle/%s/SIGHUP: no hostname lookup on reload "
                          "(the default name is resolved once, at start)" % e,
                          sighup_no_dns, env, e)
            finally:
                for f in getattr(env, "cleanup_files", []):
                    if os.path.exists(f):
                        os.unlink(f)
    except StartError as e:
        t.fail("lifecycle: setup", str(e))
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
