// SPDX-License-Identifier: GPL-2.0
/*
 * server.c - the controller's event loop, shared by both engines: listeners,
 * accept, sessions indexed by fd, one timer heap, signals (SIGHUP reloads,
 * SIGTERM/SIGINT stop), and the reply lines the controller writes itself.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "guardctl.h"
#include "log.h"
#include "metrics.h"
#include "proto.h"
#include "server.h"

enum { TAG_LISTEN = 1, TAG_SESSION, TAG_SIGNAL, TAG_ENGINE, TAG_METRICS };
#define TAG(t, v)	(((uint64_t)(t) << 32) | (uint32_t)(v))
#define ACCEPT_BATCH	64
#define ACCEPT_PAUSE_MS	100
/* The pinned controller counters trail by at most this much; one map write
 * per interval however many sessions closed in it. */
#define STATS_FLUSH_MS	100
#define LOST_CHECK_MS	100

uint64_t ml_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- reply lines ---------------------------------------------------------- */

/*
 * Every reply mailless sends, in both dialects; "%s" is the host name.
 *
 * The host name is the first word after the code in the greeting (RFC 1846
 * 4.1, RFC 5321 4.3.1) and in BUSY, which is sent in its place. rcpt: EHLO
 * advertises ENHANCEDSTATUSCODES (RFC 2034), and every reply but the
 * greeting, HELO, EHLO and BUSY has an RFC 3463 enhanced status code between
 * the reply code and the host name. They are sent after HELO too, as Postfix
 * does: to a client that did not ask they are text after the code, and a
 * bounce classifier reads them either way (docs/design.md). rfc7504 answers
 * EHLO 521 like everything else, so it negotiates no extension and sends no
 * enhanced code; its HELO, EHLO, OK and NORCPT are never sent (only
 * REJECT, QUIT, TOOLONG and the 421s are), but rendered as valid lines.
 *
 * A reply is counted once whatever its lines (EHLO: one 250); what the
 * engines budget is its length. The longest, PIPELINE with a 255-octet
 * name, is 315 octets: under ML_REPLY_MAX.
 */
static const struct {
	const char *rcpt, *rfc7504;
} reply_fmt[ML_OP__MAX] = {
	[ML_OP_GREET]	 = { "220 %s ESMTP mailless: this host does not accept mail\r\n",
			     "521 %s does not accept mail (5.3.2)\r\n" },
	[ML_OP_HELO]	 = { "250 %s\r\n",
			     "250 %s\r\n" },
	[ML_OP_EHLO]	 = { "250-%s\r\n250 ENHANCEDSTATUSCODES\r\n",
			     "250 %s\r\n" },
	[ML_OP_OK]	 = { "250 2.0.0 %s OK\r\n",
			     "250 %s OK\r\n" },
	[ML_OP_REJECT]	 = { "521 5.3.2 %s does not accept mail\r\n",
			     "521 %s does not accept mail (5.3.2)\r\n" },
	[ML_OP_NORCPT]	 = { "554 5.3.2 %s no valid recipients\r\n",
			     "554 %s no valid recipients\r\n" },
	[ML_OP_QUIT]	 = { "221 2.0.0 %s closing connection\r\n",
			     "221 %s closing connection\r\n" },
	[ML_OP_TOOLONG]	 = { "500 5.5.2 %s line too long\r\n",
			     "500 %s line too long\r\n" },
	[ML_OP_FLOOD]	 = { "421 4.5.2 %s no line end in 64 KiB, closing connection\r\n",
			     "421 %s no line end in 64 KiB, closing connection\r\n" },
	[ML_OP_PIPELINE] = { "421 4.5.0 %s too many pipelined commands, closing connection\r\n",
			     "421 %s too many pipelined commands, closing connection\r\n" },
	[ML_OP_BACKLOG]	 = { "421 4.5.0 %s too many unread replies, closing connection\r\n",
			     "421 %s too many unread replies, closing connection\r\n" },
	[ML_OP_ERROR]	 = { "421 4.3.0 %s internal error, closing connection\r\n",
			     "421 %s internal error, closing connection\r\n" },
	[ML_OP_TIMEOUT]	 = { "421 4.4.2 %s idle timeout, closing connection\r\n",
			     "421 %s idle timeout, closing connection\r\n" },
	[ML_OP_MAXTIME]	 = { "421 4.4.2 %s session time limit, closing connection\r\n",
			     "421 %s session time limit, closing connection\r\n" },
	[ML_OP_BUSY]	 = { "421 %s too many sessions, try again later\r\n",
			     "421 %s too many sessions, try again later\r\n" },
	[ML_OP_SHUTDOWN] = { "421 4.3.2 %s shutting down, closing connection\r\n",
			     "421 %s shutting down, closing connection\r\n" },
};

