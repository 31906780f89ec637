/* SPDX-License-Identifier: MIT */
/**
 * @file gx_log.h
 * Levelled, single-line logging to stderr: `<time> <level> <message> key=value…`.
 * The level is checked before anything is formatted.
 */
#ifndef GX_UTIL_GX_LOG_H
#define GX_UTIL_GX_LOG_H

#include <pthread.h>
#include <stdarg.h>

#include <galaxy/gx_module.h>

extern int gx__log_level;

/** Sets the level (GX_LOG_ERROR … GX_LOG_DEBUG). @note thread: main, before workers */
void gx_log_set_level(int level);
/** Parses "error", "warn", "info", "debug". @return the level or -1 */
int gx_log_level_parse(const char *name);

void gx__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gx__log_v(int level, const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/**
 * For events a remote peer can trigger (rejects, limits): at most a few lines
 * per second per thread; the next line that passes says how many were dropped.
 * @return 1 when the caller may log now.  @note thread: any
 */
int gx__log_remote_allow(unsigned *suppressed);

/** Names thread @p t (at most 15 bytes) as top -H, ps -L, gdb and perf show it. */
void gx_thread_name(pthread_t t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** gx_log() for remote-triggered events, rate-limited per thread. */
#define gx_log_remote(level, fmt, ...)                                               \
    do {                                                                             \
        unsigned gx__dropped;                                                        \
        if ((level) <= gx__log_level && gx__log_remote_allow(&gx__dropped))          \
            gx__log((level), fmt " suppressed=%u", __VA_ARGS__, gx__dropped);        \
    } while (0)

/** @note thread: any */
#define gx_log(level, ...)                    \
    do {                                      \
        if ((level) <= gx__log_level)         \
            gx__log((level), __VA_ARGS__);    \
    } while (0)

#endif /* GX_UTIL_GX_LOG_H */
