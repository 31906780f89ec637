/* SPDX-License-Identifier: MIT */
/*
 * galaxy-cli: the typed values of a command line, for the command files.
 * Repeatable options become lists (split at commas too) or protobuf maps
 * built in the command's arena; enum options are parsed by value name
 * without the enum's prefix, and enum values printed the same way.  A bad
 * value is a usage error that names the option.
 */
#include "config.h"

#include "cli/gx_cli.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int
gx_cli_opt_list(gx_cli_t *cli, const char *name, char ***out, size_t *n)
{
    const char *v, *p;
    size_t cap = 0, it, len;
    char **list;

    *out = NULL;
    *n = 0;
    for (it = 0; (v = gx_cli_opt_next(cli, name, &it)) != NULL;)
        for (p = v, cap++; (p = strchr(p, ',')) != NULL; p++)
            cap++;
    if (cap == 0)
        return 0;
    if ((list = gx_arena_calloc(cli->arena, cap * sizeof(*list))) == NULL)
        goto oom;
    for (it = 0; (v = gx_cli_opt_next(cli, name, &it)) != NULL;) {
        p = v;
        do {
            if ((len = strcspn(p, ",")) == 0)
                return gx_cli_usage_error(cli, "--%s: empty item in '%s'", name, v);
            if ((list[(*n)++] = gx_arena_strndup(cli->arena, p, len)) == NULL)
                goto oom;
            p += len;
        } while (*p++ != '\0');
    }
    *out = list;
    return 0;
oom:
    *n = 0;
    gx_cli_error("out of memory");
    return GX_CLI_EXIT_UNAVAILABLE;
}

/* Sets KEY=VALUE @kv in the map entries @e (@n of them, room for one more). */
static int
map_put(gx_cli_t *cli, const ProtobufCMessageDescriptor *ed, ProtobufCMessage **e, size_t *n,
        const char *kv)
{
    const char *eq = strchr(kv, '=');
    const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
    char *key, *value;
    size_t i;

    key = gx_arena_strndup(cli->arena, kv, (size_t)(eq - kv));
    value = gx_arena_strndup(cli->arena, eq + 1, strlen(eq + 1));
    if (key == NULL || value == NULL)
        return GX_CLI_EXIT_UNAVAILABLE;
    for (i = 0; i < *n; i++)
        if (strcmp(*(char **)((char *)e[i] + kf->offset), key) == 0)
            break;
    if (i == *n) {
        if ((e[i] = gx_arena_alloc(cli->arena, ed->sizeof_message)) == NULL)
            return GX_CLI_EXIT_UNAVAILABLE;
        protobuf_c_message_init(ed, e[i]);
        (*n)++;
    }
    *(char **)((char *)e[i] + kf->offset) = key;
    *(char **)((char *)e[i] + vf->offset) = value;
    return 0;
}

int
gx_cli_opt_map(gx_cli_t *cli, const char *name, ProtobufCMessage *msg, const char *field,
               int *given)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, field);
    ProtobufCMessage **entries;
    size_t n = 0, it, count = 0;
    const char *v;
    int rv = 0;

    if (f == NULL || f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE) {
        gx_cli_error("%s has no map field %s", msg->descriptor->name, field);
        return GX_CLI_EXIT_UNAVAILABLE;
    }
    for (it = 0; gx_cli_opt_next(cli, name, &it) != NULL;)
        count++;
    if (given != NULL)
        *given = count > 0;
    if (count == 0)
        return 0;
    entries = gx_arena_calloc(cli->arena, count * sizeof(*entries));
    if (entries == NULL)
        rv = GX_CLI_EXIT_UNAVAILABLE;
    for (it = 0; rv == 0 && (v = gx_cli_opt_next(cli, name, &it)) != NULL;) {
        if (strchr(v, '=') == NULL || v[0] == '=')
            return gx_cli_usage_error(cli, "--%s: expected KEY=VALUE, got '%s'", name, v);
        rv = map_put(cli, f->descriptor, entries, &n, v);
    }
    if (rv != 0) {
        gx_cli_error("out of memory");
        return rv;
    }
    *(size_t *)((char *)msg + f->quantifier_offset) = n;
    *(ProtobufCMessage ***)((char *)msg + f->offset) = entries;
    return 0;
}

int
gx_cli_opt_enum_list(gx_cli_t *cli, const char *name, ProtobufCMessage *msg, const char *field)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, field);
    char **names = NULL;
    size_t n = 0;
    int *values, rv;

    if (f == NULL || f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_ENUM) {
        gx_cli_error("%s has no repeated enum field %s", msg->descriptor->name, field);
        return GX_CLI_EXIT_UNAVAILABLE;
    }
    rv = gx_cli_opt_list(cli, name, &names, &n);
    if (rv != 0 || n == 0)
        return rv;
    /* protobuf-c keeps an enum in an int-sized member */
    if ((values = gx_arena_calloc(cli->arena, n * sizeof(*values))) == NULL) {
        gx_cli_error("out of memory");
        return GX_CLI_EXIT_UNAVAILABLE;
    }
    for (size_t i = 0; rv == 0 && i < n; i++)
        rv = gx_cli_parse_enum(name, f->descriptor, names[i], &values[i]);
    *(size_t *)((char *)msg + f->quantifier_offset) = n;
    *(int **)((char *)msg + f->offset) = values;
    return rv;
}

/* The prefix of @d's value names: that of its zero value, up to "UNSPECIFIED". */
static size_t
enum_prefix_len(const ProtobufCEnumDescriptor *d)
{
    const ProtobufCEnumValue *zero = protobuf_c_enum_descriptor_get_value(d, 0);
    const char *u = zero != NULL ? strstr(zero->name, "UNSPECIFIED") : NULL;

    return u != NULL ? (size_t)(u - zero->name) : 0;
}

int
gx_cli_parse_enum(const char *what, const ProtobufCEnumDescriptor *d, const char *s, int *out)
{
    size_t plen = enum_prefix_len(d);
    char names[512];
    size_t n = 0;

    for (unsigned i = 0; i < d->n_values; i++) {
        const ProtobufCEnumValue *v = &d->values[i];
        if (v->value == 0)
            continue;
        if (strcasecmp(s, v->name) == 0 || strcasecmp(s, v->name + plen) == 0) {
            *out = v->value;
            return 0;
        }
        for (const char *c = v->name + plen; *c != '\0' && n + 3 < sizeof(names); c++)
            names[n++] = (char)tolower((unsigned char)*c);
        if (n + 2 < sizeof(names))
            names[n++] = ',', names[n++] = ' ';
    }
    names[n >= 2 ? n - 2 : 0] = '\0';
    gx_cli_error("--%s: expected one of %s, got '%s'", what, names, s);
    return GX_CLI_EXIT_USAGE;
}

const char *
gx_cli_enum_str(const ProtobufCEnumDescriptor *d, int v, char *buf)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);

    if (ev != NULL)
        return ev->name + enum_prefix_len(d);
    snprintf(buf, GX_CLI_ENUM_LEN, "%d", v);
    return buf;
}
