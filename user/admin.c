// SPDX-License-Identifier: GPL-2.0
/*
 * admin.c - `mailless status` and `mailless unload`, from the pins alone: they
 * work from another shell while `run` runs, and after it crashed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "admin.h"
#include "guardctl.h"
#include "json.h"
#include "log.h"
#include "mailless.h"
#include "maps.h"
#include "pins.h"

#define maps ml_pinned_maps
#define progs ml_pinned_progs
#define N(a) (sizeof(a) / sizeof(*(a)))


/* 1: a live `run` holds the pin dir's lock; 0: nobody; -1: no dir. */
static int dir_locked(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), held;

	if (fd < 0)
		return -1;
	held = flock(fd, LOCK_EX | LOCK_NB) != 0;
	close(fd);
	return held;
}

static int attached(int target, enum bpf_attach_type type, __u32 id)
{
	__u32 ids[64], cnt = 64, i;

	if (bpf_prog_query(target, type, 0, NULL, ids, &cnt))
		return -errno;
	for (i = 0; i < cnt; i++)
		if (ids[i] == id)
			return 1;
	return 0;
}

static long count_keys(int fd)
{
	struct ml_flow k, next;
	long n = 0;
	void *prev = NULL;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		k = next;
		prev = &k;
		n++;
	}
	return n;
}

/* The text status lines of a kernel-engine instance's programs. */
static void print_kernel_attachments(const struct ml_info *inf, const __u32 *ids, long nsess,
				     int on_cg, int on_skb, int on_msg)
{
	int i;

	printf("sessions: %ld\n", nsess);
	for (i = 0; i < (int)N(progs); i++)
		printf("program %-10s id %u\n", progs[i], ids[i]);
	printf("sock_ops on cgroup %s (%s): %s\n", inf->cgroup,
	       inf->cgroup_own ? "mailless's own" : "shared with every process "
	       "started there", on_cg == 1 ? "attached" : "NOT attached");
	printf("sk_skb verdict on sockhash: %s\n", on_skb == 1 ? "attached" : "NOT attached");
	printf("sk_msg verdict on sockhash: %s\n", on_msg == 1 ? "attached" : "NOT attached");
}

