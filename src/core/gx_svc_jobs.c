/* SPDX-License-Identifier: MIT */
/*
 * galaxy.pool.v1.Jobs, served by a built-in module over core/gx_jobs.h.
 *
 * SubmitJob is routed in the ROUTE phase: a hook of this module submits the
 * job (routing it to a node when one can take it), queues its record to the
 * store and parks the call; the store's writer resumes it once the record is
 * synced, and the method answers with the job as written.  CancelJob and
 * UpdateJobStatus are written the same way from a HANDLER-phase hook.
 * GetJob, ListJobs and ExplainJob read and answer at once.
 *
 * Access: SubmitJob, ExplainJob and ListJobs name their pool, so the ACCESS
 * phase judges them; GetJob, CancelJob and UpdateJobStatus name a job, whose
 * pool is known only once it is found: gx_jobs.c asks the access policy
 * then, and a job the caller may not see is NOT_FOUND, as if it did not
 * exist.
 */
#include "config.h"

#include "core/gx_svc_jobs.h"

#include <string.h>

#include "core/gx_jobs.h"
#include "core/gx_svc_util.h"
#include "galaxy/pool/v1/pool.pb-c.h"
#include "util/gx_error.h"

typedef Galaxy__Pool__V1__SubmitJobRequest submit_req_t;
typedef Galaxy__Pool__V1__GetJobRequest get_req_t;
typedef Galaxy__Pool__V1__ListJobsRequest list_req_t;
typedef Galaxy__Pool__V1__CancelJobRequest cancel_req_t;
typedef Galaxy__Pool__V1__UpdateJobStatusRequest update_req_t;

#define SVC "/galaxy.pool.v1.Jobs/"
static const gx_service_t jobs_service; /* defined at the end, with its table */
#define ROUTING_KEY_MAX 256

static const gx_module_t *self;

/* ------------------------------------------------------------------ validation */

static int
validate_job_id(gx_call_t *call, const char *id)
{
    if (!gx_reg_valid_token(id, GX_JOBS_ID_MAX))
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT,
                            "id: required (1 to %d printable "
                            "characters)",
                            GX_JOBS_ID_MAX);
    return GX_OK;
}

static int
validate_submit(gx_call_t *call, const ProtobufCMessage *msg)
{
    const submit_req_t *req = (const submit_req_t *)msg;
    const gx_pb_job_t *j = req->job;

    if (j == NULL)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "job: required");
    if (gx_svc_validate_pool_name(call, j->pool, "job.pool") != GX_OK)
        return GX_DONE;
    if (!gx_reg_valid_spec(j->specialization))
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT,
                            "job.specialization: required, "
                            "1 to %d of [a-z0-9-]",
                            GX_REG_SPEC_MAX);
    if (gx_svc_validate_labels(call, j->n_node_selector, (const void *const *)j->node_selector,
                               "job.node_selector") != GX_OK)
        return GX_DONE;
    if (j->payload.len > GX_JOBS_PAYLOAD_MAX)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "job.payload: at most %u bytes",
                            GX_JOBS_PAYLOAD_MAX);
    if (gx_svc_validate_text(call, j->routing_key, ROUTING_KEY_MAX, "job.routing_key") != GX_OK)
        return GX_DONE;
    return GX_OK;
}

static int
validate_get(gx_call_t *call, const ProtobufCMessage *msg)
{
    return validate_job_id(call, ((const get_req_t *)msg)->id);
}

static int
validate_cancel(gx_call_t *call, const ProtobufCMessage *msg)
{
    return validate_job_id(call, ((const cancel_req_t *)msg)->id);
}

static int
validate_list(gx_call_t *call, const ProtobufCMessage *msg)
{
    const list_req_t *req = (const list_req_t *)msg;

    if (gx_svc_validate_pool_name(call, req->pool, "pool") != GX_OK)
        return GX_DONE;
    for (size_t i = 0; i < req->n_states; i++)
        if (req->states[i] <= GALAXY__POOL__V1__JOB_STATE__JOB_STATE_UNSPECIFIED ||
            req->states[i] > GALAXY__POOL__V1__JOB_STATE__JOB_STATE_CANCELLED)
            return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT,
                                "states[%zu]: unknown job "
                                "state %d",
                                i, (int)req->states[i]);
    if (req->n_states > 16)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "states: at most 16");
    if (req->node_id[0] && !gx_reg_valid_node_id(req->node_id))
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "node_id: malformed");
    if (strlen(req->page_token) > 2 * GX_JOBS_ID_MAX)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT, "page_token: malformed");
    return GX_OK;
}

