"""The veth phase of make bench (tools/bench.py): server CPU per session and
SYNs answered per second, with the servers and the client in separate network
namespaces and on separate CPUs.

On loopback (the rest of make bench) the server's receive work runs in the
client's send, so no figure there is the server's alone. Here every server
and all of its receive work run on CPU 1, the client on CPU 0:

  client ns mlbc-PID            server ns mlbs-PID (kernel, user, floor)
    mbc1 10.253.1.2  ---veth---   mbs1 10.253.1.1   RPS: receive work on CPU 1
                                server ns mlbx-PID (the XDP responder)
    mbc2 10.253.2.2  ---veth---   mbx  10.253.2.1   native XDP, threaded NAPI
                                                    pinned to CPU 1

- Both client ends carry the `pass` program (tools/synflood.bpf.c): the
  responder's native XDP_TX needs a program on the peer, and every server
  then meets the same client side. Their NAPI is threaded and pinned to CPU 0,
  with loadgen (-T 1), the bench itself and RPS for their receive work.
- The socket servers' veth has no XDP program: their receive path is the
  usual one (no NAPI on a veth without XDP or GRO), steered to CPU 1 by RPS.
- Server CPU per session: CPU 1's busy time over a loadgen run (wall time
  minus /proc/stat's idle and iowait, which NO_HZ measures exactly), divided
  by the run's sessions (warm-up included). CPU 1 also carries whatever else
  the machine runs there: the idle baseline is measured and shown, not
  subtracted. The server process's and the NAPI thread's own shares come from
  /proc/TID/schedstat.
- SYNs answered: tools/synflood on the client's veth (its sink replaces
  `pass` there) at offered rates, counting the SYN-ACKs that come back. The
  Linux listener row is the kernel engine's listening socket (Linux answers
  the SYN, with syncookies once its SYN queue is full); for that row alone
  `pass` and threaded NAPI are put on the socket servers' veth too, because
  live frames can only be sent to a veth whose peer has NAPI.
"""
import json
import os
import re
import statistics
import subprocess
import time

SERVER_CPU, CLIENT_CPU = 1, 0
SERVERS = ("kernel", "user", "xdp", "floor")
SHAPES = ("greet-quit", "dialog", "pipelined")
CONCS = (16, 256)
SYN_RATES = (500000, 1000000, 1500000, 2000000, 0)   # 0: as fast as it goes
SYN_SECS = 2
USER_HZ = os.sysconf("SC_CLK_TCK")     # the unit of /proc/stat


def sched_s(tids):
    """Time on CPU (s) of these tasks, from /proc/TID/schedstat (nanoseconds,
    exact, where utime and stime are sampled at the tick)."""
    t = 0
    for tid in tids:
        try:
            with open(f"/proc/{tid}/schedstat") as f:
                t += int(f.read().split()[0])
        except OSError:
            pass
    return t / 1e9


