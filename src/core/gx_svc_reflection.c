/* SPDX-License-Identifier: MIT */
/*
 * gRPC server reflection (grpc.reflection.v1 and grpc.reflection.v1alpha),
 * served by a built-in module, so that generic clients (grpcurl, buf curl,
 * Postman) can list the services and build requests without the .proto files.
 *
 * What it knows comes from gx__descriptor_set, the FileDescriptorSet that
 * protoc wrote at build time for every .proto of the server and of the modules
 * built with it.  init() reads that wire format by hand (a few fields of
 * FileDescriptorProto and of the descriptors nested in it, so no code is
 * generated from descriptor.proto) into a read-only index: each file's bytes
 * and imports, and every fully qualified name the file defines (messages,
 * nested ones, fields, oneofs, enums, enum values, services, methods), sorted
 * for a binary search.  Responses point into the embedded set: nothing is
 * copied.
 *
 * ServerReflectionInfo answers each request with one response, in order.  A
 * file response carries the file asked for, then those of its transitive
 * imports that this stream has not been sent yet (one flag per file in call
 * memory), as grpc-go does.  list_services names every service a loaded module
 * serves, taken from the routes: a module built elsewhere is listed, but its
 * files are not in the set and are NOT_FOUND.  One implementation serves both
 * packages: a v1alpha request is re-read as a v1 request and the v1 response is
 * sent as it is, which init() makes safe by checking that the messages of the
 * two packages encode alike.
 *
 * Bounds: the encoded size of a request, the length of the name it asks
 * about, and the number of requests on one stream.  While the send buffer is
 * full the stream reads no further request, so flow control holds the client
 * instead of responses piling up.
 */
#include "config.h"

#include "core/gx_svc_reflection.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gx_mod.h"
#include "core/gx_svc_util.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "transport/gx_call.h"
#include "util/gx_error.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest refl_req_t;
typedef Grpc__Reflection__V1__ServerReflectionResponse refl_resp_t;

/* The cases of the request's and the response's oneof. */
#define REQ_CASE(x) GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_##x
#define RESP_CASE(x) GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_##x

#define REFL_MAX_REQUEST_BYTES 16384 /* one encoded request */
#define REFL_MAX_NAME 1024           /* a symbol, file or type name asked about */
#define REFL_MAX_REQUESTS 10000      /* requests on one stream */
#define REFL_MAX_SYMBOL 4096         /* a fully qualified name in the set */
#define REFL_MAX_DEPTH 32            /* message nesting in the set */

/* ------------------------------------------------------------------ wire format */

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

typedef struct {
    const uint8_t *p, *end;
} pb_reader_t;

typedef struct {
    uint32_t number;
    uint32_t wire;
    const uint8_t *data; /* PB_LEN only */
    size_t len;
} pb_field_t;

static int
pb_varint(pb_reader_t *r, uint64_t *out)
{
    uint64_t v = 0;

    for (unsigned shift = 0; shift < 64; shift += 7) {
        uint8_t b;
        if (r->p == r->end)
            return GX_EPROTO;
        b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *out = v;
            return 0;
        }
    }
    return GX_EPROTO;
}

static int
pb_skip(pb_reader_t *r, size_t n)
{
    if ((size_t)(r->end - r->p) < n)
        return GX_EPROTO;
    r->p += n;
    return 1;
}

/* Reads the next field. @return 1, 0 at the end, GX_EPROTO when malformed */
static int
pb_next(pb_reader_t *r, pb_field_t *f)
{
    uint64_t key, v;

    if (r->p == r->end)
        return 0;
    if (pb_varint(r, &key) != 0 || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return GX_EPROTO;
    f->number = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    f->data = NULL;
    f->len = 0;
    switch (f->wire) {
    case PB_VARINT:
        return pb_varint(r, &v) == 0 ? 1 : GX_EPROTO;
    case PB_I64:
        return pb_skip(r, 8);
    case PB_I32:
        return pb_skip(r, 4);
    case PB_LEN:
        if (pb_varint(r, &v) != 0 || v > (uint64_t)(r->end - r->p))
            return GX_EPROTO;
        f->data = r->p;
        f->len = (size_t)v;
        r->p += v;
        return 1;
    default: /* groups: descriptors have none */
        return GX_EPROTO;
    }
}

/*
 * The bytes of length-delimited field @p number (the last one wins).
 * @return 0, GX_ENOTFOUND or GX_EPROTO
 */
static int
pb_bytes(const uint8_t *data, size_t len, uint32_t number, const uint8_t **s, size_t *slen)
{
    pb_reader_t r = {data, data + len};
    pb_field_t f;
    int rc;

    *s = NULL;
    *slen = 0;
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.number == number && f.wire == PB_LEN) {
            *s = f.data;
            *slen = f.len;
        }
    }
    if (rc < 0)
        return rc;
    return *s != NULL ? 0 : GX_ENOTFOUND;
}

