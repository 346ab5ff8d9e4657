// SPDX-License-Identifier: GPL-2.0
/* main.c - the command line: run, status, unload, --help, --version. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <bpf/libbpf.h>

#include "admin.h"
#include "config.h"
#include "log.h"
#include "server.h"
#include "stats.h"

/* The engines --engine names, in the order they are tried. */
static const struct ml_engine_ops *const engines[][3] = {
	[ML_ENGINE_AUTO] = { &ml_kernel_engine, &ml_user_engine, NULL },
	[ML_ENGINE_KERNEL] = { &ml_kernel_engine, NULL },
	[ML_ENGINE_USER] = { &ml_user_engine, NULL },
};

static void usage_main(FILE *f)
{
	fprintf(f,
"Usage: mailless COMMAND [OPTIONS]\n"
"An SMTP server for hosts that never receive mail: it answers every session\n"
"with reply code 521 (RFC 1846, RFC 7504) from eBPF programs in the kernel,\n"
"so senders bounce misaddressed mail at once instead of retrying for days.\n"
"\n"
"Commands:\n"
"  run       serve port 25 until SIGTERM/SIGINT (see: mailless run --help)\n"
"  status    show the running instance's programs, maps and attachments\n"
"  stats     counters: a table, JSON or Prometheus text (see: mailless stats -h)\n"
"  unload    remove what a crashed run left pinned or attached\n"
"\n"
"  -h, --help       this help\n"
"      --version    version, with the libbpf version\n");
}

static void usage_run(FILE *f)
{
	fprintf(f,
"Usage: mailless run [OPTIONS]\n"
"  -c, --config FILE          settings file (default " ML_DEFAULT_CONF " if present);\n"
"                             'key = value' lines with the long option names\n"
"  -l, --listen ADDR[:PORT]   address to serve, repeatable (default [::]:25,\n"
"                             IPv6 and IPv4); e.g. -l 127.0.0.1:25 -l [::1]:25\n"
"  -H, --hostname NAME        name in every reply (default: this host's FQDN,\n"
"                             looked up once at start, reused on SIGHUP)\n"
"  -d, --dialect rcpt|rfc7504 rcpt (default): 220 greeting, 521 at RCPT, which\n"
"                             every tested MTA bounces at once; rfc7504: 521\n"
"                             greeting (Postfix and OpenSMTPD requeue on it)\n"
"  -t, --timeout SECS         idle timeout, then 421 (default 300)\n"
"      --max-session-time SECS  session time limit, then 421 (default 600)\n"
"      --max-sessions N       concurrent sessions; more get 421 (default 10000)\n"
"      --max-sessions-per-source N  concurrent sessions from one IPv4 address or\n"
"                             IPv6 /64; more get 421 (default 50; 0: no limit)\n"
"      --engine kernel|user|auto  kernel: eBPF; user: plain epoll; auto\n"
"                             (default): kernel, or user if BPF cannot load\n"
"      --pin-dir DIR          bpffs directory for pins, locked by this instance\n"
"                             (default " ML_DEFAULT_PIN "); made with mode\n"
"                             0700 if missing; an existing one must be a real\n"
"                             directory of root (or this user), mode 0700\n"
"      --metrics-listen ADDR:PORT  serve GET and HEAD /metrics (Prometheus text\n"
"                             format); 16 connections at most, each with 2 s to\n"
"                             send its request head\n"
"      --metrics-file PATH    write the same text there atomically, for\n"
"                             node_exporter's textfile collector\n"
"      --metrics-interval SECS  how often to write the file (default 15)\n"
"      --log stderr|syslog    where session lines go (syslog: facility mail)\n"
"      --log-level LEVEL      error, warn, info (default: one line per session)\n"
"                             or debug\n"
"      --log-rate N           session lines a second at most (default 100;\n"
"                             0: none); the rest are counted as dropped\n"
"XDP guard (in front of the served ports; see README, \"The XDP guard\"):\n"
"      --xdp IFACE[,IFACE...]  attach it to these interfaces, through libxdp;\n"
"                             refuses (never replaces) an interface that has an\n"
"                             XDP program libxdp cannot run it beside\n"
"      --xdp-mode native|skb|auto  auto (default): native where the driver\n"
"                             supports it, else skb (generic)\n"
"      --syn-rate N           SYNs a second per source prefix (default %d; 0: no\n"
"                             limit); over it SYNs are dropped and counted\n"
"      --syn-burst N          SYNs at once per source prefix (default %d)\n"
"      --syn-prefix4 LEN      IPv4 source prefix sharing a bucket (default %d)\n"
"      --syn-prefix6 LEN      IPv6 source prefix sharing a bucket (default %d)\n"
"      --allow PREFIX[,...]   always pass (wins over deny and the rate limit)\n"
"      --deny PREFIX[,...]    drop every packet to the served ports\n"
"      --allow-file PATH, --deny-file PATH  prefixes, one or more a line, #\n"
"                             comments; re-read with the rest on SIGHUP\n"
"  -v, --verbose              debug output, libbpf's and the verifier's too\n"
"  -h, --help                 this help\n"
"Signals: SIGHUP re-reads the settings file (hostname, dialect, timeouts and\n"
"limits apply to new replies; no session is dropped); SIGTERM/SIGINT send 421\n"
"to open sessions, detach and unpin everything and exit 0. SIGHUP also swaps\n"
"the guard's limits and prefix lists in at once; --xdp needs a restart.\n",
		GD_DEFAULT_RATE, GD_DEFAULT_BURST, GD_DEFAULT_PREFIX4, GD_DEFAULT_PREFIX6);
}

