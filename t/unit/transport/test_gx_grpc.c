/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the connection-free gRPC wire helpers (src/transport/gx_grpc.c):
 * the 5-byte message prefix, grpc-timeout, grpc-message percent-encoding,
 * content-type and grpc-encoding checks, status names and the base64 of -bin
 * metadata.  Inputs and outputs live in heap buffers of exactly the documented
 * size, so that ASan reports any byte read or written past them; inputs are
 * never NUL-terminated unless the case is about the terminator.
 */
#include "config.h"

#include "transport/gx_grpc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "galaxy/pool/v1/pool.pb-c.h"
#include "util/gx_error.h"

/* A heap copy of @p len bytes of @p s, without a terminator. */
static char *
dup_exact(const char *s, size_t len)
{
    char *p = malloc(len > 0 ? len : 1);

    ck_assert_ptr_nonnull(p);
    memcpy(p, s, len);
    return p;
}

/* ------------------------------------------------------------------------ */
/* Message prefix                                                           */

static const uint32_t prefix_lengths[] = {
    0,        1,          255,        256,         65535,          65536,     (1u << 24) - 1,
    1u << 24, 0x01020304, 0x7fffffff, 0x80000000u, UINT32_MAX - 1, UINT32_MAX};

START_TEST(test_prefix_decode_exact)
{
    static const struct {
        uint8_t bytes[5];
        uint8_t compressed;
        uint32_t length;
    } cases[] = {
        {{0, 0, 0, 0, 0}, 0, 0},
        {{0, 0, 0, 0, 1}, 0, 1},
        {{1, 0, 0, 0, 1}, 1, 1},
        {{0, 0, 1, 0, 0}, 0, 65536},
        {{0, 1, 0, 0, 0}, 0, 1u << 24},
        {{1, 0x01, 0x02, 0x03, 0x04}, 1, 0x01020304},
        {{0, 0xff, 0xff, 0xff, 0xff}, 0, UINT32_MAX},
        {{1, 0x80, 0, 0, 0}, 1, 0x80000000u},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t *p = malloc(GX_GRPC_PREFIX_LEN);
        gx_grpc_prefix_t out = {0xee, 0xdeadbeef};

        ck_assert_ptr_nonnull(p);
        memcpy(p, cases[i].bytes, GX_GRPC_PREFIX_LEN);
        ck_assert_int_eq(gx_grpc_prefix_decode(p, &out), 0);
        ck_assert_uint_eq(out.compressed, cases[i].compressed);
        ck_assert_uint_eq(out.length, cases[i].length);
        free(p);
    }
}
END_TEST

