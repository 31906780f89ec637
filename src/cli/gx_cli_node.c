/* SPDX-License-Identifier: MIT */
/*
 * galaxy-cli node: list the nodes of a pool (Discovery.ListNodes, one page or
 * --all of them by following the page tokens: gx_cli_page.c), show one
 * (GetNode), drain one (NodeRegistry.Drain) and deregister one with its lease
 * token.  A command that answers with a node prints it as a "Field: value"
 * table, its JSON, or its id with --quiet.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "cli/gx_cli.h"
#include "cli/gx_cli_table.h"
#include "galaxy/pool/v1/pool.pb-c.h"

#define METHOD_LIST "/galaxy.pool.v1.Discovery/ListNodes"
#define METHOD_GET "/galaxy.pool.v1.Discovery/GetNode"
#define METHOD_DRAIN "/galaxy.pool.v1.NodeRegistry/Drain"
#define METHOD_DEREGISTER "/galaxy.pool.v1.NodeRegistry/Deregister"

typedef Galaxy__Pool__V1__Node node_t;

/* ------------------------------------------------------------------ output */

static const char *
state_str(int state, char *buf)
{
    return gx_cli_enum_str(&galaxy__pool__v1__node_state__descriptor, state, buf);
}

static void
node_row(gx_cli_table_t *t, const node_t *n, int64_t now)
{
    char buf[GX_CLI_ENUM_LEN], seen[GX_CLI_TIME_LEN], age[GX_CLI_TIME_LEN];

    gx_cli_table_add(t, "%s", n->id);
    gx_cli_table_add(t, "%s", state_str(n->state, buf));
    gx_cli_table_add_list(t, n->specializations, n->n_specializations);
    gx_cli_table_add(t, "%s", n->address[0] != '\0' ? n->address : "-");
    gx_cli_table_add(t, "%.2f", n->load);
    gx_cli_table_add(t, "%u", n->running_jobs);
    gx_cli_table_add(t, "%s", gx_cli_age_str(n->last_heartbeat_unix_ms, now, seen));
    gx_cli_table_add(t, "%s", gx_cli_age_str(n->registered_unix_ms, now, age));
}

static int
nodes_print_table(ProtobufCMessage *const *nodes, size_t n)
{
    gx_cli_table_t *t = gx_cli_table_new("ID", "STATE", "SPECIALIZATIONS", "ADDRESS", "LOAD",
                                         "JOBS", "LAST SEEN", "AGE", NULL);
    int64_t now = gx_cli_now_ms();
    int rv;

    for (size_t i = 0; i < n; i++)
        node_row(t, (const node_t *)nodes[i], now);
    rv = gx_cli_table_print(t, stdout);
    gx_cli_table_free(t);
    return rv == 0 ? GX_CLI_EXIT_OK : GX_CLI_EXIT_UNAVAILABLE;
}

/* A capacity: what is not limited (0) shows as "-". */
static void
capacity_kv(gx_cli_table_t *t, const Galaxy__Pool__V1__Resources *r)
{
    char cpu[24] = "-", mem[GX_CLI_TIME_LEN] = "-", gpus[16] = "-", jobs[16] = "-";

    if (r == NULL) {
        gx_cli_table_kv(t, "Capacity", "-");
        return;
    }
    if (r->cpu_millis != 0)
        snprintf(cpu, sizeof(cpu), "%um", r->cpu_millis);
    if (r->memory_bytes != 0)
        gx_cli_bytes_str(r->memory_bytes, mem);
    if (r->gpus != 0)
        snprintf(gpus, sizeof(gpus), "%u", r->gpus);
    if (r->max_jobs != 0)
        snprintf(jobs, sizeof(jobs), "%u", r->max_jobs);
    gx_cli_table_kv(t, "Capacity", "cpu %s, memory %s, gpus %s, max jobs %s", cpu, mem, gpus, jobs);
}

static int
node_print_fields(const node_t *n)
{
    gx_cli_table_t *t = gx_cli_table_kv_new();
    char buf[GX_CLI_ENUM_LEN], when[GX_CLI_TIME_LEN], age[GX_CLI_TIME_LEN];
    int64_t now = gx_cli_now_ms();
    int rv;

    gx_cli_table_kv(t, "ID", "%s", n->id);
    gx_cli_table_kv(t, "Pool", "%s", n->pool);
    gx_cli_table_kv(t, "State", "%s", state_str(n->state, buf));
    gx_cli_table_kv_list(t, "Specializations", n->specializations, n->n_specializations);
    gx_cli_table_kv_map(t, "Labels", (ProtobufCMessage **)n->labels, n->n_labels);
    gx_cli_table_kv(t, "Address", "%s", n->address[0] != '\0' ? n->address : "-");
    gx_cli_table_kv(t, "Version", "%s", n->version[0] != '\0' ? n->version : "-");
    capacity_kv(t, n->capacity);
    gx_cli_table_kv(t, "Load", "%.2f", n->load);
    gx_cli_table_kv(t, "Running jobs", "%u", n->running_jobs);
    gx_cli_table_kv(t, "Registered", "%s (%s ago)", gx_cli_time_str(n->registered_unix_ms, when),
                    gx_cli_age_str(n->registered_unix_ms, now, age));
    gx_cli_table_kv(t, "Last heartbeat", "%s (%s ago)",
                    gx_cli_time_str(n->last_heartbeat_unix_ms, when),
                    gx_cli_age_str(n->last_heartbeat_unix_ms, now, age));
    gx_cli_table_kv(t, "Revision", "%llu", (unsigned long long)n->revision);
    gx_cli_table_kv(t, "Owner", "%s", n->owner[0] != '\0' ? n->owner : "anonymous");
    gx_cli_table_kv(t, "Flaps", "%u", n->flap_count);
    rv = gx_cli_table_print(t, stdout);
    gx_cli_table_free(t);
    return rv == 0 ? GX_CLI_EXIT_OK : GX_CLI_EXIT_UNAVAILABLE;
}

