/* SPDX-License-Identifier: MIT */
/*
 * The server object and its worker threads.
 *
 * gx_server_new() binds every socket up front, one per worker and listener
 * with SO_REUSEPORT (the first one resolves port 0 for the others), so a bad
 * address fails the start-up and the ready file can name real ports.  Each
 * worker runs its own event loop with its own listeners and owns its
 * connections from accept to close.  The main thread runs the admin HTTP port
 * and the signal handlers; SIGINT/SIGTERM start the drain: every worker
 * closes its listeners, sends GOAWAY, lets its calls finish and stops when
 * its last connection is gone or when drain_timeout_ms has passed.  SIGUSR1
 * asks the server's user to open its log files again (on_reopen); SIGHUP
 * reloads the TLS certificate, key and client CA from their files.
 *
 * The only cross-thread paths are a worker's resume queue (a mutex-guarded
 * intrusive list, one per worker, which a thread completing many calls fills
 * in one go: gx_resume_hold()) and the drain request.
 */
#include "config.h"

#include "transport/gx_worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "transport/gx_conn.h"
#include "util/gx_arena.h"
#include "util/gx_error.h"
#include "util/gx_log.h"
#include "util/gx_stats.h"

#define TICK_MS 100
/* how long accepting waits after accept() found no descriptor or memory */
#define ACCEPT_PAUSE_MS 100
/* descriptors beyond one a connection: store, logs, listeners, event loops, modules */
#define NOFILE_RESERVE 128

/* ------------------------------------------------------------------ addresses */

static int
addr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[256];
    const char *colon, *port, *h = s;
    size_t hlen;
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;

    if (s[0] == '[') {
        colon = strstr(s, "]:");
        if (colon == NULL)
            return GX_EINVAL;
        h = s + 1;
        hlen = (size_t)(colon - h);
        port = colon + 2;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return GX_EINVAL;
        hlen = (size_t)(colon - s);
        port = colon + 1;
    }
    if (hlen >= sizeof(host) || *port == '\0')
        return GX_EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (getaddrinfo(hlen ? host : NULL, port, &hints, &res) != 0 || res == NULL)
        return GX_EINVAL;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void
addr_format(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN];

    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const void *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(out, len, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const void *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(out, len, "%s:%u", ip, ntohs(s4->sin_port));
    }
}

static int
socket_bind(const struct sockaddr_storage *ss, socklen_t len)
{
    int one = 1;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, 1024) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* Binds the first socket of @spec (resolving port 0) into @la. */
static int
listen_addr_bind(gx_listen_addr_t *la, const char *what, const char *spec, char *err,
                 size_t errlen)
{
    int fd;

    la->fd = -1;
    if (addr_parse(spec, &la->ss, &la->len) != 0) {
        snprintf(err, errlen, "%s: cannot parse address \"%s\" (want HOST:PORT)", what, spec);
        return GX_EINVAL;
    }
    fd = socket_bind(&la->ss, la->len);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot listen on %s: %s", what, spec, strerror(-fd));
        return fd == -EADDRINUSE ? GX_EADDRINUSE : GX_EIO;
    }
    la->len = sizeof(la->ss);
    getsockname(fd, (struct sockaddr *)&la->ss, &la->len);
    addr_format(&la->ss, la->str, sizeof(la->str));
    la->fd = fd;
    return 0;
}

/* ------------------------------------------------------------------ send queues */

/*
 * Every answer is counted in and out of the send queues, so the server-wide
 * total is not touched per call: each worker adds up its own changes and folds
 * them into the shared total once they pass SEND_FOLD bytes either way.  The
 * total is then off by less than SEND_FOLD for each other worker.
 */
#define SEND_FOLD (64 << 10)

void
gx__worker_send_count(gx_worker_t *w, int64_t delta)
{
    int64_t v = __atomic_load_n(&w->send_local, __ATOMIC_RELAXED) + delta;

    if (v > SEND_FOLD || v < -SEND_FOLD) {
        __atomic_add_fetch(&w->srv->send_held, v, __ATOMIC_RELAXED);
        v = 0;
    }
    __atomic_store_n(&w->send_local, v, __ATOMIC_RELAXED); /* read by /metrics */
}

