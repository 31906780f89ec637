/* SPDX-License-Identifier: MIT */
/*
 * API keys (see gx_keys.h for the scheme).  The write path mirrors the
 * registry's: a worker validates and submits the record, the store commits
 * it, and the store's writer thread applies the change to memory before the
 * call is resumed, so a revocation is in force before it is acknowledged.
 *
 * Record (table GX_STORE_KEYS, key = id): one version byte (1), the salt,
 * SHA-256(salt ‖ secret), then the ApiKey message.
 */
#include "config.h"

#include "core/gx_keys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/gx_clock.h"
#include "util/gx_crypto.h"
#include "util/gx_error.h"
#include "util/gx_log.h"
#include "util/gx_stats.h"

#define SALT_LEN 16
#define ID_BYTES 8
#define ID_HEX (2 * ID_BYTES)
#define SECRET_BYTES 32
#define SECRET_PREFIX "gxk_"
#define SECRET_LEN (sizeof(SECRET_PREFIX) - 1 + 2 * SECRET_BYTES)
#define REC_VERSION 1
#define REC_HEAD (1 + SALT_LEN + GX_SHA256_LEN)
#define ID_DOMAIN "galaxy-key-id"

typedef struct {
    char id[ID_HEX + 1];
    uint8_t salt[SALT_LEN];
    uint8_t hash[GX_SHA256_LEN];
    gx_pb_key_t *pb;  /* heap; pb->revoked changes under K.lock */
    int revoked;      /* atomic: read by every authentication */
    int revoking;     /* K.lock: a revocation is in flight */
} apikey_t;

typedef struct table_s {
    size_t cap;              /* power of two, at least twice the keys */
    apikey_t **slot;           /* published pointers, read with acquire loads */
    struct table_s *old;     /* the table it replaced, freed at close */
} table_t;

static struct {
    gx_store_t *st;
    table_t *t;              /* acquire/release */
    apikey_t **all;            /* every key in load/creation order (K.lock) */
    size_t n, cap;
    unsigned admins;         /* active admin keys, minus revocations in flight */
    int required;
    pthread_mutex_t lock;
} K = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* a write in flight, handed to the store */
typedef struct {
    gx_reg_op_t *op;
    apikey_t *key;
    int revoke;
    int was_admin;
} kwrite_t;

void
gx_keys_require(void)
{
    K.required = 1;
}

/* ------------------------------------------------------------------ keys and ids */

static void
id_of(const char *secret, size_t len, char out[ID_HEX + 1])
{
    uint8_t d[GX_SHA256_LEN];

    if (gx_sha256(d, ID_DOMAIN, sizeof(ID_DOMAIN), secret, len) != 0)
        memset(d, 0, sizeof(d));
    gx_hex(out, d, ID_BYTES);
}

static uint64_t
id_hash(const char *id)
{
    uint64_t h = 0;

    /* the id is already a digest: its first hex digits spread well */
    for (int i = 0; i < 16 && id[i]; i++)
        h = (h << 4) | (uint64_t)(id[i] <= '9' ? id[i] - '0' : id[i] - 'a' + 10);
    return h;
}

static void
key_free(apikey_t *k)
{
    if (k == NULL)
        return;
    protobuf_c_message_free_unpacked(&k->pb->base, NULL);
    free(k);
}

/* a key object with a heap ApiKey built from its fields */
static apikey_t *
key_new(const char *id, const char *name, gx_role_t role, char *const *pools, size_t n_pools,
        int64_t created)
{
    gx_pb_key_t pb = GALAXY__POOL__V1__API_KEY__INIT;
    apikey_t *k = calloc(1, sizeof(*k));
    uint8_t *buf = NULL;
    size_t len;

    if (k == NULL)
        return NULL;
    pb.id = (char *)id;
    pb.name = (char *)name;
    pb.role = (Galaxy__Pool__V1__Role)role;
    pb.n_pools = n_pools;
    pb.pools = (char **)pools;
    pb.created_unix_ms = created;
    /* one packed round trip gives a heap copy that frees as one message */
    len = protobuf_c_message_get_packed_size(&pb.base);
    buf = malloc(len ? len : 1);
    if (buf != NULL) {
        protobuf_c_message_pack(&pb.base, buf);
        k->pb = galaxy__pool__v1__api_key__unpack(NULL, len, buf);
    }
    free(buf);
    if (k->pb == NULL) {
        free(k);
        return NULL;
    }
    memcpy(k->id, id, ID_HEX + 1);
    return k;
}

