/* poll.c — see poll.h.
 *
 * A request goes: LWS_CALLBACK_HTTP parses it and subscribes its session;
 * if nothing is due it is held (headers detached so a held request does not
 * pin one of lws' header buffers, lws' own timeout off, a sul for the hold's
 * end). The session's want_write (a publish for one of its symbols) or the
 * sul asks for a WRITEABLE, which collects the frames, frees the session
 * and writes the headers; the body follows in the next WRITEABLE
 * (LWS_WRITE_HTTP_FINAL), then the connection is free for the next request. */
#include "tickerd/poll.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/gate.h"
#include "tickerd/http.h"
#include "tickerd/log.h"
#include "tickerd/util.h"

#define POLL_ARG_MAX 4096
#define POLL_CURSOR_MAX 2048

typedef struct poll_req poll_req;

struct poll_server {
    sess_server *srv;
    poll_limits limits;
    poll_stats stats;
    const char *cors_origins;
    poll_req *held; /* for shutdown */
    struct lws_http_mount mount;
    int shutting_down;
};

enum { POLL_NEW = 0, POLL_HELD, POLL_HEADERS_DUE, POLL_BODY_DUE };

struct poll_req {
    struct lws *wsi;
    poll_server *p;
    sess *sess; /* while subscribed (held); NULL once answered */
    poll_req *next, *prev; /* in p->held while held */
    lws_sorted_usec_list_t sul; /* the hold's end */
    sbuf body;
    unsigned status;
    uint8_t state, linked, sul_armed;
    char origin[256]; /* copied before the headers are detached */
};

const poll_stats *poll_get_stats(const poll_server *p) { return &p->stats; }
void poll_set_limits(poll_server *p, const poll_limits *limits) { p->limits = *limits; }

poll_server *poll_create(sess_server *srv, const poll_limits *limits, const char *cors_origins)
{
    poll_server *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->srv = srv;
    p->limits = *limits;
    p->cors_origins = cors_origins;
    sess_count_error(srv, "poll", NULL); /* tickerd_clients{transport="poll"} from the start */
    return p;
}

void poll_destroy(poll_server *p) { free(p); }

static void poll_unlink(poll_req *r)
{
    if (!r->linked)
        return;
    if (r->prev)
        r->prev->next = r->next;
    else
        r->p->held = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->linked = 0;
    r->p->stats.held--;
}

/* Drop what the request holds (session, timer, hold link); the body stays. */
static void poll_release(poll_req *r)
{
    if (r->sul_armed) {
        lws_sul_cancel(&r->sul);
        r->sul_armed = 0;
    }
    poll_unlink(r);
    sess_destroy(r->sess);
    r->sess = NULL;
}

static void poll_t_want_write(void *arg)
{
    poll_req *r = arg;
    if (r->state == POLL_HELD)
        lws_callback_on_writable(r->wsi);
}

static const sess_transport poll_transport = {
    .name = "poll",
    .want_write = poll_t_want_write,
};

static void poll_error_body(poll_req *r, unsigned status, const char *code, const char *msg)
{
    sbuf_printf(&r->body, "{\"op\":\"error\",\"code\":\"%s\",\"message\":\"%s\"}", code, msg);
    r->status = status;
    r->state = POLL_HEADERS_DUE;
}

/* Move every frame due into the body; 1 when there was any. */
static int poll_collect(poll_req *r)
{
    sess_out out;
    size_t nframes = 0;
    sbuf_printf(&r->body, "{\"frames\":[");
    while (r->body.len + r->p->limits.max_frame_bytes + POLL_CURSOR_MAX + 64 < POLL_BODY_MAX &&
           sess_next(r->sess, &out) != SESS_OUT_NONE) {
        if (out.kind == SESS_OUT_REPLY) /* the subscribe's ack: the cursor says it all */
            continue;
        if (nframes++)
            sbuf_append(&r->body, ",", 1);
        sbuf_append(&r->body, out.data, out.len);
    }
    return nframes > 0;
}

static void poll_finish(poll_req *r, int timed_out)
{
    char cursor[POLL_CURSOR_MAX + 1];
    size_t n = sess_position(r->sess, cursor, sizeof(cursor));
    if (n == (size_t)-1) /* too many positions: the epoch alone (next poll: snapshots) */
        cursor[strcspn(cursor, ",")] = 0;
    sbuf_printf(&r->body, "],\"cursor\":\"%s\",\"timeout\":%s}", cursor,
                timed_out ? "true" : "false");
    r->status = 200;
    r->state = POLL_HEADERS_DUE;
    if (timed_out)
        r->p->stats.timeouts++;
    else
        r->p->stats.answered++;
    poll_release(r);
}

