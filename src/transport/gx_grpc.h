/* SPDX-License-Identifier: MIT */
/**
 * @file gx_grpc.h
 * The parts of the gRPC wire protocol that need no connection: the 5-byte
 * message prefix, grpc-timeout, grpc-message percent-encoding, content-type
 * and encoding checks, base64 for -bin metadata.  Pure functions, no I/O.
 */
#ifndef GX_TRANSPORT_GX_GRPC_H
#define GX_TRANSPORT_GX_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include <galaxy/gx_module.h>

#define GX_GRPC_PREFIX_LEN 5

/** The decoded 5-byte message prefix. */
typedef struct {
    uint8_t compressed;
    uint32_t length;
} gx_grpc_prefix_t;

/**
 * Decodes a message prefix from @p p (at least 5 bytes).
 * @return 0, or GX_EPROTO when the flag byte is neither 0 nor 1.
 */
int gx_grpc_prefix_decode(const uint8_t *p, gx_grpc_prefix_t *out);
/** Writes the prefix of a @p length byte message. */
void gx_grpc_prefix_encode(uint8_t *p, int compressed, uint32_t length);

/** Writes @p v as a protobuf varint (at most 10 bytes) at @p p. @return its length */
size_t gx_grpc_varint_put(uint8_t *p, uint64_t v);

/**
 * Parses a grpc-timeout value ("1S", "250m": at most 8 digits and one of
 * H M S m u n) into microseconds, rounding nanoseconds up.
 * @return 0 or GX_EINVAL.
 */
int gx_grpc_timeout_parse(const char *s, size_t len, uint64_t *usec);

/**
 * Percent-encodes @p len bytes of @p in for grpc-message: bytes outside
 * 0x20..0x7e and '%' become %XX.
 * @param out  room for at least 3 * len + 1 bytes; NUL-terminated.
 * @return the encoded length.
 */
size_t gx_grpc_percent_encode(const char *in, size_t len, char *out);
/**
 * Decodes a grpc-message value; malformed escapes are kept as they are (a
 * client must never fail on them).  @p out has room for @p len + 1 bytes.
 * @return the decoded length.
 */
size_t gx_grpc_percent_decode(const char *in, size_t len, char *out);

/** 1 when @p ct is application/grpc, application/grpc+<subtype> or with ;params. */
int gx_grpc_content_type_ok(const char *ct, size_t len);

/** Message encodings we accept. */
typedef enum { GX_GRPC_ENC_IDENTITY, GX_GRPC_ENC_GZIP, GX_GRPC_ENC_UNKNOWN } gx_grpc_enc_t;
gx_grpc_enc_t gx_grpc_encoding_parse(const char *s, size_t len);
#define GX_GRPC_ACCEPT_ENCODING "identity,gzip"

/**
 * Inflates one gzip member (grpc-encoding: gzip) into a malloc()ed buffer.
 * @param max  the largest inflated size allowed
 * @return 0 with *out (caller frees) and *outlen; GX_E2BIG past @p max;
 *         GX_EPROTO when @p in is not exactly one valid gzip member; GX_ENOMEM
 */
int gx_grpc_gunzip(const uint8_t *in, size_t len, uint32_t max, uint8_t **out, size_t *outlen);

/** "OK", "CANCELLED", … for logs and metrics. */
const char *gx_grpc_status_name(gx_status_t status);

/** Base64 (standard alphabet) length of @p len bytes, padded. */
size_t gx_base64_encoded_len(size_t len);
/** Encodes with padding; @p out has gx_base64_encoded_len(len) + 1 bytes. @return length */
size_t gx_base64_encode(const uint8_t *in, size_t len, char *out);
/**
 * Decodes padded or unpadded base64; @p out has room for len * 3 / 4 + 3 bytes.
 * @return the decoded length, or -1 when @p in is not base64.
 */
long gx_base64_decode(const char *in, size_t len, uint8_t *out);

#endif /* GX_TRANSPORT_GX_GRPC_H */
