/* SPDX-License-Identifier: MIT */
/*
 * bare_server: the Heartbeat benchmark's floor, what the same map update costs
 * with nothing but nghttp2, libevent and protobuf-c.  It is lean but honest: a
 * real nghttp2 server session (HTTP messaging checks on), real gRPC framing
 * (5-byte prefix, compressed messages rejected), real protobuf-c decoding of
 * HeartbeatRequest and encoding of HeartbeatResponse, and the answer
 * ":status 200, content-type: application/grpc, message, grpc-status" (errors
 * as a trailers-only response with grpc-message).
 *
 * Each of the -t threads owns an event_base and a listening socket bound to the
 * same address with SO_REUSEPORT, and serves the connections the kernel hands
 * that socket.  A readable connection is read once into its thread's buffer and
 * fed to nghttp2_session_mem_recv; whatever nghttp2 then has to send is
 * gathered with nghttp2_session_mem_send and written with one send().  While a
 * write is pending the connection stops reading.  Nodes live in one chained
 * hash table keyed (pool, node id) under one mutex, like ref_server's
 * unordered_map, and a heartbeat does ref_server's update under that mutex.
 *
 * The command line and the counts are ref_server's, so that bench/heartbeat.sh
 * --ref can start either.  Only /galaxy.pool.v1.NodeRegistry/Heartbeat is
 * served: every other method is answered UNIMPLEMENTED, so nodes come from
 * --preload only (heartbeat.sh --ref-register does not work with this server),
 * and --prepost is accepted and ignored.  Every answered call is counted by
 * gRPC status; requests that are not gRPC (not POST: 405, no
 * application/grpc content-type: 415) are answered in plain HTTP and not
 * counted.  Connections have no idle timeout.
 *
 *   bare_server [--listen 127.0.0.1:PORT] [-t THREADS] [--preload N]
 *               [--prepost N] [--ready-file FILE]
 */
#define _GNU_SOURCE

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include "galaxy/pool/v1/pool.pb-c.h"

#define HEARTBEAT_PATH "/galaxy.pool.v1.NodeRegistry/Heartbeat"
#define HEARTBEAT_INTERVAL_MS 10000
#define PRELOAD_POOL "mainnet"
#define PRELOAD_TOKEN "bench-token"

#define MAX_STREAMS 1000        /* SETTINGS_MAX_CONCURRENT_STREAMS */
#define STREAM_WINDOW (1 << 20) /* SETTINGS_INITIAL_WINDOW_SIZE */
#define CONN_WINDOW (16 << 20)  /* connection receive window */
#define MAX_MESSAGE (4 << 20)   /* gRPC's default maximum received message */
#define READ_BYTES (64 << 10)   /* one recv() per readable event */
#define OUT_HIGH (256 << 10)    /* stop gathering nghttp2 output beyond this */
#define BODY_INLINE 256         /* request bodies up to this need no malloc */
#define RESP_BYTES 64           /* a framed HeartbeatResponse is at most 29 */
#define ACCEPT_BATCH 16

typedef Galaxy__Pool__V1__HeartbeatRequest hb_req_t;
typedef Galaxy__Pool__V1__HeartbeatResponse hb_resp_t;

enum {
    ST_OK = 0,
    ST_UNKNOWN = 2,
    ST_NOT_FOUND = 5,
    ST_PERMISSION_DENIED = 7,
    ST_RESOURCE_EXHAUSTED = 8,
    ST_UNIMPLEMENTED = 12,
    ST_INTERNAL = 13,
    N_CODES = 17,
};

/* ------------------------------------------------------------------ types */

struct counts {
    _Atomic uint64_t by_code[N_CODES];
    _Atomic uint64_t heartbeat_ok;
};

/* One request stream, from its HEADERS to its close. */
struct stream {
    struct stream *prev, *next; /* the connection's open streams */
    int32_t id;
    bool post, grpc, heartbeat; /* what the request headers said */
    bool answered;
    uint8_t *body; /* the request's DATA: inline or malloc'ed */
    size_t body_len, body_cap;
    size_t resp_len, resp_off; /* the framed response, and how much is sent */
    uint8_t resp[RESP_BYTES];
    uint8_t inline_body[BODY_INLINE];
};

struct worker;

