/* SPDX-License-Identifier: MIT */
/*
 * The registry: pools and nodes in two cds_lfht tables (pools by name, nodes
 * by "<pool>\0<id>", the same bytes as their store key), lock-free for
 * readers.
 *
 * A node is a stable object in the table with its hot fields as atomics
 * (last seen, load, running jobs, state, revision) and an RCU pointer to its
 * static part (the unpacked Node message and the lease token), which a write
 * replaces wholesale; the old one goes through call_rcu once the last holder
 * (the node, watch feed entries) puts it.  Each pool keeps a revision counter
 * stamped on every change, and an index of its nodes sorted by id (published
 * through an RCU pointer) for ordered, stable paging.
 *
 * Writers: submits run on the workers under one writer mutex (checks against
 * the applied state plus the writes in flight, reservation of the key, store
 * submit: so the store sees writes in the order they were checked).  The
 * store's done callback queues the op for the keeper thread, which applies it
 * to memory after the commit (a failed commit changes nothing), publishes the
 * dirty indexes, frees what was removed after a grace period, and only then
 * calls op->done.  The keeper also runs liveness and the heartbeat
 * checkpoints.
 *
 * Liveness: every node sits in one slot of a timer wheel (tick_ms per slot,
 * WHEEL_SLOTS slots; a deadline further than one turn waits in its slot for
 * its turn), at the deadline of its next possible transition as of when it
 * was put there.  A heartbeat only stores the last-seen time; when the slot
 * comes, the keeper looks at the node's real last-seen time and either
 * demotes it or puts it at its real deadline (lazy re-check), so a tick costs
 * the nodes whose slot came, and a pool of heartbeating nodes costs each node
 * one look per TTL.  A heartbeat that brings a node back up (on a worker)
 * queues the node's key for the keeper, which feeds the change and moves the
 * node to its new deadline at once.  Nodes that self-preservation holds back
 * leave the wheel for their pool's held list until the mode ends.  The wheel,
 * the held lists, the per-pool counts of nodes by state and the pools'
 * liveness TTLs are the keeper's alone.
 *
 * Secondary indexes: each pool also keeps one sorted index per specialization
 * and one per label (key and value) its nodes have (ListNodes and Watch
 * snapshots with a specialization or labels page through the smallest, not
 * the whole pool), maintained and published the same way and in the same
 * round as the pool's.
 *
 * Index cost: an index is a list of sorted chunks of at most CHUNK_MAX
 * nodes (see windex_t).  Adding or removing a node moves at most a chunk's
 * pointers plus the list of chunks, and each keeper round publishes copies of
 * only the chunks it changed and a new list of them (O(CHUNK_MAX) per changed
 * chunk plus O(n / CHUNK_MAX), shared by all the ops of that round).  A node
 * costs one pointer in the pool's keeper chunks and one in the published
 * copy, and the same in each of its specializations' indexes.
 *
 * Revisions and the watch feed: only the keeper stamps revisions, and each
 * revision it stamps writes one entry of the pool's feed (a ring of
 * watch_history slots, slot = revision % size, holding the node as it was
 * after the change: a reference to its static part and a copy of its live
 * fields; pool changes write an entry without a node).
 * State changes are fed by comparing each node's state with the last state
 * the feed saw (fed_state): the sweep does it for the transitions it makes,
 * and a heartbeat that brings a node back up (on a worker) only flags the
 * pool and wakes the keeper, which feeds it at once.  The feed's head, which
 * watchers poll, is published after the pool's index, so a watcher that
 * reads the head and then the index gets a snapshot at least as new as the
 * head.  Entries pushed out of the ring (or past watch_bytes) go through
 * call_rcu.
 */
#include "config.h"

#include "core/gx_reg.h"

#include <math.h>
#include <stddef.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "core/gx_urcu.h"
#include "transport/gx_server.h"
#include "util/gx_clock.h"
#include "util/gx_crypto.h"
#include "util/gx_error.h"
#include "util/gx_log.h"
#include "util/gx_stats.h"

#define PENDING_BUCKETS 4096 /* power of two */
#define TOKEN_BYTES 24 /* 192 random bits, sent as 48 hex digits */
#define TOKEN_HEX (TOKEN_BYTES * 2)
#define RECORD_VERSION 1
#define KEY_MAX (GX_REG_POOL_NAME_MAX + 1 + GX_REG_NODE_ID_MAX)
#define CKPT_BATCH 256
#define WHEEL_SLOTS 4096 /* one turn: 409.6 s at the default tick */
#define HELD UINT64_MAX /* due_slot of a node on its pool's held list */
#define DEFAULTS_KEY "registry.default_pools" /* META: the default pools were made once */
/*
 * META: how many times the registry was started on this store.  Revisions are
 * not stored per change, so each start moves every pool's revision to
 * epoch << 32: every revision a client saw before the restart is then older
 * than the history, and a Watch resuming from it gets RESET (API.md).
 */
#define EPOCH_KEY "registry.revision_epoch"

enum { OP_NODE_PUT = 1, OP_NODE_DEL, OP_POOL_PUT, OP_POOL_DEL };
enum {
    EV_UPSERT = GALAXY__POOL__V1__WATCH_EVENT_TYPE__WATCH_EVENT_TYPE_UPSERT,
    EV_REMOVED = GALAXY__POOL__V1__WATCH_EVENT_TYPE__WATCH_EVENT_TYPE_REMOVED
};
#define FEV_OVERHEAD 48 /* heap bytes per unpacked string or sub-message, about */
enum { F_NEW = 1, F_REFRESH = 2, F_DRAIN = 4 };
enum {
    ST_HEALTHY = GALAXY__POOL__V1__NODE_STATE__NODE_STATE_HEALTHY,
    ST_SUSPECT = GALAXY__POOL__V1__NODE_STATE__NODE_STATE_SUSPECT,
    ST_DOWN = GALAXY__POOL__V1__NODE_STATE__NODE_STATE_DOWN,
    ST_DRAINING = GALAXY__POOL__V1__NODE_STATE__NODE_STATE_DRAINING
};

/* an intrusive circular list (keeper only): timer wheel slots, held nodes */
typedef struct tlink_s {
    struct tlink_s *prev, *next;
} tlink_t;

/* a key a worker queued for the keeper: that node's state went back up */
typedef struct restate_s {
    struct restate_s *next;
    size_t key_len;
    char key[];
} restate_t;

/*
 * A node's stored form: one malloc'ed block holding this header, the lease
 * token and the unpacked Node with all its strings and arrays (carved out of
 * the block by node_record_parse), so that a node costs one allocation here
 * instead of twenty, and no slack.  Immutable; shared by the node and the
 * watch feed's entries of it, each holding a reference (ninfo_put).
 */
typedef struct {
    struct rcu_head rcu;
    gx_pb_node_t *pb; /* inside the block */
    uint32_t refs;    /* atomic */
    uint32_t size;    /* of the block */
    char token[];     /* NUL-terminated */
} ninfo_t;

typedef struct {
    struct rcu_head rcu;
    gx_pb_pool_t *pb;
} pinfo_t;

/*
 * An index of nodes sorted by id, in chunks of at most CHUNK_MAX: the keeper
 * changes its own chunks (under the writer lock), and publishes by copying
 * only the chunks that changed since the last publication into immutable
 * ones, listed by a new directory that readers find through one pointer.
 * A change costs O(CHUNK_MAX) to make and to publish whatever the index's
 * size (a flat array cost O(nodes) for both: at 200k nodes, the copy was 15 %
 * of a registration's CPU).
 *
 * A copy-on-write index (cow: the specialization and label indexes) keeps no
 * copies: publishing hands the keeper's chunks themselves to readers (a
 * chunk's pub is then the chunk), and the keeper copies a published chunk
 * before it changes it, the published one retiring.  It costs the same
 * copies and half the memory (a node costs one pointer in it, not two), but
 * taking a node out may then need memory: windex_remove() can fail, which
 * the secondary indexes survive (they are rebuilt, see node_index_del()) and
 * the pool's index could not (a node must leave it before it is freed).
 */
#define CHUNK_MAX 512

typedef struct chunk_s {
    struct rcu_head rcu;
    uint32_t n, cap;
    struct chunk_s *pub;  /* keeper's chunk: its published copy (cow: itself), NULL once
                             changed since */
    struct chunk_s *next; /* published copy: on the index's retired list */
    gx_reg_node_t *v[];
} chunk_t;

/*
 * What readers see: the published chunks in order, with the position of each
 * one's first.  A copy-on-write index of one chunk publishes the chunk itself
 * instead, its address tagged with PUB_SOLO (no directory: a label that names
 * a single node costs its pool one chunk, see pub_runs()).
 */
typedef struct {
    struct rcu_head rcu;
    size_t n, total;
    struct {
        const chunk_t *c;
        size_t first;
    } run[];
} cdir_t;

typedef struct {
    chunk_t **c;      /* keeper: the chunks in id order, none empty (&one while cap is 1) */
    size_t n, cap;    /* chunks */
    size_t total;     /* nodes */
    int dirty;        /* changed since pub was made */
    int cow;          /* copy-on-write (see above) */
    chunk_t *one;     /* c's only slot while cap is 1 (cow: an index of one chunk) */
    chunk_t *retired; /* published copies pub still lists, replaced since: freed after it */
    void *pub;        /* RCU: a cdir_t, or a chunk_t tagged PUB_SOLO; NULL: empty */
} windex_t;

#define PUB_SOLO ((uintptr_t)1)

/* the one chunk of a published copy tagged PUB_SOLO, or NULL: a directory (or nothing) */
static const chunk_t *
pub_solo(const void *pub)
{
    uintptr_t u = (uintptr_t)pub;

    return u & PUB_SOLO ? (const chunk_t *)(u & ~PUB_SOLO) : NULL;
}

/* the directory of a published copy, or NULL: one chunk (or nothing) */
static const cdir_t *
pub_dir(const void *pub)
{
    uintptr_t u = (uintptr_t)pub;

    return u & PUB_SOLO ? NULL : (const cdir_t *)u;
}

/* the number of chunks of a published copy */
static size_t
pub_runs(const void *pub)
{
    const cdir_t *d = pub_dir(pub);

    return d != NULL ? d->n : pub != NULL;
}

/* chunk @p i of a published copy */
static const chunk_t *
pub_chunk(const void *pub, size_t i)
{
    const cdir_t *d = pub_dir(pub);

    return d != NULL ? d->run[i].c : pub_solo(pub);
}

/* the position in the whole index of chunk @p i's first node */
static size_t
pub_first(const void *pub, size_t i)
{
    const cdir_t *d = pub_dir(pub);

    return d != NULL ? d->run[i].first : 0;
}

/* the nodes of a published copy */
static size_t
pub_total(const void *pub)
{
    const cdir_t *d = pub_dir(pub);

    return d != NULL ? d->total : pub != NULL ? pub_solo(pub)->n : 0;
}

/* the keeper's nodes of an index in order: for (wit_t it = {&x}; (n = wit_next(&it)) != NULL;) */
typedef struct {
    const windex_t *x;
    size_t ci, i;
} wit_t;

/* the index of one specialization of a pool (its nodes that have it) */
typedef struct sidx_s {
    struct rcu_head rcu;
    windex_t ix;
    struct sidx_s *next; /* keeper: on the pool's list to publish, or to free */
    int queued;          /* keeper: on the list to publish */
    char name[GX_REG_SPEC_MAX + 1];
} sidx_t;

/* a pool's specialization indexes by name, as readers see them (immutable) */
typedef struct {
    struct rcu_head rcu;
    size_t n;
    sidx_t *v[];
} sdir_t;

/* one entry of a watch feed (immutable once published) */
typedef struct {
    struct rcu_head rcu;
    uint64_t revision;
    int type;
    size_t bytes;         /* what it costs, about */
    ninfo_t *ni;          /* a reference to the node's static part; NULL for pool changes */
    gx_pb_node_t node;    /* the node as it was: ni's, with the live fields of the time */
    size_t n_old_specs;
    char **old_specs;     /* heap */
} fev_t;

struct gx_reg_feed_s {
    uint32_t refs;        /* atomics: refs, dead, head, first */
    uint32_t dead;
    uint64_t head;        /* the last revision watchers may read */
    uint64_t first;       /* the oldest revision still held (first > head: none) */
    uint64_t base;        /* history starts after it (set once, before the workers) */
    uint64_t written;     /* keeper only from here on */
    size_t bytes;
    size_t max_bytes;
    size_t cap;
    fev_t *slot[];        /* RCU pointers, [revision % cap] */
};

struct gx_reg_node_s {
    struct cds_lfht_node ht;
    struct rcu_head rcu;
    gx_reg_pool_t *pool;
    char *key;         /* "<pool>\0<id>", in the node's block */
    size_t key_len;
    const char *id;    /* inside key */
    ninfo_t *info;     /* RCU */
    uint64_t seen_ms;  /* monotonic; atomics from here on */
    int64_t hb_unix_ms;
    uint64_t load_bits;
    uint32_t running;
    uint32_t state;
    uint32_t draining;
    uint32_t live;
    uint64_t revision;
    uint64_t *flaps;   /* GX_REG_FLAP_RING times, allocated at the first flap */
    uint32_t flap_pos;
    uint32_t fed_state; /* keeper only: the state the watch feed last saw */
    int64_t ckpt_hb;   /* keeper only */
    tlink_t tl;         /* keeper only: in a wheel slot or the pool's held list */
    uint64_t due_slot;  /* keeper only: the wheel slot, or HELD */
    uint64_t down_ms;   /* keeper only: when the keeper demoted it to DOWN */
    void *ext;          /* the jobs' record of the node (gx_reg_node_ext), under their lock */
    gx_reg_node_t *grave_next;
};

struct gx_reg_pool_s {
    struct cds_lfht_node ht;
    struct rcu_head rcu;
    char *name;
    pinfo_t *info;     /* RCU */
    uint64_t revision; /* atomics */
    uint32_t node_count;
    uint32_t live;
    uint32_t restate;  /* a worker changed a node's state and could not queue it */
    uint32_t hb_interval; /* atomics: interval and TTL handed out now */
    uint32_t hb_ttl;
    uint32_t live_ttl; /* atomic: the TTL liveness applies now */
    uint32_t sp;       /* atomic: 1 in self-preservation */
    uint64_t sp_entries; /* atomic */
    gx_reg_feed_t *feed; /* one reference, dropped with the pool */
    /* keeper only */
    uint32_t hold_ttl;   /* a longer TTL handed out lately, kept until hold_until */
    uint64_t hold_until;
    uint32_t n_up, n_suspect, n_down; /* nodes by the state the feed saw */
    tlink_t held;        /* nodes self-preservation holds back */
    /* under the writer lock */
    uint32_t pending_adds;
    windex_t ix;         /* all nodes (ix.pub: RCU) */
    sdir_t *sdir;        /* RCU: the specialization indexes readers see; NULL: none */
    uint32_t spec_stale; /* atomic: the specialization and label indexes are not to be trusted */
    sidx_t **sv;         /* the specialization indexes by name */
    size_t sn, scap;
    int sdir_dirty;      /* a specialization came or went since sdir was made */
    sidx_t *squeue;      /* indexes to publish */
    sidx_t *sdead;       /* empty indexes left out of sv, still in sdir */
    struct lidx_s *lqueue; /* label indexes to publish */
    /*
     * The nodes the feed saw SUSPECT, DOWN or DRAINING (copy-on-write, trusted
     * on spec_stale like the others): a listing of those states reads them
     * only.  Only the keeper takes a node out of HEALTHY, and it raises
     * unwell_moving first and lowers it once the index is published with
     * the node; meanwhile readers take another index.
     */
    windex_t unwell;
    uint32_t unwell_moving; /* atomic */
    gx_reg_t *reg;
};

struct gx_reg_s {
    gx_store_t *st;
    gx_reg_opts_t o;
    struct cds_lfht *pools, *nodes;
    pthread_mutex_t wlock;
    gx_reg_op_t *pending[PENDING_BUCKETS]; /* writes in flight by key hash (wlock) */
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    gx_reg_op_t *qhead, **qtail;
    int stop;
    int kick;          /* under qlock: a pool has state changes to feed */
    restate_t *restate; /* under qlock: nodes whose state a heartbeat brought up */
    int keeper_running;
    pthread_t keeper;
    uint64_t next_ckpt;
    uint64_t ckpts, ckpt_records; /* keeper writes, metrics read (atomics) */
    uint64_t ckpt_last_ns;        /* the last checkpoint's scan and submit */
    gx_reg_node_t *grave;
    tlink_t *wheel;    /* keeper only: WHEEL_SLOTS lists of nodes by deadline */
    uint64_t wheel_at; /* keeper only: the last slot the wheel went past */
    size_t n_nodes;    /* keeper writes, atomic: nodes in the table */
    uint64_t node_mem; /* keeper writes, atomic: node_charge() of the nodes in the table */
    size_t nodes_pending;  /* under the writer lock: new nodes queued */
    uint64_t mem_pending;  /* under the writer lock: growth of node_mem queued */
    gx_reg_listener_t listener;
    int changed;       /* keeper only: the listener heard of changes not yet settled */
    unsigned long node_buckets; /* keeper only: the table size last asked for */
    struct cds_lfht *labels;    /* the pools' label indexes (lidx_t) */
};

gx_reg_t *gx__reg;

static __thread int rcu_online;

/* ================================================================== pure helpers */

static int
in_set(int c, const char *set)
{
    return c != '\0' && strchr(set, c) != NULL;
}

static int
is_lower_digit(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int
gx_reg_valid_pool_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > GX_REG_POOL_NAME_MAX || !is_lower_digit(s[0]))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!is_lower_digit(s[i]) && s[i] != '-')
            return 0;
    return 1;
}

int
gx_reg_valid_node_id(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > GX_REG_NODE_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int c = s[i];
        if (!((c >= 'A' && c <= 'Z') || is_lower_digit(c) || in_set(c, "._:-")))
            return 0;
    }
    return 1;
}

int
gx_reg_valid_spec(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > GX_REG_SPEC_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_lower_digit(s[i]) && s[i] != '-')
            return 0;
    return 1;
}

/* a word with every byte @b */
#define BYTES(b) (UINT64_C(0x0101010101010101) * (b))

/*
 * Whether a byte of @w is below '!' or above '~', eight at a time: the
 * first term has a byte's top bit set when the byte is below 0x21 (exact
 * for "any", although a borrow may mark the wrong byte), the second when
 * it is above 0x7e.  A lease token is checked on every heartbeat.
 */
static inline int
word_unprintable(uint64_t w)
{
    return ((((w - BYTES(0x21)) & ~w) | (w + BYTES(0x01)) | w) & BYTES(0x80)) != 0;
}

