/* SPDX-License-Identifier: MIT */
/**
 * @file gx_pbwire.h
 * What protobuf-c's decoder lets through and other protobuf implementations
 * do not.  protobuf-c 1.4 reads a bool field of any wire type: 8 bytes of
 * fixed64, 4 of fixed32 or a length-delimited run are true when any byte is
 * set, where C++, Java, Go and Python keep such a field as unknown (false).
 * A request that a proxy, a logger or the client itself reads one way must
 * not be acted on another way (DeletePool's force), so such requests are
 * refused before protobuf-c sees them.
 */
#ifndef GX_CORE_GX_PBWIRE_H
#define GX_CORE_GX_PBWIRE_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/** 1 when @p d or a message it holds, at any depth, has a bool field. */
int gx_pbwire_has_bool(const ProtobufCMessageDescriptor *d);

/**
 * The first bool field of @p d (or of a message inside it) that @p data
 * carries with a wire type other than varint (length-delimited is packed,
 * and right, for a repeated bool), or NULL.  Bytes that are malformed in
 * another way are left for protobuf_c_message_unpack() to refuse.
 */
const ProtobufCFieldDescriptor *gx_pbwire_bad_bool(const ProtobufCMessageDescriptor *d,
                                                   const uint8_t *data, size_t len);

#endif /* GX_CORE_GX_PBWIRE_H */
