/* SPDX-License-Identifier: MIT */
/**
 * @file gx_store.h
 * Durable storage behind one small interface; LMDB is the implementation.
 *
 * The store keeps opaque records (key → value bytes) in a few named tables.
 * It knows nothing about pools or nodes: the registry serialises its objects
 * (protobuf) and chooses the keys.
 *
 * Writes: gx_store_submit() hands a batch of operations (puts and deletes,
 * applied atomically together) to the store's single writer thread through a
 * lock-free queue, and returns at once.  The writer drains the queue and
 * commits everything it took in ONE write transaction (group commit), which
 * LMDB syncs to disk; only then does it call each batch's `done` callback, on
 * the writer thread.  So an acknowledged write is on disk, and thousands of
 * writes share one fsync.  The caller's thread never blocks on disk.
 *
 * Errors are translated here: no LMDB code leaves this directory.  A full map
 * grows (up to map_size_max) and the commit is retried; past the maximum the
 * batches of that commit fail with GX_EMAPFULL and nothing of them is stored.
 * A batch that fails for another reason (I/O) fails alone: the others of its
 * commit are retried without it.
 *
 * The database carries a schema version (GX_STORE_META "schema" → "1"),
 * written at the first open; a newer version refuses to open.
 *
 * Threads: gx_store_open/shutdown/close on the main thread; gx_store_submit
 * from any thread; gx_store_scan before workers start (recovery) or from any
 * thread (its own read transaction); gx_store_get and gx_store_stats from any
 * thread.  LMDB allows one open environment per directory per process: open
 * a directory once.
 */
#ifndef GX_STORE_GX_STORE_H
#define GX_STORE_GX_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct gx_store_s gx_store_t;

/** The tables.  Keys are compared bytewise (memcmp, shorter first). */
typedef enum {
    GX_STORE_META,  /**< schema version, counters */
    GX_STORE_POOLS, /**< pool name → Pool */
    GX_STORE_NODES, /**< "<pool>\0<node id>" → node record */
    GX_STORE_KEYS,  /**< api key id → key record (salted hash, never the secret) */
    GX_STORE_JOBS,  /**< job id → Job */
    GX_STORE_SEEN,  /**< "<pool>\0<node id>" → last-seen time, 8 bytes little-endian ms */
    GX_STORE_TABLES
} gx_store_table_t;

/** The longest key (LMDB's default key limit). */
#define GX_STORE_KEY_MAX 511
/** The longest value (LMDB's item limit; the map size bounds it further). */
#define GX_STORE_VAL_MAX 0xffffffffu

/** gx_store_op_t.del */
#define GX_STORE_PUT 0        /**< put key → value */
#define GX_STORE_DEL 1        /**< delete key (absent is fine) */
#define GX_STORE_DEL_PREFIX 2 /**< delete every key that starts with key (none is fine) */

typedef struct {
    gx_store_table_t table;
    int del; /**< GX_STORE_PUT, GX_STORE_DEL or GX_STORE_DEL_PREFIX */
    const void *key;
    size_t key_len;  /**< 1 .. GX_STORE_KEY_MAX */
    const void *val; /**< may be NULL when val_len is 0; ignored for a delete */
    size_t val_len;  /**< 0 .. GX_STORE_VAL_MAX */
} gx_store_op_t;

typedef struct {
    uint64_t map_size;     /**< initial map size in bytes (default 64 MiB) */
    uint64_t map_size_max; /**< the map never grows past this (default 16 GiB) */
    unsigned max_batch;    /**< submitted batches per commit at most (default 4096) */
    /**
     * Called on the writer thread before and after the done callbacks of one
     * commit (NULL: nothing), e.g. to hand the calls they resume to their
     * workers together (gx_resume_hold/gx_resume_release).
     */
    void (*done_begin)(void);
    void (*done_end)(void);
} gx_store_opts_t;

/** Fills @p o with the defaults. */
void gx_store_opts_init(gx_store_opts_t *o);

/**
 * Opens (creating if needed: the directory, one level, and the environment in
 * it) the store in directory @p dir, clears reader slots left by dead
 * processes, checks or writes the schema version, and starts the writer
 * thread.
 *
 * The map starts at opts->map_size rounded up to whole pages, or at the size
 * of the data already stored if that is larger.  An opts->map_size_max below
 * the map size is raised to it.
 * @param opts NULL for the defaults
 * @param out  the store, on success only
 * @param err  the reason on failure (NUL-terminated, truncated to @p errlen)
 * @return 0; GX_EINVAL (no @p dir; map_size or max_batch is 0); GX_EIO (cannot
 *         open/create; permissions; corrupt; a schema version that this build
 *         does not know); GX_ENOMEM
 * @note thread: main
 */
int gx_store_open(const char *dir, const gx_store_opts_t *opts, gx_store_t **out, char *err,
                  size_t errlen);

/**
 * Called on the writer thread once the batch is durable (status 0) or has
 * failed (GX_EMAPFULL, GX_EIO, GX_ENOMEM; GX_ESHUTDOWN when the store closed
 * first, which the LMDB store never does: it commits every batch it accepted).
 * Must not block; typically it records the result and calls gx_call_resume().
 * It may call gx_store_submit(), gx_store_get() and gx_store_scan(), never
 * gx_store_shutdown() or gx_store_close().
 */
