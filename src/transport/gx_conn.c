/* SPDX-License-Identifier: MIT */
/*
 * Connections: the glue between a socket and an nghttp2 server session, and
 * the stream side of gRPC calls.
 *
 * Bytes read are fed to nghttp2_session_mem_recv(); what nghttp2 wants to send
 * is queued until conn_output_bytes are, then nghttp2 is told WOULDBLOCK and
 * reading stops until the peer has taken some: a slow reader slows its own
 * connection and nothing else.  Request bytes are returned to the
 * flow-control window only as calls take them, so a parked call holds its
 * peer back instead of the server buffering.
 *
 * Cleartext connections read and write their socket here: one read event,
 * and a write event armed only while the socket is full; what nghttp2 made is
 * written at once.  (A bufferevent cost an ioctl per read, a copy each way
 * and evbuffer bookkeeping per response.)  TLS connections go through an
 * OpenSSL bufferevent.
 *
 * The connection enforces the limits against hostile peers: concurrent
 * streams, header list size, invalid frames, ping floods, timeouts for the TLS
 * handshake, the first request and idleness; nghttp2's own limits (Rapid Reset,
 * CONTINUATION, SETTINGS, outbound ACKs) are set on the session.
 *
 * Everything here runs on the connection's worker.
 */
#include "config.h"

#include "transport/gx_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
#include <openssl/err.h>

#include "transport/gx_grpc.h"
#include "util/gx_clock.h"
#include "util/gx_error.h"
#include "util/gx_log.h"

#define CALL_ARENA_SIZE 4096
/*
 * Bytes one cleartext read takes from the socket.  Small on purpose: the
 * answers to a read's requests go out before the next read, so a peer with
 * many streams in flight keeps a stream of requests and answers going.  One
 * 32 KiB read took 100 pipelined requests at once and answered them in one
 * burst: h2load 1x100 fell from 420k to 200k requests/s (as libevent's own
 * reads, 4 KiB keeps it).
 */
#define READ_SIZE 4096

static uint64_t next_conn_id;

static const gx_limits_t *
limits(const gx_conn_t *c)
{
    return &c->worker->srv->conf.limits;
}

static const gx_dispatch_t *
dispatch(const gx_conn_t *c)
{
    return &c->worker->srv->dispatch;
}

/* ------------------------------------------------------------------ I/O */

static int conn_send(gx_conn_t *c);
static void conn_destroy(gx_conn_t *c);

static void
io_begin(gx_conn_t *c)
{
    c->io_depth++;
}

/*
 * Leaves an I/O section; the outermost one sends what was queued inside and
 * frees a connection that ended meanwhile.  @return 1 when @c is gone.
 */
static int
io_end(gx_conn_t *c)
{
    if (--c->io_depth > 0)
        return 0;
    if (c->free_pending) {
        conn_destroy(c);
        return 1;
    }
    return c->want_send ? conn_send(c) : 0;
}

void
gx__conn_io_begin(gx_conn_t *c)
{
    io_begin(c);
}

int
gx__conn_io_end(gx_conn_t *c)
{
    return io_end(c);
}

void
gx__conn_schedule_send(gx_conn_t *c)
{
    c->want_send = 1;
    if (c->io_depth == 0)
        event_active(c->flush_ev, EV_WRITE, 0);
}

static void read_cb(struct bufferevent *bev, void *arg);

/* Bytes said to the peer that the socket has not taken yet. */
static size_t
out_len(gx_conn_t *c)
{
    return c->tls ? evbuffer_get_length(bufferevent_get_output(c->bev)) : gx_bq_len(&c->out);
}

static void
reading(gx_conn_t *c, int on)
{
    if (c->tls && on)
        bufferevent_enable(c->bev, EV_READ);
    else if (c->tls)
        bufferevent_disable(c->bev, EV_READ);
    else if (on)
        event_add(c->rev, NULL);
    else
        event_del(c->rev);
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
    gx_conn_t *c = arg;

    if (c->free_pending)
        conn_destroy(c);
    else if (what & EV_READ)
        read_cb(c->bev, c);
    else if (c->want_send)
        conn_send(c);
}

static void
timer_set(gx_conn_t *c, gx_conn_timer_t state, uint32_t ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    c->timer_state = state;
    if (state == GX_CT_NONE || ms == 0) {
        evtimer_del(c->timer_ev);
        return;
    }
    evtimer_add(c->timer_ev, &tv);
}

static void
conn_goaway(gx_conn_t *c, uint32_t error, const char *why)
{
    if (c->goaway_by_us)
        return;
    c->goaway_by_us = 1;
    nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(c->session), error,
                          (const uint8_t *)why, why ? strlen(why) : 0);
    gx__conn_schedule_send(c);
}

/*
 * The connection can go once everything said is flushed and either we decided
 * to close it, our GOAWAY has no streams left to wait for, or nghttp2 expects
 * nothing more from the peer.
 */
static int
conn_done(gx_conn_t *c)
{
    if (out_len(c) != 0 || nghttp2_session_want_write(c->session))
        return 0;
    if (c->closing || (c->goaway_by_us && c->n_streams == 0))
        return 1;
    return !nghttp2_session_want_read(c->session);
}

static void
deliver_writable(gx_conn_t *c)
{
    uint32_t low = limits(c)->send_buffer_bytes / 2;

    c->writable_pending = 0;
    for (gx_call_t *call = c->calls; call != NULL; call = call->next) {
        if (!call->want_writable || call->closed || call->cancelled)
            continue;
        if (gx_bq_len(&call->out) > low)
            continue;
        call->want_writable = 0;
        dispatch(c)->on_writable(call, dispatch(c)->arg);
    }
}

/*
 * Cleartext connections write what nghttp2 produced at once, and wait for the
 * socket only when it is full: their write event is armed only then.
 * @return 1 when bytes are left (or the connection failed: free_pending)
 */
static int
plain_flush(gx_conn_t *c)
{
    ssize_t n;

    while (gx_bq_len(&c->out) > 0) {
        n = send(c->fd, gx_bq_data(&c->out), gx_bq_len(&c->out), MSG_NOSIGNAL);
        if (n > 0) {
            gx_bq_drain(&c->out, (size_t)n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->write_armed)
                event_add(c->wev, NULL);
            c->write_armed = 1;
            return 1;
        } else {
            gx_log(GX_LOG_DEBUG, "connection closed conn=%llu peer=%s reason=\"%s\"",
                   (unsigned long long)c->id, c->peer, strerror(n < 0 ? errno : EPIPE));
            c->free_pending = 1;
            return 1;
        }
    }
    if (c->write_armed)
        event_del(c->wev); /* event_del takes the base's lock: not on every write */
    c->write_armed = 0;
    if (c->read_paused) {
        c->read_paused = 0;
        reading(c, 1);
    }
    return 0;
}

