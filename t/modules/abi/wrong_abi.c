/* SPDX-License-Identifier: MIT */
/*
 * abi_wrong_abi: a module built against a newer gx_module.h than the server's.
 * The loader must refuse it before touching anything else in the descriptor;
 * its init() would say so in the log if it ever ran.
 */
#include "config.h"

#include <galaxy/gx_module.h>

static int
wrong_abi_init(gx_module_t *mod, const gx_mod_conf_t *conf, void **mod_ctx)
{
    gx_mod_log(mod, GX_LOG_ERROR, "init must not run");
    return 0;
}

static const gx_module_desc_t wrong_abi_module = {
    .abi = GX_MODULE_ABI + 1,
    .name = "abi_wrong_abi",
    .version = "1.0",
    .edition = "community",
    .init = wrong_abi_init,
};

GX_MODULE(wrong_abi_module);