/* ------------------------------------------------------------------ the index */

typedef enum {
    REFL_MESSAGE,
    REFL_ENUM,
    REFL_ENUM_VALUE,
    REFL_FIELD,
    REFL_ONEOF,
    REFL_SERVICE,
    REFL_METHOD
} refl_kind_t;

typedef struct {
    char *name;          /* FileDescriptorProto.name, e.g. "grpc/health/v1/health.proto" */
    const uint8_t *data; /* the serialized FileDescriptorProto, inside the set */
    size_t len;
    size_t *deps; /* the files it imports, as indexes */
    size_t n_deps;
} refl_file_t;

typedef struct {
    char *name; /* fully qualified, without a leading dot */
    size_t file;
    refl_kind_t kind;
} refl_sym_t;

typedef struct {
    refl_file_t *files;
    size_t n_files;
    refl_sym_t *syms; /* sorted by name, unique */
    size_t n_syms, cap_syms;
} refl_index_t;

/* The name of the scope being indexed, grown and shrunk as the walk goes. */
typedef struct {
    refl_index_t *idx;
    size_t file;
    size_t len;
    char name[REFL_MAX_SYMBOL + 1];
} refl_scope_t;

static int
scope_push(refl_scope_t *s, const uint8_t *part, size_t plen, size_t *mark)
{
    if (plen == 0 || s->len + 1 + plen > REFL_MAX_SYMBOL || memchr(part, '\0', plen) != NULL)
        return GX_EPROTO;
    *mark = s->len;
    if (s->len > 0)
        s->name[s->len++] = '.';
    memcpy(s->name + s->len, part, plen);
    s->len += plen;
    s->name[s->len] = '\0';
    return 0;
}

static void
scope_pop(refl_scope_t *s, size_t mark)
{
    s->len = mark;
    s->name[mark] = '\0';
}

/* Records the scope's current name as a symbol of its file. */
static int
sym_add(refl_scope_t *s, refl_kind_t kind)
{
    refl_index_t *idx = s->idx;
    refl_sym_t *grown;
    char *name;

    if (idx->n_syms == idx->cap_syms) {
        size_t cap = idx->cap_syms ? idx->cap_syms * 2 : 256;
        grown = realloc(idx->syms, cap * sizeof(*grown));
        if (grown == NULL)
            return GX_ENOMEM;
        idx->syms = grown;
        idx->cap_syms = cap;
    }
    name = strdup(s->name);
    if (name == NULL)
        return GX_ENOMEM;
    idx->syms[idx->n_syms++] = (refl_sym_t){name, s->file, kind};
    return 0;
}

/* Enters the scope of a descriptor named by its field 1 and records it. */
static int
scope_enter(refl_scope_t *s, const uint8_t *data, size_t len, refl_kind_t kind, size_t *mark)
{
    const uint8_t *name;
    size_t nlen;
    int rc;

    rc = pb_bytes(data, len, 1, &name, &nlen);
    if (rc == 0)
        rc = scope_push(s, name, nlen, mark);
    if (rc == 0 && (rc = sym_add(s, kind)) != 0)
        scope_pop(s, *mark);
    return rc == GX_ENOTFOUND ? GX_EPROTO : rc;
}

/* A descriptor without children of interest: field, oneof, enum value, method. */
static int
index_leaf(refl_scope_t *s, const pb_field_t *f, refl_kind_t kind)
{
    size_t mark;
    int rc = scope_enter(s, f->data, f->len, kind, &mark);

    if (rc == 0)
        scope_pop(s, mark);
    return rc;
}

/* Every length-delimited field @p number of a descriptor, as leaves of @p kind. */
static int
index_leaves(refl_scope_t *s, const uint8_t *data, size_t len, uint32_t number, refl_kind_t kind)
{
    pb_reader_t r = {data, data + len};
    pb_field_t f;
    int rc;

    while ((rc = pb_next(&r, &f)) == 1)
        if (f.number == number && f.wire == PB_LEN && (rc = index_leaf(s, &f, kind)) != 0)
            return rc;
    return rc;
}

/*
 * EnumDescriptorProto: name 1, value 2.  A value is known both as Enum.VALUE
 * and, as protobuf scopes it, as a sibling of the enum.
 */
static int
index_enum(refl_scope_t *s, const uint8_t *data, size_t len)
{
    size_t mark;
    int rc = scope_enter(s, data, len, REFL_ENUM, &mark);

    if (rc != 0)
        return rc;
    rc = index_leaves(s, data, len, 2, REFL_ENUM_VALUE);
    scope_pop(s, mark);
    return rc == 0 ? index_leaves(s, data, len, 2, REFL_ENUM_VALUE) : rc;
}

