/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the region allocator (src/util/gx_arena.c): alignment and
 * disjointness of every allocation, big requests in blocks of their own, many
 * small ones, calloc and strndup, cleanups in reverse order while the memory
 * is still there, the protobuf-c allocator, and out of memory injected with
 * gx__arena_fail_at at every block and cleanup allocation.  Under
 * --enable-sanitizers each case also proves that nothing leaks and that no
 * allocation is used past its size (every byte handed out is written).
 */
#include "config.h"

#include "util/gx_arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "grpc/health/v1/health.pb-c.h"
#include "util/gx_error.h"

#define ALIGN 16

static int
aligned(const void *p)
{
    return ((uintptr_t)p & (ALIGN - 1)) == 0;
}

/* One allocation handed out by a test, and the byte pattern written into it. */
typedef struct {
    unsigned char *p;
    size_t size;
    unsigned char fill;
} chunk_t;

static void
chunk_fill(chunk_t *c, unsigned char *p, size_t size, unsigned char fill)
{
    ck_assert_ptr_nonnull(p);
    ck_assert_msg(aligned(p), "%zu bytes at %p: not %d-aligned", size, (void *)p, ALIGN);
    memset(p, fill, size);
    c->p = p;
    c->size = size;
    c->fill = fill;
}

/* Every chunk still holds its own pattern: no two allocations overlap. */
static void
chunks_check(const chunk_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < c[i].size; j++)
            if (c[i].p[j] != c[i].fill)
                ck_abort_msg("chunk %zu (%zu bytes) overwritten at %zu", i, c[i].size, j);
}

/* ------------------------------------------------------------------------ */
/* Allocation                                                               */

START_TEST(test_alignment)
{
    static chunk_t chunks[600];
    gx_arena_t *a = gx_arena_new(1024);
    size_t n = 0;

    ck_assert_ptr_nonnull(a);
    for (size_t size = 1; size <= 520; size++, n++)
        chunk_fill(&chunks[n], gx_arena_alloc(a, size), size, (unsigned char)n);
    /* sizes around the block size and the "own block" threshold (a quarter of it) */
    static const size_t odd[] = {255, 256, 257, 1023, 1024, 1025, 4095, 4096, 70000, 3, 1};
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++, n++)
        chunk_fill(&chunks[n], gx_arena_alloc(a, odd[i]), odd[i], (unsigned char)(n * 3));
    chunks_check(chunks, n);
    gx_arena_free(a);
}
END_TEST

/* Zero bytes is a valid request, and the next allocation is still aligned. */
START_TEST(test_zero_size)
{
    gx_arena_t *a = gx_arena_new(0);
    void *p, *q;

    ck_assert_ptr_nonnull(a);
    p = gx_arena_alloc(a, 0);
    ck_assert_ptr_nonnull(p);
    ck_assert(aligned(p));
    q = gx_arena_alloc(a, 1);
    ck_assert_ptr_nonnull(q);
    ck_assert(aligned(q));
    gx_arena_free(a);
}
END_TEST

/* Sizes are counted rounded up to the alignment. */
START_TEST(test_used)
{
    gx_arena_t *a = gx_arena_new(256);

    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(gx_arena_used(a), 0);
    gx_arena_alloc(a, 1);
    ck_assert_uint_eq(gx_arena_used(a), 16);
    gx_arena_alloc(a, 16);
    ck_assert_uint_eq(gx_arena_used(a), 32);
    gx_arena_alloc(a, 17);
    ck_assert_uint_eq(gx_arena_used(a), 64);
    gx_arena_alloc(a, 1000);
    ck_assert_uint_eq(gx_arena_used(a), 64 + 1008);
    gx_arena_strndup(a, "abc", 3);
    ck_assert_uint_eq(gx_arena_used(a), 64 + 1008 + 16);
    gx_arena_free(a);
}
END_TEST

/*
 * A request bigger than a quarter of the block size that does not fit the
 * rest of the current block gets a block of its own, and the small
 * allocations that follow go on filling the current block; a small one that
 * does not fit starts a new block.
 */
