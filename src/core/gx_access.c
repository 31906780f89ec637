/* SPDX-License-Identifier: MIT */
/*
 * Who the caller is and what it may do: the principal an authentication
 * module sets on the call (identity, role, covered pools), the method's
 * access class and the pool its request names, and the way to ask the
 * loaded access policies (a module's gx_module_desc_t.access) from a handler
 * that learns its pool late or filters a list.  The rules themselves live in
 * the rbac module; without one every call is allowed and no pool can be
 * private (gx_access_enforced()).
 */
#include "config.h"

#include "core/gx_access.h"

#include <stdio.h>
#include <string.h>

#include "core/gx_mod.h"
#include "core/gx_reg.h"
#include "transport/gx_call.h"
#include "util/gx_arena.h"
#include "util/gx_error.h"
#include "util/gx_stats.h"

static const char *const access_words[] = {
    [GX_ACCESS_OPEN] = "call",
    [GX_ACCESS_DISCOVER] = "discover",
    [GX_ACCESS_NODE] = "register nodes",
    [GX_ACCESS_SUBMIT] = "submit jobs",
    [GX_ACCESS_OPERATE] = "operate",
    [GX_ACCESS_ADMIN] = "administer",
    [GX_ACCESS_POOLS] = "list pools",
};

static const char *const role_words[] = {
    [GX_ROLE_NONE] = "anonymous", [GX_ROLE_VIEWER] = "viewer",
    [GX_ROLE_NODE] = "node",      [GX_ROLE_SUBMITTER] = "submitter",
    [GX_ROLE_OPERATOR] = "operator", [GX_ROLE_ADMIN] = "admin",
};

const char *
gx_role_name(gx_role_t role)
{
    return (unsigned)role < sizeof(role_words) / sizeof(role_words[0]) ? role_words[role] : "?";
}

int
gx_role_parse(const char *s, gx_role_t *out)
{
    for (int r = GX_ROLE_VIEWER; r <= GX_ROLE_ADMIN; r++)
        if (strcmp(s, role_words[r]) == 0) {
            *out = (gx_role_t)r;
            return 0;
        }
    return GX_EINVAL;
}

/* ------------------------------------------------------------------ principal */

int
gx_call_set_principal(gx_call_t *call, const char *identity, gx_role_t role,
                      const char *const *pools, size_t n_pools)
{
    char **v = NULL;

    if ((unsigned)role > GX_ROLE_ADMIN)
        return GX_EINVAL;
    if (n_pools > 0) {
        v = gx_arena_alloc(call->arena, n_pools * sizeof(*v));
        if (v == NULL)
            return GX_ENOMEM;
        for (size_t i = 0; i < n_pools; i++) {
            v[i] = gx_arena_strndup(call->arena, pools[i], strlen(pools[i]));
            if (v[i] == NULL)
                return GX_ENOMEM;
        }
    }
    gx_call_set_identity(call, identity);
    if (identity != NULL && call->core.identity == NULL)
        return GX_ENOMEM;
    call->core.role = (uint8_t)role;
    call->core.pools = (const char *const *)v;
    call->core.n_pools = n_pools;
    return 0;
}

gx_role_t
gx_call_role(const gx_call_t *call)
{
    return (gx_role_t)call->core.role;
}

int
gx_call_covers_pool(const gx_call_t *call, const char *pool)
{
    if (call->core.role == GX_ROLE_NONE)
        return 0;
    if (call->core.n_pools == 0)
        return 1;
    for (size_t i = 0; i < call->core.n_pools; i++)
        if (strcmp(call->core.pools[i], pool) == 0)
            return 1;
    return 0;
}

/* ------------------------------------------------------------------ the call's target */

gx_access_t
gx_call_access(const gx_call_t *call)
{
    const gx_route_t *r = call->core.method;

    return r != NULL ? r->m->access : GX_ACCESS_OPEN;
}

const char *
gx_call_pool(const gx_call_t *call, const char **field)
{
    const gx_route_t *r = call->core.method;
    const char *f = NULL, *pool = NULL;

    if (r != NULL && r->m->pool_of != NULL && call->core.req != NULL)
        pool = r->m->pool_of(call->core.req, &f);
    if (field != NULL)
        *field = f != NULL ? f : "pool";
    return pool;
}

