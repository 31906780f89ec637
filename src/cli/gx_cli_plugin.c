/* SPDX-License-Identifier: MIT */
/*
 * galaxy-cli plugins (include/galaxy/gx_cli_plugin.h): the loader, the
 * helpers a plugin's commands call, and `module list --local`.
 *
 * Before the command line is parsed, gx_cli_plugins_load() takes
 * --module-dir out of it, opens every *.so of the module directory in name
 * order and adds the command table of each that exports a plugin descriptor
 * (gx_cli_add_commands()), converted to galaxy-cli's own row type so that
 * the plugin ABI does not follow the internal table.  A shared object is
 * first opened with every symbol bound (RTLD_NOW), which a plain plugin
 * passes; a galaxy-poold module refers to the server's functions, which
 * galaxy-cli does not have, so it is opened again lazily bound: without a
 * descriptor it is closed again silently, with one (a module that is both)
 * its commands are used, its server code never being called here.  What
 * cannot be opened at all, or brings an unusable descriptor, is a warning.
 * The handles stay open until the process ends.
 */
#include "config.h"

#include "cli/gx_cli_plugin.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <galaxy/gx_cli_plugin.h>
#include <jansson.h>

#include "cli/gx_cli_json.h"
#include "cli/gx_cli_table.h"

#define MAX_PLUGINS 32
#define MAX_NAME 32

/* The plugin ABI promises galaxy-cli's exit codes. */
_Static_assert((int)GX_CLI_PLUGIN_EXIT_OK == (int)GX_CLI_EXIT_OK, "exit codes");
_Static_assert((int)GX_CLI_PLUGIN_EXIT_NO == (int)GX_CLI_EXIT_NO, "exit codes");
_Static_assert((int)GX_CLI_PLUGIN_EXIT_UNAVAILABLE == (int)GX_CLI_EXIT_UNAVAILABLE, "exit codes");
_Static_assert((int)GX_CLI_PLUGIN_EXIT_USAGE == (int)GX_CLI_EXIT_USAGE, "exit codes");

typedef struct {
    void *dl;
    char *path;
    const gx_cli_plugin_t *desc;
    gx_cli_cmd_t *cmds; /* the plugin's rows as galaxy-cli's, ending with a NULL group */
} plugin_t;

static plugin_t plugins[MAX_PLUGINS];
static size_t n_plugins;

static void plugin_warn(const char *path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
plugin_warn(const char *path, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "galaxy-cli: warning: %s: ", path);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ------------------------------------------------------------------ the helpers plugins call */

const char *
gx_cli_plugin_opt(const gx_cli_t *cli, const char *name)
{
    return gx_cli_opt(cli, name);
}

gx_cli_plugin_output_t
gx_cli_plugin_output(const gx_cli_t *cli)
{
    if (cli->quiet)
        return GX_CLI_PLUGIN_OUT_QUIET;
    return cli->output == GX_CLI_OUT_JSON ? GX_CLI_PLUGIN_OUT_JSON : GX_CLI_PLUGIN_OUT_TABLE;
}

int
gx_cli_plugin_unary(gx_cli_t *cli, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp)
{
    return gx_cli_unary(cli, method, req, resp_desc, resp);
}

int
gx_cli_plugin_print_json(const ProtobufCMessage *msg)
{
    return gx_cli_print_json(msg);
}

void
gx_cli_plugin_error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    gx_cli_error("%s", msg);
}

int
gx_cli_plugin_usage_error(const gx_cli_t *cli, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return gx_cli_usage_error(cli, "%s", msg);
}

/* ------------------------------------------------------------------ module list --local */

/* "rbac roles, rbac can" */
static void
commands_str(const plugin_t *p, char *buf, size_t len)
{
    size_t n = 0;

    buf[0] = '\0';
    for (const gx_cli_cmd_t *c = p->cmds; c->group != NULL && n < len; c++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s%s%s", n > 0 ? ", " : "", c->group,
                              c->name[0] ? " " : "", c->name);
}