/*
 * DescriptorProto: name 1, field 2, nested_type 3, enum_type 4, extension 6,
 * oneof_decl 8.
 */
static int
index_message(refl_scope_t *s, const uint8_t *data, size_t len, unsigned depth)
{
    pb_reader_t r = {data, data + len};
    pb_field_t f;
    size_t mark;
    int rc, more = 0;

    if (depth > REFL_MAX_DEPTH)
        return GX_EPROTO;
    rc = scope_enter(s, data, len, REFL_MESSAGE, &mark);
    if (rc != 0)
        return rc;
    while (rc == 0 && (more = pb_next(&r, &f)) == 1) {
        if (f.wire != PB_LEN)
            continue;
        if (f.number == 2 || f.number == 6)
            rc = index_leaf(s, &f, REFL_FIELD);
        else if (f.number == 3)
            rc = index_message(s, f.data, f.len, depth + 1);
        else if (f.number == 4)
            rc = index_enum(s, f.data, f.len);
        else if (f.number == 8)
            rc = index_leaf(s, &f, REFL_ONEOF);
    }
    scope_pop(s, mark);
    return rc != 0 ? rc : more;
}

/* ServiceDescriptorProto: name 1, method 2 (MethodDescriptorProto: name 1). */
static int
index_service(refl_scope_t *s, const uint8_t *data, size_t len)
{
    size_t mark;
    int rc = scope_enter(s, data, len, REFL_SERVICE, &mark);

    if (rc != 0)
        return rc;
    rc = index_leaves(s, data, len, 2, REFL_METHOD);
    scope_pop(s, mark);
    return rc;
}

/*
 * FileDescriptorProto: package 2, message_type 4, enum_type 5, service 6,
 * extension 7.  The file was checked whole by index_files().
 */
static int
index_symbols(refl_scope_t *s, const refl_file_t *file)
{
    pb_reader_t r = {file->data, file->data + file->len};
    const uint8_t *pkg;
    pb_field_t f;
    size_t plen, mark;
    int rc, more = 0;

    s->len = 0;
    s->name[0] = '\0';
    rc = pb_bytes(file->data, file->len, 2, &pkg, &plen);
    if (rc == GX_ENOTFOUND)
        rc = 0; /* no package */
    if (rc == 0 && plen > 0)
        rc = scope_push(s, pkg, plen, &mark);
    while (rc == 0 && (more = pb_next(&r, &f)) == 1) {
        if (f.wire != PB_LEN)
            continue;
        if (f.number == 4)
            rc = index_message(s, f.data, f.len, 0);
        else if (f.number == 5)
            rc = index_enum(s, f.data, f.len);
        else if (f.number == 6)
            rc = index_service(s, f.data, f.len);
        else if (f.number == 7)
            rc = index_leaf(s, &f, REFL_FIELD);
    }
    return rc != 0 ? rc : more;
}

static int
index_file_find(const refl_index_t *idx, size_t n, const uint8_t *name, size_t len, size_t *out)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(idx->files[i].name) == len && memcmp(idx->files[i].name, name, len) == 0) {
            *out = i;
            return 0;
        }
    }
    return GX_ENOTFOUND;
}

/* Names file @p i (field 1) and checks the whole FileDescriptorProto parses. */
static int
index_file_name(refl_index_t *idx, size_t i, char *err, size_t errlen)
{
    refl_file_t *file = &idx->files[i];
    pb_reader_t r = {file->data, file->data + file->len};
    const uint8_t *name;
    pb_field_t f;
    size_t nlen, dup;
    int rc;

    while ((rc = pb_next(&r, &f)) == 1)
        if (f.number == 3 && f.wire == PB_LEN)
            file->n_deps++;
    if (rc == 0)
        rc = pb_bytes(file->data, file->len, 1, &name, &nlen);
    if (rc != 0 || nlen == 0 || nlen > REFL_MAX_SYMBOL || memchr(name, '\0', nlen) != NULL) {
        snprintf(err, errlen, "file %zu: malformed FileDescriptorProto", i);
        return GX_EPROTO;
    }
    if (index_file_find(idx, i, name, nlen, &dup) == 0) {
        snprintf(err, errlen, "file %zu: \"%.*s\" is already file %zu", i, (int)nlen, name, dup);
        return GX_EPROTO;
    }
    file->name = strndup((const char *)name, nlen);
    return file->name != NULL ? 0 : GX_ENOMEM;
}

