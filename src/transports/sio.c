/* sio.c — see sio.h.
 *
 * Requests are built as the native protocol's JSON and go through
 * sess_request(), so the checks, limits and replies are the WebSocket
 * endpoint's. The Socket.IO ack id travels as the request's "id" and comes
 * back in the reply, which is how a reply finds its ack. */
#include "tickerd/sio.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/eio_parse.h"
#include "tickerd/gate.h"

#define SIO_TRANSPORT "socketio"
#define SIO_CTL_MAX 256
#define SIO_WRAP 64 /* bytes around a frame: 2["snapshot",...] */

typedef struct sio_conn {
    sess_server *srv;
    eio_conn *c;
    sess *s;         /* after CONNECT to "/" */
    char ctl[SIO_CTL_MAX]; /* one control packet due (CONNECT reply / CONNECT_ERROR / DISCONNECT) */
    size_t ctl_len;
    uint8_t disconnect_due; /* the session closed us: send DISCONNECT after the replies */
} sio_conn;

static void sio_want_write(void *arg) { eio_want_write(((sio_conn *)arg)->c); }

static void sio_sess_close(void *arg, uint16_t code, const char *reason)
{
    (void)code;
    (void)reason;
    sio_conn *sc = arg;
    sc->disconnect_due = 1;
    eio_want_write(sc->c);
}

static const sess_transport sio_ops = {
    .name = SIO_TRANSPORT,
    .want_write = sio_want_write,
    .rx_flow = NULL,
    .close = sio_sess_close,
};

static void *sio_open(void *arg, eio_conn *c)
{
    sio_conn *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return NULL;
    sc->srv = arg;
    sc->c = c;
    return sc;
}

static void sio_closed(void *up)
{
    sio_conn *sc = up;
    if (sc->s)
        sess_destroy(sc->s);
    free(sc);
}

static int sio_full(void *arg) { return sess_full(arg); }
static int sio_refuse(void *arg, struct lws *wsi)
{
    gate *g = sess_gate(arg);
    if (!g || gate_origin_ok(g, wsi, GATE_T_SOCKETIO))
        return 0;
    sess_count_error(arg, SIO_TRANSPORT, "forbidden_origin");
    return 1;
}

/* CONNECT's auth payload {"token": "..."} (socket.io-client's `auth`
 * option) goes through the same check as every other transport's token.
 * Returns 0, or the auth_result refusing it. */
static int sio_authenticate(sio_conn *sc, const sio_packet *p)
{
    if (!sess_auth_required(sc->srv))
        return 0;
    json_error_t err;
    json_t *a = p->data_len ? json_loadb(p->data, p->data_len, 0, &err) : NULL;
    const json_t *t = json_object_get(a, "token");
    int why = json_is_string(t) ? sess_authenticate(sc->s, json_string_value(t), json_string_length(t))
                                : AUTH_E_MISSING;
    if (!json_is_string(t))
        auth_count_failure(gate_auth(sess_gate(sc->srv)), AUTH_E_MISSING);
    json_decref(a);
    return why;
}
static void sio_count_error(void *arg, const char *reason)
{
    sess_count_error(arg, SIO_TRANSPORT, reason);
}

static int sio_nsp_printable(const char *n, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = n[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '/' || ch == '-' || ch == '_' || ch == '.'))
            return 0;
    }
    return 1;
}

/* An EVENT: ["name", arg?] -> the request {"op":name, ...}. Returns -1 for
 * a packet the reference decoder rejects (closes the connection). */
static int sio_event(sio_conn *sc, const sio_packet *p)
{
    json_error_t err;
    json_t *arr = json_loadb(p->data, p->data_len, 0, &err);
    if (!json_is_array(arr) || !json_array_size(arr) || !json_is_string(json_array_get(arr, 0))) {
        json_decref(arr);
        return -1;
    }
    const char *name = json_string_value(json_array_get(arr, 0));
    json_t *arg = json_array_get(arr, 1); /* NULL when absent */
    json_t *req;
    if (json_is_object(arg))
        req = json_deep_copy(arg);
    else {
        req = json_object();
        /* emit("subscribe", ["A","B"]) or emit("subscribe", "A") */
        if (json_is_array(arg))
            json_object_set(req, "symbols", arg);
        else if (json_is_string(arg))
            json_object_set_new(req, "symbols", json_pack("[O]", arg));
    }
    json_object_set_new(req, "op", json_string(name));
    if (p->ack_id >= 0)
        json_object_set_new(req, "id", json_integer(p->ack_id));
    else
        json_object_del(req, "id"); /* replies without an ack id go out as events */
    json_decref(arr);
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!text)
        return 0;
    sess_request(sc->s, text, strlen(text));
    free(text);
    return 0;
}

