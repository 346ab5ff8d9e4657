// SPDX-License-Identifier: GPL-2.0
/*
 * xdpresp_table - BPF_PROG_TEST_RUN table tests of the XDP responder
 * (bpf/xdpresp.bpf.h), run as it runs: inside the guard's program
 * (bpf/guard.bpf.c, ml_guard_xr, no rate limit). Crafted frames in,
 * verdict, frame out, counters and flow state. Every frame the program sends is checked in full: addresses,
 * ports and MACs swapped, IPv4 and TCP checksums, sequence and
 * acknowledgement numbers, flags, options, payload. A client is played by
 * this file: it keeps its own sequence numbers and what it received, as a
 * TCP would. Needs root (BPF). Prints ok/not ok lines.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "config.h"
#include "replies.h"
#include "proto.h"
#include "xdpresp.h"
#include "guard.h"
#include "guard.skel.h"

#define XDP_DROP_ 1
#define XDP_PASS_ 2
#define XDP_TX_   3

enum { F_FIN = 1, F_SYN = 2, F_RST = 4, F_PSH = 8, F_ACK = 16 };

static struct guard_bpf *skel;
static struct ml_config mlc;	/* the replies as the controller renders them */
static int failures, passes;
static const __u64 key[2] = { 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL };

static void result(int ok, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		printf("ok - xdpresp: %s\n", name);
		passes++;
		return;
	}
	printf("not ok - xdpresp: %s: ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	failures++;
}

/* ---- the cookie, computed here independently ----------------------------- */

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do { \
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); } while (0)

static uint32_t mac_of(const struct xr_flow *f)
{
	uint64_t v0 = key[0] ^ 0x736f6d6570736575ULL, v1 = key[1] ^ 0x646f72616e646f6dULL;
	uint64_t v2 = key[0] ^ 0x6c7967656e657261ULL, v3 = key[1] ^ 0x7465646279746573ULL;
	uint64_t m[5];
	int i;

	m[0] = (uint64_t)f->laddr[0] << 32 | f->laddr[1];
	m[1] = (uint64_t)f->laddr[2] << 32 | f->laddr[3];
	m[2] = (uint64_t)f->raddr[0] << 32 | f->raddr[1];
	m[3] = (uint64_t)f->raddr[2] << 32 | f->raddr[3];
	m[4] = (uint64_t)36 << 56 | (uint64_t)f->lport << 16 | f->rport;
	for (i = 0; i < 5; i++) {
		v3 ^= m[i];
		SIPROUND;
		SIPROUND;
		v0 ^= m[i];
	}
	v2 ^= 0xff;
	for (i = 0; i < 4; i++)
		SIPROUND;
	return (uint32_t)(v0 ^ v1 ^ v2 ^ v3);
}

/* ---- a client ------------------------------------------------------------ */

struct client {
	int v6;
	char src[64], dst[64];
	uint16_t sport, dport;
	uint32_t seq;		/* next sequence number to send */
	uint32_t ack;		/* next octet of the server's we expect */
	uint16_t mss;		/* MSS option in the SYN, 0: none */
	int ts;			/* send timestamps */
	uint16_t win;
	struct xr_flow key;
	char got[65536];	/* the server's octets, in order */
	size_t ngot;
	int fin;		/* the server's FIN arrived */
};

static void client_init(struct client *c, int v6, uint16_t sport)
{
	memset(c, 0, sizeof(*c));
	c->v6 = v6;
	snprintf(c->src, sizeof(c->src), "%s", v6 ? "fd00::2" : "10.0.0.2");
	snprintf(c->dst, sizeof(c->dst), "%s", v6 ? "fd00::1" : "10.0.0.1");
	c->sport = sport;
	c->dport = 25;
	c->seq = 1000;
	c->mss = 1460;
	c->ts = 1;
	c->win = 64240;
	if (v6) {
		inet_pton(AF_INET6, c->dst, c->key.laddr);
		inet_pton(AF_INET6, c->src, c->key.raddr);
	} else {
		c->key.laddr[2] = c->key.raddr[2] = htonl(0xffff);
		inet_pton(AF_INET, c->dst, &c->key.laddr[3]);
		inet_pton(AF_INET, c->src, &c->key.raddr[3]);
	}
	c->key.lport = htons(c->dport);
	c->key.rport = htons(sport);
}

struct frame {
	unsigned char b[4096];
	unsigned int len;
};

static uint32_t sum16(const void *p, size_t n, uint32_t s)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		s += (uint32_t)b[i] << 8 | b[i + 1];
	if (n & 1)
		s += (uint32_t)b[n - 1] << 8;
	return s;
}