/* Lets nghttp2 write; hands drained send buffers back to their calls. @return 1 when @c is gone */
static int
conn_send(gx_conn_t *c)
{
    int rv;

    c->io_depth++;
    for (int round = 0; round < 16 && !c->free_pending; round++) {
        c->want_send = 0;
        rv = nghttp2_session_send(c->session);
        if (rv != 0) {
            if (rv == NGHTTP2_ERR_FLOODED)
                gx_stats_inc(H2_FLOOD);
            gx_log_remote(GX_LOG_INFO, "connection closed conn=%llu peer=%s reason=\"%s\"",
                          (unsigned long long)c->id, c->peer, nghttp2_strerror(rv));
            c->free_pending = 1;
            break;
        }
        if (c->writable_pending)
            deliver_writable(c);
        /* drained at once, and nghttp2 held back data while the buffer was full: go on */
        if (!c->tls && !c->free_pending && plain_flush(c) == 0 &&
            nghttp2_session_want_write(c->session))
            c->want_send = 1;
        if (!c->want_send)
            break;
    }
    c->io_depth--;
    if (c->free_pending || conn_done(c)) {
        conn_destroy(c);
        return 1;
    }
    if (c->want_send) {
        /*
         * Still more to say: go on after the loop has polled the sockets
         * (a zero timeout, not event_active, which would run again before
         * any read and let a fast reader's big stream starve its requests).
         */
        static const struct timeval now = {0, 0};
        event_add(c->flush_ev, &now);
    }
    return 0;
}

static ssize_t
send_cb(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *arg)
{
    gx_conn_t *c = arg;

    if (out_len(c) >= limits(c)->conn_output_bytes)
        return NGHTTP2_ERR_WOULDBLOCK; /* the write callback sends the rest */
    if (c->tls ? bufferevent_write(c->bev, data, len) != 0
               : gx_bq_add(&c->out, NULL, data, len) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return (ssize_t)len;
}

/* ------------------------------------------------------------------ calls */

/*
 * The call of stream @id.  A request's HEADERS, its header fields, DATA and
 * END_STREAM come in a row, so the last answer is kept: nghttp2's stream map
 * is looked up once per request instead of once per callback.  Stream ids are
 * never reused, and every change of a stream's call goes through stream_set().
 */
static gx_call_t *
stream_call(gx_conn_t *c, int32_t id)
{
    if (id != c->last_stream) {
        c->last_call = nghttp2_session_get_stream_user_data(c->session, id);
        c->last_stream = id;
    }
    return c->last_call;
}

static void
stream_set(gx_conn_t *c, int32_t id, gx_call_t *call)
{
    nghttp2_session_set_stream_user_data(c->session, id, call);
    c->last_stream = id;
    c->last_call = call;
}

void
gx__call_ref(gx_call_t *call)
{
    call->refs++;
}

static void
call_free(gx_call_t *call)
{
    if (call->deadline_ev != NULL)
        event_free(call->deadline_ev);
    if (call->timer_ev != NULL)
        event_free(call->timer_ev);
    gx_bq_free(&call->in);
    gx_bq_free(&call->out);
    gx_arena_free(call->arena);
}

void
gx__call_unref(gx_call_t *call)
{
    if (--call->refs == 0)
        call_free(call);
}

uint32_t
gx__call_max_recv(const gx_call_t *call)
{
    return call->conn != NULL ? limits(call->conn)->max_recv_message_bytes : 0;
}

static gx_call_t *
call_new(gx_conn_t *c, int32_t stream_id)
{
    gx_arena_t *arena = gx_arena_new(CALL_ARENA_SIZE);
    gx_call_t *call;

    if (arena == NULL)
        return NULL;
    call = gx_arena_calloc(arena, sizeof(*call));
    if (call == NULL)
        goto fail;
    call->arena = arena;
    call->conn = c;
    call->wk = c->worker;
    call->stream_id = stream_id;
    call->worker = c->worker->id;
    call->refs = 1;
    call->start_ns = gx_event_ns(); /* when its headers were read */
    if (c->tls_identity != NULL) {
        call->tls_identity = gx_arena_strndup(arena, c->tls_identity, strlen(c->tls_identity));
        if (call->tls_identity == NULL)
            goto fail;
    }
    call->next = c->calls;
    if (c->calls != NULL)
        c->calls->prev = call;
    c->calls = call;
    c->n_streams++;
    __atomic_store_n(&c->worker->n_calls, c->worker->n_calls + 1, __ATOMIC_RELAXED);
    return call;

fail:
    gx_arena_free(arena);
    return NULL;
}

static void
call_unlink(gx_call_t *call)
{
    gx_conn_t *c = call->conn;

    if (call->prev != NULL)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next != NULL)
        call->next->prev = call->prev;
    call->next = call->prev = NULL;
    c->n_streams--;
    __atomic_store_n(&c->worker->n_calls, c->worker->n_calls - 1, __ATOMIC_RELAXED);
}

static void
call_cancel(gx_call_t *call, gx_status_t status)
{
    gx_conn_t *c = call->conn;

    if (call->cancelled)
        return;
    call->cancelled = 1;
    if (!call->finished) {
        call->status = status;
        call->finished = 1;
    }
    if (call->timer_ev != NULL)
        evtimer_del(call->timer_ev);
    if (call->dispatched)
        dispatch(c)->on_cancel(call, dispatch(c)->arg);
}

static void held_set(gx_call_t *call, size_t held);

/* The stream is gone: cancel what still runs, LOG, drop the stream's reference. */
static void
call_close(gx_call_t *call)
{
    gx_conn_t *c = call->conn;

    if (!call->finished)
        call_cancel(call, GX_STATUS_CANCELLED);
    held_set(call, 0);
    gx_bq_free(&call->in); /* a handler may keep the call a while: not its request bytes */
    gx_bq_free(&call->out); /* nor answers nobody will take */
    gx__call_out_count(call);
    if (call->unconsumed > 0)
        nghttp2_session_consume_connection(c->session, call->unconsumed);
    call->unconsumed = 0;
    call->closed = 1;
    if (call->deadline_ev != NULL)
        evtimer_del(call->deadline_ev);
    if (call->timer_ev != NULL)
        evtimer_del(call->timer_ev);
    call_unlink(call);
    dispatch(c)->on_close(call, dispatch(c)->arg);
    call->conn = NULL;
    gx__call_unref(call);
    if (c->n_streams == 0 && c->got_request && !c->goaway_by_us) {
        c->idle_since_ms = gx_event_ms();
        if (c->timer_state != GX_CT_IDLE)
            timer_set(c, GX_CT_IDLE, limits(c)->idle_timeout_ms);
    }
}