struct conn {
    struct conn *prev, *next; /* the worker's connections */
    struct worker *w;
    int fd;
    bool writing; /* output pending: wev armed, rev not */
    nghttp2_session *h2;
    struct event *rev, *wev;
    struct stream *streams;
    uint8_t *out; /* gathered output; [out_off, out_len) unsent */
    size_t out_off, out_len, out_cap;
};

struct worker {
    struct counts counts; /* written by this worker only */
    pthread_t thread;
    struct event_base *base;
    int lfd;
    struct event *accept_ev, *stop_ev;
    struct conn *conns;
    uint8_t rbuf[READ_BYTES];
};

struct node {
    struct node *next; /* the bucket's chain */
    uint64_t hash;
    const char *pool, *id, *token; /* in the same allocation as the node */
    size_t pool_len, id_len, token_len;
    int state;
    double load;
    uint32_t running_jobs;
    int64_t registered_unix_ms, last_heartbeat_unix_ms;
    uint64_t revision;
};

struct options {
    const char *listen;
    int threads;
    long preload;
    const char *ready_file;
};

static struct {
    pthread_mutex_t mu;
    struct node **buckets;
    size_t mask;
    uint64_t revision;
} g_reg = {.mu = PTHREAD_MUTEX_INITIALIZER};

static nghttp2_session_callbacks *g_cbs;

/* ------------------------------------------------------------------ registry */

static int64_t
now_unix_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t
fnv1a(uint64_t h, const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)p[i]) * 1099511628211ULL;
    return h;
}

/* The key is "pool/id", as in ref_server, hashed without being built. */
static uint64_t
key_hash(const char *pool, size_t pool_len, const char *id, size_t id_len)
{
    uint64_t h = fnv1a(14695981039346656037ULL, pool, pool_len);

    h = fnv1a(h, "/", 1);
    return fnv1a(h, id, id_len);
}

static bool
bytes_eq(const char *a, size_t a_len, const char *b, size_t b_len)
{
    return a_len == b_len && memcmp(a, b, a_len) == 0;
}

static int
reg_init(size_t expected)
{
    size_t n = 1024;

    while (n < expected)
        n <<= 1;
    g_reg.buckets = calloc(n, sizeof(*g_reg.buckets));
    if (g_reg.buckets == NULL)
        return -1;
    g_reg.mask = n - 1;
    return 0;
}

static void
reg_deinit(void)
{
    for (size_t i = 0; g_reg.buckets != NULL && i <= g_reg.mask; i++) {
        struct node *n = g_reg.buckets[i], *next;

        for (; n != NULL; n = next) {
            next = n->next;
            free(n);
        }
    }
    free(g_reg.buckets);
    g_reg.buckets = NULL;
}

static char *
copy_str(char *dst, const char *src, size_t len)
{
    memcpy(dst, src, len);
    dst[len] = '\0';
    return dst;
}

/* Caller holds g_reg.mu. */
static struct node *
reg_find(uint64_t h, const char *pool, size_t pool_len, const char *id, size_t id_len)
{
    struct node *n = g_reg.buckets[h & g_reg.mask];

    for (; n != NULL; n = n->next)
        if (n->hash == h && bytes_eq(n->id, n->id_len, id, id_len) &&
            bytes_eq(n->pool, n->pool_len, pool, pool_len))
            return n;
    return NULL;
}

/* Adds a HEALTHY node, as ref_server's preload does; caller holds g_reg.mu. */
static int
reg_add(const char *pool, const char *id, const char *token, int64_t now)
{
    size_t pl = strlen(pool), il = strlen(id), tl = strlen(token);
    struct node *n = calloc(1, sizeof(*n) + pl + il + tl + 3);
    uint64_t h = key_hash(pool, pl, id, il);
    char *p;

    if (n == NULL)
        return -1;
    p = (char *)(n + 1);
    n->pool = copy_str(p, pool, pl);
    n->id = copy_str(p + pl + 1, id, il);
    n->token = copy_str(p + pl + il + 2, token, tl);
    n->pool_len = pl;
    n->id_len = il;
    n->token_len = tl;
    n->hash = h;
    n->state = GALAXY__POOL__V1__NODE_STATE__NODE_STATE_HEALTHY;
    n->registered_unix_ms = now;
    n->last_heartbeat_unix_ms = now;
    n->revision = ++g_reg.revision;
    n->next = g_reg.buckets[h & g_reg.mask];
    g_reg.buckets[h & g_reg.mask] = n;
    return 0;
}

