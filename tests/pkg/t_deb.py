#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 900
"""
t_deb.py - the Debian package, as a server would get it.

`make deb` builds .output/mailless_VERSION_ARCH.deb and lintian reports
nothing about it. Then, in a minimal root of the host's suite with systemd,
as a server has it (tests/debroot.sh; cached, never written: an overlay
takes the run's changes, in a mount namespace of this test's own), `apt-get install ./mailless.deb`
pulls only run-time packages (no compiler, LLVM, bpftool or -dev package),
marks /etc/mailless.conf a conffile and creates the mailless user; the
installed /usr/sbin/mailless, run in a network namespace from the root,
answers every row of the wire table (wirecheck, both dialects) with the
kernel engine and stops cleanly; `apt-get purge --autoremove` leaves no file
the root did not have (the system user stays, as Debian's policy keeps them).
"""
import ctypes
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from mltest import PREFIX, TOP, Env, Server, StartError, Suite, sh

t = Suite("t_deb")
CACHE = os.environ.get("MLT_PKG_CACHE", "/var/cache/mailless/pkg")
SUITE = subprocess.run(["sh", "-c", ". /etc/os-release && echo $VERSION_CODENAME"],
                       stdout=subprocess.PIPE, text=True).stdout.strip()
BUILD_ONLY = re.compile(r"^(clang|llvm|gcc|cpp|bpftool|make|binutils|lib.*-dev|linux-libc-dev)"
                        r"(-[0-9.]+)?(:.*)?$")
WIRE = os.path.join(TOP, ".output", "tests", "wirecheck")
# What apt, dpkg and the package's user change whatever the package: not
# "left behind" by the package.
STATE = re.compile(r"^/(var/lib/(apt|dpkg)|var/cache|var/log|tmp|etc/ld\.so\.cache|"
                   r"etc/(passwd|group|shadow|gshadow)-?$|var/lib/systemd/deb-systemd)")
tmp = tempfile.mkdtemp(prefix=PREFIX + ".deb.")
merged = os.path.join(tmp, "merged")


def run(*cmd, timeout=600, check=True):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if check and p.returncode:
        raise AssertionError("%s: exit %d: %s" % (" ".join(cmd[:4]), p.returncode,
                                                   p.stdout[-1500:]))
    return p.stdout


def inroot(*cmd, **kw):
    return run("chroot", merged, "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
               "DEBIAN_FRONTEND=noninteractive", "LANG=C.UTF-8", *cmd, **kw)


def files():
    out = inroot("find", "/", "-xdev", "-not", "-type", "d")
    return {f for f in out.splitlines() if not STATE.match(f)}


def packages():
    return set(inroot("dpkg-query", "-W", "-f", "${Package}\n").split())


def build():
    run("make", "-s", "-C", TOP, "deb", timeout=900)
    debs = [f for f in os.listdir(os.path.join(TOP, ".output")) if re.match(
        r"mailless_[^_]+_[a-z0-9]+\.deb$", f)]
    assert debs, "no .deb under .output/"
    return os.path.join(TOP, ".output", sorted(debs)[-1])


def lintian(deb):
    out = run("lintian", "--no-tag-display-limit", deb, check=False)
    tags = [l for l in out.splitlines() if re.match(r"^[EW]: ", l)]
    assert not tags, "lintian: %s" % " | ".join(tags[:20])


