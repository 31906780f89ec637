/* SPDX-License-Identifier: MIT */
/*
 * test_hooks: a test-only module that hooks every phase of every call so the
 * integration tests (t/integration/test_phase_chain.py, test_shutdown.py) can
 * watch the phase chain work.  Request metadata chooses the behaviour per call:
 *
 *   x-test-deny: <hook>           that hook (a phase name, or authn2, access2)
 *                                 fails the call with PERMISSION_DENIED
 *                                 "denied in <hook>"
 *   x-test-declined: 1            AUTHN answers DECLINED, so the second AUTHN
 *                                 hook (authn2) runs; otherwise AUTHN answers OK
 *                                 and authn2 is skipped
 *   x-test-park-ms: N             ACCESS parks the call (AGAIN) and a call timer
 *                                 resumes it after N ms (0..10000)
 *   x-test-park-thread-ms: N      the same, resumed from a detached pthread
 *   x-test-tag: T                 copied into the trace line (tag=T), so a test
 *                                 finds its own call among concurrent ones
 *
 * Each hook appends its phase name to a per-call trace kept in call memory;
 * the LOG hook writes it as one line:
 *
 *   trace method=/pkg.Svc/M phases=post_read,authn,access,access2,limit,route,handler,log
 *         status=0 tag=T
 *
 * ACCESS has two hooks: "access" (order 0) answers DECLINED so that "access2"
 * (order 10) runs after it; a call parked in "access" resumes as if it had
 * answered OK and skips "access2".  The HANDLER hook answers DECLINED so the
 * route's own handler serves the call.
 *
 * A call parked on a timer whose stream ends meanwhile loses its timer (the
 * transport drops it), so the LOG hook resumes it instead: every AGAIN is
 * matched by exactly one gx_call_resume().  A thread-parked call needs nothing:
 * its thread always resumes it.
 *
 * Configuration: `fail_init: 1` makes init() fail, to test that the server
 * refuses to start; any other value than 0 or 1 is refused too.  Unknown keys
 * cannot be refused: gx_module.h offers no way to list a module's keys.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <galaxy/gx_module.h>

#define HOOKS_PARK_MAX_MS 10000
#define HOOKS_TRACE_MAX 160
#define HOOKS_TAG_MAX 64

typedef struct {
    gx_module_t *mod;
} hooks_ctx_t;

/* Per call, in call memory. */
typedef struct {
    char trace[HOOKS_TRACE_MAX];
    size_t len;
    unsigned timer_parked : 1; /* waiting for our call timer */
    unsigned resumed : 1;      /* gx_call_resume() done for the timer park */
} hooks_call_t;

/* What a pthread needs to resume a call; heap, freed by the thread. */
typedef struct {
    const gx_module_t *mod;
    gx_call_t *call; /* only handed to gx_call_resume(): nothing else is thread-safe */
    unsigned ms;
    char tag[HOOKS_TAG_MAX + 1];
} hooks_thread_arg_t;

/* ------------------------------------------------------------------------ */
/* Per-call state                                                           */

static hooks_call_t *
hooks_state(gx_call_t *call, const hooks_ctx_t *ctx)
{
    hooks_call_t *st = gx_call_ctx(call, ctx->mod);

    if (st != NULL)
        return st;
    st = gx_call_alloc(call, sizeof(*st));
    if (st == NULL)
        return NULL;
    memset(st, 0, sizeof(*st));
    gx_call_set_ctx(call, ctx->mod, st);
    return gx_call_ctx(call, ctx->mod) == st ? st : NULL;
}

static void
hooks_trace_add(hooks_call_t *st, const char *name)
{
    int n = snprintf(st->trace + st->len, sizeof(st->trace) - st->len, "%s%s",
                     st->len > 0 ? "," : "", name);

    if (n > 0 && (size_t)n < sizeof(st->trace) - st->len)
        st->len += (size_t)n;
}

/* The value of metadata @p key equals @p want. */
static int
hooks_md_is(gx_call_t *call, const char *key, const char *want)
{
    size_t len;
    const char *v = gx_call_metadata(call, key, &len);

    return v != NULL && len == strlen(want) && memcmp(v, want, len) == 0;
}

/* Milliseconds from metadata @p key: 1 when present and valid, 0 when absent, <0 when bad. */
static int
hooks_md_ms(gx_call_t *call, const char *key, unsigned *ms)
{
    size_t len;
    const char *v = gx_call_metadata(call, key, &len);
    unsigned long n = 0;

    if (v == NULL)
        return 0;
    if (len == 0 || len > 5)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -EINVAL;
        n = n * 10 + (unsigned long)(v[i] - '0');
    }
    if (n > HOOKS_PARK_MAX_MS)
        return -EINVAL;
    *ms = (unsigned)n;
    return 1;
}

