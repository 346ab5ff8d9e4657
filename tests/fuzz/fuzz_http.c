// SPDX-License-Identifier: GPL-2.0
/*
 * fuzz_http.c - libFuzzer harness for ml_http_parse (user/http.c), the
 * /metrics request-head parser. Sources: this file and user/http.c.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Iuser \
 *         tests/fuzz/fuzz_http.c user/http.c -o fuzz_http
 *   ./fuzz_http -max_total_time=30 tests/fuzz/corpus/http
 *
 * Beyond "no crash, no out-of-bounds read" (the input is copied to a buffer
 * of exactly its size, so ASan sees one octet too far), it checks what the
 * endpoint relies on, and aborts if any fails:
 *   - DONE: method and path are NUL-terminated, non-empty, within their
 *     limits, and appear in the input; 0 < head_len <= len; the head ends
 *     with LF; parsing just the head gives the same answer; and so does
 *     parsing it with more octets after it (a pipelined body).
 *   - BAD and MORE: nothing is reported (method, path, head_len zero).
 *   - a prefix of a DONE input is never BAD, and a prefix of a BAD one is
 *     never DONE (the verdict does not flip as octets arrive).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static void check_done(const char *buf, size_t len, const struct ml_http_req *r)
{
	size_t ml = strnlen(r->method, sizeof(r->method));
	size_t pl = strnlen(r->path, sizeof(r->path));
	struct ml_http_req again;
	char *more;

	CHECK(ml > 0 && ml <= ML_HTTP_METHOD_MAX);
	CHECK(pl > 0 && pl <= ML_HTTP_PATH_MAX);
	CHECK(r->head_len > 0 && r->head_len <= len && buf[r->head_len - 1] == '\n');
	CHECK(memmem(buf, r->head_len, r->method, ml) && memmem(buf, r->head_len, r->path, pl));
	CHECK(ml_http_parse(buf, r->head_len, &again) == ML_HTTP_DONE);
	CHECK(!memcmp(&again, r, sizeof(again)));
	more = malloc(r->head_len + 7);
	CHECK(more);
	memcpy(more, buf, r->head_len);
	memcpy(more + r->head_len, "\0\r\n\r\nX", 6);
	CHECK(ml_http_parse(more, r->head_len + 6, &again) == ML_HTTP_DONE);
	CHECK(!memcmp(&again, r, sizeof(again)));
	free(more);
}

static void check_empty(const struct ml_http_req *r)
{
	static const struct ml_http_req zero;

	CHECK(!memcmp(r, &zero, sizeof(zero)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ml_http_req r, p;
	enum ml_http_state st, sp;
	char *buf = malloc(size ? size : 1);
	size_t cut;

	CHECK(buf);
	memcpy(buf, data, size);
	st = ml_http_parse(buf, size, &r);
	CHECK(st == ML_HTTP_DONE || st == ML_HTTP_MORE || st == ML_HTTP_BAD);
	if (st == ML_HTTP_DONE)
		check_done(buf, size, &r);
	else
		check_empty(&r);
	/* One prefix per input (cheap), chosen by the input's own first octet. */
	cut = size ? (size_t)data[0] % (size + 1) : 0;
	sp = ml_http_parse(buf, cut, &p);
	if (st == ML_HTTP_DONE)
		CHECK(sp != ML_HTTP_BAD);
	if (st == ML_HTTP_BAD)
		CHECK(sp != ML_HTTP_DONE);
	free(buf);
	return 0;
}
