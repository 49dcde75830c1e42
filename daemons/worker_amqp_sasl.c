/*
 * worker_amqp_sasl — the server side of SASL for AMQP connections, through
 * Proton's SASL plugin interface (sasl_plugin.h), so the outcome is ours and
 * not Cyrus SASL's (Debian's Proton is built with Cyrus, whose PLAIN would
 * look in a sasldb we do not have).
 *
 * Mechanisms: PLAIN when a users file is configured ([security] users_file),
 * ANONYMOUS when [security] allow_anonymous = true. A client that skips SASL
 * altogether is let in only when anonymous access is allowed (Proton's
 * require_auth). The users file is read once at worker start.
 *
 * Users file format (documented in daemons/README.md): one "user:password"
 * per line; blank lines and lines whose first character is '#' are ignored;
 * the password is everything after the first ':' up to the end of the line
 * (a trailing '\r' is dropped). A line without ':' or with an empty user is an
 * error naming the line.
 */
#include "config.h"

#include <errno.h>
#include <proton/sasl.h>
#include <proton/sasl_plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hamq/log.h"
#include "worker_amqp.h"

#define USERS_MAX 4096
#define USER_LINE_MAX 1024

struct wka_user {
    char *name;
    char *pass;
};

struct wka_users {
    struct wka_user *v;
    size_t n;
};

void wka_users_free(struct wka_users *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->n; i++) {
        free(u->v[i].name);
        if (u->v[i].pass)
            explicit_bzero(u->v[i].pass, strlen(u->v[i].pass));
        free(u->v[i].pass);
    }
    free(u->v);
    free(u);
}

static int users_add(struct wka_users *u, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    struct wka_user *nv;

    if (!colon || colon == line)
        return -EINVAL;
    if (u->n >= USERS_MAX)
        return -E2BIG;
    nv = realloc(u->v, (u->n + 1) * sizeof(*nv));
    if (!nv)
        return -ENOMEM;
    u->v = nv;
    nv[u->n].name = strndup(line, (size_t)(colon - line));
    nv[u->n].pass = strndup(colon + 1, len - (size_t)(colon - line) - 1);
    if (!nv[u->n].name || !nv[u->n].pass) {
        free(nv[u->n].name);
        free(nv[u->n].pass);
        return -ENOMEM;
    }
    u->n++;
    return 0;
}

int wka_users_load(const char *path, struct wka_users **out, char *err, size_t errlen)
{
    struct wka_users *u = calloc(1, sizeof(*u));
    char line[USER_LINE_MAX];
    unsigned lineno = 0;
    int r = 0;

    if (!u)
        return -ENOMEM;
    *out = u;
    if (!path || !path[0])
        return 0;
    FILE *f = fopen(path, "re");
    if (!f) {
        r = -errno;
        snprintf(err, errlen, "cannot open users file %s: %s", path, strerror(errno));
        return r;
    }
    while (fgets(line, sizeof(line), f)) {
        size_t len = strlen(line);
        lineno++;
        if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
            snprintf(err, errlen, "%s:%u: line longer than %d bytes", path, lineno,
                     USER_LINE_MAX - 2);
            r = -EINVAL;
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0 || line[0] == '#')
            continue;
        r = users_add(u, line, len);
        if (r < 0) {
            snprintf(err, errlen, "%s:%u: %s", path, lineno,
                     r == -EINVAL  ? "expected user:password"
                     : r == -E2BIG ? "too many users"
                                   : "out of memory");
            break;
        }
    }
    fclose(f);
    return r;
}

bool wka_users_check(const struct wka_users *u, const char *user, size_t ulen, const char *pass,
                     size_t plen)
{
    if (!u)
        return false;
    for (size_t i = 0; i < u->n; i++) {
        const char *p = u->v[i].pass;
        size_t pl = strlen(p);
        if (strlen(u->v[i].name) != ulen || memcmp(u->v[i].name, user, ulen) != 0)
            continue;
        /* Compare every byte whatever the first difference, so timing says nothing. */
        unsigned char diff = (unsigned char)(pl != plen);
        for (size_t k = 0; k < plen; k++)
            diff |= (unsigned char)(pass[k] ^ (k < pl ? p[k] : 0));
        return diff == 0;
    }
    return false;
}

/* ---- Proton SASL plugin (server only) ---- */

struct sasl_ctx {
    const struct wka_users *users;
    bool allow_anonymous;
    char mechs[32];
};

static struct sasl_ctx *ctx_of(pn_transport_t *t)
{
    return pnx_sasl_get_context(t);
}

static void s_free(pn_transport_t *t)
{
    free(ctx_of(t));
}

static const char *s_list_mechs(pn_transport_t *t)
{
    return ctx_of(t)->mechs;
}

static bool s_init_server(pn_transport_t *t)
{
    pnx_sasl_set_desired_state(t, SASL_POSTED_MECHANISMS);
    return true;
}