/* Finishes a call the transport refuses; gRPC status in trailers-only headers. */
static void consume(gx_call_t *call);

static void
call_reject(gx_call_t *call, gx_status_t status, const char *msg)
{
    call->rejected = 1;
    consume(call);
    gx_call_finish(call, status, msg);
}

/* ------------------------------------------------------------------ receive */

static void
consume(gx_call_t *call)
{
    if (call->unconsumed == 0 || call->conn == NULL)
        return;
    nghttp2_session_consume(call->conn->session, call->stream_id, call->unconsumed);
    call->unconsumed = 0;
}

/* Delivers one message: its pre->length bytes at @data. */
static void
deliver_message(gx_call_t *call, const gx_grpc_prefix_t *pre, uint8_t *data)
{
    gx_conn_t *c = call->conn;
    uint32_t max = limits(c)->max_recv_message_bytes;
    uint8_t *plain = NULL;
    size_t plen = pre->length;
    int rv;

    if (pre->compressed) {
        if (!call->gzip_in) {
            gx_stats_inc(GRPC_BAD_FRAME);
            call_reject(call, GX_STATUS_INTERNAL,
                        "compressed message without a grpc-encoding");
            return;
        }
        rv = gx_grpc_gunzip(data, pre->length, max, &plain, &plen);
        if (rv != 0) {
            gx_stats_inc(GRPC_BAD_FRAME);
            if (rv == GX_E2BIG)
                call_reject(call, GX_STATUS_RESOURCE_EXHAUSTED,
                            "decompressed message exceeds max_recv_message_bytes");
            else
                call_reject(call, GX_STATUS_INTERNAL, "message does not decompress as gzip");
            return;
        }
        data = plain;
    }
    dispatch(c)->on_message(call, data != NULL ? data : (uint8_t *)"", plen, dispatch(c)->arg);
    free(plain);
}

/*
 * An unfinished message waits in call->in for its last byte, and its bytes go
 * back to the peer's windows meanwhile, so that a message larger than the
 * stream window can come at all.  Flow control then no longer bounds them, so
 * what they hold is bounded here, per connection (conn_recv_buffer_bytes) and
 * for all connections together (server_recv_buffer_bytes).  A complete message
 * is handed up in the read that finishes it and never counts.
 */
static void
held_set(gx_call_t *call, size_t held)
{
    gx_conn_t *c = call->conn;

    if (held == call->held)
        return;
    /* modulo 2^64: a decrease too */
    c->held += held - call->held;
    __atomic_add_fetch(&c->worker->srv->recv_held, held - call->held, __ATOMIC_RELAXED);
    call->held = held;
}

/* Counts what call->in holds; the call that goes past a bound fails. */
static void
held_check(gx_call_t *call)
{
    gx_conn_t *c = call->conn;
    const gx_limits_t *l = limits(c);
    size_t was = call->held, total;
    char msg[160];

    held_set(call, call->rejected ? 0 : gx_bq_len(&call->in));
    if (call->held <= was)
        return;
    total = __atomic_load_n(&c->worker->srv->recv_held, __ATOMIC_RELAXED);
    if (c->held <= l->conn_recv_buffer_bytes && total <= l->server_recv_buffer_bytes)
        return;
    gx_stats_inc(GRPC_RECV_BUFFER_FULL);
    if (c->held > l->conn_recv_buffer_bytes)
        snprintf(msg, sizeof(msg),
                 "unfinished request messages on this connection exceed %" PRIu32
                 " bytes (conn_recv_buffer_bytes)", l->conn_recv_buffer_bytes);
    else
        snprintf(msg, sizeof(msg),
                 "unfinished request messages on the server exceed %" PRIu32
                 " bytes (server_recv_buffer_bytes)", l->server_recv_buffer_bytes);
    gx_log_remote(GX_LOG_WARN, "call failed conn=%llu peer=%s stream=%d held=%zu reason=\"%s\"",
                  (unsigned long long)c->id, c->peer, call->stream_id, call->held, msg);
    held_set(call, 0);
    gx_bq_free(&call->in);
    call_reject(call, GX_STATUS_RESOURCE_EXHAUSTED, msg);
}

static void recv_deliver(gx_call_t *call);

/* Delivers what call->in completes, then counts what it still holds. */
static void
recv_flush(gx_call_t *call)
{
    recv_deliver(call);
    if (call->conn != NULL && !call->closed)
        held_check(call);
}

/* Parses and delivers the complete messages in call->in while the call takes them. */
static void
recv_deliver(gx_call_t *call)
{
    gx_grpc_prefix_t pre;
    uint32_t max;

    while (!call->recv_paused && !call->rejected && !call->cancelled && call->conn != NULL) {
        max = limits(call->conn)->max_recv_message_bytes;
        consume(call);
        if (gx_bq_len(&call->in) < GX_GRPC_PREFIX_LEN)
            break;
        if (gx_grpc_prefix_decode(gx_bq_data(&call->in), &pre) != 0) {
            gx_stats_inc(GRPC_BAD_FRAME);
            call_reject(call, GX_STATUS_INTERNAL, "invalid message flag byte");
            return;
        }
        if (pre.length > max) {
            char msg[128];
            gx_stats_inc(GRPC_MESSAGE_TOO_LARGE);
            snprintf(msg, sizeof(msg), "message of %u bytes exceeds the limit of %u bytes",
                     pre.length, max);
            call_reject(call, GX_STATUS_RESOURCE_EXHAUSTED, msg);
            return;
        }
        if (gx_bq_len(&call->in) < GX_GRPC_PREFIX_LEN + (size_t)pre.length)
            break;
        gx__call_ref(call);
        deliver_message(call, &pre, gx_bq_data(&call->in) + GX_GRPC_PREFIX_LEN);
        gx_bq_drain(&call->in, GX_GRPC_PREFIX_LEN + (size_t)pre.length);
        gx__call_unref(call);
    }
    if (call->recv_paused || call->rejected || call->cancelled || call->conn == NULL)
        return;
    if (call->half_close_pending) {
        call->half_close_pending = 0;
        if (gx_bq_len(&call->in) != 0) {
            gx_stats_inc(GRPC_BAD_FRAME);
            call_reject(call, GX_STATUS_INTERNAL, "truncated message at end of stream");
            return;
        }
        dispatch(call->conn)->on_half_close(call, dispatch(call->conn)->arg);
    }
}

void
gx__call_recv_pause(gx_call_t *call, int paused)
{
    call->recv_paused = paused ? 1 : 0;
    if (!paused && call->conn != NULL && !call->closed) {
        recv_flush(call);
        if (call->conn != NULL)
            gx__conn_schedule_send(call->conn);
    }
}

