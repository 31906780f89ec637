/* SPDX-License-Identifier: MIT */
/*
 * galaxy.pool.v1.PoolAdmin, served by a built-in module: the pool RPCs
 * (CreatePool, GetPool, ListPools, UpdatePool, DeletePool) over the registry,
 * the API key RPCs over gx_keys, and ListModules.  Writes park in a
 * HANDLER-phase hook until durable (see gx_svc_registry.c for why a hook).
 * Who may call what is the access policy's business (the rbac module), from
 * each method's access class; ListPools keeps only the pools the caller may
 * discover, and a private pool needs an access policy to be enforced at all.
 */
#include "config.h"

#include "core/gx_svc_pooladmin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gx_access.h"
#include "core/gx_keys.h"
#include "core/gx_mod.h"
#include "core/gx_reg.h"
#include "core/gx_router.h"
#include "core/gx_svc_util.h"
#include "galaxy/pool/v1/pool.pb-c.h"

typedef Galaxy__Pool__V1__CreatePoolRequest create_req_t;
typedef Galaxy__Pool__V1__GetPoolRequest get_req_t;
typedef Galaxy__Pool__V1__UpdatePoolRequest update_req_t;
typedef Galaxy__Pool__V1__DeletePoolRequest delete_req_t;
typedef Galaxy__Pool__V1__CreateApiKeyRequest create_key_req_t;
typedef Galaxy__Pool__V1__RevokeApiKeyRequest revoke_key_req_t;

#define SVC "/galaxy.pool.v1.PoolAdmin/"
static const gx_service_t pooladmin_service; /* defined at the end, with its table */

static const gx_module_t *self;

/* ------------------------------------------------------------------ validation */

static int
validate_pool(gx_call_t *call, const gx_pb_pool_t *p, int create)
{
    if (gx_svc_validate_pool_name(call, p->name, "pool.name") != GX_OK)
        return GX_DONE;
    if (create && p->visibility == GALAXY__POOL__V1__VISIBILITY__VISIBILITY_UNSPECIFIED)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "pool.visibility: required "
                            "(PUBLIC or PRIVATE)");
    if (p->visibility != GALAXY__POOL__V1__VISIBILITY__VISIBILITY_UNSPECIFIED &&
        p->visibility != GALAXY__POOL__V1__VISIBILITY__VISIBILITY_PUBLIC &&
        p->visibility != GALAXY__POOL__V1__VISIBILITY__VISIBILITY_PRIVATE)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "pool.visibility: %d is not a "
                            "visibility", (int)p->visibility);
    if (create && p->visibility == GALAXY__POOL__V1__VISIBILITY__VISIBILITY_PRIVATE &&
        !gx_access_enforced(gx__mods))
        return gx_call_fail(call, GX_STATUS_FAILED_PRECONDITION, "pool.visibility: a private "
                            "pool needs an authentication module (auth_apikey, auth_mtls) and "
                            "an access policy (rbac) loaded");
    if (gx_svc_validate_text(call, p->tier, GX_REG_TEXT_MAX, "pool.tier") != GX_OK ||
        gx_svc_validate_text(call, p->description, GX_REG_DESCRIPTION_MAX,
                             "pool.description") != GX_OK ||
        gx_svc_validate_specs(call, p->n_specializations, p->specializations,
                              "pool.specializations", 0) != GX_OK ||
        gx_svc_validate_labels(call, p->n_labels, (const void *const *)p->labels,
                               "pool.labels") != GX_OK)
        return GX_DONE;
    if (p->routing_policy[0] && !gx_reg_valid_token(p->routing_policy, GX_REG_TEXT_MAX))
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "pool.routing_policy: malformed");
    if (p->routing_policy[0] && gx_router_find(p->routing_policy, NULL) == NULL) {
        char names[256];
        gx_router_names(names, sizeof(names));
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "pool.routing_policy: no routing "
                            "policy \"%s\" is loaded (loaded: %s)", p->routing_policy, names);
    }
    if (p->heartbeat_interval_ms != 0 && (p->heartbeat_interval_ms < GX_REG_INTERVAL_MIN ||
                                          p->heartbeat_interval_ms > GX_REG_INTERVAL_MAX))
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "pool.heartbeat_interval_ms: "
                            "must be from %d to %d", GX_REG_INTERVAL_MIN, GX_REG_INTERVAL_MAX);
    if (p->node_ttl_ms != 0 && (p->node_ttl_ms < GX_REG_INTERVAL_MIN ||
                                p->node_ttl_ms > 10 * GX_REG_INTERVAL_MAX))
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "pool.node_ttl_ms: must be from "
                            "%d to %d", GX_REG_INTERVAL_MIN, 10 * GX_REG_INTERVAL_MAX);
    return GX_OK;
}

