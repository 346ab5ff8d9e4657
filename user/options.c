// SPDX-License-Identifier: GPL-2.0
/*
 * options.c - every setting of `mailless run`, once: its key, flag, value,
 * parser, default, when it takes effect, and its help (see options.h for
 * who reads the table). Adding a setting is adding a row here and a field
 * to struct ml_opts; nothing else lists the keys.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "options.h"
#include "parse.h"
#include "prefix.h"
#include "privs.h"
#include "roff.h"

#define STR_(x)		#x
#define STR(x)		STR_(x)
#define FIELD(m)	.off = offsetof(struct ml_opts, m), \
			.size = sizeof(((struct ml_opts *)0)->m)
/* first..last, for a setting stored as an array and its count */
#define SPAN(first, last) .off = offsetof(struct ml_opts, first), \
			.size = offsetof(struct ml_opts, last) + \
				sizeof(((struct ml_opts *)0)->last) - offsetof(struct ml_opts, first)
#define CHOICES(a)	.names = a, .nnames = sizeof(a) / sizeof(*(a))
#define AT(o, op)	((void *)((char *)(o) + (op)->off))

/* ---- parsers ------------------------------------------------------------ */

static int set_uint(struct ml_opts *o, const struct ml_option *op, const char *val,
		    char *err, size_t errlen)
{
	return ml_parse_uint(op->key, val, op->lo, op->hi, AT(o, op), err, errlen);
}

static int set_choice(struct ml_opts *o, const struct ml_option *op, const char *val,
		      char *err, size_t errlen)
{
	return ml_parse_choice(op->key, val, op->names, op->nnames, AT(o, op), err, errlen);
}

/* An absolute path, with room for the names mailless appends to it. */
static int set_path(struct ml_opts *o, const struct ml_option *op, const char *val,
		    char *err, size_t errlen)
{
	if (val[0] != '/' || strlen(val) >= op->size - 32) {
		snprintf(err, errlen, "bad %s '%s' (want an absolute path, shorter than %zu)",
			 op->key, val, op->size - 32);
		return -EINVAL;
	}
	snprintf(AT(o, op), op->size, "%s", val);
	return 0;
}

/* A user name as useradd takes one (the lookup is at start: privs.c). */
static int set_user(struct ml_opts *o, const struct ml_option *op, const char *val,
		    char *err, size_t errlen)
{
	size_t i, n = strlen(val);

	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)val[i]) && !strchr("._-", val[i]))
			break;
	if (!n || i < n || n >= op->size || val[0] == '-') {
		snprintf(err, errlen, "bad %s '%s' (want a user name: letters, digits, "
			 "'.', '_', '-')", op->key, val);
		return -EINVAL;
	}
	snprintf(AT(o, op), op->size, "%s", val);
	return 0;
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

static int set_listen(struct ml_opts *o, const struct ml_option *op, const char *val,
		      char *err, size_t errlen)
{
	(void)op;
	if (o->nlisten >= ML_LISTEN_MAX) {
		snprintf(err, errlen, "too many listen addresses (at most %d)", ML_LISTEN_MAX);
		return -EINVAL;
	}
	if (parse_listen(&o->listen[o->nlisten], val, 0, err, errlen))
		return -EINVAL;
	o->nlisten++;
	return 0;
}

static int set_metrics_listen(struct ml_opts *o, const struct ml_option *op,
			      const char *val, char *err, size_t errlen)
{
	(void)op;
	return parse_listen(&o->metrics_listen, val, 1, err, errlen);
}

/* Letters, digits, '-', '.', and an address literal's brackets and colons:
 * the name goes verbatim into every reply line. */
static int set_hostname(struct ml_opts *o, const struct ml_option *op, const char *val,
			char *err, size_t errlen)
{
	size_t n = strlen(val);
	const char *s;

	(void)op;
	for (s = val; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("-._[]:", *s))
			break;
	if (n == 0 || n > 253 || *s) {
		snprintf(err, errlen, "bad hostname '%s' (1-253 letters, digits, "
			 "'-', '.', or an address literal)", val);
		return -EINVAL;
	}
	snprintf(o->hostname, sizeof(o->hostname), "%s", val);
	return 0;
}

