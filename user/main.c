// SPDX-License-Identifier: GPL-2.0
/* main.c - the command line: a table of commands (run, status, stats,
 * unload, options, help, version), each with its own options. */
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include "admin.h"
#include "config.h"
#include "log.h"
#include "options.h"
#include "prefix.h"
#include "privs.h"
#include "server.h"
#include "stats.h"

/* The engines --engine names, in the order they are tried. */
static const struct ml_engine_ops *const engines[][3] = {
	[ML_ENGINE_AUTO] = { &ml_kernel_engine, &ml_user_engine, NULL },
	[ML_ENGINE_KERNEL] = { &ml_kernel_engine, NULL },
	[ML_ENGINE_USER] = { &ml_user_engine, NULL },
	[ML_ENGINE_XDP] = { &ml_xdp_engine, NULL },
};

struct command {
	const char *name;
	int (*fn)(int argc, char **argv, const struct command *cmd);
	const char *usage;		/* after "mailless NAME" */
	const char *summary;		/* one line in `mailless --help` */
	unsigned int flags;		/* admin commands: which CMD_* they take */
};
#define CMD_JSON	1u
#define CMD_PROM	2u
#define CMD_WATCH	4u

static const struct command commands[];

static void usage_main(FILE *f)
{
	const struct command *c;

	fprintf(f,
"Usage: mailless COMMAND [OPTIONS]\n"
"An SMTP server for hosts that never receive mail: it answers every session\n"
"with reply code 521 (RFC 1846, RFC 7504) from eBPF programs in the kernel,\n"
"so senders bounce misaddressed mail at once instead of retrying for days.\n"
"\n"
"Commands:\n");
	for (c = commands; c->name; c++)
		if (c->summary)
			fprintf(f, "  %-9s %s\n", c->name, c->summary);
	fprintf(f,
"\n"
"  -h, --help       this help\n"
"      --version    version, with the libbpf version\n");
}

static void usage_cmd(FILE *f, const struct command *c)
{
	fprintf(f, "Usage: mailless %s %s\n", c->name, c->usage);
}

static void usage_run(FILE *f, const struct command *c)
{
	usage_cmd(f, c);
	ml_options_help(f);
	fprintf(f,
"Signals: SIGHUP re-reads the settings file (hostname, dialect, timeouts and\n"
"limits apply to new replies; no session is dropped); SIGTERM/SIGINT send 421\n"
"to open sessions, detach and unpin everything and exit 0. SIGHUP also swaps\n"
"the guard's limits and prefix lists in at once; --xdp needs a restart.\n"
"Once serving as --user, what needs root to remove (the pins, the guard) is\n"
"left to `mailless unload`, which the systemd unit runs after every stop.\n");
}

/* getopt_long's tables, from user/options.c's: a long option's val is 256
 * plus its row, a short flag its letter. */
static int run_getopt(int argc, char **argv, struct option *lo, char *so)
{
	size_t i, n = 0, k = 0;

	for (i = 0; i < ml_noptions; i++) {
		const struct ml_option *op = &ml_options[i];

		if (!op->key)
			continue;
		lo[n++] = (struct option){ op->key, op->arg ? required_argument : no_argument,
					   NULL, 256 + (int)i };
		if (op->flag) {
			so[k++] = op->flag;
			if (op->arg)
				so[k++] = ':';
		}
	}
	lo[n] = (struct option){ 0 };
	so[k] = 0;
	return getopt_long(argc, argv, so, lo, NULL);
}

/* The settings of `run` (and `check`): the file, then the flags. Returns -1
 * with *o loaded and *clip the flags (free it), or the exit status (0 after
 * --help, 2 for a bad setting, which was said). */
static int run_settings(int argc, char **argv, const struct command *cmd, struct ml_opts *o,
			struct ml_cli_set **clip, int *ncli)
{
	struct option lo[ML_OPTIONS_MAX + 1];
	char so[2 * ML_OPTIONS_MAX + 1];
	struct ml_cli_set *cli = calloc(argc + 1, sizeof(*cli));
	const char *conf = NULL;
	int n = 0, c;

	if (!cli)
		return 1;
	while ((c = run_getopt(argc, argv, lo, so)) != -1) {
		const struct ml_option *op = c >= 256 ? &ml_options[c - 256] :
					     c != '?' ? ml_option_flag(c) : NULL;

		if (!op) {
			usage_run(stderr, cmd);
			free(cli);
			return 2;
		}
		if (op->when != ML_CLI) {
			cli[n].key = op->key;
			cli[n].val = optarg;
			n++;
		} else if (!strcmp(op->key, "config")) {
			conf = optarg;
		} else if (!strcmp(op->key, "verbose")) {
			ml_log_level = ML_DEBUG;
		} else {	/* help */
			usage_run(stdout, cmd);
			free(cli);
			return 0;
		}
	}
	if (optind < argc) {
		log_err("unexpected argument '%s' (see: mailless %s --help)", argv[optind],
			cmd->name);
		free(cli);
		return 2;
	}
	ml_opts_defaults(o);
	snprintf(o->conf_path, sizeof(o->conf_path), "%s", conf ? conf : ML_DEFAULT_CONF);
	o->conf_required = conf != NULL;
	if (ml_opts_load(o, cli, n)) {
		free(cli);
		return 2;
	}
	if (ml_log_level == ML_DEBUG)	/* -v wins over log-level */
		o->log_level = ML_DEBUG;
	else
		ml_log_level = o->log_level;
	*clip = cli;
	*ncli = n;
	return -1;
}

