/* SPDX-License-Identifier: MIT */
/**
 * @file gx_reg.h
 * The in-memory registry of pools and nodes, durable through the store.
 *
 * Reads are lock-free: a reader brackets its lookups with gx_reg_read_begin()
 * and gx_reg_read_end() (rcu_read_lock) and may use the objects it found, and
 * the protobuf messages they point to, only inside that bracket.
 *
 * Writes (register, deregister, drain, pool changes) are two-step: the worker
 * calls one of the gx_reg_*_submit() functions, which checks the request
 * against the registry under the writer lock, reserves the key (a second
 * write to the same node or pool while one is in flight is GX_STATUS_ABORTED)
 * and hands the record to the store.  Once the store has committed it, the
 * keeper thread applies the change to memory and calls op->done (keeper
 * thread), typically gx_call_resume().  A failed commit changes nothing in
 * memory: changes are applied after the commit, never rolled back.
 *
 * Liveness (HEALTHY → SUSPECT → DOWN → removed), heartbeat checkpoints and
 * the sorted indexes used for paging (one per pool, and one per specialization
 * of each pool) are the keeper's work too.
 * Liveness runs off a timer wheel: a keeper tick costs the nodes whose
 * deadline came, not the number of nodes, and a heartbeat stays a few atomic
 * stores on the worker.
 *
 * Self-preservation: when more than self_preservation_share percent of a
 * pool's live nodes (HEALTHY, DRAINING, SUSPECT) are SUSPECT at once, that
 * is, lapsed within one TTL, and the pool has at least
 * self_preservation_min_nodes nodes, the pool stops demoting nodes to DOWN and
 * removing DOWN nodes (HEALTHY → SUSPECT goes on: it is what the node's
 * silence says; DOWN is the registry's verdict, and that is what the mode
 * holds back).  It ends by itself once no more than that share of the pool's
 * nodes are SUSPECT or DOWN; the nodes it held are then judged again, and the
 * DOWN ones get a full retention from that moment.  Deregister and Drain are
 * never held back.
 *
 * Adaptive heartbeats: with max_heartbeats_per_second set, the registry
 * stretches heartbeat intervals so that all nodes of all pools together stay
 * within that budget: every pool's interval becomes at least one common floor
 * F, the smallest with sum(nodes × 1000 / max(interval, F)) <= budget (for
 * nodes in one pool: ceil(nodes × 1000 / budget)), never below the pool's
 * own interval and at most GX_REG_INTERVAL_MAX; the TTL stretches in
 * proportion.  Register and every Heartbeat hand out the current values.  A
 * shorter TTL applies to liveness only one (longer) TTL after the longer one
 * was last handed out, so a node that obeys what it was told is never
 * demoted by a TTL it has not heard of yet.
 */
#ifndef GX_CORE_GX_REG_H
#define GX_CORE_GX_REG_H

#include <stddef.h>
#include <stdint.h>

#include <galaxy/gx_module.h>

#include "galaxy/pool/v1/pool.pb-c.h"
#include "store/gx_store.h"

typedef struct gx_reg_s gx_reg_t;
typedef struct gx_reg_pool_s gx_reg_pool_t;
typedef struct gx_reg_node_s gx_reg_node_t;
typedef struct gx_reg_op_s gx_reg_op_t;

typedef Galaxy__Pool__V1__Pool gx_pb_pool_t;
typedef Galaxy__Pool__V1__Node gx_pb_node_t;

/* ------------------------------------------------------------------ limits */

