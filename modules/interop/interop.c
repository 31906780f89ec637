/* SPDX-License-Identifier: MIT */
/*
 * interop: serves grpc.testing.TestService, the service that every gRPC
 * interoperability test client calls (grpc/grpc doc/interop-test-descriptions.md),
 * so that galaxy-poold's transport can be checked against real gRPC stacks.
 *
 * Unary methods answer from start().  The three streaming-output methods share
 * one engine: each accepted request's ResponseParameters are copied into call
 * memory (a streamed request is freed after on_message), and
 * interop_stream_pump() sends one response per ResponseParameters, sleeping
 * interval_us on a call timer and stopping when gx_call_send() reports a full
 * buffer until on_writable.  An echoed status is applied once the responses of
 * the request that carried it are out.
 *
 * Everything a client can ask for is bounded by the module's configuration
 * (README.md): size of one response, bytes and count of responses per call,
 * request bytes and count per call, interval_us.  The module owns its context
 * and a read-only buffer of zeros shared by every response payload; per-call
 * state lives in call memory.  grpc.testing.UnimplementedService is on purpose
 * not registered, so the server answers UNIMPLEMENTED for it.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <galaxy/gx_module.h>

#include "grpc/testing/empty.pb-c.h"
#include "grpc/testing/messages.pb-c.h"
#include "grpc/testing/test.pb-c.h"

#define INTEROP_MIB (1024u * 1024u)
#define INTEROP_ECHO_INITIAL "x-grpc-test-echo-initial"
#define INTEROP_ECHO_TRAILING "x-grpc-test-echo-trailing-bin"
/* Percent-encoded, an echoed message may triple: stay well under 8 KiB of metadata. */
#define INTEROP_STATUS_MESSAGE_MAX 2048
#define INTEROP_CACHE_CONTROL "max-age=60"

typedef Grpc__Testing__StreamingOutputCallRequest interop_out_req_t;

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */

typedef struct {
    uint64_t max_response_bytes; /* payload body of one response */
    uint64_t max_call_bytes;     /* response payload bodies of one call, summed */
    uint64_t max_responses;      /* ResponseParameters of one call */
    uint64_t max_request_bytes;  /* request payload bodies of one streaming call */
    uint64_t max_requests;       /* request messages of one streaming call */
    uint64_t max_interval_us;    /* one ResponseParameters.interval_us */
} interop_limits_t;

typedef struct {
    const char *key;
    size_t offset;
    uint64_t def, min, max;
} interop_conf_key_t;

static const interop_conf_key_t interop_conf_keys[] = {
    {"max_response_bytes", offsetof(interop_limits_t, max_response_bytes), 4 * INTEROP_MIB, 0,
     256 * INTEROP_MIB},
    {"max_call_bytes", offsetof(interop_limits_t, max_call_bytes), 64 * INTEROP_MIB, 0, UINT32_MAX},
    {"max_responses", offsetof(interop_limits_t, max_responses), 10000, 0, 1000000},
    /* aggregated_payload_size is an int32: the sum must fit. */
    {"max_request_bytes", offsetof(interop_limits_t, max_request_bytes), 64 * INTEROP_MIB, 0,
     INT32_MAX},
    {"max_requests", offsetof(interop_limits_t, max_requests), 10000, 1, 1000000},
    {"max_interval_us", offsetof(interop_limits_t, max_interval_us), 10000000, 0, INT32_MAX},
};

typedef struct {
    gx_module_t *mod;
    interop_limits_t lim;
    uint8_t *zeros; /* max_response_bytes of zeros, read by every response */
} interop_ctx_t;

