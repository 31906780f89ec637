/* SPDX-License-Identifier: MIT */
/*
 * The server's TLS context: TLS 1.2 or later, ALPN "h2" required (a client
 * that does not offer it fails the handshake, as gRPC clients expect), no
 * renegotiation, and, with tls_client_ca, verified client certificates.  A
 * client without a certificate is let through: API keys or anonymous access
 * decide for it.
 */
#include "config.h"

#include "transport/gx_worker.h"

#include <stdio.h>

#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "util/gx_error.h"
#include "util/gx_log.h"

static int
alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
               unsigned int inlen, void *arg)
{
    static const unsigned char h2[] = "\x02h2";
    unsigned char *sel;

    if (SSL_select_next_proto(&sel, outlen, h2, sizeof(h2) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static int
tls_fail(SSL_CTX *ctx, char *err, size_t errlen, const char *what, const char *file)
{
    char reason[160];

    ERR_error_string_n(ERR_get_error(), reason, sizeof(reason));
    snprintf(err, errlen, "%s %s: %s", what, file, reason);
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return GX_EIO;
}

int
gx__tls_ctx_new(const gx_server_conf_t *conf, SSL_CTX **out, char *err, size_t errlen)
{
    SSL_CTX *ctx;

    if (conf->tls_cert == NULL || conf->tls_key == NULL) {
        snprintf(err, errlen, "tls_listen needs tls_cert and tls_key");
        return GX_EINVAL;
    }
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return tls_fail(NULL, err, errlen, "cannot create", "TLS context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, conf->tls_cert) != 1)
        return tls_fail(ctx, err, errlen, "tls_cert", conf->tls_cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, conf->tls_key, SSL_FILETYPE_PEM) != 1)
        return tls_fail(ctx, err, errlen, "tls_key", conf->tls_key);
    if (SSL_CTX_check_private_key(ctx) != 1)
        return tls_fail(ctx, err, errlen, "tls_key does not match", conf->tls_cert);
    if (conf->tls_client_ca != NULL) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(conf->tls_client_ca);
        if (names == NULL || SSL_CTX_load_verify_locations(ctx, conf->tls_client_ca, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            return tls_fail(ctx, err, errlen, "tls_client_ca", conf->tls_client_ca);
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, NULL);
    *out = ctx;
    return 0;
}

SSL *
gx__tls_ssl_new(gx_server_t *srv)
{
    SSL *ssl;

    pthread_mutex_lock(&srv->ssl_lock);
    ssl = SSL_new(srv->ssl_ctx);
    pthread_mutex_unlock(&srv->ssl_lock);
    return ssl;
}

/*
 * Certificates are renewed in place (a new file under the same name): the new
 * context serves the handshakes from now on, while every open connection keeps
 * the context it was accepted with (its SSL holds a reference).
 */
int
gx__tls_reload(gx_server_t *srv)
{
    SSL_CTX *ctx, *old;
    char err[256];
    int rv;

    if (srv->ssl_ctx == NULL) {
        gx_log(GX_LOG_INFO, "no TLS listener: no certificate to reload");
        return 0;
    }
    rv = gx__tls_ctx_new(&srv->conf, &ctx, err, sizeof(err));
    if (rv != 0) {
        gx_stats_inc(TLS_RELOAD_FAILED);
        gx_log(GX_LOG_WARN, "TLS reload failed: %s: new connections get the certificate loaded "
               "before", err);
        return rv;
    }
    pthread_mutex_lock(&srv->ssl_lock);
    old = srv->ssl_ctx;
    srv->ssl_ctx = ctx;
    pthread_mutex_unlock(&srv->ssl_lock);
    SSL_CTX_free(old);
    gx_stats_inc(TLS_RELOADED);
    gx_log(GX_LOG_INFO, "TLS reloaded tls_cert=%s tls_key=%s tls_client_ca=%s", srv->conf.tls_cert,
           srv->conf.tls_key, srv->conf.tls_client_ca ? srv->conf.tls_client_ca : "-");
    return 0;
}

/* The first SAN of @type in @names, as a NUL-terminated copy, or NULL. */
static char *
san_first(const GENERAL_NAMES *names, int type)
{
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        const ASN1_IA5STRING *v;
        if (gn->type != type)
            continue;
        v = type == GEN_URI ? gn->d.uniformResourceIdentifier : gn->d.dNSName;
        /* an embedded NUL would let one name pose as another */
        if (v->length <= 0 || v->length > 1024 ||
            memchr(v->data, '\0', (size_t)v->length) != NULL)
            return NULL;
        return strndup((const char *)v->data, (size_t)v->length);
    }
    return NULL;
}

char *
gx__tls_peer_identity(SSL *ssl)
{
    X509 *cert = SSL_get0_peer_certificate(ssl);
    GENERAL_NAMES *names;
    char *id;

    if (cert == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
        return NULL;
    names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (names == NULL)
        return NULL;
    id = san_first(names, GEN_URI);
    if (id == NULL)
        id = san_first(names, GEN_DNS);
    GENERAL_NAMES_free(names);
    return id;
}