int
gx_reg_valid_token(const char *s, size_t max)
{
    size_t n = strlen(s), i = 0;
    uint64_t w;

    if (n == 0 || n > max)
        return 0;
    for (; i + sizeof(w) <= n; i += sizeof(w)) {
        memcpy(&w, s + i, sizeof(w));
        if (word_unprintable(w))
            return 0;
    }
    for (; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

Galaxy__Pool__V1__NodeState
gx_reg_liveness(uint64_t elapsed_ms, uint32_t ttl_ms, int draining, uint32_t retention_factor,
                int *remove)
{
    uint64_t ttl = ttl_ms;

    *remove = 0;
    if (elapsed_ms < ttl)
        return draining ? GALAXY__POOL__V1__NODE_STATE__NODE_STATE_DRAINING
                        : GALAXY__POOL__V1__NODE_STATE__NODE_STATE_HEALTHY;
    if (elapsed_ms < 2 * ttl)
        return GALAXY__POOL__V1__NODE_STATE__NODE_STATE_SUSPECT;
    *remove = elapsed_ms >= 2 * ttl + (uint64_t)retention_factor * ttl;
    return GALAXY__POOL__V1__NODE_STATE__NODE_STATE_DOWN;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t
gx_reg_page_token_encode(const char *last_id, char *out, size_t outlen)
{
    const unsigned char *s = (const unsigned char *)last_id;
    size_t n = strlen(last_id), o = 0;

    if ((n + 2) / 3 * 4 + 1 > outlen)
        return 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        size_t k = n - i < 3 ? n - i : 3;
        if (k > 1)
            v |= (uint32_t)s[i + 1] << 8;
        if (k > 2)
            v |= s[i + 2];
        for (size_t j = 0; j < k + 1; j++)
            out[o++] = b64url[(v >> (18 - 6 * j)) & 63];
    }
    out[o] = '\0';
    return o + 1;
}

int
gx_reg_page_token_decode(const char *token, char *out, size_t outlen)
{
    size_t n = strlen(token), o = 0;
    uint32_t acc = 0;
    int bits = 0;

    if (n == 0 || n % 4 == 1)
        return GX_EINVAL;
    for (size_t i = 0; i < n; i++) {
        const char *p = token[i] ? strchr(b64url, token[i]) : NULL;
        if (p == NULL)
            return GX_EINVAL;
        acc = (acc << 6) | (uint32_t)(p - b64url);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= outlen)
                return GX_EINVAL;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    return gx_reg_valid_node_id(out) ? 0 : GX_EINVAL;
}

int
gx_reg_token_equal(const char *a, const char *b)
{
    size_t la = strlen(a);

    /* the length of a lease token is no secret (the server's are all alike) */
    return la == strlen(b) && gx_ct_equal(a, b, la);
}

/* ================================================================== threads */

void
gx_reg_thread_online(void)
{
    if (!rcu_online) {
        rcu_register_thread();
        rcu_online = 1;
    }
}

void
gx_reg_thread_offline(void)
{
    if (rcu_online) {
        rcu_unregister_thread();
        rcu_online = 0;
    }
}

void
gx_reg_read_begin(void)
{
    gx_reg_thread_online();
    rcu_read_lock();
}

void
gx_reg_read_end(void)
{
    rcu_read_unlock();
}

static uint64_t
env_u64(const char *name, uint64_t def, uint64_t min, uint64_t max)
{
    const char *v = getenv(name);
    char *end;
    unsigned long long x;

    if (v == NULL || v[0] < '0' || v[0] > '9')
        return def;
    x = strtoull(v, &end, 10);
    return *end == '\0' && x >= min && x <= max ? x : def;
}

void
gx_reg_opts_init(gx_reg_opts_t *o)
{
    o->retention_factor = 10;
    o->checkpoint_ms = 30000;
    o->tick_ms = 100;
    o->watch_history = (uint32_t)env_u64("GALAXY_WATCH_HISTORY", GX_REG_WATCH_HISTORY, 1,
                                         GX_REG_WATCH_HISTORY_MAX);
    o->watch_bytes = (uint32_t)env_u64("GALAXY_WATCH_BYTES", GX_REG_WATCH_BYTES, 1 << 16,
                                     UINT32_MAX);
    o->self_preservation_min_nodes = 10;
    o->self_preservation_share = 50;
    o->max_heartbeats_per_second = 0;
    o->max_nodes = 2000000;
    o->max_node_memory_mb = 2048;
}

/* ================================================================== intrusive lists */

static void
tlist_init(tlink_t *h)
{
    h->prev = h->next = h;
}

static int
tlist_empty(const tlink_t *h)
{
    return h->next == h;
}

static void
tlist_add(tlink_t *h, tlink_t *e)
{
    e->next = h->next;
    e->prev = h;
    h->next->prev = e;
    h->next = e;
}

/* unlinks @p e from whatever list holds it; a no-op when it is in none */
static void
tlist_del(tlink_t *e)
{
    if (e->next == NULL)
        return;
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->prev = e->next = NULL;
}

/* moves every entry of @p from to the empty head @p to */
static void
tlist_move(tlink_t *from, tlink_t *to)
{
    tlist_init(to);
    if (tlist_empty(from))
        return;
    to->next = from->next;
    to->prev = from->prev;
    to->next->prev = to;
    to->prev->next = to;
    tlist_init(from);
}

static gx_reg_node_t *
tlist_node(tlink_t *e)
{
    return caa_container_of(e, gx_reg_node_t, tl);
}

/* ================================================================== objects */

static uint64_t
hash_bytes(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

typedef struct {
    const char *key;
    size_t len;
} hkey_t;

static int
node_match(struct cds_lfht_node *ht, const void *key)
{
    const gx_reg_node_t *n = caa_container_of(ht, gx_reg_node_t, ht);
    const hkey_t *k = key;

    return n->key_len == k->len && memcmp(n->key, k->key, k->len) == 0;
}

static int
pool_match(struct cds_lfht_node *ht, const void *key)
{
    const gx_reg_pool_t *p = caa_container_of(ht, gx_reg_pool_t, ht);

    return strcmp(p->name, key) == 0;
}

static void
ninfo_free(ninfo_t *ni)
{
    free(ni); /* the Node lives in the same block */
}

static void
ninfo_free_rcu(struct rcu_head *h)
{
    ninfo_free(caa_container_of(h, ninfo_t, rcu));
}

/* drops a reference; the last one frees after a grace period (readers may hold it) */
static void
ninfo_put(ninfo_t *ni)
{
    if (ni != NULL && uatomic_sub_return(&ni->refs, 1) == 0)
        call_rcu(&ni->rcu, ninfo_free_rcu);
}

static void
pinfo_free(pinfo_t *pi)
{
    if (pi == NULL)
        return;
    if (pi->pb != NULL)
        protobuf_c_message_free_unpacked(&pi->pb->base, NULL);
    free(pi);
}

static void
pinfo_free_rcu(struct rcu_head *h)
{
    pinfo_free(caa_container_of(h, pinfo_t, rcu));
}

/* frees a block that is one malloc and starts with its rcu_head (chunk_t, cdir_t, sdir_t) */
static void
block_free_rcu(struct rcu_head *h)
{
    free(h);
}
_Static_assert(offsetof(chunk_t, rcu) == 0, "block_free_rcu frees the rcu_head's address");
_Static_assert(offsetof(cdir_t, rcu) == 0, "block_free_rcu frees the rcu_head's address");
_Static_assert(offsetof(sdir_t, rcu) == 0, "block_free_rcu frees the rcu_head's address");

/* frees all of @p x at once: no reader can reach it any more */
static void
windex_free(windex_t *x)
{
    for (size_t i = 0; i < x->n; i++) {
        if (x->c[i]->pub != x->c[i])
            free(x->c[i]->pub);
        free(x->c[i]);
    }
    while (x->retired != NULL) {
        chunk_t *r = x->retired;
        x->retired = r->next;
        free(r);
    }
    if (x->c != &x->one)
        free(x->c);
    free((void *)pub_dir(x->pub)); /* a solo chunk was freed above, as a chunk */
    memset(x, 0, sizeof(*x));
}

static void
sidx_free(sidx_t *s)
{
    if (s == NULL)
        return;
    windex_free(&s->ix);
    free(s);
}

static void
sidx_free_rcu(struct rcu_head *h)
{
    sidx_free(caa_container_of(h, sidx_t, rcu));
}

static void
fev_free(fev_t *e)
{
    if (e == NULL)
        return;
    ninfo_put(e->ni);
    for (size_t i = 0; i < e->n_old_specs; i++)
        free(e->old_specs[i]);
    free(e->old_specs);
    free(e);
}

static void
fev_free_rcu(struct rcu_head *h)
{
    fev_free(caa_container_of(h, fev_t, rcu));
}

static gx_reg_feed_t *
feed_new(size_t cap, size_t max_bytes)
{
    gx_reg_feed_t *f = calloc(1, sizeof(*f) + cap * sizeof(f->slot[0]));

    if (f == NULL)
        return NULL;
    f->refs = 1;
    f->first = 1;
    f->cap = cap;
    f->max_bytes = max_bytes;
    return f;
}

/* the history starts after @p rev (start-up, and pools made at run time: 0) */
static void
feed_start(gx_reg_feed_t *f, uint64_t rev)
{
    f->base = f->written = rev;
    uatomic_set(&f->head, rev);
    uatomic_set(&f->first, rev + 1);
}

/* the last reference: no watcher holds it and the pool is past its grace period */
static void
feed_free(gx_reg_feed_t *f)
{
    for (size_t i = 0; i < f->cap; i++)
        fev_free(f->slot[i]);
    free(f);
}

static void
node_free(gx_reg_node_t *n)
{
    if (n == NULL)
        return;
    ninfo_put(n->info);
    free(n->flaps);
    free(n);
}

static void
node_free_rcu(struct rcu_head *h)
{
    node_free(caa_container_of(h, gx_reg_node_t, rcu));
}

static void
pool_free(gx_reg_pool_t *p)
{
    if (p == NULL)
        return;
    pinfo_free(p->info);
    gx_reg_feed_release(p->feed);
    for (size_t i = 0; i < p->sn; i++)
        sidx_free(p->sv[i]);
    while (p->sdead != NULL) {
        sidx_t *s = p->sdead;
        p->sdead = s->next;
        sidx_free(s);
    }
    free(p->sv);
    free(p->sdir);
    windex_free(&p->ix);
    windex_free(&p->unwell);
    free(p->name);
    free(p);
}

static void
pool_free_rcu(struct rcu_head *h)
{
    pool_free(caa_container_of(h, gx_reg_pool_t, rcu));
}

/* "<pool>\0<id>" into @p buf; @return its length or 0 when too long */
static size_t
node_key(const char *pool, const char *id, char *buf)
{
    size_t lp = strlen(pool), li = strlen(id);

    if (lp > GX_REG_POOL_NAME_MAX || li > GX_REG_NODE_ID_MAX)
        return 0;
    memcpy(buf, pool, lp + 1);
    memcpy(buf + lp + 1, id, li);
    return lp + 1 + li;
}

static gx_reg_node_t *
node_new(gx_reg_pool_t *p, const char *key, size_t key_len, ninfo_t *info)
{
    /* the key right behind the node: a lookup's compare reads the node's own lines */
    gx_reg_node_t *n = calloc(1, sizeof(*n) + key_len + 1);

    if (n == NULL)
        return NULL;
    n->key = (char *)(n + 1);
    memcpy(n->key, key, key_len);
    n->key[key_len] = '\0';
    n->key_len = key_len;
    n->id = n->key + strlen(p->name) + 1;
    n->pool = p;
    n->info = info;
    n->live = 1;
    cds_lfht_node_init(&n->ht);
    return n;
}

/*
 * The memory a node is charged with against registry.max_node_memory_mb: its
 * block, its table entry and its places in its pool's indexes (two pointers in
 * the pool's, the keeper's and the published copy's; one in each of its
 * specializations' and labels', which are copy-on-write, and one in the
 * index of nodes out of HEALTHY, where any node may go).  A label index
 * itself is charged while it exists (lidx_cost()), to whichever node made it.
 */
static uint64_t
node_charge(const ninfo_t *ni, size_t key_len)
{
    size_t slots = 3 + ni->pb->n_specializations + ni->pb->n_labels;

    return ni->size + sizeof(gx_reg_node_t) + key_len + 1 + slots * sizeof(void *);
}

/* keeper: the table's node count and charge changed by @p dn nodes and @p dmem bytes */
static void
nodes_held_add(gx_reg_t *reg, long dn, int64_t dmem)
{
    uatomic_set(&reg->n_nodes, reg->n_nodes + (size_t)dn);
    uatomic_set(&reg->node_mem, reg->node_mem + (uint64_t)dmem);
}

static gx_reg_pool_t *
pool_new(gx_reg_t *reg, pinfo_t *info)
{
    gx_reg_pool_t *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->name = strdup(info->pb->name);
    p->feed = feed_new(reg->o.watch_history, reg->o.watch_bytes);
    if (p->name == NULL || p->feed == NULL) {
        free(p->name);
        free(p->feed);
        free(p);
        return NULL;
    }
    p->info = info;
    p->reg = reg;
    p->live = 1;
    p->unwell.cow = 1;
    /* the pool's own values until the keeper's next round says otherwise */
    p->hb_interval = info->pb->heartbeat_interval_ms;
    p->hb_ttl = p->live_ttl = info->pb->node_ttl_ms;
    tlist_init(&p->held);
    cds_lfht_node_init(&p->ht);
    return p;
}

/* ================================================================== reads */

/*
 * The pool this thread found last.  Pools are few and a call names one,
 * which the access rules and then the handler look up: the second lookup
 * is the memo's.  The memo holds while no pool has left any registry since
 * it was made: a pool is unlinked, pools_gone grows, and only then is the
 * pool freed, after a grace period; a reader that still reads the old count
 * is in a read-side section that began before that grace period.
 */
static unsigned long pools_gone;
static __thread struct {
    const gx_reg_t *reg;
    unsigned long gone;
    gx_reg_pool_t *p;
} pool_memo;

/* a pool was unlinked (or a registry is going): every thread's memo is void */
static void
pools_forget(void)
{
    uatomic_inc(&pools_gone);
    cmm_smp_mb();
}

gx_reg_pool_t *
gx_reg_pool_find(gx_reg_t *reg, const char *name)
{
    unsigned long gone = uatomic_read(&pools_gone);
    gx_reg_pool_t *p = pool_memo.p;
    struct cds_lfht_iter it;
    struct cds_lfht_node *ht;

    if (p != NULL && pool_memo.reg == reg && pool_memo.gone == gone && strcmp(p->name, name) == 0)
        return p;
    cmm_smp_rmb(); /* the count is read before the table */
    cds_lfht_lookup(reg->pools, hash_bytes(name, strlen(name)), pool_match, name, &it);
    ht = cds_lfht_iter_get_node(&it);
    if (ht == NULL)
        return NULL;
    p = caa_container_of(ht, gx_reg_pool_t, ht);
    pool_memo.reg = reg;
    pool_memo.gone = gone;
    pool_memo.p = p;
    return p;
}

void
gx_reg_pool_foreach(gx_reg_t *reg, int (*fn)(gx_reg_pool_t *p, void *arg), void *arg)
{
    struct cds_lfht_iter it;
    struct cds_lfht_node *hn;

    /* cds_lfht_for_each_entry() would take container_of() of the NULL that ends the walk */
    cds_lfht_for_each(reg->pools, &it, hn) {
        if (fn(caa_container_of(hn, gx_reg_pool_t, ht), arg) != 0)
            return;
    }
}

void
gx_reg_pool_fill(const gx_reg_pool_t *p, gx_pb_pool_t *out)
{
    const pinfo_t *pi = rcu_dereference(p->info);

    *out = *pi->pb;
    out->node_count = uatomic_read(&p->node_count);
    out->self_preservation = uatomic_read(&p->sp) != 0;
}

uint64_t
gx_reg_pool_revision(const gx_reg_pool_t *p)
{
    return uatomic_read(&p->revision);
}

void
gx_reg_pool_heartbeat(const gx_reg_pool_t *p, uint32_t *interval_ms, uint32_t *ttl_ms)
{
    if (interval_ms != NULL)
        *interval_ms = uatomic_read(&p->hb_interval);
    if (ttl_ms != NULL)
        *ttl_ms = uatomic_read(&p->hb_ttl);
}

static gx_reg_node_t *
node_lookup(gx_reg_t *reg, const char *key, size_t len)
{
    hkey_t k = {key, len};
    struct cds_lfht_iter it;
    struct cds_lfht_node *ht;

    cds_lfht_lookup(reg->nodes, hash_bytes(key, len), node_match, &k, &it);
    ht = cds_lfht_iter_get_node(&it);
    return ht != NULL ? caa_container_of(ht, gx_reg_node_t, ht) : NULL;
}

gx_reg_node_t *
gx_reg_node_find(gx_reg_t *reg, const char *pool, const char *id)
{
    char key[KEY_MAX + 1];
    size_t len = node_key(pool, id, key);

    return len > 0 ? node_lookup(reg, key, len) : NULL;
}

Galaxy__Pool__V1__NodeState
gx_reg_node_state(const gx_reg_node_t *n)
{
    return (Galaxy__Pool__V1__NodeState)uatomic_read(&n->state);
}

/* the TTL liveness applies now (flap windows count in it too) */
static uint32_t
pool_ttl(const gx_reg_pool_t *p)
{
    return uatomic_read(&p->live_ttl);
}

static uint32_t
flap_count(const gx_reg_node_t *n, uint64_t now, uint32_t ttl)
{
    uint64_t window = 10 * (uint64_t)ttl;
    const uint64_t *ring = uatomic_read(&n->flaps);
    uint32_t c = 0;

    for (size_t i = 0; ring != NULL && i < GX_REG_FLAP_RING; i++) {
        uint64_t t = uatomic_read(&ring[i]);
        if (t != 0 && now - t < window)
            c++;
    }
    return c;
}

void
gx_reg_node_fill(const gx_reg_node_t *n, gx_pb_node_t *out)
{
    const ninfo_t *ni = rcu_dereference(n->info);
    uint64_t bits = uatomic_read(&n->load_bits);

    *out = *ni->pb;
    out->state = gx_reg_node_state(n);
    memcpy(&out->load, &bits, sizeof(bits));
    out->running_jobs = uatomic_read(&n->running);
    out->last_heartbeat_unix_ms = uatomic_read(&n->hb_unix_ms);
    out->revision = uatomic_read(&n->revision);
    out->flap_count = flap_count(n, gx_now_ms(), pool_ttl(n->pool));
}

void
gx_reg_node_live_fields(const gx_reg_node_t *n, double *load, uint32_t *running,
                        uint32_t *flaps)
{
    uint64_t bits = uatomic_read(&n->load_bits);

    memcpy(load, &bits, sizeof(bits));
    *running = uatomic_read(&n->running);
    /* most nodes never flapped: no clock reading for them */
    *flaps = uatomic_read(&n->flaps) == NULL ? 0 : flap_count(n, gx_now_ms(), pool_ttl(n->pool));
}

void *
gx_reg_node_ext(const gx_reg_node_t *n)
{
    return n->ext;
}

void
gx_reg_node_set_ext(gx_reg_node_t *n, void *ext)
{
    n->ext = ext;
}

int
gx_reg_node_token_ok(const gx_reg_node_t *n, const char *token)
{
    return gx_reg_token_equal(token, rcu_dereference(n->info)->token);
}

static size_t
lower_bound(gx_reg_node_t *const *v, size_t n, const char *id)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(v[mid]->id, id) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* positions @p c at the first node of @p x's published copy whose id is greater than @p after */
static size_t
windex_cursor(const windex_t *x, const char *after, gx_reg_cursor_t *c)
{
    const void *d = rcu_dereference(x->pub);
    size_t lo = 0, hi = pub_runs(d);

    c->dir = d;
    c->run = c->at = 0;
    if (after != NULL && after[0] && hi > 0) {
        /* the first run whose last id is greater */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            const chunk_t *k = pub_chunk(d, mid);
            if (strcmp(k->v[k->n - 1]->id, after) <= 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        c->run = lo;
        if (lo < pub_runs(d))
            c->at = lower_bound(pub_chunk(d, lo)->v, pub_chunk(d, lo)->n, after);
    }
    return pub_total(d);
}

int
gx_reg_cursor_next(gx_reg_cursor_t *c, gx_reg_node_t *const **v, size_t *n)
{
    const chunk_t *k;

    if (c->run >= pub_runs(c->dir))
        return 0;
    k = pub_chunk(c->dir, c->run);
    *v = k->v + c->at;
    *n = k->n - c->at;
    c->run++;
    c->at = 0;
    return 1;
}

gx_reg_node_t *
gx_reg_cursor_nth(const gx_reg_cursor_t *c, size_t k)
{
    const void *d = c->dir;
    size_t lo = 0, hi = pub_runs(d);

    if (k >= pub_total(d))
        return NULL;
    while (hi - lo > 1) { /* the last run starting at or before k */
        size_t mid = lo + (hi - lo) / 2;
        if (pub_first(d, mid) <= k)
            lo = mid;
        else
            hi = mid;
    }
    return pub_chunk(d, lo)->v[k - pub_first(d, lo)];
}

/* the first of @p v[0..n) (sorted by name) whose name is not below @p spec */
static size_t
spec_search(sidx_t *const *v, size_t n, const char *spec)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(v[mid]->name, spec) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* the published index of @p spec in @p p, or NULL: no node has it */
static const windex_t *
spec_published(const gx_reg_pool_t *p, const char *spec)
{
    const sdir_t *d = rcu_dereference(p->sdir);
    size_t at = d != NULL ? spec_search(d->v, d->n, spec) : 0;

    if (d == NULL || at == d->n || strcmp(d->v[at]->name, spec) != 0)
        return NULL;
    return &d->v[at]->ix;
}

/* the nodes in @p x's published copy */
static size_t
windex_size(const windex_t *x)
{
    return pub_total(rcu_dereference(x->pub));
}

static size_t
cursor_none(gx_reg_cursor_t *c)
{
    c->dir = NULL;
    c->run = c->at = 0;
    return 0;
}


const gx_pb_node_t *
gx_reg_node_info(const gx_reg_node_t *n)
{
    return rcu_dereference(n->info)->pb;
}

int
gx_reg_node_live(const gx_reg_node_t *n)
{
    return (int)uatomic_read(&n->live);
}

const char *
gx_reg_node_id(const gx_reg_node_t *n)
{
    return n->id;
}

/* ================================================================== watch feed: reads */

gx_reg_feed_t *
gx_reg_pool_feed(gx_reg_pool_t *p)
{
    uatomic_inc(&p->feed->refs);
    return p->feed;
}

int
gx_reg_pool_has_feed(const gx_reg_pool_t *p, const gx_reg_feed_t *f)
{
    return p->feed == f;
}

void
gx_reg_feed_release(gx_reg_feed_t *f)
{
    if (f != NULL && uatomic_sub_return(&f->refs, 1) == 0)
        feed_free(f);
}

uint64_t
gx_reg_feed_head(const gx_reg_feed_t *f)
{
    uint64_t h = uatomic_read(&f->head);

    cmm_smp_rmb(); /* what the keeper published before the head (index, entries) */
    return h;
}

int
gx_reg_feed_dead(const gx_reg_feed_t *f)
{
    int dead = (int)uatomic_read(&f->dead);

    cmm_smp_rmb(); /* a head read after this includes the pool's last changes */
    return dead;
}

int
gx_reg_feed_covers(const gx_reg_feed_t *f, uint64_t rev)
{
    uint64_t head = gx_reg_feed_head(f), first = uatomic_read(&f->first);

    return rev > f->base && rev <= head && (rev == head || rev + 1 >= first);
}

int
gx_reg_feed_get(const gx_reg_feed_t *f, uint64_t rev, gx_reg_event_t *out)
{
    const fev_t *e = rcu_dereference(f->slot[rev % f->cap]);

    if (e == NULL || e->revision != rev)
        return GX_ENOTFOUND;
    out->revision = rev;
    out->type = e->type;
    out->node = e->ni != NULL ? &e->node : NULL;
    out->n_old_specs = e->n_old_specs;
    out->old_specs = e->old_specs;
    return 0;
}

size_t
gx_reg_feed_bytes(const gx_reg_feed_t *f)
{
    return uatomic_read(&f->bytes);
}

/* ================================================================== liveness */

/* Most nodes never flap: the ring is allocated at the first flap (published with a CAS). */
static void
flap_record(gx_reg_node_t *n, uint64_t now)
{
    uint64_t *ring = uatomic_read(&n->flaps);
    uint32_t i;

    if (ring == NULL) {
        uint64_t *fresh = calloc(GX_REG_FLAP_RING, sizeof(*fresh));
        if (fresh == NULL)
            return; /* a flap not counted: routing is a little less cautious */
        ring = uatomic_cmpxchg(&n->flaps, NULL, fresh);
        if (ring == NULL)
            ring = fresh;
        else
            free(fresh);
    }
    i = uatomic_add_return(&n->flap_pos, 1);
    uatomic_set(&ring[i % GX_REG_FLAP_RING], now);
}

static int
is_flap(uint32_t from, uint32_t to)
{
    return (from == GALAXY__POOL__V1__NODE_STATE__NODE_STATE_HEALTHY &&
            to == GALAXY__POOL__V1__NODE_STATE__NODE_STATE_SUSPECT) ||
           (from == GALAXY__POOL__V1__NODE_STATE__NODE_STATE_SUSPECT &&
            to == GALAXY__POOL__V1__NODE_STATE__NODE_STATE_HEALTHY);
}

/*
 * CAS the state.  The revision is stamped by the keeper when it feeds the
 * change (feed_states).  @return 1 when changed
 */
static int
node_transition(gx_reg_node_t *n, uint32_t from, uint32_t to, uint64_t now)
{
    if (from == to || uatomic_cmpxchg(&n->state, from, to) != from)
        return 0;
    if (is_flap(from, to))
        flap_record(n, now);
    return 1;
}

/*
 * A worker brought node @p n back up: the keeper feeds the change and moves
 * the node to its new deadline now.  The node goes by key (the keeper looks
 * it up: it may be gone by then); without memory for that, the pool is
 * flagged and the keeper goes through all its nodes.
 */
static void
keeper_kick(gx_reg_t *reg, gx_reg_pool_t *p, const gx_reg_node_t *n)
{
    restate_t *r = malloc(sizeof(*r) + n->key_len);

    if (r != NULL) {
        r->key_len = n->key_len;
        memcpy(r->key, n->key, n->key_len);
    } else {
        uatomic_set(&p->restate, 1);
    }
    pthread_mutex_lock(&reg->qlock);
    if (r != NULL) {
        r->next = reg->restate;
        reg->restate = r;
    }
    reg->kick = 1;
    pthread_cond_signal(&reg->qcond);
    pthread_mutex_unlock(&reg->qlock);
}

int
gx_reg_node_heartbeat(gx_reg_t *reg, const char *pool, const char *id, const char *token,
                      double load, uint32_t running_jobs,
                      Galaxy__Pool__V1__NodeState *state_out, uint32_t *interval_out,
                      uint64_t *revision_out)
{
    gx_reg_pool_t *p = gx_reg_pool_find(reg, pool);
    gx_reg_node_t *n = p != NULL ? gx_reg_node_find(reg, pool, id) : NULL;
    uint64_t bits, now = gx_event_ms(); /* when the heartbeat was read */
    uint32_t st, to;

    if (n == NULL)
        return GX_ENOTFOUND;
    if (!gx_reg_token_equal(token, rcu_dereference(n->info)->token))
        return GX_EDENIED;
    memcpy(&bits, &load, sizeof(bits));
    uatomic_set(&n->seen_ms, now);
    uatomic_set(&n->hb_unix_ms, gx_event_unix_ms());
    uatomic_set(&n->load_bits, bits);
    uatomic_set(&n->running, running_jobs);
    /*
     * The keeper demotes by CAS on the state, then reads seen_ms again; we
     * store seen_ms, then read the state: without a full barrier between
     * the two, both could miss the other and leave a live node SUSPECT.
     */
    cmm_smp_mb();
    st = uatomic_read(&n->state);
    to = uatomic_read(&n->draining) ? ST_DRAINING : ST_HEALTHY;
    if ((st == ST_SUSPECT || st == ST_DOWN) && node_transition(n, st, to, now))
        keeper_kick(reg, p, n);
    *state_out = gx_reg_node_state(n);
    *interval_out = uatomic_read(&p->hb_interval);
    *revision_out = gx_reg_pool_revision(p);
    return 0;
}

/* ================================================================== records */

/* value of a node record: version, token length, token, packed Node */
static uint8_t *
node_record(const gx_pb_node_t *pb, const char *token, size_t *len)
{
    size_t tl = strlen(token), pl = protobuf_c_message_get_packed_size(&pb->base);
    uint8_t *buf = malloc(2 + tl + pl);

    if (buf == NULL)
        return NULL;
    buf[0] = RECORD_VERSION;
    buf[1] = (uint8_t)tl;
    memcpy(buf + 2, token, tl);
    protobuf_c_message_pack(&pb->base, buf + 2 + tl);
    *len = 2 + tl + pl;
    return buf;
}

/*
 * A node's last-seen time lives in its record (as of the record's write) and,
 * once a checkpoint has written it, under the same key in GX_STORE_SEEN:
 * 8 bytes, little-endian.  The newer of the two is the node's.
 */
#define SEEN_LEN 8

static void
seen_put(uint8_t *b, int64_t ms)
{
    for (int i = 0; i < SEEN_LEN; i++)
        b[i] = (uint8_t)((uint64_t)ms >> (8 * i));
}

static int64_t
seen_get(const uint8_t *b)
{
    uint64_t v = 0;

    for (int i = SEEN_LEN - 1; i >= 0; i--)
        v = v << 8 | b[i];
    return (int64_t)v;
}

/* the two deletes that take a node out of the store: its record and its last-seen time */
static void
node_del_ops(gx_store_op_t *ops, const void *key, size_t key_len)
{
    ops[0] = (gx_store_op_t){GX_STORE_NODES, 1, key, key_len, NULL, 0};
    ops[1] = (gx_store_op_t){GX_STORE_SEEN, 1, key, key_len, NULL, 0};
}

/* A protobuf-c allocator carving 8-byte aligned pieces from [p, end); free does nothing. */
typedef struct {
    uint8_t *p, *end;
} carve_t;

#define CARVE_ALIGN(n) (((n) + 7) & ~(size_t)7)

static void *
carve_alloc(void *data, size_t n)
{
    carve_t *c = data;
    void *r;

    n = CARVE_ALIGN(n);
    if ((size_t)(c->end - c->p) < n)
        return NULL;
    r = c->p;
    c->p += n;
    return r;
}

static void
carve_free(void *data, void *ptr)
{
}

static ninfo_t *ninfo_copy(const gx_pb_node_t *pb, const char *token);

/*
 * Unpacks the Node of a record into scratch memory (the stack, or a heap
 * buffer for a big record), then deep-copies it into one block of exactly its
 * size behind the header and the token: the same block ninfo_copy() makes at
 * Register, without protobuf-c's unpacking scratch (its member slabs, ~2.8 KB
 * for a node with 64 labels), so that a node takes and is charged the same
 * memory whether it was registered or loaded.
 */
static ninfo_t *
node_record_parse(const uint8_t *v, size_t len)
{
    uint8_t stack[16384], *scratch = stack, *heap = NULL;
    char token[GX_REG_TOKEN_MAX + 1];
    size_t tl, plen, need;
    const uint8_t *body;
    carve_t c;
    ProtobufCAllocator a = {carve_alloc, carve_free, &c};
    gx_pb_node_t *pb = NULL;
    ninfo_t *ni;

    if (len < 2 || v[0] != RECORD_VERSION || v[1] > GX_REG_TOKEN_MAX || (size_t)v[1] + 2 > len)
        return NULL;
    tl = v[1];
    memcpy(token, v + 2, tl);
    token[tl] = '\0';
    body = v + 2 + tl;
    plen = len - 2 - tl;
    /* a Node unpacks into some times its packed size (many tiny labels: ~12x), plus structs */
    for (size_t mult = 16; pb == NULL && mult <= 64; mult *= 4) {
        need = 1024 + mult * plen;
        if (need > sizeof(stack)) {
            free(heap);
            scratch = heap = malloc(need);
            if (heap == NULL)
                return NULL;
        }
        c = (carve_t){scratch, scratch + (need > sizeof(stack) ? need : sizeof(stack))};
        pb = galaxy__pool__v1__node__unpack(&a, plen, body);
    }
    /* not a Node: at 64x it cannot fail for want of bytes */
    ni = pb != NULL ? ninfo_copy(pb, token) : NULL;
    free(heap);
    return ni;
}

/*
 * Deep copies of protobuf-c messages into one carved block, walking the
 * descriptors: what Register stores for a new node, made from the request's
 * Node without packing and unpacking it twice (node_record_parse).  Sizes
 * count exactly what the copy carves, each piece aligned as carve_alloc does.
 */
static size_t pb_deep_size(const ProtobufCMessage *m);
static ProtobufCMessage *pb_deep_copy(const ProtobufCMessage *m, carve_t *c);

static size_t
pb_elt_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4;
    }
}

/* a oneof member that is not the one set: its bytes belong to another member */
static int
pb_field_skipped(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    return (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
           *(const uint32_t *)((const uint8_t *)m + f->quantifier_offset) != f->id;
}

/* what the value in @p slot points to */
static size_t
pb_value_size(ProtobufCType type, const void *slot)
{
    if (type == PROTOBUF_C_TYPE_STRING) /* "" takes no room: see pb_value_copy */
        return *(char *const *)slot != NULL && **(char *const *)slot != '\0'
                   ? CARVE_ALIGN(strlen(*(char *const *)slot) + 1)
                   : 0;
    if (type == PROTOBUF_C_TYPE_BYTES)
        return CARVE_ALIGN(((const ProtobufCBinaryData *)slot)->len);
    if (type == PROTOBUF_C_TYPE_MESSAGE && *(ProtobufCMessage *const *)slot != NULL)
        return pb_deep_size(*(ProtobufCMessage *const *)slot);
    return 0;
}

/* replaces what the value in @p slot points to with a copy */
static void
pb_value_copy(ProtobufCType type, void *slot, carve_t *c)
{
    if (type == PROTOBUF_C_TYPE_STRING && *(char **)slot != NULL && **(char **)slot == '\0') {
        /* as protobuf-c unpacks an empty string: a million nodes, a few unset fields each */
        *(const char **)slot = protobuf_c_empty_string;
    } else if (type == PROTOBUF_C_TYPE_STRING && *(char **)slot != NULL) {
        size_t len = strlen(*(char **)slot) + 1;
        char *d = carve_alloc(c, len);
        memcpy(d, *(char **)slot, len);
        *(char **)slot = d;
    } else if (type == PROTOBUF_C_TYPE_BYTES) {
        ProtobufCBinaryData *b = slot;
        uint8_t *d = b->len > 0 ? carve_alloc(c, b->len) : NULL;
        if (d != NULL)
            memcpy(d, b->data, b->len);
        b->data = d;
    } else if (type == PROTOBUF_C_TYPE_MESSAGE && *(ProtobufCMessage **)slot != NULL) {
        *(ProtobufCMessage **)slot = pb_deep_copy(*(ProtobufCMessage **)slot, c);
    }
}

static size_t
pb_deep_size(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    size_t size = CARVE_ALIGN(d->sizeof_message);

    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const uint8_t *slot = (const uint8_t *)m + f->offset;
        if (pb_field_skipped(m, f))
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const uint8_t *)m + f->quantifier_offset);
            const uint8_t *arr = *(uint8_t *const *)slot;
            size_t es = pb_elt_size(f->type);
            if (n == 0 || arr == NULL)
                continue;
            size += CARVE_ALIGN(n * es);
            for (size_t j = 0; j < n; j++)
                size += pb_value_size(f->type, arr + j * es);
        } else {
            size += pb_value_size(f->type, slot);
        }
    }
    if (m->n_unknown_fields > 0) {
        size += CARVE_ALIGN(m->n_unknown_fields * sizeof(*m->unknown_fields));
        for (unsigned i = 0; i < m->n_unknown_fields; i++)
            size += CARVE_ALIGN(m->unknown_fields[i].len);
    }
    return size;
}