static int
reg_preload(long count)
{
    int64_t now = now_unix_ms();
    char id[32];
    int rv = 0;

    pthread_mutex_lock(&g_reg.mu);
    for (long i = 0; i < count && rv == 0; i++) {
        snprintf(id, sizeof(id), "n%ld", i);
        rv = reg_add(PRELOAD_POOL, id, PRELOAD_TOKEN, now);
    }
    pthread_mutex_unlock(&g_reg.mu);
    return rv;
}

/* ref_server's Registry::heartbeat: @return a gRPC status, @p msg set when not OK. */
static int
reg_heartbeat(const hb_req_t *req, hb_resp_t *resp, const char **msg)
{
    size_t pool_len = strlen(req->pool), id_len = strlen(req->node_id);
    uint64_t h = key_hash(req->pool, pool_len, req->node_id, id_len);
    int64_t now = now_unix_ms();
    int code = ST_OK;
    struct node *n;

    pthread_mutex_lock(&g_reg.mu);
    n = reg_find(h, req->pool, pool_len, req->node_id, id_len);
    if (n == NULL) {
        code = ST_NOT_FOUND;
        *msg = "node not found";
    } else if (!bytes_eq(n->token, n->token_len, req->lease_token, strlen(req->lease_token))) {
        code = ST_PERMISSION_DENIED;
        *msg = "wrong lease token";
    } else {
        n->load = req->load;
        n->running_jobs = req->running_jobs;
        n->last_heartbeat_unix_ms = now;
        n->state = GALAXY__POOL__V1__NODE_STATE__NODE_STATE_HEALTHY;
        resp->state = GALAXY__POOL__V1__NODE_STATE__NODE_STATE_HEALTHY;
        resp->heartbeat_interval_ms = HEARTBEAT_INTERVAL_MS;
        resp->revision = n->revision;
    }
    pthread_mutex_unlock(&g_reg.mu);
    return code;
}

/* ------------------------------------------------------------------ counts */

