/* ws.c — see ws.h.
 *
 * One write per WRITEABLE: a queued control reply if there is one (so an ack
 * always precedes the snapshot it announces), else the client's next update
 * frame from bcast. While anything remains, ask for another WRITEABLE. */
#include "tickerd/ws.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>

#include "tickerd/history.h"
#include "tickerd/log.h"
#include "tickerd/util.h"

#define WS_ERROR_WINDOW_US 10000000 /* the error budget's window */
#define WS_REPLY_QUEUE 16           /* replies held per connection */
#define WS_REPLY_PAUSE_AT 8         /* stop reading requests at this many */
#define WS_ID_MAX 64
#define WS_CLOSE_TRY_AGAIN_LATER 1013
#define WS_LINGER_US 1000000   /* longest wait for a closing peer to go quiet */
#define WS_LINGER_POLL_US 10000
#define WS_HIST_INFLIGHT 2     /* history requests per connection at once */
#define WS_HIST_DEFAULT_LIMIT 100

typedef struct ws_session ws_session;

/* A queued control reply (ack/error): LWS_PRE spare bytes, then the text. A
 * list rather than a fixed array: idle connections, the common case, then
 * hold two pointers instead of a slot table. */
typedef struct ws_reply {
    struct ws_reply *next;
    uint32_t len;
    unsigned char buf[]; /* LWS_PRE + len */
} ws_reply;

struct ws_server {
    bcast *b;
    ws_limits limits;
    ws_stats stats;
    ws_session *sessions; /* every open connection, for sweep and shutdown */
    hist *hist;           /* history reads (subscribe's "history"); NULL = none */
    unsigned char *frame; /* LWS_PRE + max_frame_bytes scratch for frames */
    size_t frame_cap;
    int shutting_down;
};

struct ws_session {
    struct lws *wsi;
    ws_server *ws;
    bcast_client *client; /* NULL for a connection refused at max_connections */
    uint8_t binary;       /* tickerd.bin: update frames are binary */
    ws_session *next, *prev;
    /* message reassembly */
    char *rx;
    uint32_t rx_len;
    uint32_t rx_limit; /* max_message_bytes when this message began (reload-proof) */
    uint8_t in_msg, rx_binary, rx_skip, rx_paused;
    /* replies, oldest first; at most WS_REPLY_QUEUE */
    ws_reply *reply_head, *reply_tail;
    uint8_t reply_count;
    /* limits */
    double tokens;
    int64_t tokens_at_us;
    uint32_t errors;
    int64_t errors_since_us;
    int64_t want_write_since_us; /* 0 = not waiting for the socket */
    int outq;                    /* unsent bytes in the kernel at the last sweep */
    uint16_t close_code;
    uint8_t close_after_replies; /* send the queued replies before closing */
    const char *close_reason;
    int64_t close_by_us;         /* lingering deadline, see ws_close_now */
    int64_t heard_us;            /* last frame (or pong) from the peer: keepalive */
    uint8_t ping_due, ping_sent;
    /* history requests, oldest first; their frames go out in that order */
    hist_req *hist[WS_HIST_INFLIGHT];
    uint8_t hist_done[WS_HIST_INFLIGHT];
    uint32_t hist_next; /* next result of hist[0] to send */
    uint8_t nhist;
};

static const char *const error_names[WS_ERR_COUNT] = {
    "bad_json",          "bad_request",       "unknown_op",
    "unknown_symbol",    "too_many_subscriptions", "message_too_large",
    "binary_not_supported", "rate_limited",   "internal",
    "busy",
};

const char *ws_error_name(ws_error_code code) { return error_names[code]; }
const ws_stats *ws_get_stats(const ws_server *ws) { return &ws->stats; }

ws_server *ws_create(bcast *b, const ws_limits *limits)
{
    ws_server *ws = calloc(1, sizeof(*ws));
    if (!ws)
        return NULL;
    ws->b = b;
    if (ws_set_limits(ws, limits)) {
        free(ws);
        return NULL;
    }
    return ws;
}

void ws_set_history(ws_server *ws, hist *h) { ws->hist = h; }

void ws_destroy(ws_server *ws)
{
    if (!ws)
        return;
    free(ws->frame);
    free(ws);
}