static int
validate_create_pool_request(gx_call_t *call, const ProtobufCMessage *msg)
{
    const create_req_t *req = (const create_req_t *)msg;

    if (req->pool == NULL)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "pool: required");
    return validate_pool(call, req->pool, 1);
}

static int
validate_update_pool_request(gx_call_t *call, const ProtobufCMessage *msg)
{
    const update_req_t *req = (const update_req_t *)msg;

    if (req->pool == NULL)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "pool: required");
    return validate_pool(call, req->pool, 0);
}

static int
validate_get_pool_request(gx_call_t *call, const ProtobufCMessage *msg)
{
    const get_req_t *req = (const get_req_t *)msg;

    return gx_svc_validate_pool_name(call, req->name, "name");
}

static int
validate_delete_pool_request(gx_call_t *call, const ProtobufCMessage *msg)
{
    const delete_req_t *req = (const delete_req_t *)msg;

    return gx_svc_validate_pool_name(call, req->name, "name");
}

static int
validate_create_key_request(gx_call_t *call, const ProtobufCMessage *msg)
{
    const create_key_req_t *req = (const create_key_req_t *)msg;
    char f[32];

    if (req->name[0] == '\0')
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "name: required");
    if (gx_svc_validate_text(call, req->name, GX_KEY_NAME_MAX, "name") != GX_OK)
        return GX_DONE;
    if (req->role < GALAXY__POOL__V1__ROLE__ROLE_VIEWER ||
        req->role > GALAXY__POOL__V1__ROLE__ROLE_ADMIN)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "role: must be one of VIEWER, "
                            "NODE, SUBMITTER, OPERATOR, ADMIN");
    if (req->n_pools > GX_KEY_POOLS_MAX)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "pools: at most %d",
                            GX_KEY_POOLS_MAX);
    for (size_t i = 0; i < req->n_pools; i++) {
        snprintf(f, sizeof(f), "pools[%zu]", i);
        if (gx_svc_validate_pool_name(call, req->pools[i], f) != GX_OK)
            return GX_DONE;
    }
    return GX_OK;
}

static int
validate_revoke_key_request(gx_call_t *call, const ProtobufCMessage *msg)
{
    const revoke_key_req_t *req = (const revoke_key_req_t *)msg;

    if (req->id[0] == '\0')
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "id: required");
    return gx_svc_validate_text(call, req->id, GX_KEY_NAME_MAX, "id");
}

/* ------------------------------------------------------------------ writes (hook) */

typedef struct {
    gx_svc_write_t w;
    gx_pb_pool_t *pool;
    gx_pb_key_t *key;
    char *secret;
} pool_write_t;

static int
put_submit(gx_call_t *call, const gx_pb_pool_t *pool, int create, pool_write_t *pw,
           gx_reg_why_t *why)
{
    return gx_reg_pool_put_submit(gx__reg, call, pool, create, &pw->w.op, &pw->pool, why);
}

static int
write_hook(gx_call_t *call, void *ctx)
{
    const char *m = gx_call_method(call);
    const ProtobufCMessage *req;
    gx_reg_why_t why;
    pool_write_t *pw;
    int rv;

    if (gx_call_service(call) != &pooladmin_service)
        return GX_DECLINED;
    m += sizeof(SVC) - 1;
    if (strcmp(m, "CreatePool") != 0 && strcmp(m, "UpdatePool") != 0 &&
        strcmp(m, "DeletePool") != 0 && strcmp(m, "CreateApiKey") != 0 &&
        strcmp(m, "RevokeApiKey") != 0)
        return GX_DECLINED;
    req = gx_svc_request(call);
    pw = gx_svc_write_new(call, self, sizeof(*pw));
    if (req == NULL || pw == NULL)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    if (strcmp(m, "CreateApiKey") == 0) {
        const create_key_req_t *r = (const create_key_req_t *)req;
        rv = gx_keys_create_submit(call, r->name, (gx_role_t)r->role, r->pools,
                                         r->n_pools, &pw->w.op, &pw->key, &pw->secret, &why);
    } else if (strcmp(m, "RevokeApiKey") == 0) {
        const revoke_key_req_t *r = (const revoke_key_req_t *)req;
        rv = gx_keys_revoke_submit(r->id, &pw->w.op, &why);
    } else if (m[0] == 'C') {
        const create_req_t *r = (const create_req_t *)req;
        rv = put_submit(call, r->pool, 1, pw, &why);
    } else if (m[0] == 'U') {
        const update_req_t *r = (const update_req_t *)req;
        rv = put_submit(call, r->pool, 0, pw, &why);
    } else {
        const delete_req_t *r = (const delete_req_t *)req;
        rv = gx_reg_pool_delete_submit(gx__reg, r->name, r->force, &pw->w.op, &why);
    }
    return gx_svc_write_park(call, rv, &why);
}

