// SPDX-License-Identifier: GPL-2.0
/*
 * probe.c - what the kernel engine needs of the host, found before it loads:
 * a cgroup v2 of its own for sock_ops, the kernel's BPF features (probed,
 * named with the release that has them), and when the kernel refuses
 * anyway, why (lockdown, an LSM, a verifier rejection).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include "log.h"
#include "mailless.h"
#include "probe.h"
#include "privs.h"

/* Our own cgroup v2 directory: mount point from mountinfo + path from
 * /proc/self/cgroup ("0::/path"). Never hard-coded: hosts differ. quiet:
 * no message when there is none (the caller will say it). */
int ml_cgroup_own(char *path, size_t len, int quiet)
{
	char line[4096], mnt[PATH_MAX] = "", rel[PATH_MAX] = "";
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - ");
		char m[PATH_MAX], fstype[64];

		if (!sep || sscanf(sep + 3, "%63s", fstype) != 1 || strcmp(fstype, "cgroup2"))
			continue;
		if (sscanf(line, "%*s %*s %*s %*s %4095s", m) == 1) {
			snprintf(mnt, sizeof(mnt), "%s", m);
			break;
		}
	}
	fclose(f);
	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = 0;
			snprintf(rel, sizeof(rel), "%s", line + 3);
		}
	fclose(f);
	if (!mnt[0] || !rel[0]) {
		if (quiet)
			return -ENOENT;
		log_err("no cgroup v2 hierarchy found in /proc/self/mountinfo; the kernel "
		    "engine attaches sock_ops to a cgroup v2 (mount -t cgroup2 none "
		    "/sys/fs/cgroup)");
		return -ENOENT;
	}
	snprintf(path, len, "%s%s", mnt, strcmp(rel, "/") ? rel : "");
	return 0;
}

/*
 * A cgroup of our own. sock_ops runs for every socket of the cgroup it is
 * attached to and of its descendants, whoever made the socket; a socket
 * belongs to the cgroup of the process that called socket(), and a
 * listener's children keep the listener's. So, before it creates any socket,
 * the controller makes <its cgroup>/mailless-<pid>, moves into it, and
 * sock_ops goes there: no socket of another program reaches it. The
 * no-internal-process rule cannot refuse this (we are a process in our
 * cgroup, so it has no controllers in subtree_control, or it is the root);
 * what can: a read-only cgroupfs (containers), no write access (cgroup v2
 * not delegated), a threaded or otherwise unusual hierarchy. Then sock_ops
 * stays on the cgroup we were started in and the kernel engine says what
 * that means. At exit we move back and remove the child.
 */
static struct {
	char parent[PATH_MAX];	/* where we were started */
	char child[PATH_MAX];	/* ours; "" if none could be made */
	char why[PATH_MAX + 160];	/* why not, for the warning */
} cg_own;

static int write_pid(const char *cg)
{
	char p[PATH_MAX + 16], b[24];
	int fd, n, e = 0;

	snprintf(p, sizeof(p), "%s/cgroup.procs", cg);
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = snprintf(b, sizeof(b), "%d\n", (int)getpid());
	if (write(fd, b, n) != n)
		e = -errno;
	close(fd);
	return e;
}

/* Empty mailless-<pid> cgroups of dead instances (kill -9): rmdir refuses a
 * populated one, so this can never remove a live instance's. */
static void sweep_stale_cgroups(const char *parent)
{
	char p[PATH_MAX + 300];
	struct dirent *de;
	DIR *d = opendir(parent);
	unsigned int pid;
	char tail;

	if (!d)
		return;
	while ((de = readdir(d)))
		if (sscanf(de->d_name, "mailless-%u%c", &pid, &tail) == 1 &&
		    kill((pid_t)pid, 0) && errno == ESRCH) {
			snprintf(p, sizeof(p), "%s/%s", parent, de->d_name);
			if (!rmdir(p))
				log_dbg("removed the cgroup of dead instance %u: %s", pid, p);
		}
	closedir(d);
}

