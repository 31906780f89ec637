/* SPDX-License-Identifier: MIT */
/**
 * @file gx_svc_health.h
 * The built-in module that serves grpc.health.v1.Health.
 */
#ifndef GX_CORE_GX_SVC_HEALTH_H
#define GX_CORE_GX_SVC_HEALTH_H

#include <galaxy/gx_module.h>

extern const gx_module_desc_t gx_svc_health_module;

#endif /* GX_CORE_GX_SVC_HEALTH_H */