void ml_render(struct ml_config *cfg, const struct ml_opts *o)
{
	int rfc7504 = o->dialect == ML_DIALECT_RFC7504;
	unsigned int op;

	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->hostname, sizeof(cfg->hostname), "%s", o->hostname);
	cfg->dialect = o->dialect;
	for (op = ML_OP_GREET; op < ML_OP__MAX; op++) {
		struct ml_reply *r = &cfg->replies[op];
		int n = snprintf(r->text, sizeof(r->text),
				 rfc7504 ? reply_fmt[op].rfc7504 : reply_fmt[op].rcpt, o->hostname);

		r->len = n < (int)sizeof(r->text) ? n : (int)sizeof(r->text) - 1;
	}
}

/* Count a reply the user engine sends (the kernel engine's sk_msg program
 * counts its own, and the controller's lines that pass through it). */
void ml_count_reply(struct ml_server *srv, unsigned int op)
{
	if (srv->eng != &ml_user_engine)
		return;
	ml_count(srv, ml_code_stat(ml_op_code(srv->render.dialect, op)), 1);
	ml_count(srv, ML_ST_TX_BYTES, srv->render.replies[op].len);
}

/*
 * Room in the socket's send buffer for len octets in one go: a reply the
 * controller writes must go whole or not at all (half a 421 and a close is
 * worse than neither; in the kernel engine, sk_msg would read the rest of a
 * line sent again as opcodes). SO_MEMINFO gives the kernel's own test,
 * sk_wmem_queued against sk_sndbuf, with a new skb's cost to spare.
 */
static int send_room(int fd, unsigned int len)
{
	uint32_t mi[SK_MEMINFO_VARS];
	socklen_t sl = sizeof(mi);

	if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mi, &sl) || sl < sizeof(mi))
		return 1;	/* cannot tell: let send() decide */
	return (uint64_t)mi[SK_MEMINFO_WMEM_QUEUED] + len + 4096 <= mi[SK_MEMINFO_SNDBUF];
}

int ml_send_reply(struct ml_server *srv, struct ml_session *s, unsigned int op)
{
	const struct ml_reply *r = &srv->render.replies[op];
	ssize_t n;

	/* A greeting or busy reply goes to a socket that has sent nothing. */
	if (op != ML_OP_GREET && op != ML_OP_BUSY && !send_room(s->fd, r->len))
		return -EAGAIN;
	n = send(s->fd, r->text, r->len, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n == (ssize_t)r->len && srv->eng == &ml_user_engine) {
		ml_count_reply(srv, op);
		s->u->sum.nreplies++;	/* set at accept for this engine */
	}
	return n == (ssize_t)r->len ? 0 : (n < 0 ? -errno : -EAGAIN);
}

/* ---- timers: a binary min-heap of session fds by deadline ----------------- */

static int heap_less(struct ml_server *srv, int a, int b)
{
	return srv->sess[srv->heap[a]].deadline_ms < srv->sess[srv->heap[b]].deadline_ms;
}

static void heap_swap(struct ml_server *srv, int a, int b)
{
	int t = srv->heap[a];

	srv->heap[a] = srv->heap[b];
	srv->heap[b] = t;
	srv->sess[srv->heap[a]].heap_idx = a;
	srv->sess[srv->heap[b]].heap_idx = b;
}

