/* SPDX-License-Identifier: GPL-2.0 */
/*
 * xdpresp.h - the ABI between the XDP responder (bpf/xdpresp.bpf.h, inside
 * the guard's program) and the controller (user/guard.c): configuration,
 * the per-flow state, counters. Fixed-width
 * types only; map definitions live in the BPF object alone.
 *
 * The responder answers TCP itself, so its sequence numbers carry what a
 * socket would keep (docs/design.md, "The XDP responder"):
 *
 *   our initial sequence number (ISN) = mac:16 | mss:2 | 0:14
 *
 * mac is the top half of a keyed SipHash of the 4-tuple, mss an index into
 * XR_MSS0-3 (the client's MSS, rounded down), and the low 14 bits are
 * zero: every later acknowledgement the client sends is ISN + 1 + (octets
 * of ours it has taken), so as long as a session's output stays under
 * XR_OUT_MAX, ack - 1 gives back mac, mss and that count exactly. Every
 * segment is checked against the mac; nothing needs storing to know what
 * the client has.
 */
#ifndef ML_XDPRESP_H
#define ML_XDPRESP_H

#include <linux/types.h>

#include "mailless.h"

#define XR_OUT_BITS	14
#define XR_OUT_MAX	((1u << XR_OUT_BITS) - 1)	/* reply octets per session, FIN included */
#define XR_MSS_SHIFT	XR_OUT_BITS
#define XR_MAC_SHIFT	16

/* The client MSS a SYN-ACK remembers: the largest of these not above what
 * the SYN offered (536 without the option: RFC 9293 3.7.1). */
#define XR_MSS0	536
#define XR_MSS1	1220
#define XR_MSS2	1440
#define XR_MSS3	1460

/* Our receive window (unscaled: the SYN-ACK offers no window scaling, so
 * the client scales neither): what a client may have in flight to us.
 * Commands are short; the parser holds a partial line across segments. */
#define XR_WINDOW	16384

/* Replies a flow may have queued and not yet acknowledged by the client,
 * the last slot kept for a closing 421: a client with more commands than
 * that unanswered pipelines without PIPELINING (never offered) and gets
 * 421 too many pipelined commands. A power of two (a ring). */
#define XR_OPS_MAX	16

#define XR_PORT_WORDS	1024	/* 65536-bit map of served TCP ports */

/* Entries of the flow state (xr_flows): 296 octets each, about 400 with
 * the kernel's own: 26 MiB, allocated at load. */
#define XR_FLOWS	65536

/* Reply text with its prefix sums, for checksums without a pass over the
 * bytes: psum[k] is the sum of the 16-bit big-endian words of text[0..k)
 * (an odd last octet as the high half of a word), not folded. text is
 * padded with zeroes to XR_TEXT_SPAN, so that an (offset, length) pair
 * bounded by masks alone (offset & 511, ((length - 1) & 511) + 1: what
 * Linux 6.1's verifier can follow) stays inside it. */
#define XR_TEXT_SPAN	1024
_Static_assert(ML_REPLY_MAX <= XR_TEXT_SPAN / 2, "a reply must fit half the span");

struct xr_reply {
	__u32 len;
	__u32 psum[ML_REPLY_MAX + 1];
	char text[XR_TEXT_SPAN];
};

/*
 * Runtime configuration, map `xr_cfg` (two slots, xr_ctl.active picks one;
 * a session keeps the slot of its greeting, so that what it is resent is
 * what it was sent).
 */
struct xr_config {
	__u32 dialect;		/* enum ml_dialect */
	__u32 generation;
	__u64 key[2];		/* SipHash key of the cookie (getrandom at start) */
	__u64 ports[XR_PORT_WORDS];	/* bit p: TCP port p is served */
	struct xr_reply replies[ML_OP__MAX];
};

struct xr_ctl {
	__u32 active;		/* slot in use: 0 or 1 */
};

/* Key of the flow state: our address and port, the client's; addresses
 * are IPv6 or v4-mapped, ports in network order. */
struct xr_flow {
	__u32 laddr[4];
	__u32 raddr[4];
	__u16 lport;
	__u16 rport;
};

enum {
	XR_F_CLOSING = 1,	/* FIN follows the last queued reply */
	XR_F_PEER_FIN = 2,	/* the client's FIN was taken */
	XR_F_SLOT1 = 4,		/* the session's config slot is 1 */
	XR_F_LOGGED = 8,	/* its xr_log_event went out */
};

/*
 * Per-flow state, LRU hash `xr_flows`: from the completing ACK to the end
 * of the session (the last ACK of the close, or a RST), the oldest evicted
 * first when full. Without it a flow is at rest: the client has all our
 * output (its ack says how much) and its next octet starts a line; only its
 * log line loses what came before.
 */
