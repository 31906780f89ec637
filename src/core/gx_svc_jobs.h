/* SPDX-License-Identifier: MIT */
/**
 * @file gx_svc_jobs.h
 * The built-in module that serves galaxy.pool.v1.Jobs.
 */
#ifndef GX_CORE_GX_SVC_JOBS_H
#define GX_CORE_GX_SVC_JOBS_H

#include <galaxy/gx_module.h>

extern const gx_module_desc_t gx_svc_jobs_module;

#endif /* GX_CORE_GX_SVC_JOBS_H */