/* ------------------------------------------------------------------ policies */

gx_status_t
gx_call_check_access(const gx_call_t *call, gx_access_t what, const char *pool)
{
    const gx_mods_t *mods = gx__mods;

    for (size_t i = 0; mods != NULL && i < mods->n_mods; i++) {
        const gx_module_t *m = mods->mods[i];
        gx_status_t st;

        if (m->desc->access == NULL)
            continue;
        st = m->desc->access(call, what, pool, m->ctx);
        if (st != GX_STATUS_OK)
            return st;
    }
    return GX_STATUS_OK;
}

int
gx_call_fail_access(gx_call_t *call, gx_status_t status, gx_access_t what, const char *pool,
                    const char *field)
{
    const char *word = (unsigned)what < sizeof(access_words) / sizeof(access_words[0])
                           ? access_words[what] : "call";

    gx_stats_inc(ACCESS_DENIED);
    switch (status) {
    case GX_STATUS_NOT_FOUND:
        return gx_call_fail(call, status, GX_NO_POOL_FMT, field ? field : "pool",
                            pool ? pool : "");
    case GX_STATUS_UNAUTHENTICATED:
        return gx_call_fail(call, status, "%s needs credentials: an API key "
                            "(authorization: Bearer <secret>) or a client certificate",
                            gx_call_method(call));
    case GX_STATUS_PERMISSION_DENIED:
        if (pool != NULL)
            return gx_call_fail(call, status, "role %s may not %s in pool \"%s\"",
                                gx_role_name(gx_call_role(call)), word, pool);
        return gx_call_fail(call, status, "role %s may not %s (%s)",
                            gx_role_name(gx_call_role(call)), word, gx_call_method(call));
    default:
        return gx_call_fail(call, status, "access denied");
    }
}

int
gx_access_modules_check(const gx_mods_t *mods, char *err, size_t errlen)
{
    int authn = 0;
    const char *policy = NULL;

    for (size_t i = 0; i < mods->n_mods; i++) {
        const gx_module_desc_t *d = mods->mods[i]->desc;
        if (d->access != NULL && policy == NULL)
            policy = d->name;
        for (const gx_hook_t *h = d->hooks; h != NULL && h->fn != NULL; h++)
            authn |= h->phase == GX_PHASE_AUTHN;
    }
    if (policy == NULL || authn)
        return 0;
    /* every caller would be anonymous: a policy alone locks out every role */
    snprintf(err, errlen, "module %s decides access, but no module authenticates callers: "
             "load auth_apikey or auth_mtls too", policy);
    return GX_ECONF;
}

int
gx_access_enforced(const gx_mods_t *mods)
{
    int authn = 0, policy = 0;

    for (size_t i = 0; i < mods->n_mods; i++) {
        const gx_module_desc_t *d = mods->mods[i]->desc;
        if (d->access != NULL)
            policy = 1;
        for (const gx_hook_t *h = d->hooks; h != NULL && h->fn != NULL; h++)
            if (h->phase == GX_PHASE_AUTHN)
                authn = 1;
    }
    return authn && policy;
}

/* ------------------------------------------------------------------ pools */

gx_pool_vis_t
gx_pool_visibility(const char *name)
{
    gx_pool_vis_t vis = GX_POOL_NONE;
    gx_reg_pool_t *p;

    if (gx__reg == NULL || name == NULL)
        return GX_POOL_NONE;
    gx_reg_thread_online();
    gx_reg_read_begin();
    p = gx_reg_pool_find(gx__reg, name);
    if (p != NULL) {
        gx_pb_pool_t pb;
        gx_reg_pool_fill(p, &pb);
        vis = pb.visibility == GALAXY__POOL__V1__VISIBILITY__VISIBILITY_PRIVATE ? GX_POOL_PRIVATE
                                                                                 : GX_POOL_PUBLIC;
    }
    gx_reg_read_end();
    return vis;
}
