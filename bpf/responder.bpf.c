// SPDX-License-Identifier: GPL-2.0
/*
 * responder.bpf.c - the SMTP 521 responder inside the kernel.
 *
 *   sock_ops  admits accepted sockets of this instance into the sockhash and
 *             creates their session entry; removes the entry on TCP_CLOSE.
 *   sk_skb    (verdict only) frames lines with include/proto.h, overwrites the
 *             client's bytes in place with one reply opcode per line, zeroes
 *             the rest and redirects the skb to the same socket's egress.
 *   sk_msg    expands the opcodes into reply text from the config map and
 *             tells the controller (ring buffer) when a closing reply left.
 *
 * See docs/design.md, "Why it is built this way": the skb keeps its length
 * in the verdict program ("The skb keeps its length"), and sk_skb cannot use
 * sk_storage nor sk_msg get the socket cookie, so the session map is keyed
 * by the 4-tuple, which all three program types can read ("Session map keyed
 * by the 4-tuple").
 */
#include <linux/bpf.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "mailless.h"
#include "proto.h"
#include "verifier.h"

#define AF_INET		2
#define AF_INET6	10

char LICENSE[] SEC("license") = "GPL";

/* The fields of the kernel's struct tcp_sock the verdict reads (through
 * bpf_skc_to_tcp_sock, Linux 5.9+): libbpf relocates their offsets against
 * the running kernel's BTF, so no vmlinux.h is needed. */
struct sock {
	int sk_sndbuf;
	int sk_wmem_queued;
	unsigned int sk_gso_max_size;
} __attribute__((preserve_access_index));
struct inet_sock {
	struct sock sk;
} __attribute__((preserve_access_index));
struct inet_connection_sock {
	struct inet_sock icsk_inet;
} __attribute__((preserve_access_index));
struct tcp_sock {
	struct inet_connection_sock inet_conn;
	__u64 bytes_acked;	/* RFC 4898 tcpEStatsAppHCThruOctetsAcked */
	__u32 mss_cache;	/* the MSS segments are cut to now */
	__u16 gso_segs;		/* MSSes one skb is filled with (tcp_xmit_size_goal) */
	__u32 max_window;	/* the largest window the client offered */
} __attribute__((preserve_access_index));

/* Set by the controller before load. */
const volatile __u64 netns_cookie;	/* the controller's network namespace */

/* Events the ring buffer had no room for (a burst of thousands of QUITs at
 * once). The controller reads this through the skeleton's mmap of .bss on
 * every loop, without a syscall, and then sweeps the session map for the
 * lost_op/lost_peer marks. */
__u64 events_lost;

/* Entries in the session map now (admitted sockets not yet TCP_CLOSE, the
 * orphans the controller already closed included): the sessions_map gauge.
 * Read through the same mmap of .bss. */
__u64 sessions_live;

/* Set by sock_ops on each socket it admitted: its cookie. The controller
 * looks it up by fd right after accept() (one syscall, in place of
 * SO_COOKIE): a socket without it was not admitted (the session map was
 * full) and gets 421 busy instead of a greeting and silence. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} admitted SEC(".maps");

/* max_entries of these two are sized by the controller before load. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 1024);
	__type(key, struct ml_flow);
	__type(value, __u64);
} socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct ml_flow);
	__type(value, struct ml_sock);
} sessions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct ml_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ml_control);
} control SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct ml_listen_key);
	__type(value, __u32);
} listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ml_info);
} info SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ml_stats);
} stats SEC(".maps");

/* The controller's counters (close reasons, gauges; everything in the user
 * engine), written whole by the controller alone. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ml_stats);
} stats_ctl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 512 * 1024);	/* set by the controller (eng_kernel.c) */
} events SEC(".maps");

/*
 * The same 4-tuple from any of the three contexts: they name the fields alike.
 * IPv4 addresses are stored v4-mapped so that a dual-stack listener's IPv4
 * children and plain IPv4 sockets give the same kind of key. Every field is
 * read unconditionally, once, into a local: otherwise clang 14 merges the two
 * branches into one modified ctx pointer, which the verifier refuses
 * ("dereference of modified ctx ptr").
 */
/* Load a ctx field into a register clang may not turn back into a pointer. */
#define CTX_LOAD(dst, expr)						\
	do {								\
		dst = (expr);						\
		barrier_var(dst);				\
	} while (0)

