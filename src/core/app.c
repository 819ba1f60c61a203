/* app.c — see app.h. */
#include "tickerd/app.h"

#include <libwebsockets.h>
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h> /* malloc_trim */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#if defined(TICKERD_WITH_LIBUV)
#include <uv.h>
#endif

#include "tickerd/bcast.h"
#include "tickerd/cluster.h"
#include "tickerd/cluster_edge.h"
#include "tickerd/cluster_ingest.h"
#include "tickerd/cluster_ops.h"
#include "tickerd/feed.h"
#include "tickerd/feed_ws.h"
#include "tickerd/history.h"
#include "tickerd/http.h"
#include "tickerd/log.h"
#include "tickerd/norm.h"
#include "tickerd/store.h"
#include "tickerd/symtab.h"
#include "tickerd/util.h"
#include "tickerd/ws.h"
#include "tickerd/eio.h"
#include "tickerd/sio.h"
#include "tickerd/sse.h"
#include "tickerd/poll.h"
#include "tickerd/guard.h"
#include "tickerd/auth.h"
#include "tickerd/gate.h"
#include "tickerd/tls.h"
#include "tickerd/svcwait.h"

#define APP_HOUSEKEEPING_US 250000

struct app {
    cfg_t cfg;
    struct lws_context *ctx;
#if defined(TICKERD_WITH_LIBUV)
    uv_loop_t loop; /* ours, lent to lws (a "foreign" loop) so app_service can run it once */
    int use_uv;
#endif
    int svcwait; /* svcwait_start(SVCWAIT_EPOLL) succeeded: svcwait_stop() at the end */
    struct lws_vhost *vhost;  /* serves HTTP and WebSocket; listens on nothing itself */
    struct lws_vhost *listen; /* the port: accepted sockets meet the guard first */
    struct lws_vhost *redirect; /* server.tls.redirect_port: 301 to https */
    guard *guard;
    auth *auth; /* tokens (auth.*) */
    gate *gate; /* Origin policy, address lists, tokens of requests */
    void *ssl_ctx;            /* the serving vhost's SSL_CTX (TLS), for reloads */
    tls_stats tls;
    norm *norm;
    bcast *bcast;
    sess_server *sess; /* sessions of every transport */
    ws_server *ws;
    eio_server *eio; /* Engine.IO / Socket.IO at /socket.io/ */
    sse_server *sse;
    poll_server *poll;
    http_server *http;
    store *store; /* NULL: history disabled, or the file could not be opened */
    hist *hist;   /* history reads, off the loop (also answers when store is NULL) */
    char history_path[512];
    char history_error[256];
    feed **feeds;
    size_t nfeeds;
    cluster_view cluster; /* cluster.role: the ingest writer or the edge reader (docs/cluster.md) */
    struct lws_protocols protocols[10];
    struct lws_protocols guard_protocols[2];
    struct lws_protocols redirect_protocols[2];
    struct lws_http_mount page_mount;
    struct lws_protocol_vhost_options ws_default, ws_pvo;
    lws_retry_bo_t ws_liveness;
    lws_sorted_usec_list_t flush_sul;
    lws_sorted_usec_list_t housekeeping_sul;
    uint64_t trim_accepted; /* connections the listener had accepted at the last look (app_trim) */
    int64_t trim_last_us;  /* when memory was last given back */
    uint8_t trim_due;      /* connections arrived since */
    char web_root[512];
    int port;
};

/* ---- the flow: feed → normalizer → broadcaster ---- */

static void app_on_update(void *arg, const feed_update *u) { norm_ingest(((app *)arg)->norm, u); }

static int app_on_declare(void *arg, uint16_t source, const char *venue_symbol,
                          const char *canonical)
{
    return norm_declare(((app *)arg)->norm, source, venue_symbol, canonical);
}

static void app_on_symbol(void *arg, uint32_t id, const char *symbol)
{
    if (bcast_symbol_added(((app *)arg)->bcast, id, symbol))
        log_error("broadcaster could not add symbol %s", symbol);
}

static void app_on_publish(void *arg, uint32_t id, const norm_quote *q)
{
    app *a = arg;
    bcast_publish(a->bcast, id, q);
    if (a->cluster.ingest) {
        /* Redis gets the encoding just made; it numbers it (the cluster's seq). */
        size_t len;
        const char *enc = bcast_symbol_json(a->bcast, id, &len);
        cluster_ingest_put(a->cluster.ingest, id, q, enc, len);
    }
    /* History observes: a copy into the writer's ring, never a wait (a full
     * ring drops the tick, counted and recorded as a gap). */
    if (a->store)
        store_put(a->store, q);
}

/* Feeds with threads of their own hand over through mailboxes and wake the
 * loop with lws_cancel_service(), which lws reports to every protocol as
 * EVENT_WAIT_CANCELLED; this protocol has no connections, only that. */
static int app_loop_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                             void *in, size_t len)
{
    (void)user;
    (void)in;
    (void)len;
    if (reason == LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION)
        return 1; /* not a protocol clients may ask for */
    if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
        app *a = lws_get_protocol(wsi)->user;
        for (size_t i = 0; i < a->nfeeds; i++)
            feed_wake(a->feeds[i]);
        hist_deliver(a->hist);
        if (a->cluster.edge)
            cluster_edge_deliver(a->cluster.edge);
    }
    return 0;
}

/* ---- timers ---- */

static void app_flush(lws_sorted_usec_list_t *sul)
{
    app *a = lws_container_of(sul, app, flush_sul);
    norm_flush(a->norm);
    int ms = norm_flush_interval(a->norm);
    if (ms > 0)
        lws_sul_schedule(a->ctx, 0, &a->flush_sul, app_flush, (lws_usec_t)ms * 1000);
}

/* A burst of connections — TLS handshakes above all (OpenSSL's handshake
 * state and record buffers), and every head's lws header buffer — leaves
 * freed memory in glibc's arenas that the next burst would reuse but that
 * the operator sees as RSS. (An idle TLS connection itself holds ~15 KiB
 * more than a plain one, live in OpenSSL: docs/performance.md.) Once a burst is
 * over (a housekeeping period without a new connection), or every
 * APP_TRIM_EVERY_US while connections keep coming, it goes back to the
 * system. malloc_trim walks the free lists: a few ms at most, and only after
 * connections came. */