int64_t
gx__server_send_held(const gx_worker_t *w)
{
    return __atomic_load_n(&w->srv->send_held, __ATOMIC_RELAXED) +
           __atomic_load_n(&w->send_local, __ATOMIC_RELAXED);
}

int64_t
gx__server_send_queued(gx_server_t *srv)
{
    int64_t v = __atomic_load_n(&srv->send_held, __ATOMIC_RELAXED);

    for (unsigned i = 0; i < srv->n_workers; i++)
        v += __atomic_load_n(&srv->workers[i].send_local, __ATOMIC_RELAXED);
    return v > 0 ? v : 0;
}

unsigned
gx__server_calls_open(const gx_server_t *srv)
{
    unsigned n = 0;

    for (unsigned i = 0; i < srv->n_workers; i++)
        n += __atomic_load_n(&srv->workers[i].n_calls, __ATOMIC_RELAXED);
    return n;
}

/* ------------------------------------------------------------------ workers */

static void
accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int salen,
          void *arg)
{
    gx_worker_t *w = arg;

    gx__conn_accept(w, fd, sa, lis == w->lis_tls);
}

/*
 * accept() failed and the connection is still queued: no descriptor left
 * (EMFILE, ENFILE) or no kernel memory (ENOBUFS, ENOMEM).  The listening
 * socket stays readable, so the loop would call accept() again at once and
 * spin, a log line each time.  Accepting pauses instead, as nginx's does, and
 * the backlog waits for connections to close.  A peer that gave up before
 * its accept (ECONNABORTED) or a lost race (EAGAIN) never gets here:
 * libevent retries those itself.
 */
void
gx__accept_pause(struct evconnlistener *lis, struct event *resume, const char *listener)
{
    static __thread time_t logged_at;
    static __thread unsigned unlogged;
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    time_t now = time(NULL);
    struct rlimit rl;

    evconnlistener_disable(lis);
    evtimer_add(resume, &tv);
    gx_stats_inc(ACCEPT_PAUSED);
    /* one line a second at most: a pause every 100 ms while descriptors stay short */
    if (now == logged_at) {
        unlogged++;
        return;
    }
    logged_at = now;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        rl.rlim_cur = 0;
    gx_log(GX_LOG_WARN,
           "accept paused listener=%s error=\"%s\" pause_ms=%d nofile=%llu suppressed=%u",
           listener, evutil_socket_error_to_string(err), ACCEPT_PAUSE_MS,
           (unsigned long long)rl.rlim_cur, unlogged);
    unlogged = 0;
}

static void
accept_error_cb(struct evconnlistener *lis, void *arg)
{
    gx_worker_t *w = arg;

    gx__accept_pause(lis, w->accept_ev, lis == w->lis_tls ? "tls" : "h2c");
}

/* the pause is over: both listeners accept again (a drain has freed them) */
static void
accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    gx_worker_t *w = arg;

    if (w->lis_h2c != NULL)
        evconnlistener_enable(w->lis_h2c);
    if (w->lis_tls != NULL)
        evconnlistener_enable(w->lis_tls);
}

static void
worker_stop(gx_worker_t *w)
{
    event_base_loopbreak(w->base);
}

void
gx__worker_conn_gone(gx_worker_t *w)
{
    if (w->draining && w->n_conns == 0)
        worker_stop(w);
}

/* puts the chain @p newest .. @p oldest (linked newest first) in front of @p w's resumes */
static void
post_chain(gx_worker_t *w, gx_call_t *newest, gx_call_t *oldest)
{
    pthread_mutex_lock(&w->post_lock);
    oldest->post_next = w->posted;
    w->posted = newest;
    pthread_mutex_unlock(&w->post_lock);
    event_active(w->post_ev, EV_READ, 0);
}

