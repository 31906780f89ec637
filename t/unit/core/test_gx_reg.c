/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the registry's pure parts (src/core/gx_reg.c): the name,
 * id, specialization and token validators at their bounds, the liveness
 * state machine (HEALTHY → SUSPECT → DOWN → removed, DRAINING while alive),
 * page tokens (round trip, and every kind of token we never made), the
 * constant-time token compare, the sorted-index search used for paging, the
 * Watch feed's ring (publication, window, resumes, byte bound), and the
 * per-specialization indexes (upkeep through adds, re-registers and removals,
 * publication, directory, rebuild after out of memory), and the chunked
 * sorted index under them (random inserts and removals, what a publication
 * copies, cursors, positions).
 */
#include "config.h"

#include "core/gx_reg.c"

#include <check.h>

#include "grpc/reflection/v1/reflection.pb-c.h"

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

/* every byte value at every place of a 43-byte token (eight at a time, then the tail) */
START_TEST(token_bytes)
{
    char s[44];

    for (size_t at = 0; at < 43; at++) {
        for (int b = 1; b < 256; b++) {
            memset(s, 'k', 43);
            s[43] = '\0';
            s[at] = (char)b;
            ck_assert_int_eq(gx_reg_valid_token(s, 43), b > ' ' && b < 0x7f);
        }
    }
    /* a borrow from a low byte must not hide a bad byte above it, nor invent one */
    ck_assert(!gx_reg_valid_token("\x20\x7f!!!!!!!!", 20));
    ck_assert(!gx_reg_valid_token("!\x80\x21!!!!!!!!", 20));
    ck_assert(gx_reg_valid_token("!~!~!~!~!~!~!~!~", 20));
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

/* ---------------------------------------------------------------- specialization indexes */

#define SPEC_NODES 6

typedef struct {
    gx_reg_t reg; /* only its label table: the nodes have no labels */
    gx_reg_pool_t p;
    gx_reg_node_t n[SPEC_NODES];
    ninfo_t info[SPEC_NODES];
    gx_pb_node_t pb[SPEC_NODES];
    char *specs[SPEC_NODES][3];
    char ids[SPEC_NODES][8];
} spec_fx_t;

/* node @p i with the specializations in @p specs (comma-separated), not yet in any index */
static void
fx_specs(spec_fx_t *fx, size_t i, const char *specs)
{
    static char store[SPEC_NODES][3][GX_REG_SPEC_MAX + 1];
    gx_pb_node_t *pb = &fx->pb[i];
    char buf[128], *save = NULL;

    galaxy__pool__v1__node__init(pb);
    pb->n_specializations = 0;
    pb->specializations = fx->specs[i];
    snprintf(buf, sizeof(buf), "%s", specs);
    for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        snprintf(store[i][pb->n_specializations], GX_REG_SPEC_MAX + 1, "%s", t);
        fx->specs[i][pb->n_specializations] = store[i][pb->n_specializations];
        pb->n_specializations++;
    }
}

static spec_fx_t *
fx_new(void)
{
    spec_fx_t *fx = calloc(1, sizeof(*fx));

    fx->p.name = (char *)"t";
    fx->p.reg = &fx->reg;
    fx->p.unwell.cow = 1; /* as pool_new() makes it */
    fx->reg.labels = cds_lfht_new(16, 16, 0, 0, NULL);
    ck_assert_ptr_nonnull(fx->reg.labels);
    for (size_t i = 0; i < SPEC_NODES; i++) {
        snprintf(fx->ids[i], sizeof(fx->ids[i]), "n%zu", i);
        fx->n[i].id = fx->ids[i];
        fx->n[i].pool = &fx->p;
        fx->n[i].live = 1;
        fx->info[i].pb = &fx->pb[i];
        fx->n[i].info = &fx->info[i];
    }
    return fx;
}

/* what node_insert and node_remove do to the indexes */
static void
fx_add(spec_fx_t *fx, size_t i, const char *specs)
{
    fx_specs(fx, i, specs);
    ck_assert_int_eq(windex_insert(&fx->p.ix, &fx->n[i]), 0);
    node_index_add(&fx->p, &fx->n[i], &fx->pb[i], NULL);
}

static void
fx_del(spec_fx_t *fx, size_t i)
{
    windex_remove(&fx->p.ix, &fx->n[i]);
    node_index_del(&fx->p, &fx->n[i], &fx->pb[i], NULL);
}