#define ML_FLOW_FROM(ctx, f)						\
	do {								\
		__u32 fam_, l4_, r4_, lp_, rp_, i_;			\
		__u32 l_[4], r_[4];					\
		CTX_LOAD(fam_, (ctx)->family);				\
		CTX_LOAD(l4_, (ctx)->local_ip4);			\
		CTX_LOAD(r4_, (ctx)->remote_ip4);			\
		CTX_LOAD(l_[0], (ctx)->local_ip6[0]);			\
		CTX_LOAD(l_[1], (ctx)->local_ip6[1]);			\
		CTX_LOAD(l_[2], (ctx)->local_ip6[2]);			\
		CTX_LOAD(l_[3], (ctx)->local_ip6[3]);			\
		CTX_LOAD(r_[0], (ctx)->remote_ip6[0]);			\
		CTX_LOAD(r_[1], (ctx)->remote_ip6[1]);			\
		CTX_LOAD(r_[2], (ctx)->remote_ip6[2]);			\
		CTX_LOAD(r_[3], (ctx)->remote_ip6[3]);			\
		CTX_LOAD(lp_, (ctx)->local_port);			\
		CTX_LOAD(rp_, (ctx)->remote_port);			\
		if (fam_ == AF_INET) {					\
			l_[0] = l_[1] = r_[0] = r_[1] = 0;		\
			l_[2] = r_[2] = bpf_htonl(0xffff);		\
			l_[3] = l4_;					\
			r_[3] = r4_;					\
		}							\
		for (i_ = 0; i_ < 4; i_++) {				\
			(f)->laddr[i_] = l_[i_];			\
			(f)->raddr[i_] = r_[i_];			\
		}							\
		(f)->lport = lp_;					\
		(f)->rport = rp_;					\
	} while (0)

/*
 * Count on this CPU's slot. Atomic although per-CPU: these programs may run
 * in process context with only migration disabled, and a second instance on
 * the same CPU must not lose an increment (the counters must be exact).
 */
static __always_inline void stat_add(__u32 key, __u64 n)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&stats, &zero);

	/* Bound the very register that indexes: from line_done() the key is
	 * not a constant, and 6.1 loses a bound checked on a copy. */
	barrier_var(key);
	if (v && key < ML_ST__MAX)
		__sync_fetch_and_add(&v[key], n);
}

static __always_inline void stat_max(__u32 key, __u64 n)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&stats, &zero);

	if (v && key < ML_ST__MAX && v[key] < n)
		v[key] = n;
}

static __always_inline __u32 active_slot(void)
{
	__u32 zero = 0;
	struct ml_control *ctl = bpf_map_lookup_elem(&control, &zero);

	return ctl ? (ctl->active & 1) : 0;
}

static __always_inline const struct ml_config *active_config(void)
{
	__u32 slot = active_slot();

	return bpf_map_lookup_elem(&config, &slot);
}

static __always_inline __u32 reply_len(const struct ml_config *cfg, __u32 op)
{
	__u32 n;

	/* Bound the very register that indexes: 6.1 loses a bound checked
	 * on a copy (here when op came out of a masked opcode octet). */
	barrier_var(op);
	if (op >= ML_OP__MAX)
		return 0;
	n = cfg->replies[op].len;
	return n <= ML_REPLY_MAX ? n : ML_REPLY_MAX;
}

/* ---- sock_ops: admission and cleanup ------------------------------------ */

/* Exact address first, then the any-address of the same family (the key
 * holds the listener's family, which its children keep). */
static __always_inline int served(const struct ml_flow *f, __u32 family)
{
	struct ml_listen_key k = { .family = family, .port = f->lport };

	__builtin_memcpy(k.addr, f->laddr, sizeof(k.addr));
	if (bpf_map_lookup_elem(&listeners, &k))
		return 1;
	__builtin_memset(k.addr, 0, sizeof(k.addr));
	return bpf_map_lookup_elem(&listeners, &k) != NULL;
}

/*
 * The session's summary for the controller's log line, once, when the socket
 * leaves ESTABLISHED/CLOSE_WAIT for good: the controller's close() does that
 * synchronously (FIN_WAIT1 or LAST_ACK), a reset does it on its own (CLOSE).
 */
static __always_inline void log_session(const struct ml_flow *f)
{
	struct ml_log_event *le;
	struct ml_sock *s = bpf_map_lookup_elem(&sessions, f);

	if (!s || s->logged)
		return;
	s->logged = 1;
	le = bpf_ringbuf_reserve(&events, sizeof(*le), 0);
	if (!le) {	/* a lost log line; counted, and nothing to recover */
		__sync_fetch_and_add(&events_lost, 1);
		return;
	}
	le->ev.cookie = s->cookie;
	le->ev.type = ML_EV_LOG;
	le->ev.out_bytes = s->out_bytes;
	le->ev.op = 0;
	le->flow = *f;
	le->sum = s->sum;
	bpf_ringbuf_submit(le, 0);
}

static __always_inline void peer_event(const struct ml_flow *f, __u32 st)
{
	struct ml_sock *s = bpf_map_lookup_elem(&sessions, f);
	struct ml_event *ev;

	if (!s)
		return;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		s->lost_peer = st;
		__sync_fetch_and_add(&events_lost, 1);
		return;
	}
	ev->cookie = s->cookie;
	ev->out_bytes = 0;
	ev->type = ML_EV_PEER;
	ev->op = st;
	bpf_ringbuf_submit(ev, 0);
}

