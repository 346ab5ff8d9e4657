#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 120
"""
t_privs.py - least privilege once serving (user/privs.c, user/sandbox.c),
read from /proc/PID/status of a serving instance:
  --user nobody, started as root      Uid 65534, CapEff none (6.5+), NoNewPrivs 1,
                                      Seccomp 2; sessions, SIGHUP, stats; the pins
                                      stay for `mailless unload`, which removes them
  as the unit starts it (User=, ambient capabilities: setpriv)   the same
  --user root                         every capability, no seccomp
  an unknown user                     exit 2 with the reason, run and check
  a call outside the allow-list       one log line naming it, exit 70
    (test build: MAILLESS_TEST_FORBIDDEN, on SIGHUP)
The 6.1 VM (tests/vm/wire/run.sh) checks that CAP_BPF is what stays there.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import (Env, MAILLESS, PREFIX, TOP, Replies, Server, Session, Suite, sh)

t = Suite("t_privs")
HOOKS = os.path.join(TOP, ".output", "tests", "mailless-hooks")
CAPS = "+bpf,+perfmon,+net_admin,+net_bind_service,+dac_override"


def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def logged(srv, text, secs=3):
    """text in a log line; the reader thread may trail the exit a little."""
    deadline = time.monotonic() + secs
    while not any(text in l for l in srv.log):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def reload(srv, conf, text, line):
    """Write conf, SIGHUP, and wait (5 s at most) for the log line."""
    with open(conf, "w") as f:
        f.write(text)
    srv.signal(signal.SIGHUP)
    assert logged(srv, line, 5), "no '%s' after SIGHUP: %s" % (line, srv.log_tail())


def want_dropped(srv, capeff="0000000000000000"):
    st = status(srv.pid)
    assert st["Uid"] == ["65534"] * 4, "Uid %s" % st["Uid"]
    assert st["Gid"][0] == st["Gid"][1] != "0", "Gid %s" % st["Gid"]
    assert st["CapEff"] == [capeff] and st["CapPrm"] == [capeff], \
        "CapEff %s CapPrm %s, want %s" % (st["CapEff"], st["CapPrm"], capeff)
    assert st["CapAmb"] == ["0000000000000000"], "CapAmb %s" % st["CapAmb"]
    assert st["NoNewPrivs"] == ["1"] and st["Seccomp"] == ["2"], \
        "NoNewPrivs %s Seccomp %s" % (st["NoNewPrivs"], st["Seccomp"])


def serve_and_stop(env, srv, pair, conf, host):
    s = Session(pair.cli, pair.v4)
    s.expect(Replies(host).greet_rcpt, what="greeting")
    s.close()
    reload(srv, conf, "hostname = two.privs.test\n", "reloaded: hostname two.privs.test")
    s = Session(pair.cli, pair.v4)
    s.expect(Replies("two.privs.test").greet_rcpt, what="greeting after SIGHUP")
    s.close()
    st = sh(MAILLESS, "stats", "--pin-dir", srv.pin_dir, check=False)
    assert st.returncode == 0 and "connections admitted" in st.stdout, st.stderr
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(10) == 0, "exit %s: %s" % (srv.proc.returncode, srv.log_tail())
    assert logged(srv, "stay for `mailless unload`"), srv.log_tail()
    assert os.listdir(srv.pin_dir), "the pins are gone already"
    srv.stop()  # unload, as the unit's ExecStopPost
    assert not os.path.exists(srv.pin_dir), "left after unload: %s" % os.listdir(srv.pin_dir)


def conf_file(tmp, name):
    p = os.path.join(tmp, name)
    with open(p, "w") as f:
        f.write("hostname = one.privs.test\n")
    os.chmod(p, 0o644)
    return p


def dropped(env, tmp, engine):
    pair = env.pair()
    conf = conf_file(tmp, "%s.conf" % engine)
    srv = env.server(pair, engine=engine, host=None, config=conf, family="4",
                     extra=["--user", "nobody"])
    want_dropped(srv)
    serve_and_stop(env, srv, pair, conf, "one.privs.test")


def as_unit(env, tmp):
    pair = env.pair()
    conf = conf_file(tmp, "unit.conf")
    srv = env.server(pair, engine="kernel", host=None, config=conf, family="4",
                     wrap=["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           "--inh-caps=-all," + CAPS, "--ambient-caps=-all," + CAPS])
    want_dropped(srv)
    assert any("serving as user nobody" in l for l in srv.log), srv.log_tail()
    serve_and_stop(env, srv, pair, conf, "one.privs.test")


def guard(env, tmp):
    """The guard's reload creates LPM tries: CAP_BPF stays, and nothing else."""
    pair = env.pair()
    conf = conf_file(tmp, "guard.conf")
    srv = env.server(pair, engine="kernel", host=None, config=conf, family="4",
                     extra=["--user", "nobody", "--xdp", "veth0", "--xdp-mode", "skb"])
    want_dropped(srv, capeff="%016x" % (1 << 39))
    reload(srv, conf, "hostname = one.privs.test\ndeny = 192.0.2.0/24\nsyn-rate = 7\n",
           "reloaded")
    assert not any("keeping the guard's previous" in l for l in srv.log), srv.log_tail()
    s = Session(pair.cli, pair.v4)
    s.expect(Replies("one.privs.test").greet_rcpt, what="greeting through the guard")
    s.close()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(10) == 0, srv.log_tail()
    assert logged(srv, "and the XDP guard stay"), srv.log_tail()
    srv.stop()  # unload
    link = sh("ip", "-n", pair.srv, "-d", "link", "show", "veth0").stdout
    assert "xdp" not in link, "XDP still attached after unload: %s" % link