/* A decimal integer in [min, max]; no sign, no spaces, no suffix. */
static int
interop_conf_parse(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    unsigned long long v;
    char *end;

    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static int
interop_conf_load(gx_module_t *mod, const gx_mod_conf_t *conf, interop_limits_t *lim)
{
    size_t i;

    for (i = 0; i < sizeof(interop_conf_keys) / sizeof(interop_conf_keys[0]); i++) {
        const interop_conf_key_t *k = &interop_conf_keys[i];
        uint64_t *field = (uint64_t *)((char *)lim + k->offset);
        const char *v = conf != NULL ? gx_mod_conf_get(conf, k->key) : NULL;

        *field = k->def;
        if (v != NULL && interop_conf_parse(v, k->min, k->max, field) != 0) {
            gx_mod_log(mod, GX_LOG_ERROR,
                       "invalid config at=%s key=%s value=\"%s\" reason=\"not an integer in "
                       "%" PRIu64 "..%" PRIu64 "\"",
                       gx_mod_conf_where(conf, k->key), k->key, v, k->min, k->max);
            return -EINVAL;
        }
    }
    return 0;
}

static int
interop_init(gx_module_t *mod, const gx_mod_conf_t *conf, void **mod_ctx)
{
    interop_ctx_t *ctx;
    int rc;

    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return -ENOMEM;
    ctx->mod = mod;
    rc = interop_conf_load(mod, conf, &ctx->lim);
    if (rc != 0)
        goto fail;
    /* calloc'd pages stay unbacked until read, and zero pages are shared. */
    ctx->zeros = calloc(1, (size_t)ctx->lim.max_response_bytes + 1);
    if (ctx->zeros == NULL) {
        gx_mod_log(mod, GX_LOG_ERROR, "out of memory bytes=%" PRIu64, ctx->lim.max_response_bytes);
        rc = -ENOMEM;
        goto fail;
    }
    *mod_ctx = ctx;
    return 0;

fail:
    free(ctx);
    return rc;
}

static void
interop_fini(gx_module_t *mod, void *mod_ctx)
{
    interop_ctx_t *ctx = mod_ctx;

    (void)mod;
    if (ctx == NULL)
        return;
    free(ctx->zeros);
    free(ctx);
}

/* ------------------------------------------------------------------------ */
/* Checks shared by the methods: each fails the call naming the field       */

static int
interop_check_type(gx_call_t *call, Grpc__Testing__PayloadType type)
{
    if (type != GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "response_type %d is not supported",
                            (int)type);
    return GX_OK;
}

/* One response payload of @p size bytes, counted against the call's budget. */
static int
interop_check_size(gx_call_t *call, const interop_limits_t *lim, const char *field, int32_t size,
                   uint64_t *call_bytes)
{
    if (size < 0)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "%s %" PRId32 " is negative", field,
                            size);
    if ((uint64_t)size > lim->max_response_bytes)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED,
                            "%s %" PRId32 " is over max_response_bytes=%" PRIu64, field, size,
                            lim->max_response_bytes);
    if (*call_bytes + (uint64_t)size > lim->max_call_bytes)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED,
                            "%s: the call's responses would total more than "
                            "max_call_bytes=%" PRIu64,
                            field, lim->max_call_bytes);
    *call_bytes += (uint64_t)size;
    return GX_OK;
}

static int
interop_check_status(gx_call_t *call, const Grpc__Testing__EchoStatus *st)
{
    if (st == NULL)
        return GX_OK;
    if (st->code < 0 || st->code >= GX_STATUS_MAX)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT,
                            "response_status.code %" PRId32 " is not a gRPC status code", st->code);
    if (strlen(st->message) > INTEROP_STATUS_MESSAGE_MAX)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT,
                            "response_status.message is longer than %d bytes",
                            INTEROP_STATUS_MESSAGE_MAX);
    return GX_OK;
}

/* Code 0 asks for nothing special: the call goes on and ends OK. */
static int
interop_wants_status(const Grpc__Testing__EchoStatus *st)
{
    return st != NULL && st->code != GX_STATUS_OK;
}

/*
 * The module API does not tell whether a message arrived compressed, only
 * what the call declared: without a grpc-encoding other than identity, no
 * message of the call can have been compressed.
 */
static int
interop_check_compressed(gx_call_t *call, const Grpc__Testing__BoolValue *expect)
{
    const char *enc;

    if (expect == NULL || !expect->value)
        return GX_OK;
    enc = gx_call_metadata(call, "grpc-encoding", NULL);
    if (enc == NULL || strcmp(enc, "identity") == 0)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT,
                            "expect_compressed is set but the request is not compressed");
    return GX_OK;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static int
