/* SPDX-License-Identifier: MIT */
/**
 * @file gx_svc_pooladmin.h
 * The built-in module that serves galaxy.pool.v1.PoolAdmin.
 */
#ifndef GX_CORE_GX_SVC_POOLADMIN_H
#define GX_CORE_GX_SVC_POOLADMIN_H

#include <galaxy/gx_module.h>

extern const gx_module_desc_t gx_svc_pooladmin_module;

#endif /* GX_CORE_GX_SVC_POOLADMIN_H */
