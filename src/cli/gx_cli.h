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
 * only; the function reads its options with gx_cli_opt(), and typed values
 * (lists, maps, enums) with the helpers of gx_cli_value.c declared here.
 *
 * A row whose name is "" is a command of one word: `galaxy-cli version`,
 * the words after the group being its positional arguments (a group may mix
 * it with named commands; a name wins over an argument that spells it).
 *
 * Exit codes scripts can trust (GX_CLI_EXIT_*; command files use the names,
 * never the numbers): 0 success; 1 the server answered no (a non-OK gRPC
 * status it sent, or a negative answer such as NOT_SERVING); 2 no usable
 * answer (cannot connect, TLS failure, connection lost, deadline passed, a
 * response the client refused, output that cannot be written); 64 bad usage
 * (unknown command or option, bad value in a flag or an environment
 * variable, unusable CA/certificate/key/API key file), as sysexits' EX_USAGE.
 *
 * Output: tables for people by default (gx_cli_table.h), `-o json` one JSON
 * document (gx_cli_print_json(); a list command prints an array of the items,
 * gx_cli_print_json_list()), `--quiet` only the ids or names, one per line
 * (a command whose answer has none prints nothing).  --quiet wins over -o.
 */
#ifndef GX_CLI_GX_CLI_H
#define GX_CLI_GX_CLI_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "transport/gx_client.h"
#include "util/gx_arena.h"

enum {
    GX_CLI_EXIT_OK = 0,
    GX_CLI_EXIT_NO = 1,
    GX_CLI_EXIT_UNAVAILABLE = 2,
    GX_CLI_EXIT_USAGE = 64,
};

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
     * as N), "force" is a flag, "!role=ROLE" must be given (checked before
     * the command runs).  At most GX_CLI_MAX_CMD_OPTS.  NULL: none.
     */
    const char *opts;
    int min_args, max_args; /**< positional argument count bounds */
    const char *summary;    /**< one line for --help */
    gx_cli_fn fn;
} gx_cli_cmd_t;

/** One command option as given on the line. */
typedef struct gx_cli_occ_s {
    int opt;           /**< its index in cmd->opts */
    const char *value; /**< its argument; "" for a flag */
} gx_cli_occ_t;

/** The parsed command line and the connection, for the duration of one command. */
struct gx_cli_s {
    gx_client_opts_t copts; /**< address and TLS settings */
    gx_cli_output_t output; /**< -o or GALAXY_OUTPUT */
    int quiet;              /**< -q: ids or names only, one per line */
    uint32_t timeout_ms;    /**< --timeout or GALAXY_TIMEOUT; 0 when not given */
    /** --api-key, --api-key-file, GALAXY_API_KEY or GALAXY_API_KEY_FILE; NULL: anonymous */
    const char *key_secret;
    const gx_cli_cmd_t *cmd; /**< the command being run */
    /** Values of the command's options, in the order of cmd->opts ("" for a set flag). */
    const char *opt_values[GX_CLI_MAX_CMD_OPTS];
    gx_client_t *client; /**< opened by the first call */
    uint64_t start_ms;   /**< when the command started: --timeout covers it all */
    gx_cli_occ_t *occ;   /**< every command option given, in order (gx_cli_opt_next()) */
    size_t n_occ;
    /** Memory that lives until the command ends: requests built from the line. */
    gx_arena_t *arena;
};

/**
 * The value of the command's option @p name ("count"): its argument, "" for
 * a flag that was given, NULL when absent.
 */
const char *gx_cli_opt(const gx_cli_t *cli, const char *name);

/**
 * The values of a repeatable option, one per call, in the order given:
 * @code
 *     for (size_t it = 0; (v = gx_cli_opt_next(cli, "label", &it)) != NULL;)
 * @endcode
 * gx_cli_opt() returns the last one.  @p it starts at 0.
 */
const char *gx_cli_opt_next(const gx_cli_t *cli, const char *name, size_t *it);

/**
 * Every value of the repeatable option @p name, each split at commas
 * ("--spec a,b --spec c" gives a, b, c), as an array from cli->arena.
 * @param out, n  the values (NULL, 0 when the option is absent).
 * @return 0; GX_CLI_EXIT_USAGE for an empty item ("--spec a,,b"), with the
 *         message on stderr; GX_CLI_EXIT_UNAVAILABLE when out of memory.
 */
int gx_cli_opt_list(gx_cli_t *cli, const char *name, char ***out, size_t *n);

