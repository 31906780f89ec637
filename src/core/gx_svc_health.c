/* SPDX-License-Identifier: MIT */
/*
 * grpc.health.v1.Health, served by a built-in module.  Service "" is the
 * whole server; every service some module serves is known by its full name;
 * any other name is NOT_FOUND on Check and SERVICE_UNKNOWN on Watch (as the
 * health protocol asks).  SERVING while up, NOT_SERVING once draining: a
 * Watch stream is told NOT_SERVING and then ends with UNAVAILABLE.
 */
#include "config.h"

#include "core/gx_svc_health.h"

#include <string.h>

#include "core/gx_mod.h"
#include "core/gx_phase.h"
#include "core/gx_svc_util.h"
#include "grpc/health/v1/health.pb-c.h"

typedef Grpc__Health__V1__HealthCheckRequest check_req_t;
typedef Grpc__Health__V1__HealthCheckResponse check_resp_t;

#define MAX_SERVICE_NAME 512

static int
known(const char *service)
{
    return service[0] == '\0' || gx_mods_has_service(gx__mods, service);
}

static Grpc__Health__V1__HealthCheckResponse__ServingStatus
status_now(void)
{
    return gx_phase_draining() ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                               : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
}

static int
check_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    const check_req_t *req = (const check_req_t *)msg;
    check_resp_t resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;

    if (gx_svc_validate_text(call, req->service, MAX_SERVICE_NAME, "service") != GX_OK)
        return GX_DONE;
    if (!known(req->service))
        return gx_call_fail(call, GX_STATUS_NOT_FOUND, "service: unknown service \"%s\"",
                            req->service);
    resp.status = status_now();
    return gx_call_reply(call, &resp.base);
}

static int
watch_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    const check_req_t *req = (const check_req_t *)msg;
    check_resp_t resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;

    if (gx_svc_validate_text(call, req->service, MAX_SERVICE_NAME, "service") != GX_OK)
        return GX_DONE;
    resp.status = known(req->service)
                      ? status_now()
                      : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    if (gx_call_send(call, &resp.base) < 0)
        return gx_call_fail(call, GX_STATUS_INTERNAL, "cannot send the health status");
    /* stays open: the next change is the drain (watch_drain) */
    return GX_AGAIN;
}

static void
watch_drain(gx_call_t *call, void *ctx)
{
    check_resp_t resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;

    resp.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    gx_call_send(call, &resp.base);
    gx_call_finish(call, GX_STATUS_UNAVAILABLE, "server is shutting down");
}

static const gx_method_t health_methods[] = {
    {.name = "Check", .kind = GX_RPC_UNARY, .start = check_start},
    {.name = "Watch", .kind = GX_RPC_SERVER_STREAMING, .start = watch_start,
     .on_drain = watch_drain},
    {.name = NULL},
};

static const gx_service_t health_service = {
    .desc = &grpc__health__v1__health__descriptor,
    .methods = health_methods,
};

static const gx_service_t *const health_services[] = {&health_service, NULL};

const gx_module_desc_t gx_svc_health_module = {
    .abi = GX_MODULE_ABI,
    .name = "health",
    .version = PACKAGE_VERSION,
    .edition = "community",
    .services = health_services,
};
