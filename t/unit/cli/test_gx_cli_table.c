/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of galaxy-cli's tables for people (src/cli/gx_cli_table.c):
 * column alignment (UTF-8 counted by characters, the last column unpadded),
 * whole rows and cell by cell, lists and maps, kv tables, control characters
 * made harmless, the human forms of times, durations and sizes, and the
 * failures print reports.  Each case prints into memory and compares text.
 */
#include "config.h"

#include "cli/gx_cli_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "galaxy/pool/v1/pool.pb-c.h"

/* Fails the case unless @t prints exactly @want. */
static void
assert_prints(const gx_cli_table_t *t, const char *want)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gx_cli_table_print(t, f), 0);
    fclose(f);
    ck_assert_msg(strcmp(buf, want) == 0, "got:\n%s\nwant:\n%s", buf, want);
    free(buf);
}

START_TEST(test_columns_align)
{
    gx_cli_table_t *t = gx_cli_table_new("ID", "STATE", "NOTE", NULL);

    gx_cli_table_row(t, "n1", "HEALTHY", "first");
    gx_cli_table_row(t, "node-long", "DOWN", NULL);
    gx_cli_table_add(t, "%s", "n\xc3\xa9"); /* "né": 2 characters, 3 bytes */
    gx_cli_table_add(t, "%d", 42);
    gx_cli_table_add(t, "last");
    ck_assert_uint_eq(gx_cli_table_rows(t), 3);
    assert_prints(t, "ID         STATE    NOTE\n"
                     "n1         HEALTHY  first\n"
                     "node-long  DOWN\n"
                     "n\xc3\xa9         42       last\n");
    gx_cli_table_free(t);
}
END_TEST

START_TEST(test_header_only_and_incomplete_rows)
{
    gx_cli_table_t *t = gx_cli_table_new("A", "B", NULL);

    assert_prints(t, "A  B\n");
    gx_cli_table_add(t, "x");      /* a row left incomplete ... */
    gx_cli_table_row(t, "y", "z"); /* ... is closed by the next row */
    gx_cli_table_add(t, "only");   /* the last row may stay incomplete */
    assert_prints(t, "A     B\nx\ny     z\nonly\n");
    gx_cli_table_free(t);
    gx_cli_table_free(NULL);
}
END_TEST

START_TEST(test_control_characters_are_replaced)
{
    gx_cli_table_t *t = gx_cli_table_new("V", NULL);

    gx_cli_table_row(t, "a\nb\x1b[2Jc\x7f");
    gx_cli_table_add(t, "%s", "tab\there");
    assert_prints(t, "V\na?b?[2Jc?\ntab?here\n");
    gx_cli_table_free(t);
}
END_TEST

START_TEST(test_lists_and_maps)
{
    char *specs[] = {"gpu", "cpu"};
    Galaxy__Pool__V1__Pool__LabelsEntry e[2] = {GALAXY__POOL__V1__POOL__LABELS_ENTRY__INIT,
                                                GALAXY__POOL__V1__POOL__LABELS_ENTRY__INIT};
    ProtobufCMessage *entries[] = {&e[0].base, &e[1].base};
    gx_cli_table_t *t = gx_cli_table_new("SPECS", "LABELS", NULL);

    e[0].key = "zone", e[0].value = "a";
    e[1].key = "team", e[1].value = "";
    gx_cli_table_add_list(t, specs, 2);
    gx_cli_table_add_map(t, entries, 2);
    gx_cli_table_add_list(t, NULL, 0);
    gx_cli_table_add_map(t, NULL, 0);
    assert_prints(t, "SPECS    LABELS\ngpu,cpu  zone=a,team=\n-        -\n");
    gx_cli_table_free(t);
}
END_TEST

