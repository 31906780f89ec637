/* SPDX-License-Identifier: MIT */
/*
 * Coverage-guided fuzzing of the whole server with libFuzzer: galaxy-poold's
 * own main() runs on a thread of this process (src/main/galaxy_poold.c built
 * with main renamed), with auth_apikey and rbac, a private pool and one worker,
 * and every input is one connection to it over 127.0.0.1.  The fuzzer sees
 * the coverage of the server's code (ours and the modules'), so it learns
 * which bytes reach validation, the handlers and the store, where
 * t/integration/test_fuzz.py mutates blindly.
 *
 * An input is one of two kinds, by its first byte:
 *   even  a sequence of up to 8 gRPC calls on one connection, each as
 *         [method] [flags] [length: 2 bytes, big-endian] [message bytes];
 *         method indexes every method of the served services, flags pick
 *         the caller (none, the admin key, an unknown key, a malformed
 *         header), gzip, a grpc-timeout, a split of the message into two
 *         DATA frames, and whether its lease_token field (if it has one)
 *         becomes the token the last Register on the connection got: a
 *         fuzzer cannot guess 128 random bits, and Heartbeat, Deregister and
 *         HeartbeatStream do little without them.  The calls go one after
 *         another, so one input can create a pool, then register into it,
 *         then beat and list it.
 *   odd   raw bytes: with bit 1 clear, after the HTTP/2 client preface (frames
 *         as the fuzzer makes them); with it set, to the admin HTTP port
 *         (/healthz, /readyz, /metrics; libevent's evhttp parses them).
 *
 * A crash or a sanitizer report in the server is the fuzzer's crash.  A
 * server that stops answering is one too: every 200 inputs
 * (GX_FUZZ_HEALTH_EVERY) and after a call that got no end, a Health Check on
 * a fresh connection must answer SERVING within 5 s, or the harness aborts.
 * The server's state grows over a run (nodes, pools, keys stay), so a crash
 * may need the inputs before it: libFuzzer writes the one that crashed, and
 * `t/fuzz/run.sh 0 crash-*` replays it.
 *
 *   t/fuzz/run.sh [seconds]   builds with clang and runs (README "Fuzzing")
 *   t/fuzz/replay [FILE...]   the seeds and FILEs once, without libFuzzer (make check)
 */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <protobuf-c/protobuf-c.h>
#include <zlib.h>

#include "galaxy/pool/v1/pool.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"

int gx_poold_main(int argc, char **argv);
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ADMIN_KEY "gx-fuzz-admin-key-0123456789abcdef"
#define MAX_CALLS 8
#define QUIET_MS 50    /* a call with nothing heard for this long is left open */
#define HEALTH_EVERY 200

static const ProtobufCServiceDescriptor *const services[] = {
    &galaxy__pool__v1__node_registry__descriptor,
    &galaxy__pool__v1__discovery__descriptor,
    &galaxy__pool__v1__pool_admin__descriptor,
    &galaxy__pool__v1__jobs__descriptor,
    &grpc__health__v1__health__descriptor,
    &grpc__reflection__v1__server_reflection__descriptor,
    &grpc__reflection__v1alpha__server_reflection__descriptor,
};

static char paths[64][128];
static const ProtobufCMethodDescriptor *methods[64];
static size_t n_paths;
static struct sockaddr_in server_addr, admin_addr;
static char dir[256];
static unsigned long inputs, health_every = HEALTH_EVERY;

static void
die(const char *what)
{
    fprintf(stderr, "fuzz_poold: %s\n", what);
    abort();
}

/* ------------------------------------------------------------ the server */

static char *server_argv[16];

static void *
server_main(void *arg)
{
    int argc = 0;

    while (server_argv[argc] != NULL)
        argc++;
    fprintf(stderr, "fuzz_poold: galaxy-poold exited with %d\n", gx_poold_main(argc, server_argv));
    abort(); /* it must serve until the process ends */
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        die("cannot write the configuration");
}

/* The addresses the server bound, from its ready file: "h2c=127.0.0.1:PORT", "admin=...". */
static int
ready_read(const char *path)
{
    char line[256];
    FILE *f = fopen(path, "r");
    int found = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned port;
        struct sockaddr_in *sa = NULL;
        if (sscanf(line, "h2c=127.0.0.1:%u", &port) == 1)
            sa = &server_addr;
        else if (sscanf(line, "admin=127.0.0.1:%u", &port) == 1)
            sa = &admin_addr;
        if (sa != NULL) {
            sa->sin_family = AF_INET;
            sa->sin_port = htons((uint16_t)port);
            sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            found++;
        }
    }
    fclose(f);
    return found == 2;
}

