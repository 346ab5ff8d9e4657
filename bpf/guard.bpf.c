// SPDX-License-Identifier: GPL-2.0
/*
 * guard.bpf.c - the XDP guard in front of the served TCP ports: per-source
 * SYN token buckets, allow/deny prefix lists, the earliest counters.
 *
 * Only TCP to a served port is touched. Everything else passes untouched and
 * uncounted: ARP and other ethertypes, other protocols and ports, IPv4
 * fragments (a non-first fragment has no TCP header to judge), IPv6 packets
 * whose first next-header is not TCP (extension headers are not walked), and
 * anything malformed or truncated (the parser never reads past data_end).
 *
 * XXX: VLAN-tagged frames (802.1Q, 802.1ad) pass untouched: a guard on a
 * trunk interface does not see through tags. Attach it to the VLAN
 * interface itself (eth0.25), where the kernel has already stripped the tag.
 *
 * Order for a TCP packet to a served port: allow prefix -> pass (allow wins
 * over deny and over the rate limit); deny prefix -> drop; a SYN (without
 * ACK) takes a token from its source's bucket or is dropped; pass.
 *
 * With --engine xdp the program is ml_guard_xr: what it lets through to a
 * served port is answered by the XDP responder (bpf/xdpresp.bpf.h) in the
 * same program.
 *
 * Attached through libxdp with the run config below: where libxdp's
 * dispatcher works it runs beside other XDP programs, at priority 20 (before
 * libxdp's default 50), and the next program runs after XDP_PASS.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <xdp/xdp_helpers.h>

#include "bucket.h"
#include "guard.h"
#include "xdpresp.bpf.h"	/* TH_* flags, xr_respond() */


char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(priority, 20);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(ml_guard);

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct gd_config);
} guard_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gd_ctl);
} guard_ctl SEC(".maps");

/* Sized by the controller before load (default 65536 sources). An LRU: a
 * flood from many sources evicts the oldest buckets rather than failing. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct gd_src);
	__type(value, struct ml_bucket);
} guard_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gd_stats);
} guard_stats SEC(".maps");

/* Written by the controller only (where it is attached). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gd_info);
} guard_info SEC(".maps");

/*
 * Prefix lists: an array of two LPM tries per list and family, indexed by
 * the active slot. SIGHUP builds fresh inner tries, puts them in the idle
 * slot and flips gd_ctl.active; the old tries are freed once no program
 * holds them. An empty slot is an empty list.
 */
struct lpm4 {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, GD_LPM_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(key_size, sizeof(struct gd_lpm4));	/* sizes: inner maps are made */
	__uint(value_size, sizeof(__u32));		/* by the controller, BTF-less */
};

struct lpm6 {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, GD_LPM_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(key_size, sizeof(struct gd_lpm6));
	__uint(value_size, sizeof(__u32));
};

#define OUTER(name, inner)						\
	struct {							\
		__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);		\
		__uint(max_entries, 2);					\
		__type(key, __u32);					\
		__array(values, struct inner);				\
	} name SEC(".maps")

OUTER(guard_allow4, lpm4);
OUTER(guard_deny4, lpm4);
OUTER(guard_allow6, lpm6);
OUTER(guard_deny6, lpm6);

static __always_inline void count(__u32 key)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&guard_stats, &zero);

	/* Per-CPU and XDP runs in softirq with no preemption on this CPU:
	 * a plain add is exact. */
	if (v && key < GD_ST__MAX)
		v[key] += 1;
}

static __always_inline int in_list(void *outer, __u32 slot, const void *key)
{
	void *inner = bpf_map_lookup_elem(outer, &slot);

	return inner && bpf_map_lookup_elem(inner, key);
}

static __always_inline int port_served(const struct gd_config *cfg, __u16 port)
{
	__u32 w = port >> 6;

	if (w >= GD_PORT_WORDS)
		return 0;
	return (cfg->ports[w] >> (port & 63)) & 1;
}

/* Over the SYN limit? Updates the source's bucket in place (two CPUs on one
 * source may race and lose an update: a few SYNs of slack, never a false
 * drop of a quiet source). */
static __always_inline int over_limit(const struct gd_config *cfg, struct gd_src *src)
{
	struct ml_bucket *b, fresh;
	__u64 now = bpf_ktime_get_ns();

	if (cfg->rate == 0)
		return 0;
	b = bpf_map_lookup_elem(&guard_buckets, src);
	if (!b) {
		ml_bucket_init(&fresh, now, cfg->burst);
		bpf_map_update_elem(&guard_buckets, src, &fresh, BPF_NOEXIST);
		return cfg->burst == 0;
	}
	return !ml_bucket_take(b, now, cfg->rate, cfg->burst);
}

