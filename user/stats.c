// SPDX-License-Identifier: GPL-2.0
/*
 * stats.c - the counters, read from the pinned maps, and their three forms:
 * a human table, JSON, and the Prometheus text format. `mailless stats`
 * works from another shell while `run` runs: it needs only the pins.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "guardctl.h"
#include "json.h"
#include "log.h"
#include "pins.h"
#include "roff.h"
#include "stats.h"

enum { COUNTER, GAUGE };

/* One row per counter. Rows of one metric are adjacent in enum ml_stat, so
 * HELP and TYPE are written once per metric. */
static const struct {
	const char *metric;
	const char *label;	/* "" or key="value" */
	const char *help;
	int type;
	const char *row;	/* the table's name */
} def[ML_ST__MAX] = {
#define SESS "Sessions closed, by reason."
#define CMD "Command lines received, by verb."
#define REP "Replies sent, by code."
	[ML_ST_ADMITTED] = { "mailless_connections_admitted_total", "",
		"Connections accepted for service.", COUNTER, "connections admitted" },
	[ML_ST_CLOSE_QUIT] = { "mailless_sessions_total", "reason=\"quit\"", SESS, COUNTER,
		"closed: quit" },
	[ML_ST_CLOSE_CLIENT] = { "mailless_sessions_total", "reason=\"client_closed\"", SESS,
		COUNTER, "closed: client closed" },
	[ML_ST_CLOSE_IDLE] = { "mailless_sessions_total", "reason=\"idle_timeout\"", SESS,
		COUNTER, "closed: idle timeout" },
	[ML_ST_CLOSE_MAXTIME] = { "mailless_sessions_total", "reason=\"session_time_limit\"",
		SESS, COUNTER, "closed: session time limit" },
	[ML_ST_CLOSE_FLOOD] = { "mailless_sessions_total", "reason=\"line_flood\"", SESS,
		COUNTER, "closed: line flood" },
	[ML_ST_CLOSE_BUSY] = { "mailless_sessions_total", "reason=\"busy\"", SESS, COUNTER,
		"closed: busy" },
	[ML_ST_CLOSE_BUSY_SOURCE] = { "mailless_sessions_total", "reason=\"busy_source\"", SESS,
		COUNTER, "closed: busy (per source)" },
	[ML_ST_CLOSE_RESET] = { "mailless_sessions_total", "reason=\"reset\"", SESS, COUNTER,
		"closed: reset" },
	[ML_ST_CLOSE_BACKLOG] = { "mailless_sessions_total", "reason=\"unread_backlog\"", SESS,
		COUNTER, "closed: unread backlog" },
	[ML_ST_CLOSE_ERROR] = { "mailless_sessions_total", "reason=\"internal_error\"", SESS,
		COUNTER, "closed: internal error" },
	[ML_ST_CLOSE_SHUTDOWN] = { "mailless_sessions_total", "reason=\"shutdown\"", SESS,
		COUNTER, "closed: shutdown" },
	[ML_ST_CMD_HELO] = { "mailless_commands_total", "verb=\"helo\"", CMD, COUNTER, "HELO" },
	[ML_ST_CMD_EHLO] = { "mailless_commands_total", "verb=\"ehlo\"", CMD, COUNTER, "EHLO" },
	[ML_ST_CMD_MAIL] = { "mailless_commands_total", "verb=\"mail\"", CMD, COUNTER, "MAIL" },
	[ML_ST_CMD_RCPT] = { "mailless_commands_total", "verb=\"rcpt\"", CMD, COUNTER, "RCPT" },
	[ML_ST_CMD_DATA] = { "mailless_commands_total", "verb=\"data\"", CMD, COUNTER, "DATA" },
	[ML_ST_CMD_RSET] = { "mailless_commands_total", "verb=\"rset\"", CMD, COUNTER, "RSET" },
	[ML_ST_CMD_NOOP] = { "mailless_commands_total", "verb=\"noop\"", CMD, COUNTER, "NOOP" },
	[ML_ST_CMD_QUIT] = { "mailless_commands_total", "verb=\"quit\"", CMD, COUNTER, "QUIT" },
	[ML_ST_CMD_OTHER] = { "mailless_commands_total", "verb=\"other\"", CMD, COUNTER,
		"other commands" },
	[ML_ST_REPLY_220] = { "mailless_replies_total", "code=\"220\"", REP, COUNTER, "replies 220" },
	[ML_ST_REPLY_221] = { "mailless_replies_total", "code=\"221\"", REP, COUNTER, "replies 221" },
	[ML_ST_REPLY_250] = { "mailless_replies_total", "code=\"250\"", REP, COUNTER, "replies 250" },
	[ML_ST_REPLY_421] = { "mailless_replies_total", "code=\"421\"", REP, COUNTER, "replies 421" },
	[ML_ST_REPLY_500] = { "mailless_replies_total", "code=\"500\"", REP, COUNTER, "replies 500" },
	[ML_ST_REPLY_521] = { "mailless_replies_total", "code=\"521\"", REP, COUNTER, "replies 521" },
	[ML_ST_REPLY_554] = { "mailless_replies_total", "code=\"554\"", REP, COUNTER, "replies 554" },
	[ML_ST_RX_BYTES] = { "mailless_received_bytes_total", "",
		"Octets received from clients.", COUNTER, "bytes received" },
	[ML_ST_TX_BYTES] = { "mailless_sent_bytes_total", "",
		"Reply octets sent to clients.", COUNTER, "bytes sent" },
	[ML_ST_LONG_LINES] = { "mailless_long_lines_total", "",
		"Command lines over 512 octets (answered 500).", COUNTER, "over-long lines" },
	[ML_ST_MULTI_LINE] = { "mailless_pipelined_segments_total", "",
		"Received segments (user engine: reads) that carried more than one line.",
		COUNTER, "pipelined segments" },
	[ML_ST_PIPELINE_MAX] = { "mailless_pipeline_depth_max", "",
		"Most command lines seen in one received segment.", GAUGE, "deepest pipeline" },
	[ML_ST_ACTIVE] = { "mailless_sessions_active", "", "Open sessions.", GAUGE,
		"active sessions" },
	[ML_ST_LOG_DROPPED] = { "mailless_log_lines_dropped_total", "",
		"Session log lines dropped by the per-second budget.", COUNTER,
		"log lines dropped" },
	[ML_ST_EVENTS_LOST] = { "mailless_events_lost_total", "",
		"Kernel engine events the ring buffer could not hold; each was recovered "
		"from the session map.", COUNTER, "ring events lost" },
	[ML_ST_MSG_DROPS] = { "mailless_kernel_msg_drops_total", "",
		"Kernel engine: messages sk_msg could not empty and dropped with SK_DROP, "
		"which ends the session's output (expected 0).", COUNTER, "sk_msg drops" },
	[ML_ST_SNDBUF_FULL] = { "mailless_kernel_sndbuf_full_total", "",
		"Kernel engine: segments whose replies would not have fit the socket's "
		"send buffer whole; each session ended with 421 too many unread replies.",
		COUNTER, "send buffer full" },
	[ML_ST_SESSIONS_MAP] = { "mailless_kernel_session_map_entries", "",
		"Kernel engine: entries in the session map (open sessions and orphaned "
		"sockets still closing); its capacity is max-sessions + 4096.",
		GAUGE, "session map entries" },
#undef SESS
#undef CMD
#undef REP
};

