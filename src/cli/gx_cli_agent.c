/* SPDX-License-Identifier: MIT */
/*
 * galaxy-cli agent: a node agent.  It registers a node, keeps it alive and
 * runs the jobs the server assigns to it through a hook command.
 *
 * One thread, one loop (agent_step): connect when there is no connection
 * (exponential back-off with jitter between attempts), register when the
 * server does not know the node, open a HeartbeatStream when there is none,
 * tell the server what became of jobs, heartbeat when due, then wait on the
 * stream (gx_client_bidi_recv()) or, without one, on the self-pipe that the
 * signal handlers write to, until the next heartbeat or a signal.  Each
 * response may change the heartbeat interval and carries the node's
 * assigned jobs: a job not yet known is started, one that comes back
 * CANCELLED has its hook killed.  A hook is `/bin/sh -c HOOK` in its own
 * process group, with the payload on stdin (a memfd) and the job in its
 * environment; SIGCHLD wakes the loop, which reaps it and reports SUCCEEDED
 * or FAILED.  Reports (UpdateJobStatus) are unary calls on the same
 * connection, kept until the server has them or refuses them.
 *
 * After a reconnection the agent heartbeats on with its lease; it registers
 * again, with the lease token, only when the server does not know the node
 * (registering clears a drain, which a network blip must not do).  A node id
 * held by another lease is waited for: a crashed agent's lease lapses.  When
 * the stream ends for a reason other than the connection, heartbeats fall
 * back to unary calls and the stream is tried again later.  SIGTERM and
 * SIGINT end the loop: the agent deregisters, kills the hooks still running
 * and exits.  The configuration (flags, --config file) is gx_cli_agent_conf.c.
 */
#include "config.h"

#include "cli/gx_cli_agent.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "transport/gx_grpc.h"
#include "util/gx_clock.h"
#include "util/gx_crypto.h"
#include "util/gx_error.h"

#define SVC "/galaxy.pool.v1.NodeRegistry/"
#define METHOD_UPDATE_JOB "/galaxy.pool.v1.Jobs/UpdateJobStatus"

#define CALL_TIMEOUT_MS 5000     /* each call, unless --timeout says */
#define BACKOFF_MIN_MS 100       /* first wait before connecting again */
#define BACKOFF_MAX_MS 30000     /* longest wait */
#define BACKOFF_JITTER 20        /* ± percent */
#define MIN_INTERVAL_MS 50       /* heartbeats no faster, whatever the server says */
#define STREAM_RETRY_MIN_MS 5000 /* after a failed stream, unary heartbeats this long at least */
#define STREAM_RETRY_BEATS 10
#define SILENCE_BEATS 3     /* a stream without answers for this many intervals is dead */
#define KILL_GRACE_MS 5000  /* SIGTERM, then SIGKILL after this */
#define FINISHED_MEMORY 256 /* jobs remembered after their end, so as not to run them twice */
#define JOB_ID_MAX 64       /* longest job id the server makes */

typedef Galaxy__Pool__V1__Job pb_job_t;
typedef Galaxy__Pool__V1__HeartbeatResponse pb_beat_resp_t;

enum {
    JS_ASSIGNED = GALAXY__POOL__V1__JOB_STATE__JOB_STATE_ASSIGNED,
    JS_RUNNING = GALAXY__POOL__V1__JOB_STATE__JOB_STATE_RUNNING,
    JS_SUCCEEDED = GALAXY__POOL__V1__JOB_STATE__JOB_STATE_SUCCEEDED,
    JS_FAILED = GALAXY__POOL__V1__JOB_STATE__JOB_STATE_FAILED,
    JS_CANCELLED = GALAXY__POOL__V1__JOB_STATE__JOB_STATE_CANCELLED,
};

/* A job this agent runs or has yet to report on. */
typedef struct job_s {
    struct job_s *next;
    char *id;
    uint32_t attempts;
    pid_t pid;        /* the hook's process (and group); 0 once reaped */
    int report;       /* the state the server is still to hear, 0: none */
    char message[64]; /* with it: "exit 1", "signal 9" */
    unsigned cancelled : 1;
    uint64_t kill_at; /* cancelled: SIGKILL then; 0: not due */
} job_t;

