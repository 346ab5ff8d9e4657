// SPDX-License-Identifier: GPL-2.0
/* parse.c - the settings' value parsers, with messages that say what was
 * wanted; shared by the controller's and the guard's keys. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

int ml_parse_uint(const char *key, const char *val, unsigned int min,
		  unsigned int max, unsigned int *out, char *err, size_t errlen)
{
	unsigned long v;
	char *end;

	/* Plain decimal digits: strtoul alone would take " 5", "+5", and
	 * "-18446744073709551611" (as 5). */
	errno = 0;
	v = strtoul(val, &end, 10);
	if (errno || *end || !isdigit((unsigned char)val[0]) || v < min || v > max) {
		snprintf(err, errlen, "bad value '%s' for %s (want a whole number %u-%u)",
			 val, key, min, max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int ml_parse_choice(const char *key, const char *val, const char *const *names, int n,
		    int *out, char *err, size_t errlen)
{
	size_t o;
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(val, names[i])) {
			*out = i;
			return 0;
		}
	o = snprintf(err, errlen, "bad %s '%s' (want", key, val);
	for (i = 0; i < n && o < errlen; i++)
		o += snprintf(err + o, errlen - o, "%s %s", i == 0 ? "" : i == n - 1 ? " or" : ",",
			      names[i]);
	if (o < errlen)
		snprintf(err + o, errlen - o, ")");
	return -EINVAL;
}