/* The guard; with respond (a constant: two programs), the responder
 * answers what it lets through. */
static __always_inline int guard(struct xdp_md *ctx, const int respond)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	const struct gd_config *cfg;
	const struct gd_ctl *ctl;
	struct gd_src src = {};
	struct tcphdr *th;
	__u32 zero = 0, slot;
	__u8 flags;
	int allow, deny;
	__u16 proto;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	proto = eth->h_proto;
	ctl = bpf_map_lookup_elem(&guard_ctl, &zero);
	slot = ctl ? ctl->active & 1 : 0;
	cfg = bpf_map_lookup_elem(&guard_cfg, &slot);
	if (!cfg)
		return XDP_PASS;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		struct gd_lpm4 k4 = { .prefixlen = 32 };
		__u32 ihl;

		if ((void *)(ip + 1) > end)
			return XDP_PASS;
		ihl = ip->ihl;
		if (ip->version != 4 || ihl < 5 || ip->protocol != IPPROTO_TCP)
			return XDP_PASS;
		/* Any fragment, first or not: the first alone cannot be
		 * judged consistently with the rest. */
		if (ip->frag_off & bpf_htons(0x3fff))	/* MF | offset */
			return XDP_PASS;
		th = (void *)ip + ihl * 4;
		if ((void *)(th + 1) > end)
			return XDP_PASS;
		if (!port_served(cfg, bpf_ntohs(th->dest)))
			return XDP_PASS;
		/* Read the flags now: clang would otherwise recompute th after
		 * the lookups from ihl, and the verifier loses its range. */
		flags = ((__u8 *)th)[13];
		count(GD_ST_PACKETS);
		k4.addr = ip->saddr;
		allow = in_list(&guard_allow4, slot, &k4);
		deny = !allow && in_list(&guard_deny4, slot, &k4);
		src.addr[2] = bpf_htonl(0xffff);
		src.addr[3] = ip->saddr & cfg->mask4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		/* Assigned below, not initialized here: "= { .prefixlen = 128 }"
		 * leaves clang 14 a 20-byte template in .rodata that no insn reads,
		 * and the BTF of a .rodata without variables (DATASEC vlen 0) is
		 * rejected by Linux 5.10 ("vlen == 0"). Without BTF, libxdp cannot
		 * load the guard behind its dispatcher as an extension program
		 * ("Program extension requires BTF") and the attach fails. */
		struct gd_lpm6 k6;
		int i;

		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		/* Extension headers (fragments among them) are not walked. */
		if (ip6->version != 6 || ip6->nexthdr != IPPROTO_TCP)
			return XDP_PASS;
		th = (void *)(ip6 + 1);
		if ((void *)(th + 1) > end)
			return XDP_PASS;
		if (!port_served(cfg, bpf_ntohs(th->dest)))
			return XDP_PASS;
		flags = ((__u8 *)th)[13];
		count(GD_ST_PACKETS);
		k6.prefixlen = 128;
		__builtin_memcpy(k6.addr, &ip6->saddr, 16);
		allow = in_list(&guard_allow6, slot, &k6);
		deny = !allow && in_list(&guard_deny6, slot, &k6);
		for (i = 0; i < 4; i++)
			src.addr[i] = ip6->saddr.in6_u.u6_addr32[i] & cfg->mask6[i];
	} else {
		/* ARP, VLAN tags (see the top), everything else. */
		return XDP_PASS;
	}

	if (allow) {
		count(GD_ST_ALLOWED);
		return respond ? xr_respond(ctx) : XDP_PASS;
	}
	if (deny) {
		count(GD_ST_DROP_DENY);
		return XDP_DROP;
	}
	if ((flags & (TH_SYN | TH_ACK)) == TH_SYN) {
		if (over_limit(cfg, &src)) {
			count(GD_ST_DROP_RATE);
			return XDP_DROP;
		}
		count(GD_ST_SYN_PASSED);
	}
	return respond ? xr_respond(ctx) : XDP_PASS;
}

/* The guard alone: what --xdp attaches with the socket engines. It needs
 * nothing newer than Linux 5.10 (no bpf_loop), and loads there. */
SEC("xdp")
int ml_guard(struct xdp_md *ctx)
{
	return guard(ctx, 0);
}

/* The guard and the XDP responder (--engine xdp): bpf_loop, so 5.17+.
 * The controller loads one of the two (the other's autoload is off). */
struct {
	__uint(priority, 20);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(ml_guard_xr);

SEC("xdp")
int ml_guard_xr(struct xdp_md *ctx)
{
	return guard(ctx, 1);
}