/* the ids listed for @p spec after @p after, joined by spaces */
static const char *
fx_list(const spec_fx_t *fx, const char *spec, const char *after)
{
    static char out[256];
    gx_reg_node_t *const *v;
    gx_reg_cursor_t c;
    size_t n;

    out[0] = '\0';
    rcu_read_lock();
    gx_reg_pool_cursor(&fx->p, spec, after, &c);
    while (gx_reg_cursor_next(&c, &v, &n))
        for (size_t i = 0; i < n; i++) {
            if (out[0])
                strcat(out, " ");
            strcat(out, v[i]->id);
        }
    rcu_read_unlock();
    return out;
}

static void
fx_free(spec_fx_t *fx)
{
    for (size_t i = 0; i < fx->p.sn; i++)
        sidx_free(fx->p.sv[i]);
    while (fx->p.sdead != NULL) {
        sidx_t *s = fx->p.sdead;
        fx->p.sdead = s->next;
        sidx_free(s);
    }
    free(fx->p.sv);
    free(fx->p.sdir);
    windex_free(&fx->p.ix);
    windex_free(&fx->p.unwell);
    ck_assert_int_eq(cds_lfht_destroy(fx->reg.labels, NULL), 0);
    free(fx);
}

START_TEST(spec_index)
{
    spec_fx_t *fx = fx_new();

    rcu_register_thread();
    ck_assert_str_eq(fx_list(fx, "gpu", NULL), ""); /* nothing published yet */
    fx_add(fx, 3, "gpu,cpu");
    fx_add(fx, 1, "cpu");
    fx_add(fx, 5, "gpu");
    fx_add(fx, 0, "ssd");
    ck_assert_str_eq(fx_list(fx, "gpu", NULL), ""); /* written, not yet published */
    ck_assert_int_eq(specs_publish(&fx->p), 0);
    ck_assert_int_eq(windex_publish(&fx->p.ix), 0);
    ck_assert_uint_eq(fx->p.sn, 3);
    ck_assert_ptr_null(fx->p.squeue);
    ck_assert_str_eq(fx_list(fx, "gpu", NULL), "n3 n5");
    ck_assert_str_eq(fx_list(fx, "gpu", "n3"), "n5"); /* paging: after the token's id */
    ck_assert_str_eq(fx_list(fx, "gpu", "n4"), "n5");
    ck_assert_str_eq(fx_list(fx, "gpu", "n5"), "");
    ck_assert_str_eq(fx_list(fx, "cpu", NULL), "n1 n3");
    ck_assert_str_eq(fx_list(fx, "tpu", NULL), ""); /* unknown: nothing, not the pool */
    ck_assert_str_eq(fx_list(fx, "", NULL), "n0 n1 n3 n5");
    ck_assert_str_eq(fx_list(fx, NULL, "n1"), "n3 n5");

    /* a re-register moves n3 from gpu,cpu to cpu,ssd: out of gpu, into ssd */
    {
        gx_pb_node_t before = fx->pb[3];
        char *old[2] = {(char *)"gpu", (char *)"cpu"};
        before.specializations = old;
        fx_specs(fx, 3, "cpu,ssd");
        ck_assert(!same_specs(&before, &fx->pb[3]));
        node_index_del(&fx->p, &fx->n[3], &before, &fx->pb[3]);
        node_index_add(&fx->p, &fx->n[3], &fx->pb[3], &before);
    }
    ck_assert_str_eq(fx_list(fx, "gpu", NULL), "n3 n5"); /* readers: the last published */
    ck_assert_int_eq(specs_publish(&fx->p), 0);
    ck_assert_str_eq(fx_list(fx, "gpu", NULL), "n5");
    ck_assert_str_eq(fx_list(fx, "cpu", NULL), "n1 n3");
    ck_assert_str_eq(fx_list(fx, "ssd", NULL), "n0 n3");

    /* removals; an index left empty leaves the directory */
    fx_del(fx, 5);
    ck_assert_int_eq(specs_publish(&fx->p), 0);
    ck_assert_str_eq(fx_list(fx, "gpu", NULL), "");
    ck_assert_uint_eq(fx->p.sn, 2);
    ck_assert_ptr_null(fx->p.sdead); /* handed to call_rcu with the new directory */
    ck_assert_uint_eq(rcu_dereference(fx->p.sdir)->n, 2);
    /* and comes back when a node has it again */
    fx_add(fx, 4, "gpu");
    ck_assert_int_eq(specs_publish(&fx->p), 0);
    ck_assert_str_eq(fx_list(fx, "gpu", NULL), "n4");

    /* out of memory: stale, readers get the whole pool, then the rebuild puts it right */
    uatomic_set(&fx->p.spec_stale, 1);
    fx_add(fx, 2, "gpu"); /* not indexed while stale */
    ck_assert_int_eq(windex_publish(&fx->p.ix), 0);
    ck_assert_str_eq(fx_list(fx, "gpu", NULL), "n0 n1 n2 n3 n4");
    ck_assert_int_eq(specs_publish(&fx->p), 0);
    ck_assert_uint_eq(uatomic_read(&fx->p.spec_stale), 0);
    ck_assert_str_eq(fx_list(fx, "gpu", NULL), "n2 n4");
    ck_assert_str_eq(fx_list(fx, "cpu", "n1"), "n3");
    ck_assert_str_eq(fx_list(fx, "ssd", NULL), "n0 n3");
    rcu_barrier();
    fx_free(fx);
    rcu_unregister_thread();
}
END_TEST