/*
 * Resumes held back by this thread between gx_resume_hold() and
 * gx_resume_release(), oldest first.  A thread that completes many calls
 * at once (the registry's keeper after a commit, the store's writer) hands
 * each worker all of its calls in one post: one lock and one wake-up, and the
 * worker answers them in one round, one write per connection.
 */
static __thread struct {
    unsigned depth;
    gx_call_t *head, **tail;
} held;

void
gx_resume_hold(void)
{
    if (held.depth++ == 0) {
        held.head = NULL;
        held.tail = &held.head;
    }
}

void
gx_resume_release(void)
{
    if (held.depth == 0 || --held.depth > 0)
        return;
    while (held.head != NULL) {
        gx_worker_t *w = held.head->wk;
        gx_call_t *newest = NULL, *oldest = NULL, **link = &held.head;

        /* take @w's calls out, in order; the rest stay for the next worker */
        for (gx_call_t *call = held.head, *next; call != NULL; call = next) {
            next = call->post_next;
            if (call->wk != w) {
                link = &call->post_next;
                continue;
            }
            *link = next;
            call->post_next = newest;
            newest = call;
            if (oldest == NULL)
                oldest = call;
        }
        post_chain(w, newest, oldest);
    }
}

void
gx__worker_post_resume(gx_worker_t *w, gx_call_t *call)
{
    if (held.depth > 0) {
        call->post_next = NULL;
        *held.tail = call;
        held.tail = &call->post_next;
        return;
    }
    post_chain(w, call, call);
}

void
gx_server_post(gx_server_t *srv, unsigned worker, gx_post_t *p)
{
    gx_worker_t *w = &srv->workers[worker % srv->n_workers];

    pthread_mutex_lock(&w->post_lock);
    p->next = w->fns;
    w->fns = p;
    pthread_mutex_unlock(&w->post_lock);
    event_active(w->post_ev, EV_READ, 0);
}

static void
drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    gx_worker_t *w = arg;

    if (w->n_conns > 0)
        gx_log(GX_LOG_WARN, "drain timeout: closing connections worker=%u connections=%u",
               w->id, w->n_conns);
    while (w->conns != NULL)
        gx__conn_free(w->conns);
    worker_stop(w);
}

static void
worker_drain(gx_worker_t *w)
{
    uint32_t ms = w->srv->conf.limits.drain_timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    if (w->draining)
        return;
    w->draining = 1;
    if (w->lis_h2c != NULL)
        evconnlistener_free(w->lis_h2c);
    if (w->lis_tls != NULL)
        evconnlistener_free(w->lis_tls);
    w->lis_h2c = w->lis_tls = NULL;
    for (gx_conn_t *c = w->conns, *next; c != NULL; c = next) {
        next = c->next;
        gx__conn_drain(c);
    }
    evtimer_add(w->drain_ev, &tv);
    gx__worker_conn_gone(w);
}

/*
 * Resumes up to RESUME_ROUND calls of @p fifo with their connections held
 * open for the whole round: each connection writes once, after its last
 * answer, instead of once per call.  @return the calls left
 */
#define RESUME_ROUND 256

static gx_call_t *
resume_some(gx_worker_t *w, gx_call_t *fifo)
{
    gx_conn_t *conns[RESUME_ROUND];
    gx_call_t *calls[RESUME_ROUND];
    unsigned n = 0;

    for (; fifo != NULL && n < RESUME_ROUND; n++) {
        calls[n] = fifo;
        conns[n] = fifo->conn;
        fifo = fifo->post_next;
        if (conns[n] != NULL)
            gx__conn_io_begin(conns[n]);
    }
    for (unsigned i = 0; i < n; i++)
        w->srv->dispatch.on_resume(calls[i], w->srv->dispatch.arg);
    /* the last io_end of a connection sends (or frees a connection that ended) */
    for (unsigned i = 0; i < n; i++)
        if (conns[i] != NULL)
            gx__conn_io_end(conns[i]);
    return fifo;
}