static void health_or_die(void);
static void seeds_write(const char *corpus);
static size_t method_index(const char *name);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static char conf[300], data[300], ready[300];
    const char *mod_dir = getenv("GX_FUZZ_MODULE_DIR");
    pthread_t t;
    pthread_attr_t attr;

    for (size_t s = 0; s < sizeof(services) / sizeof(services[0]); s++)
        for (unsigned m = 0; m < services[s]->n_methods && n_paths < 64; m++) {
            methods[n_paths] = &services[s]->methods[m];
            snprintf(paths[n_paths++], sizeof(paths[0]), "/%s/%s", services[s]->name,
                     services[s]->methods[m].name);
        }
    snprintf(dir, sizeof(dir), "%s/gx-fuzz.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(dir) == NULL)
        die("mkdtemp");
    snprintf(conf, sizeof(conf), "%s/poold.yaml", dir);
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(ready, sizeof(ready), "%s/ready", dir);
    write_file(conf, "server:\n"
                     "  log_level: error\n"
                     "  access_log: \"/dev/null\"\n"
                     /* bounds a few calls can reach: messages, answers, streams, nodes */
                     "limits:\n"
                     "  max_recv_message_bytes: 16384\n"
                     "  conn_recv_buffer_bytes: 16384\n"
                     "  server_recv_buffer_bytes: 32768\n"
                     "  conn_send_queue_bytes: 16384\n"
                     "  server_send_queue_bytes: 32768\n"
                     "  max_calls: 24\n"
                     "registry:\n"
                     "  watch_history: 64\n"
                     "  max_nodes: 200\n"
                     "  max_node_memory_mb: 1\n"
                     "pools:\n"
                     "  - name: mainnet\n"
                     "    visibility: public\n"
                     "  - name: vault\n"
                     "    visibility: private\n"
                     "    max_nodes: 50\n"
                     "modules:\n"
                     "  - path: auth_apikey\n"
                     "  - path: rbac\n"
                     "  - path: route_p2c\n");
    setenv("GALAXY_ADMIN_KEY", ADMIN_KEY, 1);
    if (getenv("GX_FUZZ_HEALTH_EVERY") != NULL && atol(getenv("GX_FUZZ_HEALTH_EVERY")) > 0)
        health_every = (unsigned long)atol(getenv("GX_FUZZ_HEALTH_EVERY"));
    {
        char **a = server_argv;
        *a++ = "galaxy-poold";
        *a++ = "-c";
        *a++ = conf;
        *a++ = "--listen";
        *a++ = "127.0.0.1:0";
        *a++ = "--admin-listen";
        *a++ = "127.0.0.1:0";
        *a++ = "--data-dir";
        *a++ = data;
        *a++ = "--workers";
        *a++ = "1";
        *a++ = "--ready-file";
        *a++ = ready;
        *a++ = "--module-dir";
        *a++ = (char *)(mod_dir != NULL ? mod_dir : GX_FUZZ_MODULE_DIR);
        *a = NULL;
    }
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 8 << 20);
    if (pthread_create(&t, &attr, server_main, NULL) != 0)
        die("pthread_create");
    for (int i = 0; i < 300 && !ready_read(ready); i++)
        usleep(100 * 1000);
    if (server_addr.sin_port == 0)
        die("the server did not start within 30 s");
    health_or_die();
    for (int i = *argc - 1; i > 0; i--) {
        struct stat st;
        if ((*argv)[i][0] != '-' && stat((*argv)[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            seeds_write((*argv)[i]);
            break;
        }
    }
    fprintf(stderr, "fuzz_poold: galaxy-poold serving on port %u (admin %u), %zu methods, "
            "state in %s\n", ntohs(server_addr.sin_port), ntohs(admin_addr.sin_port), n_paths, dir);
    return 0;
}

/* --------------------------------------------------------- the connection */

typedef struct {
    int fd;
    nghttp2_session *s;
    int32_t stream;      /* the call in flight */
    int closed;          /* it ended */
    int serving;         /* a Health Check answered SERVING */
    uint8_t resp[4096];  /* the call's response DATA, as far as it fits */
    size_t resp_len;
    char token[128];     /* the lease token of the last Register answered */
    char status[128];    /* grpc-status and grpc-message, for GX_FUZZ_VERBOSE */
    int code;            /* grpc-status, -1 before the trailers */
    const uint8_t *body; /* what the data provider sends, and how */
    size_t body_len, body_off, split;
} client_t;

static int
conn_open_to(const struct sockaddr_in *to)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;

    if (fd < 0)
        die("socket");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int
conn_open(void)
{
    return conn_open_to(&server_addr);
}

static int
send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/*
 * Sends what the session has, then reads until the call in flight ends, the
 * server closes, or nothing comes for @p quiet_ms.  @return 0 when the call
 * ended, 1 when it is still open, -1 when the connection is gone
 */
static int
pump(client_t *c, int quiet_ms)
{
    uint8_t buf[16384];

    for (;;) {
        const uint8_t *out;
        ssize_t n;
        struct pollfd p = {c->fd, POLLIN, 0};

        while ((n = nghttp2_session_mem_send(c->s, &out)) > 0)
            if (send_all(c->fd, out, (size_t)n) != 0)
                return -1;
        if (n < 0)
            return -1;
        if (c->closed)
            return 0;
        if (poll(&p, 1, quiet_ms) <= 0)
            return 1;
        n = recv(c->fd, buf, sizeof(buf), 0);
        if (n <= 0 || nghttp2_session_mem_recv(c->s, buf, (size_t)n) < 0)
            return -1;
    }
}

static ssize_t
body_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
          nghttp2_data_source *src, void *arg)
{
    client_t *c = arg;
    size_t left = c->body_len - c->body_off;

    /* a split sends the message in two DATA frames: the server reassembles */
    if (c->split > c->body_off && c->split - c->body_off < left)
        left = c->split - c->body_off;
    if (left > len)
        left = len;
    memcpy(buf, c->body + c->body_off, left);
    c->body_off += left;
    if (c->body_off == c->body_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)left;
}