void ml_cgroup_enter(void)
{
	char now[PATH_MAX];
	int e;

	cg_own.child[0] = 0;
	if (ml_cgroup_own(cg_own.parent, sizeof(cg_own.parent), 1)) {
		snprintf(cg_own.why, sizeof(cg_own.why), "no cgroup v2 hierarchy");
		return;
	}
	sweep_stale_cgroups(cg_own.parent);
	if (snprintf(cg_own.child, sizeof(cg_own.child), "%s/mailless-%d", cg_own.parent,
		     (int)getpid()) >= (int)sizeof(cg_own.child) ||
	    strlen(cg_own.child) >= sizeof(((struct ml_info *)0)->cgroup)) {
		snprintf(cg_own.why, sizeof(cg_own.why), "the path %s/mailless-%d is too "
			 "long", cg_own.parent, (int)getpid());
		cg_own.child[0] = 0;
		return;
	}
	if (mkdir(cg_own.child, 0755) && errno != EEXIST) {
		e = errno;
		snprintf(cg_own.why, sizeof(cg_own.why), "mkdir %s: %s%s", cg_own.child,
			 strerror(e), e == EROFS ? " (the cgroup file system is mounted "
			 "read-only, as in most containers)" : e == EACCES || e == EPERM ?
			 " (cgroup v2 is not delegated to us)" : "");
		cg_own.child[0] = 0;
		return;
	}
	if ((e = write_pid(cg_own.child)) || ml_cgroup_own(now, sizeof(now), 1) ||
	    strcmp(now, cg_own.child)) {
		snprintf(cg_own.why, sizeof(cg_own.why), "moving into %s: %s", cg_own.child,
			 e ? strerror(-e) : "we are not in it afterwards");
		if (e)
			rmdir(cg_own.child);
		cg_own.child[0] = 0;
		return;
	}
	log_dbg("moved into a cgroup of our own: %s", cg_own.child);
}

void ml_cgroup_leave(void)
{
	int e;

	if (!cg_own.child[0] || ml_privs_dropped)	/* `mailless unload` rmdirs it */
		return;
	if ((e = write_pid(cg_own.parent)) || rmdir(cg_own.child))
		log_warn("cannot remove our cgroup %s: %s (rmdir it once mailless has exited)",
		     cg_own.child, strerror(e ? -e : errno));
	cg_own.child[0] = 0;
}

/*
 * What the kernel engine asks of the kernel, with the release that first
 * had it: the probes load a trivial program or create a small map, so a
 * kernel that is too old is named as such, with the feature, instead of
 * failing somewhere in the object's load. Newest first: the message names
 * what a user must upgrade to.
 */
enum { F_PROG, F_MAP, F_HELPER };
static const struct {
	int kind, type, id;
	const char *what, *since;
} features[] = {
	{ F_HELPER, BPF_PROG_TYPE_SK_SKB, BPF_FUNC_loop, "bpf_loop() in sk_skb", "5.17" },
	{ F_HELPER, BPF_PROG_TYPE_SK_MSG, BPF_FUNC_loop, "bpf_loop() in sk_msg", "5.17" },
	{ F_HELPER, BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_get_netns_cookie,
	  "bpf_get_netns_cookie() in sock_ops", "5.15" },
	{ F_HELPER, BPF_PROG_TYPE_SK_MSG, BPF_FUNC_skc_to_tcp_sock,
	  "bpf_skc_to_tcp_sock() in sk_msg", "5.10" },
	{ F_MAP, BPF_MAP_TYPE_RINGBUF, 0, "the BPF ring buffer", "5.8" },
	{ F_MAP, BPF_MAP_TYPE_SK_STORAGE, 0, "socket local storage", "5.2" },
	{ F_MAP, BPF_MAP_TYPE_SOCKHASH, 0, "sockhash maps", "4.18" },
	{ F_PROG, BPF_PROG_TYPE_SK_MSG, 0, "sk_msg programs", "4.17" },
	{ F_PROG, BPF_PROG_TYPE_SK_SKB, 0, "sk_skb programs", "4.14" },
	{ F_PROG, BPF_PROG_TYPE_SOCK_OPS, 0, "sock_ops programs", "4.13" },
};