static void poll_hold_end(lws_sorted_usec_list_t *sul)
{
    poll_req *r = lws_container_of(sul, poll_req, sul);
    r->sul_armed = 0;
    if (r->state != POLL_HELD)
        return;
    sbuf_free(&r->body);
    sbuf_init(&r->body, POLL_BODY_MAX);
    poll_collect(r);
    poll_finish(r, 1);
    lws_callback_on_writable(r->wsi);
}

static int poll_begin(struct lws *wsi, poll_server *p, poll_req *r)
{
    memset(r, 0, sizeof(*r));
    r->wsi = wsi;
    r->p = p;
    sbuf_init(&r->body, POLL_BODY_MAX);
    if (lws_hdr_copy(wsi, r->origin, sizeof(r->origin), WSI_TOKEN_ORIGIN) < 0)
        r->origin[0] = 0;
    char symbols[POLL_ARG_MAX], since[POLL_CURSOR_MAX + 1];
    const char *list = lws_get_urlarg_by_name(wsi, "symbols=", symbols, sizeof(symbols));
    const char *cursor = lws_get_urlarg_by_name(wsi, "since=", since, sizeof(since));
    gate *g = sess_gate(p->srv);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0) {
        sess_count_error(p->srv, "poll", "bad_request");
        poll_error_body(r, HTTP_STATUS_METHOD_NOT_ALLOWED, "bad_request", "GET only");
    } else if (g && !gate_origin_ok(g, wsi, GATE_T_POLL)) {
        sess_count_error(p->srv, "poll", "forbidden_origin");
        poll_error_body(r, HTTP_STATUS_FORBIDDEN, "forbidden_origin",
                        "this page's Origin may not poll here (server.allowed_origins)");
    } else if (p->shutting_down || sess_full(p->srv)) {
        sess_count_error(p->srv, "poll", "server_full");
        poll_error_body(r, HTTP_STATUS_SERVICE_UNAVAILABLE, "server_full",
                        "too many sessions (server.max_connections) or shutting down; retry later");
    } else if (!list || !*list) {
        sess_count_error(p->srv, "poll", "bad_request");
        poll_error_body(r, HTTP_STATUS_BAD_REQUEST, "bad_request",
                        "/api/poll needs ?symbols=A,B (or symbols=*), and since=<cursor> after the "
                        "first poll");
    } else {
        r->sess = sess_create(p->srv, &poll_transport, r, BCAST_ENC_JSON);
        if (!r->sess)
            return -1;
        sess_set_peer_fd(r->sess, lws_get_socket_fd(wsi));
        /* every poll carries its token: one that expires is refused at the
         * next poll (a held request ends at its hold) */
        int why = 0;
        if (sess_auth_required(p->srv)) {
            char tok[GATE_TOKEN_BUF];
            int n = gate_token(wsi, tok, sizeof(tok));
            why = n > 0 ? sess_authenticate(r->sess, tok, (size_t)n)
                        : n < 0 ? AUTH_E_MALFORMED : AUTH_E_MISSING;
            if (n <= 0)
                auth_count_failure(gate_auth(g), (auth_result)why);
        }
        int refused = why ? 0 : sess_subscribe_csv(r->sess, list, cursor);
        if (why) {
            char body[512];
            size_t blen = gate_unauthorized_json(body, sizeof(body), (auth_result)why);
            sbuf_append(&r->body, body, blen);
            r->status = why == AUTH_E_MAX_CONNS ? 429 : HTTP_STATUS_UNAUTHORIZED;
            sess_count_error(p->srv, "poll", "unauthorized");
            r->state = POLL_HEADERS_DUE;
            poll_release(r);
        } else if (refused) {
            sess_out out;
            if (sess_next(r->sess, &out) == SESS_OUT_REPLY) {
                int unknown = refused == 1 + SESS_ERR_UNKNOWN_SYMBOL;
                int forbidden = refused == 1 + SESS_ERR_FORBIDDEN;
                sbuf_append(&r->body, out.data, out.len);
                r->status = forbidden ? HTTP_STATUS_FORBIDDEN
                            : unknown ? HTTP_STATUS_NOT_FOUND : HTTP_STATUS_BAD_REQUEST;
                sess_count_error(p->srv, "poll",
                                 forbidden ? "forbidden" : unknown ? "unknown_symbol" : "bad_request");
            } else {
                r->status = HTTP_STATUS_INTERNAL_SERVER_ERROR;
            }
            r->state = POLL_HEADERS_DUE;
            poll_release(r);
        } else if (poll_collect(r)) {
            poll_finish(r, 0);
        } else {
            /* Nothing newer than the cursor: hold. The body so far is only
             * the opening; it is rebuilt when something comes. */
            sbuf_free(&r->body);
            sbuf_init(&r->body, POLL_BODY_MAX);
            r->state = POLL_HELD;
            r->next = p->held;
            if (r->next)
                r->next->prev = r;
            p->held = r;
            r->linked = 1;
            p->stats.held++;
            lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
            lws_http_headers_detach(wsi);
            lws_sul_schedule(lws_get_context(wsi), 0, &r->sul, poll_hold_end,
                             (lws_usec_t)p->limits.hold_ms * 1000);
            r->sul_armed = 1;
            return 0;
        }
    }
    lws_callback_on_writable(wsi);
    return 0;
}

