// SPDX-License-Identifier: GPL-2.0
/*
 * kern.c - the kernel engine: load responder.bpf.o (skeleton), pin its maps
 * and programs under the pin dir, attach sock_ops to our own cgroup v2 and
 * sk_skb/sk_msg to the sockhash; then accept, greet, and close sessions when
 * the ring buffer says their closing reply left. No byte a client sent is
 * ever read here: the BPF programs answer it.
 *
 * Also `mailless status` and `mailless unload`, which work from the pins.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "caps.h"
#include "log.h"
#include "responder.skel.h"
#include "server.h"
#include "stats.h"
#include "sesslog.h"

#ifndef SOL_TCP
#define SOL_TCP 6
#endif
#define BPF_FS_MAGIC	0xcafe4a11
#define BPFFS		"/sys/fs/bpf"

/* Every map and program this engine pins, by name; unload removes these
 * and nothing else. */
const char *const ml_pinned_maps[ML_NPINNED_MAPS] = {
	"config", "control", "sessions", "socks", "listeners", "info", "events", "stats",
	"stats_ctl", "admitted",
};
const char *const ml_pinned_progs[ML_NPINNED_PROGS] = {
	"ml_sockops", "ml_verdict", "ml_msg",
};

struct kpriv {
	struct responder *skel;
	struct bpf_link *cg_link;
	struct ring_buffer *rb;
	int lock_fd;
	int attached_skb, attached_msg;
	unsigned int slot;		/* active config slot */
	uint64_t lost_seen;		/* events_lost when last swept */
	/* cookie -> fd, open addressing with linear probing */
	uint64_t *ck;
	int *ckfd;
	uint32_t ckmask;
};

/* ---- cookie table ---------------------------------------------------------- */

static uint32_t ck_hash(uint64_t c)
{
	c ^= c >> 33;
	c *= 0xff51afd7ed558ccdULL;
	c ^= c >> 33;
	return (uint32_t)c;
}

/*
 * The table holds one entry per open kernel-engine session and nothing else:
 * sessions are indexed by fd (at most nsess_max) and the table has twice as
 * many slots, so it cannot fill. Every probe is bounded all the same: a full
 * table is an error the caller counts, never a loop without end.
 */
static int ck_put(struct kpriv *k, uint64_t c, int fd)
{
	uint32_t i = ck_hash(c) & k->ckmask, n;

	for (n = 0; n <= k->ckmask; n++, i = (i + 1) & k->ckmask) {
		if (!k->ck[i]) {
			k->ck[i] = c;
			k->ckfd[i] = fd;
			return 0;
		}
	}
	return -ENOSPC;
}

static int ck_find(struct kpriv *k, uint64_t c)
{
	uint32_t i = ck_hash(c) & k->ckmask, n;

	for (n = 0; n <= k->ckmask && k->ck[i]; n++, i = (i + 1) & k->ckmask)
		if (k->ck[i] == c)
			return (int)i;
	return -1;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void ck_del(struct kpriv *k, uint64_t c)
{
	int at = ck_find(k, c);
	uint32_t i, j, h, n;

	if (at < 0)
		return;
	i = (uint32_t)at;
	j = (i + 1) & k->ckmask;
	for (n = 0; n < k->ckmask && k->ck[j]; n++, j = (j + 1) & k->ckmask) {
		h = ck_hash(k->ck[j]) & k->ckmask;
		/* Move j into the hole at i unless its home lies in (i, j]. */
		if (((j - h) & k->ckmask) >= ((j - i) & k->ckmask)) {
			k->ck[i] = k->ck[j];
			k->ckfd[i] = k->ckfd[j];
			i = j;
		}
	}
	k->ck[i] = 0;
}

/* ---- helpers ---------------------------------------------------------------- */

static int ensure_bpffs(void)
{
	struct statfs st;

	if (statfs(BPFFS, &st) == 0 && st.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", BPFFS, "bpf", 0, "mode=0700")) {
		err("bpffs is not mounted at %s and mounting it failed: %s "
		    "(mount -t bpf bpf %s)", BPFFS, strerror(errno), BPFFS);
		return -errno;
	}
	return 0;
}

/* Our own cgroup v2 directory: mount point from mountinfo + path from
 * /proc/self/cgroup ("0::/path"). Never hard-coded: hosts differ. quiet:
 * no message when there is none (the caller will say it). */
static int own_cgroup(char *path, size_t len, int quiet)
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
		err("no cgroup v2 hierarchy found in /proc/self/mountinfo; the kernel "
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
 * stays on the cgroup we were started in and ml_kernel_init() says what
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
				dbg("removed the cgroup of dead instance %u: %s", pid, p);
		}
	closedir(d);
}