#define APP_TRIM_EVERY_US 10000000
static void app_trim(app *a, int64_t now)
{
    uint64_t accepted = guard_get_stats(a->guard)->accepted;
    int arriving = accepted != a->trim_accepted;
    a->trim_accepted = accepted;
    if (arriving)
        a->trim_due = 1;
    if (!a->trim_due || (arriving && now - a->trim_last_us < APP_TRIM_EVERY_US))
        return;
    a->trim_due = 0;
    a->trim_last_us = now;
#ifdef __GLIBC__
    int released = malloc_trim(0);
    log_debug("memory trimmed after connections (%s, %lld us)", released ? "some released" : "none released",
              (long long)(tk_mono_us() - now));
#endif
}

static void app_housekeeping(lws_sorted_usec_list_t *sul)
{
    app *a = lws_container_of(sul, app, housekeeping_sul);
    ws_sweep(a->ws);
    sse_sweep(a->sse);
    sess_sweep(a->sess); /* token expiry, reauth, auth timeouts */
    guard_sweep(a->guard);
    int64_t now = tk_now_us();
    norm_check_stale(a->norm, now);
    for (size_t i = 0; i < a->nfeeds; i++)
        feed_note_status(a->feeds[i], now);
    if (a->cluster.edge)
        cluster_edge_tick(a->cluster.edge, now);
    app_trim(a, tk_mono_us());
    lws_sul_schedule(a->ctx, 0, &a->housekeeping_sul, app_housekeeping, APP_HOUSEKEEPING_US);
}

static void app_schedule_flush(app *a)
{
    lws_sul_cancel(&a->flush_sul);
    int ms = norm_flush_interval(a->norm);
    if (ms > 0)
        lws_sul_schedule(a->ctx, 0, &a->flush_sul, app_flush, (lws_usec_t)ms * 1000);
}

/* ---- history ---- */

static void app_wake_loop(void *arg) { lws_cancel_service(((app *)arg)->ctx); }

static store_opts app_store_opts(const cfg_t *c)
{
    store_opts o;
    store_opts_init(&o);
    o.capacity = (size_t)c->history.queue_capacity;
    o.flush_interval_ms = c->history.flush_interval_ms;
    o.retention_ticks_s = c->history.retention_ticks_s;
    o.retention_1s_s = c->history.retention_1s_s;
    o.retention_1m_s = c->history.retention_1m_s;
    o.retention_1h_s = c->history.retention_1h_s;
    o.max_db_bytes = (int64_t)c->history.max_db_mb << 20;
    return o;
}

/* Open the history file. A file that cannot be opened (read-only or full
 * disk, a schema from a newer build) is not fatal: prices are the service,
 * history is a view of them, so tickerd runs live-only and says why in the
 * log, /healthz and /metrics. */
static void app_history_open(app *a)
{
    const cfg_t *c = &a->cfg;
    if (!c->history.enabled)
        return;
    /* An edge publishes what Redis carries: writing it too would make every
     * edge a second writer of the ingest's history (of its file, when they
     * share a state directory). History stays the ingest's job, and the
     * edge says so to whoever asks it (docs/cluster.md). */
    if (c->cluster.role == CFG_CLUSTER_EDGE) {
        snprintf(a->history_error, sizeof(a->history_error),
                 "history is kept by the ingest (cluster.role edge): ask the ingest's /api/history");
        log_info("history: not kept on an edge (cluster.role edge)");
        return;
    }
    if (cfg_history_path(c, a->history_path, sizeof(a->history_path))) {
        snprintf(a->history_error, sizeof(a->history_error),
                 "no state directory: set history.path, STATE_DIRECTORY, XDG_STATE_HOME or HOME");
    } else {
        store_opts o = app_store_opts(c);
        a->store = store_open(a->history_path, &o, a->history_error, sizeof(a->history_error));
        if (a->store && store_start(a->store, a->history_error, sizeof(a->history_error))) {
            store_close(a->store);
            a->store = NULL;
        }
    }
    if (a->store)
        log_info("history: %s (flush every %d ms)", a->history_path, c->history.flush_interval_ms);
    else
        log_error("history unavailable, running live-only: %s", a->history_error);
}

/* ---- configuration → module options ---- */

/* The resume rings cost max_symbols × depth × one encoding at worst: keep
 * that under APP_RESUME_RING_BUDGET by shortening the rings for very large
 * symbol sets (a benchmark's 100k generated symbols), and say so. */
#define APP_RESUME_RING_BUDGET ((size_t)256 << 20)

static bcast_opts app_bcast_opts(const cfg_t *c)
{
    size_t per_entry = (size_t)c->normalizer.max_symbols * BCAST_RING_SLOT_BYTES;
    uint32_t depth = (uint32_t)c->broadcast.resume_depth;
    if (depth && per_entry * depth > APP_RESUME_RING_BUDGET) {
        uint32_t fit = (uint32_t)(APP_RESUME_RING_BUDGET / per_entry);
        log_warn("broadcast.resume_depth %u × normalizer.max_symbols %d would need up to %zu MiB; "
                 "using depth %u (%zu MiB budget)",
                 depth, c->normalizer.max_symbols, per_entry * depth >> 20, fit,
                 APP_RESUME_RING_BUDGET >> 20);
        depth = fit;
    }
    bcast_opts o = {
        .max_subscriptions = (uint32_t)c->limits.max_subscriptions,
        .max_frame_bytes = (size_t)c->broadcast.max_frame_bytes,
        .resume_depth = depth,
        .backlog_ms = (uint32_t)c->broadcast.backlog_ms,
    };
    return o;
}

static ws_limits app_ws_limits(const cfg_t *c)
{
    ws_limits l = {
        .max_message_bytes = (uint32_t)c->limits.max_message_bytes,
        .stall_timeout_ms = (uint32_t)c->broadcast.stall_timeout_ms,
        .permessage_deflate = (uint8_t)c->broadcast.permessage_deflate,
        .ping_interval_ms = (uint32_t)c->broadcast.ping_interval_s * 1000,
    };
    return l;
}

/* Engine.IO: socketio.* sets the heartbeat; the existing limits.* bound
 * each client message (maxPayload) and the session count. */
