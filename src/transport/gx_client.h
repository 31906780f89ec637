/* SPDX-License-Identifier: MIT */
/**
 * @file gx_client.h
 * The client side of our gRPC layer: a synchronous client on one HTTP/2
 * connection (h2c with prior knowledge, or TLS with ALPN "h2"), used by
 * galaxy-cli and by tests.
 *
 * A gx_client_t owns a private libevent loop, the socket, the TLS state and
 * an nghttp2 client session.  Each call runs that loop until the call ends, so
 * calls are blocking and made one at a time; several calls may be made one
 * after the other on the same connection.
 *
 * Every call ends with a status (gx_client_status_t), never with a crash or
 * an unbounded wait, whatever the peer sends:
 *  - the server's grpc-status and grpc-message (percent-decoded), from the
 *    trailers or from a Trailers-Only response;
 *  - without grpc-status, an HTTP status other than 200 is mapped as gRPC's
 *    http-grpc-status-mapping.md says (400 → INTERNAL, 401 → UNAUTHENTICATED,
 *    403 → PERMISSION_DENIED, 404 → UNIMPLEMENTED, 429/502/503/504 →
 *    UNAVAILABLE, any other → UNKNOWN);
 *  - statuses the client derives itself (origin GX_CLIENT_ORIGIN_LOCAL): a
 *    connection that cannot be made or is lost is UNAVAILABLE, a call past
 *    its timeout DEADLINE_EXCEEDED (the timeout is also sent to the server as
 *    grpc-timeout), a response message over the receive limit
 *    RESOURCE_EXHAUSTED, a response header list over its limit
 *    RESOURCE_EXHAUSTED, a stream reset by the server the code PROTOCOL-HTTP2.md
 *    gives its error code, a response that breaks the protocol INTERNAL.
 *
 * Responses compressed with grpc-encoding gzip are inflated (within the
 * receive limit); requests are sent uncompressed.
 *
 * Threads: a client may be used from any thread, by one thread at a time.
 * Signals: writing to a connection the peer has closed raises SIGPIPE; a
 * process using this client must ignore SIGPIPE (galaxy-cli does).
 */
#ifndef GX_TRANSPORT_GX_CLIENT_H
#define GX_TRANSPORT_GX_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <galaxy/gx_module.h>

typedef struct gx_client_s gx_client_t;

/** Defaults of the gx_client_opts_t fields left at 0. */
#define GX_CLIENT_CONNECT_TIMEOUT_MS 10000
#define GX_CLIENT_MAX_RECV_MESSAGE_BYTES (4u << 20)
#define GX_CLIENT_MAX_HEADER_LIST_BYTES (16u << 10)
/** Longest grpc-message kept in a gx_client_status_t (longer ones are truncated). */
#define GX_CLIENT_MESSAGE_MAX 1024

/** How to reach the server.  Zero-initialise, then set what you need. */
typedef struct gx_client_opts_s {
    /** "HOST:PORT", "[IPv6]:PORT"; HOST is a name or a numeric address. Required. */
    const char *addr;
    /** 1: TLS 1.2+ with ALPN "h2" and a verified server certificate; 0: h2c. */
    int tls;
    /** PEM bundle of trusted CAs; NULL: the system's default trust store. */
    const char *ca_file;
    /** Client certificate chain and its key (PEM) for mTLS; both or neither. */
    const char *cert_file;
    const char *key_file;
    /**
     * Name the server certificate must carry and the SNI sent; NULL: the
     * HOST of @c addr.  Also used as :authority.
     */
    const char *server_name;
    /** Bound on the TCP connect and TLS handshake (not name resolution). 0: 10 s. */
    uint32_t connect_timeout_ms;
    /** Largest response message accepted (after inflation). 0: 4 MiB. */
    uint32_t max_recv_message_bytes;
    /** Largest response header list (and trailer list), HPACK-decoded. 0: 16 KiB. */
    uint32_t max_header_list_bytes;
    /** user-agent header; NULL: "galaxy-client/<version>". */
    const char *user_agent;
} gx_client_opts_t;

/** Where a status came from. */
typedef enum {
    GX_CLIENT_ORIGIN_SERVER = 0, /**< grpc-status sent by the server, or its HTTP status */
    GX_CLIENT_ORIGIN_LOCAL = 1   /**< derived by the client: connection, deadline, limits, … */
} gx_client_origin_t;

/** How a call ended. */
typedef struct gx_client_status_s {
    gx_status_t code;
    gx_client_origin_t origin;
    /** HTTP :status of the response, 0 when none arrived. */
    int http_status;
    /** Decoded grpc-message (or the client's reason), NUL-terminated; may be empty. */
    char message[GX_CLIENT_MESSAGE_MAX];
} gx_client_status_t;