static bool s_init_client(pn_transport_t *t)
{
    (void)t;
    return false; /* never a client */
}

static void s_prepare(pn_transport_t *t)
{
    (void)t;
}

static void fail(pn_transport_t *t, const char *why, const char *user)
{
    log_warn("AMQP authentication failed%s%s%s: %s", user ? " for user '" : "", user ? user : "",
             user ? "'" : "", why);
    pnx_sasl_set_failed(t);
    pnx_sasl_set_desired_state(t, SASL_POSTED_OUTCOME);
}

static void plain(pn_transport_t *t, const struct sasl_ctx *c, const pn_bytes_t *in)
{
    /* RFC 4616: [authzid] NUL authcid NUL passwd */
    const char *p = in ? in->start : NULL;
    size_t n = in ? in->size : 0;
    const char *z1 = p ? memchr(p, 0, n) : NULL;
    const char *z2 = z1 ? memchr(z1 + 1, 0, n - (size_t)(z1 + 1 - p)) : NULL;
    char user[256];

    if (!z2) {
        fail(t, "malformed PLAIN response", NULL);
        return;
    }
    size_t ulen = (size_t)(z2 - z1 - 1);
    snprintf(user, sizeof(user), "%.*s", (int)ulen, z1 + 1);
    if (ulen == 0 || ulen >= sizeof(user)) {
        fail(t, "empty or too long user name", NULL);
        return;
    }
    if (!wka_users_check(c->users, z1 + 1, ulen, z2 + 1, n - (size_t)(z2 + 1 - p))) {
        fail(t, "unknown user or wrong password", user);
        return;
    }
    pnx_sasl_set_succeeded(t, user, NULL);
    pnx_sasl_set_desired_state(t, SASL_POSTED_OUTCOME);
}

static void s_process_init(pn_transport_t *t, const char *mech, const pn_bytes_t *in)
{
    const struct sasl_ctx *c = ctx_of(t);

    if (!mech) { /* a sasl-init without a (readable) mechanism */
        fail(t, "no mechanism named", NULL);
    } else if (strcmp(mech, "ANONYMOUS") == 0 && c->allow_anonymous) {
        pnx_sasl_set_succeeded(t, "anonymous", NULL);
        pnx_sasl_set_desired_state(t, SASL_POSTED_OUTCOME);
    } else if (strcmp(mech, "PLAIN") == 0 && c->users) {
        plain(t, c, in);
    } else {
        fail(t, "mechanism not offered", NULL);
    }
}

static void s_process_response(pn_transport_t *t, const pn_bytes_t *in)
{
    (void)in;
    fail(t, "unexpected SASL response (no challenge was sent)", NULL);
}

static bool s_process_mechs(pn_transport_t *t, const char *mechs)
{
    (void)t;
    (void)mechs;
    return false;
}

static void s_process_challenge(pn_transport_t *t, const pn_bytes_t *in)
{
    (void)t;
    (void)in;
}

static void s_process_outcome(pn_transport_t *t, const pn_bytes_t *in)
{
    (void)t;
    (void)in;
}

static bool s_can_encrypt(pn_transport_t *t)
{
    (void)t;
    return false;
}

static ssize_t s_max_encrypt(pn_transport_t *t)
{
    (void)t;
    return 0;
}

static ssize_t s_code(pn_transport_t *t, pn_bytes_t in, pn_bytes_t *out)
{
    (void)t;
    (void)in;
    (void)out;
    return 0;
}

static const pnx_sasl_implementation server_sasl = {
    .free = s_free,
    .list_mechanisms = s_list_mechs,
    .init_server = s_init_server,
    .init_client = s_init_client,
    .prepare_write = s_prepare,
    .process_init = s_process_init,
    .process_response = s_process_response,
    .process_mechanisms = s_process_mechs,
    .process_challenge = s_process_challenge,
    .process_outcome = s_process_outcome,
    .can_encrypt = s_can_encrypt,
    .max_encrypt_size = s_max_encrypt,
    .encode = s_code,
    .decode = s_code,
};

void wka_sasl_setup(pn_transport_t *t, const struct wka_users *users, bool allow_anonymous)
{
    pn_sasl_t *s = pn_sasl(t);
    struct sasl_ctx *c = calloc(1, sizeof(*c));

    if (!c)
        return; /* Proton's own (ANONYMOUS only) stays in place */
    c->users = users && users->n ? users : NULL;
    c->allow_anonymous = allow_anonymous;
    snprintf(c->mechs, sizeof(c->mechs), "%s%s%s", c->users ? "PLAIN" : "",
             c->users && allow_anonymous ? " " : "", allow_anonymous ? "ANONYMOUS" : "");
    pn_sasl_set_allow_insecure_mechs(s, true); /* PLAIN without TLS: no TLS listener yet */
    pnx_sasl_set_implementation(t, &server_sasl, c);
    pn_transport_require_auth(t, !allow_anonymous);
}
