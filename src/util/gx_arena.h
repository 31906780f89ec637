/* SPDX-License-Identifier: MIT */
/**
 * @file gx_arena.h
 * Region allocator: many small allocations, one free.  Used for everything
 * that lives exactly as long as a call or a connection.  Not thread-safe: an
 * arena belongs to one thread.
 */
#ifndef GX_UTIL_GX_ARENA_H
#define GX_UTIL_GX_ARENA_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

typedef struct gx_arena_s gx_arena_t;

/** A new arena whose first block holds @p size bytes. @return NULL when out of memory */
gx_arena_t *gx_arena_new(size_t size);
/** Runs the cleanups (last added first) and frees every block. NULL is a no-op. */
void gx_arena_free(gx_arena_t *a);
/** @p size bytes aligned for any type, or NULL when out of memory. */
void *gx_arena_alloc(gx_arena_t *a, size_t size);
/** Zeroed gx_arena_alloc(). */
void *gx_arena_calloc(gx_arena_t *a, size_t size);
/** A NUL-terminated copy of @p len bytes of @p s, or NULL. */
char *gx_arena_strndup(gx_arena_t *a, const char *s, size_t len);
/** Runs @p fn(@p arg) when the arena is freed. @return 0 or GX_ENOMEM */
int gx_arena_cleanup_add(gx_arena_t *a, void (*fn)(void *), void *arg);
/** Frees the arenas the calling thread keeps for reuse (call before a thread ends). */
void gx_arena_cache_flush(void);
/** Bytes handed out so far (for limits and metrics). */
size_t gx_arena_used(const gx_arena_t *a);
/** A protobuf-c allocator on @p a whose free does nothing. */
void gx_arena_pb_allocator(gx_arena_t *a, ProtobufCAllocator *out);

/**
 * Test hook: when > 0, the n-th following arena allocation (block or cleanup)
 * fails.  Lets tests prove that out of memory fails a call, not the process.
 */
extern __thread long gx__arena_fail_at;

#endif /* GX_UTIL_GX_ARENA_H */
