/* SPDX-License-Identifier: MIT */
/**
 * @file gx_access_log.h
 * The access log: one line per call, buffered per worker and written in
 * batches (every 100 ms tick, or when a worker's buffer fills), so that
 * logging never takes a lock or a system call per call.
 */
#ifndef GX_CORE_GX_ACCESS_LOG_H
#define GX_CORE_GX_ACCESS_LOG_H

#include <stdint.h>

/**
 * Opens the log: "stderr", "off" or a file path (appended, created 0640).
 * @return 0, GX_EIO or GX_ENOMEM
 */
int gx_access_log_open(const char *where, unsigned workers);
/** One call, as the LOG phase reports it. */
typedef struct {
    const char *method, *status, *peer, *identity;
    unsigned code;
    uint64_t duration_us;
} gx_access_entry_t;

/**
 * Appends one line: `<time> access method=… status=… code=… duration_us=…
 * peer=… identity="…"`.  Formatted by hand: this runs for every call.
 * @note thread: worker @p w only
 */
void gx_access_log_call(unsigned w, const gx_access_entry_t *e);
/**
 * Opens the log's file again, by its path, for logrotate: the lines written
 * from now on go to the file now at that path (buffered lines included).
 * Nothing for "stderr" or "off".  On failure the log goes on in the file it
 * was in, with a warning.
 * @return 0 or GX_EIO
 * @note thread: any (main, on SIGUSR1), while the workers write
 */
int gx_access_log_reopen(void);
/** Writes worker @p w's buffer out. @note thread: worker @p w only */
void gx_access_log_flush(unsigned w);
/** Flushes everything and closes. @note thread: main, after the workers stopped */
void gx_access_log_close(void);

#endif /* GX_CORE_GX_ACCESS_LOG_H */