static void
post_cb(evutil_socket_t fd, short what, void *arg)
{
    gx_worker_t *w = arg;
    gx_call_t *list, *fifo = NULL;
    gx_post_t *fns, *fns_fifo = NULL;
    int drain;

    pthread_mutex_lock(&w->post_lock);
    list = w->posted;
    w->posted = NULL;
    fns = w->fns;
    w->fns = NULL;
    drain = w->post_drain;
    w->post_drain = 0;
    pthread_mutex_unlock(&w->post_lock);
    while (list != NULL) {
        gx_call_t *next = list->post_next;
        list->post_next = fifo;
        fifo = list;
        list = next;
    }
    while (fifo != NULL)
        fifo = resume_some(w, fifo);
    while (fns != NULL) {
        gx_post_t *next = fns->next;
        fns->next = fns_fifo;
        fns_fifo = fns;
        fns = next;
    }
    while (fns_fifo != NULL) {
        gx_post_t *p = fns_fifo;
        fns_fifo = p->next;
        p->fn(p);
    }
    if (drain)
        worker_drain(w);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
    gx_worker_t *w = arg;

    if (w->srv->dispatch.on_tick != NULL)
        w->srv->dispatch.on_tick(w->id, 0, w->srv->dispatch.arg);
}

static int
worker_init(gx_server_t *srv, gx_worker_t *w, unsigned id, char *err, size_t errlen)
{
    struct timeval tick = {0, TICK_MS * 1000};
    struct event_config *cfg;
    int fd;

    w->srv = srv;
    w->id = id;
    /* each worker refuses past its share: no counter shared between workers per call */
    w->max_calls = (srv->conf.limits.max_calls + srv->n_workers - 1) / srv->n_workers;
    pthread_mutex_init(&w->post_lock, NULL);
    /* precise timers: the coarse clock (4 ms ticks) fires deadlines early */
    cfg = event_config_new();
    if (cfg == NULL)
        goto nomem;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    w->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (w->base == NULL)
        goto nomem;
    w->slab = gx_slab_new();
    if (w->slab == NULL)
        goto nomem;
    gx_slab_mem(w->slab, &w->h2_mem);
    w->post_ev = event_new(w->base, -1, 0, post_cb, w);
    w->tick_ev = event_new(w->base, -1, EV_PERSIST, tick_cb, w);
    w->drain_ev = evtimer_new(w->base, drain_timeout_cb, w);
    w->accept_ev = evtimer_new(w->base, accept_resume_cb, w);
    if (w->post_ev == NULL || w->tick_ev == NULL || w->drain_ev == NULL || w->accept_ev == NULL)
        goto nomem;
    event_add(w->tick_ev, &tick);
    for (int tls = 0; tls < 2; tls++) {
        gx_listen_addr_t *la = tls ? &srv->tls : &srv->h2c;
        if (la->len == 0)
            continue;
        fd = id == 0 ? la->fd : socket_bind(&la->ss, la->len);
        if (fd < 0) {
            snprintf(err, errlen, "%s: cannot listen on %s: %s", tls ? "tls_listen" : "listen",
                     la->str, strerror(-fd));
            return GX_EIO;
        }
        if (id == 0)
            la->fd = -1; /* the listener owns it now */
        struct evconnlistener *lis = evconnlistener_new(w->base, accept_cb, w,
                                                        LEV_OPT_CLOSE_ON_FREE, -1, fd);
        if (lis == NULL) {
            close(fd);
            goto nomem;
        }
        evconnlistener_set_error_cb(lis, accept_error_cb);
        *(tls ? &w->lis_tls : &w->lis_h2c) = lis;
    }
    gx_stats_bind(&w->stats); /* registers the block; the worker thread binds it again */
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    return GX_ENOMEM;
}

static void
worker_deinit(gx_worker_t *w)
{
    while (w->conns != NULL)
        gx__conn_free(w->conns);
    if (w->lis_h2c != NULL)
        evconnlistener_free(w->lis_h2c);
    if (w->lis_tls != NULL)
        evconnlistener_free(w->lis_tls);
    if (w->post_ev != NULL)
        event_free(w->post_ev);
    if (w->tick_ev != NULL)
        event_free(w->tick_ev);
    if (w->drain_ev != NULL)
        event_free(w->drain_ev);
    if (w->accept_ev != NULL)
        event_free(w->accept_ev);
    if (w->base != NULL)
        event_base_free(w->base);
    gx_slab_free(w->slab); /* after the last session */
    pthread_mutex_destroy(&w->post_lock);
}

