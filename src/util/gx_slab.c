/* SPDX-License-Identifier: MIT */
/*
 * Size-class cache of heap blocks for one worker thread.  A 16-byte header
 * before each block names its class (or "big", with its size), so release
 * needs no size and alignment stays malloc()'s.  Released blocks go on their
 * class's list, last in first out, until the lists hold GX_SLAB_CACHE_MAX
 * bytes: one cap for all classes lets the sizes a worker really uses fill it.
 * The class is arithmetic on the highest bit set, no table and no loop.
 * Under AddressSanitizer (or -DGX_SLAB_NO_CACHE) every block is big: exact
 * malloc() and free(), nothing kept.
 */
#include "config.h"

#include "util/gx_slab.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__) || defined(GX_SLAB_NO_CACHE)
#define BYPASS 1
#else
#define BYPASS 0
#endif

/* 8 classes of 16 bytes to 128, then 4 per doubling to GX_SLAB_CLASS_MAX */
#define NCLASS 37
#define BIG NCLASS

typedef struct hdr_s {
    _Alignas(16) union {
        struct hdr_s *next; /* on a free list */
        size_t size;        /* handed out, big: the size asked for */
    } u;
    size_t cls; /* a class, or BIG */
} hdr_t;

_Static_assert(sizeof(hdr_t) == 16, "the header keeps malloc's 16-byte alignment");

/* two lines: some CPUs fetch a line's neighbour with it */
#define GX_SLAB_ALIGN 128

struct gx_slab_s {
    hdr_t *lists[NCLASS];
    size_t cached; /* bytes of the blocks on the lists */
};

__thread long gx__slab_fail_at;

static inline int
injected_failure(void)
{
    return __builtin_expect(gx__slab_fail_at > 0, 0) && --gx__slab_fail_at == 0;
}

/* The class of 1 <= size <= GX_SLAB_CLASS_MAX (0 counts as 1). */
static inline unsigned
class_of(size_t size)
{
    unsigned long s1 = size - 1;
    unsigned b;

    if (size <= 128)
        return size == 0 ? 0 : (unsigned)(s1 >> 4);
    /* size is in (2^b, 2^(b+1)], cut in four steps of 2^(b-2) */
    b = (unsigned)(sizeof(s1) * CHAR_BIT - 1) - (unsigned)__builtin_clzl(s1);
    return 8 + (b - 7) * 4 + (unsigned)(s1 >> (b - 2)) - 4;
}

static inline size_t
class_size(unsigned c)
{
    if (c < 8)
        return (c + 1) * 16;
    return (size_t)(5 + (c - 8) % 4) << ((c - 8) / 4 + 5);
}

_Static_assert((5 + (NCLASS - 1 - 8) % 4) << ((NCLASS - 1 - 8) / 4 + 5) == GX_SLAB_CLASS_MAX,
               "the last class is GX_SLAB_CLASS_MAX");

static void *
big_alloc(size_t size)
{
    hdr_t *h;

    if (size > SIZE_MAX - sizeof(*h))
        return NULL;
    h = malloc(sizeof(*h) + size);
    if (h == NULL)
        return NULL;
    h->u.size = size;
    h->cls = BIG;
    return h + 1;
}

gx_slab_t *
gx_slab_new(void)
{
    size_t size = (sizeof(gx_slab_t) + GX_SLAB_ALIGN - 1) & ~(size_t)(GX_SLAB_ALIGN - 1);
    gx_slab_t *s;

    if (injected_failure())
        return NULL;
    /*
     * Cache lines of its own: a worker writes its list heads at every nghttp2
     * allocation, and the slabs are made one after the other on the main
     * thread.  Sharing a line with another worker's hot data cost a heartbeat
     * 3.90 instead of 2.85 us of CPU at 16x32 (the same code, only the heap's
     * layout differing; an unrelated allocation had hidden it in later builds).
     */
    s = aligned_alloc(GX_SLAB_ALIGN, size);
    if (s != NULL)
        memset(s, 0, size);
    return s;
}

void
gx_slab_free(gx_slab_t *s)
{
    if (s == NULL)
        return;
    for (unsigned c = 0; c < NCLASS; c++) {
        while (s->lists[c] != NULL) {
            hdr_t *h = s->lists[c];
            s->lists[c] = h->u.next;
            free(h);
        }
    }
    free(s);
}

void *
gx_slab_alloc(gx_slab_t *s, size_t size)
{
    unsigned c;
    hdr_t *h;

    if (injected_failure())
        return NULL;
    if (BYPASS || size > GX_SLAB_CLASS_MAX)
        return big_alloc(size);
    c = class_of(size);
    h = s->lists[c];
    if (h != NULL) {
        s->lists[c] = h->u.next;
        s->cached -= sizeof(*h) + class_size(c);
        return h + 1;
    }
    h = malloc(sizeof(*h) + class_size(c));
    if (h == NULL)
        return NULL;
    h->cls = c;
    return h + 1;
}

void *
gx_slab_calloc(gx_slab_t *s, size_t nmemb, size_t size)
{
    size_t n;
    void *p;

    if (__builtin_mul_overflow(nmemb, size, &n))
        return NULL;
    p = gx_slab_alloc(s, n);
    if (p != NULL)
        memset(p, 0, n);
    return p;
}

void
gx_slab_release(gx_slab_t *s, void *p)
{
    hdr_t *h;
    size_t bytes;

    if (p == NULL)
        return;
    h = (hdr_t *)p - 1;
    /* big blocks are never kept, the others while under the cap */
    bytes = h->cls == BIG ? SIZE_MAX : sizeof(*h) + class_size((unsigned)h->cls);
    if (bytes > GX_SLAB_CACHE_MAX - s->cached) {
        free(h);
        return;
    }
    h->u.next = s->lists[h->cls];
    s->lists[h->cls] = h;
    s->cached += bytes;
}

void *
gx_slab_realloc(gx_slab_t *s, void *p, size_t size)
{
    hdr_t *h;
    size_t old;
    void *q;

    if (p == NULL)
        return gx_slab_alloc(s, size);
    if (size == 0) {
        gx_slab_release(s, p);
        return NULL;
    }
    h = (hdr_t *)p - 1;
    if (!BYPASS && size <= GX_SLAB_CLASS_MAX && class_of(size) == h->cls)
        return p;
    q = gx_slab_alloc(s, size);
    if (q == NULL)
        return NULL;
    old = h->cls == BIG ? h->u.size : class_size((unsigned)h->cls);
    memcpy(q, p, old < size ? old : size);
    gx_slab_release(s, p);
    return q;
}

size_t
gx_slab_cached_bytes(const gx_slab_t *s)
{
    return s->cached;
}

/* ------------------------------------------------------------------------ */
/* nghttp2_mem                                                              */

static void *
mem_malloc(size_t size, void *s)
{
    return gx_slab_alloc(s, size);
}

static void
mem_free(void *p, void *s)
{
    gx_slab_release(s, p);
}

static void *
mem_calloc(size_t nmemb, size_t size, void *s)
{
    return gx_slab_calloc(s, nmemb, size);
}

static void *
mem_realloc(void *p, size_t size, void *s)
{
    return gx_slab_realloc(s, p, size);
}

void
gx_slab_mem(gx_slab_t *s, nghttp2_mem *out)
{
    out->mem_user_data = s;
    out->malloc = mem_malloc;
    out->free = mem_free;
    out->calloc = mem_calloc;
    out->realloc = mem_realloc;
}
