/* SPDX-License-Identifier: MIT */
/*
 * abi_bad_table: serves grpc.health.v1.Health with a method table that
 * disagrees with the descriptor.  Built four times, once per variant of
 * ABI_BAD_TABLE (see Makefile.inc):
 *   1  a missing row (Watch),
 *   2  an extra row (Check, Watch and List),
 *   3  the right number of rows, but one misnamed (Wach),
 *   4  a row without start().
 * The loader must refuse each with a message naming the file and the service.
 */
#include "config.h"

#include <galaxy/gx_module.h>

#include "grpc/health/v1/health.pb-c.h"

#ifndef ABI_BAD_TABLE
#error "ABI_BAD_TABLE must be 1, 2, 3 or 4"
#endif

static int
bad_table_start(gx_call_t *call, const ProtobufCMessage *req, void *mod_ctx)
{
    return GX_DONE;
}

static const gx_method_t bad_table_methods[] = {
    {.name = "Check", .kind = GX_RPC_UNARY, .start = bad_table_start},
#if ABI_BAD_TABLE == 2
    {.name = "Watch", .kind = GX_RPC_SERVER_STREAMING, .start = bad_table_start},
    {.name = "List", .kind = GX_RPC_UNARY, .start = bad_table_start},
#elif ABI_BAD_TABLE == 3
    {.name = "Wach", .kind = GX_RPC_SERVER_STREAMING, .start = bad_table_start},
#elif ABI_BAD_TABLE == 4
    {.name = "Watch", .kind = GX_RPC_SERVER_STREAMING, .start = NULL},
#endif
    {.name = NULL},
};

static const gx_service_t bad_table_service = {
    .desc = &grpc__health__v1__health__descriptor,
    .methods = bad_table_methods,
};

static const gx_service_t *const bad_table_services[] = {&bad_table_service, NULL};

static const gx_module_desc_t bad_table_module = {
    .abi = GX_MODULE_ABI,
    .name = "abi_bad_table",
    .version = "1.0",
    .edition = "community",
    .services = bad_table_services,
};

GX_MODULE(bad_table_module);