static int
put_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    pool_write_t *pw = (pool_write_t *)gx_svc_write_result(call, self);

    if (pw == NULL)
        return GX_DONE;
    return gx_call_reply(call, &pw->pool->base);
}

static int
delete_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    Galaxy__Pool__V1__DeletePoolResponse resp = GALAXY__POOL__V1__DELETE_POOL_RESPONSE__INIT;

    if (gx_svc_write_result(call, self) == NULL)
        return GX_DONE;
    return gx_call_reply(call, &resp.base);
}

static int
create_key_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    Galaxy__Pool__V1__CreateApiKeyResponse resp =
        GALAXY__POOL__V1__CREATE_API_KEY_RESPONSE__INIT;
    pool_write_t *pw = (pool_write_t *)gx_svc_write_result(call, self);

    if (pw == NULL)
        return GX_DONE;
    resp.key = pw->key;
    resp.secret = pw->secret;
    return gx_call_reply(call, &resp.base);
}

static int
revoke_key_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    Galaxy__Pool__V1__RevokeApiKeyResponse resp =
        GALAXY__POOL__V1__REVOKE_API_KEY_RESPONSE__INIT;

    if (gx_svc_write_result(call, self) == NULL)
        return GX_DONE;
    return gx_call_reply(call, &resp.base);
}

/* ------------------------------------------------------------------ reads */

static int
list_keys_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    Galaxy__Pool__V1__ListApiKeysResponse resp = GALAXY__POOL__V1__LIST_API_KEYS_RESPONSE__INIT;

    if (gx_keys_list(call, &resp.keys, &resp.n_keys) != 0)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return gx_call_reply(call, &resp.base);
}

static int
get_pool_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    const get_req_t *req = (const get_req_t *)msg;
    gx_pb_pool_t pool;
    gx_reg_pool_t *p;
    int rv;

    gx_reg_read_begin();
    p = gx_reg_pool_find(gx__reg, req->name);
    if (p == NULL) {
        rv = gx_call_fail(call, GX_STATUS_NOT_FOUND, GX_NO_POOL_FMT, "name", req->name);
    } else {
        gx_reg_pool_fill(p, &pool);
        rv = gx_call_reply(call, &pool.base);
    }
    gx_reg_read_end();
    return rv;
}

typedef struct {
    gx_call_t *call;
    gx_pb_pool_t **v;
    size_t n, cap;
    int nomem;
} pool_list_t;

static int
list_one(gx_reg_pool_t *p, void *arg)
{
    pool_list_t *l = arg;
    gx_pb_pool_t pb;

    gx_reg_pool_fill(p, &pb);
    if (gx_call_check_access(l->call, GX_ACCESS_DISCOVER, pb.name) != GX_STATUS_OK)
        return 0; /* a pool the caller may not see is not there */

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        gx_pb_pool_t **v = gx_call_alloc(l->call, cap * sizeof(*v));
        if (v == NULL) {
            l->nomem = 1;
            return 1;
        }
        if (l->n > 0)
            memcpy(v, l->v, l->n * sizeof(*v));
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n] = gx_call_alloc(l->call, sizeof(gx_pb_pool_t));
    if (l->v[l->n] == NULL) {
        l->nomem = 1;
        return 1;
    }
    *l->v[l->n++] = pb;
    return 0;
}

static int
by_name(const void *a, const void *b)
{
    return strcmp((*(gx_pb_pool_t *const *)a)->name, (*(gx_pb_pool_t *const *)b)->name);
}

static int
list_pools_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    Galaxy__Pool__V1__ListPoolsResponse resp = GALAXY__POOL__V1__LIST_POOLS_RESPONSE__INIT;
    pool_list_t l = {.call = call};
    int rv;

    gx_reg_read_begin();
    gx_reg_pool_foreach(gx__reg, list_one, &l);
    if (l.nomem) {
        rv = gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    } else {
        if (l.n > 1)
            qsort(l.v, l.n, sizeof(*l.v), by_name);
        resp.n_pools = l.n;
        resp.pools = l.v;
        rv = gx_call_reply(call, &resp.base);
    }
    gx_reg_read_end();
    return rv;
}