static void heap_fix(struct ml_server *srv, int i)
{
	while (i > 0 && heap_less(srv, i, (i - 1) / 2)) {
		heap_swap(srv, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	for (;;) {
		int l = 2 * i + 1, r = l + 1, m = i;

		if (l < srv->nheap && heap_less(srv, l, m))
			m = l;
		if (r < srv->nheap && heap_less(srv, r, m))
			m = r;
		if (m == i)
			break;
		heap_swap(srv, i, m);
		i = m;
	}
}

static void heap_remove(struct ml_server *srv, struct ml_session *s)
{
	int i = s->heap_idx;

	if (i < 0)
		return;
	s->heap_idx = -1;
	if (--srv->nheap == i)
		return;
	srv->heap[i] = srv->heap[srv->nheap];
	srv->sess[srv->heap[i]].heap_idx = i;
	heap_fix(srv, i);
}

void ml_session_timer(struct ml_server *srv, struct ml_session *s, uint64_t when_ms)
{
	s->deadline_ms = when_ms;
	if (s->heap_idx < 0) {
		s->heap_idx = srv->nheap;
		srv->heap[srv->nheap++] = s->fd;
	}
	heap_fix(srv, s->heap_idx);
}

/* ---- sessions ------------------------------------------------------------- */

int ml_epoll_mod(struct ml_server *srv, int fd, uint32_t events, int add)
{
	struct epoll_event ev = { .events = events, .data.u64 = TAG(TAG_SESSION, fd) };

	return epoll_ctl(srv->epfd, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
}

static void resume_accept(struct ml_server *srv)
{
	int i;

	if (!srv->accept_paused || srv->stopping)
		return;
	for (i = 0; i < srv->nlfd; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG(TAG_LISTEN, i) };

		epoll_ctl(srv->epfd, EPOLL_CTL_MOD, srv->lfd[i], &ev);
	}
	srv->accept_paused = 0;
}

void ml_session_close(struct ml_server *srv, struct ml_session *s)
{
	if (s->state == ML_S_FREE)
		return;
	heap_remove(srv, s);
	ml_srctab_put(&srv->src, s->src);
	s->src = -1;
	if (!s->reason)
		s->reason = ML_ST_CLOSE_CLIENT;
	if (srv->eng->close)
		srv->eng->close(srv, s);
	if (s->u) {
		free(s->u->obuf);
		free(s->u);
		s->u = NULL;
	}
	close(s->fd);	/* also leaves the epoll set */
	/* close() just queued the session's log record: read it now. Inside
	 * the consumer already (a close driven by an event), the running
	 * consumer reads it before it returns. */
	if (srv->nclosed && !srv->in_poll)
		srv->eng->poll(srv);
	s->state = ML_S_FREE;
	srv->nactive--;
	ml_count(srv, s->reason, 1);
	srv->ctr.v[ML_ST_ACTIVE] = srv->nactive;
	resume_accept(srv);
}

/* Send a 421 the controller writes itself, then close. */
static void close_with(struct ml_server *srv, struct ml_session *s, unsigned int op)
{
	s->reason = op == ML_OP_TIMEOUT ? ML_ST_CLOSE_IDLE :
		    op == ML_OP_MAXTIME ? ML_ST_CLOSE_MAXTIME :
		    op == ML_OP_BUSY ? ML_ST_CLOSE_BUSY : ML_ST_CLOSE_SHUTDOWN;
	ml_send_reply(srv, s, op);
	ml_session_close(srv, s);
}

/* TCP_INFO of fd; all zero where the kernel did not fill it in. */
int ml_tcp_info(int fd, struct tcp_info *ti)
{
	socklen_t len = sizeof(*ti);

	memset(ti, 0, sizeof(*ti));
	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, ti, &len) ? -errno : 0;
}

/*
 * The drain or linger deadline passed with replies the client has not taken
 * (unsent, or sent and unacknowledged): close with a reset, which frees them
 * now; a plain close would leave them to an orphaned socket probing a closed
 * window for minutes. What the client already received it can still read.
 */
static void give_up(struct ml_session *s)
{
	struct tcp_info ti;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (ml_tcp_info(s->fd, &ti) == 0 && (ti.tcpi_notsent_bytes || ti.tcpi_unacked))
		setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static uint64_t bytes_acked(int fd)
{
	struct tcp_info ti;

	ml_tcp_info(fd, &ti);
	return ti.tcpi_bytes_acked;
}

/*
 * After a 421 (both engines): FIN behind the replies, and the socket kept
 * open, its input discarded, so that a client still sending gets no reset
 * that would throw away the replies it has not read yet. The wait ends when
 * the client closes too, or ML_LINGER_MS after it last took any of them;
 * drain_bytes holds what it had taken then.
 */
void ml_linger_begin(struct ml_session *s)
{
	shutdown(s->fd, SHUT_WR);
	s->state = ML_S_LINGER;
	s->drain_bytes = bytes_acked(s->fd);
	s->drain_until_ms = ml_now_ms() + ML_LINGER_MS;
}

/* A lingering client that took more of its replies since the last look
 * gets ML_LINGER_MS more, within --max-session-time. */
static int still_taking(struct ml_server *srv, struct ml_session *s, uint64_t now)
{
	uint64_t acked = bytes_acked(s->fd);

	if (acked <= s->drain_bytes ||
	    now >= s->start_ms + (uint64_t)srv->opts.max_session_time * 1000)
		return 0;
	s->drain_bytes = acked;
	s->drain_until_ms = now + ML_LINGER_MS;
	return 1;
}

static uint64_t next_check(struct ml_server *srv, struct ml_session *s, uint64_t idle_ms)
{
	uint64_t now = ml_now_ms();
	uint64_t idle_at = now + (uint64_t)srv->opts.timeout * 1000 - idle_ms;
	uint64_t max_at = s->start_ms + (uint64_t)srv->opts.max_session_time * 1000;

	return idle_at < max_at ? idle_at : max_at;
}

static void session_expired(struct ml_server *srv, struct ml_session *s)
{
	uint64_t now = ml_now_ms(), idle;

	switch (s->state) {
	case ML_S_ACTIVE:
		if (now >= s->start_ms + (uint64_t)srv->opts.max_session_time * 1000) {
			close_with(srv, s, ML_OP_MAXTIME);
			return;
		}
		idle = srv->eng->idle_ms(srv, s);
		if (idle >= (uint64_t)srv->opts.timeout * 1000) {
			close_with(srv, s, ML_OP_TIMEOUT);
			return;
		}
		ml_session_timer(srv, s, next_check(srv, s, idle));
		return;
	case ML_S_DRAIN:
	case ML_S_FAILING:
	case ML_S_LINGER:
		if (now >= s->drain_until_ms &&
		    !(s->state == ML_S_LINGER && still_taking(srv, s, now))) {
			give_up(s);
			ml_session_close(srv, s);
			return;
		}
		srv->eng->drain(srv, s);
		return;
	case ML_S_FREE:
		return;
	}
}

static void accept_ready(struct ml_server *srv, int li)
{
	static uint64_t last_warn, last_full;
	int i, fd;

	for (i = 0; i < ACCEPT_BATCH; i++) {
		struct ml_session *s;

		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		uint64_t hi, lo;
		unsigned int nsrc = 0;

		fd = accept4(srv->lfd[li], (struct sockaddr *)&peer, &plen,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* Never spin: stop polling the listeners until a
				 * session closes or a short pause ends. */
				uint64_t now = ml_now_ms();
				int j;

				if (now - last_warn > 10000) {
					warn("cannot accept: %s; pausing accepts (raise "
					     "LimitNOFILE / RLIMIT_NOFILE or lower max-sessions)",
					     strerror(errno));
					last_warn = now;
				}
				for (j = 0; j < srv->nlfd; j++) {
					struct epoll_event ev = { .events = 0,
						.data.u64 = TAG(TAG_LISTEN, j) };

					epoll_ctl(srv->epfd, EPOLL_CTL_MOD, srv->lfd[j], &ev);
				}
				srv->accept_paused = now + ACCEPT_PAUSE_MS;
				return;
			}
			continue;	/* ECONNABORTED and friends: next one */
		}
		if (fd >= srv->nsess_max) {	/* cannot happen under the rlimit */
			close(fd);
			continue;
		}
		s = &srv->sess[fd];
		memset(s, 0, sizeof(*s));
		s->fd = fd;
		s->heap_idx = -1;
		s->src = -1;
		s->state = ML_S_ACTIVE;
		s->start_ms = ml_now_ms();
		srv->nactive++;
		srv->ctr.v[ML_ST_ACTIVE] = srv->nactive;
		srv->ctr_dirty = 1;
		if (srv->eng == &ml_user_engine) {	/* sock_ops counts the kernel's */
			ml_count(srv, ML_ST_ADMITTED, 1);
			if (ml_usess_new(s, &peer)) {
				s->reason = ML_ST_CLOSE_RESET;
				ml_session_close(srv, s);
				continue;
			}
		} else {
			/* The ring buffer names sessions by socket cookie. A
			 * socket sock_ops could not admit (its session map
			 * full) would be greeted and then never answered. */
			if (ml_kernel_admitted(srv, fd, &s->cookie)) {
				close_with(srv, s, ML_OP_BUSY);
				continue;
			}
		}
		ml_src_key(&peer, &hi, &lo);
		s->src = ml_srctab_get(&srv->src, hi, lo, &nsrc);
		if (srv->nactive > srv->opts.max_sessions) {
			close_with(srv, s, ML_OP_BUSY);
			continue;
		}
		if (s->src < 0 || (srv->opts.max_sessions_per_source &&
				   nsrc > srv->opts.max_sessions_per_source)) {
			if (s->src < 0 && ml_now_ms() - last_full > 10000) {
				warn("per-source session table: no room for a new source "
				     "(%u sources open, at most %d a hash bucket): refused "
				     "with 421 busy, counted as busy_source",
				     srv->src.nlive, ML_SRC_CHAIN);
				last_full = ml_now_ms();
			}
			/* The same 421 as max-sessions, counted apart. */
			s->reason = ML_ST_CLOSE_BUSY_SOURCE;
			ml_send_reply(srv, s, ML_OP_BUSY);
			ml_session_close(srv, s);
			continue;
		}
		if (srv->eng->open(srv, s)) {
			if (!s->reason)
				s->reason = ML_ST_CLOSE_RESET;
			ml_session_close(srv, s);
			continue;
		}
		if (s->state == ML_S_ACTIVE && s->heap_idx < 0)
			ml_session_timer(srv, s, next_check(srv, s, 0));
	}
}

/* ---- listeners ------------------------------------------------------------ */

static int open_listener(const struct ml_listen *l)
{
	int fd, one = 1, zero = 0;
	int fam = l->ss.ss_family;

	fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err("socket for %s: %s", l->text, strerror(errno));
		return -errno;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Accepted sockets inherit fixed buffers (include/mailless.h): a
	 * receive buffer small enough that no skb the kernel engine gets,
	 * even bytes queued before accept() and coalesced, can pass the 64 KiB
	 * its helpers reach; a send buffer large enough for the replies a
	 * client may leave unread. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &(int){ ML_RCVBUF }, sizeof(int)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){ ML_SNDBUF }, sizeof(int)))
		warn("SO_RCVBUF/SO_SNDBUF on %s: %s", l->text, strerror(errno));
	if (fam == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)&l->ss;
		int any = IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);

		/* [::] serves IPv4 too; a specific IPv6 address only itself. */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, any ? &zero : &one, sizeof(int));
	}
	if (bind(fd, (const struct sockaddr *)&l->ss, l->len)) {
		int e = errno;

		if (e == EADDRINUSE)
			err("cannot listen on %s: the port is in use by another program "
			    "(see: ss -ltnp)", l->text);
		else if (e == EACCES)
			err("cannot listen on %s: %s (run as root or grant "
			    "CAP_NET_BIND_SERVICE)", l->text, strerror(e));
		else if (e == EADDRNOTAVAIL)
			err("cannot listen on %s: the address is not on this host", l->text);
		else
			err("cannot listen on %s: %s", l->text, strerror(e));
		close(fd);
		return -e;
	}
	return fd;
}

