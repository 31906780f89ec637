/* SPDX-License-Identifier: MIT */
/*
 * galaxy-cli watch: Discovery.Watch on a pool, each event printed as it
 * arrives (a line "TYPE NODE STATE REVISION", one JSON document with -o json,
 * the node's id with --quiet) and flushed at once so that a pipe sees it,
 * until Ctrl-C, the server ends the stream, or --count events.
 *
 * gx_cli_stream() runs the client's loop until a message comes, so a signal
 * could not end a quiet watch there.  This file makes the call itself, as a
 * bidirectional one (one request, then half-closed) whose waits also end when
 * the self-pipe that SIGINT and SIGTERM write to becomes readable: the call
 * is then cancelled and the command exits 0.  The connection, the
 * credentials, the deadline and a failed call's exit code are gx_cli.c's, as
 * for every other call.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/gx_cli.h"
#include "galaxy/pool/v1/pool.pb-c.h"
#include "transport/gx_grpc.h"
#include "util/gx_error.h"

#define METHOD_WATCH "/galaxy.pool.v1.Discovery/Watch"
/* a node id is at most 128 characters (API.md) */
#define NODE_ID_MAX 128

typedef Galaxy__Pool__V1__WatchEvent event_t;

typedef struct {
    gx_cli_t *cli;
    uint32_t count; /* stop after this many events; 0: never */
    uint32_t seen;
    int wake[2]; /* the self-pipe: the signal handler writes, the waits watch it */
} watch_t;

static volatile sig_atomic_t stop_signal;
static int wake_write_fd = -1;

/* ------------------------------------------------------------------ signals */

static void
on_signal(int sig)
{
    int saved = errno;

    stop_signal = sig;
    if (write(wake_write_fd, "", 1) < 0) {
        /* the pipe is full: the wait has been woken already */
    }
    errno = saved;
}

static int
signals_init(watch_t *w)
{
    struct sigaction sa;

    if (pipe2(w->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        gx_cli_error("watch: pipe: %s", strerror(errno));
        return GX_CLI_EXIT_UNAVAILABLE;
    }
    wake_write_fd = w->wake[1];
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return 0;
}

static void
signals_deinit(watch_t *w)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    wake_write_fd = -1;
    close(w->wake[0]);
    close(w->wake[1]);
}

static void
wake_drain(watch_t *w)
{
    char buf[64];

    while (read(w->wake[0], buf, sizeof(buf)) > 0) {
    }
}

/* ------------------------------------------------------------------ output */

