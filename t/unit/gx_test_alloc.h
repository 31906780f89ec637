/* SPDX-License-Identifier: MIT */
/**
 * @file gx_test_alloc.h
 * Allocation-failure injection for unit tests that #include a source file:
 * define malloc/calloc/realloc/strdup/strndup as the test_ versions below
 * before the include, then set alloc_countdown to n and the n-th allocation
 * after that fails (-1: never).  Proves that out of memory fails the call,
 * not the process, and leaks nothing.
 */
#ifndef GX_T_UNIT_GX_TEST_ALLOC_H
#define GX_T_UNIT_GX_TEST_ALLOC_H

#include <stdlib.h>
#include <string.h>

#define GX_TEST_UNUSED __attribute__((unused))

static long alloc_countdown = -1; /* -1: never fail */

static int
alloc_fails(void)
{
    return alloc_countdown >= 0 && alloc_countdown-- == 0;
}

static GX_TEST_UNUSED void *
test_malloc(size_t size)
{
    return alloc_fails() ? NULL : malloc(size);
}

static GX_TEST_UNUSED void *
test_calloc(size_t n, size_t size)
{
    return alloc_fails() ? NULL : calloc(n, size);
}

static GX_TEST_UNUSED void *
test_realloc(void *ptr, size_t size)
{
    return alloc_fails() ? NULL : realloc(ptr, size);
}

static GX_TEST_UNUSED char *
test_strdup(const char *s)
{
    return alloc_fails() ? NULL : strdup(s);
}

static GX_TEST_UNUSED char *
test_strndup(const char *s, size_t n)
{
    return alloc_fails() ? NULL : strndup(s, n);
}

#endif /* GX_T_UNIT_GX_TEST_ALLOC_H */
