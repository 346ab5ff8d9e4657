# SPDX-License-Identifier: GPL-2.0
"""
interop.py - one message from a real MTA to mailless, and what comes back.
Used by t_interop.py (the default row, in `make test`) and matrix.py (`make
interop`, the whole matrix), on tests/e2e/mltest.py's Env.

run(env, mta, engine, dialect, window, x, tmp)
  Two namespaces joined by a veth (Env.pair, 192.0.2.0/24):
    receiver: mailless -H mx.mailless.test --engine ENGINE -d DIALECT on port
              25 (ENGINE none: nothing listens there, the baseline)
    sender:   dnsmasq on 127.0.0.1 (MX of mailless.test: mx.mailless.test at
              the receiver's address; sender.test at the sender's), and the
              MTA's jail (jail.sh: Debian's package in a private root)
  alice@sender.test sends one message to bob@mailless.test with the MTA's
  sendmail(1); the run watches alice's mailbox for up to WINDOW seconds.
  Returns a Run:
    outcome   bounced (a DSN came back), relayed (the MTA sent its DSN to
              mailless too: it has no local delivery), deferred (none in
              WINDOW s; the message is still queued), lost (none, and not
              queued), error (the run failed: why says why)
    secs      seconds from submission to the DSN in the mailbox (bounced)
    reason, soft, status, diag   Sisimai's reason, softbounce, delivery
              status and diagnostic code of the DSN
    session   mailless's session line for the MTA's session(s)
    why       error text, or the MTA's own log lines about the message
    version   the MTA and its package version
    dir       the run's files: transcript (the SMTP dialogue, from
              wire.pcap: tcpdump on the receiver's veth), mailless.log, dsn
              (the sink), syslog (the MTA's log), queue, dns.log
    cli       the sender's address
The callers build the MTAs' roots first, with roots().

What each MTA needs (setup, start, its sink, its queue) is shell, in
mta.sh, run in the jail: see its header.
"""
import os
import re
import shutil
import subprocess
import time

from mltest import stop_process

HERE = os.path.dirname(os.path.abspath(__file__))
RCPT = "bob@mailless.test"  # the misaddressed recipient (as mta.sh's IR_RCPT)
FROM = "alice@sender.test"  # the sender, a local mailbox of the MTA
MX = "mx.mailless.test"     # mailless's name (-H), mailless.test's MX

# What each MTA must do with mailless in its default configuration (dialect
# rcpt), in both engines. The target (issue 11): the message bounces within
# 2 s and Sisimai reads the DSN as a hard bounce, reason notaccept. Two MTAs
# cannot meet it, for reasons of their own; their rows say what they do
# instead, so that a change either way (a new version, a regression in
# mailless) fails the test.
#   dma         bounces at once, but its bounce is a plain-text message with
#               no message/delivery-status part, which Sisimai 4 (Debian 12)
#               does not read (reason "(none)"); Sisimai 5 (Debian 13) does,
#               and meets the target. It quotes mailless's 521 line.
#   nullmailer  relays everything to its remotes and has no local delivery:
#               its DSN to alice goes to mailless too, which rejects it (521),
#               and nullmailer logs "Not generating double bounce"
MTAS = ("postfix", "exim", "opensmtpd", "sendmail", "courier", "dma", "nullmailer")
TARGET_SECS = 2


def expect(mta, sisimai_major):
    """(outcome, reason, softbounce) that mta must give."""
    if mta == "dma":
        return ("bounced", "notaccept", "0") if sisimai_major >= 5 else \
            ("bounced", "(none)", "-")
    if mta == "nullmailer":
        return ("relayed", "-", "-")
    return ("bounced", "notaccept", "0")


def _out(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)


def mta_fn(mta, fn):
    """What mta.sh's MTA_fn prints, run on the host (sink, log: paths only);
    None when the MTA has no such function."""
    p = _out(["bash", "-c", '. "$1"; declare -F "$2" >/dev/null || exit 100; "$2"', "mta",
              os.path.join(HERE, "mta.sh"), "%s_%s" % (mta, fn)])
    return None if p.returncode == 100 else p.stdout.strip()