def napi_threads(dev):
    """PIDs of the NAPI kernel threads of dev (named napi/DEV-ID)."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().startswith(f"napi/{dev}-"):
                        out.append(int(p))
            except OSError:
                pass
    return out


def threads(pid):
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


class Veth:
    def __init__(self, b):
        self.b = b                        # the bench module: start, stop_all, log, paths
        pid = os.getpid()
        self.nsc, self.nss, self.nsx = f"mlbc-{pid}", f"mlbs-{pid}", f"mlbx-{pid}"
        self.pin = f"/sys/fs/bpf/mlb-{pid}-veth"
        self.obj = os.path.join(b.ROOT, ".output", "tools", "synflood.bpf.o")
        self.synflood_bin = os.path.join(b.ROOT, ".output", "tools", "synflood")
        self.addr = {"kernel": "10.253.1.1", "user": "10.253.1.1", "floor": "10.253.1.1",
                     "xdp": "10.253.2.1"}
        self.made = []
        self.napi = []
        self.napi_of = {}       # server veth -> its NAPI threads

    # -- plumbing ---------------------------------------------------------
    def ns(self, name, argv, check=True):
        r = subprocess.run(["nsenter", f"--net=/run/netns/{name}"] + argv,
                           capture_output=True, text=True)
        if check and r.returncode:
            raise RuntimeError(f"{' '.join(argv)} in {name}: {r.stderr.strip()}")
        return r

    def sysfs(self, name, path, value):
        """Write a /sys/class/net file of namespace name: sysfs shows the
        namespace it is mounted in, so mount one in a private mount ns."""
        self.ns(name, ["unshare", "-m", "sh", "-c",
                       f"mount -t sysfs none /sys && echo {value} > /sys/class/net/{path}"])

    def mac(self, name, dev):
        out = self.ns(name, ["ip", "-j", "link", "show", dev]).stdout
        return json.loads(out)[0]["address"]

    def napi_pin(self, dev, cpu):
        """Pin the NAPI threads of dev to cpu; their PIDs."""
        n = napi_threads(dev)
        for pid in n:
            os.sched_setaffinity(pid, {cpu})
        if not n:
            raise RuntimeError(f"no NAPI thread napi/{dev}-* (threaded NAPI not on?)")
        return n

    def attach_pass(self, name, dev, cpu):
        self.ns(name, ["bpftool", "net", "attach", "xdpdrv", "pinned", f"{self.pin}/pass",
                       "dev", dev])
        self.sysfs(name, f"{dev}/threaded", 1)
        self.napi_of[dev] = self.napi_pin(dev, cpu)

    def detach(self, name, dev):
        self.ns(name, ["ip", "link", "set", "dev", dev, "xdpdrv", "off"], check=False)

    def setup(self):
        for d in ("mbc1", "mbc2", "mbs1", "mbx"):
            if napi_threads(d):
                raise RuntimeError(f"a NAPI thread of another {d} exists: is another bench running?")
        for n in (self.nsc, self.nss, self.nsx):
            subprocess.run(["ip", "netns", "add", n], check=True)
            self.made.append(n)
            self.ns(n, ["ip", "link", "set", "lo", "up"])
        for cdev, sdev, sns, net in (("mbc1", "mbs1", self.nss, 1), ("mbc2", "mbx", self.nsx, 2)):
            subprocess.run(["ip", "link", "add", cdev, "netns", self.nsc, "type", "veth",
                            "peer", "name", sdev, "netns", sns], check=True)
            self.ns(self.nsc, ["ip", "addr", "add", f"10.253.{net}.2/24", "dev", cdev])
            self.ns(self.nsc, ["ip", "link", "set", cdev, "up"])
            self.ns(sns, ["ip", "addr", "add", f"10.253.{net}.1/24", "dev", sdev])
            self.ns(sns, ["ip", "link", "set", sdev, "up"])
            self.sysfs(self.nsc, f"{cdev}/queues/rx-0/rps_cpus", 1 << CLIENT_CPU)
            self.sysfs(sns, f"{sdev}/queues/rx-0/rps_cpus", 1 << SERVER_CPU)
        self.ns(self.nsc, ["sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535"])
        subprocess.run(["bpftool", "prog", "loadall", self.obj, self.pin], check=True,
                       capture_output=True)
        for cdev in ("mbc1", "mbc2"):
            self.attach_pass(self.nsc, cdev, CLIENT_CPU)

    def teardown(self):
        for n in reversed(self.made):
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
        self.made = []
        subprocess.run(["rm", "-rf", self.pin])

    # -- servers ----------------------------------------------------------
    def start_servers(self):
        b, procs = self.b, {}
        pre = ["taskset", "-c", str(SERVER_CPU)]
        for s in SERVERS:
            if s == "floor":
                argv = [b.FLOOR, f"{self.addr[s]}:{b.PORT[s]}"]
            else:
                argv = b.mailless_argv(s, "veth")
                argv[argv.index("-l") + 1] = f"{self.addr[s]}:{b.PORT[s]}"
                if s == "xdp":
                    argv += ["--xdp", "mbx", "--xdp-mode", "native", "--syn-rate", "0"]
            ns = self.nsx if s == "xdp" else self.nss
            procs[s] = b.start(f"veth-{s}", ["nsenter", f"--net=/run/netns/{ns}"] + pre + argv,
                               cgroup=b.CGROUP if s == "kernel" else None)
        for s in SERVERS:
            self.wait_listen(s, procs[s])
        self.sysfs(self.nsx, "mbx/threaded", 1)
        self.napi = self.napi_pin("mbx", SERVER_CPU)
        self.napi_of["mbx"] = self.napi
        self.pids = {s: [procs[s].pid] for s in SERVERS}
        return procs

    def wait_listen(self, s, p, secs=10.0):
        ns = self.nsx if s == "xdp" else self.nss
        end = time.time() + secs
        while time.time() < end:
            if p.poll() is not None:
                raise RuntimeError(f"veth {s} exited with {p.returncode}; see .output/bench/veth-{s}.stderr")
            out = self.ns(ns, ["ss", "-Hltn", f"sport = :{self.b.PORT[s]}"], check=False).stdout
            if out.strip():
                return
            time.sleep(0.1)
        raise RuntimeError(f"veth {s} did not listen on {self.addr[s]}:{self.b.PORT[s]}")

    # -- measurements -----------------------------------------------------
    @staticmethod
    def cpu_idle():
        """Idle time per CPU (idle + iowait, seconds) and the monotonic clock.
        Busy time is taken as wall time minus idle time: on a NO_HZ kernel
        /proc/stat's idle is measured at every idle entry and exit, while the
        busy columns are sampled at the tick, and short bursts (a paced
        sender, a NAPI thread woken per packet) fall between ticks."""
        out = {}
        with open("/proc/stat") as f:
            for line in f:
                m = re.match(r"cpu(\d+) (.*)", line)
                if m:
                    v = [int(x) for x in m.group(2).split()]
                    out[int(m.group(1))] = (v[3] + v[4]) / USER_HZ
        out["t"] = time.monotonic()
        return out

    @staticmethod
    def cpu_delta(j0, j1):
        wall = j1["t"] - j0["t"]
        d = {}
        for cpu in (CLIENT_CPU, SERVER_CPU):
            busy = max(0.0, wall - (j1[cpu] - j0[cpu]))
            d[cpu] = {"busy_s": busy, "util": busy / wall if wall else None}
        return d

    def loadgen(self, s, shape, conc, dur, warm, n=None):
        b = self.b
        argv = (["nsenter", f"--net=/run/netns/{self.nsc}", "taskset", "-c", str(CLIENT_CPU),
                 b.LOADGEN, "-j", "--allow-remote", "-s", shape, "-c", str(conc), "-T", "1",
                 "-t", "10"] + (["-n", str(n)] if n else ["-d", str(dur), "-w", str(warm)]) +
                ([] if s in b.MAILLESS_ENGINES else ["--expect-any"]) +
                [f"{self.addr[s]}:{b.PORT[s]}"])
        p0 = self.task_cpu(s)
        j0, t0 = self.cpu_idle(), time.time()
        r = subprocess.run(argv, capture_output=True, text=True)
        wall = time.time() - t0
        j1 = self.cpu_idle()
        p1 = self.task_cpu(s)
        try:
            res = json.loads(r.stdout)
        except ValueError:
            res = {"error": "no JSON: " + (r.stdout + r.stderr)[-300:]}
        res["proc_s"] = p1[0] - p0[0]       # the server process, all its threads
        res["napi_s"] = p1[1] - p0[1]       # the responder's NAPI thread (xdp only)
        res.update(rc=r.returncode, wall_s=wall, server=s, shape_=shape, conc_=conc,
                   stderr=r.stderr[-600:], cpus=self.cpu_delta(j0, j1))
        total = res.get("sessions", 0) + res.get("warmup_sessions", 0)
        res["sessions_total"] = total
        if total:
            res["server_us"] = res["cpus"][SERVER_CPU]["busy_s"] / total * 1e6
            res["client_us"] = res["cpus"][CLIENT_CPU]["busy_s"] / total * 1e6
            res["proc_us"] = res["proc_s"] / total * 1e6
            res["napi_us"] = res["napi_s"] / total * 1e6
        return res

    def task_cpu(self, s):
        """Time on CPU (s) of server s's process (all its threads) and of the
        responder's NAPI thread."""
        return (sched_s(threads(self.pids[s][0])), sched_s(self.napi) if s == "xdp" else 0)

    def baseline(self, secs=2.0):
        j0 = self.cpu_idle()
        time.sleep(secs)
        return self.cpu_delta(j0, self.cpu_idle())

    def xdp_prog_cost(self, shape):
        """The responder's program time per session on the veth (bpf_stats)."""
        pin = f"/sys/fs/bpf/mlb-{os.getpid()}-xdp-veth"
        s0 = self.b.prog_stats(pin, ("ml_guard",))
        r = self.loadgen("xdp", shape, 256, None, None, n=20000)
        s1 = self.b.prog_stats(pin, ("ml_guard",))
        n = r.get("sessions", 0)
        if not (s0 and s1 and n):
            return None
        runs = s1["ml_guard"][0] - s0["ml_guard"][0]
        ns = s1["ml_guard"][1] - s0["ml_guard"][1]
        return {"sessions": n, "runs_per_session": runs / n, "ns_per_run": ns / runs if runs else 0,
                "us_per_session": ns / n / 1000}

    def link(self, name, dev):
        j = json.loads(self.ns(name, ["ip", "-j", "-s", "link", "show", dev]).stdout)[0]["stats64"]
        return {"rx": j["rx"]["packets"], "rx_dropped": j["rx"]["dropped"],
                "tx": j["tx"]["packets"], "tx_dropped": j["tx"]["dropped"]}

    def synflood(self, cdev, target_ns, sdev, addr, port, rate):
        argv = (["nsenter", f"--net=/run/netns/{self.nsc}", "taskset", "-c", str(CLIENT_CPU),
                 self.synflood_bin, "-j", "-i", cdev, "--dst-mac", self.mac(target_ns, sdev),
                 "-D", str(SYN_SECS), "-r", str(rate), f"{addr}:{port}"])
        l0, n0 = self.link(target_ns, sdev), sched_s(self.napi_of.get(sdev, []))
        j0 = self.cpu_idle()
        r = subprocess.run(argv, capture_output=True, text=True)
        j1 = self.cpu_idle()
        l1, n1 = self.link(target_ns, sdev), sched_s(self.napi_of.get(sdev, []))
        try:
            res = json.loads(r.stdout)
        except ValueError:
            res = {"error": (r.stdout + r.stderr).strip()[-300:]}
        # The server's veth: rx = SYNs that reached it, rx_dropped = its ring
        # was full (or the program dropped), tx + tx_dropped = what it sent
        # back (tx_dropped: the client's ring was full).
        res.update(rc=r.returncode, offered=rate, cpus=self.cpu_delta(j0, j1),
                   server_link={k: l1[k] - l0[k] for k in l0}, napi_s=n1 - n0)
        return res


