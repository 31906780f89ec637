/* SPDX-License-Identifier: MIT */
/**
 * @file gx_server.h
 * The transport seen from above: listeners, worker threads, connections and
 * the gRPC call life cycle.  The transport knows calls and bytes, not pools:
 * whoever starts it (core) hands it a dispatcher, whose callbacks run on the
 * worker that owns the call.
 *
 * Life cycle: gx_server_new() (binds every listener, so port 0 is resolved and
 * errors are reported before anything runs) → gx_server_start() → …
 * gx_server_drain() (any thread, e.g. on SIGTERM) → gx_server_wait() →
 * gx_server_free().
 */
#ifndef GX_TRANSPORT_GX_SERVER_H
#define GX_TRANSPORT_GX_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <galaxy/gx_module.h>

#include "transport/gx_limits.h"

typedef struct gx_server_s gx_server_t;

/**
 * What the transport tells its user about calls.  Every callback of a call
 * runs on the call's worker, never inside another callback of the same call,
 * and may use the whole call API (include/galaxy/gx_module.h and gx_call.h).
 */
typedef struct gx_dispatch_s {
    void *arg;
    /** Headers of a valid gRPC request are complete.  Route it (or finish it). */
    void (*on_call)(gx_call_t *call, void *arg);
    /** One complete, decompressed request message (call memory, valid during the callback). */
    void (*on_message)(gx_call_t *call, const uint8_t *data, size_t len, void *arg);
    /** The client half-closed: no more messages. */
    void (*on_half_close)(gx_call_t *call, void *arg);
    /** The send buffer drained after gx_call_send() answered GX_AGAIN. */
    void (*on_writable)(gx_call_t *call, void *arg);
    /** A gx_call_resume() reached the worker. */
    void (*on_resume)(gx_call_t *call, void *arg);
    /** Peer reset, deadline or connection loss: the call can no longer send. */
    void (*on_cancel)(gx_call_t *call, void *arg);
    /** The server is draining; the call may finish or go on until the drain timeout. */
    void (*on_drain)(gx_call_t *call, void *arg);
    /** The stream is closed; the last callback before the call is freed. */
    void (*on_close)(gx_call_t *call, void *arg);
    /** Every 100 ms on each worker, and once more (final = 1) as the worker stops. */
    void (*on_tick)(unsigned worker, int final, void *arg);
    /** SIGUSR1, on the main thread while workers run: open log files again (logrotate). */
    void (*on_reopen)(void *arg);
} gx_dispatch_t;

typedef struct gx_server_conf_s {
    unsigned workers;          /**< 0: one per core */
    const char *listen;        /**< h2c "host:port", NULL for none */
    const char *tls_listen;    /**< TLS "host:port", NULL for none */
    const char *tls_cert, *tls_key, *tls_client_ca;
    const char *admin_listen;  /**< admin HTTP "host:port", NULL for none */
    gx_limits_t limits;
} gx_server_conf_t;

/** The admin HTTP port's pages, produced by the server's user. */
typedef struct gx_admin_handler_s {
    void *arg;
    /** Appends the body of /metrics (Prometheus text) to @p out (an evbuffer). */
    void (*metrics)(void *out, void *arg);
    /** 1 when /readyz should answer 200. */
    int (*ready)(void *arg);
} gx_admin_handler_t;

/** Work posted to a worker thread (gx_server_post()). */
typedef struct gx_post_s {
    struct gx_post_s *next;
    void (*fn)(struct gx_post_s *p); /**< on the worker; or at teardown, when it is gone */
} gx_post_t;

/**
 * Runs @p p->fn(p) on worker @p worker's thread soon.  A post that arrives
 * after the worker stopped runs at gx_server_free(), on its thread.
 * @note thread: any
 */
void gx_server_post(gx_server_t *srv, unsigned worker, gx_post_t *p);

/**
 * Holds back this thread's gx_call_resume()s until the matching
 * gx_resume_release(), which hands each worker all of its calls at once (one
 * lock, one wake-up, one write per connection).  For a thread that completes
 * a batch of calls (a commit's writes); pairs nest.
 * @note thread: any but a worker (a worker's own resumes need no batching)
 */
void gx_resume_hold(void);
void gx_resume_release(void);

/**
 * Creates the server and binds every listener.
 * @param err  on failure, the reason (which address, which file).
 * @return 0, GX_EINVAL (bad address), GX_EADDRINUSE, GX_EIO (TLS files), GX_ENOMEM.
 */
int gx_server_new(const gx_server_conf_t *conf, const gx_dispatch_t *dispatch,
                  const gx_admin_handler_t *admin, gx_server_t **out, char *err, size_t errlen);
/** The bound address of "h2c", "tls" or "admin" as "host:port", or NULL. */
const char *gx_server_addr(const gx_server_t *srv, const char *which);
/** Number of workers. */
unsigned gx_server_workers(const gx_server_t *srv);
/** Starts the workers and the admin listener. @return 0 or a GX_E code */
int gx_server_start(gx_server_t *srv);
/** 1 while draining. @note thread: any */
int gx_server_draining(const gx_server_t *srv);
/** Begins the graceful shutdown. @note thread: any, async-signal-unsafe */
void gx_server_drain(gx_server_t *srv);
/**
 * Runs the admin listener and waits until a signal (SIGINT/SIGTERM) drains
 * the server and every worker has stopped.  @note thread: main
 */
void gx_server_run(gx_server_t *srv);
/** Frees a stopped server. NULL is a no-op. */
void gx_server_free(gx_server_t *srv);

#endif /* GX_TRANSPORT_GX_SERVER_H */
