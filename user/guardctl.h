/* SPDX-License-Identifier: GPL-2.0 */
/* guardctl.h - the XDP guard's controller side (user/guard.c). */
#ifndef ML_GUARDCTL_H
#define ML_GUARDCTL_H

#include <stdint.h>

#include "config.h"
#include "guard.h"
#include "stats.h"
#include "xdpresp.h"

struct ml_guard;

/* Summed per-CPU counters of map guard_stats, indexed by enum gd_stat, and
 * with --engine xdp the responder's: xr_stats after them (GD_ST__MAX + enum
 * xr_stat) and its dialogue counters (xr_dialog), which add to the
 * engine's own. */
struct ml_xdp_counters {
	uint64_t v[GD_ST__MAX + XR_ST__MAX];
	int responder;			/* the responder's are there */
	struct ml_counters dialog;
};

/* Attach the guard to opts.guard's interfaces (nothing if none), publish its
 * limits and lists and pin it under the pin dir. Negative errno, said why. */
int ml_guard_start(struct ml_guard **gp, const struct ml_opts *o);
/* SIGHUP: o's limits and prefix lists, swapped in atomically, or, on an
 * error, none of them (the interfaces and ports stay those of the start). */
int ml_guard_reload(struct ml_guard *gd, const struct ml_opts *o);
/* Detach from every interface and unpin; *gp becomes NULL. */
void ml_guard_stop(struct ml_guard **gp);
/* Counters of the running guard; -ENOENT when there is none. */
int ml_guard_counters(const struct ml_guard *gd, struct ml_xdp_counters *x);
int ml_guard_counters_pinned(const char *pin_dir, struct ml_xdp_counters *x);
/* Send again the greetings clients have not acknowledged (xr_greet);
 * the milliseconds until it wants to run again, -1 if never. */
int ml_guard_resend(struct ml_guard *gd);
/* The responder's ring buffer of session records (xr_events), -1 if the
 * guard does not answer (--engine xdp). */
int ml_guard_events_fd(const struct ml_guard *gd);
/* `mailless status` (json: a ,"xdp":{...} member) and `unload`. */
void ml_guard_status(const char *pin_dir, int json);
int ml_guard_unload(const char *pin_dir);

#endif
