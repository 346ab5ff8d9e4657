/* SPDX-License-Identifier: GPL-2.0 */
/*
 * bucket.h - the XDP guard's per-source SYN token bucket, as pure integer
 * math: no kernel or libc dependency, time passed in, so bpf/guard.bpf.c
 * runs exactly what tests/unit/unit_bucket.c checks with controlled time.
 *
 * Tokens are kept in millionths (ML_BUCKET_SCALE) so that slow rates refill
 * smoothly. A bucket holds at most `burst` tokens; each SYN takes one; it
 * refills at `rate` tokens a second. rate 0 disables the limit.
 */
#ifndef ML_BUCKET_H
#define ML_BUCKET_H

#include <linux/types.h>

#define ML_BUCKET_SCALE	1000000ULL	/* micro-tokens per token */
#define ML_NSEC		1000000000ULL

struct ml_bucket {
	__u64 last_ns;		/* when tokens was last brought up to date */
	__u64 tokens;		/* micro-tokens */
};

/* A source's first SYN: a full bucket minus that SYN. */
static inline void ml_bucket_init(struct ml_bucket *b, __u64 now, __u32 burst)
{
	b->last_ns = now;
	b->tokens = burst ? ((__u64)burst - 1) * ML_BUCKET_SCALE : 0;
}

/*
 * Refill for the time since last_ns, then take one token. Returns 1 if the
 * SYN may pass, 0 if it is over the limit. Overflow-free for rate and burst
 * up to 2^32-1: elapsed time is capped at the time a full refill takes
 * before it is multiplied. A clock that went backwards (two CPUs updating
 * one bucket at once) refills nothing.
 */
static inline int ml_bucket_take(struct ml_bucket *b, __u64 now, __u32 rate, __u32 burst)
{
	__u64 cap = (__u64)burst * ML_BUCKET_SCALE;
	__u64 elapsed, add;

	if (rate == 0)
		return 1;
	elapsed = now > b->last_ns ? now - b->last_ns : 0;
	/* Full refill takes burst / rate seconds: past that, the bucket is full
	 * whatever the exact time (and elapsed * rate cannot overflow below it:
	 * burst * 1e9 < 2^63). */
	if (elapsed >= (__u64)burst * ML_NSEC / rate) {
		b->tokens = cap;
	} else {
		/* micro-tokens = ns * rate / 1e9 * 1e6 = ns * rate / 1000 */
		add = elapsed * rate / 1000;
		b->tokens = b->tokens + add > cap ? cap : b->tokens + add;
	}
	b->last_ns = now;
	if (b->tokens < ML_BUCKET_SCALE)
		return 0;
	b->tokens -= ML_BUCKET_SCALE;
	return 1;
}

#endif /* ML_BUCKET_H */
