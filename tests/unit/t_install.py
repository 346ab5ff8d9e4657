#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 120
# mlt-root: no
"""
t_install.py - `make install` into a DESTDIR with Debian's paths (PREFIX=/usr):
the binary (0755), both man pages, the systemd unit naming the installed
binary, bash completion, and an example /etc/mailless.conf that `mailless
check` accepts; a second install keeps an edited config; `make uninstall`
removes all but the config. And the unit itself: `systemd-analyze verify`
finds nothing, `systemd-analyze security --offline=yes` rates it 2.0 or less,
and it is Type=notify with check before start and reload and unload after stop.
"""
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from mltest import TOP, Suite

t = Suite("t_install")
tmp = tempfile.mkdtemp(prefix=os.environ.get("MLT_PREFIX", "mlt") + ".")
D = os.path.join(tmp, "root")
FILES = {"usr/sbin/mailless": 0o755, "usr/share/man/man8/mailless.8": 0o644,
         "usr/share/man/man5/mailless.conf.5": 0o644,
         "usr/share/bash-completion/completions/mailless": 0o644, "etc/mailless.conf": 0o644,
         "usr/lib/sysusers.d/mailless.conf": 0o644}


def make(*targets):
    p = subprocess.run(["make", "-s", "-C", TOP, "DESTDIR=" + D, "PREFIX=/usr",
                        "UNITDIR=/usr/lib/systemd/system",
                        "BASHCOMPDIR=/usr/share/bash-completion/completions"] + list(targets),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert p.returncode == 0, "make %s: %s" % (" ".join(targets), p.stdout[-1500:])
    return p.stdout


def installs():
    make("install")
    files = dict(FILES, **{"usr/lib/systemd/system/mailless.service": 0o644})
    for f, mode in files.items():
        p = os.path.join(D, f)
        assert os.path.isfile(p), "%s not installed" % f
        assert stat.S_IMODE(os.stat(p).st_mode) == mode, "%s: mode %o, want %o" % (
            f, stat.S_IMODE(os.stat(p).st_mode), mode)
    with open(os.path.join(D, "usr/lib/systemd/system/mailless.service")) as fh:
        unit = fh.read()
    assert "ExecStart=/usr/sbin/mailless run" in unit, "the unit names another binary"
    c = subprocess.run([os.path.join(D, "usr/sbin/mailless"), "check", "-c",
                        os.path.join(D, "etc/mailless.conf")], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    assert c.returncode == 0, "the example config: %s" % c.stderr


def keeps_config():
    conf = os.path.join(D, "etc/mailless.conf")
    with open(conf, "a") as f:
        f.write("hostname = edited.test\n")
    out = make("install")
    assert "keeping" in out, out
    with open(conf) as f:
        assert "hostname = edited.test" in f.read(), "the edited config was replaced"


def uninstalls():
    make("uninstall")
    left = sorted(os.path.relpath(os.path.join(d, f), D) for d, _, fs in os.walk(D) for f in fs)
    assert left == ["etc/mailless.conf"], "left: %s" % left


def unit_file():
    unit = os.path.join(tmp, "mailless.service")
    with open(os.path.join(TOP, "systemd", "mailless.service.in")) as f:
        text = f.read().replace("@SBINDIR@", TOP)
    with open(unit, "w") as f:
        f.write(text)
    return unit, text


def verify():
    assert shutil.which("systemd-analyze"), "systemd-analyze missing (Debian package systemd)"
    unit, _ = unit_file()
    p = subprocess.run(["systemd-analyze", "verify", unit], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True,
                       env=dict(os.environ, MANPATH=os.path.join(TOP, ".output", "man")))
    assert p.returncode == 0 and not p.stdout.strip(), p.stdout[:1500]


def security():
    unit, _ = unit_file()
    p = subprocess.run(["systemd-analyze", "security", "--offline=yes", unit],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    m = re.search(r"Overall exposure level for mailless.service: ([0-9.]+)", p.stdout)
    assert m, p.stdout[-800:]
    t.note("systemd-analyze security --offline=yes: %s" % m.group(0))
    assert float(m.group(1)) <= 2.0, "exposure %s > 2.0: %s" % (m.group(1), " | ".join(
        l.strip() for l in p.stdout.splitlines() if l.startswith("✗"))[:1500])


def directives():
    _, text = unit_file()
    want = ["Type=notify", "ExecStartPre=%s/mailless check" % TOP,
            "ExecReload=%s/mailless check" % TOP, "ExecReload=/bin/kill -HUP $MAINPID",
            "ExecStopPost=+%s/mailless unload" % TOP, "Restart=on-failure",
            "NoNewPrivileges=yes", "User=mailless"]
    lines = text.splitlines()
    missing = [w for w in want if w not in lines]
    assert not missing, "missing: %s" % missing
    n = int(re.search(r"^LimitNOFILE=(\d+)$", text, re.M).group(1))
    assert n >= 10000 + 64, "LimitNOFILE=%d is below max-sessions' default + 64" % n


try:
    if t.run("install: make install DESTDIR with PREFIX=/usr puts every file in place",
             installs):
        t.run("install: a second make install keeps an edited config", keeps_config)
        t.run("install: make uninstall removes all but the config", uninstalls)
    t.run("unit: systemd-analyze verify finds nothing", verify)
    t.run("unit: systemd-analyze security --offline=yes rates it 2.0 or less", security)
    t.run("unit: Type=notify, check before start and reload, unload after stop", directives)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(t.finish())
