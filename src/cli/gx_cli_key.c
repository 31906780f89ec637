/* SPDX-License-Identifier: MIT */
/*
 * galaxy-cli key: create, list and revoke API keys (PoolAdmin, admin role).
 * The server shows a new key's secret once and keeps only its hash, so
 * `key create` prints it where it cannot be missed: with --quiet the secret
 * alone (for `SECRET=$(galaxy-cli -q key create …)`), in a table with a line
 * saying it will not be shown again, in JSON as the response's `secret`.
 */
#include "config.h"

#include <stdio.h>

#include "cli/gx_cli.h"
#include "cli/gx_cli_table.h"
#include "galaxy/pool/v1/pool.pb-c.h"

#define SVC "/galaxy.pool.v1.PoolAdmin/"

typedef Galaxy__Pool__V1__ApiKey apikey_t;

static const char *
role_str(int role, char *buf)
{
    return gx_cli_enum_str(&galaxy__pool__v1__role__descriptor, role, buf);
}

static void
key_row(gx_cli_table_t *t, const apikey_t *k)
{
    char buf[GX_CLI_ENUM_LEN], when[GX_CLI_TIME_LEN];

    gx_cli_table_add(t, "%s", k->id);
    gx_cli_table_add(t, "%s", k->name[0] != '\0' ? k->name : "-");
    gx_cli_table_add(t, "%s", role_str(k->role, buf));
    if (k->n_pools == 0)
        gx_cli_table_add(t, "all");
    else
        gx_cli_table_add_list(t, k->pools, k->n_pools);
    gx_cli_table_add(t, "%s", gx_cli_time_str(k->created_unix_ms, when));
    gx_cli_table_add(t, "%s", k->revoked ? "yes" : "no");
}

static int
keys_print_table(apikey_t *const *keys, size_t n)
{
    gx_cli_table_t *t = gx_cli_table_new("ID", "NAME", "ROLE", "POOLS", "CREATED", "REVOKED", NULL);
    int rv;

    for (size_t i = 0; i < n; i++)
        key_row(t, keys[i]);
    rv = gx_cli_table_print(t, stdout);
    gx_cli_table_free(t);
    return rv == 0 ? GX_CLI_EXIT_OK : GX_CLI_EXIT_UNAVAILABLE;
}

static int
created_print_table(const Galaxy__Pool__V1__CreateApiKeyResponse *r)
{
    gx_cli_table_t *t = gx_cli_table_kv_new();
    const apikey_t *k = r->key;
    char buf[GX_CLI_ENUM_LEN], when[GX_CLI_TIME_LEN];
    int rv;

    if (k != NULL) {
        gx_cli_table_kv(t, "ID", "%s", k->id);
        gx_cli_table_kv(t, "Name", "%s", k->name);
        gx_cli_table_kv(t, "Role", "%s", role_str(k->role, buf));
        if (k->n_pools == 0)
            gx_cli_table_kv(t, "Pools", "all");
        else
            gx_cli_table_kv_list(t, "Pools", k->pools, k->n_pools);
        gx_cli_table_kv(t, "Created", "%s", gx_cli_time_str(k->created_unix_ms, when));
    }
    gx_cli_table_kv(t, "Secret", "%s", r->secret);
    rv = gx_cli_table_print(t, stdout);
    gx_cli_table_free(t);
    if (rv == 0 && printf("\nThe secret is shown only this once: store it now.\n") < 0)
        rv = -1;
    return rv == 0 ? GX_CLI_EXIT_OK : GX_CLI_EXIT_UNAVAILABLE;
}

static int
key_create(gx_cli_t *cli, int argc, char **argv)
{
    Galaxy__Pool__V1__CreateApiKeyRequest req = GALAXY__POOL__V1__CREATE_API_KEY_REQUEST__INIT;
    const Galaxy__Pool__V1__CreateApiKeyResponse *resp;
    const char *role = gx_cli_opt(cli, "role");
    ProtobufCMessage *msg = NULL;
    int v, rv;

    rv = gx_cli_parse_enum("role", &galaxy__pool__v1__role__descriptor, role, &v);
    if (rv == 0)
        rv = gx_cli_opt_list(cli, "pool", &req.pools, &req.n_pools);
    if (rv != 0)
        return rv;
    req.name = argv[0];
    req.role = (Galaxy__Pool__V1__Role)v;
    rv = gx_cli_unary(cli, SVC "CreateApiKey", &req.base,
                      &galaxy__pool__v1__create_api_key_response__descriptor, &msg);
    if (rv != GX_CLI_EXIT_OK)
        return rv;
    resp = (const Galaxy__Pool__V1__CreateApiKeyResponse *)msg;
    if (cli->quiet)
        printf("%s\n", resp->secret);
    else if (cli->output == GX_CLI_OUT_JSON)
        rv = gx_cli_print_json(msg);
    else
        rv = created_print_table(resp);
    protobuf_c_message_free_unpacked(msg, NULL);
    return rv;
}

static int
key_list(gx_cli_t *cli, int argc, char **argv)
{
    Galaxy__Pool__V1__ListApiKeysRequest req = GALAXY__POOL__V1__LIST_API_KEYS_REQUEST__INIT;
    const Galaxy__Pool__V1__ListApiKeysResponse *resp;
    ProtobufCMessage *msg = NULL;
    int rv = gx_cli_unary(cli, SVC "ListApiKeys", &req.base,
                          &galaxy__pool__v1__list_api_keys_response__descriptor, &msg);

    if (rv != GX_CLI_EXIT_OK)
        return rv;
    resp = (const Galaxy__Pool__V1__ListApiKeysResponse *)msg;
    if (cli->quiet)
        for (size_t i = 0; i < resp->n_keys; i++)
            printf("%s\n", resp->keys[i]->id);
    else if (cli->output == GX_CLI_OUT_JSON)
        rv = gx_cli_print_json_list((ProtobufCMessage **)resp->keys, resp->n_keys);
    else
        rv = keys_print_table(resp->keys, resp->n_keys);
    protobuf_c_message_free_unpacked(msg, NULL);
    return rv;
}

static int
key_revoke(gx_cli_t *cli, int argc, char **argv)
{
    Galaxy__Pool__V1__RevokeApiKeyRequest req = GALAXY__POOL__V1__REVOKE_API_KEY_REQUEST__INIT;
    ProtobufCMessage *msg = NULL;
    int rv;

    req.id = argv[0];
    rv = gx_cli_unary(cli, SVC "RevokeApiKey", &req.base,
                      &galaxy__pool__v1__revoke_api_key_response__descriptor, &msg);
    if (rv == GX_CLI_EXIT_OK && cli->output == GX_CLI_OUT_JSON && !cli->quiet)
        rv = gx_cli_print_json(msg);
    else if (rv == GX_CLI_EXIT_OK && !cli->quiet)
        printf("key %s revoked\n", argv[0]);
    protobuf_c_message_free_unpacked(msg, NULL);
    return rv;
}

const gx_cli_cmd_t gx_cli_cmds_key[] = {
    {"key", "create", "NAME", "!role=viewer|node|submitter|operator|admin pool=POOL", 1, 1,
     "create an API key, print its secret (only once); no --pool: every pool", key_create},
    {"key", "list", "", NULL, 0, 0, "list the API keys (never their secrets)", key_list},
    {"key", "revoke", "ID", NULL, 1, 1, "revoke an API key: it is refused from now on", key_revoke},
    {NULL, NULL, NULL, NULL, 0, 0, NULL, NULL},
};
