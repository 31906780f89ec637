/* SPDX-License-Identifier: MIT */
/**
 * @file gx_router.h
 * The routing policies modules registered (gx_route_register()), looked up
 * by a pool's routing_policy.  Filled while modules initialise, on the main
 * thread before the workers start; read-only afterwards.
 */
#ifndef GX_CORE_GX_ROUTER_H
#define GX_CORE_GX_ROUTER_H

#include <stddef.h>

#include <galaxy/gx_module.h>

/** The policy a pool gets when it names none. */
#define GX_ROUTE_DEFAULT "least_loaded"

/**
 * The policy called @p name ("p2c"; or its module's name, "route_p2c"), with
 * its context in *ctx; NULL when none is loaded.
 */
const gx_router_t *gx_router_find(const char *name, void **ctx);
/** The loaded policies' names, ", "-separated, into @p buf (for error messages). */
void gx_router_names(char *buf, size_t len);
/** 1 when module @p mod registered a policy. */
int gx_router_of(const gx_module_t *mod);
/** Forgets the policies @p mod registered (the module is being unloaded). */
void gx_router_forget(const gx_module_t *mod);

/** The built-in policy least_loaded: lowest load, then fewest jobs, then id. */
extern const gx_module_desc_t gx_route_least_loaded_module;

#endif /* GX_CORE_GX_ROUTER_H */
