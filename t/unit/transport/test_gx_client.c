/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the client's bidirectional calls (src/transport/gx_client.c,
 * gx_client_bidi_*): against a small HTTP/2 server run here on a thread
 * (nghttp2, blocking socket), whose behaviour each method path chooses:
 * echo every message, answer three times, flood, stay silent, end the call
 * early with a status, hang up.  The cases cover order, timeouts, the wake
 * descriptor, unary calls while a stream is open, server-ended and
 * client-cancelled streams, deadlines, a lost connection and the bound on
 * queued responses.  Messages are grpc.health.v1 HealthCheckRequests whose
 * `service` string tells them apart.
 */
#include "config.h"

#include "transport/gx_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <nghttp2/nghttp2.h>

#include "grpc/health/v1/health.pb-c.h"
#include "transport/gx_grpc.h"
#include "util/gx_error.h"

typedef Grpc__Health__V1__HealthCheckRequest msg_t;
#define MSG_DESC (&grpc__health__v1__health_check_request__descriptor)

/* ------------------------------------------------------------------------ */
/* The test server                                                          */

/* The server runs on its own thread, where Check's asserts cannot report. */
#define SRV_CHECK(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: test server: %s\n", __FILE__, __LINE__, #cond);                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct {
    int32_t id;
    char path[64];
    uint8_t in[1 << 16];
    size_t in_len;
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    int ended;         /* trailers are due once out is sent */
    int status;        /* grpc-status of the trailers */
    const char *why;   /* grpc-message */
    uint32_t rst_code; /* how the client closed it, when it reset */
    int reset;
} srv_stream_t;

typedef struct {
    int lfd, fd, stop[2];
    pthread_t thread;
    nghttp2_session *session;
    srv_stream_t streams[8];
    int n_streams;
    int hangup;
    uint32_t last_rst; /* error code of the last RST_STREAM received */
    int got_rst;
} srv_t;

static srv_stream_t *
srv_stream(srv_t *s, int32_t id)
{
    for (int i = 0; i < s->n_streams; i++)
        if (s->streams[i].id == id)
            return &s->streams[i];
    return NULL;
}

static void
out_add(srv_stream_t *st, const uint8_t *p, size_t len)
{
    if (st->out_len + len > st->out_cap) {
        st->out_cap = (st->out_len + len) * 2;
        st->out = realloc(st->out, st->out_cap);
        SRV_CHECK(st->out != NULL);
    }
    memcpy(st->out + st->out_len, p, len);
    st->out_len += len;
}

/* Frames and queues a message whose service string is @text. */
static void
out_msg(srv_stream_t *st, const char *text)
{
    msg_t m = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    uint8_t buf[300];
    size_t n;

    m.service = (char *)text;
    n = protobuf_c_message_pack(&m.base, buf + GX_GRPC_PREFIX_LEN);
    gx_grpc_prefix_encode(buf, 0, (uint32_t)n);
    out_add(st, buf, n + GX_GRPC_PREFIX_LEN);
}

static void
stream_end(srv_stream_t *st, int status, const char *why)
{
    st->ended = 1;
    st->status = status;
    st->why = why;
}

/* What the method path does with one request message (@raw, framed). */
static void
on_request(srv_t *s, srv_stream_t *st, const uint8_t *raw, size_t len)
{
    char name[64];

    if (strstr(st->path, "/Silent") != NULL)
        return;
    if (strstr(st->path, "/Hangup") != NULL) {
        s->hangup = 1;
        return;
    }
    if (strstr(st->path, "/Flood") != NULL) {
        for (unsigned i = 0; i <= GX_CLIENT_BIDI_QUEUE_MAX; i++) {
            snprintf(name, sizeof(name), "f%u", i);
            out_msg(st, name);
        }
        return;
    }
    out_add(st, raw, len);
    if (strstr(st->path, "/Burst") != NULL) {
        out_add(st, raw, len);
        out_add(st, raw, len);
    }
    if (strstr(st->path, "/EndAfterOne") != NULL)
        stream_end(st, 5, "gone");
}

static void
messages_take(srv_t *s, srv_stream_t *st)
{
    gx_grpc_prefix_t pre;
    size_t n;

    while (st->in_len >= GX_GRPC_PREFIX_LEN) {
        SRV_CHECK(gx_grpc_prefix_decode(st->in, &pre) == 0);
        n = GX_GRPC_PREFIX_LEN + pre.length;
        if (st->in_len < n)
            return;
        on_request(s, st, st->in, n);
        memmove(st->in, st->in + n, st->in_len - n);
        st->in_len -= n;
    }
}