static eio_limits app_eio_limits(const cfg_t *c)
{
    eio_limits l = {
        .ping_interval_ms = (uint32_t)c->socketio.ping_interval_ms,
        .ping_timeout_ms = (uint32_t)c->socketio.ping_timeout_ms,
        .max_payload_bytes = (uint32_t)c->limits.max_message_bytes,
        .max_sessions = (uint32_t)c->server.max_connections,
        .max_message_room = (uint32_t)c->broadcast.max_frame_bytes + 256,
    };
    return l;
}

static sse_limits app_sse_limits(const cfg_t *c)
{
    sse_limits l = {
        .heartbeat_ms = (uint32_t)c->api.sse_heartbeat_s * 1000,
        .retry_ms = (uint32_t)c->api.sse_retry_ms,
        .stall_timeout_ms = (uint32_t)c->broadcast.stall_timeout_ms,
        .max_frame_bytes = (uint32_t)c->broadcast.max_frame_bytes,
    };
    return l;
}

static poll_limits app_poll_limits(const cfg_t *c)
{
    poll_limits l = {
        .hold_ms = (uint32_t)c->api.poll_hold_s * 1000,
        .max_frame_bytes = (uint32_t)c->broadcast.max_frame_bytes,
    };
    return l;
}

static sess_limits app_sess_limits(const cfg_t *c)
{
    sess_limits l = {
        .max_sessions = (uint32_t)c->server.max_connections,
        .max_message_bytes = (uint32_t)c->limits.max_message_bytes,
        .max_messages_per_sec = (uint32_t)c->limits.max_messages_per_sec,
        .max_errors = (uint32_t)c->limits.max_errors,
        .max_frame_bytes = (uint32_t)c->broadcast.max_frame_bytes,
        .subscribe_timeout_ms = (uint32_t)c->limits.subscribe_timeout_ms,
    };
    return l;
}

static feed *app_feed_start(app *a, const feed_cfg *fc)
{
    int source = norm_source_add(a->norm, fc->name);
    if (source < 0) {
        log_error("feed %s: too many sources", fc->name);
        return NULL;
    }
    feed_env env = {
        .lws = a->ctx,
        .vhost = a->vhost,
        .sink = {.arg = a, .emit = app_on_update, .declare = app_on_declare},
        .source = (uint16_t)source,
    };
    snprintf(env.name, sizeof(env.name), "%s", fc->name);
    feed *f = feed_create(fc, &env);
    if (!f) {
        log_error("feed %s: could not be created", fc->name);
        return NULL;
    }
    if (feed_start(f)) {
        log_error("feed %s: could not be started", fc->name);
        feed_destroy(f);
        return NULL;
    }
    log_info("feed %s (%s) started", fc->name, fc->type->name);
    return f;
}

/* Source priority: the feeds[] order, then normalizer.priority overrides.
 * Called once the feeds (and so their source ids) exist. */
static void app_apply_priorities(app *a, const cfg_t *c)
{
    size_t total = c->nfeeds;
    for (size_t i = 0; i < c->normalizer.npriority; i++)
        total += c->normalizer.priority[i].nfeeds;
    const char **names = calloc(total ? total : 1, sizeof(*names));
    norm_priority *ov = calloc(c->normalizer.npriority ? c->normalizer.npriority : 1, sizeof(*ov));
    int rc = -1;
    if (names && ov) {
        size_t k = 0;
        for (size_t i = 0; i < c->nfeeds; i++)
            names[k++] = c->feeds[i].name;
        for (size_t i = 0; i < c->normalizer.npriority; i++) {
            const cfg_priority *p = &c->normalizer.priority[i];
            ov[i].symbol = p->symbol;
            ov[i].sources = names + k;
            ov[i].nsources = p->nfeeds;
            for (size_t j = 0; j < p->nfeeds; j++)
                names[k++] = p->feeds[j];
        }
        rc = norm_set_priorities(a->norm, names, c->nfeeds, ov, c->normalizer.npriority);
    }
    if (rc)
        log_error("out of memory: source priorities unchanged");
    free(names);
    free(ov);
}

/* cluster.role: an ingest writes what its normalizer publishes to Redis; an
 * edge runs no feeds and serves what Redis carries (docs/cluster.md). */
static int app_cluster_start(app *a)
{
    const cfg_t *c = &a->cfg;
    char err[160] = "";
    a->cluster.role = c->cluster.role;
    if (c->cluster.role == CFG_CLUSTER_INGEST) {
        a->cluster.ingest = cluster_ingest_create(
            (const char (*)[128])c->cluster.redis, c->cluster.nredis,
            (uint32_t)(c->broadcast.resume_depth ? c->broadcast.resume_depth : 1),
            (uint32_t)c->normalizer.max_symbols, err, sizeof(err));
        if (!a->cluster.ingest || cluster_ingest_start(a->cluster.ingest))
            goto fail;
    } else if (c->cluster.role == CFG_CLUSTER_EDGE) {
        if (c->nfeeds)
            log_warn("cluster.role edge: the %zu configured feed(s) are not run (the ingest runs "
                     "them)",
                     c->nfeeds);
        cluster_edge_opts o = {
            .redis = (const char (*)[128])c->cluster.redis,
            .nshards = c->cluster.nredis,
            .max_symbols = (uint32_t)c->normalizer.max_symbols,
            .load_depth = (uint32_t)c->broadcast.resume_depth,
            .stale_after_ms = c->normalizer.stale_after_ms,
            .ctx = a->ctx,
        };
        a->cluster.edge = cluster_edge_create(&o, a->norm, a->bcast, err, sizeof(err));
        if (!a->cluster.edge || cluster_edge_start(a->cluster.edge))
            goto fail;
    } else {
        return 0;
    }
    log_info("cluster: role %s, %d Redis shard(s) (%s%s)", cluster_role_name(c->cluster.role),
             c->cluster.nredis, c->cluster.redis[0], c->cluster.nredis > 1 ? ", ..." : "");
    return 0;
fail:
    log_error("cluster: cannot start the %s role: %s", cluster_role_name(c->cluster.role),
              err[0] ? err : "cannot start its threads");
    return -1;
}

