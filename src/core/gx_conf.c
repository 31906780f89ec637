/* SPDX-License-Identifier: MIT */
/*
 * The server configuration: built-in defaults, the YAML loader and the
 * cross-field checks.  The file is read whole, parsed into a libyaml document
 * and walked once.  Scalar keys of `server:`, `limits:` and `registry:` are
 * described by one table (gx_conf_keys) giving each key's type, its field in
 * gx_conf_t and its range, so adding a key is adding a row; `modules:` is a
 * list of entries that each keep their own `config:` key/value pairs for the
 * module to read through gx_mod_conf_get().  Every error names the file and
 * the 1-based line of the offending node.  gx_conf_t owns every string it
 * points to; the command-line overrides (src/main/) and the consumers of the
 * values (transport, store, module loader) live elsewhere.
 */
#include "config.h"

#include "core/gx_conf.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "util/gx_error.h"
#include "util/gx_log.h"

#ifndef GX_PKGLIBDIR
#define GX_PKGLIBDIR "/usr/local/lib/galaxy-pool"
#endif

/* A configuration file larger than this is a mistake, not a configuration. */
#define GX_CONF_FILE_MAX (16u << 20)
#define GX_CONF_ADDR_MAX 1024u
#define GX_CONF_PATH_MAX ((uint32_t)PATH_MAX)
#define GX_CONF_MS_MAX 86400000u /* one day */
#define GX_CONF_BYTES_MAX 1073741824u

/* ------------------------------------------------------------------------ */
/* The key table                                                            */

typedef enum {
    GX_CONF_T_UINT,  /* unsigned, range min..max */
    GX_CONF_T_U32,   /* uint32_t, range min..max */
    GX_CONF_T_STR,   /* string, length min..max */
    GX_CONF_T_ADDR,  /* "host:port" or "[v6]:port", length min..max */
    GX_CONF_T_LEVEL  /* int, one of the log level names */
} gx_conf_type_t;

typedef struct {
    const char *section;
    const char *key;
    gx_conf_type_t type;
    size_t offset;     /* of the field in gx_conf_t */
    uint32_t min, max; /* integers: the range; strings: the length (min 0: may be empty) */
    const char *empty; /* strings: what an empty value stands for; NULL: off */
} gx_conf_key_t;

