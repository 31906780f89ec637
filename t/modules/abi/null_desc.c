/* SPDX-License-Identifier: MIT */
/*
 * A shared object that exports gx_module_descriptor, but as a NULL pointer.
 */
#include "config.h"

#include <stddef.h>

#include <galaxy/gx_module.h>

GX_API const gx_module_desc_t *const gx_module_descriptor = NULL;