static ssize_t
srv_read_cb(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
            nghttp2_data_source *src, void *arg)
{
    srv_stream_t *st = srv_stream(arg, id);
    size_t n = st->out_len - st->out_off;
    char status[8];
    nghttp2_nv trailers[2] = {
        {(uint8_t *)"grpc-status", (uint8_t *)status, 11, 0, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"grpc-message", NULL, 12, 0, NGHTTP2_NV_FLAG_NONE},
    };

    if (n > len)
        n = len;
    if (n > 0)
        memcpy(buf, st->out + st->out_off, n);
    st->out_off += n;
    if (st->out_off < st->out_len)
        return (ssize_t)n;
    if (!st->ended)
        return n > 0 ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
    snprintf(status, sizeof(status), "%d", st->status);
    trailers[0].valuelen = strlen(status);
    trailers[1].value = (uint8_t *)(st->why ? st->why : "");
    trailers[1].valuelen = strlen((const char *)trailers[1].value);
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    nghttp2_submit_trailer(session, id, trailers, st->why ? 2 : 1);
    return (ssize_t)n;
}

static int
srv_begin_headers_cb(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
    srv_t *s = arg;
    srv_stream_t *st;

    if (frame->hd.type != NGHTTP2_HEADERS || srv_stream(s, frame->hd.stream_id) != NULL)
        return 0;
    SRV_CHECK(s->n_streams < 8);
    st = &s->streams[s->n_streams++];
    memset(st, 0, sizeof(*st));
    st->id = frame->hd.stream_id;
    return 0;
}

static int
srv_header_cb(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
              size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *arg)
{
    srv_stream_t *st = srv_stream(arg, frame->hd.stream_id);

    if (st != NULL && nlen == 5 && memcmp(name, ":path", 5) == 0 && vlen < sizeof(st->path)) {
        memcpy(st->path, value, vlen);
        st->path[vlen] = '\0';
    }
    return 0;
}

static int
srv_frame_recv_cb(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
    srv_t *s = arg;
    srv_stream_t *st = srv_stream(s, frame->hd.stream_id);
    nghttp2_nv hdrs[2] = {
        {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, NGHTTP2_NV_FLAG_NONE},
    };
    nghttp2_data_provider dp = {.read_callback = srv_read_cb};

    if (frame->hd.type == NGHTTP2_RST_STREAM) {
        s->got_rst = 1;
        s->last_rst = frame->rst_stream.error_code;
        return 0;
    }
    if (st == NULL)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        nghttp2_submit_response(session, st->id, hdrs, 2, &dp);
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && !st->ended)
        stream_end(st, 0, NULL);
    nghttp2_session_resume_data(session, st->id);
    return 0;
}

static int
srv_data_cb(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
            void *arg)
{
    srv_t *s = arg;
    srv_stream_t *st = srv_stream(s, id);

    if (st == NULL || st->ended)
        return 0;
    SRV_CHECK(st->in_len + len <= sizeof(st->in));
    memcpy(st->in + st->in_len, data, len);
    st->in_len += len;
    messages_take(s, st);
    nghttp2_session_resume_data(session, id);
    return 0;
}

static ssize_t
srv_send_cb(nghttp2_session *session, const uint8_t *data, size_t len, int flags, void *arg)
{
    srv_t *s = arg;
    ssize_t n = send(s->fd, data, len, MSG_NOSIGNAL);

    return n < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : n;
}

static void
srv_session_new(srv_t *s)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};

    SRV_CHECK(nghttp2_session_callbacks_new(&cbs) == 0);
    nghttp2_session_callbacks_set_send_callback(cbs, srv_send_cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, srv_begin_headers_cb);
    nghttp2_session_callbacks_set_on_header_callback(cbs, srv_header_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, srv_frame_recv_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, srv_data_cb);
    SRV_CHECK(nghttp2_session_server_new(&s->session, cbs, s) == 0);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(s->session, NGHTTP2_FLAG_NONE, iv, 1);
}

/* Serves one connection until the client leaves, a hang-up or stop. */
static void
srv_serve(srv_t *s)
{
    uint8_t buf[16384];
    struct pollfd p[2] = {{s->fd, POLLIN, 0}, {s->stop[0], POLLIN, 0}};
    ssize_t n;

    srv_session_new(s);
    while (!s->hangup && nghttp2_session_send(s->session) == 0) {
        if (poll(p, 2, -1) < 0 || p[1].revents != 0)
            break;
        n = recv(s->fd, buf, sizeof(buf), 0);
        if (n <= 0 || nghttp2_session_mem_recv(s->session, buf, (size_t)n) < 0)
            break;
    }
    nghttp2_session_del(s->session);
    s->session = NULL;
    close(s->fd);
}

