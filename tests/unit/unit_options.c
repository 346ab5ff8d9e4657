// SPDX-License-Identifier: GPL-2.0
/*
 * unit_options - the option table (user/options.c) and the sources of
 * settings (user/config.c): every row well-formed (keys and flags unique,
 * fields inside struct ml_opts), every default accepted by its own parser,
 * every number range and choice enforced at its edges, SIGHUP's split of
 * reloadable and restart-only fields, a source's first listen replacing
 * the default and the earlier source, the "unknown key" message naming
 * every key, and the generated --help, man list and example config file
 * naming every key (the example, uncommented, loads to the defaults).
 * Prints "ok - ..." / "not ok - ..." lines; no root, no kernel.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../user/config.c"
#include "../../user/log.c"
#include "../../user/options.c"
#include "../../user/parse.c"
#include "../../user/prefix.c"
#include "../../user/roff.c"

static int failures;

static void check(const char *name, int good, const char *why)
{
	if (good) {
		printf("ok - options: %s\n", name);
	} else {
		printf("not ok - options: %s: %s\n", name, why);
		failures++;
	}
}

static int has_word(const char *text, const char *word)
{
	const char *p = text;
	size_t n = strlen(word);

	while ((p = strstr(p, word))) {
		char after = p[n];

		if (!after || strchr(" \n\\=),", after))
			return 1;
		p += n;
	}
	return 0;
}

static void rows(void)
{
	char why[256] = "";
	size_t i, j;

	for (i = 0; i < ml_noptions && !why[0]; i++) {
		const struct ml_option *a = &ml_options[i];

		if (!a->key)
			continue;
		for (j = i + 1; j < ml_noptions; j++)
			if (ml_options[j].key && (!strcmp(a->key, ml_options[j].key) ||
						  (a->flag && a->flag == ml_options[j].flag)))
				snprintf(why, sizeof(why), "%s and %s share a key or flag",
					 a->key, ml_options[j].key);
		if (a->when != ML_CLI && (!a->set || !a->size || !a->arg))
			snprintf(why, sizeof(why), "%s: no parser, field or value", a->key);
		if (a->off + a->size > sizeof(struct ml_opts))
			snprintf(why, sizeof(why), "%s: field outside struct ml_opts", a->key);
		if (!a->help || !a->help[0])
			snprintf(why, sizeof(why), "%s: no help", a->key);
	}
	check("every row has a unique key and flag, a parser, a field and help", !why[0], why);
}

static void defaults(void)
{
	struct ml_opts o;
	char err[512], why[600] = "";
	size_t i;

	ml_opts_defaults(&o);
	for (i = 0; i < ml_noptions; i++) {
		const struct ml_option *op = &ml_options[i];

		if (op->key && op->def && !op->replaces &&
		    op->set(&o, op, op->def, err, sizeof(err)))
			snprintf(why, sizeof(why), "%s = %s: %s", op->key, op->def, err);
	}
	check("every default is accepted by its own parser", !why[0], why);
	check("defaults: [::]:25, rcpt, 300 s, auto engine, the default pin dir",
	      o.nlisten == 1 && !strcmp(o.listen[0].text, "[::]:25") &&
	      o.dialect == ML_DIALECT_RCPT && o.timeout == 300 && o.engine == ML_ENGINE_AUTO &&
	      !strcmp(o.pin_dir, ML_DEFAULT_PIN) && o.guard.syn_rate == GD_DEFAULT_RATE,
	      "a default differs");
}

static void edges(void)
{
	char err[512], v[32], why[600] = "";
	struct ml_opts o;
	size_t i;
	int k;

	for (i = 0; i < ml_noptions && !why[0]; i++) {
		const struct ml_option *op = &ml_options[i];

		if (!op->key || op->set != set_uint)
			continue;
		ml_opts_defaults(&o);
		snprintf(v, sizeof(v), "%u", op->lo);
		if (ml_opts_set(&o, op->key, v, err, sizeof(err)) ||
		    *(unsigned int *)AT(&o, op) != op->lo)
			snprintf(why, sizeof(why), "%s = %s refused or not set", op->key, v);
		snprintf(v, sizeof(v), "%u", op->hi);
		if (ml_opts_set(&o, op->key, v, err, sizeof(err)) ||
		    *(unsigned int *)AT(&o, op) != op->hi)
			snprintf(why, sizeof(why), "%s = %s refused or not set", op->key, v);
		snprintf(v, sizeof(v), "%lu", op->hi + 1ul);
		if (!ml_opts_set(&o, op->key, v, err, sizeof(err)) || !strstr(err, op->key))
			snprintf(why, sizeof(why), "%s = %s accepted, or the error '%s' does "
				 "not name the key", op->key, v, err);
		if (op->lo > 0) {
			snprintf(v, sizeof(v), "%u", op->lo - 1);
			if (!ml_opts_set(&o, op->key, v, err, sizeof(err)))
				snprintf(why, sizeof(why), "%s = %s accepted", op->key, v);
		}
	}
	check("every number is accepted at both ends of its range, refused past them",
	      !why[0], why);
	for (i = 0; i < ml_noptions && !why[0]; i++) {
		const struct ml_option *op = &ml_options[i];

		if (!op->key || op->set != set_choice)
			continue;
		ml_opts_defaults(&o);
		for (k = 0; k < op->nnames; k++)
			if (ml_opts_set(&o, op->key, op->names[k], err, sizeof(err)) ||
			    *(int *)AT(&o, op) != k)
				snprintf(why, sizeof(why), "%s = %s", op->key, op->names[k]);
		if (!ml_opts_set(&o, op->key, "bogus", err, sizeof(err)) ||
		    !has_word(err, op->names[op->nnames - 1]))
			snprintf(why, sizeof(why), "%s = bogus: '%s'", op->key, err);
	}
	check("every choice sets its number; another word is refused, naming the choices",
	      !why[0], why);
}

static void reload(void)
{
	struct ml_opts a, b;
	char err[512], keys[256];
	int n;

	ml_opts_defaults(&a);
	ml_opts_defaults(&b);
	check("identical settings: nothing changed",
	      !ml_opts_changed(&a, &b, ML_RESTART, keys, sizeof(keys)) &&
	      !ml_opts_changed(&a, &b, ML_RELOAD, keys, sizeof(keys)) &&
	      !ml_opts_changed(&a, &b, ML_RELOAD_GUARD, keys, sizeof(keys)), keys);
	ml_opts_set(&b, "hostname", "new.example", err, sizeof(err));
	ml_opts_set(&b, "timeout", "7", err, sizeof(err));
	ml_opts_set(&b, "listen", "127.0.0.1:2525", err, sizeof(err));
	ml_opts_set(&b, "log-level", "debug", err, sizeof(err));
	ml_opts_set(&b, "syn-rate", "99", err, sizeof(err));
	n = ml_opts_changed(&a, &b, ML_RESTART, keys, sizeof(keys));
	check("a changed listen and log-level are named as needing a restart",
	      n == 2 && !strcmp(keys, "listen, log-level"), keys);
	n = ml_opts_changed(&a, &b, ML_RELOAD, keys, sizeof(keys));
	check("a changed hostname and timeout are reloadable",
	      n == 2 && !strcmp(keys, "hostname, timeout"), keys);
	ml_opts_apply(&a, &b, ML_RELOAD);
	check("a reload takes hostname and timeout, keeps listen, log-level and syn-rate",
	      !strcmp(a.hostname, "new.example") && a.timeout == 7 && a.nlisten == 1 &&
	      !strcmp(a.listen[0].text, "[::]:25") && a.log_level == ML_INFO &&
	      a.guard.syn_rate == GD_DEFAULT_RATE, "fields copied wrongly");
	ml_opts_apply(&a, &b, ML_RELOAD_GUARD);
	check("the guard's reload takes syn-rate", a.guard.syn_rate == 99, "not copied");
}

static int write_conf(char *path, const char *text)
{
	int fd;

	strcpy(path, "/tmp/unit_options.XXXXXX");
	fd = mkstemp(path);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		return -1;
	close(fd);
	return 0;
}

static void sources(void)
{
	static const struct ml_cli_set cli[] = {
		{ "listen", "127.0.0.3:25" }, { "allow", "192.0.2.9" },
	};
	char path[64];
	struct ml_opts o;
	int r;

	if (write_conf(path, "listen = 127.0.0.1:25\nlisten = [::1]:25 # two\n"
			     "allow = 192.0.2.1\n")) {
		check("config file", 0, "cannot write a temporary file");
		return;
	}
	ml_opts_defaults(&o);
	snprintf(o.conf_path, sizeof(o.conf_path), "%s", path);
	r = ml_opts_load(&o, NULL, 0);
	check("the file's listen lines replace the default, and add up",
	      !r && o.nlisten == 2 && !strcmp(o.listen[1].text, "[::1]:25"), "wrong listeners");
	ml_opts_defaults(&o);
	snprintf(o.conf_path, sizeof(o.conf_path), "%s", path);
	r = ml_opts_load(&o, cli, 2);
	check("a -l flag replaces the file's listen lines; --allow adds to the file's",
	      !r && o.nlisten == 1 && !strcmp(o.listen[0].text, "127.0.0.3:25") &&
	      !strcmp(o.guard.allow, "192.0.2.1 192.0.2.9"), o.guard.allow);
	unlink(path);
}

static void unknown(void)
{
	char err[512], why[128] = "";
	struct ml_opts o;
	size_t i;

	ml_opts_defaults(&o);
	check("an unknown key is refused", ml_opts_set(&o, "bogus", "1", err, sizeof(err)) ==
	      -EINVAL && strstr(err, "unknown key 'bogus'"), err);
	for (i = 0; i < ml_noptions; i++) {
		const struct ml_option *op = &ml_options[i];

		if (op->key && (op->when == ML_CLI) == has_word(err, op->key))
			snprintf(why, sizeof(why), "%s %s", op->key,
				 op->when == ML_CLI ? "listed" : "missing");
	}
	check("the message lists every file key and no command-line-only one", !why[0],
	      why[0] ? why : err);
	check("command-line-only names are not file keys",
	      ml_opts_set(&o, "config", "/x", err, sizeof(err)) == -EINVAL, err);
}

/* Everything f prints, as one string (the caller frees it). */
static char *printed(void (*fn)(FILE *))
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	fn(f);
	fclose(f);
	return buf;
}

