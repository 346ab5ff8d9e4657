// SPDX-License-Identifier: GPL-2.0
/*
 * xdpdrop.bpf.c - test only: loss on the client's side of a veth, for
 * tests/e2e/t_xdploss.py. Drops the first `count` TCP segments from port 25
 * whose payload starts with the four octets `prefix` (network order as
 * they appear; 0: any segment with FIN set), counts what it dropped, and
 * passes everything else. On the client's veth it also gives native XDP_TX
 * on the server's side a program to arrive at.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

struct drop_cfg {
	__u32 prefix;		/* first four payload octets to match; 0: FIN */
	__u32 count;		/* segments still to drop */
	__u32 dropped;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct drop_cfg);
} drop_cfg SEC(".maps");

SEC("xdp")
int xdp_drop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *th;
	struct drop_cfg *c;
	__u32 zero = 0, doff, word;
	__u8 *p;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->ihl != 5 || ip->protocol != IPPROTO_TCP)
		return XDP_PASS;
	th = (void *)(ip + 1);
	if ((void *)(th + 1) > end || th->source != bpf_htons(25))
		return XDP_PASS;
	c = bpf_map_lookup_elem(&drop_cfg, &zero);
	if (!c || !c->count)
		return XDP_PASS;
	if (c->prefix == 0) {
		if (!th->fin)
			return XDP_PASS;
	} else {
		doff = th->doff * 4;
		if (doff < 20 || doff > 60)
			return XDP_PASS;
		p = (void *)th + doff;
		if ((void *)(p + 4) > end)
			return XDP_PASS;
		word = (__u32)p[0] | (__u32)p[1] << 8 | (__u32)p[2] << 16 | (__u32)p[3] << 24;
		if (word != c->prefix)
			return XDP_PASS;
	}
	c->count--;
	c->dropped++;
	return XDP_DROP;
}
