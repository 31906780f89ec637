/* SPDX-License-Identifier: MIT */
/**
 * @file gx_client.h
 * The client side of our gRPC layer: a synchronous client on one HTTP/2
 * connection (h2c with prior knowledge, or TLS with ALPN "h2"), used by
 * galaxy-cli and by tests.
 *
 * A gx_client_t owns a private libevent loop, the socket, the TLS state and
 * an nghttp2 client session.  Unary and server-streaming calls run that loop
 * until the call ends, so they are blocking; several calls may be made one
 * after the other on the same connection.  A bidirectional call
 * (gx_client_bidi_open()) stays open while the caller sends messages and
 * receives responses (gx_client_bidi_recv() runs the loop for at most the
 * time it is given), and other calls may be made on the same connection
 * while it is open: responses that arrive meanwhile wait in the call's
 * queue.
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
 * Threads: a client and its calls may be used from any thread, by one thread
 * at a time.
 * Signals: writing to a connection the peer has closed raises SIGPIPE; a
 * process using this client must ignore SIGPIPE (galaxy-cli does).
 */
#ifndef GX_TRANSPORT_GX_CLIENT_H
#define GX_TRANSPORT_GX_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <galaxy/gx_module.h>

typedef struct gx_client_s gx_client_t;
typedef struct gx_client_bidi_s gx_client_bidi_t;

/** Defaults of the gx_client_opts_t fields left at 0. */
#define GX_CLIENT_CONNECT_TIMEOUT_MS 10000
#define GX_CLIENT_MAX_RECV_MESSAGE_BYTES (4u << 20)
#define GX_CLIENT_MAX_HEADER_LIST_BYTES (16u << 10)
/** Longest grpc-message kept in a gx_client_status_t (longer ones are truncated). */
#define GX_CLIENT_MESSAGE_MAX 1024
/** Responses a bidirectional call may hold unreceived before it fails (RESOURCE_EXHAUSTED). */
#define GX_CLIENT_BIDI_QUEUE_MAX 1024u
/** Bytes of requests a bidirectional call may hold unsent before gx_client_bidi_send() refuses. */
#define GX_CLIENT_BIDI_SEND_MAX (4u << 20)
/** gx_client_bidi_recv(): wait without a time limit. */
#define GX_CLIENT_WAIT_FOREVER UINT32_MAX

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
 * the client.  Close its bidirectional calls first.  NULL is a no-op.
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

/* ------------------------------------------------------------------------ */
/* Bidirectional streaming                                                  */

/**
 * Starts a bidirectional-streaming call (also usable for client streaming):
 * sends the request HEADERS and returns at once, without a message and
 * without waiting for the server.  Then, in any order and for as long as
 * the call is open:
 *
 *  - gx_client_bidi_send() queues a request message;
 *  - gx_client_bidi_recv() takes the next response, waiting for it up to a
 *    bound, or returns early when a file descriptor of the caller becomes
 *    readable (a self-pipe written by a signal handler, say);
 *  - gx_client_bidi_close_send() half-closes (no more requests);
 *
 * and finally gx_client_bidi_close() frees the call, cancelling it
 * (RST_STREAM CANCEL) when it has not ended.  A loop that heartbeats, for
 * example:
 * @code
 *     for (;;) {
 *         if (now >= next_send)
 *             gx_client_bidi_send(b, &req.base);  // and next_send += interval
 *         rv = gx_client_bidi_recv(b, next_send - now, wake_fd, &msg);
 *         if (rv == 0) { use(msg); protobuf_c_message_free_unpacked(msg, NULL); }
 *         else if (rv == GX_ECLOSED) break;        // gx_client_bidi_status(b) says how
 *         // GX_ETIMEDOUT: time to send; wake_fd readable: see to it
 *     }
 *     gx_client_bidi_close(b);
 * @endcode
 *
 * While the call is open, unary and server-streaming calls (and other
 * bidirectional ones) may be made on the same client; each runs the loop,
 * so responses to this call that arrive meanwhile are queued for
 * gx_client_bidi_recv(), up to GX_CLIENT_BIDI_QUEUE_MAX, beyond which the
 * call fails with RESOURCE_EXHAUSTED.  A lost connection ends every open
 * call with UNAVAILABLE (origin LOCAL), and every later call fails the same
 * way: the caller closes the calls and the client, and opens a new one.
 *
 * @param method, resp_desc, md, n_md  as for gx_client_unary().
 * @param timeout_ms  the whole call's deadline, also sent as grpc-timeout;
 *                    0: none (a dead peer is noticed by TCP keepalive).
 * @param out         the open call on success; close it with
 *                    gx_client_bidi_close() before gx_client_close(@p c).
 * @param st          filled on failure: why the call could not start.
 * @return 0; GX_EIO when the connection cannot take a new call (broken,
 *         GOAWAY: st UNAVAILABLE); GX_EINVAL for bad arguments (st
 *         INTERNAL); GX_ENOMEM.
 * @note thread: any, one thread at a time per client (its calls included)
 */
