/* SPDX-License-Identifier: MIT */
/*
 * gx_load: a unary gRPC load generator over h2c (nghttp2 + libevent) that,
 * unlike h2load, reads every response's trailers and counts grpc-status per
 * code, and that can make every request distinct: the request body template
 * (a serialized protobuf message, or an already framed one with --framed) may
 * contain a placeholder (default the 8 bytes "@@@@@@@@"); every occurrence is
 * replaced, per request, by a zero-padded decimal counter of the same width,
 * so the payload size never changes.  Request k (0-based, over all
 * connections and threads) carries the number --start + k.
 *
 * C connections x M concurrent streams each, spread over T threads (one event
 * loop per thread), -n requests in all, the whole run bounded by --timeout.
 * Prints requests/s, latency p50/p99/max and the status histogram; exits 0 when
 * all requests completed with grpc-status 0 (with --allow-errors: completed
 * with any grpc-status), 1 otherwise, 2 on usage errors.
 *
 * With --stream-msgs K every call is a bidi stream instead: it sends K request
 * messages (the template, placeholder numbered per message), at most
 * --stream-window W of them awaiting their response (the next one goes out when
 * a response arrives: NGHTTP2_ERR_DEFERRED + nghttp2_session_resume_data), then
 * half-closes.  Every response message is parsed out of the DATA frames and
 * must be an uncompressed, well-formed protobuf message (and, with
 * --expect-len, of that length); a call that ends with grpc-status 0 but did
 * not get exactly K responses, or got a malformed one, fails.  -n then counts
 * calls (streams), and the report adds messages/s and per-message latency.
 *
 * Lease tokens, to register nodes and then heartbeat them: with --tokens-out
 * FILE (unary calls only) the DATA of every response is kept (per stream, at
 * most 64 KiB) and the response of a call that ends with grpc-status 0 must be
 * one uncompressed, well-formed protobuf message with field 2 a non-empty
 * string of printable characters (RegisterResponse.lease_token); FILE gets a
 * line "NUMBER TOKEN" for it, NUMBER being the call's counter (--start + k),
 * in no particular order.  A call whose response is not like that counts as
 * bad-response-message.  With --tokens FILE, lines "NUMBER TOKEN" are read:
 * every number a request uses (--start .. --start + -n - 1; with --stream-msgs
 * every message's) must have exactly one, and every token as many characters
 * as the token placeholder (--token-placeholder, default 48 '#'); every
 * occurrence of that placeholder in the template is replaced, per request, by
 * the request's token.
 *
 *   cc -O2 -o gx_load bench/gx_load.c $(pkg-config --cflags --libs libnghttp2 libevent) -lpthread
 *   gx_load -n 100000 -c 16 -m 32 --body reg.bin \
 *       http://127.0.0.1:50051/galaxy.pool.v1.NodeRegistry/Register
 *   gx_load -n 256 -c 4 -m 64 --stream-msgs 4000 --stream-window 1 -d hb.bin --framed \
 *       http://127.0.0.1:50051/galaxy.pool.v1.NodeRegistry/HeartbeatStream
 *   gx_load -n 100000 -c 16 -m 32 -d reg.bin --tokens-out tokens.txt \
 *       http://127.0.0.1:50051/galaxy.pool.v1.NodeRegistry/Register
 *   gx_load -n 100000 -c 16 -m 32 -d hb.bin --tokens tokens.txt \
 *       http://127.0.0.1:50051/galaxy.pool.v1.NodeRegistry/Heartbeat
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#define GX_LOAD_MAX_CONNS   4096
#define GX_LOAD_MAX_STREAMS 4096
#define GX_LOAD_MAX_THREADS 64
#define GX_LOAD_MAX_REQS    50000000ULL
#define GX_LOAD_MAX_BODY    (4u << 20)
#define GX_LOAD_MAX_HEADERS 8
#define GX_LOAD_MAX_MARKS   16
#define GX_LOAD_READ_CHUNK  65536
#define GX_LOAD_OUT_CHUNK   65536
#define GX_LOAD_MAX_WINDOW  4096
#define GX_LOAD_MAX_LAT     (1u << 24)   /* latency samples kept per thread */
#define GX_LOAD_MAX_RESP    65536        /* --tokens-out: response bytes kept per call */
#define GX_LOAD_TOKBUF      65536        /* --tokens-out: lines buffered per thread */
#define GX_LOAD_MAX_TOKEN   1024         /* --tokens: longest token placeholder */

/* grpc-status 0..16, then outcomes that carry no valid status */
enum {
    ST_GRPC_MAX = 16,
    ST_MISSING,        /* stream ended without a grpc-status */
    ST_INVALID,        /* grpc-status not a decimal 0..16 */
    ST_RESET,          /* RST_STREAM or connection lost before the end */
    ST_BAD_MSG,        /* --stream-msgs, --tokens-out: a response message is malformed */
    ST_MSG_COUNT,      /* --stream-msgs: grpc-status 0 but not one response per request */
    ST_TIMEOUT,        /* still in flight when --timeout expired */
    ST_COUNT
};

static const char *const status_names[ST_COUNT] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED", "no-grpc-status", "bad-grpc-status", "stream-reset", "bad-response-message",
    "wrong-response-count", "timeout",
};

typedef struct {
    /* options */
    uint64_t n;
    unsigned conns;
    unsigned streams;
    unsigned threads;
    uint64_t start;
    double timeout;
    int allow_errors;
    uint64_t stream_msgs;          /* 0: unary calls; else request messages per bidi stream */
    unsigned window;               /* --stream-window: requests awaiting their response */
    long expect_len;               /* --expect-len: response message length, -1 any */
    const char *host;
    const char *port;
    const char *path;
    char authority[300];
    nghttp2_nv hdrs[6 + GX_LOAD_MAX_HEADERS];
    size_t nhdrs;
    /* framed request template and the offsets of the placeholder in it */
    uint8_t *body;
    size_t body_len;
    size_t marks[GX_LOAD_MAX_MARKS];
    size_t nmarks;
    size_t mark_len;
    /* --tokens: the token placeholder's offsets, and the tokens by number - start */
    size_t tmarks[GX_LOAD_MAX_MARKS];
    size_t ntmarks;
    size_t tok_len;
    char *tokens;
    /* --tokens-out */
    FILE *tokens_out;
    const char *tokens_out_path;
    /* shared by the threads */
    uint64_t issued;               /* atomic: requests taken so far */
    struct timespec t0;
    pthread_barrier_t go;
    pthread_mutex_t err_lock;
    char first_error[256];
} gx_load_t;

typedef struct gx_load_thread_s gx_load_thread_t;
typedef struct gx_load_stream_s gx_load_stream_t;

typedef struct {
    gx_load_thread_t *th;
    gx_load_stream_t *streams;     /* open streams (nghttp2_session_del frees only its own) */
    int fd;
    int dead;
    nghttp2_session *sess;
    struct event *ev_read;
    struct event *ev_write;
    unsigned active;
    uint8_t *out;
    size_t out_len;
    size_t out_off;
    size_t out_cap;
} gx_load_conn_t;