static apikey_t *
table_find(const table_t *t, const char *id)
{
    size_t mask, i;

    if (t == NULL)
        return NULL;
    mask = t->cap - 1;
    for (i = id_hash(id) & mask;; i = (i + 1) & mask) {
        apikey_t *k = __atomic_load_n(&t->slot[i], __ATOMIC_ACQUIRE);
        if (k == NULL)
            return NULL;
        if (memcmp(k->id, id, ID_HEX) == 0)
            return k;
    }
}

static void
table_put(table_t *t, apikey_t *k)
{
    size_t mask = t->cap - 1;

    for (size_t i = id_hash(k->id) & mask;; i = (i + 1) & mask)
        if (t->slot[i] == NULL) {
            __atomic_store_n(&t->slot[i], k, __ATOMIC_RELEASE);
            return;
        }
}

/* adds @p k to memory (K.lock held): the table grows by replacement */
static int
keys_add(apikey_t *k)
{
    table_t *t = K.t;

    if (K.n == K.cap) {
        size_t cap = K.cap ? 2 * K.cap : 16;
        apikey_t **v = realloc(K.all, cap * sizeof(*v));
        if (v == NULL)
            return GX_ENOMEM;
        K.all = v;
        K.cap = cap;
    }
    if (t == NULL || 2 * (K.n + 1) > t->cap) {
        table_t *nt = calloc(1, sizeof(*nt));
        if (nt == NULL)
            return GX_ENOMEM;
        nt->cap = t != NULL ? 2 * t->cap : 64;
        nt->slot = calloc(nt->cap, sizeof(*nt->slot));
        if (nt->slot == NULL) {
            free(nt);
            return GX_ENOMEM;
        }
        for (size_t i = 0; i < K.n; i++)
            table_put(nt, K.all[i]);
        nt->old = t;
        __atomic_store_n(&K.t, nt, __ATOMIC_RELEASE);
        t = nt;
    }
    table_put(t, k);
    K.all[K.n++] = k;
    if (k->pb->role == GALAXY__POOL__V1__ROLE__ROLE_ADMIN && !k->revoked)
        K.admins++;
    return 0;
}

/* ------------------------------------------------------------------ records */

static uint8_t *
record(const apikey_t *k, int revoked, size_t *len)
{
    gx_pb_key_t pb = *k->pb;
    size_t body;
    uint8_t *rec;

    pb.revoked = revoked;
    body = protobuf_c_message_get_packed_size(&pb.base);
    rec = malloc(REC_HEAD + body);
    if (rec == NULL)
        return NULL;
    rec[0] = REC_VERSION;
    memcpy(rec + 1, k->salt, SALT_LEN);
    memcpy(rec + 1 + SALT_LEN, k->hash, GX_SHA256_LEN);
    protobuf_c_message_pack(&pb.base, rec + REC_HEAD);
    *len = REC_HEAD + body;
    return rec;
}

static apikey_t *
record_parse(const void *id, size_t id_len, const uint8_t *v, size_t len)
{
    gx_pb_key_t *pb;
    apikey_t *k;

    if (id_len != ID_HEX || len < REC_HEAD || v[0] != REC_VERSION)
        return NULL;
    pb = galaxy__pool__v1__api_key__unpack(NULL, len - REC_HEAD, v + REC_HEAD);
    if (pb == NULL)
        return NULL;
    if (strlen(pb->id) != ID_HEX || memcmp(pb->id, id, ID_HEX) != 0 ||
        pb->role < GALAXY__POOL__V1__ROLE__ROLE_VIEWER ||
        pb->role > GALAXY__POOL__V1__ROLE__ROLE_ADMIN) {
        protobuf_c_message_free_unpacked(&pb->base, NULL);
        return NULL;
    }
    k = calloc(1, sizeof(*k));
    if (k == NULL) {
        protobuf_c_message_free_unpacked(&pb->base, NULL);
        return NULL;
    }
    memcpy(k->id, pb->id, ID_HEX + 1);
    memcpy(k->salt, v + 1, SALT_LEN);
    memcpy(k->hash, v + 1 + SALT_LEN, GX_SHA256_LEN);
    k->pb = pb;
    k->revoked = pb->revoked;
    return k;
}