SEC("sockops")
int ml_sockops(struct bpf_sock_ops *skops)
{
	struct ml_flow f = {};
	struct ml_sock s = {};
	__u32 op = skops->op, fam;
	struct bpf_sock *sk;
	__u64 *ck;

	if (op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB &&
	    op != BPF_SOCK_OPS_STATE_CB)
		return 1;
	ML_FLOW_FROM(skops, &f);

	if (op == BPF_SOCK_OPS_STATE_CB) {
		/* Only admitted sockets asked for state callbacks. */
		__u32 st = skops->args[1];

		__u32 old = skops->args[0];

		if (st == BPF_TCP_FIN_WAIT1 || st == BPF_TCP_LAST_ACK ||
		    st == BPF_TCP_CLOSE)
			log_session(&f);
		/* The client closed or reset while the controller holds the
		 * socket: tell it, instead of an epoll registration per
		 * session. */
		if (st == BPF_TCP_CLOSE_WAIT ||
		    (st == BPF_TCP_CLOSE && (old == BPF_TCP_ESTABLISHED ||
					       old == BPF_TCP_CLOSE_WAIT)))
			peer_event(&f, st);
		if (st == BPF_TCP_CLOSE && bpf_map_delete_elem(&sessions, &f) == 0)
			__sync_fetch_and_add(&sessions_live, -1);
		return 1;
	}

	/* Several instances may share this cgroup (when the controller could
	 * not make one of its own): take only our own namespace's sockets on
	 * our own (family, address, port) (docs/design.md, "Data path", 2). */
	CTX_LOAD(fam, skops->family);
	if (bpf_get_netns_cookie(skops) != netns_cookie || !served(&f, fam))
		return 1;

	s.cookie = bpf_get_socket_cookie(skops);
	ml_parser_init(&s.parser);
	if (bpf_map_update_elem(&sessions, &f, &s, BPF_NOEXIST))
		return 1;
	if (bpf_sock_hash_update(skops, &socks, &f, BPF_NOEXIST)) {
		bpf_map_delete_elem(&sessions, &f);
		return 1;
	}
	sk = skops->sk;
	ck = sk ? bpf_sk_storage_get(&admitted, sk, 0, BPF_SK_STORAGE_GET_F_CREATE) : NULL;
	if (!ck) {	/* the controller refuses it, and sock_ops forgets it */
		bpf_map_delete_elem(&socks, &f);
		bpf_map_delete_elem(&sessions, &f);
		return 1;
	}
	*ck = s.cookie;
	__sync_fetch_and_add(&sessions_live, 1);
	/* So that TCP_CLOSE removes the session entry: none outlives its
	 * socket (docs/design.md, "Session map keyed by the 4-tuple"). */
	bpf_sock_ops_cb_flags_set(skops, BPF_SOCK_OPS_STATE_CB_FLAG);
	stat_add(ML_ST_ADMITTED, 1);
	return 1;
}

/* ---- sk_skb verdict: framing and classification ------------------------- */

#define CHUNK 64
/* Reply octets one segment may produce (see line_done). */
#define SEG_TEXT_MAX (60 * 1024)

/* min(left, CHUNK) for a helper's length argument, left >= 1. 6.1 cannot
 * prove n >= 1 from a branch (docs/design.md, "Verifier and compiler
 * notes"), so the bound is arithmetic, on
 * the register the helper gets. */
static __always_inline __u32 chunk_len(__u32 left)
{
	__u32 n = left > CHUNK ? CHUNK : left;

	barrier_var(n);
	return ((n - 1) & (CHUNK - 1)) + 1;
}

/* What the scan has emitted so far. Scalars only: line_done() is a global
 * function, and the verifier lets one take a pointer only to such a struct. */
struct scan_out {
	__u32 nops;		/* opcodes written at the front */
	__u32 text;		/* octets those opcodes and their text take */
	__u32 reply;		/* octets of their text alone */
	__u32 backlog;		/* reply octets unacknowledged before this segment */
	__u32 limit;		/* the bound on them: ml_backlog_limit() */
	__u32 slot;		/* config slot the lengths come from */
	__u32 dialect;
	__u32 closing;
	__u32 first_op;
	__u32 err;		/* a store failed: the segment must not go out */
};

/*
 * The loop state. The parser lives in the session's map value, reached
 * through s: the verifier does not track map memory, so the bpf_loop callback
 * converges at once. Parser state on the stack made the 6.18 verifier walk
 * every byte value it could see ("sequence of 8193 jumps is too complex").
 */
struct scan {
	struct __sk_buff *skb;
	struct ml_sock *s;
	__u32 len;		/* skb length */
	__u32 pos;		/* next octet to scan */
	struct scan_out out;
	__u8 buf[CHUNK];	/* the client's bytes, up to CHUNK at a time */
};

