/* SPDX-License-Identifier: GPL-2.0 */
/*
 * xdpresp.bpf.h - the XDP responder: answers SMTP over TCP from XDP, with
 * no socket. A SYN gets a SYN-ACK whose sequence number is a keyed cookie
 * (include/xdpresp.h); every later segment is checked against it and says,
 * by its acknowledgement number, how much of our output the client has.
 * The dialogue is framed and classified by include/proto.h, as in the other
 * engines.
 *
 * What is kept, and why (docs/design.md, "The XDP responder"): a SYN flood
 * or a scan costs no memory at all. From the completing ACK to the end of
 * the session a flow has an entry in the LRU hash xr_flows (296
 * octets): replies are kept as opcodes (one octet each) until the client
 * acknowledges them, so that a reply the client lacks can be sent again,
 * one that does not fit a frame goes out in parts, and a client that sends
 * several commands before reading gets its replies in order behind each
 * other; the line in progress; the summary for the session's log record
 * (ring buffer xr_events). An evicted entry leaves a flow at rest: the
 * client's ack says what it has, and its next octet is taken to start a
 * line.
 *
 * It is part of the guard's program (bpf/guard.bpf.c includes this file
 * and calls xr_respond() for what its limits and lists let through, when
 * --engine xdp is on): one XDP program per interface, so that it needs no
 * dispatcher (kernels that refuse freplace programs run one program alone)
 * and the guard's SYN buckets are its per-source limits.
 *
 * Only TCP to a served port is touched: everything else passes (ARP, other
 * protocols and ports, IPv4 fragments, IPv6 with extension headers,
 * VLAN-tagged frames: as the guard, attach to the VLAN interface itself).
 * A malformed segment to a served port is dropped.
 *
 * A greeting the network loses is sent again by the controller, which runs
 * this program on the client's duplicate ACK (xr_greet, note_greeting()).
 */
#ifndef ML_XDPRESP_BPF_H
#define ML_XDPRESP_BPF_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "verifier.h"
#include "proto.h"
#include "xdpresp.h"

#define XR_EEXIST	17	/* errno's EEXIST: a map update's BPF_NOEXIST failed */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct xr_config);
} xr_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xr_ctl);
} xr_ctl SEC(".maps");

/* Sized by the controller before load. An LRU: under more open flows than
 * entries the oldest are evicted, and fall back to rest (see the top). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XR_FLOWS);
	__type(key, struct xr_flow);
	__type(value, struct xr_state);
} xr_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xr_stats);
} xr_stats SEC(".maps");

/* The dialogue's counters, as the other engines count them. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ml_stats);
} xr_dialog SEC(".maps");

/* A flow's state while it has none stored yet: map memory, so that the
 * verifier does not track the parser octet by octet (as in responder.bpf.c). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xr_state);
} xr_scratch SEC(".maps");

#define TH_FIN	0x01
#define TH_SYN	0x02
#define TH_RST	0x04
#define TH_PSH	0x08
#define TH_ACK	0x10

#define CHUNK	64
#define OPT_MAX	40	/* TCP option octets at most */

/* XDP runs in softirq with preemption off: a plain add on this CPU's slot
 * is exact. */
static __always_inline void xr_add(__u32 key, __u64 n)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&xr_stats, &zero);

	barrier_var(key);
	if (v && key < XR_ST__MAX)
		v[key] += n;
}

static __always_inline void xr_count(__u32 key)
{
	xr_add(key, 1);
}

static __always_inline void ml_count(__u32 key, __u64 n)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&xr_dialog, &zero);

	barrier_var(key);
	if (v && key < ML_ST__MAX)
		v[key] += n;
}

/* ---- the cookie ---------------------------------------------------------- */

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND(v0, v1, v2, v3)				\
	do {							\
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;		\
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;		\
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
	} while (0)

/* SipHash-2-4 of the flow key (36 octets, as five words: the last holds the
 * ports and, as SipHash's final block does, the length). */
static __always_inline __u32 cookie_mac(const struct xr_config *cfg, const struct xr_flow *f)
{
	__u64 k0 = cfg->key[0], k1 = cfg->key[1];
	__u64 v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
	__u64 v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
	__u64 m[5];
	int i;

	m[0] = (__u64)f->laddr[0] << 32 | f->laddr[1];
	m[1] = (__u64)f->laddr[2] << 32 | f->laddr[3];
	m[2] = (__u64)f->raddr[0] << 32 | f->raddr[1];
	m[3] = (__u64)f->raddr[2] << 32 | f->raddr[3];
	m[4] = (__u64)36 << 56 | (__u64)f->lport << 16 | f->rport;
#pragma unroll
	for (i = 0; i < 5; i++) {
		v3 ^= m[i];
		SIPROUND(v0, v1, v2, v3);
		SIPROUND(v0, v1, v2, v3);
		v0 ^= m[i];
	}
	v2 ^= 0xff;
#pragma unroll
	for (i = 0; i < 4; i++)
		SIPROUND(v0, v1, v2, v3);
	return (__u32)(v0 ^ v1 ^ v2 ^ v3);
}

/* What goes out: seq, ack, flags, and len octets of output from offset
 * `from` of the session's reply stream (st's queued replies). */
struct emit {
	__u32 seq, ack;
	__u32 from, len;
	__u32 tsval, tsecr;
	__u16 mss;		/* SYN-ACK: our MSS option */
	__u8 flags;
	__u8 ts;		/* send the timestamps option */
};

/* ---- the segment as parsed ----------------------------------------------- */

