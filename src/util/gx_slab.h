/* SPDX-License-Identifier: MIT */
/**
 * @file gx_slab.h
 * Per-worker cache of freed heap blocks, sorted by size class, for nghttp2's
 * many short-lived allocations (streams, outbound items, header copies, frame
 * buffers).  An allocation pops a block off its class's free list; a release
 * pushes it back.  Only malloc() and free() are called when a list is empty
 * or the cache is full.
 *
 * Classes: 16-byte steps up to 128 bytes, then four steps per doubling (160,
 * 192, 224, 256, 320, ...) up to GX_SLAB_CLASS_MAX bytes.  Bigger requests go
 * straight to malloc() and free().  Every block is 16-byte aligned.
 *
 * Cap: a slab keeps at most GX_SLAB_CACHE_MAX bytes (2 MiB, counting each
 * block's header) of free blocks; what is released beyond that goes back to
 * free(), so an idle worker holds no more than that.
 *
 * Checkers: built with AddressSanitizer (or with -DGX_SLAB_NO_CACHE) every
 * call goes to malloc()/free() with the exact size, so use after free and
 * overflows are caught as without the slab.  Valgrind still sees every block
 * come from malloc() and leaks at exit, but not a use after free of a block
 * that sits in the cache: build with -DGX_SLAB_NO_CACHE for that.
 *
 * @note thread: a slab belongs to one worker thread, which alone calls every
 * function on it (nghttp2 sessions using it live on that thread).  No locks.
 */
#ifndef GX_UTIL_GX_SLAB_H
#define GX_UTIL_GX_SLAB_H

#include <stddef.h>

#include <nghttp2/nghttp2.h>

/** The largest class, in usable bytes: an nghttp2 frame buffer (16 KiB + 10) fits. */
#define GX_SLAB_CLASS_MAX (20 * 1024)
/** The most bytes of free blocks a slab keeps (see gx_slab_cached_bytes()). */
#define GX_SLAB_CACHE_MAX (2 * 1024 * 1024)

typedef struct gx_slab_s gx_slab_t;

/** A new, empty slab for the calling thread. @return NULL when out of memory */
gx_slab_t *gx_slab_new(void);
/**
 * Returns every cached block to free() and frees the slab.  Every block handed
 * out must have been released before.  NULL is a no-op.
 */
void gx_slab_free(gx_slab_t *s);

/**
 * Fills @p out with functions that allocate from @p s, for
 * nghttp2_session_server_new3().  @p s must outlive every session using it.
 */
void gx_slab_mem(gx_slab_t *s, nghttp2_mem *out);

/**
 * @p size bytes (0 is allowed), 16-byte aligned, uninitialised, owned by the
 * caller until gx_slab_release() on the same slab.  @return NULL when out of memory
 */
void *gx_slab_alloc(gx_slab_t *s, size_t size);
/**
 * Zeroed gx_slab_alloc() of @p nmemb * @p size bytes.
 * @return NULL when out of memory or when the product overflows
 */
void *gx_slab_calloc(gx_slab_t *s, size_t nmemb, size_t size);
/**
 * As realloc(): @p p NULL allocates; @p size 0 releases @p p and returns
 * NULL.  Within the same class @p p itself comes back.  Otherwise the first
 * min(old, @p size) bytes are moved to a new block and @p p is released.
 * @return the block, or NULL when out of memory (then @p p is left as it was)
 */
void *gx_slab_realloc(gx_slab_t *s, void *p, size_t size);
/** Gives back @p p (from this slab, or NULL: a no-op). */
void gx_slab_release(gx_slab_t *s, void *p);

/** Bytes of free blocks cached, headers included; never above GX_SLAB_CACHE_MAX. */
size_t gx_slab_cached_bytes(const gx_slab_t *s);

/**
 * Test hook: when > 0, the n-th following allocation (gx_slab_new(), alloc,
 * calloc, or a realloc that needs a new block) fails.  Lets tests prove that
 * out of memory inside nghttp2 fails a call, not the process.
 */
extern __thread long gx__slab_fail_at;

#endif /* GX_UTIL_GX_SLAB_H */
