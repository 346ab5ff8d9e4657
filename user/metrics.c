// SPDX-License-Identifier: GPL-2.0
/*
 * metrics.c - Prometheus exposition from the controller's own event loop:
 * `--metrics-listen ADDR:PORT` serves GET /metrics (text format 0.0.4), and
 * `--metrics-file PATH` rewrites a file atomically (temp file + rename) for
 * node_exporter's textfile collector. A scrape is a handful of non-blocking
 * syscalls; a slow or silent scraper is dropped, never waited for: it has
 * HEAD_MS from accept to send a complete request head and SCRAPE_MS to be
 * done, and when every slot is taken the oldest slot still waiting for its
 * head makes room for the newcomer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guardctl.h"
#include "http.h"
#include "clock.h"
#include "log.h"
#include "maps.h"
#include "metrics.h"
#include "server.h"
#include "stats.h"

#define SCRAPERS	16	/* concurrent scrape connections */
#define REQ_MAX		4096	/* request head, bytes */
#define HEAD_MS		2000	/* accept to complete request head, else dropped */
#define SCRAPE_MS	5000	/* a scrape that takes longer is dropped */

struct scraper {
	int fd;			/* -1: free */
	uint64_t accepted_ms;
	char req[REQ_MAX];
	size_t rlen;
	char *resp;
	size_t len, off;
};

struct ml_metrics {
	int lfd;
	struct scraper sc[SCRAPERS];
	uint64_t next_file_ms;
};

char *ml_metrics_render(struct ml_server *srv, size_t *len)
{
	struct ml_build b = {
		.engine = srv->eng->name,
		.dialect = ml_dialect_name(srv->opts.dialect),
		.hostname = srv->opts.hostname,
	};
	struct ml_counters c;
	struct ml_xdp_counters x;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		return NULL;
	ml_maps_counters(srv->maps, &srv->ctr, &c);
	b.xdp = ml_guard_counters(srv->guard, &x) ? NULL : &x;
	if (b.xdp && x.responder)
		ml_stats_merge(&c, &x.dialog);
	ml_stats_prometheus(f, &c, &b);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}

/*
 * The metrics file, replaced whole: a temp file made by mkstemp in the same
 * directory (O_CREAT|O_EXCL: never an existing file, never through a
 * symlink, whoever owns the directory), mode 0644, then rename over PATH.
 * No fsync: the file is rewritten every interval, and a reader sees the old
 * or the new text whole.
 */
static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			errno = EIO;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

static void write_file(struct ml_server *srv)
{
	const char *path = srv->opts.metrics_file;
	char tmp[PATH_MAX + 32];
	size_t len = 0;
	char *body = ml_metrics_render(srv, &len);
	int fd, e = 0;

	if (!body)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		e = errno;
	} else {
		if (fchmod(fd, 0644) || write_all(fd, body, len))
			e = errno;
		if (close(fd) && !e)
			e = errno;
		if (!e && rename(tmp, path))
			e = errno;
		if (e)
			unlink(tmp);
	}
	if (e) {
		static uint64_t last;

		if (ml_now_ms() - last > 60000) {	/* say it once a minute */
			log_warn("cannot write metrics file %s (temp file %s): %s%s", path, tmp,
			     strerror(e), e == EACCES && geteuid() ? " (mailless serves as an "
			     "unprivileged user: give it a directory it may write; under systemd, "
			     "also ReadWritePaths=)" : "");
			last = ml_now_ms();
		}
	}
	free(body);
}

int ml_metrics_open(struct ml_server *srv, int tag)
{
	struct ml_metrics *m;
	int i, one = 1;

	if (!srv->opts.metrics_listen.len && !srv->opts.metrics_file[0])
		return 0;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->lfd = -1;
	for (i = 0; i < SCRAPERS; i++)
		m->sc[i].fd = -1;
	srv->metrics = m;
	if (srv->opts.metrics_listen.len) {
		const struct ml_listen *l = &srv->opts.metrics_listen;
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)tag << 32 };

		m->lfd = socket(l->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (m->lfd < 0 ||
		    setsockopt(m->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
		    bind(m->lfd, (const struct sockaddr *)&l->ss, l->len) ||
		    listen(m->lfd, 64) || epoll_ctl(srv->epfd, EPOLL_CTL_ADD, m->lfd, &ev)) {
			int e = errno;

			log_err("cannot serve metrics on %s: %s", l->text, strerror(e));
			return -e;
		}
	}
	return 0;
}

static void drop(struct ml_server *srv, struct scraper *sc)
{
	(void)srv;
	close(sc->fd);
	free(sc->resp);
	sc->resp = NULL;
	sc->fd = -1;
}

/* The response, whole; with_body = 0 for HEAD: the same headers (the
 * Content-Length of the body GET would get) and no body. */
static void respond(struct ml_server *srv, struct scraper *sc, int code, const char *why,
		    const char *ctype, const char *extra, const char *body, size_t blen,
		    int with_body)
{
	FILE *f = open_memstream(&sc->resp, &sc->len);

	if (!f) {
		drop(srv, sc);
		return;
	}
	fprintf(f, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		"Connection: close\r\n%s\r\n", code, why, ctype, blen, extra);
	if (with_body)
		fwrite(body, 1, blen, f);
	fclose(f);
	sc->off = 0;
}

