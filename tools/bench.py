#!/usr/bin/env python3
"""make bench: mailless against its alternatives, interleaved, on loopback;
then the veth phase (tools/bench_veth.py): server CPU per session on a CPU of
its own, and SYNs answered per second (tools/synflood).

Servers (each on its own loopback port, never port 25):
  kernel      mailless --engine kernel (sock_ops + sockhash + sk_skb + sk_msg)
  user        mailless --engine user (epoll)
  xdp         mailless --engine xdp: the XDP responder on lo (generic mode), no socket
  floor       tools/floor --mode lines: fixed replies, no SMTP logic (cost of TCP)
  postscreen  Postfix 3.7 postscreen, static:reject + drop: 521 at connect, close
  smtpd       Postfix 3.7 smtpd, client restriction 521 at connect, close
  rblsmtpd    rblsmtpd under tcpserver, RBLSMTPD set: 220, 250, 553 ... 221

Throughput: for every (shape, concurrency) cell, every server in turn, several
rounds (A B C ... C A B ...), the order shuffled for every cell and round; ratios to the kernel
engine are taken within a round, then the median and min-max over rounds.
CPU: whole-machine busy jiffies (/proc/stat: user nice system irq softirq) over
each loadgen run, minus loadgen's own utime+stime (wait4 rusage), per 10,000
sessions (warm-up sessions included, since their CPU is too).
Idle: fresh servers, 10,000 idle sessions: controller VmHWM, Slab and
/proc/net/sockstat deltas; then 15,000 idle sessions must be held with no error.

Results: .output/bench/ (runs.jsonl, summary.json, report.md, plot); a full run
also writes docs/benchmarks.md and docs/bench-rate.png (hand-written notes below
the marker at its end are kept). BENCH_QUICK=1: a ~3-minute subset that writes
only .output/bench/. --report: rebuild the pages from .output/bench/summary.json.
--veth: only the veth phase (tools/bench_veth.py: server CPU per session on its
own CPU, SYNs answered), printed and kept in .output/bench/veth.json.
"""
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

import bench_veth

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, ".output", "bench")
LOADGEN = os.path.join(ROOT, ".output", "tools", "loadgen")
FLOOR = os.path.join(ROOT, ".output", "tools", "floor")
MAILLESS = os.path.join(ROOT, "mailless")
POSTFIX_MASTER = "/usr/lib/postfix/sbin/master"

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
BASE = int(os.environ.get("BENCH_PORT_BASE", "42520"))
if QUICK:
    SHAPES = ["greet-quit", "dialog"]
    CONCS = [1, 256]
    ROUNDS = 2
    DUR, WARM = 0.8, 0.2
    IDLE_HOLD = 2
else:
    SHAPES = ["greet-quit", "dialog", "pipelined", "long"]
    CONCS = [1, 16, 256]
    ROUNDS = 3
    DUR, WARM = 1.5, 0.3
    IDLE_HOLD = 4
IDLE_N, IDLE_BIG = 10000, 15000
HOST = "mx.bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
ALL = ["kernel", "user", "xdp", "floor", "postscreen", "smtpd", "rblsmtpd"]
MAILLESS_ENGINES = ("kernel", "user", "xdp")
# Cells a server is not run in, and why (the report says so in place of numbers).
NOT_RUN = {("xdp", "long"): "100 commands in one write are past the XDP responder's 15 "
           "unacknowledged replies: it answers 421 too many pipelined commands, by design "
           "(README, \"The XDP responder\")"}

children = []  # servers we started: (name, Popen), stopped by PID only


def log(*a):
    print("bench:", *a, flush=True)


def busy_jiffies():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: busy = all but idle, iowait, steal
    return v[0] + v[1] + v[2] + v[5] + v[6]


def proc_cpu(pid):
    """utime+stime of one process in seconds (None if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / CLK_TCK
    except OSError:
        return None


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def meminfo_kb(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def sockstat():
    """TCP inuse and mem (pages) from /proc/net/sockstat."""
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                p = line.split()
                d = dict(zip(p[1::2], p[2::2]))
                return int(d["inuse"]), int(d["mem"])
    return 0, 0


def wait_port(port, secs=10.0):
    end = time.time() + secs
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def own_cgroup_dir():
    """A cgroup v2 directory for the kernel engine alone, as systemd gives a
    service one: its sock_ops program is attached to its own cgroup, and in the
    bench's cgroup it would run for every socket of every server and of
    loadgen. None when cgroup v2 is not mounted or not writable."""
    mnt = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            if post.split()[:1] == ["cgroup2"]:
                mnt = pre.split()[4]
                break
    if not mnt:
        return None
    with open("/proc/self/cgroup") as f:
        rel = next((l.strip()[3:] for l in f if l.startswith("0::")), "/")
    d = os.path.join(mnt + rel.rstrip("/"), f"mailless-bench-{os.getpid()}")
    try:
        os.makedirs(d, exist_ok=True)
        return d
    except OSError:
        return None


CGROUP = None  # set in main()


def start(name, argv, env=None, cwd=None, port=None, cgroup=None):
    """Start a server as a plain child so its PID is the server's; in cgroup
    (a cgroup v2 directory) from before its exec when given."""
    err = open(os.path.join(OUT, f"{name}.stderr"), "ab")

    def enter():
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                         env=env, cwd=cwd, preexec_fn=enter if cgroup else None)
    children.append((name, p))
    if port and not wait_port(port):
        stop(name, p)
        raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port}; see {err.name}")
    return p


def stop(name, p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            log(f"{name} (pid {p.pid}) ignored SIGTERM for 15 s; sending SIGKILL")
            p.kill()
            p.wait()
    if (name, p) in children:
        children.remove((name, p))


def stop_all():
    for name, p in list(reversed(children)):
        stop(name, p)


def have(cmd):
    return shutil.which(cmd) is not None or os.path.exists(cmd)


# ---- servers ---------------------------------------------------------------

PORT = {n: BASE + i + 1 for i, n in enumerate(ALL)}


def mailless_argv(engine, tag):
    return [MAILLESS, "run", "--engine", engine, "-l", f"127.0.0.1:{PORT[engine]}",
            "-H", HOST, "--pin-dir", f"/sys/fs/bpf/mlb-{os.getpid()}-{engine}-{tag}",
            "--log-level", "warn", "--max-sessions", "16000", "--max-sessions-per-source", "0"]


def postfix_setup():
    d = os.path.join(OUT, "postfix")
    shutil.rmtree(d, ignore_errors=True)
    for sub in ("etc", "spool", "data"):
        os.makedirs(os.path.join(d, sub))
    shutil.chown(os.path.join(d, "data"), user="postfix")
    with open(os.path.join(d, "etc", "main.cf"), "w") as f:
        f.write(f"""# written by tools/bench.py: a loopback-only Postfix that rejects at connect
