/* SPDX-License-Identifier: MIT */
/*
 * A shared object that is not a galaxy-poold module: it exports a symbol with
 * a name close to the descriptor's, but not gx_module_descriptor itself.
 */
#include "config.h"

#include <galaxy/gx_module.h>

static const gx_module_desc_t no_symbol_module = {
    .abi = GX_MODULE_ABI,
    .name = "abi_no_symbol",
    .version = "1.0",
    .edition = "community",
};

GX_API const gx_module_desc_t *const gx_module_descriptors = &no_symbol_module;
