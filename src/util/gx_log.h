/* SPDX-License-Identifier: MIT */
/**
 * @file gx_log.h
 * Levelled, single-line logging to stderr: `<time> <level> <message> key=value…`.
 * The level is checked before anything is formatted.
 */
#ifndef GX_UTIL_GX_LOG_H
#define GX_UTIL_GX_LOG_H

#include <stdarg.h>

#include <galaxy/gx_module.h>

extern int gx__log_level;

/** Sets the level (GX_LOG_ERROR … GX_LOG_DEBUG). @note thread: main, before workers */
void gx_log_set_level(int level);
/** Parses "error", "warn", "info", "debug". @return the level or -1 */
int gx_log_level_parse(const char *name);

void gx__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gx__log_v(int level, const char *prefix, const char *fmt, va_list ap);

/** @note thread: any */
#define gx_log(level, ...)                    \
    do {                                      \
        if ((level) <= gx__log_level)         \
            gx__log((level), __VA_ARGS__);    \
    } while (0)

#endif /* GX_UTIL_GX_LOG_H */