/* The call's x-test-tag, or "-" when absent or longer than HOOKS_TAG_MAX. */
static void
hooks_tag(gx_call_t *call, char *out, size_t size)
{
    size_t len;
    const char *v = gx_call_metadata(call, "x-test-tag", &len);

    if (v == NULL || len == 0 || len >= size)
        snprintf(out, size, "-");
    else
        snprintf(out, size, "%.*s", (int)len, v);
}

/*
 * The common part of every hook before LOG: trace, then deny when asked.
 * @return GX_OK to let the hook go on, or GX_DONE when the call was failed.
 */
static int
hooks_enter(gx_call_t *call, const hooks_ctx_t *ctx, const char *name, hooks_call_t **out)
{
    hooks_call_t *st = hooks_state(call, ctx);

    if (st == NULL)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "test_hooks: out of memory");
    hooks_trace_add(st, name);
    if (hooks_md_is(call, "x-test-deny", name))
        return gx_call_fail(call, GX_STATUS_PERMISSION_DENIED, "denied in %s", name);
    *out = st;
    return GX_OK;
}

/* ------------------------------------------------------------------------ */
/* Parking                                                                  */

static void
hooks_wake(gx_call_t *call, void *arg)
{
    hooks_call_t *st = arg;

    if (st->resumed)
        return;
    st->resumed = 1;
    gx_call_resume(call);
}

static void *
hooks_thread_main(void *arg)
{
    hooks_thread_arg_t *ta = arg;
    struct timespec ts = {(time_t)(ta->ms / 1000), (long)(ta->ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    gx_mod_log(ta->mod, GX_LOG_INFO, "thread resumes a call tag=%s", ta->tag);
    gx_call_resume(ta->call);
    free(ta);
    return NULL;
}

static int
hooks_park_thread(gx_call_t *call, const hooks_ctx_t *ctx, unsigned ms)
{
    hooks_thread_arg_t *ta = malloc(sizeof(*ta));
    pthread_attr_t attr;
    pthread_t tid;
    int rc;

    if (ta == NULL)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "test_hooks: out of memory");
    ta->mod = ctx->mod;
    ta->call = call;
    ta->ms = ms;
    hooks_tag(call, ta->tag, sizeof(ta->tag));
    if (pthread_attr_init(&attr) != 0) {
        free(ta);
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "test_hooks: no thread");
    }
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&tid, &attr, hooks_thread_main, ta);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        gx_mod_log(ctx->mod, GX_LOG_WARN, "cannot start a thread reason=\"%s\"", strerror(rc));
        free(ta);
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "test_hooks: no thread");
    }
    return GX_AGAIN;
}

static int
hooks_park_timer(gx_call_t *call, hooks_call_t *st, unsigned ms)
{
    if (gx_call_timer(call, (uint64_t)ms * 1000u, hooks_wake, st) != 0)
        return gx_call_fail(call, GX_STATUS_INTERNAL, "test_hooks: cannot set a timer");
    st->timer_parked = 1;
    return GX_AGAIN;
}

/* ------------------------------------------------------------------------ */
/* Hooks                                                                    */

static int
hooks_post_read(gx_call_t *call, void *mod_ctx)
{
    hooks_call_t *st;

    return hooks_enter(call, mod_ctx, "post_read", &st);
}

static int
hooks_authn(gx_call_t *call, void *mod_ctx)
{
    hooks_call_t *st;

    if (hooks_enter(call, mod_ctx, "authn", &st) != GX_OK)
        return GX_DONE;
    return hooks_md_is(call, "x-test-declined", "1") ? GX_DECLINED : GX_OK;
}

/* Runs only when "authn" declined. */
static int
hooks_authn2(gx_call_t *call, void *mod_ctx)
{
    hooks_call_t *st;

    return hooks_enter(call, mod_ctx, "authn2", &st);
}

static int
hooks_access(gx_call_t *call, void *mod_ctx)
{
    const hooks_ctx_t *ctx = mod_ctx;
    hooks_call_t *st;
    unsigned ms = 0;
    int rc;

    if (hooks_enter(call, ctx, "access", &st) != GX_OK)
        return GX_DONE;
    rc = hooks_md_ms(call, "x-test-park-ms", &ms);
    if (rc < 0)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "x-test-park-ms: want 0..%d",
                            HOOKS_PARK_MAX_MS);
    if (rc > 0)
        return hooks_park_timer(call, st, ms);
    rc = hooks_md_ms(call, "x-test-park-thread-ms", &ms);
    if (rc < 0)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "x-test-park-thread-ms: want 0..%d",
                            HOOKS_PARK_MAX_MS);
    if (rc > 0)
        return hooks_park_thread(call, ctx, ms);
    return GX_DECLINED;
}

