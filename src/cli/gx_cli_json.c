/* SPDX-License-Identifier: MIT */
/*
 * The proto3 JSON mapping of protobuf-c messages for galaxy-cli, driven by the
 * message descriptors alone: one walk over the fields, one conversion per
 * protobuf type.  protobuf-c keeps no map_entry option, so a map field is
 * recognised by its shape: a repeated message field whose type is the nested
 * <FieldName>Entry with exactly the fields key = 1 and value = 2.
 */
#include "config.h"

#include "cli/gx_cli_json.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "transport/gx_grpc.h"

/* protoc's json_name: drop each '_' and capitalise the letter after it. */
static void
json_name(const char *name, char *out, size_t len)
{
    size_t n = 0;
    int upper = 0;

    for (; *name != '\0' && n + 1 < len; name++) {
        if (*name == '_') {
            upper = 1;
            continue;
        }
        out[n++] = upper ? (char)toupper((unsigned char)*name) : *name;
        upper = 0;
    }
    out[n] = '\0';
}

/* Length of the valid UTF-8 sequence at @s (at most @len bytes), 0 when invalid. */
static size_t
utf8_seq(const unsigned char *s, size_t len)
{
    size_t n;
    uint32_t cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (n > len)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* A JSON string of @len bytes; invalid UTF-8 bytes become U+FFFD. */
static json_t *
string_new(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    char *buf;
    size_t n = 0, k;
    json_t *v = json_stringn(s, len);

    if (v != NULL)
        return v;
    buf = malloc(len * 3 + 1);
    if (buf == NULL)
        return NULL;
    for (size_t i = 0; i < len; i += k ? k : 1) {
        k = utf8_seq(u + i, len - i);
        if (k == 0) {
            memcpy(buf + n, "\xef\xbf\xbd", 3);
            n += 3;
        } else {
            memcpy(buf + n, s + i, k);
            n += k;
        }
    }
    v = json_stringn(buf, n);
    free(buf);
    return v;
}

static json_t *
bytes_new(const ProtobufCBinaryData *b)
{
    char *buf = malloc(gx_base64_encoded_len(b->len) + 1);
    json_t *v;

    if (buf == NULL)
        return NULL;
    v = json_stringn(buf, gx_base64_encode(b->data, b->len, buf));
    free(buf);
    return v;
}

static json_t *
real_new(double d)
{
    if (isnan(d))
        return json_string("NaN");
    if (isinf(d))
        return json_string(d > 0 ? "Infinity" : "-Infinity");
    return json_real(d);
}

static json_t *
enum_new(const ProtobufCEnumDescriptor *desc, int value)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(desc, value);

    return ev != NULL ? json_string(ev->name) : json_integer(value);
}

static json_t *string_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *
string_printf(const char *fmt, ...)
{
    char buf[32];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return json_string(buf);
}

/* One value of field @f stored at @p. */
static json_t *
value_new(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return string_printf("%" PRId64, *(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return string_printf("%" PRIu64, *(const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT:
        return real_new(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return real_new(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM:
        return enum_new(f->descriptor, *(const int *)p);
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return s != NULL ? string_new(s, strlen(s)) : json_string("");
    }
    case PROTOBUF_C_TYPE_BYTES:
        return bytes_new(p);
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        return m != NULL ? gx_cli_json_message(m) : json_null();
    }
    }
    return NULL;
}

static size_t
value_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default:
        return 4;
    }
}

/* 1 when repeated field @f is a map<K, V>. */
static int
is_map(const ProtobufCFieldDescriptor *f)
{
    const ProtobufCMessageDescriptor *e = f->descriptor;
    char want[128];

    if (f->type != PROTOBUF_C_TYPE_MESSAGE || e->n_fields != 2 || e->fields[0].id != 1 ||
        e->fields[1].id != 2 || strcmp(e->fields[0].name, "key") != 0 ||
        strcmp(e->fields[1].name, "value") != 0)
        return 0;
    json_name(f->name, want, sizeof(want) - 5);
    want[0] = (char)toupper((unsigned char)want[0]);
    strcat(want, "Entry");
    return strcmp(e->short_name, want) == 0;
}

/* The JSON object key of a map entry's key field. */
static json_t *
map_key(const ProtobufCFieldDescriptor *kf, const void *p)
{
    if (kf->type == PROTOBUF_C_TYPE_BOOL)
        return json_string(*(const protobuf_c_boolean *)p ? "true" : "false");
    if (kf->type == PROTOBUF_C_TYPE_INT32 || kf->type == PROTOBUF_C_TYPE_SINT32 ||
        kf->type == PROTOBUF_C_TYPE_SFIXED32)
        return string_printf("%" PRId32, *(const int32_t *)p);
    if (kf->type == PROTOBUF_C_TYPE_UINT32 || kf->type == PROTOBUF_C_TYPE_FIXED32)
        return string_printf("%" PRIu32, *(const uint32_t *)p);
    return value_new(kf, p);
}

static json_t *
map_new(const ProtobufCFieldDescriptor *f, size_t n, ProtobufCMessage *const *entries)
{
    const ProtobufCMessageDescriptor *e = f->descriptor;
    json_t *obj = json_object(), *k, *v;

    for (size_t i = 0; obj != NULL && i < n; i++) {
        const char *base = (const char *)entries[i];
        k = map_key(&e->fields[0], base + e->fields[0].offset);
        v = value_new(&e->fields[1], base + e->fields[1].offset);
        if (k == NULL || v == NULL || json_object_set_new(obj, json_string_value(k), v) != 0) {
            if (k == NULL)
                json_decref(v);
            json_decref(obj);
            obj = NULL;
        }
        json_decref(k);
    }
    return obj;
}

static json_t *
repeated_new(const ProtobufCFieldDescriptor *f, size_t n, const void *arr)
{
    json_t *a;
    size_t sz = value_size(f);

    if (is_map(f))
        return map_new(f, n, arr);
    a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++) {
        if (json_array_append_new(a, value_new(f, (const char *)arr + i * sz)) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

/* The JSON of field @f of @msg; NULL with *skip when the field is unset. */
static json_t *
field_new(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, int *skip)
{
    const char *base = (const char *)msg;
    const void *p = base + f->offset;

    *skip = 0;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return repeated_new(f, *(const size_t *)(base + f->quantifier_offset), *(void *const *)p);
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *skip = *(const uint32_t *)(base + f->quantifier_offset) != f->id;
    else if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        *skip = *(void *const *)p == NULL;
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING)
        *skip = !*(const protobuf_c_boolean *)(base + f->quantifier_offset);
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL)
        *skip = *(char *const *)p == NULL;
    return *skip ? NULL : value_new(f, p);
}

json_t *
gx_cli_json_message(const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    json_t *obj = json_object(), *v;
    char name[128];
    int skip;

    for (unsigned i = 0; obj != NULL && i < d->n_fields; i++) {
        v = field_new(msg, &d->fields[i], &skip);
        if (skip)
            continue;
        json_name(d->fields[i].name, name, sizeof(name));
        if (v == NULL || json_object_set_new(obj, name, v) != 0) {
            json_decref(obj);
            obj = NULL;
        }
    }
    return obj;
}

int
gx_cli_json_print(const json_t *doc, FILE *out)
{
    if (json_dumpf(doc, out, JSON_COMPACT) != 0 || fputc('\n', out) == EOF || fflush(out) != 0)
        return -1;
    return 0;
}