int ws_set_limits(ws_server *ws, const ws_limits *limits)
{
    if (limits->max_frame_bytes != ws->frame_cap) {
        unsigned char *f = realloc(ws->frame, LWS_PRE + (size_t)limits->max_frame_bytes);
        if (!f)
            return -1;
        ws->frame = f;
        ws->frame_cap = limits->max_frame_bytes;
    }
    ws->limits = *limits;
    return 0;
}

/* ---- writing ---- */

static void ws_request_write(ws_session *s)
{
    if (!s->want_write_since_us)
        s->want_write_since_us = tk_mono_us();
    lws_callback_on_writable(s->wsi);
}

static void ws_wake(void *arg) { ws_request_write(arg); }

static void ws_close(ws_session *s, uint16_t code, const char *reason, int after_replies)
{
    if (s->close_code)
        return;
    s->close_code = code;
    s->close_after_replies = (uint8_t)after_replies;
    s->close_reason = reason;
    s->close_by_us = tk_mono_us() + WS_LINGER_US;
    /* Keep reading (and discarding) what the peer still sends: closing a
     * socket with unread input makes the kernel answer with a reset, which
     * destroys the replies and the close frame on their way to the peer. */
    if (s->rx_paused) {
        s->rx_paused = 0;
        lws_rx_flow_control(s->wsi, 1);
    }
    lws_callback_on_writable(s->wsi);
}

static void ws_queue_reply(ws_session *s, json_t *reply)
{
    char *text = json_dumps(reply, JSON_COMPACT);
    json_decref(reply);
    if (!text)
        return;
    if (s->reply_count == WS_REPLY_QUEUE) {
        /* Reading pauses well before this; only frames lws had already
         * parsed can land here. Counted, never silent. */
        s->ws->stats.replies_dropped++;
        free(text);
        return;
    }
    size_t len = strlen(text);
    ws_reply *r = malloc(sizeof(*r) + LWS_PRE + len);
    if (!r) {
        free(text);
        s->ws->stats.replies_dropped++;
        return;
    }
    r->next = NULL;
    r->len = (uint32_t)len;
    memcpy(r->buf + LWS_PRE, text, len);
    free(text);
    if (s->reply_tail)
        s->reply_tail->next = r;
    else
        s->reply_head = r;
    s->reply_tail = r;
    s->reply_count++;
    /* Back-pressure on requests: a client that does not read its replies
     * stops being read, instead of growing this queue. */
    if (s->reply_count >= WS_REPLY_PAUSE_AT && !s->rx_paused) {
        s->rx_paused = 1;
        lws_rx_flow_control(s->wsi, 0);
    }
    ws_request_write(s);
}

/* Close with the chosen code, or return 0 to try again shortly. lws sends
 * the close frame and closes the socket at once; if the peer's input is still
 * unread then, the kernel answers with a reset and the peer loses the replies
 * and the close frame in flight. So first linger, reading and discarding,
 * until the input is drained or WS_LINGER_US has passed (as nginx's
 * lingering_close does). */
static int ws_close_now(ws_session *s)
{
    int unread = 0;
    if (tk_mono_us() < s->close_by_us &&
        !ioctl(lws_get_socket_fd(s->wsi), FIONREAD, &unread) && unread > 0) {
        lws_set_timer_usecs(s->wsi, WS_LINGER_POLL_US);
        return 0;
    }
    const char *reason = s->close_reason ? s->close_reason : "";
    lws_close_reason(s->wsi, (enum lws_close_status)s->close_code, (unsigned char *)reason,
                     strlen(reason));
    return -1;
}

/* ---- history frames ---- */

/* A history frame goes out once it is ready and the snapshots before it
 * have gone: ack, snapshot, history, then the replay that joins it to live. */
static int ws_history_due(const ws_session *s)
{
    return s->nhist && s->hist_done[0] && !bcast_client_snapshots_due(s->client);
}

static void ws_history_pop(ws_session *s)
{
    hist_req_free(s->hist[0]);
    memmove(s->hist, s->hist + 1, (WS_HIST_INFLIGHT - 1) * sizeof(s->hist[0]));
    memmove(s->hist_done, s->hist_done + 1, WS_HIST_INFLIGHT - 1);
    s->nhist--;
    s->hist[s->nhist] = NULL;
    s->hist_done[s->nhist] = 0;
    s->hist_next = 0;
}

