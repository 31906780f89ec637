/* SPDX-License-Identifier: MIT */
/*
 * rbac's galaxy-cli plugin (include/galaxy/gx_cli_plugin.h): the `rbac`
 * command group, exported by the same shared object as the server module.
 *
 *  - `rbac roles` prints the access table: what each role may do on the
 *    pools its credentials cover and on other public pools;
 *  - `rbac can ROLE ACTION [--private] [--not-covered]` evaluates it for one
 *    case, locally, and says OK or the status the server would refuse with;
 *  - `rbac check POOL` asks the server (GetPool, with the command line's
 *    credentials) whether the pool is visible to them, and prints its
 *    visibility and what each role may do there.
 *
 * No RPC tells a caller its own role, and ListApiKeys is for admins, so the
 * commands say what a role may do, not which role a key has.  The table is
 * rbac_rules.h, the one the ACCESS hook applies (rbac.c).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <galaxy/gx_cli_plugin.h>
#include <galaxy/gx_module.h>

#include "galaxy/pool/v1/pool.pb-c.h"
#include "rbac_rules.h"

static const struct {
    const char *name;
    gx_role_t role;
} roles[] = {
    {"anonymous", GX_ROLE_NONE},      {"viewer", GX_ROLE_VIEWER},     {"node", GX_ROLE_NODE},
    {"submitter", GX_ROLE_SUBMITTER}, {"operator", GX_ROLE_OPERATOR}, {"admin", GX_ROLE_ADMIN},
};
#define N_ROLES (sizeof(roles) / sizeof(roles[0]))

static const struct {
    const char *name;
    gx_access_t what;
} actions[] = {
    {"discover", GX_ACCESS_DISCOVER}, {"node", GX_ACCESS_NODE},   {"submit", GX_ACCESS_SUBMIT},
    {"operate", GX_ACCESS_OPERATE},   {"admin", GX_ACCESS_ADMIN},
};
#define N_ACTIONS (sizeof(actions) / sizeof(actions[0]))

static const char *const status_names[] = {
    [GX_STATUS_OK] = "OK",
    [GX_STATUS_NOT_FOUND] = "NOT_FOUND",
    [GX_STATUS_PERMISSION_DENIED] = "PERMISSION_DENIED",
    [GX_STATUS_UNAUTHENTICATED] = "UNAUTHENTICATED",
};

static const char *
status_name(gx_status_t st)
{
    return (size_t)st < sizeof(status_names) / sizeof(status_names[0]) && status_names[st]
               ? status_names[st]
               : "UNKNOWN";
}

/*
 * "discover,node,submit": what @role may do on a pool of visibility @vis
 * that its credentials cover or not; "-" for nothing.  @json: as a JSON array.
 */
static void
may_list(gx_role_t role, gx_pool_vis_t vis, int covered, int json, char *buf, size_t len)
{
    size_t n = 0;

    n += (size_t)snprintf(buf, len, "%s", json ? "[" : "");
    for (size_t i = 0; i < N_ACTIONS && n < len; i++) {
        if (rbac_rule(role, actions[i].what, 1, vis, covered) != GX_STATUS_OK)
            continue;
        n += (size_t)snprintf(buf + n, len - n, json ? "%s\"%s\"" : "%s%s",
                              n > (json ? 1u : 0u) ? "," : "", actions[i].name);
    }
    if (n < len)
        snprintf(buf + n, len - n, "%s", json ? "]" : n == 0 ? "-" : "");
}

static int
print_ok(int rv)
{
    if (rv < 0 || fflush(stdout) != 0) {
        gx_cli_plugin_error("cannot write the output");
        return GX_CLI_PLUGIN_EXIT_UNAVAILABLE;
    }
    return GX_CLI_PLUGIN_EXIT_OK;
}

/* ------------------------------------------------------------------ rbac roles */

