// SPDX-License-Identifier: GPL-2.0
/*
 * session.c - the core services both engines call (engine.h): close a
 * session, arm its timer (one binary min-heap of fds by deadline), send a
 * reply line the controller writes itself, linger after a 421; and the
 * listeners' accept pause, which a close lifts.
 */
#include <errno.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "engine.h"
#include "server.h"

/* ---- reply lines ---------------------------------------------------------- */

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

	if (n == (ssize_t)r->len && srv->eng->sent)
		srv->eng->sent(srv, s, op);
	return n == (ssize_t)r->len ? 0 : (n < 0 ? -errno : -EAGAIN);
}

int ml_session_log_ok(struct ml_server *srv)
{
	int r = ml_sesslog_allow(&srv->log);

	if (r < 0)
		ml_count(srv, ML_ST_LOG_DROPPED, 1);
	return r > 0;
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

void ml_timer_remove(struct ml_server *srv, struct ml_session *s)
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
	struct epoll_event ev = { .events = events, .data.u64 = ML_TAG(ML_TAG_SESSION, fd) };

	return epoll_ctl(srv->epfd, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
}

void ml_accept_pause(struct ml_server *srv, uint64_t until_ms)
{
	int j;

	for (j = 0; j < srv->nlfd; j++) {
		struct epoll_event ev = { .events = 0, .data.u64 = ML_TAG(ML_TAG_LISTEN, j) };

		epoll_ctl(srv->epfd, EPOLL_CTL_MOD, srv->lfd[j], &ev);
	}
	srv->accept_paused = until_ms;
}

void ml_accept_resume(struct ml_server *srv)
{
	int i;

	if (!srv->accept_paused || srv->stopping)
		return;
	for (i = 0; i < srv->nlfd; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = ML_TAG(ML_TAG_LISTEN, i) };

		epoll_ctl(srv->epfd, EPOLL_CTL_MOD, srv->lfd[i], &ev);
	}
	srv->accept_paused = 0;
}

void ml_session_close(struct ml_server *srv, struct ml_session *s)
{
	if (s->state == ML_S_FREE)
		return;
	ml_timer_remove(srv, s);
	ml_srctab_put(&srv->src, s->src);
	s->src = -1;
	if (!s->reason)
		s->reason = ML_ST_CLOSE_CLIENT;
	srv->eng->close(srv, s);	/* closes s->fd: it leaves the epoll set */
	s->state = ML_S_FREE;
	srv->nactive--;
	ml_count(srv, s->reason, 1);
	srv->ctr.v[ML_ST_ACTIVE] = srv->nactive;
	ml_accept_resume(srv);
}

/* TCP_INFO of fd; all zero where the kernel did not fill it in. */
int ml_tcp_info(int fd, struct tcp_info *ti)
{
	socklen_t len = sizeof(*ti);

	memset(ti, 0, sizeof(*ti));
	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, ti, &len) ? -errno : 0;
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
int ml_linger_extend(struct ml_server *srv, struct ml_session *s, uint64_t now)
{
	uint64_t acked = bytes_acked(s->fd);

	if (acked <= s->drain_bytes ||
	    now >= s->start_ms + (uint64_t)srv->opts.max_session_time * 1000)
		return 0;
	s->drain_bytes = acked;
	s->drain_until_ms = now + ML_LINGER_MS;
	return 1;
}
