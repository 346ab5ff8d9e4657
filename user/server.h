/* SPDX-License-Identifier: GPL-2.0 */
#ifndef ML_SERVER_H
#define ML_SERVER_H

#include <stdint.h>
#include <sys/socket.h>
#include <linux/types.h>

#include "config.h"
#include "mailless.h"
#include "srctab.h"
#include "stats.h"

enum ml_sess_state {
	ML_S_FREE = 0,
	ML_S_ACTIVE,		/* in dialogue */
	ML_S_DRAIN,		/* closing reply emitted: close once it left */
	ML_S_LINGER,		/* after a 421 left: FIN sent, input discarded,
				 * until the client closes or drain_until_ms */
	ML_S_FAILING,		/* kernel: a segment was dropped; send the 421 in
				 * drain_bytes once the replies before it left */
};

/* One per open connection, indexed by fd. Kept small (72 bytes): the kernel
 * engine needs nothing else per session in the controller. */
struct ml_session {
	int fd;
	enum ml_sess_state state;
	uint64_t cookie;		/* kernel engine */
	uint64_t start_ms;
	uint64_t deadline_ms;		/* when the timer looks at it next */
	uint64_t drain_until_ms;	/* give up waiting for the drain then */
	uint64_t drain_bytes;		/* kernel: close once this much is queued */
	unsigned int drain_wait_ms;	/* backoff between drain checks */
	int heap_idx;			/* position in the timer heap, -1 if none */
	int reason;			/* ML_ST_CLOSE_*: why it ends; 0 = not yet */
	int src;			/* its source's entry in srv->src, -1 if none */
	struct ml_usess *u;		/* user engine only, else NULL */
};

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

struct ml_server;

/* What differs between the kernel and the user engine. */
struct ml_engine_ops {
	const char *name;
	/* A new session: greet it and arm what the engine needs. */
	int (*open)(struct ml_server *srv, struct ml_session *s);
	/* epoll event on the session's socket. */
	void (*io)(struct ml_server *srv, struct ml_session *s, uint32_t events);
	/* Milliseconds since the client last sent a byte. */
	uint64_t (*idle_ms)(struct ml_server *srv, struct ml_session *s);
	/* Timer fired while draining: close when everything left. */
	void (*drain)(struct ml_server *srv, struct ml_session *s);
	/* Extra fd to poll (ring buffer), or -1, and its handler. */
	int (*poll_fd)(struct ml_server *srv);
	void (*poll)(struct ml_server *srv);
	void (*close)(struct ml_server *srv, struct ml_session *s);
};

#define ML_CLOSED_MAX 1024

struct ml_server {
	struct ml_opts opts;
	const struct ml_cli_set *cli;
	int ncli;
	const struct ml_engine_ops *eng;
	void *eng_priv;			/* BPF objects (kern.c), NULL without */
	struct ml_guard *guard;		/* the XDP guard (guard.c), NULL without */
	struct ml_counters ctr;		/* the controller's counters */
	uint64_t ctr_flushed_ms;	/* last write to the pinned stats_ctl */
	int ctr_dirty;
	struct ml_metrics *metrics;	/* metrics.c, NULL when not configured */
	double log_tokens;		/* session log budget (sesslog.c) */
	uint64_t log_refill_ms;
	/* Sessions just closed (kernel engine): close() itself emits their log
	 * records, which are read right after, while the reason is at hand. */
	struct { uint64_t cookie, start_ms; int reason; } closed[ML_CLOSED_MAX];
	int nclosed;
	int in_poll;			/* inside the ring buffer consumer */
	struct ml_config render;	/* replies rendered from opts */
	int epfd, sigfd, timerfd;
	int lfd[ML_LISTEN_MAX];
	int nlfd;
	uint64_t accept_paused;		/* out of descriptors: resume then (ms) */
	struct ml_session *sess;	/* indexed by fd */
	int nsess_max;			/* size of sess[] (RLIMIT_NOFILE) */
	unsigned int nactive;
	struct ml_srctab src;		/* open sessions per source */
	int *heap;			/* fds ordered by deadline_ms */
	int nheap;
	int stopping;
};

uint64_t ml_now_ms(void);
/* After a 421: how long a client that takes none of its replies, or does
 * not close, is waited for (ml_linger_begin). */
#define ML_LINGER_MS	2000
void ml_linger_begin(struct ml_session *s);
struct tcp_info;
int ml_tcp_info(int fd, struct tcp_info *ti);
/* Render every reply line of o into cfg (hostname, dialect, texts). */
void ml_render(struct ml_config *cfg, const struct ml_opts *o);
int ml_serve(struct ml_opts *o, const struct ml_cli_set *cli, int ncli);

/* For the engines. */
void ml_session_close(struct ml_server *srv, struct ml_session *s);
void ml_session_timer(struct ml_server *srv, struct ml_session *s, uint64_t when_ms);
/* Send a reply line the controller itself writes (greeting, 421s). */
int ml_send_reply(struct ml_server *srv, struct ml_session *s, unsigned int op);
void ml_count_reply(struct ml_server *srv, unsigned int op);
int ml_epoll_mod(struct ml_server *srv, int fd, uint32_t events, int add);

/* What the kernel engine pins under the pin dir, by name; `unload` removes
 * these and nothing else. */
#define ML_NPINNED_MAPS		10
#define ML_NPINNED_PROGS	3
extern const char *const ml_pinned_maps[ML_NPINNED_MAPS];
extern const char *const ml_pinned_progs[ML_NPINNED_PROGS];

/* Unlink those names under dir; returns how many could not be removed. */
int ml_unpin_all(const char *dir, int *removed);
/* bpf_obj_get of dir/name. */
int ml_pinned_fd(const char *dir, const char *name);

extern const struct ml_engine_ops ml_kernel_engine;
extern const struct ml_engine_ops ml_user_engine;
/* The user engine's state for a session just accepted from peer. */
int ml_usess_new(struct ml_session *s, const struct sockaddr_storage *peer);
/* Before the kernel engine's sockets exist: move into a cgroup of our own,
 * <cgroup>/mailless-<pid>, where its sock_ops sees only our sockets (where the
 * hierarchy refuses, ml_kernel_init() warns); at exit, move back, remove it. */
void ml_kernel_cgroup_enter(void);
void ml_kernel_cgroup_leave(void);
/* Load the kernel engine; returns a negative errno and says why on failure. */
int ml_kernel_init(struct ml_server *srv);
/* The cookie sock_ops noted on an accepted socket; -ENOENT if it did not
 * admit it (its session map was full). */
int ml_kernel_admitted(struct ml_server *srv, int fd, uint64_t *cookie);
int ml_kernel_status(const char *pin_dir, int json);
/* Recover events the ring buffer dropped; cheap unless it overflowed. */
void ml_kernel_sweep(struct ml_server *srv);
/* The user engine's maps (config, counters), when BPF maps can be made. */
int ml_maps_init(struct ml_server *srv);
/* Both engines, when eng_priv is set: publish the rendered configuration,
 * write the controller's counters, read all counters, clean up. */
int ml_bpf_publish(struct ml_server *srv);
void ml_bpf_flush_stats(struct ml_server *srv);
void ml_bpf_read_stats(struct ml_server *srv, struct ml_counters *c);
void ml_bpf_shutdown(struct ml_server *srv);

static inline void ml_count(struct ml_server *srv, int key, uint64_t n)
{
	if (key >= 0 && key < ML_ST__MAX) {
		srv->ctr.v[key] += n;
		srv->ctr_dirty = 1;
	}
}
int ml_kernel_unload(const char *pin_dir);

#endif