static int
on_close(nghttp2_session *s, int32_t id, uint32_t code, void *arg)
{
    client_t *c = arg;

    if (id == c->stream)
        c->closed = 1;
    return 0;
}

/* A Health Check's answer (SERVING is field 1 = 1), and the call's DATA kept for after. */
static int
on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *arg)
{
    client_t *c = arg;
    static const uint8_t serving[] = {0, 0, 0, 0, 2, 0x08, 0x01};

    if (id != c->stream)
        return 0;
    if (len == sizeof(serving) && memcmp(data, serving, len) == 0)
        c->serving = 1;
    if (len <= sizeof(c->resp) - c->resp_len) {
        memcpy(c->resp + c->resp_len, data, len);
        c->resp_len += len;
    }
    return 0;
}

static int
on_header(nghttp2_session *s, const nghttp2_frame *fr, const uint8_t *name, size_t nlen,
          const uint8_t *value, size_t vlen, uint8_t flags, void *arg)
{
    client_t *c = arg;
    size_t at = strlen(c->status);

    if (fr->hd.stream_id != c->stream || nlen <= 5 || memcmp(name, "grpc-", 5) != 0)
        return 0;
    if (nlen == 11 && memcmp(name + 5, "status", 6) == 0)
        c->code = vlen > 0 && vlen < 3 ? atoi((const char *)value) : 99;
    if ((nlen == 11 && memcmp(name + 5, "status", 6) == 0) ||
        (nlen == 12 && memcmp(name + 5, "message", 7) == 0))
        snprintf(c->status + at, sizeof(c->status) - at, " %.*s", (int)vlen, value);
    return 0;
}

static int
client_open(client_t *c)
{
    static nghttp2_session_callbacks *cbs;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};

    memset(c, 0, sizeof(*c));
    if (cbs == NULL) {
        if (nghttp2_session_callbacks_new(&cbs) != 0)
            die("nghttp2_session_callbacks_new");
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_close);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
        nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    }
    c->fd = conn_open();
    if (c->fd < 0)
        return -1;
    if (nghttp2_session_client_new(&c->s, cbs, c) != 0)
        die("nghttp2_session_client_new");
    nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, 1);
    return 0;
}