/* ------------------------------------------------------------------ request headers */

static int
name_is(const uint8_t *name, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(name, lit, len) == 0;
}

static int
keep_metadata(gx_call_t *call, const uint8_t *name, size_t nlen, const uint8_t *value,
              size_t vlen)
{
    int bin = nlen > 4 && memcmp(name + nlen - 4, "-bin", 4) == 0;
    /* the entry, its key and its value in one piece of call memory */
    gx_md_t *md = gx_arena_alloc(call->arena, sizeof(*md) + nlen + 1 +
                                                  (bin ? vlen * 3 / 4 + 4 : vlen + 1));
    char *key, *v;
    long n = (long)vlen;

    if (md == NULL)
        return GX_ENOMEM;
    key = (char *)(md + 1);
    memcpy(key, name, nlen);
    key[nlen] = '\0';
    v = key + nlen + 1;
    if (bin)
        n = gx_base64_decode((const char *)value, vlen, (uint8_t *)v);
    else
        memcpy(v, value, vlen);
    if (n < 0)
        return GX_EINVAL;
    v[n] = '\0';
    md->key = key;
    md->value = v;
    md->len = (size_t)n;
    md->next = NULL;
    if (call->md_in_tail == NULL)
        call->md_in_tail = &call->md_in;
    *call->md_in_tail = md; /* in arrival order: the first value is the first sent */
    call->md_in_tail = &md->next;
    return 0;
}

static void
header_check(gx_call_t *call, int flag, int ok)
{
    call->hdr_seen |= (uint8_t)flag;
    if (!ok)
        call->hdr_bad |= (uint8_t)flag;
}