START_TEST(spec_index_twice)
{
    spec_fx_t *fx = fx_new();

    /* a specialization listed twice is one entry, removed once */
    fx_add(fx, 1, "gpu,gpu");
    ck_assert_uint_eq(fx->p.sn, 1);
    ck_assert_uint_eq(fx->p.sv[0]->ix.total, 1);
    fx_del(fx, 1);
    ck_assert_uint_eq(fx->p.sv[0]->ix.total, 0);
    fx_free(fx);
}
END_TEST

/* the keeper's nodes of @p x are @p want[0..n), in order, and so are the published ones */
static void
windex_check(windex_t *x, gx_reg_node_t *const *want, size_t n)
{
    gx_reg_node_t *nd, *const *v;
    gx_reg_cursor_t c;
    size_t i = 0, m;

    for (wit_t it = {x}; (nd = wit_next(&it)) != NULL; i++)
        ck_assert_ptr_eq(nd, want[i]);
    ck_assert_uint_eq(i, n);
    ck_assert_uint_eq(x->total, n);
    ck_assert_int_eq(windex_publish(x), 0);
    rcu_read_lock();
    ck_assert_uint_eq(windex_cursor(x, NULL, &c), n);
    for (i = 0; gx_reg_cursor_next(&c, &v, &m);)
        for (size_t k = 0; k < m; k++, i++)
            ck_assert_ptr_eq(v[k], want[i]);
    ck_assert_uint_eq(i, n);
    for (i = 0; i < n; i += 7)
        ck_assert_ptr_eq(gx_reg_cursor_nth(&c, i), want[i]);
    ck_assert_ptr_null(gx_reg_cursor_nth(&c, n));
    rcu_read_unlock();
}

/* what readers see of @p x: @p total nodes, in strictly increasing id order */
static void
windex_published_ok(const windex_t *x, size_t total)
{
    gx_reg_node_t *const *v;
    gx_reg_cursor_t c;
    const char *last = "";
    size_t m, seen = 0;

    rcu_read_lock();
    ck_assert_uint_eq(windex_cursor(x, NULL, &c), total);
    while (gx_reg_cursor_next(&c, &v, &m))
        for (size_t k = 0; k < m; k++, seen++) {
            ck_assert_int_lt(strcmp(last, v[k]->id), 0);
            last = v[k]->id;
        }
    ck_assert_uint_eq(seen, total);
    rcu_read_unlock();
}

/*
 * pb_deep_copy: the copy packs to the same bytes as the original, fills
 * exactly pb_deep_size() bytes, and keeps nothing of the original (which is
 * unpacked into the heap, freed and its memory reused before the check).
 * A Node as Register stores it (ninfo_copy), with repeated strings, a map,
 * a submessage and unknown fields; a Job (bytes); reflection requests (a
 * oneof: only the member that is set may be followed).
 */