/* Makes the call, prints the Node it answers with. */
static int
node_call(gx_cli_t *cli, const char *method, const ProtobufCMessage *req)
{
    ProtobufCMessage *msg = NULL;
    const node_t *n;
    int rv = gx_cli_unary(cli, method, req, &galaxy__pool__v1__node__descriptor, &msg);

    if (rv != GX_CLI_EXIT_OK)
        return rv;
    n = (const node_t *)msg;
    if (cli->quiet)
        printf("%s\n", n->id);
    else if (cli->output == GX_CLI_OUT_JSON)
        rv = gx_cli_print_json(msg);
    else
        rv = node_print_fields(n);
    protobuf_c_message_free_unpacked(msg, NULL);
    return rv;
}

/* ------------------------------------------------------------------ list */

static const char *
node_id(const ProtobufCMessage *item)
{
    return ((const node_t *)item)->id;
}

static const gx_cli_page_t nodes_page = {
    .method = METHOD_LIST,
    .resp_desc = &galaxy__pool__v1__list_nodes_response__descriptor,
    .items = "nodes",
    .item_id = node_id,
    .print_table = nodes_print_table,
};

/* The request's page size and filters from the options. @return an exit code */
static int
list_request(gx_cli_t *cli, Galaxy__Pool__V1__ListNodesRequest *req)
{
    const char *spec = gx_cli_opt(cli, "spec");
    int rv = gx_cli_page_opts(cli, &req->base);

    if (spec != NULL)
        req->specialization = (char *)spec;
    if (rv == 0)
        rv = gx_cli_opt_map(cli, "label", &req->base, "labels", NULL);
    if (rv == 0)
        rv = gx_cli_opt_enum_list(cli, "state", &req->base, "states");
    return rv;
}

static int
node_list(gx_cli_t *cli, int argc, char **argv)
{
    Galaxy__Pool__V1__ListNodesRequest req = GALAXY__POOL__V1__LIST_NODES_REQUEST__INIT;
    int rv = list_request(cli, &req);

    req.pool = argv[0];
    return rv != 0 ? rv : gx_cli_page_list(cli, &nodes_page, &req.base);
}

/* ------------------------------------------------------------------ one node */

static int
node_show(gx_cli_t *cli, int argc, char **argv)
{
    Galaxy__Pool__V1__GetNodeRequest req = GALAXY__POOL__V1__GET_NODE_REQUEST__INIT;

    req.pool = argv[0];
    req.node_id = argv[1];
    return node_call(cli, METHOD_GET, &req.base);
}

static int
node_drain(gx_cli_t *cli, int argc, char **argv)
{
    Galaxy__Pool__V1__DrainRequest req = GALAXY__POOL__V1__DRAIN_REQUEST__INIT;

    req.pool = argv[0];
    req.node_id = argv[1];
    return node_call(cli, METHOD_DRAIN, &req.base);
}

static int
node_deregister(gx_cli_t *cli, int argc, char **argv)
{
    Galaxy__Pool__V1__DeregisterRequest req = GALAXY__POOL__V1__DEREGISTER_REQUEST__INIT;
    const char *token = gx_cli_opt(cli, "lease-token");
    ProtobufCMessage *msg = NULL;
    int rv;

    if (token == NULL && (token = getenv("GALAXY_LEASE_TOKEN")) != NULL && token[0] == '\0')
        token = NULL;
    if (token == NULL)
        return gx_cli_usage_error(cli, "--lease-token is required (or GALAXY_LEASE_TOKEN)");
    req.pool = argv[0];
    req.node_id = argv[1];
    req.lease_token = (char *)token;
    rv = gx_cli_unary(cli, METHOD_DEREGISTER, &req.base,
                      &galaxy__pool__v1__deregister_response__descriptor, &msg);
    if (rv == GX_CLI_EXIT_OK && cli->output == GX_CLI_OUT_JSON && !cli->quiet)
        rv = gx_cli_print_json(msg);
    else if (rv == GX_CLI_EXIT_OK && !cli->quiet)
        printf("node %s deregistered from pool %s\n", argv[1], argv[0]);
    protobuf_c_message_free_unpacked(msg, NULL);
    return rv;
}

const gx_cli_cmd_t gx_cli_cmds_node[] = {
    {"node", "list", "POOL",
     "spec=SPEC label=KEY=VALUE state=STATE page-size=N page-token=TOKEN all", 1, 1,
     "list a pool's nodes, a page (--all: every page); --state healthy,down", node_list},
    {"node", "show", "POOL ID", NULL, 2, 2, "show one node", node_show},
    {"node", "drain", "POOL ID", NULL, 2, 2, "drain a node: it gets no new jobs (operator)",
     node_drain},
    {"node", "deregister", "POOL ID", "lease-token=TOKEN", 2, 2,
     "remove a node, with its lease token (or GALAXY_LEASE_TOKEN)", node_deregister},
    {NULL, NULL, NULL, NULL, 0, 0, NULL, NULL},
};