#define GX_CONF_SERVER(name, type, min, max, empty) \
    {"server", #name, type, offsetof(gx_conf_t, name), min, max, empty}
#define GX_CONF_LIMIT(name, min, max) \
    {"limits", #name, GX_CONF_T_U32, offsetof(gx_conf_t, limits.name), min, max, NULL}
#define GX_CONF_REGISTRY(name, min, max) \
    {"registry", #name, GX_CONF_T_U32, offsetof(gx_conf_t, registry.name), min, max, NULL}
#define GX_CONF_JOBS(name, min, max) \
    {"jobs", #name, GX_CONF_T_U32, offsetof(gx_conf_t, jobs.name), min, max, NULL}

/* Defaults are set by gx_conf_init() and gx_limits_init(); etc/galaxy-poold.yaml documents both. */
static const gx_conf_key_t gx_conf_keys[] = {
    GX_CONF_SERVER(workers, GX_CONF_T_UINT, 0, 1024, NULL),
    GX_CONF_SERVER(listen, GX_CONF_T_ADDR, 1, GX_CONF_ADDR_MAX, NULL),
    GX_CONF_SERVER(tls_listen, GX_CONF_T_ADDR, 0, GX_CONF_ADDR_MAX, NULL),
    GX_CONF_SERVER(tls_cert, GX_CONF_T_STR, 0, GX_CONF_PATH_MAX, NULL),
    GX_CONF_SERVER(tls_key, GX_CONF_T_STR, 0, GX_CONF_PATH_MAX, NULL),
    GX_CONF_SERVER(tls_client_ca, GX_CONF_T_STR, 0, GX_CONF_PATH_MAX, NULL),
    GX_CONF_SERVER(admin_listen, GX_CONF_T_ADDR, 0, GX_CONF_ADDR_MAX, NULL),
    GX_CONF_SERVER(data_dir, GX_CONF_T_STR, 1, GX_CONF_PATH_MAX, NULL),
    GX_CONF_SERVER(data_max_mb, GX_CONF_T_U32, 1, 16777216, NULL),
    GX_CONF_SERVER(module_dir, GX_CONF_T_STR, 0, GX_CONF_PATH_MAX, GX_PKGLIBDIR),
    GX_CONF_SERVER(log_level, GX_CONF_T_LEVEL, 0, 0, NULL),
    GX_CONF_SERVER(access_log, GX_CONF_T_STR, 1, GX_CONF_PATH_MAX, NULL),

    GX_CONF_LIMIT(max_connections, 1, 1000000),
    GX_CONF_LIMIT(max_concurrent_streams, 1, 100000),
    GX_CONF_LIMIT(max_calls, 1, 100000000),
    GX_CONF_LIMIT(max_header_list_bytes, 1024, 16777216),
    GX_CONF_LIMIT(initial_window_bytes, 65535, 2147483647),
    GX_CONF_LIMIT(connection_window_bytes, 65535, 2147483647),
    GX_CONF_LIMIT(max_frame_bytes, 16384, 16777215),
    GX_CONF_LIMIT(max_recv_message_bytes, 1024, GX_CONF_BYTES_MAX),
    GX_CONF_LIMIT(conn_recv_buffer_bytes, 1024, GX_CONF_BYTES_MAX),
    GX_CONF_LIMIT(server_recv_buffer_bytes, 1024, GX_CONF_BYTES_MAX),
    GX_CONF_LIMIT(send_buffer_bytes, 16384, GX_CONF_BYTES_MAX),
    GX_CONF_LIMIT(conn_send_queue_bytes, 16384, GX_CONF_BYTES_MAX),
    GX_CONF_LIMIT(server_send_queue_bytes, 16384, GX_CONF_BYTES_MAX),
    GX_CONF_LIMIT(conn_output_bytes, 16384, GX_CONF_BYTES_MAX),
    GX_CONF_LIMIT(idle_timeout_ms, 0, GX_CONF_MS_MAX),
    GX_CONF_LIMIT(first_request_timeout_ms, 100, GX_CONF_MS_MAX),
    GX_CONF_LIMIT(tls_handshake_timeout_ms, 100, GX_CONF_MS_MAX),
    GX_CONF_LIMIT(stream_reset_burst, 1, 1000000),
    GX_CONF_LIMIT(stream_reset_rate, 1, 1000000),
    GX_CONF_LIMIT(max_continuations, 1, 1024),
    GX_CONF_LIMIT(max_settings, 8, 4096),
    GX_CONF_LIMIT(max_outbound_ack, 1, 1000000),
    GX_CONF_LIMIT(max_invalid_frames, 0, 1000000),
    GX_CONF_LIMIT(ping_min_interval_ms, 0, GX_CONF_MS_MAX),
    GX_CONF_LIMIT(ping_max_strikes, 0, 1000),
    GX_CONF_LIMIT(drain_timeout_ms, 0, GX_CONF_MS_MAX),

    GX_CONF_REGISTRY(retention_factor, 1, 1000),
    GX_CONF_REGISTRY(checkpoint_ms, 1000, GX_CONF_MS_MAX),
    GX_CONF_REGISTRY(watch_history, 1, GX_REG_WATCH_HISTORY_MAX),
    GX_CONF_REGISTRY(watch_bytes, 65536, GX_CONF_BYTES_MAX),
    GX_CONF_REGISTRY(self_preservation_min_nodes, 1, 1000000000),
    GX_CONF_REGISTRY(self_preservation_share, 1, 100),
    GX_CONF_REGISTRY(max_heartbeats_per_second, 0, 1000000000),
    GX_CONF_REGISTRY(max_nodes, 1, 1000000000),
    GX_CONF_REGISTRY(max_node_memory_mb, 1, 16777216),

    GX_CONF_JOBS(max_attempts, 1, 1000),
    GX_CONF_JOBS(flap_threshold, 0, 1000),
    GX_CONF_JOBS(queue_max, 1, 100000000),
    GX_CONF_JOBS(ack_timeout_ms, 100, GX_CONF_MS_MAX),
    GX_CONF_JOBS(retention_ms, 1000, GX_CONF_MS_MAX),
    GX_CONF_JOBS(jobs_max, 1, 100000000),
    GX_CONF_JOBS(max_payload_mb, 1, 16777216),
};

#define GX_CONF_N_KEYS (sizeof(gx_conf_keys) / sizeof(gx_conf_keys[0]))

/* ------------------------------------------------------------------------ */
/* Values that do not depend on YAML (shared by the loader and the checks)  */

static void
gx_conf_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
gx_conf_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const gx_conf_key_t *
gx_conf_key_find(const char *section, const char *key)
{
    for (size_t i = 0; i < GX_CONF_N_KEYS; i++)
        if (strcmp(gx_conf_keys[i].section, section) == 0 && strcmp(gx_conf_keys[i].key, key) == 0)
            return &gx_conf_keys[i];
    return NULL;
}

static int
gx_conf_is_section(const char *section)
{
    for (size_t i = 0; i < GX_CONF_N_KEYS; i++)
        if (strcmp(gx_conf_keys[i].section, section) == 0)
            return 1;
    return 0;
}

/*
 * Strict unsigned decimal: digits only, no sign, no blanks, no junk.
 * @return 0, -1 (not a number) or -2 (overflow)
 */
static int
gx_conf_parse_u64(const char *s, unsigned long long *out)
{
    char *end;

    if (!isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    *out = strtoull(s, &end, 10);
    if (*end != '\0')
        return -1;
    return errno == ERANGE ? -2 : 0;
}

/* "host:port" with a non-empty host (brackets around an IPv6 address) and a port 0..65535. */
static int
gx_conf_addr_valid(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    unsigned long long port;
    size_t hostlen;

    if (colon == NULL || gx_conf_parse_u64(colon + 1, &port) != 0 || port > 65535)
        return 0;
    hostlen = (size_t)(colon - addr);
    if (hostlen == 0)
        return 0;
    if (addr[0] == '[')
        return hostlen > 2 && addr[hostlen - 1] == ']' &&
               memchr(addr + 1, ']', hostlen - 2) == NULL;
    return memchr(addr, ':', hostlen) == NULL && memchr(addr, ']', hostlen) == NULL;
}

static int
gx_conf_addr_port_is_zero(const char *addr)
{
    const char *colon = strrchr(addr, ':');

    return colon != NULL && strcmp(colon + 1, "0") == 0;
}

/* ------------------------------------------------------------------------ */
/* Public: init, deinit, set_str                                            */

int
gx_conf_set_str(char **slot, const char *value)
{
    char *copy = NULL;

    if (value != NULL) {
        copy = strdup(value);
        if (copy == NULL)
            return GX_ENOMEM;
    }
    free(*slot);
    *slot = copy;
    return 0;
}

static void
gx_conf_mod_deinit(gx_mod_conf_t *mod)
{
    for (size_t i = 0; i < mod->n_kv; i++) {
        free(mod->kv[i].key);
        free(mod->kv[i].value);
        free(mod->kv[i].where);
    }
    free(mod->kv);
    free(mod->path);
    free(mod->where);
    memset(mod, 0, sizeof(*mod));
}

static void
gx_conf_pool_deinit(gx_reg_pool_conf_t *pc)
{
    free(pc->name);
    free(pc->tier);
    free(pc->description);
    free(pc->routing_policy);
    for (size_t i = 0; i < pc->n_specializations; i++)
        free(pc->specializations[i]);
    free(pc->specializations);
    free(pc->where);
    memset(pc, 0, sizeof(*pc));
}

void
gx_conf_deinit(gx_conf_t *conf)
{
    for (size_t i = 0; i < GX_CONF_N_KEYS; i++) {
        const gx_conf_key_t *k = &gx_conf_keys[i];

        if (k->type == GX_CONF_T_STR || k->type == GX_CONF_T_ADDR)
            free(*(char **)((char *)conf + k->offset));
    }
    for (size_t i = 0; i < conf->n_modules; i++)
        gx_conf_mod_deinit(&conf->modules[i]);
    free(conf->modules);
    for (size_t i = 0; i < conf->registry.n_pools; i++)
        gx_conf_pool_deinit(&conf->registry.pools[i]);
    free(conf->registry.pools);
    free(conf->file);
    memset(conf, 0, sizeof(*conf));
}

int
gx_conf_init(gx_conf_t *conf)
{
    int rc;

    memset(conf, 0, sizeof(*conf));
    conf->workers = 0;
    conf->data_max_mb = 16384;
    conf->log_level = GX_LOG_INFO;
    gx_limits_init(&conf->limits);
    gx_reg_opts_init(&conf->registry);
    gx_jobs_opts_init(&conf->jobs);
    if ((rc = gx_conf_set_str(&conf->listen, "127.0.0.1:50051")) != 0 ||
        (rc = gx_conf_set_str(&conf->admin_listen, "127.0.0.1:9464")) != 0 ||
        (rc = gx_conf_set_str(&conf->data_dir, "./var")) != 0 ||
        (rc = gx_conf_set_str(&conf->module_dir, GX_PKGLIBDIR)) != 0 ||
        (rc = gx_conf_set_str(&conf->access_log, "stderr")) != 0)
        gx_conf_deinit(conf);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The loader: one walk over the libyaml document                           */

typedef struct {
    gx_conf_t *conf;
    const char *file;
    yaml_document_t *doc;
    char *err;
    size_t errlen;
} gx_conf_parse_t;

static unsigned long
gx_conf_line(const yaml_node_t *node)
{
    return (unsigned long)node->start_mark.line + 1;
}

static int
gx_conf_fail(gx_conf_parse_t *p, const yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets "file:line: reason". @return GX_ECONF */
static int
gx_conf_fail(gx_conf_parse_t *p, const yaml_node_t *node, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (p->err == NULL || p->errlen == 0)
        return GX_ECONF;
    n = snprintf(p->err, p->errlen, "%s:%lu: ", p->file, gx_conf_line(node));
    if (n < 0 || (size_t)n >= p->errlen)
        return GX_ECONF;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return GX_ECONF;
}

/* A heap "file:line" for @p node, or NULL when out of memory. */
static char *
gx_conf_where_new(const gx_conf_parse_t *p, const yaml_node_t *node)
{
    char *where = NULL;

    if (asprintf(&where, "%s:%lu", p->file, gx_conf_line(node)) < 0)
        return NULL;
    return where;
}

static const char *
gx_conf_kind(const yaml_node_t *node)
{
    switch (node->type) {
    case YAML_SCALAR_NODE:
        return "scalar";
    case YAML_SEQUENCE_NODE:
        return "sequence";
    case YAML_MAPPING_NODE:
        return "mapping";
    default:
        return "empty node";
    }
}

/* An untagged plain `~`, `null` or nothing at all: YAML's null. */
static int
gx_conf_is_null(const yaml_node_t *node)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    const char *v = (const char *)node->data.scalar.value;

    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        if (strcmp(v, nulls[i]) == 0)
            return 1;
    return 0;
}

static int
gx_conf_scalar_is(const yaml_node_t *node, const char *text)
{
    return node->type == YAML_SCALAR_NODE &&
           strcmp((const char *)node->data.scalar.value, text) == 0;
}

/*
 * The text of a scalar ("" for null), or NULL after setting the error.
 * @p what names the value in the message ("server.listen").
 */
static const char *
gx_conf_scalar(gx_conf_parse_t *p, const yaml_node_t *node, const char *what)
{
    if (node->type != YAML_SCALAR_NODE) {
        gx_conf_fail(p, node, "%s: expected a scalar, not a %s", what, gx_conf_kind(node));
        return NULL;
    }
    if (strlen((const char *)node->data.scalar.value) != node->data.scalar.length) {
        gx_conf_fail(p, node, "%s: the value contains a NUL character", what);
        return NULL;
    }
    return gx_conf_is_null(node) ? "" : (const char *)node->data.scalar.value;
}

/* A mapping key: a scalar, not seen before in the same mapping. */
static const char *
gx_conf_map_key(gx_conf_parse_t *p, const yaml_node_t *map, const yaml_node_pair_t *pair,
                const char *where)
{
    const yaml_node_t *key = yaml_document_get_node(p->doc, pair->key);
    const char *name;

    if (key->type != YAML_SCALAR_NODE) {
        gx_conf_fail(p, key, "%s: expected a scalar key, not a %s", where, gx_conf_kind(key));
        return NULL;
    }
    name = (const char *)key->data.scalar.value;
    if (strlen(name) != key->data.scalar.length) {
        gx_conf_fail(p, key, "%s: a key contains a NUL character", where);
        return NULL;
    }
    for (const yaml_node_pair_t *prev = map->data.mapping.pairs.start; prev < pair; prev++) {
        const yaml_node_t *pk = yaml_document_get_node(p->doc, prev->key);

        if (gx_conf_scalar_is(pk, name)) {
            gx_conf_fail(p, key, "duplicate key \"%s\" in %s (first at line %lu)", name, where,
                         gx_conf_line(pk));
            return NULL;
        }
    }
    return name;
}

/* A mapping node, or NULL for a null scalar (nothing to read).  Sets @p rc on error. */
static const yaml_node_t *
gx_conf_mapping(gx_conf_parse_t *p, const yaml_node_t *node, const char *what, int *rc)
{
    *rc = 0;
    if (node->type == YAML_MAPPING_NODE)
        return node;
    if (!gx_conf_is_null(node))
        *rc = gx_conf_fail(p, node, "%s must be a mapping, not a %s", what, gx_conf_kind(node));
    return NULL;
}

static int
gx_conf_set_int(gx_conf_parse_t *p, const gx_conf_key_t *k, const yaml_node_t *node,
                const char *text)
{
    void *field = (char *)p->conf + k->offset;
    unsigned long long v;
    int r = gx_conf_parse_u64(text, &v);

    if (r == -1)
        return gx_conf_fail(p, node, "%s.%s: \"%s\" is not an unsigned decimal integer",
                            k->section, k->key, text);
    if (r == -2 || v < k->min || v > k->max)
        return gx_conf_fail(p, node, "%s.%s: %s is out of range %" PRIu32 "..%" PRIu32,
                            k->section, k->key, text, k->min, k->max);
    if (k->type == GX_CONF_T_UINT)
        *(unsigned *)field = (unsigned)v;
    else
        *(uint32_t *)field = (uint32_t)v;
    return 0;
}

static int
gx_conf_set_string(gx_conf_parse_t *p, const gx_conf_key_t *k, const yaml_node_t *node,
                   const char *text)
{
    size_t len = strlen(text);

    if (len < k->min)
        return gx_conf_fail(p, node, "%s.%s: must not be empty", k->section, k->key);
    if (len > k->max)
        return gx_conf_fail(p, node, "%s.%s: longer than %" PRIu32 " bytes", k->section, k->key,
                            k->max);
    if (k->type == GX_CONF_T_ADDR && len > 0 && !gx_conf_addr_valid(text))
        return gx_conf_fail(p, node, "%s.%s: \"%s\" is not HOST:PORT", k->section, k->key, text);
    return gx_conf_set_str((char **)((char *)p->conf + k->offset), len > 0 ? text : k->empty);
}

static int
gx_conf_set_level(gx_conf_parse_t *p, const gx_conf_key_t *k, const yaml_node_t *node,
                  const char *text)
{
    int level = gx_log_level_parse(text);

    if (level < 0)
        return gx_conf_fail(p, node, "%s.%s: \"%s\" is not one of error, warn, info, debug",
                            k->section, k->key, text);
    *(int *)((char *)p->conf + k->offset) = level;
    return 0;
}

static int
gx_conf_set_key(gx_conf_parse_t *p, const gx_conf_key_t *k, const yaml_node_t *node)
{
    char what[128];
    const char *text;

    snprintf(what, sizeof(what), "%s.%s", k->section, k->key);
    text = gx_conf_scalar(p, node, what);
    if (text == NULL)
        return GX_ECONF;
    switch (k->type) {
    case GX_CONF_T_UINT:
    case GX_CONF_T_U32:
        return gx_conf_set_int(p, k, node, text);
    case GX_CONF_T_STR:
    case GX_CONF_T_ADDR:
        return gx_conf_set_string(p, k, node, text);
    case GX_CONF_T_LEVEL:
        return gx_conf_set_level(p, k, node, text);
    }
    return GX_ECONF;
}

/* `server:`, `limits:`: a mapping of keys from gx_conf_keys. */
static int
gx_conf_load_section(gx_conf_parse_t *p, const char *section, const yaml_node_t *node)
{
    char where[64];
    const yaml_node_t *map;
    int rc;

    snprintf(where, sizeof(where), "section \"%s\"", section);
    map = gx_conf_mapping(p, node, where, &rc);
    if (map == NULL)
        return rc;
    for (const yaml_node_pair_t *pair = map->data.mapping.pairs.start;
         pair < map->data.mapping.pairs.top; pair++) {
        const char *name = gx_conf_map_key(p, map, pair, where);
        const gx_conf_key_t *k;

        if (name == NULL)
            return GX_ECONF;
        k = gx_conf_key_find(section, name);
        if (k == NULL)
            return gx_conf_fail(p, yaml_document_get_node(p->doc, pair->key),
                                "unknown key \"%s\" in section \"%s\"", name, section);
        rc = gx_conf_set_key(p, k, yaml_document_get_node(p->doc, pair->value));
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------- modules */

static int
gx_conf_kv_add(gx_conf_parse_t *p, gx_mod_conf_t *mod, const yaml_node_t *key,
               const char *value)
{
    gx_conf_kv_t *kv = realloc(mod->kv, (mod->n_kv + 1) * sizeof(*kv));

    if (kv == NULL)
        return GX_ENOMEM;
    mod->kv = kv;
    kv = &mod->kv[mod->n_kv];
    memset(kv, 0, sizeof(*kv));
    mod->n_kv++;
    kv->key = strdup((const char *)key->data.scalar.value);
    kv->value = strdup(value);
    kv->where = gx_conf_where_new(p, key);
    if (kv->key == NULL || kv->value == NULL || kv->where == NULL)
        return GX_ENOMEM;
    return 0;
}

/* An entry's `config:`: a mapping of scalars, kept as strings for the module. */
static int
gx_conf_load_mod_config(gx_conf_parse_t *p, gx_mod_conf_t *mod, const yaml_node_t *node)
{
    char where[96];
    const yaml_node_t *map;
    int rc;

    snprintf(where, sizeof(where), "the config of module \"%.64s\"", mod->path);
    map = gx_conf_mapping(p, node, where, &rc);
    if (map == NULL)
        return rc;
    for (const yaml_node_pair_t *pair = map->data.mapping.pairs.start;
         pair < map->data.mapping.pairs.top; pair++) {
        const char *name = gx_conf_map_key(p, map, pair, where);
        char what[160];
        const char *value;

        if (name == NULL)
            return GX_ECONF;
        snprintf(what, sizeof(what), "module \"%.64s\": config.%.64s", mod->path, name);
        value = gx_conf_scalar(p, yaml_document_get_node(p->doc, pair->value), what);
        if (value == NULL)
            return GX_ECONF;
        rc = gx_conf_kv_add(p, mod, yaml_document_get_node(p->doc, pair->key), value);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The node of @p key in mapping @p map, or NULL. */
static const yaml_node_t *
gx_conf_map_get(const gx_conf_parse_t *p, const yaml_node_t *map, const char *key)
{
    for (const yaml_node_pair_t *pair = map->data.mapping.pairs.start;
         pair < map->data.mapping.pairs.top; pair++) {
        if (gx_conf_scalar_is(yaml_document_get_node(p->doc, pair->key), key))
            return yaml_document_get_node(p->doc, pair->value);
    }
    return NULL;
}

/* Keys, duplicates and the required `path:` of one `modules:` entry. */
static int
gx_conf_mod_keys_check(gx_conf_parse_t *p, const yaml_node_t *entry)
{
    for (const yaml_node_pair_t *pair = entry->data.mapping.pairs.start;
         pair < entry->data.mapping.pairs.top; pair++) {
        const char *name = gx_conf_map_key(p, entry, pair, "a modules entry");

        if (name == NULL)
            return GX_ECONF;
        if (strcmp(name, "path") != 0 && strcmp(name, "config") != 0)
            return gx_conf_fail(p, yaml_document_get_node(p->doc, pair->key),
                                "unknown key \"%s\" in a modules entry (path, config)", name);
    }
    if (gx_conf_map_get(p, entry, "path") == NULL)
        return gx_conf_fail(p, entry, "modules entry without \"path\"");
    return 0;
}

static int
gx_conf_mod_path(gx_conf_parse_t *p, gx_mod_conf_t *mod, const yaml_node_t *node)
{
    const char *path = gx_conf_scalar(p, node, "modules.path");

    if (path == NULL)
        return GX_ECONF;
    if (path[0] == '\0')
        return gx_conf_fail(p, node, "modules.path: must not be empty");
    if (strlen(path) > GX_CONF_PATH_MAX)
        return gx_conf_fail(p, node, "modules.path: longer than %" PRIu32 " bytes",
                            GX_CONF_PATH_MAX);
    for (size_t i = 0; i < p->conf->n_modules; i++)
        if (strcmp(p->conf->modules[i].path, path) == 0)
            return gx_conf_fail(p, node, "module \"%s\" is already listed at %s", path,
                                p->conf->modules[i].where);
    return gx_conf_set_str(&mod->path, path);
}

static int
gx_conf_load_mod(gx_conf_parse_t *p, const yaml_node_t *entry, gx_mod_conf_t *mod)
{
    const yaml_node_t *config;
    int rc;

    if (entry->type != YAML_MAPPING_NODE)
        return gx_conf_fail(p, entry, "a modules entry must be a mapping (path, config), not a %s",
                            gx_conf_kind(entry));
    rc = gx_conf_mod_keys_check(p, entry);
    if (rc != 0)
        return rc;
    rc = gx_conf_mod_path(p, mod, gx_conf_map_get(p, entry, "path"));
    if (rc != 0)
        return rc;
    mod->where = gx_conf_where_new(p, entry);
    if (mod->where == NULL)
        return GX_ENOMEM;
    config = gx_conf_map_get(p, entry, "config");
    return config != NULL ? gx_conf_load_mod_config(p, mod, config) : 0;
}

/* Appends a fully built entry: a failed one never becomes part of the configuration. */
static int
gx_conf_mod_append(gx_conf_t *conf, gx_mod_conf_t *mod)
{
    gx_mod_conf_t *mods = realloc(conf->modules, (conf->n_modules + 1) * sizeof(*mods));

    if (mods == NULL)
        return GX_ENOMEM;
    conf->modules = mods;
    mods[conf->n_modules++] = *mod;
    memset(mod, 0, sizeof(*mod));
    return 0;
}

static int
gx_conf_load_modules(gx_conf_parse_t *p, const yaml_node_t *node)
{
    gx_mod_conf_t mod;
    int rc = 0;

    if (node->type != YAML_SEQUENCE_NODE)
        return gx_conf_is_null(node)
                   ? 0
                   : gx_conf_fail(p, node, "section \"modules\" must be a sequence, not a %s",
                                  gx_conf_kind(node));
    memset(&mod, 0, sizeof(mod));
    for (const yaml_node_item_t *item = node->data.sequence.items.start;
         item < node->data.sequence.items.top; item++) {
        rc = gx_conf_load_mod(p, yaml_document_get_node(p->doc, *item), &mod);
        if (rc == 0)
            rc = gx_conf_mod_append(p->conf, &mod);
        if (rc != 0)
            goto out;
    }
out:
    gx_conf_mod_deinit(&mod);
    return rc;
}

/* ---------------------------------------------------------------- pools */

/*
 * `pools:` lists the pools a new data directory starts with (without the
 * section: mainnet, testnet and devnet, public).  Each entry is a mapping of
 * Pool fields; the values follow API.md's rules for CreatePool.
 */
static const char *const gx_conf_pool_keys[] = {
    "name", "visibility", "tier", "description", "heartbeat_interval_ms", "node_ttl_ms",
    "routing_policy", "max_nodes", "specializations", NULL,
};

static int
gx_conf_pool_u32(gx_conf_parse_t *p, const yaml_node_t *node, const char *what,
                 unsigned long long min, unsigned long long max, uint32_t *out)
{
    const char *v = gx_conf_scalar(p, node, what);
    unsigned long long n;

    if (v == NULL)
        return GX_ECONF;
    if (gx_conf_parse_u64(v, &n) != 0 || n < min || n > max)
        return gx_conf_fail(p, node, "%s: must be a number from %llu to %llu", what, min, max);
    *out = (uint32_t)n;
    return 0;
}

static int
gx_conf_pool_text(gx_conf_parse_t *p, const yaml_node_t *node, const char *what, size_t max,
                  char **out)
{
    const char *v = gx_conf_scalar(p, node, what);

    if (v == NULL)
        return GX_ECONF;
    if (strlen(v) > max)
        return gx_conf_fail(p, node, "%s: longer than %zu bytes", what, max);
    for (const char *c = v; *c; c++)
        if ((unsigned char)*c < ' ' || *c == 0x7f)
            return gx_conf_fail(p, node, "%s: control characters are not allowed", what);
    return gx_conf_set_str(out, v);
}

static int
gx_conf_pool_specs(gx_conf_parse_t *p, const yaml_node_t *node, gx_reg_pool_conf_t *pc)
{
    size_t n;

    if (node->type != YAML_SEQUENCE_NODE)
        return gx_conf_fail(p, node, "pools.specializations: must be a sequence, not a %s",
                            gx_conf_kind(node));
    n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    if (n > GX_REG_SPECS_MAX)
        return gx_conf_fail(p, node, "pools.specializations: at most %d", GX_REG_SPECS_MAX);
    pc->specializations = calloc(n ? n : 1, sizeof(*pc->specializations));
    if (pc->specializations == NULL)
        return GX_ENOMEM;
    for (const yaml_node_item_t *it = node->data.sequence.items.start;
         it < node->data.sequence.items.top; it++) {
        const yaml_node_t *item = yaml_document_get_node(p->doc, *it);
        const char *v = gx_conf_scalar(p, item, "pools.specializations");

        if (v == NULL)
            return GX_ECONF;
        if (!gx_reg_valid_spec(v))
            return gx_conf_fail(p, item, "pools.specializations: \"%s\" must match "
                                "[a-z0-9-]{1,32}", v);
        pc->specializations[pc->n_specializations] = strdup(v);
        if (pc->specializations[pc->n_specializations++] == NULL)
            return GX_ENOMEM;
    }
    return 0;
}

static int
gx_conf_pool_field(gx_conf_parse_t *p, const char *key, const yaml_node_t *v,
                   gx_reg_pool_conf_t *pc)
{
    const char *s;

    if (strcmp(key, "name") == 0) {
        if ((s = gx_conf_scalar(p, v, "pools.name")) == NULL)
            return GX_ECONF;
        if (!gx_reg_valid_pool_name(s))
            return gx_conf_fail(p, v, "pools.name: \"%s\" must match [a-z0-9][a-z0-9-]{0,62}", s);
        return gx_conf_set_str(&pc->name, s);
    }
    if (strcmp(key, "visibility") == 0) {
        if ((s = gx_conf_scalar(p, v, "pools.visibility")) == NULL)
            return GX_ECONF;
        if (strcmp(s, "public") == 0)
            pc->visibility = GALAXY__POOL__V1__VISIBILITY__VISIBILITY_PUBLIC;
        else if (strcmp(s, "private") == 0)
            pc->visibility = GALAXY__POOL__V1__VISIBILITY__VISIBILITY_PRIVATE;
        else
            return gx_conf_fail(p, v, "pools.visibility: must be public or private");
        return 0;
    }
    if (strcmp(key, "tier") == 0)
        return gx_conf_pool_text(p, v, "pools.tier", GX_REG_TEXT_MAX, &pc->tier);
    if (strcmp(key, "description") == 0)
        return gx_conf_pool_text(p, v, "pools.description", GX_REG_DESCRIPTION_MAX,
                                 &pc->description);
    if (strcmp(key, "routing_policy") == 0) {
        if ((s = gx_conf_scalar(p, v, "pools.routing_policy")) == NULL)
            return GX_ECONF;
        if (!gx_reg_valid_token(s, GX_REG_TEXT_MAX))
            return gx_conf_fail(p, v, "pools.routing_policy: malformed");
        return gx_conf_set_str(&pc->routing_policy, s);
    }
    if (strcmp(key, "heartbeat_interval_ms") == 0)
        return gx_conf_pool_u32(p, v, "pools.heartbeat_interval_ms", GX_REG_INTERVAL_MIN,
                                GX_REG_INTERVAL_MAX, &pc->heartbeat_interval_ms);
    if (strcmp(key, "node_ttl_ms") == 0)
        return gx_conf_pool_u32(p, v, "pools.node_ttl_ms", GX_REG_INTERVAL_MIN,
                                10ull * GX_REG_INTERVAL_MAX, &pc->node_ttl_ms);
    if (strcmp(key, "max_nodes") == 0)
        return gx_conf_pool_u32(p, v, "pools.max_nodes", 0, UINT32_MAX, &pc->max_nodes);
    return gx_conf_pool_specs(p, v, pc); /* "specializations": the keys are checked first */
}

static int
gx_conf_load_pool(gx_conf_parse_t *p, const yaml_node_t *entry, gx_reg_pool_conf_t *pc)
{
    int rc = 0;

    if (entry->type != YAML_MAPPING_NODE)
        return gx_conf_fail(p, entry, "a pools entry must be a mapping (name, visibility, ...), "
                            "not a %s", gx_conf_kind(entry));
    for (const yaml_node_pair_t *pair = entry->data.mapping.pairs.start;
         pair < entry->data.mapping.pairs.top && rc == 0; pair++) {
        const char *key = gx_conf_map_key(p, entry, pair, "a pools entry");
        size_t k = 0;

        if (key == NULL)
            return GX_ECONF;
        while (gx_conf_pool_keys[k] != NULL && strcmp(gx_conf_pool_keys[k], key) != 0)
            k++;
        if (gx_conf_pool_keys[k] == NULL)
            return gx_conf_fail(p, yaml_document_get_node(p->doc, pair->key),
                                "unknown key \"%s\" in a pools entry", key);
        rc = gx_conf_pool_field(p, key, yaml_document_get_node(p->doc, pair->value), pc);
    }
    if (rc != 0)
        return rc;
    if (pc->name == NULL)
        return gx_conf_fail(p, entry, "pools entry without \"name\"");
    if (pc->visibility == 0)
        return gx_conf_fail(p, entry, "pools entry \"%s\" without \"visibility\" "
                            "(public or private)", pc->name);
    for (size_t i = 0; i < p->conf->registry.n_pools; i++)
        if (strcmp(p->conf->registry.pools[i].name, pc->name) == 0)
            return gx_conf_fail(p, entry, "pool \"%s\" is already listed at %s", pc->name,
                                p->conf->registry.pools[i].where);
    pc->where = gx_conf_where_new(p, entry);
    return pc->where != NULL ? 0 : GX_ENOMEM;
}

static int
gx_conf_load_pools(gx_conf_parse_t *p, const yaml_node_t *node)
{
    gx_reg_opts_t *o = &p->conf->registry;
    gx_reg_pool_conf_t pc;
    int rc = 0;

    o->pools_given = 1;
    if (node->type != YAML_SEQUENCE_NODE)
        return gx_conf_is_null(node)
                   ? 0
                   : gx_conf_fail(p, node, "section \"pools\" must be a sequence, not a %s",
                                  gx_conf_kind(node));
    memset(&pc, 0, sizeof(pc));
    for (const yaml_node_item_t *item = node->data.sequence.items.start;
         item < node->data.sequence.items.top && rc == 0; item++) {
        gx_reg_pool_conf_t *v;

        rc = gx_conf_load_pool(p, yaml_document_get_node(p->doc, *item), &pc);
        if (rc != 0)
            break;
        v = realloc(o->pools, (o->n_pools + 1) * sizeof(*v));
        if (v == NULL) {
            rc = GX_ENOMEM;
            break;
        }
        o->pools = v;
        v[o->n_pools++] = pc;
        memset(&pc, 0, sizeof(pc));
    }
    gx_conf_pool_deinit(&pc);
    return rc;
}

/* ---------------------------------------------------------------- document */

static int
gx_conf_load_root(gx_conf_parse_t *p, const yaml_node_t *root)
{
    const yaml_node_t *map;
    int rc;

    map = gx_conf_mapping(p, root, "the top level", &rc);
    if (map == NULL)
        return rc;
    for (const yaml_node_pair_t *pair = map->data.mapping.pairs.start;
         pair < map->data.mapping.pairs.top; pair++) {
        const char *name = gx_conf_map_key(p, map, pair, "the top level");
        const yaml_node_t *value = yaml_document_get_node(p->doc, pair->value);

        if (name == NULL)
            return GX_ECONF;
        if (strcmp(name, "modules") == 0)
            rc = gx_conf_load_modules(p, value);
        else if (strcmp(name, "pools") == 0)
            rc = gx_conf_load_pools(p, value);
        else if (gx_conf_is_section(name))
            rc = gx_conf_load_section(p, name, value);
        else
            rc = gx_conf_fail(p, yaml_document_get_node(p->doc, pair->key),
                              "unknown section \"%s\"", name);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/*
 * Reports a libyaml parser error with its 1-based line.  The reader (bad
 * UTF-8, a NUL byte) decodes ahead of the scanner and gives only a byte offset,
 * so its line is counted in @p text.
 */
static int
gx_conf_yaml_error(gx_conf_parse_t *p, const yaml_parser_t *parser, const char *text,
                   size_t len)
{
    unsigned long line = (unsigned long)parser->problem_mark.line + 1;

    if (parser->error == YAML_MEMORY_ERROR)
        return GX_ENOMEM;
    if (parser->error == YAML_READER_ERROR) {
        size_t end = parser->problem_offset < len ? parser->problem_offset : len;

        line = 1;
        for (size_t i = 0; i < end; i++)
            line += text[i] == '\n';
    }
    gx_conf_errf(p->err, p->errlen, "%s:%lu: YAML syntax error: %s%s%s", p->file, line,
                 parser->problem ? parser->problem : "unknown", parser->context ? ", " : "",
                 parser->context ? parser->context : "");
    return GX_ECONF;
}

/* Parses @p text (one YAML document) into p->conf. */
static int
gx_conf_load_text(gx_conf_parse_t *p, const char *text, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    int rc;

    if (!yaml_parser_initialize(&parser))
        return GX_ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = gx_conf_yaml_error(p, &parser, text, len);
        goto fail_parser;
    }
    if (!yaml_parser_load(&parser, &extra)) {
        rc = gx_conf_yaml_error(p, &parser, text, len);
        goto fail_doc;
    }
    if (yaml_document_get_root_node(&extra) != NULL) {
        p->doc = &extra;
        rc = gx_conf_fail(p, yaml_document_get_root_node(&extra),
                          "only one YAML document is allowed");
    } else if (yaml_document_get_root_node(&doc) != NULL) {
        p->doc = &doc;
        rc = gx_conf_load_root(p, yaml_document_get_root_node(&doc));
    } else {
        rc = 0; /* an empty file: the defaults */
    }
    yaml_document_delete(&extra);
fail_doc:
    yaml_document_delete(&doc);
fail_parser:
    yaml_parser_delete(&parser);
    return rc;
}

/* Reads the whole of @p path into a NUL-terminated heap buffer. */
static int
gx_conf_read_file(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = GX_ENOENT;

    f = fopen(path, "r");
    if (f == NULL) {
        gx_conf_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    for (;;) {
        size_t n;

        if (len + 1 >= cap) {
            char *nbuf;

            if (cap >= GX_CONF_FILE_MAX) {
                gx_conf_errf(err, errlen, "%s: larger than %u bytes", path, GX_CONF_FILE_MAX);
                rc = GX_ECONF;
                goto out;
            }
            cap = cap ? cap * 2 : 4096;
            nbuf = realloc(buf, cap);
            if (nbuf == NULL) {
                rc = GX_ENOMEM;
                goto out;
            }
            buf = nbuf;
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        gx_conf_errf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    if (f != NULL)
        fclose(f);
    return rc;
}

int
gx_conf_load(gx_conf_t *conf, const char *path, char *err, size_t errlen)
{
    gx_conf_parse_t p = {.conf = conf, .file = path, .err = err, .errlen = errlen};
    char *text = NULL;
    size_t len = 0;
    int rc;

    gx_conf_errf(err, errlen, "%s", "");
    rc = gx_conf_read_file(path, &text, &len, err, errlen);
    if (rc != 0)
        goto out;
    rc = gx_conf_set_str(&conf->file, path);
    if (rc != 0)
        goto out;
    rc = gx_conf_load_text(&p, text, len);
out:
    if (rc == GX_ENOMEM)
        gx_conf_errf(err, errlen, "%s: out of memory", path);
    free(text);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Cross-field checks                                                       */

/* Each table row again: the command line may have set any of them since the file was read. */
static int
gx_conf_check_key(const gx_conf_t *conf, const gx_conf_key_t *k, char *err, size_t errlen)
{
    const void *field = (const char *)conf + k->offset;
    const char *s;
    unsigned long long v;

    switch (k->type) {
    case GX_CONF_T_UINT:
    case GX_CONF_T_U32:
        v = k->type == GX_CONF_T_UINT ? *(const unsigned *)field : *(const uint32_t *)field;
        if (v >= k->min && v <= k->max)
            return 0;
        gx_conf_errf(err, errlen, "%s.%s: %llu is out of range %" PRIu32 "..%" PRIu32,
                     k->section, k->key, v, k->min, k->max);
        return GX_ECONF;
    case GX_CONF_T_STR:
    case GX_CONF_T_ADDR:
        s = *(char *const *)field;
        if (s == NULL || s[0] == '\0') {
            if (k->min == 0 && k->empty == NULL)
                return 0;
            gx_conf_errf(err, errlen, "%s.%s: must not be empty", k->section, k->key);
            return GX_ECONF;
        }
        if (k->type == GX_CONF_T_STR || gx_conf_addr_valid(s))
            return 0;
        gx_conf_errf(err, errlen, "%s.%s: \"%s\" is not HOST:PORT", k->section, k->key, s);
        return GX_ECONF;
    case GX_CONF_T_LEVEL:
        v = (unsigned long long)*(const int *)field;
        if (v <= GX_LOG_DEBUG)
            return 0;
        gx_conf_errf(err, errlen, "%s.%s: not one of error, warn, info, debug", k->section,
                     k->key);
        return GX_ECONF;
    }
    return 0;
}

static int
gx_conf_is_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static int
gx_conf_check_tls(const gx_conf_t *conf, char *err, size_t errlen)
{
    const char *missing = NULL;

    if (gx_conf_is_set(conf->tls_listen)) {
        if (!gx_conf_is_set(conf->tls_cert))
            missing = "tls_cert";
        else if (!gx_conf_is_set(conf->tls_key))
            missing = "tls_key";
        if (missing != NULL) {
            gx_conf_errf(err, errlen, "server.tls_listen is set but server.%s is not", missing);
            return GX_ECONF;
        }
        return 0;
    }
    if (gx_conf_is_set(conf->tls_client_ca))
        missing = "tls_client_ca";
    else if (gx_conf_is_set(conf->tls_cert))
        missing = "tls_cert";
    else if (gx_conf_is_set(conf->tls_key))
        missing = "tls_key";
    if (missing != NULL) {
        gx_conf_errf(err, errlen, "server.%s is set but server.tls_listen is not", missing);
        return GX_ECONF;
    }
    return 0;
}

/* Two listeners on the same address cannot both bind (port 0 picks a fresh port each time). */
static int
gx_conf_check_listeners(const gx_conf_t *conf, char *err, size_t errlen)
{
    const char *const names[] = {"listen", "tls_listen", "admin_listen"};
    const char *const addrs[] = {conf->listen, conf->tls_listen, conf->admin_listen};

    for (size_t i = 0; i < 3; i++) {
        if (!gx_conf_is_set(addrs[i]) || gx_conf_addr_port_is_zero(addrs[i]))
            continue;
        for (size_t j = i + 1; j < 3; j++) {
            if (gx_conf_is_set(addrs[j]) && strcmp(addrs[i], addrs[j]) == 0) {
                gx_conf_errf(err, errlen, "server.%s and server.%s are both \"%s\"", names[i],
                             names[j], addrs[i]);
                return GX_ECONF;
            }
        }
    }
    return 0;
}

/* limits.@a must be at least limits.@b */
static int
gx_conf_limit_at_least(const char *a, uint32_t av, const char *b, uint32_t bv, char *err,
                       size_t errlen)
{
    if (av >= bv)
        return 0;
    gx_conf_errf(err, errlen,
                 "limits.%s (%" PRIu32 ") is smaller than limits.%s (%" PRIu32 ")", a, av, b, bv);
    return GX_ECONF;
}

#define GX_CONF_AT_LEAST(l, a, b) \
    gx_conf_limit_at_least(#a, (l)->a, #b, (l)->b, err, errlen)

static int
gx_conf_check_limits(const gx_limits_t *l, char *err, size_t errlen)
{
    int rc = GX_CONF_AT_LEAST(l, connection_window_bytes, initial_window_bytes);

    /* one message of the largest size must fit, or no client could send it */
    if (rc == 0)
        rc = GX_CONF_AT_LEAST(l, conn_recv_buffer_bytes, max_recv_message_bytes);
    if (rc == 0)
        rc = GX_CONF_AT_LEAST(l, server_recv_buffer_bytes, conn_recv_buffer_bytes);
    if (rc == 0)
        rc = GX_CONF_AT_LEAST(l, server_send_queue_bytes, conn_send_queue_bytes);
    return rc;
}

int
gx_conf_check(const gx_conf_t *conf, char *err, size_t errlen)
{
    int rc;

    gx_conf_errf(err, errlen, "%s", "");
    for (size_t i = 0; i < GX_CONF_N_KEYS; i++) {
        rc = gx_conf_check_key(conf, &gx_conf_keys[i], err, errlen);
        if (rc != 0)
            return rc;
    }
    rc = gx_conf_check_tls(conf, err, errlen);
    if (rc == 0)
        rc = gx_conf_check_listeners(conf, err, errlen);
    if (rc == 0)
        rc = gx_conf_check_limits(&conf->limits, err, errlen);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Module configuration (public, include/galaxy/gx_module.h)                */

static const gx_conf_kv_t *
gx_mod_conf_find(const gx_mod_conf_t *conf, const char *key)
{
    if (conf == NULL || key == NULL)
        return NULL;
    for (size_t i = 0; i < conf->n_kv; i++)
        if (strcmp(conf->kv[i].key, key) == 0)
            return &conf->kv[i];
    return NULL;
}

GX_API const char *
gx_mod_conf_get(const gx_mod_conf_t *conf, const char *key)
{
    const gx_conf_kv_t *kv = gx_mod_conf_find(conf, key);

    return kv != NULL ? kv->value : NULL;
}

GX_API const char *
gx_mod_conf_where(const gx_mod_conf_t *conf, const char *key)
{
    const gx_conf_kv_t *kv = gx_mod_conf_find(conf, key);

    if (kv != NULL)
        return kv->where;
    return conf != NULL && conf->where != NULL ? conf->where : "";
}

GX_API const char *
gx_mod_conf_key(const gx_mod_conf_t *conf, size_t i)
{
    return conf != NULL && i < conf->n_kv ? conf->kv[i].key : NULL;
}
