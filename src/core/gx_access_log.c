/* SPDX-License-Identifier: MIT */
/*
 * Per-worker buffered access log.  Each worker formats its lines into its own
 * buffer; the buffer goes out with one write(2) when it is nearly full or on
 * the worker's 100 ms tick.  Lines are whole, so buffers of different
 * workers interleave only at line boundaries (O_APPEND for files).
 *
 * gx_access_log_reopen() (SIGUSR1, after logrotate has moved the file)
 * opens the path again and puts the new file under the descriptor number
 * the workers write to, in one dup3(2): they need no lock and never see a
 * closed descriptor, and a write in progress ends in the old file.
 */
#include "config.h"

#include "core/gx_access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/gx_error.h"
#include "util/gx_log.h"

#define BUF_SIZE 65536
#define LINE_MAX_LEN 2048

typedef struct {
    char *buf;
    size_t len;
    time_t stamp_sec;
    char stamp[32];
} alog_worker_t;

static int alog_fd = -1;
static int alog_own_fd;
static char *alog_path; /* the file's path, when alog_own_fd */
static alog_worker_t *alog_w;
static unsigned alog_n;

static int
file_open(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int
gx_access_log_open(const char *where, unsigned workers)
{
    if (where == NULL || strcmp(where, "off") == 0)
        return 0;
    if (strcmp(where, "stderr") == 0) {
        alog_fd = STDERR_FILENO;
    } else {
        alog_fd = file_open(where);
        if (alog_fd < 0) {
            gx_log(GX_LOG_ERROR, "cannot open access log path=%s reason=\"%s\"", where,
                   strerror(errno));
            return GX_EIO;
        }
        alog_own_fd = 1;
        alog_path = strdup(where);
        if (alog_path == NULL)
            goto nomem;
    }
    alog_w = calloc(workers, sizeof(*alog_w));
    if (alog_w == NULL)
        goto nomem;
    alog_n = workers;
    for (unsigned i = 0; i < workers; i++) {
        alog_w[i].buf = malloc(BUF_SIZE);
        if (alog_w[i].buf == NULL)
            goto nomem;
    }
    return 0;
nomem:
    gx_access_log_close();
    return GX_ENOMEM;
}

int
gx_access_log_reopen(void)
{
    int fd;

    if (!alog_own_fd)
        return 0;
    fd = file_open(alog_path);
    if (fd < 0 || dup3(fd, alog_fd, O_CLOEXEC) < 0) {
        gx_log(GX_LOG_WARN, "cannot reopen access log path=%s reason=\"%s\": writing on to "
               "the file open before", alog_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return GX_EIO;
    }
    close(fd);
    gx_log(GX_LOG_INFO, "access log reopened path=%s", alog_path);
    return 0;
}

void
gx_access_log_flush(unsigned w)
{
    alog_worker_t *a;
    size_t off = 0;
    ssize_t n;

    if (alog_fd < 0 || w >= alog_n)
        return;
    a = &alog_w[w];
    while (off < a->len) {
        n = write(alog_fd, a->buf + off, a->len - off);
        if (n <= 0)
            break; /* the log is lost rather than the server blocked */
        off += (size_t)n;
    }
    a->len = 0;
}

/* Appends @len bytes, clipped to the line's room. */
static char *
put(char *p, const char *end, const char *s, size_t len)
{
    if (len > (size_t)(end - p))
        len = (size_t)(end - p);
    memcpy(p, s, len);
    return p + len;
}

static char *
put_str(char *p, const char *end, const char *s)
{
    return put(p, end, s, strlen(s));
}

static char *
put_u64(char *p, const char *end, uint64_t v)
{
    char tmp[20];
    size_t n = 0;

    do {
        tmp[sizeof(tmp) - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return put(p, end, tmp + sizeof(tmp) - n, n);
}

#define PUT_LIT(p, end, lit) put((p), (end), (lit), sizeof(lit) - 1)

void
gx_access_log_call(unsigned w, const gx_access_entry_t *e)
{
    alog_worker_t *a;
    struct timespec ts;
    char *p, *end;

    if (alog_fd < 0 || w >= alog_n)
        return;
    a = &alog_w[w];
    if (BUF_SIZE - a->len < LINE_MAX_LEN)
        gx_access_log_flush(w);
    /* the coarse clock is plenty for a log stamp and costs no clock read */
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != a->stamp_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(a->stamp, sizeof(a->stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        a->stamp_sec = ts.tv_sec;
    }
    p = a->buf + a->len;
    end = p + LINE_MAX_LEN - 1;
    p = put_str(p, end, a->stamp);
    *p++ = '.';
    *p++ = (char)('0' + ts.tv_nsec / 100000000);
    *p++ = (char)('0' + ts.tv_nsec / 10000000 % 10);
    *p++ = (char)('0' + ts.tv_nsec / 1000000 % 10);
    p = PUT_LIT(p, end, "Z access method=");
    p = put_str(p, end, e->method);
    p = PUT_LIT(p, end, " status=");
    p = put_str(p, end, e->status);
    p = PUT_LIT(p, end, " code=");
    p = put_u64(p, end, e->code);
    p = PUT_LIT(p, end, " duration_us=");
    p = put_u64(p, end, e->duration_us);
    p = PUT_LIT(p, end, " peer=");
    p = put_str(p, end, e->peer);
    p = PUT_LIT(p, end, " identity=\"");
    p = put_str(p, end, e->identity);
    p = PUT_LIT(p, end, "\"");
    *p++ = '\n';
    a->len = (size_t)(p - a->buf);
}

void
gx_access_log_close(void)
{
    for (unsigned i = 0; alog_w != NULL && i < alog_n; i++) {
        gx_access_log_flush(i);
        free(alog_w[i].buf);
    }
    free(alog_w);
    alog_w = NULL;
    alog_n = 0;
    if (alog_own_fd)
        close(alog_fd);
    alog_fd = -1;
    alog_own_fd = 0;
    free(alog_path);
    alog_path = NULL;
}
