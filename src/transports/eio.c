/* eio.c — see eio.h.
 *
 * A session (eio_conn) outlives the HTTP requests that carry it: a polling
 * session is reached through its sid, and holds at most one pending GET (the
 * channel to the client) and one POST being read. A WebSocket session holds
 * its wsi. Whatever carries it, the bytes come from the upper's next(), so
 * a client that reads slowly gets whatever is due when it finally reads,
 * never a queue.
 *
 * Every pointer between a session and an lws connection is cleared from both
 * sides when either goes away (eio_conn_free, eio_http_detach, CLOSED). */
#include "tickerd/eio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/eio_parse.h"
#include "tickerd/log.h"
#include "tickerd/netlist.h"
#include "tickerd/ws_rx.h"

#define EIO_BUCKETS 1024
#define EIO_HDR_ROOM 512
/* A polling reply holds this many bytes of messages at most (beyond the
 * room for one frame): everything due for a client is one frame per kind,
 * so one payload carries all of it. */
#define EIO_POLL_EXTRA 4096
#define EIO_UPGRADE_TIMEOUT_US 10000000 /* the reference's upgradeTimeout */

enum { EIO_T_POLLING = 0, EIO_T_WEBSOCKET };
enum { EIO_REF_NEW = 0, EIO_REF_PROBE, EIO_REF_ACTIVE };
enum { EIO_HTTP_NONE = 0, EIO_HTTP_GET, EIO_HTTP_POST };

typedef struct eio_http eio_http;
typedef struct eio_wsref eio_wsref;

struct eio_conn {
    eio_server *srv;
    char sid[EIO_SID_LEN + 1];
    eio_conn *hnext;            /* hash chain */
    eio_conn *next, *prev;      /* every session */
    uint8_t transport;
    uint8_t upgrading;          /* 2probe seen: polling answers only noops */
    uint8_t ping_due, noop_due, open_due, close_due;
    uint8_t awaiting_pong;
    eio_http *get, *post;       /* the pending polling requests */
    eio_wsref *ws, *probe;      /* the active WebSocket, the probing one */
    void *up;
    char peer[NETLIST_ADDR_TEXT]; /* the handshake's client address (the admin view) */
    lws_sorted_usec_list_t sul; /* next ping, or the pong deadline */
    lws_sorted_usec_list_t upgrade_sul; /* a probe that never sends '5' is given up */
};

/* Per polling HTTP request (the protocol's per-session data). */
struct eio_http {
    struct lws *wsi;
    eio_conn *c;   /* while this is c's pending GET or POST */
    uint8_t kind;
    uint8_t phase; /* 0 nothing to write, 1 headers, 2 body */
    uint8_t over;  /* POST body beyond max_payload_bytes: being discarded */
    uint8_t handshake;
    int status;
    const char *ctype;
    char *body;
    size_t len;
    char *post;
    size_t post_len;
};

/* Per WebSocket at /socket.io/ (lws opaque user data of the wsi). */
struct eio_wsref {
    struct lws *wsi;
    eio_conn *c;
    uint8_t kind;
    uint8_t probe_reply_due;
    char sid[EIO_SID_LEN + 1];
    ws_rx rx; /* message reassembly (zeroed by calloc: nothing held) */
};

struct eio_server {
    eio_limits limits;
    eio_upper upper;
    void *upper_arg;
    eio_conn *buckets[EIO_BUCKETS];
    eio_conn *all;
    uint32_t sessions;
    uint64_t errors[EIO_E_COUNT];
    lws_callback_function *fallback; /* the default protocol's own callback */
    struct lws_context *ctx;
    struct lws_http_mount mount;
    unsigned char *scratch; /* LWS_PRE + scratch_cap: WebSocket frames */
    size_t scratch_cap;
};

static const char *const error_names[EIO_E_COUNT] = {
    "bad_version", "bad_transport", "unknown_sid", "bad_method", "bad_request", "duplicate_get",
    "payload_too_large", "invalid_packet", "ping_timeout", "too_many_sessions", "bad_upgrade",
};

const char *eio_error_name(eio_error which) { return error_names[which]; }
uint32_t eio_sessions(const eio_server *e) { return e ? e->sessions : 0; }
uint64_t eio_errors(const eio_server *e, eio_error which) { return e->errors[which]; }
const char *eio_sid(const eio_conn *c) { return c->sid; }
const char *eio_peer(const eio_conn *c) { return c->peer; }

