// SPDX-License-Identifier: GPL-2.0
/*
 * fuzz_proto.c - include/proto.h (the line framer and verb classifier both
 * engines run) against a reference model written here from the rules alone:
 * proto.h's header comment and README's "What a client sees" table.
 *
 *   LF ends a line; a CR right before it is stripped, a lone CR is ordinary;
 *   a line over 512 octets, terminator included, is TOOLONG;
 *   over 65536 octets without LF is FLOOD, once, then nothing;
 *   the verb is the first four octets, any case, followed by a space or the
 *   line's end; QUIT only with nothing but spaces after it.
 *
 * Input: byte 0 picks the dialect (bit 0), whether the stream is the rest
 * repeated past 70000 octets (bit 7: reaches FLOOD), and how many cut points
 * (bits 1-3) follow as bytes 1..k. At each cut point the parser state is
 * copied to a fresh struct, as the kernel engine keeps it in socket storage
 * between segments: the verbs, arguments and summary must not change.
 * Checked per line: verb, reply opcode and its code, argument (octets,
 * length, total), and invariants (arg_len <= ML_ARG_MAX, summary lengths,
 * counters).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "fuzz_proto: " __VA_ARGS__); \
	fprintf(stderr, " (%s:%d: %s)\n", __FILE__, __LINE__, #c); abort(); } } while (0)

#define STREAM_MAX	(70000 + 4096)

/* ---- the reference model ------------------------------------------------ */

struct ref {
	size_t len;
	int flooded;
	/* the last completed line */
	size_t arg_total, arg_len;
	uint8_t arg[ML_ARG_MAX];
	char word[4];			/* upper-cased first four octets */
	__u32 packed;			/* the same, packed as the octets came */
	size_t content;
	uint8_t line[ML_PENDING_MAX + 1];	/* the current line's octets */
};

static int up(int c) { return c >= 'a' && c <= 'z' ? c - 32 : c; }

static __u32 ref_verb(struct ref *r)
{
	static const struct { const char *w; __u32 v; } verbs[] = {
		{ "HELO", ML_V_HELO }, { "EHLO", ML_V_EHLO }, { "MAIL", ML_V_MAIL },
		{ "RCPT", ML_V_RCPT }, { "DATA", ML_V_DATA }, { "RSET", ML_V_RSET },
		{ "NOOP", ML_V_NOOP }, { "QUIT", ML_V_QUIT },
	};
	size_t n = r->len, i;

	if (n > 0 && r->line[n - 1] == '\r')
		n--;				/* CR before LF: stripped */
	r->content = n;
	r->arg_total = n > 5 ? n - 5 : 0;
	r->arg_len = r->arg_total < ML_ARG_MAX ? r->arg_total : ML_ARG_MAX;
	memcpy(r->arg, r->line + 5, r->arg_len);
	r->packed = 0;
	for (i = 0; i < 4; i++) {
		r->word[i] = i < r->len ? up(r->line[i]) : 0;
		if (i < r->len)
			r->packed = r->packed << 8 | (__u8)r->word[i];
	}
	if (r->len + 1 > 512)
		return ML_V_TOOLONG;
	if (n == 0)
		return ML_V_EMPTY;
	if (n < 4 || (n > 4 && r->line[4] != ' '))
		return ML_V_OTHER;
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (memcmp(r->word, verbs[i].w, 4))
			continue;
		if (verbs[i].v == ML_V_QUIT) {
			size_t j;

			for (j = 4; j < n; j++)
				if (r->line[j] != ' ')
					return ML_V_OTHER;
		}
		return verbs[i].v;
	}
	return ML_V_OTHER;
}

static __u32 ref_feed(struct ref *r, uint8_t c)
{
	__u32 v;

	if (r->flooded)
		return ML_V_NONE;
	if (c == '\n') {
		v = ref_verb(r);
		r->len = 0;
		return v;
	}
	if (r->len == ML_PENDING_MAX) {	/* the 65537th octet without LF */
		r->flooded = 1;
		return ML_V_FLOOD;
	}
	r->line[r->len++] = c;
	return ML_V_NONE;
}

