// SPDX-License-Identifier: GPL-2.0
/* log.c - the one logging module: levels, -v, and libbpf's output. */
#include <stdarg.h>
#include <stdio.h>
#include <bpf/libbpf.h>

#include "log.h"

int ml_log_level = ML_INFO;
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

	if ((int)lvl > ml_log_level)
		return;
	fprintf(stderr, "mailless: %s", prefix[lvl]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
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
