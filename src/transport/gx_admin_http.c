/* SPDX-License-Identifier: MIT */
/*
 * The admin HTTP port (libevent's evhttp, on the main thread): /healthz
 * answers while the process lives, /readyz once the server is ready and not
 * draining, /metrics in Prometheus text format as the server's user renders
 * it.  Only GET and HEAD; everything else is 404 or 405.
 */
#include "config.h"

#include "transport/gx_worker.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "util/gx_error.h"

/*
 * The admin listener's pause (gx__accept_pause).  evhttp gives its listener's
 * callbacks its own argument, so the one admin listener's timer is kept here.
 * @note thread: main
 */
static struct {
    struct evconnlistener *lis;
    struct event *resume;
} adm_pause;

static void
admin_accept_error_cb(struct evconnlistener *lis, void *http)
{
    gx__accept_pause(lis, adm_pause.resume, "admin");
}

static void
admin_accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    if (adm_pause.lis != NULL)
        evconnlistener_enable(adm_pause.lis);
}

/* what the transport holds now, after the user's own metrics */
static void
transport_gauges(gx_server_t *srv, struct evbuffer *buf)
{
    evbuffer_add_printf(
        buf,
        "# HELP galaxy_connections_open Client connections open now.\n"
        "# TYPE galaxy_connections_open gauge\ngalaxy_connections_open %u\n"
        "# HELP galaxy_recv_held_bytes Bytes of unfinished request messages held now.\n"
        "# TYPE galaxy_recv_held_bytes gauge\ngalaxy_recv_held_bytes %zu\n"
        "# HELP galaxy_send_queued_bytes Bytes of answers waiting for their clients now.\n"
        "# TYPE galaxy_send_queued_bytes gauge\ngalaxy_send_queued_bytes %lld\n"
        "# HELP galaxy_calls_open Calls (streams) open now.\n"
        "# TYPE galaxy_calls_open gauge\ngalaxy_calls_open %u\n",
        __atomic_load_n(&srv->n_conns, __ATOMIC_RELAXED),
        __atomic_load_n(&srv->recv_held, __ATOMIC_RELAXED),
        (long long)gx__server_send_queued(srv), gx__server_calls_open(srv));
}

static void
reply_text(struct evhttp_request *req, int code, const char *reason, const char *body)
{
    struct evbuffer *buf = evbuffer_new();

    if (buf == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; charset=utf-8");
    evbuffer_add(buf, body, strlen(body));
    evhttp_send_reply(req, code, reason, buf);
    evbuffer_free(buf);
}

static void
admin_cb(struct evhttp_request *req, void *arg)
{
    gx_server_t *srv = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    struct evbuffer *buf;

    if (path == NULL)
        path = "/";
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        reply_text(req, 405, "Method Not Allowed", "method not allowed\n");
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        reply_text(req, 200, "OK", "ok\n");
    } else if (strcmp(path, "/readyz") == 0) {
        int ready = !gx_server_draining(srv) &&
                    (srv->admin.ready == NULL || srv->admin.ready(srv->admin.arg));
        if (ready)
            reply_text(req, 200, "OK", "ready\n");
        else
            reply_text(req, 503, "Service Unavailable",
                       gx_server_draining(srv) ? "draining\n" : "not ready\n");
    } else if (strcmp(path, "/metrics") == 0 && srv->admin.metrics != NULL) {
        buf = evbuffer_new();
        if (buf == NULL) {
            evhttp_send_error(req, HTTP_INTERNAL, NULL);
            return;
        }
        srv->admin.metrics(buf, srv->admin.arg);
        transport_gauges(srv, buf);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "text/plain; version=0.0.4; charset=utf-8");
        evhttp_send_reply(req, 200, "OK", buf);
        evbuffer_free(buf);
    } else {
        reply_text(req, 404, "Not Found", "not found\n");
    }
}

int
gx__admin_start(gx_server_t *srv, char *err, size_t errlen)
{
    struct evhttp_bound_socket *bound;

    srv->http = evhttp_new(srv->main_base);
    if (srv->http == NULL) {
        snprintf(err, errlen, "out of memory");
        return GX_ENOMEM;
    }
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_max_headers_size(srv->http, 8192);
    evhttp_set_max_body_size(srv->http, 4096);
    evhttp_set_timeout(srv->http, 10);
    evhttp_set_gencb(srv->http, admin_cb, srv);
    adm_pause.resume = evtimer_new(srv->main_base, admin_accept_resume_cb, NULL);
    if (adm_pause.resume == NULL) {
        snprintf(err, errlen, "out of memory");
        return GX_ENOMEM;
    }
    bound = evhttp_accept_socket_with_handle(srv->http, srv->adm.fd);
    if (bound == NULL) {
        snprintf(err, errlen, "cannot serve on %s", srv->adm.str);
        return GX_EIO;
    }
    srv->adm.fd = -1; /* evhttp owns it now */
    adm_pause.lis = evhttp_bound_socket_get_listener(bound);
    evconnlistener_set_error_cb(adm_pause.lis, admin_accept_error_cb);
    return 0;
}

void
gx__admin_stop(gx_server_t *srv)
{
    if (srv->http != NULL)
        evhttp_free(srv->http);
    srv->http = NULL;
    if (adm_pause.resume != NULL)
        event_free(adm_pause.resume);
    adm_pause.resume = NULL;
    adm_pause.lis = NULL;
}
