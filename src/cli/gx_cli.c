/* SPDX-License-Identifier: MIT */
/*
 * galaxy-cli: main(), the command table and what every command shares.
 *
 * Commands are data: one row each (group, name, arguments, options, summary,
 * function) in the table of their file, src/cli/gx_cli_<group>.c, listed in
 * `tables` below.  The command line is parsed in two
 * passes: global options up to the group, then the rest with the global
 * options and the command's own, in any order; the command function gets the
 * positional arguments only.  Calls go through the client side of the
 * transport (transport/gx_client.h) on one connection opened at the first
 * call; their statuses become the exit codes documented in gx_cli.h.
 */
#include "config.h"

#include "cli/gx_cli.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/gx_cli_json.h"
#include "transport/gx_grpc.h"
#include "util/gx_clock.h"
#include "util/gx_error.h"

#define PROG "galaxy-cli"
#define DEFAULT_ADDR "127.0.0.1:50051"
#define MAX_TIMEOUT_MS 86400000u
#define MAX_SECRET_LEN 1024

/*
 * The command tables, one per command file (gx_cli.h lists them), in the
 * order --help shows them; gx_cli_add_commands() appends more (plugins).
 */
#define MAX_TABLES 64

static const gx_cli_cmd_t *tables[MAX_TABLES] = {gx_cli_cmds_health};
static size_t n_tables = 1;

int
gx_cli_add_commands(const gx_cli_cmd_t *table)
{
    if (n_tables == MAX_TABLES)
        return -1;
    tables[n_tables++] = table;
    return 0;
}

/* every command: for (it = 0; (cmd = cmd_next(&it)) != NULL;) */
static const gx_cli_cmd_t *
cmd_next(size_t *it)
{
    size_t t = *it >> 16, i = *it & 0xffff;

    while (t < n_tables) {
        if (tables[t][i].group != NULL) {
            *it = (t << 16) | (i + 1);
            return &tables[t][i];
        }
        t++;
        i = 0;
    }
    *it = t << 16;
    return NULL;
}

/* ------------------------------------------------------------------ messages */

