/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the per-worker block cache (src/util/gx_slab.c): alignment of
 * every size up to past the largest class, contents kept by realloc across
 * classes and into and out of big blocks, realloc in place within a class,
 * calloc zeroing a recycled block, reuse of freed blocks, the cache cap,
 * overflowing sizes, out of memory injected with gx__slab_fail_at, and real
 * nghttp2 server sessions allocating from a slab: 100 gRPC-shaped calls in
 * flight, then every allocation failure in turn.  Under --enable-sanitizers
 * the slab caches nothing, so ASan sees every block; under valgrind (run with
 * CK_FORK=no) gx_slab_free() must leave nothing behind.
 */
#include "config.h"

#include "util/gx_slab.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <nghttp2/nghttp2.h>

#define ALIGN 16
#define HDR 16 /* the block header, counted in gx_slab_cached_bytes() */

/* Built the way gx_slab.c decides whether it caches at all. */
#if defined(__SANITIZE_ADDRESS__) || defined(GX_SLAB_NO_CACHE)
#define CACHING 0
#else
#define CACHING 1
#endif

static int
aligned(const void *p)
{
    return ((uintptr_t)p & (ALIGN - 1)) == 0;
}

static void
fill(void *p, size_t size, unsigned char seed)
{
    unsigned char *b = p;

    for (size_t i = 0; i < size; i++)
        b[i] = (unsigned char)(seed + i * 7);
}

static void
check_fill(const void *p, size_t size, unsigned char seed)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < size; i++)
        if (b[i] != (unsigned char)(seed + i * 7))
            ck_abort_msg("byte %zu of %zu changed", i, size);
}

/*
 * The class sizes as the header describes them: 16-byte steps to 128, then
 * four steps per doubling to GX_SLAB_CLASS_MAX.  @return how many
 */
static size_t
class_sizes(size_t *out)
{
    size_t n = 0;

    for (size_t size = 16; size <= 128; size += 16)
        out[n++] = size;
    for (size_t base = 128; base < GX_SLAB_CLASS_MAX; base *= 2)
        for (size_t k = 1; k <= 4 && base + k * base / 4 <= GX_SLAB_CLASS_MAX; k++)
            out[n++] = base + k * base / 4;
    return n;
}

/* ------------------------------------------------------------------------ */
/* Allocation                                                               */

/* Every size to past the largest class: aligned, writable, disjoint from the last few. */
START_TEST(test_alignment)
{
    enum { WINDOW = 8 };
    gx_slab_t *s = gx_slab_new();
    void *live[WINDOW] = {NULL};
    size_t live_size[WINDOW] = {0}, n = 0;

    ck_assert_ptr_nonnull(s);
    for (size_t size = 0; size <= 20000 + GX_SLAB_CLASS_MAX; n++) {
        size_t slot = n % WINDOW;
        void *p;

        if (live[slot] != NULL) {
            check_fill(live[slot], live_size[slot], (unsigned char)live_size[slot]);
            gx_slab_release(s, live[slot]);
        }
        p = gx_slab_alloc(s, size);
        ck_assert_ptr_nonnull(p);
        ck_assert_msg(aligned(p), "%zu bytes at %p: not %d-aligned", size, p, ALIGN);
        fill(p, size, (unsigned char)size);
        live[slot] = p;
        live_size[slot] = size;
        size += size <= 20000 ? 1 : 97; /* past that, a sample is enough */
    }
    for (size_t i = 0; i < WINDOW; i++)
        gx_slab_release(s, live[i]);
    gx_slab_free(s);
}
END_TEST

/* Zero bytes is a valid request: two distinct, aligned blocks. */
START_TEST(test_zero_size)
{
    gx_slab_t *s = gx_slab_new();
    void *p, *q;

    ck_assert_ptr_nonnull(s);
    p = gx_slab_alloc(s, 0);
    q = gx_slab_alloc(s, 0);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(q);
    ck_assert_ptr_ne(p, q);
    ck_assert(aligned(p) && aligned(q));
    gx_slab_release(s, p);
    gx_slab_release(s, q);
    gx_slab_release(s, NULL);
    gx_slab_free(s);
    gx_slab_free(NULL);
}
END_TEST