/* Resolves the imports of file @p i (dependency, field 3) to file indexes. */
static int
index_file_deps(refl_index_t *idx, size_t i, char *err, size_t errlen)
{
    refl_file_t *file = &idx->files[i];
    pb_reader_t r = {file->data, file->data + file->len};
    pb_field_t f;
    size_t n = 0;

    file->deps = calloc(file->n_deps + 1, sizeof(*file->deps));
    if (file->deps == NULL)
        return GX_ENOMEM;
    while (pb_next(&r, &f) == 1) {
        if (f.number != 3 || f.wire != PB_LEN)
            continue;
        if (index_file_find(idx, idx->n_files, f.data, f.len, &file->deps[n]) != 0) {
            snprintf(err, errlen, "%s imports \"%.*s\", which is not in the set", file->name,
                     (int)(f.len > 256 ? 256 : f.len), f.data);
            return GX_EPROTO;
        }
        n++;
    }
    return 0;
}

/* FileDescriptorSet: file 1 (repeated FileDescriptorProto). */
static int
index_files(refl_index_t *idx, const uint8_t *set, size_t len, char *err, size_t errlen)
{
    pb_reader_t r = {set, set + len};
    pb_field_t f;
    size_t n = 0;
    int rc;

    while ((rc = pb_next(&r, &f)) == 1)
        n += f.number == 1 && f.wire == PB_LEN;
    if (rc < 0) {
        snprintf(err, errlen, "malformed FileDescriptorSet");
        return rc;
    }
    idx->files = calloc(n + 1, sizeof(*idx->files));
    if (idx->files == NULL)
        return GX_ENOMEM;
    r = (pb_reader_t){set, set + len};
    while (pb_next(&r, &f) == 1) {
        if (f.number != 1 || f.wire != PB_LEN)
            continue;
        idx->files[idx->n_files] = (refl_file_t){.data = f.data, .len = f.len};
        rc = index_file_name(idx, idx->n_files, err, errlen);
        idx->n_files++;
        if (rc != 0)
            return rc;
    }
    for (size_t i = 0; i < idx->n_files; i++)
        if ((rc = index_file_deps(idx, i, err, errlen)) != 0)
            return rc;
    return 0;
}

static int
sym_cmp(const void *a, const void *b)
{
    const refl_sym_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    if (c != 0)
        return c;
    return (x->file > y->file) - (x->file < y->file);
}

static int
sym_name_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const refl_sym_t *)elem)->name);
}

/* Sorts the symbols; of a name defined twice, the first file's stays. */
static void
index_sort(refl_index_t *idx)
{
    size_t n = 0;

    if (idx->n_syms == 0)
        return;
    qsort(idx->syms, idx->n_syms, sizeof(*idx->syms), sym_cmp);
    for (size_t i = 0; i < idx->n_syms; i++) {
        if (n > 0 && strcmp(idx->syms[n - 1].name, idx->syms[i].name) == 0)
            free(idx->syms[i].name);
        else
            idx->syms[n++] = idx->syms[i];
    }
    idx->n_syms = n;
}

static void
refl_index_deinit(refl_index_t *idx)
{
    for (size_t i = 0; i < idx->n_files; i++) {
        free(idx->files[i].name);
        free(idx->files[i].deps);
    }
    for (size_t i = 0; i < idx->n_syms; i++)
        free(idx->syms[i].name);
    free(idx->files);
    free(idx->syms);
    memset(idx, 0, sizeof(*idx));
}

/*
 * Indexes the serialized FileDescriptorSet @p set, which must outlive the
 * index (its files are served from it).
 * @param err  why, on GX_EPROTO
 * @return 0, GX_EPROTO (malformed, a file named twice, an import that is not
 *         in the set) or GX_ENOMEM; on failure the index is left empty.
 */
static int
refl_index_init(refl_index_t *idx, const uint8_t *set, size_t len, char *err, size_t errlen)
{
    refl_scope_t *scope = NULL;
    int rc;

    memset(idx, 0, sizeof(*idx));
    snprintf(err, errlen, "out of memory");
    rc = index_files(idx, set, len, err, errlen);
    if (rc != 0)
        goto out;
    scope = malloc(sizeof(*scope));
    if (scope == NULL) {
        rc = GX_ENOMEM;
        goto out;
    }
    scope->idx = idx;
    for (size_t i = 0; i < idx->n_files && rc == 0; i++) {
        scope->file = i;
        rc = index_symbols(scope, &idx->files[i]);
        if (rc == GX_EPROTO)
            snprintf(err, errlen, "%s: malformed or too deep descriptor", idx->files[i].name);
    }
    if (rc == 0)
        index_sort(idx);
out:
    free(scope);
    if (rc != 0)
        refl_index_deinit(idx);
    return rc;
}

/* The symbol @p name ("pkg.Msg", ".pkg.Msg", "pkg.Svc.Method", …) or NULL. */
static const refl_sym_t *
refl_index_symbol(const refl_index_t *idx, const char *name)
{
    if (name[0] == '.')
        name++;
    if (idx->n_syms == 0)
        return NULL;
    return bsearch(name, idx->syms, idx->n_syms, sizeof(*idx->syms), sym_name_cmp);
}