static int app_resolve_web_root(app *a)
{
    /* The last candidate is the .deb's page (CPack installs under /usr whatever
     * prefix the build was configured with). */
    const char *candidates[] = {a->cfg.server.web_root, TICKERD_WEB_ROOT, TICKERD_DATA_WEB_ROOT,
                                "/usr/share/tickerd/web"};
    for (size_t i = a->cfg.server.web_root[0] ? 0 : 1; i < 4; i++) {
        char index[600];
        struct stat st;
        snprintf(index, sizeof(index), "%s/index.html", candidates[i]);
        if (!stat(index, &st)) {
            snprintf(a->web_root, sizeof(a->web_root), "%s", candidates[i]);
            return 0;
        }
        if (i == 0)
            break; /* an explicit web_root is not second-guessed */
    }
    log_error("server.web_root: no index.html in %s",
              a->cfg.server.web_root[0] ? a->cfg.server.web_root : TICKERD_WEB_ROOT);
    return -1;
}

/* The event loop (server.event_loop): lws' own loop with its readiness from
 * epoll sets (svcwait.h) or from poll(), which costs O(connections) per
 * wake-up, or libuv when lws can load its libuv plugin. */
static struct lws_context *app_create_context(app *a, struct lws_context_creation_info *info)
{
#if defined(TICKERD_WITH_LIBUV)
    void *loops[1] = {&a->loop};
    if (!strcmp(a->cfg.server.event_loop, "libuv") && !uv_loop_init(&a->loop)) {
        info->options |= LWS_SERVER_OPTION_LIBUV;
        info->foreign_loops = loops; /* read only during creation */
        info->pcontext = &a->ctx;    /* lws NULLs it once a libuv destroy completes */
        struct lws_context *ctx = lws_create_context(info);
        info->options &= ~(uint64_t)LWS_SERVER_OPTION_LIBUV;
        info->foreign_loops = NULL;
        info->pcontext = NULL;
        if (ctx) {
            a->use_uv = 1;
            log_info("event loop: libuv (epoll)");
            return ctx;
        }
        uv_loop_close(&a->loop);
        log_warn("event loop: lws' libuv plugin unavailable (libwebsockets-evlib-uv); using poll(), "
                 "which is slow with many connections");
    }
#else
    if (!strcmp(a->cfg.server.event_loop, "libuv"))
        log_warn("event loop: built without libuv; using poll()");
#endif
    if (!strcmp(a->cfg.server.event_loop, "epoll")) {
        if (svcwait_start(SVCWAIT_EPOLL))
            log_warn("event loop: no epoll sets (%s); using poll(), which is slow with many connections",
                     strerror(errno));
        else
            a->svcwait = 1;
    }
    return lws_create_context(info);
}

static guard_opts app_guard_opts(const cfg_t *c)
{
    guard_opts o = {
        .max_per_address = (uint32_t)c->limits.max_connections_per_address,
        .rate_per_sec = (uint32_t)c->limits.new_connections_per_sec,
        .burst = (uint32_t)c->limits.new_connections_burst,
        .max_pending = (uint32_t)c->limits.max_pending_heads,
        .max_pending_per_address = (uint32_t)c->limits.max_pending_heads_per_address,
        .header_timeout_ms = (uint32_t)c->limits.header_timeout_ms,
        .max_header_bytes = (uint32_t)c->limits.max_header_bytes,
        .exempt = c->limits.exempt_addresses,
        .trusted_proxies = c->server.trusted_proxies,
    };
    return o;
}

/* Two of the serving vhost's protocols are wrapped so that the guard sees
 * what it must: the first (HTTP's), where lws sends every wsi's outermost
 * events (LWS_CALLBACK_WSI_DESTROY) and the TLS context's setup, and the
 * default one (tickerd.json, itself wrapped by eio), which a freshly adopted
 * connection is bound to and so receives its first complete head
 * (FILTER_HTTP_CONNECTION, HTTP_CONFIRM_UPGRADE). */
static lws_callback_function *app_http_callback, *app_default_callback;

static app *app_of(struct lws_vhost *vh) { return vh ? lws_vhost_user(vh) : NULL; }

/* 0 to go on, else what the callback returns (the request refused). */
static int app_guard_event(struct lws *wsi, enum lws_callback_reasons reason, int *refused)
{
    app *a = app_of(lws_get_vhost(wsi));
    *refused = 0;
    if (!a || !guard_front(a->guard, wsi, reason))
        return 0;
    /* Over a limit under the address a trusted proxy forwarded: the answer
     * the guard gives at accept (guard.c), then the connection is closed. */
    static const char body[] = "{\"error\":\"too_many_connections\",\"message\":\"too many "
                               "connections from this address; retry later\"}\n";
    unsigned char buf[LWS_PRE + 400];
    int n = snprintf((char *)buf + LWS_PRE, sizeof(buf) - LWS_PRE,
                     "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     sizeof(body) - 1, body);
    *refused = 1;
    lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP);
    return -1;
}

static int app_front_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len)
{
    if (reason == LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS) {
        app *a = app_of(in); /* in: the vhost being set up */
        if (a) {
            a->ssl_ctx = user;
            tls_harden(user);
            a->tls.not_after = tls_not_after(user);
        }
        return 0;
    }
    /* server.tls.ca: lws 4.1.6 asks here about each certificate of a client's
     * chain and takes 0 as "valid" whatever OpenSSL found (len carries
     * OpenSSL's verdict, preverify_ok): without this any self-signed client
     * certificate would pass. */
    if (reason == LWS_CALLBACK_OPENSSL_PERFORM_CLIENT_CERT_VERIFICATION)
        return len ? 0 : 1;
    int refused, rc = app_guard_event(wsi, reason, &refused);
    return refused ? rc : app_http_callback(wsi, reason, user, in, len);
}

static int app_front_default(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                             void *in, size_t len)
{
    int refused = 0, rc = 0;
    if (reason == LWS_CALLBACK_FILTER_HTTP_CONNECTION ||
        reason == LWS_CALLBACK_HTTP_CONFIRM_UPGRADE)
        rc = app_guard_event(wsi, reason, &refused);
    return refused ? rc : app_default_callback(wsi, reason, user, in, len);
}

/* server.tls.redirect_port: a plain vhost of its own that answers every
 * request 301 to the https port. */
static int app_listen_redirect(app *a, const struct lws_context_creation_info *base)
{
    const cfg_t *c = &a->cfg;
    if (!c->server.tls.redirect_port)
        return 0;
    struct lws_context_creation_info ri;
    memset(&ri, 0, sizeof(ri));
    ri.options = base->options & ~(uint64_t)LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG;
    ri.vhost_name = "tickerd-redirect";
    ri.port = c->server.tls.redirect_port;
    ri.iface = c->server.bind;
    a->redirect_protocols[0] = tls_redirect_protocol(&a->port);
    ri.protocols = a->redirect_protocols;
    a->redirect = lws_create_vhost(a->ctx, &ri);
    if (!a->redirect) {
        log_error("server.tls.redirect_port: cannot listen on %s:%d", c->server.bind,
                  c->server.tls.redirect_port);
        return -1;
    }
    log_info("redirecting http://%s:%d/ to https", c->server.bind,
             lws_get_vhost_listen_port(a->redirect));
    return 0;
}

