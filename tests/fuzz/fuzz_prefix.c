// SPDX-License-Identifier: GPL-2.0
/*
 * fuzz_prefix.c - the guard's prefix lists (user/prefix.c, through the
 * option table's "allow" and "deny" keys: ml_opts_set).
 *
 * Input: byte 0 bit 0 picks allow or deny; the rest is split at NUL into
 * values given one after another (each appends to the list). Checked:
 *  - an accepted value appends exactly its tokens (split at ',', ' ', TAB),
 *    space-separated, to the list, which stays NUL-terminated and under
 *    ML_PREFIXES_MAX; a refused one leaves the list as it was;
 *  - every accepted token is ADDR[/LEN] by a reference written here: ADDR
 *    an IPv4 dotted quad (four decimals 0-255, no leading zeros) or an
 *    address inet_ntop/inet_pton round-trip as IPv6, LEN plain decimal
 *    digits, at most 32 or 128;
 *  - the list re-parses: given back as one value to a fresh list, it is
 *    accepted and comes out the same.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "fuzz_prefix: " __VA_ARGS__); \
	fprintf(stderr, " (%s:%d: %s)\n", __FILE__, __LINE__, #c); abort(); } } while (0)

static struct ml_opts o, o2;

static int ref_ipv4(const char *s, size_t n)
{
	int parts = 0;
	size_t i = 0;

	while (parts < 4) {
		size_t start = i;
		unsigned int v = 0;

		while (i < n && isdigit((unsigned char)s[i]) && i - start < 4)
			v = v * 10 + (s[i++] - '0');
		if (i == start || i - start > 3 || v > 255 || (i - start > 1 && s[start] == '0'))
			return 0;
		parts++;
		if (parts < 4) {
			if (i >= n || s[i] != '.')
				return 0;
			i++;
		}
	}
	return i == n;
}

/* Returns the family's maximum length (32, 128) or 0 if not a prefix. */
static int ref_prefix(const char *tok)
{
	const char *slash = strchr(tok, '/');
	size_t alen = slash ? (size_t)(slash - tok) : strlen(tok);
	char a[64];
	unsigned char bin[16], bin2[16];
	char text[INET6_ADDRSTRLEN];
	int max;

	if (alen >= sizeof(a) || strlen(tok) >= 64)
		return 0;
	memcpy(a, tok, alen);
	a[alen] = 0;
	if (ref_ipv4(a, alen)) {
		max = 32;
	} else {
		if (inet_pton(AF_INET6, a, bin) != 1)
			return 0;
		if (!inet_ntop(AF_INET6, bin, text, sizeof(text)) ||
		    inet_pton(AF_INET6, text, bin2) != 1 || memcmp(bin, bin2, 16))
			return 0;
		max = 128;
	}
	if (slash) {
		const char *d = slash + 1;
		unsigned long v = 0;

		if (!*d)
			return 0;
		for (; *d; d++) {
			if (!isdigit((unsigned char)*d))
				return 0;
			v = v * 10 + (*d - '0');
			if (v > 1000)
				return 0;
		}
		if (v > (unsigned long)max)
			return 0;
	}
	return max;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	ml_log_level = -1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256], before[ML_PREFIXES_MAX], val[ML_PREFIXES_MAX + 64], want[ML_PREFIXES_MAX * 2];
	const char *key;
	char *list;
	size_t i = 1;

	if (size < 1)
		return 0;
	key = data[0] & 1 ? "deny" : "allow";
	ml_opts_defaults(&o);
	list = data[0] & 1 ? o.guard.deny : o.guard.allow;
	while (i < size) {
		size_t vl = strnlen((const char *)data + i, size - i);
		char tmp[sizeof(val)], *tok, *save = NULL;
		int r;

		if (vl >= sizeof(val))
			vl = sizeof(val) - 1;
		memcpy(val, data + i, vl);
		val[vl] = 0;
		i += vl + 1;
		memcpy(before, list, sizeof(before));
		r = ml_opts_set(&o, key, val, err, sizeof(err));
		CHECK(memchr(list, 0, ML_PREFIXES_MAX), "list not NUL-terminated");
		CHECK(strlen(list) < ML_PREFIXES_MAX, "list too long");
		if (r) {
			CHECK(r == -EINVAL, "returned %d", r);
			CHECK(memchr(err, 0, sizeof(err)) && err[0], "error message");
			CHECK(!strcmp(list, before), "a refused value changed the list");
			continue;
		}
		/* the expected list: before, then each token, space-separated */
		snprintf(want, sizeof(want), "%s", before);
		snprintf(tmp, sizeof(tmp), "%s", val);
		for (tok = strtok_r(tmp, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
			CHECK(ref_prefix(tok), "accepted '%s', which is no ADDR[/LEN]", tok);
			snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%s",
				 want[0] ? " " : "", tok);
		}
		CHECK(!strcmp(list, want), "list '%s', want '%s'", list, want);
	}
	/* the whole list, given back at once, is accepted and the same */
	if (list[0]) {
		ml_opts_defaults(&o2);
		CHECK(!ml_opts_set(&o2, key, list, err, sizeof(err)), "re-parse: %s", err);
		CHECK(!strcmp(data[0] & 1 ? o2.guard.deny : o2.guard.allow, list), "re-parse differs");
	}
	return 0;
}