/* Only the worker writes its counters: no read-modify-write instruction needed. */
static void
counts_add(struct counts *c, int code, bool heartbeat)
{
    atomic_store_explicit(&c->by_code[code],
                          atomic_load_explicit(&c->by_code[code], memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (code == ST_OK && heartbeat)
        atomic_store_explicit(&c->heartbeat_ok,
                              atomic_load_explicit(&c->heartbeat_ok, memory_order_relaxed) + 1,
                              memory_order_relaxed);
}

/* ref_server's print_counts, line for line. */
static void
counts_print(const struct worker *ws, int n_workers, const char *why)
{
    uint64_t by_code[N_CODES] = {0}, heartbeat_ok = 0, err = 0;
    char detail[N_CODES * 32] = "";
    size_t off = 0;

    for (int i = 0; i < n_workers; i++) {
        for (int c = 0; c < N_CODES; c++)
            by_code[c] += atomic_load_explicit(&ws[i].counts.by_code[c], memory_order_relaxed);
        heartbeat_ok += atomic_load_explicit(&ws[i].counts.heartbeat_ok, memory_order_relaxed);
    }
    for (int c = 1; c < N_CODES; c++) {
        err += by_code[c];
        if (by_code[c] != 0)
            off += (size_t)snprintf(detail + off, sizeof(detail) - off, " code%d=%" PRIu64, c,
                                    by_code[c]);
    }
    fprintf(stderr,
            "ok=%" PRIu64 " err=%" PRIu64 " heartbeat_ok=%" PRIu64 " register_ok=0%s (%s)\n",
            by_code[0], err, heartbeat_ok, detail, why);
    fflush(stderr);
}

/* ------------------------------------------------------------------ streams */

#define NV(name, value)                                                                            \
    {                                                                                              \
        (uint8_t *)(name), (uint8_t *)(value), sizeof(name) - 1, sizeof(value) - 1,                \
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE                           \
    }

static const char *const status_text[N_CODES] = {
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
};

static struct stream *
stream_new(struct conn *c, int32_t id)
{
    struct stream *st = malloc(sizeof(*st));

    if (st == NULL)
        return NULL;
    /* everything but the two buffers, which are written before they are read */
    memset(st, 0, offsetof(struct stream, resp));
    st->id = id;
    st->body = st->inline_body;
    st->body_cap = BODY_INLINE;
    st->next = c->streams;
    if (c->streams != NULL)
        c->streams->prev = st;
    c->streams = st;
    return st;
}

static void
stream_free(struct conn *c, struct stream *st)
{
    if (st->prev != NULL)
        st->prev->next = st->next;
    else
        c->streams = st->next;
    if (st->next != NULL)
        st->next->prev = st->prev;
    if (st->body != st->inline_body)
        free(st->body);
    free(st);
}

/* @return 0, or -1 when the body would pass MAX_MESSAGE plus its prefix or memory is out. */
static int
stream_body_append(struct stream *st, const uint8_t *data, size_t len)
{
    size_t cap = st->body_cap;
    uint8_t *p;

    if (len > MAX_MESSAGE + 5 - st->body_len)
        return -1;
    if (st->body_len + len > cap) {
        while (cap < st->body_len + len)
            cap *= 2;
        p = st->body == st->inline_body ? malloc(cap) : realloc(st->body, cap);
        if (p == NULL)
            return -1;
        if (st->body == st->inline_body)
            memcpy(p, st->inline_body, st->body_len);
        st->body = p;
        st->body_cap = cap;
    }
    memcpy(st->body + st->body_len, data, len);
    st->body_len += len;
    return 0;
}

/* ------------------------------------------------------------------ calls */

/* Finds the one message of a unary request: @return a gRPC status. */
static int
call_message(const struct stream *st, const uint8_t **msg, size_t *len, const char **why)
{
    uint32_t n;

    if (st->body_len < 5) {
        *why = "missing request message";
        return ST_INTERNAL;
    }
    if (st->body[0] != 0) {
        *why = "compressed messages are not supported";
        return st->body[0] == 1 ? ST_UNIMPLEMENTED : ST_INTERNAL;
    }
    n = (uint32_t)st->body[1] << 24 | (uint32_t)st->body[2] << 16 | (uint32_t)st->body[3] << 8 |
        st->body[4];
    if (n != st->body_len - 5) {
        *why = "request is not exactly one message";
        return ST_INTERNAL;
    }
    *msg = st->body + 5;
    *len = n;
    return ST_OK;
}

static int
call_heartbeat(struct stream *st, const uint8_t *msg, size_t len, const char **why)
{
    hb_resp_t resp = GALAXY__POOL__V1__HEARTBEAT_RESPONSE__INIT;
    hb_req_t *req = galaxy__pool__v1__heartbeat_request__unpack(NULL, len, msg);
    size_t n;
    int code;

    if (req == NULL) {
        *why = "cannot parse HeartbeatRequest";
        return ST_INTERNAL;
    }
    code = reg_heartbeat(req, &resp, why);
    galaxy__pool__v1__heartbeat_request__free_unpacked(req, NULL);
    if (code != ST_OK)
        return code;
    n = galaxy__pool__v1__heartbeat_response__get_packed_size(&resp);
    if (n > RESP_BYTES - 5) {
        *why = "response too large";
        return ST_INTERNAL;
    }
    st->resp[0] = 0;
    st->resp[1] = (uint8_t)(n >> 24);
    st->resp[2] = (uint8_t)(n >> 16);
    st->resp[3] = (uint8_t)(n >> 8);
    st->resp[4] = (uint8_t)n;
    galaxy__pool__v1__heartbeat_response__pack(&resp, st->resp + 5);
    st->resp_len = n + 5;
    return ST_OK;
}

/* Runs the call: @return its gRPC status; on OK st->resp holds the framed answer. */
static int
call_run(struct stream *st, const char **why)
{
    const uint8_t *msg = NULL;
    size_t len = 0;
    int code;

    if (!st->heartbeat) {
        *why = "method not implemented";
        return ST_UNIMPLEMENTED;
    }
    code = call_message(st, &msg, &len, why);
    if (code != ST_OK)
        return code;
    return call_heartbeat(st, msg, len, why);
}

/* The response message, then the trailers: the gRPC shape of a successful call. */
static ssize_t
resp_read(nghttp2_session *h2, int32_t stream_id, uint8_t *buf, size_t len, uint32_t *flags,
          nghttp2_data_source *source, void *user_data)
{
    static const nghttp2_nv trailers[] = {NV("grpc-status", "0")};
    struct stream *st = source->ptr;
    size_t n = st->resp_len - st->resp_off;

    (void)user_data;
    if (n > len)
        n = len;
    memcpy(buf, st->resp + st->resp_off, n);
    st->resp_off += n;
    if (st->resp_off == st->resp_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        if (nghttp2_submit_trailer(h2, stream_id, trailers, 1) != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return (ssize_t)n;
}

static int
call_submit(struct conn *c, struct stream *st, int code, const char *why)
{
    static const nghttp2_nv ok_headers[] = {
        NV(":status", "200"),
        NV("content-type", "application/grpc"),
    };
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = resp_read};
    nghttp2_nv err_headers[] = {
        NV(":status", "200"),
        NV("content-type", "application/grpc"),
        NV("grpc-status", ""),
        NV("grpc-message", ""),
    };

    if (code == ST_OK)
        return nghttp2_submit_response(c->h2, st->id, ok_headers, 2, &prd);
    /* a trailers-only response: one HEADERS frame that ends the stream */
    err_headers[2].value = (uint8_t *)status_text[code];
    err_headers[2].valuelen = strlen(status_text[code]);
    err_headers[3].value = (uint8_t *)why;
    err_headers[3].valuelen = strlen(why);
    return nghttp2_submit_response(c->h2, st->id, err_headers, 4, NULL);
}

/* Answers @p st with @p code; a stream nghttp2 cannot answer is reset. */
static void
call_finish(struct conn *c, struct stream *st, int code, const char *why)
{
    st->answered = true;
    counts_add(&c->w->counts, code, st->heartbeat);
    if (call_submit(c, st, code, why) != 0)
        nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
}

static void
http_reject(struct conn *c, struct stream *st, const char *status)
{
    nghttp2_nv nv[] = {NV(":status", "")};

    st->answered = true;
    nv[0].value = (uint8_t *)status;
    nv[0].valuelen = strlen(status);
    if (nghttp2_submit_response(c->h2, st->id, nv, 1, NULL) != 0)
        nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
}

static void
call_answer(struct conn *c, struct stream *st)
{
    const char *why = "";
    int code;

    if (!st->post) {
        http_reject(c, st, "405");
        return;
    }
    if (!st->grpc) {
        http_reject(c, st, "415");
        return;
    }
    code = call_run(st, &why);
    call_finish(c, st, code, why);
}

/* ------------------------------------------------------------------ nghttp2 callbacks */

static bool
is_request(const nghttp2_frame *f)
{
    return f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST;
}

static int
on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *user_data)
{
    struct stream *st;

    if (!is_request(f))
        return 0;
    st = stream_new(user_data, f->hd.stream_id);
    if (st == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    nghttp2_session_set_stream_user_data(h2, f->hd.stream_id, st);
    return 0;
}

/* "application/grpc", alone or followed by "+proto" or parameters. */
static bool
is_grpc_content_type(const uint8_t *v, size_t len)
{
    static const char grpc[] = "application/grpc";
    size_t n = sizeof(grpc) - 1;

    return len >= n && memcmp(v, grpc, n) == 0 && (len == n || v[n] == '+' || v[n] == ';');
}

#define HEADER_IS(name, s) (name##len == sizeof(s) - 1 && memcmp(name, s, sizeof(s) - 1) == 0)

static int
on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
          const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
{
    struct stream *st;

    (void)flags;
    (void)user_data;
    if (!is_request(f))
        return 0;
    st = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (st == NULL)
        return 0;
    if (HEADER_IS(name, ":path"))
        st->heartbeat = HEADER_IS(value, HEARTBEAT_PATH);
    else if (HEADER_IS(name, ":method"))
        st->post = HEADER_IS(value, "POST");
    else if (HEADER_IS(name, "content-type"))
        st->grpc = is_grpc_content_type(value, valuelen);
    return 0;
}

static int
on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t stream_id, const uint8_t *data,
              size_t len, void *user_data)
{
    struct stream *st = nghttp2_session_get_stream_user_data(h2, stream_id);

    (void)flags;
    if (st == NULL || st->answered)
        return 0;
    /* answered now; the rest of the request is read and dropped */
    if (stream_body_append(st, data, len) != 0)
        call_finish(user_data, st, ST_RESOURCE_EXHAUSTED, "request message too large");
    return 0;
}

static int
on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *user_data)
{
    struct stream *st;

    if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
        !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    st = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (st != NULL && !st->answered)
        call_answer(user_data, st);
    return 0;
}

static int
on_stream_close(nghttp2_session *h2, int32_t stream_id, uint32_t error_code, void *user_data)
{
    struct stream *st = nghttp2_session_get_stream_user_data(h2, stream_id);

    (void)error_code;
    if (st != NULL)
        stream_free(user_data, st);
    return 0;
}

/* One set of callbacks for every session: nghttp2 copies it into each. */
static int
h2_callbacks_new(void)
{
    if (nghttp2_session_callbacks_new(&g_cbs) != 0)
        return -1;
    nghttp2_session_callbacks_set_on_begin_headers_callback(g_cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(g_cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(g_cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(g_cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(g_cbs, on_stream_close);
    return 0;
}

/* ------------------------------------------------------------------ connections */

static void
conn_free(struct conn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c->w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    /* nghttp2_session_del does not call on_stream_close: free what is left here */
    while (c->streams != NULL)
        stream_free(c, c->streams);
    nghttp2_session_del(c->h2);
    if (c->rev != NULL)
        event_free(c->rev);
    if (c->wev != NULL)
        event_free(c->wev);
    close(c->fd);
    free(c->out);
    free(c);
}

static int
conn_out_reserve(struct conn *c, size_t more)
{
    size_t cap = c->out_cap ? c->out_cap : 16384;
    uint8_t *p;

    if (c->out_len + more <= c->out_cap)
        return 0;
    while (cap < c->out_len + more)
        cap *= 2;
    p = realloc(c->out, cap);
    if (p == NULL)
        return -1;
    c->out = p;
    c->out_cap = cap;
    return 0;
}

/* Moves what nghttp2 has to send into c->out, up to OUT_HIGH. */
static int
conn_gather(struct conn *c)
{
    const uint8_t *data;
    ssize_t n;

    while (c->out_len < OUT_HIGH) {
        n = nghttp2_session_mem_send(c->h2, &data);
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        if (conn_out_reserve(c, (size_t)n) != 0)
            return -1;
        memcpy(c->out + c->out_len, data, (size_t)n);
        c->out_len += (size_t)n;
    }
    return 0;
}

/* Reads while nothing is pending, waits for writability while something is. */
static int
conn_arm(struct conn *c)
{
    bool pending = c->out_off < c->out_len;

    if (!pending && !nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2))
        return -1;
    if (pending == c->writing)
        return 0;
    c->writing = pending;
    if (pending) {
        event_del(c->rev);
        return event_add(c->wev, NULL);
    }
    event_del(c->wev);
    return event_add(c->rev, NULL);
}

/* Gathers and sends nghttp2's output; @return -1 when the connection is done. */
static int
conn_flush(struct conn *c)
{
    ssize_t n;

    for (;;) {
        if (c->out_off == c->out_len) {
            c->out_off = c->out_len = 0;
            if (conn_gather(c) != 0)
                return -1;
            if (c->out_len == 0)
                break;
        }
        n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0)
            return -1;
        c->out_off += (size_t)n;
        if (c->out_off < c->out_len)
            break;
    }
    return conn_arm(c);
}

static void
conn_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    ssize_t n = recv(fd, c->w->rbuf, READ_BYTES, 0);

    (void)what;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0 || nghttp2_session_mem_recv(c->h2, c->w->rbuf, (size_t)n) < 0 || conn_flush(c) != 0)
        conn_free(c);
}

static void
conn_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    (void)what;
    if (conn_flush(c) != 0)
        conn_free(c);
}

