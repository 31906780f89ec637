/* SPDX-License-Identifier: MIT */
/*
 * galaxy-cli job: submit a job to a pool (Jobs.SubmitJob), or ask how it
 * would be routed without storing it (--explain: Jobs.ExplainJob); show one
 * (GetJob), list a pool's jobs (ListJobs, one page or --all of them:
 * gx_cli_page.c) and cancel one (CancelJob).  A command that answers with a
 * job prints it as a "Field: value" table, its JSON, or its id with --quiet.
 *
 * The payload is bytes: given on the line (--payload), or read from a file
 * or standard input (--payload-file), at most the 1 MiB the server accepts.
 * Tables show its size only; -o json carries it base64-encoded, as the proto3
 * JSON mapping does.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/gx_cli.h"
#include "cli/gx_cli_table.h"
#include "galaxy/pool/v1/pool.pb-c.h"

#define SVC "/galaxy.pool.v1.Jobs/"
#define METHOD_SUBMIT SVC "SubmitJob"
#define METHOD_EXPLAIN SVC "ExplainJob"
#define METHOD_GET SVC "GetJob"
#define METHOD_LIST SVC "ListJobs"
#define METHOD_CANCEL SVC "CancelJob"

/* API.md: a job's payload is at most 1 MiB; a bigger one is not worth sending */
#define PAYLOAD_MAX (1u << 20)

typedef Galaxy__Pool__V1__Job job_t;
typedef Galaxy__Pool__V1__Resources resources_t;
typedef Galaxy__Pool__V1__ExplainJobResponse explain_t;

static int
oom(void)
{
    gx_cli_error("out of memory");
    return GX_CLI_EXIT_UNAVAILABLE;
}

static int
table_done(gx_cli_table_t *t)
{
    int rv = gx_cli_table_print(t, stdout);

    gx_cli_table_free(t);
    return rv == 0 ? GX_CLI_EXIT_OK : GX_CLI_EXIT_UNAVAILABLE;
}

/* ------------------------------------------------------------------ output */

static const char *
state_str(int state, char *buf)
{
    return gx_cli_enum_str(&galaxy__pool__v1__job_state__descriptor, state, buf);
}

static const char *
or_dash(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : "-";
}

/* A job's resources: what it does not ask for (0) shows as "-". */
static void
resources_kv(gx_cli_table_t *t, const resources_t *r)
{
    char cpu[24] = "-", mem[GX_CLI_TIME_LEN] = "-", gpus[16] = "-";

    if (r == NULL || (r->cpu_millis == 0 && r->memory_bytes == 0 && r->gpus == 0)) {
        gx_cli_table_kv(t, "Resources", "-");
        return;
    }
    if (r->cpu_millis != 0)
        snprintf(cpu, sizeof(cpu), "%um", r->cpu_millis);
    if (r->memory_bytes != 0)
        gx_cli_bytes_str(r->memory_bytes, mem);
    if (r->gpus != 0)
        snprintf(gpus, sizeof(gpus), "%u", r->gpus);
    gx_cli_table_kv(t, "Resources", "cpu %s, memory %s, gpus %s", cpu, mem, gpus);
}

static void
time_kv(gx_cli_table_t *t, const char *field, int64_t unix_ms, int64_t now)
{
    char when[GX_CLI_TIME_LEN], age[GX_CLI_TIME_LEN];

    if (unix_ms == 0)
        gx_cli_table_kv(t, field, "-");
    else
        gx_cli_table_kv(t, field, "%s (%s ago)", gx_cli_time_str(unix_ms, when),
                        gx_cli_age_str(unix_ms, now, age));
}

static int
job_print_fields(const job_t *j)
{
    gx_cli_table_t *t = gx_cli_table_kv_new();
    char buf[GX_CLI_ENUM_LEN];
    int64_t now = gx_cli_now_ms();

    gx_cli_table_kv(t, "ID", "%s", j->id);
    gx_cli_table_kv(t, "Pool", "%s", j->pool);
    gx_cli_table_kv(t, "Specialization", "%s", j->specialization);
    gx_cli_table_kv(t, "State", "%s", state_str(j->state, buf));
    gx_cli_table_kv(t, "Node", "%s", or_dash(j->node_id));
    gx_cli_table_kv(t, "Attempts", "%u", j->attempts);
    gx_cli_table_kv_map(t, "Node selector", (ProtobufCMessage **)j->node_selector,
                        j->n_node_selector);
    resources_kv(t, j->resources);
    gx_cli_table_kv(t, "Routing key", "%s", or_dash(j->routing_key));
    gx_cli_table_kv(t, "Payload", "%zu bytes", j->payload.len);
    gx_cli_table_kv(t, "Submitter", "%s", j->submitter[0] != '\0' ? j->submitter : "anonymous");
    gx_cli_table_kv(t, "Message", "%s", or_dash(j->message));
    time_kv(t, "Created", j->created_unix_ms, now);
    time_kv(t, "Updated", j->updated_unix_ms, now);
    return table_done(t);
}