/* The XDP guard's counters, enum gd_stat order, then the responder's
 * (--engine xdp), enum xr_stat order. */
#define XR(k) [GD_ST__MAX + XR_ST_##k]
static const struct {
	const char *metric, *label, *help, *row, *json;
} xdef[GD_ST__MAX + XR_ST__MAX] = {
	[GD_ST_PACKETS] = { "mailless_xdp_packets_total", "",
		"TCP packets to a served port seen by the XDP guard.", "xdp packets", "packets" },
	[GD_ST_SYN_PASSED] = { "mailless_xdp_syn_passed_total", "",
		"SYNs the XDP guard passed within the per-source rate limit.", "xdp SYNs passed",
		"syn_passed" },
	[GD_ST_DROP_RATE] = { "mailless_xdp_dropped_total", "reason=\"rate\"",
		"Packets the XDP guard dropped, by reason.", "xdp dropped: rate", "drop_rate" },
	[GD_ST_DROP_DENY] = { "mailless_xdp_dropped_total", "reason=\"deny\"",
		"Packets the XDP guard dropped, by reason.", "xdp dropped: deny", "drop_deny" },
	[GD_ST_ALLOWED] = { "mailless_xdp_allowed_total", "",
		"Packets the XDP guard passed because their source is on the allow list.",
		"xdp passed: allow", "allowed" },
#define XRH "Engine xdp: TCP segments to a served port the XDP responder handled, by what it did."
#define XRE "Engine xdp: flow events of the XDP responder, by kind."
#define XRD "Engine xdp: segments the XDP responder dropped, by reason."
	XR(PACKETS) = { "mailless_xdp_responder_packets_total", "",
		"Engine xdp: TCP packets to a served port the XDP responder saw.",
		"xdp responder packets", "responder_packets" },
	XR(SYN_ACKS) = { "mailless_xdp_responder_segments_total", "kind=\"syn_ack\"", XRH,
		"xdp responder SYN-ACKs", "responder_syn_acks" },
	XR(BAD_COOKIE) = { "mailless_xdp_responder_dropped_total", "reason=\"bad_cookie\"",
		XRD,
		"xdp responder drop: cookie", "responder_bad_cookie" },
	XR(BAD_SEGMENT) = { "mailless_xdp_responder_dropped_total", "reason=\"malformed\"",
		XRD,
		"xdp responder drop: malformed", "responder_bad_segment" },
	XR(GREETINGS) = { "mailless_xdp_responder_handshakes_total", "",
		"Engine xdp: handshakes the XDP responder completed (the greeting queued).",
		"xdp responder handshakes", "responder_greetings" },
	XR(SEGMENTS) = { "mailless_xdp_responder_segments_total", "kind=\"data\"", XRH,
		"xdp responder segments", "responder_segments" },
	XR(RESENT) = { "mailless_xdp_responder_resent_octets_total", "",
		"Engine xdp: reply octets the XDP responder sent again.",
		"xdp responder octets resent", "responder_resent" },
	XR(OUT_OF_ORDER) = { "mailless_xdp_responder_events_total", "event=\"out_of_order\"",
		XRE,
		"xdp responder out of order", "responder_out_of_order" },
	XR(QUEUE_FULL) = { "mailless_xdp_responder_events_total", "event=\"queue_full\"",
		XRE,
		"xdp responder queue full", "responder_queue_full" },
	XR(NO_ROOM) = { "mailless_xdp_responder_events_total", "event=\"no_room\"",
		XRE,
		"xdp responder no room", "responder_no_room" },
	XR(STATE_FULL) = { "mailless_xdp_responder_events_total", "event=\"state_full\"",
		XRE,
		"xdp responder state full", "responder_state_full" },
	XR(RESETS) = { "mailless_xdp_responder_events_total", "event=\"reset\"",
		XRE,
		"xdp responder resets", "responder_resets" },
	XR(PEER_FIN) = { "mailless_xdp_responder_events_total", "event=\"peer_fin\"",
		XRE,
		"xdp responder client FINs", "responder_peer_fin" },
	XR(GREET_RESENT) = { "mailless_xdp_responder_events_total", "event=\"greeting_resent\"",
		XRE,
		"xdp responder greetings resent", "responder_greet_resent" },
	XR(BUSY) = { "mailless_xdp_responder_dropped_total", "reason=\"busy\"",
		XRD,
		"xdp responder drop: flow busy", "responder_busy" },
#undef XRH
#undef XRE
#undef XRD
};
#undef XR