void ml_kernel_cgroup_enter(void)
{
	char now[PATH_MAX];
	int e;

	cg_own.child[0] = 0;
	if (own_cgroup(cg_own.parent, sizeof(cg_own.parent), 1)) {
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
	if ((e = write_pid(cg_own.child)) || own_cgroup(now, sizeof(now), 1) ||
	    strcmp(now, cg_own.child)) {
		snprintf(cg_own.why, sizeof(cg_own.why), "moving into %s: %s", cg_own.child,
			 e ? strerror(-e) : "we are not in it afterwards");
		if (e)
			rmdir(cg_own.child);
		cg_own.child[0] = 0;
		return;
	}
	dbg("moved into a cgroup of our own: %s", cg_own.child);
}

void ml_kernel_cgroup_leave(void)
{
	int e;

	if (!cg_own.child[0])
		return;
	if ((e = write_pid(cg_own.parent)) || rmdir(cg_own.child))
		warn("cannot remove our cgroup %s: %s (rmdir it once mailless has exited)",
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

static int check_kernel(void)
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
			dbg("probing %s: %s", features[i].what, strerror(-r));
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
	err("the kernel engine cannot run on Linux %s: it lacks %s. The kernel "
	    "engine needs Linux %s or newer (tested: 6.1, 6.12, 6.18); the user "
	    "engine runs here (--engine user, or --engine auto)", rel, miss, need);
	return -ENOTSUP;
}

/* Say why the kernel engine cannot run here, as precisely as we can tell
 * once the capabilities and the kernel's features were found in order:
 * kernel lockdown or an LSM, a verifier rejection, something else. */
static void explain(const char *what, int e)
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
		err("%s: %s: kernel lockdown is in confidentiality mode (%s), which "
		    "forbids what the kernel engine needs; use --engine user", what,
		    strerror(e), lock);
	else if (e == EPERM)
		err("%s: %s: the kernel refused although this process holds the "
		    "capabilities (lockdown: %s); a seccomp filter or an LSM (AppArmor, "
		    "SELinux, a BPF LSM) may forbid bpf(); use --engine user",
		    what, strerror(e), lock[0] ? lock : "none");
	else if (rj && (e == EACCES || e == EINVAL || e == E2BIG)) {
		/* A bug to report, not a host without BPF: an error even
		 * under --engine auto. */
		int soft = ml_log_soften;

		ml_log_soften = 0;
		err("%s: %s: the kernel's verifier rejected program '%s': \"%s\". This "
		    "kernel has every feature mailless probes for, so it is a bug in "
		    "mailless or a verifier it was not tested with (tested: 6.1, 6.12, "
		    "6.18); please report it with the output of `mailless -v run`. "
		    "The user engine runs here (--engine user)", what, strerror(e),
		    rj->prog, rj->line[0] ? rj->line : "(no log)");
		ml_log_soften = soft;
	} else
		err("%s: %s", what, strerror(e));
}

static void pin_path(char *buf, size_t len, const char *dir, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

/* The PID holding a flock on the inode major:minor:ino, from /proc/locks
 * (0 if none is listed there, e.g. the holder is in another PID namespace). */
static int lock_holder(unsigned int major, unsigned int minor, unsigned long long ino)
{
	FILE *f = fopen("/proc/locks", "re");
	char line[256];
	int pid = 0;

	if (!f)
		return 0;
	while (!pid && fgets(line, sizeof(line), f)) {
		/* "1: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF"; a waiter's
		 * line has "->" before FLOCK and is not the holder. */
		const char *s = strstr(line, " FLOCK ");
		unsigned int ma, mi;
		unsigned long long in;
		int p;

		if (!s || strstr(line, "->"))
			continue;
		if (sscanf(s, " FLOCK %*s %*s %d %x:%x:%llu", &p, &ma, &mi, &in) == 4 &&
		    ma == major && mi == minor && in == ino)
			pid = p;
	}
	fclose(f);
	return pid;
}

/*
 * Create (0700) or open the pin dir and take its lock. An existing one must
 * be a real directory (no symlink) owned by root or by us with no group or
 * other permissions: anyone else who could open it could plant pins in it or
 * take its lock and keep mailless from starting.
 */
static int lock_dir(const char *dir, int *fd_out)
{
	struct statx st;
	struct stat lst;
	int fd, e, pid;

	if (mkdir(dir, 0700) && errno != EEXIST) {
		err("cannot create pin dir %s: %s (it must be on bpffs)", dir, strerror(errno));
		return -errno;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		if (!lstat(dir, &lst) && S_ISLNK(lst.st_mode))
			err("pin dir %s is a symbolic link: refusing it (whoever can change the "
			    "link would choose where mailless pins and locks); give the real "
			    "directory to --pin-dir, or remove the link", dir);
		else if (e == ENOTDIR)
			err("pin dir %s exists and is not a directory: remove it, or choose "
			    "another --pin-dir", dir);
		else
			err("cannot open pin dir %s: %s", dir, strerror(e));
		return -e;
	}
	if (statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_MODE | STATX_UID | STATX_INO, &st)) {
		e = errno;
		err("cannot stat pin dir %s: %s", dir, strerror(e));
		close(fd);
		return -e;
	}
	if ((st.stx_uid != 0 && st.stx_uid != geteuid()) || (st.stx_mode & 077)) {
		char fix[2 * PATH_MAX + 64];
		int owner_ok = st.stx_uid == 0 || st.stx_uid == geteuid();

		if (owner_ok)
			snprintf(fix, sizeof(fix), "chmod 0700 %s", dir);
		else
			snprintf(fix, sizeof(fix), "chown %u %s && chmod 0700 %s", geteuid(), dir, dir);
		err("pin dir %s is owned by uid %u with mode %04o: it must be owned by root%s "
		    "with mode 0700 (no group or other access), or others could plant pins "
		    "in it or lock it to keep mailless from starting; fix: %s (or remove it: "
		    "mailless creates it with mode 0700)", dir, st.stx_uid, st.stx_mode & 07777,
		    geteuid() ? " or by the user running mailless" : "", fix);
		close(fd);
		return -EPERM;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		char comm[64] = "", path[64];
		FILE *f;

		pid = lock_holder(st.stx_dev_major, st.stx_dev_minor, st.stx_ino);
		snprintf(path, sizeof(path), "/proc/%d/comm", pid);
		if (pid > 0 && (f = fopen(path, "re"))) {
			if (!fgets(comm, sizeof(comm), f))
				comm[0] = 0;
			comm[strcspn(comm, "\n")] = 0;
			fclose(f);
		}
		if (pid > 0)
			err("another process (pid %d, %s) holds the lock on %s: stop it, or "
			    "choose another --pin-dir (see: mailless status --pin-dir %s)",
			    pid, comm[0] ? comm : "?", dir, dir);
		else
			err("another process holds the lock on %s (not listed in /proc/locks: "
			    "another PID namespace?): stop it, or choose another --pin-dir "
			    "(see: mailless status --pin-dir %s)", dir, dir);
		close(fd);
		return -EBUSY;
	}
	*fd_out = fd;
	return 0;
}

/* Remove what a previous run pinned (a crash leaves the pins; the cgroup
 * link died with its process). Only our own names are touched. Returns how
 * many could not be removed (said on stderr); *removed counts the others. */
int ml_unpin_all(const char *dir, int *removed)
{
	char p[PATH_MAX];
	unsigned int i;
	int left = 0;

	for (i = 0; i < ML_NPINNED_PROGS + ML_NPINNED_MAPS; i++) {
		pin_path(p, sizeof(p), dir, i < ML_NPINNED_PROGS ? ml_pinned_progs[i] :
					    ml_pinned_maps[i - ML_NPINNED_PROGS]);
		if (!unlink(p)) {
			if (removed)
				(*removed)++;
		} else if (errno != ENOENT) {
			err("cannot remove %s: %s", p, strerror(errno));
			left++;
		}
	}
	return left;
}

/* An object pinned under dir, by name; a negative errno if it is not there. */
int ml_pinned_fd(const char *dir, const char *name)
{
	char p[PATH_MAX];

	pin_path(p, sizeof(p), dir, name);
	return bpf_obj_get(p);
}

static int flow_of(int fd, struct ml_flow *f)
{
	struct sockaddr_storage l, r;
	socklen_t ll = sizeof(l), rl = sizeof(r);

	if (getsockname(fd, (struct sockaddr *)&l, &ll) ||
	    getpeername(fd, (struct sockaddr *)&r, &rl))
		return -errno;
	memset(f, 0, sizeof(*f));
	if (l.ss_family == AF_INET) {
		struct sockaddr_in *a = (void *)&l, *b = (void *)&r;

		f->laddr[2] = f->raddr[2] = htonl(0xffff);
		f->laddr[3] = a->sin_addr.s_addr;
		f->raddr[3] = b->sin_addr.s_addr;
		f->lport = ntohs(a->sin_port);
		f->rport = (uint32_t)b->sin_port << 16;
	} else {
		struct sockaddr_in6 *a = (void *)&l, *b = (void *)&r;

		memcpy(f->laddr, &a->sin6_addr, 16);
		memcpy(f->raddr, &b->sin6_addr, 16);
		f->lport = ntohs(a->sin6_port);
		f->rport = (uint32_t)b->sin6_port << 16;
	}
	return 0;
}

/* Octets this socket has put into TCP so far (sent once, or waiting). */
static int tcp_queued(int fd, uint64_t *queued, uint8_t *state, uint32_t *idle_ms)
{
	struct tcp_info ti;
	int r = ml_tcp_info(fd, &ti);

	if (r)
		return r;
	if (queued)
		*queued = ti.tcpi_bytes_sent - ti.tcpi_bytes_retrans + ti.tcpi_notsent_bytes;
	if (state)
		*state = ti.tcpi_state;
	if (idle_ms)
		*idle_ms = ti.tcpi_last_data_recv;
	return 0;
}

/*
 * The event ring's size. The controller maps all of it twice (the kernel maps
 * the data pages back to back so records never wrap), so it counts twice in
 * the controller's RSS: 512 KiB costs 1 MiB. It holds about 16,000 close
 * events at once; what does not fit is recovered by ml_kernel_sweep().
 * MAILLESS_TEST_RING_KIB shrinks it so the tests can overflow it on purpose.
 */
#define RING_BYTES	(512 * 1024)

static __u32 ring_bytes(void)
{
	const char *t = getenv("MAILLESS_TEST_RING_KIB");
	unsigned long kib = t ? strtoul(t, NULL, 10) : 0;
	__u32 n = 4096;

	if (!kib)
		return RING_BYTES;
	while (n < kib * 1024 && n < RING_BYTES)	/* a power of two, >= a page */
		n <<= 1;
	return n;
}

/* ---- engine ops ---------------------------------------------------------------- */

static void start_drain(struct ml_server *srv, struct ml_session *s, uint64_t bytes);

static int k_open(struct ml_server *srv, struct ml_session *s)
{
	struct kpriv *k = srv->eng_priv;
	uint8_t st = 0;
	int r, one = 1;

	/* s->cookie was read at accept (server.c). The socket is never in the
	 * epoll set: sock_ops reports the client's FIN or reset (ML_EV_PEER)
	 * for the cookies in this table. */
	if (ck_put(k, s->cookie, s->fd)) {
		s->reason = ML_ST_CLOSE_ERROR;
		err("session table full (%u slots); refusing a session: this is a bug, "
		    "please report it", k->ckmask + 1);
		return -ENOSPC;
	}
	/* EACCES: the client talked first and the verdict program already
	 * sent the greeting in front of its replies. */
	r = ml_send_reply(srv, s, ML_OP_GREET);
	if (r && r != -EACCES)
		dbg("greeting fd %d: %s", s->fd, strerror(-r));
	/* Bytes that arrived before accept() sit in the receive queue: the
	 * psock's data_ready ignored them while the socket had no file
	 * (DESIGN.md fact 7). Setting SO_RCVLOWAT runs tcp_data_ready(), which
	 * hands them to the verdict program now, after the greeting. */
	if (setsockopt(s->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one)))
		return -errno;
	/* A FIN or reset before accept() was reported while the cookie was
	 * not in the table yet, and ignored: the socket's state says it. One
	 * that comes later finds the cookie. */
	if (tcp_queued(s->fd, NULL, &st, NULL) || st == BPF_TCP_CLOSE) {
		s->reason = ML_ST_CLOSE_RESET;
		return -ECONNRESET;
	}
	if (st != BPF_TCP_ESTABLISHED) {
		s->reason = ML_ST_CLOSE_CLIENT;
		start_drain(srv, s, UINT64_MAX);
	}
	return 0;
}