#define GX_REG_POOL_NAME_MAX 63
#define GX_REG_NODE_ID_MAX 128
#define GX_REG_SPEC_MAX 32         /**< bytes of one specialization */
#define GX_REG_SPECS_MAX 32        /**< specializations per node or pool */
#define GX_REG_LABELS_MAX 64       /**< labels per node or pool */
#define GX_REG_LABEL_KEY_MAX 128
#define GX_REG_LABEL_VALUE_MAX 512
#define GX_REG_ADDRESS_MAX 255
#define GX_REG_TEXT_MAX 128        /**< version, tier, routing policy */
#define GX_REG_DESCRIPTION_MAX 1024
#define GX_REG_TOKEN_MAX 128       /**< bytes of a lease token a client may send */
#define GX_REG_PAGE_DEFAULT 100
#define GX_REG_PAGE_MAX 1000
#define GX_REG_INTERVAL_DEFAULT 10000
#define GX_REG_INTERVAL_MIN 50
#define GX_REG_INTERVAL_MAX 3600000
#define GX_REG_FLAP_RING 16        /**< remembered HEALTHY↔SUSPECT transitions */
#define GX_REG_WATCH_HISTORY 10000 /**< default: changes of a pool kept for Watch resumes */
#define GX_REG_WATCH_HISTORY_MAX 1000000
#define GX_REG_WATCH_BYTES (32u << 20) /**< default: bytes of history kept per pool */

/* ------------------------------------------------------------------ options */

/** One pool of the configuration's `pools:`, created on the first start of a store. */
typedef struct {
    char *name;
    int visibility;               /**< Visibility: PUBLIC or PRIVATE */
    char *tier, *description, *routing_policy; /**< "" when not given */
    uint32_t heartbeat_interval_ms, node_ttl_ms, max_nodes; /**< 0: the defaults */
    char **specializations;
    size_t n_specializations;
    char *where;                  /**< "file:line" of the entry */
} gx_reg_pool_conf_t;

typedef struct {
    uint32_t retention_factor;    /**< DOWN nodes go after this × ttl (default 10) */
    uint32_t checkpoint_ms;       /**< last-seen checkpoints every … (default 30000) */
    uint32_t tick_ms;             /**< keeper period (default 100) */
    uint32_t watch_history;       /**< changes per pool kept for Watch (default 10000) */
    uint32_t watch_bytes;         /**< and at most about this many bytes (default 32 MiB) */
    uint32_t self_preservation_min_nodes; /**< smaller pools never hold back (default 10) */
    uint32_t self_preservation_share;     /**< percent of live nodes lapsed at once (50) */
    uint32_t max_heartbeats_per_second;   /**< heartbeat budget of the server; 0: off */
    uint32_t max_nodes;           /**< nodes in all pools together (default 2,000,000) */
    uint32_t max_node_memory_mb;  /**< MiB the nodes' own memory may take (default 2048) */
    /**
     * The pools a store gets on its first start: with pools_given, these
     * (possibly none); without, mainnet, testnet and devnet (public).
     */
    gx_reg_pool_conf_t *pools;
    size_t n_pools;
    int pools_given;
} gx_reg_opts_t;

/**
 * The defaults; the environment variables GALAXY_WATCH_HISTORY (changes, 1 to
 * GX_REG_WATCH_HISTORY_MAX) and GALAXY_WATCH_BYTES override the Watch history
 * bounds until the configuration file has a registry section.
 */
void gx_reg_opts_init(gx_reg_opts_t *o);

/* ------------------------------------------------------------------ life */

/**
 * Builds the registry from the store (every node gets a fresh grace period),
 * creates the default pools mainnet/testnet/devnet on a store that was never
 * initialised, and starts the keeper thread.
 * @param st   the open store; the registry uses it until gx_reg_close()
 * @return 0, GX_ENOMEM, GX_EIO (with @p err set)
 * @note thread: main, before the workers start
 */
int gx_reg_open(gx_store_t *st, const gx_reg_opts_t *opts, gx_reg_t **out, char *err,
                size_t errlen);
/**
 * Stops the keeper (ops that complete later are applied by gx_reg_close()).
 * Call after the server stopped and before gx_store_close().
 */
