/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the byte queue (src/util/gx_bq.c): bytes come out in the order
 * they went in, contiguous, across the arena storage, the move to the heap,
 * moving the head back and growing; the arena storage is taken once only;
 * a big heap buffer is let go when the queue empties; out of memory in the
 * arena is reported.  Under --enable-sanitizers every case also proves that
 * nothing leaks and that no byte outside the queue is touched.
 */
#include "config.h"

#include "util/gx_bq.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "util/gx_error.h"

/* byte i of the stream is pattern(i) */
static uint8_t
pattern(size_t i)
{
    return (uint8_t)(i * 7 + (i >> 8));
}

static void
put(gx_bq_t *q, gx_arena_t *a, size_t *wpos, size_t n)
{
    uint8_t *p = gx_bq_reserve(q, a, n);

    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++)
        p[i] = pattern(*wpos + i);
    gx_bq_commit(q, n);
    *wpos += n;
}

static void
take(gx_bq_t *q, size_t *rpos, size_t n)
{
    const uint8_t *d = gx_bq_data(q);

    ck_assert_uint_ge(gx_bq_len(q), n);
    for (size_t i = 0; i < n; i++)
        if (d[i] != pattern(*rpos + i))
            ck_abort_msg("byte %zu of the stream is %u, not %u", *rpos + i, d[i],
                         pattern(*rpos + i));
    gx_bq_drain(q, n);
    *rpos += n;
}

START_TEST(test_small_stays_in_arena)
{
    gx_arena_t *a = gx_arena_new(4096);
    gx_bq_t q = {0};
    size_t w = 0, r = 0;

    ck_assert_ptr_null(gx_bq_data(&q));
    ck_assert_uint_eq(gx_bq_len(&q), 0);
    put(&q, a, &w, 5);
    put(&q, a, &w, 60);
    ck_assert(!q.heap);
    ck_assert_uint_eq(q.cap, GX_BQ_FIRST);
    take(&q, &r, 65);
    /* empty: the head goes back to the front, the storage stays */
    ck_assert_uint_eq(q.head, 0);
    put(&q, a, &w, GX_BQ_FIRST);
    ck_assert(!q.heap);
    take(&q, &r, GX_BQ_FIRST);
    gx_bq_free(&q);
    gx_arena_free(a);
}
END_TEST

START_TEST(test_grows_to_heap_in_order)
{
    gx_arena_t *a = gx_arena_new(4096);
    gx_bq_t q = {0};
    size_t w = 0, r = 0;

    put(&q, a, &w, 100);
    put(&q, a, &w, 1000); /* more than the arena storage: moves to the heap */
    ck_assert(q.heap);
    take(&q, &r, 50);
    put(&q, a, &w, 30000);
    take(&q, &r, 31050);
    ck_assert_uint_eq(gx_bq_len(&q), 0);
    gx_bq_free(&q);
    gx_arena_free(a);
}
END_TEST

/* A stream of appends and takes of varied sizes; the queue's storage stays
 * within a few times the most it held, and every byte comes out in order. */
START_TEST(test_stream)
{
    gx_arena_t *a = gx_arena_new(4096);
    gx_bq_t q = {0};
    size_t w = 0, r = 0, most = 0;
    unsigned seed = 12345;

    for (int i = 0; i < 20000; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t n = (seed >> 8) % 3000;
        if ((seed >> 4) & 1)
            put(&q, a, &w, n);
        else
            take(&q, &r, n < gx_bq_len(&q) ? n : gx_bq_len(&q));
        if (gx_bq_len(&q) > most)
            most = gx_bq_len(&q);
        ck_assert_uint_le(q.head + q.len, q.cap);
        if (q.heap)
            ck_assert_uint_le(q.cap, 4 * most + 2 * 3000 + GX_BQ_FIRST);
    }
    take(&q, &r, gx_bq_len(&q));
    ck_assert_uint_eq(r, w);
    gx_bq_free(&q);
    gx_arena_free(a);
}
END_TEST

/* Appending after some bytes were taken moves the head back only when that
 * copies no more than was taken: otherwise the buffer grows. */
START_TEST(test_head_moves_back_cheaply)
{
    gx_bq_t q = {0};
    size_t w = 0, r = 0;
    uint8_t *before;

    put(&q, NULL, &w, 4096); /* no arena: heap at once */
    ck_assert(q.heap);
    ck_assert_uint_eq(q.cap, 4096);
    take(&q, &r, 3000); /* 1096 left at offset 3000 */
    before = q.buf;
    put(&q, NULL, &w, 2000); /* 1096 moved to the front (less than the 3000 taken) */
    ck_assert_ptr_eq(q.buf, before);
    ck_assert_uint_eq(q.cap, 4096);
    ck_assert_uint_eq(q.head, 0);
    take(&q, &r, 100); /* 2996 left at offset 100 */
    put(&q, NULL, &w, 1001); /* moving 2996 for 100 taken: grows instead */
    ck_assert_uint_eq(q.cap, 8192);
    take(&q, &r, gx_bq_len(&q));
    gx_bq_free(&q);
}
END_TEST

START_TEST(test_big_buffer_let_go_when_empty)
{
    gx_arena_t *a = gx_arena_new(4096);
    gx_bq_t q = {0};
    size_t w = 0, r = 0, used;

    put(&q, a, &w, 10);
    used = gx_arena_used(a);
    put(&q, a, &w, GX_BQ_KEEP + 1);
    ck_assert_uint_gt(q.cap, GX_BQ_KEEP);
    take(&q, &r, 20);
    ck_assert_ptr_nonnull(q.buf); /* not empty yet */
    take(&q, &r, gx_bq_len(&q));
    ck_assert_ptr_null(q.buf);
    ck_assert_uint_eq(q.cap, 0);
    /* the arena storage is not handed out a second time */
    put(&q, a, &w, 10);
    ck_assert(q.heap);
    ck_assert_uint_eq(gx_arena_used(a), used);
    take(&q, &r, 10);
    /* a small heap buffer is kept */
    ck_assert_ptr_nonnull(q.buf);
    gx_bq_free(&q);
    gx_arena_free(a);
}
END_TEST

START_TEST(test_out_of_memory)
{
    gx_arena_t *a = gx_arena_new(64);
    gx_bq_t q = {0};
    static const char msg[] = "hello";

    gx__arena_fail_at = 1; /* the arena's next block fails */
    ck_assert_ptr_null(gx_bq_reserve(&q, a, 10));
    ck_assert_int_eq(gx_bq_add(&q, a, msg, 5), 0); /* the failure was used up */
    ck_assert_uint_eq(gx_bq_len(&q), 5);
    ck_assert_mem_eq(gx_bq_data(&q), msg, 5);
    ck_assert_ptr_null(gx_bq_reserve(&q, a, SIZE_MAX - 2));
    ck_assert_uint_eq(gx_bq_len(&q), 5);
    ck_assert_int_eq(gx_bq_add(&q, a, msg, 0), 0);
    gx_bq_free(&q);
    gx_arena_free(a);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("gx_bq");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_small_stays_in_arena);
    tcase_add_test(tc, test_grows_to_heap_in_order);
    tcase_add_test(tc, test_stream);
    tcase_add_test(tc, test_head_moves_back_cheaply);
    tcase_add_test(tc, test_big_buffer_let_go_when_empty);
    tcase_add_test(tc, test_out_of_memory);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
