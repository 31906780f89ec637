/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the LMDB store (src/store/gx_store.c) on real database files
 * in a temporary directory: put, get, delete and scan; atomic batches; order;
 * done called once, and only when a fresh process can read the data; group
 * commit under many submitting threads; a full map (GX_EMAPFULL, nothing
 * half-written) and a growing one read concurrently; close and shutdown with
 * pending and racing submits; invalid input; the schema version; stale reader
 * slots of a killed process; and durability of acknowledged batches across
 * SIGKILL at random moments.  Children are forked for the cross-process
 * cases, never while a store is open in the forking process; the done
 * callback that checks durability runs this program again (--read) instead.
 */
#include "config.h"

#include "store/gx_store.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <lmdb.h>

#include "util/gx_clock.h"
#include "util/gx_error.h"
#include "util/gx_log.h"

#define WAIT_S 30

static char root[64];
static char self[4096]; /* this program, for the --read children */

/* A directory for one case under the suite's temporary root (the store creates it). */
static void
test_dir(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", root, name);
}

static gx_store_t *
store_open_opts(const char *dir, const gx_store_opts_t *opts)
{
    gx_store_t *st = NULL;
    char err[256];
    int rc;

    rc = gx_store_open(dir, opts, &st, err, sizeof(err));
    ck_assert_msg(rc == 0, "open %s: %s (%s)", dir, gx_strerror(rc), err);
    ck_assert_ptr_nonnull(st);
    return st;
}

static gx_store_t *
store_open(const char *dir)
{
    return store_open_opts(dir, NULL);
}

/* ------------------------------------------------------------------------ */
/* Waiting for done callbacks                                               */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned calls, failures;
    int last;
} waiter_t;

static void
waiter_init(waiter_t *w)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->calls = w->failures = 0;
    w->last = 0;
}

