/* http.c — see http.h. Responses are rendered whole into a bounded buffer,
 * then written in chunks, one lws_write per HTTP_WRITEABLE. /api/history is
 * rendered by the history worker and written the same way once it is back. */
#include "tickerd/http.h"

#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/admin.h"
#include "tickerd/gate.h"
#include "tickerd/cluster_ops.h"
#include "tickerd/guard.h"
#include "tickerd/http_query.h"
#include "tickerd/svcwait.h"
#include "tickerd/util.h"

#define HTTP_CHUNK 16384
#define HTTP_BODY_LIMIT (64u << 20)

struct http_server {
    http_sources src;
    struct lws_http_mount mounts[7];
    uint64_t admin_refused; /* /admin or /api/admin asked from an address not allowed */
};

typedef struct http_session {
    struct lws *wsi;
    sbuf body;
    size_t sent;
    hist_req *req; /* /api/history being read */
    int status;    /* of a deferred (history) response */
    uint8_t api;      /* an /api/ endpoint: CORS applies */
    uint8_t answered; /* the deferred response is in body; headers not sent yet */
    uint8_t ready;    /* headers sent: body chunks follow */
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

/* Feeds that spread their symbols over several upstream connections
 * (WebSocket feeds; Binance above 512 symbols): one sample per connection
 * slot, labelled conn="0".., and the last make-before-break overlap. */
static void http_feed_conn_metrics(const http_sources *src, sbuf *o)
{
    static const struct {
        const char *name, *type, *help;
        int what;
    } fam[] = {
        {"tickerd_feed_connection_up", "gauge",
         "Upstream connection slot open, subscribed and delivering (1) or not (0)", 0},
        {"tickerd_feed_connection_symbols", "gauge", "Symbols an upstream connection carries", 1},
        {"tickerd_feed_connection_age_seconds", "gauge",
         "Age of the oldest open connection of the slot (absent while none is open)", 2},
        {"tickerd_feed_connection_overlapping", "gauge",
         "A replacement connection is open beside the old one (make-before-break)", 3},
        {"tickerd_feed_connection_reconnects_total", "counter",
         "Connections of the slot re-opened after a drop", 4},
        {"tickerd_feed_connection_rotations_total", "counter",
         "Connections of the slot replaced make-before-break", 5},
    };
    feed_status *st = malloc(sizeof(*st));
    if (!st)
        return;
    for (size_t k = 0; k < sizeof(fam) / sizeof(fam[0]); k++) {
        tk_metric_head(o, fam[k].name, fam[k].type, fam[k].help);
        for (size_t i = 0; i < *src->nfeeds; i++) {
            feed_get_status((*src->feeds)[i], st);
            for (uint32_t c = 0; c < st->nconns && c < FEED_MAX_CONNS; c++) {
                const feed_conn_status *cs = &st->conns[c];
                uint64_t v = 0;
                switch (fam[k].what) {
                case 0: v = cs->up; break;
                case 1: v = cs->symbols; break;
                case 2:
                    if (cs->age_ms < 0)
                        continue;
                    v = (uint64_t)cs->age_ms / 1000;
                    break;
                case 3: v = cs->overlapping; break;
                case 4: v = cs->reconnects; break;
                case 5: v = cs->rotations; break;
                }
                sbuf_printf(o, "%s{feed=\"%s\",conn=\"%u\"} %llu\n", fam[k].name,
                            feed_name((*src->feeds)[i]), c, (unsigned long long)v);
            }
        }
    }
    tk_metric_head(o, "tickerd_feed_last_overlap_ms", "gauge",
                "How long the last replacement connection ran beside the one it replaced");
    for (size_t i = 0; i < *src->nfeeds; i++) {
        feed_get_status((*src->feeds)[i], st);
        if (st->last_overlap_ms >= 0 && st->nconns)
            tk_metric_labelled(o, "tickerd_feed_last_overlap_ms", "feed", feed_name((*src->feeds)[i]),
                            (uint64_t)st->last_overlap_ms);
    }
    free(st);
}

static void http_history_metrics(const http_sources *src, sbuf *o)
{
    store *st = *src->store;
    store_stats ss;
    memset(&ss, 0, sizeof(ss));
    if (st)
        store_get_stats(st, &ss);
    int failing = *src->history_enabled && (!st || ss.degraded);
    tk_metric(o, "tickerd_history_up", "gauge",
           "1 while history is being written; 0 when disabled, unavailable or degraded (live-only)",
           (uint64_t)(*src->history_enabled && !failing));
    tk_metric(o, "tickerd_history_degraded", "gauge",
           "1 while history writes fail (disk full, read-only, I/O error) or the store could not open",
           (uint64_t)failing);
    tk_metric(o, "tickerd_history_ticks_written_total", "counter", "Ticks committed to the history file",
           ss.ticks_written);
    tk_metric(o, "tickerd_history_ticks_dropped_total", "counter",
           "Ticks lost to history (writer queue full, or unwritable at exit); recorded as gaps",
           ss.dropped);
    tk_metric(o, "tickerd_history_queue_depth", "gauge", "Ticks waiting for the history writer",
           ss.queue_depth);
    tk_metric(o, "tickerd_history_failed_batches_total", "counter",
           "History write transactions rolled back (their ticks stay queued)", ss.failed_batches);
    tk_metric(o, "tickerd_history_rows_trimmed_total", "counter", "History rows deleted by retention",
           ss.rows_trimmed);
    tk_metric(o, "tickerd_history_last_flush_microseconds", "gauge",
           "Duration of the last history write transaction", (uint64_t)ss.last_flush_us);
    hist_stats hs;
    hist_get_stats(*src->hist, &hs);
    tk_metric(o, "tickerd_history_requests_total", "counter",
           "History reads (subscribes with history, /api/history)", hs.requests);
    tk_metric(o, "tickerd_history_requests_busy_total", "counter",
           "History reads refused because too many were in progress", hs.busy);
    tk_metric(o, "tickerd_history_read_errors_total", "counter", "History queries that failed",
           hs.errors);
    tk_metric(o, "tickerd_history_rows_read_total", "counter", "Rows returned by history reads",
           hs.rows);
}

int http_render_metrics(const http_sources *src, sbuf *o)
{
    const norm_stats *ns = norm_get_stats(*src->norm);
    const bcast_stats *bs = bcast_get_stats(*src->bcast);
    const ws_stats *ws = ws_get_stats(*src->ws);
    const sess_stats *ss_ = sess_get_stats(*src->sess);

    tk_metric(o, "tickerd_clients_connected", "gauge", "WebSocket clients connected", bs->clients);
    tk_metric(o, "tickerd_clients_binary", "gauge",
           "WebSocket clients reading the binary encoding (tickerd.bin)", bs->bin_clients);
    tk_metric(o, "tickerd_subscriptions", "gauge", "Symbol subscriptions over all clients",
           bs->subscriptions);
    tk_metric(o, "tickerd_symbols", "gauge", "Symbols offered", bcast_symbols_offered(*src->bcast));
    tk_metric(o, "tickerd_updates_in_total", "counter", "Upstream updates accepted", ns->accepted);
    tk_metric_head(o, "tickerd_updates_rejected_total", "counter",
                "Upstream updates dropped by validation");
    for (int r = 0; r < NORM_REJECT_COUNT; r++)
        tk_metric_labelled(o, "tickerd_updates_rejected_total", "reason",
                        norm_reject_name((norm_reject_reason)r), ns->rejected[r]);
    tk_metric(o, "tickerd_updates_coalesced_total", "counter",
           "Accepted updates folded into a value awaiting the next flush", ns->coalesced);
    tk_metric(o, "tickerd_updates_published_total", "counter",
           "Values published to the broadcaster after coalescing", ns->published);
    tk_metric(o, "tickerd_updates_standby_total", "counter",
           "Accepted updates from a source that is not the symbol's active source (kept, not "
           "published)",
           ns->standby);
    tk_metric(o, "tickerd_source_switches_total", "counter",
           "Changes of a symbol's active source (failover to the next fresh source, or take-back "
           "by the preferred one)",
           ns->switches);
    tk_metric(o, "tickerd_symbols_stale", "gauge",
           "Symbols with a value but no fresh source (published with \"stale\":true)",
           ns->stale_symbols);
    tk_metric(o, "tickerd_updates_out_total", "counter", "Update objects sent to clients",
           bs->updates_out);
    tk_metric(o, "tickerd_snapshot_updates_out_total", "counter",
           "Update objects sent to clients in snapshot frames (reset snapshots included)", bs->snapshots_out);
    tk_metric(o, "tickerd_updates_conflated_total", "counter",
           "Values skipped for slow clients by per-client conflation", bs->conflated);
    tk_metric(o, "tickerd_frames_out_total", "counter", "Update, snapshot and replay frames sent",
           bs->frames_out);
    svcwait_stats sw;
    svcwait_get_stats(&sw);
    tk_metric(o, "tickerd_loop_writes_deferred_total", "counter",
           "Sockets waiting to write left for the next pass of the event loop (a pass writes at most a "
           "quarter of them, so timers and reads run in between)", sw.writes_deferred);
    tk_metric(o, "tickerd_loop_epoll", "gauge",
           "1 while the event loop takes readiness from its epoll sets, 0 while it polls every socket",
           (uint64_t)sw.epoll);
    tk_metric(o, "tickerd_loop_epoll_fallbacks_total", "counter",
           "Times the epoll sets could not follow the loop's sockets (then the loop polls)", sw.epoll_failures);
    tk_metric(o, "tickerd_loop_short_waits_total", "counter",
           "Zero-timeout polls (a timer less than 1 ms away) turned into a short wait instead of a spin",
           sw.waits);
    tk_metric(o, "tickerd_resume_replayed_updates_total", "counter",
           "Update objects sent to resuming clients in replay frames", bs->replayed_out);
    tk_metric(o, "tickerd_resume_replayed_symbols_total", "counter",
           "Resumed symbols whose replay was completed", bs->resume_replayed);
    tk_metric(o, "tickerd_resume_current_symbols_total", "counter",
           "Resumed symbols that were already up to date (nothing replayed)", bs->resume_current);
    tk_metric_head(o, "tickerd_resume_resets_total", "counter",
                "Resumed symbols given a reset snapshot instead of a replay");
    for (int r = 0; r < BCAST_RESET_COUNT; r++)
        tk_metric_labelled(o, "tickerd_resume_resets_total", "reason",
                        bcast_reset_name((bcast_reset_reason)r), bs->resume_resets[r]);
    tk_metric(o, "tickerd_resume_ring_bytes", "gauge",
           "Memory held by the per-symbol resume rings (broadcast.resume_depth)", bs->ring_bytes);
    tk_metric(o, "tickerd_bytes_out_total", "counter", "WebSocket payload bytes sent", ws->bytes_out);
    tk_metric(o, "tickerd_messages_in_total", "counter", "Client messages received", ss_->messages_in);
    tk_metric(o, "tickerd_control_frames_in_total", "counter",
           "Client WebSocket control frames (pings) counted against the message rate",
           ss_->control_frames_in);
    tk_metric_head(o, "tickerd_client_errors_total", "counter", "Error replies sent to clients");
    for (int e = 0; e < SESS_ERR_COUNT; e++)
        tk_metric_labelled(o, "tickerd_client_errors_total", "code",
                        sess_error_name((sess_error_code)e), ss_->errors[e]);
    tk_metric_head(o, "tickerd_clients", "gauge", "Client sessions by transport");
    for (int t = 0; t < SESS_MAX_TRANSPORTS && ss_->transports[t].name; t++)
        tk_metric_labelled(o, "tickerd_clients", "transport", ss_->transports[t].name,
                        ss_->transports[t].sessions);
    tk_metric_head(o, "tickerd_transport_errors_total", "counter",
                "Transport-level errors (refused, malformed, reaped) by transport and reason");
    for (int t = 0; t < SESS_MAX_TRANSPORTS && ss_->transports[t].name; t++)
        for (int r = 0; r < SESS_MAX_REASONS && ss_->transports[t].reasons[r]; r++)
            sbuf_printf(o, "tickerd_transport_errors_total{transport=\"%s\",reason=\"%s\"} %llu\n",
                        ss_->transports[t].name, ss_->transports[t].reasons[r],
                        (unsigned long long)ss_->transports[t].errors[r]);
    tk_metric(o, "tickerd_slow_client_closes_total", "counter",
           "Clients closed (1008) for accepting no bytes for broadcast.stall_timeout_ms",
           ws->stall_closes);
    tk_metric(o, "tickerd_abuse_closes_total", "counter",
           "Clients closed (1008) for exceeding limits.max_errors", ss_->abuse_closes);
    tk_metric(o, "tickerd_connections_rejected_total", "counter",
           "Connections closed (1013) at server.max_connections", ws->connections_rejected);
    const guard_stats *gs = guard_get_stats(*src->guard);
    tk_metric_head(o, "tickerd_http_rejected_total", "counter",
                "Request heads answered with an error by the listener's guard, by status");
    for (int v = 0; v < GUARD_VERDICT_COUNT; v++)
        if (guard_status((guard_verdict)v))
            sbuf_printf(o, "tickerd_http_rejected_total{status=\"%d\",reason=\"%s\"} %llu\n",
                        guard_status((guard_verdict)v), guard_reason((guard_verdict)v),
                        (unsigned long long)gs->rejected[v]);
    tk_metric(o, "tickerd_http_head_timeouts_total", "counter",
           "Connections closed without a complete request head (gave up or timed out)",
           gs->head_timeouts);
    tk_metric(o, "tickerd_http_heads_pending", "gauge",
           "Connections still sending their first request head (TLS: or finishing the handshake)",
           gs->pending);
    tk_metric_head(o, "tickerd_connections_refused_total", "counter",
                "Connections refused by the listener's per-address and handshake limits, by reason");
    for (int r = 0; r < GUARD_REFUSE_COUNT; r++)
        tk_metric_labelled(o, "tickerd_connections_refused_total", "reason",
                        guard_refusal_name((guard_refusal)r), gs->refused[r]);
    tk_metric(o, "tickerd_connection_addresses", "gauge",
           "Client addresses (IPv4, IPv6 /64) with connections open", gs->addresses);
    tk_metric(o, "tickerd_forwarded_connections_total", "counter",
           "Connections from a trusted proxy counted under their X-Forwarded-For address",
           gs->forwarded);
    tk_metric(o, "tickerd_forwarded_ignored_total", "counter",
           "Requests with X-Forwarded-For from a peer not in server.trusted_proxies (not believed)",
           gs->forwarded_ignored);
    if (src->tls) {
        tk_metric(o, "tickerd_tls_cert_not_after_seconds", "gauge",
               "Expiry of the listener's TLS certificate (Unix time; 0 without TLS)",
               (uint64_t)(src->tls->not_after > 0 ? src->tls->not_after : 0));
        tk_metric(o, "tickerd_tls_reloads_total", "counter",
               "SIGHUPs that re-read the TLS certificate", src->tls->reloads);
        tk_metric(o, "tickerd_tls_reload_failures_total", "counter",
               "SIGHUPs whose TLS files were refused (the certificate in use was kept)",
               src->tls->reload_failures);
    }
    tk_metric(o, "tickerd_subscribe_timeout_closes_total", "counter",
           "Sessions (/ws, Socket.IO) closed for subscribing to nothing within limits.subscribe_timeout_ms",
           ss_->subscribe_timeouts);
    tk_metric(o, "tickerd_invalid_utf8_closes_total", "counter",
           "WebSocket clients closed (1007) for a text message that is not UTF-8", ws->utf8_closes);
    tk_metric(o, "tickerd_ws_rx_buffer_bytes", "gauge",
           "Bytes held reassembling unfinished WebSocket client messages", ws->rx_bytes_held);
    tk_metric(o, "tickerd_replies_dropped_total", "counter",
           "Control replies dropped because a client's reply queue was full", ss_->replies_dropped);
    gate_render_metrics(sess_gate(*src->sess), o); /* Origin, address lists, auth */

    /* Prometheus wants each family's samples together: two passes over the feeds. */
    tk_metric_head(o, "tickerd_feed_up", "gauge", "Feed state: 1 live, 0 otherwise");
    for (size_t i = 0; i < *src->nfeeds; i++) {
        feed_status st;
        feed_get_status((*src->feeds)[i], &st);
        tk_metric_labelled(o, "tickerd_feed_up", "feed", feed_name((*src->feeds)[i]),
                        st.state == FEED_LIVE);
    }
    tk_metric_head(o, "tickerd_feed_updates_total", "counter", "Updates emitted by each feed");
    for (size_t i = 0; i < *src->nfeeds; i++) {
        feed_status st;
        feed_get_status((*src->feeds)[i], &st);
        tk_metric_labelled(o, "tickerd_feed_updates_total", "feed", feed_name((*src->feeds)[i]),
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
        {"tickerd_feed_rotations_total",
         "Upstream connections replaced make-before-break (before the venue's age limit)",
         offsetof(feed_status, rotations)},
        {"tickerd_feed_stale_dropped_total",
         "Upstream updates dropped as not newer than one already emitted (overlapping "
         "connections, venue replays)",
         offsetof(feed_status, stale_dropped)},
    };
    for (size_t k = 0; k < sizeof(fails) / sizeof(fails[0]); k++) {
        tk_metric_head(o, fails[k].name, "counter", fails[k].help);
        for (size_t i = 0; i < *src->nfeeds; i++) {
            feed_status st;
            feed_get_status((*src->feeds)[i], &st);
            tk_metric_labelled(o, fails[k].name, "feed", feed_name((*src->feeds)[i]),
                            *(const uint64_t *)((const char *)&st + fails[k].off));
        }
    }
    http_feed_conn_metrics(src, o);
    http_history_metrics(src, o);
    if (src->cluster)
        cluster_render_metrics(src->cluster, o);
    tk_metric(o, "tickerd_uptime_seconds", "gauge", "Seconds since start",
           (uint64_t)((tk_now_us() - src->started_us) / 1000000));
    return 200;
}

/* The store's state: "ok", "degraded" (writes failing: live-only until the
 * disk recovers), "unavailable" (could not be opened) or "disabled". */
json_t *http_history_json(const http_sources *src, int64_t now)
{
    store *st = *src->store;
    if (!*src->history_enabled)
        return json_pack("{s:s}", "state", "disabled");
    if (!st)
        return json_pack("{s:s, s:s, s:s}", "state", "unavailable", "path", src->history_path,
                         "error", src->history_error);
    store_stats ss;
    store_get_stats(st, &ss);
    json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I}", "state", ss.degraded ? "degraded" : "ok",
                          "path", src->history_path, "queue_depth", (json_int_t)ss.queue_depth,
                          "ticks_written", (json_int_t)ss.ticks_written, "dropped",
                          (json_int_t)ss.dropped);
    if (j && ss.last_commit_us)
        json_object_set_new(j, "last_commit_age_ms", json_integer((now - ss.last_commit_us) / 1000));
    if (j && ss.degraded) {
        json_object_set_new(j, "error", json_string(ss.error));
        json_object_set_new(j, "degraded_for_ms", json_integer((now - ss.degraded_since_us) / 1000));
    }
    return j;
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
                             (int)bcast_symbols_offered(*src->bcast), "stale_symbols",
                             (json_int_t)norm_get_stats(*src->norm)->stale_symbols, "feeds",
                             feeds);
    if (root)
        json_object_set_new(root, "history", http_history_json(src, now));
    if (root && src->cluster) {
        /* An edge has no feeds: it is live while Redis is. */
        json_object_set_new(root, "cluster", cluster_health_json(src->cluster, &live));
        json_object_set_new(root, "status", json_string(live ? "ok" : "down"));
    }
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    if (text)
        sbuf_append(o, text, strlen(text));
    else
        o->overflow = 1;
    free(text);
    json_decref(root);
    return live ? 200 : 503;
}

