/* SPDX-License-Identifier: MIT */
/**
 * @file gx_module.h
 * The public interface of galaxy-poold modules.
 *
 * A module is a shared object listed in the configuration and loaded with
 * dlopen() at start-up.  It exports exactly one symbol, defined with
 * GX_MODULE(), pointing at a gx_module_desc_t.  Through it the module
 *
 *  - hooks phases of every call (POST_READ → AUTHN → ACCESS → LIMIT → ROUTE →
 *    HANDLER → LOG), and/or
 *  - serves whole gRPC services (gx_service_t), dispatched by method path.
 *
 * Threads: galaxy-poold runs one event loop per worker thread.  A call lives on
 * one worker from its first frame to its end; every function taking a call
 * must be called on that worker unless marked otherwise.  Phase handlers and
 * method callbacks never block: work that has to wait returns GX_AGAIN and
 * later calls gx_call_resume() or finishes the call from an event of the same
 * worker (gx_call_timer()).
 *
 * Memory: gx_call_alloc() memory lives until the call is freed, after its LOG
 * phase.  Nothing from a call may be kept after that or passed to another call.
 */
#ifndef GX_INCLUDE_GALAXY_GX_MODULE_H
#define GX_INCLUDE_GALAXY_GX_MODULE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Bump on every incompatible change of this header. */
#define GX_MODULE_ABI 2

#define GX_API __attribute__((visibility("default")))

typedef struct gx_call_s gx_call_t;
typedef struct gx_module_s gx_module_t;
typedef struct gx_mod_conf_s gx_mod_conf_t;

/** The phases of a call, in the order they run. */
typedef enum {
    GX_PHASE_POST_READ,
    GX_PHASE_AUTHN,
    GX_PHASE_ACCESS,
    GX_PHASE_LIMIT,
    GX_PHASE_ROUTE,
    GX_PHASE_HANDLER,
    GX_PHASE_LOG,
    GX_PHASE_MAX
} gx_phase_t;

/** What a phase handler returns. */
enum {
    GX_OK = 0,       /**< go on with the next phase */
    GX_DECLINED = 1, /**< not mine: next handler of the same phase */
    GX_DONE = 2,     /**< the answer is set (or the call continues on its own): skip to LOG */
    GX_AGAIN = 3     /**< parked: gx_call_resume() continues where it stopped */
};

/** gRPC status codes (grpc/doc/statuscodes.md). */
typedef enum {
    GX_STATUS_OK = 0,
    GX_STATUS_CANCELLED = 1,
    GX_STATUS_UNKNOWN = 2,
    GX_STATUS_INVALID_ARGUMENT = 3,
    GX_STATUS_DEADLINE_EXCEEDED = 4,
    GX_STATUS_NOT_FOUND = 5,
    GX_STATUS_ALREADY_EXISTS = 6,
    GX_STATUS_PERMISSION_DENIED = 7,
    GX_STATUS_RESOURCE_EXHAUSTED = 8,
    GX_STATUS_FAILED_PRECONDITION = 9,
    GX_STATUS_ABORTED = 10,
    GX_STATUS_OUT_OF_RANGE = 11,
    GX_STATUS_UNIMPLEMENTED = 12,
    GX_STATUS_INTERNAL = 13,
    GX_STATUS_UNAVAILABLE = 14,
    GX_STATUS_DATA_LOSS = 15,
    GX_STATUS_UNAUTHENTICATED = 16,
    GX_STATUS_MAX
} gx_status_t;

/* ------------------------------------------------------------------------ */
/* Phase hooks                                                              */

/**
 * A phase handler.
 * @param call     the call; valid for the duration of the handler.
 * @param mod_ctx  the context the module's init() returned.
 * @return GX_OK, GX_DECLINED, GX_DONE or GX_AGAIN; errors are
 *         `return gx_call_fail(call, status, ...)`, which returns GX_DONE.
 *         In the LOG phase the return value is ignored.
 */
typedef int (*gx_phase_fn)(gx_call_t *call, void *mod_ctx);

typedef struct {
    gx_phase_t phase;
    gx_phase_fn fn;
    int order; /**< lower runs first within the phase */
} gx_hook_t;

/* ------------------------------------------------------------------------ */
/* Access control                                                           */

