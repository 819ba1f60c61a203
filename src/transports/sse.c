/* sse.c — see sse.h.
 *
 * One lws_write per HTTP_WRITEABLE: the next reply or frame from the session
 * as one event (the first also carries "retry:"), or a heartbeat comment
 * when the stream has been quiet for heartbeat_ms. While the session has
 * anything due, ask for another WRITEABLE. A refused subscribe (unknown
 * symbol, bad request, bad Last-Event-ID) is answered with an HTTP error and
 * the protocol's JSON error body instead of a stream, so EventSource stops
 * rather than reconnecting in a loop. */
#include "tickerd/sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>

#include "tickerd/gate.h"
#include "tickerd/http.h"
#include "tickerd/log.h"
#include "tickerd/util.h"

#define SSE_ARG_MAX 4096 /* the symbols= argument */
#define SSE_EVENT_HEAD 64 /* "retry: N\n\nevent: snapshot\nid: " and the tail */

typedef struct sse_session sse_session;

struct sse_server {
    sess_server *srv;
    sse_limits limits;
    sse_stats stats;
    const char *cors_origins;
    sse_session *sessions; /* open streams, for sweep and shutdown */
    unsigned char *buf;    /* LWS_PRE + one event: scratch shared by every stream */
    size_t buf_cap;
    struct lws_http_mount mount;
    int shutting_down;
};

struct sse_session {
    struct lws *wsi;
    sse_server *sse;
    sess *sess; /* NULL before the stream opens and after a refusal */
    sse_session *next, *prev;
    char *error_body; /* a refused subscribe's answer, written once */
    size_t error_len;
    int64_t want_write_since_us; /* 0 = not waiting for the socket */
    int64_t last_write_us;
    int outq;
    uint8_t linked, streaming, retry_due, heartbeat_due, closing;
};

const sse_stats *sse_get_stats(const sse_server *sse) { return &sse->stats; }

int sse_set_limits(sse_server *sse, const sse_limits *limits)
{
    size_t cap = SSE_EVENT_HEAD + SSE_ID_MAX + (size_t)limits->max_frame_bytes;
    if (cap != sse->buf_cap) {
        unsigned char *b = realloc(sse->buf, LWS_PRE + cap);
        if (!b)
            return -1;
        sse->buf = b;
        sse->buf_cap = cap;
    }
    sse->limits = *limits;
    return 0;
}

sse_server *sse_create(sess_server *srv, const sse_limits *limits, const char *cors_origins)
{
    sse_server *sse = calloc(1, sizeof(*sse));
    if (!sse)
        return NULL;
    sse->srv = srv;
    sse->cors_origins = cors_origins;
    if (sse_set_limits(sse, limits)) {
        free(sse);
        return NULL;
    }
    sess_count_error(srv, "sse", NULL); /* tickerd_clients{transport="sse"} from the start */
    return sse;
}

void sse_destroy(sse_server *sse)
{
    if (!sse)
        return;
    free(sse->buf);
    free(sse);
}

/* ---- the session's side ---- */

static void sse_request_write(sse_session *s)
{
    if (!s->want_write_since_us)
        s->want_write_since_us = tk_mono_us();
    lws_callback_on_writable(s->wsi);
}

static void sse_t_want_write(void *arg)
{
    sse_session *s = arg;
    if (s->streaming)
        sse_request_write(s);
}

static void sse_t_close(void *arg, uint16_t code, const char *reason)
{
    (void)code;
    (void)reason;
    sse_session *s = arg;
    s->closing = 1; /* the queued replies still go out, then the stream ends */
}

static const sess_transport sse_transport = {
    .name = "sse",
    .want_write = sse_t_want_write,
    .close = sse_t_close,
};

/* ---- opening a stream ---- */

static void sse_link(sse_session *s)
{
    sse_server *sse = s->sse;
    s->next = sse->sessions;
    if (s->next)
        s->next->prev = s;
    sse->sessions = s;
    s->linked = 1;
    sse->stats.sessions++;
}

