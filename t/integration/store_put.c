/* SPDX-License-Identifier: MIT */
/*
 * store_put DIR TABLE KEYHEX [VALHEX]: writes one record into the store in
 * DIR (VALHEX given) or deletes it, durably, through src/store: what another
 * build of the server could have left there, for the integration tests.  Keys
 * and values are hex, so that they may hold NUL bytes ("<pool>\0<node id>").
 * TABLE is a table's name (meta, pools, nodes, keys, jobs, seen).  The server
 * must not be running on DIR.  Exit status 0, 1 on a store error, 2 on usage.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/gx_store.h"
#include "util/gx_error.h"

static const char *const tables[GX_STORE_TABLES] = {
    [GX_STORE_META] = "meta", [GX_STORE_POOLS] = "pools", [GX_STORE_NODES] = "nodes",
    [GX_STORE_KEYS] = "keys", [GX_STORE_JOBS] = "jobs",   [GX_STORE_SEEN] = "seen",
};

/* @return the bytes of @p hex in a malloc()ed buffer, *len of them; NULL if not hex */
static unsigned char *
unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex);
    unsigned char *b = malloc(n / 2 + 1);

    if (b == NULL || n % 2 != 0) {
        free(b);
        return NULL;
    }
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            free(b);
            return NULL;
        }
        b[i] = (unsigned char)v;
    }
    *len = n / 2;
    return b;
}

int
main(int argc, char **argv)
{
    gx_store_op_t op = {GX_STORE_TABLES, 1, NULL, 0, NULL, 0};
    unsigned char *key = NULL, *val = NULL;
    gx_store_t *st;
    char err[256];
    int rv;

    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: store_put DIR TABLE KEYHEX [VALHEX]\n");
        return 2;
    }
    for (int t = 0; t < GX_STORE_TABLES; t++)
        if (strcmp(argv[2], tables[t]) == 0)
            op.table = (gx_store_table_t)t;
    key = unhex(argv[3], &op.key_len);
    if (argc == 5) {
        val = unhex(argv[4], &op.val_len);
        op.del = 0;
        op.val = val;
    }
    op.key = key;
    if (op.table == GX_STORE_TABLES || key == NULL || op.key_len == 0 || (argc == 5 && !val)) {
        fprintf(stderr, "store_put: bad table, key or value\n");
        return 2;
    }
    if (gx_store_open(argv[1], NULL, &st, err, sizeof(err)) != 0) {
        fprintf(stderr, "store_put: %s\n", err);
        return 1;
    }
    rv = gx_store_submit_sync(st, &op, 1);
    gx_store_close(st);
    free(key);
    free(val);
    if (rv != 0)
        fprintf(stderr, "store_put: %s\n", gx_strerror(rv));
    return rv != 0;
}