void
gx_cli_error(const char *fmt, ...)
{
    va_list ap;

    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void
cmd_usage_line(const gx_cli_cmd_t *cmd, FILE *out)
{
    char spec[256];
    char *save = NULL;

    fprintf(out, "%s %s", cmd->group, cmd->name);
    if (cmd->args != NULL && cmd->args[0] != '\0')
        fprintf(out, " %s", cmd->args);
    if (cmd->opts == NULL)
        return;
    snprintf(spec, sizeof(spec), "%s", cmd->opts);
    for (char *o = strtok_r(spec, " ", &save); o != NULL; o = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(o, '=');
        if (eq != NULL)
            *eq = ' ';
        fprintf(out, " [--%s]", o);
    }
}

static void
commands_list(FILE *out, const char *group)
{
    const gx_cli_cmd_t *cmd;

    for (size_t it = 0; (cmd = cmd_next(&it)) != NULL;) {
        if (group != NULL && strcmp(cmd->group, group) != 0)
            continue;
        fputs("  ", out);
        cmd_usage_line(cmd, out);
        fprintf(out, "\n      %s\n", cmd->summary);
    }
}

static const char options_help[] =
    "Options (anywhere on the line):\n"
    "  --addr HOST:PORT        server address (default " DEFAULT_ADDR ")\n"
    "  --tls                   TLS with ALPN h2; implied by --ca, --cert and --server-name\n"
    "  --ca FILE               CA bundle that verifies the server (default: system store)\n"
    "  --cert FILE --key FILE  client certificate and key (mTLS)\n"
    "  --server-name NAME      name the server certificate must carry, sent as SNI\n"
    "  --key-secret SECRET     API key, sent as authorization: Bearer (default: the\n"
    "                          GALAXY_API_KEY environment variable, which ps cannot show)\n"
    "  -o, --output FORMAT     table (default) or json\n"
    "  --timeout MS            deadline of the whole command (default: 10000 for calls,\n"
    "                          none for streams)\n"
    "  -h, --help              this help; '" PROG " GROUP --help' for a group\n"
    "  -V, --version           print the version\n";

static const char exit_help[] =
    "Exit status: 0 success; 1 the server said no (a gRPC error status, NOT_SERVING, ...);\n"
    "2 bad usage; 3 no usable answer (cannot connect, TLS failure, connection lost,\n"
    "deadline exceeded).\n";

static void
help_main(FILE *out)
{
    fprintf(out, "usage: %s [options] <group> <command> [args]\n\n%s\nCommands:\n", PROG,
            options_help);
    commands_list(out, NULL);
    fprintf(out, "\n%s", exit_help);
}

static void
help_group(FILE *out, const char *group)
{
    fprintf(out, "usage: %s [options] %s <command> [args]\n\nCommands:\n", PROG, group);
    commands_list(out, group);
    fprintf(out, "\n%s", options_help);
}

static void
help_cmd(FILE *out, const gx_cli_cmd_t *cmd)
{
    fprintf(out, "usage: %s [options] ", PROG);
    cmd_usage_line(cmd, out);
    fprintf(out, "\n  %s\n\n%s\n%s", cmd->summary, options_help, exit_help);
}

int
gx_cli_usage_error(const gx_cli_t *cli, const char *fmt, ...)
{
    va_list ap;

    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (cli != NULL && cli->cmd != NULL) {
        fprintf(stderr, "usage: %s [options] ", PROG);
        cmd_usage_line(cli->cmd, stderr);
        fputc('\n', stderr);
    } else {
        fprintf(stderr, "Try '%s --help'.\n", PROG);
    }
    return GX_CLI_EXIT_USAGE;
}

/* ------------------------------------------------------------------ options */

enum {
    OPT_ADDR = 256,
    OPT_TLS,
    OPT_CA,
    OPT_CERT,
    OPT_KEY,
    OPT_SERVER_NAME,
    OPT_KEY_SECRET,
    OPT_TIMEOUT,
    OPT_CMD = 1000 /* + index of a command option */
};

static const struct option global_opts[] = {
    {"addr", required_argument, NULL, OPT_ADDR},
    {"tls", no_argument, NULL, OPT_TLS},
    {"ca", required_argument, NULL, OPT_CA},
    {"cert", required_argument, NULL, OPT_CERT},
    {"key", required_argument, NULL, OPT_KEY},
    {"server-name", required_argument, NULL, OPT_SERVER_NAME},
    {"key-secret", required_argument, NULL, OPT_KEY_SECRET},
    {"output", required_argument, NULL, 'o'},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
};
#define N_GLOBAL_OPTS (sizeof(global_opts) / sizeof(global_opts[0]))

/* The command's option names, split out of cmd->opts, and the getopt table. */
typedef struct {
    char spec[256];
    const char *names[GX_CLI_MAX_CMD_OPTS];
    struct option table[N_GLOBAL_OPTS + GX_CLI_MAX_CMD_OPTS + 1];
    int n;
} opt_table_t;

static void
opt_table_build(opt_table_t *t, const gx_cli_cmd_t *cmd)
{
    char *save = NULL;

    memset(t, 0, sizeof(*t));
    memcpy(t->table, global_opts, sizeof(global_opts));
    if (cmd == NULL || cmd->opts == NULL)
        return;
    snprintf(t->spec, sizeof(t->spec), "%s", cmd->opts);
    for (char *o = strtok_r(t->spec, " ", &save); o != NULL && t->n < GX_CLI_MAX_CMD_OPTS;
         o = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(o, '=');
        struct option *opt = &t->table[N_GLOBAL_OPTS + t->n];
        if (eq != NULL)
            *eq = '\0';
        opt->name = o;
        opt->has_arg = eq != NULL ? required_argument : no_argument;
        opt->val = OPT_CMD + t->n;
        t->names[t->n++] = o;
    }
}

const char *
gx_cli_opt(const gx_cli_t *cli, const char *name)
{
    opt_table_t t;

    opt_table_build(&t, cli->cmd);
    for (int i = 0; i < t.n; i++)
        if (strcmp(t.names[i], name) == 0)
            return cli->opt_values[i];
    return NULL;
}

int
gx_cli_parse_u32(const char *what, const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    unsigned long long v;

    if (s == NULL || s[0] < '0' || s[0] > '9') {
        gx_cli_error("--%s: expected a number, got '%s'", what, s ? s : "");
        return GX_CLI_EXIT_USAGE;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0 || v < min || v > max) {
        gx_cli_error("--%s: expected a number from %u to %u, got '%s'", what, min, max, s);
        return GX_CLI_EXIT_USAGE;
    }
    *out = (uint32_t)v;
    return 0;
}

/* Applies one global option. @return 0, -1 (done: exit 0) or an exit code */
static int
global_opt(gx_cli_t *cli, int c, const char *arg)
{
    switch (c) {
    case OPT_ADDR:
        cli->copts.addr = arg;
        return 0;
    case OPT_TLS:
        cli->copts.tls = 1;
        return 0;
    case OPT_CA:
        cli->copts.ca_file = arg;
        return 0;
    case OPT_CERT:
        cli->copts.cert_file = arg;
        return 0;
    case OPT_KEY:
        cli->copts.key_file = arg;
        return 0;
    case OPT_SERVER_NAME:
        cli->copts.server_name = arg;
        return 0;
    case OPT_KEY_SECRET:
        cli->key_secret = arg;
        return 0;
    case OPT_TIMEOUT:
        return gx_cli_parse_u32("timeout", arg, 1, MAX_TIMEOUT_MS, &cli->timeout_ms);
    case 'o':
        if (strcmp(arg, "table") == 0)
            cli->output = GX_CLI_OUT_TABLE;
        else if (strcmp(arg, "json") == 0)
            cli->output = GX_CLI_OUT_JSON;
        else
            return gx_cli_usage_error(NULL, "-o: expected table or json, got '%s'", arg);
        return 0;
    case 'V':
        printf("%s %s\n", PROG, PACKAGE_VERSION);
        return -1;
    default:
        return gx_cli_usage_error(cli, "invalid option");
    }
}

/* Pass 1: global options before the group. @return optind, or -(exit code + 1) */
static int
parse_globals(gx_cli_t *cli, int argc, char **argv)
{
    int c, rv;

    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+ho:V", global_opts, NULL)) != -1) {
        if (c == 'h') {
            help_main(stdout);
            return -1;
        }
        if (c == '?' || c == ':') {
            gx_cli_usage_error(NULL, "invalid option '%s'", argv[optind - 1]);
            return -(GX_CLI_EXIT_USAGE + 1);
        }
        rv = global_opt(cli, c, optarg);
        if (rv != 0)
            return rv < 0 ? -1 : -(rv + 1);
    }
    return optind;
}