static int
conn_session_new(struct conn *c)
{
    static const nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
        /* no RFC 7540 priority tree: nghttp2 frees closed streams at once */
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };

    if (nghttp2_session_server_new(&c->h2, g_cbs, c) != 0)
        return -1;
    if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0)
        return -1;
    return nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
}

/* Takes @p fd over: on any failure it is closed. */
static void
conn_open(struct worker *w, int fd)
{
    struct conn *c = calloc(1, sizeof(*c));
    int one = 1;

    if (c == NULL) {
        close(fd);
        return;
    }
    c->w = w;
    c->fd = fd;
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->rev = event_new(w->base, fd, EV_READ | EV_PERSIST, conn_on_read, c);
    c->wev = event_new(w->base, fd, EV_WRITE | EV_PERSIST, conn_on_write, c);
    if (c->rev == NULL || c->wev == NULL || conn_session_new(c) != 0 ||
        event_add(c->rev, NULL) != 0 || conn_flush(c) != 0)
        conn_free(c);
}

/* ------------------------------------------------------------------ workers */

static void
worker_on_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0)
            return;
        conn_open(arg, fd);
    }
}

static void
worker_on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    event_base_loopbreak(w->base);
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;

    event_base_dispatch(w->base);
    return NULL;
}

/* Serves @p w->lfd until @p stop_fd becomes readable. */
static int
worker_start(struct worker *w, int stop_fd)
{
    w->base = event_base_new();
    if (w->base == NULL)
        return -1;
    w->accept_ev = event_new(w->base, w->lfd, EV_READ | EV_PERSIST, worker_on_accept, w);
    w->stop_ev = event_new(w->base, stop_fd, EV_READ, worker_on_stop, w);
    if (w->accept_ev == NULL || w->stop_ev == NULL || event_add(w->accept_ev, NULL) != 0 ||
        event_add(w->stop_ev, NULL) != 0)
        return -1;
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

/* Joins a started worker; frees what worker_start made, started or not. */
static void
worker_stop(struct worker *w, bool started)
{
    if (started)
        pthread_join(w->thread, NULL);
    while (w->conns != NULL)
        conn_free(w->conns);
    if (w->accept_ev != NULL)
        event_free(w->accept_ev);
    if (w->stop_ev != NULL)
        event_free(w->stop_ev);
    if (w->base != NULL)
        event_base_free(w->base);
    if (w->lfd >= 0)
        close(w->lfd);
}

/* ------------------------------------------------------------------ listening */

static int
listen_one(const struct addrinfo *ai, uint16_t port, uint16_t *bound)
{
    struct sockaddr_storage ss;
    socklen_t len = (socklen_t)ai->ai_addrlen;
    int fd, one = 1;

    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    if (ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)&ss)->sin_port = htons(port);
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, SOMAXCONN) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        close(fd);
        return -1;
    }
    *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* "HOST:PORT" split at the last colon; "[v6]" loses its brackets. */