void gx_reg_stop(gx_reg_t *reg);
/** Applies what is left, frees everything (rcu_barrier).  NULL is a no-op. @note thread: main */
void gx_reg_close(gx_reg_t *reg);

/**
 * Brackets the store's done callbacks of one commit (gx_store_opts_t's
 * done_begin/done_end): the registry's writes they complete reach the keeper
 * together, with one wake-up.  @note thread: the store's writer
 */
void gx_reg_done_hold(void);
void gx_reg_done_release(void);

/** The process's registry, for the built-in services (NULL before gx_reg_open). */
extern gx_reg_t *gx__reg;

/**
 * Registers the calling thread with RCU on first use (workers: lazily from the
 * services).  @note thread: any
 */
void gx_reg_thread_online(void);
/** Unregisters the calling thread if it was registered (a worker's last tick). */
void gx_reg_thread_offline(void);

/* ------------------------------------------------------------------ reads */

/** rcu_read_lock after gx_reg_thread_online(). */
void gx_reg_read_begin(void);
void gx_reg_read_end(void);

/** The pool called @p name or NULL. @note inside a read bracket */
gx_reg_pool_t *gx_reg_pool_find(gx_reg_t *reg, const char *name);
/** Calls @p fn for every pool, in no order; stops when fn returns non-zero. */
void gx_reg_pool_foreach(gx_reg_t *reg, int (*fn)(gx_reg_pool_t *p, void *arg), void *arg);
/**
 * Fills @p out (shallow: strings point into the registry) with the pool's
 * configuration and its output fields (node_count, self_preservation).
 * Valid inside the read bracket.
 */
void gx_reg_pool_fill(const gx_reg_pool_t *p, gx_pb_pool_t *out);
/** The pool's current revision. */
uint64_t gx_reg_pool_revision(const gx_reg_pool_t *p);
/**
 * The heartbeat interval and TTL the pool's nodes are told now (the pool's
 * own values, or stretched by max_heartbeats_per_second).  Either may be NULL.
 */
void gx_reg_pool_heartbeat(const gx_reg_pool_t *p, uint32_t *interval_ms, uint32_t *ttl_ms);

/**
 * Appends the registry's metrics to @p out (an evbuffer), in Prometheus text
 * format: per pool, galaxy_pool_self_preservation (gauge 0/1),
 * galaxy_pool_self_preservation_entries_total (counter),
 * galaxy_pool_heartbeat_interval_ms and galaxy_pool_node_ttl_ms (gauges: what
 * the nodes are told, and the TTL liveness applies now).  @p reg NULL: nothing.
 * @note thread: any (takes its own read bracket)
 */
void gx_reg_metrics(gx_reg_t *reg, void *out);

/** The node @p id of @p pool or NULL. */
gx_reg_node_t *gx_reg_node_find(gx_reg_t *reg, const char *pool, const char *id);
/** Shallow copy of the node with its live fields (state, load, …); see gx_reg_pool_fill. */
void gx_reg_node_fill(const gx_reg_node_t *n, gx_pb_node_t *out);
/** The node's state now. */
Galaxy__Pool__V1__NodeState gx_reg_node_state(const gx_reg_node_t *n);

/** A position in an index of a pool's nodes (see gx_reg_pool_cursor()). */
typedef struct {
    const void *dir;
    size_t run, at;
} gx_reg_cursor_t;

/**
 * Positions @p c at the first node of pool @p p, as of its last published
 * index, whose id is greater than @p after (NULL or "": the first); through
 * the pool's index of specialization @p spec unless that is NULL or "": the
 * nodes that had @p spec then.  gx_reg_cursor_next() then hands out the nodes
 * in id order, a run at a time.  Nodes removed since may still be listed
 * (check gx_reg_node_live()); a specialization index may list more: nodes
 * that lost the specialization since, or the whole pool for a while after the
 * registry ran out of memory; check the node's current specializations
 * (gx_reg_node_info()).  An unknown specialization lists nothing.
 * @return the number of nodes of the whole index (not only after @p after)
 * @note inside a read bracket; the cursor and the runs are valid until it ends
 */
