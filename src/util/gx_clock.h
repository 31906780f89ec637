/* SPDX-License-Identifier: MIT */
/**
 * @file gx_clock.h
 * The monotonic clock every timeout and duration is measured with, the wall
 * clock of the stamps the API shows, and the time cached for one event callback.
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

/** Wall-clock milliseconds since the Unix epoch. @note thread: any */
static inline int64_t
gx_unix_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The time an event callback began, cached for the work it does (as nginx
 * caches its time once an event loop turn): one read of the socket may bring
 * dozens of requests, and their start times and heartbeat stamps then cost
 * one clock read, not one each.  Valid between gx_clock_event_begin() and
 * gx_clock_event_end() on the same thread; anywhere else gx_event_ns() reads
 * the clock.  Durations end with gx_now_ns(), never with the cached time.
 */
extern __thread uint64_t gx__event_ns;
extern __thread int64_t gx__event_unix_ms; /* read at the first use in the callback */

/** Caches the time for the callback that begins. @note thread: the caller's */
static inline void
gx_clock_event_begin(void)
{
    gx__event_ns = gx_now_ns();
}

/** Ends the callback's cached time. @note thread: the caller's */
static inline void
gx_clock_event_end(void)
{
    gx__event_ns = 0;
    gx__event_unix_ms = 0;
}

/** Monotonic nanoseconds when the current event callback began, else now. @note thread: any */
static inline uint64_t
gx_event_ns(void)
{
    return gx__event_ns != 0 ? gx__event_ns : gx_now_ns();
}

/** gx_event_ns() in milliseconds. @note thread: any */
static inline uint64_t
gx_event_ms(void)
{
    return gx_event_ns() / 1000000u;
}

/** gx_unix_ms() when the current event callback began (first asked), else now. @note thread: any */
static inline int64_t
gx_event_unix_ms(void)
{
    if (gx__event_ns == 0)
        return gx_unix_ms();
    if (gx__event_unix_ms == 0)
        gx__event_unix_ms = gx_unix_ms();
    return gx__event_unix_ms;
}

#endif /* GX_UTIL_GX_CLOCK_H */
