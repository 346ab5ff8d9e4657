// SPDX-License-Identifier: GPL-2.0
/*
 * eng_kernel_close.c - the kernel engine's close protocol: when a session
 * that the BPF programs answer may be closed, and how.
 *
 * The controller never reads what a client sent, so it learns how a session
 * goes from three places:
 *  - the ring buffer (ml_kern_on_event): ML_EV_CLOSE when sk_msg sent a
 *    closing reply (221, or a 421 of its own), with the octets the session
 *    will have queued once it left; ML_EV_PEER when sock_ops saw the client's
 *    FIN or reset; ML_EV_FAIL when a program dropped a segment it could not
 *    answer; ML_EV_LOG, the session's log record, emitted by close() itself;
 *  - TCP_INFO of the socket (ml_kern_tcp_queued): what has been queued to
 *    TCP so far, its state, when it last received data;
 *  - the session map, by the socket's flow, for what the kernel counted
 *    (ops_done against ops_out, out_bytes) when the client closed first.
 * A session with a closing reply in flight drains (ML_S_DRAIN): it is looked
 * at again after 1, 2, 4 ... 64 ms until TCP has taken every reply, then
 * closed (after QUIT, or when the client closed first) or, after a 421, left
 * to linger (ML_S_LINGER, as the user engine does) so that a client still
 * sending is not reset before it read its replies. A dropped segment
 * (ML_S_FAILING) gets its 421 from the controller, after the replies queued
 * before it. Every wait is bounded by a deadline (5 s to drain, ML_LINGER_MS
 * to linger) that server.c enforces. Events the ring buffer could not carry
 * are recovered from the session map (sweep, on every tick). See
 * docs/design.md, "The close protocol".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/bpf.h>
#include <linux/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "clock.h"
#include "eng_kernel.h"
#include "log.h"
#include "responder.skel.h"
#include "sesslog.h"

/* While sessions are open, look at events_lost at least this often: a ring
 * buffer event lost to overflow wakes nobody. */
#define LOST_CHECK_MS	100

/* ---- cookie table ---------------------------------------------------------- */

static uint32_t ck_hash(uint64_t c)
{
	c ^= c >> 33;
	c *= 0xff51afd7ed558ccdULL;
	c ^= c >> 33;
	return (uint32_t)c;
}

/*
 * The table holds one entry per open kernel-engine session and nothing else:
 * sessions are indexed by fd (at most nsess_max) and the table has twice as
 * many slots, so it cannot fill. Every probe is bounded all the same: a full
 * table is an error the caller counts, never a loop without end.
 */
int ml_kern_ck_put(struct kpriv *k, uint64_t c, int fd)
{
	uint32_t i = ck_hash(c) & k->ckmask, n;

	for (n = 0; n <= k->ckmask; n++, i = (i + 1) & k->ckmask) {
		if (!k->ck[i]) {
			k->ck[i] = c;
			k->ckfd[i] = fd;
			return 0;
		}
	}
	return -ENOSPC;
}