static int
jobs_print_table(ProtobufCMessage *const *jobs, size_t n)
{
    gx_cli_table_t *t =
        gx_cli_table_new("ID", "POOL", "SPEC", "STATE", "NODE", "ATTEMPTS", "UPDATED", NULL);
    char buf[GX_CLI_ENUM_LEN], age[GX_CLI_TIME_LEN];
    int64_t now = gx_cli_now_ms();

    for (size_t i = 0; i < n; i++) {
        const job_t *j = (const job_t *)jobs[i];
        gx_cli_table_add(t, "%s", j->id);
        gx_cli_table_add(t, "%s", j->pool);
        gx_cli_table_add(t, "%s", j->specialization);
        gx_cli_table_add(t, "%s", state_str(j->state, buf));
        gx_cli_table_add(t, "%s", or_dash(j->node_id));
        gx_cli_table_add(t, "%u", j->attempts);
        gx_cli_table_add(t, "%s ago", gx_cli_age_str(j->updated_unix_ms, now, age));
    }
    return table_done(t);
}

/* Makes the call, prints the Job it answers with. */
static int
job_call(gx_cli_t *cli, const char *method, const ProtobufCMessage *req)
{
    ProtobufCMessage *msg = NULL;
    const job_t *j;
    int rv = gx_cli_unary(cli, method, req, &galaxy__pool__v1__job__descriptor, &msg);

    if (rv != GX_CLI_EXIT_OK)
        return rv;
    j = (const job_t *)msg;
    if (cli->quiet)
        printf("%s\n", j->id);
    else if (cli->output == GX_CLI_OUT_JSON)
        rv = gx_cli_print_json(msg);
    else
        rv = job_print_fields(j);
    protobuf_c_message_free_unpacked(msg, NULL);
    return rv;
}

/* ------------------------------------------------------------------ submit */

static int
parse_u64(const char *what, const char *s, uint64_t *out)
{
    char *end;

    errno = 0;
    if (s[0] >= '0' && s[0] <= '9') {
        *out = strtoull(s, &end, 10);
        if (*end == '\0' && errno == 0)
            return 0;
    }
    gx_cli_error("--%s: expected a number from 0 to %llu, got '%s'", what,
                 (unsigned long long)UINT64_MAX, s);
    return GX_CLI_EXIT_USAGE;
}

/* --cpu-millis, --memory-bytes, --gpus into job->resources, when any is given. */
static int
resources_opts(gx_cli_t *cli, job_t *job)
{
    const char *cpu = gx_cli_opt(cli, "cpu-millis"), *mem = gx_cli_opt(cli, "memory-bytes");
    const char *gpus = gx_cli_opt(cli, "gpus");
    resources_t *r;
    int rv = 0;

    if (cpu == NULL && mem == NULL && gpus == NULL)
        return 0;
    if ((r = gx_arena_alloc(cli->arena, sizeof(*r))) == NULL)
        return oom();
    galaxy__pool__v1__resources__init(r);
    if (cpu != NULL)
        rv = gx_cli_parse_u32("cpu-millis", cpu, 0, UINT32_MAX, &r->cpu_millis);
    if (rv == 0 && mem != NULL)
        rv = parse_u64("memory-bytes", mem, &r->memory_bytes);
    if (rv == 0 && gpus != NULL)
        rv = gx_cli_parse_u32("gpus", gpus, 0, UINT32_MAX, &r->gpus);
    job->resources = r;
    return rv;
}