/* How a failed call is handled. */
typedef enum {
    FAIL_CONNECTION, /* no usable answer: reconnect after a back-off */
    FAIL_UNKNOWN,    /* NOT_FOUND: the server does not know the node (or the pool) */
    FAIL_TAKEN,      /* ALREADY_EXISTS: another lease holds the node id, for now */
    FAIL_FATAL,      /* credentials, lease or request refused: stop */
    FAIL_OTHER,      /* anything else */
} fail_t;

typedef struct {
    gx_cli_t *cli;
    gx_cli_agent_conf_t conf;
    gx_client_t *client;
    gx_client_bidi_t *stream;
    gx_client_md_t md[1];
    size_t n_md;
    char auth[GX_CLI_AUTH_LEN];
    char *token; /* the lease; NULL until registered */
    uint32_t interval_ms, call_timeout_ms, backoff_ms;
    uint64_t next_beat, retry_at, register_at, stream_retry_at, last_heard;
    int need_register;
    int registered_once;
    int state; /* the node's state in the last response */
    int exit;  /* < 0 while running; else the exit code */
    job_t *jobs;
    unsigned running;
    struct {
        char id[JOB_ID_MAX + 1];
        uint32_t attempts;
    } finished[FINISHED_MEMORY];
    size_t finished_next;
    int wake[2]; /* the self-pipe: signal handlers write, the loop waits on it */
} agent_t;

static volatile sig_atomic_t stop_signal;
static int wake_write_fd = -1;

/* ------------------------------------------------------------------ log */

static void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One event, one line on stderr. */
static void
agent_log(const char *fmt, ...)
{
    va_list ap;

    fputs("galaxy-cli agent: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

static const char *
status_name(const gx_client_status_t *st)
{
    return gx_grpc_status_name(st->code);
}

static const char *
node_state_name(int state)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&galaxy__pool__v1__node_state__descriptor, state);

    return v != NULL ? v->name + sizeof("NODE_STATE_") - 1 : "UNKNOWN";
}

/* ------------------------------------------------------------------ signals */

static void
on_signal(int sig)
{
    int saved = errno;

    if (sig != SIGCHLD)
        stop_signal = sig;
    if (write(wake_write_fd, "", 1) < 0) {
        /* the pipe is full: the loop is awake already */
    }
    errno = saved;
}

