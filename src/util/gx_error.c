/* SPDX-License-Identifier: MIT */
/*
 * Reads the one error table of gx_error.h: names, messages and gRPC statuses.
 */
#include "config.h"

#include "util/gx_error.h"

#include <string.h>

const char *
gx_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define GX__ERR_MSG(name, value, msg, status) \
    case value:                                \
        return msg;
        GX_ERRORS(GX__ERR_MSG)
#undef GX__ERR_MSG
    default:
        return err < 0 && err > -GX__E_BASE ? strerror(-err) : "unknown error";
    }
}

gx_status_t
gx_error_to_status(int err)
{
    switch (err) {
    case 0:
        return GX_STATUS_OK;
#define GX__ERR_STATUS(name, value, msg, status) \
    case value:                                   \
        return status;
        GX_ERRORS(GX__ERR_STATUS)
#undef GX__ERR_STATUS
    default:
        return GX_STATUS_INTERNAL;
    }
}