struct seg {
	struct xr_flow key;	/* laddr: the destination, raddr: the source */
	__u8 dmac[6], smac[6];
	__u32 v6;
	__u32 seq, ack;		/* host order */
	__u32 data_off;		/* offset of the payload in the frame */
	__u32 data_len;
	__u32 tsval;		/* the client's, host order */
	__u16 win;		/* host order */
	__u16 mss;		/* SYN's MSS option, 0 if none */
	__u8 flags;
	__u8 has_ts;
	__u32 ifindex;		/* where it came in */
	__u32 opt_i, opt_n;	/* parse_opts' walk */
	__u8 opt[64];
	struct emit out;	/* the reply: here, not on the stack */
};

/* Greetings awaiting acknowledgement, for the controller's resend. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XR_GREET_MAX);
	__type(key, struct xr_flow);
	__type(value, struct xr_resend);
} xr_greet SEC(".maps");

/* Session records for the log (struct xr_log_event); 256 KiB, about
 * 1,000 records. A record wakes the controller only when a quarter of the
 * ring waits; else its loop reads them at the next round, 200 ms at most
 * (the resend sweep's tick). A wake-up per session cost about 0.5 us of
 * server CPU on the veth bench, 5 % of a session's. A record that
 * does not fit is counted (events_lost) and its line lost. */
#define XR_EVENTS_SIZE	(256 * 1024)
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, XR_EVENTS_SIZE);
} xr_events SEC(".maps");

/* The segment being handled: map memory, off the 512-octet stack that
 * the program, xr_segment(), xr_emit() and a loop callback share. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct seg);
} xr_seg SEC(".maps");

/* Options into s (MSS, timestamps), read from a copy on the stack, one
 * option per bpf_loop step (an unrolled walk costs the verifier a path per
 * layout). */
/* bpf_loop's context must be on the stack: it points to the segment. */
struct opt_walk {
	struct seg *s;
};

static long opt_step(__u64 index, void *data)
{
	struct seg *s = ((struct opt_walk *)data)->s;
	__u32 i, kind, len;

	if (!s)
		return 1;
	i = s->opt_i;
	if (i >= s->opt_n || i >= OPT_MAX)
		return 1;
	kind = s->opt[i & 63];
	if (kind == 0)		/* end of options */
		return 1;
	if (kind == 1) {	/* NOP */
		s->opt_i = i + 1;
		return 0;
	}
	len = s->opt[(i + 1) & 63];
	if (len < 2 || i + len > s->opt_n)
		return 1;
	if (kind == 2 && len == 4) {
		s->mss = (__u16)s->opt[(i + 2) & 63] << 8 | s->opt[(i + 3) & 63];
	} else if (kind == 8 && len == 10) {
		s->tsval = (__u32)s->opt[(i + 2) & 63] << 24 | (__u32)s->opt[(i + 3) & 63] << 16 |
			   (__u32)s->opt[(i + 4) & 63] << 8 | s->opt[(i + 5) & 63];
		s->has_ts = 1;
	}
	s->opt_i = i + len;
	return 0;
}

static __always_inline void parse_opts(struct xdp_md *ctx, __u32 off, __u32 n, struct seg *s)
{
	if (n == 0 || n > OPT_MAX)
		return;
	n = ((n - 1) & 63) + 1;	/* >= 1 by arithmetic: 6.1 needs it */
	barrier_var(n);
	if (n > OPT_MAX || bpf_xdp_load_bytes(ctx, off, s->opt, n))
		return;
	struct opt_walk w = { .s = s };

	s->opt_i = 0;
	s->opt_n = n;
	bpf_loop(OPT_MAX, opt_step, &w, 0);
}

static __always_inline int xr_port_served(const struct xr_config *cfg, __u16 port)
{
	__u32 w = port >> 6;

	if (w >= XR_PORT_WORDS)
		return 0;
	return (cfg->ports[w] >> (port & 63)) & 1;
}

enum { P_OURS, P_PASS, P_DROP };

/* Parse the frame into s: P_OURS for TCP to a served port, P_PASS for
 * anything else, P_DROP for a malformed segment to a served port. */
static __always_inline int parse_seg(struct xdp_md *ctx, const struct xr_config *cfg, struct seg *s)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct tcphdr *th;
	__u32 frame = end - data, thoff, l4len, doff;

	if ((void *)(eth + 1) > end)
		return P_PASS;
	__builtin_memcpy(s->dmac, eth->h_dest, 6);
	__builtin_memcpy(s->smac, eth->h_source, 6);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		__u32 ihl, tot;

		if ((void *)(ip + 1) > end)
			return P_PASS;
		ihl = ip->ihl;
		if (ip->version != 4 || ihl < 5 || ip->protocol != IPPROTO_TCP)
			return P_PASS;
		if (ip->frag_off & bpf_htons(0x3fff))	/* MF | offset */
			return P_PASS;
		th = (void *)ip + ihl * 4;
		if ((void *)(th + 1) > end)
			return P_PASS;
		if (!xr_port_served(cfg, bpf_ntohs(th->dest)))
			return P_PASS;
		tot = bpf_ntohs(ip->tot_len);
		/* The frame may carry Ethernet padding: lengths come from
		 * the header, which must fit the frame. */
		if (tot < ihl * 4 + sizeof(*th) || sizeof(*eth) + tot > frame)
			return P_DROP;
		thoff = sizeof(*eth) + ihl * 4;
		l4len = tot - ihl * 4;
		s->key.laddr[2] = bpf_htonl(0xffff);
		s->key.laddr[3] = ip->daddr;
		s->key.raddr[2] = bpf_htonl(0xffff);
		s->key.raddr[3] = ip->saddr;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return P_PASS;
		if (ip6->version != 6 || ip6->nexthdr != IPPROTO_TCP)
			return P_PASS;
		th = (void *)(ip6 + 1);
		if ((void *)(th + 1) > end)
			return P_PASS;
		if (!xr_port_served(cfg, bpf_ntohs(th->dest)))
			return P_PASS;
		l4len = bpf_ntohs(ip6->payload_len);
		if (l4len < sizeof(*th) || sizeof(*eth) + sizeof(*ip6) + l4len > frame)
			return P_DROP;
		thoff = sizeof(*eth) + sizeof(*ip6);
		__builtin_memcpy(s->key.laddr, &ip6->daddr, 16);
		__builtin_memcpy(s->key.raddr, &ip6->saddr, 16);
		s->v6 = 1;
	} else {
		return P_PASS;	/* ARP, VLAN tags (see the top), the rest */
	}
	xr_count(XR_ST_PACKETS);
	s->ifindex = ctx->ingress_ifindex;
	doff = (((__u8 *)th)[12] >> 4) * 4;
	if (doff < sizeof(*th) || doff > l4len)
		return P_DROP;
	s->flags = ((__u8 *)th)[13];
	s->seq = bpf_ntohl(th->seq);
	s->ack = bpf_ntohl(th->ack_seq);
	s->win = bpf_ntohs(th->window);
	s->key.lport = th->dest;
	s->key.rport = th->source;
	s->data_off = thoff + doff;
	s->data_len = l4len - doff;
	parse_opts(ctx, thoff + sizeof(*th), doff - sizeof(*th), s);
	return P_OURS;
}

