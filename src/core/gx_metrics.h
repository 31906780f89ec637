/* SPDX-License-Identifier: MIT */
/**
 * @file gx_metrics.h
 * Renders /metrics: Prometheus text format, version 0.0.4.
 */
#ifndef GX_CORE_GX_METRICS_H
#define GX_CORE_GX_METRICS_H

/** Appends every metric to @p out (an evbuffer). @note thread: main */
void gx_metrics_render(void *out, void *arg);

#endif /* GX_CORE_GX_METRICS_H */