compatibility_level = 3.6
config_directory = {d}/etc
queue_directory = {d}/spool
data_directory = {d}/data
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = {HOST}
mydestination =
relay_domains =
relayhost =
mynetworks =
local_recipient_maps =
alias_maps =
local_transport = error:5.1.1 no mail here
default_transport = error:5.1.1 no mail here
relay_transport = error:5.1.1 no mail here
biff = no
# The listen backlog is max(maxproc, default_process_limit): 100 times out at c=256.
default_process_limit = 1000
# postscreen: every client is on the permanent deny list; drop = 521 and close.
postscreen_access_list = static:reject
postscreen_denylist_action = drop
postscreen_client_connection_count_limit = 0
postscreen_pre_queue_limit = 10000
postscreen_post_queue_limit = 10000
postscreen_cache_map =
# smtpd: 521 at connect (smtpd then hangs up, RFC 7504).
smtpd_client_connection_count_limit = 0
smtpd_delay_reject = no
smtpd_client_restrictions = check_client_access static:{{521 5.3.2 {HOST} does not accept mail}}
# No maillog_file: logs go to syslog, which is absent here (cheapest logging).
""")
    with open(os.path.join(d, "etc", "master.cf"), "w") as f:
        f.write(f"""# written by tools/bench.py: no port-25 service, only loopback bench ports
