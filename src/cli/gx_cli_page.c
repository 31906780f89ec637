/* SPDX-License-Identifier: MIT */
/*
 * galaxy-cli: the paged listings (`node list`, `job list`), for any List
 * call whose request has page_size and page_token and whose response has a
 * repeated message field of items and next_page_token.  The fields are found
 * by name through protobuf-c's reflection, so a command file gives only the
 * method, the response type, the items' field, an id accessor for --quiet and
 * its table.
 *
 * One page, or with --all every page by following the tokens (at most
 * MAX_PAGES); the pages are kept until the items are printed, as the items
 * and the next token point into them.  When a page is left unfetched its
 * token is told on stderr, after the output.
 */
#include "config.h"

#include "cli/gx_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --all stops after this many pages: a server whose tokens never end must not loop us forever */
#define MAX_PAGES 100000

/* A listing: the fields it walks, the pages fetched and the items they hold, in order. */
typedef struct {
    const ProtobufCFieldDescriptor *f_token, *f_items, *f_next;
    ProtobufCMessage **pages;
    size_t n_pages;
    ProtobufCMessage **items;
    size_t n_items;
} listing_t;

/* The member of @msg at @offset (a field's offset, or a repeated field's quantifier_offset). */
static void *
field_at(const ProtobufCMessage *msg, unsigned offset)
{
    return (char *)msg + offset;
}

/* The field @name of @d, if it has that type and label; NULL (after a message) otherwise. */
static const ProtobufCFieldDescriptor *
field_get(const ProtobufCMessageDescriptor *d, const char *name, ProtobufCType type,
          ProtobufCLabel label)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, name);

    if (f != NULL && f->type == type && f->label == label)
        return f;
    gx_cli_error("%s has no field %s", d->name, name);
    return NULL;
}

int
gx_cli_page_opts(gx_cli_t *cli, ProtobufCMessage *req)
{
    const ProtobufCFieldDescriptor *size =
        field_get(req->descriptor, "page_size", PROTOBUF_C_TYPE_UINT32, PROTOBUF_C_LABEL_NONE);
    const ProtobufCFieldDescriptor *token =
        field_get(req->descriptor, "page_token", PROTOBUF_C_TYPE_STRING, PROTOBUF_C_LABEL_NONE);
    const char *v;
    int rv = 0;

    if (size == NULL || token == NULL)
        return GX_CLI_EXIT_UNAVAILABLE;
    if ((v = gx_cli_opt(cli, "page-size")) != NULL)
        rv = gx_cli_parse_u32("page-size", v, 1, UINT32_MAX, field_at(req, size->offset));
    if (rv == 0 && (v = gx_cli_opt(cli, "page-token")) != NULL)
        *(const char **)field_at(req, token->offset) = v;
    return rv;
}

/* Finds the fields of the call. @return an exit code */
static int
listing_init(listing_t *l, const ProtobufCMessageDescriptor *req_desc, const gx_cli_page_t *page)
{
    l->f_token = field_get(req_desc, "page_token", PROTOBUF_C_TYPE_STRING, PROTOBUF_C_LABEL_NONE);
    l->f_items =
        field_get(page->resp_desc, page->items, PROTOBUF_C_TYPE_MESSAGE, PROTOBUF_C_LABEL_REPEATED);
    l->f_next = field_get(page->resp_desc, "next_page_token", PROTOBUF_C_TYPE_STRING,
                          PROTOBUF_C_LABEL_NONE);
    if (l->f_token == NULL || l->f_items == NULL || l->f_next == NULL)
        return GX_CLI_EXIT_UNAVAILABLE;
    return GX_CLI_EXIT_OK;
}

static void
listing_free(listing_t *l)
{
    for (size_t i = 0; i < l->n_pages; i++)
        protobuf_c_message_free_unpacked(l->pages[i], NULL);
    free(l->pages);
    free(l->items);
}

/* Keeps one page. @return 0, or -1 when out of memory (the page is freed) */
static int
listing_add(listing_t *l, ProtobufCMessage *msg)
{
    size_t n = *(const size_t *)field_at(msg, l->f_items->quantifier_offset);
    ProtobufCMessage *const *page_items = *(ProtobufCMessage ***)field_at(msg, l->f_items->offset);
    ProtobufCMessage **pages = realloc(l->pages, (l->n_pages + 1) * sizeof(*pages));
    ProtobufCMessage **items =
        pages != NULL ? realloc(l->items, (l->n_items + n + 1) * sizeof(*items)) : NULL;

    if (pages != NULL)
        l->pages = pages;
    if (items != NULL)
        l->items = items;
    if (pages == NULL || items == NULL) {
        protobuf_c_message_free_unpacked(msg, NULL);
        return -1;
    }
    l->pages[l->n_pages++] = msg;
    if (n != 0)
        memcpy(l->items + l->n_items, page_items, n * sizeof(*items));
    l->n_items += n;
    return 0;
}

/* Fetches one page, or every page with --all; *@next: the token of the first one left. */
static int
listing_fetch(gx_cli_t *cli, listing_t *l, const gx_cli_page_t *page, ProtobufCMessage *req,
              int all, const char **next)
{
    ProtobufCMessage *msg;
    int rv;

    for (size_t n = 0; n < MAX_PAGES; n++) {
        rv = gx_cli_unary(cli, page->method, req, page->resp_desc, &msg);
        if (rv != GX_CLI_EXIT_OK)
            return rv;
        if (listing_add(l, msg) != 0) {
            gx_cli_error("out of memory");
            return GX_CLI_EXIT_UNAVAILABLE;
        }
        *next = *(const char **)field_at(msg, l->f_next->offset);
        if (!all || (*next)[0] == '\0')
            return GX_CLI_EXIT_OK;
        *(const char **)field_at(req, l->f_token->offset) = *next;
    }
    gx_cli_error("INTERNAL: the server's page tokens do not end after %d pages", MAX_PAGES);
    return GX_CLI_EXIT_UNAVAILABLE;
}

/* The items: their ids (--quiet), a JSON array (-o json) or the command's table. */
static int
listing_print(const gx_cli_t *cli, const listing_t *l, const gx_cli_page_t *page)
{
    if (cli->quiet) {
        for (size_t i = 0; i < l->n_items; i++)
            printf("%s\n", page->item_id(l->items[i]));
        return GX_CLI_EXIT_OK;
    }
    if (cli->output == GX_CLI_OUT_JSON)
        return gx_cli_print_json_list(l->items, l->n_items);
    return page->print_table(l->items, l->n_items);
}

int
gx_cli_page_list(gx_cli_t *cli, const gx_cli_page_t *page, ProtobufCMessage *req)
{
    listing_t l = {0};
    const char *next = "";
    int rv = listing_init(&l, req->descriptor, page);

    if (rv == GX_CLI_EXIT_OK)
        rv = listing_fetch(cli, &l, page, req, gx_cli_opt(cli, "all") != NULL, &next);
    if (rv == GX_CLI_EXIT_OK)
        rv = listing_print(cli, &l, page);
    if (rv == GX_CLI_EXIT_OK && next[0] != '\0')
        gx_cli_error("more %s follow: add --all, or --page-token %s", page->items, next);
    listing_free(&l);
    return rv;
}
