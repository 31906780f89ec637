/* SPDX-License-Identifier: MIT */
/**
 * @file gx_error.h
 * Error codes: 0 or a negative GX_E… value.  Codes with an errno equivalent
 * are that errno negated; the others live in our own range.  One table gives
 * every code its name, message and gRPC status.
 */
#ifndef GX_UTIL_GX_ERROR_H
#define GX_UTIL_GX_ERROR_H

#include <errno.h>

#include <galaxy/gx_module.h>

#define GX__E_BASE 10000

/* X(name, value, message, grpc status) */
#define GX_ERRORS(X)                                                                      \
    X(GX_ENOMEM, -ENOMEM, "out of memory", GX_STATUS_RESOURCE_EXHAUSTED)                  \
    X(GX_EINVAL, -EINVAL, "invalid argument", GX_STATUS_INVALID_ARGUMENT)                 \
    X(GX_EIO, -EIO, "input/output error", GX_STATUS_INTERNAL)                             \
    X(GX_ENOSPC, -ENOSPC, "no space left on the data directory's disk",                   \
      GX_STATUS_RESOURCE_EXHAUSTED)                                                       \
    X(GX_ENOENT, -ENOENT, "no such file or directory", GX_STATUS_NOT_FOUND)               \
    X(GX_EACCES, -EACCES, "permission denied", GX_STATUS_PERMISSION_DENIED)               \
    X(GX_E2BIG, -E2BIG, "too large", GX_STATUS_RESOURCE_EXHAUSTED)                        \
    X(GX_ETIMEDOUT, -ETIMEDOUT, "timed out", GX_STATUS_DEADLINE_EXCEEDED)                 \
    X(GX_ECANCELED, -ECANCELED, "cancelled", GX_STATUS_CANCELLED)                         \
    X(GX_EADDRINUSE, -EADDRINUSE, "address in use", GX_STATUS_UNAVAILABLE)                \
    X(GX_ENOTFOUND, -(GX__E_BASE + 1), "not found", GX_STATUS_NOT_FOUND)                  \
    X(GX_EEXISTS, -(GX__E_BASE + 2), "already exists", GX_STATUS_ALREADY_EXISTS)          \
    X(GX_EMAPFULL, -(GX__E_BASE + 3), "store is full (server.data_max_mb)",               \
      GX_STATUS_RESOURCE_EXHAUSTED)                                                       \
    X(GX_EDENIED, -(GX__E_BASE + 4), "access denied", GX_STATUS_PERMISSION_DENIED)        \
    X(GX_EPROTO, -(GX__E_BASE + 5), "protocol error", GX_STATUS_INTERNAL)                 \
    X(GX_EABI, -(GX__E_BASE + 6), "module ABI mismatch", GX_STATUS_INTERNAL)              \
    X(GX_ECONF, -(GX__E_BASE + 7), "configuration error", GX_STATUS_INTERNAL)             \
    X(GX_ECLOSED, -(GX__E_BASE + 8), "call is closed", GX_STATUS_CANCELLED)               \
    X(GX_ESHUTDOWN, -(GX__E_BASE + 9), "shutting down", GX_STATUS_UNAVAILABLE)               \
    X(GX_EQUEUE_CONN, -(GX__E_BASE + 10),                                                   \
      "responses waiting for this client exceed limits.conn_send_queue_bytes (it does not read)", \
      GX_STATUS_RESOURCE_EXHAUSTED)                                                         \
    X(GX_EQUEUE_SERVER, -(GX__E_BASE + 11),                                                 \
      "responses waiting for clients exceed limits.server_send_queue_bytes",                \
      GX_STATUS_RESOURCE_EXHAUSTED)

enum {
#define GX__ERR_ENUM(name, value, msg, status) name = (value),
    GX_ERRORS(GX__ERR_ENUM)
#undef GX__ERR_ENUM
};

/** A static message for @p err (0 → "success"). @note thread: any */
const char *gx_strerror(int err);
/** The gRPC status that reports @p err (0 → OK). @note thread: any */
gx_status_t gx_error_to_status(int err);

#endif /* GX_UTIL_GX_ERROR_H */
