/* SPDX-License-Identifier: GPL-2.0 */
/*
 * maps.h - the responder object's maps, which both engines pin (user/maps.c):
 * its configuration, its counters and its info record, so that `mailless
 * stats`, `status` and bpftool work the same whichever engine serves. The
 * kernel engine loads the object with its programs, the user engine without.
 */
#ifndef ML_MAPS_H
#define ML_MAPS_H

#include "mailless.h"
#include "stats.h"

struct responder_bpf;

struct ml_maps {
	struct responder_bpf *skel;		/* opened by the engine, NULL until then */
	const char *pin_dir;
	int lock_fd;			/* the pin dir's lock, -1 if not held */
	unsigned int slot;		/* the config slot the programs read */
};

/* What the responder pins under the pin dir, by name; `unload` removes
 * these and nothing else. */
#define ML_NPINNED_MAPS		10
#define ML_NPINNED_PROGS	3
extern const char *const ml_pinned_maps[ML_NPINNED_MAPS];
extern const char *const ml_pinned_progs[ML_NPINNED_PROGS];
/* Unlink those names under dir; returns how many could not be removed. */
int ml_unpin_all(const char *dir, int *removed);

/* Mount bpffs if need be, take the pin dir's lock, remove what a crashed
 * run left pinned there. Negative errno, said why. */
int ml_maps_lock(struct ml_maps *m, const char *pin_dir);
/* Write cfg into config slot `slot` and make it the active one. */
int ml_maps_write_config(struct ml_maps *m, const struct ml_config *cfg, unsigned int slot);
/* SIGHUP: write the idle slot, then flip (readers never see a torn reply). */
int ml_maps_publish(struct ml_maps *m, struct ml_config *cfg);
int ml_maps_set_info(struct ml_maps *m, const struct ml_info *inf);
int ml_maps_pin(struct ml_maps *m);
/* The controller's counters into the pinned stats_ctl. */
void ml_maps_write_ctl(struct ml_maps *m, const struct ml_counters *ctl);
/* All counters: the controller's (ctl) and the programs' per-CPU ones;
 * m may be NULL (no maps: ctl alone). */
void ml_maps_counters(const struct ml_maps *m, const struct ml_counters *ctl,
		      struct ml_counters *out);
/* Unpin, destroy the object, remove the pin dir and let go of its lock. */
void ml_maps_close(struct ml_maps *m);

#endif
