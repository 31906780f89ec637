/* SPDX-License-Identifier: MIT */
/*
 * The store on LMDB: one environment in the data directory (MDB_NOTLS, every
 * commit synced), one named database per table, and a single writer thread
 * that group-commits the batches submitted from any thread.
 *
 * Queue.  gx_store_submit() copies a batch into one heap record and appends
 * it to a wait-free MPSC queue (liburcu's wfcqueue; it needs no RCU flavour,
 * so it is included here directly rather than through core/gx_urcu.h).  The
 * producer that finds the queue empty writes the writer's eventfd; the writer
 * reads it (sleeps) only when it found the queue empty, so a wake-up is never
 * lost (the eventfd counts) and producers make one system call per group at
 * most, whoever finds the queue empty after the writer took it.
 *
 * Batching.  The writer takes what is queued (at most max_batch batches),
 * applies it in one write transaction and commits; while that commit syncs,
 * new batches pile up and make the next group.  The first batch after an idle
 * spell is committed at once.  After the commit it calls every done(0).
 *
 * Atomicity per batch.  Submit validates every operation (table, key and value
 * lengths), so a put or delete can only fail for a reason of the environment
 * (map full, I/O, out of memory, transaction too large).  Any such error
 * aborts the whole transaction: nothing half-written.  MDB_MAP_FULL grows the
 * map (doubling, up to map_size_max) and retries the group; past the maximum
 * every batch of the group fails with GX_EMAPFULL.  Other errors retry the
 * batches of the group one transaction each, so only the failing batch fails.
 * (Nested transactions would cost two large allocations and a dirty-list
 * merge per batch; validating first makes them unnecessary.)
 *
 * Resizing.  mdb_env_set_mapsize() remaps the file and needs every transaction
 * of this process finished.  The writer has none open when it grows the map,
 * and readers (gx_store_get, gx_store_scan) hold resize_lock as readers for
 * the life of their read transaction while the resize holds it as writer.  The
 * lock prefers the writer so that a stream of reads cannot starve a resize.
 * The submit path never touches it.
 *
 * Shutdown.  `closing` stops new submits; `inflight` counts submits from just
 * before their check of `closing` to the end of their enqueue, and the writer exits
 * only when closing is set, inflight is 0 and the queue is empty, so a racing
 * submit is either refused (GX_ESHUTDOWN) or committed.
 *
 * What the records mean is the registry's business; this file only moves bytes.
 */
#include "config.h"

#include "store/gx_store.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <lmdb.h>
#include <urcu/wfcqueue.h>

#include "util/gx_clock.h"
#include "util/gx_error.h"
#include "util/gx_log.h"

#define GX_STORE_MAP_SIZE (64ull << 20)
#define GX_STORE_MAP_SIZE_MAX (16ull << 30)
#define GX_STORE_DISK_LOW (1ull << 20) /* free bytes under which a failed write means "disk full" */
#define GX_STORE_MAX_BATCH 4096
/* Concurrent gets and scans (one slot each), across every process using the directory. */
#define GX_STORE_MAX_READERS 256
#define GX_STORE_SCHEMA 1
#define GX_STORE_SCHEMA_KEY "schema"

static const char *const table_names[GX_STORE_TABLES] = {
    [GX_STORE_META] = "meta", [GX_STORE_POOLS] = "pools", [GX_STORE_NODES] = "nodes",
    [GX_STORE_KEYS] = "keys", [GX_STORE_JOBS] = "jobs", [GX_STORE_SEEN] = "seen",
};

/* One submitted batch: its operations, then the bytes of their keys and values. */
typedef struct batch_s {
    struct cds_wfcq_node node;
    struct batch_s *next; /* in the writer's current group */
    gx_store_done_fn done;
    void *arg;
    size_t n;
    gx_store_op_t ops[];
} batch_t;

struct gx_store_s {
    MDB_env *env;
    MDB_dbi dbi[GX_STORE_TABLES];
    unsigned max_batch;
    void (*done_begin)(void), (*done_end)(void);
    uint64_t map_size_max;
    pthread_rwlock_t resize_lock;
    int broken; /* the map could not be remapped: LMDB error; set under resize_lock */
    int efd;    /* eventfd: producers wake the writer */
    pthread_t writer;
    int writer_running; /* main thread only */

    struct __cds_wfcq_head qhead; /* the writer's end */
    struct cds_wfcq_tail qtail;   /* the producers' end */
    int closing;                  /* atomic */
    uint64_t inflight;            /* atomic: submits past their closing check */