static void
waiter_deinit(waiter_t *w)
{
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

static void
waiter_done(int status, void *arg)
{
    waiter_t *w = arg;

    pthread_mutex_lock(&w->mu);
    w->calls++;
    w->failures += status != 0;
    w->last = status;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Waits (bounded) until @p w has seen @p calls done callbacks. */
static unsigned
waiter_wait(waiter_t *w, unsigned calls)
{
    struct timespec ts;
    unsigned n;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_S;
    pthread_mutex_lock(&w->mu);
    while (w->calls < calls && pthread_cond_timedwait(&w->cv, &w->mu, &ts) != ETIMEDOUT) {
    }
    n = w->calls;
    pthread_mutex_unlock(&w->mu);
    ck_assert_msg(n >= calls, "%u done callbacks, expected %u", n, calls);
    return n;
}

static gx_store_op_t
op_put(gx_store_table_t t, const char *key, const char *val)
{
    gx_store_op_t op = {t, 0, key, strlen(key), val, strlen(val)};

    return op;
}

static gx_store_op_t
op_del(gx_store_table_t t, const char *key)
{
    gx_store_op_t op = {t, 1, key, strlen(key), NULL, 0};

    return op;
}

/* Submits @p n ops as one batch and waits for its done. @return its status */
static int
submit_wait(gx_store_t *st, const gx_store_op_t *ops, size_t n)
{
    waiter_t w;
    int rc;

    waiter_init(&w);
    rc = gx_store_submit(st, ops, n, waiter_done, &w);
    ck_assert_msg(rc == 0, "submit: %s", gx_strerror(rc));
    waiter_wait(&w, 1);
    rc = w.last;
    ck_assert_uint_eq(w.calls, 1);
    waiter_deinit(&w);
    return rc;
}

static int
put_wait(gx_store_t *st, gx_store_table_t t, const char *key, const char *val)
{
    gx_store_op_t op = op_put(t, key, val);

    return submit_wait(st, &op, 1);
}

/* Asserts that @p key holds @p want in @p t (NULL: absent). */
static void
assert_val(gx_store_t *st, gx_store_table_t t, const char *key, const char *want)
{
    void *val = NULL;
    size_t len = 0;
    int rc;

    rc = gx_store_get(st, t, key, strlen(key), &val, &len);
    if (want == NULL) {
        ck_assert_msg(rc == GX_ENOTFOUND, "%s: %s, expected not found", key, gx_strerror(rc));
        ck_assert_ptr_null(val);
        return;
    }
    ck_assert_msg(rc == 0, "%s: %s", key, gx_strerror(rc));
    ck_assert_msg(len == strlen(want) && memcmp(val, want, len) == 0, "%s = %.*s, expected %s", key,
                  (int)len, (const char *)val, want);
    free(val);
}

/* 1 when @p key holds @p want (for loops too long for one ck_assert each). */
static int
has_val(gx_store_t *st, gx_store_table_t t, const char *key, const char *want)
{
    void *val = NULL;
    size_t len = 0;
    int ok;

    ok = gx_store_get(st, t, key, strlen(key), &val, &len) == 0 && len == strlen(want) &&
         memcmp(val, want, len) == 0;
    free(val);
    return ok;
}

static int
count_cb(const void *key, size_t key_len, const void *val, size_t val_len, void *arg)
{
    (*(unsigned *)arg)++;
    return 0;
}

static unsigned
table_count(gx_store_t *st, gx_store_table_t t)
{
    unsigned n = 0;

    ck_assert_int_eq(gx_store_scan(st, t, count_cb, &n), 0);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Basics                                                                   */

START_TEST(test_put_get_delete)
{
    char dir[128];
    gx_store_t *st;
    gx_store_op_t op;
    void *val;
    size_t len;

    test_dir(dir, sizeof(dir), "basic");
    st = store_open(dir);
    ck_assert_int_eq(put_wait(st, GX_STORE_NODES, "k1", "v1"), 0);
    assert_val(st, GX_STORE_NODES, "k1", "v1");
    assert_val(st, GX_STORE_POOLS, "k1", NULL); /* tables are separate */
    ck_assert_int_eq(put_wait(st, GX_STORE_NODES, "k1", "v2"), 0);
    assert_val(st, GX_STORE_NODES, "k1", "v2");

    op = op_del(GX_STORE_NODES, "k1");
    ck_assert_int_eq(submit_wait(st, &op, 1), 0);
    assert_val(st, GX_STORE_NODES, "k1", NULL);
    ck_assert_int_eq(submit_wait(st, &op, 1), 0); /* absent is fine */

    /* an empty value is a value */
    op = (gx_store_op_t){GX_STORE_JOBS, 0, "empty", 5, NULL, 0};
    ck_assert_int_eq(submit_wait(st, &op, 1), 0);
    ck_assert_int_eq(gx_store_get(st, GX_STORE_JOBS, "empty", 5, &val, &len), 0);
    ck_assert_ptr_nonnull(val);
    ck_assert_uint_eq(len, 0);
    free(val);
    gx_store_close(st);
}
END_TEST

START_TEST(test_batch_atomic)
{
    char dir[128];
    gx_store_t *st;
    gx_store_op_t ops[4];
    waiter_t w;

    test_dir(dir, sizeof(dir), "atomic");
    st = store_open(dir);
    ck_assert_int_eq(put_wait(st, GX_STORE_KEYS, "old", "x"), 0);
    ops[0] = op_put(GX_STORE_POOLS, "p", "pool");
    ops[1] = op_put(GX_STORE_NODES, "p\0n", "node");
    ops[1].key_len = 3;
    ops[2] = op_put(GX_STORE_JOBS, "j", "job");
    ops[3] = op_del(GX_STORE_KEYS, "old");
    ck_assert_int_eq(submit_wait(st, ops, 4), 0);
    assert_val(st, GX_STORE_POOLS, "p", "pool");
    assert_val(st, GX_STORE_JOBS, "j", "job");
    assert_val(st, GX_STORE_KEYS, "old", NULL);
    ck_assert_uint_eq(table_count(st, GX_STORE_NODES), 1);

    /* one bad op refuses the whole batch; nothing of it is ever stored */
    waiter_init(&w);
    ops[0] = op_put(GX_STORE_POOLS, "q", "pool");
    ops[1] = op_put(GX_STORE_JOBS, "k", "job");
    ops[2] = op_put(GX_STORE_JOBS, "", "job");
    ck_assert_int_eq(gx_store_submit(st, ops, 3, waiter_done, &w), GX_EINVAL);
    ck_assert_int_eq(put_wait(st, GX_STORE_META, "flush", "1"), 0);
    assert_val(st, GX_STORE_POOLS, "q", NULL);
    assert_val(st, GX_STORE_JOBS, "k", NULL);
    ck_assert_uint_eq(w.calls, 0);
    waiter_deinit(&w);
    gx_store_close(st);
}
END_TEST

START_TEST(test_order)
{
    enum { N = 2000 };
    char dir[128], val[16];
    gx_store_t *st;
    gx_store_op_t op;
    waiter_t w;

    test_dir(dir, sizeof(dir), "order");
    st = store_open(dir);
    waiter_init(&w);
    for (int i = 0; i < N; i++) {
        snprintf(val, sizeof(val), "%d", i);
        op = op_put(GX_STORE_NODES, "k", val);
        ck_assert_int_eq(gx_store_submit(st, &op, 1, waiter_done, &w), 0);
        /* put, delete, put: the last one wins */
        op = (i % 2) ? op_put(GX_STORE_NODES, "x", val) : op_del(GX_STORE_NODES, "x");
        ck_assert_int_eq(gx_store_submit(st, &op, 1, waiter_done, &w), 0);
    }
    waiter_wait(&w, 2 * N);
    ck_assert_uint_eq(w.failures, 0);
    snprintf(val, sizeof(val), "%d", N - 1);
    assert_val(st, GX_STORE_NODES, "k", val);
    assert_val(st, GX_STORE_NODES, "x", val);
    op = op_del(GX_STORE_NODES, "x");
    ck_assert_int_eq(gx_store_submit(st, &op, 1, NULL, NULL), 0);
    ck_assert_int_eq(put_wait(st, GX_STORE_META, "flush", "1"), 0);
    assert_val(st, GX_STORE_NODES, "x", NULL);
    gx_store_close(st);
    waiter_deinit(&w);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* done: exactly once, after the data is readable by another process        */

typedef struct {
    const char *dir;
    const char *key;
    int status;
    int calls;
    int child_exit; /* the child's verdict: 0 when it read the value */
} durable_t;

/*
 * `test_gx_store --read DIR KEY`: a fresh process (exec'd, so it shares nothing
 * with the one that forked it) opens the store and reads KEY, whose value must
 * be KEY: exit 0, or 2..4.
 */
static int
durable_read(const char *dir, const char *key)
{
    gx_store_t *st = NULL;
    void *val = NULL;
    size_t len = 0;
    char err[256];
    int code;

    if (gx_store_open(dir, NULL, &st, err, sizeof(err)) != 0)
        return 2;
    code = gx_store_get(st, GX_STORE_NODES, key, strlen(key), &val, &len) != 0 ? 3
           : len != strlen(key) || memcmp(val, key, len) != 0                  ? 4
                                                                               : 0;
    free(val);
    gx_store_close(st);
    return code;
}

static void
durable_done(int status, void *arg)
{
    durable_t *d = arg;
    int ws = 0;
    pid_t pid;

    d->status = status;
    d->calls++;
    pid = fork();
    if (pid == 0) {
        execl(self, self, "--read", d->dir, d->key, (char *)NULL);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &ws, 0) != pid)
        d->child_exit = 100;
    else
        d->child_exit = WIFEXITED(ws) ? WEXITSTATUS(ws) : 200 + WTERMSIG(ws);
}

START_TEST(test_done_durable)
{
    static const char *keys[] = {"first", "second", "third"};
    durable_t d[3];
    char dir[128];
    gx_store_t *st;
    gx_store_op_t op;

    test_dir(dir, sizeof(dir), "durable");
    st = store_open(dir);
    for (int i = 0; i < 3; i++) {
        d[i] = (durable_t){dir, keys[i], -1, 0, -1};
        op = op_put(GX_STORE_NODES, keys[i], keys[i]);
        ck_assert_int_eq(gx_store_submit(st, &op, 1, durable_done, &d[i]), 0);
    }
    gx_store_close(st); /* joins the writer: every done has returned */
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(d[i].calls, 1);
        ck_assert_int_eq(d[i].status, 0);
        ck_assert_msg(d[i].child_exit == 0, "%s: child exit %d", keys[i], d[i].child_exit);
    }
}
END_TEST

/* The done callbacks of a commit run between the done_begin and done_end hooks. */
static int bracket_depth, bracket_pairs, bracket_inside, bracket_outside;

static void
bracket_begin(void)
{
    bracket_depth++;
}

static void
bracket_end(void)
{
    bracket_depth--;
    bracket_pairs++;
}

static void
bracket_done(int status, void *arg)
{
    if (bracket_depth == 1)
        bracket_inside++;
    else
        bracket_outside++;
}

START_TEST(test_done_bracket)
{
    char dir[128];
    gx_store_opts_t opts;
    gx_store_t *st;
    gx_store_op_t op;
    char key[16];

    test_dir(dir, sizeof(dir), "bracket");
    gx_store_opts_init(&opts);
    ck_assert_ptr_null(opts.done_begin); /* none unless asked for */
    ck_assert_ptr_null(opts.done_end);
    opts.done_begin = bracket_begin;
    opts.done_end = bracket_end;
    st = store_open_opts(dir, &opts);
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "k%03d", i);
        op = op_put(GX_STORE_NODES, key, key);
        ck_assert_int_eq(gx_store_submit(st, &op, 1, bracket_done, NULL), 0);
    }
    gx_store_close(st); /* joins the writer */
    ck_assert_int_eq(bracket_inside, 200);
    ck_assert_int_eq(bracket_outside, 0);
    ck_assert_int_eq(bracket_depth, 0);
    ck_assert_int_ge(bracket_pairs, 1); /* once per commit, and commits group batches */
    ck_assert_int_le(bracket_pairs, 200);
}
END_TEST

/* A done callback may submit again and read: both work from the writer thread. */
typedef struct {
    gx_store_t *st;
    waiter_t *w;
    int got;
} chain_t;

