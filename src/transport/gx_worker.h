/* SPDX-License-Identifier: MIT */
/**
 * @file gx_worker.h
 * Worker threads and the server object shared by the transport's files.
 * Each worker owns an event loop, its own SO_REUSEPORT listeners and its
 * connections end to end.  Internal to src/transport/.
 */
#ifndef GX_TRANSPORT_GX_WORKER_H
#define GX_TRANSPORT_GX_WORKER_H

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "transport/gx_call.h"
#include "transport/gx_server.h"
#include "util/gx_slab.h"
#include "util/gx_stats.h"

struct event_base;
struct event;
struct evconnlistener;
struct evhttp;

typedef struct gx_worker_s {
    gx_server_t *srv;
    unsigned id;
    pthread_t thread;
    struct event_base *base;
    struct evconnlistener *lis_h2c, *lis_tls;
    struct event *post_ev, *tick_ev, *drain_ev;
    struct event *accept_ev;      /* ends a pause of accepting (gx__accept_pause) */
    pthread_mutex_t post_lock;
    gx_call_t *posted;            /* calls resumed from any thread */
    gx_post_t *fns;               /* work posted from any thread (gx_server_post) */
    int post_drain;               /* a drain request is pending */
    gx_conn_t *conns;
    unsigned n_conns;
    unsigned n_calls;             /* streams open here; written by this worker only */
    unsigned max_calls;           /* this worker's share of limits.max_calls */
    gx_slab_t *slab;              /* nghttp2's memory for this worker's sessions */
    nghttp2_mem h2_mem;
    int draining;
    int64_t send_local;           /* answers waiting here, not yet folded into srv->send_held */
    gx_stats_t stats;
} __attribute__((aligned(128))) gx_worker_t; /* no line shared with another worker's */

typedef struct {
    struct sockaddr_storage ss;
    socklen_t len;
    int fd;                       /* worker 0's socket */
    char str[80];
} gx_listen_addr_t;

struct gx_server_s {
    gx_server_conf_t conf;
    gx_dispatch_t dispatch;
    gx_admin_handler_t admin;
    unsigned n_workers;
    gx_worker_t *workers;
    gx_listen_addr_t h2c, tls, adm;
    SSL_CTX *ssl_ctx;             /* under ssl_lock once workers run (SIGHUP replaces it) */
    pthread_mutex_t ssl_lock;
    struct event_base *main_base;
    struct evhttp *http;
    struct event *sig_int, *sig_term, *sig_usr1, *sig_hup, *done_ev;
    int draining;                 /* atomic */
    unsigned n_conns;             /* atomic, all workers */
    size_t recv_held;             /* atomic: unfinished request bytes, all connections */
    int64_t send_held;            /* atomic: responses waiting, as the workers folded them in */
    unsigned n_running;           /* atomic, workers not yet stopped */
};

/** Posts @p call's resume to its worker. @note thread: any */
void gx__worker_post_resume(gx_worker_t *w, gx_call_t *call);
/** Answers waiting on @p w grew or shrank by @p delta bytes. @note thread: @p w's */
void gx__worker_send_count(gx_worker_t *w, int64_t delta);
/** The server's waiting answers as @p w sees them (others' last fold). @note thread: @p w's */
int64_t gx__server_send_held(const gx_worker_t *w);
/** The server's waiting answers, every worker's included (/metrics). @note thread: any */
int64_t gx__server_send_queued(gx_server_t *srv);
/** Calls open on every worker (/metrics). @note thread: any */
unsigned gx__server_calls_open(const gx_server_t *srv);
/** A connection was closed: the worker may stop once draining and empty. */
void gx__worker_conn_gone(gx_worker_t *w);
/**
 * accept() on @p lis failed with its connection still queued: disables @p lis,
 * arms @p resume to enable it again shortly, counts, and logs (rate-limited).
 * @note thread: the listener's loop
 */
void gx__accept_pause(struct evconnlistener *lis, struct event *resume, const char *listener);

/* gx_tls.c */
/** Builds the server TLS context (TLS 1.2+, ALPN h2, optional client CA). */
int gx__tls_ctx_new(const gx_server_conf_t *conf, SSL_CTX **out, char *err, size_t errlen);
/** A connection's SSL on the current context (which it keeps alive). @note thread: any */
SSL *gx__tls_ssl_new(gx_server_t *srv);
/**
 * Builds a new context from the configured files and puts it in place for the
 * connections accepted from now on; on failure the old one stays, with a
 * warning.  @return 0, or an error code  @note thread: main
 */
int gx__tls_reload(gx_server_t *srv);
/**
 * The verified client certificate's identity (first URI SAN, else first DNS
 * SAN; never the CN) as a malloc()ed string, or NULL.
 */
char *gx__tls_peer_identity(SSL *ssl);

/* gx_admin_http.c */
/** Starts the admin HTTP listener on the main loop. */
int gx__admin_start(gx_server_t *srv, char *err, size_t errlen);
void gx__admin_stop(gx_server_t *srv);

#endif /* GX_TRANSPORT_GX_WORKER_H */
