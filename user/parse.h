/* SPDX-License-Identifier: GPL-2.0 */
#ifndef ML_PARSE_H
#define ML_PARSE_H

#include <stddef.h>

/* A whole number in [min, max], or -EINVAL with why in err. */
int ml_parse_uint(const char *key, const char *val, unsigned int min,
		  unsigned int max, unsigned int *out, char *err, size_t errlen);
/* One of n names: *out gets its index, or -EINVAL lists the names in err. */
int ml_parse_choice(const char *key, const char *val, const char *const *names, int n,
		    int *out, char *err, size_t errlen);

#endif
