/* SPDX-License-Identifier: MIT */
/*
 * galaxy-cli pool: list, show, create, update and delete node pools
 * (PoolAdmin).  create and update share one function that builds a Pool from
 * the options; the server applies update's rule (zero fields keep the stored
 * value, labels and specializations replace it when given).  Every command
 * that answers with a pool prints it the same way: a "Field: value" table, its
 * JSON, or its name with --quiet.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli/gx_cli.h"
#include "cli/gx_cli_table.h"
#include "galaxy/pool/v1/pool.pb-c.h"

#define SVC "/galaxy.pool.v1.PoolAdmin/"

typedef Galaxy__Pool__V1__Pool pool_t;

/* The options create and update share (create adds visibility). */
#define POOL_OPTS                                                                                  \
    "tier=TIER description=TEXT interval-ms=MS ttl-ms=MS routing-policy=NAME max-nodes=N "         \
    "spec=SPEC label=KEY=VALUE"

/* ------------------------------------------------------------------ output */

static void
pool_row(gx_cli_table_t *t, const pool_t *p)
{
    char buf[GX_CLI_ENUM_LEN], when[GX_CLI_TIME_LEN], hb[GX_CLI_TIME_LEN], ttl[GX_CLI_TIME_LEN];

    gx_cli_table_add(t, "%s", p->name);
    gx_cli_table_add(
        t, "%s", gx_cli_enum_str(&galaxy__pool__v1__visibility__descriptor, p->visibility, buf));
    gx_cli_table_add(t, "%s", p->tier[0] != '\0' ? p->tier : "-");
    if (p->max_nodes != 0)
        gx_cli_table_add(t, "%u/%u", p->node_count, p->max_nodes);
    else
        gx_cli_table_add(t, "%u", p->node_count);
    gx_cli_table_add(t, "%s", p->routing_policy);
    gx_cli_table_add(t, "%s/%s", gx_cli_duration_str(p->heartbeat_interval_ms, hb),
                     gx_cli_duration_str(p->node_ttl_ms, ttl));
    gx_cli_table_add_list(t, p->specializations, p->n_specializations);
    gx_cli_table_add(t, "%s", gx_cli_time_str(p->created_unix_ms, when));
}

static int
pools_print_table(pool_t *const *pools, size_t n)
{
    gx_cli_table_t *t = gx_cli_table_new("NAME", "VISIBILITY", "TIER", "NODES", "POLICY",
                                         "HEARTBEAT/TTL", "SPECIALIZATIONS", "CREATED", NULL);
    int rv;

    for (size_t i = 0; i < n; i++)
        pool_row(t, pools[i]);
    rv = gx_cli_table_print(t, stdout);
    gx_cli_table_free(t);
    return rv == 0 ? GX_CLI_EXIT_OK : GX_CLI_EXIT_UNAVAILABLE;
}

static int
pool_print_fields(const pool_t *p)
{
    gx_cli_table_t *t = gx_cli_table_kv_new();
    char buf[GX_CLI_ENUM_LEN], when[GX_CLI_TIME_LEN], hb[GX_CLI_TIME_LEN], ttl[GX_CLI_TIME_LEN];
    int rv;

    gx_cli_table_kv(t, "Name", "%s", p->name);
    gx_cli_table_kv(t, "Visibility", "%s",
                    gx_cli_enum_str(&galaxy__pool__v1__visibility__descriptor, p->visibility, buf));
    gx_cli_table_kv(t, "Tier", "%s", p->tier[0] != '\0' ? p->tier : "-");
    gx_cli_table_kv(t, "Description", "%s", p->description[0] != '\0' ? p->description : "-");
    gx_cli_table_kv(t, "Nodes", "%u", p->node_count);
    if (p->max_nodes != 0)
        gx_cli_table_kv(t, "Max nodes", "%u", p->max_nodes);
    else
        gx_cli_table_kv(t, "Max nodes", "unlimited");
    gx_cli_table_kv(t, "Heartbeat", "%s (%u ms)", gx_cli_duration_str(p->heartbeat_interval_ms, hb),
                    p->heartbeat_interval_ms);
    gx_cli_table_kv(t, "Node TTL", "%s (%u ms)", gx_cli_duration_str(p->node_ttl_ms, ttl),
                    p->node_ttl_ms);
    gx_cli_table_kv(t, "Routing policy", "%s", p->routing_policy);
    if (p->n_specializations == 0)
        gx_cli_table_kv(t, "Specializations", "any");
    else
        gx_cli_table_kv_list(t, "Specializations", p->specializations, p->n_specializations);
    gx_cli_table_kv_map(t, "Labels", (ProtobufCMessage **)p->labels, p->n_labels);
    gx_cli_table_kv(t, "Self-preservation", "%s", p->self_preservation ? "on" : "off");
    gx_cli_table_kv(t, "Created", "%s", gx_cli_time_str(p->created_unix_ms, when));
    rv = gx_cli_table_print(t, stdout);
    gx_cli_table_free(t);
    return rv == 0 ? GX_CLI_EXIT_OK : GX_CLI_EXIT_UNAVAILABLE;
}