/*
 * A completed line: count it, note it in the summary, and write its reply
 * opcode. Returns 1 to stop the scan (a closing reply, or a failed store).
 * Global, so the verifier checks it once: inlined, it was verified again for
 * every octet position of scan_step's loop that can end a line, past the
 * 1M-instruction limit. Pointer arguments of a global function may be NULL.
 */
__noinline long line_done(struct __sk_buff *skb, struct scan_out *o, struct ml_sock *s,
			  __u32 verb)
{
	const struct ml_config *cfg;
	__u32 slot;
	__u8 op, tag;

	if (!o || !s)
		return 1;
	slot = o->slot;	/* 6.1 takes a map key only from the stack or a map */
	if (ml_verb_stat(verb) >= 0)
		stat_add(ml_verb_stat(verb), 1);
	if (verb != ML_V_FLOOD)
		ml_summary_add(&s->sum, &s->parser, verb);
	if (verb == ML_V_TOOLONG)
		stat_add(ML_ST_LONG_LINES, 1);

	op = ml_reply_op(o->dialect, verb);
	/* sk_msg expands one segment's replies in one pass, and packet
	 * offsets stop at 64 KiB: past SEG_TEXT_MAX the session ends with a
	 * 421 instead of losing replies (README "Requirements and limits").
	 * Past ML_BACKLOG_MAX of replies the client has not taken, it ends
	 * with a 421 too. Room for either 421 (and for a greeting the verdict
	 * may have to put in front) is kept in both budgets. */
	cfg = bpf_map_lookup_elem(&config, &slot);
	if (!cfg) {
		o->err = 1;
		return 1;
	}
	{
		__u32 len = reply_len(cfg, op), greet = reply_len(cfg, ML_OP_GREET);
		__u32 bye = reply_len(cfg, ML_OP_PIPELINE) > reply_len(cfg, ML_OP_BACKLOG) ?
			    reply_len(cfg, ML_OP_PIPELINE) : reply_len(cfg, ML_OP_BACKLOG);

		/* +1 a reply: the opcode octets share the pass's window. */
		if (o->text + len + 1 + greet + bye + 1 > SEG_TEXT_MAX)
			op = ML_OP_PIPELINE;
		else if ((__u64)o->backlog + o->reply + len + greet + bye > o->limit)
			op = ML_OP_BACKLOG;
		len = reply_len(cfg, op);
		o->text += len + 1;
		o->reply += len;
	}
	/* Opcode k goes to offset k, never past the line end that produced
	 * it: bytes not yet read are never overwritten. */
	tag = op | (slot ? ML_OP_SLOT_FLAG : 0);
	if (bpf_skb_store_bytes(skb, o->nops, &tag, 1, 0)) {
		o->err = 1;
		return 1;
	}
	if (o->nops == 0)
		o->first_op = tag;
	o->nops++;
	if (ml_op_closes(op)) {
		o->closing = 1;
		return 1;
	}
	return 0;
}

/*
 * One step of the scan: load up to CHUNK octets from sc->pos and feed them
 * to the parser until one completes a line, then handle that line. A step
 * per line rather than per octet: the bpf_loop call per octet cost more
 * than the parser itself. Every step consumes at least one octet, so len
 * steps always suffice.
 */
static long scan_step(__u64 index, void *data)
{
	struct scan *sc = data;
	__u32 pos = sc->pos, n, j, verb = ML_V_NONE;
	long stop;

	if (pos >= sc->len)
		return 1;
	n = chunk_len(sc->len - pos);
	if (bpf_skb_load_bytes(sc->skb, pos, sc->buf, n))
		return 1;
	for (j = 0; j < CHUNK; j++) {
		__u32 k = j;

		if (j >= n)
			break;
		/* An index, not a pointer clang walks along: 6.1 cannot bound
		 * the walk (it read past the buffer at the 65th step). */
		barrier_var(k);
		verb = ml_feed(&sc->s->parser, sc->buf[k & (CHUNK - 1)]);
		if (verb != ML_V_NONE) {
			j++;
			break;
		}
	}
	sc->pos = pos + j;
	if (verb == ML_V_NONE)
		return 0;
	stop = line_done(sc->skb, &sc->out, sc->s, verb);
	/* A bpf_loop callback must return 0 or 1, and the verifier knows
	 * nothing of a global function's result. clang 19 sees that
	 * line_done() only returns 0 or 1 and drops a plain `? 1 : 0`,
	 * returning the unknown value (refused: "At callback return the
	 * register R0 has unknown scalar value"); clang 14 keeps it. Hidden
	 * from clang, the result must be tested by both. */
	barrier_var(stop);
	return stop ? 1 : 0;
}

static const __u8 zeroes[CHUNK];

