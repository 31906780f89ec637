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
 * HeartbeatStream message, the pools ListPools may show).  The rules
 * themselves are rbac_rules.h, shared with the `galaxy-cli rbac` commands
 * this module also exports (rbac_cli.c).
 */
#include <errno.h>
#include <stddef.h>

#include <galaxy/gx_module.h>

#include "rbac_rules.h"

static const gx_module_t *self;

static gx_status_t
decide(const gx_call_t *call, gx_access_t what, const char *pool, void *ctx)
{
    gx_role_t role = gx_call_role(call);
    int named = pool != NULL && pool[0] != '\0';
    gx_pool_vis_t vis = GX_POOL_NONE;
    int covered = 0;

    if (named && what != GX_ACCESS_OPEN && what != GX_ACCESS_POOLS) {
        vis = gx_pool_visibility(pool);
        covered = role == GX_ROLE_ADMIN || gx_call_covers_pool(call, pool);
    }
    return rbac_rule(role, what, named, vis, covered);
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
