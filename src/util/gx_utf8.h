/* SPDX-License-Identifier: MIT */
/**
 * @file gx_utf8.h
 * Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most
 * U+10FFFF).  proto3 strings and grpc-message are UTF-8, and protobuf-c
 * checks neither.
 */
#ifndef GX_UTIL_GX_UTF8_H
#define GX_UTIL_GX_UTF8_H

#include <stddef.h>

/** 1 when the @p n bytes at @p s are well-formed UTF-8. */
int gx_utf8_valid(const char *s, size_t n);
/** Replaces each byte of @p s (NUL-terminated) that is no part of a well-formed sequence with '?'. */
void gx_utf8_scrub(char *s);

#endif /* GX_UTIL_GX_UTF8_H */