static int app_listen(app *a)
{
    const cfg_t *c = &a->cfg;
    a->protocols[0] = http_protocol(a->http);
    a->protocols[1] = ws_protocol(a->ws, BCAST_ENC_JSON);
    a->protocols[2].name = "tickerd-loop";
    a->protocols[2].callback = app_loop_callback;
    a->protocols[2].user = a;
    a->protocols[3] = *feed_ws_protocol(); /* upstream WebSocket feeds */
    a->protocols[4] = ws_protocol(a->ws, BCAST_ENC_BIN);
    a->protocols[5] = eio_protocol(a->eio);
    /* upgrades at /socket.io/ arrive at the default protocol: eio takes them */
    eio_take_upgrades(a->eio, &a->protocols[1]);
    a->protocols[6] = sse_protocol(a->sse);
    a->protocols[7] = poll_protocol(a->poll);
    a->protocols[8] = guard_protocol(a->guard); /* connections still sending their first head */
    app_http_callback = a->protocols[0].callback;
    a->protocols[0].callback = app_front_http;
    app_default_callback = a->protocols[1].callback;
    a->protocols[1].callback = app_front_default;

    a->page_mount.mountpoint = "/";
    a->page_mount.mountpoint_len = 1;
    a->page_mount.origin = a->web_root;
    a->page_mount.def = "index.html";
    a->page_mount.origin_protocol = LWSMPRO_FILE;

    /* lws answers pings; ws.c sends them (ws_sweep). lws' own validity
     * timers stay off (hangup 0): see ws_keepalive for why. */
    a->ws_liveness.secs_since_valid_ping = 0;
    a->ws_liveness.secs_since_valid_hangup = 0;

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    /* TLS for upstream wss:// feeds, and for the listener with server.tls. */
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    int tls = c->server.tls.cert[0] != 0;
    if (!strchr(c->server.bind, ':'))
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    /* Every head the guard lets through fits (see guard.h). With TLS the
     * guard cannot read the head: lws' header space is then its limit. */
    info.max_http_header_data =
        tls ? (unsigned short)(c->limits.max_header_bytes + 512) : GUARD_LWS_HEADER_SPACE;
    a->ctx = app_create_context(a, &info);
    if (!a->ctx) {
        log_error("lws context creation failed");
        return -1;
    }
    /* The serving vhost: it only adopts what the guard passes. */
    info.vhost_name = "tickerd";
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = a->protocols;
    info.mounts = http_mounts(a->http,
                              eio_mount(a->eio, sse_mount(a->sse, poll_mount(a->poll, &a->page_mount))));
    info.retry_and_idle_policy = &a->ws_liveness;
    info.extensions = ws_extensions();
    /* An upgrade naming no subprotocol goes to the pvo "default" protocol:
     * JSON is the default encoding. */
    a->ws_default.name = "default";
    a->ws_default.value = "1";
    a->ws_pvo.name = WS_PROTOCOL_NAME;
    a->ws_pvo.options = &a->ws_default;
    info.pvo = &a->ws_pvo;
    info.user = a; /* app_front_callback finds the app with lws_vhost_user */
    uint64_t plain_options = info.options;
    if (tls) {
        /* tls_check has vouched for the files; tls_harden (at the context's
         * setup) sets TLS 1.2+ and the cipher list. HTTP/1.1 only in ALPN:
         * every transport here is HTTP/1.1 (WebSocket over h2 is not). */
        info.ssl_cert_filepath = c->server.tls.cert;
        info.ssl_private_key_filepath = c->server.tls.key;
        info.ssl_cipher_list = TLS_CIPHERS_12;
        info.alpn = "http/1.1";
        if (c->server.tls.ca[0]) {
            info.ssl_ca_filepath = c->server.tls.ca;
            info.options |= LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT;
        }
    }
    a->vhost = lws_create_vhost(a->ctx, &info);
    if (!a->vhost || (tls && !a->ssl_ctx)) {
        log_error(tls ? "server.tls: lws could not set up TLS with server.tls.cert and server.tls.key"
                      : "lws vhost creation failed");
        return -1;
    }
    guard_set_target(a->guard, a->vhost, tls);
    info.options = plain_options;

    /* The listening vhost: each accepted socket is a raw one bound to the
     * guard until its first request head has been checked. */
    struct lws_context_creation_info li;
    memset(&li, 0, sizeof(li));
    li.options = info.options | LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG;
    li.vhost_name = "tickerd-listen";
    li.port = c->server.port;
    li.iface = c->server.bind;
    a->guard_protocols[0] = guard_protocol(a->guard);
    li.protocols = a->guard_protocols;
    li.listen_accept_role = "raw-skt";
    li.listen_accept_protocol = GUARD_PROTOCOL_NAME;
    a->listen = lws_create_vhost(a->ctx, &li);
    if (!a->listen) {
        log_error("cannot listen on %s:%d", c->server.bind, c->server.port);
        return -1;
    }
    a->port = lws_get_vhost_listen_port(a->listen);
    return app_listen_redirect(a, &li);
}

/* Every connection is a descriptor: a limit the process can never reach
 * would turn into silent drops inside lws instead of a counted 1013. */
static void app_fit_connections_to_fds(cfg_t *c)
{
    struct rlimit rl;
    const int reserve = 64; /* listener, pipes, files, feeds, HTTP */
    if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY)
        return;
    if ((rlim_t)c->server.max_connections + reserve > rl.rlim_cur) {
        int fit = rl.rlim_cur > (rlim_t)reserve * 2 ? (int)(rl.rlim_cur - reserve) : reserve;
        log_warn("server.max_connections %d exceeds the open-file limit %llu; using %d",
                 c->server.max_connections, (unsigned long long)rl.rlim_cur, fit);
        c->server.max_connections = fit;
    }
}

