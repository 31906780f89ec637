/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the module loader (src/core/gx_mod.c).  Real shared objects
 * from t/modules/abi/ (built by `make check` into t/modules/.libs/) are loaded
 * through gx_mods_load(): a good one and the ways a module is refused (wrong
 * ABI, duplicate name, a service table that disagrees with its descriptor, a
 * failing init(), a missing file, no descriptor symbol), each with its exact
 * message and with everything unloaded again.  Built-in descriptors defined
 * here drive the flattened phase chain and the route table step by step, and
 * an allocation-failure loop fails every allocation of the loader in turn.
 *
 * The modules call gx_mod_log() and gx_mod_conf_get() from this program
 * (linked with -export-dynamic); what they log goes to stderr, which each load
 * and unload captures to see which init() and fini() ran, and in which order.
 */
#include "config.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "core/gx_conf.h"
#include "core/gx_mod.h"
#include "core/gx_svc_health.h"
#include "grpc/health/v1/health.pb-c.h"
#include "util/gx_error.h"
#include "util/gx_log.h"

#include "../gx_test_alloc.h"

#define malloc test_malloc
#define calloc test_calloc
#define realloc test_realloc
#define strdup test_strdup
#include "core/gx_mod.c"
#undef malloc
#undef calloc
#undef realloc
#undef strdup

#define ERRLEN 1024
#define MAX_MODS 8