int ml_probe_kernel(void)
{
	char miss[512] = "", rel[80] = "?";
	const char *need = NULL;
	struct utsname u;
	size_t i, n = 0;
	int r;

	if (!uname(&u))
		snprintf(rel, sizeof(rel), "%s", u.release);
	for (i = 0; i < sizeof(features) / sizeof(features[0]); i++) {
		switch (features[i].kind) {
		case F_PROG:
			r = libbpf_probe_bpf_prog_type(features[i].type, NULL);
			break;
		case F_MAP:
			r = libbpf_probe_bpf_map_type(features[i].type, NULL);
			break;
		default:
			r = libbpf_probe_bpf_helper(features[i].type, features[i].id, NULL);
		}
		if (r < 0) {	/* the probe itself failed: let the load say why */
			log_dbg("probing %s: %s", features[i].what, strerror(-r));
			continue;
		}
		if (r == 0) {
			if (!need)
				need = features[i].since;
			if (n < sizeof(miss))
				n += snprintf(miss + n, sizeof(miss) - n, "%s%s (Linux %s)",
					      n ? ", " : "", features[i].what, features[i].since);
		}
	}
	if (!need)
		return 0;
	log_err("the kernel engine cannot run on Linux %s: it lacks %s. The kernel "
	    "engine needs Linux %s or newer (tested: 6.1, 6.12, 6.18); the user "
	    "engine runs here (--engine user, or --engine auto)", rel, miss, need);
	return -ENOTSUP;
}

/* Say why the kernel engine cannot run here, as precisely as we can tell
 * once the capabilities and the kernel's features were found in order:
 * kernel lockdown or an LSM, a verifier rejection, something else. */
void ml_explain_bpf(const char *what, int e)
{
	const struct ml_bpf_reject *rj = ml_libbpf_reject();
	char lock[256] = "";
	FILE *f = fopen("/sys/kernel/security/lockdown", "re");

	if (f) {
		if (!fgets(lock, sizeof(lock), f))
			lock[0] = 0;
		fclose(f);
		lock[strcspn(lock, "\n")] = 0;
	}
	if (e == EPERM && strstr(lock, "[confidentiality]"))
		log_err("%s: %s: kernel lockdown is in confidentiality mode (%s), which "
		    "forbids what the kernel engine needs; use --engine user", what,
		    strerror(e), lock);
	else if (e == EPERM)
		log_err("%s: %s: the kernel refused although this process holds the "
		    "capabilities (lockdown: %s); a seccomp filter or an LSM (AppArmor, "
		    "SELinux, a BPF LSM) may forbid bpf(); use --engine user",
		    what, strerror(e), lock[0] ? lock : "none");
	else if (rj && (e == EACCES || e == EINVAL || e == E2BIG)) {
		/* A bug to report, not a host without BPF: an error even
		 * under --engine auto. */
		int soft = ml_log_soften;

		ml_log_soften = 0;
		log_err("%s: %s: the kernel's verifier rejected program '%s': \"%s\". This "
		    "kernel has every feature mailless probes for, so it is a bug in "
		    "mailless or a verifier it was not tested with (tested: 6.1, 6.12, "
		    "6.18); please report it with the output of `mailless -v run`. "
		    "The user engine runs here (--engine user)", what, strerror(e),
		    rj->prog, rj->line[0] ? rj->line : "(no log)");
		ml_log_soften = soft;
	} else
		log_err("%s: %s", what, strerror(e));
}

int ml_cgroup_is_ours(const char *cg)
{
	return cg_own.child[0] && !strcmp(cg, cg_own.child);
}

const char *ml_cgroup_why_shared(void)
{
	return cg_own.child[0] ? "it was moved out of its own" :
	       cg_own.why[0] ? cg_own.why : "it was not asked to";
}