/* README's table: the reply to each verb in each dialect. */
static __u32 ref_op(__u32 dialect, __u32 v)
{
	if (v == ML_V_QUIT)
		return ML_OP_QUIT;
	if (v == ML_V_TOOLONG)
		return ML_OP_TOOLONG;
	if (v == ML_V_FLOOD)
		return ML_OP_FLOOD;
	if (dialect == ML_DIALECT_RFC7504)
		return ML_OP_REJECT;
	switch (v) {
	case ML_V_HELO: return ML_OP_HELO;
	case ML_V_EHLO: return ML_OP_EHLO;
	case ML_V_MAIL: case ML_V_RSET: case ML_V_NOOP: return ML_OP_OK;
	case ML_V_DATA: return ML_OP_NORCPT;
	default: return ML_OP_REJECT;
	}
}

/* The same table's reply codes: one per reply, EHLO's two lines too. */
static __u32 ref_code(__u32 dialect, __u32 v)
{
	if (v == ML_V_QUIT)
		return 221;
	if (v == ML_V_TOOLONG)
		return 500;
	if (v == ML_V_FLOOD)
		return 421;
	if (dialect == ML_DIALECT_RFC7504)
		return 521;
	switch (v) {
	case ML_V_HELO: case ML_V_EHLO: case ML_V_MAIL: case ML_V_RSET: case ML_V_NOOP:
		return 250;
	case ML_V_DATA: return 554;
	default: return 521;
	}
}

/* ---- the harness ---------------------------------------------------------- */