struct xr_state {
	__u32 rcv_nxt;		/* client sequence number of the next octet to take */
	__u16 base;		/* output offset where ops[head] starts */
	__u16 end;		/* output offset after the last queued reply */
	__u16 sent;		/* output offset after the last octet sent (+1: our FIN) */
	__u16 una;		/* what the client had acknowledged at its last segment */
	__u8 head;		/* ring of queued replies (enum ml_op) */
	__u8 nops;
	__u8 flags;		/* XR_F_* */
	__u8 pad;
	__u8 ops[XR_OPS_MAX];
	__u32 reason;		/* ML_ST_CLOSE_*: why it ends, once it does */
	__u32 busy;		/* a CPU is in it (flow_trylock() in xdpresp.bpf.h) */
	__u64 start_ns;		/* the greeting (or when the state was made again) */
	struct ml_parser parser;	/* the line in progress */
	struct ml_summary sum;	/* for the session's log line */
};

/*
 * A greeting not yet acknowledged, LRU hash `xr_greet` (key struct
 * xr_flow): the client sends nothing until it arrives, so a lost greeting
 * is sent again by the controller's sweep (user/guard.c): it gives the
 * program, in live-frames test-run mode, the duplicate ACK this entry
 * describes, which makes it send the greeting again out of ifindex. The
 * program writes it when it sends the greeting and removes it when the
 * client acknowledges the greeting or the flow ends.
 */
struct xr_resend {
	__u8 smac[6];		/* the client's, as its frames carry it */
	__u8 dmac[6];		/* ours */
	__u32 ifindex;		/* where it came in */
	__u32 seq;		/* the client's next sequence number */
	__u32 ack;		/* ISN + 1: nothing of ours taken */
	__u32 tsval;		/* the client's last timestamp */
	__u16 win;		/* its last window */
	__u8 ts;		/* it sends timestamps */
	__u8 v6;
	__u32 tries;		/* greetings sent again so far */
	__u64 sent_ns;		/* when the greeting last went out */
};

#define XR_GREET_MAX	4096	/* greetings awaiting acknowledgement */
#define XR_RESEND_MS	1000	/* first wait, doubled each time (RFC 6298's RTO) */
#define XR_RESEND_TRIES	5	/* then the entry is dropped */

/* The ring buffer `xr_events`: one record per session, when its end is
 * known (closing reply queued, the client's FIN or RST), for the
 * controller's log line (sesslog.c, as the other engines'). */
struct xr_log_event {
	struct xr_flow flow;
	__u32 reason;		/* ML_ST_CLOSE_* */
	__u64 dur_ns;		/* since start_ns */
	struct ml_summary sum;
};

/*
 * The responder's own counters (map `xr_stats`, PERCPU_ARRAY, struct
 * xr_stats as value); the dialogue's (commands, reply codes, octets) go to
 * the engines' common struct ml_stats in map `stats`.
 */
#define XR_STATS(X)							\
	X(PACKETS, packets)		/* TCP packets to a served port */ \
	X(SYN_ACKS, syn_acks)		/* SYNs answered with a cookie */ \
	X(BAD_COOKIE, bad_cookie)	/* segments whose ack fails the cookie: dropped */ \
	X(BAD_SEGMENT, bad_segment)	/* malformed or out-of-range segments: dropped */ \
	X(GREETINGS, greetings)		/* handshakes completed (the greeting queued) */ \
	X(SEGMENTS, segments)		/* segments sent after the SYN-ACK */ \
	X(RESENT, resent)		/* reply octets sent again (the client lacked them) */ \
	X(OUT_OF_ORDER, out_of_order)	/* data past what was expected: only acknowledged */ \
	X(QUEUE_FULL, queue_full)	/* XR_OPS_MAX - 1 replies unacknowledged: 421, close */ \
	X(NO_ROOM, no_room)		/* a frame could not grow: fewer octets sent */ \
	X(STATE_FULL, state_full)	/* the flow state could not be stored */ \
	X(RESETS, resets)		/* RSTs from clients */ \
	X(PEER_FIN, peer_fin)		/* FINs from clients */ \
	X(GREET_RESENT, greet_resent)	/* greetings sent again (xr_greet) */ \
	X(BUSY, busy)			/* a segment met its flow in use on another CPU: dropped */

enum xr_stat {
#define XR_STAT_ENUM(e, f) XR_ST_##e,
	XR_STATS(XR_STAT_ENUM)
#undef XR_STAT_ENUM
	XR_ST__MAX,
};

struct xr_stats {
#define XR_STAT_FIELD(e, f) __u64 f;
	XR_STATS(XR_STAT_FIELD)
#undef XR_STAT_FIELD
};

/* Fill r from a rendered reply: length, zero-padded text, prefix sums. */
static inline void xr_reply_fill(struct xr_reply *r, const char *text, __u32 len)
{
	__u32 k, sum = 0;

	if (len > ML_REPLY_MAX)
		len = ML_REPLY_MAX;
	__builtin_memset(r, 0, sizeof(*r));
	r->len = len;
	for (k = 0; k < len; k++) {
		r->text[k] = text[k];
		sum += (k & 1) ? (__u8)text[k] : (__u32)(__u8)text[k] << 8;
		r->psum[k + 1] = sum;
	}
}

#endif /* ML_XDPRESP_H */