    gx_store_stats_t stats; /* atomic fields */
};

__thread long gx__store_fail_at;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static void *
store_alloc(size_t size)
{
    if (gx__store_fail_at > 0 && --gx__store_fail_at == 0)
        return NULL;
    return malloc(size);
}

static int
store_err(int mdb_rc)
{
    switch (mdb_rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_MAP_FULL:
        return GX_EMAPFULL;
    case MDB_NOTFOUND:
        return GX_ENOTFOUND;
    case ENOMEM:
        return GX_ENOMEM;
    default:
        return GX_EIO;
    }
}

static void
stat_add(uint64_t *ctr, uint64_t n)
{
    __atomic_add_fetch(ctr, n, __ATOMIC_RELAXED);
}

static void
stat_set(uint64_t *ctr, uint64_t v)
{
    __atomic_store_n(ctr, v, __ATOMIC_RELAXED);
}

static int
table_ok(gx_store_table_t table)
{
    return (unsigned)table < GX_STORE_TABLES;
}

static int
key_ok(const void *key, size_t key_len)
{
    return key != NULL && key_len >= 1 && key_len <= GX_STORE_KEY_MAX;
}

static int
op_ok(const gx_store_op_t *op)
{
    if (!table_ok(op->table) || !key_ok(op->key, op->key_len) || op->del < GX_STORE_PUT ||
        op->del > GX_STORE_DEL_PREFIX)
        return 0;
    if (op->del != GX_STORE_PUT)
        return 1;
    return op->val_len <= GX_STORE_VAL_MAX && (op->val != NULL || op->val_len == 0);
}

/* ------------------------------------------------------------------------ */
/* Batches                                                                  */

/* Validates @p ops and sums the size of their copy. */
static int
batch_size(const gx_store_op_t *ops, size_t n, size_t *size)
{
    size_t total, len;

    if (ops == NULL || n == 0 || n > (SIZE_MAX - sizeof(batch_t)) / sizeof(ops[0]))
        return GX_EINVAL;
    total = sizeof(batch_t) + n * sizeof(ops[0]);
    for (size_t i = 0; i < n; i++) {
        if (!op_ok(&ops[i]))
            return GX_EINVAL;
        len = ops[i].key_len + (ops[i].del ? 0 : ops[i].val_len);
        if (len > SIZE_MAX - total)
            return GX_EINVAL;
        total += len;
    }
    *size = total;
    return 0;
}

static unsigned char *
bytes_copy(unsigned char *p, const void *src, size_t len, const void **dst)
{
    *dst = p;
    if (len > 0)
        memcpy(p, src, len);
    return p + len;
}

/* A heap copy of @p ops that the queue owns until done. */
static int
batch_new(const gx_store_op_t *ops, size_t n, batch_t **out)
{
    batch_t *b;
    unsigned char *p;
    size_t size;
    int rc;

    rc = batch_size(ops, n, &size);
    if (rc != 0)
        return rc;
    b = store_alloc(size);
    if (b == NULL)
        return GX_ENOMEM;
    cds_wfcq_node_init(&b->node);
    b->next = NULL;
    b->n = n;
    p = (unsigned char *)&b->ops[n];
    for (size_t i = 0; i < n; i++) {
        gx_store_op_t *op = &b->ops[i];

        op->table = ops[i].table;
        op->del = ops[i].del;
        op->key_len = ops[i].key_len;
        op->val_len = op->del ? 0 : ops[i].val_len;
        p = bytes_copy(p, ops[i].key, op->key_len, &op->key);
        p = bytes_copy(p, ops[i].val, op->val_len, &op->val);
    }
    *out = b;
    return 0;
}

/* Counts the batch, tells its owner and frees it. */
static void
batch_finish(gx_store_t *st, batch_t *b, int status)
{
    stat_add(status == 0 ? &st->stats.batches : &st->stats.failed, 1);
    if (b->done != NULL)
        b->done(status, b->arg);
    free(b);
}

static void
group_finish(gx_store_t *st, batch_t *group, int status)
{
    batch_t *next;

    for (batch_t *b = group; b != NULL; b = next) {
        next = b->next;
        batch_finish(st, b, status);
    }
}

static void
done_begin(const gx_store_t *st)
{
    if (st->done_begin != NULL)
        st->done_begin();
}