static uint16_t fold16(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

/* TCP checksum of a segment (header and payload at tcp, n octets). */
static uint16_t tcp_csum(int v6, const void *saddr, const void *daddr, const void *tcp, size_t n)
{
	uint32_t s = 0;

	s = sum16(saddr, v6 ? 16 : 4, s);
	s = sum16(daddr, v6 ? 16 : 4, s);
	s += IPPROTO_TCP + (uint32_t)n;
	s = sum16(tcp, n, s);
	return (uint16_t)~fold16(s);
}

/* A frame from the client: flags, payload; seq/ack from c (ack only with
 * F_ACK); the frame's own options: MSS (SYN) and timestamps. */
static struct frame make(const struct client *c, int flags, const void *data, size_t n)
{
	struct frame f;
	struct ethhdr *e = (void *)f.b;
	unsigned char *t;
	struct tcphdr *th;
	size_t l3 = c->v6 ? 40 : 20, opt = 0;

	memset(&f, 0, sizeof(f));
	memcpy(e->h_dest, "\x02\0\0\0\0\x01", 6);
	memcpy(e->h_source, "\x02\0\0\0\0\x02", 6);
	e->h_proto = htons(c->v6 ? ETH_P_IPV6 : ETH_P_IP);
	t = f.b + 14 + l3;
	th = (void *)t;
	if ((flags & F_SYN) && c->mss) {
		t[20] = 2, t[21] = 4, t[22] = c->mss >> 8, t[23] = c->mss & 0xff;
		opt = 4;
	}
	if (c->ts) {
		unsigned char *o = t + 20 + opt;
		uint32_t tv = htonl(77777), te = htonl(0);

		o[0] = 1, o[1] = 1, o[2] = 8, o[3] = 10;
		memcpy(o + 4, &tv, 4);
		memcpy(o + 8, &te, 4);
		opt += 12;
	}
	th->source = htons(c->sport);
	th->dest = htons(c->dport);
	th->seq = htonl(c->seq);
	th->ack_seq = (flags & F_ACK) ? htonl(c->ack) : 0;
	t[12] = (uint8_t)((20 + opt) / 4) << 4;
	t[13] = (uint8_t)flags;
	th->window = htons(c->win);
	memcpy(t + 20 + opt, data, n);
	if (c->v6) {
		struct ipv6hdr *ip6 = (void *)(f.b + 14);

		ip6->version = 6;
		ip6->nexthdr = IPPROTO_TCP;
		ip6->hop_limit = 64;
		ip6->payload_len = htons(20 + opt + n);
		inet_pton(AF_INET6, c->src, &ip6->saddr);
		inet_pton(AF_INET6, c->dst, &ip6->daddr);
		th->check = htons(tcp_csum(1, &ip6->saddr, &ip6->daddr, t, 20 + opt + n));
	} else {
		struct iphdr *ip = (void *)(f.b + 14);

		ip->version = 4;
		ip->ihl = 5;
		ip->ttl = 64;
		ip->protocol = IPPROTO_TCP;
		ip->tot_len = htons(20 + 20 + opt + n);
		inet_pton(AF_INET, c->src, &ip->saddr);
		inet_pton(AF_INET, c->dst, &ip->daddr);
		ip->check = htons((uint16_t)~fold16(sum16(ip, 20, 0)));
		th->check = htons(tcp_csum(0, &ip->saddr, &ip->daddr, t, 20 + opt + n));
	}
	f.len = 14 + l3 + 20 + opt + n;
	return f;
}

/* What came back, parsed and checked. */
struct reply_seg {
	int verdict;
	int flags;
	uint32_t seq, ack;
	uint16_t win, mss;
	int has_ts;
	uint32_t tsval, tsecr;
	const unsigned char *data;
	size_t n;
	char err[160];		/* a malformed frame: why */
	struct frame out;
};

static void check_out(const struct client *c, const struct frame *in, struct reply_seg *r)
{
	const unsigned char *b = r->out.b, *t;
	const struct tcphdr *th;
	size_t l3 = c->v6 ? 40 : 20, tl, l4;
	unsigned char want_src[16], want_dst[16];

	if (r->out.len < 14 + l3 + 20) {
		snprintf(r->err, sizeof(r->err), "frame of %u octets", r->out.len);
		return;
	}
	if (memcmp(b, in->b + 6, 6) || memcmp(b + 6, in->b, 6))
		snprintf(r->err, sizeof(r->err), "MAC addresses not swapped");
	inet_pton(c->v6 ? AF_INET6 : AF_INET, c->dst, want_src);
	inet_pton(c->v6 ? AF_INET6 : AF_INET, c->src, want_dst);
	if (c->v6) {
		const struct ipv6hdr *ip6 = (void *)(b + 14);

		l4 = ntohs(ip6->payload_len);
		if (ip6->version != 6 || ip6->nexthdr != IPPROTO_TCP ||
		    memcmp(&ip6->saddr, want_src, 16) || memcmp(&ip6->daddr, want_dst, 16))
			snprintf(r->err, sizeof(r->err), "bad IPv6 header");
	} else {
		const struct iphdr *ip = (void *)(b + 14);

		l4 = ntohs(ip->tot_len) - 20;
		if (ip->version != 4 || ip->ihl != 5 || ip->protocol != IPPROTO_TCP ||
		    memcmp(&ip->saddr, want_src, 4) || memcmp(&ip->daddr, want_dst, 4))
			snprintf(r->err, sizeof(r->err), "bad IPv4 header");
		if (fold16(sum16(ip, 20, 0)) != 0xffff)
			snprintf(r->err, sizeof(r->err), "bad IPv4 checksum");
	}
	if (14 + l3 + l4 != r->out.len) {
		snprintf(r->err, sizeof(r->err), "IP length %zu in a frame of %u", l4, r->out.len);
		return;
	}
	t = b + 14 + l3;
	th = (void *)t;
	{
		uint32_t s = 0;

		s = sum16(want_src, c->v6 ? 16 : 4, s);
		s = sum16(want_dst, c->v6 ? 16 : 4, s);
		s += IPPROTO_TCP + (uint32_t)l4;
		s = sum16(t, l4, s);
		if (fold16(s) != 0xffff)
			snprintf(r->err, sizeof(r->err), "bad TCP checksum");
	}
	if (ntohs(th->source) != c->dport || ntohs(th->dest) != c->sport)
		snprintf(r->err, sizeof(r->err), "ports not swapped");
	tl = (t[12] >> 4) * 4;
	if (tl < 20 || tl > l4) {
		snprintf(r->err, sizeof(r->err), "TCP header length %zu", tl);
		return;
	}
	r->flags = t[13];
	r->seq = ntohl(th->seq);
	r->ack = ntohl(th->ack_seq);
	r->win = ntohs(th->window);
	for (size_t i = 20; i < tl;) {
		unsigned k = t[i];

		if (k == 0)
			break;
		if (k == 1) {
			i++;
			continue;
		}
		if (i + 1 >= tl || t[i + 1] < 2)
			break;
		if (k == 2 && t[i + 1] == 4)
			r->mss = (uint16_t)(t[i + 2] << 8 | t[i + 3]);
		if (k == 8 && t[i + 1] == 10) {
			r->has_ts = 1;
			r->tsval = ntohl(*(uint32_t *)(t + i + 2));
			r->tsecr = ntohl(*(uint32_t *)(t + i + 6));
		}
		i += t[i + 1];
	}
	r->data = t + tl;
	r->n = l4 - tl;
}

/* Send one frame; the reply is checked and, if it is TX and well-formed,
 * taken in by the client as its TCP would (in order only). */
static struct reply_seg send_seg(struct client *c, int flags, const void *data, size_t n)
{
	struct frame in = make(c, flags, data, n);
	struct reply_seg r;
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in.b, .data_size_in = in.len,
		    .data_out = r.out.b, .data_size_out = sizeof(r.out.b), .repeat = 1);

	memset(&r, 0, sizeof(r));
	if (bpf_prog_test_run_opts(bpf_program__fd(skel->progs.ml_guard_xr), &o)) {
		snprintf(r.err, sizeof(r.err), "test run: %s", strerror(errno));
		return r;
	}
	r.verdict = o.retval;
	r.out.len = o.data_size_out;
	if (r.verdict != XDP_TX_)
		return r;
	check_out(c, &in, &r);
	if (r.err[0])
		return r;
	if (r.flags & F_SYN) {
		c->ack = r.seq + 1;
	} else if (r.seq == c->ack) {
		memcpy(c->got + c->ngot, r.data, r.n);
		c->ngot += r.n;
		c->ack += r.n;
		if (r.flags & F_FIN) {
			c->fin = 1;
			c->ack++;
		}
	}
	return r;
}

