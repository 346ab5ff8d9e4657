// SPDX-License-Identifier: GPL-2.0
/*
 * fuzz_escape.c - the session log's envelope escaper (user/sesslog.c
 * ml_sesslog_escape): client octets go into a log line, so what comes out
 * must be safe whatever came in.
 *
 * Input: byte 0 the output size (0: the size the log line uses, 4 *
 * ML_ARG_MAX + 32; else 1-255), bytes 1-2 how many octets the client sent
 * beyond those given (total - n), the rest the argument. The output buffer
 * is a heap block of exactly that size (ASan sees any write past it).
 * Checked against a reference written from the comment's rules:
 *  - NUL-terminated inside the buffer; printable ASCII only; no '"'; every
 *    '\' starts a \xHH;
 *  - it is the escaped argument ("FROM:"/"TO:" dropped, any case) cut at an
 *    escape's boundary, then the note "...(TOTAL octets)" if octets were
 *    cut, itself cut to fit; unescaped, that prefix gives back the octets;
 *  - it is cut only when the buffer has no room: with room, all of it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sesslog.h"

#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "fuzz_escape: " __VA_ARGS__); \
	fprintf(stderr, " (%s:%d: %s)\n", __FILE__, __LINE__, #c); abort(); } } while (0)

#define ARG_MAX		4096
#define FULL		(4 * ML_ARG_MAX + 32)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char e[ARG_MAX * 4 + 1];
	static size_t bound[ARG_MAX + 1];	/* bound[u]: length of e after u units */
	char note[64] = "", *out;
	size_t outlen, n, skip = 0, units = 0, el = 0, L, nl, k, u;
	__u32 total;
	int found = 0;

	if (size < 3)
		return 0;
	outlen = data[0] ? data[0] : FULL;
	total = (__u32)(data[1] | data[2] << 8);
	data += 3;
	n = size - 3 > ARG_MAX ? ARG_MAX : size - 3;
	total += n;

	/* the reference */
	if (n >= 5 && !strncasecmp((const char *)data, "FROM:", 5))
		skip = 5;
	else if (n >= 3 && !strncasecmp((const char *)data, "TO:", 3))
		skip = 3;
	bound[0] = 0;
	for (u = skip; u < n; u++) {
		uint8_t c = data[u];

		if (c > 0x20 && c < 0x7f && c != '"' && c != '\\')
			e[el++] = c;
		else
			el += sprintf(e + el, "\\x%02x", c);
		bound[++units] = el;
	}
	e[el] = 0;
	if (total > n)
		snprintf(note, sizeof(note), "...(%u octets)", total);
	nl = strlen(note);

	out = malloc(outlen);
	if (!out)
		abort();
	memset(out, 'Z', outlen);
	ml_sesslog_escape(out, outlen, data, n, total);

	CHECK(memchr(out, 0, outlen), "no NUL inside the %zu-octet buffer", outlen);
	L = strlen(out);
	for (k = 0; k < L; k++) {
		CHECK(out[k] >= 0x20 && out[k] < 0x7f, "octet 0x%02x at %zu", (uint8_t)out[k], k);
		CHECK(out[k] != '"', "unescaped '\"' at %zu", k);
	}
	/* out = e[0 .. bound[u]] + note[0 .. L - bound[u]], for some u where
	 * the escaper had to stop (all units, or no room for one more) */
	for (u = 0; u <= units && !found; u++) {
		size_t b = bound[u];

		if (b > L || L - b > nl)
			continue;
		if (memcmp(out, e, b) || memcmp(out + b, note, L - b))
			continue;
		if (u < units && b + 5 < outlen)
			continue;	/* it stopped with room left: not this split */
		if (L - b < nl && L + 1 < outlen)
			continue;	/* the note was cut with room left */
		found = 1;
	}
	CHECK(found, "output '%s' (size %zu) is no cut of '%s' + '%s'", out, outlen, e, note);
	/* every backslash is an escape (the escaped text never holds a bare
	 * one), up to where the note begins */
	for (k = 0; k + 1 < L; k++)
		if (out[k] == '\\')
			CHECK(out[k + 1] == 'x', "backslash not followed by x at %zu", k);
	if (outlen >= el + nl + 6)
		CHECK(L == el + nl, "cut although the buffer had room (%zu of %zu)", L, el + nl);
	free(out);
	return 0;
}