static int
on_header_cb(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t nlen,
             const uint8_t *value, size_t vlen, uint8_t flags, void *arg)
{
    gx_conn_t *c = arg;
    gx_call_t *call = stream_call(c, frame->hd.stream_id);
    uint64_t us = 0;

    if (call == NULL || frame->hd.type != NGHTTP2_HEADERS || call->dispatched)
        return 0;
    call->header_bytes += nlen + vlen + 32;
    if (call->header_bytes > limits(c)->max_header_list_bytes) {
        gx_stats_inc(H2_HEADER_LIST_TOO_LARGE);
        gx_log_remote(GX_LOG_INFO, "stream reset conn=%llu peer=%s stream=%d "
               "reason=\"header list over max_header_list_bytes\"",
               (unsigned long long)c->id, c->peer, frame->hd.stream_id);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (name_is(name, nlen, ":method")) {
        header_check(call, GX__HDR_POST, name_is(value, vlen, "POST"));
    } else if (name_is(name, nlen, ":path")) {
        call->path = gx_arena_strndup(call->arena, (const char *)value, vlen);
        header_check(call, GX__HDR_PATH, call->path != NULL && vlen > 1 && value[0] == '/');
    } else if (name_is(name, nlen, "content-type")) {
        header_check(call, GX__HDR_CTYPE, gx_grpc_content_type_ok((const char *)value, vlen));
    } else if (name_is(name, nlen, "te")) {
        header_check(call, GX__HDR_TE, name_is(value, vlen, "trailers"));
    } else if (name_is(name, nlen, "grpc-timeout")) {
        header_check(call, GX__HDR_TIMEOUT,
                     gx_grpc_timeout_parse((const char *)value, vlen, &us) == 0);
        call->timeout_us = us;
    } else if (name_is(name, nlen, "grpc-encoding")) {
        gx_grpc_enc_t enc = gx_grpc_encoding_parse((const char *)value, vlen);
        header_check(call, GX__HDR_ENCODING, enc != GX_GRPC_ENC_UNKNOWN);
        call->gzip_in = enc == GX_GRPC_ENC_GZIP;
        /* handlers may ask how the request was encoded */
        if (keep_metadata(call, name, nlen, value, vlen) == GX_ENOMEM)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    } else if (nlen > 0 && name[0] != ':') {
        if (keep_metadata(call, name, nlen, value, vlen) == GX_ENOMEM)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
}

static const nghttp2_extpri fair_extpri = {NGHTTP2_EXTPRI_DEFAULT_URGENCY, 1};

static int
on_begin_headers_cb(nghttp2_session *s, const nghttp2_frame *frame, void *arg)
{
    gx_conn_t *c = arg;
    gx_call_t *call;

    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (c->n_streams >= limits(c)->max_concurrent_streams) {
        gx_stats_inc(H2_STREAMS_REFUSED);
        gx_log_remote(GX_LOG_INFO, "stream refused conn=%llu peer=%s stream=%d "
                      "reason=\"over max_concurrent_streams\" limit=%u",
                      (unsigned long long)c->id, c->peer, frame->hd.stream_id,
                      limits(c)->max_concurrent_streams);
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    if (c->worker->n_calls >= c->worker->max_calls) {
        /* unprocessed: a gRPC client may retry it, here or elsewhere */
        gx_stats_inc(CALLS_REFUSED);
        gx_log_remote(GX_LOG_WARN, "stream refused conn=%llu peer=%s stream=%d "
                      "reason=\"over max_calls\" limit=%u worker_share=%u",
                      (unsigned long long)c->id, c->peer, frame->hd.stream_id,
                      limits(c)->max_calls, c->worker->max_calls);
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    call = call_new(c, frame->hd.stream_id);
    if (call == NULL) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
        return 0;
    }
    stream_set(c, frame->hd.stream_id, call);
    /*
     * RFC 9218 serves streams of one urgency one after another unless they
     * are incremental: every stream is, so that a big response does not hold
     * up the small ones of the same connection (they take turns, as equal
     * weights did in the RFC 7540 tree).  Clients' priority signals are
     * ignored: gRPC has none, and the server shares one connection fairly.
     */
    (void)nghttp2_session_change_extpri_stream_priority(s, frame->hd.stream_id, &fair_extpri, 1);
    /*
     * The idle timer stays armed while streams come and go (an evtimer
     * add and delete per request cost 2 % at one request per connection):
     * when it fires it looks at the streams and the time the last one
     * closed, and waits again if the connection was not idle that long.
     */
    if (!c->got_request)
        timer_set(c, GX_CT_NONE, 0);
    c->got_request = 1;
    return 0;
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    gx_call_t *call = arg;
    gx_conn_t *c = call->conn;

    if (c == NULL || call->finished)
        return;
    gx_stats_inc(GRPC_DEADLINE_EXCEEDED);
    io_begin(c);
    gx__call_ref(call);
    /* what was not sent is moot now; the status goes out at once */
    gx_bq_drain(&call->out, gx_bq_len(&call->out));
    gx__call_out_count(call);
    gx_call_finish(call, GX_STATUS_DEADLINE_EXCEEDED, "deadline exceeded");
    call_cancel(call, GX_STATUS_DEADLINE_EXCEEDED);
    if (call->headers_sent &&
        nghttp2_session_get_stream_remote_window_size(c->session, call->stream_id) <= 0)
        /* trailers would wait for a window the peer does not open: end the stream */
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, call->stream_id,
                                  NGHTTP2_CANCEL);
    gx__call_unref(call);
    io_end(c);
}

/* Request headers are complete: check them as gRPC, then hand the call up. */
static void
call_start(gx_conn_t *c, gx_call_t *call)
{
    uint8_t missing = (uint8_t)((GX__HDR_POST | GX__HDR_CTYPE | GX__HDR_TE | GX__HDR_PATH) &
                                ~call->hdr_seen);
    uint8_t bad = call->hdr_bad | missing;

    if (call->path == NULL)
        call->path = "";
    if (bad & (GX__HDR_CTYPE | GX__HDR_POST)) {
        gx_stats_inc(GRPC_BAD_CONTENT_TYPE);
        call->http_status = bad & GX__HDR_POST ? 405 : 415;
        call_reject(call, GX_STATUS_INTERNAL,
                    bad & GX__HDR_POST ? "method must be POST"
                                       : "content-type must be application/grpc");
        return;
    }
    if (bad & (GX__HDR_PATH | GX__HDR_TE | GX__HDR_TIMEOUT)) {
        gx_stats_inc(GRPC_BAD_REQUEST);
        call_reject(call, bad & GX__HDR_PATH ? GX_STATUS_UNIMPLEMENTED : GX_STATUS_INTERNAL,
                    bad & GX__HDR_PATH  ? "malformed :path"
                    : bad & GX__HDR_TE ? "te: trailers is required"
                                       : "malformed grpc-timeout");
        return;
    }
    if (bad & GX__HDR_ENCODING) {
        gx_stats_inc(GRPC_BAD_ENCODING);
        gx_call_header_add(call, "grpc-accept-encoding", GX_GRPC_ACCEPT_ENCODING,
                           sizeof(GX_GRPC_ACCEPT_ENCODING) - 1);
        call_reject(call, GX_STATUS_UNIMPLEMENTED, "unsupported grpc-encoding");
        return;
    }
    if (__atomic_load_n(&c->worker->srv->draining, __ATOMIC_ACQUIRE)) {
        gx_stats_inc(GRPC_REFUSED_DRAINING);
        call_reject(call, GX_STATUS_UNAVAILABLE, "server is shutting down");
        return;
    }
    if (call->hdr_seen & GX__HDR_TIMEOUT) {
        /* a zero timeout has already expired: the timer fires at once */
        struct timeval tv = {(time_t)(call->timeout_us / 1000000),
                             (suseconds_t)(call->timeout_us % 1000000)};
        call->deadline_ev = evtimer_new(c->worker->base, deadline_cb, call);
        if (call->deadline_ev == NULL) {
            call_reject(call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
            return;
        }
        evtimer_add(call->deadline_ev, &tv);
    }
    call->dispatched = 1;
    dispatch(c)->on_call(call, dispatch(c)->arg);
}

/*
 * A call's input is parsed and handed up once nghttp2 has taken the whole
 * read, not from inside its callbacks: nghttp2 then parses all the frames
 * of a read in one go and the handlers run one after the other, where the
 * two used to take turns for every request.  In callgrind's cache model
 * that took a heartbeat at 64 x 16 from 155 instruction-cache misses to 124
 * (a bare nghttp2 server: 58); the CPU it saves is about 2 %.
 */
static void
flush_later(gx_conn_t *c, gx_call_t *call)
{
    if (call->flush_queued)
        return;
    gx__call_ref(call);
    call->flush_queued = 1;
    call->flush_next = NULL;
    if (c->flush_head == NULL)
        c->flush_tail = &c->flush_head;
    *c->flush_tail = call;
    c->flush_tail = &call->flush_next;
}

/* after nghttp2_session_mem_recv(): the queued calls' input, in arrival order */
static void
flush_run(gx_conn_t *c)
{
    gx_call_t *call;

    while ((call = c->flush_head) != NULL) {
        c->flush_head = call->flush_next;
        call->flush_queued = 0;
        if (!c->free_pending && !call->closed)
            recv_flush(call);
        gx__call_unref(call);
    }
}

static void
call_half_close(gx_call_t *call)
{
    call->remote_closed = 1;
    if (!call->dispatched || call->rejected || call->cancelled)
        return;
    call->half_close_pending = 1;
    flush_later(call->conn, call);
}

static int
on_data_chunk_cb(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data,
                 size_t len, void *arg)
{
    gx_call_t *call = stream_call(arg, stream_id);

    if (call == NULL || call->rejected || call->finished) {
        /* not ours to keep: give the window back at once */
        nghttp2_session_consume(s, stream_id, len);
        return 0;
    }
    if (gx_bq_add(&call->in, call->arena, data, len) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    call->unconsumed += len;
    if (call->dispatched)
        flush_later(arg, call);
    return 0;
}

static void
on_ping(gx_conn_t *c)
{
    uint64_t now = gx_now_ns();
    uint64_t min = (uint64_t)limits(c)->ping_min_interval_ms * 1000000u;

    if (c->last_ping_ns != 0 && now - c->last_ping_ns < min)
        c->ping_strikes++;
    c->last_ping_ns = now;
    if (c->ping_strikes > limits(c)->ping_max_strikes && !c->goaway_by_us) {
        gx_stats_inc(H2_PING_FLOOD);
        gx_log_remote(GX_LOG_INFO, "connection ended conn=%llu peer=%s reason=\"too many pings\"",
               (unsigned long long)c->id, c->peer);
        conn_goaway(c, NGHTTP2_ENHANCE_YOUR_CALM, "too_many_pings");
        c->closing = 1;
    }
}

static int
on_frame_recv_cb(nghttp2_session *s, const nghttp2_frame *frame, void *arg)
{
    gx_conn_t *c = arg;
    gx_call_t *call = stream_call(c, frame->hd.stream_id);

    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (call == NULL)
            break;
        if (!call->dispatched && !call->finished)
            call_start(c, call);
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
            call_half_close(call);
        break;
    case NGHTTP2_DATA:
        if (call != NULL && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            call_half_close(call);
        break;
    case NGHTTP2_PING:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK))
            on_ping(c);
        break;
    case NGHTTP2_RST_STREAM:
        c->rst_recv++;
        break;
    default:
        break;
    }
    return 0;
}

static int
on_invalid_frame_cb(nghttp2_session *s, const nghttp2_frame *frame, int err, void *arg)
{
    gx_conn_t *c = arg;

    if (err == NGHTTP2_ERR_REFUSED_STREAM) {
        /* nghttp2 enforces our SETTINGS_MAX_CONCURRENT_STREAMS itself */
        gx_stats_inc(H2_STREAMS_REFUSED);
        gx_log_remote(GX_LOG_INFO, "stream refused conn=%llu peer=%s stream=%d "
                      "reason=\"over max_concurrent_streams\" limit=%u",
                      (unsigned long long)c->id, c->peer, frame->hd.stream_id,
                      limits(c)->max_concurrent_streams);
        return 0;
    }
    gx_stats_inc(H2_INVALID_FRAMES);
    if (++c->invalid_frames > limits(c)->max_invalid_frames && !c->goaway_by_us) {
        gx_stats_inc(H2_INVALID_FRAMES_GOAWAY);
        gx_log_remote(GX_LOG_INFO, "connection ended conn=%llu peer=%s reason=\"too many invalid "
               "frames\" last_error=\"%s\"", (unsigned long long)c->id, c->peer,
               nghttp2_strerror(err));
        conn_goaway(c, NGHTTP2_ENHANCE_YOUR_CALM, "too many invalid frames");
        c->closing = 1;
    }
    return 0;
}

static int
on_frame_send_cb(nghttp2_session *s, const nghttp2_frame *frame, void *arg)
{
    gx_conn_t *c = arg;
    gx_call_t *call;

    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
        c->ping_strikes = 0;
        if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            break;
        /* we are done; a peer still sending is told to stop (PROTOCOL-HTTP2.md) */
        call = stream_call(c, frame->hd.stream_id);
        if (call != NULL && !call->remote_closed)
            nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                      NGHTTP2_NO_ERROR);
        break;
    case NGHTTP2_GOAWAY:
        if (!c->goaway_by_us) {
            /* nghttp2 ended the session itself: a protocol error or one of its limits */
            if (c->rst_recv > limits(c)->stream_reset_burst)
                gx_stats_inc(H2_RAPID_RESET);
            else
                gx_stats_inc(H2_PROTOCOL_ERROR);
            gx_log_remote(GX_LOG_INFO, "connection ended conn=%llu peer=%s reason=\"%s\" resets=%u",
                   (unsigned long long)c->id, c->peer,
                   nghttp2_http2_strerror(frame->goaway.error_code), c->rst_recv);
            c->goaway_by_us = 1;
            c->closing = 1;
        }
        break;
    default:
        break;
    }
    return 0;
}