/** Roles of credentials (galaxy.pool.v1.Role); GX_ROLE_NONE is anonymous. */
typedef enum {
    GX_ROLE_NONE = 0,
    GX_ROLE_VIEWER = 1,
    GX_ROLE_NODE = 2,
    GX_ROLE_SUBMITTER = 3,
    GX_ROLE_OPERATOR = 4,
    GX_ROLE_ADMIN = 5
} gx_role_t;

/** What a call does, for the access rules of API.md. */
typedef enum {
    GX_ACCESS_OPEN = 0,  /**< needs no credentials: health, reflection, test services */
    GX_ACCESS_DISCOVER,  /**< reads a pool and its nodes */
    GX_ACCESS_NODE,      /**< registers, heartbeats, deregisters nodes of a pool */
    GX_ACCESS_SUBMIT,    /**< submits jobs to a pool */
    GX_ACCESS_OPERATE,   /**< drains nodes, sees every job of a pool */
    GX_ACCESS_ADMIN,     /**< pool and key administration */
    GX_ACCESS_POOLS      /**< lists pools: the handler keeps those the caller may discover */
} gx_access_t;

/** Pool visibility as the registry knows it (gx_pool_visibility()). */
typedef enum { GX_POOL_NONE = 0, GX_POOL_PUBLIC = 1, GX_POOL_PRIVATE = 2 } gx_pool_vis_t;

/** The NOT_FOUND message for a pool, the same whether it is missing or hidden. */
#define GX_NO_POOL_FMT "%s: no pool \"%s\""

/* ------------------------------------------------------------------------ */
/* Services                                                                 */

typedef enum {
    GX_RPC_UNARY,
    GX_RPC_SERVER_STREAMING,
    GX_RPC_CLIENT_STREAMING,
    GX_RPC_BIDI_STREAMING
} gx_rpc_kind_t;

/**
 * Starts a call in the HANDLER phase.
 * @param req  unary and server-streaming: the decoded request (call memory);
 *             client and bidi streaming: NULL, messages arrive in on_message.
 * @return GX_DONE when the call is answered (gx_call_reply(), gx_call_fail(),
 *         gx_call_finish()), GX_AGAIN when it goes on by itself (a stream the
 *         handler keeps feeding from events of the call's worker).  A handler
 *         that must wait for another thread (a store commit) before it can
 *         answer parks the call from a HANDLER-phase hook instead (GX_AGAIN +
 *         gx_call_resume()) and answers here once resumed: only a parked
 *         call is kept alive across threads.
 */
typedef int (*gx_rpc_start_fn)(gx_call_t *call, const ProtobufCMessage *req, void *mod_ctx);
/**
 * Checks one decoded request message.
 * @return GX_OK, or GX_DONE after gx_call_fail() (INVALID_ARGUMENT naming
 *         the field)
 */
typedef int (*gx_rpc_validate_fn)(gx_call_t *call, const ProtobufCMessage *req);
/** One decoded request message of a client or bidi streaming call; valid only during the callback. */
typedef void (*gx_rpc_msg_fn)(gx_call_t *call, const ProtobufCMessage *msg, void *mod_ctx);
/** Half-close, cancellation (peer reset, deadline, shutdown) or send-buffer drained. */
typedef void (*gx_rpc_event_fn)(gx_call_t *call, void *mod_ctx);

typedef struct {
    const char *name;       /**< as in the service descriptor, e.g. "UnaryCall" */
    gx_rpc_kind_t kind;
    gx_rpc_start_fn start;
    gx_rpc_msg_fn on_message;       /**< client/bidi streaming: each message */
    gx_rpc_event_fn on_half_close;  /**< client/bidi streaming: no more messages */
    gx_rpc_event_fn on_cancel;      /**< optional: the call is gone; no more sends */
    gx_rpc_event_fn on_writable;    /**< optional: gx_call_send() may go on */
    /**
     * Optional: the server is draining.  Without it, a streaming call still
     * open is finished with UNAVAILABLE (after on_cancel); unary calls are
     * left to finish.
     */
    gx_rpc_event_fn on_drain;
    /** What the method does, for access control (GX_ACCESS_OPEN: anyone). */
    gx_access_t access;
    /**
     * Optional, unary and server-streaming methods about one pool: the pool
     * the request names, and in @p field the request field that names it
     * ("pool", "name", …); NULL when the request names none.  Methods whose
     * requests arrive as a stream check each message themselves
     * (gx_call_check_access()).
     */
    const char *(*pool_of)(const ProtobufCMessage *req, const char **field);
    /**
     * Optional: validates the request (unary, server streaming) after the
     * AUTHN phase and before ACCESS, or each streamed message before
     * on_message.  After AUTHN, so a bad credential is refused first; before
     * ACCESS, so a request is judged on its own before any pool is looked
     * up and a hidden pool answers exactly like a missing one.
     */
    gx_rpc_validate_fn validate;
} gx_method_t;