void http_render_symbols(const http_sources *src, const auth_token *only, sbuf *o)
{
    const bcast *b = *src->bcast;
    sbuf_append(o, "{\"symbols\":[", 12);
    for (uint32_t id = 0, k = 0; id < bcast_symbol_count(b); id++) {
        if (bcast_symbol_removed(b, id) || (only && !auth_token_allows(only, bcast_symbol_name(b, id))))
            continue;
        size_t len;
        const char *json = bcast_symbol_json(b, id, &len);
        /* The latest value's own object, with the symbol's status first. */
        sbuf_printf(o, "%s{\"status\":\"%s\",", k++ ? "," : "", bcast_symbol_status(b, id));
        if (json)
            sbuf_append(o, json + 1, len - 1);
        else
            sbuf_printf(o, "\"symbol\":\"%s\",\"seq\":0}", bcast_symbol_name(b, id));
    }
    sbuf_append(o, "]}", 2);
}

static void http_error_body(sbuf *o, const char *code, const char *msg)
{
    sbuf_printf(o, "{\"error\":\"%s\",\"message\":\"", code);
    for (; *msg; msg++) { /* messages are ours, but may echo a parameter name */
        if (*msg == '"' || *msg == '\\')
            sbuf_append(o, "\\", 1);
        if ((unsigned char)*msg >= 0x20)
            sbuf_append(o, msg, 1);
    }
    sbuf_append(o, "\"}", 2);
}