/* ---- building a reply frame ---------------------------------------------- */

static __always_inline const struct xr_reply *reply(const struct xr_config *cfg, __u32 op)
{
	barrier_var(op);
	if (op >= ML_OP__MAX)
		return 0;
	return &cfg->replies[op];
}

static __always_inline __u32 reply_len(const struct xr_config *cfg, __u32 op)
{
	const struct xr_reply *r = reply(cfg, op);
	__u32 n = r ? r->len : 0;

	return n <= ML_REPLY_MAX ? n : ML_REPLY_MAX;
}

static __always_inline __u32 fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u32)sum;
}


/* The payload walk: one queued reply per step, its octets in [from, stop)
 * of the output written at frame offset `at` and summed. */
struct payload {
	struct xdp_md *ctx;
	const struct xr_config *cfg;
	const struct xr_state *st;
	__u32 from, stop, at;
	__u32 p;		/* output offset of this step's reply */
	__u32 err;
	__u64 sum;		/* native order, unfolded */
};

static long payload_step(__u64 index, void *data)
{
	struct payload *pl = data;
	const struct xr_state *st = pl->st;
	const struct xr_reply *r;
	__u32 rl, lo, hi, skip, n, x, p = pl->p;
	__u16 be;

	if (!st || !pl->cfg || p >= pl->stop)
		return 1;
	r = reply(pl->cfg, st->ops[(st->head + (__u32)index) & (XR_OPS_MAX - 1)]);
	if (!r)
		return 1;
	rl = r->len;
	if (rl > ML_REPLY_MAX)
		return 1;
	pl->p = p + rl;
	lo = p > pl->from ? p : pl->from;
	hi = p + rl < pl->stop ? p + rl : pl->stop;
	if (lo >= hi)
		return 0;
	skip = lo - p;
	n = hi - lo;
	x = skip + n;
	if (skip >= ML_REPLY_MAX || n == 0 || n > ML_REPLY_MAX || x > ML_REPLY_MAX)
		return 1;
	/* The same values, bounded by arithmetic for the verifier: 6.1 does
	 * not learn n >= 1 from the test above ("invalid access to memory,
	 * size=0"), and a bound checked on a copy is lost. */
	skip &= XR_TEXT_SPAN / 2 - 1;
	barrier_var(skip);
	n = ((n - 1) & (XR_TEXT_SPAN / 2 - 1)) + 1;
	barrier_var(n);
	barrier_var(x);
	if (x > ML_REPLY_MAX)
		return 1;
	if (bpf_xdp_store_bytes(pl->ctx, pl->at + (lo - pl->from), (void *)&r->text[skip], n)) {
		pl->err = 1;
		return 1;
	}
	/* The octets' word sum where they sit in the text; swapped when the
	 * text and the payload offsets differ in parity. */
	be = fold(r->psum[x] - r->psum[skip]);
	if (((lo - pl->from) ^ skip) & 1)
		be = (be << 8) | (be >> 8);
	pl->sum += bpf_htons(be);
	return 0;
}

static __always_inline void put_ts(__u8 *o, const struct emit *e)
{
	o[0] = 1;
	o[1] = 1;
	o[2] = 8;
	o[3] = 10;
	*(__be32 *)&o[4] = bpf_htonl(e->tsval);
	*(__be32 *)&o[8] = bpf_htonl(e->tsecr);
}

/* The ones' complement sum of 32-bit words is the sum of their 16-bit
 * halves with the carries folded in: add the words as they lie in memory
 * (native order), fold at the end. */
static __always_inline __u64 sum_words(const __u32 *w, __u32 n)
{
	__u64 sum = 0;
	__u32 i;

#pragma unroll
	for (i = 0; i < 10; i++)
		if (i < n)
			sum += w[i];
	return sum;
}

/*
 * Turn the frame into the reply described by e: resize it, write Ethernet,
 * IP and TCP headers (addresses and ports swapped) and the payload.
 * Returns 0, or -1 when the frame cannot grow that much (nothing written).
 */
