/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mailless.h - the ABI between the BPF programs (bpf/responder.bpf.c) and the
 * controller (user/). Fixed-width types only; map definitions live in the BPF
 * object alone.
 */
#ifndef MAILLESS_H
#define MAILLESS_H

#include <linux/types.h>

#define ML_HOST_MAX	256	/* hostname buffer, NUL included (RFC 1035: 253) */
#define ML_REPLY_MAX	320	/* one rendered reply, CRLFs included (EHLO: 2 lines) */

enum ml_dialect {
	ML_DIALECT_RCPT = 0,	/* 220 greeting, 521 at RCPT (default) */
	ML_DIALECT_RFC7504 = 1,	/* 521 greeting, 521 to everything but QUIT */
};

/*
 * Reply opcodes. The verdict program overwrites the client's bytes in place
 * with one opcode octet per reply (a line is at least one octet, so they
 * always fit), ends the list with ML_OP_END when room is left, and the sk_msg
 * program expands each opcode into the text rendered in struct ml_config.
 *
 * An opcode octet is op | ML_OP_GREET_FLAG (first opcode only: send the
 * greeting in front) | ML_OP_SLOT_FLAG (the config slot the verdict budgeted
 * the reply lengths with, so that sk_msg expands with the same one). Only
 * the opcodes up to ML_OP_KERNEL_MAX are ever written as octets, so their
 * values are 0x01-0x0f, 0x21-0x2f, 0x41-0x4f and 0x61-0x6f: never an ASCII
 * digit, which is how sk_msg tells them from a reply line the controller
 * sends itself ('2', '4' or '5' first). The controller's own opcodes after
 * ML_OP_KERNEL_MAX only index the reply table.
 *
 * The texts are in ml_render() (user/replies.c), one table for both dialects.
 */
enum ml_op {
	ML_OP_END = 0,		/* end of the opcode list; the rest is padding */
	ML_OP_GREET,		/* 220 (rcpt) or 521 (rfc7504) greeting */
	ML_OP_HELO,		/* 250 <host> */
	ML_OP_EHLO,		/* 250-<host>, 250 ENHANCEDSTATUSCODES (rcpt only) */
	ML_OP_OK,		/* 250 */
	ML_OP_REJECT,		/* 521 does not accept mail */
	ML_OP_NORCPT,		/* 554 no valid recipients (DATA) */
	ML_OP_QUIT,		/* 221, then close */
	ML_OP_TOOLONG,		/* 500 line too long */
	ML_OP_FLOOD,		/* 421 no line end in 64 KiB, then close */
	ML_OP_PIPELINE,		/* 421 one segment wants over 60 KiB of replies */
	ML_OP_BACKLOG,		/* 421 over ML_BACKLOG_MAX of replies unread */
	ML_OP_KERNEL_MAX = ML_OP_BACKLOG, /* the last one the verdict emits */
	/* Sent by the controller itself, never by the kernel: */
	ML_OP_TIMEOUT,		/* 421 idle timeout */
	ML_OP_MAXTIME,		/* 421 session time limit */
	ML_OP_BUSY,		/* 421 too many sessions */
	ML_OP_SHUTDOWN,		/* 421 shutting down */
	ML_OP_ERROR,		/* 421 after an internal failure (ML_EV_FAIL) */
	ML_OP__MAX,
};

#define ML_OP_GREET_FLAG 0x20
#define ML_OP_SLOT_FLAG	 0x40
#define ML_OP_MASK	 0x1f

/* With its flags, an opcode the verdict writes is never '0'-'9'. */
_Static_assert(ML_OP_KERNEL_MAX < 0x10, "opcode octets would collide with reply text");
_Static_assert(ML_OP__MAX - 1 <= ML_OP_MASK, "opcodes must fit ML_OP_MASK");

/*
 * Reply octets a session may have outstanding: produced for it but not yet
 * acknowledged by the client (queued in the kernel, in the socket, or in
 * flight). A client that sends commands and does not read its replies gets,
 * past this, a 421 and a close (close reason unread_backlog), in both
 * engines. About a default-tuned socket send buffer; a client that reads
 * never comes near it.
 */
#define ML_BACKLOG_MAX	(256 * 1024)

