/* SPDX-License-Identifier: GPL-2.0 */
/* privs.h - least privilege once serving (user/privs.c, user/sandbox.c). */
#ifndef ML_PRIVS_H
#define ML_PRIVS_H

#include <sys/types.h>

#define ML_DEFAULT_USER	"mailless"

/* Who `run` serves as after the drop; resolved before anything loads. */
struct ml_privs {
	int drop;			/* 0: stay root with everything (said why) */
	uid_t uid;
	gid_t gid;
	char user[64];
};

/* What the serving loop still does with bpf(): nothing (user engine without
 * maps), map operations on open fds, or also new maps (the guard's reload
 * builds LPM tries). */
enum ml_bpf_use { ML_BPF_NONE, ML_BPF_FDS, ML_BPF_CREATE };

/* Look user up (getpwnam): "root" keeps every privilege; the default user
 * missing is a warning (serve as root), any other name missing an error
 * (-ENOENT, said). */
int ml_privs_resolve(const char *user, struct ml_privs *p);
/* Become p->uid with only the capabilities bpf use needs on this kernel,
 * then no_new_privs and the seccomp allow-list. Any failure is fatal for
 * the caller (negative errno, said): a half-dropped server must not serve. */
int ml_privs_drop(const struct ml_privs *p, enum ml_bpf_use bpf);
/* Set once ml_privs_drop changed the user: what is left pinned or attached
 * is `mailless unload`'s (the unit's ExecStopPost) to remove. */
extern int ml_privs_dropped;

/* sandbox.c: no_new_privs and the allow-list (libseccomp); a call outside
 * it is logged by name and the process exits with status 70. */
int ml_sandbox_enter(void);
/* Test builds (ML_TEST_HOOKS) only: make a call outside the allow-list when
 * MAILLESS_TEST_FORBIDDEN is set (called on SIGHUP). */
void ml_sandbox_test_hook(void);

#endif