START_TEST(test_prefix_encode_exact)
{
    uint8_t *p = malloc(GX_GRPC_PREFIX_LEN);
    static const uint8_t want1[] = {1, 0x01, 0x02, 0x03, 0x04};
    static const uint8_t want2[] = {0, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t want3[] = {0, 0, 0, 0, 0};
    static const uint8_t want4[] = {1, 0x01, 0, 0, 0};

    ck_assert_ptr_nonnull(p);
    gx_grpc_prefix_encode(p, 1, 0x01020304);
    ck_assert_mem_eq(p, want1, 5);
    gx_grpc_prefix_encode(p, 0, UINT32_MAX);
    ck_assert_mem_eq(p, want2, 5);
    memset(p, 0xaa, 5);
    gx_grpc_prefix_encode(p, 0, 0);
    ck_assert_mem_eq(p, want3, 5);
    /* any non-zero "compressed" is written as the flag 1 */
    gx_grpc_prefix_encode(p, 7, 1u << 24);
    ck_assert_mem_eq(p, want4, 5);
    gx_grpc_prefix_encode(p, -1, 1u << 24);
    ck_assert_mem_eq(p, want4, 5);
    free(p);
}
END_TEST

START_TEST(test_prefix_round_trip)
{
    for (size_t i = 0; i < sizeof(prefix_lengths) / sizeof(prefix_lengths[0]); i++) {
        for (int compressed = 0; compressed <= 1; compressed++) {
            uint8_t *p = malloc(GX_GRPC_PREFIX_LEN);
            gx_grpc_prefix_t out;

            ck_assert_ptr_nonnull(p);
            gx_grpc_prefix_encode(p, compressed, prefix_lengths[i]);
            ck_assert_int_eq(gx_grpc_prefix_decode(p, &out), 0);
            ck_assert_uint_eq(out.compressed, compressed);
            ck_assert_uint_eq(out.length, prefix_lengths[i]);
            free(p);
        }
    }
}
END_TEST

/* gx_grpc_varint_put() writes what protobuf-c writes for a uint64 field (Node.revision). */
START_TEST(test_varint_as_protobuf_c)
{
    static const uint64_t values[] = {1, 127, 128, 300, 16383, 16384, UINT32_MAX,
                                      (uint64_t)UINT32_MAX + 1, 1ull << 63, UINT64_MAX};
    uint8_t want[16], got[16];

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        Galaxy__Pool__V1__Node node = GALAXY__POOL__V1__NODE__INIT;
        size_t n, m;

        node.revision = values[i];
        n = protobuf_c_message_get_packed_size(&node.base);
        ck_assert_uint_le(n, sizeof(want));
        ck_assert_uint_eq(protobuf_c_message_pack(&node.base, want), n);
        got[0] = 13 << 3; /* Node.revision, wire type 0 */
        m = 1 + gx_grpc_varint_put(got + 1, values[i]);
        ck_assert_uint_eq(m, n);
        ck_assert_mem_eq(got, want, n);
    }
    ck_assert_uint_eq(gx_grpc_varint_put(got, 0), 1);
    ck_assert_uint_eq(got[0], 0);
    ck_assert_uint_eq(gx_grpc_varint_put(got, UINT64_MAX), 10);
}
END_TEST

