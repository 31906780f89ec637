/* SPDX-License-Identifier: MIT */
/**
 * @file gx_cli_table.h
 * galaxy-cli's output for people (`-o table`, the default): rows of cells
 * collected in memory, then printed as aligned columns under a header; and
 * the human forms of times and durations that tables show.
 *
 * A list command:
 * @code
 *     gx_cli_table_t *t = gx_cli_table_new("NAME", "STATE", "NODES", "CREATED", NULL);
 *     char when[GX_CLI_TIME_LEN];
 *
 *     for (size_t i = 0; i < resp->n_pools; i++) {
 *         const Galaxy__Pool__V1__Pool *p = resp->pools[i];
 *         // cell by cell, printf-style; a row is complete after one cell per column
 *         gx_cli_table_add(t, "%s", p->name);
 *         gx_cli_table_add(t, "%s", "ok");
 *         gx_cli_table_add(t, "%u", p->node_count);
 *         gx_cli_table_add(t, "%s", gx_cli_time_str(p->created_unix_ms, when));
 *     }
 *     // or a whole row of strings at once: gx_cli_table_row(t, a, b, c, d);
 *     rv = gx_cli_table_print(t, stdout);  // 0, or -1: out of memory or write error
 *     gx_cli_table_free(t);
 * @endcode
 *
 * A show command prints one object as "Field:  value" lines, with the same
 * table, two columns and no header (gx_cli_table_kv_new(), gx_cli_table_kv()).
 *
 * Output format: columns are separated by two spaces and padded to the
 * widest cell (counted in UTF-8 characters); a line ends after its last
 * non-empty cell, without trailing spaces, with "\n".  A table with no rows prints its header alone
 * (a kv table prints nothing).  Cells are copied: control characters (below
 * 0x20 and 0x7f) become '?', so that a server-sent string cannot move the
 * cursor or break a line.  An empty cell prints as nothing: pass "-" where
 * an empty value means "none" (the _list/_map helpers do).
 *
 * Errors are sticky: an allocation that fails in _row/_add/_kv marks the
 * table, later additions are ignored, and gx_cli_table_print() reports it
 * (printing nothing) with "galaxy-cli: out of memory" on stderr.
 *
 * Threads: a table belongs to one thread.  The time helpers are reentrant.
 */
#ifndef GX_CLI_GX_CLI_TABLE_H
#define GX_CLI_GX_CLI_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

typedef struct gx_cli_table_s gx_cli_table_t;

/** Most columns a table may have (extra headers are ignored). */
#define GX_CLI_TABLE_MAX_COLS 16

/**
 * A new table whose columns are the given headers, in order; the list ends
 * with NULL (the compiler checks it).  The strings are copied.
 * @return the table (free it with gx_cli_table_free()), or NULL when out of
 *         memory (the other functions accept NULL and then fail at print).
 */
gx_cli_table_t *gx_cli_table_new(const char *header, ...) __attribute__((sentinel));

/**
 * A new two-column table for one object, printed without a header:
 * "Name:         value".  Fill it with gx_cli_table_kv().
 */
gx_cli_table_t *gx_cli_table_kv_new(void);

/** Frees the table and every cell. NULL is a no-op. */
void gx_cli_table_free(gx_cli_table_t *t);

/**
 * Adds a whole row: exactly as many values as the table has columns (no
 * sentinel: a NULL value is an empty cell).  Starts a new row even when the
 * previous one was left incomplete by gx_cli_table_add() (its missing cells
 * stay empty).
 */
void gx_cli_table_row(gx_cli_table_t *t, ...);

/**
 * Adds one cell, printf-style, to the current row; the row is complete once
 * it holds a cell per column, and the next cell starts a new row.
 */
void gx_cli_table_add(gx_cli_table_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/**
 * Adds one cell holding @p n strings joined by ","; "-" when @p n is 0
 * (e.g. a pool's specializations: any).
 */
void gx_cli_table_add_list(gx_cli_table_t *t, char *const *items, size_t n);

/**
 * Adds one cell holding a protobuf map<string,string> as "k=v,k2=v2" (in the
 * order received); "-" when @p n is 0.
 * @param entries  the map field's entries, e.g. (ProtobufCMessage **)node->labels
 *                 with node->n_labels: any message whose fields 1 and 2 are the
 *                 string key and value.
 */
void gx_cli_table_add_map(gx_cli_table_t *t, ProtobufCMessage *const *entries, size_t n);

/**
 * Adds a row "@p field:" / value to a kv table (gx_cli_table_kv_new()).
 */
void gx_cli_table_kv(gx_cli_table_t *t, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** A kv row whose value is @p n strings joined by "," ("-" when none), as gx_cli_table_add_list().
 */
void gx_cli_table_kv_list(gx_cli_table_t *t, const char *field, char *const *items, size_t n);

/** A kv row whose value is a map<string,string>, as gx_cli_table_add_map(). */
void gx_cli_table_kv_map(gx_cli_table_t *t, const char *field, ProtobufCMessage *const *entries,
                         size_t n);

/** Number of complete or started rows (the header excluded). */
size_t gx_cli_table_rows(const gx_cli_table_t *t);

/**
 * Prints the table to @p out and flushes it.  May be called once or several
 * times; the table is unchanged.
 * @return 0; -1 when an earlier allocation failed (nothing printed; the
 *         message is on stderr) or the write failed.  Commands map -1 to
 *         GX_CLI_EXIT_UNAVAILABLE, like gx_cli_print_json().
 */
int gx_cli_table_print(const gx_cli_table_t *t, FILE *out);

/* ------------------------------------------------------------------ human forms */

/** Room for any string the helpers below write, with its NUL. */
#define GX_CLI_TIME_LEN 32

/**
 * A time in Unix milliseconds as "2026-11-25 19:45:01" (UTC, seconds
 * truncated); "-" for 0 (the field's "never" / "not set").
 * @return @p buf, which holds at least GX_CLI_TIME_LEN bytes.
 */
char *gx_cli_time_str(int64_t unix_ms, char *buf);

/**
 * How long ago @p unix_ms was, relative to @p now_ms (Unix milliseconds,
 * e.g. gx_cli_now_ms()), in the largest fitting unit pair: "850ms", "12s",
 * "4m05s", "3h07m", "12d04h"; "-" for 0; a time in the future (clock skew)
 * counts as "0s".
 * @return @p buf (GX_CLI_TIME_LEN bytes).
 */
char *gx_cli_age_str(int64_t unix_ms, int64_t now_ms, char *buf);

/**
 * A duration in milliseconds in the same units as gx_cli_age_str(): "0s",
 * "850ms", "10s", "1m30s", "2h00m", "3d12h".
 * @return @p buf (GX_CLI_TIME_LEN bytes).
 */
char *gx_cli_duration_str(uint64_t ms, char *buf);

/**
 * A size in bytes in binary units: "512B", "1.5KiB", "1.0GiB", "2.0TiB".
 * @return @p buf (GX_CLI_TIME_LEN bytes).
 */
char *gx_cli_bytes_str(uint64_t bytes, char *buf);

/** The wall clock in Unix milliseconds (CLOCK_REALTIME). */
int64_t gx_cli_now_ms(void);

#endif /* GX_CLI_GX_CLI_TABLE_H */
