/* SPDX-License-Identifier: GPL-2.0 */
#ifndef ML_SESSLOG_H
#define ML_SESSLOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mailless.h"

struct ml_server;

/* May one more session line go out now? Counts the ones that may not. */
int ml_sesslog_allow(struct ml_server *srv);
void ml_sesslog_addr(char *buf, size_t len, const __u32 addr[4], unsigned int port);
void ml_sesslog_sockaddr(char *buf, size_t len, const struct sockaddr_storage *ss);
/* An envelope argument (n of total octets) as the log line shows it:
 * printable ASCII, \xHH for the rest, "...(T octets)" if cut; outlen >= 1. */
void ml_sesslog_escape(char *out, size_t outlen, const __u8 *s, __u32 n, __u32 total);
void ml_sesslog_print(struct ml_server *srv, const char *client, const char *local,
		      const struct ml_summary *m, int reason, uint64_t dur_ms);

#endif