static void start_drain(struct ml_server *srv, struct ml_session *s, uint64_t bytes)
{
	s->state = ML_S_DRAIN;
	s->drain_bytes = bytes;
	s->drain_wait_ms = 1;
	s->drain_until_ms = ml_now_ms() + 5000;
	srv->eng->drain(srv, s);
}

/* The session's entry in the kernel's session map, by its socket's flow. */
static int session_entry(struct kpriv *k, int fd, struct ml_sock *ms)
{
	struct ml_flow f;

	if (flow_of(fd, &f) ||
	    bpf_map_lookup_elem(bpf_map__fd(k->skel->maps.sessions), &f, ms))
		return -errno;
	return 0;
}

/* Look again after a backoff of 1 to 64 ms (the drain deadline bounds it). */
static void drain_again(struct ml_server *srv, struct ml_session *s)
{
	ml_session_timer(srv, s, ml_now_ms() + s->drain_wait_ms);
	if (s->drain_wait_ms < 64)
		s->drain_wait_ms *= 2;
}

/*
 * ML_S_FAILING: the kernel dropped a segment it could not answer (ML_EV_FAIL)
 * and answers nothing more. The 421 is the controller's to send, after the
 * replies still queued from earlier segments (or at once if sk_msg, which
 * then drops those, was the one that failed): never ahead of them. Returns
 * 1 while it must wait.
 */