/* One plugin as a JSON object, NULL when out of memory. */
static json_t *
plugin_json(const plugin_t *p)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:[]}", "name", p->desc->name, "version",
                          p->desc->version, "path", p->path, "commands");
    json_t *list = json_object_get(o, "commands");
    char cmd[256];

    for (const gx_cli_cmd_t *c = p->cmds; c->group != NULL && list != NULL; c++) {
        snprintf(cmd, sizeof(cmd), "%s%s%s", c->group, c->name[0] ? " " : "", c->name);
        if (json_array_append_new(list, json_string(cmd)) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static int
list_json(void)
{
    json_t *doc = json_array();
    int rv = doc != NULL ? 0 : -1;

    for (size_t i = 0; i < n_plugins && rv == 0; i++)
        rv = json_array_append_new(doc, plugin_json(&plugins[i]));
    return gx_cli_print_json_doc(doc, rv);
}

static int
plugins_list(gx_cli_t *cli, int argc, char **argv)
{
    gx_cli_table_t *t;
    char cmds[1024];
    int rv;

    if (cli->quiet) {
        for (size_t i = 0; i < n_plugins; i++)
            printf("%s\n", plugins[i].desc->name);
        return GX_CLI_EXIT_OK;
    }
    if (cli->output == GX_CLI_OUT_JSON)
        return list_json();
    t = gx_cli_table_new("NAME", "VERSION", "COMMANDS", "PATH", NULL);
    for (size_t i = 0; i < n_plugins; i++) {
        commands_str(&plugins[i], cmds, sizeof(cmds));
        gx_cli_table_row(t, plugins[i].desc->name, plugins[i].desc->version, cmds, plugins[i].path);
    }
    rv = gx_cli_table_print(t, stdout);
    gx_cli_table_free(t);
    return rv == 0 ? GX_CLI_EXIT_OK : GX_CLI_EXIT_UNAVAILABLE;
}

/* ------------------------------------------------------------------ loading */

static int
word_ok(const char *s, int may_be_empty)
{
    size_t len = s != NULL ? strlen(s) : 0;

    if (s == NULL || len > MAX_NAME || (len == 0 && !may_be_empty))
        return 0;
    if (len > 0 && (s[0] < 'a' || s[0] > 'z'))
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == len;
}

/* What galaxy-cli's parser can take of an option list. */
static int
opts_ok(const char *opts)
{
    int n = 0;

    if (opts == NULL)
        return 1;
    if (strlen(opts) >= 256)
        return 0;
    for (const char *p = opts; *p != '\0'; p += strspn(p, " "), n++)
        p += strcspn(p, " ");
    return n <= GX_CLI_MAX_CMD_OPTS;
}

/* Checks the descriptor and converts its rows. @return 0, or -1 after a warning */
static int
plugin_rows(plugin_t *p)
{
    const gx_cli_plugin_t *d = p->desc;
    size_t n = 0;

    if (d == NULL || d->abi != GX_CLI_PLUGIN_ABI) {
        plugin_warn(p->path, "plugin ABI %u, galaxy-cli has %u: skipped", d ? d->abi : 0u,
                    GX_CLI_PLUGIN_ABI);
        return -1;
    }
    if (d->name == NULL || d->version == NULL || d->commands == NULL) {
        plugin_warn(p->path, "plugin without a name, version or commands: skipped");
        return -1;
    }
    while (n < 1000 && d->commands[n].group != NULL)
        n++;
    p->cmds = calloc(n + 1, sizeof(*p->cmds));
    if (p->cmds == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const gx_cli_plugin_cmd_t *r = &d->commands[i];
        if (!word_ok(r->group, 0) || !word_ok(r->name, 1) || r->fn == NULL || r->min_args < 0 ||
            r->min_args > r->max_args || !opts_ok(r->opts)) {
            plugin_warn(p->path, "command %u is malformed: plugin skipped", (unsigned)i);
            return -1;
        }
        p->cmds[i] = (gx_cli_cmd_t){
            .group = r->group,
            .name = r->name,
            .args = r->args ? r->args : "",
            .opts = r->opts,
            .min_args = r->min_args,
            .max_args = r->max_args,
            .summary = r->summary ? r->summary : "",
            .fn = r->fn,
        };
    }
    return 0;
}

/* Opens @path; see the top of the file. @return the handle, or NULL (warned when broken) */
static void *
plugin_open(const char *path)
{
    char first[512];
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);

    if (dl != NULL)
        return dl;
    snprintf(first, sizeof(first), "%s", dlerror());
    dl = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
    if (dl == NULL)
        plugin_warn(path, "cannot load: %s", first);
    return dl;
}

static void
plugin_load(const char *path)
{
    plugin_t *p = &plugins[n_plugins];
    void *dl = plugin_open(path), *sym;

    if (dl == NULL)
        return;
    sym = dlsym(dl, GX_CLI_PLUGIN_SYMBOL);
    if (sym == NULL) {
        dlclose(dl); /* a server-only module */
        return;
    }
    if (n_plugins == MAX_PLUGINS) {
        plugin_warn(path, "more than %d plugins: skipped", MAX_PLUGINS);
        dlclose(dl);
        return;
    }
    memset(p, 0, sizeof(*p));
    p->dl = dl;
    p->path = strdup(path);
    p->desc = *(const gx_cli_plugin_t *const *)sym;
    if (p->path == NULL || plugin_rows(p) != 0 || gx_cli_add_commands(p->cmds) != 0) {
        free(p->cmds);
        free(p->path);
        dlclose(dl);
        return;
    }
    n_plugins++;
}

static int
is_so(const struct dirent *e)
{
    size_t len = strlen(e->d_name);

    return len > 3 && e->d_name[0] != '.' && strcmp(e->d_name + len - 3, ".so") == 0;
}

static void
dir_load(const char *dir, int explicit)
{
    struct dirent **names = NULL;
    char path[4096];
    int n = scandir(dir, &names, is_so, alphasort);

    if (n < 0) {
        if (explicit)
            plugin_warn(dir, "module directory: %s", strerror(errno));
        return;
    }
    for (int i = 0; i < n; i++) {
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name) < sizeof(path))
            plugin_load(path);
        free(names[i]);
    }
    free(names);
}

