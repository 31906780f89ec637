/* SPDX-License-Identifier: MIT */
/*
 * galaxy-cli health: grpc.health.v1.Health Check and Watch, as probes and
 * scripts use them.  `check` exits 0 only for SERVING; `watch` prints every
 * status the server sends, one line each (a word, or one JSON document),
 * flushed at once so that a pipe sees it as it happens.
 */
#include "config.h"

#include "cli/gx_cli.h"

#include <stdio.h>

#include "grpc/health/v1/health.pb-c.h"

#define METHOD_CHECK "/grpc.health.v1.Health/Check"
#define METHOD_WATCH "/grpc.health.v1.Health/Watch"

typedef Grpc__Health__V1__HealthCheckResponse health_resp_t;

typedef struct {
    gx_cli_t *cli;
    uint32_t count; /* stop after this many statuses; 0: never */
    uint32_t seen;
    int exit;
} watch_t;

static const char *
status_name(int status)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
        &grpc__health__v1__health_check_response__serving_status__descriptor, status);

    return v != NULL ? v->name : "UNKNOWN";
}

/* One status on stdout. @return an exit code */
static int
status_print(const gx_cli_t *cli, const health_resp_t *resp)
{
    if (cli->output == GX_CLI_OUT_JSON)
        return gx_cli_print_json(&resp->base);
    if (printf("%s\n", status_name(resp->status)) < 0 || fflush(stdout) != 0) {
        gx_cli_error("cannot write the output");
        return GX_CLI_EXIT_UNAVAILABLE;
    }
    return GX_CLI_EXIT_OK;
}

static int
health_check(gx_cli_t *cli, int argc, char **argv)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    ProtobufCMessage *msg = NULL;
    const health_resp_t *resp;
    int rv;

    req.service = argc > 0 ? argv[0] : "";
    rv = gx_cli_unary(cli, METHOD_CHECK, &req.base,
                      &grpc__health__v1__health_check_response__descriptor, &msg);
    if (rv != GX_CLI_EXIT_OK)
        return rv;
    resp = (const health_resp_t *)msg;
    rv = status_print(cli, resp);
    if (rv == GX_CLI_EXIT_OK &&
        resp->status != GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING)
        rv = GX_CLI_EXIT_NO;
    protobuf_c_message_free_unpacked(msg, NULL);
    return rv;
}

static int
watch_msg(const ProtobufCMessage *msg, void *arg)
{
    watch_t *w = arg;

    w->exit = status_print(w->cli, (const health_resp_t *)msg);
    if (w->exit != GX_CLI_EXIT_OK)
        return 1;
    return w->count != 0 && ++w->seen >= w->count;
}

static int
health_watch(gx_cli_t *cli, int argc, char **argv)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    watch_t w = {.cli = cli};
    const char *count = gx_cli_opt(cli, "count");
    int rv;

    if (count != NULL && gx_cli_parse_u32("count", count, 1, UINT32_MAX, &w.count) != 0)
        return GX_CLI_EXIT_USAGE;
    req.service = argc > 0 ? argv[0] : "";
    rv = gx_cli_stream(cli, METHOD_WATCH, &req.base,
                       &grpc__health__v1__health_check_response__descriptor, watch_msg, &w);
    return w.exit != GX_CLI_EXIT_OK ? w.exit : rv;
}

const gx_cli_cmd_t gx_cli_cmds_health[] = {
    {"health", "", "[SERVICE]", NULL, 0, 1,
     "health check: exit 0 when SERVING, 1 when not, 2 when unreachable (a readiness probe)",
     health_check},
    {"health", "check", "[SERVICE]", NULL, 0, 1,
     "ask whether the server (or SERVICE) is serving; exit 1 unless SERVING", health_check},
    {"health", "watch", "[SERVICE]", "count=N", 0, 1,
     "print each serving status as it arrives (--count N: stop after N)", health_watch},
    {NULL, NULL, NULL, NULL, 0, 0, NULL, NULL},
};
