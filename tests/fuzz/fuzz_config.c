// SPDX-License-Identifier: GPL-2.0
/*
 * fuzz_config.c - the settings parser (user/config.c and the option table
 * in user/options.c) two ways, on the same input:
 *   1. as a config file: written to a memfd, read by ml_opts_load() through
 *      /proc/self/fd/N, exactly as `-c FILE` is;
 *   2. as KEY NUL VALUE NUL ... pairs given to ml_opts_set(), as the command
 *      line's --set KEY=VALUE and the flags are.
 * After each: every string field is NUL-terminated inside its array, every
 * number is within the range its key allows, a number was accepted only if
 * written as plain decimal digits, a hostname only of the characters
 * README allows; on error, the message is NUL-terminated and not empty.
 * A loaded file with engine xdp names at least one xdp interface.
 * And the replies ml_render() makes of the settings: see check_replies().
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "proto.h"
#include "replies.h"

#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "fuzz_config: " __VA_ARGS__); \
	fprintf(stderr, " (%s:%d: %s)\n", __FILE__, __LINE__, #c); abort(); } } while (0)

static struct ml_opts defaults, o;
static int memfd = -1;

static void terminated(const char *s, size_t size, const char *what)
{
	CHECK(memchr(s, 0, size) != NULL, "%s not NUL-terminated", what);
}

static void check_opts(const struct ml_opts *x)
{
	const char *h;
	int i;

	CHECK(x->nlisten >= 0 && x->nlisten <= ML_LISTEN_MAX, "nlisten %d", x->nlisten);
	for (i = 0; i < x->nlisten; i++) {
		terminated(x->listen[i].text, sizeof(x->listen[i].text), "listen text");
		CHECK(x->listen[i].len > 0 && x->listen[i].len <= sizeof(x->listen[i].ss),
		      "listen len %u", (unsigned)x->listen[i].len);
	}
	terminated(x->hostname, sizeof(x->hostname), "hostname");
	CHECK(strlen(x->hostname) >= 1 && strlen(x->hostname) <= 253, "hostname length");
	if (strcmp(x->hostname, defaults.hostname))
		for (h = x->hostname; *h; h++)
			CHECK(isalnum((unsigned char)*h) || strchr("-._[]:", *h),
			      "hostname char 0x%02x", (unsigned char)*h);
	CHECK(x->dialect <= ML_DIALECT_RFC7504, "dialect %u", x->dialect);
	CHECK(x->timeout >= 1 && x->timeout <= 86400, "timeout %u", x->timeout);
	CHECK(x->max_session_time >= 1 && x->max_session_time <= 86400, "max-session-time");
	CHECK(x->max_sessions >= 1 && x->max_sessions <= 1000000, "max-sessions");
	CHECK(x->metrics_interval >= 1 && x->metrics_interval <= 3600, "metrics-interval");
	CHECK(x->log_rate <= 1000000, "log-rate");
	CHECK(x->log_syslog == 0 || x->log_syslog == 1, "log");
	CHECK(x->log_level >= ML_ERROR && x->log_level <= ML_DEBUG, "log-level");
	CHECK(x->engine <= ML_ENGINE_XDP, "engine %u", x->engine);
	terminated(x->pin_dir, sizeof(x->pin_dir), "pin-dir");
	CHECK(x->pin_dir[0] == '/', "pin-dir not absolute");
	terminated(x->metrics_file, sizeof(x->metrics_file), "metrics-file");
	CHECK(!x->metrics_file[0] || x->metrics_file[0] == '/', "metrics-file not absolute");
	CHECK(x->guard.niface >= 0 && x->guard.niface <= GD_IFACE_MAX, "niface");
	for (i = 0; i < x->guard.niface; i++) {
		terminated(x->guard.iface[i], GD_IFNAME_MAX, "iface");
		CHECK(x->guard.iface[i][0] && !strchr(x->guard.iface[i], '/'), "iface name");
	}
	CHECK(x->guard.mode <= ML_XDP_SKB, "xdp-mode");
	CHECK(x->guard.syn_rate <= 10000000, "syn-rate");
	CHECK(x->guard.syn_burst >= 1 && x->guard.syn_burst <= 10000000, "syn-burst");
	CHECK(x->guard.prefix4 >= 1 && x->guard.prefix4 <= 32, "syn-prefix4");
	CHECK(x->guard.prefix6 >= 1 && x->guard.prefix6 <= 128, "syn-prefix6");
	terminated(x->guard.allow, sizeof(x->guard.allow), "allow");
	terminated(x->guard.deny, sizeof(x->guard.deny), "deny");
	terminated(x->guard.allow_file, sizeof(x->guard.allow_file), "allow-file");
	terminated(x->guard.deny_file, sizeof(x->guard.deny_file), "deny-file");
}

/* In the rcpt dialect every reply has an RFC 3463 code after its reply code,
 * but the greeting, HELO, EHLO and BUSY (README's table); rfc7504 none. */
static int has_esc(unsigned int dialect, unsigned int op)
{
	return dialect == ML_DIALECT_RCPT && op != ML_OP_GREET && op != ML_OP_HELO &&
	       op != ML_OP_EHLO && op != ML_OP_BUSY;
}

/*
 * ml_render() of these settings, every reply: whole (never cut at
 * ML_REPLY_MAX, which a 255-octet default name reaches nearest), CRLF lines
 * that each start with the code the counters count the reply under
 * (ml_op_code), "NNN-" on all but the last line and "NNN " on that; on the
 * first line, the enhanced code (class = the code's first digit) where
 * has_esc(), then the host name as the first word.
 */
