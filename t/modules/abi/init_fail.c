/* SPDX-License-Identifier: MIT */
/*
 * abi_init_fail: a module whose init() refuses its configuration.  The
 * server must not start, must run fini() of the modules already started (not
 * this one's) and unload everything.
 */
#include "config.h"

#include <errno.h>

#include <galaxy/gx_module.h>

static int
init_fail_init(gx_module_t *mod, const gx_mod_conf_t *conf, void **mod_ctx)
{
    gx_mod_log(mod, GX_LOG_ERROR, "init refuses: %s", gx_mod_conf_where(conf, "anything"));
    return -EINVAL;
}

static void
init_fail_fini(gx_module_t *mod, void *mod_ctx)
{
    gx_mod_log(mod, GX_LOG_ERROR, "fini must not run");
}

static const gx_module_desc_t init_fail_module = {
    .abi = GX_MODULE_ABI,
    .name = "abi_init_fail",
    .version = "1.0",
    .edition = "community",
    .init = init_fail_init,
    .fini = init_fail_fini,
};

GX_MODULE(init_fail_module);
