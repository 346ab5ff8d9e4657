#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""transcript.py PCAP PORT - the SMTP dialogue(s) in a capture of one run
(tcpdump -w on the receiver's veth, Ethernet frames, IPv4): each TCP
connection to PORT as it began, one line per SMTP line in the order the
capture saw it, "C: " for what the client sent and "S: " for mailless's
replies. Retransmitted octets are written once; octets missing from the
capture are shown as "[N octets not captured]"."""
import struct
import sys


def packets(path):
    """(ts, src, sport, dst, dport, seq, flags, payload) of each TCP/IPv4 frame."""
    data = open(path, "rb").read()
    if len(data) < 24:
        return
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    if struct.unpack(end + "I", data[20:24])[0] != 1:
        sys.exit("transcript.py: %s: not an Ethernet capture" % path)
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(end + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl = (ip[0] & 15) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        if ip[9] != 6 or len(ip) < ihl + 20:
            continue
        tcp = ip[ihl:total]
        sport, dport, seq = struct.unpack(">HHI", tcp[:8])
        doff = (tcp[12] >> 4) * 4
        yield (sec + frac / 1e9, ip[12:16], sport, ip[16:20], dport, seq, tcp[13], tcp[doff:])


def main():
    path, port = sys.argv[1], int(sys.argv[2])
    conns = {}  # client (addr, port) -> per side: next seq expected, partial line
    for _, src, sport, dst, dport, seq, flags, payload in packets(path):
        if dport == port:
            key, side = (src, sport), "C"
        elif sport == port:
            key, side = (dst, dport), "S"
        else:
            continue
        if key not in conns:
            conns[key] = {"C": [None, b""], "S": [None, b""]}
            print("# connection from %s:%d" % (".".join(str(b) for b in key[0]), key[1]))
        d = conns[key][side]
        if flags & 0x02:  # SYN: the data starts at seq + 1
            d[0] = (seq + 1) & 0xFFFFFFFF
            continue
        if not payload or d[0] is None:
            continue
        skip = (d[0] - seq) & 0xFFFFFFFF  # octets of it already seen
        if skip >= len(payload):
            continue  # a retransmission
        if skip > 0x7FFFFFFF:  # a gap: octets the capture missed
            d[1] += b"[%d octets not captured]\n" % ((seq - d[0]) & 0xFFFFFFFF)
            skip = 0
        d[1] += payload[skip:]
        d[0] = (seq + len(payload)) & 0xFFFFFFFF
        *lines, d[1] = d[1].split(b"\n")
        for line in lines:
            print("%s: %s" % (side, line.rstrip(b"\r").decode("latin-1")))
    for key, sides in conns.items():
        for side, (_, rest) in sides.items():
            if rest:
                print("%s: %s [no line end]" % (side, rest.decode("latin-1")))


if __name__ == "__main__":
    main()
