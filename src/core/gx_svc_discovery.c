/* SPDX-License-Identifier: MIT */
/*
 * galaxy.pool.v1.Discovery, served by a built-in module: GetNode and
 * ListNodes read the registry under RCU and answer inside the read bracket
 * (the reply is packed at once, so shallow copies of registry strings are
 * safe).  ListNodes walks a sorted index from the id after the page token,
 * so a node present through a whole listing is returned exactly once: the
 * smallest index that holds every node the filters can match (the pool's, a
 * specialization's, a label's, or, for states other than HEALTHY, the pool's
 * nodes out of HEALTHY; gx_reg_pool_cursor_filter).  Every filter is checked
 * on the way, on the node's static part and state, before a node is copied
 * into the page.
 *
 * Watch reads the pool's change feed (core/gx_reg.h): a ring of the pool's
 * last changes written by the registry's keeper, shared by every watcher of
 * the pool.  A watcher holds a reference to the feed and a cursor (the last
 * revision it handled); it sends a snapshot (the index of its specialization
 * or of the pool, then SYNCED), or replays the feed from the client's revision
 * (then SYNCED), then follows the feed.  It learns of new changes by polling
 * the feed's head, one atomic load, from a timer of its call every
 * WATCH_POLL_US (5 ms): a change in one pool costs the watchers of other pools
 * nothing.  Idle cost per watcher: its state (about 400 bytes of call memory),
 * one timer, 200 wake-ups a second of well under a microsecond each.  A busy
 * watcher sends at most WATCH_BATCH events per turn, then yields the
 * worker.  When the send buffer is full it stops (no timer) until on_writable;
 * what it has not sent stays in the feed, never in the watcher.  If its cursor
 * has left the feed's window by then, or its send buffer stayed full longer
 * than WATCH_STALL_MS with changes waiting, it is resynchronised: RESET,
 * snapshot, SYNCED.
 */
#include "config.h"

#include "core/gx_svc_discovery.h"

#include <string.h>

#include "core/gx_reg.h"
#include "core/gx_svc_util.h"
#include "galaxy/pool/v1/pool.pb-c.h"
#include "transport/gx_call.h"
#include "util/gx_arena.h"
#include "util/gx_clock.h"
#include "util/gx_error.h"
#include "util/gx_stats.h"

typedef Galaxy__Pool__V1__GetNodeRequest get_node_req_t;
typedef Galaxy__Pool__V1__ListNodesRequest list_nodes_req_t;
typedef Galaxy__Pool__V1__ListNodesResponse list_nodes_resp_t;
typedef Galaxy__Pool__V1__WatchRequest watch_req_t;
typedef Galaxy__Pool__V1__WatchEvent watch_event_t;

static const gx_module_t *self;

#define PAGE_TOKEN_MAX ((GX_REG_NODE_ID_MAX + 2) / 3 * 4 + 1)

/* ------------------------------------------------------------------ GetNode */

/* validators: run by the dispatcher (gx_method_t.validate) before the ACCESS phase */
static int
validate_get_node_request(gx_call_t *call, const ProtobufCMessage *msg)
{
    const get_node_req_t *req = (const get_node_req_t *)msg;

    return gx_svc_validate_pool_node(call, req->pool, req->node_id);
}

static int
get_node_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    const get_node_req_t *req = (const get_node_req_t *)msg;
    gx_pb_node_t node;
    gx_reg_node_t *n;
    int rv;

    gx_reg_read_begin();
    if (gx_reg_pool_find(gx__reg, req->pool) == NULL) {
        rv = gx_call_fail(call, GX_STATUS_NOT_FOUND, GX_NO_POOL_FMT, "pool", req->pool);
    } else if ((n = gx_reg_node_find(gx__reg, req->pool, req->node_id)) == NULL) {
        rv = gx_call_fail(call, GX_STATUS_NOT_FOUND, "node_id: no node \"%s\" in pool \"%s\"",
                          req->node_id, req->pool);
    } else {
        gx_reg_node_fill(n, &node);
        rv = gx_call_reply(call, &node.base);
    }
    gx_reg_read_end();
    return rv;
}

