/* SPDX-License-Identifier: MIT */
/*
 * Jobs: see gx_jobs.h.
 *
 * Everything here is guarded by one mutex, J.lock.  Lock order: the
 * registry's writer lock, then J.lock (the registry's listener runs under
 * the writer lock and takes J.lock); nothing under J.lock takes a registry
 * lock: the registry is only read (RCU) from here.
 *
 * A job is on up to three lists: its pool's list of every job (id order:
 * ids grow with time), its pool's pending queue or its node's job list, and
 * one timed list: ASSIGNED jobs by assignment time (acknowledgement
 * timeouts) or finished jobs by end time (retention).
 */
#include "config.h"

#include "core/gx_jobs.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/buffer.h>

#include "core/gx_router.h"
#include "transport/gx_call.h"
#include "transport/gx_server.h"
#include "util/gx_clock.h"
#include "util/gx_error.h"
#include "util/gx_log.h"
#include "util/gx_stats.h"

#include <urcu/uatomic.h>

enum {
    JS_PENDING = GALAXY__POOL__V1__JOB_STATE__JOB_STATE_PENDING,
    JS_ASSIGNED = GALAXY__POOL__V1__JOB_STATE__JOB_STATE_ASSIGNED,
    JS_RUNNING = GALAXY__POOL__V1__JOB_STATE__JOB_STATE_RUNNING,
    JS_SUCCEEDED = GALAXY__POOL__V1__JOB_STATE__JOB_STATE_SUCCEEDED,
    JS_FAILED = GALAXY__POOL__V1__JOB_STATE__JOB_STATE_FAILED,
    JS_CANCELLED = GALAXY__POOL__V1__JOB_STATE__JOB_STATE_CANCELLED,
    JS_MAX = 7
};

#define NODE_HEALTHY GALAXY__POOL__V1__NODE_STATE__NODE_STATE_HEALTHY
#define NODE_DOWN GALAXY__POOL__V1__NODE_STATE__NODE_STATE_DOWN
#define DELIVER_BYTES (3u << 20) /* jobs per heartbeat response, in bytes of payload */
#define EXPLAIN_MAX 1000         /* verdicts in one ExplainJob answer */
#define PASS_MAX 10000           /* pending jobs tried per pool per pass */
#define PASS_ALL_MS 1000         /* every pool with pending jobs is tried this often */
#define DELIVER_SLOTS 65536      /* see J.deliver */
#define ROUTE_BUCKETS 16         /* routing time histogram: 1 us .. 32.8 ms, then +Inf */

static const char *const state_names[JS_MAX] = {"UNSPECIFIED", "PENDING", "ASSIGNED", "RUNNING",
                                                "SUCCEEDED",   "FAILED",  "CANCELLED"};

/* ------------------------------------------------------------------ lists, tables */

typedef struct link_s {
    struct link_s *next, *prev;
} link_t;

#define container_of(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

static void
list_init(link_t *h)
{
    h->next = h->prev = h;
}

static int
list_empty(const link_t *h)
{
    return h->next == h;
}

static void
list_add_tail(link_t *h, link_t *e)
{
    e->prev = h->prev;
    e->next = h;
    h->prev->next = e;
    h->prev = e;
}

static void
list_add_head(link_t *h, link_t *e)
{
    list_add_tail(h->next, e);
}

static void
list_del(link_t *e)
{
    if (e->next == NULL)
        return;
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->next = e->prev = NULL;
}

static int
list_on(const link_t *e)
{
    return e->next != NULL;
}

/* a chained hash table of string keys; the entries carry their hash link */
typedef struct hent_s {
    struct hent_s *next;
    uint64_t h;
    const char *key;
    size_t key_len;
} hent_t;

typedef struct {
    hent_t **b;
    size_t nb, n;
} htab_t;

