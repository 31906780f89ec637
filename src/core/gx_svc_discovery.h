/* SPDX-License-Identifier: MIT */
/**
 * @file gx_svc_discovery.h
 * The built-in module that serves galaxy.pool.v1.Discovery.
 */
#ifndef GX_CORE_GX_SVC_DISCOVERY_H
#define GX_CORE_GX_SVC_DISCOVERY_H

#include <galaxy/gx_module.h>

extern const gx_module_desc_t gx_svc_discovery_module;

#endif /* GX_CORE_GX_SVC_DISCOVERY_H */
