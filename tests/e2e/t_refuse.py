#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 180
"""
t_refuse.py - when the kernel engine cannot run, mailless says why in terms
a user can act on, and --engine auto serves with the user engine instead.

  missing capability: CAP_PERFMON, CAP_BPF or CAP_NET_ADMIN dropped from the
    bounding set (setpriv; CAP_SYS_ADMIN too, which stands in for all
    three): the message names the one missing, checked before anything is
    loaded. Before, a missing CAP_PERFMON printed the verifier's log and "the
    kernel lacks a feature", a missing CAP_NET_ADMIN "the kernel refused
    although we hold the capabilities". The XDP guard likewise names CAP_BPF
    or CAP_NET_ADMIN (it said "attaching the guard to veth0: Operation not
    permitted"), and a libxdp without its dispatcher object
    (LIBXDP_OBJECT_PATH pointing elsewhere) names xdp-dispatcher.o instead of
    "No such file or directory".
  verifier rejection: .output/tests/mailless-reject carries an sk_msg program
    with an unchecked packet read (MLT_VERIFIER_REJECT): the message names
    ml_msg, quotes the verifier's complaint (a line of the log libbpf
    printed) and asks for a report.
  The kernel too old (a missing bpf_loop() and the release that added it) is
  tested on Debian 11's 5.10 in a VM (tests/vm/t_kernel510.sh), kernel
  lockdown there too: neither can be arranged on the host.
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import MAILLESS, TOP, Env, StartError, Suite, converse

t = Suite("t_refuse")
REJECT = os.path.join(TOP, ".output", "tests", "mailless-reject")
HOST = "refuse.mx.test"


def setpriv(drop):
    return ["setpriv", "--bounding-set", drop, "--inh-caps", "-all"] if drop else []


def run(pair, argv, secs=30, env=None):
    """argv in the server namespace for at most secs (timeout's SIGTERM ends
    one that serves); returns (exit status, everything it printed)."""
    p = subprocess.run(["timeout", str(secs), "nsenter", "--net=/run/netns/%s" % pair.srv]
                       + argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, text=True, env=env)
    return p.returncode, p.stdout


def refuse(env, pair, binary, drop, secs=30):
    """The kernel engine with drop removed from the bounding set."""
    return run(pair, setpriv(drop) + [binary, "run", "-l", "%s:25" % pair.v4, "-H", HOST,
                                      "--engine", "kernel", "--pin-dir",
                                      env.pin_dir("refuse"), "-t", "5"], secs)


def serves(env, pair, binary, drop, want, error_ok=False):
    """--engine auto under the same conditions prints want (as a warning:
    nothing failed that is not recovered from), falls back to the user
    engine and answers a session."""
    wrap = setpriv(drop)
    if binary != MAILLESS:
        # Server runs MAILLESS; a wrapper that execs binary stands in.
        wrap = wrap + ["sh", "-c", 'shift; exec "$0" "$@"', binary]
    try:
        srv = env.server(pair, engine="auto", host=HOST, family="4", tag="auto",
                         extra=["-t", "5"], wrap=wrap)
    except StartError as e:
        raise AssertionError(str(e))
    r = converse(pair.cli, pair.v4, 25, [b"QUIT\r\n"], timeout=5, greet_first=True)
    rc = srv.stop()
    log = "\n".join(srv.log)
    got = r.data.decode("latin-1").replace("\r", "")
    assert got.startswith("220 %s " % HOST) and "221 " in got, \
        "no session: '%s'; log: %s" % (got, srv.log_tail(5))
    assert want in log, "no '%s' in the log: %s" % (want, srv.log_tail(30))
    errors = [l for l in srv.log if "mailless: Error" in l]
    assert error_ok or not errors, "a recovered failure logged as an error: %s" % errors
    assert "falling back to the user engine" in log, "no fallback line: %s" % srv.log_tail(30)
    assert rc == 0, "exit status %s after SIGTERM" % rc


def main(env):
    if not shutil.which("setpriv"):
        t.fail("t_refuse: setup", "setpriv missing (util-linux)")
        return
    pair = env.pair(x=61, tag="r")

    for cap in ("perfmon", "bpf", "net_admin"):
        CAP = "CAP_" + cap.upper()

        def named(cap=cap, CAP=CAP):
            rc, out = refuse(env, pair, MAILLESS, "-sys_admin,-" + cap)
            assert rc != 0, "exit status 0: %s" % out
            assert "this process lacks %s: run it as root" % CAP in out, out
            assert "libbpf:" not in out, "it tried to load first: %s" % out
        t.run("refuse: without %s the kernel engine names it" % CAP, named)
    t.run("refuse: without CAP_PERFMON, --engine auto serves with the user engine",
          serves, env, pair, MAILLESS, "-sys_admin,-perfmon", "lacks CAP_PERFMON")

    for cap in ("bpf", "net_admin"):
        CAP = "CAP_" + cap.upper()

        def guard_named(cap=cap, CAP=CAP):
            rc, out = run(pair, setpriv("-sys_admin,-" + cap) + [
                MAILLESS, "run", "-l", "%s:25" % pair.v4, "-H", HOST, "--engine", "user",
                "--xdp", "veth0", "--pin-dir", env.pin_dir("refuse")])
            assert rc != 0, "exit status 0: %s" % out
            assert re.search(r"the XDP guard needs the capabilities CAP_BPF CAP_NET_ADMIN"
                             r".*lacks %s:" % CAP, out, re.S), out
        t.run("refuse: without %s the XDP guard names it" % CAP, guard_named)

    def no_dispatcher():
        rc, out = run(pair, [MAILLESS, "run", "-l", "%s:25" % pair.v4, "-H", HOST,
                             "--engine", "user", "--xdp", "veth0", "--pin-dir",
                             env.pin_dir("refuse")],
                      env=dict(os.environ, LIBXDP_OBJECT_PATH="/nonexistent/none"))
        assert rc != 0 and "libxdp found no xdp-dispatcher.o (package libxdp1" in out, \
            "exit %d: %s" % (rc, out)
    t.run("refuse: the XDP guard without libxdp's dispatcher object names it", no_dispatcher)

    def enough():
        rc, out = refuse(env, pair, MAILLESS, "-sys_admin", secs=3)
        assert rc == 124 and "mailless: ready: engine kernel" in out, "exit %d: %s" % (rc, out)
    t.run("refuse: CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN without CAP_SYS_ADMIN are enough",
          enough)

    if not os.access(REJECT, os.X_OK):
        t.fail("refuse: verifier rejection", "%s missing: make tests-build" % REJECT)
        return

    def rejection():
        rc, out = refuse(env, pair, REJECT, "")
        mine = "\n".join(l for l in out.splitlines() if "mailless:" in l)
        assert rc != 0, "exit status 0: %s" % "\n".join(out.splitlines()[-3:])
        m = re.search(r"verifier rejected program 'ml_msg': \"(.*)\"\. ", out)
        assert m, mine
        assert m.group(1) in out.splitlines(), \
            "'%s' is not a line of the verifier's log" % m.group(1)
        assert "please report it" in out, "no request for a report: %s" % mine
        t.note("mailless-reject: %s" % next(l for l in out.splitlines()
                                            if "verifier rejected" in l)[:160])
    t.run("refuse: a verifier rejection names the program and the verifier's complaint",
          rejection)
    # A verifier rejection is a bug to report: an error even under auto.
    t.run("refuse: a verifier rejection with --engine auto serves with the user engine",
          serves, env, pair, REJECT, "",
          "Error: loading the BPF programs: Permission denied: the kernel's verifier "
          "rejected program 'ml_msg'", error_ok=True)


with Env(t) as env:
    main(env)
sys.exit(t.finish())