/* How many of xdef x holds. */
static int xdp_n(const struct ml_xdp_counters *x)
{
	return x->responder ? GD_ST__MAX + XR_ST__MAX : GD_ST__MAX;
}

static void xdp_prometheus(FILE *f, const struct ml_xdp_counters *x)
{
	const char *last = "";
	int k;

	for (k = 0; k < xdp_n(x); k++) {
		if (strcmp(xdef[k].metric, last))
			fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", xdef[k].metric,
				xdef[k].help, xdef[k].metric);
		last = xdef[k].metric;
		if (xdef[k].label[0])
			fprintf(f, "%s{%s} %llu\n", xdef[k].metric, xdef[k].label,
				(unsigned long long)x->v[k]);
		else
			fprintf(f, "%s %llu\n", xdef[k].metric, (unsigned long long)x->v[k]);
	}
}

int ml_stats_add_percpu(int fd, struct ml_counters *c)
{
	int ncpu = libbpf_num_possible_cpus(), i, k;
	struct ml_stats *per;
	__u32 zero = 0;

	if (ncpu <= 0)
		return -EINVAL;
	per = calloc(ncpu, sizeof(*per));
	if (!per)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &zero, per)) {
		free(per);
		return -errno;
	}
	for (i = 0; i < ncpu; i++) {
		const uint64_t *v = (const uint64_t *)&per[i];

		for (k = 0; k < ML_ST__MAX; k++) {
			if (k == ML_ST_PIPELINE_MAX)
				c->v[k] = v[k] > c->v[k] ? v[k] : c->v[k];
			else
				c->v[k] += v[k];
		}
	}
	free(per);
	return 0;
}