__noinline int xr_emit(struct xdp_md *ctx, const struct xr_config *cfg,
		       const struct xr_state *st, const struct seg *s, const struct emit *e)
{
	struct ethhdr eth;
	__u32 tcpw[10] = {};	/* words: stack access must be aligned */
	__u8 *tcp = (void *)tcpw;
	struct tcphdr *th = (void *)tcpw;
	__u32 iplen, tlen = sizeof(struct tcphdr);
	__u32 hlen, len, frame;
	__u64 sum;
	long delta;

	/* Options at constant offsets: MSS (SYN-ACK only), then NOP NOP TS. */
	/* A global function: every pointer may be NULL for the verifier. */
	if (!cfg || !s || !e || (e->len && !st))
		return -1;
	iplen = s->v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);
	if (e->mss) {
		tcp[20] = 2;
		tcp[21] = 4;
		tcp[22] = e->mss >> 8;
		tcp[23] = e->mss & 0xff;
		tlen += 4;
		if (e->ts) {
			put_ts(&tcp[24], e);
			tlen += 12;
		}
	} else if (e->ts) {
		put_ts(&tcp[20], e);
		tlen += 12;
	}
	hlen = sizeof(eth) + iplen + tlen;
	len = hlen + e->len;
	frame = ctx->data_end - ctx->data;
	delta = (long)len - (long)frame;
	/* The frame is rewritten whole, so it may grow or shrink at either
	 * end: at the head first. Generic (skb) mode guarantees
	 * XDP_PACKET_HEADROOM in front but maybe no tailroom, and its
	 * handling of a moved tail left the skb's tail pointer past its data
	 * by the MAC header length here (6.18): replies came out with 14
	 * octets of the old frame in front. */
	if (delta && bpf_xdp_adjust_head(ctx, -delta) &&
	    (delta < 0 || bpf_xdp_adjust_tail(ctx, delta)))
		return -1;

	sum = 0;
	if (e->len && st) {
		struct payload pl = {
			.ctx = ctx, .cfg = cfg, .st = st,
			.from = e->from, .stop = e->from + e->len, .at = hlen,
			.p = st->base,
		};

		bpf_loop(XR_OPS_MAX, payload_step, &pl, 0);
		/* Every payload octet from a reply's text, or no frame: one
		 * not written would send the client's own octets back. */
		if (pl.err || pl.p < pl.stop)
			return -1;
		sum = pl.sum;
	}

	th->source = s->key.lport;
	th->dest = s->key.rport;
	th->seq = bpf_htonl(e->seq);
	th->ack_seq = bpf_htonl(e->ack);
	tcp[12] = (tlen / 4) << 4;
	tcp[13] = e->flags;
	th->window = bpf_htons(XR_WINDOW);

	__builtin_memcpy(eth.h_dest, s->smac, 6);
	__builtin_memcpy(eth.h_source, s->dmac, 6);
	/* The pseudo-header: addresses, protocol, TCP length. */
	sum += bpf_htonl(IPPROTO_TCP) + bpf_htonl(tlen + e->len);
	if (s->v6) {
		struct ipv6hdr ip6 = {};

		eth.h_proto = bpf_htons(ETH_P_IPV6);
		ip6.version = 6;
		ip6.payload_len = bpf_htons(tlen + e->len);
		ip6.nexthdr = IPPROTO_TCP;
		ip6.hop_limit = 64;
		__builtin_memcpy(&ip6.saddr, s->key.laddr, 16);
		__builtin_memcpy(&ip6.daddr, s->key.raddr, 16);
		sum += sum_words(s->key.laddr, 4) + sum_words(s->key.raddr, 4);
		sum += sum_words(tcpw, tlen / 4);
		th->check = ~fold(sum);
		if (bpf_xdp_store_bytes(ctx, sizeof(eth), &ip6, sizeof(ip6)))
			return -1;
	} else {
		__u32 ipw[5] = {};
		struct iphdr *ip = (void *)ipw;

		eth.h_proto = bpf_htons(ETH_P_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->tot_len = bpf_htons(iplen + tlen + e->len);
		ip->frag_off = bpf_htons(0x4000);	/* DF */
		ip->ttl = 64;
		ip->protocol = IPPROTO_TCP;
		ip->saddr = s->key.laddr[3];
		ip->daddr = s->key.raddr[3];
		ip->check = ~fold(sum_words(ipw, 5));
		sum += (__u64)ip->saddr + ip->daddr;
		sum += sum_words(tcpw, tlen / 4);
		th->check = ~fold(sum);
		if (bpf_xdp_store_bytes(ctx, sizeof(eth), ipw, sizeof(ipw)))
			return -1;
	}
	if (bpf_xdp_store_bytes(ctx, 0, &eth, sizeof(eth)))
		return -1;
	barrier_var(tlen);
	if (tlen < 20 || tlen > 40)
		return -1;
	if (bpf_xdp_store_bytes(ctx, sizeof(eth) + iplen, tcp, tlen))
		return -1;
	return 0;
}

/* ---- the dialogue -------------------------------------------------------- */

static __always_inline void push_op(struct xr_state *st, __u32 op)
{
	st->ops[(st->head + st->nops) & (XR_OPS_MAX - 1)] = op;
	st->nops++;
	st->sum.nreplies++;
}

/* The session ends for `reason` (ML_ST_CLOSE_*): counted once; its
 * record goes out with the next segment (xr_log). */
static __always_inline void set_closing(struct xr_state *st, __u32 reason)
{
	st->flags |= XR_F_CLOSING;
	if (!st->reason) {
		st->reason = reason;
		ml_count(reason, 1);
	}
}

/* A reply queued: its code and octets counted (once: a resend is not). */
static __always_inline void count_reply(const struct xr_config *cfg, __u32 op)
{
	int k = ml_code_stat(ml_op_code(cfg->dialect, op));

	if (k >= 0)
		ml_count(k, 1);
	ml_count(ML_ST_TX_BYTES, reply_len(cfg, op));
}

/*
 * A completed line: count it and queue its reply, or the 421 that ends a
 * session whose output would pass XR_OUT_MAX. Returns 1 to stop the scan.
 * Global, so that the verifier checks it once rather than at every octet
 * position that can end a line (as line_done() in responder.bpf.c).
 */
