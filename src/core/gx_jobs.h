/* SPDX-License-Identifier: MIT */
/**
 * @file gx_jobs.h
 * Jobs: submission, routing to nodes, delivery, status, re-routing.
 *
 * Every job lives in memory under one mutex (the jobs lock) and in the
 * store's JOBS table (id → packed Job).  A change is made in memory and its
 * record queued to the store under that lock, so the store sees a job's
 * changes in the order they were made; the call that made it is answered
 * once the commit is synced.  Changes nobody waits for (routing a pending
 * job, re-routing, timeouts) are written the same way.
 *
 * Routing: a job is ASSIGNED to an eligible node (HEALTHY, not flapping,
 * with the specialization, every node_selector label and free capacity:
 * capacity minus what the pool's ASSIGNED and RUNNING jobs on it use; 0
 * means unlimited) chosen by the pool's routing policy (gx_router.h); with
 * no eligible node it waits PENDING in its pool's queue, oldest first, and
 * is routed when a node registers or comes back, a job ends, or at the next
 * pass over the queues (every keeper tick: lower loads, freed capacity).
 *
 * Delivery: a node's ASSIGNED jobs ride in every HeartbeatResponse until it
 * reports on them; an open HeartbeatStream gets them pushed when routed.
 * A job whose node goes DOWN or leaves, or that is not acknowledged (no
 * RUNNING) within ack_timeout_ms, is routed again (attempts + 1, elsewhere
 * when another node can take it) until max_attempts, then FAILED.  A job
 * cancelled on a node is told to the node (state CANCELLED) in its next
 * heartbeat; whether it was told is not stored, so after a restart the node
 * is told again (at least once, like every delivery).
 */
#ifndef GX_CORE_GX_JOBS_H
#define GX_CORE_GX_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include <galaxy/gx_module.h>

#include "core/gx_reg.h"
#include "galaxy/pool/v1/pool.pb-c.h"
#include "store/gx_store.h"

typedef Galaxy__Pool__V1__Job gx_pb_job_t;

#define GX_JOBS_PAYLOAD_MAX (1u << 20) /**< bytes of a job's payload */
#define GX_JOBS_ID_MAX 64
#define GX_JOBS_MESSAGE_MAX 1024

typedef struct {
    uint32_t max_attempts;   /**< assignments before FAILED (default 3) */
    uint32_t flap_threshold; /**< a node with this many flaps takes no new jobs (default 4) */
    uint32_t queue_max;      /**< PENDING jobs per pool (default 10000) */
    uint32_t ack_timeout_ms; /**< ASSIGNED without RUNNING this long: re-routed (default 60000) */
    uint32_t retention_ms;   /**< finished jobs are forgotten after this (default 3600000) */
    uint32_t jobs_max;       /**< jobs held in all (default 1000000) */
    uint32_t max_payload_mb; /**< MiB of payload the jobs held may carry (default 1024) */
} gx_jobs_opts_t;

void gx_jobs_opts_init(gx_jobs_opts_t *o);

/**
 * Loads the jobs from the store, listens to the registry's node changes.
 * @note thread: main, after gx_reg_open(), before the workers start
 */
int gx_jobs_open(gx_store_t *st, gx_reg_t *reg, const gx_jobs_opts_t *o, char *err, size_t errlen);
/** Frees everything; after gx_reg_stop() and the store's last commit. */
void gx_jobs_close(void);
/** The server, for pushing jobs to HeartbeatStreams (gx_server_post()). */
struct gx_server_s;
void gx_jobs_set_server(struct gx_server_s *srv);

/** A job write in flight, in call memory. */
typedef struct gx_jobs_op_s {
    void (*done)(struct gx_jobs_op_s *op); /**< store writer thread */
    void *arg;
    int status;         /**< 0, or the commit's error */
    gx_pb_job_t *reply; /**< the job as written (call memory) */
} gx_jobs_op_t;

/** Why a request was refused. */
typedef gx_reg_why_t gx_jobs_why_t;

/**
 * Submits @p job (validated) for @p submitter, routes it.  @return 0 (op in
 * flight), or <0 with @p why (pool missing, queue full, …)
 */
int gx_jobs_submit(gx_call_t *call, const gx_pb_job_t *job, const char *submitter, gx_jobs_op_t *op,
                   gx_jobs_why_t *why);
/** Cancels job @p id if the call may: see the visibility rules. */
int gx_jobs_cancel(gx_call_t *call, const char *id, gx_jobs_op_t *op, gx_jobs_why_t *why);
/** A node reports on its job.  The lease token is checked here. */
int gx_jobs_update(gx_call_t *call, const Galaxy__Pool__V1__UpdateJobStatusRequest *req,
                   gx_jobs_op_t *op, gx_jobs_why_t *why);

/** GetJob.  @return 0 and *out (call memory), or <0 with @p why */
int gx_jobs_get(gx_call_t *call, const char *id, gx_pb_job_t **out, gx_jobs_why_t *why);
/** ListJobs (pool access checked by the caller). */
int gx_jobs_list(gx_call_t *call, const Galaxy__Pool__V1__ListJobsRequest *req,
                 Galaxy__Pool__V1__ListJobsResponse *out, gx_jobs_why_t *why);
/** ExplainJob: routing as SubmitJob would do it, node by node; stores nothing. */
int gx_jobs_explain(gx_call_t *call, const gx_pb_job_t *job,
                    Galaxy__Pool__V1__ExplainJobResponse *out, gx_jobs_why_t *why);

/**
 * Heartbeat from node @p id of @p pool (the lease was checked): adds the
 * jobs the node is to hear of to @p resp (call memory).  Cheap when there
 * are none anywhere.  @note thread: worker
 */
void gx_jobs_heartbeat(gx_call_t *call, const char *pool, const char *id,
                       Galaxy__Pool__V1__HeartbeatResponse *resp);

/**
 * HeartbeatStream: binds the stream @p call to node @p id of @p pool, so
 * that jobs routed to it are pushed at once (a HeartbeatResponse carrying
 * them).  A stream speaks for one node at a time, a node through the latest
 * stream that bound it (a stream that keeps naming the same node does not
 * bind again: its messages cost no lock).  @p s: the stream's handle from an
 * earlier bind, or NULL for the first.  @return the handle (NULL when out of memory: no pushes
 * then)
 * @note thread: the call's worker
 */
typedef struct gx_jobs_stream_s gx_jobs_stream_t;
gx_jobs_stream_t *gx_jobs_stream_bind(gx_call_t *call, gx_jobs_stream_t *s, const char *pool,
                                      const char *id);
/** The stream's call ended (LOG phase): no more pushes.  NULL is a no-op. @note thread: worker */
void gx_jobs_stream_end(gx_jobs_stream_t *s);

/** Appends the jobs' metrics (Prometheus text) to @p out (an evbuffer). @note thread: any */
void gx_jobs_metrics(void *out);

#endif /* GX_CORE_GX_JOBS_H */