/**
 * Fills the map<string,string> field @p field of @p msg from every
 * "--@p name KEY=VALUE" on the line (a later KEY replaces an earlier one);
 * the entries come from cli->arena and live as long as the command.
 * @param msg    e.g. &pool.base; the field is left alone when the option is absent.
 * @param field  the field's name in the .proto: "labels", "node_selector".
 * @param given  when not NULL, set to 1 when the option was given.
 * @return 0; GX_CLI_EXIT_USAGE for a value without '=' or with an empty key
 *         (message on stderr, naming --@p name); GX_CLI_EXIT_UNAVAILABLE when
 *         out of memory.
 */
int gx_cli_opt_map(gx_cli_t *cli, const char *name, ProtobufCMessage *msg, const char *field,
                   int *given);

/**
 * Fills the repeated enum field @p field of @p msg from every "--@p name"
 * on the line, each split at commas and parsed as gx_cli_parse_enum() does
 * ("--state pending,assigned"); the array comes from cli->arena.
 * @param msg    e.g. &req.base; the field is left alone when the option is absent.
 * @param field  the field's name in the .proto: "states".
 * @return 0; GX_CLI_EXIT_USAGE for an empty item or an unknown value
 *         (message on stderr, naming --@p name); GX_CLI_EXIT_UNAVAILABLE when
 *         out of memory or @p msg has no such field.
 */
int gx_cli_opt_enum_list(gx_cli_t *cli, const char *name, ProtobufCMessage *msg, const char *field);

/**
 * Parses a decimal in [@p min, @p max] into @p out.  On failure prints
 * "galaxy-cli: --<what>: …" to stderr.
 * @return 0, or GX_CLI_EXIT_USAGE.
 */
int gx_cli_parse_u32(const char *what, const char *s, uint32_t min, uint32_t max, uint32_t *out);

/**
 * Parses @p s as a value of enum @p d, by its name without the enum's prefix
 * (the prefix of its zero value, "ROLE_" of ROLE_UNSPECIFIED), in any case:
 * "viewer", "VIEWER" and "ROLE_VIEWER" all give ROLE_VIEWER.  The zero
 * (_UNSPECIFIED) value is refused.  On failure prints "galaxy-cli: --<what>:
 * expected one of viewer, node, …, got '<s>'".
 * @return 0, or GX_CLI_EXIT_USAGE.
 */
int gx_cli_parse_enum(const char *what, const ProtobufCEnumDescriptor *d, const char *s, int *out);

/**
 * The name of value @p v of enum @p d without the enum's prefix, for tables:
 * "HEALTHY" for NODE_STATE_HEALTHY; the number as text for an unknown value.
 * @param buf  room for GX_CLI_ENUM_LEN bytes; the result may point into it.
 */
#define GX_CLI_ENUM_LEN 16
const char *gx_cli_enum_str(const ProtobufCEnumDescriptor *d, int v, char *buf);