static void
done_end(const gx_store_t *st)
{
    if (st->done_end != NULL)
        st->done_end();
}

/* ------------------------------------------------------------------------ */
/* The map                                                                  */

/* Doubles the map, up to map_size_max.  No transaction of ours is open. */
static int
map_grow(gx_store_t *st)
{
    uint64_t cur = __atomic_load_n(&st->stats.map_size, __ATOMIC_RELAXED), next;
    int rc;

    if (cur >= st->map_size_max)
        return GX_EMAPFULL;
    next = cur > st->map_size_max / 2 ? st->map_size_max : cur * 2;
    pthread_rwlock_wrlock(&st->resize_lock);
    rc = mdb_env_set_mapsize(st->env, next);
    if (rc != 0)
        st->broken = rc;
    pthread_rwlock_unlock(&st->resize_lock);
    if (rc != 0) {
        gx_log(GX_LOG_ERROR, "store map resize failed from=%llu to=%llu reason=\"%s\"",
               (unsigned long long)cur, (unsigned long long)next, mdb_strerror(rc));
        return GX_EIO;
    }
    stat_set(&st->stats.map_size, next);
    stat_add(&st->stats.map_grows, 1);
    gx_log(GX_LOG_INFO, "store map grown from=%llu to=%llu", (unsigned long long)cur,
           (unsigned long long)next);
    return 0;
}

/* Another process grew the map: take its size (LMDB's MDB_MAP_RESIZED). */
static int
map_adopt(gx_store_t *st)
{
    MDB_envinfo info;
    int rc;

    pthread_rwlock_wrlock(&st->resize_lock);
    rc = mdb_env_set_mapsize(st->env, 0);
    if (rc != 0)
        st->broken = rc;
    pthread_rwlock_unlock(&st->resize_lock);
    if (rc != 0)
        return rc;
    mdb_env_info(st->env, &info);
    stat_set(&st->stats.map_size, info.me_mapsize);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                  */

/* deletes every key of @p dbi that starts with @p prefix: each lookup starts afresh */
static int
del_prefix(MDB_txn *txn, MDB_dbi dbi, const MDB_val *prefix)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, dbi, &cur);

    while (rc == 0) {
        k = *prefix;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc != 0 || k.mv_size < prefix->mv_size ||
            memcmp(k.mv_data, prefix->mv_data, prefix->mv_size) != 0)
            break;
        rc = mdb_cursor_del(cur, 0);
    }
    if (cur != NULL)
        mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
batch_apply(gx_store_t *st, MDB_txn *txn, const batch_t *b)
{
    MDB_val k, v;
    int rc = 0;

    for (size_t i = 0; i < b->n && rc == 0; i++) {
        const gx_store_op_t *op = &b->ops[i];

        k.mv_data = (void *)op->key;
        k.mv_size = op->key_len;
        if (op->del == GX_STORE_DEL_PREFIX) {
            rc = del_prefix(txn, st->dbi[op->table], &k);
        } else if (op->del) {
            rc = mdb_del(txn, st->dbi[op->table], &k, NULL);
            if (rc == MDB_NOTFOUND)
                rc = 0;
        } else {
            v.mv_data = (void *)op->val;
            v.mv_size = op->val_len;
            rc = mdb_put(txn, st->dbi[op->table], &k, &v, 0);
        }
    }
    return rc;
}

static int
write_begin(gx_store_t *st, MDB_txn **txn)
{
    int rc = mdb_txn_begin(st->env, NULL, 0, txn);

    if (rc == MDB_MAP_RESIZED) {
        rc = map_adopt(st);
        if (rc == 0)
            rc = mdb_txn_begin(st->env, NULL, 0, txn);
    }
    return rc;
}

/*
 * One write transaction over @p count batches from @p group, committed and
 * synced.  Returns the LMDB code; on any error nothing of it is stored.
 */
static int
group_commit(gx_store_t *st, const batch_t *group, unsigned count)
{
    uint64_t t0 = gx_now_ns(), ns;
    MDB_txn *txn = NULL;
    int rc;

    rc = write_begin(st, &txn);
    if (rc != 0)
        return rc;
    for (const batch_t *b = group; b != NULL && count > 0 && rc == 0; b = b->next, count--)
        rc = batch_apply(st, txn, b);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0)
        return rc;
    ns = gx_now_ns() - t0;
    stat_add(&st->stats.commits, 1);
    if (ns > __atomic_load_n(&st->stats.commit_ns_max, __ATOMIC_RELAXED))
        stat_set(&st->stats.commit_ns_max, ns);
    return 0;
}