127.0.0.1:{PORT['postscreen']} inet n - n - 1 postscreen
127.0.0.1:{PORT['smtpd']} inet n - n - - smtpd
smtpd     pass  -       -       n       -       -       smtpd
anvil     unix  -       -       n       -       1       anvil
proxymap  unix  -       -       n       -       -       proxymap
""")
    r = subprocess.run(["postfix", "-c", f"{d}/etc", "check"], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError("postfix check failed: " + r.stderr.strip())
    return d


def start_servers(names, tag):
    procs = {}
    for n in names:
        if n in ("kernel", "user"):
            procs[n] = start(n, mailless_argv(n, tag), port=PORT[n],
                             cgroup=CGROUP if n == "kernel" else None)
        elif n == "xdp":
            # The responder in the guard's program on this namespace's lo
            # (generic mode: what loopback has), answering PORT[xdp] only;
            # no SYN limit, all load comes from one address.
            procs[n] = start(n, mailless_argv(n, tag) + ["--xdp", "lo", "--xdp-mode", "skb",
                                                         "--syn-rate", "0"], port=PORT[n])
        elif n == "floor":
            procs[n] = start(n, [FLOOR, f"127.0.0.1:{PORT[n]}"], port=PORT[n])
        elif n == "postscreen":
            d = postfix_setup()
            # master -d: stays in the foreground as our child (no daemon, no zombie)
            procs[n] = start("postfix", [POSTFIX_MASTER, "-d", "-c", f"{d}/etc"],
                             port=PORT["postscreen"])
            if not wait_port(PORT["smtpd"]):
                raise RuntimeError("postfix smtpd service did not listen")
        elif n == "rblsmtpd":
            env = dict(os.environ, RBLSMTPD=f"-{HOST} does not accept mail")
            procs[n] = start(n, ["tcpserver", "-R", "-H", "-l0", "-c", "1000", "-b", "1024",
                                 "127.0.0.1", str(PORT[n]), "rblsmtpd", "/bin/true"],
                             env=env, port=PORT[n])
    return procs


# ---- load ------------------------------------------------------------------

def loadgen(args, port, expect_any):
    argv = [LOADGEN, "-j"] + (["--expect-any"] if expect_any else []) + args + [f"127.0.0.1:{port}"]
    j0 = busy_jiffies()
    t0 = time.time()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate()
    # communicate() reaped it; rusage of children accumulates, so take the delta
    j1 = busy_jiffies()
    wall = time.time() - t0
    try:
        res = json.loads(out)
    except ValueError:
        res = {"error": "no JSON: " + out.decode(errors="replace")[-200:]}
    res["rc"] = p.returncode
    res["stderr"] = err.decode(errors="replace")[-600:]
    res["argv"] = argv
    res["machine_cpu_s"] = (j1 - j0) / CLK_TCK
    res["wall_s"] = wall
    return res


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def lg_threads(conc):
    """loadgen threads: one per CPU, at most one per session in flight. One
    thread saturates a CPU at c=256 on this machine (measured: 87 % busy
    with the user engine) and then measures itself, not the server."""
    return max(1, min(os.cpu_count() or 1, conc))


def measure(server, shape, conc, procs):
    args = ["-s", shape, "-c", str(conc), "-T", str(lg_threads(conc)), "-d", str(DUR),
            "-w", str(WARM), "-t", "10"]
    srv_pid = procs[server].pid if server in MAILLESS_ENGINES + ("floor",) else None
    s0 = proc_cpu(srv_pid) if srv_pid else None
    c0 = children_cpu()
    r = loadgen(args, PORT[server], server not in MAILLESS_ENGINES)
    c1 = children_cpu()
    s1 = proc_cpu(srv_pid) if srv_pid else None
    # RUSAGE_CHILDREN grows only by reaped children; the only child reaped in
    # between is loadgen (servers are still running).
    r["loadgen_cpu_s"] = c1 - c0
    r["server_proc_cpu_s"] = (s1 - s0) if (s0 is not None and s1 is not None) else None
    total = r.get("sessions", 0) + r.get("warmup_sessions", 0)
    r["sessions_total"] = total
    r["server"] = server
    if total:
        r["cpu10k_minus_loadgen"] = (r["machine_cpu_s"] - r["loadgen_cpu_s"]) / total * 1e4
        r["cpu10k_machine"] = r["machine_cpu_s"] / total * 1e4
        if r["server_proc_cpu_s"] is not None:
            r["cpu10k_server_proc"] = r["server_proc_cpu_s"] / total * 1e4
    return r


def idle_run(server, procs, n, hold):
    """n idle sessions against a fresh server: peak kernel memory and RSS."""
    pid = procs[server].pid
    time.sleep(0.5)
    slab0, unrec0 = meminfo_kb("Slab"), meminfo_kb("SUnreclaim")
    inuse0, mem0 = sockstat()
    argv = [LOADGEN, "-j", "-s", "idle", "-c", str(n), "-d", str(hold), "-t", "30",
            f"127.0.0.1:{PORT[server]}"]
    if server not in ("kernel", "user"):
        argv.insert(2, "--expect-any")
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = {"slab_kb": 0, "sunreclaim_kb": 0, "sock_mem_pages": 0, "tcp_inuse": 0, "rss_kb": 0}
    best_inuse = -1
    while p.poll() is None:
        inuse, mem = sockstat()
        # sample Slab when the most sockets are open (the hold), not during the ramp
        if inuse > best_inuse:
            best_inuse = inuse
            peak.update(slab_kb=meminfo_kb("Slab") - slab0,
                        sunreclaim_kb=meminfo_kb("SUnreclaim") - unrec0,
                        tcp_inuse=inuse - inuse0)
        peak["sock_mem_pages"] = max(peak["sock_mem_pages"], mem - mem0)
        peak["rss_kb"] = max(peak["rss_kb"], status_kb(pid, "VmRSS") or 0)
        time.sleep(0.2)
    out, err = p.communicate()
    try:
        res = json.loads(out)
    except ValueError:
        res = {"error": out.decode(errors="replace")[-200:]}
    res.update(peak)
    res["hwm_kb"] = status_kb(pid, "VmHWM")
    res["stderr"] = err.decode(errors="replace")[-600:]
    res["server"] = server
    res["n"] = n
    res["argv"] = argv
    return res


def mailless_closes(pin_dir):
    """QUITs seen vs sessions closed after 221 vs closed by the client, from
    `mailless stats`: a QUIT the controller never heard of shows as close_client."""
    r = subprocess.run([MAILLESS, "stats", "--pin-dir", pin_dir, "-j"], capture_output=True, text=True)
    try:
        j = json.loads(r.stdout)
    except ValueError:
        return None
    c = j.get("counters", j)
    return {k: c.get(k) for k in ("admitted", "cmd_quit", "reply_221", "close_quit", "close_client")}


def bpf_map_bytes(pin_dir):
    """Preallocated BPF map memory (bytes_memlock) of the maps pinned in pin_dir."""
    total = 0
    try:
        names = os.listdir(pin_dir)
    except OSError:
        return None
    for name in names:
        r = subprocess.run(["bpftool", "-j", "map", "show", "pinned", os.path.join(pin_dir, name)],
                           capture_output=True, text=True)
        if r.returncode == 0:
            try:
                total += int(json.loads(r.stdout).get("bytes_memlock", 0))
            except ValueError:
                pass
    return total


def perf_profile(procs, shape, server="kernel"):
    """perf record -a -g while loadgen runs SHAPE at c=256 against SERVER; top symbols and comms."""
    if not have("perf"):
        return None
    data = os.path.join(OUT, f"perf-{server}.data")
    lg = subprocess.Popen([LOADGEN, "-q", "-s", shape, "-c", "256", "-T", str(lg_threads(256)),
                           "-d", "4", "-w", "0.5",
                           f"127.0.0.1:{PORT[server]}"], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL)
    time.sleep(0.7)
    subprocess.run(["perf", "record", "-a", "-g", "-o", data, "--", "sleep", "3"],
                   capture_output=True)
    lg.communicate()
    rep = {"bpf": perf_bpf_lines(data), "shape": shape, "server": server}
    for key, sort, children, top in (("comms", "comm", "--no-children", 10),
                                     ("symbols", "symbol", "--no-children", 15),
                                     ("inclusive", "symbol", "--children", 30)):
        r = subprocess.run(["perf", "report", "-i", data, children, "--sort", sort,
                            "--stdio", "-g", "none", "--percent-limit", "1"],
                           capture_output=True, text=True)
        lines = [l.rstrip().rstrip("-").rstrip() for l in r.stdout.splitlines()
                 if l.strip() and not l.startswith("#")]
        rep[key] = lines[:top]
    return rep


BPF_PROGS = ("ml_sockops", "ml_verdict", "ml_msg")


def prog_stats(pin, progs=BPF_PROGS):
    """run_cnt and run_time_ns of the pinned programs."""
    out = {}
    for name in progs:
        r = subprocess.run(["bpftool", "-j", "prog", "show", "pinned", f"{pin}/{name}"],
                           capture_output=True, text=True)
        try:
            j = json.loads(r.stdout)
            out[name] = (j.get("run_cnt", 0), j.get("run_time_ns", 0))
        except ValueError:
            return None
    return out


def bpf_costs(pin, progs=BPF_PROGS, server="kernel"):
    """Per shape at c=256: each program's runs per session and ns per run, from
    kernel.bpf_stats_enabled (switched on only for this phase: it adds two clock
    reads to every program run, so the throughput cells run without it).
    progs: the programs pinned under pin; server: whose port to load."""
    path = "/proc/sys/kernel/bpf_stats_enabled"
    if not have("bpftool") or not os.path.exists(path):
        return None
    with open(path) as f:
        old = f.read().strip()
    res = {}
    try:
        with open(path, "w") as f:
            f.write("1")
        for shape in SHAPES:
            s0 = prog_stats(pin, progs)
            r = subprocess.run([LOADGEN, "-j", "-s", shape, "-c", "256", "-T", str(lg_threads(256)),
                                "-n", "10000", "-t", "10", f"127.0.0.1:{PORT[server]}"],
                               capture_output=True, text=True)
            s1 = prog_stats(pin, progs)
            try:
                n = json.loads(r.stdout).get("sessions", 0)
            except ValueError:
                n = 0
            if not (s0 and s1 and n):
                continue
            row = {"sessions": n}
            for name in progs:
                runs = s1[name][0] - s0[name][0]
                ns = s1[name][1] - s0[name][1]
                row[name] = {"runs_per_session": runs / n, "ns_per_run": ns / runs if runs else 0}
            row["us_per_session"] = sum((s1[p][1] - s0[p][1]) for p in progs) / n / 1000
            res[shape] = row
    finally:
        with open(path, "w") as f:
            f.write(old)
    return res


def perf_bpf_lines(data):
    """Inclusive time of the sockmap path: BPF programs, psock work, kworkers."""
    r = subprocess.run(["perf", "report", "-i", data, "--children", "--sort", "symbol",
                        "--stdio", "-g", "none"], capture_output=True, text=True)
    keep = ("bpf_prog", "sk_psock", "tcp_bpf", "worker_thread", "process_one_work",
            "__skb_send_sock", "sock_map", "bpf_ringbuf", "bpf_msg_", "bpf_sk_redirect",
            "__cgroup_bpf_run_filter_sock_ops")
    out = [l.rstrip().rstrip("-").rstrip() for l in r.stdout.splitlines()
           if not l.startswith("#") and any(k in l for k in keep)]
    return out[:20]


# ---- summary ---------------------------------------------------------------

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def rng(xs):
    xs = [x for x in xs if x is not None]
    return (min(xs), max(xs)) if xs else (None, None)


def fmt_rate(x):
    return "–" if x is None else f"{x:,.0f}"


def fmt_ratio(m, lo, hi):
    if m is None:
        return "–"
    return f"{m:.2f}x ({lo:.2f}–{hi:.2f})"


def summarize(runs, servers):
    cells = {}
    for shape in SHAPES:
        for conc in CONCS:
            c = {}
            for s in servers:
                rs = [r for r in runs if r["server"] == s and r["shape_"] == shape and r["conc_"] == conc]
                rates = [r.get("rate") for r in rs]
                c[s] = {
                    "rate_med": med(rates), "rate_rng": rng(rates),
                    "errors": sum(r.get("errors", 0) or 0 for r in rs),
                    "cpu10k": med([r.get("cpu10k_minus_loadgen") for r in rs]),
                    "cpu10k_machine": med([r.get("cpu10k_machine") for r in rs]),
                    "cpu10k_proc": med([r.get("cpu10k_server_proc") for r in rs]),
                    "p50_us": med([r.get("latency_us", {}).get("p50") for r in rs]),
                    "p99_us": med([r.get("latency_us", {}).get("p99") for r in rs]),
                }
                ratios = []
                for rnd in range(ROUNDS):
                    k = [r for r in runs if r["server"] == "kernel" and r["shape_"] == shape
                         and r["conc_"] == conc and r["round"] == rnd]
                    o = [r for r in rs if r["round"] == rnd]
                    if k and o and k[0].get("rate") and o[0].get("rate") is not None:
                        ratios.append(o[0]["rate"] / k[0]["rate"])
                c[s]["ratio_med"] = med(ratios)
                c[s]["ratio_rng"] = rng(ratios)
            cells[f"{shape}/{conc}"] = c
    return cells


def targets(cells, idle, big, servers, xcosts=None, veth=None):
    t = []

    def cell(shape, conc):
        return cells.get(f"{shape}/{conc}")

    def row(name, ok, detail):
        t.append({"target": name, "met": ok, "detail": detail})

    top = max(CONCS)
    for shape in ("dialog", "greet-quit"):
        c = cell(shape, top)
        if c and "user" in c:
            # kernel/user = 1 / (user/kernel), per round
            inv = 1 / c["user"]["ratio_med"] if c["user"]["ratio_med"] else None
            row(f"kernel >= 1.0x user, {shape} c={top}", inv is not None and inv >= 1.0,
                f"{inv:.2f}x" if inv else "–")
            k, u = c["kernel"]["cpu10k"], c["user"]["cpu10k"]
            km, um = c["kernel"]["cpu10k_machine"], c["user"]["cpu10k_machine"]
            row(f"kernel CPU/session <= user, {shape} c={top}", k is not None and u is not None and k <= u,
                f"{k:.2f} vs {u:.2f} CPU s per 10k (whole machine {km:.2f} vs {um:.2f})"
                if k is not None and u is not None else "–")
    c = cell("long", top)
    if c and "user" in c:
        inv = 1 / c["user"]["ratio_med"] if c["user"]["ratio_med"] else None
        row(f"kernel >= 1.3x user, long c={top}", inv is not None and inv >= 1.3,
            f"{inv:.2f}x" if inv else "–")
    for shape in SHAPES:
        c = cell(shape, top)
        if c and "floor" in c and c["floor"]["cpu10k"]:
            k, f = c["kernel"]["cpu10k"], c["floor"]["cpu10k"]
            km, fm = c["kernel"]["cpu10k_machine"], c["floor"]["cpu10k_machine"]
            row(f"kernel CPU/session <= 2x floor, {shape} c={top}", k is not None and k <= 2 * f,
                f"{k / f:.2f}x floor ({k:.2f} vs {f:.2f}; whole machine {km / fm:.2f}x)")
    for pf in ("postscreen", "smtpd"):
        if pf not in servers:
            continue
        worst = None
        for shape in SHAPES:
            for conc in CONCS:
                r = cells[f"{shape}/{conc}"][pf]["ratio_med"]
                if r:
                    x = 1 / r
                    if worst is None or x < worst[0]:
                        worst = (x, shape, conc)
        if worst:
            row(f"kernel >= 10x Postfix {pf}, every shape and c", worst[0] >= 10,
                f"worst {worst[0]:.2f}x ({worst[1]} c={worst[2]})")
    # The XDP responder: its program's time per session (bpf_stats; the
    # generic-mode skb work around it is not in it) against the kernel
    # engine's CPU per session (whole machine minus loadgen).
    for shape in SHAPES:
        c = cell(shape, top)
        x = (xcosts or {}).get(shape)
        if c and "xdp" in c and x and c["kernel"]["cpu10k"]:
            k_us = c["kernel"]["cpu10k"] * 100   # CPU s per 10k sessions -> us per session
            xm, km = c["xdp"]["cpu10k_machine"], c["kernel"]["cpu10k_machine"]
            row(f"xdp >= 10x less server CPU per session than kernel, {shape} c={top}",
                x["us_per_session"] * 10 <= k_us,
                f"{k_us / x['us_per_session']:.1f}x ({x['us_per_session']:.2f} us of XDP program "
                f"vs {k_us:.2f} us; whole machine, clients included, {km / xm:.2f}x)")
    bench_veth.targets(veth, row)
    k = idle.get("kernel")
    if k:
        row(f"controller VmHWM <= 8 MiB with {IDLE_N:,} open sessions",
            k.get("hwm_kb") is not None and k["hwm_kb"] <= 8192 and k.get("held") == IDLE_N,
            f"{k.get('hwm_kb', 0) / 1024:.1f} MiB, held {k.get('held')}")
    for s in ("kernel", "user"):
        b = big.get(s)
        if b:
            row(f"{s}: {IDLE_BIG:,} idle sessions held, zero errors",
                b.get("held") == IDLE_BIG and b.get("errors") == 0,
                f"held {b.get('held')}, errors {b.get('errors')}")
    return t


def machine_facts():
    facts = {"kernel": platform.release(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    facts["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    facts["mem_gib"] = round(meminfo_kb("MemTotal") / 1048576, 1)
    facts["nofile_hard"] = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        facts["port_range"] = f.read().split()
    with open("/proc/loadavg") as f:
        facts["loadavg_start"] = f.read().split()[:3]
    for cmd, key in (([MAILLESS, "--version"], "mailless"), (["postconf", "-d", "mail_version"], "postfix")):
        try:
            facts[key] = subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            pass
    return facts


def plot(cells, servers, png):
    datf = os.path.join(OUT, "rate.dat")
    with open(datf, "w") as f:
        for shape in SHAPES:
            f.write(f"# {shape}\n# conc " + " ".join(servers) + "\n")
            for conc in CONCS:
                vals = [cells[f"{shape}/{conc}"][s]["rate_med"] for s in servers]
                f.write(f"{conc} " + " ".join("NaN" if v is None else f"{v:.1f}" for v in vals) + "\n")
            f.write("\n\n")
    gp = os.path.join(OUT, "rate.gp")
    cols = 2
    rows = (len(SHAPES) + 1) // 2
    with open(gp, "w") as f:
        f.write(f"""set terminal pngcairo size 1100,{420 * rows} font ',10'