static void usage_admin(FILE *f, const char *cmd)
{
	if (!strcmp(cmd, "stats"))
		fprintf(f,
"Usage: mailless stats [--pin-dir DIR] [-j|--json | --prometheus] [--watch SECS]\n"
"Counters of the running instance, read from its pinned maps (no socket to\n"
"the daemon): a table, JSON, or the Prometheus text format; --watch prints\n"
"them again every SECS seconds with per-second rates, until Ctrl-C.\n");
	else
		fprintf(f, "Usage: mailless %s [--pin-dir DIR]%s\n", cmd,
			strcmp(cmd, "status") ? "" : " [-j|--json]");
}

static int cmd_run(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "config", required_argument, 0, 'c' },
		{ "listen", required_argument, 0, 'l' },
		{ "hostname", required_argument, 0, 'H' },
		{ "dialect", required_argument, 0, 'd' },
		{ "timeout", required_argument, 0, 't' },
		{ "max-session-time", required_argument, 0, 1 },
		{ "max-sessions", required_argument, 0, 2 },
		{ "engine", required_argument, 0, 3 },
		{ "pin-dir", required_argument, 0, 4 },
		{ "metrics-listen", required_argument, 0, 5 },
		{ "metrics-file", required_argument, 0, 6 },
		{ "metrics-interval", required_argument, 0, 7 },
		{ "log", required_argument, 0, 8 },
		{ "log-level", required_argument, 0, 9 },
		{ "log-rate", required_argument, 0, 10 },
		{ "xdp", required_argument, 0, 11 },
		{ "xdp-mode", required_argument, 0, 12 },
		{ "syn-rate", required_argument, 0, 13 },
		{ "syn-burst", required_argument, 0, 14 },
		{ "syn-prefix4", required_argument, 0, 15 },
		{ "syn-prefix6", required_argument, 0, 16 },
		{ "allow", required_argument, 0, 17 },
		{ "deny", required_argument, 0, 18 },
		{ "allow-file", required_argument, 0, 19 },
		{ "deny-file", required_argument, 0, 20 },
		{ "max-sessions-per-source", required_argument, 0, 21 },
		{ "verbose", no_argument, 0, 'v' },
		{ "help", no_argument, 0, 'h' },
		{ 0 }
	};
	static const char *const keys[] = {
		[5] = "metrics-listen", [6] = "metrics-file", [7] = "metrics-interval",
		[8] = "log", [9] = "log-level", [10] = "log-rate",
		[11] = "xdp", [12] = "xdp-mode", [13] = "syn-rate", [14] = "syn-burst",
		[15] = "syn-prefix4", [16] = "syn-prefix6", [17] = "allow", [18] = "deny",
		[19] = "allow-file", [20] = "deny-file", [21] = "max-sessions-per-source",
		['l'] = "listen", ['H'] = "hostname", ['d'] = "dialect",
		['t'] = "timeout", [1] = "max-session-time", [2] = "max-sessions",
		[3] = "engine", [4] = "pin-dir",
	};
	struct ml_cli_set *cli = calloc(argc + 1, sizeof(*cli));
	struct ml_opts o;
	const char *conf = NULL;
	int ncli = 0, c, ret;

	if (!cli)
		return 1;
	while ((c = getopt_long(argc, argv, "c:l:H:d:t:vh", lo, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'v':
			ml_log_level = ML_DEBUG;
			break;
		case 'h':
			usage_run(stdout);
			free(cli);
			return 0;
		case 'l': case 'H': case 'd': case 't': case 1: case 2: case 3: case 4:
		case 5: case 6: case 7: case 8: case 9: case 10:
		case 11: case 12: case 13: case 14: case 15: case 16: case 17: case 18:
		case 19: case 20: case 21:
			cli[ncli].key = keys[c];
			cli[ncli].val = optarg;
			ncli++;
			break;
		default:
			usage_run(stderr);
			free(cli);
			return 2;
		}
	}
	if (optind < argc) {
		log_err("unexpected argument '%s' (see: mailless run --help)", argv[optind]);
		free(cli);
		return 2;
	}
	ml_opts_defaults(&o);
	if (ml_log_level == ML_DEBUG)	/* -v */
		o.log_level = ML_DEBUG;
	snprintf(o.conf_path, sizeof(o.conf_path), "%s", conf ? conf : ML_DEFAULT_CONF);
	o.conf_required = conf != NULL;
	if (ml_opts_load(&o, cli, ncli)) {
		free(cli);
		return 2;
	}
	if (ml_log_level != ML_DEBUG)
		ml_log_level = o.log_level;
	if (o.log_syslog)
		openlog("mailless", LOG_PID, LOG_MAIL);
	ret = ml_serve(&o, cli, ncli, engines[o.engine]);
	free(cli);
	return ret ? 1 : 0;
}

