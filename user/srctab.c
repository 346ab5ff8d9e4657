// SPDX-License-Identifier: GPL-2.0
/*
 * srctab.c - open sessions per source: chained hashing over a fixed pool of
 * entries. A session keeps the index of its source's entry, which never
 * moves, so a close needs no search for the entry, only the short walk of
 * its bucket to unlink it when the count reaches zero.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "srctab.h"

int ml_srctab_init(struct ml_srctab *t, unsigned int nmax)
{
	uint64_t nb = 64;

	memset(t, 0, sizeof(*t));
	if (nmax < 1)
		nmax = 1;
	while (nb < 2 * (uint64_t)nmax)
		nb <<= 1;
	t->ent = calloc(nmax, sizeof(*t->ent));
	t->head = calloc(nb, sizeof(*t->head));
	if (!t->ent || !t->head) {
		ml_srctab_free(t);
		return -ENOMEM;
	}
	t->nent = nmax;
	t->mask = nb - 1;
	if (getrandom(t->seed, sizeof(t->seed), GRND_NONBLOCK) != (ssize_t)sizeof(t->seed)) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		t->seed[0] = ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ getpid();
		t->seed[1] = ts.tv_sec * 0xc2b2ae3d27d4eb4full ^ (uintptr_t)t->ent;
	}
	return 0;
}

void ml_srctab_free(struct ml_srctab *t)
{
	free(t->ent);
	free(t->head);
	t->ent = NULL;
	t->head = NULL;
}

void ml_src_key(const struct sockaddr_storage *ss, uint64_t *hi, uint64_t *lo)
{
	static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };
	const uint8_t *a;
	uint64_t v = 0;
	int i;

	*hi = *lo = 0;
	if (ss->ss_family == AF_INET) {
		a = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
	} else if (ss->ss_family == AF_INET6) {
		a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
		if (memcmp(a, v4mapped, 12)) {
			/* IPv6: the /64, low half zero. */
			for (i = 0; i < 8; i++)
				v = v << 8 | a[i];
			*hi = v;
			return;
		}
		a += 12;
	} else {
		return;
	}
	/* IPv4 as ::ffff:a.b.c.d, whose low half is never zero: it never
	 * meets an IPv6 /64 (low half zero). */
	*lo = 0xffff00000000ull | (uint32_t)a[0] << 24 | a[1] << 16 | a[2] << 8 | a[3];
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static uint32_t bucket(const struct ml_srctab *t, uint64_t hi, uint64_t lo)
{
	return mix(mix(hi ^ t->seed[0]) + (lo ^ t->seed[1])) & t->mask;
}

int ml_srctab_get(struct ml_srctab *t, uint64_t hi, uint64_t lo, unsigned int *count)
{
	uint32_t b = bucket(t, hi, lo), j, n = 0;
	struct ml_src *e;

	for (j = t->head[b]; j; j = t->ent[j - 1].next, n++) {
		e = &t->ent[j - 1];
		if (e->hi == hi && e->lo == lo) {
			*count = ++e->count;
			return j - 1;
		}
	}
	if (n >= ML_SRC_CHAIN)
		return -ENOSPC;
	if (t->free) {
		j = t->free;
		t->free = t->ent[j - 1].next;
	} else if (t->nused < t->nent) {
		j = ++t->nused;
	} else {
		return -ENOSPC;
	}
	t->ent[j - 1] = (struct ml_src){ .hi = hi, .lo = lo, .count = 1, .next = t->head[b] };
	t->head[b] = j;
	t->nlive++;
	*count = 1;
	return j - 1;
}

void ml_srctab_put(struct ml_srctab *t, int i)
{
	struct ml_src *e;
	uint32_t *link;

	if (i < 0 || (uint32_t)i >= t->nused || !t->ent[i].count)
		return;
	e = &t->ent[i];
	if (--e->count)
		return;
	for (link = &t->head[bucket(t, e->hi, e->lo)]; *link; link = &t->ent[*link - 1].next)
		if (*link == (uint32_t)i + 1) {
			*link = e->next;
			break;
		}
	e->next = t->free;
	t->free = i + 1;
	t->nlive--;
}
