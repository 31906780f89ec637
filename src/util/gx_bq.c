/* SPDX-License-Identifier: MIT */
/*
 * Byte queue: see gx_bq.h.
 */
#include "config.h"

#include "util/gx_bq.h"

#include <stdlib.h>
#include <string.h>

#include "util/gx_error.h"

uint8_t *
gx_bq_reserve(gx_bq_t *q, gx_arena_t *a, size_t n)
{
    size_t cap;
    uint8_t *buf;

    if (q->buf != NULL && q->cap - q->head - q->len >= n)
        return q->buf + q->head + q->len;
    if (q->buf == NULL && n <= GX_BQ_FIRST && a != NULL && !q->arena) {
        q->buf = gx_arena_alloc(a, GX_BQ_FIRST);
        if (q->buf == NULL)
            return NULL;
        q->cap = GX_BQ_FIRST;
        q->arena = 1;
        return q->buf;
    }
    if (q->head >= q->len && q->cap - q->len >= n) {
        /* moves no more than was taken since the last move */
        memmove(q->buf, q->buf + q->head, q->len);
        q->head = 0;
        return q->buf + q->len;
    }
    if (n > SIZE_MAX / 2 - q->len)
        return NULL;
    cap = q->cap * 2 > q->len + n ? q->cap * 2 : q->len + n;
    if (cap < GX_BQ_FIRST)
        cap = GX_BQ_FIRST;
    buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    if (q->len > 0)
        memcpy(buf, q->buf + q->head, q->len);
    if (q->heap)
        free(q->buf);
    q->buf = buf;
    q->cap = cap;
    q->head = 0;
    q->heap = 1;
    return buf + q->len;
}

int
gx_bq_add(gx_bq_t *q, gx_arena_t *a, const void *data, size_t n)
{
    uint8_t *p;

    if (n == 0)
        return 0;
    p = gx_bq_reserve(q, a, n);
    if (p == NULL)
        return GX_ENOMEM;
    memcpy(p, data, n);
    q->len += n;
    return 0;
}

void
gx_bq_drain(gx_bq_t *q, size_t n)
{
    if (n > q->len)
        n = q->len;
    q->head += n;
    q->len -= n;
    if (q->len > 0)
        return;
    q->head = 0;
    if (q->heap && q->cap > GX_BQ_KEEP)
        gx_bq_free(q);
}

void
gx_bq_free(gx_bq_t *q)
{
    if (q->heap)
        free(q->buf);
    q->buf = NULL;
    q->head = q->len = q->cap = 0;
    q->heap = 0; /* q->arena stays: the arena storage is not handed out twice */
}
