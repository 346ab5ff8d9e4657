/* SPDX-License-Identifier: GPL-2.0 */
/* synflood.h - what tools/synflood.c and tools/synflood.bpf.c share. */
#ifndef SYNFLOOD_H
#define SYNFLOOD_H

#include <linux/types.h>

/* The SYN's options, as Linux sends them: MSS 1460, SACK-permitted,
 * timestamps (TSval at SYNFLOOD_TS_OFF), NOP, window scale 7. */
#define SYNFLOOD_OPT_LEN 20
#define SYNFLOOD_TS_OFF  8
/* Ethernet, IPv4 and TCP with those options */
#define SYNFLOOD_FRAME_LEN (14 + 20 + 20 + SYNFLOOD_OPT_LEN)

struct synflood_cfg {
	/* The SYN every run starts from. Live frames reuse their pages with
	 * whatever was last in them, and the server's XDP_TX writes its
	 * SYN-ACK into the very page, so each run copies all of it. */
	__u8 frame[SYNFLOOD_FRAME_LEN];
	__u32 saddr;		/* first source address, host order */
	__u32 naddrs;		/* source addresses used: saddr .. saddr + naddrs - 1 */
	__u32 sport_lo;		/* first source port */
	__u32 nports;		/* source ports used per address */
	__u32 dport;		/* the server's port, host order */
	__u64 interval_ns;	/* one SYN per interval at most (0: no limit) */
};

/* A paced generator may run behind by this much and then catch up: at most
 * SYNFLOOD_SLACK_NS / interval_ns SYNs back to back (100 at 1,000,000/s,
 * below a veth's ring of 256). */
#define SYNFLOOD_SLACK_NS 100000ULL

struct synflood_counts {
	__u64 sent;		/* SYNs built and sent by syn_gen */
	__u64 held;		/* syn_gen runs that sent nothing: ahead of the pace */
	__u64 synack;		/* SYN-ACKs from dport to the flood's addresses */
	__u64 other;		/* other TCP from dport to them; both dropped */
};

#endif
