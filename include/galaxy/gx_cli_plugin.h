/* SPDX-License-Identifier: MIT */
/**
 * @file gx_cli_plugin.h
 * The public interface of galaxy-cli plugins: command groups that a module
 * shared object adds to galaxy-cli.
 *
 * At start-up galaxy-cli loads every `*.so` of its module directory
 * (--module-dir DIR, else $GALAXY_MODULE_DIR, else the installed pkglibdir,
 * where galaxy-poold's modules live) and looks for one symbol,
 * GX_CLI_PLUGIN_SYMBOL, defined with GX_CLI_PLUGIN().  A shared object
 * without it (a server-only module) is skipped silently; one that cannot be
 * loaded, or whose descriptor is for another GX_CLI_PLUGIN_ABI, is skipped
 * with a warning on stderr.  `galaxy-cli module list --local` shows what was
 * loaded.
 *
 * A plugin may also be a galaxy-poold module (include/galaxy/gx_module.h):
 * the same shared object then exports both descriptors.  The helpers below
 * are declared weak so that such a module still loads in galaxy-poold, where
 * they do not exist (their addresses are NULL there; only command functions,
 * which only galaxy-cli runs, may call them).  galaxy-cli loads it lazily
 * bound, so its references to the server's functions stay unresolved as long
 * as nothing calls them.
 *
 * A command is one row: its group and name, usage, options and function.
 * galaxy-cli parses the whole command line (its global options, such as
 * --addr, --api-key and -o, may appear anywhere) and calls the function with
 * the positional arguments only; the function reads its own options with
 * gx_cli_plugin_opt(), makes calls with gx_cli_plugin_unary() (which use the
 * command line's address, TLS settings, credentials and timeout) and returns
 * an exit code.  A plugin's command with the group and name of a built-in
 * command is never reached: built-ins come first.
 *
 * @code
 *     static int
 *     hello(gx_cli_t *cli, int argc, char **argv)
 *     {
 *         printf("hello %s\n", argc > 0 ? argv[0] : "world");
 *         return GX_CLI_PLUGIN_EXIT_OK;
 *     }
 *
 *     static const gx_cli_plugin_cmd_t cmds[] = {
 *         {"greet", "hello", "[NAME]", NULL, 0, 1, "say hello", hello},
 *         {NULL, NULL, NULL, NULL, 0, 0, NULL, NULL},
 *     };
 *     static const gx_cli_plugin_t greet = {
 *         .abi = GX_CLI_PLUGIN_ABI, .name = "greet", .version = "1.0", .commands = cmds};
 *     GX_CLI_PLUGIN(greet);
 * @endcode
 *
 * Threads: galaxy-cli is single-threaded; so is every call below.
 * Memory: what the helpers return is owned as each one says.
 */
#ifndef GX_INCLUDE_GALAXY_GX_CLI_PLUGIN_H
#define GX_INCLUDE_GALAXY_GX_CLI_PLUGIN_H

#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Bump on every incompatible change of this header. */
#define GX_CLI_PLUGIN_ABI 1

#ifndef GX_API
#define GX_API __attribute__((visibility("default")))
#endif

/** How the helpers are declared: exported by galaxy-cli, weak in the plugin. */
#define GX_CLI_PLUGIN_IMPORT GX_API __attribute__((weak))

/** The command line and connection of the command being run (opaque). */
typedef struct gx_cli_s gx_cli_t;

/** Exit codes (the same as galaxy-cli's own; scripts rely on them). */
enum {
    GX_CLI_PLUGIN_EXIT_OK = 0,          /**< success */
    GX_CLI_PLUGIN_EXIT_NO = 1,          /**< the server (or the command) said no */
    GX_CLI_PLUGIN_EXIT_UNAVAILABLE = 2, /**< no usable answer: connection, deadline, output */
    GX_CLI_PLUGIN_EXIT_USAGE = 64       /**< bad usage */
};

/** The output the command line asks for. */
typedef enum {
    GX_CLI_PLUGIN_OUT_TABLE = 0, /**< aligned columns for people (the default) */
    GX_CLI_PLUGIN_OUT_JSON = 1,  /**< -o json: one JSON document */
    GX_CLI_PLUGIN_OUT_QUIET = 2  /**< -q: ids or names only, one per line */
} gx_cli_plugin_output_t;

