#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 30
# mlt-root: no
"""
t_completion.py - completion/mailless.bash, run by bash as completion runs it
(COMP_WORDS, COMP_CWORD, then _mailless): commands, every option of run
from the option table, the values of a choice, files for a path, directories
for the pin dir, interfaces for --xdp, and the options of the admin commands.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from mltest import MAILLESS, TOP, Suite

t = Suite("t_completion")
SCRIPT = os.path.join(TOP, "completion", "mailless.bash")


def complete(*words):
    p = subprocess.run(["bash", "-c", 'source "$1"; shift; COMP_WORDS=("$@"); '
                        'COMP_CWORD=$(($# - 1)); _mailless; printf "%s\\n" "${COMPREPLY[@]}"',
                        "x", SCRIPT, MAILLESS] + list(words), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    assert p.returncode == 0 and not p.stderr, "bash: %s" % p.stderr
    return sorted(w for w in p.stdout.split("\n") if w)


def case(name, words, want):
    def fn():
        got = complete(*words)
        assert got == sorted(want), "%s: got %s, want %s" % (" ".join(words), got, sorted(want))
    t.run("completion: " + name, fn)


def every_option():
    keys = [l.split("\t") for l in subprocess.run([MAILLESS, "options"], stdout=subprocess.PIPE,
                                                 text=True).stdout.splitlines()]
    want = ["--" + k[0] for k in keys] + ["-" + k[3] for k in keys if k[3] != "-"]
    got = complete("run", "")
    assert got == sorted(want), "only completed: %s; never: %s" % (
        sorted(set(got) - set(want)), sorted(set(want) - set(got)))


case("commands", ["st"], ["status", "stats"])
t.run("completion: every option of run and check, from the option table", every_option)
case("a choice's values", ["run", "--engine", ""], ["auto", "kernel", "user", "xdp"])
case("a short flag's values", ["check", "-d", "rfc"], ["rfc7504"])
case("after a switch, options again", ["run", "-v", "--xdp-m"], ["--xdp-mode"])
case("a file for -c", ["check", "-c", os.path.join(TOP, "VERSIO")], [os.path.join(TOP, "VERSION")])
case("directories for --pin-dir", ["run", "--pin-dir", os.path.join(TOP, "complet")],
     [os.path.join(TOP, "completion")])
case("interfaces for --xdp", ["run", "--xdp", "l"],
     [i for i in os.listdir("/sys/class/net") if i.startswith("l")])
case("no words for a number", ["run", "-t", ""], [])
case("the options of stats", ["stats", "--"], ["--help", "--json", "--pin-dir", "--prometheus",
                                                "--watch"])
case("the options of options", ["options", "--man"], ["--man", "--man-conf", "--man-metrics"])
sys.exit(t.finish())
