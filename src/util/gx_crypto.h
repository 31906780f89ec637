/* SPDX-License-Identifier: MIT */
/**
 * @file gx_crypto.h
 * The few cryptographic primitives the core needs, over OpenSSL and the
 * kernel: random bytes, SHA-256, constant-time comparison, hex.
 */
#ifndef GX_UTIL_GX_CRYPTO_H
#define GX_UTIL_GX_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define GX_SHA256_LEN 32

/** Fills @p buf with @p n bytes from the kernel's CSPRNG (buffered per thread); never fails. */
void gx_random_bytes(void *buf, size_t n);
/** SHA-256 over @p a then @p b (either may be empty). @return 0 or GX_ENOMEM */
int gx_sha256(uint8_t out[GX_SHA256_LEN], const void *a, size_t alen, const void *b,
              size_t blen);
/** 1 when the @p n bytes at @p a and @p b are equal, in time independent of the contents. */
int gx_ct_equal(const void *a, const void *b, size_t n);
/** Lowercase hex of @p n bytes into @p out (2n + 1 bytes, NUL-terminated). */
void gx_hex(char *out, const void *in, size_t n);

#endif /* GX_UTIL_GX_CRYPTO_H */