/* @s with control characters as '?', cut to fit @buf: a server-sent string moves no cursor */
static const char *
clean(const char *s, char *buf, size_t len)
{
    size_t i;

    for (i = 0; s[i] != '\0' && i + 1 < len; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

/* One event on stdout, flushed. @return an exit code */
static int
event_print(const gx_cli_t *cli, const event_t *ev)
{
    char type[GX_CLI_ENUM_LEN], state[GX_CLI_ENUM_LEN], id[NODE_ID_MAX + 1] = "-";
    const Galaxy__Pool__V1__Node *n = ev->node;
    const char *state_s = "-", *type_s;
    int rv = 0;

    if (cli->output == GX_CLI_OUT_JSON && !cli->quiet)
        return gx_cli_print_json(&ev->base);
    type_s = gx_cli_enum_str(&galaxy__pool__v1__watch_event_type__descriptor, ev->type, type);
    if (n != NULL) {
        clean(n->id, id, sizeof(id));
        state_s = gx_cli_enum_str(&galaxy__pool__v1__node_state__descriptor, n->state, state);
    }
    if (!cli->quiet)
        rv =
            printf("%-8s %-20s %-9s %llu\n", type_s, id, state_s, (unsigned long long)ev->revision);
    else if (n != NULL)
        rv = printf("%s\n", id);
    if (rv < 0 || fflush(stdout) != 0) {
        gx_cli_error("cannot write the output");
        return GX_CLI_EXIT_UNAVAILABLE;
    }
    return GX_CLI_EXIT_OK;
}

/* ------------------------------------------------------------------ the call */

/* Starts the call: headers, the request, half-close. @return an exit code */
static int
watch_open(gx_cli_t *cli, const Galaxy__Pool__V1__WatchRequest *req, gx_client_bidi_t **b)
{
    char auth[GX_CLI_AUTH_LEN];
    gx_client_md_t md;
    gx_client_status_t st;
    size_t n_md = gx_cli_metadata(cli, &md, auth, sizeof(auth));
    int rv = gx_cli_connect(cli);

    if (rv != GX_CLI_EXIT_OK)
        return rv;
    rv = gx_client_bidi_open(cli->client, METHOD_WATCH, &galaxy__pool__v1__watch_event__descriptor,
                             &md, n_md, gx_cli_time_left(cli, 0), b, &st);
    if (rv == GX_ENOMEM) {
        gx_cli_error("out of memory");
        return GX_CLI_EXIT_UNAVAILABLE;
    }
    if (rv != 0)
        return gx_cli_status_exit(&st);
    rv = gx_client_bidi_send(*b, &req->base);
    if (rv == 0)
        rv = gx_client_bidi_close_send(*b);
    /* a call that ended already tells why at the first receive */
    if (rv != 0 && rv != GX_ECLOSED) {
        gx_cli_error("cannot send the request: %s", gx_strerror(rv));
        return GX_CLI_EXIT_UNAVAILABLE;
    }
    return GX_CLI_EXIT_OK;
}

/* Receives and prints events until the end. @return an exit code */
static int
watch_loop(watch_t *w, gx_client_bidi_t *b)
{
    const gx_client_status_t *st;
    ProtobufCMessage *msg;
    int rv;

    while (stop_signal == 0) {
        rv = gx_client_bidi_recv(b, GX_CLIENT_WAIT_FOREVER, w->wake[0], &msg);
        if (rv == GX_ETIMEDOUT) {
            wake_drain(w);
            continue;
        }
        if (rv == GX_ENOMEM) {
            gx_cli_error("out of memory");
            return GX_CLI_EXIT_UNAVAILABLE;
        }
        if (rv != 0)
            break;
        rv = event_print(w->cli, (const event_t *)msg);
        protobuf_c_message_free_unpacked(msg, NULL);
        if (rv != GX_CLI_EXIT_OK)
            return rv;
        if (w->count != 0 && ++w->seen >= w->count)
            return GX_CLI_EXIT_OK;
    }
    if (stop_signal != 0)
        return GX_CLI_EXIT_OK;
    st = gx_client_bidi_status(b);
    return st->code == GX_STATUS_OK ? GX_CLI_EXIT_OK : gx_cli_status_exit(st);
}

/* The request from the line. @return an exit code */
static int
watch_request(gx_cli_t *cli, watch_t *w, Galaxy__Pool__V1__WatchRequest *req)
{
    const char *spec = gx_cli_opt(cli, "spec"), *from = gx_cli_opt(cli, "from-revision");
    const char *count = gx_cli_opt(cli, "count");
    unsigned long long rev;
    char *end;

    if (spec != NULL)
        req->specialization = (char *)spec;
    if (count != NULL && gx_cli_parse_u32("count", count, 1, UINT32_MAX, &w->count) != 0)
        return GX_CLI_EXIT_USAGE;
    if (from == NULL)
        return GX_CLI_EXIT_OK;
    errno = 0;
    rev = from[0] >= '0' && from[0] <= '9' ? strtoull(from, &end, 10) : 0;
    if (from[0] < '0' || from[0] > '9' || *end != '\0' || errno != 0)
        return gx_cli_usage_error(cli, "--from-revision: expected a revision number, got '%s'",
                                  from);
    req->start_revision = rev;
    return GX_CLI_EXIT_OK;
}

static int
watch(gx_cli_t *cli, int argc, char **argv)
{
    Galaxy__Pool__V1__WatchRequest req = GALAXY__POOL__V1__WATCH_REQUEST__INIT;
    watch_t w = {.cli = cli};
    gx_client_bidi_t *b = NULL;
    int rv = watch_request(cli, &w, &req);

    req.pool = argv[0];
    if (rv != GX_CLI_EXIT_OK || (rv = signals_init(&w)) != GX_CLI_EXIT_OK)
        return rv;
    rv = watch_open(cli, &req, &b);
    if (rv == GX_CLI_EXIT_OK)
        rv = watch_loop(&w, b);
    else if (stop_signal != 0) /* interrupted while connecting */
        rv = GX_CLI_EXIT_OK;
    gx_client_bidi_close(b);
    signals_deinit(&w);
    return rv;
}

const gx_cli_cmd_t gx_cli_cmds_watch[] = {
    {"watch", "", "POOL", "spec=SPEC from-revision=R count=N", 1, 1,
     "print a pool's node events as they happen, until Ctrl-C or --count N", watch},
    {NULL, NULL, NULL, NULL, 0, 0, NULL, NULL},
};