static int poll_writeable(poll_req *r)
{
    if (r->state == POLL_HELD) {
        if (!poll_collect(r)) { /* woken, but nothing to send after all */
            sbuf_free(&r->body);
            sbuf_init(&r->body, POLL_BODY_MAX);
            return 0;
        }
        poll_finish(r, 0);
    }
    if (r->state == POLL_HEADERS_DUE) {
        if (r->body.overflow)
            return -1;
        unsigned char hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start,
                                           *end = hdr + sizeof(hdr) - 1;
        if (lws_add_http_common_headers(r->wsi, r->status, "application/json", r->body.len, &p,
                                        end) ||
            lws_add_http_header_by_token(r->wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                         (unsigned char *)"no-store", 8, &p, end) ||
            http_cors_origin_header(r->wsi, r->p->cors_origins, r->origin, &p, end) ||
            (r->status == HTTP_STATUS_UNAUTHORIZED && gate_www_authenticate(r->wsi, &p, end)) ||
            lws_finalize_write_http_header(r->wsi, start, &p, end))
            return -1;
        r->state = POLL_BODY_DUE;
        lws_callback_on_writable(r->wsi);
        return 0;
    }
    if (r->state == POLL_BODY_DUE) {
        /* One write of the whole (bounded) body: lws buffers what the socket
         * does not take at once. */
        unsigned char *b = malloc(LWS_PRE + r->body.len);
        if (!b)
            return -1;
        memcpy(b + LWS_PRE, r->body.data, r->body.len);
        int n = lws_write(r->wsi, b + LWS_PRE, r->body.len, LWS_WRITE_HTTP_FINAL);
        free(b);
        size_t len = r->body.len;
        sbuf_free(&r->body);
        r->state = POLL_NEW;
        if (n < (int)len)
            return -1;
        return lws_http_transaction_completed(r->wsi) ? -1 : 0;
    }
    return 0;
}

static int poll_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    poll_req *r = user;
    const struct lws_protocols *proto = lws_get_protocol(wsi);
    poll_server *p = proto ? proto->user : NULL;

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return 1;
    case LWS_CALLBACK_HTTP:
        return poll_begin(wsi, p, r);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (r && r->p)
            return poll_writeable(r);
        break;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (r && r->p) {
            poll_release(r); /* a client gone while held: its session goes now */
            sbuf_free(&r->body);
            r->p = NULL;
        }
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

struct lws_protocols poll_protocol(poll_server *p)
{
    struct lws_protocols pr = {
        .name = POLL_PROTOCOL_NAME,
        .callback = poll_callback,
        .per_session_data_size = sizeof(poll_req),
        .user = p,
    };
    return pr;
}

const struct lws_http_mount *poll_mount(poll_server *p, const struct lws_http_mount *next)
{
    struct lws_http_mount *m = &p->mount;
    memset(m, 0, sizeof(*m));
    m->mount_next = next;
    m->mountpoint = "/api/poll";
    m->mountpoint_len = 9;
    m->origin = POLL_PROTOCOL_NAME;
    m->origin_protocol = LWSMPRO_CALLBACK;
    return m;
}

void poll_shutdown(poll_server *p)
{
    p->shutting_down = 1;
    while (p->held) {
        poll_req *r = p->held;
        poll_collect(r);
        poll_finish(r, 1); /* unlinks r */
        lws_callback_on_writable(r->wsi);
    }
}