int http_render_snapshot(const http_sources *src, const char *symbols, const auth_token *only,
                         sbuf *o)
{
    const bcast *b = *src->bcast;
    if (!symbols || !symbols[0]) {
        int n = 0;
        sbuf_append(o, "{\"updates\":[", 12);
        for (uint32_t id = 0; id < bcast_symbol_count(b); id++) {
            if (only && !auth_token_allows(only, bcast_symbol_name(b, id)))
                continue; /* a named list was checked by the gate */
            size_t len;
            const char *json = bcast_symbol_json(b, id, &len);
            if (json && !bcast_symbol_removed(b, id)) {
                sbuf_append(o, ",", n++ ? 1 : 0);
                sbuf_append(o, json, len);
            }
        }
        sbuf_append(o, "]}", 2);
        return 200;
    }
    /* The names, each once (a name repeated 480 times answered 480 values:
     * a 23x amplification), split in place in a copy of the list. */
    size_t cap = 1;
    for (const char *p = symbols; *p; p++)
        cap += *p == ',';
    char *copy = strdup(symbols);
    const char **names = malloc(cap * sizeof(*names));
    size_t n = 0;
    for (char *p = copy, *next; names && copy && p; p = next) {
        next = strchr(p, ',');
        if (next)
            *next++ = '\0';
        if (*p)
            names[n++] = p;
    }
    if (!copy || !names || (n = tk_dedupe_names(names, n)) == (size_t)-1) {
        free(copy);
        free(names);
        http_error_body(o, "internal", "out of memory");
        return 500;
    }
    /* Unknown names first: nothing else is answered then. */
    sbuf unknown;
    sbuf_init(&unknown, 64 << 10);
    for (size_t i = 0; i < n; i++) {
        if (bcast_symbol_id(b, names[i]) != UINT32_MAX)
            continue;
        sbuf_printf(&unknown, "%s\"", unknown.len ? "," : "");
        for (const char *c = names[i]; *c && c - names[i] < 63; c++) /* JSON-safe echo */
            sbuf_append(&unknown, *c == '"' || *c == '\\' || (unsigned char)*c < 0x20 ? "?" : c, 1);
        sbuf_append(&unknown, "\"", 1);
    }
    int status = 200;
    if (unknown.len) {
        sbuf_printf(o, "{\"error\":\"unknown_symbol\",\"message\":\"unknown symbol(s)\","
                       "\"symbols\":[%.*s]}",
                    (int)unknown.len, unknown.data);
        status = 404;
    } else {
        sbuf_append(o, "{\"updates\":[", 12);
        for (size_t i = 0, k = 0; i < n; i++) {
            size_t elen;
            const char *json = bcast_symbol_json(b, bcast_symbol_id(b, names[i]), &elen);
            if (json) {
                sbuf_append(o, ",", k++ ? 1 : 0);
                sbuf_append(o, json, elen);
            }
        }
        sbuf_append(o, "]}", 2);
    }
    sbuf_free(&unknown);
    free(names);
    free(copy);
    return status;
}

