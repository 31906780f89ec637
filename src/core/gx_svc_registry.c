/* SPDX-License-Identifier: MIT */
/*
 * galaxy.pool.v1.NodeRegistry, served by a built-in module: Register,
 * Heartbeat, HeartbeatStream, Deregister and Drain over the registry
 * (core/gx_reg.h).
 *
 * Writes are acknowledged only once durable.  A method's start() cannot park
 * a unary call (the dispatcher keeps no reference on it), so the writes run
 * in a HANDLER-phase hook of this module that comes before the method: it
 * validates, submits to the registry and returns GX_AGAIN, which parks the
 * call with a reference; the registry's keeper applies the committed change
 * and calls gx_call_resume(); the chain then reaches the method's start(),
 * which answers from what the hook left in the call's slot.
 *
 * Heartbeats touch only atomics of the node: no store write, no lock.
 */
#include "config.h"

#include "core/gx_svc_registry.h"

#include <math.h>
#include <string.h>

#include "core/gx_jobs.h"
#include "core/gx_reg.h"
#include "core/gx_svc_util.h"
#include "galaxy/pool/v1/pool.pb-c.h"
#include "transport/gx_call.h"
#include "transport/gx_grpc.h"
#include "util/gx_error.h"

typedef Galaxy__Pool__V1__RegisterRequest register_req_t;
typedef Galaxy__Pool__V1__HeartbeatRequest heartbeat_req_t;
typedef Galaxy__Pool__V1__DeregisterRequest deregister_req_t;
typedef Galaxy__Pool__V1__DrainRequest drain_req_t;

#define SVC "/galaxy.pool.v1.NodeRegistry/"
/* field numbers of API.md, which never change */
#define REGISTER_RESPONSE_NODE 1 /* RegisterResponse.node */
#define NODE_REVISION 13         /* Node.revision */
static const gx_service_t registry_service; /* defined at the end, with its table */

static const gx_module_t *self;

/* ------------------------------------------------------------------ validation */

/* The dispatcher runs these (gx_method_t.validate) before the ACCESS phase. */

static int
validate_register_request(gx_call_t *call, const ProtobufCMessage *msg)
{
    const register_req_t *req = (const register_req_t *)msg;

    if (req->node == NULL)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "node: required");
    if (gx_svc_validate_node(call, req->node, "node.") != GX_OK)
        return GX_DONE;
    if (req->lease_token[0] && !gx_reg_valid_token(req->lease_token, GX_REG_TOKEN_MAX))
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "lease_token: malformed");
    return GX_OK;
}

static int
validate_lease(gx_call_t *call, const char *pool, const char *id, const char *token)
{
    if (gx_svc_validate_pool_node(call, pool, id) != GX_OK)
        return GX_DONE;
    if (!gx_reg_valid_token(token, GX_REG_TOKEN_MAX))
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "lease_token: required (1 to %d "
                            "printable characters)", GX_REG_TOKEN_MAX);
    return GX_OK;
}

static int
validate_heartbeat_request(gx_call_t *call, const ProtobufCMessage *msg)
{
    const heartbeat_req_t *req = (const heartbeat_req_t *)msg;

    if (validate_lease(call, req->pool, req->node_id, req->lease_token) != GX_OK)
        return GX_DONE;
    if (!isfinite(req->load) || req->load < 0 || req->load > 1)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "load: must be from 0 to 1");
    return GX_OK;
}

static int
validate_deregister_request(gx_call_t *call, const ProtobufCMessage *msg)
{
    const deregister_req_t *req = (const deregister_req_t *)msg;

    return validate_lease(call, req->pool, req->node_id, req->lease_token);
}

static int
validate_drain_request(gx_call_t *call, const ProtobufCMessage *msg)
{
    const drain_req_t *req = (const drain_req_t *)msg;

    return gx_svc_validate_pool_node(call, req->pool, req->node_id);
}

/* ------------------------------------------------------------------ writes (hook) */

typedef struct {
    gx_svc_write_t w;
    gx_pb_node_t *node;     /* Drain's answer */
    const uint8_t *packed;  /* Register's: the node as stored, serialized */
    size_t packed_len;
    char *token;
    uint32_t interval, ttl;
} reg_write_t;

static int
register_submit(gx_call_t *call, const register_req_t *req, reg_write_t *rw, gx_reg_why_t *why)
{
    return gx_reg_node_register_submit(gx__reg, call, req->node, req->lease_token,
                                       gx_call_identity(call), &rw->w.op, &rw->packed,
                                       &rw->packed_len, &rw->token, &rw->interval, &rw->ttl, why);
}

static int
deregister_submit(gx_call_t *call, const deregister_req_t *req, reg_write_t *rw,
                  gx_reg_why_t *why)
{
    return gx_reg_node_deregister_submit(gx__reg, req->pool, req->node_id, req->lease_token,
                                         &rw->w.op, why);
}

