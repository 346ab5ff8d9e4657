/* SPDX-License-Identifier: GPL-2.0 */
/*
 * engine.h - the boundary between the event loop and an engine.
 *
 * The loop (server.c) owns the listeners, accept, the signals and the timer
 * heap; it knows a session only as a struct ml_session and an engine only as
 * a struct ml_engine_ops. An engine answers the dialogue: the kernel engine
 * (eng_kernel.c) from BPF programs, the user engine (eng_user.c) from this
 * process. What an engine may call back is the short list of core services
 * at the end (session.c). main.c chooses which engines to try.
 */
#ifndef ML_ENGINE_H
#define ML_ENGINE_H

#include <stdint.h>
#include <sys/socket.h>

#include "config.h"

struct ml_server;
struct ml_usess;	/* eng_user.c */

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

/* What an engine implements; NULL where it has nothing to do. */
struct ml_engine_ops {
	const char *name;		/* "kernel", "user", "xdp": logs, metrics */
	/* Said when it cannot start and nothing follows it (main.c's list). */
	const char *instead;
	/* Before the listeners exist; and at exit, whether it started or not. */
	void (*prepare)(struct ml_server *srv);
	void (*unprepare)(struct ml_server *srv);
	/* After the listeners are bound, before they listen: load, attach,
	 * publish srv->render. Negative errno, and said why, if it cannot. */
	int (*start)(struct ml_server *srv);
	/* Undo start: nothing of it left pinned or attached. */
	void (*shutdown)(struct ml_server *srv);
	/* Accepted from peer: 0, -EBUSY (refuse with 421 busy) or another
	 * negative errno (close it, counted as a reset). */
	int (*admit)(struct ml_server *srv, struct ml_session *s,
		     const struct sockaddr_storage *peer);
	/* Admitted and within the limits: greet it and arm what it needs. */
	int (*open)(struct ml_server *srv, struct ml_session *s);
	/* epoll event on the session's socket (if the engine added it). */
	void (*io)(struct ml_server *srv, struct ml_session *s, uint32_t events);
	/* Milliseconds since the client last sent a byte. */
	uint64_t (*idle_ms)(struct ml_server *srv, struct ml_session *s);
	/* Its timer fired while draining or lingering: close when all left. */
	void (*drain)(struct ml_server *srv, struct ml_session *s);
	/* An extra fd for the loop to poll (a ring buffer), or -1; its handler. */
	int (*poll_fd)(struct ml_server *srv);
	void (*poll)(struct ml_server *srv);
	/* After every round of events: sweeps, lost-event checks. Returns the
	 * longest the loop may sleep before the next tick, or -1. */
	int (*tick)(struct ml_server *srv);
	/* A reply the controller wrote itself left whole (ml_send_reply). */
	void (*sent)(struct ml_server *srv, struct ml_session *s, unsigned int op);
	/* Let go of the session and close(s->fd) (ml_session_close). */
	void (*close)(struct ml_server *srv, struct ml_session *s);
};

extern const struct ml_engine_ops ml_kernel_engine;
extern const struct ml_engine_ops ml_user_engine;
extern const struct ml_engine_ops ml_xdp_engine;	/* eng_xdp.c */

/* ---- core services (session.c): what an engine may call ------------------- */

/* End the session: the engine's close, then counted under s->reason. */
void ml_session_close(struct ml_server *srv, struct ml_session *s);
/* Look at it again at when_ms (drain(), or the idle and time limits). */
void ml_session_timer(struct ml_server *srv, struct ml_session *s, uint64_t when_ms);
/* Send a reply line the controller itself writes (greeting, 421s), whole
 * or not at all: 0, -EAGAIN (no room) or a negative errno. */
int ml_send_reply(struct ml_server *srv, struct ml_session *s, unsigned int op);
/* Add or change the session socket's epoll events (io() gets them). */
int ml_epoll_mod(struct ml_server *srv, int fd, uint32_t events, int add);
/* After a 421: how long a client that takes none of its replies, or does
 * not close, is waited for (ml_linger_begin). */
#define ML_LINGER_MS	2000
/* FIN behind the replies, input discarded until the client closes. */
void ml_linger_begin(struct ml_session *s);
struct tcp_info;
/* TCP_INFO of fd; all zero where the kernel did not fill it in. */
int ml_tcp_info(int fd, struct tcp_info *ti);
/* May the session's log line go out (the budget, sesslog.c)? Counts the
 * lines it may not. */
int ml_session_log_ok(struct ml_server *srv);
/* Count n under an ML_ST_* key: ml_count(), an inline in server.h. */

#endif