/* The index of the file named @p name. @return 0 or GX_ENOTFOUND */
static int
refl_index_file(const refl_index_t *idx, const char *name, size_t *out)
{
    return index_file_find(idx, idx->n_files, (const uint8_t *)name, strlen(name), out);
}

/*
 * Lists in @p order file @p root, then those of its transitive imports that
 * @p sent does not mark, breadth first, marking each.  Files marked earlier
 * had their own imports listed then, so their imports need no walk.
 * @param order  room for every file of the index
 * @return the number of files listed (at least 1)
 */
static size_t
refl_index_collect(const refl_index_t *idx, size_t root, uint8_t *sent, size_t *order)
{
    size_t n = 0;

    order[n++] = root;
    sent[root] = 1;
    for (size_t i = 0; i < n; i++) {
        const refl_file_t *f = &idx->files[order[i]];
        for (size_t d = 0; d < f->n_deps; d++) {
            if (!sent[f->deps[d]]) {
                sent[f->deps[d]] = 1;
                order[n++] = f->deps[d];
            }
        }
    }
    return n;
}

/* ------------------------------------------------------------------ v1 and v1alpha */

/*
 * 1 when messages of @p a and @p b have the same encoding: field for field the
 * same number, name, label, type and packing, and so on down sub-messages.
 */
