/* SPDX-License-Identifier: MIT */
/*
 * galaxy-poold: the pool registry and discovery server.  main() only wires
 * the parts together, in order: flags, configuration, modules, dispatcher,
 * server (listeners and workers), ready file, run until a signal drains it,
 * then teardown in reverse.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/gx_access.h"
#include "core/gx_conf.h"
#include "core/gx_jobs.h"
#include "core/gx_keys.h"
#include "core/gx_router.h"
#include "core/gx_svc_jobs.h"
#include "core/gx_metrics.h"
#include "core/gx_mod.h"
#include "core/gx_phase.h"
#include "core/gx_reg.h"
#include "core/gx_svc_discovery.h"
#include "core/gx_svc_health.h"
#include "core/gx_svc_pooladmin.h"
#include "core/gx_svc_reflection.h"
#include "core/gx_svc_registry.h"
#include "store/gx_store.h"
#include "transport/gx_server.h"
#include "util/gx_error.h"
#include "util/gx_log.h"

#define EXIT_USAGE 2

typedef struct {
    const char *config;
    const char *ready_file;
    int test_only;
    /* overrides, applied over the file */
    const char *listen, *tls_listen, *tls_cert, *tls_key, *tls_client_ca, *admin_listen;
    const char *data_dir, *module_dir, *log_level, *workers;
} flags_t;

static const gx_module_desc_t *const builtin_modules[] = {&gx_svc_health_module,
                                                            &gx_svc_reflection_module,
                                                            &gx_svc_registry_module,
                                                            &gx_svc_discovery_module,
                                                            &gx_svc_pooladmin_module,
                                                            &gx_svc_jobs_module,
                                                            &gx_route_least_loaded_module, NULL};

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: galaxy-poold [options]\n"
            "  -c, --config FILE        configuration file (YAML)\n"
            "  -t, --test-config        check the configuration and exit\n"
            "      --listen HOST:PORT   cleartext h2c listener (port 0: any free port)\n"
            "      --tls-listen HOST:PORT  TLS listener\n"
            "      --tls-cert FILE      server certificate chain (PEM)\n"
            "      --tls-key FILE       server private key (PEM)\n"
            "      --tls-client-ca FILE CA bundle that verifies client certificates (mTLS)\n"
            "      --admin-listen HOST:PORT  admin HTTP: /metrics, /healthz, /readyz\n"
            "      --data-dir DIR       state directory\n"
            "      --module-dir DIR     where bare module names are found\n"
            "      --workers N          worker threads (0: one per core)\n"
            "      --log-level LEVEL    error, warn, info or debug\n"
            "      --ready-file FILE    write the bound addresses here once listening\n"
            "  -v, --version            print the version and exit\n"
            "  -h, --help               print this help and exit\n"
            "signals: INT, TERM drain and stop (exit 0); USR1 opens the access log file again;\n"
            "  HUP reloads the TLS certificate, key and client CA from their files\n");
}

/* @return -1 to go on, else the exit status */
static int
flags_parse(int argc, char **argv, flags_t *f)
{
    enum { O_LISTEN = 256, O_TLS_LISTEN, O_TLS_CERT, O_TLS_KEY, O_TLS_CA, O_ADMIN, O_DATA,
           O_MODDIR, O_WORKERS, O_LOGLEVEL, O_READY };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"test-config", no_argument, NULL, 't'},
        {"listen", required_argument, NULL, O_LISTEN},
        {"tls-listen", required_argument, NULL, O_TLS_LISTEN},
        {"tls-cert", required_argument, NULL, O_TLS_CERT},
        {"tls-key", required_argument, NULL, O_TLS_KEY},
        {"tls-client-ca", required_argument, NULL, O_TLS_CA},
        {"admin-listen", required_argument, NULL, O_ADMIN},
        {"data-dir", required_argument, NULL, O_DATA},
        {"module-dir", required_argument, NULL, O_MODDIR},
        {"workers", required_argument, NULL, O_WORKERS},
        {"log-level", required_argument, NULL, O_LOGLEVEL},
        {"ready-file", required_argument, NULL, O_READY},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "c:tvh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': f->config = optarg; break;
        case 't': f->test_only = 1; break;
        case O_LISTEN: f->listen = optarg; break;
        case O_TLS_LISTEN: f->tls_listen = optarg; break;
        case O_TLS_CERT: f->tls_cert = optarg; break;
        case O_TLS_KEY: f->tls_key = optarg; break;
        case O_TLS_CA: f->tls_client_ca = optarg; break;
        case O_ADMIN: f->admin_listen = optarg; break;
        case O_DATA: f->data_dir = optarg; break;
        case O_MODDIR: f->module_dir = optarg; break;
        case O_WORKERS: f->workers = optarg; break;
        case O_LOGLEVEL: f->log_level = optarg; break;
        case O_READY: f->ready_file = optarg; break;
        case 'v': printf("galaxy-poold %s (module ABI %d)\n", PACKAGE_VERSION, GX_MODULE_ABI);
                  return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "galaxy-poold: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    return -1;
}

