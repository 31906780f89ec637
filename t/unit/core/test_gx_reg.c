/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the registry's pure parts (src/core/gx_reg.c): the name,
 * id, specialization and token validators at their bounds, the liveness
 * state machine (HEALTHY → SUSPECT → DOWN → removed, DRAINING while alive),
 * page tokens (round trip, and every kind of token we never made), the
 * constant-time token compare, the sorted-index search used for paging, and
 * the Watch feed's ring (publication, window, resumes, byte bound).
 */
#include "config.h"

#include "core/gx_reg.c"

#include <check.h>

typedef Galaxy__Pool__V1__NodeState st_t;
#define HEALTHY GALAXY__POOL__V1__NODE_STATE__NODE_STATE_HEALTHY
#define SUSPECT GALAXY__POOL__V1__NODE_STATE__NODE_STATE_SUSPECT
#define DOWN GALAXY__POOL__V1__NODE_STATE__NODE_STATE_DOWN
#define DRAINING GALAXY__POOL__V1__NODE_STATE__NODE_STATE_DRAINING

static char *
repeat(char c, size_t n)
{
    static char buf[512];

    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

START_TEST(pool_names)
{
    ck_assert(gx_reg_valid_pool_name("devnet"));
    ck_assert(gx_reg_valid_pool_name("0-a"));
    ck_assert(gx_reg_valid_pool_name(repeat('a', 63)));
    ck_assert(!gx_reg_valid_pool_name(repeat('a', 64)));
    ck_assert(!gx_reg_valid_pool_name(""));
    ck_assert(!gx_reg_valid_pool_name("-dev"));
    ck_assert(!gx_reg_valid_pool_name("Dev"));
    ck_assert(!gx_reg_valid_pool_name("dev_net"));
    ck_assert(!gx_reg_valid_pool_name("dev net"));
}
END_TEST

START_TEST(node_ids)
{
    ck_assert(gx_reg_valid_node_id("A.b_c:d-9"));
    ck_assert(gx_reg_valid_node_id(repeat('x', 128)));
    ck_assert(!gx_reg_valid_node_id(repeat('x', 129)));
    ck_assert(!gx_reg_valid_node_id(""));
    ck_assert(!gx_reg_valid_node_id("a/b"));
    ck_assert(!gx_reg_valid_node_id("a b"));
    ck_assert(!gx_reg_valid_node_id("\xc3\xa9"));
}
END_TEST

START_TEST(specs_and_tokens)
{
    ck_assert(gx_reg_valid_spec("developer"));
    ck_assert(gx_reg_valid_spec(repeat('a', 32)));
    ck_assert(!gx_reg_valid_spec(repeat('a', 33)));
    ck_assert(!gx_reg_valid_spec(""));
    ck_assert(!gx_reg_valid_spec("Dev"));
    ck_assert(gx_reg_valid_token("abc", 3));
    ck_assert(!gx_reg_valid_token("abcd", 3));
    ck_assert(!gx_reg_valid_token("a b", 3));
    ck_assert(!gx_reg_valid_token("", 3));
    ck_assert(!gx_reg_valid_token("a\x7f", 3));
}
END_TEST

START_TEST(liveness_machine)
{
    int rm;

    ck_assert_int_eq(gx_reg_liveness(0, 300, 0, 10, &rm), HEALTHY);
    ck_assert_int_eq(rm, 0);
    ck_assert_int_eq(gx_reg_liveness(299, 300, 0, 10, &rm), HEALTHY);
    ck_assert_int_eq(gx_reg_liveness(299, 300, 1, 10, &rm), DRAINING);
    ck_assert_int_eq(gx_reg_liveness(300, 300, 0, 10, &rm), SUSPECT);
    ck_assert_int_eq(gx_reg_liveness(300, 300, 1, 10, &rm), SUSPECT);
    ck_assert_int_eq(gx_reg_liveness(599, 300, 0, 10, &rm), SUSPECT);
    ck_assert_int_eq(gx_reg_liveness(600, 300, 0, 10, &rm), DOWN);
    ck_assert_int_eq(rm, 0);
    ck_assert_int_eq(gx_reg_liveness(3599, 300, 0, 10, &rm), DOWN);
    ck_assert_int_eq(rm, 0);
    ck_assert_int_eq(gx_reg_liveness(3600, 300, 0, 10, &rm), DOWN);
    ck_assert_int_eq(rm, 1);
    ck_assert_int_eq(gx_reg_liveness(UINT64_MAX / 2, UINT32_MAX, 0, UINT32_MAX, &rm), DOWN);
}
END_TEST

START_TEST(page_tokens)
{
    static const char *const ids[] = {"a", "ab", "abc", "abcd", "n-0001", "A.b_c:d-9"};
    char tok[256], id[GX_REG_NODE_ID_MAX + 1];

    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        ck_assert_uint_gt(gx_reg_page_token_encode(ids[i], tok, sizeof(tok)), 0);
        ck_assert_int_eq(gx_reg_page_token_decode(tok, id, sizeof(id)), 0);
        ck_assert_str_eq(id, ids[i]);
    }
    ck_assert_uint_gt(gx_reg_page_token_encode(repeat('z', 128), tok, sizeof(tok)), 0);
    ck_assert_int_eq(gx_reg_page_token_decode(tok, id, sizeof(id)), 0);
    ck_assert_uint_eq(gx_reg_page_token_encode("abc", tok, 4), 0); /* no room */
    ck_assert_int_eq(gx_reg_page_token_decode("", id, sizeof(id)), GX_EINVAL);
    ck_assert_int_eq(gx_reg_page_token_decode("%%%%", id, sizeof(id)), GX_EINVAL);
    ck_assert_int_eq(gx_reg_page_token_decode("YWJjZ", id, sizeof(id)), GX_EINVAL);
    ck_assert_int_eq(gx_reg_page_token_decode("YSBi", id, sizeof(id)), GX_EINVAL); /* "a b" */
    gx_reg_page_token_encode(repeat('z', 128), tok, sizeof(tok));
    ck_assert_int_eq(gx_reg_page_token_decode(tok, id, 64), GX_EINVAL); /* too long */
}
END_TEST