/* snprintf() that fails the test instead of truncating. */
static void fmt(char *buf, size_t size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static void
fmt(char *buf, size_t size, const char *format, ...)
{
    va_list ap;
    int n;

    va_start(ap, format);
    n = vsnprintf(buf, size, format, ap);
    va_end(ap);
    ck_assert_msg(n >= 0 && (size_t)n < size, "%d bytes do not fit in %zu", n, size);
}

/* ------------------------------------------------------------------------ */
/* Fixture: a configuration naming modules, the loaded tables, the log      */

typedef struct {
    gx_conf_t conf;
    gx_mod_conf_t mc[MAX_MODS];
    char path[MAX_MODS][PATH_MAX];
    char where[MAX_MODS][64];
    char libs[PATH_MAX];
    gx_mods_t mods;
    char err[ERRLEN];
    char *load_log;
    char *unload_log;
    int rc;
} fx_t;

static int capture_fd = -1, saved_stderr = -1;

/* Sends stderr to a temporary file until capture_end(). */
static void
capture_start(void)
{
    char path[] = "/tmp/test_gx_mod_log_XXXXXX";

    capture_fd = mkstemp(path);
    ck_assert_int_ge(capture_fd, 0);
    unlink(path);
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    ck_assert_int_ge(saved_stderr, 0);
    ck_assert_int_ge(dup2(capture_fd, STDERR_FILENO), 0);
}

/* Restores stderr, copies what was captured to it, and returns it (malloc). */
static char *
capture_end(void)
{
    off_t size;
    char *text;

    fflush(stderr);
    ck_assert_int_ge(dup2(saved_stderr, STDERR_FILENO), 0);
    close(saved_stderr);
    size = lseek(capture_fd, 0, SEEK_END);
    ck_assert_int_ge(size, 0);
    text = malloc((size_t)size + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert_int_eq(pread(capture_fd, text, (size_t)size, 0), size);
    text[size] = '\0';
    close(capture_fd);
    if (write(STDERR_FILENO, text, (size_t)size) < 0) {
        /* the copy is only for whoever reads the test log */
    }
    return text;
}

static const char *
builddir(void)
{
    static char cwd[PATH_MAX];
    const char *d = getenv("GX_BUILDDIR");

    if (d != NULL && d[0] != '\0')
        return d;
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
    return cwd;
}

static fx_t *
fx_new(void)
{
    fx_t *f = calloc(1, sizeof(*f));

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gx_conf_init(&f->conf), 0);
    fmt(f->libs, sizeof(f->libs), "%s/t/modules/.libs", builddir());
    ck_assert_int_eq(gx_conf_set_str(&f->conf.module_dir, f->libs), 0);
    f->conf.modules = f->mc;
    return f;
}

/* Adds a `modules:` entry with @p path as written; returns the entry. */
static gx_mod_conf_t *
fx_add_raw(fx_t *f, const char *path)
{
    size_t i = f->conf.n_modules++;

    ck_assert_uint_lt(i, MAX_MODS);
    fmt(f->path[i], sizeof(f->path[i]), "%s", path);
    fmt(f->where[i], sizeof(f->where[i]), "test.yaml:%zu", 10 + i);
    f->mc[i].path = f->path[i];
    f->mc[i].where = f->where[i];
    return &f->mc[i];
}

/* Adds t/modules/.libs/abi_<variant>.so by its absolute path; returns the path. */
static const char *
fx_add(fx_t *f, const char *variant)
{
    char path[PATH_MAX];

    fmt(path, sizeof(path), "%s/abi_%s.so", f->libs, variant);
    return fx_add_raw(f, path)->path;
}

static int
fx_load(fx_t *f, const gx_module_desc_t *const *builtins)
{
    free(f->load_log);
    f->err[0] = '\0';
    capture_start();
    f->rc = gx_mods_load(&f->mods, &f->conf, builtins, f->err, sizeof(f->err));
    f->load_log = capture_end();
    return f->rc;
}

static void
fx_load_ok(fx_t *f, const gx_module_desc_t *const *builtins)
{
    fx_load(f, builtins);
    ck_assert_msg(f->rc == 0, "load failed (%d): %s", f->rc, f->err);
    ck_assert_ptr_eq(gx__mods, &f->mods);
}

static void
fx_unload(fx_t *f)
{
    free(f->unload_log);
    capture_start();
    gx_mods_unload(&f->mods);
    f->unload_log = capture_end();
}

/* The tables are empty: what a failed load or an unload must leave. */
static void
assert_empty(const gx_mods_t *mods)
{
    ck_assert_ptr_null(mods->mods);
    ck_assert_uint_eq(mods->n_mods, 0);
    ck_assert_ptr_null(mods->routes);
    ck_assert_uint_eq(mods->n_routes, 0);
    ck_assert_ptr_null(mods->steps);
    ck_assert_uint_eq(mods->n_steps, 0);
    ck_assert_ptr_null(gx__mods);
}

/* A load that fails with @p rc and exactly @p want, leaving nothing loaded. */
static void
fx_load_fails(fx_t *f, const gx_module_desc_t *const *builtins, int rc, const char *want)
{
    fx_load(f, builtins);
    ck_assert_msg(f->rc == rc, "rc %d, want %d (%s)", f->rc, rc, f->err);
    if (want != NULL)
        ck_assert_str_eq(f->err, want);
    assert_empty(&f->mods);
}

static void
fx_free(fx_t *f)
{
    gx_mods_unload(&f->mods);
    f->conf.modules = NULL;
    f->conf.n_modules = 0;
    gx_conf_deinit(&f->conf);
    free(f->load_log);
    free(f->unload_log);
    free(f);
}

static void
assert_logged(const char *log, const char *line)
{
    ck_assert_msg(log != NULL && strstr(log, line) != NULL, "\"%s\" not logged in:\n%s", line,
                  log ? log : "(nothing)");
}

static void
assert_not_logged(const char *log, const char *line)
{
    ck_assert_msg(log == NULL || strstr(log, line) == NULL, "\"%s\" logged in:\n%s", line, log);
}

/* @p first is logged, then later @p second. */
static void
assert_logged_before(const char *log, const char *first, const char *second)
{
    const char *a, *b;

    assert_logged(log, first);
    assert_logged(log, second);
    a = strstr(log, first);
    b = strstr(log, second);
    ck_assert_msg(a < b, "\"%s\" logged after \"%s\"", first, second);
}

/* ------------------------------------------------------------------------ */
/* Expected chains                                                          */

typedef struct {
    gx_phase_fn fn; /* NULL: the route handler */
    const gx_module_t *mod;
    gx_phase_t phase;
    unsigned next;
} want_step_t;

static void
assert_steps(const gx_mods_t *mods, const want_step_t *want, size_t n, size_t log_first)
{
    ck_assert_uint_eq(mods->n_steps, n);
    for (size_t i = 0; i < n; i++) {
        const gx_step_t *s = &mods->steps[i];

        ck_assert_msg(s->fn == want[i].fn, "step %zu: wrong hook", i);
        ck_assert_msg(s->mod == want[i].mod, "step %zu: module %s, want %s", i,
                      s->mod ? s->mod->desc->name : "(handler)",
                      want[i].mod ? want[i].mod->desc->name : "(handler)");
        ck_assert_msg(s->phase == want[i].phase, "step %zu: phase %d, want %d", i, (int)s->phase,
                      (int)want[i].phase);
        ck_assert_msg(s->next == want[i].next, "step %zu: next %u, want %u", i, s->next,
                      want[i].next);
    }
    ck_assert_uint_eq(mods->log_first, log_first);
}

/* Generic chain invariants: sorted by phase, next = first step of the next phase. */
static void
assert_chain_shape(const gx_mods_t *mods)
{
    size_t handlers = 0;

    for (size_t i = 0; i < mods->n_steps; i++) {
        const gx_step_t *s = &mods->steps[i];

        if (i > 0)
            ck_assert_int_le(mods->steps[i - 1].phase, s->phase);
        ck_assert_uint_gt(s->next, i);
        ck_assert_uint_le(s->next, mods->n_steps);
        if (s->next < mods->n_steps)
            ck_assert_int_gt(mods->steps[s->next].phase, s->phase);
        ck_assert_int_eq(mods->steps[s->next - 1].phase, s->phase);
        if (s->fn == NULL) {
            handlers++;
            ck_assert_int_eq(s->phase, GX_PHASE_HANDLER);
            ck_assert_ptr_null(s->mod);
            /* it closes the HANDLER phase */
            ck_assert_uint_eq(s->next, i + 1);
            ck_assert_uint_eq(mods->log_first, i + 1);
        }
    }
    ck_assert_uint_eq(handlers, 1);
}

/* The hook @p i of the descriptor of @p mod. */
static gx_phase_fn
hook_of(const gx_module_t *mod, size_t i)
{
    return mod->desc->hooks[i].fn;
}

/* ------------------------------------------------------------------------ */
/* A good module                                                            */

START_TEST(test_load_good)
{
    fx_t *f = fx_new();
    const char *path = fx_add(f, "good");
    const gx_module_t *m;
    const gx_route_t *r;

    fx_load_ok(f, NULL);
    ck_assert_uint_eq(f->mods.n_mods, 1);
    m = f->mods.mods[0];
    ck_assert_str_eq(m->desc->name, "abi_good");
    ck_assert_str_eq(m->desc->version, "1.0");
    ck_assert_str_eq(m->path, path);
    ck_assert_ptr_nonnull(m->dl);
    ck_assert_uint_eq(m->index, 0);
    ck_assert_int_eq(m->inited, 1);
    ck_assert_str_eq((const char *)m->ctx, "abi_good context");
    assert_logged(f->load_log, "module=abi_good init greeting=(none)");
    assert_not_logged(f->load_log, "fini");

    /* routes: one per descriptor method, sorted, each row found by name */
    ck_assert_uint_eq(f->mods.n_routes, 2);
    r = &f->mods.routes[0];
    ck_assert_str_eq(r->path, "/grpc.health.v1.Health/Check");
    ck_assert_str_eq(r->m->name, "Check");
    ck_assert_int_eq(r->m->kind, GX_RPC_UNARY);
    ck_assert_str_eq(r->pd->name, "Check");
    ck_assert_str_eq(r->pd->input->name, "grpc.health.v1.HealthCheckRequest");
    ck_assert_ptr_eq(r->mod, m);
    ck_assert_ptr_eq(r->svc, m->desc->services[0]);
    ck_assert_uint_eq(r->index, 0);
    r = &f->mods.routes[1];
    ck_assert_str_eq(r->path, "/grpc.health.v1.Health/Watch");
    ck_assert_str_eq(r->m->name, "Watch");
    ck_assert_int_eq(r->m->kind, GX_RPC_SERVER_STREAMING);
    ck_assert_str_eq(r->pd->name, "Watch");
    ck_assert_uint_eq(r->index, 1);

    ck_assert_ptr_eq(gx_mods_route(&f->mods, "/grpc.health.v1.Health/Check"), &f->mods.routes[0]);
    ck_assert_ptr_eq(gx_mods_route(&f->mods, "/grpc.health.v1.Health/Watch"), &f->mods.routes[1]);
    ck_assert_int_eq(gx_mods_has_service(&f->mods, "grpc.health.v1.Health"), 1);
    ck_assert_int_eq(gx_mods_has_service(&f->mods, "grpc.health.v1"), 0);
    ck_assert_int_eq(gx_mods_has_service(&f->mods, "grpc.testing.TestService"), 0);

    /*
     * good.c declares LOG 0, POST_READ 10, ACCESS -5, HANDLER 0, POST_READ -10:
     * the chain is POST_READ -10, POST_READ 10, ACCESS, HANDLER, the route
     * handler, LOG.
     */
    {
        const want_step_t want[] = {
            {hook_of(m, 4), m, GX_PHASE_POST_READ, 2},
            {hook_of(m, 1), m, GX_PHASE_POST_READ, 2},
            {hook_of(m, 2), m, GX_PHASE_ACCESS, 3},
            {hook_of(m, 3), m, GX_PHASE_HANDLER, 5},
            {NULL, NULL, GX_PHASE_HANDLER, 5},
            {hook_of(m, 0), m, GX_PHASE_LOG, 6},
        };
        assert_steps(&f->mods, want, 6, 5);
    }
    assert_chain_shape(&f->mods);

    fx_unload(f);
    assert_logged(f->unload_log, "module=abi_good fini ctx=abi_good context");
    assert_empty(&f->mods);
    fx_free(f);
}
END_TEST

START_TEST(test_route_not_found)
{
    static const char *const misses[] = {
        "/grpc.health.v1.Health/Chec",  "/grpc.health.v1.Health/CheckX",
        "/grpc.health.v1.Health/check", "/grpc.health.v1.Health/",
        "/grpc.health.v1.Health",       "grpc.health.v1.Health/Check",
        "/grpc.health.v1.health/Check", "/grpc.health.v1.Health/Check/",
        "/",                            "",
        "/zzz/Check",                   "/a/Check",
    };
    fx_t *f = fx_new();

    fx_add(f, "good");
    fx_load_ok(f, NULL);
    for (size_t i = 0; i < sizeof(misses) / sizeof(misses[0]); i++)
        ck_assert_msg(gx_mods_route(&f->mods, misses[i]) == NULL, "\"%s\" found", misses[i]);
    fx_free(f);
}
END_TEST

/* A bare name is looked up as <module_dir>/<name>.so. */
START_TEST(test_load_by_name)
{
    fx_t *f = fx_new();
    char want[PATH_MAX + 32];

    fx_add_raw(f, "abi_good");
    fx_load_ok(f, NULL);
    fmt(want, sizeof(want), "%s/abi_good.so", f->libs);
    ck_assert_uint_eq(f->mods.n_mods, 1);
    ck_assert_str_eq(f->mods.mods[0]->path, want);
    fx_free(f);
}
END_TEST

/* Through a real configuration file: init() sees its `config:` values. */
START_TEST(test_load_from_yaml)
{
    fx_t *f = fx_new();
    char yaml_path[] = "/tmp/test_gx_mod_XXXXXX";
    char yaml[2 * PATH_MAX];
    int fd, n;

    f->conf.modules = NULL;
    fmt(yaml, sizeof(yaml),
        "server:\n  module_dir: %s\nmodules:\n  - path: abi_good\n"
        "    config:\n      greeting: hello\n  - path: %s/abi_other.so\n",
        f->libs, f->libs);
    fd = mkstemp(yaml_path);
    ck_assert_int_ge(fd, 0);
    n = (int)strlen(yaml);
    ck_assert_int_eq(write(fd, yaml, (size_t)n), n);
    close(fd);
    ck_assert_msg(gx_conf_load(&f->conf, yaml_path, f->err, sizeof(f->err)) == 0, "%s", f->err);
    unlink(yaml_path);
    ck_assert_uint_eq(f->conf.n_modules, 2);

    fx_load_ok(f, NULL);
    assert_logged(f->load_log, "module=abi_good init greeting=hello");
    assert_logged_before(f->load_log, "module=abi_good init", "module=abi_other init");
    ck_assert_uint_eq(f->mods.n_mods, 2);
    ck_assert_str_eq(f->mods.mods[1]->desc->name, "abi_other");
    ck_assert_uint_eq(f->mods.mods[1]->index, 1);
    fx_unload(f);
    /* fini() in reverse load order */
    assert_logged_before(f->unload_log, "module=abi_other fini", "module=abi_good fini");
    gx_mods_unload(&f->mods);
    gx_conf_deinit(&f->conf);
    free(f->load_log);
    free(f->unload_log);
    free(f);
}
END_TEST

/* Two modules: their hooks interleave by phase and order; ties keep the load order. */
START_TEST(test_two_modules_chain)
{
    fx_t *f = fx_new();
    const gx_module_t *g, *o;

    fx_add(f, "good");
    fx_add(f, "other");
    fx_load_ok(f, NULL);
    ck_assert_uint_eq(f->mods.n_mods, 2);
    g = f->mods.mods[0];
    o = f->mods.mods[1];
    ck_assert_str_eq(o->desc->name, "abi_other");
    {
        /* other.c: POST_READ 0, ACCESS -5, ROUTE 0, LOG -1 */
        const want_step_t want[] = {
            {hook_of(g, 4), g, GX_PHASE_POST_READ, 3}, /* -10 */
            {hook_of(o, 0), o, GX_PHASE_POST_READ, 3}, /* 0 */
            {hook_of(g, 1), g, GX_PHASE_POST_READ, 3}, /* 10 */
            {hook_of(g, 2), g, GX_PHASE_ACCESS, 5},    /* -5, loaded first */
            {hook_of(o, 1), o, GX_PHASE_ACCESS, 5},    /* -5 */
            {hook_of(o, 2), o, GX_PHASE_ROUTE, 6},
            {hook_of(g, 3), g, GX_PHASE_HANDLER, 8},
            {NULL, NULL, GX_PHASE_HANDLER, 8},
            {hook_of(o, 3), o, GX_PHASE_LOG, 10}, /* -1 */
            {hook_of(g, 0), g, GX_PHASE_LOG, 10}, /* 0 */
        };
        assert_steps(&f->mods, want, 10, 8);
    }
    assert_chain_shape(&f->mods);
    /* abi_other serves nothing: the routes are abi_good's */
    ck_assert_uint_eq(f->mods.n_routes, 2);
    fx_unload(f);
    assert_logged_before(f->unload_log, "module=abi_other fini", "module=abi_good fini");
    fx_free(f);
}
END_TEST

/* With the log at debug, the chain is logged step by step. */
START_TEST(test_chain_logged)
{
    fx_t *f = fx_new();

    fx_add(f, "good");
    gx_log_set_level(GX_LOG_DEBUG);
    fx_load_ok(f, NULL);
    gx_log_set_level(GX_LOG_INFO);
    assert_logged(f->load_log, "phase chain step=0 phase=post_read module=abi_good next=2");
    assert_logged(f->load_log, "phase chain step=4 phase=handler module=(handler) next=5");
    assert_logged(f->load_log, "phase chain step=5 phase=log module=abi_good next=6");
    assert_logged(f->load_log, "module loaded name=abi_good version=1.0 edition=community");
    fx_free(f);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Modules that are refused                                                 */

START_TEST(test_wrong_abi)
{
    fx_t *f = fx_new();
    const char *path;
    char want[ERRLEN];

    fx_add(f, "good");
    path = fx_add(f, "wrong_abi");
    fmt(want, sizeof(want), "%s: module ABI version %u, this server needs %u: rebuild the module",
        path, GX_MODULE_ABI + 1, GX_MODULE_ABI);
    fx_load_fails(f, NULL, GX_EABI, want);
    /* refused before any init(): the good module was not started either */
    assert_not_logged(f->load_log, "init");
    assert_not_logged(f->load_log, "fini");
    fx_free(f);
}
END_TEST

START_TEST(test_duplicate_name)
{
    fx_t *f = fx_new();
    const char *good, *dup;
    char want[ERRLEN];

    good = fx_add(f, "good");
    dup = fx_add(f, "dup_name");
    fmt(want, sizeof(want), "%s: a module named \"abi_good\" is already loaded from %s", dup, good);
    fx_load_fails(f, NULL, GX_ECONF, want);
    assert_not_logged(f->load_log, "init");
    fx_free(f);
}
END_TEST

/* The same file listed twice is a duplicate name too. */
START_TEST(test_same_file_twice)
{
    fx_t *f = fx_new();
    const char *path;
    char want[ERRLEN];

    path = fx_add(f, "good");
    fx_add(f, "good");
    fmt(want, sizeof(want), "%s: a module named \"abi_good\" is already loaded from %s", path,
        path);
    fx_load_fails(f, NULL, GX_ECONF, want);
    fx_free(f);
}
END_TEST

typedef struct {
    const char *variant;
    const char *reason; /* after "<path>: " */
} bad_table_t;

static const bad_table_t bad_tables[] = {
    {"bad_table_missing", "service grpc.health.v1.Health has 2 methods in its descriptor, 1 in "
                          "its table"},
    {"bad_table_extra", "service grpc.health.v1.Health has 2 methods in its descriptor, 3 in its "
                        "table"},
    {"bad_table_renamed", "service grpc.health.v1.Health: no table row for method Watch"},
    {"bad_table_nostart", "grpc.health.v1.Health.Watch: a method needs start (and on_message when "
                          "the client streams)"},
};

/* Refused after init(): the module started before it is stopped again. */
START_TEST(test_bad_table)
{
    fx_t *f = fx_new();
    const char *path;
    char want[ERRLEN];

    fx_add(f, "other");
    path = fx_add(f, bad_tables[_i].variant);
    fmt(want, sizeof(want), "%s: %s", path, bad_tables[_i].reason);
    fx_load_fails(f, NULL, GX_ECONF, want);
    assert_logged(f->load_log, "module=abi_other init");
    assert_logged(f->load_log, "module=abi_other fini");
    fx_free(f);
}
END_TEST

START_TEST(test_init_fails)
{
    fx_t *f = fx_new();
    char want[ERRLEN];

    fx_add(f, "good");
    fx_add(f, "init_fail");
    fx_add(f, "other");
    fmt(want, sizeof(want), "%s: module abi_init_fail failed to start: invalid argument",
        f->where[1]);
    fx_load_fails(f, NULL, GX_ECONF, want);
    /* init() got its own configuration entry */
    fmt(want, sizeof(want), "module=abi_init_fail init refuses: %s", f->where[1]);
    assert_logged(f->load_log, want);
    /* the module started before is stopped; neither the failed one nor the next */
    assert_logged_before(f->load_log, "module=abi_good init", "module=abi_init_fail init");
    assert_logged_before(f->load_log, "module=abi_init_fail init", "module=abi_good fini");
    assert_not_logged(f->load_log, "fini must not run");
    assert_not_logged(f->load_log, "module=abi_other");
    fx_free(f);
}
END_TEST

START_TEST(test_missing_file)
{
    fx_t *f = fx_new();
    char want[ERRLEN];

    fx_add(f, "good");
    fx_add_raw(f, "/nonexistent/dir/abi_nothing.so");
    fx_load_fails(f, NULL, GX_ENOENT, NULL);
    fmt(want, sizeof(want), "%s: cannot load module: ", f->where[1]);
    ck_assert_msg(strncmp(f->err, want, strlen(want)) == 0, "got: %s", f->err);
    ck_assert_msg(strstr(f->err, "/nonexistent/dir/abi_nothing.so") != NULL, "got: %s", f->err);
    fx_free(f);

    /* a bare name: the message names the file that was looked for */
    f = fx_new();
    fx_add_raw(f, "abi_nothing");
    fx_load_fails(f, NULL, GX_ENOENT, NULL);
    fmt(want, sizeof(want), "%s/abi_nothing.so", f->libs);
    ck_assert_msg(strstr(f->err, want) != NULL, "got: %s", f->err);
    fx_free(f);
}
END_TEST

/* A file that is not a shared object is refused, naming the file. */
START_TEST(test_not_elf)
{
    fx_t *f = fx_new();
    char path[] = "/tmp/test_gx_mod_XXXXXX";
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "not an ELF file\n", 16), 16);
    close(fd);
    fx_add_raw(f, path);
    fx_load(f, NULL);
    unlink(path);
    ck_assert_int_ne(f->rc, 0);
    ck_assert_msg(strstr(f->err, path) != NULL, "got: %s", f->err);
    assert_empty(&f->mods);
    fx_free(f);
}
END_TEST