int ml_admin_status(const char *dir, int json)
{
	struct ml_info inf = {};
	__u32 zero = 0, ids[N(progs)] = {};
	int fds[N(progs)], mfd, ifd, sfd, cgfd, locked, i;
	int on_cg = -1, on_skb = -1, on_msg = -1, user;
	long nsess = -1;
	char num[24];

	locked = dir_locked(dir);
	ifd = ml_pinned_fd(dir, "info");
	if (locked < 0 || ifd < 0) {
		if (json) {
			printf("{\"running\":false,\"pin_dir\":");
			ml_json_str(stdout, dir);
			printf("}\n");
		} else {
			printf("mailless: nothing pinned at %s (not running with the kernel "
			       "engine, or another --pin-dir)\n", dir);
		}
		return 1;
	}
	bpf_map_lookup_elem(ifd, &zero, &inf);
	for (i = 0; i < (int)N(progs); i++) {
		struct bpf_prog_info pi = {};
		__u32 len = sizeof(pi);

		fds[i] = ml_pinned_fd(dir, progs[i]);
		if (fds[i] >= 0 && !bpf_obj_get_info_by_fd(fds[i], &pi, &len))
			ids[i] = pi.id;
	}
	mfd = ml_pinned_fd(dir, "socks");
	sfd = ml_pinned_fd(dir, "sessions");
	cgfd = inf.cgroup[0] ? open(inf.cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (cgfd >= 0 && ids[0])
		on_cg = attached(cgfd, BPF_CGROUP_SOCK_OPS, ids[0]);
	if (mfd >= 0 && ids[1])
		on_skb = attached(mfd, BPF_SK_SKB_VERDICT, ids[1]);
	if (mfd >= 0 && ids[2])
		on_msg = attached(mfd, BPF_SK_MSG_VERDICT, ids[2]);
	if (sfd >= 0)
		nsess = count_keys(sfd);

	user = inf.engine != ML_INFO_ENGINE_KERNEL;
	/* The user engine's sessions are not in the map: `mailless stats`
	 * counts them (mailless_sessions_active). */
	if (user)
		snprintf(num, sizeof(num), "null");
	else
		snprintf(num, sizeof(num), "%ld", nsess);
	if (json) {
		printf("{\"running\":%s,\"pid\":%u,\"engine\":\"%s\",\"pin_dir\":",
		       locked == 1 && !kill(inf.pid, 0) ? "true" : "false", inf.pid,
		       ml_info_engine(inf.engine));
		ml_json_str(stdout, dir);
		printf(",\"hostname\":");
		ml_json_strn(stdout, inf.hostname, sizeof(inf.hostname));
		printf(",\"cgroup\":");
		ml_json_strn(stdout, inf.cgroup, sizeof(inf.cgroup));
		printf(",\"cgroup_own\":%s,\"sessions\":%s,\"programs\":[",
		       inf.cgroup_own ? "true" : "false", num);
		/* The user engine loads no program: empty lists, not zeros. */
		for (i = 0; !user && i < (int)N(progs); i++)
			printf("%s{\"name\":\"%s\",\"id\":%u}", i ? "," : "", progs[i], ids[i]);
		if (user)
			printf("],\"attachments\":{},\"maps\":[");
		else
			printf("],\"attachments\":{\"cgroup_sock_ops\":%s,"
			       "\"sockhash_sk_skb_verdict\":%s,\"sockhash_sk_msg_verdict\":%s},"
			       "\"maps\":[", on_cg == 1 ? "true" : "false",
			       on_skb == 1 ? "true" : "false", on_msg == 1 ? "true" : "false");
		for (i = 0; i < (int)N(maps); i++) {
			char p[PATH_MAX];

			ml_pin_path(p, sizeof(p), dir, maps[i]);
			printf("%s", i ? "," : "");
			ml_json_str(stdout, p);
		}
		printf("]");
		ml_guard_status(dir, 1);
		printf("}\n");
	} else {
		printf("mailless: %s, pid %u, engine %s, pin dir %s\n",
		       locked == 1 && !kill(inf.pid, 0) ? "running" : "NOT running (stale pins: "
		       "mailless unload)", inf.pid, ml_info_engine(inf.engine), dir);
		printf("hostname: %s\n", inf.hostname);
		if (inf.engine == ML_INFO_ENGINE_XDP)
			printf("programs: the XDP guard's, below, answers on its interfaces; what "
			       "reaches a listener the controller answers (user engine)\n");
		else if (user)
			printf("programs: none (the user engine answers in the controller; "
			       "the maps below hold its counters)\n");
		else
			print_kernel_attachments(&inf, ids, nsess, on_cg, on_skb, on_msg);
		printf("maps:");
		for (i = 0; i < (int)N(maps); i++)
			printf(" %s/%s", dir, maps[i]);
		printf("\n");
		ml_guard_status(dir, 0);
	}
	for (i = 0; i < (int)N(progs); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (cgfd >= 0)
		close(cgfd);
	if (mfd >= 0)
		close(mfd);
	if (sfd >= 0)
		close(sfd);
	close(ifd);
	return 0;
}

int ml_admin_unload(const char *dir)
{
	struct ml_info inf = {};
	__u32 zero = 0;
	int locked = dir_locked(dir), ifd, mfd, pfd, cgfd, removed = 0, left = 0;
	unsigned int i;

	if (locked < 0) {
		printf("mailless: nothing at %s\n", dir);
		return 0;
	}
	ifd = ml_pinned_fd(dir, "info");
	if (ifd >= 0) {
		bpf_map_lookup_elem(ifd, &zero, &inf);
		close(ifd);
	}
	if (locked == 1) {
		log_err("mailless (pid %u) is running with %s: stop it with kill -TERM %u",
		    inf.pid, dir, inf.pid);
		return 1;
	}
	/* The XDP guard first: if its interfaces cannot be reached from here,
	 * leave everything as it is for an unload from the right namespace. */
	if ((i = ml_guard_unload(dir)) == (unsigned int)-1)
		return 1;
	left += i;
	/* A plain (non-link) cgroup attachment would outlive a crash; ours is a
	 * link, but detach anyway in case an older run used a plain attach. */
	pfd = ml_pinned_fd(dir, "ml_sockops");
	cgfd = inf.cgroup[0] ? open(inf.cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (pfd >= 0 && cgfd >= 0 && !bpf_prog_detach2(pfd, cgfd, BPF_CGROUP_SOCK_OPS))
		printf("detached sock_ops from %s\n", inf.cgroup);
	if (pfd >= 0)
		close(pfd);
	if (cgfd >= 0)
		close(cgfd);
	/* The cgroup of our own that a killed instance left (empty: rmdir
	 * refuses a cgroup with processes in it). */
	if (inf.cgroup_own && inf.cgroup[0] && kill(inf.pid, 0) && errno == ESRCH) {
		if (!rmdir(inf.cgroup))
			printf("removed cgroup %s\n", inf.cgroup);
		else if (errno != ENOENT)
			log_err("cannot remove cgroup %s: %s", inf.cgroup, strerror(errno));
	}
	mfd = ml_pinned_fd(dir, "socks");
	if (mfd >= 0) {
		pfd = ml_pinned_fd(dir, "ml_verdict");
		if (pfd >= 0 && !bpf_prog_detach2(pfd, mfd, BPF_SK_SKB_VERDICT))
			printf("detached sk_skb verdict from the sockhash\n");
		if (pfd >= 0)
			close(pfd);
		pfd = ml_pinned_fd(dir, "ml_msg");
		if (pfd >= 0 && !bpf_prog_detach2(pfd, mfd, BPF_SK_MSG_VERDICT))
			printf("detached sk_msg verdict from the sockhash\n");
		if (pfd >= 0)
			close(pfd);
		close(mfd);
	}
	left += ml_unpin_all(dir, &removed);
	if (rmdir(dir) && errno != ENOENT && errno != ENOTEMPTY)
		left++;
	printf("mailless: removed %d pins from %s%s\n", removed, dir,
	       left ? " (some could not be removed, see above)" : "");
	return left ? 1 : 0;
}
