/* SPDX-License-Identifier: MIT */
/*
 * The dispatcher: what happens to a call between the transport and a
 * method's handler.
 *
 *  - on_call routes the path to a method (UNIMPLEMENTED when none serves it).
 *  - Unary and server-streaming calls collect their one request message,
 *    decode it into call memory and, at half-close, walk the chain.
 *    Client and bidi streaming calls walk the chain at once, with request
 *    messages held back (and the peer with them, by flow control) until the
 *    handler has started.
 *  - The walk goes POST_READ → … → HANDLER over the flattened steps of
 *    gx_mod.c: OK jumps to the next phase, DECLINED to the next step, DONE
 *    ends the walk, AGAIN parks the call (holding a reference) until
 *    gx_call_resume() continues it on its worker.
 *  - on_close runs the LOG phase for every call, writes its access-log line
 *    and counts it per method and status in the worker's own block.
 */
#include "config.h"

#include "core/gx_phase.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/gx_access_log.h"
#include "core/gx_pbwire.h"
#include "core/gx_reg.h"
#include "transport/gx_call.h"
#include "transport/gx_grpc.h"
#include "util/gx_error.h"
#include "util/gx_log.h"

static struct {
    const gx_mods_t *mods;
    gx_server_t *srv;
    unsigned workers;
    size_t rows;       /* routes + 1 (unknown) */
    uint64_t *calls;   /* [worker][row][status] */
} P;

static int
takes_stream(const gx_route_t *r)
{
    return r->m->kind == GX_RPC_CLIENT_STREAMING || r->m->kind == GX_RPC_BIDI_STREAMING;
}

/* ------------------------------------------------------------------ accessors */

const gx_service_t *
gx_call_service(const gx_call_t *call)
{
    const gx_route_t *r = call->core.method;

    return r != NULL ? r->svc : NULL;
}

void *
gx_call_ctx(const gx_call_t *call, const gx_module_t *mod)
{
    return call->core.mod_ctx != NULL ? call->core.mod_ctx[mod->index] : NULL;
}

void
gx_call_set_ctx(gx_call_t *call, const gx_module_t *mod, void *ctx)
{
    if (call->core.mod_ctx == NULL) {
        call->core.mod_ctx = gx_arena_calloc(call->arena, P.mods->n_mods * sizeof(void *));
        if (call->core.mod_ctx == NULL)
            return;
    }
    call->core.mod_ctx[mod->index] = ctx;
}

const char *
gx_call_identity(const gx_call_t *call)
{
    return call->core.identity != NULL ? call->core.identity : "";
}

void
gx_call_set_identity(gx_call_t *call, const char *identity)
{
    call->core.identity = identity ? gx_arena_strndup(call->arena, identity, strlen(identity))
                                   : NULL;
}

/* ------------------------------------------------------------------ the walk */

static void
handler_cancel(gx_call_t *call)
{
    const gx_route_t *r = call->core.method;

    if (r == NULL || !call->core.started || call->core.cancel_sent)
        return;
    call->core.cancel_sent = 1;
    if (r->m->on_cancel != NULL)
        r->m->on_cancel(call, r->mod->ctx);
}

static void
handler_start(gx_call_t *call)
{
    const gx_route_t *r = call->core.method;
    int rc;

    call->core.started = 1;
    rc = r->m->start(call, call->core.req, r->mod->ctx);
    if (rc == GX_DONE && !gx_call_is_done(call))
        gx_call_fail(call, GX_STATUS_INTERNAL, "handler of %s returned without an answer",
                     r->path);
    else if (rc < 0 && !gx_call_is_done(call))
        gx_call_fail(call, gx_error_to_status(rc), "%s", gx_strerror(rc));
    if (takes_stream(r) && !gx_call_is_done(call))
        gx__call_recv_pause(call, 0);
}

static int
fail_undecodable(gx_call_t *call)
{
    const gx_route_t *r = call->core.method;

    if (call->core.bad_why != NULL)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "request does not decode as %s: "
                            "%s%s%s", r->pd->input->name, call->core.bad_field ?: "",
                            call->core.bad_field != NULL ? ": " : "", call->core.bad_why);
    return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "request does not decode as %s",
                        r->pd->input->name);
}

static void
park(gx_call_t *call, unsigned next)
{
    call->core.parked = 1;
    call->core.phase = (int)next;
    gx__call_ref(call);
}