/* Only 0 and 1 are flags; anything else is a protocol error. */
START_TEST(test_prefix_bad_flag)
{
    for (unsigned flag = 2; flag <= 255; flag++) {
        uint8_t p[GX_GRPC_PREFIX_LEN] = {(uint8_t)flag, 0, 0, 0, 1};
        gx_grpc_prefix_t out;

        ck_assert_msg(gx_grpc_prefix_decode(p, &out) == GX_EPROTO, "flag %u accepted", flag);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* grpc-timeout                                                             */

typedef struct {
    const char *s;
    uint64_t usec;
} timeout_ok_t;

static const timeout_ok_t timeout_ok[] = {
    /* every unit */
    {"1H", 3600000000ull},
    {"1M", 60000000ull},
    {"1S", 1000000ull},
    {"1m", 1000ull},
    {"1u", 1ull},
    {"1n", 1ull}, /* rounded up: a deadline is never shortened to nothing */
    /* 1 to 8 digits */
    {"7S", 7000000ull},
    {"12S", 12000000ull},
    {"123m", 123000ull},
    {"1234u", 1234ull},
    {"12345m", 12345000ull},
    {"123456u", 123456ull},
    {"1234567m", 1234567000ull},
    {"12345678u", 12345678ull},
    {"00000001S", 1000000ull},
    {"00000000S", 0},
    {"0m", 0},
    /* nanoseconds round up to the next microsecond */
    {"0n", 0},
    {"999n", 1},
    {"1000n", 1},
    {"1001n", 2},
    {"1999n", 2},
    {"2000n", 2},
    {"99999999n", 100000},
    {"99999000n", 99999},
    /* the largest of each unit, none overflowing */
    {"99999999H", 99999999ull * 3600 * 1000000},
    {"99999999M", 99999999ull * 60 * 1000000},
    {"99999999S", 99999999ull * 1000000},
    {"99999999m", 99999999ull * 1000},
    {"99999999u", 99999999ull},
};

START_TEST(test_timeout_ok)
{
    const timeout_ok_t *c = &timeout_ok[_i];
    size_t len = strlen(c->s);
    char *s = dup_exact(c->s, len);
    uint64_t usec = 12345;

    ck_assert_msg(gx_grpc_timeout_parse(s, len, &usec) == 0, "\"%s\" refused", c->s);
    ck_assert_msg(usec == c->usec, "\"%s\": %llu, want %llu", c->s, (unsigned long long)usec,
                  (unsigned long long)c->usec);
    free(s);
}
END_TEST

static const char *const timeout_bad[] = {
    "",           /* empty */
    "S",          /* no digits */
    "1",          /* no unit */
    "12",         /* no unit: the last digit is not a unit */
    "12345678",   /* 8 digits, no unit */
    "123456789S", /* 9 digits */
    "000000001S", /* 9 digits, even with leading zeros */
    "999999999H", /* 9 digits */
    "1s",         /* units are case-sensitive */
    "1h",
    "1N",
    "1U",
    "1x",
    "1%",
    "1SS", /* two units */
    "S1",
    "+1S", /* signs */
    "-1S",
    " 1S", /* spaces */
    "1S ",
    "1 S",
    "\t1S",
    "1.5S", /* no fractions */
    "1e3m",
    "0x1S",
    "\xd9\xa1S", /* U+0661 ARABIC-INDIC DIGIT ONE: not an ASCII digit */
};

START_TEST(test_timeout_bad)
{
    const char *t = timeout_bad[_i];
    size_t len = strlen(t);
    char *s = dup_exact(t, len);
    uint64_t usec = 0;

    ck_assert_msg(gx_grpc_timeout_parse(s, len, &usec) == GX_EINVAL, "\"%s\" accepted", t);
    free(s);
}
END_TEST

/* The value is the first @p len bytes: no terminator needed, none looked for. */
START_TEST(test_timeout_len)
{
    uint64_t usec = 0;

    ck_assert_int_eq(gx_grpc_timeout_parse("5S0", 2, &usec), 0);
    ck_assert_uint_eq(usec, 5000000);
    ck_assert_int_eq(gx_grpc_timeout_parse("5m", 1, &usec), GX_EINVAL);
    ck_assert_int_eq(gx_grpc_timeout_parse("5m", 0, &usec), GX_EINVAL);
    ck_assert_int_eq(gx_grpc_timeout_parse("1\0S", 3, &usec), GX_EINVAL);
    ck_assert_int_eq(gx_grpc_timeout_parse("1S\0", 3, &usec), GX_EINVAL);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* grpc-message percent-encoding                                            */

/* gx_grpc_percent_encode() of @p len bytes into a buffer of exactly 3 * len + 1. */
static size_t
encode(const char *in, size_t len, char **out)
{
    char *src = dup_exact(in, len);
    size_t n;

    *out = malloc(3 * len + 1);
    ck_assert_ptr_nonnull(*out);
    n = gx_grpc_percent_encode(src, len, *out);
    free(src);
    ck_assert_uint_le(n, 3 * len);
    ck_assert_uint_eq(strlen(*out), n);
    return n;
}

/* gx_grpc_percent_decode() of @p len bytes into a buffer of exactly len + 1. */
static size_t
decode(const char *in, size_t len, char **out)
{
    char *src = dup_exact(in, len);
    size_t n;

    *out = malloc(len + 1);
    ck_assert_ptr_nonnull(*out);
    n = gx_grpc_percent_decode(src, len, *out);
    free(src);
    ck_assert_uint_le(n, len);
    ck_assert_int_eq((*out)[n], '\0');
    return n;
}

START_TEST(test_percent_printable_passes)
{
    char in[95], *out;
    size_t n = 0;

    for (int c = 0x20; c <= 0x7e; c++)
        if (c != '%')
            in[n++] = (char)c;
    ck_assert_uint_eq(encode(in, n, &out), n);
    ck_assert_mem_eq(out, in, n);
    free(out);
}
END_TEST

/* Every byte outside 0x20..0x7e, and '%' itself, becomes %XX (upper-case hex). */
START_TEST(test_percent_escaped_bytes)
{
    for (int c = 0; c <= 255; c++) {
        char in = (char)c, want[4], *out;

        if (c >= 0x20 && c <= 0x7e && c != '%')
            continue;
        snprintf(want, sizeof(want), "%%%02X", (unsigned)c);
        ck_assert_uint_eq(encode(&in, 1, &out), 3);
        ck_assert_str_eq(out, want);
        free(out);
    }
}
END_TEST

START_TEST(test_percent_empty)
{
    char *out;

    ck_assert_uint_eq(encode("", 0, &out), 0);
    ck_assert_str_eq(out, "");
    free(out);
    ck_assert_uint_eq(decode("", 0, &out), 0);
    free(out);
}
END_TEST

/* The special_status_message of the interop tests (interop-test-descriptions.md). */
static const char interop_message[] =
    "\t\ntest with whitespace\r\nand Unicode BMP \xe2\x98\xba and non-BMP \xf0\x9f\x98\x88\t\n";

START_TEST(test_percent_interop_message)
{
    static const char want[] = "%09%0Atest with whitespace%0D%0Aand Unicode BMP %E2%98%BA and "
                               "non-BMP %F0%9F%98%88%09%0A";
    size_t len = sizeof(interop_message) - 1;
    char *enc, *dec;
    size_t n;

    n = encode(interop_message, len, &enc);
    ck_assert_str_eq(enc, want);
    ck_assert_uint_eq(decode(enc, n, &dec), len);
    ck_assert_mem_eq(dec, interop_message, len);
    free(enc);
    free(dec);
}
END_TEST

/* Every byte value survives encode → decode, including NUL. */
START_TEST(test_percent_round_trip_all_bytes)
{
    char in[512], *enc, *dec;
    size_t n;

    for (int i = 0; i < 512; i++)
        in[i] = (char)(i * 7 + (i >> 8));
    n = encode(in, sizeof(in), &enc);
    ck_assert_uint_eq(decode(enc, n, &dec), sizeof(in));
    ck_assert_mem_eq(dec, in, sizeof(in));
    free(enc);
    free(dec);
}
END_TEST

typedef struct {
    const char *in;
    size_t in_len;
    const char *out;
    size_t out_len;
} decode_case_t;

#define DC(in, out) {in, sizeof(in) - 1, out, sizeof(out) - 1}

static const decode_case_t decode_cases[] = {
    DC("plain text", "plain text"),
    DC("%41", "A"),
    DC("a%41b", "aAb"),
    DC("%e2%98%ba", "\xe2\x98\xba"), /* lower-case hex too */
    DC("%E2%98%BA", "\xe2\x98\xba"),
    DC("%25", "%"),
    DC("%2541", "%41"), /* decoded once only */
    DC("a%00b", "a\0b"),
    /* malformed escapes are kept as they are */
    DC("%", "%"),
    DC("%4", "%4"),
    DC("a%4", "a%4"),
    DC("%ZZ", "%ZZ"),
    DC("%4Z", "%4Z"),
    DC("%Z4", "%Z4"),
    DC("%G0", "%G0"),
    DC("%%", "%%"),
    DC("%%41", "%A"),
    DC("100%", "100%"),
    DC("% 41", "% 41"),
    DC("%-1", "%-1"),
    DC("%\xff\xff", "%\xff\xff"),
};

START_TEST(test_percent_decode)
{
    const decode_case_t *c = &decode_cases[_i];
    char *out;

    ck_assert_msg(decode(c->in, c->in_len, &out) == c->out_len, "case %d: length", _i);
    ck_assert_msg(memcmp(out, c->out, c->out_len) == 0, "case %d: \"%s\"", _i, out);
    free(out);
}
END_TEST

/* Decoding stops at @p len: an escape cut by the end is kept as it is. */
START_TEST(test_percent_decode_len)
{
    char *out;

    ck_assert_uint_eq(decode("%41", 2, &out), 2);
    ck_assert_str_eq(out, "%4");
    free(out);
    ck_assert_uint_eq(decode("%41", 1, &out), 1);
    ck_assert_str_eq(out, "%");
    free(out);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* content-type                                                             */

typedef struct {
    const char *ct;
    int ok;
} ct_case_t;

static const ct_case_t ct_cases[] = {
    {"application/grpc", 1},
    {"application/grpc+proto", 1},
    {"application/grpc+json", 1},
    {"application/grpc;charset=utf-8", 1},
    {"application/grpc+proto;charset=utf-8", 1},
    {"APPLICATION/GRPC", 1}, /* media types are case-insensitive (RFC 9110 8.3.1) */
    {"Application/gRPC+Proto", 1},
    {"application/grpcx", 0},
    {"application/grpc-web", 0},
    {"application/grpc-web+proto", 0},
    {"application/grpc_", 0},
    {"application/grp", 0},
    {"application/json", 0},
    {"application/protobuf", 0},
    {"text/plain", 0},
    {"application", 0},
    {" application/grpc", 0},
    {"", 0},
};

START_TEST(test_content_type)
{
    const ct_case_t *c = &ct_cases[_i];
    size_t len = strlen(c->ct);
    char *s = dup_exact(c->ct, len);

    ck_assert_msg(gx_grpc_content_type_ok(s, len) == c->ok, "\"%s\": want %d", c->ct, c->ok);
    free(s);
}
END_TEST

/* Only @p len bytes count. */
START_TEST(test_content_type_len)
{
    ck_assert_int_eq(gx_grpc_content_type_ok("application/grpcx", 16), 1);
    ck_assert_int_eq(gx_grpc_content_type_ok("application/grpc", 15), 0);
    ck_assert_int_eq(gx_grpc_content_type_ok("application/grpc", 0), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* grpc-encoding                                                            */

START_TEST(test_encodings)
{
    static const struct {
        const char *s;
        gx_grpc_enc_t enc;
    } cases[] = {
        {"identity", GX_GRPC_ENC_IDENTITY},
        {"gzip", GX_GRPC_ENC_GZIP},
        /* exact, case-sensitive names, as gRPC's own implementations compare them */
        {"GZIP", GX_GRPC_ENC_UNKNOWN},
        {"Identity", GX_GRPC_ENC_UNKNOWN},
        {"deflate", GX_GRPC_ENC_UNKNOWN},
        {"snappy", GX_GRPC_ENC_UNKNOWN},
        {"zstd", GX_GRPC_ENC_UNKNOWN},
        {"gzi", GX_GRPC_ENC_UNKNOWN},
        {"gzipx", GX_GRPC_ENC_UNKNOWN},
        {"gzip ", GX_GRPC_ENC_UNKNOWN},
        {" gzip", GX_GRPC_ENC_UNKNOWN},
        {"identit", GX_GRPC_ENC_UNKNOWN},
        {"identityy", GX_GRPC_ENC_UNKNOWN},
        {"identity,gzip", GX_GRPC_ENC_UNKNOWN},
        {"", GX_GRPC_ENC_UNKNOWN},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = strlen(cases[i].s);
        char *s = dup_exact(cases[i].s, len);

        ck_assert_msg(gx_grpc_encoding_parse(s, len) == cases[i].enc, "\"%s\"", cases[i].s);
        free(s);
    }
    ck_assert_int_eq(gx_grpc_encoding_parse("gzipped", 4), GX_GRPC_ENC_GZIP);
    ck_assert_int_eq(gx_grpc_encoding_parse("identity", 7), GX_GRPC_ENC_UNKNOWN);
}
END_TEST

/* Every name we advertise in grpc-accept-encoding is one we parse. */
START_TEST(test_accept_encoding_parses)
{
    const char *p = GX_GRPC_ACCEPT_ENCODING;
    int tokens = 0;

    while (*p != '\0') {
        size_t len = strcspn(p, ",");

        ck_assert_int_ne(gx_grpc_encoding_parse(p, len), GX_GRPC_ENC_UNKNOWN);
        tokens++;
        p += len;
        if (*p == ',')
            p++;
    }
    ck_assert_int_eq(tokens, 2);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Status names                                                             */

START_TEST(test_status_names)
{
    static const char *const want[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED"};

    ck_assert_int_eq(sizeof(want) / sizeof(want[0]), GX_STATUS_MAX);
    for (int i = 0; i < GX_STATUS_MAX; i++)
        ck_assert_str_eq(gx_grpc_status_name((gx_status_t)i), want[i]);
    ck_assert_str_eq(gx_grpc_status_name(GX_STATUS_DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED");
    ck_assert_str_eq(gx_grpc_status_name(GX_STATUS_UNAUTHENTICATED), "UNAUTHENTICATED");
}
END_TEST

START_TEST(test_status_names_out_of_range)
{
    ck_assert_str_eq(gx_grpc_status_name(GX_STATUS_MAX), "UNKNOWN");
    ck_assert_str_eq(gx_grpc_status_name((gx_status_t)17), "UNKNOWN");
    ck_assert_str_eq(gx_grpc_status_name((gx_status_t)1000), "UNKNOWN");
    ck_assert_str_eq(gx_grpc_status_name((gx_status_t)-1), "UNKNOWN");
    ck_assert_str_eq(gx_grpc_status_name((gx_status_t)INT32_MIN), "UNKNOWN");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* base64                                                                   */

typedef struct {
    const char *raw;
    const char *b64;
} b64_case_t;

/* RFC 4648 section 10 */
static const b64_case_t b64_cases[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

/* gx_base64_decode() of @p len bytes into a buffer of exactly len * 3 / 4 + 3. */
static long
b64_decode(const char *in, size_t len, uint8_t **out)
{
    char *src = dup_exact(in, len);
    long n;

    *out = malloc(len * 3 / 4 + 3);
    ck_assert_ptr_nonnull(*out);
    n = gx_base64_decode(src, len, *out);
    free(src);
    return n;
}

static size_t
b64_encode(const uint8_t *in, size_t len, char **out)
{
    uint8_t *src = (uint8_t *)dup_exact((const char *)in, len);
    size_t n;

    *out = malloc(gx_base64_encoded_len(len) + 1);
    ck_assert_ptr_nonnull(*out);
    n = gx_base64_encode(src, len, *out);
    free(src);
    ck_assert_uint_eq(n, gx_base64_encoded_len(len));
    ck_assert_uint_eq(strlen(*out), n);
    return n;
}

START_TEST(test_base64_vectors)
{
    const b64_case_t *c = &b64_cases[_i];
    size_t rlen = strlen(c->raw), blen = strlen(c->b64), unpadded = blen;
    char *enc;
    uint8_t *dec;

    ck_assert_uint_eq(b64_encode((const uint8_t *)c->raw, rlen, &enc), blen);
    ck_assert_str_eq(enc, c->b64);
    free(enc);
    /* padded */
    ck_assert_int_eq(b64_decode(c->b64, blen, &dec), (long)rlen);
    ck_assert_mem_eq(dec, c->raw, rlen);
    free(dec);
    /* unpadded, as gRPC allows for -bin values */
    while (unpadded > 0 && c->b64[unpadded - 1] == '=')
        unpadded--;
    ck_assert_int_eq(b64_decode(c->b64, unpadded, &dec), (long)rlen);
    ck_assert_mem_eq(dec, c->raw, rlen);
    free(dec);
}
END_TEST

START_TEST(test_base64_encoded_len)
{
    static const size_t want[] = {0, 4, 4, 4, 8, 8, 8, 12};

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_uint_eq(gx_base64_encoded_len(i), want[i]);
    ck_assert_uint_eq(gx_base64_encoded_len(3000), 4000);
    ck_assert_uint_eq(gx_base64_encoded_len(3001), 4004);
}
END_TEST

/* Every byte value, at every length modulo 3, with both alphabets' last symbols. */
START_TEST(test_base64_binary_round_trip)
{
    uint8_t raw[300];

    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (uint8_t)(255 - i * 37);
    for (size_t len = 0; len <= sizeof(raw); len++) {
        char *enc;
        uint8_t *dec;
        size_t n = b64_encode(raw, len, &enc);

        ck_assert_int_eq(b64_decode(enc, n, &dec), (long)len);
        ck_assert_mem_eq(dec, raw, len);
        free(dec);
        while (n > 0 && enc[n - 1] == '=')
            n--;
        ck_assert_int_eq(b64_decode(enc, n, &dec), (long)len);
        ck_assert_mem_eq(dec, raw, len);
        free(dec);
        free(enc);
    }
}
END_TEST

START_TEST(test_base64_alphabet)
{
    static const uint8_t raw[] = {0xfb, 0xff, 0xbf, 0x00, 0x10, 0x83};
    char *enc;
    uint8_t *dec;

    b64_encode(raw, sizeof(raw), &enc);
    ck_assert_str_eq(enc, "+/+/ABCD");
    free(enc);
    ck_assert_int_eq(b64_decode("+/+/ABCD", 8, &dec), 6);
    ck_assert_mem_eq(dec, raw, 6);
    free(dec);
}
END_TEST

static const char *const b64_bad[] = {
    "Zm9v!",     /* not in the alphabet */
    "Zm9v YmFy", /* no spaces */
    "Zm9v\n",    /* no line breaks */
    "Zm9v\r\n",
    "-_-_", /* the URL-safe alphabet is not base64 here */
    "Zm9\xc3\xa9",
    "Zg==Zg==", /* padding in the middle */
    "Z=g=",
    "=Zg=",
    "Z", /* length mod 4 == 1: no whole byte */
    "Z===",
    "Zm9vY",
    "Zm9vY===",
    "Zm9vYmFyZ",
    "Zm9vYmFyZ=",
};

START_TEST(test_base64_invalid)
{
    const char *in = b64_bad[_i];
    uint8_t *dec;

    ck_assert_msg(b64_decode(in, strlen(in), &dec) == -1, "\"%s\" accepted", in);
    free(dec);
}
END_TEST

/* A NUL inside the value is not base64, and nothing past @p len is read. */
START_TEST(test_base64_len)
{
    uint8_t *dec;

    ck_assert_int_eq(b64_decode("Zg\0=", 4, &dec), -1);
    free(dec);
    ck_assert_int_eq(b64_decode("\0\0\0\0", 4, &dec), -1);
    free(dec);
    ck_assert_int_eq(b64_decode("Zm9vYmFy", 4, &dec), 3);
    ck_assert_mem_eq(dec, "foo", 3);
    free(dec);
}
END_TEST

/* ------------------------------------------------------------------------ */

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *
grpc_suite(void)
{
    Suite *s = suite_create("gx_grpc");
    TCase *tc;

    tc = tcase_create("prefix");
    tcase_add_test(tc, test_prefix_decode_exact);
    tcase_add_test(tc, test_prefix_encode_exact);
    tcase_add_test(tc, test_prefix_round_trip);
    tcase_add_test(tc, test_prefix_bad_flag);
    tcase_add_test(tc, test_varint_as_protobuf_c);
    suite_add_tcase(s, tc);

    tc = tcase_create("timeout");
    tcase_add_loop_test(tc, test_timeout_ok, 0, N(timeout_ok));
    tcase_add_loop_test(tc, test_timeout_bad, 0, N(timeout_bad));
    tcase_add_test(tc, test_timeout_len);
    suite_add_tcase(s, tc);

    tc = tcase_create("percent");
    tcase_add_test(tc, test_percent_printable_passes);
    tcase_add_test(tc, test_percent_escaped_bytes);
    tcase_add_test(tc, test_percent_empty);
    tcase_add_test(tc, test_percent_interop_message);
    tcase_add_test(tc, test_percent_round_trip_all_bytes);
    tcase_add_loop_test(tc, test_percent_decode, 0, N(decode_cases));
    tcase_add_test(tc, test_percent_decode_len);
    suite_add_tcase(s, tc);

    tc = tcase_create("headers");
    tcase_add_loop_test(tc, test_content_type, 0, N(ct_cases));
    tcase_add_test(tc, test_content_type_len);
    tcase_add_test(tc, test_encodings);
    tcase_add_test(tc, test_accept_encoding_parses);
    tcase_add_test(tc, test_status_names);
    tcase_add_test(tc, test_status_names_out_of_range);
    suite_add_tcase(s, tc);

    tc = tcase_create("base64");
    tcase_add_loop_test(tc, test_base64_vectors, 0, N(b64_cases));
    tcase_add_test(tc, test_base64_encoded_len);
    tcase_add_test(tc, test_base64_binary_round_trip);
    tcase_add_test(tc, test_base64_alphabet);
    tcase_add_loop_test(tc, test_base64_invalid, 0, N(b64_bad));
    tcase_add_test(tc, test_base64_len);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(grpc_suite());
    int failures;

    /* Fork mode (Check's default) unless CK_FORK=no, e.g. under valgrind or gdb. */
    srunner_run_all(sr, CK_NORMAL);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures != 0;
}
