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
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/gx_cli_json.h"
#include "transport/gx_grpc.h"
#include "util/gx_clock.h"
#include "util/gx_error.h"

#define PROG "galaxy-cli"
#define DEFAULT_ADDR "127.0.0.1:50051"
#define MAX_TIMEOUT_MS 86400000u
#define USAGE_WIDTH 79

/*
 * The built-in command tables, one per command file (gx_cli.h lists them),
 * in the order --help shows them: to add a file's table, add its name here.
 * gx_cli_add_commands() appends more after them (plugins).
 */
/* one table a line, so that adding one is a one-line change */
/* clang-format off */
static const gx_cli_cmd_t *const tables[] = {
    gx_cli_cmds_pool,
    gx_cli_cmds_node,
    gx_cli_cmds_job,
    gx_cli_cmds_watch,
    gx_cli_cmds_key,
    gx_cli_cmds_module,
    gx_cli_cmds_health,
    gx_cli_cmds_version,
    gx_cli_cmds_agent,
};
/* clang-format on */
#define N_TABLES (sizeof(tables) / sizeof(tables[0]))
#define MAX_ADDED 64

static const gx_cli_cmd_t *added[MAX_ADDED];
static size_t n_added;

int
gx_cli_add_commands(const gx_cli_cmd_t *table)
{
    if (n_added == MAX_ADDED)
        return -1;
    added[n_added++] = table;
    return 0;
}

static const gx_cli_cmd_t *
table_at(size_t t)
{
    if (t < N_TABLES)
        return tables[t];
    return t - N_TABLES < n_added ? added[t - N_TABLES] : NULL;
}

