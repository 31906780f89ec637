/* SPDX-License-Identifier: MIT */
/*
 * rbac: the access rules of API.md.
 *
 *  - Public pools: every caller, with or without credentials, may discover,
 *    register and heartbeat nodes, and submit jobs.
 *  - Credentials (an API key, a mapped certificate) cover the pools of their
 *    list, or every pool when the list is empty.  On a covered pool a viewer
 *    may discover; node adds nodes; submitter adds jobs; operator has both
 *    and operates (Drain, every job); admin may do everything everywhere.
 *  - A private pool the caller's credentials do not cover does not exist for
 *    it: NOT_FOUND, worded exactly as for a missing pool, before any other
 *    answer.  A refused call on a pool that does not exist is NOT_FOUND too,
 *    so that refusals cannot tell missing pools from hidden ones.
 *  - Otherwise a refused call is UNAUTHENTICATED without credentials and
 *    PERMISSION_DENIED with credentials whose role is too low.
 *
 * The ACCESS hook applies the rules to the pool a unary request names; the
 * same decision serves handlers through gx_call_check_access() (each
 * HeartbeatStream message, the pools ListPools may show).
 */
#include <errno.h>
#include <stddef.h>

#include <galaxy/gx_module.h>

static const gx_module_t *self;

/* what a role may do on a pool its credentials cover */
static int
role_may(gx_role_t role, gx_access_t what)
{
    switch (role) {
    case GX_ROLE_ADMIN:
        return 1;
    case GX_ROLE_OPERATOR:
        return what != GX_ACCESS_ADMIN;
    case GX_ROLE_SUBMITTER:
        return what == GX_ACCESS_DISCOVER || what == GX_ACCESS_SUBMIT;
    case GX_ROLE_NODE:
        return what == GX_ACCESS_DISCOVER || what == GX_ACCESS_NODE;
    case GX_ROLE_VIEWER:
        return what == GX_ACCESS_DISCOVER;
    default:
        return 0;
    }
}

/* what anyone may do on a public pool */
static int
anyone_may(gx_access_t what)
{
    return what == GX_ACCESS_DISCOVER || what == GX_ACCESS_NODE || what == GX_ACCESS_SUBMIT;
}

static gx_status_t
decide(const gx_call_t *call, gx_access_t what, const char *pool, void *ctx)
{
    gx_role_t role = gx_call_role(call);
    gx_pool_vis_t vis;
    int covered;

    if (what == GX_ACCESS_OPEN || what == GX_ACCESS_POOLS)
        return GX_STATUS_OK;
    if (pool == NULL || pool[0] == '\0') {
        if (what != GX_ACCESS_ADMIN)
            return GX_STATUS_OK; /* the handler checks the pool it is given */
        if (role == GX_ROLE_ADMIN)
            return GX_STATUS_OK;
        return role == GX_ROLE_NONE ? GX_STATUS_UNAUTHENTICATED : GX_STATUS_PERMISSION_DENIED;
    }
    vis = gx_pool_visibility(pool);
    covered = role == GX_ROLE_ADMIN || gx_call_covers_pool(call, pool);
    if (vis == GX_POOL_PRIVATE && !covered)
        return GX_STATUS_NOT_FOUND;
    if ((covered && role_may(role, what)) || (vis != GX_POOL_PRIVATE && anyone_may(what)))
        return GX_STATUS_OK;
    if (vis == GX_POOL_NONE)
        return GX_STATUS_NOT_FOUND;
    return role == GX_ROLE_NONE ? GX_STATUS_UNAUTHENTICATED : GX_STATUS_PERMISSION_DENIED;
}

static int
access_hook(gx_call_t *call, void *ctx)
{
    const char *field = NULL;
    const char *pool = gx_call_pool(call, &field);
    gx_access_t what = gx_call_access(call);
    gx_status_t st = decide(call, what, pool, ctx);

    if (st == GX_STATUS_OK)
        return GX_OK;
    gx_mod_log(self, GX_LOG_DEBUG, "refused method=%s identity=\"%s\" pool=\"%s\" status=%d",
               gx_call_method(call), gx_call_identity(call), pool ? pool : "", (int)st);
    return gx_call_fail_access(call, st, what, pool, field);
}

static int
rbac_init(gx_module_t *mod, const gx_mod_conf_t *conf, void **ctx)
{
    const char *k = gx_mod_conf_key(conf, 0);

    self = mod;
    if (k != NULL) {
        gx_mod_log(mod, GX_LOG_ERROR, "%s: unknown key \"%s\" (rbac takes no settings)",
                   gx_mod_conf_where(conf, k), k);
        return -EINVAL;
    }
    *ctx = NULL;
    return 0;
}

static const gx_hook_t rbac_hooks[] = {
    {.phase = GX_PHASE_ACCESS, .fn = access_hook, .order = 10},
    {.fn = NULL},
};

static const gx_module_desc_t rbac_module = {
    .abi = GX_MODULE_ABI,
    .name = "rbac",
    .version = "1.0.0",
    .edition = "enterprise",
    .init = rbac_init,
    .hooks = rbac_hooks,
    .access = decide,
};

GX_MODULE(rbac_module);