START_TEST(test_no_symbol)
{
    static const char *const variants[] = {"no_symbol", "null_desc"};

    for (size_t i = 0; i < 2; i++) {
        fx_t *f = fx_new();
        const char *path = fx_add(f, variants[i]);
        char want[ERRLEN];

        fmt(want, sizeof(want), "%s: %s exports no gx_module_descriptor: not a galaxy-poold module",
            f->where[0], path);
        fx_load_fails(f, NULL, GX_ECONF, want);
        fx_free(f);
    }
}
END_TEST

/* Two providers of one method: refused, naming both. */
START_TEST(test_duplicate_route)
{
    static const gx_module_desc_t *const builtins[] = {&gx_svc_health_module, NULL};
    fx_t *f = fx_new();
    const char *path = fx_add(f, "good");

    fx_load_fails(f, builtins, GX_ECONF, NULL);
    ck_assert_msg(strstr(f->err, "(built-in)") != NULL, "got: %s", f->err);
    ck_assert_msg(strstr(f->err, path) != NULL, "got: %s", f->err);
    ck_assert_msg(strstr(f->err, " both serve /grpc.health.v1.Health/Check") != NULL, "got: %s",
                  f->err);
    assert_logged(f->load_log, "module=abi_good fini");
    fx_free(f);
}
END_TEST

