/* SPDX-License-Identifier: GPL-2.0 */
/* pins.h - the pin dir on bpffs (user/pins.c). */
#ifndef ML_PINS_H
#define ML_PINS_H

#include <stddef.h>

struct bpf_object;

/* Mount bpffs at /sys/fs/bpf unless it is there; says why not. */
int ml_bpffs_ensure(void);
void ml_pin_path(char *buf, size_t len, const char *dir, const char *name);
/* Create (0700) or open the pin dir, check who may write it, take its lock
 * (*fd_out holds it); negative errno, said why. */
int ml_pin_dir_lock(const char *dir, int *fd_out);
/* Pin obj's maps and loaded programs under dir, by name. */
int ml_pin_object(struct bpf_object *obj, const char *dir);
/* Unlink dir/name for each name; returns how many could not be removed. */
int ml_unpin_names(const char *dir, const char *const *names, unsigned int n, int *removed);
/* bpf_obj_get of dir/name; a negative errno if it is not there. */
int ml_pinned_fd(const char *dir, const char *name);

#endif
