/* SPDX-License-Identifier: MIT */
/*
 * auth_mtls: client certificates as credentials.  The transport verifies a
 * client certificate against --tls-client-ca and names it by its first URI
 * SAN, else its first DNS SAN (never the CN); this module maps such names to
 * a role and pools, from its configuration:
 *
 *     - path: auth_mtls
 *       config:
 *         "spiffe://example.org/ops/admin": admin
 *         "node-17.example.org": "node:private-a,private-b"
 *
 * A value is a role (viewer, node, submitter, operator, admin), optionally
 * followed by ':' and the pools it covers (none: every pool).  A mapped
 * certificate becomes "cert:<identity>"; an unmapped one, or none, leaves
 * the call anonymous.  The table is built once and only read afterwards.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <galaxy/gx_module.h>

#define POOLS_MAX 64
#define IDENTITY_MAX 1024

typedef struct {
    const char *identity; /* lives as long as the configuration */
    char *principal;      /* "cert:<identity>" */
    gx_role_t role;
    char **pools;
    size_t n_pools;
} entry_t;

typedef struct {
    entry_t *v;
    size_t n;
} map_t;

static const gx_module_t *self;

static int
by_identity(const void *a, const void *b)
{
    return strcmp(((const entry_t *)a)->identity, ((const entry_t *)b)->identity);
}

static const entry_t *
lookup(const map_t *m, const char *identity)
{
    entry_t key = {.identity = identity};

    return bsearch(&key, m->v, m->n, sizeof(*m->v), by_identity);
}

static int
authn(gx_call_t *call, void *ctx)
{
    const char *id = gx_call_tls_identity(call);
    const entry_t *e;

    if (id == NULL)
        return GX_DECLINED;
    e = lookup(ctx, id);
    if (e == NULL)
        return GX_DECLINED; /* verified but not mapped: anonymous */
    if (gx_call_set_principal(call, e->principal, e->role, (const char *const *)e->pools,
                              e->n_pools) != 0)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return GX_OK;
}

/* ------------------------------------------------------------------ configuration */

static int
parse_role(const char *s, size_t n, gx_role_t *out)
{
    static const char *const names[] = {"viewer", "node", "submitter", "operator", "admin"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == n && strncmp(s, names[i], n) == 0) {
            *out = (gx_role_t)(GX_ROLE_VIEWER + (int)i);
            return 0;
        }
    return -EINVAL;
}

static int
valid_pool(const char *s, size_t n)
{
    if (n == 0 || n > 63 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

/* "role" or "role:pool,pool" into @p e; @return 0 or -EINVAL with @p why set */
static int
parse_value(const char *v, entry_t *e, const char **why)
{
    const char *colon = strchr(v, ':');
    const char *p;

    if (parse_role(v, colon ? (size_t)(colon - v) : strlen(v), &e->role) != 0) {
        *why = "the role must be viewer, node, submitter, operator or admin";
        return -EINVAL;
    }
    if (colon == NULL)
        return 0;
    for (p = colon + 1;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char **v2;

        if (!valid_pool(p, n)) {
            *why = "pools must be pool names ([a-z0-9][a-z0-9-]{0,62}) separated by commas";
            return -EINVAL;
        }
        if (e->n_pools == POOLS_MAX) {
            *why = "at most 64 pools";
            return -EINVAL;
        }
        v2 = realloc(e->pools, (e->n_pools + 1) * sizeof(*v2));
        if (v2 == NULL)
            return -ENOMEM;
        e->pools = v2;
        e->pools[e->n_pools] = strndup(p, n);
        if (e->pools[e->n_pools] == NULL)
            return -ENOMEM;
        e->n_pools++;
        if (end == NULL)
            return 0;
        p = end + 1;
    }
}

static void
map_free(map_t *m)
{
    for (size_t i = 0; m != NULL && i < m->n; i++) {
        for (size_t j = 0; j < m->v[i].n_pools; j++)
            free(m->v[i].pools[j]);
        free(m->v[i].pools);
        free(m->v[i].principal);
    }
    if (m != NULL)
        free(m->v);
    free(m);
}

static int
mtls_init(gx_module_t *mod, const gx_mod_conf_t *conf, void **ctx)
{
    map_t *m = calloc(1, sizeof(*m));
    size_t n = 0;
    int rv = 0;

    self = mod;
    if (m == NULL)
        return -ENOMEM;
    while (gx_mod_conf_key(conf, n) != NULL)
        n++;
    m->v = calloc(n ? n : 1, sizeof(*m->v));
    if (m->v == NULL) {
        free(m);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n && rv == 0; i++) {
        const char *id = gx_mod_conf_key(conf, i), *why = "out of memory";
        entry_t *e = &m->v[m->n++];

        e->identity = id;
        if (id[0] == '\0' || strlen(id) > IDENTITY_MAX) {
            why = "an identity is 1 to 1024 bytes";
            rv = -EINVAL;
        } else if (gx_mod_conf_get(conf, id) == NULL) {
            why = "the value must be a role, or a role, ':' and pools";
            rv = -EINVAL;
        } else {
            rv = parse_value(gx_mod_conf_get(conf, id), e, &why);
        }
        if (rv == 0) {
            e->principal = malloc(strlen(id) + sizeof("cert:"));
            if (e->principal == NULL)
                rv = -ENOMEM;
            else
                strcpy(stpcpy(e->principal, "cert:"), id);
        }
        if (rv != 0)
            gx_mod_log(mod, GX_LOG_ERROR, "%s: \"%s\": %s", gx_mod_conf_where(conf, id), id, why);
    }
    if (rv == 0) {
        qsort(m->v, m->n, sizeof(*m->v), by_identity);
        for (size_t i = 1; i < m->n && rv == 0; i++)
            if (strcmp(m->v[i - 1].identity, m->v[i].identity) == 0) {
                gx_mod_log(mod, GX_LOG_ERROR, "%s: \"%s\" is mapped twice",
                           gx_mod_conf_where(conf, m->v[i].identity), m->v[i].identity);
                rv = -EINVAL;
            }
    }
    if (rv != 0) {
        map_free(m);
        return rv;
    }
    gx_mod_log(mod, GX_LOG_INFO, "%zu certificate identities mapped", m->n);
    *ctx = m;
    return 0;
}

static void
mtls_fini(gx_module_t *mod, void *ctx)
{
    map_free(ctx);
}

static const gx_hook_t mtls_hooks[] = {
    {.phase = GX_PHASE_AUTHN, .fn = authn, .order = 20},
    {.fn = NULL},
};

static const gx_module_desc_t mtls_module = {
    .abi = GX_MODULE_ABI,
    .name = "auth_mtls",
    .version = "1.0.0",
    .edition = "enterprise",
    .init = mtls_init,
    .fini = mtls_fini,
    .hooks = mtls_hooks,
};

GX_MODULE(mtls_module);