static int k_fail_send(struct ml_server *srv, struct ml_session *s, const struct ml_sock *ms)
{
	int r;

	if (ms->ops_done != ms->ops_out && !ms->msg_failed && !ms->msg_closed &&
	    ml_now_ms() + 4000 < s->drain_until_ms)
		return 1;
	r = ml_send_reply(srv, s, (unsigned int)s->drain_bytes);
	if (r == -EAGAIN)
		return 1;	/* the socket is full: the drain deadline bounds it */
	s->state = ML_S_DRAIN;
	s->drain_bytes = UINT64_MAX;
	return 0;
}

/*
 * A 421 ends a client that is likely still sending (a flood, a pipeliner
 * that does not read). close() now would have the kernel answer its next
 * segment with a reset that throws away the replies not yet delivered
 * (TCPAbortOnData), so linger as the user engine does (ml_linger_begin;
 * the verdict drops what comes after the closing reply), polling for the
 * client's FIN. A client that sent QUIT, or closed first, sends nothing
 * more: closed at once.
 */
static void linger(struct ml_server *srv, struct ml_session *s)
{
	ml_linger_begin(s);
	s->drain_wait_ms = 1;
	drain_again(srv, s);
}

static void k_drain(struct ml_server *srv, struct ml_session *s)
{
	struct kpriv *k = srv->eng_priv;
	uint64_t target = s->drain_bytes, queued = 0;
	uint8_t st = 0;

	if (tcp_queued(s->fd, &queued, &st, NULL) || st == BPF_TCP_CLOSE) {
		ml_session_close(srv, s);
		return;
	}
	if (s->state == ML_S_LINGER) {
		/* FIN_WAIT1/2 until the client's FIN (then CLOSE, above). */
		drain_again(srv, s);
		return;
	}
	if (s->state == ML_S_FAILING) {
		struct ml_sock ms;

		if (session_entry(k, s->fd, &ms)) {
			ml_session_close(srv, s);
			return;
		}
		if (k_fail_send(srv, s, &ms)) {
			drain_again(srv, s);
			return;
		}
		target = UINT64_MAX;	/* the 421 just sent counts: read again */
	}
	if (target == UINT64_MAX) {
		/* The client closed: wait for the replies to what it sent. */
		struct ml_sock ms;

		if (session_entry(k, s->fd, &ms)) {
			ml_session_close(srv, s);
			return;
		}
		target = ms.ops_done == ms.ops_out || ms.msg_failed ? ms.out_bytes : UINT64_MAX;
	}
	if (queued >= target) {
		if (s->reason == ML_ST_CLOSE_QUIT || s->reason == ML_ST_CLOSE_CLIENT)
			ml_session_close(srv, s);
		else
			linger(srv, s);
		return;
	}
	drain_again(srv, s);
}

/* ML_EV_PEER: the client closed (CLOSE_WAIT) or reset (CLOSE). A cookie not
 * in the table is a session already closed (its client's FIN raced our
 * close) or not accepted yet (k_open reads the state itself): nothing to do,
 * and nothing to remember. */
