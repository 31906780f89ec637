/* SPDX-License-Identifier: MIT */
/*
 * The table of routing policies, and the built-in one, least_loaded.
 */
#include "config.h"

#include "core/gx_router.h"

#include "core/gx_mod.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define ROUTERS_MAX 32
#define ROUTER_NAME_MAX 32

typedef struct {
    const gx_router_t *r;
    void *ctx;
    const gx_module_t *mod;
} router_slot_t;

static router_slot_t routers[ROUTERS_MAX];
static size_t n_routers;

static int
valid_name(const char *s)
{
    size_t n = 0;

    if (s == NULL)
        return 0;
    for (; s[n] != '\0'; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_'))
            return 0;
    return n >= 1 && n <= ROUTER_NAME_MAX;
}

GX_API int
gx_route_register(gx_module_t *mod, const gx_router_t *router, void *ctx)
{
    if (router == NULL || router->choose == NULL || !valid_name(router->name))
        return -EINVAL;
    for (size_t i = 0; i < n_routers; i++)
        if (strcmp(routers[i].r->name, router->name) == 0) {
            gx_mod_log(mod, GX_LOG_ERROR,
                       "routing policy \"%s\" is already registered by "
                       "module %s",
                       router->name,
                       routers[i].mod != NULL ? routers[i].mod->desc->name : "(built-in)");
            return -EEXIST;
        }
    if (n_routers == ROUTERS_MAX)
        return -ENOSPC;
    routers[n_routers++] = (router_slot_t){router, ctx, mod};
    return 0;
}

const gx_router_t *
gx_router_find(const char *name, void **ctx)
{
    /* a pool may name the policy ("p2c") or its module ("route_p2c") */
    if (strncmp(name, "route_", 6) == 0 && name[6] != '\0')
        name += 6;
    for (size_t i = 0; i < n_routers; i++)
        if (strcmp(routers[i].r->name, name) == 0) {
            if (ctx != NULL)
                *ctx = routers[i].ctx;
            return routers[i].r;
        }
    return NULL;
}

void
gx_router_names(char *buf, size_t len)
{
    size_t off = 0;

    if (len == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < n_routers && off < len; i++) {
        int w = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", routers[i].r->name);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

int
gx_router_of(const gx_module_t *mod)
{
    for (size_t i = 0; i < n_routers; i++)
        if (routers[i].mod == mod)
            return 1;
    return 0;
}

void
gx_router_forget(const gx_module_t *mod)
{
    size_t k = 0;

    for (size_t i = 0; i < n_routers; i++)
        if (routers[i].mod != mod)
            routers[k++] = routers[i];
    n_routers = k;
}

/* ------------------------------------------------------------------ least_loaded */

static size_t
least_loaded(const gx_route_job_t *job, const gx_route_node_t *v, size_t n, double *scores,
             void *ctx)
{
    size_t best = 0;

    for (size_t i = 0; i < n; i++) {
        if (scores != NULL)
            scores[i] = 1.0 - v[i].load;
        if (v[i].load < v[best].load ||
            (v[i].load == v[best].load && (v[i].assigned_jobs < v[best].assigned_jobs ||
                                           (v[i].assigned_jobs == v[best].assigned_jobs &&
                                            v[i].running_jobs < v[best].running_jobs))))
            best = i; /* ties beyond that: the lowest id, as nodes come in id order */
    }
    return best;
}

static const gx_router_t least_loaded_router = {.name = GX_ROUTE_DEFAULT, .choose = least_loaded};

static int
least_loaded_init(gx_module_t *mod, const gx_mod_conf_t *conf, void **ctx)
{
    *ctx = NULL;
    return gx_route_register(mod, &least_loaded_router, NULL);
}

const gx_module_desc_t gx_route_least_loaded_module = {
    .abi = GX_MODULE_ABI,
    .name = "route_least_loaded",
    .version = PACKAGE_VERSION,
    .edition = "community",
    .init = least_loaded_init,
};
