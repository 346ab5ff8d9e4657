/* SPDX-License-Identifier: GPL-2.0 */
#ifndef ML_JSON_H
#define ML_JSON_H

#include <stddef.h>
#include <stdio.h>

/* Write s as a JSON string, quotes included: '"', '\\' and control octets
 * escaped, valid UTF-8 kept, every other octet written as U+FFFD. Paths and
 * names in `status -j` and `stats -j` come from the file system and the
 * pins, not from mailless: they may hold anything. At most max octets of s
 * are read (a fixed-size field need not be terminated). */
void ml_json_strn(FILE *f, const char *s, size_t max);
#define ml_json_str(f, s)	ml_json_strn((f), (s), (size_t)-1)

#endif