static void *
worker_main(void *arg)
{
    gx_worker_t *w = arg;
    gx_server_t *srv = w->srv;

    gx_stats_bind(&w->stats);
    event_base_dispatch(w->base);
    while (w->conns != NULL)
        gx__conn_free(w->conns);
    /* a bufferevent freed inside its own callback is finalized by the loop:
     * let those finalizers run before the loop is gone */
    for (int i = 0; i < 4; i++)
        event_base_loop(w->base, EVLOOP_NONBLOCK);
    /* resumes that arrived after the loop stopped still release their calls */
    while (w->posted != NULL || w->fns != NULL)
        post_cb(-1, 0, w);
    if (srv->dispatch.on_tick != NULL)
        srv->dispatch.on_tick(w->id, 1, srv->dispatch.arg);
    gx_arena_cache_flush();
    __atomic_fetch_sub(&srv->n_running, 1, __ATOMIC_ACQ_REL);
    event_active(srv->done_ev, EV_READ, 0);
    return NULL;
}

/* ------------------------------------------------------------------ server */

static void
conf_copy(gx_server_conf_t *dst, const gx_server_conf_t *src)
{
    *dst = *src;
    dst->listen = src->listen ? strdup(src->listen) : NULL;
    dst->tls_listen = src->tls_listen ? strdup(src->tls_listen) : NULL;
    dst->tls_cert = src->tls_cert ? strdup(src->tls_cert) : NULL;
    dst->tls_key = src->tls_key ? strdup(src->tls_key) : NULL;
    dst->tls_client_ca = src->tls_client_ca ? strdup(src->tls_client_ca) : NULL;
    dst->admin_listen = src->admin_listen ? strdup(src->admin_listen) : NULL;
}

static void
conf_free(gx_server_conf_t *c)
{
    free((char *)c->listen);
    free((char *)c->tls_listen);
    free((char *)c->tls_cert);
    free((char *)c->tls_key);
    free((char *)c->tls_client_ca);
    free((char *)c->admin_listen);
}

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
    gx_server_t *srv = arg;

    if (__atomic_load_n(&srv->n_running, __ATOMIC_ACQUIRE) == 0)
        event_base_loopbreak(srv->main_base);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
    gx_server_t *srv = arg;

    gx_log(GX_LOG_INFO, "signal %s: draining timeout_ms=%u", sig == SIGINT ? "INT" : "TERM",
           srv->conf.limits.drain_timeout_ms);
    gx_server_drain(srv);
}

static void
reopen_cb(evutil_socket_t sig, short what, void *arg)
{
    gx_server_t *srv = arg;

    gx_log(GX_LOG_INFO, "signal USR1: reopening log files");
    if (srv->dispatch.on_reopen != NULL)
        srv->dispatch.on_reopen(srv->dispatch.arg);
}

static void
reload_cb(evutil_socket_t sig, short what, void *arg)
{
    gx_log(GX_LOG_INFO, "signal HUP: reloading the TLS certificate");
    gx__tls_reload(arg);
}

static int
server_bind(gx_server_t *srv, char *err, size_t errlen)
{
    int rv;

    if (srv->conf.listen != NULL) {
        rv = listen_addr_bind(&srv->h2c, "listen", srv->conf.listen, err, errlen);
        if (rv != 0)
            return rv;
    }
    if (srv->conf.tls_listen != NULL) {
        rv = gx__tls_ctx_new(&srv->conf, &srv->ssl_ctx, err, errlen);
        if (rv != 0)
            return rv;
        rv = listen_addr_bind(&srv->tls, "tls_listen", srv->conf.tls_listen, err, errlen);
        if (rv != 0)
            return rv;
    }
    if (srv->conf.admin_listen != NULL) {
        rv = listen_addr_bind(&srv->adm, "admin_listen", srv->conf.admin_listen, err, errlen);
        if (rv != 0)
            return rv;
    }
    return 0;
}

