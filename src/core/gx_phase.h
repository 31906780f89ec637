/* SPDX-License-Identifier: MIT */
/**
 * @file gx_phase.h
 * Runs calls through the phase chain: the dispatcher the transport calls
 * (routing, request decoding, POST_READ … HANDLER, parking and resuming,
 * streaming callbacks, LOG with the access log and per-method counters).
 */
#ifndef GX_CORE_GX_PHASE_H
#define GX_CORE_GX_PHASE_H

#include "core/gx_mod.h"
#include "transport/gx_server.h"

/** Per-method call counters, one block per worker: [route or unknown][status]. */
typedef struct gx_phase_stats_s gx_phase_stats_t;

/**
 * Prepares the dispatcher for @p mods and @p workers workers, writing the
 * access log to @p access_log ("stderr", "off" or a file).
 * @return 0, GX_ENOMEM or GX_EIO (the access log cannot be opened)
 */
int gx_phase_init(const gx_mods_t *mods, unsigned workers, const char *access_log);
/** The callbacks to hand to gx_server_new(). */
const gx_dispatch_t *gx_phase_dispatch(void);
/** Sets the server (for draining state) once it exists. */
void gx_phase_set_server(gx_server_t *srv);
/** 1 while the server is draining (health answers NOT_SERVING). @note thread: any */
int gx_phase_draining(void);
/** Adds "galaxy_grpc_calls_total{method,code} N" lines to @p out (an evbuffer). */
void gx_phase_metrics(void *out);
void gx_phase_deinit(void);

#endif /* GX_CORE_GX_PHASE_H */