/**
 * Runs a command.
 * @param argc, argv  the positional arguments only (argv[0] is the first);
 *                    their count is within the row's bounds.
 * @return a GX_CLI_PLUGIN_EXIT_* code.
 */
typedef int (*gx_cli_plugin_fn)(gx_cli_t *cli, int argc, char **argv);

/** One command. */
typedef struct {
    const char *group; /**< "rbac": [a-z][a-z0-9-]*, at most 32 bytes */
    const char *name;  /**< "roles": the same syntax; "" for a one-word command */
    const char *args;  /**< positional arguments for the usage line: "POOL", "[NAME]" */
    /**
     * The command's options, space-separated: "count=N" takes a value
     * (shown as N), "force" is a flag; at most 16.  NULL: none.
     */
    const char *opts;
    int min_args, max_args; /**< positional argument count bounds */
    const char *summary;    /**< one line for --help */
    gx_cli_plugin_fn fn;
} gx_cli_plugin_cmd_t;

/** What a plugin exports. */
typedef struct {
    uint32_t abi;     /**< GX_CLI_PLUGIN_ABI */
    const char *name; /**< the plugin, for `module list --local` */
    const char *version;
    const gx_cli_plugin_cmd_t *commands; /**< ends with a row whose group is NULL */
    void *reserved[4];                   /**< room to grow without an ABI bump: NULL */
} gx_cli_plugin_t;

/** Defines the plugin's single exported symbol. */
#define GX_CLI_PLUGIN(desc) GX_API const gx_cli_plugin_t *const gx_cli_commands = &(desc)

#define GX_CLI_PLUGIN_SYMBOL "gx_cli_commands"

/* ------------------------------------------------------------------------ */
/* What a command may call                                                  */

/**
 * The value of the command's option @p name ("count"): its argument, "" for
 * a flag that was given, NULL when absent (the last one when repeated).
 */
GX_CLI_PLUGIN_IMPORT const char *gx_cli_plugin_opt(const gx_cli_t *cli, const char *name);

/** The output format the command line asks for. */
GX_CLI_PLUGIN_IMPORT gx_cli_plugin_output_t gx_cli_plugin_output(const gx_cli_t *cli);

/**
 * Makes a unary call with the command line's address, TLS settings,
 * credentials and timeout, on the command's connection (opened by the
 * first call).  On failure prints the status to stderr
 * ("galaxy-cli: NOT_FOUND: <message>").
 * @param method     "/package.Service/Method".
 * @param req        the request (the plugin's own generated code).
 * @param resp_desc  the response's type.
 * @param resp       on GX_CLI_PLUGIN_EXIT_OK the response; free it with
 *                   protobuf_c_message_free_unpacked(resp, NULL).  Else NULL.
 * @return GX_CLI_PLUGIN_EXIT_OK, _NO (the server's status), _UNAVAILABLE
 *         (no usable answer) or _USAGE (bad connection settings).
 */
GX_CLI_PLUGIN_IMPORT int gx_cli_plugin_unary(gx_cli_t *cli, const char *method,
                                             const ProtobufCMessage *req,
                                             const ProtobufCMessageDescriptor *resp_desc,
                                             ProtobufCMessage **resp);

/**
 * Prints @p msg on one line of stdout as JSON, in the proto3 JSON mapping
 * that every galaxy-cli command uses for -o json.
 * @return GX_CLI_PLUGIN_EXIT_OK, or _UNAVAILABLE when it cannot be written.
 */
GX_CLI_PLUGIN_IMPORT int gx_cli_plugin_print_json(const ProtobufCMessage *msg);

/** Prints "galaxy-cli: " and the message on stderr. */
GX_CLI_PLUGIN_IMPORT void gx_cli_plugin_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/**
 * Prints "galaxy-cli: " and the message, then the command's usage line, on
 * stderr.  @return GX_CLI_PLUGIN_EXIT_USAGE
 */
GX_CLI_PLUGIN_IMPORT int gx_cli_plugin_usage_error(const gx_cli_t *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif /* GX_INCLUDE_GALAXY_GX_CLI_PLUGIN_H */
