/* SPDX-License-Identifier: MIT */
/*
 * The call API of include/galaxy/gx_module.h on the transport's side:
 * metadata in and out, queuing response messages, ending a call with its
 * status, timers and resumption.  Messages are packed straight into the
 * call's send buffer, which the stream's data provider drains; the status
 * goes out in trailers after the last byte (or alone, as Trailers-Only).
 */
#include "config.h"

#include "transport/gx_call.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "transport/gx_conn.h"
#include "transport/gx_grpc.h"
#include "util/gx_error.h"
#include "util/gx_utf8.h"

const char *
gx_call_method(const gx_call_t *call)
{
    return call->path != NULL ? call->path : "";
}

const char *
gx_call_peer(const gx_call_t *call)
{
    return call->conn != NULL ? call->conn->peer : "-";
}

unsigned
gx_call_worker(const gx_call_t *call)
{
    return call->worker;
}

int
gx_call_is_tls(const gx_call_t *call)
{
    return call->conn != NULL && call->conn->tls;
}

const char *
gx_call_tls_identity(const gx_call_t *call)
{
    return call->tls_identity;
}

const char *
gx_call_metadata(const gx_call_t *call, const char *key, size_t *len)
{
    /* the first byte before strcmp: most calls look for a key that is not there */
    for (const gx_md_t *md = call->md_in; md != NULL; md = md->next) {
        if (md->key[0] == key[0] && strcmp(md->key, key) == 0) {
            if (len != NULL)
                *len = md->len;
            return md->value;
        }
    }
    return NULL;
}

size_t
gx_call_metadata_count(const gx_call_t *call, const char *key)
{
    size_t n = 0;

    for (const gx_md_t *md = call->md_in; md != NULL; md = md->next)
        n += md->key[0] == key[0] && strcmp(md->key, key) == 0;
    return n;
}

static int
md_add(gx_call_t *call, gx_md_t **list, const char *key, const char *value, size_t len)
{
    size_t klen = strlen(key);
    gx_md_t *md, **tail;
    char *v;

    if (klen == 0 || klen > 256 || len > 8192)
        return GX_EINVAL;
    for (size_t i = 0; i < klen; i++) {
        char ch = key[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
              ch == '.'))
            return GX_EINVAL;
    }
    md = gx_arena_alloc(call->arena, sizeof(*md));
    if (md == NULL)
        return GX_ENOMEM;
    md->key = gx_arena_strndup(call->arena, key, klen);
    if (klen > 4 && strcmp(key + klen - 4, "-bin") == 0) {
        v = gx_arena_alloc(call->arena, gx_base64_encoded_len(len) + 1);
        if (v != NULL)
            md->len = gx_base64_encode((const uint8_t *)value, len, v);
    } else {
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)value[i] < 0x20 || (unsigned char)value[i] > 0x7e)
                return GX_EINVAL;
        v = gx_arena_strndup(call->arena, value, len);
        md->len = len;
    }
    if (md->key == NULL || v == NULL)
        return GX_ENOMEM;
    md->value = v;
    md->next = NULL;
    for (tail = list; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = md;
    return 0;
}

int
gx_call_header_add(gx_call_t *call, const char *key, const char *value, size_t len)
{
    if (call->headers_sent)
        return GX_EINVAL;
    return md_add(call, &call->md_hdr, key, value, len);
}

int
gx_call_trailer_add(gx_call_t *call, const char *key, const char *value, size_t len)
{
    if (call->finished)
        return GX_EINVAL;
    return md_add(call, &call->md_trl, key, value, len);
}

void *
gx_call_alloc(gx_call_t *call, size_t size)
{
    return gx_arena_alloc(call->arena, size);
}

/* ------------------------------------------------------------------ headers */

static void
nv_set(nghttp2_nv *nv, const char *name, size_t nlen, const char *value, size_t vlen)
{
    nv->name = (uint8_t *)name;
    nv->namelen = nlen;
    nv->value = (uint8_t *)value;
    nv->valuelen = vlen;
    nv->flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
}

#define NV_LIT(nv, n, v) nv_set((nv), (n), sizeof(n) - 1, (v), sizeof(v) - 1)

static size_t
md_count(const gx_md_t *md)
{
    size_t n = 0;

    for (; md != NULL; md = md->next)
        n++;
    return n;
}

static size_t
md_put(nghttp2_nv *nv, const gx_md_t *md)
{
    size_t n = 0;

    for (; md != NULL; md = md->next, n++)
        nv_set(&nv[n], md->key, strlen(md->key), md->value, md->len);
    return n;
}