/*
 * Pass 2: everything after the command, options anywhere; the positional
 * arguments go to @pos in order.  @return 0, or -(exit code + 1)
 */
static int
parse_cmd_line(gx_cli_t *cli, int argc, char **argv, char **pos, int *npos)
{
    opt_table_t t;
    int c, rv;

    opt_table_build(&t, cli->cmd);
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "-ho:V", t.table, NULL)) != -1) {
        if (c == 1) {
            /* "-" mode: each positional argument comes back in order as 1 */
            pos[(*npos)++] = optarg;
            continue;
        }
        if (c == 'h') {
            help_cmd(stdout, cli->cmd);
            return -1;
        }
        if (c == '?' || c == ':') {
            gx_cli_usage_error(cli, "invalid option '%s'", argv[optind - 1]);
            return -(GX_CLI_EXIT_USAGE + 1);
        }
        if (c >= OPT_CMD) {
            cli->opt_values[c - OPT_CMD] = optarg != NULL ? optarg : "";
            continue;
        }
        rv = global_opt(cli, c, optarg);
        if (rv != 0)
            return rv < 0 ? -1 : -(rv + 1);
    }
    for (; optind < argc; optind++) /* after "--" */
        pos[(*npos)++] = argv[optind];
    return 0;
}

static const gx_cli_cmd_t *
cmd_find(const char *group, const char *name, int *group_known)
{
    const gx_cli_cmd_t *cmd;

    *group_known = 0;
    for (size_t it = 0; (cmd = cmd_next(&it)) != NULL;) {
        if (strcmp(cmd->group, group) != 0)
            continue;
        *group_known = 1;
        if (name != NULL && strcmp(cmd->name, name) == 0)
            return cmd;
    }
    return NULL;
}

