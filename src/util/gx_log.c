/* SPDX-License-Identifier: MIT */
/*
 * Operational log: one line per event, written with a single write(2) so that
 * lines from several threads never interleave.  The access log is not here: it
 * is buffered per worker by the LOG phase (core/gx_access_log.c).
 */
#include "config.h"

#include "util/gx_log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int gx__log_level = GX_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void
gx_log_set_level(int level)
{
    gx__log_level = level;
}

int
gx_log_level_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

void
gx__log_v(int level, const char *prefix, const char *fmt, va_list ap)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int r;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s", ts.tv_nsec / 1000000,
                 level_names[level < 0 ? 0 : level > GX_LOG_DEBUG ? GX_LOG_DEBUG : level],
                 prefix ? prefix : "");
    n += r > 0 ? (size_t)r : 0;
    r = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    n += r > 0 ? (size_t)r : 0;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        /* nowhere left to report it */
    }
}

#define REMOTE_LINES_PER_SEC 10

int
gx__log_remote_allow(unsigned *suppressed)
{
    static __thread time_t window;
    static __thread unsigned lines, dropped;
    time_t now = time(NULL);

    if (now != window) {
        window = now;
        lines = 0;
    }
    if (++lines > REMOTE_LINES_PER_SEC) {
        dropped++;
        return 0;
    }
    *suppressed = dropped;
    dropped = 0;
    return 1;
}

void
gx__log(int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    gx__log_v(level, NULL, fmt, ap);
    va_end(ap);
}

void
gx_thread_name(pthread_t t, const char *fmt, ...)
{
    char name[16];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(name, sizeof(name), fmt, ap);
    va_end(ap);
    (void)pthread_setname_np(t, name); /* a name is a convenience: no error to report */
}
