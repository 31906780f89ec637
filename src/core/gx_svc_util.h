/* SPDX-License-Identifier: MIT */
/**
 * @file gx_svc_util.h
 * What the galaxy.pool.v1 services share: request validators that name the
 * field, and the durable-write glue (a HANDLER-phase hook submits and parks
 * the call; the registry's keeper resumes it once the change is committed
 * and applied; the method's start() answers).
 */
#ifndef GX_CORE_GX_SVC_UTIL_H
#define GX_CORE_GX_SVC_UTIL_H

#include <galaxy/gx_module.h>

#include "core/gx_reg.h"

/** A write in flight, at the start of each service's per-call write state. */
typedef struct {
    gx_reg_op_t op;
    gx_call_t *call;
} gx_svc_write_t;

/** The decoded request of a unary call (call memory), or NULL. @note thread: worker */
const ProtobufCMessage *gx_svc_request(const gx_call_t *call);

/**
 * Zeroed call memory of @p size (≥ sizeof(gx_svc_write_t)) set up to resume
 * the call when the write completes, and stored in @p mod's call slot.
 */
void *gx_svc_write_new(gx_call_t *call, const gx_module_t *mod, size_t size);
/**
 * The hook's return: @p rv GX_DONE (already answered), 0 (submitted: park
 * with GX_AGAIN) or <0 (rejected: fail the call with @p why).
 */
int gx_svc_write_park(gx_call_t *call, int rv, const gx_reg_why_t *why);
/**
 * In the method's start(): the completed write, or NULL after failing the
 * call (store error, or no write in flight).
 */
gx_svc_write_t *gx_svc_write_result(gx_call_t *call, const gx_module_t *mod);

/* Validators: GX_OK, or GX_DONE after failing the call with INVALID_ARGUMENT naming the field. */
int gx_svc_validate_pool_name(gx_call_t *call, const char *name, const char *field);
int gx_svc_validate_pool_node(gx_call_t *call, const char *pool, const char *id);
int gx_svc_validate_specs(gx_call_t *call, size_t n, char *const *specs, const char *field,
                          size_t min);
/** @p entries: any protobuf-c map entry array of string → string */
int gx_svc_validate_labels(gx_call_t *call, size_t n, const void *const *entries,
                           const char *field);
int gx_svc_validate_text(gx_call_t *call, const char *s, size_t max, const char *field);
/** Any string field: proto3 strings are UTF-8, and answers that echo one must stay decodable. */
int gx_svc_validate_utf8(gx_call_t *call, const char *s, const char *field);
/** A Node as a client sends it to Register; @p prefix "node." names its fields. */
int gx_svc_validate_node(gx_call_t *call, const Galaxy__Pool__V1__Node *node,
                         const char *prefix);

#endif /* GX_CORE_GX_SVC_UTIL_H */