static int cmd_run(int argc, char **argv, const struct command *cmd)
{
	struct ml_cli_set *cli;
	struct ml_privs pv;
	struct ml_opts o;
	int ncli, ret = run_settings(argc, argv, cmd, &o, &cli, &ncli);

	if (ret >= 0)
		return ret;
	if (ml_privs_resolve(o.user, &pv)) {
		free(cli);
		return 2;
	}
	if (o.log_syslog)
		openlog("mailless", LOG_PID, LOG_MAIL);
	ret = ml_serve(&o, &pv, cli, ncli, engines[o.engine]);
	free(cli);
	return ret ? 1 : 0;
}

static int check_prefix(void *ctx, const char *tok, const char *where)
{
	unsigned char addr[16];
	unsigned int len;
	int v6;

	(void)ctx;
	if (ml_prefix_parse(tok, &v6, addr, &len)) {
		log_err("%s: bad prefix '%s' (want ADDR[/LEN])", where, tok);
		return -EINVAL;
	}
	return 0;
}

/* `mailless check`: what `run` would read, without loading or binding
 * anything: the settings (file and flags), the prefix files they name and the
 * guard's interfaces. The settings in effect go to stdout as a config file. */
static int cmd_check(int argc, char **argv, const struct command *cmd)
{
	struct ml_cli_set *cli;
	struct ml_privs pv;
	struct ml_opts o;
	int ncli, i, bad = 0, ret = run_settings(argc, argv, cmd, &o, &cli, &ncli);

	if (ret >= 0)
		return ret;
	free(cli);
	if (ml_privs_resolve(o.user, &pv))
		bad = 1;
	if (o.guard.allow_file[0] &&
	    ml_prefix_file(o.guard.allow_file, "allow-file", check_prefix, NULL))
		bad = 1;
	if (o.guard.deny_file[0] &&
	    ml_prefix_file(o.guard.deny_file, "deny-file", check_prefix, NULL))
		bad = 1;
	for (i = 0; i < o.guard.niface; i++)
		if (!if_nametoindex(o.guard.iface[i])) {
			log_err("xdp: no interface '%s' here (ip link shows those there are)",
				o.guard.iface[i]);
			bad = 1;
		}
	if (bad)
		return 2;
	ml_options_print(stdout, &o);
	if (access(o.conf_path, F_OK) == 0)
		log_info("settings OK: %s and %d from the command line", o.conf_path, ncli);
	else
		log_info("settings OK: no %s, defaults and %d from the command line",
			 o.conf_path, ncli);
	return 0;
}

/* status, stats, unload: they read the pins, never the daemon. */
static int cmd_admin(int argc, char **argv, const struct command *cmd)
{
	static const struct option lo[] = {
		{ "pin-dir", required_argument, 0, 'p' },
		{ "json", no_argument, 0, 'j' },
		{ "prometheus", no_argument, 0, 'P' },
		{ "watch", required_argument, 0, 'w' },
		{ "verbose", no_argument, 0, 'v' },
		{ "help", no_argument, 0, 'h' },
		{ 0 }
	};
	const char *dir = ML_DEFAULT_PIN;
	unsigned int given = 0;
	int json = 0, prom = 0, c;
	unsigned long watch = 0;
	char *end;

	while ((c = getopt_long(argc, argv, "p:jvh", lo, NULL)) != -1) {
		switch (c) {
		case 'p': dir = optarg; break;
		case 'j': json = 1; given |= CMD_JSON; break;
		case 'P': prom = 1; given |= CMD_PROM; break;
		case 'w':
			watch = strtoul(optarg, &end, 10);
			if (*end || !*optarg || watch < 1 || watch > 3600) {
				log_err("bad --watch '%s' (want seconds, 1-3600)", optarg);
				return 2;
			}
			given |= CMD_WATCH;
			break;
		case 'v': ml_log_level = ML_DEBUG; break;
		case 'h': usage_cmd(stdout, cmd); return 0;
		default: usage_cmd(stderr, cmd); return 2;
		}
	}
	if (given & ~cmd->flags) {
		log_err("'mailless %s' takes no %s", cmd->name,
			given & ~cmd->flags & CMD_JSON ? "-j/--json" :
			given & ~cmd->flags & CMD_PROM ? "--prometheus" : "--watch");
		usage_cmd(stderr, cmd);
		return 2;
	}
	if (optind < argc) {
		log_err("unexpected argument '%s'", argv[optind]);
		usage_cmd(stderr, cmd);
		return 2;
	}
	if (!strcmp(cmd->name, "stats"))
		return ml_stats_cmd(dir, json, prom, watch);
	if (!strcmp(cmd->name, "status"))
		return ml_admin_status(dir, json);
	return ml_admin_unload(dir);
}

