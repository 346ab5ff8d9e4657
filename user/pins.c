// SPDX-License-Identifier: GPL-2.0
/*
 * pins.c - the pin dir on bpffs: mount bpffs if it is not, create the pin
 * dir (0700, ours alone) and hold its lock for as long as `run` runs, pin a
 * BPF object's maps and programs under it, and find or remove pins by name.
 * Both engines and the XDP guard pin here; `status`, `stats` and `unload`
 * read the pins from another process.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "log.h"
#include "pins.h"

#define BPF_FS_MAGIC	0xcafe4a11
#define BPFFS		"/sys/fs/bpf"

int ml_bpffs_ensure(void)
{
	struct statfs st;

	if (statfs(BPFFS, &st) == 0 && st.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", BPFFS, "bpf", 0, "mode=0700")) {
		int e = errno;

		log_err("bpffs is not mounted at %s and mounting it failed: %s "
			"(mount -t bpf bpf %s)", BPFFS, strerror(e), BPFFS);
		return -e;
	}
	return 0;
}

void ml_pin_path(char *buf, size_t len, const char *dir, const char *name)
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
int ml_pin_dir_lock(const char *dir, int *fd_out)
{
	struct statx st;
	struct stat lst;
	int fd, e, pid;

	if (mkdir(dir, 0700) && errno != EEXIST) {
		e = errno;
		log_err("cannot create pin dir %s: %s (it must be on bpffs)", dir, strerror(e));
		return -e;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		if (!lstat(dir, &lst) && S_ISLNK(lst.st_mode))
			log_err("pin dir %s is a symbolic link: refusing it (whoever can change the "
			    "link would choose where mailless pins and locks); give the real "
			    "directory to --pin-dir, or remove the link", dir);
		else if (e == ENOTDIR)
			log_err("pin dir %s exists and is not a directory: remove it, or choose "
			    "another --pin-dir", dir);
		else
			log_err("cannot open pin dir %s: %s", dir, strerror(e));
		return -e;
	}
	if (statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_MODE | STATX_UID | STATX_INO, &st)) {
		e = errno;
		log_err("cannot stat pin dir %s: %s", dir, strerror(e));
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
		log_err("pin dir %s is owned by uid %u with mode %04o: it must be owned by root%s "
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
			log_err("another process (pid %d, %s) holds the lock on %s: stop it, or "
			    "choose another --pin-dir (see: mailless status --pin-dir %s)",
			    pid, comm[0] ? comm : "?", dir, dir);
		else
			log_err("another process holds the lock on %s (not listed in /proc/locks: "
			    "another PID namespace?): stop it, or choose another --pin-dir "
			    "(see: mailless status --pin-dir %s)", dir, dir);
		close(fd);
		return -EBUSY;
	}
	*fd_out = fd;
	return 0;
}

/* Unlink dir/name for each of names; returns how many could not be removed
 * (said on stderr), *removed (if set) counts the others. */
int ml_unpin_names(const char *dir, const char *const *names, unsigned int n, int *removed)
{
	char p[PATH_MAX];
	unsigned int i;
	int left = 0;

	for (i = 0; i < n; i++) {
		ml_pin_path(p, sizeof(p), dir, names[i]);
		if (!unlink(p)) {
			if (removed)
				(*removed)++;
		} else if (errno != ENOENT) {
			log_err("cannot remove %s: %s", p, strerror(errno));
			left++;
		}
	}
	return left;
}

/* An object pinned under dir, by name; a negative errno if it is not there. */
int ml_pinned_fd(const char *dir, const char *name)
{
	char p[PATH_MAX];

	ml_pin_path(p, sizeof(p), dir, name);
	return bpf_obj_get(p);
}

/* Pin every map of obj (but .rodata and friends) and every program it
 * loaded under dir, by name. */
int ml_pin_object(struct bpf_object *obj, const char *dir)
{
	struct bpf_program *prog;
	struct bpf_map *map;
	char p[PATH_MAX];

	bpf_object__for_each_map(map, obj) {
		const char *name = bpf_map__name(map);

		if (strchr(name, '.'))	/* .rodata and friends */
			continue;
		ml_pin_path(p, sizeof(p), dir, name);
		if (bpf_map__pin(map, p))
			return -errno;
	}
	bpf_object__for_each_program(prog, obj) {
		if (bpf_program__fd(prog) < 0)	/* not loaded (user engine) */
			continue;
		ml_pin_path(p, sizeof(p), dir, bpf_program__name(prog));
		if (bpf_program__pin(prog, p))
			return -errno;
	}
	return 0;
}