/*
 * Whether a commit that failed with @p rc failed because the data file's
 * disk is full.  LMDB turns a short write into EIO, and a write that runs
 * out of space is short, so the disk says: under GX_STORE_DISK_LOW left.
 */
static int
disk_full(gx_store_t *st, int rc)
{
    struct statvfs vfs;
    int fd;

    if (rc != EIO && rc != ENOSPC && rc != EDQUOT)
        return 0;
    if (mdb_env_get_fd(st->env, &fd) != 0 || fstatvfs(fd, &vfs) != 0)
        return rc == ENOSPC || rc == EDQUOT;
    return (uint64_t)vfs.f_bavail * vfs.f_frsize < GX_STORE_DISK_LOW;
}

/* group_commit(), growing the map as long as it is full and may grow. */
static int
group_commit_grow(gx_store_t *st, const batch_t *group, unsigned count)
{
    int rc;

    for (;;) {
        if (st->broken != 0)
            return GX_EIO;
        rc = group_commit(st, group, count);
        if (rc != MDB_MAP_FULL)
            break;
        rc = map_grow(st);
        if (rc != 0)
            return rc;
    }
    if (rc != 0 && disk_full(st, rc)) {
        /* a client's writes can get here: the log is rate-limited */
        stat_add(&st->stats.no_space, 1);
        gx_log_remote(GX_LOG_ERROR, "store commit failed: no space left on the data "
                      "directory's disk batches=%u reason=\"%s\"", count, mdb_strerror(rc));
        return GX_ENOSPC;
    }
    if (rc != 0)
        gx_log_remote(GX_LOG_ERROR, "store commit failed batches=%u reason=\"%s\"", count,
                      mdb_strerror(rc));
    return store_err(rc);
}

/* Commits the @p n batches of @p group and completes them. */
static void
writer_commit(gx_store_t *st, batch_t *group, unsigned n)
{
    batch_t *next;
    int rc;

    rc = group_commit_grow(st, group, n);
    if (rc == GX_EMAPFULL)
        gx_log(GX_LOG_WARN, "store map full batches=%u map_size=%llu map_size_max=%llu", n,
               (unsigned long long)__atomic_load_n(&st->stats.map_size, __ATOMIC_RELAXED),
               (unsigned long long)st->map_size_max);
    done_begin(st);
    /* a full map or disk fails every batch alike: no use trying them one by one */
    if (rc == 0 || rc == GX_EMAPFULL || rc == GX_ENOSPC || n == 1) {
        group_finish(st, group, rc);
        done_end(st);
        return;
    }
    /* isolate the batch that fails: the others must not fail with it */
    for (batch_t *b = group; b != NULL; b = next) {
        next = b->next;
        batch_finish(st, b, group_commit_grow(st, b, 1));
    }
    done_end(st);
}

/* ------------------------------------------------------------------------ */
/* The writer thread                                                        */

static void
writer_wake(gx_store_t *st)
{
    uint64_t one = 1;

    while (write(st->efd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
}

static void
writer_sleep(gx_store_t *st)
{
    uint64_t v;
    ssize_t r;

    do {
        r = read(st->efd, &v, sizeof(v));
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        gx_log(GX_LOG_ERROR, "store writer wait failed reason=\"%s\"", strerror(errno));
        sched_yield();
    }
}

/* Takes up to max_batch queued batches, in order, into @p group. */
static unsigned
writer_take(gx_store_t *st, batch_t **group)
{
    struct cds_wfcq_node *node;
    batch_t *b, **tail = group;
    unsigned n = 0;

    /*
     * A producer caught between its two enqueue steps makes the nonblocking
     * dequeue stop: what was taken goes now, the rest next time.
     */
    node = __cds_wfcq_dequeue_blocking(&st->qhead, &st->qtail);
    while (node != NULL && node != CDS_WFCQ_WOULDBLOCK) {
        b = caa_container_of(node, batch_t, node);
        b->next = NULL;
        *tail = b;
        tail = &b->next;
        if (++n == st->max_batch)
            break;
        node = __cds_wfcq_dequeue_nonblocking(&st->qhead, &st->qtail);
    }
    *tail = NULL;
    if (n > 0)
        __atomic_sub_fetch(&st->stats.queue_depth, n, __ATOMIC_RELAXED);
    return n;
}

/* When closing: 1 once no submit can add a batch any more and the queue is empty. */
static int
writer_done(gx_store_t *st)
{
    if (__atomic_load_n(&st->inflight, __ATOMIC_SEQ_CST) != 0) {
        sched_yield();
        return 0;
    }
    return cds_wfcq_empty(&st->qhead, &st->qtail);
}

static void *
writer_main(void *arg)
{
    gx_store_t *st = arg;
    batch_t *group;
    unsigned n;

    for (;;) {
        n = writer_take(st, &group);
        if (n > 0)
            writer_commit(st, group, n);
        else if (!__atomic_load_n(&st->closing, __ATOMIC_SEQ_CST))
            writer_sleep(st);
        else if (writer_done(st))
            break;
    }
    return NULL;
}

static int
writer_start(gx_store_t *st, char *err, size_t errlen)
{
    sigset_t all, old;
    int rc;

    st->efd = eventfd(0, EFD_CLOEXEC);
    if (st->efd < 0) {
        snprintf(err, errlen, "store eventfd: %s", strerror(errno));
        return GX_EIO;
    }
    /* signals belong to the main thread */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&st->writer, NULL, writer_main, st);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "store writer thread: %s", strerror(rc));
        return rc == ENOMEM || rc == EAGAIN ? GX_ENOMEM : GX_EIO;
    }
    gx_thread_name(st->writer, "gx-store");
    st->writer_running = 1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Opening                                                                  */