/* A complete, well-formed request head: prepare the response. */
static void handle(struct ml_server *srv, struct scraper *sc, const struct ml_http_req *req)
{
	static const char plain[] = "text/plain; charset=utf-8";
	int head = !strcmp(req->method, "HEAD");
	size_t blen = 0;
	char *body;

	if (strcmp(req->path, "/metrics") && strncmp(req->path, "/metrics?", 9)) {
		respond(srv, sc, 404, "Not Found", plain, "", "only /metrics is served here\n", 29,
			!head);
		return;
	}
	if (strcmp(req->method, "GET") && !head) {
		respond(srv, sc, 405, "Method Not Allowed", plain, "Allow: GET, HEAD\r\n",
			"only GET /metrics\n", 18, 1);
		return;
	}
	body = ml_metrics_render(srv, &blen);
	if (!body) {
		respond(srv, sc, 500, "Internal Server Error", plain, "", "out of memory\n", 14,
			!head);
		return;
	}
	respond(srv, sc, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", "", body, blen,
		!head);
	free(body);
}

static void io(struct ml_server *srv, struct scraper *sc)
{
	struct ml_http_req req;
	ssize_t n;

	if (!sc->resp) {
		n = recv(sc->fd, sc->req + sc->rlen, REQ_MAX - sc->rlen, 0);
		if (n <= 0) {
			if (n == 0 || errno != EAGAIN)
				drop(srv, sc);
			return;
		}
		sc->rlen += n;
		switch (ml_http_parse(sc->req, sc->rlen, &req)) {
		case ML_HTTP_DONE:
			handle(srv, sc, &req);
			break;
		case ML_HTTP_BAD:
			respond(srv, sc, 400, "Bad Request", "text/plain; charset=utf-8", "",
				"bad request\n", 12, 1);
			break;
		case ML_HTTP_MORE:
			if (sc->rlen < REQ_MAX)
				return;
			respond(srv, sc, 431, "Request Header Fields Too Large",
				"text/plain; charset=utf-8", "", "request too large\n", 18, 1);
			break;
		}
		if (!sc->resp)
			return;
	}
	while (sc->off < sc->len) {
		n = send(sc->fd, sc->resp + sc->off, sc->len - sc->off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN) {
				struct epoll_event ev = { .events = EPOLLOUT,
					.data.u64 = ML_TAG(ML_TAG_METRICS, sc - srv->metrics->sc + 1) };

				epoll_ctl(srv->epfd, EPOLL_CTL_MOD, sc->fd, &ev);
				return;
			}
			break;
		}
		sc->off += n;
	}
	drop(srv, sc);
}

/* Every slot is taken: drop the one that has waited longest without a
 * complete request head (an idle or trickling client), so that a scraper
 * is never locked out by idle connections. Returns its index, or -1 if
 * every slot already has its response. */
static int evict_idle(struct ml_server *srv)
{
	struct ml_metrics *m = srv->metrics;
	int i, old = -1;

	for (i = 0; i < SCRAPERS; i++)
		if (!m->sc[i].resp && (old < 0 || m->sc[i].accepted_ms < m->sc[old].accepted_ms))
			old = i;
	if (old >= 0)
		drop(srv, &m->sc[old]);
	return old;
}

void ml_metrics_event(struct ml_server *srv, uint32_t which)
{
	struct ml_metrics *m = srv->metrics;
	int i, fd;

	if (which) {	/* a scraper's socket */
		if (which <= SCRAPERS && m->sc[which - 1].fd >= 0)
			io(srv, &m->sc[which - 1]);
		return;
	}
	while ((fd = accept4(m->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct epoll_event ev = { .events = EPOLLIN };

		for (i = 0; i < SCRAPERS && m->sc[i].fd >= 0; i++)
			;
		if (i == SCRAPERS)
			i = evict_idle(srv);
		if (i < 0) {	/* every slot is sending a response: come back later */
			close(fd);
			continue;
		}
		m->sc[i].fd = fd;
		m->sc[i].rlen = 0;
		m->sc[i].accepted_ms = ml_now_ms();
		ev.data.u64 = ML_TAG(ML_TAG_METRICS, i + 1);
		if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev))
			drop(srv, &m->sc[i]);
	}
}

int ml_metrics_tick(struct ml_server *srv, uint64_t now)
{
	struct ml_metrics *m = srv->metrics;
	int i, next = -1;

	if (!m)
		return -1;
	for (i = 0; i < SCRAPERS; i++) {
		uint64_t deadline = m->sc[i].accepted_ms + (m->sc[i].resp ? SCRAPE_MS : HEAD_MS);

		if (m->sc[i].fd < 0)
			continue;
		if (deadline <= now)
			drop(srv, &m->sc[i]);
		else if (next < 0 || (int)(deadline - now) < next)
			next = deadline - now;
	}
	if (srv->opts.metrics_file[0]) {
		if (m->next_file_ms <= now) {
			write_file(srv);
			m->next_file_ms = now + (uint64_t)srv->opts.metrics_interval * 1000;
		}
		if (next < 0 || (int)(m->next_file_ms - now) < next)
			next = m->next_file_ms - now;
	}
	return next;
}

void ml_metrics_close(struct ml_server *srv)
{
	struct ml_metrics *m = srv->metrics;
	int i;

	if (!m)
		return;
	if (srv->opts.metrics_file[0])
		write_file(srv);	/* the final numbers */
	for (i = 0; i < SCRAPERS; i++)
		if (m->sc[i].fd >= 0)
			drop(srv, &m->sc[i]);
	if (m->lfd >= 0)
		close(m->lfd);
	free(m);
	srv->metrics = NULL;
}