struct gx_load_stream_s {
    gx_load_conn_t *conn;
    gx_load_stream_t *prev;
    gx_load_stream_t *next;
    struct timespec t_start;
    int http_status;
    int grpc_status;               /* -1: none seen */
    char message[128];             /* grpc-message, cut */
    size_t body_off;
    size_t body_len;
    /* --stream-msgs */
    uint64_t number;               /* the call's index k over the whole run */
    uint64_t sent;                 /* request messages started */
    uint64_t recvd;                /* complete response messages */
    int deferred;                  /* the data provider waits for a response */
    int bad;                       /* a response message was malformed */
    struct timespec *sent_at;      /* ring of --stream-window send times */
    uint8_t rhdr[5];               /* the response message being parsed: its prefix, */
    size_t rhdr_got;
    size_t rlen;                   /* its length, */
    size_t rgot;
    uint8_t *rbuf;                 /* and its bytes */
    size_t rcap;
    uint8_t body[];
};

struct gx_load_thread_s {
    gx_load_t *g;
    pthread_t tid;
    struct event_base *base;
    struct event *ev_timeout;
    gx_load_conn_t *conns;
    unsigned nconns;
    unsigned live;
    uint64_t done;
    uint64_t status[ST_COUNT];
    uint64_t http_non200;
    uint64_t msgs_sent;            /* --stream-msgs: request messages started */
    uint64_t msgs_recv;            /* ... response messages received */
    uint64_t msgs_bad;             /* ... of which malformed */
    size_t resp_min;               /* ... their sizes (without the 5-byte prefix) */
    size_t resp_max;
    uint32_t *lat_us;              /* one per completed request (stream: per message) */
    uint64_t nlat;
    uint64_t lat_cap;
    struct timespec t_end;
    char *tokbuf;                  /* --tokens-out: lines not yet written */
    size_t tokbuf_len;
    uint64_t tokens_written;
    int tokens_failed;             /* a write to the --tokens-out file failed */
};

static double
ts_diff(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* ------------------------------------------------------------------ requests */

static void
record_error(gx_load_t *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
record_error(gx_load_t *g, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&g->err_lock);
    if (g->first_error[0] == '\0') {
        va_start(ap, fmt);
        vsnprintf(g->first_error, sizeof(g->first_error), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&g->err_lock);
}

static void
stream_fill_body(const gx_load_t *g, gx_load_stream_t *s, uint64_t number)
{
    char digits[32];

    memcpy(s->body, g->body, g->body_len);
    s->body_len = g->body_len;
    if (g->ntmarks > 0) {
        const char *tok = g->tokens + (number - g->start) * g->tok_len;

        for (size_t i = 0; i < g->ntmarks; i++)
            memcpy(s->body + g->tmarks[i], tok, g->tok_len);
    }
    if (g->nmarks == 0)
        return;
    snprintf(digits, sizeof(digits), "%0*llu", (int)g->mark_len, (unsigned long long)number);
    for (size_t i = 0; i < g->nmarks; i++)
        memcpy(s->body + g->marks[i], digits, g->mark_len);
}

static ssize_t
body_read_cb(nghttp2_session *sess, int32_t stream_id, uint8_t *buf, size_t length,
             uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    gx_load_stream_t *s = source->ptr;
    size_t n = s->body_len - s->body_off;

    (void)sess;
    (void)stream_id;
    (void)user_data;
    if (n > length)
        n = length;
    memcpy(buf, s->body + s->body_off, n);
    s->body_off += n;
    if (s->body_off == s->body_len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* the data provider of a --stream-msgs call: request messages while the window allows */
static ssize_t
stream_read_cb(nghttp2_session *sess, int32_t stream_id, uint8_t *buf, size_t length,
               uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    gx_load_stream_t *s = source->ptr;
    const gx_load_t *g = s->conn->th->g;
    size_t out = 0, n;

    (void)sess;
    (void)stream_id;
    (void)user_data;
    while (out < length) {
        if (s->body_off == s->body_len) {
            if (s->sent == g->stream_msgs || s->sent - s->recvd >= g->window)
                break;
            stream_fill_body(g, s, g->start + s->number * g->stream_msgs + s->sent);
            s->body_off = 0;
            clock_gettime(CLOCK_MONOTONIC, &s->sent_at[s->sent % g->window]);
            s->sent++;
            s->conn->th->msgs_sent++;
        }
        n = s->body_len - s->body_off;
        if (n > length - out)
            n = length - out;
        memcpy(buf + out, s->body + s->body_off, n);
        s->body_off += n;
        out += n;
    }
    if (s->sent == g->stream_msgs && s->body_off == s->body_len) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;    /* half-close with the last message */
        return (ssize_t)out;
    }
    if (out == 0) {
        s->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)out;
}

static gx_load_stream_t *
stream_new(const gx_load_t *g)
{
    gx_load_stream_t *s = calloc(1, sizeof(*s) + g->body_len);

    if (s == NULL || g->stream_msgs == 0)
        return s;
    s->sent_at = calloc(g->window, sizeof(*s->sent_at));
    if (s->sent_at == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

/* submits one request if any is left; @return 1 submitted, 0 none left, -1 error */
static int
conn_submit_one(gx_load_conn_t *c)
{
    gx_load_t *g = c->th->g;
    gx_load_stream_t *s;
    nghttp2_data_provider dp;
    uint64_t k;
    int32_t id;

    if (__atomic_load_n(&g->issued, __ATOMIC_RELAXED) >= g->n)
        return 0;
    k = __atomic_fetch_add(&g->issued, 1, __ATOMIC_RELAXED);
    if (k >= g->n)
        return 0;
    s = stream_new(g);
    if (s == NULL)
        return -1;
    s->conn = c;
    s->grpc_status = -1;
    s->number = k;
    dp.source.ptr = s;
    if (g->stream_msgs > 0) {
        dp.read_callback = stream_read_cb;
    } else {
        stream_fill_body(g, s, g->start + k);
        dp.read_callback = body_read_cb;
    }
    clock_gettime(CLOCK_MONOTONIC, &s->t_start);
    id = nghttp2_submit_request(c->sess, NULL, g->hdrs, g->nhdrs, &dp, s);
    if (id < 0) {
        record_error(g, "nghttp2_submit_request: %s", nghttp2_strerror(id));
        free(s->sent_at);
        free(s);
        return -1;
    }
    s->next = c->streams;
    if (c->streams != NULL)
        c->streams->prev = s;
    c->streams = s;
    c->active++;
    return 1;
}

static void
stream_free(gx_load_stream_t *s)
{
    gx_load_conn_t *c = s->conn;

    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    free(s->sent_at);
    free(s->rbuf);
    free(s);
}

/* after nghttp2_session_del: the streams it dropped without closing them */
static void
conn_free_streams(gx_load_conn_t *c)
{
    while (c->streams != NULL)
        stream_free(c->streams);
}

static void
conn_fill(gx_load_conn_t *c)
{
    while (!c->dead && c->active < c->th->g->streams)
        if (conn_submit_one(c) <= 0)
            break;
}

/* ------------------------------------------------------------------ nghttp2 callbacks */

static int
parse_status(const uint8_t *v, size_t len)
{
    int code = 0;

    if (len == 0 || len > 2 || (len == 2 && v[0] == '0'))
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        code = code * 10 + (v[i] - '0');
    }
    return code <= ST_GRPC_MAX ? code : -1;
}

static int
on_header_cb(nghttp2_session *sess, const nghttp2_frame *frame, const uint8_t *name,
             size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
{
    gx_load_stream_t *s;

    (void)flags;
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    s = nghttp2_session_get_stream_user_data(sess, frame->hd.stream_id);
    if (s == NULL)
        return 0;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        s->http_status = atoi((const char *)value);
    } else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        s->grpc_status = parse_status(value, valuelen);
        if (s->grpc_status < 0)
            s->grpc_status = ST_INVALID;
    } else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        snprintf(s->message, sizeof(s->message), "%.*s",
                 (int)(valuelen < sizeof(s->message) ? valuelen : sizeof(s->message) - 1),
                 (const char *)value);
    }
    return 0;
}

static void
stream_finish(gx_load_thread_t *th, gx_load_stream_t *s, int outcome)
{
    struct timespec now;
    double us;

    clock_gettime(CLOCK_MONOTONIC, &now);
    us = ts_diff(&s->t_start, &now) * 1e6;
    th->status[outcome]++;
    th->done++;
    if (s->http_status != 0 && s->http_status != 200)
        th->http_non200++;
    if (th->g->stream_msgs == 0 && th->nlat < th->lat_cap)
        th->lat_us[th->nlat++] = us > 4e9 ? UINT32_MAX : (uint32_t)us;
    th->t_end = now;
}

static int stream_take_token(gx_load_thread_t *th, gx_load_stream_t *s, int32_t stream_id);

static int
on_stream_close_cb(nghttp2_session *sess, int32_t stream_id, uint32_t error_code,
                   void *user_data)
{
    gx_load_conn_t *c = user_data;
    gx_load_stream_t *s = nghttp2_session_get_stream_user_data(sess, stream_id);
    int outcome;

    if (s == NULL)
        return 0;
    if (s->grpc_status == 0 && c->th->g->stream_msgs > 0 && s->bad)
        outcome = ST_BAD_MSG;
    else if (s->grpc_status == 0 && c->th->g->stream_msgs > 0 &&
             (s->recvd != c->th->g->stream_msgs || s->sent != c->th->g->stream_msgs))
        outcome = ST_MSG_COUNT;
    else if (s->grpc_status == 0 && c->th->g->tokens_out != NULL &&
             stream_take_token(c->th, s, stream_id) != 0)
        outcome = ST_BAD_MSG;
    else if (s->grpc_status >= 0)
        outcome = s->grpc_status;
    else if (error_code != NGHTTP2_NO_ERROR)
        outcome = ST_RESET;
    else
        outcome = ST_MISSING;
    if (outcome != 0)
        record_error(c->th->g, "stream %d: %s (HTTP %d, h2 error %u, %llu of %llu request "
                     "messages sent, %llu responses) grpc-message \"%s\"", stream_id,
                     status_names[outcome], s->http_status, error_code,
                     (unsigned long long)s->sent, (unsigned long long)c->th->g->stream_msgs,
                     (unsigned long long)s->recvd, s->message);
    stream_finish(c->th, s, outcome);
    nghttp2_session_set_stream_user_data(sess, stream_id, NULL);
    stream_free(s);
    c->active--;
    return 0;
}

/* a varint at @p *p (below @p end); @return 0, or -1 if truncated or over 10 bytes */
static int
pb_skip_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; *p < end && shift < 70; shift += 7) {
        uint8_t b = *(*p)++;

        *v |= (uint64_t)(b & 0x7f) << (shift < 64 ? shift : 63);
        if ((b & 0x80) == 0)
            return 0;
    }
    return -1;
}