/** Prints "galaxy-cli: " and the message to stderr. */
void gx_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Prints the command's usage line to stderr. @return GX_CLI_EXIT_USAGE */
int gx_cli_usage_error(const gx_cli_t *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** The longest API key accepted, in bytes. */
#define GX_CLI_SECRET_MAX 1024
/** Room for the authorization value gx_cli_metadata() writes ("Bearer <key>"). */
#define GX_CLI_AUTH_LEN (GX_CLI_SECRET_MAX + 16)

/**
 * What is left of --timeout, for a call or a connection attempt.
 * @param dflt  what to return without --timeout (0: no deadline).
 * @return milliseconds, at least 1 once --timeout has passed.
 */
uint32_t gx_cli_time_left(const gx_cli_t *cli, uint32_t dflt);

/**
 * Opens the command's connection, cli->client (main() closes it), unless it
 * is open already; the attempt lasts at most gx_cli_time_left(cli,
 * GX_CLI_DEFAULT_TIMEOUT_MS).  On failure prints why to stderr.
 * @return GX_CLI_EXIT_OK; GX_CLI_EXIT_USAGE for unusable settings (a CA,
 *         certificate or key file); GX_CLI_EXIT_UNAVAILABLE when the server
 *         cannot be reached.
 */
int gx_cli_connect(gx_cli_t *cli);

/**
 * The call metadata of the command line: "authorization: Bearer <key>" when
 * an API key is set.
 * @param md   room for one entry; its value points into @p buf.
 * @param buf  room for @p len bytes, GX_CLI_AUTH_LEN; must outlive the call.
 * @return the number of entries set in @p md, 0 or 1.
 */
size_t gx_cli_metadata(const gx_cli_t *cli, gx_client_md_t *md, char *buf, size_t len);

/**
 * Prints the status of a failed call to stderr ("galaxy-cli: NOT_FOUND:
 * <message>") and gives its exit code.
 * @return GX_CLI_EXIT_UNAVAILABLE for a deadline or a status the client made
 *         up (origin local: connection lost, broken response); otherwise
 *         GX_CLI_EXIT_NO.
 */
int gx_cli_status_exit(const gx_client_status_t *st);

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

struct json_t;

/**
 * Prints the JSON document @p doc on one line of stdout and frees it.
 * @param built  0 when @p doc was built whole; otherwise (or @p doc NULL) it
 *               is not printed, as a failure to write
 * @return GX_CLI_EXIT_OK, or GX_CLI_EXIT_UNAVAILABLE after "cannot write the
 *         JSON output" on stderr
 */
int gx_cli_print_json_doc(struct json_t *doc, int built);

/**
 * Prints @p msg as JSON (gx_cli_json.h) on one line of stdout.
 * @return GX_CLI_EXIT_OK, or GX_CLI_EXIT_UNAVAILABLE when it cannot be written.
 */
int gx_cli_print_json(const ProtobufCMessage *msg);

/**
 * Prints @p n messages as one JSON array on one line of stdout (what a list
 * command prints for -o json: the items, not the response around them).
 * @param items  e.g. (ProtobufCMessage **)resp->pools, resp->n_pools.
 * @return GX_CLI_EXIT_OK, or GX_CLI_EXIT_UNAVAILABLE when it cannot be written
 *         (or out of memory).
 */
int gx_cli_print_json_list(ProtobufCMessage *const *items, size_t n);

/**
 * A paged List call (gx_cli_page.c): its request has the fields page_size
 * and page_token, its response a repeated message field of items and
 * next_page_token; they are found by name (protobuf-c reflection).
 */
typedef struct gx_cli_page_s {
    const char *method;                          /**< "/galaxy.pool.v1.Jobs/ListJobs" */
    const ProtobufCMessageDescriptor *resp_desc; /**< the response: ListJobsResponse */
    /** The response's field of items, "jobs"; also their name in "more jobs follow". */
    const char *items;
    /** An item's id, what --quiet prints of it. */
    const char *(*item_id)(const ProtobufCMessage *item);
    /** Prints the items as a table on stdout. @return a GX_CLI_EXIT_* code */
    int (*print_table)(ProtobufCMessage *const *items, size_t n);
} gx_cli_page_t;

/**
 * Sets the page_size and page_token fields of the List request @p req from
 * --page-size N (1 or more) and --page-token TOKEN; the token is the
 * command line's string.
 * @return 0; GX_CLI_EXIT_USAGE for a bad --page-size (message on stderr);
 *         GX_CLI_EXIT_UNAVAILABLE when @p req lacks the fields.
 */
int gx_cli_page_opts(gx_cli_t *cli, ProtobufCMessage *req);

/**
 * Makes the List call @p page with @p req (filters and gx_cli_page_opts()
 * set): one page, or every page with --all, following next_page_token (at
 * most 100000 pages, then INTERNAL and GX_CLI_EXIT_UNAVAILABLE).  Prints the
 * items of every page fetched: their ids with --quiet, one JSON array with
 * -o json, else page->print_table; then, when a page is left, "more <items>
 * follow: add --all, or --page-token TOKEN" on stderr.  @p req's page_token
 * is changed while following the pages.
 * @return a GX_CLI_EXIT_* code (a failed call's status is on stderr).
 */
int gx_cli_page_list(gx_cli_t *cli, const gx_cli_page_t *page, ProtobufCMessage *req);

/**
 * Adds a table of commands (ends with a row whose group is NULL), after the
 * built-in ones.  @return 0, or -1 when there are too many tables
 */
int gx_cli_add_commands(const gx_cli_cmd_t *table);

/**
 * `module list --local`: lists the command groups galaxy-cli loaded from
 * plugins.  The plugin loader sets it before the command runs; NULL (the
 * default) makes `module list --local` a usage error.  Called like a command.
 */
extern gx_cli_fn gx_cli_module_list_local;

/** Loads the plugins' command tables; takes --module-dir out of the line (gx_cli_plugin.h). */
int gx_cli_plugins_load(int *argc, char **argv);

/* The built-in command tables, one per src/cli/gx_cli_<group>.c, listed in gx_cli.c. */
extern const gx_cli_cmd_t gx_cli_cmds_health[];
extern const gx_cli_cmd_t gx_cli_cmds_pool[];
extern const gx_cli_cmd_t gx_cli_cmds_node[];
extern const gx_cli_cmd_t gx_cli_cmds_job[];
extern const gx_cli_cmd_t gx_cli_cmds_watch[];
extern const gx_cli_cmd_t gx_cli_cmds_key[];
extern const gx_cli_cmd_t gx_cli_cmds_module[];
extern const gx_cli_cmd_t gx_cli_cmds_version[];
extern const gx_cli_cmd_t gx_cli_cmds_agent[];

#endif /* GX_CLI_GX_CLI_H */
