#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 180
"""
t_isolation.py - the kernel engine answers its own connections and nobody
else's, whatever else listens beside it in its cgroup and namespace.

One server namespace; the kernel engine on -l 0.0.0.0:2525, -l [V6]:2526,
-l 127.0.0.1:2527 and the dual-stack -l [::]:2528; beside it, started from the test's own process (so in the
cgroup mailless was started from), three plain services that greet with a
banner of their own and echo each line back:
  [::]:2525 IPv6-only     the same port in the other family (the report: an
                          IPv4-any key that also meant IPv6-any);
  [::1]:2526 IPv6-only    another address of the same family (IPv6);
  127.0.0.2:2527          another address of the same family (IPv4).
(Another address beside mailless's 0.0.0.0:2525 cannot be bound at all: the
kernel refuses 127.0.0.2:2525 with EADDRINUSE, so the same-family cases use
mailless's specific addresses.) Their clients must get the service's own bytes,
exactly, and mailless's `admitted` counter must not move for them; mailless's
own clients on the same ports still get its 220, IPv4 ones of [::]:2528 too.

Two arrangements:
  own     the default: mailless moves into <cgroup>/mailless-<pid> before it
          creates its sockets and attaches sock_ops there; it says so in
          `mailless status -j` (cgroup, cgroup_own); sock_ops is not on the
          cgroup it was started from; the child cgroup is gone after SIGTERM;
  shared  cgroupfs read-only (a private mount namespace, as in a container):
          mailless warns, names the reason, attaches to the cgroup it was
          started from and says cgroup_own false; the services are still left
          alone (the family-aware listener keys).
"""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import (MAILLESS, Env, Replies, Session, Skip, StartError, Suite, cgroup2_mount,
                    cgroup_path, cgroup_progs, engines, netns, sh, show)

t = Suite("t_isolation")
IP_TRANSPARENT = 19
TPROXY_NFT = """table ip mlt_iso {
  chain pre {
    type filter hook prerouting priority mangle; policy accept;
    tcp dport 2529 tproxy to :9999
  }
}
"""
HOST = "iso.test"
R = Replies(HOST)


class Service:
    """A plain TCP service in namespace ns: banner, then each line echoed
    back as "ECHO <line>", until the client closes. At most 32 connections."""

    def __init__(self, ns, family, addr, port, v6only=False, transparent=False):
        self.tag = "%s:%d" % (addr, port)
        self.banner = ("220 other-service %s ready\r\n" % self.tag).encode()
        with netns(ns):
            self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if transparent:
            self.sock.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
        if family == socket.AF_INET6:
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
        self.sock.bind((addr, port))
        self.sock.listen(16)
        self.sock.settimeout(0.5)
        self.stopping = False
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def run(self):
        served = 0
        while not self.stopping and served < 32:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            served += 1
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def session(self, c):
        c.settimeout(5)
        try:
            c.sendall(self.banner)
            buf = b""
            while True:
                d = c.recv(4096)
                if not d:
                    break
                buf += d
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    c.sendall(b"ECHO " + line + b"\n")
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.stopping = True
        self.sock.close()
        self.th.join(2)


def admitted(pin):
    p = sh(MAILLESS, "stats", "-j", "--pin-dir", pin, check=False, timeout=10)
    assert p.returncode == 0, "mailless stats: %s" % (p.stderr or p.stdout).strip()
    st = json.loads(p.stdout)
    v = st.get("admitted", (st.get("counters") or {}).get("admitted"))
    assert isinstance(v, int), "no admitted counter in %s" % p.stdout[:300]
    return v


def status(pin):
    p = sh(MAILLESS, "status", "-j", "--pin-dir", pin, check=False, timeout=10)
    assert p.returncode == 0, "mailless status: %s" % (p.stderr or p.stdout).strip()
    return json.loads(p.stdout)