static int sio_message(void *up, const char *data, size_t len)
{
    sio_conn *sc = up;
    sio_packet p;
    if (sio_packet_parse(data, len, &p))
        return -1;
    int root = p.nsp_len == 1 && p.nsp[0] == '/';
    switch (p.type) {
    case SIO_CONNECT:
        if (!root) {
            if (sc->ctl_len || !sio_nsp_printable(p.nsp, p.nsp_len))
                return -1;
            int n = snprintf(sc->ctl, sizeof(sc->ctl), "4%.*s,{\"message\":\"Invalid namespace\"}",
                             (int)p.nsp_len, p.nsp);
            sc->ctl_len = (size_t)n;
            eio_want_write(sc->c);
            return 0;
        }
        if (sc->s || sc->ctl_len) /* a second CONNECT: the reference closes */
            return -1;
        sc->s = sess_create(sc->srv, &sio_ops, sc, BCAST_ENC_JSON);
        if (!sc->s)
            return -1;
        sess_set_peer(sc->s, eio_peer(sc->c));
        int why = sio_authenticate(sc, &p);
        if (why) {
            /* CONNECT_ERROR: the client's connect_error, err.data says why;
             * the client may CONNECT again with another token */
            sess_destroy(sc->s);
            sc->s = NULL;
            sess_count_error(sc->srv, SIO_TRANSPORT, "unauthorized");
            sc->ctl_len = (size_t)snprintf(sc->ctl, sizeof(sc->ctl),
                                           "4{\"message\":\"unauthorized\",\"data\":{\"code\":\"unauthorized\","
                                           "\"reason\":\"%s\"}}",
                                           auth_result_name((auth_result)why));
            eio_want_write(sc->c);
            return 0;
        }
        /* the Socket.IO id is not the Engine.IO one (the spec keeps them
         * apart); the session's sid with a suffix is as unguessable */
        sc->ctl_len = (size_t)snprintf(sc->ctl, sizeof(sc->ctl), "0{\"sid\":\"%s.io\"}", eio_sid(sc->c));
        eio_want_write(sc->c);
        return 0;
    case SIO_DISCONNECT:
        if (root && sc->s) {
            sess_destroy(sc->s);
            sc->s = NULL;
        }
        return 0;
    case SIO_EVENT:
        if (!root || !sc->s)
            return -1; /* a namespace never joined: the reference closes */
        return sio_event(sc, &p);
    case SIO_ACK:
        return 0; /* tickerd asks no acks of clients */
    default:
        return -1; /* binary events: tickerd takes no binary from clients */
    }
}

/* A reply {"op":"ack"|"error","id":N|null,...} as an ACK (when it has an
 * id) or an "error" event (when it has none). Returns its length, 0 to
 * skip it. */
static size_t sio_reply(const char *text, size_t len, char *buf, size_t cap)
{
    json_error_t err;
    json_t *r = json_loadb(text, len, 0, &err);
    if (!r)
        return 0;
    json_t *id = json_object_get(r, "id");
    const char *op = json_string_value(json_object_get(r, "op"));
    int is_error = op && !strcmp(op, "error");
    if (op && !strcmp(op, "reauth") && !json_is_integer(id)) {
        /* the server's own notice: an event of that name */
        char *body = json_dumps(r, JSON_COMPACT);
        int w = body ? snprintf(buf, cap, "2[\"reauth\",%s]", body) : 0;
        free(body);
        json_decref(r);
        return w > 0 && (size_t)w < cap ? (size_t)w : 0;
    }
    json_t *payload;
    if (is_error) {
        json_t *e = json_deep_copy(r);
        json_object_del(e, "op");
        json_object_del(e, "id");
        payload = json_pack("{s:o}", "error", e);
    } else {
        payload = json_incref(r);
    }
    char *body = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    size_t n = 0;
    if (body) {
        int w = 0;
        if (json_is_integer(id))
            w = snprintf(buf, cap, "3%lld[%s]", (long long)json_integer_value(id), body);
        else if (is_error)
            w = snprintf(buf, cap, "2[\"error\",%s]", body);
        if (w > 0 && (size_t)w < cap)
            n = (size_t)w;
        free(body);
    }
    json_decref(r);
    return n;
}

static const char *sio_event_name(sess_event ev)
{
    switch (ev) {
    case SESS_EV_SNAPSHOT:
    case SESS_EV_RESET:
        return "snapshot";
    case SESS_EV_REPLAY:
        return "replay";
    case SESS_EV_UPDATE:
        return "update";
    case SESS_EV_HISTORY:
        return "history";
    default:
        return "message";
    }
}

static size_t sio_next(void *up, char *buf, size_t cap)
{
    sio_conn *sc = up;
    if (sc->ctl_len) {
        if (cap < sc->ctl_len)
            return 0;
        size_t n = sc->ctl_len;
        memcpy(buf, sc->ctl, n);
        sc->ctl_len = 0;
        return n;
    }
    if (!sc->s)
        return 0;
    /* a frame must fit whole: once handed out, bcast counts it as sent */
    size_t need = sess_get_limits(sc->srv)->max_frame_bytes + SIO_WRAP;
    while (cap >= need) {
        sess_out out;
        if (sess_next(sc->s, &out) == SESS_OUT_NONE)
            break;
        if (out.kind == SESS_OUT_REPLY) {
            size_t n = sio_reply(out.data, out.len, buf, cap);
            if (n)
                return n;
            continue; /* an ack nobody waits for */
        }
        const char *name = sio_event_name(out.event);
        int w = snprintf(buf, cap, "2[\"%s\",", name);
        if (w < 0 || (size_t)w + out.len + 1 > cap)
            return 0;
        memcpy(buf + w, out.data, out.len);
        buf[(size_t)w + out.len] = ']';
        return (size_t)w + out.len + 1;
    }
    if (sc->disconnect_due && !sess_replies_pending(sc->s) && cap >= 1) {
        /* the session gave up on this client (error budget): DISCONNECT,
         * which the client does not retry automatically */
        sc->disconnect_due = 0;
        sess_destroy(sc->s);
        sc->s = NULL;
        buf[0] = '1';
        return 1;
    }
    return 0;
}

static int sio_pending(const void *up)
{
    const sio_conn *sc = up;
    return sc->ctl_len || sc->disconnect_due || (sc->s && sess_has_pending(sc->s));
}

static const eio_upper sio_upper_ops = {
    .open = sio_open,
    .message = sio_message,
    .next = sio_next,
    .pending = sio_pending,
    .closed = sio_closed,
    .full = sio_full,
    .count_error = sio_count_error,
    .refuse = sio_refuse,
};

const eio_upper *sio_upper(void) { return &sio_upper_ops; }