static int cmd_admin(int argc, char **argv, const char *cmd)
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
	int json = 0, prom = 0, c;
	unsigned long watch = 0;
	char *end;

	while ((c = getopt_long(argc, argv, "p:jvh", lo, NULL)) != -1) {
		switch (c) {
		case 'p': dir = optarg; break;
		case 'j': json = 1; break;
		case 'P': prom = 1; break;
		case 'w':
			watch = strtoul(optarg, &end, 10);
			if (*end || !*optarg || watch < 1 || watch > 3600) {
				log_err("bad --watch '%s' (want seconds, 1-3600)", optarg);
				return 2;
			}
			break;
		case 'v': ml_log_level = ML_DEBUG; break;
		case 'h': usage_admin(stdout, cmd); return 0;
		default: usage_admin(stderr, cmd); return 2;
		}
	}
	if ((watch || prom || json) && strcmp(cmd, "stats") && !(json && !strcmp(cmd, "status"))) {
		usage_admin(stderr, cmd);
		return 2;
	}
	if (!strcmp(cmd, "stats"))
		return ml_stats_cmd(dir, json, prom, watch);
	if (!strcmp(cmd, "status"))
		return ml_admin_status(dir, json);
	return ml_admin_unload(dir);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage_main(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage_main(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("mailless %s (libbpf %s)\n", ML_VERSION, libbpf_version_string());
		return 0;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "status") || !strcmp(argv[1], "unload") ||
	    !strcmp(argv[1], "stats"))
		return cmd_admin(argc - 1, argv + 1, argv[1]);
	log_err("unknown command '%s' (see: mailless --help)", argv[1]);
	return 2;
}