size_t gx_reg_pool_cursor(const gx_reg_pool_t *p, const char *spec, const char *after,
                          gx_reg_cursor_t *c);
/**
 * Like gx_reg_pool_cursor(), for the nodes that have specialization @p spec
 * (NULL or "": any) and every label @p keys[i] = @p values[i] (i below
 * @p n_labels): through the smallest of the indexes that hold them all, the
 * pool's, the specialization's or one label's, as last published.  A label
 * or specialization no node of the pool has lists nothing.  The index may
 * list more than match (see gx_reg_pool_cursor()): check each node.
 * With @p unwell, the caller wants only nodes out of HEALTHY (SUSPECT, DOWN,
 * DRAINING): the pool's index of those nodes is one more choice, unless the
 * keeper is moving a node into it.  @p reg may be NULL when @p n_labels is 0.
 */
size_t gx_reg_pool_cursor_filter(const gx_reg_t *reg, const gx_reg_pool_t *p, const char *spec,
                                 size_t n_labels, const char *const *keys,
                                 const char *const *values, int unwell, const char *after,
                                 gx_reg_cursor_t *c);
/** The next run of nodes: @return 1 with @p v[0 .. *n), 0 at the end */
int gx_reg_cursor_next(gx_reg_cursor_t *c, gx_reg_node_t *const **v, size_t *n);
/** Node @p k (from 0, below gx_reg_pool_cursor()'s count) of the cursor's index, or NULL. */
gx_reg_node_t *gx_reg_cursor_nth(const gx_reg_cursor_t *c, size_t k);
/**
 * The node's static part as last registered (id, specializations, labels,
 * address, …): its live fields (state, load, revision, …) are not current
 * there, see gx_reg_node_fill().  @note inside a read bracket
 */
const gx_pb_node_t *gx_reg_node_info(const gx_reg_node_t *n);
/** 0 once the node was removed from the registry. */
int gx_reg_node_live(const gx_reg_node_t *n);
/** The node's id (immutable). */
const char *gx_reg_node_id(const gx_reg_node_t *n);

/** The node's load, the running jobs it reported, and its flap count now. */
void gx_reg_node_live_fields(const gx_reg_node_t *n, double *load, uint32_t *running,
                             uint32_t *flaps);
/**
 * One pointer's worth of room on the node for the jobs (NULL on a new node;
 * a removed node's is never read).  Read and written under the jobs' lock.
 */
void *gx_reg_node_ext(const gx_reg_node_t *n);
void gx_reg_node_set_ext(gx_reg_node_t *n, void *ext);
/** 1 when @p token is the node's lease token (constant time). @note inside a read bracket */
int gx_reg_node_token_ok(const gx_reg_node_t *n, const char *token);

/**
 * Who hears of node changes (the jobs: re-routing, pending work).  All three
 * run on the keeper thread.  node_changed runs under the registry's writer
 * lock for every change a watcher would see (@p state the node's state
 * after it, @p removed 1 when it left the registry): record, do not route.
 * settled runs once the round's changes are published (the indexes list
 * new nodes), with no registry lock held; tick every keeper period.
 */
typedef struct {
    void (*node_changed)(void *arg, const char *pool, const char *id, uint32_t state,
                         int removed);
    void (*settled)(void *arg);
    void (*tick)(void *arg, uint64_t now_ms);
    void *arg;
} gx_reg_listener_t;

/** Sets the listener (NULL: none).  @note thread: main, before the workers start */
void gx_reg_listen(gx_reg_t *reg, const gx_reg_listener_t *l);

/* ------------------------------------------------------------------ watch feed */