interop_echo_metadata(gx_call_t *call)
{
    const char *v;
    size_t len;

    v = gx_call_metadata(call, INTEROP_ECHO_INITIAL, &len);
    if (v != NULL && gx_call_header_add(call, INTEROP_ECHO_INITIAL, v, len) < 0)
        return gx_call_fail(call, GX_STATUS_INTERNAL, "cannot echo %s", INTEROP_ECHO_INITIAL);
    v = gx_call_metadata(call, INTEROP_ECHO_TRAILING, &len);
    if (v != NULL && gx_call_trailer_add(call, INTEROP_ECHO_TRAILING, v, len) < 0)
        return gx_call_fail(call, GX_STATUS_INTERNAL, "cannot echo %s", INTEROP_ECHO_TRAILING);
    return GX_OK;
}

/* A payload of @p size zeros; the body points at the shared read-only buffer. */
static void
interop_payload_init(Grpc__Testing__Payload *p, const interop_ctx_t *ctx, int32_t size)
{
    grpc__testing__payload__init(p);
    p->type = GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE;
    p->body.len = (size_t)size;
    p->body.data = size > 0 ? ctx->zeros : NULL;
}

/* Counts one request message of a streaming call against the call's limits. */
typedef struct {
    uint64_t bytes;
    uint64_t count;
} interop_input_t;

static int
interop_input_add(gx_call_t *call, const interop_limits_t *lim, interop_input_t *in,
                  const Grpc__Testing__Payload *payload)
{
    uint64_t len = payload != NULL ? payload->body.len : 0;

    if (in->count >= lim->max_requests)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED,
                            "the call sent more than max_requests=%" PRIu64 " messages",
                            lim->max_requests);
    if (in->bytes + len > lim->max_request_bytes)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED,
                            "payload: request payloads total more than "
                            "max_request_bytes=%" PRIu64,
                            lim->max_request_bytes);
    in->count++;
    in->bytes += len;
    return GX_OK;
}

/* ------------------------------------------------------------------------ */
/* Unary methods                                                            */

static int
interop_empty_call(gx_call_t *call, const ProtobufCMessage *msg, void *mod_ctx)
{
    Grpc__Testing__Empty resp = GRPC__TESTING__EMPTY__INIT;
    int rc;

    (void)msg;
    (void)mod_ctx;
    rc = interop_echo_metadata(call);
    if (rc != GX_OK)
        return rc;
    return gx_call_reply(call, &resp.base);
}

static int
interop_check_simple(gx_call_t *call, const interop_ctx_t *ctx,
                     const Grpc__Testing__SimpleRequest *req)
{
    uint64_t call_bytes = 0;
    int rc;

    rc = interop_check_type(call, req->response_type);
    if (rc == GX_OK)
        rc = interop_check_size(call, &ctx->lim, "response_size", req->response_size, &call_bytes);
    if (rc == GX_OK)
        rc = interop_check_status(call, req->response_status);
    if (rc == GX_OK)
        rc = interop_check_compressed(call, req->expect_compressed);
    return rc;
}

static int
interop_unary_call(gx_call_t *call, const ProtobufCMessage *msg, void *mod_ctx)
{
    const Grpc__Testing__SimpleRequest *req = (const Grpc__Testing__SimpleRequest *)msg;
    const interop_ctx_t *ctx = mod_ctx;
    Grpc__Testing__SimpleResponse resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    Grpc__Testing__Payload payload;
    int rc;

    rc = interop_echo_metadata(call);
    if (rc == GX_OK)
        rc = interop_check_simple(call, ctx, req);
    if (rc != GX_OK)
        return rc;
    if (interop_wants_status(req->response_status))
        return gx_call_fail(call, (gx_status_t)req->response_status->code, "%s",
                            req->response_status->message);
    if (req->response_size > 0) {
        interop_payload_init(&payload, ctx, req->response_size);
        resp.payload = &payload;
    }
    /* protobuf-c only reads the string while gx_call_reply() packs it. */
    if (req->fill_username)
        resp.username = (char *)gx_call_identity(call);
    return gx_call_reply(call, &resp.base);
}