static const char *
default_config(void)
{
    static const char *const candidates[] = {
        GX_SRCDIR "/etc/galaxy-poold.yaml",
        GX_SYSCONFDIR "/galaxy-poold.yaml",
    };

    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++)
        if (access(candidates[i], R_OK) == 0)
            return candidates[i];
    return NULL;
}

/* Flags override the file.  @return 0 or GX_ECONF with @err set */
static int
flags_apply(const flags_t *f, gx_conf_t *conf, char *err, size_t errlen)
{
    struct { const char *flag, *value; char **slot; } strs[] = {
        {"--listen", f->listen, &conf->listen},
        {"--tls-listen", f->tls_listen, &conf->tls_listen},
        {"--tls-cert", f->tls_cert, &conf->tls_cert},
        {"--tls-key", f->tls_key, &conf->tls_key},
        {"--tls-client-ca", f->tls_client_ca, &conf->tls_client_ca},
        {"--admin-listen", f->admin_listen, &conf->admin_listen},
        {"--data-dir", f->data_dir, &conf->data_dir},
        {"--module-dir", f->module_dir, &conf->module_dir},
    };
    char *end;

    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        if (strs[i].value == NULL)
            continue;
        if (gx_conf_set_str(strs[i].slot, strs[i].value[0] ? strs[i].value : NULL) != 0)
            return GX_ENOMEM;
    }
    if (f->log_level != NULL) {
        conf->log_level = gx_log_level_parse(f->log_level);
        if (conf->log_level < 0) {
            snprintf(err, errlen, "--log-level: \"%s\" is not one of error, warn, info, debug",
                     f->log_level);
            return GX_ECONF;
        }
    }
    if (f->workers != NULL) {
        unsigned long n = strtoul(f->workers, &end, 10);
        if (*f->workers == '\0' || *end != '\0' || n > 1024 || f->workers[0] == '-') {
            snprintf(err, errlen, "--workers: \"%s\" is not a number from 0 to 1024", f->workers);
            return GX_ECONF;
        }
        conf->workers = (unsigned)n;
    }
    return 0;
}

static int
config_read(const flags_t *f, gx_conf_t *conf)
{
    const char *file = f->config ? f->config : default_config();
    char err[512] = "";
    int rv;

    rv = gx_conf_init(conf);
    if (rv == 0 && file != NULL)
        rv = gx_conf_load(conf, file, err, sizeof(err));
    if (rv == 0)
        rv = flags_apply(f, conf, err, sizeof(err));
    if (rv == 0)
        rv = gx_conf_check(conf, err, sizeof(err));
    if (rv != 0) {
        fprintf(stderr, "galaxy-poold: %s\n", err[0] ? err : gx_strerror(rv));
        return rv;
    }
    gx_log_set_level(conf->log_level);
    return 0;
}

/* mkdir -p */
static int
mkdirs(const char *path, mode_t mode)
{
    char buf[4096];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, mode) != 0 && errno != EEXIST ? -1 : 0;
}

static int
data_dir_open(const gx_conf_t *conf)
{
    if (mkdirs(conf->data_dir, 0750) != 0) {
        fprintf(stderr, "galaxy-poold: data_dir %s: %s\n", conf->data_dir, strerror(errno));
        return GX_EIO;
    }
    if (access(conf->data_dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "galaxy-poold: data_dir %s is not writable: %s\n", conf->data_dir,
                strerror(errno));
        return GX_EIO;
    }
    return 0;
}

