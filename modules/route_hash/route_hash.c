/* SPDX-License-Identifier: MIT */
/*
 * route_hash: the routing policy "hash", consistent hashing of a job's
 * routing_key (its id when the submitter gave none) onto the eligible nodes.
 *
 * Rendezvous (highest random weight) hashing: every node gets the weight
 * hash(key, node id) and the heaviest node takes the job.  A key therefore
 * stays on its node for as long as that node is eligible, whichever other
 * nodes come and go; when a node joins, only the keys it now outweighs move,
 * about 1/N of them, and when one leaves only its own keys move.  There is no
 * ring to build or keep in step with the registry: each choice is one pass
 * over the candidates, with nothing shared between threads.
 *
 * The hash is FNV-1a over the key, a NUL separator (which neither string can
 * contain, so ("ab", "c") and ("a", "bc") differ) and the node id, then the
 * splitmix64 finaliser: FNV-1a alone lets the last bytes of a node id reach
 * the top bits, which decide the heaviest node, only through carries, and
 * ids like node-01, node-02 differ just there.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include <galaxy/gx_module.h>

#define FNV64_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV64_PRIME UINT64_C(0x100000001b3)

static uint64_t
fnv1a_update(uint64_t h, const char *s)
{
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= FNV64_PRIME;
    }
    return h;
}

static uint64_t
mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* The key's part of every weight: FNV-1a over the key and the separator. */
static uint64_t
key_state(const char *key)
{
    uint64_t h = fnv1a_update(FNV64_OFFSET, key);

    return h * FNV64_PRIME; /* the NUL separator: h ^= 0, then the multiply */
}

static uint64_t
weight(uint64_t key_h, const char *node_id)
{
    return mix64(fnv1a_update(key_h, node_id));
}

/* The top 53 bits, so that the double is exact and stays below 1. */
static double
unit_interval(uint64_t h)
{
    return (double)(h >> 11) * 0x1.0p-53;
}

static size_t
hash_choose(const gx_route_job_t *job, const gx_route_node_t *nodes, size_t n, double *scores,
            void *ctx)
{
    const char *key = job->routing_key;
    uint64_t key_h, w, best_w = 0;
    size_t best = 0;

    if (key == NULL || key[0] == '\0')
        key = job->id != NULL ? job->id : "";
    key_h = key_state(key);
    for (size_t i = 0; i < n; i++) {
        w = weight(key_h, nodes[i].id != NULL ? nodes[i].id : "");
        if (scores != NULL)
            scores[i] = unit_interval(w);
        if (i == 0 || w > best_w) {
            best = i;
            best_w = w;
        }
    }
    return best;
}

static const gx_router_t hash_router = {.name = "hash", .choose = hash_choose};
/* the name DESIGN.md gives the policy: the same one */
static const gx_router_t consistent_hash_router = {.name = "consistent_hash",
                                                   .choose = hash_choose};

static int
hash_init(gx_module_t *mod, const gx_mod_conf_t *conf, void **ctx)
{
    const char *k = gx_mod_conf_key(conf, 0);
    int rv;

    if (k != NULL) {
        gx_mod_log(mod, GX_LOG_ERROR, "%s: unknown key \"%s\" (route_hash takes no settings)",
                   gx_mod_conf_where(conf, k), k);
        return -EINVAL;
    }
    *ctx = NULL;
    rv = gx_route_register(mod, &hash_router, NULL);
    return rv != 0 ? rv : gx_route_register(mod, &consistent_hash_router, NULL);
}

static const gx_module_desc_t hash_module = {
    .abi = GX_MODULE_ABI,
    .name = "route_hash",
    .version = PACKAGE_VERSION,
    .edition = "community",
    .init = hash_init,
};

GX_MODULE(hash_module);
