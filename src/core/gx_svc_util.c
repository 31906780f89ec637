/* SPDX-License-Identifier: MIT */
/*
 * Shared by the galaxy.pool.v1 services: validators that reject bad input with
 * INVALID_ARGUMENT naming the field (sizes bounded by core/gx_reg.h), and the
 * glue that parks a write until the registry has it durable and applied.
 */
#include "config.h"

#include "core/gx_svc_util.h"

#include <stdio.h>
#include <string.h>

#include "transport/gx_call.h"
#include "util/gx_error.h"
#include "util/gx_utf8.h"

typedef struct {
    ProtobufCMessage base;
    char *key;
    char *value;
} map_entry_t;

const ProtobufCMessage *
gx_svc_request(const gx_call_t *call)
{
    return call->core.req;
}

static void
write_done(gx_reg_op_t *op)
{
    gx_svc_write_t *w = op->arg;

    gx_call_resume(w->call);
}

void *
gx_svc_write_new(gx_call_t *call, const gx_module_t *mod, size_t size)
{
    gx_svc_write_t *w = gx_call_alloc(call, size);

    if (w == NULL)
        return NULL;
    memset(w, 0, size);
    w->call = call;
    w->op.done = write_done;
    w->op.arg = w;
    gx_call_set_ctx(call, mod, w);
    return w;
}

int
gx_svc_write_park(gx_call_t *call, int rv, const gx_reg_why_t *why)
{
    if (rv == GX_DONE)
        return GX_DONE;
    if (rv != 0)
        return gx_call_fail(call, why->status, "%s", why->msg);
    return GX_AGAIN;
}

gx_svc_write_t *
gx_svc_write_result(gx_call_t *call, const gx_module_t *mod)
{
    gx_svc_write_t *w = gx_call_ctx(call, mod);

    if (w == NULL) {
        gx_call_fail(call, GX_STATUS_INTERNAL, "no write in flight for %s", gx_call_method(call));
        return NULL;
    }
    if (w->op.status != 0) {
        gx_call_fail(call, gx_error_to_status(w->op.status), "store: %s",
                     gx_strerror(w->op.status));
        return NULL;
    }
    return w;
}

/* ------------------------------------------------------------------ validators */

int
gx_svc_validate_pool_name(gx_call_t *call, const char *name, const char *field)
{
    if (name[0] == '\0')
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "%s: required", field);
    if (!gx_reg_valid_pool_name(name))
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "%s: must match "
                            "[a-z0-9][a-z0-9-]{0,62}", field);
    return GX_OK;
}

int
gx_svc_validate_pool_node(gx_call_t *call, const char *pool, const char *id)
{
    if (gx_svc_validate_pool_name(call, pool, "pool") != GX_OK)
        return GX_DONE;
    if (id[0] == '\0')
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "node_id: required");
    if (!gx_reg_valid_node_id(id))
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "node_id: must match "
                            "[A-Za-z0-9._:-]{1,128}");
    return GX_OK;
}

int
gx_svc_validate_specs(gx_call_t *call, size_t n, char *const *specs, const char *field,
                      size_t min)
{
    if (n < min)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "%s: at least %zu required", field,
                            min);
    if (n > GX_REG_SPECS_MAX)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "%s: at most %d", field,
                            GX_REG_SPECS_MAX);
    for (size_t i = 0; i < n; i++) {
        if (!gx_reg_valid_spec(specs[i]))
            return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "%s[%zu]: must match "
                                "[a-z0-9-]{1,32}", field, i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(specs[i], specs[j]) == 0)
                return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "%s[%zu]: \"%s\" is "
                                    "repeated", field, i, specs[i]);
    }
    return GX_OK;
}

int
gx_svc_validate_labels(gx_call_t *call, size_t n, const void *const *entries, const char *field)
{
    if (n > GX_REG_LABELS_MAX)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "%s: at most %d labels", field,
                            GX_REG_LABELS_MAX);
    for (size_t i = 0; i < n; i++) {
        const map_entry_t *e = entries[i];
        if (!gx_reg_valid_token(e->key, GX_REG_LABEL_KEY_MAX))
            return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "%s: a key must be 1 to %d "
                                "printable characters without spaces", field,
                                GX_REG_LABEL_KEY_MAX);
        if (strlen(e->value) > GX_REG_LABEL_VALUE_MAX)
            return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "%s[%s]: longer than %d bytes",
                                field, e->key, GX_REG_LABEL_VALUE_MAX);
        if (!gx_utf8_valid(e->value, strlen(e->value)))
            return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "%s[%s]: not valid UTF-8",
                                field, e->key);
    }
    return GX_OK;
}

int
gx_svc_validate_text(gx_call_t *call, const char *s, size_t max, const char *field)
{
    size_t n = strlen(s);

    if (n > max)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "%s: longer than %zu bytes", field,
                            max);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < ' ' || s[i] == 0x7f)
            return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "%s: control characters are "
                                "not allowed", field);
    return gx_svc_validate_utf8(call, s, field);
}

int
gx_svc_validate_utf8(gx_call_t *call, const char *s, const char *field)
{
    if (!gx_utf8_valid(s, strlen(s)))
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "%s: not valid UTF-8", field);
    return GX_OK;
}

/* @p prefix then @p name in @p f (64 bytes): the validators name the field only on failure,
 * but a valid request passes here five times, so no snprintf */
static const char *
field_name(char *f, const char *prefix, const char *name)
{
    size_t a = strnlen(prefix, 47), b = strnlen(name, 16);

    memcpy(f, prefix, a);
    memcpy(f + a, name, b);
    f[a + b] = '\0';
    return f;
}

int
gx_svc_validate_node(gx_call_t *call, const Galaxy__Pool__V1__Node *node, const char *prefix)
{
    char f[64];

#define FIELD(name) field_name(f, prefix, name)
    if (node->id[0] == '\0' || !gx_reg_valid_node_id(node->id))
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "%s: must match "
                            "[A-Za-z0-9._:-]{1,128}", FIELD("id"));
    if (gx_svc_validate_pool_name(call, node->pool, FIELD("pool")) != GX_OK ||
        gx_svc_validate_specs(call, node->n_specializations, node->specializations,
                              FIELD("specializations"), 1) != GX_OK ||
        gx_svc_validate_labels(call, node->n_labels, (const void *const *)node->labels,
                               FIELD("labels")) != GX_OK ||
        gx_svc_validate_text(call, node->address, GX_REG_ADDRESS_MAX, FIELD("address")) != GX_OK ||
        gx_svc_validate_text(call, node->version, GX_REG_TEXT_MAX, FIELD("version")) != GX_OK)
        return GX_DONE;
    if (!(node->load >= 0 && node->load <= 1))
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "%s: must be from 0 to 1",
                            FIELD("load"));
#undef FIELD
    return GX_OK;
}
