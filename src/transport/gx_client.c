/* SPDX-License-Identifier: MIT */
/*
 * The client side of the gRPC layer: one HTTP/2 connection driven by an
 * nghttp2 client session over a bufferevent (plain or OpenSSL) on a private
 * libevent loop.  A call submits its request headers and hands nghttp2 its
 * messages from an output buffer; unary and server-streaming calls put their
 * one message there with END_STREAM and run the loop until the stream
 * closes, the call's deadline timer fires or the connection fails.  A
 * bidirectional call (gx_client_bidi_*) stays open between the caller's
 * sends and receives: its data provider defers while the buffer is empty,
 * and the responses it gets while the loop runs for anything else queue up
 * until gx_client_bidi_recv() takes them.  The callbacks below find the call
 * of a stream among the calls in progress, collect its response headers,
 * messages and trailers, and the call's end turns them into one status.  The
 * wire details (prefixes, grpc-message escapes, base64) come from gx_grpc.c,
 * shared with the server side.
 *
 * Everything the peer sends is bounded here: header lists, messages (before
 * and after inflation), messages queued for a bidirectional call, and the
 * time a call may take.  A response a gRPC client cannot use ends the call
 * with a status; only a broken connection ends the session (and every call
 * in progress).
 */
#include "config.h"

#include "transport/gx_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "transport/gx_grpc.h"
#include "util/gx_clock.h"
#include "util/gx_error.h"

#define OUTPUT_HIGH_WATER (256u << 10) /* bytes queued on the socket before nghttp2 waits */
#define STREAM_WINDOW (1u << 20)
#define CONNECTION_WINDOW (16u << 20)
#define MAX_METHOD_LEN 1024
#define MAX_MD_VALUE 8192

typedef enum { KIND_UNARY, KIND_SERVER_STREAM, KIND_BIDI } call_kind_t;

/* A response message a bidirectional call has received and not yet handed out. */
typedef struct queued_msg_s {
    ProtobufCMessage *msg;
    struct queued_msg_s *next;
} queued_msg_t;

typedef struct client_call_s {
    gx_client_t *c;
    struct client_call_s *next; /* in c->calls while in progress */
    call_kind_t kind;
    int32_t stream_id;
    const ProtobufCMessageDescriptor *desc;
    gx_client_msg_fn fn;
    void *arg;
    ProtobufCMessage *resp; /* unary: the response */
    gx_client_status_t *st;
    struct event *deadline; /* NULL: none */

    struct evbuffer *out; /* framed request messages nghttp2 has not taken yet */
    struct evbuffer *in;  /* DATA not yet parsed into messages */
    size_t block_bytes;   /* HPACK-decoded size of the current header block */
    int block_status;     /* :status of the current block, 0 when absent */
    int block_ctype_ok;

    queued_msg_t *q_head, **q_tail; /* bidi: received, not yet taken */
    size_t q_len;

    gx_status_t grpc_status;
    char grpc_message[GX_CLIENT_MESSAGE_MAX];
    unsigned got_headers : 1;     /* the final response HEADERS arrived */
    unsigned got_grpc_status : 1; /* grpc-status arrived */
    unsigned ctype_ok : 1;
    unsigned gzip : 1;        /* grpc-encoding: gzip */
    unsigned discard : 1;     /* not a gRPC response: drop its DATA */
    unsigned stopped : 1;     /* the message callback asked to stop */
    unsigned done : 1;        /* st holds the final status */
    unsigned half_closed : 1; /* no more request messages: END_STREAM once out is sent */
    unsigned deferred : 1;    /* the data provider waits for a message (NGHTTP2_ERR_DEFERRED) */
} client_call_t;

struct gx_client_bidi_s {
    client_call_t call;
    gx_client_status_t st;
};

struct gx_client_s {
    struct event_base *base;
    struct bufferevent *bev;
    SSL_CTX *ssl_ctx;
    nghttp2_session *session;
    struct event *timer;  /* bounds the TLS handshake */
    client_call_t *calls; /* the calls in progress */

    uint32_t connect_timeout_ms, max_recv, max_hdr;
    int tls;
    int connect_state; /* while connecting: 0 waiting, 1 done, -1 failed */
    unsigned broken : 1;
    char broken_why[256];

    char host[256], port[16];
    char authority[300];
    char user_agent[128];
};

/* ------------------------------------------------------------------ status */

