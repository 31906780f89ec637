/* SPDX-License-Identifier: MIT */
/*
 * galaxy-cli agent's configuration: the YAML file of --config read with
 * libyaml's document API, then the command-line flags over it, into a
 * gx_cli_agent_conf_t (gx_cli_agent.h).  Every string is copied into the
 * command's arena.  Only the shape is checked here (numbers, lists, maps,
 * what is required); the server judges the values (id and specialization
 * syntax, the pool's rules) when the agent registers.
 */
#include "config.h"

#include "cli/gx_cli_agent.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "util/gx_arena.h"

typedef Galaxy__Pool__V1__Node__LabelsEntry label_t;

/* The file being read, for messages. */
typedef struct {
    gx_cli_t *cli;
    const char *path;
    yaml_document_t *doc;
    gx_cli_agent_conf_t *conf;
} conf_file_t;

static int conf_error(const conf_file_t *f, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
conf_error(const conf_file_t *f, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    gx_cli_error("%s:%lu: %s", f->path, n != NULL ? (unsigned long)n->start_mark.line + 1 : 0ul,
                 msg);
    return GX_CLI_EXIT_USAGE;
}

static int
oom(void)
{
    gx_cli_error("out of memory");
    return GX_CLI_EXIT_UNAVAILABLE;
}

/* ------------------------------------------------------------------ values */

static int
parse_u64(const char *what, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v = 0;

    errno = 0;
    if (s[0] >= '0' && s[0] <= '9')
        v = strtoull(s, &end, 10);
    if (end == NULL || *end != '\0' || errno != 0 || v < min || v > max) {
        gx_cli_error("%s: expected a number from %llu to %llu, got '%s'", what,
                     (unsigned long long)min, (unsigned long long)max, s);
        return GX_CLI_EXIT_USAGE;
    }
    *out = v;
    return 0;
}

/* Sets the capacity field @name ("cpu_millis") of @c from @s; @what names it in errors. */
static int
capacity_set(Galaxy__Pool__V1__Resources *c, const char *what, const char *name, const char *s)
{
    int big = strcmp(name, "memory_bytes") == 0, jobs = strcmp(name, "max_jobs") == 0;
    uint64_t v, max = UINT32_MAX;
    int rv;

    if (big)
        max = UINT64_MAX;
    else if (jobs)
        max = GX_CLI_AGENT_MAX_JOBS_MAX;
    rv = parse_u64(what, s, jobs ? 1 : 0, max, &v);

    if (rv != 0)
        return rv;
    if (big)
        c->memory_bytes = v;
    else if (strcmp(name, "cpu_millis") == 0)
        c->cpu_millis = (uint32_t)v;
    else if (strcmp(name, "gpus") == 0)
        c->gpus = (uint32_t)v;
    else
        c->max_jobs = (uint32_t)v;
    return 0;
}

static int
is_capacity(const char *name)
{
    return strcmp(name, "cpu_millis") == 0 || strcmp(name, "memory_bytes") == 0 ||
           strcmp(name, "gpus") == 0 || strcmp(name, "max_jobs") == 0;
}

/* "a,b" → a list; an empty item is refused. */
static int
list_split(gx_cli_t *cli, const char *s, char ***out, size_t *n)
{
    size_t cap = 1, len;
    char **list;

    for (const char *p = s; (p = strchr(p, ',')) != NULL; p++)
        cap++;
    list = gx_arena_calloc(cli->arena, cap * sizeof(*list));
    if (list == NULL)
        return GX_CLI_EXIT_UNAVAILABLE;
    *n = 0;
    do {
        len = strcspn(s, ",");
        if (len == 0)
            return GX_CLI_EXIT_USAGE;
        if ((list[(*n)++] = gx_arena_strndup(cli->arena, s, len)) == NULL)
            return GX_CLI_EXIT_UNAVAILABLE;
        s += len;
    } while (*s++ != '\0');
    *out = list;
    return 0;
}

/* ------------------------------------------------------------------ the file */

static const char *
scalar(const yaml_node_t *n)
{
    return n != NULL && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static char *
copy(conf_file_t *f, const char *s)
{
    return gx_arena_strndup(f->cli->arena, s, strlen(s));
}

/* spec: a sequence of names, or one string "a,b". */
static int
file_specs(conf_file_t *f, yaml_node_t *v)
{
    Galaxy__Pool__V1__Node *node = &f->conf->node;
    size_t n = 0;
    int rv;

    if (scalar(v) != NULL) {
        rv = list_split(f->cli, scalar(v), &node->specializations, &node->n_specializations);
        if (rv == GX_CLI_EXIT_USAGE)
            return conf_error(f, v, "spec: empty item in '%s'", scalar(v));
        return rv != 0 ? oom() : 0;
    }
    if (v->type != YAML_SEQUENCE_NODE)
        return conf_error(f, v, "spec: expected a list of names");
    node->specializations = gx_arena_calloc(
        f->cli->arena,
        (size_t)(v->data.sequence.items.top - v->data.sequence.items.start + 1) * sizeof(char *));
    if (node->specializations == NULL)
        return oom();
    for (yaml_node_item_t *i = v->data.sequence.items.start; i < v->data.sequence.items.top; i++) {
        yaml_node_t *item = yaml_document_get_node(f->doc, *i);
        if (scalar(item) == NULL || scalar(item)[0] == '\0')
            return conf_error(f, item, "spec: expected a name");
        if ((node->specializations[n++] = copy(f, scalar(item))) == NULL)
            return oom();
    }
    node->n_specializations = n;
    return 0;
}

/* label: a mapping of strings. */
static int
file_labels(conf_file_t *f, yaml_node_t *v)
{
    Galaxy__Pool__V1__Node *node = &f->conf->node;
    size_t n = 0;

    if (v->type != YAML_MAPPING_NODE)
        return conf_error(f, v, "label: expected a mapping of KEY: VALUE");
    node->labels = gx_arena_calloc(
        f->cli->arena,
        (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start + 1) * sizeof(label_t *));
    if (node->labels == NULL)
        return oom();
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(f->doc, p->key);
        yaml_node_t *val = yaml_document_get_node(f->doc, p->value);
        label_t *e = gx_arena_alloc(f->cli->arena, sizeof(*e));
        if (scalar(k) == NULL || scalar(k)[0] == '\0' || scalar(val) == NULL)
            return conf_error(f, k, "label: expected KEY: VALUE strings");
        if (e == NULL)
            return oom();
        galaxy__pool__v1__node__labels_entry__init(e);
        e->key = copy(f, scalar(k));
        e->value = copy(f, scalar(val));
        if (e->key == NULL || e->value == NULL)
            return oom();
        node->labels[n++] = e;
    }
    node->n_labels = n;
    return 0;
}

/* One key of the file, its name with '-' read as '_'. */
static int
file_key(conf_file_t *f, const char *name, yaml_node_t *k, yaml_node_t *v)
{
    gx_cli_agent_conf_t *c = f->conf;
    const char *s = scalar(v);
    char what[300];
    char **dst = NULL;

    if (strcmp(name, "spec") == 0 || strcmp(name, "specializations") == 0)
        return file_specs(f, v);
    if (strcmp(name, "label") == 0 || strcmp(name, "labels") == 0)
        return file_labels(f, v);
    if (s == NULL)
        return conf_error(f, v, "%s: expected a single value", name);
    if (is_capacity(name)) {
        snprintf(what, sizeof(what), "%s:%lu: %s", f->path, (unsigned long)v->start_mark.line + 1,
                 name);
        return capacity_set(&c->capacity, what, name, s);
    }
    if (strcmp(name, "pool") == 0)
        dst = &c->node.pool;
    else if (strcmp(name, "id") == 0)
        dst = &c->node.id;
    else if (strcmp(name, "address") == 0)
        dst = &c->node.address;
    else if (strcmp(name, "version") == 0 || strcmp(name, "node_version") == 0)
        dst = &c->node.version;
    else if (strcmp(name, "hook") == 0)
        dst = (char **)&c->hook;
    else
        return conf_error(f, k, "unknown key '%s'", scalar(k));
    *dst = copy(f, s);
    return *dst != NULL ? 0 : oom();
}

static int
file_walk(conf_file_t *f)
{
    yaml_node_t *root = yaml_document_get_root_node(f->doc);
    char name[64];
    int rv;

    if (root == NULL)
        return 0; /* an empty file */
    if (root->type != YAML_MAPPING_NODE)
        return conf_error(f, root, "expected a mapping of settings");
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(f->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(f->doc, p->value);
        if (scalar(k) == NULL || strlen(scalar(k)) >= sizeof(name))
            return conf_error(f, k, "expected a setting name");
        snprintf(name, sizeof(name), "%s", scalar(k));
        for (char *c = name; *c != '\0'; c++)
            if (*c == '-')
                *c = '_';
        rv = file_key(f, name, k, v);
        if (rv != 0)
            return rv;
    }
    return 0;
}

static int
file_read(gx_cli_t *cli, const char *path, gx_cli_agent_conf_t *conf)
{
    conf_file_t f = {.cli = cli, .path = path, .conf = conf};
    yaml_parser_t parser;
    yaml_document_t doc;
    FILE *in = fopen(path, "r");
    int rv;

    if (in == NULL) {
        gx_cli_error("--config %s: %s", path, strerror(errno));
        return GX_CLI_EXIT_USAGE;
    }
    if (!yaml_parser_initialize(&parser)) {
        fclose(in);
        return oom();
    }
    yaml_parser_set_input_file(&parser, in);
    if (!yaml_parser_load(&parser, &doc)) {
        gx_cli_error("%s:%lu: %s", path, (unsigned long)parser.problem_mark.line + 1,
                     parser.problem ? parser.problem : "cannot parse the YAML");
        rv = GX_CLI_EXIT_USAGE;
    } else {
        f.doc = &doc;
        rv = file_walk(&f);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(in);
    return rv;
}

/* ------------------------------------------------------------------ flags */

static int
flag_string(gx_cli_t *cli, const char *flag, char **dst)
{
    const char *v = gx_cli_opt(cli, flag);

    if (v == NULL)
        return 0;
    if (v[0] == '\0')
        return gx_cli_usage_error(cli, "--%s: empty value", flag);
    *dst = gx_arena_strndup(cli->arena, v, strlen(v));
    return *dst != NULL ? 0 : oom();
}

static int
flags_read(gx_cli_t *cli, gx_cli_agent_conf_t *c)
{
    static const char *const caps[] = {"cpu-millis", "memory-bytes", "gpus", "max-jobs"};
    char **specs;
    size_t n;
    int rv;

    if ((rv = flag_string(cli, "pool", &c->node.pool)) != 0 ||
        (rv = flag_string(cli, "id", &c->node.id)) != 0 ||
        (rv = flag_string(cli, "address", &c->node.address)) != 0 ||
        (rv = flag_string(cli, "node-version", &c->node.version)) != 0 ||
        (rv = flag_string(cli, "hook", (char **)&c->hook)) != 0)
        return rv;
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        const char *v = gx_cli_opt(cli, caps[i]);
        char name[32], what[40];
        if (v == NULL)
            continue;
        snprintf(name, sizeof(name), "%s", caps[i]);
        for (char *p = name; *p != '\0'; p++)
            if (*p == '-')
                *p = '_';
        snprintf(what, sizeof(what), "--%s", caps[i]);
        if ((rv = capacity_set(&c->capacity, what, name, v)) != 0)
            return rv;
    }
    rv = gx_cli_opt_list(cli, "spec", &specs, &n);
    if (rv != 0)
        return rv;
    if (n > 0) {
        c->node.specializations = specs;
        c->node.n_specializations = n;
    }
    return gx_cli_opt_map(cli, "label", &c->node.base, "labels", NULL);
}

/* ------------------------------------------------------------------ defaults and checks */

static int
defaults_set(gx_cli_t *cli, gx_cli_agent_conf_t *c)
{
    char host[HOST_NAME_MAX + 1];

    if (c->node.id[0] == '\0') {
        if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
            return gx_cli_usage_error(cli, "--id: required (the host name is unknown)");
        host[sizeof(host) - 1] = '\0';
        if ((c->node.id = gx_arena_strndup(cli->arena, host, strlen(host))) == NULL)
            return oom();
    }
    if (c->node.version[0] == '\0')
        c->node.version = (char *)"galaxy-cli/" PACKAGE_VERSION;
    if (c->capacity.max_jobs == 0)
        c->capacity.max_jobs = GX_CLI_AGENT_MAX_JOBS_DEFAULT;
    if (c->node.pool[0] == '\0')
        return gx_cli_usage_error(cli, "--pool: required (or pool: in --config)");
    if (c->node.n_specializations == 0)
        return gx_cli_usage_error(cli, "--spec: at least one specialization is required");
    if (c->hook == NULL || c->hook[0] == '\0')
        return gx_cli_usage_error(cli, "--hook: required (the command that runs each job)");
    return 0;
}

int
gx_cli_agent_conf(gx_cli_t *cli, gx_cli_agent_conf_t *conf)
{
    const char *path = gx_cli_opt(cli, "config");
    int rv;

    memset(conf, 0, sizeof(*conf));
    galaxy__pool__v1__node__init(&conf->node);
    galaxy__pool__v1__resources__init(&conf->capacity);
    conf->node.capacity = &conf->capacity;
    if (path != NULL && (rv = file_read(cli, path, conf)) != 0)
        return rv;
    if ((rv = flags_read(cli, conf)) != 0)
        return rv;
    return defaults_set(cli, conf);
}