typedef struct {
    const ProtobufCServiceDescriptor *desc;
    const gx_method_t *methods; /**< one row per descriptor method, ends with { .name = NULL } */
} gx_service_t;

/* ------------------------------------------------------------------------ */
/* The module descriptor                                                    */

typedef struct {
    uint32_t abi;        /**< GX_MODULE_ABI */
    const char *name;    /**< unique among loaded modules */
    const char *version;
    const char *edition; /**< "community" or "enterprise" */
    /**
     * Called once at start-up, before workers start.  Validates the module's
     * configuration section and builds its context.
     * @return 0, or a negative errno-style code after gx_mod_log()ging why:
     *         the server then refuses to start.
     */
    int (*init)(gx_module_t *mod, const gx_mod_conf_t *conf, void **mod_ctx);
    /** Called once at shutdown, after every worker has stopped. */
    void (*fini)(gx_module_t *mod, void *mod_ctx);
    const gx_hook_t *hooks;              /**< ends with { .fn = NULL }; may be NULL */
    const gx_service_t *const *services; /**< NULL-terminated; may be NULL */
    /**
     * Optional access policy: may the call do @p what on @p pool (NULL: no
     * pool)?  GX_STATUS_OK, or the status to refuse it with
     * (NOT_FOUND, UNAUTHENTICATED, PERMISSION_DENIED).  Asked through
     * gx_call_check_access() by handlers that learn the pool late (streamed
     * requests) or filter lists.  Must not block.  @note thread: any worker
     */
    gx_status_t (*access)(const gx_call_t *call, gx_access_t what, const char *pool,
                          void *mod_ctx);
    void *reserved[3];
} gx_module_desc_t;

/** Defines the module's single exported symbol. */
#define GX_MODULE(desc) \
    GX_API const gx_module_desc_t *const gx_module_descriptor = &(desc)

#define GX_MODULE_SYMBOL "gx_module_descriptor"

/* ------------------------------------------------------------------------ */
/* Routing policies                                                         */

/**
 * A node that could take a job, as a routing policy sees it.  Only eligible
 * nodes are offered (HEALTHY, not draining, not flapping, with the job's
 * specialization, every node_selector label and free capacity).
 */
typedef struct {
    const char *id;          /**< the node's id */
    double load;             /**< last reported load, 0..1 */
    uint32_t running_jobs;   /**< jobs the node last reported running */
    uint32_t assigned_jobs;  /**< jobs the pool has on it (ASSIGNED or RUNNING) */
} gx_route_node_t;

/** The job being routed. */
typedef struct {
    const char *pool;
    const char *id;              /**< the job's id */
    const char *specialization;
    const char *routing_key;     /**< "" when the submitter gave none */
} gx_route_job_t;

/**
 * A routing policy: what a pool's `routing_policy` names.  Registered by a
 * module's init() with gx_route_register().
 */
typedef struct {
    const char *name; /**< the routing_policy value, [a-z0-9_]{1,32}; unique */
    /**
     * Picks one of @p nodes[0..n) (n >= 1, in node id order) for @p job.
     * When @p scores is not NULL (ExplainJob), also sets scores[i] for every
     * node: the policy's own measure, higher is better.
     * @return the index of the chosen node, 0 .. n-1
     * @note thread: any; runs under the jobs lock: quick, never blocks
     */
    size_t (*choose)(const gx_route_job_t *job, const gx_route_node_t *nodes, size_t n,
                     double *scores, void *ctx);
    /**
     * 0: choose() is offered every eligible node.  1 to 16: a sample of that
     * many distinct eligible nodes drawn at random is enough (p2c: 2), so a
     * decision need not judge every node of a big pool; choose() still gets
     * every eligible node when the pool is small (under 4 × sample nodes) or
     * random draws find too few.
     */
    unsigned sample;
} gx_router_t;