/* A pool the server answered with, as the line asks. */
static int
pool_print(const gx_cli_t *cli, const pool_t *p)
{
    if (cli->quiet)
        return printf("%s\n", p->name) < 0 ? GX_CLI_EXIT_UNAVAILABLE : GX_CLI_EXIT_OK;
    if (cli->output == GX_CLI_OUT_JSON)
        return gx_cli_print_json(&p->base);
    return pool_print_fields(p);
}

/* Makes the call, prints the Pool it answers with. */
static int
pool_call(gx_cli_t *cli, const char *method, const ProtobufCMessage *req)
{
    ProtobufCMessage *msg = NULL;
    int rv = gx_cli_unary(cli, method, req, &galaxy__pool__v1__pool__descriptor, &msg);

    if (rv == GX_CLI_EXIT_OK)
        rv = pool_print(cli, (const pool_t *)msg);
    protobuf_c_message_free_unpacked(msg, NULL);
    return rv;
}

/* The pool the options of create and update describe. @return an exit code */
static int
pool_from_opts(gx_cli_t *cli, pool_t *p)
{
    static const struct {
        const char *opt;
        size_t offset;
    } strs[] = {{"tier", offsetof(pool_t, tier)},
                {"description", offsetof(pool_t, description)},
                {"routing-policy", offsetof(pool_t, routing_policy)}},
      nums[] = {{"interval-ms", offsetof(pool_t, heartbeat_interval_ms)},
                {"ttl-ms", offsetof(pool_t, node_ttl_ms)},
                {"max-nodes", offsetof(pool_t, max_nodes)}};
    const char *v;
    int rv = 0;

    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        if ((v = gx_cli_opt(cli, strs[i].opt)) != NULL)
            *(const char **)((char *)p + strs[i].offset) = v;
    for (size_t i = 0; rv == 0 && i < sizeof(nums) / sizeof(nums[0]); i++)
        if ((v = gx_cli_opt(cli, nums[i].opt)) != NULL)
            rv = gx_cli_parse_u32(nums[i].opt, v, 0, UINT32_MAX,
                                  (uint32_t *)((char *)p + nums[i].offset));
    if (rv == 0)
        rv = gx_cli_opt_list(cli, "spec", &p->specializations, &p->n_specializations);
    if (rv == 0)
        rv = gx_cli_opt_map(cli, "label", &p->base, "labels", NULL);
    return rv;
}

/* ------------------------------------------------------------------ commands */

