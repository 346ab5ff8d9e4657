/* SPDX-License-Identifier: GPL-2.0 */
#ifndef ML_CONFIG_H
#define ML_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <sys/socket.h>

#include "mailless.h"
#include "guard.h"
#include "prefix.h"

#define ML_LISTEN_MAX	16
#ifndef ML_DEFAULT_CONF		/* the Makefile's $(SYSCONFDIR)/mailless.conf */
#define ML_DEFAULT_CONF	"/etc/mailless.conf"
#endif
#define ML_DEFAULT_PIN	"/sys/fs/bpf/mailless"

enum ml_engine { ML_ENGINE_AUTO, ML_ENGINE_KERNEL, ML_ENGINE_USER, ML_ENGINE_XDP };

struct ml_listen {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[64];			/* as written, for messages */
};

/* The XDP guard (user/guard.c): where, how, and what it lets through. */
enum ml_xdp_mode { ML_XDP_AUTO, ML_XDP_NATIVE, ML_XDP_SKB };

struct ml_guard_opts {
	char iface[GD_IFACE_MAX][GD_IFNAME_MAX];
	int niface;			/* 0: no guard */
	enum ml_xdp_mode mode;
	unsigned int syn_rate;		/* SYNs a second per source; 0: no limit */
	unsigned int syn_burst;
	unsigned int prefix4, prefix6;	/* source grouping of the buckets */
	char allow[ML_PREFIXES_MAX];	/* validated prefixes, space-separated */
	char deny[ML_PREFIXES_MAX];
	char allow_file[PATH_MAX];	/* "" : none */
	char deny_file[PATH_MAX];
};

struct ml_opts {
	struct ml_listen listen[ML_LISTEN_MAX];
	int nlisten;
	char hostname[ML_HOST_MAX];
	unsigned int dialect;		/* enum ml_dialect */
	unsigned int timeout;		/* idle seconds */
	unsigned int max_session_time;	/* seconds */
	unsigned int max_sessions;
	unsigned int max_sessions_per_source;	/* per IPv4 /32, IPv6 /64; 0: none */
	enum ml_engine engine;
	char pin_dir[PATH_MAX];
	char user[64];			/* serve as this user once loaded */
	struct ml_listen metrics_listen; /* len 0: no metrics endpoint */
	char metrics_file[PATH_MAX];	/* "" : no metrics file */
	unsigned int metrics_interval;	/* seconds between file writes */
	unsigned int log_rate;		/* session lines a second (0: none) */
	int log_syslog;			/* session lines to syslog (mail) */
	int log_level;			/* enum ml_level */
	char conf_path[PATH_MAX];	/* "" when no file is read */
	int conf_required;		/* -c given: a missing file is an error */
	struct ml_guard_opts guard;	/* the XDP guard */
};

/* A key = value setting as given on the command line, re-applied on top of
 * the file on every reload so that flags keep overriding it. */
struct ml_cli_set {
	const char *key;
	const char *val;
};

/* user/options.c: every key's default, then one setting by key; on error
 * -EINVAL with why in err (give it 512 bytes: an unknown key lists all). */
void ml_opts_defaults(struct ml_opts *o);
int ml_opts_set(struct ml_opts *o, const char *key, const char *val,
		char *err, size_t errlen);
/* Read o->conf_path (if any) then apply the command-line settings. */
int ml_opts_load(struct ml_opts *o, const struct ml_cli_set *cli, int ncli);
const char *ml_dialect_name(unsigned int d);
const char *ml_engine_name(enum ml_engine e);

#endif