static int ck_find(struct kpriv *k, uint64_t c)
{
	uint32_t i = ck_hash(c) & k->ckmask, n;

	for (n = 0; n <= k->ckmask && k->ck[i]; n++, i = (i + 1) & k->ckmask)
		if (k->ck[i] == c)
			return (int)i;
	return -1;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void ck_del(struct kpriv *k, uint64_t c)
{
	int at = ck_find(k, c);
	uint32_t i, j, h, n;

	if (at < 0)
		return;
	i = (uint32_t)at;
	j = (i + 1) & k->ckmask;
	for (n = 0; n < k->ckmask && k->ck[j]; n++, j = (j + 1) & k->ckmask) {
		h = ck_hash(k->ck[j]) & k->ckmask;
		/* Move j into the hole at i unless its home lies in (i, j]. */
		if (((j - h) & k->ckmask) >= ((j - i) & k->ckmask)) {
			k->ck[i] = k->ck[j];
			k->ckfd[i] = k->ckfd[j];
			i = j;
		}
	}
	k->ck[i] = 0;
}

int ml_kern_ck_init(struct kpriv *k, int nsess_max)
{
	k->ckmask = 1;
	while (k->ckmask < (uint32_t)nsess_max * 2)
		k->ckmask <<= 1;
	k->ck = calloc(k->ckmask, sizeof(*k->ck));
	k->ckfd = calloc(k->ckmask, sizeof(*k->ckfd));
	k->ckmask--;
	return k->ck && k->ckfd ? 0 : -ENOMEM;
}

/* ---- the socket, as TCP and the session map see it -------------------------- */

static int flow_of(int fd, struct ml_flow *f)
{
	struct sockaddr_storage l, r;
	socklen_t ll = sizeof(l), rl = sizeof(r);

	if (getsockname(fd, (struct sockaddr *)&l, &ll) ||
	    getpeername(fd, (struct sockaddr *)&r, &rl))
		return -errno;
	memset(f, 0, sizeof(*f));
	if (l.ss_family == AF_INET) {
		struct sockaddr_in *a = (void *)&l, *b = (void *)&r;

		f->laddr[2] = f->raddr[2] = htonl(0xffff);
		f->laddr[3] = a->sin_addr.s_addr;
		f->raddr[3] = b->sin_addr.s_addr;
		f->lport = ntohs(a->sin_port);
		f->rport = (uint32_t)b->sin_port << 16;
	} else {
		struct sockaddr_in6 *a = (void *)&l, *b = (void *)&r;

		memcpy(f->laddr, &a->sin6_addr, 16);
		memcpy(f->raddr, &b->sin6_addr, 16);
		f->lport = ntohs(a->sin6_port);
		f->rport = (uint32_t)b->sin6_port << 16;
	}
	return 0;
}

/* Octets this socket has put into TCP so far (sent once, or waiting). */
int ml_kern_tcp_queued(int fd, uint64_t *queued, uint8_t *state, uint32_t *idle_ms)
{
	struct tcp_info ti;
	int r = ml_tcp_info(fd, &ti);

	if (r)
		return r;
	if (queued)
		*queued = ti.tcpi_bytes_sent - ti.tcpi_bytes_retrans + ti.tcpi_notsent_bytes;
	if (state)
		*state = ti.tcpi_state;
	if (idle_ms)
		*idle_ms = ti.tcpi_last_data_recv;
	return 0;
}

/* ---- drains --------------------------------------------------------------- */

void ml_kern_start_drain(struct ml_server *srv, struct ml_session *s, uint64_t bytes)
{
	s->state = ML_S_DRAIN;
	s->drain_bytes = bytes;
	s->drain_wait_ms = 1;
	s->drain_until_ms = ml_now_ms() + 5000;
	ml_kern_drain(srv, s);
}

/* The session's entry in the kernel's session map, by its socket's flow. */
static int session_entry(struct kpriv *k, int fd, struct ml_sock *ms)
{
	struct ml_flow f;

	if (flow_of(fd, &f) ||
	    bpf_map_lookup_elem(bpf_map__fd(k->maps.skel->maps.sessions), &f, ms))
		return -errno;
	return 0;
}

/* Look again after a backoff of 1 to 64 ms (the drain deadline bounds it). */
static void drain_again(struct ml_server *srv, struct ml_session *s)
{
	ml_session_timer(srv, s, ml_now_ms() + s->drain_wait_ms);
	if (s->drain_wait_ms < 64)
		s->drain_wait_ms *= 2;
}

/*
 * ML_S_FAILING: the kernel dropped a segment it could not answer (ML_EV_FAIL)
 * and answers nothing more. The 421 is the controller's to send, after the
 * replies still queued from earlier segments (or at once if sk_msg, which
 * then drops those, was the one that failed): never ahead of them. Returns
 * 1 while it must wait.
 */
static int k_fail_send(struct ml_server *srv, struct ml_session *s, const struct ml_sock *ms)
{
	int r;

	if (ms->ops_done != ms->ops_out && !ms->msg_failed && !ms->msg_closed &&
	    ml_now_ms() + 4000 < s->drain_until_ms)
		return 1;
	r = ml_send_reply(srv, s, (unsigned int)s->drain_bytes);
	if (r == -EAGAIN)
		return 1;	/* the socket is full: the drain deadline bounds it */
	s->state = ML_S_DRAIN;
	s->drain_bytes = UINT64_MAX;
	return 0;
}

/*
 * A 421 ends a client that is likely still sending (a flood, a pipeliner
 * that does not read). close() now would have the kernel answer its next
 * segment with a reset that throws away the replies not yet delivered
 * (TCPAbortOnData), so linger as the user engine does (ml_linger_begin;
 * the verdict drops what comes after the closing reply), polling for the
 * client's FIN. A client that sent QUIT, or closed first, sends nothing
 * more: closed at once.
 */
static void linger(struct ml_server *srv, struct ml_session *s)
{
	ml_linger_begin(s);
	s->drain_wait_ms = 1;
	drain_again(srv, s);
}

void ml_kern_drain(struct ml_server *srv, struct ml_session *s)
{
	struct kpriv *k = srv->eng_priv;
	uint64_t target = s->drain_bytes, queued = 0;
	uint8_t st = 0;

	if (ml_kern_tcp_queued(s->fd, &queued, &st, NULL) || st == BPF_TCP_CLOSE) {
		ml_session_close(srv, s);
		return;
	}
	if (s->state == ML_S_LINGER) {
		/* FIN_WAIT1/2 until the client's FIN (then CLOSE, above). */
		drain_again(srv, s);
		return;
	}
	if (s->state == ML_S_FAILING) {
		struct ml_sock ms;

		if (session_entry(k, s->fd, &ms)) {
			ml_session_close(srv, s);
			return;
		}
		if (k_fail_send(srv, s, &ms)) {
			drain_again(srv, s);
			return;
		}
		target = UINT64_MAX;	/* the 421 just sent counts: read again */
	}
	if (target == UINT64_MAX) {
		/* The client closed: wait for the replies to what it sent. */
		struct ml_sock ms;

		if (session_entry(k, s->fd, &ms)) {
			ml_session_close(srv, s);
			return;
		}
		target = ms.ops_done == ms.ops_out || ms.msg_failed ? ms.out_bytes : UINT64_MAX;
	}
	if (queued >= target) {
		if (s->reason == ML_ST_CLOSE_QUIT || s->reason == ML_ST_CLOSE_CLIENT)
			ml_session_close(srv, s);
		else
			linger(srv, s);
		return;
	}
	drain_again(srv, s);
}

/* ML_EV_PEER: the client closed (CLOSE_WAIT) or reset (CLOSE). A cookie not
 * in the table is a session already closed (its client's FIN raced our
 * close) or not accepted yet (k_open reads the state itself): nothing to do,
 * and nothing to remember. */
static void peer_gone(struct ml_server *srv, const struct ml_event *ev)
{
	struct kpriv *k = srv->eng_priv;
	struct ml_session *s;
	int i = ck_find(k, ev->cookie);

	if (i < 0)
		return;
	s = &srv->sess[k->ckfd[i]];
	if (s->state != ML_S_ACTIVE)
		return;
	if (ev->op == BPF_TCP_CLOSE) {
		s->reason = ML_ST_CLOSE_RESET;
		ml_session_close(srv, s);
		return;
	}
	s->reason = ML_ST_CLOSE_CLIENT;
	ml_kern_start_drain(srv, s, UINT64_MAX);
}

/* Why a session ends, from the closing reply the kernel sent or must have
 * sent (ML_EV_CLOSE, ML_EV_FAIL). */
static int closing_reason(uint32_t op)
{
	switch (op) {
	case ML_OP_QUIT:	return ML_ST_CLOSE_QUIT;
	case ML_OP_BACKLOG:	return ML_ST_CLOSE_BACKLOG;
	case ML_OP_ERROR:	return ML_ST_CLOSE_ERROR;
	}
	return ML_ST_CLOSE_FLOOD;	/* FLOOD, PIPELINE */
}

/* ML_EV_FAIL: the kernel dropped a segment and answers no more; the
 * controller sends the 421 (k_fail_send) and closes. */
static void fail_event(struct ml_server *srv, const struct ml_event *ev)
{
	struct kpriv *k = srv->eng_priv;
	struct ml_session *s;
	int i = ck_find(k, ev->cookie);

	if (i < 0 || ev->op >= ML_OP__MAX)
		return;
	s = &srv->sess[k->ckfd[i]];
	if (s->state != ML_S_ACTIVE)
		return;
	if (ev->op == ML_OP_ERROR)
		log_warn("kernel engine: a segment could not be answered in place (a failed "
		     "sk_skb or sk_msg helper); that session ends with 421 (%s)",
		     "counted in mailless_sessions_total{reason=\"internal_error\"}");
	s->reason = closing_reason(ev->op);
	s->state = ML_S_FAILING;
	s->drain_bytes = ev->op;
	s->drain_wait_ms = 1;
	s->drain_until_ms = ml_now_ms() + 5000;
	ml_kern_drain(srv, s);
}

static void log_record(struct ml_server *srv, const struct ml_log_event *le)
{
	struct kpriv *k = srv->eng_priv;
	int reason = ML_ST_CLOSE_RESET, i;
	uint64_t start = 0, now = ml_now_ms();

	for (i = 0; i < k->nclosed; i++)
		if (k->closed[i].cookie == le->ev.cookie)
			break;
	if (i < k->nclosed) {
		reason = k->closed[i].reason;
		start = k->closed[i].start_ms;
	} else if ((i = ck_find(k, le->ev.cookie)) >= 0) {
		/* Lingering after its 421 (shutdown() left ESTABLISHED), or
		 * reset under an open session: its close comes later. */
		const struct ml_session *o = &srv->sess[k->ckfd[i]];

		start = o->start_ms;
		if (o->state == ML_S_LINGER && o->reason)
			reason = o->reason;
	}
	if (!ml_session_log_ok(srv))
		return;
	ml_sesslog_flow(&srv->log, le->flow.laddr, le->flow.lport, le->flow.raddr,
			ntohs(le->flow.rport >> 16), &le->sum, reason, start ? now - start : 0);
}

int ml_kern_on_event(void *ctx, void *data, size_t len)
{
	struct ml_server *srv = ctx;
	struct kpriv *k = srv->eng_priv;
	const struct ml_event *ev = data;
	struct ml_session *s;
	int i;

	if (len >= sizeof(struct ml_log_event) && ev->type == ML_EV_LOG) {
		log_record(srv, data);
		return 0;
	}
	if (len >= sizeof(*ev) && ev->type == ML_EV_PEER) {
		peer_gone(srv, ev);
		return 0;
	}
	if (len >= sizeof(*ev) && ev->type == ML_EV_FAIL) {
		fail_event(srv, ev);
		return 0;
	}
	if (len < sizeof(*ev) || ev->type != ML_EV_CLOSE)
		return 0;
	i = ck_find(k, ev->cookie);
	if (i < 0)
		return 0;
	s = &srv->sess[k->ckfd[i]];
	if (s->state == ML_S_DRAIN && s->reason == ML_ST_CLOSE_CLIENT) {
		/* The client sent QUIT and closed at once: it was a QUIT. */
		s->reason = closing_reason(ev->op);
		return 0;
	}
	if (s->state != ML_S_ACTIVE)
		return 0;
	s->reason = closing_reason(ev->op);
	ml_kern_start_drain(srv, s, ev->out_bytes);
	return 0;
}

/*
 * The ring buffer overflowed (events_lost moved, read from the mmap'ed .bss
 * without a syscall): walk the session map for the events it could not carry
 * and handle them as if they had arrived. Rare, O(sessions), and idempotent.
 */
static void sweep(struct ml_server *srv)
{
	struct kpriv *k = srv->eng_priv;
	struct ml_flow key, next;
	struct ml_sock v;
	uint64_t lost;
	void *prev = NULL;
	__u32 n;
	int fd;

	if (!k || !k->maps.skel || !k->maps.skel->bss)
		return;
	lost = *(volatile __u64 *)&k->maps.skel->bss->sessions_live;
	if (lost != srv->ctr.v[ML_ST_SESSIONS_MAP]) {
		srv->ctr.v[ML_ST_SESSIONS_MAP] = lost;
		srv->ctr_dirty = 1;
	}
	lost = *(volatile __u64 *)&k->maps.skel->bss->events_lost;
	if (lost == k->lost_seen)
		return;
	log_warn("the event ring buffer overflowed (%llu events so far); recovering them "
	     "from the session map", (unsigned long long)lost);
	k->lost_seen = lost;
	srv->ctr.v[ML_ST_EVENTS_LOST] = lost;
	srv->ctr_dirty = 1;
	fd = bpf_map__fd(k->maps.skel->maps.sessions);
	/* Bounded: a hash walked while it changes may restart from the top. */
	for (n = bpf_map__max_entries(k->maps.skel->maps.sessions);
	     n > 0 && bpf_map_get_next_key(fd, prev, &next) == 0; n--) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &v))
			continue;
		if (v.lost_op) {
			struct ml_event ev = { .cookie = v.cookie, .out_bytes = v.out_bytes,
					       .type = ML_EV_CLOSE, .op = v.lost_op };

			ml_kern_on_event(srv, &ev, sizeof(ev));
		} else if (v.lost_fail) {
			struct ml_event ev = { .cookie = v.cookie, .type = ML_EV_FAIL,
					       .op = v.lost_fail };

			ml_kern_on_event(srv, &ev, sizeof(ev));
		} else if (v.lost_peer) {
			struct ml_event ev = { .cookie = v.cookie, .type = ML_EV_PEER,
					       .op = v.lost_peer };

			ml_kern_on_event(srv, &ev, sizeof(ev));
		}
	}
}

int ml_kern_tick(struct ml_server *srv)
{
	sweep(srv);
	return srv->nactive ? LOST_CHECK_MS : -1;
}

void ml_kern_poll(struct ml_server *srv)
{
	struct kpriv *k = srv->eng_priv;

	k->in_poll = 1;
	ring_buffer__consume(k->rb);
	k->in_poll = 0;
	k->nclosed = 0;	/* their records were all read */
}


void ml_kern_close(struct ml_server *srv, struct ml_session *s)
{
	struct kpriv *k = srv->eng_priv;

	ck_del(k, s->cookie);
	if (k->nclosed < ML_CLOSED_MAX) {
		k->closed[k->nclosed].cookie = s->cookie;
		k->closed[k->nclosed].reason = s->reason;
		k->closed[k->nclosed].start_ms = s->start_ms;
		k->nclosed++;
	}
	close(s->fd);
	/* close() just queued the session's log record: read it now. Inside
	 * the consumer already (a close driven by an event), the running
	 * consumer reads it before it returns. */
	if (k->nclosed && !k->in_poll)
		ml_kern_poll(srv);
}
