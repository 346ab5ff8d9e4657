// SPDX-License-Identifier: GPL-2.0
/*
 * http.c - the request-head parser of the /metrics endpoint (http.h). Pure:
 * it looks at the octets that have arrived and nothing else.
 *
 *   request-line = method BLANKS path BLANKS "HTTP/1." DIGIT [BLANKS] [CR] LF,
 *                  at most LINE_MAX_OCTETS before the LF (BLANKS: SP/HTAB)
 *   method       = 1..15 token characters (RFC 9110 tchar)
 *   path         = 1..255 visible ASCII characters
 *   head         = request-line *(header-line) empty-line
 *
 * Header lines are not interpreted: the endpoint answers every request the
 * same way and closes. A request line is judged as soon as its LF arrives
 * (and before, if it holds a control character or grows past any valid
 * one), so junk such as a TLS hello is answered at once.
 */
#include <string.h>

#include "http.h"

/* The longest valid request line: method, path, version, and some blanks
 * and a CR; past that without a LF it cannot become valid. */
#define LINE_MAX_OCTETS	(ML_HTTP_METHOD_MAX + ML_HTTP_PATH_MAX + 8 + 64)

static int is_blank(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static int is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* One token of the request line: [*pos, end) past leading blanks. */
static size_t token(const unsigned char *s, size_t *pos, size_t end, const unsigned char **tok)
{
	size_t n = 0;

	while (*pos < end && is_blank(s[*pos]))
		(*pos)++;
	*tok = s + *pos;
	while (*pos < end && !is_blank(s[*pos])) {
		(*pos)++;
		n++;
	}
	return n;
}

static enum ml_http_state request_line(const unsigned char *s, size_t end,
				       struct ml_http_req *r)
{
	const unsigned char *m, *p, *v;
	size_t pos = 0, mlen, plen, vlen, i;

	if (end > LINE_MAX_OCTETS)
		return ML_HTTP_BAD;
	if (end && s[end - 1] == '\r')
		end--;
	mlen = token(s, &pos, end, &m);
	plen = token(s, &pos, end, &p);
	vlen = token(s, &pos, end, &v);
	while (pos < end && is_blank(s[pos]))
		pos++;
	if (pos != end || !mlen || mlen > ML_HTTP_METHOD_MAX || !plen ||
	    plen > ML_HTTP_PATH_MAX || vlen != 8 || memcmp(v, "HTTP/1.", 7) ||
	    v[7] < '0' || v[7] > '9')
		return ML_HTTP_BAD;
	for (i = 0; i < mlen; i++)
		if (!is_tchar(m[i]))
			return ML_HTTP_BAD;
	for (i = 0; i < plen; i++)
		if (p[i] < 0x21 || p[i] > 0x7e)
			return ML_HTTP_BAD;
	memcpy(r->method, m, mlen);
	r->method[mlen] = 0;
	memcpy(r->path, p, plen);
	r->path[plen] = 0;
	return ML_HTTP_DONE;
}

enum ml_http_state ml_http_parse(const char *buf, size_t len, struct ml_http_req *r)
{
	const unsigned char *s = (const unsigned char *)buf;
	const unsigned char *lf = len ? memchr(s, '\n', len) : NULL;
	size_t i, pos;

	memset(r, 0, sizeof(*r));
	if (!lf) {
		/* Still the request line: only printable octets, blanks and a
		 * final CR can turn out valid. */
		if (len > LINE_MAX_OCTETS)
			return ML_HTTP_BAD;
		for (i = 0; i < len; i++)
			if ((s[i] < 0x20 && !is_blank(s[i]) && !(s[i] == '\r' && i == len - 1)) ||
			    s[i] == 0x7f)
				return ML_HTTP_BAD;
		return ML_HTTP_MORE;
	}
	if (request_line(s, (size_t)(lf - s), r) != ML_HTTP_DONE) {
		memset(r, 0, sizeof(*r));
		return ML_HTTP_BAD;
	}
	/* Header lines up to the first empty one ("\n" or "\r\n"). */
	pos = (size_t)(lf - s) + 1;
	while (pos < len) {
		lf = memchr(s + pos, '\n', len - pos);
		if (!lf)
			break;
		i = (size_t)(lf - s);
		if (i == pos || (i == pos + 1 && s[pos] == '\r')) {
			r->head_len = i + 1;
			return ML_HTTP_DONE;
		}
		pos = i + 1;
	}
	/* Incomplete: what we kept is not valid until the head ends. */
	memset(r, 0, sizeof(*r));
	return ML_HTTP_MORE;
}
