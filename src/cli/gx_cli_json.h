/* SPDX-License-Identifier: MIT */
/**
 * @file gx_cli_json.h
 * galaxy-cli's `-o json`: any protobuf-c message in the proto3 JSON mapping,
 * read from its descriptor, so that every command prints JSON the same way.
 *
 * The mapping: lowerCamelCase field names (the protoc json_name rule), enum
 * values by name (a number the descriptor does not know stays a number),
 * 64-bit integers as decimal strings, bytes as padded base64, maps as
 * objects, NaN and infinities as "NaN", "Infinity", "-Infinity".  Fields at
 * their default value are printed too (scripts find every field); an unset
 * message field, an unset proto3 `optional` and an unset oneof member are left
 * out.  Strings that are not valid UTF-8 get U+FFFD for each bad byte.
 */
#ifndef GX_CLI_GX_CLI_JSON_H
#define GX_CLI_GX_CLI_JSON_H

#include <stdio.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

/**
 * @return a new JSON object for @p msg (the caller json_decref()s it), or
 *         NULL when out of memory.
 */
json_t *gx_cli_json_message(const ProtobufCMessage *msg);

/**
 * Writes @p doc on one line to @p out, then a newline, and flushes.
 * @return 0, or -1 when the write failed.
 */
int gx_cli_json_print(const json_t *doc, FILE *out);

#endif /* GX_CLI_GX_CLI_JSON_H */