/* Write the next history frame of the oldest finished request, then let the
 * symbol's live updates continue from the frame's last value. */
static int ws_write_history(ws_session *s, size_t *written)
{
    hist_req *r = s->hist[0];
    hist_result *res = hist_req_result(r, s->hist_next);
    /* Only a real history is a seam to join; after an error frame (or none)
     * live updates just follow the snapshot. */
    int joined = res->status == 200 && res->buf;
    if (res->buf) {
        if (lws_write(s->wsi, (unsigned char *)res->buf + LWS_PRE, res->len, LWS_WRITE_TEXT) <
            (int)res->len)
            return -1;
        *written = res->len;
        free(res->buf); /* lws keeps its own copy of anything unsent */
        res->buf = NULL;
    }
    bcast_unpark(s->client, res->sym_id, joined ? res->seq : BCAST_UNPARK_LIVE);
    if (++s->hist_next == hist_req_count(r))
        ws_history_pop(s);
    return 0;
}

static void ws_history_done(void *arg, hist_req *r)
{
    ws_session *s = arg;
    for (unsigned i = 0; i < s->nhist; i++)
        if (s->hist[i] == r)
            s->hist_done[i] = 1;
    ws_request_write(s);
}

static void ws_history_release(ws_session *s)
{
    for (unsigned i = 0; i < s->nhist; i++) {
        if (s->hist_done[i])
            hist_req_free(s->hist[i]);
        else
            hist_cancel(s->hist[i]);
    }
    s->nhist = 0;
}

static int ws_writeable(ws_session *s)
{
    ws_server *ws = s->ws;
    if (s->close_code && !(s->close_after_replies && s->reply_count))
        return ws_close_now(s);
    s->want_write_since_us = 0;
    size_t len = 0;
    if (s->ping_due) {
        /* A payload, because lws 4.1.6 does not report an empty pong. */
        unsigned char ping[LWS_PRE + 4] = {[LWS_PRE] = 't', 'k', 'd', 'p'};
        s->ping_due = 0;
        s->ping_sent = 1;
        if (lws_write(s->wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 4)
            return -1;
    } else if (s->reply_count) {
        ws_reply *r = s->reply_head;
        s->reply_head = r->next;
        if (!s->reply_head)
            s->reply_tail = NULL;
        s->reply_count--;
        len = r->len;
        int n = lws_write(s->wsi, r->buf + LWS_PRE, len, LWS_WRITE_TEXT);
        free(r);
        if (n < (int)len)
            return -1;
        if (s->rx_paused && s->reply_count < WS_REPLY_PAUSE_AT / 2) {
            s->rx_paused = 0;
            lws_rx_flow_control(s->wsi, 1);
        }
    } else if (ws_history_due(s)) {
        if (ws_write_history(s, &len))
            return -1;
    } else if (s->client) {
        len = bcast_client_frame(s->client, (char *)ws->frame + LWS_PRE, ws->frame_cap);
        enum lws_write_protocol type = s->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT;
        if (len && lws_write(s->wsi, ws->frame + LWS_PRE, len, type) < (int)len)
            return -1;
    }
    ws->stats.bytes_out += len;
    if (s->reply_count || ws_history_due(s) || (s->client && bcast_client_has_pending(s->client)))
        ws_request_write(s);
    else if (s->close_code)
        lws_callback_on_writable(s->wsi); /* replies flushed: now close */
    return 0;
}

/* ---- requests ---- */

static json_t *ws_id_copy(const json_t *id) { return id ? json_deep_copy(id) : json_null(); }

static void ws_error(ws_session *s, const json_t *id, ws_error_code code, const char *message,
                     json_t *symbols)
{
    ws_server *ws = s->ws;
    ws->stats.errors[code]++;
    json_t *r = json_pack("{s:s, s:o, s:s, s:s}", "op", "error", "id", ws_id_copy(id), "code",
                          error_names[code], "message", message);
    if (r && symbols)
        json_object_set_new(r, "symbols", symbols);
    else
        json_decref(symbols);
    if (r)
        ws_queue_reply(s, r);

    int64_t now = tk_mono_us();
    if (now - s->errors_since_us > WS_ERROR_WINDOW_US) {
        s->errors_since_us = now;
        s->errors = 0;
    }
    if (++s->errors > ws->limits.max_errors) {
        ws->stats.abuse_closes++;
        log_info("ws: closing a connection after %u errors in 10 s", s->errors);
        /* The client sees the errors that led here, then the close. */
        ws_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too many errors", 1);
    }
}

static void ws_ack(ws_session *s, const json_t *id, const char *req, json_t *extra_key_val)
{
    json_t *r = json_pack("{s:s, s:o, s:s}", "op", "ack", "id", ws_id_copy(id), "req", req);
    if (!r) {
        json_decref(extra_key_val);
        return;
    }
    if (extra_key_val)
        json_object_update(r, extra_key_val);
    json_decref(extra_key_val);
    ws_queue_reply(s, r);
}

static int ws_rate_ok(ws_session *s)
{
    double rate = s->ws->limits.max_messages_per_sec;
    int64_t now = tk_mono_us();
    if (!s->tokens_at_us) {
        s->tokens = rate;
    } else {
        s->tokens += rate * (double)(now - s->tokens_at_us) / 1e6;
        if (s->tokens > rate)
            s->tokens = rate;
    }
    s->tokens_at_us = now;
    if (s->tokens < 1)
        return 0;
    s->tokens -= 1;
    return 1;
}

/* The optional "resume" of a subscribe: {"SYMBOL": last seq seen, ...}.
 * Returns 0 and the entries (names point into res), or -1 after replying
 * with an error. */
static int ws_parse_resume(ws_session *s, const json_t *id, const json_t *res, bcast_resume **out,
                           size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (!res)
        return 0;
    if (!json_is_object(res)) {
        ws_error(s, id, WS_ERR_BAD_REQUEST,
                 "\"resume\" must be an object mapping a symbol to the last seq seen", NULL);
        return -1;
    }
    size_t n = json_object_size(res);
    if (!n)
        return 0;
    bcast_resume *r = malloc(n * sizeof(*r));
    if (!r) {
        ws_error(s, id, WS_ERR_INTERNAL, "out of memory", NULL);
        return -1;
    }
    const char *sym;
    const json_t *v;
    size_t i = 0;
    json_object_foreach((json_t *)res, sym, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            ws_error(s, id, WS_ERR_BAD_REQUEST,
                     "\"resume\" values must be non-negative integers (the last seq seen)", NULL);
            free(r);
            return -1;
        }
        r[i].symbol = sym;
        r[i].seq = (uint64_t)json_integer_value(v);
        i++;
    }
    *out = r;
    *nout = i;
    return 0;
}