def run(b, quick):
    """The whole veth phase; returns its summary (or {"error": ...})."""
    v = Veth(b)
    shapes = ("greet-quit",) if quick else SHAPES
    concs = (256,) if quick else CONCS
    rounds = 1 if quick else 3
    rates = (1000000, 0) if quick else SYN_RATES
    res = {"servers": list(SERVERS), "shapes": list(shapes), "concs": list(concs),
           "rounds": rounds, "runs": [], "syn": {}, "server_cpu": SERVER_CPU,
           "client_cpu": CLIENT_CPU}
    old_aff = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {CLIENT_CPU})
    procs = {}
    try:
        v.setup()
        procs = v.start_servers()
        time.sleep(1)
        res["baseline"] = v.baseline()
        b.log(f"veth: servers up; idle CPU {SERVER_CPU} busy "
              f"{res['baseline'][SERVER_CPU]['util'] * 100:.1f} %")
        ncell = 0
        for rnd in range(rounds):
            for shape in shapes:
                for conc in concs:
                    ncell += 1
                    order = list(SERVERS)
                    b.random.Random(1000 + ncell).shuffle(order)
                    line = []
                    for s in order:
                        if (s, shape) in b.NOT_RUN:
                            continue
                        r = v.loadgen(s, shape, conc, b.DUR, b.WARM)
                        r["round"] = rnd
                        res["runs"].append(r)
                        line.append(f"{s}={r.get('rate', 0):.0f}/s,{r.get('server_us', 0):.1f}us"
                                    f"(proc {r.get('proc_us', 0):.1f} napi {r.get('napi_us', 0):.1f})"
                                    + (f"(err {r.get('errors', r.get('error'))})"
                                       if r.get("errors") or r.get("error") else ""))
                    b.log(f"veth round {rnd + 1} {shape} c={conc}: " + " ".join(line))
        # bpf_stats for the responder's program on the veth
        path = "/proc/sys/kernel/bpf_stats_enabled"
        with open(path) as f:
            old = f.read().strip()
        try:
            with open(path, "w") as f:
                f.write("1")
            res["xdp_prog"] = {sh: v.xdp_prog_cost(sh) for sh in shapes}
        finally:
            with open(path, "w") as f:
                f.write(old)
        # SYNs: the responder, then the Linux listener (the kernel engine's
        # socket, whose veth needs a pass program for native XDP_TX back).
        for who, cdev, ns, sdev, srv in (("xdp", "mbc2", v.nsx, "mbx", "xdp"),
                                         ("linux", "mbc1", v.nss, "mbs1", "kernel")):
            v.detach(v.nsc, cdev)
            if who == "linux":
                v.attach_pass(v.nss, sdev, SERVER_CPU)
            res["syn"][who] = []
            for rate in rates:
                r = v.synflood(cdev, ns, sdev, v.addr[srv], b.PORT[srv], rate)
                res["syn"][who].append(r)
                b.log(f"veth SYN {who} offered {rate or 'max'}: sent {r.get('rate', 0):.0f}/s "
                      f"back at the client {r.get('synack_rate', 0):.0f}/s, CPU {SERVER_CPU} "
                      f"{r['cpus'][SERVER_CPU]['util'] * 100:.0f} %" +
                      (f" ERROR {r['error']}" if r.get("error") else ""))
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        b.log(f"veth phase failed: {e}")
        res["error"] = str(e)
    finally:
        for s, p in procs.items():
            b.stop(f"veth-{s}", p)
        v.teardown()
        os.sched_setaffinity(0, old_aff)
    return res


