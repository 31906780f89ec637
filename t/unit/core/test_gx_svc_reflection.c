/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the reflection service's descriptor index
 * (src/core/gx_svc_reflection.c, included below): the wire reader on broken
 * input; the index of the embedded descriptor set (files, imports, every kind
 * of symbol, with and without the leading dot, sorted and unique); which files
 * a response carries as a stream goes on; hand-made sets that are malformed,
 * name a file twice, import a file that is not there, nest too deep or define a
 * name twice; every cut and random corruption of the embedded set (no crash, no
 * leak); every allocation of the indexing failing in turn; and the check that
 * v1 and v1alpha messages encode alike.
 */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "core/gx_mod.h"
#include "core/gx_svc_reflection.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "transport/gx_call.h"
#include "util/gx_error.h"

#include "../gx_test_alloc.h"

#define malloc test_malloc
#define calloc test_calloc
#define realloc test_realloc
#define strdup test_strdup
#define strndup test_strndup
#include "core/gx_svc_reflection.c"
#undef malloc
#undef calloc
#undef realloc
#undef strdup
#undef strndup

#define ERRLEN 256

/* ------------------------------------------------------------------ building wire bytes */

typedef struct {
    uint8_t b[8192];
    size_t n;
} wbuf_t;

static void
put_varint(wbuf_t *w, uint64_t v)
{
    do {
        ck_assert_uint_lt(w->n, sizeof(w->b));
        w->b[w->n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v != 0);
}

static void
put_bytes(wbuf_t *w, uint32_t field, const void *p, size_t len)
{
    put_varint(w, (uint64_t)field << 3 | PB_LEN);
    put_varint(w, len);
    ck_assert_uint_le(w->n + len, sizeof(w->b));
    memcpy(w->b + w->n, p, len);
    w->n += len;
}

static void
put_str(wbuf_t *w, uint32_t field, const char *s)
{
    put_bytes(w, field, s, strlen(s));
}

static void
put_msg(wbuf_t *w, uint32_t field, const wbuf_t *m)
{
    put_bytes(w, field, m->b, m->n);
}

/* A DescriptorProto named @p name with one field, "f". */
static void
message_proto(wbuf_t *w, const char *name)
{
    wbuf_t field = {.n = 0};

    memset(w, 0, sizeof(*w));
    put_str(w, 1, name);
    put_str(&field, 1, "f");
    put_msg(w, 2, &field);
}

/* A FileDescriptorProto; @p deps and @p messages end with NULL. */
static void
file_proto(wbuf_t *w, const char *name, const char *pkg, const char *const *deps,
           const char *const *messages)
{
    wbuf_t m;

    memset(w, 0, sizeof(*w));
    put_str(w, 1, name);
    if (pkg != NULL)
        put_str(w, 2, pkg);
    for (; deps != NULL && *deps != NULL; deps++)
        put_str(w, 3, *deps);
    for (; messages != NULL && *messages != NULL; messages++) {
        message_proto(&m, *messages);
        put_msg(w, 4, &m);
    }
}

static int
index_of(refl_index_t *idx, const wbuf_t *set, char *err)
{
    return refl_index_init(idx, set->b, set->n, err, ERRLEN);
}

/* ------------------------------------------------------------------ the wire reader */

START_TEST(test_wire_reader)
{
    static const uint8_t overlong[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    static const uint8_t truncated_len[] = {0x0a, 0x05, 'a', 'b'};
    static const uint8_t group[] = {0x0b};
    static const uint8_t field_zero[] = {0x02, 0x00};
    static const uint8_t short_fixed64[] = {0x09, 1, 2, 3};
    static const uint8_t good[] = {0x08, 0x96, 0x01, 0x15, 1, 2, 3, 4, 0x12, 0x02, 'h', 'i'};
    pb_reader_t r;
    pb_field_t f;

    r = (pb_reader_t){overlong, overlong + sizeof(overlong)};
    ck_assert_int_eq(pb_next(&r, &f), GX_EPROTO);
    r = (pb_reader_t){truncated_len, truncated_len + sizeof(truncated_len)};
    ck_assert_int_eq(pb_next(&r, &f), GX_EPROTO);
    r = (pb_reader_t){group, group + sizeof(group)};
    ck_assert_int_eq(pb_next(&r, &f), GX_EPROTO);
    r = (pb_reader_t){field_zero, field_zero + sizeof(field_zero)};
    ck_assert_int_eq(pb_next(&r, &f), GX_EPROTO);
    r = (pb_reader_t){short_fixed64, short_fixed64 + sizeof(short_fixed64)};
    ck_assert_int_eq(pb_next(&r, &f), GX_EPROTO);

    r = (pb_reader_t){good, good + sizeof(good)};
    ck_assert_int_eq(pb_next(&r, &f), 1);
    ck_assert_uint_eq(f.number, 1);
    ck_assert_uint_eq(f.wire, PB_VARINT);
    ck_assert_int_eq(pb_next(&r, &f), 1);
    ck_assert_uint_eq(f.number, 2);
    ck_assert_uint_eq(f.wire, PB_I32);
    ck_assert_int_eq(pb_next(&r, &f), 1);
    ck_assert_uint_eq(f.number, 2);
    ck_assert_uint_eq(f.len, 2);
    ck_assert_mem_eq(f.data, "hi", 2);
    ck_assert_int_eq(pb_next(&r, &f), 0);
}
END_TEST

/* ------------------------------------------------------------------ the embedded set */

static size_t
file_index(const refl_index_t *idx, const char *name)
{
    size_t i = SIZE_MAX;

    ck_assert_msg(refl_index_file(idx, name, &i) == 0, "no file %s", name);
    return i;
}

static void
assert_symbol(const refl_index_t *idx, const char *name, const char *file, refl_kind_t kind)
{
    const refl_sym_t *sym = refl_index_symbol(idx, name);

    ck_assert_msg(sym != NULL, "symbol %s not found", name);
    ck_assert_str_eq(idx->files[sym->file].name, file);
    ck_assert_int_eq(sym->kind, kind);
}

START_TEST(test_embedded_set)
{
    static const char *const health = "grpc/health/v1/health.proto";
    static const char *const messages = "grpc/testing/messages.proto";
    static const char *const files[] = {"grpc/health/v1/health.proto",
                                        "galaxy/pool/v1/pool.proto",
                                        "grpc/reflection/v1/reflection.proto",
                                        "grpc/reflection/v1alpha/reflection.proto",
                                        "grpc/testing/empty.proto",
                                        "grpc/testing/messages.proto",
                                        "grpc/testing/test.proto"};
    refl_index_t idx;
    char err[ERRLEN];
    size_t test;

    ck_assert_int_eq(
        refl_index_init(&idx, gx__descriptor_set, gx__descriptor_set_len, err, sizeof(err)), 0);
    /* the files of this tree; modules may add more */
    ck_assert_uint_ge(idx.n_files, sizeof(files) / sizeof(files[0]));
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        (void)file_index(&idx, files[i]);
    test = file_index(&idx, "grpc/testing/test.proto");
    ck_assert_uint_eq(idx.files[test].n_deps, 2);
    ck_assert_str_eq(idx.files[idx.files[test].deps[0]].name, "grpc/testing/empty.proto");
    ck_assert_str_eq(idx.files[idx.files[test].deps[1]].name, messages);

    assert_symbol(&idx, "grpc.health.v1.Health", health, REFL_SERVICE);
    assert_symbol(&idx, ".grpc.health.v1.Health", health, REFL_SERVICE);
    assert_symbol(&idx, "grpc.health.v1.Health.Check", health, REFL_METHOD);
    assert_symbol(&idx, "grpc.health.v1.HealthCheckRequest", health, REFL_MESSAGE);
    assert_symbol(&idx, "grpc.health.v1.HealthCheckRequest.service", health, REFL_FIELD);
    assert_symbol(&idx, "grpc.health.v1.HealthCheckResponse.ServingStatus", health, REFL_ENUM);
    assert_symbol(&idx, "grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING", health,
                  REFL_ENUM_VALUE);
    assert_symbol(&idx, "grpc.health.v1.HealthCheckResponse.SERVING", health, REFL_ENUM_VALUE);
    assert_symbol(&idx, "grpc.reflection.v1.ServerReflectionRequest.message_request",
                  "grpc/reflection/v1/reflection.proto", REFL_ONEOF);
    assert_symbol(&idx, "grpc.testing.TestService.FullDuplexCall", "grpc/testing/test.proto",
                  REFL_METHOD);
    assert_symbol(&idx, "galaxy.pool.v1.Node", "galaxy/pool/v1/pool.proto", REFL_MESSAGE);
    /* a map field's entry is a nested message */
    assert_symbol(&idx, "galaxy.pool.v1.Node.LabelsEntry", "galaxy/pool/v1/pool.proto",
                  REFL_MESSAGE);
    ck_assert_ptr_null(refl_index_symbol(&idx, "grpc.health.v1"));
    ck_assert_ptr_null(refl_index_symbol(&idx, "grpc.health.v1.Health."));
    ck_assert_ptr_null(refl_index_symbol(&idx, "..grpc.health.v1.Health"));
    ck_assert_ptr_null(refl_index_symbol(&idx, ""));
    ck_assert_ptr_null(refl_index_symbol(&idx, "."));
    for (size_t i = 1; i < idx.n_syms; i++)
        ck_assert_int_lt(strcmp(idx.syms[i - 1].name, idx.syms[i].name), 0);
    refl_index_deinit(&idx);
    ck_assert_uint_eq(idx.n_files, 0);
}
END_TEST

/* The names of the files a response for @p root carries. */
static void
assert_collect(const refl_index_t *idx, uint8_t *sent, const char *root, const char *const *want)
{
    size_t order[16], n, i;

    ck_assert_uint_le(idx->n_files, 16);
    n = refl_index_collect(idx, file_index(idx, root), sent, order);
    for (i = 0; want[i] != NULL; i++) {
        ck_assert_uint_lt(i, n);
        ck_assert_str_eq(idx->files[order[i]].name, want[i]);
    }
    ck_assert_uint_eq(n, i);
}

START_TEST(test_collect_per_stream)
{
    static const char *const test = "grpc/testing/test.proto";
    static const char *const empty = "grpc/testing/empty.proto";
    static const char *const messages = "grpc/testing/messages.proto";
    refl_index_t idx;
    uint8_t sent[16];
    char err[ERRLEN];

    ck_assert_int_eq(
        refl_index_init(&idx, gx__descriptor_set, gx__descriptor_set_len, err, sizeof(err)), 0);
    memset(sent, 0, sizeof(sent));
    assert_collect(&idx, sent, test, (const char *const[]){test, empty, messages, NULL});
    assert_collect(&idx, sent, messages, (const char *const[]){messages, NULL});
    assert_collect(&idx, sent, test, (const char *const[]){test, NULL});

    memset(sent, 0, sizeof(sent));
    assert_collect(&idx, sent, empty, (const char *const[]){empty, NULL});
    assert_collect(&idx, sent, test, (const char *const[]){test, messages, NULL});
    refl_index_deinit(&idx);
}
END_TEST

/* ------------------------------------------------------------------ hand-made sets */

START_TEST(test_small_sets)
{
    wbuf_t a, b, set;
    refl_index_t idx;
    char err[ERRLEN];

    /* empty: no files, no symbols */
    memset(&set, 0, sizeof(set));
    ck_assert_int_eq(index_of(&idx, &set, err), 0);
    ck_assert_uint_eq(idx.n_files, 0);
    ck_assert_ptr_null(refl_index_symbol(&idx, "a.M"));
    refl_index_deinit(&idx);

    /* no package: names start at the top */
    file_proto(&a, "a.proto", NULL, NULL, (const char *const[]){"M", NULL});
    memset(&set, 0, sizeof(set));
    put_msg(&set, 1, &a);
    ck_assert_int_eq(index_of(&idx, &set, err), 0);
    assert_symbol(&idx, "M", "a.proto", REFL_MESSAGE);
    assert_symbol(&idx, ".M.f", "a.proto", REFL_FIELD);
    refl_index_deinit(&idx);

    /* a name defined by two files: the first file keeps it */
    file_proto(&a, "a.proto", "p", NULL, (const char *const[]){"M", "N", NULL});
    file_proto(&b, "b.proto", "p", (const char *const[]){"a.proto", NULL},
               (const char *const[]){"M", NULL});
    memset(&set, 0, sizeof(set));
    put_msg(&set, 1, &b);
    put_msg(&set, 1, &a);
    ck_assert_int_eq(index_of(&idx, &set, err), 0);
    assert_symbol(&idx, "p.M", "b.proto", REFL_MESSAGE);
    assert_symbol(&idx, "p.N", "a.proto", REFL_MESSAGE);
    ck_assert_uint_eq(idx.n_syms, 4); /* p.M, p.M.f, p.N, p.N.f */
    refl_index_deinit(&idx);
}
END_TEST

START_TEST(test_broken_sets)
{
    wbuf_t a, b, set, m, inner;
    refl_index_t idx;
    char err[ERRLEN];

    /* the same file twice */
    file_proto(&a, "a.proto", "p", NULL, NULL);
    memset(&set, 0, sizeof(set));
    put_msg(&set, 1, &a);
    put_msg(&set, 1, &a);
    ck_assert_int_eq(index_of(&idx, &set, err), GX_EPROTO);
    ck_assert_ptr_nonnull(strstr(err, "already"));
    ck_assert_uint_eq(idx.n_files, 0);

    /* an import that is not in the set */
    file_proto(&b, "b.proto", "p", (const char *const[]){"missing.proto", NULL}, NULL);
    memset(&set, 0, sizeof(set));
    put_msg(&set, 1, &b);
    ck_assert_int_eq(index_of(&idx, &set, err), GX_EPROTO);
    ck_assert_ptr_nonnull(strstr(err, "missing.proto"));

    /* a file without a name */
    memset(&a, 0, sizeof(a));
    put_str(&a, 2, "p");
    memset(&set, 0, sizeof(set));
    put_msg(&set, 1, &a);
    ck_assert_int_eq(index_of(&idx, &set, err), GX_EPROTO);

    /* a message without a name */
    memset(&m, 0, sizeof(m));
    put_str(&m, 5, "x");
    file_proto(&a, "a.proto", "p", NULL, NULL);
    put_msg(&a, 4, &m);
    memset(&set, 0, sizeof(set));
    put_msg(&set, 1, &a);
    ck_assert_int_eq(index_of(&idx, &set, err), GX_EPROTO);

    /* a nested message that is cut short */
    message_proto(&m, "M");
    put_varint(&m, 3 << 3 | PB_LEN);
    put_varint(&m, 50);
    put_str(&m, 1, "N");
    file_proto(&a, "a.proto", "p", NULL, NULL);
    put_msg(&a, 4, &m);
    memset(&set, 0, sizeof(set));
    put_msg(&set, 1, &a);
    ck_assert_int_eq(index_of(&idx, &set, err), GX_EPROTO);

    /* messages nested deeper than REFL_MAX_DEPTH */
    message_proto(&inner, "N");
    for (int depth = 0; depth <= REFL_MAX_DEPTH + 1; depth++) {
        message_proto(&m, "N");
        put_msg(&m, 3, &inner);
        inner = m;
    }
    file_proto(&a, "a.proto", "p", NULL, NULL);
    put_msg(&a, 4, &m);
    memset(&set, 0, sizeof(set));
    put_msg(&set, 1, &a);
    ck_assert_int_eq(index_of(&idx, &set, err), GX_EPROTO);
    ck_assert_uint_eq(idx.n_syms, 0);
}
END_TEST

/* Every prefix of the embedded set indexes or fails cleanly (ASan checks the rest). */
START_TEST(test_every_cut)
{
    refl_index_t idx;
    char err[ERRLEN];
    size_t ok = 0;
    int rc;

    for (size_t len = 0; len < gx__descriptor_set_len; len++) {
        rc = refl_index_init(&idx, gx__descriptor_set, len, err, sizeof(err));
        ck_assert_msg(rc == 0 || rc == GX_EPROTO, "cut at %zu: %d", len, rc);
        ok += rc == 0;
        refl_index_deinit(&idx);
    }
    /* cuts between two files that need no later file are whole sets */
    ck_assert_uint_gt(ok, 1);
}
END_TEST

START_TEST(test_random_corruption)
{
    size_t len = gx__descriptor_set_len;
    uint8_t *copy = malloc(len);
    unsigned seed = 12345;
    refl_index_t idx;
    char err[ERRLEN];
    int rc;

    ck_assert_ptr_nonnull(copy);
    for (int round = 0; round < 2000; round++) {
        memcpy(copy, gx__descriptor_set, len);
        for (int k = 0; k < 1 + round % 4; k++) {
            seed = seed * 1103515245u + 12345u;
            copy[(seed >> 8) % len] = (uint8_t)(seed >> 24);
        }
        rc = refl_index_init(&idx, copy, len, err, sizeof(err));
        ck_assert_msg(rc == 0 || rc == GX_EPROTO, "round %d: %d", round, rc);
        refl_index_deinit(&idx);
    }
    free(copy);
}
END_TEST

START_TEST(test_index_enomem)
{
    refl_index_t idx;
    char err[ERRLEN];
    long n;
    int rc;

    for (n = 0; n < 100000; n++) {
        alloc_countdown = n;
        rc = refl_index_init(&idx, gx__descriptor_set, gx__descriptor_set_len, err, sizeof(err));
        alloc_countdown = -1;
        if (rc == 0)
            break;
        ck_assert_int_eq(rc, GX_ENOMEM);
        ck_assert_uint_eq(idx.n_files, 0);
        ck_assert_uint_eq(idx.n_syms, 0);
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_int_gt(n, 10);
    refl_index_deinit(&idx);
}
END_TEST

/* ------------------------------------------------------------------ v1 and v1alpha */

START_TEST(test_same_wire)
{
    ck_assert(refl_same_wire(&grpc__reflection__v1__server_reflection_request__descriptor,
                             &grpc__reflection__v1alpha__server_reflection_request__descriptor, 0));
    ck_assert(refl_same_wire(&grpc__reflection__v1__server_reflection_response__descriptor,
                             &grpc__reflection__v1alpha__server_reflection_response__descriptor,
                             0));
    ck_assert(!refl_same_wire(&grpc__reflection__v1__server_reflection_request__descriptor,
                              &grpc__reflection__v1__server_reflection_response__descriptor, 0));
    ck_assert(!refl_same_wire(&grpc__reflection__v1__service_response__descriptor,
                              &grpc__health__v1__health_check_request__descriptor, 0));
    ck_assert(!refl_same_wire(&grpc__reflection__v1__error_response__descriptor,
                              &grpc__reflection__v1alpha__extension_request__descriptor, 0));
}
END_TEST

static Suite *
reflection_suite(void)
{
    Suite *s = suite_create("gx_svc_reflection");
    TCase *tc;

    tc = tcase_create("wire");
    tcase_add_test(tc, test_wire_reader);
    suite_add_tcase(s, tc);

    tc = tcase_create("index");
    tcase_add_test(tc, test_embedded_set);
    tcase_add_test(tc, test_collect_per_stream);
    tcase_add_test(tc, test_small_sets);
    tcase_add_test(tc, test_broken_sets);
    suite_add_tcase(s, tc);

    tc = tcase_create("hostile");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_every_cut);
    tcase_add_test(tc, test_random_corruption);
    tcase_add_test(tc, test_index_enomem);
    suite_add_tcase(s, tc);

    tc = tcase_create("versions");
    tcase_add_test(tc, test_same_wire);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(reflection_suite());
    int failures;

    /* Fork mode (Check's default) unless CK_FORK=no, e.g. under valgrind or gdb. */
    srunner_run_all(sr, CK_NORMAL);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures != 0;
}