/* The optional "history" of a subscribe: {"interval": "1m", "limit": 120}.
 * Returns 0 with *wanted set (0 when absent), or -1 after replying with an
 * error. Checked before anything changes, so a refused request subscribes
 * nothing. */
static int ws_parse_history(ws_session *s, const json_t *id, const json_t *req, size_t nsyms,
                            int *wanted, hist_query *q)
{
    const json_t *h = json_object_get(req, "history");
    char text[200];
    *wanted = 0;
    if (!h)
        return 0;
    int max_rows = s->ws->hist ? hist_max_rows(s->ws->hist) : HIST_DEFAULT_MAX_ROWS;
    const json_t *interval = json_object_get(h, "interval");
    const json_t *limit = json_object_get(h, "limit");
    memset(q, 0, sizeof(*q));
    q->interval_s = hist_parse_interval(json_string_value(interval));
    q->limit = limit ? (int)json_integer_value(limit) : WS_HIST_DEFAULT_LIMIT;
    const char *key, *stray = NULL;
    const json_t *v;
    json_object_foreach((json_t *)h, key, v)
        if (strcmp(key, "interval") && strcmp(key, "limit"))
            stray = key;
    if (!json_is_object(h)) {
        snprintf(text, sizeof(text), "\"history\" must be {\"interval\": ..., \"limit\": ...}");
    } else if (stray) {
        snprintf(text, sizeof(text), "\"history.%.40s\" is not a key (interval, limit)", stray);
    } else if (q->interval_s < 0) {
        snprintf(text, sizeof(text),
                 "\"history.interval\" must be one of \"tick\", \"1s\", \"1m\", \"1h\"");
    } else if (limit && (!json_is_integer(limit) || q->limit < 1 || q->limit > max_rows)) {
        snprintf(text, sizeof(text), "\"history.limit\" must be an integer from 1 to %d",
                 max_rows);
    } else if (json_object_get(req, "resume")) {
        snprintf(text, sizeof(text), "\"history\" and \"resume\" cannot be combined");
    } else if ((uint64_t)q->limit * nsyms > HIST_MAX_TOTAL_ROWS) {
        snprintf(text, sizeof(text),
                 "\"history.limit\" × symbols may be at most %d rows per request",
                 HIST_MAX_TOTAL_ROWS);
    } else if (s->nhist == WS_HIST_INFLIGHT) {
        ws_error(s, id, WS_ERR_BUSY,
                 "history requests of this connection are still in progress; retry after their "
                 "frames",
                 NULL);
        return -1;
    } else if (s->ws->hist && !hist_can_submit(s->ws->hist)) {
        ws_error(s, id, WS_ERR_BUSY, "too many history requests in progress; retry shortly",
                 NULL);
        return -1;
    } else {
        q->to_us = INT64_MAX;
        q->latest = 1;
        *wanted = 1;
        return 0;
    }
    ws_error(s, id, WS_ERR_BAD_REQUEST, text, NULL);
    return -1;
}