static void
chain_run(gx_call_t *call, unsigned i)
{
    const gx_step_t *steps = P.mods->steps;
    int rc;

    while (i < P.mods->log_first) {
        const gx_step_t *st = &steps[i];
        if (!call->core.validated && st->phase >= GX_PHASE_ACCESS) {
            /* the request on its own, once the caller is known and before any access rule */
            const gx_route_t *r = call->core.method;
            call->core.validated = 1;
            if (call->core.undecodable) {
                fail_undecodable(call);
                return;
            }
            if (r->m->validate != NULL && call->core.req != NULL &&
                r->m->validate(call, call->core.req) != GX_OK)
                return;
        }
        if (st->fn == NULL) {
            handler_start(call);
            return;
        }
        rc = st->fn(call, st->mod->ctx);
        if (gx_call_is_done(call))
            return;
        switch (rc) {
        case GX_OK:
            i = st->phase == GX_PHASE_HANDLER ? i + 1 : st->next;
            break;
        case GX_DECLINED:
            i++;
            break;
        case GX_AGAIN:
            park(call, st->phase == GX_PHASE_HANDLER ? i + 1 : st->next);
            return;
        case GX_DONE:
            gx_call_fail(call, GX_STATUS_INTERNAL, "module %s ended the call without a status",
                         st->mod->desc->name);
            return;
        default:
            gx_call_fail(call, rc < 0 ? gx_error_to_status(rc) : GX_STATUS_INTERNAL,
                         "module %s failed: %s", st->mod->desc->name, gx_strerror(rc));
            return;
        }
    }
}

/* ------------------------------------------------------------------ dispatcher */

static void
on_call(gx_call_t *call, void *arg)
{
    const gx_route_t *r = gx_mods_route(P.mods, call->path);

    if (r == NULL) {
        gx_call_fail(call, GX_STATUS_UNIMPLEMENTED, "unknown method %s", call->path);
        return;
    }
    call->core.method = r;
    call->core.method_index = r->index;
    call->core.kind = (uint8_t)r->m->kind;
    if (takes_stream(r)) {
        gx__call_recv_pause(call, 1);
        chain_run(call, 0);
    }
}

static const ProtobufCMessage *
decode(gx_call_t *call, const uint8_t *data, size_t len, ProtobufCAllocator *alloc)
{
    const gx_route_t *r = call->core.method;

    if (r->input_check &&
        (call->core.bad_why = gx_pbwire_check(r->pd->input, data, len, &call->core.bad_field)))
        return NULL;
    return protobuf_c_message_unpack(r->pd->input, alloc, len, data);
}

