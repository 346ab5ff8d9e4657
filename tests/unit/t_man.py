#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 60
# mlt-root: no
"""
t_man.py - the man pages (`make man`: .output/man/man8/mailless.8 and
man5/mailless.conf.5) in step with the program and the docs: mandoc -Tlint finds
nothing, man -l renders them without a warning, mailless(8) names every
command of `mailless --help` and exactly the long options of `run --help`,
mailless.conf(5) exactly the file keys of `mailless options`, and the metric
families of mailless(8) are those docs/metrics.md describes.
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from mltest import MAILLESS, TOP, Suite

t = Suite("t_man")
MAN = os.path.join(TOP, ".output", "man")
PAGES = [os.path.join(MAN, "man8", "mailless.8"), os.path.join(MAN, "man5", "mailless.conf.5")]


def out(*cmd, env=None):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=env)
    return p.returncode, p.stdout, p.stderr


def render(page):
    # Not a terminal: man-db strips the formatting, unless MAN_KEEP_FORMATTING
    # is set to anything (even "0"). Strip what may still come through:
    # overstrike (groff 1.22, Debian 12) and SGR escapes (groff 1.23, 13).
    env = dict(os.environ, MANWIDTH="200")
    env.pop("MAN_KEEP_FORMATTING", None)
    rc, text, err = out("man", "--warnings", "-l", page, env=env)
    assert rc == 0 and not err.strip(), "man -l %s: exit %d: %s" % (page, rc, err)
    return re.sub(r"\x1b\[[0-9;]*m", "", re.sub(r".\x08", "", text))


def section(text, title):
    m = re.search(r"^%s\n(.*?)(?=^[A-Z][A-Z ]+\n|\Z)" % title, text, re.M | re.S)
    assert m, "no %s section" % title
    return m.group(1)


def lint():
    assert shutil.which("mandoc"), "mandoc is not installed (make deps-test installs it)"
    rc, o, e = out("mandoc", "-Tlint", *PAGES)
    assert rc == 0 and not (o + e).strip(), (o + e)[:1500]


def options_match():
    text = render(PAGES[0])
    man = set(re.findall(r"--([a-z][a-z0-9-]*)", section(text, "OPTIONS")))
    _, help_text, _ = out(MAILLESS, "run", "--help")
    help_opts = set(re.findall(r"^ +(?:-., )?--([a-z][a-z0-9-]*)", help_text, re.M))
    assert help_opts, "no options in run --help"
    assert man == help_opts, "only in the man page: %s; only in --help: %s" % (
        sorted(man - help_opts), sorted(help_opts - man))


def commands_match():
    text = render(PAGES[0])
    _, h, _ = out(MAILLESS, "--help")
    cmds = re.findall(r"^  ([a-z]+)  ", h.split("Commands:", 1)[1], re.M)
    assert cmds, "no commands in mailless --help"
    synopsis = section(text, "SYNOPSIS")
    commands = section(text, "COMMANDS")
    missing = [c for c in cmds if "mailless " + c not in synopsis or
               not re.search(r"^ +%s\b" % c, commands, re.M)]
    assert not missing, "not in SYNOPSIS and COMMANDS: %s" % missing


def keys_match():
    text = render(PAGES[1])
    man = set(re.findall(r"^ {7}([a-z][a-z0-9-]*) = ", section(text, "KEYS"), re.M))
    _, o, _ = out(MAILLESS, "options")
    keys = {l.split("\t")[0] for l in o.splitlines() if l.split("\t")[1] != "cli"}
    assert man == keys, "only in mailless.conf(5): %s; only in mailless options: %s" % (
        sorted(man - keys), sorted(keys - man))


def metrics_match():
    text = render(PAGES[0])
    man = set(re.findall(r"^ {7}(mailless_[a-z_]+)$", section(text, "METRICS"), re.M))
    with open(os.path.join(TOP, "docs", "metrics.md")) as f:
        doc = set(re.findall(r"`(mailless_[a-z_]*[a-z])[`{]", f.read()))
    assert man, "no metric families in METRICS"
    assert man == doc, "only in mailless(8): %s; only in docs/metrics.md: %s" % (
        sorted(man - doc), sorted(doc - man))


missing = [p for p in PAGES if not os.path.exists(p)]
if missing:
    t.fail("man: pages built", "%s missing: make man" % " ".join(missing))
else:
    t.run("man: mandoc -Tlint finds nothing in mailless(8) and mailless.conf(5)", lint)
    t.run("man: mailless(8) has exactly the long options of run --help", options_match)
    t.run("man: mailless(8) shows every command of mailless --help", commands_match)
    t.run("man: mailless.conf(5) has exactly the keys of mailless options", keys_match)
    t.run("man: the metric families of mailless(8) are docs/metrics.md's", metrics_match)
sys.exit(t.finish())
