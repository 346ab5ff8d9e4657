// SPDX-License-Identifier: GPL-2.0
/*
 * prefix.c - address prefixes as the guard's allow and deny lists take
 * them (ADDR[/LEN]); a leaf: the option table and the guard both use it.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "prefix.h"

int ml_prefix_parse(const char *s, int *v6, unsigned char addr[16], unsigned int *len)
{
	char a[64], *slash, *end;
	unsigned long l;

	if (strlen(s) >= sizeof(a))
		return -EINVAL;
	snprintf(a, sizeof(a), "%s", s);
	slash = strchr(a, '/');
	if (slash)
		*slash = 0;
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, a, addr) == 1)
		*v6 = 0;
	else if (inet_pton(AF_INET6, a, addr) == 1)
		*v6 = 1;
	else
		return -EINVAL;
	l = *v6 ? 128 : 32;
	if (slash) {
		errno = 0;
		l = strtoul(slash + 1, &end, 10);	/* digits only: not "+8", "-4294967288" */
		if (errno || *end || !isdigit((unsigned char)slash[1]) || l > (*v6 ? 128u : 32u))
			return -EINVAL;
	}
	*len = l;
	return 0;
}

int ml_prefixes_add(char *buf, size_t size, const char *key, const char *val,
		    char *err, size_t errlen)
{
	char tmp[ML_PREFIXES_MAX], *tok, *save = NULL;
	unsigned char addr[16];
	unsigned int len;
	int v6;

	if (strlen(val) >= sizeof(tmp) || strlen(buf) + strlen(val) + 2 >= size) {
		snprintf(err, errlen, "%s: too many prefixes inline (at most %d characters "
			 "in all; put long lists in %s-file)", key, ML_PREFIXES_MAX - 1, key);
		return -EINVAL;
	}
	/* All of the value or none of it: check every prefix, then append. */
	snprintf(tmp, sizeof(tmp), "%s", val);
	for (tok = strtok_r(tmp, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save))
		if (ml_prefix_parse(tok, &v6, addr, &len)) {
			snprintf(err, errlen, "bad prefix '%s' for %s (want ADDR[/LEN], e.g. "
				 "192.0.2.0/24 or 2001:db8::/32)", tok, key);
			return -EINVAL;
		}
	snprintf(tmp, sizeof(tmp), "%s", val);
	for (tok = strtok_r(tmp, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save))
		snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", buf[0] ? " " : "", tok);
	return 0;
}

int ml_prefix_file(const char *path, const char *what,
		   int (*each)(void *ctx, const char *tok, const char *where), void *ctx)
{
	char line[1024], where[PATH_MAX + 32], *tok, *save, *hash;
	int lineno = 0, r = 0;
	FILE *f = fopen(path, "re");

	if (!f) {
		r = -errno;
		log_err("cannot read %s %s: %s", what, path, strerror(errno));
		return r;
	}
	while (!r && fgets(line, sizeof(line), f)) {
		lineno++;
		if ((hash = strchr(line, '#')))
			*hash = 0;
		snprintf(where, sizeof(where), "%s:%d", path, lineno);
		save = NULL;
		for (tok = strtok_r(line, ", \t\r\n", &save); tok && !r;
		     tok = strtok_r(NULL, ", \t\r\n", &save))
			r = each(ctx, tok, where);
	}
	fclose(f);
	return r;
}