/*
 * Every connection is a descriptor.  Raises the soft open-files limit toward
 * the hard one as far as max_connections needs (the soft limit is often 1,024
 * where the hard one is far above), and says so when even the hard limit is
 * short: past it, accepting pauses until connections close.
 */
static void
nofile_fit(uint32_t max_connections)
{
    rlim_t need = (rlim_t)max_connections + NOFILE_RESERVE;
    struct rlimit rl;
    rlim_t was;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
    if (rl.rlim_cur > was && setrlimit(RLIMIT_NOFILE, &rl) == 0)
        gx_log(GX_LOG_INFO, "open files limit raised from=%llu to=%llu",
               (unsigned long long)was, (unsigned long long)rl.rlim_cur);
    else
        rl.rlim_cur = was;
    if (rl.rlim_cur < need)
        gx_log(GX_LOG_WARN,
               "open files limit %llu is below limits.max_connections %u + %d: past it, "
               "accepting pauses until connections close (raise the hard limit, ulimit -Hn, "
               "or lower max_connections)",
               (unsigned long long)rl.rlim_cur, max_connections, NOFILE_RESERVE);
}

int
gx_server_new(const gx_server_conf_t *conf, const gx_dispatch_t *dispatch,
              const gx_admin_handler_t *admin, gx_server_t **out, char *err, size_t errlen)
{
    gx_server_t *srv;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int rv = GX_ENOMEM;

    evthread_use_pthreads();
    signal(SIGPIPE, SIG_IGN);
    srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return GX_ENOMEM;
    conf_copy(&srv->conf, conf);
    srv->dispatch = *dispatch;
    if (admin != NULL)
        srv->admin = *admin;
    srv->h2c.fd = srv->tls.fd = srv->adm.fd = -1;
    pthread_mutex_init(&srv->ssl_lock, NULL);
    srv->n_workers = conf->workers ? conf->workers : (unsigned)(cores > 0 ? cores : 1);
    srv->main_base = event_base_new();
    /* each worker on cache lines of its own (gx_worker_t is aligned to 128 bytes) */
    srv->workers = aligned_alloc(_Alignof(gx_worker_t), srv->n_workers * sizeof(*srv->workers));
    if (srv->workers != NULL)
        memset(srv->workers, 0, srv->n_workers * sizeof(*srv->workers));
    if (srv->main_base == NULL || srv->workers == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    rv = server_bind(srv, err, errlen);
    if (rv != 0)
        goto fail;
    nofile_fit(conf->limits.max_connections);
    for (unsigned i = 0; i < srv->n_workers; i++) {
        rv = worker_init(srv, &srv->workers[i], i, err, errlen);
        if (rv != 0)
            goto fail;
    }
    *out = srv;
    return 0;
fail:
    gx_server_free(srv);
    return rv;
}

const char *
gx_server_addr(const gx_server_t *srv, const char *which)
{
    const gx_listen_addr_t *la = strcmp(which, "tls") == 0     ? &srv->tls
                                 : strcmp(which, "admin") == 0 ? &srv->adm
                                                               : &srv->h2c;

    return la->len != 0 ? la->str : NULL;
}

unsigned
gx_server_workers(const gx_server_t *srv)
{
    return srv->n_workers;
}

int
gx_server_start(gx_server_t *srv)
{
    char err[256];
    int rv;

    srv->sig_int = evsignal_new(srv->main_base, SIGINT, signal_cb, srv);
    srv->sig_term = evsignal_new(srv->main_base, SIGTERM, signal_cb, srv);
    srv->sig_usr1 = evsignal_new(srv->main_base, SIGUSR1, reopen_cb, srv);
    srv->sig_hup = evsignal_new(srv->main_base, SIGHUP, reload_cb, srv);
    srv->done_ev = event_new(srv->main_base, -1, 0, done_cb, srv);
    if (srv->sig_int == NULL || srv->sig_term == NULL || srv->sig_usr1 == NULL ||
        srv->sig_hup == NULL || srv->done_ev == NULL)
        return GX_ENOMEM;
    event_add(srv->sig_int, NULL);
    event_add(srv->sig_term, NULL);
    event_add(srv->sig_usr1, NULL);
    event_add(srv->sig_hup, NULL);
    if (srv->adm.len != 0) {
        rv = gx__admin_start(srv, err, sizeof(err));
        if (rv != 0) {
            gx_log(GX_LOG_ERROR, "admin listener: %s", err);
            return rv;
        }
    }
    for (unsigned i = 0; i < srv->n_workers; i++) {
        __atomic_fetch_add(&srv->n_running, 1, __ATOMIC_ACQ_REL);
        if (pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]) != 0) {
            __atomic_fetch_sub(&srv->n_running, 1, __ATOMIC_ACQ_REL);
            gx_log(GX_LOG_ERROR, "cannot start worker %u", i);
            gx_server_drain(srv);
            return GX_ENOMEM;
        }
        gx_thread_name(srv->workers[i].thread, "gx-worker-%u", i);
    }
    return 0;
}