static void peer_gone(struct ml_server *srv, const struct ml_event *ev)
{
	struct kpriv *k = srv->eng_priv;
	struct ml_session *s;
	int i = ck_find(k, ev->cookie);

	if (i < 0)
		return;
	s = &srv->sess[k->ckfd[i]];
	if (s->state != ML_S_ACTIVE)
		return;
	if (ev->op == BPF_TCP_CLOSE) {
		s->reason = ML_ST_CLOSE_RESET;
		ml_session_close(srv, s);
		return;
	}
	s->reason = ML_ST_CLOSE_CLIENT;
	start_drain(srv, s, UINT64_MAX);
}

/* Why a session ends, from the closing reply the kernel sent or must have
 * sent (ML_EV_CLOSE, ML_EV_FAIL). */
static int closing_reason(uint32_t op)
{
	switch (op) {
	case ML_OP_QUIT:	return ML_ST_CLOSE_QUIT;
	case ML_OP_BACKLOG:	return ML_ST_CLOSE_BACKLOG;
	case ML_OP_ERROR:	return ML_ST_CLOSE_ERROR;
	}
	return ML_ST_CLOSE_FLOOD;	/* FLOOD, PIPELINE */
}

/* ML_EV_FAIL: the kernel dropped a segment and answers no more; the
 * controller sends the 421 (k_fail_send) and closes. */
static void fail_event(struct ml_server *srv, const struct ml_event *ev)
{
	struct kpriv *k = srv->eng_priv;
	struct ml_session *s;
	int i = ck_find(k, ev->cookie);

	if (i < 0 || ev->op >= ML_OP__MAX)
		return;
	s = &srv->sess[k->ckfd[i]];
	if (s->state != ML_S_ACTIVE)
		return;
	if (ev->op == ML_OP_ERROR)
		warn("kernel engine: a segment could not be answered in place (a failed "
		     "sk_skb or sk_msg helper); that session ends with 421 (%s)",
		     "counted in mailless_sessions_total{reason=\"internal_error\"}");
	s->reason = closing_reason(ev->op);
	s->state = ML_S_FAILING;
	s->drain_bytes = ev->op;
	s->drain_wait_ms = 1;
	s->drain_until_ms = ml_now_ms() + 5000;
	k_drain(srv, s);
}

static void log_record(struct ml_server *srv, const struct ml_log_event *le)
{
	struct kpriv *k = srv->eng_priv;
	char client[64], local[64];
	int reason = ML_ST_CLOSE_RESET, i;
	uint64_t start = 0, now = ml_now_ms();

	for (i = 0; i < srv->nclosed; i++)
		if (srv->closed[i].cookie == le->ev.cookie)
			break;
	if (i < srv->nclosed) {
		reason = srv->closed[i].reason;
		start = srv->closed[i].start_ms;
	} else if ((i = ck_find(k, le->ev.cookie)) >= 0) {
		/* Lingering after its 421 (shutdown() left ESTABLISHED), or
		 * reset under an open session: its close comes later. */
		const struct ml_session *o = &srv->sess[k->ckfd[i]];

		start = o->start_ms;
		if (o->state == ML_S_LINGER && o->reason)
			reason = o->reason;
	}
	if (!ml_sesslog_allow(srv))
		return;
	ml_sesslog_addr(client, sizeof(client), le->flow.raddr, ntohs(le->flow.rport >> 16));
	ml_sesslog_addr(local, sizeof(local), le->flow.laddr, le->flow.lport);
	ml_sesslog_print(srv, client, local, &le->sum, reason, start ? now - start : 0);
}

static int on_event(void *ctx, void *data, size_t len)
{
	struct ml_server *srv = ctx;
	struct kpriv *k = srv->eng_priv;
	const struct ml_event *ev = data;
	struct ml_session *s;
	int i;

	if (len >= sizeof(struct ml_log_event) && ev->type == ML_EV_LOG) {
		log_record(srv, data);
		return 0;
	}
	if (len >= sizeof(*ev) && ev->type == ML_EV_PEER) {
		peer_gone(srv, ev);
		return 0;
	}
	if (len >= sizeof(*ev) && ev->type == ML_EV_FAIL) {
		fail_event(srv, ev);
		return 0;
	}
	if (len < sizeof(*ev) || ev->type != ML_EV_CLOSE)
		return 0;
	i = ck_find(k, ev->cookie);
	if (i < 0)
		return 0;
	s = &srv->sess[k->ckfd[i]];
	if (s->state == ML_S_DRAIN && s->reason == ML_ST_CLOSE_CLIENT) {
		/* The client sent QUIT and closed at once: it was a QUIT. */
		s->reason = closing_reason(ev->op);
		return 0;
	}
	if (s->state != ML_S_ACTIVE)
		return 0;
	s->reason = closing_reason(ev->op);
	start_drain(srv, s, ev->out_bytes);
	return 0;
}

/*
 * The ring buffer overflowed (events_lost moved, read from the mmap'ed .bss
 * without a syscall): walk the session map for the events it could not carry
 * and handle them as if they had arrived. Rare, O(sessions), and idempotent.
 */
