/* SPDX-License-Identifier: MIT */
/*
 * rbac's access table, the one source of truth for the server's ACCESS
 * hook (rbac.c) and for galaxy-cli's `rbac` commands (rbac_cli.c), which
 * print it and evaluate it locally.  Pure functions of the role, what the
 * call does, the pool's visibility and whether the credentials cover it.
 */
#ifndef RBAC_RULES_H
#define RBAC_RULES_H

#include <galaxy/gx_module.h>

/* what a role may do on a pool its credentials cover */
static inline int
rbac_role_may(gx_role_t role, gx_access_t what)
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
static inline int
rbac_anyone_may(gx_access_t what)
{
    return what == GX_ACCESS_DISCOVER || what == GX_ACCESS_NODE || what == GX_ACCESS_SUBMIT;
}

/*
 * The decision: GX_STATUS_OK, or the status that refuses the call.
 * @pool_named  0 when the call names no pool (vis and covered are then unused);
 * @vis        the pool's visibility (GX_POOL_NONE: it does not exist);
 * @covered    whether the caller's credentials cover the pool.
 */
static inline gx_status_t
rbac_rule(gx_role_t role, gx_access_t what, int pool_named, gx_pool_vis_t vis, int covered)
{
    if (what == GX_ACCESS_OPEN || what == GX_ACCESS_POOLS)
        return GX_STATUS_OK;
    if (!pool_named) {
        if (what != GX_ACCESS_ADMIN)
            return GX_STATUS_OK; /* the handler checks the pool it is given */
        if (role == GX_ROLE_ADMIN)
            return GX_STATUS_OK;
        return role == GX_ROLE_NONE ? GX_STATUS_UNAUTHENTICATED : GX_STATUS_PERMISSION_DENIED;
    }
    covered = role == GX_ROLE_ADMIN || covered;
    if (vis == GX_POOL_PRIVATE && !covered)
        return GX_STATUS_NOT_FOUND;
    if ((covered && rbac_role_may(role, what)) || (vis != GX_POOL_PRIVATE && rbac_anyone_may(what)))
        return GX_STATUS_OK;
    if (vis == GX_POOL_NONE)
        return GX_STATUS_NOT_FOUND;
    return role == GX_ROLE_NONE ? GX_STATUS_UNAUTHENTICATED : GX_STATUS_PERMISSION_DENIED;
}

#endif /* RBAC_RULES_H */