/* Growing and shrinking across classes and into and out of big blocks. */
START_TEST(test_realloc_contents)
{
    static const size_t sizes[] = {1,     17,    100,    129,   500,   4096,  16394, 20480,
                                   20481, 65536, 100000, 30000, 20480, 20000, 5000,  200,
                                   16,    3,     0,      1,     70000, 70001, 1};
    gx_slab_t *s = gx_slab_new();
    size_t prev = 0;
    void *p = NULL;

    ck_assert_ptr_nonnull(s);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t size = sizes[i];

        p = gx_slab_realloc(s, p, size);
        if (size == 0) {
            /* as realloc(): the block is released, NULL comes back */
            ck_assert_ptr_null(p);
            prev = 0;
            continue;
        }
        ck_assert_ptr_nonnull(p);
        ck_assert(aligned(p));
        check_fill(p, prev < size ? prev : size, (unsigned char)i);
        fill(p, size, (unsigned char)(i + 1));
        prev = size;
    }
    gx_slab_release(s, p);
    gx_slab_free(s);
}
END_TEST

/*
 * Within a class realloc keeps the pointer; one byte past the class moves the
 * block, keeping its contents.  Pointers are compared only when the slab
 * caches (under ASan every block is exactly its size).
 */
START_TEST(test_realloc_classes)
{
    size_t cls[64], n = class_sizes(cls);
    gx_slab_t *s = gx_slab_new();

    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(cls[n - 1], GX_SLAB_CLASS_MAX);
    for (size_t i = 0; i < n; i++) {
        size_t lo = i == 0 ? 1 : cls[i - 1] + 1, hi = cls[i];
        void *p = gx_slab_alloc(s, lo), *q, *r;

        ck_assert_ptr_nonnull(p);
        fill(p, lo, (unsigned char)i);
        q = gx_slab_realloc(s, p, hi);
        ck_assert_ptr_nonnull(q);
        if (CACHING)
            ck_assert_msg(q == p, "%zu -> %zu bytes moved", lo, hi);
        check_fill(q, lo, (unsigned char)i);
        fill(q, hi, (unsigned char)(i + 1));
        r = gx_slab_realloc(s, q, hi + 1);
        ck_assert_ptr_nonnull(r);
        if (CACHING)
            ck_assert_msg(r != q, "%zu -> %zu bytes did not move", hi, hi + 1);
        check_fill(r, hi, (unsigned char)(i + 1));
        /* and back down: into the class below, keeping what fits */
        q = gx_slab_realloc(s, r, lo);
        ck_assert_ptr_nonnull(q);
        check_fill(q, lo, (unsigned char)(i + 1));
        if (lo > 1) {
            r = gx_slab_realloc(s, q, lo - 1);
            ck_assert_ptr_nonnull(r);
            if (CACHING)
                ck_assert_msg(r != q, "%zu -> %zu bytes did not move", lo, lo - 1);
            check_fill(r, lo - 1, (unsigned char)(i + 1));
            q = r;
        }
        gx_slab_release(s, q);
    }
    gx_slab_free(s);
}
END_TEST

/* A block released dirty comes back zeroed from calloc. */
START_TEST(test_calloc_recycled)
{
    static const size_t sizes[] = {1, 16, 24, 100, 200, 300, 4096, 16394, 20480, 30000};
    gx_slab_t *s = gx_slab_new();

    ck_assert_ptr_nonnull(s);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t size = sizes[i];
        unsigned char *p = gx_slab_alloc(s, size), *q;

        ck_assert_ptr_nonnull(p);
        memset(p, 0xa5, size);
        gx_slab_release(s, p);
        q = i % 2 ? gx_slab_calloc(s, 1, size) : gx_slab_calloc(s, size, 1);
        ck_assert_ptr_nonnull(q);
        if (CACHING && size <= GX_SLAB_CLASS_MAX)
            ck_assert_ptr_eq(q, p);
        for (size_t j = 0; j < size; j++)
            ck_assert_msg(q[j] == 0, "calloc(%zu): byte %zu is %#x", size, j, q[j]);
        gx_slab_release(s, q);
    }
    gx_slab_free(s);
}
END_TEST