static int
dir_make(const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0700) == 0 || errno == EEXIST)
        return 0;
    snprintf(err, errlen, "cannot create store directory %s: %s", dir, strerror(errno));
    return GX_EIO;
}

static int
env_open(gx_store_t *st, const char *dir, uint64_t map_size, char *err, size_t errlen)
{
    MDB_envinfo info;
    int rc, dead = 0;

    rc = mdb_env_create(&st->env);
    if (rc != 0)
        goto fail;
    rc = mdb_env_set_maxdbs(st->env, GX_STORE_TABLES);
    if (rc == 0)
        rc = mdb_env_set_maxreaders(st->env, GX_STORE_MAX_READERS);
    if (rc == 0)
        rc = mdb_env_set_mapsize(st->env, map_size);
    if (rc == 0)
        rc = mdb_env_open(st->env, dir, MDB_NOTLS, 0600);
    if (rc == 0)
        rc = mdb_reader_check(st->env, &dead);
    if (rc != 0)
        goto fail;
    if (mdb_env_get_maxkeysize(st->env) < GX_STORE_KEY_MAX) {
        snprintf(err, errlen, "store %s: LMDB built with keys of at most %d bytes, need %d", dir,
                 mdb_env_get_maxkeysize(st->env), GX_STORE_KEY_MAX);
        return GX_EIO;
    }
    mdb_env_info(st->env, &info);
    stat_set(&st->stats.map_size, info.me_mapsize);
    stat_set(&st->stats.readers_cleared, (uint64_t)dead);
    gx_log(dead > 0 ? GX_LOG_WARN : GX_LOG_INFO,
           "store opened dir=%s map_size=%llu "
           "stale_readers_cleared=%d",
           dir, (unsigned long long)info.me_mapsize, dead);
    return 0;

fail:
    snprintf(err, errlen, "cannot open store %s: %s", dir, mdb_strerror(rc));
    return rc == ENOMEM ? GX_ENOMEM : GX_EIO;
}

/* The stored schema version must be ours; absent, it is written. */
static int
schema_check(MDB_txn *txn, MDB_dbi meta, char *err, size_t errlen)
{
    MDB_val k = {sizeof(GX_STORE_SCHEMA_KEY) - 1, GX_STORE_SCHEMA_KEY}, v;
    char have[16];
    int rc;

    rc = mdb_get(txn, meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        snprintf(have, sizeof(have), "%d", GX_STORE_SCHEMA);
        v.mv_data = have;
        v.mv_size = strlen(have);
        return mdb_put(txn, meta, &k, &v, 0);
    }
    if (rc != 0)
        return rc;
    snprintf(have, sizeof(have), "%d", GX_STORE_SCHEMA);
    if (v.mv_size == strlen(have) && memcmp(v.mv_data, have, v.mv_size) == 0)
        return 0;
    snprintf(err, errlen,
             "store schema version \"%.*s\" is not supported (this build reads "
             "version %d): refusing to open",
             v.mv_size > 20 ? 20 : (int)v.mv_size, (const char *)v.mv_data, GX_STORE_SCHEMA);
    return MDB_INCOMPATIBLE;
}

