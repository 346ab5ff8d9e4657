// SPDX-License-Identifier: GPL-2.0
/*
 * config.c - settings from /etc/mailless.conf (or -c FILE) and the command
 * line: the same keys in both, flags win, every bad line is an error that
 * names the file and line.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "parse.h"

const char *ml_dialect_name(unsigned int d)
{
	return d == ML_DIALECT_RFC7504 ? "rfc7504" : "rcpt";
}

const char *ml_engine_name(enum ml_engine e)
{
	switch (e) {
	case ML_ENGINE_KERNEL: return "kernel";
	case ML_ENGINE_USER: return "user";
	default: return "auto";
	}
}

/* The host's fully qualified name, or its plain name if DNS has none.
 * Resolved once per process: getaddrinfo may block on DNS, and a reload
 * (SIGHUP, from the event loop) must not, so it reuses the name found at
 * start. */
static void default_hostname(char *buf, size_t len)
{
	static char cached[ML_HOST_MAX];
	struct addrinfo hints = { .ai_flags = AI_CANONNAME }, *ai = NULL;
	char name[ML_HOST_MAX] = "localhost";

	if (!cached[0]) {
		gethostname(name, sizeof(name) - 1);
		name[sizeof(name) - 1] = 0;
		if (!strchr(name, '.') && getaddrinfo(name, NULL, &hints, &ai) == 0 &&
		    ai && ai->ai_canonname && strlen(ai->ai_canonname) < sizeof(cached))
			snprintf(name, sizeof(name), "%s", ai->ai_canonname);
		if (ai)
			freeaddrinfo(ai);
		snprintf(cached, sizeof(cached), "%s", name[0] ? name : "localhost");
	}
	snprintf(buf, len, "%s", cached);
}

static int parse_listen(struct ml_listen *l, const char *s, int need_port,
			char *err, size_t errlen)
{
	char host[64];
	const char *port = NULL;
	unsigned long p = 25;
	char *end;
	struct sockaddr_in *in = (struct sockaddr_in *)&l->ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&l->ss;

	memset(l, 0, sizeof(*l));
	if (strlen(s) >= sizeof(host))
		goto bad;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || (rb[1] && rb[1] != ':'))
			goto bad;
		snprintf(host, sizeof(host), "%.*s", (int)(rb - s - 1), s + 1);
		if (rb[1] == ':')
			port = rb + 2;
	} else {
		const char *colon = strrchr(s, ':');

		if (colon && strchr(s, ':') != colon) {	/* bare IPv6 */
			snprintf(host, sizeof(host), "%s", s);
		} else if (colon) {
			snprintf(host, sizeof(host), "%.*s", (int)(colon - s), s);
			port = colon + 1;
		} else {
			snprintf(host, sizeof(host), "%s", s);
		}
	}
	if (!port && need_port) {
		snprintf(err, errlen, "'%s' needs a port (ADDR:PORT, e.g. 127.0.0.1:9525)", s);
		return -EINVAL;
	}
	if (port) {
		errno = 0;
		p = strtoul(port, &end, 10);
		if (errno || *end || !isdigit((unsigned char)*port) || p == 0 || p > 65535) {
			snprintf(err, errlen, "bad port in listen address '%s' (want 1-65535)", s);
			return -EINVAL;
		}
	}
	if (!host[0] || !strcmp(host, "*")) {
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_any;
		in6->sin6_port = htons(p);
		l->len = sizeof(*in6);
	} else if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(p);
		l->len = sizeof(*in);
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(p);
		l->len = sizeof(*in6);
	} else {
		goto bad;
	}
	snprintf(l->text, sizeof(l->text), "%s", s);
	return 0;
bad:
	snprintf(err, errlen, "bad listen address '%s' (want ADDR[:PORT], "
		 "e.g. 192.0.2.1:25 or [2001:db8::1]:25)", s);
	return -EINVAL;
}