/* Queue the history of every named symbol (they are subscribed now) and
 * park them until their frames have gone. */
static int ws_request_history(ws_session *s, const char *const *names, size_t n,
                              const hist_query *proto)
{
    hist_query *q = malloc(n * sizeof(*q));
    uint32_t *ids = malloc(n * sizeof(*ids));
    hist_req *r = NULL;
    if (q && ids && s->ws->hist) {
        for (size_t i = 0; i < n; i++) {
            q[i] = *proto;
            snprintf(q[i].symbol, sizeof(q[i].symbol), "%s", names[i]);
            ids[i] = bcast_symbol_id(s->ws->b, names[i]);
        }
        r = hist_submit(s->ws->hist, q, ids, n, HIST_FMT_FRAME, ws_history_done, s);
    }
    if (r) {
        s->hist[s->nhist] = r;
        s->hist_done[s->nhist] = 0;
        s->nhist++;
        bcast_park(s->client, ids, n);
    }
    free(q);
    free(ids);
    return r ? 0 : -1;
}

static void ws_subscription(ws_session *s, const json_t *id, const char *op, const json_t *req)
{
    int subscribe = !strcmp(op, "subscribe");
    const json_t *syms = json_object_get(req, "symbols");
    size_t n = json_array_size(syms);
    bcast_resume *resume = NULL;
    size_t nresume = 0;
    if (!json_is_array(syms) || n == 0) {
        ws_error(s, id, WS_ERR_BAD_REQUEST, "\"symbols\" must be a non-empty array of strings",
                 NULL);
        return;
    }
    const json_t *epoch = subscribe ? json_object_get(req, "epoch") : NULL;
    if (epoch && !(json_is_string(epoch) && json_string_length(epoch) <= WS_ID_MAX)) {
        ws_error(s, id, WS_ERR_BAD_REQUEST,
                 "\"epoch\" must be the string from a subscribe ack of this server", NULL);
        return;
    }
    /* n is bounded by max_message_bytes (each element takes >= 3 bytes). */
    const char **names = malloc(n * sizeof(*names));
    if (!names)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        names[i] = json_string_value(json_array_get(syms, i));
        if (!names[i]) {
            ws_error(s, id, WS_ERR_BAD_REQUEST, "\"symbols\" must hold only strings", NULL);
            goto done;
        }
    }
    if (subscribe) {
        int history = 0;
        hist_query hq;
        if (ws_parse_history(s, id, req, n, &history, &hq) ||
            ws_parse_resume(s, id, json_object_get(req, "resume"), &resume, &nresume))
            goto done;
        for (size_t i = 0; history && i < n; i++)
            if (!strcmp(names[i], "*")) {
                ws_error(s, id, WS_ERR_BAD_REQUEST,
                         "\"history\" needs named symbols, not \"*\"", NULL);
                goto done;
            }
        size_t *unknown = malloc((n + nresume) * sizeof(*unknown));
        if (!unknown)
            goto oom;
        /* Seqs are comparable only within one server instance (epoch). */
        int other_epoch = epoch && strcmp(json_string_value(epoch), bcast_epoch(s->ws->b)) != 0;
        size_t nunknown = 0;
        bcast_rc rc = bcast_subscribe_resume(s->client, names, n, resume, nresume, other_epoch,
                                             unknown, &nunknown);
        if (rc == BCAST_EUNKNOWN) {
            json_t *list = json_array();
            sbuf msg;
            sbuf_init(&msg, 512);
            sbuf_printf(&msg, "unknown symbol(s):");
            for (size_t i = 0; i < nunknown; i++) {
                size_t u = unknown[i];
                const char *name = u < n ? names[u] : resume[u - n].symbol;
                json_array_append_new(list, json_string(name));
                sbuf_printf(&msg, "%s %s%s", i ? "," : "", name, u < n ? "" : " (in resume)");
            }
            ws_error(s, id, WS_ERR_UNKNOWN_SYMBOL, msg.overflow ? "unknown symbol(s)" : msg.data,
                     list);
            sbuf_free(&msg);
        } else if (rc == BCAST_ERESUME) {
            char text[160];
            snprintf(text, sizeof(text),
                     "\"resume\" names %.40s, which \"symbols\" does not subscribe; nothing changed",
                     resume[unknown[0] - n].symbol);
            ws_error(s, id, WS_ERR_BAD_REQUEST, text, NULL);
        } else if (rc == BCAST_ELIMIT) {
            ws_error(s, id, WS_ERR_TOO_MANY_SUBSCRIPTIONS,
                     "the subscribe would exceed limits.max_subscriptions; nothing changed", NULL);
        } else if (rc != BCAST_OK) {
            free(unknown);
            goto oom;
        } else {
            /* The epoch is what a client names when it resumes later. */
            ws_ack(s, id, op, json_pack("{s:O, s:s}", "symbols", syms, "epoch",
                                        bcast_epoch(s->ws->b)));
            if (history && ws_request_history(s, names, n, &hq))
                ws_error(s, id, WS_ERR_INTERNAL, "out of memory: no history sent", NULL);
        }
        free(unknown);
        goto done;
    }
    bcast_unsubscribe(s->client, names, n);
    ws_ack(s, id, op, json_pack("{s:O}", "symbols", syms));