/* 1 if @p len bytes are a sequence of well-formed protobuf fields (no groups) */
static int
pb_well_formed(const uint8_t *p, size_t len)
{
    const uint8_t *end;
    uint64_t key, v;

    if (len == 0)
        return 1; /* an empty message: every field has its default value */
    end = p + len;
    while (p < end) {
        if (pb_skip_varint(&p, end, &key) != 0 || (key >> 3) == 0)
            return 0;
        switch (key & 7) {
        case 0: /* varint: read it, nothing more to skip */
            if (pb_skip_varint(&p, end, &v) != 0)
                return 0;
            v = 0;
            break;
        case 1: v = 8; break;
        case 5: v = 4; break;
        case 2: /* length-delimited */
            if (pb_skip_varint(&p, end, &v) != 0)
                return 0;
            break;
        default: return 0;
        }
        if (v > (uint64_t)(end - p))
            return 0;
        p += v;
    }
    return 1;
}

/* --tokens-out: writes the thread's buffered lines to the file */
static void
tokens_flush(gx_load_thread_t *th)
{
    if (th->tokbuf_len > 0 &&
        fwrite(th->tokbuf, 1, th->tokbuf_len, th->g->tokens_out) != th->tokbuf_len)
        th->tokens_failed = 1;
    th->tokbuf_len = 0;
}

/*
 * --tokens-out, a unary call that ended with grpc-status 0: its response must
 * be one uncompressed, well-formed message whose field 2 (the last one, as
 * protobuf has it) is a string of 1..GX_LOAD_MAX_TOKEN printable characters;
 * buffers the line "NUMBER TOKEN".  @return 0, or -1 if the response is not so
 */
static int
stream_take_token(gx_load_thread_t *th, gx_load_stream_t *s, int32_t stream_id)
{
    const gx_load_t *g = th->g;
    const uint8_t *p, *end, *tok = NULL;
    size_t len, tlen = 0;
    uint64_t key, v;
    int nl;

    if (s->bad)
        return -1;    /* over GX_LOAD_MAX_RESP or out of memory: already recorded */
    if (s->rgot < 5 || s->rbuf[0] != 0)
        goto bad;
    len = (size_t)s->rbuf[1] << 24 | (size_t)s->rbuf[2] << 16 | (size_t)s->rbuf[3] << 8 |
          s->rbuf[4];
    if (len != s->rgot - 5 || !pb_well_formed(s->rbuf + 5, len))
        goto bad;
    p = s->rbuf + 5;
    end = p + len;
    while (p < end) {    /* well-formed: every read below succeeds */
        (void)pb_skip_varint(&p, end, &key);
        switch (key & 7) {
        case 0: (void)pb_skip_varint(&p, end, &v); v = 0; break;
        case 1: v = 8; break;
        case 5: v = 4; break;
        default: /* 2 */
            (void)pb_skip_varint(&p, end, &v);
            if ((key >> 3) == 2) {
                tok = p;
                tlen = (size_t)v;
            }
            break;
        }
        p += v;
    }
    if (tok == NULL || tlen == 0 || tlen > GX_LOAD_MAX_TOKEN)
        goto bad;
    for (size_t i = 0; i < tlen; i++)
        if (tok[i] <= ' ' || tok[i] >= 0x7f)
            goto bad;
    if (th->tokbuf_len + 24 + tlen > GX_LOAD_TOKBUF)
        tokens_flush(th);
    nl = snprintf(th->tokbuf + th->tokbuf_len, 24, "%llu ",
                  (unsigned long long)(g->start + s->number));
    th->tokbuf_len += (size_t)nl;
    memcpy(th->tokbuf + th->tokbuf_len, tok, tlen);
    th->tokbuf_len += tlen;
    th->tokbuf[th->tokbuf_len++] = '\n';
    th->tokens_written++;
    return 0;
bad:
    record_error(th->g, "stream %d: response of %zu bytes is not one message with a lease "
                 "token (field 2, a printable string)", stream_id, s->rgot);
    return -1;
}

