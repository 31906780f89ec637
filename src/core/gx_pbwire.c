/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "core/gx_pbwire.h"

/* Deeper than any message of ours nests; a recursive type stops here. */
#define DEPTH_MAX 32

enum { WIRE_VARINT = 0, WIRE_64 = 1, WIRE_LEN = 2, WIRE_32 = 5 };

/* A bool or a message field at the top: a bool deeper down is inside a message field. */
int
gx_pbwire_needs_check(const ProtobufCMessageDescriptor *d)
{
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].type == PROTOBUF_C_TYPE_BOOL ||
            d->fields[i].type == PROTOBUF_C_TYPE_MESSAGE)
            return 1;
    return 0;
}

/* Reads a varint at *@p p; @return 0 when it is cut short or longer than ten bytes */
static int
varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;

    for (unsigned shift = 0; *p < end && shift < 70; shift += 7) {
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

static const char *
check(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end, int depth,
      const char **field)
{
    const ProtobufCFieldDescriptor *f;
    const char *why;
    uint64_t tag, n;

    while (p < end) {
        if (!varint(&p, end, &tag))
            return NULL;
        if ((tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) {
            *field = NULL;
            return "a field number is not in 1 to 536870911";
        }
        f = protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3));
        if (f != NULL && f->type == PROTOBUF_C_TYPE_BOOL && (tag & 7) != WIRE_VARINT &&
            !((tag & 7) == WIRE_LEN && f->label == PROTOBUF_C_LABEL_REPEATED)) {
            *field = f->name;
            return "a bool field must have the varint wire type";
        }
        switch (tag & 7) {
        case WIRE_VARINT:
            if (!varint(&p, end, &n))
                return NULL;
            break;
        case WIRE_64:
            if (end - p < 8)
                return NULL;
            p += 8;
            break;
        case WIRE_32:
            if (end - p < 4)
                return NULL;
            p += 4;
            break;
        case WIRE_LEN:
            if (!varint(&p, end, &n) || n > (uint64_t)(end - p))
                return NULL;
            if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE && depth < DEPTH_MAX &&
                (why = check(f->descriptor, p, p + n, depth + 1, field)) != NULL)
                return why;
            p += n;
            break;
        default: /* groups: protobuf-c refuses them */
            return NULL;
        }
    }
    return NULL;
}

const char *
gx_pbwire_check(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
                const char **field)
{
    *field = NULL;
    return check(d, data, data + len, 0, field);
}
