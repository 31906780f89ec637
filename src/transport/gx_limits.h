/* SPDX-License-Identifier: MIT */
/**
 * @file gx_limits.h
 * The transport's tunables: listeners, HTTP/2 SETTINGS and the limits that
 * protect the server from hostile peers.  Filled by the configuration
 * (core/gx_conf.c), read by the transport.  Every field has a safe default
 * (gx_limits_init()).
 */
#ifndef GX_TRANSPORT_GX_LIMITS_H
#define GX_TRANSPORT_GX_LIMITS_H

#include <stdint.h>

typedef struct gx_limits_s {
    uint32_t max_connections;          /**< open connections per server (all workers) */
    uint32_t max_concurrent_streams;   /**< SETTINGS_MAX_CONCURRENT_STREAMS; beyond: REFUSED_STREAM */
    uint32_t max_calls;                /**< open streams of all workers (each its share) */
    uint32_t max_header_list_bytes;    /**< SETTINGS_MAX_HEADER_LIST_SIZE, enforced in our callback */
    uint32_t initial_window_bytes;     /**< SETTINGS_INITIAL_WINDOW_SIZE (per stream) */
    uint32_t connection_window_bytes;  /**< connection-level receive window */
    uint32_t max_frame_bytes;          /**< SETTINGS_MAX_FRAME_SIZE */
    uint32_t max_recv_message_bytes;   /**< larger messages: RESOURCE_EXHAUSTED */
    uint32_t conn_recv_buffer_bytes;   /**< unfinished request messages held, per connection */
    uint32_t server_recv_buffer_bytes; /**< … and all connections together */
    uint32_t send_buffer_bytes;        /**< per call: above it gx_call_send() answers GX_AGAIN */
    uint32_t conn_send_queue_bytes;    /**< responses waiting for one connection's client */
    uint32_t server_send_queue_bytes;  /**< … and for all clients together */
    uint32_t conn_output_bytes;        /**< per connection socket buffer before nghttp2 waits */
    uint32_t idle_timeout_ms;          /**< no open stream for this long: GOAWAY and close */
    uint32_t first_request_timeout_ms; /**< no request this long after accept: close */
    uint32_t tls_handshake_timeout_ms; /**< TLS handshake not done in time: close */
    uint32_t stream_reset_burst;       /**< nghttp2 Rapid Reset limit: burst … */
    uint32_t stream_reset_rate;        /**< … and resets per second after it */
    uint32_t max_continuations;        /**< CONTINUATION frames per header block */
    uint32_t max_settings;             /**< entries per SETTINGS frame */
    uint32_t max_outbound_ack;         /**< queued SETTINGS/PING ACKs before the peer is dropped */
    uint32_t max_invalid_frames;       /**< invalid frames per connection before GOAWAY */
    uint32_t ping_min_interval_ms;     /**< pings closer than this without data are strikes */
    uint32_t ping_max_strikes;         /**< more strikes: GOAWAY ENHANCE_YOUR_CALM */
    uint32_t drain_timeout_ms;         /**< graceful shutdown bound */
} gx_limits_t;

/** Fills @p l with the defaults. */
static inline void
gx_limits_init(gx_limits_t *l)
{
    l->max_connections = 10000;
    l->max_concurrent_streams = 100;
    l->max_calls = 100000;
    l->max_header_list_bytes = 16384;
    l->initial_window_bytes = 1 << 20;
    l->connection_window_bytes = 16 << 20;
    l->max_frame_bytes = 16384;
    l->max_recv_message_bytes = 4 << 20;
    l->conn_recv_buffer_bytes = 16 << 20;
    l->server_recv_buffer_bytes = 256 << 20;
    l->send_buffer_bytes = 256 << 10;
    l->conn_send_queue_bytes = 32 << 20;
    l->server_send_queue_bytes = 512 << 20;
    l->conn_output_bytes = 256 << 10;
    l->idle_timeout_ms = 300000;
    l->first_request_timeout_ms = 10000;
    l->tls_handshake_timeout_ms = 10000;
    l->stream_reset_burst = 1000;
    l->stream_reset_rate = 33;
    l->max_continuations = 8;
    l->max_settings = 32;
    l->max_outbound_ack = 1000;
    l->max_invalid_frames = 100;
    l->ping_min_interval_ms = 300000;
    l->ping_max_strikes = 2;
    l->drain_timeout_ms = 5000;
}

#endif /* GX_TRANSPORT_GX_LIMITS_H */