static void
client_close(client_t *c)
{
    if (c->s != NULL)
        nghttp2_session_del(c->s);
    if (c->fd >= 0)
        close(c->fd);
    c->s = NULL;
    c->fd = -1;
}

/* ------------------------------------------------------------------ calls */

/* gzip of @p in into @p out (cap bytes): @return its length, 0 if it did not fit */
static size_t
gzip(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    z_stream z = {0};
    size_t n = 0;

    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return 0;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) == Z_STREAM_END)
        n = z.total_out;
    deflateEnd(&z);
    return n;
}

/* The lease_token of a response that has one (RegisterResponse), kept in @p c. */
static void
token_keep(client_t *c, const ProtobufCMessageDescriptor *out)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(out, "lease_token");
    ProtobufCMessage *m;

    if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING || c->resp_len < 5 || c->resp[0] != 0)
        return;
    m = protobuf_c_message_unpack(out, NULL, c->resp_len - 5, c->resp + 5);
    if (m == NULL)
        return;
    snprintf(c->token, sizeof(c->token), "%s", *(char **)((uint8_t *)m + f->offset));
    protobuf_c_message_free_unpacked(m, NULL);
}

/*
 * @p msg (@p len bytes) with its lease_token set to the kept one, into @p out:
 * @return its length; @p msg as it is when it has no such field or does not decode
 */
static size_t
with_token(client_t *c, const ProtobufCMessageDescriptor *in, const uint8_t *msg, size_t len,
           uint8_t *out, size_t cap)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(in, "lease_token");
    ProtobufCMessage *m;
    char **at, *was;

    memcpy(out, msg, len);
    if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING ||
        (m = protobuf_c_message_unpack(in, NULL, len, msg)) == NULL)
        return len;
    at = (char **)((uint8_t *)m + f->offset);
    was = *at;
    *at = c->token;
    if (protobuf_c_message_get_packed_size(m) <= cap)
        len = protobuf_c_message_pack(m, out);
    *at = was;
    protobuf_c_message_free_unpacked(m, NULL);
    return len;
}

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}

/*
 * One call: the method, caller and form from @p flags, the message @p msg.
 * @return as pump()
 */
static int
call(client_t *c, size_t method, uint8_t flags, const uint8_t *msg, size_t len)
{
    const char *path = paths[method];
    static const char *const auth[] = {NULL, "Bearer " ADMIN_KEY, "Bearer gx-unknown-key-42",
                                       "Basic Zm9vOmJhcg=="};
    static uint8_t frame[5 + 65536 + 64];
    nghttp2_nv nv[9] = {
        NV(":method", "POST"), NV(":scheme", "http"), NV(":authority", "127.0.0.1"),
        NV(":path", path), NV("content-type", "application/grpc"), NV("te", "trailers"),
    };
    size_t n = 6, body = len;
    nghttp2_data_provider dp = {.read_callback = body_read};
    int rv;

    if ((flags & 128) && c->token[0] != '\0')
        len = with_token(c, methods[method]->input, msg, len, frame + 5, sizeof(frame) - 5);
    else
        memcpy(frame + 5, msg, len);
    msg = frame + 5;
    if (auth[flags & 3] != NULL) {
        nghttp2_nv a = NV("authorization", auth[flags & 3]);
        nv[n++] = a;
    }
    frame[0] = 0;
    body = len;
    if (flags & 4) {
        static uint8_t plain[65536 + 256];
        size_t z;
        memcpy(plain, msg, len);
        z = gzip(plain, len, frame + 5, sizeof(frame) - 5);
        if (z > 0) {
            nghttp2_nv e = NV("grpc-encoding", "gzip");
            nv[n++] = e;
            frame[0] = 1;
            body = z;
        } else {
            memcpy(frame + 5, plain, len);
        }
    }
    if (flags & 8) {
        nghttp2_nv t = NV("grpc-timeout", "2m");
        nv[n++] = t;
    }
    frame[1] = (uint8_t)(body >> 24);
    frame[2] = (uint8_t)(body >> 16);
    frame[3] = (uint8_t)(body >> 8);
    frame[4] = (uint8_t)body;
    c->body = frame;
    c->body_len = 5 + body;
    c->body_off = 0;
    c->split = flags & 16 ? 1 + ((flags >> 5) & 3) * (c->body_len / 4 + 1) : 0;
    c->closed = 0;
    c->serving = 0;
    c->resp_len = 0;
    c->status[0] = '\0';
    c->code = -1;
    c->stream = nghttp2_submit_request(c->s, NULL, nv, n, &dp, NULL);
    if (c->stream < 0)
        return -1;
    rv = pump(c, QUIET_MS);
    if (rv == 1) /* a stream that goes on (Watch, HeartbeatStream): we are done with it */
        nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, c->stream, NGHTTP2_CANCEL);
    if (rv == 0)
        token_keep(c, methods[method]->output);
    if (getenv("GX_FUZZ_VERBOSE") != NULL)
        fprintf(stderr, "fuzz_poold: %s flags=%#x -> %s%s\n", path, flags,
                rv == 0 ? "status" : rv == 1 ? "open" : "connection gone", c->status);
    return rv;
}

