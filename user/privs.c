// SPDX-License-Identifier: GPL-2.0
/*
 * privs.c - once every program is loaded, attached and pinned and every
 * listener listens, `run` gives up what serving does not need: it becomes
 * --user (setresuid; root only after a warning), keeps no capability but
 * CAP_BPF where the kernel still asks for it, clears the ambient and
 * bounding sets, and enters the sandbox (sandbox.c: no_new_privs and a
 * seccomp allow-list). What it keeps, and why, differs by kernel:
 *
 *   bpf() on an open map fd (lookups, updates: admitting a session, the
 *   counters, a reload's configuration) asks for CAP_BPF before Linux 6.5
 *   whenever kernel.unprivileged_bpf_disabled is set (Debian's default is
 *   2): every bpf() command did. Since 6.5 only creating maps and loading
 *   programs does. The kernel is asked, not its version read: backports.
 *
 *   The XDP guard's reload builds new LPM tries: creating one asks for
 *   CAP_BPF on every kernel (kernel/bpf/syscall.c: map_create()).
 *
 * Shutdown after the drop closes what its descriptors hold (sock_ops comes
 * off with its link, the sessions with their sockets); the pins, the XDP
 * guard and the cgroup of its own need root, and `mailless unload` (the
 * unit's ExecStopPost=+) removes them.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/capability.h>

#include "caps.h"
#include "log.h"
#include "privs.h"

int ml_privs_dropped;

int ml_privs_resolve(const char *user, struct ml_privs *p)
{
	struct passwd *pw;

	memset(p, 0, sizeof(*p));
	snprintf(p->user, sizeof(p->user), "%s", user);
	if (!strcmp(user, "root"))
		return 0;
	if (geteuid() != 0) {	/* no user to change: still shed the rest */
		pw = getpwuid(geteuid());
		if (pw && strcmp(user, ML_DEFAULT_USER) && strcmp(user, pw->pw_name))
			log_warn("not root: serving as user %s, not --user %s", pw->pw_name, user);
		snprintf(p->user, sizeof(p->user), "%s", pw ? pw->pw_name : "?");
		p->drop = 1;
		p->uid = geteuid();
		p->gid = getegid();
		return 0;
	}
	errno = 0;
	pw = getpwnam(user);
	if (!pw && !strcmp(user, ML_DEFAULT_USER)) {
		log_warn("there is no user '%s' here: serving as root with every capability; "
			 "create it (useradd --system --home-dir /nonexistent --shell "
			 "/usr/sbin/nologin %s; the Debian package does), or name one with "
			 "--user", user, user);
		return 0;
	}
	if (!pw) {
		log_err("no user '%s' here (%s): --user names the user to serve as once "
			"everything is loaded; create it or name another (root: keep every "
			"privilege)", user, errno ? strerror(errno) : "getpwnam found none");
		return -ENOENT;
	}
	if (pw->pw_uid == 0) {
		log_err("user '%s' has uid 0: --user wants an unprivileged user (or root, "
			"to keep every privilege on purpose)", user);
		return -EINVAL;
	}
	p->drop = 1;
	p->uid = pw->pw_uid;
	p->gid = pw->pw_gid;
	return 0;
}

/* Effective and permitted set to these; inheritable to none. */
static int cap_set(uint64_t eff, uint64_t perm)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = {
		{ (uint32_t)eff, (uint32_t)perm, 0 },
		{ (uint32_t)(eff >> 32), (uint32_t)(perm >> 32), 0 },
	};

	return syscall(SYS_capset, &h, d) ? -errno : 0;
}

/* With no capability in effect: does bpf() on a map fd ask for one? The
 * old rule refuses (EPERM) before it looks at the fd; the new one finds
 * no such fd (EBADF). */
static int bpf_fds_need_cap(void)
{
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.map_fd = (__u32)-1;
	return syscall(SYS_bpf, BPF_MAP_LOOKUP_ELEM, &a, sizeof(a)) < 0 && errno == EPERM;
}

/* Out of the bounding set goes every capability but those kept, if we may
 * (CAP_SETPCAP; under systemd its CapabilityBoundingSet did it already).
 * With no execve allowed it guards nothing more; it is what a reader of
 * /proc/PID/status expects to see. */
static void drop_bounding(uint64_t keep)
{
	int c;

	for (c = 0; c < 64 && prctl(PR_CAPBSET_READ, c) >= 0; c++)
		if (!(keep & (1ull << c)) && prctl(PR_CAPBSET_DROP, c) && errno == EPERM)
			return;
}

static int fail(const char *what, int e)
{
	log_err("giving up privileges: %s: %s; not serving half-dropped (--user root "
		"serves with every privilege)", what, strerror(e));
	return -e;
}

int ml_privs_drop(const struct ml_privs *p, enum ml_bpf_use bpf)
{
	const uint64_t cap_bpf = 1ull << CAP_BPF;
	uint64_t eff = 0, perm = 0, keep = 0;
	uid_t r, e, s;
	const char *why = "";
	int err;

	if (!p->drop)
		return 0;
	drop_bounding(cap_bpf);
	if (p->uid != geteuid()) {
		/* Keep the permitted set across the change of user: the
		 * kernel would clear it; the effective set it clears anyway. */
		if (prctl(PR_SET_KEEPCAPS, 1))
			return fail("PR_SET_KEEPCAPS", errno);
		if (setgroups(0, NULL))
			return fail("setgroups", errno);
		if (setresgid(p->gid, p->gid, p->gid))
			return fail("setresgid", errno);
		if (setresuid(p->uid, p->uid, p->uid))
			return fail("setresuid", errno);
		prctl(PR_SET_KEEPCAPS, 0);
		/* The way back must be shut: as OpenSSH checks. */
		if (getresuid(&r, &e, &s) || r != p->uid || e != p->uid || s != p->uid ||
		    !setresuid(0, 0, 0))
			return fail("still able to become root again", EPERM);
	}
	if ((err = ml_caps_get(&eff, &perm)) || (err = cap_set(0, perm)))
		return fail("capget/capset", -err);
	if (bpf == ML_BPF_CREATE) {
		keep = cap_bpf;
		why = " (the XDP guard's reload builds new LPM tries)";
	} else if (bpf == ML_BPF_FDS && bpf_fds_need_cap()) {
		keep = cap_bpf;
		why = " (this kernel asks for it on every bpf() call, "
		      "kernel.unprivileged_bpf_disabled being set)";
	}
	if ((perm & keep) != keep)
		return fail("CAP_BPF is not ours to keep", EPERM);
	if ((err = cap_set(keep, keep)))
		return fail("capset", -err);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) && errno != EINVAL)
		return fail("clearing the ambient capabilities", errno);
	if ((err = ml_sandbox_enter()))
		return err;
	ml_privs_dropped = p->uid != 0;
	log_info("serving as user %s (uid %u) with %s%s, no_new_privs and a seccomp "
		 "allow-list", p->user, (unsigned int)p->uid,
		 keep ? "CAP_BPF" : "no capability", why);
	return 0;
}