/* a new key for @p secret: id, fresh salt, salted hash */
static apikey_t *
key_make(const char *secret, size_t len, const char *name, gx_role_t role, char *const *pools,
         size_t n_pools)
{
    char id[ID_HEX + 1];
    uint8_t salt[SALT_LEN];
    apikey_t *k;

    id_of(secret, len, id);
    gx_random_bytes(salt, sizeof(salt));
    k = key_new(id, name, role, pools, n_pools, gx_unix_ms());
    if (k == NULL)
        return NULL;
    memcpy(k->salt, salt, SALT_LEN);
    if (gx_sha256(k->hash, salt, SALT_LEN, secret, len) != 0) {
        key_free(k);
        return NULL;
    }
    return k;
}

/* ------------------------------------------------------------------ authentication */

gx_status_t
gx_call_authenticate_key(gx_call_t *call, const char *secret, size_t len)
{
    static const uint8_t no_salt[SALT_LEN];
    char id[ID_HEX + 1], identity[sizeof("key:") + ID_HEX];
    uint8_t h[GX_SHA256_LEN];
    apikey_t *k = NULL;
    int ok;

    if (len > 0 && len <= GX_KEY_SECRET_MAX) {
        id_of(secret, len, id);
        k = table_find(__atomic_load_n(&K.t, __ATOMIC_ACQUIRE), id);
    }
    /* the same work whether or not the id is known */
    ok = gx_sha256(h, k != NULL ? k->salt : no_salt, SALT_LEN, secret,
                   len <= GX_KEY_SECRET_MAX ? len : 0) == 0;
    ok = ok && k != NULL && gx_ct_equal(h, k->hash, GX_SHA256_LEN) &&
         !__atomic_load_n(&k->revoked, __ATOMIC_ACQUIRE);
    if (!ok) {
        gx_stats_inc(AUTH_FAILED);
        return GX_STATUS_UNAUTHENTICATED;
    }
    snprintf(identity, sizeof(identity), "key:%s", k->id);
    if (gx_call_set_principal(call, identity, (gx_role_t)k->pb->role,
                              (const char *const *)k->pb->pools, k->pb->n_pools) != 0)
        return GX_STATUS_RESOURCE_EXHAUSTED;
    return GX_STATUS_OK;
}

/* ------------------------------------------------------------------ writes */