static int
roles_json(void)
{
    char covered[128], public[128];
    int rv = printf("[");

    for (size_t i = 0; i < N_ROLES && rv >= 0; i++) {
        may_list(roles[i].role, GX_POOL_PRIVATE, roles[i].role != GX_ROLE_NONE, 1, covered,
                 sizeof(covered));
        may_list(roles[i].role, GX_POOL_PUBLIC, 0, 1, public, sizeof(public));
        rv = printf("%s{\"role\":\"%s\",\"coveredPools\":%s,\"otherPublicPools\":%s}",
                    i > 0 ? "," : "", roles[i].name, covered, public);
    }
    return print_ok(rv < 0 ? rv : printf("]\n"));
}

static int
rbac_roles(gx_cli_t *cli, int argc, char **argv)
{
    char covered[128], public[128];
    int rv;

    switch (gx_cli_plugin_output(cli)) {
    case GX_CLI_PLUGIN_OUT_JSON:
        return roles_json();
    case GX_CLI_PLUGIN_OUT_QUIET:
        for (size_t i = 0; i < N_ROLES; i++)
            printf("%s\n", roles[i].name);
        return print_ok(0);
    default:
        break;
    }
    rv = printf("%-10s %-35s %s\n", "ROLE", "ON POOLS ITS CREDENTIALS COVER",
                "ON OTHER PUBLIC POOLS");
    for (size_t i = 0; i < N_ROLES && rv >= 0; i++) {
        may_list(roles[i].role, GX_POOL_PRIVATE, 1, 0, covered, sizeof(covered));
        may_list(roles[i].role, GX_POOL_PUBLIC, 0, 0, public, sizeof(public));
        rv = printf("%-10s %-35s %s\n", roles[i].name,
                    roles[i].role == GX_ROLE_NONE ? "-" : covered, public);
    }
    if (rv >= 0)
        rv = printf("Private pools that credentials do not cover answer NOT_FOUND, as missing "
                    "ones do.\n");
    return print_ok(rv);
}

/* ------------------------------------------------------------------ rbac can */

static int
lookup_role(const char *s, gx_role_t *out)
{
    for (size_t i = 0; i < N_ROLES; i++) {
        if (strcasecmp(s, roles[i].name) == 0 ||
            (roles[i].role == GX_ROLE_NONE && strcasecmp(s, "none") == 0)) {
            *out = roles[i].role;
            return 0;
        }
    }
    return -1;
}

static int
lookup_action(const char *s, gx_access_t *out)
{
    for (size_t i = 0; i < N_ACTIONS; i++) {
        if (strcasecmp(s, actions[i].name) == 0) {
            *out = actions[i].what;
            return 0;
        }
    }
    return -1;
}

static int
rbac_can(gx_cli_t *cli, int argc, char **argv)
{
    gx_pool_vis_t vis = gx_cli_plugin_opt(cli, "private") ? GX_POOL_PRIVATE : GX_POOL_PUBLIC;
    int covered = gx_cli_plugin_opt(cli, "not-covered") == NULL;
    gx_role_t role;
    gx_access_t what;
    gx_status_t st;
    int rv;

    if (lookup_role(argv[0], &role) != 0)
        return gx_cli_plugin_usage_error(cli,
                                         "ROLE: expected anonymous, viewer, node, "
                                         "submitter, operator or admin, got '%s'",
                                         argv[0]);
    if (lookup_action(argv[1], &what) != 0)
        return gx_cli_plugin_usage_error(cli,
                                         "ACTION: expected discover, node, submit, "
                                         "operate or admin, got '%s'",
                                         argv[1]);
    st = rbac_rule(role, what, 1, vis, role != GX_ROLE_NONE && covered);
    if (gx_cli_plugin_output(cli) == GX_CLI_PLUGIN_OUT_JSON)
        rv = printf("{\"allowed\":%s,\"status\":\"%s\"}\n", st == GX_STATUS_OK ? "true" : "false",
                    status_name(st));
    else
        rv = printf("%s\n", st == GX_STATUS_OK ? "allowed" : status_name(st));
    rv = print_ok(rv);
    return rv != GX_CLI_PLUGIN_EXIT_OK ? rv
           : st == GX_STATUS_OK        ? GX_CLI_PLUGIN_EXIT_OK
                                       : GX_CLI_PLUGIN_EXIT_NO;
}