/* Released blocks wait on their class's list and go to the next allocations of that class. */
START_TEST(test_reuse)
{
    gx_slab_t *s = gx_slab_new();
    void *a, *b, *big;

    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(gx_slab_cached_bytes(s), 0);
    a = gx_slab_alloc(s, 200);
    b = gx_slab_alloc(s, 200);
    big = gx_slab_alloc(s, GX_SLAB_CLASS_MAX + 1);
    ck_assert(a != NULL && b != NULL && big != NULL);
    gx_slab_release(s, a);
    gx_slab_release(s, b);
    gx_slab_release(s, big); /* big blocks are never cached */
    if (!CACHING) {
        ck_assert_uint_eq(gx_slab_cached_bytes(s), 0);
        gx_slab_free(s);
        return;
    }
    ck_assert_uint_eq(gx_slab_cached_bytes(s), 2 * (HDR + 224));
    /* 193..224 bytes share a class; the last released comes first */
    ck_assert_ptr_eq(gx_slab_alloc(s, 224), b);
    ck_assert_uint_eq(gx_slab_cached_bytes(s), HDR + 224);
    ck_assert_ptr_eq(gx_slab_alloc(s, 193), a);
    ck_assert_uint_eq(gx_slab_cached_bytes(s), 0);
    /* another class does not take them */
    gx_slab_release(s, a);
    big = gx_slab_alloc(s, 192);
    ck_assert_ptr_ne(big, a);
    ck_assert_uint_eq(gx_slab_cached_bytes(s), HDR + 224);
    gx_slab_release(s, big);
    gx_slab_release(s, b);
    ck_assert_uint_eq(gx_slab_cached_bytes(s), 2 * (HDR + 224) + HDR + 192);
    gx_slab_free(s);
}
END_TEST

/* However much is released, the cache never holds more than the cap: the rest is freed. */
START_TEST(test_cap)
{
    enum { N = 3000 };
    static const size_t sizes[] = {24, 4096, 16394, 300, 40};
    void **p = malloc(N * sizeof(*p));
    gx_slab_t *s = gx_slab_new();

    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(s);
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < N; i++) {
            p[i] = gx_slab_alloc(s, sizes[i % 5]);
            ck_assert_ptr_nonnull(p[i]);
            memset(p[i], 0x5a, sizes[i % 5]);
        }
        /* released in another order than allocated */
        for (size_t i = 0; i < N; i++) {
            gx_slab_release(s, p[(i * 7) % N]);
            ck_assert_uint_le(gx_slab_cached_bytes(s), GX_SLAB_CACHE_MAX);
        }
        /* ~ 19 MB were released: the cache is full, to within one block */
        if (CACHING)
            ck_assert_uint_gt(gx_slab_cached_bytes(s), GX_SLAB_CACHE_MAX - HDR - 20480);
    }
    gx_slab_free(s);
    free(p);
}
END_TEST