START_TEST(test_big_allocations)
{
    gx_arena_t *a = gx_arena_new(256);
    chunk_t c[9];
    unsigned char *p1;

    ck_assert_ptr_nonnull(a);
    p1 = gx_arena_alloc(a, 16);
    chunk_fill(&c[0], p1, 16, 0x11);
    /* > 256 / 4 but fits: stays in the block */
    chunk_fill(&c[1], gx_arena_alloc(a, 65), 65, 0x22);
    ck_assert_ptr_eq(c[1].p, p1 + 16);
    /* do not fit: blocks of their own */
    chunk_fill(&c[2], gx_arena_alloc(a, 1 << 20), 1 << 20, 0x33);
    chunk_fill(&c[3], gx_arena_alloc(a, 256 * 64), 256 * 64, 0x44);
    chunk_fill(&c[4], gx_arena_alloc(a, 16), 16, 0x55);
    ck_assert_ptr_eq(c[4].p, p1 + 16 + 80);
    chunk_fill(&c[5], gx_arena_alloc(a, 100), 100, 0x66); /* 224 of 256 used */
    ck_assert_ptr_eq(c[5].p, p1 + 16 + 80 + 16);
    chunk_fill(&c[6], gx_arena_alloc(a, 65), 65, 0x77); /* own block */
    chunk_fill(&c[7], gx_arena_alloc(a, 16), 16, 0x88);
    ck_assert_ptr_eq(c[7].p, p1 + 16 + 80 + 16 + 112);
    /* the block is full: a quarter of a block exactly starts a new one */
    chunk_fill(&c[8], gx_arena_alloc(a, 64), 64, 0x99);
    ck_assert_ptr_ne(c[8].p, p1 + 256);
    chunks_check(c, 9);
    ck_assert_uint_eq(gx_arena_used(a), 16 + 80 + (1 << 20) + 256 * 64 + 16 + 112 + 80 + 16 + 64);
    gx_arena_free(a);
}
END_TEST

START_TEST(test_many_small)
{
    enum { N = 20000 };
    chunk_t *c = malloc(N * sizeof(*c));
    gx_arena_t *a = gx_arena_new(4096);
    size_t total = 0;

    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(a);
    for (size_t i = 0; i < N; i++) {
        size_t size = 1 + (i * 7919) % 200;

        chunk_fill(&c[i], gx_arena_alloc(a, size), size, (unsigned char)(i * 31 + 7));
        total += (size + 15) & ~(size_t)15;
    }
    chunks_check(c, N);
    ck_assert_uint_eq(gx_arena_used(a), total);
    gx_arena_free(a);
    free(c);
}
END_TEST

/* gx_arena_alloc() of an impossible size fails instead of wrapping around. */
START_TEST(test_size_overflow)
{
    gx_arena_t *a = gx_arena_new(256);

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_null(gx_arena_alloc(a, SIZE_MAX));
    ck_assert_ptr_null(gx_arena_alloc(a, SIZE_MAX - 14));
    ck_assert_ptr_null(gx_arena_alloc(a, SIZE_MAX - 20)); /* rounds up, then the block header */
    ck_assert_ptr_null(gx_arena_new(SIZE_MAX - 20));
    ck_assert_ptr_null(gx_arena_calloc(a, SIZE_MAX));
    /* the arena still works */
    ck_assert_ptr_nonnull(gx_arena_alloc(a, 100));
    gx_arena_free(a);
}
END_TEST

START_TEST(test_calloc)
{
    gx_arena_t *a = gx_arena_new(256);
    static const size_t sizes[] = {1, 15, 16, 17, 64, 200, 3000};

    ck_assert_ptr_nonnull(a);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        /* dirty the memory that follows, in case the next block is reused */
        unsigned char *d = gx_arena_alloc(a, sizes[i]), *p;

        ck_assert_ptr_nonnull(d);
        memset(d, 0xa5, sizes[i]);
        p = gx_arena_calloc(a, sizes[i]);
        ck_assert_ptr_nonnull(p);
        ck_assert(aligned(p));
        for (size_t j = 0; j < sizes[i]; j++)
            ck_assert_msg(p[j] == 0, "calloc(%zu): byte %zu is %#x", sizes[i], j, p[j]);
    }
    gx_arena_free(a);
}
END_TEST

