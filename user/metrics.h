/* SPDX-License-Identifier: GPL-2.0 */
#ifndef ML_METRICS_H
#define ML_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct ml_server;

/* Open the metrics listener (if configured) and add it to the epoll set
 * with epoll tag `tag` (server.h's ML_TAG_*). */
int ml_metrics_open(struct ml_server *srv, int tag);
/* epoll event: which = 0 for the listener, 1.. for a scraper. */
void ml_metrics_event(struct ml_server *srv, uint32_t which);
/* Drop slow scrapers, write the file when due; returns ms until the next
 * thing to do, or -1. */
int ml_metrics_tick(struct ml_server *srv, uint64_t now);
void ml_metrics_close(struct ml_server *srv);
/* The Prometheus text of the counters now (malloc'ed). */
char *ml_metrics_render(struct ml_server *srv, size_t *len);

#endif