/**
 * The change feed of one pool, for Discovery.Watch: a ring of the pool's last
 * changes (at most watch_history of them and about watch_bytes), one slot per
 * revision, written only by the keeper thread and read without locks.  Each
 * entry holds the node as it was after the change.  The feed is
 * reference-counted so that a watcher can keep it across callbacks and poll
 * its head with one atomic load; entries are read inside a read bracket.
 */
typedef struct gx_reg_feed_s gx_reg_feed_t;

/** One change as the feed holds it. */
typedef struct {
    uint64_t revision;
    int type;                   /**< a WatchEventType, or 0: a pool change without a node */
    const gx_pb_node_t *node;   /**< the node after the change (REMOVED: before it went) */
    size_t n_old_specs;         /**< UPSERT that changed the node's specializations: */
    char *const *old_specs;     /**< the ones it had before (else 0, NULL) */
} gx_reg_event_t;

/** The pool's feed with a new reference (gx_reg_feed_release()). @note inside a read bracket */
gx_reg_feed_t *gx_reg_pool_feed(gx_reg_pool_t *p);
/** 1 when @p f is the feed of @p p (the pool was not deleted and made again). */
int gx_reg_pool_has_feed(const gx_reg_pool_t *p, const gx_reg_feed_t *f);
/** Drops a reference; NULL is a no-op. @note thread: any */
void gx_reg_feed_release(gx_reg_feed_t *f);
/**
 * The last revision whose change can be read (published after the pool's
 * index, so a snapshot read after it is at least as new).  No bracket needed.
 */
uint64_t gx_reg_feed_head(const gx_reg_feed_t *f);
/** 1 once the pool was deleted: no more changes come. */
int gx_reg_feed_dead(const gx_reg_feed_t *f);
/**
 * 1 when every change after @p rev (up to the head) is still in the feed, so
 * a watcher at @p rev can go on without a snapshot: rev is not older than the
 * feed's memory (nor from before a restart) and not in the future.
 */
int gx_reg_feed_covers(const gx_reg_feed_t *f, uint64_t rev);
/**
 * The change that made revision @p rev (≤ head).
 * @return 0, or GX_ENOTFOUND when it has left the history window
 * @note inside a read bracket; @p out points into the feed until it ends
 */
int gx_reg_feed_get(const gx_reg_feed_t *f, uint64_t rev, gx_reg_event_t *out);
/** Bytes the feed holds now (about), for tests and metrics. */
size_t gx_reg_feed_bytes(const gx_reg_feed_t *f);

/* ------------------------------------------------------------------ heartbeats */

/**
 * Records a heartbeat from the lease holder: last-seen time, load, running
 * jobs; SUSPECT/DOWN come back to HEALTHY (DRAINING when draining).
 * @param state_out  the node's state after the heartbeat
 * @param interval_out  the interval the node is to heartbeat at from now on
 *                      (adaptive: see the file comment)
 * @return 0, GX_ENOTFOUND (pool or node), GX_EDENIED (token mismatch)
 * @note inside a read bracket
 */
int gx_reg_node_heartbeat(gx_reg_t *reg, const char *pool, const char *id, const char *token,
                          double load, uint32_t running_jobs,
                          Galaxy__Pool__V1__NodeState *state_out, uint32_t *interval_out,
                          uint64_t *revision_out);

/* ------------------------------------------------------------------ writes */

/** A write in flight; caller-owned storage (e.g. call memory) that must live until done(). */
struct gx_reg_op_s {
    /* set by the caller */
    void (*done)(gx_reg_op_t *op); /**< keeper thread, after apply (or failure) */
    void *arg;
    /* results, valid in done() */
    int status;                    /**< 0, or why the commit failed (GX_EMAPFULL, …) */
    uint64_t revision;             /**< the pool's revision stamped on the change */
    /* private */
    gx_reg_op_t *next;
    gx_reg_op_t *pending_next;
    int kind;
    char *key;
    size_t key_len;
    void *obj;
    unsigned flags;
    uint32_t charge; /* node writes: node memory reserved at submit (registry.max_node_memory_mb) */
};