/* --tokens-out: keeps a unary call's response DATA, at most GX_LOAD_MAX_RESP bytes */
static void
stream_keep_data(gx_load_thread_t *th, gx_load_stream_t *s, int32_t stream_id,
                 const uint8_t *data, size_t len)
{
    if (s == NULL || s->bad || len == 0)
        return;
    if (len > GX_LOAD_MAX_RESP - s->rgot) {
        record_error(th->g, "stream %d: response over %u bytes", stream_id, GX_LOAD_MAX_RESP);
        s->bad = 1;
        return;
    }
    if (s->rgot + len > s->rcap) {
        size_t cap = s->rcap ? s->rcap : 256;
        uint8_t *p;

        while (cap < s->rgot + len)
            cap *= 2;
        p = realloc(s->rbuf, cap);
        if (p == NULL) {
            record_error(th->g, "stream %d: out of memory for the response", stream_id);
            s->bad = 1;
            return;
        }
        s->rbuf = p;
        s->rcap = cap;
    }
    memcpy(s->rbuf + s->rgot, data, len);
    s->rgot += len;
}

/* one complete response message of a --stream-msgs call */
static void
stream_on_response(gx_load_conn_t *c, gx_load_stream_t *s, int32_t stream_id)
{
    gx_load_thread_t *th = c->th;
    const gx_load_t *g = th->g;
    struct timespec now;
    double us;

    if (s->rhdr[0] != 0 || !pb_well_formed(s->rbuf, s->rlen) || s->recvd >= s->sent ||
        (g->expect_len >= 0 && s->rlen != (size_t)g->expect_len)) {
        if (!s->bad)
            record_error(th->g, "stream %d: response message %llu malformed or unasked for "
                         "(flag %u, %zu bytes)", stream_id, (unsigned long long)s->recvd,
                         s->rhdr[0], s->rlen);
        s->bad = 1;
        th->msgs_bad++;
    }
    if (th->msgs_recv == 0 || s->rlen < th->resp_min)
        th->resp_min = s->rlen;
    if (s->rlen > th->resp_max)
        th->resp_max = s->rlen;
    if (s->recvd < s->sent) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        us = ts_diff(&s->sent_at[s->recvd % g->window], &now) * 1e6;
        if (th->nlat < th->lat_cap)
            th->lat_us[th->nlat++] = us > 4e9 ? UINT32_MAX : (uint32_t)us;
        th->t_end = now;
    }
    s->recvd++;
    th->msgs_recv++;
    s->rhdr_got = 0;
    if (s->deferred && s->sent < g->stream_msgs) {
        s->deferred = 0;
        nghttp2_session_resume_data(c->sess, stream_id);
    }
}

/* the response's 5-byte message prefix is complete: size the buffer */
static int
stream_on_prefix(gx_load_stream_t *s)
{
    s->rlen = (size_t)s->rhdr[1] << 24 | (size_t)s->rhdr[2] << 16 | (size_t)s->rhdr[3] << 8 |
              s->rhdr[4];
    s->rgot = 0;
    if (s->rlen > GX_LOAD_MAX_BODY)
        return -1;
    if (s->rlen > s->rcap) {
        uint8_t *p = realloc(s->rbuf, s->rlen);

        if (p == NULL)
            return -1;
        s->rbuf = p;
        s->rcap = s->rlen;
    }
    return 0;
}

/* --stream-msgs: splits the response DATA into gRPC messages; --tokens-out: keeps it */
static int
on_data_chunk_cb(nghttp2_session *sess, uint8_t flags, int32_t stream_id, const uint8_t *data,
                 size_t len, void *user_data)
{
    gx_load_conn_t *c = user_data;
    gx_load_stream_t *s;
    size_t n;

    (void)flags;
    if (c->th->g->stream_msgs == 0) {
        if (c->th->g->tokens_out != NULL)
            stream_keep_data(c->th, nghttp2_session_get_stream_user_data(sess, stream_id),
                             stream_id, data, len);
        return 0;
    }
    s = nghttp2_session_get_stream_user_data(sess, stream_id);
    while (s != NULL && len > 0) {
        if (s->rhdr_got < sizeof(s->rhdr)) {
            n = sizeof(s->rhdr) - s->rhdr_got;
            n = n < len ? n : len;
            memcpy(s->rhdr + s->rhdr_got, data, n);
            s->rhdr_got += n;
            if (s->rhdr_got == sizeof(s->rhdr) && stream_on_prefix(s) != 0) {
                record_error(c->th->g, "stream %d: response message of %zu bytes", stream_id,
                             s->rlen);
                s->bad = 1;
                return NGHTTP2_ERR_CALLBACK_FAILURE;
            }
        } else {
            n = s->rlen - s->rgot;
            n = n < len ? n : len;
            memcpy(s->rbuf + s->rgot, data, n);
            s->rgot += n;
        }
        data += n;
        len -= n;
        if (s->rhdr_got == sizeof(s->rhdr) && s->rgot == s->rlen)
            stream_on_response(c, s, stream_id);
    }
    return 0;
}

/*
 * The server ended a --stream-msgs call (trailers with END_STREAM) while this
 * side still has requests to send: reset it, or the stream would wait for the
 * timeout.  Its outcome is still the grpc-status of the trailers.
 */
static int
on_frame_recv_cb(nghttp2_session *sess, const nghttp2_frame *frame, void *user_data)
{
    gx_load_conn_t *c = user_data;
    gx_load_stream_t *s;

    if (c->th->g->stream_msgs == 0 || !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) ||
        (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA))
        return 0;
    s = nghttp2_session_get_stream_user_data(sess, frame->hd.stream_id);
    if (s != NULL && (s->sent < c->th->g->stream_msgs || s->body_off < s->body_len))
        nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_NO_ERROR);
    return 0;
}

/* ------------------------------------------------------------------ connection I/O */

static int thread_check_done(gx_load_thread_t *th);

/* drops the connection; its streams in flight count as reset */
static void
conn_fail(gx_load_conn_t *c, const char *why)
{
    if (c->dead)
        return;
    record_error(c->th->g, "connection lost: %s", why);
    c->dead = 1;
    event_del(c->ev_read);
    event_del(c->ev_write);
    /* deleting the session calls no callback: the open streams count as reset here */
    nghttp2_session_del(c->sess);
    c->sess = NULL;
    conn_free_streams(c);
    c->th->status[ST_RESET] += c->active;
    c->th->done += c->active;
    c->active = 0;
    close(c->fd);
    c->fd = -1;
    c->th->live--;
}

static int
out_append(gx_load_conn_t *c, const uint8_t *data, size_t len)
{
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : GX_LOAD_OUT_CHUNK;
        uint8_t *p;

        while (cap < c->out_len + len)
            cap *= 2;
        p = realloc(c->out, cap);
        if (p == NULL)
            return -1;
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return 0;
}

