/* SPDX-License-Identifier: MIT */
/**
 * @file gx_pbwire.h
 * What protobuf-c's decoder lets through and other protobuf parsers refuse
 * or read otherwise; such requests are refused before protobuf-c sees them.
 *
 * - protobuf-c 1.4 reads a bool field of any wire type: 8 bytes of fixed64,
 *   4 of fixed32 or a length-delimited run are true when any byte is set,
 *   where C++, Java, Go and Python keep such a field as unknown (false).  A
 *   request that a proxy or the client itself reads one way must not be
 *   acted on another way (DeletePool's force).
 * - protobuf-c keeps a field numbered 0 or past 2^29 - 1 as an unknown field,
 *   and packs it again with the message, where other parsers fail.  Stored
 *   in a Node, a Job or a Pool, it would make every later answer carrying
 *   that record undecodable (one Register could break ListNodes of a pool).
 */
#ifndef GX_CORE_GX_PBWIRE_H
#define GX_CORE_GX_PBWIRE_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/**
 * 1 when requests of @p d need gx_pbwire_check(): it holds a bool field or a
 * message field (at any depth).  Messages of scalars only (HeartbeatRequest)
 * are neither stored nor echoed whole, and skip the scan.
 */
int gx_pbwire_needs_check(const ProtobufCMessageDescriptor *d);

/**
 * Scans @p len bytes of a message of @p d and the messages inside it.
 * @return NULL, or what is wrong (a static string); @p field is then the
 *         field's name, or NULL when the problem is no known field's
 * Bytes malformed in other ways are left for protobuf_c_message_unpack().
 */
const char *gx_pbwire_check(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
                            const char **field);

#endif /* GX_CORE_GX_PBWIRE_H */
