/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "util/gx_utf8.h"

#include <string.h>

/* The length of the well-formed sequence at @p s (@p n bytes left, n > 0), or 0. */
static size_t
seq_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0], need, cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        need = 1, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        need = 2, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        need = 3, cp = c & 0x07;
    else
        return 0;
    if (n <= need)
        return 0;
    for (size_t k = 1; k <= need; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3f);
    }
    if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return need + 1;
}

int
gx_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, k;

    while (i < n) {
        if ((k = seq_len(p + i, n - i)) == 0)
            return 0;
        i += k;
    }
    return 1;
}

void
gx_utf8_scrub(char *s)
{
    unsigned char *p = (unsigned char *)s;
    size_t n = strlen(s), k;

    for (size_t i = 0; i < n; i += k)
        if ((k = seq_len(p + i, n - i)) == 0) {
            p[i] = '?';
            k = 1;
        }
}