static int
on_stream_close_cb(nghttp2_session *s, int32_t stream_id, uint32_t error, void *arg)
{
    gx_conn_t *c = arg;
    gx_call_t *call = stream_call(c, stream_id);

    if (call == NULL)
        return 0;
    if (error != NGHTTP2_NO_ERROR && !call->finished)
        gx_stats_inc(GRPC_PEER_CANCELLED);
    stream_set(c, stream_id, NULL);
    call_close(call);
    return 0;
}

/* ------------------------------------------------------------------ response */

/*
 * Answers wait in call->out until the client's windows let nghttp2 take them.
 * A client that asks and never reads would have the server keep them all (a
 * 30-byte ListNodes asks for up to 1,000 nodes): what waits is bounded per
 * connection (conn_send_queue_bytes) and for all of them together
 * (server_send_queue_bytes).  A connection with nothing waiting may always
 * queue one answer, however large, so that every response can be sent.
 */
int
gx__call_out_room(gx_call_t *call, size_t bytes)
{
    gx_conn_t *c = call->conn;
    const gx_limits_t *l = limits(c);
    int rv = 0;

    if (c->out_held > 0 && c->out_held + bytes > l->conn_send_queue_bytes)
        rv = GX_EQUEUE_CONN;
    else if (gx__server_send_held(c->worker) + (int64_t)bytes >
             (int64_t)l->server_send_queue_bytes)
        rv = GX_EQUEUE_SERVER;
    if (rv == 0)
        return 0;
    gx_stats_inc(GRPC_SEND_QUEUE_FULL);
    gx_log_remote(GX_LOG_WARN,
                  "response refused conn=%llu peer=%s stream=%d bytes=%zu waiting=%zu "
                  "reason=\"%s\"",
                  (unsigned long long)c->id, c->peer, call->stream_id, bytes, c->out_held,
                  gx_strerror(rv));
    return rv;
}

void
gx__call_out_count(gx_call_t *call)
{
    gx_conn_t *c = call->conn;
    size_t now = gx_bq_len(&call->out);

    if (now == call->out_held)
        return;
    c->out_held += now - call->out_held; /* modulo 2^64: a decrease too */
    gx__worker_send_count(c->worker, (int64_t)now - (int64_t)call->out_held);
    call->out_held = now;
}

