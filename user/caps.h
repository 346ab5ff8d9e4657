/* SPDX-License-Identifier: GPL-2.0 */
#ifndef ML_CAPS_H
#define ML_CAPS_H

#include <stdint.h>

/* Capabilities a BPF part of mailless needs (linux/capability.h). */
#define ML_CAP_NET_ADMIN	(1u << 0)	/* network program and map types, XDP attach */
#define ML_CAP_PERFMON		(1u << 1)	/* BTF pointer helpers: bpf_skc_to_tcp_sock() */
#define ML_CAP_BPF		(1u << 2)	/* bpf() itself */

/* 0 if this process holds every capability in need (CAP_SYS_ADMIN stands
 * in for all of them); else log which are missing, for who ("the kernel
 * engine", "the XDP guard"), and how to grant them, and return -EPERM. */
int ml_need_caps(const char *who, unsigned int need);
/* Our effective and permitted sets (capget); negative errno. */
int ml_caps_get(uint64_t *eff, uint64_t *perm);

#endif