static void sse_release(sse_session *s)
{
    sse_server *sse = s->sse;
    if (s->linked) {
        if (s->prev)
            s->prev->next = s->next;
        else
            sse->sessions = s->next;
        if (s->next)
            s->next->prev = s->prev;
        sse->stats.sessions--;
        s->linked = 0;
    }
    sess_destroy(s->sess);
    s->sess = NULL;
    free(s->error_body);
    s->error_body = NULL;
}

/* Headers: status, type, no caching, CORS. Content length known (an error
 * body) or not (the stream). */
static int sse_headers(sse_session *s, unsigned status, const char *type, lws_filepos_t len)
{
    struct lws *wsi = s->wsi;
    unsigned char hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start,
                                       *end = hdr + sizeof(hdr) - 1;
    if (lws_add_http_common_headers(wsi, status, type, len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, (unsigned char *)"no-store",
                                     8, &p, end) ||
        http_cors_header(wsi, s->sse->cors_origins, &p, end) ||
        (status == HTTP_STATUS_UNAUTHORIZED && gate_www_authenticate(wsi, &p, end)) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    return 0;
}

/* Answer with an HTTP error and a JSON body ({"op":"error",...} from the
 * session, or ours); the body goes out at the next WRITEABLE. */
static int sse_refuse(sse_session *s, unsigned status, const char *reason, const char *body,
                      size_t len)
{
    sess_count_error(s->sse->srv, "sse", reason);
    s->error_body = malloc(len ? len : 1);
    if (!s->error_body)
        return -1;
    memcpy(s->error_body, body, len);
    s->error_len = len;
    if (sse_headers(s, status, "application/json", len))
        return -1;
    lws_callback_on_writable(s->wsi);
    return 0;
}

static int sse_begin(struct lws *wsi, sse_server *sse, sse_session *s)
{
    memset(s, 0, sizeof(*s));
    s->wsi = wsi;
    s->sse = sse;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0) {
        static const char body[] = "{\"op\":\"error\",\"code\":\"bad_request\",\"message\":\"GET only\"}";
        return sse_refuse(s, HTTP_STATUS_METHOD_NOT_ALLOWED, "bad_request", body, sizeof(body) - 1);
    }
    gate *g = sess_gate(sse->srv);
    if (g && !gate_origin_ok(g, wsi, GATE_T_SSE)) {
        static const char body[] =
            "{\"op\":\"error\",\"code\":\"forbidden_origin\",\"message\":\"this page's Origin "
            "may not open a stream here (server.allowed_origins)\"}";
        return sse_refuse(s, HTTP_STATUS_FORBIDDEN, "forbidden_origin", body, sizeof(body) - 1);
    }
    if (sse->shutting_down || sess_full(sse->srv)) {
        static const char body[] =
            "{\"op\":\"error\",\"code\":\"server_full\",\"message\":\"too many sessions "
            "(server.max_connections) or shutting down; retry later\"}";
        return sse_refuse(s, HTTP_STATUS_SERVICE_UNAVAILABLE, "server_full", body,
                          sizeof(body) - 1);
    }
    char symbols[SSE_ARG_MAX], last_id[SSE_ID_MAX + 1];
    const char *list = lws_get_urlarg_by_name(wsi, "symbols=", symbols, sizeof(symbols));
    if (!list || !*list) {
        static const char body[] =
            "{\"op\":\"error\",\"code\":\"bad_request\",\"message\":\"/sse needs "
            "?symbols=A,B (or symbols=*)\"}";
        return sse_refuse(s, HTTP_STATUS_BAD_REQUEST, "bad_request", body, sizeof(body) - 1);
    }
    /* A reconnecting EventSource sends Last-Event-ID; a client that cannot
     * set headers may pass lastEventId= instead. */
    const char *pos = NULL;
    int n = lws_hdr_custom_copy(wsi, last_id, sizeof(last_id), "last-event-id:", 14);
    if (n > 0)
        pos = last_id;
    else
        pos = lws_get_urlarg_by_name(wsi, "lastEventId=", last_id, sizeof(last_id));

    s->sess = sess_create(sse->srv, &sse_transport, s, BCAST_ENC_JSON);
    if (!s->sess)
        return -1;
    sess_set_peer_fd(s->sess, lws_get_socket_fd(wsi));
    if (sess_auth_required(sse->srv)) {
        /* EventSource sets no headers: ?token= (or Authorization from
         * other clients); a refusal is a 401, which EventSource does not
         * retry */
        char tok[GATE_TOKEN_BUF];
        int n = gate_token(wsi, tok, sizeof(tok));
        int why = n > 0 ? sess_authenticate(s->sess, tok, (size_t)n)
                        : n < 0 ? AUTH_E_MALFORMED : AUTH_E_MISSING;
        if (n <= 0)
            auth_count_failure(gate_auth(g), (auth_result)why);
        if (why) {
            char body[512];
            size_t blen = gate_unauthorized_json(body, sizeof(body), (auth_result)why);
            sess_destroy(s->sess);
            s->sess = NULL;
            return sse_refuse(s, why == AUTH_E_MAX_CONNS ? 429 : HTTP_STATUS_UNAUTHORIZED,
                              "unauthorized", body, blen);
        }
    }
    int refused = sess_subscribe_csv(s->sess, list, pos);
    if (refused) {
        sess_out out;
        /* The error is the only reply queued. */
        int r;
        if (sess_next(s->sess, &out) == SESS_OUT_REPLY) {
            int unknown = refused == 1 + SESS_ERR_UNKNOWN_SYMBOL;
            int forbidden = refused == 1 + SESS_ERR_FORBIDDEN;
            r = sse_refuse(s, forbidden ? HTTP_STATUS_FORBIDDEN
                              : unknown ? HTTP_STATUS_NOT_FOUND : HTTP_STATUS_BAD_REQUEST,
                           forbidden ? "forbidden" : unknown ? "unknown_symbol" : "bad_request",
                           out.data, out.len);
        } else {
            r = -1;
        }
        sess_destroy(s->sess);
        s->sess = NULL;
        return r;
    }
    if (sse_headers(s, HTTP_STATUS_OK, "text/event-stream", LWS_ILLEGAL_HTTP_CONTENT_LEN))
        return -1;
    lws_http_mark_sse(wsi);
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    s->streaming = 1;
    s->retry_due = 1;
    s->last_write_us = tk_mono_us();
    sse_link(s);
    sse_request_write(s);
    return 0;
}