/* ------------------------------------------------------------------ ListNodes */

/* the id a page token names (validated: a token this server made), or "" */
static void
page_after(const list_nodes_req_t *req, char *after)
{
    after[0] = '\0';
    if (req->page_token[0])
        gx_reg_page_token_decode(req->page_token, after, GX_REG_NODE_ID_MAX + 1);
}

static int
validate_list_nodes_request(gx_call_t *call, const ProtobufCMessage *msg)
{
    const list_nodes_req_t *req = (const list_nodes_req_t *)msg;
    char after[GX_REG_NODE_ID_MAX + 1];

    if (gx_svc_validate_pool_name(call, req->pool, "pool") != GX_OK)
        return GX_DONE;
    if (req->specialization[0] && !gx_reg_valid_spec(req->specialization))
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "specialization: must match "
                            "[a-z0-9-]{1,32}");
    if (gx_svc_validate_labels(call, req->n_labels, (const void *const *)req->labels,
                               "labels") != GX_OK)
        return GX_DONE;
    if (req->n_states > 8)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "states: at most 8");
    for (size_t i = 0; i < req->n_states; i++)
        if (req->states[i] < GALAXY__POOL__V1__NODE_STATE__NODE_STATE_HEALTHY ||
            req->states[i] > GALAXY__POOL__V1__NODE_STATE__NODE_STATE_DRAINING)
            return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "states[%zu]: %d is not a "
                                "node state", i, (int)req->states[i]);
    if (req->page_token[0] && (strlen(req->page_token) >= PAGE_TOKEN_MAX ||
                               gx_reg_page_token_decode(req->page_token, after,
                                                        GX_REG_NODE_ID_MAX + 1) != 0))
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "page_token: not a token this "
                            "server made");
    return GX_OK;
}

static int
has_label(const gx_pb_node_t *n, const char *key, const char *value)
{
    for (size_t i = 0; i < n->n_labels; i++)
        if (strcmp(n->labels[i]->key, key) == 0)
            return strcmp(n->labels[i]->value, value) == 0;
    return 0;
}

static int
has_spec(size_t n, char *const *specs, const char *spec)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(specs[i], spec) == 0)
            return 1;
    return 0;
}

/* @p n: the node's static part (gx_reg_node_info), @p state: its state now */
static int
matches(const list_nodes_req_t *req, const gx_pb_node_t *n, int state)
{
    int ok = req->n_states == 0;

    for (size_t i = 0; i < req->n_states && !ok; i++)
        ok = (int)req->states[i] == state;
    if (!ok)
        return 0;
    /* the index may lag a re-register that dropped the specialization */
    if (req->specialization[0] &&
        !has_spec(n->n_specializations, n->specializations, req->specialization))
        return 0;
    for (size_t i = 0; i < req->n_labels; i++)
        if (!has_label(n, req->labels[i]->key, req->labels[i]->value))
            return 0;
    return 1;
}

/* whether @p req asks only for states other than HEALTHY */
static int
unwell_only(const list_nodes_req_t *req)
{
    for (size_t i = 0; i < req->n_states; i++)
        if (req->states[i] == GALAXY__POOL__V1__NODE_STATE__NODE_STATE_HEALTHY)
            return 0;
    return req->n_states > 0;
}