static void man_flags(FILE *f)
{
	ml_options_man(f, 0);
}

static void generated(void)
{
	char *help = printed(ml_options_help), *man = printed(man_flags);
	char *conf = printed(ml_options_conf), *line, *save = NULL, *text;
	char why[128] = "", want[80], path[64];
	struct ml_opts o, d;
	size_t i, nkeys = 0, ntp = 0;
	const char *p;
	FILE *f;

	for (i = 0; i < ml_noptions; i++) {
		const struct ml_option *op = &ml_options[i];
		char mkey[80];
		size_t k, m = 0;

		if (!op->key)
			continue;
		nkeys++;
		snprintf(want, sizeof(want), "--%s", op->key);
		for (k = 0; op->key[k] && m < sizeof(mkey) - 3; k++) {
			if (op->key[k] == '-')
				mkey[m++] = '\\';
			mkey[m++] = op->key[k];
		}
		mkey[m] = 0;
		if (!has_word(help, want))
			snprintf(why, sizeof(why), "--help lacks %s", want);
		snprintf(want, sizeof(want), "\\fB\\-\\-%s\\fR", mkey);
		if (!strstr(man, want))
			snprintf(why, sizeof(why), "the man list lacks %s", want);
		snprintf(want, sizeof(want), "\n#%s = ", op->key);
		if ((op->when != ML_CLI) != (strstr(conf, want) != NULL))
			snprintf(why, sizeof(why), "the example config %s %s",
				 op->when == ML_CLI ? "has" : "lacks", op->key);
	}
	for (p = man; (p = strstr(p, ".TP\n")); p++)
		ntp++;
	check("--help, the man list and the example config name every key",
	      !why[0] && ntp == nkeys, why[0] ? why : "a .TP count differs");

	/* The example, each defaulted key uncommented, loads to the defaults. */
	f = write_conf(path, "") ? NULL : fopen(path, "w");
	text = conf;
	for (line = strtok_r(text, "\n", &save); f && line; line = strtok_r(NULL, "\n", &save)) {
		const struct ml_option *op;
		char key[64];

		if (sscanf(line, "#%63[a-z0-9-] = ", key) == 1 && (op = ml_option_find(key)) &&
		    op->def)
			fprintf(f, "%s\n", line + 1);
		else
			fprintf(f, "%s\n", line);
	}
	if (f)
		fclose(f);
	ml_opts_defaults(&o);
	ml_opts_defaults(&d);
	snprintf(o.conf_path, sizeof(o.conf_path), "%s", path);
	snprintf(d.conf_path, sizeof(d.conf_path), "%s", path);
	check("the example config, uncommented, loads to the defaults",
	      f && !ml_opts_load(&o, NULL, 0) && !memcmp(&o, &d, sizeof(o)), path);
	unlink(path);
	free(help);
	free(man);
	free(conf);
}

int main(void)
{
	ml_log_level = ML_ERROR;
	rows();
	defaults();
	edges();
	reload();
	sources();
	unknown();
	generated();
	return failures ? 1 : 0;
}