static void status_set(gx_client_status_t *st, gx_status_t code, gx_client_origin_t origin,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
status_set(gx_client_status_t *st, gx_status_t code, gx_client_origin_t origin, const char *fmt,
           ...)
{
    va_list ap;

    st->code = code;
    st->origin = origin;
    va_start(ap, fmt);
    vsnprintf(st->message, sizeof(st->message), fmt, ap);
    va_end(ap);
}

gx_status_t
gx_client_http_to_status(int http_status)
{
    switch (http_status) {
    case 400:
        return GX_STATUS_INTERNAL;
    case 401:
        return GX_STATUS_UNAUTHENTICATED;
    case 403:
        return GX_STATUS_PERMISSION_DENIED;
    case 404:
        return GX_STATUS_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return GX_STATUS_UNAVAILABLE;
    default:
        return GX_STATUS_UNKNOWN;
    }
}

/* The gRPC status of a stream reset with an HTTP/2 error code (PROTOCOL-HTTP2.md). */
static gx_status_t
h2_error_to_status(uint32_t error)
{
    switch (error) {
    case NGHTTP2_REFUSED_STREAM:
        return GX_STATUS_UNAVAILABLE;
    case NGHTTP2_CANCEL:
        return GX_STATUS_CANCELLED;
    case NGHTTP2_ENHANCE_YOUR_CALM:
        return GX_STATUS_RESOURCE_EXHAUSTED;
    case NGHTTP2_INADEQUATE_SECURITY:
        return GX_STATUS_PERMISSION_DENIED;
    default:
        return GX_STATUS_INTERNAL;
    }
}

/* ------------------------------------------------------------------ call end */

/* Ends the call with a status the client derived; resets its stream when still open. */
static void call_fail(gx_client_t *c, client_call_t *call, gx_status_t code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
call_fail(gx_client_t *c, client_call_t *call, gx_status_t code, const char *fmt, ...)
{
    va_list ap;

    if (call->done)
        return;
    call->done = 1;
    call->st->code = code;
    call->st->origin = GX_CLIENT_ORIGIN_LOCAL;
    va_start(ap, fmt);
    vsnprintf(call->st->message, sizeof(call->st->message), fmt, ap);
    va_end(ap);
    if (call->stream_id > 0 && c->session != NULL && !c->broken &&
        nghttp2_session_find_stream(c->session, call->stream_id) != NULL)
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_CANCEL);
}

/*
 * The stream is closed: the status is what the server said, or what its
 * absence means.  An OK with part of a message left over is no success.
 */
static void
call_close(client_call_t *call, uint32_t error)
{
    gx_client_status_t *st = call->st;
    int truncated = evbuffer_get_length(call->in) != 0;

    if (call->done)
        return;
    call->done = 1;
    st->origin = GX_CLIENT_ORIGIN_SERVER;
    if (call->got_grpc_status && (call->grpc_status != GX_STATUS_OK || !truncated)) {
        st->code = call->grpc_status;
        snprintf(st->message, sizeof(st->message), "%s", call->grpc_message);
    } else if (call->got_headers && st->http_status != 200) {
        status_set(st, gx_client_http_to_status(st->http_status), GX_CLIENT_ORIGIN_SERVER,
                   "HTTP status %d without grpc-status", st->http_status);
    } else if (error != NGHTTP2_NO_ERROR) {
        status_set(st, h2_error_to_status(error), GX_CLIENT_ORIGIN_LOCAL,
                   "stream reset by the server: %s", nghttp2_http2_strerror(error));
    } else if (call->got_headers && !call->ctype_ok) {
        status_set(st, GX_STATUS_UNKNOWN, GX_CLIENT_ORIGIN_LOCAL,
                   "response content-type is not application/grpc");
    } else if (truncated) {
        status_set(st, GX_STATUS_INTERNAL, GX_CLIENT_ORIGIN_LOCAL,
                   "response ends inside a message");
    } else {
        status_set(st, GX_STATUS_UNKNOWN, GX_CLIENT_ORIGIN_LOCAL,
                   "stream ended without grpc-status");
    }
}

/* The connection is unusable: the calls in progress and every later one are UNAVAILABLE. */
static void conn_broken(gx_client_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
conn_broken(gx_client_t *c, const char *fmt, ...)
{
    va_list ap;

    if (!c->broken) {
        va_start(ap, fmt);
        vsnprintf(c->broken_why, sizeof(c->broken_why), fmt, ap);
        va_end(ap);
        c->broken = 1;
        if (c->bev != NULL)
            bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    }
    for (client_call_t *call = c->calls; call != NULL; call = call->next)
        call_fail(c, call, GX_STATUS_UNAVAILABLE, "%s", c->broken_why);
}

/* ------------------------------------------------------------------ messages */

/* Keeps a bidirectional call's response until gx_client_bidi_recv() takes it. */
static void
message_queue(gx_client_t *c, client_call_t *call, ProtobufCMessage *msg)
{
    queued_msg_t *q;

    if (call->q_len >= GX_CLIENT_BIDI_QUEUE_MAX) {
        protobuf_c_message_free_unpacked(msg, NULL);
        call_fail(c, call, GX_STATUS_RESOURCE_EXHAUSTED,
                  "more than %u response messages not received", GX_CLIENT_BIDI_QUEUE_MAX);
        return;
    }
    q = malloc(sizeof(*q));
    if (q == NULL) {
        protobuf_c_message_free_unpacked(msg, NULL);
        call_fail(c, call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    q->msg = msg;
    q->next = NULL;
    *call->q_tail = q;
    call->q_tail = &q->next;
    call->q_len++;
}

/* Decodes one message and hands it on; the call may end here. */
static void
message_deliver(gx_client_t *c, client_call_t *call, const uint8_t *data, size_t len,
                int compressed)
{
    ProtobufCMessage *msg;
    uint8_t *plain = NULL;
    int rv;

    if (compressed) {
        if (!call->gzip) {
            call_fail(c, call, GX_STATUS_INTERNAL,
                      "compressed response message without grpc-encoding gzip");
            return;
        }
        rv = gx_grpc_gunzip(data, len, c->max_recv, &plain, &len);
        if (rv == GX_E2BIG) {
            call_fail(c, call, GX_STATUS_RESOURCE_EXHAUSTED,
                      "inflated response message larger than max (%u bytes)", c->max_recv);
            return;
        }
        if (rv != 0) {
            call_fail(c, call, GX_STATUS_INTERNAL, "response message does not inflate as gzip");
            return;
        }
        data = plain;
    }
    msg = protobuf_c_message_unpack(call->desc, NULL, len, data);
    free(plain);
    if (msg == NULL) {
        call_fail(c, call, GX_STATUS_INTERNAL, "cannot decode the response as %s",
                  call->desc->name);
        return;
    }
    if (call->kind == KIND_UNARY) {
        if (call->resp != NULL) {
            protobuf_c_message_free_unpacked(msg, NULL);
            call_fail(c, call, GX_STATUS_INTERNAL, "more than one response to a unary call");
            return;
        }
        call->resp = msg;
        return;
    }
    if (call->kind == KIND_BIDI) {
        message_queue(c, call, msg);
        return;
    }
    rv = call->fn(msg, call->arg);
    protobuf_c_message_free_unpacked(msg, NULL);
    if (rv != 0) {
        call->stopped = 1;
        call_fail(c, call, GX_STATUS_CANCELLED, "cancelled by the client");
    }
}

/* Parses and delivers the complete messages in call->in. */
static void
messages_parse(gx_client_t *c, client_call_t *call)
{
    uint8_t hdr[GX_GRPC_PREFIX_LEN];
    gx_grpc_prefix_t pre;

    while (!call->done) {
        if (evbuffer_copyout(call->in, hdr, sizeof(hdr)) < (ev_ssize_t)sizeof(hdr))
            return;
        if (gx_grpc_prefix_decode(hdr, &pre) != 0) {
            call_fail(c, call, GX_STATUS_INTERNAL, "invalid message flag byte %u", hdr[0]);
            return;
        }
        if (pre.length > c->max_recv) {
            call_fail(c, call, GX_STATUS_RESOURCE_EXHAUSTED,
                      "response message larger than max (%u vs. %u bytes)", pre.length,
                      c->max_recv);
            return;
        }
        if (evbuffer_get_length(call->in) < GX_GRPC_PREFIX_LEN + (size_t)pre.length)
            return;
        evbuffer_drain(call->in, GX_GRPC_PREFIX_LEN);
        message_deliver(c, call, evbuffer_pullup(call->in, pre.length), pre.length, pre.compressed);
        evbuffer_drain(call->in, pre.length);
    }
}

/* ------------------------------------------------------------------ nghttp2 callbacks */

/* The call in progress on @stream_id, NULL when none (or it has its status). */
static client_call_t *
stream_call(gx_client_t *c, int32_t stream_id)
{
    for (client_call_t *call = c->calls; call != NULL; call = call->next)
        if (call->stream_id == stream_id)
            return call->done ? NULL : call;
    return NULL;
}

static int
name_is(const uint8_t *name, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(name, lit, len) == 0;
}

static int
on_begin_headers_cb(nghttp2_session *s, const nghttp2_frame *frame, void *arg)
{
    client_call_t *call = stream_call(arg, frame->hd.stream_id);

    if (call != NULL) {
        call->block_bytes = 0;
        call->block_status = 0;
        call->block_ctype_ok = 0;
    }
    return 0;
}

static void
grpc_status_parse(client_call_t *call, const uint8_t *v, size_t len)
{
    unsigned code = 0;

    call->got_grpc_status = 1;
    call->grpc_status = GX_STATUS_UNKNOWN;
    if (len == 0 || len > 3)
        return;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return;
        code = code * 10 + (unsigned)(v[i] - '0');
    }
    if (code < GX_STATUS_MAX)
        call->grpc_status = (gx_status_t)code;
}

static int
grpc_message_parse(client_call_t *call, const uint8_t *v, size_t len)
{
    char *tmp = malloc(len + 1);

    if (tmp == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    gx_grpc_percent_decode((const char *)v, len, tmp);
    snprintf(call->grpc_message, sizeof(call->grpc_message), "%s", tmp);
    free(tmp);
    return 0;
}

static int
http_status_parse(const uint8_t *v, size_t len)
{
    if (len != 3 || v[0] < '1' || v[0] > '9' || v[1] < '0' || v[1] > '9' || v[2] < '0' ||
        v[2] > '9')
        return 0;
    return (v[0] - '0') * 100 + (v[1] - '0') * 10 + (v[2] - '0');
}

static int
on_header_cb(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t nlen,
             const uint8_t *value, size_t vlen, uint8_t flags, void *arg)
{
    gx_client_t *c = arg;
    client_call_t *call = stream_call(c, frame->hd.stream_id);

    if (call == NULL || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    call->block_bytes += nlen + vlen + 32;
    if (call->block_bytes > c->max_hdr) {
        call_fail(c, call, GX_STATUS_RESOURCE_EXHAUSTED,
                  "response header list larger than max (%u bytes)", c->max_hdr);
        return 0;
    }
    if (name_is(name, nlen, ":status"))
        call->block_status = http_status_parse(value, vlen);
    else if (name_is(name, nlen, "content-type"))
        call->block_ctype_ok = gx_grpc_content_type_ok((const char *)value, vlen);
    else if (name_is(name, nlen, "grpc-encoding"))
        call->gzip = gx_grpc_encoding_parse((const char *)value, vlen) == GX_GRPC_ENC_GZIP;
    else if (name_is(name, nlen, "grpc-status"))
        grpc_status_parse(call, value, vlen);
    else if (name_is(name, nlen, "grpc-message"))
        return grpc_message_parse(call, value, vlen);
    return 0;
}

/* A complete header block: the response headers (with :status) or the trailers. */
static void
headers_end(client_call_t *call)
{
    if (call->block_status == 0 || call->got_headers)
        return; /* trailers: their grpc-status was taken in on_header_cb */
    if (call->block_status >= 100 && call->block_status < 200)
        return; /* informational: the final response follows */
    call->got_headers = 1;
    call->st->http_status = call->block_status;
    call->ctype_ok = call->block_ctype_ok ? 1 : 0;
    call->discard = call->block_status != 200 || !call->ctype_ok;
}

/*
 * The server ended a bidirectional call (trailers with END_STREAM) while our
 * side may still be open: the call has its status now, and the stream is
 * closed with RST_STREAM NO_ERROR rather than left half-open.
 */
static void
bidi_remote_end(gx_client_t *c, int32_t stream_id)
{
    client_call_t *call = stream_call(c, stream_id);

    if (call == NULL || call->kind != KIND_BIDI)
        return;
    call_close(call, NGHTTP2_NO_ERROR);
    if (!nghttp2_session_get_stream_local_close(c->session, stream_id))
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_NO_ERROR);
}

static int
on_frame_recv_cb(nghttp2_session *s, const nghttp2_frame *frame, void *arg)
{
    gx_client_t *c = arg;
    client_call_t *call;

    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        call = stream_call(c, frame->hd.stream_id);
        if (call != NULL)
            headers_end(call);
        break;
    default:
        break;
    }
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        bidi_remote_end(c, frame->hd.stream_id);
    return 0;
}

static int
on_data_chunk_cb(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data,
                 size_t len, void *arg)
{
    gx_client_t *c = arg;
    client_call_t *call = stream_call(c, stream_id);

    if (call == NULL || call->discard)
        return 0;
    if (evbuffer_add(call->in, data, len) != 0) {
        call_fail(c, call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return 0;
    }
    messages_parse(c, call);
    return 0;
}

static int
on_stream_close_cb(nghttp2_session *s, int32_t stream_id, uint32_t error, void *arg)
{
    client_call_t *call = stream_call(arg, stream_id);

    if (call != NULL)
        call_close(call, error);
    return 0;
}

static ssize_t
send_cb(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *arg)
{
    gx_client_t *c = arg;

    if (evbuffer_get_length(bufferevent_get_output(c->bev)) >= OUTPUT_HIGH_WATER)
        return NGHTTP2_ERR_WOULDBLOCK; /* write_cb sends the rest */
    if (bufferevent_write(c->bev, data, len) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return (ssize_t)len;
}

/*
 * Reads the request through the client, never through a pointer kept by
 * nghttp2: a call that ended early is gone, and its stream is reset instead.
 * An open call with nothing to send waits (DEFERRED) until its next message
 * or its half-close resumes it.
 */
static ssize_t
request_read_cb(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t len, uint32_t *flags,
                nghttp2_data_source *src, void *arg)
{
    client_call_t *call = stream_call(arg, stream_id);
    int n;

    if (call == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    n = evbuffer_remove(call->out, buf, len);
    if (n < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (evbuffer_get_length(call->out) == 0) {
        if (call->half_closed) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
        } else if (n == 0) {
            call->deferred = 1;
            return NGHTTP2_ERR_DEFERRED;
        }
    }
    return n;
}

/* ------------------------------------------------------------------ connection I/O */

/* Lets nghttp2 write what it has queued. @return 0, or -1 when the connection broke */
static int
session_flush(gx_client_t *c)
{
    int rv;

    if (c->broken)
        return -1;
    rv = nghttp2_session_send(c->session);
    if (rv != 0) {
        conn_broken(c, "HTTP/2 error: %s", nghttp2_strerror(rv));
        return -1;
    }
    if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session) &&
        evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        conn_broken(c, "connection ended by the server");
        return -1;
    }
    return 0;
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
    gx_client_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec v[8];
    size_t total;
    ssize_t rv;
    int n;

    while (!c->broken && evbuffer_get_length(in) > 0) {
        n = evbuffer_peek(in, -1, NULL, v, 8);
        total = 0;
        for (int i = 0; i < n && i < 8; i++) {
            rv = nghttp2_session_mem_recv(c->session, v[i].iov_base, v[i].iov_len);
            if (rv < 0) {
                conn_broken(c, "HTTP/2 error from the server: %s", nghttp2_strerror((int)rv));
                return;
            }
            total += (size_t)rv;
        }
        if (total == 0)
            break;
        evbuffer_drain(in, total);
    }
    session_flush(c);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
    gx_client_t *c = arg;

    if (nghttp2_session_want_write(c->session))
        session_flush(c);
}

/*
 * The first OpenSSL error libevent recorded on @bev, 0 when none.  libevent
 * also records bare SSL_get_error() codes (no library part): those are not
 * OpenSSL errors, the socket's errno tells more.
 */
static unsigned long
tls_error(struct bufferevent *bev)
{
    unsigned long e, first = 0;

    while ((e = bufferevent_get_openssl_error(bev)) != 0)
        if (first == 0 && ERR_GET_LIB(e) != 0)
            first = e;
    ERR_clear_error();
    return first;
}

static void
event_cb(struct bufferevent *bev, short events, void *arg)
{
    gx_client_t *c = arg;
    int err = EVUTIL_SOCKET_ERROR();
    unsigned long tls_err = c->tls ? tls_error(bev) : 0;
    char reason[200];

    if (tls_err != 0) {
        /* e.g. the server's alert when it refuses our certificate after a TLS 1.3 handshake */
        ERR_error_string_n(tls_err, reason, sizeof(reason));
        conn_broken(c, "TLS error: %s", reason);
    } else if (events & BEV_EVENT_EOF) {
        conn_broken(c, "connection closed by the server");
    } else if (events & BEV_EVENT_ERROR) {
        conn_broken(c, "connection error: %s",
                    err != 0 ? evutil_socket_error_to_string(err) : "unknown");
    }
}

/* The TLS handshake's bound. */
static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    gx_client_t *c = arg;

    if (c->connect_state == 0)
        c->connect_state = -2;
}

/* A call's deadline. */
static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    client_call_t *call = arg;

    if (call->done)
        return;
    call_fail(call->c, call, GX_STATUS_DEADLINE_EXCEEDED, "deadline exceeded");
    session_flush(call->c);
}

/* ------------------------------------------------------------------ connecting */

static int open_fail(int rv, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
open_fail(int rv, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rv;
}

/* Splits "host:port" / "[v6]:port" into c->host and c->port. */
static int
addr_split(gx_client_t *c, const char *addr)
{
    const char *h = addr, *colon, *port;
    size_t hlen;

    if (addr[0] == '[') {
        colon = strstr(addr, "]:");
        h = addr + 1;
    } else {
        colon = strrchr(addr, ':');
    }
    if (colon == NULL)
        return GX_EINVAL;
    hlen = (size_t)(colon - h);
    port = colon + (addr[0] == '[' ? 2 : 1);
    if (hlen == 0 || hlen >= sizeof(c->host) || strlen(port) == 0 ||
        strlen(port) >= sizeof(c->port) || strspn(port, "0123456789") != strlen(port))
        return GX_EINVAL;
    memcpy(c->host, h, hlen);
    c->host[hlen] = '\0';
    snprintf(c->port, sizeof(c->port), "%s", port);
    return 0;
}

static int
tls_ctx_new(gx_client_t *c, const gx_client_opts_t *o, char *err, size_t errlen)
{
    char reason[200];
    const char *what = NULL, *file = NULL;

    c->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (c->ssl_ctx == NULL)
        return open_fail(GX_ENOMEM, err, errlen, "cannot create a TLS context");
    SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(c->ssl_ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_set_alpn_protos(c->ssl_ctx, (const unsigned char *)"\x02h2", 3) != 0)
        return open_fail(GX_ENOMEM, err, errlen, "cannot set ALPN");
    if (o->ca_file != NULL ? SSL_CTX_load_verify_locations(c->ssl_ctx, o->ca_file, NULL) != 1
                           : SSL_CTX_set_default_verify_paths(c->ssl_ctx) != 1)
        what = "CA file", file = o->ca_file ? o->ca_file : "(default)";
    else if (o->cert_file != NULL &&
             SSL_CTX_use_certificate_chain_file(c->ssl_ctx, o->cert_file) != 1)
        what = "certificate", file = o->cert_file;
    else if (o->key_file != NULL &&
             SSL_CTX_use_PrivateKey_file(c->ssl_ctx, o->key_file, SSL_FILETYPE_PEM) != 1)
        what = "key", file = o->key_file;
    else if (o->key_file != NULL && SSL_CTX_check_private_key(c->ssl_ctx) != 1)
        what = "key does not match the certificate", file = o->key_file;
    if (what == NULL)
        return 0;
    ERR_error_string_n(ERR_get_error(), reason, sizeof(reason));
    ERR_clear_error();
    return open_fail(GX_EINVAL, err, errlen, "%s %s: %s", what, file, reason);
}

static void
connect_cb(evutil_socket_t fd, short what, void *arg)
{
    gx_client_t *c = arg;

    c->connect_state = (what & EV_TIMEOUT) ? -1 : 1;
}

/* Runs the loop until connect_state leaves 0. */
static void
loop_until_state(gx_client_t *c)
{
    while (c->connect_state == 0)
        if (event_base_loop(c->base, EVLOOP_ONCE) != 0)
            c->connect_state = -1;
}

static struct timeval
ms_to_tv(uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};

    return tv;
}

/*
 * No Nagle delay for small frames, and keepalive probes so that a stream
 * without a deadline notices a peer that vanished without a FIN (~60 s).
 */
static void
tcp_options(int fd)
{
    int one = 1, idle = 30, intvl = 10, cnt = 3;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

/* A TCP connection to @ai within @tv. @return the socket, or -errno */
static int
tcp_connect(gx_client_t *c, const struct addrinfo *ai, const struct timeval *tv)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int soerr = 0;
    socklen_t slen = sizeof(soerr);
    struct event *ev;

    if (fd < 0)
        return -errno;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        goto connected;
    if (errno != EINPROGRESS) {
        soerr = errno;
        goto fail;
    }
    ev = event_new(c->base, fd, EV_WRITE, connect_cb, c);
    if (ev == NULL || event_add(ev, tv) != 0) {
        if (ev != NULL)
            event_free(ev);
        soerr = ENOMEM;
        goto fail;
    }
    c->connect_state = 0;
    loop_until_state(c);
    event_free(ev);
    if (c->connect_state < 0) {
        soerr = ETIMEDOUT;
        goto fail;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) != 0)
        soerr = errno;
    if (soerr != 0)
        goto fail;
connected:
    tcp_options(fd);
    return fd;
fail:
    close(fd);
    return -soerr;
}

static void
handshake_cb(struct bufferevent *bev, short events, void *arg)
{
    gx_client_t *c = arg;

    c->connect_state = (events & BEV_EVENT_CONNECTED) ? 1 : -1;
}

/* Says why the handshake failed: the verification result, else OpenSSL's first error. */
static void
handshake_error(gx_client_t *c, SSL *ssl, const char *name, char *err, size_t errlen)
{
    long vr = SSL_get_verify_result(ssl);
    unsigned long e = tls_error(c->bev);
    char reason[200] = "connection closed during the handshake";

    if (vr != X509_V_OK)
        snprintf(reason, sizeof(reason), "certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
    else if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    open_fail(0, err, errlen, "TLS handshake with %s: %s", name, reason);
}

/* Wraps @fd in TLS and completes the handshake within @tv. */
static int
tls_start(gx_client_t *c, int fd, const char *name, const struct timeval *tv, char *err,
          size_t errlen)
{
    SSL *ssl = SSL_new(c->ssl_ctx);
    unsigned char ip[16];
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    int is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;

    if (ssl == NULL) {
        close(fd);
        return open_fail(GX_ENOMEM, err, errlen, "cannot create a TLS session");
    }
    X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(ssl), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1
              : (SSL_set_tlsext_host_name(ssl, name) != 1 || SSL_set1_host(ssl, name) != 1)) {
        SSL_free(ssl);
        close(fd);
        return open_fail(GX_EINVAL, err, errlen, "invalid server name %s", name);
    }
    c->bev = bufferevent_openssl_socket_new(c->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        SSL_free(ssl);
        close(fd);
        return open_fail(GX_ENOMEM, err, errlen, "cannot create a TLS buffer");
    }
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    bufferevent_setcb(c->bev, NULL, NULL, handshake_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->connect_state = 0;
    evtimer_add(c->timer, tv);
    loop_until_state(c);
    evtimer_del(c->timer);
    if (c->connect_state == -2)
        return open_fail(GX_EIO, err, errlen, "TLS handshake with %s: timed out", name);
    if (c->connect_state < 0) {
        handshake_error(c, ssl, name, err, errlen);
        return GX_EIO;
    }
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0)
        return open_fail(GX_EIO, err, errlen,
                         "TLS handshake with %s: the server did not "
                         "select ALPN h2",
                         name);
    return 0;
}

/* Resolves the address and connects to the first that answers, within the connect timeout. */
static int
transport_open(gx_client_t *c, const gx_client_opts_t *o, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    uint64_t deadline = gx_now_ms() + c->connect_timeout_ms, now;
    struct timeval tv;
    int fd = -ETIMEDOUT, rv;

    rv = getaddrinfo(c->host, c->port, &hints, &res);
    if (rv != 0)
        return open_fail(GX_EIO, err, errlen, "cannot resolve %s: %s", c->host, gai_strerror(rv));
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        now = gx_now_ms();
        if (now >= deadline)
            break;
        tv = ms_to_tv(deadline - now);
        fd = tcp_connect(c, ai, &tv);
        if (fd >= 0)
            break;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return open_fail(GX_EIO, err, errlen, "connect %s%s%s:%s: %s",
                         strchr(c->host, ':') ? "[" : "", c->host, strchr(c->host, ':') ? "]" : "",
                         c->port, strerror(-fd));
    if (c->tls) {
        now = gx_now_ms();
        tv = ms_to_tv(deadline > now ? deadline - now : 1);
        return tls_start(c, fd, o->server_name ? o->server_name : c->host, &tv, err, errlen);
    }
    c->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        close(fd);
        return open_fail(GX_ENOMEM, err, errlen, "cannot create a socket buffer");
    }
    return 0;
}