/* Takes "--module-dir DIR" / "--module-dir=DIR" out of @argv. @return DIR or NULL */
static const char *
module_dir_take(int *argc, char **argv)
{
    static const char flag[] = "--module-dir";
    const char *dir = NULL;
    int i = 1, take;

    while (i < *argc && strcmp(argv[i], "--") != 0) {
        take = 0;
        if (strcmp(argv[i], flag) == 0 && i + 1 < *argc) {
            dir = argv[i + 1];
            take = 2;
        } else if (strncmp(argv[i], flag, sizeof(flag) - 1) == 0 &&
                   argv[i][sizeof(flag) - 1] == '=') {
            dir = argv[i] + sizeof(flag);
            take = 1;
        }
        if (take == 0) {
            i++;
            continue;
        }
        memmove(&argv[i], &argv[i + take], (size_t)(*argc - i - take + 1) * sizeof(*argv));
        *argc -= take;
    }
    return dir;
}

int
gx_cli_plugins_load(int *argc, char **argv)
{
    const char *dir = module_dir_take(argc, argv);
    int explicit = dir != NULL;

    gx_cli_module_list_local = plugins_list;
    if (dir == NULL) {
        dir = getenv("GALAXY_MODULE_DIR");
        explicit = dir != NULL;
    }
    if (dir == NULL)
        dir = GX_PKGLIBDIR;
    if (dir[0] != '\0') /* an empty directory name loads none */
        dir_load(dir, explicit);
    return (int)n_plugins;
}