static int
signals_init(agent_t *a)
{
    struct sigaction sa;

    if (pipe2(a->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        gx_cli_error("agent: pipe: %s", strerror(errno));
        return GX_CLI_EXIT_UNAVAILABLE;
    }
    wake_write_fd = a->wake[1];
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    return 0;
}

static void
signals_deinit(agent_t *a)
{
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    wake_write_fd = -1;
    close(a->wake[0]);
    close(a->wake[1]);
}

static void
wake_drain(agent_t *a)
{
    char buf[64];

    while (read(a->wake[0], buf, sizeof(buf)) > 0) {
    }
}

/* Sleeps up to @ms, or until a signal (SIGCHLD included). */
static void
sleep_ms(agent_t *a, uint64_t ms)
{
    struct pollfd p = {.fd = a->wake[0], .events = POLLIN};

    poll(&p, 1, ms > INT32_MAX ? INT32_MAX : (int)ms);
}

/* Sleeps up to @ms, unless the agent is stopping. */
static void
idle(agent_t *a, uint64_t ms)
{
    if (stop_signal == 0)
        sleep_ms(a, ms);
}

/* ------------------------------------------------------------------ connection */

/* What to do about a call that failed with @st. */
static fail_t
fail_kind(const gx_client_status_t *st)
{
    switch (st->code) {
    case GX_STATUS_UNAVAILABLE:
    case GX_STATUS_DEADLINE_EXCEEDED:
        return FAIL_CONNECTION;
    case GX_STATUS_NOT_FOUND:
        return FAIL_UNKNOWN;
    case GX_STATUS_ALREADY_EXISTS:
        return FAIL_TAKEN;
    case GX_STATUS_UNAUTHENTICATED:
    case GX_STATUS_PERMISSION_DENIED:
    case GX_STATUS_INVALID_ARGUMENT:
        return FAIL_FATAL;
    default:
        return st->origin == GX_CLIENT_ORIGIN_LOCAL ? FAIL_CONNECTION : FAIL_OTHER;
    }
}

/* The delay before the next connection attempt: the back-off ± jitter; doubles it. */
static uint32_t
backoff_next(agent_t *a)
{
    uint32_t r, base = a->backoff_ms, span = base * 2 * BACKOFF_JITTER / 100;

    gx_random_bytes(&r, sizeof(r));
    a->backoff_ms = base >= BACKOFF_MAX_MS / 2 ? BACKOFF_MAX_MS : base * 2;
    return base - span / 2 + (span != 0 ? r % (span + 1) : 0);
}

/* Drops the connection; the next attempt comes after the back-off. */
static void
conn_lost(agent_t *a, const char *why)
{
    uint32_t delay = backoff_next(a);

    gx_client_bidi_close(a->stream);
    a->stream = NULL;
    gx_client_close(a->client);
    a->client = NULL;
    a->retry_at = gx_now_ms() + delay;
    agent_log("disconnected addr=%s reason=\"%s\" retry_in_ms=%u", a->cli->copts.addr, why, delay);
}

static void
conn_open(agent_t *a)
{
    char err[512];
    int rv;

    a->cli->copts.connect_timeout_ms = a->call_timeout_ms;
    rv = gx_client_open(&a->cli->copts, &a->client, err, sizeof(err));
    if (rv == GX_EINVAL) {
        gx_cli_error("agent: %s", err);
        a->exit = GX_CLI_EXIT_USAGE;
        return;
    }
    if (rv != 0) {
        uint32_t delay = backoff_next(a);
        a->retry_at = gx_now_ms() + delay;
        agent_log("cannot connect addr=%s reason=\"%s\" retry_in_ms=%u", a->cli->copts.addr, err,
                  delay);
        return;
    }
    agent_log("connected addr=%s", a->cli->copts.addr);
    a->stream_retry_at = 0;
    a->next_beat = gx_now_ms();
    a->last_heard = gx_now_ms();
}

/* A unary call on the agent's connection.  @return 0, or the failure's kind after logging it */
static int
agent_call(agent_t *a, const char *what, const char *method, const ProtobufCMessage *req,
           const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp, fail_t *kind)
{
    gx_client_status_t st;

    if (gx_client_unary(a->client, method, req, desc, resp, a->md, a->n_md, a->call_timeout_ms,
                        &st) == 0)
        return 0;
    *kind = fail_kind(&st);
    if (*kind == FAIL_CONNECTION) {
        char why[GX_CLIENT_MESSAGE_MAX + 64];
        snprintf(why, sizeof(why), "%s: %s: %s", what, status_name(&st), st.message);
        conn_lost(a, why);
    } else {
        agent_log("%s refused status=%s message=\"%s\"", what, status_name(&st), st.message);
    }
    return -1;
}

/* ------------------------------------------------------------------ registration */

static void
token_set(agent_t *a, const char *token)
{
    char *t = strdup(token);

    if (t == NULL)
        return; /* keep the old one: the next registration tries again */
    free(a->token);
    a->token = t;
}

static void
interval_set(agent_t *a, uint32_t ms)
{
    if (ms == 0)
        return;
    if (ms < MIN_INTERVAL_MS)
        ms = MIN_INTERVAL_MS;
    if (ms != a->interval_ms && a->interval_ms != 0)
        agent_log("heartbeat interval changed from_ms=%u to_ms=%u", a->interval_ms, ms);
    a->interval_ms = ms;
}

/*
 * Wrong settings end the agent at its start, and later what retrying cannot
 * mend.  A node id held by another lease is waited for: the lease of an
 * agent that crashed lapses (DOWN), and then the id may be taken over.
 */
static void
register_failed(agent_t *a, fail_t kind)
{
    uint32_t delay;

    if (kind == FAIL_CONNECTION)
        return;
    if (kind == FAIL_FATAL || kind == FAIL_UNKNOWN || (kind == FAIL_OTHER && !a->registered_once)) {
        a->exit = GX_CLI_EXIT_NO;
        return;
    }
    delay = backoff_next(a);
    a->register_at = gx_now_ms() + delay;
    agent_log("registering again retry_in_ms=%u", delay);
}

static void
agent_register(agent_t *a)
{
    Galaxy__Pool__V1__RegisterRequest req = GALAXY__POOL__V1__REGISTER_REQUEST__INIT;
    Galaxy__Pool__V1__RegisterResponse *resp;
    ProtobufCMessage *msg = NULL;
    fail_t kind;

    req.node = &a->conf.node;
    req.lease_token = a->token != NULL ? a->token : (char *)"";
    if (agent_call(a, "register", SVC "Register", &req.base,
                   &galaxy__pool__v1__register_response__descriptor, &msg, &kind) != 0) {
        register_failed(a, kind);
        return;
    }
    resp = (Galaxy__Pool__V1__RegisterResponse *)msg;
    token_set(a, resp->lease_token);
    interval_set(a, resp->heartbeat_interval_ms);
    agent_log("registered pool=%s node=%s interval_ms=%u ttl_ms=%u", a->conf.node.pool,
              a->conf.node.id, a->interval_ms, resp->ttl_ms);
    protobuf_c_message_free_unpacked(msg, NULL);
    a->need_register = 0;
    a->registered_once = 1;
    a->backoff_ms = BACKOFF_MIN_MS;
    a->next_beat = gx_now_ms(); /* at once: a stream gets the node's jobs pushed once it beats */
}

static int
agent_deregister(agent_t *a)
{
    Galaxy__Pool__V1__DeregisterRequest req = GALAXY__POOL__V1__DEREGISTER_REQUEST__INIT;
    ProtobufCMessage *msg = NULL;
    fail_t kind;

    if (a->token == NULL)
        return GX_CLI_EXIT_OK;
    if (a->client == NULL) {
        a->backoff_ms = BACKOFF_MIN_MS;
        conn_open(a);
        if (a->client == NULL)
            return GX_CLI_EXIT_UNAVAILABLE;
    }
    req.pool = a->conf.node.pool;
    req.node_id = a->conf.node.id;
    req.lease_token = a->token;
    if (agent_call(a, "deregister", SVC "Deregister", &req.base,
                   &galaxy__pool__v1__deregister_response__descriptor, &msg, &kind) != 0)
        return kind == FAIL_CONNECTION ? GX_CLI_EXIT_UNAVAILABLE : GX_CLI_EXIT_NO;
    protobuf_c_message_free_unpacked(msg, NULL);
    agent_log("deregistered pool=%s node=%s", a->conf.node.pool, a->conf.node.id);
    return GX_CLI_EXIT_OK;
}

/* ------------------------------------------------------------------ jobs */

static job_t *
job_find(agent_t *a, const char *id)
{
    for (job_t *j = a->jobs; j != NULL; j = j->next)
        if (strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

static job_t *
job_find_pid(agent_t *a, pid_t pid)
{
    for (job_t *j = a->jobs; j != NULL; j = j->next)
        if (j->pid == pid)
            return j;
    return NULL;
}

static int
finished_has(const agent_t *a, const char *id, uint32_t attempts)
{
    for (size_t i = 0; i < FINISHED_MEMORY; i++)
        if (a->finished[i].attempts == attempts && strcmp(a->finished[i].id, id) == 0)
            return 1;
    return 0;
}

/* Forgets a job that ended and was reported, remembering its id and attempt. */
static void
job_forget(agent_t *a, job_t *j)
{
    for (job_t **pp = &a->jobs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    }
    snprintf(a->finished[a->finished_next].id, sizeof(a->finished[0].id), "%s", j->id);
    a->finished[a->finished_next].attempts = j->attempts;
    a->finished_next = (a->finished_next + 1) % FINISHED_MEMORY;
    free(j->id);
    free(j);
}

/* The payload as a file the hook reads on stdin. @return the descriptor or -1 */
static int
payload_fd(const pb_job_t *pj)
{
    int fd = memfd_create("galaxy-job", MFD_CLOEXEC);
    size_t off = 0;

    if (fd < 0)
        return -1;
    while (off < pj->payload.len) {
        ssize_t n = write(fd, pj->payload.data + off, pj->payload.len - off);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* In the child: the job's environment, stdin, own process group, then the hook. */
static void hook_exec(const agent_t *a, const pb_job_t *pj, int fd) __attribute__((noreturn));

static void
hook_exec(const agent_t *a, const pb_job_t *pj, int fd)
{
    char attempts[16];

    setpgid(0, 0);
    signal(SIGPIPE, SIG_DFL);
    if (dup2(fd, STDIN_FILENO) < 0)
        _exit(127);
    snprintf(attempts, sizeof(attempts), "%u", pj->attempts);
    setenv("GALAXY_JOB_ID", pj->id, 1);
    setenv("GALAXY_JOB_POOL", pj->pool[0] ? pj->pool : a->conf.node.pool, 1);
    setenv("GALAXY_JOB_SPECIALIZATION", pj->specialization, 1);
    setenv("GALAXY_JOB_ATTEMPTS", attempts, 1);
    setenv("GALAXY_JOB_ROUTING_KEY", pj->routing_key, 1);
    setenv("GALAXY_NODE_ID", a->conf.node.id, 1);
    execl("/bin/sh", "sh", "-c", a->conf.hook, (char *)NULL);
    _exit(127);
}

static void
job_start(agent_t *a, const pb_job_t *pj)
{
    job_t *j = calloc(1, sizeof(*j));
    int fd = -1, err;

    if (j == NULL || (j->id = strdup(pj->id)) == NULL) {
        free(j);
        agent_log("job not started id=%s reason=\"out of memory\"", pj->id);
        return; /* delivered again with the next heartbeat */
    }
    j->attempts = pj->attempts;
    j->next = a->jobs;
    a->jobs = j;
    fd = payload_fd(pj);
    j->pid = fd >= 0 ? fork() : -1;
    if (j->pid == 0)
        hook_exec(a, pj, fd);
    err = errno;
    if (fd >= 0)
        close(fd);
    if (j->pid < 0) {
        j->pid = 0;
        j->report = JS_FAILED;
        snprintf(j->message, sizeof(j->message), "cannot start the hook: %s", strerror(err));
        agent_log("job not started id=%s reason=\"%s\"", j->id, j->message);
        return;
    }
    setpgid(j->pid, j->pid); /* also here: a cancel may come before the child runs */
    a->running++;
    j->report = JS_RUNNING;
    agent_log("job started id=%s attempts=%u pid=%d", j->id, j->attempts, (int)j->pid);
}

static void
job_cancel(agent_t *a, const pb_job_t *pj)
{
    job_t *j = job_find(a, pj->id);

    if (j == NULL || j->cancelled)
        return;
    j->cancelled = 1;
    j->report = 0; /* the job is over on the server's side */
    if (j->pid > 0) {
        kill(-j->pid, SIGTERM);
        j->kill_at = gx_now_ms() + KILL_GRACE_MS;
    }
    agent_log("job cancelled id=%s pid=%d", j->id, (int)j->pid);
}

/* A job in a heartbeat response: new, already known, or cancelled. */
static void
job_delivered(agent_t *a, const pb_job_t *pj)
{
    if ((int)pj->state == JS_CANCELLED) {
        job_cancel(a, pj);
        return;
    }
    if ((int)pj->state != JS_ASSIGNED || pj->id[0] == '\0' || strlen(pj->id) > JOB_ID_MAX)
        return;
    if (job_find(a, pj->id) != NULL || finished_has(a, pj->id, pj->attempts))
        return; /* at-least-once delivery: it is repeated until the server has our RUNNING */
    if (a->running >= a->conf.capacity.max_jobs)
        return; /* the server counts max_jobs too; it comes again */
    job_start(a, pj);
}

/* Collects the hooks that ended. */
static void
jobs_reap(agent_t *a)
{
    job_t *j;
    pid_t pid;
    int status;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if ((j = job_find_pid(a, pid)) == NULL)
            continue;
        j->pid = 0;
        a->running--;
        if (WIFSIGNALED(status))
            snprintf(j->message, sizeof(j->message), "signal %d", WTERMSIG(status));
        else
            snprintf(j->message, sizeof(j->message), "exit %d", WEXITSTATUS(status));
        if (!j->cancelled)
            j->report = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? JS_SUCCEEDED : JS_FAILED;
        agent_log("job ended id=%s status=\"%s\"%s", j->id, j->message,
                  j->cancelled ? " cancelled=1" : "");
    }
}

/* SIGKILL for cancelled hooks past their grace. */
static void
jobs_kill_overdue(agent_t *a, uint64_t now)
{
    for (job_t *j = a->jobs; j != NULL; j = j->next) {
        if (j->pid > 0 && j->kill_at != 0 && now >= j->kill_at) {
            kill(-j->pid, SIGKILL);
            j->kill_at = 0;
        }
    }
}

/* Tells the server about one job. @return 0, or -1 when the connection is gone */
static int
job_report(agent_t *a, job_t *j)
{
    Galaxy__Pool__V1__UpdateJobStatusRequest req =
        GALAXY__POOL__V1__UPDATE_JOB_STATUS_REQUEST__INIT;
    ProtobufCMessage *msg = NULL;
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&galaxy__pool__v1__job_state__descriptor, j->report);
    char what[JOB_ID_MAX + 64];
    fail_t kind;

    req.id = j->id;
    req.node_id = a->conf.node.id;
    req.lease_token = a->token;
    req.state = j->report;
    req.message = j->report == JS_RUNNING ? (char *)"" : j->message;
    snprintf(what, sizeof(what), "job report id=%s state=%s", j->id, v ? v->name + 10 : "?");
    if (agent_call(a, what, METHOD_UPDATE_JOB, &req.base, &galaxy__pool__v1__job__descriptor, &msg,
                   &kind) != 0) {
        if (kind == FAIL_CONNECTION)
            return -1;
        j->report = 0; /* refused (re-routed, cancelled, ...): nothing more to say */
        return 0;
    }
    protobuf_c_message_free_unpacked(msg, NULL);
    agent_log("job reported id=%s state=%s", j->id, v ? v->name + 10 : "?");
    j->report = 0;
    return 0;
}

static void
jobs_report(agent_t *a)
{
    job_t *j, *next;

    for (j = a->jobs; j != NULL && a->client != NULL && a->token != NULL; j = next) {
        next = j->next;
        if (j->report != 0 && job_report(a, j) != 0)
            return;
        if (j->pid == 0 && j->report == 0)
            job_forget(a, j);
    }
}

/* ------------------------------------------------------------------ heartbeats */

static void
beat_response(agent_t *a, const pb_beat_resp_t *resp)
{
    a->last_heard = gx_now_ms();
    a->backoff_ms = BACKOFF_MIN_MS;
    interval_set(a, resp->heartbeat_interval_ms);
    if ((int)resp->state != a->state) {
        agent_log("node state=%s pool=%s node=%s", node_state_name(resp->state), a->conf.node.pool,
                  a->conf.node.id);
        a->state = resp->state;
    }
    for (size_t i = 0; i < resp->n_assigned_jobs; i++)
        job_delivered(a, resp->assigned_jobs[i]);
}

static void
beat_request(const agent_t *a, Galaxy__Pool__V1__HeartbeatRequest *req)
{
    req->pool = a->conf.node.pool;
    req->node_id = a->conf.node.id;
    req->lease_token = a->token;
    req->running_jobs = a->running;
    req->load = (double)a->running / a->conf.capacity.max_jobs;
    if (req->load > 1)
        req->load = 1;
}

/* The stream ended: reconnect, register again, give up, or beat with unary calls a while. */
static void
stream_ended(agent_t *a)
{
    gx_client_status_t st = *gx_client_bidi_status(a->stream);
    uint64_t retry = (uint64_t)a->interval_ms * STREAM_RETRY_BEATS;
    char why[GX_CLIENT_MESSAGE_MAX + 64];

    gx_client_bidi_close(a->stream);
    a->stream = NULL;
    snprintf(why, sizeof(why), "heartbeat stream: %s: %s", status_name(&st), st.message);
    switch (fail_kind(&st)) {
    case FAIL_CONNECTION:
        conn_lost(a, why);
        return;
    case FAIL_UNKNOWN:
        agent_log("node unknown to the server, registering again reason=\"%s\"", why);
        a->need_register = 1;
        return;
    case FAIL_FATAL:
        agent_log("giving up reason=\"%s\"", why);
        a->exit = GX_CLI_EXIT_NO;
        return;
    default:
        a->stream_retry_at =
            gx_now_ms() + (retry > STREAM_RETRY_MIN_MS ? retry : STREAM_RETRY_MIN_MS);
        agent_log("stream ended, unary heartbeats for now reason=\"%s\"", why);
    }
}

static void
stream_open(agent_t *a)
{
    gx_client_status_t st;

    if (gx_client_bidi_open(a->client, SVC "HeartbeatStream",
                            &galaxy__pool__v1__heartbeat_response__descriptor, a->md, a->n_md, 0,
                            &a->stream, &st) == 0) {
        a->last_heard = gx_now_ms();
        return;
    }
    if (fail_kind(&st) == FAIL_CONNECTION) {
        conn_lost(a, st.message);
        return;
    }
    a->stream_retry_at = gx_now_ms() + STREAM_RETRY_MIN_MS;
    agent_log("cannot open the heartbeat stream status=%s message=\"%s\"", status_name(&st),
              st.message);
}

static void
beat_unary(agent_t *a, Galaxy__Pool__V1__HeartbeatRequest *req)
{
    ProtobufCMessage *msg = NULL;
    fail_t kind;

    if (agent_call(a, "heartbeat", SVC "Heartbeat", &req->base,
                   &galaxy__pool__v1__heartbeat_response__descriptor, &msg, &kind) != 0) {
        if (kind == FAIL_UNKNOWN)
            a->need_register = 1;
        else if (kind == FAIL_FATAL)
            a->exit = GX_CLI_EXIT_NO;
        return;
    }
    beat_response(a, (const pb_beat_resp_t *)msg);
    protobuf_c_message_free_unpacked(msg, NULL);
}

static void
beat(agent_t *a, uint64_t now)
{
    Galaxy__Pool__V1__HeartbeatRequest req = GALAXY__POOL__V1__HEARTBEAT_REQUEST__INIT;
    int rv;

    a->next_beat = now + a->interval_ms;
    beat_request(a, &req);
    if (a->stream == NULL) {
        beat_unary(a, &req);
        return;
    }
    if (now - a->last_heard > (uint64_t)a->interval_ms * SILENCE_BEATS + a->call_timeout_ms) {
        conn_lost(a, "heartbeat stream: no answer from the server");
        return;
    }
    rv = gx_client_bidi_send(a->stream, &req.base);
    if (rv == GX_ECLOSED)
        stream_ended(a);
    else if (rv != 0)
        conn_lost(a, "heartbeat stream: the server does not read");
}

/* ------------------------------------------------------------------ the loop */

/* Waits for the next heartbeat, a response on the stream or a signal. */
static void
agent_wait(agent_t *a, uint64_t now)
{
    uint64_t until = a->next_beat;
    ProtobufCMessage *msg = NULL;
    int rv;

    for (job_t *j = a->jobs; j != NULL; j = j->next)
        if (j->kill_at != 0 && j->kill_at < until)
            until = j->kill_at;
    if (until <= now || stop_signal != 0)
        return;
    if (a->stream == NULL) {
        idle(a, until - now);
        return;
    }
    rv = gx_client_bidi_recv(a->stream, (uint32_t)(until - now), a->wake[0], &msg);
    if (rv == 0) {
        beat_response(a, (const pb_beat_resp_t *)msg);
        protobuf_c_message_free_unpacked(msg, NULL);
    } else if (rv == GX_ECLOSED) {
        stream_ended(a);
    }
}

static void
agent_step(agent_t *a)
{
    uint64_t now = gx_now_ms();

    wake_drain(a);
    jobs_reap(a);
    jobs_kill_overdue(a, now);
    if (a->client == NULL) {
        if (now < a->retry_at) {
            idle(a, a->retry_at - now);
            return;
        }
        conn_open(a);
        return;
    }
    if (a->need_register) {
        if (now < a->register_at)
            idle(a, a->register_at - now);
        else
            agent_register(a);
        return;
    }
    if (a->stream == NULL && now >= a->stream_retry_at)
        stream_open(a);
    if (a->client != NULL)
        jobs_report(a);
    if (a->client != NULL && a->exit < 0 && gx_now_ms() >= a->next_beat)
        beat(a, gx_now_ms());
    if (a->client != NULL && a->exit < 0)
        agent_wait(a, gx_now_ms());
}

/* ------------------------------------------------------------------ start and stop */

/* Ends the hooks still running: SIGTERM, a grace period, SIGKILL. */
static void
jobs_stop(agent_t *a)
{
    uint64_t deadline = gx_now_ms() + KILL_GRACE_MS;

    for (job_t *j = a->jobs; j != NULL; j = j->next)
        if (j->pid > 0)
            kill(-j->pid, SIGTERM);
    while (a->running > 0 && gx_now_ms() < deadline) {
        jobs_reap(a);
        if (a->running > 0)
            sleep_ms(a, 20);
        wake_drain(a);
    }
    for (job_t *j = a->jobs; j != NULL; j = j->next) {
        if (j->pid > 0) {
            kill(-j->pid, SIGKILL);
            waitpid(j->pid, NULL, 0);
            j->pid = 0;
        }
    }
    while (a->jobs != NULL) {
        job_t *j = a->jobs;
        a->jobs = j->next;
        free(j->id);
        free(j);
    }
}

static int
agent_init(gx_cli_t *cli, agent_t *a)
{
    int rv = gx_cli_agent_conf(cli, &a->conf);

    if (rv != 0)
        return rv;
    a->cli = cli;
    a->exit = -1;
    a->need_register = 1;
    a->backoff_ms = BACKOFF_MIN_MS;
    a->interval_ms = 10000;
    a->call_timeout_ms = cli->timeout_ms != 0 ? cli->timeout_ms : CALL_TIMEOUT_MS;
    a->n_md = gx_cli_metadata(cli, a->md, a->auth, sizeof(a->auth));
    stop_signal = 0;
    return signals_init(a);
}

static int
agent_run(gx_cli_t *cli, int argc, char **argv)
{
    agent_t *a = calloc(1, sizeof(*a));
    int rv;

    if (a == NULL) {
        gx_cli_error("out of memory");
        return GX_CLI_EXIT_UNAVAILABLE;
    }
    rv = agent_init(cli, a);
    if (rv != 0) {
        free(a);
        return rv;
    }
    agent_log("starting pool=%s node=%s addr=%s max_jobs=%u", a->conf.node.pool, a->conf.node.id,
              cli->copts.addr, a->conf.capacity.max_jobs);
    while (stop_signal == 0 && a->exit < 0)
        agent_step(a);
    gx_client_bidi_close(a->stream);
    a->stream = NULL;
    if (a->exit < 0) {
        agent_log("stopping signal=%s", stop_signal == SIGINT ? "INT" : "TERM");
        rv = agent_deregister(a);
    } else {
        rv = a->exit;
    }
    jobs_stop(a);
    gx_client_close(a->client);
    signals_deinit(a);
    free(a->token);
    free(a);
    return rv;
}

const gx_cli_cmd_t gx_cli_cmds_agent[] = {
    {"agent", "", "",
     "config=FILE pool=POOL id=ID spec=NAME label=KEY=VALUE address=HOST:PORT node-version=V "
     "cpu-millis=N memory-bytes=N gpus=N max-jobs=N hook=CMD",
     0, 0,
     "run a node agent: register, heartbeat, run each assigned job with /bin/sh -c HOOK "
     "until SIGTERM",
     agent_run},
    {NULL, NULL, NULL, NULL, 0, 0, NULL, NULL},
};