static void
deep_copy_check(const ProtobufCMessageDescriptor *d, const ProtobufCMessage *orig)
{
    size_t len = protobuf_c_message_get_packed_size(orig), size;
    uint8_t *want = malloc(len + 1), *got = malloc(len + 1), *block;
    ProtobufCMessage *heap, *copy;
    carve_t c;

    protobuf_c_message_pack(orig, want);
    heap = protobuf_c_message_unpack(d, NULL, len, want);
    ck_assert_ptr_nonnull(heap);
    size = pb_deep_size(heap);
    block = malloc(size);
    c = (carve_t){block, block + size};
    copy = pb_deep_copy(heap, &c);
    ck_assert_ptr_eq(c.p, block + size); /* exactly what was counted */
    protobuf_c_message_free_unpacked(heap, NULL);
    for (int i = 0; i < 64; i++) /* reuse the freed memory */
        free(memset(malloc(16 + i * 24), 0xa5, 16 + i * 24));
    ck_assert_uint_eq(protobuf_c_message_get_packed_size(copy), len);
    protobuf_c_message_pack(copy, got);
    ck_assert_mem_eq(got, want, len);
    free(block);
    free(want);
    free(got);
}

START_TEST(deep_copy)
{
    Galaxy__Pool__V1__Resources cap = GALAXY__POOL__V1__RESOURCES__INIT;
    Galaxy__Pool__V1__Node node = GALAXY__POOL__V1__NODE__INIT;
    Galaxy__Pool__V1__Node__LabelsEntry e1 = GALAXY__POOL__V1__NODE__LABELS_ENTRY__INIT;
    Galaxy__Pool__V1__Node__LabelsEntry e2 = GALAXY__POOL__V1__NODE__LABELS_ENTRY__INIT;
    Galaxy__Pool__V1__Node__LabelsEntry *labels[] = {&e1, &e2};
    char *specs[] = {"gpu", "cpu-avx512", ""};
    uint8_t unk_data[] = {0x02, 0xab, 0xcd}; /* as protobuf-c keeps it: length, then bytes */
    ProtobufCMessageUnknownField unk = {.tag = 99, .wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED,
                                        .len = sizeof(unk_data), .data = unk_data};
    Galaxy__Pool__V1__Job job = GALAXY__POOL__V1__JOB__INIT;
    uint8_t payload[300];
    Grpc__Reflection__V1__ServerReflectionRequest rq =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    ninfo_t *ni;
    size_t len;
    uint8_t *a, *b;

    cap.cpu_millis = 4000;
    e1.key = "zone";
    e1.value = "eu-west-1";
    e2.key = "tier";
    e2.value = "";
    node.id = "n1";
    node.pool = "mainnet";
    node.n_specializations = 3;
    node.specializations = specs;
    node.n_labels = 2;
    node.labels = labels;
    node.address = "10.0.0.1:7000";
    node.capacity = &cap;
    node.load = 0.25;
    node.registered_unix_ms = 1234567;
    node.base.n_unknown_fields = 1;
    node.base.unknown_fields = &unk;
    deep_copy_check(&galaxy__pool__v1__node__descriptor, &node.base);
    node.capacity = NULL;
    node.n_labels = 0;
    node.base.n_unknown_fields = 0;
    deep_copy_check(&galaxy__pool__v1__node__descriptor, &node.base);

    /* what Register stores is what the record parses to */
    node.capacity = &cap;
    node.n_labels = 2;
    ni = ninfo_copy(&node, "0123456789abcdef0123456789abcdef");
    ck_assert_ptr_nonnull(ni);
    ck_assert_str_eq(ni->token, "0123456789abcdef0123456789abcdef");
    a = node_record(ni->pb, ni->token, &len);
    b = node_record(&node, "0123456789abcdef0123456789abcdef", &len);
    ck_assert_mem_eq(a, b, len);
    free(a);
    free(b);
    ninfo_free(ni);

    memset(payload, 0x5c, sizeof(payload));
    job.id = "j1";
    job.pool = "mainnet";
    job.specialization = "gpu";
    job.resources = &cap;
    job.payload.len = sizeof(payload);
    job.payload.data = payload;
    deep_copy_check(&galaxy__pool__v1__job__descriptor, &job.base);

    rq.host = "h";
    rq.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;
    rq.file_by_filename = "galaxy/pool/v1/pool.proto";
    deep_copy_check(&grpc__reflection__v1__server_reflection_request__descriptor, &rq.base);
    rq.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
    rq.list_services = "*";
    deep_copy_check(&grpc__reflection__v1__server_reflection_request__descriptor, &rq.base);
}
END_TEST