static int
is_help(const char *s)
{
    return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0 || strcmp(s, "help") == 0;
}

/* The settings that depend on several options. @return 0 or GX_CLI_EXIT_USAGE */
static int
settings_check(gx_cli_t *cli)
{
    const char *s;

    if (cli->copts.ca_file || cli->copts.cert_file || cli->copts.server_name)
        cli->copts.tls = 1;
    if ((cli->copts.cert_file == NULL) != (cli->copts.key_file == NULL))
        return gx_cli_usage_error(cli, "--cert and --key go together");
    if (cli->key_secret == NULL) {
        s = getenv("GALAXY_API_KEY");
        cli->key_secret = s != NULL && s[0] != '\0' ? s : NULL;
    }
    s = cli->key_secret;
    if (s != NULL && (strlen(s) == 0 || strlen(s) > MAX_SECRET_LEN ||
                      strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                "0123456789-._~+/=:") != strlen(s)))
        return gx_cli_usage_error(cli, "the API key secret is not a valid token");
    return 0;
}

/* ------------------------------------------------------------------ calls */

/* What is left of --timeout (or @dflt without it; 0: no deadline). */
static uint32_t
time_left(const gx_cli_t *cli, uint32_t dflt)
{
    uint64_t spent;

    if (cli->timeout_ms == 0)
        return dflt;
    spent = gx_now_ms() - cli->start_ms;
    return spent >= cli->timeout_ms ? 1 : (uint32_t)(cli->timeout_ms - spent);
}

static int
cli_connect(gx_cli_t *cli)
{
    char err[512];
    int rv;

    if (cli->client != NULL)
        return 0;
    cli->copts.connect_timeout_ms = time_left(cli, GX_CLI_DEFAULT_TIMEOUT_MS);
    rv = gx_client_open(&cli->copts, &cli->client, err, sizeof(err));
    if (rv == 0)
        return 0;
    if (rv == GX_EINVAL)
        return gx_cli_usage_error(cli, "%s", err);
    gx_cli_error("UNAVAILABLE: %s", err);
    return GX_CLI_EXIT_UNAVAILABLE;
}

/* The authorization metadata, when a key is set. @return the number of entries */
static size_t
cli_metadata(const gx_cli_t *cli, gx_client_md_t *md, char *buf, size_t len)
{
    if (cli->key_secret == NULL)
        return 0;
    md->key = "authorization";
    md->value = buf;
    md->len = (size_t)snprintf(buf, len, "Bearer %s", cli->key_secret);
    return 1;
}

/*
 * Prints a failed call's status.  A deadline is "no answer" whoever noticed it
 * first: the server gets our grpc-timeout and may beat our own timer.
 */
static int
status_exit(const gx_client_status_t *st)
{
    if (st->message[0] != '\0')
        gx_cli_error("%s: %s", gx_grpc_status_name(st->code), st->message);
    else
        gx_cli_error("%s", gx_grpc_status_name(st->code));
    if (st->code == GX_STATUS_DEADLINE_EXCEEDED || st->origin == GX_CLIENT_ORIGIN_LOCAL)
        return GX_CLI_EXIT_UNAVAILABLE;
    return GX_CLI_EXIT_NO;
}

int
gx_cli_unary(gx_cli_t *cli, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp)
{
    char auth[MAX_SECRET_LEN + 16];
    gx_client_md_t md[1];
    gx_client_status_t st;
    size_t n_md = cli_metadata(cli, md, auth, sizeof(auth));
    int rv = cli_connect(cli);

    *resp = NULL;
    if (rv != 0)
        return rv;
    rv = gx_client_unary(cli->client, method, req, resp_desc, resp, md, n_md,
                         time_left(cli, GX_CLI_DEFAULT_TIMEOUT_MS), &st);
    return rv == 0 ? GX_CLI_EXIT_OK : status_exit(&st);
}