/* ListModules: every loaded module, built-in ones first, in load order. */
static int
list_modules_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    static const char *const phase_names[GX_PHASE_MAX] = {
        "post_read", "authn", "access", "limit", "route", "handler", "log"};
    Galaxy__Pool__V1__ListModulesResponse resp = GALAXY__POOL__V1__LIST_MODULES_RESPONSE__INIT;
    const gx_mods_t *mods = gx__mods;
    Galaxy__Pool__V1__Module *v, **pv;

    v = gx_call_alloc(call, mods->n_mods * sizeof(*v));
    pv = gx_call_alloc(call, mods->n_mods * sizeof(*pv));
    if (mods->n_mods > 0 && (v == NULL || pv == NULL))
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < mods->n_mods; i++) {
        const gx_module_t *m = mods->mods[i];
        char **phases = gx_call_alloc(call, (GX_PHASE_MAX + 1) * sizeof(*phases));
        unsigned seen = 0;
        size_t n = 0;

        if (phases == NULL)
            return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        for (const gx_hook_t *h = m->desc->hooks; h != NULL && h->fn != NULL; h++)
            seen |= 1u << h->phase;
        if (m->desc->services != NULL && m->desc->services[0] != NULL)
            seen |= 1u << GX_PHASE_HANDLER;
        if (gx_router_of(m))
            seen |= 1u << GX_PHASE_ROUTE; /* a routing policy: jobs are routed through it */
        for (int ph = 0; ph < GX_PHASE_MAX; ph++)
            if (seen & (1u << ph))
                phases[n++] = (char *)phase_names[ph];
        galaxy__pool__v1__module__init(&v[i]);
        v[i].name = (char *)m->desc->name;
        v[i].version = (char *)m->desc->version;
        v[i].edition = (char *)m->desc->edition;
        v[i].path = m->path;
        v[i].n_phases = n;
        v[i].phases = phases;
        pv[i] = &v[i];
    }
    resp.n_modules = mods->n_mods;
    resp.modules = pv;
    return gx_call_reply(call, &resp.base);
}

static const char *
pool_of_pool(const ProtobufCMessage *msg, const char **field)
{
    const gx_pb_pool_t *p = ((const update_req_t *)msg)->pool;

    *field = "pool.name";
    return p != NULL ? p->name : NULL;
}

static const char *
pool_of_name(const ProtobufCMessage *msg, const char **field)
{
    *field = "name";
    return ((const get_req_t *)msg)->name;
}

static const char *
pool_of_delete(const ProtobufCMessage *msg, const char **field)
{
    *field = "name";
    return ((const delete_req_t *)msg)->name;
}

/* ------------------------------------------------------------------ module */

static int
pooladmin_init(gx_module_t *mod, const gx_mod_conf_t *conf, void **ctx)
{
    self = mod;
    *ctx = NULL;
    return 0;
}

static const gx_method_t pooladmin_methods[] = {
    /* a new pool has no visibility yet: CreatePool is about no existing pool */
    {.name = "CreatePool", .kind = GX_RPC_UNARY, .start = put_start, .access = GX_ACCESS_ADMIN,
     .validate = validate_create_pool_request},
    {.name = "GetPool", .kind = GX_RPC_UNARY, .start = get_pool_start,
     .access = GX_ACCESS_DISCOVER, .pool_of = pool_of_name,
     .validate = validate_get_pool_request},
    {.name = "ListPools", .kind = GX_RPC_UNARY, .start = list_pools_start,
     .access = GX_ACCESS_POOLS},
    {.name = "UpdatePool", .kind = GX_RPC_UNARY, .start = put_start, .access = GX_ACCESS_ADMIN,
     .pool_of = pool_of_pool, .validate = validate_update_pool_request},
    {.name = "DeletePool", .kind = GX_RPC_UNARY, .start = delete_start,
     .access = GX_ACCESS_ADMIN, .pool_of = pool_of_delete,
     .validate = validate_delete_pool_request},
    {.name = "CreateApiKey", .kind = GX_RPC_UNARY, .start = create_key_start,
     .access = GX_ACCESS_ADMIN, .validate = validate_create_key_request},
    {.name = "ListApiKeys", .kind = GX_RPC_UNARY, .start = list_keys_start,
     .access = GX_ACCESS_ADMIN},
    {.name = "RevokeApiKey", .kind = GX_RPC_UNARY, .start = revoke_key_start,
     .access = GX_ACCESS_ADMIN, .validate = validate_revoke_key_request},
    {.name = "ListModules", .kind = GX_RPC_UNARY, .start = list_modules_start,
     .access = GX_ACCESS_ADMIN},
    {.name = NULL},
};

static const gx_service_t pooladmin_service = {
    .desc = &galaxy__pool__v1__pool_admin__descriptor,
    .methods = pooladmin_methods,
};

static const gx_service_t *const pooladmin_services[] = {&pooladmin_service, NULL};

static const gx_hook_t pooladmin_hooks[] = {
    {.phase = GX_PHASE_HANDLER, .fn = write_hook, .order = 1000},
    {.fn = NULL},
};

const gx_module_desc_t gx_svc_pooladmin_module = {
    .abi = GX_MODULE_ABI,
    .name = "pooladmin",
    .version = PACKAGE_VERSION,
    .edition = "community",
    .init = pooladmin_init,
    .hooks = pooladmin_hooks,
    .services = pooladmin_services,
};
