/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the UTF-8 checks (src/util/gx_utf8.h): what RFC 3629 allows
 * passes, overlong forms, surrogates, code points past U+10FFFF and cut
 * sequences do not; scrubbing replaces exactly the bytes of bad sequences.
 */
#include "config.h"

#include "util/gx_utf8.h"

#include <string.h>

#include <check.h>

static int
valid(const char *s)
{
    return gx_utf8_valid(s, strlen(s));
}

START_TEST(test_well_formed_passes)
{
    static const char *const ok[] = {
        "", "ascii", "\x7f", "\xc2\x80", "\xdf\xbf", "caf\xc3\xa9",
        "\xe0\xa0\x80", "\xe4\xb8\xad", "\xed\x9f\xbf" /* U+D7FF */, "\xee\x80\x80" /* U+E000 */,
        "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf" /* U+10FFFF */,
    };

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        ck_assert_msg(valid(ok[i]), "case %zu", i);
}
END_TEST

START_TEST(test_ill_formed_fails)
{
    static const char *const bad[] = {
        "\x80", "a\xbf", "\xc0\xaf", "\xc1\xbf",          /* continuation alone, overlong */
        "\xe0\x80\xaf", "\xe0\x9f\xbf",                    /* overlong three-byte */
        "\xed\xa0\x80", "\xed\xbf\xbf",                    /* surrogates */
        "\xf0\x80\x80\xaf", "\xf0\x8f\xbf\xbf",            /* overlong four-byte */
        "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff",    /* past U+10FFFF, never a lead */
        "\xc3", "ok\xe2\x82", "\xf0\x90\x80", "\xe4(\xad", /* cut short, or broken */
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!valid(bad[i]), "case %zu", i);
}
END_TEST

START_TEST(test_length_bounds_the_check)
{
    /* a sequence cut by the length is cut, whatever follows in memory */
    ck_assert(!gx_utf8_valid("\xc3\xa9", 1));
    ck_assert(gx_utf8_valid("ok\xff", 2));
    ck_assert(gx_utf8_valid("a\0b", 3)); /* NUL is UTF-8 */
}
END_TEST

START_TEST(test_scrub_replaces_only_bad_bytes)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"clean caf\xc3\xa9", "clean caf\xc3\xa9"},
        {"a\xff" "b\xed\xa0\x80", "a?b???"},
        {"ok\xe2\x82", "ok??"},
        {"\xc0\xaf" "x\xf4\x8f\xbf\xbf", "??x\xf4\x8f\xbf\xbf"},
        {"\xe4(\xad", "?(?"},
    };
    char buf[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        strcpy(buf, cases[i].in);
        gx_utf8_scrub(buf);
        ck_assert_str_eq(buf, cases[i].out);
        ck_assert(valid(buf));
    }
}
END_TEST

static Suite *
utf8_suite(void)
{
    Suite *s = suite_create("gx_utf8");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_well_formed_passes);
    tcase_add_test(tc, test_ill_formed_fails);
    tcase_add_test(tc, test_length_bounds_the_check);
    tcase_add_test(tc, test_scrub_replaces_only_bad_bytes);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(utf8_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