/* ---- helpers over the maps ----------------------------------------------- */

static void counters(struct xr_stats *x, struct ml_stats *m)
{
	int ncpu = libbpf_num_possible_cpus(), i, k;
	__u32 zero = 0;
	struct xr_stats *px = calloc(ncpu, sizeof(*px));
	struct ml_stats *pm = calloc(ncpu, sizeof(*pm));

	memset(x, 0, sizeof(*x));
	memset(m, 0, sizeof(*m));
	if (px && !bpf_map_lookup_elem(bpf_map__fd(skel->maps.xr_stats), &zero, px))
		for (i = 0; i < ncpu; i++)
			for (k = 0; k < XR_ST__MAX; k++)
				((__u64 *)x)[k] += ((__u64 *)&px[i])[k];
	if (pm && !bpf_map_lookup_elem(bpf_map__fd(skel->maps.xr_dialog), &zero, pm))
		for (i = 0; i < ncpu; i++)
			for (k = 0; k < ML_ST__MAX; k++)
				((__u64 *)m)[k] += ((__u64 *)&pm[i])[k];
	free(px);
	free(pm);
}

static __u64 xr(int k)
{
	struct xr_stats x;
	struct ml_stats m;

	counters(&x, &m);
	return ((__u64 *)&x)[k];
}

static __u64 ml(int k)
{
	struct xr_stats x;
	struct ml_stats m;

	counters(&x, &m);
	return ((__u64 *)&m)[k];
}

static int has_state(const struct client *c, struct xr_state *out)
{
	struct xr_state st;

	if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.xr_flows), &c->key, &st))
		return 0;
	if (out)
		*out = st;
	return 1;
}

/* The session records (xr_events) read so far. */
static struct ring_buffer *ring;
static struct xr_log_event events[64];
static int nevents;

static int on_event(void *ctx, void *data, size_t len)
{
	(void)ctx;
	if (len >= sizeof(struct xr_log_event) && nevents < 64)
		events[nevents++] = *(const struct xr_log_event *)data;
	return 0;
}

/* The newest record of c's flow after draining the ring, or NULL. */
static const struct xr_log_event *record_of(const struct client *c)
{
	int i;

	ring_buffer__consume(ring);
	for (i = nevents - 1; i >= 0; i--)
		if (!memcmp(&events[i].flow, &c->key, sizeof(c->key)))
			return &events[i];
	return NULL;
}

static int records_of(const struct client *c)
{
	int i, n = 0;

	ring_buffer__consume(ring);
	for (i = 0; i < nevents; i++)
		n += !memcmp(&events[i].flow, &c->key, sizeof(c->key));
	return n;
}

static const char *text(unsigned op)
{
	return mlc.replies[op].text;
}

static int configure(unsigned dialect, __u32 slot)
{
	struct ml_opts o;
	struct xr_config *cfg = calloc(1, sizeof(*cfg));
	struct xr_ctl ctl = { .active = slot };
	__u32 zero = 0, op;
	int e;

	if (!cfg)
		return -ENOMEM;
	memset(&o, 0, sizeof(o));
	/* 16 octets: replies of odd and even lengths, so that some land at odd
	 * payload offsets and the checksum's byte swap is exercised */
	snprintf(o.hostname, sizeof(o.hostname), "mx.tests.example");
	o.dialect = dialect;
	ml_render(&mlc, &o);
	cfg->dialect = dialect;
	cfg->key[0] = key[0];
	cfg->key[1] = key[1];
	cfg->ports[25 >> 6] |= 1ULL << (25 & 63);
	cfg->ports[2525 >> 6] |= 1ULL << (2525 & 63);
	for (op = 0; op < ML_OP__MAX; op++)
		xr_reply_fill(&cfg->replies[op], mlc.replies[op].text, mlc.replies[op].len);
	e = bpf_map_update_elem(bpf_map__fd(skel->maps.xr_cfg), &slot, cfg, 0);
	if (!e)
		e = bpf_map_update_elem(bpf_map__fd(skel->maps.xr_ctl), &zero, &ctl, 0);
	free(cfg);
	/* The guard in front: the same ports, no rate limit, responding. */
	if (!e) {
		struct gd_config *g = calloc(1, sizeof(*g));
		struct gd_ctl gc = { .active = slot };

		if (!g)
			return -ENOMEM;
		g->ports[25 >> 6] |= 1ULL << (25 & 63);
		g->ports[2525 >> 6] |= 1ULL << (2525 & 63);
		e = bpf_map_update_elem(bpf_map__fd(skel->maps.guard_cfg), &slot, g, 0);
		if (!e)
			e = bpf_map_update_elem(bpf_map__fd(skel->maps.guard_ctl), &zero, &gc, 0);
		free(g);
	}
	return e;
}

/* Handshake and greeting; returns 0 if both went as they must. */
static int open_session(struct client *c)
{
	struct reply_seg r = send_seg(c, F_SYN, NULL, 0);

	if (r.verdict != XDP_TX_ || r.err[0] || r.flags != (F_SYN | F_ACK))
		return -1;
	c->seq++;
	r = send_seg(c, F_ACK, NULL, 0);
	if (r.verdict != XDP_TX_ || r.err[0])
		return -1;
	return c->ngot == strlen(text(ML_OP_GREET)) &&
	       !memcmp(c->got, text(ML_OP_GREET), c->ngot) ? 0 : -1;
}

/* Send a command as one segment; the client's seq advances. */
static struct reply_seg cmd(struct client *c, const char *line)
{
	size_t n = strlen(line);
	struct reply_seg r = send_seg(c, F_ACK | F_PSH, line, n);

	c->seq += n;
	return r;
}

/* Does c->got end with want (the replies since mark)? */
static int got_since(const struct client *c, size_t mark, const char *want)
{
	return c->ngot - mark == strlen(want) && !memcmp(c->got + mark, want, strlen(want));
}

static char catbuf[8192];
static const char *cat(unsigned a, unsigned b)
{
	snprintf(catbuf, sizeof(catbuf), "%s%s", text(a), text(b));
	return catbuf;
}

/* ---- the cases ----------------------------------------------------------- */

static int run_raw(const struct frame *in, struct frame *out)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in->b, .data_size_in = in->len,
		    .data_out = out->b, .data_size_out = sizeof(out->b), .repeat = 1);

	if (bpf_prog_test_run_opts(bpf_program__fd(skel->progs.ml_guard_xr), &o))
		return -errno;
	out->len = o.data_size_out;
	return o.retval;
}