static int
drain_submit(gx_call_t *call, const drain_req_t *req, reg_write_t *rw, gx_reg_why_t *why)
{
    return gx_reg_node_drain_submit(gx__reg, call, req->pool, req->node_id, &rw->w.op,
                                    &rw->node, why);
}

static int
write_hook(gx_call_t *call, void *ctx)
{
    const char *m = gx_call_method(call);
    const ProtobufCMessage *req;
    gx_reg_why_t why;
    reg_write_t *rw;
    int rv;

    if (gx_call_service(call) != &registry_service)
        return GX_DECLINED;
    m += sizeof(SVC) - 1;
    /* Heartbeat, the hot one, leaves at the first byte */
    if ((m[0] != 'R' || strcmp(m, "Register") != 0) &&
        (m[0] != 'D' || (strcmp(m, "Deregister") != 0 && strcmp(m, "Drain") != 0)))
        return GX_DECLINED;
    req = gx_svc_request(call);
    rw = gx_svc_write_new(call, self, sizeof(*rw));
    if (req == NULL || rw == NULL)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    if (m[0] == 'R')
        rv = register_submit(call, (const register_req_t *)req, rw, &why);
    else if (m[0] == 'D' && m[1] == 'e')
        rv = deregister_submit(call, (const deregister_req_t *)req, rw, &why);
    else
        rv = drain_submit(call, (const drain_req_t *)req, rw, &why);
    return gx_svc_write_park(call, rv, &why);
}

/* ------------------------------------------------------------------ answers */

static int
register_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    Galaxy__Pool__V1__RegisterResponse resp = GALAXY__POOL__V1__REGISTER_RESPONSE__INIT;
    reg_write_t *rw = (reg_write_t *)gx_svc_write_result(call, self);
    uint8_t rev[11];
    struct iovec node[2];

    if (rw == NULL)
        return GX_DONE;
    if (rw->packed == NULL)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    /*
     * The node is answered as it was stored, from the bytes packed for the
     * store (packing it again was a tenth of a Register's CPU), followed by
     * the revision its commit gave it: a field that comes later wins.
     */
    rev[0] = NODE_REVISION << 3; /* wire type 0, a varint */
    node[0] = (struct iovec){(void *)rw->packed, rw->packed_len};
    node[1] = (struct iovec){rev, 1 + gx_grpc_varint_put(rev + 1, rw->w.op.revision)};
    resp.lease_token = rw->token;
    resp.heartbeat_interval_ms = rw->interval;
    resp.ttl_ms = rw->ttl;
    return gx__call_reply_packed(call, &resp.base, REGISTER_RESPONSE_NODE, node, 2);
}

static int
deregister_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    Galaxy__Pool__V1__DeregisterResponse resp = GALAXY__POOL__V1__DEREGISTER_RESPONSE__INIT;

    if (gx_svc_write_result(call, self) == NULL)
        return GX_DONE;
    return gx_call_reply(call, &resp.base);
}

static int
drain_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    reg_write_t *rw = (reg_write_t *)gx_svc_write_result(call, self);

    if (rw == NULL)
        return GX_DONE;
    rw->node->revision = rw->w.op.revision;
    return gx_call_reply(call, &rw->node->base);
}

/* ------------------------------------------------------------------ heartbeats */

/* @return GX_OK with @p resp filled, or GX_DONE when the call failed */
static int
heartbeat(gx_call_t *call, const heartbeat_req_t *req, Galaxy__Pool__V1__HeartbeatResponse *resp)
{
    Galaxy__Pool__V1__NodeState st;
    uint32_t interval;
    uint64_t rev;
    int rv;

    gx_reg_read_begin();
    rv = gx_reg_node_heartbeat(gx__reg, req->pool, req->node_id, req->lease_token, req->load,
                               req->running_jobs, &st, &interval, &rev);
    gx_reg_read_end();
    if (rv == GX_ENOTFOUND && gx_pool_visibility(req->pool) == GX_POOL_NONE)
        return gx_call_fail(call, GX_STATUS_NOT_FOUND, GX_NO_POOL_FMT, "pool", req->pool);
    if (rv == GX_ENOTFOUND)
        return gx_call_fail(call, GX_STATUS_NOT_FOUND, "node_id: no node \"%s\" in pool \"%s\"",
                            req->node_id, req->pool);
    if (rv == GX_EDENIED)
        return gx_call_fail(call, GX_STATUS_PERMISSION_DENIED, "lease_token: not the lease of "
                            "node \"%s\"", req->node_id);
    resp->state = st;
    resp->heartbeat_interval_ms = interval;
    resp->revision = rev;
    gx_jobs_heartbeat(call, req->pool, req->node_id, resp);
    return GX_OK;
}