static int
validate_update(gx_call_t *call, const ProtobufCMessage *msg)
{
    const update_req_t *req = (const update_req_t *)msg;

    if (validate_job_id(call, req->id) != GX_OK)
        return GX_DONE;
    if (!gx_reg_valid_node_id(req->node_id))
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT,
                            "node_id: required, 1 to %d of "
                            "[A-Za-z0-9._:-]",
                            GX_REG_NODE_ID_MAX);
    if (!gx_reg_valid_token(req->lease_token, GX_REG_TOKEN_MAX))
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT,
                            "lease_token: required (1 to %d "
                            "printable characters)",
                            GX_REG_TOKEN_MAX);
    if (req->state != GALAXY__POOL__V1__JOB_STATE__JOB_STATE_RUNNING &&
        req->state != GALAXY__POOL__V1__JOB_STATE__JOB_STATE_SUCCEEDED &&
        req->state != GALAXY__POOL__V1__JOB_STATE__JOB_STATE_FAILED)
        return gx_call_fail(call, GX_STATUS_INVALID_ARGUMENT,
                            "state: a node reports RUNNING, "
                            "SUCCEEDED or FAILED");
    return gx_svc_validate_text(call, req->message, GX_JOBS_MESSAGE_MAX, "message");
}

/* ------------------------------------------------------------------ writes (hooks) */

typedef struct {
    gx_jobs_op_t op;
    gx_call_t *call;
} job_write_t;

static void
write_done(gx_jobs_op_t *op)
{
    gx_call_resume(((job_write_t *)op->arg)->call);
}

static job_write_t *
write_new(gx_call_t *call)
{
    job_write_t *w = gx_call_alloc(call, sizeof(*w));

    if (w == NULL)
        return NULL;
    memset(w, 0, sizeof(*w));
    w->call = call;
    w->op.done = write_done;
    w->op.arg = w;
    gx_call_set_ctx(call, self, w);
    return w;
}

static int
park(gx_call_t *call, int rv, const gx_jobs_why_t *why)
{
    if (rv != 0)
        return gx_call_fail(call, why->status, "%s", why->msg);
    return GX_AGAIN;
}

static int
is_method(gx_call_t *call, const char *name)
{
    return gx_call_service(call) == &jobs_service &&
           strcmp(gx_call_method(call) + sizeof(SVC) - 1, name) == 0;
}

/* ROUTE: SubmitJob is routed and written */
static int
route_hook(gx_call_t *call, void *ctx)
{
    const submit_req_t *req;
    gx_jobs_why_t why;
    job_write_t *w;

    if (!is_method(call, "SubmitJob"))
        return GX_DECLINED;
    req = (const submit_req_t *)gx_svc_request(call);
    w = write_new(call);
    if (req == NULL || w == NULL)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return park(call, gx_jobs_submit(call, req->job, gx_call_identity(call), &w->op, &why), &why);
}

/* HANDLER: CancelJob and UpdateJobStatus are written */
static int
write_hook(gx_call_t *call, void *ctx)
{
    const ProtobufCMessage *req;
    gx_jobs_why_t why;
    job_write_t *w;
    int cancel = is_method(call, "CancelJob");

    if (!cancel && !is_method(call, "UpdateJobStatus"))
        return GX_DECLINED;
    req = gx_svc_request(call);
    w = write_new(call);
    if (req == NULL || w == NULL)
        return gx_call_fail(call, GX_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    if (cancel)
        return park(call, gx_jobs_cancel(call, ((const cancel_req_t *)req)->id, &w->op, &why),
                    &why);
    return park(call, gx_jobs_update(call, (const update_req_t *)req, &w->op, &why), &why);
}

/* ------------------------------------------------------------------ answers */

static int
written_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    job_write_t *w = gx_call_ctx(call, self);

    if (w == NULL || w->op.reply == NULL)
        return gx_call_fail(call, GX_STATUS_INTERNAL, "no write in flight for %s",
                            gx_call_method(call));
    if (w->op.status != 0)
        return gx_call_fail(call, gx_error_to_status(w->op.status), "store: %s",
                            gx_strerror(w->op.status));
    return gx_call_reply(call, &w->op.reply->base);
}