static void passes_untouched(void)
{
	struct client c;
	struct frame f, out;
	int v;

	client_init(&c, 0, 40001);
	f = make(&c, F_SYN, NULL, 0);
	f.b[12] = 0x08, f.b[13] = 0x06;	/* ARP */
	v = run_raw(&f, &out);
	result(v == XDP_PASS_ && out.len == f.len && !memcmp(out.b, f.b, f.len),
	       "ARP passes untouched", "verdict %d", v);

	f = make(&c, F_SYN, NULL, 0);
	f.b[14 + 9] = IPPROTO_UDP;
	v = run_raw(&f, &out);
	result(v == XDP_PASS_, "UDP passes", "verdict %d", v);

	c.dport = 80;
	f = make(&c, F_SYN, NULL, 0);
	v = run_raw(&f, &out);
	result(v == XDP_PASS_ && !memcmp(out.b, f.b, f.len), "TCP to another port passes",
	       "verdict %d", v);
	c.dport = 25;

	f = make(&c, F_SYN, NULL, 0);
	f.b[14 + 6] = 0x20;	/* MF */
	v = run_raw(&f, &out);
	result(v == XDP_PASS_, "an IPv4 fragment passes", "verdict %d", v);

	{	/* 802.1Q tag in front of IPv4 */
		struct frame g = make(&c, F_SYN, NULL, 0);

		memmove(g.b + 16, g.b + 12, g.len - 12);
		g.b[12] = 0x81, g.b[13] = 0x00, g.b[14] = 0, g.b[15] = 25;
		g.len += 4;
		v = run_raw(&g, &out);
		result(v == XDP_PASS_, "a VLAN-tagged frame passes", "verdict %d", v);
	}

	client_init(&c, 1, 40002);
	f = make(&c, F_SYN, NULL, 0);
	f.b[14 + 6] = 0;	/* hop-by-hop header first */
	v = run_raw(&f, &out);
	result(v == XDP_PASS_, "IPv6 with an extension header passes", "verdict %d", v);
}

static void malformed(void)
{
	struct client c;
	struct frame f, out;
	__u64 before = xr(XR_ST_BAD_SEGMENT);
	int v;

	client_init(&c, 0, 40010);
	f = make(&c, F_SYN, NULL, 0);
	f.len = 14 + 20 + 10;	/* TCP header cut short */
	v = run_raw(&f, &out);
	result(v == XDP_PASS_, "a truncated TCP header passes (cannot be judged)", "verdict %d", v);

	f = make(&c, F_SYN, NULL, 0);
	f.b[14 + 2] = 0x10;	/* IP total length 4096: past the frame */
	v = run_raw(&f, &out);
	result(v == XDP_DROP_ && xr(XR_ST_BAD_SEGMENT) == before + 1,
	       "an IP length past the frame is dropped and counted", "verdict %d", v);

	f = make(&c, F_SYN, NULL, 0);
	f.b[14 + 20 + 12] = 0x40;	/* data offset 4 words */
	v = run_raw(&f, &out);
	result(v == XDP_DROP_ && xr(XR_ST_BAD_SEGMENT) == before + 2,
	       "a TCP data offset under 5 is dropped", "verdict %d", v);

	f = make(&c, F_SYN, NULL, 0);
	f.b[14 + 20 + 12] = 0xf0;	/* data offset 60 octets: past the segment */
	v = run_raw(&f, &out);
	result(v == XDP_DROP_ && xr(XR_ST_BAD_SEGMENT) == before + 3,
	       "a TCP data offset past the segment is dropped", "verdict %d", v);

	{
		struct reply_seg r;

		c.ts = 0;
		c.mss = 0;
		r = send_seg(&c, F_SYN, NULL, 0);
		result(r.verdict == XDP_TX_ && !r.err[0] && r.mss == 1460 && !r.has_ts,
		       "a SYN without options gets MSS and no timestamps", "%d %s", r.verdict, r.err);
	}
}