static uint64_t
hash_bytes(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static hent_t *
htab_find(const htab_t *t, const char *key, size_t len)
{
    uint64_t h = hash_bytes(key, len);

    if (t->nb == 0)
        return NULL;
    for (hent_t *e = t->b[h & (t->nb - 1)]; e != NULL; e = e->next)
        if (e->h == h && e->key_len == len && memcmp(e->key, key, len) == 0)
            return e;
    return NULL;
}

static int
htab_add(htab_t *t, hent_t *e)
{
    e->h = hash_bytes(e->key, e->key_len);
    if (t->n >= t->nb) {
        size_t nb = t->nb ? t->nb * 2 : 64;
        hent_t **b = calloc(nb, sizeof(*b));
        if (b == NULL)
            return GX_ENOMEM;
        for (size_t i = 0; i < t->nb; i++)
            for (hent_t *x = t->b[i], *next; x != NULL; x = next) {
                next = x->next;
                x->next = b[x->h & (nb - 1)];
                b[x->h & (nb - 1)] = x;
            }
        free(t->b);
        t->b = b;
        t->nb = nb;
    }
    e->next = t->b[e->h & (t->nb - 1)];
    t->b[e->h & (t->nb - 1)] = e;
    t->n++;
    return 0;
}

static void
htab_del(htab_t *t, hent_t *e)
{
    for (hent_t **pp = &t->b[e->h & (t->nb - 1)]; *pp != NULL; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            t->n--;
            return;
        }
}

/* ------------------------------------------------------------------ objects */

typedef struct jpool_s jpool_t;
typedef struct jnode_s jnode_t;

struct gx_jobs_stream_s {
    gx_post_t post;
    uint32_t refs;   /* atomic */
    uint32_t posted; /* atomic: a push is queued */
    gx_call_t *call; /* the call's worker only; NULL once it ended */
    unsigned worker;
    jnode_t *jn;    /* under J.lock: the node it is bound to */
    size_t key_len; /* the call's worker only: the node it last bound to ... */
    char key[GX_REG_POOL_NAME_MAX + GX_REG_NODE_ID_MAX + 2]; /* ... "<pool>\0<id>" */
};
typedef gx_jobs_stream_t jstream_t;

typedef struct job_s {
    hent_t he;    /* by id */
    link_t all;   /* the pool's jobs, id order */
    link_t q;     /* the pool's pending queue, or the node's jobs */
    link_t timed; /* J.assigned (by time) or J.ended (by time) */
    jpool_t *pool;
    jnode_t *node;   /* the node whose list it is on */
    gx_pb_job_t *pb; /* as submitted, with id, submitter, created (heap) */
    uint32_t state, attempts;
    int64_t updated_ms; /* unix */
    uint64_t at_ms;     /* monotonic: assigned, or ended */
    char *message;      /* heap, or NULL */
    unsigned tell : 1;  /* cancelled on its node: the node is to hear of it */
    char node_id[GX_REG_NODE_ID_MAX + 1];
    char avoid[GX_REG_NODE_ID_MAX + 1]; /* route elsewhere than here if possible */
    char id[GX_JOBS_ID_MAX + 1];
} job_t;

struct jpool_s {
    hent_t he;
    link_t all, pending;
    size_t n_pending;
    int kick; /* try its queue at the next settle */
    char name[GX_REG_POOL_NAME_MAX + 1];
};

struct jnode_s {
    hent_t he;
    link_t jobs;                    /* ASSIGNED, RUNNING, and cancelled ones to tell */
    uint64_t cpu, mem, gpus, njobs; /* what its ASSIGNED and RUNNING jobs take */
    jstream_t *stream;
    char pool[GX_REG_POOL_NAME_MAX + 1];
    char key[]; /* "<pool>\0<id>\0" */
};

typedef struct nev_s {
    struct nev_s *next;
    uint32_t state;
    int removed;
    char pool[GX_REG_POOL_NAME_MAX + 1];
    char id[GX_REG_NODE_ID_MAX + 1];
} nev_t;

/* a submission whose write failed, to forget */
typedef struct doomed_s {
    struct doomed_s *next;
    char id[GX_JOBS_ID_MAX + 1];
} doomed_t;

/* what a write needs besides gx_jobs_op_t's public part */
typedef struct {
    gx_jobs_op_t *op;
    int submit;
    char id[GX_JOBS_ID_MAX + 1];
} wctx_t;

static struct {
    pthread_mutex_t lock;
    gx_store_t *st;
    gx_reg_t *reg;
    struct gx_server_s *srv;
    gx_jobs_opts_t o;
    htab_t jobs, pools, nodes;
    link_t assigned, ended;
    nev_t *events;    /* node changes heard, not yet settled */
    doomed_t *doomed; /* submissions whose write failed (store_done) */
    uint64_t next_all_ms;
    uint64_t last_ms; /* id generation */
    uint32_t seq;
    size_t n_state[JS_MAX];
    uint32_t active;              /* atomic: jobs PENDING, ASSIGNED or RUNNING */
    uint64_t payload_bytes;       /* of the jobs held */
    uint64_t transitions[JS_MAX]; /* jobs that entered each state */
    uint64_t rerouted, timeouts, write_errors;
    uint64_t route_ns_max, route_ns_sum, routes;
    uint64_t route_hist[ROUTE_BUCKETS]; /* decisions by time: <= 1 us << i */
    /*
     * Jobs waiting on node lists to be heard (ASSIGNED, or cancelled and not
     * yet told), by a hash of the node: a heartbeat whose slot is 0 has
     * nothing to hear, and knows it from one atomic load, without the lock.
     */
    uint32_t deliver[DELIVER_SLOTS];
    int open;
} J = {.lock = PTHREAD_MUTEX_INITIALIZER};

void
gx_jobs_opts_init(gx_jobs_opts_t *o)
{
    o->max_attempts = 3;
    o->flap_threshold = 4;
    o->queue_max = 10000;
    o->ack_timeout_ms = 60000;
    o->retention_ms = 3600000;
    o->jobs_max = 1000000;
    o->max_payload_mb = 1024;
}

/* ------------------------------------------------------------------ job records */

/* the job as it is now, shallow (strings point into @p j) */
static void
job_view(const job_t *j, gx_pb_job_t *out)
{
    *out = *j->pb;
    out->state = (Galaxy__Pool__V1__JobState)j->state;
    out->node_id = (char *)j->node_id;
    out->message = j->message != NULL ? j->message : (char *)"";
    out->attempts = j->attempts;
    out->updated_unix_ms = j->updated_ms;
}

/* a deep copy of @p j in call memory; without the payload when @p payload is 0 */
static gx_pb_job_t *
job_copy(gx_call_t *call, const job_t *j, int payload)
{
    ProtobufCAllocator alloc;
    gx_pb_job_t view, *out;
    size_t len;
    uint8_t *buf;

    job_view(j, &view);
    if (!payload) {
        view.payload.len = 0;
        view.payload.data = NULL;
    }
    len = protobuf_c_message_get_packed_size(&view.base);
    buf = gx_call_alloc(call, len + 1);
    if (buf == NULL)
        return NULL;
    protobuf_c_message_pack(&view.base, buf);
    gx_arena_pb_allocator(call->arena, &alloc);
    out = galaxy__pool__v1__job__unpack(&alloc, len, buf);
    return out;
}

static void job_forget(job_t *j);

static void
store_done(int status, void *arg)
{
    wctx_t *w = arg;
    gx_jobs_op_t *op = w->op;

    if (status != 0) {
        uatomic_inc(&J.write_errors);
        gx_log(GX_LOG_ERROR, "jobs: store write failed job=%s: %s", w->id, gx_strerror(status));
        if (w->submit) {
            /*
             * Never acknowledged: it must not stay, in memory nor on disk (a
             * later record of it may have been committed).  The keeper's next
             * tick forgets it: this thread has no business in the registry.
             */
            doomed_t *d = malloc(sizeof(*d));
            if (d != NULL) {
                memcpy(d->id, w->id, sizeof(d->id));
                pthread_mutex_lock(&J.lock);
                d->next = J.doomed;
                J.doomed = d;
                pthread_mutex_unlock(&J.lock);
            }
        }
    }
    free(w);
    if (op != NULL) {
        op->status = status;
        op->done(op);
    }
}

/* queues the job's record (under J.lock: the store sees changes in order) */
static int
job_write(job_t *j, gx_jobs_op_t *op, int submit)
{
    gx_pb_job_t view;
    gx_store_op_t so;
    size_t len;
    uint8_t *buf;
    wctx_t *w = calloc(1, sizeof(*w));
    int rv;

    job_view(j, &view);
    len = protobuf_c_message_get_packed_size(&view.base);
    buf = malloc(len + 1);
    if (w == NULL || buf == NULL) {
        free(w);
        free(buf);
        return GX_ENOMEM;
    }
    protobuf_c_message_pack(&view.base, buf);
    w->op = op;
    w->submit = submit;
    snprintf(w->id, sizeof(w->id), "%s", j->id);
    so = (gx_store_op_t){
        .table = GX_STORE_JOBS, .key = j->id, .key_len = strlen(j->id), .val = buf, .val_len = len};
    rv = gx_store_submit(J.st, &so, 1, store_done, w);
    free(buf);
    if (rv != 0) {
        free(w);
        uatomic_inc(&J.write_errors);
        gx_log(GX_LOG_ERROR, "jobs: store write refused job=%s: %s", j->id, gx_strerror(rv));
    }
    return rv;
}

static void
job_erase(job_t *j)
{
    gx_store_op_t so = {.table = GX_STORE_JOBS, .del = 1, .key = j->id, .key_len = strlen(j->id)};

    gx_store_submit(J.st, &so, 1, NULL, NULL);
}

/* ------------------------------------------------------------------ state */

static int
is_final(uint32_t st)
{
    return st == JS_SUCCEEDED || st == JS_FAILED || st == JS_CANCELLED;
}

static int
takes_capacity(uint32_t st)
{
    return st == JS_ASSIGNED || st == JS_RUNNING;
}

static jpool_t *
pool_get(const char *name, int make)
{
    hent_t *e = htab_find(&J.pools, name, strlen(name));
    jpool_t *p;

    if (e != NULL || !make)
        return e != NULL ? container_of(e, jpool_t, he) : NULL;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->he.key = p->name;
    p->he.key_len = strlen(p->name);
    list_init(&p->all);
    list_init(&p->pending);
    if (htab_add(&J.pools, &p->he) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

static size_t
node_key(const char *pool, const char *id, char *buf)
{
    size_t a = strlen(pool), b = strlen(id);

    memcpy(buf, pool, a + 1);
    memcpy(buf + a + 1, id, b);
    return a + 1 + b;
}

/*
 * The registry's node keeps a pointer to its jnode, so that routing finds a
 * node's use of capacity without a lookup; set when either is made, cleared
 * when the jnode goes.  Inside a read bracket (all of J.lock's holders are).
 */
static void
jnode_attach(jnode_t *n)
{
    gx_reg_node_t *rn =
        J.reg != NULL ? gx_reg_node_find(J.reg, n->pool, n->key + strlen(n->key) + 1) : NULL;

    if (rn != NULL)
        gx_reg_node_set_ext(rn, n);
}

static void
jnode_detach(jnode_t *n)
{
    gx_reg_node_t *rn =
        J.reg != NULL ? gx_reg_node_find(J.reg, n->pool, n->key + strlen(n->key) + 1) : NULL;

    if (rn != NULL && gx_reg_node_ext(rn) == n)
        gx_reg_node_set_ext(rn, NULL);
}

static jnode_t *
jnode_get(const char *pool, const char *id, int make)
{
    char key[GX_REG_POOL_NAME_MAX + GX_REG_NODE_ID_MAX + 2];
    size_t len = node_key(pool, id, key);
    hent_t *e = htab_find(&J.nodes, key, len);
    jnode_t *n;

    if (e != NULL || !make)
        return e != NULL ? container_of(e, jnode_t, he) : NULL;
    n = calloc(1, sizeof(*n) + len + 1);
    if (n == NULL)
        return NULL;
    memcpy(n->key, key, len); /* and a NUL after the id (calloc) */
    snprintf(n->pool, sizeof(n->pool), "%s", pool);
    n->he.key = n->key;
    n->he.key_len = len;
    list_init(&n->jobs);
    if (htab_add(&J.nodes, &n->he) != 0) {
        free(n);
        return NULL;
    }
    jnode_attach(n);
    return n;
}

static const char *
jnode_id(const jnode_t *n)
{
    return n->key + strlen(n->key) + 1;
}

/* drops @p n when nothing refers to it any more */
static void
jnode_gc(jnode_t *n)
{
    if (n != NULL && list_empty(&n->jobs) && n->stream == NULL) {
        jnode_detach(n);
        htab_del(&J.nodes, &n->he);
        free(n);
    }
}

/* jobs by state; J.active also, for the registry's listener to look at without the lock */
static void
count_state(uint32_t st, int d)
{
    J.n_state[st] += (size_t)(ssize_t)d;
    if (st == JS_PENDING || st == JS_ASSIGNED || st == JS_RUNNING)
        uatomic_add(&J.active, d);
}

static void
set_state(job_t *j, uint32_t st, const char *message)
{
    if (j->state != st) {
        count_state(j->state, -1);
        count_state(st, 1);
        J.transitions[st]++;
    }
    j->state = st;
    j->updated_ms = gx_unix_ms();
    if (message != NULL) {
        free(j->message);
        j->message = message[0] ? strdup(message) : NULL;
    }
    gx_log(GX_LOG_DEBUG, "job id=%s pool=%s state=%s node=%s attempts=%u", j->id, j->pool->name,
           state_names[st], j->node_id, j->attempts);
}

static void
deliver_add(const jnode_t *n, int d)
{
    uatomic_add(&J.deliver[n->he.h % DELIVER_SLOTS], d);
}

/* gives back what @p j takes of its node, and stops its delivery (it stays listed) */
static void
release(job_t *j)
{
    jnode_t *n = j->node;
    const Galaxy__Pool__V1__Resources *r = j->pb->resources;

    if (takes_capacity(j->state)) {
        if (r != NULL) {
            n->cpu -= r->cpu_millis;
            n->mem -= r->memory_bytes;
            n->gpus -= r->gpus;
        }
        n->njobs--;
    }
    if (j->state == JS_ASSIGNED || j->tell)
        deliver_add(j->node, -1);
    if (j->state == JS_ASSIGNED)
        list_del(&j->timed); /* off J.assigned; a finished job stays on J.ended */
    j->tell = 0;
}

/* takes @p j off its node (capacity back, no delivery) */
static void
unassign(job_t *j)
{
    jnode_t *n = j->node;

    if (n == NULL)
        return;
    release(j);
    list_del(&j->q);
    j->node = NULL;
    jnode_gc(n);
}

static void
ended(job_t *j)
{
    j->at_ms = gx_now_ms();
    list_del(&j->timed);
    list_add_tail(&J.ended, &j->timed);
}

static void
dequeue(job_t *j)
{
    if (j->state == JS_PENDING && list_on(&j->q)) {
        list_del(&j->q);
        j->pool->n_pending--;
    }
}

/* forgets @p j entirely (memory only) */
static void
job_forget(job_t *j)
{
    dequeue(j);
    unassign(j);
    list_del(&j->all);
    list_del(&j->timed);
    htab_del(&J.jobs, &j->he);
    count_state(j->state, -1);
    J.payload_bytes -= j->pb->payload.len;
    galaxy__pool__v1__job__free_unpacked(j->pb, NULL);
    free(j->message);
    free(j);
}

/* ------------------------------------------------------------------ pushes to streams */

static void
stream_unref(jstream_t *s)
{
    if (uatomic_sub_return(&s->refs, 1) == 0)
        free(s);
}

static void stream_push_run(gx_post_t *p);

/* asks the node's stream, if any, to send what the node has waiting (J.lock) */
static void
stream_poke(jnode_t *n)
{
    jstream_t *s = n->stream;

    if (s == NULL || J.srv == NULL || uatomic_xchg(&s->posted, 1) != 0)
        return;
    uatomic_inc(&s->refs);
    s->post.fn = stream_push_run;
    gx_server_post(J.srv, s->worker, &s->post);
}

/* ------------------------------------------------------------------ eligibility */

typedef struct {
    const char *why[16];
    size_t n;
    char buf[4][192];
    size_t nbuf;
} reasons_t;

static void
reason_add(reasons_t *r, const char *text)
{
    if (r->n < sizeof(r->why) / sizeof(r->why[0]))
        r->why[r->n++] = text;
}

/* "<what>: lacks \"<name>\"" */
static void
reason_lacks(reasons_t *r, const char *what, const char *name)
{
    if (r->nbuf == sizeof(r->buf) / sizeof(r->buf[0]))
        return;
    snprintf(r->buf[r->nbuf], sizeof(r->buf[0]), "%s: lacks \"%s\"", what, name);
    reason_add(r, r->buf[r->nbuf++]);
}

static int
has_spec(const gx_pb_node_t *pb, const char *spec)
{
    for (size_t i = 0; i < pb->n_specializations; i++)
        if (strcmp(pb->specializations[i], spec) == 0)
            return 1;
    return 0;
}

static const char *
label_of(const gx_pb_node_t *pb, const char *key)
{
    for (size_t i = 0; i < pb->n_labels; i++)
        if (strcmp(pb->labels[i]->key, key) == 0)
            return pb->labels[i]->value;
    return NULL;
}

/*
 * Whether node @p n can take job @p j now; with @p r, every reason it
 * cannot (ExplainJob), else stops at the first.  Fills @p c for the policy.
 */
static int
eligible(const gx_reg_node_t *n, const job_t *j, reasons_t *r, gx_route_node_t *c)
{
    const gx_pb_node_t *pb = gx_reg_node_info(n);
    const Galaxy__Pool__V1__Resources *need = j->pb->resources, *cap = pb->capacity;
    uint32_t st = gx_reg_node_state(n), running, flaps;
    jnode_t *jn;
    double load;
    int ok = 1;

    if (!gx_reg_node_live(n)) {
        if (r == NULL)
            return 0;
        reason_add(r, "removed");
        return 0;
    }
    jn = gx_reg_node_ext(n); /* NULL: nothing of it taken (assign() attaches) */
    gx_reg_node_live_fields(n, &load, &running, &flaps);
#define NO(text)                                                                                   \
    do {                                                                                           \
        ok = 0;                                                                                    \
        if (r == NULL)                                                                             \
            return 0;                                                                              \
        reason_add(r, text);                                                                       \
    } while (0)
#define NO_LACKS(what, name)                                                                       \
    do {                                                                                           \
        ok = 0;                                                                                    \
        if (r == NULL)                                                                             \
            return 0;                                                                              \
        reason_lacks(r, what, name);                                                               \
    } while (0)
    if (st == GALAXY__POOL__V1__NODE_STATE__NODE_STATE_DRAINING)
        NO("draining");
    else if (st != NODE_HEALTHY)
        NO(st == NODE_DOWN ? "state: DOWN" : "state: SUSPECT");
    if (J.o.flap_threshold > 0 && flaps >= J.o.flap_threshold)
        NO("flapping");
    if (!has_spec(pb, j->pb->specialization))
        NO_LACKS("specialization", j->pb->specialization);
    for (size_t i = 0; i < j->pb->n_node_selector; i++) {
        const char *v = label_of(pb, j->pb->node_selector[i]->key);
        if (v == NULL || strcmp(v, j->pb->node_selector[i]->value) != 0)
            NO_LACKS("label", j->pb->node_selector[i]->key);
    }
    if (cap != NULL) {
        uint64_t cpu = jn ? jn->cpu : 0, mem = jn ? jn->mem : 0, gpus = jn ? jn->gpus : 0;
        if (need != NULL && cap->cpu_millis && cpu + need->cpu_millis > cap->cpu_millis)
            NO("capacity: cpu_millis");
        if (need != NULL && cap->memory_bytes && mem + need->memory_bytes > cap->memory_bytes)
            NO("capacity: memory_bytes");
        if (need != NULL && cap->gpus && gpus + need->gpus > cap->gpus)
            NO("capacity: gpus");
        if (cap->max_jobs && (jn ? jn->njobs : 0) + 1 > cap->max_jobs)
            NO("capacity: max_jobs");
    }
#undef NO
#undef NO_LACKS
    if (c != NULL) {
        c->id = gx_reg_node_id(n);
        c->load = load;
        c->running_jobs = running;
        c->assigned_jobs = jn ? (uint32_t)jn->njobs : 0;
    }
    return ok;
}

/* scratch for routing: one at a time, under J.lock */
static struct {
    gx_route_node_t *c;
    size_t cap;
} S;

static int
scratch_fit(size_t n)
{
    if (n > S.cap) {
        size_t cap = n < 64 ? 64 : n + n / 2;
        gx_route_node_t *c = realloc(S.c, cap * sizeof(*c));
        if (c == NULL)
            return GX_ENOMEM;
        S.c = c;
        S.cap = cap;
    }
    return 0;
}

static const gx_router_t *
policy_of(const char *pool, void **ctx)
{
    gx_reg_pool_t *p = gx_reg_pool_find(J.reg, pool);
    gx_pb_pool_t pb;
    const gx_router_t *r = NULL;

    if (p != NULL) {
        gx_reg_pool_fill(p, &pb);
        r = gx_router_find(pb.routing_policy[0] ? pb.routing_policy : GX_ROUTE_DEFAULT, ctx);
    }
    if (r == NULL)
        r = gx_router_find(GX_ROUTE_DEFAULT, ctx);
    return r;
}

/* a random number below @p n (J.lock: one state for all) */
static size_t
rand_below(size_t n)
{
    static uint64_t x;

    if (x == 0 && getrandom(&x, sizeof(x), GRND_NONBLOCK) != sizeof(x))
        x = gx_now_ns();
    x |= 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return (size_t)(x % n);
}

/*
 * For a policy content with a sample (gx_router_t.sample): @p want distinct
 * eligible nodes drawn at random from @p v[0..n) into S.c, other than the one
 * to avoid.  Draws at most 8 × want; when a big enough pool yields fewer
 * (few eligible nodes), 0: the caller judges every node instead.
 */
static size_t
sample(const gx_reg_cursor_t *c, size_t n, const job_t *j, unsigned want)
{
    size_t got = 0, picked[16];

    if (want > 16 || n < 4 * (size_t)want)
        return 0; /* a small pool: judging every node costs no more */
    for (unsigned tries = 0; tries < 8 * want && got < want; tries++) {
        size_t i = rand_below(n), m;
        for (m = 0; m < got && picked[m] != i; m++)
            ;
        if (m < got || !eligible(gx_reg_cursor_nth(c, i), j, NULL, &S.c[got]))
            continue;
        if (j->avoid[0] && strcmp(S.c[got].id, j->avoid) == 0)
            continue;
        picked[got++] = i;
    }
    return got == want ? got : 0;
}

/*
 * Chooses a node for @p j among the eligible ones, by its pool's policy;
 * copies its id into @p out; @p count: a routing decision (metrics), not ExplainJob.
 * @return 1 when one was found.
 * @note J.lock, inside a read bracket
 */
static int
choose(const job_t *j, char *out, int count)
{
    gx_reg_pool_t *p = gx_reg_pool_find(J.reg, j->pool->name);
    gx_reg_node_t *const *v;
    gx_reg_cursor_t cur;
    const gx_router_t *r;
    gx_route_job_t rj;
    size_t n, m, k = 0, pick, avoid = (size_t)-1;
    uint64_t t0 = gx_now_ns(), dt;
    void *ctx = NULL;

    if (p == NULL)
        return 0;
    n = gx_reg_pool_cursor(p, j->pb->specialization, NULL, &cur);
    if (n == 0 || scratch_fit(n) != 0)
        return 0;
    r = policy_of(j->pool->name, &ctx);
    if (r != NULL && r->sample > 0)
        k = sample(&cur, n, j, r->sample);
    if (k == 0) {
        while (gx_reg_cursor_next(&cur, &v, &m))
            for (size_t i = 0; i < m; i++)
                if (eligible(v[i], j, NULL, &S.c[k])) {
                    if (j->avoid[0] && strcmp(S.c[k].id, j->avoid) == 0)
                        avoid = k;
                    k++;
                }
        if (avoid != (size_t)-1 && k > 1) { /* elsewhere, since there is an elsewhere */
            memmove(&S.c[avoid], &S.c[avoid + 1], (k - avoid - 1) * sizeof(S.c[0]));
            k--;
        }
    }
    if (k == 0)
        return 0;
    rj = (gx_route_job_t){.pool = j->pool->name,
                          .id = j->id,
                          .specialization = j->pb->specialization,
                          .routing_key = j->pb->routing_key};
    pick = k == 1 || r == NULL ? 0 : r->choose(&rj, S.c, k, NULL, ctx);
    if (pick >= k)
        pick = 0;
    snprintf(out, GX_REG_NODE_ID_MAX + 1, "%s", S.c[pick].id);
    if (!count)
        return 1;
    dt = gx_now_ns() - t0;
    J.routes++;
    J.route_ns_sum += dt;
    {
        size_t b = 0;
        while (b < ROUTE_BUCKETS && dt > (1000ull << b))
            b++;
        if (b < ROUTE_BUCKETS)
            J.route_hist[b]++;
    }
    if (dt > J.route_ns_max)
        J.route_ns_max = dt;
    return 1;
}

/* puts @p j on node @p n's list, taking its share of the node's capacity */
static void
take(job_t *j, jnode_t *n)
{
    const Galaxy__Pool__V1__Resources *r = j->pb->resources;

    j->node = n;
    list_add_tail(&n->jobs, &j->q);
    if (r != NULL) {
        n->cpu += r->cpu_millis;
        n->mem += r->memory_bytes;
        n->gpus += r->gpus;
    }
    n->njobs++;
}

/* puts @p j on node @p id (J.lock) */
static int
assign(job_t *j, const char *id)
{
    jnode_t *n = jnode_get(j->pool->name, id, 1);

    if (n == NULL)
        return GX_ENOMEM;
    jnode_attach(n); /* the registry may have made the node again since the jnode was made */
    dequeue(j);
    snprintf(j->node_id, sizeof(j->node_id), "%s", id);
    j->avoid[0] = '\0';
    j->attempts++;
    take(j, n);
    set_state(j, JS_ASSIGNED, "");
    j->at_ms = gx_now_ms();
    list_del(&j->timed);
    list_add_tail(&J.assigned, &j->timed);
    deliver_add(n, 1);
    stream_poke(n);
    return 0;
}

static void
enqueue(job_t *j, int front)
{
    if (front)
        list_add_head(&j->pool->pending, &j->q);
    else
        list_add_tail(&j->pool->pending, &j->q);
    j->pool->n_pending++;
}

/* routes @p j if a node can take it; @return 1 when assigned */
static int
try_route(job_t *j)
{
    char id[GX_REG_NODE_ID_MAX + 1];

    return choose(j, id, 1) && assign(j, id) == 0;
}

/*
 * What a pass learnt: jobs that found no node.  A later job of the same
 * specialization, without a node_selector and needing at least as much,
 * cannot find one either, so a queue of like jobs costs one search a pass,
 * not one per job.  (A job with a selector is always tried: rarer, and a
 * subset test would cost what the search does.)
 */
#define MISSES_MAX 16

typedef struct {
    const char *spec;
    uint64_t cpu, mem, gpus;
} miss_t;

static uint64_t
res_cpu(const job_t *j)
{
    return j->pb->resources ? j->pb->resources->cpu_millis : 0;
}

static uint64_t
res_mem(const job_t *j)
{
    return j->pb->resources ? j->pb->resources->memory_bytes : 0;
}

static uint64_t
res_gpus(const job_t *j)
{
    return j->pb->resources ? j->pb->resources->gpus : 0;
}

static int
known_miss(const miss_t *m, size_t n, const job_t *j)
{
    if (j->pb->n_node_selector > 0 || j->avoid[0])
        return 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(m[i].spec, j->pb->specialization) == 0 && res_cpu(j) >= m[i].cpu &&
            res_mem(j) >= m[i].mem && res_gpus(j) >= m[i].gpus)
            return 1;
    return 0;
}

/* routes the pool's pending jobs, oldest first (J.lock, read bracket) */
static void
pool_pass(jpool_t *p)
{
    miss_t miss[MISSES_MAX];
    size_t tried = 0, n_miss = 0;

    p->kick = 0;
    for (link_t *e = p->pending.next, *next; e != &p->pending && tried < PASS_MAX; e = next) {
        job_t *j = container_of(e, job_t, q);
        next = e->next;
        if (known_miss(miss, n_miss, j))
            continue;
        tried++;
        if (try_route(j))
            job_write(j, NULL, 0);
        else if (n_miss < MISSES_MAX && j->pb->n_node_selector == 0 && !j->avoid[0])
            miss[n_miss++] = (miss_t){j->pb->specialization, res_cpu(j), res_mem(j), res_gpus(j)};
    }
}

/*
 * @p j lost its node (DOWN, gone, no acknowledgement): routed again, or
 * FAILED after max_attempts.  (J.lock, read bracket)
 */
static void
reroute(job_t *j, const char *why)
{
    char msg[GX_JOBS_MESSAGE_MAX];

    J.rerouted++;
    snprintf(j->avoid, sizeof(j->avoid), "%s", j->node_id);
    unassign(j);
    if (j->attempts >= J.o.max_attempts) {
        snprintf(msg, sizeof(msg), "%s (node \"%s\"); gave up after %u attempts", why, j->node_id,
                 j->attempts);
        set_state(j, JS_FAILED, msg);
        ended(j);
    } else {
        snprintf(msg, sizeof(msg), "%s (node \"%s\"); routing again", why, j->node_id);
        j->node_id[0] = '\0';
        set_state(j, JS_PENDING, msg);
        enqueue(j, 1);
        try_route(j);
    }
    job_write(j, NULL, 0);
}

static void
node_lost(jnode_t *n, const char *why)
{
    for (link_t *e = n->jobs.next, *next; e != &n->jobs; e = next) {
        job_t *j = container_of(e, job_t, q);
        next = e->next;
        if (takes_capacity(j->state))
            reroute(j, why);
        else
            unassign(j); /* a cancellation it will never hear of */
    }
}

/* ------------------------------------------------------------------ the registry's listener */

static void
on_node_changed(void *arg, const char *pool, const char *id, uint32_t state, int removed)
{
    nev_t *e;

    if (!removed && state != NODE_HEALTHY && state != NODE_DOWN)
        return;
    if (uatomic_read(&J.active) == 0)
        return; /* no job to route or to take back: registrations cost nothing here */
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return; /* the next pass over the queues catches up with HEALTHY; DOWN: ack timeout */
    e->state = state;
    e->removed = removed;
    snprintf(e->pool, sizeof(e->pool), "%s", pool);
    snprintf(e->id, sizeof(e->id), "%s", id);
    pthread_mutex_lock(&J.lock);
    e->next = J.events;
    J.events = e;
    pthread_mutex_unlock(&J.lock);
}

static void
kicks_run(void)
{
    for (size_t i = 0; i < J.pools.nb; i++)
        for (hent_t *e = J.pools.b[i]; e != NULL; e = e->next) {
            jpool_t *p = container_of(e, jpool_t, he);
            if (p->kick && p->n_pending > 0)
                pool_pass(p);
            p->kick = 0;
        }
}

static void
on_settled(void *arg)
{
    nev_t *list, *rev = NULL;

    gx_reg_read_begin();
    pthread_mutex_lock(&J.lock);
    list = J.events;
    J.events = NULL;
    while (list != NULL) { /* oldest first */
        nev_t *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    while (rev != NULL) {
        nev_t *e = rev;
        jpool_t *p = pool_get(e->pool, 0);
        rev = e->next;
        if (e->removed || e->state == NODE_DOWN) {
            jnode_t *n = jnode_get(e->pool, e->id, 0);
            if (n != NULL)
                node_lost(n, e->removed ? "node left the pool" : "node went DOWN");
        }
        if (p != NULL)
            p->kick = 1;
        free(e);
    }
    kicks_run();
    pthread_mutex_unlock(&J.lock);
    gx_reg_read_end();
}

static job_t *job_find(const char *id);
static void submit_undo(job_t *j);

/* @p t is at least @p ms old at @p now (a time stamped after now is not) */
static int
older(uint64_t now, uint64_t t, uint64_t ms)
{
    return now >= t && now - t >= ms;
}

static void
on_tick(void *arg, uint64_t tick_now)
{
    uint64_t now;

    gx_reg_read_begin();
    pthread_mutex_lock(&J.lock);
    now = gx_now_ms(); /* the keeper's tick began a while ago: jobs may be younger */
    (void)tick_now;
    while (J.doomed != NULL) {
        doomed_t *d = J.doomed;
        job_t *j = job_find(d->id);
        J.doomed = d->next;
        if (j != NULL) {
            job_erase(j);
            submit_undo(j);
        }
        free(d);
    }
    while (!list_empty(&J.assigned)) {
        job_t *j = container_of(J.assigned.next, job_t, timed);
        if (!older(now, j->at_ms, J.o.ack_timeout_ms))
            break;
        J.timeouts++;
        reroute(j, "not acknowledged in time");
    }
    while (!list_empty(&J.ended)) {
        job_t *j = container_of(J.ended.next, job_t, timed);
        if (!older(now, j->at_ms, J.o.retention_ms))
            break;
        job_erase(j);
        job_forget(j);
    }
    if (now >= J.next_all_ms) {
        J.next_all_ms = now + PASS_ALL_MS;
        for (size_t i = 0; i < J.pools.nb; i++)
            for (hent_t *e = J.pools.b[i]; e != NULL; e = e->next) {
                jpool_t *p = container_of(e, jpool_t, he);
                if (p->n_pending > 0) {
                    if (gx_reg_pool_find(J.reg, p->name) == NULL)
                        p->kick = 0; /* a deleted pool: its jobs wait for it to come back */
                    else
                        p->kick = 1;
                }
            }
    }
    kicks_run();
    pthread_mutex_unlock(&J.lock);
    gx_reg_read_end();
}

/* ------------------------------------------------------------------ visibility */

static int
is_operator(const gx_call_t *call, const char *pool)
{
    return gx_call_check_access(call, GX_ACCESS_OPERATE, pool) == GX_STATUS_OK;
}

/* the identity that registered node @p id of @p pool ("" when none) */
static int
node_owned_by(const char *pool, const char *id, const char *who)
{
    gx_reg_node_t *n;

    if (id[0] == '\0' || who[0] == '\0')
        return 0;
    n = gx_reg_node_find(J.reg, pool, id);
    return n != NULL && strcmp(gx_reg_node_info(n)->owner, who) == 0;
}

/*
 * Whether the call may see @p j (API.md: public pools to everyone; private
 * ones to the submitter, operators of the pool and the node it is on).
 * @note read bracket
 */
static int
visible(const gx_call_t *call, const job_t *j)
{
    const char *pool = j->pool->name, *who = gx_call_identity(call);

    if (gx_call_check_access(call, GX_ACCESS_DISCOVER, pool) != GX_STATUS_OK)
        return 0;
    if (gx_pool_visibility(pool) != GX_POOL_PRIVATE)
        return 1;
    if (who[0] != '\0' && strcmp(j->pb->submitter, who) == 0)
        return 1;
    return is_operator(call, pool) || node_owned_by(pool, j->node_id, who);
}

static job_t *
job_find(const char *id)
{
    hent_t *e = htab_find(&J.jobs, id, strlen(id));

    return e != NULL ? container_of(e, job_t, he) : NULL;
}

static int
no_job(gx_jobs_why_t *why, const char *id)
{
    why->status = GX_STATUS_NOT_FOUND;
    snprintf(why->msg, sizeof(why->msg), "id: no job \"%s\"", id);
    return GX_ENOTFOUND;
}

static int refuse(gx_jobs_why_t *why, gx_status_t st, int rv, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
refuse(gx_jobs_why_t *why, gx_status_t st, int rv, const char *fmt, ...)
{
    va_list ap;

    why->status = st;
    va_start(ap, fmt);
    vsnprintf(why->msg, sizeof(why->msg), fmt, ap);
    va_end(ap);
    return rv;
}

/* a submission refused for room: RESOURCE_EXHAUSTED, counted and logged */
static int
full(gx_jobs_why_t *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
full(gx_jobs_why_t *why, const char *fmt, ...)
{
    va_list ap;

    why->status = GX_STATUS_RESOURCE_EXHAUSTED;
    va_start(ap, fmt);
    vsnprintf(why->msg, sizeof(why->msg), fmt, ap);
    va_end(ap);
    gx_stats_inc(JOBS_FULL);
    gx_log_remote(GX_LOG_WARN, "jobs full: submission refused reason=\"%s\"", why->msg);
    return GX_E2BIG;
}

/* ------------------------------------------------------------------ requests */

static int
pool_check(const gx_pb_job_t *job, gx_jobs_why_t *why)
{
    gx_reg_pool_t *p = gx_reg_pool_find(J.reg, job->pool);
    gx_pb_pool_t pb;

    if (p == NULL)
        return refuse(why, GX_STATUS_NOT_FOUND, GX_ENOTFOUND, GX_NO_POOL_FMT, "job.pool",
                      job->pool);
    gx_reg_pool_fill(p, &pb);
    for (size_t i = 0; i < pb.n_specializations; i++)
        if (strcmp(pb.specializations[i], job->specialization) == 0)
            return 0;
    if (pb.n_specializations > 0)
        return refuse(why, GX_STATUS_INVALID_ARGUMENT, GX_EINVAL,
                      "job.specialization: pool "
                      "\"%s\" does not allow \"%s\"",
                      job->pool, job->specialization);
    return 0;
}

/* a new job from @p in (validated), with the server's fields; J.lock */
static job_t *
job_new(const gx_pb_job_t *in, const char *submitter)
{
    gx_pb_job_t view = *in;
    uint64_t now = (uint64_t)gx_unix_ms();
    uint16_t rnd = 0;
    job_t *j = calloc(1, sizeof(*j));
    size_t len;
    uint8_t *buf;

    if (j == NULL)
        return NULL;
    if (now <= J.last_ms) {
        now = J.last_ms;
    } else {
        J.last_ms = now;
    }
    (void)!getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK);
    snprintf(j->id, sizeof(j->id), "%012" PRIx64 "%06x%04x", now, J.seq++ & 0xffffff, rnd);
    view.id = j->id;
    view.submitter = (char *)submitter;
    view.created_unix_ms = (int64_t)now;
    view.updated_unix_ms = (int64_t)now;
    view.state = 0;
    view.node_id = (char *)"";
    view.message = (char *)"";
    view.attempts = 0;
    len = protobuf_c_message_get_packed_size(&view.base);
    buf = malloc(len + 1);
    if (buf != NULL) {
        protobuf_c_message_pack(&view.base, buf);
        j->pb = galaxy__pool__v1__job__unpack(NULL, len, buf);
        free(buf);
    }
    if (j->pb == NULL) {
        free(j);
        return NULL;
    }
    j->he.key = j->id;
    j->he.key_len = strlen(j->id);
    j->updated_ms = (int64_t)now;
    return j;
}

/* links a new or loaded job in (J.lock) */
static int
job_link(job_t *j, jpool_t *p)
{
    if (htab_add(&J.jobs, &j->he) != 0)
        return GX_ENOMEM;
    j->pool = p;
    list_add_tail(&p->all, &j->all);
    count_state(j->state, 1);
    J.payload_bytes += j->pb->payload.len;
    return 0;
}

/*
 * The answer of a write call: @p j as it is now (call memory) in op->reply,
 * and its record queued (@p submit: a new job).  @return 0, or the error with
 * @p why set
 */
static int
reply_write(gx_call_t *call, job_t *j, gx_jobs_op_t *op, int submit, gx_jobs_why_t *why)
{
    int rv;

    op->reply = job_copy(call, j, 1);
    rv = op->reply != NULL ? job_write(j, op, submit) : GX_ENOMEM;
    if (rv != 0)
        refuse(why, gx_error_to_status(rv), rv, "cannot store the job: %s", gx_strerror(rv));
    return rv;
}

/* forgets a submission refused after it was made: as if it never was, counters too */
static void
submit_undo(job_t *j)
{
    J.transitions[JS_PENDING]--;
    if (j->state == JS_ASSIGNED)
        J.transitions[JS_ASSIGNED]--;
    job_forget(j);
}

int
gx_jobs_submit(gx_call_t *call, const gx_pb_job_t *in, const char *submitter, gx_jobs_op_t *op,
               gx_jobs_why_t *why)
{
    jpool_t *p;
    job_t *j;
    int rv;

    gx_reg_read_begin();
    pthread_mutex_lock(&J.lock);
    if ((rv = pool_check(in, why)) != 0)
        goto out;
    if (J.jobs.n >= J.o.jobs_max) {
        rv = full(why, "jobs: the server holds %u jobs, its limit (jobs.jobs_max)",
                  J.o.jobs_max);
        goto out;
    }
    if (J.payload_bytes + in->payload.len > (uint64_t)J.o.max_payload_mb << 20) {
        rv = full(why, "job.payload: the jobs held carry %" PRIu64 " MiB of payload, the "
                  "limit is %u (jobs.max_payload_mb)", J.payload_bytes >> 20,
                  J.o.max_payload_mb);
        goto out;
    }
    p = pool_get(in->pool, 1);
    j = p != NULL ? job_new(in, submitter) : NULL;
    if (j == NULL || job_link(j, p) != 0) {
        if (j != NULL) {
            galaxy__pool__v1__job__free_unpacked(j->pb, NULL);
            free(j);
        }
        rv = refuse(why, GX_STATUS_RESOURCE_EXHAUSTED, GX_ENOMEM, "out of memory");
        goto out;
    }
    set_state(j, JS_PENDING, NULL);
    if (!try_route(j)) {
        if (p->n_pending >= J.o.queue_max) {
            submit_undo(j);
            rv = full(why, "job.pool: the queue of pool \"%s\" is full (%u jobs waiting, "
                      "jobs.queue_max)", in->pool, J.o.queue_max);
            goto out;
        }
        enqueue(j, 0);
    }
    rv = reply_write(call, j, op, 1, why);
    if (rv == 0)
        J.transitions[0]++; /* SUBMITTED: accepted */
    else
        submit_undo(j);
out:
    pthread_mutex_unlock(&J.lock);
    gx_reg_read_end();
    return rv;
}

int
gx_jobs_get(gx_call_t *call, const char *id, gx_pb_job_t **out, gx_jobs_why_t *why)
{
    job_t *j;
    int rv = 0;

    gx_reg_read_begin();
    pthread_mutex_lock(&J.lock);
    j = job_find(id);
    if (j == NULL || !visible(call, j))
        rv = no_job(why, id);
    else if ((*out = job_copy(call, j, 1)) == NULL)
        rv = refuse(why, GX_STATUS_RESOURCE_EXHAUSTED, GX_ENOMEM, "out of memory");
    pthread_mutex_unlock(&J.lock);
    gx_reg_read_end();
    return rv;
}

int
gx_jobs_cancel(gx_call_t *call, const char *id, gx_jobs_op_t *op, gx_jobs_why_t *why)
{
    const char *who = gx_call_identity(call);
    job_t *j;
    int rv = 0;

    gx_reg_read_begin();
    pthread_mutex_lock(&J.lock);
    j = job_find(id);
    if (j == NULL || !visible(call, j)) {
        rv = no_job(why, id);
    } else if (strcmp(j->pb->submitter, who) != 0 && !is_operator(call, j->pool->name)) {
        rv = refuse(why, GX_STATUS_PERMISSION_DENIED, GX_EDENIED,
                    "id: only its submitter or an "
                    "operator of pool \"%s\" may cancel job \"%s\"",
                    j->pool->name, id);
    } else if (is_final(j->state)) {
        rv = refuse(why, GX_STATUS_FAILED_PRECONDITION, GX_EINVAL,
                    "id: job \"%s\" is already "
                    "%s",
                    id, state_names[j->state]);
    } else {
        jnode_t *n = j->node;
        char msg[GX_JOBS_MESSAGE_MAX];
        dequeue(j);
        if (n != NULL) { /* stays on the node's list until the node is told */
            release(j);
            j->tell = 1;
            deliver_add(n, 1);
        }
        snprintf(msg, sizeof(msg), "cancelled by %s", who[0] ? who : "an anonymous caller");
        set_state(j, JS_CANCELLED, msg);
        ended(j);
        if (n != NULL) {
            stream_poke(n);
            j->pool->kick = 1; /* capacity came free */
            kicks_run();
        }
        rv = reply_write(call, j, op, 0, why);
    }
    pthread_mutex_unlock(&J.lock);
    gx_reg_read_end();
    return rv;
}

int
gx_jobs_update(gx_call_t *call, const Galaxy__Pool__V1__UpdateJobStatusRequest *req,
               gx_jobs_op_t *op, gx_jobs_why_t *why)
{
    gx_reg_node_t *n;
    gx_status_t st;
    job_t *j;
    int rv = 0;

    gx_reg_read_begin();
    pthread_mutex_lock(&J.lock);
    j = job_find(req->id);
    if (j == NULL) {
        rv = no_job(why, req->id);
        goto out;
    }
    if (!visible(call, j)) { /* a private pool's job the caller may not see */
        rv = no_job(why, req->id);
        goto out;
    }
    st = gx_call_check_access(call, GX_ACCESS_NODE, j->pool->name);
    if (st == GX_STATUS_NOT_FOUND) {
        rv = no_job(why, req->id);
        goto out;
    }
    if (st != GX_STATUS_OK) {
        rv = refuse(why, st, GX_EDENIED, "%s: may not report on jobs of pool \"%s\"",
                    st == GX_STATUS_UNAUTHENTICATED ? "credentials" : "role", j->pool->name);
        goto out;
    }
    if (strcmp(j->node_id, req->node_id) != 0) {
        rv = refuse(why, GX_STATUS_PERMISSION_DENIED, GX_EDENIED,
                    "node_id: job \"%s\" is not "
                    "assigned to node \"%s\"",
                    req->id, req->node_id);
        goto out;
    }
    n = gx_reg_node_find(J.reg, j->pool->name, req->node_id);
    if (n == NULL || !gx_reg_node_token_ok(n, req->lease_token)) {
        rv = refuse(why, GX_STATUS_PERMISSION_DENIED, GX_EDENIED,
                    "lease_token: not the lease "
                    "of node \"%s\"",
                    req->node_id);
        goto out;
    }
    if (j->state == JS_CANCELLED && j->tell) {
        deliver_add(j->node, -1); /* it knows now */
        j->tell = 0;
        jnode_t *jn = j->node;
        list_del(&j->q);
        j->node = NULL;
        jnode_gc(jn);
    }
    if (is_final(j->state)) {
        rv = refuse(why, GX_STATUS_FAILED_PRECONDITION, GX_EINVAL,
                    "id: job \"%s\" is already "
                    "%s",
                    req->id, state_names[j->state]);
        goto out;
    }
    if ((uint32_t)req->state == JS_RUNNING) {
        if (j->state == JS_ASSIGNED) { /* heard: no more deliveries, no timeout */
            deliver_add(j->node, -1);
            list_del(&j->timed);
        }
        set_state(j, JS_RUNNING, req->message);
    } else {
        unassign(j);
        set_state(j, (uint32_t)req->state, req->message);
        ended(j);
        j->pool->kick = 1; /* capacity came free */
        kicks_run();
    }
    rv = reply_write(call, j, op, 0, why);
out:
    pthread_mutex_unlock(&J.lock);
    gx_reg_read_end();
    return rv;
}

static int
state_wanted(const Galaxy__Pool__V1__ListJobsRequest *req, uint32_t st)
{
    if (req->n_states == 0)
        return 1;
    for (size_t i = 0; i < req->n_states; i++)
        if ((uint32_t)req->states[i] == st)
            return 1;
    return 0;
}

int
gx_jobs_list(gx_call_t *call, const Galaxy__Pool__V1__ListJobsRequest *req,
             Galaxy__Pool__V1__ListJobsResponse *out, gx_jobs_why_t *why)
{
    size_t want = req->page_size == 0                ? GX_REG_PAGE_DEFAULT
                  : req->page_size > GX_REG_PAGE_MAX ? GX_REG_PAGE_MAX
                                                     : req->page_size;
    char after[GX_JOBS_ID_MAX + 1] = "";
    link_t *e;
    jpool_t *p;
    int rv = 0;

    if (req->page_token[0] && gx_reg_page_token_decode(req->page_token, after, sizeof(after)) != 0)
        return refuse(why, GX_STATUS_INVALID_ARGUMENT, GX_EINVAL, "page_token: malformed");
    out->jobs = gx_call_alloc(call, want * sizeof(*out->jobs));
    if (out->jobs == NULL)
        return refuse(why, GX_STATUS_RESOURCE_EXHAUSTED, GX_ENOMEM, "out of memory");
    gx_reg_read_begin();
    pthread_mutex_lock(&J.lock);
    if (gx_reg_pool_find(J.reg, req->pool) == NULL) { /* as the ACCESS phase words a hidden one */
        rv = refuse(why, GX_STATUS_NOT_FOUND, GX_ENOTFOUND, GX_NO_POOL_FMT, "pool", req->pool);
        goto out;
    }
    p = pool_get(req->pool, 0);
    if (p == NULL)
        goto out;
    e = p->all.next;
    if (after[0]) {
        job_t *a = job_find(after);
        if (a != NULL && a->pool == p) {
            e = a->all.next;
        } else { /* gone since: the first one after it in id order */
            while (e != &p->all && strcmp(container_of(e, job_t, all)->id, after) <= 0)
                e = e->next;
        }
    }
    for (; e != &p->all; e = e->next) {
        job_t *j = container_of(e, job_t, all);
        if (!state_wanted(req, j->state) || (req->node_id[0] && strcmp(j->node_id, req->node_id)))
            continue;
        if (!visible(call, j))
            continue;
        if (out->n_jobs == want) {
            char tok[GX_JOBS_ID_MAX * 2 + 8];
            if (gx_reg_page_token_encode(out->jobs[out->n_jobs - 1]->id, tok, sizeof(tok)) > 0) {
                out->next_page_token = gx_call_alloc(call, strlen(tok) + 1);
                if (out->next_page_token != NULL)
                    memcpy(out->next_page_token, tok, strlen(tok) + 1);
                else
                    out->next_page_token = (char *)"";
            }
            break;
        }
        if ((out->jobs[out->n_jobs] = job_copy(call, j, 0)) == NULL) {
            rv = refuse(why, GX_STATUS_RESOURCE_EXHAUSTED, GX_ENOMEM, "out of memory");
            break;
        }
        out->n_jobs++;
    }
out:
    pthread_mutex_unlock(&J.lock);
    gx_reg_read_end();
    return rv;
}

int
gx_jobs_explain(gx_call_t *call, const gx_pb_job_t *in, Galaxy__Pool__V1__ExplainJobResponse *out,
                gx_jobs_why_t *why)
{
    job_t probe = {0};
    gx_pb_job_t pb = *in;
    jpool_t pool = {0};
    gx_reg_pool_t *rp;
    gx_reg_node_t **v;
    gx_reg_cursor_t cur;
    size_t n, k = 0;
    int rv = 0;
    char chosen[GX_REG_NODE_ID_MAX + 1];

    gx_reg_read_begin();
    pthread_mutex_lock(&J.lock);
    if ((rv = pool_check(in, why)) != 0)
        goto out;
    rp = gx_reg_pool_find(J.reg, in->pool);
    snprintf(pool.name, sizeof(pool.name), "%s", in->pool);
    snprintf(probe.id, sizeof(probe.id), "explain");
    probe.pb = &pb;
    probe.pool = &pool;
    n = gx_reg_pool_cursor(rp, NULL, NULL, &cur);
    if (n > EXPLAIN_MAX)
        n = EXPLAIN_MAX;
    v = gx_call_alloc(call, (n ? n : 1) * sizeof(*v));
    if (v == NULL) {
        rv = refuse(why, GX_STATUS_RESOURCE_EXHAUSTED, GX_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = gx_reg_cursor_nth(&cur, i);
    out->verdicts = gx_call_alloc(call, (n ? n : 1) * sizeof(*out->verdicts));
    if (out->verdicts == NULL || scratch_fit(n ? n : 1) != 0) {
        rv = refuse(why, GX_STATUS_RESOURCE_EXHAUSTED, GX_ENOMEM, "out of memory");
        goto out;
    }
    /* the candidates first, so that the policy scores them */
    size_t *idx = gx_call_alloc(call, (n ? n : 1) * sizeof(size_t));
    if (idx == NULL) {
        rv = refuse(why, GX_STATUS_RESOURCE_EXHAUSTED, GX_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        Galaxy__Pool__V1__NodeVerdict *nv = gx_call_alloc(call, sizeof(*nv));
        reasons_t r = {.n = 0};
        if (nv == NULL || !gx_reg_node_live(v[i])) {
            if (nv == NULL)
                rv = refuse(why, GX_STATUS_RESOURCE_EXHAUSTED, GX_ENOMEM, "out of memory");
            if (nv == NULL)
                goto out;
            continue;
        }
        galaxy__pool__v1__node_verdict__init(nv);
        nv->node_id = (char *)gx_reg_node_id(v[i]);
        nv->eligible = eligible(v[i], &probe, &r, &S.c[k]);
        if (nv->eligible)
            idx[k++] = out->n_verdicts;
        nv->n_reasons = r.n;
        nv->reasons = gx_call_alloc(call, (r.n ? r.n : 1) * sizeof(char *));
        for (size_t m = 0; nv->reasons != NULL && m < r.n; m++) {
            size_t len = strlen(r.why[m]);
            nv->reasons[m] = gx_call_alloc(call, len + 1);
            if (nv->reasons[m] == NULL) {
                nv->n_reasons = m;
                break;
            }
            memcpy(nv->reasons[m], r.why[m], len + 1);
        }
        if (nv->reasons == NULL)
            nv->n_reasons = 0;
        out->verdicts[out->n_verdicts++] = nv;
    }
    out->chosen_node_id = (char *)"";
    if (k > 0) {
        double *scores = gx_call_alloc(call, k * sizeof(double));
        void *ctx = NULL;
        const gx_router_t *r = policy_of(in->pool, &ctx);
        gx_route_job_t rj = {.pool = in->pool,
                             .id = "",
                             .specialization = in->specialization,
                             .routing_key = in->routing_key};
        size_t pick;
        if (scores == NULL) {
            rv = refuse(why, GX_STATUS_RESOURCE_EXHAUSTED, GX_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < k; i++)
            scores[i] = 0;
        pick = r != NULL ? r->choose(&rj, S.c, k, scores, ctx) : 0;
        if (pick >= k)
            pick = 0;
        for (size_t i = 0; i < k; i++)
            out->verdicts[idx[i]]->score = scores[i];
        (void)pick;
    }
    /* the choice itself is SubmitJob's, over every node, not only those listed */
    if (choose(&probe, chosen, 0)) {
        out->chosen_node_id = gx_call_alloc(call, strlen(chosen) + 1);
        if (out->chosen_node_id != NULL)
            memcpy(out->chosen_node_id, chosen, strlen(chosen) + 1);
        else
            out->chosen_node_id = (char *)"";
    }
out:
    pthread_mutex_unlock(&J.lock);
    gx_reg_read_end();
    return rv;
}

/* ------------------------------------------------------------------ delivery */

/* the jobs node @p n is to hear of, into @p resp (J.lock; call memory) */
static void
deliver(gx_call_t *call, jnode_t *n, Galaxy__Pool__V1__HeartbeatResponse *resp)
{
    size_t cnt = 0, bytes = 0;

    for (link_t *e = n->jobs.next; e != &n->jobs; e = e->next) {
        job_t *j = container_of(e, job_t, q);
        if (j->state == JS_ASSIGNED || j->tell)
            cnt++;
    }
    if (cnt == 0)
        return;
    resp->assigned_jobs = gx_call_alloc(call, cnt * sizeof(*resp->assigned_jobs));
    if (resp->assigned_jobs == NULL)
        return;
    for (link_t *e = n->jobs.next, *next; e != &n->jobs && bytes < DELIVER_BYTES; e = next) {
        job_t *j = container_of(e, job_t, q);
        gx_pb_job_t *c;
        next = e->next;
        if (j->state != JS_ASSIGNED && !j->tell)
            continue;
        if ((c = job_copy(call, j, 1)) == NULL)
            break;
        bytes += c->payload.len + 256;
        resp->assigned_jobs[resp->n_assigned_jobs++] = c;
        if (j->tell) { /* told once: its node's lease ends what is left of it */
            j->tell = 0;
            deliver_add(j->node, -1);
            list_del(&j->q);
            j->node = NULL;
        }
    }
    jnode_gc(n);
}

void
gx_jobs_heartbeat(gx_call_t *call, const char *pool, const char *id,
                  Galaxy__Pool__V1__HeartbeatResponse *resp)
{
    jnode_t *n;

    char key[GX_REG_POOL_NAME_MAX + GX_REG_NODE_ID_MAX + 2];
    size_t len = node_key(pool, id, key);

    if (uatomic_read(&J.deliver[hash_bytes(key, len) % DELIVER_SLOTS]) == 0)
        return;
    gx_reg_read_begin(); /* jnode_gc() looks the node up */
    pthread_mutex_lock(&J.lock);
    n = jnode_get(pool, id, 0);
    if (n != NULL)
        deliver(call, n, resp);
    pthread_mutex_unlock(&J.lock);
    gx_reg_read_end();
}

static void
stream_push_run(gx_post_t *p)
{
    jstream_t *s = container_of(p, jstream_t, post);
    Galaxy__Pool__V1__HeartbeatResponse resp = GALAXY__POOL__V1__HEARTBEAT_RESPONSE__INIT;
    gx_call_t *call = s->call;

    uatomic_set(&s->posted, 0);
    if (call != NULL && !gx_call_is_done(call)) {
        gx_reg_read_begin();
        pthread_mutex_lock(&J.lock);
        if (s->jn != NULL) {
            jnode_t *n = s->jn;
            gx_reg_pool_t *rp = gx_reg_pool_find(J.reg, n->pool);
            gx_reg_node_t *rn = gx_reg_node_find(J.reg, n->pool, jnode_id(n));
            if (rp != NULL && rn != NULL) {
                resp.state = gx_reg_node_state(rn);
                gx_reg_pool_heartbeat(rp, &resp.heartbeat_interval_ms, NULL);
                resp.revision = gx_reg_pool_revision(rp);
                deliver(call, n, &resp);
            }
        }
        pthread_mutex_unlock(&J.lock);
        gx_reg_read_end();
        if (resp.n_assigned_jobs > 0 && gx_call_send(call, &resp.base) < 0 &&
            !gx_call_is_done(call))
            gx_call_finish(call, GX_STATUS_INTERNAL, "cannot send the assigned jobs");
    }
    stream_unref(s);
}

gx_jobs_stream_t *
gx_jobs_stream_bind(gx_call_t *call, gx_jobs_stream_t *s, const char *pool, const char *id)
{
    char key[sizeof(s->key)];
    size_t len = node_key(pool, id, key);
    jnode_t *n;

    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL)
            return NULL;
        s->refs = 1; /* the call's */
        s->call = call;
        s->worker = gx_call_worker(call);
    } else if (s->key_len == len && memcmp(s->key, key, len) == 0) {
        return s; /* every message after the first: no lock (a newer stream may have it) */
    }
    memcpy(s->key, key, len);
    s->key_len = len;
    gx_reg_read_begin(); /* jnode_get() and jnode_gc() look the node up */
    pthread_mutex_lock(&J.lock);
    if (s->jn != NULL) { /* the stream speaks for another node now */
        jnode_t *old = s->jn;
        old->stream = NULL;
        s->jn = NULL;
        stream_unref(s);
        jnode_gc(old);
    }
    n = jnode_get(pool, id, 1);
    if (n != NULL) {
        if (n->stream != NULL) { /* the node's older stream */
            n->stream->jn = NULL;
            stream_unref(n->stream);
        }
        n->stream = s;
        s->jn = n;
        uatomic_inc(&s->refs);
    }
    pthread_mutex_unlock(&J.lock);
    gx_reg_read_end();
    return s;
}

void
gx_jobs_stream_end(gx_jobs_stream_t *s)
{
    if (s == NULL)
        return;
    gx_reg_read_begin(); /* jnode_gc() looks the node up */
    pthread_mutex_lock(&J.lock);
    s->call = NULL;
    if (s->jn != NULL) {
        jnode_t *n = s->jn;
        n->stream = NULL;
        s->jn = NULL;
        stream_unref(s);
        jnode_gc(n);
    }
    pthread_mutex_unlock(&J.lock);
    gx_reg_read_end();
    stream_unref(s);
}

void
gx_jobs_set_server(struct gx_server_s *srv)
{
    pthread_mutex_lock(&J.lock);
    J.srv = srv;
    pthread_mutex_unlock(&J.lock);
}

/* ------------------------------------------------------------------ metrics */

void
gx_jobs_metrics(void *out)
{
    struct evbuffer *b = out;
    size_t n[JS_MAX];
    uint64_t t[JS_MAX], rerouted, timeouts, werr, routes, sum, max, hist[ROUTE_BUCKETS], cum = 0;
    uint64_t payload;

    if (!J.open)
        return;
    pthread_mutex_lock(&J.lock);
    memcpy(n, J.n_state, sizeof(n));
    memcpy(t, J.transitions, sizeof(t));
    rerouted = J.rerouted;
    timeouts = J.timeouts;
    werr = J.write_errors;
    routes = J.routes;
    sum = J.route_ns_sum;
    max = J.route_ns_max;
    memcpy(hist, J.route_hist, sizeof(hist));
    payload = J.payload_bytes;
    pthread_mutex_unlock(&J.lock);
    evbuffer_add_printf(b, "# HELP galaxy_jobs_payload_bytes Payload bytes of the jobs held "
                        "(jobs.max_payload_mb %u MiB).\n# TYPE galaxy_jobs_payload_bytes gauge\n"
                        "galaxy_jobs_payload_bytes %" PRIu64 "\n", J.o.max_payload_mb, payload);
    evbuffer_add_printf(b, "# HELP galaxy_jobs Jobs held, by state.\n# TYPE galaxy_jobs gauge\n");
    for (int i = 1; i < JS_MAX; i++)
        evbuffer_add_printf(b, "galaxy_jobs{state=\"%s\"} %zu\n", state_names[i], n[i]);
    evbuffer_add_printf(b,
                        "# HELP galaxy_job_transitions_total Jobs that entered each state "
                        "(SUBMITTED: accepted).\n# TYPE galaxy_job_transitions_total counter\n"
                        "galaxy_job_transitions_total{state=\"SUBMITTED\"} %" PRIu64 "\n",
                        t[0]);
    for (int i = 1; i < JS_MAX; i++)
        evbuffer_add_printf(b, "galaxy_job_transitions_total{state=\"%s\"} %" PRIu64 "\n",
                            state_names[i], t[i]);
    evbuffer_add_printf(b,
                        "# HELP galaxy_jobs_rerouted_total Jobs routed again after losing "
                        "their node.\n# TYPE galaxy_jobs_rerouted_total counter\n"
                        "galaxy_jobs_rerouted_total %" PRIu64 "\n"
                        "# HELP galaxy_jobs_ack_timeouts_total Assignments not acknowledged "
                        "in time.\n# TYPE galaxy_jobs_ack_timeouts_total counter\n"
                        "galaxy_jobs_ack_timeouts_total %" PRIu64 "\n"
                        "# HELP galaxy_jobs_write_errors_total Job records the store could "
                        "not write.\n# TYPE galaxy_jobs_write_errors_total counter\n"
                        "galaxy_jobs_write_errors_total %" PRIu64 "\n"
                        "# HELP galaxy_job_routings_total Routing decisions made.\n"
                        "# TYPE galaxy_job_routings_total counter\n"
                        "galaxy_job_routings_total %" PRIu64 "\n"
                        "# HELP galaxy_job_routing_seconds How long routing decisions took.\n"
                        "# TYPE galaxy_job_routing_seconds histogram\n"
                        "# HELP galaxy_job_routing_seconds_max The slowest decision.\n"
                        "# TYPE galaxy_job_routing_seconds_max gauge\n"
                        "galaxy_job_routing_seconds_max %.9f\n",
                        rerouted, timeouts, werr, routes, max / 1e9);
    for (size_t i = 0; i < ROUTE_BUCKETS; i++) {
        cum += hist[i];
        evbuffer_add_printf(b, "galaxy_job_routing_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                            (double)(1000ull << i) / 1e9, cum);
    }
    evbuffer_add_printf(b,
                        "galaxy_job_routing_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
                        "galaxy_job_routing_seconds_sum %.9f\n"
                        "galaxy_job_routing_seconds_count %" PRIu64 "\n",
                        routes, sum / 1e9, routes);
}

/* ------------------------------------------------------------------ life */

typedef struct {
    size_t loaded, skipped;
} load_t;

static int
load_one(const void *key, size_t key_len, const void *val, size_t val_len, void *arg)
{
    load_t *l = arg;
    gx_pb_job_t *pb = galaxy__pool__v1__job__unpack(NULL, val_len, val);
    job_t *j;
    jpool_t *p;

    if (pb == NULL || key_len > GX_JOBS_ID_MAX || (uint32_t)pb->state == 0 ||
        (uint32_t)pb->state >= JS_MAX || !gx_reg_valid_pool_name(pb->pool) ||
        (j = calloc(1, sizeof(*j))) == NULL) {
        if (pb != NULL)
            galaxy__pool__v1__job__free_unpacked(pb, NULL);
        l->skipped++;
        return 0;
    }
    memcpy(j->id, key, key_len);
    j->id[key_len] = '\0';
    j->he.key = j->id;
    j->he.key_len = key_len;
    j->pb = pb;
    j->state = (uint32_t)pb->state;
    j->attempts = pb->attempts;
    j->updated_ms = pb->updated_unix_ms;
    j->message = pb->message[0] ? strdup(pb->message) : NULL;
    snprintf(j->node_id, sizeof(j->node_id), "%s", pb->node_id);
    p = pool_get(pb->pool, 1);
    if (p == NULL || job_link(j, p) != 0) {
        galaxy__pool__v1__job__free_unpacked(pb, NULL);
        free(j->message);
        free(j);
        return GX_ENOMEM;
    }
    if (j->state == JS_PENDING) {
        enqueue(j, 0);
    } else if (takes_capacity(j->state)) {
        jnode_t *n = jnode_get(pb->pool, j->node_id, 1);
        if (n == NULL)
            return GX_ENOMEM;
        take(j, n);
        if (j->state == JS_ASSIGNED) {
            j->at_ms = gx_now_ms(); /* a fresh acknowledgement time, like the nodes' grace */
            list_add_tail(&J.assigned, &j->timed);
            deliver_add(n, 1);
        }
    } else {
        int64_t age = gx_unix_ms() - j->updated_ms;
        if (j->state == JS_CANCELLED && j->node_id[0]) {
            /* cancelled on its node: whether it was told is not on disk; tell it (again) */
            jnode_t *n = jnode_get(pb->pool, j->node_id, 1);
            if (n == NULL)
                return GX_ENOMEM;
            j->node = n;
            list_add_tail(&n->jobs, &j->q);
            j->tell = 1;
            deliver_add(n, 1);
        }
        uint64_t now = gx_now_ms();
        j->at_ms = age > 0 && (uint64_t)age < now ? now - (uint64_t)age : now;
        list_add_tail(&J.ended, &j->timed); /* roughly in end order: ids are in start order */
    }
    l->loaded++;
    return 0;
}

/* jobs on nodes the registry no longer has are routed again */
static void
orphans_reroute(void)
{
    for (size_t i = 0; i < J.nodes.nb; i++)
        for (hent_t *e = J.nodes.b[i], *next; e != NULL; e = next) {
            jnode_t *n = container_of(e, jnode_t, he);
            next = e->next;
            if (gx_reg_node_find(J.reg, n->pool, jnode_id(n)) == NULL)
                node_lost(n, "node is gone");
        }
}

int
gx_jobs_open(gx_store_t *st, gx_reg_t *reg, const gx_jobs_opts_t *o, char *err, size_t errlen)
{
    gx_reg_listener_t l = {
        .node_changed = on_node_changed, .settled = on_settled, .tick = on_tick, .arg = NULL};
    load_t ld = {0};
    uint64_t t0 = gx_now_ms();
    int rv;

    J.st = st;
    J.reg = reg;
    if (o != NULL)
        J.o = *o;
    else
        gx_jobs_opts_init(&J.o);
    list_init(&J.assigned);
    list_init(&J.ended);
    gx_reg_thread_online();
    gx_reg_read_begin(); /* load_one finds the jobs' nodes in the registry */
    rv = gx_store_scan(st, GX_STORE_JOBS, load_one, &ld);
    gx_reg_read_end();
    if (rv != 0) {
        snprintf(err, errlen, "jobs: cannot load: %s", gx_strerror(rv));
        return rv;
    }
    J.open = 1;
    gx_reg_thread_online();
    gx_reg_read_begin();
    pthread_mutex_lock(&J.lock);
    orphans_reroute();
    for (size_t i = 0; i < J.pools.nb; i++)
        for (hent_t *e = J.pools.b[i]; e != NULL; e = e->next)
            container_of(e, jpool_t, he)->kick = 1;
    kicks_run();
    pthread_mutex_unlock(&J.lock);
    gx_reg_read_end();
    gx_reg_listen(reg, &l);
    gx_log(GX_LOG_INFO, "jobs loaded jobs=%zu skipped=%zu ms=%llu", ld.loaded, ld.skipped,
           (unsigned long long)(gx_now_ms() - t0));
    return 0;
}

void
gx_jobs_close(void)
{
    if (!J.open)
        return;
    J.reg = NULL; /* closed before us: it called the listener until then */
    pthread_mutex_lock(&J.lock);
    for (size_t i = 0; i < J.jobs.nb; i++)
        for (hent_t *e = J.jobs.b[i], *next; e != NULL; e = next) {
            job_t *j = container_of(e, job_t, he);
            next = e->next;
            galaxy__pool__v1__job__free_unpacked(j->pb, NULL);
            free(j->message);
            free(j);
        }
    for (size_t i = 0; i < J.nodes.nb; i++)
        for (hent_t *e = J.nodes.b[i], *next; e != NULL; e = next) {
            jnode_t *n = container_of(e, jnode_t, he);
            next = e->next;
            if (n->stream != NULL) {
                n->stream->jn = NULL;
                stream_unref(n->stream);
            }
            free(n);
        }
    for (size_t i = 0; i < J.pools.nb; i++)
        for (hent_t *e = J.pools.b[i], *next; e != NULL; e = next) {
            next = e->next;
            free(container_of(e, jpool_t, he));
        }
    while (J.events != NULL) {
        nev_t *e = J.events;
        J.events = e->next;
        free(e);
    }
    free(J.jobs.b);
    free(J.pools.b);
    free(J.nodes.b);
    free(S.c);
    memset(&J.jobs, 0, sizeof(J.jobs));
    memset(&J.pools, 0, sizeof(J.pools));
    memset(&J.nodes, 0, sizeof(J.nodes));
    S.c = NULL;
    S.cap = 0;
    J.open = 0;
    pthread_mutex_unlock(&J.lock);
}
