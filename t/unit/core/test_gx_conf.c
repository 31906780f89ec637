/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the configuration loader (src/core/gx_conf.c): defaults, every
 * key of the table, the exact "file:line: reason" of each kind of error, the
 * `modules:` list and its gx_mod_conf_get/where accessors, the cross-field
 * checks, and the two configuration files shipped in etc/.  Each case writes
 * its YAML to a mkstemp() file under /tmp.
 */
#include "config.h"

#include "core/gx_conf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <yaml.h>

#include "util/gx_error.h"
#include "util/gx_log.h"

#include "../gx_test_alloc.h"

static int
test_asprintf(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
test_asprintf(char **out, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (alloc_fails())
        return -1;
    va_start(ap, fmt);
    n = vasprintf(out, fmt, ap);
    va_end(ap);
    return n;
}

#define realloc test_realloc
#define strdup test_strdup
#define asprintf test_asprintf
#include "core/gx_conf.c"
#undef realloc
#undef strdup
#undef asprintf

#define ERRLEN 512

typedef struct {
    gx_conf_t conf;
    char path[64];
    char err[ERRLEN];
    int rc;
} fixture_t;

/* Writes @p yaml (length @p len) to a fresh temporary file named in f->path. */
static void
write_yaml(fixture_t *f, const char *yaml, size_t len)
{
    int fd;

    snprintf(f->path, sizeof(f->path), "/tmp/test_gx_conf_XXXXXX");
    fd = mkstemp(f->path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, yaml, len), (ssize_t)len);
    ck_assert_int_eq(close(fd), 0);
}

/* gx_conf_init() then gx_conf_load() of @p yaml; the file is removed afterwards. */
static void
load_n(fixture_t *f, const char *yaml, size_t len)
{
    ck_assert_int_eq(gx_conf_init(&f->conf), 0);
    write_yaml(f, yaml, len);
    f->rc = gx_conf_load(&f->conf, f->path, f->err, sizeof(f->err));
    unlink(f->path);
}

static void
load(fixture_t *f, const char *yaml)
{
    load_n(f, yaml, strlen(yaml));
}

static void
load_ok(fixture_t *f, const char *yaml)
{
    load(f, yaml);
    ck_assert_msg(f->rc == 0, "load failed (%d): %s", f->rc, f->err);
}

/* The load fails with exactly "<file>:<line>: <msg>". */
static void
assert_load_error(const char *yaml, unsigned line, const char *msg)
{
    fixture_t f;
    char want[ERRLEN];

    load(&f, yaml);
    snprintf(want, sizeof(want), "%s:%u: %s", f.path, line, msg);
    ck_assert_int_eq(f.rc, GX_ECONF);
    ck_assert_str_eq(f.err, want);
    gx_conf_deinit(&f.conf);
}

static const char *
srcdir(void)
{
    const char *d = getenv("srcdir");

    return d != NULL ? d : ".";
}

/* ------------------------------------------------------------------------ */
/* Defaults and successful loads                                            */

static void
assert_defaults(const gx_conf_t *c)
{
    gx_limits_t l;

    gx_limits_init(&l);
    ck_assert_uint_eq(c->workers, 0);
    ck_assert_str_eq(c->listen, "127.0.0.1:50051");
    ck_assert_ptr_null(c->tls_listen);
    ck_assert_ptr_null(c->tls_cert);
    ck_assert_ptr_null(c->tls_key);
    ck_assert_ptr_null(c->tls_client_ca);
    ck_assert_str_eq(c->admin_listen, "127.0.0.1:9464");
    ck_assert_str_eq(c->data_dir, "./var");
    ck_assert_uint_eq(c->data_max_mb, 16384);
    ck_assert_str_eq(c->module_dir, GX_PKGLIBDIR);
    ck_assert_str_eq(c->access_log, "stderr");
    ck_assert_int_eq(c->log_level, GX_LOG_INFO);
    ck_assert_int_eq(memcmp(&c->limits, &l, sizeof(l)), 0);
    ck_assert_uint_eq(c->n_modules, 0);
    ck_assert_uint_eq(c->jobs.max_attempts, 3);
    ck_assert_uint_eq(c->jobs.flap_threshold, 4);
    ck_assert_uint_eq(c->jobs.queue_max, 10000);
    ck_assert_uint_eq(c->jobs.ack_timeout_ms, 60000);
    ck_assert_uint_eq(c->jobs.retention_ms, 3600000);
    ck_assert_uint_eq(c->jobs.jobs_max, 1000000);
    ck_assert_uint_eq(c->jobs.max_payload_mb, 1024);
}

START_TEST(test_defaults)
{
    gx_conf_t c;
    char err[ERRLEN];

    ck_assert_int_eq(gx_conf_init(&c), 0);
    assert_defaults(&c);
    ck_assert_ptr_null(c.file);
    ck_assert_int_eq(gx_conf_check(&c, err, sizeof(err)), 0);
    gx_conf_deinit(&c);
    gx_conf_deinit(&c);
}
END_TEST

START_TEST(test_empty_file)
{
    fixture_t f;

    load_ok(&f, "# nothing but a comment\n");
    assert_defaults(&f.conf);
    ck_assert_str_eq(f.conf.file, f.path);
    gx_conf_deinit(&f.conf);

    load_ok(&f, "");
    assert_defaults(&f.conf);
    gx_conf_deinit(&f.conf);

    load_ok(&f, "server:\nlimits: ~\nmodules:\n");
    assert_defaults(&f.conf);
    gx_conf_deinit(&f.conf);
}
END_TEST

