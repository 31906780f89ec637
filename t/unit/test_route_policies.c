/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the routing-policy modules modules/route_p2c and
 * modules/route_hash.  Each test loads both shared objects, as the server
 * does, through gx_mods_load() from the build's modules/.libs/ (so `make
 * check` builds them first), and drives the policies they registered through
 * gx_router_find():
 *
 *  - p2c: the choice is always in range, the only node is taken, the busier
 *    of the pair never is (the busiest of ten never in 10,000 jobs), ties go
 *    by assigned then running jobs, scores are 1 - load, and threads draw
 *    from generators of their own;
 *  - hash: a key stays on its node across calls and while other nodes leave,
 *    an 11th node takes about 1/11 of the keys and only those move, 10,000
 *    keys spread evenly over 10 nodes, a job without a routing key is hashed
 *    on its id, and scores are in [0, 1) with the chosen node highest;
 *  - both: a duplicate policy name is refused with -EEXIST, a config key
 *    refuses the start naming file and line, unloading forgets the policies.
 *
 * The modules resolve gx_route_register() and gx_mod_log() from this program,
 * linked with -export-dynamic.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "core/gx_conf.h"
#include "core/gx_mod.h"
#include "core/gx_router.h"
#include "util/gx_error.h"

#define TRIALS 10000
#define MAX_NODES 16
#define ID_LEN 32

/* ------------------------------------------------------------------------ */
/* Fixture: both modules loaded, their policies looked up                   */

static gx_conf_t conf;
static gx_mod_conf_t entries[2];
static gx_mods_t mods;
static const gx_router_t *p2c, *hash;

static void
module_dir(char *buf, size_t len)
{
    const char *d = getenv("GX_BUILDDIR");
    char cwd[PATH_MAX];
    int w;

    if (d == NULL || d[0] == '\0') {
        ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
        d = cwd;
    }
    w = snprintf(buf, len, "%s/modules/.libs", d);
    ck_assert(w > 0 && (size_t)w < len);
}

/* A configuration naming route_p2c and route_hash, bare names in module_dir. */
static void
conf_setup(void)
{
    char dir[PATH_MAX];

    module_dir(dir, sizeof(dir));
    ck_assert_int_eq(gx_conf_init(&conf), 0);
    ck_assert_int_eq(gx_conf_set_str(&conf.module_dir, dir), 0);
    entries[0] = (gx_mod_conf_t){.path = "route_p2c", .where = "test.yaml:10"};
    entries[1] = (gx_mod_conf_t){.path = "route_hash", .where = "test.yaml:20"};
    conf.modules = entries;
    conf.n_modules = 2;
}

static void
conf_teardown(void)
{
    gx_mods_unload(&mods);
    conf.modules = NULL;
    conf.n_modules = 0;
    gx_conf_deinit(&conf);
}

static void
loaded_setup(void)
{
    char err[512] = "";
    void *ctx = &ctx;

    conf_setup();
    ck_assert_msg(gx_mods_load(&mods, &conf, NULL, err, sizeof(err)) == 0, "load: %s", err);
    p2c = gx_router_find("p2c", &ctx);
    ck_assert_ptr_nonnull(p2c);
    ck_assert_ptr_null(ctx);
    hash = gx_router_find("hash", &ctx);
    ck_assert_ptr_nonnull(hash);
    ck_assert_ptr_null(ctx);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static const gx_route_job_t any_job = {.pool = "devnet", .id = "job-1", .routing_key = ""};

static size_t
choose(const gx_router_t *r, const gx_route_job_t *job, const gx_route_node_t *v, size_t n,
       double *scores)
{
    size_t i = r->choose(job, v, n, scores, NULL);

    ck_assert_uint_lt(i, n);
    return i;
}

/* @p n nodes called node-00, node-01, … (ids in @p ids), all idle. */
static void
nodes_make(gx_route_node_t *v, char ids[][ID_LEN], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], ID_LEN, "node-%02zu", i);
        v[i] = (gx_route_node_t){.id = ids[i]};
    }
}

/* @p v without its entry @p drop, order kept, into @p out; returns n - 1. */
static size_t
nodes_without(const gx_route_node_t *v, size_t n, size_t drop, gx_route_node_t *out)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        if (i != drop)
            out[k++] = v[i];
    return k;
}

static const char *
hash_pick(const gx_route_node_t *v, size_t n, const char *key)
{
    gx_route_job_t job = {.pool = "devnet", .id = "job-x", .routing_key = key};

    return v[choose(hash, &job, v, n, NULL)].id;
}

/* The node with the second highest hash score for @p key. */
static const char *
runner_up(const gx_route_node_t *v, size_t n, const char *key)
{
    gx_route_job_t job = {.pool = "devnet", .id = "job-x", .routing_key = key};
    double scores[MAX_NODES];
    size_t first = 0, second = n;

    ck_assert_uint_ge(n, 2);
    ck_assert_uint_le(n, MAX_NODES);
    choose(hash, &job, v, n, scores);
    for (size_t i = 1; i < n; i++)
        if (scores[i] > scores[first])
            first = i;
    for (size_t i = 0; i < n; i++)
        if (i != first && (second == n || scores[i] > scores[second]))
            second = i;
    return v[second].id;
}

/* Runs stderr into a temporary file until log_end(), which returns it (malloc). */
static int saved_fd = -1;
static FILE *log_file;

static void
log_begin(void)
{
    fflush(stderr);
    log_file = tmpfile();
    ck_assert_ptr_nonnull(log_file);
    saved_fd = dup(STDERR_FILENO);
    ck_assert_int_ge(saved_fd, 0);
    ck_assert_int_ge(dup2(fileno(log_file), STDERR_FILENO), 0);
}

static char *
log_end(void)
{
    long size;
    char *text;

    fflush(stderr);
    ck_assert_int_ge(dup2(saved_fd, STDERR_FILENO), 0);
    close(saved_fd);
    ck_assert_int_eq(fseek(log_file, 0, SEEK_END), 0);
    size = ftell(log_file);
    ck_assert_int_ge(size, 0);
    rewind(log_file);
    text = calloc(1, (size_t)size + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(fread(text, 1, (size_t)size, log_file), (size_t)size);
    fclose(log_file);
    fputs(text, stderr); /* for whoever reads the test's output */
    return text;
}

/* ------------------------------------------------------------------------ */
/* p2c                                                                      */

START_TEST(p2c_in_range)
{
    gx_route_node_t v[MAX_NODES];
    char ids[MAX_NODES][ID_LEN];

    nodes_make(v, ids, MAX_NODES);
    for (size_t n = 1; n <= MAX_NODES; n++)
        for (size_t t = 0; t < 1000; t++) {
            for (size_t i = 0; i < n; i++)
                v[i].load = (double)((t * 7 + i * 13) % 10) / 10.0;
            choose(p2c, &any_job, v, n, NULL);
        }
}
END_TEST

START_TEST(p2c_single_node)
{
    gx_route_node_t v = {.id = "only", .load = 1.0, .assigned_jobs = 99};

    for (int t = 0; t < 100; t++)
        ck_assert_uint_eq(p2c->choose(&any_job, &v, 1, NULL, NULL), 0);
}
END_TEST

/* Distinct loads, the busiest in the middle: never chosen, every other node sometimes. */
START_TEST(p2c_never_busiest)
{
    static const double loads[10] = {0.30, 0.10, 0.55, 0.20, 0.95, 0.40, 0.05, 0.70, 0.60, 0.80};
    gx_route_node_t v[10];
    char ids[10][ID_LEN];
    unsigned hits[10] = {0};

    nodes_make(v, ids, 10);
    for (size_t i = 0; i < 10; i++)
        v[i].load = loads[i];
    for (int t = 0; t < TRIALS; t++)
        hits[choose(p2c, &any_job, v, 10, NULL)]++;
    ck_assert_uint_eq(hits[4], 0);
    /* the least loaded wins every pair it is in: 2/10 of the jobs */
    ck_assert_uint_gt(hits[6], TRIALS * 15 / 100);
    ck_assert_uint_lt(hits[6], TRIALS * 25 / 100);
    for (size_t i = 0; i < 10; i++)
        if (i != 4)
            ck_assert_msg(hits[i] > 0, "node %zu never chosen", i);
}
END_TEST

/* Two nodes: the pair is always both, so the less busy one always wins. */
START_TEST(p2c_pair_and_ties)
{
    gx_route_node_t v[2] = {{.id = "a"}, {.id = "b"}};
    unsigned hits[2] = {0, 0};

    v[0].load = 0.7;
    v[1].load = 0.2;
    for (int t = 0; t < 1000; t++)
        ck_assert_uint_eq(choose(p2c, &any_job, v, 2, NULL), 1);

    /* same load: fewer assigned jobs, even with more running */
    v[0] = (gx_route_node_t){.id = "a", .load = 0.5, .assigned_jobs = 2, .running_jobs = 0};
    v[1] = (gx_route_node_t){.id = "b", .load = 0.5, .assigned_jobs = 3, .running_jobs = 0};
    for (int t = 0; t < 1000; t++)
        ck_assert_uint_eq(choose(p2c, &any_job, v, 2, NULL), 0);
    v[1].assigned_jobs = 1;
    v[1].running_jobs = 9;
    for (int t = 0; t < 1000; t++)
        ck_assert_uint_eq(choose(p2c, &any_job, v, 2, NULL), 1);

    /* same load and assigned jobs: fewer running */
    v[1].assigned_jobs = 2;
    v[0].running_jobs = 4;
    v[1].running_jobs = 3;
    for (int t = 0; t < 1000; t++)
        ck_assert_uint_eq(choose(p2c, &any_job, v, 2, NULL), 1);

    /* a full tie is no bias: both are chosen */
    v[1].running_jobs = 4;
    for (int t = 0; t < 1000; t++)
        hits[choose(p2c, &any_job, v, 2, NULL)]++;
    ck_assert_uint_gt(hits[0], 350);
    ck_assert_uint_gt(hits[1], 350);
}
END_TEST

START_TEST(p2c_scores)
{
    gx_route_node_t v[5];
    char ids[5][ID_LEN];
    double scores[5];

    nodes_make(v, ids, 5);
    for (size_t i = 0; i < 5; i++)
        v[i].load = (double)i / 4.0;
    for (size_t n = 1; n <= 5; n++) {
        for (size_t i = 0; i < 5; i++)
            scores[i] = -1.0;
        choose(p2c, &any_job, v, n, scores);
        for (size_t i = 0; i < n; i++)
            ck_assert_double_eq(scores[i], 1.0 - v[i].load);
        for (size_t i = n; i < 5; i++)
            ck_assert_double_eq(scores[i], -1.0); /* nothing past n */
    }
}
END_TEST

#define THREADS 4
#define DRAWS 64

typedef struct {
    const gx_route_node_t *v;
    size_t picks[DRAWS];
} draw_t;

static void *
draw_thread(void *arg)
{
    draw_t *d = arg;

    for (size_t i = 0; i < DRAWS; i++)
        d->picks[i] = p2c->choose(&any_job, d->v, 1000, NULL, NULL);
    return NULL;
}

/* Threads choose at once (a race would show under the sanitizers) and do not share a sequence. */
START_TEST(p2c_threads)
{
    static gx_route_node_t v[1000];
    static draw_t d[THREADS];
    pthread_t th[THREADS];

    for (size_t i = 0; i < 1000; i++)
        v[i] = (gx_route_node_t){.id = "n", .load = (double)i / 1000.0};
    for (size_t t = 0; t < THREADS; t++) {
        d[t].v = v;
        ck_assert_int_eq(pthread_create(&th[t], NULL, draw_thread, &d[t]), 0);
    }
    for (size_t t = 0; t < THREADS; t++)
        ck_assert_int_eq(pthread_join(th[t], NULL), 0);
    for (size_t t = 0; t < THREADS; t++) {
        for (size_t i = 0; i < DRAWS; i++)
            ck_assert_uint_lt(d[t].picks[i], 1000);
        for (size_t u = t + 1; u < THREADS; u++)
            ck_assert_msg(memcmp(d[t].picks, d[u].picks, sizeof(d[t].picks)) != 0,
                          "threads %zu and %zu drew the same sequence", t, u);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* hash                                                                     */

START_TEST(hash_sticky)
{
    gx_route_node_t v[10], fewer[10];
    char ids[10][ID_LEN], key[32];

    nodes_make(v, ids, 10);
    for (int k = 0; k < 1000; k++) {
        const char *home;
        size_t at = 10;

        snprintf(key, sizeof(key), "tenant-%d", k);
        home = hash_pick(v, 10, key);
        /* loads and job counts are not looked at */
        v[k % 10].load = 1.0;
        v[k % 10].assigned_jobs += 5;
        ck_assert_str_eq(hash_pick(v, 10, key), home);
        for (size_t i = 0; i < 10; i++)
            if (v[i].id == home)
                at = i;
        ck_assert_uint_lt(at, 10);
        for (size_t drop = 0; drop < 10; drop++) {
            size_t n;

            if (drop == at)
                continue;
            n = nodes_without(v, 10, drop, fewer);
            ck_assert_str_eq(hash_pick(fewer, n, key), home);
        }
        /* its own node gone, the key goes to its next heaviest node */
        ck_assert_str_eq(hash_pick(fewer, nodes_without(v, 10, at, fewer), key),
                         runner_up(v, 10, key));
    }
}
END_TEST

/* An 11th node, in id order among the others, takes ~1/11 of the keys; nothing else moves. */
START_TEST(hash_node_added)
{
    gx_route_node_t v[10], more[11];
    char ids[10][ID_LEN], key[32];
    unsigned moved = 0;

    nodes_make(v, ids, 10);
    for (size_t i = 0, k = 0; i < 11; i++)
        more[i] = i == 6 ? (gx_route_node_t){.id = "node-05b"} : v[k++];
    for (int k = 0; k < TRIALS; k++) {
        const char *before, *after;

        snprintf(key, sizeof(key), "key-%d", k);
        before = hash_pick(v, 10, key);
        after = hash_pick(more, 11, key);
        if (strcmp(before, after) != 0) {
            ck_assert_str_eq(after, "node-05b");
            moved++;
        }
    }
    ck_assert_msg(moved > TRIALS * 5 / 100 && moved < TRIALS * 15 / 100,
                  "%u of %d keys moved, want about 1/11", moved, TRIALS);
}
END_TEST

START_TEST(hash_spread)
{
    gx_route_node_t v[10];
    char ids[10][ID_LEN], key[32];
    unsigned hits[10] = {0};

    nodes_make(v, ids, 10);
    for (int k = 0; k < TRIALS; k++) {
        gx_route_job_t job = {.pool = "devnet", .id = "job-x", .routing_key = key};

        snprintf(key, sizeof(key), "%d", k);
        hits[choose(hash, &job, v, 10, NULL)]++;
    }
    for (size_t i = 0; i < 10; i++)
        ck_assert_msg(hits[i] >= 700 && hits[i] <= 1300, "node %zu got %u keys of %d", i, hits[i],
                      TRIALS);
}
END_TEST

START_TEST(hash_key_or_id)
{
    gx_route_node_t v[10];
    char ids[10][ID_LEN], id[32];
    unsigned hits[10] = {0};

    nodes_make(v, ids, 10);
    for (int k = 0; k < 1000; k++) {
        gx_route_job_t by_id = {.pool = "devnet", .id = id, .routing_key = ""};
        gx_route_job_t by_key = {.pool = "devnet", .id = "other", .routing_key = id};
        gx_route_job_t no_key = {.pool = "devnet", .id = id, .routing_key = NULL};
        size_t i;

        snprintf(id, sizeof(id), "job-%d", k);
        i = choose(hash, &by_id, v, 10, NULL);
        ck_assert_uint_eq(choose(hash, &by_key, v, 10, NULL), i);
        ck_assert_uint_eq(choose(hash, &no_key, v, 10, NULL), i);
        hits[i]++;
    }
    /* jobs without a key spread by their ids */
    for (size_t i = 0; i < 10; i++)
        ck_assert_uint_gt(hits[i], 50);

    /* a key wins over the id: every job of the key goes to one node */
    {
        gx_route_job_t a = {.pool = "devnet", .id = "job-a", .routing_key = "cache-7"};
        gx_route_job_t b = {.pool = "devnet", .id = "job-b", .routing_key = "cache-7"};

        ck_assert_uint_eq(choose(hash, &a, v, 10, NULL), choose(hash, &b, v, 10, NULL));
    }
}
END_TEST

START_TEST(hash_scores_and_ties)
{
    gx_route_node_t v[10];
    char ids[10][ID_LEN];
    double scores[10];
    gx_route_job_t job = {.pool = "devnet", .id = "job-1", .routing_key = "k"};
    size_t best;

    nodes_make(v, ids, 10);
    for (size_t i = 0; i < 10; i++)
        scores[i] = -1.0;
    best = choose(hash, &job, v, 10, scores);
    ck_assert_uint_eq(choose(hash, &job, v, 10, NULL), best);
    for (size_t i = 0; i < 10; i++) {
        ck_assert(scores[i] >= 0.0 && scores[i] < 1.0);
        ck_assert(scores[i] <= scores[best]);
    }
    ck_assert_uint_eq(choose(hash, &job, v, 1, NULL), 0);

    /* equal weights (the same id twice): the lower index */
    v[3].id = v[best].id;
    if (best < 3)
        ck_assert_uint_eq(choose(hash, &job, v, 10, NULL), best);
    else
        ck_assert_uint_eq(choose(hash, &job, v, 10, NULL), 3);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Registration and configuration                                           */

static size_t
never_called(const gx_route_job_t *job, const gx_route_node_t *v, size_t n, double *scores,
             void *ctx)
{
    ck_abort_msg("a refused policy was called");
    return 0;
}

START_TEST(register_duplicate)
{
    static const gx_router_t again_p2c = {.name = "p2c", .choose = never_called};
    static const gx_router_t again_hash = {.name = "hash", .choose = never_called};
    gx_module_t *m;

    ck_assert_uint_eq(mods.n_mods, 2);
    for (size_t i = 0; i < 2; i++) {
        m = mods.mods[i];
        ck_assert_str_eq(m->desc->name, i == 0 ? "route_p2c" : "route_hash");
        ck_assert_str_eq(m->desc->edition, "community");
        ck_assert_str_eq(m->desc->version, PACKAGE_VERSION);
        ck_assert_uint_eq(m->desc->abi, GX_MODULE_ABI);
    }
    ck_assert_int_eq(gx_route_register(mods.mods[0], &again_p2c, NULL), -EEXIST);
    ck_assert_int_eq(gx_route_register(mods.mods[1], &again_hash, NULL), -EEXIST);
    ck_assert_int_eq(gx_route_register(mods.mods[1], &again_p2c, NULL), -EEXIST);
    ck_assert_ptr_eq(gx_router_find("p2c", NULL), p2c);
    ck_assert_ptr_eq(gx_router_find("hash", NULL), hash);
}
END_TEST

START_TEST(unload_forgets)
{
    gx_mods_unload(&mods);
    ck_assert_ptr_null(gx_router_find("p2c", NULL));
    ck_assert_ptr_null(gx_router_find("hash", NULL));
}
END_TEST

/* A `config:` key refuses the start: the loader names the entry, the module the key. */
static void
refuses_key(size_t entry, const char *name)
{
    gx_conf_kv_t kv = {.key = "weight", .value = "2", .where = "test.yaml:42"};
    char err[512] = "", want[600];
    char *log;
    int rc;

    entries[entry].kv = &kv;
    entries[entry].n_kv = 1;
    log_begin();
    rc = gx_mods_load(&mods, &conf, NULL, err, sizeof(err));
    log = log_end();
    ck_assert_int_eq(rc, GX_ECONF);
    snprintf(want, sizeof(want), "%s: module %s failed to start: %s", entries[entry].where, name,
             gx_strerror(-EINVAL));
    ck_assert_str_eq(err, want);
    snprintf(want, sizeof(want), "test.yaml:42: unknown key \"weight\" (%s takes no settings)",
             name);
    ck_assert_msg(strstr(log, want) != NULL, "\"%s\" not logged in:\n%s", want, log);
    ck_assert_ptr_null(gx_router_find("p2c", NULL));
    ck_assert_ptr_null(gx_router_find("hash", NULL));
    free(log);
}

START_TEST(p2c_refuses_key)
{
    refuses_key(0, "route_p2c");
}
END_TEST

START_TEST(hash_refuses_key)
{
    refuses_key(1, "route_hash");
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *
route_suite(void)
{
    Suite *s = suite_create("route_policies");
    TCase *tc = tcase_create("policies");
    TCase *tconf = tcase_create("config");

    tcase_add_checked_fixture(tc, loaded_setup, conf_teardown);
    tcase_add_test(tc, p2c_in_range);
    tcase_add_test(tc, p2c_single_node);
    tcase_add_test(tc, p2c_never_busiest);
    tcase_add_test(tc, p2c_pair_and_ties);
    tcase_add_test(tc, p2c_scores);
    tcase_add_test(tc, p2c_threads);
    tcase_add_test(tc, hash_sticky);
    tcase_add_test(tc, hash_node_added);
    tcase_add_test(tc, hash_spread);
    tcase_add_test(tc, hash_key_or_id);
    tcase_add_test(tc, hash_scores_and_ties);
    tcase_add_test(tc, register_duplicate);
    tcase_add_test(tc, unload_forgets);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(tconf, conf_setup, conf_teardown);
    tcase_add_test(tconf, p2c_refuses_key);
    tcase_add_test(tconf, hash_refuses_key);
    suite_add_tcase(s, tconf);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(route_suite());
    int failures;

    srunner_run_all(sr, CK_NORMAL);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures == 0 ? 0 : 1;
}
