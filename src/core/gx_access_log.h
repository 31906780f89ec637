/* SPDX-License-Identifier: MIT */
/**
 * @file gx_access_log.h
 * The access log: one line per call, buffered per worker and written in
 * batches (every 100 ms tick, or when a worker's buffer fills), so that
 * logging never takes a lock or a system call per call.
 */
#ifndef GX_CORE_GX_ACCESS_LOG_H
#define GX_CORE_GX_ACCESS_LOG_H

/**
 * Opens the log: "stderr", "off" or a file path (appended, created 0640).
 * @return 0, GX_EIO or GX_ENOMEM
 */
int gx_access_log_open(const char *where, unsigned workers);
/** Appends one line (a newline is added). @note thread: worker @p w only */
void gx_access_log_line(unsigned w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Writes worker @p w's buffer out. @note thread: worker @p w only */
void gx_access_log_flush(unsigned w);
/** Flushes everything and closes. @note thread: main, after the workers stopped */
void gx_access_log_close(void);

#endif /* GX_CORE_GX_ACCESS_LOG_H */
