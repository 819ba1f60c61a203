/*
 * http.h — the HTTP endpoints beside the page: /healthz, /metrics and the
 * JSON API (/api/symbols, /api/snapshot, /api/history; docs/api.md). They
 * observe the service (read-only views of the normalizer, broadcaster,
 * transport, feeds and history store); nothing here sits in the data flow.
 * /api/history reads disk, so it goes through the history worker (hist) and
 * its response is written when the worker is done.
 */
#ifndef TICKERD_HTTP_H
#define TICKERD_HTTP_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include "tickerd/bcast.h"
#include "tickerd/feed.h"
#include <jansson.h>
#include "tickerd/history.h"
#include "tickerd/netlist.h"
#include "tickerd/norm.h"
#include "tickerd/guard.h"
#include "tickerd/session.h"
#include "tickerd/tls.h"
#include "tickerd/ws.h"

#define HTTP_PROTOCOL_NAME "tickerd-http"

/* What the endpoints read. Pointers to the app's own fields, so a reload that
 * replaces feeds is seen at once. */
typedef struct http_sources {
    const norm *const *norm;
    const bcast *const *bcast;
    const ws_server *const *ws;
    const guard *const *guard;
    const tls_stats *tls; /* server.tls: certificate expiry, reloads */
    const sess_server *const *sess;
    feed *const *const *feeds;
    const size_t *nfeeds;
    int64_t started_us;
    /* history: store NULL when disabled or failed to open (history_error) */
    store *const *store;
    hist *const *hist;
    const char *history_path;
    const char *history_error; /* why the store is not open ("" when it is or is disabled) */
    const int *history_enabled;
    const char *cors_origins; /* api.cors_origins */
    const char *web_root;     /* the page's directory (the admin page is served from it) */
    const int *admin_enabled; /* admin.enabled */
    const netlist *admin_allowed; /* admin.allowed_addresses */
    /* The cluster's part (cluster_ops.h); NULL in tests that have none. */
    const struct cluster_view *cluster;
} http_sources;

typedef struct http_server http_server;

http_server *http_create(const http_sources *src);
void http_destroy(http_server *h);
struct lws_protocols http_protocol(http_server *h);
/* Mounts for the endpoints, chained before `next` (the static page mount). */
const struct lws_http_mount *http_mounts(http_server *h, const struct lws_http_mount *next);

/* Access-Control-Allow-Origin (and Vary) for the request's Origin per
 * allowed (api.cors_origins: "" none, "*" any, else a comma-separated list),
 * added to headers being built at *p; also used by /sse and /api/poll.
 * Nonzero when the headers do not fit. */
int http_cors_header(struct lws *wsi, const char *allowed, unsigned char **p, unsigned char *end);
/* The same for an Origin copied earlier (a held request whose headers are
 * detached). */
int http_cors_origin_header(struct lws *wsi, const char *allowed, const char *origin,
                            unsigned char **p, unsigned char *end);

/* Renderers, exposed for tests: they append to out. */
struct sbuf;
int http_render_metrics(const http_sources *src, struct sbuf *out);
/* Returns the HTTP status: 200 when any feed is live, else 503. */
int http_render_healthz(const http_sources *src, struct sbuf *out);
/* The history store's state as /healthz and /api/admin show it. */
json_t *http_history_json(const http_sources *src, int64_t now);
/* only: list just what this token entitles (NULL: everything). */
struct auth_token;
void http_render_symbols(const http_sources *src, const struct auth_token *only, struct sbuf *out);
/* /api/snapshot: symbols is the comma-separated list ("" or NULL = every
 * symbol with a value). Returns 200, or 404 naming unknown symbols. */
int http_render_snapshot(const http_sources *src, const char *symbols, const struct auth_token *only,
                         struct sbuf *out);

#endif
