#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""
soak.py - `make soak`: a long run of ordinary and hostile sessions against
each engine, then the figures that must come back to where they started.

For each engine (SOAK_ENGINES, default "kernel user"): mailless with default
settings on 127.0.0.1:25 inside a network namespace of its own; loadgen in
the same namespace runs SOAK_WARMUP (10,000) sessions of the `mixed` shape
(tools/README.md), then, once the server is idle, the start figures are taken;
then SOAK_SESSIONS (1,000,000) more `mixed` sessions, SOAK_CONC (64) in flight,
each within -t 10; then, once idle again, the end figures. It passes when:

  failed sessions             0 (loadgen stops after 100 failures)
  controller VmRSS            end - start <= 2 MiB
  controller open fds         end == start
  sessions map (kernel)       0 entries (bpftool map dump of the pinned map)
  active sessions             0 (`mailless stats -j`, counters.active)
  SUnreclaim (/proc/meminfo)  end - start <= 8 MiB (the whole machine's: noisy)
  still answering             a new session gets its 220 within 3 s
  SIGTERM                     mailless exits within 5 s

Prints the figures as a table (markdown). SOAK_DOC=1 also writes the table
into docs/reliability.md, between its "soak:begin" and "soak:end" markers.
Exit status 0 iff every engine passed. Needs root; builds nothing (make soak
builds mailless and .output/tools/loadgen first).

The helpers here are also used by tests/e2e/t_soak.py.
"""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import TOP, Env, StartError, Suite, bpftool_json, converse, one_line, sh

LOADGEN = os.path.join(TOP, ".output", "tools", "loadgen")
MIB = 1024 * 1024
RSS_MARGIN = 2 * MIB
SLAB_MARGIN = 8 * MIB
TERM_SECS = 5


def env_int(name, default):
    v = os.environ.get(name)
    if v is None or v == "":
        return default
    try:
        n = int(v.replace("_", "").replace(",", ""))
    except ValueError:
        raise SystemExit("soak: %s=%r is not a whole number" % (name, v))
    if n < 0:
        raise SystemExit("soak: %s=%r must not be negative" % (name, v))
    return n


# --------------------------------------------------------------- figures

def proc_status(pid, key="VmRSS"):
    """A /proc/PID/status field in bytes (kB fields), None if gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def sunreclaim():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("SUnreclaim:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no SUnreclaim in /proc/meminfo")


def session_entries(pin_dir):
    """Entries of the kernel engine's pinned sessions map."""
    return len(bpftool_json("map", "dump", "pinned", pin_dir + "/sessions", timeout=60) or [])


def stats(pin_dir):
    from mltest import counters
    return counters(pin_dir)


def wait_idle(pin_dir, secs=15):
    """Wait (bounded) until counters.active is 0; returns the last value."""
    deadline = time.monotonic() + secs
    while True:
        a = stats(pin_dir)["active"]
        if a == 0 or time.monotonic() > deadline:
            return a
        time.sleep(0.2)


def answering(ns, addr="127.0.0.1", port=25, timeout=3):
    """A new session is greeted with 220 and its QUIT answered 221."""
    r = converse(ns, addr, port, [b"QUIT\r\n"], timeout=timeout, greet_first=True)
    ok = r.data.startswith(b"220 ") and b"\r\n221 " in r.data
    return ok, r


def sigterm(srv, secs=TERM_SECS):
    """SIGTERM; seconds until it exited, or None (then it is SIGKILLed)."""
    t0 = time.monotonic()
    os.kill(srv.pid, signal.SIGTERM)
    try:
        srv.proc.wait(secs)
    except subprocess.TimeoutExpired:
        srv.kill()
        return None
    srv.rc = srv.proc.returncode
    return time.monotonic() - t0


def snapshot(srv, pin_dir, engine):
    f = {"rss": proc_status(srv.pid), "fds": fd_count(srv.pid), "slab": sunreclaim(),
         "active": stats(pin_dir)["active"]}
    if engine == "kernel":
        f["entries"] = session_entries(pin_dir)
    return f


# --------------------------------------------------------------- load

def loadgen(ns, args, timeout, note=None):
    """Run the load generator (.output/tools/loadgen) -j in namespace ns; returns its JSON (dict). Past
    `timeout` seconds it gets SIGTERM (it then reports what it measured),
    and the dict carries "killed": True."""
    cmd = ["nsenter", "--net=/run/netns/%s" % ns, LOADGEN, "-j"] + list(args)
    if note:
        note("loadgen " + " ".join(args))
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, text=True)
    killed = False
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        killed = True
        p.send_signal(signal.SIGTERM)
        try:
            out, err = p.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
    try:
        res = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError("loadgen %s: exit %s, no JSON: %s" % (" ".join(args), p.returncode,
                                                               one_line(err or out)))
    if "error" in res:
        raise RuntimeError("loadgen: %s" % res["error"])
    res["killed"] = killed
    res["wall"] = time.monotonic() - t0
    return res


