/* SPDX-License-Identifier: MIT */
/*
 * The connection-free parts of the gRPC wire protocol (PROTOCOL-HTTP2.md):
 * message prefixes, grpc-timeout, grpc-message escaping, content-type and
 * encoding names, and the base64 of binary metadata.  Everything here is a
 * pure function so that the unit tests can drive it byte by byte.
 */
#include "config.h"

#include "transport/gx_grpc.h"

#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "util/gx_error.h"

int
gx_grpc_prefix_decode(const uint8_t *p, gx_grpc_prefix_t *out)
{
    if (p[0] > 1)
        return GX_EPROTO;
    out->compressed = p[0];
    out->length = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    return 0;
}

void
gx_grpc_prefix_encode(uint8_t *p, int compressed, uint32_t length)
{
    p[0] = compressed ? 1 : 0;
    p[1] = (uint8_t)(length >> 24);
    p[2] = (uint8_t)(length >> 16);
    p[3] = (uint8_t)(length >> 8);
    p[4] = (uint8_t)length;
}

size_t
gx_grpc_varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;

    for (; v >= 0x80; v >>= 7)
        p[n++] = (uint8_t)(v | 0x80);
    p[n++] = (uint8_t)v;
    return n;
}

int
gx_grpc_timeout_parse(const char *s, size_t len, uint64_t *usec)
{
    uint64_t v = 0;
    size_t i;

    if (len < 2 || len > 9)
        return GX_EINVAL;
    for (i = 0; i < len - 1; i++) {
        if (s[i] < '0' || s[i] > '9')
            return GX_EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    /* at most 8 digits: v < 1e8, so none of these overflow */
    switch (s[len - 1]) {
    case 'H': *usec = v * 3600 * 1000000; break;
    case 'M': *usec = v * 60 * 1000000; break;
    case 'S': *usec = v * 1000000; break;
    case 'm': *usec = v * 1000; break;
    case 'u': *usec = v; break;
    case 'n': *usec = (v + 999) / 1000; break;
    default: return GX_EINVAL;
    }
    return 0;
}

size_t
gx_grpc_percent_encode(const char *in, size_t len, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 0x20 && c <= 0x7e && c != '%') {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
    return n;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t
gx_grpc_percent_decode(const char *in, size_t len, char *out)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (in[i] == '%' && i + 2 < len) {
            hi = hexval(in[i + 1]);
            lo = hexval(in[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out[n++] = (char)(hi << 4 | lo);
                i += 2;
                continue;
            }
        }
        out[n++] = in[i];
    }
    out[n] = '\0';
    return n;
}

int
gx_grpc_content_type_ok(const char *ct, size_t len)
{
    static const char base[] = "application/grpc";
    size_t blen = sizeof(base) - 1;

    /* media types are case-insensitive; clients send them in lower case */
    if (len < blen || (memcmp(ct, base, blen) != 0 && strncasecmp(ct, base, blen) != 0))
        return 0;
    return len == blen || ct[blen] == '+' || ct[blen] == ';';
}

gx_grpc_enc_t
gx_grpc_encoding_parse(const char *s, size_t len)
{
    if (len == 8 && memcmp(s, "identity", 8) == 0)
        return GX_GRPC_ENC_IDENTITY;
    if (len == 4 && memcmp(s, "gzip", 4) == 0)
        return GX_GRPC_ENC_GZIP;
    return GX_GRPC_ENC_UNKNOWN;
}

const char *
gx_grpc_status_name(gx_status_t status)
{
    static const char *const names[GX_STATUS_MAX] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED"};

    return (unsigned)status < GX_STATUS_MAX ? names[status] : "UNKNOWN";
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t
gx_base64_encoded_len(size_t len)
{
    return (len + 2) / 3 * 4;
}

size_t
gx_base64_encode(const uint8_t *in, size_t len, char *out)
{
    size_t n = 0, i = 0;

    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[n++] = b64[v >> 18];
        out[n++] = b64[(v >> 12) & 63];
        out[n++] = b64[(v >> 6) & 63];
        out[n++] = b64[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
        out[n++] = b64[v >> 18];
        out[n++] = b64[(v >> 12) & 63];
        out[n++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
        out[n++] = '=';
    }
    out[n] = '\0';
    return n;
}

static int
b64val(char c)
{
    const char *p = c ? strchr(b64, c) : NULL;

    return p ? (int)(p - b64) : -1;
}

long
gx_base64_decode(const char *in, size_t len, uint8_t *out)
{
    uint32_t acc = 0;
    int bits = 0;
    long n = 0;

    while (len > 0 && in[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = b64val(in[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return n;
}

/* Inflates a gzip member into a malloc()ed buffer of at most @max bytes. */
int
gx_grpc_gunzip(const uint8_t *in, size_t len, uint32_t max, uint8_t **out, size_t *outlen)
{
    z_stream z = {0};
    size_t cap = 4096;
    uint8_t *buf = malloc(cap), *nbuf;
    int rv, ret = GX_EPROTO;

    if (buf == NULL || inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
        free(buf);
        return GX_ENOMEM;
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    for (;;) {
        z.next_out = buf + z.total_out;
        z.avail_out = (uInt)(cap - z.total_out);
        rv = inflate(&z, Z_NO_FLUSH);
        if (z.total_out > max) {
            ret = GX_E2BIG;
            goto fail;
        }
        if (rv == Z_STREAM_END)
            break;
        if ((rv != Z_OK && rv != Z_BUF_ERROR) || (z.avail_out > 0 && z.avail_in == 0))
            goto fail; /* corrupt, or truncated */
        if (z.avail_out > 0)
            continue;
        cap = cap * 2 <= (size_t)max + 1 ? cap * 2 : (size_t)max + 1;
        if (cap == z.total_out) {
            ret = GX_E2BIG;
            goto fail;
        }
        nbuf = realloc(buf, cap);
        if (nbuf == NULL) {
            ret = GX_ENOMEM;
            goto fail;
        }
        buf = nbuf;
    }
    if (z.avail_in != 0)
        goto fail; /* bytes after the gzip member */
    *out = buf;
    *outlen = z.total_out;
    inflateEnd(&z);
    return 0;

fail:
    inflateEnd(&z);
    free(buf);
    return ret;
}