int
gx_cli_stream(gx_cli_t *cli, const char *method, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, gx_client_msg_fn fn, void *arg)
{
    char auth[MAX_SECRET_LEN + 16];
    gx_client_md_t md[1];
    gx_client_status_t st;
    size_t n_md = cli_metadata(cli, md, auth, sizeof(auth));
    int rv = cli_connect(cli);

    if (rv != 0)
        return rv;
    rv = gx_client_server_stream(cli->client, method, req, resp_desc, md, n_md, time_left(cli, 0),
                                 fn, arg, &st);
    return rv == 0 || rv == GX_ECANCELED ? GX_CLI_EXIT_OK : status_exit(&st);
}

int
gx_cli_print_json(const ProtobufCMessage *msg)
{
    json_t *doc = gx_cli_json_message(msg);
    int rv = doc != NULL ? gx_cli_json_print(doc, stdout) : -1;

    json_decref(doc);
    if (rv != 0) {
        gx_cli_error("cannot write the JSON output");
        return GX_CLI_EXIT_UNAVAILABLE;
    }
    return GX_CLI_EXIT_OK;
}

/* ------------------------------------------------------------------ main */

/* Finds the command and parses its line. @return -1 to run it, or an exit code */
static int
cli_parse(gx_cli_t *cli, int argc, char **argv, char ***pos, int *npos)
{
    int first = parse_globals(cli, argc, argv), known, rv;
    char **rest;

    if (first < 0)
        return first == -1 ? GX_CLI_EXIT_OK : -first - 1;
    rest = argv + first;
    if (argc - first == 0)
        return gx_cli_usage_error(NULL, "no command given");
    cli->cmd = cmd_find(rest[0], argc - first > 1 ? rest[1] : NULL, &known);
    if (!known)
        return gx_cli_usage_error(NULL, "unknown command group '%s'", rest[0]);
    if (argc - first == 1) {
        gx_cli_error("%s: no command given", rest[0]);
        help_group(stderr, rest[0]);
        return GX_CLI_EXIT_USAGE;
    }
    if (is_help(rest[1])) {
        help_group(stdout, rest[0]);
        return GX_CLI_EXIT_OK;
    }
    if (cli->cmd == NULL)
        return gx_cli_usage_error(NULL, "unknown command '%s %s'", rest[0], rest[1]);
    *pos = calloc((size_t)argc, sizeof(**pos));
    if (*pos == NULL) {
        gx_cli_error("out of memory");
        return GX_CLI_EXIT_UNAVAILABLE;
    }
    /* pass 2 over "<cmd> args...", the command word standing in for argv[0] */
    rv = parse_cmd_line(cli, argc - first - 1, rest + 1, *pos, npos);
    if (rv < 0)
        return rv == -1 ? GX_CLI_EXIT_OK : -rv - 1;
    if (*npos < cli->cmd->min_args || *npos > cli->cmd->max_args)
        return gx_cli_usage_error(
            cli, "%s", *npos < cli->cmd->min_args ? "missing arguments" : "too many arguments");
    rv = settings_check(cli);
    return rv != 0 ? rv : -1;
}

int
main(int argc, char **argv)
{
    gx_cli_t cli = {.copts.addr = DEFAULT_ADDR, .output = GX_CLI_OUT_TABLE};
    char **pos = NULL;
    int npos = 0, rv;

    /* a peer that closes first must not kill us with SIGPIPE (gx_client.h) */
    signal(SIGPIPE, SIG_IGN);
    cli.start_ms = gx_now_ms();
    rv = cli_parse(&cli, argc, argv, &pos, &npos);
    if (rv < 0)
        rv = cli.cmd->fn(&cli, npos, pos);
    gx_client_close(cli.client);
    free(pos);
    if (fflush(stdout) != 0 && rv == GX_CLI_EXIT_OK)
        rv = GX_CLI_EXIT_UNAVAILABLE;
    return rv;
}
