/* SPDX-License-Identifier: MIT */
/*
 * Random bytes from getrandom(2) (blocking only until the pool is seeded at
 * boot), SHA-256 and constant-time comparison from OpenSSL's libcrypto,
 * which the TLS listener links anyway.
 */
#include "config.h"

#include "util/gx_crypto.h"

#include <errno.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "util/gx_error.h"

void
gx_random_bytes(void *buf, size_t n)
{
    uint8_t *p = buf;
    size_t got = 0;

    while (got < n) {
        ssize_t r = getrandom(p + got, n - got, 0);
        if (r > 0)
            got += (size_t)r;
    }
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

int
gx_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
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