START_TEST(token_compare)
{
    char tok[TOKEN_HEX + 1], tok2[TOKEN_HEX + 1];

    ck_assert(gx_reg_token_equal("abc", "abc"));
    ck_assert(!gx_reg_token_equal("abc", "abd"));
    ck_assert(!gx_reg_token_equal("abc", "abcd"));
    ck_assert(!gx_reg_token_equal("", "abc"));
    ck_assert(!gx_reg_token_equal("abc", ""));
    ck_assert(gx_reg_token_equal("", ""));
    random_token(tok);
    random_token(tok2);
    ck_assert_uint_eq(strlen(tok), 48);
    ck_assert_str_ne(tok, tok2);
}
END_TEST

static void
ring_put(gx_reg_pool_t *p, uint64_t from, uint64_t to)
{
    for (uint64_t rev = from; rev <= to; rev++)
        feed_put(p, rev, 0, NULL, NULL);
}

static int
ring_has(const gx_reg_feed_t *f, uint64_t rev)
{
    gx_reg_event_t ev;
    int rv;

    rcu_read_lock();
    rv = gx_reg_feed_get(f, rev, &ev) == 0 && ev.revision == rev && ev.node == NULL;
    rcu_read_unlock();
    return rv;
}

START_TEST(watch_ring)
{
    gx_reg_pool_t p = {.name = (char *)"t"};

    rcu_register_thread();
    p.feed = feed_new(4, 1 << 20);
    ck_assert_ptr_nonnull(p.feed);
    ck_assert(!gx_reg_feed_covers(p.feed, 0));
    ring_put(&p, 1, 3);
    ck_assert_uint_eq(gx_reg_feed_head(p.feed), 0); /* written, not yet published */
    ck_assert(!gx_reg_feed_covers(p.feed, 1));
    feed_publish(&p);
    ck_assert_uint_eq(gx_reg_feed_head(p.feed), 3);
    ck_assert(gx_reg_feed_covers(p.feed, 1) && gx_reg_feed_covers(p.feed, 3));
    ck_assert(!gx_reg_feed_covers(p.feed, 4)); /* the future */
    ck_assert(ring_has(p.feed, 1) && ring_has(p.feed, 3) && !ring_has(p.feed, 4));
    /* the ring wraps: 3..6 are held, a watcher at 2 can go on, one at 1 cannot */
    ring_put(&p, 4, 6);
    feed_publish(&p);
    ck_assert(!ring_has(p.feed, 2) && ring_has(p.feed, 3) && ring_has(p.feed, 6));
    ck_assert(gx_reg_feed_covers(p.feed, 2) && !gx_reg_feed_covers(p.feed, 1));
    gx_reg_feed_release(p.feed);

    /* after a restart the history starts at the recovered revision */
    p.feed = feed_new(4, 1 << 20);
    feed_start(p.feed, 10);
    ck_assert(!gx_reg_feed_covers(p.feed, 10) && !gx_reg_feed_covers(p.feed, 9));
    ring_put(&p, 11, 11);
    feed_publish(&p);
    ck_assert(gx_reg_feed_covers(p.feed, 11));
    ck_assert(!gx_reg_feed_covers(p.feed, 10)); /* a pre-restart 10 may not be ours */
    gx_reg_feed_release(p.feed);

    /* the byte bound pushes old changes out before the count does */
    p.feed = feed_new(100, 2 * sizeof(fev_t));
    ring_put(&p, 1, 5);
    feed_publish(&p);
    ck_assert_uint_le(gx_reg_feed_bytes(p.feed), 2 * sizeof(fev_t));
    ck_assert(!ring_has(p.feed, 3) && ring_has(p.feed, 4) && ring_has(p.feed, 5));
    ck_assert(gx_reg_feed_covers(p.feed, 3) && !gx_reg_feed_covers(p.feed, 2));
    /* a watcher's reference keeps the feed after the pool dropped its own */
    gx_reg_feed_t *f = p.feed;
    uatomic_inc(&f->refs);
    gx_reg_feed_release(f);
    ck_assert(ring_has(f, 5));
    gx_reg_feed_release(f);
    rcu_barrier();
    rcu_unregister_thread();
}
END_TEST