__noinline long xr_line(struct xr_state *st, __u32 slot, __u32 verb)
{
	const struct xr_config *cfg;
	__u32 op, len, bye;
	int k;

	if (!st)
		return 1;
	cfg = bpf_map_lookup_elem(&xr_cfg, &slot);
	if (!cfg)
		return 1;
	k = ml_verb_stat(verb);
	if (k >= 0)
		ml_count(k, 1);
	if (verb != ML_V_FLOOD)
		ml_summary_add(&st->sum, &st->parser, verb);
	if (verb == ML_V_TOOLONG)
		ml_count(ML_ST_LONG_LINES, 1);
	op = ml_reply_op(cfg->dialect, verb);
	len = reply_len(cfg, op);
	/* Room for the longer of the two 421s a session can still need. */
	bye = reply_len(cfg, ML_OP_MAXTIME) > reply_len(cfg, ML_OP_PIPELINE) ?
	      reply_len(cfg, ML_OP_MAXTIME) : reply_len(cfg, ML_OP_PIPELINE);
	/* Room for this reply, the 421 and the FIN, or the 421 now. */
	if ((__u32)st->end + len + bye + 1 > XR_OUT_MAX)
		op = ML_OP_MAXTIME;
	push_op(st, op);
	st->end += reply_len(cfg, op);
	count_reply(cfg, op);
	if (ml_op_closes(op) || op == ML_OP_MAXTIME) {
		set_closing(st, op == ML_OP_QUIT ? ML_ST_CLOSE_QUIT :
			    op == ML_OP_MAXTIME ? ML_ST_CLOSE_MAXTIME : ML_ST_CLOSE_FLOOD);
		return 1;
	}
	return 0;
}

struct scan {
	struct xdp_md *ctx;
	struct xr_state *st;
	__u32 pos, end;		/* frame offsets: next octet, end of payload */
	__u32 slot;
	__u32 full;		/* stopped at a line start: no room for replies */
	__u8 buf[CHUNK];
};

static __always_inline __u32 chunk_len(__u32 left)
{
	__u32 n = left > CHUNK ? CHUNK : left;

	barrier_var(n);
	return ((n - 1) & (CHUNK - 1)) + 1;
}

/* Feed up to CHUNK octets to the parser, to the end of a line; then queue
 * that line's reply. A line starts only if its reply and a 421 fit. */
static long scan_step(__u64 index, void *data)
{
	struct scan *sc = data;
	struct xr_state *st = sc->st;
	__u32 pos = sc->pos, n, j, verb = ML_V_NONE;
	long stop;

	if (pos >= sc->end || !st)
		return 1;
	if (st->parser.len == 0 && st->nops >= XR_OPS_MAX - 1 && !(st->flags & XR_F_CLOSING)) {
		sc->full = 1;
		return 1;
	}
	n = chunk_len(sc->end - pos);
	if (bpf_xdp_load_bytes(sc->ctx, pos, sc->buf, n))
		return 1;
	for (j = 0; j < CHUNK; j++) {
		__u32 k = j;

		if (j >= n)
			break;
		barrier_var(k);
		verb = ml_feed(&st->parser, sc->buf[k & (CHUNK - 1)]);
		if (verb != ML_V_NONE) {
			j++;
			break;
		}
	}
	sc->pos = pos + j;
	if (verb == ML_V_NONE)
		return 0;
	stop = xr_line(st, sc->slot, verb);
	barrier_var(stop);	/* see scan_step() in responder.bpf.c */
	return stop ? 1 : 0;
}

/* Take the payload octets [pos, end) of the frame into st's parser and
 * queue their replies; returns how many the client may count as received:
 * all, since those after a closing reply (or a full queue) are discarded
 * and acknowledged as in any later segment. Left unacknowledged, they held
 * the client's FIN beyond rcv_nxt until its retransmission timer fired.
 * Global: the scan's callback is verified in this one small context. */
__noinline __u32 xr_take(struct xdp_md *ctx, struct xr_state *st, __u32 slot, __u32 pos,
			 __u32 end)
{
	struct scan sc = { .ctx = ctx, .st = st, .pos = pos, .end = end, .slot = slot };
	__u32 n;

	if (!st || pos >= end)
		return 0;
	bpf_loop(CHUNK * 16, scan_step, &sc, 0);
	if (sc.pos > end)
		sc.pos = end;
	if (sc.full) {
		/* XR_OPS_MAX - 1 replies the client has not acknowledged and
		 * a line more: a client that pipelines without PIPELINING
		 * (which is never offered), as the kernel engine's segment
		 * budget, ends with 421 in the slot kept for it. Waiting for
		 * its retransmission instead stalled it for seconds (its
		 * retransmission timer backs off). */
		const struct xr_config *cfg = bpf_map_lookup_elem(&xr_cfg, &slot);

		xr_count(XR_ST_QUEUE_FULL);
		if (!cfg)
			return 0;
		push_op(st, ML_OP_PIPELINE);
		st->end += reply_len(cfg, ML_OP_PIPELINE);
		count_reply(cfg, ML_OP_PIPELINE);
		set_closing(st, ML_ST_CLOSE_FLOOD);
	}
	n = sc.full || (st->flags & XR_F_CLOSING) ? end - pos : sc.pos - pos;
	ml_count(ML_ST_RX_BYTES, n);	/* the segment, as the kernel engine counts */
	return n;
}

/* Drop the replies the client has acknowledged in full (out: how much of
 * the output it has) from st's queue. */
__noinline int xr_acked(struct xr_state *st, const struct xr_config *cfg, __u32 out)
{
	__u32 i, l;

	if (!st || !cfg)
		return 0;
	for (i = 0; i < XR_OPS_MAX; i++) {
		if (!st->nops)
			break;
		l = reply_len(cfg, st->ops[st->head & (XR_OPS_MAX - 1)]);
		if ((__u32)st->base + l > out)
			break;
		st->base += l;
		st->head = (st->head + 1) & (XR_OPS_MAX - 1);
		st->nops--;
	}
	return 0;
}