static int
heartbeat_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    Galaxy__Pool__V1__HeartbeatResponse resp = GALAXY__POOL__V1__HEARTBEAT_RESPONSE__INIT;

    if (heartbeat(call, (const heartbeat_req_t *)msg, &resp) != GX_OK)
        return GX_DONE;
    return gx_call_reply(call, &resp.base);
}

static int
stream_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    return GX_AGAIN;
}

/* each message of a stream may name another pool: the access rules see each one */
static void
stream_message(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    Galaxy__Pool__V1__HeartbeatResponse resp = GALAXY__POOL__V1__HEARTBEAT_RESPONSE__INIT;
    const heartbeat_req_t *req = (const heartbeat_req_t *)msg;
    gx_status_t st = req->pool[0] ? gx_call_check_access(call, GX_ACCESS_NODE, req->pool)
                                  : GX_STATUS_OK;

    if (st != GX_STATUS_OK) {
        gx_call_fail_access(call, st, GX_ACCESS_NODE, req->pool, "pool");
        return;
    }
    if (heartbeat(call, req, &resp) != GX_OK)
        return; /* the call is finished with that status */
    /* jobs routed to the node from now on are pushed on this stream */
    gx_call_set_ctx(call, self, gx_jobs_stream_bind(call, gx_call_ctx(call, self), req->pool,
                                                    req->node_id));
    if (gx_call_send(call, &resp.base) < 0 && !gx_call_is_done(call))
        gx_call_finish(call, GX_STATUS_INTERNAL, "cannot send the heartbeat response");
}

static void
stream_half_close(gx_call_t *call, void *ctx)
{
    gx_call_finish(call, GX_STATUS_OK, NULL);
}

/* the end of a HeartbeatStream: no more pushes to it */
static int
log_hook(gx_call_t *call, void *ctx)
{
    void *s = gx_call_ctx(call, self);

    if (s != NULL && gx_call_service(call) == &registry_service &&
        strcmp(gx_call_method(call), SVC "HeartbeatStream") == 0)
        gx_jobs_stream_end(s);
    return GX_OK;
}

/* ------------------------------------------------------------------ module */

static const char *
register_pool(const ProtobufCMessage *msg, const char **field)
{
    const register_req_t *r = (const register_req_t *)msg;

    *field = "pool";
    return r->node != NULL ? r->node->pool : NULL;
}

static const char *
heartbeat_pool(const ProtobufCMessage *msg, const char **field)
{
    *field = "pool";
    return ((const heartbeat_req_t *)msg)->pool;
}

static const char *
deregister_pool(const ProtobufCMessage *msg, const char **field)
{
    *field = "pool";
    return ((const deregister_req_t *)msg)->pool;
}

static const char *
drain_pool(const ProtobufCMessage *msg, const char **field)
{
    *field = "pool";
    return ((const drain_req_t *)msg)->pool;
}

static int
registry_init(gx_module_t *mod, const gx_mod_conf_t *conf, void **ctx)
{
    self = mod;
    *ctx = NULL;
    return 0;
}

static const gx_method_t registry_methods[] = {
    {.name = "Register", .kind = GX_RPC_UNARY, .start = register_start,
     .access = GX_ACCESS_NODE, .pool_of = register_pool, .validate = validate_register_request},
    {.name = "Heartbeat", .kind = GX_RPC_UNARY, .start = heartbeat_start,
     .access = GX_ACCESS_NODE, .pool_of = heartbeat_pool,
     .validate = validate_heartbeat_request},
    {.name = "HeartbeatStream", .kind = GX_RPC_BIDI_STREAMING, .start = stream_start,
     .on_message = stream_message, .on_half_close = stream_half_close,
     .access = GX_ACCESS_NODE, .validate = validate_heartbeat_request},
    {.name = "Deregister", .kind = GX_RPC_UNARY, .start = deregister_start,
     .access = GX_ACCESS_NODE, .pool_of = deregister_pool,
     .validate = validate_deregister_request},
    {.name = "Drain", .kind = GX_RPC_UNARY, .start = drain_start,
     .access = GX_ACCESS_OPERATE, .pool_of = drain_pool, .validate = validate_drain_request},
    {.name = NULL},
};

static const gx_service_t registry_service = {
    .desc = &galaxy__pool__v1__node_registry__descriptor,
    .methods = registry_methods,
};

static const gx_service_t *const registry_services[] = {&registry_service, NULL};

static const gx_hook_t registry_hooks[] = {
    {.phase = GX_PHASE_HANDLER, .fn = write_hook, .order = 1000},
    {.phase = GX_PHASE_LOG, .fn = log_hook, .order = 1000},
    {.fn = NULL},
};

const gx_module_desc_t gx_svc_registry_module = {
    .abi = GX_MODULE_ABI,
    .name = "registry",
    .version = PACKAGE_VERSION,
    .edition = "community",
    .init = registry_init,
    .hooks = registry_hooks,
    .services = registry_services,
};