/*
 * The bound in force: half the socket's send buffer (sk_sndbuf, what
 * SO_SNDBUF reports), but at least ML_BACKLOG_MIN (what one received
 * segment may ask for, so that a pipelining client that does read is never
 * cut) and at most ML_BACKLOG_MAX. Half the buffer leaves room for the
 * kernel's per-skb overhead: the kernel engine's replies are expanded by
 * sk_msg on their way into the socket, and tcp_bpf cannot send an expanded
 * message in part (send_fits() in bpf/responder.bpf.c). The user engine
 * applies the same bound.
 */
#define ML_BACKLOG_MIN	(64 * 1024)

/*
 * SO_RCVBUF of every listener, inherited by the sessions it accepts (the
 * kernel doubles it: 32 KiB of receive memory, autotuning off). A client's
 * window, and so what it can have queued at the server at once, stays well
 * under the 64 KiB the kernel engine can rewrite in one segment; SMTP
 * commands never need more.
 */
#define ML_RCVBUF	(16 * 1024)

/*
 * SO_SNDBUF of every listener, likewise inherited (doubled: 128 KiB;
 * autotuning off), so ml_backlog_limit() is ML_BACKLOG_MIN for every
 * session: the replies a client has not acknowledged, the closing 421
 * included, stop at 64 KiB. Autotuned, a session that has sent little has
 * about 80 KiB, and a non-reading client's window keeps it there: too
 * little for one segment's 60 KiB of replies beside unread ones, so sk_msg's
 * send_fits() would end such sessions a segment early.
 */
#define ML_SNDBUF	(64 * 1024)

static inline __u32 ml_backlog_limit(int sndbuf)
{
	__u32 half = sndbuf > 0 ? (__u32)sndbuf / 2 : 0;

	if (half < ML_BACKLOG_MIN)
		half = ML_BACKLOG_MIN;
	return half < ML_BACKLOG_MAX ? half : ML_BACKLOG_MAX;
}

/* Every counter: its enum name, its field name (what bpftool shows). */
#define ML_STATS(X)							\
	X(ADMITTED, admitted)		/* connections accepted for service */ \
	X(CLOSE_QUIT, close_quit)	/* sessions closed after 221 */	\
	X(CLOSE_CLIENT, close_client)	/* the client closed first */	\
	X(CLOSE_IDLE, close_idle)	/* idle timeout (421) */	\
	X(CLOSE_MAXTIME, close_maxtime)	/* session time limit (421) */	\
	X(CLOSE_FLOOD, close_flood)	/* no line end in 64 KiB, or over the segment reply limit */ \
	X(CLOSE_BUSY, close_busy)	/* refused at max-sessions (421) */ \
	X(CLOSE_BUSY_SOURCE, close_busy_source) /* refused at max-sessions-per-source (421) */ \
	X(CLOSE_RESET, close_reset)	/* the connection was reset or failed */ \
	X(CLOSE_BACKLOG, close_backlog)	/* over ML_BACKLOG_MAX of replies unread (421) */ \
	X(CLOSE_ERROR, close_error)	/* an internal failure ended it (421 if possible) */ \
	X(CLOSE_SHUTDOWN, close_shutdown) /* mailless stopped (421) */	\
	X(CMD_HELO, cmd_helo)						\
	X(CMD_EHLO, cmd_ehlo)						\
	X(CMD_MAIL, cmd_mail)						\
	X(CMD_RCPT, cmd_rcpt)						\
	X(CMD_DATA, cmd_data)						\
	X(CMD_RSET, cmd_rset)						\
	X(CMD_NOOP, cmd_noop)						\
	X(CMD_QUIT, cmd_quit)						\
	X(CMD_OTHER, cmd_other)	/* unknown verbs, empty and over-long lines */ \
	X(REPLY_220, reply_220)						\
	X(REPLY_221, reply_221)						\
	X(REPLY_250, reply_250)						\
	X(REPLY_421, reply_421)						\
	X(REPLY_500, reply_500)						\
	X(REPLY_521, reply_521)						\
	X(REPLY_554, reply_554)						\
	X(RX_BYTES, rx_bytes)		/* octets received from clients */ \
	X(TX_BYTES, tx_bytes)		/* reply octets sent */		\
	X(LONG_LINES, long_lines)	/* lines over 512 octets */	\
	X(MULTI_LINE, multi_line)	/* segments (user engine: reads) with several lines */ \
	X(PIPELINE_MAX, pipeline_max)	/* most lines in one segment: a maximum */ \
	X(ACTIVE, active)		/* open sessions now (gauge, controller) */ \
	X(LOG_DROPPED, log_dropped)	/* session log lines over the rate cap */ \
	X(EVENTS_LOST, events_lost)	/* ring buffer full: recovered by a sweep */ \
	X(MSG_DROPS, msg_drops)		/* sk_msg could not empty a message: SK_DROP */ \
	X(SNDBUF_FULL, sndbuf_full)	/* replies would not fit the send buffer: 421 */ \
	X(SESSIONS_MAP, sessions_map)	/* entries in the kernel session map (gauge) */

