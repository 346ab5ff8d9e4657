// SPDX-License-Identifier: GPL-2.0
/*
 * eng_user.c - the user engine: the same dialogue (include/proto.h) answered
 * from the epoll loop, for hosts without BPF, and the oracle the differential
 * test compares the kernel engine with. It still pins the responder's maps
 * (configuration, counters) when it may create BPF maps, so that `mailless
 * stats` and bpftool see it as they see the kernel engine.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include "clock.h"
#include "guardctl.h"
#include "log.h"
#include "maps.h"
#include "pins.h"
#include "proto.h"
#include "responder.skel.h"
#include "server.h"
#include "sesslog.h"

#define RX_CHUNK	16384
#define DRAIN_MS	5000	/* for the closing reply to leave (as the kernel's) */

/* The user engine's own per-session state: it reads and parses the client's
 * bytes, so it carries what the kernel engine keeps in the sessions map. */
struct ml_usess {
	uint64_t last_rx_ms;		/* last byte received */
	struct ml_parser parser;
	struct ml_summary sum;
	struct sockaddr_storage peer;
	char *obuf;
	uint32_t olen, ooff, ocap;
	int closing;			/* a closing reply is in obuf */
};

/* Count a reply this engine sends (the kernel engine's sk_msg program
 * counts its own, and the controller's lines that pass through it). */
static void count_reply(struct ml_server *srv, unsigned int op)
{
	ml_count(srv, ml_code_stat(ml_op_code(srv->render.dialect, op)), 1);
	ml_count(srv, ML_ST_TX_BYTES, srv->render.replies[op].len);
}

/* At accept, before anything is sent: a session refused as busy has its
 * 421 counted and its log line too. */
static int u_admit(struct ml_server *srv, struct ml_session *s,
		   const struct sockaddr_storage *peer)
{
	ml_count(srv, ML_ST_ADMITTED, 1);	/* sock_ops counts the kernel's */
	s->u = calloc(1, sizeof(*s->u));
	if (!s->u)
		return -ENOMEM;
	s->u->peer = *peer;	/* for the log line */
	s->u->last_rx_ms = s->start_ms;
	ml_parser_init(&s->u->parser);
	return 0;
}

static int u_open(struct ml_server *srv, struct ml_session *s)
{
	if (ml_epoll_mod(srv, s->fd, EPOLLIN | EPOLLRDHUP, 1))
		return -errno;
	ml_send_reply(srv, s, ML_OP_GREET);
	return 0;
}

static int obuf_put(struct ml_session *s, const struct ml_reply *r)
{
	if (s->u->olen + r->len > s->u->ocap) {
		uint32_t cap = s->u->ocap ? s->u->ocap * 2 : 1024;
		char *p;

		while (cap < s->u->olen + r->len)
			cap *= 2;
		p = realloc(s->u->obuf, cap);
		if (!p)
			return -ENOMEM;
		s->u->obuf = p;
		s->u->ocap = cap;
	}
	memcpy(s->u->obuf + s->u->olen, r->text, r->len);
	s->u->olen += r->len;
	return 0;
}

static void lost(struct ml_server *srv, struct ml_session *s)
{
	s->reason = ML_ST_CLOSE_RESET;
	ml_session_close(srv, s);
}

