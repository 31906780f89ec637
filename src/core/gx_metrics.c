/* SPDX-License-Identifier: MIT */
/*
 * /metrics: the process (up, draining, start time), every transport and
 * hostile-peer counter of util/gx_stats.h, and the per-method call counters
 * of the phase chain.  Counters are summed over the per-thread blocks at
 * scrape time, so counting stays lock-free.
 */
#include "config.h"

#include "core/gx_metrics.h"

#include <event2/buffer.h>

#include "core/gx_phase.h"
#include "core/gx_jobs.h"
#include "core/gx_reg.h"
#include "util/gx_stats.h"

static const char *const ctr_names[GX_CTR_MAX] = {
#define GX__CTR_NAME(id, name, help) name,
    GX_COUNTERS(GX__CTR_NAME)
#undef GX__CTR_NAME
};

static const char *const ctr_help[GX_CTR_MAX] = {
#define GX__CTR_HELP(id, name, help) help,
    GX_COUNTERS(GX__CTR_HELP)
#undef GX__CTR_HELP
};

void
gx_metrics_render(void *out, void *arg)
{
    struct evbuffer *buf = out;
    gx_stats_t sum;

    evbuffer_add_printf(buf, "# HELP galaxy_up 1 while the server runs.\n"
                             "# TYPE galaxy_up gauge\ngalaxy_up 1\n"
                             "# HELP galaxy_draining 1 while the server shuts down.\n"
                             "# TYPE galaxy_draining gauge\ngalaxy_draining %d\n",
                        gx_phase_draining());
    gx_stats_sum(&sum);
    for (int i = 0; i < GX_CTR_MAX; i++)
        evbuffer_add_printf(buf, "# HELP galaxy_%s %s.\n# TYPE galaxy_%s counter\ngalaxy_%s %llu\n",
                            ctr_names[i], ctr_help[i], ctr_names[i], ctr_names[i],
                            (unsigned long long)sum.c[i]);
    gx_phase_metrics(buf);
    gx_reg_metrics(gx__reg, buf);
    gx_jobs_metrics(buf);
}
