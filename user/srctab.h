/* SPDX-License-Identifier: GPL-2.0 */
/*
 * srctab.h - open sessions per source (IPv4 /32, IPv6 /64), for
 * max-sessions-per-source. One entry per source with an open session,
 * removed when its last session closes: the table never grows with the
 * sessions served, only with those open at once, which the descriptor
 * limit bounds.
 */
#ifndef ML_SRCTAB_H
#define ML_SRCTAB_H

#include <stdint.h>
#include <sys/socket.h>

/* Sources sharing one hash bucket at most. At most half as many sources as
 * buckets, with a keyed hash, long chains do not happen by chance (the
 * longest is about 8); a source finding its bucket full is refused, never
 * searched for longer. */
#define ML_SRC_CHAIN	32

struct ml_src {
	uint64_t hi, lo;	/* the source, see ml_src_key() */
	uint32_t count;		/* its open sessions */
	uint32_t next;		/* next in the bucket or the free list, + 1; 0: none */
};

struct ml_srctab {
	struct ml_src *ent;	/* nent entries; an entry never moves */
	uint32_t *head;		/* per bucket: first entry + 1, 0: empty */
	uint32_t nent, mask;	/* mask: buckets - 1, a power of two */
	uint32_t nused;		/* entries ever handed out (then reused) */
	uint32_t free;		/* free list: entry + 1, 0: empty */
	uint32_t nlive;		/* sources with open sessions */
	uint64_t seed[2];	/* keyed hash: sources cannot choose a bucket */
};

/* Room for nmax sources (the most sessions open at once), in at least 2 *
 * nmax buckets. Returns 0 or -ENOMEM. Memory is touched as sources come. */
int ml_srctab_init(struct ml_srctab *t, unsigned int nmax);
void ml_srctab_free(struct ml_srctab *t);
/* The source of a peer address: IPv4 and v4-mapped IPv6 by /32, IPv6 by /64. */
void ml_src_key(const struct sockaddr_storage *ss, uint64_t *hi, uint64_t *lo);
/* One more open session from this source: returns its entry and sets *count
 * to the source's open sessions, this one included; -ENOSPC when its bucket
 * holds ML_SRC_CHAIN other sources already, or all nmax entries are live. */
int ml_srctab_get(struct ml_srctab *t, uint64_t hi, uint64_t lo, unsigned int *count);
/* A session of the source in entry i closed. */
void ml_srctab_put(struct ml_srctab *t, int i);

#endif
