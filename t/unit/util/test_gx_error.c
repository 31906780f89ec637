/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the error table (src/util/gx_error.c): each code's value, its
 * message and the gRPC status that reports it, written out here by hand so
 * that a change to the table shows up as a failing row; then the properties
 * every row of GX_ERRORS must have (negative, distinct, a message of its own),
 * and what unknown codes give.
 */
#include "config.h"

#include "util/gx_error.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include <check.h>

typedef struct {
    int err;
    const char *name;
    int value;
    const char *msg;
    gx_status_t status;
} err_case_t;

static const err_case_t err_cases[] = {
    {GX_ENOMEM, "GX_ENOMEM", -ENOMEM, "out of memory", GX_STATUS_RESOURCE_EXHAUSTED},
    {GX_EINVAL, "GX_EINVAL", -EINVAL, "invalid argument", GX_STATUS_INVALID_ARGUMENT},
    {GX_EIO, "GX_EIO", -EIO, "input/output error", GX_STATUS_INTERNAL},
    {GX_ENOSPC, "GX_ENOSPC", -ENOSPC, "no space left on the data directory's disk",
     GX_STATUS_RESOURCE_EXHAUSTED},
    {GX_ENOENT, "GX_ENOENT", -ENOENT, "no such file or directory", GX_STATUS_NOT_FOUND},
    {GX_EACCES, "GX_EACCES", -EACCES, "permission denied", GX_STATUS_PERMISSION_DENIED},
    {GX_E2BIG, "GX_E2BIG", -E2BIG, "too large", GX_STATUS_RESOURCE_EXHAUSTED},
    {GX_ETIMEDOUT, "GX_ETIMEDOUT", -ETIMEDOUT, "timed out", GX_STATUS_DEADLINE_EXCEEDED},
    {GX_ECANCELED, "GX_ECANCELED", -ECANCELED, "cancelled", GX_STATUS_CANCELLED},
    {GX_EADDRINUSE, "GX_EADDRINUSE", -EADDRINUSE, "address in use", GX_STATUS_UNAVAILABLE},
    {GX_ENOTFOUND, "GX_ENOTFOUND", -10001, "not found", GX_STATUS_NOT_FOUND},
    {GX_EEXISTS, "GX_EEXISTS", -10002, "already exists", GX_STATUS_ALREADY_EXISTS},
    {GX_EMAPFULL, "GX_EMAPFULL", -10003, "store is full (server.data_max_mb)",
     GX_STATUS_RESOURCE_EXHAUSTED},
    {GX_EDENIED, "GX_EDENIED", -10004, "access denied", GX_STATUS_PERMISSION_DENIED},
    {GX_EPROTO, "GX_EPROTO", -10005, "protocol error", GX_STATUS_INTERNAL},
    {GX_EABI, "GX_EABI", -10006, "module ABI mismatch", GX_STATUS_INTERNAL},
    {GX_ECONF, "GX_ECONF", -10007, "configuration error", GX_STATUS_INTERNAL},
    {GX_ECLOSED, "GX_ECLOSED", -10008, "call is closed", GX_STATUS_CANCELLED},
    {GX_ESHUTDOWN, "GX_ESHUTDOWN", -10009, "shutting down", GX_STATUS_UNAVAILABLE},
    {GX_EQUEUE_CONN, "GX_EQUEUE_CONN", -10010,
     "responses waiting for this client exceed limits.conn_send_queue_bytes (it does not read)",
     GX_STATUS_RESOURCE_EXHAUSTED},
    {GX_EQUEUE_SERVER, "GX_EQUEUE_SERVER", -10011,
     "responses waiting for clients exceed limits.server_send_queue_bytes",
     GX_STATUS_RESOURCE_EXHAUSTED},
};

#define N_CASES ((int)(sizeof(err_cases) / sizeof(err_cases[0])))

/* Every row of the table as the header defines it. */
typedef struct {
    const char *name;
    int value;
    const char *msg;
    gx_status_t status;
} table_row_t;

static const table_row_t table[] = {
#define ROW(name, value, msg, status) {#name, value, msg, status},
    GX_ERRORS(ROW)
#undef ROW
};

#define N_TABLE ((int)(sizeof(table) / sizeof(table[0])))

START_TEST(test_each_code)
{
    const err_case_t *c = &err_cases[_i];

    ck_assert_msg(c->err == c->value, "%s is %d, want %d", c->name, c->err, c->value);
    ck_assert_str_eq(gx_strerror(c->err), c->msg);
    ck_assert_msg(gx_error_to_status(c->err) == c->status, "%s maps to %d, want %d", c->name,
                  (int)gx_error_to_status(c->err), (int)c->status);
}
END_TEST