static const char all_keys_yaml[] =
    "server:\n"
    "  workers: 8\n"
    "  listen: \"0.0.0.0:7000\"\n"
    "  tls_listen: \"[::1]:7443\"\n"
    "  tls_cert: /etc/gx/cert.pem\n"
    "  tls_key: '/etc/gx/key.pem'\n"
    "  tls_client_ca: /etc/gx/ca.pem\n"
    "  admin_listen: localhost:7464\n"
    "  data_dir: /srv/gx\n"
    "  data_max_mb: 64\n"
    "  module_dir: /opt/gx/modules\n"
    "  log_level: debug\n"
    "  access_log: /var/log/gx/access.log\n"
    "limits:\n"
    "  max_connections: 11\n"
    "  max_concurrent_streams: 12\n"
    "  max_calls: 13\n"
    "  max_header_list_bytes: 2048\n"
    "  initial_window_bytes: 65535\n"
    "  connection_window_bytes: 2147483647\n"
    "  max_frame_bytes: 16777215\n"
    "  max_recv_message_bytes: 1073741824\n"
    "  conn_recv_buffer_bytes: 1073741824\n"
    "  server_recv_buffer_bytes: 1073741824\n"
    "  send_buffer_bytes: 16384\n"
    "  conn_send_queue_bytes: 16384\n"
    "  server_send_queue_bytes: 1073741824\n"
    "  conn_output_bytes: 65536\n"
    "  idle_timeout_ms: 0\n"
    "  first_request_timeout_ms: 100\n"
    "  tls_handshake_timeout_ms: 86400000\n"
    "  stream_reset_burst: 13\n"
    "  stream_reset_rate: 14\n"
    "  max_continuations: 15\n"
    "  max_settings: 16\n"
    "  max_outbound_ack: 17\n"
    "  max_invalid_frames: 0\n"
    "  ping_min_interval_ms: 18\n"
    "  ping_max_strikes: 19\n"
    "  drain_timeout_ms: 20\n";

START_TEST(test_all_keys)
{
    fixture_t f;
    const gx_limits_t *l = &f.conf.limits;

    load_ok(&f, all_keys_yaml);
    ck_assert_uint_eq(f.conf.workers, 8);
    ck_assert_str_eq(f.conf.listen, "0.0.0.0:7000");
    ck_assert_str_eq(f.conf.tls_listen, "[::1]:7443");
    ck_assert_str_eq(f.conf.tls_cert, "/etc/gx/cert.pem");
    ck_assert_str_eq(f.conf.tls_key, "/etc/gx/key.pem");
    ck_assert_str_eq(f.conf.tls_client_ca, "/etc/gx/ca.pem");
    ck_assert_str_eq(f.conf.admin_listen, "localhost:7464");
    ck_assert_str_eq(f.conf.data_dir, "/srv/gx");
    ck_assert_uint_eq(f.conf.data_max_mb, 64);
    ck_assert_str_eq(f.conf.module_dir, "/opt/gx/modules");
    ck_assert_int_eq(f.conf.log_level, GX_LOG_DEBUG);
    ck_assert_str_eq(f.conf.access_log, "/var/log/gx/access.log");
    ck_assert_uint_eq(l->max_connections, 11);
    ck_assert_uint_eq(l->max_concurrent_streams, 12);
    ck_assert_uint_eq(l->max_calls, 13);
    ck_assert_uint_eq(l->max_header_list_bytes, 2048);
    ck_assert_uint_eq(l->initial_window_bytes, 65535);
    ck_assert_uint_eq(l->connection_window_bytes, 2147483647);
    ck_assert_uint_eq(l->max_frame_bytes, 16777215);
    ck_assert_uint_eq(l->max_recv_message_bytes, 1073741824);
    ck_assert_uint_eq(l->conn_recv_buffer_bytes, 1073741824);
    ck_assert_uint_eq(l->server_recv_buffer_bytes, 1073741824);
    ck_assert_uint_eq(l->send_buffer_bytes, 16384);
    ck_assert_uint_eq(l->conn_send_queue_bytes, 16384);
    ck_assert_uint_eq(l->server_send_queue_bytes, 1073741824);
    ck_assert_uint_eq(l->conn_output_bytes, 65536);
    ck_assert_uint_eq(l->idle_timeout_ms, 0);
    ck_assert_uint_eq(l->first_request_timeout_ms, 100);
    ck_assert_uint_eq(l->tls_handshake_timeout_ms, 86400000);
    ck_assert_uint_eq(l->stream_reset_burst, 13);
    ck_assert_uint_eq(l->stream_reset_rate, 14);
    ck_assert_uint_eq(l->max_continuations, 15);
    ck_assert_uint_eq(l->max_settings, 16);
    ck_assert_uint_eq(l->max_outbound_ack, 17);
    ck_assert_uint_eq(l->max_invalid_frames, 0);
    ck_assert_uint_eq(l->ping_min_interval_ms, 18);
    ck_assert_uint_eq(l->ping_max_strikes, 19);
    ck_assert_uint_eq(l->drain_timeout_ms, 20);
    ck_assert_int_eq(gx_conf_check(&f.conf, f.err, sizeof(f.err)), 0);
    gx_conf_deinit(&f.conf);
}
END_TEST

START_TEST(test_registry_keys)
{
    fixture_t f;
    const gx_reg_opts_t *r = &f.conf.registry;

    ck_assert_int_eq(gx_conf_init(&f.conf), 0);
    ck_assert_uint_eq(r->self_preservation_min_nodes, 10);
    ck_assert_uint_eq(r->self_preservation_share, 50);
    ck_assert_uint_eq(r->max_heartbeats_per_second, 0);
    ck_assert_uint_eq(r->max_nodes, 2000000);
    ck_assert_uint_eq(r->max_node_memory_mb, 2048);
    gx_conf_deinit(&f.conf);
    load_ok(&f, "registry:\n"
                "  retention_factor: 3\n"
                "  checkpoint_ms: 1000\n"
                "  watch_history: 7\n"
                "  watch_bytes: 65536\n"
                "  self_preservation_min_nodes: 1\n"
                "  self_preservation_share: 100\n"
                "  max_heartbeats_per_second: 20000\n"
                "  max_nodes: 5\n"
                "  max_node_memory_mb: 1\n");
    ck_assert_uint_eq(r->retention_factor, 3);
    ck_assert_uint_eq(r->checkpoint_ms, 1000);
    ck_assert_uint_eq(r->watch_history, 7);
    ck_assert_uint_eq(r->watch_bytes, 65536);
    ck_assert_uint_eq(r->self_preservation_min_nodes, 1);
    ck_assert_uint_eq(r->self_preservation_share, 100);
    ck_assert_uint_eq(r->max_heartbeats_per_second, 20000);
    ck_assert_uint_eq(r->max_nodes, 5);
    ck_assert_uint_eq(r->max_node_memory_mb, 1);
    ck_assert_int_eq(gx_conf_check(&f.conf, f.err, sizeof(f.err)), 0);
    gx_conf_deinit(&f.conf);
}
END_TEST