static void raise_nofile(struct ml_server *srv)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	srv->nsess_max = rl.rlim_cur > (1u << 22) ? (1 << 22) : (int)rl.rlim_cur;
	if ((unsigned int)srv->nsess_max < srv->opts.max_sessions + 64)
		warn("RLIMIT_NOFILE is %d, below max-sessions %u: sessions past the "
		     "limit will wait (raise LimitNOFILE in the systemd unit)",
		     srv->nsess_max, srv->opts.max_sessions);
}

/* ---- signals -------------------------------------------------------------- */

static void reload(struct ml_server *srv)
{
	struct ml_opts n;

	ml_opts_defaults(&n);
	memcpy(n.conf_path, srv->opts.conf_path, sizeof(n.conf_path));
	n.conf_required = srv->opts.conf_required;
	if (ml_opts_load(&n, srv->cli, srv->ncli)) {
		err("reload failed, keeping the running configuration");
		return;
	}
	if (n.nlisten != srv->opts.nlisten ||
	    memcmp(n.listen, srv->opts.listen, sizeof(n.listen)) ||
	    n.engine != srv->opts.engine || strcmp(n.pin_dir, srv->opts.pin_dir))
		warn("reload: listen, engine and pin-dir changes apply after a restart");
	memcpy(srv->opts.hostname, n.hostname, sizeof(n.hostname));
	srv->opts.dialect = n.dialect;
	srv->opts.timeout = n.timeout;
	srv->opts.max_session_time = n.max_session_time;
	srv->opts.max_sessions = n.max_sessions;
	srv->opts.max_sessions_per_source = n.max_sessions_per_source;
	ml_render(&srv->render, &srv->opts);
	if (ml_bpf_publish(srv)) {
		err("reload: could not publish the configuration to the kernel");
		return;
	}
	ml_guard_reload(srv, &n);
	info("reloaded: hostname %s, dialect %s, timeout %us",
	     srv->opts.hostname, ml_dialect_name(srv->opts.dialect), srv->opts.timeout);
}