/* writes what is buffered; @return 0 all written, 1 would block, -1 error */
static int
out_write(gx_load_conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 1;
        if (w <= 0)
            return -1;
        c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

/* moves nghttp2's output into the socket until it would block or nothing is left */
static void
conn_flush(gx_load_conn_t *c)
{
    int rv;

    for (int rounds = 0; rounds < 1024 && !c->dead; rounds++) {
        rv = out_write(c);
        if (rv < 0) {
            conn_fail(c, strerror(errno));
            return;
        }
        if (rv > 0) {
            event_add(c->ev_write, NULL);
            return;
        }
        while (c->out_len < GX_LOAD_OUT_CHUNK) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(c->sess, &data);

            if (n < 0) {
                conn_fail(c, nghttp2_strerror((int)n));
                return;
            }
            if (n == 0)
                break;
            if (out_append(c, data, (size_t)n) != 0) {
                conn_fail(c, "out of memory");
                return;
            }
        }
        if (c->out_len == 0)
            break;
    }
    if (!c->dead)
        event_del(c->ev_write);
}

static void
conn_on_read(evutil_socket_t fd, short what, void *arg)
{
    gx_load_conn_t *c = arg;
    uint8_t buf[GX_LOAD_READ_CHUNK];

    (void)what;
    for (int i = 0; i < 16 && !c->dead; i++) {
        ssize_t n = read(fd, buf, sizeof(buf));
        ssize_t used;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            conn_fail(c, n == 0 ? "closed by the server" : strerror(errno));
            break;
        }
        used = nghttp2_session_mem_recv(c->sess, buf, (size_t)n);
        if (used < 0) {
            conn_fail(c, nghttp2_strerror((int)used));
            break;
        }
    }
    if (!c->dead) {
        conn_fill(c);
        conn_flush(c);
    }
    thread_check_done(c->th);
}

static void
conn_on_write(evutil_socket_t fd, short what, void *arg)
{
    gx_load_conn_t *c = arg;

    (void)fd;
    (void)what;
    conn_flush(c);
    thread_check_done(c->th);
}

static int
conn_session_new(gx_load_conn_t *c)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
    };
    int rv;

    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return -1;
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv_cb);
    rv = nghttp2_session_client_new(&c->sess, cbs, c);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0)
        return -1;
    if (nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, 2) != 0 ||
        nghttp2_session_set_local_window_size(c->sess, NGHTTP2_FLAG_NONE, 0, 16 << 20) != 0)
        return -1;
    return 0;
}

static int
conn_connect(const struct addrinfo *ai)
{
    int one = 1;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);

    if (fd < 0)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ------------------------------------------------------------------ threads */

/* ends the thread's loop when nothing is in flight and nothing is left to send */
static int
thread_check_done(gx_load_thread_t *th)
{
    gx_load_t *g = th->g;
    unsigned active = 0;

    for (unsigned i = 0; i < th->nconns; i++)
        active += th->conns[i].active;
    if (active > 0 && th->live > 0)
        return 0;
    if (th->live > 0 && __atomic_load_n(&g->issued, __ATOMIC_RELAXED) < g->n)
        return 0;
    event_base_loopbreak(th->base);
    return 1;
}

static void
thread_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    gx_load_thread_t *th = arg;

    (void)fd;
    (void)what;
    record_error(th->g, "--timeout of %g s expired", th->g->timeout);
    event_base_loopbreak(th->base);
}

static void *
thread_main(void *arg)
{
    gx_load_thread_t *th = arg;
    gx_load_t *g = th->g;
    struct timeval tv;

    pthread_barrier_wait(&g->go);
    tv.tv_sec = (time_t)g->timeout;
    tv.tv_usec = (suseconds_t)((g->timeout - (double)tv.tv_sec) * 1e6);
    evtimer_add(th->ev_timeout, &tv);
    for (unsigned i = 0; i < th->nconns; i++) {
        conn_fill(&th->conns[i]);
        conn_flush(&th->conns[i]);
    }
    /* a loopbreak before the loop runs is forgotten: dispatch only with work left */
    if (!thread_check_done(th))
        event_base_dispatch(th->base);
    /* what is still in flight has timed out */
    for (unsigned i = 0; i < th->nconns; i++) {
        gx_load_conn_t *c = &th->conns[i];

        th->status[ST_TIMEOUT] += c->active;
        th->done += c->active;
        c->active = 0;
    }
    if (th->t_end.tv_sec == 0)
        clock_gettime(CLOCK_MONOTONIC, &th->t_end);
    if (g->tokens_out != NULL)
        tokens_flush(th);
    return NULL;
}

static int
thread_setup(gx_load_t *g, gx_load_thread_t *th, const struct addrinfo *ai)
{
    th->g = g;
    th->base = event_base_new();
    th->ev_timeout = th->base ? evtimer_new(th->base, thread_on_timeout, th) : NULL;
    th->conns = calloc(th->nconns, sizeof(*th->conns));
    th->lat_cap = g->stream_msgs > 0 ? g->n * g->stream_msgs : g->n;
    if (th->lat_cap > GX_LOAD_MAX_LAT)
        th->lat_cap = GX_LOAD_MAX_LAT;
    th->lat_us = malloc(th->lat_cap * sizeof(*th->lat_us));
    if (g->tokens_out != NULL && (th->tokbuf = malloc(GX_LOAD_TOKBUF)) == NULL)
        return -1;
    if (th->ev_timeout == NULL || th->conns == NULL || th->lat_us == NULL)
        return -1;
    for (unsigned i = 0; i < th->nconns; i++) {
        gx_load_conn_t *c = &th->conns[i];

        c->th = th;
        c->fd = conn_connect(ai);
        if (c->fd < 0) {
            fprintf(stderr, "gx_load: connect %s:%s: %s\n", g->host, g->port, strerror(errno));
            return -1;
        }
        c->ev_read = event_new(th->base, c->fd, EV_READ | EV_PERSIST, conn_on_read, c);
        c->ev_write = event_new(th->base, c->fd, EV_WRITE | EV_PERSIST, conn_on_write, c);
        if (c->ev_read == NULL || c->ev_write == NULL || conn_session_new(c) != 0 ||
            event_add(c->ev_read, NULL) != 0)
            return -1;
        th->live++;
    }
    return 0;
}

static void
thread_teardown(gx_load_thread_t *th)
{
    for (unsigned i = 0; th->conns != NULL && i < th->nconns; i++) {
        gx_load_conn_t *c = &th->conns[i];

        if (c->sess != NULL && !c->dead) {
            nghttp2_session_terminate_session(c->sess, NGHTTP2_NO_ERROR);
            conn_flush(c);
        }
        if (c->sess != NULL)
            nghttp2_session_del(c->sess);
        conn_free_streams(c);
        if (c->ev_read != NULL)
            event_free(c->ev_read);
        if (c->ev_write != NULL)
            event_free(c->ev_write);
        if (c->fd >= 0)
            close(c->fd);
        free(c->out);
    }
    free(th->conns);
    free(th->lat_us);
    free(th->tokbuf);
    if (th->ev_timeout != NULL)
        event_free(th->ev_timeout);
    if (th->base != NULL)
        event_base_free(th->base);
}

/* ------------------------------------------------------------------ report */

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