/* fills the page inside the read bracket; @return GX_DONE (answered) */
static int
list_page(gx_call_t *call, const list_nodes_req_t *req, const gx_reg_pool_t *p,
          const char *after, size_t page)
{
    list_nodes_resp_t resp = GALAXY__POOL__V1__LIST_NODES_RESPONSE__INIT;
    gx_pb_node_t *nodes = gx_call_alloc(call, page * sizeof(*nodes));
    gx_pb_node_t **ptrs = gx_call_alloc(call, page * sizeof(*ptrs));
    char *token = gx_call_alloc(call, PAGE_TOKEN_MAX);
    const char **keys = gx_call_alloc(call, (req->n_labels + 1) * 2 * sizeof(*keys));
    gx_reg_node_t *const *v;
    gx_reg_cursor_t cur;
    size_t n, got = 0, seen = 0;

    if (nodes == NULL || ptrs == NULL || token == NULL || keys == NULL)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < req->n_labels; i++) {
        keys[i] = req->labels[i]->key;
        keys[req->n_labels + i] = req->labels[i]->value;
    }
    resp.revision = gx_reg_pool_revision(p);
    gx_reg_pool_cursor_filter(gx__reg, p, req->specialization, req->n_labels, keys,
                              keys + req->n_labels, unwell_only(req), after, &cur);
    while (resp.next_page_token[0] == '\0' && gx_reg_cursor_next(&cur, &v, &n)) {
        for (size_t i = 0; i < n; i++) {
            int state;
            seen++;
            if (!gx_reg_node_live(v[i]))
                continue;
            state = (int)gx_reg_node_state(v[i]);
            if (!matches(req, gx_reg_node_info(v[i]), state))
                continue;
            if (got == page) { /* one more matches: this page is not the last */
                gx_reg_page_token_encode(nodes[got - 1].id, token, PAGE_TOKEN_MAX);
                resp.next_page_token = token;
                break;
            }
            gx_reg_node_fill(v[i], &nodes[got]);
            nodes[got].state = (Galaxy__Pool__V1__NodeState)state; /* the state it matched in */
            ptrs[got] = &nodes[got];
            got++;
        }
    }
    gx_stats_add(LIST_NODES_SCANNED, seen);
    resp.n_nodes = got;
    resp.nodes = ptrs;
    return gx_call_reply(call, &resp.base);
}

static int
list_nodes_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    const list_nodes_req_t *req = (const list_nodes_req_t *)msg;
    char after[GX_REG_NODE_ID_MAX + 1];
    size_t page = req->page_size == 0 ? GX_REG_PAGE_DEFAULT
                  : req->page_size > GX_REG_PAGE_MAX ? GX_REG_PAGE_MAX : req->page_size;
    gx_reg_pool_t *p;
    int rv;

    page_after(req, after);
    gx_reg_read_begin();
    p = gx_reg_pool_find(gx__reg, req->pool);
    if (p == NULL)
        rv = gx_call_fail(call, GX_STATUS_NOT_FOUND, GX_NO_POOL_FMT, "pool", req->pool);
    else
        rv = list_page(call, req, p, after, page);
    gx_reg_read_end();
    return rv;
}

/* ------------------------------------------------------------------ Watch */

#define WATCH_POLL_US 5000   /* how often an idle watcher looks at its feed's head */
#define WATCH_BATCH 256      /* events (or snapshot nodes) per turn before yielding */
#define WATCH_STALL_MS 5000  /* a send buffer full this long: resynchronise */
#define WATCH_IDLE 1         /* a step's answer: caught up */

#define EV_UPSERT GALAXY__POOL__V1__WATCH_EVENT_TYPE__WATCH_EVENT_TYPE_UPSERT
#define EV_REMOVED GALAXY__POOL__V1__WATCH_EVENT_TYPE__WATCH_EVENT_TYPE_REMOVED
#define EV_SYNCED GALAXY__POOL__V1__WATCH_EVENT_TYPE__WATCH_EVENT_TYPE_SYNCED
#define EV_RESET GALAXY__POOL__V1__WATCH_EVENT_TYPE__WATCH_EVENT_TYPE_RESET

enum { W_SNAPSHOT, W_REPLAY, W_LIVE };