/* ---- query strings ---- */

/* Parse /api/history's arguments into q. Returns 0, or an HTTP status (400,
 * 404) with the reason in msg. */
/* The URI's arguments as lws splits them (decoded), at most HTTP_QUERY_ARGS
 * of at most 160 bytes each: a longer query is refused as such. */
#define HTTP_QUERY_ARGS 16
static int http_parse_history(struct lws *wsi, const http_sources *src, hist_query *q, char *msg,
                              size_t msgcap)
{
    char buf[HTTP_QUERY_ARGS][160];
    const char *args[HTTP_QUERY_ARGS];
    size_t n = 0;
    /* the 17th fragment lands in buf[0] only to be refused */
    while (lws_hdr_copy_fragment(wsi, buf[n % HTTP_QUERY_ARGS], sizeof(buf[0]), WSI_TOKEN_HTTP_URI_ARGS,
                                 (int)n) > 0) {
        if (n == HTTP_QUERY_ARGS) {
            snprintf(msg, msgcap, "too many parameters (symbol, interval, from, to, limit)");
            return 400;
        }
        args[n] = buf[n];
        n++;
    }
    int status = http_query_history(args, n, hist_max_rows(*src->hist), q, msg, msgcap);
    if (status)
        return status;
    if (bcast_symbol_id(*src->bcast, q->symbol) == UINT32_MAX) {
        snprintf(msg, msgcap, "unknown symbol %.32s", q->symbol);
        return 404;
    }
    return 0;
}

