/* SPDX-License-Identifier: GPL-2.0 */
/*
 * proto.h - the SMTP dialogue of mailless, written once.
 *
 * Pure, allocation-free, libc-free C: the sk_skb verdict program, the user
 * engine and the unit tests all include this file, so the kernel and the
 * fallback engine frame and classify lines by construction in the same way.
 *
 * Framing rules (RFC 5321 4.5.3.1.4, RFC 2920 3.2):
 *  - a line ends at LF; a CR right before the LF is stripped, a lone CR is an
 *    ordinary byte;
 *  - a line whose octets, terminator included, exceed ML_LINE_MAX (512) gets
 *    one 500 reply when it ends and the session goes on;
 *  - more than ML_PENDING_MAX octets without a line end is a flood: 421 and
 *    close;
 *  - the verb is the first four octets, case-insensitive, followed by a space
 *    or the end of the line; QUIT takes no argument (trailing spaces are
 *    allowed, "QUITX" and "QUIT now" are not QUIT).
 */
#ifndef MAILLESS_PROTO_H
#define MAILLESS_PROTO_H

#include "mailless.h"

#define ML_LINE_MAX	512u	/* octets per command line, CRLF included */
#define ML_PENDING_MAX	65536u	/* octets without a line end before 421 */

/* What a completed line (or the lack of one) turned out to be. */
enum ml_verb {
	ML_V_NONE = 0,	/* no line completed by this byte */
	ML_V_HELO,
	ML_V_EHLO,
	ML_V_MAIL,
	ML_V_RCPT,
	ML_V_DATA,
	ML_V_RSET,
	ML_V_NOOP,
	ML_V_QUIT,
	ML_V_OTHER,	/* unknown verb, bad delimiter, QUIT with arguments */
	ML_V_EMPTY,	/* an empty line */
	ML_V_TOOLONG,	/* a line over ML_LINE_MAX octets */
	ML_V_FLOOD,	/* over ML_PENDING_MAX octets and still no line end */
	ML_V__MAX,
};

#define ML_WORD(a, b, c, d) \
	(((__u32)(a) << 24) | ((__u32)(b) << 16) | ((__u32)(c) << 8) | (__u32)(d))

static inline void ml_parser_reset(struct ml_parser *p)
{
	p->len = 0;
	p->word = 0;
	p->delim_ok = 1;
	p->spaces_only = 1;
	p->pending_cr = 0;
}

static inline void ml_parser_init(struct ml_parser *p)
{
	ml_parser_reset(p);
	p->flooded = 0;
}

static inline __u32 ml_classify(const struct ml_parser *p)
{
	__u32 content = p->len - p->pending_cr;

	if (p->len + 1 > ML_LINE_MAX)
		return ML_V_TOOLONG;
	if (content == 0)
		return ML_V_EMPTY;
	if (content < 4 || !p->delim_ok)
		return ML_V_OTHER;
	switch (p->word) {
	case ML_WORD('H', 'E', 'L', 'O'): return ML_V_HELO;
	case ML_WORD('E', 'H', 'L', 'O'): return ML_V_EHLO;
	case ML_WORD('M', 'A', 'I', 'L'): return ML_V_MAIL;
	case ML_WORD('R', 'C', 'P', 'T'): return ML_V_RCPT;
	case ML_WORD('D', 'A', 'T', 'A'): return ML_V_DATA;
	case ML_WORD('R', 'S', 'E', 'T'): return ML_V_RSET;
	case ML_WORD('N', 'O', 'O', 'P'): return ML_V_NOOP;
	case ML_WORD('Q', 'U', 'I', 'T'):
		return p->spaces_only ? ML_V_QUIT : ML_V_OTHER;
	}
	return ML_V_OTHER;
}

/*
 * Feed one octet. Returns ML_V_NONE, or the verb of the line this octet
 * completed, or ML_V_FLOOD once (after which the parser ignores everything).
 */
static inline __u32 ml_feed(struct ml_parser *p, __u8 c)
{
	__u32 pos = p->len;
	__u32 verb;

	if (p->flooded)
		return ML_V_NONE;
	if (c == '\n') {
		__u32 content = pos - p->pending_cr;

		verb = ml_classify(p);
		p->arg_word = p->word;
		p->arg_total = content > 5 ? content - 5 : 0;
		p->arg_len = p->arg_total < ML_ARG_MAX ? p->arg_total : ML_ARG_MAX;
		ml_parser_reset(p);
		return verb;
	}
	if (pos >= 5 && pos - 5 < ML_ARG_MAX)
		p->arg[(pos - 5) & (ML_ARG_MAX - 1)] = c;
	/* The previous CR was not followed by LF: it is an ordinary octet. */
	if (p->pending_cr && pos >= 5) {
		if (pos == 5)
			p->delim_ok = 0;
		p->spaces_only = 0;
	}
	p->pending_cr = c == '\r';
	if (pos < 4) {
		if (c >= 'a' && c <= 'z')
			c -= 'a' - 'A';
		p->word = (p->word << 8) | c;
	} else if (c != ' ' && c != '\r') {
		if (pos == 4)
			p->delim_ok = 0;
		p->spaces_only = 0;
	}
	if (pos >= ML_PENDING_MAX) {
		p->flooded = 1;
		return ML_V_FLOOD;
	}
	p->len = pos + 1;
	return ML_V_NONE;
}