/* @p c must hold pb_deep_size(@p m) bytes */
static ProtobufCMessage *
pb_deep_copy(const ProtobufCMessage *m, carve_t *c)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    ProtobufCMessage *out = carve_alloc(c, d->sizeof_message);

    memcpy(out, m, d->sizeof_message);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        uint8_t *slot = (uint8_t *)out + f->offset;
        if (pb_field_skipped(m, f))
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const uint8_t *)m + f->quantifier_offset);
            size_t es = pb_elt_size(f->type);
            uint8_t *arr;
            if (n == 0 || *(uint8_t **)slot == NULL)
                continue;
            arr = carve_alloc(c, n * es);
            memcpy(arr, *(uint8_t **)slot, n * es);
            for (size_t j = 0; j < n; j++)
                pb_value_copy(f->type, arr + j * es, c);
            *(uint8_t **)slot = arr;
        } else {
            pb_value_copy(f->type, slot, c);
        }
    }
    if (m->n_unknown_fields > 0) {
        out->unknown_fields = carve_alloc(c, m->n_unknown_fields * sizeof(*m->unknown_fields));
        for (unsigned i = 0; i < m->n_unknown_fields; i++) {
            ProtobufCMessageUnknownField *u = &out->unknown_fields[i];
            *u = m->unknown_fields[i];
            u->data = u->len > 0 ? carve_alloc(c, u->len) : NULL;
            if (u->data != NULL)
                memcpy(u->data, m->unknown_fields[i].data, u->len);
        }
    }
    return out;
}

/* A node's stored form made from @p pb and @p token: as node_record_parse(node_record()). */
static ninfo_t *
ninfo_copy(const gx_pb_node_t *pb, const char *token)
{
    size_t tl = strlen(token), head = CARVE_ALIGN(sizeof(ninfo_t) + tl + 1);
    size_t need = pb_deep_size(&pb->base);
    ninfo_t *ni = malloc(head + need);
    carve_t c;

    if (ni == NULL)
        return NULL;
    memset(ni, 0, sizeof(*ni));
    ni->refs = 1;
    ni->size = head + need > UINT32_MAX ? UINT32_MAX : (uint32_t)(head + need);
    memcpy(ni->token, token, tl + 1);
    c = (carve_t){(uint8_t *)ni + head, (uint8_t *)ni + head + need};
    ni->pb = (gx_pb_node_t *)pb_deep_copy(&pb->base, &c);
    return ni;
}

static uint8_t *
pool_record(const gx_pb_pool_t *pb, size_t *len)
{
    uint8_t *buf = malloc(protobuf_c_message_get_packed_size(&pb->base) + 1);

    if (buf != NULL)
        *len = protobuf_c_message_pack(&pb->base, buf);
    return buf;
}

static pinfo_t *
pool_record_parse(const uint8_t *v, size_t len)
{
    pinfo_t *pi = calloc(1, sizeof(*pi));

    if (pi == NULL)
        return NULL;
    pi->pb = galaxy__pool__v1__pool__unpack(NULL, len, v);
    if (pi->pb == NULL) {
        free(pi);
        return NULL;
    }
    return pi;
}

/* ================================================================== watch feed: writes (keeper) */

static int
same_specs(const gx_pb_node_t *a, const gx_pb_node_t *b)
{
    if (a->n_specializations != b->n_specializations)
        return 0;
    for (size_t i = 0; i < a->n_specializations; i++)
        if (strcmp(a->specializations[i], b->specializations[i]) != 0)
            return 0;
    return 1;
}

/* the specializations @p before had, when the change replaced them */
static int
fev_old_specs(fev_t *e, const gx_pb_node_t *before)
{
    if (before == NULL || same_specs(before, &e->node))
        return 0;
    e->old_specs = calloc(before->n_specializations + 1, sizeof(char *));
    if (e->old_specs == NULL)
        return GX_ENOMEM;
    for (size_t i = 0; i < before->n_specializations; i++) {
        e->old_specs[i] = strdup(before->specializations[i]);
        if (e->old_specs[i] == NULL)
            return GX_ENOMEM;
        e->n_old_specs++;
        e->bytes += FEV_OVERHEAD;
    }
    return 0;
}

/*
 * @p n as readers see it now, in @p e: the static part shared (a reference),
 * the live fields copied.  Counted whole: once the node changes, the entry
 * may be the last one holding it.
 */
static void
fev_set_node(fev_t *e, const gx_reg_node_t *n)
{
    e->ni = rcu_dereference(n->info); /* only this thread replaces it */
    uatomic_inc(&e->ni->refs);
    gx_reg_node_fill(n, &e->node);
    e->bytes += e->ni->size;
}

static fev_t *
fev_new(uint64_t rev, int type, const gx_reg_node_t *n, const gx_pb_node_t *before)
{
    fev_t *e = calloc(1, sizeof(*e));

    if (e == NULL)
        return NULL;
    e->revision = rev;
    e->type = type;
    e->bytes = sizeof(*e);
    if (n == NULL)
        return e;
    fev_set_node(e, n);
    if (fev_old_specs(e, before) != 0) {
        fev_free(e);
        return NULL;
    }
    return e;
}

/* empties the slot of @p rev (it leaves the window) */
static void
feed_drop(gx_reg_feed_t *f, uint64_t rev)
{
    fev_t *old = rcu_xchg_pointer(&f->slot[rev % f->cap], NULL);

    if (old == NULL)
        return;
    uatomic_set(&f->bytes, f->bytes - old->bytes);
    call_rcu(&old->rcu, fev_free_rcu);
}

/*
 * Writes the change that made revision @p rev of @p p: @p type with the node
 * as it is now (@p before: its static part before the change), or a pool
 * change (n NULL).  Out of memory leaves the slot empty: watchers that need it
 * are resynchronised.  Readers see it once feed_publish() moves the head.
 */
static void
feed_put(gx_reg_pool_t *p, uint64_t rev, int type, const gx_reg_node_t *n,
         const gx_pb_node_t *before)
{
    gx_reg_feed_t *f = p->feed;
    fev_t *e = fev_new(rev, type, n, before), *old;
    uint64_t first = f->first;

    if (e == NULL)
        gx_log(GX_LOG_WARN, "watch feed: change lost pool=%s revision=%llu "
               "reason=\"out of memory\"", p->name, (unsigned long long)rev);
    old = rcu_xchg_pointer(&f->slot[rev % f->cap], e);
    if (old != NULL) {
        uatomic_set(&f->bytes, f->bytes - old->bytes);
        call_rcu(&old->rcu, fev_free_rcu);
    }
    if (e != NULL)
        uatomic_set(&f->bytes, f->bytes + e->bytes);
    f->written = rev;
    if (rev >= f->cap && first < rev - f->cap + 1)
        first = rev - f->cap + 1;
    while (f->bytes > f->max_bytes && first < rev)
        feed_drop(f, first++);
    uatomic_set(&f->first, first);
}

/* makes what was written readable; after the pool's index (see the file comment) */
static void
feed_publish(gx_reg_pool_t *p)
{
    cmm_smp_wmb();
    uatomic_set(&p->feed->head, p->feed->written);
}

/* ================================================================== the keeper's index */

static gx_reg_node_t *
wit_next(wit_t *it)
{
    while (it->ci < it->x->n) {
        const chunk_t *c = it->x->c[it->ci];
        if (it->i < c->n)
            return c->v[it->i++];
        it->ci++;
        it->i = 0;
    }
    return NULL;
}

