// SPDX-License-Identifier: GPL-2.0
/*
 * server.c - the controller's event loop, shared by both engines: start the
 * first engine that can, then listeners, accept, the session limits and
 * timeouts, signals (SIGHUP reloads, SIGTERM/SIGINT stop). It knows an
 * engine only by its ops (engine.h); the core services it shares with the
 * engines are in session.c.
 */
#include <errno.h>
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
#include <systemd/sd-daemon.h>

#include "clock.h"
#include "guardctl.h"
#include "log.h"
#include "maps.h"
#include "metrics.h"
#include "options.h"
#include "privs.h"
#include "proto.h"
#include "replies.h"
#include "server.h"

#define ACCEPT_BATCH	64
#define ACCEPT_PAUSE_MS	100
/* The pinned controller counters trail by at most this much; one map write
 * per interval however many sessions closed in it. */
#define STATS_FLUSH_MS	100

/* Send a 421 the controller writes itself, then close. */
static void close_with(struct ml_server *srv, struct ml_session *s, unsigned int op)
{
	s->reason = op == ML_OP_TIMEOUT ? ML_ST_CLOSE_IDLE :
		    op == ML_OP_MAXTIME ? ML_ST_CLOSE_MAXTIME :
		    op == ML_OP_BUSY ? ML_ST_CLOSE_BUSY : ML_ST_CLOSE_SHUTDOWN;
	ml_send_reply(srv, s, op);
	ml_session_close(srv, s);
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
		    !(s->state == ML_S_LINGER && ml_linger_extend(srv, s, now))) {
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
	int i, fd, r;

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

				if (now - last_warn > 10000) {
					log_warn("cannot accept: %s; pausing accepts (raise "
						 "LimitNOFILE / RLIMIT_NOFILE or lower max-sessions)",
						 strerror(errno));
					last_warn = now;
				}
				ml_accept_pause(srv, now + ACCEPT_PAUSE_MS);
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
		r = srv->eng->admit(srv, s, &peer);
		if (r == -EBUSY) {
			close_with(srv, s, ML_OP_BUSY);
			continue;
		}
		if (r) {
			s->reason = ML_ST_CLOSE_RESET;
			ml_session_close(srv, s);
			continue;
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
				log_warn("per-source session table: no room for a new source "
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
		int e = errno;

		log_err("socket for %s: %s", l->text, strerror(e));
		return -e;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Accepted sockets inherit fixed buffers (include/mailless.h): a
	 * receive buffer small enough that no skb the kernel engine gets,
	 * even bytes queued before accept() and coalesced, can pass the 64 KiB
	 * its helpers reach; a send buffer large enough for the replies a
	 * client may leave unread. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &(int){ ML_RCVBUF }, sizeof(int)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){ ML_SNDBUF }, sizeof(int)))
		log_warn("SO_RCVBUF/SO_SNDBUF on %s: %s", l->text, strerror(errno));
	if (fam == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)&l->ss;
		int any = IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);

		/* [::] serves IPv4 too; a specific IPv6 address only itself. */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, any ? &zero : &one, sizeof(int));
	}
	if (bind(fd, (const struct sockaddr *)&l->ss, l->len)) {
		int e = errno;

		if (e == EADDRINUSE)
			log_err("cannot listen on %s: the port is in use by another program "
			    "(see: ss -ltnp)", l->text);
		else if (e == EACCES)
			log_err("cannot listen on %s: %s (run as root or grant "
			    "CAP_NET_BIND_SERVICE)", l->text, strerror(e));
		else if (e == EADDRNOTAVAIL)
			log_err("cannot listen on %s: the address is not on this host", l->text);
		else
			log_err("cannot listen on %s: %s", l->text, strerror(e));
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
		log_warn("RLIMIT_NOFILE is %d, below max-sessions %u: sessions past the "
		     "limit will wait (raise LimitNOFILE in the systemd unit)",
		     srv->nsess_max, srv->opts.max_sessions);
}

/* ---- signals -------------------------------------------------------------- */

