/* SPDX-License-Identifier: MIT */
/**
 * @file gx_cli_agent.h
 * `galaxy-cli agent`: what the agent's runtime (gx_cli_agent.c) takes from
 * its configuration (gx_cli_agent_conf.c): the node to register and the
 * hook that runs each job.
 *
 * The settings come from an optional YAML file (--config FILE), then from
 * the command line, a flag replacing the file's value (for --spec and
 * --label, the whole list or map).  The file is one mapping with the flags'
 * names as keys, '-' or '_' alike:
 * @code
 *     pool: devnet
 *     id: worker-7                  # default: the host name
 *     spec: [gpu, cpu]              # or "gpu,cpu"; also "specializations"
 *     label: {zone: eu-1}           # also "labels"
 *     address: 10.0.0.7:7000
 *     version: "2.1"                # --node-version
 *     cpu_millis: 8000
 *     memory_bytes: 17179869184
 *     gpus: 1
 *     max_jobs: 4                   # jobs run at once (default 1)
 *     hook: /usr/local/libexec/run-job
 * @endcode
 */
#ifndef GX_CLI_GX_CLI_AGENT_H
#define GX_CLI_GX_CLI_AGENT_H

#include "cli/gx_cli.h"
#include "galaxy/pool/v1/pool.pb-c.h"

/** Jobs an agent runs at once when neither --max-jobs nor the file says. */
#define GX_CLI_AGENT_MAX_JOBS_DEFAULT 1
/** The most --max-jobs may be (each job is a process). */
#define GX_CLI_AGENT_MAX_JOBS_MAX 4096

/** The agent's settings; strings and arrays live in the command's arena (cli->arena). */
typedef struct {
    /** pool, id, specializations, labels, address, version; capacity points to .capacity */
    Galaxy__Pool__V1__Node node;
    Galaxy__Pool__V1__Resources capacity;
    const char *hook; /**< run with /bin/sh -c for each job */
} gx_cli_agent_conf_t;

/**
 * Fills @p conf from the --config file when given, then from the flags, and
 * checks that what is required is there (pool, one specialization at least,
 * hook); the id defaults to the host name, the version to galaxy-cli's.
 * Errors go to stderr ("galaxy-cli: FILE:LINE: …", "galaxy-cli: --gpus: …").
 * @return GX_CLI_EXIT_OK; GX_CLI_EXIT_USAGE for a bad flag, file or value;
 *         GX_CLI_EXIT_UNAVAILABLE when out of memory.
 */
int gx_cli_agent_conf(gx_cli_t *cli, gx_cli_agent_conf_t *conf);

#endif /* GX_CLI_GX_CLI_AGENT_H */