app *app_create(cfg_t *cfg)
{
    app *a = calloc(1, sizeof(*a));
    if (!a) {
        cfg_free(cfg);
        return NULL;
    }
    a->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg));
    log_set_level((log_level)a->cfg.log.level);
    app_fit_connections_to_fds(&a->cfg);

    norm_sink sink = {.arg = a, .symbol_added = app_on_symbol, .publish = app_on_publish};
    bcast_opts bo = app_bcast_opts(&a->cfg);
    ws_limits wl = app_ws_limits(&a->cfg);
    sess_limits sl = app_sess_limits(&a->cfg);
    a->bcast = bcast_create(&bo);
    a->norm = norm_create((uint32_t)a->cfg.normalizer.max_symbols,
                          a->cfg.normalizer.flush_interval_ms, &sink);
    a->sess = a->bcast ? sess_server_create(a->bcast, &sl) : NULL;
    a->ws = a->sess ? ws_create(a->sess, &wl) : NULL;
    char aerr[512] = "out of memory";
    a->auth = auth_create(&a->cfg.auth, aerr, sizeof(aerr));
    a->gate = a->auth ? gate_create(a->auth, &a->cfg.server.access, a->cfg.api.cors_origins) : NULL;
    if (!a->gate) {
        log_error("%s", aerr);
        goto fail;
    }
    if (a->sess)
        sess_set_gate(a->sess, a->gate);
    guard_opts go = app_guard_opts(&a->cfg);
    struct rlimit fds;
    a->guard = guard_create(getrlimit(RLIMIT_NOFILE, &fds) || fds.rlim_cur == RLIM_INFINITY
                                ? 65536
                                : (size_t)fds.rlim_cur,
                            &go);
    eio_limits el = app_eio_limits(&a->cfg);
    a->eio = a->sess ? eio_create(&el, sio_upper(), a->sess) : NULL;
    sse_limits ssel = app_sse_limits(&a->cfg);
    poll_limits pl = app_poll_limits(&a->cfg);
    a->sse = a->sess ? sse_create(a->sess, &ssel, a->cfg.api.cors_origins) : NULL;
    a->poll = a->sess ? poll_create(a->sess, &pl, a->cfg.api.cors_origins) : NULL;
    app_history_open(a);
    hist_opts ho = {
        .max_rows = a->cfg.history.max_rows,
        .headroom = LWS_PRE,
        .wake = app_wake_loop,
        .wake_arg = a,
        .no_store_reason = a->cfg.history.enabled ? a->history_error
                                                  : "history is disabled (history.enabled is false)",
    };
    a->hist = hist_create(a->store, &ho);
    if (a->sess && a->hist)
        sess_set_history(a->sess, a->hist);
    http_sources src = {
        .store = &a->store,
        .hist = &a->hist,
        .history_path = a->history_path,
        .history_error = a->history_error,
        .history_enabled = &a->cfg.history.enabled,
        .cors_origins = a->cfg.api.cors_origins,
        .web_root = a->web_root,
        .admin_enabled = &a->cfg.admin.enabled,
        .admin_allowed = &a->cfg.admin.allowed_addresses,
        .norm = (const norm *const *)&a->norm,
        .bcast = (const bcast *const *)&a->bcast,
        .ws = (const ws_server *const *)&a->ws,
        .guard = (const guard *const *)&a->guard,
        .tls = &a->tls,
        .sess = (const sess_server *const *)&a->sess,
        .feeds = (feed *const *const *)&a->feeds,
        .nfeeds = &a->nfeeds,
        .started_us = tk_now_us(),
        .cluster = a->cfg.cluster.role != CFG_CLUSTER_STANDALONE ? &a->cluster : NULL,
    };
    a->http = http_create(&src);
    a->feeds = calloc(a->cfg.nfeeds ? a->cfg.nfeeds : 1, sizeof(*a->feeds));
    if (!a->bcast || !a->norm || !a->ws || !a->guard || !a->sse || !a->poll || !a->hist || !a->http || !a->feeds) {
        log_error("out of memory");
        goto fail;
    }
    if (app_resolve_web_root(a) || app_listen(a))
        goto fail;
    if (hist_start(a->hist)) {
        log_error("cannot start the history reader thread");
        goto fail;
    }
    norm_set_stale_after(a->norm, a->cfg.normalizer.stale_after_ms);
    norm_set_jump_band(a->norm, a->cfg.normalizer.jump_band_pct);
    if (app_cluster_start(a))
        goto fail;

    for (size_t i = 0; i < a->cfg.nfeeds && !a->cluster.edge; i++) {
        feed *f = app_feed_start(a, &a->cfg.feeds[i]);
        if (!f)
            goto fail;
        a->feeds[a->nfeeds++] = f;
    }
    app_apply_priorities(a, &a->cfg);
    app_schedule_flush(a);
    lws_sul_schedule(a->ctx, 0, &a->housekeeping_sul, app_housekeeping, APP_HOUSEKEEPING_US);
    log_info("tickerd %s: %zu feed(s), %u symbols, flush every %d ms, page from %s", TK_VERSION,
             a->nfeeds, bcast_symbol_count(a->bcast), a->cfg.normalizer.flush_interval_ms,
             a->web_root);
    log_info("listening on %s://%s:%d/ (WebSocket at /ws)", a->ssl_ctx ? "https" : "http",
             a->cfg.server.bind, a->port);
    return a;
fail:
    app_destroy(a);
    return NULL;
}

int app_service(app *a)
{
#if defined(TICKERD_WITH_LIBUV)
    if (a->use_uv) {
        uv_run(&a->loop, UV_RUN_ONCE); /* returns after at least one event (app_wake is one) */
        return 0;
    }
#endif
    svcwait_enter(!lws_service_adjust_timeout(a->ctx, 1, 0));
    int r = lws_service(a->ctx, 0);
    svcwait_leave();
    return r;
}
int app_port(const app *a) { return a->port; }
unsigned app_connections(const app *a)
{
    return ws_get_stats(a->ws)->sessions + sse_get_stats(a->sse)->sessions + poll_get_stats(a->poll)->held;
}
void app_wake(app *a) { lws_cancel_service(a->ctx); }

void app_begin_shutdown(app *a)
{
    log_info("shutting down: closing %u connection(s) with 1001", app_connections(a));
    for (size_t i = 0; i < a->nfeeds; i++)
        feed_stop(a->feeds[i]);
    lws_sul_cancel(&a->flush_sul);
    ws_shutdown(a->ws);
    eio_shutdown(a->eio);
    sse_shutdown(a->sse);
    poll_shutdown(a->poll);
}