START_TEST(test_pools)
{
    fixture_t f;
    const gx_reg_opts_t *r = &f.conf.registry;

    ck_assert_int_eq(gx_conf_init(&f.conf), 0);
    ck_assert_int_eq(r->pools_given, 0); /* the built-in mainnet, testnet, devnet */
    gx_conf_deinit(&f.conf);
    load_ok(&f, "pools:\n"
                "  - name: acme\n"
                "    visibility: private\n"
                "    tier: enterprise\n"
                "    description: \"ACME's pool\"\n"
                "    heartbeat_interval_ms: 2000\n"
                "    node_ttl_ms: 9000\n"
                "    routing_policy: p2c\n"
                "    max_nodes: 50\n"
                "    specializations: [gpu, storage]\n"
                "  - name: open\n"
                "    visibility: public\n");
    ck_assert_int_eq(r->pools_given, 1);
    ck_assert_uint_eq(r->n_pools, 2);
    ck_assert_str_eq(r->pools[0].name, "acme");
    ck_assert_int_eq(r->pools[0].visibility, GALAXY__POOL__V1__VISIBILITY__VISIBILITY_PRIVATE);
    ck_assert_str_eq(r->pools[0].tier, "enterprise");
    ck_assert_str_eq(r->pools[0].description, "ACME's pool");
    ck_assert_uint_eq(r->pools[0].heartbeat_interval_ms, 2000);
    ck_assert_uint_eq(r->pools[0].node_ttl_ms, 9000);
    ck_assert_str_eq(r->pools[0].routing_policy, "p2c");
    ck_assert_uint_eq(r->pools[0].max_nodes, 50);
    ck_assert_uint_eq(r->pools[0].n_specializations, 2);
    ck_assert_str_eq(r->pools[0].specializations[1], "storage");
    ck_assert_str_eq(r->pools[1].name, "open");
    ck_assert_int_eq(r->pools[1].visibility, GALAXY__POOL__V1__VISIBILITY__VISIBILITY_PUBLIC);
    ck_assert_ptr_null(r->pools[1].tier);
    ck_assert_uint_eq(r->pools[1].heartbeat_interval_ms, 0);
    gx_conf_deinit(&f.conf);
    load_ok(&f, "pools: []\n"); /* given, and empty: a new store starts without pools */
    ck_assert_int_eq(r->pools_given, 1);
    ck_assert_uint_eq(r->n_pools, 0);
    gx_conf_deinit(&f.conf);
}
END_TEST

START_TEST(test_log_levels)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    char yaml[64];
    fixture_t f;

    for (int i = 0; i < 4; i++) {
        snprintf(yaml, sizeof(yaml), "server:\n  log_level: %s\n", names[i]);
        load_ok(&f, yaml);
        ck_assert_int_eq(f.conf.log_level, i);
        gx_conf_deinit(&f.conf);
    }
}
END_TEST

START_TEST(test_empty_means_off)
{
    fixture_t f;

    load_ok(&f, "server:\n"
                "  tls_listen: \"\"\n"
                "  tls_cert: ~\n"
                "  tls_key:\n"
                "  tls_client_ca: null\n"
                "  admin_listen: ''\n"
                "  module_dir: \"\"\n");
    ck_assert_ptr_null(f.conf.tls_listen);
    ck_assert_ptr_null(f.conf.tls_cert);
    ck_assert_ptr_null(f.conf.tls_key);
    ck_assert_ptr_null(f.conf.tls_client_ca);
    ck_assert_ptr_null(f.conf.admin_listen);
    ck_assert_str_eq(f.conf.module_dir, GX_PKGLIBDIR);
    ck_assert_int_eq(gx_conf_check(&f.conf, f.err, sizeof(f.err)), 0);
    gx_conf_deinit(&f.conf);
}
END_TEST

START_TEST(test_quoted_null_is_a_string)
{
    fixture_t f;

    load_ok(&f, "server:\n  data_dir: \"null\"\n  workers: \"3\"\n");
    ck_assert_str_eq(f.conf.data_dir, "null");
    ck_assert_uint_eq(f.conf.workers, 3);
    gx_conf_deinit(&f.conf);
}
END_TEST

START_TEST(test_anchors)
{
    fixture_t f;

    load_ok(&f, "server:\n  listen: &a \"127.0.0.1:1\"\n  admin_listen: *a\n");
    ck_assert_str_eq(f.conf.admin_listen, "127.0.0.1:1");
    gx_conf_deinit(&f.conf);
}
END_TEST