static int
split_listen(const char *listen, char *host, size_t host_size, long *port)
{
    const char *colon = strrchr(listen, ':');
    size_t hl = colon != NULL ? (size_t)(colon - listen) : 0;
    char *end;

    if (colon == NULL || hl >= host_size)
        return -1;
    if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']')
        copy_str(host, listen + 1, hl - 2);
    else
        copy_str(host, listen, hl);
    errno = 0;
    *port = strtol(colon + 1, &end, 10);
    return errno != 0 || end == colon + 1 || *end != '\0' || *port < 0 || *port > 65535 ? -1 : 0;
}

/* Opens one SO_REUSEPORT listener per worker on one port: @return the port, or -1. */
static int
listeners_open(const char *listen, struct worker *ws, int n)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char host[256];
    long port;
    uint16_t bound = 0;

    if (split_listen(listen, host, sizeof(host), &port) != 0 ||
        getaddrinfo(host[0] ? host : NULL, NULL, &hints, &ai) != 0)
        return -1;
    bound = (uint16_t)port;
    for (int i = 0; i < n; i++) {
        ws[i].lfd = listen_one(ai, bound, &bound);
        if (ws[i].lfd < 0)
            break;
    }
    freeaddrinfo(ai);
    return ws[n - 1].lfd >= 0 ? bound : -1;
}

