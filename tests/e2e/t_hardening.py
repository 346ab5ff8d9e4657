#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 60
# mlt-root: no
"""
t_hardening.py - the built binaries carry the hardening the Makefile asks
for (what Debian's hardening-check or checksec report), read with readelf:
  PIE           ELF type DYN and DT_FLAGS_1 PIE (-fPIE -pie)
  full RELRO    a GNU_RELRO segment and BIND_NOW (-Wl,-z,relro,-z,now)
  stack guard   __stack_chk_fail imported (-fstack-protector-strong)
  fortify       __*_chk functions imported (-D_FORTIFY_SOURCE=3, -O2)
  CET           endbr64 code, and .note.gnu.property IBT and SHSTK in the
                objects and, where the C start files allow, the binary
                (-fcf-protection; x86 only)
for ./mailless (or $MAILLESS) and .output/tools/loadgen, floor if built,
and that it has no test hooks (ML_TEST_HOOKS: .output/tests/mailless-hooks).
The sanitizer build (make SAN=1) is not checked: ASan replaces the fortify
and stack-guard checks with its own.
"""
import glob
import os
import platform
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import MAILLESS, TOP, Suite

t = Suite("t_hardening")
X86 = re.match(r"x86_64|i.86$", platform.machine()) is not None


def out(*cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True).stdout


def check(name, f, want_fortify):
    """want_fortify: __*_chk imports expected (a program that calls no
    fortifiable function with a size the compiler knows has none)."""
    hdr, dyn, syms = out("readelf", "-lhW", f), out("readelf", "-dW", f), \
        out("readelf", "--dyn-syms", "-W", f)
    if re.search(r"Type:\s*DYN", hdr) and re.search(r"FLAGS_1.*PIE", dyn):
        t.ok("%s: PIE" % name)
    else:
        t.fail("%s: PIE" % name, "%s %s; want DYN and FLAGS_1 PIE (-fPIE -pie)" % (
            re.findall(r"Type:.*", hdr), re.findall(r".*FLAGS_1.*", dyn)))
    if "GNU_RELRO" in hdr and re.search(r"\(FLAGS\).*BIND_NOW|FLAGS_1.*NOW", dyn):
        t.ok("%s: full RELRO" % name)
    else:
        t.fail("%s: full RELRO" % name, "GNU_RELRO: %d, BIND_NOW: %d (want both: "
               "-Wl,-z,relro,-z,now)" % (hdr.count("GNU_RELRO"),
                                         len(re.findall(r"BIND_NOW|FLAGS_1.* NOW", dyn))))
    if " __stack_chk_fail" in syms:
        t.ok("%s: stack protector" % name)
    else:
        t.fail("%s: stack protector" % name, "no __stack_chk_fail import "
               "(-fstack-protector-strong)")
    chk = sorted(set(re.findall(r" (__[a-z0-9_]*_chk)\b", syms)) - {"__stack_chk_fail"})
    if want_fortify:
        if chk:
            t.ok("%s: fortified (%d __*_chk functions)" % (name, len(chk)))
            t.note("%s: %s" % (name, " ".join(chk)))
        else:
            t.fail("%s: fortified" % name, "no __*_chk import (-D_FORTIFY_SOURCE=3 with -O1 "
                   "or more)")
    if X86:
        cet(name, f)
    else:
        t.skip("%s: CET" % name, "not x86 (%s)" % platform.machine())


def cet(name, f):
    """-fcf-protection puts endbr64 at every indirect-branch target (main is
    one) and an IBT/SHSTK property into each object. ld keeps the property in
    the binary only if every linked object has it, the C start files too:
    Debian 12's glibc is built without CET, its Scrt1.o/crti.o/crtn.o have
    none, so there the binary cannot say so (forcing it with -z ibt would be
    a claim the start files do not keep): that is a counted skip, not a pass."""
    dis = out("objdump", "-d", "--no-show-raw-insn", "--disassemble=main", f).splitlines()
    first = "?"
    for i, l in enumerate(dis):
        if l.endswith("<main>:") and i + 1 < len(dis):
            words = dis[i + 1].split()
            first = words[1] if len(words) > 1 else "?"
            break
    if first in ("endbr64", "endbr32"):
        t.ok("%s: CET code (main starts with %s)" % (name, first))
    else:
        t.fail("%s: CET code" % name, "main starts with '%s', not endbr64 (-fcf-protection)"
               % first)
    notes = out("readelf", "-nW", f)
    if re.search(r"x86 feature:.*IBT", notes) and re.search(r"x86 feature:.*SHSTK", notes):
        t.ok("%s: CET property (IBT, SHSTK)" % name)
        return
    cc = os.environ.get("CC", "cc")
    lacking = [o for o in ("Scrt1.o", "crti.o", "crtn.o")
               if not re.search(r"x86 feature:.*IBT.*SHSTK",
                                out("readelf", "-nW", out(cc, "-print-file-name=" + o).strip()))]
    if lacking:
        t.skip("%s: CET property (IBT, SHSTK)" % name, "the C start files lack it: %s (glibc "
               "built without CET), so ld drops it" % " ".join(lacking))
    else:
        t.fail("%s: CET property (IBT, SHSTK)" % name, "%s (want IBT, SHSTK: -fcf-protection)"
               % (re.findall(r".*feature.*", notes) or "no x86 feature property"))


def objs_cet():
    """The controller's own objects all carry the property (-fcf-protection)."""
    objs = sorted(glob.glob(os.path.join(TOP, ".output", "user", "*.o")))
    if not objs:
        t.skip("objects: CET property", "no .output/user/*.o (make mailless)")
        return
    bad = [os.path.basename(o) for o in objs
           if not re.search(r"x86 feature:.*IBT.*SHSTK", out("readelf", "-nW", o))]
    if bad:
        t.fail("objects: CET property", "missing in %s (-fcf-protection)" % " ".join(bad))
    else:
        t.ok("objects: CET property (IBT, SHSTK) in every .output/user/*.o")


def hooks(f):
    """The MAILLESS_TEST_* variables a binary's strings name."""
    with open(f, "rb") as fh:
        return sorted(set(m.decode() for m in re.findall(rb"MAILLESS_TEST_[A-Z_]*", fh.read())))


def main():
    if not shutil.which("readelf"):
        t.skip("hardening", "readelf missing (Debian package binutils)")
        return
    check("mailless", MAILLESS, True)
    # Test hooks (ML_TEST_HOOKS) are only in .output/tests/mailless-hooks:
    # the shipped binary reads no MAILLESS_TEST_* variable. The test build
    # shows that the method can find one.
    h = hooks(MAILLESS)
    if h:
        t.fail("mailless: no test hooks", "it reads %s (build it without -DML_TEST_HOOKS)"
               % " ".join(h))
    else:
        t.ok("mailless: no test hooks")
    test_build = os.path.join(TOP, ".output", "tests", "mailless-hooks")
    if os.access(test_build, os.X_OK):
        h = hooks(test_build)
        if h:
            t.ok("mailless-hooks: the test build has them (%s)" % " ".join(h))
        else:
            t.fail("mailless-hooks: the test build has them", "no MAILLESS_TEST_* string: the "
                   "check above cannot fail")
    else:
        t.skip("mailless-hooks", "not built (make tests-build)")
    if X86:
        objs_cet()
    for tool in ("loadgen", "floor"):
        f = os.path.join(TOP, ".output", "tools", tool)
        if os.access(f, os.X_OK):
            check("tools/" + tool, f, True)
        else:
            t.skip("tools/" + tool, "not built (make tools/%s)" % tool)


main()
sys.exit(t.finish())
