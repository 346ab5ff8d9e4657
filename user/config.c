// SPDX-License-Identifier: GPL-2.0
/*
 * config.c - where settings come from: /etc/mailless.conf (or -c FILE),
 * then the command line, the same keys (user/options.c) in both; flags win,
 * every bad line is an error that names the file and line.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "options.h"

/* The first setting of a repeatable key in a source (the file, the command
 * line) replaces the default and what an earlier source gave: a -l flag
 * serves instead of the file's listen lines, not beside them. */
static void replace_once(struct ml_opts *o, const char *key, unsigned char *seen)
{
	const struct ml_option *op = ml_option_find(key);

	if (op && op->replaces && !seen[op - ml_options]++)
		memset((char *)o + op->off, 0, op->size);
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
	unsigned char seen[ML_OPTIONS_MAX] = { 0 };
	char line[1024], err[512];
	int lineno = 0, ret = 0;
	FILE *f;

	if (!o->conf_path[0])
		return 0;
	f = fopen(o->conf_path, "re");
	if (!f) {
		if (errno == ENOENT && !o->conf_required)
			return 0;
		ret = -errno;
		log_err("cannot read config %s: %s%s", o->conf_path, strerror(errno),
			errno == EACCES && geteuid() ? " (mailless serves as an unprivileged user "
			"once started: let it read the file and its directories, e.g. mode 0644)" : "");
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
		replace_once(o, k, seen);
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
	unsigned char seen[ML_OPTIONS_MAX] = { 0 };
	char err[512];
	int i, ret;

	ret = read_file(o);
	if (ret)
		return ret;
	for (i = 0; i < ncli; i++) {
		replace_once(o, cli[i].key, seen);
		if (ml_opts_set(o, cli[i].key, cli[i].val, err, sizeof(err))) {
			log_err("%s", err);
			return -EINVAL;
		}
	}
	if (o->engine == ML_ENGINE_XDP && !o->guard.niface) {
		log_err("engine xdp answers from the XDP guard: name its interfaces with "
			"xdp (--xdp IFACE[,IFACE...])");
		return -EINVAL;
	}
	return 0;
}
