// SPDX-License-Identifier: GPL-2.0
/* log.c - the one logging module: levels, -v, and libbpf's output. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>

#include "log.h"

int ml_log_level = ML_INFO;
int ml_log_soften;
static int libbpf_quiet;

static const char *const prefix[] = {
	[ML_ERROR] = "Error: ",
	[ML_WARN] = "Warning: ",
	[ML_INFO] = "",
	[ML_DEBUG] = "debug: ",
};

void ml_log(enum ml_level lvl, const char *fmt, ...)
{
	va_list ap;

	if (ml_log_soften && lvl == ML_ERROR)
		lvl = ML_WARN;
	if ((int)lvl > ml_log_level)
		return;
	fprintf(stderr, "mailless: %s", prefix[lvl]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static struct ml_bpf_reject last_reject;

/*
 * Keep what a user needs from libbpf's report of a program the kernel
 * refused, quiet or not: libbpf (1.1 to 1.5) says "prog 'NAME': BPF program
 * load failed: ..." and then prints the verifier's log in one message,
 * "prog 'NAME': -- BEGIN PROG LOAD LOG --\n...-- END PROG LOAD LOG --"
 * (both after libbpf's "libbpf: " prefix). The log's last line that is not
 * a statistic is the verifier's complaint.
 */
static void note_reject(const char *msg)
{
	const char *p = strstr(msg, "prog '"), *q, *begin, *end, *best = NULL;
	size_t n = 0;

	if (!p)
		return;
	p += strlen("prog '");
	q = strstr(p, "': BPF program load failed");
	if (q) {
		snprintf(last_reject.prog, sizeof(last_reject.prog), "%.*s", (int)(q - p), p);
		last_reject.line[0] = 0;
		return;
	}
	begin = strstr(msg, "-- BEGIN PROG LOAD LOG --\n");
	if (!begin)
		return;
	begin += strlen("-- BEGIN PROG LOAD LOG --\n");
	end = strstr(begin, "-- END PROG LOAD LOG --");
	if (!end)
		end = begin + strlen(begin);
	for (p = begin; p < end;) {	/* the last line that is not a statistic */
		const char *nl = memchr(p, '\n', end - p);
		size_t len = (nl ? nl : end) - p;

		if (len && strncmp(p, "processed ", 10) && strncmp(p, "verification time", 17) &&
		    strncmp(p, "stack depth", 11)) {
			best = p;
			n = len;
		}
		p = nl ? nl + 1 : end;
	}
	if (best)
		snprintf(last_reject.line, sizeof(last_reject.line), "%.*s", (int)n, best);
}

const struct ml_bpf_reject *ml_libbpf_reject(void)
{
	return last_reject.prog[0] ? &last_reject : NULL;
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char *msg = NULL;
	va_list aq;

	if (level == LIBBPF_WARN) {
		va_copy(aq, ap);
		if (vasprintf(&msg, fmt, aq) >= 0) {	/* else msg is undefined */
			note_reject(msg);
			free(msg);
		}
		va_end(aq);
	}
	if (libbpf_quiet)
		return 0;
	if (level == LIBBPF_DEBUG && ml_log_level < ML_DEBUG)
		return 0;
	if (level == LIBBPF_INFO && ml_log_level < ML_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

void ml_log_libbpf(int quiet)
{
	libbpf_quiet = quiet;
	libbpf_set_print(libbpf_print);
}