/* ---- lws glue ---- */

/* Access-Control-Allow-Origin for the request's Origin, per api.cors_origins:
 * "*" answers any origin, else a comma-separated list of exact origins. */
int http_cors_header(struct lws *wsi, const char *allowed, unsigned char **p, unsigned char *end)
{
    char origin[256];
    if (!allowed || !allowed[0] || lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) <= 0)
        return 0;
    return http_cors_origin_header(wsi, allowed, origin, p, end);
}

int http_cors_origin_header(struct lws *wsi, const char *allowed, const char *origin,
                            unsigned char **p, unsigned char *end)
{
    if (!allowed || !allowed[0] || !origin || !origin[0])
        return 0;
    int ok = !strcmp(allowed, "*");
    size_t olen = strlen(origin);
    for (const char *a = allowed; !ok && *a;) {
        size_t len = strcspn(a, ",");
        while (len && *a == ' ')
            a++, len--;
        ok = len == olen && !memcmp(a, origin, olen);
        a += len + (a[len] == ',');
    }
    if (!ok)
        return 0;
    const char *value = strcmp(allowed, "*") ? origin : "*";
    return lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-origin:",
                                       (const unsigned char *)value, (int)strlen(value), p, end) ||
           lws_add_http_header_by_name(wsi, (const unsigned char *)"vary:",
                                       (const unsigned char *)"Origin", 6, p, end);
}