static void eio_count(eio_server *e, eio_error which)
{
    e->errors[which]++;
    if (e->upper.count_error)
        e->upper.count_error(e->upper_arg, error_names[which]);
}

static int eio_full(const eio_server *e)
{
    return e->sessions >= e->limits.max_sessions || (e->upper.full && e->upper.full(e->upper_arg));
}

eio_server *eio_create(const eio_limits *limits, const eio_upper *upper, void *upper_arg)
{
    eio_server *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->limits = *limits;
    e->upper = *upper;
    e->upper_arg = upper_arg;
    return e;
}

void eio_set_limits(eio_server *e, const eio_limits *limits) { e->limits = *limits; }

static unsigned eio_hash(const char *sid)
{
    unsigned h = 2166136261u;
    for (; *sid; sid++)
        h = (h ^ (unsigned char)*sid) * 16777619u;
    return h % EIO_BUCKETS;
}

static eio_conn *eio_find(eio_server *e, const char *sid)
{
    if (strlen(sid) != EIO_SID_LEN)
        return NULL;
    for (eio_conn *c = e->buckets[eio_hash(sid)]; c; c = c->hnext)
        if (!strcmp(c->sid, sid))
            return c;
    return NULL;
}

/* ---- heartbeat ---- */

static void eio_conn_close(eio_conn *c, int error);

static void eio_kick(eio_conn *c)
{
    if (c->ws)
        lws_callback_on_writable(c->ws->wsi);
    else if (c->get && !c->get->phase)
        lws_callback_on_writable(c->get->wsi);
}

void eio_want_write(eio_conn *c) { eio_kick(c); }

/* v4: the server pings; the pong deadline starts when the ping is queued,
 * whether or not a GET is there to carry it, so a polling client that
 * stops polling is reaped after ping_interval + ping_timeout. */
static void eio_heartbeat(lws_sorted_usec_list_t *sul)
{
    eio_conn *c = lws_container_of(sul, eio_conn, sul);
    if (c->awaiting_pong) {
        eio_count(c->srv, EIO_E_PING_TIMEOUT);
        eio_conn_close(c, -1);
        return;
    }
    c->ping_due = 1;
    c->awaiting_pong = 1;
    lws_sul_schedule(c->srv->ctx, 0, &c->sul, eio_heartbeat,
                     (lws_usec_t)c->srv->limits.ping_timeout_ms * 1000);
    eio_kick(c);
}

static void eio_pong(eio_conn *c)
{
    if (!c->awaiting_pong)
        return;
    c->awaiting_pong = 0;
    lws_sul_schedule(c->srv->ctx, 0, &c->sul, eio_heartbeat,
                     (lws_usec_t)c->srv->limits.ping_interval_ms * 1000);
}

/* The probe came but no upgrade packet within the timeout: drop the probe
 * and go on polling (the reference cancels the upgrade the same way). */
static void eio_upgrade_expired(lws_sorted_usec_list_t *sul)
{
    eio_conn *c = lws_container_of(sul, eio_conn, upgrade_sul);
    if (!c->upgrading || !c->probe)
        return;
    eio_count(c->srv, EIO_E_BAD_UPGRADE);
    c->probe->c = NULL;
    lws_callback_on_writable(c->probe->wsi); /* closes it: no session */
    c->probe = NULL;
    c->upgrading = 0;
    eio_kick(c);
}

/* ---- sessions ---- */

static eio_conn *eio_conn_new(eio_server *e, struct lws *wsi, uint8_t transport)
{
    eio_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    unsigned char rnd[15];
    /* lws_get_random reads the kernel CSPRNG (getrandom / /dev/urandom) */
    do {
        if (lws_get_random(lws_get_context(wsi), rnd, sizeof(rnd)) != sizeof(rnd)) {
            free(c);
            return NULL;
        }
        lws_b64_encode_string_url((const char *)rnd, sizeof(rnd), c->sid, sizeof(c->sid));
    } while (eio_find(e, c->sid));
    c->srv = e;
    c->transport = transport;
    netlist_peer_text(lws_get_socket_fd(wsi), c->peer, sizeof(c->peer));
    e->ctx = lws_get_context(wsi);
    c->up = e->upper.open(e->upper_arg, c);
    if (!c->up) {
        free(c);
        return NULL;
    }
    unsigned h = eio_hash(c->sid);
    c->hnext = e->buckets[h];
    e->buckets[h] = c;
    c->next = e->all;
    if (e->all)
        e->all->prev = c;
    e->all = c;
    e->sessions++;
    lws_sul_schedule(e->ctx, 0, &c->sul, eio_heartbeat,
                     (lws_usec_t)e->limits.ping_interval_ms * 1000);
    return c;
}

