/* SPDX-License-Identifier: MIT */
/*
 * galaxy-cli version: the client's version, then the server's state.  The
 * API has no version RPC, so the server line says what grpc.health.v1 Check
 * (service "") answers: SERVING or NOT_SERVING, or UNREACHABLE when no answer
 * came, ERROR when the server answered with an error status.  The exit code
 * follows the server's answer like any command (0 only when SERVING); with
 * --client (or --quiet, which prints the bare version) the server is not
 * asked and the exit code is 0.
 */
#include "config.h"

#include <stdio.h>

#include "cli/gx_cli.h"
#include "cli/gx_cli_json.h"
#include "grpc/health/v1/health.pb-c.h"

#define METHOD_CHECK "/grpc.health.v1.Health/Check"

/* The server's state in a word, and the exit code that goes with it. */
static int
server_state(gx_cli_t *cli, const char **state)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    ProtobufCMessage *msg = NULL;
    const ProtobufCEnumValue *v;
    int rv = gx_cli_unary(cli, METHOD_CHECK, &req.base,
                          &grpc__health__v1__health_check_response__descriptor, &msg);

    if (rv == GX_CLI_EXIT_OK) {
        int status = ((const Grpc__Health__V1__HealthCheckResponse *)msg)->status;
        v = protobuf_c_enum_descriptor_get_value(
            &grpc__health__v1__health_check_response__serving_status__descriptor, status);
        *state = v != NULL ? v->name : "UNKNOWN";
        if (status != GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING)
            rv = GX_CLI_EXIT_NO;
    } else {
        *state = rv == GX_CLI_EXIT_NO ? "ERROR" : "UNREACHABLE";
    }
    protobuf_c_message_free_unpacked(msg, NULL);
    return rv;
}

static int
version_json(const gx_cli_t *cli, const char *state)
{
    json_t *doc = json_pack("{s:s}", "client", PACKAGE_VERSION);
    int rv = doc != NULL ? 0 : -1;

    if (rv == 0 && state != NULL)
        rv = json_object_set_new(
            doc, "server", json_pack("{s:s, s:s}", "address", cli->copts.addr, "status", state));
    return gx_cli_print_json_doc(doc, rv);
}

static int
version(gx_cli_t *cli, int argc, char **argv)
{
    const char *state = NULL;
    int rv = GX_CLI_EXIT_OK;

    if (cli->quiet) {
        printf("%s\n", PACKAGE_VERSION);
        return GX_CLI_EXIT_OK;
    }
    if (cli->output == GX_CLI_OUT_TABLE) {
        /* the client's line first, whatever the server does */
        printf("client: galaxy-cli %s\n", PACKAGE_VERSION);
        fflush(stdout);
    }
    if (gx_cli_opt(cli, "client") == NULL)
        rv = server_state(cli, &state);
    if (cli->output == GX_CLI_OUT_JSON)
        return version_json(cli, state) == GX_CLI_EXIT_OK ? rv : GX_CLI_EXIT_UNAVAILABLE;
    if (state != NULL)
        printf("server: %s %s\n", cli->copts.addr, state);
    return rv;
}

const gx_cli_cmd_t gx_cli_cmds_version[] = {
    {"version", "", "", "client", 0, 0,
     "print the client's version and the server's state (--client: no server)", version},
    {NULL, NULL, NULL, NULL, 0, 0, NULL, NULL},
};
