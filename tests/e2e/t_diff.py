#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 240
"""
t_diff.py - differential test: random client scripts (valid and junk
commands, empty lines, lone CRs, long lines, rare floods, random cuts into
segments with small random delays, pipelining, early talkers, ending with
QUIT; a third over IPv6) run against the kernel engine and the user engine, which must put
identical bytes on the wire. Both are also compared with the reference model
(tests/e2e/mltest.py model()).

The seed is printed; rerun one with MLT_SEED=N. MLT_DIFF_SCRIPTS=N changes the
number of scripts (default 400 in the rcpt dialect + 100 in rfc7504).
"""
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import (Env, StartError, Suite, bytes_diff, classify, converse, engines, model,
                    show)

t = Suite("t_diff")
HOST = "diff.mx.test"

WORDS = [b"HELO", b"EHLO", b"MAIL", b"RCPT", b"DATA", b"RSET", b"NOOP", b"QUIT", b"VRFY",
         b"EXPN", b"HELP", b"AUTH", b"STARTTLS", b"BDAT", b"TURN", b"GET", b"POST", b"X"]


def rand_case(rnd, b):
    if rnd.random() < 0.7:
        return b
    return bytes(c ^ 0x20 if 65 <= (c & 0xdf) <= 90 and rnd.random() < 0.5 else c for c in b)


def rand_text(rnd, n, binary=False):
    if binary:
        return bytes(rnd.choice([c for c in range(256) if c != 10]) for _ in range(n))
    return bytes(rnd.randrange(32, 127) for _ in range(n))


def gen_content(rnd):
    k = rnd.random()
    if k < 0.45:  # a valid command
        verb = rnd.choice([b"HELO", b"EHLO", b"MAIL", b"RCPT", b"DATA", b"RSET", b"NOOP"])
        arg = {b"HELO": b" client.test", b"EHLO": b" client.test",
               b"MAIL": b" FROM:<a@example.test>", b"RCPT": b" TO:<b@example.test>"}.get(verb, b"")
        if rnd.random() < 0.2:
            arg = rnd.choice([b"", b" ", b" " + rand_text(rnd, rnd.randrange(1, 40))])
        return rand_case(rnd, verb) + arg
    if k < 0.60:  # a known or unknown word, maybe glued or oddly delimited
        w = rand_case(rnd, rnd.choice(WORDS))
        sep = rnd.choice([b"", b" ", b"  ", b"\t", b"x", b"\r", b"\x00"])
        return w + sep + rand_text(rnd, rnd.randrange(0, 20))
    if k < 0.68:
        return b""
    if k < 0.72:
        return b" " * rnd.randrange(1, 6)
    if k < 0.80:
        return rand_text(rnd, rnd.randrange(1, 80))
    if k < 0.88:
        return rand_text(rnd, rnd.randrange(1, 80), binary=True)
    if k < 0.93:  # near the 512-octet limit
        return b"NOOP " + b"y" * rnd.randrange(500, 515)
    if k < 0.97:
        return rand_text(rnd, rnd.randrange(515, 4000))
    if k < 0.985:
        return rand_text(rnd, rnd.randrange(20000, 65535))
    s = bytearray(b"RSET " + rand_text(rnd, rnd.randrange(0, 10)))  # lone CRs inside
    for _ in range(rnd.randrange(1, 4)):
        s.insert(rnd.randrange(0, len(s) + 1), 13)
    return bytes(s)


def gen_line(rnd):
    while True:
        term = rnd.choices([b"\r\n", b"\n", b"\r\r\n"], [70, 25, 5])[0]
        line = gen_content(rnd) + term
        if classify(line[:-1]) != "quit":  # a QUIT mid-script would end it early
            return line


def gen_script(rnd):
    lines = [gen_line(rnd) for _ in range(rnd.choice([0, 1, 2, 5, 10, 20, 40, 100]))]
    r = rnd.random()
    if r < 0.03:
        lines.append(rand_text(rnd, rnd.randrange(65537, 70000)))  # flood: server closes
    else:
        lines.append(rand_case(rnd, b"QUIT") + b" " * rnd.choice([0, 0, 0, 1, 3])
                     + rnd.choice([b"\r\n", b"\n"]))
    data = b"".join(lines)
    ncuts = min(rnd.choice([0, 0, 1, 2, 3, 5, 10, 30]), max(0, len(data) - 1))
    cuts = sorted(rnd.sample(range(1, len(data)), ncuts)) if ncuts else []
    script, prev = [], 0
    for c in cuts + [len(data)]:
        script.append(data[prev:c])
        prev = c
        if c != len(data):
            script.append(rnd.choice([0, 0, 0.001, 0.003, 0.01, 0.03]))
    greet_first = rnd.random() < 0.5
    return data, script, greet_first