# ---- summary and report ------------------------------------------------------

def _med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _norm(res):
    """CPU numbers as keys again after a round trip through summary.json."""
    def fix(d):
        return {int(k): v for k, v in d.items()}
    for r in res.get("runs", []):
        r["cpus"] = fix(r["cpus"])
    for rows in (res.get("syn") or {}).values():
        for r in rows:
            if "cpus" in r:
                r["cpus"] = fix(r["cpus"])
    if res.get("baseline"):
        res["baseline"] = fix(res["baseline"])
    return res


def summarize(res):
    """cells[shape/conc][server]: medians over rounds; xdp's server-CPU ratio
    to the kernel engine taken within a round."""
    cells = {}
    runs = _norm(res).get("runs", [])
    for shape in res.get("shapes", []):
        for conc in res.get("concs", []):
            c = {}
            for s in res["servers"]:
                rs = [r for r in runs if r["server"] == s and r["shape_"] == shape and r["conc_"] == conc]
                if not rs:
                    continue
                c[s] = {"rate": _med([r.get("rate") for r in rs]),
                        "server_us": _med([r.get("server_us") for r in rs]),
                        "client_us": _med([r.get("client_us") for r in rs]),
                        "proc_us": _med([r.get("proc_us") for r in rs]),
                        "napi_us": _med([r.get("napi_us") for r in rs]),
                        "server_util": _med([r["cpus"][SERVER_CPU]["util"] for r in rs]),
                        "client_util": _med([r["cpus"][CLIENT_CPU]["util"] for r in rs]),
                        "errors": sum((r.get("errors") or 0) + (1 if r.get("error") else 0)
                                      for r in rs)}
                ratios = []
                for rnd in range(res["rounds"]):
                    k = [r for r in runs if r["server"] == "kernel" and r["shape_"] == shape
                         and r["conc_"] == conc and r["round"] == rnd and r.get("server_us")]
                    o = [r for r in rs if r["round"] == rnd and r.get("server_us")]
                    if k and o:
                        ratios.append(k[0]["server_us"] / o[0]["server_us"])
                c[s]["kernel_over"] = _med(ratios)
                c[s]["kernel_over_rng"] = (min(ratios), max(ratios)) if ratios else (None, None)
            cells[f"{shape}/{conc}"] = c
    return cells