static void *
srv_run(void *arg)
{
    srv_t *s = arg;
    struct pollfd p[2] = {{s->lfd, POLLIN, 0}, {s->stop[0], POLLIN, 0}};

    while (poll(p, 2, -1) > 0 && p[1].revents == 0) {
        s->fd = accept(s->lfd, NULL, NULL);
        if (s->fd < 0)
            break;
        s->hangup = 0;
        srv_serve(s);
    }
    return NULL;
}

static srv_t *
srv_start(char *addr, size_t len)
{
    srv_t *s = calloc(1, sizeof(*s));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof(sa);

    ck_assert_ptr_nonnull(s);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(s->lfd, 0);
    ck_assert_int_eq(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(s->lfd, 4), 0);
    ck_assert_int_eq(getsockname(s->lfd, (struct sockaddr *)&sa, &slen), 0);
    snprintf(addr, len, "127.0.0.1:%u", ntohs(sa.sin_port));
    ck_assert_int_eq(pipe(s->stop), 0);
    ck_assert_int_eq(pthread_create(&s->thread, NULL, srv_run, s), 0);
    return s;
}

static void
srv_stop(srv_t *s)
{
    ck_assert_int_eq(write(s->stop[1], "x", 1), 1);
    pthread_join(s->thread, NULL);
    for (int i = 0; i < s->n_streams; i++)
        free(s->streams[i].out);
    close(s->lfd);
    close(s->stop[0]);
    close(s->stop[1]);
    free(s);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static srv_t *srv;
static gx_client_t *client;

static void
setup(void)
{
    gx_client_opts_t o = {0};
    char addr[64], err[256];

    srv = srv_start(addr, sizeof(addr));
    o.addr = addr;
    ck_assert_msg(gx_client_open(&o, &client, err, sizeof(err)) == 0, "open: %s", err);
}

static void
teardown(void)
{
    gx_client_close(client);
    srv_stop(srv);
}

static gx_client_bidi_t *
bidi_open(const char *method, uint32_t timeout_ms)
{
    gx_client_bidi_t *b = NULL;
    gx_client_status_t st;

    ck_assert_int_eq(gx_client_bidi_open(client, method, MSG_DESC, NULL, 0, timeout_ms, &b, &st),
                     0);
    return b;
}

static void
send_text(gx_client_bidi_t *b, const char *text)
{
    msg_t m = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;

    m.service = (char *)text;
    ck_assert_int_eq(gx_client_bidi_send(b, &m.base), 0);
}

/* Receives one message (within 5 s) and checks its text. */
static void
recv_text(gx_client_bidi_t *b, const char *text)
{
    ProtobufCMessage *m = NULL;
    int rv = gx_client_bidi_recv(b, 5000, -1, &m);

    ck_assert_msg(rv == 0, "recv: %s (%s)", gx_strerror(rv), gx_client_bidi_status(b)->message);
    ck_assert_str_eq(((msg_t *)m)->service, text);
    protobuf_c_message_free_unpacked(m, NULL);
}

/* The call's end (within 5 s): its status code. */
static gx_status_t
recv_end(gx_client_bidi_t *b)
{
    ProtobufCMessage *m = NULL;

    ck_assert_int_eq(gx_client_bidi_recv(b, 5000, -1, &m), GX_ECLOSED);
    ck_assert_ptr_null(m);
    return gx_client_bidi_status(b)->code;
}

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------ */
/* Cases                                                                    */

START_TEST(test_echo_in_order_then_ok)
{
    gx_client_bidi_t *b = bidi_open("/t.Echo/Bidi", 0);

    send_text(b, "one");
    send_text(b, "two");
    recv_text(b, "one");
    send_text(b, "three");
    recv_text(b, "two");
    recv_text(b, "three");
    ck_assert_int_eq(gx_client_bidi_close_send(b), 0);
    ck_assert_int_eq(gx_client_bidi_close_send(b), 0);
    ck_assert_int_eq(recv_end(b), GX_STATUS_OK);
    ck_assert_int_eq(gx_client_bidi_status(b)->origin, GX_CLIENT_ORIGIN_SERVER);
    ck_assert_int_eq(gx_client_bidi_send(b, NULL), GX_EINVAL);
    gx_client_bidi_close(b);
}
END_TEST

START_TEST(test_send_after_half_close_is_einval)
{
    gx_client_bidi_t *b = bidi_open("/t.Echo/Silent", 0);
    msg_t m = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;

    ck_assert_int_eq(gx_client_bidi_close_send(b), 0);
    ck_assert_int_eq(gx_client_bidi_send(b, &m.base), GX_EINVAL);
    gx_client_bidi_close(b);
}
END_TEST

START_TEST(test_recv_times_out_and_goes_on)
{
    gx_client_bidi_t *b = bidi_open("/t.Echo/Silent", 0);
    ProtobufCMessage *m = NULL;
    uint64_t t0 = now_ms();

    send_text(b, "hello");
    ck_assert_int_eq(gx_client_bidi_recv(b, 100, -1, &m), GX_ETIMEDOUT);
    ck_assert_uint_ge(now_ms() - t0, 90);
    ck_assert_uint_lt(now_ms() - t0, 3000);
    ck_assert_int_eq(gx_client_bidi_recv(b, 0, -1, &m), GX_ETIMEDOUT);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(gx_client_bidi_status(b)->code, GX_STATUS_OK);
    send_text(b, "still open");
    gx_client_bidi_close(b);
}
END_TEST

START_TEST(test_wake_fd_ends_the_wait)
{
    gx_client_bidi_t *b = bidi_open("/t.Echo/Silent", 0);
    ProtobufCMessage *m = NULL;
    int p[2];
    uint64_t t0;

    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    t0 = now_ms();
    ck_assert_int_eq(gx_client_bidi_recv(b, GX_CLIENT_WAIT_FOREVER, p[0], &m), GX_ETIMEDOUT);
    ck_assert_uint_lt(now_ms() - t0, 2000);
    gx_client_bidi_close(b);
    close(p[0]);
    close(p[1]);
}
END_TEST

START_TEST(test_unary_while_stream_is_open)
{
    gx_client_bidi_t *b = bidi_open("/t.Echo/Burst", 0);
    msg_t req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    gx_client_status_t st;

    send_text(b, "burst");
    req.service = "unary";
    /* the three answers to the stream arrive while the unary call waits */
    ck_assert_int_eq(
        gx_client_unary(client, "/t.Echo/Unary", &req.base, MSG_DESC, &resp, NULL, 0, 5000, &st),
        0);
    ck_assert_str_eq(((msg_t *)resp)->service, "unary");
    protobuf_c_message_free_unpacked(resp, NULL);
    recv_text(b, "burst");
    recv_text(b, "burst");
    recv_text(b, "burst");
    ck_assert_int_eq(gx_client_bidi_close_send(b), 0);
    ck_assert_int_eq(recv_end(b), GX_STATUS_OK);
    gx_client_bidi_close(b);
}
END_TEST

START_TEST(test_server_ends_the_call_first)
{
    gx_client_bidi_t *b = bidi_open("/t.Echo/EndAfterOne", 0);
    msg_t req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    gx_client_status_t st;

    send_text(b, "last");
    recv_text(b, "last");
    ck_assert_int_eq(recv_end(b), GX_STATUS_NOT_FOUND);
    ck_assert_str_eq(gx_client_bidi_status(b)->message, "gone");
    ck_assert_int_eq(gx_client_bidi_status(b)->origin, GX_CLIENT_ORIGIN_SERVER);
    ck_assert_int_eq(gx_client_bidi_send(b, &req.base), GX_ECLOSED);
    ck_assert_int_eq(gx_client_bidi_close_send(b), GX_ECLOSED);
    gx_client_bidi_close(b);
    /* the connection is still good */
    req.service = "after";
    ck_assert_int_eq(
        gx_client_unary(client, "/t.Echo/Unary", &req.base, MSG_DESC, &resp, NULL, 0, 5000, &st),
        0);
    protobuf_c_message_free_unpacked(resp, NULL);
}
END_TEST

START_TEST(test_close_cancels_an_open_call)
{
    gx_client_bidi_t *b = bidi_open("/t.Echo/Bidi", 0);
    msg_t req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    gx_client_status_t st;

    send_text(b, "x");
    recv_text(b, "x");
    gx_client_bidi_close(b);
    /* a call after it makes sure the reset went out before the server's answer */
    req.service = "y";
    ck_assert_int_eq(
        gx_client_unary(client, "/t.Echo/Unary", &req.base, MSG_DESC, &resp, NULL, 0, 5000, &st),
        0);
    protobuf_c_message_free_unpacked(resp, NULL);
    ck_assert_int_eq(srv->got_rst, 1);
    ck_assert_uint_eq(srv->last_rst, NGHTTP2_CANCEL);
}
END_TEST

START_TEST(test_deadline)
{
    gx_client_bidi_t *b = bidi_open("/t.Echo/Silent", 150);
    ProtobufCMessage *m = NULL;

    send_text(b, "x");
    ck_assert_int_eq(gx_client_bidi_recv(b, GX_CLIENT_WAIT_FOREVER, -1, &m), GX_ECLOSED);
    ck_assert_int_eq(gx_client_bidi_status(b)->code, GX_STATUS_DEADLINE_EXCEEDED);
    ck_assert_int_eq(gx_client_bidi_status(b)->origin, GX_CLIENT_ORIGIN_LOCAL);
    gx_client_bidi_close(b);
}
END_TEST

START_TEST(test_connection_lost)
{
    gx_client_bidi_t *b = bidi_open("/t.Echo/Hangup", 0);
    gx_client_bidi_t *b2;
    gx_client_status_t st;
    msg_t req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;

    send_text(b, "bye");
    ck_assert_int_eq(recv_end(b), GX_STATUS_UNAVAILABLE);
    ck_assert_int_eq(gx_client_bidi_status(b)->origin, GX_CLIENT_ORIGIN_LOCAL);
    ck_assert_int_eq(gx_client_bidi_send(b, &req.base), GX_ECLOSED);
    gx_client_bidi_close(b);
    ck_assert_int_eq(gx_client_bidi_open(client, "/t.Echo/Bidi", MSG_DESC, NULL, 0, 0, &b2, &st),
                     GX_EIO);
    ck_assert_ptr_null(b2);
    ck_assert_int_eq(st.code, GX_STATUS_UNAVAILABLE);
}
END_TEST

START_TEST(test_queue_bound)
{
    gx_client_bidi_t *b = bidi_open("/t.Echo/Flood", 0);
    msg_t req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    ProtobufCMessage *resp = NULL, *m;
    gx_client_status_t st;
    unsigned n = 0;

    send_text(b, "go");
    /* the flood comes in while the unary call waits: more than the queue holds */
    req.service = "u";
    ck_assert_int_eq(
        gx_client_unary(client, "/t.Echo/Unary", &req.base, MSG_DESC, &resp, NULL, 0, 5000, &st),
        0);
    protobuf_c_message_free_unpacked(resp, NULL);
    while (gx_client_bidi_recv(b, 5000, -1, &m) == 0) {
        protobuf_c_message_free_unpacked(m, NULL);
        n++;
    }
    ck_assert_uint_eq(n, GX_CLIENT_BIDI_QUEUE_MAX);
    ck_assert_int_eq(gx_client_bidi_status(b)->code, GX_STATUS_RESOURCE_EXHAUSTED);
    gx_client_bidi_close(b);
}
END_TEST

START_TEST(test_bad_arguments)
{
    gx_client_bidi_t *b = (gx_client_bidi_t *)1;
    gx_client_status_t st;

    ck_assert_int_eq(gx_client_bidi_open(client, "no-slash", MSG_DESC, NULL, 0, 0, &b, &st),
                     GX_EINVAL);
    ck_assert_ptr_null(b);
    ck_assert_int_eq(st.code, GX_STATUS_INTERNAL);
    ck_assert_int_eq(gx_client_bidi_open(client, "/t.Echo/Bidi", NULL, NULL, 0, 0, &b, &st),
                     GX_EINVAL);
    gx_client_bidi_close(NULL);
}
END_TEST

static Suite *
client_suite(void)
{
    Suite *s = suite_create("gx_client");
    TCase *tc = tcase_create("bidi");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_echo_in_order_then_ok);
    tcase_add_test(tc, test_send_after_half_close_is_einval);
    tcase_add_test(tc, test_recv_times_out_and_goes_on);
    tcase_add_test(tc, test_wake_fd_ends_the_wait);
    tcase_add_test(tc, test_unary_while_stream_is_open);
    tcase_add_test(tc, test_server_ends_the_call_first);
    tcase_add_test(tc, test_close_cancels_an_open_call);
    tcase_add_test(tc, test_deadline);
    tcase_add_test(tc, test_connection_lost);
    tcase_add_test(tc, test_queue_bound);
    tcase_add_test(tc, test_bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(client_suite());
    int failures;

    srunner_run_all(sr, CK_NORMAL);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