/* The server answers a Health Check on a fresh connection within 5 s, or we abort. */
static void
health_or_die(void)
{
    static const uint8_t empty[1];
    client_t c;
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (client_open(&c) == 0) {
            call(&c, method_index("grpc.health.v1.Health/Check"), 0, empty, 0);
            if (!c.serving)
                pump(&c, 1000);
            client_close(&c);
            if (c.serving)
                return;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (t1.tv_sec - t0.tv_sec >= 5)
            die("the server stopped answering Health Check (see the last input)");
        usleep(10 * 1000);
    }
}

/* ------------------------------------------------------------------ seeds */

/*
 * A request for every method, its fields filled in from their names (a pool
 * that exists, a node id, a specialization, one label), so that the first
 * inputs already reach the handlers; written into an empty corpus directory.
 * Built from the descriptors, so a method added later gets its seed too.
 */
static uint8_t seed_mem[1 << 16];
static size_t seed_used;

static void *
seed_alloc(size_t n)
{
    void *p;

    n = (n + 15) & ~(size_t)15;
    if (seed_used + n > sizeof(seed_mem))
        die("seed message too big");
    p = seed_mem + seed_used;
    seed_used += n;
    memset(p, 0, n);
    return p;
}

static const char *
seed_string(const char *field)
{
    static const struct { const char *part, *value; } by_name[] = {
        /* the first whose part is in the field's name wins */
        {"filename", "galaxy/pool/v1/pool.proto"}, {"symbol", "galaxy.pool.v1.Discovery"},
        {"pool", "mainnet"}, {"node_id", "fz-node-1"}, {"specialization", "gpu"},
        {"address", "127.0.0.1:9000"}, {"key", "zone"}, {"value", "eu-1"}, {"name", "fz-pool"},
        {"version", "1.0.0"}, {"token", ""}, {"service", ""}, {"host", "127.0.0.1"},
        {"policy", ""}, {"tier", "main"}, {"description", "fuzzed"},
    };

    if (strcmp(field, "id") == 0)
        return "fz-node-1";
    for (size_t i = 0; i < sizeof(by_name) / sizeof(by_name[0]); i++)
        if (strstr(field, by_name[i].part) != NULL)
            return by_name[i].value;
    return "fz";
}

static uint32_t
seed_number(const char *field)
{
    if (strstr(field, "_ms") != NULL)
        return 10000;
    if (strstr(field, "max") != NULL || strstr(field, "size") != NULL)
        return 50;
    return 1;
}

static ProtobufCMessage *seed_message(const ProtobufCMessageDescriptor *d, int depth);

/* One value of field @p f at @p at. */
static void
seed_value(const ProtobufCFieldDescriptor *f, void *at, int depth)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        *(uint32_t *)at = seed_number(f->name);
        break;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        *(uint64_t *)at = strstr(f->name, "revision") != NULL ? 0 : seed_number(f->name);
        break;
    case PROTOBUF_C_TYPE_FLOAT: *(float *)at = 0.5f; break;
    case PROTOBUF_C_TYPE_DOUBLE: *(double *)at = 0.5; break;
    case PROTOBUF_C_TYPE_BOOL: *(protobuf_c_boolean *)at = 0; break;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *e = f->descriptor;
        *(int *)at = e->n_values > 1 ? e->values[1].value : 0; /* past UNSPECIFIED */
        break;
    }
    case PROTOBUF_C_TYPE_STRING: *(const char **)at = seed_string(f->name); break;
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = at;
        b->data = (uint8_t *)"fz-payload";
        b->len = 10;
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        *(ProtobufCMessage **)at = depth < 4 ? seed_message(f->descriptor, depth + 1) : NULL;
        break;
    }
}