/*
 * Counters. The map `stats` is a PERCPU_ARRAY with one entry whose value is
 * struct ml_stats: bpftool prints every counter by name, and the code indexes
 * it as an array by enum ml_stat (both come from ML_STATS, so they agree).
 * The BPF programs count what they see; the controller owns the close reasons
 * and the gauges (ML_ST_CLOSE_*, ACTIVE, LOG_DROPPED, EVENTS_LOST,
 * SESSIONS_MAP) and writes them into its own map, stats_ctl, which `stats`
 * adds. The user engine counts everything itself, with the same meaning.
 */
enum ml_stat {
#define ML_STAT_ENUM(e, f) ML_ST_##e,
	ML_STATS(ML_STAT_ENUM)
#undef ML_STAT_ENUM
	ML_ST__MAX,
};

struct ml_stats {
#define ML_STAT_FIELD(e, f) __u64 f;
	ML_STATS(ML_STAT_FIELD)
#undef ML_STAT_FIELD
};

struct ml_reply {
	__u32 len;
	char text[ML_REPLY_MAX];
};

/*
 * Runtime configuration. The config map holds two slots; the controller
 * writes the inactive one and then flips ml_control.active, so a reader never
 * sees a half-written slot (SIGHUP applies to new replies only).
 */
struct ml_config {
	char hostname[ML_HOST_MAX];
	__u32 dialect;		/* enum ml_dialect */
	__u32 generation;	/* bumped on every reload */
	struct ml_reply replies[ML_OP__MAX];
};

struct ml_control {
	__u32 active;		/* config slot in use: 0 or 1 */
};

/*
 * Served (family, address, port): family is the listening socket's, which its
 * children keep (a dual-stack [::] listener's IPv4 clients are AF_INET6,
 * v4-mapped), so all-zero addr is "any" of that family only: 0.0.0.0 never
 * stands for [::]. addr is IPv6 or v4-mapped, as in struct ml_flow.
 */
struct ml_listen_key {
	__u32 family;		/* AF_INET or AF_INET6 */
	__u32 port;		/* host order */
	__u32 addr[4];		/* network order */
};

/*
 * Key of a served socket in the sockhash and in the session map: the same
 * fields are readable from sock_ops, sk_skb and sk_msg contexts, and unlike
 * the socket cookie they exist in all three. Addresses are IPv6 or
 * v4-mapped; ports are as the context delivers them.
 */
struct ml_flow {
	__u32 laddr[4];
	__u32 raddr[4];
	__u32 lport;		/* host order */
	__u32 rport;		/* network order, as in the ctx field */
};

/* Line framing state; all-zero except the two flags is the start of a line. */
#define ML_ARG_MAX	64	/* argument octets kept per line (envelope log) */

struct ml_parser {
	__u32 len;		/* octets of the current line seen so far */
	__u32 word;		/* first four octets, upper-cased, packed */
	__u8 delim_ok;		/* octet 5 is absent, a space or the final CR */
	__u8 spaces_only;	/* octets 5.. are spaces (QUIT's test) */
	__u8 pending_cr;	/* last octet was CR: stripped if LF follows */
	__u8 flooded;		/* ML_V_FLOOD was returned; nothing follows */
	/* After a verb was returned: the completed line's argument (octets
	 * 6.., CR stripped), at most ML_ARG_MAX of its arg_total octets. */
	__u32 arg_len;
	__u32 arg_total;
	__u32 arg_word;		/* the completed line's first four octets */
	__u8 arg[ML_ARG_MAX];
};