static void check_replies(const struct ml_opts *x)
{
	static struct ml_config cfg;
	size_t hl = strlen(x->hostname);
	unsigned int op;

	ml_render(&cfg, x);
	CHECK(cfg.dialect == x->dialect && !strcmp(cfg.hostname, x->hostname), "rendered settings");
	for (op = ML_OP_GREET; op < ML_OP__MAX; op++) {
		const struct ml_reply *r = &cfg.replies[op];
		const char *t = r->text, *end = t + r->len, *line = t, *p;
		char code[8];
		int i;

		snprintf(code, sizeof(code), "%u", ml_op_code(x->dialect, op));
		CHECK(r->len >= 7 && r->len < ML_REPLY_MAX && strlen(t) == r->len,
		      "op %u: length %u, text of %zu", op, r->len, strnlen(t, ML_REPLY_MAX));
		while (line < end) {
			const char *nl = memchr(line, '\n', end - line);

			CHECK(nl && nl - line >= 5 && nl[-1] == '\r', "op %u: not a CRLF line", op);
			CHECK(!memcmp(line, code, 3) && line[3] == (nl + 1 == end ? ' ' : '-'),
			      "op %u: line \"%.*s\", code %s", op, (int)(nl - line), line, code);
			CHECK(!memchr(line, '\r', nl - 1 - line), "op %u: CR inside a line", op);
			line = nl + 1;
		}
		p = t + 4;
		if (has_esc(x->dialect, op)) {
			CHECK(p[0] == code[0] && p[1] == '.', "op %u: enhanced code class", op);
			for (p += 2, i = 0; i < 2; i++, p++) {
				const char *d = p;

				while (*p >= '0' && *p <= '9')
					p++;
				CHECK(p > d && p - d <= 3 && *p == (i ? ' ' : '.'),
				      "op %u: enhanced code \"%.12s\"", op, t + 4);
			}
		}
		CHECK(!strncmp(p, x->hostname, hl) && (p[hl] == ' ' || p[hl] == '\r'),
		      "op %u: \"%.40s\" does not name the host first", op, t);
	}
}

/* Keys whose value is a whole number: accepted only as plain digits. */
static int numeric_key(const char *k)
{
	static const char *const keys[] = { "timeout", "max-session-time", "max-sessions",
		"metrics-interval", "log-rate", "syn-rate", "syn-burst", "syn-prefix4",
		"syn-prefix6" };
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strcmp(k, keys[i]))
			return 1;
	return 0;
}

static int all_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return 0;
	return 1;
}

/* A listen value's port, if it has one, is plain digits too. */
static int port_digits(const char *v)
{
	const char *rb = strchr(v, ']'), *c;

	if (v[0] == '[')
		c = rb && rb[1] == ':' ? rb + 1 : NULL;
	else
		c = strchr(v, ':') && strchr(v, ':') == strrchr(v, ':') ? strchr(v, ':') : NULL;
	return !c || all_digits(c + 1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	ml_log_level = -1;	/* the errors are expected: keep them quiet */
	ml_opts_defaults(&defaults);	/* once: it asks the resolver */
	memfd = memfd_create("fuzz_config", MFD_CLOEXEC);
	if (memfd < 0) {
		perror("memfd_create");
		exit(1);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256], key[1100], val[5000];
	size_t i = 0;
	int r;

	/* 1. the input as a config file */
	memcpy(&o, &defaults, sizeof(o));
	if (ftruncate(memfd, 0) || pwrite(memfd, data, size, 0) != (ssize_t)size)
		abort();
	snprintf(o.conf_path, sizeof(o.conf_path), "/proc/self/fd/%d", memfd);
	o.conf_required = 1;
	r = ml_opts_load(&o, NULL, 0);
	CHECK(r == 0 || r == -EINVAL, "ml_opts_load returned %d", r);
	CHECK(r || o.engine != ML_ENGINE_XDP || o.guard.niface >= 1,
	      "engine xdp loaded with no xdp interface");
	check_opts(&o);
	check_replies(&o);

	/* 2. the input as KEY\0VALUE\0 pairs, as the command line gives them */
	memcpy(&o, &defaults, sizeof(o));
	while (i < size) {
		size_t kl = strnlen((const char *)data + i, size - i), vl;

		if (kl >= sizeof(key) || i + kl + 1 >= size)
			break;
		memcpy(key, data + i, kl);
		key[kl] = 0;
		i += kl + 1;
		vl = strnlen((const char *)data + i, size - i);
		if (vl >= sizeof(val))
			break;
		memcpy(val, data + i, vl);
		val[vl] = 0;
		i += vl + 1;
		memset(err, 0x7f, sizeof(err));
		r = ml_opts_set(&o, key, val, err, sizeof(err));
		if (r) {
			CHECK(r == -EINVAL, "ml_opts_set returned %d", r);
			terminated(err, sizeof(err), "error message");
			CHECK(err[0], "empty error message for key '%s'", key);
		} else {
			CHECK(!numeric_key(key) || all_digits(val),
			      "%s accepted '%s', which is not plain digits", key, val);
			CHECK(strcmp(key, "listen") && strcmp(key, "metrics-listen") ||
			      port_digits(val), "%s accepted port in '%s'", key, val);
		}
		check_opts(&o);
	}
	check_replies(&o);
	return 0;
}
