/* SPDX-License-Identifier: MIT */
/*
 * The module loader.  At start-up it takes the built-in modules and every
 * module named in the configuration (dlopen(RTLD_NOW | RTLD_LOCAL), one
 * exported descriptor), checks the ABI version and the names, runs init(),
 * and flattens what they bring into two read-only tables: the phase chain
 * (hooks sorted by phase and order, each step knowing where the next phase
 * starts, so the hot path is an index walk) and the routes (every method of
 * every service, checked against its protobuf-c descriptor, sorted by path
 * for a binary search).
 */
#include "config.h"

#include "core/gx_mod.h"
#include "core/gx_pbwire.h"
#include "core/gx_router.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/gx_error.h"
#include "util/gx_log.h"

gx_mods_t *gx__mods;

static const char *const phase_names[GX_PHASE_MAX] = {
    "post_read", "authn", "access", "limit", "route", "handler", "log"};

void
gx_mod_log(const gx_module_t *mod, int level, const char *fmt, ...)
{
    char prefix[96];
    va_list ap;

    if (level > gx__log_level)
        return;
    snprintf(prefix, sizeof(prefix), "module=%s ", mod && mod->desc ? mod->desc->name : "?");
    va_start(ap, fmt);
    gx__log_v(level, prefix, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ loading */

static int
mod_add(gx_mods_t *mods, const gx_module_desc_t *desc, void *dl, const char *path, char *err,
        size_t errlen)
{
    gx_module_t *mod, **grown;

    if (desc->abi != GX_MODULE_ABI) {
        snprintf(err, errlen, "%s: module ABI version %u, this server needs %u: rebuild the module",
                 path, desc->abi, GX_MODULE_ABI);
        return GX_EABI;
    }
    if (desc->name == NULL || desc->name[0] == '\0' || desc->version == NULL ||
        desc->edition == NULL ||
        (strcmp(desc->edition, "community") != 0 && strcmp(desc->edition, "enterprise") != 0)) {
        snprintf(err, errlen, "%s: module descriptor needs a name, a version and an edition "
                 "(community or enterprise)", path);
        return GX_ECONF;
    }
    for (size_t i = 0; i < mods->n_mods; i++) {
        if (strcmp(mods->mods[i]->desc->name, desc->name) == 0) {
            snprintf(err, errlen, "%s: a module named \"%s\" is already loaded from %s", path,
                     desc->name, mods->mods[i]->path);
            return GX_ECONF;
        }
    }
    grown = realloc(mods->mods, (mods->n_mods + 1) * sizeof(*grown));
    if (grown == NULL)
        return GX_ENOMEM;
    mods->mods = grown;
    mod = calloc(1, sizeof(*mod));
    if (mod == NULL || (mod->path = strdup(path)) == NULL) {
        free(mod);
        return GX_ENOMEM;
    }
    mod->desc = desc;
    mod->dl = dl;
    mod->index = (unsigned)mods->n_mods;
    mods->mods[mods->n_mods++] = mod;
    return 0;
}

static int
mod_open(gx_mods_t *mods, const gx_conf_t *conf, const gx_mod_conf_t *mc, char *err,
         size_t errlen)
{
    char path[4096];
    const gx_module_desc_t *const *sym;
    void *dl;
    int rv;

    if (strchr(mc->path, '/') != NULL)
        snprintf(path, sizeof(path), "%s", mc->path);
    else
        snprintf(path, sizeof(path), "%s/%s.so", conf->module_dir, mc->path);
    dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        snprintf(err, errlen, "%s: cannot load module: %s", mc->where, dlerror());
        return GX_ENOENT;
    }
    sym = dlsym(dl, GX_MODULE_SYMBOL);
    if (sym == NULL || *sym == NULL) {
        snprintf(err, errlen, "%s: %s exports no %s: not a galaxy-poold module", mc->where, path,
                 GX_MODULE_SYMBOL);
        dlclose(dl);
        return GX_ECONF;
    }
    rv = mod_add(mods, *sym, dl, path, err, errlen);
    if (rv != 0)
        dlclose(dl);
    return rv;
}

static int
mod_init(gx_module_t *mod, const gx_mod_conf_t *mc, char *err, size_t errlen)
{
    static const gx_mod_conf_t empty = {.path = "", .where = "(built-in)"};
    int rv;

    if (mod->desc->init != NULL) {
        rv = mod->desc->init(mod, mc ? mc : &empty, &mod->ctx);
        if (rv != 0) {
            snprintf(err, errlen, "%s: module %s failed to start: %s",
                     mc ? mc->where : mod->path, mod->desc->name, gx_strerror(rv));
            return GX_ECONF;
        }
    }
    mod->inited = 1;
    return 0;
}

/* ------------------------------------------------------------------ routes */

static int
route_cmp(const void *a, const void *b)
{
    return strcmp(((const gx_route_t *)a)->path, ((const gx_route_t *)b)->path);
}

static const gx_method_t *
method_row(const gx_service_t *svc, const char *name)
{
    for (const gx_method_t *m = svc->methods; m != NULL && m->name != NULL; m++)
        if (strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

/* Checks a service table against its descriptor and adds one route per method. */
static int
routes_add_service(gx_mods_t *mods, gx_module_t *mod, const gx_service_t *svc, char *err,
                   size_t errlen)
{
    const ProtobufCServiceDescriptor *d = svc->desc;
    size_t rows = 0;
    gx_route_t *grown;

    for (const gx_method_t *m = svc->methods; m != NULL && m->name != NULL; m++, rows++) {
        if (m->start == NULL || (m->kind >= GX_RPC_CLIENT_STREAMING && m->on_message == NULL)) {
            snprintf(err, errlen, "%s: %s.%s: a method needs start (and on_message when the "
                     "client streams)", mod->path, d->name, m->name);
            return GX_ECONF;
        }
    }
    if (rows != d->n_methods) {
        snprintf(err, errlen, "%s: service %s has %u methods in its descriptor, %zu in its table",
                 mod->path, d->name, d->n_methods, rows);
        return GX_ECONF;
    }
    grown = realloc(mods->routes, (mods->n_routes + d->n_methods) * sizeof(*grown));
    if (grown == NULL)
        return GX_ENOMEM;
    mods->routes = grown;
    for (unsigned i = 0; i < d->n_methods; i++) {
        gx_route_t *r = &mods->routes[mods->n_routes];
        const gx_method_t *m = method_row(svc, d->methods[i].name);
        size_t len = strlen(d->name) + strlen(d->methods[i].name) + 3;
        if (m == NULL) {
            snprintf(err, errlen, "%s: service %s: no table row for method %s", mod->path,
                     d->name, d->methods[i].name);
            return GX_ECONF;
        }
        r->path = malloc(len);
        if (r->path == NULL)
            return GX_ENOMEM;
        snprintf(r->path, len, "/%s/%s", d->name, d->methods[i].name);
        r->m = m;
        r->pd = &d->methods[i];
        r->input_check = r->pd->input != NULL && gx_pbwire_needs_check(r->pd->input);
        r->svc = svc;
        r->mod = mod;
        mods->n_routes++;
    }
    return 0;
}

static int
routes_build(gx_mods_t *mods, char *err, size_t errlen)
{
    int rv;

    for (size_t i = 0; i < mods->n_mods; i++) {
        gx_module_t *mod = mods->mods[i];
        for (const gx_service_t *const *s = mod->desc->services; s != NULL && *s != NULL; s++) {
            rv = routes_add_service(mods, mod, *s, err, errlen);
            if (rv != 0)
                return rv;
        }
    }
    if (mods->n_routes > 0)
        qsort(mods->routes, mods->n_routes, sizeof(*mods->routes), route_cmp);
    for (size_t i = 0; i < mods->n_routes; i++) {
        mods->routes[i].index = (unsigned)i;
        if (i > 0 && strcmp(mods->routes[i - 1].path, mods->routes[i].path) == 0) {
            snprintf(err, errlen, "%s and %s both serve %s", mods->routes[i - 1].mod->path,
                     mods->routes[i].mod->path, mods->routes[i].path);
            return GX_ECONF;
        }
    }
    return 0;
}

/* a worker's last route: calls keep coming for the same few methods (forgotten by
 * gx_mods_load and gx_mods_unload, which run before and after the workers) */
static __thread const gx_mods_t *last_mods;
static __thread const gx_route_t *last_route;

const gx_route_t *
gx_mods_route(const gx_mods_t *mods, const char *path)
{
    gx_route_t key = {.path = (char *)path};
    const gx_route_t *r;

    if (last_mods == mods && last_route != NULL && strcmp(last_route->path, path) == 0)
        return last_route; /* one compare instead of a binary search's five or six */
    if (mods->n_routes == 0)
        return NULL;
    r = bsearch(&key, mods->routes, mods->n_routes, sizeof(key), route_cmp);
    if (r != NULL) {
        last_mods = mods;
        last_route = r;
    }
    return r;
}

int
gx_mods_has_service(const gx_mods_t *mods, const char *name)
{
    for (size_t i = 0; i < mods->n_routes; i++)
        if (strcmp(mods->routes[i].svc->desc->name, name) == 0)
            return 1;
    return 0;
}

/* ------------------------------------------------------------------ chain */

typedef struct {
    const gx_hook_t *hook;
    gx_module_t *mod;
    size_t seq;
} hook_ref_t;

static int
hook_cmp(const void *a, const void *b)
{
    const hook_ref_t *x = a, *y = b;

    if (x->hook->phase != y->hook->phase)
        return x->hook->phase < y->hook->phase ? -1 : 1;
    if (x->hook->order != y->hook->order)
        return x->hook->order < y->hook->order ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int
chain_build(gx_mods_t *mods, char *err, size_t errlen)
{
    hook_ref_t *refs = NULL;
    size_t n = 0, cap = 0, s = 0;

    for (size_t i = 0; i < mods->n_mods; i++) {
        for (const gx_hook_t *h = mods->mods[i]->desc->hooks; h != NULL && h->fn != NULL; h++) {
            if ((unsigned)h->phase >= GX_PHASE_MAX) {
                snprintf(err, errlen, "%s: hook for unknown phase %d", mods->mods[i]->path,
                         (int)h->phase);
                free(refs);
                return GX_ECONF;
            }
            if (n == cap) {
                hook_ref_t *grown = realloc(refs, (cap = cap ? cap * 2 : 16) * sizeof(*refs));
                if (grown == NULL) {
                    free(refs);
                    return GX_ENOMEM;
                }
                refs = grown;
            }
            refs[n] = (hook_ref_t){h, mods->mods[i], n};
            n++;
        }
    }
    if (n > 0)
        qsort(refs, n, sizeof(*refs), hook_cmp);
    /* + 1 for the route handler that closes the HANDLER phase */
    mods->steps = calloc(n + 1, sizeof(*mods->steps));
    if (mods->steps == NULL) {
        free(refs);
        return GX_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (refs[i].hook->phase == GX_PHASE_LOG && s == i)
            mods->steps[s++] = (gx_step_t){NULL, NULL, GX_PHASE_HANDLER, 0};
        mods->steps[s++] = (gx_step_t){refs[i].hook->fn, refs[i].mod, refs[i].hook->phase, 0};
    }
    if (s == n)
        mods->steps[s++] = (gx_step_t){NULL, NULL, GX_PHASE_HANDLER, 0};
    mods->n_steps = s;
    mods->log_first = s;
    for (size_t i = 0; i < s; i++)
        if (mods->steps[i].phase == GX_PHASE_LOG && mods->log_first == s)
            mods->log_first = i;
    /* each step learns where the next phase begins */
    for (size_t i = s; i-- > 0;) {
        size_t j = i + 1;
        while (j < s && mods->steps[j].phase == mods->steps[i].phase)
            j++;
        mods->steps[i].next = (unsigned)j;
    }
    free(refs);
    for (size_t i = 0; i < s; i++)
        gx_log(GX_LOG_DEBUG, "phase chain step=%zu phase=%s module=%s next=%u", i,
               phase_names[mods->steps[i].phase],
               mods->steps[i].mod ? mods->steps[i].mod->desc->name : "(handler)",
               mods->steps[i].next);
    return 0;
}

/* ------------------------------------------------------------------ load, unload */

int
gx_mods_load(gx_mods_t *mods, const gx_conf_t *conf, const gx_module_desc_t *const *builtins,
             char *err, size_t errlen)
{
    size_t n_builtin = 0;
    int rv = 0;

    last_mods = NULL;
    last_route = NULL;
    memset(mods, 0, sizeof(*mods));
    if (errlen > 0)
        err[0] = '\0';
    for (; builtins != NULL && builtins[n_builtin] != NULL; n_builtin++) {
        rv = mod_add(mods, builtins[n_builtin], NULL, "(built-in)", err, errlen);
        if (rv != 0)
            goto fail;
    }
    for (size_t i = 0; i < conf->n_modules; i++) {
        rv = mod_open(mods, conf, &conf->modules[i], err, errlen);
        if (rv != 0)
            goto fail;
    }
    gx__mods = mods;
    for (size_t i = 0; i < mods->n_mods; i++) {
        const gx_mod_conf_t *mc = i >= n_builtin ? &conf->modules[i - n_builtin] : NULL;
        rv = mod_init(mods->mods[i], mc, err, errlen);
        if (rv != 0)
            goto fail;
        gx_log(GX_LOG_INFO, "module loaded name=%s version=%s edition=%s path=%s",
               mods->mods[i]->desc->name, mods->mods[i]->desc->version,
               mods->mods[i]->desc->edition, mods->mods[i]->path);
    }
    rv = routes_build(mods, err, errlen);
    if (rv == 0)
        rv = chain_build(mods, err, errlen);
    if (rv == 0)
        return 0;
fail:
    if (rv == GX_ENOMEM && err[0] == '\0')
        snprintf(err, errlen, "out of memory loading modules");
    gx_mods_unload(mods);
    return rv;
}

void
gx_mods_unload(gx_mods_t *mods)
{
    last_mods = NULL;
    last_route = NULL;
    for (size_t i = mods->n_mods; i-- > 0;) {
        gx_module_t *mod = mods->mods[i];
        if (mod->inited && mod->desc->fini != NULL)
            mod->desc->fini(mod, mod->ctx);
        gx_router_forget(mod);
    }
    for (size_t i = mods->n_mods; i-- > 0;) {
        gx_module_t *mod = mods->mods[i];
        if (mod->dl != NULL)
            dlclose(mod->dl);
        free(mod->path);
        free(mod);
    }
    for (size_t i = 0; i < mods->n_routes; i++)
        free(mods->routes[i].path);
    free(mods->routes);
    free(mods->steps);
    free(mods->mods);
    if (gx__mods == mods)
        gx__mods = NULL;
    memset(mods, 0, sizeof(*mods));
}
