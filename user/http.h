/* SPDX-License-Identifier: GPL-2.0 */
#ifndef ML_HTTP_H
#define ML_HTTP_H

#include <stddef.h>

/*
 * The request-head parser of the /metrics endpoint: pure (no sockets, no
 * allocation, no global state), so that tests/fuzz/fuzz_http.c can feed it
 * any bytes. It reads what has arrived so far and says whether the head is
 * complete, still incomplete, or already bad.
 */
#define ML_HTTP_METHOD_MAX	15	/* longest method kept, octets */
#define ML_HTTP_PATH_MAX	255	/* longest path kept, octets */

enum ml_http_state {
	ML_HTTP_MORE = 0,	/* no end of head yet and nothing wrong so far */
	ML_HTTP_DONE = 1,	/* a well-formed request line and a complete head */
	ML_HTTP_BAD = -1,	/* the request line is malformed: answer 400 */
};

struct ml_http_req {
	char method[ML_HTTP_METHOD_MAX + 1];	/* NUL-terminated when DONE */
	char path[ML_HTTP_PATH_MAX + 1];	/* NUL-terminated when DONE */
	size_t head_len;	/* DONE: octets up to and including the blank line */
};

/* Parse buf[0..len). Any octets, including NUL, are allowed in buf; it
 * need not be NUL-terminated. */
enum ml_http_state ml_http_parse(const char *buf, size_t len, struct ml_http_req *r);

#endif