int gx_client_bidi_open(gx_client_t *c, const char *method,
                        const ProtobufCMessageDescriptor *resp_desc, const gx_client_md_t *md,
                        size_t n_md, uint32_t timeout_ms, gx_client_bidi_t **out,
                        gx_client_status_t *st);

/**
 * Queues @p msg (packed now: the caller may free it on return) and hands
 * it to the connection as far as flow control and the socket allow, without
 * waiting; the rest goes out while the loop runs (any call on the client).
 * @return 0; GX_ECLOSED when the call has ended (gx_client_bidi_status());
 *         GX_EINVAL after gx_client_bidi_close_send() or for a NULL
 *         message; GX_E2BIG when more than GX_CLIENT_BIDI_SEND_MAX bytes
 *         are still unsent (the server does not read: try again later, or
 *         give up); GX_ENOMEM.
 */
int gx_client_bidi_send(gx_client_bidi_t *b, const ProtobufCMessage *msg);

/**
 * Half-closes the call: what was queued is sent, then END_STREAM.  The
 * server's responses and status still arrive through gx_client_bidi_recv().
 * Calling it again is a no-op (returns 0).
 * @return 0; GX_ECLOSED when the call had already ended.
 */
int gx_client_bidi_close_send(gx_client_bidi_t *b);

/**
 * Takes the next response, in the order received.  When none is queued,
 * runs the client's loop (sending what is queued, receiving, keeping the
 * connection alive) until one arrives, the call ends, @p wait_ms passes or
 * @p wake_fd becomes readable.  Responses received before the call ended are
 * all handed out before GX_ECLOSED.
 *
 * @param wait_ms  how long to wait: 0 only takes what the socket has now,
 *                 GX_CLIENT_WAIT_FOREVER has no bound.
 * @param wake_fd  a descriptor whose readability ends the wait (the caller
 *                 drains it; it is only watched), or -1.
 * @param out      on 0: the response, allocated with protobuf-c's default
 *                 allocator; the caller frees it with
 *                 protobuf_c_message_free_unpacked(msg, NULL).  Else NULL.
 * @return 0; GX_ETIMEDOUT when nothing came within @p wait_ms or @p wake_fd
 *         woke it (the call goes on); GX_ECLOSED when the call has ended and
 *         every response was taken: gx_client_bidi_status() says how (OK
 *         when the server ended it OK); GX_ENOMEM.
 */
int gx_client_bidi_recv(gx_client_bidi_t *b, uint32_t wait_ms, int wake_fd, ProtobufCMessage **out);

/**
 * How the call ended: the server's status or one the client derived (see
 * the top of this file), CANCELLED after gx_client_bidi_close(); all zero
 * (OK, empty message) while it has not ended.  Valid until
 * gx_client_bidi_close().
 */
const gx_client_status_t *gx_client_bidi_status(const gx_client_bidi_t *b);

/**
 * Ends the call and frees it: an open call is cancelled (RST_STREAM CANCEL,
 * sent if the socket takes it now), unreceived responses are dropped.
 * NULL is a no-op.
 */
void gx_client_bidi_close(gx_client_bidi_t *b);

/**
 * The gRPC status for an HTTP :status received without grpc-status
 * (http-grpc-status-mapping.md).  Exposed for the unit tests.
 */
gx_status_t gx_client_http_to_status(int http_status);

#endif /* GX_TRANSPORT_GX_CLIENT_H */