def describe(res):
    e = res.get("errors_by_kind", {})
    bad = ", ".join("%s %d" % (k, v) for k, v in e.items() if v)
    s = "%d ok, %d failed%s in %.1f s (%.0f/s)" % (res.get("sessions", 0), res.get("errors", 0),
                                                   " (%s)" % bad if bad else "",
                                                   res.get("wall", 0), res.get("rate", 0))
    if res.get("killed"):
        s += ", stopped at its time limit"
    if res.get("stopped_on_errors"):
        s += ", stopped after %d errors" % res["errors"]
    if res.get("first_errors"):
        s += "; first: " + res["first_errors"][0]
    return s


class CpuHog:
    """A `nice 10` busy loop beside the server, bounded by `timeout`,
    ended by its PID."""

    def __init__(self, secs):
        self.proc = subprocess.Popen(["timeout", str(int(secs)), "nice", "-n", "10", "sh", "-c",
                                      "while :; do :; done"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # timeout(1) passes it on
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def box(env, engine, tag, extra=(), nofile=None, host="soak.test"):
    """A namespace (lo up) and mailless on 127.0.0.1:25 in it. Every client
    comes from 127.0.0.1, so the per-source limit is off."""
    pair = env.pair(tag=tag)
    srv = env.server(pair, engine=engine, host=host, listen=["127.0.0.1:25"],
                     extra=["--max-sessions-per-source", "0"] + list(extra),
                     tag=tag, nofile=nofile)
    return pair, srv


# --------------------------------------------------------------- make soak

def mib(b):
    return "%.1f MiB" % (b / MIB) if b is not None else "-"


def soak_engine(env, engine, n, warm, conc, limit, suite):
    """Returns (rows, passed): rows = [(figure, start, end, bound, ok)]."""
    rows = []
    try:
        pair, srv = box(env, engine, "soak-" + engine[0])
    except StartError as e:
        return [("start", "-", str(e), "starts", False)], False
    ns, pin = pair.srv, srv.pin_dir
    suite.note("%s: warm-up, %d mixed sessions" % (engine, warm))
    w = loadgen(ns, ["-s", "mixed", "--seed", "7", "-c", str(conc), "-n", str(warm),
                     "-t", "10", "--max-errors", "100", "127.0.0.1:25"], timeout=300)
    suite.note("%s: warm-up: %s" % (engine, describe(w)))
    wait_idle(pin)
    time.sleep(1)
    a = snapshot(srv, pin, engine)
    suite.note("%s: start figures %s; %d mixed sessions, %d in flight" % (engine, a, n, conc))
    r = loadgen(ns, ["-s", "mixed", "--seed", "1", "-c", str(conc), "-n", str(n), "-t", "10",
                     "--max-errors", "100", "127.0.0.1:25"], timeout=limit)
    suite.note("%s: run: %s" % (engine, describe(r)))
    suite.note("%s: by shape: %s; noread: %s" % (engine, json.dumps(r.get("by_shape")),
                                                json.dumps(r.get("noread"))))
    left = wait_idle(pin)
    time.sleep(1)
    alive_before = srv.alive()
    b = snapshot(srv, pin, engine) if alive_before else {}
    ans, res = answering(ns) if alive_before else (False, None)
    term = sigterm(srv) if alive_before else None
    failed = r["errors"] + w["errors"]
    rows.append(("sessions ok / failed", "%d warm-up" % w["sessions"],
                 "%d / %d%s" % (r["sessions"], failed,
                                " (of %d)" % n if r["sessions"] + r["errors"] < n else ""),
                 "0 failed, all %d run" % n,
                 failed == 0 and r["sessions"] == n and not r["killed"]))
    rows.append(("rate", "", "%.0f sessions/s (%.0f s)" % (r["rate"], r["wall"]), "", True))
    if not alive_before:
        rows.append(("controller", "running", "exited: %s" % srv.log_tail(3), "running", False))
        return rows, False
    d_rss = b["rss"] - a["rss"]
    rows.append(("controller VmRSS", mib(a["rss"]), "%s (%+.2f MiB)" % (mib(b["rss"]), d_rss / MIB),
                 "+2 MiB at most", d_rss <= RSS_MARGIN))
    rows.append(("controller open fds", str(a["fds"]), str(b["fds"]), "equal",
                 b["fds"] == a["fds"]))
    rows.append(("active sessions", str(a["active"]), str(b["active"]), "0", left == 0 and b["active"] == 0))
    if engine == "kernel":
        rows.append(("sessions map entries", str(a["entries"]), str(b["entries"]), "0",
                     b["entries"] == 0))
    d_slab = b["slab"] - a["slab"]
    rows.append(("SUnreclaim (machine)", mib(a["slab"]),
                 "%s (%+.1f MiB)" % (mib(b["slab"]), d_slab / MIB), "+8 MiB at most",
                 d_slab <= SLAB_MARGIN))
    rows.append(("new session answered", "", "yes" if ans else "no: %s" % res, "yes", ans))
    rows.append(("SIGTERM to exit", "", "%.2f s" % term if term is not None else
                 "not within %d s (SIGKILLed)" % TERM_SECS, "%d s at most" % TERM_SECS,
                 term is not None))
    return rows, all(row[4] for row in rows)


def table(results):
    out = ["| engine | figure | start | end | bound | |", "|---|---|---|---|---|---|"]
    for engine, rows, _ in results:
        for fig, a, b, bound, ok in rows:
            out.append("| %s | %s | %s | %s | %s | %s |" % (engine, fig, a, b, bound,
                                                         "ok" if ok else "**FAIL**"))
    return "\n".join(out)


def write_doc(text):
    path = os.path.join(TOP, "docs", "reliability.md")
    with open(path) as f:
        doc = f.read()
    b, e = "<!-- soak:begin -->", "<!-- soak:end -->"
    if b not in doc or e not in doc:
        raise SystemExit("soak: %s has no %s ... %s block to write into" % (path, b, e))
    head, rest = doc.split(b, 1)
    _, tail = rest.split(e, 1)
    with open(path + ".tmp", "w") as f:
        f.write(head + b + "\n" + text + "\n" + e + tail)
    os.rename(path + ".tmp", path)


def main():
    if os.geteuid() != 0:
        print("soak: needs root (network namespaces, bpffs, BPF)", file=sys.stderr)
        return 2
    for p in (LOADGEN,):
        if not os.access(p, os.X_OK):
            print("soak: %s is missing: run `make tools/loadgen`" % p, file=sys.stderr)
            return 2
    n = env_int("SOAK_SESSIONS", 1000000)
    warm = env_int("SOAK_WARMUP", 10000)
    conc = env_int("SOAK_CONC", 64)
    limit = env_int("SOAK_TIME_LIMIT", 1800)
    engines = os.environ.get("SOAK_ENGINES", "kernel user").split()
    suite = Suite("soak")
    results = []
    t0 = time.time()
    for engine in engines:
        if engine not in ("kernel", "user"):
            print("soak: SOAK_ENGINES: unknown engine %r (kernel, user)" % engine,
                  file=sys.stderr)
            return 2
        with Env(suite) as env:
            try:
                rows, passed = soak_engine(env, engine, n, warm, conc, limit, suite)
            except Exception as e:  # report, and go on with the next engine
                rows, passed = [("run", "", "%s: %s" % (type(e).__name__, e), "no crash",
                                 False)], False
        results.append((engine, rows, passed))
        if passed:
            suite.ok("soak/%s: %d mixed sessions" % (engine, n))
        else:
            suite.fail("soak/%s: %d mixed sessions" % (engine, n),
                       "; ".join("%s: %s" % (r[0], r[2]) for r in rows if not r[4]))
    text = ("Run %s, %s sessions per engine, %d in flight, kernel %s.\n\n%s"
            % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t0)), format(n, ","), conc,
               os.uname().release, table(results)))
    print()
    print(text)
    if os.environ.get("SOAK_DOC") == "1":
        write_doc(text)
        print("\n(written to docs/reliability.md)")
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
