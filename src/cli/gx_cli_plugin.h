/* SPDX-License-Identifier: MIT */
/**
 * @file gx_cli_plugin.h
 * galaxy-cli's side of its plugins (the plugin ABI is the installed
 * include/galaxy/gx_cli_plugin.h): loading them, before the command line is
 * parsed, and `module list --local`.
 */
#ifndef GX_CLI_GX_CLI_PLUGIN_H
#define GX_CLI_GX_CLI_PLUGIN_H

#include "cli/gx_cli.h"

/**
 * Takes "--module-dir DIR" (or "--module-dir=DIR") out of the command line,
 * wherever it is before "--", then loads the plugins of DIR, else of
 * $GALAXY_MODULE_DIR, else of the installed pkglibdir: every *.so in name
 * order, their commands added after the built-in ones
 * (gx_cli_add_commands()).  An empty DIR loads none.  A shared object
 * without a plugin descriptor is skipped silently; one that cannot be
 * loaded or whose descriptor is unusable, with a warning on stderr; so is a
 * DIR given on the line or in the environment that cannot be read (a
 * missing default directory is silent).  Never fatal.  Also makes
 * `module list --local` list what was loaded (gx_cli_module_list_local).
 *
 * @param argc, argv  main()'s; on return without the option.
 * @return how many plugins were loaded.
 * @note thread: main, once, before the command line is parsed
 */
int gx_cli_plugins_load(int *argc, char **argv);

#endif /* GX_CLI_GX_CLI_PLUGIN_H */