int ml_stats_add_ctl(int fd, struct ml_counters *c)
{
	struct ml_counters ctl;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(fd, &zero, &ctl))
		return -errno;
	ml_stats_merge(c, &ctl);
	return 0;
}

void ml_stats_merge(struct ml_counters *into, const struct ml_counters *from)
{
	int k;

	for (k = 0; k < ML_ST__MAX; k++) {
		if (k == ML_ST_PIPELINE_MAX)
			into->v[k] = from->v[k] > into->v[k] ? from->v[k] : into->v[k];
		else
			into->v[k] += from->v[k];
	}
}

void ml_stats_prometheus(FILE *f, const struct ml_counters *c, const struct ml_build *b)
{
	const char *last = "";
	int k;

	for (k = 0; k < ML_ST__MAX; k++) {
		if (strcmp(def[k].metric, last)) {
			fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", def[k].metric, def[k].help,
				def[k].metric, def[k].type == GAUGE ? "gauge" : "counter");
			last = def[k].metric;
		}
		if (def[k].label[0])
			fprintf(f, "%s{%s} %llu\n", def[k].metric, def[k].label,
				(unsigned long long)c->v[k]);
		else
			fprintf(f, "%s %llu\n", def[k].metric, (unsigned long long)c->v[k]);
	}
	fprintf(f, "# HELP mailless_build_info Version, engine and dialect of the running mailless.\n"
		"# TYPE mailless_build_info gauge\n"
		"mailless_build_info{version=\"%s\",engine=\"%s\",dialect=\"%s\"} 1\n",
		ML_VERSION, b->engine, b->dialect);
	if (b->xdp)
		xdp_prometheus(f, b->xdp);
}

void ml_stats_json(FILE *f, const struct ml_counters *c, const struct ml_build *b)
{
	static const char *const names[ML_ST__MAX] = {
#define ML_STAT_NAME(e, n) [ML_ST_##e] = #n,
		ML_STATS(ML_STAT_NAME)
#undef ML_STAT_NAME
	};
	int k;

	fprintf(f, "{\"version\":\"%s\",\"engine\":\"%s\",\"dialect\":\"%s\",\"hostname\":",
		ML_VERSION, b->engine, b->dialect);
	ml_json_str(f, b->hostname);
	fprintf(f, ",\"counters\":{");
	for (k = 0; k < ML_ST__MAX; k++)
		fprintf(f, "%s\"%s\":%llu", k ? "," : "", names[k], (unsigned long long)c->v[k]);
	fprintf(f, "}");
	if (b->xdp) {
		fprintf(f, ",\"xdp\":{");
		for (k = 0; k < xdp_n(b->xdp); k++)
			fprintf(f, "%s\"%s\":%llu", k ? "," : "", xdef[k].json,
				(unsigned long long)b->xdp->v[k]);
		fprintf(f, "}");
	}
	fprintf(f, "}\n");
}