/* Headers for s->body, then its chunks from HTTP_WRITEABLE. */
static int http_respond(struct lws *wsi, http_server *h, http_session *s, int status,
                        const char *type)
{
    if (s->body.overflow) {
        sbuf_free(&s->body);
        return lws_return_http_status(wsi, HTTP_STATUS_INTERNAL_SERVER_ERROR, "too large") ? -1 : 0;
    }
    unsigned char hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start,
                                       *end = hdr + sizeof(hdr) - 1;
    if (lws_add_http_common_headers(wsi, (unsigned)status, type, s->body.len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, (unsigned char *)"no-store",
                                     8, &p, end) ||
        (s->api && http_cors_header(wsi, h->src.cors_origins, &p, end)) ||
        (status == 401 && gate_www_authenticate(wsi, &p, end)) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    s->sent = 0;
    s->ready = 1;
    lws_callback_on_writable(wsi);
    return 0;
}


static void http_history_done(void *arg, hist_req *r)
{
    http_session *s = arg;
    hist_result *res = hist_req_result(r, 0);
    s->req = NULL;
    if (res->buf)
        sbuf_append(&s->body, res->buf + LWS_PRE, res->len);
    else
        s->body.overflow = 1;
    s->status = res->status;
    hist_req_free(r);
    s->answered = 1;
    lws_callback_on_writable(s->wsi);
}

/* The admin page's files: /admin (index.html) and what it loads. */
static const char *http_admin_file(const char *uri, const char **mime)
{
    *mime = "text/html";
    if (!strcmp(uri, "/admin") || !strcmp(uri, "/admin/"))
        return "admin/index.html";
    if (!strcmp(uri, "/admin/admin.js")) {
        *mime = "text/javascript";
        return "admin/admin.js";
    }
    return NULL;
}

/* /admin and /api/admin: absent unless admin.enabled; then only for the
 * peers in admin.allowed_addresses (the peer of the socket itself, never a
 * forwarded-for header a client could write). Returns 0 when the request may
 * go on; else the status to answer (404 or 403, body written). */
static int http_admin_gate(struct lws *wsi, http_server *h, http_session *s)
{
    if (!*h->src.admin_enabled)
        return 404;
    char peer[NETLIST_ADDR_TEXT];
    if (netlist_match_fd(h->src.admin_allowed, lws_get_socket_fd(wsi), peer, sizeof(peer)))
        return 0;
    h->admin_refused++;
    char msg[128];
    snprintf(msg, sizeof(msg), "the admin view is not open to %s (admin.allowed_addresses)",
             peer[0] ? peer : "this address");
    http_error_body(&s->body, "forbidden", msg);
    return 403;
}

static int http_begin(struct lws *wsi, http_server *h, http_session *s)
{
    char uri[128];
    int n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
    if (n <= 0)
        return lws_return_http_status(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, "GET only") ? -1 : 0;

    int status = 200;
    const char *type = "application/json";
    memset(s, 0, sizeof(*s));
    s->wsi = wsi;
    sbuf_init(&s->body, HTTP_BODY_LIMIT);
    s->api = !strncmp(uri, "/api/", 5);
    int admin_page = !strncmp(uri, "/admin", 6);
    if (admin_page || !strcmp(uri, "/api/admin")) {
        int refused = http_admin_gate(wsi, h, s);
        if (refused == 404) {
            sbuf_free(&s->body);
            return lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL) ? -1 : 0;
        }
        if (refused)
            return http_respond(wsi, h, s, refused, type);
    }
    if (admin_page) {
        const char *mime, *file = http_admin_file(uri, &mime);
        char path[1024];
        sbuf_free(&s->body);
        if (!file || snprintf(path, sizeof(path), "%s/%s", h->src.web_root, file) >= (int)sizeof(path))
            return lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL) ? -1 : 0;
        int n = lws_serve_http_file(wsi, path, mime, NULL, 0);
        return n < 0 || (n > 0 && lws_http_transaction_completed(wsi)) ? -1 : 0;
    }
    if (!strcmp(uri, "/api/admin")) {
        /* admin.allowed_addresses decides, not auth tokens: the page fetches it without one */
        if (admin_render(&h->src, &s->body))
            s->body.overflow = 1;
        return http_respond(wsi, h, s, status, type);
    }
    auth_token *tok = NULL; /* auth.mode token: what the request's token entitles */
    int refused = gate_http(sess_gate(*h->src.sess), wsi, uri, &s->body, &tok);
    if (refused) {
        status = refused;
    } else if (!strcmp(uri, "/metrics")) {
        type = "text/plain; version=0.0.4";
        status = http_render_metrics(&h->src, &s->body);
        tk_metric(&s->body, "tickerd_admin_refused_total", "counter",
               "Requests for /admin or /api/admin from an address not in admin.allowed_addresses",
               h->admin_refused);
    } else if (!strcmp(uri, "/healthz")) {
        status = http_render_healthz(&h->src, &s->body);
    } else if (!strcmp(uri, "/api/symbols")) {
        http_render_symbols(&h->src, tok, &s->body);
    } else if (!strcmp(uri, "/api/snapshot")) {
        char arg[8192];
        const char *list = lws_get_urlarg_by_name(wsi, "symbols=", arg, sizeof(arg));
        status = http_render_snapshot(&h->src, list, tok, &s->body);
    } else if (!strcmp(uri, "/api/history")) {
        hist_query q;
        char msg[200];
        status = http_parse_history(wsi, &h->src, &q, msg, sizeof(msg));
        if (status) {
            http_error_body(&s->body, status == 404 ? "unknown_symbol" : "bad_request", msg);
        } else {
            s->req = hist_submit(*h->src.hist, &q, NULL, 1, HIST_FMT_API, http_history_done, s);
            if (s->req) {
                auth_token_free(tok);
                return 0; /* answered from http_history_done */
            }
            status = 503;
            http_error_body(&s->body, "busy", "too many history requests in progress; retry shortly");
        }
    } else {
        sbuf_free(&s->body);
        return lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL) ? -1 : 0;
    }
    auth_token_free(tok);
    return http_respond(wsi, h, s, status, refused ? "application/json" : type);
}