static void
chain_done(int status, void *arg)
{
    chain_t *c = arg;
    gx_store_op_t op = op_put(GX_STORE_NODES, "second", "2");
    void *val = NULL;
    size_t len;

    c->got = gx_store_get(c->st, GX_STORE_NODES, "first", 5, &val, &len);
    free(val);
    if (status != 0 || gx_store_submit(c->st, &op, 1, waiter_done, c->w) != 0)
        waiter_done(-1, c->w);
}

START_TEST(test_done_reentrant)
{
    char dir[128];
    gx_store_t *st;
    gx_store_op_t op = op_put(GX_STORE_NODES, "first", "1");
    waiter_t w;
    chain_t c;

    test_dir(dir, sizeof(dir), "chain");
    st = store_open(dir);
    waiter_init(&w);
    c = (chain_t){st, &w, -1};
    ck_assert_int_eq(gx_store_submit(st, &op, 1, chain_done, &c), 0);
    waiter_wait(&w, 1);
    ck_assert_int_eq(w.last, 0);
    ck_assert_int_eq(c.got, 0);
    assert_val(st, GX_STORE_NODES, "second", "2");
    gx_store_close(st);
    waiter_deinit(&w);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Group commit                                                             */

enum { THREADS = 8, PER_THREAD = 5000 };

typedef struct {
    gx_store_t *st;
    waiter_t *w;
    int id;
    int submit_errors;
} submitter_t;

static void *
submitter_main(void *arg)
{
    submitter_t *s = arg;
    char key[32];
    gx_store_op_t op;

    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(key, sizeof(key), "t%d-%05d", s->id, i);
        op = op_put(GX_STORE_NODES, key, key);
        s->submit_errors += gx_store_submit(s->st, &op, 1, waiter_done, s->w) != 0;
    }
    return NULL;
}

START_TEST(test_concurrent_group_commit)
{
    submitter_t s[THREADS];
    pthread_t th[THREADS];
    gx_store_stats_t stats;
    char dir[128];
    gx_store_t *st;
    waiter_t w;

    test_dir(dir, sizeof(dir), "concurrent");
    st = store_open(dir);
    waiter_init(&w);
    for (int i = 0; i < THREADS; i++) {
        s[i] = (submitter_t){st, &w, i, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, submitter_main, &s[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(s[i].submit_errors, 0);
    }
    waiter_wait(&w, THREADS * PER_THREAD);
    ck_assert_uint_eq(w.failures, 0);
    gx_store_stats(st, &stats);
    ck_assert_uint_eq(stats.batches, THREADS * PER_THREAD);
    ck_assert_uint_eq(stats.failed, 0);
    ck_assert_uint_eq(stats.queue_depth, 0);
    ck_assert_msg(stats.commits < stats.batches, "no group commit: %llu commits for %llu batches",
                  (unsigned long long)stats.commits, (unsigned long long)stats.batches);
    ck_assert_uint_gt(stats.commit_ns_max, 0);
    ck_assert_uint_eq(table_count(st, GX_STORE_NODES), THREADS * PER_THREAD);
    assert_val(st, GX_STORE_NODES, "t7-04999", "t7-04999");
    gx_store_close(st);
    waiter_deinit(&w);
}
END_TEST

START_TEST(test_max_batch)
{
    enum { N = 300 };
    gx_store_opts_t opts;
    gx_store_stats_t stats;
    char dir[128], key[16];
    gx_store_t *st;
    gx_store_op_t op;
    waiter_t w;

    test_dir(dir, sizeof(dir), "max_batch");
    gx_store_opts_init(&opts);
    opts.max_batch = 4;
    st = store_open_opts(dir, &opts);
    waiter_init(&w);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "%d", i);
        op = op_put(GX_STORE_NODES, key, key);
        ck_assert_int_eq(gx_store_submit(st, &op, 1, waiter_done, &w), 0);
    }
    waiter_wait(&w, N);
    gx_store_stats(st, &stats);
    ck_assert_uint_eq(stats.batches, N);
    ck_assert_uint_ge(stats.commits, N / 4);
    gx_store_close(st);
    waiter_deinit(&w);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* A full map, a growing map                                                */

START_TEST(test_map_full)
{
    enum { BIG = 1 << 20, N = 16 };
    gx_store_opts_t opts;
    gx_store_stats_t stats;
    char dir[128], key[16], *big;
    gx_store_op_t ops[2];
    gx_store_t *st;
    struct {
        waiter_t w;
        char key[16];
    } b[N];

    test_dir(dir, sizeof(dir), "mapfull");
    gx_store_opts_init(&opts);
    opts.map_size = opts.map_size_max = 256 << 10;
    st = store_open_opts(dir, &opts);
    ck_assert_int_eq(put_wait(st, GX_STORE_NODES, "before", "1"), 0);

    big = malloc(BIG);
    ck_assert_ptr_nonnull(big);
    memset(big, 'x', BIG);
    ops[0] = op_put(GX_STORE_NODES, "half", "1");
    ops[1] = (gx_store_op_t){GX_STORE_NODES, 0, "big", 3, big, BIG};
    ck_assert_int_eq(submit_wait(st, ops, 2), GX_EMAPFULL);
    assert_val(st, GX_STORE_NODES, "half", NULL); /* nothing half-written */
    assert_val(st, GX_STORE_NODES, "big", NULL);
    assert_val(st, GX_STORE_NODES, "before", "1");
    ck_assert_int_eq(put_wait(st, GX_STORE_NODES, "after", "1"), 0);

    /* small batches that may share a commit with a big one: each is whole or absent */
    for (int i = 0; i < N; i++) {
        waiter_init(&b[i].w);
        snprintf(b[i].key, sizeof(b[i].key), "s%d", i);
        ops[0] = op_put(GX_STORE_NODES, b[i].key, "1");
        ops[1] = (gx_store_op_t){GX_STORE_NODES, 0, "big", 3, big, i % 4 == 3 ? BIG : 1};
        ck_assert_int_eq(gx_store_submit(st, ops, 2, waiter_done, &b[i].w), 0);
    }
    for (int i = 0; i < N; i++) {
        waiter_wait(&b[i].w, 1);
        ck_assert(b[i].w.last == 0 || b[i].w.last == GX_EMAPFULL);
        if (i % 4 == 3)
            ck_assert_int_eq(b[i].w.last, GX_EMAPFULL);
        snprintf(key, sizeof(key), "s%d", i);
        assert_val(st, GX_STORE_NODES, key, b[i].w.last == 0 ? "1" : NULL);
        waiter_deinit(&b[i].w);
    }
    gx_store_stats(st, &stats);
    ck_assert_uint_eq(stats.map_grows, 0);
    ck_assert_uint_ge(stats.failed, 5);
    ck_assert_uint_eq(stats.map_size, 256 << 10);
    gx_store_close(st);
    free(big);
}
END_TEST

typedef struct {
    gx_store_t *st;
    int stop; /* atomic */
    unsigned reads, errors;
} reader_t;

static void *
reader_main(void *arg)
{
    reader_t *r = arg;
    void *val;
    size_t len;

    do {
        if (gx_store_get(r->st, GX_STORE_META, "anchor", 6, &val, &len) != 0 || len != 6 ||
            memcmp(val, "anchor", 6) != 0)
            r->errors++;
        free(val);
        r->reads++;
        sched_yield(); /* under valgrind, a thread that never blocks starves the others */
    } while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE) && r->reads < 10000000);
    return NULL;
}