static int
refl_same_wire(const ProtobufCMessageDescriptor *a, const ProtobufCMessageDescriptor *b,
               unsigned depth)
{
    const uint32_t flags = PROTOBUF_C_FIELD_FLAG_PACKED | PROTOBUF_C_FIELD_FLAG_ONEOF;

    if (a == b)
        return 1;
    if (depth > 8 || a->n_fields != b->n_fields)
        return 0;
    for (unsigned i = 0; i < a->n_fields; i++) {
        const ProtobufCFieldDescriptor *x = &a->fields[i], *y = &b->fields[i];
        if (x->id != y->id || x->label != y->label || x->type != y->type ||
            (x->flags & flags) != (y->flags & flags) || strcmp(x->name, y->name) != 0)
            return 0;
        if (x->type == PROTOBUF_C_TYPE_MESSAGE &&
            !refl_same_wire(x->descriptor, y->descriptor, depth + 1))
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ the service */

typedef struct {
    gx_module_t *mod;
    refl_index_t idx;
} refl_ctx_t;

/* One ServerReflectionInfo stream, in call memory. */
typedef struct {
    uint32_t requests;
    uint8_t *sent;              /* per file: already sent on this stream */
    size_t *order;              /* one file response: the files, as indexes */
    ProtobufCBinaryData *blobs; /* and their bytes */
} refl_stream_t;

/* A response and everything it may point to. */
typedef struct {
    refl_resp_t resp;
    Grpc__Reflection__V1__FileDescriptorResponse files;
    Grpc__Reflection__V1__ExtensionNumberResponse numbers;
    Grpc__Reflection__V1__ListServiceResponse list;
    Grpc__Reflection__V1__ErrorResponse error;
    void *heap; /* list_services rows; freed once the response is packed */
    char message[REFL_MAX_NAME + 128];
} refl_reply_t;

static void
reply_init(refl_reply_t *r, const refl_req_t *req)
{
    memset(r, 0, sizeof(*r));
    grpc__reflection__v1__server_reflection_response__init(&r->resp);
    grpc__reflection__v1__file_descriptor_response__init(&r->files);
    grpc__reflection__v1__extension_number_response__init(&r->numbers);
    grpc__reflection__v1__list_service_response__init(&r->list);
    grpc__reflection__v1__error_response__init(&r->error);
    /* protobuf-c only reads these while packing */
    r->resp.valid_host = req->host;
    r->resp.original_request = (refl_req_t *)req;
}

static void reply_error(refl_reply_t *r, gx_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
reply_error(refl_reply_t *r, gx_status_t status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->message, sizeof(r->message), fmt, ap);
    va_end(ap);
    r->error.error_code = (int32_t)status;
    r->error.error_message = r->message;
    r->resp.message_response_case = RESP_CASE(ERROR_RESPONSE);
    r->resp.error_response = &r->error;
}

/* 0 when @p name may be looked up; else the reply says why not. */
static int
reply_check_name(refl_reply_t *r, const char *field, const char *name)
{
    if (strlen(name) <= REFL_MAX_NAME)
        return 0;
    reply_error(r, GX_STATUS_INVALID_ARGUMENT, "%s: longer than %d bytes", field, REFL_MAX_NAME);
    return -1;
}

static void
reply_files(refl_reply_t *r, const refl_ctx_t *ctx, refl_stream_t *st, size_t root)
{
    size_t n = refl_index_collect(&ctx->idx, root, st->sent, st->order);

    for (size_t i = 0; i < n; i++) {
        st->blobs[i].data = (uint8_t *)ctx->idx.files[st->order[i]].data;
        st->blobs[i].len = ctx->idx.files[st->order[i]].len;
    }
    r->files.n_file_descriptor_proto = n;
    r->files.file_descriptor_proto = st->blobs;
    r->resp.message_response_case = RESP_CASE(FILE_DESCRIPTOR_RESPONSE);
    r->resp.file_descriptor_response = &r->files;
}

static void
answer_file(refl_reply_t *r, const refl_ctx_t *ctx, refl_stream_t *st, const char *name)
{
    size_t i;

    if (reply_check_name(r, "file_by_filename", name) != 0)
        return;
    if (refl_index_file(&ctx->idx, name, &i) != 0)
        reply_error(r, GX_STATUS_NOT_FOUND, "file not found: %s", name);
    else
        reply_files(r, ctx, st, i);
}

static void
answer_symbol(refl_reply_t *r, const refl_ctx_t *ctx, refl_stream_t *st, const char *name)
{
    const refl_sym_t *sym;

    if (reply_check_name(r, "file_containing_symbol", name) != 0)
        return;
    sym = refl_index_symbol(&ctx->idx, name);
    if (sym == NULL)
        reply_error(r, GX_STATUS_NOT_FOUND, "symbol not found: %s", name);
    else
        reply_files(r, ctx, st, sym->file);
}

/* The message type @p name, or NULL after replying NOT_FOUND. */
static const refl_sym_t *
answer_find_message(refl_reply_t *r, const refl_ctx_t *ctx, const char *field, const char *name)
{
    const refl_sym_t *sym;

    if (reply_check_name(r, field, name) != 0)
        return NULL;
    sym = refl_index_symbol(&ctx->idx, name);
    if (sym == NULL || sym->kind != REFL_MESSAGE) {
        reply_error(r, GX_STATUS_NOT_FOUND, "message type not found: %s", name);
        return NULL;
    }
    return sym;
}

/* No file of this server declares extensions: every extension is NOT_FOUND. */
static void
answer_extension(refl_reply_t *r, const refl_ctx_t *ctx,
                 const Grpc__Reflection__V1__ExtensionRequest *ext)
{
    const char *type = ext != NULL ? ext->containing_type : "";

    if (answer_find_message(r, ctx, "file_containing_extension.containing_type", type) == NULL)
        return;
    reply_error(r, GX_STATUS_NOT_FOUND, "extension %d of %s not found",
                ext != NULL ? (int)ext->extension_number : 0, type);
}

static void
answer_extension_numbers(refl_reply_t *r, const refl_ctx_t *ctx, const char *type)
{
    const refl_sym_t *sym = answer_find_message(r, ctx, "all_extension_numbers_of_type", type);

    if (sym == NULL)
        return;
    r->numbers.base_type_name = sym->name;
    r->resp.message_response_case = RESP_CASE(ALL_EXTENSION_NUMBERS_RESPONSE);
    r->resp.all_extension_numbers_response = &r->numbers;
}

/* Every service some loaded module serves, once each, in route order. */
static void
answer_services(refl_reply_t *r)
{
    const gx_mods_t *mods = gx__mods;
    Grpc__Reflection__V1__ServiceResponse *rows;
    Grpc__Reflection__V1__ServiceResponse **ptrs;
    size_t n = 0, cap = mods != NULL ? mods->n_routes : 0;

    r->heap = calloc(cap + 1, sizeof(*rows) + sizeof(*ptrs));
    if (r->heap == NULL) {
        reply_error(r, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    ptrs = r->heap;
    rows = (Grpc__Reflection__V1__ServiceResponse *)(ptrs + cap + 1);
    for (size_t i = 0; i < cap; i++) {
        const char *name = mods->routes[i].svc->desc->name;
        size_t j = 0;
        while (j < n && strcmp(ptrs[j]->name, name) != 0)
            j++;
        if (j < n)
            continue;
        grpc__reflection__v1__service_response__init(&rows[n]);
        rows[n].name = (char *)name;
        ptrs[n] = &rows[n];
        n++;
    }
    r->list.n_service = n;
    r->list.service = ptrs;
    r->resp.message_response_case = RESP_CASE(LIST_SERVICES_RESPONSE);
    r->resp.list_services_response = &r->list;
}

/*
 * Sends one response.  A full send buffer stops the reading of requests until
 * on_writable: the client waits, by flow control, instead of the server
 * queuing responses without bound.
 */
static void
refl_send(gx_call_t *call, const refl_resp_t *resp)
{
    int rc = gx_call_send(call, &resp->base);

    if (rc == GX_AGAIN)
        gx__call_recv_pause(call, 1);
    else if (rc < 0)
        (void)gx_call_fail(call, GX_STATUS_INTERNAL, "cannot send the response: %s",
                           gx_strerror(rc));
}

/*
 * The request's strings are UTF-8, as proto3 has them: the response echoes
 * the request (original_request, valid_host), and a client's decoder refuses
 * a response that is not.  @return GX_OK, or GX_DONE after failing the call
 */
static int
refl_utf8(gx_call_t *call, const refl_req_t *req)
{
    const char *s = NULL, *field = NULL;

    if (gx_svc_validate_utf8(call, req->host, "host") != GX_OK)
        return GX_DONE;
    switch (req->message_request_case) {
    case REQ_CASE(FILE_BY_FILENAME):
        s = req->file_by_filename, field = "file_by_filename";
        break;
    case REQ_CASE(FILE_CONTAINING_SYMBOL):
        s = req->file_containing_symbol, field = "file_containing_symbol";
        break;
    case REQ_CASE(FILE_CONTAINING_EXTENSION):
        if (req->file_containing_extension != NULL)
            s = req->file_containing_extension->containing_type,
            field = "file_containing_extension.containing_type";
        break;
    case REQ_CASE(ALL_EXTENSION_NUMBERS_OF_TYPE):
        s = req->all_extension_numbers_of_type, field = "all_extension_numbers_of_type";
        break;
    case REQ_CASE(LIST_SERVICES):
        s = req->list_services, field = "list_services";
        break;
    default:
        break;
    }
    return s == NULL ? GX_OK : gx_svc_validate_utf8(call, s, field);
}

static void
refl_answer(gx_call_t *call, const refl_ctx_t *ctx, refl_stream_t *st, const refl_req_t *req)
{
    refl_reply_t r;

    if (refl_utf8(call, req) != GX_OK)
        return;
    reply_init(&r, req);
    switch (req->message_request_case) {
    case REQ_CASE(FILE_BY_FILENAME):
        answer_file(&r, ctx, st, req->file_by_filename);
        break;
    case REQ_CASE(FILE_CONTAINING_SYMBOL):
        answer_symbol(&r, ctx, st, req->file_containing_symbol);
        break;
    case REQ_CASE(FILE_CONTAINING_EXTENSION):
        answer_extension(&r, ctx, req->file_containing_extension);
        break;
    case REQ_CASE(ALL_EXTENSION_NUMBERS_OF_TYPE):
        answer_extension_numbers(&r, ctx, req->all_extension_numbers_of_type);
        break;
    case REQ_CASE(LIST_SERVICES):
        answer_services(&r);
        break;
    default:
        reply_error(&r, GX_STATUS_INVALID_ARGUMENT,
                    "message_request: none of file_by_filename, file_containing_symbol, "
                    "file_containing_extension, all_extension_numbers_of_type, list_services "
                    "is set");
        break;
    }
    refl_send(call, &r.resp);
    free(r.heap);
}

/* The stream's state, or NULL when the call is over. */
static refl_stream_t *
refl_stream(gx_call_t *call, const refl_ctx_t *ctx)
{
    return gx_call_is_done(call) ? NULL : gx_call_ctx(call, ctx->mod);
}

/* Counts one request against the stream's bounds; fails the call past them. */
static int
refl_admit(gx_call_t *call, refl_stream_t *st, const ProtobufCMessage *msg, size_t *size)
{
    if (st->requests >= REFL_MAX_REQUESTS)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED,
                            "more than %d requests on one reflection stream", REFL_MAX_REQUESTS);
    *size = protobuf_c_message_get_packed_size(msg);
    if (*size > REFL_MAX_REQUEST_BYTES)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED,
                            "a reflection request of %zu bytes is over the limit of %d bytes",
                            *size, REFL_MAX_REQUEST_BYTES);
    st->requests++;
    return GX_OK;
}

static int
refl_start(gx_call_t *call, const ProtobufCMessage *msg, void *mod_ctx)
{
    const refl_ctx_t *ctx = mod_ctx;
    size_t n = ctx->idx.n_files + 1;
    refl_stream_t *st;

    (void)msg; /* NULL: requests come through on_message */
    st = gx_call_alloc(call, sizeof(*st));
    if (st != NULL) {
        memset(st, 0, sizeof(*st));
        st->sent = gx_call_alloc(call, n);
        st->order = gx_call_alloc(call, n * sizeof(*st->order));
        st->blobs = gx_call_alloc(call, n * sizeof(*st->blobs));
    }
    if (st == NULL || st->sent == NULL || st->order == NULL || st->blobs == NULL)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    memset(st->sent, 0, n);
    gx_call_set_ctx(call, ctx->mod, st);
    if (gx_call_ctx(call, ctx->mod) != st)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return GX_AGAIN;
}

static void
refl_v1_on_message(gx_call_t *call, const ProtobufCMessage *msg, void *mod_ctx)
{
    const refl_ctx_t *ctx = mod_ctx;
    refl_stream_t *st = refl_stream(call, ctx);
    size_t size;

    if (st != NULL && refl_admit(call, st, msg, &size) == GX_OK)
        refl_answer(call, ctx, st, (const refl_req_t *)msg);
}

/* The same bytes read as a v1 request (init() checked that they mean the same). */
static void
refl_v1alpha_on_message(gx_call_t *call, const ProtobufCMessage *msg, void *mod_ctx)
{
    const refl_ctx_t *ctx = mod_ctx;
    refl_stream_t *st = refl_stream(call, ctx);
    ProtobufCMessage *req = NULL;
    uint8_t *buf;
    size_t size;

    if (st == NULL || refl_admit(call, st, msg, &size) != GX_OK)
        return;
    buf = malloc(size + 1);
    if (buf != NULL) {
        protobuf_c_message_pack(msg, buf);
        req = protobuf_c_message_unpack(
            &grpc__reflection__v1__server_reflection_request__descriptor, NULL, size, buf);
    }
    if (req != NULL)
        refl_answer(call, ctx, st, (const refl_req_t *)req);
    else
        (void)gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    protobuf_c_message_free_unpacked(req, NULL);
    free(buf);
}

static void
refl_on_half_close(gx_call_t *call, void *mod_ctx)
{
    (void)mod_ctx;
    gx_call_finish(call, GX_STATUS_OK, NULL);
}

static void
refl_on_writable(gx_call_t *call, void *mod_ctx)
{
    (void)mod_ctx;
    gx__call_recv_pause(call, 0);
}

/* ------------------------------------------------------------------ the module */

static int
refl_init(gx_module_t *mod, const gx_mod_conf_t *conf, void **mod_ctx)
{
    refl_ctx_t *ctx;
    char err[512];
    int rc;

    (void)conf;
    if (!refl_same_wire(&grpc__reflection__v1__server_reflection_request__descriptor,
                        &grpc__reflection__v1alpha__server_reflection_request__descriptor, 0) ||
        !refl_same_wire(&grpc__reflection__v1__server_reflection_response__descriptor,
                        &grpc__reflection__v1alpha__server_reflection_response__descriptor, 0)) {
        gx_mod_log(mod, GX_LOG_ERROR, "reflection messages of v1 and v1alpha differ: "
                   "proto/grpc/reflection/*/reflection.proto must match");
        return GX_ECONF;
    }
    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return GX_ENOMEM;
    ctx->mod = mod;
    rc = refl_index_init(&ctx->idx, gx__descriptor_set, gx__descriptor_set_len, err, sizeof(err));
    if (rc != 0) {
        gx_mod_log(mod, GX_LOG_ERROR, "cannot index the embedded descriptor set reason=\"%s\"",
                   err);
        free(ctx);
        return rc;
    }
    gx_mod_log(mod, GX_LOG_DEBUG, "descriptor set indexed files=%zu symbols=%zu bytes=%zu",
               ctx->idx.n_files, ctx->idx.n_syms, gx__descriptor_set_len);
    *mod_ctx = ctx;
    return 0;
}

static void
refl_fini(gx_module_t *mod, void *mod_ctx)
{
    refl_ctx_t *ctx = mod_ctx;

    (void)mod;
    if (ctx == NULL)
        return;
    refl_index_deinit(&ctx->idx);
    free(ctx);
}

static const gx_method_t refl_v1_methods[] = {
    {.name = "ServerReflectionInfo", .kind = GX_RPC_BIDI_STREAMING, .start = refl_start,
     .on_message = refl_v1_on_message, .on_half_close = refl_on_half_close,
     .on_writable = refl_on_writable},
    {.name = NULL},
};

static const gx_method_t refl_v1alpha_methods[] = {
    {.name = "ServerReflectionInfo", .kind = GX_RPC_BIDI_STREAMING, .start = refl_start,
     .on_message = refl_v1alpha_on_message, .on_half_close = refl_on_half_close,
     .on_writable = refl_on_writable},
    {.name = NULL},
};

static const gx_service_t refl_v1_service = {
    .desc = &grpc__reflection__v1__server_reflection__descriptor,
    .methods = refl_v1_methods,
};

static const gx_service_t refl_v1alpha_service = {
    .desc = &grpc__reflection__v1alpha__server_reflection__descriptor,
    .methods = refl_v1alpha_methods,
};

static const gx_service_t *const refl_services[] = {&refl_v1_service, &refl_v1alpha_service,
                                                    NULL};

const gx_module_desc_t gx_svc_reflection_module = {
    .abi = GX_MODULE_ABI,
    .name = "reflection",
    .version = PACKAGE_VERSION,
    .edition = "community",
    .init = refl_init,
    .fini = refl_fini,
    .services = refl_services,
};
