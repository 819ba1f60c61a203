/* http.c — see http.h. Responses are rendered whole into a bounded buffer,
 * then written in chunks, one lws_write per HTTP_WRITEABLE. */
#include "tickerd/http.h"

#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/util.h"

#define HTTP_CHUNK 16384
#define HTTP_BODY_LIMIT (64u << 20)

struct http_server {
    http_sources src;
    struct lws_http_mount mounts[3];
};

typedef struct http_session {
    sbuf body;
    size_t sent;
} http_session;

http_server *http_create(const http_sources *src)
{
    http_server *h = calloc(1, sizeof(*h));
    if (h)
        h->src = *src;
    return h;
}

void http_destroy(http_server *h) { free(h); }

/* ---- renderers ---- */

static void metric_head(sbuf *o, const char *name, const char *type, const char *help)
{
    sbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric(sbuf *o, const char *name, const char *type, const char *help, uint64_t v)
{
    metric_head(o, name, type, help);
    sbuf_printf(o, "%s %llu\n", name, (unsigned long long)v);
}

/* One labelled sample: name{label="value"} v */
static void metric_labelled(sbuf *o, const char *name, const char *label, const char *value,
                            uint64_t v)
{
    sbuf_printf(o, "%s{%s=\"%s\"} %llu\n", name, label, value, (unsigned long long)v);
}

int http_render_metrics(const http_sources *src, sbuf *o)
{
    const norm_stats *ns = norm_get_stats(*src->norm);
    const bcast_stats *bs = bcast_get_stats(*src->bcast);
    const ws_stats *ws = ws_get_stats(*src->ws);

    metric(o, "tickerd_clients_connected", "gauge", "WebSocket clients connected", bs->clients);
    metric(o, "tickerd_clients_binary", "gauge",
           "WebSocket clients reading the binary encoding (tickerd.bin)", bs->bin_clients);
    metric(o, "tickerd_subscriptions", "gauge", "Symbol subscriptions over all clients",
           bs->subscriptions);
    metric(o, "tickerd_symbols", "gauge", "Symbols known", bcast_symbol_count(*src->bcast));
    metric(o, "tickerd_updates_in_total", "counter", "Upstream updates accepted", ns->accepted);
    metric_head(o, "tickerd_updates_rejected_total", "counter",
                "Upstream updates dropped by validation");
    for (int r = 0; r < NORM_REJECT_COUNT; r++)
        metric_labelled(o, "tickerd_updates_rejected_total", "reason",
                        norm_reject_name((norm_reject_reason)r), ns->rejected[r]);
    metric(o, "tickerd_updates_coalesced_total", "counter",
           "Accepted updates folded into a value awaiting the next flush", ns->coalesced);
    metric(o, "tickerd_updates_published_total", "counter",
           "Values published to the broadcaster after coalescing", ns->published);
    metric(o, "tickerd_updates_standby_total", "counter",
           "Accepted updates from a source that is not the symbol's active source (kept, not "
           "published)",
           ns->standby);
    metric(o, "tickerd_source_switches_total", "counter",
           "Changes of a symbol's active source (failover to the next fresh source, or take-back "
           "by the preferred one)",
           ns->switches);
    metric(o, "tickerd_symbols_stale", "gauge",
           "Symbols with a value but no fresh source (published with \"stale\":true)",
           ns->stale_symbols);
    metric(o, "tickerd_updates_out_total", "counter", "Update objects sent to clients",
           bs->updates_out);
    metric(o, "tickerd_snapshot_updates_out_total", "counter",
           "Update objects sent to clients in snapshot frames (reset snapshots included)", bs->snapshots_out);
    metric(o, "tickerd_updates_conflated_total", "counter",
           "Values skipped for slow clients by per-client conflation", bs->conflated);
    metric(o, "tickerd_frames_out_total", "counter", "Update, snapshot and replay frames sent",
           bs->frames_out);
    metric(o, "tickerd_resume_replayed_updates_total", "counter",
           "Update objects sent to resuming clients in replay frames", bs->replayed_out);
    metric(o, "tickerd_resume_replayed_symbols_total", "counter",
           "Resumed symbols whose replay was completed", bs->resume_replayed);
    metric(o, "tickerd_resume_current_symbols_total", "counter",
           "Resumed symbols that were already up to date (nothing replayed)", bs->resume_current);
    metric_head(o, "tickerd_resume_resets_total", "counter",
                "Resumed symbols given a reset snapshot instead of a replay");
    for (int r = 0; r < BCAST_RESET_COUNT; r++)
        metric_labelled(o, "tickerd_resume_resets_total", "reason",
                        bcast_reset_name((bcast_reset_reason)r), bs->resume_resets[r]);
    metric(o, "tickerd_resume_ring_bytes", "gauge",
           "Memory held by the per-symbol resume rings (broadcast.resume_depth)", bs->ring_bytes);
    metric(o, "tickerd_bytes_out_total", "counter", "WebSocket payload bytes sent", ws->bytes_out);
    metric(o, "tickerd_messages_in_total", "counter", "Client messages received", ws->messages_in);
    metric_head(o, "tickerd_client_errors_total", "counter", "Error replies sent to clients");
    for (int e = 0; e < WS_ERR_COUNT; e++)
        metric_labelled(o, "tickerd_client_errors_total", "code", ws_error_name((ws_error_code)e),
                        ws->errors[e]);
    metric(o, "tickerd_slow_client_closes_total", "counter",
           "Clients closed (1008) for accepting no bytes for broadcast.stall_timeout_ms",
           ws->stall_closes);
    metric(o, "tickerd_abuse_closes_total", "counter",
           "Clients closed (1008) for exceeding limits.max_errors", ws->abuse_closes);
    metric(o, "tickerd_connections_rejected_total", "counter",
           "Connections closed (1013) at server.max_connections", ws->connections_rejected);
    metric(o, "tickerd_replies_dropped_total", "counter",
           "Control replies dropped because a client's reply queue was full", ws->replies_dropped);

    /* Prometheus wants each family's samples together: two passes over the feeds. */
    metric_head(o, "tickerd_feed_up", "gauge", "Feed state: 1 live, 0 otherwise");
    for (size_t i = 0; i < *src->nfeeds; i++) {
        feed_status st;
        feed_get_status((*src->feeds)[i], &st);
        metric_labelled(o, "tickerd_feed_up", "feed", feed_name((*src->feeds)[i]),
                        st.state == FEED_LIVE);
    }
    metric_head(o, "tickerd_feed_updates_total", "counter", "Updates emitted by each feed");
    for (size_t i = 0; i < *src->nfeeds; i++) {
        feed_status st;
        feed_get_status((*src->feeds)[i], &st);
        metric_labelled(o, "tickerd_feed_updates_total", "feed", feed_name((*src->feeds)[i]),
                        st.updates);
    }
    /* Per-feed failure counters: one family each, a sample per feed. */
    static const struct {
        const char *name, *help;
        size_t off;
    } fails[] = {
        {"tickerd_feed_errors_total", "Transport/HTTP failures, venue errors, rejected subscriptions",
         offsetof(feed_status, errors)},
        {"tickerd_feed_rate_limited_total", "HTTP 429/418 answers", offsetof(feed_status, rate_limited)},
        {"tickerd_feed_malformed_total", "Upstream messages that could not be parsed (dropped)",
         offsetof(feed_status, malformed)},
        {"tickerd_feed_oversized_total", "Upstream messages over the size limit (dropped)",
         offsetof(feed_status, oversized)},
        {"tickerd_feed_reconnects_total", "Upstream connections re-opened",
         offsetof(feed_status, reconnects)},
        {"tickerd_feed_capture_dropped_total", "Capture records dropped (buffer full)",
         offsetof(feed_status, captured_dropped)},
    };
    for (size_t k = 0; k < sizeof(fails) / sizeof(fails[0]); k++) {
        metric_head(o, fails[k].name, "counter", fails[k].help);
        for (size_t i = 0; i < *src->nfeeds; i++) {
            feed_status st;
            feed_get_status((*src->feeds)[i], &st);
            metric_labelled(o, fails[k].name, "feed", feed_name((*src->feeds)[i]),
                            *(const uint64_t *)((const char *)&st + fails[k].off));
        }
    }
    metric(o, "tickerd_uptime_seconds", "gauge", "Seconds since start",
           (uint64_t)((tk_now_us() - src->started_us) / 1000000));
    return 200;
}

int http_render_healthz(const http_sources *src, sbuf *o)
{
    int64_t now = tk_now_us();
    int live = 0;
    json_t *feeds = json_array();
    for (size_t i = 0; i < *src->nfeeds; i++) {
        const feed *f = (*src->feeds)[i];
        feed_status st;
        feed_get_status(f, &st);
        live |= st.state == FEED_LIVE;
        json_t *j = json_pack("{s:s, s:s, s:s, s:I}", "name", feed_name(f), "type",
                              feed_get_type(f)->name, "state", feed_state_name(st.state),
                              "updates", (json_int_t)st.updates);
        if (j && st.last_update_us)
            json_object_set_new(j, "last_update_age_ms",
                                json_integer((now - st.last_update_us) / 1000));
        if (j && st.detail[0])
            json_object_set_new(j, "detail", json_string(st.detail));
        json_array_append_new(feeds, j);
    }
    json_t *root = json_pack("{s:s, s:s, s:I, s:i, s:i, s:I, s:o}", "status",
                             live ? "ok" : "down", "version", TK_VERSION, "uptime_s",
                             (json_int_t)((now - src->started_us) / 1000000), "clients",
                             (int)bcast_get_stats(*src->bcast)->clients, "symbols",
                             (int)bcast_symbol_count(*src->bcast), "stale_symbols",
                             (json_int_t)norm_get_stats(*src->norm)->stale_symbols, "feeds",
                             feeds);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    if (text)
        sbuf_append(o, text, strlen(text));
    else
        o->overflow = 1;
    free(text);
    json_decref(root);
    return live ? 200 : 503;
}

void http_render_symbols(const http_sources *src, sbuf *o)
{
    const bcast *b = *src->bcast;
    sbuf_append(o, "{\"symbols\":[", 12);
    for (uint32_t id = 0; id < bcast_symbol_count(b); id++) {
        size_t len;
        const char *json = bcast_symbol_json(b, id, &len);
        if (id)
            sbuf_append(o, ",", 1);
        if (json)
            sbuf_append(o, json, len);
        else
            sbuf_printf(o, "{\"symbol\":\"%s\",\"seq\":0}", bcast_symbol_name(b, id));
    }
    sbuf_append(o, "]}", 2);
}

/* ---- lws glue ---- */

static int http_begin(struct lws *wsi, http_server *h, http_session *s)
{
    char uri[128];
    int n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
    if (n <= 0)
        return lws_return_http_status(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, "GET only") ? -1 : 0;

    int status = 200;
    const char *type = "application/json";
    sbuf_init(&s->body, HTTP_BODY_LIMIT);
    s->sent = 0;
    if (!strcmp(uri, "/metrics")) {
        type = "text/plain; version=0.0.4";
        status = http_render_metrics(&h->src, &s->body);
    } else if (!strcmp(uri, "/healthz")) {
        status = http_render_healthz(&h->src, &s->body);
    } else if (!strcmp(uri, "/api/symbols")) {
        http_render_symbols(&h->src, &s->body);
    } else {
        sbuf_free(&s->body);
        return lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL) ? -1 : 0;
    }
    if (s->body.overflow) {
        sbuf_free(&s->body);
        return lws_return_http_status(wsi, HTTP_STATUS_INTERNAL_SERVER_ERROR, "too large") ? -1 : 0;
    }

    unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start,
                                      *end = hdr + sizeof(hdr) - 1;
    if (lws_add_http_common_headers(wsi, (unsigned)status, type, s->body.len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, (unsigned char *)"no-store",
                                     8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    lws_callback_on_writable(wsi);
    return 0;
}

static int http_writeable(struct lws *wsi, http_session *s)
{
    unsigned char buf[LWS_PRE + HTTP_CHUNK];
    size_t left = s->body.len - s->sent, n = left > HTTP_CHUNK ? HTTP_CHUNK : left;
    int last = n == left;
    memcpy(buf + LWS_PRE, s->body.data + s->sent, n);
    if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n)
        return -1;
    s->sent += n;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    sbuf_free(&s->body);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    http_session *s = user;
    const struct lws_protocols *proto = lws_get_protocol(wsi);
    http_server *h = proto ? proto->user : NULL;

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return 1; /* no WebSocket upgrades onto the HTTP protocol */
    case LWS_CALLBACK_HTTP:
        return http_begin(wsi, h, s);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (s && s->body.data)
            return http_writeable(wsi, s);
        break;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (s)
            sbuf_free(&s->body);
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

struct lws_protocols http_protocol(http_server *h)
{
    struct lws_protocols p = {
        .name = HTTP_PROTOCOL_NAME,
        .callback = http_callback,
        .per_session_data_size = sizeof(http_session),
        .user = h,
    };
    return p;
}

const struct lws_http_mount *http_mounts(http_server *h, const struct lws_http_mount *next)
{
    static const char *const points[] = {"/metrics", "/healthz", "/api/symbols"};
    for (int i = 2; i >= 0; i--) {
        struct lws_http_mount *m = &h->mounts[i];
        memset(m, 0, sizeof(*m));
        m->mount_next = i == 2 ? next : &h->mounts[i + 1];
        m->mountpoint = points[i];
        m->mountpoint_len = (unsigned char)strlen(points[i]);
        m->origin = HTTP_PROTOCOL_NAME;
        m->origin_protocol = LWSMPRO_CALLBACK;
    }
    return &h->mounts[0];
}