/* grpc-status and grpc-message for the status the call ended with. */
static int
status_put(gx_call_t *call, nghttp2_nv *nv, size_t *n)
{
    static const char *const codes[GX_STATUS_MAX] = {
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16"};
    const char *num = codes[call->status < GX_STATUS_MAX ? call->status : GX_STATUS_UNKNOWN];
    char *msg;
    size_t mlen;

    nv_set(&nv[(*n)++], "grpc-status", 11, num, strlen(num));
    if (call->message == NULL || call->message[0] == '\0')
        return 0;
    mlen = strlen(call->message);
    msg = gx_arena_alloc(call->arena, mlen * 3 + 1);
    if (msg == NULL)
        return GX_ENOMEM;
    nv_set(&nv[(*n)++], "grpc-message", 12, msg, gx_grpc_percent_encode(call->message, mlen, msg));
    return 0;
}

int
gx__call_headers(gx_call_t *call, int trailers_only, nghttp2_nv **nva, size_t *nvlen)
{
    size_t cap = 5 + md_count(call->md_hdr) + (trailers_only ? md_count(call->md_trl) : 0);
    nghttp2_nv *nv = gx_arena_alloc(call->arena, cap * sizeof(*nv));
    size_t n = 0;
    int rv;

    if (nv == NULL)
        return GX_ENOMEM;
    switch (call->http_status) {
    case 405: NV_LIT(&nv[n++], ":status", "405"); break;
    case 415: NV_LIT(&nv[n++], ":status", "415"); break;
    default: NV_LIT(&nv[n++], ":status", "200"); break;
    }
    /*
     * No grpc-accept-encoding here: gRPC's compression rules ask for it on the
     * UNIMPLEMENTED answer to an encoding we lack (gx_conn.c adds it there),
     * and clients compress by their own settings, not by this header.  On
     * every answer it cost a fourth header field to encode here and decode
     * there, 2 % of a Heartbeat's instructions.
     */
    NV_LIT(&nv[n++], "content-type", "application/grpc");
    n += md_put(&nv[n], call->md_hdr);
    if (trailers_only) {
        rv = status_put(call, nv, &n);
        if (rv != 0)
            return rv;
        n += md_put(&nv[n], call->md_trl);
    }
    *nva = nv;
    *nvlen = n;
    return 0;
}

int
gx__call_trailers(gx_call_t *call, nghttp2_nv **nva, size_t *nvlen)
{
    nghttp2_nv *nv = gx_arena_alloc(call->arena, (2 + md_count(call->md_trl)) * sizeof(*nv));
    size_t n = 0;
    int rv;

    if (nv == NULL)
        return GX_ENOMEM;
    rv = status_put(call, nv, &n);
    if (rv != 0)
        return rv;
    n += md_put(&nv[n], call->md_trl);
    *nva = nv;
    *nvlen = n;
    return 0;
}

/* ------------------------------------------------------------------ sending */

/*
 * Sends one message of @p size bytes: @p msg packed, then the @p n byte
 * ranges of @p tail (gx__call_reply_packed()).  @return as gx_call_send()
 */
static int
send_message(gx_call_t *call, size_t size, const ProtobufCMessage *msg,
             const struct iovec *tail, size_t n)
{
    uint8_t *p;
    int rv;

    if (call->finished || call->cancelled || call->closed)
        return GX_ECLOSED;
    if (size > UINT32_MAX - GX_GRPC_PREFIX_LEN)
        return GX_E2BIG;
    rv = gx__call_out_room(call, size + GX_GRPC_PREFIX_LEN);
    if (rv != 0)
        return rv;
    p = gx_bq_reserve(&call->out, call->arena, size + GX_GRPC_PREFIX_LEN);
    if (p == NULL)
        return GX_ENOMEM;
    gx_grpc_prefix_encode(p, 0, (uint32_t)size);
    p += GX_GRPC_PREFIX_LEN;
    p += protobuf_c_message_pack(msg, p);
    for (size_t i = 0; i < n; p += tail[i].iov_len, i++)
        memcpy(p, tail[i].iov_base, tail[i].iov_len);
    gx_bq_commit(&call->out, size + GX_GRPC_PREFIX_LEN);
    gx__call_out_count(call);
    rv = gx__call_submit(call);
    if (rv != 0)
        return rv;
    if (gx_bq_len(&call->out) > call->conn->worker->srv->conf.limits.send_buffer_bytes) {
        call->want_writable = 1;
        return GX_AGAIN;
    }
    return 0;
}

int
gx_call_send(gx_call_t *call, const ProtobufCMessage *msg)
{
    return send_message(call, protobuf_c_message_get_packed_size(msg), msg, NULL, 0);
}

void
gx_call_finish(gx_call_t *call, gx_status_t status, const char *message)
{
    if (call->finished || call->closed)
        return;
    call->finished = 1;
    call->status = status;
    call->message = message != NULL ? gx_arena_strndup(call->arena, message, strlen(message))
                                    : NULL;
    if (call->message != NULL)
        gx_utf8_scrub(call->message); /* grpc-message is UTF-8, whatever a handler quoted */
    if (call->timer_ev != NULL)
        evtimer_del(call->timer_ev);
    if (gx__call_submit(call) != 0 && call->conn != NULL)
        nghttp2_submit_rst_stream(call->conn->session, NGHTTP2_FLAG_NONE, call->stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
}

/* Ends a unary reply after its message was sent (@p rv from gx_call_send()). */
static int
reply_end(gx_call_t *call, int rv)
{
    if (rv < 0)
        return gx_call_fail(call, gx_error_to_status(rv), "cannot send the response: %s",
                            gx_strerror(rv));
    gx_call_finish(call, GX_STATUS_OK, NULL);
    return GX_DONE;
}

int
gx_call_reply(gx_call_t *call, const ProtobufCMessage *msg)
{
    return reply_end(call, gx_call_send(call, msg));
}

int
gx__call_reply_packed(gx_call_t *call, const ProtobufCMessage *msg, uint32_t field,
                      const struct iovec *parts, size_t n)
{
    uint8_t head[20]; /* the field's key and length, varints */
    struct iovec tail[1 + GX__REPLY_PARTS] = {{head, 0}};
    size_t len = 0;

    if (n > GX__REPLY_PARTS)
        return reply_end(call, GX_EINVAL);
    for (size_t i = 0; i < n; i++) {
        tail[1 + i] = parts[i];
        len += parts[i].iov_len;
    }
    tail[0].iov_len = gx_grpc_varint_put(head, (uint64_t)field << 3 | 2); /* wire type: length */
    tail[0].iov_len += gx_grpc_varint_put(head + tail[0].iov_len, len);
    return reply_end(call, send_message(call, protobuf_c_message_get_packed_size(msg) +
                                                  tail[0].iov_len + len, msg, tail, 1 + n));
}

/* Drops a UTF-8 sequence that the cut at @len left unfinished. */
static void
utf8_cut(char *s, size_t len)
{
    size_t lead = len, need;
    unsigned char c;

    while (lead > 0 && ((unsigned char)s[lead - 1] & 0xc0) == 0x80)
        lead--;
    if (lead == 0)
        return;
    c = (unsigned char)s[lead - 1];
    need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    if (len - (lead - 1) < need)
        s[lead - 1] = '\0';
}

int
gx_call_fail(gx_call_t *call, gx_status_t status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(msg))
        utf8_cut(msg, sizeof(msg) - 1);
    gx_call_finish(call, status, msg);
    return GX_DONE;
}

gx_status_t
gx_call_status(const gx_call_t *call)
{
    return call->status;
}

int
gx_call_is_done(const gx_call_t *call)
{
    return call->finished || call->cancelled || call->closed;
}

/* ------------------------------------------------------------------ timers, resume */

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    gx_call_t *call = arg;
    gx_conn_t *c = call->conn;

    if (c == NULL || call->closed || call->timer_fn == NULL)
        return;
    gx__call_ref(call);
    gx__conn_io_begin(c);
    call->timer_fn(call, call->timer_arg);
    gx__conn_io_end(c);
    gx__call_unref(call);
}

int
gx_call_timer(gx_call_t *call, uint64_t usec, void (*fn)(gx_call_t *, void *), void *arg)
{
    struct timeval tv = {(time_t)(usec / 1000000), (suseconds_t)(usec % 1000000)};

    if (call->conn == NULL || call->closed || call->cancelled)
        return GX_ECLOSED;
    if (call->timer_ev == NULL) {
        call->timer_ev = evtimer_new(call->conn->worker->base, timer_cb, call);
        if (call->timer_ev == NULL)
            return GX_ENOMEM;
    }
    call->timer_fn = fn;
    call->timer_arg = arg;
    return evtimer_add(call->timer_ev, &tv) == 0 ? 0 : GX_ENOMEM;
}

void
gx_call_resume(gx_call_t *call)
{
    gx__worker_post_resume(call->wk, call);
}