static double
pct_ms(const uint32_t *v, uint64_t n, double p)
{
    uint64_t i;

    if (n == 0)
        return 0;
    i = (uint64_t)(p * (double)(n - 1) + 0.5);
    return v[i] / 1000.0;
}

/* --stream-msgs: the message counts, and their part of the result line */
static void
report_messages(const gx_load_t *g, const gx_load_thread_t *ths, double secs, char *res,
                size_t res_size)
{
    uint64_t sent = 0, recv = 0, bad = 0;
    size_t rmin = 0, rmax = 0;

    for (unsigned t = 0; t < g->threads; t++) {
        sent += ths[t].msgs_sent;
        recv += ths[t].msgs_recv;
        bad += ths[t].msgs_bad;
        if (ths[t].msgs_recv > 0 && (rmin == 0 || ths[t].resp_min < rmin))
            rmin = ths[t].resp_min;
        if (ths[t].resp_max > rmax)
            rmax = ths[t].resp_max;
    }
    printf("messages: %llu requests sent (of %llu), %llu responses received, %.1f responses/s, "
           "%zu..%zu bytes each, %llu malformed\n", (unsigned long long)sent,
           (unsigned long long)(g->n * g->stream_msgs), (unsigned long long)recv,
           secs > 0 ? (double)recv / secs : 0, rmin, rmax, (unsigned long long)bad);
    snprintf(res, res_size, " msgs_sent=%llu msgs_recv=%llu msgs_bad=%llu msg_rps=%.1f",
             (unsigned long long)sent, (unsigned long long)recv, (unsigned long long)bad,
             secs > 0 ? (double)recv / secs : 0);
}