/* The option table itself, for the man page, an example config file and
 * shell completion. */
static int cmd_options(int argc, char **argv, const struct command *cmd)
{
	static const char *const when[] = {
		[ML_CLI] = "cli", [ML_RESTART] = "restart", [ML_RELOAD] = "reload",
		[ML_RELOAD_GUARD] = "reload",
	};
	size_t i;

	if (argc == 2 && !strcmp(argv[1], "--man")) {
		ml_options_man(stdout, 0);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "--man-conf")) {
		ml_options_man(stdout, 1);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "--man-metrics")) {
		ml_stats_man(stdout);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "--conf")) {
		ml_options_conf(stdout);
		return 0;
	}
	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage_cmd(stdout, cmd);
		return 0;
	}
	if (argc != 1) {
		log_err("unexpected argument '%s'", argv[1]);
		usage_cmd(stderr, cmd);
		return 2;
	}
	for (i = 0; i < ml_noptions; i++)
		if (ml_options[i].key)
			printf("%s\t%s\t%s\t%c\t%s\n", ml_options[i].key, when[ml_options[i].when],
			       ml_options[i].def ? ml_options[i].def : "-",
			       ml_options[i].flag ? ml_options[i].flag : '-',
			       ml_options[i].arg ? ml_options[i].arg : "-");
	return 0;
}

static int cmd_help(int argc, char **argv, const struct command *cmd)
{
	(void)argc, (void)argv, (void)cmd;
	usage_main(stdout);
	return 0;
}

static int cmd_version(int argc, char **argv, const struct command *cmd)
{
	(void)argc, (void)argv, (void)cmd;
	printf("mailless %s (libbpf %s)\n", ML_VERSION, libbpf_version_string());
	return 0;
}

static const struct command commands[] = {
	{ "run", cmd_run, "[OPTIONS]",
	  "serve port 25 until SIGTERM/SIGINT (see: mailless run --help)", 0 },
	{ "check", cmd_check, "[OPTIONS]   (those of mailless run)\n"
	  "Read the settings as `run` would, and the prefix files and interfaces they\n"
	  "name, load nothing, and print the settings in effect as a config file;\n"
	  "exit 0 if run would accept them, 2 (with the reason) if not.",
	  "check the settings without loading anything, print those in effect", 0 },
	{ "status", cmd_admin, "[--pin-dir DIR] [-j|--json]",
	  "show the running instance's programs, maps and attachments", CMD_JSON },
	{ "stats", cmd_admin, "[--pin-dir DIR] [-j|--json | --prometheus] [--watch SECS]\n"
	  "Counters of the running instance, read from its pinned maps (no socket to\n"
	  "the daemon): a table, JSON, or the Prometheus text format; --watch prints\n"
	  "them again every SECS seconds with per-second rates, until Ctrl-C.",
	  "counters: a table, JSON or Prometheus text (see: mailless stats -h)",
	  CMD_JSON | CMD_PROM | CMD_WATCH },
	{ "unload", cmd_admin, "[--pin-dir DIR]",
	  "remove what a crashed run left pinned or attached", 0 },
	{ "options", cmd_options, "[--man | --man-conf | --man-metrics | --conf]\n"
	  "Every setting of `mailless run`, one a line, tab-separated: key, when it\n"
	  "applies (reload, restart, cli: command line only), default, short flag and\n"
	  "value (A|B: one of those), '-' for none; --man: as man(7) paragraphs\n"
	  "of options (mailless(8)), --man-conf of file keys (mailless.conf(5)),\n"
	  "--man-metrics of the metric families (mailless(8));\n"
	  "--conf: a config file with every key commented out.",
	  "list every setting, or print them as a man page list or a config file", 0 },
	{ "help", cmd_help, "", NULL, 0 },
	{ "-h", cmd_help, "", NULL, 0 },
	{ "--help", cmd_help, "", NULL, 0 },
	{ "version", cmd_version, "", NULL, 0 },
	{ "--version", cmd_version, "", NULL, 0 },
	{ NULL, NULL, NULL, NULL, 0 }
};

int main(int argc, char **argv)
{
	const struct command *c;

	if (argc < 2) {
		usage_main(stderr);
		return 2;
	}
	for (c = commands; c->name; c++)
		if (!strcmp(argv[1], c->name))
			return c->fn(argc - 1, argv + 1, c);
	log_err("unknown command '%s' (see: mailless --help)", argv[1]);
	return 2;
}