int
gx_server_draining(const gx_server_t *srv)
{
    return __atomic_load_n(&srv->draining, __ATOMIC_ACQUIRE);
}

void
gx_server_drain(gx_server_t *srv)
{
    if (__atomic_exchange_n(&srv->draining, 1, __ATOMIC_ACQ_REL))
        return;
    for (unsigned i = 0; i < srv->n_workers; i++) {
        gx_worker_t *w = &srv->workers[i];
        pthread_mutex_lock(&w->post_lock);
        w->post_drain = 1;
        pthread_mutex_unlock(&w->post_lock);
        event_active(w->post_ev, EV_READ, 0);
    }
}

void
gx_server_run(gx_server_t *srv)
{
    if (__atomic_load_n(&srv->n_running, __ATOMIC_ACQUIRE) > 0)
        event_base_dispatch(srv->main_base);
    for (unsigned i = 0; i < srv->n_workers; i++)
        if (srv->workers[i].thread)
            pthread_join(srv->workers[i].thread, NULL);
}

void
gx_server_free(gx_server_t *srv)
{
    if (srv == NULL)
        return;
    gx__admin_stop(srv);
    for (unsigned i = 0; srv->workers != NULL && i < srv->n_workers; i++) {
        gx_worker_t *w = &srv->workers[i];
        if (w->srv == NULL)
            continue;
        /* resumes that came after the worker stopped (a store commit finishing
         * late) still release their calls: the worker is gone, so do it here */
        while (w->posted != NULL || w->fns != NULL)
            post_cb(-1, 0, w);
        worker_deinit(w);
    }
    free(srv->workers);
    gx_listen_addr_t *las[] = {&srv->h2c, &srv->tls, &srv->adm};
    for (size_t i = 0; i < sizeof(las) / sizeof(las[0]); i++)
        if (las[i]->fd >= 0)
            close(las[i]->fd);
    if (srv->sig_int != NULL)
        event_free(srv->sig_int);
    if (srv->sig_term != NULL)
        event_free(srv->sig_term);
    if (srv->sig_usr1 != NULL)
        event_free(srv->sig_usr1);
    if (srv->sig_hup != NULL)
        event_free(srv->sig_hup);
    if (srv->sig_int != NULL) {
        /* on the way out: a repeated signal must not kill the teardown (libevent
         * has just put the default disposition back) */
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        signal(SIGUSR1, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
    }
    if (srv->done_ev != NULL)
        event_free(srv->done_ev);
    if (srv->main_base != NULL)
        event_base_free(srv->main_base);
    if (srv->ssl_ctx != NULL)
        SSL_CTX_free(srv->ssl_ctx);
    pthread_mutex_destroy(&srv->ssl_lock);
    conf_free(&srv->conf);
    free(srv);
}
