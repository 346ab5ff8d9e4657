// SPDX-License-Identifier: GPL-2.0
/* replies.c - the text of every reply mailless sends, rendered from the
 * settings into the struct ml_config both engines answer from. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "replies.h"


/*
 * Every reply mailless sends, in both dialects; "%s" is the host name.
 *
 * The host name is the first word after the code in the greeting (RFC 1846
 * 4.1, RFC 5321 4.3.1) and in BUSY, which is sent in its place. rcpt: EHLO
 * advertises ENHANCEDSTATUSCODES (RFC 2034), and every reply but the
 * greeting, HELO, EHLO and BUSY has an RFC 3463 enhanced status code between
 * the reply code and the host name. They are sent after HELO too, as Postfix
 * does: to a client that did not ask they are text after the code, and a
 * bounce classifier reads them either way (docs/design.md). rfc7504 answers
 * EHLO 521 like everything else, so it negotiates no extension and sends no
 * enhanced code; its HELO, EHLO, OK and NORCPT are never sent (only
 * REJECT, QUIT, TOOLONG and the 421s are), but rendered as valid lines.
 *
 * A reply is counted once whatever its lines (EHLO: one 250); what the
 * engines budget is its length. The longest, PIPELINE with a 255-octet
 * name, is 315 octets: under ML_REPLY_MAX.
 */
static const struct {
	const char *rcpt, *rfc7504;
} reply_fmt[ML_OP__MAX] = {
	[ML_OP_GREET]	 = { "220 %s ESMTP mailless: this host does not accept mail\r\n",
			     "521 %s does not accept mail (5.3.2)\r\n" },
	[ML_OP_HELO]	 = { "250 %s\r\n",
			     "250 %s\r\n" },
	[ML_OP_EHLO]	 = { "250-%s\r\n250 ENHANCEDSTATUSCODES\r\n",
			     "250 %s\r\n" },
	[ML_OP_OK]	 = { "250 2.0.0 %s OK\r\n",
			     "250 %s OK\r\n" },
	[ML_OP_REJECT]	 = { "521 5.3.2 %s does not accept mail\r\n",
			     "521 %s does not accept mail (5.3.2)\r\n" },
	[ML_OP_NORCPT]	 = { "554 5.3.2 %s no valid recipients\r\n",
			     "554 %s no valid recipients\r\n" },
	[ML_OP_QUIT]	 = { "221 2.0.0 %s closing connection\r\n",
			     "221 %s closing connection\r\n" },
	[ML_OP_TOOLONG]	 = { "500 5.5.2 %s line too long\r\n",
			     "500 %s line too long\r\n" },
	[ML_OP_FLOOD]	 = { "421 4.5.2 %s no line end in 64 KiB, closing connection\r\n",
			     "421 %s no line end in 64 KiB, closing connection\r\n" },
	[ML_OP_PIPELINE] = { "421 4.5.0 %s too many pipelined commands, closing connection\r\n",
			     "421 %s too many pipelined commands, closing connection\r\n" },
	[ML_OP_BACKLOG]	 = { "421 4.5.0 %s too many unread replies, closing connection\r\n",
			     "421 %s too many unread replies, closing connection\r\n" },
	[ML_OP_ERROR]	 = { "421 4.3.0 %s internal error, closing connection\r\n",
			     "421 %s internal error, closing connection\r\n" },
	[ML_OP_TIMEOUT]	 = { "421 4.4.2 %s idle timeout, closing connection\r\n",
			     "421 %s idle timeout, closing connection\r\n" },
	[ML_OP_MAXTIME]	 = { "421 4.4.2 %s session time limit, closing connection\r\n",
			     "421 %s session time limit, closing connection\r\n" },
	[ML_OP_BUSY]	 = { "421 %s too many sessions, try again later\r\n",
			     "421 %s too many sessions, try again later\r\n" },
	[ML_OP_SHUTDOWN] = { "421 4.3.2 %s shutting down, closing connection\r\n",
			     "421 %s shutting down, closing connection\r\n" },
};

void ml_render(struct ml_config *cfg, const struct ml_opts *o)
{
	int rfc7504 = o->dialect == ML_DIALECT_RFC7504;
	unsigned int op;

	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->hostname, sizeof(cfg->hostname), "%s", o->hostname);
	cfg->dialect = o->dialect;
	for (op = ML_OP_GREET; op < ML_OP__MAX; op++) {
		struct ml_reply *r = &cfg->replies[op];
		int n = snprintf(r->text, sizeof(r->text),
				 rfc7504 ? reply_fmt[op].rfc7504 : reply_fmt[op].rcpt, o->hostname);

		r->len = n < (int)sizeof(r->text) ? n : (int)sizeof(r->text) - 1;
	}
}