/* ------------------------------------------------------------------ command line */

static void
usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--listen HOST:PORT] [-t THREADS] [--preload N] [--prepost N]"
            " [--ready-file FILE]\n"
            "  --listen      address to serve h2c on (default 127.0.0.1:50151; port 0 = any)\n"
            "  -t THREADS    event loops, one thread and one SO_REUSEPORT listener each"
            " (default: cores)\n"
            "  --preload N   register n0..n{N-1} in pool mainnet, lease token \"bench-token\"\n"
            "  --prepost N   accepted for ref_server compatibility, ignored\n"
            "  --ready-file  written as \"h2c=HOST:PORT\" once serving\n"
            "Serves only NodeRegistry/Heartbeat (anything else: UNIMPLEMENTED).\n"
            "Counts go to stderr as \"ok=N err=M ...\" on SIGUSR1 and at exit.\n",
            argv0);
    exit(2);
}

static long
parse_num(const char *argv0, const char *s, long lo, long hi)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        usage(argv0);
    return v;
}

static void
options_parse(int argc, char **argv, struct options *o)
{
    *o = (struct options){.listen = "127.0.0.1:50151"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;

        if ((!strcmp(a, "--listen") || !strcmp(a, "-l")) && has_val)
            o->listen = argv[++i];
        else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && has_val)
            o->threads = (int)parse_num(argv[0], argv[++i], 1, 1024);
        else if (!strcmp(a, "--preload") && has_val)
            o->preload = parse_num(argv[0], argv[++i], 0, 100000000);
        else if (!strcmp(a, "--prepost") && has_val)
            parse_num(argv[0], argv[++i], 1, 100000);
        else if (!strcmp(a, "--ready-file") && has_val)
            o->ready_file = argv[++i];
        else
            usage(argv[0]);
    }
    if (o->threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        o->threads = n > 0 ? (int)(n < 1024 ? n : 1024) : 1;
    }
}