static int
pool_list(gx_cli_t *cli, int argc, char **argv)
{
    Galaxy__Pool__V1__ListPoolsRequest req = GALAXY__POOL__V1__LIST_POOLS_REQUEST__INIT;
    Galaxy__Pool__V1__ListPoolsResponse *resp;
    ProtobufCMessage *msg = NULL;
    int rv = gx_cli_unary(cli, SVC "ListPools", &req.base,
                          &galaxy__pool__v1__list_pools_response__descriptor, &msg);

    (void)argc, (void)argv;
    if (rv != GX_CLI_EXIT_OK)
        return rv;
    resp = (Galaxy__Pool__V1__ListPoolsResponse *)msg;
    if (cli->quiet)
        for (size_t i = 0; i < resp->n_pools; i++)
            printf("%s\n", resp->pools[i]->name);
    else if (cli->output == GX_CLI_OUT_JSON)
        rv = gx_cli_print_json_list((ProtobufCMessage **)resp->pools, resp->n_pools);
    else
        rv = pools_print_table(resp->pools, resp->n_pools);
    protobuf_c_message_free_unpacked(msg, NULL);
    return rv;
}

static int
pool_show(gx_cli_t *cli, int argc, char **argv)
{
    Galaxy__Pool__V1__GetPoolRequest req = GALAXY__POOL__V1__GET_POOL_REQUEST__INIT;

    (void)argc;
    req.name = argv[0];
    return pool_call(cli, SVC "GetPool", &req.base);
}

static int
pool_create(gx_cli_t *cli, int argc, char **argv)
{
    Galaxy__Pool__V1__CreatePoolRequest req = GALAXY__POOL__V1__CREATE_POOL_REQUEST__INIT;
    pool_t pool = GALAXY__POOL__V1__POOL__INIT;
    const char *vis = gx_cli_opt(cli, "visibility");
    int v, rv;

    (void)argc;
    rv = gx_cli_parse_enum("visibility", &galaxy__pool__v1__visibility__descriptor, vis, &v);
    if (rv == 0)
        rv = pool_from_opts(cli, &pool);
    if (rv != 0)
        return rv;
    pool.name = argv[0];
    pool.visibility = (Galaxy__Pool__V1__Visibility)v;
    req.pool = &pool;
    return pool_call(cli, SVC "CreatePool", &req.base);
}

static int
pool_update(gx_cli_t *cli, int argc, char **argv)
{
    Galaxy__Pool__V1__UpdatePoolRequest req = GALAXY__POOL__V1__UPDATE_POOL_REQUEST__INIT;
    pool_t pool = GALAXY__POOL__V1__POOL__INIT;
    int rv = pool_from_opts(cli, &pool);

    (void)argc;
    if (rv != 0)
        return rv;
    pool.name = argv[0];
    req.pool = &pool;
    return pool_call(cli, SVC "UpdatePool", &req.base);
}

static int
pool_delete(gx_cli_t *cli, int argc, char **argv)
{
    Galaxy__Pool__V1__DeletePoolRequest req = GALAXY__POOL__V1__DELETE_POOL_REQUEST__INIT;
    ProtobufCMessage *msg = NULL;
    int rv;

    (void)argc;
    req.name = argv[0];
    req.force = gx_cli_opt(cli, "force") != NULL;
    rv = gx_cli_unary(cli, SVC "DeletePool", &req.base,
                      &galaxy__pool__v1__delete_pool_response__descriptor, &msg);
    if (rv == GX_CLI_EXIT_OK && cli->output == GX_CLI_OUT_JSON && !cli->quiet)
        rv = gx_cli_print_json(msg);
    else if (rv == GX_CLI_EXIT_OK && !cli->quiet)
        printf("pool %s deleted\n", argv[0]);
    protobuf_c_message_free_unpacked(msg, NULL);
    return rv;
}

const gx_cli_cmd_t gx_cli_cmds_pool[] = {
    {"pool", "list", "", NULL, 0, 0, "list the pools you can see", pool_list},
    {"pool", "show", "NAME", NULL, 1, 1, "show one pool", pool_show},
    {"pool", "create", "NAME", "!visibility=public|private " POOL_OPTS, 1, 1,
     "create a pool; --spec and --label may be repeated, --spec takes a,b too", pool_create},
    {"pool", "update", "NAME", POOL_OPTS, 1, 1,
     "change a pool: what is not given is kept; --spec, --label replace", pool_update},
    {"pool", "delete", "NAME", "force", 1, 1,
     "delete a pool (--force: even when nodes remain in it)", pool_delete},
    {NULL, NULL, NULL, NULL, 0, 0, NULL, NULL},
};