/* XR_MSS0-3 as code: a const array lands in .rodata.cst8, which clang
 * 14's BTF names .rodata and libbpf then cannot find ("Error finalizing
 * .BTF: -2"). */
static __always_inline __u32 mss_of(__u32 idx)
{
	switch (idx & 3) {
	case 0: return XR_MSS0;
	case 1: return XR_MSS1;
	case 2: return XR_MSS2;
	}
	return XR_MSS3;
}

static __always_inline __u32 mss_index(__u32 mss)
{
	__u32 i = 0;

	if (mss >= XR_MSS1)
		i = 1;
	if (mss >= XR_MSS2)
		i = 2;
	if (mss >= XR_MSS3)
		i = 3;
	return i;
}

static __always_inline __u32 now_ts(void)
{
	return (__u32)(bpf_ktime_get_ns() >> 20);	/* about a millisecond */
}

/* A SYN: the SYN-ACK with the cookie, and nothing stored. */
static __always_inline int syn(struct xdp_md *ctx, const struct xr_config *cfg, struct seg *s)
{
	__u32 mac = cookie_mac(cfg, &s->key), idx = mss_index(s->mss);
	struct emit *e = &s->out;

	__builtin_memset(e, 0, sizeof(*e));
	e->seq = (mac & ~((1u << XR_MAC_SHIFT) - 1)) | idx << XR_MSS_SHIFT;
	e->ack = s->seq + 1;
	e->flags = TH_SYN | TH_ACK;
	e->mss = s->v6 ? 1440 : 1460;
	e->ts = s->has_ts;
	e->tsval = now_ts();
	e->tsecr = s->tsval;

	/* A new connection on the 4-tuple of an old one: forget the old. */
	if (bpf_map_lookup_elem(&xr_flows, &s->key))
		bpf_map_delete_elem(&xr_flows, &s->key);
	if (xr_emit(ctx, cfg, 0, s, e)) {
		xr_count(XR_ST_NO_ROOM);
		return XDP_DROP;
	}
	xr_count(XR_ST_SYN_ACKS);
	return XDP_TX;
}

/*
 * One CPU at a time in a stored flow (busy: 0 free, 1 taken). A NIC's RSS
 * keeps a flow on one queue, but a retransmission can meet the original on
 * two CPUs (a veth's queue follows the sender's XPS; an RSS table changes
 * under traffic): both took the same line, and the replies went out
 * twice, one of them at the wrong place. XDP may not wait, so a segment
 * that finds its flow taken is dropped and counted (busy); the client's
 * retransmission brings it again. A deleted entry is left taken: a CPU
 * that found it just before the delete cannot take it. Not covered: an
 * entry that is deleted and given to another flow between one CPU's
 * lookup and its lock, or evicted under it when the map is full; what
 * goes out is still only reply text (payload_step(), xr_emit()).
 */
static __always_inline int flow_trylock(struct xr_state *st)
{
	return __sync_val_compare_and_swap(&st->busy, 0, 1) == 0;
}

static __always_inline void flow_unlock(struct xr_state *st)
{
	__sync_lock_test_and_set(&st->busy, 0);	/* an exchange: ordered after our stores */
}

/* A flow met without stored state: at rest, or greeting (out == 0), or in
 * the middle of a greeting whose state was evicted. */
static __always_inline void rest_state(struct xr_state *st, const struct xr_config *cfg,
				       __u32 slot, const struct seg *s, __u32 out)
{
	__u32 greet = reply_len(cfg, ML_OP_GREET);

	st->rcv_nxt = s->seq;
	st->head = 0;
	st->nops = 0;
	st->flags = slot ? XR_F_SLOT1 : 0;
	st->pad = 0;
	st->reason = 0;
	st->busy = 0;
	st->start_ns = bpf_ktime_get_ns();
	ml_parser_init(&st->parser);
	__builtin_memset(&st->sum, 0, sizeof(st->sum));
	if (out < greet) {
		push_op(st, ML_OP_GREET);
		st->base = 0;
		st->end = greet;
		st->sent = out;
		if (out == 0) {
			xr_count(XR_ST_GREETINGS);
			ml_count(ML_ST_ADMITTED, 1);
			count_reply(cfg, ML_OP_GREET);
		}
	} else {
		st->base = st->end = st->sent = out;
	}
	st->una = out;
}