static ssize_t
data_read_cb(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t len, uint32_t *flags,
             nghttp2_data_source *src, void *arg)
{
    gx_conn_t *c = arg;
    gx_call_t *call = src->ptr;
    size_t n = gx_bq_len(&call->out) < len ? gx_bq_len(&call->out) : len;
    size_t left;
    nghttp2_nv *nva;
    size_t nvlen;

    if (n > 0)
        memcpy(buf, gx_bq_data(&call->out), n);
    gx_bq_drain(&call->out, n);
    gx__call_out_count(call);
    left = gx_bq_len(&call->out);
    if (call->want_writable && left <= limits(c)->send_buffer_bytes / 2)
        c->writable_pending = 1;
    if (left > 0)
        return (ssize_t)n;
    if (!call->finished) {
        if (n > 0)
            return (ssize_t)n;
        call->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (gx__call_trailers(call, &nva, &nvlen) == 0 &&
        nghttp2_submit_trailer(s, stream_id, nva, nvlen) == 0)
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    return (ssize_t)n;
}

int
gx__call_submit(gx_call_t *call)
{
    gx_conn_t *c = call->conn;
    nghttp2_data_provider dp = {.source.ptr = call, .read_callback = data_read_cb};
    nghttp2_nv *nva;
    size_t nvlen;
    int trailers_only = call->finished && gx_bq_len(&call->out) == 0;
    int rv;

    if (c == NULL || call->closed)
        return GX_ECLOSED;
    if (call->headers_sent) {
        if (call->deferred) {
            call->deferred = 0;
            nghttp2_session_resume_data(c->session, call->stream_id);
        }
        gx__conn_schedule_send(c);
        return 0;
    }
    rv = gx__call_headers(call, trailers_only, &nva, &nvlen);
    if (rv != 0)
        return rv;
    rv = nghttp2_submit_response(c->session, call->stream_id, nva, nvlen,
                                 trailers_only ? NULL : &dp);
    if (rv != 0)
        return GX_EPROTO;
    call->headers_sent = 1;
    gx__conn_schedule_send(c);
    return 0;
}

/* ------------------------------------------------------------------ connection */

/* Feeds bytes read from the peer to nghttp2. @return 0, or -1 when the connection must go */
static int
conn_feed(gx_conn_t *c, const uint8_t *data, size_t len)
{
    ssize_t rv = nghttp2_session_mem_recv(c->session, data, len);

    if (rv < 0)
        c->free_pending = 1;
    flush_run(c);
    if (rv >= 0)
        return 0; /* nghttp2 takes everything: no callback of ours pauses it */
    if (rv == NGHTTP2_ERR_FLOODED)
        gx_stats_inc(H2_FLOOD);
    else
        gx_stats_inc(H2_PROTOCOL_ERROR);
    gx_log_remote(GX_LOG_INFO, "connection closed conn=%llu peer=%s reason=\"%s\"",
                  (unsigned long long)c->id, c->peer, nghttp2_strerror((int)rv));
    c->free_pending = 1;
    return -1;
}

/* After a read: answers go out; a peer that does not read them sends no more. @return 1: gone */
static int
read_done(gx_conn_t *c)
{
    c->want_send = 1;
    if (io_end(c))
        return 1;
    if (out_len(c) >= limits(c)->conn_output_bytes && !c->read_paused) {
        c->read_paused = 1;
        reading(c, 0);
    }
    return 0;
}

static void
tls_read(struct bufferevent *bev, void *arg)
{
    gx_conn_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec v[8];
    size_t total = 0;
    int n;

    io_begin(c);
    n = evbuffer_peek(in, -1, NULL, v, 8);
    for (int i = 0; i < n && i < 8; i++) {
        if (conn_feed(c, v[i].iov_base, v[i].iov_len) != 0) {
            io_end(c);
            return;
        }
        total += v[i].iov_len;
    }
    evbuffer_drain(in, total);
    if (read_done(c))
        return;
    /* more than 8 chunks: come back for the rest */
    if (evbuffer_get_length(in) > 0 && !c->read_paused)
        event_active(c->flush_ev, EV_READ, 0);
}

/* Everything the bytes of one read set in motion shares one clock read (gx_clock.h). */
static void
read_cb(struct bufferevent *bev, void *arg)
{
    gx_clock_event_begin();
    tls_read(bev, arg);
    gx_clock_event_end();
}

/* The socket took all we had: go on with what nghttp2 has left, or end a finished connection. */
static void
conn_writable(gx_conn_t *c)
{
    if (nghttp2_session_want_write(c->session))
        c->want_send = 1;
    if (c->want_send)
        conn_send(c);
    else if (conn_done(c))
        conn_destroy(c);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
    gx_conn_t *c = arg;

    if (c->read_paused) {
        c->read_paused = 0;
        bufferevent_enable(bev, EV_READ);
    }
    conn_writable(c);
}

static void
plain_read(evutil_socket_t fd, void *arg)
{
    gx_conn_t *c = arg;
    uint8_t buf[READ_SIZE];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);

    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        gx_log(GX_LOG_DEBUG, "connection closed conn=%llu peer=%s reason=\"%s\"",
               (unsigned long long)c->id, c->peer, n == 0 ? "eof" : strerror(errno));
        gx__conn_free(c);
        return;
    }
    io_begin(c);
    if (conn_feed(c, buf, (size_t)n) != 0) {
        io_end(c);
        return;
    }
    read_done(c);
}

static void
plain_read_cb(evutil_socket_t fd, short what, void *arg)
{
    gx_clock_event_begin();
    plain_read(fd, arg);
    gx_clock_event_end();
}

static void
plain_write_cb(evutil_socket_t fd, short what, void *arg)
{
    gx_conn_t *c = arg;

    if (plain_flush(c) != 0) {
        if (c->free_pending)
            conn_destroy(c);
        return;
    }
    conn_writable(c);
}

static void
event_cb(struct bufferevent *bev, short events, void *arg)
{
    gx_conn_t *c = arg;

    if (events & BEV_EVENT_CONNECTED) {
        /* TLS handshake done; ALPN was checked by the select callback */
        c->tls_identity = gx__tls_peer_identity(c->ssl);
        timer_set(c, GX_CT_FIRST_REQUEST, limits(c)->first_request_timeout_ms);
        conn_send(c);
        return;
    }
    if ((events & BEV_EVENT_ERROR) && c->tls && c->timer_state == GX_CT_HANDSHAKE) {
        gx_stats_inc(TLS_HANDSHAKE_FAILED);
        gx_log_remote(GX_LOG_INFO, "tls handshake failed conn=%llu peer=%s reason=\"%s\"",
                      (unsigned long long)c->id, c->peer,
                      ERR_reason_error_string(bufferevent_get_openssl_error(bev)) ?: "eof");
    }
    gx__conn_free(c);
}

/* The idle timer fired: @return 1 if the connection has been idle long enough, else 0 with
 * the timer armed again (streams open: a whole timeout; else what is left of it) */
static int
idle_expired(gx_conn_t *c)
{
    uint32_t ms = limits(c)->idle_timeout_ms;
    uint64_t idle = gx_now_ms() - c->idle_since_ms;

    if (c->n_streams == 0 && idle >= ms)
        return 1;
    timer_set(c, GX_CT_IDLE, c->n_streams > 0 ? ms : ms - (uint32_t)idle);
    return 0;
}

static void
conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    gx_conn_t *c = arg;

    switch (c->timer_state) {
    case GX_CT_HANDSHAKE:
        gx_stats_inc(TLS_HANDSHAKE_TIMEOUT);
        gx_log_remote(GX_LOG_INFO, "connection closed conn=%llu peer=%s reason=\"tls handshake "
               "timeout\"", (unsigned long long)c->id, c->peer);
        gx__conn_free(c);
        return;
    case GX_CT_FIRST_REQUEST:
        gx_stats_inc(CONN_FIRST_REQUEST_TIMEOUT);
        gx_log_remote(GX_LOG_INFO, "connection closed conn=%llu peer=%s reason=\"no request within "
               "first_request_timeout\"", (unsigned long long)c->id, c->peer);
        break;
    case GX_CT_IDLE:
        if (!idle_expired(c))
            return;
        gx_stats_inc(CONN_IDLE_CLOSED);
        gx_log(GX_LOG_DEBUG, "connection closed conn=%llu peer=%s reason=idle",
               (unsigned long long)c->id, c->peer);
        break;
    default:
        return;
    }
    c->timer_state = GX_CT_NONE;
    c->closing = 1;
    conn_goaway(c, NGHTTP2_NO_ERROR, NULL);
    conn_send(c);
}