static int
session_open(gx_client_t *c)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, c->max_hdr},
    };
    int rv = GX_ENOMEM;

    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return GX_ENOMEM;
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cbs);
        return GX_ENOMEM;
    }
    nghttp2_session_callbacks_set_send_callback(cbs, send_cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers_cb);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close_cb);
    nghttp2_option_set_max_reserved_remote_streams(opt, 0);
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    if (nghttp2_session_client_new2(&c->session, cbs, c, opt) != 0)
        goto out;
    if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) ||
        nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, CONNECTION_WINDOW))
        goto out;
    rv = 0;
out:
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    return rv;
}

static int
opts_check(const gx_client_opts_t *o, char *err, size_t errlen)
{
    if (o == NULL || o->addr == NULL)
        return open_fail(GX_EINVAL, err, errlen, "no server address");
    if ((o->cert_file == NULL) != (o->key_file == NULL))
        return open_fail(GX_EINVAL, err, errlen, "a client certificate needs its key");
    if (!o->tls && (o->ca_file || o->cert_file || o->server_name))
        return open_fail(GX_EINVAL, err, errlen, "CA, certificate and server name need TLS");
    if (o->server_name != NULL && (o->server_name[0] == '\0' || strlen(o->server_name) > 253))
        return open_fail(GX_EINVAL, err, errlen, "invalid server name");
    if (o->user_agent != NULL && strlen(o->user_agent) >= 128)
        return open_fail(GX_EINVAL, err, errlen, "user agent longer than 127 bytes");
    return 0;
}