static int eio_open_packet(const eio_conn *c, char *buf, size_t cap)
{
    return snprintf(buf, cap,
                    "0{\"sid\":\"%s\",\"upgrades\":%s,\"pingInterval\":%u,\"pingTimeout\":%u,"
                    "\"maxPayload\":%u}",
                    c->sid, c->transport == EIO_T_POLLING ? "[\"websocket\"]" : "[]",
                    c->srv->limits.ping_interval_ms, c->srv->limits.ping_timeout_ms,
                    c->srv->limits.max_payload_bytes);
}

static void eio_http_reply(eio_http *h, int status, const char *ctype, const char *body,
                           size_t len);

/* Ends c. A pending GET is answered with a close packet ('1': the client
 * sees "transport close" and reconnects); a WebSocket is closed at its next
 * WRITEABLE. error >= 0 is counted. */
static void eio_conn_close(eio_conn *c, int error)
{
    eio_server *e = c->srv;
    if (error >= 0)
        eio_count(e, (eio_error)error);
    lws_sul_cancel(&c->sul);
    lws_sul_cancel(&c->upgrade_sul);
    if (c->get) {
        eio_http *g = c->get;
        g->c = NULL;
        c->get = NULL;
        if (!g->phase)
            eio_http_reply(g, 200, "text/plain; charset=UTF-8", "1", 1);
    }
    if (c->post) {
        c->post->c = NULL;
        c->post = NULL;
    }
    eio_wsref *refs[2] = {c->ws, c->probe};
    for (int i = 0; i < 2; i++)
        if (refs[i]) {
            refs[i]->c = NULL;
            lws_callback_on_writable(refs[i]->wsi); /* closes: no session */
        }
    unsigned h = eio_hash(c->sid);
    for (eio_conn **pp = &e->buckets[h]; *pp; pp = &(*pp)->hnext)
        if (*pp == c) {
            *pp = c->hnext;
            break;
        }
    if (c->prev)
        c->prev->next = c->next;
    else
        e->all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    e->sessions--;
    e->upper.closed(c->up);
    free(c);
}

void eio_shutdown(eio_server *e)
{
    while (e && e->all)
        eio_conn_close(e->all, -1);
}

void eio_destroy(eio_server *e)
{
    if (!e)
        return;
    eio_shutdown(e);
    free(e->scratch);
    free(e);
}

/* One Engine.IO packet from the client (either transport). Returns 0, or -1
 * when the session was closed. */
static int eio_packet_in(eio_conn *c, const char *pkt, size_t len)
{
    const char *d;
    size_t dl;
    switch (eio_packet_parse(pkt, len, &d, &dl)) {
    case EIO_PONG:
        eio_pong(c);
        return 0;
    case EIO_MESSAGE:
        if (dl > c->srv->limits.max_payload_bytes) {
            eio_conn_close(c, EIO_E_TOO_LARGE);
            return -1;
        }
        if (c->srv->upper.message(c->up, d, dl)) {
            eio_conn_close(c, EIO_E_INVALID_PACKET);
            return -1;
        }
        return 0;
    case EIO_CLOSE:
        eio_conn_close(c, -1);
        return -1;
    case EIO_NOOP:
        return 0;
    default: /* open, upgrade out of place, a ping (v4: the server pings), garbage */
        eio_conn_close(c, EIO_E_INVALID_PACKET);
        return -1;
    }
}

/* ---- polling ---- */

static void eio_http_reply(eio_http *h, int status, const char *ctype, const char *body,
                           size_t len)
{
    free(h->body);
    h->body = malloc(len ? len : 1);
    if (h->body && len)
        memcpy(h->body, body, len);
    h->len = h->body ? len : 0;
    h->status = status;
    h->ctype = ctype;
    h->phase = 1;
    lws_callback_on_writable(h->wsi);
}