/* Opens (creates) the table databases and checks the schema, in one write transaction. */
static int
tables_open(gx_store_t *st, char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    int rc;

    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc != 0)
        goto fail;
    for (int t = 0; t < GX_STORE_TABLES && rc == 0; t++)
        rc = mdb_dbi_open(txn, table_names[t], MDB_CREATE, &st->dbi[t]);
    if (rc == 0)
        rc = schema_check(txn, st->dbi[GX_STORE_META], err, errlen);
    if (rc != 0) {
        mdb_txn_abort(txn);
        goto fail;
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0)
        goto fail;
    return 0;

fail:
    if (err[0] == '\0') /* schema_check() says why itself */
        snprintf(err, errlen, "cannot open store tables: %s", mdb_strerror(rc));
    return rc == ENOMEM ? GX_ENOMEM : GX_EIO;
}

/* @p size in whole OS pages (LMDB's unit for the map), rounded down or up. */
static uint64_t
page_round(uint64_t size, int up)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

    if (up && size <= UINT64_MAX - page)
        size += page - 1;
    return size / page * page;
}

static void
store_free(gx_store_t *st)
{
    if (st == NULL)
        return;
    if (st->env != NULL)
        mdb_env_close(st->env);
    if (st->efd >= 0)
        close(st->efd);
    pthread_rwlock_destroy(&st->resize_lock);
    free(st);
}

static gx_store_t *
store_new(const gx_store_opts_t *opts)
{
    pthread_rwlockattr_t attr;
    gx_store_t *st;
    int rc;

    st = store_alloc(sizeof(*st));
    if (st == NULL)
        return NULL;
    memset(st, 0, sizeof(*st));
    st->efd = -1;
    st->max_batch = opts->max_batch;
    st->done_begin = opts->done_begin;
    st->done_end = opts->done_end;
    st->map_size_max = page_round(opts->map_size_max, 0);
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    rc = pthread_rwlock_init(&st->resize_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (rc != 0) {
        free(st);
        return NULL;
    }
    __cds_wfcq_init(&st->qhead, &st->qtail);
    return st;
}

void
gx_store_opts_init(gx_store_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->map_size = GX_STORE_MAP_SIZE;
    o->map_size_max = GX_STORE_MAP_SIZE_MAX;
    o->max_batch = GX_STORE_MAX_BATCH;
}

int
gx_store_open(const char *dir, const gx_store_opts_t *opts, gx_store_t **out, char *err,
              size_t errlen)
{
    gx_store_opts_t defaults;
    gx_store_t *st = NULL;
    char dummy[1];
    uint64_t map_size;
    int rc;

    *out = NULL;
    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    if (opts == NULL) {
        gx_store_opts_init(&defaults);
        opts = &defaults;
    }
    if (dir == NULL || opts->map_size == 0 || opts->max_batch == 0) {
        snprintf(err, errlen, "store: a directory, map_size and max_batch are required");
        return GX_EINVAL;
    }
    rc = dir_make(dir, err, errlen);
    if (rc != 0)
        return rc;
    st = store_new(opts);
    if (st == NULL) {
        snprintf(err, errlen, "store: out of memory");
        return GX_ENOMEM;
    }
    rc = env_open(st, dir, page_round(opts->map_size, 1), err, errlen);
    if (rc == 0)
        rc = tables_open(st, err, errlen);
    if (rc == 0) {
        /* the data already stored may have made the map larger than asked */
        map_size = __atomic_load_n(&st->stats.map_size, __ATOMIC_RELAXED);
        if (st->map_size_max < map_size)
            st->map_size_max = map_size;
        rc = writer_start(st, err, errlen);
    }
    if (rc != 0) {
        store_free(st);
        return rc;
    }
    *out = st;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Submitting, reading, closing                                             */

int
gx_store_submit(gx_store_t *st, const gx_store_op_t *ops, size_t n, gx_store_done_fn done,
                void *arg)
{
    batch_t *b;
    int rc;

    if (st == NULL)
        return GX_EINVAL;
    rc = batch_new(ops, n, &b);
    if (rc != 0)
        return rc;
    b->done = done;
    b->arg = arg;
    /* pairs with the writer's closing-then-inflight check: see the file comment */
    __atomic_add_fetch(&st->inflight, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&st->closing, __ATOMIC_SEQ_CST)) {
        __atomic_sub_fetch(&st->inflight, 1, __ATOMIC_SEQ_CST);
        free(b);
        return GX_ESHUTDOWN;
    }
    stat_add(&st->stats.queue_depth, 1);
    if (!cds_wfcq_enqueue(&st->qhead, &st->qtail, &b->node))
        writer_wake(st);
    __atomic_sub_fetch(&st->inflight, 1, __ATOMIC_SEQ_CST);
    return 0;
}

/* A read transaction, with resize_lock held as reader until read_end(). */
static int
read_begin(gx_store_t *st, MDB_txn **txn)
{
    int rc;

    pthread_rwlock_rdlock(&st->resize_lock);
    rc = st->broken != 0 ? st->broken : mdb_txn_begin(st->env, NULL, MDB_RDONLY, txn);
    if (rc != 0) {
        pthread_rwlock_unlock(&st->resize_lock);
        gx_log(GX_LOG_ERROR, "store read failed reason=\"%s\"", mdb_strerror(rc));
        return store_err(rc) == GX_ENOMEM ? GX_ENOMEM : GX_EIO;
    }
    return 0;
}

static void
read_end(gx_store_t *st, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&st->resize_lock);
}