def other_client(ns, addr, port, svc):
    """The service's banner and its echo, byte-exact; the service closes when
    we do (no 521, no 250 from mailless)."""
    s = Session(ns, addr, port, timeout=5)
    try:
        s.expect(svc.banner, what="banner of the other service on %s" % svc.tag)
        s.cmd(b"EHLO c\r\n", b"ECHO EHLO c\r\n", what="echo of EHLO")
        s.cmd(b"QUIT\r\n", b"ECHO QUIT\r\n", what="echo of QUIT")
        s.expect_silence(0.2)
    finally:
        s.close()


def own_client(ns, addr, port):
    s = Session(ns, addr, port, timeout=5)
    try:
        s.expect(R.greet_rcpt, what="mailless greeting on %s port %d" % (addr, port))
        s.cmd(b"EHLO c\r\n", R.ehlo)
        s.cmd(b"QUIT\r\n", R.quit)
        s.expect_eof()
    finally:
        s.close()


def scenario(env, mode, x):
    name = "isolation/%s" % mode
    pair = env.pair(x=x, tag="is%s" % mode[0])
    start_cg = cgroup_path(os.getpid())
    listen = ["0.0.0.0:2525", "[%s]:2526" % pair.v6, "127.0.0.1:2527", "[::]:2528",
              "0.0.0.0:2529"]
    srv = env.server(pair, engine="kernel", host=HOST, listen=listen, start=False,
                     tag="kernel-%s" % mode)
    if mode == "shared":
        # A private mount namespace whose cgroup2 mount is read-only, as
        # Docker gives a container: mailless cannot make a cgroup there.
        srv.wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    'mount -o remount,bind,ro "$0" && exec "$@"', cgroup2_mount()]
    try:
        srv.start()
    except StartError as e:
        t.fail("%s: mailless starts on %s" % (name, " ".join(listen)), str(e))
        return
    t.ok("%s: mailless starts on %s" % (name, " ".join(listen)))
    svcs = []
    try:
        other6 = Service(pair.srv, socket.AF_INET6, "::", 2525, v6only=True)
        svcs.append(other6)
        other6b = Service(pair.srv, socket.AF_INET6, "::1", 2526, v6only=True)
        svcs.append(other6b)
        other4 = Service(pair.srv, socket.AF_INET, "127.0.0.2", 2527)
        svcs.append(other4)
        proxy = Service(pair.srv, socket.AF_INET, "0.0.0.0", 9999, transparent=True)
        svcs.append(proxy)
    except OSError as e:
        t.fail("%s: the other services bind beside mailless" % name, str(e))
        for s in svcs:
            s.stop()
        return
    t.ok("%s: the other services bind beside mailless" % name)

    def arrangement():
        st = status(srv.pin_dir)
        mine = cgroup_path(srv.pid)
        ids = {p.get("name"): p.get("id") for p in st.get("programs") or []}
        on = lambda cg: [p.get("id") for p in cgroup_progs(cg)
                         if "sock_ops" in str(p.get("attach_type"))]
        if mode == "own":
            want = os.path.join(start_cg, "mailless-%d" % srv.pid)
            assert mine == want, "mailless runs in %s, expected %s" % (mine, want)
            assert st.get("cgroup") == want and st.get("cgroup_own") is True, \
                "status: cgroup %r, cgroup_own %r" % (st.get("cgroup"), st.get("cgroup_own"))
            assert ids.get("ml_sockops") in on(want), "sock_ops not on %s" % want
            assert ids.get("ml_sockops") not in on(start_cg), \
                "sock_ops also on the start cgroup %s" % start_cg
        else:
            assert mine == start_cg, "mailless runs in %s, expected %s" % (mine, start_cg)
            assert st.get("cgroup") == start_cg and st.get("cgroup_own") is False, \
                "status: cgroup %r, cgroup_own %r" % (st.get("cgroup"), st.get("cgroup_own"))
            assert ids.get("ml_sockops") in on(start_cg), "sock_ops not on %s" % start_cg
            log = " | ".join(srv.log)
            assert "cannot make a cgroup of its own" in log and "Read-only" in log, \
                "no warning naming the read-only cgroup file system: %s" % srv.log_tail()
    t.run("%s: cgroup arrangement (process, status -j, bpftool)" % name, arrangement)

    # (what, client ns, address, port, service or None for mailless)
    cases = [
        ("[::]:2525 IPv6-only beside 0.0.0.0:2525, over veth", pair.cli, pair.v6, 2525,
         other6),
        ("[::]:2525 IPv6-only beside 0.0.0.0:2525, on ::1", pair.srv, "::1", 2525, other6),
        ("[::1]:2526 beside [%s]:2526" % pair.v6, pair.srv, "::1", 2526, other6b),
        ("127.0.0.2:2527 beside 127.0.0.1:2527", pair.srv, "127.0.0.2", 2527, other4),
    ]
    for what, ns, addr, port, svc in cases:
        def other(ns=ns, addr=addr, port=port, svc=svc):
            before = admitted(srv.pin_dir)
            other_client(ns, addr, port, svc)
            after = admitted(srv.pin_dir)
            assert after == before, "mailless admitted %d of the other service's " \
                "connections" % (after - before)
        t.run("%s: %s: its own banner and echo, not admitted" % (name, what), other)

    # A transparent proxy: nftables hands every connection to port 2529
    # to its IP_TRANSPARENT listener on :9999, so its children carry the
    # local address and port of mailless's 0.0.0.0:2529 listener. No key
    # can tell them apart; only the cgroup does.
    def tproxy():
        if not os.path.exists("/usr/sbin/nft"):
            raise Skip("nft not installed (Debian package nftables)")
        sh("nsenter", "--net=/run/netns/%s" % pair.srv, "nft", "-f", "-", input=TPROXY_NFT)
        before = admitted(srv.pin_dir)
        if mode == "own":
            other_client(pair.cli, pair.v4, 2529, proxy)
        else:
            s = Session(pair.cli, pair.v4, 2529, timeout=5)
            try:
                s.expect(proxy.banner, what="banner of the proxy")
                s.cmd(b"EHLO c\r\n", R.ehlo, what="mailless's answer, as the warning says")
            finally:
                s.close()
        after = admitted(srv.pin_dir)
        want = 0 if mode == "own" else 1
        assert after - before == want, "admitted moved by %d, expected %d" % (
            after - before, want)
    t.run("%s: a transparent proxy's connection to 0.0.0.0:2529: %s" % (
        name, "its own banner and echo, not admitted" if mode == "own" else
        "answered by mailless (the limit its warning names)"), tproxy)

    mine = [(pair.cli, pair.v4, 2525), (pair.srv, "127.0.0.1", 2525),
            (pair.cli, pair.v6, 2526), (pair.srv, "127.0.0.1", 2527),
            # dual-stack [::]: its IPv4 children are AF_INET6, v4-mapped
            (pair.cli, pair.v4, 2528), (pair.cli, pair.v6, 2528)]

    def own():
        before = admitted(srv.pin_dir)
        for ns, addr, port in mine:
            own_client(ns, addr, port)
        after = admitted(srv.pin_dir)
        assert after - before == len(mine), "admitted moved by %d for %d sessions" % (
            after - before, len(mine))
    t.run("%s: mailless's own clients on the same ports get its 220, admitted +%d" % (
        name, len(mine)), own)

    for s in svcs:
        s.stop()
    cg = cgroup_path(srv.pid)

    def stops():
        rc = srv.stop()
        assert rc == 0, "exit status %s: %s" % (rc, srv.log_tail())
        if mode == "own":
            assert not os.path.exists(cg), "%s still exists after exit" % cg
        else:
            assert os.path.isdir(cg), "the start cgroup %s is gone" % cg
    t.run("%s: SIGTERM: exit 0%s" % (name, ", its cgroup removed" if mode == "own" else ""),
          stops)


def main():
    if "kernel" not in engines():
        t.skip("isolation", "kernel engine excluded by MLT_ENGINES")
        return t.finish()
    try:
        with Env(t) as env:
            scenario(env, "own", 96)
            scenario(env, "shared", 97)
    except StartError as e:
        t.fail("isolation: setup", str(e))
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
