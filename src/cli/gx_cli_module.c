/* SPDX-License-Identifier: MIT */
/*
 * galaxy-cli module: `module list` shows the modules the server loaded
 * (PoolAdmin.ListModules).  `module list --local` shows instead the command
 * groups this galaxy-cli loaded from plugins; that list belongs to the plugin
 * loader, which sets gx_cli_module_list_local (gx_cli.h).
 */
#include "config.h"

#include <stdio.h>

#include "cli/gx_cli.h"
#include "cli/gx_cli_table.h"
#include "galaxy/pool/v1/pool.pb-c.h"

#define METHOD_LIST "/galaxy.pool.v1.PoolAdmin/ListModules"

gx_cli_fn gx_cli_module_list_local;

static int
modules_print_table(Galaxy__Pool__V1__Module *const *mods, size_t n)
{
    gx_cli_table_t *t = gx_cli_table_new("NAME", "VERSION", "EDITION", "PHASES", "PATH", NULL);
    int rv;

    for (size_t i = 0; i < n; i++) {
        const Galaxy__Pool__V1__Module *m = mods[i];
        gx_cli_table_add(t, "%s", m->name);
        gx_cli_table_add(t, "%s", m->version[0] != '\0' ? m->version : "-");
        gx_cli_table_add(t, "%s", m->edition[0] != '\0' ? m->edition : "-");
        gx_cli_table_add_list(t, m->phases, m->n_phases);
        gx_cli_table_add(t, "%s", m->path[0] != '\0' ? m->path : "-");
    }
    rv = gx_cli_table_print(t, stdout);
    gx_cli_table_free(t);
    return rv == 0 ? GX_CLI_EXIT_OK : GX_CLI_EXIT_UNAVAILABLE;
}

static int
module_list(gx_cli_t *cli, int argc, char **argv)
{
    Galaxy__Pool__V1__ListModulesRequest req = GALAXY__POOL__V1__LIST_MODULES_REQUEST__INIT;
    const Galaxy__Pool__V1__ListModulesResponse *resp;
    ProtobufCMessage *msg = NULL;
    int rv;

    if (gx_cli_opt(cli, "local") != NULL) {
        if (gx_cli_module_list_local == NULL)
            return gx_cli_usage_error(cli, "--local: this galaxy-cli loads no plugins");
        return gx_cli_module_list_local(cli, argc, argv);
    }
    rv = gx_cli_unary(cli, METHOD_LIST, &req.base,
                      &galaxy__pool__v1__list_modules_response__descriptor, &msg);
    if (rv != GX_CLI_EXIT_OK)
        return rv;
    resp = (const Galaxy__Pool__V1__ListModulesResponse *)msg;
    if (cli->quiet)
        for (size_t i = 0; i < resp->n_modules; i++)
            printf("%s\n", resp->modules[i]->name);
    else if (cli->output == GX_CLI_OUT_JSON)
        rv = gx_cli_print_json_list((ProtobufCMessage **)resp->modules, resp->n_modules);
    else
        rv = modules_print_table(resp->modules, resp->n_modules);
    protobuf_c_message_free_unpacked(msg, NULL);
    return rv;
}

const gx_cli_cmd_t gx_cli_cmds_module[] = {
    {"module", "list", "", "local", 0, 0,
     "list the server's modules (--local: this galaxy-cli's plugins)", module_list},
    {NULL, NULL, NULL, NULL, 0, 0, NULL, NULL},
};