def syn_answered(r):
    """SYN-ACKs a second the server put out (its veth's tx and tx_dropped)."""
    sl = r.get("server_link")
    if not sl or not r.get("secs"):
        return None
    return (sl["tx"] + sl["tx_dropped"]) / r["secs"]


def syn_best(res, who):
    rows = [r for r in res.get("syn", {}).get(who, []) if syn_answered(r)]
    return max(rows, key=syn_answered) if rows else None


def free_program_bound(res, cells, shape):
    """The kernel engine's server CPU per session over what the responder's
    would be with its program free (its share minus the program's bpf_stats
    time): the most any XDP program could reach on this rig. None if a part
    is missing."""
    c = cells.get(f"{shape}/{max(res['concs'])}", {})
    p = (res.get("xdp_prog") or {}).get(shape)
    if not p or "xdp" not in c or "kernel" not in c:
        return None
    rest = c["xdp"]["server_us"] - p["us_per_session"]
    return c["kernel"]["server_us"] / rest if rest > 0 else None


def targets(res, row):
    """Adds the veth rows to make bench's targets through row(name, ok, detail)."""
    if not res or res.get("error") or not res.get("runs"):
        return
    cells = summarize(res)
    top = max(res["concs"])
    for shape in res["shapes"]:
        c = cells.get(f"{shape}/{top}", {})
        if "xdp" in c and "kernel" in c and c["xdp"]["kernel_over"]:
            x = c["xdp"]
            best = free_program_bound(res, cells, shape)
            row(f"xdp >= 10x less server CPU per session than kernel, on a veth, {shape} c={top}",
                x["kernel_over"] >= 10,
                f"{x['kernel_over']:.1f}x ({x['server_us']:.2f} vs {c['kernel']['server_us']:.2f} "
                f"us of CPU {SERVER_CPU} per session)" +
                (f"; with its program free, at most {best:.1f}x on this rig" if best else ""))
    best = syn_best(res, "xdp")
    if best:
        ans = syn_answered(best)
        row("xdp answers >= 1,000,000 SYN/s on a veth (native mode)", ans >= 1e6,
            f"{ans:,.0f} SYN-ACKs/s sent by the responder of {best['rate']:,.0f} SYNs/s offered "
            f"({best['synack_rate']:,.0f}/s reached the client); CPU {SERVER_CPU} "
            f"{best['cpus'][SERVER_CPU]['util'] * 100:.0f} % busy")