static const char *const error_messages[] = {"Transport unknown",          "Session ID unknown",
                                             "Bad handshake method",       "Bad request",
                                             "Forbidden",                  "Unsupported protocol version"};

static void eio_http_error(eio_http *h, int status, int code)
{
    char body[128];
    int n = snprintf(body, sizeof(body), "{\"code\":%d,\"message\":\"%s\"}", code,
                     error_messages[code]);
    eio_http_reply(h, status, "application/json", body, (size_t)n);
}

/* Builds the payload for c's pending GET from whatever is due: engine
 * packets first, then the upper's messages while a frame still fits. While
 * upgrading, only the noop (the rest waits for the WebSocket). Returns 0
 * when nothing is due (the GET stays pending). */
static int eio_poll_fill(eio_conn *c)
{
    eio_http *g = c->get;
    eio_server *e = c->srv;
    size_t cap = 2 * (size_t)e->limits.max_message_room + EIO_POLL_EXTRA;
    char *buf = malloc(cap);
    if (!buf)
        return 0;
    size_t len = 0;
#define EIO_ADD(str, n)                                                                            \
    do {                                                                                           \
        if (len)                                                                                   \
            buf[len++] = EIO_RECORD_SEP;                                                           \
        memcpy(buf + len, str, n);                                                                 \
        len += n;                                                                                  \
    } while (0)
    if (c->noop_due || c->upgrading) {
        c->noop_due = 0;
        EIO_ADD("6", 1);
    } else {
        if (c->ping_due) {
            c->ping_due = 0;
            EIO_ADD("2", 1);
        }
        for (;;) {
            /* the message's data goes after a separator and its '4' */
            size_t at = len ? len + 2 : 1;
            if (cap <= at)
                break;
            size_t n = e->upper.next(c->up, buf + at, cap - at);
            if (!n)
                break;
            if (len) {
                buf[len] = EIO_RECORD_SEP;
                buf[len + 1] = '4';
            } else {
                buf[0] = '4';
            }
            len = at + n;
        }
    }
#undef EIO_ADD
    if (!len) {
        free(buf);
        return 0;
    }
    c->get = NULL;
    g->c = NULL;
    free(g->body);
    g->body = buf;
    g->len = len;
    g->status = 200;
    g->ctype = "text/plain; charset=UTF-8";
    g->phase = 1;
    return 1;
}

static void eio_http_detach(eio_http *h)
{
    if (h->c) {
        if (h->c->get == h)
            h->c->get = NULL;
        if (h->c->post == h)
            h->c->post = NULL;
        h->c = NULL;
    }
    free(h->body);
    h->body = NULL;
    free(h->post);
    h->post = NULL;
}

