/* SPDX-License-Identifier: GPL-2.0 */
/* clock.h - the controller's one clock: monotonic milliseconds. */
#ifndef ML_CLOCK_H
#define ML_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t ml_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
