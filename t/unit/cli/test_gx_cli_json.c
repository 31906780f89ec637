/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of galaxy-cli's proto3 JSON mapping (src/cli/gx_cli_json.c) on
 * a test message with every kind of field (gx_cli_json_test.proto beside
 * this file): names, defaults, 64-bit integers, floats that JSON cannot
 * hold, bytes, enums known and unknown, maps, oneofs, bad UTF-8, and the
 * one-line output.  Each case compares with a JSON text through json_equal().
 */
#include "config.h"

#include "cli/gx_cli_json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "gx_cli_json_test.pb-c.h"

typedef Galaxy__Test__Json__Everything everything_t;
typedef Galaxy__Test__Json__Inner inner_t;

/* Fails the case unless @msg maps to the JSON text @want. */
static void
assert_json(const ProtobufCMessage *msg, const char *want)
{
    json_error_t jerr;
    json_t *expect = json_loads(want, 0, &jerr);
    json_t *got = gx_cli_json_message(msg);
    char *text = got != NULL ? json_dumps(got, JSON_COMPACT) : NULL;

    ck_assert_msg(expect != NULL, "bad expected JSON: %s", jerr.text);
    ck_assert_msg(got != NULL, "no JSON");
    ck_assert_msg(json_equal(expect, got), "got %s\nwant %s", text, want);
    free(text);
    json_decref(got);
    json_decref(expect);
}

START_TEST(test_defaults_are_printed)
{
    everything_t m = GALAXY__TEST__JSON__EVERYTHING__INIT;

    assert_json(&m.base,
                "{\"i32\":0,\"u32\":0,\"i64\":\"0\",\"u64\":\"0\",\"s64\":\"0\",\"f64\":\"0\","
                "\"dbl\":0.0,\"flt\":0.0,\"flag\":false,\"text\":\"\",\"blob\":\"\","
                "\"color\":\"COLOR_UNSPECIFIED\",\"tags\":[],\"inners\":[],\"labels\":{},"
                "\"byId\":{},\"bigList\":[],\"colors\":[],\"snakeCaseName\":\"\"}");
}
END_TEST

START_TEST(test_scalars)
{
    everything_t m = GALAXY__TEST__JSON__EVERYTHING__INIT;
    uint8_t blob[] = {0, 1, 2, 0xff};

    m.i32 = -7;
    m.u32 = UINT32_MAX;
    m.i64 = INT64_MIN;
    m.u64 = UINT64_MAX;
    m.s64 = -9007199254740993LL; /* not a double */
    m.f64 = 1;
    m.dbl = 0.5;
    m.flt = 2.0f;
    m.flag = 1;
    m.text = "caf\xc3\xa9 \xe2\x98\xba";
    m.blob.data = blob;
    m.blob.len = sizeof(blob);
    m.color = GALAXY__TEST__JSON__COLOR__COLOR_RED;
    m.snake_case_name = "x";
    assert_json(&m.base,
                "{\"i32\":-7,\"u32\":4294967295,\"i64\":\"-9223372036854775808\","
                "\"u64\":\"18446744073709551615\",\"s64\":\"-9007199254740993\",\"f64\":\"1\","
                "\"dbl\":0.5,\"flt\":2.0,\"flag\":true,\"text\":\"caf\\u00e9 \\u263a\","
                "\"blob\":\"AAEC/w==\",\"color\":\"COLOR_RED\",\"tags\":[],\"inners\":[],"
                "\"labels\":{},\"byId\":{},\"bigList\":[],\"colors\":[],"
                "\"snakeCaseName\":\"x\"}");
}
END_TEST

START_TEST(test_special_floats_and_unknown_enum)
{
    everything_t m = GALAXY__TEST__JSON__EVERYTHING__INIT;
    json_t *got;

    m.dbl = NAN;
    m.flt = -INFINITY;
    m.color = 7;
    got = gx_cli_json_message(&m.base);
    ck_assert_str_eq(json_string_value(json_object_get(got, "dbl")), "NaN");
    ck_assert_str_eq(json_string_value(json_object_get(got, "flt")), "-Infinity");
    ck_assert_int_eq(json_integer_value(json_object_get(got, "color")), 7);
    json_decref(got);
    m.dbl = INFINITY;
    got = gx_cli_json_message(&m.base);
    ck_assert_str_eq(json_string_value(json_object_get(got, "dbl")), "Infinity");
    json_decref(got);
}
END_TEST

