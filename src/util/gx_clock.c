/* SPDX-License-Identifier: MIT */
/**
 * @file gx_clock.c
 * The per-thread cached event time of gx_clock.h.
 */
#include "config.h"
#include "util/gx_clock.h"

__thread uint64_t gx__event_ns;
__thread int64_t gx__event_unix_ms;