/* The request is ignored: the payload is the time in ns, different for every call. */
static int
interop_cacheable_unary_call(gx_call_t *call, const ProtobufCMessage *msg, void *mod_ctx)
{
    Grpc__Testing__SimpleResponse resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    Grpc__Testing__Payload payload = GRPC__TESTING__PAYLOAD__INIT;
    struct timespec ts;
    char stamp[24];
    int len, rc;

    (void)msg;
    (void)mod_ctx;
    rc = interop_echo_metadata(call);
    if (rc != GX_OK)
        return rc;
    if (gx_call_header_add(call, "cache-control", INTEROP_CACHE_CONTROL,
                           strlen(INTEROP_CACHE_CONTROL)) < 0)
        return gx_call_fail(call, GX_STATUS_INTERNAL, "cannot add cache-control");
    clock_gettime(CLOCK_REALTIME, &ts);
    len = snprintf(stamp, sizeof(stamp), "%" PRIu64,
                   (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
    payload.body.len = (size_t)len;
    payload.body.data = (uint8_t *)stamp;
    resp.payload = &payload;
    return gx_call_reply(call, &resp.base);
}

static int
interop_unimplemented_call(gx_call_t *call, const ProtobufCMessage *msg, void *mod_ctx)
{
    (void)msg;
    (void)mod_ctx;
    return gx_call_fail(call, GX_STATUS_UNIMPLEMENTED, "%s is not implemented, on purpose",
                        gx_call_method(call));
}

/* ------------------------------------------------------------------------ */
/* StreamingInputCall                                                       */

static int
interop_streaming_input_call(gx_call_t *call, const ProtobufCMessage *msg, void *mod_ctx)
{
    const interop_ctx_t *ctx = mod_ctx;
    interop_input_t *in;
    int rc;

    (void)msg; /* NULL: messages come through on_message */
    rc = interop_echo_metadata(call);
    if (rc != GX_OK)
        return rc;
    in = gx_call_alloc(call, sizeof(*in));
    if (in == NULL)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    memset(in, 0, sizeof(*in));
    gx_call_set_ctx(call, ctx->mod, in);
    return GX_AGAIN;
}

static void
interop_input_on_message(gx_call_t *call, const ProtobufCMessage *msg, void *mod_ctx)
{
    const Grpc__Testing__StreamingInputCallRequest *req =
        (const Grpc__Testing__StreamingInputCallRequest *)msg;
    const interop_ctx_t *ctx = mod_ctx;
    interop_input_t *in = gx_call_ctx(call, ctx->mod);

    if (in == NULL || gx_call_is_done(call))
        return;
    if (interop_check_compressed(call, req->expect_compressed) != GX_OK)
        return;
    (void)interop_input_add(call, &ctx->lim, in, req->payload);
}

static void
interop_input_on_half_close(gx_call_t *call, void *mod_ctx)
{
    const interop_ctx_t *ctx = mod_ctx;
    interop_input_t *in = gx_call_ctx(call, ctx->mod);
    Grpc__Testing__StreamingInputCallResponse resp =
        GRPC__TESTING__STREAMING_INPUT_CALL_RESPONSE__INIT;

    if (in == NULL || gx_call_is_done(call))
        return;
    /* max_request_bytes is at most INT32_MAX. */
    resp.aggregated_payload_size = (int32_t)in->bytes;
    (void)gx_call_reply(call, &resp.base);
}

/* ------------------------------------------------------------------------ */
/* The streaming-output engine                                              */

/* What is kept of one ResponseParameters. */
typedef struct {
    int32_t size;
    int32_t interval_us;
} interop_param_t;

/*
 * The responses one request asks for.  Streamed requests are freed after
 * on_message, so the parameters are copied into call memory.
 */
typedef struct interop_batch_s {
    struct interop_batch_s *next;
    size_t n;
    interop_param_t params[];
} interop_batch_t;

typedef struct {
    gx_call_t *call;
    const interop_ctx_t *ctx;
    interop_batch_t *head; /* responses still to send, oldest request first */
    interop_batch_t **tail;
    size_t next_param;          /* index into head->params */
    gx_status_t status_code;    /* with has_status: ends the call once the queue is empty */
    const char *status_message; /* a copy in call memory */
    uint64_t out_bytes;         /* response bytes accepted so far */
    uint64_t out_count;         /* responses accepted so far */
    interop_input_t in;
    unsigned has_status : 1;  /* a request echoed a status: later ones are ignored */
    unsigned half_closed : 1; /* no more requests will come */
    unsigned hold : 1;        /* HalfDuplexCall: nothing is sent before half-close */
    unsigned sleeping : 1;    /* the timer for head's interval_us runs */
    unsigned slept : 1;       /* the interval before the next response is over */
    unsigned blocked : 1;     /* the send buffer is full: wait for on_writable */
    unsigned ended : 1;       /* finished, failed or cancelled: do nothing more */
} interop_stream_t;

static void interop_stream_pump(interop_stream_t *s);

static int
interop_stream_new(gx_call_t *call, const interop_ctx_t *ctx, int hold, interop_stream_t **out)
{
    interop_stream_t *s;

    s = gx_call_alloc(call, sizeof(*s));
    if (s == NULL)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    memset(s, 0, sizeof(*s));
    s->call = call;
    s->ctx = ctx;
    s->tail = &s->head;
    s->hold = hold != 0;
    gx_call_set_ctx(call, ctx->mod, s);
    *out = s;
    return GX_OK;
}

/* The call's stream state, or NULL when there is nothing left to do. */
static interop_stream_t *
interop_stream_get(gx_call_t *call, const interop_ctx_t *ctx)
{
    interop_stream_t *s = gx_call_ctx(call, ctx->mod);

    if (s == NULL || s->ended || gx_call_is_done(call))
        return NULL;
    return s;
}

static int
interop_stream_check_param(interop_stream_t *s, size_t i,
                           const Grpc__Testing__ResponseParameters *p)
{
    const interop_limits_t *lim = &s->ctx->lim;
    char field[64];
    int rc;

    snprintf(field, sizeof(field), "response_parameters[%zu].size", i);
    rc = interop_check_size(s->call, lim, field, p->size, &s->out_bytes);
    if (rc != GX_OK)
        return rc;
    if (p->interval_us < 0 || (uint64_t)p->interval_us > lim->max_interval_us)
        return gx_call_fail(s->call, GX_STATUS_INVALID_ARGUMENT,
                            "response_parameters[%zu].interval_us %" PRId32
                            " is outside 0..%" PRIu64,
                            i, p->interval_us, lim->max_interval_us);
    return GX_OK;
}

static int
interop_stream_check(interop_stream_t *s, const interop_out_req_t *req)
{
    const interop_limits_t *lim = &s->ctx->lim;
    size_t i;
    int rc;

    rc = interop_check_type(s->call, req->response_type);
    if (rc == GX_OK)
        rc = interop_check_status(s->call, req->response_status);
    if (rc != GX_OK)
        return rc;
    if (req->n_response_parameters > lim->max_responses - s->out_count)
        return gx_call_fail(s->call, GX_STATUS_RESOURCE_EXHAUSTED,
                            "response_parameters: the call asks for more than "
                            "max_responses=%" PRIu64 " responses",
                            lim->max_responses);
    for (i = 0; i < req->n_response_parameters; i++) {
        rc = interop_stream_check_param(s, i, req->response_parameters[i]);
        if (rc != GX_OK)
            return rc;
    }
    s->out_count += req->n_response_parameters;
    return GX_OK;
}

static int
interop_stream_keep_status(interop_stream_t *s, const Grpc__Testing__EchoStatus *st)
{
    size_t len;
    char *msg;

    if (!interop_wants_status(st))
        return GX_OK;
    len = strlen(st->message); /* at most INTEROP_STATUS_MESSAGE_MAX */
    msg = gx_call_alloc(s->call, len + 1);
    if (msg == NULL)
        return gx_call_fail(s->call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    memcpy(msg, st->message, len + 1);
    s->status_code = (gx_status_t)st->code;
    s->status_message = msg;
    s->has_status = 1;
    return GX_OK;
}

static int
interop_stream_queue(interop_stream_t *s, const interop_out_req_t *req)
{
    size_t i, n = req->n_response_parameters;
    interop_batch_t *b;

    if (n == 0)
        return GX_OK;
    /* n is at most max_responses: no overflow. */
    b = gx_call_alloc(s->call, sizeof(*b) + n * sizeof(b->params[0]));
    if (b == NULL)
        return gx_call_fail(s->call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    b->next = NULL;
    b->n = n;
    for (i = 0; i < n; i++) {
        b->params[i].size = req->response_parameters[i]->size;
        b->params[i].interval_us = req->response_parameters[i]->interval_us;
    }
    *s->tail = b;
    s->tail = &b->next;
    return GX_OK;
}

/* Validates @p req and queues a copy of what it asks for. */
static int
interop_stream_add(interop_stream_t *s, const interop_out_req_t *req)
{
    int rc;

    rc = interop_stream_check(s, req);
    if (rc == GX_OK)
        rc = interop_stream_keep_status(s, req->response_status);
    if (rc == GX_OK)
        rc = interop_stream_queue(s, req);
    if (rc != GX_OK)
        s->ended = 1;
    return rc;
}

/* The next response to send, or NULL when the queue is empty. */
static const interop_param_t *
interop_stream_next(interop_stream_t *s)
{
    while (s->head != NULL) {
        if (s->next_param < s->head->n)
            return &s->head->params[s->next_param];
        s->head = s->head->next;
        s->next_param = 0;
    }
    s->tail = &s->head;
    return NULL;
}

/* Nothing queued: end the call if the client asked for a status or is done. */
static void
interop_stream_end_if_idle(interop_stream_t *s)
{
    if (s->has_status) {
        s->ended = 1;
        gx_call_finish(s->call, s->status_code, s->status_message);
    } else if (s->half_closed) {
        s->ended = 1;
        gx_call_finish(s->call, GX_STATUS_OK, NULL);
    }
}

static void
interop_stream_on_timer(gx_call_t *call, void *arg)
{
    interop_stream_t *s = arg;

    if (s->ended || gx_call_is_done(call))
        return;
    s->sleeping = 0;
    s->slept = 1;
    interop_stream_pump(s);
}

static void
interop_stream_sleep(interop_stream_t *s, int32_t usec)
{
    int rc = gx_call_timer(s->call, (uint64_t)usec, interop_stream_on_timer, s);

    if (rc < 0) {
        s->ended = 1;
        (void)gx_call_fail(s->call, GX_STATUS_INTERNAL, "cannot arm a timer (error %d)", rc);
        return;
    }
    s->sleeping = 1;
}

static int
interop_stream_send(interop_stream_t *s, int32_t size)
{
    Grpc__Testing__StreamingOutputCallResponse resp =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
    Grpc__Testing__Payload payload;

    interop_payload_init(&payload, s->ctx, size);
    resp.payload = &payload;
    return gx_call_send(s->call, &resp.base);
}

/*
 * Sends queued responses until the queue is empty, a timer runs, the send
 * buffer is full or the call ends.  Timer, on_writable, new requests and
 * half-close all come back here.
 */
static void
interop_stream_pump(interop_stream_t *s)
{
    const interop_param_t *p;
    int rc;

    while (!s->ended && !s->hold && !s->blocked && !s->sleeping) {
        p = interop_stream_next(s);
        if (p == NULL) {
            interop_stream_end_if_idle(s);
            return;
        }
        if (p->interval_us > 0 && !s->slept) {
            interop_stream_sleep(s, p->interval_us);
            return;
        }
        s->slept = 0;
        s->next_param++;
        rc = interop_stream_send(s, p->size);
        if (rc == GX_AGAIN) {
            s->blocked = 1;
        } else if (rc < 0) {
            s->ended = 1;
            if (!gx_call_is_done(s->call))
                (void)gx_call_fail(s->call, GX_STATUS_INTERNAL, "cannot send a response (error %d)",
                                   rc);
        }
    }
}

static int
interop_streaming_output_call(gx_call_t *call, const ProtobufCMessage *msg, void *mod_ctx)
{
    interop_stream_t *s;
    int rc;

    rc = interop_echo_metadata(call);
    if (rc == GX_OK)
        rc = interop_stream_new(call, mod_ctx, 0, &s);
    if (rc != GX_OK)
        return rc;
    s->half_closed = 1;
    rc = interop_stream_add(s, (const interop_out_req_t *)msg);
    if (rc != GX_OK)
        return rc;
    interop_stream_pump(s);
    return gx_call_is_done(call) ? GX_DONE : GX_AGAIN;
}

static int
interop_duplex_start(gx_call_t *call, const interop_ctx_t *ctx, int hold)
{
    interop_stream_t *s;
    int rc;

    rc = interop_echo_metadata(call);
    if (rc == GX_OK)
        rc = interop_stream_new(call, ctx, hold, &s);
    return rc == GX_OK ? GX_AGAIN : rc;
}

static int
interop_full_duplex_call(gx_call_t *call, const ProtobufCMessage *msg, void *mod_ctx)
{
    (void)msg;
    return interop_duplex_start(call, mod_ctx, 0);
}

static int
interop_half_duplex_call(gx_call_t *call, const ProtobufCMessage *msg, void *mod_ctx)
{
    (void)msg;
    return interop_duplex_start(call, mod_ctx, 1);
}

/* After a request that echoes a status, the rest of the stream is ignored. */
static void
interop_duplex_on_message(gx_call_t *call, const ProtobufCMessage *msg, void *mod_ctx)
{
    const interop_out_req_t *req = (const interop_out_req_t *)msg;
    interop_stream_t *s = interop_stream_get(call, mod_ctx);

    if (s == NULL || s->has_status)
        return;
    if (interop_input_add(call, &s->ctx->lim, &s->in, req->payload) != GX_OK) {
        s->ended = 1;
        return;
    }
    if (interop_stream_add(s, req) == GX_OK)
        interop_stream_pump(s);
}

static void
interop_stream_on_half_close(gx_call_t *call, void *mod_ctx)
{
    interop_stream_t *s = interop_stream_get(call, mod_ctx);

    if (s == NULL)
        return;
    s->half_closed = 1;
    s->hold = 0;
    interop_stream_pump(s);
}

static void
interop_stream_on_writable(gx_call_t *call, void *mod_ctx)
{
    interop_stream_t *s = interop_stream_get(call, mod_ctx);

    if (s == NULL)
        return;
    s->blocked = 0;
    interop_stream_pump(s);
}

/* The call is gone: a timer that still fires must find the stream ended. */
static void
interop_stream_on_cancel(gx_call_t *call, void *mod_ctx)
{
    const interop_ctx_t *ctx = mod_ctx;
    interop_stream_t *s = gx_call_ctx(call, ctx->mod);

    if (s != NULL)
        s->ended = 1;
}

/* ------------------------------------------------------------------------ */
/* Descriptor                                                               */

/* Rows in the order of test.proto. */
static const gx_method_t interop_test_methods[] = {
    {.name = "EmptyCall", .kind = GX_RPC_UNARY, .start = interop_empty_call},
    {.name = "UnaryCall", .kind = GX_RPC_UNARY, .start = interop_unary_call},
    {.name = "CacheableUnaryCall", .kind = GX_RPC_UNARY, .start = interop_cacheable_unary_call},
    {.name = "StreamingOutputCall",
     .kind = GX_RPC_SERVER_STREAMING,
     .start = interop_streaming_output_call,
     .on_cancel = interop_stream_on_cancel,
     .on_writable = interop_stream_on_writable},
    {.name = "StreamingInputCall",
     .kind = GX_RPC_CLIENT_STREAMING,
     .start = interop_streaming_input_call,
     .on_message = interop_input_on_message,
     .on_half_close = interop_input_on_half_close},
    {.name = "FullDuplexCall",
     .kind = GX_RPC_BIDI_STREAMING,
     .start = interop_full_duplex_call,
     .on_message = interop_duplex_on_message,
     .on_half_close = interop_stream_on_half_close,
     .on_cancel = interop_stream_on_cancel,
     .on_writable = interop_stream_on_writable},
    {.name = "HalfDuplexCall",
     .kind = GX_RPC_BIDI_STREAMING,
     .start = interop_half_duplex_call,
     .on_message = interop_duplex_on_message,
     .on_half_close = interop_stream_on_half_close,
     .on_cancel = interop_stream_on_cancel,
     .on_writable = interop_stream_on_writable},
    {.name = "UnimplementedCall", .kind = GX_RPC_UNARY, .start = interop_unimplemented_call},
    {.name = NULL},
};

static const gx_service_t interop_test_service = {
    .desc = &grpc__testing__test_service__descriptor,
    .methods = interop_test_methods,
};

/* grpc.testing.UnimplementedService is left out on purpose. */
static const gx_service_t *const interop_services[] = {&interop_test_service, NULL};

static const gx_module_desc_t interop_module = {
    .abi = GX_MODULE_ABI,
    .name = "interop",
    .version = PACKAGE_VERSION,
    .edition = "community",
    .init = interop_init,
    .fini = interop_fini,
    .hooks = NULL,
    .services = interop_services,
};

GX_MODULE(interop_module);
