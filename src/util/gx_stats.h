/* SPDX-License-Identifier: MIT */
/**
 * @file gx_stats.h
 * Process counters, one block per thread so that counting never shares a
 * cache line or takes a lock; /metrics adds the blocks up.  Every reject and
 * every hostile-peer limit has a counter here.
 */
#ifndef GX_UTIL_GX_STATS_H
#define GX_UTIL_GX_STATS_H

#include <stdint.h>

/* X(id, prometheus name, help) */
#define GX_COUNTERS(X)                                                                           \
    X(CONN_ACCEPTED, "connections_accepted_total", "Connections accepted")                       \
    X(CONN_REJECTED, "connections_rejected_total", "Connections refused at max_connections")     \
    X(ACCEPT_PAUSED, "accept_paused_total",                                                      \
      "Pauses of accepting: accept() found no file descriptor or memory for a connection")       \
    X(CONN_IDLE_CLOSED, "connections_idle_closed_total", "Connections closed by idle_timeout")    \
    X(CONN_FIRST_REQUEST_TIMEOUT, "connections_first_request_timeout_total",                     \
      "Connections closed by first_request_timeout")                                             \
    X(TLS_HANDSHAKE_TIMEOUT, "tls_handshake_timeout_total", "TLS handshakes over the timeout")    \
    X(TLS_HANDSHAKE_FAILED, "tls_handshake_failed_total", "TLS handshakes that failed")          \
    X(TLS_RELOADED, "tls_reloads_total", "TLS certificate reloads (SIGHUP) that took effect")     \
    X(TLS_RELOAD_FAILED, "tls_reload_failed_total",                                              \
      "TLS certificate reloads that failed: the certificate loaded before stays")                \
    X(H2_PROTOCOL_ERROR, "h2_protocol_errors_total", "Connections ended on an HTTP/2 error")     \
    X(H2_FLOOD, "h2_flood_total", "Connections ended by nghttp2 flood protection")               \
    X(H2_RAPID_RESET, "h2_rapid_reset_total", "Connections over the stream reset rate limit")    \
    X(H2_HEADER_LIST_TOO_LARGE, "h2_header_list_too_large_total",                                \
      "Streams reset for a header list over max_header_list_bytes")                              \
    X(H2_STREAMS_REFUSED, "h2_streams_refused_total",                                            \
      "Streams refused over max_concurrent_streams")                                             \
    X(CALLS_REFUSED, "calls_refused_total",                                                      \
      "Streams refused at limits.max_calls (calls open in all)")                                 \
    X(H2_INVALID_FRAMES, "h2_invalid_frames_total", "Invalid frames received")                   \
    X(H2_INVALID_FRAMES_GOAWAY, "h2_invalid_frames_goaway_total",                                \
      "Connections ended at max_invalid_frames")                                                 \
    X(H2_PING_FLOOD, "h2_ping_flood_total", "Connections ended for too many pings")              \
    X(GRPC_BAD_CONTENT_TYPE, "grpc_bad_content_type_total", "Requests refused with HTTP 415")    \
    X(GRPC_BAD_REQUEST, "grpc_bad_request_total",                                                \
      "Requests with a bad method, path, te or timeout header")                                  \
    X(GRPC_BAD_ENCODING, "grpc_bad_encoding_total", "Requests with an unsupported grpc-encoding")\
    X(GRPC_BAD_FRAME, "grpc_bad_frame_total", "Broken or truncated gRPC messages")               \
    X(GRPC_MESSAGE_TOO_LARGE, "grpc_message_too_large_total",                                    \
      "Messages over max_recv_message_bytes")                                                    \
    X(GRPC_RECV_BUFFER_FULL, "grpc_recv_buffer_full_total",                                      \
      "Calls failed: unfinished request messages over conn_ or server_recv_buffer_bytes")        \
    X(GRPC_SEND_QUEUE_FULL, "grpc_send_queue_full_total",                                        \
      "Calls failed: responses waiting over conn_ or server_send_queue_bytes")                   \
    X(GRPC_DEADLINE_EXCEEDED, "grpc_deadline_exceeded_total", "Calls past their grpc-timeout")   \
    X(GRPC_PEER_CANCELLED, "grpc_peer_cancelled_total", "Calls reset by the peer")               \
    X(GRPC_REFUSED_DRAINING, "grpc_refused_draining_total", "Calls refused while draining")     \
    X(AUTH_FAILED, "auth_failed_total", "Calls with a wrong, revoked or malformed credential")    \
    X(ACCESS_DENIED, "access_denied_total",                                                      \
      "Calls refused by the access rules (hidden pool, no credentials, role too low)")            \
    X(REGISTRY_FULL, "registry_full_total",                                                      \
      "Registers refused at registry.max_nodes or registry.max_node_memory_mb")              \
    X(JOBS_FULL, "jobs_full_total",                                                              \
      "Submissions refused at jobs.jobs_max, jobs.max_payload_mb or a pool's jobs.queue_max") \
    X(LIST_NODES_SCANNED, "list_nodes_scanned_total",                                            \
      "Nodes ListNodes looked at to fill its pages (the index it paged through)")

enum {
#define GX__CTR_ENUM(id, name, help) GX_CTR_##id,
    GX_COUNTERS(GX__CTR_ENUM)
#undef GX__CTR_ENUM
    GX_CTR_MAX
};

typedef struct gx_stats_s {
    uint64_t c[GX_CTR_MAX];
} gx_stats_t;

/** The calling thread's block (set by gx_stats_bind; a process-wide fallback otherwise). */
extern __thread gx_stats_t *gx__stats;

/** Binds @p s as the calling thread's block. */
void gx_stats_bind(gx_stats_t *s);
/** Adds every registered block's counters into @p out. @note thread: any */
void gx_stats_sum(gx_stats_t *out);

/** Counts one event. @note thread: any (touches only the thread's block) */
#define gx_stats_inc(id) gx_stats_add(id, 1)
/** Counts @p n events. */
#define gx_stats_add(id, n) \
    __atomic_fetch_add(&gx__stats->c[GX_CTR_##id], (uint64_t)(n), __ATOMIC_RELAXED)

#endif /* GX_UTIL_GX_STATS_H */