static struct ref ref;
static uint8_t stream[STREAM_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ml_parser p, q;
	struct ml_summary m;
	size_t cuts[8], ncut = 0, ci = 0, n, i, from_len = 0, from_total = 0;
	size_t rcpt_len = 0, rcpt_total = 0, nrcpt = 0, ncmds = 0, end;
	uint8_t from[ML_ARG_MAX] = { 0 }, rcpt[ML_ARG_MAX] = { 0 };
	__u32 dialect, verbs = 0, nflood = 0;
	int repeat;

	if (size < 1)
		return 0;
	dialect = data[0] & 1 ? ML_DIALECT_RFC7504 : ML_DIALECT_RCPT;
	repeat = data[0] & 0x80;
	ncut = (data[0] >> 1) & 7;
	if (size < 1 + ncut)
		return 0;
	for (i = 0; i < ncut; i++)
		cuts[i] = data[1 + i];
	data += 1 + ncut;
	size -= 1 + ncut;
	if (size > sizeof(stream))
		size = sizeof(stream);
	n = size;
	memcpy(stream, data, size);
	/* Repeated, a stream with a LF has lines shorter than one input: only
	 * a stream without one can reach FLOOD, so only that is repeated. */
	if (repeat && size > 0 && !memchr(data, '\n', size))
		while (n <= ML_PENDING_MAX && n + size <= sizeof(stream)) {
			memcpy(stream + n, data, size);
			n += size;
		}
	/* cut points: sorted offsets spread over the stream */
	for (i = 0; i < ncut; i++)
		cuts[i] = n ? cuts[i] * n / 256 : 0;
	for (i = 1; i < ncut; i++) {
		size_t j = i, t = cuts[i];

		for (; j > 0 && cuts[j - 1] > t; j--)
			cuts[j] = cuts[j - 1];
		cuts[j] = t;
	}

	memset(&p, 0xa5, sizeof(p));	/* init must not depend on old contents */
	ml_parser_init(&p);
	memset(&m, 0, sizeof(m));
	memset(&ref, 0, offsetof(struct ref, line));	/* the line buffer needs no zeroes */
	ref.len = 0;
	ref.flooded = 0;
	for (i = 0; i < n; i++) {
		__u32 v, rv, op;

		while (ci < ncut && cuts[ci] == i) {	/* a segment boundary */
			memcpy(&q, &p, sizeof(q));
			memset(&p, 0x5a, sizeof(p));
			memcpy(&p, &q, sizeof(p));
			ci++;
		}
		v = ml_feed(&p, stream[i]);
		rv = ref_feed(&ref, stream[i]);
		CHECK(v == rv, "octet %zu (0x%02x): ml_feed says %u, the rules say %u",
		      i, stream[i], v, rv);
		CHECK(v < ML_V__MAX, "verb %u out of range", v);
		if (v == ML_V_NONE)
			continue;
		op = ml_reply_op(dialect, v);
		CHECK(op == ref_op(dialect, v), "dialect %u verb %u: reply op %u, want %u",
		      dialect, v, op, ref_op(dialect, v));
		CHECK(op < ML_OP__MAX && op != ML_OP_END, "bad op %u", op);
		CHECK(op <= ML_OP_KERNEL_MAX, "op %u is not one the verdict may write", op);
		CHECK(ml_op_code(dialect, op) == ref_code(dialect, v),
		      "dialect %u verb %u: code %u, want %u", dialect, v, ml_op_code(dialect, op),
		      ref_code(dialect, v));
		CHECK(ml_op_closes(op) == (v == ML_V_QUIT || v == ML_V_FLOOD),
		      "verb %u: closes %d", v, ml_op_closes(op));
		if (v == ML_V_FLOOD) {
			nflood++;
			CHECK(ml_verb_stat(v) == -1, "FLOOD counted as a command");
			/* the engines do not add FLOOD to the summary; after it the
			 * parser ignores everything: check a few octets, then stop */
			for (end = i + 65 < n ? i + 65 : n, i++; i < end; i++)
				CHECK(ml_feed(&p, stream[i]) == ML_V_NONE, "octet after FLOOD");
			break;
		}
		CHECK(ml_verb_stat(v) >= 0 && ml_verb_stat(v) < ML_ST__MAX, "verb %u stat", v);
		CHECK(p.arg_len <= ML_ARG_MAX, "arg_len %u > ML_ARG_MAX", p.arg_len);
		CHECK(p.arg_len == ref.arg_len && p.arg_total == ref.arg_total,
		      "line ending at %zu: arg %u/%u, want %zu/%zu", i, p.arg_len,
		      p.arg_total, ref.arg_len, ref.arg_total);
		CHECK(!memcmp(p.arg, ref.arg, ref.arg_len), "line ending at %zu: argument differs", i);
		CHECK(p.arg_word == ref.packed, "arg_word %08x, want %08x", p.arg_word, ref.packed);
		CHECK(p.len == 0 && p.pending_cr == 0, "parser not reset after a line");
		ml_summary_add(&m, &p, v);
		/* the summary as the rules say: the last MAIL, the first RCPT (an
		 * over-long MAIL or RCPT line counts as one for the envelope) */
		ncmds++;
		verbs |= 1u << v;
		if (v == ML_V_MAIL || (v == ML_V_TOOLONG && !memcmp(ref.word, "MAIL", 4))) {
			memcpy(from, ref.arg, ref.arg_len);
			from_len = ref.arg_len;
			from_total = ref.arg_total;
		} else if (v == ML_V_RCPT || (v == ML_V_TOOLONG && !memcmp(ref.word, "RCPT", 4))) {
			if (nrcpt++ == 0) {
				memcpy(rcpt, ref.arg, ref.arg_len);
				rcpt_len = ref.arg_len;
				rcpt_total = ref.arg_total;
			}
		}
		CHECK(m.ncmds == ncmds && m.verbs == verbs && m.nrcpt == nrcpt, "summary counts");
		CHECK(m.from_len == from_len && m.from_total == from_total &&
		      !memcmp(m.from, from, from_len), "summary from");
		CHECK(m.rcpt_len == rcpt_len && m.rcpt_total == rcpt_total &&
		      !memcmp(m.rcpt, rcpt, rcpt_len), "summary rcpt");
		CHECK(m.from_len <= ML_ARG_MAX && m.rcpt_len <= ML_ARG_MAX, "summary lengths");
	}
	CHECK(nflood <= 1, "FLOOD returned %u times", nflood);
	CHECK(!!p.flooded == (nflood == 1), "flooded %u, FLOOD returned %u times", p.flooded, nflood);
	CHECK(p.flooded || p.len == ref.len, "pending %u octets, want %zu", p.len, ref.len);
	return 0;
}
