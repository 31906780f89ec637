/* SPDX-License-Identifier: MIT */
/**
 * @file gx_conn.h
 * One client connection: a bufferevent (plain or TLS) feeding an nghttp2
 * server session.  Internal to src/transport/.
 */
#ifndef GX_TRANSPORT_GX_CONN_H
#define GX_TRANSPORT_GX_CONN_H

#include <stdint.h>
#include <sys/socket.h>

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include "transport/gx_call.h"
#include "transport/gx_worker.h"
#include "util/gx_bq.h"

struct bufferevent;

typedef enum { GX_CT_NONE, GX_CT_HANDSHAKE, GX_CT_FIRST_REQUEST, GX_CT_IDLE } gx_conn_timer_t;

struct gx_conn_s {
    gx_worker_t *worker;
    nghttp2_session *session;
    struct bufferevent *bev; /* TLS: OpenSSL does the socket's I/O */
    SSL *ssl;
    int fd;                  /* cleartext: the socket, read and written here */
    struct event *rev, *wev;
    gx_bq_t out;             /* cleartext: what nghttp2 produced and the socket did not take */
    uint64_t id;
    char peer[72];
    char *tls_identity; /* verified client certificate's SAN, or NULL */
    struct event *timer_ev, *flush_ev;
    gx_conn_timer_t timer_state;
    gx_call_t *calls;
    gx_call_t *flush_head, **flush_tail; /* calls whose input waits for the read's end */
    gx_call_t *last_call; /* the call of stream last_stream (0: none), looked up last */
    int32_t last_stream;
    unsigned n_streams;
    unsigned io_depth;
    size_t held; /* its calls' unfinished request bytes (conn_recv_buffer_bytes) */
    size_t out_held; /* its calls' responses waiting (conn_send_queue_bytes) */
    unsigned invalid_frames, ping_strikes, rst_recv;
    uint64_t last_ping_ns;
    uint64_t idle_since_ms; /* when the last stream closed (GX_CT_IDLE) */
    unsigned want_send : 1;
    unsigned free_pending : 1;
    unsigned writable_pending : 1;
    unsigned goaway_by_us : 1;
    unsigned closing : 1;
    unsigned got_request : 1;
    unsigned read_paused : 1;
    unsigned write_armed : 1; /* cleartext: wev is added (the socket was full) */
    unsigned tls : 1;
    gx_conn_t *next, *prev;
};

/** Accepts @p fd on worker @p w (tls: wrap it in the server's SSL_CTX). */
void gx__conn_accept(gx_worker_t *w, int fd, const struct sockaddr *sa, int tls);
/** Frees the connection now, cancelling its calls. */
void gx__conn_free(gx_conn_t *c);
/** Room for @p bytes more of @p call's responses? @return 0, GX_EQUEUE_CONN or _SERVER */
int gx__call_out_room(gx_call_t *call, size_t bytes);
/** call->out grew or shrank: counts it in the send queues. */
void gx__call_out_count(gx_call_t *call);
/** Starts the graceful end: GOAWAY, on_drain for every call. */
void gx__conn_drain(gx_conn_t *c);
/** Brackets work on a connection from outside its I/O callbacks (timers, resumes). */
void gx__conn_io_begin(gx_conn_t *c);
/** Sends what was queued; may free @p c. @return 1 when @p c is gone */
int gx__conn_io_end(gx_conn_t *c);
/** Sends what nghttp2 has queued now, or right after the current I/O callback. */
void gx__conn_schedule_send(gx_conn_t *c);
/** Response HEADERS (trailers-only when @p trailers_only) as an nghttp2 array in call memory. */
int gx__call_headers(gx_call_t *call, int trailers_only, nghttp2_nv **nva, size_t *nvlen);
/** The trailers as an nghttp2 array in call memory. */
int gx__call_trailers(gx_call_t *call, nghttp2_nv **nva, size_t *nvlen);
/** Submits the response HEADERS (and data provider) of @p call if not yet done. */
int gx__call_submit(gx_call_t *call);

#endif /* GX_TRANSPORT_GX_CONN_H */