static int why_set(gx_reg_why_t *why, gx_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
why_set(gx_reg_why_t *why, gx_status_t status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    why->status = status;
    vsnprintf(why->msg, sizeof(why->msg), fmt, ap);
    va_end(ap);
    return GX_EINVAL;
}

/* the store's writer thread: apply, then let the call go on */
static void
write_done(int status, void *arg)
{
    kwrite_t *w = arg;
    gx_reg_op_t *op = w->op;

    pthread_mutex_lock(&K.lock);
    if (!w->revoke) {
        if (status == 0)
            status = keys_add(w->key);
        if (status != 0)
            key_free(w->key);
    } else if (status == 0) {
        w->key->pb->revoked = 1;
        __atomic_store_n(&w->key->revoked, 1, __ATOMIC_RELEASE);
        w->key->revoking = 0;
    } else {
        w->key->revoking = 0;
        K.admins += (unsigned)w->was_admin;
    }
    pthread_mutex_unlock(&K.lock);
    if (status == 0)
        gx_log(GX_LOG_INFO, "api key %s id=%s role=%d", w->revoke ? "revoked" : "created",
               w->key->id, (int)w->key->pb->role);
    free(w);
    op->status = status;
    op->done(op);
}

static int
submit(apikey_t *k, int revoke, int was_admin, gx_reg_op_t *op, gx_reg_why_t *why)
{
    kwrite_t *w = malloc(sizeof(*w));
    gx_store_op_t sop;
    uint8_t *rec;
    size_t len = 0;
    int rv;

    rec = w != NULL ? record(k, revoke, &len) : NULL;
    if (rec == NULL) {
        free(w);
        return why_set(why, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    }
    *w = (kwrite_t){op, k, revoke, was_admin};
    sop = (gx_store_op_t){GX_STORE_KEYS, 0, k->id, ID_HEX, rec, len};
    rv = gx_store_submit(K.st, &sop, 1, write_done, w);
    free(rec);
    if (rv != 0) {
        free(w);
        return why_set(why, gx_error_to_status(rv), "store: %s", gx_strerror(rv));
    }
    return 0;
}

int
gx_keys_create_submit(gx_call_t *call, const char *name, gx_role_t role, char *const *pools,
                      size_t n_pools, gx_reg_op_t *op, gx_pb_key_t **reply, char **secret,
                      gx_reg_why_t *why)
{
    uint8_t raw[SECRET_BYTES];
    char *s = gx_call_alloc(call, SECRET_LEN + 1);
    gx_pb_key_t *out = gx_call_alloc(call, sizeof(*out));
    apikey_t *k;
    int rv;

    if (s == NULL || out == NULL)
        return why_set(why, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    gx_random_bytes(raw, sizeof(raw));
    memcpy(s, SECRET_PREFIX, sizeof(SECRET_PREFIX) - 1);
    gx_hex(s + sizeof(SECRET_PREFIX) - 1, raw, sizeof(raw));
    k = key_make(s, SECRET_LEN, name, role, pools, n_pools);
    if (k == NULL)
        return why_set(why, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    /* the reply is copied first: a failed commit frees the key on the writer thread */
    *out = *k->pb;
    pthread_mutex_lock(&K.lock);
    if (K.n >= GX_KEYS_MAX)
        rv = why_set(why, GX_STATUS_RESOURCE_EXHAUSTED, "the server holds %d keys already",
                     GX_KEYS_MAX);
    else if (table_find(K.t, k->id) != NULL)
        rv = why_set(why, GX_STATUS_INTERNAL, "key id collision"); /* 2^-64 */
    else
        rv = submit(k, 0, 0, op, why);
    pthread_mutex_unlock(&K.lock);
    if (rv != 0) {
        key_free(k);
        return rv;
    }
    *reply = out;
    *secret = s;
    return 0;
}

static int
valid_id(const char *id)
{
    size_t i;

    for (i = 0; i < ID_HEX; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return 0;
    return id[i] == '\0';
}

int
gx_keys_revoke_submit(const char *id, gx_reg_op_t *op, gx_reg_why_t *why)
{
    apikey_t *k;
    int admin, rv;

    pthread_mutex_lock(&K.lock);
    k = valid_id(id) ? table_find(K.t, id) : NULL;
    if (k == NULL) {
        pthread_mutex_unlock(&K.lock);
        return why_set(why, GX_STATUS_NOT_FOUND, "id: no key \"%s\"", id);
    }
    admin = k->pb->role == GALAXY__POOL__V1__ROLE__ROLE_ADMIN && !k->revoked && !k->revoking;
    if (admin && K.admins <= 1) {
        pthread_mutex_unlock(&K.lock);
        return why_set(why, GX_STATUS_FAILED_PRECONDITION, "id: \"%s\" is the last admin key; "
                       "create another admin key first", id);
    }
    rv = submit(k, 1, admin, op, why);
    if (rv == 0) {
        k->revoking = 1;
        K.admins -= (unsigned)admin;
    }
    pthread_mutex_unlock(&K.lock);
    return rv;
}

static int
by_created(const void *a, const void *b)
{
    const gx_pb_key_t *x = *(gx_pb_key_t *const *)a, *y = *(gx_pb_key_t *const *)b;

    if (x->created_unix_ms != y->created_unix_ms)
        return x->created_unix_ms < y->created_unix_ms ? -1 : 1;
    return strcmp(x->id, y->id);
}

int
gx_keys_list(gx_call_t *call, gx_pb_key_t ***out, size_t *n)
{
    gx_pb_key_t **v, *keys;
    size_t cnt;

    pthread_mutex_lock(&K.lock);
    cnt = K.n;
    v = gx_call_alloc(call, (cnt ? cnt : 1) * sizeof(*v));
    keys = gx_call_alloc(call, (cnt ? cnt : 1) * sizeof(*keys));
    if (v == NULL || keys == NULL) {
        pthread_mutex_unlock(&K.lock);
        return GX_ENOMEM;
    }
    /* shallow copies: names and pools of a key never change while the server runs */
    for (size_t i = 0; i < cnt; i++) {
        keys[i] = *K.all[i]->pb;
        v[i] = &keys[i];
    }
    pthread_mutex_unlock(&K.lock);
    qsort(v, cnt, sizeof(*v), by_created);
    *out = v;
    *n = cnt;
    return 0;
}

/* ------------------------------------------------------------------ start and stop */

static int
load_one(const void *key, size_t key_len, const void *val, size_t val_len, void *arg)
{
    apikey_t *k = record_parse(key, key_len, val, val_len);
    unsigned *bad = arg;

    if (k == NULL) {
        (*bad)++;
        return 0;
    }
    if (keys_add(k) != 0) {
        key_free(k);
        return GX_ENOMEM;
    }
    return 0;
}

/* writes the secret to @p path (mode 0600) durably, before the key is committed */
static int
secret_file_write(const char *path, const char *secret)
{
    char tmp[4096];
    int fd, ok;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return GX_EINVAL;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return GX_EIO;
    ok = fchmod(fd, 0600) == 0 && dprintf(fd, "%s\n", secret) == (int)strlen(secret) + 1 &&
         fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return GX_EIO;
    }
    return 0;
}

static int
valid_admin_secret(const char *s)
{
    size_t n = strlen(s);

    if (n < GX_KEY_ADMIN_MIN || n > GX_KEY_SECRET_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return 0;
    return 1;
}

/* the first admin key of a data directory */
static int
bootstrap(const char *data_dir, char *err, size_t errlen)
{
    const char *env = getenv("GALAXY_ADMIN_KEY");
    char secret[SECRET_LEN + 1], path[4096];
    gx_store_op_t sop;
    uint8_t raw[SECRET_BYTES], *rec;
    size_t len = 0;
    apikey_t *k;
    int rv;

    if (env != NULL && !valid_admin_secret(env)) {
        snprintf(err, errlen, "GALAXY_ADMIN_KEY: must be %d to %d printable characters "
                 "without spaces", GX_KEY_ADMIN_MIN, GX_KEY_SECRET_MAX);
        return GX_EINVAL;
    }
    if (env == NULL) {
        memcpy(secret, SECRET_PREFIX, sizeof(SECRET_PREFIX) - 1);
        gx_random_bytes(raw, sizeof(raw));
        gx_hex(secret + sizeof(SECRET_PREFIX) - 1, raw, sizeof(raw));
        if (snprintf(path, sizeof(path), "%s/%s", data_dir, GX_KEY_FILE) >= (int)sizeof(path) ||
            secret_file_write(path, secret) != 0) {
            snprintf(err, errlen, "cannot write the admin key to %s/%s: %s", data_dir,
                     GX_KEY_FILE, strerror(errno));
            return GX_EIO;
        }
    }
    k = key_make(env ? env : secret, strlen(env ? env : secret), "admin", GX_ROLE_ADMIN, NULL, 0);
    if (k == NULL) {
        snprintf(err, errlen, "out of memory");
        return GX_ENOMEM;
    }
    rec = record(k, 0, &len);
    sop = (gx_store_op_t){GX_STORE_KEYS, 0, k->id, ID_HEX, rec, len};
    rv = rec != NULL ? gx_store_submit_sync(K.st, &sop, 1) : GX_ENOMEM;
    free(rec);
    if (rv == 0)
        rv = keys_add(k); /* start-up: no reader yet, no lock needed */
    if (rv != 0) {
        key_free(k);
        snprintf(err, errlen, "admin key: %s", gx_strerror(rv));
        return rv;
    }
    if (env != NULL)
        gx_log(GX_LOG_INFO, "admin API key created id=%s from=GALAXY_ADMIN_KEY", k->id);
    else
        gx_log(GX_LOG_WARN, "admin API key created id=%s file=%s (keep it secret; the server "
               "stores only its salted hash)", k->id, path);
    return 0;
}

int
gx_keys_open(gx_store_t *st, const char *data_dir, char *err, size_t errlen)
{
    unsigned bad = 0;
    int rv;

    K.st = st;
    rv = gx_store_scan(st, GX_STORE_KEYS, load_one, &bad);
    if (rv != 0) {
        snprintf(err, errlen, "loading API keys: %s", gx_strerror(rv));
        return rv;
    }
    if (bad > 0)
        gx_log(GX_LOG_ERROR, "api keys: %u unreadable records skipped", bad);
    if (K.required && K.n == 0)
        return bootstrap(data_dir, err, errlen);
    if (K.required && getenv("GALAXY_ADMIN_KEY") != NULL)
        gx_log(GX_LOG_INFO, "GALAXY_ADMIN_KEY ignored: the data directory has API keys");
    return 0;
}

void
gx_keys_close(void)
{
    table_t *t = K.t;

    while (t != NULL) {
        table_t *old = t->old;
        free(t->slot);
        free(t);
        t = old;
    }
    for (size_t i = 0; i < K.n; i++)
        key_free(K.all[i]);
    free(K.all);
    K.t = NULL;
    K.all = NULL;
    K.n = K.cap = 0;
    K.admins = 0;
    K.st = NULL;
}