/* prints the summary; @return the exit status */
static int
report(gx_load_t *g, gx_load_thread_t *ths)
{
    uint64_t status[ST_COUNT] = {0}, done = 0, nlat = 0, non200 = 0, errors = 0, unsent;
    char msgs[256] = "";
    struct timespec end = g->t0;
    uint32_t *lat;
    double secs;
    int ok;

    for (unsigned t = 0; t < g->threads; t++) {
        for (int k = 0; k < ST_COUNT; k++)
            status[k] += ths[t].status[k];
        done += ths[t].done;
        nlat += ths[t].nlat;
        non200 += ths[t].http_non200;
        if (ts_diff(&end, &ths[t].t_end) > 0)
            end = ths[t].t_end;
    }
    lat = malloc((nlat ? nlat : 1) * sizeof(*lat));
    if (lat == NULL)
        return 1;
    nlat = 0;
    for (unsigned t = 0; t < g->threads; t++) {
        memcpy(lat + nlat, ths[t].lat_us, ths[t].nlat * sizeof(*lat));
        nlat += ths[t].nlat;
    }
    qsort(lat, nlat, sizeof(*lat), cmp_u32);
    secs = ts_diff(&g->t0, &end);
    printf("finished in %.3f s, %.1f req/s, %.1f OK/s (%llu of %llu requests completed)\n", secs,
           secs > 0 ? (double)(done - status[ST_TIMEOUT]) / secs : 0,
           secs > 0 ? (double)status[0] / secs : 0,
           (unsigned long long)(done - status[ST_TIMEOUT]), (unsigned long long)g->n);
    if (g->stream_msgs > 0)
        report_messages(g, ths, secs, msgs, sizeof(msgs));
    printf("latency%s: p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
           g->stream_msgs > 0 ? " (request message to its response)" : "",
           pct_ms(lat, nlat, 0.5), pct_ms(lat, nlat, 0.99), nlat ? lat[nlat - 1] / 1000.0 : 0.0);
    printf("status:");
    for (int k = 0; k < ST_COUNT; k++)
        if (status[k] > 0)
            printf(" %s=%llu", status_names[k], (unsigned long long)status[k]);
    unsent = g->issued < g->n ? g->n - g->issued : 0;
    if (unsent > 0)
        printf(" not-sent=%llu", (unsigned long long)unsent);
    if (non200 > 0)
        printf(" (HTTP status not 200: %llu)", (unsigned long long)non200);
    printf("\n");
    errors = unsent;
    for (int k = 1; k < ST_COUNT; k++)
        errors += status[k];
    if (errors > 0 && g->first_error[0])
        printf("first error: %s\n", g->first_error);
    printf("result: done=%llu ok=%llu errors=%llu secs=%.6f rps=%.1f p50_ms=%.3f p99_ms=%.3f "
           "max_ms=%.3f%s\n", (unsigned long long)(done - status[ST_TIMEOUT]),
           (unsigned long long)status[0], (unsigned long long)errors, secs,
           secs > 0 ? (double)(done - status[ST_TIMEOUT]) / secs : 0, pct_ms(lat, nlat, 0.5),
           pct_ms(lat, nlat, 0.99), nlat ? lat[nlat - 1] / 1000.0 : 0.0, msgs);
    free(lat);
    ok = status[0] == g->n;
    if (g->allow_errors)
        ok = status[ST_MISSING] + status[ST_INVALID] + status[ST_RESET] + status[ST_BAD_MSG] +
             status[ST_MSG_COUNT] + status[ST_TIMEOUT] == 0 && done == g->n;
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------------ set-up */

static void
usage(void)
{
    fprintf(stderr,
            "usage: gx_load [options] http://HOST:PORT/package.Service/Method\n"
            "  -n N              requests in all (default 10000)\n"
            "  -c N              connections (default 1)\n"
            "  -m N              concurrent streams per connection (default 1)\n"
            "  -t N              threads, each with its share of the connections (default 1)\n"
            "  -d, --body FILE   request template: one serialized protobuf message\n"
            "  --framed          the template already has the 5-byte gRPC message prefix\n"
            "  --placeholder S   bytes replaced by a zero-padded counter (default @@@@@@@@)\n"
            "  --start N         the first request's counter (default 0)\n"
            "  -H 'NAME: VALUE'  one more request header (repeatable, up to %d)\n"
            "  --timeout SEC     stop after SEC seconds; unfinished requests fail (default 60)\n"
            "  --allow-errors    exit 0 even when some grpc-status is not 0\n"
            "  --stream-msgs K   bidi streaming: every call sends K request messages, then\n"
            "                    half-closes, and must get K responses (-n counts calls)\n"
            "  --stream-window W requests of a stream awaiting their response (default 1)\n"
            "  --expect-len N    --stream-msgs: every response message has N bytes\n"
            "  --tokens-out FILE unary: write \"NUMBER TOKEN\" per OK call, TOKEN being field 2\n"
            "                    (a string) of its response; a response without it is an error\n"
            "  --tokens FILE     read \"NUMBER TOKEN\" lines, one for every request number used\n"
            "                    (--start .. --start + requests - 1; --stream-msgs: messages),\n"
            "                    and put each request's token in place of the token placeholder\n"
            "  --token-placeholder S  with --tokens: the bytes replaced by the token, as long\n"
            "                    as every token (default 48 '#')\n",
            GX_LOAD_MAX_HEADERS);
    exit(2);
}

static nghttp2_nv
make_nv(const char *name, const char *value)
{
    nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                     NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
    return nv;
}

static int
parse_url(gx_load_t *g, char *url)
{
    char *p, *slash, *colon;

    if (strncmp(url, "http://", 7) != 0)
        return -1;
    p = url + 7;
    slash = strchr(p, '/');
    if (slash == NULL || slash[1] == '\0')
        return -1;
    snprintf(g->authority, sizeof(g->authority), "%.*s", (int)(slash - p), p);
    g->path = strdup(slash);
    *slash = '\0';
    colon = strrchr(p, ':');
    if (colon == NULL || g->path == NULL)
        return -1;
    *colon = '\0';
    g->host = p[0] == '[' ? strndup(p + 1, strlen(p) - 2) : p;
    g->port = colon + 1;
    return 0;
}

/* the offsets of @p mark in the template (after the prefix); @return how many */
static size_t
find_marks(const gx_load_t *g, const char *mark, size_t mark_len, size_t *marks)
{
    size_t n = 0;

    for (size_t i = 5; i + mark_len <= g->body_len && n < GX_LOAD_MAX_MARKS;) {
        if (memcmp(g->body + i, mark, mark_len) == 0) {
            marks[n++] = i;
            i += mark_len;
        } else {
            i++;
        }
    }
    return n;
}

/* reads the template, frames it if needed and finds the placeholders */
static int
load_body(gx_load_t *g, const char *file, int framed, const char *mark, const char *tmark)
{
    FILE *f = fopen(file, "rb");
    uint8_t *buf = malloc(GX_LOAD_MAX_BODY + 5);
    size_t len, off = framed ? 0 : 5;

    if (f == NULL || buf == NULL) {
        fprintf(stderr, "gx_load: %s: %s\n", file, strerror(errno));
        return -1;
    }
    len = fread(buf + off, 1, GX_LOAD_MAX_BODY, f);
    fclose(f);
    if (!framed) {
        buf[0] = 0;
        buf[1] = (uint8_t)(len >> 24);
        buf[2] = (uint8_t)(len >> 16);
        buf[3] = (uint8_t)(len >> 8);
        buf[4] = (uint8_t)len;
    }
    g->body = buf;
    g->body_len = len + off;
    g->mark_len = strlen(mark);
    if (g->mark_len == 0 || g->mark_len > 19)
        return -1;
    g->nmarks = find_marks(g, mark, g->mark_len, g->marks);
    if (tmark == NULL)
        return 0;
    g->tok_len = strlen(tmark);
    if (g->tok_len == 0 || g->tok_len > GX_LOAD_MAX_TOKEN)
        return -1;
    g->ntmarks = find_marks(g, tmark, g->tok_len, g->tmarks);
    if (g->ntmarks == 0) {
        fprintf(stderr, "gx_load: the token placeholder \"%s\" is not in %s\n", tmark, file);
        return -1;
    }
    /* the two placeholders must not share a byte */
    for (size_t i = 0; i < g->nmarks; i++)
        for (size_t j = 0; j < g->ntmarks; j++)
            if (g->marks[i] < g->tmarks[j] + g->tok_len &&
                g->tmarks[j] < g->marks[i] + g->mark_len) {
                fprintf(stderr, "gx_load: the placeholders overlap in %s\n", file);
                return -1;
            }
    return 0;
}

/*
 * --tokens: reads "NUMBER TOKEN" lines into g->tokens, indexed by NUMBER -
 * start, for the @p count numbers the requests use.  A number out of range or
 * given twice, a token not as long as the placeholder or with a blank inside,
 * a malformed line, or a number without a token: a message and @return -1
 */
static int
load_tokens(gx_load_t *g, const char *file, uint64_t count)
{
    FILE *f = fopen(file, "r");
    uint8_t *have = calloc(count, 1);
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    uint64_t got = 0;
    int rv = -1;

    g->tokens = malloc(count * g->tok_len);
    if (f == NULL || have == NULL || g->tokens == NULL) {
        fprintf(stderr, "gx_load: %s: %s\n", file, f == NULL ? strerror(errno) : "no memory");
        goto out;
    }
    while ((len = getline(&line, &cap, f)) >= 0) {
        char *p = line, *num_end, *tok;
        unsigned long long num;
        size_t tl;

        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        if (*p < '0' || *p > '9')
            goto bad;
        errno = 0;
        num = strtoull(p, &num_end, 10);
        if (errno != 0 || *num_end != ' ')
            goto bad;
        tok = num_end + 1;
        tl = strlen(tok);
        if (tl != g->tok_len || strpbrk(tok, " \t") != NULL) {
            fprintf(stderr, "gx_load: %s:%zu: the token has %zu characters or a blank, the token "
                    "placeholder %zu\n", file, lineno, tl, g->tok_len);
            goto out;
        }
        if (num < g->start || num - g->start >= count) {
            fprintf(stderr, "gx_load: %s:%zu: number %llu is not one of the requests' "
                    "(%llu .. %llu)\n", file, lineno, num, (unsigned long long)g->start,
                    (unsigned long long)(g->start + count - 1));
            goto out;
        }
        if (have[num - g->start]) {
            fprintf(stderr, "gx_load: %s:%zu: a second token for %llu\n", file, lineno, num);
            goto out;
        }
        have[num - g->start] = 1;
        memcpy(g->tokens + (num - g->start) * g->tok_len, tok, g->tok_len);
        got++;
        continue;
bad:
        fprintf(stderr, "gx_load: %s:%zu: not \"NUMBER TOKEN\"\n", file, lineno);
        goto out;
    }
    if (ferror(f)) {
        fprintf(stderr, "gx_load: %s: %s\n", file, strerror(errno));
        goto out;
    }
    if (got != count) {
        uint64_t i = 0;

        while (have[i])
            i++;
        fprintf(stderr, "gx_load: %s has tokens for %llu of the %llu request numbers; none for "
                "%llu, for one\n", file, (unsigned long long)got, (unsigned long long)count,
                (unsigned long long)(g->start + i));
        goto out;
    }
    rv = 0;
out:
    free(line);
    free(have);
    if (f != NULL)
        fclose(f);
    return rv;
}

static uint64_t
pow10u(size_t e)
{
    uint64_t v = 1;

    while (e-- > 0)
        v *= 10;
    return v;
}

static int
parse_args(gx_load_t *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"body", required_argument, NULL, 'd'}, {"framed", no_argument, NULL, 'F'},
        {"placeholder", required_argument, NULL, 'P'}, {"start", required_argument, NULL, 'S'},
        {"timeout", required_argument, NULL, 'T'}, {"allow-errors", no_argument, NULL, 'A'},
        {"stream-msgs", required_argument, NULL, 'K'},
        {"stream-window", required_argument, NULL, 'W'},
        {"expect-len", required_argument, NULL, 'L'},
        {"tokens-out", required_argument, NULL, 'O'}, {"tokens", required_argument, NULL, 'I'},
        {"token-placeholder", required_argument, NULL, 'Q'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    static char default_tmark[49];
    const char *body = NULL, *mark = "@@@@@@@@", *tokens = NULL, *tmark = NULL;
    const char *extra[GX_LOAD_MAX_HEADERS];
    size_t nextra = 0;
    int framed = 0, o;

    g->n = 10000;
    g->conns = g->streams = g->threads = 1;
    g->timeout = 60;
    g->window = 1;
    g->expect_len = -1;
    while ((o = getopt_long(argc, argv, "n:c:m:t:d:H:h", opts, NULL)) != -1) {
        switch (o) {
        case 'n': g->n = strtoull(optarg, NULL, 10); break;
        case 'c': g->conns = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'm': g->streams = (unsigned)strtoul(optarg, NULL, 10); break;
        case 't': g->threads = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'd': body = optarg; break;
        case 'F': framed = 1; break;
        case 'P': mark = optarg; break;
        case 'S': g->start = strtoull(optarg, NULL, 10); break;
        case 'T': g->timeout = strtod(optarg, NULL); break;
        case 'A': g->allow_errors = 1; break;
        case 'K': g->stream_msgs = strtoull(optarg, NULL, 10); break;
        case 'W': g->window = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'L': g->expect_len = strtol(optarg, NULL, 10); break;
        case 'O': g->tokens_out_path = optarg; break;
        case 'I': tokens = optarg; break;
        case 'Q': tmark = optarg; break;
        case 'H':
            if (nextra == GX_LOAD_MAX_HEADERS || strchr(optarg, ':') == NULL)
                usage();
            extra[nextra++] = optarg;
            break;
        default: usage();
        }
    }
    if (optind != argc - 1 || body == NULL || parse_url(g, argv[optind]) != 0 || g->n == 0 ||
        g->n > GX_LOAD_MAX_REQS || g->conns == 0 || g->conns > GX_LOAD_MAX_CONNS ||
        g->streams == 0 || g->streams > GX_LOAD_MAX_STREAMS || g->threads == 0 ||
        g->threads > GX_LOAD_MAX_THREADS || !(g->timeout > 0 && g->timeout <= 86400) ||
        g->window == 0 || g->window > GX_LOAD_MAX_WINDOW ||
        g->stream_msgs > GX_LOAD_MAX_REQS / g->n || g->expect_len > (long)GX_LOAD_MAX_BODY)
        usage();
    if (g->threads > g->conns)
        g->threads = g->conns;
    if ((g->tokens_out_path != NULL && g->stream_msgs > 0) || (tmark != NULL && tokens == NULL)) {
        fprintf(stderr, "gx_load: --tokens-out is for unary calls (no --stream-msgs), "
                "--token-placeholder needs --tokens\n");
        usage();
    }
    if (tokens != NULL && tmark == NULL) {
        memset(default_tmark, '#', sizeof(default_tmark) - 1);
        tmark = default_tmark;
    }
    if (load_body(g, body, framed, mark, tokens != NULL ? tmark : NULL) != 0)
        usage();
    if (tokens != NULL &&
        load_tokens(g, tokens, g->n * (g->stream_msgs ? g->stream_msgs : 1)) != 0)
        exit(2);
    if (g->nmarks > 0 && g->mark_len < 19 &&
        g->start + g->n * (g->stream_msgs ? g->stream_msgs : 1) > pow10u(g->mark_len)) {
        fprintf(stderr, "gx_load: --start + -n exceeds %zu digits of the placeholder\n",
                g->mark_len);
        exit(2);
    }
    g->hdrs[g->nhdrs++] = make_nv(":method", "POST");
    g->hdrs[g->nhdrs++] = make_nv(":scheme", "http");
    g->hdrs[g->nhdrs++] = make_nv(":authority", g->authority);
    g->hdrs[g->nhdrs++] = make_nv(":path", g->path);
    g->hdrs[g->nhdrs++] = make_nv("content-type", "application/grpc");
    g->hdrs[g->nhdrs++] = make_nv("te", "trailers");
    for (size_t i = 0; i < nextra; i++) {
        char *name = strdup(extra[i]);
        char *colon = name ? strchr(name, ':') : NULL;
        char *value;

        if (colon == NULL)
            usage();
        *colon = '\0';
        value = colon + 1;
        while (*value == ' ')
            value++;
        for (char *q = name; *q; q++)
            if (*q >= 'A' && *q <= 'Z')
                *q = (char)(*q - 'A' + 'a');
        g->hdrs[g->nhdrs++] = make_nv(name, value);
    }
    return 0;
}

int
main(int argc, char **argv)
{
    static gx_load_t g;
    gx_load_thread_t *ths;
    struct addrinfo hints = {0}, *ai = NULL;
    int rv, status = 1;

    signal(SIGPIPE, SIG_IGN);
    parse_args(&g, argc, argv);
    hints.ai_socktype = SOCK_STREAM;
    rv = getaddrinfo(g.host, g.port, &hints, &ai);
    if (rv != 0) {
        fprintf(stderr, "gx_load: %s:%s: %s\n", g.host, g.port, gai_strerror(rv));
        return 1;
    }
    ths = calloc(g.threads, sizeof(*ths));
    if (ths == NULL)
        return 1;
    if (g.tokens_out_path != NULL && (g.tokens_out = fopen(g.tokens_out_path, "w")) == NULL) {
        fprintf(stderr, "gx_load: %s: %s\n", g.tokens_out_path, strerror(errno));
        return 1;
    }
    pthread_mutex_init(&g.err_lock, NULL);
    pthread_barrier_init(&g.go, NULL, g.threads + 1);
    printf("gx_load: %llu %s to http://%s%s, %u connection(s) x %u stream(s), "
           "%u thread(s), body %zu bytes framed, %zu placeholder(s) from %llu\n",
           (unsigned long long)g.n, g.stream_msgs ? "bidi streams" : "requests", g.authority,
           g.path, g.conns, g.streams, g.threads, g.body_len, g.nmarks,
           (unsigned long long)g.start);
    if (g.stream_msgs > 0)
        printf("gx_load: %llu request messages per stream, at most %u awaiting a response\n",
               (unsigned long long)g.stream_msgs, g.window);
    if (g.ntmarks > 0)
        printf("gx_load: %zu token placeholder(s) of %zu bytes, a token per request number\n",
               g.ntmarks, g.tok_len);
    for (unsigned t = 0; t < g.threads; t++) {
        ths[t].nconns = g.conns / g.threads + (t < g.conns % g.threads);
        if (thread_setup(&g, &ths[t], ai) != 0) {
            fprintf(stderr, "gx_load: set-up failed\n");
            return 1;
        }
    }
    freeaddrinfo(ai);
    for (unsigned t = 0; t < g.threads; t++)
        if (pthread_create(&ths[t].tid, NULL, thread_main, &ths[t]) != 0)
            return 1;
    clock_gettime(CLOCK_MONOTONIC, &g.t0);
    pthread_barrier_wait(&g.go);
    for (unsigned t = 0; t < g.threads; t++)
        pthread_join(ths[t].tid, NULL);
    status = report(&g, ths);
    if (g.tokens_out != NULL) {
        uint64_t written = 0;
        int failed = 0;

        for (unsigned t = 0; t < g.threads; t++) {
            written += ths[t].tokens_written;
            failed |= ths[t].tokens_failed;
        }
        if (fclose(g.tokens_out) != 0 || failed) {
            fprintf(stderr, "gx_load: writing %s failed\n", g.tokens_out_path);
            status = 1;
        }
        printf("tokens: %llu written to %s\n", (unsigned long long)written, g.tokens_out_path);
    }
    for (unsigned t = 0; t < g.threads; t++)
        thread_teardown(&ths[t]);
    free(ths);
    free(g.body);
    free(g.tokens);
    fflush(stdout);
    return status;
}