/* Reads the payload from @path ("-": standard input) into @out. */
static int
payload_read(gx_cli_t *cli, const char *path, ProtobufCBinaryData *out)
{
    int use_stdin = strcmp(path, "-") == 0;
    FILE *f = use_stdin ? stdin : fopen(path, "rb");
    uint8_t *buf;
    size_t len;
    int err;

    if (f == NULL)
        return gx_cli_usage_error(cli, "--payload-file %s: %s", path, strerror(errno));
    /* one byte more than allowed tells a payload that is too big */
    if ((buf = gx_arena_alloc(cli->arena, PAYLOAD_MAX + 1)) == NULL) {
        if (!use_stdin)
            fclose(f);
        return oom();
    }
    len = fread(buf, 1, PAYLOAD_MAX + 1, f);
    err = ferror(f) ? errno : 0;
    if (!use_stdin)
        fclose(f);
    if (err != 0)
        return gx_cli_usage_error(cli, "--payload-file %s: %s", path, strerror(err));
    if (len > PAYLOAD_MAX)
        return gx_cli_usage_error(cli, "--payload-file %s: more than %u bytes, a job's most", path,
                                  PAYLOAD_MAX);
    out->data = buf;
    out->len = len;
    return 0;
}

static int
payload_opts(gx_cli_t *cli, job_t *job)
{
    const char *text = gx_cli_opt(cli, "payload"), *path = gx_cli_opt(cli, "payload-file");

    if (text != NULL && path != NULL)
        return gx_cli_usage_error(cli, "--payload and --payload-file exclude each other");
    if (path != NULL)
        return payload_read(cli, path, &job->payload);
    if (text == NULL)
        return 0;
    if (strlen(text) > PAYLOAD_MAX)
        return gx_cli_usage_error(cli, "--payload: more than %u bytes, a job's most", PAYLOAD_MAX);
    job->payload.data = (uint8_t *)text;
    job->payload.len = strlen(text);
    return 0;
}

/* The job to submit, from the line. @return an exit code */
static int
job_from_line(gx_cli_t *cli, const char *pool, job_t *job)
{
    const char *key = gx_cli_opt(cli, "routing-key");
    int rv;

    job->pool = (char *)pool;
    job->specialization = (char *)gx_cli_opt(cli, "spec");
    if (key != NULL)
        job->routing_key = (char *)key;
    rv = gx_cli_opt_map(cli, "selector", &job->base, "node_selector", NULL);
    if (rv == 0)
        rv = resources_opts(cli, job);
    if (rv == 0)
        rv = payload_opts(cli, job);
    return rv;
}

/* The reasons a node is not eligible, joined by "; " (they may hold commas). */
static const char *
reasons_str(gx_cli_t *cli, char *const *reasons, size_t n)
{
    size_t len = 1;
    char *s, *p;

    if (n == 0)
        return "-";
    for (size_t i = 0; i < n; i++)
        len += strlen(reasons[i]) + 2;
    if ((s = gx_arena_alloc(cli->arena, len)) == NULL)
        return NULL;
    p = s;
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s%s", i > 0 ? "; " : "", reasons[i]);
    return s;
}

/* NODE ELIGIBLE SCORE REASONS, one row per node, then the chosen node. */
static int
explain_print_table(gx_cli_t *cli, const explain_t *e)
{
    gx_cli_table_t *t = gx_cli_table_new("NODE", "ELIGIBLE", "SCORE", "REASONS", NULL);
    const char *why;
    int rv;

    for (size_t i = 0; i < e->n_verdicts; i++) {
        const Galaxy__Pool__V1__NodeVerdict *v = e->verdicts[i];
        if ((why = reasons_str(cli, v->reasons, v->n_reasons)) == NULL) {
            gx_cli_table_free(t);
            return oom();
        }
        gx_cli_table_add(t, "%s", v->node_id);
        gx_cli_table_add(t, "%s", v->eligible ? "yes" : "no");
        if (v->eligible)
            gx_cli_table_add(t, "%.4g", v->score);
        else
            gx_cli_table_add(t, "-");
        gx_cli_table_add(t, "%s", why);
    }
    rv = table_done(t);
    if (rv != GX_CLI_EXIT_OK)
        return rv;
    t = gx_cli_table_kv_new();
    if (e->chosen_node_id[0] != '\0')
        gx_cli_table_kv(t, "Chosen node", "%s", e->chosen_node_id);
    else
        gx_cli_table_kv(t, "Chosen node", "none: the job would wait PENDING");
    if (printf("\n") < 0) {
        gx_cli_table_free(t);
        return GX_CLI_EXIT_UNAVAILABLE;
    }
    return table_done(t);
}