struct pad {
	struct __sk_buff *skb;
	__u32 from, len;
	__u32 err;
};

static long zero_pad(__u64 index, void *data)
{
	struct pad *pd = data;
	__u32 off = pd->from + (__u32)index * CHUNK, n;

	if (off >= pd->len)
		return 1;
	n = chunk_len(pd->len - off);
	if (bpf_skb_store_bytes(pd->skb, off, zeroes, n, 0)) {
		pd->err = 1;
		return 1;
	}
	return 0;
}

/* No segment longer than the helpers' packet offsets reach is redirected, so
 * that every octet of one that is can be overwritten. Loopback and GRO can
 * deliver longer ones. */
#define SEG_MAX ML_PACKET_OFF_MAX

/*
 * The segment cannot be answered in place: drop it, stop answering, and have
 * the controller send the 421 op (ML_EV_FAIL). Nothing of the segment goes
 * out; replies still queued from earlier segments go first (the controller
 * waits: eng_kernel_close.c).
 */
static __always_inline int verdict_fail(struct ml_sock *s, __u32 op)
{
	struct ml_event *ev;

	s->closing = 1;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		s->lost_fail = op;
		__sync_fetch_and_add(&events_lost, 1);
		return SK_DROP;
	}
	ev->cookie = s->cookie;
	ev->out_bytes = 0;
	ev->type = ML_EV_FAIL;
	ev->op = op;
	bpf_ringbuf_submit(ev, 0);
	return SK_DROP;
}

SEC("sk_skb")	/* libbpf 1.1 knows no "sk_skb/verdict"; attached as BPF_SK_SKB_VERDICT */
int ml_verdict(struct __sk_buff *skb)
{
	const struct ml_config *cfg;
	struct ml_flow f = {};
	struct bpf_sock *sk;
	struct tcp_sock *tp;
	struct ml_sock *s;
	struct scan sc = {};
	struct pad pd = {};
	__u64 promised, acked;
	__u32 len = skb->len;

	ML_FLOW_FROM(skb, &f);
	s = bpf_map_lookup_elem(&sessions, &f);
	cfg = active_config();
	if (!s || !cfg || s->closing || len == 0)
		return SK_DROP;
	stat_add(ML_ST_RX_BYTES, len);
	if (len > SEG_MAX)
		return verdict_fail(s, ML_OP_PIPELINE);

	/* Linearize everything, or the unpulled rest leaks to the client on
	 * redirect (docs/design.md, "The skb keeps its length"). */
	if (bpf_skb_pull_data(skb, len))
		return verdict_fail(s, ML_OP_ERROR);

	/* What the client has not taken yet: every octet this socket sends
	 * is reply text, and s->promised counts all of it from the moment it
	 * is committed, so promised - bytes_acked is the backlog. */
	sk = skb->sk;
	if (!sk)
		return verdict_fail(s, ML_OP_ERROR);
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return verdict_fail(s, ML_OP_ERROR);
	acked = tp->bytes_acked;
	sc.out.limit = ml_backlog_limit(tp->inet_conn.icsk_inet.sk.sk_sndbuf);
	promised = s->promised;
	sc.out.backlog = promised > acked ? (promised - acked > ML_BACKLOG_MAX ?
					     ML_BACKLOG_MAX : promised - acked) : 0;

	sc.skb = skb;
	sc.s = s;
	sc.len = len;
	sc.out.dialect = cfg->dialect;
	sc.out.slot = active_slot();
	bpf_loop(len, scan_step, &sc, 0);

	if (sc.out.err)
		return verdict_fail(s, ML_OP_ERROR);
	if (sc.out.closing)
		s->closing = 1;
	if (sc.out.nops == 0)
		return SK_DROP;	/* no complete line yet: nothing to answer */
	if (sc.out.nops > 1)
		stat_add(ML_ST_MULTI_LINE, 1);
	stat_max(ML_ST_PIPELINE_MAX, sc.out.nops);

	/* The skb keeps its length; zeroed padding is skipped by sk_msg
	 * wherever the stack splits the message. Not one of the client's
	 * octets may stay in it. */
	pd.skb = skb;
	pd.from = sc.out.nops;
	pd.len = len;
	if (sc.out.nops < len)
		bpf_loop((len - sc.out.nops + CHUNK - 1) / CHUNK, zero_pad, &pd, 0);
	if (pd.err)
		return verdict_fail(s, ML_OP_ERROR);

	/* A client that talked before the controller greeted it gets the
	 * greeting from here, in front of its first reply. */
	if (!s->greeted && __sync_val_compare_and_swap(&s->greeted, 0, 1) == 0) {
		__u8 op = sc.out.first_op | ML_OP_GREET_FLAG;
		const struct ml_config *gc = bpf_map_lookup_elem(&config, &sc.out.slot);

		if (bpf_skb_store_bytes(skb, 0, &op, 1, 0) || !gc)
			return verdict_fail(s, ML_OP_ERROR);
		sc.out.reply += reply_len(gc, ML_OP_GREET);
	}
	__sync_fetch_and_add(&s->promised, sc.out.reply);
	__sync_fetch_and_add(&s->ops_out, sc.out.nops);
	return bpf_sk_redirect_hash(skb, &socks, &f, 0);
}