static int http_writeable(struct lws *wsi, http_server *h, http_session *s)
{
    if (s->answered && !s->ready) {
        s->answered = 0;
        return http_respond(wsi, h, s, s->status, "application/json");
    }
    if (!s->ready || !s->body.data)
        return 0;
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
    s->ready = 0;
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
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        /* a keep-alive connection is bound here between requests: its
         * upgrade meets the same gate as a fresh one's (ws.c) */
        return h ? gate_upgrade(sess_gate(*h->src.sess), wsi) : 0;
    case LWS_CALLBACK_HTTP:
        return http_begin(wsi, h, s);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (s)
            return http_writeable(wsi, h, s);
        break;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (s) {
            hist_cancel(s->req); /* a history read still running answers no one */
            s->req = NULL;
            sbuf_free(&s->body);
        }
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
    static const char *const points[] = {"/metrics",      "/healthz",     "/api/symbols",
                                         "/api/snapshot", "/api/history", "/api/admin",
                                         "/admin"};
    enum { NPOINTS = sizeof(points) / sizeof(points[0]) };
    for (int i = NPOINTS - 1; i >= 0; i--) {
        struct lws_http_mount *m = &h->mounts[i];
        memset(m, 0, sizeof(*m));
        m->mount_next = i == NPOINTS - 1 ? next : &h->mounts[i + 1];
        m->mountpoint = points[i];
        m->mountpoint_len = (unsigned char)strlen(points[i]);
        m->origin = HTTP_PROTOCOL_NAME;
        m->origin_protocol = LWSMPRO_CALLBACK;
    }
    return &h->mounts[0];
}