/* Writes the bound addresses, atomically (scripts poll for the file). */
static int
ready_file_write(const char *path, const gx_server_t *srv)
{
    char tmp[4096];
    static const char *const kinds[] = {"h2c", "tls", "admin"};
    FILE *fp;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fp = fopen(tmp, "w");
    if (fp == NULL)
        goto fail;
    for (size_t i = 0; i < 3; i++)
        if (gx_server_addr(srv, kinds[i]) != NULL)
            fprintf(fp, "%s=%s\n", kinds[i], gx_server_addr(srv, kinds[i]));
    if (fclose(fp) != 0 || rename(tmp, path) != 0)
        goto fail;
    return 0;
fail:
    gx_log(GX_LOG_ERROR, "cannot write ready file path=%s reason=\"%s\"", path, strerror(errno));
    return GX_EIO;
}

static int
private_pool(gx_reg_pool_t *p, void *arg)
{
    gx_pb_pool_t pb;

    gx_reg_pool_fill(p, &pb);
    if (pb.visibility != GALAXY__POOL__V1__VISIBILITY__VISIBILITY_PRIVATE)
        return 0;
    snprintf(arg, 512, "pool \"%s\" is private, but no module enforces access: load an "
             "authentication module (auth_apikey, auth_mtls) and rbac", pb.name);
    return 1;
}

/* Around the done callbacks of one commit: its calls go to each worker together, and the
 * registry's writes to its keeper */
static void
commit_done_begin(void)
{
    gx_resume_hold();
    gx_reg_done_hold();
}

static void
commit_done_end(void)
{
    gx_reg_done_release();
    gx_resume_release();
}

/*
 * The store in data_dir, then the registry rebuilt from it and the API keys.
 * A private pool with nobody to keep outsiders out is a start-up error.
 */
static int
state_open(const gx_conf_t *conf, const gx_mods_t *mods, gx_store_t **st, gx_reg_t **reg)
{
    char err[512] = "";
    gx_store_opts_t sopts;
    int rv;

    for (size_t i = 0; i < conf->registry.n_pools && !gx_access_enforced(mods); i++)
        if (conf->registry.pools[i].visibility ==
            GALAXY__POOL__V1__VISIBILITY__VISIBILITY_PRIVATE) {
            fprintf(stderr, "galaxy-poold: %s: pool \"%s\" is private, but no module "
                    "enforces access: load an authentication module (auth_apikey, auth_mtls) "
                    "and rbac\n", conf->registry.pools[i].where, conf->registry.pools[i].name);
            return GX_ECONF;
        }
    for (size_t i = 0; i < conf->registry.n_pools; i++) {
        const gx_reg_pool_conf_t *pc = &conf->registry.pools[i];
        if (pc->routing_policy != NULL && pc->routing_policy[0] &&
            gx_router_find(pc->routing_policy, NULL) == NULL) {
            gx_router_names(err, sizeof(err));
            fprintf(stderr, "galaxy-poold: %s: pool \"%s\": no routing policy \"%s\" is loaded "
                    "(loaded: %s)\n", pc->where, pc->name, pc->routing_policy, err);
            return GX_ECONF;
        }
    }
    gx_store_opts_init(&sopts);
    sopts.map_size_max = (uint64_t)conf->data_max_mb << 20;
    if (sopts.map_size > sopts.map_size_max)
        sopts.map_size = sopts.map_size_max;
    sopts.done_begin = commit_done_begin;
    sopts.done_end = commit_done_end;
    rv = gx_store_open(conf->data_dir, &sopts, st, err, sizeof(err));
    if (rv == 0)
        rv = gx_reg_open(*st, &conf->registry, reg, err, sizeof(err));
    if (rv == 0)
        rv = gx_keys_open(*st, conf->data_dir, err, sizeof(err));
    if (rv == 0)
        rv = gx_jobs_open(*st, *reg, &conf->jobs, err, sizeof(err));
    if (rv == 0 && !gx_access_enforced(mods)) {
        gx_reg_thread_online();
        gx_reg_read_begin();
        gx_reg_pool_foreach(*reg, private_pool, err);
        if (err[0] != '\0')
            rv = GX_ECONF;
        gx_reg_read_end();
    }
    if (rv != 0)
        fprintf(stderr, "galaxy-poold: %s\n", err[0] ? err : gx_strerror(rv));
    return rv;
}

/* Commits what is queued, applies it to memory, then closes both. */
static void
state_close(gx_store_t *st, gx_reg_t *reg)
{
    gx_reg_stop(reg);
    gx_store_shutdown(st);
    gx_reg_close(reg);
    gx_jobs_close();
    gx_store_close(st);
    gx_keys_close();
}

static int
ready(void *arg)
{
    return 1; /* listeners are bound, the store is open and the registry loaded before we serve */
}