/* ---- sk_msg: opcodes to text -------------------------------------------- */

/* The config slot an opcode octet was budgeted with. */
static __always_inline __u32 op_slot(__u32 b)
{
	return (b & ML_OP_SLOT_FLAG) ? 1 : 0;
}

/* An octet the verdict program can have written: a reply opcode it emits,
 * with its flags. Anything else in an opcode list means the list is not
 * ours to expand. */
static __always_inline int op_valid(__u32 b)
{
	__u32 op = b & ML_OP_MASK;

	return !(b & 0x80) && op >= ML_OP_GREET && op <= ML_OP_KERNEL_MAX;
}

struct expand {
	struct sk_msg_md *msg;
	__u32 text_len;		/* bytes of text in front of the opcodes */
	__u32 pos;		/* next text byte to write */
	__u32 last_op;
	__u32 err;
};

/* Copy one reply into the message at ex->pos. */
static __always_inline int put_reply(struct expand *ex, const struct ml_config *cfg,
				     __u32 op)
{
	struct sk_msg_md *msg = ex->msg;
	__u8 *data = msg->data, *end = msg->data_end;
	__u32 n = reply_len(cfg, op), pos = ex->pos, j;

	if (op >= ML_OP__MAX)
		return -1;
	for (j = 0; j < ML_REPLY_MAX; j++) {
		__u64 p = (__u64)pos + j;
		__u8 *d;

		if (j >= n)
			break;
		/* Hide p from clang first, then bound that very register: a
		 * copy bounded before the barrier is not related to the one
		 * added to the pointer on 6.1. The range check needs
		 * umax + 1 <= MAX_PACKET_OFF. */
		barrier_var(p);
		if (p >= SEG_MAX)
			return -1;
		d = data + p;
		if (d + 1 > end)
			return -1;
		*d = cfg->replies[op].text[j];
	}
	ex->pos = pos + n;
	return 0;
}

static long expand_op(__u64 index, void *data)
{
	struct expand *ex = data;
	struct sk_msg_md *msg = ex->msg;
	__u8 *d = msg->data, *end = msg->data_end;
	const struct ml_config *cfg;
	__u64 off = (__u64)ex->text_len + index;
	__u32 op, slot;

	/* As in count_op(): a 64-bit index, bounded on that very register. */
	barrier_var(off);
	if (off >= SEG_MAX || d + off + 1 > end)
		goto fail;
	op = d[off];
	slot = op_slot(op);
	cfg = bpf_map_lookup_elem(&config, &slot);
	if (!cfg)
		goto fail;
	if (op & ML_OP_GREET_FLAG)
		if (put_reply(ex, cfg, ML_OP_GREET))
			goto fail;
	op &= ML_OP_MASK;
	if (put_reply(ex, cfg, op))
		goto fail;
	ex->last_op = op;
	return 0;
fail:
	ex->err = 1;
	return 1;
}

struct count {
	struct sk_msg_md *msg;
	struct ml_sock *s;	/* its codes[]: map memory, untracked by the verifier */
	__u32 greets;
	__u32 nops;
	__u32 text_len;
	__u32 err;
};

/* Replies are counted by code in the session's codes[] and added to the
 * counters only once the message is sure to go. */
static __always_inline void count_code(struct count *c, __u32 code)
{
	int k = ml_code_stat(code) - ML_ST_REPLY_220;

	if (k >= 0 && k < ML_NCODES)
		c->s->codes[k]++;
}

static long count_op(__u64 index, void *data)
{
	struct count *c = data;
	struct sk_msg_md *msg = c->msg;
	__u8 *d = msg->data, *end = msg->data_end;
	const struct ml_config *cfg;
	__u64 i = index;
	__u32 b, op, slot;

	/* A 64-bit index, bounded on the register that is added to the
	 * packet pointer: with a 32-bit one, clang 19 turns the bound into
	 * `if w1 > 0xfffe` and `r1 &= 0xffff`, from which 6.1 learns only
	 * umax 0xffff, one more than a packet range allows ("R3 offset is
	 * outside of the packet"). */
	barrier_var(i);
	if (i >= SEG_MAX || d + i + 1 > end)
		return 1;
	b = d[i];
	if (b == ML_OP_END)
		return 1;
	if (!op_valid(b)) {
		c->err = 1;
		return 1;
	}
	slot = op_slot(b);
	cfg = bpf_map_lookup_elem(&config, &slot);
	if (!cfg) {
		c->err = 1;
		return 1;
	}
	op = b & ML_OP_MASK;
	/* Replies are counted here rather than while copying them: the
	 * copying callback is as large as the 6.18 verifier walks. */
	if (b & ML_OP_GREET_FLAG) {
		c->greets++;
		c->text_len += reply_len(cfg, ML_OP_GREET);
		count_code(c, ml_op_code(cfg->dialect, ML_OP_GREET));
	}
	c->text_len += reply_len(cfg, op);
	count_code(c, ml_op_code(cfg->dialect, op));
	c->nops++;
	return 0;
}