/* What one session did, for its log line (kept by both engines alike). */
struct ml_summary {
	__u32 ncmds;		/* command lines */
	__u32 nreplies;		/* replies sent, greeting and 421s included */
	__u32 verbs;		/* bit (1 << enum ml_verb) for each verb seen */
	__u32 nrcpt;		/* RCPT commands */
	__u32 from_len, from_total;	/* first ML_ARG_MAX octets of the last MAIL */
	__u32 rcpt_len, rcpt_total;	/* ... of the first RCPT */
	__u8 from[ML_ARG_MAX];
	__u8 rcpt[ML_ARG_MAX];
};

/* The reply-code counters, ML_ST_REPLY_220 to ML_ST_REPLY_554, in order. */
#define ML_NCODES	(ML_ST_REPLY_554 - ML_ST_REPLY_220 + 1)

/* Per-socket state, created by sock_ops, removed when the socket closes. */
struct ml_sock {
	__u64 cookie;		/* socket cookie, for the controller */
	__u64 out_bytes;	/* reply octets the sk_msg program produced */
	__u32 ops_out;		/* replies the verdict program emitted */
	__u32 ops_done;		/* replies the sk_msg program expanded */
	__u32 greeted;		/* the greeting was sent (cmpxchg 0 -> 1) */
	__u32 closing;		/* a closing reply was emitted; ignore input */
	__u32 logged;		/* the ML_EV_LOG record was sent */
	/* sk_msg: a closing reply went out (msg_closed), or expanding failed
	 * (msg_failed): opcodes that still arrive are dropped whole. */
	__u32 msg_closed;
	__u32 msg_failed;
	/* Reply octets committed so far (the verdict's budget, the
	 * controller's lines): minus the socket's bytes_acked, the backlog
	 * checked against ML_BACKLOG_MAX. */
	__u64 promised;
	/* An event the ring buffer had no room for: the controller finds it
	 * here when events_lost moves (ML_EV_CLOSE: lost_op is the closing
	 * reply; ML_EV_PEER: lost_peer is the TCP state, 8 or 7; ML_EV_FAIL:
	 * lost_fail is the 421 to send). */
	__u32 lost_op;
	__u32 lost_peer;
	__u32 lost_fail;
	/* sk_msg's scratch: the message's replies by code (ML_ST_REPLY_220
	 * on), added to the counters once it is sure to go out. */
	__u32 codes[ML_NCODES];
	struct ml_parser parser;
	struct ml_summary sum;
};

/* Who runs this instance, for `mailless status` and `unload` (not read by
 * the BPF programs). */
enum { ML_INFO_ENGINE_KERNEL = 0, ML_INFO_ENGINE_USER = 1, ML_INFO_ENGINE_XDP = 2 };

struct ml_info {
	__u32 pid;
	__u32 engine;		/* ML_INFO_ENGINE_* */
	__u32 max_sessions;
	__u32 cgroup_own;	/* 1: cgroup is mailless's own child cgroup */
	__u64 netns_cookie;
	__u64 started;		/* CLOCK_REALTIME seconds */
	char cgroup[256];	/* cgroup v2 path the sock_ops program is on */
	char hostname[ML_HOST_MAX];
};

/* Ring buffer events, kernel -> controller. */
enum ml_event_type {
	ML_EV_CLOSE = 1,	/* a closing reply left sk_msg: close after it */
	ML_EV_LOG,		/* the session ended: its summary, for the log */
	ML_EV_PEER,		/* the client closed (op 8, CLOSE_WAIT) or reset (op 7) */
	ML_EV_FAIL,		/* a segment was dropped: send reply op (a 421), close */
};

struct ml_event {
	__u64 cookie;
	__u64 out_bytes;	/* ML_EV_CLOSE: close once this many are queued */
	__u32 type;		/* enum ml_event_type */
	__u32 op;		/* ML_EV_CLOSE: the closing reply */
};

/* ML_EV_LOG: sent by sock_ops when the socket leaves ESTABLISHED or
 * CLOSE_WAIT for good, which a close() does synchronously. */
struct ml_log_event {
	struct ml_event ev;
	struct ml_flow flow;
	struct ml_summary sum;
};

#endif /* MAILLESS_H */