done:
    free(names);
    free(resume);
    return;
oom:
    free(names);
    free(resume);
    ws_error(s, id, WS_ERR_INTERNAL, "out of memory", NULL);
}

static void ws_handle_message(ws_session *s, const char *msg, size_t len)
{
    ws_server *ws = s->ws;
    ws->stats.messages_in++;
    if (!ws_rate_ok(s)) {
        ws_error(s, NULL, WS_ERR_RATE_LIMITED, "too many messages per second; message dropped",
                 NULL);
        return;
    }
    json_error_t jerr;
    json_t *root = json_loadb(msg, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        char text[256];
        if (root)
            snprintf(text, sizeof(text), "a message must be a JSON object");
        else
            snprintf(text, sizeof(text), "invalid JSON at line %d column %d: %s", jerr.line,
                     jerr.column, jerr.text);
        json_decref(root);
        ws_error(s, NULL, WS_ERR_BAD_JSON, text, NULL);
        return;
    }
    const json_t *id = json_object_get(root, "id");
    if (id && !json_is_integer(id) &&
        !(json_is_string(id) && json_string_length(id) <= WS_ID_MAX)) {
        ws_error(s, NULL, WS_ERR_BAD_REQUEST, "\"id\" must be an integer or a string of at most 64 bytes",
                 NULL);
    } else {
        const char *op = json_string_value(json_object_get(root, "op"));
        if (!op)
            ws_error(s, id, WS_ERR_BAD_REQUEST, "\"op\" must be a string", NULL);
        else if (!strcmp(op, "ping"))
            ws_ack(s, id, op, json_pack("{s:I}", "time", (json_int_t)tk_now_us()));
        else if (!strcmp(op, "subscribe") || !strcmp(op, "unsubscribe"))
            ws_subscription(s, id, op, root);
        else
            ws_error(s, id, WS_ERR_UNKNOWN_OP, "unknown op (subscribe, unsubscribe, ping)", NULL);
    }
    json_decref(root);
}