/*
 * Send nothing of this message. Popping all of it cannot need memory (it
 * splits no element); if it fails all the same, SK_DROP, which tcp_bpf then
 * applies to every later message of the socket: the session ends without
 * its 421, but no octet that is not reply text leaves.
 */
static __always_inline int msg_drop(struct sk_msg_md *msg, __u32 size)
{
	if (bpf_msg_pop_data(msg, 0, size, 0)) {
		stat_add(ML_ST_MSG_DROPS, 1);
		return SK_DROP;
	}
	return SK_PASS;
}

/* Expanding failed, or cannot be sent whole: drop this message and every
 * later opcode of the session, and have the controller send the 421 of op
 * (ML_OP_ERROR, ML_OP_BACKLOG) and close (ML_EV_FAIL). */
static __always_inline int msg_fail_op(struct sk_msg_md *msg, struct ml_sock *s, __u32 size,
				       __u32 op)
{
	struct ml_event *ev;

	if (!s->msg_failed) {
		s->msg_failed = 1;
		s->closing = 1;
		ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
		if (!ev) {
			s->lost_fail = op;
			__sync_fetch_and_add(&events_lost, 1);
		} else {
			ev->cookie = s->cookie;
			ev->out_bytes = 0;
			ev->type = ML_EV_FAIL;
			ev->op = op;
			bpf_ringbuf_submit(ev, 0);
		}
	}
	return msg_drop(msg, size);
}

static __always_inline int msg_fail(struct sk_msg_md *msg, struct ml_sock *s, __u32 size)
{
	return msg_fail_op(msg, s, size, ML_OP_ERROR);
}

/* What one skb of the socket's write queue costs beyond its payload
 * (SKB_TRUESIZE of tcp_stream_alloc_skb's head: about 1,280 octets on
 * x86_64), with room to spare. */
#define SKB_COST 2048

/*
 * The octets tcp_sendmsg_locked will put in one skb of this socket: what
 * tcp_xmit_size_goal() computes and caches as gso_segs MSSes. Nothing has
 * set gso_segs before the socket's first send, and the verdict's first
 * message can be that send: a client whose lines arrive between accept()
 * and the controller's greeting is answered greeting and all by the
 * verdict. Then the goal is computed here the way the kernel is about to:
 * the device's GSO size, bounded by half the largest window the client
 * offered, in whole MSSes (tcp_bound_to_half_wnd()).
 */
static __always_inline __u64 size_goal(struct tcp_sock *tp)
{
	__u32 mss = tp->mss_cache, segs = tp->gso_segs, win, gso;

	if (mss == 0)
		mss = 536;
	if (segs == 0) {
		win = tp->max_window;
		if (win > 536)
			win /= 2;
		gso = tp->inet_conn.icsk_inet.sk.sk_gso_max_size;
		if (win && win < gso)
			gso = win;
		segs = gso / mss;
	}
	return (__u64)(segs ? segs : 1) * mss;
}

/*
 * Will text_len octets of expanded replies go into the send buffer whole?
 * tcp_bpf sends an expanded message with MSG_DONTWAIT and cannot send it in
 * part: where tcp_sendmsg_locked needs a new skb and finds sk_wmem_queued at
 * sk_sndbuf, the rest of the message is freed (tcp_bpf_send_verdict) and
 * the client gets a reply cut short. A new skb is needed every size goal
 * (small when the client's MSS or window is), each costing SKB_COST; half
 * the goal is assumed. The socket is locked while this program and the push
 * run: the queue only grows by what this message adds.
 */
static __always_inline int send_fits(struct sk_msg_md *msg, __u32 text_len)
{
	struct bpf_sock *sk = msg->sk;
	struct tcp_sock *tp;
	__u64 goal, need;
	__s64 room;

	if (!sk)
		return 0;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	goal = size_goal(tp) / 2;
	if (goal < 64)
		goal = 64;
	need = text_len + (text_len / goal + 2) * SKB_COST;
	room = (__s64)tp->inet_conn.icsk_inet.sk.sk_sndbuf -
	       tp->inet_conn.icsk_inet.sk.sk_wmem_queued;
	return room > 0 && need <= (__u64)room;
}