int
gx_client_open(const gx_client_opts_t *o, gx_client_t **out, char *err, size_t errlen)
{
    gx_client_t *c;
    int rv;

    *out = NULL;
    rv = opts_check(o, err, errlen);
    if (rv != 0)
        return rv;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return open_fail(GX_ENOMEM, err, errlen, "out of memory");
    c->tls = o->tls ? 1 : 0;
    c->connect_timeout_ms =
        o->connect_timeout_ms ? o->connect_timeout_ms : GX_CLIENT_CONNECT_TIMEOUT_MS;
    c->max_recv =
        o->max_recv_message_bytes ? o->max_recv_message_bytes : GX_CLIENT_MAX_RECV_MESSAGE_BYTES;
    c->max_hdr =
        o->max_header_list_bytes ? o->max_header_list_bytes : GX_CLIENT_MAX_HEADER_LIST_BYTES;
    snprintf(c->user_agent, sizeof(c->user_agent), "%s",
             o->user_agent ? o->user_agent : "galaxy-client/" PACKAGE_VERSION);
    if (addr_split(c, o->addr) != 0) {
        rv = open_fail(GX_EINVAL, err, errlen, "invalid address %s (HOST:PORT)", o->addr);
        goto fail;
    }
    snprintf(c->authority, sizeof(c->authority), "%s", o->server_name ? o->server_name : o->addr);
    c->base = event_base_new();
    c->timer = c->base ? evtimer_new(c->base, timer_cb, c) : NULL;
    if (c->timer == NULL) {
        rv = open_fail(GX_ENOMEM, err, errlen, "out of memory");
        goto fail;
    }
    rv = c->tls ? tls_ctx_new(c, o, err, errlen) : 0;
    if (rv == 0)
        rv = transport_open(c, o, err, errlen);
    if (rv != 0)
        goto fail;
    c->connect_state = 1;
    if (session_open(c) != 0) {
        rv = open_fail(GX_ENOMEM, err, errlen, "cannot create the HTTP/2 session");
        goto fail;
    }
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        read_cb(c->bev, c); /* what arrived with the end of the handshake */
    if (session_flush(c) != 0) {
        rv = open_fail(GX_EIO, err, errlen, "%s", c->broken_why);
        goto fail;
    }
    *out = c;
    return 0;

fail:
    gx_client_close(c);
    return rv;
}