typedef void (*gx_store_done_fn)(int status, void *arg);

/**
 * Queues @p n operations to be committed atomically together.  The store
 * copies keys and values: the caller's memory may go once this returns.
 * Batches commit in the order they were queued: of two batches writing the
 * same key, the later one wins.
 * @param done  may be NULL (fire and forget, e.g. heartbeat checkpoints)
 * @return 0 (done will be called exactly once), GX_EINVAL (bad op: n == 0, key
 *         length, value length, table), GX_ENOMEM, GX_ESHUTDOWN (store closing);
 *         on an error done is NOT called and nothing of the batch is stored.
 * @note thread: any; never blocks (a wait-free queue; the submit that finds
 *       the queue empty also writes the writer's eventfd)
 */
int gx_store_submit(gx_store_t *st, const gx_store_op_t *ops, size_t n, gx_store_done_fn done,
                    void *arg);

/**
 * gx_store_submit() and a wait for the commit (start-up work: default
 * records, the first admin key).  @return 0, a submit error, or the commit's
 * status.  @note thread: not the store's writer (it would wait for itself)
 */
int gx_store_submit_sync(gx_store_t *st, const gx_store_op_t *ops, size_t n);

/**
 * Calls @p fn for every record of @p table in key order, inside one read
 * transaction.  The bytes are valid only during the call.  @p fn returns 0 to
 * go on, anything else to stop (returned by gx_store_scan).
 *
 * While it runs, the scan holds the store's resize lock as a reader: @p fn
 * must not call back into the store nor wait for a submitted batch (a map
 * resize waiting for the lock would deadlock), and should be quick.
 * @return 0, fn's value, GX_EINVAL (table), GX_EIO
 * @note thread: any
 */
int gx_store_scan(gx_store_t *st, gx_store_table_t table,
                  int (*fn)(const void *key, size_t key_len, const void *val, size_t val_len,
                            void *arg),
                  void *arg);

/**
 * gx_store_scan() of two tables at once, merged by key: @p fn gets every key
 * either table holds, in key order, with the value of @p table (@p val) and
 * the value of @p side (@p side_val) under it; the one of a table that lacks
 * the key is NULL, with length 0.  One read transaction, each table walked
 * once.  The same rules as gx_store_scan() hold for @p fn.
 * @return 0, fn's value, GX_EINVAL (tables), GX_EIO
 * @note thread: any
 */
int gx_store_scan_join(gx_store_t *st, gx_store_table_t table, gx_store_table_t side,
                       int (*fn)(const void *key, size_t key_len, const void *val,
                                 size_t val_len, const void *side_val, size_t side_len,
                                 void *arg),
                       void *arg);

/**
 * The number of records in @p table (LMDB's own count: no scan), e.g. to
 * size a hash table before loading it.  @return 0, GX_EINVAL (table), GX_EIO
 * @note thread: any
 */
int gx_store_count(gx_store_t *st, gx_store_table_t table, size_t *out);

/**
 * Reads one record into a malloc()ed copy (*val, *val_len; caller frees; a
 * value of length 0 is still a non-NULL pointer).
 * @return 0, GX_ENOTFOUND, GX_EINVAL (table or key length), GX_ENOMEM, GX_EIO
 * @note thread: any
 */
int gx_store_get(gx_store_t *st, gx_store_table_t table, const void *key, size_t key_len,
                 void **val, size_t *val_len);

/** Counters for /metrics. */
typedef struct {
    uint64_t commits;         /**< write transactions committed */
    uint64_t batches;         /**< submitted batches committed */
    uint64_t failed;          /**< batches failed */
    uint64_t no_space;        /**< commits failed for want of disk space */
    uint64_t map_grows;       /**< times the map was enlarged */
    uint64_t commit_ns_max;   /**< slowest commit (incl. sync) */
    uint64_t map_size;        /**< current map size */
    uint64_t queue_depth;     /**< batches waiting now */
    uint64_t readers_cleared; /**< stale reader slots (dead processes) cleared at open */
} gx_store_stats_t;

/** @note thread: any */
void gx_store_stats(const gx_store_t *st, gx_store_stats_t *out);

/**
 * Stops taking batches and commits what is queued, then stops the writer;
 * the environment stays open for gx_store_get and gx_store_scan.  From the
 * moment it begins, gx_store_submit returns GX_ESHUTDOWN; a batch that a
 * racing submit accepted is committed (its done says so).  Idempotent; NULL
 * is a no-op.
 * @note thread: main (never from a done callback)
 */
void gx_store_shutdown(gx_store_t *st);

/**
 * gx_store_shutdown(), then closes the environment and frees the store.
 * Batches submitted after close began fail with GX_ESHUTDOWN.  NULL is a no-op.
 * @note thread: main (never from a done callback); no other thread may use
 *       @p st once this has begun, except for submits racing the shutdown
 *       (use gx_store_shutdown first to keep it usable for that).
 */
void gx_store_close(gx_store_t *st);

/**
 * Test hook: when > 0, the n-th following store allocation made by this
 * thread (the store itself at open, a batch at submit, a copy at get) fails.
 */
extern __thread long gx__store_fail_at;

#endif /* GX_STORE_GX_STORE_H */