/**
 * Makes @p router available under its name (in init(); @p router and @p ctx
 * must live until fini).  @return 0, or -EEXIST (name taken), -EINVAL (bad
 * name), -ENOSPC (too many policies)
 */
GX_API int gx_route_register(gx_module_t *mod, const gx_router_t *router, void *ctx);

/* ------------------------------------------------------------------------ */
/* Module configuration                                                     */

/**
 * The value of @p key in the module's `config:` mapping, or NULL.
 * The string lives as long as the server's configuration.
 */
GX_API const char *gx_mod_conf_get(const gx_mod_conf_t *conf, const char *key);
/** "file:line" of @p key (or of the section when the key is absent). */
GX_API const char *gx_mod_conf_where(const gx_mod_conf_t *conf, const char *key);
/**
 * The @p i-th key of the module's `config:` mapping (in file order), or NULL
 * past the last: lets init() refuse keys it does not know.
 */
GX_API const char *gx_mod_conf_key(const gx_mod_conf_t *conf, size_t i);

/* ------------------------------------------------------------------------ */
/* Logging                                                                  */

enum { GX_LOG_ERROR, GX_LOG_WARN, GX_LOG_INFO, GX_LOG_DEBUG };

/** Logs one line with module=<name>. @note thread: any */
GX_API void gx_mod_log(const gx_module_t *mod, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------------ */
/* Calls                                                                    */

/** "/package.Service/Method" (NUL-terminated). */
GX_API const char *gx_call_method(const gx_call_t *call);
/**
 * The service the call's method belongs to, NULL before routing and for an
 * unknown method.  A hook that acts on some methods of its own service tests
 * this first: a pointer comparison instead of a string one on every call.
 */
GX_API const gx_service_t *gx_call_service(const gx_call_t *call);
/** The peer as "ip:port" or "[ip6]:port". */
GX_API const char *gx_call_peer(const gx_call_t *call);
/** Index of the worker thread that owns the call, 0 .. workers-1. */
GX_API unsigned gx_call_worker(const gx_call_t *call);
/** 1 when the call arrived over TLS. */
GX_API int gx_call_is_tls(const gx_call_t *call);
/**
 * The identity of the client certificate that the server verified (mTLS):
 * its first URI SAN, else its first DNS SAN; never the CN.  NULL when the
 * call came without a verified certificate.  Lives as long as the call.
 */
GX_API const char *gx_call_tls_identity(const gx_call_t *call);

/**
 * The first value of request metadata @p key (lowercase), or NULL.
 * Binary keys (ending in -bin) are returned base64-decoded.
 * @param len  set to the value's length when not NULL.
 */
GX_API const char *gx_call_metadata(const gx_call_t *call, const char *key, size_t *len);
/** How many values of request metadata @p key (lowercase) the call carries. */
GX_API size_t gx_call_metadata_count(const gx_call_t *call, const char *key);

/** Adds response header metadata; only before the first message is sent. @return 0 or <0 */
GX_API int gx_call_header_add(gx_call_t *call, const char *key, const char *value, size_t len);
/** Adds trailer metadata, sent by gx_call_finish(). @return 0 or <0 */
GX_API int gx_call_trailer_add(gx_call_t *call, const char *key, const char *value, size_t len);

/** Memory that lives as long as the call; NULL when out of memory. */
GX_API void *gx_call_alloc(gx_call_t *call, size_t size);

/** The per-call slot of @p mod (NULL until set). */
GX_API void *gx_call_ctx(const gx_call_t *call, const gx_module_t *mod);
GX_API void gx_call_set_ctx(gx_call_t *call, const gx_module_t *mod, void *ctx);

/** The caller's identity ("key:<id>", "cert:<name>") or "" when anonymous. */
GX_API const char *gx_call_identity(const gx_call_t *call);
GX_API void gx_call_set_identity(gx_call_t *call, const char *identity);

/**
 * Sets who the caller is (AUTHN phase): @p identity ("key:<id>",
 * "cert:<name>"), @p role and the pools its credentials cover (@p n_pools 0:
 * every pool).  Everything is copied into call memory.  @return 0 or GX_ENOMEM-like <0
 */
GX_API int gx_call_set_principal(gx_call_t *call, const char *identity, gx_role_t role,
                                 const char *const *pools, size_t n_pools);
/** The caller's role; GX_ROLE_NONE when anonymous. */
GX_API gx_role_t gx_call_role(const gx_call_t *call);
/** 1 when the caller has credentials whose pool list includes @p pool (or is empty). */
GX_API int gx_call_covers_pool(const gx_call_t *call, const char *pool);
/** What the call's method does (gx_method_t.access). */
GX_API gx_access_t gx_call_access(const gx_call_t *call);
/**
 * The pool the call is about (gx_method_t.pool_of of its request), or NULL;
 * @p field, when not NULL, is set to the request field naming it.
 */
GX_API const char *gx_call_pool(const gx_call_t *call, const char **field);
/**
 * Asks the loaded access policies (gx_module_desc_t.access) whether the call
 * may do @p what on @p pool.  GX_STATUS_OK when no policy is loaded.
 */
GX_API gx_status_t gx_call_check_access(const gx_call_t *call, gx_access_t what,
                                        const char *pool);
/**
 * Fails the call with @p status as the access rules word it: NOT_FOUND
 * exactly as for a missing pool (GX_NO_POOL_FMT with @p field), the others
 * naming what the call needed.  @return GX_DONE
 */
GX_API int gx_call_fail_access(gx_call_t *call, gx_status_t status, gx_access_t what,
                               const char *pool, const char *field);

/** Whether pool @p name exists and how visible it is. @note thread: any */
GX_API gx_pool_vis_t gx_pool_visibility(const char *name);

/**
 * Checks an API key secret (auth modules): on success sets the call's
 * principal to the key ("key:<id>", its role and pools) and returns
 * GX_STATUS_OK; an unknown, revoked or malformed secret is
 * GX_STATUS_UNAUTHENTICATED.  Compares in constant time.
 */
GX_API gx_status_t gx_call_authenticate_key(gx_call_t *call, const char *secret, size_t len);
/**
 * Declares that API keys are in use (auth module init()): on a data
 * directory without keys the server then creates the first admin key.
 */
GX_API void gx_keys_require(void);

/**
 * Queues one response message.
 * @return 0 when more may be sent; GX_AGAIN when the message is queued but the
 *         send buffer is full: wait for on_writable before sending more;
 *         a negative code when the call is finished/cancelled or the message
 *         could not be packed.
 */
GX_API int gx_call_send(gx_call_t *call, const ProtobufCMessage *msg);
/**
 * Ends the call with @p status and @p message (may be NULL), sending the
 * trailers after everything queued.  Further calls are ignored.
 */
GX_API void gx_call_finish(gx_call_t *call, gx_status_t status, const char *message);
/** gx_call_send() + gx_call_finish(OK). @return GX_DONE */
GX_API int gx_call_reply(gx_call_t *call, const ProtobufCMessage *msg);
/** Records an error status and message, finishes the call. @return GX_DONE */
GX_API int gx_call_fail(gx_call_t *call, gx_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** The status the call ended (or will end) with; GX_STATUS_OK until then. */
GX_API gx_status_t gx_call_status(const gx_call_t *call);
/** 1 once the call is finished or cancelled: sending is pointless. */
GX_API int gx_call_is_done(const gx_call_t *call);

/**
 * Continues a call parked by a phase hook's GX_AGAIN as if that hook had
 * returned GX_OK.
 * Each GX_AGAIN must be matched by exactly one gx_call_resume(); the call is
 * kept alive until then even if the peer resets it or its deadline passes.
 * Such a call still runs its LOG phase when its stream ends, and its
 * gx_call_timer() is dropped then: a module that parked a call on a timer
 * resumes it from its LOG hook when the call is done (gx_call_is_done()).
 * @note thread: any; the call continues on its own worker.
 */
GX_API void gx_call_resume(gx_call_t *call);

/**
 * Runs @p fn on the call's worker after @p usec microseconds.  One timer per
 * call: a new one replaces the old.  The timer is dropped when the call ends.
 */
GX_API int gx_call_timer(gx_call_t *call, uint64_t usec, void (*fn)(gx_call_t *call, void *arg),
                         void *arg);

#ifdef __cplusplus
}
#endif

#endif /* GX_INCLUDE_GALAXY_GX_MODULE_H */
