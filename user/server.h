/* SPDX-License-Identifier: GPL-2.0 */
/*
 * server.h - the controller's state while it serves: what the loop
 * (server.c), the core services (session.c) and the engines share.
 */
#ifndef ML_SERVER_H
#define ML_SERVER_H

#include <stdint.h>

#include "config.h"
#include "engine.h"
#include "mailless.h"
#include "sesslog.h"
#include "srctab.h"
#include "stats.h"

struct ml_maps;

struct ml_server {
	struct ml_opts opts;
	const struct ml_cli_set *cli;	/* re-applied on every reload */
	int ncli;
	const struct ml_engine_ops *eng;	/* the engine that started */
	void *eng_priv;			/* that engine's own state */
	struct ml_maps *maps;		/* the pinned maps (maps.c), NULL without */
	struct ml_guard *guard;		/* the XDP guard (guard.c), NULL without */
	struct ml_metrics *metrics;	/* metrics.c, NULL when not configured */
	struct ml_sesslog log;		/* the session log's budget (sesslog.c) */
	struct ml_counters ctr;		/* the controller's counters */
	uint64_t ctr_flushed_ms;	/* last write to the pinned stats_ctl */
	int ctr_dirty;
	struct ml_config render;	/* replies rendered from opts */
	int epfd, sigfd;
	int lfd[ML_LISTEN_MAX];
	int nlfd;
	uint64_t accept_paused;		/* out of descriptors: resume then (ms) */
	struct ml_session *sess;	/* indexed by fd */
	int nsess_max;			/* size of sess[] (RLIMIT_NOFILE) */
	unsigned int nactive;
	struct ml_srctab src;		/* open sessions per source */
	int *heap;			/* fds ordered by deadline_ms */
	int nheap;
	int tick_ms;			/* what the engine's tick asked for, -1 */
	int stopping;
};

static inline void ml_count(struct ml_server *srv, int key, uint64_t n)
{
	if (key >= 0 && key < ML_ST__MAX) {
		srv->ctr.v[key] += n;
		srv->ctr_dirty = 1;
	}
}

/* Serve o until SIGTERM/SIGINT with the first of engines (NULL-terminated,
 * in order of preference) that starts. */
struct ml_privs;
int ml_serve(struct ml_opts *o, const struct ml_privs *privs,
	     const struct ml_cli_set *cli, int ncli,
	     const struct ml_engine_ops *const *engines);

/* session.c, for the loop: the timer heap, the listeners' accept pause. */
void ml_timer_remove(struct ml_server *srv, struct ml_session *s);
void ml_accept_pause(struct ml_server *srv, uint64_t until_ms);
void ml_accept_resume(struct ml_server *srv);
/* Lingering (ML_S_LINGER) and the client took more replies: more time. */
int ml_linger_extend(struct ml_server *srv, struct ml_session *s, uint64_t now);
/* epoll tags: what an event's data.u64 names (TAG(tag, index)). */
enum { ML_TAG_LISTEN = 1, ML_TAG_SESSION, ML_TAG_SIGNAL, ML_TAG_ENGINE, ML_TAG_METRICS };
#define ML_TAG(t, v)	(((uint64_t)(t) << 32) | (uint32_t)(v))

#endif