void
gx_client_close(gx_client_t *c)
{
    if (c == NULL)
        return;
    if (c->session != NULL && !c->broken) {
        /* say goodbye if the socket takes it now; never wait for it */
        nghttp2_session_terminate_session(c->session, NGHTTP2_NO_ERROR);
        nghttp2_session_send(c->session);
        event_base_loop(c->base, EVLOOP_NONBLOCK);
    }
    nghttp2_session_del(c->session);
    if (c->bev != NULL)
        bufferevent_free(c->bev);
    if (c->timer != NULL)
        event_free(c->timer);
    if (c->base != NULL)
        event_base_free(c->base);
    SSL_CTX_free(c->ssl_ctx);
    free(c);
}

/* ------------------------------------------------------------------ requests */

static int
md_key_ok(const char *k)
{
    static const char *const reserved[] = {
        "te",         "content-type",     "user-agent",        "host",    "connection",
        "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", NULL};
    size_t len = strlen(k);

    if (len == 0 || len > 256 || strncmp(k, "grpc-", 5) == 0 ||
        strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != len)
        return 0;
    for (int i = 0; reserved[i] != NULL; i++)
        if (strcmp(k, reserved[i]) == 0)
            return 0;
    return 1;
}

static int
md_value_ok(const gx_client_md_t *m)
{
    size_t klen = strlen(m->key);

    if (m->len > MAX_MD_VALUE || (m->value == NULL && m->len > 0))
        return 0;
    if (klen > 4 && strcmp(m->key + klen - 4, "-bin") == 0)
        return 1;
    for (size_t i = 0; i < m->len; i++)
        if ((unsigned char)m->value[i] < 0x20 || (unsigned char)m->value[i] > 0x7e)
            return 0;
    return 1;
}