static int
serve(const flags_t *f, gx_conf_t *conf, gx_mods_t *mods)
{
    gx_server_conf_t sc = {
        .workers = conf->workers, .listen = conf->listen, .tls_listen = conf->tls_listen,
        .tls_cert = conf->tls_cert, .tls_key = conf->tls_key,
        .tls_client_ca = conf->tls_client_ca, .admin_listen = conf->admin_listen,
        .limits = conf->limits,
    };
    gx_admin_handler_t admin = {.metrics = gx_metrics_render, .ready = ready};
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    gx_server_t *srv = NULL;
    char err[512] = "";
    int rv;

    if (sc.workers == 0)
        sc.workers = cores > 0 ? (unsigned)cores : 1;
    rv = gx_phase_init(mods, sc.workers, conf->access_log);
    if (rv != 0) {
        fprintf(stderr, "galaxy-poold: access_log %s: %s\n", conf->access_log, gx_strerror(rv));
        goto out;
    }
    rv = gx_server_new(&sc, gx_phase_dispatch(), &admin, &srv, err, sizeof(err));
    if (rv != 0) {
        fprintf(stderr, "galaxy-poold: %s\n", err);
        goto out;
    }
    gx_phase_set_server(srv);
    gx_jobs_set_server(srv);
    rv = gx_server_start(srv);
    if (rv == 0 && f->ready_file != NULL)
        rv = ready_file_write(f->ready_file, srv);
    if (rv == 0)
        gx_log(GX_LOG_INFO, "galaxy-poold %s serving h2c=%s tls=%s admin=%s workers=%u "
               "data_dir=%s", PACKAGE_VERSION, gx_server_addr(srv, "h2c") ?: "off",
               gx_server_addr(srv, "tls") ?: "off", gx_server_addr(srv, "admin") ?: "off",
               sc.workers, conf->data_dir);
    if (rv != 0)
        gx_server_drain(srv);
    gx_server_run(srv);
    gx_reg_stop(gx__reg); /* no more resumes: the workers go with the server */
    gx_jobs_set_server(NULL);
    if (rv == 0)
        gx_log(GX_LOG_INFO, "galaxy-poold stopped");
out:
    gx_server_free(srv);
    gx_phase_deinit();
    return rv;
}

/*
 * Blocks of up to 64 MiB stay in the heap instead of each being a fresh
 * mmap() whose munmap() shoots down TLBs on every core, and free memory is
 * kept for reuse.  This mattered while the registry copied whole indexes
 * every keeper round (Register at 64x16: 40 us of CPU a call without it,
 * 26-30 with it); since the indexes are chunked it changes no throughput we
 * measure, and RSS after 1,000,000 Registers is 971 bytes a node with it,
 * 995 without (bench/memory.sh, 8eac137).
 */
static void
malloc_tune(void)
{
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
}

int
main(int argc, char **argv)
{
    flags_t flags = {0};
    gx_conf_t conf;
    gx_mods_t mods;
    gx_store_t *st = NULL;
    gx_reg_t *reg = NULL;
    char err[512] = "";
    int rv;

    malloc_tune();
    /* SIGUSR1 reopens the access log and SIGHUP reloads the TLS certificate once the
     * server runs; before that (the store loading, say) a logrotate's or a certificate
     * renewal's signal must not kill the process */
    signal(SIGUSR1, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    rv = flags_parse(argc, argv, &flags);
    if (rv >= 0)
        return rv;
    if (config_read(&flags, &conf) != 0) {
        gx_conf_deinit(&conf);
        return EXIT_FAILURE;
    }
    rv = gx_mods_load(&mods, &conf, builtin_modules, err, sizeof(err));
    if (rv == 0 && (rv = gx_access_modules_check(&mods, err, sizeof(err))) != 0)
        gx_mods_unload(&mods);
    if (rv != 0) {
        fprintf(stderr, "galaxy-poold: %s\n", err);
        gx_conf_deinit(&conf);
        return EXIT_FAILURE;
    }
    if (flags.test_only) {
        printf("galaxy-poold: configuration %s is ok\n", conf.file ? conf.file : "(defaults)");
    } else {
        rv = data_dir_open(&conf);
        if (rv == 0)
            rv = state_open(&conf, &mods, &st, &reg);
        if (rv == 0)
            rv = serve(&flags, &conf, &mods);
        state_close(st, reg);
    }
    gx_mods_unload(&mods);
    gx_conf_deinit(&conf);
    return rv == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
