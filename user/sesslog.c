// SPDX-License-Identifier: GPL-2.0
/*
 * sesslog.c - one line per session: who, to whom, what was said, how it
 * ended; in the rcpt dialect also the envelope, which tells the admin who
 * misaddresses mail to this host. Client-supplied octets are escaped and
 * bounded (ML_ARG_MAX, with the original length shown), and a per-second
 * budget caps the volume under a flood; what it drops is counted
 * (mailless_log_lines_dropped_total).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "proto.h"
#include "sesslog.h"

static const char *const reason_name[] = {
	[ML_ST_CLOSE_QUIT] = "quit",
	[ML_ST_CLOSE_CLIENT] = "client_closed",
	[ML_ST_CLOSE_IDLE] = "idle_timeout",
	[ML_ST_CLOSE_MAXTIME] = "session_time_limit",
	[ML_ST_CLOSE_FLOOD] = "line_flood",
	[ML_ST_CLOSE_BUSY] = "busy",
	[ML_ST_CLOSE_BUSY_SOURCE] = "busy_source",
	[ML_ST_CLOSE_RESET] = "reset",
	[ML_ST_CLOSE_BACKLOG] = "unread_backlog",
	[ML_ST_CLOSE_ERROR] = "internal_error",
	[ML_ST_CLOSE_SHUTDOWN] = "shutdown",
};

/* Token bucket: at most opts.log_rate lines a second, bursts of as many. */
int ml_sesslog_allow(struct ml_sesslog *lg)
{
	uint64_t now = ml_now_ms();
	double rate = lg->o->log_rate;

	if (!lg->o->log_rate || ml_log_level < ML_INFO)
		return 0;
	lg->tokens += (now - lg->refill_ms) * rate / 1000.0;
	if (lg->tokens > rate)
		lg->tokens = rate;
	lg->refill_ms = now;
	if (lg->tokens >= 1) {
		lg->tokens -= 1;
		return 1;
	}
	return -1;
}

/* An address as the log shows it: IPv4 for v4-mapped, [v6] otherwise. */
void ml_sesslog_addr(char *buf, size_t len, const __u32 addr[4], unsigned int port)
{
	char a[INET6_ADDRSTRLEN];

	if (addr[0] == 0 && addr[1] == 0 && addr[2] == htonl(0xffff)) {
		inet_ntop(AF_INET, &addr[3], a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, port);
	} else {
		inet_ntop(AF_INET6, addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, port);
	}
}

void ml_sesslog_sockaddr(char *buf, size_t len, const struct sockaddr_storage *ss)
{
	__u32 a[4] = { 0, 0, htonl(0xffff), 0 };
	unsigned int port;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		a[3] = in->sin_addr.s_addr;
		port = ntohs(in->sin_port);
	} else {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		memcpy(a, &in6->sin6_addr, 16);
		port = ntohs(in6->sin6_port);
	}
	ml_sesslog_addr(buf, len, a, port);
}

/* Escape an envelope argument: drop "FROM:"/"TO:", keep printable ASCII,
 * write everything else (and '"', '\\') as \xHH; note what was cut.
 * outlen >= 1 (tests/fuzz/fuzz_escape.c checks what this promises). */
void ml_sesslog_escape(char *out, size_t outlen, const __u8 *s, __u32 n, __u32 total)
{
	size_t o = 0;
	__u32 i = 0;

	if (n >= 5 && !strncasecmp((const char *)s, "FROM:", 5))
		i = 5;
	else if (n >= 3 && !strncasecmp((const char *)s, "TO:", 3))
		i = 3;
	for (; i < n && o + 5 < outlen; i++) {
		__u8 c = s[i];

		if (c > 0x20 && c < 0x7f && c != '"' && c != '\\')
			out[o++] = c;
		else
			o += snprintf(out + o, outlen - o, "\\x%02x", c);
	}
	out[o] = 0;
	if (total > n)
		snprintf(out + o, outlen - o, "...(%u octets)", total);
}

void ml_sesslog_print(const struct ml_sesslog *lg, const char *client, const char *local,
		      const struct ml_summary *m, int reason, uint64_t dur_ms)
{
	static const char *const verb[] = {
		[ML_V_HELO] = "HELO", [ML_V_EHLO] = "EHLO", [ML_V_MAIL] = "MAIL",
		[ML_V_RCPT] = "RCPT", [ML_V_DATA] = "DATA", [ML_V_RSET] = "RSET",
		[ML_V_NOOP] = "NOOP", [ML_V_QUIT] = "QUIT", [ML_V_OTHER] = "other",
		[ML_V_EMPTY] = "empty", [ML_V_TOOLONG] = "toolong",
	};
	char verbs[128] = "", env[4 * ML_ARG_MAX * 2 + 128] = "", from[4 * ML_ARG_MAX + 32],
	     rcpt[4 * ML_ARG_MAX + 32];
	char line[1024];
	int v;

	for (v = ML_V_HELO; v <= ML_V_TOOLONG; v++)
		if (m->verbs & (1u << v))
			snprintf(verbs + strlen(verbs), sizeof(verbs) - strlen(verbs), "%s%s",
				 verbs[0] ? "," : "", verb[v]);
	if (lg->o->dialect == ML_DIALECT_RCPT && (m->verbs & (1u << ML_V_MAIL) ||
						     m->nrcpt)) {
		ml_sesslog_escape(from, sizeof(from), m->from, m->from_len, m->from_total);
		ml_sesslog_escape(rcpt, sizeof(rcpt), m->rcpt, m->rcpt_len, m->rcpt_total);
		snprintf(env, sizeof(env), " from=\"%s\" rcpt=\"%s\" rcpts=%u", from, rcpt,
			 m->nrcpt);
	}
	snprintf(line, sizeof(line), "session client=%s local=%s dialect=%s duration_ms=%llu "
		 "verbs=%s commands=%u replies=%u%s end=%s", client, local,
		 ml_dialect_name(lg->o->dialect), (unsigned long long)dur_ms,
		 verbs[0] ? verbs : "-", m->ncmds, m->nreplies, env,
		 reason > 0 && reason <= ML_ST_CLOSE_SHUTDOWN ? reason_name[reason] : "reset");
	if (lg->o->log_syslog)
		syslog(LOG_MAIL | LOG_INFO, "%s", line);
	else
		log_info("%s", line);
}

void ml_sesslog_flow(const struct ml_sesslog *lg, const __u32 laddr[4], unsigned int lport,
		     const __u32 raddr[4], unsigned int rport, const struct ml_summary *m,
		     int reason, uint64_t dur_ms)
{
	char client[64], local[64];

	ml_sesslog_addr(client, sizeof(client), raddr, rport);
	ml_sesslog_addr(local, sizeof(local), laddr, lport);
	ml_sesslog_print(lg, client, local, m, reason, dur_ms);
}
