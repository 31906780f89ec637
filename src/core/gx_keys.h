/* SPDX-License-Identifier: MIT */
/**
 * @file gx_keys.h
 * API keys: created, listed and revoked through PoolAdmin, checked by the
 * authentication module on every call that carries one.
 *
 * A secret is "gxk_" and 64 hex digits (256 random bits).  A key is stored
 * as its id, a random 16-byte salt and SHA-256(salt ‖ secret), never the
 * secret.  The id is the first 8 bytes of SHA-256("galaxy-key-id" ‖ secret)
 * in hex, so a secret finds its key in one lookup whatever its form (also a
 * GALAXY_ADMIN_KEY chosen by the operator, which must be ≥ 32 characters);
 * with secrets of ≥ 128 random bits the id reveals nothing useful.
 *
 * Readers never lock: the id table is an open-addressed array of pointers
 * published with rcu_assign_pointer; keys are never freed while the server
 * runs (a revoked key stays listed, with its flag set), and a table
 * replaced on growth is kept until gx_keys_close().  Writers are
 * serialised by a mutex and apply a change to memory only after its commit.
 */
#ifndef GX_CORE_GX_KEYS_H
#define GX_CORE_GX_KEYS_H

#include <stddef.h>

#include <galaxy/gx_module.h>

#include "core/gx_reg.h"
#include "store/gx_store.h"

#define GX_KEYS_MAX 100000        /**< keys a server holds, revoked included */
#define GX_KEY_NAME_MAX 128
#define GX_KEY_POOLS_MAX 64
#define GX_KEY_SECRET_MAX 256     /**< bytes of a secret a client may send */
#define GX_KEY_ADMIN_MIN 32       /**< characters of GALAXY_ADMIN_KEY */
#define GX_KEY_FILE "admin.key"

typedef Galaxy__Pool__V1__ApiKey gx_pb_key_t;

/**
 * Loads the keys of @p st.  When gx_keys_require() was called and the store
 * holds no key, creates the first admin key: with GALAXY_ADMIN_KEY's secret,
 * or a random one written to @p data_dir/admin.key (mode 0600) whose path is
 * logged.
 * @return 0, or GX_EINVAL/GX_EIO/GX_ENOMEM with @p err set
 * @note thread: main, after gx_reg_open, before the workers start
 */
int gx_keys_open(gx_store_t *st, const char *data_dir, char *err, size_t errlen);
/** Frees every key and table.  @note thread: main, after the store committed its last batch */
void gx_keys_close(void);

/**
 * Creates a key (validated by the caller).  @p reply (call memory) is the
 * key as it will be stored and @p secret its secret, valid once op->done ran
 * with status 0.
 * @return 0 (op in flight), or <0 with @p why set
 */
int gx_keys_create_submit(gx_call_t *call, const char *name, gx_role_t role,
                          char *const *pools, size_t n_pools, gx_reg_op_t *op,
                          gx_pb_key_t **reply, char **secret, gx_reg_why_t *why);
/** Revokes key @p id (idempotent); NOT_FOUND, or FAILED_PRECONDITION for the last admin key. */
int gx_keys_revoke_submit(const char *id, gx_reg_op_t *op, gx_reg_why_t *why);
/** Every key (call memory, shallow), by creation time then id. @return 0 or GX_ENOMEM */
int gx_keys_list(gx_call_t *call, gx_pb_key_t ***out, size_t *n);

#endif /* GX_CORE_GX_KEYS_H */
