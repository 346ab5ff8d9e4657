#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""guard_flood.py - helpers of tests/e2e/t_guard.py (run inside a namespace).

  guard_flood.py syn SRC DST PORT COUNT   send COUNT bare SYNs from SRC with a
                                          raw socket (bounded, no retries)
  guard_flood.py smtp SRC DST PORT SECS   one smtplib session from SRC; prints
                                          the RCPT reply code, e.g. "rcpt 521"
"""
import random
import smtplib
import socket
import struct
import sys


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def syn(src, dst, port, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    sa, da = socket.inet_aton(src), socket.inet_aton(dst)
    sent = 0
    for _ in range(count):
        sport = random.randint(20000, 60000)
        seq = random.getrandbits(32)
        hdr = struct.pack("!HHIIBBHHH", sport, port, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
        pseudo = sa + da + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(hdr))
        hdr = hdr[:16] + struct.pack("!H", csum(pseudo + hdr)) + hdr[18:]
        s.sendto(hdr, (dst, 0))
        sent += 1
    print("sent %d" % sent)


def smtp(src, dst, port, secs):
    try:
        c = smtplib.SMTP(dst, port, timeout=secs, source_address=(src, 0))
        c.ehlo("client.test")
        c.mail("a@client.test")
        code, _ = c.rcpt("b@example.org")
        c.quit()
        print("rcpt %d" % code)
    except (OSError, smtplib.SMTPException) as e:
        print("error %s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "syn":
        syn(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "smtp":
        smtp(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    else:
        sys.exit("unknown command " + cmd)