/* The session's record for the log, once. Global: verified once. */
__noinline int xr_log(const struct xr_flow *key, struct xr_state *st, __u32 reason)
{
	struct xr_log_event *le;

	if (!key || !st || (st->flags & XR_F_LOGGED))
		return 0;
	st->flags |= XR_F_LOGGED;
	le = bpf_ringbuf_reserve(&xr_events, sizeof(*le), 0);
	if (!le) {
		ml_count(ML_ST_EVENTS_LOST, 1);
		return 0;
	}
	le->flow = *key;
	le->reason = reason;
	le->dur_ns = bpf_ktime_get_ns() - st->start_ns;
	le->sum = st->sum;
	bpf_ringbuf_submit(le, bpf_ringbuf_query(&xr_events, BPF_RB_AVAIL_DATA) >=
			       XR_EVENTS_SIZE / 4 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	return 0;
}

/* The greeting went out (again): what the controller needs to make the
 * client's duplicate ACK that asks for it once more (struct xr_resend).
 * Global, so that its stack is not on xr_segment's deepest call chain. */
__noinline int note_greeting(const struct xr_flow *key, const struct seg *s,
			     const struct xr_state *st, __u32 isn1)
{
	struct xr_flow k;
	struct xr_resend r = {}, *old;

	if (!key || !s || !st)
		return 0;
	k = *key;	/* a map key from the stack (6.1) */
	old = bpf_map_lookup_elem(&xr_greet, &k);
	if (old) {	/* sent again: the sweep's or the client's doing */
		old->tries++;
		old->sent_ns = bpf_ktime_get_ns();
		xr_count(XR_ST_GREET_RESENT);
		return 0;
	}
	__builtin_memcpy(r.smac, s->smac, 6);
	__builtin_memcpy(r.dmac, s->dmac, 6);
	r.ifindex = s->ifindex;
	r.seq = st->rcv_nxt;
	r.ack = isn1;
	r.tsval = s->tsval;
	r.win = s->win;
	r.ts = s->has_ts;
	r.v6 = s->v6;
	r.sent_ns = bpf_ktime_get_ns();
	bpf_map_update_elem(&xr_greet, &k, &r, BPF_ANY);
	return 0;
}

/* Every segment but a SYN: check the cookie, take the data, answer.
 * Global: verified once, apart from the program's parsing. */
__noinline int xr_segment(struct xdp_md *ctx, const struct xr_config *active,
			  __u32 active_slot, struct seg *s)
{
	__u32 v, out, mss, from, len, room, slot, zero = 0;
	int fresh = 0, fin_acked = 0, took = 0, peer_fin = 0, resend = 0, greeting, r;
	int held;	/* this CPU holds a stored flow's lock */
	const struct xr_config *cfg;
	struct xr_state *st;
	struct emit *e;
	struct xr_flow key;

	if (!active || !s)
		return XDP_DROP;
	/* On the stack: 6.1 takes a map key only from there (or a map, the
	 * packet), not from a global function's memory argument. */
	key = s->key;
	e = &s->out;
	__builtin_memset(e, 0, sizeof(*e));
	v = s->ack - 1;
	if ((s->flags & (TH_RST | TH_ACK)) == TH_RST) {
		/* A RST without ACK carries no cookie: it ends a stored flow
		 * only at the exact sequence number expected (RFC 5961 3.2). */
		st = bpf_map_lookup_elem(&xr_flows, &key);
		if (st && !flow_trylock(st)) {
			xr_count(XR_ST_BUSY);
		} else if (st && st->rcv_nxt == s->seq) {
			xr_count(XR_ST_RESETS);
			if (!st->reason)
				ml_count(ML_ST_CLOSE_RESET, 1);
			xr_log(&key, st, st->reason ? st->reason : ML_ST_CLOSE_RESET);
			bpf_map_delete_elem(&xr_flows, &key);	/* left taken */
			bpf_map_delete_elem(&xr_greet, &key);
		} else {
			if (st)
				flow_unlock(st);
			xr_count(XR_ST_BAD_SEGMENT);
		}
		return XDP_DROP;
	}
	if (!(s->flags & TH_ACK) || (s->flags & TH_SYN)) {
		xr_count(XR_ST_BAD_SEGMENT);
		return XDP_DROP;
	}
	if ((v >> XR_MAC_SHIFT) != (cookie_mac(active, &key) >> XR_MAC_SHIFT)) {
		xr_count(XR_ST_BAD_COOKIE);
		return XDP_DROP;
	}
	out = v & XR_OUT_MAX;
	mss = mss_of(v >> XR_MSS_SHIFT);

	st = bpf_map_lookup_elem(&xr_flows, &key);
	if (st && !flow_trylock(st)) {
		xr_count(XR_ST_BUSY);
		return XDP_DROP;
	}
	if (s->flags & TH_RST) {
		xr_count(XR_ST_RESETS);
		/* After our close (QUIT, 421) a RST is how some clients end
		 * (SO_LINGER 0): the session's reason stays. */
		if (!st || !st->reason)
			ml_count(ML_ST_CLOSE_RESET, 1);
		if (st) {
			xr_log(&key, st, st->reason ? st->reason : ML_ST_CLOSE_RESET);
			bpf_map_delete_elem(&xr_flows, &key);	/* left taken */
		}
		bpf_map_delete_elem(&xr_greet, &key);
		return XDP_DROP;
	}
	if (!st) {
		st = bpf_map_lookup_elem(&xr_scratch, &zero);
		if (!st)
			return XDP_DROP;
		rest_state(st, active, active_slot, s, out);
		fresh = 1;
	}
	/* From here a stored flow is ours: every way out goes through done,
	 * but a delete, which leaves the entry taken. */
	held = !fresh;
	r = XDP_DROP;
	slot = st->flags & XR_F_SLOT1 ? 1 : 0;
	cfg = bpf_map_lookup_elem(&xr_cfg, &slot);
	if (!cfg)
		goto done;

	/* The acknowledgement: what of ours the client has. */
	if (out > st->end) {
		if ((st->flags & XR_F_CLOSING) && out == (__u32)st->end + 1) {
			fin_acked = 1;
			out = st->end;
		} else {
			xr_count(XR_ST_BAD_SEGMENT);
			goto done;
		}
	}
	greeting = st->nops && st->base == 0 && st->ops[st->head & (XR_OPS_MAX - 1)] == ML_OP_GREET;
	xr_acked(st, cfg, out);
	if (greeting && !(st->nops && st->base == 0))
		bpf_map_delete_elem(&xr_greet, &key);	/* taken: no more resends */

	/* The data: taken from rcv_nxt on, in order. */
	if (s->data_len) {
		__s32 d = (__s32)(st->rcv_nxt - s->seq);
		__u32 skip;

		if (d < 0) {
			xr_count(XR_ST_OUT_OF_ORDER);
			skip = s->data_len;
		} else {
			skip = (__u32)d < s->data_len ? (__u32)d : s->data_len;
		}
		if (skip == s->data_len) {
			resend = d >= 0;	/* all of it taken before: it lacks our answer */
		} else if (st->flags & XR_F_CLOSING) {
			/* After the closing reply input is discarded. */
			st->rcv_nxt = s->seq + s->data_len;
			took = 1;
		} else {
			__u32 n = xr_take(ctx, st, slot, s->data_off + skip,
					  s->data_off + s->data_len);

			st->rcv_nxt += n;
			took = n > 0;
		}
	}
	if ((s->flags & TH_FIN) && s->seq + s->data_len == st->rcv_nxt &&
	    !(st->flags & XR_F_PEER_FIN)) {
		st->rcv_nxt += 1;
		st->flags |= XR_F_PEER_FIN;
		peer_fin = 1;
		xr_count(XR_ST_PEER_FIN);
		set_closing(st, ML_ST_CLOSE_CLIENT);
	}

	/* What to send: new output after new input; everything from `out`
	 * when the client shows it lacks it (its data again, or a duplicate
	 * acknowledgement); else only what was never sent. */
	if (!took && !peer_fin && !s->data_len && out == st->una && out < st->sent)
		resend = 1;
	from = resend ? out : st->sent;
	if (from > st->end)
		from = st->end;
	room = mss - (s->has_ts ? 12 : 0);
	if (from - out >= s->win)
		room = 0;
	else if (room > s->win - (from - out))
		room = s->win - (from - out);
	len = st->end - from;
	if (len > room)
		len = room;
	e->flags = TH_ACK;
	if ((st->flags & XR_F_CLOSING) && !fin_acked && from + len == st->end &&
	    (resend || st->sent <= st->end))
		e->flags |= TH_FIN;
	if (fin_acked && (st->flags & XR_F_PEER_FIN) && !peer_fin && !s->data_len) {
		/* The last ACK of the close: nothing is left to say. */
		if (!fresh)
			bpf_map_delete_elem(&xr_flows, &key);	/* left taken */
		return XDP_DROP;
	}
	st->una = out;
	if (!len && !(e->flags & TH_FIN) && !s->data_len && !peer_fin) {
		/* A bare acknowledgement that asks nothing (a stored flow's
		 * state was updated in place; a fresh one learned nothing). */
		goto done;
	}
	e->seq = s->ack + (from - out);	/* after our FIN (fin_acked): ack is past it */
	e->ack = st->rcv_nxt;
	e->from = from;
	e->len = len;
	e->ts = s->has_ts;
	e->tsval = now_ts();
	e->tsecr = s->tsval;
	if (len)
		e->flags |= TH_PSH;
	if (resend && st->sent > from)	/* octets that went out before */
		xr_add(XR_ST_RESENT, st->sent - from < len ? st->sent - from : len);
	if (from + len > st->sent)
		st->sent = from + len;
	if ((e->flags & TH_FIN) && st->sent == st->end)
		st->sent = st->end + 1;

	if (xr_emit(ctx, cfg, st, s, e)) {
		/* Retry with less: the client's retransmission or its next
		 * acknowledgement asks for the rest. */
		xr_count(XR_ST_NO_ROOM);
		e->len = 0;
		e->flags &= ~(TH_FIN | TH_PSH);
		st->sent = from;
		if (xr_emit(ctx, cfg, st, s, e))
			goto done;
	}

	if (from == 0 && e->len && st->nops && st->base == 0)
		note_greeting(&key, s, st, (v & ~XR_OUT_MAX) + 1);	/* ISN + 1 */
	if ((st->flags & XR_F_CLOSING) && !(st->flags & XR_F_LOGGED))
		xr_log(&key, st, st->reason);
	/* The state lasts the session: gone when both FINs are acknowledged
	 * (or at a RST, above). */
	r = XDP_TX;
	if (fin_acked && (st->flags & XR_F_PEER_FIN)) {
		if (!fresh) {
			bpf_map_delete_elem(&xr_flows, &key);	/* left taken */
			held = 0;
		}
	} else if (fresh) {
		/* Another CPU may have stored this flow since the lookup: its
		 * state lacks what this segment did, so this answer must not
		 * go out (the client would count data as taken that the state
		 * does not hold). */
		long err = bpf_map_update_elem(&xr_flows, &key, st, BPF_NOEXIST);

		if (err == -XR_EEXIST) {
			xr_count(XR_ST_BUSY);
			return XDP_DROP;
		}
		if (err)
			xr_count(XR_ST_STATE_FULL);
	}
	xr_count(XR_ST_SEGMENTS);
done:
	if (held)
		flow_unlock(st);
	return r;
}

/* Answer a frame that the guard passed: XDP_TX with our reply, XDP_DROP,
 * or XDP_PASS for anything that is not TCP to a served port. */
static __always_inline int xr_respond(struct xdp_md *ctx)
{
	const struct xr_config *cfg;
	const struct xr_ctl *ctl;
	struct seg *s;
	__u32 zero = 0, slot;
	int r;

	ctl = bpf_map_lookup_elem(&xr_ctl, &zero);
	slot = ctl ? ctl->active & 1 : 0;
	cfg = bpf_map_lookup_elem(&xr_cfg, &slot);
	if (!cfg)
		return XDP_PASS;
	s = bpf_map_lookup_elem(&xr_seg, &zero);
	if (!s)
		return XDP_PASS;
	__builtin_memset(s, 0, sizeof(*s));
	r = parse_seg(ctx, cfg, s);
	if (r == P_PASS)
		return XDP_PASS;
	if (r == P_DROP) {
		xr_count(XR_ST_BAD_SEGMENT);
		return XDP_DROP;
	}
	if ((s->flags & (TH_SYN | TH_ACK | TH_RST | TH_FIN)) == TH_SYN)
		return syn(ctx, cfg, s);
	r = xr_segment(ctx, cfg, slot, s);
	barrier_var(r);	/* a global function's result is unknown */
	return r == XDP_TX ? XDP_TX : XDP_DROP;
}

#endif /* ML_XDPRESP_BPF_H */