int
gx_store_get(gx_store_t *st, gx_store_table_t table, const void *key, size_t key_len, void **val,
             size_t *val_len)
{
    MDB_val k = {key_len, (void *)key}, v;
    MDB_txn *txn = NULL;
    void *copy;
    int rc;

    *val = NULL;
    *val_len = 0;
    if (!table_ok(table) || !key_ok(key, key_len))
        return GX_EINVAL;
    rc = read_begin(st, &txn);
    if (rc != 0)
        return rc;
    rc = mdb_get(txn, st->dbi[table], &k, &v);
    if (rc != 0) {
        rc = rc == MDB_NOTFOUND ? GX_ENOTFOUND : GX_EIO;
        goto out;
    }
    copy = store_alloc(v.mv_size > 0 ? v.mv_size : 1);
    if (copy == NULL) {
        rc = GX_ENOMEM;
        goto out;
    }
    memcpy(copy, v.mv_data, v.mv_size);
    *val = copy;
    *val_len = v.mv_size;
out:
    read_end(st, txn);
    return rc;
}

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, status;
} sync_wait_t;

static void
sync_done(int status, void *arg)
{
    sync_wait_t *s = arg;

    pthread_mutex_lock(&s->lock);
    s->status = status;
    s->done = 1;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

int
gx_store_submit_sync(gx_store_t *st, const gx_store_op_t *ops, size_t n)
{
    sync_wait_t s = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    int rv = gx_store_submit(st, ops, n, sync_done, &s);

    if (rv != 0)
        return rv;
    pthread_mutex_lock(&s.lock);
    while (!s.done)
        pthread_cond_wait(&s.cond, &s.lock);
    pthread_mutex_unlock(&s.lock);
    return s.status;
}

int
gx_store_count(gx_store_t *st, gx_store_table_t table, size_t *out)
{
    MDB_txn *txn = NULL;
    MDB_stat ms;
    int rc;

    *out = 0;
    if (!table_ok(table))
        return GX_EINVAL;
    rc = read_begin(st, &txn);
    if (rc != 0)
        return rc;
    rc = mdb_stat(txn, st->dbi[table], &ms) == 0 ? 0 : GX_EIO;
    if (rc == 0)
        *out = ms.ms_entries;
    read_end(st, txn);
    return rc;
}

typedef int scan_fn(const void *key, size_t key_len, const void *val, size_t val_len,
                    void *arg);
typedef int join_fn(const void *key, size_t key_len, const void *val, size_t val_len,
                    const void *side_val, size_t side_len, void *arg);

/* one table's cursor in a scan: at its current record, or at its end */
typedef struct {
    MDB_cursor *cur;
    MDB_val k, v;
    int end;
} walk_t;

static int
walk_next(walk_t *w, MDB_cursor_op op)
{
    int rc = w->cur != NULL ? mdb_cursor_get(w->cur, &w->k, &w->v, op) : MDB_NOTFOUND;

    w->end = rc != 0;
    if (rc == 0 && w->v.mv_data == NULL)
        w->v.mv_data = (void *)""; /* present, if empty: only absence is NULL */
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/*
 * gx_store_scan() and, with a side table (not GX_STORE_TABLES), the merge of
 * gx_store_scan_join(): both cursors move forward only, the one at the
 * smaller key first, both at once on equal keys.
 */
static int
scan(gx_store_t *st, gx_store_table_t table, gx_store_table_t side, scan_fn *fn,
     join_fn *join, void *arg)
{
    walk_t m = {NULL, {0, NULL}, {0, NULL}, 1}, s = m;
    MDB_txn *txn = NULL;
    int rc, c, ret = 0;

    rc = read_begin(st, &txn);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_open(txn, st->dbi[table], &m.cur);
    if (rc == 0 && side != GX_STORE_TABLES)
        rc = mdb_cursor_open(txn, st->dbi[side], &s.cur);
    if (rc == 0)
        rc = walk_next(&m, MDB_FIRST);
    if (rc == 0)
        rc = walk_next(&s, MDB_FIRST);
    while (rc == 0 && ret == 0 && !(m.end && s.end)) {
        if (join == NULL) {
            ret = fn(m.k.mv_data, m.k.mv_size, m.v.mv_data, m.v.mv_size, arg);
            rc = walk_next(&m, MDB_NEXT);
            continue;
        }
        c = m.end ? 1 : s.end ? -1 : mdb_cmp(txn, st->dbi[table], &m.k, &s.k);
        if (c <= 0)
            ret = join(m.k.mv_data, m.k.mv_size, m.v.mv_data, m.v.mv_size,
                       c == 0 ? s.v.mv_data : NULL, c == 0 ? s.v.mv_size : 0, arg);
        else
            ret = join(s.k.mv_data, s.k.mv_size, NULL, 0, s.v.mv_data, s.v.mv_size, arg);
        if (c <= 0)
            rc = walk_next(&m, MDB_NEXT);
        if (c >= 0 && rc == 0)
            rc = walk_next(&s, MDB_NEXT);
    }
    if (s.cur != NULL)
        mdb_cursor_close(s.cur);
    if (m.cur != NULL)
        mdb_cursor_close(m.cur);
    read_end(st, txn);
    if (ret != 0)
        return ret;
    return rc == 0 ? 0 : GX_EIO;
}

int
gx_store_scan(gx_store_t *st, gx_store_table_t table, scan_fn *fn, void *arg)
{
    if (!table_ok(table) || fn == NULL)
        return GX_EINVAL;
    return scan(st, table, GX_STORE_TABLES, fn, NULL, arg);
}

int
gx_store_scan_join(gx_store_t *st, gx_store_table_t table, gx_store_table_t side, join_fn *fn,
                   void *arg)
{
    if (!table_ok(table) || !table_ok(side) || side == table || fn == NULL)
        return GX_EINVAL;
    return scan(st, table, side, NULL, fn, arg);
}

void
gx_store_stats(const gx_store_t *st, gx_store_stats_t *out)
{
    const gx_store_stats_t *s = &st->stats;

    out->commits = __atomic_load_n(&s->commits, __ATOMIC_RELAXED);
    out->batches = __atomic_load_n(&s->batches, __ATOMIC_RELAXED);
    out->failed = __atomic_load_n(&s->failed, __ATOMIC_RELAXED);
    out->no_space = __atomic_load_n(&s->no_space, __ATOMIC_RELAXED);
    out->map_grows = __atomic_load_n(&s->map_grows, __ATOMIC_RELAXED);
    out->commit_ns_max = __atomic_load_n(&s->commit_ns_max, __ATOMIC_RELAXED);
    out->map_size = __atomic_load_n(&s->map_size, __ATOMIC_RELAXED);
    out->queue_depth = __atomic_load_n(&s->queue_depth, __ATOMIC_RELAXED);
    out->readers_cleared = __atomic_load_n(&s->readers_cleared, __ATOMIC_RELAXED);
}

void
gx_store_shutdown(gx_store_t *st)
{
    if (st == NULL || !st->writer_running)
        return;
    __atomic_store_n(&st->closing, 1, __ATOMIC_SEQ_CST);
    writer_wake(st);
    pthread_join(st->writer, NULL);
    st->writer_running = 0;
}

void
gx_store_close(gx_store_t *st)
{
    if (st == NULL)
        return;
    gx_store_shutdown(st);
    gx_log(GX_LOG_INFO, "store closed commits=%llu batches=%llu failed=%llu",
           (unsigned long long)st->stats.commits, (unsigned long long)st->stats.batches,
           (unsigned long long)st->stats.failed);
    store_free(st);
}
