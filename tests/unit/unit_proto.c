// SPDX-License-Identifier: GPL-2.0
/*
 * unit_proto - table tests of include/proto.h, the framing and classification
 * both engines run. Prints "ok - ..." / "not ok - ..." lines.
 */
#include <stdio.h>
#include <string.h>

#include "proto.h"

static int failures, cases;

/* Feed s, return the verbs the parser completed as a string of letters. */
static void run(const char *s, size_t n, char *out)
{
	static const char letter[ML_V__MAX] = {
		[ML_V_HELO] = 'H', [ML_V_EHLO] = 'E', [ML_V_MAIL] = 'M', [ML_V_RCPT] = 'R',
		[ML_V_DATA] = 'D', [ML_V_RSET] = 'S', [ML_V_NOOP] = 'N', [ML_V_QUIT] = 'Q',
		[ML_V_OTHER] = 'o', [ML_V_EMPTY] = 'e', [ML_V_TOOLONG] = 'L', [ML_V_FLOOD] = 'F',
	};
	struct ml_parser p;
	size_t i;

	ml_parser_init(&p);
	for (i = 0; i < n; i++) {
		__u32 v = ml_feed(&p, (__u8)s[i]);

		if (v != ML_V_NONE)
			*out++ = letter[v];
	}
	*out = 0;
}

static void check(const char *name, const char *input, size_t n, const char *want)
{
	char got[256];

	run(input, n ? n : strlen(input), got);
	cases++;
	if (!strcmp(got, want)) {
		printf("ok - proto: %s\n", name);
	} else {
		printf("not ok - proto: %s: want \"%s\", got \"%s\"\n", name, want, got);
		failures++;
	}
}

static void check_op(const char *name, __u32 dialect, __u32 verb, __u32 want)
{
	__u32 got = ml_reply_op(dialect, verb);

	cases++;
	if (got == want) {
		printf("ok - reply: %s\n", name);
	} else {
		printf("not ok - reply: %s: want op %u, got %u\n", name, want, got);
		failures++;
	}
}

