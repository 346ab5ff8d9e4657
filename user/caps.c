// SPDX-License-Identifier: GPL-2.0
/*
 * caps.c - is this process allowed to load what it is about to load?
 *
 * Checked before anything is loaded, so that a missing capability is named
 * instead of showing as whatever errno the kernel picks: without
 * CAP_PERFMON the verifier says "unknown func bpf_skc_to_tcp_sock", which
 * reads like a kernel that is too old; without CAP_NET_ADMIN the sockhash
 * map cannot be created (EPERM). The kernel's tests (kernel/bpf/syscall.c:
 * bpf_capable(), perfmon_capable(), bpf_net_capable()) each accept
 * CAP_SYS_ADMIN as well.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

#include "caps.h"
#include "log.h"

int ml_caps_get(uint64_t *eff, uint64_t *perm)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return -errno;
	*eff = d[0].effective | (uint64_t)d[1].effective << 32;
	*perm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	return 0;
}

/* Is capability cap in our effective set? */
static int has_cap(int cap)
{
	uint64_t eff, perm;

	if (ml_caps_get(&eff, &perm))
		return 1;	/* cannot tell: let the kernel decide */
	return (eff >> cap) & 1;
}

int ml_need_caps(const char *who, unsigned int need)
{
	static const struct {
		unsigned int bit;
		int cap;
		const char *name;
	} caps[] = {
		{ ML_CAP_BPF, CAP_BPF, "CAP_BPF" },
		{ ML_CAP_PERFMON, CAP_PERFMON, "CAP_PERFMON" },
		{ ML_CAP_NET_ADMIN, CAP_NET_ADMIN, "CAP_NET_ADMIN" },
	};
	char all[64] = "", miss[64] = "";
	size_t i;

	if (has_cap(CAP_SYS_ADMIN))
		return 0;
	for (i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		if (!(need & caps[i].bit))
			continue;
		snprintf(all + strlen(all), sizeof(all) - strlen(all), "%s%s",
			 all[0] ? " " : "", caps[i].name);
		if (!has_cap(caps[i].cap))
			snprintf(miss + strlen(miss), sizeof(miss) - strlen(miss), "%s%s",
				 miss[0] ? ", " : "", caps[i].name);
	}
	if (!miss[0])
		return 0;
	log_err("%s needs the capabilities %s (or CAP_SYS_ADMIN); this process lacks %s: "
	    "run it as root, or grant them (systemd: AmbientCapabilities=%s "
	    "CAP_NET_BIND_SERVICE)", who, all, miss, all);
	return -EPERM;
}