/*
 * A copy-on-write index of one chunk publishes the chunk itself (PUB_SOLO),
 * no directory and no array of chunks; readers see the same through it, a
 * chunk that changes after it was published is copied, and the index goes
 * to a directory once it has two chunks, and back.  The pool's index (_i 0)
 * always has a directory.
 */
START_TEST(windex_solo)
{
    enum { N = CHUNK_MAX + 10 };
    windex_t x = {.cow = _i};
    gx_reg_node_t *n = calloc(N, sizeof(*n)), **sorted = calloc(N, sizeof(*sorted));
    char (*ids)[8] = calloc(N, sizeof(*ids));
    gx_reg_node_t *const *v;
    gx_reg_cursor_t c;
    const chunk_t *was;
    size_t m;

    rcu_register_thread();
    for (size_t i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%05zu", i);
        n[i].id = ids[i];
        sorted[i] = &n[i];
    }
    ck_assert_int_eq(windex_publish(&x), 0); /* empty */
    ck_assert_ptr_null(x.pub);
    ck_assert_int_eq(windex_insert(&x, &n[5]), 0);
    windex_check(&x, sorted + 5, 1);
    ck_assert_ptr_eq(pub_solo(x.pub), _i ? x.c[0] : NULL);
    ck_assert(_i ? x.c == &x.one : x.c != &x.one);
    was = pub_solo(x.pub);
    rcu_read_lock();
    ck_assert_uint_eq(windex_cursor(&x, ids[4], &c), 1);
    ck_assert(gx_reg_cursor_next(&c, &v, &m));
    ck_assert_uint_eq(m, 1);
    ck_assert_ptr_eq(v[0], &n[5]);
    ck_assert(!gx_reg_cursor_next(&c, &v, &m));
    windex_cursor(&x, ids[5], &c);
    ck_assert(!gx_reg_cursor_next(&c, &v, &m));
    ck_assert_ptr_eq(gx_reg_cursor_nth(&c, 0), &n[5]);
    rcu_read_unlock();
    /* a second node: the published chunk is copied, what readers hold stays */
    ck_assert_int_eq(windex_insert(&x, &n[6]), 0);
    if (_i) {
        ck_assert_ptr_ne(x.c[0], was);
        ck_assert_uint_eq(was->n, 1);
    }
    windex_published_ok(&x, 1);
    windex_check(&x, sorted + 5, 2);
    /* past one chunk: a directory; removals back to one chunk: solo again */
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq(windex_insert(&x, &n[i]), 0);
    windex_check(&x, sorted, N);
    ck_assert_uint_gt(x.n, 1);
    ck_assert_ptr_null(pub_solo(x.pub));
    for (size_t i = 0; i < N - 3; i++)
        ck_assert_int_eq(windex_remove(&x, &n[i]), 0);
    windex_check(&x, sorted + N - 3, 3);
    ck_assert_uint_eq(x.n, 1);
    ck_assert(_i ? pub_solo(x.pub) == x.c[0] : pub_solo(x.pub) == NULL);
    for (size_t i = N - 3; i < N; i++)
        ck_assert_int_eq(windex_remove(&x, &n[i]), 0);
    windex_check(&x, sorted, 0);
    ck_assert(_i ? x.pub == NULL : pub_runs(x.pub) == 0);
    windex_free(&x);
    rcu_barrier();
    rcu_unregister_thread();
    free(n);
    free(sorted);
    free(ids);
}
END_TEST