START_TEST(sorted_search)
{
    gx_reg_node_t n[4];
    gx_reg_node_t *v[4] = {&n[0], &n[1], &n[2], &n[3]};
    static const char *const ids[] = {"a", "b", "d", "e"};

    for (size_t i = 0; i < 4; i++)
        n[i].id = ids[i];
    ck_assert_uint_eq(lower_bound(v, 4, ""), 0);
    ck_assert_uint_eq(lower_bound(v, 4, "a"), 1);
    ck_assert_uint_eq(lower_bound(v, 4, "c"), 2);
    ck_assert_uint_eq(lower_bound(v, 4, "d"), 3);
    ck_assert_uint_eq(lower_bound(v, 4, "z"), 4);
    ck_assert_uint_eq(lower_bound(v, 0, "a"), 0);
}
END_TEST

static Suite *
reg_suite(void)
{
    Suite *s = suite_create("gx_reg");
    TCase *tc = tcase_create("pure");

    tcase_add_test(tc, pool_names);
    tcase_add_test(tc, node_ids);
    tcase_add_test(tc, specs_and_tokens);
    tcase_add_test(tc, liveness_machine);
    tcase_add_test(tc, page_tokens);
    tcase_add_test(tc, token_compare);
    tcase_add_test(tc, sorted_search);
    tcase_add_test(tc, watch_ring);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(reg_suite());
    int failures;

    srunner_run_all(sr, CK_NORMAL);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures == 0 ? 0 : 1;
}
