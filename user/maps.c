// SPDX-License-Identifier: GPL-2.0
/*
 * maps.c - the responder object's maps, shared by both engines (maps.h).
 * Only the engines open and load the object (its bytes are in the skeleton
 * they include); this file works on it once it is there.
 */
#include <errno.h>
#include <limits.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "maps.h"
#include "pins.h"
#include "privs.h"
#include "responder.skel.h"

const char *const ml_pinned_maps[ML_NPINNED_MAPS] = {
	"config", "control", "sessions", "socks", "listeners", "info", "events", "stats",
	"stats_ctl", "admitted",
};
const char *const ml_pinned_progs[ML_NPINNED_PROGS] = {
	"ml_sockops", "ml_verdict", "ml_msg",
};

int ml_unpin_all(const char *dir, int *removed)
{
	return ml_unpin_names(dir, ml_pinned_progs, ML_NPINNED_PROGS, removed) +
	       ml_unpin_names(dir, ml_pinned_maps, ML_NPINNED_MAPS, removed);
}

int ml_maps_lock(struct ml_maps *m, const char *pin_dir)
{
	int e;

	m->pin_dir = pin_dir;
	m->lock_fd = -1;
	if ((e = ml_bpffs_ensure()))
		return e;
	if ((e = ml_pin_dir_lock(pin_dir, &m->lock_fd))) {
		m->lock_fd = -1;
		return e;
	}
	ml_unpin_all(pin_dir, NULL);	/* leftovers of a crashed run */
	return 0;
}

int ml_maps_write_config(struct ml_maps *m, const struct ml_config *cfg, unsigned int slot)
{
	struct ml_control ctl = { .active = slot };
	__u32 zero = 0;

	if (bpf_map_update_elem(bpf_map__fd(m->skel->maps.config), &slot, cfg, BPF_ANY) ||
	    bpf_map_update_elem(bpf_map__fd(m->skel->maps.control), &zero, &ctl, BPF_ANY))
		return -errno;
	m->slot = slot;
	return 0;
}

int ml_maps_publish(struct ml_maps *m, struct ml_config *cfg)
{
	cfg->generation = m->slot + 1;
	return ml_maps_write_config(m, cfg, m->slot ^ 1);
}

int ml_maps_set_info(struct ml_maps *m, const struct ml_info *inf)
{
	__u32 zero = 0;

	return bpf_map_update_elem(bpf_map__fd(m->skel->maps.info), &zero, inf, BPF_ANY) ?
	       -errno : 0;
}

int ml_maps_pin(struct ml_maps *m)
{
	return ml_pin_object(m->skel->obj, m->pin_dir);
}

void ml_maps_write_ctl(struct ml_maps *m, const struct ml_counters *ctl)
{
	__u32 zero = 0;

	if (m->skel)
		bpf_map_update_elem(bpf_map__fd(m->skel->maps.stats_ctl), &zero, ctl, BPF_ANY);
}

/* Without the programs (the user engine) the per-CPU counters stay zero:
 * adding them changes nothing. */
void ml_maps_counters(const struct ml_maps *m, const struct ml_counters *ctl,
		      struct ml_counters *out)
{
	*out = *ctl;
	if (m && m->skel)
		ml_stats_add_percpu(bpf_map__fd(m->skel->maps.stats), out);
}

void ml_maps_close(struct ml_maps *m)
{
	if (m->skel) {
		if (!ml_privs_dropped)	/* else `mailless unload`'s (privs.c) */
			ml_unpin_all(m->pin_dir, NULL);
		responder_bpf__destroy(m->skel);
		m->skel = NULL;
	}
	if (m->lock_fd >= 0) {
		if (!ml_privs_dropped)
			rmdir(m->pin_dir);
		close(m->lock_fd);
		m->lock_fd = -1;
	}
}
