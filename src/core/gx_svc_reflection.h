/* SPDX-License-Identifier: MIT */
/**
 * @file gx_svc_reflection.h
 * The built-in module that serves gRPC server reflection,
 * grpc.reflection.v1.ServerReflection and grpc.reflection.v1alpha.ServerReflection,
 * from the descriptor set embedded at build time.
 */
#ifndef GX_CORE_GX_SVC_REFLECTION_H
#define GX_CORE_GX_SVC_REFLECTION_H

#include <stddef.h>
#include <stdint.h>

#include <galaxy/gx_module.h>

extern const gx_module_desc_t gx_svc_reflection_module;

/**
 * The serialized google.protobuf.FileDescriptorSet of every .proto the server
 * and the modules built with it serve, with their imports (protoc
 * --include_imports), generated into gen/gx_descriptors.c by
 * contrib/gx-bin2c.sh.  Read-only, for the life of the process.
 */
extern const uint8_t gx__descriptor_set[];
/** Its length in bytes. */
extern const size_t gx__descriptor_set_len;

#endif /* GX_CORE_GX_SVC_REFLECTION_H */
