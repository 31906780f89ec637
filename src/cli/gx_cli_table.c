/* SPDX-License-Identifier: MIT */
/*
 * galaxy-cli's tables for people: cells are copied into one growing array
 * (row-major, ncols per row), widths are measured at print time, and the
 * first allocation failure sticks to the table so that commands can add
 * cells without checking each one.  Also the human forms of times and
 * durations.  Strings from the server are made harmless here (control
 * characters become '?'), because a table goes to a terminal.
 */
#include "config.h"

#include "cli/gx_cli_table.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct gx_cli_table_s {
    size_t ncols;
    int header; /* print the first row as a header */
    int kv;     /* two columns "Field:" / value, no header */
    int failed; /* sticky: an allocation failed */
    char **cells;
    size_t n, cap; /* cells used and allocated; cells[0..ncols) is the header row */
};

/* Makes @c harmless on a terminal: control characters become '?'. @return c */
static char *
cell_clean(char *c)
{
    for (unsigned char *p = (unsigned char *)c; p != NULL && *p != '\0'; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
    return c;
}

/* A cleaned copy of @s; NULL is an empty cell. NULL when out of memory. */
static char *
cell_dup(const char *s)
{
    return cell_clean(strdup(s != NULL ? s : ""));
}

/* Appends one cell (taking @c, which may be NULL after a failed allocation). */
static void
cell_push(gx_cli_table_t *t, char *c)
{
    char **cells;

    if (t == NULL || t->failed || c == NULL) {
        if (t != NULL)
            t->failed = 1;
        free(c);
        return;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap != 0 ? t->cap * 2 : 64;
        cells = realloc(t->cells, cap * sizeof(*cells));
        if (cells == NULL) {
            t->failed = 1;
            free(c);
            return;
        }
        t->cells = cells;
        t->cap = cap;
    }
    t->cells[t->n++] = c;
}

static gx_cli_table_t *
table_alloc(void)
{
    return calloc(1, sizeof(gx_cli_table_t));
}

gx_cli_table_t *
gx_cli_table_new(const char *header, ...)
{
    gx_cli_table_t *t = table_alloc();
    va_list ap;

    if (t == NULL)
        return NULL;
    t->header = 1;
    va_start(ap, header);
    for (const char *h = header; h != NULL && t->ncols < GX_CLI_TABLE_MAX_COLS;
         h = va_arg(ap, const char *)) {
        cell_push(t, cell_dup(h));
        t->ncols++;
    }
    va_end(ap);
    if (t->ncols == 0)
        t->failed = 1;
    return t;
}

gx_cli_table_t *
gx_cli_table_kv_new(void)
{
    gx_cli_table_t *t = table_alloc();

    if (t == NULL)
        return NULL;
    t->kv = 1;
    t->ncols = 2;
    return t;
}

void
gx_cli_table_free(gx_cli_table_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

/* Fills the current row up with empty cells, so that the next cell starts a row. */
static void
row_finish(gx_cli_table_t *t)
{
    while (t != NULL && !t->failed && t->n % t->ncols != 0)
        cell_push(t, cell_dup(""));
}

void
gx_cli_table_row(gx_cli_table_t *t, ...)
{
    va_list ap;

    if (t == NULL || t->ncols == 0)
        return;
    row_finish(t);
    va_start(ap, t);
    for (size_t i = 0; i < t->ncols; i++)
        cell_push(t, cell_dup(va_arg(ap, const char *)));
    va_end(ap);
}

/* A formatted, cleaned cell; NULL when out of memory. */
__attribute__((format(printf, 1, 0))) static char *
vformat(const char *fmt, va_list ap)
{
    char *s = NULL;

    if (vasprintf(&s, fmt, ap) < 0)
        return NULL;
    return cell_clean(s);
}

void
gx_cli_table_add(gx_cli_table_t *t, const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = vformat(fmt, ap);
    va_end(ap);
    cell_push(t, s);
}

/* Builds a cell from @n parts, each written by @put into the buffer. */
typedef size_t (*part_fn)(const void *items, size_t i, char *dst);

static void
add_joined(gx_cli_table_t *t, const void *items, size_t n, part_fn put)
{
    size_t len = 0;
    char *s;

    if (n == 0) {
        cell_push(t, cell_dup("-"));
        return;
    }
    for (size_t i = 0; i < n; i++)
        len += put(items, i, NULL) + 1;
    s = malloc(len);
    if (s == NULL) {
        cell_push(t, NULL);
        return;
    }
    len = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            s[len++] = ',';
        len += put(items, i, s + len);
    }
    s[len] = '\0';
    cell_push(t, cell_clean(s));
}

/* Copies @s to @dst (when not NULL). @return its length */
static size_t
put_str(const char *s, char *dst)
{
    size_t n;

    s = s != NULL ? s : "";
    n = strlen(s);
    if (dst != NULL)
        memcpy(dst, s, n);
    return n;
}

static size_t
put_list_item(const void *items, size_t i, char *dst)
{
    return put_str(((char *const *)items)[i], dst);
}

/* A map entry's string field @f (1: key, 2: value). */
static const char *
entry_str(const ProtobufCMessage *e, unsigned f)
{
    const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(e->descriptor, f);

    if (fd == NULL || fd->type != PROTOBUF_C_TYPE_STRING)
        return "";
    return *(char *const *)((const char *)e + fd->offset);
}

static size_t
put_map_entry(const void *items, size_t i, char *dst)
{
    const ProtobufCMessage *e = ((ProtobufCMessage *const *)items)[i];
    size_t n = put_str(entry_str(e, 1), dst);

    if (dst != NULL)
        dst[n] = '=';
    return n + 1 + put_str(entry_str(e, 2), dst != NULL ? dst + n + 1 : NULL);
}

void
gx_cli_table_add_list(gx_cli_table_t *t, char *const *items, size_t n)
{
    add_joined(t, items, n, put_list_item);
}

void
gx_cli_table_add_map(gx_cli_table_t *t, ProtobufCMessage *const *entries, size_t n)
{
    add_joined(t, entries, n, put_map_entry);
}

/* Starts a kv row with its "field:" cell. */
static void
kv_field(gx_cli_table_t *t, const char *field)
{
    char *s;

    row_finish(t);
    if (asprintf(&s, "%s:", field != NULL ? field : "") < 0)
        s = NULL;
    cell_push(t, cell_clean(s));
}

void
gx_cli_table_kv_list(gx_cli_table_t *t, const char *field, char *const *items, size_t n)
{
    kv_field(t, field);
    gx_cli_table_add_list(t, items, n);
}

void
gx_cli_table_kv_map(gx_cli_table_t *t, const char *field, ProtobufCMessage *const *entries,
                    size_t n)
{
    kv_field(t, field);
    gx_cli_table_add_map(t, entries, n);
}

void
gx_cli_table_kv(gx_cli_table_t *t, const char *field, const char *fmt, ...)
{
    va_list ap;
    char *s;

    kv_field(t, field);
    va_start(ap, fmt);
    s = vformat(fmt, ap);
    va_end(ap);
    cell_push(t, s);
}

size_t
gx_cli_table_rows(const gx_cli_table_t *t)
{
    size_t n;

    if (t == NULL || t->ncols == 0)
        return 0;
    n = (t->n + t->ncols - 1) / t->ncols;
    return t->header && n > 0 ? n - 1 : n;
}

/* Display width of a UTF-8 string: its characters (continuation bytes do not count). */
static size_t
width(const char *s)
{
    size_t w = 0;

    for (; *s != '\0'; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

/*
 * Prints the row that starts at cell @first.  Nothing is padded at the end
 * of a line (trailing spaces help no one): the line ends after its last
 * non-empty cell.  @return 0, or -1 when the write failed
 */
static int
row_print(const gx_cli_table_t *t, size_t first, const size_t *w, FILE *out)
{
    size_t end = first + t->ncols < t->n ? first + t->ncols : t->n, last = first;

    for (size_t i = first; i < end; i++)
        if (t->cells[i][0] != '\0')
            last = i;
    for (size_t i = first; i < last; i++)
        if (fprintf(out, "%s%*s", t->cells[i], (int)(w[i - first] - width(t->cells[i]) + 2), "") <
            0)
            return -1;
    return fprintf(out, "%s\n", t->cells[last]) < 0 ? -1 : 0;
}

int
gx_cli_table_print(const gx_cli_table_t *t, FILE *out)
{
    size_t w[GX_CLI_TABLE_MAX_COLS] = {0};
    int rv = 0;

    if (t == NULL || t->failed) {
        fputs("galaxy-cli: out of memory\n", stderr);
        return -1;
    }
    for (size_t i = 0; i < t->n; i++)
        if (width(t->cells[i]) > w[i % t->ncols])
            w[i % t->ncols] = width(t->cells[i]);
    for (size_t i = 0; i < t->n && rv == 0; i += t->ncols)
        rv = row_print(t, i, w, out);
    if (fflush(out) != 0 || rv != 0) {
        fputs("galaxy-cli: cannot write the output\n", stderr);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ human forms */

char *
gx_cli_time_str(int64_t unix_ms, char *buf)
{
    time_t s = (time_t)(unix_ms / 1000);
    struct tm tm;

    if (unix_ms == 0 || gmtime_r(&s, &tm) == NULL ||
        strftime(buf, GX_CLI_TIME_LEN, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(buf, GX_CLI_TIME_LEN, unix_ms == 0 ? "-" : "%" PRId64, unix_ms);
    return buf;
}

char *
gx_cli_duration_str(uint64_t ms, char *buf)
{
    /* each unit with the next smaller one: "3d12h", "2h05m", "1m30s" */
    static const struct {
        uint64_t ms, next;
        char unit, next_unit;
    } units[] = {
        {86400000, 3600000, 'd', 'h'}, {3600000, 60000, 'h', 'm'}, {60000, 1000, 'm', 's'}};

    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (ms >= units[i].ms) {
            snprintf(buf, GX_CLI_TIME_LEN, "%" PRIu64 "%c%02" PRIu64 "%c", ms / units[i].ms,
                     units[i].unit, ms % units[i].ms / units[i].next, units[i].next_unit);
            return buf;
        }
    if (ms >= 1000 || ms == 0)
        snprintf(buf, GX_CLI_TIME_LEN, "%" PRIu64 "s", ms / 1000);
    else
        snprintf(buf, GX_CLI_TIME_LEN, "%" PRIu64 "ms", ms);
    return buf;
}

char *
gx_cli_age_str(int64_t unix_ms, int64_t now_ms, char *buf)
{
    if (unix_ms == 0) {
        snprintf(buf, GX_CLI_TIME_LEN, "-");
        return buf;
    }
    return gx_cli_duration_str(now_ms > unix_ms ? (uint64_t)(now_ms - unix_ms) : 0, buf);
}

char *
gx_cli_bytes_str(uint64_t bytes, char *buf)
{
    static const char units[][4] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)bytes;
    size_t u = 0;

    if (bytes < 1024) {
        snprintf(buf, GX_CLI_TIME_LEN, "%" PRIu64 "B", bytes);
        return buf;
    }
    for (v /= 1024; v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0]); v /= 1024)
        u++;
    snprintf(buf, GX_CLI_TIME_LEN, "%.1f%s", v, units[u]);
    return buf;
}

int64_t
gx_cli_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
