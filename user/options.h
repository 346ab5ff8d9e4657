/* SPDX-License-Identifier: GPL-2.0 */
#ifndef ML_OPTIONS_H
#define ML_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"

/*
 * The one table of settings (user/options.c). Each row is written once and
 * read by: getopt (`mailless run`'s flags), the config file and the command
 * line (ml_opts_set), the defaults (ml_opts_defaults), SIGHUP (which fields
 * a reload takes and which need a restart), `run --help`, the "unknown key"
 * message, and `mailless options`, which prints the table as a man page
 * list or as a commented config file.
 */

/* When a setting takes effect. */
enum ml_when {
	ML_CLI,			/* command line only (-c, -v, -h): not a file key */
	ML_RESTART,		/* at start; a changed value on SIGHUP is warned */
	ML_RELOAD,		/* SIGHUP applies it to new replies and sessions */
	ML_RELOAD_GUARD,	/* SIGHUP publishes it to the XDP guard, atomically */
};

struct ml_option;
typedef int ml_setter(struct ml_opts *o, const struct ml_option *op, const char *val,
		      char *err, size_t errlen);

struct ml_option {
	const char *key;		/* --key, and "key = value" in the file */
	char flag;			/* short flag, 0: none */
	const char *arg;		/* value's name in --help; NULL: a switch */
	enum ml_when when;
	ml_setter *set;			/* NULL for ML_CLI rows */
	size_t off, size;		/* the bytes of struct ml_opts it sets */
	unsigned int lo, hi;		/* ml_set_uint's range */
	const char *const *names;	/* ml_set_choice's values, by number */
	int nnames;
	int replaces;			/* repeatable; a source's first replaces the default */
	const char *def;		/* default, given to set(); NULL: empty or computed */
	const char *help;		/* one paragraph; wrapped when printed */
};

#define ML_OPTIONS_MAX	64	/* rows of the table, headings included */

/* A heading row (key NULL) starts a group in --help and the man page. */
extern const struct ml_option ml_options[];
extern const size_t ml_noptions;

const struct ml_option *ml_option_find(const char *key);
const struct ml_option *ml_option_flag(int flag);

/* `run --help`'s option list. */
void ml_options_help(FILE *f);
/* `mailless options --man`: the list as man(7) .TP paragraphs, as flags
 * (mailless(8)) or, conf set, as file keys (mailless.conf(5)). */
void ml_options_man(FILE *f, int conf);
/* `mailless options --conf`: a config file naming every key, commented out. */
void ml_options_conf(FILE *f);

/* `mailless check`: the value of op in o as a config file would write it
 * ("" when unset), and every setting of o as a config file, which loads back
 * to the same settings. */
void ml_option_value(const struct ml_opts *o, const struct ml_option *op, char *buf,
		     size_t len);
void ml_options_print(FILE *f, const struct ml_opts *o);

/* Copy the fields of every option of class `when` from src to dst. */
void ml_opts_apply(struct ml_opts *dst, const struct ml_opts *src, enum ml_when when);
/* The keys of class `when` whose values differ, comma-separated in buf;
 * returns how many. */
int ml_opts_changed(const struct ml_opts *a, const struct ml_opts *b, enum ml_when when,
		    char *buf, size_t len);

#endif
