/* SPDX-License-Identifier: MIT */
/*
 * A galaxy-cli plugin that is nothing else: `hello say [NAME] [--shout]`
 * prints a greeting; `hello health` calls grpc.health.v1.Health/Check through
 * gx_cli_plugin_unary() and prints the answer (-o json: as JSON).  It proves
 * that a plain plugin binds every symbol at load and reaches galaxy-cli's
 * helpers and the command line's connection settings.
 */
#include <stdio.h>

#include <galaxy/gx_cli_plugin.h>

#include "grpc/health/v1/health.pb-c.h"

static int
hello_say(gx_cli_t *cli, int argc, char **argv)
{
    const char *who = argc > 0 ? argv[0] : "world";

    printf(gx_cli_plugin_opt(cli, "shout") ? "HELLO %s!\n" : "hello %s\n", who);
    return GX_CLI_PLUGIN_EXIT_OK;
}

static int
hello_health(gx_cli_t *cli, int argc, char **argv)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int rv = gx_cli_plugin_unary(cli, "/grpc.health.v1.Health/Check", &req.base,
                                 &grpc__health__v1__health_check_response__descriptor, &resp);

    if (rv != GX_CLI_PLUGIN_EXIT_OK)
        return rv;
    if (gx_cli_plugin_output(cli) == GX_CLI_PLUGIN_OUT_JSON)
        rv = gx_cli_plugin_print_json(resp);
    else
        printf("status %d\n", (int)((Grpc__Health__V1__HealthCheckResponse *)resp)->status);
    protobuf_c_message_free_unpacked(resp, NULL);
    return rv;
}

static const gx_cli_plugin_cmd_t hello_cmds[] = {
    {"hello", "say", "[NAME]", "shout", 0, 1, "print a greeting", hello_say},
    {"hello", "health", "", NULL, 0, 0, "ask the server's health", hello_health},
    {NULL, NULL, NULL, NULL, 0, 0, NULL, NULL},
};

static const gx_cli_plugin_t hello_plugin = {
    .abi = GX_CLI_PLUGIN_ABI, .name = "hello", .version = "0.1", .commands = hello_cmds};

GX_CLI_PLUGIN(hello_plugin);
