/* SPDX-License-Identifier: MIT */
/*
 * auth_apikey: API keys as bearer credentials.  In the AUTHN phase a call
 * with `authorization: Bearer <secret>` becomes the key's principal
 * ("key:<id>", its role and pools) or is refused UNAUTHENTICATED, whatever
 * the call: a wrong, revoked or malformed credential never falls back to
 * anonymous.  A call without the header is not this module's (DECLINED), so
 * auth_mtls, loaded after it, may still identify a client certificate; when
 * both are present the key decides, as API.md says.
 *
 * Keys are created, listed and revoked through PoolAdmin; loading this
 * module makes the server create the first admin key on a new data
 * directory (GALAXY_ADMIN_KEY or <data_dir>/admin.key).
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include <galaxy/gx_module.h>

#define BEARER "bearer "

static const gx_module_t *self;

static int
authn(gx_call_t *call, void *ctx)
{
    size_t len = 0;
    const char *v = gx_call_metadata(call, "authorization", &len);
    const char *secret = NULL;
    gx_status_t st;

    if (v == NULL)
        return GX_DECLINED;
    if (gx_call_metadata_count(call, "authorization") > 1) {
        /* which one would count?  Neither: a caller sends one credential */
        gx_call_authenticate_key(call, "", 0); /* refused and counted like a wrong key */
        return gx_call_fail(call, GX_STATUS_UNAUTHENTICATED,
                            "authorization: more than one value");
    }
    if (len > sizeof(BEARER) - 1 && strncasecmp(v, BEARER, sizeof(BEARER) - 1) == 0) {
        secret = v + sizeof(BEARER) - 1;
        len -= sizeof(BEARER) - 1;
    } else {
        len = 0; /* malformed: refused (and counted) like a wrong key */
    }
    st = gx_call_authenticate_key(call, secret != NULL ? secret : "", len);
    if (st == GX_STATUS_OK)
        return GX_OK; /* the key decides: the rest of AUTHN is skipped */
    gx_mod_log(self, GX_LOG_DEBUG, "refused credentials method=%s peer=%s",
               gx_call_method(call), gx_call_peer(call));
    if (st != GX_STATUS_UNAUTHENTICATED)
        return gx_call_fail(call, st, "authorization: cannot check the API key");
    if (secret == NULL)
        return gx_call_fail(call, st, "authorization: expected \"Bearer <API key secret>\"");
    return gx_call_fail(call, st, "authorization: unknown or revoked API key");
}

static int
apikey_init(gx_module_t *mod, const gx_mod_conf_t *conf, void **ctx)
{
    const char *k = gx_mod_conf_key(conf, 0);

    self = mod;
    if (k != NULL) {
        gx_mod_log(mod, GX_LOG_ERROR, "%s: unknown key \"%s\" (auth_apikey takes no settings)",
                   gx_mod_conf_where(conf, k), k);
        return -EINVAL;
    }
    gx_keys_require();
    *ctx = NULL;
    return 0;
}

static const gx_hook_t apikey_hooks[] = {
    {.phase = GX_PHASE_AUTHN, .fn = authn, .order = 10},
    {.fn = NULL},
};

static const gx_module_desc_t apikey_module = {
    .abi = GX_MODULE_ABI,
    .name = "auth_apikey",
    .version = "1.0.0",
    .edition = "community",
    .init = apikey_init,
    .hooks = apikey_hooks,
};

GX_MODULE(apikey_module);
