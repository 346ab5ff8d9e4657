/* SPDX-License-Identifier: GPL-2.0 */
/*
 * eng_kernel.h - the kernel engine's own state, shared by its two files:
 * eng_kernel.c (load, attach, accept, greet) and eng_kernel_close.c (the
 * close protocol). Nothing outside the kernel engine includes this.
 */
#ifndef ML_ENG_KERNEL_H
#define ML_ENG_KERNEL_H

#include <stdint.h>

#include "maps.h"
#include "server.h"

#define ML_CLOSED_MAX	1024

struct kpriv {
	struct ml_maps maps;		/* the responder object and its pins */
	struct bpf_link *cg_link;
	struct ring_buffer *rb;
	int attached_skb, attached_msg;
	uint64_t lost_seen;		/* events_lost when last swept */
	/* cookie -> fd, open addressing with linear probing */
	uint64_t *ck;
	int *ckfd;
	uint32_t ckmask;
	/* Sessions just closed: close() itself emits their log records, which
	 * are read right after, while the reason is at hand. */
	struct { uint64_t cookie, start_ms; int reason; } closed[ML_CLOSED_MAX];
	int nclosed;
	int in_poll;			/* inside the ring buffer consumer */
};

/* eng_kernel_close.c */
int ml_kern_ck_init(struct kpriv *k, int nsess_max);
int ml_kern_ck_put(struct kpriv *k, uint64_t c, int fd);
/* Octets the socket put into TCP so far, its state, ms since it last
 * received data; any may be NULL. */
int ml_kern_tcp_queued(int fd, uint64_t *queued, uint8_t *state, uint32_t *idle_ms);
/* Close once `bytes` left (UINT64_MAX: once the replies to everything the
 * client sent left); within 5 s. */
void ml_kern_start_drain(struct ml_server *srv, struct ml_session *s, uint64_t bytes);
int ml_kern_on_event(void *ctx, void *data, size_t len);
/* The engine ops of the close protocol. */
void ml_kern_drain(struct ml_server *srv, struct ml_session *s);
void ml_kern_poll(struct ml_server *srv);
int ml_kern_tick(struct ml_server *srv);
void ml_kern_close(struct ml_server *srv, struct ml_session *s);

#endif