def has_fn(mta, fn):
    return mta_fn(mta, fn) is not None if fn in ("sink", "log") else _out(
        ["bash", "-c", '. "$1"; declare -F "$2" >/dev/null', "mta",
         os.path.join(HERE, "mta.sh"), "%s_%s" % (mta, fn)]).returncode == 0


def root_path(mta):
    return _out(["bash", os.path.join(HERE, "root.sh"), "--path", mta]).stdout.strip()


def root_ok(mta):
    return _out(["bash", os.path.join(HERE, "root.sh"), "--check", mta]).returncode == 0


def roots(mtas):
    """Build the roots that are missing or stale, three at a time (a build is
    mostly download and dpkg: three take about as long as one on two cores).
    Returns (all current, what the builds printed)."""
    missing = [m for m in mtas if not root_ok(m)]
    log = []
    procs = []
    for m in missing:
        while len([p for p in procs if p.poll() is None]) >= 3:
            time.sleep(0.2)
        procs.append(subprocess.Popen(["bash", os.path.join(HERE, "root.sh"), m],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, stdin=subprocess.DEVNULL))
    for p in procs:
        log += [l for l in p.communicate()[0].splitlines() if " root: building" not in l]
    return all(root_ok(m) for m in mtas), log


class Run:
    outcome, secs, reason, soft, status, diag = "error", None, "", "", "", ""
    session, why, version, dir, cli = "", "", "", "", ""