def report(res, a, port):
    """The page's veth section, line by line through a()."""
    a("## On a veth: server CPU per session, SYNs answered")
    a("")
    if not res:
        a("Not run.")
        a("")
        return
    if res.get("error"):
        a(f"The veth phase failed: {res['error']}")
        a("")
        if not res.get("runs"):
            return
    _norm(res)
    s, c = res["server_cpu"], res["client_cpu"]
    base = res.get("baseline", {})
    a(f"Servers in network namespaces of their own, the client in another, joined by veth "
      f"pairs; everything a server does, its receive work included, runs on CPU {s}, and "
      f"the client (loadgen -T 1, its veths' threaded NAPI, the bench) on CPU {c}. The socket "
      f"servers' veth has no XDP program (their usual receive path, steered to CPU {s} by "
      f"RPS); the responder runs native on its own veth, whose threaded NAPI is pinned to CPU "
      f"{s}. Both client veths carry an XDP pass program (native XDP_TX needs one on the "
      f"peer). tools/bench_veth.py has the whole set-up.")
    a("")
    a(f"Server CPU per session = CPU {s}'s busy time over the run (wall time minus "
      f"/proc/stat's idle, which this NO_HZ kernel measures at every idle entry and exit; "
      f"the busy columns are only sampled at the tick), divided by its sessions (warm-up "
      f"included). Of it, the server process (all threads) and the responder's NAPI thread, "
      f"from /proc/TID/schedstat; the rest is softirq and interrupts (the socket servers' "
      f"receive work). It includes everything else that ran on CPU {s}: idle, that CPU was "
      f"{(base.get(s) or {}).get('util', 0) * 100:.1f} % busy. "
      f"Loads: `loadgen -s SHAPE -c C -T 1 -d DUR -w WARM` as on loopback, {res['rounds']} "
      f"rounds in a shuffled order. The xdp ratio is the kernel engine's server CPU per session "
      f"over the responder's, within a round, median (min–max).")
    a("")
    cells = summarize(res)
    a(f"| shape | c | server | sessions/s | server µs/session (CPU {s}) | of it: process | "
      f"NAPI thread | CPU {s} busy | CPU {c} busy | kernel ÷ this | failed |")
    a("|---|---|---|---|---|---|---|---|---|---|---|")

    def f(x, fmt):
        return "–" if x is None else format(x, fmt)
    for key, cell in cells.items():
        shape, conc = key.split("/")
        for srv in res["servers"]:
            x = cell.get(srv)
            if not x:
                continue
            lo, hi = x["kernel_over_rng"]
            ratio = (f"{x['kernel_over']:.1f}x ({lo:.1f}–{hi:.1f})"
                     if x["kernel_over"] and srv != "kernel" else "–")
            a(f"| {shape} | {conc} | {srv} | {f(x['rate'], ',.0f')} | {f(x['server_us'], '.2f')} | "
              f"{f(x['proc_us'], '.2f')} | {f(x['napi_us'], '.2f') if srv == 'xdp' else '–'} | "
              f"{f(x['server_util'] and x['server_util'] * 100, '.0f')} % | "
              f"{f(x['client_util'] and x['client_util'] * 100, '.0f')} % | {ratio} | {x['errors']} |")
    a("")
    a(f"Where CPU {c} is near 100 % busy and CPU {s} is not, the client side (Linux's TCP "
      f"stack and loadgen on one CPU) is what limits sessions/s, not the server.")
    a("")
    xp = res.get("xdp_prog") or {}
    if any(xp.values()):
        a("The responder's program alone (kernel.bpf_stats_enabled=1, `loadgen -c 256 -n 20000` "
          "per shape), on the veth:")
        a("")
        a("| shape | runs/session | ns/run | µs per session | kernel ÷ the rest of the "
          "responder's server CPU |")
        a("|---|---|---|---|---|")
        for shape, r in xp.items():
            if r:
                best = free_program_bound(res, cells, shape)
                a(f"| {shape} | {r['runs_per_session']:.1f} | {r['ns_per_run']:,.0f} | "
                  f"{r['us_per_session']:.2f} | {f'{best:.1f}x' if best else '–'} |")
        a("")
        a("The last column is the most any program could reach here: the responder's server "
          "CPU per session with its program's own time taken out (what is left is the veth's "
          "receive and transmit work, the NAPI thread and the controller), against the "
          "kernel engine's.")
        a("")
    syn = res.get("syn") or {}
    if syn:
        a(f"SYNs answered: `tools/synflood -r RATE -D {SYN_SECS}` on the client's veth, "
          f"pinned to CPU {c}. It makes each SYN (Linux's options: MSS, SACK-permitted, "
          f"timestamps, window scale) with a BPF program run in live-frames mode and counts "
          f"the SYN-ACKs with another, attached to the same veth, before any TCP code sees "
          f"them. Rate 0 is as fast as the kernel takes them. xdp: the responder, native. "
          f"linux: the kernel engine's listening socket (Linux answers the SYN, with "
          f"syncookies once its SYN queue is full), with a pass program and threaded NAPI "
          f"pinned to CPU {s} on its veth for this row only (live frames need NAPI on the "
          f"peer).")
        a("")
        a(f"Columns: the pace asked for; SYNs sent a second (each live-frames call spends "
          f"about 20 ms on set-up with nothing sent, so the pace is met only on average); "
          f"SYN-ACKs a second the server sent (its veth's tx, plus tx dropped where the "
          f"client's ring was full); that as a share of the SYNs; SYN-ACKs a second that "
          f"reached the client's counter; the server's NAPI thread's time per SYN-ACK "
          f"(schedstat); both CPUs' busy share.")
        a("")
        a(f"| server | pace/s | sent/s | SYN-ACKs/s sent | answered | reached client/s | "
          f"NAPI µs/SYN | CPU {s} busy | CPU {c} busy |")
        a("|---|---|---|---|---|---|---|---|---|")
        for who, rows in syn.items():
            for r in rows:
                pace = f"{r['offered']:,}" if r.get("offered") else "max"
                if r.get("error"):
                    a(f"| {who} | {pace} | error: {r['error']} | | | | | | |")
                    continue
                ans = syn_answered(r) or 0
                sl = r.get("server_link") or {}
                nsyn = sl.get("tx", 0) + sl.get("tx_dropped", 0)
                a(f"| {who} | {pace} | {r['rate']:,.0f} | {ans:,.0f} | "
                  f"{nsyn / r['sent'] * 100 if r['sent'] else 0:.1f} % | "
                  f"{r['synack_rate']:,.0f} | "
                  f"{r['napi_s'] / nsyn * 1e6 if nsyn else 0:.2f} | "
                  f"{r['cpus'][s]['util'] * 100:.0f} % | {r['cpus'][c]['util'] * 100:.0f} % |")
        a("")