START_TEST(test_map_grow)
{
    enum { VAL = 8 << 10, N = 200 };
    gx_store_opts_t opts;
    gx_store_stats_t stats;
    char dir[128], key[16], *val;
    gx_store_op_t op;
    gx_store_t *st;
    pthread_t th[2];
    reader_t r[2];
    waiter_t w;

    test_dir(dir, sizeof(dir), "grow");
    gx_store_opts_init(&opts);
    opts.map_size = 128 << 10;
    opts.map_size_max = 64 << 20;
    st = store_open_opts(dir, &opts);
    ck_assert_int_eq(put_wait(st, GX_STORE_META, "anchor", "anchor"), 0);
    for (int i = 0; i < 2; i++) {
        r[i] = (reader_t){st, 0, 0, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, reader_main, &r[i]), 0);
    }
    val = malloc(VAL);
    ck_assert_ptr_nonnull(val);
    waiter_init(&w);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "%d", i);
        memset(val, 'a' + i % 26, VAL);
        op = (gx_store_op_t){GX_STORE_JOBS, 0, key, strlen(key), val, VAL};
        ck_assert_int_eq(gx_store_submit(st, &op, 1, waiter_done, &w), 0);
    }
    waiter_wait(&w, N);
    for (int i = 0; i < 2; i++) {
        __atomic_store_n(&r[i].stop, 1, __ATOMIC_RELEASE);
        pthread_join(th[i], NULL);
        ck_assert_uint_eq(r[i].errors, 0);
        ck_assert_uint_gt(r[i].reads, 0);
    }
    ck_assert_uint_eq(w.failures, 0);
    gx_store_stats(st, &stats);
    ck_assert_uint_ge(stats.map_grows, 1);
    ck_assert_uint_gt(stats.map_size, 128 << 10);
    ck_assert_uint_le(stats.map_size, 64 << 20);
    gx_store_close(st);

    /* reopened with the small initial size: the data is all there */
    st = store_open_opts(dir, &opts);
    ck_assert_uint_eq(table_count(st, GX_STORE_JOBS), N);
    gx_store_close(st);
    waiter_deinit(&w);
    free(val);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Close and shutdown                                                       */

START_TEST(test_close_pending)
{
    enum { N = 1000 };
    char dir[128], key[16];
    gx_store_t *st;
    gx_store_op_t op;
    waiter_t w;

    test_dir(dir, sizeof(dir), "pending");
    st = store_open(dir);
    waiter_init(&w);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "%04d", i);
        op = op_put(GX_STORE_NODES, key, key);
        ck_assert_int_eq(gx_store_submit(st, &op, 1, waiter_done, &w), 0);
    }
    gx_store_close(st);
    ck_assert_uint_eq(w.calls, N);
    ck_assert_uint_eq(w.failures, 0);
    st = store_open(dir);
    ck_assert_uint_eq(table_count(st, GX_STORE_NODES), N);
    gx_store_close(st);
    waiter_deinit(&w);
}
END_TEST

START_TEST(test_submit_after_shutdown)
{
    char dir[128];
    gx_store_t *st;
    gx_store_op_t op = op_put(GX_STORE_NODES, "late", "1");
    waiter_t w;

    test_dir(dir, sizeof(dir), "shutdown");
    st = store_open(dir);
    ck_assert_int_eq(put_wait(st, GX_STORE_NODES, "early", "1"), 0);
    waiter_init(&w);
    gx_store_shutdown(st);
    ck_assert_int_eq(gx_store_submit(st, &op, 1, waiter_done, &w), GX_ESHUTDOWN);
    gx_store_shutdown(st);
    ck_assert_int_eq(gx_store_submit(st, &op, 1, NULL, NULL), GX_ESHUTDOWN);
    assert_val(st, GX_STORE_NODES, "early", "1"); /* reads still work */
    assert_val(st, GX_STORE_NODES, "late", NULL);
    gx_store_close(st);
    gx_store_close(NULL);
    gx_store_shutdown(NULL);
    ck_assert_uint_eq(w.calls, 0);
    waiter_deinit(&w);
}
END_TEST

enum { RACERS = 4, RACE_MAX = 1000000 };

/* One submitting thread racing the shutdown: every batch it submits is acked or refused. */
typedef struct {
    gx_store_t *st;
    int id;
    unsigned accepted;
    int refused;
    int *status; /* [RACE_MAX]: 1 submitting, 2 done(0), 3 done(error), -1 refused */
    pthread_barrier_t *start;
} racer_t;

static void
race_done(int status, void *arg)
{
    *(int *)arg = status == 0 ? 2 : 3;
}

static void *
racer_main(void *arg)
{
    racer_t *r = arg;
    char key[32];
    gx_store_op_t op;
    int rc = 0;

    pthread_barrier_wait(r->start);
    for (int i = 0; i < RACE_MAX && rc == 0; i++) {
        snprintf(key, sizeof(key), "r%d-%07d", r->id, i);
        op = op_put(GX_STORE_NODES, key, key);
        r->status[i] = 1;
        rc = gx_store_submit(r->st, &op, 1, race_done, &r->status[i]);
        if (rc == 0)
            __atomic_add_fetch(&r->accepted, 1, __ATOMIC_RELAXED);
        else
            r->status[i] = -1;
        if (i % 64 == 63)
            sched_yield(); /* let every racer run, under valgrind too */
        r->refused = rc;
    }
    return NULL;
}

/* Waits (at most about 5 s) until every racer has had 100 batches accepted. */
static void
racers_wait(racer_t *r)
{
    int i = 0;

    for (int ms = 0; i < RACERS && ms < 5000; ms++) {
        while (i < RACERS && __atomic_load_n(&r[i].accepted, __ATOMIC_RELAXED) >= 100)
            i++;
        usleep(1000);
    }
    ck_assert_int_eq(i, RACERS);
}