class Jail:
    """The MTA's jail: unshare's process; jx() runs a command inside it."""

    def __init__(self, pair, root, rdir, mta):
        self.dir = rdir
        self.proc = subprocess.Popen(
            ["nsenter", "--net=/run/netns/" + pair.cli, "unshare", "--mount", "--uts", "--pid",
             "--fork", "--kill-child", "--propagation", "private", "bash",
             os.path.join(HERE, "jail.sh"), root, rdir, mta, "sender.test", pair.v4c],
            stdout=open(os.path.join(rdir, "jail.log"), "w"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)

    def jx(self, *args, stdin=subprocess.DEVNULL):
        """A command (an mta.sh function or jroot ...) in the jail's mount,
        UTS, PID and network namespaces, in its root. -r: entering a mount
        namespace moves a process to that namespace's root mount; when the
        tests run chrooted (as in a fresh Debian root), the jail's root is the
        chroot's, and there alone are this tree and the jail's root."""
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                pid1 = f.read().split()[0]
        except (OSError, IndexError):
            return subprocess.CompletedProcess(args, 125, "", "")
        return subprocess.run(
            ["nsenter", "-t", pid1, "-m", "-u", "-p", "-n", "-r", "--", "bash", "-c",
             '. "$1"; shift; "$@"', "jx", os.path.join(HERE, "mta.sh")] + list(args),
            env=dict(os.environ, J=os.path.join(self.dir, "root")), stdin=stdin,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def stop(self):
        """unshare --fork ignores SIGTERM (it leaves signals to its child),
        so SIGKILL: its --kill-child then SIGKILLs PID 1, and the PID
        namespace takes every MTA process with it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _sink_full(sink):
    return (os.path.isfile(sink) and os.path.getsize(sink) > 0) or \
        (os.path.isdir(sink) and bool(os.listdir(sink)))


def run(env, mta, engine, dialect, window, x, tmp):
    r = Run()
    tag = "%s-%s-%s" % (mta, engine, dialect)
    r.dir = rdir = os.path.join(tmp, tag)
    shutil.rmtree(rdir, ignore_errors=True)
    os.makedirs(rdir)
    if not root_ok(mta):
        r.why = "no current root for %s in %s (roots() builds it)" % (mta, root_path(mta))
        return r
    # Documentation prefixes (RFC 5737, RFC 3849), not private ones: Debian's
    # Exim ignores MX hosts in 10/8, 172.16/12, 192.168/16 and fc00::/7.
    try:
        pair = env.pair(x=x, tag="i%d" % x, net4="192.0.2", net6="2001:db8:%x" % x)
    except Exception as e:
        r.why = "cannot create the namespaces: %s" % e
        return r
    r.cli = pair.v4c
    srv = cap = dns = jail = None
    try:
        if engine != "none":
            try:
                # engine xdp: the guard's responder on the receiver's veth
                # (generic mode: native XDP_TX on veth needs a program on
                # the peer too), no SYN limit for the MTA's retries.
                xdp = (["--xdp", "veth0", "--xdp-mode", "skb", "--syn-rate", "0"]
                       if engine == "xdp" else [])
                srv = env.server(pair, engine=engine, host=MX, dialect=dialect, family="4",
                                 tag="i%d" % x, extra=["--log-level", "info"] + xdp)
            except Exception as e:
                r.why = "mailless did not start: %s" % e
                return r
        # tcpdump: the wire, on the receiver's veth, for the transcript
        # (--immediate-mode -U: each packet read and written as it comes;
        # without, a block of the last second's packets is lost at the stop).
        # Engine xdp: on the sender's, since frames the XDP responder takes
        # and sends back (generic XDP, before and past the taps) never show
        # on the receiver's.
        ns, dev = (pair.cli, "veth1") if engine == "xdp" else (pair.srv, "veth0")
        if shutil.which("tcpdump"):
            cap = subprocess.Popen(["nsenter", "--net=/run/netns/" + ns, "tcpdump", "-i",
                                    dev, "--immediate-mode", "-U", "-n", "-s", "0", "-w",
                                    os.path.join(rdir, "wire.pcap"), "tcp", "port", "25"],
                                   stdout=open(os.path.join(rdir, "tcpdump.log"), "w"),
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            for _ in range(50):
                with open(os.path.join(rdir, "tcpdump.log")) as f:
                    if "listening on" in f.read():
                        break
                time.sleep(0.1)
        dns = subprocess.Popen(
            ["nsenter", "--net=/run/netns/" + pair.cli, "dnsmasq", "--keep-in-foreground",
             "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
             "--listen-address=127.0.0.1", "--bind-interfaces", "--pid-file=", "--local=/test/",
             "--mx-host=mailless.test,%s,10" % MX, "--host-record=%s,%s" % (MX, pair.v4),
             "--host-record=sender.test,%s" % pair.v4c, "--log-queries", "--log-facility=-"],
            stdout=open(os.path.join(rdir, "dns.log"), "w"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        jail = Jail(pair, root_path(mta), rdir, mta)
        for _ in range(300):
            if os.path.exists(os.path.join(rdir, "ready")) or \
                    os.path.exists(os.path.join(rdir, "failed")) or jail.proc.poll() is not None:
                break
            time.sleep(0.1)
        if not os.path.exists(os.path.join(rdir, "ready")):
            why = ""
            for f in ("failed", "jail.log"):
                try:
                    with open(os.path.join(rdir, f), errors="replace") as fh:
                        why += fh.read()
                except OSError:
                    pass
            r.why = why[:1500] or "the %s jail was not ready in 30 s" % mta
            return r
        r.version = jail.jx("%s_version" % mta).stdout.strip()
        sink = os.path.join(rdir, "upper") + mta_fn(mta, "sink")
        mta_log = mta_fn(mta, "log")
        kick = has_fn(mta, "kick")
        msg = os.path.join(rdir, "message")
        with open(msg, "w") as f:
            f.write("From: Alice <%s>\nTo: <%s>\nSubject: interop %s\nMessage-ID: <%s.%d@sender."
                    "test>\n\nA message to a host that does not accept mail.\n"
                    % (FROM, RCPT, tag, tag, os.getpid()))
        t0 = time.time()
        with open(msg) as f:
            sub = jail.jx("jroot", "/usr/sbin/sendmail", "-f", FROM, "-i", RCPT, stdin=f)
        if sub.returncode != 0:
            r.why = "%s's sendmail failed: %s" % (mta, sub.stdout[:800])
        # The DSN has come back once Sisimai can read it; secs counts to the
        # moment its first byte landed in the sink.
        t1 = tfirst = trelay = None
        relay_line = 'from="<>" rcpt="<%s>"' % FROM
        classify = os.path.join(rdir, "classify")
        for i in range(1, window * 20 + 1):
            if _sink_full(sink):
                tfirst = tfirst or time.time()
                c = subprocess.run(["perl", os.path.join(HERE, "classify.pl"), sink],
                                   stdout=open(classify, "w"),
                                   stderr=open(classify + ".err", "w"))
                if c.returncode == 0:
                    t1 = time.time()
                    break
                if time.time() - tfirst > 2:  # a DSN Sisimai cannot read stays unreadable
                    break
            elif srv and any(relay_line in l for l in srv.log):
                trelay = time.time()  # the MTA's DSN to alice came to mailless
                break
            elif kick and i % 10 == 0:
                jail.jx("%s_kick" % mta)
            time.sleep(0.05)
        time.sleep(0.3)  # let the MTA finish its log lines
        with open(os.path.join(rdir, "queue"), "w") as f:
            f.write(jail.jx("%s_queue" % mta).stdout)
        # The MTA's log: syslog, and its own file if it keeps one.
        with open(os.path.join(rdir, "syslog"), "w") as out:
            for p in ["/var/log/syslog"] + ([mta_log] if mta_log else []):
                try:
                    with open(os.path.join(rdir, "upper") + p, errors="replace") as f:
                        out.write(f.read())
                except OSError:
                    pass
    finally:
        if jail:
            jail.stop()
        stop_process(dns)
        if srv:
            # An MTA that keeps its connection for reuse (OpenSMTPD: RSET, no
            # QUIT) ends the session only as its jail stops; its FIN can
            # come after the server's own stop (the XDP responder then is
            # gone: the kernel answers RST, and no session line is written,
            # 1 run in 8). Wait for the line a while first.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(
                    " session client=%s:" % pair.v4c in l for l in srv.log):
                time.sleep(0.05)
            srv.stop()
            with open(os.path.join(rdir, "mailless.log"), "w") as f:
                f.write("\n".join(srv.log) + "\n")
        if cap:
            stop_process(cap)
            with open(os.path.join(rdir, "transcript"), "w") as f:
                subprocess.run(["python3", os.path.join(HERE, "transcript.py"),
                                os.path.join(rdir, "wire.pcap"), "25"], stdout=f,
                               stderr=subprocess.STDOUT)
        else:
            with open(os.path.join(rdir, "transcript"), "w") as f:
                f.write("(tcpdump is not installed: no transcript)\n")
        pair.destroy()
    with open(os.path.join(rdir, "mailless.log"), "a+") as f:
        f.seek(0)
        sessions = [l for l in f.read().splitlines() if " session client=%s:" % pair.v4c in l]
    r.session = sessions[0] if sessions else ""
    with open(os.path.join(rdir, "queue"), errors="replace") as f:
        queued = RCPT in f.read()
    if tfirst:
        r.outcome = "bounced"
        r.secs = "%.2f" % (tfirst - t0)
        shutil.rmtree(os.path.join(rdir, "dsn"), ignore_errors=True)
        if os.path.isdir(sink):
            shutil.copytree(sink, os.path.join(rdir, "dsn"))
        else:
            shutil.copy(sink, os.path.join(rdir, "dsn"))
        if t1:
            with open(classify) as f:
                fields = (f.read().splitlines() or [""])[0].split("\t")
            fields += [""] * (7 - len(fields))
            r.reason, r.soft, r.status = fields[0], fields[1], fields[2]
            r.diag = "\t".join(fields[6:])
        else:
            with open(classify + ".err", errors="replace") as f:
                err = f.read()[:300]
            r.reason = "(none)"
            r.why = "Sisimai reads no bounce in it" + (": " + err if err else "")
    elif trelay:
        r.outcome = "relayed"
        r.secs = "%.2f" % (trelay - t0)
    elif queued:
        r.outcome = "deferred"
    elif len(sessions) >= 2:
        # Not queued, no DSN, a second session: the DSN went to mailless
        # (after a 521 greeting it never names its envelope).
        r.outcome = "relayed"
    else:
        r.outcome = "lost"
    # The MTA's own words about the message, for the matrix, wherever no DSN
    # that Sisimai reads tells what happened.
    if not t1:
        with open(os.path.join(rdir, "syslog"), errors="replace") as f:
            words = [l for l in f.read().splitlines() if re.search(
                r"defer|bounc|refused|status=|error|fail|double bounce| [245][0-9][0-9][ -]",
                l, re.I)][-2:]
        words = [re.sub(r"^[0-9-]{10} [0-9:]{8} ", "", re.sub(
            r"^[A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} sender [a-z]+\.[a-z]+ ", "", l[:300]))
            for l in words]
        r.why = (r.why + "; its log: " if r.why else "") + " | ".join(words)
    return r