typedef struct {
    gx_call_t *call;
    gx_reg_feed_t *feed;       /* a reference; NULL once released */
    char pool[GX_REG_POOL_NAME_MAX + 1];
    char spec[GX_REG_SPEC_MAX + 1];
    int phase;
    int reset;                 /* snapshot: RESET goes first */
    uint64_t cursor;           /* replay, live: the last revision handled */
    uint64_t target;           /* snapshot, replay: SYNCED at this revision */
    char after[GX_REG_NODE_ID_MAX + 1]; /* snapshot: the last id looked at */
    uint64_t blocked_ms;       /* when the send buffer filled, 0 when not */
} watch_t;

static void watch_pump(watch_t *w);

static void
watch_release(watch_t *w)
{
    if (w != NULL && w->feed != NULL) {
        gx_reg_feed_release(w->feed);
        w->feed = NULL;
    }
}

static void
watch_cleanup(void *arg)
{
    watch_release(arg);
}

static int
watch_send(watch_t *w, int type, const gx_pb_node_t *node, uint64_t revision)
{
    watch_event_t ev = GALAXY__POOL__V1__WATCH_EVENT__INIT;

    ev.type = (Galaxy__Pool__V1__WatchEventType)type;
    ev.node = (gx_pb_node_t *)node; /* packed at once: only read */
    ev.revision = revision;
    return gx_call_send(w->call, &ev.base);
}

/* starts a snapshot as of the feed's head now (read before the index) */
static void
snapshot_begin(watch_t *w, int reset)
{
    w->phase = W_SNAPSHOT;
    w->reset = reset;
    w->target = gx_reg_feed_head(w->feed);
    w->after[0] = '\0';
}

static int
pool_gone(watch_t *w)
{
    return gx_call_fail(w->call, GX_STATUS_NOT_FOUND, "pool: \"%s\" was deleted", w->pool);
}

/* sends up to *budget nodes of the snapshot, then SYNCED; inside a read bracket */
static int
snapshot_step(watch_t *w, int *budget)
{
    gx_reg_pool_t *p = gx_reg_pool_find(gx__reg, w->pool);
    gx_reg_node_t *const *v;
    gx_reg_cursor_t c;
    size_t n;
    int rv;

    if (p == NULL || !gx_reg_pool_has_feed(p, w->feed))
        return pool_gone(w);
    if (w->reset) {
        w->reset = 0;
        rv = watch_send(w, EV_RESET, NULL, w->target);
        if (rv != 0)
            return rv;
    }
    gx_reg_pool_cursor(p, w->spec, w->after, &c);
    while (gx_reg_cursor_next(&c, &v, &n)) {
        for (size_t i = 0; i < n; i++) {
            gx_pb_node_t cur;
            if (!gx_reg_node_live(v[i]))
                continue;
            if (*budget == 0)
                return 0; /* the rest in the next step */
            (*budget)--;
            strcpy(w->after, gx_reg_node_id(v[i]));
            gx_reg_node_fill(v[i], &cur);
            if (w->spec[0] && !has_spec(cur.n_specializations, cur.specializations, w->spec))
                continue;
            rv = watch_send(w, EV_UPSERT, &cur, cur.revision);
            if (rv != 0)
                return rv;
        }
    }
    w->phase = W_LIVE;
    w->cursor = w->target;
    return watch_send(w, EV_SYNCED, NULL, w->target);
}

/* one change of the feed, through the specialization filter */
static int
deliver(watch_t *w, const gx_reg_event_t *ev)
{
    if (ev->type == 0) /* a change of the pool itself */
        return 0;
    if (w->spec[0] && !has_spec(ev->node->n_specializations, ev->node->specializations,
                                w->spec)) {
        /* a node that leaves the filter is gone for this watcher */
        if (ev->type == EV_UPSERT && has_spec(ev->n_old_specs, ev->old_specs, w->spec))
            return watch_send(w, EV_REMOVED, ev->node, ev->revision);
        return 0;
    }
    return watch_send(w, ev->type, ev->node, ev->revision);
}

