/* SPDX-License-Identifier: MIT */
/**
 * @file gx_access.h
 * Core side of access control: role names, and whether the loaded modules
 * enforce access at all (an authentication module and an access policy),
 * which private pools need.  The per-call functions are public
 * (include/galaxy/gx_module.h).
 */
#ifndef GX_CORE_GX_ACCESS_H
#define GX_CORE_GX_ACCESS_H

#include <galaxy/gx_module.h>

struct gx_mods_s;

/** "viewer", "node", … ("anonymous" for GX_ROLE_NONE). */
const char *gx_role_name(gx_role_t role);
/** Parses a role name (viewer … admin). @return 0 or GX_EINVAL */
int gx_role_parse(const char *s, gx_role_t *out);
/**
 * 1 when some module authenticates (an AUTHN hook) and some module decides
 * access (gx_module_desc_t.access): only then may a pool be private.
 */
int gx_access_enforced(const struct gx_mods_s *mods);
/**
 * Refuses an access policy without any authentication module (it would lock
 * out every role).  @return 0, or GX_ECONF with @p err set
 */
int gx_access_modules_check(const struct gx_mods_s *mods, char *err, size_t errlen);

#endif /* GX_CORE_GX_ACCESS_H */