void
gx__conn_drain(gx_conn_t *c)
{
    io_begin(c);
    conn_goaway(c, NGHTTP2_NO_ERROR, "shutting down");
    for (gx_call_t *call = c->calls, *next; call != NULL; call = next) {
        next = call->next;
        if (call->dispatched && !call->finished)
            dispatch(c)->on_drain(call, dispatch(c)->arg);
    }
    c->want_send = 1;
    io_end(c);
}

void
gx__conn_free(gx_conn_t *c)
{
    if (c->io_depth > 0) {
        /* inside this connection's own callbacks: free once they unwind */
        c->free_pending = 1;
        reading(c, 0);
        event_active(c->flush_ev, EV_WRITE, 0);
        return;
    }
    conn_destroy(c);
}

static void
conn_io_free(gx_conn_t *c)
{
    if (c->bev != NULL) {
        bufferevent_free(c->bev); /* closes the socket and frees ssl */
        return;
    }
    if (c->rev != NULL)
        event_free(c->rev);
    if (c->wev != NULL)
        event_free(c->wev);
    gx_bq_free(&c->out);
    evutil_closesocket(c->fd);
}

static void
conn_destroy(gx_conn_t *c)
{
    gx_worker_t *w = c->worker;

    c->io_depth++;
    while (c->calls != NULL) {
        gx_call_t *call = c->calls;
        stream_set(c, call->stream_id, NULL);
        call_close(call);
    }
    /* every call gave its bytes back as it closed; a drift would shrink the server's bounds */
    if (c->held != 0 || c->out_held != 0) {
        gx_log(GX_LOG_ERROR, "BUG: connection closed with bytes still counted conn=%llu "
               "held=%zu out_held=%zu", (unsigned long long)c->id, c->held, c->out_held);
        __atomic_sub_fetch(&w->srv->recv_held, c->held, __ATOMIC_RELAXED);
        gx__worker_send_count(w, -(int64_t)c->out_held);
    }
    nghttp2_session_del(c->session);
    event_free(c->timer_ev);
    event_free(c->flush_ev);
    conn_io_free(c);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    w->n_conns--;
    __atomic_fetch_sub(&w->srv->n_conns, 1, __ATOMIC_RELAXED);
    free(c->tls_identity);
    free(c);
    gx__worker_conn_gone(w);
}

static int
session_new(gx_conn_t *c)
{
    const gx_limits_t *l = limits(c);
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, l->max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, l->initial_window_bytes},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, l->max_header_list_bytes},
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, l->max_frame_bytes},
        /*
         * No RFC 7540 priority tree (RFC 9113 deprecates it; gRPC does not
         * use it): nghttp2 then frees a stream when it closes, where it kept
         * up to max_concurrent_streams closed streams in the tree and in its
         * stream map, and looked through them for every new stream.
         */
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    int rv = -1;

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
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame_cb);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send_cb);

    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_settings(opt, l->max_settings);
    nghttp2_option_set_max_outbound_ack(opt, l->max_outbound_ack);
    nghttp2_option_set_stream_reset_rate_limit(opt, l->stream_reset_burst, l->stream_reset_rate);
    nghttp2_option_set_max_continuations(opt, l->max_continuations);

    if (nghttp2_session_server_new3(&c->session, cbs, c, opt, &c->worker->h2_mem) != 0)
        goto out;
    if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) ||
        nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                              (int32_t)l->connection_window_bytes)) {
        nghttp2_session_del(c->session);
        c->session = NULL;
        goto out;
    }
    rv = 0;
out:
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    return rv;
}

static void
format_peer(const struct sockaddr *sa, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const void *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(out, len, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const void *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(out, len, "%s:%u", ip, ntohs(s4->sin_port));
    }
}

void
gx__conn_accept(gx_worker_t *w, int fd, const struct sockaddr *sa, int tls)
{
    gx_server_t *srv = w->srv;
    gx_conn_t *c;
    int one = 1;

    if (__atomic_add_fetch(&srv->n_conns, 1, __ATOMIC_RELAXED) > srv->conf.limits.max_connections ||
        w->draining) {
        __atomic_fetch_sub(&srv->n_conns, 1, __ATOMIC_RELAXED);
        gx_stats_inc(CONN_REJECTED);
        gx_log_remote(GX_LOG_WARN, "connection refused reason=\"%s\" limit=%u",
                      w->draining ? "draining" : "over max_connections",
                      srv->conf.limits.max_connections);
        evutil_closesocket(fd);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto fail_fd;
    c->worker = w;
    c->tls = tls ? 1 : 0;
    c->id = __atomic_add_fetch(&next_conn_id, 1, __ATOMIC_RELAXED);
    format_peer(sa, c->peer, sizeof(c->peer));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    if (tls) {
        c->ssl = gx__tls_ssl_new(srv);
        if (c->ssl == NULL)
            goto fail_conn;
        c->bev = bufferevent_openssl_socket_new(w->base, fd, c->ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        if (c->bev == NULL)
            goto fail_ssl;
    } else {
        c->rev = event_new(w->base, fd, EV_READ | EV_PERSIST, plain_read_cb, c);
        c->wev = event_new(w->base, fd, EV_WRITE | EV_PERSIST, plain_write_cb, c);
        if (c->rev == NULL || c->wev == NULL)
            goto fail_events;
    }
    c->timer_ev = evtimer_new(w->base, conn_timer_cb, c);
    c->flush_ev = event_new(w->base, -1, 0, flush_cb, c);
    if (c->timer_ev == NULL || c->flush_ev == NULL || session_new(c) != 0)
        goto fail_events;
    if (tls) {
        bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    } else {
        event_add(c->rev, NULL);
    }
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    w->n_conns++;
    gx_stats_inc(CONN_ACCEPTED);
    if (tls) {
        timer_set(c, GX_CT_HANDSHAKE, srv->conf.limits.tls_handshake_timeout_ms);
    } else {
        timer_set(c, GX_CT_FIRST_REQUEST, srv->conf.limits.first_request_timeout_ms);
        conn_send(c);
    }
    return;

fail_events:
    if (c->timer_ev != NULL)
        event_free(c->timer_ev);
    if (c->flush_ev != NULL)
        event_free(c->flush_ev);
    conn_io_free(c); /* closes fd (and frees ssl) */
    free(c);
    __atomic_fetch_sub(&srv->n_conns, 1, __ATOMIC_RELAXED);
    return;
fail_ssl:
    SSL_free(c->ssl);
fail_conn:
    free(c);
fail_fd:
    __atomic_fetch_sub(&srv->n_conns, 1, __ATOMIC_RELAXED);
    evutil_closesocket(fd);
}