START_TEST(test_kv_table)
{
    char *specs[] = {"a"};
    gx_cli_table_t *t = gx_cli_table_kv_new();

    gx_cli_table_kv(t, "Name", "%s", "devnet");
    gx_cli_table_kv(t, "Max nodes", "%u", 5u);
    gx_cli_table_kv_list(t, "Specializations", specs, 1);
    gx_cli_table_kv_map(t, "Labels", NULL, 0);
    ck_assert_uint_eq(gx_cli_table_rows(t), 4);
    assert_prints(t, "Name:             devnet\n"
                     "Max nodes:        5\n"
                     "Specializations:  a\n"
                     "Labels:           -\n");
    gx_cli_table_free(t);
    t = gx_cli_table_kv_new();
    assert_prints(t, "");
    gx_cli_table_free(t);
}
END_TEST

START_TEST(test_failures)
{
    gx_cli_table_t *t = gx_cli_table_new("A", NULL);
    FILE *full = fopen("/dev/full", "w");

    /* NULL (a table that could not be allocated) takes every call, then fails to print */
    gx_cli_table_row(NULL, "x");
    gx_cli_table_add(NULL, "x");
    gx_cli_table_kv(NULL, "x", "y");
    ck_assert_int_eq(gx_cli_table_print(NULL, stdout), -1);
    /* a write that fails */
    ck_assert_ptr_nonnull(full);
    gx_cli_table_row(t, "x");
    ck_assert_int_eq(gx_cli_table_print(t, full), -1);
    fclose(full);
    gx_cli_table_free(t);
}
END_TEST

START_TEST(test_times)
{
    char buf[GX_CLI_TIME_LEN];

    ck_assert_str_eq(gx_cli_time_str(1795635901999, buf), "2026-11-25 19:45:01");
    ck_assert_str_eq(gx_cli_time_str(0, buf), "-");
    ck_assert_str_eq(gx_cli_age_str(0, 5000, buf), "-");
    ck_assert_str_eq(gx_cli_age_str(1000, 13500, buf), "12s");
    ck_assert_str_eq(gx_cli_age_str(9000, 5000, buf), "0s"); /* from the future: skew */
    ck_assert_int_gt(gx_cli_now_ms(), 1700000000000);
}
END_TEST

START_TEST(test_durations_and_sizes)
{
    static const struct {
        uint64_t ms;
        const char *want;
    } d[] = {{0, "0s"},          {1, "1ms"},           {850, "850ms"},      {1000, "1s"},
             {59999, "59s"},     {60000, "1m00s"},     {90000, "1m30s"},    {3599999, "59m59s"},
             {7200000, "2h00m"}, {86399999, "23h59m"}, {302400000, "3d12h"}};
    static const struct {
        uint64_t bytes;
        const char *want;
    } b[] = {{0, "0B"},        {1023, "1023B"},        {1024, "1.0KiB"},
             {1536, "1.5KiB"}, {1ull << 30, "1.0GiB"}, {UINT64_MAX, "16.0EiB"}};
    char buf[GX_CLI_TIME_LEN];

    for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++)
        ck_assert_str_eq(gx_cli_duration_str(d[i].ms, buf), d[i].want);
    for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++)
        ck_assert_str_eq(gx_cli_bytes_str(b[i].bytes, buf), b[i].want);
}
END_TEST

static Suite *
table_suite(void)
{
    Suite *s = suite_create("gx_cli_table");
    TCase *tc = tcase_create("table");

    tcase_add_test(tc, test_columns_align);
    tcase_add_test(tc, test_header_only_and_incomplete_rows);
    tcase_add_test(tc, test_control_characters_are_replaced);
    tcase_add_test(tc, test_lists_and_maps);
    tcase_add_test(tc, test_kv_table);
    tcase_add_test(tc, test_failures);
    tcase_add_test(tc, test_times);
    tcase_add_test(tc, test_durations_and_sizes);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(table_suite());
    int failures;

    srunner_run_all(sr, CK_NORMAL);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures == 0 ? 0 : 1;
}