/* ---- reload ---- */

static void app_reload_feeds(app *a, const cfg_t *nc)
{
    feed **next = calloc(nc->nfeeds ? nc->nfeeds : 1, sizeof(*next));
    size_t nnext = 0;
    if (!next) {
        log_error("reload: out of memory; feeds unchanged");
        return;
    }
    for (size_t i = 0; i < nc->nfeeds; i++) {
        const feed_cfg *fc = &nc->feeds[i];
        feed *f = NULL;
        for (size_t j = 0; j < a->nfeeds; j++) {
            if (a->feeds[j] && !strcmp(feed_name(a->feeds[j]), fc->name) &&
                feed_get_type(a->feeds[j]) == fc->type) {
                f = a->feeds[j];
                a->feeds[j] = NULL;
                break;
            }
        }
        if (f && feed_reload(f, fc)) {
            /* Adapters that cannot change settings in place start afresh. */
            log_info("feed %s: restarting with its new settings", fc->name);
            feed_destroy(f);
            f = app_feed_start(a, fc);
        } else if (!f) {
            f = app_feed_start(a, fc);
        }
        if (f)
            next[nnext++] = f;
    }
    for (size_t j = 0; j < a->nfeeds; j++) {
        if (a->feeds[j]) {
            log_info("feed %s stopped (removed from the configuration)", feed_name(a->feeds[j]));
            feed_destroy(a->feeds[j]);
        }
    }
    free(a->feeds);
    a->feeds = next;
    a->nfeeds = nnext;
}

static void app_served_add(void *arg, const char *canonical) { symtab_intern(arg, canonical, NULL); }

/* The canonical symbols c's feeds serve, as far as the config says (a feed
 * type that cannot say contributes none); NULL when out of memory. */
static symtab *app_served_symbols(const cfg_t *c)
{
    symtab *t = symtab_new(UINT32_MAX - 1);
    for (size_t i = 0; t && i < c->nfeeds; i++)
        feed_cfg_symbols(&c->feeds[i], app_served_add, t);
    return t;
}

/* After a reload: a symbol the old config served and the new one does not
 * has lost its last feed, so it stops being offered and its clients are told
 * (symbol_removed) rather than left with a stream that silently went stale;
 * one served again is offered again, its seq continuing. A symbol only a
 * feed of unknown set served (a replay without a list) is never removed. */
static void app_reload_symbols(app *a, const cfg_t *was_cfg, const cfg_t *now_cfg)
{
    symtab *was = app_served_symbols(was_cfg), *now = app_served_symbols(now_cfg);
    uint32_t n = bcast_symbol_count(a->bcast);
    uint32_t *gone = malloc((n ? n : 1) * sizeof(*gone));
    if (!was || !now || !gone) {
        log_error("reload: out of memory; no symbol removed");
        goto out;
    }
    size_t ngone = 0;
    for (uint32_t id = 0; id < n; id++) {
        const char *name = bcast_symbol_name(a->bcast, id);
        int served = symtab_find(now, name) != SYMTAB_NONE;
        if (bcast_symbol_removed(a->bcast, id)) {
            if (served) {
                if (bcast_symbol_restore(a->bcast, id))
                    log_error("reload: out of memory giving %s back to \"*\" clients", name);
                log_info("reload: %s is served again", name);
            }
        } else if (!served && symtab_find(was, name) != SYMTAB_NONE) {
            gone[ngone++] = id;
        }
    }
    if (ngone) {
        long told = sess_symbols_removed(a->sess, gone, ngone);
        if (told < 0) {
            log_error("reload: out of memory; no symbol removed");
        } else {
            char names[256];
            size_t len = 0;
            for (size_t i = 0; i < ngone && len < sizeof(names); i++)
                len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s", i ? ", " : "",
                                        bcast_symbol_name(a->bcast, gone[i]));
            log_info("reload: %zu symbol(s) no longer served (%s%s); %ld client(s) told "
                     "symbol_removed",
                     ngone, names, len >= sizeof(names) ? "..." : "", told);
        }
    }
out:
    symtab_free(was);
    symtab_free(now);
    free(gone);
}

/* SIGHUP re-reads the certificate files (renewed in place, or new paths):
 * new handshakes get them, connections up keep theirs. Files that fail the
 * check leave the certificate in use, said in the log and /metrics. */
static void app_reload_tls(app *a, cfg_t *nc)
{
    const struct cfg_tls *now = &a->cfg.server.tls;
    struct cfg_tls *next = &nc->server.tls;
    if (next->redirect_port != now->redirect_port)
        log_warn("reload: server.tls.redirect_port cannot change live; keeping %d until a restart",
                 now->redirect_port);
    next->redirect_port = now->redirect_port;
    if (!a->ssl_ctx || !next->cert[0]) {
        if (!!a->ssl_ctx != !!next->cert[0])
            log_warn("reload: TLS cannot be turned %s live; keeping it %s until a restart",
                     a->ssl_ctx ? "off" : "on", a->ssl_ctx ? "on" : "off");
        *next = *now;
        return;
    }
    if (!now->ca[0] != !next->ca[0]) {
        log_warn("reload: server.tls.ca cannot be set or unset live (client certificates %s "
                 "until a restart)",
                 now->ca[0] ? "stay required" : "stay unrequested");
        snprintf(next->ca, sizeof(next->ca), "%s", now->ca);
    }
    char err[1200];
    if (tls_reload(a->ssl_ctx, next->cert, next->key, next->ca, err, sizeof(err))) {
        a->tls.reload_failures++;
        log_error("reload: %s; keeping the certificate in use", err);
        *next = *now;
        return;
    }
    a->tls.reloads++;
    a->tls.not_after = tls_not_after(a->ssl_ctx);
    log_info("reload: TLS certificate re-read from %s (new handshakes use it)", next->cert);
}