/* Write what is pending; returns 1 when all of it left. */
static int flush(struct ml_session *s)
{
	while (s->u->ooff < s->u->olen) {
		ssize_t n = send(s->fd, s->u->obuf + s->u->ooff, s->u->olen - s->u->ooff,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		s->u->ooff += n;
	}
	/* All sent: give the buffer back. Thousands of sessions lingering
	 * after their 221 would otherwise each keep one (measured: 13.5 MiB
	 * VmHWM for 10,000 idle sessions quitting at once). */
	free(s->u->obuf);
	s->u->obuf = NULL;
	s->u->ooff = s->u->olen = s->u->ocap = 0;
	return 1;
}

/* The closing reply left: send FIN, then read and discard until the client
 * closes too (closing with unread input would reset the connection). */
static void linger(struct ml_server *srv, struct ml_session *s)
{
	ml_linger_begin(s);
	ml_epoll_mod(srv, s->fd, EPOLLIN | EPOLLRDHUP, 0);
	ml_session_timer(srv, s, s->drain_until_ms);
}

static void after_output(struct ml_server *srv, struct ml_session *s)
{
	int done = flush(s);

	if (done < 0) {
		lost(srv, s);
		return;
	}
	if (done && s->u->closing) {
		linger(srv, s);
		return;
	}
	/* The closing reply waits for a client that does not read: give it
	 * as long as the kernel engine's drain, then close. */
	if (s->u->closing && s->state == ML_S_ACTIVE) {
		s->state = ML_S_DRAIN;
		s->drain_until_ms = ml_now_ms() + DRAIN_MS;
		ml_session_timer(srv, s, s->drain_until_ms);
	}
	/* A client that sends without reading is cut off at ML_BACKLOG_MAX
	 * (u_io), so what waits here stays below that. */
	ml_epoll_mod(srv, s->fd, (s->u->closing ? 0 : EPOLLIN | EPOLLRDHUP) |
		     (done ? 0 : EPOLLOUT), 0);
}

static void u_io(struct ml_server *srv, struct ml_session *s, uint32_t events)
{
	char buf[RX_CHUNK];
	ssize_t n;
	int i;

	if (s->state == ML_S_LINGER) {
		while ((n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			;
		if (n == 0 || (n < 0 && errno != EAGAIN) || (events & (EPOLLHUP | EPOLLERR)))
			ml_session_close(srv, s);
		return;
	}
	if ((events & EPOLLIN) && !s->u->closing) {
		const struct ml_config *cfg = &srv->render;
		uint32_t lines = 0, bye, limit;
		uint64_t backlog;
		int outq = 0;

		n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			/* Client closed: whatever we owe it goes out, as far as
			 * the socket takes it without waiting. */
			s->reason = n == 0 ? ML_ST_CLOSE_CLIENT : ML_ST_CLOSE_RESET;
			flush(s);
			ml_session_close(srv, s);
			return;
		}
		if (n > 0) {
			s->u->last_rx_ms = ml_now_ms();
			ml_count(srv, ML_ST_RX_BYTES, n);
		}
		/* Replies the client has not taken: in the socket (SIOCOUTQ:
		 * unsent or unacknowledged) and still in obuf. The same bound
		 * and the same reserve as the kernel's verdict (line_done). */
		if (ioctl(s->fd, SIOCOUTQ, &outq) || outq < 0)
			outq = 0;
		{
			int sndbuf = 0;
			socklen_t sl = sizeof(sndbuf);

			if (getsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl))
				sndbuf = 2 * ML_BACKLOG_MAX;
			limit = ml_backlog_limit(sndbuf);
		}
		backlog = (uint64_t)outq + (s->u->olen - s->u->ooff);
		bye = cfg->replies[ML_OP_PIPELINE].len > cfg->replies[ML_OP_BACKLOG].len ?
		      cfg->replies[ML_OP_PIPELINE].len : cfg->replies[ML_OP_BACKLOG].len;
		for (i = 0; i < n; i++) {
			uint32_t verb = ml_feed(&s->u->parser, (uint8_t)buf[i]), op;

			if (verb == ML_V_NONE)
				continue;
			lines++;
			ml_count(srv, ml_verb_stat(verb), 1);
			if (verb != ML_V_FLOOD)
				ml_summary_add(&s->u->sum, &s->u->parser, verb);
			if (verb == ML_V_TOOLONG)
				ml_count(srv, ML_ST_LONG_LINES, 1);
			op = ml_reply_op(srv->render.dialect, verb);
			if (backlog + cfg->replies[op].len + cfg->replies[ML_OP_GREET].len + bye >
			    limit)
				op = ML_OP_BACKLOG;
			backlog += cfg->replies[op].len;
			if (obuf_put(s, &srv->render.replies[op])) {
				lost(srv, s);
				return;
			}
			count_reply(srv, op);
			s->u->sum.nreplies++;
			if (ml_op_closes(op)) {
				s->u->closing = 1;
				s->reason = op == ML_OP_QUIT ? ML_ST_CLOSE_QUIT :
					    op == ML_OP_BACKLOG ? ML_ST_CLOSE_BACKLOG :
					    ML_ST_CLOSE_FLOOD;
				break;
			}
		}
		/* Same meaning as the kernel's, per read instead of per segment. */
		if (lines > 1)
			ml_count(srv, ML_ST_MULTI_LINE, 1);
		if (lines > srv->ctr.v[ML_ST_PIPELINE_MAX])
			srv->ctr.v[ML_ST_PIPELINE_MAX] = lines;
	} else if (events & (EPOLLHUP | EPOLLERR)) {
		lost(srv, s);
		return;
	}
	after_output(srv, s);
}

static uint64_t u_idle_ms(struct ml_server *srv, struct ml_session *s)
{
	(void)srv;
	return ml_now_ms() - s->u->last_rx_ms;
}

static void u_drain(struct ml_server *srv, struct ml_session *s)
{
	if (s->state == ML_S_LINGER) {	/* given more time: epoll sees the FIN */
		ml_session_timer(srv, s, s->drain_until_ms);
		return;
	}
	ml_session_close(srv, s);
}

/* A greeting or 421 the controller wrote left: this engine counts it. */
static void u_sent(struct ml_server *srv, struct ml_session *s, unsigned int op)
{
	count_reply(srv, op);
	s->u->sum.nreplies++;	/* set at accept for this engine */
}

/* The session line, while the socket still has its addresses. */
static void log_line(struct ml_server *srv, struct ml_session *s)
{
	struct sockaddr_storage l = {};
	socklen_t ll = sizeof(l);
	char client[64] = "-", local[64] = "-";

	if (!s->u || !ml_session_log_ok(srv))	/* no state: its allocation failed */
		return;
	ml_sesslog_sockaddr(client, sizeof(client), &s->u->peer);
	if (!getsockname(s->fd, (struct sockaddr *)&l, &ll))
		ml_sesslog_sockaddr(local, sizeof(local), &l);
	ml_sesslog_print(&srv->log, client, local, &s->u->sum, s->reason,
			 ml_now_ms() - s->start_ms);
}

static void u_close(struct ml_server *srv, struct ml_session *s)
{
	log_line(srv, s);
	if (s->u) {
		free(s->u->obuf);
		free(s->u);
		s->u = NULL;
	}
	close(s->fd);
}


/*
 * The responder's maps, pinned as the kernel engine pins them, when BPF maps
 * can be made here: the object is loaded with every program's autoload off.
 * Serving does not depend on them, so a failure is a warning.
 */
static int open_maps(struct ml_server *srv, struct ml_maps *m)
{
	struct bpf_program *prog;
	struct ml_info inf = {};
	struct responder_bpf *skel;
	int e;

	ml_log_libbpf(ml_log_level < ML_DEBUG);
	if ((e = ml_maps_lock(m, srv->opts.pin_dir)))
		return e;
	skel = responder_bpf__open();
	if (!skel)
		return -errno;
	m->skel = skel;
	bpf_object__for_each_program(prog, skel->obj)
		bpf_program__set_autoload(prog, false);
	bpf_map__set_max_entries(skel->maps.socks, 1);
	bpf_map__set_max_entries(skel->maps.sessions, 1);
	bpf_map__set_max_entries(skel->maps.events, 4096);	/* unused here */
	if (responder_bpf__load(skel))
		return -errno;
	inf.pid = getpid();
	inf.engine = srv->opts.engine == ML_ENGINE_XDP ? ML_INFO_ENGINE_XDP : ML_INFO_ENGINE_USER;
	inf.max_sessions = srv->opts.max_sessions;
	inf.started = time(NULL);
	snprintf(inf.hostname, sizeof(inf.hostname), "%s", srv->opts.hostname);
	if ((e = ml_maps_write_config(m, &srv->render, 0)) || (e = ml_maps_set_info(m, &inf)) ||
	    (e = ml_maps_pin(m)))
		return e;
	return 0;
}

static int u_start(struct ml_server *srv)
{
	struct ml_maps *m = calloc(1, sizeof(*m));

	if (m) {
		m->lock_fd = -1;
		if (!open_maps(srv, m)) {
			srv->maps = m;
			return 0;
		}
		ml_maps_close(m);
		free(m);
	}
	log_warn("cannot create BPF maps: `mailless stats` will not see this "
		 "instance (its counters are still on --metrics-listen)");
	return 0;
}

static void u_shutdown(struct ml_server *srv)
{
	if (!srv->maps)
		return;
	ml_maps_close(srv->maps);
	free(srv->maps);
	srv->maps = NULL;
}

const struct ml_engine_ops ml_user_engine = {
	.name = "user",
	.start = u_start,
	.shutdown = u_shutdown,
	.admit = u_admit,
	.open = u_open,
	.io = u_io,
	.idle_ms = u_idle_ms,
	.drain = u_drain,
	.sent = u_sent,
	.close = u_close,
};

/* --engine xdp: the XDP guard's responder (bpf/xdpresp.bpf.h, started with
 * the guard in server.c) answers on the guard's interfaces with no socket;
 * what still reaches a listener (another interface, loopback) this engine
 * answers as the user engine does. The responder's session records come
 * through its ring buffer (xr_events) and become the same log lines. */
static struct ring_buffer *xr_ring;	/* one server per process */

static int x_record(void *ctx, void *data, size_t len)
{
	struct ml_server *srv = ctx;
	const struct xr_log_event *le = data;

	if (len < sizeof(*le) || !ml_session_log_ok(srv))
		return 0;
	ml_sesslog_flow(&srv->log, le->flow.laddr, ntohs(le->flow.lport), le->flow.raddr,
			ntohs(le->flow.rport), &le->sum, (int)le->reason, le->dur_ns / 1000000);
	return 0;
}

static int x_poll_fd(struct ml_server *srv)
{
	int fd = ml_guard_events_fd(srv->guard);

	if (fd < 0)
		return -1;
	xr_ring = ring_buffer__new(fd, x_record, srv, NULL);
	if (!xr_ring) {
		log_warn("xdp: reading the responder's session records: %s (no session lines)",
			 strerror(errno));
		return -1;
	}
	return ring_buffer__epoll_fd(xr_ring);
}

static void x_poll(struct ml_server *srv)
{
	(void)srv;
	if (xr_ring)
		ring_buffer__consume(xr_ring);
}

/* Every loop round: the session records the program did not wake us for
 * (it does once a quarter of the ring waits), and the greetings' resend
 * sweep (guard.c), whose 200 ms bounds how late a record is read. */
static int x_tick(struct ml_server *srv)
{
	x_poll(srv);
	return ml_guard_resend(srv->guard);
}

static void x_shutdown(struct ml_server *srv)
{
	x_poll(srv);	/* the last sessions' lines */
	ring_buffer__free(xr_ring);
	xr_ring = NULL;
	u_shutdown(srv);
}

const struct ml_engine_ops ml_xdp_engine = {
	.name = "xdp",
	.start = u_start,
	.shutdown = x_shutdown,
	.admit = u_admit,
	.open = u_open,
	.io = u_io,
	.idle_ms = u_idle_ms,
	.drain = u_drain,
	.poll_fd = x_poll_fd,
	.poll = x_poll,
	.tick = x_tick,
	.sent = u_sent,
	.close = u_close,
};
