/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the clocks (src/util/gx_clock.h): the event time is the one
 * read at gx_clock_event_begin() until gx_clock_event_end(), on that thread
 * only, and a fresh reading anywhere else; the wall clock agrees with
 * CLOCK_REALTIME.
 */
#include "config.h"

#include "util/gx_clock.h"

#include <pthread.h>
#include <time.h>

#include <check.h>

static void
sleep_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};

    while (nanosleep(&ts, &ts) != 0) {
    }
}

START_TEST(test_event_time_is_cached_in_the_bracket)
{
    uint64_t t0, t1;
    int64_t w0;

    gx_clock_event_begin();
    t0 = gx_event_ns();
    w0 = gx_event_unix_ms();
    sleep_ms(5);
    ck_assert_uint_eq(gx_event_ns(), t0);
    ck_assert_uint_eq(gx_event_ms(), t0 / 1000000u);
    ck_assert_int_eq(gx_event_unix_ms(), w0);
    ck_assert_uint_ge(gx_now_ns() - t0, 5000000u); /* the real clock went on */
    gx_clock_event_end();
    t1 = gx_event_ns();
    ck_assert_uint_ge(t1 - t0, 5000000u);
    ck_assert_int_ge(gx_event_unix_ms() - w0, 5);
}
END_TEST

START_TEST(test_event_time_outside_is_now)
{
    uint64_t t0 = gx_event_ns();

    sleep_ms(2);
    ck_assert_uint_ge(gx_event_ns() - t0, 2000000u);
    /* a new bracket reads the clock again: nothing of the last one is left */
    gx_clock_event_begin();
    gx_clock_event_end();
    sleep_ms(2);
    gx_clock_event_begin();
    ck_assert_uint_ge(gx_event_ns() - t0, 4000000u);
    gx_clock_event_end();
}
END_TEST

static void *
other_thread(void *arg)
{
    *(uint64_t *)arg = gx_event_ns();
    return NULL;
}

START_TEST(test_event_time_is_per_thread)
{
    pthread_t t;
    uint64_t t0, seen = 0;

    gx_clock_event_begin();
    t0 = gx_event_ns();
    sleep_ms(3);
    ck_assert_int_eq(pthread_create(&t, NULL, other_thread, &seen), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_uint_ge(seen - t0, 3000000u); /* not this thread's cached time */
    gx_clock_event_end();
}
END_TEST

START_TEST(test_unix_ms_is_realtime)
{
    struct timespec ts;
    int64_t a, b, c;

    a = gx_unix_ms();
    clock_gettime(CLOCK_REALTIME, &ts);
    b = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    c = gx_unix_ms();
    ck_assert_int_le(a, b);
    ck_assert_int_le(b, c);
    ck_assert_int_gt(a, 1600000000000LL); /* after 2020: milliseconds, not seconds */
}
END_TEST

static Suite *
clock_suite(void)
{
    Suite *s = suite_create("gx_clock");
    TCase *tc = tcase_create("event");

    tcase_add_test(tc, test_event_time_is_cached_in_the_bracket);
    tcase_add_test(tc, test_event_time_outside_is_now);
    tcase_add_test(tc, test_event_time_is_per_thread);
    tcase_add_test(tc, test_unix_ms_is_realtime);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(clock_suite());
    int failures;

    /* Fork mode (Check's default) unless CK_FORK=no, e.g. under valgrind or gdb. */
    srunner_run_all(sr, CK_NORMAL);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures != 0;
}