/* The hand-written list above covers the whole table, and nothing more. */
START_TEST(test_list_covers_table)
{
    ck_assert_int_eq(N_TABLE, N_CASES);
    for (int i = 0; i < N_TABLE; i++) {
        int found = 0;

        for (int j = 0; j < N_CASES; j++)
            found += strcmp(table[i].name, err_cases[j].name) == 0;
        ck_assert_msg(found == 1, "%s: listed %d times", table[i].name, found);
    }
}
END_TEST

START_TEST(test_table_rows)
{
    const table_row_t *r = &table[_i];
    const char *msg = gx_strerror(r->value);

    /* negative: 0 is success and 1..3 are GX_DECLINED, GX_DONE, GX_AGAIN */
    ck_assert_msg(r->value < 0, "%s = %d", r->name, r->value);
    ck_assert_ptr_nonnull(msg);
    ck_assert_msg(msg[0] != '\0', "%s has an empty message", r->name);
    ck_assert_str_ne(msg, "unknown error");
    ck_assert_str_ne(msg, "success");
    ck_assert_msg(gx_error_to_status(r->value) != GX_STATUS_OK, "%s maps to OK", r->name);
    ck_assert_int_lt(gx_error_to_status(r->value), GX_STATUS_MAX);
    for (int j = 0; j < N_TABLE; j++) {
        if (j == _i)
            continue;
        ck_assert_msg(table[j].value != r->value, "%s and %s are both %d", r->name, table[j].name,
                      r->value);
        ck_assert_msg(strcmp(gx_strerror(table[j].value), msg) != 0,
                      "%s and %s share the message \"%s\"", r->name, table[j].name, msg);
    }
}
END_TEST

/* Codes with an errno equivalent stay above -GX__E_BASE, our own below it. */
START_TEST(test_ranges)
{
    for (int i = 0; i < N_TABLE; i++)
        ck_assert_msg(table[i].value != -GX__E_BASE, "%s is -GX__E_BASE", table[i].name);
    for (int i = 0; i < N_CASES; i++) {
        if (err_cases[i].value >= -GX__E_BASE)
            ck_assert_int_le(-err_cases[i].value, 4095); /* errno values are small */
        else
            ck_assert_int_lt(err_cases[i].value, -GX__E_BASE);
    }
    ck_assert_int_lt(GX_ENOTFOUND, -GX__E_BASE);
    ck_assert_int_gt(GX_EADDRINUSE, -GX__E_BASE);
}
END_TEST

START_TEST(test_success)
{
    ck_assert_str_eq(gx_strerror(0), "success");
    ck_assert_int_eq(gx_error_to_status(0), GX_STATUS_OK);
}
END_TEST

/* An errno value missing from the table still gets the C library's message. */
START_TEST(test_other_errno)
{
    ck_assert_str_eq(gx_strerror(-EPERM), strerror(EPERM));
    ck_assert_str_eq(gx_strerror(-EPIPE), strerror(EPIPE));
    ck_assert_str_eq(gx_strerror(-ECONNRESET), strerror(ECONNRESET));
    ck_assert_int_eq(gx_error_to_status(-EPERM), GX_STATUS_INTERNAL);
    ck_assert_int_eq(gx_error_to_status(-EPIPE), GX_STATUS_INTERNAL);
}
END_TEST

START_TEST(test_unknown_codes)
{
    static const int unknown[] = {1,
                                  2,
                                  3,
                                  ENOMEM, /* positive: not an error code */
                                  INT_MAX,
                                  -GX__E_BASE,
                                  -(GX__E_BASE + 12),
                                  -(GX__E_BASE + 1000),
                                  INT_MIN};

    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        ck_assert_msg(strcmp(gx_strerror(unknown[i]), "unknown error") == 0, "%d: \"%s\"",
                      unknown[i], gx_strerror(unknown[i]));
        ck_assert_int_eq(gx_error_to_status(unknown[i]), GX_STATUS_INTERNAL);
    }
}
END_TEST

static Suite *
error_suite(void)
{
    Suite *s = suite_create("gx_error");
    TCase *tc = tcase_create("table");

    tcase_add_loop_test(tc, test_each_code, 0, N_CASES);
    tcase_add_test(tc, test_list_covers_table);
    tcase_add_loop_test(tc, test_table_rows, 0, N_TABLE);
    tcase_add_test(tc, test_ranges);
    tcase_add_test(tc, test_success);
    tcase_add_test(tc, test_other_errno);
    tcase_add_test(tc, test_unknown_codes);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(error_suite());
    int failures;

    /* Fork mode (Check's default) unless CK_FORK=no, e.g. under valgrind or gdb. */
    srunner_run_all(sr, CK_NORMAL);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures != 0;
}