static void handshake(int v6)
{
	struct client c;
	struct reply_seg r;
	struct xr_state st;
	char name[120];
	uint32_t isn, mac;
	__u64 syns = xr(XR_ST_SYN_ACKS), greets = xr(XR_ST_GREETINGS);
	__u64 admitted = ml(ML_ST_ADMITTED);

	client_init(&c, v6, v6 ? 41000 : 40000);
	r = send_seg(&c, F_SYN, NULL, 0);
	snprintf(name, sizeof(name), "%s: SYN gets a SYN-ACK", v6 ? "IPv6" : "IPv4");
	result(r.verdict == XDP_TX_ && !r.err[0] && r.flags == (F_SYN | F_ACK) &&
	       r.ack == c.seq + 1 && xr(XR_ST_SYN_ACKS) == syns + 1, name,
	       "verdict %d flags %#x ack %u %s", r.verdict, r.flags, r.ack, r.err);
	isn = r.seq;
	mac = mac_of(&c.key);
	snprintf(name, sizeof(name), "%s: the ISN is the cookie (mac, MSS index 3, zero count)",
		 v6 ? "IPv6" : "IPv4");
	result((isn >> 16) == (mac >> 16) && ((isn >> 14) & 3) == 3 && (isn & 0x3fff) == 0,
	       name, "isn %#x mac %#x", isn, mac);
	snprintf(name, sizeof(name), "%s: SYN-ACK options: MSS, timestamps echoed", v6 ? "IPv6" : "IPv4");
	result(r.mss == (v6 ? 1440 : 1460) && r.has_ts && r.tsecr == 77777, name,
	       "mss %u ts %d tsecr %u", r.mss, r.has_ts, r.tsecr);
	snprintf(name, sizeof(name), "%s: a SYN stores nothing", v6 ? "IPv6" : "IPv4");
	result(!has_state(&c, NULL), name, "state stored");
	r = send_seg(&c, F_SYN, NULL, 0);
	snprintf(name, sizeof(name), "%s: a repeated SYN gets the same cookie", v6 ? "IPv6" : "IPv4");
	result(r.verdict == XDP_TX_ && r.seq == isn, name, "seq %#x, first %#x", r.seq, isn);

	c.seq++;
	r = send_seg(&c, F_ACK, NULL, 0);
	snprintf(name, sizeof(name), "%s: the completing ACK gets the greeting", v6 ? "IPv6" : "IPv4");
	result(r.verdict == XDP_TX_ && !r.err[0] && r.seq == isn + 1 && r.ack == c.seq &&
	       (r.flags & F_ACK) && !(r.flags & F_FIN) && got_since(&c, 0, text(ML_OP_GREET)),
	       name, "verdict %d seq %u ack %u n %zu %s", r.verdict, r.seq, r.ack, r.n, r.err);
	snprintf(name, sizeof(name), "%s: the greeting is counted, the flow kept", v6 ? "IPv6" : "IPv4");
	result(xr(XR_ST_GREETINGS) == greets + 1 && ml(ML_ST_ADMITTED) == admitted + 1 &&
	       has_state(&c, &st) && st.nops == 1 && st.sent == strlen(text(ML_OP_GREET)), name,
	       "greetings %llu", (unsigned long long)xr(XR_ST_GREETINGS));
	r = send_seg(&c, F_ACK, NULL, 0);
	snprintf(name, sizeof(name), "%s: a bare ACK of the greeting is not answered; the "
		 "session's state stays, its queue empty", v6 ? "IPv6" : "IPv4");
	result(r.verdict == XDP_DROP_ && has_state(&c, &st) && st.nops == 0, name, "verdict %d",
	       r.verdict);

	{
		size_t mark = c.ngot;

		r = cmd(&c, "EHLO client.example\r\n");
		snprintf(name, sizeof(name), "%s: EHLO is answered", v6 ? "IPv6" : "IPv4");
		result(r.verdict == XDP_TX_ && !r.err[0] && r.ack == c.seq &&
		       got_since(&c, mark, text(ML_OP_EHLO)) && (r.flags & F_PSH), name,
		       "verdict %d ack %u want %u got %.*s %s", r.verdict, r.ack, c.seq,
		       (int)(c.ngot - mark), c.got + mark, r.err);
		mark = c.ngot;
		r = cmd(&c, "QUIT\r\n");
		snprintf(name, sizeof(name), "%s: QUIT gets 221 and FIN", v6 ? "IPv6" : "IPv4");
		result(r.verdict == XDP_TX_ && got_since(&c, mark, text(ML_OP_QUIT)) && c.fin, name,
		       "verdict %d flags %#x", r.verdict, r.flags);
		r = send_seg(&c, F_ACK | F_FIN, NULL, 0);
		c.seq++;
		snprintf(name, sizeof(name), "%s: the client's FIN is acknowledged, no second FIN",
			 v6 ? "IPv6" : "IPv4");
		result(r.verdict == XDP_TX_ && r.flags == F_ACK && r.ack == c.seq && r.n == 0 &&
		       !has_state(&c, NULL), name, "verdict %d flags %#x ack %u want %u state %d",
		       r.verdict, r.flags, r.ack, c.seq, has_state(&c, NULL));
		{
			const struct xr_log_event *le = record_of(&c);

			snprintf(name, sizeof(name), "%s: one session record: 2 commands, 3 replies, "
				 "reason quit", v6 ? "IPv6" : "IPv4");
			result(le && records_of(&c) == 1 && le->reason == ML_ST_CLOSE_QUIT &&
			       le->sum.ncmds == 2 && le->sum.nreplies == 3 && le->dur_ns > 0, name,
			       "%s: reason %u ncmds %u nreplies %u", le ? "record" : "no record",
			       le ? le->reason : 0, le ? le->sum.ncmds : 0, le ? le->sum.nreplies : 0);
		}
	}
}

static void bad_cookie(void)
{
	struct client c;
	struct reply_seg r;
	__u64 before = xr(XR_ST_BAD_COOKIE), bad = xr(XR_ST_BAD_SEGMENT);
	size_t glen = strlen(text(ML_OP_GREET));
	char want[1024];

	client_init(&c, 0, 40100);
	send_seg(&c, F_SYN, NULL, 0);
	c.seq++;
	c.ack ^= 1u << 20;
	r = send_seg(&c, F_ACK, NULL, 0);
	result(r.verdict == XDP_DROP_ && xr(XR_ST_BAD_COOKIE) == before + 1 && !has_state(&c, NULL),
	       "an ACK with a wrong cookie is dropped and counted", "verdict %d", r.verdict);
	c.ack ^= 1u << 20;
	r = send_seg(&c, F_ACK, NULL, 0);
	c.ack += 5;
	r = send_seg(&c, F_ACK, NULL, 0);
	result(r.verdict == XDP_DROP_ && xr(XR_ST_BAD_SEGMENT) == bad + 1,
	       "an ACK past what was sent is dropped and counted", "verdict %d", r.verdict);

	/* No state, and an ack 10 octets into the greeting (its state was
	 * evicted): the rest of the greeting, then the reply. */
	client_init(&c, 0, 40101);
	send_seg(&c, F_SYN, NULL, 0);
	c.seq++;
	c.ack += 10;
	r = cmd(&c, "NOOP\r\n");
	snprintf(want, sizeof(want), "%s%s", text(ML_OP_GREET) + 10, text(ML_OP_OK));
	result(r.verdict == XDP_TX_ && got_since(&c, 0, want) && glen > 10,
	       "no state, 10 octets into the greeting: its rest, then the reply",
	       "verdict %d got %.*s", r.verdict, (int)c.ngot, c.got);
}