/** A rejection from a submit: status and a message that names the field. */
typedef struct {
    gx_status_t status;
    char msg[256];
} gx_reg_why_t;

/**
 * Register (or re-register, or take over) @p node in its pool.
 * @param token_in  the client's lease token ("" for a first registration)
 * @param owner     the caller's identity
 * @param packed, packed_len  filled with the node as it will be stored,
 *                  serialized (a Node message without its revision, which
 *                  the commit gives), in @p call memory (gx_call_alloc)
 * @param token_out the lease token (call memory)
 * @param interval_out, ttl_out  the heartbeat interval and TTL the node is
 *                  told (gx_reg_pool_heartbeat())
 * @return 0 (op in flight: done() will be called), or <0 with @p why set
 */
int gx_reg_node_register_submit(gx_reg_t *reg, gx_call_t *call, const gx_pb_node_t *node,
                                const char *token_in, const char *owner, gx_reg_op_t *op,
                                const uint8_t **packed, size_t *packed_len, char **token_out,
                                uint32_t *interval_out, uint32_t *ttl_out, gx_reg_why_t *why);
/** Deregister: needs the lease token. */
int gx_reg_node_deregister_submit(gx_reg_t *reg, const char *pool, const char *id,
                                  const char *token, gx_reg_op_t *op, gx_reg_why_t *why);
/** Drain: the node gets DRAINING; @p reply as for register. */
int gx_reg_node_drain_submit(gx_reg_t *reg, gx_call_t *call, const char *pool, const char *id,
                             gx_reg_op_t *op, gx_pb_node_t **reply, gx_reg_why_t *why);
/**
 * Create (@p create 1) or update a pool.  The request is validated by the
 * caller; defaults are applied here.  @p reply (call memory) is the pool as
 * stored.
 */
int gx_reg_pool_put_submit(gx_reg_t *reg, gx_call_t *call, const gx_pb_pool_t *pool, int create,
                           gx_reg_op_t *op, gx_pb_pool_t **reply, gx_reg_why_t *why);
/** Delete a pool; with @p force its nodes go too, else FAILED_PRECONDITION. */
int gx_reg_pool_delete_submit(gx_reg_t *reg, const char *name, int force, gx_reg_op_t *op,
                              gx_reg_why_t *why);

/* ------------------------------------------------------------------ pure helpers */

/** 1 when @p s matches [a-z0-9][a-z0-9-]{0,62}. */
int gx_reg_valid_pool_name(const char *s);
/** 1 when @p s matches [A-Za-z0-9._:-]{1,128}. */
int gx_reg_valid_node_id(const char *s);
/** 1 when @p s matches [a-z0-9-]{1,32}. */
int gx_reg_valid_spec(const char *s);
/** 1 when @p s is 1..max bytes of printable ASCII without spaces (label keys). */
int gx_reg_valid_token(const char *s, size_t max);

/**
 * The state a node should be in @p elapsed_ms after its last heartbeat.
 * @return HEALTHY (or DRAINING when @p draining), SUSPECT, DOWN; *remove is
 *         set once the node has been DOWN for retention_factor × ttl
 */
Galaxy__Pool__V1__NodeState gx_reg_liveness(uint64_t elapsed_ms, uint32_t ttl_ms, int draining,
                                            uint32_t retention_factor, int *remove);

/** Page tokens: base64url of the last id.  @return bytes written (NUL incl.), or 0 */
size_t gx_reg_page_token_encode(const char *last_id, char *out, size_t outlen);
/** @return 0 and the id in @p out, or GX_EINVAL for a token we never made */
int gx_reg_page_token_decode(const char *token, char *out, size_t outlen);

/** Compares @p a and @p b in time that depends only on their lengths. @return 1 when equal */
int gx_reg_token_equal(const char *a, const char *b);

#endif /* GX_CORE_GX_REG_H */