static void reload(struct ml_server *srv)
{
	struct ml_opts n, g;
	char keys[256];

	ml_sandbox_test_hook();
	ml_opts_defaults(&n);
	memcpy(n.conf_path, srv->opts.conf_path, sizeof(n.conf_path));
	n.conf_required = srv->opts.conf_required;
	if (ml_opts_load(&n, srv->cli, srv->ncli)) {
		log_err("reload failed, keeping the running configuration");
		return;
	}
	if (ml_opts_changed(&srv->opts, &n, ML_RESTART, keys, sizeof(keys)))
		log_warn("reload: %s changed; that applies after a restart", keys);
	ml_opts_apply(&srv->opts, &n, ML_RELOAD);
	ml_render(&srv->render, &srv->opts);
	if (srv->maps && ml_maps_publish(srv->maps, &srv->render)) {
		log_err("reload: could not publish the configuration to the kernel");
		return;
	}
	/* The guard's new limits and lists, with the running ports and
	 * interfaces; all of them at once, or none. */
	g = srv->opts;
	ml_opts_apply(&g, &n, ML_RELOAD_GUARD);
	if (!srv->guard || !ml_guard_reload(srv->guard, &g))
		srv->opts.guard = g.guard;
	log_info("reloaded: hostname %s, dialect %s, timeout %us",
	     srv->opts.hostname, ml_dialect_name(srv->opts.dialect), srv->opts.timeout);
}

/* SIGHUP, told to systemd: reloading, then ready again (with the old
 * settings if the new ones were refused: mailless serves on either way). */
static void reload_notify(struct ml_server *srv)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
		   (unsigned long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
	reload(srv);
	sd_notifyf(0, "READY=1\nSTATUS=serving, hostname %s, dialect %s", srv->opts.hostname,
		   ml_dialect_name(srv->opts.dialect));
}

