/* SPDX-License-Identifier: MIT */
/*
 * abi_good: a well-formed test module for t/unit/core/test_gx_mod.c.  It hooks
 * four phases (two hooks in POST_READ, with orders that sort against their
 * declaration order), serves grpc.health.v1.Health with one table row per
 * descriptor method, logs its `greeting` configuration value from init() and
 * its context from fini(), so that the test can see both ran, and in which
 * order.  Its hooks and methods do nothing: the loader never calls them.
 */
#include "config.h"

#include <galaxy/gx_module.h>

#include "grpc/health/v1/health.pb-c.h"

static const char good_ctx[] = "abi_good context";

static int
good_post_read_late(gx_call_t *call, void *mod_ctx)
{
    return GX_DECLINED;
}

static int
good_post_read_early(gx_call_t *call, void *mod_ctx)
{
    return GX_OK;
}

static int
good_access(gx_call_t *call, void *mod_ctx)
{
    return GX_OK;
}

static int
good_handler(gx_call_t *call, void *mod_ctx)
{
    return GX_DECLINED;
}

static int
good_log(gx_call_t *call, void *mod_ctx)
{
    return GX_OK;
}

/* Declared out of order on purpose: the loader sorts by phase, then order. */
static const gx_hook_t good_hooks[] = {
    {GX_PHASE_LOG, good_log, 0},
    {GX_PHASE_POST_READ, good_post_read_late, 10},
    {GX_PHASE_ACCESS, good_access, -5},
    {GX_PHASE_HANDLER, good_handler, 0},
    {GX_PHASE_POST_READ, good_post_read_early, -10},
    {.fn = NULL},
};

static int
good_start(gx_call_t *call, const ProtobufCMessage *req, void *mod_ctx)
{
    return GX_DONE;
}

static const gx_method_t good_methods[] = {
    {.name = "Watch", .kind = GX_RPC_SERVER_STREAMING, .start = good_start},
    {.name = "Check", .kind = GX_RPC_UNARY, .start = good_start},
    {.name = NULL},
};

static const gx_service_t good_service = {
    .desc = &grpc__health__v1__health__descriptor,
    .methods = good_methods,
};

static const gx_service_t *const good_services[] = {&good_service, NULL};

static int
good_init(gx_module_t *mod, const gx_mod_conf_t *conf, void **mod_ctx)
{
    const char *greeting = gx_mod_conf_get(conf, "greeting");

    gx_mod_log(mod, GX_LOG_ERROR, "init greeting=%s", greeting != NULL ? greeting : "(none)");
    *mod_ctx = (void *)good_ctx;
    return 0;
}

static void
good_fini(gx_module_t *mod, void *mod_ctx)
{
    gx_mod_log(mod, GX_LOG_ERROR, "fini ctx=%s", (const char *)mod_ctx);
}

static const gx_module_desc_t good_module = {
    .abi = GX_MODULE_ABI,
    .name = "abi_good",
    .version = "1.0",
    .edition = "community",
    .init = good_init,
    .fini = good_fini,
    .hooks = good_hooks,
    .services = good_services,
};

GX_MODULE(good_module);