static void ws_receive(ws_session *s, const char *in, size_t len)
{
    ws_server *ws = s->ws;
    if (!s->in_msg) {
        s->in_msg = 1;
        s->rx_binary = (uint8_t)lws_frame_is_binary(s->wsi);
        s->rx_skip = 0;
        s->rx_len = 0;
        s->rx_limit = ws->limits.max_message_bytes;
    }
    int final = lws_is_final_fragment(s->wsi) && !lws_remaining_packet_payload(s->wsi);
    size_t incoming = len + lws_remaining_packet_payload(s->wsi);

    if (!s->rx_binary && !s->rx_skip && s->rx_len + incoming > s->rx_limit) {
        s->rx_skip = 1; /* discard the rest of this message as it arrives */
        free(s->rx);
        s->rx = NULL;
    }
    if (!s->rx_binary && !s->rx_skip) {
        if (final && !s->rx_len) {
            ws_handle_message(s, in, len); /* common case: no copy */
        } else {
            if (!s->rx)
                s->rx = malloc(s->rx_limit);
            if (!s->rx) {
                s->rx_skip = 1;
            } else {
                memcpy(s->rx + s->rx_len, in, len);
                s->rx_len += (uint32_t)len;
                if (final)
                    ws_handle_message(s, s->rx, s->rx_len);
            }
        }
    }
    if (!final)
        return;
    if (s->rx_binary)
        ws_error(s, NULL, WS_ERR_BINARY_NOT_SUPPORTED, "binary frames are not supported; send JSON text",
                 NULL);
    else if (s->rx_skip)
        ws_error(s, NULL, WS_ERR_MESSAGE_TOO_LARGE, "message larger than limits.max_message_bytes; discarded",
                 NULL);
    free(s->rx); /* idle connections hold no receive buffer */
    s->rx = NULL;
    s->in_msg = 0;
}

/* ---- connection lifecycle ---- */

static void ws_link(ws_session *s)
{
    ws_server *ws = s->ws;
    s->next = ws->sessions;
    if (s->next)
        s->next->prev = s;
    ws->sessions = s;
    ws->stats.sessions++;
}

static void ws_unlink(ws_session *s)
{
    ws_server *ws = s->ws;
    if (s->prev)
        s->prev->next = s->next;
    else
        ws->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    ws->stats.sessions--;
}

