/* SPDX-License-Identifier: MIT */
/**
 * @file gx_clock.h
 * The monotonic clock every timeout and duration is measured with.
 */
#ifndef GX_UTIL_GX_CLOCK_H
#define GX_UTIL_GX_CLOCK_H

#include <stdint.h>
#include <time.h>

/** Monotonic nanoseconds. @note thread: any */
static inline uint64_t
gx_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/** Monotonic milliseconds. @note thread: any */
static inline uint64_t
gx_now_ms(void)
{
    return gx_now_ns() / 1000000u;
}

#endif /* GX_UTIL_GX_CLOCK_H */