/* ------------------------------------------------------------------ rbac check */

static int
check_print(const Galaxy__Pool__V1__Pool *p)
{
    gx_pool_vis_t vis = p->visibility == GALAXY__POOL__V1__VISIBILITY__VISIBILITY_PRIVATE
                            ? GX_POOL_PRIVATE
                            : GX_POOL_PUBLIC;
    char covered[128], other[128];
    int rv;

    rv = printf("Pool:        %s\nVisibility:  %s\nVisible:     yes, to these credentials\n\n",
                p->name, vis == GX_POOL_PRIVATE ? "PRIVATE" : "PUBLIC");
    if (rv >= 0)
        rv = printf("%-10s %-35s %s\n", "ROLE", "IF ITS CREDENTIALS COVER THE POOL",
                    "IF THEY DO NOT");
    for (size_t i = 0; i < N_ROLES && rv >= 0; i++) {
        may_list(roles[i].role, vis, 1, 0, covered, sizeof(covered));
        may_list(roles[i].role, vis, 0, 0, other, sizeof(other));
        if (vis == GX_POOL_PRIVATE && roles[i].role != GX_ROLE_ADMIN)
            snprintf(other, sizeof(other), "- (NOT_FOUND)");
        rv = printf("%-10s %-35s %s\n", roles[i].name,
                    roles[i].role == GX_ROLE_NONE ? "-" : covered, other);
    }
    return print_ok(rv);
}

static int
rbac_check(gx_cli_t *cli, int argc, char **argv)
{
    Galaxy__Pool__V1__GetPoolRequest req = GALAXY__POOL__V1__GET_POOL_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int rv;

    req.name = argv[0];
    rv = gx_cli_plugin_unary(cli, "/galaxy.pool.v1.PoolAdmin/GetPool", &req.base,
                             &galaxy__pool__v1__pool__descriptor, &resp);
    if (rv == GX_CLI_PLUGIN_EXIT_NO)
        gx_cli_plugin_error("pool %s is not visible to these credentials (it does not exist, "
                            "or it is private and they do not cover it)",
                            argv[0]);
    if (rv != GX_CLI_PLUGIN_EXIT_OK)
        return rv;
    switch (gx_cli_plugin_output(cli)) {
    case GX_CLI_PLUGIN_OUT_JSON:
        rv = gx_cli_plugin_print_json(resp);
        break;
    case GX_CLI_PLUGIN_OUT_QUIET:
        rv = print_ok(printf("%s\n", ((Galaxy__Pool__V1__Pool *)resp)->name));
        break;
    default:
        rv = check_print((Galaxy__Pool__V1__Pool *)resp);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return rv;
}

/* ------------------------------------------------------------------ the plugin */

static const gx_cli_plugin_cmd_t rbac_cmds[] = {
    {"rbac", "roles", "", NULL, 0, 0,
     "print the access table: what each role may do on covered and public pools", rbac_roles},
    {"rbac", "can", "ROLE ACTION", "private not-covered", 2, 2,
     "may ROLE do ACTION (discover, node, submit, operate, admin) on a public pool its "
     "credentials cover (--private, --not-covered)? exit 0 yes, 1 no",
     rbac_can},
    {"rbac", "check", "POOL", NULL, 1, 1,
     "is POOL visible to these credentials, and what may each role do there", rbac_check},
    {NULL, NULL, NULL, NULL, 0, 0, NULL, NULL},
};

static const gx_cli_plugin_t rbac_plugin = {
    .abi = GX_CLI_PLUGIN_ABI,
    .name = "rbac",
    .version = "1.0.0",
    .commands = rbac_cmds,
};

GX_CLI_PLUGIN(rbac_plugin);