/* ---- writing ---- */

static const char *sse_event_name(sess_event ev)
{
    switch (ev) {
    case SESS_EV_ACK: return "ack";
    case SESS_EV_ERROR: return "error";
    case SESS_EV_SNAPSHOT: return "snapshot";
    case SESS_EV_RESET: return "reset";
    case SESS_EV_REPLAY: return "replay";
    case SESS_EV_UPDATE: return "update";
    case SESS_EV_HISTORY: return "history";
    case SESS_EV_REAUTH: return "reauth";
    default: return "message";
    }
}

static int sse_writeable(sse_session *s)
{
    sse_server *sse = s->sse;
    if (s->error_body) {
        int n = lws_write(s->wsi, (unsigned char *)s->error_body, s->error_len,
                          LWS_WRITE_HTTP_FINAL);
        free(s->error_body);
        s->error_body = NULL;
        if (n < (int)s->error_len)
            return -1;
        return lws_http_transaction_completed(s->wsi) ? -1 : 0;
    }
    if (!s->streaming)
        return 0;
    s->want_write_since_us = 0;
    char *o = (char *)sse->buf + LWS_PRE;
    size_t len = 0, cap = sse->buf_cap;
    if (s->retry_due) {
        len += (size_t)snprintf(o, cap, "retry: %u\n\n", sse->limits.retry_ms);
        s->retry_due = 0;
    }
    sess_out out;
    if (sess_next(s->sess, &out) != SESS_OUT_NONE) {
        /* Frames and replies are compact JSON: one line, one data: field. */
        len += (size_t)snprintf(o + len, cap - len, "event: %s\n", sse_event_name(out.event));
        if (out.kind == SESS_OUT_FRAME) {
            memcpy(o + len, "id: ", 4);
            size_t idn = sess_position(s->sess, o + len + 4, SSE_ID_MAX);
            if (idn == (size_t)-1) /* too many positions: the epoch alone */
                idn = strcspn(o + len + 4, ",");
            len += 4 + idn;
            o[len++] = '\n';
        }
        memcpy(o + len, "data: ", 6);
        len += 6;
        memcpy(o + len, out.data, out.len);
        len += out.len;
        memcpy(o + len, "\n\n", 2);
        len += 2;
        sse->stats.events_out++;
    } else if (s->heartbeat_due) {
        memcpy(o + len, ": hb\n\n", 6);
        len += 6;
    }
    s->heartbeat_due = 0;
    if (len) {
        if (lws_write(s->wsi, (unsigned char *)o, len, LWS_WRITE_HTTP) < (int)len)
            return -1;
        sse->stats.bytes_out += len;
        s->last_write_us = tk_mono_us();
    }
    if (sess_has_pending(s->sess))
        sse_request_write(s);
    else if (s->closing)
        return -1; /* replies flushed: end the stream */
    return 0;
}

