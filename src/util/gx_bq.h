/* SPDX-License-Identifier: MIT */
/**
 * @file gx_bq.h
 * Byte queue: bytes appended at the tail and taken from the head, always one
 * contiguous run, so a message that arrived in pieces is parsed in place.
 * A call's request and response bytes live in two of them.
 *
 * The first storage (up to GX_BQ_FIRST bytes) comes from the arena passed to
 * gx_bq_reserve(), so a small unary call never calls malloc; more than that
 * moves to the heap, doubling.  The head is moved back to the front only when
 * that copies no more than was taken, so appending and taking stay O(1) per
 * byte.  A heap buffer over GX_BQ_KEEP bytes is freed when the queue empties:
 * a long stream does not keep its largest burst.  Not thread-safe.
 */
#ifndef GX_UTIL_GX_BQ_H
#define GX_UTIL_GX_BQ_H

#include <stddef.h>
#include <stdint.h>

#include "util/gx_arena.h"

#define GX_BQ_FIRST 512
#define GX_BQ_KEEP (64 * 1024)

typedef struct {
    uint8_t *buf;
    size_t head, len, cap;
    uint8_t heap;    /* buf is ours to free (else it is in an arena, or NULL) */
    uint8_t arena;   /* the arena storage was taken once: never again */
} gx_bq_t;

/**
 * @p n writable bytes at the tail (the arena @p a is used for the first
 * small storage), made part of the queue by gx_bq_commit().
 * @return NULL when out of memory
 */
uint8_t *gx_bq_reserve(gx_bq_t *q, gx_arena_t *a, size_t n);
/** Appends @p n bytes of @p data. @return 0 or GX_ENOMEM */
int gx_bq_add(gx_bq_t *q, gx_arena_t *a, const void *data, size_t n);
/** Removes @p n (at most gx_bq_len()) bytes from the head. */
void gx_bq_drain(gx_bq_t *q, size_t n);
/** Frees the heap storage; the queue is empty and usable again. */
void gx_bq_free(gx_bq_t *q);

static inline void
gx_bq_commit(gx_bq_t *q, size_t n)
{
    q->len += n;
}

/** The queued bytes, contiguous: gx_bq_len() of them (NULL when none ever were). */
static inline uint8_t *
gx_bq_data(const gx_bq_t *q)
{
    return q->buf != NULL ? q->buf + q->head : NULL;
}

static inline size_t
gx_bq_len(const gx_bq_t *q)
{
    return q->len;
}

#endif /* GX_UTIL_GX_BQ_H */
