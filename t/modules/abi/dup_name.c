/* SPDX-License-Identifier: MIT */
/*
 * A second module that calls itself "abi_good": loading it next to
 * t/modules/abi/good.c must be refused, naming both files.
 */
#include "config.h"

#include <galaxy/gx_module.h>

static int
dup_name_init(gx_module_t *mod, const gx_mod_conf_t *conf, void **mod_ctx)
{
    gx_mod_log(mod, GX_LOG_ERROR, "init must not run");
    return 0;
}

static const gx_module_desc_t dup_name_module = {
    .abi = GX_MODULE_ABI,
    .name = "abi_good",
    .version = "2.0",
    .edition = "community",
    .init = dup_name_init,
};

GX_MODULE(dup_name_module);
