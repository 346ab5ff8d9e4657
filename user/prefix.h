/* SPDX-License-Identifier: GPL-2.0 */
#ifndef ML_PREFIX_H
#define ML_PREFIX_H

#include <stddef.h>

#define ML_PREFIXES_MAX	4096	/* allow/deny written inline; more: a file */

/* One prefix: ADDR[/LEN], IPv4 or IPv6; a bare address is a host. Sets
 * *v6, the address (network order, 4 or 16 bytes used) and the length. */
int ml_prefix_parse(const char *s, int *v6, unsigned char addr[16], unsigned int *len);
/* Validate a list of prefixes (commas or spaces) and append all of it to
 * the space-separated list in buf, or none of it: -EINVAL, why in err. */
int ml_prefixes_add(char *buf, size_t size, const char *key, const char *val,
		    char *err, size_t errlen);

/* Each prefix of a file (one or more a line, commas or spaces, '#'
 * comments) to each(ctx, token, "PATH:LINE"), until one returns nonzero,
 * which is returned. A file that cannot be read: -errno, said why (what
 * names the setting, e.g. "allow-file"). */
int ml_prefix_file(const char *path, const char *what,
		   int (*each)(void *ctx, const char *tok, const char *where), void *ctx);

#endif