void ml_kernel_sweep(struct ml_server *srv)
{
	struct kpriv *k = srv->eng_priv;
	struct ml_flow key, next;
	struct ml_sock v;
	uint64_t lost;
	void *prev = NULL;
	__u32 n;
	int fd;

	if (!k || !k->skel || !k->skel->bss)
		return;
	lost = *(volatile __u64 *)&k->skel->bss->sessions_live;
	if (lost != srv->ctr.v[ML_ST_SESSIONS_MAP]) {
		srv->ctr.v[ML_ST_SESSIONS_MAP] = lost;
		srv->ctr_dirty = 1;
	}
	lost = *(volatile __u64 *)&k->skel->bss->events_lost;
	if (lost == k->lost_seen)
		return;
	warn("the event ring buffer overflowed (%llu events so far); recovering them "
	     "from the session map", (unsigned long long)lost);
	k->lost_seen = lost;
	srv->ctr.v[ML_ST_EVENTS_LOST] = lost;
	srv->ctr_dirty = 1;
	fd = bpf_map__fd(k->skel->maps.sessions);
	/* Bounded: a hash walked while it changes may restart from the top. */
	for (n = bpf_map__max_entries(k->skel->maps.sessions);
	     n > 0 && bpf_map_get_next_key(fd, prev, &next) == 0; n--) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &v))
			continue;
		if (v.lost_op) {
			struct ml_event ev = { .cookie = v.cookie, .out_bytes = v.out_bytes,
					       .type = ML_EV_CLOSE, .op = v.lost_op };

			on_event(srv, &ev, sizeof(ev));
		} else if (v.lost_fail) {
			struct ml_event ev = { .cookie = v.cookie, .type = ML_EV_FAIL,
					       .op = v.lost_fail };

			on_event(srv, &ev, sizeof(ev));
		} else if (v.lost_peer) {
			struct ml_event ev = { .cookie = v.cookie, .type = ML_EV_PEER,
					       .op = v.lost_peer };

			on_event(srv, &ev, sizeof(ev));
		}
	}
}

int ml_kernel_admitted(struct ml_server *srv, int fd, uint64_t *cookie)
{
	struct kpriv *k = srv->eng_priv;

	if (bpf_map_lookup_elem(bpf_map__fd(k->skel->maps.admitted), &fd, cookie))
		return -errno;
	return 0;
}

static int k_poll_fd(struct ml_server *srv)
{
	return ring_buffer__epoll_fd(((struct kpriv *)srv->eng_priv)->rb);
}

static void k_poll(struct ml_server *srv)
{
	srv->in_poll = 1;
	ring_buffer__consume(((struct kpriv *)srv->eng_priv)->rb);
	srv->in_poll = 0;
	srv->nclosed = 0;	/* their records were all read */
}

static uint64_t k_idle_ms(struct ml_server *srv, struct ml_session *s)
{
	uint32_t idle = 0;

	(void)srv;
	if (tcp_queued(s->fd, NULL, NULL, &idle))
		return UINT64_MAX;	/* broken socket: let the timeout take it */
	return idle;
}

static int publish_config(struct kpriv *k, const struct ml_config *cfg, unsigned int slot)
{
	struct ml_control ctl = { .active = slot };
	__u32 zero = 0;

	if (bpf_map_update_elem(bpf_map__fd(k->skel->maps.config), &slot, cfg, BPF_ANY) ||
	    bpf_map_update_elem(bpf_map__fd(k->skel->maps.control), &zero, &ctl, BPF_ANY))
		return -errno;
	k->slot = slot;
	return 0;
}

int ml_bpf_publish(struct ml_server *srv)
{
	struct kpriv *k = srv->eng_priv;

	if (!k)
		return 0;
	srv->render.generation = k->slot + 1;
	/* Write the idle slot, then flip: readers never see a torn reply. */
	return publish_config(k, &srv->render, k->slot ^ 1);
}

static void k_close(struct ml_server *srv, struct ml_session *s)
{
	ck_del(srv->eng_priv, s->cookie);
	if (srv->nclosed < ML_CLOSED_MAX) {
		srv->closed[srv->nclosed].cookie = s->cookie;
		srv->closed[srv->nclosed].reason = s->reason;
		srv->closed[srv->nclosed].start_ms = s->start_ms;
		srv->nclosed++;
	}
}


void ml_bpf_shutdown(struct ml_server *srv)
{
	struct kpriv *k = srv->eng_priv;
	struct responder *skel;

	if (!k)
		return;
	skel = k->skel;
	if (k->rb)
		ring_buffer__free(k->rb);
	if (k->cg_link)
		bpf_link__destroy(k->cg_link);
	if (skel) {
		int mfd = bpf_map__fd(skel->maps.socks);

		if (k->attached_skb)
			bpf_prog_detach2(bpf_program__fd(skel->progs.ml_verdict), mfd,
					 BPF_SK_SKB_VERDICT);
		if (k->attached_msg)
			bpf_prog_detach2(bpf_program__fd(skel->progs.ml_msg), mfd,
					 BPF_SK_MSG_VERDICT);
		ml_unpin_all(srv->opts.pin_dir, NULL);
		responder__destroy(skel);
	}
	if (k->lock_fd >= 0) {
		rmdir(srv->opts.pin_dir);
		close(k->lock_fd);
	}
	free(k->ck);
	free(k->ckfd);
	free(k);
	srv->eng_priv = NULL;
}

const struct ml_engine_ops ml_kernel_engine = {
	.name = "kernel",
	.open = k_open,
	.idle_ms = k_idle_ms,
	.drain = k_drain,
	.poll_fd = k_poll_fd,
	.poll = k_poll,
	.close = k_close,
};

/* ---- counters ------------------------------------------------------------------ */

