// SPDX-License-Identifier: GPL-2.0
/* roff.c - text for the man pages that options.c and stats.c generate. */
#include <string.h>

#include "roff.h"

void ml_roff(FILE *f, const char *text, int hyphens)
{
	int col = 0;

	while (*text) {
		size_t w = strcspn(text, " "), n = 0, i;
		char word[1024];

		for (i = 0; i < w && n < sizeof(word) - 3; i++) {
			if (text[i] == '\\')
				word[n++] = '\\', word[n++] = 'e';
			else if (text[i] == '-' && hyphens)
				word[n++] = '\\', word[n++] = '-';
			else
				word[n++] = text[i];
		}
		word[n] = 0;
		if (col && col + 1 + (int)n > 78) {
			fputc('\n', f);
			col = 0;
		} else if (col) {
			fputc(' ', f);
			col++;
		}
		if (!col && (word[0] == '.' || word[0] == '\''))
			fputs("\\&", f), col += 2;
		fputs(word, f);
		col += n;
		text += w;
		while (*text == ' ')
			text++;
	}
	fputc('\n', f);
}
