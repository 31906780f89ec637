/* SPDX-License-Identifier: MIT */
/*
 * Per-thread counter blocks.  Each thread counts into its own block with
 * relaxed atomics; a reader adds them up.  Blocks are registered once and
 * never freed before exit, so a reader may walk them at any time.
 */
#include "config.h"

#include "util/gx_stats.h"

#include <pthread.h>
#include <string.h>

#define MAX_BLOCKS 1024

static gx_stats_t fallback;
static gx_stats_t *blocks[MAX_BLOCKS] = {&fallback};
static unsigned n_blocks = 1;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

__thread gx_stats_t *gx__stats = &fallback;

void
gx_stats_bind(gx_stats_t *s)
{
    pthread_mutex_lock(&lock);
    for (unsigned i = 0; i < n_blocks; i++)
        if (blocks[i] == s)
            goto out;
    /* past MAX_BLOCKS the thread shares the fallback block: still counted */
    if (n_blocks < MAX_BLOCKS) {
        blocks[n_blocks] = s;
        __atomic_store_n(&n_blocks, n_blocks + 1, __ATOMIC_RELEASE);
    } else
        s = &fallback;
out:
    pthread_mutex_unlock(&lock);
    gx__stats = s;
}

void
gx_stats_sum(gx_stats_t *out)
{
    unsigned n = __atomic_load_n(&n_blocks, __ATOMIC_ACQUIRE);

    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < n; i++) {
        gx_stats_t *b = __atomic_load_n(&blocks[i], __ATOMIC_ACQUIRE);
        for (int k = 0; k < GX_CTR_MAX; k++)
            out->c[k] += __atomic_load_n(&b->c[k], __ATOMIC_RELAXED);
    }
}
