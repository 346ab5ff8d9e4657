#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 60
# mlt-root: no
"""
t_check.py - `mailless check`: the settings as `run` would read them, and
nothing loaded. What it prints is a config file that loads back to the same
settings (defaults, and one setting of every kind); a bad value, a bad prefix
in an allow-file and a missing XDP interface exit 2 naming what is wrong and
print no settings; and it makes no bpf(), bind() or listen() call (strace).
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from mltest import MAILLESS, Suite

t = Suite("t_check")
tmp = tempfile.mkdtemp(prefix=os.environ.get("MLT_PREFIX", "mlt") + ".")


def check(*args):
    p = subprocess.run([MAILLESS, "check"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def write(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def round_trip(*args):
    rc, first, err = check(*args)
    assert rc == 0, "exit %d: %s" % (rc, err)
    assert "settings OK" in err, err
    rc, again, err = check("-c", write("again.conf", first))
    assert rc == 0, "its own output refused: %s" % err
    assert again == first, "printed twice, differs:\n%s\n---\n%s" % (first, again)
    return first


def defaults():
    out = round_trip("-c", "/dev/null")
    for line in ("listen = [::]:25", "dialect = rcpt", "timeout = 300", "#xdp ="):
        assert line in out.splitlines(), "no '%s' in: %s" % (line, out)


def every_kind():
    allow = write("allow.txt", "192.0.2.0/24 # docs\n2001:db8::/32, 198.51.100.7\n")
    conf = write("all.conf", "listen = 127.0.0.1:2525\nlisten = [::1]:2525\nhostname = mx.test\n"
                 "dialect = rfc7504\ntimeout = 7\nmetrics-listen = 127.0.0.1:9525\n"
                 "xdp = lo\nsyn-rate = 0\nallow = 203.0.113.0/24, 2001:db8:1::/48\n"
                 "allow-file = %s\n" % allow)
    out = round_trip("-c", conf, "-t", "8")
    for line in ("listen = 127.0.0.1:2525", "listen = [::1]:2525", "hostname = mx.test",
                 "dialect = rfc7504", "timeout = 8", "metrics-listen = 127.0.0.1:9525",
                 "xdp = lo", "syn-rate = 0", "allow = 203.0.113.0/24 2001:db8:1::/48",
                 "allow-file = " + allow):
        assert line in out.splitlines(), "no '%s' in: %s" % (line, out)


def refused(conf_text, want, *args):
    conf = write("bad.conf", conf_text)
    rc, out, err = check("-c", conf, *args)
    assert rc == 2, "exit %d (want 2): %s" % (rc, err)
    assert want.replace("CONF", conf) in err, "no '%s' in: %s" % (want, err)
    assert out == "", "settings printed although refused: %s" % out


def no_loading():
    if not shutil.which("strace"):
        raise AssertionError("strace is not installed")
    trace = os.path.join(tmp, "strace")
    p = subprocess.run(["strace", "-f", "-qq", "-e", "trace=bpf,bind,listen", "-o", trace,
                        MAILLESS, "check", "-c", "/dev/null"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    assert p.returncode == 0, p.stderr
    with open(trace) as f:
        calls = [l for l in f.read().splitlines() if "(" in l]
    assert not calls, "check made these calls: %s" % " | ".join(calls[:5])


try:
    t.run("check: the defaults, printed, load back to the same", defaults)
    t.run("check: a setting of every kind (file and flag), printed, loads back to the same",
          every_kind)
    t.run("check: a bad value exits 2 naming file and line", refused, "timeout = 0\n",
          "CONF:1: bad value '0' for timeout")
    bad_allow = write("bad-allow.txt", "192.0.2.0/24\n192.0.2.300\n")
    t.run("check: a bad prefix in an allow-file exits 2 naming its file and line", refused,
          "allow-file = %s\n" % bad_allow, "%s:2: bad prefix '192.0.2.300'" % bad_allow)
    t.run("check: an unreadable deny-file exits 2", refused, "deny-file = /nonexistent\n",
          "cannot read deny-file /nonexistent")
    t.run("check: a missing XDP interface exits 2", refused, "xdp = mlt-none0\n",
          "xdp: no interface 'mlt-none0'")
    t.run("check: no bpf(), bind() or listen() (strace)", no_loading)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(t.finish())