static void stop(struct ml_server *srv)
{
	int i;

	sd_notify(0, "STOPPING=1");
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

/*
 * Start the first engine of the list that can. One that has a successor
 * and cannot start is not an error of this run: its reasons are logged as
 * warnings, and the next one is tried.
 */
static int start_engine(struct ml_server *srv, const struct ml_engine_ops *const *engines)
{
	int i;

	for (i = 0; engines[i]; i++) {
		int e, last = !engines[i + 1];

		ml_log_soften = !last;
		e = engines[i]->start(srv);
		ml_log_soften = 0;
		if (!e) {
			srv->eng = engines[i];
			return 0;
		}
		if (last) {
			log_err("the %s engine could not start (see above)%s%s", engines[i]->name,
				engines[i]->instead ? "; " : "",
				engines[i]->instead ? engines[i]->instead : "");
			return e;
		}
		log_warn("falling back to the %s engine (see above for why the %s engine "
			 "could not start)", engines[i + 1]->name, engines[i]->name);
	}
	return -EINVAL;
}

int ml_serve(struct ml_opts *o, const struct ml_privs *privs,
	     const struct ml_cli_set *cli, int ncli,
	     const struct ml_engine_ops *const *engines)
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
	srv->tick_ms = -1;
	srv->log.o = &srv->opts;
	ml_render(&srv->render, &srv->opts);
	raise_nofile(srv);
	srv->sess = calloc(srv->nsess_max, sizeof(*srv->sess));
	srv->heap = calloc(srv->nsess_max, sizeof(*srv->heap));
	if (!srv->sess || !srv->heap || ml_srctab_init(&srv->src, srv->nsess_max)) {
		log_err("out of memory for %d sessions", srv->nsess_max);
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
		log_err("signalfd/epoll: %s", strerror(errno));
		goto out;
	}

	/* Bind first, start the engine, and only then listen: no connection
	 * may arrive before the kernel path is ready for it. The listeners
	 * are made after every engine's prepare (the kernel engine moves into
	 * a cgroup of its own, so that their children are the only sockets
	 * its sock_ops sees). */
	for (i = 0; engines[i]; i++)
		if (engines[i]->prepare)
			engines[i]->prepare(srv);
	for (i = 0; i < srv->opts.nlisten; i++) {
		int fd = open_listener(&srv->opts.listen[i]);

		if (fd < 0)
			goto out;
		srv->lfd[srv->nlfd++] = fd;
	}
	if (start_engine(srv, engines))
		goto out;

	/* In front of the listeners, before they listen. */
	if (ml_guard_start(&srv->guard, &srv->opts)) {
		log_err("the XDP guard could not start (see above); without --xdp mailless "
		    "serves unguarded");
		goto out;
	}

	for (i = 0; i < srv->nlfd; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = ML_TAG(ML_TAG_LISTEN, i) };

		if (listen(srv->lfd[i], 4096) ||
		    epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->lfd[i], &ev)) {
			log_err("listen on %s: %s", srv->opts.listen[i].text, strerror(errno));
			goto out;
		}
		snprintf(addrs + strlen(addrs), sizeof(addrs) - strlen(addrs), "%s%s",
			 i ? " " : "", srv->opts.listen[i].text);
	}
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = ML_TAG(ML_TAG_SIGNAL, 0) };

		epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->sigfd, &ev);
	}
	if (srv->eng->poll_fd && (efd = srv->eng->poll_fd(srv)) >= 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = ML_TAG(ML_TAG_ENGINE, 0) };

		epoll_ctl(srv->epfd, EPOLL_CTL_ADD, efd, &ev);
	}
	if (ml_metrics_open(srv, ML_TAG_METRICS))
		goto out;
	/* Everything that needs privilege is done: give it up (privs.c). */
	if (ml_privs_drop(privs, srv->guard ? ML_BPF_CREATE :
			  srv->maps ? ML_BPF_FDS : ML_BPF_NONE))
		goto out;
	log_info("ready: engine %s, dialect %s, hostname %s, listening on %s",
	     srv->eng->name, ml_dialect_name(srv->opts.dialect), srv->opts.hostname, addrs);
	/* systemd (Type=notify): every listener and program is in place. */
	sd_notifyf(0, "READY=1\nSTATUS=serving %s, engine %s\nMAINPID=%lu", addrs,
		   srv->eng->name, (unsigned long)getpid());

	/* A first tick before the first wait: it sets the loop's pace (the
	 * xdp engine's 200 ms), or the loop slept until some event came. */
	if (srv->eng->tick)
		srv->tick_ms = srv->eng->tick(srv);
	while (!srv->stopping) {
		int n, timeout = -1;
		uint64_t now = ml_now_ms();

		if (srv->nheap) {
			uint64_t d = srv->sess[srv->heap[0]].deadline_ms;

			timeout = d <= now ? 0 : (d - now > 60000 ? 60000 : (int)(d - now));
		}
		if (srv->tick_ms >= 0 && (timeout < 0 || timeout > srv->tick_ms))
			timeout = srv->tick_ms;
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
			log_err("epoll_wait: %s", strerror(errno));
			break;
		}
		for (i = 0; i < n; i++) {
			uint64_t d = evs[i].data.u64;
			uint32_t v = (uint32_t)d;

			switch (d >> 32) {
			case ML_TAG_LISTEN:
				if (!srv->stopping && (int)v < srv->nlfd)
					accept_ready(srv, v);
				break;
			case ML_TAG_SESSION:
				if (srv->sess[v].state != ML_S_FREE && srv->eng->io)
					srv->eng->io(srv, &srv->sess[v], evs[i].events);
				break;
			case ML_TAG_ENGINE:
				srv->eng->poll(srv);
				break;
			case ML_TAG_METRICS:
				ml_metrics_event(srv, v);
				break;
			case ML_TAG_SIGNAL: {
				struct signalfd_siginfo si;

				while (read(srv->sigfd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo == SIGHUP) {
						reload_notify(srv);
					} else {
						log_info("signal %u: stopping", si.ssi_signo);
						stop(srv);
					}
				}
				break;
			}
			}
		}
		if (srv->eng->tick)
			srv->tick_ms = srv->eng->tick(srv);
		now = ml_now_ms();
		while (srv->nheap && srv->sess[srv->heap[0]].deadline_ms <= now) {
			struct ml_session *s = &srv->sess[srv->heap[0]];

			ml_timer_remove(srv, s);
			session_expired(srv, s);
		}
		if (srv->accept_paused && srv->accept_paused <= now)
			ml_accept_resume(srv);
		if (srv->ctr_dirty && now >= srv->ctr_flushed_ms + STATS_FLUSH_MS) {
			if (srv->maps)
				ml_maps_write_ctl(srv->maps, &srv->ctr);
			srv->ctr_dirty = 0;
			srv->ctr_flushed_ms = now;
		}
	}
	ret = 0;
out:
	if (!srv->stopping)
		stop(srv);
	ml_metrics_close(srv);
	ml_guard_stop(&srv->guard);	/* before the pin dir goes */
	if (srv->eng && srv->eng->shutdown)
		srv->eng->shutdown(srv);
	for (i = 0; engines[i]; i++)
		if (engines[i]->unprepare)
			engines[i]->unprepare(srv);
	if (srv->epfd >= 0)
		close(srv->epfd);
	if (srv->sigfd >= 0)
		close(srv->sigfd);
	if (ml_privs_dropped)
		log_info("stopped; the pins under %s%s stay for `mailless unload` (as root; the "
			 "systemd unit runs it after every stop): removing them needs privileges "
			 "user %s gave up", srv->opts.pin_dir,
			 srv->opts.guard.niface ? " and the XDP guard" : "", privs->user);
	free(srv->sess);
	free(srv->heap);
	ml_srctab_free(&srv->src);
	free(srv);
	return ret;
}