static int sse_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    sse_session *s = user;
    const struct lws_protocols *proto = lws_get_protocol(wsi);
    sse_server *sse = proto ? proto->user : NULL;

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return 1; /* no WebSocket upgrades here */
    case LWS_CALLBACK_HTTP:
        return sse_begin(wsi, sse, s);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (s && s->sse)
            return sse_writeable(s);
        break;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (s && s->sse)
            sse_release(s);
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

struct lws_protocols sse_protocol(sse_server *sse)
{
    struct lws_protocols p = {
        .name = SSE_PROTOCOL_NAME,
        .callback = sse_callback,
        .per_session_data_size = sizeof(sse_session),
        .user = sse,
    };
    return p;
}

const struct lws_http_mount *sse_mount(sse_server *sse, const struct lws_http_mount *next)
{
    struct lws_http_mount *m = &sse->mount;
    memset(m, 0, sizeof(*m));
    m->mount_next = next;
    m->mountpoint = "/sse";
    m->mountpoint_len = 4;
    m->origin = SSE_PROTOCOL_NAME;
    m->origin_protocol = LWSMPRO_CALLBACK;
    return m;
}

void sse_sweep(sse_server *sse)
{
    int64_t now = tk_mono_us();
    int64_t hb = (int64_t)sse->limits.heartbeat_ms * 1000;
    int64_t limit = (int64_t)sse->limits.stall_timeout_ms * 1000;
    for (sse_session *s = sse->sessions; s; s = s->next) {
        if (s->closing)
            continue;
        if (!s->want_write_since_us && now - s->last_write_us >= hb) {
            s->heartbeat_due = 1;
            sse_request_write(s);
            continue;
        }
        if (!s->want_write_since_us)
            continue;
        /* As in ws_sweep: slow is not stalled while the kernel's queue drains. */
        int outq = 0;
        if (!ioctl(lws_get_socket_fd(s->wsi), SIOCOUTQ, &outq) && outq < s->outq)
            s->want_write_since_us = now;
        s->outq = outq;
        if (now - s->want_write_since_us < limit)
            continue;
        sess_count_error(sse->srv, "sse", "stalled");
        log_info("sse: closing a stalled stream (nothing accepted for %u ms)",
                 sse->limits.stall_timeout_ms);
        s->closing = 1;
        s->want_write_since_us = 0;
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

void sse_shutdown(sse_server *sse)
{
    sse->shutting_down = 1;
    for (sse_session *s = sse->sessions; s; s = s->next) {
        s->closing = 1;
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}