/* Letters, digits, '-', '.', and an address literal's brackets and colons:
 * the name goes verbatim into every reply line. */
static int valid_hostname(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("-._[]:", *s))
			return 0;
	return 1;
}

void ml_opts_defaults(struct ml_opts *o)
{
	char err[16];

	memset(o, 0, sizeof(*o));
	parse_listen(&o->listen[0], "[::]:25", 0, err, sizeof(err));
	o->metrics_interval = 15;
	o->log_rate = 100;
	o->log_level = ML_INFO;
	o->nlisten = 1;
	default_hostname(o->hostname, sizeof(o->hostname));
	o->dialect = ML_DIALECT_RCPT;
	o->timeout = 300;
	o->max_session_time = 600;
	o->max_sessions = 10000;
	o->max_sessions_per_source = 50;	/* Postfix's smtpd_client_connection_count_limit */
	o->engine = ML_ENGINE_AUTO;
	snprintf(o->pin_dir, sizeof(o->pin_dir), "%s", ML_DEFAULT_PIN);
	ml_guard_opts_defaults(&o->guard);
}

int ml_opts_set(struct ml_opts *o, const char *key, const char *val,
		char *err, size_t errlen)
{
	if (!strcmp(key, "listen")) {
		/* "listen" from the command line replaces; see ml_opts_load. */
		if (o->nlisten >= ML_LISTEN_MAX) {
			snprintf(err, errlen, "too many listen addresses (at most %d)",
				 ML_LISTEN_MAX);
			return -EINVAL;
		}
		if (parse_listen(&o->listen[o->nlisten], val, 0, err, errlen))
			return -EINVAL;
		o->nlisten++;
	} else if (!strcmp(key, "metrics-listen")) {
		return parse_listen(&o->metrics_listen, val, 1, err, errlen);
	} else if (!strcmp(key, "metrics-file")) {
		if (val[0] != '/' || strlen(val) >= sizeof(o->metrics_file) - 32) {
			snprintf(err, errlen, "bad metrics-file '%s' (want an absolute path)", val);
			return -EINVAL;
		}
		snprintf(o->metrics_file, sizeof(o->metrics_file), "%s", val);
	} else if (!strcmp(key, "metrics-interval")) {
		return ml_parse_uint(key, val, 1, 3600, &o->metrics_interval, err, errlen);
	} else if (!strcmp(key, "log-rate")) {
		return ml_parse_uint(key, val, 0, 1000000, &o->log_rate, err, errlen);
	} else if (!strcmp(key, "log")) {
		static const char *const l[] = { "stderr", "syslog" };

		return ml_parse_choice(key, val, l, 2, &o->log_syslog, err, errlen);
	} else if (!strcmp(key, "log-level")) {
		static const char *const lv[] = { [ML_ERROR] = "error", [ML_WARN] = "warn",
						  [ML_INFO] = "info", [ML_DEBUG] = "debug" };

		return ml_parse_choice(key, val, lv, 4, &o->log_level, err, errlen);
	} else if (!strcmp(key, "hostname")) {
		if (!valid_hostname(val)) {
			snprintf(err, errlen, "bad hostname '%s' (1-253 letters, digits, "
				 "'-', '.', or an address literal)", val);
			return -EINVAL;
		}
		snprintf(o->hostname, sizeof(o->hostname), "%s", val);
	} else if (!strcmp(key, "dialect")) {
		static const char *const d[] = { [ML_DIALECT_RCPT] = "rcpt",
						 [ML_DIALECT_RFC7504] = "rfc7504" };
		int v;

		if (ml_parse_choice(key, val, d, 2, &v, err, errlen))
			return -EINVAL;
		o->dialect = v;
	} else if (!strcmp(key, "timeout")) {
		return ml_parse_uint(key, val, 1, 86400, &o->timeout, err, errlen);
	} else if (!strcmp(key, "max-session-time")) {
		return ml_parse_uint(key, val, 1, 86400, &o->max_session_time, err, errlen);
	} else if (!strcmp(key, "max-sessions")) {
		return ml_parse_uint(key, val, 1, 1000000, &o->max_sessions, err, errlen);
	} else if (!strcmp(key, "max-sessions-per-source")) {
		return ml_parse_uint(key, val, 0, 1000000, &o->max_sessions_per_source,
				     err, errlen);
	} else if (!strcmp(key, "engine")) {
		static const char *const e[] = { [ML_ENGINE_AUTO] = "auto",
						 [ML_ENGINE_KERNEL] = "kernel",
						 [ML_ENGINE_USER] = "user" };
		int v;

		if (ml_parse_choice(key, val, e, 3, &v, err, errlen))
			return -EINVAL;
		o->engine = v;
	} else if (!strcmp(key, "pin-dir")) {
		if (val[0] != '/' || strlen(val) >= sizeof(o->pin_dir) - 32) {
			snprintf(err, errlen, "bad pin-dir '%s' (want an absolute path on bpffs)", val);
			return -EINVAL;
		}
		snprintf(o->pin_dir, sizeof(o->pin_dir), "%s", val);
	} else {
		int r = ml_guard_opts_set(&o->guard, key, val, err, errlen);

		if (r != -ENOENT)
			return r;
		snprintf(err, errlen, "unknown key '%s' (known: listen, hostname, dialect, "
			 "timeout, max-session-time, max-sessions, max-sessions-per-source, engine, "
			 "pin-dir, "
			 "metrics-listen, metrics-file, metrics-interval, log, log-level, "
			 "log-rate, xdp, xdp-mode, syn-rate, syn-burst, syn-prefix4, "
			 "syn-prefix6, allow, deny, allow-file, deny-file)", key);
		return -EINVAL;
	}
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

static int read_file(struct ml_opts *o)
{
	char line[1024], err[256];
	int lineno = 0, file_listens = 0, ret = 0;
	FILE *f;

	if (!o->conf_path[0])
		return 0;
	f = fopen(o->conf_path, "re");
	if (!f) {
		if (errno == ENOENT && !o->conf_required)
			return 0;
		ret = -errno;
		log_err("cannot read config %s: %s", o->conf_path, strerror(errno));
		return ret;
	}
	while (fgets(line, sizeof(line), f)) {
		char *k, *v, *eq, *hash;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			log_err("%s:%d: line too long (at most %zu characters)",
			    o->conf_path, lineno, sizeof(line) - 2);
			ret = -EINVAL;
			break;
		}
		hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		k = trim(line);
		if (!*k)
			continue;
		eq = strchr(k, '=');
		if (!eq) {
			log_err("%s:%d: expected 'key = value', got '%s'", o->conf_path, lineno, k);
			ret = -EINVAL;
			break;
		}
		*eq = 0;
		v = trim(eq + 1);
		k = trim(k);
		/* The file's listen lines replace the default address. */
		if (!strcmp(k, "listen") && file_listens++ == 0)
			o->nlisten = 0;
		if (ml_opts_set(o, k, v, err, sizeof(err))) {
			log_err("%s:%d: %s", o->conf_path, lineno, err);
			ret = -EINVAL;
			break;
		}
	}
	fclose(f);
	return ret;
}

int ml_opts_load(struct ml_opts *o, const struct ml_cli_set *cli, int ncli)
{
	char err[256];
	int i, cli_listens = 0, ret;

	ret = read_file(o);
	if (ret)
		return ret;
	for (i = 0; i < ncli; i++) {
		if (!strcmp(cli[i].key, "listen") && cli_listens++ == 0)
			o->nlisten = 0;
		if (ml_opts_set(o, cli[i].key, cli[i].val, err, sizeof(err))) {
			log_err("%s", err);
			return -EINVAL;
		}
	}
	return 0;
}
