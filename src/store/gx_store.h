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
 *
 * Threads: gx_store_open/close on the main thread; gx_store_submit from any
 * thread; gx_store_scan before workers start (recovery) or from any thread
 * (its own read transaction).
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
    GX_STORE_TABLES
} gx_store_table_t;

typedef struct {
    gx_store_table_t table;
    int del;            /**< 1: delete key (absent is fine), 0: put key → value */
    const void *key;
    size_t key_len;     /**< 1 .. 511 (LMDB's default key limit) */
    const void *val;
    size_t val_len;
} gx_store_op_t;

typedef struct {
    uint64_t map_size;      /**< initial map size in bytes (default 64 MiB) */
    uint64_t map_size_max;  /**< the map never grows past this (default 16 GiB) */
    unsigned max_batch;     /**< submitted batches per commit at most (default 4096) */
} gx_store_opts_t;

/** Fills @p o with the defaults. */
void gx_store_opts_init(gx_store_opts_t *o);

/**
 * Opens (creating if needed) the environment in directory @p dir, clears
 * reader slots left by dead processes, and starts the writer thread.
 * @param err  the reason on failure
 * @return 0, GX_EIO (cannot open/create; permissions; corrupt), GX_ENOMEM
 */
int gx_store_open(const char *dir, const gx_store_opts_t *opts, gx_store_t **out, char *err,
                  size_t errlen);

/**
 * Called on the writer thread once the batch is durable (status 0) or has
 * failed (GX_EMAPFULL, GX_EIO, GX_ESHUTDOWN when the store closed first).
 * Must not block; typically it records the result and calls gx_call_resume().
 */
typedef void (*gx_store_done_fn)(int status, void *arg);

/**
 * Queues @p n operations to be committed atomically together.  The store
 * copies keys and values: the caller's memory may go once this returns.
 * @param done  may be NULL (fire and forget, e.g. heartbeat checkpoints)
 * @return 0 (done will be called exactly once), GX_EINVAL (bad op: n == 0, key
 *         length, table), GX_ENOMEM, GX_ESHUTDOWN (store closing); on an error
 *         done is NOT called.
 * @note thread: any; never blocks
 */
int gx_store_submit(gx_store_t *st, const gx_store_op_t *ops, size_t n, gx_store_done_fn done,
                    void *arg);

/**
 * Calls @p fn for every record of @p table in key order, inside one read
 * transaction.  The bytes are valid only during the call.  @p fn returns 0 to
 * go on, anything else to stop (returned by gx_store_scan).
 * @return 0, fn's value, GX_EIO
 */
int gx_store_scan(gx_store_t *st, gx_store_table_t table,
                  int (*fn)(const void *key, size_t key_len, const void *val, size_t val_len,
                            void *arg),
                  void *arg);

/**
 * Reads one record into a malloc()ed copy (*val, *val_len; caller frees).
 * @return 0, GX_ENOTFOUND, GX_ENOMEM, GX_EIO
 */
int gx_store_get(gx_store_t *st, gx_store_table_t table, const void *key, size_t key_len,
                 void **val, size_t *val_len);

/** Counters for /metrics. */
typedef struct {
    uint64_t commits;        /**< write transactions committed */
    uint64_t batches;        /**< submitted batches committed */
    uint64_t failed;         /**< batches failed */
    uint64_t map_grows;      /**< times the map was enlarged */
    uint64_t commit_ns_max;  /**< slowest commit (incl. sync) */
    uint64_t map_size;       /**< current map size */
    uint64_t queue_depth;    /**< batches waiting now */
} gx_store_stats_t;

/** @note thread: any */
void gx_store_stats(const gx_store_t *st, gx_store_stats_t *out);

/**
 * Commits what is queued, stops the writer and closes the environment.
 * Batches submitted after close began fail with GX_ESHUTDOWN.  NULL is a no-op.
 */
void gx_store_close(gx_store_t *st);

#endif /* GX_STORE_GX_STORE_H */