/* _i: 0 the pool's index (copies published), 1 a copy-on-write one (specializations, labels) */
START_TEST(windex_chunks)
{
    enum { N = 3000 };
    windex_t x = {.cow = _i};
    gx_reg_node_t *n = calloc(N, sizeof(*n)), **sorted = calloc(N, sizeof(*sorted));
    size_t *order = calloc(N, sizeof(*order)), m;
    char (*ids)[8] = calloc(N, sizeof(*ids));
    const cdir_t *before, *after;
    gx_reg_node_t *const *v;
    gx_reg_cursor_t c;
    unsigned seed = 7, changed = 0;

    rcu_register_thread();
    for (size_t i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%05zu", i);
        n[i].id = ids[i];
        sorted[i] = &n[i];
        order[i] = i;
    }
    /* in order (a start-up): full chunks */
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq(windex_insert(&x, &n[i]), 0);
    windex_check(&x, sorted, N);
    ck_assert_uint_eq(x.n, (N + CHUNK_MAX - 1) / CHUNK_MAX);
    windex_free(&x);
    x.cow = _i;

    for (size_t i = N - 1; i > 0; i--) { /* inserts in random order: splits everywhere */
        size_t j = (size_t)rand_r(&seed) % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    /* published after every 16 inserts and right after every split, as commits would be */
    for (size_t i = 0; i < N; i++) {
        size_t chunks = x.n;
        ck_assert_int_eq(windex_insert(&x, &n[order[i]]), 0);
        if (x.n != chunks || i % 16 == 15) {
            ck_assert_int_eq(windex_publish(&x), 0);
            windex_published_ok(&x, i + 1);
        }
    }
    ck_assert_int_eq(windex_insert(&x, &n[N / 3]), 0); /* there already */
    windex_check(&x, sorted, N);
    ck_assert_uint_gt(x.n, N / CHUNK_MAX);

    /* one more node: one chunk copied, the others shared with the last publication */
    before = x.pub;
    ck_assert_int_eq(windex_remove(&x, &n[N / 2]), 0);
    /* what readers have stays as published (cow: the chunk was copied, not changed) */
    windex_published_ok(&x, N);
    rcu_read_lock();
    windex_cursor(&x, ids[N / 2 - 1], &c);
    ck_assert(gx_reg_cursor_next(&c, &v, &m));
    ck_assert_ptr_eq(v[0], &n[N / 2]);
    rcu_read_unlock();
    ck_assert_int_eq(windex_insert(&x, &n[N / 2]), 0);
    ck_assert_int_eq(windex_publish(&x), 0);
    after = x.pub;
    ck_assert_ptr_ne(before, after);
    ck_assert_uint_eq(before->n, after->n);
    for (size_t i = 0; i < after->n; i++)
        changed += before->run[i].c != after->run[i].c;
    ck_assert_uint_eq(changed, 1);

    /* a cursor after an id starts at the next one, across chunk boundaries */
    rcu_read_lock();
    for (size_t i = 0; i < N; i += 97) {
        windex_cursor(&x, ids[i], &c);
        if (i + 1 < N) {
            ck_assert(gx_reg_cursor_next(&c, &v, &m));
            ck_assert_ptr_eq(v[0], &n[i + 1]);
        }
    }
    windex_cursor(&x, ids[N - 1], &c);
    ck_assert(!gx_reg_cursor_next(&c, &v, &m));
    rcu_read_unlock();

    /* removals in random order: neighbours merge, no directory of crumbs */
    for (size_t i = 0; i < N - 10; i++) {
        size_t chunks = x.n;
        windex_remove(&x, &n[order[i]]);
        if (x.n != chunks || i % 16 == 15) {
            ck_assert_int_eq(windex_publish(&x), 0);
            windex_published_ok(&x, N - i - 1);
        }
    }
    windex_remove(&x, &n[order[0]]); /* gone already */
    m = 0;
    for (size_t i = 0; i < N; i++) {
        int kept = 0;
        for (size_t k = N - 10; k < N; k++)
            kept |= order[k] == i;
        if (kept)
            sorted[m++] = &n[i];
    }
    windex_check(&x, sorted, 10);
    ck_assert_uint_le(x.n, 5);

    windex_clear(&x);
    windex_check(&x, sorted, 0);
    ck_assert_ptr_null(windex_last(&x));
    windex_free(&x);
    rcu_barrier();
    rcu_unregister_thread();
    free(n);
    free(sorted);
    free(order);
    free(ids);
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
    tcase_add_test(tc, token_bytes);
    tcase_add_test(tc, liveness_machine);
    tcase_add_test(tc, page_tokens);
    tcase_add_test(tc, token_compare);
    tcase_add_test(tc, sorted_search);
    tcase_add_test(tc, watch_ring);
    tcase_add_test(tc, spec_index);
    tcase_add_test(tc, spec_index_twice);
    tcase_add_loop_test(tc, windex_chunks, 0, 2);
    tcase_add_loop_test(tc, windex_solo, 0, 2);
    tcase_add_test(tc, deep_copy);
    /* windex_chunks publishes hundreds of times: grace periods, slower under sanitizers */
    tcase_set_timeout(tc, 30);
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
