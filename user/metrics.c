// SPDX-License-Identifier: GPL-2.0
/*
 * metrics.c - Prometheus exposition from the controller's own event loop:
 * `--metrics-listen ADDR:PORT` serves GET /metrics (text format 0.0.4), and
 * `--metrics-file PATH` rewrites a file atomically (temp file + rename) for
 * node_exporter's textfile collector. A scrape is a handful of non-blocking
 * syscalls; a slow or silent scraper is dropped, never waited for.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "guardctl.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "stats.h"

#define SCRAPERS	16	/* concurrent scrape connections */
#define REQ_MAX		4096	/* request head, bytes */
#define SCRAPE_MS	5000	/* a scrape that takes longer is dropped */

struct scraper {
	int fd;			/* -1: free */
	uint64_t deadline_ms;
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
	ml_bpf_read_stats(srv, &c);
	b.xdp = ml_guard_counters(srv, &x) ? NULL : &x;
	ml_stats_prometheus(f, &c, &b);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}

static void write_file(struct ml_server *srv)
{
	const char *path = srv->opts.metrics_file;
	char tmp[PATH_MAX + 32];
	size_t len = 0;
	char *body = ml_metrics_render(srv, &len);
	FILE *f;

	if (!body)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	f = fopen(tmp, "we");
	if (!f || fwrite(body, 1, len, f) != len || fclose(f) || rename(tmp, path)) {
		static uint64_t last;

		if (ml_now_ms() - last > 60000) {	/* say it once a minute */
			warn("cannot write metrics file %s: %s", path, strerror(errno));
			last = ml_now_ms();
		}
		if (f)
			unlink(tmp);
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
			err("cannot serve metrics on %s: %s", l->text, strerror(errno));
			return -errno;
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

static void respond(struct ml_server *srv, struct scraper *sc, int code, const char *why,
		    const char *ctype, const char *extra, const char *body, size_t blen)
{
	FILE *f = open_memstream(&sc->resp, &sc->len);

	if (!f) {
		drop(srv, sc);
		return;
	}
	fprintf(f, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		"Connection: close\r\n%s\r\n", code, why, ctype, blen, extra);
	fwrite(body, 1, blen, f);
	fclose(f);
	sc->off = 0;
}

/* Parse the request head once it is complete and prepare the response. */
static void handle(struct ml_server *srv, struct scraper *sc)
{
	static const char plain[] = "text/plain; charset=utf-8";
	char method[16], path[256], version[16];
	size_t blen = 0;
	char *body;

	if (sscanf(sc->req, "%15s %255s %15s", method, path, version) != 3 ||
	    strncmp(version, "HTTP/1.", 7)) {
		respond(srv, sc, 400, "Bad Request", plain, "", "bad request\n", 12);
		return;
	}
	if (strcmp(path, "/metrics") && strncmp(path, "/metrics?", 9)) {
		respond(srv, sc, 404, "Not Found", plain, "", "only /metrics is served here\n", 29);
		return;
	}
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		respond(srv, sc, 405, "Method Not Allowed", plain, "Allow: GET, HEAD\r\n",
			"only GET /metrics\n", 18);
		return;
	}
	body = ml_metrics_render(srv, &blen);
	if (!body) {
		respond(srv, sc, 500, "Internal Server Error", plain, "", "out of memory\n", 14);
		return;
	}
	respond(srv, sc, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", "", body,
		strcmp(method, "HEAD") ? blen : 0);
	free(body);
}

static void io(struct ml_server *srv, struct scraper *sc)
{
	ssize_t n;

	if (!sc->resp) {
		n = recv(sc->fd, sc->req + sc->rlen, REQ_MAX - 1 - sc->rlen, 0);
		if (n <= 0) {
			if (n == 0 || errno != EAGAIN)
				drop(srv, sc);
			return;
		}
		sc->rlen += n;
		sc->req[sc->rlen] = 0;
		if (strstr(sc->req, "\r\n\r\n") || strstr(sc->req, "\n\n"))
			handle(srv, sc);
		else if (sc->rlen >= REQ_MAX - 1)
			respond(srv, sc, 431, "Request Header Fields Too Large",
				"text/plain; charset=utf-8", "", "request too large\n", 18);
		else
			return;
		if (!sc->resp)
			return;
	}
	while (sc->off < sc->len) {
		n = send(sc->fd, sc->resp + sc->off, sc->len - sc->off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN) {
				struct epoll_event ev = { .events = EPOLLOUT,
					.data.u64 = ((uint64_t)ML_TAG_METRICS << 32) | (sc - srv->metrics->sc + 1) };

				epoll_ctl(srv->epfd, EPOLL_CTL_MOD, sc->fd, &ev);
				return;
			}
			break;
		}
		sc->off += n;
	}
	drop(srv, sc);
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
		if (i == SCRAPERS) {	/* too many at once: this one waits its turn */
			close(fd);
			continue;
		}
		m->sc[i].fd = fd;
		m->sc[i].rlen = 0;
		m->sc[i].deadline_ms = ml_now_ms() + SCRAPE_MS;
		ev.data.u64 = ((uint64_t)ML_TAG_METRICS << 32) | (uint32_t)(i + 1);
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
		if (m->sc[i].fd < 0)
			continue;
		if (m->sc[i].deadline_ms <= now)
			drop(srv, &m->sc[i]);
		else if (next < 0 || (int)(m->sc[i].deadline_ms - now) < next)
			next = m->sc[i].deadline_ms - now;
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