START_TEST(test_strndup)
{
    gx_arena_t *a = gx_arena_new(256);
    static const char text[] = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'};
    char *src = malloc(sizeof(text)), *p;
    char big[1000];

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(src);
    memcpy(src, text, sizeof(text)); /* not NUL-terminated */
    p = gx_arena_strndup(a, src, sizeof(text));
    ck_assert_str_eq(p, "hello world");
    ck_assert(aligned(p));
    ck_assert_str_eq(gx_arena_strndup(a, src, 5), "hello");
    ck_assert_str_eq(gx_arena_strndup(a, src, 0), "");
    /* exactly len bytes: an embedded NUL is copied, not stopped at */
    p = gx_arena_strndup(a, "a\0b", 3);
    ck_assert_mem_eq(p, "a\0b", 4);
    memset(big, 'x', sizeof(big));
    p = gx_arena_strndup(a, big, sizeof(big));
    ck_assert_uint_eq(strlen(p), sizeof(big));
    ck_assert_mem_eq(p, big, sizeof(big));
    free(src);
    gx_arena_free(a);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Cleanups                                                                 */

static int cleanup_order[16];
static int cleanup_calls;

typedef struct {
    int id;
    const char *arena_string; /* lives in the arena being freed */
} cleanup_arg_t;

static void
record_cleanup(void *arg)
{
    cleanup_arg_t *c = arg;

    ck_assert_int_lt(cleanup_calls, 16);
    /* the arena's memory is still there while cleanups run */
    if (c->arena_string != NULL)
        ck_assert_str_eq(c->arena_string, "kept until the cleanups ran");
    cleanup_order[cleanup_calls++] = c->id;
}

START_TEST(test_cleanups_reverse)
{
    gx_arena_t *a = gx_arena_new(256);
    cleanup_arg_t args[5];

    ck_assert_ptr_nonnull(a);
    cleanup_calls = 0;
    for (int i = 0; i < 5; i++) {
        args[i].id = i;
        args[i].arena_string = gx_arena_strndup(a, "kept until the cleanups ran", 27);
        ck_assert_int_eq(gx_arena_cleanup_add(a, record_cleanup, &args[i]), 0);
        /* fill the arena between cleanups, with small and big allocations */
        ck_assert_ptr_nonnull(gx_arena_alloc(a, i % 2 ? 300 : 40));
    }
    ck_assert_int_eq(cleanup_calls, 0);
    gx_arena_free(a);
    ck_assert_int_eq(cleanup_calls, 5);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(cleanup_order[i], 4 - i);
}
END_TEST

/* A cleanup that owns heap memory frees it on gx_arena_free(): no leak under ASan. */
START_TEST(test_cleanup_frees_heap)
{
    gx_arena_t *a = gx_arena_new(256);
    void *heap = malloc(1000);

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(heap);
    ck_assert_int_eq(gx_arena_cleanup_add(a, free, heap), 0);
    gx_arena_free(a);
}
END_TEST

START_TEST(test_free_null)
{
    gx_arena_free(NULL);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* protobuf-c allocator                                                     */

/* A packed grpc.health.v1.HealthCheckRequest{service: "galaxy.Pool"}. */
static const uint8_t health_req[] = {0x0a, 11,  'g', 'a', 'l', 'a', 'x',
                                     'y',  '.', 'P', 'o', 'o', 'l'};

START_TEST(test_pb_allocator)
{
    gx_arena_t *a = gx_arena_new(256);
    ProtobufCAllocator pa;
    Grpc__Health__V1__HealthCheckRequest *req;
    size_t used;

    ck_assert_ptr_nonnull(a);
    gx_arena_pb_allocator(a, &pa);
    ck_assert_ptr_eq(pa.allocator_data, a);
    ck_assert_ptr_nonnull(pa.alloc);
    ck_assert_ptr_nonnull(pa.free);
    used = gx_arena_used(a);
    req = grpc__health__v1__health_check_request__unpack(&pa, sizeof(health_req), health_req);
    ck_assert_ptr_nonnull(req);
    ck_assert_str_eq(req->service, "galaxy.Pool");
    ck_assert_uint_gt(gx_arena_used(a), used);
    /* free is a no-op: the memory goes with the arena (ASan sees no double free) */
    grpc__health__v1__health_check_request__free_unpacked(req, &pa);
    ck_assert_str_eq(req->service, "galaxy.Pool");
    for (int i = 0; i < 100; i++) {
        req = grpc__health__v1__health_check_request__unpack(&pa, sizeof(health_req), health_req);
        ck_assert_ptr_nonnull(req);
    }
    gx_arena_free(a);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Out of memory (gx__arena_fail_at)                                        */

START_TEST(test_fail_new)
{
    gx_arena_t *a;

    /* the arena itself, then its first block */
    gx__arena_fail_at = 1;
    ck_assert_ptr_null(gx_arena_new(256));
    ck_assert_int_eq(gx__arena_fail_at, 0);
    gx__arena_fail_at = 2;
    ck_assert_ptr_null(gx_arena_new(256));
    ck_assert_int_eq(gx__arena_fail_at, 0);
    gx__arena_fail_at = 2;
    ck_assert_ptr_null(gx_arena_new(100000));
    gx__arena_fail_at = 0;
    /* without injection it works again */
    a = gx_arena_new(256);
    ck_assert_ptr_nonnull(a);
    gx_arena_free(a);
}
END_TEST

START_TEST(test_fail_alloc)
{
    gx_arena_t *a = gx_arena_new(256);
    unsigned char *first;

    ck_assert_ptr_nonnull(a);
    first = gx_arena_alloc(a, 16);
    ck_assert_ptr_nonnull(first);
    memset(first, 0x5a, 16);

    /* a big request needs a block of its own */
    gx__arena_fail_at = 1;
    ck_assert_ptr_null(gx_arena_alloc(a, 1000));
    ck_assert_int_eq(gx__arena_fail_at, 0);
    ck_assert_uint_eq(gx_arena_used(a), 16);

    /* a small request that no longer fits needs a new block */
    ck_assert_ptr_nonnull(gx_arena_alloc(a, 256 - 16 - 16));
    gx__arena_fail_at = 1;
    ck_assert_ptr_null(gx_arena_alloc(a, 32));
    gx__arena_fail_at = 1;
    ck_assert_ptr_null(gx_arena_calloc(a, 32));
    gx__arena_fail_at = 1;
    ck_assert_ptr_null(gx_arena_strndup(a, "more than sixteen bytes", 23));
    ck_assert_int_eq(gx__arena_fail_at, 0);
    ck_assert_uint_eq(gx_arena_used(a), 256 - 16);

    /* what was allocated is intact, and the arena still works */
    for (int i = 0; i < 16; i++)
        ck_assert_uint_eq(first[i], 0x5a);
    ck_assert_ptr_nonnull(gx_arena_alloc(a, 1000));
    ck_assert_ptr_nonnull(gx_arena_alloc(a, 32));
    gx_arena_free(a);
}
END_TEST

/* An allocation that fits the current block allocates nothing: no failure point. */
START_TEST(test_fail_fits_in_block)
{
    gx_arena_t *a = gx_arena_new(256);

    ck_assert_ptr_nonnull(a);
    gx__arena_fail_at = 1;
    ck_assert_ptr_nonnull(gx_arena_alloc(a, 16));
    ck_assert_int_eq(gx__arena_fail_at, 1);
    gx__arena_fail_at = 0;
    gx_arena_free(a);
}
END_TEST

START_TEST(test_fail_cleanup_add)
{
    gx_arena_t *a = gx_arena_new(256);
    cleanup_arg_t arg = {7, NULL};

    ck_assert_ptr_nonnull(a);
    cleanup_calls = 0;
    /* the cleanup record */
    gx__arena_fail_at = 1;
    ck_assert_int_eq(gx_arena_cleanup_add(a, record_cleanup, &arg), GX_ENOMEM);
    /* the block the record needs when the current one is full */
    ck_assert_ptr_nonnull(gx_arena_alloc(a, 256));
    gx__arena_fail_at = 2;
    ck_assert_int_eq(gx_arena_cleanup_add(a, record_cleanup, &arg), GX_ENOMEM);
    ck_assert_int_eq(gx__arena_fail_at, 0);
    /* a failed cleanup_add registered nothing */
    gx_arena_free(a);
    ck_assert_int_eq(cleanup_calls, 0);
}
END_TEST

/*
 * A realistic sequence of arena calls, stopping at the first failure.
 * @return the number of cleanups registered (each frees one malloc()ed buffer).
 */
static int
scenario(gx_arena_t **out, int *complete)
{
    static const size_t sizes[] = {24, 100, 3000, 8, 64, 65, 500, 1 << 16, 16, 200};
    gx_arena_t *a;
    ProtobufCAllocator pa;
    int cleanups = 0;

    *complete = 0;
    *out = a = gx_arena_new(512);
    if (a == NULL)
        return 0;
    for (int round = 0; round < 4; round++) {
        void *heap;
        char *s;

        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            unsigned char *p = gx_arena_alloc(a, sizes[i]);
            if (p == NULL)
                return cleanups;
            memset(p, (int)i, sizes[i]);
        }
        if (gx_arena_calloc(a, 48) == NULL)
            return cleanups;
        s = gx_arena_strndup(a, "a string that lives in the arena", 32);
        if (s == NULL)
            return cleanups;
        heap = malloc(64);
        ck_assert_ptr_nonnull(heap);
        if (gx_arena_cleanup_add(a, free, heap) != 0) {
            free(heap);
            return cleanups;
        }
        cleanups++;
        gx_arena_pb_allocator(a, &pa);
        if (grpc__health__v1__health_check_request__unpack(&pa, sizeof(health_req),
                                                           health_req) == NULL)
            return cleanups;
    }
    *complete = 1;
    return cleanups;
}

/* Every failure point in turn: each leaves nothing behind once the arena is freed. */
START_TEST(test_fail_every_point)
{
    long n;
    int complete = 0, points = 0;

    for (n = 1; n < 1000 && !complete; n++) {
        gx_arena_t *a;

        gx__arena_fail_at = n;
        scenario(&a, &complete);
        if (!complete) {
            /* the injected failure was the one that stopped the scenario */
            ck_assert_msg(gx__arena_fail_at == 0, "point %ld: stopped without its failure", n);
            points++;
        }
        gx__arena_fail_at = 0;
        gx_arena_free(a);
    }
    ck_assert_msg(complete, "the scenario never completed");
    /* arena + first block, 4 rounds of big blocks, new blocks and cleanups */
    ck_assert_int_ge(points, 20);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Reuse: freed arenas are kept per thread and come back empty              */

static int cleanup_runs;

static void
count_cleanup(void *arg)
{
    (void)arg;
    cleanup_runs++;
}

START_TEST(test_reuse)
{
    enum { N = 3000 }; /* more than the cache holds (4 MiB of 4 KiB arenas) */
    static gx_arena_t *a[N];
    static chunk_t c[N];

    cleanup_runs = 0;
    /* all alive at once, each with a spare block and a cleanup */
    for (int i = 0; i < N; i++) {
        a[i] = gx_arena_new(4096);
        ck_assert_ptr_nonnull(a[i]);
        chunk_fill(&c[i], gx_arena_alloc(a[i], 3000), 3000, (unsigned char)i);
        ck_assert_ptr_nonnull(gx_arena_alloc(a[i], 2000)); /* a second block */
        ck_assert_int_eq(gx_arena_cleanup_add(a[i], count_cleanup, NULL), 0);
    }
    chunks_check(c, N);
    for (int i = 0; i < N; i++)
        gx_arena_free(a[i]);
    ck_assert_int_eq(cleanup_runs, N);
    /* what comes back, cached or new, is empty: no bytes used, no cleanups */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            a[i] = gx_arena_new(4096);
            ck_assert_ptr_nonnull(a[i]);
            ck_assert_uint_eq(gx_arena_used(a[i]), 0);
            chunk_fill(&c[i], gx_arena_alloc(a[i], 4096), 4096, (unsigned char)(i + round));
        }
        chunks_check(c, N);
        /* another size in between is never served from the 4 KiB arenas */
        gx_arena_t *small = gx_arena_new(512);
        chunk_t s1;
        chunk_fill(&s1, gx_arena_alloc(small, 512), 512, 0x5a);
        chunks_check(c, N);
        chunks_check(&s1, 1);
        gx_arena_free(small);
        for (int i = 0; i < N; i++)
            gx_arena_free(a[i]);
    }
    ck_assert_int_eq(cleanup_runs, N);
    gx_arena_cache_flush(); /* under ASan/valgrind: nothing left behind */
    gx_arena_t *b = gx_arena_new(4096);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(gx_arena_used(b), 0);
    gx_arena_free(b);
    gx_arena_cache_flush();
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *
arena_suite(void)
{
    Suite *s = suite_create("gx_arena");
    TCase *tc;

    tc = tcase_create("alloc");
    tcase_add_test(tc, test_alignment);
    tcase_add_test(tc, test_zero_size);
    tcase_add_test(tc, test_used);
    tcase_add_test(tc, test_big_allocations);
    tcase_add_test(tc, test_many_small);
    tcase_add_test(tc, test_size_overflow);
    tcase_add_test(tc, test_calloc);
    tcase_add_test(tc, test_strndup);
    suite_add_tcase(s, tc);

    tc = tcase_create("cleanup");
    tcase_add_test(tc, test_cleanups_reverse);
    tcase_add_test(tc, test_cleanup_frees_heap);
    tcase_add_test(tc, test_free_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("reuse");
    tcase_add_test(tc, test_reuse);
    suite_add_tcase(s, tc);

    tc = tcase_create("protobuf");
    tcase_add_test(tc, test_pb_allocator);
    suite_add_tcase(s, tc);

    tc = tcase_create("enomem");
    tcase_add_test(tc, test_fail_new);
    tcase_add_test(tc, test_fail_alloc);
    tcase_add_test(tc, test_fail_fits_in_block);
    tcase_add_test(tc, test_fail_cleanup_add);
    tcase_add_test(tc, test_fail_every_point);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(arena_suite());
    int failures;

    /* Fork mode (Check's default) unless CK_FORK=no, e.g. under valgrind or gdb. */
    srunner_run_all(sr, CK_NORMAL);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures != 0;
}