/* replays or follows the feed, up to *budget changes; inside a read bracket */
static int
feed_step(watch_t *w, int *budget)
{
    uint64_t head = gx_reg_feed_head(w->feed);
    gx_reg_event_t ev;
    int rv;

    if (w->phase == W_REPLAY && w->cursor >= w->target) {
        w->phase = W_LIVE;
        return watch_send(w, EV_SYNCED, NULL, w->cursor);
    }
    if (w->cursor >= head) {
        if (!gx_reg_feed_dead(w->feed))
            return WATCH_IDLE;
        /* the pool was deleted: its last changes (removals) first, then the end */
        return w->cursor >= gx_reg_feed_head(w->feed) ? pool_gone(w) : 0;
    }
    for (; w->cursor < head && *budget > 0; (*budget)--) {
        if (gx_reg_feed_get(w->feed, w->cursor + 1, &ev) != 0) {
            snapshot_begin(w, 1); /* fell behind the window */
            return 0;
        }
        w->cursor++;
        rv = deliver(w, &ev);
        if (rv != 0)
            return rv;
        if (w->phase == W_REPLAY && w->cursor >= w->target)
            return 0;
    }
    return 0;
}

static void
watch_tick(gx_call_t *call, void *arg)
{
    watch_pump(arg);
}

/* sends what there is to send, then waits: timer, or on_writable */
static void
watch_pump(watch_t *w)
{
    int budget = WATCH_BATCH, rv = 0;

    if (w->feed == NULL || gx_call_is_done(w->call))
        return;
    if (w->phase == W_LIVE && w->cursor == gx_reg_feed_head(w->feed) &&
        !gx_reg_feed_dead(w->feed)) { /* idle: the common case, one atomic load */
        gx_call_timer(w->call, WATCH_POLL_US, watch_tick, w);
        return;
    }
    gx_reg_read_begin();
    while (rv == 0 && budget > 0)
        rv = w->phase == W_SNAPSHOT ? snapshot_step(w, &budget) : feed_step(w, &budget);
    gx_reg_read_end();
    if (rv == GX_AGAIN) {
        w->blocked_ms = gx_now_ms();
        return;
    }
    if (rv == GX_DONE || rv < 0 || gx_call_is_done(w->call)) {
        if (!gx_call_is_done(w->call))
            gx_call_fail(w->call, rv < 0 ? gx_error_to_status(rv) : GX_STATUS_INTERNAL,
                         "cannot send a watch event%s%s", rv < 0 ? ": " : "",
                         rv < 0 ? gx_strerror(rv) : "");
        watch_release(w);
        return;
    }
    /* caught up: poll; budget used up: yield the worker and go on at once */
    gx_call_timer(w->call, rv == WATCH_IDLE ? WATCH_POLL_US : 0, watch_tick, w);
}

static int
validate_watch_request(gx_call_t *call, const ProtobufCMessage *msg)
{
    const watch_req_t *req = (const watch_req_t *)msg;

    if (gx_svc_validate_pool_name(call, req->pool, "pool") != GX_OK)
        return GX_DONE;
    if (req->specialization[0] && !gx_reg_valid_spec(req->specialization))
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "specialization: must match "
                            "[a-z0-9-]{1,32}");
    return GX_OK;
}

static watch_t *
watch_new(gx_call_t *call, const watch_req_t *req)
{
    watch_t *w = gx_call_alloc(call, sizeof(*w));

    if (w == NULL)
        return NULL;
    memset(w, 0, sizeof(*w));
    w->call = call;
    strcpy(w->pool, req->pool);
    strcpy(w->spec, req->specialization);
    if (gx_arena_cleanup_add(call->arena, watch_cleanup, w) != 0)
        return NULL;
    gx_call_set_ctx(call, self, w);
    return w;
}

