/* SPDX-License-Identifier: MIT */
/* A galaxy-cli plugin built for another ABI: galaxy-cli warns and skips it. */
#include <galaxy/gx_cli_plugin.h>

static int
never(gx_cli_t *cli, int argc, char **argv)
{
    return GX_CLI_PLUGIN_EXIT_NO;
}

static const gx_cli_plugin_cmd_t cmds[] = {
    {"wrongabi", "run", "", NULL, 0, 0, "never listed", never},
    {NULL, NULL, NULL, NULL, 0, 0, NULL, NULL},
};

static const gx_cli_plugin_t plugin = {
    .abi = GX_CLI_PLUGIN_ABI + 1000, .name = "wrongabi", .version = "0", .commands = cmds};

GX_CLI_PLUGIN(plugin);
