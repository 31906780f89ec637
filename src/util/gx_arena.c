/* SPDX-License-Identifier: MIT */
/*
 * Region allocator.  Bumps a pointer through a chain of blocks; a request
 * larger than a quarter of the block size gets a block of its own so that big
 * messages do not waste the rest of a block.  Cleanups run in reverse order on
 * gx_arena_free().
 */
#include "config.h"

#include "util/gx_arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/gx_error.h"

#define ALIGN 16

typedef struct block_s {
    struct block_s *next;
    size_t size, used;
    _Alignas(ALIGN) unsigned char data[];
} block_t;

typedef struct cleanup_s {
    struct cleanup_s *next;
    void (*fn)(void *);
    void *arg;
} cleanup_t;

struct gx_arena_s {
    block_t *head;
    block_t *first; /* the block made with the arena: kept when it is recycled */
    cleanup_t *cleanups;
    size_t block_size, total;
    struct gx_arena_s *cached_next; /* in the thread's cache */
};

__thread long gx__arena_fail_at;

/*
 * Freed arenas are kept per thread for the next gx_arena_new() of the same
 * size: a call's arena is then two pointer moves, not two mallocs.  The
 * cache is a list bounded in bytes (4 MiB a thread), so that it holds every
 * call a worker parks while a commit is synced (1,024 calls of 4 KiB at 256
 * connections x 4 streams on two workers); 64 arenas were too few there and
 * every other call went to malloc's slow path.  Not under AddressSanitizer,
 * which must see every use after free.
 */
#if defined(__SANITIZE_ADDRESS__)
#define CACHE_BYTES 0
#else
#define CACHE_BYTES (4u << 20)
#endif
static __thread gx_arena_t *cache;
static __thread size_t cache_bytes;

static int
injected_failure(void)
{
    return gx__arena_fail_at > 0 && --gx__arena_fail_at == 0;
}

static block_t *
block_new(size_t size)
{
    block_t *b;

    if (injected_failure() || size > SIZE_MAX - sizeof(*b))
        return NULL;
    b = malloc(sizeof(*b) + size);
    if (b == NULL)
        return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

gx_arena_t *
gx_arena_new(size_t size)
{
    gx_arena_t *a;

    if (size < 256)
        size = 256;
    if (injected_failure())
        return NULL;
    if (cache != NULL && cache->block_size == size) {
        a = cache;
        cache = a->cached_next;
        cache_bytes -= a->block_size;
        return a;
    }
    a = malloc(sizeof(*a));
    if (a == NULL)
        return NULL;
    a->head = block_new(size);
    if (a->head == NULL) {
        free(a);
        return NULL;
    }
    a->first = a->head;
    a->cleanups = NULL;
    a->block_size = size;
    a->total = 0;
    return a;
}

void
gx_arena_cache_flush(void)
{
    while (cache != NULL) {
        gx_arena_t *a = cache;
        cache = a->cached_next;
        free(a->first);
        free(a);
    }
    cache_bytes = 0;
}

void
gx_arena_free(gx_arena_t *a)
{
    if (a == NULL)
        return;
    while (a->cleanups != NULL) {
        cleanup_t *c = a->cleanups;
        a->cleanups = c->next;
        c->fn(c->arg);
    }
    while (a->head != NULL) {
        block_t *b = a->head;
        a->head = b->next;
        if (b != a->first)
            free(b);
    }
    if (cache_bytes + a->block_size <= CACHE_BYTES &&
        (cache == NULL || cache->block_size == a->block_size)) {
        a->first->next = NULL;
        a->first->used = 0;
        a->total = 0;
        a->head = a->first;
        a->cached_next = cache;
        cache = a;
        cache_bytes += a->block_size;
        return;
    }
    free(a->first);
    free(a);
}

void *
gx_arena_alloc(gx_arena_t *a, size_t size)
{
    block_t *b = a->head;
    size_t need = (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    void *p;

    if (need < size)
        return NULL;
    if (b->size - b->used < need) {
        if (need > a->block_size / 4) {
            /* a big one gets its own block, behind the current one */
            b = block_new(need);
            if (b == NULL)
                return NULL;
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b = block_new(a->block_size);
            if (b == NULL)
                return NULL;
            b->next = a->head;
            a->head = b;
        }
    }
    p = b->data + b->used;
    b->used += need;
    a->total += need;
    return p;
}

void *
gx_arena_calloc(gx_arena_t *a, size_t size)
{
    void *p = gx_arena_alloc(a, size);

    if (p != NULL)
        memset(p, 0, size);
    return p;
}

char *
gx_arena_strndup(gx_arena_t *a, const char *s, size_t len)
{
    char *p = gx_arena_alloc(a, len + 1);

    if (p == NULL)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

int
gx_arena_cleanup_add(gx_arena_t *a, void (*fn)(void *), void *arg)
{
    cleanup_t *c;

    if (injected_failure())
        return GX_ENOMEM;
    c = gx_arena_alloc(a, sizeof(*c));
    if (c == NULL)
        return GX_ENOMEM;
    c->fn = fn;
    c->arg = arg;
    c->next = a->cleanups;
    a->cleanups = c;
    return 0;
}

size_t
gx_arena_used(const gx_arena_t *a)
{
    return a->total;
}

static void *
pb_alloc(void *data, size_t size)
{
    return gx_arena_alloc(data, size);
}

static void
pb_free(void *data, void *p)
{
    /* freed with the arena */
}

void
gx_arena_pb_allocator(gx_arena_t *a, ProtobufCAllocator *out)
{
    out->alloc = pb_alloc;
    out->free = pb_free;
    out->allocator_data = a;
}