def run_one(pair, script, greet_first, v6):
    try:
        return converse(pair.cli, pair.v6 if v6 else pair.v4, 25, script, timeout=20,
                        greet_first=greet_first)
    except Exception as e:  # report, do not crash the pool
        return e


def compare(dialect, pairs, n, seed):
    rnd = random.Random("%s-%s" % (seed, dialect))
    scripts = [gen_script(rnd) for _ in range(n)]
    total = sum(len(d) for d, _, _ in scripts)
    t.note("%s: %d scripts, %d client octets, seed %s" % (dialect, n, total, seed))
    jobs = {}
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        for i, (data, script, gf) in enumerate(scripts):
            for eng in ("kernel", "user"):
                jobs[i, eng] = pool.submit(run_one, pairs[dialect, eng], script, gf, i % 3 == 2)
        res = {k: f.result() for k, f in jobs.items()}
    t.note("%s: ran in %.1fs" % (dialect, time.monotonic() - t0))

    diffs, model_bad = [], {"kernel": [], "user": []}
    for i, (data, script, gf) in enumerate(scripts):
        exp, closes = model(dialect, HOST, data)
        rk, ru = res[i, "kernel"], res[i, "user"]
        for eng, r in (("kernel", rk), ("user", ru)):
            if isinstance(r, Exception):
                model_bad[eng].append((i, "client error %s: %s" % (type(r).__name__, r)))
            elif r.data != exp:
                model_bad[eng].append((i, "end=%s, %s" % (r.end, bytes_diff(exp, r.data))))
            elif r.end not in ("eof", "reset"):
                model_bad[eng].append((i, "server did not close (end=%s)" % r.end))
            elif r.end == "reset" and not _flood(data):
                model_bad[eng].append((i, "connection reset after QUIT, not a clean close"))
        if isinstance(rk, Exception) or isinstance(ru, Exception):
            diffs.append((i, "client error: kernel %r, user %r" % (rk, ru)))
        elif rk.data != ru.data:
            diffs.append((i, "user (end=%s) vs kernel (end=%s): %s"
                          % (ru.end, rk.end, bytes_diff(ru.data, rk.data))))

    def describe(lst):
        out = []
        for i, why in lst[:3]:
            data, script, gf = scripts[i]
            out.append("script %d (%d octets, %d segments, greet_first=%s, starts %s): %s"
                       % (i, len(data), sum(isinstance(x, bytes) for x in script), gf,
                          show(data[:120], 160), why))
        more = " (and %d more)" % (len(lst) - 3) if len(lst) > 3 else ""
        early = sum(1 for i, _ in lst if not scripts[i][2])
        return ("%d of %d scripts (%d of them early talkers, %d greeted first): %s%s"
                % (len(lst), n, early, len(lst) - early, " || ".join(out), more))

    name = "diff/%s" % dialect
    if diffs:
        t.fail("%s: kernel and user engines put identical bytes on the wire" % name,
               describe(diffs))
    else:
        t.ok("%s: kernel and user engines put identical bytes on the wire (%d scripts)"
             % (name, n))
    for eng in ("kernel", "user"):
        if model_bad[eng]:
            t.fail("%s: %s engine matches the reference model" % (name, eng),
                   describe(model_bad[eng]))
        else:
            t.ok("%s: %s engine matches the reference model" % (name, eng))


def _flood(data):
    return data.rfind(b"\n") < len(data) - 65536


def main():
    missing = [e for e in ("kernel", "user") if e not in engines()]
    if missing:
        t.skip("diff", "needs both engines; MLT_ENGINES excludes %s" % " ".join(missing))
        return t.finish()
    seed = int(os.environ.get("MLT_SEED") or int(time.time()) % 1000000)
    print("# seed %d (rerun with MLT_SEED=%d)" % (seed, seed), flush=True)
    n = int(os.environ.get("MLT_DIFF_SCRIPTS", "400"))
    try:
        with Env(t) as env:
            pairs = {}
            x = 70
            ok = True
            for dialect in ("rcpt", "rfc7504"):
                for eng in ("kernel", "user"):
                    x += 1
                    pair = env.pair(x=x, tag="%s%s" % (eng[0], dialect[:2]))
                    try:
                        env.server(pair, engine=eng, host=HOST, dialect=dialect,
                                   extra=["-t", "60"])
                    except StartError as e:
                        t.fail("diff/%s: %s server starts" % (dialect, eng), str(e))
                        ok = False
                    pairs[dialect, eng] = pair
            if ok:
                compare("rcpt", pairs, n, seed)
                compare("rfc7504", pairs, max(1, n // 4), seed)
    except StartError as e:
        t.fail("diff: setup", str(e))
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
