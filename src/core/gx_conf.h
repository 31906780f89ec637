/* SPDX-License-Identifier: MIT */
/**
 * @file gx_conf.h
 * The server configuration: loaded from YAML (etc/galaxy-poold.yaml), then
 * overridden by command-line flags.  Unknown keys and bad values are refused
 * with "file:line: reason".
 */
#ifndef GX_CORE_GX_CONF_H
#define GX_CORE_GX_CONF_H

#include <stddef.h>
#include <stdint.h>

#include <galaxy/gx_module.h>

#include "core/gx_jobs.h"
#include "core/gx_reg.h"
#include "transport/gx_limits.h"

/** One `key: value` of a module's `config:` mapping. */
typedef struct {
    char *key;   /**< the key as written */
    char *value; /**< the scalar value as written; "" for an empty or null value */
    char *where; /**< "file:line" of the key */
} gx_conf_kv_t;

/** One entry of `modules:`; handed to the module's init(). */
struct gx_mod_conf_s {
    char *path;  /**< as written: a bare name is looked up in module_dir */
    char *where; /**< "file:line" of the entry */
    gx_conf_kv_t *kv; /**< the `config:` pairs in file order (no duplicate keys) */
    size_t n_kv;      /**< number of entries in @p kv */
};

/**
 * The whole server configuration.  Every string is owned by the structure
 * (heap, freed by gx_conf_deinit()); replace one with gx_conf_set_str().
 * "host:port" values may use "[v6]:port"; port 0 picks a free port.
 */
typedef struct gx_conf_s {
    char *file;           /**< the file it was read from, or NULL (defaults only) */
    unsigned workers;     /**< worker threads, 0..1024; 0: one per core */
    char *listen;         /**< h2c "host:port"; never NULL after gx_conf_check() */
    char *tls_listen;     /**< TLS "host:port" or NULL (off) */
    char *tls_cert;       /**< PEM certificate chain; required with tls_listen, else NULL */
    char *tls_key;        /**< PEM private key; required with tls_listen, else NULL */
    char *tls_client_ca;  /**< PEM CA bundle: client certificates are verified (mTLS); or NULL */
    char *admin_listen;   /**< admin HTTP "host:port" or NULL (off) */
    char *data_dir;       /**< LMDB environment and other state */
    uint32_t data_max_mb; /**< the store's map never grows past this many MiB (default 16384) */
    char *module_dir;     /**< where bare module names are looked up; "" in YAML: GX_PKGLIBDIR */
    char *access_log;     /**< "stderr", "off" or a file path */
    int log_level;        /**< GX_LOG_* */
    gx_limits_t limits;   /**< transport limits; ranges documented in etc/galaxy-poold.yaml */
    gx_reg_opts_t registry; /**< liveness and Watch history (section `registry:`) */
    gx_jobs_opts_t jobs;    /**< attempts, queues, timeouts (section `jobs:`) */
    gx_mod_conf_t *modules; /**< `modules:` entries in file order, load order */
    size_t n_modules;       /**< number of entries in @p modules */
} gx_conf_t;

/** Fills @p conf with the built-in defaults (every pointer owned by @p conf). @return 0 or GX_ENOMEM */
int gx_conf_init(gx_conf_t *conf);

/**
 * Reads @p path over the defaults already in @p conf.  Keys absent from the
 * file keep their value; `modules:` entries are appended.  On failure @p conf
 * may hold some of the file's values but stays valid: deinit it.
 * @param err     on failure, "file:line: reason" (NUL-terminated, truncated to
 *                @p errlen; "file: reason" when the file cannot be read)
 * @return 0, GX_ENOENT when the file cannot be read, GX_ECONF on a bad key or
 *         value or YAML syntax, GX_ENOMEM.
 * @note thread: main, at start-up
 */
int gx_conf_load(gx_conf_t *conf, const char *path, char *err, size_t errlen);

/**
 * Replaces the string @p *slot with a copy of @p value (NULL: frees it and
 * stores NULL).  On GX_ENOMEM @p *slot is unchanged. @return 0 or GX_ENOMEM
 */
int gx_conf_set_str(char **slot, const char *value);

/**
 * Checks what the command line may have changed after gx_conf_load(): every
 * key's range and form again, then the cross-field rules (tls_listen needs
 * tls_cert and tls_key; tls_cert, tls_key and tls_client_ca need tls_listen;
 * no two listeners on the same address unless port 0;
 * connection_window_bytes >= initial_window_bytes).
 * @return 0 or GX_ECONF with @p err set to "reason" naming the key
 *         (no file:line: the value may come from a flag).
 */
int gx_conf_check(const gx_conf_t *conf, char *err, size_t errlen);

/** Frees everything @p conf owns and zeroes it (a second call is harmless). */
void gx_conf_deinit(gx_conf_t *conf);

#endif /* GX_CORE_GX_CONF_H */