static void stop(struct ml_server *srv)
{
	int i;

	srv->stopping = 1;
	for (i = 0; i < srv->nlfd; i++)
		close(srv->lfd[i]);
	srv->nlfd = 0;
	for (i = 0; i < srv->nsess_max; i++) {
		struct ml_session *s = &srv->sess[i];

		if (s->state == ML_S_ACTIVE)
			close_with(srv, s, ML_OP_SHUTDOWN);
		else if (s->state != ML_S_FREE)
			ml_session_close(srv, s);
	}
}

/* ---- the loop ------------------------------------------------------------- */

int ml_serve(struct ml_opts *o, const struct ml_cli_set *cli, int ncli)
{
	struct ml_server *srv;
	struct epoll_event evs[256];
	sigset_t mask;
	char addrs[ML_LISTEN_MAX * 66] = "";
	int i, ret = -1, efd = -1;

	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->opts = *o;
	srv->cli = cli;
	srv->ncli = ncli;
	srv->epfd = srv->sigfd = -1;
	ml_render(&srv->render, &srv->opts);
	raise_nofile(srv);
	srv->sess = calloc(srv->nsess_max, sizeof(*srv->sess));
	srv->heap = calloc(srv->nsess_max, sizeof(*srv->heap));
	if (!srv->sess || !srv->heap || ml_srctab_init(&srv->src, srv->nsess_max)) {
		err("out of memory for %d sessions", srv->nsess_max);
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	/* A signal ignored at exec (background jobs of some shells, service
	 * wrappers) would be discarded even while blocked: take them back. */
	signal(SIGHUP, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	srv->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (srv->sigfd < 0 || srv->epfd < 0) {
		err("signalfd/epoll: %s", strerror(errno));
		goto out;
	}

	/* Bind first, load and attach the engine, and only then listen: no
	 * connection may arrive before the kernel path is ready for it. The
	 * listeners are made in the kernel engine's own cgroup, so that their
	 * children are the only sockets its sock_ops sees. */
	if (srv->opts.engine != ML_ENGINE_USER)
		ml_kernel_cgroup_enter();
	for (i = 0; i < srv->opts.nlisten; i++) {
		int fd = open_listener(&srv->opts.listen[i]);

		if (fd < 0)
			goto out;
		srv->lfd[srv->nlfd++] = fd;
	}
	if (srv->opts.engine != ML_ENGINE_USER) {
		int e;

		/* With --engine auto a kernel engine that cannot start is not
		 * an error of this run: its reasons are logged as warnings. */
		ml_log_soften = srv->opts.engine == ML_ENGINE_AUTO;
		e = ml_kernel_init(srv);
		ml_log_soften = 0;

		if (e) {
			if (srv->opts.engine == ML_ENGINE_KERNEL) {
				err("the kernel engine could not start (see above); "
				    "--engine user serves without BPF");
				goto out;
			}
			warn("falling back to the user engine (see above for why "
			     "the kernel engine could not start)");
		}
	}
	if (!srv->eng) {
		srv->eng = &ml_user_engine;
		if (ml_maps_init(srv))
			warn("cannot create BPF maps: `mailless stats` will not see this "
			     "instance (its counters are still on --metrics-listen)");
	}

	/* In front of the listeners, before they listen. */
	if (ml_guard_start(srv)) {
		err("the XDP guard could not start (see above); without --xdp mailless "
		    "serves unguarded");
		goto out;
	}

	for (i = 0; i < srv->nlfd; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG(TAG_LISTEN, i) };

		if (listen(srv->lfd[i], 4096) ||
		    epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->lfd[i], &ev)) {
			err("listen on %s: %s", srv->opts.listen[i].text, strerror(errno));
			goto out;
		}
		snprintf(addrs + strlen(addrs), sizeof(addrs) - strlen(addrs), "%s%s",
			 i ? " " : "", srv->opts.listen[i].text);
	}
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG(TAG_SIGNAL, 0) };

		epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->sigfd, &ev);
	}
	if (srv->eng->poll_fd && (efd = srv->eng->poll_fd(srv)) >= 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG(TAG_ENGINE, 0) };

		epoll_ctl(srv->epfd, EPOLL_CTL_ADD, efd, &ev);
	}
	if (ml_metrics_open(srv, TAG_METRICS))
		goto out;
	info("ready: engine %s, dialect %s, hostname %s, listening on %s",
	     srv->eng->name, ml_dialect_name(srv->opts.dialect), srv->opts.hostname, addrs);

	while (!srv->stopping) {
		int n, timeout = -1;
		uint64_t now = ml_now_ms();

		if (srv->nheap) {
			uint64_t d = srv->sess[srv->heap[0]].deadline_ms;

			timeout = d <= now ? 0 : (d - now > 60000 ? 60000 : (int)(d - now));
		}
		/* A ring buffer event lost to overflow wakes nobody: while
		 * sessions are open, look at events_lost at least this often. */
		if (srv->eng == &ml_kernel_engine && srv->nactive &&
		    (timeout < 0 || timeout > LOST_CHECK_MS))
			timeout = LOST_CHECK_MS;
		if (srv->metrics) {
			int t = ml_metrics_tick(srv, now);

			if (t >= 0 && (timeout < 0 || t < timeout))
				timeout = t;
		}
		if (srv->ctr_dirty) {
			uint64_t at = srv->ctr_flushed_ms + STATS_FLUSH_MS;
			int t = at > now ? (int)(at - now) : 0;

			if (timeout < 0 || t < timeout)
				timeout = t;
		}
		if (srv->accept_paused) {
			int t = srv->accept_paused > now ?
				(int)(srv->accept_paused - now) : 0;

			if (timeout < 0 || t < timeout)
				timeout = t;
		}
		n = epoll_wait(srv->epfd, evs, 256, timeout);
		if (n < 0 && errno != EINTR) {
			err("epoll_wait: %s", strerror(errno));
			break;
		}
		for (i = 0; i < n; i++) {
			uint64_t d = evs[i].data.u64;
			uint32_t v = (uint32_t)d;

			switch (d >> 32) {
			case TAG_LISTEN:
				if (!srv->stopping && (int)v < srv->nlfd)
					accept_ready(srv, v);
				break;
			case TAG_SESSION:
				if (srv->sess[v].state != ML_S_FREE && srv->eng->io)
					srv->eng->io(srv, &srv->sess[v], evs[i].events);
				break;
			case TAG_ENGINE:
				srv->eng->poll(srv);
				break;
			case TAG_METRICS:
				ml_metrics_event(srv, v);
				break;
			case TAG_SIGNAL: {
				struct signalfd_siginfo si;

				while (read(srv->sigfd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo == SIGHUP) {
						reload(srv);
					} else {
						info("signal %u: stopping", si.ssi_signo);
						stop(srv);
					}
				}
				break;
			}
			}
		}
		if (srv->eng == &ml_kernel_engine)
			ml_kernel_sweep(srv);
		now = ml_now_ms();
		while (srv->nheap && srv->sess[srv->heap[0]].deadline_ms <= now) {
			struct ml_session *s = &srv->sess[srv->heap[0]];

			heap_remove(srv, s);
			session_expired(srv, s);
		}
		if (srv->accept_paused && srv->accept_paused <= now)
			resume_accept(srv);
		if (srv->ctr_dirty && now >= srv->ctr_flushed_ms + STATS_FLUSH_MS) {
			ml_bpf_flush_stats(srv);
			srv->ctr_dirty = 0;
			srv->ctr_flushed_ms = now;
		}
	}
	ret = 0;
out:
	if (!srv->stopping)
		stop(srv);
	ml_metrics_close(srv);
	ml_guard_stop(srv);	/* before the pin dir goes */
	if (srv->eng_priv)
		ml_bpf_shutdown(srv);
	ml_kernel_cgroup_leave();
	if (srv->epfd >= 0)
		close(srv->epfd);
	if (srv->sigfd >= 0)
		close(srv->sigfd);
	free(srv->sess);
	free(srv->heap);
	ml_srctab_free(&srv->src);
	free(srv);
	return ret;
}