/**
 * One request metadata entry.  Keys are lowercase ([a-z0-9._-]), at most 256
 * bytes, and neither start with "grpc-" nor name a header the client sets or
 * HTTP/2 forbids (te, content-type, user-agent, host, connection, …).  A key
 * ending in "-bin" carries @c len bytes of binary data (sent base64-encoded);
 * any other value must be printable ASCII.  Values are at most 8 KiB, and
 * all metadata together at most max_header_list_bytes.
 */
typedef struct gx_client_md_s {
    const char *key;
    const char *value;
    size_t len;
} gx_client_md_t;

/**
 * Called for each message of a server-streaming call, in order.
 * @param msg  the decoded message; owned by the client, valid only during the
 *             call (copy what you keep).
 * @param arg  the caller's argument.
 * @return 0 to go on; anything else cancels the call (RST_STREAM CANCEL):
 *         gx_client_server_stream() then returns GX_ECANCELED.
 */
typedef int (*gx_client_msg_fn)(const ProtobufCMessage *msg, void *arg);

/**
 * Connects to opts->addr: TCP connect, then for TLS the handshake (which
 * must select ALPN "h2" and verify the server certificate against
 * opts->server_name or the host), then the HTTP/2 connection preface.  Name
 * resolution uses the system resolver and its own timeouts.
 *
 * @param opts    read during the call only (strings are copied).
 * @param out     the client on success; free it with gx_client_close().
 * @param err     room for a reason on failure ("connect 127.0.0.1:1: Connection
 *                refused", "TLS handshake with localhost: certificate verify
 *                failed: …"), NUL-terminated.
 * @return 0; GX_EINVAL when the options are wrong (malformed addr, a
 *         certificate without its key, a CA, certificate or key file that
 *         cannot be loaded, a key that does not match its certificate);
 *         GX_EIO when the server cannot be reached (name resolution, connect,
 *         connect_timeout_ms, TLS handshake, certificate verification, no
 *         ALPN h2): report it as UNAVAILABLE; GX_ENOMEM.
 * @note thread: any
 */
int gx_client_open(const gx_client_opts_t *opts, gx_client_t **out, char *err, size_t errlen);

/**
 * Ends the connection (GOAWAY, sent if the socket takes it at once) and frees
 * the client.  NULL is a no-op.
 */
void gx_client_close(gx_client_t *c);

/**
 * Makes a unary call and waits for its end.
 *
 * @param method     "/package.Service/Method".
 * @param req        the request, packed before the call is sent.
 * @param resp_desc  the response's type.
 * @param resp_out   required; on 0: the response, allocated with protobuf-c's default
 *                   allocator, which the caller frees with
 *                   protobuf_c_message_free_unpacked(resp, NULL); otherwise NULL.
 * @param md         @p n_md request metadata entries (may be NULL when 0).
 * @param timeout_ms the call's deadline, also sent as grpc-timeout; 0: none.
 * @param st         always filled: how the call ended.
 * @return 0 when the call ended OK with exactly one response message;
 *         GX_EIO when it did not (@p st says why: the server's status or
 *         the one the client derived); GX_EINVAL for bad arguments (method,
 *         metadata; st INTERNAL).
 * @note thread: any, one call at a time per client
 */
int gx_client_unary(gx_client_t *c, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp_out,
                    const gx_client_md_t *md, size_t n_md, uint32_t timeout_ms,
                    gx_client_status_t *st);

/**
 * Makes a server-streaming call: sends @p req, then hands each response
 * message to @p fn as it arrives, until the server ends the call, the
 * timeout passes or @p fn asks to stop.
 *
 * Parameters as for gx_client_unary(); @p timeout_ms 0 waits for as long as
 * the server keeps the stream open (a dead peer is noticed by TCP keepalive,
 * within about a minute).  @p fn runs inside the client's loop: it must not
 * call this client.
 * @return 0 when the server ended the call OK; GX_ECANCELED when @p fn
 *         stopped it (st CANCELLED, origin LOCAL); GX_EIO when it ended with
 *         another status (@p st says why); GX_EINVAL for bad arguments.
 * @note thread: any, one call at a time per client
 */
int gx_client_server_stream(gx_client_t *c, const char *method, const ProtobufCMessage *req,
                            const ProtobufCMessageDescriptor *resp_desc, const gx_client_md_t *md,
                            size_t n_md, uint32_t timeout_ms, gx_client_msg_fn fn, void *arg,
                            gx_client_status_t *st);

/**
 * The gRPC status for an HTTP :status received without grpc-status
 * (http-grpc-status-mapping.md).  Exposed for the unit tests.
 */
gx_status_t gx_client_http_to_status(int http_status);

#endif /* GX_TRANSPORT_GX_CLIENT_H */
