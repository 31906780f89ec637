/* SPDX-License-Identifier: MIT */
/**
 * @file gx_call.h
 * One gRPC call: one HTTP/2 stream.  The transport owns the call and its
 * life cycle; the part marked "core" belongs to the dispatcher (phase chain,
 * method), which the transport never reads.  The public accessors are in
 * include/galaxy/gx_module.h.
 *
 * Life: created at the stream's HEADERS, freed when the stream is closed and
 * every reference is dropped (a parked call holds one).  Everything in
 * call->arena goes with it.
 */
#ifndef GX_TRANSPORT_GX_CALL_H
#define GX_TRANSPORT_GX_CALL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <galaxy/gx_module.h>

#include "util/gx_arena.h"
#include "util/gx_bq.h"
#include "util/gx_clock.h"

struct event;
typedef struct gx_conn_s gx_conn_t;
struct gx_worker_s;

typedef struct gx_md_s {
    struct gx_md_s *next;
    const char *key;
    const char *value;
    size_t len;
} gx_md_t;

struct gx_call_s {
    gx_conn_t *conn; /* NULL once the connection is gone */
    struct gx_worker_s *wk;
    gx_arena_t *arena;
    int32_t stream_id;
    unsigned refs;
    unsigned worker;
    uint64_t start_ns;

    /* request */
    char *path;
    char *tls_identity; /* copied from the connection: the call may outlive it */
    gx_md_t *md_in;     /* in arrival order */
    gx_md_t **md_in_tail;
    size_t header_bytes;
    uint64_t timeout_us;
    uint8_t gzip_in;

    /* reception: bytes not yet parsed, and those not yet returned to the window */
    gx_bq_t in;
    size_t unconsumed;
    size_t held; /* bytes of an unfinished message counted against the receive buffers */

    /* response */
    gx_bq_t out;
    size_t out_held; /* gx_bq_len(&out) as counted in the send queues */
    gx_md_t *md_hdr, *md_trl;
    gx_status_t status;
    char *message;

    struct event *deadline_ev;
    struct event *timer_ev;
    void (*timer_fn)(gx_call_t *, void *);
    void *timer_arg;

    unsigned headers_sent : 1;  /* response HEADERS submitted */
    unsigned finished : 1;      /* status set; trailers follow the queued data */
    unsigned closed : 1;        /* the stream is gone */
    unsigned cancelled : 1;     /* on_cancel delivered */
    unsigned remote_closed : 1; /* END_STREAM received */
    unsigned dispatched : 1;    /* on_call delivered */
    unsigned recv_paused : 1;   /* messages wait in `in` (flow control holds the peer) */
    unsigned deferred : 1;      /* the data provider answered DEFERRED */
    unsigned want_writable : 1; /* gx_call_send() answered GX_AGAIN */
    unsigned rejected : 1;      /* finished by the transport on bad input: drop further DATA */
    unsigned half_close_pending : 1;
    unsigned resume_pending : 1;
    unsigned flush_queued : 1;  /* on the connection's flush list */

    gx_call_t *next, *prev; /* the connection's open calls */
    gx_call_t *post_next;   /* the worker's resume queue */
    gx_call_t *flush_next;  /* the connection's flush list */
    uint8_t hdr_bad;        /* first header problem seen (GX__HDR_*) */
    uint8_t hdr_seen;       /* request headers present (GX__HDR_*) */
    uint16_t http_status;   /* 0: 200 */

    /* ---- core-owned ---- */
    struct {
        const void *method;
        const ProtobufCMessage *req;
        void **mod_ctx;
        const char *identity;
        const char *const *pools; /* the principal's pools; n_pools 0: all */
        size_t n_pools;
        uint8_t role;             /* gx_role_t */
        void *data;
        const char *bad_why;      /* why the request is undecodable, if known (static) */
        const char *bad_field;    /* the field it is about, or NULL */
        int phase;
        unsigned method_index;
        uint8_t kind;
        unsigned parked : 1;
        unsigned started : 1;
        unsigned cancel_sent : 1;
        unsigned validated : 1;
        unsigned undecodable : 1; /* the request did not decode: refused after AUTHN */
    } core;
};

/* request header checks, in call->hdr_seen / hdr_bad */
enum {
    GX__HDR_POST = 1,
    GX__HDR_CTYPE = 2,
    GX__HDR_TE = 4,
    GX__HDR_PATH = 8,
    GX__HDR_TIMEOUT = 16,
    GX__HDR_ENCODING = 32
};

/** Holds the call across an asynchronous wait. @note thread: worker */
void gx__call_ref(gx_call_t *call);
/** Drops a reference; the last one frees a closed call. @note thread: worker */
void gx__call_unref(gx_call_t *call);
/**
 * Stops (1) or restarts (0) the delivery of request messages.  While paused,
 * received bytes are kept and not returned to the flow-control window, so the
 * peer waits instead of the server buffering without bound.
 */
void gx__call_recv_pause(gx_call_t *call, int paused);
/** The server's limits for this call. */
uint32_t gx__call_max_recv(const gx_call_t *call);
/**
 * gx_call_reply() of @p msg plus one message field, number @p field, whose
 * bytes the caller has serialized already (a message it stores, say): the
 * @p n pieces of @p parts, in order (at most GX__REPLY_PARTS).  Protobuf
 * takes fields in any order, so they follow the fields of @p msg, which must
 * leave @p field unset.  Spares packing the same message twice.
 * @return GX_DONE
 */
#define GX__REPLY_PARTS 2
int gx__call_reply_packed(gx_call_t *call, const ProtobufCMessage *msg, uint32_t field,
                          const struct iovec *parts, size_t n);

#endif /* GX_TRANSPORT_GX_CALL_H */