/* The reply a verb gets in a dialect (RFC 1846 / RFC 7504; README, "What a client sees"). */
static inline __u32 ml_reply_op(__u32 dialect, __u32 verb)
{
	switch (verb) {
	case ML_V_QUIT:		return ML_OP_QUIT;
	case ML_V_TOOLONG:	return ML_OP_TOOLONG;
	case ML_V_FLOOD:	return ML_OP_FLOOD;
	}
	if (dialect == ML_DIALECT_RFC7504)
		return ML_OP_REJECT;
	switch (verb) {
	case ML_V_HELO:		return ML_OP_HELO;
	case ML_V_EHLO:		return ML_OP_EHLO;	/* two lines, one reply */
	case ML_V_MAIL:
	case ML_V_RSET:
	case ML_V_NOOP:		return ML_OP_OK;
	case ML_V_DATA:		return ML_OP_NORCPT;
	}
	return ML_OP_REJECT;	/* RCPT, unknown verbs, empty lines */
}

/* After these replies the server closes the session. */
static inline int ml_op_closes(__u32 op)
{
	return op == ML_OP_QUIT || op == ML_OP_FLOOD || op == ML_OP_PIPELINE ||
	       op == ML_OP_BACKLOG;
}

/*
 * Account a completed line (verb from ml_feed) in the session summary. An
 * over-long MAIL or RCPT line is answered 500, but its envelope is logged
 * all the same (truncated): who sends 10 KB addresses is worth knowing.
 */
static inline void ml_summary_add(struct ml_summary *m, const struct ml_parser *p, __u32 verb)
{
	m->ncmds++;
	if (verb < 32)
		m->verbs |= 1u << verb;
	if (verb == ML_V_TOOLONG && p->arg_word == ML_WORD('M', 'A', 'I', 'L'))
		verb = ML_V_MAIL;
	else if (verb == ML_V_TOOLONG && p->arg_word == ML_WORD('R', 'C', 'P', 'T'))
		verb = ML_V_RCPT;
	if (verb == ML_V_MAIL) {
		__builtin_memcpy(m->from, p->arg, ML_ARG_MAX);
		m->from_len = p->arg_len;
		m->from_total = p->arg_total;
	} else if (verb == ML_V_RCPT && m->nrcpt++ == 0) {
		__builtin_memcpy(m->rcpt, p->arg, ML_ARG_MAX);
		m->rcpt_len = p->arg_len;
		m->rcpt_total = p->arg_total;
	}
}

/* The counter of a verb (ML_V_NONE and ML_V_FLOOD are no command). */
static inline int ml_verb_stat(__u32 verb)
{
	if (verb >= ML_V_HELO && verb <= ML_V_QUIT)
		return ML_ST_CMD_HELO + (int)(verb - ML_V_HELO);
	if (verb == ML_V_OTHER || verb == ML_V_EMPTY || verb == ML_V_TOOLONG)
		return ML_ST_CMD_OTHER;
	return -1;
}

/* The counter of a reply code, -1 for a code mailless never sends. */
static inline int ml_code_stat(__u32 code)
{
	switch (code) {
	case 220: return ML_ST_REPLY_220;
	case 221: return ML_ST_REPLY_221;
	case 250: return ML_ST_REPLY_250;
	case 421: return ML_ST_REPLY_421;
	case 500: return ML_ST_REPLY_500;
	case 521: return ML_ST_REPLY_521;
	case 554: return ML_ST_REPLY_554;
	}
	return -1;
}

/* The reply code of an opcode in a dialect. */
static inline __u32 ml_op_code(__u32 dialect, __u32 op)
{
	switch (op) {
	case ML_OP_GREET:	return dialect == ML_DIALECT_RFC7504 ? 521 : 220;
	case ML_OP_HELO:
	case ML_OP_EHLO:
	case ML_OP_OK:		return 250;
	case ML_OP_REJECT:	return 521;
	case ML_OP_NORCPT:	return 554;
	case ML_OP_QUIT:	return 221;
	case ML_OP_TOOLONG:	return 500;
	}
	return 421;	/* FLOOD, PIPELINE and the controller's own 421s */
}

#endif /* MAILLESS_PROTO_H */