void ml_bpf_flush_stats(struct ml_server *srv)
{
	struct kpriv *k = srv->eng_priv;
	__u32 zero = 0;

	if (k && k->skel)
		bpf_map_update_elem(bpf_map__fd(k->skel->maps.stats_ctl), &zero, &srv->ctr,
				    BPF_ANY);
}

void ml_bpf_read_stats(struct ml_server *srv, struct ml_counters *c)
{
	struct kpriv *k = srv->eng_priv;

	*c = srv->ctr;
	if (k && k->skel && srv->eng == &ml_kernel_engine)
		ml_stats_add_percpu(bpf_map__fd(k->skel->maps.stats), c);
}

/* ---- load, attach, pin ------------------------------------------------------- */

static int fill_listeners(struct ml_server *srv, struct kpriv *k)
{
	int fd = bpf_map__fd(k->skel->maps.listeners), i;
	__u32 one = 1;

	for (i = 0; i < srv->opts.nlisten; i++) {
		const struct ml_listen *l = &srv->opts.listen[i];
		/* The socket's own family: 0.0.0.0 serves AF_INET children
		 * only, [::] (dual-stack) AF_INET6 ones, v4-mapped included. */
		struct ml_listen_key key = { .family = l->ss.ss_family };

		if (l->ss.ss_family == AF_INET) {
			const struct sockaddr_in *in = (const void *)&l->ss;

			key.port = ntohs(in->sin_port);
			if (in->sin_addr.s_addr != htonl(INADDR_ANY)) {
				key.addr[2] = htonl(0xffff);
				key.addr[3] = in->sin_addr.s_addr;
			}
		} else {
			const struct sockaddr_in6 *in6 = (const void *)&l->ss;

			key.port = ntohs(in6->sin6_port);
			memcpy(key.addr, &in6->sin6_addr, 16);
		}
		if (bpf_map_update_elem(fd, &key, &one, BPF_ANY))
			return -errno;
	}
	return 0;
}

static int pin_everything(struct ml_server *srv, struct kpriv *k)
{
	const char *dir = srv->opts.pin_dir;
	struct bpf_program *prog;
	struct bpf_map *map;
	char p[PATH_MAX];

	bpf_object__for_each_map(map, k->skel->obj) {
		const char *name = bpf_map__name(map);

		if (strchr(name, '.'))	/* .rodata and friends */
			continue;
		pin_path(p, sizeof(p), dir, name);
		if (bpf_map__pin(map, p))
			return -errno;
	}
	bpf_object__for_each_program(prog, k->skel->obj) {
		if (bpf_program__fd(prog) < 0)	/* not loaded (user engine) */
			continue;
		pin_path(p, sizeof(p), dir, bpf_program__name(prog));
		if (bpf_program__pin(prog, p))
			return -errno;
	}
	return 0;
}