static int
job_explain(gx_cli_t *cli, const Galaxy__Pool__V1__SubmitJobRequest *req)
{
    ProtobufCMessage *msg = NULL;
    const explain_t *e;
    int rv = gx_cli_unary(cli, METHOD_EXPLAIN, &req->base,
                          &galaxy__pool__v1__explain_job_response__descriptor, &msg);

    if (rv != GX_CLI_EXIT_OK)
        return rv;
    e = (const explain_t *)msg;
    if (cli->quiet) {
        if (e->chosen_node_id[0] != '\0')
            printf("%s\n", e->chosen_node_id);
    } else if (cli->output == GX_CLI_OUT_JSON) {
        rv = gx_cli_print_json(msg);
    } else {
        rv = explain_print_table(cli, e);
    }
    protobuf_c_message_free_unpacked(msg, NULL);
    return rv;
}

static int
job_submit(gx_cli_t *cli, int argc, char **argv)
{
    Galaxy__Pool__V1__SubmitJobRequest req = GALAXY__POOL__V1__SUBMIT_JOB_REQUEST__INIT;
    job_t job = GALAXY__POOL__V1__JOB__INIT;
    int rv = job_from_line(cli, argv[0], &job);

    if (rv != 0)
        return rv;
    req.job = &job;
    if (gx_cli_opt(cli, "explain") != NULL)
        return job_explain(cli, &req);
    return job_call(cli, METHOD_SUBMIT, &req.base);
}

/* ------------------------------------------------------------------ list */

static const char *
job_id(const ProtobufCMessage *item)
{
    return ((const job_t *)item)->id;
}

static const gx_cli_page_t jobs_page = {
    .method = METHOD_LIST,
    .resp_desc = &galaxy__pool__v1__list_jobs_response__descriptor,
    .items = "jobs",
    .item_id = job_id,
    .print_table = jobs_print_table,
};

/* The request's page size and filters from the options. @return an exit code */
static int
list_request(gx_cli_t *cli, Galaxy__Pool__V1__ListJobsRequest *req)
{
    const char *node = gx_cli_opt(cli, "node");
    int rv = gx_cli_page_opts(cli, &req->base);

    if (node != NULL)
        req->node_id = (char *)node;
    if (rv == 0)
        rv = gx_cli_opt_enum_list(cli, "state", &req->base, "states");
    return rv;
}

static int
job_list(gx_cli_t *cli, int argc, char **argv)
{
    Galaxy__Pool__V1__ListJobsRequest req = GALAXY__POOL__V1__LIST_JOBS_REQUEST__INIT;
    int rv = list_request(cli, &req);

    req.pool = argv[0];
    return rv != 0 ? rv : gx_cli_page_list(cli, &jobs_page, &req.base);
}

/* ------------------------------------------------------------------ one job */

static int
job_show(gx_cli_t *cli, int argc, char **argv)
{
    Galaxy__Pool__V1__GetJobRequest req = GALAXY__POOL__V1__GET_JOB_REQUEST__INIT;

    req.id = argv[0];
    return job_call(cli, METHOD_GET, &req.base);
}

static int
job_cancel(gx_cli_t *cli, int argc, char **argv)
{
    Galaxy__Pool__V1__CancelJobRequest req = GALAXY__POOL__V1__CANCEL_JOB_REQUEST__INIT;

    req.id = argv[0];
    return job_call(cli, METHOD_CANCEL, &req.base);
}

const gx_cli_cmd_t gx_cli_cmds_job[] = {
    {"job", "submit", "POOL",
     "!spec=SPEC selector=KEY=VALUE cpu-millis=N memory-bytes=N gpus=N payload=STRING "
     "payload-file=FILE routing-key=KEY explain",
     1, 1, "submit a job (--payload-file -: stdin); --explain: how it would be routed", job_submit},
    {"job", "show", "ID", NULL, 1, 1, "show one job, with its payload's size", job_show},
    {"job", "list", "POOL", "state=STATE node=ID page-size=N page-token=TOKEN all", 1, 1,
     "list a pool's jobs, a page (--all: every page); --state pending,assigned", job_list},
    {"job", "cancel", "ID", NULL, 1, 1, "cancel a job (its submitter or an operator)", job_cancel},
    {NULL, NULL, NULL, NULL, 0, 0, NULL, NULL},
};