START_TEST(test_bad_utf8_is_replaced)
{
    everything_t m = GALAXY__TEST__JSON__EVERYTHING__INIT;
    json_t *got;

    /* a stray byte, a truncated sequence, an overlong '/', a surrogate */
    m.text = "a\xff"
             "b\xe2\x98"
             "c\xc0\xaf"
             "d\xed\xa0\x80";
    got = gx_cli_json_message(&m.base);
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(json_string_value(json_object_get(got, "text")),
                     "a\xef\xbf\xbd"
                     "b\xef\xbf\xbd\xef\xbf\xbd"
                     "c\xef\xbf\xbd\xef\xbf\xbd"
                     "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    json_decref(got);
}
END_TEST

START_TEST(test_messages_repeated_maps)
{
    everything_t m = GALAXY__TEST__JSON__EVERYTHING__INIT;
    inner_t in1 = GALAXY__TEST__JSON__INNER__INIT, in2 = GALAXY__TEST__JSON__INNER__INIT;
    inner_t *inners[] = {&in1, &in2};
    Galaxy__Test__Json__Everything__LabelsEntry l1 =
        GALAXY__TEST__JSON__EVERYTHING__LABELS_ENTRY__INIT;
    Galaxy__Test__Json__Everything__LabelsEntry l2 =
        GALAXY__TEST__JSON__EVERYTHING__LABELS_ENTRY__INIT;
    Galaxy__Test__Json__Everything__LabelsEntry *labels[] = {&l1, &l2};
    Galaxy__Test__Json__Everything__ByIdEntry b1 =
        GALAXY__TEST__JSON__EVERYTHING__BY_ID_ENTRY__INIT;
    Galaxy__Test__Json__Everything__ByIdEntry *by_id[] = {&b1};
    char *tags[] = {"a", "b"};
    int64_t big[] = {1, -2};
    Galaxy__Test__Json__Color colors[] = {1, 0};

    in1.name = "one";
    in2.name = "two";
    l1.key = "zone";
    l1.value = "eu";
    l2.key = "tier";
    l2.value = "gold";
    b1.key = -3;
    b1.value = &in2;
    m.inner = &in1;
    m.n_inners = 2;
    m.inners = inners;
    m.n_labels = 2;
    m.labels = labels;
    m.n_by_id = 1;
    m.by_id = by_id;
    m.n_tags = 2;
    m.tags = tags;
    m.n_big_list = 2;
    m.big_list = big;
    m.n_colors = 2;
    m.colors = colors;
    m.choice_case = GALAXY__TEST__JSON__EVERYTHING__CHOICE_PICK_NUM;
    m.pick_num = 0;
    assert_json(&m.base,
                "{\"i32\":0,\"u32\":0,\"i64\":\"0\",\"u64\":\"0\",\"s64\":\"0\",\"f64\":\"0\","
                "\"dbl\":0.0,\"flt\":0.0,\"flag\":false,\"text\":\"\",\"blob\":\"\","
                "\"color\":\"COLOR_UNSPECIFIED\",\"inner\":{\"name\":\"one\"},"
                "\"tags\":[\"a\",\"b\"],\"inners\":[{\"name\":\"one\"},{\"name\":\"two\"}],"
                "\"labels\":{\"zone\":\"eu\",\"tier\":\"gold\"},"
                "\"byId\":{\"-3\":{\"name\":\"two\"}},\"bigList\":[\"1\",\"-2\"],"
                "\"pickNum\":0,\"colors\":[\"COLOR_RED\",\"COLOR_UNSPECIFIED\"],"
                "\"snakeCaseName\":\"\"}");
}
END_TEST

START_TEST(test_oneof_string_member)
{
    everything_t m = GALAXY__TEST__JSON__EVERYTHING__INIT;
    json_t *got;

    m.choice_case = GALAXY__TEST__JSON__EVERYTHING__CHOICE_PICK_TEXT;
    m.pick_text = "hi";
    got = gx_cli_json_message(&m.base);
    ck_assert_str_eq(json_string_value(json_object_get(got, "pickText")), "hi");
    ck_assert_ptr_null(json_object_get(got, "pickNum"));
    json_decref(got);
}
END_TEST

START_TEST(test_print_one_line)
{
    everything_t m = GALAXY__TEST__JSON__EVERYTHING__INIT;
    json_t *got = gx_cli_json_message(&m.base);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    ck_assert_int_eq(gx_cli_json_print(got, f), 0);
    fclose(f);
    ck_assert_ptr_nonnull(strchr(buf, '\n'));
    ck_assert_ptr_eq(strchr(buf, '\n'), buf + len - 1);
    ck_assert_int_eq(strncmp(buf, "{\"i32\":0,\"u32\":0,", 17), 0);
    free(buf);
    json_decref(got);
}
END_TEST

static Suite *
json_suite(void)
{
    Suite *s = suite_create("gx_cli_json");
    TCase *tc = tcase_create("mapping");

    tcase_add_test(tc, test_defaults_are_printed);
    tcase_add_test(tc, test_scalars);
    tcase_add_test(tc, test_special_floats_and_unknown_enum);
    tcase_add_test(tc, test_bad_utf8_is_replaced);
    tcase_add_test(tc, test_messages_repeated_maps);
    tcase_add_test(tc, test_oneof_string_member);
    tcase_add_test(tc, test_print_one_line);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(json_suite());
    int failures;

    srunner_run_all(sr, CK_NORMAL);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures == 0 ? 0 : 1;
}
