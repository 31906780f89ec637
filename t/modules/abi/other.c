/* SPDX-License-Identifier: MIT */
/*
 * abi_other: a second well-formed test module, loaded after abi_good to check
 * how the hooks of two modules interleave in the flattened chain (ties in
 * phase and order keep the load order) and that fini() runs in reverse load
 * order.  It serves nothing and has no configuration.
 */
#include "config.h"

#include <galaxy/gx_module.h>

static int
other_post_read(gx_call_t *call, void *mod_ctx)
{
    return GX_OK;
}

static int
other_access(gx_call_t *call, void *mod_ctx)
{
    return GX_OK;
}

static int
other_route(gx_call_t *call, void *mod_ctx)
{
    return GX_OK;
}

static int
other_log(gx_call_t *call, void *mod_ctx)
{
    return GX_OK;
}

static const gx_hook_t other_hooks[] = {
    {GX_PHASE_POST_READ, other_post_read, 0},
    {GX_PHASE_ACCESS, other_access, -5},
    {GX_PHASE_ROUTE, other_route, 0},
    {GX_PHASE_LOG, other_log, -1},
    {.fn = NULL},
};

static int
other_init(gx_module_t *mod, const gx_mod_conf_t *conf, void **mod_ctx)
{
    gx_mod_log(mod, GX_LOG_ERROR, "init");
    return 0;
}

static void
other_fini(gx_module_t *mod, void *mod_ctx)
{
    gx_mod_log(mod, GX_LOG_ERROR, "fini");
}

static const gx_module_desc_t other_module = {
    .abi = GX_MODULE_ABI,
    .name = "abi_other",
    .version = "1.0",
    .edition = "enterprise",
    .init = other_init,
    .fini = other_fini,
    .hooks = other_hooks,
};

GX_MODULE(other_module);