/* the chunk @p id belongs in: the first whose last id is not below it, else the last */
static size_t
windex_chunk(const windex_t *x, const char *id)
{
    size_t lo = 0, hi = x->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const chunk_t *c = x->c[mid];
        if (strcmp(c->v[c->n - 1]->id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < x->n ? lo : x->n - 1;
}

/* @p c changes: its published copy retires (freed once a directory without it is out) */
static void
chunk_touch(windex_t *x, chunk_t *c)
{
    if (c->pub != NULL) {
        c->pub->next = x->retired;
        x->retired = c->pub;
        c->pub = NULL;
    }
    x->dirty = 1;
}

static chunk_t *
chunk_new(uint32_t cap)
{
    chunk_t *c = malloc(sizeof(*c) + cap * sizeof(c->v[0]));

    if (c != NULL) {
        c->n = 0;
        c->cap = cap;
        c->pub = c->next = NULL;
    }
    return c;
}

/*
 * Chunk @p ci of @p x as the keeper may change it: in a copy-on-write index,
 * a published chunk is copied first (same capacity) and retires.  @return
 * the chunk, or NULL: out of memory, nothing changed
 */
static chunk_t *
chunk_own(windex_t *x, size_t ci)
{
    chunk_t *c = x->c[ci], *d;

    if (c->pub != c)
        return c;
    d = chunk_new(c->cap);
    if (d == NULL)
        return NULL;
    d->n = c->n;
    memcpy(d->v, c->v, c->n * sizeof(c->v[0]));
    c->next = x->retired;
    x->retired = c;
    x->dirty = 1;
    return x->c[ci] = d;
}

/* room for @p more chunk slots in @p x */
static int
windex_reserve(windex_t *x, size_t more)
{
    if (x->n + more > x->cap) {
        size_t cap = x->cap ? x->cap * 2 : x->cow ? 1 : 4; /* cow: often one chunk for good */
        chunk_t **v;
        if (cap == 1) {
            v = &x->one;
        } else if (x->c == &x->one) {
            if ((v = malloc(cap * sizeof(*v))) != NULL)
                v[0] = x->one;
        } else {
            v = realloc(x->c, cap * sizeof(*v));
        }
        if (v == NULL)
            return GX_ENOMEM;
        x->c = v;
        x->cap = cap;
    }
    return 0;
}

/* chunk @p ci of @p x with room for one more node (it may move); NULL: out of memory */
static chunk_t *
chunk_room(windex_t *x, size_t ci)
{
    chunk_t *c = chunk_own(x, ci), *d;

    if (c == NULL || c->n < c->cap)
        return c;
    d = realloc(c, sizeof(*c) + 2 * c->cap * sizeof(c->v[0]));
    if (d == NULL)
        return NULL;
    d->cap *= 2;
    return x->c[ci] = d;
}

/* splits full chunk @p ci in two halves; @return 0 or GX_ENOMEM */
static int
chunk_split(windex_t *x, size_t ci)
{
    chunk_t *c, *d;
    uint32_t half;

    if (windex_reserve(x, 1) != 0 || (c = chunk_own(x, ci)) == NULL ||
        (d = chunk_new(CHUNK_MAX)) == NULL)
        return GX_ENOMEM;
    half = c->n / 2;
    d->n = c->n - half;
    memcpy(d->v, c->v + half, d->n * sizeof(d->v[0]));
    c->n = half;
    chunk_touch(x, c);
    memmove(x->c + ci + 2, x->c + ci + 1, (x->n - ci - 1) * sizeof(*x->c));
    x->c[ci + 1] = d;
    x->n++;
    return 0;
}

static int
windex_insert(windex_t *x, gx_reg_node_t *n)
{
    size_t ci, at;
    chunk_t *c;

    if (x->n == 0) {
        /* a secondary index may hold a node or two for good (a label naming a host) */
        if (windex_reserve(x, 1) != 0 || (c = chunk_new(x->cow ? 1 : 8)) == NULL)
            return GX_ENOMEM;
        c->v[c->n++] = n;
        x->c[x->n++] = c;
        x->total = 1;
        x->dirty = 1;
        return 0;
    }
    /* the store is read in key order: at start-up every insert is an append */
    c = x->c[x->n - 1];
    if (strcmp(c->v[c->n - 1]->id, n->id) < 0) {
        ci = x->n - 1;
        at = c->n;
    } else {
        ci = windex_chunk(x, n->id);
        c = x->c[ci];
        at = lower_bound(c->v, c->n, n->id);
    }
    if (at > 0 && c->v[at - 1] == n)
        return 0; /* there already: a specialization listed twice */
    if (c->n == CHUNK_MAX && at == c->n && ci == x->n - 1) {
        /* past the end (start-up, ordered ids): a new chunk keeps the full one full */
        if (windex_reserve(x, 1) != 0 || (c = chunk_new(8)) == NULL)
            return GX_ENOMEM;
        x->c[x->n++] = c;
        ci++;
        at = 0;
    } else if (c->n == CHUNK_MAX) {
        if (chunk_split(x, ci) != 0)
            return GX_ENOMEM;
        if (at > x->c[ci]->n) {
            at -= x->c[ci]->n;
            ci++;
        }
    }
    if ((c = chunk_room(x, ci)) == NULL)
        return GX_ENOMEM;
    memmove(c->v + at + 1, c->v + at, (c->n - at) * sizeof(c->v[0]));
    c->v[at] = n;
    c->n++;
    x->total++;
    chunk_touch(x, c);
    return 0;
}

/* takes chunk @p ci out of @p x (its published copy retires) */
static void
chunk_drop(windex_t *x, size_t ci)
{
    chunk_t *c = x->c[ci];

    if (c->pub == c) { /* cow, published: it is its published copy */
        c->next = x->retired;
        x->retired = c;
        x->dirty = 1;
    } else {
        chunk_touch(x, c);
        free(c);
    }
    memmove(x->c + ci, x->c + ci + 1, (x->n - ci - 1) * sizeof(*x->c));
    x->n--;
}

/* @return 0 (taken out, or not there), or GX_ENOMEM (cow only: still there) */
static int
windex_remove(windex_t *x, gx_reg_node_t *n)
{
    size_t ci, at;
    chunk_t *c, *next;

    if (x->n == 0)
        return 0;
    ci = windex_chunk(x, n->id);
    c = x->c[ci];
    at = lower_bound(c->v, c->n, n->id);
    if (at == 0 || c->v[at - 1] != n)
        return 0;
    x->total--;
    if (c->n == 1) {
        chunk_drop(x, ci);
        return 0;
    }
    if ((c = chunk_own(x, ci)) == NULL) {
        x->total++;
        return GX_ENOMEM;
    }
    at--;
    memmove(c->v + at, c->v + at + 1, (c->n - at - 1) * sizeof(c->v[0]));
    c->n--;
    chunk_touch(x, c);
    /* two neighbours that fit in half a chunk become one: no directory of crumbs */
    next = ci + 1 < x->n ? x->c[ci + 1] : NULL;
    if (next != NULL && c->n + next->n <= CHUNK_MAX / 2 && c->n + next->n <= c->cap) {
        memcpy(c->v + c->n, next->v, next->n * sizeof(c->v[0]));
        c->n += next->n;
        chunk_drop(x, ci + 1);
    }
    return 0;
}

/* empties @p x (its published copy stays until the next publication) */
static void
windex_clear(windex_t *x)
{
    while (x->n > 0)
        chunk_drop(x, x->n - 1);
    x->total = 0;
    x->dirty = 1;
}

/* the keeper's last node of @p x, or NULL */
static gx_reg_node_t *
windex_last(const windex_t *x)
{
    return x->n > 0 ? x->c[x->n - 1]->v[x->c[x->n - 1]->n - 1] : NULL;
}

/*
 * Publishes @p x: copies of the chunks changed since, a new directory, then
 * the retired copies freed after a grace period.  @return 0, or GX_ENOMEM: it
 * stays dirty (the copies made so far are kept for the next try)
 */
static int
windex_publish(windex_t *x)
{
    cdir_t *d;
    void *pub, *old;
    size_t first = 0;

    if (!x->dirty)
        return 0;
    if (x->cow && x->n <= 1) { /* nothing, or the one chunk itself (tagged): no directory */
        if (x->n == 1)
            x->c[0]->pub = x->c[0];
        pub = x->n == 1 ? (void *)((uintptr_t)x->c[0] | PUB_SOLO) : NULL;
        goto publish;
    }
    d = malloc(sizeof(*d) + x->n * sizeof(d->run[0]));
    if (d == NULL)
        return GX_ENOMEM;
    for (size_t i = 0; i < x->n; i++) {
        chunk_t *c = x->c[i];
        if (x->cow) {
            c->pub = c;
        } else if (c->pub == NULL) {
            c->pub = chunk_new(c->n);
            if (c->pub == NULL) {
                free(d);
                return GX_ENOMEM;
            }
            c->pub->n = c->n;
            memcpy(c->pub->v, c->v, c->n * sizeof(c->v[0]));
        }
        d->run[i].c = c->pub;
        d->run[i].first = first;
        first += c->n;
    }
    d->n = x->n;
    d->total = first;
    pub = d;
publish:
    old = rcu_xchg_pointer(&x->pub, pub);
    if (pub_dir(old) != NULL) /* a solo chunk retires as a chunk */
        call_rcu(&((cdir_t *)pub_dir(old))->rcu, block_free_rcu);
    while (x->retired != NULL) {
        chunk_t *r = x->retired;
        x->retired = r->next;
        call_rcu(&r->rcu, block_free_rcu);
    }
    x->dirty = 0;
    return 0;
}

/* ================================================================== specialization indexes */

/*
 * Each pool keeps one index per specialization its nodes have, maintained
 * with the pool's index (node_insert, node_remove, a re-register that changes
 * the specializations) and published in the same round, before the feed's
 * head.  Readers find an index through the pool's directory (sdir, sorted by
 * name, republished when a specialization comes or goes; an index left empty
 * is dropped from it and freed after a grace period).  Out of memory while
 * adding to an index marks the pool's indexes stale: readers then page
 * through the pool's index (a superset they filter anyway) until the keeper
 * has rebuilt and published them all.
 */

static int
pb_has_spec(const gx_pb_node_t *pb, const char *spec)
{
    for (size_t i = 0; i < pb->n_specializations; i++)
        if (strcmp(pb->specializations[i], spec) == 0)
            return 1;
    return 0;
}

/* the index of @p spec in @p p; made (empty) with @p make; NULL: none, or out of memory */
static sidx_t *
sidx_get(gx_reg_pool_t *p, const char *spec, int make)
{
    size_t at = spec_search(p->sv, p->sn, spec);
    sidx_t *s;

    if (at < p->sn && strcmp(p->sv[at]->name, spec) == 0)
        return p->sv[at];
    if (!make || strlen(spec) > GX_REG_SPEC_MAX)
        return NULL;
    if (p->sn == p->scap) {
        size_t cap = p->scap ? p->scap * 2 : 8;
        sidx_t **v = realloc(p->sv, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        p->sv = v;
        p->scap = cap;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->ix.cow = 1;
    strcpy(s->name, spec);
    memmove(p->sv + at + 1, p->sv + at, (p->sn - at) * sizeof(*p->sv));
    p->sv[at] = s;
    p->sn++;
    p->sdir_dirty = 1;
    return s;
}

/* puts a changed index on its pool's list to publish */
static void
sidx_queue(gx_reg_pool_t *p, sidx_t *s)
{
    if (s->ix.dirty && !s->queued) {
        s->queued = 1;
        s->next = p->squeue;
        p->squeue = s;
    }
}

/* an empty index leaves the directory; freed once a directory without it is out */
static void
sidx_drop(gx_reg_pool_t *p, sidx_t *s)
{
    size_t at = spec_search(p->sv, p->sn, s->name);

    if (at == p->sn || p->sv[at] != s)
        return;
    memmove(p->sv + at, p->sv + at + 1, (p->sn - at - 1) * sizeof(*p->sv));
    p->sn--;
    s->next = p->sdead;
    p->sdead = s;
    p->sdir_dirty = 1;
}

/* adds @p n to the index of each specialization of @p pb that @p except (or NULL) lacks */
static int
specs_insert(gx_reg_pool_t *p, gx_reg_node_t *n, const gx_pb_node_t *pb,
             const gx_pb_node_t *except)
{
    for (size_t i = 0; i < pb->n_specializations; i++) {
        const char *spec = pb->specializations[i];
        sidx_t *s;
        if (except != NULL && pb_has_spec(except, spec))
            continue;
        s = sidx_get(p, spec, 1);
        if (s == NULL || windex_insert(&s->ix, n) != 0)
            return GX_ENOMEM;
        sidx_queue(p, s);
    }
    return 0;
}

/* removes @p n from the index of each specialization of @p pb that @p except lacks */
static int
specs_delete(gx_reg_pool_t *p, gx_reg_node_t *n, const gx_pb_node_t *pb,
             const gx_pb_node_t *except)
{
    int rv = 0;

    for (size_t i = 0; i < pb->n_specializations; i++) {
        sidx_t *s;
        if (except != NULL && pb_has_spec(except, pb->specializations[i]))
            continue;
        s = sidx_get(p, pb->specializations[i], 0);
        if (s != NULL) {
            if (windex_remove(&s->ix, n) != 0)
                rv = GX_ENOMEM;
            sidx_queue(p, s);
        }
    }
    return rv;
}

/* refills every index of @p p from its nodes (after out of memory) */
static int
specs_rebuild(gx_reg_pool_t *p)
{
    gx_reg_node_t *n;

    for (size_t i = 0; i < p->sn; i++) {
        windex_clear(&p->sv[i]->ix);
        sidx_queue(p, p->sv[i]);
    }
    for (wit_t it = {&p->ix}; (n = wit_next(&it)) != NULL;)
        if (specs_insert(p, n, n->info->pb, NULL) != 0)
            return GX_ENOMEM;
    return 0;
}

/* publishes the directory of @p p's indexes, then frees the ones dropped from it */
static int
sdir_publish(gx_reg_pool_t *p)
{
    sdir_t *d = malloc(sizeof(*d) + p->sn * sizeof(d->v[0])), *old;

    if (d == NULL)
        return GX_ENOMEM;
    d->n = p->sn;
    if (p->sn > 0)
        memcpy(d->v, p->sv, p->sn * sizeof(d->v[0]));
    old = rcu_xchg_pointer(&p->sdir, d);
    if (old != NULL)
        call_rcu(&old->rcu, block_free_rcu);
    while (p->sdead != NULL) {
        sidx_t *s = p->sdead;
        p->sdead = s->next;
        call_rcu(&s->rcu, sidx_free_rcu);
    }
    p->sdir_dirty = 0;
    return 0;
}

/* ================================================================== label indexes */

/*
 * Each pool also keeps one index per label (key and value) its nodes carry,
 * so that a listing that asks for labels pages through the smallest index it
 * may use (gx_reg_pool_cursor_filter()) instead of the whole pool.  A label
 * may name a single node (a host name), so a pool may have as many label
 * indexes as nodes: they are found through one table for the whole registry,
 * by pool, key and value, and not through a directory per pool republished
 * whole when one comes or goes.  They are maintained and published with the
 * specialization indexes and trusted on the same flag (spec_stale; after out
 * of memory the keeper empties them and adds every node again, see
 * labels_rebuild()).  Every label index in the table is either non-empty or
 * on its pool's list to publish; one found empty there leaves the table and
 * is freed after a grace period.
 */
typedef struct lidx_s {
    struct cds_lfht_node ht;
    struct rcu_head rcu;
    windex_t ix;
    const gx_reg_pool_t *pool;
    struct lidx_s *next; /* keeper: on the pool's list to publish */
    int queued;
    uint32_t klen, vlen;
    char kv[];           /* the key, NUL, the value, NUL */
} lidx_t;

typedef struct {
    const gx_reg_pool_t *pool;
    const char *key, *value;
    size_t klen, vlen;
} lkey_t;

/*
 * What a label index costs besides its node pointers: itself, its first chunk
 * (published as it is: no directory while it is the only one) and its table
 * link, about (RssAnon per label naming one node: 197 bytes, charged 207).
 */
static uint64_t
lidx_cost(const lidx_t *l)
{
    return sizeof(*l) + l->klen + l->vlen + 2 + 64;
}

static uint64_t
lidx_hash(const lkey_t *k)
{
    uint64_t h = hash_bytes(&k->pool, sizeof(k->pool));

    h = h * 31 + hash_bytes(k->key, k->klen);
    return h * 31 + hash_bytes(k->value, k->vlen);
}

static int
lidx_match(struct cds_lfht_node *ht, const void *key)
{
    const lidx_t *l = caa_container_of(ht, lidx_t, ht);
    const lkey_t *k = key;

    return l->pool == k->pool && l->klen == k->klen && l->vlen == k->vlen &&
           memcmp(l->kv, k->key, k->klen) == 0 &&
           memcmp(l->kv + l->klen + 1, k->value, k->vlen) == 0;
}

static void
lidx_free_rcu(struct rcu_head *h)
{
    lidx_t *l = caa_container_of(h, lidx_t, rcu);

    windex_free(&l->ix);
    free(l);
}

static lidx_t *
lidx_find(const gx_reg_t *reg, const gx_reg_pool_t *p, const char *key, const char *value)
{
    lkey_t k = {p, key, value, strlen(key), strlen(value)};
    struct cds_lfht_iter it;
    struct cds_lfht_node *ht;

    cds_lfht_lookup(reg->labels, lidx_hash(&k), lidx_match, &k, &it);
    ht = cds_lfht_iter_get_node(&it);
    return ht != NULL ? caa_container_of(ht, lidx_t, ht) : NULL;
}

/* puts @p l on its pool's list to publish */
static void
lidx_queue(gx_reg_pool_t *p, lidx_t *l)
{
    if (!l->queued) {
        l->queued = 1;
        l->next = p->lqueue;
        p->lqueue = l;
    }
}

/* keeper: the index of label @p key = @p value in @p p, made if it has none; NULL: no memory */
static lidx_t *
lidx_get(gx_reg_pool_t *p, const char *key, const char *value)
{
    gx_reg_t *reg = p->reg;
    lkey_t k = {p, key, value, strlen(key), strlen(value)};
    lidx_t *l = lidx_find(reg, p, key, value);

    if (l != NULL)
        return l;
    l = calloc(1, sizeof(*l) + k.klen + k.vlen + 2);
    if (l == NULL)
        return NULL;
    l->pool = p;
    l->ix.cow = 1;
    l->klen = (uint32_t)k.klen;
    l->vlen = (uint32_t)k.vlen;
    memcpy(l->kv, key, k.klen + 1);
    memcpy(l->kv + k.klen + 1, value, k.vlen + 1);
    cds_lfht_node_init(&l->ht);
    cds_lfht_add(reg->labels, lidx_hash(&k), &l->ht);
    lidx_queue(p, l); /* in the table: non-empty or queued */
    nodes_held_add(reg, 0, (int64_t)lidx_cost(l));
    return l;
}

/* keeper: @p l leaves the table; freed after a grace period */
static void
lidx_drop(gx_reg_t *reg, lidx_t *l)
{
    if (cds_lfht_del(reg->labels, &l->ht) == 0) {
        nodes_held_add(reg, 0, -(int64_t)lidx_cost(l));
        call_rcu(&l->rcu, lidx_free_rcu);
    }
}

static int
pb_has_label(const gx_pb_node_t *pb, const char *key, const char *value)
{
    for (size_t i = 0; i < pb->n_labels; i++)
        if (strcmp(pb->labels[i]->key, key) == 0 && strcmp(pb->labels[i]->value, value) == 0)
            return 1;
    return 0;
}

static int
same_labels(const gx_pb_node_t *a, const gx_pb_node_t *b)
{
    if (a->n_labels != b->n_labels)
        return 0;
    for (size_t i = 0; i < a->n_labels; i++)
        if (strcmp(a->labels[i]->key, b->labels[i]->key) != 0 ||
            strcmp(a->labels[i]->value, b->labels[i]->value) != 0)
            return 0;
    return 1;
}

/* adds @p n to the index of each label of @p pb that @p except (or NULL) lacks */
static int
labels_insert(gx_reg_pool_t *p, gx_reg_node_t *n, const gx_pb_node_t *pb,
              const gx_pb_node_t *except)
{
    for (size_t i = 0; i < pb->n_labels; i++) {
        const char *key = pb->labels[i]->key, *value = pb->labels[i]->value;
        lidx_t *l;
        if (except != NULL && pb_has_label(except, key, value))
            continue;
        l = lidx_get(p, key, value);
        if (l == NULL || windex_insert(&l->ix, n) != 0)
            return GX_ENOMEM;
        lidx_queue(p, l);
    }
    return 0;
}

/* removes @p n from the index of each label of @p pb that @p except lacks */
static int
labels_delete(gx_reg_pool_t *p, gx_reg_node_t *n, const gx_pb_node_t *pb,
              const gx_pb_node_t *except)
{
    int rv = 0;

    for (size_t i = 0; i < pb->n_labels; i++) {
        const char *key = pb->labels[i]->key, *value = pb->labels[i]->value;
        lidx_t *l;
        if (except != NULL && pb_has_label(except, key, value))
            continue;
        l = lidx_find(p->reg, p, key, value);
        if (l != NULL) {
            if (windex_remove(&l->ix, n) != 0)
                rv = GX_ENOMEM;
            lidx_queue(p, l);
        }
    }
    return rv;
}

/*
 * Refills every label index of @p p from its nodes (after out of memory):
 * emptied first, which needs no memory, so that none keeps a node that
 * failed to leave it (and is freed at the end of this round).
 */
static int
labels_rebuild(gx_reg_pool_t *p)
{
    struct cds_lfht_iter hit;
    struct cds_lfht_node *hn;
    gx_reg_node_t *n;

    cds_lfht_for_each(p->reg->labels, &hit, hn) {
        lidx_t *l = caa_container_of(hn, lidx_t, ht);
        if (l->pool == p) {
            windex_clear(&l->ix);
            lidx_queue(p, l);
        }
    }
    for (wit_t it = {&p->ix}; (n = wit_next(&it)) != NULL;)
        if (labels_insert(p, n, n->info->pb, NULL) != 0)
            return GX_ENOMEM;
    return 0;
}

/* publishes @p p's changed label indexes, drops the empty ones; @return 0 or GX_ENOMEM */
static int
labels_publish(gx_reg_pool_t *p)
{
    lidx_t *l, *retry = NULL;
    int rv = 0;

    while ((l = p->lqueue) != NULL) {
        p->lqueue = l->next;
        if (windex_publish(&l->ix) != 0) {
            l->next = retry;
            retry = l;
            rv = GX_ENOMEM;
            continue;
        }
        l->queued = 0;
        if (l->ix.total == 0)
            lidx_drop(p->reg, l);
    }
    p->lqueue = retry;
    return rv;
}

/* a pool leaves: its label indexes (all queued: its nodes were removed) go with it */
static void
labels_drop_all(gx_reg_pool_t *p)
{
    while (p->lqueue != NULL) {
        lidx_t *l = p->lqueue;
        p->lqueue = l->next;
        lidx_drop(p->reg, l);
    }
}

size_t
gx_reg_pool_cursor_filter(const gx_reg_t *reg, const gx_reg_pool_t *p, const char *spec,
                          size_t n_labels, const char *const *keys, const char *const *values,
                          int unwell, const char *after, gx_reg_cursor_t *c)
{
    const windex_t *best = &p->ix;
    size_t best_n;

    if (uatomic_read(&p->spec_stale))
        return windex_cursor(&p->ix, after, c);
    cmm_smp_rmb(); /* pairs with specs_publish(): not stale, so the indexes are whole */
    if (spec != NULL && spec[0] != '\0' && (best = spec_published(p, spec)) == NULL)
        return cursor_none(c);
    best_n = windex_size(best);
    if (unwell && !uatomic_read(&p->unwell_moving)) {
        size_t k;
        cmm_smp_rmb(); /* pairs with unwell_publish(): every node out of HEALTHY is in it */
        k = windex_size(&p->unwell);
        if (k == 0)
            return cursor_none(c);
        if (k < best_n) {
            best = &p->unwell;
            best_n = k;
        }
    }
    for (size_t i = 0; i < n_labels; i++) {
        const lidx_t *l = lidx_find(reg, p, keys[i], values[i]);
        size_t k = l != NULL ? windex_size(&l->ix) : 0;
        if (k == 0)
            return cursor_none(c);
        if (k < best_n) {
            best = &l->ix;
            best_n = k;
        }
    }
    return windex_cursor(best, after, c);
}

size_t
gx_reg_pool_cursor(const gx_reg_pool_t *p, const char *spec, const char *after,
                   gx_reg_cursor_t *c)
{
    return gx_reg_pool_cursor_filter(NULL, p, spec, 0, NULL, NULL, 0, after, c);
}

/* out of memory: readers page through the pool's index until the keeper has rebuilt these */
static void
index_stale(gx_reg_pool_t *p)
{
    gx_log(GX_LOG_WARN, "registry: specialization and label indexes rebuilt pool=%s "
           "reason=\"out of memory\"", p->name);
    uatomic_set(&p->spec_stale, 1);
}

/* adds @p n to the specialization and label indexes of @p pb that @p except (or NULL) lacks */
static void
node_index_add(gx_reg_pool_t *p, gx_reg_node_t *n, const gx_pb_node_t *pb,
               const gx_pb_node_t *except)
{
    if (!p->spec_stale &&
        (specs_insert(p, n, pb, except) != 0 || labels_insert(p, n, pb, except) != 0))
        index_stale(p);
}

/* removes @p n from the specialization and label indexes of @p pb that @p except lacks */
static void
node_index_del(gx_reg_pool_t *p, gx_reg_node_t *n, const gx_pb_node_t *pb,
               const gx_pb_node_t *except)
{
    int a = specs_delete(p, n, pb, except), b = labels_delete(p, n, pb, except);

    if (!p->spec_stale && (a != 0 || b != 0))
        index_stale(p);
}

/* the states the pool's unwell index holds (0: the node is gone) */
static int
is_unwell(uint32_t st)
{
    return st == ST_SUSPECT || st == ST_DOWN || st == ST_DRAINING;
}

/* the keeper is about to take a node of @p p out of HEALTHY: readers keep off the index */
static void
unwell_coming(gx_reg_pool_t *p)
{
    if (!p->unwell_moving) {
        uatomic_set(&p->unwell_moving, 1);
        cmm_smp_mb(); /* the flag before the node's state: see gx_reg_pool_cursor_filter() */
    }
}

/* the feed saw @p n go from state @p from to @p to: in or out of the unwell index */
static void
unwell_move(gx_reg_pool_t *p, gx_reg_node_t *n, uint32_t from, uint32_t to)
{
    int rv = 0;

    if (is_unwell(from) == is_unwell(to))
        return;
    if (!is_unwell(to))
        rv = windex_remove(&p->unwell, n);
    else if (!p->spec_stale)
        rv = windex_insert(&p->unwell, n);
    if (rv != 0 && !p->spec_stale)
        index_stale(p);
}

/* refills @p p's unwell index from the states its feed saw (after out of memory) */
static int
unwell_rebuild(gx_reg_pool_t *p)
{
    gx_reg_node_t *n;

    windex_clear(&p->unwell);
    for (wit_t it = {&p->ix}; (n = wit_next(&it)) != NULL;)
        if (is_unwell(n->fed_state) && windex_insert(&p->unwell, n) != 0)
            return GX_ENOMEM;
    return 0;
}

/* publishes @p p's unwell index, then lets readers use it; @return 0 or GX_ENOMEM */
static int
unwell_publish(gx_reg_pool_t *p)
{
    if (windex_publish(&p->unwell) != 0)
        return GX_ENOMEM;
    if (p->unwell_moving) {
        cmm_smp_wmb(); /* the index before the flag: see gx_reg_pool_cursor_filter() */
        uatomic_set(&p->unwell_moving, 0);
    }
    return 0;
}

/* publishes @p p's changed specialization indexes; @return 0, or GX_ENOMEM (retried) */
static int
specs_publish(gx_reg_pool_t *p)
{
    sidx_t *s, *retry = NULL;
    int rv = 0;

    if (p->spec_stale &&
        (specs_rebuild(p) != 0 || labels_rebuild(p) != 0 || unwell_rebuild(p) != 0))
        return GX_ENOMEM;
    while ((s = p->squeue) != NULL) {
        p->squeue = s->next;
        if (windex_publish(&s->ix) != 0) {
            s->next = retry;
            retry = s;
            rv = GX_ENOMEM;
            continue;
        }
        s->queued = 0;
        if (s->ix.total == 0)
            sidx_drop(p, s);
    }
    p->squeue = retry;
    if (p->sdir_dirty && sdir_publish(p) != 0)
        rv = GX_ENOMEM;
    if (labels_publish(p) != 0)
        rv = GX_ENOMEM;
    if (unwell_publish(p) != 0)
        rv = GX_ENOMEM;
    if (rv == 0 && p->spec_stale) {
        cmm_smp_wmb(); /* the indexes before the flag: see gx_reg_pool_cursor() */
        uatomic_set(&p->spec_stale, 0);
    }
    return rv;
}

/* ================================================================== publication */

/*
 * Publishes @p p's changed indexes, then (all of them out) the feed's head;
 * what fails for want of memory stays dirty and is retried next round.
 */
static int
publish_one(gx_reg_pool_t *p, void *arg)
{
    int *failed = arg;
    int rv = windex_publish(&p->ix);

    if (specs_publish(p) != 0)
        rv = GX_ENOMEM;
    if (rv == 0)
        feed_publish(p);
    else if (failed != NULL)
        *failed = 1;
    return 0;
}

/*
 * Publishes every changed index, then frees removed nodes after a grace
 * period: not while an index readers may still find them in is unpublished.
 */
static void
publish_all(gx_reg_t *reg)
{
    int failed = 0;

    gx_reg_pool_foreach(reg, publish_one, &failed);
    while (!failed && reg->grave != NULL) {
        gx_reg_node_t *n = reg->grave;
        reg->grave = n->grave_next;
        call_rcu(&n->rcu, node_free_rcu);
    }
}

/* ================================================================== timer wheel (keeper) */

static int
is_up(uint32_t st)
{
    return st == ST_HEALTHY || st == ST_DRAINING;
}

/* 0 up, 1 SUSPECT, 2 DOWN: the keeper only ever moves a node to a higher rank */
static int
state_rank(uint32_t st)
{
    return st == ST_DOWN ? 2 : st == ST_SUSPECT ? 1 : 0;
}

/* the keeper's count of @p p's nodes in the state class of @p st, or NULL */
static uint32_t *
state_count(gx_reg_pool_t *p, uint32_t st)
{
    if (is_up(st))
        return &p->n_up;
    if (st == ST_SUSPECT)
        return &p->n_suspect;
    return st == ST_DOWN ? &p->n_down : NULL;
}

/* the feed saw @p n in state @p st (0: the node is gone): keeps the pool's counts */
static void
fed_set(gx_reg_node_t *n, uint32_t st)
{
    uint32_t *from = state_count(n->pool, n->fed_state), *to = state_count(n->pool, st);

    if (from != NULL)
        (*from)--;
    if (to != NULL)
        (*to)++;
    unwell_move(n->pool, n, n->fed_state, st);
    n->fed_state = st;
}

/* when a DOWN node goes: retention × TTL after it went DOWN (and never before by its age) */
static uint64_t
down_due(const gx_reg_t *reg, const gx_reg_node_t *n, uint32_t ttl)
{
    uint64_t r = (uint64_t)reg->o.retention_factor * ttl;
    uint64_t by_age = uatomic_read(&n->seen_ms) + 2 * (uint64_t)ttl + r;

    return n->down_ms + r > by_age ? n->down_ms + r : by_age;
}

/* puts @p n in the slot of @p due_ms (at the earliest the next slot the wheel comes to) */
static void
wheel_put(gx_reg_t *reg, gx_reg_node_t *n, uint64_t due_ms)
{
    uint64_t slot = (due_ms + reg->o.tick_ms - 1) / reg->o.tick_ms;

    if (slot <= reg->wheel_at)
        slot = reg->wheel_at + 1;
    tlist_del(&n->tl);
    n->due_slot = slot;
    tlist_add(&reg->wheel[slot % WHEEL_SLOTS], &n->tl);
}

/* self-preservation holds @p n back: off the wheel until the mode ends */
static void
node_hold(gx_reg_node_t *n)
{
    tlist_del(&n->tl);
    n->due_slot = HELD;
    tlist_add(&n->pool->held, &n->tl);
}

/* puts @p n at the deadline of its next transition from its state and last-seen time */
static void
node_schedule(gx_reg_t *reg, gx_reg_node_t *n)
{
    uint32_t ttl = pool_ttl(n->pool), st = uatomic_read(&n->state);
    uint64_t seen = uatomic_read(&n->seen_ms);

    if (st == ST_DOWN)
        wheel_put(reg, n, down_due(reg, n, ttl));
    else
        wheel_put(reg, n, seen + (st == ST_SUSPECT ? 2 : 1) * (uint64_t)ttl);
}

static void pools_update(gx_reg_t *reg, uint64_t now);

/* ================================================================== apply (keeper, wlock) */

static uint64_t
pool_bump(gx_reg_pool_t *p)
{
    return uatomic_add_return(&p->revision, 1);
}

/* stamps a revision on node @p n and feeds it; @return the revision */
static uint64_t
node_feed(gx_reg_node_t *n, int type, const gx_pb_node_t *before)
{
    uint64_t rev = pool_bump(n->pool);

    uatomic_set(&n->revision, rev);
    fed_set(n, uatomic_read(&n->state));
    feed_put(n->pool, rev, type, n, before);
    if (gx__reg != NULL && gx__reg->listener.node_changed != NULL) {
        gx__reg->listener.node_changed(gx__reg->listener.arg, n->pool->name, n->id,
                                       uatomic_read(&n->state), type == EV_REMOVED);
        gx__reg->changed = 1;
    }
    return rev;
}

/* feeds @p n if its state changed since the feed last saw it */
static void
node_refeed(gx_reg_node_t *n)
{
    if (uatomic_read(&n->state) != n->fed_state)
        node_feed(n, EV_UPSERT, NULL);
}

/* feeds the state changes the feed has not seen (sweep, heartbeats) */
static void
feed_states(gx_reg_pool_t *p)
{
    gx_reg_node_t *n;

    for (wit_t it = {&p->ix}; (n = wit_next(&it)) != NULL;)
        node_refeed(n);
}

static void
node_remove(gx_reg_t *reg, gx_reg_node_t *n)
{
    gx_reg_pool_t *p = n->pool;

    if (cds_lfht_del(reg->nodes, &n->ht) != 0)
        return;
    nodes_held_add(reg, -1, -(int64_t)node_charge(n->info, n->key_len));
    uatomic_set(&n->live, 0);
    windex_remove(&p->ix, n);
    node_index_del(p, n, n->info->pb, NULL);
    uatomic_dec(&p->node_count);
    node_feed(n, EV_REMOVED, NULL);
    fed_set(n, 0);
    tlist_del(&n->tl);
    n->grave_next = reg->grave;
    reg->grave = n;
}

static void
node_init_live(gx_reg_node_t *n, int draining)
{
    uatomic_set(&n->seen_ms, gx_now_ms());
    uatomic_set(&n->draining, (uint32_t)draining);
    uatomic_set(&n->state, draining ? GALAXY__POOL__V1__NODE_STATE__NODE_STATE_DRAINING
                                    : GALAXY__POOL__V1__NODE_STATE__NODE_STATE_HEALTHY);
}

static int
node_insert(gx_reg_t *reg, gx_reg_pool_t *p, gx_reg_node_t *n)
{
    if (windex_insert(&p->ix, n) != 0)
        return GX_ENOMEM;
    if (cds_lfht_add_unique(reg->nodes, hash_bytes(n->key, n->key_len), node_match,
                            &(hkey_t){n->key, n->key_len}, &n->ht) != &n->ht) {
        windex_remove(&p->ix, n);
        return GX_EEXISTS;
    }
    node_index_add(p, n, n->info->pb, NULL);
    uatomic_inc(&p->node_count);
    nodes_held_add(reg, 1, (int64_t)node_charge(n->info, n->key_len));
    return 0;
}

/*
 * Grows the node table once it holds 8 nodes a bucket, to one bucket a node
 * (the rule of the lfht's own lazy resize, which cannot be relied on alone:
 * in liburcu 0.13 a resize worker that finishes before the thread that
 * queued it marks it started leaves it marked started for good, and the
 * table never grows again; a million nodes in 8192 buckets make every lookup
 * walk a chain of a hundred).  An explicit resize also clears that mark.
 * @note outside any read-side critical section (keeper, or main at start-up)
 */
static void
nodes_table_grow(gx_reg_t *reg)
{
    unsigned long want = reg->node_buckets;

    /* chains of 2 at most: each link a Register or lookup walks is a cache miss */
    if (reg->n_nodes < 2 * (size_t)want)
        return;
    while (want < 2 * reg->n_nodes)
        want <<= 1;
    reg->node_buckets = want;
    cds_lfht_resize(reg->nodes, want);
}

static void
apply_node_put(gx_reg_t *reg, gx_reg_op_t *op)
{
    ninfo_t *ni = op->obj;
    gx_reg_pool_t *p = gx_reg_pool_find(reg, ni->pb->pool);
    /* F_NEW: there was no node at submit, and the pending op kept every other write out */
    gx_reg_node_t *n = op->flags & F_NEW ? NULL : node_lookup(reg, op->key, op->key_len);
    const gx_pb_node_t *before = NULL;
    int rv = GX_ENOMEM;

    op->obj = NULL;
    if (p == NULL) { /* cannot happen: pool deletes wait for node writes */
        ninfo_free(ni);
        return;
    }
    if (op->flags & F_NEW)
        p->pending_adds--;
    if (n == NULL) {
        n = node_new(p, op->key, op->key_len, ni);
        if (n == NULL || (rv = node_insert(reg, p, n)) != 0) {
            gx_log(GX_LOG_ERROR, "registry: node lost in memory pool=%s reason=\"%s\"",
                   p->name, gx_strerror(rv));
            if (n != NULL)
                n->grave_next = reg->grave, reg->grave = n;
            else
                ninfo_free(ni);
            return;
        }
        node_init_live(n, (op->flags & F_DRAIN) != 0);
    } else {
        ninfo_t *old = rcu_xchg_pointer(&n->info, ni);
        before = old->pb; /* freed after a grace period: still readable here */
        nodes_held_add(reg, 0, (int64_t)node_charge(ni, n->key_len) -
                               (int64_t)node_charge(old, n->key_len));
        ninfo_put(old);
        if (!same_specs(before, ni->pb) || !same_labels(before, ni->pb)) {
            node_index_del(p, n, before, ni->pb);
            node_index_add(p, n, ni->pb, before);
        }
        if (op->flags & F_REFRESH) {
            node_init_live(n, 0);
            uatomic_set(&n->hb_unix_ms, ni->pb->last_heartbeat_unix_ms);
        }
        if (op->flags & F_DRAIN) {
            if (!is_unwell(n->fed_state))
                unwell_coming(p);
            uatomic_set(&n->draining, 1);
            uatomic_cmpxchg(&n->state, GALAXY__POOL__V1__NODE_STATE__NODE_STATE_HEALTHY,
                            GALAXY__POOL__V1__NODE_STATE__NODE_STATE_DRAINING);
        }
    }
    if (op->flags & F_NEW)
        uatomic_set(&n->hb_unix_ms, ni->pb->last_heartbeat_unix_ms);
    n->ckpt_hb = ni->pb->last_heartbeat_unix_ms; /* what the store now holds */
    op->revision = node_feed(n, EV_UPSERT, before);
    if (op->flags & F_REFRESH) /* new, or a fresh lease of life: out of any held list too */
        node_schedule(reg, n);
}

static void
apply_node_del(gx_reg_t *reg, gx_reg_op_t *op)
{
    gx_reg_node_t *n = node_lookup(reg, op->key, op->key_len);

    if (n != NULL) {
        node_remove(reg, n);
        op->revision = gx_reg_pool_revision(n->pool);
    }
}

static void
apply_pool_put(gx_reg_t *reg, gx_reg_op_t *op)
{
    pinfo_t *pi = op->obj;
    gx_reg_pool_t *p = gx_reg_pool_find(reg, pi->pb->name);

    op->obj = NULL;
    if (p != NULL) {
        pinfo_t *old = rcu_xchg_pointer(&p->info, pi);
        call_rcu(&old->rcu, pinfo_free_rcu);
        op->revision = pool_bump(p);
        feed_put(p, op->revision, 0, NULL, NULL);
        return;
    }
    p = pool_new(reg, pi);
    if (p == NULL) {
        gx_log(GX_LOG_ERROR, "registry: pool lost in memory pool=%s reason=\"out of memory\"",
               pi->pb->name);
        pinfo_free(pi);
        return;
    }
    cds_lfht_add(reg->pools, hash_bytes(p->name, strlen(p->name)), &p->ht);
    op->revision = pool_bump(p);
    feed_put(p, op->revision, 0, NULL, NULL);
}

static void
apply_pool_del(gx_reg_t *reg, gx_reg_op_t *op)
{
    gx_reg_pool_t *p = gx_reg_pool_find(reg, op->key);

    if (p == NULL)
        return;
    for (gx_reg_node_t *n; (n = windex_last(&p->ix)) != NULL;)
        node_remove(reg, n);
    labels_drop_all(p);
    if (cds_lfht_del(reg->pools, &p->ht) == 0) {
        pools_forget();
        feed_publish(p); /* watchers get the removals, then the end */
        cmm_smp_wmb();
        uatomic_set(&p->feed->dead, 1);
        uatomic_set(&p->live, 0);
        p->ix.dirty = 0;
        call_rcu(&p->rcu, pool_free_rcu);
    }
}

/* The chain of writes in flight whose key hashes like @p key's (a thousand calls in flight
 * made every submit scan them all when it was one list). */
static gx_reg_op_t **
pending_bucket(gx_reg_t *reg, const char *key, size_t key_len)
{
    return &reg->pending[hash_bytes(key, key_len) & (PENDING_BUCKETS - 1)];
}

static void
pending_drop(gx_reg_t *reg, gx_reg_op_t *op)
{
    for (gx_reg_op_t **pp = pending_bucket(reg, op->key, op->key_len); *pp != NULL;
         pp = &(*pp)->pending_next) {
        if (*pp == op) {
            *pp = op->pending_next;
            return;
        }
    }
}

static void
op_cleanup(gx_reg_op_t *op)
{
    if (op->kind == OP_NODE_PUT)
        ninfo_free(op->obj);
    else if (op->kind == OP_POOL_PUT)
        pinfo_free(op->obj);
    op->obj = NULL;
    free(op->key);
    op->key = NULL;
}

static void
op_apply(gx_reg_t *reg, gx_reg_op_t *op)
{
    pending_drop(reg, op);
    if (op->kind == OP_NODE_PUT) { /* what the submit reserved, applied or not */
        reg->mem_pending -= op->charge;
        if (op->flags & F_NEW)
            reg->nodes_pending--;
    }
    if (op->status != 0) {
        if (op->kind == OP_NODE_PUT && (op->flags & F_NEW)) {
            gx_reg_pool_t *p = gx_reg_pool_find(reg, op->key);
            if (p != NULL)
                p->pending_adds--;
        }
    } else if (op->kind == OP_NODE_PUT) {
        apply_node_put(reg, op);
    } else if (op->kind == OP_NODE_DEL) {
        apply_node_del(reg, op);
    } else if (op->kind == OP_POOL_PUT) {
        apply_pool_put(reg, op);
    } else if (op->kind == OP_POOL_DEL) {
        apply_pool_del(reg, op);
    }
    op_cleanup(op);
}

/* tells the listener that the changes it heard of are published (no lock held) */
static void
listener_settle(gx_reg_t *reg)
{
    if (reg->changed && reg->listener.settled != NULL) {
        reg->changed = 0;
        reg->listener.settled(reg->listener.arg);
    }
}

void
gx_reg_listen(gx_reg_t *reg, const gx_reg_listener_t *l)
{
    if (l != NULL)
        reg->listener = *l;
    else
        memset(&reg->listener, 0, sizeof(reg->listener));
}

/*
 * Applies a list of committed ops in commit order, publishes, then completes
 * them (@p complete 0 at close: the workers that would resume them are gone).
 */
static void
ops_apply(gx_reg_t *reg, gx_reg_op_t *list, int complete)
{
    rcu_read_lock();
    /*
     * One op at a time under the writer lock: the workers' submits go on
     * between them instead of waiting (asleep) for the whole commit.  Only
     * the keeper changes what it publishes: that needs no lock.
     */
    for (gx_reg_op_t *op = list; op != NULL; op = op->next) {
        pthread_mutex_lock(&reg->wlock);
        op_apply(reg, op);
        pthread_mutex_unlock(&reg->wlock);
    }
    pools_update(reg, gx_now_ms()); /* node counts and pool settings changed */
    publish_all(reg);
    rcu_read_unlock();
    if (complete)
        listener_settle(reg);
    gx_resume_hold(); /* the calls a commit completes go to each worker together */
    while (list != NULL) {
        gx_reg_op_t *op = list;
        list = op->next;
        if (complete && op->done != NULL)
            op->done(op);
    }
    gx_resume_release();
}

/* ================================================================== submit (workers) */

/*
 * The store's writer calls store_done() for every write of a commit in a
 * row.  Between gx_reg_done_hold() and gx_reg_done_release() it collects
 * them, and the keeper gets the whole commit with one wake-up: handed over
 * one by one, the keeper woke at the first, applied a few, published and
 * woke the workers, about three times a commit, while the writer waited for
 * the queue's lock.
 */
static __thread gx_reg_op_t *held_head, **held_tail;

static void
queue_append(gx_reg_t *reg, gx_reg_op_t *head, gx_reg_op_t **tail)
{
    pthread_mutex_lock(&reg->qlock);
    *reg->qtail = head;
    reg->qtail = tail;
    pthread_cond_signal(&reg->qcond);
    pthread_mutex_unlock(&reg->qlock);
}

static void
store_done(int status, void *arg)
{
    gx_reg_op_t *op = arg;

    op->status = status;
    op->next = NULL;
    if (held_tail != NULL) {
        *held_tail = op;
        held_tail = &op->next;
        return;
    }
    queue_append(gx__reg, op, &op->next);
}

void
gx_reg_done_hold(void)
{
    held_head = NULL;
    held_tail = &held_head;
}

void
gx_reg_done_release(void)
{
    gx_reg_op_t **tail = held_tail;

    held_tail = NULL;
    if (held_head != NULL)
        queue_append(gx__reg, held_head, tail);
    held_head = NULL;
}

static gx_reg_op_t *
pending_find(gx_reg_t *reg, int pool_op, const char *key, size_t key_len)
{
    for (gx_reg_op_t *op = *pending_bucket(reg, key, key_len); op != NULL;
         op = op->pending_next) {
        int is_pool = op->kind == OP_POOL_PUT || op->kind == OP_POOL_DEL;
        if (is_pool == pool_op && op->key_len == key_len && memcmp(op->key, key, key_len) == 0)
            return op;
    }
    return NULL;
}

/* a DeletePool of @p name in flight (under the writer lock) */
static int
pool_deleting(gx_reg_t *reg, const char *name)
{
    const gx_reg_op_t *op = pending_find(reg, 1, name, strlen(name));

    return op != NULL && op->kind == OP_POOL_DEL;
}

/* any node write in flight in pool @p name */
static int
pending_in_pool(gx_reg_t *reg, const char *name)
{
    size_t len = strlen(name);

    /* rare (DeletePool): every chain */
    for (size_t b = 0; b < PENDING_BUCKETS; b++)
        for (gx_reg_op_t *op = reg->pending[b]; op != NULL; op = op->pending_next)
            if ((op->kind == OP_NODE_PUT || op->kind == OP_NODE_DEL) && op->key_len > len &&
                memcmp(op->key, name, len + 1) == 0)
                return 1;
    return 0;
}

static int
why_set(gx_reg_why_t *why, gx_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
why_set(gx_reg_why_t *why, gx_status_t status, const char *fmt, ...)
{
    va_list ap;

    why->status = status;
    va_start(ap, fmt);
    vsnprintf(why->msg, sizeof(why->msg), fmt, ap);
    va_end(ap);
    return GX_EINVAL;
}

/* reserves the key for @p op: other writes of it are refused until the keeper applies it */
static int
op_reserve(gx_reg_t *reg, gx_reg_op_t *op, int kind, const char *key, size_t key_len,
           gx_reg_why_t *why)
{
    op->kind = kind;
    op->status = 0;
    op->revision = 0;
    op->key = malloc(key_len + 1);
    if (op->key == NULL)
        return why_set(why, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    memcpy(op->key, key, key_len);
    op->key[key_len] = '\0';
    op->key_len = key_len;
    op->pending_next = *pending_bucket(reg, op->key, op->key_len);
    *pending_bucket(reg, op->key, op->key_len) = op;
    return 0;
}

/*
 * Hands a reserved @p op's writes to the store; if the store refuses them,
 * takes back what the op reserved (op_apply() of a failed op) and fails.
 * @p locked: the caller holds the writer lock, else it is taken for that.
 */
static int
op_send(gx_reg_t *reg, gx_reg_op_t *op, const gx_store_op_t *sops, size_t n, int locked,
        gx_reg_why_t *why)
{
    int rv = gx_store_submit(reg->st, sops, n, store_done, op);

    if (rv == 0)
        return 0;
    if (!locked)
        pthread_mutex_lock(&reg->wlock);
    op->status = rv;
    op_apply(reg, op);
    if (!locked)
        pthread_mutex_unlock(&reg->wlock);
    return why_set(why, gx_error_to_status(rv), "store: %s", gx_strerror(rv));
}

/* reserves the key and submits: the op is in flight when this returns 0 */
static int
op_submit(gx_reg_t *reg, gx_reg_op_t *op, int kind, const char *key, size_t key_len,
          const gx_store_op_t *sops, size_t n, gx_reg_why_t *why)
{
    int rv = op_reserve(reg, op, kind, key, key_len, why);

    return rv != 0 ? rv : op_send(reg, op, sops, n, 1, why);
}

static void *
call_pb_alloc(void *data, size_t size)
{
    return gx_call_alloc(data, size);
}

static void
call_pb_free(void *data, void *ptr)
{
}

/* a deep copy in call memory of the message packed in @p buf */
static void *
unpack_call(gx_call_t *call, const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len)
{
    ProtobufCAllocator a = {call_pb_alloc, call_pb_free, call};

    return protobuf_c_message_unpack(d, &a, len, buf);
}

/* a deep copy of @p m in call memory (the registry's copy may go before the reply) */
static void *
copy_call(gx_call_t *call, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = gx_call_alloc(call, len + 1);

    if (buf == NULL)
        return NULL;
    protobuf_c_message_pack(m, buf);
    return unpack_call(call, m->descriptor, buf, len);
}

static void
random_token(char *out)
{
    unsigned char b[TOKEN_BYTES];

    gx_random_bytes(b, sizeof(b));
    gx_hex(out, b, sizeof(b));
}

static int
spec_allowed(const gx_pb_pool_t *pool, const char *spec)
{
    if (pool->n_specializations == 0)
        return 1;
    for (size_t i = 0; i < pool->n_specializations; i++)
        if (strcmp(pool->specializations[i], spec) == 0)
            return 1;
    return 0;
}

/* a node write: its record for the store and its stored form for the keeper */
typedef struct {
    uint8_t *rec;
    size_t len;
    ninfo_t *ni;
} node_put_t;

/* @return 0, or GX_ENOMEM with @p w empty */
static int
node_put_make(node_put_t *w, const gx_pb_node_t *pb, const char *token)
{
    w->len = 0;
    w->rec = node_record(pb, token, &w->len);
    w->ni = w->rec != NULL ? ninfo_copy(pb, token) : NULL;
    if (w->ni == NULL) {
        free(w->rec);
        w->rec = NULL;
        return GX_ENOMEM;
    }
    return 0;
}

static void
node_put_clear(node_put_t *w)
{
    free(w->rec);
    ninfo_free(w->ni); /* NULL once the op took it */
    w->rec = NULL;
    w->ni = NULL;
}

/*
 * Reserves the key of @p w for @p op (which takes its stored form), @p charge
 * bytes of node memory and, for F_NEW, a node, until the keeper applies it
 * (op_apply); node_put_send() then hands the record to the store.
 * @note under the writer lock
 */
static int
node_put_queue(gx_reg_t *reg, node_put_t *w, const char *key, size_t key_len, unsigned flags,
               uint32_t charge, gx_reg_op_t *op, gx_reg_why_t *why)
{
    int rv;

    op->obj = w->ni;
    op->flags = flags;
    op->charge = charge;
    rv = op_reserve(reg, op, OP_NODE_PUT, key, key_len, why);
    if (rv != 0) {
        op->obj = NULL;
        return rv;
    }
    w->ni = NULL;
    reg->mem_pending += charge;
    if (flags & F_NEW)
        reg->nodes_pending++;
    return 0;
}

/* the record of @p w to the store for @p op, queued by node_put_queue() (see op_send()) */
static int
node_put_send(gx_reg_t *reg, const node_put_t *w, gx_reg_op_t *op, int locked,
              gx_reg_why_t *why)
{
    gx_store_op_t sop = {GX_STORE_NODES, 0, op->key, op->key_len, w->rec, w->len};

    return op_send(reg, op, &sop, 1, locked, why);
}

/*
 * Whether the registry has room for @p w replacing @p n (NULL: a new node):
 * registry.max_nodes and max_node_memory_mb, counting the writes in flight.
 * Sets @p charge to the growth to reserve.  @note under the writer lock
 */
static int
nodes_room(gx_reg_t *reg, const node_put_t *w, const gx_reg_node_t *n, size_t key_len,
           uint32_t *charge, gx_reg_why_t *why)
{
    uint64_t need = node_charge(w->ni, key_len), have = 0, held, limit;

    *charge = 0;
    if (n == NULL &&
        uatomic_read(&reg->n_nodes) + reg->nodes_pending >= (size_t)reg->o.max_nodes)
        goto full_nodes;
    if (n != NULL)
        have = node_charge(rcu_dereference(n->info), key_len);
    if (need <= have)
        return 0;
    held = uatomic_read(&reg->node_mem) + reg->mem_pending;
    limit = (uint64_t)reg->o.max_node_memory_mb << 20;
    if (held + (need - have) > limit) {
        gx_stats_inc(REGISTRY_FULL);
        gx_log_remote(GX_LOG_WARN, "registry full: nodes would take more than "
                      "registry.max_node_memory_mb=%u held=%llu", reg->o.max_node_memory_mb,
                      (unsigned long long)held);
        return why_set(why, GX_STATUS_RESOURCE_EXHAUSTED, "node: the registry is full (its "
                       "nodes take %llu MiB of registry.max_node_memory_mb %u)",
                       (unsigned long long)(held >> 20), reg->o.max_node_memory_mb);
    }
    *charge = (uint32_t)(need - have);
    return 0;
full_nodes:
    gx_stats_inc(REGISTRY_FULL);
    gx_log_remote(GX_LOG_WARN, "registry full: registry.max_nodes=%u reached",
                  reg->o.max_nodes);
    return why_set(why, GX_STATUS_RESOURCE_EXHAUSTED, "node: the registry is full "
                   "(registry.max_nodes %u)", reg->o.max_nodes);
}

static int
node_put_submit(gx_reg_t *reg, const gx_pb_node_t *pb, const char *token, const char *key,
                size_t key_len, unsigned flags, gx_reg_op_t *op, gx_reg_why_t *why)
{
    node_put_t w;
    int rv;

    if (node_put_make(&w, pb, token) != 0)
        return why_set(why, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    rv = node_put_queue(reg, &w, key, key_len, flags, 0, op, why);
    if (rv == 0)
        rv = node_put_send(reg, &w, op, 1, why);
    node_put_clear(&w);
    return rv;
}

typedef struct {
    gx_reg_pool_t *p;
    gx_reg_node_t *n;
    char key[KEY_MAX + 1];
    size_t key_len;
} target_t;

/* finds pool and (optional) node, refuses keys with a write in flight */
static int
target_find(gx_reg_t *reg, const char *pool, const char *id, int need_node, target_t *t,
            gx_reg_why_t *why)
{
    t->p = gx_reg_pool_find(reg, pool);
    if (t->p == NULL)
        return why_set(why, GX_STATUS_NOT_FOUND, "pool: no pool \"%s\"", pool);
    if (pool_deleting(reg, pool))
        return why_set(why, GX_STATUS_ABORTED, "pool: \"%s\" is being deleted", pool);
    t->key_len = node_key(pool, id, t->key);
    t->n = t->key_len > 0 ? node_lookup(reg, t->key, t->key_len) : NULL;
    if (need_node && t->n == NULL)
        return why_set(why, GX_STATUS_NOT_FOUND, "node_id: no node \"%s\" in pool \"%s\"", id,
                       pool);
    if (pending_find(reg, 0, t->key, t->key_len) != NULL)
        return why_set(why, GX_STATUS_ABORTED, "node_id: a change of node \"%s\" is in flight; "
                       "retry", id);
    return 0;
}

/* decides whether a register is allowed, and how: flags and the token to use */
static int
register_check(gx_reg_t *reg, const target_t *t, const gx_pb_node_t *node, const char *token_in,
               const char *fresh, int64_t now, unsigned *flags, char *token, int64_t *registered,
               gx_reg_why_t *why)
{
    const gx_pb_pool_t *pool = rcu_dereference(t->p->info)->pb;
    uint32_t st;

    for (size_t i = 0; i < node->n_specializations; i++)
        if (!spec_allowed(pool, node->specializations[i]))
            return why_set(why, GX_STATUS_INVALID_ARGUMENT, "specializations: \"%s\" is not "
                           "allowed in pool \"%s\"", node->specializations[i], pool->name);
    *registered = now;
    if (t->n == NULL) {
        if (pool->max_nodes != 0 &&
            uatomic_read(&t->p->node_count) + t->p->pending_adds >= pool->max_nodes)
            return why_set(why, GX_STATUS_RESOURCE_EXHAUSTED, "pool \"%s\" is full (max_nodes "
                           "%u)", pool->name, pool->max_nodes);
        *flags = F_NEW | F_REFRESH;
        strcpy(token, fresh);
        return 0;
    }
    st = uatomic_read(&t->n->state);
    if (token_in[0] && gx_reg_token_equal(token_in, rcu_dereference(t->n->info)->token)) {
        *flags = F_REFRESH;
        *registered = rcu_dereference(t->n->info)->pb->registered_unix_ms;
        strcpy(token, token_in);
        return 0;
    }
    if (st != GALAXY__POOL__V1__NODE_STATE__NODE_STATE_DOWN)
        return why_set(why, GX_STATUS_ALREADY_EXISTS, "node.id: \"%s\" is registered in pool "
                       "\"%s\" under another lease", node->id, pool->name);
    *flags = F_REFRESH;
    strcpy(token, fresh);
    return 0;
}

int
gx_reg_node_register_submit(gx_reg_t *reg, gx_call_t *call, const gx_pb_node_t *node,
                            const char *token_in, const char *owner, gx_reg_op_t *op,
                            const uint8_t **packed, size_t *packed_len, char **token_out,
                            uint32_t *interval_out, uint32_t *ttl_out, gx_reg_why_t *why)
{
    gx_pb_node_t *pb = gx_call_alloc(call, sizeof(*pb));
    char *token = gx_call_alloc(call, GX_REG_TOKEN_MAX + 1);
    char fresh[2 * TOKEN_BYTES + 1];
    unsigned flags = 0;
    uint32_t charge;
    int64_t registered = 0, now = gx_unix_ms();
    node_put_t w;
    target_t t;
    int rv;

    if (pb == NULL || token == NULL)
        return why_set(why, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    /*
     * The record of a new node (a fresh lease, registered now) is made
     * before taking the writer lock, which the other workers wait for; a
     * re-register under its lease keeps its token and first registration
     * time: its record is made again under the lock.
     */
    random_token(fresh);
    *pb = *node;
    pb->state = GALAXY__POOL__V1__NODE_STATE__NODE_STATE_HEALTHY;
    pb->load = 0;
    pb->running_jobs = 0;
    pb->registered_unix_ms = now;
    pb->last_heartbeat_unix_ms = now;
    pb->revision = 0;
    pb->flap_count = 0;
    pb->owner = (char *)owner;
    if (node_put_make(&w, pb, fresh) != 0)
        return why_set(why, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    gx_reg_read_begin();
    /* the lookup's cache misses before the lock, which the other writers wait for */
    (void)gx_reg_node_find(reg, node->pool, node->id);
    pthread_mutex_lock(&reg->wlock);
    rv = target_find(reg, node->pool, node->id, 0, &t, why);
    if (rv == 0)
        rv = register_check(reg, &t, node, token_in, fresh, now, &flags, token, &registered,
                            why);
    if (rv == 0 && (registered != now || strcmp(token, fresh) != 0)) {
        pb->registered_unix_ms = registered;
        node_put_clear(&w);
        if (node_put_make(&w, pb, token) != 0)
            rv = why_set(why, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (rv == 0)
        rv = nodes_room(reg, &w, t.n, t.key_len, &charge, why);
    if (rv != 0)
        goto out;
    gx_reg_pool_heartbeat(t.p, interval_out, ttl_out);
    rv = node_put_queue(reg, &w, t.key, t.key_len, flags, charge, op, why);
    if (rv == 0 && (flags & F_NEW))
        t.p->pending_adds++;
out:
    pthread_mutex_unlock(&reg->wlock);
    /* the key is reserved: the store's copy of the record is made without the lock */
    if (rv == 0)
        rv = node_put_send(reg, &w, op, 0, why);
    gx_reg_read_end();
    if (rv == 0) {
        /* the answer's node: the record's, behind its version and token (node_record()) */
        size_t skip = 2 + (size_t)w.rec[1];
        uint8_t *p = gx_call_alloc(call, w.len - skip);

        /* the op is in flight: out of memory now can only fail the answer */
        if (p != NULL)
            memcpy(p, w.rec + skip, w.len - skip);
        *packed = p;
        *packed_len = p != NULL ? w.len - skip : 0;
    }
    node_put_clear(&w);
    *token_out = token;
    return rv;
}

int
gx_reg_node_deregister_submit(gx_reg_t *reg, const char *pool, const char *id,
                              const char *token, gx_reg_op_t *op, gx_reg_why_t *why)
{
    gx_store_op_t sops[2];
    target_t t;
    int rv;

    gx_reg_read_begin();
    pthread_mutex_lock(&reg->wlock);
    rv = target_find(reg, pool, id, 1, &t, why);
    if (rv == 0 && !gx_reg_token_equal(token, rcu_dereference(t.n->info)->token))
        rv = why_set(why, GX_STATUS_PERMISSION_DENIED, "lease_token: not the lease of node "
                     "\"%s\"", id);
    if (rv == 0) {
        node_del_ops(sops, t.key, t.key_len);
        op->obj = NULL;
        op->flags = 0;
        rv = op_submit(reg, op, OP_NODE_DEL, t.key, t.key_len, sops, 2, why);
    }
    pthread_mutex_unlock(&reg->wlock);
    gx_reg_read_end();
    return rv;
}

int
gx_reg_node_drain_submit(gx_reg_t *reg, gx_call_t *call, const char *pool, const char *id,
                         gx_reg_op_t *op, gx_pb_node_t **reply, gx_reg_why_t *why)
{
    static gx_pb_node_t empty_node = GALAXY__POOL__V1__NODE__INIT;
    gx_pb_node_t *pb = NULL, stored;
    target_t t;
    int rv;

    gx_reg_read_begin();
    pthread_mutex_lock(&reg->wlock);
    rv = target_find(reg, pool, id, 1, &t, why);
    if (rv == 0) {
        stored = *rcu_dereference(t.n->info)->pb;
        stored.state = GALAXY__POOL__V1__NODE_STATE__NODE_STATE_DRAINING;
        stored.last_heartbeat_unix_ms = uatomic_read(&t.n->hb_unix_ms);
        rv = node_put_submit(reg, &stored, rcu_dereference(t.n->info)->token, t.key, t.key_len,
                             F_DRAIN, op, why);
    }
    if (rv == 0) {
        stored.state = uatomic_read(&t.n->state) ==
                               GALAXY__POOL__V1__NODE_STATE__NODE_STATE_HEALTHY
                           ? GALAXY__POOL__V1__NODE_STATE__NODE_STATE_DRAINING
                           : gx_reg_node_state(t.n);
        pb = copy_call(call, &stored.base);
        if (pb == NULL) /* in flight already: answer without the node */
            pb = &empty_node;
    }
    pthread_mutex_unlock(&reg->wlock);
    gx_reg_read_end();
    *reply = pb;
    return rv;
}

/* ------------------------------------------------------------------ pools */

static void
pool_defaults(gx_pb_pool_t *pb)
{
    if (pb->heartbeat_interval_ms == 0)
        pb->heartbeat_interval_ms = GX_REG_INTERVAL_DEFAULT;
    if (pb->node_ttl_ms == 0)
        pb->node_ttl_ms = 3 * pb->heartbeat_interval_ms;
    if (pb->routing_policy[0] == '\0')
        pb->routing_policy = (char *)"least_loaded";
}

/* UpdatePool: zero scalars keep the stored value; labels/specializations replace when given */
static int
pool_merge(gx_pb_pool_t *pb, const gx_pb_pool_t *cur, gx_reg_why_t *why)
{
    if (pb->visibility != 0 && pb->visibility != cur->visibility)
        return why_set(why, GX_STATUS_INVALID_ARGUMENT, "pool.visibility: never changes after "
                       "creation");
    pb->visibility = cur->visibility;
    if (pb->tier[0] == '\0')
        pb->tier = cur->tier;
    if (pb->description[0] == '\0')
        pb->description = cur->description;
    if (pb->heartbeat_interval_ms == 0)
        pb->heartbeat_interval_ms = cur->heartbeat_interval_ms;
    if (pb->node_ttl_ms == 0)
        pb->node_ttl_ms = cur->node_ttl_ms;
    if (pb->routing_policy[0] == '\0')
        pb->routing_policy = cur->routing_policy;
    if (pb->max_nodes == 0)
        pb->max_nodes = cur->max_nodes;
    if (pb->n_specializations == 0) {
        pb->n_specializations = cur->n_specializations;
        pb->specializations = cur->specializations;
    }
    if (pb->n_labels == 0) {
        pb->n_labels = cur->n_labels;
        pb->labels = cur->labels;
    }
    pb->created_unix_ms = cur->created_unix_ms;
    if (pb->node_ttl_ms < pb->heartbeat_interval_ms)
        return why_set(why, GX_STATUS_INVALID_ARGUMENT, "pool.node_ttl_ms: %u is less than "
                       "heartbeat_interval_ms %u", pb->node_ttl_ms, pb->heartbeat_interval_ms);
    return 0;
}

static int
pool_put_locked(gx_reg_t *reg, gx_call_t *call, gx_pb_pool_t *pb, int create, gx_reg_op_t *op,
                gx_pb_pool_t **reply, gx_reg_why_t *why)
{
    gx_reg_pool_t *p = gx_reg_pool_find(reg, pb->name);
    size_t nlen = strlen(pb->name), len = 0;
    gx_store_op_t sop = {GX_STORE_POOLS, 0, pb->name, nlen, NULL, 0};
    uint8_t *rec;
    pinfo_t *pi;
    int rv;

    if (pending_find(reg, 1, pb->name, nlen) != NULL)
        return why_set(why, GX_STATUS_ABORTED, "pool.name: a change of pool \"%s\" is in "
                       "flight; retry", pb->name);
    if (create && p != NULL)
        return why_set(why, GX_STATUS_ALREADY_EXISTS, "pool.name: pool \"%s\" exists",
                       pb->name);
    if (!create && p == NULL)
        return why_set(why, GX_STATUS_NOT_FOUND, "pool.name: no pool \"%s\"", pb->name);
    if (create) {
        pool_defaults(pb);
        pb->created_unix_ms = gx_unix_ms();
        if (pb->node_ttl_ms < pb->heartbeat_interval_ms)
            return why_set(why, GX_STATUS_INVALID_ARGUMENT, "pool.node_ttl_ms: %u is less than "
                           "heartbeat_interval_ms %u", pb->node_ttl_ms,
                           pb->heartbeat_interval_ms);
    } else if (pool_merge(pb, rcu_dereference(p->info)->pb, why) != 0) {
        return GX_EINVAL;
    }
    pb->node_count = 0;
    pb->self_preservation = 0;
    rec = pool_record(pb, &len);
    pi = rec != NULL ? pool_record_parse(rec, len) : NULL;
    if (pi == NULL) {
        free(rec);
        return why_set(why, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    }
    /* the reply is decoded from the record into call memory: it outlives any registry copy */
    *reply = unpack_call(call, &galaxy__pool__v1__pool__descriptor, rec, len);
    sop.val = rec;
    sop.val_len = len;
    op->obj = pi;
    op->flags = 0;
    rv = *reply != NULL ? op_submit(reg, op, OP_POOL_PUT, pb->name, nlen, &sop, 1, why)
                        : why_set(why, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    if (rv != 0) {
        pinfo_free(pi);
        op->obj = NULL;
    } else if (p != NULL) {
        (*reply)->node_count = uatomic_read(&p->node_count);
    }
    free(rec);
    return rv;
}

int
gx_reg_pool_put_submit(gx_reg_t *reg, gx_call_t *call, const gx_pb_pool_t *pool, int create,
                       gx_reg_op_t *op, gx_pb_pool_t **reply, gx_reg_why_t *why)
{
    gx_pb_pool_t pb = *pool;
    int rv;

    gx_reg_read_begin();
    pthread_mutex_lock(&reg->wlock);
    rv = pool_put_locked(reg, call, &pb, create, op, reply, why);
    pthread_mutex_unlock(&reg->wlock);
    gx_reg_read_end();
    return rv;
}

static int
pool_delete_locked(gx_reg_t *reg, const char *name, int force, gx_reg_op_t *op,
                   gx_reg_why_t *why)
{
    gx_reg_pool_t *p = gx_reg_pool_find(reg, name);
    size_t len = strlen(name);
    /* the pool, then its nodes' keys "<pool>\0<id>": the prefix is the name with its NUL */
    gx_store_op_t sops[3] = {
        {GX_STORE_POOLS, GX_STORE_DEL, name, len, NULL, 0},
        {GX_STORE_NODES, GX_STORE_DEL_PREFIX, name, len + 1, NULL, 0},
        {GX_STORE_SEEN, GX_STORE_DEL_PREFIX, name, len + 1, NULL, 0},
    };

    if (p == NULL)
        return why_set(why, GX_STATUS_NOT_FOUND, "name: no pool \"%s\"", name);
    if (pending_find(reg, 1, name, strlen(name)) != NULL || pending_in_pool(reg, name))
        return why_set(why, GX_STATUS_ABORTED, "name: a change in pool \"%s\" is in flight; "
                       "retry", name);
    if (!force && p->ix.total > 0)
        return why_set(why, GX_STATUS_FAILED_PRECONDITION, "name: pool \"%s\" still has %zu "
                       "nodes (force deletes them)", name, p->ix.total);
    op->obj = NULL;
    op->flags = 0;
    return op_submit(reg, op, OP_POOL_DEL, name, len, sops, 3, why);
}

int
gx_reg_pool_delete_submit(gx_reg_t *reg, const char *name, int force, gx_reg_op_t *op,
                          gx_reg_why_t *why)
{
    int rv;

    gx_reg_read_begin();
    pthread_mutex_lock(&reg->wlock);
    rv = pool_delete_locked(reg, name, force, op, why);
    pthread_mutex_unlock(&reg->wlock);
    gx_reg_read_end();
    return rv;
}

/* ================================================================== liveness (keeper) */

/*
 * CAS @p n from @p st down to @p to; a heartbeat that came in meanwhile
 * (seen_ms moved on from @p seen) puts it back up.  Feeds the result.
 */
static void
node_demote(gx_reg_node_t *n, uint32_t st, uint32_t to, uint64_t seen, uint64_t now)
{
    if (!is_unwell(n->fed_state))
        unwell_coming(n->pool);
    if (node_transition(n, st, to, now)) {
        if (uatomic_read(&n->seen_ms) != seen)
            node_transition(n, to, uatomic_read(&n->draining) ? ST_DRAINING : ST_HEALTHY, now);
        else if (to == ST_DOWN)
            n->down_ms = now;
    }
    node_refeed(n);
}

/* to its deadline again, unless self-preservation holds it and it is still lapsed */
static void
node_reschedule(gx_reg_t *reg, gx_reg_node_t *n)
{
    if (n->due_slot != HELD || is_up(uatomic_read(&n->state)))
        node_schedule(reg, n);
}

/* after the pool's liveness TTL went down, or the keeper lost track of its revivals */
static void
pool_reschedule(gx_reg_t *reg, gx_reg_pool_t *p)
{
    gx_reg_node_t *n;

    for (wit_t it = {&p->ix}; (n = wit_next(&it)) != NULL;)
        node_reschedule(reg, n);
}

static void
sp_enter(gx_reg_t *reg, gx_reg_pool_t *p)
{
    uatomic_set(&p->sp, 1);
    uatomic_inc(&p->sp_entries);
    gx_log(GX_LOG_WARN, "self-preservation on pool=%s nodes=%u up=%u suspect=%u down=%u "
           "share=%u reason=\"more than share%% of the live nodes lapsed within one ttl\"",
           p->name, p->n_up + p->n_suspect + p->n_down, p->n_up, p->n_suspect, p->n_down,
           reg->o.self_preservation_share);
}

/* the held nodes are judged again at the next slot; DOWN ones get a full retention from now */
static void
sp_exit(gx_reg_t *reg, gx_reg_pool_t *p, uint64_t now)
{
    tlink_t held;
    unsigned released = 0;

    uatomic_set(&p->sp, 0);
    tlist_move(&p->held, &held);
    while (!tlist_empty(&held)) {
        gx_reg_node_t *n = tlist_node(held.next);
        if (uatomic_read(&n->state) == ST_DOWN)
            n->down_ms = now;
        wheel_put(reg, n, now);
        released++;
    }
    gx_log(GX_LOG_INFO, "self-preservation off pool=%s nodes=%u up=%u suspect=%u down=%u "
           "released=%u", p->name, p->n_up + p->n_suspect + p->n_down, p->n_up, p->n_suspect,
           p->n_down, released);
}

/*
 * Enters self-preservation when the pool has at least the minimum of nodes
 * and more than the share of its live nodes are SUSPECT (they lapsed within
 * the last TTL); leaves it once no more than the share of all its nodes are
 * SUSPECT or DOWN, whatever the pool's size by then (deregistering a few dead
 * nodes must not release the others).  Entering needs a lapsed share above
 * what leaving allows, so the two never alternate on the same counts.
 * @return 1 while in the mode
 */
static int
pool_sp_update(gx_reg_t *reg, gx_reg_pool_t *p, uint64_t now)
{
    uint64_t share = reg->o.self_preservation_share;
    uint64_t live = (uint64_t)p->n_up + p->n_suspect, total = live + p->n_down;

    if (!uatomic_read(&p->sp)) {
        if (total >= reg->o.self_preservation_min_nodes && p->n_suspect * 100 > share * live)
            sp_enter(reg, p);
    } else if (((uint64_t)p->n_suspect + p->n_down) * 100 <= share * total) {
        sp_exit(reg, p, now);
    }
    return (int)uatomic_read(&p->sp);
}

/*
 * The slot of @p n came: demote it, hold it back, queue it on @p gone for
 * removal, or (a heartbeat came since) put it at its real deadline.
 */
static void
node_check(gx_reg_t *reg, gx_reg_node_t *n, uint64_t now, tlink_t *gone)
{
    gx_reg_pool_t *p = n->pool;
    uint32_t ttl = pool_ttl(p), st = uatomic_read(&n->state), to;
    uint64_t seen = uatomic_read(&n->seen_ms);
    int unused;

    to = gx_reg_liveness(now > seen ? now - seen : 0, ttl, (int)uatomic_read(&n->draining),
                         reg->o.retention_factor, &unused);
    if (to == ST_DOWN && (st != ST_DOWN || down_due(reg, n, ttl) <= now) &&
        pool_sp_update(reg, p, now)) {
        if (is_up(st))
            node_demote(n, st, ST_SUSPECT, seen, now);
        if (!is_up(uatomic_read(&n->state))) {
            node_hold(n);
            return;
        }
    } else if (state_rank(to) > state_rank(st)) {
        node_demote(n, st, to, seen, now);
    } else if (st == ST_DOWN && down_due(reg, n, ttl) <= now) {
        tlist_del(&n->tl);
        tlist_add(gone, &n->tl);
        return;
    }
    node_schedule(reg, n);
}

/* every slot up to now: O(nodes whose slot came, plus those a whole turn away in it) */
static void
wheel_advance(gx_reg_t *reg, uint64_t now, tlink_t *gone)
{
    uint64_t target = now / reg->o.tick_ms, s = reg->wheel_at;

    if (target > s + WHEEL_SLOTS)
        s = target - WHEEL_SLOTS; /* stalled for a whole turn: each slot once */
    while (s < target) {
        tlink_t batch, *slot = &reg->wheel[++s % WHEEL_SLOTS];
        reg->wheel_at = s;
        tlist_move(slot, &batch);
        while (!tlist_empty(&batch)) {
            gx_reg_node_t *n = tlist_node(batch.next);
            if (n->due_slot <= target) {
                node_check(reg, n, now, gone);
            } else { /* its turn is a later one */
                tlist_del(&n->tl);
                tlist_add(slot, &n->tl);
            }
        }
    }
}

/* removes @p n (DOWN past retention) from memory and, fire and forget, from the store */
static void
sweep_remove(gx_reg_t *reg, gx_reg_node_t *n)
{
    gx_store_op_t sops[2];

    gx_log(GX_LOG_INFO, "node removed pool=%s node=%s reason=\"down past retention\"",
           n->pool->name, n->id);
    node_del_ops(sops, n->key, n->key_len);
    gx_store_submit(reg->st, sops, 2, NULL, NULL);
    node_remove(reg, n);
}

/* the nodes node_check() found past retention, under the writer lock */
static void
sweep_removals(gx_reg_t *reg, tlink_t *gone, uint64_t now)
{
    while (!tlist_empty(gone)) {
        gx_reg_node_t *n = tlist_node(gone->next);
        if (uatomic_read(&n->state) != ST_DOWN) /* a heartbeat came: the restate moves it */
            node_schedule(reg, n);
        else if (pending_find(reg, 0, n->key, n->key_len) != NULL)
            wheel_put(reg, n, now); /* a write of it is in flight: look again next slot */
        else
            sweep_remove(reg, n);
    }
}

/* ================================================================== pools: adaptive heartbeats */

typedef struct {
    uint64_t floor;
    double rate;
} rate_t;

static int
rate_one(gx_reg_pool_t *p, void *arg)
{
    rate_t *r = arg;
    uint64_t iv = rcu_dereference(p->info)->pb->heartbeat_interval_ms;

    if (iv < r->floor)
        iv = r->floor;
    if (iv > 0)
        r->rate += uatomic_read(&p->node_count) * 1000.0 / (double)iv;
    return 0;
}

/* heartbeats per second of all nodes if no pool's interval were below @p floor */
static double
heartbeat_rate(gx_reg_t *reg, uint64_t floor)
{
    rate_t r = {floor, 0};

    gx_reg_pool_foreach(reg, rate_one, &r);
    return r.rate;
}

/*
 * The smallest interval floor that keeps all heartbeats within
 * max_heartbeats_per_second (the rate only falls as the floor grows), at
 * most GX_REG_INTERVAL_MAX; 0 when the pools' own intervals already do.
 */
static uint32_t
heartbeat_floor(gx_reg_t *reg)
{
    uint32_t budget = reg->o.max_heartbeats_per_second, lo = 1, hi = GX_REG_INTERVAL_MAX;

    if (budget == 0 || heartbeat_rate(reg, 0) <= budget)
        return 0;
    if (heartbeat_rate(reg, hi) > budget)
        return hi;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (heartbeat_rate(reg, mid) <= budget)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/*
 * The interval and TTL @p p hands out under @p floor, and the TTL liveness
 * applies: the one handed out, or a longer one handed out until less than
 * that longer TTL ago (a node told it may still be going by it).
 */
static void
pool_timing(gx_reg_t *reg, gx_reg_pool_t *p, uint32_t floor, uint64_t now)
{
    const gx_pb_pool_t *pb = rcu_dereference(p->info)->pb;
    uint32_t iv = pb->heartbeat_interval_ms, ttl = pb->node_ttl_ms, told = p->hb_ttl, live;

    if (floor > iv && iv > 0) {
        uint64_t t = ((uint64_t)ttl * floor + iv - 1) / iv;
        ttl = t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
        iv = floor;
    }
    if (ttl < told) {
        if (p->hold_ttl < told)
            p->hold_ttl = told;
        if (p->hold_until < now + told)
            p->hold_until = now + told;
    }
    if (now >= p->hold_until)
        p->hold_ttl = 0;
    live = ttl > p->hold_ttl ? ttl : p->hold_ttl;
    uatomic_set(&p->hb_interval, iv);
    uatomic_set(&p->hb_ttl, ttl);
    if (live != p->live_ttl) {
        int shorter = live < p->live_ttl;
        uatomic_set(&p->live_ttl, live);
        if (shorter) /* nodes were put at deadlines of the longer one */
            pool_reschedule(reg, p);
    }
}

typedef struct {
    gx_reg_t *reg;
    uint32_t floor;
    uint64_t now;
} pools_update_t;

static int
pool_update(gx_reg_pool_t *p, void *arg)
{
    pools_update_t *u = arg;

    if (uatomic_xchg(&p->restate, 0)) { /* revivals the keeper could not be told of one by one */
        feed_states(p);
        pool_reschedule(u->reg, p);
    }
    pool_timing(u->reg, p, u->floor, u->now);
    pool_sp_update(u->reg, p, u->now);
    return 0;
}

/* every pool's heartbeat timing and self-preservation mode, after any change (keeper) */
static void
pools_update(gx_reg_t *reg, uint64_t now)
{
    pools_update_t u = {reg, heartbeat_floor(reg), now};

    gx_reg_pool_foreach(reg, pool_update, &u);
}

/* ================================================================== checkpoints (keeper) */

typedef struct {
    gx_reg_t *reg;
    gx_store_op_t ops[CKPT_BATCH];
    uint8_t seen[CKPT_BATCH][SEEN_LEN];
    gx_reg_node_t *nodes[CKPT_BATCH];
    int64_t hbs[CKPT_BATCH];
    size_t n;
    uint64_t written;
} ckpt_t;

/*
 * Writes the batch's last-seen times, fire and forget, except those of nodes
 * with a write in flight or in a pool being deleted: a delete must come
 * last.  The writer lock orders the batch with the workers' writes; it is
 * held for this only, not while the batch is made (the keeper, which alone
 * applies writes, is busy here).
 */
static void
ckpt_flush(ckpt_t *c)
{
    const gx_reg_pool_t *pool = NULL;
    int pool_going = 0;
    size_t k = 0;

    if (c->n == 0)
        return;
    pthread_mutex_lock(&c->reg->wlock);
    for (size_t i = 0; i < c->n; i++) {
        gx_reg_node_t *n = c->nodes[i];
        if (n->pool != pool) {
            pool = n->pool;
            pool_going = pool_deleting(c->reg, pool->name);
        }
        if (pool_going || pending_find(c->reg, 0, n->key, n->key_len) != NULL)
            continue;
        n->ckpt_hb = c->hbs[i];
        c->ops[k++] = c->ops[i];
    }
    if (k > 0 && gx_store_submit(c->reg->st, c->ops, k, NULL, NULL) == 0)
        c->written += k;
    pthread_mutex_unlock(&c->reg->wlock);
    c->n = 0;
}

static int
ckpt_pool(gx_reg_pool_t *p, void *arg)
{
    ckpt_t *c = arg;
    gx_reg_node_t *n;

    for (wit_t it = {&p->ix}; (n = wit_next(&it)) != NULL;) {
        int64_t hb = uatomic_read(&n->hb_unix_ms);

        if (hb == n->ckpt_hb)
            continue;
        seen_put(c->seen[c->n], hb);
        c->ops[c->n] = (gx_store_op_t){GX_STORE_SEEN, 0, n->key, n->key_len, c->seen[c->n],
                                       SEEN_LEN};
        c->nodes[c->n] = n;
        c->hbs[c->n] = hb;
        if (++c->n == CKPT_BATCH)
            ckpt_flush(c);
    }
    return 0;
}

/* the last-seen times that changed since the last checkpoint, a batch at a time (keeper) */
static void
checkpoint(gx_reg_t *reg)
{
    ckpt_t *c = malloc(sizeof(*c));
    uint64_t t0;

    if (c == NULL)
        return;
    c->reg = reg;
    c->n = 0;
    c->written = 0;
    t0 = gx_now_ns();
    gx_reg_pool_foreach(reg, ckpt_pool, c);
    ckpt_flush(c);
    if (c->written > 0) {
        uatomic_add(&reg->ckpt_records, c->written);
        uatomic_set(&reg->ckpt_last_ns, gx_now_ns() - t0);
        uatomic_inc(&reg->ckpts);
    }
    free(c);
}

/* ================================================================== the keeper thread */

static gx_reg_op_t *
queue_take(gx_reg_t *reg, uint64_t deadline_ms, int *stop, int *kick)
{
    gx_reg_op_t *list;

    pthread_mutex_lock(&reg->qlock);
    while (reg->qhead == NULL && !reg->stop && !reg->kick && gx_now_ms() < deadline_ms) {
        struct timespec ts;
        uint64_t wait = deadline_ms - gx_now_ms();
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)(wait / 1000);
        ts.tv_nsec += (long)(wait % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&reg->qcond, &reg->qlock, &ts);
    }
    list = reg->qhead;
    reg->qhead = NULL;
    reg->qtail = &reg->qhead;
    *stop = reg->stop;
    *kick = reg->kick;
    reg->kick = 0;
    pthread_mutex_unlock(&reg->qlock);
    return list;
}

/* liveness up to now, pool timing and modes, checkpoints when due, then publishes */
static void
keeper_tick(gx_reg_t *reg)
{
    uint64_t now = gx_now_ms();
    tlink_t gone;

    tlist_init(&gone);
    rcu_read_lock();
    wheel_advance(reg, now, &gone);
    if (!tlist_empty(&gone)) {
        pthread_mutex_lock(&reg->wlock);
        sweep_removals(reg, &gone, now);
        pthread_mutex_unlock(&reg->wlock);
    }
    pools_update(reg, now);
    if (gx_now_ms() >= reg->next_ckpt) {
        checkpoint(reg);
        reg->next_ckpt = gx_now_ms() + reg->o.checkpoint_ms;
    }
    pthread_mutex_lock(&reg->wlock);
    publish_all(reg);
    pthread_mutex_unlock(&reg->wlock);
    rcu_read_unlock();
    listener_settle(reg);
    if (reg->listener.tick != NULL)
        reg->listener.tick(reg->listener.arg, now);
}

/* feeds the state changes heartbeats made (keeper_kick) and moves those nodes' deadlines */
static void
keeper_restate(gx_reg_t *reg)
{
    restate_t *list;

    pthread_mutex_lock(&reg->qlock);
    list = reg->restate;
    reg->restate = NULL;
    pthread_mutex_unlock(&reg->qlock);
    rcu_read_lock();
    pthread_mutex_lock(&reg->wlock);
    while (list != NULL) {
        restate_t *r = list;
        gx_reg_node_t *n = node_lookup(reg, r->key, r->key_len);
        list = r->next;
        if (n != NULL) {
            node_refeed(n);
            node_reschedule(reg, n);
        }
        free(r);
    }
    pools_update(reg, gx_now_ms());
    publish_all(reg);
    pthread_mutex_unlock(&reg->wlock);
    rcu_read_unlock();
    listener_settle(reg);
}

static void *
keeper_main(void *arg)
{
    gx_reg_t *reg = arg;
    uint64_t next = gx_now_ms() + reg->o.tick_ms;
    int stop = 0, kick = 0;

    gx_reg_thread_online(); /* the listener's read brackets see the flag */
    while (!stop) {
        gx_reg_op_t *list = queue_take(reg, next, &stop, &kick);
        if (list != NULL) {
            ops_apply(reg, list, 1);
            nodes_table_grow(reg);
        }
        if (kick && !stop)
            keeper_restate(reg);
        if (!stop && gx_now_ms() >= next) {
            keeper_tick(reg);
            next = gx_now_ms() + reg->o.tick_ms;
        }
    }
    /* the workers are gone and the store still takes writes: the last-seen times too */
    rcu_read_lock();
    checkpoint(reg);
    rcu_read_unlock();
    gx_reg_thread_offline();
    return NULL;
}

/* ================================================================== recovery */

typedef struct {
    gx_reg_t *reg;
    size_t pools, nodes, skipped;
    uint64_t base;   /* this start's first revision (epoch_next) */
    uint8_t *stale;  /* keys of last-seen times without a node: a length byte, the key */
    size_t stale_len, stale_cap, stale_n;
} load_t;

static int
load_pool_locked(load_t *l, const void *val, size_t val_len)
{
    pinfo_t *pi = pool_record_parse(val, val_len);
    gx_reg_pool_t *p = pi != NULL ? pool_new(l->reg, pi) : NULL;

    if (p == NULL) {
        if (pi == NULL) {
            l->skipped++;
            return 0;
        }
        pinfo_free(pi);
        return GX_ENOMEM;
    }
    if (cds_lfht_add_unique(l->reg->pools, hash_bytes(p->name, strlen(p->name)), pool_match,
                            p->name, &p->ht) != &p->ht) {
        pool_free(p);
        l->skipped++;
        return 0;
    }
    l->pools++;
    return 0;
}

static int
load_node_locked(load_t *l, const void *key, size_t key_len, const void *val, size_t val_len,
                 const void *seen, size_t seen_len)
{
    ninfo_t *ni = node_record_parse(val, val_len);
    gx_reg_pool_t *p = ni != NULL ? gx_reg_pool_find(l->reg, ni->pb->pool) : NULL;
    gx_reg_node_t *n;

    if (p == NULL || key_len > KEY_MAX) {
        ninfo_free(ni);
        l->skipped++;
        return 0;
    }
    n = node_new(p, key, key_len, ni);
    if (n == NULL) {
        ninfo_free(ni);
        return GX_ENOMEM;
    }
    if (node_insert(l->reg, p, n) != 0) {
        node_free(n);
        l->skipped++;
        return 0;
    }
    /* a fresh grace period: the node was not seen while we were down */
    node_init_live(n, ni->pb->state == GALAXY__POOL__V1__NODE_STATE__NODE_STATE_DRAINING);
    fed_set(n, n->state);
    node_schedule(l->reg, n);
    n->hb_unix_ms = ni->pb->last_heartbeat_unix_ms;
    if (seen_len == SEEN_LEN && seen_get(seen) > n->hb_unix_ms)
        n->hb_unix_ms = seen_get(seen);
    n->ckpt_hb = n->hb_unix_ms;
    /* the change that made it happened before this start: count it there */
    n->revision = ni->pb->revision > l->base ? ni->pb->revision : l->base;
    if (n->revision > p->revision)
        p->revision = n->revision;
    l->nodes++;
    return 0;
}

/*
 * One read-side critical section per record, not one for the whole load: the
 * hash tables grow in the background only after a grace period, and a table
 * stuck at its first size turns a load of a million nodes from seconds into
 * minutes (every insert walks a long chain).
 */
static int
load_pool(const void *key, size_t key_len, const void *val, size_t val_len, void *arg)
{
    int rv;

    rcu_read_lock();
    rv = load_pool_locked(arg, val, val_len);
    rcu_read_unlock();
    return rv;
}

_Static_assert(KEY_MAX <= 255, "load_stale() keeps a key's length in a byte");

/* a last-seen time whose node is gone (written by a build that kept it on delete) */
static int
load_stale(load_t *l, const void *key, size_t key_len)
{
    if (key_len > KEY_MAX)
        return 0;
    if (l->stale_cap - l->stale_len < 1 + key_len) {
        size_t cap = l->stale_cap ? 2 * l->stale_cap : 4096;
        uint8_t *b = realloc(l->stale, cap);
        if (b == NULL)
            return GX_ENOMEM;
        l->stale = b;
        l->stale_cap = cap;
    }
    l->stale[l->stale_len] = (uint8_t)key_len;
    memcpy(l->stale + l->stale_len + 1, key, key_len);
    l->stale_len += 1 + key_len;
    l->stale_n++;
    return 0;
}

/* deletes the stale last-seen times load_stale() kept, durably, a batch at a time */
static int
load_stale_drop(load_t *l)
{
    enum { BATCH = 4096 };
    gx_store_op_t *ops = malloc(BATCH * sizeof(*ops));
    size_t at = 0, n = 0;
    int rv = ops != NULL ? 0 : GX_ENOMEM;

    while (rv == 0 && at < l->stale_len) {
        size_t kl = l->stale[at];
        ops[n++] = (gx_store_op_t){GX_STORE_SEEN, GX_STORE_DEL, l->stale + at + 1, kl, NULL, 0};
        at += 1 + kl;
        if (n == BATCH || at == l->stale_len) {
            rv = gx_store_submit_sync(l->reg->st, ops, n);
            n = 0;
        }
    }
    free(ops);
    free(l->stale);
    l->stale = NULL;
    return rv;
}

static int
load_node(const void *key, size_t key_len, const void *val, size_t val_len, const void *seen,
          size_t seen_len, void *arg)
{
    load_t *l = arg;
    int rv;

    if (val == NULL)
        return load_stale(l, key, key_len);
    rcu_read_lock();
    rv = load_node_locked(l, key, key_len, val, val_len, seen, seen_len);
    rcu_read_unlock();
    nodes_table_grow(l->reg);
    return rv;
}

static const gx_reg_pool_conf_t builtin_pools[] = {
    {.name = "mainnet", .visibility = GALAXY__POOL__V1__VISIBILITY__VISIBILITY_PUBLIC,
     .tier = "main", .description = "", .routing_policy = ""},
    {.name = "testnet", .visibility = GALAXY__POOL__V1__VISIBILITY__VISIBILITY_PUBLIC,
     .tier = "test", .description = "", .routing_policy = ""},
    {.name = "devnet", .visibility = GALAXY__POOL__V1__VISIBILITY__VISIBILITY_PUBLIC,
     .tier = "dev", .description = "", .routing_policy = ""},
};

/*
 * First start: the pools of the configuration (`pools:`), or the built-in
 * public mainnet, testnet and devnet, made once (the META mark records it).
 */
static int
defaults_create(gx_reg_t *reg)
{
    const gx_reg_pool_conf_t *v = reg->o.pools_given ? reg->o.pools : builtin_pools;
    size_t n = reg->o.pools_given ? reg->o.n_pools
                                  : sizeof(builtin_pools) / sizeof(builtin_pools[0]);
    gx_store_op_t *ops = calloc(n + 1, sizeof(*ops));
    uint8_t **recs = calloc(n + 1, sizeof(*recs));
    int rv = ops != NULL && recs != NULL ? 0 : GX_ENOMEM;

    if (rv == 0)
        ops[0] = (gx_store_op_t){GX_STORE_META, 0, DEFAULTS_KEY, sizeof(DEFAULTS_KEY) - 1, "1",
                                 1};
    for (size_t i = 0; i < n && rv == 0; i++) {
        gx_pb_pool_t pb = GALAXY__POOL__V1__POOL__INIT;
        size_t len = 0;
        pb.name = v[i].name;
        pb.visibility = (Galaxy__Pool__V1__Visibility)v[i].visibility;
        pb.tier = v[i].tier ? v[i].tier : "";
        pb.description = v[i].description ? v[i].description : "";
        pb.routing_policy = v[i].routing_policy ? v[i].routing_policy : "";
        pb.heartbeat_interval_ms = v[i].heartbeat_interval_ms;
        pb.node_ttl_ms = v[i].node_ttl_ms;
        pb.max_nodes = v[i].max_nodes;
        pb.n_specializations = v[i].n_specializations;
        pb.specializations = v[i].specializations;
        pool_defaults(&pb);
        pb.created_unix_ms = gx_unix_ms();
        recs[i] = pool_record(&pb, &len);
        if (recs[i] == NULL)
            rv = GX_ENOMEM;
        ops[i + 1] = (gx_store_op_t){GX_STORE_POOLS, 0, pb.name, strlen(pb.name), recs[i], len};
    }
    if (rv == 0)
        rv = gx_store_submit_sync(reg->st, ops, n + 1);
    for (size_t i = 0; recs != NULL && i < n; i++)
        free(recs[i]);
    free(recs);
    free(ops);
    return rv;
}

/* the history of a loaded pool starts at this start's epoch: older resumes get RESET */
static int
feed_start_one(gx_reg_pool_t *p, void *arg)
{
    uint64_t base = *(const uint64_t *)arg;

    if (p->revision < base)
        p->revision = base;
    feed_start(p->feed, p->revision);
    return 0;
}

/* Reads, bumps and durably stores the start counter. @return 0 or a GX_E code */
static int
epoch_next(gx_reg_t *reg, uint64_t *base)
{
    char buf[24];
    void *v = NULL;
    size_t vl = 0;
    uint64_t epoch = 0;
    gx_store_op_t op;
    int rv;

    rv = gx_store_get(reg->st, GX_STORE_META, EPOCH_KEY, sizeof(EPOCH_KEY) - 1, &v, &vl);
    if (rv == 0 && vl > 0 && vl < sizeof(buf)) {
        memcpy(buf, v, vl);
        buf[vl] = '\0';
        epoch = strtoull(buf, NULL, 10);
    }
    free(v);
    if (rv != 0 && rv != GX_ENOTFOUND)
        return rv;
    epoch++;
    op = (gx_store_op_t){GX_STORE_META, 0, EPOCH_KEY, sizeof(EPOCH_KEY) - 1, buf,
                         (size_t)snprintf(buf, sizeof(buf), "%llu", (unsigned long long)epoch)};
    rv = gx_store_submit_sync(reg->st, &op, 1);
    *base = epoch << 32;
    return rv;
}

/*
 * Every loaded node's grace period starts once the whole store is loaded, not
 * when its own record was read (a million records take seconds): the wheel
 * slots they were put in fire early, and the keeper's re-check moves them on.
 */
static int
grace_start_one(gx_reg_pool_t *p, void *arg)
{
    uint64_t now = gx_now_ms();
    gx_reg_node_t *n;

    for (wit_t it = {&p->ix}; (n = wit_next(&it)) != NULL;)
        uatomic_set(&n->seen_ms, now);
    return 0;
}

static int
recover(gx_reg_t *reg, char *err, size_t errlen)
{
    load_t l = {reg, 0, 0, 0, 0, NULL, 0, 0, 0};
    void *v = NULL;
    size_t vl = 0;
    int rv;

    rv = gx_store_get(reg->st, GX_STORE_META, DEFAULTS_KEY, sizeof(DEFAULTS_KEY) - 1, &v, &vl);
    free(v);
    if (rv == GX_ENOTFOUND)
        rv = defaults_create(reg);
    if (rv == 0)
        rv = epoch_next(reg, &l.base);
    if (rv == 0)
        rv = gx_store_scan(reg->st, GX_STORE_POOLS, load_pool, &l);
    if (rv == 0)
        rv = gx_store_scan_join(reg->st, GX_STORE_NODES, GX_STORE_SEEN, load_node, &l);
    if (rv == 0 && l.stale_n > 0) {
        gx_log(GX_LOG_WARN, "registry: last-seen times of nodes no longer stored removed=%zu",
               l.stale_n);
        rv = load_stale_drop(&l);
    }
    free(l.stale);
    if (rv != 0) {
        snprintf(err, errlen, "registry: cannot load the store: %s", gx_strerror(rv));
        return rv;
    }
    rcu_read_lock();
    gx_reg_pool_foreach(reg, grace_start_one, NULL);
    gx_reg_pool_foreach(reg, feed_start_one, &l.base);
    pools_update(reg, gx_now_ms());
    gx_reg_pool_foreach(reg, publish_one, NULL);
    rcu_read_unlock();
    gx_log(GX_LOG_INFO, "registry loaded pools=%zu nodes=%zu skipped=%zu node_memory=%llu",
           l.pools, l.nodes, l.skipped, (unsigned long long)reg->node_mem);
    if (reg->n_nodes >= reg->o.max_nodes ||
        reg->node_mem >= (uint64_t)reg->o.max_node_memory_mb << 20)
        gx_log(GX_LOG_WARN, "registry full: new nodes are refused until some leave nodes=%zu "
               "max_nodes=%u node_memory_mb=%llu max_node_memory_mb=%u", reg->n_nodes,
               reg->o.max_nodes, (unsigned long long)(reg->node_mem >> 20),
               reg->o.max_node_memory_mb);
    return 0;
}

/* ================================================================== metrics */

typedef struct {
    struct evbuffer *buf;
    const char *name;
    int which;
} metric_t;

enum { M_SP, M_SP_ENTRIES, M_INTERVAL, M_TTL };

static int
metric_one(gx_reg_pool_t *p, void *arg)
{
    const metric_t *m = arg;
    unsigned long long v = m->which == M_SP           ? uatomic_read(&p->sp)
                           : m->which == M_SP_ENTRIES ? uatomic_read(&p->sp_entries)
                           : m->which == M_INTERVAL   ? uatomic_read(&p->hb_interval)
                                                      : uatomic_read(&p->live_ttl);

    evbuffer_add_printf(m->buf, "%s{pool=\"%s\"} %llu\n", m->name, p->name, v);
    return 0;
}

void
gx_reg_metrics(gx_reg_t *reg, void *out)
{
    static const char *const fams[][3] = {
        {"galaxy_pool_self_preservation", "gauge",
         "1 while the pool holds back demotions to DOWN (self-preservation)"},
        {"galaxy_pool_self_preservation_entries_total", "counter",
         "Times the pool entered self-preservation"},
        {"galaxy_pool_heartbeat_interval_ms", "gauge",
         "Heartbeat interval the pool's nodes are told (adaptive under the heartbeat budget)"},
        {"galaxy_pool_node_ttl_ms", "gauge", "TTL that liveness applies to the pool's nodes now"},
    };
    gx_store_stats_t ss;

    if (reg == NULL)
        return;
    gx_store_stats(reg->st, &ss);
    evbuffer_add_printf(out, "# HELP galaxy_store_commits_total Write transactions committed and "
                        "synced.\n# TYPE galaxy_store_commits_total counter\n"
                        "galaxy_store_commits_total %llu\n"
                        "# HELP galaxy_store_batches_failed_total Writes the store could not "
                        "commit (nothing of them stored).\n"
                        "# TYPE galaxy_store_batches_failed_total counter\n"
                        "galaxy_store_batches_failed_total %llu\n"
                        "# HELP galaxy_store_no_space_total Commits failed for want of space on "
                        "the data directory's disk.\n# TYPE galaxy_store_no_space_total counter\n"
                        "galaxy_store_no_space_total %llu\n"
                        "# HELP galaxy_store_map_bytes Size of the LMDB map now.\n"
                        "# TYPE galaxy_store_map_bytes gauge\ngalaxy_store_map_bytes %llu\n",
                        (unsigned long long)ss.commits, (unsigned long long)ss.failed,
                        (unsigned long long)ss.no_space, (unsigned long long)ss.map_size);
    evbuffer_add_printf(out, "# HELP galaxy_checkpoints_total Checkpoints that wrote last-seen "
                        "times.\n# TYPE galaxy_checkpoints_total counter\n"
                        "galaxy_checkpoints_total %llu\n"
                        "# HELP galaxy_checkpoint_records_total Last-seen times checkpoints "
                        "handed to the store (a failed commit counts in "
                        "galaxy_store_batches_failed_total).\n# TYPE galaxy_checkpoint_records_total counter\n"
                        "galaxy_checkpoint_records_total %llu\n"
                        "# HELP galaxy_checkpoint_last_seconds Time the last checkpoint took to "
                        "make and queue its writes.\n"
                        "# TYPE galaxy_checkpoint_last_seconds gauge\n"
                        "galaxy_checkpoint_last_seconds %.6f\n",
                        (unsigned long long)uatomic_read(&reg->ckpts),
                        (unsigned long long)uatomic_read(&reg->ckpt_records),
                        (double)uatomic_read(&reg->ckpt_last_ns) / 1e9);
    evbuffer_add_printf(out, "# HELP galaxy_registry_nodes Nodes in all pools (registry.max_nodes "
                        "%u).\n# TYPE galaxy_registry_nodes gauge\ngalaxy_registry_nodes %zu\n",
                        reg->o.max_nodes, uatomic_read(&reg->n_nodes));
    evbuffer_add_printf(out, "# HELP galaxy_registry_node_memory_bytes Memory the nodes take "
                        "(registry.max_node_memory_mb %u MiB).\n# TYPE "
                        "galaxy_registry_node_memory_bytes gauge\n"
                        "galaxy_registry_node_memory_bytes %llu\n", reg->o.max_node_memory_mb,
                        (unsigned long long)uatomic_read(&reg->node_mem));
    gx_reg_read_begin();
    for (int i = 0; i < (int)(sizeof(fams) / sizeof(fams[0])); i++) {
        metric_t m = {out, fams[i][0], i};
        evbuffer_add_printf(out, "# HELP %s %s.\n# TYPE %s %s\n", fams[i][0], fams[i][2],
                            fams[i][0], fams[i][1]);
        gx_reg_pool_foreach(reg, metric_one, &m);
    }
    gx_reg_read_end();
}

/* ================================================================== open / close */

/* queue_take() waits on CLOCK_MONOTONIC deadlines: the default (realtime) would spin */
static void
cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t a;

    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
}

int
gx_reg_open(gx_store_t *st, const gx_reg_opts_t *opts, gx_reg_t **out, char *err,
            size_t errlen)
{
    gx_reg_t *reg = calloc(1, sizeof(*reg));
    pthread_mutexattr_t ma;
    struct call_rcu_data *crd;
    size_t stored = 0;
    int rv = GX_ENOMEM;

    *out = NULL;
    gx_reg_thread_online();
    if (reg == NULL)
        goto fail;
    reg->st = st;
    if (opts != NULL)
        reg->o = *opts;
    else
        gx_reg_opts_init(&reg->o);
    if (reg->o.tick_ms == 0)
        reg->o.tick_ms = 100;
    reg->qtail = &reg->qhead;
    /*
     * The writer lock is held for a microsecond or two, by the workers (a
     * submit) and the keeper (one op applied) in turn: a waiter spins a
     * little before it sleeps, instead of a futex sleep and wake-up each time
     * (Register, 5-7 alternating runs: 14.3 -> 13.0 us of server CPU a write
     * at 16x32, 20.2 -> 16.1 at 256x4).
     */
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&reg->wlock, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_mutex_init(&reg->qlock, NULL);
    cond_init_monotonic(&reg->qcond);
    reg->pools = cds_lfht_new(16, 16, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
    /* sized for the store's nodes at once: growing while loading costs ~0.3 s a million */
    reg->node_buckets = 1024;
    if (gx_store_count(st, GX_STORE_NODES, &stored) == 0)
        while (reg->node_buckets < stored && reg->node_buckets < (1ul << 30))
            reg->node_buckets <<= 1;
    reg->nodes = cds_lfht_new(reg->node_buckets, 1024, 0,
                              CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
    reg->labels = cds_lfht_new(1024, 1024, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
    reg->wheel = malloc(WHEEL_SLOTS * sizeof(*reg->wheel));
    if (reg->pools == NULL || reg->nodes == NULL || reg->labels == NULL || reg->wheel == NULL)
        goto fail;
    for (size_t i = 0; i < WHEEL_SLOTS; i++)
        tlist_init(&reg->wheel[i]);
    reg->wheel_at = gx_now_ms() / reg->o.tick_ms;
    /* liburcu starts its call_rcu thread at the first use, named after the caller: start it */
    crd = get_default_call_rcu_data();
    if (crd != NULL)
        gx_thread_name(get_call_rcu_thread(crd), "gx-rcu");
    rv = recover(reg, err, errlen);
    if (rv != 0)
        goto fail_close;
    reg->next_ckpt = gx_now_ms() + reg->o.checkpoint_ms;
    gx__reg = reg;
    if (pthread_create(&reg->keeper, NULL, keeper_main, reg) != 0) {
        rv = GX_ENOMEM;
        goto fail_close;
    }
    gx_thread_name(reg->keeper, "gx-keeper");
    reg->keeper_running = 1;
    *out = reg;
    return 0;
fail:
    snprintf(err, errlen, "registry: out of memory");
fail_close:
    gx__reg = NULL;
    gx_reg_close(reg);
    return rv;
}

void
gx_reg_stop(gx_reg_t *reg)
{
    if (reg == NULL || !reg->keeper_running)
        return;
    pthread_mutex_lock(&reg->qlock);
    reg->stop = 1;
    pthread_cond_signal(&reg->qcond);
    pthread_mutex_unlock(&reg->qlock);
    pthread_join(reg->keeper, NULL);
    reg->keeper_running = 0;
}

static void
tables_free(gx_reg_t *reg)
{
    struct cds_lfht_iter it;
    struct cds_lfht_node *hn;

    rcu_read_lock();
    if (reg->nodes != NULL)
        cds_lfht_for_each(reg->nodes, &it, hn) {
            if (cds_lfht_del(reg->nodes, hn) == 0)
                call_rcu(&caa_container_of(hn, gx_reg_node_t, ht)->rcu, node_free_rcu);
        }
    if (reg->labels != NULL)
        cds_lfht_for_each(reg->labels, &it, hn) {
            if (cds_lfht_del(reg->labels, hn) == 0)
                call_rcu(&caa_container_of(hn, lidx_t, ht)->rcu, lidx_free_rcu);
        }
    if (reg->pools != NULL)
        cds_lfht_for_each(reg->pools, &it, hn) {
            if (cds_lfht_del(reg->pools, hn) == 0) {
                pools_forget();
                call_rcu(&caa_container_of(hn, gx_reg_pool_t, ht)->rcu, pool_free_rcu);
            }
        }
    rcu_read_unlock();
    pools_forget(); /* another registry may come at the same address */
}

void
gx_reg_close(gx_reg_t *reg)
{
    gx_reg_op_t *list;
    int stop, kick;

    if (reg == NULL)
        return;
    gx_reg_stop(reg);
    /* ops the store completed after the keeper stopped (gx_store_close) */
    list = queue_take(reg, 0, &stop, &kick);
    if (list != NULL)
        ops_apply(reg, list, 0);
    while (reg->restate != NULL) {
        restate_t *r = reg->restate;
        reg->restate = r->next;
        free(r);
    }
    tables_free(reg);
    rcu_barrier();
    rcu_barrier(); /* the node records the nodes and the feeds held, put by those callbacks */
    free(reg->wheel);
    if (reg->nodes != NULL)
        cds_lfht_destroy(reg->nodes, NULL);
    if (reg->labels != NULL)
        cds_lfht_destroy(reg->labels, NULL);
    if (reg->pools != NULL)
        cds_lfht_destroy(reg->pools, NULL);
    pthread_mutex_destroy(&reg->wlock);
    pthread_mutex_destroy(&reg->qlock);
    pthread_cond_destroy(&reg->qcond);
    if (gx__reg == reg)
        gx__reg = NULL;
    free(reg);
    gx_reg_thread_offline();
}
