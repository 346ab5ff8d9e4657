// SPDX-License-Identifier: GPL-2.0
/*
 * unit_bucket - include/bucket.h (the XDP guard's SYN token bucket) with
 * controlled time. Prints "ok - ..." / "not ok - ..." lines.
 */
#include <stdio.h>

#include "bucket.h"

#define MS 1000000ULL
#define S  1000000000ULL

static int failures;

static void check(const char *name, long got, long want)
{
	if (got == want) {
		printf("ok - bucket: %s\n", name);
	} else {
		printf("not ok - bucket: %s: want %ld, got %ld\n", name, want, got);
		failures++;
	}
}

/* SYNs that pass when n arrive at time t, all at once. */
static long take_n(struct ml_bucket *b, unsigned long long t, int n, unsigned rate,
		   unsigned burst)
{
	long ok = 0;

	while (n--)
		ok += ml_bucket_take(b, t, rate, burst);
	return ok;
}

int main(void)
{
	struct ml_bucket b;
	unsigned long long t0 = 1000 * S;	/* any start: time is relative */

	/* A new source: the first SYN initialises the bucket and passes. */
	ml_bucket_init(&b, t0, 20);
	check("burst: 19 more of 50 at once pass after the first", take_n(&b, t0, 50, 10, 20), 19);
	check("empty: nothing passes at the same instant", take_n(&b, t0, 5, 10, 20), 0);
	check("refill: 99 ms at 10/s is less than a token", take_n(&b, t0 + 99 * MS, 3, 10, 20), 0);
	check("refill: 100 ms later one token (the 99 ms count)", take_n(&b, t0 + 100 * MS, 3, 10, 20), 1);
	check("refill: 1 s later 10 tokens", take_n(&b, t0 + 1100 * MS, 30, 10, 20), 10);
	check("cap: an hour later only burst tokens", take_n(&b, t0 + 3600 * S, 100, 10, 20), 20);
	check("clock backwards refills nothing", take_n(&b, t0, 5, 10, 20), 0);

	/* Steady rate: one SYN every 100 ms at 10/s never drops. */
	{
		long ok = 0;
		int i;

		ml_bucket_init(&b, t0, 20);
		for (i = 1; i <= 1000; i++)
			ok += ml_bucket_take(&b, t0 + i * 100 * MS, 10, 20);
		check("steady 10/s for 100 s: all pass", ok, 1000);
		ok = 0;
		for (i = 1; i <= 1000; i++)
			ok += ml_bucket_take(&b, t0 + 100 * S + i * 50 * MS, 10, 20);
		/* 20/s offered for 50 s against 10/s, plus the 19 tokens the
		 * steady phase left (it started at 19 and took each refill). */
		check("20/s offered for 50 s at 10/s: 500 + the 19 banked pass", ok, 519);
	}
	/* Slow rate (1/s, burst 1) and fractions: 0.5 s + 0.5 s make a token. */
	ml_bucket_init(&b, t0, 1);
	check("rate 1 burst 1: second SYN at once drops", ml_bucket_take(&b, t0, 1, 1), 0);
	check("rate 1: half a second is not enough", ml_bucket_take(&b, t0 + S / 2, 1, 1), 0);
	check("rate 1: two halves make a token", ml_bucket_take(&b, t0 + S, 1, 1), 1);
	/* Extremes: no overflow at the largest rate and burst. */
	ml_bucket_init(&b, t0, 0xffffffffu);
	check("huge burst and rate: passes", ml_bucket_take(&b, t0 + 10 * S, 0xffffffffu, 0xffffffffu), 1);
	check("huge: tokens capped at burst", (long)(b.tokens / ML_BUCKET_SCALE), 0xffffffffL - 1);
	check("rate 0 means no limit", take_n(&b, t0, 1000, 0, 1), 1000);
	printf("# unit_bucket: %d failed\n", failures);
	return failures ? 1 : 0;
}