static void
nv_set(nghttp2_nv *nv, const char *name, const char *value, size_t vlen)
{
    nv->name = (uint8_t *)name;
    nv->namelen = strlen(name);
    nv->value = (uint8_t *)value;
    nv->valuelen = vlen;
    nv->flags = NGHTTP2_NV_FLAG_NONE;
}

/* "<n>m" or, past 8 digits, a coarser unit (grpc-timeout allows 8 digits). */
static void
timeout_format(uint32_t ms, char *out, size_t len)
{
    if (ms <= 99999999u)
        snprintf(out, len, "%um", ms);
    else
        snprintf(out, len, "%uS", ms / 1000);
}

/* Request metadata as nghttp2 pairs; -bin values base64-encoded into @bufs. */
static int
md_encode(const gx_client_md_t *md, size_t n_md, nghttp2_nv *nv, char **bufs, size_t max,
          gx_client_status_t *st)
{
    size_t total = 0, klen;

    for (size_t i = 0; i < n_md; i++) {
        if (md[i].key == NULL || !md_key_ok(md[i].key) || !md_value_ok(&md[i])) {
            status_set(st, GX_STATUS_INTERNAL, GX_CLIENT_ORIGIN_LOCAL,
                       "invalid request metadata %s", md[i].key ? md[i].key : "(null)");
            return GX_EINVAL;
        }
        klen = strlen(md[i].key);
        if (klen > 4 && strcmp(md[i].key + klen - 4, "-bin") == 0) {
            bufs[i] = malloc(gx_base64_encoded_len(md[i].len) + 1);
            if (bufs[i] == NULL) {
                status_set(st, GX_STATUS_RESOURCE_EXHAUSTED, GX_CLIENT_ORIGIN_LOCAL,
                           "out of memory");
                return GX_ENOMEM;
            }
            nv_set(&nv[i], md[i].key, bufs[i],
                   gx_base64_encode((const uint8_t *)md[i].value, md[i].len, bufs[i]));
        } else {
            nv_set(&nv[i], md[i].key, md[i].len ? md[i].value : "", md[i].len);
        }
        total += klen + nv[i].valuelen + 32;
    }
    if (total > max) {
        status_set(st, GX_STATUS_INTERNAL, GX_CLIENT_ORIGIN_LOCAL,
                   "request metadata larger than max (%u bytes)", (unsigned)max);
        return GX_EINVAL;
    }
    return 0;
}

/* Frames @msg onto call->out. */
static int
message_pack(client_call_t *call, const ProtobufCMessage *msg)
{
    size_t size = protobuf_c_message_get_packed_size(msg);
    struct evbuffer_iovec v;
    uint8_t *p;

    if (size > UINT32_MAX - GX_GRPC_PREFIX_LEN)
        return GX_E2BIG;
    if (evbuffer_reserve_space(call->out, size + GX_GRPC_PREFIX_LEN, &v, 1) != 1)
        return GX_ENOMEM;
    p = v.iov_base;
    gx_grpc_prefix_encode(p, 0, (uint32_t)size);
    protobuf_c_message_pack(msg, p + GX_GRPC_PREFIX_LEN);
    v.iov_len = size + GX_GRPC_PREFIX_LEN;
    return evbuffer_commit_space(call->out, &v, 1) == 0 ? 0 : GX_ENOMEM;
}

static int
method_ok(const char *m)
{
    size_t len = m != NULL ? strlen(m) : 0;

    if (len < 2 || len > MAX_METHOD_LEN || m[0] != '/')
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)m[i] <= 0x20 || (unsigned char)m[i] > 0x7e)
            return 0;
    return 1;
}