void ml_stats_table(FILE *f, const struct ml_counters *c, const struct ml_counters *prev,
		    double secs, const struct ml_build *b)
{
	int k;

	fprintf(f, "mailless %s, engine %s, dialect %s, hostname %s\n", ML_VERSION, b->engine,
		b->dialect, b->hostname);
	for (k = 0; k < ML_ST__MAX; k++) {
		fprintf(f, "  %-28s %14llu", def[k].row, (unsigned long long)c->v[k]);
		if (prev && secs > 0 && def[k].type == COUNTER)
			fprintf(f, " %12.1f/s", (double)(c->v[k] - prev->v[k]) / secs);
		fputc('\n', f);
	}
	for (k = 0; b->xdp && k < xdp_n(b->xdp); k++) {
		fprintf(f, "  %-28s %14llu", xdef[k].row, (unsigned long long)b->xdp->v[k]);
		if (prev && secs > 0 && b->xdp_prev)
			fprintf(f, " %12.1f/s", (double)(b->xdp->v[k] - b->xdp_prev->v[k]) / secs);
		fputc('\n', f);
	}
}

static volatile sig_atomic_t watch_stop;

static void on_int(int sig)
{
	(void)sig;
	watch_stop = 1;
}

/* Element key of the array map pinned as dir/name, into value. */
static int lookup_pinned(const char *dir, const char *name, __u32 key, void *value)
{
	int fd = ml_pinned_fd(dir, name), ret;

	if (fd < 0)
		return fd;
	ret = bpf_map_lookup_elem(fd, &key, value) ? -errno : 0;
	close(fd);
	return ret;
}

static int read_pinned(const char *dir, struct ml_counters *c, struct ml_build *b,
		       char *host, size_t hostlen)
{
	struct ml_info inf = {};
	struct ml_config cfg;
	struct ml_control ctl = {};
	int fd, ret;

	memset(c, 0, sizeof(*c));
	fd = ml_pinned_fd(dir, "stats_ctl");
	if (fd < 0)
		return -ENOENT;
	ret = ml_stats_add_ctl(fd, c);
	close(fd);
	if (ret)
		return ret;
	fd = ml_pinned_fd(dir, "stats");
	if (fd >= 0) {
		ret = ml_stats_add_percpu(fd, c);
		close(fd);
		if (ret)
			return ret;
	}
	lookup_pinned(dir, "info", 0, &inf);
	lookup_pinned(dir, "control", 0, &ctl);
	b->engine = ml_info_engine(inf.engine);
	b->dialect = "rcpt";
	snprintf(host, hostlen, "%s", inf.hostname);
	if (!lookup_pinned(dir, "config", ctl.active & 1, &cfg)) {
		b->dialect = ml_dialect_name(cfg.dialect);
		snprintf(host, hostlen, "%s", cfg.hostname);
	}
	b->hostname = host;
	return 0;
}

/* The guard's pinned counters into *x; b->xdp points at them if present.
 * The responder's dialogue counters add to c. */
static void read_pinned_xdp(const char *dir, struct ml_build *b, struct ml_xdp_counters *x,
			    struct ml_counters *c)
{
	b->xdp = ml_guard_counters_pinned(dir, x) ? NULL : x;
	if (b->xdp && x->responder)
		ml_stats_merge(c, &x->dialog);
}