static int
watch_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    const watch_req_t *req = (const watch_req_t *)msg;
    watch_t *w;
    gx_reg_pool_t *p;

    w = watch_new(call, req);
    if (w == NULL)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    gx_reg_read_begin();
    p = gx_reg_pool_find(gx__reg, req->pool);
    if (p != NULL)
        w->feed = gx_reg_pool_feed(p);
    gx_reg_read_end();
    if (w->feed == NULL)
        return gx_call_fail(call, GX_STATUS_NOT_FOUND, GX_NO_POOL_FMT, "pool", req->pool);
    if (req->start_revision == 0) {
        snapshot_begin(w, 0);
    } else if (gx_reg_feed_covers(w->feed, req->start_revision)) {
        w->phase = W_REPLAY;
        w->cursor = req->start_revision;
        w->target = gx_reg_feed_head(w->feed);
    } else { /* too old, from the future, or from before a restart */
        snapshot_begin(w, 1);
    }
    watch_pump(w);
    return gx_call_is_done(call) ? GX_DONE : GX_AGAIN;
}

static void
watch_on_cancel(gx_call_t *call, void *ctx)
{
    watch_release(gx_call_ctx(call, self));
}

static void
watch_on_writable(gx_call_t *call, void *ctx)
{
    watch_t *w = gx_call_ctx(call, self);

    if (w == NULL || w->feed == NULL)
        return;
    if (w->blocked_ms != 0 && gx_now_ms() - w->blocked_ms > WATCH_STALL_MS &&
        w->phase != W_SNAPSHOT && w->cursor < gx_reg_feed_head(w->feed))
        snapshot_begin(w, 1); /* it cannot keep up: a snapshot, not the backlog */
    w->blocked_ms = 0;
    watch_pump(w);
}

/* ------------------------------------------------------------------ module */

static int
discovery_init(gx_module_t *mod, const gx_mod_conf_t *conf, void **ctx)
{
    self = mod;
    *ctx = NULL;
    return 0;
}

static const char *
get_node_pool(const ProtobufCMessage *msg, const char **field)
{
    *field = "pool";
    return ((const Galaxy__Pool__V1__GetNodeRequest *)msg)->pool;
}

static const char *
list_nodes_pool(const ProtobufCMessage *msg, const char **field)
{
    *field = "pool";
    return ((const Galaxy__Pool__V1__ListNodesRequest *)msg)->pool;
}

static const char *
watch_pool(const ProtobufCMessage *msg, const char **field)
{
    *field = "pool";
    return ((const Galaxy__Pool__V1__WatchRequest *)msg)->pool;
}

static const gx_method_t discovery_methods[] = {
    {.name = "GetNode", .kind = GX_RPC_UNARY, .start = get_node_start,
     .access = GX_ACCESS_DISCOVER, .pool_of = get_node_pool,
     .validate = validate_get_node_request},
    {.name = "ListNodes", .kind = GX_RPC_UNARY, .start = list_nodes_start,
     .access = GX_ACCESS_DISCOVER, .pool_of = list_nodes_pool,
     .validate = validate_list_nodes_request},
    {.name = "Watch", .kind = GX_RPC_SERVER_STREAMING, .start = watch_start,
     .on_cancel = watch_on_cancel, .on_writable = watch_on_writable,
     .access = GX_ACCESS_DISCOVER, .pool_of = watch_pool, .validate = validate_watch_request},
    {.name = NULL},
};

static const gx_service_t discovery_service = {
    .desc = &galaxy__pool__v1__discovery__descriptor,
    .methods = discovery_methods,
};

static const gx_service_t *const discovery_services[] = {&discovery_service, NULL};

const gx_module_desc_t gx_svc_discovery_module = {
    .abi = GX_MODULE_ABI,
    .name = "discovery",
    .version = PACKAGE_VERSION,
    .edition = "community",
    .init = discovery_init,
    .services = discovery_services,
};
