/* SPDX-License-Identifier: MIT */
/**
 * @file gx_cli.h
 * What galaxy-cli's command files share: the command table's row type, the
 * parsed command line, and helpers that make a call and turn its status into
 * an exit code.
 *
 * A command is one row of the table in gx_cli.c: group, name, positional
 * arguments, its own options, a summary and the function.  gx_cli.c parses
 * the whole command line (global options may appear anywhere, before or
 * after the command) and calls the function with the positional arguments
 * only; the function reads its options with gx_cli_opt().
 *
 * Exit codes scripts can trust (GX_CLI_EXIT_*): 0 success; 1 the server
 * answered no (a non-OK gRPC status it sent, or a negative answer such as
 * NOT_SERVING); 2 bad usage (unknown command or option, bad value, unusable
 * CA/certificate/key file); 3 no usable answer (cannot connect, TLS failure,
 * connection lost, deadline passed, a response the client refused).
 */
#ifndef GX_CLI_GX_CLI_H
#define GX_CLI_GX_CLI_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "transport/gx_client.h"

enum { GX_CLI_EXIT_OK = 0, GX_CLI_EXIT_NO = 1, GX_CLI_EXIT_USAGE = 2, GX_CLI_EXIT_UNAVAILABLE = 3 };

typedef enum { GX_CLI_OUT_TABLE, GX_CLI_OUT_JSON } gx_cli_output_t;

/** Default deadline of a unary call when --timeout is not given. */
#define GX_CLI_DEFAULT_TIMEOUT_MS 10000
/** Most options one command may declare. */
#define GX_CLI_MAX_CMD_OPTS 16

typedef struct gx_cli_s gx_cli_t;

/**
 * Runs a command.
 * @param argc, argv  the positional arguments only (argv[0] is the first).
 * @return a GX_CLI_EXIT_* code.
 */
typedef int (*gx_cli_fn)(gx_cli_t *cli, int argc, char **argv);

/** One row of the command table. */
typedef struct gx_cli_cmd_s {
    const char *group; /**< "health" */
    const char *name;  /**< "watch" */
    const char *args;  /**< positional arguments for the usage line: "[SERVICE]" */
    /**
     * The command's options, space-separated: "count=N" takes a value (shown
     * as N), "force" is a flag.  NULL: none.
     */
    const char *opts;
    int min_args, max_args; /**< positional argument count bounds */
    const char *summary;    /**< one line for --help */
    gx_cli_fn fn;
} gx_cli_cmd_t;

/** The parsed command line and the connection, for the duration of one command. */
struct gx_cli_s {
    gx_client_opts_t copts;  /**< address and TLS settings */
    gx_cli_output_t output;  /**< -o */
    uint32_t timeout_ms;     /**< --timeout; 0 when not given */
    const char *key_secret;  /**< --key-secret or GALAXY_API_KEY; NULL: anonymous */
    const gx_cli_cmd_t *cmd; /**< the command being run */
    /** Values of the command's options, in the order of cmd->opts ("" for a set flag). */
    const char *opt_values[GX_CLI_MAX_CMD_OPTS];
    gx_client_t *client; /**< opened by the first call */
    uint64_t start_ms;   /**< when the command started: --timeout covers it all */
};

/**
 * The value of the command's option @p name ("count"): its argument, "" for
 * a flag that was given, NULL when absent.
 */
const char *gx_cli_opt(const gx_cli_t *cli, const char *name);

/**
 * Parses a decimal in [@p min, @p max] into @p out.  On failure prints
 * "galaxy-cli: --<what>: …" to stderr.
 * @return 0, or GX_CLI_EXIT_USAGE.
 */
int gx_cli_parse_u32(const char *what, const char *s, uint32_t min, uint32_t max, uint32_t *out);

/** Prints "galaxy-cli: " and the message to stderr. */
void gx_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Prints the command's usage line to stderr. @return GX_CLI_EXIT_USAGE */
int gx_cli_usage_error(const gx_cli_t *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/**
 * Makes a unary call with the command line's address, credentials and
 * timeout (default GX_CLI_DEFAULT_TIMEOUT_MS).  On failure prints the status
 * ("galaxy-cli: NOT_FOUND: <message>") to stderr.
 * @param resp  on GX_CLI_EXIT_OK the response; free it with
 *              protobuf_c_message_free_unpacked(resp, NULL).
 * @return a GX_CLI_EXIT_* code.
 */
int gx_cli_unary(gx_cli_t *cli, const char *method, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp);

/**
 * Makes a server-streaming call, handing each message to @p fn (see
 * gx_client_msg_fn); without --timeout it lasts as long as the stream.
 * @return GX_CLI_EXIT_OK when the stream ended OK or @p fn stopped it,
 *         otherwise the code of the status (printed to stderr).
 */
int gx_cli_stream(gx_cli_t *cli, const char *method, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *resp_desc, gx_client_msg_fn fn, void *arg);

/**
 * Prints @p msg as JSON (gx_cli_json.h) on one line of stdout.
 * @return GX_CLI_EXIT_OK, or GX_CLI_EXIT_UNAVAILABLE when it cannot be written.
 */
int gx_cli_print_json(const ProtobufCMessage *msg);

/**
 * Adds a table of commands (ends with a row whose group is NULL), after the
 * built-in ones.  @return 0, or -1 when there are too many tables
 */
int gx_cli_add_commands(const gx_cli_cmd_t *table);

/* The built-in command tables, one per src/cli/gx_cli_<group>.c, listed in gx_cli.c. */
extern const gx_cli_cmd_t gx_cli_cmds_health[];

#endif /* GX_CLI_GX_CLI_H */