int ml_stats_cmd(const char *dir, int json, int prom, unsigned int watch)
{
	struct ml_counters now, prev;
	struct ml_xdp_counters xnow, xprev;
	struct ml_build b = { 0 };
	char host[ML_HOST_MAX];
	struct timespec t0, t1;
	int ret;

	ret = read_pinned(dir, &now, &b, host, sizeof(host));
	if (ret) {
		if (json) {
			char msg[PATH_MAX + 64];

			snprintf(msg, sizeof(msg), "no mailless counters pinned at %s", dir);
			printf("{\"error\":");
			ml_json_str(stdout, msg);
			printf("}\n");
		} else
			log_err("no mailless counters pinned at %s: is `mailless run` running "
			    "(with --pin-dir %s)? ", dir, dir);
		return 1;
	}
	read_pinned_xdp(dir, &b, &xnow, &now);
	if (!watch) {
		if (json)
			ml_stats_json(stdout, &now, &b);
		else if (prom)
			ml_stats_prometheus(stdout, &now, &b);
		else
			ml_stats_table(stdout, &now, NULL, 0, &b);
		return 0;
	}
	signal(SIGINT, on_int);
	signal(SIGTERM, on_int);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!watch_stop) {
		double secs;

		prev = now;
		xprev = xnow;
		b.xdp_prev = b.xdp ? &xprev : NULL;
		sleep(watch);
		if (watch_stop)
			break;
		if (read_pinned(dir, &now, &b, host, sizeof(host))) {
			log_err("the counters at %s are gone: mailless stopped", dir);
			return 1;
		}
		read_pinned_xdp(dir, &b, &xnow, &now);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
		t0 = t1;
		if (json) {
			ml_stats_json(stdout, &now, &b);
		} else {
			printf("\n");
			ml_stats_table(stdout, &now, &prev, secs, &b);
		}
		fflush(stdout);
	}
	return 0;
}

/* mailless(8)'s METRICS: each family's name, type, help and label values as
 * man(7) .TP paragraphs, from the Prometheus text of zero counters (the
 * guard's and the responder's included), so that the page names exactly what the endpoint serves. */
void ml_stats_man(FILE *f)
{
	static const struct ml_counters zero;
	static const struct ml_xdp_counters xzero = { .responder = 1 };
	struct ml_build b = { .engine = "kernel", .dialect = "rcpt", .hostname = "",
			      .xdp = &xzero };
	char *text = NULL, *line, *save = NULL, help[512] = "", name[128] = "", type[16];
	char key[64], val[128], para[2048] = "";
	size_t len = 0, n = 0;
	int nlabels = 0;
	FILE *m = open_memstream(&text, &len);

	if (!m)
		return;
	ml_stats_prometheus(m, &zero, &b);
	fclose(m);
	line = strtok_r(text, "\n", &save);
	for (;;) {
		const char *lb = line ? strchr(line, '{') : NULL;

		if (!line || sscanf(line, "# TYPE %127s %15s", name, type) == 2) {
			if (para[0]) {	/* the family before is complete */
				if (n < sizeof(para) - 1)
					strcat(para, ")");
				ml_roff(f, para, 0);
				para[0] = 0;
			}
			if (!line)
				break;
			fprintf(f, ".TP\n.B %s\n", name);
			n = snprintf(para, sizeof(para), "%s (%s", help, type);
			nlabels = 0;
		} else if (sscanf(line, "# HELP %127s %511[^\n]", name, help) == 2) {
			;
		} else if (lb && strcmp(name, "mailless_build_info") && n < sizeof(para) &&
			   sscanf(lb, "{%63[^=]=\"%127[^\"]\"", key, val) == 2) {
			/* the first label's values (build_info's are the run's own) */
			if (nlabels++)
				n += snprintf(para + n, sizeof(para) - n, ", %s", val);
			else
				n += snprintf(para + n, sizeof(para) - n, "; %s: %s", key, val);
		}
		line = strtok_r(NULL, "\n", &save);
	}
	free(text);
}

const char *ml_info_engine(__u32 engine)
{
	return engine == ML_INFO_ENGINE_USER ? "user" : engine == ML_INFO_ENGINE_XDP ? "xdp" :
	       "kernel";
}
