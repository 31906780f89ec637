/* SPDX-License-Identifier: MIT */
/*
 * Random bytes from getrandom(2) (blocking only until the pool is seeded at
 * boot; small draws served from a per-thread buffer) and SHA-256 from
 * OpenSSL's libcrypto, which the TLS listener links anyway; a constant-time
 * comparison of our own (see gx_ct_equal()).
 */
#include "config.h"

#include "util/gx_crypto.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "util/gx_error.h"

/*
 * Lease tokens are drawn on every Register: a system call each (getrandom, or
 * OpenSSL's RAND_bytes with its locks) cost ~5 % of a registration.  Each
 * thread keeps a small buffer of kernel randomness instead, hands out each
 * byte once and wipes it as it goes; a fork (the child would replay the
 * parent's buffer) empties every buffer of the child.
 */
#define RANDOM_BUF 512

static __thread struct {
    uint8_t b[RANDOM_BUF];
    size_t left; /* the unused bytes are the last `left` of b */
    unsigned gen;
} rnd;
static unsigned fork_gen;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void
after_fork(void)
{
    fork_gen++;
}

static void
fork_hook(void)
{
    pthread_atfork(NULL, NULL, after_fork);
}

static void
kernel_random(void *buf, size_t n)
{
    uint8_t *p = buf;
    size_t got = 0;

    while (got < n) {
        ssize_t r = getrandom(p + got, n - got, 0);
        if (r > 0)
            got += (size_t)r;
    }
}

void
gx_random_bytes(void *buf, size_t n)
{
    pthread_once(&fork_once, fork_hook);
    if (n > RANDOM_BUF / 4) {
        kernel_random(buf, n);
        return;
    }
    if (rnd.gen != fork_gen) {
        rnd.left = 0;
        rnd.gen = fork_gen;
    }
    if (rnd.left < n) {
        kernel_random(rnd.b, sizeof(rnd.b));
        rnd.left = sizeof(rnd.b);
    }
    memcpy(buf, rnd.b + sizeof(rnd.b) - rnd.left, n);
    OPENSSL_cleanse(rnd.b + sizeof(rnd.b) - rnd.left, n);
    rnd.left -= n;
}

int
gx_sha256(uint8_t out[GX_SHA256_LEN], const void *a, size_t alen, const void *b, size_t blen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok;

    if (ctx == NULL)
        return GX_ENOMEM;
    ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
         (alen == 0 || EVP_DigestUpdate(ctx, a, alen) == 1) &&
         (blen == 0 || EVP_DigestUpdate(ctx, b, blen) == 1) &&
         EVP_DigestFinal_ex(ctx, out, NULL) == 1;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : GX_ENOMEM;
}

/*
 * Hides @p v's value from the optimizer, so that it cannot turn the
 * accumulation below into an early exit at the first difference.
 */
#define VALUE_BARRIER(v) __asm__("" : "+r"(v))

/*
 * Every Heartbeat compares a lease token: CRYPTO_memcmp() walks it a byte at
 * a time (~350 instructions for 43 bytes, 1.6 % of a call).  This takes eight
 * bytes a step, with no branch on the data either: the time depends on @p n
 * alone.
 */
int
gx_ct_equal(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    uint64_t d = 0, u, v;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        memcpy(&u, x + i, 8);
        memcpy(&v, y + i, 8);
        d |= u ^ v;
        VALUE_BARRIER(d);
    }
    for (; i < n; i++) {
        d |= (uint64_t)(x[i] ^ y[i]);
        VALUE_BARRIER(d);
    }
    return d == 0;
}

void
gx_hex(char *out, const void *in, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = in;

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}