static int ws_path_ok(struct lws *wsi)
{
    char uri[64];
    int n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
    return n == 3 && !memcmp(uri, "/ws", 3);
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    ws_session *s = user;
    const struct lws_protocols *proto = lws_get_protocol(wsi);
    ws_server *ws = proto ? proto->user : NULL;

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return ws_path_ok(wsi) ? 0 : 1;

    case LWS_CALLBACK_CONFIRM_EXTENSION_OKAY:
        /* Clients offer permessage-deflate unasked (browsers always): take
         * it only when configured. Asked per connection during the
         * handshake (user is not set up yet), so a reload applies to the
         * next connections. Nonzero refuses. */
        return ws && ws->limits.permessage_deflate && !strcmp(in, "permessage-deflate") ? 0 : 1;

    case LWS_CALLBACK_ESTABLISHED:
        memset(s, 0, sizeof(*s));
        s->wsi = wsi;
        s->ws = ws;
        s->heard_us = tk_mono_us();
        /* Linked before anything can fail: CLOSED follows ESTABLISHED always
         * and unlinks. Refused connections linger until closed but do not
         * count against the limit (bcast's client count is the live one). */
        ws_link(s);
        if (ws->shutting_down) {
            ws_close(s, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down", 0);
            return 0;
        }
        if (bcast_get_stats(ws->b)->clients >= ws->limits.max_connections) {
            ws->stats.connections_rejected++;
            ws_close(s, WS_CLOSE_TRY_AGAIN_LATER, "server full", 0);
            return 0;
        }
        s->client = bcast_client_create(ws->b, ws_wake, s);
        if (!s->client)
            return -1;
        /* The subprotocol the client named chose the encoding (ws_protocol). */
        s->binary = proto->id == BCAST_ENC_BIN;
        bcast_client_set_encoding(s->client, (bcast_enc)proto->id);
        return 0;

    case LWS_CALLBACK_RECEIVE:
        s->heard_us = tk_mono_us();
        s->ping_sent = 0;
        if (!s->close_code && s->client)
            ws_receive(s, in, len);
        return 0;

    case LWS_CALLBACK_RECEIVE_PONG:
        s->heard_us = tk_mono_us();
        s->ping_sent = 0;
        return 0;

    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ws_writeable(s);

    case LWS_CALLBACK_TIMER: /* lingering before a close: look again */
        lws_callback_on_writable(wsi);
        return 0;

    case LWS_CALLBACK_CLOSED:
        if (!s->ws)
            return 0;
        ws_unlink(s);
        ws_history_release(s);
        bcast_client_destroy(s->client);
        free(s->rx);
        while (s->reply_head) {
            ws_reply *r = s->reply_head;
            s->reply_head = r->next;
            free(r);
        }
        memset(s, 0, sizeof(*s));
        return 0;

    default:
        /* As the vhost's default protocol this one also inherits keep-alive
         * HTTP connections between transactions: let lws serve them. */
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

struct lws_protocols ws_protocol(ws_server *ws, bcast_enc enc)
{
    struct lws_protocols p = {
        .name = enc == BCAST_ENC_BIN ? WS_PROTOCOL_BIN : WS_PROTOCOL_NAME,
        .callback = ws_callback,
        .per_session_data_size = sizeof(ws_session),
        .rx_buffer_size = WS_RX_BUFFER_SIZE,
        .id = enc,
        .user = ws,
    };
    return p;
}

const struct lws_extension *ws_extensions(void)
{
    /* One zlib stream per connection that negotiates it: CPU and memory per
     * client, measured in docs/performance.md#encodings. */
    static const struct lws_extension exts[] = {
        {"permessage-deflate", lws_extension_callback_pm_deflate,
         "permessage-deflate; client_no_context_takeover; client_max_window_bits"},
        {NULL, NULL, NULL},
    };
    return exts;
}

/* Keepalive, ours rather than lws' validity timers: lws 4.1.6 keeps those in
 * one sorted list and re-inserts a connection's timer as it is confirmed, an
 * O(connections) walk that cost 13 % of the CPU at 10k clients. Here it is
 * one comparison per connection per sweep. A peer silent for ping_interval
 * is pinged; silent (no pong either) for twice that, it is gone. */
static void ws_keepalive(ws_session *s, int64_t now, int64_t interval)
{
    if (!interval || s->close_code || now - s->heard_us < interval)
        return;
    if (now - s->heard_us >= 2 * interval) {
        s->ws->stats.ping_timeouts++;
        s->close_code = LWS_CLOSE_STATUS_GOINGAWAY;
        s->close_reason = "no pong";
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    } else if (!s->ping_sent && !s->ping_due) {
        s->ping_due = 1;
        lws_callback_on_writable(s->wsi);
    }
}

void ws_sweep(ws_server *ws)
{
    int64_t now = tk_mono_us();
    int64_t limit = (int64_t)ws->limits.stall_timeout_ms * 1000;
    int64_t ping_us = (int64_t)ws->limits.ping_interval_ms * 1000;
    for (ws_session *s = ws->sessions; s; s = s->next) {
        ws_keepalive(s, now, ping_us);
        if (!s->want_write_since_us)
            continue;
        /* Slow is not stalled: while lws drains a partly sent frame no
         * WRITEABLE comes, so also watch the kernel's send queue shrink. */
        int outq = 0;
        if (!ioctl(lws_get_socket_fd(s->wsi), SIOCOUTQ, &outq) && outq < s->outq)
            s->want_write_since_us = now;
        s->outq = outq;
        if (now - s->want_write_since_us < limit)
            continue;
        /* The peer has taken no bytes for the whole timeout: dead or frozen.
         * Its socket cannot take a close frame either, so drop it now. */
        ws->stats.stall_closes++;
        log_info("ws: closing a stalled connection (nothing accepted for %u ms)",
                 ws->limits.stall_timeout_ms);
        s->want_write_since_us = 0;
        s->close_code = LWS_CLOSE_STATUS_POLICY_VIOLATION;
        s->close_reason = "stalled";
        s->close_after_replies = 0;
        s->close_by_us = 0; /* no lingering: it reads nothing anyway */
        lws_close_reason(s->wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *)"stalled", 7);
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

void ws_shutdown(ws_server *ws)
{
    ws->shutting_down = 1; /* and refuse newcomers the same way */
    for (ws_session *s = ws->sessions; s; s = s->next)
        ws_close(s, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down", 0);
}