static int eio_http_writeable(struct lws *wsi, eio_http *h)
{
    if (!h->phase && h->c && h->c->get == h && !eio_poll_fill(h->c))
        return 0;
    if (h->phase == 1) {
        unsigned char hdr[LWS_PRE + EIO_HDR_ROOM], *start = hdr + LWS_PRE, *p = start,
                                                   *end = hdr + sizeof(hdr) - 1;
        if (lws_add_http_common_headers(wsi, (unsigned)h->status, h->ctype, h->len, &p, end) ||
            lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                         (unsigned char *)"no-store", 8, &p, end) ||
            lws_finalize_write_http_header(wsi, start, &p, end))
            return -1;
        h->phase = 2;
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (h->phase == 2) {
        unsigned char *buf = malloc(LWS_PRE + h->len + 1);
        if (!buf)
            return -1;
        memcpy(buf + LWS_PRE, h->body, h->len);
        int n = lws_write(wsi, buf + LWS_PRE, h->len, LWS_WRITE_HTTP_FINAL);
        free(buf);
        if (n < (int)h->len)
            return -1;
        h->phase = 0;
        free(h->body);
        h->body = NULL;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    return 0;
}

static int eio_query(struct lws *wsi, const char *name, char *buf, int len)
{
    buf[0] = 0;
    const char *v = lws_get_urlarg_by_name(wsi, name, buf, len);
    if (!v)
        return 0;
    memmove(buf, v, strlen(v) + 1); /* lws leaves "name=value" in buf */
    return 1;
}

/* Checks EIO and transport. Returns -1 (and answers) when they are wrong. */
static int eio_check_query(eio_server *e, eio_http *h, struct lws *wsi, const char *want_transport)
{
    char v[64], t[64];
    if (!eio_query(wsi, "EIO=", v, sizeof(v)) || strcmp(v, "4")) {
        eio_count(e, EIO_E_BAD_VERSION);
        if (h)
            eio_http_error(h, 400, 5);
        return -1;
    }
    if (!eio_query(wsi, "transport=", t, sizeof(t)) || strcmp(t, want_transport)) {
        eio_count(e, EIO_E_BAD_TRANSPORT);
        if (h)
            eio_http_error(h, 400, 0);
        return -1;
    }
    return 0;
}

static int eio_http_begin(eio_server *e, struct lws *wsi, eio_http *h)
{
    memset(h, 0, sizeof(*h));
    h->wsi = wsi;
    if (e->upper.refuse && e->upper.refuse(e->upper_arg, wsi)) {
        eio_http_error(h, 403, 4);
        return 0;
    }
    int is_get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
    int is_post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
    if (eio_check_query(e, h, wsi, "polling"))
        return 0;
    char sid[64];
    if (!eio_query(wsi, "sid=", sid, sizeof(sid))) {
        if (!is_get) {
            eio_count(e, EIO_E_BAD_METHOD);
            eio_http_error(h, 400, 2);
            return 0;
        }
        if (eio_full(e)) {
            eio_count(e, EIO_E_TOO_MANY);
            eio_http_error(h, 503, 3);
            return 0;
        }
        eio_conn *c = eio_conn_new(e, wsi, EIO_T_POLLING);
        if (!c) {
            eio_count(e, EIO_E_TOO_MANY);
            eio_http_error(h, 503, 3);
            return 0;
        }
        char open[256];
        int n = eio_open_packet(c, open, sizeof(open));
        eio_http_reply(h, 200, "text/plain; charset=UTF-8", open, (size_t)n);
        return 0;
    }
    eio_conn *c = eio_find(e, sid);
    if (!c) {
        eio_count(e, EIO_E_UNKNOWN_SID);
        eio_http_error(h, 400, 1);
        return 0;
    }
    if (c->transport != EIO_T_POLLING) {
        eio_count(e, EIO_E_BAD_REQUEST);
        eio_http_error(h, 400, 3);
        return 0;
    }
    if (is_get) {
        if (c->get) {
            /* a second pending GET: the reference closes the session; the
             * pending GET gets the close packet, this one a 400 */
            eio_http_error(h, 400, 3);
            eio_conn_close(c, EIO_E_DUPLICATE_GET);
            return 0;
        }
        h->kind = EIO_HTTP_GET;
        h->c = c;
        c->get = h;
        /* held until something is due: at the latest the next ping. The
         * request's headers are not needed again: give their buffer (the
         * size of the whole head lws may take) back while the GET waits. */
        lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
        lws_http_headers_detach(wsi);
        if (c->upgrading || c->ping_due || e->upper.pending(c->up))
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (is_post) {
        if (c->post) {
            eio_http_error(h, 400, 3);
            eio_conn_close(c, EIO_E_BAD_REQUEST);
            return 0;
        }
        char ct[64];
        if (lws_hdr_copy(wsi, ct, sizeof(ct), WSI_TOKEN_HTTP_CONTENT_TYPE) > 0 &&
            !strncmp(ct, "application/octet-stream", 24)) {
            /* v4 carries binary as base64 text; a raw binary body is a v3 client */
            eio_count(e, EIO_E_BAD_REQUEST);
            eio_http_error(h, 400, 3);
            return 0;
        }
        h->kind = EIO_HTTP_POST;
        h->c = c;
        c->post = h;
        return 0; /* the body follows: HTTP_BODY, HTTP_BODY_COMPLETION */
    }
    eio_count(e, EIO_E_BAD_METHOD);
    eio_http_error(h, 400, 2);
    return 0;
}

static void eio_post_body(eio_http *h, const char *in, size_t len)
{
    if (!h->c || h->over)
        return;
    size_t max = h->c->srv->limits.max_payload_bytes;
    if (h->post_len + len > max) {
        /* keep reading (and dropping) the rest: answering before the body is
         * read would make the kernel reset the connection under the 413 */
        h->over = 1;
        free(h->post);
        h->post = NULL;
        return;
    }
    char *p = realloc(h->post, h->post_len + len + 1);
    if (!p) {
        h->over = 1;
        return;
    }
    memcpy(p + h->post_len, in, len);
    h->post = p;
    h->post_len += len;
}

static void eio_post_done(eio_http *h)
{
    eio_conn *c = h->c;
    if (!c) { /* the session ended while the body was arriving */
        eio_http_error(h, 400, 1);
        return;
    }
    c->post = NULL;
    h->c = NULL;
    if (h->over) {
        eio_http_reply(h, 413, "text/plain; charset=UTF-8", "Payload Too Large", 17);
        eio_conn_close(c, EIO_E_TOO_LARGE);
        return;
    }
    size_t pos = 0, n;
    const char *pkt;
    int any = 0;
    while (eio_payload_next(h->post ? h->post : "", h->post_len, &pos, &pkt, &n)) {
        any = 1;
        if (eio_packet_in(c, pkt, n)) {
            c = NULL; /* closed */
            break;
        }
    }
    free(h->post);
    h->post = NULL;
    if (!any && c) {
        eio_conn_close(c, EIO_E_INVALID_PACKET);
        c = NULL;
    }
    eio_http_reply(h, 200, "text/html", "ok", 2);
}

static int eio_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                             void *in, size_t len);

/* ---- WebSocket ---- */

static eio_server *eio_of(struct lws *wsi)
{
    const struct lws_protocols *p =
        lws_vhost_name_to_protocol(lws_get_vhost(wsi), EIO_PROTOCOL_NAME);
    return p ? p->user : NULL;
}

static int eio_is_our_path(struct lws *wsi)
{
    char uri[64];
    int n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
    return n >= 10 && !strncmp(uri, EIO_MOUNTPOINT, 10) && (uri[10] == '/' || !uri[10]);
}

static int eio_ws_write(struct lws *wsi, eio_server *e, const char *s, size_t n)
{
    memcpy(e->scratch + LWS_PRE, s, n);
    return lws_write(wsi, e->scratch + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n ? -1 : 0;
}

static int eio_ws_writeable(struct lws *wsi, eio_wsref *r)
{
    eio_conn *c = r->c;
    if (!c)
        return -1; /* the session is over */
    eio_server *e = c->srv;
    size_t need = (size_t)e->limits.max_message_room + EIO_POLL_EXTRA;
    if (e->scratch_cap < need) {
        unsigned char *s = realloc(e->scratch, LWS_PRE + need);
        if (!s)
            return -1;
        e->scratch = s;
        e->scratch_cap = need;
    }
    if (r->kind == EIO_REF_PROBE) {
        /* the probe's first frame must be 3probe; nothing else goes here
         * before the client's upgrade packet */
        if (r->probe_reply_due) {
            r->probe_reply_due = 0;
            return eio_ws_write(wsi, e, "3probe", 6);
        }
        return 0;
    }
    if (r->kind != EIO_REF_ACTIVE)
        return 0;
    char *out = (char *)e->scratch + LWS_PRE;
    int rc = 0;
    if (c->open_due) {
        c->open_due = 0;
        int n = eio_open_packet(c, out, e->scratch_cap);
        rc = lws_write(wsi, (unsigned char *)out, (size_t)n, LWS_WRITE_TEXT) < n ? -1 : 0;
    } else if (c->ping_due) {
        c->ping_due = 0;
        rc = eio_ws_write(wsi, e, "2", 1);
    } else {
        size_t n = e->upper.next(c->up, out + 1, e->scratch_cap - 1);
        if (!n)
            return 0;
        out[0] = '4';
        rc = lws_write(wsi, (unsigned char *)out, n + 1, LWS_WRITE_TEXT) < (int)(n + 1) ? -1 : 0;
    }
    if (!rc && (c->open_due || c->ping_due || e->upper.pending(c->up)))
        lws_callback_on_writable(wsi);
    return rc;
}

/* A whole text message on an Engine.IO WebSocket. Returns -1 to close it. */
static int eio_ws_message(eio_wsref *r, const char *m, size_t n)
{
    eio_conn *c = r->c;
    if (!c)
        return -1;
    if (r->kind == EIO_REF_PROBE) {
        if (n == 6 && !memcmp(m, "2probe", 6)) {
            r->probe_reply_due = 1;
            c->upgrading = 1;
            lws_sul_schedule(c->srv->ctx, 0, &c->upgrade_sul, eio_upgrade_expired,
                             EIO_UPGRADE_TIMEOUT_US);
            /* the pending GET (if any) returns with a noop so the client can
             * pause polling; later GETs while upgrading get one at once */
            if (c->get && !c->get->phase)
                lws_callback_on_writable(c->get->wsi);
            lws_callback_on_writable(r->wsi);
            return 0;
        }
        if (n == 1 && m[0] == '5' && c->upgrading) {
            c->probe = NULL;
            c->ws = r;
            r->kind = EIO_REF_ACTIVE;
            c->transport = EIO_T_WEBSOCKET;
            c->upgrading = 0;
            lws_sul_cancel(&c->upgrade_sul);
            if (c->get) { /* still pending: release it with a noop */
                c->noop_due = 1;
                eio_http *g = c->get;
                eio_poll_fill(c);
                lws_callback_on_writable(g->wsi);
            }
            lws_callback_on_writable(r->wsi);
            return 0;
        }
        eio_count(c->srv, EIO_E_BAD_UPGRADE);
        c->probe = NULL;
        c->upgrading = 0;
        r->c = NULL;
        return -1;
    }
    return eio_packet_in(c, m, n) ? -1 : 0;
}

static int eio_ws_callback(eio_server *e, struct lws *wsi, enum lws_callback_reasons reason,
                           void *in, size_t len)
{
    eio_wsref *r = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_CONFIRM_EXTENSION_OKAY:
        return 1; /* no permessage-deflate on Engine.IO sockets */
    case LWS_CALLBACK_ESTABLISHED: {
        if (r->kind == EIO_REF_NEW) {
            if (eio_full(e)) {
                eio_count(e, EIO_E_TOO_MANY);
                return -1;
            }
            eio_conn *c = eio_conn_new(e, wsi, EIO_T_WEBSOCKET);
            if (!c)
                return -1;
            r->kind = EIO_REF_ACTIVE;
            r->c = c;
            c->ws = r;
            c->open_due = 1;
            lws_callback_on_writable(wsi);
            return 0;
        }
        eio_conn *c = eio_find(e, r->sid);
        if (!c || c->transport != EIO_T_POLLING || c->probe || c->ws) {
            eio_count(e, c ? EIO_E_BAD_UPGRADE : EIO_E_UNKNOWN_SID);
            return -1;
        }
        r->c = c;
        c->probe = r;
        return 0;
    }
    case LWS_CALLBACK_RECEIVE: {
        if (!r->c)
            return -1;
        ws_rx_piece piece = {
            .data = in,
            .len = len,
            .frame_remaining = lws_remaining_packet_payload(wsi),
            .final_fragment = (uint8_t)lws_is_final_fragment(wsi),
            .binary = (uint8_t)lws_frame_is_binary(wsi),
        };
        if (piece.binary) { /* tickerd takes no binary from clients */
            eio_conn_close(r->c, EIO_E_INVALID_PACKET);
            return -1;
        }
        const char *msg;
        size_t msg_len;
        switch (ws_rx_feed(&r->rx, &piece, (uint32_t)e->limits.max_payload_bytes + 16, &msg,
                           &msg_len)) {
        case WS_RX_MORE:
            return 0;
        case WS_RX_MESSAGE: {
            int rc = eio_ws_message(r, msg, msg_len);
            ws_rx_consumed(&r->rx);
            return rc;
        }
        case WS_RX_BAD_UTF8:
            eio_conn_close(r->c, EIO_E_INVALID_PACKET);
            lws_close_reason(wsi, LWS_CLOSE_STATUS_INVALID_PAYLOAD, (unsigned char *)"invalid UTF-8",
                             13);
            return -1;
        case WS_RX_TOO_LARGE:
            eio_conn_close(r->c, EIO_E_TOO_LARGE);
            return -1;
        default:
            eio_conn_close(r->c, EIO_E_INVALID_PACKET);
            return -1;
        }
    }
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return eio_ws_writeable(wsi, r);
    case LWS_CALLBACK_CLOSED:
        if (r->c) {
            eio_conn *c = r->c;
            if (c->probe == r) {
                c->probe = NULL;
                c->upgrading = 0;
                r->c = NULL;
            } else {
                c->ws = NULL;
                r->c = NULL;
                eio_conn_close(c, -1);
            }
        }
        /* lws does not always bring WSI_DESTROY to this protocol: free here */
        ws_rx_free(&r->rx);
        free(r);
        lws_set_opaque_user_data(wsi, NULL);
        break;
    case LWS_CALLBACK_WSI_DESTROY:
        if (r && r->c) { /* never established */
            if (r->c->probe == r)
                r->c->probe = NULL;
            if (r->c->ws == r)
                r->c->ws = NULL;
        }
        if (r) {
            ws_rx_free(&r->rx);
            free(r);
        }
        lws_set_opaque_user_data(wsi, NULL);
        break;
    default:
        break;
    }
    return 0;
}

/* The default protocol's callback, wrapped (eio_take_upgrades). */
static int eio_router(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len)
{
    eio_server *e = wsi ? eio_of(wsi) : NULL;
    if (e && reason == LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION && eio_is_our_path(wsi)) {
        char sid[64];
        if (eio_check_query(e, NULL, wsi, "websocket"))
            return 1;
        if (e->upper.refuse && e->upper.refuse(e->upper_arg, wsi))
            return 1; /* (refused with a 403 before the upgrade already: gate_upgrade) */
        eio_wsref *r = calloc(1, sizeof(*r));
        if (!r)
            return 1;
        r->wsi = wsi;
        if (eio_query(wsi, "sid=", sid, sizeof(sid))) {
            eio_conn *c = eio_find(e, sid);
            if (!c || c->transport != EIO_T_POLLING || c->probe) {
                eio_count(e, c ? EIO_E_BAD_UPGRADE : EIO_E_UNKNOWN_SID);
                free(r);
                return 1;
            }
            r->kind = EIO_REF_PROBE;
            memcpy(r->sid, c->sid, sizeof(r->sid)); /* found: EIO_SID_LEN long */
        } else {
            /* refused here, before anything is allocated for it */
            if (eio_full(e)) {
                eio_count(e, EIO_E_TOO_MANY);
                free(r);
                return 1;
            }
            r->kind = EIO_REF_NEW;
        }
        lws_set_opaque_user_data(wsi, r);
        return 0;
    }
    if (e && lws_get_opaque_user_data(wsi) && reason != LWS_CALLBACK_EVENT_WAIT_CANCELLED &&
        reason != LWS_CALLBACK_PROTOCOL_INIT && reason != LWS_CALLBACK_PROTOCOL_DESTROY)
        return eio_ws_callback(e, wsi, reason, in, len);
    return e && e->fallback ? e->fallback(wsi, reason, user, in, len)
                            : lws_callback_http_dummy(wsi, reason, user, in, len);
}

void eio_take_upgrades(eio_server *e, struct lws_protocols *p)
{
    e->fallback = p->callback;
    p->callback = eio_router;
}

/* ---- the polling protocol ---- */

static int eio_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                             void *in, size_t len)
{
    eio_http *h = user;
    const struct lws_protocols *proto = lws_get_protocol(wsi);
    eio_server *e = proto ? proto->user : NULL;
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return 1;
    case LWS_CALLBACK_HTTP:
        e->ctx = lws_get_context(wsi);
        return eio_http_begin(e, wsi, h);
    case LWS_CALLBACK_HTTP_BODY:
        if (h && h->kind == EIO_HTTP_POST)
            eio_post_body(h, in, len);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (h && h->kind == EIO_HTTP_POST) {
            h->kind = EIO_HTTP_NONE;
            eio_post_done(h);
        }
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return h ? eio_http_writeable(wsi, h) : 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (h)
            eio_http_detach(h);
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

struct lws_protocols eio_protocol(eio_server *e)
{
    struct lws_protocols p = {
        .name = EIO_PROTOCOL_NAME,
        .callback = eio_http_callback,
        .per_session_data_size = sizeof(eio_http),
        .user = e,
    };
    return p;
}

const struct lws_http_mount *eio_mount(eio_server *e, const struct lws_http_mount *next)
{
    memset(&e->mount, 0, sizeof(e->mount));
    e->mount.mount_next = next;
    e->mount.mountpoint = EIO_MOUNTPOINT;
    e->mount.mountpoint_len = (unsigned char)strlen(EIO_MOUNTPOINT);
    e->mount.origin = EIO_PROTOCOL_NAME;
    e->mount.origin_protocol = LWSMPRO_CALLBACK;
    return &e->mount;
}
