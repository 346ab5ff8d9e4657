/* SPDX-License-Identifier: GPL-2.0 */
/*
 * guard.h - the ABI between the XDP guard (bpf/guard.bpf.c) and the
 * controller (user/guard.c): configuration, counters, prefix-list keys.
 * Fixed-width types only; map definitions live in the BPF object alone.
 */
#ifndef ML_GUARD_H
#define ML_GUARD_H

#include <linux/types.h>

#define GD_IFACE_MAX	16	/* interfaces one instance guards */
#define GD_IFNAME_MAX	16	/* IFNAMSIZ */
#define GD_PORT_WORDS	1024	/* 65536-bit map of served TCP ports */

/* Defaults: far above what a real MTA sends to one host (a busy relay opens
 * a handful of connections per destination and reuses them), far below a
 * flood. */
#define GD_DEFAULT_RATE		10	/* SYNs a second per source prefix */
#define GD_DEFAULT_BURST	20	/* SYNs at once */
#define GD_DEFAULT_PREFIX4	32
#define GD_DEFAULT_PREFIX6	64

/*
 * Counters: map `guard_stats`, a PERCPU_ARRAY with one entry whose value is
 * struct gd_stats (bpftool prints the names); indexed as an array by enum
 * gd_stat. Only TCP to a served port is counted; everything else passes
 * uncounted.
 */
#define GD_STATS(X)							\
	X(PACKETS, packets)		/* TCP packets to a served port */ \
	X(SYN_PASSED, syn_passed)	/* SYNs within the rate limit */ \
	X(DROP_RATE, drop_rate)		/* SYNs over the rate limit, dropped */ \
	X(DROP_DENY, drop_deny)		/* packets from a deny prefix, dropped */ \
	X(ALLOWED, allowed)		/* packets from an allow prefix, passed */

enum gd_stat {
#define GD_STAT_ENUM(e, f) GD_ST_##e,
	GD_STATS(GD_STAT_ENUM)
#undef GD_STAT_ENUM
	GD_ST__MAX,
};

struct gd_stats {
#define GD_STAT_FIELD(e, f) __u64 f;
	GD_STATS(GD_STAT_FIELD)
#undef GD_STAT_FIELD
};

/*
 * Runtime configuration, map `guard_cfg` (two slots). The controller writes
 * the idle slot, fills the idle slot of the four prefix lists, and then
 * flips gd_ctl.active: a packet sees one consistent generation of limits
 * and lists (SIGHUP replaces them atomically).
 */
struct gd_config {
	__u32 rate;		/* SYNs a second per source; 0: no limit */
	__u32 burst;		/* bucket size */
	__u32 mask4;		/* source prefix mask for the bucket key, network order */
	__u32 mask6[4];		/* same for IPv6 */
	__u32 generation;
	__u64 ports[GD_PORT_WORDS];	/* bit p: TCP port p is served */
};

struct gd_ctl {
	__u32 active;		/* slot in use: 0 or 1 */
};

/* Key of the SYN buckets (LRU hash `guard_buckets`): the masked source.
 * IPv4 sources are v4-mapped. */
struct gd_src {
	__u32 addr[4];
};

/* LPM keys of the prefix lists. */
struct gd_lpm4 {
	__u32 prefixlen;
	__u32 addr;		/* network order */
};

struct gd_lpm6 {
	__u32 prefixlen;
	__u8 addr[16];
};

#define GD_LPM_MAX	65536	/* prefixes per list and family */

/* Where the guard is attached, for `status` and `unload` (also after a
 * crash): map `guard_info`, written by the controller only. */
enum { GD_MODE_NONE = 0, GD_MODE_NATIVE, GD_MODE_SKB, GD_MODE_HW,
       GD_MODE_MULTI_NATIVE, GD_MODE_MULTI_SKB };

struct gd_info {
	__u32 pid;
	__u32 prog_id;
	__u32 nif;
	__u32 ifindex[GD_IFACE_MAX];
	__u32 mode[GD_IFACE_MAX];	/* how libxdp attached it */
	__u32 multiprog[GD_IFACE_MAX];	/* 1: beside others through the dispatcher */
	char ifname[GD_IFACE_MAX][GD_IFNAME_MAX];
	__u64 netns_cookie;		/* ifindexes are per network namespace */
	char fallback[128];		/* why libxdp ran without its dispatcher, if it did */
};

#endif /* ML_GUARD_H */
