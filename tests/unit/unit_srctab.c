// SPDX-License-Identifier: GPL-2.0
/*
 * unit_srctab - user/srctab.c, the open sessions per source behind
 * max-sessions-per-source: grouping (/32, /64, v4-mapped), counts up and
 * down, entries gone at zero, a full table and a full bucket refused (never
 * a hang),
 * and churn at the designed load that never fails and leaves nothing.
 * Prints "ok - ..." / "not ok - ..." lines.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../user/srctab.c"

static int failures;

static void check(const char *name, long got, long want)
{
	if (got == want) {
		printf("ok - srctab: %s\n", name);
	} else {
		printf("not ok - srctab: %s: want %ld, got %ld\n", name, want, got);
		failures++;
	}
}

static struct sockaddr_storage addr(const char *s)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(s, ':')) {
		ss.ss_family = AF_INET6;
		inet_pton(AF_INET6, s, &((struct sockaddr_in6 *)&ss)->sin6_addr);
	} else {
		ss.ss_family = AF_INET;
		inet_pton(AF_INET, s, &((struct sockaddr_in *)&ss)->sin_addr);
	}
	return ss;
}

/* Open one session from address s: the slot, and the source's count. */
static int get(struct ml_srctab *t, const char *s, unsigned int *n)
{
	struct sockaddr_storage ss = addr(s);
	uint64_t hi, lo;

	ml_src_key(&ss, &hi, &lo);
	return ml_srctab_get(t, hi, lo, n);
}

static long empty_buckets(const struct ml_srctab *t)
{
	long n = 0;
	uint32_t i;

	for (i = 0; i <= t->mask; i++)
		n += !t->head[i];
	return n;
}

int main(void)
{
	struct ml_srctab t;
	unsigned int n = 0;
	int a, b, i, k;

	check("init for 1000 sessions", ml_srctab_init(&t, 1000), 0);
	check("2048 buckets for 1000 sessions", t.mask + 1, 2048);

	a = get(&t, "192.0.2.7", &n);
	check("first session of a source: count 1", n, 1);
	check("same address, same slot", get(&t, "192.0.2.7", &n), a);
	check("same address: count 2", n, 2);
	check("v4-mapped IPv6 is the same IPv4 source", get(&t, "::ffff:192.0.2.7", &n), a);
	check("... count 3", n, 3);
	get(&t, "192.0.2.8", &n);
	check("IPv4 /32: the next address is its own source", n, 1);

	b = get(&t, "2001:db8:1:2::1", &n);
	check("IPv6: count 1", n, 1);
	check("same /64, other address: same slot", get(&t, "2001:db8:1:2:ffff::9", &n), b);
	check("same /64: count 2", n, 2);
	get(&t, "2001:db8:1:3::1", &n);
	check("the next /64 is its own source", n, 1);
	get(&t, "::", &n);
	check("::/64 and 0.0.0.0 are different sources (1)", n, 1);
	get(&t, "0.0.0.0", &n);
	check("::/64 and 0.0.0.0 are different sources (2)", n, 1);
	check("live sources", t.nlive, 6);

	ml_srctab_put(&t, a);
	ml_srctab_put(&t, a);
	check("two closed: still live", t.nlive, 6);
	check("count back to 2", (get(&t, "192.0.2.7", &n), n), 2);
	ml_srctab_put(&t, a);
	ml_srctab_put(&t, a);
	check("last session closed: the source is gone", t.nlive, 5);
	ml_srctab_put(&t, a);
	check("a close too many changes nothing", t.nlive, 5);
	check("a new session of it counts from 1", (get(&t, "192.0.2.7", &n), n), 1);
	ml_srctab_free(&t);

	/* Full: all entries live. */
	ml_srctab_init(&t, 32);
	for (k = 0; k < 32; k++) {
		char s[32];

		snprintf(s, sizeof(s), "10.0.%d.1", k);
		if (get(&t, s, &n) < 0)
			break;
	}
	check("32 sources in a table for 32", k, 32);
	check("a 33rd source is refused: -ENOSPC", get(&t, "198.51.100.1", &n), -ENOSPC);
	check("... but a known one still counts", (get(&t, "10.0.7.1", &n), n), 2);
	ml_srctab_free(&t);

	/* Full: one bucket holds ML_SRC_CHAIN sources (keys found for a seed we
	 * set; an attacker does not know the real one). */
	{
		uint64_t lo[ML_SRC_CHAIN + 1], x;
		int slot[ML_SRC_CHAIN + 1], m = 0;
		uint32_t b0;

		ml_srctab_init(&t, 1000);
		t.seed[0] = 1;
		t.seed[1] = 2;
		b0 = bucket(&t, 0, 0x100000000ull);
		for (x = 0x100000000ull; m <= ML_SRC_CHAIN; x++)
			if (bucket(&t, 0, x) == b0)
				lo[m++] = x;
		for (k = 0; k < ML_SRC_CHAIN; k++)
			if ((slot[k] = ml_srctab_get(&t, 0, lo[k], &n)) < 0)
				break;
		check("32 sources in one bucket", k, ML_SRC_CHAIN);
		check("a 33rd in that bucket is refused: -ENOSPC",
		      ml_srctab_get(&t, 0, lo[ML_SRC_CHAIN], &n), -ENOSPC);
		check("... a source of another bucket is not", ml_srctab_get(&t, 1, 0, &n) >= 0, 1);
		ml_srctab_put(&t, slot[5]);
		check("one of the 32 gone: the 33rd gets in",
		      ml_srctab_get(&t, 0, lo[ML_SRC_CHAIN], &n) >= 0, 1);
		check("... the first of the 32 still found", ml_srctab_get(&t, 0, lo[0], &n),
		      slot[0]);
		check("... with its count", n, 2);
		ml_srctab_free(&t);
	}

	/* Churn at the designed load (half full): 200,000 opens and closes of
	 * random sources never fail, and closing everything leaves no entry. */
	{
		enum { NS = 1000, ROUNDS = 200000 };
		static int slot[NS];
		static uint64_t key[NS];
		int fails = 0;

		ml_srctab_init(&t, NS);
		srandom(7);
		for (i = 0; i < NS; i++) {
			key[i] = (uint64_t)random() << 32 | random();
			slot[i] = ml_srctab_get(&t, key[i], 0, &n);
			fails += slot[i] < 0;
		}
		for (k = 0; k < ROUNDS; k++) {
			i = random() % NS;
			if (slot[i] >= 0)
				ml_srctab_put(&t, slot[i]);
			key[i] = (uint64_t)random() << 32 | random();
			slot[i] = ml_srctab_get(&t, key[i], 0, &n);
			fails += slot[i] < 0;
		}
		check("churn: 1000 open, 200,000 replaced: no refusal", fails, 0);
		check("churn: 1000 live", t.nlive, NS);
		{
			uint32_t bk, j, len, longest = 0;

			for (bk = 0; bk <= t.mask; bk++) {
				for (len = 0, j = t.head[bk]; j; j = t.ent[j - 1].next)
					len++;
				longest = len > longest ? len : longest;
			}
			printf("# srctab: longest bucket after churn: %u (the limit: %d)\n",
			       longest, ML_SRC_CHAIN);
		}
		for (i = 0; i < NS; i++)
			if (slot[i] >= 0)
				ml_srctab_put(&t, slot[i]);
		check("churn: all closed, none live", t.nlive, 0);
		check("churn: all closed, every bucket empty again", empty_buckets(&t), 2048);
		check("churn: entries handed out: 1000, reused since", t.nused, NS);
		ml_srctab_free(&t);
	}
	return failures ? 1 : 0;
}