SEC("sk_msg")
int ml_msg(struct sk_msg_md *msg)
{
	struct ml_flow f = {};
	struct ml_sock *s;
	struct ml_event *ev;
	struct count c = {};
	struct expand ex = {};
	__u32 size = msg->size, first;
	__u8 *d, *end;

	ML_FLOW_FROM(msg, &f);
	s = bpf_map_lookup_elem(&sessions, &f);
	if (!s || size == 0)
		return SK_PASS;
	/* After the closing reply nothing more goes out. */
	if (s->msg_closed)
		return msg_drop(msg, size);
	if (bpf_msg_pull_data(msg, 0, size, 0))
		return msg_fail(msg, s, size);
	d = msg->data;
	end = msg->data_end;
	if (d + 1 > end)
		return msg_fail(msg, s, size);
	first = d[0];
#ifdef MLT_VERIFIER_REJECT
	/* Only in the test build .output/tests/mailless-reject: a read past
	 * the checked octet, which every verifier rejects (tests/e2e/t_refuse.py
	 * checks what mailless says then). */
	first = d[1];
#endif

	if (first >= '0' && first <= '9') {
		/* A reply line the controller wrote itself (opcodes are never
		 * digits). A greeting loses to one the verdict program already
		 * sent (a client that talked first); a 421 always goes. */
		if (first != '4') {
			if (__sync_val_compare_and_swap(&s->greeted, 0, 1) != 0) {
				/* Never SK_DROP here: tcp_bpf keeps a dropping
				 * verdict in psock->eval and applies it, without
				 * running this program, to every later message
				 * of the socket (the replies included). Send an
				 * empty message instead. */
				return msg_drop(msg, size);
			}
		} else {
			s->greeted = 1;
		}
		__sync_fetch_and_add(&s->out_bytes, size);
		__sync_fetch_and_add(&s->promised, size);
		__sync_fetch_and_add(&s->sum.nreplies, 1);
		stat_add(ML_ST_TX_BYTES, size);
		if (d + 3 <= end) {
			int k = ml_code_stat((d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0'));

			if (k >= 0)
				stat_add(k, 1);
		}
		return SK_PASS;
	}
	/* Opcodes from the verdict program, or its zeroed padding. */
	if (s->msg_failed)
		return msg_drop(msg, size);

	c.msg = msg;
	c.s = s;
	__builtin_memset(s->codes, 0, sizeof(s->codes));
	bpf_loop(size, count_op, &c, 0);
	if (c.err || c.text_len + c.nops > SEG_MAX)
		return msg_fail(msg, s, size);
	if (c.nops == 0)
		return msg_drop(msg, size);	/* padding only */
	/* A client that takes its replies too slowly for the verdict's
	 * backlog bound to catch (a small window or MSS makes the send
	 * buffer hold less): 421 rather than a reply cut short. */
	if (!send_fits(msg, c.text_len)) {
		stat_add(ML_ST_SNDBUF_FULL, 1);
		return msg_fail_op(msg, s, size, ML_OP_BACKLOG);
	}

	/* Drop the zeroed padding, then make room for the text in front of
	 * the opcodes and fill it in. Every step is checked: a message goes
	 * out whole, or not at all. */
	if (c.nops < size && bpf_msg_pop_data(msg, c.nops, size - c.nops, 0))
		return msg_fail(msg, s, size);
	if (bpf_msg_push_data(msg, 0, c.text_len, 0))
		return msg_fail(msg, s, msg->size);
	if (bpf_msg_pull_data(msg, 0, c.text_len + c.nops, 0))
		return msg_fail(msg, s, msg->size);

	ex.msg = msg;
	ex.text_len = c.text_len;
	ex.last_op = ML_OP_END;
	bpf_loop(c.nops, expand_op, &ex, 0);
	if (ex.err || ex.pos != c.text_len)
		return msg_fail(msg, s, msg->size);
	if (bpf_msg_pop_data(msg, c.text_len, c.nops, 0))
		return msg_fail(msg, s, msg->size);

	__sync_fetch_and_add(&s->out_bytes, c.text_len);
	stat_add(ML_ST_TX_BYTES, c.text_len);
	for (int k = 0; k < ML_NCODES; k++)
		if (s->codes[k])
			stat_add(ML_ST_REPLY_220 + k, s->codes[k]);
	__sync_fetch_and_add(&s->ops_done, c.nops);
	__sync_fetch_and_add(&s->sum.nreplies, c.nops + c.greets);

	if (ml_op_closes(ex.last_op)) {
		s->msg_closed = 1;
		ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
		if (!ev) {
			s->lost_op = ex.last_op;
			__sync_fetch_and_add(&events_lost, 1);
		} else {
			ev->cookie = s->cookie;
			ev->out_bytes = s->out_bytes;
			ev->type = ML_EV_CLOSE;
			ev->op = ex.last_op;
			bpf_ringbuf_submit(ev, 0);
		}
	}
	return SK_PASS;
}