START_TEST(test_close_race)
{
    pthread_barrier_t start;
    racer_t r[RACERS];
    pthread_t th[RACERS];
    char dir[128], key[32];
    gx_store_t *st;
    unsigned acked = 0;

    test_dir(dir, sizeof(dir), "race");
    st = store_open(dir);
    pthread_barrier_init(&start, NULL, RACERS);
    for (int i = 0; i < RACERS; i++) {
        r[i] = (racer_t){st, i, 0, 0, calloc(RACE_MAX, sizeof(int)), &start};
        ck_assert_ptr_nonnull(r[i].status);
        ck_assert_int_eq(pthread_create(&th[i], NULL, racer_main, &r[i]), 0);
    }
    racers_wait(r);
    usleep(10 * 1000);
    gx_store_shutdown(st);
    for (int i = 0; i < RACERS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(r[i].refused == GX_ESHUTDOWN, "racer %d ended with %s", i,
                      gx_strerror(r[i].refused));
    }
    pthread_barrier_destroy(&start);
    gx_store_close(st);

    st = store_open(dir);
    for (int i = 0; i < RACERS; i++) {
        for (unsigned j = 0; j < r[i].accepted; j++) {
            if (r[i].status[j] != 2)
                ck_abort_msg("racer %d batch %u: state %d", i, j, r[i].status[j]);
            snprintf(key, sizeof(key), "r%d-%07u", i, j);
            if (!has_val(st, GX_STORE_NODES, key, key))
                ck_abort_msg("racer %d batch %u: acknowledged, not stored", i, j);
        }
        ck_assert_int_eq(r[i].status[r[i].accepted], -1);
        acked += r[i].accepted;
        free(r[i].status);
    }
    ck_assert_uint_eq(table_count(st, GX_STORE_NODES), acked);
    ck_assert_uint_gt(acked, 0);
    gx_store_close(st);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Input                                                                    */

START_TEST(test_invalid)
{
    char dir[128], key[GX_STORE_KEY_MAX + 1], err[128];
    gx_store_opts_t opts;
    gx_store_t *st, *bad;
    gx_store_op_t op;
    void *val = (void *)1;
    unsigned calls = 0;
    size_t len;
    waiter_t w;

    test_dir(dir, sizeof(dir), "invalid");
    st = store_open(dir);
    waiter_init(&w);
    memset(key, 'k', sizeof(key));
    op = op_put(GX_STORE_NODES, "k", "v");
    ck_assert_int_eq(gx_store_submit(st, &op, 0, waiter_done, &w), GX_EINVAL);
    ck_assert_int_eq(gx_store_submit(st, NULL, 1, waiter_done, &w), GX_EINVAL);
    ck_assert_int_eq(gx_store_submit(NULL, &op, 1, waiter_done, &w), GX_EINVAL);
    op.table = GX_STORE_TABLES;
    ck_assert_int_eq(gx_store_submit(st, &op, 1, waiter_done, &w), GX_EINVAL);
    op.table = (gx_store_table_t)-1;
    ck_assert_int_eq(gx_store_submit(st, &op, 1, waiter_done, &w), GX_EINVAL);
    op = (gx_store_op_t){GX_STORE_NODES, 0, NULL, 1, "v", 1};
    ck_assert_int_eq(gx_store_submit(st, &op, 1, waiter_done, &w), GX_EINVAL);
    op = (gx_store_op_t){GX_STORE_NODES, 1, key, 0, NULL, 0};
    ck_assert_int_eq(gx_store_submit(st, &op, 1, waiter_done, &w), GX_EINVAL);
    op = (gx_store_op_t){GX_STORE_NODES, 0, key, GX_STORE_KEY_MAX + 1, "v", 1};
    ck_assert_int_eq(gx_store_submit(st, &op, 1, waiter_done, &w), GX_EINVAL);
    op = (gx_store_op_t){GX_STORE_NODES, 0, key, 1, NULL, 5};
    ck_assert_int_eq(gx_store_submit(st, &op, 1, waiter_done, &w), GX_EINVAL);
    op = (gx_store_op_t){GX_STORE_NODES, 0, key, 1, "v", (size_t)GX_STORE_VAL_MAX + 1};
    ck_assert_int_eq(gx_store_submit(st, &op, 1, waiter_done, &w), GX_EINVAL);
    op = (gx_store_op_t){GX_STORE_NODES, 0, key, 1, "v", SIZE_MAX};
    ck_assert_int_eq(gx_store_submit(st, &op, 1, waiter_done, &w), GX_EINVAL);
    ck_assert_uint_eq(w.calls, 0);

    /* the limits themselves are fine; a delete's value is ignored */
    op = (gx_store_op_t){GX_STORE_NODES, 0, key, GX_STORE_KEY_MAX, "v", 1};
    ck_assert_int_eq(submit_wait(st, &op, 1), 0);
    op = (gx_store_op_t){GX_STORE_NODES, 1, key, GX_STORE_KEY_MAX, NULL, 5};
    ck_assert_int_eq(submit_wait(st, &op, 1), 0);

    ck_assert_int_eq(gx_store_get(st, GX_STORE_TABLES, "k", 1, &val, &len), GX_EINVAL);
    ck_assert_ptr_null(val);
    ck_assert_int_eq(gx_store_get(st, GX_STORE_NODES, "k", 0, &val, &len), GX_EINVAL);
    ck_assert_int_eq(gx_store_get(st, GX_STORE_NODES, key, sizeof(key), &val, &len), GX_EINVAL);
    ck_assert_int_eq(gx_store_get(st, GX_STORE_NODES, "nope", 4, &val, &len), GX_ENOTFOUND);
    ck_assert_int_eq(gx_store_scan(st, GX_STORE_TABLES, count_cb, &calls), GX_EINVAL);
    gx_store_close(st);
    waiter_deinit(&w);

    gx_store_opts_init(&opts);
    opts.max_batch = 0;
    ck_assert_int_eq(gx_store_open(dir, &opts, &bad, err, sizeof(err)), GX_EINVAL);
    ck_assert_ptr_null(bad);
    opts.max_batch = 1;
    opts.map_size = 0;
    ck_assert_int_eq(gx_store_open(dir, &opts, &bad, err, sizeof(err)), GX_EINVAL);
    ck_assert_int_eq(gx_store_open(NULL, NULL, &bad, err, sizeof(err)), GX_EINVAL);
}
END_TEST

START_TEST(test_bad_dir)
{
    char dir[128], err[256], path[160];
    gx_store_t *st = (gx_store_t *)1;
    FILE *f;

    test_dir(dir, sizeof(dir), "a-file");
    f = fopen(dir, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_int_eq(gx_store_open(dir, NULL, &st, err, sizeof(err)), GX_EIO);
    ck_assert_ptr_null(st);
    ck_assert_msg(strstr(err, dir) != NULL, "err: %s", err);
    snprintf(path, sizeof(path), "%s/no/such/dir", root);
    ck_assert_int_eq(gx_store_open(path, NULL, &st, err, sizeof(err)), GX_EIO);
    ck_assert_msg(strstr(err, "no/such") != NULL, "err: %s", err);
    ck_assert_int_eq(gx_store_open(path, NULL, &st, NULL, 0), GX_EIO);
}
END_TEST

START_TEST(test_enomem)
{
    char dir[128], err[256];
    gx_store_t *st = NULL;
    gx_store_op_t op = op_put(GX_STORE_NODES, "k", "v");
    waiter_t w;
    void *val;
    size_t len;

    test_dir(dir, sizeof(dir), "enomem");
    gx__store_fail_at = 1;
    ck_assert_int_eq(gx_store_open(dir, NULL, &st, err, sizeof(err)), GX_ENOMEM);
    ck_assert_ptr_null(st);
    st = store_open(dir);
    waiter_init(&w);
    gx__store_fail_at = 1;
    ck_assert_int_eq(gx_store_submit(st, &op, 1, waiter_done, &w), GX_ENOMEM);
    ck_assert_int_eq(gx__store_fail_at, 0);
    ck_assert_int_eq(submit_wait(st, &op, 1), 0);
    gx__store_fail_at = 1;
    ck_assert_int_eq(gx_store_get(st, GX_STORE_NODES, "k", 1, &val, &len), GX_ENOMEM);
    ck_assert_ptr_null(val);
    assert_val(st, GX_STORE_NODES, "k", "v");
    gx_store_close(st);
    ck_assert_uint_eq(w.calls, 0);
    waiter_deinit(&w);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Reopen, scan, schema                                                     */

typedef struct {
    char seen[8][8];
    int n, stop_at;
} scan_t;

static int
scan_cb(const void *key, size_t key_len, const void *val, size_t val_len, void *arg)
{
    scan_t *s = arg;

    if (s->n < 8 && key_len < 8) {
        memcpy(s->seen[s->n], key, key_len);
        s->seen[s->n][key_len] = '\0';
    }
    return ++s->n == s->stop_at ? 42 : 0;
}

START_TEST(test_reopen_scan)
{
    static const char *in[] = {"b", "ab", "a", "ba", "c"};
    static const char *sorted[] = {"a", "ab", "b", "ba", "c"};
    char dir[128];
    gx_store_t *st;
    scan_t s = {.stop_at = -1};

    test_dir(dir, sizeof(dir), "reopen");
    st = store_open(dir);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(put_wait(st, GX_STORE_POOLS, in[i], in[i]), 0);
    gx_store_close(st);

    st = store_open(dir);
    for (int i = 0; i < 5; i++)
        assert_val(st, GX_STORE_POOLS, in[i], in[i]);
    ck_assert_int_eq(gx_store_scan(st, GX_STORE_POOLS, scan_cb, &s), 0);
    ck_assert_int_eq(s.n, 5);
    for (int i = 0; i < 5; i++)
        ck_assert_str_eq(s.seen[i], sorted[i]);
    s = (scan_t){.stop_at = 2};
    ck_assert_int_eq(gx_store_scan(st, GX_STORE_POOLS, scan_cb, &s), 42);
    ck_assert_int_eq(s.n, 2);
    ck_assert_uint_eq(table_count(st, GX_STORE_KEYS), 0);
    gx_store_close(st);
}
END_TEST

/* gx_store_scan_join(): "key table-value|side-value" per call, "-" for absent */
typedef struct {
    char got[8][32];
    int n, stop_at;
} join_t;

static void
join_val(char *p, size_t room, const void *v, size_t len)
{
    if (v == NULL)
        snprintf(p, room, "-");
    else
        snprintf(p, room, "'%.*s'", (int)len, (const char *)v);
}

static int
join_cb(const void *key, size_t key_len, const void *val, size_t val_len, const void *side,
        size_t side_len, void *arg)
{
    join_t *j = arg;
    char a[12], b[12];

    ck_assert_int_lt(j->n, 8);
    join_val(a, sizeof(a), val, val_len);
    join_val(b, sizeof(b), side, side_len);
    snprintf(j->got[j->n], sizeof(j->got[0]), "%.*s %s|%s", (int)key_len, (const char *)key, a,
             b);
    return ++j->n == j->stop_at ? 42 : 0;
}

START_TEST(test_scan_join)
{
    static const char *want[] = {"a '1'|'x'", "ab '2'|-", "b -|'y'", "c '3'|-",
                                 "d ''|'z'", "e -|'w'"};
    gx_store_op_t ops[8];
    char dir[128];
    gx_store_t *st;
    join_t j = {.stop_at = -1};

    test_dir(dir, sizeof(dir), "join");
    st = store_open(dir);
    ck_assert_int_eq(gx_store_scan_join(st, GX_STORE_NODES, GX_STORE_SEEN, join_cb, &j), 0);
    ck_assert_int_eq(j.n, 0);
    ops[0] = op_put(GX_STORE_NODES, "c", "3");
    ops[1] = op_put(GX_STORE_NODES, "ab", "2");
    ops[2] = op_put(GX_STORE_NODES, "a", "1");
    ops[3] = op_put(GX_STORE_NODES, "d", "");
    ops[4] = op_put(GX_STORE_SEEN, "e", "w");
    ops[5] = op_put(GX_STORE_SEEN, "d", "z");
    ops[6] = op_put(GX_STORE_SEEN, "b", "y");
    ops[7] = op_put(GX_STORE_SEEN, "a", "x");
    ck_assert_int_eq(submit_wait(st, ops, 8), 0);

    ck_assert_int_eq(gx_store_scan_join(st, GX_STORE_NODES, GX_STORE_SEEN, join_cb, &j), 0);
    ck_assert_int_eq(j.n, 6);
    for (int i = 0; i < 6; i++)
        ck_assert_str_eq(j.got[i], want[i]);
    /* the other way round, the roles swap */
    j = (join_t){.stop_at = -1};
    ck_assert_int_eq(gx_store_scan_join(st, GX_STORE_SEEN, GX_STORE_NODES, join_cb, &j), 0);
    ck_assert_int_eq(j.n, 6);
    ck_assert_str_eq(j.got[1], "ab -|'2'");
    ck_assert_str_eq(j.got[2], "b 'y'|-");
    /* fn stops it */
    j = (join_t){.stop_at = 3};
    ck_assert_int_eq(gx_store_scan_join(st, GX_STORE_NODES, GX_STORE_SEEN, join_cb, &j), 42);
    ck_assert_int_eq(j.n, 3);
    /* an empty side table: the records alone */
    j = (join_t){.stop_at = -1};
    ck_assert_int_eq(gx_store_scan_join(st, GX_STORE_NODES, GX_STORE_KEYS, join_cb, &j), 0);
    ck_assert_int_eq(j.n, 4);
    ck_assert_str_eq(j.got[3], "d ''|-");
    /* an empty table: the side's records alone */
    j = (join_t){.stop_at = -1};
    ck_assert_int_eq(gx_store_scan_join(st, GX_STORE_KEYS, GX_STORE_SEEN, join_cb, &j), 0);
    ck_assert_int_eq(j.n, 4);
    ck_assert_str_eq(j.got[0], "a -|'x'");
    ck_assert_int_eq(gx_store_scan_join(st, GX_STORE_NODES, GX_STORE_NODES, join_cb, &j),
                     GX_EINVAL);
    ck_assert_int_eq(gx_store_scan_join(st, GX_STORE_NODES, GX_STORE_TABLES, join_cb, &j),
                     GX_EINVAL);
    ck_assert_int_eq(gx_store_scan_join(st, GX_STORE_NODES, GX_STORE_SEEN, NULL, &j), GX_EINVAL);
    gx_store_close(st);
}
END_TEST

/* GX_STORE_DEL_PREFIX: every key starting with the prefix, in the batch's order */
START_TEST(test_delete_prefix)
{
    static const char *keys[] = {"a", "a\0x", "a\0y", "ab\0z", "b\0x", "a\0", "a\0\0"};
    static const size_t lens[] = {1, 3, 3, 4, 3, 2, 3};
    gx_store_op_t ops[9];
    char dir[128];
    gx_store_t *st;
    void *val;
    size_t len;

    test_dir(dir, sizeof(dir), "prefix");
    st = store_open(dir);
    for (int i = 0; i < 7; i++)
        ops[i] = (gx_store_op_t){GX_STORE_NODES, GX_STORE_PUT, keys[i], lens[i], "v", 1};
    ops[7] = (gx_store_op_t){GX_STORE_SEEN, GX_STORE_PUT, "a\0x", 3, "s", 1};
    ck_assert_int_eq(submit_wait(st, ops, 8), 0);

    /* "a\0": its own key, "a\0x", "a\0y", "a\0\0" go; "a", "ab\0z", "b\0x" and the
     * other table stay; a put after it in the batch stays too */
    ops[0] = (gx_store_op_t){GX_STORE_NODES, GX_STORE_DEL_PREFIX, "a\0", 2, NULL, 0};
    ops[1] = (gx_store_op_t){GX_STORE_NODES, GX_STORE_PUT, "a\0new", 5, "n", 1};
    ck_assert_int_eq(submit_wait(st, ops, 2), 0);
    ck_assert_uint_eq(table_count(st, GX_STORE_NODES), 4);
    for (int i = 0; i < 7; i++) {
        int gone = i == 1 || i == 2 || i == 5 || i == 6;
        val = NULL;
        ck_assert_int_eq(gx_store_get(st, GX_STORE_NODES, keys[i], lens[i], &val, &len),
                         gone ? GX_ENOTFOUND : 0);
        free(val);
    }
    ck_assert_int_eq(gx_store_get(st, GX_STORE_NODES, "a\0new", 5, &val, &len), 0);
    free(val);
    ck_assert_uint_eq(table_count(st, GX_STORE_SEEN), 1);

    /* prefixes past the last key and before the first, and one that takes a whole table */
    ops[0] = (gx_store_op_t){GX_STORE_NODES, GX_STORE_DEL_PREFIX, "zz", 2, NULL, 0};
    ops[1] = (gx_store_op_t){GX_STORE_NODES, GX_STORE_DEL_PREFIX, "0", 1, NULL, 0};
    ops[2] = (gx_store_op_t){GX_STORE_SEEN, GX_STORE_DEL_PREFIX, "a", 1, NULL, 0};
    ck_assert_int_eq(submit_wait(st, ops, 3), 0);
    ck_assert_uint_eq(table_count(st, GX_STORE_NODES), 4);
    ck_assert_uint_eq(table_count(st, GX_STORE_SEEN), 0);
    ops[0] = (gx_store_op_t){GX_STORE_NODES, GX_STORE_DEL_PREFIX, "b", 1, NULL, 0};
    ops[1] = (gx_store_op_t){GX_STORE_NODES, GX_STORE_DEL_PREFIX, "a", 1, NULL, 0};
    ck_assert_int_eq(submit_wait(st, ops, 2), 0);
    ck_assert_uint_eq(table_count(st, GX_STORE_NODES), 0);

    /* an unknown kind of op is refused, and nothing of its batch is done */
    ops[0] = (gx_store_op_t){GX_STORE_NODES, GX_STORE_PUT, "k", 1, "v", 1};
    ops[1] = (gx_store_op_t){GX_STORE_NODES, 3, "k", 1, NULL, 0};
    ck_assert_int_eq(gx_store_submit(st, ops, 2, NULL, NULL), GX_EINVAL);
    ops[1].del = -1;
    ck_assert_int_eq(gx_store_submit(st, ops, 2, NULL, NULL), GX_EINVAL);
    ck_assert_uint_eq(table_count(st, GX_STORE_NODES), 0);
    gx_store_close(st);
}
END_TEST

/* Writes META "schema" directly with LMDB, as another build would have. */
static void
schema_poke(const char *dir, const char *version)
{
    MDB_val k = {6, "schema"}, v = {strlen(version), (void *)version};
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;

    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

START_TEST(test_schema)
{
    char dir[128], err[256];
    gx_store_t *st;

    test_dir(dir, sizeof(dir), "schema");
    st = store_open(dir);
    assert_val(st, GX_STORE_META, "schema", "1");
    ck_assert_int_eq(put_wait(st, GX_STORE_NODES, "n", "1"), 0);
    gx_store_close(st);

    schema_poke(dir, "2");
    st = (gx_store_t *)1;
    ck_assert_int_eq(gx_store_open(dir, NULL, &st, err, sizeof(err)), GX_EIO);
    ck_assert_ptr_null(st);
    ck_assert_msg(strstr(err, "schema version \"2\"") != NULL, "err: %s", err);
    schema_poke(dir, "x");
    ck_assert_int_eq(gx_store_open(dir, NULL, &st, err, sizeof(err)), GX_EIO);
    ck_assert_msg(strstr(err, "schema") != NULL, "err: %s", err);

    /* the refusals changed nothing */
    schema_poke(dir, "1");
    st = store_open(dir);
    assert_val(st, GX_STORE_NODES, "n", "1");
    gx_store_close(st);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Other processes: stale readers, crashes                                  */

/* Tells the parent (one byte on @p fd), then never returns from the read transaction. */
static int
hold_cb(const void *key, size_t key_len, const void *val, size_t val_len, void *arg)
{
    if (write(*(int *)arg, "r", 1) != 1)
        _exit(3);
    for (;;)
        pause();
    return 0;
}

/* Child: opens the store; with @p hold, stays inside a scan forever; else waits for EOF on in. */
static void
holder_child(const char *dir, int hold, int ready, int in)
{
    gx_store_t *st = NULL;
    char err[256], c;

    if (gx_store_open(dir, NULL, &st, err, sizeof(err)) != 0)
        _exit(2);
    if (hold)
        gx_store_scan(st, GX_STORE_NODES, hold_cb, &ready);
    if (write(ready, "o", 1) != 1)
        _exit(3);
    while (read(in, &c, 1) > 0) {
    }
    gx_store_close(st);
    _exit(0);
}

static pid_t
holder_start(const char *dir, int hold, int *in_w)
{
    int ready[2], in[2];
    pid_t pid;
    char c;

    ck_assert_int_eq(pipe(ready), 0);
    ck_assert_int_eq(pipe(in), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(ready[0]);
        close(in[1]);
        holder_child(dir, hold, ready[1], in[0]);
    }
    close(ready[1]);
    close(in[0]);
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    close(ready[0]);
    *in_w = in[1];
    return pid;
}

START_TEST(test_stale_reader)
{
    gx_store_stats_t stats;
    char dir[128];
    gx_store_t *st;
    int a_in, b_in, ws;
    pid_t a, b;

    test_dir(dir, sizeof(dir), "stale");
    st = store_open(dir);
    ck_assert_int_eq(put_wait(st, GX_STORE_NODES, "n", "1"), 0);
    gx_store_close(st);

    /* A keeps the environment open (so it is not reset), B dies inside a read */
    a = holder_start(dir, 0, &a_in);
    b = holder_start(dir, 1, &b_in);
    kill(b, SIGKILL);
    ck_assert_int_eq(waitpid(b, &ws, 0), b);
    ck_assert(WIFSIGNALED(ws));
    close(b_in);

    st = store_open(dir);
    gx_store_stats(st, &stats);
    ck_assert_uint_eq(stats.readers_cleared, 1);
    assert_val(st, GX_STORE_NODES, "n", "1");
    ck_assert_int_eq(put_wait(st, GX_STORE_NODES, "m", "1"), 0);
    gx_store_close(st);

    close(a_in);
    ck_assert_int_eq(waitpid(a, &ws, 0), a);
    ck_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
}
END_TEST

enum { CRASH_INFLIGHT = 64 };

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned inflight;
    int fd;
} crash_t;

typedef struct {
    crash_t *c;
    uint32_t seq;
} crash_ack_t;

static void
crash_done(int status, void *arg)
{
    crash_ack_t *a = arg;
    crash_t *c = a->c;

    if (status != 0 || write(c->fd, &a->seq, sizeof(a->seq)) != sizeof(a->seq))
        _exit(5);
    free(a);
    pthread_mutex_lock(&c->mu);
    c->inflight--;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Child: submits two-op batches forever, writing each acknowledged sequence to @p fd. */
static void
crash_child(const char *dir, int iter, int fd)
{
    crash_t c = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, fd};
    gx_store_t *st = NULL;
    char err[256], ka[32], kb[32];
    gx_store_op_t ops[2];
    crash_ack_t *a;

    if (gx_store_open(dir, NULL, &st, err, sizeof(err)) != 0)
        _exit(2);
    for (uint32_t seq = 0; seq < 10000000; seq++) {
        pthread_mutex_lock(&c.mu);
        while (c.inflight >= CRASH_INFLIGHT)
            pthread_cond_wait(&c.cv, &c.mu);
        c.inflight++;
        pthread_mutex_unlock(&c.mu);
        snprintf(ka, sizeof(ka), "%d-%08u-a", iter, seq);
        snprintf(kb, sizeof(kb), "%d-%08u-b", iter, seq);
        ops[0] = op_put(GX_STORE_NODES, ka, "a");
        ops[1] = op_put(GX_STORE_NODES, kb, "b");
        a = malloc(sizeof(*a));
        if (a == NULL)
            _exit(3);
        *a = (crash_ack_t){&c, seq};
        if (gx_store_submit(st, ops, 2, crash_done, a) != 0)
            _exit(4);
    }
    _exit(0);
}

typedef struct {
    int iter;
    uint8_t *a, *b; /* [seq]: a key of that batch is stored */
    uint32_t max;
    int bad;
} crash_scan_t;

static int
crash_scan_cb(const void *key, size_t key_len, const void *val, size_t val_len, void *arg)
{
    crash_scan_t *s = arg;
    char k[32];
    unsigned seq;
    int iter;
    char side;

    if (key_len >= sizeof(k)) {
        s->bad++;
        return 0;
    }
    memcpy(k, key, key_len);
    k[key_len] = '\0';
    if (sscanf(k, "%d-%u-%c", &iter, &seq, &side) != 3 || seq >= s->max) {
        s->bad++;
        return 0;
    }
    if (iter == s->iter)
        (side == 'a' ? s->a : s->b)[seq] = 1;
    return 0;
}

/* One crash: @p delay_ms of writing, SIGKILL, then every acked batch is whole on disk. */
static unsigned
crash_once(const char *dir, int iter, unsigned delay_ms)
{
    enum { MAXSEQ = 1 << 20 };
    crash_scan_t s = {iter, calloc(MAXSEQ, 1), calloc(MAXSEQ, 1), MAXSEQ, 0};
    unsigned acked = 0, whole = 0;
    gx_store_t *st;
    uint32_t seq;
    int fds[2], ws;
    pid_t pid;

    ck_assert(s.a != NULL && s.b != NULL);
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        crash_child(dir, iter, fds[1]);
    }
    close(fds[1]);
    usleep(delay_ms * 1000);
    kill(pid, SIGKILL);
    ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
    ck_assert_msg(WIFSIGNALED(ws), "child exited %d before the kill", WEXITSTATUS(ws));

    st = store_open(dir);
    ck_assert_int_eq(gx_store_scan(st, GX_STORE_NODES, crash_scan_cb, &s), 0);
    ck_assert_int_eq(s.bad, 0);
    while (read(fds[0], &seq, sizeof(seq)) == sizeof(seq)) {
        if (seq >= MAXSEQ || !s.a[seq] || !s.b[seq])
            ck_abort_msg("iteration %d: acknowledged batch %u lost", iter, seq);
        acked++;
    }
    close(fds[0]);
    for (uint32_t i = 0; i < MAXSEQ; i++) {
        if (s.a[i] != s.b[i]) /* not ck_assert: each one costs a write to Check's pipe */
            ck_abort_msg("iteration %d: batch %u half-written", iter, i);
        whole += s.a[i];
    }
    ck_assert_uint_ge(whole, acked);
    gx_store_close(st);
    free(s.a);
    free(s.b);
    return acked;
}

START_TEST(test_crash_durability)
{
    unsigned seed = (unsigned)gx_now_ns(), acked = 0;
    char dir[128];

    test_dir(dir, sizeof(dir), "crash");
    srand(seed);
    for (int iter = 0; iter < 5; iter++)
        acked += crash_once(dir, iter, 50 + (unsigned)rand() % 350);
    ck_assert_msg(acked > 0, "no batch acknowledged before the kills (seed %u)", seed);
}
END_TEST

/* ------------------------------------------------------------------------ */

static int
rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    return remove(path);
}

static Suite *
store_suite(void)
{
    Suite *s = suite_create("gx_store");
    TCase *tc = tcase_create("store");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_put_get_delete);
    tcase_add_test(tc, test_batch_atomic);
    tcase_add_test(tc, test_order);
    tcase_add_test(tc, test_done_durable);
    tcase_add_test(tc, test_done_reentrant);
    tcase_add_test(tc, test_done_bracket);
    tcase_add_test(tc, test_concurrent_group_commit);
    tcase_add_test(tc, test_max_batch);
    tcase_add_test(tc, test_map_full);
    tcase_add_test(tc, test_map_grow);
    tcase_add_test(tc, test_close_pending);
    tcase_add_test(tc, test_submit_after_shutdown);
    tcase_add_test(tc, test_close_race);
    tcase_add_test(tc, test_invalid);
    tcase_add_test(tc, test_bad_dir);
    tcase_add_test(tc, test_enomem);
    tcase_add_test(tc, test_reopen_scan);
    tcase_add_test(tc, test_scan_join);
    tcase_add_test(tc, test_delete_prefix);
    tcase_add_test(tc, test_schema);
    tcase_add_test(tc, test_stale_reader);
    tcase_add_test(tc, test_crash_durability);
    suite_add_tcase(s, tc);
    return s;
}

int
main(int argc, char **argv)
{
    SRunner *sr;
    int failed;

    gx_log_set_level(GX_LOG_ERROR);
    if (argc == 4 && strcmp(argv[1], "--read") == 0)
        return durable_read(argv[2], argv[3]);
    if (realpath(argv[0], self) == NULL) {
        perror(argv[0]);
        return 1;
    }
    snprintf(root, sizeof(root), "/tmp/gx-store-test-XXXXXX");
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed == 0 ? 0 : 1;
}