/* Submits the HEADERS and the request message. */
static int
request_submit(gx_client_t *c, client_call_t *call, const char *method, const gx_client_md_t *md,
               size_t n_md, uint32_t timeout_ms)
{
    nghttp2_nv fixed[9], *nv = NULL;
    char **bufs = NULL, tmo[16];
    nghttp2_data_provider dp = {.source.ptr = NULL, .read_callback = request_read_cb};
    size_t n = 0;
    int rv = GX_ENOMEM;

    nv_set(&fixed[n++], ":method", "POST", 4);
    nv_set(&fixed[n++], ":scheme", c->tls ? "https" : "http", c->tls ? 5 : 4);
    nv_set(&fixed[n++], ":path", method, strlen(method));
    nv_set(&fixed[n++], ":authority", c->authority, strlen(c->authority));
    nv_set(&fixed[n++], "te", "trailers", 8);
    nv_set(&fixed[n++], "content-type", "application/grpc", 16);
    nv_set(&fixed[n++], "user-agent", c->user_agent, strlen(c->user_agent));
    nv_set(&fixed[n++], "grpc-accept-encoding", GX_GRPC_ACCEPT_ENCODING,
           sizeof(GX_GRPC_ACCEPT_ENCODING) - 1);
    if (timeout_ms != 0) {
        timeout_format(timeout_ms, tmo, sizeof(tmo));
        nv_set(&fixed[n++], "grpc-timeout", tmo, strlen(tmo));
    }
    nv = calloc(n + n_md, sizeof(*nv));
    bufs = calloc(n_md + 1, sizeof(*bufs));
    if (nv == NULL || bufs == NULL) {
        status_set(call->st, GX_STATUS_RESOURCE_EXHAUSTED, GX_CLIENT_ORIGIN_LOCAL, "out of memory");
        goto out;
    }
    memcpy(nv, fixed, n * sizeof(*nv));
    rv = md_encode(md, n_md, nv + n, bufs, c->max_hdr, call->st);
    if (rv != 0)
        goto out;
    call->stream_id = nghttp2_submit_request(c->session, NULL, nv, n + n_md, &dp, NULL);
    if (call->stream_id < 0) {
        status_set(call->st, GX_STATUS_UNAVAILABLE, GX_CLIENT_ORIGIN_LOCAL,
                   "cannot start the call: %s", nghttp2_strerror(call->stream_id));
        rv = GX_EIO;
    }
out:
    for (size_t i = 0; bufs != NULL && i < n_md; i++)
        free(bufs[i]);
    free(bufs);
    free(nv);
    return rv;
}

/* ------------------------------------------------------------------ calls */

static void
calls_remove(gx_client_t *c, client_call_t *call)
{
    for (client_call_t **pp = &c->calls; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == call) {
            *pp = call->next;
            break;
        }
    }
    call->next = NULL;
}

/* Frees what call_begin() allocated; the call leaves the calls in progress. */
static void
call_release(gx_client_t *c, client_call_t *call)
{
    queued_msg_t *q;

    calls_remove(c, call);
    while ((q = call->q_head) != NULL) {
        call->q_head = q->next;
        protobuf_c_message_free_unpacked(q->msg, NULL);
        free(q);
    }
    call->q_tail = &call->q_head;
    call->q_len = 0;
    if (call->deadline != NULL)
        event_free(call->deadline);
    if (call->in != NULL)
        evbuffer_free(call->in);
    if (call->out != NULL)
        evbuffer_free(call->out);
    call->deadline = NULL;
    call->in = call->out = NULL;
}

/*
 * What every call kind shares: checks, buffers, the request HEADERS (with
 * @first, when not NULL, as its first message) and the deadline.  On success
 * the call is in progress; otherwise st says why and nothing is left to free.
 */
static int
call_begin(gx_client_t *c, client_call_t *call, const char *method, const ProtobufCMessage *first,
           const gx_client_md_t *md, size_t n_md, uint32_t timeout_ms)
{
    struct timeval tv = ms_to_tv(timeout_ms);
    int rv;

    memset(call->st, 0, sizeof(*call->st));
    call->c = c;
    call->q_tail = &call->q_head;
    if (!method_ok(method) || call->desc == NULL || (md == NULL && n_md > 0)) {
        status_set(call->st, GX_STATUS_INTERNAL, GX_CLIENT_ORIGIN_LOCAL, "invalid call arguments");
        return GX_EINVAL;
    }
    if (c->broken || !nghttp2_session_check_request_allowed(c->session)) {
        status_set(call->st, GX_STATUS_UNAVAILABLE, GX_CLIENT_ORIGIN_LOCAL, "%s",
                   c->broken ? c->broken_why : "the server takes no new calls (GOAWAY)");
        return GX_EIO;
    }
    call->in = evbuffer_new();
    call->out = evbuffer_new();
    if (timeout_ms != 0)
        call->deadline = evtimer_new(c->base, deadline_cb, call);
    rv = 0;
    if (call->in == NULL || call->out == NULL || (timeout_ms != 0 && call->deadline == NULL))
        rv = GX_ENOMEM;
    else if (first != NULL)
        rv = message_pack(call, first);
    if (rv != 0) {
        status_set(call->st, GX_STATUS_INTERNAL, GX_CLIENT_ORIGIN_LOCAL,
                   "cannot frame the request: %s", gx_strerror(rv));
        goto fail;
    }
    rv = request_submit(c, call, method, md, n_md, timeout_ms);
    if (rv != 0)
        goto fail;
    call->next = c->calls;
    c->calls = call;
    if (call->deadline != NULL)
        evtimer_add(call->deadline, &tv);
    return 0;

fail:
    call_release(c, call);
    return rv;
}

/* Runs the loop until the call has its status, then ends it. */
static void
call_wait(gx_client_t *c, client_call_t *call)
{
    session_flush(c);
    while (!call->done) {
        if (event_base_loop(c->base, EVLOOP_ONCE) != 0)
            call_fail(c, call, GX_STATUS_INTERNAL, "event loop failure");
    }
    call_release(c, call);
    if (!c->broken)
        session_flush(c); /* a reset queued by the call's end */
}

/* A unary or server-streaming call: its one message, END_STREAM, the wait. */
static int
call_run(gx_client_t *c, client_call_t *call, const char *method, const ProtobufCMessage *req,
         const gx_client_md_t *md, size_t n_md, uint32_t timeout_ms)
{
    int rv;

    if (req == NULL) {
        memset(call->st, 0, sizeof(*call->st));
        status_set(call->st, GX_STATUS_INTERNAL, GX_CLIENT_ORIGIN_LOCAL, "invalid call arguments");
        return GX_EINVAL;
    }
    call->half_closed = 1;
    rv = call_begin(c, call, method, req, md, n_md, timeout_ms);
    if (rv == 0)
        call_wait(c, call);
    return rv;
}

int
gx_client_unary(gx_client_t *c, const char *method, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp_out,
                const gx_client_md_t *md, size_t n_md, uint32_t timeout_ms, gx_client_status_t *st)
{
    client_call_t call = {.kind = KIND_UNARY, .desc = resp_desc, .st = st};
    int rv;

    *resp_out = NULL;
    rv = call_run(c, &call, method, req, md, n_md, timeout_ms);
    if (rv == 0 && st->code == GX_STATUS_OK && call.resp == NULL)
        status_set(st, GX_STATUS_INTERNAL, GX_CLIENT_ORIGIN_LOCAL,
                   "no response message to a unary call");
    if (rv != 0 || st->code != GX_STATUS_OK) {
        if (call.resp != NULL)
            protobuf_c_message_free_unpacked(call.resp, NULL);
        return rv != 0 ? rv : GX_EIO;
    }
    *resp_out = call.resp;
    return 0;
}

