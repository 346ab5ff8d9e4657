/* SPDX-License-Identifier: GPL-2.0 */
#ifndef ML_STATS_H
#define ML_STATS_H

#include <stdint.h>
#include <stdio.h>

#include "mailless.h"

struct ml_xdp_counters;

struct ml_counters {
	uint64_t v[ML_ST__MAX];
};

/* What mailless_build_info and the table header say. */
struct ml_build {
	const char *engine;	/* "kernel" or "user" */
	const char *dialect;
	const char *hostname;
	/* The XDP guard's counters (guardctl.h), NULL when it is not in use:
	 * its metrics then are left out, not shown as zeros. */
	const struct ml_xdp_counters *xdp;
	const struct ml_xdp_counters *xdp_prev;	/* table rates (--watch) */
};

/* The engine an ml_info.engine names: "kernel", "user" or "xdp". */
const char *ml_info_engine(__u32 engine);

/* Add the per-CPU BPF counters of map fd `stats` (PIPELINE_MAX: maximum). */
int ml_stats_add_percpu(int fd, struct ml_counters *c);
/* Add the controller's counters of map fd `stats_ctl`. */
int ml_stats_add_ctl(int fd, struct ml_counters *c);
/* into += from (PIPELINE_MAX: maximum). */
void ml_stats_merge(struct ml_counters *into, const struct ml_counters *from);

/* Prometheus text exposition format 0.0.4. */
void ml_stats_prometheus(FILE *f, const struct ml_counters *c, const struct ml_build *b);
void ml_stats_json(FILE *f, const struct ml_counters *c, const struct ml_build *b);
/* Human table; with prev and secs > 0, per-second rates too. */
void ml_stats_table(FILE *f, const struct ml_counters *c, const struct ml_counters *prev,
		    double secs, const struct ml_build *b);

/* mailless(8)'s list of metric families (`mailless options --man-metrics`). */
void ml_stats_man(FILE *f);

/* `mailless stats`: reads the pins under pin_dir. */
int ml_stats_cmd(const char *pin_dir, int json, int prom, unsigned int watch);

#endif
