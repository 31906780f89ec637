/* SPDX-License-Identifier: MIT */
/**
 * @file gx_svc_registry.h
 * The built-in module that serves galaxy.pool.v1.NodeRegistry.
 */
#ifndef GX_CORE_GX_SVC_REGISTRY_H
#define GX_CORE_GX_SVC_REGISTRY_H

#include <galaxy/gx_module.h>

extern const gx_module_desc_t gx_svc_registry_module;

#endif /* GX_CORE_GX_SVC_REGISTRY_H */