static size_t
seed_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    default: return 4;
    }
}

static ProtobufCMessage *
seed_message(const ProtobufCMessageDescriptor *d, int depth)
{
    ProtobufCMessage *m = seed_alloc(d->sizeof_message);
    uint8_t *base = (uint8_t *)m;

    d->message_init(m);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            /* the first member of each oneof */
            if (*(uint32_t *)(base + f->quantifier_offset) != 0)
                continue;
            *(uint32_t *)(base + f->quantifier_offset) = f->id;
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            void *one = seed_alloc(seed_size(f->type));
            *(size_t *)(base + f->quantifier_offset) = 1;
            *(void **)(base + f->offset) = one;
            seed_value(f, one, depth);
            continue;
        } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0 &&
                   f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE) {
            *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
        }
        seed_value(f, base + f->offset, depth);
    }
    return m;
}

static void
seed_write(const char *corpus, const char *name, const uint8_t *p, size_t n)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/seed-%s", corpus, name);
    f = fopen(path, "w");
    if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0)
        die("cannot write a seed");
}

/* Appends one call to @p in: [method] [flags] [length] [message]. */
static size_t
seed_call(uint8_t *in, size_t at, size_t method, uint8_t flags)
{
    const ProtobufCServiceDescriptor *sd = NULL;
    size_t m = method, len;

    for (size_t s = 0; sd == NULL; s++)
        if (m < services[s]->n_methods)
            sd = services[s];
        else
            m -= services[s]->n_methods;
    seed_used = 0;
    len = protobuf_c_message_pack(seed_message(sd->methods[m].input, 0), in + at + 4);
    in[at] = (uint8_t)method;
    in[at + 1] = flags;
    in[at + 2] = (uint8_t)(len >> 8);
    in[at + 3] = (uint8_t)len;
    return at + 4 + len;
}

static size_t
method_index(const char *name)
{
    for (size_t i = 0; i < n_paths; i++)
        if (strstr(paths[i], name) != NULL)
            return i;
    die("no such method");
    return 0;
}

static const char admin_scrape[] = "\3GET /metrics HTTP/1.1\r\nHost: fz\r\n\r\n";
static const char admin_probes[] = "\3GET /healthz HTTP/1.1\r\n\r\nHEAD /readyz HTTP/1.1\r\n\r\n";

static void
seeds_write(const char *corpus)
{
    static uint8_t in[8192];
    DIR *d = opendir(corpus);
    struct dirent *e;
    size_t n;

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') {
            closedir(d);
            return; /* a corpus of its own already */
        }
    closedir(d);
    for (size_t i = 0; i < n_paths; i++) {
        char name[128], *p;
        in[0] = 0;
        n = seed_call(in, 1, i, 1); /* as the admin */
        snprintf(name, sizeof(name), "%s", paths[i] + 1); /* Service/Method: Service.Method */
        if ((p = strchr(name, '/')) != NULL)
            *p = '.';
        seed_write(corpus, name, in, n);
    }
    /* a node's life on one connection: register, beat, look, drain, leave */
    n = 1;
    n = seed_call(in, n, method_index("NodeRegistry/Register"), 1);
    n = seed_call(in, n, method_index("NodeRegistry/Heartbeat"), 128);
    n = seed_call(in, n, method_index("Discovery/GetNode"), 0);
    n = seed_call(in, n, method_index("Discovery/ListNodes"), 0);
    n = seed_call(in, n, method_index("Jobs/SubmitJob"), 1);
    n = seed_call(in, n, method_index("NodeRegistry/Drain"), 1);
    n = seed_call(in, n, method_index("NodeRegistry/Deregister"), 128);
    seed_write(corpus, "node-life", in, n);
    /* the admin port: a scrape, and two probes on one kept-alive connection */
    seed_write(corpus, "admin-metrics", (const uint8_t *)admin_scrape, sizeof(admin_scrape) - 1);
    seed_write(corpus, "admin-probes", (const uint8_t *)admin_probes, sizeof(admin_probes) - 1);
}

/* ------------------------------------------------------------------ input */