static int
get_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    gx_pb_job_t *job = NULL;
    gx_jobs_why_t why;

    if (gx_jobs_get(call, ((const get_req_t *)msg)->id, &job, &why) != 0)
        return gx_call_fail(call, why.status, "%s", why.msg);
    return gx_call_reply(call, &job->base);
}

static int
list_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    Galaxy__Pool__V1__ListJobsResponse resp = GALAXY__POOL__V1__LIST_JOBS_RESPONSE__INIT;
    gx_jobs_why_t why;

    if (gx_jobs_list(call, (const list_req_t *)msg, &resp, &why) != 0)
        return gx_call_fail(call, why.status, "%s", why.msg);
    return gx_call_reply(call, &resp.base);
}

static int
explain_start(gx_call_t *call, const ProtobufCMessage *msg, void *ctx)
{
    Galaxy__Pool__V1__ExplainJobResponse resp = GALAXY__POOL__V1__EXPLAIN_JOB_RESPONSE__INIT;
    gx_jobs_why_t why;

    if (gx_jobs_explain(call, ((const submit_req_t *)msg)->job, &resp, &why) != 0)
        return gx_call_fail(call, why.status, "%s", why.msg);
    return gx_call_reply(call, &resp.base);
}

/* ------------------------------------------------------------------ module */

static const char *
submit_pool(const ProtobufCMessage *msg, const char **field)
{
    const submit_req_t *r = (const submit_req_t *)msg;

    *field = "job.pool";
    return r->job != NULL ? r->job->pool : NULL;
}

static const char *
list_pool(const ProtobufCMessage *msg, const char **field)
{
    *field = "pool";
    return ((const list_req_t *)msg)->pool;
}

static int
jobs_init(gx_module_t *mod, const gx_mod_conf_t *conf, void **ctx)
{
    self = mod;
    *ctx = NULL;
    return 0;
}

static const gx_method_t jobs_methods[] = {
    {.name = "SubmitJob",
     .kind = GX_RPC_UNARY,
     .start = written_start,
     .access = GX_ACCESS_SUBMIT,
     .pool_of = submit_pool,
     .validate = validate_submit},
    {.name = "GetJob",
     .kind = GX_RPC_UNARY,
     .start = get_start,
     .access = GX_ACCESS_DISCOVER,
     .validate = validate_get},
    {.name = "ListJobs",
     .kind = GX_RPC_UNARY,
     .start = list_start,
     .access = GX_ACCESS_DISCOVER,
     .pool_of = list_pool,
     .validate = validate_list},
    {.name = "CancelJob",
     .kind = GX_RPC_UNARY,
     .start = written_start,
     .access = GX_ACCESS_DISCOVER,
     .validate = validate_cancel},
    {.name = "UpdateJobStatus",
     .kind = GX_RPC_UNARY,
     .start = written_start,
     .access = GX_ACCESS_NODE,
     .validate = validate_update},
    {.name = "ExplainJob",
     .kind = GX_RPC_UNARY,
     .start = explain_start,
     .access = GX_ACCESS_SUBMIT,
     .pool_of = submit_pool,
     .validate = validate_submit},
    {.name = NULL},
};

static const gx_service_t jobs_service = {
    .desc = &galaxy__pool__v1__jobs__descriptor,
    .methods = jobs_methods,
};

static const gx_service_t *const jobs_services[] = {&jobs_service, NULL};

static const gx_hook_t jobs_hooks[] = {
    {.phase = GX_PHASE_ROUTE, .fn = route_hook, .order = 1000},
    {.phase = GX_PHASE_HANDLER, .fn = write_hook, .order = 1000},
    {.fn = NULL},
};

const gx_module_desc_t gx_svc_jobs_module = {
    .abi = GX_MODULE_ABI,
    .name = "jobs",
    .version = PACKAGE_VERSION,
    .edition = "community",
    .init = jobs_init,
    .hooks = jobs_hooks,
    .services = jobs_services,
};
