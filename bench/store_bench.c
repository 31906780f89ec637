/* SPDX-License-Identifier: MIT */
/*
 * Group-commit benchmark of the store (src/store/gx_store.c): T threads each
 * submit M single-put batches of S payload bytes, keeping at most W of their
 * own batches in flight (W = 1: each thread waits for every done before the
 * next submit, like a client with one call at a time), and the run ends when
 * every done has been called.  Prints batches per second, commits, batches
 * per commit and the slowest commit.  The store lives in a fresh temporary
 * directory (or -d DIR) on the file system that holds it: run it where the
 * daemon's data directory would be.
 *
 *   make bench/gx_store_bench
 *   bench/gx_store_bench [-t threads] [-m batches per thread] [-s bytes]
 *                        [-w window] [-b max_batch] [-d dir]
 */
#include "config.h"

#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/gx_store.h"
#include "util/gx_clock.h"
#include "util/gx_error.h"
#include "util/gx_log.h"

typedef struct {
    unsigned threads, per_thread, window, max_batch;
    size_t size;
    const char *dir;
} bench_opts_t;

/* One submitting thread and the batches it has in flight. */
typedef struct {
    gx_store_t *st;
    const bench_opts_t *o;
    unsigned id;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned inflight, done, failed;
    int submit_err, started;
} bench_thread_t;

static void
bench_done(int status, void *arg)
{
    bench_thread_t *t = arg;

    pthread_mutex_lock(&t->mu);
    t->inflight--;
    t->done++;
    t->failed += status != 0;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void *
bench_thread_main(void *arg)
{
    bench_thread_t *t = arg;
    char key[32], *val;
    gx_store_op_t op;

    val = malloc(t->o->size > 0 ? t->o->size : 1);
    if (val == NULL) {
        t->submit_err = GX_ENOMEM;
        return NULL;
    }
    memset(val, 'v', t->o->size);
    for (unsigned i = 0; i < t->o->per_thread && t->submit_err == 0; i++) {
        pthread_mutex_lock(&t->mu);
        while (t->inflight >= t->o->window)
            pthread_cond_wait(&t->cv, &t->mu);
        t->inflight++;
        pthread_mutex_unlock(&t->mu);
        snprintf(key, sizeof(key), "%04u-%010u", t->id, i);
        op = (gx_store_op_t){GX_STORE_NODES, 0, key, strlen(key), val, t->o->size};
        t->submit_err = gx_store_submit(t->st, &op, 1, bench_done, t);
    }
    pthread_mutex_lock(&t->mu);
    while (t->submit_err == 0 && t->inflight > 0)
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    free(val);
    return NULL;
}

static int
rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    return remove(path);
}

static int
bench_parse(int argc, char **argv, bench_opts_t *o)
{
    int c;

    *o = (bench_opts_t){8, 5000, 1, 4096, 256, NULL};
    while ((c = getopt(argc, argv, "t:m:s:w:b:d:")) != -1) {
        switch (c) {
        case 't':
            o->threads = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'm':
            o->per_thread = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 's':
            o->size = strtoul(optarg, NULL, 10);
            break;
        case 'w':
            o->window = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'b':
            o->max_batch = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'd':
            o->dir = optarg;
            break;
        default:
            return -1;
        }
    }
    return o->threads > 0 && o->window > 0 && o->max_batch > 0 ? 0 : -1;
}

/* Runs the threads against @p st. @return batches failed or not submitted */
static unsigned
bench_run(gx_store_t *st, const bench_opts_t *o, bench_thread_t *t, pthread_t *th)
{
    unsigned bad = 0;

    for (unsigned i = 0; i < o->threads; i++) {
        t[i] = (bench_thread_t){.st = st, .o = o, .id = i};
        pthread_mutex_init(&t[i].mu, NULL);
        pthread_cond_init(&t[i].cv, NULL);
    }
    for (unsigned i = 0; i < o->threads; i++) {
        t[i].started = pthread_create(&th[i], NULL, bench_thread_main, &t[i]) == 0;
        if (!t[i].started)
            t[i].submit_err = GX_ENOMEM;
    }
    for (unsigned i = 0; i < o->threads; i++) {
        if (t[i].started)
            pthread_join(th[i], NULL);
        if (t[i].submit_err != 0)
            fprintf(stderr, "thread %u: submit: %s\n", i, gx_strerror(t[i].submit_err));
        bad += t[i].failed + (o->per_thread - t[i].done);
        pthread_cond_destroy(&t[i].cv);
        pthread_mutex_destroy(&t[i].mu);
    }
    return bad;
}

int
main(int argc, char **argv)
{
    char tmp[] = "/tmp/gx-store-bench-XXXXXX", err[256];
    bench_thread_t *t = NULL;
    pthread_t *th = NULL;
    gx_store_stats_t s;
    gx_store_opts_t so;
    gx_store_t *st = NULL;
    bench_opts_t o;
    uint64_t t0, ns;
    unsigned bad;
    int rc = 1;

    if (bench_parse(argc, argv, &o) != 0) {
        fprintf(stderr,
                "usage: %s [-t threads] [-m batches per thread] [-s bytes] "
                "[-w window] [-b max_batch] [-d dir]\n",
                argv[0]);
        return 2;
    }
    gx_log_set_level(GX_LOG_WARN);
    if (o.dir == NULL && (o.dir = mkdtemp(tmp)) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    gx_store_opts_init(&so);
    so.max_batch = o.max_batch;
    t = calloc(o.threads, sizeof(*t));
    th = calloc(o.threads, sizeof(*th));
    if (t == NULL || th == NULL || gx_store_open(o.dir, &so, &st, err, sizeof(err)) != 0) {
        fprintf(stderr, "cannot start: %s\n", t == NULL || th == NULL ? "out of memory" : err);
        goto out;
    }
    t0 = gx_now_ns();
    bad = bench_run(st, &o, t, th);
    ns = gx_now_ns() - t0;
    gx_store_stats(st, &s);
    printf("threads=%u batches=%llu payload=%zu window=%u max_batch=%u failed=%u\n", o.threads,
           (unsigned long long)s.batches, o.size, o.window, o.max_batch, bad);
    printf("%.0f batches/s  %llu commits  %.1f batches/commit  %.2f ms/commit max  %.2f s\n",
           (double)s.batches * 1e9 / (double)ns, (unsigned long long)s.commits,
           s.commits ? (double)s.batches / (double)s.commits : 0.0, (double)s.commit_ns_max / 1e6,
           (double)ns / 1e9);
    rc = bad == 0 ? 0 : 1;
out:
    gx_store_close(st);
    if (o.dir == tmp)
        nftw(tmp, rm_entry, 4, FTW_DEPTH | FTW_PHYS);
    free(th);
    free(t);
    return rc;
}
