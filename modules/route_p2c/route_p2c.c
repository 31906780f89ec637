/* SPDX-License-Identifier: MIT */
/*
 * route_p2c: the routing policy "p2c", the power of two random choices.
 *
 * Two distinct eligible nodes are drawn at random and the job goes to the
 * less busy of the pair: lower load, then fewer jobs assigned by the pool,
 * then fewer jobs the node reports running.  Sampling only two nodes spreads
 * jobs almost as evenly as scanning them all for the least loaded, but does
 * not send every job submitted between two heartbeats to the same node, whose
 * reported load is stale until it heartbeats again.
 *
 * choose() may run on any thread.  Each thread draws from its own splitmix64
 * generator, seeded once from getrandom() without blocking, so there is no
 * shared state to lock.  The module owns nothing else; the core owns the
 * table the policy is registered in.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/random.h>
#include <time.h>

#include <galaxy/gx_module.h>

/* ------------------------------------------------------------------ randomness */

static __thread uint64_t rng_state;
static __thread int rng_seeded;

static uint64_t
splitmix64_next(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/*
 * GRND_NONBLOCK: choose() must never wait, even on a machine whose entropy
 * pool is not yet initialised.  The fallback only has to differ between
 * threads and runs, not to be secret: routing needs spread, not secrecy.
 */
static void
rng_seed(void)
{
    uint64_t seed = 0;
    struct timespec ts = {0, 0};

    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
        seed ^= (uint64_t)(uintptr_t)&rng_state;
    }
    rng_state = seed;
    rng_seeded = 1;
}

/* A number in [0, bound), bound >= 1; the modulo bias (bound / 2^64) is negligible. */
static size_t
rng_below(size_t bound)
{
    if (!rng_seeded)
        rng_seed();
    return (size_t)(splitmix64_next(&rng_state) % (uint64_t)bound);
}

/* ------------------------------------------------------------------ the policy */

/* 1 when node @p a is strictly less busy than node @p b. */
static int
less_busy(const gx_route_node_t *a, const gx_route_node_t *b)
{
    if (a->load != b->load)
        return a->load < b->load;
    if (a->assigned_jobs != b->assigned_jobs)
        return a->assigned_jobs < b->assigned_jobs;
    return a->running_jobs < b->running_jobs;
}

static size_t
p2c_choose(const gx_route_job_t *job, const gx_route_node_t *nodes, size_t n, double *scores,
           void *ctx)
{
    size_t first, second;

    if (scores != NULL)
        for (size_t i = 0; i < n; i++)
            scores[i] = 1.0 - nodes[i].load;
    if (n < 2)
        return 0;
    first = rng_below(n);
    /* draw from the n - 1 others: the pair is always two distinct nodes */
    second = rng_below(n - 1);
    if (second >= first)
        second++;
    /* an exact tie keeps the first draw, which is uniform; the lower index would not be */
    return less_busy(&nodes[second], &nodes[first]) ? second : first;
}

/* two nodes drawn at random is all it needs: the core need not judge every node */
static const gx_router_t p2c_router = {.name = "p2c", .choose = p2c_choose, .sample = 2};

/* ------------------------------------------------------------------ the module */

static int
p2c_init(gx_module_t *mod, const gx_mod_conf_t *conf, void **ctx)
{
    const char *k = gx_mod_conf_key(conf, 0);

    if (k != NULL) {
        gx_mod_log(mod, GX_LOG_ERROR, "%s: unknown key \"%s\" (route_p2c takes no settings)",
                   gx_mod_conf_where(conf, k), k);
        return -EINVAL;
    }
    *ctx = NULL;
    return gx_route_register(mod, &p2c_router, NULL);
}

static const gx_module_desc_t p2c_module = {
    .abi = GX_MODULE_ABI,
    .name = "route_p2c",
    .version = PACKAGE_VERSION,
    .edition = "community",
    .init = p2c_init,
};

GX_MODULE(p2c_module);
