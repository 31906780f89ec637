/* SPDX-License-Identifier: MIT */
/**
 * @file gx_mod.h
 * The module loader and the tables it builds at start-up: loaded modules
 * (built-in ones first), the flattened phase chain, and the method routes of
 * every service a module serves.  Everything here is built before the
 * workers start and read-only afterwards.
 */
#ifndef GX_CORE_GX_MOD_H
#define GX_CORE_GX_MOD_H

#include <stddef.h>

#include <galaxy/gx_module.h>

#include "core/gx_conf.h"

struct gx_module_s {
    const gx_module_desc_t *desc;
    void *ctx;     /**< what init() returned */
    void *dl;      /**< dlopen() handle, NULL for built-ins */
    char *path;    /**< the file, or "(built-in)" */
    unsigned index;
    int inited;
};

/** One method the server serves. */
typedef struct gx_route_s {
    char *path;                              /**< "/package.Service/Method" */
    const gx_method_t *m;
    const ProtobufCMethodDescriptor *pd;
    const gx_service_t *svc;
    gx_module_t *mod;
    unsigned index;                          /**< position, for per-method counters */
    unsigned input_check : 1;                /**< gx_pbwire_check() scans its requests */
} gx_route_t;

/** One step of the flattened chain. */
typedef struct gx_step_s {
    gx_phase_fn fn;      /**< NULL: the route's handler (end of HANDLER) */
    gx_module_t *mod;
    gx_phase_t phase;
    unsigned next;       /**< first step of the next phase */
} gx_step_t;

typedef struct gx_mods_s {
    gx_module_t **mods;
    size_t n_mods;
    gx_route_t *routes;  /**< sorted by path */
    size_t n_routes;
    gx_step_t *steps;    /**< POST_READ … HANDLER, then LOG */
    size_t n_steps;
    size_t log_first;    /**< index of the first LOG step */
} gx_mods_t;

/**
 * Loads the built-in modules, then every module of @p conf (dlopen), calls
 * their init() and builds the routes and the chain.
 * @param err  "file: reason" on failure (ABI mismatch, duplicate name or
 *             route, a service table that disagrees with its descriptor, …)
 * @return 0, GX_EABI, GX_ECONF, GX_ENOENT or GX_ENOMEM; on failure everything
 *         loaded so far is unloaded again.
 */
int gx_mods_load(gx_mods_t *mods, const gx_conf_t *conf, const gx_module_desc_t *const *builtins,
                 char *err, size_t errlen);
/** The route of @p path or NULL. @note thread: any */
const gx_route_t *gx_mods_route(const gx_mods_t *mods, const char *path);
/** 1 when some module serves the service @p name ("grpc.health.v1.Health"). */
int gx_mods_has_service(const gx_mods_t *mods, const char *name);
/** Calls every fini() in reverse order and dlclose()s. */
void gx_mods_unload(gx_mods_t *mods);

/** The process's module tables (set by gx_mods_load), for accessors and built-ins. */
extern gx_mods_t *gx__mods;

#endif /* GX_CORE_GX_MOD_H */