/* every command: for (it = 0; (cmd = cmd_next(&it)) != NULL;) */
static const gx_cli_cmd_t *
cmd_next(size_t *it)
{
    size_t t = *it >> 16, i = *it & 0xffff;
    const gx_cli_cmd_t *table;

    while ((table = table_at(t)) != NULL) {
        if (table[i].group != NULL) {
            *it = (t << 16) | (i + 1);
            return &table[i];
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
cmd_usage_line(const gx_cli_cmd_t *cmd, FILE *out, int col)
{
    char spec[256];
    char *save = NULL;
    int indent = col + 4;

    col += fprintf(out, "%s%s%s", cmd->group, cmd->name[0] != '\0' ? " " : "", cmd->name);
    if (cmd->args != NULL && cmd->args[0] != '\0')
        col += fprintf(out, " %s", cmd->args);
    if (cmd->opts == NULL)
        return;
    snprintf(spec, sizeof(spec), "%s", cmd->opts);
    for (char *o = strtok_r(spec, " ", &save); o != NULL; o = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(o, '='), word[128];
        int required = o[0] == '!', len;
        if (eq != NULL)
            *eq = ' ';
        len = snprintf(word, sizeof(word), required ? "--%s" : "[--%s]", o + required);
        if (col + 1 + len > USAGE_WIDTH) /* wrap long usage lines under the command */
            col = fprintf(out, "\n%*s", indent - 1, "") - 1;
        col += fprintf(out, " %s", word);
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
        cmd_usage_line(cmd, out, 2);
        fprintf(out, "\n      %s\n", cmd->summary);
    }
}

static const char options_help[] =
    "Options (anywhere on the line; each has an environment variable, which the\n"
    "flag overrides):\n"
    "  --addr HOST:PORT        server address (GALAXY_ADDR; default " DEFAULT_ADDR ")\n"
    "  --tls                   TLS with ALPN h2 (GALAXY_TLS=1); implied by --cacert,\n"
    "                          --cert and --server-name\n"
    "  --cacert FILE           CA bundle that verifies the server (GALAXY_CACERT;\n"
    "                          default: the system store); --ca is the same\n"
    "  --cert FILE --key FILE  client certificate and key for mTLS (GALAXY_CERT,\n"
    "                          GALAXY_KEY)\n"
    "  --server-name NAME      name the server certificate must carry, sent as SNI\n"
    "                          (GALAXY_SERVER_NAME)\n"
    "  --api-key SECRET        API key, sent as authorization: Bearer\n"
    "                          (GALAXY_API_KEY, which ps cannot show);\n"
    "                          --key-secret is the same\n"
    "  --api-key-file FILE     the API key is the first line of FILE\n"
    "                          (GALAXY_API_KEY_FILE)\n"
    "  --timeout MS            deadline of the whole command (GALAXY_TIMEOUT;\n"
    "                          default 10000 for calls, none for streams)\n"
    "  -o, --output FORMAT     table (default) or json (GALAXY_OUTPUT)\n"
    "  -q, --quiet             print only ids or names, one per line (wins over -o)\n"
    "  -h, --help              this help; '" PROG " GROUP --help' for a group\n"
    "  -V, --version           print the client's version\n"
    "  --module-dir DIR        load command plugins from DIR (GALAXY_MODULE_DIR; default:\n"
    "                          the installed module directory; empty: none)\n";

static const char exit_help[] =
    "Exit status:\n"
    "  0   success\n"
    "  1   the server said no (a gRPC error status such as NOT_FOUND or\n"
    "      PERMISSION_DENIED, or a negative answer such as NOT_SERVING)\n"
    "  2   no usable answer (cannot connect, TLS failure, connection lost, deadline\n"
    "      exceeded, a broken response, output that cannot be written)\n"
    "  64  bad usage (unknown command or option, bad value, unusable file)\n";

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
    cmd_usage_line(cmd, out, (int)strlen("usage: " PROG " [options] "));
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
        cmd_usage_line(cli->cmd, stderr, (int)strlen("usage: " PROG " [options] "));
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
    OPT_API_KEY,
    OPT_API_KEY_FILE,
    OPT_TIMEOUT,
    OPT_CMD = 1000 /* + index of a command option */
};

static const struct option global_opts[] = {
    {"addr", required_argument, NULL, OPT_ADDR},
    {"tls", no_argument, NULL, OPT_TLS},
    {"cacert", required_argument, NULL, OPT_CA},
    {"ca", required_argument, NULL, OPT_CA},
    {"cert", required_argument, NULL, OPT_CERT},
    {"key", required_argument, NULL, OPT_KEY},
    {"server-name", required_argument, NULL, OPT_SERVER_NAME},
    {"api-key", required_argument, NULL, OPT_API_KEY},
    {"key-secret", required_argument, NULL, OPT_API_KEY},
    {"api-key-file", required_argument, NULL, OPT_API_KEY_FILE},
    {"output", required_argument, NULL, 'o'},
    {"quiet", no_argument, NULL, 'q'},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
};
#define N_GLOBAL_OPTS (sizeof(global_opts) / sizeof(global_opts[0]))

/* The command's option names, split out of cmd->opts, and the getopt table. */
typedef struct {
    char spec[256];
    const char *names[GX_CLI_MAX_CMD_OPTS];
    int required[GX_CLI_MAX_CMD_OPTS];
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
        t->required[t->n] = o[0] == '!';
        o += t->required[t->n];
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

const char *
gx_cli_opt_next(const gx_cli_t *cli, const char *name, size_t *it)
{
    opt_table_t t;

    opt_table_build(&t, cli->cmd);
    for (; *it < cli->n_occ; (*it)++)
        if (strcmp(t.names[cli->occ[*it].opt], name) == 0)
            return cli->occ[(*it)++].value;
    return NULL;
}

/* gx_cli_parse_u32() for a flag ("--timeout") or a variable ("GALAXY_TIMEOUT"). */
static int
parse_u32(const char *name, const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    unsigned long long v;

    if (s == NULL || s[0] < '0' || s[0] > '9') {
        gx_cli_error("%s: expected a number, got '%s'", name, s ? s : "");
        return GX_CLI_EXIT_USAGE;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0 || v < min || v > max) {
        gx_cli_error("%s: expected a number from %u to %u, got '%s'", name, min, max, s);
        return GX_CLI_EXIT_USAGE;
    }
    *out = (uint32_t)v;
    return 0;
}

int
gx_cli_parse_u32(const char *what, const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char name[64];

    snprintf(name, sizeof(name), "--%s", what);
    return parse_u32(name, s, min, max, out);
}

/* -o FORMAT or GALAXY_OUTPUT, named @name in the message. @return 0 or GX_CLI_EXIT_USAGE */
static int
parse_output(gx_cli_t *cli, const char *name, const char *arg)
{
    if (strcmp(arg, "table") == 0)
        cli->output = GX_CLI_OUT_TABLE;
    else if (strcmp(arg, "json") == 0)
        cli->output = GX_CLI_OUT_JSON;
    else
        return gx_cli_usage_error(NULL, "%s: expected table or json, got '%s'", name, arg);
    return 0;
}

/*
 * What the flags set, to be completed from the environment once the whole
 * line is read (settings_check): a flag always wins over its variable.
 */
static struct {
    int output;                          /* -o was given */
    const char *key_file;                /* --api-key-file */
    const char *key_src;                 /* where key_secret came from, for messages */
    char key_buf[GX_CLI_SECRET_MAX + 2]; /* the secret read from a key file */
} given;

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
    case OPT_API_KEY:
        cli->key_secret = arg;
        given.key_src = "--api-key";
        return 0;
    case OPT_API_KEY_FILE:
        given.key_file = arg;
        return 0;
    case OPT_TIMEOUT:
        return parse_u32("--timeout", arg, 1, MAX_TIMEOUT_MS, &cli->timeout_ms);
    case 'o':
        given.output = 1;
        return parse_output(cli, "-o", arg);
    case 'q':
        cli->quiet = 1;
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
    while ((c = getopt_long(argc, argv, "+ho:qV", global_opts, NULL)) != -1) {
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
    while ((c = getopt_long(argc, argv, "-ho:qV", t.table, NULL)) != -1) {
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
            cli->occ[cli->n_occ].opt = c - OPT_CMD;
            cli->occ[cli->n_occ++].value = cli->opt_values[c - OPT_CMD];
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

/* Every option the command marks required ("!name") was given. @return 0 or GX_CLI_EXIT_USAGE */
static int
required_check(const gx_cli_t *cli)
{
    opt_table_t t;

    opt_table_build(&t, cli->cmd);
    for (int i = 0; i < t.n; i++)
        if (t.required[i] && cli->opt_values[i] == NULL)
            return gx_cli_usage_error(cli, "--%s is required", t.names[i]);
    return 0;
}

/* How many commands group @group has. */
static size_t
group_size(const char *group)
{
    const gx_cli_cmd_t *cmd;
    size_t n = 0;

    for (size_t it = 0; (cmd = cmd_next(&it)) != NULL;)
        n += strcmp(cmd->group, group) == 0;
    return n;
}

/* The command @group @name; *@solo gets the group's one-word command (name ""), if any. */
static const gx_cli_cmd_t *
cmd_find(const char *group, const char *name, int *group_known, const gx_cli_cmd_t **solo)
{
    const gx_cli_cmd_t *cmd, *found = NULL;

    *group_known = 0;
    *solo = NULL;
    for (size_t it = 0; (cmd = cmd_next(&it)) != NULL;) {
        if (strcmp(cmd->group, group) != 0)
            continue;
        *group_known = 1;
        if (cmd->name[0] == '\0' && *solo == NULL)
            *solo = cmd;
        else if (name != NULL && found == NULL && strcmp(cmd->name, name) == 0)
            found = cmd;
    }
    return found;
}

static int
is_help(const char *s)
{
    return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0 || strcmp(s, "help") == 0;
}

/* ------------------------------------------------------------------ settings */

/* A non-empty environment variable, or NULL. */
static const char *
env(const char *name)
{
    const char *s = getenv(name);

    return s != NULL && s[0] != '\0' ? s : NULL;
}

/* A boolean variable: 1/true/yes or 0/false/no. @return 0 or GX_CLI_EXIT_USAGE */
static int
env_bool(const gx_cli_t *cli, const char *name, int *out)
{
    const char *s = env(name);

    if (s == NULL)
        return 0;
    if (strcmp(s, "1") == 0 || strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0)
        *out = 1;
    else if (strcmp(s, "0") == 0 || strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0)
        *out = 0;
    else
        return gx_cli_usage_error(cli, "%s: expected 1 or 0, got '%s'", name, s);
    return 0;
}

/* Fills what the flags left unset from the environment. @return 0 or GX_CLI_EXIT_USAGE */
static int
env_apply(gx_cli_t *cli)
{
    gx_client_opts_t *o = &cli->copts;
    const char *s;
    int rv = 0;

    if (o->addr == NULL)
        o->addr = (s = env("GALAXY_ADDR")) != NULL ? s : DEFAULT_ADDR;
    if (o->ca_file == NULL)
        o->ca_file = env("GALAXY_CACERT");
    if (o->cert_file == NULL)
        o->cert_file = env("GALAXY_CERT");
    if (o->key_file == NULL)
        o->key_file = env("GALAXY_KEY");
    if (o->server_name == NULL)
        o->server_name = env("GALAXY_SERVER_NAME");
    if (!o->tls)
        rv = env_bool(cli, "GALAXY_TLS", &o->tls);
    if (rv == 0 && cli->timeout_ms == 0 && (s = env("GALAXY_TIMEOUT")) != NULL)
        rv = parse_u32("GALAXY_TIMEOUT", s, 1, MAX_TIMEOUT_MS, &cli->timeout_ms);
    if (rv == 0 && !given.output && (s = env("GALAXY_OUTPUT")) != NULL)
        rv = parse_output(cli, "GALAXY_OUTPUT", s);
    return rv;
}

/*
 * The API key from the first line of @path (named @src in messages),
 * without the whitespace around it.  A key file others may read is used,
 * with a warning, as ssh would not.  @return 0 or GX_CLI_EXIT_USAGE
 */
static int
key_file_read(gx_cli_t *cli, const char *src, const char *path)
{
    char *line = given.key_buf, *end;
    struct stat st;
    FILE *f = fopen(path, "r");
    int err = 0;

    if (f == NULL)
        return gx_cli_usage_error(cli, "%s %s: %s", src, path, strerror(errno));
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) != 0)
        gx_cli_error("warning: %s %s is accessible by group or others (chmod 600 it)", src, path);
    if (fgets(line, sizeof(given.key_buf), f) == NULL) {
        err = ferror(f) ? errno : 0;
        line[0] = '\0';
    }
    fclose(f);
    if (err != 0)
        return gx_cli_usage_error(cli, "%s %s: %s", src, path, strerror(err));
    if (strlen(line) > GX_CLI_SECRET_MAX)
        return gx_cli_usage_error(cli, "%s %s: the first line is too long for an API key", src,
                                  path);
    line += strspn(line, " \t\r\n");
    for (end = line + strlen(line); end > line && strchr(" \t\r\n", end[-1]) != NULL; end--)
        ;
    *end = '\0';
    if (line[0] == '\0')
        return gx_cli_usage_error(cli, "%s %s: no API key on the first line", src, path);
    cli->key_secret = line;
    given.key_src = src;
    return 0;
}

/* The API key: a flag, else GALAXY_API_KEY, else GALAXY_API_KEY_FILE. */
static int
key_resolve(gx_cli_t *cli)
{
    const char *s;

    if (cli->key_secret != NULL && given.key_file != NULL)
        return gx_cli_usage_error(cli, "--api-key and --api-key-file exclude each other");
    if (given.key_file != NULL)
        return key_file_read(cli, "--api-key-file", given.key_file);
    if (cli->key_secret != NULL)
        return 0;
    if ((s = env("GALAXY_API_KEY")) != NULL) {
        cli->key_secret = s;
        given.key_src = "GALAXY_API_KEY";
        return 0;
    }
    if ((s = env("GALAXY_API_KEY_FILE")) != NULL)
        return key_file_read(cli, "GALAXY_API_KEY_FILE", s);
    return 0;
}

/* The settings that depend on several options. @return 0 or GX_CLI_EXIT_USAGE */
static int
settings_check(gx_cli_t *cli)
{
    const char *s;
    int rv = env_apply(cli);

    if (rv == 0)
        rv = key_resolve(cli);
    if (rv != 0)
        return rv;
    if (cli->copts.ca_file || cli->copts.cert_file || cli->copts.server_name)
        cli->copts.tls = 1;
    if ((cli->copts.cert_file == NULL) != (cli->copts.key_file == NULL))
        return gx_cli_usage_error(cli, "--cert and --key go together");
    s = cli->key_secret;
    if (s != NULL && (strlen(s) == 0 || strlen(s) > GX_CLI_SECRET_MAX ||
                      strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                "0123456789-._~+/=:") != strlen(s)))
        return gx_cli_usage_error(cli, "%s: the API key is not a valid token", given.key_src);
    return 0;
}

/* ------------------------------------------------------------------ calls */

uint32_t
gx_cli_time_left(const gx_cli_t *cli, uint32_t dflt)
{
    uint64_t spent;

    if (cli->timeout_ms == 0)
        return dflt;
    spent = gx_now_ms() - cli->start_ms;
    return spent >= cli->timeout_ms ? 1 : (uint32_t)(cli->timeout_ms - spent);
}

int
gx_cli_connect(gx_cli_t *cli)
{
    char err[512];
    int rv;

    if (cli->client != NULL)
        return 0;
    cli->copts.connect_timeout_ms = gx_cli_time_left(cli, GX_CLI_DEFAULT_TIMEOUT_MS);
    rv = gx_client_open(&cli->copts, &cli->client, err, sizeof(err));
    if (rv == 0)
        return 0;
    if (rv == GX_EINVAL)
        return gx_cli_usage_error(cli, "%s", err);
    gx_cli_error("UNAVAILABLE: %s", err);
    return GX_CLI_EXIT_UNAVAILABLE;
}

size_t
gx_cli_metadata(const gx_cli_t *cli, gx_client_md_t *md, char *buf, size_t len)
{
    if (cli->key_secret == NULL)
        return 0;
    md->key = "authorization";
    md->value = buf;
    md->len = (size_t)snprintf(buf, len, "Bearer %s", cli->key_secret);
    return 1;
}

/*
 * A deadline is "no answer" whoever noticed it first: the server gets our
 * grpc-timeout and may beat our own timer.
 */
int
gx_cli_status_exit(const gx_client_status_t *st)
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
    char auth[GX_CLI_AUTH_LEN];
    gx_client_md_t md[1];
    gx_client_status_t st;
    size_t n_md = gx_cli_metadata(cli, md, auth, sizeof(auth));
    int rv = gx_cli_connect(cli);

    *resp = NULL;
    if (rv != 0)
        return rv;
    rv = gx_client_unary(cli->client, method, req, resp_desc, resp, md, n_md,
                         gx_cli_time_left(cli, GX_CLI_DEFAULT_TIMEOUT_MS), &st);
    return rv == 0 ? GX_CLI_EXIT_OK : gx_cli_status_exit(&st);
}

int
gx_cli_stream(gx_cli_t *cli, const char *method, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, gx_client_msg_fn fn, void *arg)
{
    char auth[GX_CLI_AUTH_LEN];
    gx_client_md_t md[1];
    gx_client_status_t st;
    size_t n_md = gx_cli_metadata(cli, md, auth, sizeof(auth));
    int rv = gx_cli_connect(cli);

    if (rv != 0)
        return rv;
    rv = gx_client_server_stream(cli->client, method, req, resp_desc, md, n_md,
                                 gx_cli_time_left(cli, 0), fn, arg, &st);
    return rv == 0 || rv == GX_ECANCELED ? GX_CLI_EXIT_OK : gx_cli_status_exit(&st);
}

int
gx_cli_print_json_doc(json_t *doc, int built)
{
    int rv = built == 0 && doc != NULL ? gx_cli_json_print(doc, stdout) : -1;

    json_decref(doc);
    if (rv != 0) {
        gx_cli_error("cannot write the JSON output");
        return GX_CLI_EXIT_UNAVAILABLE;
    }
    return GX_CLI_EXIT_OK;
}

int
gx_cli_print_json(const ProtobufCMessage *msg)
{
    return gx_cli_print_json_doc(gx_cli_json_message(msg), 0);
}

int
gx_cli_print_json_list(ProtobufCMessage *const *items, size_t n)
{
    json_t *doc = json_array(), *item;
    int rv = doc != NULL ? 0 : -1;

    for (size_t i = 0; rv == 0 && i < n; i++) {
        item = gx_cli_json_message(items[i]);
        rv = item != NULL ? json_array_append_new(doc, item) : -1;
    }
    return gx_cli_print_json_doc(doc, rv);
}

/* ------------------------------------------------------------------ main */

/* Finds the command and parses its line. @return -1 to run it, or an exit code */
static int
cli_parse(gx_cli_t *cli, int argc, char **argv, char ***pos, int *npos)
{
    int first = parse_globals(cli, argc, argv), known, rv, skip = 1;
    const gx_cli_cmd_t *solo;
    char **rest;

    if (first < 0)
        return first == -1 ? GX_CLI_EXIT_OK : -first - 1;
    rest = argv + first;
    if (argc - first == 0)
        return gx_cli_usage_error(NULL, "no command given");
    cli->cmd = cmd_find(rest[0], argc - first > 1 ? rest[1] : NULL, &known, &solo);
    if (!known)
        return gx_cli_usage_error(NULL, "unknown command group '%s'", rest[0]);
    if (cli->cmd == NULL && solo != NULL && (argc - first == 1 || !is_help(rest[1]))) {
        cli->cmd = solo;
        skip = 0; /* pass 2 over "<group> args...": the arguments start after the group */
    } else if (argc - first == 1) {
        gx_cli_error("%s: no command given", rest[0]);
        help_group(stderr, rest[0]);
        return GX_CLI_EXIT_USAGE;
    } else if (is_help(rest[1])) {
        if (solo != NULL && group_size(rest[0]) == 1)
            help_cmd(stdout, solo);
        else
            help_group(stdout, rest[0]);
        return GX_CLI_EXIT_OK;
    } else if (cli->cmd == NULL) {
        return gx_cli_usage_error(NULL, "unknown command '%s %s'", rest[0], rest[1]);
    }
    *pos = calloc((size_t)argc, sizeof(**pos));
    cli->arena = gx_arena_new(4096);
    cli->occ =
        cli->arena != NULL ? gx_arena_calloc(cli->arena, (size_t)argc * sizeof(*cli->occ)) : NULL;
    if (*pos == NULL || cli->occ == NULL) {
        gx_cli_error("out of memory");
        return GX_CLI_EXIT_UNAVAILABLE;
    }
    /* pass 2 over "<cmd> args...", the command word standing in for argv[0] */
    rv = parse_cmd_line(cli, argc - first - skip, rest + skip, *pos, npos);
    if (rv < 0)
        return rv == -1 ? GX_CLI_EXIT_OK : -rv - 1;
    if (*npos < cli->cmd->min_args || *npos > cli->cmd->max_args)
        return gx_cli_usage_error(
            cli, "%s", *npos < cli->cmd->min_args ? "missing arguments" : "too many arguments");
    rv = required_check(cli);
    if (rv == 0)
        rv = settings_check(cli);
    return rv != 0 ? rv : -1;
}

int
main(int argc, char **argv)
{
    gx_cli_t cli = {.output = GX_CLI_OUT_TABLE};
    char **pos = NULL;
    int npos = 0, rv;

    /* a peer that closes first must not kill us with SIGPIPE (gx_client.h) */
    signal(SIGPIPE, SIG_IGN);
    cli.start_ms = gx_now_ms();
    /* plugins first: their commands are parsed like the built-in ones */
    gx_cli_plugins_load(&argc, argv);
    rv = cli_parse(&cli, argc, argv, &pos, &npos);
    if (rv < 0)
        rv = cli.cmd->fn(&cli, npos, pos);
    gx_client_close(cli.client);
    gx_arena_free(cli.arena);
    gx_arena_cache_flush();
    free(pos);
    if ((fflush(stdout) != 0 || ferror(stdout)) && rv == GX_CLI_EXIT_OK)
        rv = GX_CLI_EXIT_UNAVAILABLE;
    return rv;
}