/* Interfaces for the guard, commas or spaces; repeats are ignored. */
static int set_ifaces(struct ml_opts *o, const struct ml_option *op, const char *val,
		      char *err, size_t errlen)
{
	struct ml_guard_opts *g = &o->guard;
	char tmp[GD_IFACE_MAX * GD_IFNAME_MAX * 2], *tok, *save = NULL;
	int i;

	snprintf(tmp, sizeof(tmp), "%s", val);
	for (tok = strtok_r(tmp, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (strlen(tok) >= GD_IFNAME_MAX || strchr(tok, '/')) {
			snprintf(err, errlen, "bad interface name '%s' for %s", tok, op->key);
			return -EINVAL;
		}
		for (i = 0; i < g->niface && strcmp(g->iface[i], tok); i++)
			;
		if (i < g->niface)
			continue;
		if (g->niface >= GD_IFACE_MAX) {
			snprintf(err, errlen, "%s: at most %d interfaces", op->key, GD_IFACE_MAX);
			return -EINVAL;
		}
		snprintf(g->iface[g->niface++], GD_IFNAME_MAX, "%s", tok);
	}
	if (!g->niface) {
		snprintf(err, errlen, "%s wants IFACE[,IFACE...]", op->key);
		return -EINVAL;
	}
	return 0;
}

static int set_prefixes(struct ml_opts *o, const struct ml_option *op, const char *val,
			char *err, size_t errlen)
{
	return ml_prefixes_add(AT(o, op), op->size, op->key, val, err, errlen);
}

/* ---- the table ------------------------------------------------------------ */

static const char *const dialects[] = {
	[ML_DIALECT_RCPT] = "rcpt", [ML_DIALECT_RFC7504] = "rfc7504",
};
static const char *const engine_names[] = {
	[ML_ENGINE_AUTO] = "auto", [ML_ENGINE_KERNEL] = "kernel", [ML_ENGINE_USER] = "user",
	[ML_ENGINE_XDP] = "xdp",
};
static const char *const log_to[] = { "stderr", "syslog" };
static const char *const levels[] = {
	[ML_ERROR] = "error", [ML_WARN] = "warn", [ML_INFO] = "info", [ML_DEBUG] = "debug",
};
static const char *const xdp_modes[] = {
	[ML_XDP_AUTO] = "auto", [ML_XDP_NATIVE] = "native", [ML_XDP_SKB] = "skb",
};

const struct ml_option ml_options[] = {
	{ "config", 'c', "FILE", ML_CLI, .help =
	  "settings file (default " ML_DEFAULT_CONF " if present): 'key = value' "
	  "lines with the long option names, '#' comments; flags win over it" },
	{ "verbose", 'v', NULL, ML_CLI, .help =
	  "debug output, libbpf's and the verifier's too (log-level debug)" },
	{ "help", 'h', NULL, ML_CLI, .help = "this help" },
	{ "listen", 'l', "ADDR[:PORT]", ML_RESTART, set_listen, SPAN(listen, nlisten),
	  .replaces = 1, .def = "[::]:25", .help =
	  "address to serve, repeatable ([::] is IPv6 and IPv4); e.g. -l 127.0.0.1:25 "
	  "-l [::1]:25" },
	{ "hostname", 'H', "NAME", ML_RELOAD, set_hostname, FIELD(hostname), .help =
	  "name in every reply (default: this host's FQDN, looked up once at start, "
	  "reused on SIGHUP)" },
	{ "dialect", 'd', "rcpt|rfc7504", ML_RELOAD, set_choice, FIELD(dialect),
	  CHOICES(dialects), .def = "rcpt", .help =
	  "rcpt: 220 greeting, 521 at RCPT, which every tested MTA bounces at once; "
	  "rfc7504: 521 greeting (Postfix and OpenSMTPD requeue on it)" },
	{ "timeout", 't', "SECS", ML_RELOAD, set_uint, FIELD(timeout), 1, 86400,
	  .def = "300", .help = "idle timeout, then 421" },
	{ "max-session-time", 0, "SECS", ML_RELOAD, set_uint, FIELD(max_session_time),
	  1, 86400, .def = "600", .help = "session time limit, then 421" },
	{ "max-sessions", 0, "N", ML_RELOAD, set_uint, FIELD(max_sessions), 1, 1000000,
	  .def = "10000", .help = "concurrent sessions; more get 421 (each holds a file "
	  "descriptor: see LimitNOFILE in README)" },
	{ "max-sessions-per-source", 0, "N", ML_RELOAD, set_uint,
	  FIELD(max_sessions_per_source), 0, 1000000, .def = "50", .help =
	  "concurrent sessions from one IPv4 address or IPv6 /64; more get 421 "
	  "(0: no limit)" },
	{ "engine", 0, "kernel|user|xdp|auto", ML_RESTART, set_choice, FIELD(engine),
	  CHOICES(engine_names), .def = "auto", .help =
	  "kernel: eBPF; user: plain epoll; auto: kernel, or user if BPF cannot load; "
	  "xdp: the XDP guard answers on its interfaces (--xdp) with no socket, the user "
	  "engine anywhere else" },
	{ "pin-dir", 0, "DIR", ML_RESTART, set_path, FIELD(pin_dir), .def = ML_DEFAULT_PIN,
	  .help = "bpffs directory for pins, locked by this instance; made with mode 0700 "
	  "if missing; an existing one must be a real directory of root (or this user), "
	  "mode 0700" },
	{ "user", 'u', "NAME", ML_RESTART, set_user, FIELD(user), .def = ML_DEFAULT_USER,
	  .help = "serve as this user once everything is loaded, attached and listening, "
	  "with no capability but CAP_BPF where the kernel needs it, and a seccomp "
	  "allow-list; if there is no user " ML_DEFAULT_USER ", as root (with a warning); "
	  "root: keep every privilege" },
	{ "metrics-listen", 0, "ADDR:PORT", ML_RESTART, set_metrics_listen,
	  FIELD(metrics_listen), .help =
	  "serve GET and HEAD /metrics (Prometheus text format); 16 connections at most, "
	  "each with 2 s to send its request head" },
	{ "metrics-file", 0, "PATH", ML_RESTART, set_path, FIELD(metrics_file), .help =
	  "write the same text there atomically, for node_exporter's textfile collector" },
	{ "metrics-interval", 0, "SECS", ML_RESTART, set_uint, FIELD(metrics_interval),
	  1, 3600, .def = "15", .help = "how often to write the metrics file" },
	{ "log", 0, "stderr|syslog", ML_RESTART, set_choice, FIELD(log_syslog),
	  CHOICES(log_to), .def = "stderr", .help =
	  "where session lines go (syslog: facility mail)" },
	{ "log-level", 0, "LEVEL", ML_RESTART, set_choice, FIELD(log_level),
	  CHOICES(levels), .def = "info", .help =
	  "error, warn, info (one line per session) or debug" },
	{ "log-rate", 0, "N", ML_RESTART, set_uint, FIELD(log_rate), 0, 1000000,
	  .def = "100", .help =
	  "session lines a second at most (0: none); the rest are counted as dropped" },
	{ NULL, .help = "XDP guard (in front of the served ports; see README, \"The XDP "
	  "guard\"):" },
	{ "xdp", 0, "IFACE[,IFACE...]", ML_RESTART, set_ifaces, SPAN(guard.iface, guard.niface),
	  .help = "attach it to these interfaces, through libxdp; refuses (never replaces) "
	  "an interface that has an XDP program libxdp cannot run it beside" },
	{ "xdp-mode", 0, "native|skb|auto", ML_RESTART, set_choice, FIELD(guard.mode),
	  CHOICES(xdp_modes), .def = "auto", .help =
	  "auto: native where the driver supports it, else skb (generic)" },
	{ "syn-rate", 0, "N", ML_RELOAD_GUARD, set_uint, FIELD(guard.syn_rate), 0, 10000000,
	  .def = STR(GD_DEFAULT_RATE), .help = "SYNs a second per source prefix (0: no "
	  "limit); over it SYNs are dropped and counted" },
	{ "syn-burst", 0, "N", ML_RELOAD_GUARD, set_uint, FIELD(guard.syn_burst), 1, 10000000,
	  .def = STR(GD_DEFAULT_BURST), .help = "SYNs at once per source prefix" },
	{ "syn-prefix4", 0, "LEN", ML_RELOAD_GUARD, set_uint, FIELD(guard.prefix4), 1, 32,
	  .def = STR(GD_DEFAULT_PREFIX4), .help = "IPv4 source prefix sharing a bucket" },
	{ "syn-prefix6", 0, "LEN", ML_RELOAD_GUARD, set_uint, FIELD(guard.prefix6), 1, 128,
	  .def = STR(GD_DEFAULT_PREFIX6), .help = "IPv6 source prefix sharing a bucket" },
	{ "allow", 0, "PREFIX[,...]", ML_RELOAD_GUARD, set_prefixes, FIELD(guard.allow),
	  .help = "always pass (wins over deny and the rate limit); repeatable" },
	{ "deny", 0, "PREFIX[,...]", ML_RELOAD_GUARD, set_prefixes, FIELD(guard.deny),
	  .help = "drop every packet to the served ports; repeatable" },
	{ "allow-file", 0, "PATH", ML_RELOAD_GUARD, set_path, FIELD(guard.allow_file),
	  .help = "prefixes to allow, one or more a line, # comments; re-read on SIGHUP" },
	{ "deny-file", 0, "PATH", ML_RELOAD_GUARD, set_path, FIELD(guard.deny_file),
	  .help = "prefixes to deny, as allow-file" },
};
const size_t ml_noptions = sizeof(ml_options) / sizeof(ml_options[0]);
_Static_assert(sizeof(ml_options) / sizeof(ml_options[0]) <= ML_OPTIONS_MAX,
	       "raise ML_OPTIONS_MAX");

const char *ml_dialect_name(unsigned int d)
{
	return d < sizeof(dialects) / sizeof(*dialects) ? dialects[d] : "?";
}

const char *ml_engine_name(enum ml_engine e)
{
	return (unsigned int)e < sizeof(engine_names) / sizeof(*engine_names) ?
	       engine_names[e] : "?";
}

const struct ml_option *ml_option_find(const char *key)
{
	size_t i;

	for (i = 0; i < ml_noptions; i++)
		if (ml_options[i].key && !strcmp(ml_options[i].key, key))
			return &ml_options[i];
	return NULL;
}

const struct ml_option *ml_option_flag(int flag)
{
	size_t i;

	for (i = 0; i < ml_noptions; i++)
		if (ml_options[i].key && ml_options[i].flag == flag)
			return &ml_options[i];
	return NULL;
}

/* ---- applying settings ---------------------------------------------------- */

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

void ml_opts_defaults(struct ml_opts *o)
{
	char err[256];
	size_t i;

	memset(o, 0, sizeof(*o));
	default_hostname(o->hostname, sizeof(o->hostname));
	for (i = 0; i < ml_noptions; i++)
		if (ml_options[i].def && ml_options[i].set(o, &ml_options[i], ml_options[i].def,
							   err, sizeof(err)))
			log_err("built-in default of %s: %s", ml_options[i].key, err);
}

int ml_opts_set(struct ml_opts *o, const char *key, const char *val,
		char *err, size_t errlen)
{
	const struct ml_option *op = ml_option_find(key);
	size_t i, n;

	if (op && op->when != ML_CLI)
		return op->set(o, op, val, err, errlen);
	n = snprintf(err, errlen, "unknown key '%s' (known:", key);
	for (i = 0; i < ml_noptions && n < errlen; i++)
		if (ml_options[i].key && ml_options[i].when != ML_CLI)
			n += snprintf(err + n, errlen - n, " %s", ml_options[i].key);
	if (n < errlen)
		snprintf(err + n, errlen - n, ")");
	return -EINVAL;
}

void ml_opts_apply(struct ml_opts *dst, const struct ml_opts *src, enum ml_when when)
{
	size_t i;

	for (i = 0; i < ml_noptions; i++)
		if (ml_options[i].key && ml_options[i].when == when)
			memcpy(AT(dst, &ml_options[i]), AT(src, &ml_options[i]), ml_options[i].size);
}

int ml_opts_changed(const struct ml_opts *a, const struct ml_opts *b, enum ml_when when,
		    char *buf, size_t len)
{
	size_t i, n = 0;
	int count = 0;

	buf[0] = 0;
	for (i = 0; i < ml_noptions; i++) {
		const struct ml_option *op = &ml_options[i];

		if (!op->key || op->when != when ||
		    !memcmp(AT(a, op), AT(b, op), op->size))
			continue;
		if (n < len)
			n += snprintf(buf + n, len - n, "%s%s", count ? ", " : "", op->key);
		count++;
	}
	return count;
}

/* ---- the settings in effect ---------------------------------------------- */

/* A setting's value as the config file would write it; "" when unset. */
void ml_option_value(const struct ml_opts *o, const struct ml_option *op, char *buf,
		     size_t len)
{
	const void *at = (const char *)o + op->off;
	size_t n = 0;
	int i;

	buf[0] = 0;
	if (op->set == set_uint) {
		snprintf(buf, len, "%u", *(const unsigned int *)at);
	} else if (op->set == set_choice) {
		int v = *(const int *)at;

		snprintf(buf, len, "%s", v >= 0 && v < op->nnames ? op->names[v] : "?");
	} else if (op->set == set_listen) {
		for (i = 0; i < o->nlisten && n < len; i++)
			n += snprintf(buf + n, len - n, "%s%s", i ? " " : "", o->listen[i].text);
	} else if (op->set == set_metrics_listen) {
		snprintf(buf, len, "%s", o->metrics_listen.len ? o->metrics_listen.text : "");
	} else if (op->set == set_ifaces) {
		for (i = 0; i < o->guard.niface && n < len; i++)
			n += snprintf(buf + n, len - n, "%s%s", i ? "," : "", o->guard.iface[i]);
	} else if (op->set) {	/* strings: hostname, paths, prefix lists */
		snprintf(buf, len, "%s", (const char *)at);
	}
}

void ml_options_print(FILE *f, const struct ml_opts *o)
{
	char v[ML_PREFIXES_MAX + 64];
	size_t i;

	for (i = 0; i < ml_noptions; i++) {
		const struct ml_option *op = &ml_options[i];
		char *tok, *save = NULL;

		if (!op->key) {
			if (op->help[0])
				fprintf(f, "# %s\n", op->help);
			continue;
		}
		if (op->when == ML_CLI)
			continue;
		ml_option_value(o, op, v, sizeof(v));
		if (!v[0]) {
			fprintf(f, "#%s =\n", op->key);
		} else if (op->set == set_listen) {	/* one line each: the key repeats */
			for (tok = strtok_r(v, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
				fprintf(f, "%s = %s\n", op->key, tok);
		} else {
			fprintf(f, "%s = %s\n", op->key, v);
		}
	}
}

/* ---- printing the table --------------------------------------------------- */

/* Words of text from column col, lines at most 79 wide, later lines from
 * column indent; each line starts with prefix. */
static void wrap(FILE *f, const char *text, int col, int indent, const char *prefix)
{
	const char *p = text;

	while (*p) {
		size_t w = strcspn(p, " ");

		if (col > indent && col + 1 + (int)w > 79) {
			fprintf(f, "\n%s%*s", prefix, indent, "");
			col = indent;
		} else if (col > indent) {
			fputc(' ', f);
			col++;
		}
		fprintf(f, "%.*s", (int)w, p);
		col += w;
		p += w;
		while (*p == ' ')
			p++;
	}
	fputc('\n', f);
}

static const char *when_text(enum ml_when w)
{
	switch (w) {
	case ML_RELOAD: return "SIGHUP applies it to new replies and sessions.";
	case ML_RELOAD_GUARD: return "SIGHUP applies it to the guard at once.";
	case ML_RESTART: return "A change takes effect at the next start.";
	default: return "";
	}
}

/* The help, and "(default X)", or "(...; default X)" after a parenthesis. */
static void with_default(char *buf, size_t len, const struct ml_option *op)
{
	size_t n = strlen(op->help);

	if (!op->def)
		snprintf(buf, len, "%s", op->help);
	else if (n && op->help[n - 1] == ')')
		snprintf(buf, len, "%.*s; default %s)", (int)n - 1, op->help, op->def);
	else
		snprintf(buf, len, "%s (default %s)", op->help, op->def);
}

void ml_options_help(FILE *f)
{
	size_t i;

	for (i = 0; i < ml_noptions; i++) {
		const struct ml_option *op = &ml_options[i];
		char left[80], text[1024];
		int n;

		if (!op->key) {
			fprintf(f, "%s\n", op->help);
			continue;
		}
		n = snprintf(left, sizeof(left), "  %c%c%s--%s%s%s", op->flag ? '-' : ' ',
			     op->flag ? op->flag : ' ', op->flag ? ", " : "  ", op->key,
			     op->arg ? " " : "", op->arg ? op->arg : "");
		with_default(text, sizeof(text), op);
		fputs(left, f);
		if (n < 27) {
			fprintf(f, "%*s", 29 - n, "");
			n = 29;
		} else {	/* and wrap() puts a second space */
			fputc(' ', f);
			n++;
		}
		wrap(f, text, n, 29, "");
	}
}

/* A name in a .TP tag: backslashes as \e, hyphens as \- where asked. */
static void tag(FILE *f, const char *s, int hyphens)
{
	for (; *s; s++)
		fputs(*s == '\\' ? "\\e" : *s == '-' && hyphens ? "\\-" : (char[2]){ *s, 0 }, f);
}

void ml_options_man(FILE *f, int conf)
{
	char text[1400];
	size_t i;

	for (i = 0; i < ml_noptions; i++) {
		const struct ml_option *op = &ml_options[i];

		if (!op->key) {
			if (op->help[0]) {
				fputs(".SS ", f);
				ml_roff(f, op->help, 0);
			}
			continue;
		}
		if (conf && op->when == ML_CLI)
			continue;
		fputs(".TP\n", f);
		if (conf) {	/* mailless.conf(5): key = VALUE */
			fputs("\\fB", f);
			tag(f, op->key, 1);
			fputs("\\fR = \\fI", f);
			tag(f, op->arg, 0);
			fputs("\\fR\n", f);
		} else {	/* mailless(8): -f, --key VALUE */
			if (op->flag)
				fprintf(f, "\\fB\\-%c\\fR, ", op->flag);
			fputs("\\fB\\-\\-", f);
			tag(f, op->key, 1);
			fputs("\\fR", f);
			if (op->arg) {
				fputs(" \\fI", f);
				tag(f, op->arg, 0);
				fputs("\\fR", f);
			}
			fputc('\n', f);
		}
		snprintf(text, sizeof(text), "%s.%s%s%s %s", op->help, op->def ? " Default: " : "",
			 op->def ? op->def : "", op->def ? "." : "", when_text(op->when));
		ml_roff(f, text, 0);
	}
}

void ml_options_conf(FILE *f)
{
	size_t i;

	fputs("# mailless.conf - settings of `mailless run` (see mailless(8)).\n"
	      "# 'key = value', one a line; '#' starts a comment. Every key is the long\n"
	      "# name of a command-line option, and a flag given there wins over the file.\n"
	      "# Every key below is shown commented out, with its default where it has one.\n",
	      f);
	for (i = 0; i < ml_noptions; i++) {
		const struct ml_option *op = &ml_options[i];
		char text[1024];

		if (!op->key) {
			if (op->help[0])
				fprintf(f, "\n# ---- %s\n", op->help);
			continue;
		}
		if (op->when == ML_CLI)
			continue;
		snprintf(text, sizeof(text), "%s. %s", op->help, when_text(op->when));
		fputs("\n# ", f);
		wrap(f, text, 0, 0, "# ");
		fprintf(f, "#%s = %s\n", op->key, op->def ? op->def : op->arg);
	}
}