START_TEST(test_size_overflow)
{
    gx_slab_t *s = gx_slab_new();
    unsigned char *p;

    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_null(gx_slab_calloc(s, SIZE_MAX / 2 + 1, 2));
    ck_assert_ptr_null(gx_slab_calloc(s, SIZE_MAX, SIZE_MAX));
    ck_assert_ptr_null(gx_slab_calloc(s, 1 + SIZE_MAX / 16, 16));
    ck_assert_ptr_null(gx_slab_alloc(s, SIZE_MAX));
    ck_assert_ptr_null(gx_slab_alloc(s, SIZE_MAX - HDR + 1));
    /* nothing times anything is still a block */
    p = gx_slab_calloc(s, 0, SIZE_MAX);
    ck_assert_ptr_nonnull(p);
    gx_slab_release(s, p);
    /* a failed realloc leaves the block as it was */
    p = gx_slab_alloc(s, 100);
    ck_assert_ptr_nonnull(p);
    fill(p, 100, 3);
    ck_assert_ptr_null(gx_slab_realloc(s, p, SIZE_MAX));
    check_fill(p, 100, 3);
    p = gx_slab_realloc(s, p, 50000);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_null(gx_slab_realloc(s, p, SIZE_MAX - 8));
    check_fill(p, 100, 3);
    gx_slab_release(s, p);
    gx_slab_free(s);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Out of memory (gx__slab_fail_at)                                         */

START_TEST(test_fail_points)
{
    gx_slab_t *s;
    unsigned char *p, *big;

    gx__slab_fail_at = 1;
    ck_assert_ptr_null(gx_slab_new());
    ck_assert_int_eq(gx__slab_fail_at, 0);
    s = gx_slab_new();
    ck_assert_ptr_nonnull(s);

    gx__slab_fail_at = 1;
    ck_assert_ptr_null(gx_slab_alloc(s, 24));
    gx__slab_fail_at = 1;
    ck_assert_ptr_null(gx_slab_calloc(s, 3, 8));
    gx__slab_fail_at = 1;
    ck_assert_ptr_null(gx_slab_alloc(s, 100000));
    gx__slab_fail_at = 2;
    p = gx_slab_alloc(s, 100);
    ck_assert_ptr_nonnull(p);
    fill(p, 100, 9);
    /* the second allocation fails: a realloc that needs a new block */
    if (CACHING) {
        ck_assert_ptr_eq(gx_slab_realloc(s, p, 112), p); /* same class: no allocation */
        ck_assert_int_eq(gx__slab_fail_at, 1);
    }
    ck_assert_ptr_null(gx_slab_realloc(s, p, 5000));
    ck_assert_int_eq(gx__slab_fail_at, 0);
    check_fill(p, 100, 9);
    /* big to big */
    big = gx_slab_alloc(s, 30000);
    ck_assert_ptr_nonnull(big);
    fill(big, 30000, 4);
    gx__slab_fail_at = 1;
    ck_assert_ptr_null(gx_slab_realloc(s, big, 60000));
    check_fill(big, 30000, 4);
    /* without injection it works again */
    p = gx_slab_realloc(s, p, 5000);
    ck_assert_ptr_nonnull(p);
    check_fill(p, 100, 9);
    gx_slab_release(s, p);
    gx_slab_release(s, big);
    gx_slab_free(s);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* nghttp2                                                                  */

/* Counts what a session holds, around the slab's nghttp2_mem. */
typedef struct {
    nghttp2_mem slab;
    long live, allocs;
} counter_t;

static void *
count_malloc(size_t size, void *arg)
{
    counter_t *c = arg;
    void *p = c->slab.malloc(size, c->slab.mem_user_data);

    c->live += p != NULL;
    c->allocs += p != NULL;
    return p;
}

static void
count_free(void *p, void *arg)
{
    counter_t *c = arg;

    c->live -= p != NULL;
    c->slab.free(p, c->slab.mem_user_data);
}

static void *
count_calloc(size_t nmemb, size_t size, void *arg)
{
    counter_t *c = arg;
    void *p = c->slab.calloc(nmemb, size, c->slab.mem_user_data);

    c->live += p != NULL;
    c->allocs += p != NULL;
    return p;
}

static void *
count_realloc(void *old, size_t size, void *arg)
{
    counter_t *c = arg;
    void *p = c->slab.realloc(old, size, c->slab.mem_user_data);

    ck_assert_uint_ne(size, 0); /* nghttp2 never asks for it */
    c->live += old == NULL && p != NULL;
    c->allocs += p != NULL && p != old;
    return p;
}

enum { MAX_STREAMS = 100, REQ_BODY = 5 + 300, RESP_BODY = 5 + 1000 };

/* One call as one side sees it. */
typedef struct {
    int headers, trailers; /* header fields received */
    int path_ok, status, grpc_status;
    size_t body, sent; /* bytes received, bytes of our body sent */
    int closed;
    uint32_t close_error;
} stream_t;

static stream_t srv[MAX_STREAMS], cli[MAX_STREAMS];
static uint8_t req_body[REQ_BODY], resp_body[RESP_BODY];

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE         \
    }

static stream_t *
srv_stream(int32_t id)
{
    ck_assert_int_le(id, 2 * MAX_STREAMS);
    return &srv[(id - 1) / 2];
}

static int
header_is(const uint8_t *name, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(name, want, len) == 0;
}

static ssize_t
body_read(stream_t *st, const uint8_t *body, size_t size, uint8_t *buf, size_t len, uint32_t *flags)
{
    size_t n = size - st->sent < len ? size - st->sent : len;

    memcpy(buf, body + st->sent, n);
    st->sent += n;
    if (st->sent == size)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static ssize_t
srv_read_cb(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
            nghttp2_data_source *source, void *arg)
{
    static const nghttp2_nv trailers[] = {NV("grpc-status", "0"), NV("grpc-message", "")};
    ssize_t n = body_read(srv_stream(id), resp_body, RESP_BODY, buf, len, flags);

    if (*flags & NGHTTP2_DATA_FLAG_EOF) {
        /* gRPC: the status goes in trailers, which end the stream */
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        if (nghttp2_submit_trailer(session, id, trailers, 2) != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return n;
}

static int
srv_header_cb(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
              size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *arg)
{
    stream_t *st = srv_stream(frame->hd.stream_id);

    st->headers++;
    if (header_is(name, namelen, ":path"))
        st->path_ok = header_is(value, valuelen, "/galaxy.pool.v1.Pool/GetNode");
    return 0;
}

static int
srv_data_cb(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
            void *arg)
{
    srv_stream(id)->body += len;
    return 0;
}

/* The request is complete: answer it as a unary gRPC call does. */
static int
srv_frame_recv_cb(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
    static const nghttp2_nv nva[] = {NV(":status", "200"), NV("content-type", "application/grpc")};
    nghttp2_data_provider prd = {.read_callback = srv_read_cb};

    if (frame->hd.stream_id == 0 || !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    if (nghttp2_submit_response(session, frame->hd.stream_id, nva, 2, &prd) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static ssize_t
cli_read_cb(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
            nghttp2_data_source *source, void *arg)
{
    return body_read(source->ptr, req_body, REQ_BODY, buf, len, flags);
}

static int
cli_header_cb(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
              size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *arg)
{
    stream_t *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);

    if (frame->headers.cat == NGHTTP2_HCAT_HEADERS) {
        st->trailers++;
        if (header_is(name, namelen, "grpc-status"))
            st->grpc_status = header_is(value, valuelen, "0") ? 0 : 2;
        return 0;
    }
    st->headers++;
    if (header_is(name, namelen, ":status"))
        st->status = header_is(value, valuelen, "200") ? 200 : -1;
    return 0;
}

static int
cli_data_cb(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
            void *arg)
{
    stream_t *st = nghttp2_session_get_stream_user_data(session, id);

    st->body += len;
    return 0;
}

static int
cli_close_cb(nghttp2_session *session, int32_t id, uint32_t error_code, void *arg)
{
    stream_t *st = nghttp2_session_get_stream_user_data(session, id);

    st->closed = 1;
    st->close_error = error_code;
    return 0;
}

/* The server session, on @p mem; a NULL with an nghttp2 error when out of memory. */
static int
server_new(nghttp2_session **out, nghttp2_mem *mem)
{
    static const nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
    nghttp2_session_callbacks *cbs;
    int rv;

    ck_assert_int_eq(nghttp2_session_callbacks_new(&cbs), 0);
    nghttp2_session_callbacks_set_on_header_callback(cbs, srv_header_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, srv_data_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, srv_frame_recv_cb);
    rv = nghttp2_session_server_new3(out, cbs, NULL, NULL, mem);
    nghttp2_session_callbacks_del(cbs);
    if (rv == 0)
        rv = nghttp2_submit_settings(*out, NGHTTP2_FLAG_NONE, iv, 1);
    return rv;
}

/* A client (default allocator) with @p n gRPC requests submitted. */
static nghttp2_session *
client_new(int n)
{
    static const nghttp2_nv nva[] = {
        NV(":method", "POST"),    NV(":scheme", "http"),
        NV(":authority", "pool"), NV(":path", "/galaxy.pool.v1.Pool/GetNode"),
        NV("te", "trailers"),     NV("content-type", "application/grpc"),
        NV("grpc-timeout", "5S"), NV("user-agent", "test_gx_slab"),
    };
    nghttp2_session_callbacks *cbs;
    nghttp2_session *c;

    ck_assert_int_eq(nghttp2_session_callbacks_new(&cbs), 0);
    nghttp2_session_callbacks_set_on_header_callback(cbs, cli_header_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cli_data_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cli_close_cb);
    ck_assert_int_eq(nghttp2_session_client_new(&c, cbs, NULL), 0);
    nghttp2_session_callbacks_del(cbs);
    ck_assert_int_eq(nghttp2_submit_settings(c, NGHTTP2_FLAG_NONE, NULL, 0), 0);
    for (int i = 0; i < n; i++) {
        nghttp2_data_provider prd = {.source.ptr = &cli[i], .read_callback = cli_read_cb};

        ck_assert_int_eq(nghttp2_submit_request(c, NULL, nva, 8, &prd, &cli[i]), 2 * i + 1);
    }
    return c;
}

/* Moves bytes both ways until neither side has more. @return 0 or the first nghttp2 error */
static int
pump(nghttp2_session *client, nghttp2_session *server)
{
    nghttp2_session *from[2] = {client, server}, *to[2] = {server, client};
    int moved = 1;

    while (moved) {
        moved = 0;
        for (int d = 0; d < 2; d++) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(from[d], &data), r;

            if (n < 0)
                return (int)n;
            if (n == 0)
                continue;
            r = nghttp2_session_mem_recv(to[d], data, (size_t)n);
            if (r < 0)
                return (int)r;
            ck_assert_int_eq(r, n);
            moved = 1;
        }
    }
    return 0;
}

static void
exchange_reset(void)
{
    memset(srv, 0, sizeof(srv));
    memset(cli, 0, sizeof(cli));
    for (size_t i = 0; i < sizeof(req_body); i++)
        req_body[i] = (uint8_t)i;
    for (size_t i = 0; i < sizeof(resp_body); i++)
        resp_body[i] = (uint8_t)(i * 3);
    /* gRPC message prefixes: not compressed, then the length (big-endian) */
    memcpy(req_body, "\0\0\0\x01\x2c", 5);
    memcpy(resp_body, "\0\0\0\x03\xe8", 5);
}

/* 100 calls in flight on a server session that allocates from a slab. */
START_TEST(test_nghttp2_calls)
{
    gx_slab_t *s = gx_slab_new();
    counter_t count = {.live = 0};
    nghttp2_mem mem = {&count, count_malloc, count_free, count_calloc, count_realloc};
    nghttp2_session *server, *client;

    ck_assert_ptr_nonnull(s);
    gx_slab_mem(s, &count.slab);
    ck_assert_ptr_eq(count.slab.mem_user_data, s);
    exchange_reset();
    ck_assert_int_eq(server_new(&server, &mem), 0);
    client = client_new(MAX_STREAMS);
    ck_assert_int_eq(pump(client, server), 0);
    for (int i = 0; i < MAX_STREAMS; i++) {
        ck_assert_msg(srv[i].path_ok && srv[i].headers == 8, "stream %d: request headers", i);
        ck_assert_uint_eq(srv[i].body, REQ_BODY);
        ck_assert_int_eq(cli[i].status, 200);
        ck_assert_int_eq(cli[i].headers, 2);
        ck_assert_uint_eq(cli[i].body, RESP_BODY);
        ck_assert_int_eq(cli[i].trailers, 2);
        ck_assert_int_eq(cli[i].grpc_status, 0);
        ck_assert_msg(cli[i].closed && cli[i].close_error == NGHTTP2_NO_ERROR, "stream %d", i);
    }
    /* the per-call blocks came from the slab (nghttp2 1.52: about 7 per call) */
    ck_assert_int_gt(count.allocs, 5 * MAX_STREAMS);
    if (CACHING)
        ck_assert_uint_gt(gx_slab_cached_bytes(s), 0);
    nghttp2_session_del(client);
    nghttp2_session_del(server);
    ck_assert_int_eq(count.live, 0); /* every block went back */
    ck_assert_uint_le(gx_slab_cached_bytes(s), GX_SLAB_CACHE_MAX);
    gx_slab_free(s);
}
END_TEST

/*
 * Every slab allocation of a session's life fails in turn: nghttp2 reports
 * it or drops the work, and deleting the session gives every block back.
 */
START_TEST(test_nghttp2_fail_every_point)
{
    enum { CALLS = 4 };
    int complete = 0, points = 0;

    for (long n = 1; n < 5000 && !complete; n++) {
        gx_slab_t *s = gx_slab_new();
        counter_t count = {.live = 0};
        nghttp2_mem mem = {&count, count_malloc, count_free, count_calloc, count_realloc};
        nghttp2_session *server = NULL, *client;

        ck_assert_ptr_nonnull(s);
        gx_slab_mem(s, &count.slab);
        exchange_reset();
        client = client_new(CALLS);
        gx__slab_fail_at = n;
        if (server_new(&server, &mem) == 0)
            pump(client, server);
        complete = gx__slab_fail_at != 0; /* the n-th allocation never came */
        points += !complete;
        gx__slab_fail_at = 0;
        nghttp2_session_del(client);
        nghttp2_session_del(server);
        ck_assert_msg(count.live == 0, "point %ld: %ld blocks not given back", n, count.live);
        gx_slab_free(s);
    }
    ck_assert_msg(complete, "the exchange never completed");
    ck_assert_int_ge(points, 8 * CALLS);
    /* the complete run really did the calls */
    for (int i = 0; i < CALLS; i++)
        ck_assert_msg(cli[i].closed && cli[i].trailers == 2, "call %d not answered", i);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *
slab_suite(void)
{
    Suite *s = suite_create("gx_slab");
    TCase *tc;

    tc = tcase_create("alloc");
    tcase_add_test(tc, test_alignment);
    tcase_add_test(tc, test_zero_size);
    tcase_add_test(tc, test_realloc_contents);
    tcase_add_test(tc, test_realloc_classes);
    tcase_add_test(tc, test_calloc_recycled);
    tcase_add_test(tc, test_reuse);
    tcase_add_test(tc, test_cap);
    tcase_add_test(tc, test_size_overflow);
    suite_add_tcase(s, tc);

    tc = tcase_create("enomem");
    tcase_add_test(tc, test_fail_points);
    suite_add_tcase(s, tc);

    tc = tcase_create("nghttp2");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_nghttp2_calls);
    tcase_add_test(tc, test_nghttp2_fail_every_point);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(slab_suite());
    int failures;

    /* Fork mode (Check's default) unless CK_FORK=no, e.g. under valgrind or gdb. */
    srunner_run_all(sr, CK_NORMAL);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures != 0;
}
