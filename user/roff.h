/* SPDX-License-Identifier: GPL-2.0 */
#ifndef ML_ROFF_H
#define ML_ROFF_H

#include <stdio.h>

/* text as roff input lines of at most 78 characters: a backslash is \e, a
 * hyphen \- where hyphens is set (option names), a line that would start
 * with a dot or a quote gets \& first. Ends with a newline. */
void ml_roff(FILE *f, const char *text, int hyphens);

#endif