set output '{png}'
set multiplot layout {rows},{cols} title 'mailless make bench: sessions/s against concurrency (loopback, 2-core VM, median of rounds)'
set logscale x 2
set logscale y 10
set xtics ({', '.join(str(c) for c in CONCS)})
set xrange [{min(CONCS) / 1.5}:{max(CONCS) * 1.5}]
set xlabel 'concurrent sessions (loadgen -c)'
set ylabel 'sessions/s'
set grid
set key outside right top
""")
        for i, shape in enumerate(SHAPES):
            f.write(f"set title '{shape}'\n")
            parts = [f"'{datf}' index {i} using 1:{j + 2} with linespoints lw 2 title '{s}'"
                     for j, s in enumerate(servers)]
            f.write("plot " + ", ".join(parts) + "\n")
        f.write("unset multiplot\n")
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
    if r.returncode:
        log("gnuplot failed:", r.stderr.strip())
        return False
    return True


# ---- report ----------------------------------------------------------------

NOTES_MARK = "<!-- notes: everything below this line is hand-written and kept by make bench -->"

SERVER_DOC = {
    "kernel": "mailless --engine kernel",
    "user": "mailless --engine user",
    "xdp": "mailless --engine xdp --xdp lo --xdp-mode skb --syn-rate 0 (the XDP responder, no socket)",
    "floor": "tools/floor (lines mode: fixed replies, no SMTP logic)",
    "postscreen": "Postfix postscreen, static:reject + drop (521, close)",
    "smtpd": "Postfix smtpd, check_client_access 521 at connect (close)",
    "rblsmtpd": "rblsmtpd under tcpserver (220 ... 553 ... 221)",
}


def report(facts, servers, cells, idle, big, tg, prof, started, elapsed, png_name, cmdline,
           costs=None, xcosts=None, veth=None):
    L = []
    a = L.append
    a("# Benchmarks")
    a("")
    a("Generated by `make bench` (tools/bench.py) down to the notes marker at the end; "
      "edit only below it (the notes are kept when the page is generated again).")
    a(f"This run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
      f"{elapsed / 60:.1f} minutes, {'BENCH_QUICK=1 subset' if QUICK else 'full run'}.")
    a("")
    a("## How to run")
    a("")
    a("    make bench                 # full: ~12 minutes; writes .output/bench/ and this page")
    a("    BENCH_QUICK=1 make bench   # ~3 minutes, 2 shapes x 2 concurrencies; .output/bench/ only")
    a("    python3 tools/bench.py --report   # rebuild the pages from .output/bench/summary.json")
    a("")
    a(f"`make bench` installs what is missing from Debian (gnuplot-nox, postfix preseeded to "
      f"\"No configuration\" so no system instance starts, ucspi-tcp), builds `mailless`, "
      f"`tools/loadgen`, `tools/floor` and `tools/synflood`, then runs `{cmdline}` as root. Every load is "
      f"`tools/loadgen -j -s SHAPE -c C -T T -d {DUR} -w {WARM} -t 10 127.0.0.1:PORT` "
      f"(`--expect-any` for every server but mailless, which is checked reply by reply), "
      f"with T = min(CPUs, C) loadgen threads: one thread alone is busy 87 % of a CPU at "
      f"c=256 and then limits every server alike.")
    a("")
    a("## Machine")
    a("")
    for k in ("cpu", "cpus", "mem_gib", "kernel", "mailless", "postfix", "nofile_hard", "port_range", "loadavg_start",
              "kernel_cgroup"):
        if k in facts:
            v = facts[k]
            a(f"- {k}: {' '.join(v) if isinstance(v, list) else v}")
    a("- a 2-core VM shared with other engineers' test runs: absolute numbers are noisy "
      "(±30 % minute to minute); the interleaving is what keeps the ratios fair.")
    a("")
    a("## Servers")
    a("")
    a("| name | what | port |")
    a("|---|---|---|")
    for s in servers:
        a(f"| {s} | {SERVER_DOC[s]} | 127.0.0.1:{PORT[s]} |")
    a("")
    a("mailless runs as `mailless run --engine kernel|user|xdp -l 127.0.0.1:PORT -H mx.bench "
      "--pin-dir /sys/fs/bpf/mlb-PID-ENGINE-TAG --log-level warn --max-sessions 16000 "
      "--max-sessions-per-source 0` (all load comes from one address; "
      "dialect rcpt: 220, 250, 521 at RCPT; no per-session log lines, like Postfix here, whose "
      "syslog has no listener). Postfix is a separate instance (config under "
      ".output/bench/postfix/, `master -d -c DIR`), loopback only, no port-25 service. "
      "Both Postfix variants answer 521 at connect and close, whatever the client sends, so "
      "for them every shape is the same greet-and-close session; rblsmtpd and the floor keep "
      "the whole dialogue. rblsmtpd runs as `tcpserver -R -H -l0 -c 1000 -b 1024 127.0.0.1 PORT "
      "rblsmtpd /bin/true` with RBLSMTPD=`-mx.bench does not accept mail`.")
    a("")
    a("## Method")
    a("")
    a(f"- Shapes {', '.join(SHAPES)} (tools/README.md) at concurrency {', '.join(map(str, CONCS))}; "
      f"for each cell every server runs once per round, {ROUNDS} rounds, in an order shuffled "
      f"anew for every cell and round (seeded, so reproducible). Rates are the median (min–max) over rounds; ratios to "
      f"the kernel engine are taken within the round, then the median (min–max) over rounds.")
    a("- No CPU pinning. With two cores, pinning the server to one and loadgen to the other "
      "would still leave the kernel engine's work where the kernel puts it (softirq on the "
      "sender's CPU for loopback, kernel workers for redirected replies), so it would favour "
      "nobody fairly; both programs share both CPUs, as in tools/README.md.")
    a("- The kernel engine runs in a cgroup v2 of its own (kernel_cgroup above), as under "
      "systemd, where every service has one: it attaches its sock_ops program to its own "
      "cgroup, and in the bench's cgroup that program would also run for every connection "
      "of every other server and of loadgen.")
    a("- CPU per 10k sessions: whole-machine busy time from /proc/stat (user, nice, system, "
      "irq, softirq) over the loadgen run, minus loadgen's own utime+stime (wait4 rusage), "
      "divided by all sessions of the run (warm-up ones included). Caveat, measured on this "
      "kernel (tick accounting, no CONFIG_IRQ_TIME_ACCOUNTING): on loopback the receiver's "
      "softirq runs in the sender's context and is charged to the sender's stime, so part "
      "of every server's receive work (and of the kernel engine's sk_skb verdict) is "
      "subtracted with loadgen, and part of loadgen's receive work is counted for the server. "
      "The whole-machine column (loadgen included) has no such bias: loadgen's own work per "
      "session is the same for every server of one shape, so differences there are server "
      "differences. Other engineers' load lands in both columns.")
    a("- Idle: fresh servers; `loadgen -s idle -c N -d HOLD` opens N sessions, reads each greeting, "
      "holds, QUITs. Kernel memory per session = peak delta of Slab (/proc/meminfo) and of "
      "/proc/net/sockstat TCP `mem` (pages of socket buffers) divided by N. Both ends of every "
      "connection are on this machine, so this is client + server sockets; the floor row "
      "is TCP alone, the difference is what a server adds. BPF maps are preallocated at load "
      "and so not in the delta: their memlock size is shown separately. Controller RSS is "
      "VmHWM of a controller that has served only the idle run.")
    a("")
    a("## Sessions/s")
    a("")
    a("kernel: sessions/s, median (min–max). Others: ratio to the kernel engine in the same round "
      "(>1 is faster than the kernel engine), median (min–max).")
    a("")
    others = [s for s in servers if s != "kernel"]
    a("| shape | c | kernel | " + " | ".join(others) + " |")
    a("|---|---|---|" + "---|" * len(others))
    for shape in SHAPES:
        for conc in CONCS:
            c = cells[f"{shape}/{conc}"]
            k = c["kernel"]
            lo, hi = k["rate_rng"]
            kr = f"{fmt_rate(k['rate_med'])} ({fmt_rate(lo)}–{fmt_rate(hi)})"
            a(f"| {shape} | {conc} | {kr} | " +
              " | ".join(fmt_ratio(c[s]["ratio_med"], *c[s]["ratio_rng"]) for s in others) + " |")
    a("")
    a("Absolute sessions/s, median over rounds:")
    a("")
    a("| shape | c | " + " | ".join(servers) + " |")
    a("|---|---|" + "---|" * len(servers))
    for shape in SHAPES:
        for conc in CONCS:
            c = cells[f"{shape}/{conc}"]
            a(f"| {shape} | {conc} | " + " | ".join(fmt_rate(c[s]["rate_med"]) for s in servers) + " |")
    a("")
    a(f"![sessions/s against concurrency]({png_name})")
    a("")
    for (srv, shape), why in NOT_RUN.items():
        if srv in servers and shape in SHAPES:
            a(f"{srv} is not run in the {shape} cells (–): {why}.")
            a("")
    errs = {s: sum(cells[k][s]["errors"] for k in cells) for s in servers}
    a("Failed sessions over all throughput runs: " +
      ", ".join(f"{s} {errs[s]}" for s in servers) + ".")
    a("")
    a("## CPU seconds per 10,000 sessions")
    a("")
    a("Machine minus loadgen (median over rounds); in brackets the whole machine with "
      "loadgen. For kernel/user/floor the last columns are the server process's own "
      "utime+stime (the kernel engine's controller barely works: its sessions run in softirq "
      "and kernel workers).")
    a("")
    a("| shape | c | " + " | ".join(servers) + " | kernel proc | user proc | floor proc |")
    a("|---|---|" + "---|" * (len(servers) + 3))

    def f2(x):
        return "–" if x is None else f"{x:.2f}"
    for shape in SHAPES:
        for conc in CONCS:
            c = cells[f"{shape}/{conc}"]
            a(f"| {shape} | {conc} | " +
              " | ".join(f"{f2(c[s]['cpu10k'])} ({f2(c[s]['cpu10k_machine'])})" for s in servers) +
              " | " + " | ".join(f2(c[s]["cpu10k_proc"]) if s in c else "–" for s in ("kernel", "user", "floor")) + " |")
    a("")
    a("## Idle sessions and memory")
    a("")
    a(f"{IDLE_N:,} idle sessions, held {IDLE_HOLD} s:")
    a("")
    def kinds(r):
        k = {a: b for a, b in (r.get("errors_by_kind") or {}).items() if b}
        return f"{r.get('errors')}" + (" (" + ", ".join(f"{a} {b}" for a, b in k.items()) + ")" if k else "")

    def closes(r):
        c = r.get("closes")
        if not c:
            return "–"
        return (f"QUIT {c.get('cmd_quit')}, 221 {c.get('reply_221')}, closed after 221 "
                f"{c.get('close_quit')}, closed by client {c.get('close_client')}")
    a("| server | held | errors | VmHWM | Slab delta / session | sockstat mem / session | BPF maps (preallocated) |")
    a("|---|---|---|---|---|---|---|")
    for s, r in idle.items():
        n = r["n"]
        bpf = "–" if r.get("bpf_map_bytes") is None else f"{r['bpf_map_bytes'] / 1048576:.1f} MiB"
        a(f"| {s} | {r.get('held')} | {kinds(r)} | "
          f"{(r.get('hwm_kb') or 0) / 1024:.1f} MiB | {r['slab_kb'] * 1024 / n:,.0f} B "
          f"(unreclaimable {r['sunreclaim_kb'] * 1024 / n:,.0f} B) | "
          f"{r['sock_mem_pages'] * PAGE / n:,.0f} B | "
          f"{bpf} |")
    a("")
    a(f"{IDLE_BIG:,} idle sessions (RLIMIT_NOFILE hard limit {facts.get('nofile_hard')} for "
      f"every process; loadgen and the server each hold {IDLE_BIG:,} descriptors):")
    a("")
    a("| server | held | errors | greeting p50 / p99 | VmHWM |")
    a("|---|---|---|---|---|")
    for s, r in big.items():
        lat = r.get("latency_us", {})
        a(f"| {s} | {r.get('held')} | {kinds(r)} | {lat.get('p50', 0) / 1000:.1f} / "
          f"{lat.get('p99', 0) / 1000:.1f} ms | {(r.get('hwm_kb') or 0) / 1024:.1f} MiB |")
    a("")
    a("The kernel engine's own counters (`mailless stats`) for the idle runs (no_close errors: the "
      "221 went out but the controller never closed; those sessions end only when the client "
      "gives up after `-t 30`, or at the idle timeout):")
    a("")
    for s, r in list(idle.items()) + list(big.items()):
        if r.get("closes") and s == "kernel":  # the user engine publishes its counters late
            a(f"- {s}, {r['n']:,} idle: {closes(r)}")
    a("")
    a("## Targets")
    a("")
    a("| target | met | measured |")
    a("|---|---|---|")
    for t in tg:
        a(f"| {t['target']} | {'yes' if t['met'] else '**no**'} | {t['detail']} |")
    a("")
    if prof:
        shape = prof.get("shape", "dialog")
        a(f"## Where the kernel engine's time goes ({shape}, c=256)")
        a("")
        a("Some target is missed, so: `perf record -a -g -- sleep 3` (cpu-clock; no hardware "
          f"counters in this VM) during `loadgen -s {shape} -c 256 -T {lg_threads(256)}` against "
          "the kernel engine, whole machine, loadgen included. `perf report --no-children "
          "--sort comm`:")
        a("")
        a("```")
        L.extend(prof["comms"])
        a("```")
        a("")
        if prof.get("user"):
            a("The same against the user engine, for comparison:")
            a("")
            a("```")
            L.extend(prof["user"]["comms"])
            a("```")
            a("")
        a("`--no-children --sort symbol`, top entries (self time). On this VM cpu-clock "
          "samples taken while interrupts are off land on the paravirt `pvm_irq_enable` / "
          "`pvm_safe_halt_hc` that re-enables them (softirq and idle), so the inclusive view "
          "below says more:")
        a("")
        a("```")
        L.extend(prof["symbols"])
        a("```")
        a("")
        a("`--children --sort symbol` (inclusive time, callees counted in their callers):")
        a("")
        a("```")
        L.extend(prof.get("inclusive", []))
        a("```")
        a("")
        if prof.get("bpf"):
            a("The sockmap path alone (inclusive): the BPF programs, the psock backlog that "
              "kernel workers run to transmit redirected replies, and the sock_ops hook:")
            a("")
            a("```")
            L.extend(prof["bpf"])
            a("```")
            a("")
    if costs:
        a("## The kernel engine's BPF programs, per session")
        a("")
        a("After the throughput cells, with `kernel.bpf_stats_enabled=1` (the kernel then times "
          "every program run; it is off for every other measurement here): "
          "`loadgen -c 256 -n 10000` per shape against the kernel engine, and the change in each "
          "pinned program's `run_cnt` and `run_time_ns` (`bpftool prog show`). `ml_sockops` runs "
          "for every callback op of every socket in the kernel engine's cgroup (its own here, so "
          "loadgen's sockets are not counted); only admission and state changes do work.")
        a("")
        a("| shape | " + " | ".join(f"{p} runs/session, ns/run" for p in BPF_PROGS) +
          " | BPF µs per session |")
        a("|---|" + "---|" * (len(BPF_PROGS) + 1))
        for shape, row in costs.items():
            a(f"| {shape} | " + " | ".join(
                f"{row[p]['runs_per_session']:.1f}, {row[p]['ns_per_run']:,.0f}" for p in BPF_PROGS) +
              f" | {row['us_per_session']:.1f} |")
        a("")
    if xcosts:
        a("## The XDP responder's program, per session")
        a("")
        a("The same way, against `--engine xdp`: the change in `run_cnt` and `run_time_ns` of "
          "the guard's program (`ml_guard_xr`, pinned as `ml_guard`), which answers every "
          "segment of the session itself. That is the server's whole work for a session but "
          "for the generic-mode skb handling around the program (loopback has no native "
          "XDP), which bpf_stats does not see; no socket exists on the server's side. On "
          "loopback the program runs in the softirq of the client's own send, so the \"minus "
          "loadgen\" CPU figures above undercount it: compare the XDP engine by this table and "
          "by the whole-machine figures, which include the clients.")
        a("")
        a("| shape | runs/session | ns/run | XDP µs per session |")
        a("|---|---|---|---|")
        for shape, row in xcosts.items():
            r = row.get("ml_guard", {})
            a(f"| {shape} | {r.get('runs_per_session', 0):.1f} | {r.get('ns_per_run', 0):,.0f} | "
              f"{row['us_per_session']:.2f} |")
        a("")
    bench_veth.report(veth, a, PORT)
    a("Raw data: .output/bench/runs.jsonl (one loadgen run a line), summary.json (the veth "
      "phase's runs under `veth`), rate.dat.")
    a("")
    return "\n".join(L)


# ---- main ------------------------------------------------------------------

def write_outputs(facts, servers, cells, idle, big, tg, prof, started, elapsed, cmdline, quick,
                  costs=None, xcosts=None, veth=None):
    png_out = os.path.join(OUT, "bench-rate.png")
    plot(cells, servers, png_out)
    md = report(facts, servers, cells, idle, big, tg, prof, started, elapsed,
                "bench-rate.png", cmdline, costs, xcosts, veth)
    with open(os.path.join(OUT, "report.md"), "w") as f:
        f.write(md)
    if not quick:
        shutil.copy(png_out, os.path.join(ROOT, "docs", "bench-rate.png"))
        doc = os.path.join(ROOT, "docs", "benchmarks.md")
        notes = ""
        try:  # hand-written notes below the marker survive a new run
            with open(doc) as f:
                old = f.read()
            if NOTES_MARK in old:
                notes = old[old.index(NOTES_MARK):]
        except OSError:
            pass
        with open(doc, "w") as f:
            f.write(md + ("\n" + notes if notes else ""))
        log("wrote docs/benchmarks.md and docs/bench-rate.png")


def report_only():
    """--report: rebuild report.md (and the docs for a full run) from summary.json."""
    global SHAPES, CONCS, ROUNDS, DUR, WARM, QUICK
    with open(os.path.join(OUT, "summary.json")) as f:
        s = json.load(f)
    QUICK, ROUNDS, DUR, WARM = s["quick"], s["rounds"], s["dur"], s["warm"]
    SHAPES = list(dict.fromkeys(k.split("/")[0] for k in s["cells"]))
    CONCS = sorted({int(k.split("/")[1]) for k in s["cells"]})
    prof = s.get("perf")
    data = os.path.join(OUT, "perf-kernel.data")
    if prof is not None and os.path.exists(data) and have("perf"):
        prof["bpf"] = perf_bpf_lines(data)
    write_outputs(s["facts"], s["servers"], s["cells"], s["idle"], s["idle_big"], s["targets"],
                  prof, s.get("started") or os.path.getmtime(os.path.join(OUT, "summary.json")) - s["elapsed_s"], s["elapsed_s"],
                  ("BENCH_QUICK=1 " if QUICK else "") + "python3 tools/bench.py", QUICK,
                  s.get("bpf_costs"), s.get("xdp_costs"), s.get("veth"))
    return 0


def veth_only():
    """--veth: the veth phase alone; .output/bench/veth.json and its section on stdout."""
    global CGROUP
    os.makedirs(OUT, exist_ok=True)
    CGROUP = own_cgroup_dir()
    try:
        veth = bench_veth.run(sys.modules[__name__], QUICK)
    finally:
        stop_all()
        if CGROUP:
            try:
                os.rmdir(CGROUP)
            except OSError:
                pass
    with open(os.path.join(OUT, "veth.json"), "w") as f:
        json.dump(veth, f, indent=1, default=str)
    lines, tg = [], []
    bench_veth.report(veth, lines.append, PORT)
    bench_veth.targets(veth, lambda n, ok, d: tg.append(f"{'MET ' if ok else 'MISS'} {n}: {d}"))
    print("\n".join(lines + tg))
    return 1 if veth.get("error") else 0


def main():
    if "--report" in sys.argv[1:]:
        return report_only()
    if "--veth" in sys.argv[1:]:
        return veth_only()
    if os.geteuid() != 0:
        print("bench: Error: needs root (the kernel engine loads BPF; Postfix drops to its user)",
              file=sys.stderr)
        return 2
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".stderr"):
            os.unlink(os.path.join(OUT, f))
    started = time.time()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    servers = ["kernel", "user", "xdp", "floor"]
    if have(POSTFIX_MASTER) and have("postfix"):
        servers += ["postscreen", "smtpd"]
    else:
        log("Postfix not installed: skipped")
    if have("tcpserver") and have("rblsmtpd"):
        servers.append("rblsmtpd")
    else:
        log("ucspi-tcp not installed: rblsmtpd skipped")
    facts = machine_facts()
    cmdline = ("BENCH_QUICK=1 " if QUICK else "") + "python3 tools/bench.py"
    runs = []
    runsf = open(os.path.join(OUT, "runs.jsonl"), "w")
    global CGROUP
    CGROUP = own_cgroup_dir()
    facts["kernel_cgroup"] = CGROUP or "the bench's own (no writable cgroup v2)"
    try:
        procs = start_servers(servers, "t")
        log(f"servers up: " + ", ".join(f"{s}:{PORT[s]}" for s in servers))
        ncell = 0
        total = len(SHAPES) * len(CONCS) * ROUNDS
        for rnd in range(ROUNDS):
            for shape in SHAPES:
                for conc in CONCS:
                    ncell += 1
                    # A fresh seeded shuffle per cell and round: a rotation would keep
                    # every server's predecessor fixed (the kernel engine would always
                    # follow rblsmtpd's 256 exiting processes).
                    order = list(servers)
                    random.Random(ncell).shuffle(order)
                    line = []
                    for s in order:
                        if (s, shape) in NOT_RUN:
                            continue
                        r = measure(s, shape, conc, procs)
                        r.update(round=rnd, shape_=shape, conc_=conc)
                        runs.append(r)
                        runsf.write(json.dumps(r) + "\n")
                        runsf.flush()
                        tag = f"{s}={r.get('rate', 0):.0f}"
                        if r.get("errors") or r.get("error"):
                            tag += f"(err {r.get('errors', r.get('error'))})"
                        line.append(tag)
                    log(f"[{ncell}/{total}] round {rnd + 1} {shape} c={conc}: " + " ".join(line))
        servers_proc_cells = summarize(runs, servers)

        prof = costs = xcosts = veth = None
        # Profile now, while the throughput servers are warm, if a rate/CPU target is missed.
        tg_pre = targets(servers_proc_cells, {}, {}, servers)
        if any(not t["met"] for t in tg_pre):
            # The shape of the first missed kernel-vs-user target, else dialog.
            shape = next((t["target"].split(", ")[1].split()[0] for t in tg_pre
                          if not t["met"] and " user, " in t["target"]), "dialog")
            log(f"a target is missed: perf profiles of both engines at {shape} c=256")
            prof = perf_profile(procs, shape)
            if prof:
                prof["user"] = perf_profile(procs, shape, "user")
        log("BPF program costs (kernel.bpf_stats_enabled), c=256")
        costs = bpf_costs(f"/sys/fs/bpf/mlb-{os.getpid()}-kernel-t")
        xcosts = bpf_costs(f"/sys/fs/bpf/mlb-{os.getpid()}-xdp-t", ("ml_guard",), "xdp")
        stop_all()

        log("veth phase: servers and client in their own namespaces and on their own CPUs")
        veth = bench_veth.run(sys.modules[__name__], QUICK)

        # Idle phase: fresh servers, one at a time, so VmHWM and Slab are theirs alone.
        idle, big = {}, {}
        for s in ("kernel", "user", "floor"):
            p = start_servers([s], "idle")
            pin = f"/sys/fs/bpf/mlb-{os.getpid()}-{s}-idle"
            r = idle_run(s, p, IDLE_N, IDLE_HOLD)
            if s in ("kernel", "user"):
                r["bpf_map_bytes"] = bpf_map_bytes(pin) if s == "kernel" else None
                r["closes"] = mailless_closes(pin)
            idle[s] = r
            log(f"idle {IDLE_N} {s}: held {r.get('held')} errors {r.get('errors')} "
                f"VmHWM {r.get('hwm_kb')} kB slab +{r['slab_kb']} kB sockmem +{r['sock_mem_pages']} pages")
            if s in ("kernel", "user"):
                c0 = r["closes"] or {}
                r2 = idle_run(s, p, IDLE_BIG, 2 if QUICK else 3)
                c1 = mailless_closes(pin) or {}
                r2["closes"] = {k: (c1.get(k) or 0) - (c0.get(k) or 0) for k in c1}
                big[s] = r2
                log(f"idle {IDLE_BIG} {s}: held {r2.get('held')} errors {r2.get('errors')}")
            stop_all()
            time.sleep(1)
    finally:
        stop_all()
        runsf.close()
        if CGROUP:
            try:
                os.rmdir(CGROUP)  # empty once the kernel engine exited
            except OSError as e:
                log(f"cannot remove {CGROUP}: {e}")

    cells = servers_proc_cells
    tg = targets(cells, idle, big, servers, xcosts, veth)
    elapsed = time.time() - started
    summary = {"facts": facts, "servers": servers, "quick": QUICK, "rounds": ROUNDS,
               "dur": DUR, "warm": WARM, "cells": cells, "idle": idle, "idle_big": big,
               "targets": tg, "perf": prof, "bpf_costs": costs, "xdp_costs": xcosts,
               "veth": veth,
               "elapsed_s": elapsed,
               "started": started}
    with open(os.path.join(OUT, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, default=str)
    write_outputs(facts, servers, cells, idle, big, tg, prof, started, elapsed, cmdline, QUICK,
                  costs, xcosts, veth)
    log(f"done in {elapsed / 60:.1f} min; report: {os.path.join(OUT, 'report.md')}")
    for t in tg:
        log(f"target {'MET ' if t['met'] else 'MISS'} {t['target']}: {t['detail']}")
    return 0


if __name__ == "__main__":
    def on_term(sig, frm):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
