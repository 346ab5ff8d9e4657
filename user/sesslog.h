/* SPDX-License-Identifier: GPL-2.0 */
#ifndef ML_SESSLOG_H
#define ML_SESSLOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mailless.h"

struct ml_opts;

/* The session log: its settings and its per-second budget. */
struct ml_sesslog {
	const struct ml_opts *o;	/* log_rate, log_syslog, dialect */
	double tokens;
	uint64_t refill_ms;
};

/* May one more session line go out now? 1: yes; 0: session lines are off;
 * -1: over the budget (the caller counts it as a dropped line). */
int ml_sesslog_allow(struct ml_sesslog *lg);
void ml_sesslog_addr(char *buf, size_t len, const __u32 addr[4], unsigned int port);
void ml_sesslog_sockaddr(char *buf, size_t len, const struct sockaddr_storage *ss);
/* An envelope argument (n of total octets) as the log line shows it:
 * printable ASCII, \xHH for the rest, "...(T octets)" if cut; outlen >= 1. */
void ml_sesslog_escape(char *out, size_t outlen, const __u8 *s, __u32 n, __u32 total);
void ml_sesslog_print(const struct ml_sesslog *lg, const char *client, const char *local,
		      const struct ml_summary *m, int reason, uint64_t dur_ms);
/* The same from BPF's view of a flow: addresses IPv6 or v4-mapped, ports
 * in host order (what the kernel engine's and the XDP responder's records
 * carry). */
void ml_sesslog_flow(const struct ml_sesslog *lg, const __u32 laddr[4], unsigned int lport,
		     const __u32 raddr[4], unsigned int rport, const struct ml_summary *m,
		     int reason, uint64_t dur_ms);

#endif