/* @p data on a new connection to @p to, after @p preface: then what comes back, until close */
static void
raw(const struct sockaddr_in *to, const char *preface, const uint8_t *data, size_t size)
{
    uint8_t buf[4096];
    int fd = conn_open_to(to);

    if (fd < 0)
        return;
    if (send_all(fd, (const uint8_t *)preface, strlen(preface)) == 0 &&
        send_all(fd, data, size) == 0 && shutdown(fd, SHUT_WR) == 0) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t n;
        size_t got = 0;
        /* what the server says back, until it has read our end and closes */
        while (poll(&p, 1, 1000) > 0 && (n = recv(fd, buf, sizeof(buf), 0)) > 0)
            got += (size_t)n;
        if (getenv("GX_FUZZ_VERBOSE") != NULL)
            fprintf(stderr, "fuzz_poold: raw %zu bytes to port %u -> %zu bytes back\n", size,
                    ntohs(to->sin_port), got);
    }
    close(fd);
}

/*
 * The fuzz may delete the pools or narrow them (UpdatePool cannot widen a
 * pool back: zero values keep what is stored), after which every Register
 * fails and the rest of the run explores less.  So after a DeletePool or
 * UpdatePool that succeeded, both pools are made again as configured: delete
 * with force (their nodes go too), then create.
 */
static void
pools_reset(void)
{
    static const struct { const char *name; Galaxy__Pool__V1__Visibility vis; uint32_t max; } pools[] = {
        {"mainnet", GALAXY__POOL__V1__VISIBILITY__VISIBILITY_PUBLIC, 0},
        {"vault", GALAXY__POOL__V1__VISIBILITY__VISIBILITY_PRIVATE, 50},
    };
    static uint8_t buf[256];
    client_t c;

    if (client_open(&c) != 0)
        return;
    for (size_t i = 0; i < sizeof(pools) / sizeof(pools[0]); i++) {
        Galaxy__Pool__V1__DeletePoolRequest del = GALAXY__POOL__V1__DELETE_POOL_REQUEST__INIT;
        Galaxy__Pool__V1__Pool pool = GALAXY__POOL__V1__POOL__INIT;
        Galaxy__Pool__V1__CreatePoolRequest create = GALAXY__POOL__V1__CREATE_POOL_REQUEST__INIT;

        del.name = (char *)pools[i].name;
        del.force = 1;
        call(&c, method_index("PoolAdmin/DeletePool"), 1, buf,
             galaxy__pool__v1__delete_pool_request__pack(&del, buf));
        pool.name = (char *)pools[i].name;
        pool.visibility = pools[i].vis;
        pool.max_nodes = pools[i].max;
        create.pool = &pool;
        for (int tries = 0; tries < 50; tries++) {
            call(&c, method_index("PoolAdmin/CreatePool"), 1, buf,
                 galaxy__pool__v1__create_pool_request__pack(&create, buf));
            if (c.code == 0 || c.code == 6) /* 6: ALREADY_EXISTS, a try that took long */
                break;
            usleep(10 * 1000);
        }
        if (c.code != 0 && c.code != 6)
            die("cannot make a pool again after the fuzz deleted or changed it");
    }
    client_close(&c);
}

static void
calls(const uint8_t *data, size_t size)
{
    client_t c;
    int open_ended = 0, reset = 0;

    if (client_open(&c) != 0)
        return;
    for (int i = 0; i < MAX_CALLS && size >= 4; i++) {
        size_t len = (size_t)data[2] << 8 | data[3];
        size_t method = data[0] % n_paths;
        uint8_t flags = data[1];

        data += 4;
        size -= 4;
        if (len > size)
            len = size;
        int rv = call(&c, method, flags, data, len);
        data += len;
        size -= len;
        reset |= c.code == 0 && (strstr(paths[method], "PoolAdmin/DeletePool") != NULL ||
                                 strstr(paths[method], "PoolAdmin/UpdatePool") != NULL);
        if (rv < 0)
            break;
        open_ended |= rv == 1;
    }
    client_close(&c);
    if (open_ended)
        health_or_die();
    if (reset)
        pools_reset();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if ((data[0] & 3) == 1)
        raw(&server_addr, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", data + 1, size - 1);
    else if ((data[0] & 3) == 3)
        raw(&admin_addr, "", data + 1, size - 1);
    else
        calls(data + 1, size - 1);
    if (++inputs % health_every == 0)
        health_or_die();
    return 0;
}