START_TEST(test_addresses_ok)
{
    static const char *const ok[] = {"127.0.0.1:0", "[::]:50051", "[fe80::1%eth0]:1",
                                     "localhost:65535", "*:80"};
    char yaml[128];
    fixture_t f;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(yaml, sizeof(yaml), "server:\n  listen: \"%s\"\n", ok[i]);
        load_ok(&f, yaml);
        ck_assert_str_eq(f.conf.listen, ok[i]);
        gx_conf_deinit(&f.conf);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Errors: each case is one loop iteration, so one failure names its row    */

typedef struct {
    const char *yaml;
    unsigned line;
    const char *msg;
} error_case_t;

static const error_case_t error_cases[] = {
    /* unknown keys and sections */
    {"server:\n  workers: 1\n  lisen: \"a:1\"\n", 3, "unknown key \"lisen\" in section \"server\""},
    {"limits:\n  max_streams: 1\n", 2, "unknown key \"max_streams\" in section \"limits\""},
    {"server: {}\nnodes:\n  dev: {}\n", 2, "unknown section \"nodes\""},
    {"workers: 4\n", 1, "unknown section \"workers\""},
    /* ranges */
    {"limits:\n\n  max_concurrent_streams: 0\n", 3,
     "limits.max_concurrent_streams: 0 is out of range 1..100000"},
    {"limits:\n  max_concurrent_streams: 100001\n", 2,
     "limits.max_concurrent_streams: 100001 is out of range 1..100000"},
    {"limits:\n  max_calls: 0\n", 2, "limits.max_calls: 0 is out of range 1..100000000"},
    {"limits:\n  max_frame_bytes: 16383\n", 2,
     "limits.max_frame_bytes: 16383 is out of range 16384..16777215"},
    {"limits:\n  max_frame_bytes: 16777216\n", 2,
     "limits.max_frame_bytes: 16777216 is out of range 16384..16777215"},
    {"limits:\n  initial_window_bytes: 65534\n", 2,
     "limits.initial_window_bytes: 65534 is out of range 65535..2147483647"},
    {"limits:\n  connection_window_bytes: 2147483648\n", 2,
     "limits.connection_window_bytes: 2147483648 is out of range 65535..2147483647"},
    {"limits:\n  max_recv_message_bytes: 1023\n", 2,
     "limits.max_recv_message_bytes: 1023 is out of range 1024..1073741824"},
    {"limits:\n  idle_timeout_ms: 86400001\n", 2,
     "limits.idle_timeout_ms: 86400001 is out of range 0..86400000"},
    {"limits:\n  first_request_timeout_ms: 0\n", 2,
     "limits.first_request_timeout_ms: 0 is out of range 100..86400000"},
    {"server:\n  workers: 1025\n", 2, "server.workers: 1025 is out of range 0..1024"},
    {"server:\n  data_max_mb: 0\n", 2, "server.data_max_mb: 0 is out of range 1..16777216"},
    {"registry:\n  self_preservation_share: 0\n", 2,
     "registry.self_preservation_share: 0 is out of range 1..100"},
    {"registry:\n  self_preservation_share: 101\n", 2,
     "registry.self_preservation_share: 101 is out of range 1..100"},
    {"registry:\n  self_preservation_min_nodes: 0\n", 2,
     "registry.self_preservation_min_nodes: 0 is out of range 1..1000000000"},
    {"registry:\n  max_heartbeats_per_second: 1000000001\n", 2,
     "registry.max_heartbeats_per_second: 1000000001 is out of range 0..1000000000"},
    {"registry:\n  max_nodes: 0\n", 2, "registry.max_nodes: 0 is out of range 1..1000000000"},
    {"registry:\n  max_node_memory_mb: 16777217\n", 2,
     "registry.max_node_memory_mb: 16777217 is out of range 1..16777216"},
    {"jobs:\n  max_attempts: 0\n", 2, "jobs.max_attempts: 0 is out of range 1..1000"},
    {"jobs:\n  ack_timeout_ms: 99\n", 2,
     "jobs.ack_timeout_ms: 99 is out of range 100..86400000"},
    {"jobs:\n  attempts: 3\n", 2, "unknown key \"attempts\" in section \"jobs\""},
    {"pools:\n  - name: a\n", 2, "pools entry \"a\" without \"visibility\" (public or private)"},
    {"pools:\n  - visibility: public\n", 2, "pools entry without \"name\""},
    {"pools:\n  - name: Bad\n    visibility: public\n", 2,
     "pools.name: \"Bad\" must match [a-z0-9][a-z0-9-]{0,62}"},
    {"pools:\n  - name: a\n    visibility: secret\n", 3,
     "pools.visibility: must be public or private"},
    {"pools:\n  - name: a\n    visibility: public\n    heartbeat_interval_ms: 10\n", 4,
     "pools.heartbeat_interval_ms: must be a number from 50 to 3600000"},
    {"pools:\n  - name: a\n    visibility: public\n    specializations: [GPU]\n", 4,
     "pools.specializations: \"GPU\" must match [a-z0-9-]{1,32}"},
    {"pools:\n  - name: a\n    visibility: public\n    colour: red\n", 4,
     "unknown key \"colour\" in a pools entry"},
    {"pools: 3\n", 1, "section \"pools\" must be a sequence, not a scalar"},
    {"registry:\n  max_heartbeat_per_second: 1\n", 2,
     "unknown key \"max_heartbeat_per_second\" in section \"registry\""},
    {"limits:\n  max_connections: 4294967296\n", 2,
     "limits.max_connections: 4294967296 is out of range 1..1000000"},
    {"limits:\n  max_connections: 99999999999999999999999\n", 2,
     "limits.max_connections: 99999999999999999999999 is out of range 1..1000000"},
    /* strict integers */
    {"server:\n  workers: -1\n", 2, "server.workers: \"-1\" is not an unsigned decimal integer"},
    {"server:\n  workers: +4\n", 2, "server.workers: \"+4\" is not an unsigned decimal integer"},
    {"server:\n  workers: 4k\n", 2, "server.workers: \"4k\" is not an unsigned decimal integer"},
    {"server:\n  workers: 0x10\n", 2,
     "server.workers: \"0x10\" is not an unsigned decimal integer"},
    {"server:\n  workers: 1.5\n", 2, "server.workers: \"1.5\" is not an unsigned decimal integer"},
    {"server:\n  workers: \" 4\"\n", 2,
     "server.workers: \" 4\" is not an unsigned decimal integer"},
    {"server:\n  workers: \"4 \"\n", 2,
     "server.workers: \"4 \" is not an unsigned decimal integer"},
    {"server:\n  workers:\n", 2, "server.workers: \"\" is not an unsigned decimal integer"},
    {"server:\n  workers: true\n", 2,
     "server.workers: \"true\" is not an unsigned decimal integer"},
    /* enums, strings, addresses */
    {"server:\n  log_level: loud\n", 2,
     "server.log_level: \"loud\" is not one of error, warn, info, debug"},
    {"server:\n  log_level: INFO\n", 2,
     "server.log_level: \"INFO\" is not one of error, warn, info, debug"},
    {"server:\n  listen: \"\"\n", 2, "server.listen: must not be empty"},
    {"server:\n  data_dir: ~\n", 2, "server.data_dir: must not be empty"},
    {"server:\n  access_log:\n", 2, "server.access_log: must not be empty"},
    {"server:\n  listen: \"127.0.0.1\"\n", 2, "server.listen: \"127.0.0.1\" is not HOST:PORT"},
    {"server:\n  listen: \":80\"\n", 2, "server.listen: \":80\" is not HOST:PORT"},
    {"server:\n  listen: \"::1:80\"\n", 2, "server.listen: \"::1:80\" is not HOST:PORT"},
    {"server:\n  listen: \"[]:80\"\n", 2, "server.listen: \"[]:80\" is not HOST:PORT"},
    {"server:\n  tls_listen: \"h:65536\"\n", 2, "server.tls_listen: \"h:65536\" is not HOST:PORT"},
    {"server:\n  admin_listen: \"h:-1\"\n", 2, "server.admin_listen: \"h:-1\" is not HOST:PORT"},
    {"server:\n  admin_listen: \"h:\"\n", 2, "server.admin_listen: \"h:\" is not HOST:PORT"},
    /* shapes */
    {"server:\n  listen:\n    - a\n    - b\n", 3,
     "server.listen: expected a scalar, not a sequence"},
    {"limits:\n  max_settings: {a: 1}\n", 2,
     "limits.max_settings: expected a scalar, not a mapping"},
    {"server:\n  - workers\n", 2, "section \"server\" must be a mapping, not a sequence"},
    {"server: 4\n", 1, "section \"server\" must be a mapping, not a scalar"},
    {"- server\n", 1, "the top level must be a mapping, not a sequence"},
    {"just a string\n", 1, "the top level must be a mapping, not a scalar"},
    {"server:\n  [a]: 1\n", 2, "section \"server\": expected a scalar key, not a sequence"},
    /* duplicates */
    {"server:\n  listen: \"a:1\"\n  listen: \"b:2\"\n", 3,
     "duplicate key \"listen\" in section \"server\" (first at line 2)"},
    {"server: {}\nlimits: {}\nserver: {}\n", 3,
     "duplicate key \"server\" in the top level (first at line 1)"},
    /* documents */
    {"server: {}\n---\nlimits: {}\n", 3, "only one YAML document is allowed"},
    /* modules */
    {"modules:\n  path: interop\n", 2, "section \"modules\" must be a sequence, not a mapping"},
    {"modules:\n  - interop\n", 2,
     "a modules entry must be a mapping (path, config), not a scalar"},
    {"modules:\n  - config: {a: 1}\n", 2, "modules entry without \"path\""},
    {"modules:\n  - path: x\n    confg: {}\n", 3,
     "unknown key \"confg\" in a modules entry (path, config)"},
    {"modules:\n  - path: x\n    path: y\n", 3,
     "duplicate key \"path\" in a modules entry (first at line 2)"},
    {"modules:\n  - path: \"\"\n", 2, "modules.path: must not be empty"},
    {"modules:\n  - path: [a]\n", 2, "modules.path: expected a scalar, not a sequence"},
    {"modules:\n  - path: x\n    config: [a]\n", 3,
     "the config of module \"x\" must be a mapping, not a sequence"},
    {"modules:\n  - path: x\n    config:\n      k: [1]\n", 4,
     "module \"x\": config.k: expected a scalar, not a sequence"},
    {"modules:\n  - path: x\n    config:\n      k: 1\n      k: 2\n", 5,
     "duplicate key \"k\" in the config of module \"x\" (first at line 4)"},
};

START_TEST(test_errors)
{
    const error_case_t *c = &error_cases[_i];

    assert_load_error(c->yaml, c->line, c->msg);
}
END_TEST

START_TEST(test_duplicate_pool)
{
    fixture_t f;
    char want[ERRLEN];

    load(&f, "pools:\n  - name: a\n    visibility: public\n  - name: a\n    visibility: private\n");
    snprintf(want, sizeof(want), "%s:4: pool \"a\" is already listed at %s:2", f.path, f.path);
    ck_assert_int_eq(f.rc, GX_ECONF);
    ck_assert_str_eq(f.err, want);
    ck_assert_uint_eq(f.conf.registry.n_pools, 1);
    gx_conf_deinit(&f.conf);
}
END_TEST

START_TEST(test_duplicate_module)
{
    fixture_t f;
    char want[ERRLEN];

    load(&f, "modules:\n  - path: a\n  - path: b\n  - path: a\n");
    snprintf(want, sizeof(want), "%s:4: module \"a\" is already listed at %s:2", f.path, f.path);
    ck_assert_int_eq(f.rc, GX_ECONF);
    ck_assert_str_eq(f.err, want);
    /* The entries before the bad one stay, owned by conf, freed by deinit. */
    ck_assert_uint_eq(f.conf.n_modules, 2);
    gx_conf_deinit(&f.conf);
}
END_TEST

START_TEST(test_nul_in_value)
{
    assert_load_error("server:\n  data_dir: \"a\\0b\"\n", 2,
                      "server.data_dir: the value contains a NUL character");
    assert_load_error("modules:\n  - path: x\n    config:\n      \"a\\0b\": 1\n", 4,
                      "the config of module \"x\": a key contains a NUL character");
}
END_TEST

START_TEST(test_syntax_error_line)
{
    fixture_t f;
    char want[ERRLEN];

    load(&f, "server:\n  workers: 1\n\tlisten: x\n");
    snprintf(want, sizeof(want), "%s:3: YAML syntax error: ", f.path);
    ck_assert_int_eq(f.rc, GX_ECONF);
    ck_assert_msg(strncmp(f.err, want, strlen(want)) == 0, "got: %s", f.err);
    gx_conf_deinit(&f.conf);

    load(&f, "server:\n  workers: 1\n  listen: [a, b\nlimits: {}\n");
    snprintf(want, sizeof(want), "%s:4: YAML syntax error: ", f.path);
    ck_assert_int_eq(f.rc, GX_ECONF);
    ck_assert_msg(strncmp(f.err, want, strlen(want)) == 0, "got: %s", f.err);
    gx_conf_deinit(&f.conf);

    load(&f, "server: {}\n---\nlimits: {\n");
    snprintf(want, sizeof(want), "%s:4: YAML syntax error: ", f.path);
    ck_assert_int_eq(f.rc, GX_ECONF);
    ck_assert_msg(strncmp(f.err, want, strlen(want)) == 0, "got: %s", f.err);
    gx_conf_deinit(&f.conf);
}
END_TEST

START_TEST(test_invalid_utf8)
{
    static const char yaml[] = "server:\n  data_dir: \"a\xff\"\n";
    fixture_t f;
    char want[ERRLEN];

    load_n(&f, yaml, sizeof(yaml) - 1);
    snprintf(want, sizeof(want), "%s:2: YAML syntax error: ", f.path);
    ck_assert_int_eq(f.rc, GX_ECONF);
    ck_assert_msg(strncmp(f.err, want, strlen(want)) == 0, "got: %s", f.err);
    gx_conf_deinit(&f.conf);
}
END_TEST

START_TEST(test_missing_file)
{
    gx_conf_t c;
    char err[ERRLEN];

    ck_assert_int_eq(gx_conf_init(&c), 0);
    ck_assert_int_eq(gx_conf_load(&c, "/nonexistent/gx.yaml", err, sizeof(err)), GX_ENOENT);
    ck_assert_str_eq(err, "/nonexistent/gx.yaml: cannot open: No such file or directory");
    ck_assert_int_eq(gx_conf_load(&c, "/tmp", err, sizeof(err)), GX_ENOENT);
    ck_assert_msg(strncmp(err, "/tmp: cannot read: ", 19) == 0, "got: %s", err);
    assert_defaults(&c);
    gx_conf_deinit(&c);
}
END_TEST

START_TEST(test_error_truncated)
{
    fixture_t f;

    ck_assert_int_eq(gx_conf_init(&f.conf), 0);
    write_yaml(&f, "server:\n  lisen: x\n", strlen("server:\n  lisen: x\n"));
    memset(f.err, 'x', sizeof(f.err));
    ck_assert_int_eq(gx_conf_load(&f.conf, f.path, f.err, 8), GX_ECONF);
    ck_assert_uint_eq(strlen(f.err), 7);
    ck_assert_int_eq(gx_conf_load(&f.conf, f.path, NULL, 0), GX_ECONF);
    ck_assert_int_eq(gx_conf_load(&f.conf, f.path, f.err, 0), GX_ECONF);
    unlink(f.path);
    gx_conf_deinit(&f.conf);
}
END_TEST

START_TEST(test_failed_load_keeps_conf_valid)
{
    fixture_t f;

    load(&f, "server:\n  listen: \"1.2.3.4:5\"\n"
             "modules:\n  - path: a\n    config: {k: v}\n  - path: b\n    config: {k: [x]}\n");
    ck_assert_int_eq(f.rc, GX_ECONF);
    ck_assert_str_eq(f.conf.listen, "1.2.3.4:5");
    ck_assert_uint_eq(f.conf.n_modules, 1);
    ck_assert_str_eq(f.conf.modules[0].path, "a");
    gx_conf_deinit(&f.conf);
}
END_TEST

START_TEST(test_load_twice)
{
    fixture_t f;

    load_ok(&f, "server:\n  workers: 2\nmodules:\n  - path: a\n");
    static const char second[] = "server:\n  listen: \"h:1\"\nmodules:\n  - path: b\n";

    write_yaml(&f, second, strlen(second));
    ck_assert_int_eq(gx_conf_load(&f.conf, f.path, f.err, sizeof(f.err)), 0);
    unlink(f.path);
    ck_assert_uint_eq(f.conf.workers, 2);
    ck_assert_str_eq(f.conf.listen, "h:1");
    ck_assert_uint_eq(f.conf.n_modules, 2);
    ck_assert_str_eq(f.conf.file, f.path);
    gx_conf_deinit(&f.conf);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Modules                                                                  */

START_TEST(test_modules)
{
    fixture_t f;
    const gx_mod_conf_t *m;
    char where[128];

    load_ok(&f, "server: {}\n"
                "modules:\n"
                "  - path: interop\n"
                "    config:\n"
                "      greeting: hello\n"
                "      count: 3\n"
                "\n"
                "      empty:\n"
                "      quoted: \"a: b\"\n"
                "  - path: ./modules/.libs/rbac.so\n"
                "    config: ~\n"
                "  -\n"
                "    path: /abs/x.so\n");
    ck_assert_uint_eq(f.conf.n_modules, 3);

    m = &f.conf.modules[0];
    ck_assert_str_eq(m->path, "interop");
    ck_assert_uint_eq(m->n_kv, 4);
    ck_assert_str_eq(gx_mod_conf_get(m, "greeting"), "hello");
    ck_assert_str_eq(gx_mod_conf_get(m, "count"), "3");
    ck_assert_str_eq(gx_mod_conf_get(m, "empty"), "");
    ck_assert_str_eq(gx_mod_conf_get(m, "quoted"), "a: b");
    ck_assert_ptr_null(gx_mod_conf_get(m, "absent"));
    snprintf(where, sizeof(where), "%s:3", f.path);
    ck_assert_str_eq(m->where, where);
    ck_assert_str_eq(gx_mod_conf_where(m, "absent"), where);
    snprintf(where, sizeof(where), "%s:6", f.path);
    ck_assert_str_eq(gx_mod_conf_where(m, "count"), where);
    snprintf(where, sizeof(where), "%s:8", f.path);
    ck_assert_str_eq(gx_mod_conf_where(m, "empty"), where);

    m = &f.conf.modules[1];
    ck_assert_str_eq(m->path, "./modules/.libs/rbac.so");
    ck_assert_uint_eq(m->n_kv, 0);
    ck_assert_ptr_null(gx_mod_conf_get(m, "greeting"));
    snprintf(where, sizeof(where), "%s:10", f.path);
    ck_assert_str_eq(gx_mod_conf_where(m, "greeting"), where);

    m = &f.conf.modules[2];
    ck_assert_str_eq(m->path, "/abs/x.so");
    snprintf(where, sizeof(where), "%s:13", f.path);
    ck_assert_str_eq(m->where, where);

    ck_assert_ptr_null(gx_mod_conf_get(NULL, "k"));
    ck_assert_str_eq(gx_mod_conf_where(NULL, "k"), "");
    gx_conf_deinit(&f.conf);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* gx_conf_check()                                                          */

static void
assert_check(gx_conf_t *c, const char *want)
{
    char err[ERRLEN];

    if (want == NULL) {
        ck_assert_msg(gx_conf_check(c, err, sizeof(err)) == 0, "check failed: %s", err);
        return;
    }
    ck_assert_int_eq(gx_conf_check(c, err, sizeof(err)), GX_ECONF);
    ck_assert_str_eq(err, want);
}

START_TEST(test_check_tls)
{
    gx_conf_t c;

    ck_assert_int_eq(gx_conf_init(&c), 0);
    ck_assert_int_eq(gx_conf_set_str(&c.tls_listen, "127.0.0.1:0"), 0);
    assert_check(&c, "server.tls_listen is set but server.tls_cert is not");
    ck_assert_int_eq(gx_conf_set_str(&c.tls_cert, "cert.pem"), 0);
    assert_check(&c, "server.tls_listen is set but server.tls_key is not");
    ck_assert_int_eq(gx_conf_set_str(&c.tls_key, "key.pem"), 0);
    assert_check(&c, NULL);
    ck_assert_int_eq(gx_conf_set_str(&c.tls_client_ca, "ca.pem"), 0);
    assert_check(&c, NULL);
    ck_assert_int_eq(gx_conf_set_str(&c.tls_listen, NULL), 0);
    assert_check(&c, "server.tls_client_ca is set but server.tls_listen is not");
    ck_assert_int_eq(gx_conf_set_str(&c.tls_client_ca, ""), 0);
    assert_check(&c, "server.tls_cert is set but server.tls_listen is not");
    ck_assert_int_eq(gx_conf_set_str(&c.tls_cert, NULL), 0);
    assert_check(&c, "server.tls_key is set but server.tls_listen is not");
    ck_assert_int_eq(gx_conf_set_str(&c.tls_key, NULL), 0);
    assert_check(&c, NULL);
    gx_conf_deinit(&c);
}
END_TEST

START_TEST(test_check_buffers)
{
    gx_conf_t c;

    ck_assert_int_eq(gx_conf_init(&c), 0);
    ck_assert_uint_eq(c.limits.conn_recv_buffer_bytes, 16u << 20);
    ck_assert_uint_eq(c.limits.server_recv_buffer_bytes, 256u << 20);
    c.limits.max_recv_message_bytes = (16u << 20) + 1;
    assert_check(&c, "limits.conn_recv_buffer_bytes (16777216) is smaller than "
                     "limits.max_recv_message_bytes (16777217)");
    c.limits.conn_recv_buffer_bytes = (16u << 20) + 1;
    assert_check(&c, NULL);
    c.limits.server_recv_buffer_bytes = 16u << 20;
    assert_check(&c, "limits.server_recv_buffer_bytes (16777216) is smaller than "
                     "limits.conn_recv_buffer_bytes (16777217)");
    c.limits.server_recv_buffer_bytes = 16u << 20 | 1;
    assert_check(&c, NULL);
    ck_assert_uint_eq(c.limits.conn_send_queue_bytes, 32u << 20);
    ck_assert_uint_eq(c.limits.server_send_queue_bytes, 512u << 20);
    c.limits.server_send_queue_bytes = 16384;
    assert_check(&c, "limits.server_send_queue_bytes (16384) is smaller than "
                     "limits.conn_send_queue_bytes (33554432)");
    gx_conf_deinit(&c);
}
END_TEST

START_TEST(test_check_listeners)
{
    gx_conf_t c;

    ck_assert_int_eq(gx_conf_init(&c), 0);
    ck_assert_int_eq(gx_conf_set_str(&c.admin_listen, "127.0.0.1:50051"), 0);
    assert_check(&c, "server.listen and server.admin_listen are both \"127.0.0.1:50051\"");
    ck_assert_int_eq(gx_conf_set_str(&c.listen, "127.0.0.1:0"), 0);
    ck_assert_int_eq(gx_conf_set_str(&c.admin_listen, "127.0.0.1:0"), 0);
    ck_assert_int_eq(gx_conf_set_str(&c.tls_listen, "127.0.0.1:0"), 0);
    ck_assert_int_eq(gx_conf_set_str(&c.tls_cert, "c"), 0);
    ck_assert_int_eq(gx_conf_set_str(&c.tls_key, "k"), 0);
    assert_check(&c, NULL);
    ck_assert_int_eq(gx_conf_set_str(&c.admin_listen, "[::1]:9"), 0);
    ck_assert_int_eq(gx_conf_set_str(&c.tls_listen, "[::1]:9"), 0);
    assert_check(&c, "server.tls_listen and server.admin_listen are both \"[::1]:9\"");
    gx_conf_deinit(&c);
}
END_TEST

/* What the command line may set after the file was read is checked again. */
START_TEST(test_check_overrides)
{
    gx_conf_t c;

    ck_assert_int_eq(gx_conf_init(&c), 0);
    c.workers = 5000;
    assert_check(&c, "server.workers: 5000 is out of range 0..1024");
    c.workers = 4;
    c.log_level = 7;
    assert_check(&c, "server.log_level: not one of error, warn, info, debug");
    c.log_level = GX_LOG_WARN;
    ck_assert_int_eq(gx_conf_set_str(&c.listen, "nowhere"), 0);
    assert_check(&c, "server.listen: \"nowhere\" is not HOST:PORT");
    ck_assert_int_eq(gx_conf_set_str(&c.listen, NULL), 0);
    assert_check(&c, "server.listen: must not be empty");
    ck_assert_int_eq(gx_conf_set_str(&c.listen, "h:1"), 0);
    ck_assert_int_eq(gx_conf_set_str(&c.data_dir, ""), 0);
    assert_check(&c, "server.data_dir: must not be empty");
    ck_assert_int_eq(gx_conf_set_str(&c.data_dir, "d"), 0);
    c.limits.max_frame_bytes = 1;
    assert_check(&c, "limits.max_frame_bytes: 1 is out of range 16384..16777215");
    c.limits.max_frame_bytes = 16384;
    c.limits.initial_window_bytes = 1 << 30;
    assert_check(&c, "limits.connection_window_bytes (16777216) is smaller than "
                     "limits.initial_window_bytes (1073741824)");
    c.limits.connection_window_bytes = 1 << 30;
    ck_assert_int_eq(gx_conf_set_str(&c.module_dir, NULL), 0);
    assert_check(&c, "server.module_dir: must not be empty");
    ck_assert_int_eq(gx_conf_set_str(&c.module_dir, "m"), 0);
    ck_assert_int_eq(gx_conf_set_str(&c.admin_listen, NULL), 0);
    assert_check(&c, NULL);
    gx_conf_deinit(&c);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Out of memory: each allocation of init and load fails in turn            */

START_TEST(test_init_enomem)
{
    gx_conf_t c;
    long n;

    for (n = 0;; n++) {
        alloc_countdown = n;
        if (gx_conf_init(&c) == 0)
            break;
        ck_assert_ptr_null(c.listen);
        gx_conf_deinit(&c);
    }
    alloc_countdown = -1;
    ck_assert_int_ge(n, 5);
    assert_defaults(&c);
    gx_conf_deinit(&c);
}
END_TEST

START_TEST(test_load_enomem)
{
    static const char yaml[] = "server:\n  listen: \"h:1\"\n  tls_listen: \"h:2\"\n"
                               "modules:\n  - path: a\n    config: {k: v, l: w}\n"
                               "  - path: b\n    config: {k: v}\n";
    fixture_t f;
    long n;
    int rc;

    write_yaml(&f, yaml, strlen(yaml));
    for (n = 0;; n++) {
        ck_assert_int_eq(gx_conf_init(&f.conf), 0);
        alloc_countdown = n;
        rc = gx_conf_load(&f.conf, f.path, f.err, sizeof(f.err));
        alloc_countdown = -1;
        if (rc == 0)
            break;
        ck_assert_int_eq(rc, GX_ENOMEM);
        ck_assert_msg(strstr(f.err, "out of memory") != NULL, "got: %s", f.err);
        gx_conf_deinit(&f.conf);
    }
    unlink(f.path);
    ck_assert_int_ge(n, 15);
    ck_assert_uint_eq(f.conf.n_modules, 2);
    ck_assert_str_eq(gx_mod_conf_get(&f.conf.modules[1], "k"), "v");
    gx_conf_deinit(&f.conf);
}
END_TEST

START_TEST(test_set_str_enomem)
{
    char *slot = strdup("old");

    alloc_countdown = 0;
    ck_assert_int_eq(gx_conf_set_str(&slot, "new"), GX_ENOMEM);
    ck_assert_str_eq(slot, "old");
    ck_assert_int_eq(gx_conf_set_str(&slot, NULL), 0);
    ck_assert_ptr_null(slot);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The shipped files                                                        */

static void
load_shipped(gx_conf_t *c, const char *name)
{
    char path[1024], err[ERRLEN];

    snprintf(path, sizeof(path), "%s/etc/%s", srcdir(), name);
    ck_assert_int_eq(gx_conf_init(c), 0);
    ck_assert_msg(gx_conf_load(c, path, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(gx_conf_check(c, err, sizeof(err)) == 0, "%s", err);
}

/* The default file spells out the built-in defaults, nothing else. */
START_TEST(test_shipped_default)
{
    gx_conf_t c;

    size_t n;

    load_shipped(&c, "galaxy-poold.yaml");
    /* the shipped file is the defaults, with access control and the routing policies on */
    ck_assert_uint_eq(c.n_modules, 4);
    ck_assert_str_eq(c.modules[0].path, "auth_apikey");
    ck_assert_str_eq(c.modules[1].path, "rbac");
    ck_assert_str_eq(c.modules[2].path, "route_p2c");
    ck_assert_str_eq(c.modules[3].path, "route_hash");
    for (size_t i = 0; i < c.n_modules; i++)
        ck_assert_uint_eq(c.modules[i].n_kv, 0);
    /* and the built-in pools, written out */
    ck_assert_int_eq(c.registry.pools_given, 1);
    ck_assert_uint_eq(c.registry.n_pools, 3);
    ck_assert_str_eq(c.registry.pools[0].name, "mainnet");
    ck_assert_str_eq(c.registry.pools[2].tier, "dev");
    ck_assert_int_eq(c.registry.pools[1].visibility,
                     GALAXY__POOL__V1__VISIBILITY__VISIBILITY_PUBLIC);
    n = c.n_modules;
    c.n_modules = 0;
    assert_defaults(&c);
    c.n_modules = n;
    gx_conf_deinit(&c);
}
END_TEST

START_TEST(test_shipped_interop)
{
    gx_conf_t c;
    gx_limits_t l;

    gx_limits_init(&l);
    load_shipped(&c, "galaxy-poold-interop.yaml");
    ck_assert_str_eq(c.listen, "127.0.0.1:50052");
    ck_assert_str_eq(c.admin_listen, "127.0.0.1:9465");
    ck_assert_str_eq(c.data_dir, "./var/interop");
    ck_assert_ptr_null(c.tls_listen);
    ck_assert_str_eq(c.module_dir, GX_PKGLIBDIR);
    ck_assert_int_eq(memcmp(&c.limits, &l, sizeof(l)), 0);
    ck_assert_uint_eq(c.n_modules, 1);
    ck_assert_str_eq(c.modules[0].path, "interop");
    ck_assert_uint_eq(c.modules[0].n_kv, 0);
    gx_conf_deinit(&c);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *
conf_suite(void)
{
    Suite *s = suite_create("gx_conf");
    TCase *tc;

    tc = tcase_create("load");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_empty_file);
    tcase_add_test(tc, test_all_keys);
    tcase_add_test(tc, test_registry_keys);
    tcase_add_test(tc, test_pools);
    tcase_add_test(tc, test_duplicate_pool);
    tcase_add_test(tc, test_log_levels);
    tcase_add_test(tc, test_empty_means_off);
    tcase_add_test(tc, test_quoted_null_is_a_string);
    tcase_add_test(tc, test_anchors);
    tcase_add_test(tc, test_addresses_ok);
    tcase_add_test(tc, test_load_twice);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_loop_test(tc, test_errors, 0, (int)(sizeof(error_cases) / sizeof(error_cases[0])));
    tcase_add_test(tc, test_duplicate_module);
    tcase_add_test(tc, test_nul_in_value);
    tcase_add_test(tc, test_syntax_error_line);
    tcase_add_test(tc, test_invalid_utf8);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_error_truncated);
    tcase_add_test(tc, test_failed_load_keeps_conf_valid);
    suite_add_tcase(s, tc);

    tc = tcase_create("modules");
    tcase_add_test(tc, test_modules);
    suite_add_tcase(s, tc);

    tc = tcase_create("check");
    tcase_add_test(tc, test_check_tls);
    tcase_add_test(tc, test_check_buffers);
    tcase_add_test(tc, test_check_listeners);
    tcase_add_test(tc, test_check_overrides);
    suite_add_tcase(s, tc);

    tc = tcase_create("enomem");
    tcase_add_test(tc, test_init_enomem);
    tcase_add_test(tc, test_load_enomem);
    tcase_add_test(tc, test_set_str_enomem);
    suite_add_tcase(s, tc);

    tc = tcase_create("shipped");
    tcase_add_test(tc, test_shipped_default);
    tcase_add_test(tc, test_shipped_interop);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(conf_suite());
    int failures;

    /* Fork mode (Check's default) unless CK_FORK=no, e.g. under valgrind or gdb. */
    srunner_run_all(sr, CK_NORMAL);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures != 0;
}
