// SPDX-License-Identifier: GPL-2.0
/*
 * synflood.bpf.c - the two programs of tools/synflood (bench only).
 *
 * syn_gen: run by BPF_PROG_TEST_RUN in live-frames mode on the client's
 *   veth, never attached. Each run turns the template frame (Ethernet, IPv4,
 *   TCP SYN with Linux's options: MSS, SACK-permitted, timestamps, window
 *   scale) into the next SYN of the flood: a new source port and source
 *   address from a counter, a new sequence number and timestamp, both
 *   checksums computed again, and returns XDP_TX. In live mode the kernel
 *   turns XDP_TX into a transmit on the veth, so the frame arrives at its peer
 *   as a native XDP frame. The frame's page comes back with whatever was last
 *   written into it (by the server's XDP_TX too: its SYN-ACK), so every run
 *   first copies the whole template (cfg.frame) over it.
 *
 * syn_sink: attached (native) to the same veth. Counts and drops what
 *   comes back from cfg.dport to the flood's source addresses (SYN-ACKs and
 *   anything else apart); passes everything else. It is
 *   also what lets the peer's native XDP_TX land on this veth.
 *
 * pass: passes everything. tools/bench.py attaches it (bpftool) to the
 *   client's veth for the session cells: the XDP responder's native XDP_TX
 *   needs a program on the peer, and every server then meets the same
 *   client side (NAPI on the client's veth).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "synflood.h"

char LICENSE[] SEC("license") = "GPL";

const volatile struct synflood_cfg cfg;

struct synflood_counts counts;
__u64 next_ns;		/* paced: when the next SYN may go */

static __always_inline __u32 fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	return (s & 0xffff) + (s >> 16);
}

/* Sum of n 16-bit words (n even, p 2-aligned, inside the frame). */
static __always_inline __u32 sum16(const __u16 *p, int n)
{
	__u32 s = 0;

	for (int i = 0; i < n; i++)
		s += p[i];
	return s;
}

SEC("xdp")
int syn_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *th = (void *)(ip + 1);
	__u32 *opt = (void *)(th + 1);
	__u64 n, t;
	__u32 s;

	if (data + SYNFLOOD_FRAME_LEN > end)
		return XDP_ABORTED;
	/* Pacing: a live-frames call costs milliseconds to set up and tear
	 * down, so the controller makes few long ones and the pace is kept
	 * here, frame by frame; a run ahead of it sends nothing. */
	if (cfg.interval_ns) {
		t = bpf_ktime_get_ns();
		if (t < next_ns) {
			__sync_fetch_and_add(&counts.held, 1);
			return XDP_DROP;
		}
		next_ns += cfg.interval_ns;
		if (next_ns + SYNFLOOD_SLACK_NS < t)
			next_ns = t - SYNFLOOD_SLACK_NS;
	}
	n = __sync_fetch_and_add(&counts.sent, 1);
	/* Volatile loads, word by word: cfg is zero in the object file, and a
	 * plain memcpy from it is folded into stores of zeros. */
	for (int i = 0; i < SYNFLOOD_FRAME_LEN / 2; i++)
		((__u16 *)data)[i] = ((const volatile __u16 *)cfg.frame)[i];
	/* n walks the source ports first, then the addresses of the prefix. */
	th->source = bpf_htons(cfg.sport_lo + n % cfg.nports);
	ip->saddr = bpf_htonl(cfg.saddr + (__u32)(n / cfg.nports) % cfg.naddrs);
	th->seq = bpf_htonl((__u32)(n * 2654435761u));
	opt[SYNFLOOD_TS_OFF / 4] = bpf_htonl((__u32)n);	/* TSval */
	ip->id = bpf_htons((__u16)n);
	ip->check = 0;
	ip->check = ~fold(sum16((__u16 *)ip, 10)) & 0xffff;
	th->check = 0;
	s = sum16((__u16 *)&ip->saddr, 4) + bpf_htons(IPPROTO_TCP) +
	    bpf_htons(sizeof(*th) + SYNFLOOD_OPT_LEN) +
	    sum16((__u16 *)th, (sizeof(*th) + SYNFLOOD_OPT_LEN) / 2);
	th->check = ~fold(s) & 0xffff;
	return XDP_TX;
}

SEC("xdp")
int syn_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *th;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->ihl != 5 || ip->protocol != IPPROTO_TCP)
		return XDP_PASS;
	th = (void *)(ip + 1);
	if ((void *)(th + 1) > end || th->source != bpf_htons(cfg.dport) ||
	    bpf_ntohl(ip->daddr) - cfg.saddr >= cfg.naddrs)
		return XDP_PASS;	/* not to one of the flood's addresses */
	if (th->syn && th->ack && !th->rst && !th->fin) {
		__sync_fetch_and_add(&counts.synack, 1);
		return XDP_DROP;
	}
	__sync_fetch_and_add(&counts.other, 1);
	return XDP_DROP;
}

SEC("xdp")
int pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