def root(env):
    pair = env.pair()
    srv = env.server(pair, engine="kernel", family="4", extra=["--user", "root"])
    st = status(srv.pid)
    assert st["Uid"][0] == "0" and st["Seccomp"] == ["0"], st
    assert int(st["CapEff"][0], 16) & (1 << 39), "CAP_BPF gone: %s" % st["CapEff"]
    assert not any("serving as user" in l or "no user" in l for l in srv.log), srv.log_tail()


def unknown(env):
    for cmd in ("run", "check"):
        p = subprocess.run([MAILLESS, cmd, "-c", "/dev/null", "--user", PREFIX + "-nosuch",
                            "-l", "127.0.0.1:1"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=10)
        assert p.returncode == 2, "%s: exit %d: %s" % (cmd, p.returncode, p.stderr)
        assert "no user '%s-nosuch'" % PREFIX in p.stderr, p.stderr


def forbidden(env):
    pair = env.pair()
    os.environ["MAILLESS_TEST_FORBIDDEN"] = "1"
    try:
        srv = Server(env, pair.srv, ["-l", pair.v4 + ":25", "--engine", "user", "-c",
                                     "/dev/null", "--pin-dir", env.pin_dir("forbidden"),
                                     "--user", "nobody"], pin_dir=env.pin_dir("forbidden"))
        import mltest
        saved, mltest.MAILLESS = mltest.MAILLESS, HOOKS
        try:
            srv.start()
        finally:
            mltest.MAILLESS = saved
    finally:
        del os.environ["MAILLESS_TEST_FORBIDDEN"]
    env.servers.append(srv)
    srv.signal(signal.SIGHUP)
    rc = srv.proc.wait(10)
    assert rc == 70, "exit %s: %s" % (rc, srv.log_tail())
    logged(srv, "seccomp: system call")
    line = [l for l in srv.log if "seccomp: system call" in l]
    assert line and "sysinfo (99)" in line[0] and "allow-list" in line[0], srv.log_tail()


# libxdp leaves its directory behind; like t_guard.py, remove it if it is ours.
XDPDIR = "/sys/fs/bpf/xdp"
XDPDIR_EXISTED = os.path.isdir(XDPDIR)

with Env(t) as env:
    tmp = tempfile.mkdtemp(prefix=PREFIX + "-privs.")
    os.chmod(tmp, 0o755)
    for eng in ("kernel", "user"):
        t.run("privs/%s: --user nobody: uid 65534, no capability, no_new_privs, seccomp; "
              "serves, reloads, stats; unload removes the pins" % eng, dropped, env, tmp, eng)
    t.run("privs: started as the unit starts it (User=, ambient capabilities): the same",
          as_unit, env, tmp)
    t.run("privs: --xdp: CAP_BPF stays (the reload's LPM tries), SIGHUP swaps the lists; "
          "unload detaches the guard", guard, env, tmp)
    t.run("privs: --user root keeps every privilege, no seccomp", root, env)
    t.run("privs: an unknown --user: exit 2 with the reason (run, check)", unknown, env)
    if os.access(HOOKS, os.X_OK):
        t.run("privs: a call outside the allow-list: logged by name, exit 70", forbidden, env)
    else:
        t.skip("privs: a call outside the allow-list", "%s missing: make tests-build" % HOOKS)
    sh("rm", "-rf", tmp, check=False)
if not XDPDIR_EXISTED:
    try:
        os.rmdir(XDPDIR)
    except OSError:
        pass
sys.exit(t.finish())
