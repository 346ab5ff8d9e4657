/* SPDX-License-Identifier: GPL-2.0 */
/* probe.h - the host as the kernel engine needs it (user/probe.c). */
#ifndef ML_PROBE_H
#define ML_PROBE_H

#include <stddef.h>

/* Our cgroup v2 directory, from /proc/self/mountinfo and /proc/self/cgroup;
 * quiet: no message when there is none. */
int ml_cgroup_own(char *path, size_t len, int quiet);
/* Before the kernel engine's sockets exist: move into a cgroup of our own,
 * <cgroup>/mailless-<pid>, where its sock_ops sees only our sockets (where
 * the hierarchy refuses, the engine warns); at exit, move back, remove it. */
void ml_cgroup_enter(void);
void ml_cgroup_leave(void);
/* Is cg the cgroup ml_cgroup_enter() made? If not, why not (for a warning). */
int ml_cgroup_is_ours(const char *cg);
const char *ml_cgroup_why_shared(void);
/* 0 if the kernel has every BPF feature the kernel engine uses; else name
 * the missing ones and the release that has them, -ENOTSUP. */
int ml_probe_kernel(void);
/* Log why `what` failed with errno e as precisely as we can tell. */
void ml_explain_bpf(const char *what, int e);

#endif
