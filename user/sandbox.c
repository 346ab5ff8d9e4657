// SPDX-License-Identifier: GPL-2.0
/*
 * sandbox.c - no_new_privs and a seccomp allow-list (libseccomp) of the
 * system calls the serving loop makes, entered last in ml_privs_drop().
 *
 * The list is what the loop was seen to make (strace -f of the test suite's
 * sessions, reloads, scrapes and shutdowns, both engines and the guard), by
 * what asks for it. A call outside it is not run: the kernel sends SIGSYS
 * (SCMP_ACT_TRAP), the handler writes one line naming the call to stderr
 * (the journal, under systemd) and exits with status 70, so that systemd's
 * Restart=on-failure brings mailless back and the log says why. A silent
 * EPERM would leave a server that misbehaves without saying so; a kill
 * without a word would look like a crash.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <seccomp.h>

#include "log.h"
#include "privs.h"

#define SANDBOX_EXIT	70	/* EX_SOFTWARE */

static const char *const allowed[] = {
	/* the event loop, signals (signalfd), timers */
	"epoll_wait", "epoll_pwait", "epoll_ctl", "read", "write", "writev", "close",
	"clock_gettime", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
	"rt_sigprocmask", "rt_sigreturn", "rt_sigaction", "restart_syscall",
	/* sessions and the metrics endpoint */
	"accept4", "recvfrom", "recvmsg", "sendto", "sendmsg", "shutdown",
	"getsockopt", "setsockopt", "getsockname", "getpeername", "ioctl",
	/* the maps and the ring buffer (bpf(); the ring is mmap'd at start) */
	"bpf",
	/* SIGHUP: the settings file and prefix files; --metrics-file */
	"openat", "newfstatat", "fstat", "statx", "lseek", "fcntl", "rename", "unlink",
	"fchmod", "getdents64",
	/* memory (malloc) */
	"brk", "mmap", "munmap", "mremap", "madvise", "mprotect", "futex",
	/* syslog and sd_notify: a datagram socket each */
	"socket", "connect",
	/* identity, for log lines and sd_notify's credentials */
	"getpid", "gettid", "getuid", "geteuid", "getgid", "getegid",
	/* exit, and the handler's own abort path */
	"exit", "exit_group", "tgkill",
};

/* Names by number, looked up before the filter goes in: the handler may
 * not allocate (the trapped call may be malloc's own). */
#define NAMES	512
static char *names[NAMES];

static void put(const char *s)
{
	ssize_t n = write(STDERR_FILENO, s, strlen(s));

	(void)n;
}

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	char num[16], *p = num + sizeof(num);
	int nr = si->si_syscall;
	unsigned int u = nr < 0 ? 0 : (unsigned int)nr;

	(void)sig, (void)uc;
	*--p = 0;
	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) && p > num);
	put("mailless: error: seccomp: system call ");
	put(nr >= 0 && nr < NAMES && names[nr] ? names[nr] : "?");
	put(" (");
	put(p);
	put(") is not in the serving loop's allow-list (user/sandbox.c): exiting with "
	    "status 70. This is a bug in mailless: please report this line; meanwhile "
	    "--user root serves without the sandbox\n");
	_exit(SANDBOX_EXIT);
}

int ml_sandbox_enter(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
	scmp_filter_ctx ctx;
	size_t i;
	int e, n;

	for (n = 0; n < NAMES; n++)
		if (!names[n])
			names[n] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, n);
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) {
		e = errno;
		log_err("sandbox: %s: %s", "sigaction/no_new_privs", strerror(e));
		return -e;
	}
	ctx = seccomp_init(SCMP_ACT_TRAP);
	if (!ctx) {
		log_err("sandbox: seccomp_init failed (out of memory?)");
		return -ENOMEM;
	}
	for (i = 0; i < sizeof(allowed) / sizeof(*allowed); i++) {
		int nr = seccomp_syscall_resolve_name(allowed[i]);

		if (nr == __NR_SCMP_ERROR)	/* not on this architecture */
			continue;
		if ((e = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0))) {
			log_err("sandbox: allowing %s: %s", allowed[i], strerror(-e));
			seccomp_release(ctx);
			return e;
		}
	}
	e = seccomp_load(ctx);
	seccomp_release(ctx);
	if (e) {
		log_err("sandbox: loading the seccomp filter: %s (the kernel needs "
			"CONFIG_SECCOMP_FILTER; under systemd, SystemCallFilter must allow "
			"seccomp)", strerror(-e));
		return e;
	}
	return 0;
}

#ifdef ML_TEST_HOOKS
void ml_sandbox_test_hook(void)
{
	if (getenv("MAILLESS_TEST_FORBIDDEN"))
		syscall(SYS_sysinfo, NULL);
}
#else
void ml_sandbox_test_hook(void)
{
}
#endif