int ml_kernel_init(struct ml_server *srv)
{
	struct kpriv *k;
	struct responder *skel;
	char cg[PATH_MAX];
	struct ml_info inf = {};
	__u64 netns = 0;
	socklen_t len = sizeof(netns);
	__u32 zero = 0, entries;
	int cgfd = -1, e, mfd;

	/* With --engine auto a failure is expected on some hosts: libbpf's
	 * own messages only with -v; ours say why. */
	ml_log_libbpf(srv->opts.engine == ML_ENGINE_AUTO && ml_log_level < ML_DEBUG);
	/* CAP_PERFMON: the verifier offers bpf_skc_to_tcp_sock() only to
	 * perfmon_capable() loaders. */
	if ((e = ml_need_caps("the kernel engine", ML_CAP_BPF | ML_CAP_PERFMON |
			      ML_CAP_NET_ADMIN)) || (e = check_kernel()))
		return e;
	if ((e = ensure_bpffs()))
		return e;
	if (getsockopt(srv->lfd[0], SOL_SOCKET, SO_NETNS_COOKIE, &netns, &len)) {
		e = -errno;
		explain("reading the network namespace cookie (SO_NETNS_COOKIE)", errno);
		return e;
	}
	if ((e = own_cgroup(cg, sizeof(cg), 0)))
		return e;
	cgfd = open(cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0) {
		e = -errno;
		err("cannot open own cgroup %s: %s", cg, strerror(errno));
		return e;
	}

	k = calloc(1, sizeof(*k));
	if (!k) {
		close(cgfd);
		return -ENOMEM;
	}
	k->lock_fd = -1;
	srv->eng_priv = k;
	srv->eng = &ml_kernel_engine;	/* so that shutdown cleans up */
	k->ckmask = 1;
	while (k->ckmask < (uint32_t)srv->nsess_max * 2)
		k->ckmask <<= 1;
	k->ck = calloc(k->ckmask, sizeof(*k->ck));
	k->ckfd = calloc(k->ckmask, sizeof(*k->ckfd));
	k->ckmask--;
	if (!k->ck || !k->ckfd) {
		e = -ENOMEM;
		goto fail;
	}

	if ((e = lock_dir(srv->opts.pin_dir, &k->lock_fd)))
		goto fail_nolock;
	ml_unpin_all(srv->opts.pin_dir, NULL);	/* leftovers of a crashed run */

	skel = responder__open();
	if (!skel) {
		e = -errno;
		explain("opening the BPF object", errno);
		goto fail;
	}
	k->skel = skel;
	skel->rodata->netns_cookie = netns;
	/* Every descriptor the process may hold, plus the accept backlog. */
	entries = (__u32)srv->nsess_max + 4096;
	bpf_map__set_max_entries(skel->maps.socks, entries);
	bpf_map__set_max_entries(skel->maps.sessions, entries);
	bpf_map__set_max_entries(skel->maps.events, ring_bytes());
	if (responder__load(skel)) {
		e = -errno;
		explain("loading the BPF programs", errno);
		goto fail;
	}
	if ((e = publish_config(k, &srv->render, 0)) || (e = fill_listeners(srv, k))) {
		explain("filling the maps", -e);
		goto fail;
	}

	mfd = bpf_map__fd(skel->maps.socks);
	if (bpf_prog_attach(bpf_program__fd(skel->progs.ml_verdict), mfd,
			    BPF_SK_SKB_VERDICT, 0)) {
		e = -errno;
		explain("attaching the sk_skb verdict program to the sockhash", errno);
		goto fail;
	}
	k->attached_skb = 1;
	if (bpf_prog_attach(bpf_program__fd(skel->progs.ml_msg), mfd,
			    BPF_SK_MSG_VERDICT, 0)) {
		e = -errno;
		explain("attaching the sk_msg program to the sockhash", errno);
		goto fail;
	}
	k->attached_msg = 1;
	/* A link, not a plain attach: if this process dies, the kernel
	 * detaches sock_ops by itself. */
	k->cg_link = bpf_program__attach_cgroup(skel->progs.ml_sockops, cgfd);
	if (!k->cg_link) {
		e = -errno;
		k->cg_link = NULL;
		explain("attaching sock_ops to the cgroup", errno);
		goto fail;
	}
	k->rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, srv, NULL);
	if (!k->rb) {
		e = -errno;
		explain("opening the ring buffer", errno);
		goto fail;
	}

	inf.pid = getpid();
	inf.engine = ML_INFO_ENGINE_KERNEL;
	inf.max_sessions = srv->opts.max_sessions;
	inf.cgroup_own = cg_own.child[0] && !strcmp(cg, cg_own.child);
	inf.netns_cookie = netns;
	inf.started = time(NULL);
	snprintf(inf.cgroup, sizeof(inf.cgroup), "%s", cg);
	snprintf(inf.hostname, sizeof(inf.hostname), "%s", srv->opts.hostname);
	bpf_map_update_elem(bpf_map__fd(skel->maps.info), &zero, &inf, BPF_ANY);
	if ((e = pin_everything(srv, k))) {
		explain("pinning under the pin dir", -e);
		goto fail;
	}
	if (!cg_own.child[0] || strcmp(cg, cg_own.child))
		warn("sock_ops stays on %s, shared with every process started there: "
		     "mailless cannot make a cgroup of its own (%s). It still admits "
		     "only connections to its own (family, address, port) in its own "
		     "network namespace, but a socket of another program in that cgroup "
		     "with the same local address and port (a transparent proxy, for "
		     "one) would be answered by mailless; give it a writable cgroup v2 "
		     "(systemd: Delegate=yes)", cg, cg_own.child[0] ? "it was moved out of "
		     "its own" : cg_own.why[0] ? cg_own.why : "it was not asked to");
	close(cgfd);
	dbg("kernel engine: cgroup %s, netns cookie %llu, pin dir %s", cg,
	    (unsigned long long)netns, srv->opts.pin_dir);
	return 0;

fail_nolock:
	k->lock_fd = -1;
fail:
	close(cgfd);
	ml_bpf_shutdown(srv);
	srv->eng = NULL;
	return e ? e : -EINVAL;
}

/*
 * The user engine still pins its counters and configuration when it may
 * create BPF maps, so that `mailless stats` and bpftool work the same: the
 * object is loaded with every program's autoload off.
 */
int ml_maps_init(struct ml_server *srv)
{
	struct bpf_program *prog;
	struct ml_info inf = {};
	struct responder *skel;
	struct kpriv *k;
	__u32 zero = 0;
	int e;

	ml_log_libbpf(ml_log_level < ML_DEBUG);
	if (ensure_bpffs())
		return -ENOENT;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->lock_fd = -1;
	srv->eng_priv = k;
	if ((e = lock_dir(srv->opts.pin_dir, &k->lock_fd))) {
		k->lock_fd = -1;
		goto fail;
	}
	ml_unpin_all(srv->opts.pin_dir, NULL);
	skel = responder__open();
	if (!skel) {
		e = -errno;
		goto fail;
	}
	k->skel = skel;
	bpf_object__for_each_program(prog, skel->obj)
		bpf_program__set_autoload(prog, false);
	bpf_map__set_max_entries(skel->maps.socks, 1);
	bpf_map__set_max_entries(skel->maps.sessions, 1);
	bpf_map__set_max_entries(skel->maps.events, 4096);	/* unused here */
	if (responder__load(skel)) {
		e = -errno;
		goto fail;
	}
	inf.pid = getpid();
	inf.engine = ML_INFO_ENGINE_USER;
	inf.max_sessions = srv->opts.max_sessions;
	inf.started = time(NULL);
	snprintf(inf.hostname, sizeof(inf.hostname), "%s", srv->opts.hostname);
	if ((e = publish_config(k, &srv->render, 0)) ||
	    bpf_map_update_elem(bpf_map__fd(skel->maps.info), &zero, &inf, BPF_ANY) ||
	    (e = pin_everything(srv, k)))
		goto fail;
	return 0;
fail:
	ml_bpf_shutdown(srv);
	return e ? e : -EINVAL;
}