int app_reload(app *a, cfg_t *nc)
{
    app_fit_connections_to_fds(nc);
    app_reload_tls(a, nc);
    /* Applied live: the certificate (above) and the proxies list. */
    struct cfg_tls tls_next = nc->server.tls;
    netlist proxies_next = nc->server.trusted_proxies;
    /* The listening socket and the page stay as they are until a restart. */
    if (memcmp(&nc->server, &a->cfg.server, sizeof(nc->server))) {
        /* name each key that cannot change live, with the value kept */
        if (strcmp(nc->server.bind, a->cfg.server.bind))
            log_warn("reload: server.bind cannot change live; keeping \"%s\" until a restart",
                     a->cfg.server.bind);
        if (nc->server.port != a->cfg.server.port)
            log_warn("reload: server.port cannot change live; keeping %d until a restart",
                     a->cfg.server.port);
        if (strcmp(nc->server.web_root, a->cfg.server.web_root))
            log_warn("reload: server.web_root cannot change live; keeping \"%s\" until a restart",
                     a->cfg.server.web_root);
        if (strcmp(nc->server.event_loop, a->cfg.server.event_loop))
            log_warn("reload: server.event_loop cannot change live; keeping \"%s\" until a restart",
                     a->cfg.server.event_loop);
        int max_conn = nc->server.max_connections;
        cfg_access access = nc->server.access;
        nc->server = a->cfg.server;
        nc->server.max_connections = max_conn; /* a limit, not a socket: applies now */
        nc->server.access = access;            /* policies too (gate.h) */
        nc->server.tls = tls_next;
        nc->server.trusted_proxies = proxies_next;
    }
    guard_opts go = app_guard_opts(nc);
    guard_set_opts(a->guard, &go);
    log_set_level((log_level)nc->log.level);
    log_set_format((log_format)nc->log.format);
    char aerr[512];
    int arc = auth_reload(a->auth, &nc->auth, aerr, sizeof(aerr));
    if (arc)
        log_warn("reload: %s", aerr);
    if (arc < 0)
        nc->auth = a->cfg.auth; /* the key could not be loaded: the running one stays */
    else if (arc > 0)
        nc->auth.mode = a->cfg.auth.mode;
    gate_configure(a->gate, &nc->server.access, nc->api.cors_origins);
    bcast_opts bo = app_bcast_opts(nc);
    ws_limits wl = app_ws_limits(nc);
    sess_limits sl = app_sess_limits(nc);
    sse_limits ssel = app_sse_limits(nc);
    poll_limits pl = app_poll_limits(nc);
    if (sess_set_limits(a->sess, &sl) || ws_set_limits(a->ws, &wl) || sse_set_limits(a->sse, &ssel)) {
        log_error("reload: out of memory; configuration unchanged");
        cfg_free(nc);
        return -1;
    }
    eio_limits el = app_eio_limits(nc);
    eio_set_limits(a->eio, &el);
    poll_set_limits(a->poll, &pl);
    bcast_set_opts(a->bcast, &bo);
    norm_set_flush_interval(a->norm, nc->normalizer.flush_interval_ms);
    norm_set_stale_after(a->norm, nc->normalizer.stale_after_ms);
    norm_set_jump_band(a->norm, nc->normalizer.jump_band_pct);
    app_schedule_flush(a);
    /* History: the size cap applies live (raising it ends a "disk full"
     * degradation); the rest needs a restart. */
    if (a->store)
        store_set_max_db_bytes(a->store, (int64_t)nc->history.max_db_mb << 20);
    int cap = nc->history.max_db_mb;
    nc->history.max_db_mb = a->cfg.history.max_db_mb;
    if (memcmp(&nc->history, &a->cfg.history, sizeof(nc->history)))
        log_warn("reload: history.* changes (other than max_db_mb) need a restart");
    nc->history = a->cfg.history;
    nc->history.max_db_mb = cap;
    if (nc->normalizer.max_symbols != a->cfg.normalizer.max_symbols)
        log_warn("reload: normalizer.max_symbols changes need a restart");
    nc->normalizer.max_symbols = a->cfg.normalizer.max_symbols;
    if (memcmp(&nc->cluster, &a->cfg.cluster, sizeof(nc->cluster)))
        log_warn("reload: cluster.* changes need a restart");
    nc->cluster = a->cfg.cluster;
    if (a->cluster.edge)
        nc->nfeeds = 0; /* an edge runs no feeds (the config's stay in nc, freed with it) */
    app_reload_feeds(a, nc);
    app_reload_symbols(a, &a->cfg, nc);
    app_apply_priorities(a, nc);

    cfg_free(&a->cfg);
    a->cfg = *nc;
    memset(nc, 0, sizeof(*nc));
    log_info("configuration reloaded: %zu feed(s), %u symbols", a->nfeeds,
             bcast_symbols_offered(a->bcast));
    return 0;
}

void app_destroy(app *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nfeeds; i++)
        feed_stop(a->feeds[i]);
    /* The history worker answers what is queued and stops before the context
     * (its wake) goes; requests left unanswered are freed by hist_destroy. */
    hist_stop(a->hist);
    /* The edge's readers wake the loop: stopped before the context goes. */
    cluster_edge_destroy(a->cluster.edge);
    a->cluster.edge = NULL;
    if (a->ctx) {
        lws_sul_cancel(&a->flush_sul);
        lws_sul_cancel(&a->housekeeping_sul);
        /* Closes every remaining connection; their CLOSED callbacks still
         * need the broadcaster, so it goes after. */
        lws_context_destroy(a->ctx);
#if defined(TICKERD_WITH_LIBUV)
        /* With a libuv loop lws closes its handles asynchronously: run the
         * loop until they are gone (lws then NULLs a->ctx), then finish. */
        if (a->use_uv) {
            uv_run(&a->loop, UV_RUN_DEFAULT);
            if (a->ctx)
                lws_context_destroy(a->ctx);
            uv_loop_close(&a->loop);
        }
#endif
    }
    if (a->svcwait)
        svcwait_stop(); /* the context's descriptors are closed, the feeds' threads joined */
    for (size_t i = 0; i < a->nfeeds; i++)
        feed_destroy(a->feeds[i]);
    free(a->feeds);
    http_destroy(a->http);
    hist_destroy(a->hist);
    ws_destroy(a->ws);
    guard_destroy(a->guard);
    gate_destroy(a->gate);
    auth_destroy(a->auth);
    eio_destroy(a->eio);
    sse_destroy(a->sse);
    poll_destroy(a->poll);
    sess_server_destroy(a->sess);
    cluster_ingest_destroy(a->cluster.ingest);
    norm_destroy(a->norm);
    bcast_destroy(a->bcast);
    /* Last: the final flush writes what the feeds published up to here. */
    store_close(a->store);
    cfg_free(&a->cfg);
    free(a);
}