int main(void)
{
	static char big[70000];

	check("verbs", "HELO a\r\nEHLO a\r\nMAIL FROM:<>\r\nRCPT TO:<a@b>\r\nDATA\r\n"
	      "RSET\r\nNOOP\r\nQUIT\r\n", 0, "HEMRDSNQ");
	check("case-insensitive", "helo a\r\nQuIt\r\n", 0, "HQ");
	check("bare LF ends a line", "NOOP\nQUIT\n", 0, "NQ");
	check("empty lines", "\r\n\n", 0, "ee");
	check("verb needs a delimiter", "NOOPX\r\nMAILFROM:<>\r\n", 0, "oo");
	check("short lines", "a\r\nQUI\r\nQU\r\n", 0, "ooo");
	check("QUIT with trailing spaces", "QUIT   \r\n", 0, "Q");
	check("QUIT with an argument", "QUIT now\r\nQUITX\r\n", 0, "oo");
	check("lone CR is a byte", "NO\rOP\r\nQUIT\r\r\nQUIT \r \r\n", 0, "ooo");
	check("CR at the delimiter", "NOOP\rx\r\nNOOP\r\n", 0, "oN");
	check("NUL bytes", "NO\0OP\r\nNOOP \0\r\n", 15, "oN");
	check("split nothing", "NOOP", 0, "");
	memset(big, 'a', 510);
	memcpy(big + 510, "\r\n", 2);
	check("512 octets with CRLF", big, 512, "o");
	memset(big, 'a', 511);
	memcpy(big + 511, "\r\n", 2);
	check("513 octets with CRLF is too long", big, 513, "L");
	memset(big, 'a', 511);
	big[511] = '\n';
	check("512 octets with bare LF", big, 512, "o");
	memcpy(big, "NOOP ", 5);
	memset(big + 5, 'x', 600);
	memcpy(big + 605, "\r\nNOOP\r\n", 8);
	check("too long, then the session goes on", big, 613, "LN");
	memset(big, 'x', sizeof(big));
	check("65536 octets without LF is not yet a flood", big, 65536, "");
	check("65537 octets without LF is a flood, once", big, 65537, "F");
	check("nothing after a flood", big, sizeof(big), "F");

	check_op("rcpt HELO", ML_DIALECT_RCPT, ML_V_HELO, ML_OP_HELO);
	check_op("rcpt EHLO", ML_DIALECT_RCPT, ML_V_EHLO, ML_OP_EHLO);
	check_op("rcpt MAIL", ML_DIALECT_RCPT, ML_V_MAIL, ML_OP_OK);
	check_op("rcpt RCPT", ML_DIALECT_RCPT, ML_V_RCPT, ML_OP_REJECT);
	check_op("rcpt DATA", ML_DIALECT_RCPT, ML_V_DATA, ML_OP_NORCPT);
	check_op("rcpt RSET", ML_DIALECT_RCPT, ML_V_RSET, ML_OP_OK);
	check_op("rcpt NOOP", ML_DIALECT_RCPT, ML_V_NOOP, ML_OP_OK);
	check_op("rcpt other", ML_DIALECT_RCPT, ML_V_OTHER, ML_OP_REJECT);
	check_op("rcpt empty", ML_DIALECT_RCPT, ML_V_EMPTY, ML_OP_REJECT);
	check_op("rcpt QUIT", ML_DIALECT_RCPT, ML_V_QUIT, ML_OP_QUIT);
	check_op("rfc7504 EHLO", ML_DIALECT_RFC7504, ML_V_EHLO, ML_OP_REJECT);
	check_op("rfc7504 HELO", ML_DIALECT_RFC7504, ML_V_HELO, ML_OP_REJECT);
	check_op("rfc7504 MAIL", ML_DIALECT_RFC7504, ML_V_MAIL, ML_OP_REJECT);
	check_op("rfc7504 NOOP", ML_DIALECT_RFC7504, ML_V_NOOP, ML_OP_REJECT);
	check_op("rfc7504 QUIT", ML_DIALECT_RFC7504, ML_V_QUIT, ML_OP_QUIT);
	check_op("rfc7504 too long", ML_DIALECT_RFC7504, ML_V_TOOLONG, ML_OP_TOOLONG);
	check_op("rfc7504 flood", ML_DIALECT_RFC7504, ML_V_FLOOD, ML_OP_FLOOD);
	cases++;
	if (ml_op_closes(ML_OP_QUIT) && ml_op_closes(ML_OP_FLOOD) && !ml_op_closes(ML_OP_REJECT))
		printf("ok - closing replies\n");
	else
		printf("not ok - closing replies\n"), failures++;
	/* One reply each, counted under its code: EHLO's two lines are one 250. */
	cases++;
	if (ml_op_code(ML_DIALECT_RCPT, ML_OP_EHLO) == 250 &&
	    ml_op_code(ML_DIALECT_RCPT, ML_OP_HELO) == 250 &&
	    ml_op_code(ML_DIALECT_RCPT, ML_OP_GREET) == 220 &&
	    ml_op_code(ML_DIALECT_RFC7504, ML_OP_GREET) == 521 &&
	    ml_op_code(ML_DIALECT_RCPT, ML_OP_NORCPT) == 554 &&
	    ml_op_code(ML_DIALECT_RCPT, ML_OP_SHUTDOWN) == 421 && !ml_op_closes(ML_OP_EHLO))
		printf("ok - reply codes of the opcodes\n");
	else
		printf("not ok - reply codes of the opcodes\n"), failures++;
	/* The opcodes the verdict writes, with their flags, must not be an
	 * ASCII digit, the first octet of any reply line the controller
	 * writes itself (the controller's own opcodes are never written). */
	cases++;
	{
		int op, bad = 0;

		for (op = ML_OP_GREET; op <= ML_OP_KERNEL_MAX; op++) {
			int f;

			for (f = 0; f < 4; f++) {
				int b = op | (f & 1 ? ML_OP_GREET_FLAG : 0) | (f & 2 ? ML_OP_SLOT_FLAG : 0);

				bad |= (b >= '0' && b <= '9') || (b & ML_OP_MASK) != op;
			}
		}
		if (!bad && ML_OP__MAX - 1 <= ML_OP_MASK)
			printf("ok - opcode octets are never a digit\n");
		else
			printf("not ok - opcodes collide with reply text\n"), failures++;
	}
	return failures ? 1 : 0;
}