/* Nothing configured, nothing built in: one step, the route handler, and no routes. */
START_TEST(test_load_nothing)
{
    fx_t *f = fx_new();
    const want_step_t want[] = {{NULL, NULL, GX_PHASE_HANDLER, 1}};

    fx_load_ok(f, NULL);
    ck_assert_uint_eq(f->mods.n_mods, 0);
    ck_assert_uint_eq(f->mods.n_routes, 0);
    assert_steps(&f->mods, want, 1, 1);
    ck_assert_ptr_null(gx_mods_route(&f->mods, "/grpc.health.v1.Health/Check"));
    ck_assert_int_eq(gx_mods_has_service(&f->mods, "grpc.health.v1.Health"), 0);
    fx_unload(f);
    assert_empty(&f->mods);
    /* a second unload is harmless */
    gx_mods_unload(&f->mods);
    fx_free(f);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Built-in descriptors: the chain and the routes step by step              */

static int
h_a(gx_call_t *call, void *ctx)
{
    return GX_OK;
}

static int
h_b(gx_call_t *call, void *ctx)
{
    return GX_OK;
}

static int
h_c(gx_call_t *call, void *ctx)
{
    return GX_DECLINED;
}

static int
h_d(gx_call_t *call, void *ctx)
{
    return GX_DECLINED;
}

static int
h_e(gx_call_t *call, void *ctx)
{
    return GX_DONE;
}

static int
h_f(gx_call_t *call, void *ctx)
{
    return GX_DONE;
}

static int
h_g(gx_call_t *call, void *ctx)
{
    return GX_AGAIN;
}

static int
h_h(gx_call_t *call, void *ctx)
{
    return GX_AGAIN;
}

static int
h_i(gx_call_t *call, void *ctx)
{
    return GX_OK;
}

/* init() and fini() of the built-ins record the order they ran in. */
static char bi_trace[256];

static void
trace(const char *what)
{
    size_t n = strlen(bi_trace);

    fmt(bi_trace + n, sizeof(bi_trace) - n, "%s%s", n ? " " : "", what);
}

static int
bi_init(gx_module_t *mod, const gx_mod_conf_t *conf, void **ctx)
{
    char what[64];

    /* built-ins get an empty configuration */
    ck_assert_ptr_nonnull(conf);
    ck_assert_str_eq(conf->path, "");
    ck_assert_str_eq(conf->where, "(built-in)");
    ck_assert_uint_eq(conf->n_kv, 0);
    ck_assert_ptr_null(gx_mod_conf_get(conf, "greeting"));
    fmt(what, sizeof(what), "init:%s", mod->desc->name);
    trace(what);
    *ctx = (void *)mod->desc->name;
    return 0;
}

static void
bi_fini(gx_module_t *mod, void *ctx)
{
    char what[64];

    ck_assert_ptr_eq(ctx, mod->desc->name);
    fmt(what, sizeof(what), "fini:%s", mod->desc->name);
    trace(what);
}

static int
bi_init_fails(gx_module_t *mod, const gx_mod_conf_t *conf, void **ctx)
{
    trace("init:fails");
    return GX_ENOMEM;
}

#define BUILTIN(var, nm, hooks_, services_)                                                        \
    static const gx_module_desc_t var = {.abi = GX_MODULE_ABI,                                     \
                                         .name = nm,                                               \
                                         .version = "0",                                           \
                                         .edition = "community",                                   \
                                         .init = bi_init,                                          \
                                         .fini = bi_fini,                                          \
                                         .hooks = hooks_,                                          \
                                         .services = services_}

/* hooks declared in no particular order, across every phase */
static const gx_hook_t hooks_x[] = {
    {GX_PHASE_LOG, h_a, 5},       {GX_PHASE_LIMIT, h_b, 0},    {GX_PHASE_POST_READ, h_c, 100},
    {GX_PHASE_AUTHN, h_d, -100},  {GX_PHASE_POST_READ, h_e, -1}, {.fn = NULL},
};
static const gx_hook_t hooks_y[] = {
    {GX_PHASE_POST_READ, h_f, -1}, /* ties with h_e: x is loaded first */
    {GX_PHASE_ROUTE, h_g, 0},
    {GX_PHASE_HANDLER, h_h, 7},
    {GX_PHASE_LOG, h_i, -5},
    {GX_PHASE_ACCESS, h_a, 0}, /* the same function may hook twice */
    {.fn = NULL},
};
static const gx_hook_t hooks_z[] = {
    {GX_PHASE_POST_READ, h_b, -1}, /* ties with h_e and h_f */
    {GX_PHASE_LOG, h_c, 5},        /* ties with h_a of x */
    {GX_PHASE_HANDLER, h_d, -7},
    {GX_PHASE_POST_READ, h_g, -1}, /* same phase and order twice in one module */
    {.fn = NULL},
};

BUILTIN(bi_x, "bi_x", hooks_x, NULL);
BUILTIN(bi_y, "bi_y", hooks_y, NULL);
BUILTIN(bi_z, "bi_z", hooks_z, NULL);

START_TEST(test_chain_order)
{
    static const gx_module_desc_t *const builtins[] = {&bi_x, &bi_y, &bi_z, NULL};
    fx_t *f = fx_new();
    gx_module_t *x, *y, *z;

    bi_trace[0] = '\0';
    fx_load_ok(f, builtins);
    ck_assert_uint_eq(f->mods.n_mods, 3);
    x = f->mods.mods[0];
    y = f->mods.mods[1];
    z = f->mods.mods[2];
    ck_assert_str_eq(x->path, "(built-in)");
    ck_assert_ptr_null(x->dl);
    ck_assert_str_eq(z->desc->name, "bi_z");
    {
        const want_step_t want[] = {
            {h_e, x, GX_PHASE_POST_READ, 5},  /* -1, x */
            {h_f, y, GX_PHASE_POST_READ, 5},  /* -1, y */
            {h_b, z, GX_PHASE_POST_READ, 5},  /* -1, z, declared first */
            {h_g, z, GX_PHASE_POST_READ, 5},  /* -1, z, declared second */
            {h_c, x, GX_PHASE_POST_READ, 5},  /* 100 */
            {h_d, x, GX_PHASE_AUTHN, 6},
            {h_a, y, GX_PHASE_ACCESS, 7},
            {h_b, x, GX_PHASE_LIMIT, 8},
            {h_g, y, GX_PHASE_ROUTE, 9},
            {h_d, z, GX_PHASE_HANDLER, 12},   /* -7 */
            {h_h, y, GX_PHASE_HANDLER, 12},   /* 7 */
            {NULL, NULL, GX_PHASE_HANDLER, 12},
            {h_i, y, GX_PHASE_LOG, 15},       /* -5 */
            {h_a, x, GX_PHASE_LOG, 15},       /* 5, x */
            {h_c, z, GX_PHASE_LOG, 15},       /* 5, z */
        };
        assert_steps(&f->mods, want, 15, 12);
    }
    assert_chain_shape(&f->mods);
    ck_assert_str_eq(bi_trace, "init:bi_x init:bi_y init:bi_z");
    ck_assert_ptr_eq(x->ctx, "bi_x");
    gx_mods_unload(&f->mods);
    ck_assert_str_eq(bi_trace, "init:bi_x init:bi_y init:bi_z fini:bi_z fini:bi_y fini:bi_x");
    fx_free(f);
}
END_TEST

/* Built-ins come before the configured modules: on ties their hooks run first. */
START_TEST(test_chain_builtin_then_module)
{
    static const gx_hook_t hooks[] = {{GX_PHASE_POST_READ, h_a, -10}, {GX_PHASE_LOG, h_b, 0},
                                      {.fn = NULL}};
    BUILTIN(bi, "bi", hooks, NULL);
    static const gx_module_desc_t *const builtins[] = {&bi, NULL};
    fx_t *f = fx_new();
    gx_module_t *b, *g;

    fx_add(f, "good");
    fx_load_ok(f, builtins);
    b = f->mods.mods[0];
    g = f->mods.mods[1];
    ck_assert_str_eq(g->desc->name, "abi_good");
    ck_assert_uint_eq(g->index, 1);
    {
        const want_step_t want[] = {
            {h_a, b, GX_PHASE_POST_READ, 3},
            {hook_of(g, 4), g, GX_PHASE_POST_READ, 3},
            {hook_of(g, 1), g, GX_PHASE_POST_READ, 3},
            {hook_of(g, 2), g, GX_PHASE_ACCESS, 4},
            {hook_of(g, 3), g, GX_PHASE_HANDLER, 6},
            {NULL, NULL, GX_PHASE_HANDLER, 6},
            {h_b, b, GX_PHASE_LOG, 8},
            {hook_of(g, 0), g, GX_PHASE_LOG, 8},
        };
        assert_steps(&f->mods, want, 8, 6);
    }
    fx_free(f);
}
END_TEST

/* Where the route handler goes when phases are missing. */
START_TEST(test_chain_edges)
{
    static const gx_hook_t only_log[] = {{GX_PHASE_LOG, h_a, 0}, {GX_PHASE_LOG, h_b, -1},
                                         {.fn = NULL}};
    static const gx_hook_t no_log[] = {{GX_PHASE_HANDLER, h_a, 0}, {GX_PHASE_AUTHN, h_b, 0},
                                       {.fn = NULL}};
    static const gx_hook_t empty[] = {{.fn = NULL}};
    BUILTIN(bi_only_log, "only_log", only_log, NULL);
    BUILTIN(bi_no_log, "no_log", no_log, NULL);
    BUILTIN(bi_empty, "empty", empty, NULL);
    BUILTIN(bi_null, "null", NULL, NULL);
    const gx_module_desc_t *builtins[3] = {NULL, NULL, NULL};
    fx_t *f;

    f = fx_new();
    builtins[0] = &bi_only_log;
    fx_load_ok(f, builtins);
    {
        gx_module_t *m = f->mods.mods[0];
        const want_step_t want[] = {
            {NULL, NULL, GX_PHASE_HANDLER, 1},
            {h_b, m, GX_PHASE_LOG, 3},
            {h_a, m, GX_PHASE_LOG, 3},
        };
        assert_steps(&f->mods, want, 3, 1);
    }
    fx_free(f);

    f = fx_new();
    builtins[0] = &bi_no_log;
    fx_load_ok(f, builtins);
    {
        gx_module_t *m = f->mods.mods[0];
        const want_step_t want[] = {
            {h_b, m, GX_PHASE_AUTHN, 1},
            {h_a, m, GX_PHASE_HANDLER, 3},
            {NULL, NULL, GX_PHASE_HANDLER, 3},
        };
        /* no LOG step: log_first is the end of the chain */
        assert_steps(&f->mods, want, 3, 3);
    }
    fx_free(f);

    f = fx_new();
    builtins[0] = &bi_empty;
    builtins[1] = &bi_null;
    fx_load_ok(f, builtins);
    {
        const want_step_t want[] = {{NULL, NULL, GX_PHASE_HANDLER, 1}};
        assert_steps(&f->mods, want, 1, 1);
    }
    fx_free(f);
}
END_TEST

/* Hand-made service descriptors: only the names and methods matter to the loader. */
static const ProtobufCMethodDescriptor zeta_methods[] = {{"B", NULL, NULL}, {"A", NULL, NULL},
                                                         {"AA", NULL, NULL}};
static const ProtobufCServiceDescriptor zeta_desc = {
    PROTOBUF_C__SERVICE_DESCRIPTOR_MAGIC, "pkg.Zeta", "Zeta", "Pkg__Zeta", "pkg", 3,
    zeta_methods, NULL};
static const ProtobufCMethodDescriptor alpha_methods[] = {{"Z", NULL, NULL}, {"M", NULL, NULL}};
static const ProtobufCServiceDescriptor alpha_desc = {
    PROTOBUF_C__SERVICE_DESCRIPTOR_MAGIC, "pkg.Alpha", "Alpha", "Pkg__Alpha", "pkg", 2,
    alpha_methods, NULL};

static int
m_start(gx_call_t *call, const ProtobufCMessage *req, void *ctx)
{
    return GX_DONE;
}

static void
m_message(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
}

static const gx_method_t zeta_rows[] = {
    {.name = "AA", .kind = GX_RPC_BIDI_STREAMING, .start = m_start, .on_message = m_message},
    {.name = "A", .kind = GX_RPC_CLIENT_STREAMING, .start = m_start, .on_message = m_message},
    {.name = "B", .kind = GX_RPC_UNARY, .start = m_start},
    {.name = NULL},
};
static const gx_method_t alpha_rows[] = {
    {.name = "M", .kind = GX_RPC_SERVER_STREAMING, .start = m_start},
    {.name = "Z", .kind = GX_RPC_UNARY, .start = m_start},
    {.name = NULL},
};
static const gx_service_t zeta_svc = {&zeta_desc, zeta_rows};
static const gx_service_t alpha_svc = {&alpha_desc, alpha_rows};
static const gx_service_t *const zeta_services[] = {&zeta_svc, NULL};
static const gx_service_t *const alpha_services[] = {&alpha_svc, NULL};

BUILTIN(bi_zeta, "bi_zeta", NULL, zeta_services);
BUILTIN(bi_alpha, "bi_alpha", NULL, alpha_services);

START_TEST(test_routes_sorted)
{
    static const gx_module_desc_t *const builtins[] = {&bi_zeta, &bi_alpha, NULL};
    static const struct {
        const char *path;
        const char *row;
        gx_rpc_kind_t kind;
        int mod;
    } want[] = {
        {"/grpc.health.v1.Health/Check", "Check", GX_RPC_UNARY, 2},
        {"/grpc.health.v1.Health/Watch", "Watch", GX_RPC_SERVER_STREAMING, 2},
        {"/pkg.Alpha/M", "M", GX_RPC_SERVER_STREAMING, 1},
        {"/pkg.Alpha/Z", "Z", GX_RPC_UNARY, 1},
        {"/pkg.Zeta/A", "A", GX_RPC_CLIENT_STREAMING, 0},
        {"/pkg.Zeta/AA", "AA", GX_RPC_BIDI_STREAMING, 0},
        {"/pkg.Zeta/B", "B", GX_RPC_UNARY, 0},
    };
    fx_t *f = fx_new();

    fx_add(f, "good");
    fx_load_ok(f, builtins);
    ck_assert_uint_eq(f->mods.n_routes, 7);
    for (size_t i = 0; i < 7; i++) {
        const gx_route_t *r = &f->mods.routes[i];

        ck_assert_str_eq(r->path, want[i].path);
        ck_assert_str_eq(r->m->name, want[i].row);
        ck_assert_str_eq(r->pd->name, want[i].row);
        ck_assert_int_eq(r->m->kind, want[i].kind);
        ck_assert_ptr_eq(r->mod, f->mods.mods[want[i].mod]);
        ck_assert_uint_eq(r->index, i);
        ck_assert_ptr_eq(gx_mods_route(&f->mods, want[i].path), r);
    }
    ck_assert_ptr_eq(f->mods.routes[4].pd, &zeta_methods[1]);
    ck_assert_ptr_eq(f->mods.routes[4].svc, &zeta_svc);
    ck_assert_ptr_null(gx_mods_route(&f->mods, "/pkg.Zeta/C"));
    ck_assert_ptr_null(gx_mods_route(&f->mods, "/pkg.Alpha/A"));
    ck_assert_ptr_null(gx_mods_route(&f->mods, "/pkg.Beta/M"));
    ck_assert_int_eq(gx_mods_has_service(&f->mods, "pkg.Zeta"), 1);
    ck_assert_int_eq(gx_mods_has_service(&f->mods, "pkg.Alpha"), 1);
    ck_assert_int_eq(gx_mods_has_service(&f->mods, "pkg.Beta"), 0);
    fx_free(f);
}
END_TEST

/* Two built-ins serving one service: refused. */
START_TEST(test_duplicate_route_builtins)
{
    BUILTIN(bi_zeta2, "bi_zeta2", NULL, zeta_services);
    static const gx_module_desc_t *const builtins[] = {&bi_zeta, &bi_alpha, &bi_zeta2, NULL};
    fx_t *f = fx_new();

    bi_trace[0] = '\0';
    fx_load_fails(f, builtins, GX_ECONF,
                  "(built-in) and (built-in) both serve /pkg.Zeta/A");
    /* every module was started, so every one is stopped */
    ck_assert_str_eq(bi_trace, "init:bi_zeta init:bi_alpha init:bi_zeta2 "
                               "fini:bi_zeta2 fini:bi_alpha fini:bi_zeta");
    fx_free(f);
}
END_TEST

/* A streaming-input method needs on_message. */
START_TEST(test_streaming_needs_on_message)
{
    static const gx_method_t rows[] = {
        {.name = "B", .kind = GX_RPC_UNARY, .start = m_start},
        {.name = "A", .kind = GX_RPC_CLIENT_STREAMING, .start = m_start},
        {.name = "AA", .kind = GX_RPC_BIDI_STREAMING, .start = m_start, .on_message = m_message},
        {.name = NULL},
    };
    static const gx_service_t svc = {&zeta_desc, rows};
    static const gx_service_t *const services[] = {&svc, NULL};
    BUILTIN(bi, "bi", NULL, services);
    static const gx_module_desc_t *const builtins[] = {&bi, NULL};
    fx_t *f = fx_new();

    fx_load_fails(f, builtins, GX_ECONF,
                  "(built-in): pkg.Zeta.A: a method needs start (and on_message when the client "
                  "streams)");
    fx_free(f);
}
END_TEST

/* A service without a table is refused, not dereferenced. */
START_TEST(test_service_without_rows)
{
    static const gx_service_t svc = {&alpha_desc, NULL};
    static const gx_service_t *const services[] = {&svc, NULL};
    BUILTIN(bi, "bi", NULL, services);
    static const gx_module_desc_t *const builtins[] = {&bi, NULL};
    fx_t *f = fx_new();

    fx_load_fails(f, builtins, GX_ECONF,
                  "(built-in): service pkg.Alpha has 2 methods in its descriptor, 0 in its table");
    fx_free(f);
}
END_TEST

typedef struct {
    gx_module_desc_t desc;
    int rc;
    const char *err;
    const char *trace; /* of init() and fini() of bi_x, loaded before it */
} bad_builtin_t;

/* The messages below spell out the server's ABI version. */
_Static_assert(GX_MODULE_ABI == 2, "update the ABI numbers in bad_builtins[]");

static const gx_hook_t hooks_bad_phase[] = {{GX_PHASE_MAX, h_a, 0}, {.fn = NULL}};
static const gx_hook_t hooks_neg_phase[] = {{GX_PHASE_LOG, h_b, 0}, {(gx_phase_t)-1, h_a, 0},
                                            {.fn = NULL}};

#define NEEDS "(built-in): module descriptor needs a name, a version and an edition " \
              "(community or enterprise)"

static const bad_builtin_t bad_builtins[] = {
    {{.abi = 0, .name = "b", .version = "0", .edition = "community"}, GX_EABI,
     "(built-in): module ABI version 0, this server needs 2: rebuild the module", ""},
    {{.abi = GX_MODULE_ABI + 41, .name = "b", .version = "0", .edition = "community"}, GX_EABI,
     "(built-in): module ABI version 43, this server needs 2: rebuild the module", ""},
    {{.abi = GX_MODULE_ABI, .name = NULL, .version = "0", .edition = "community"}, GX_ECONF,
     NEEDS, ""},
    {{.abi = GX_MODULE_ABI, .name = "", .version = "0", .edition = "community"}, GX_ECONF, NEEDS,
     ""},
    {{.abi = GX_MODULE_ABI, .name = "b", .version = NULL, .edition = "community"}, GX_ECONF,
     NEEDS, ""},
    {{.abi = GX_MODULE_ABI, .name = "b", .version = "0", .edition = NULL}, GX_ECONF, NEEDS, ""},
    {{.abi = GX_MODULE_ABI, .name = "b", .version = "0", .edition = "free"}, GX_ECONF, NEEDS, ""},
    {{.abi = GX_MODULE_ABI, .name = "b", .version = "0", .edition = "Community"}, GX_ECONF, NEEDS,
     ""},
    {{.abi = GX_MODULE_ABI, .name = "bi_x", .version = "0", .edition = "community"}, GX_ECONF,
     "(built-in): a module named \"bi_x\" is already loaded from (built-in)", ""},
    /* refused after init(): bi_x is stopped again */
    {{.abi = GX_MODULE_ABI, .name = "b", .version = "0", .edition = "community",
      .hooks = hooks_bad_phase},
     GX_ECONF, "(built-in): hook for unknown phase 7", "init:bi_x fini:bi_x"},
    {{.abi = GX_MODULE_ABI, .name = "b", .version = "0", .edition = "enterprise",
      .hooks = hooks_neg_phase},
     GX_ECONF, "(built-in): hook for unknown phase -1", "init:bi_x fini:bi_x"},
    {{.abi = GX_MODULE_ABI, .name = "fails", .version = "0", .edition = "community",
      .init = bi_init_fails},
     GX_ECONF, "(built-in): module fails failed to start: out of memory",
     "init:bi_x init:fails fini:bi_x"},
};

/* A bad built-in after a good one: refused with its reason, the good one stopped. */
START_TEST(test_bad_builtin)
{
    const gx_module_desc_t *builtins[] = {&bi_x, &bad_builtins[_i].desc, NULL};
    fx_t *f = fx_new();

    bi_trace[0] = '\0';
    fx_add(f, "good"); /* never opened: built-ins are checked first */
    fx_load_fails(f, builtins, bad_builtins[_i].rc, bad_builtins[_i].err);
    ck_assert_str_eq(bi_trace, bad_builtins[_i].trace);
    fx_free(f);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Out of memory: each allocation of the loader fails in turn               */

START_TEST(test_load_enomem)
{
    static const gx_module_desc_t *const builtins[] = {&bi_x, &bi_zeta, &bi_alpha, NULL};
    fx_t *f = fx_new();
    long n;

    fx_add(f, "good");
    fx_add(f, "other");
    for (n = 0; n < 1000; n++) {
        size_t inits, finis;
        const char *p;

        bi_trace[0] = '\0';
        alloc_countdown = n;
        fx_load(f, builtins);
        alloc_countdown = -1;
        if (f->rc == 0)
            break;
        ck_assert_msg(f->rc == GX_ENOMEM, "allocation %ld: rc %d (%s)", n, f->rc, f->err);
        ck_assert_str_eq(f->err, "out of memory loading modules");
        assert_empty(&f->mods);
        /* every module that was started was stopped */
        for (inits = 0, p = bi_trace; (p = strstr(p, "init:")) != NULL; p++)
            inits++;
        for (finis = 0, p = bi_trace; (p = strstr(p, "fini:")) != NULL; p++)
            finis++;
        ck_assert_msg(inits == finis, "allocation %ld: %s", n, bi_trace);
        ck_assert_uint_eq(strstr(f->load_log, "module=abi_good init") != NULL,
                          strstr(f->load_log, "module=abi_good fini") != NULL);
        ck_assert_uint_eq(strstr(f->load_log, "module=abi_other init") != NULL,
                          strstr(f->load_log, "module=abi_other fini") != NULL);
    }
    ck_assert_int_eq(f->rc, 0);
    /* mods array and module per module and path, routes, chain: many points */
    ck_assert_int_ge(n, 15);
    ck_assert_uint_eq(f->mods.n_mods, 5);
    ck_assert_uint_eq(f->mods.n_routes, 7);
    assert_chain_shape(&f->mods);
    fx_free(f);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *
mod_suite(void)
{
    Suite *s = suite_create("gx_mod");
    TCase *tc;

    tc = tcase_create("load");
    tcase_add_test(tc, test_load_good);
    tcase_add_test(tc, test_route_not_found);
    tcase_add_test(tc, test_load_by_name);
    tcase_add_test(tc, test_load_from_yaml);
    tcase_add_test(tc, test_two_modules_chain);
    tcase_add_test(tc, test_chain_logged);
    tcase_add_test(tc, test_load_nothing);
    suite_add_tcase(s, tc);

    tc = tcase_create("refused");
    tcase_add_test(tc, test_wrong_abi);
    tcase_add_test(tc, test_duplicate_name);
    tcase_add_test(tc, test_same_file_twice);
    tcase_add_loop_test(tc, test_bad_table, 0, (int)(sizeof(bad_tables) / sizeof(bad_tables[0])));
    tcase_add_test(tc, test_init_fails);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_not_elf);
    tcase_add_test(tc, test_no_symbol);
    tcase_add_test(tc, test_duplicate_route);
    suite_add_tcase(s, tc);

    tc = tcase_create("builtin");
    tcase_add_test(tc, test_chain_order);
    tcase_add_test(tc, test_chain_builtin_then_module);
    tcase_add_test(tc, test_chain_edges);
    tcase_add_test(tc, test_routes_sorted);
    tcase_add_test(tc, test_duplicate_route_builtins);
    tcase_add_test(tc, test_streaming_needs_on_message);
    tcase_add_test(tc, test_service_without_rows);
    tcase_add_loop_test(tc, test_bad_builtin, 0,
                        (int)(sizeof(bad_builtins) / sizeof(bad_builtins[0])));
    suite_add_tcase(s, tc);

    tc = tcase_create("enomem");
    tcase_add_test(tc, test_load_enomem);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(mod_suite());
    int failures;

    /* Fork mode (Check's default) unless CK_FORK=no, e.g. under valgrind or gdb. */
    srunner_run_all(sr, CK_NORMAL);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures != 0;
}