def private_mounts():
    """A mount namespace of this process's own, every mount private."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    sh("mount", "--make-rprivate", "/")


def mount_root(root):
    for d in ("upper", "work", "merged"):
        os.makedirs(os.path.join(tmp, d))
    sh("mount", "-t", "overlay", "overlay", "-o", "lowerdir=%s,upperdir=%s/upper,workdir=%s/work"
       % (root, tmp, tmp), merged)
    sh("mount", "-t", "proc", "proc", merged + "/proc")
    for d in ("/sys", "/dev"):
        sh("mount", "--rbind", d, merged + d)
    sh("mount", "-t", "tmpfs", "tmpfs", merged + "/run")
    sh("mount", "--bind", "/etc/resolv.conf", merged + "/etc/resolv.conf")


def served(env, dialect):
    """The installed binary, run from the root in a server namespace."""
    pair = env.pair(tag="d" + dialect[:2])
    wrap = ["chroot", merged, "sh", "-c", 'shift; exec /usr/sbin/mailless "$@"', "mailless"]
    pin = env.pin_dir("deb-" + dialect)
    srv = Server(env, pair.srv, ["-l", "%s:25" % pair.v4, "-H", "deb.test", "-d", dialect,
                                 "--engine", "kernel", "--pin-dir", pin], pin_dir=pin,
                 name="deb-" + dialect, wrap=wrap)
    env.servers.append(srv)
    try:
        srv.start()
    except StartError as e:
        raise AssertionError(str(e))
    out = run("nsenter", "--net=/run/netns/" + pair.cli, WIRE, pair.v4, "25", "deb.test",
              dialect, timeout=120, check=False)
    rc = srv.stop()
    assert "engine kernel" in "\n".join(srv.log), "not the kernel engine: %s" % srv.log_tail()
    assert "not ok" not in out and "ok" in out, "wirecheck: %s" % out[-1500:]
    left = sorted(os.listdir(pin)) if os.path.isdir(pin) else None
    assert rc == 0 and not os.path.exists(pin), "stop: exit %s, left under the pin dir: %s; %s" % (
        rc, left, srv.log_tail())


def main(env):
    for tool in ("dpkg-buildpackage", "lintian", "mmdebstrap"):
        if not shutil.which(tool):
            t.fail("deb: setup", "%s is not installed (make deps-test installs it)" % tool)
            return
    deb = None

    def builds():
        nonlocal deb
        deb = build()
        t.note("built %s" % os.path.basename(deb))
    if not t.run("deb: make deb builds the package", builds):
        return
    t.run("deb: lintian reports no error and no warning", lintian, deb)
    run("bash", os.path.join(TOP, "tests", "debroot.sh"), CACHE, "%s-base" % SUITE, SUITE,
        "systemd", timeout=900)
    root = run("bash", os.path.join(TOP, "tests", "debroot.sh"), "--path", CACHE,
               "%s-base" % SUITE, SUITE, "systemd").strip()
    private_mounts()
    mount_root(root)
    before_files, before_pkgs = files(), packages()
    shutil.copy(deb, merged + "/tmp/mailless.deb")

    def installs():
        inroot("apt-get", "-q", "update")
        inroot("apt-get", "-q", "-y", "install", "/tmp/mailless.deb")
        new = sorted(packages() - before_pkgs)
        t.note("apt-get install pulled: %s" % " ".join(new))
        build_only = [p for p in new if BUILD_ONLY.match(p)]
        assert not build_only, "build packages pulled in: %s" % build_only
        conf = inroot("cat", "/var/lib/dpkg/info/mailless.conffiles")
        assert "/etc/mailless.conf" in conf.split(), "conffiles: %s" % conf
        assert inroot("getent", "passwd", "mailless", check=False).startswith("mailless:"), \
            "no mailless user"
        inroot("/usr/sbin/mailless", "check")
    if not t.run("deb: apt-get install ./mailless.deb pulls only run-time packages, a "
                 "conffile and the mailless user", installs):
        return
    for d in ("rcpt", "rfc7504"):
        t.run("deb: the installed mailless answers the wire table (%s, kernel engine)" % d,
              served, env, d)

    def purges():
        inroot("apt-get", "-q", "-y", "purge", "--autoremove", "mailless")
        # APT keeps an automatic package that an installed one recommends or
        # suggests (APT::AutoRemove::*Important): on trixie libsystemd-shared
        # suggests libbpf1 and libelf1t64 (it dlopens them), so they stay
        # after libxdp1 goes. Such a package is held by Debian's policy, not
        # by mailless: what it holds is no leftover, anything else is.
        extra = sorted(packages() - before_pkgs)
        sim = inroot("apt-get", "-s", "autoremove", "-o", "APT::AutoRemove::SuggestsImportant=false",
                     "-o", "APT::AutoRemove::RecommendsImportant=false")
        held = [p for p in extra if re.search(r"^Remv %s[ :]" % re.escape(p), sim, re.M)]
        assert held == extra, "packages left, not held by a Recommends or Suggests: %s" % (
            sorted(set(extra) - set(held)))
        theirs = set()
        for p in held:
            theirs |= set(inroot("dpkg-query", "-L", p).splitlines())
        if held:
            t.note("kept by APT as recommended or suggested by another package: %s"
                   % " ".join(held))
        left = sorted(files() - before_files - theirs)
        assert not left, "left behind: %s" % " ".join(left[:30])
    t.run("deb: apt-get purge --autoremove leaves nothing behind", purges)


try:
    with Env(t) as env:
        main(env)
finally:
    # The root's mounts (/sys and /dev bound in) must be gone before anything
    # is removed: never rm through a bind mount. They are this process's own
    # mount namespace's, and vanish with it at the latest.
    subprocess.run(["umount", "-R", merged], stderr=subprocess.DEVNULL)
    with open("/proc/self/mountinfo") as f:
        still = [l for l in f if " %s" % merged in l]
    if still:
        t.note("left %s mounted (%d mounts): not removing %s" % (merged, len(still), tmp))
    else:
        subprocess.run(["rm", "-rf", "--one-file-system", tmp])
sys.exit(t.finish())