static int
hooks_access2(gx_call_t *call, void *mod_ctx)
{
    hooks_call_t *st;

    return hooks_enter(call, mod_ctx, "access2", &st);
}

static int
hooks_limit(gx_call_t *call, void *mod_ctx)
{
    hooks_call_t *st;

    return hooks_enter(call, mod_ctx, "limit", &st);
}

static int
hooks_route(gx_call_t *call, void *mod_ctx)
{
    hooks_call_t *st;

    return hooks_enter(call, mod_ctx, "route", &st);
}

static int
hooks_handler(gx_call_t *call, void *mod_ctx)
{
    hooks_call_t *st;

    if (hooks_enter(call, mod_ctx, "handler", &st) != GX_OK)
        return GX_DONE;
    return GX_DECLINED;
}

static int
hooks_log(gx_call_t *call, void *mod_ctx)
{
    const hooks_ctx_t *ctx = mod_ctx;
    hooks_call_t *st = hooks_state(call, ctx);
    const char *method = gx_call_method(call);
    char tag[HOOKS_TAG_MAX + 1];

    if (st == NULL)
        return GX_OK;
    hooks_trace_add(st, "log");
    if (st->timer_parked && !st->resumed) {
        /* the stream ended while parked and the transport dropped our timer */
        gx_mod_log(ctx->mod, GX_LOG_INFO, "parked call ended before its timer method=%s",
                   method[0] ? method : "-");
        st->resumed = 1;
        gx_call_resume(call);
    }
    hooks_tag(call, tag, sizeof(tag));
    gx_mod_log(ctx->mod, GX_LOG_INFO, "trace method=%s phases=%s status=%d tag=%s tls_identity=%s",
               method[0] ? method : "-", st->trace, (int)gx_call_status(call), tag,
               gx_call_tls_identity(call) ? gx_call_tls_identity(call) : "-");
    return GX_OK;
}

static const gx_hook_t hooks_hooks[] = {
    {GX_PHASE_POST_READ, hooks_post_read, 0},
    {GX_PHASE_AUTHN, hooks_authn, 0},
    {GX_PHASE_AUTHN, hooks_authn2, 10},
    /* listed before "access" on purpose: order, not position, decides */
    {GX_PHASE_ACCESS, hooks_access2, 10},
    {GX_PHASE_ACCESS, hooks_access, 0},
    {GX_PHASE_LIMIT, hooks_limit, 0},
    {GX_PHASE_ROUTE, hooks_route, 0},
    {GX_PHASE_HANDLER, hooks_handler, 0},
    {GX_PHASE_LOG, hooks_log, 0},
    {GX_PHASE_POST_READ, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Start-up                                                                 */

static int
hooks_init(gx_module_t *mod, const gx_mod_conf_t *conf, void **mod_ctx)
{
    const char *fail = gx_mod_conf_get(conf, "fail_init");
    const char *key;
    hooks_ctx_t *ctx;

    for (size_t i = 0; (key = gx_mod_conf_key(conf, i)) != NULL; i++) {
        if (strcmp(key, "fail_init") != 0) {
            gx_mod_log(mod, GX_LOG_ERROR, "invalid config at=%s key=%s reason=\"unknown key\"",
                       gx_mod_conf_where(conf, key), key);
            return -EINVAL;
        }
    }

    if (fail != NULL && strcmp(fail, "0") != 0 && strcmp(fail, "1") != 0) {
        gx_mod_log(mod, GX_LOG_ERROR,
                   "invalid config at=%s key=fail_init value=\"%s\" "
                   "reason=\"want 0 or 1\"",
                   gx_mod_conf_where(conf, "fail_init"), fail);
        return -EINVAL;
    }
    if (fail != NULL && strcmp(fail, "1") == 0) {
        gx_mod_log(mod, GX_LOG_ERROR, "init refused at=%s reason=\"fail_init is set\"",
                   gx_mod_conf_where(conf, "fail_init"));
        return -EINVAL;
    }
    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return -ENOMEM;
    ctx->mod = mod;
    *mod_ctx = ctx;
    return 0;
}

static void
hooks_fini(gx_module_t *mod, void *mod_ctx)
{
    free(mod_ctx);
}

static const gx_module_desc_t hooks_module = {
    .abi = GX_MODULE_ABI,
    .name = "test_hooks",
    .version = PACKAGE_VERSION,
    .edition = "community",
    .init = hooks_init,
    .fini = hooks_fini,
    .hooks = hooks_hooks,
    .services = NULL,
};

GX_MODULE(hooks_module);