static void
on_message(gx_call_t *call, const uint8_t *data, size_t len, void *arg)
{
    const gx_route_t *r = call->core.method;
    ProtobufCAllocator alloc;
    const ProtobufCMessage *msg;
    gx_arena_t *scratch;

    if (r == NULL || gx_call_is_done(call))
        return;
    if (!takes_stream(r)) {
        if (call->core.req != NULL || call->core.undecodable) {
            gx_call_fail(call, GX_STATUS_INTERNAL, "more than one request message for %s",
                         r->path);
            return;
        }
        gx_arena_pb_allocator(call->arena, &alloc);
        call->core.req = decode(call, data, len, &alloc);
        /* refused once the caller is known: a bad credential is answered as such first */
        call->core.undecodable = call->core.req == NULL;
        return;
    }
    /*
     * Stream messages come and go: each is decoded into a scratch arena that
     * goes after the callback (arenas are recycled per thread, so a stream of
     * small messages costs no malloc per message).
     */
    scratch = gx_arena_new(4096); /* one size, so that the thread's cache serves it */
    if (scratch == NULL) {
        gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    gx_arena_pb_allocator(scratch, &alloc);
    msg = decode(call, data, len, &alloc);
    if (msg == NULL)
        fail_undecodable(call);
    else if (r->m->validate == NULL || r->m->validate(call, msg) == GX_OK)
        r->m->on_message(call, msg, r->mod->ctx);
    gx_arena_free(scratch);
}

static void
on_half_close(gx_call_t *call, void *arg)
{
    const gx_route_t *r = call->core.method;

    if (r == NULL || gx_call_is_done(call))
        return;
    if (!takes_stream(r)) {
        if (call->core.req == NULL && !call->core.undecodable) {
            gx_call_fail(call, GX_STATUS_INTERNAL, "no request message for %s", r->path);
            return;
        }
        chain_run(call, 0);
        return;
    }
    if (r->m->on_half_close != NULL)
        r->m->on_half_close(call, r->mod->ctx);
}

static void
on_writable(gx_call_t *call, void *arg)
{
    const gx_route_t *r = call->core.method;

    if (r != NULL && call->core.started && r->m->on_writable != NULL && !gx_call_is_done(call))
        r->m->on_writable(call, r->mod->ctx);
}

static void
on_resume(gx_call_t *call, void *arg)
{
    if (!call->core.parked)
        return;
    call->core.parked = 0;
    if (!gx_call_is_done(call)) {
        if (takes_stream(call->core.method) || call->core.req != NULL ||
            call->core.undecodable)
            chain_run(call, (unsigned)call->core.phase);
    }
    gx__call_unref(call);
}

static void
on_cancel(gx_call_t *call, void *arg)
{
    handler_cancel(call);
}

static void
on_drain(gx_call_t *call, void *arg)
{
    const gx_route_t *r = call->core.method;

    if (r == NULL || !call->core.started || gx_call_is_done(call))
        return;
    if (r->m->on_drain != NULL) {
        r->m->on_drain(call, r->mod->ctx);
    } else if (r->m->kind != GX_RPC_UNARY) {
        handler_cancel(call);
        gx_call_finish(call, GX_STATUS_UNAVAILABLE, "server is shutting down");
    }
}

static void
count(gx_call_t *call)
{
    size_t row = call->core.method != NULL ? call->core.method_index : P.rows - 1;
    uint64_t *c = &P.calls[(call->worker * P.rows + row) * GX_STATUS_MAX +
                           (call->status < GX_STATUS_MAX ? call->status : GX_STATUS_UNKNOWN)];

    /* only this worker writes the slot; readers load it atomically */
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

static void
on_close(gx_call_t *call, void *arg)
{
    const gx_step_t *steps = P.mods->steps;
    gx_access_entry_t e;

    for (size_t i = P.mods->log_first; i < P.mods->n_steps; i++)
        steps[i].fn(call, steps[i].mod->ctx);
    count(call);
    e.method = gx_call_method(call)[0] ? gx_call_method(call) : "-";
    e.status = gx_grpc_status_name(call->status);
    e.code = (unsigned)call->status;
    e.duration_us = (gx_now_ns() - call->start_ns) / 1000;
    e.peer = gx_call_peer(call);
    e.identity = gx_call_identity(call);
    gx_access_log_call(call->worker, &e);
}

static void
on_tick(unsigned worker, int final, void *arg)
{
    gx_access_log_flush(worker);
    if (final)
        gx_reg_thread_offline();
}

static void
on_reopen(void *arg)
{
    gx_access_log_reopen();
}

static const gx_dispatch_t dispatch = {
    .on_call = on_call,
    .on_message = on_message,
    .on_half_close = on_half_close,
    .on_writable = on_writable,
    .on_resume = on_resume,
    .on_cancel = on_cancel,
    .on_drain = on_drain,
    .on_close = on_close,
    .on_tick = on_tick,
    .on_reopen = on_reopen,
};

/* ------------------------------------------------------------------ set-up */

int
gx_phase_init(const gx_mods_t *mods, unsigned workers, const char *access_log)
{
    P.mods = mods;
    P.workers = workers;
    P.rows = mods->n_routes + 1;
    P.calls = calloc(workers * P.rows * GX_STATUS_MAX, sizeof(*P.calls));
    if (P.calls == NULL)
        return GX_ENOMEM;
    return gx_access_log_open(access_log, workers);
}

const gx_dispatch_t *
gx_phase_dispatch(void)
{
    return &dispatch;
}

void
gx_phase_set_server(gx_server_t *srv)
{
    P.srv = srv;
}

int
gx_phase_draining(void)
{
    return P.srv != NULL && gx_server_draining(P.srv);
}

void
gx_phase_metrics(void *out)
{
    struct evbuffer *buf = out;

    evbuffer_add_printf(buf, "# HELP galaxy_grpc_calls_total gRPC calls by method and status.\n"
                             "# TYPE galaxy_grpc_calls_total counter\n");
    for (size_t row = 0; row < P.rows; row++) {
        const char *name = row < P.mods->n_routes ? P.mods->routes[row].path : "unknown";
        for (unsigned st = 0; st < GX_STATUS_MAX; st++) {
            uint64_t sum = 0;
            for (unsigned w = 0; w < P.workers; w++)
                sum += __atomic_load_n(&P.calls[(w * P.rows + row) * GX_STATUS_MAX + st],
                                       __ATOMIC_RELAXED);
            if (sum > 0 || (row < P.mods->n_routes && st == GX_STATUS_OK))
                evbuffer_add_printf(buf, "galaxy_grpc_calls_total{method=\"%s\",code=\"%s\"} "
                                    "%llu\n", name, gx_grpc_status_name(st),
                                    (unsigned long long)sum);
        }
    }
}

void
gx_phase_deinit(void)
{
    gx_access_log_close();
    free(P.calls);
    memset(&P, 0, sizeof(P));
}