int
gx_client_server_stream(gx_client_t *c, const char *method, const ProtobufCMessage *req,
                        const ProtobufCMessageDescriptor *resp_desc, const gx_client_md_t *md,
                        size_t n_md, uint32_t timeout_ms, gx_client_msg_fn fn, void *arg,
                        gx_client_status_t *st)
{
    client_call_t call = {
        .kind = KIND_SERVER_STREAM, .desc = resp_desc, .fn = fn, .arg = arg, .st = st};
    int rv;

    if (fn == NULL) {
        memset(st, 0, sizeof(*st));
        status_set(st, GX_STATUS_INTERNAL, GX_CLIENT_ORIGIN_LOCAL, "no message callback");
        return GX_EINVAL;
    }
    rv = call_run(c, &call, method, req, md, n_md, timeout_ms);
    if (rv != 0)
        return rv;
    if (call.stopped)
        return GX_ECANCELED;
    return st->code == GX_STATUS_OK ? 0 : GX_EIO;
}

/* ------------------------------------------------------------------ bidirectional calls */

/* Hands nghttp2 what is new in call->out and lets the socket take it, without waiting. */
static void
bidi_push(gx_client_t *c, client_call_t *call)
{
    if (call->deferred && !call->done && !c->broken) {
        call->deferred = 0;
        nghttp2_session_resume_data(c->session, call->stream_id);
    }
    if (session_flush(c) == 0)
        event_base_loop(c->base, EVLOOP_NONBLOCK);
}

int
gx_client_bidi_open(gx_client_t *c, const char *method, const ProtobufCMessageDescriptor *resp_desc,
                    const gx_client_md_t *md, size_t n_md, uint32_t timeout_ms,
                    gx_client_bidi_t **out, gx_client_status_t *st)
{
    gx_client_bidi_t *b;
    int rv;

    *out = NULL;
    b = calloc(1, sizeof(*b));
    if (b == NULL) {
        memset(st, 0, sizeof(*st));
        status_set(st, GX_STATUS_RESOURCE_EXHAUSTED, GX_CLIENT_ORIGIN_LOCAL, "out of memory");
        return GX_ENOMEM;
    }
    b->call.kind = KIND_BIDI;
    b->call.desc = resp_desc;
    b->call.st = &b->st;
    rv = call_begin(c, &b->call, method, NULL, md, n_md, timeout_ms);
    *st = b->st;
    if (rv != 0) {
        free(b);
        return rv;
    }
    bidi_push(c, &b->call);
    *out = b;
    return 0;
}

int
gx_client_bidi_send(gx_client_bidi_t *b, const ProtobufCMessage *msg)
{
    client_call_t *call = &b->call;
    int rv;

    if (msg == NULL || call->half_closed)
        return GX_EINVAL;
    if (call->done)
        return GX_ECLOSED;
    if (evbuffer_get_length(call->out) > GX_CLIENT_BIDI_SEND_MAX)
        return GX_E2BIG;
    rv = message_pack(call, msg);
    if (rv != 0)
        return rv;
    bidi_push(call->c, call);
    return 0;
}

int
gx_client_bidi_close_send(gx_client_bidi_t *b)
{
    client_call_t *call = &b->call;

    if (call->half_closed)
        return 0;
    if (call->done)
        return GX_ECLOSED;
    call->half_closed = 1;
    call->deferred = 1; /* resume even when nghttp2 has not asked yet: harmless */
    bidi_push(call->c, call);
    return 0;
}

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
    *(int *)arg = 1;
}

/* One response from the queue, when there is one. */
static ProtobufCMessage *
bidi_pop(client_call_t *call)
{
    queued_msg_t *q = call->q_head;
    ProtobufCMessage *msg;

    if (q == NULL)
        return NULL;
    call->q_head = q->next;
    if (call->q_head == NULL)
        call->q_tail = &call->q_head;
    call->q_len--;
    msg = q->msg;
    free(q);
    return msg;
}

/* Runs the loop until a response, the call's end, @wait_ms or @wake_fd. */
static int
bidi_wait(client_call_t *call, uint32_t wait_ms, int wake_fd)
{
    gx_client_t *c = call->c;
    struct event *timer = NULL, *wake = NULL;
    struct timeval tv = ms_to_tv(wait_ms);
    int stop = 0, rv = 0;

    if (wait_ms != GX_CLIENT_WAIT_FOREVER) {
        timer = evtimer_new(c->base, wake_cb, &stop);
        if (timer == NULL || evtimer_add(timer, &tv) != 0)
            rv = GX_ENOMEM;
    }
    if (rv == 0 && wake_fd >= 0) {
        wake = event_new(c->base, wake_fd, EV_READ, wake_cb, &stop);
        if (wake == NULL || event_add(wake, NULL) != 0)
            rv = GX_ENOMEM;
    }
    session_flush(c);
    while (rv == 0 && !stop && !call->done && call->q_head == NULL) {
        if (event_base_loop(c->base, EVLOOP_ONCE) != 0)
            call_fail(c, call, GX_STATUS_INTERNAL, "event loop failure");
    }
    if (timer != NULL)
        event_free(timer);
    if (wake != NULL)
        event_free(wake);
    return rv;
}

int
gx_client_bidi_recv(gx_client_bidi_t *b, uint32_t wait_ms, int wake_fd, ProtobufCMessage **out)
{
    client_call_t *call = &b->call;
    int rv = 0;

    *out = bidi_pop(call);
    if (*out != NULL)
        return 0;
    if (!call->done) {
        if (wait_ms == 0 && session_flush(call->c) == 0)
            event_base_loop(call->c->base, EVLOOP_NONBLOCK);
        else if (wait_ms != 0)
            rv = bidi_wait(call, wait_ms, wake_fd);
    }
    *out = bidi_pop(call);
    if (*out != NULL)
        return 0;
    if (rv != 0)
        return rv;
    return call->done ? GX_ECLOSED : GX_ETIMEDOUT;
}

const gx_client_status_t *
gx_client_bidi_status(const gx_client_bidi_t *b)
{
    return &b->st;
}

void
gx_client_bidi_close(gx_client_bidi_t *b)
{
    gx_client_t *c;

    if (b == NULL)
        return;
    c = b->call.c;
    call_fail(c, &b->call, GX_STATUS_CANCELLED, "cancelled by the client");
    call_release(c, &b->call);
    if (!c->broken && session_flush(c) == 0)
        event_base_loop(c->base, EVLOOP_NONBLOCK); /* the reset, if the socket takes it now */
    free(b);
}
