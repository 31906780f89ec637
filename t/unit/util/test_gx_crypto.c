/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the cryptographic helpers (src/util/gx_crypto.c): SHA-256
 * against the FIPS 180-2 test vectors (also split across its two inputs, as
 * the key store calls it with salt and secret), hex output, constant-time
 * comparison, and random bytes that are not all alike, not replayed in a
 * forked child.
 */
#include "config.h"

#include "util/gx_crypto.h"

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

static const char *
sha_hex(const void *a, size_t alen, const void *b, size_t blen)
{
    static char out[2 * GX_SHA256_LEN + 1];
    uint8_t d[GX_SHA256_LEN];

    ck_assert_int_eq(gx_sha256(d, a, alen, b, blen), 0);
    gx_hex(out, d, sizeof(d));
    return out;
}

START_TEST(sha256_vectors)
{
    const char *abc2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

    ck_assert_str_eq(sha_hex("", 0, "", 0),
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ck_assert_str_eq(sha_hex("abc", 3, NULL, 0),
                     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ck_assert_str_eq(sha_hex(abc2, strlen(abc2), NULL, 0),
                     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* split anywhere: the same digest */
    for (size_t k = 0; k <= strlen(abc2); k++)
        ck_assert_str_eq(sha_hex(abc2, k, abc2 + k, strlen(abc2) - k),
                         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}
END_TEST

START_TEST(hex_and_compare)
{
    const uint8_t b[] = {0x00, 0x0f, 0xa5, 0xff};
    char out[9];

    gx_hex(out, b, sizeof(b));
    ck_assert_str_eq(out, "000fa5ff");
    gx_hex(out, b, 0);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(gx_ct_equal("abcd", "abcd", 4), 1);
    ck_assert_int_eq(gx_ct_equal("abcd", "abce", 4), 0);
    ck_assert_int_eq(gx_ct_equal("xbcd", "abcd", 4), 0);
    ck_assert_int_eq(gx_ct_equal("a", "b", 0), 1);
}
END_TEST

/* every length around the 8-byte steps, a difference at every position and bit */
START_TEST(compare_every_byte_and_bit)
{
    uint8_t a[43], b[43];

    for (size_t i = 0; i < sizeof(a); i++)
        a[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof(a); n++) {
        memcpy(b, a, sizeof(a));
        ck_assert_int_eq(gx_ct_equal(a, b, n), 1);
        for (size_t i = 0; i < n; i++)
            for (int bit = 0; bit < 8; bit++) {
                b[i] ^= (uint8_t)(1u << bit);
                ck_assert_msg(gx_ct_equal(a, b, n) == 0, "n=%zu i=%zu bit=%d", n, i, bit);
                ck_assert_int_eq(gx_ct_equal(a, b, i), 1); /* before it: equal */
                b[i] ^= (uint8_t)(1u << bit);
            }
    }
    /* unaligned starts */
    memcpy(b, a, sizeof(a));
    ck_assert_int_eq(gx_ct_equal(a + 1, b + 1, 41), 1);
    b[42] ^= 0x80;
    ck_assert_int_eq(gx_ct_equal(a + 3, b + 3, 40), 0);
}
END_TEST

START_TEST(random_bytes)
{
    uint8_t a[32], b[32], zero[32] = {0};

    gx_random_bytes(a, sizeof(a));
    gx_random_bytes(b, sizeof(b));
    /* 2^-256 each: a failure here is a broken generator, not bad luck */
    ck_assert(memcmp(a, b, sizeof(a)) != 0);
    ck_assert(memcmp(a, zero, sizeof(a)) != 0);
    gx_random_bytes(a, 0);
}
END_TEST

/*
 * Small draws come from a per-thread buffer: a forked child must not replay
 * what its parent draws next, and no byte is handed out twice.
 */
START_TEST(random_buffer)
{
    uint8_t first[16], parent[16], child[16], big[4096];
    int fds[2], status;
    pid_t pid;

    gx_random_bytes(first, sizeof(first)); /* the buffer now holds the bytes that follow */
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        gx_random_bytes(child, sizeof(child));
        _exit(write(fds[1], child, sizeof(child)) == (ssize_t)sizeof(child) ? 0 : 1);
    }
    close(fds[1]);
    gx_random_bytes(parent, sizeof(parent));
    ck_assert_int_eq(read(fds[0], child, sizeof(child)), (ssize_t)sizeof(child));
    close(fds[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert(memcmp(parent, child, sizeof(child)) != 0);
    ck_assert(memcmp(first, parent, sizeof(first)) != 0);
    /* many small draws across refills, and a big one past the buffer: all distinct */
    for (int i = 0; i < 200; i++) {
        uint8_t x[16];
        gx_random_bytes(x, sizeof(x));
        ck_assert(memcmp(x, parent, sizeof(x)) != 0);
        memcpy(parent, x, sizeof(x));
    }
    gx_random_bytes(big, sizeof(big));
    ck_assert(memcmp(big, big + 2048, 16) != 0);
}
END_TEST

static Suite *
crypto_suite(void)
{
    Suite *s = suite_create("gx_crypto");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, sha256_vectors);
    tcase_add_test(tc, hex_and_compare);
    tcase_add_test(tc, compare_every_byte_and_bit);
    tcase_add_test(tc, random_bytes);
    tcase_add_test(tc, random_buffer);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(crypto_suite());
    int failures;

    srunner_run_all(sr, CK_NORMAL);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures == 0 ? 0 : 1;
}