/* ------------------------------------------------------------------ main */

static int
preload(long count)
{
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (reg_init((size_t)count) != 0 || reg_preload(count) != 0) {
        fprintf(stderr, "bare_server: out of memory preloading %ld nodes\n", count);
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (count > 0)
        fprintf(stderr, "preloaded %ld nodes in %lld ms\n", count,
                (long long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
    return 0;
}

static int
announce(const struct options *o, int port)
{
    const char *colon = strrchr(o->listen, ':');
    char addr[300], tmp[4096];
    FILE *f;

    snprintf(addr, sizeof(addr), "%.*s:%d", (int)(colon - o->listen), o->listen, port);
    fprintf(stderr, "bare_server: serving h2c on %s with %d threads\n", addr, o->threads);
    if (o->ready_file == NULL)
        return 0;
    snprintf(tmp, sizeof(tmp), "%s.tmp", o->ready_file);
    f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "h2c=%s\n", addr) < 0 || fclose(f) != 0 ||
        rename(tmp, o->ready_file) != 0) {
        fprintf(stderr, "bare_server: cannot write %s: %s\n", o->ready_file, strerror(errno));
        return -1;
    }
    return 0;
}

/* Prints the counts on SIGUSR1; @return SIGINT or SIGTERM. */
static int
signals_wait(const sigset_t *sigs, const struct worker *ws, int n)
{
    int sig = 0;

    for (;;) {
        if (sigwait(sigs, &sig) != 0)
            continue;
        if (sig != SIGUSR1)
            return sig;
        counts_print(ws, n, "SIGUSR1");
    }
}

int
main(int argc, char **argv)
{
    struct options opt;
    struct worker *ws = NULL;
    sigset_t sigs;
    int started = 0, stop_fd = -1, port, sig = SIGTERM, rv = 1;

    options_parse(argc, argv, &opt);
    /* signals go to the main thread only, which waits for them in sigwait */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    if (preload(opt.preload) != 0 || h2_callbacks_new() != 0)
        goto out;
    ws = calloc((size_t)opt.threads, sizeof(*ws));
    stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ws == NULL || stop_fd < 0)
        goto out;
    for (int i = 0; i < opt.threads; i++)
        ws[i].lfd = -1;
    port = listeners_open(opt.listen, ws, opt.threads);
    if (port < 0) {
        fprintf(stderr, "bare_server: cannot listen on %s: %s\n", opt.listen, strerror(errno));
        goto out;
    }
    for (; started < opt.threads; started++)
        if (worker_start(&ws[started], stop_fd) != 0)
            goto out;
    if (announce(&opt, port) != 0)
        goto out;
    sig = signals_wait(&sigs, ws, opt.threads);
    rv = 0;
out:
    /* the eventfd stays readable: every loop sees it and breaks */
    if (stop_fd >= 0 && eventfd_write(stop_fd, 1) != 0)
        perror("bare_server: eventfd_write");
    for (int i = 0; ws != NULL && i < opt.threads; i++)
        worker_stop(&ws[i], i < started);
    if (rv == 0)
        counts_print(ws, opt.threads, sig == SIGINT ? "SIGINT" : "SIGTERM");
    if (stop_fd >= 0)
        close(stop_fd);
    free(ws);
    nghttp2_session_callbacks_del(g_cbs);
    reg_deinit();
    return rv;
}