static void dialogue(void)
{
	struct client c;
	struct reply_seg r;
	size_t mark;
	char want[4096];
	__u64 ehlo = ml(ML_ST_CMD_EHLO), noop;

	client_init(&c, 0, 40200);
	result(open_session(&c) == 0, "session opens", "greeting wrong");

	mark = c.ngot;
	r = cmd(&c, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
	snprintf(want, sizeof(want), "%s%s%s", text(ML_OP_OK), text(ML_OP_REJECT), text(ML_OP_NORCPT));
	result(r.verdict == XDP_TX_ && got_since(&c, mark, want) && r.ack == c.seq,
	       "three lines in one segment: three replies in order", "got %.*s",
	       (int)(c.ngot - mark), c.got + mark);

	mark = c.ngot;
	r = cmd(&c, "EH");
	result(r.verdict == XDP_TX_ && r.n == 0 && r.ack == c.seq && has_state(&c, NULL),
	       "half a line is acknowledged and kept", "verdict %d n %zu ack %u want %u",
	       r.verdict, r.n, r.ack, c.seq);
	r = cmd(&c, "LO x\r\n");
	result(r.verdict == XDP_TX_ && got_since(&c, mark, text(ML_OP_EHLO)) &&
	       ml(ML_ST_CMD_EHLO) == ehlo + 1, "its rest completes it: EHLO",
	       "got %.*s", (int)(c.ngot - mark), c.got + mark);

	/* The reply is lost: the client sends the same line again. */
	mark = c.ngot;
	{
		uint32_t seq0 = c.seq, ack0 = c.ack;

		noop = ml(ML_ST_CMD_NOOP);
		r = cmd(&c, "NOOP\r\n");
		c.ngot = mark;	/* lost */
		c.ack = ack0;
		c.seq = seq0;
		r = cmd(&c, "NOOP\r\n");
		result(r.verdict == XDP_TX_ && got_since(&c, mark, text(ML_OP_OK)) && r.ack == c.seq,
		       "a retransmitted line gets its reply again", "got %.*s",
		       (int)(c.ngot - mark), c.got + mark);
		result(ml(ML_ST_CMD_NOOP) == noop + 1, "a retransmitted line is counted once",
		       "cmd_noop %llu", (unsigned long long)ml(ML_ST_CMD_NOOP));
	}

	/* Out of order: a segment past a gap is only acknowledged. */
	{
		uint32_t seq0 = c.seq;
		__u64 ooo = xr(XR_ST_OUT_OF_ORDER);

		mark = c.ngot;
		c.seq += 100;
		r = send_seg(&c, F_ACK | F_PSH, "NOOP\r\n", 6);
		c.seq = seq0;
		result(r.verdict == XDP_TX_ && r.n == 0 && r.ack == seq0 &&
		       xr(XR_ST_OUT_OF_ORDER) == ooo + 1, "data past a gap: a duplicate ACK",
		       "verdict %d n %zu ack %u want %u", r.verdict, r.n, r.ack, seq0);
	}

	/* Pipelined before reading: the second reply follows the first. */
	{
		uint32_t ack0 = c.ack;

		mark = c.ngot;
		r = cmd(&c, "NOOP\r\n");
		c.ngot = mark;	/* not yet arrived */
		c.ack = ack0;
		r = cmd(&c, "RSET\r\n");
		result(r.verdict == XDP_TX_ && r.seq == ack0 + strlen(text(ML_OP_OK)) && r.n ==
		       strlen(text(ML_OP_OK)), "a second command before the first reply arrived: "
		       "its reply comes after the first", "seq %u want %zu n %zu", r.seq,
		       ack0 + strlen(text(ML_OP_OK)), r.n);
		/* The first reply was lost, the second arrived out of order:
		 * the client's duplicate ACK asks for both again. */
		c.ack = ack0;
		c.ngot = mark;
		r = send_seg(&c, F_ACK, NULL, 0);
		result(r.verdict == XDP_TX_ && got_since(&c, mark, cat(ML_OP_OK, ML_OP_OK)),
		       "a duplicate ACK gets the unacknowledged replies again", "verdict %d got %.*s",
		       r.verdict, (int)(c.ngot - mark), c.got + mark);
	}

	/* A long line: 500 when it ends. */
	{
		char line[700];

		memset(line, 'x', sizeof(line));
		memcpy(line, "NOOP ", 5);
		memcpy(line + sizeof(line) - 2, "\r\n", 2);
		mark = c.ngot;
		r = send_seg(&c, F_ACK | F_PSH, line, sizeof(line));
		c.seq += sizeof(line);
		result(r.verdict == XDP_TX_ && got_since(&c, mark, text(ML_OP_TOOLONG)),
		       "a line over 512 octets gets 500", "got %.*s", (int)(c.ngot - mark),
		       c.got + mark);
	}

	/* The client closes first. */
	{
		__u64 cl = ml(ML_ST_CLOSE_CLIENT);

		r = send_seg(&c, F_ACK | F_FIN, NULL, 0);
		c.seq++;
		result(r.verdict == XDP_TX_ && (r.flags & F_FIN) && r.ack == c.seq &&
		       ml(ML_ST_CLOSE_CLIENT) == cl + 1, "the client's FIN gets FIN-ACK",
		       "verdict %d flags %#x", r.verdict, r.flags);
		r = send_seg(&c, F_ACK, NULL, 0);
		result(r.verdict == XDP_DROP_ && !has_state(&c, NULL),
		       "the last ACK ends it: nothing kept", "verdict %d state %d", r.verdict,
		       has_state(&c, NULL));
		{
			const struct xr_log_event *le = record_of(&c);

			result(le && le->reason == ML_ST_CLOSE_CLIENT &&
			       le->sum.from_len == strlen("FROM:<a@example.org>") &&
			       !memcmp(le->sum.from, "FROM:<a@example.org>", le->sum.from_len) &&
			       le->sum.nrcpt == 1 && le->sum.rcpt_len == strlen("TO:<b@example.org>") &&
			       !memcmp(le->sum.rcpt, "TO:<b@example.org>", le->sum.rcpt_len),
			       "the session record has the envelope and reason client_closed",
			       "%s: reason %u from %.*s rcpt %.*s", le ? "record" : "no record",
			       le ? le->reason : 0, le ? (int)le->sum.from_len : 0,
			       le ? (const char *)le->sum.from : "", le ? (int)le->sum.rcpt_len : 0,
			       le ? (const char *)le->sum.rcpt : "");
		}
	}
}

static void early_talker_and_reset(void)
{
	struct client c;
	struct reply_seg r;
	__u64 resets = xr(XR_ST_RESETS);

	client_init(&c, 1, 41100);
	send_seg(&c, F_SYN, NULL, 0);
	c.seq++;
	r = cmd(&c, "HELO x\r\n");
	result(r.verdict == XDP_TX_ && got_since(&c, 0, cat(ML_OP_GREET, ML_OP_HELO)),
	       "IPv6: an early talker gets the greeting first, then its reply", "got %.*s",
	       (int)c.ngot, c.got);
	r = send_seg(&c, F_ACK | F_RST, NULL, 0);
	result(r.verdict == XDP_DROP_ && !has_state(&c, NULL) && xr(XR_ST_RESETS) == resets + 1,
	       "RST: dropped, counted, the state gone", "verdict %d", r.verdict);

	/* A RST without ACK: only at rcv_nxt. */
	client_init(&c, 0, 41101);
	send_seg(&c, F_SYN, NULL, 0);
	c.seq++;
	cmd(&c, "HE");	/* half a line: state kept */
	c.seq += 5;
	r = send_seg(&c, F_RST, NULL, 0);
	c.seq -= 5;
	result(r.verdict == XDP_DROP_ && has_state(&c, NULL) && xr(XR_ST_RESETS) == resets + 1,
	       "RST without ACK off the expected sequence number: ignored", "state %d",
	       has_state(&c, NULL));
	r = send_seg(&c, F_RST, NULL, 0);
	result(r.verdict == XDP_DROP_ && !has_state(&c, NULL) && xr(XR_ST_RESETS) == resets + 2,
	       "RST without ACK at the expected sequence number: the state gone", "state %d",
	       has_state(&c, NULL));
}

static void window_and_parts(void)
{
	struct client c;
	struct reply_seg r;
	size_t glen = strlen(text(ML_OP_GREET));
	int rounds = 0;

	client_init(&c, 0, 40300);
	send_seg(&c, F_SYN, NULL, 0);
	c.seq++;
	c.win = 10;
	r = send_seg(&c, F_ACK, NULL, 0);
	result(r.verdict == XDP_TX_ && r.n == 10, "a 10-octet window gets 10 octets",
	       "n %zu", r.n);
	while (c.ngot < glen && rounds++ < 20) {
		r = send_seg(&c, F_ACK, NULL, 0);
		if (r.verdict != XDP_TX_)
			break;
	}
	result(got_since(&c, 0, text(ML_OP_GREET)) && rounds < 20,
	       "each acknowledgement brings the next part: the greeting whole",
	       "got %zu of %zu in %d rounds", c.ngot, glen, rounds);
}

static void queue_full(void)
{
	struct client c;
	struct reply_seg r;
	char many[40 * 6 + 1], want[4096];
	size_t mark;
	int i;
	__u64 full = xr(XR_ST_QUEUE_FULL), flood = ml(ML_ST_CLOSE_FLOOD);

	client_init(&c, 0, 40400);
	result(open_session(&c) == 0, "session opens (queue)", "greeting");
	for (i = 0; i < 40; i++)
		memcpy(many + i * 6, "NOOP\r\n", 6);
	many[240] = 0;
	mark = c.ngot;
	/* The client's ack covers the greeting: 15 replies fit, the 16th
	 * slot is the 421's. */
	r = send_seg(&c, F_ACK | F_PSH, many, 240);
	snprintf(want, sizeof(want), "%s", "");
	for (i = 0; i < XR_OPS_MAX - 1; i++)
		strcat(want, text(ML_OP_OK));
	strcat(want, text(ML_OP_PIPELINE));
	result(r.verdict == XDP_TX_ && r.ack == c.seq + 240 && c.fin && got_since(&c, mark, want) &&
	       xr(XR_ST_QUEUE_FULL) == full + 1 && ml(ML_ST_CLOSE_FLOOD) == flood + 1,
	       "40 lines at once: replies for 15, then 421 too many pipelined commands and FIN",
	       "ack %u want %u fin %d got %.*s", r.ack, c.seq + 240, c.fin, (int)(c.ngot - mark),
	       c.got + mark);
}

/* Octets after a closing reply in the same segment are discarded and
 * acknowledged, as in any later segment: left unacknowledged, they held
 * the client's FIN beyond rcv_nxt until its retransmission timer fired. */
static void quit_then_more(void)
{
	static const char more[] = "QUIT\r\nNOOP\r\nxxxx";
	struct client c;
	struct reply_seg r;
	size_t mark;

	client_init(&c, 0, 40450);
	result(open_session(&c) == 0, "session opens (quit and more)", "greeting");
	mark = c.ngot;
	r = cmd(&c, more);
	result(r.verdict == XDP_TX_ && c.fin && got_since(&c, mark, text(ML_OP_QUIT)) &&
	       r.ack == c.seq,
	       "QUIT with more in its segment: 221 and FIN acknowledge the whole segment",
	       "verdict %d fin %d ack %u want %u", r.verdict, c.fin, r.ack, c.seq);
	r = send_seg(&c, F_ACK | F_FIN, NULL, 0);
	c.seq++;
	result(r.verdict == XDP_TX_ && r.flags == F_ACK && r.ack == c.seq && !has_state(&c, NULL),
	       "the client's FIN after it is taken at once: acknowledged, nothing kept",
	       "verdict %d flags %#x ack %u want %u state %d", r.verdict, r.flags, r.ack, c.seq,
	       has_state(&c, NULL));
}

static void output_limit(void)
{
	struct client c;
	struct reply_seg r;
	int i;
	__u64 mt = ml(ML_ST_CLOSE_MAXTIME);

	client_init(&c, 0, 40500);
	result(open_session(&c) == 0, "session opens (limit)", "greeting");
	for (i = 0; i < 2000 && !c.fin; i++) {
		r = cmd(&c, "NOOP\r\n");
		if (r.verdict != XDP_TX_)
			break;
	}
	result(c.fin && ml(ML_ST_CLOSE_MAXTIME) == mt + 1 && c.ngot <= XR_OUT_MAX &&
	       c.ngot >= strlen(text(ML_OP_MAXTIME)) &&
	       !memcmp(c.got + c.ngot - strlen(text(ML_OP_MAXTIME)), text(ML_OP_MAXTIME),
		       strlen(text(ML_OP_MAXTIME))),
	       "a session ends with 421 before its output passes 16 KiB",
	       "fin %d after %d commands, %zu octets", c.fin, i, c.ngot);
}

/* A stored state whose output runs past its queued replies (as a state
 * shared by two CPUs could): the frame goes out without those octets,
 * never with octets that are not reply text. */
static void uncovered(void)
{
	struct client c;
	struct reply_seg r;
	struct xr_state st;
	int ok;

	client_init(&c, 0, 40460);
	result(open_session(&c) == 0, "session opens (uncovered)", "greeting");
	ok = has_state(&c, &st);
	st.end = st.sent + 100;	/* 100 octets no queued reply holds */
	ok = ok && !bpf_map_update_elem(bpf_map__fd(skel->maps.xr_flows), &c.key, &st, BPF_EXIST);
	r = send_seg(&c, F_ACK, NULL, 0);
	result(ok && (r.verdict == XDP_DROP_ || (r.verdict == XDP_TX_ && !r.err[0] && r.n == 0)),
	       "output past the queued replies is not sent: no octet but reply text goes out",
	       "state %d verdict %d, %zu payload octets %s", ok, r.verdict, r.n, r.err);
	send_seg(&c, F_ACK | F_RST, NULL, 0);
}

/* ---- two CPUs, one flow ---------------------------------------------------
 * A NIC's RSS keeps a flow on one queue, but a retransmission can meet
 * the original on two CPUs (a veth's queue follows the sender's XPS, an
 * RSS table can change under traffic). Here the same data segment runs on
 * CPU 0 and CPU 1 at once, RACE_ROUNDS times: each reply that goes out
 * must be the one reply that segment asks for, at its place in the
 * stream, and the session must go on in order (QUIT gets 221 and FIN
 * where the client expects them). */
#define RACE_ROUNDS 20000

static struct {
	struct frame in;
	struct reply_seg out[2];
	atomic_int go, done;
} race;

static void run_into(struct reply_seg *r)
{
	memset(r, 0, sizeof(*r));
	r->verdict = run_raw(&race.in, &r->out);
	if (r->verdict < 0)
		snprintf(r->err, sizeof(r->err), "test run: %s", strerror(-r->verdict));
}

static int pin_to(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *racer(void *arg)
{
	int round;

	(void)arg;
	if (pin_to(1))
		return NULL;
	for (round = 1; round <= RACE_ROUNDS; round++) {
		int go;

		while ((go = atomic_load(&race.go)) >= 0 && go < round)
			;
		if (go < 0)
			break;
		run_into(&race.out[1]);
		atomic_store(&race.done, round);
	}
	return NULL;
}

/* Is r the reply to NOOP at the client's place (c->ack), or nothing? */
static int noop_reply_ok(const struct client *c, struct reply_seg *r, char *why, size_t n)
{
	const char *want = text(ML_OP_OK);

	if (r->err[0]) {
		snprintf(why, n, "%s", r->err);
		return 0;
	}
	if (r->verdict == XDP_DROP_)
		return 1;
	if (r->verdict != XDP_TX_) {
		snprintf(why, n, "verdict %d", r->verdict);
		return 0;
	}
	check_out(c, &race.in, r);
	if (r->err[0] || r->seq != c->ack || r->ack != c->seq + 6 || r->n != strlen(want) ||
	    memcmp(r->data, want, r->n) || (r->flags & F_FIN)) {
		snprintf(why, n, "%s seq %u (want %u) ack %u (want %u) flags %#x: %.*s", r->err,
			 r->seq, c->ack, r->ack, c->seq + 6, r->flags, (int)r->n, r->data);
		return 0;
	}
	return 1;
}

static void two_cpus(void)
{
	struct client c;
	struct reply_seg r;
	pthread_t th;
	char why[300] = "", msg[256];
	int round, bad = 0, dropped = 0, opened = 0;
	__u64 busy = xr(XR_ST_BUSY);

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2 || pin_to(0)) {
		printf("# skip - xdpresp: two CPUs, one flow: needs CPUs 0 and 1\n");
		return;
	}
	if (pthread_create(&th, NULL, racer, NULL)) {
		result(0, "two CPUs, one flow: a thread on CPU 1", "%s", strerror(errno));
		return;
	}
	for (round = 1; round <= RACE_ROUNDS; round++) {
		client_init(&c, round & 1, (uint16_t)(20000 + round));
		if (open_session(&c)) {
			if (!bad++)
				snprintf(why, sizeof(why), "round %d: the session did not open", round);
			continue;
		}
		opened++;
		race.in = make(&c, F_ACK | F_PSH, "NOOP\r\n", 6);
		atomic_store(&race.go, round);
		run_into(&race.out[0]);
		while (atomic_load(&race.done) < round)
			;
		for (int k = 0; k < 2; k++) {
			dropped += race.out[k].verdict == XDP_DROP_;
			if (!noop_reply_ok(&c, &race.out[k], msg, sizeof(msg)) && !bad++)
				snprintf(why, sizeof(why), "round %d, CPU %d: NOOP: %s", round, k, msg);
		}
		c.seq += 6;
		c.ack += strlen(text(ML_OP_OK));
		{
			size_t mark = c.ngot;

			r = cmd(&c, "QUIT\r\n");
			if (!(r.verdict == XDP_TX_ && !r.err[0] && c.fin && r.ack == c.seq &&
			      got_since(&c, mark, text(ML_OP_QUIT))) && !bad++)
				snprintf(why, sizeof(why), "round %d: QUIT: verdict %d seq %u (want %u) "
					 "ack %u (want %u) fin %d %s: %.*s", round, r.verdict, r.seq, c.ack,
					 r.ack, c.seq, c.fin, r.err, (int)(c.ngot - mark), c.got + mark);
		}
		send_seg(&c, F_ACK | F_RST, NULL, 0);	/* the flow ends */
		if (bad > 10)
			break;
	}
	atomic_store(&race.go, -1);
	pthread_join(th, NULL);
	ring_buffer__consume(ring);
	nevents = 0;
	printf("# two CPUs, one flow: %d sessions; %d of %d runs dropped, %llu as busy\n", opened,
	       dropped, 2 * opened, (unsigned long long)(xr(XR_ST_BUSY) - busy));
	result(!bad && opened == RACE_ROUNDS,
	       "two CPUs, one flow: one segment on both at once gets its one reply in place, "
	       "or is dropped, and the session goes on", "%d bad: %s", bad, why);
}

static void rfc7504(void)
{
	struct client c;
	struct reply_seg r;
	size_t mark;

	if (configure(ML_DIALECT_RFC7504, 1)) {
		result(0, "rfc7504 configured", "map update: %s", strerror(errno));
		return;
	}
	client_init(&c, 0, 40600);
	result(open_session(&c) == 0 && !memcmp(c.got, "521 ", 4),
	       "rfc7504 (slot 1): the greeting is 521", "got %.*s", (int)c.ngot, c.got);
	mark = c.ngot;
	r = cmd(&c, "EHLO x\r\n");
	result(r.verdict == XDP_TX_ && got_since(&c, mark, text(ML_OP_REJECT)),
	       "rfc7504: EHLO gets 521", "got %.*s", (int)(c.ngot - mark), c.got + mark);
}

int main(void)
{
	int e;

	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	skel = guard_bpf__open();
	if (skel)	/* the program --engine xdp loads */
		bpf_program__set_autoload(skel->progs.ml_guard, false);
	if (!skel || guard_bpf__load(skel)) {
		printf("not ok - xdpresp: load: %s\n", strerror(errno));
		return 1;
	}
	ring = ring_buffer__new(bpf_map__fd(skel->maps.xr_events), on_event, NULL, NULL);
	if (!ring) {
		printf("not ok - xdpresp: ring buffer: %s\n", strerror(errno));
		return 1;
	}
	e = configure(ML_DIALECT_RCPT, 0);
	if (e) {
		printf("not ok - xdpresp: configure: %s\n", strerror(errno));
		return 1;
	}
	passes_untouched();
	malformed();
	handshake(0);
	handshake(1);
	bad_cookie();
	dialogue();
	early_talker_and_reset();
	window_and_parts();
	queue_full();
	quit_then_more();
	output_limit();
	uncovered();
	two_cpus();
	rfc7504();
	ring_buffer__free(ring);
	guard_bpf__destroy(skel);
	printf("# %d passed, %d failed\n", passes, failures);
	return failures ? 1 : 0;
}
