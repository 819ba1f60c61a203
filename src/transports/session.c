/* session.c — see session.h.
 *
 * What used to be ws.c's request handling, written once for every
 * transport. Output order per session: queued replies first (so an ack
 * always precedes the snapshot it announces), then a finished history frame
 * (after the snapshots before it), then the client's next bcast frame. */
#include "tickerd/session.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/auth.h"
#include "tickerd/gate.h"
#include "tickerd/history.h"
#include "tickerd/log.h"
#include "tickerd/netlist.h"
#include "tickerd/util.h"

#define SESS_HIST_INFLIGHT 2 /* history requests per session at once */
#define SESS_HIST_DEFAULT_LIMIT 100

/* A queued control reply (ack/error): SESS_HEADROOM spare bytes, then the
 * text. A list rather than a fixed array: idle sessions, the common case,
 * then hold two pointers instead of a slot table. */
typedef struct sess_reply {
    struct sess_reply *next;
    uint32_t len;
    unsigned char buf[]; /* SESS_HEADROOM + len */
} sess_reply;

struct sess_server {
    bcast *b;
    sess_limits limits;
    sess_stats stats;
    hist *hist;           /* history reads (subscribe's "history"); NULL = none */
    unsigned char *frame; /* SESS_HEADROOM + max_frame_bytes scratch for frames */
    size_t frame_cap;
    gate *gate;
    auth *auth; /* NULL: auth.mode none */
    sess *all;  /* every session, for sess_sweep and sess_each */
};

struct sess {
    sess_server *srv;
    const sess_transport *ops;
    void *arg;
    char peer[NETLIST_ADDR_TEXT]; /* client address, "" until the transport says */
    int64_t created_us;           /* monotonic: the subscribe deadline counts from here */
    uint8_t subscribed_once;      /* held a subscription (or was closed for not): no deadline */
    bcast_client *client;
    uint8_t binary; /* update frames are binary */
    uint8_t rx_paused, closing;
    /* replies, oldest first; at most SESS_REPLY_QUEUE */
    sess_reply *reply_head, *reply_tail;
    uint8_t reply_count;
    sess_reply *handed; /* the reply sess_next handed out last: freed at the next call */
    char *handed_hist;  /* likewise a history frame's buffer */
    /* limits */
    double tokens;
    int64_t tokens_at_us;
    uint32_t errors;
    int64_t errors_since_us;
    /* history requests, oldest first; their frames go out in that order */
    hist_req *hist[SESS_HIST_INFLIGHT];
    uint8_t hist_done[SESS_HIST_INFLIGHT];
    uint32_t hist_next; /* next result of hist[0] to send */
    uint8_t nhist;
    /* auth.mode token */
    sess *anext, *aprev; /* in srv->all (sess_sweep, the admin view) */
    auth_token *tok;     /* NULL until authenticated */
    int64_t auth_by_us;  /* no token yet: closed at this (monotonic) time */
    uint8_t reauth_sent;
};

static const char *const error_names[SESS_ERR_COUNT] = {
    "bad_json",          "bad_request",       "unknown_op",
    "unknown_symbol",    "too_many_subscriptions", "message_too_large",
    "binary_not_supported", "rate_limited",   "internal",
    "busy",              "symbol_removed",    "unauthorized",
    "forbidden",         "token_expired",
};

const char *sess_error_name(sess_error_code code) { return error_names[code]; }
const sess_stats *sess_get_stats(const sess_server *srv) { return &srv->stats; }
const sess_limits *sess_get_limits(const sess_server *srv) { return &srv->limits; }
bcast *sess_bcast(const sess_server *srv) { return srv->b; }
void sess_set_history(sess_server *srv, hist *h) { srv->hist = h; }
bcast_client *sess_client(sess *s) { return s->client; }
int sess_closing(const sess *s) { return s->closing; }
int sess_replies_pending(const sess *s) { return s->reply_count; }

static sess_transport_stats *sess_tstats(sess_server *srv, const char *name)
{
    for (int i = 0; i < SESS_MAX_TRANSPORTS; i++) {
        sess_transport_stats *t = &srv->stats.transports[i];
        if (!t->name)
            t->name = name;
        if (!strcmp(t->name, name))
            return t;
    }
    return NULL; /* more transports than slots: not counted */
}

void sess_count_error(sess_server *srv, const char *transport, const char *reason)
{
    sess_transport_stats *t = sess_tstats(srv, transport);
    if (!t || !reason)
        return;
    for (int i = 0; i < SESS_MAX_REASONS; i++) {
        if (!t->reasons[i])
            t->reasons[i] = reason;
        if (!strcmp(t->reasons[i], reason)) {
            t->errors[i]++;
            return;
        }
    }
}

int sess_full(const sess_server *srv)
{
    return bcast_get_stats(srv->b)->clients >= srv->limits.max_sessions;
}

sess_server *sess_server_create(bcast *b, const sess_limits *limits)
{
    sess_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return NULL;
    srv->b = b;
    if (sess_set_limits(srv, limits)) {
        free(srv);
        return NULL;
    }
    return srv;
}

void sess_server_destroy(sess_server *srv)
{
    if (!srv)
        return;
    free(srv->frame);
    free(srv);
}

int sess_set_limits(sess_server *srv, const sess_limits *limits)
{
    if (limits->max_frame_bytes != srv->frame_cap) {
        unsigned char *f = realloc(srv->frame, SESS_HEADROOM + (size_t)limits->max_frame_bytes);
        if (!f)
            return -1;
        srv->frame = f;
        srv->frame_cap = limits->max_frame_bytes;
    }
    srv->limits = *limits;
    return 0;
}

static void sess_wake(void *arg)
{
    sess *s = arg;
    s->ops->want_write(s->arg);
}

sess *sess_create(sess_server *srv, const sess_transport *ops, void *arg, bcast_enc enc)
{
    sess *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->srv = srv;
    s->ops = ops;
    s->arg = arg;
    s->client = bcast_client_create(srv->b, sess_wake, s);
    if (!s->client) {
        free(s);
        return NULL;
    }
    s->binary = enc == BCAST_ENC_BIN;
    s->anext = srv->all;
    if (s->anext)
        s->anext->aprev = s;
    srv->all = s;
    if (srv->auth)
        s->auth_by_us = tk_mono_us() + auth_timeout_us(srv->auth);
    bcast_client_set_encoding(s->client, enc);
    s->created_us = tk_mono_us();
    sess_transport_stats *t = sess_tstats(srv, ops->name);
    if (t)
        t->sessions++;
    return s;
}

static void sess_history_release(sess *s);

void sess_destroy(sess *s)
{
    if (!s)
        return;
    sess_history_release(s);
    bcast_client_destroy(s->client);
    if (s->aprev)
        s->aprev->anext = s->anext;
    else
        s->srv->all = s->anext;
    if (s->anext)
        s->anext->aprev = s->aprev;
    if (s->tok) {
        auth_session_release(s->srv->auth, auth_token_sub(s->tok));
        auth_token_free(s->tok);
    }
    sess_transport_stats *t = sess_tstats(s->srv, s->ops->name);
    if (t)
        t->sessions--;
    while (s->reply_head) {
        sess_reply *r = s->reply_head;
        s->reply_head = r->next;
        free(r);
    }
    free(s->handed);
    free(s->handed_hist);
    free(s);
}

static void sess_request_write(sess *s) { s->ops->want_write(s->arg); }

static void sess_rx_flow(sess *s, int enable)
{
    s->rx_paused = (uint8_t)!enable;
    if (s->ops->rx_flow)
        s->ops->rx_flow(s->arg, enable);
}

static void sess_close(sess *s, uint16_t code, const char *reason)
{
    if (s->closing)
        return;
    s->closing = 1;
    /* A closing transport keeps reading (and discarding) what the peer
     * still sends, see ws.c's lingering close. */
    if (s->rx_paused)
        sess_rx_flow(s, 1);
    if (s->ops->close)
        s->ops->close(s->arg, code, reason);
    sess_request_write(s);
}

static void sess_queue_reply(sess *s, json_t *reply)
{
    char *text = json_dumps(reply, JSON_COMPACT);
    json_decref(reply);
    if (!text)
        return;
    if (s->reply_count == SESS_REPLY_QUEUE) {
        /* Reading pauses well before this; only messages the transport had
         * already parsed can land here. Counted, never silent. */
        s->srv->stats.replies_dropped++;
        free(text);
        return;
    }
    size_t len = strlen(text);
    sess_reply *r = malloc(sizeof(*r) + SESS_HEADROOM + len);
    if (!r) {
        free(text);
        s->srv->stats.replies_dropped++;
        return;
    }
    r->next = NULL;
    r->len = (uint32_t)len;
    memcpy(r->buf + SESS_HEADROOM, text, len);
    free(text);
    if (s->reply_tail)
        s->reply_tail->next = r;
    else
        s->reply_head = r;
    s->reply_tail = r;
    s->reply_count++;
    /* Back-pressure on requests: a client that does not read its replies
     * stops being read, instead of growing this list. */
    if (s->reply_count >= SESS_REPLY_PAUSE_AT && !s->rx_paused && !s->closing)
        sess_rx_flow(s, 0);
    sess_request_write(s);
}

/* ---- history frames ---- */

/* A history frame goes out once it is ready and the snapshots before it
 * have gone: ack, snapshot, history, then the replay that joins it to live. */
static int sess_history_due(const sess *s)
{
    return s->nhist && s->hist_done[0] && !bcast_client_snapshots_due(s->client);
}

static void sess_history_pop(sess *s)
{
    hist_req_free(s->hist[0]);
    memmove(s->hist, s->hist + 1, (SESS_HIST_INFLIGHT - 1) * sizeof(s->hist[0]));
    memmove(s->hist_done, s->hist_done + 1, SESS_HIST_INFLIGHT - 1);
    s->nhist--;
    s->hist[s->nhist] = NULL;
    s->hist_done[s->nhist] = 0;
    s->hist_next = 0;
}

/* Take the next history frame of the oldest finished request (NULL when the
 * result has no frame), then let the symbol's live updates continue from
 * the frame's last value. */
static char *sess_take_history(sess *s, size_t *len)
{
    hist_req *r = s->hist[0];
    hist_result *res = hist_req_result(r, s->hist_next);
    /* Only a real history is a seam to join; after an error frame (or none)
     * live updates just follow the snapshot. */
    int joined = res->status == 200 && res->buf;
    char *buf = res->buf;
    *len = res->len;
    res->buf = NULL; /* ours now: freed at the next sess_next */
    bcast_unpark(s->client, res->sym_id, joined ? res->seq : BCAST_UNPARK_LIVE);
    if (++s->hist_next == hist_req_count(r))
        sess_history_pop(s);
    return buf;
}

static void sess_history_done(void *arg, hist_req *r)
{
    sess *s = arg;
    for (unsigned i = 0; i < s->nhist; i++)
        if (s->hist[i] == r)
            s->hist_done[i] = 1;
    sess_request_write(s);
}

static void sess_history_release(sess *s)
{
    for (unsigned i = 0; i < s->nhist; i++) {
        if (s->hist_done[i])
            hist_req_free(s->hist[i]);
        else
            hist_cancel(s->hist[i]);
    }
    s->nhist = 0;
}

/* ---- requests ---- */

static json_t *sess_id_copy(const json_t *id) { return id ? json_deep_copy(id) : json_null(); }

/* An error reply; extra (an object, taken) adds its keys. budget: it
 * counts against limits.max_errors (the client's doing); the notices of
 * the session's own lifetime (expiry) do not. */
static void sess_err_full(sess *s, const json_t *id, sess_error_code code, const char *message,
                          json_t *extra, int budget)
{
    sess_server *srv = s->srv;
    srv->stats.errors[code]++;
    json_t *r = json_pack("{s:s, s:o, s:s, s:s}", "op", "error", "id", sess_id_copy(id), "code",
                          error_names[code], "message", message);
    if (r && extra)
        json_object_update(r, extra);
    json_decref(extra);
    if (r)
        sess_queue_reply(s, r);
    if (!budget)
        return;

    int64_t now = tk_mono_us();
    if (now - s->errors_since_us > SESS_ERROR_WINDOW_US) {
        s->errors_since_us = now;
        s->errors = 0;
    }
    if (++s->errors > srv->limits.max_errors) {
        srv->stats.abuse_closes++;
        log_info("session (%s): closing a client after %u errors in 10 s", s->ops->name, s->errors);
        /* The client sees the errors that led here, then the close. */
        sess_close(s, SESS_CLOSE_POLICY, "too many errors");
    }
}

/* bcast_symbols_remove's notice to one session. */
static void sess_on_removed(void *wake_arg, const char *const *names, size_t n, void *arg)
{
    sess *s = wake_arg;
    long *told = arg;
    json_t *syms = json_array();
    for (size_t i = 0; syms && i < n; i++)
        json_array_append_new(syms, json_string(names[i]));
    const char *msg = n == 1 ? "symbol removed from the server's configuration; subscription ended"
                             : "symbols removed from the server's configuration; subscriptions ended";
    json_t *r = syms ? json_pack("{s:s, s:n, s:s, s:s, s:o}", "op", "error", "id", "code",
                                 error_names[SESS_ERR_SYMBOL_REMOVED], "message", msg, "symbols",
                                 syms)
                     : NULL;
    s->srv->stats.errors[SESS_ERR_SYMBOL_REMOVED]++;
    if (r)
        sess_queue_reply(s, r); /* not sess_err: this is no fault of the client's */
    else
        s->srv->stats.replies_dropped++;
    (*told)++;
}

void sess_set_peer(sess *s, const char *peer)
{
    snprintf(s->peer, sizeof(s->peer), "%s", peer ? peer : "");
}

void sess_set_peer_fd(sess *s, int fd) { netlist_peer_text(fd, s->peer, sizeof(s->peer)); }

void sess_each(const sess_server *srv, sess_each_fn fn, void *arg)
{
    int64_t now = tk_mono_us();
    for (const sess *s = srv->all; s; s = s->anext) {
        const bcast_client_stats *cs = bcast_client_get_stats(s->client);
        sess_info info = {
            .transport = s->ops->name,
            .peer = s->peer,
            .age_ms = (now - s->created_us) / 1000,
            .subscriptions = bcast_client_subscription_count(s->client),
            .frames_out = cs->frames_out,
            .values_out = cs->values_out,
            .conflated = cs->conflated,
            .replies_queued = s->reply_count,
            .behind = bcast_client_has_pending(s->client),
        };
        fn(arg, &info);
    }
}

long sess_symbols_removed(sess_server *srv, const uint32_t *ids, size_t n)
{
    long told = 0;
    if (bcast_symbols_remove(srv->b, ids, n, sess_on_removed, &told))
        return -1;
    return told;
}

static void sess_err(sess *s, const json_t *id, sess_error_code code, const char *message,
                     json_t *symbols)
{
    sess_err_full(s, id, code, message, symbols ? json_pack("{s:o}", "symbols", symbols) : NULL, 1);
}

static void sess_ack(sess *s, const json_t *id, const char *req, json_t *extra_key_val)
{
    json_t *r = json_pack("{s:s, s:o, s:s}", "op", "ack", "id", sess_id_copy(id), "req", req);
    if (!r) {
        json_decref(extra_key_val);
        return;
    }
    if (extra_key_val)
        json_object_update(r, extra_key_val);
    json_decref(extra_key_val);
    sess_queue_reply(s, r);
}

/* ---- authentication (auth.mode token) ---- */

void sess_set_gate(sess_server *srv, gate *g)
{
    srv->gate = g;
    srv->auth = gate_auth(g);
}

gate *sess_gate(const sess_server *srv) { return srv->gate; }
int sess_auth_required(const sess_server *srv) { return srv->auth != NULL; }

int sess_authenticate(sess *s, const char *token, size_t len)
{
    auth *a = s->srv->auth;
    if (!a)
        return AUTH_OK;
    auth_result why;
    auth_token *t = auth_verify(a, token, len, tk_now_us(), &why);
    if (!t)
        return why;
    if (s->tok) { /* a re-auth: the same subject, a later expiry */
        if (strcmp(auth_token_sub(t), auth_token_sub(s->tok))) {
            auth_token_free(t);
            auth_count_failure(a, AUTH_E_SUBJECT);
            return AUTH_E_SUBJECT;
        }
        auth_token_free(s->tok);
        s->tok = t;
        s->reauth_sent = 0;
        auth_counters(a)->accepted++;
        return AUTH_OK;
    }
    why = auth_session_acquire(a, t);
    if (why) {
        auth_token_free(t);
        return why;
    }
    s->tok = t;
    s->auth_by_us = 0;
    return AUTH_OK;
}

static json_t *sess_reason(int why) { return json_pack("{s:s}", "reason", auth_result_name((auth_result)why)); }

void sess_auth_refused(sess *s, int why)
{
    if (s->closing)
        return;
    auth_counters(s->srv->auth)->unauthenticated_closes++;
    sess_err_full(s, NULL, SESS_ERR_UNAUTHORIZED, auth_result_text((auth_result)why), sess_reason(why), 0);
    sess_close(s, SESS_CLOSE_UNAUTHORIZED, "unauthorized");
}

/* A narrower token: subscriptions it no longer entitles go (listed in the
 * ack as "revoked"). */
typedef struct sess_keep_ctx {
    const auth_token *tok;
    json_t *revoked;
} sess_keep_ctx;

static int sess_keep(void *arg, const char *symbol)
{
    sess_keep_ctx *c = arg;
    if (auth_token_allows(c->tok, symbol))
        return 1;
    json_array_append_new(c->revoked, json_string(symbol));
    return 0;
}

static json_t *sess_patterns(const auth_token *t)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < auth_token_npatterns(t); i++)
        json_array_append_new(a, json_string(auth_token_pattern(t, i)));
    return a;
}

/* {"op":"auth","token":"..."}: the first message on /ws without a token in
 * the request, and the refresh of any session's token (no gap: the session
 * goes on). A refused first token closes (4002); a refused refresh leaves
 * the session with the token it has. */
static void sess_auth_op(sess *s, const json_t *id, const json_t *req)
{
    if (!s->srv->auth) {
        sess_ack(s, id, "auth", json_pack("{s:s}", "mode", "none"));
        return;
    }
    const json_t *tok = json_object_get(req, "token");
    if (!json_is_string(tok)) {
        sess_err(s, id, SESS_ERR_BAD_REQUEST, "\"token\" must be a string (a JWT)", NULL);
        if (!s->tok) {
            auth_counters(s->srv->auth)->unauthenticated_closes++;
            sess_close(s, SESS_CLOSE_UNAUTHORIZED, "unauthorized");
        }
        return;
    }
    int had = s->tok != NULL;
    int why = sess_authenticate(s, json_string_value(tok), json_string_length(tok));
    if (why) {
        if (!had) { /* as sess_auth_refused, answering the request's id */
            auth_counters(s->srv->auth)->unauthenticated_closes++;
            sess_err_full(s, id, SESS_ERR_UNAUTHORIZED, auth_result_text((auth_result)why),
                          sess_reason(why), 0);
            sess_close(s, SESS_CLOSE_UNAUTHORIZED, "unauthorized");
            return;
        }
        sess_err_full(s, id, SESS_ERR_UNAUTHORIZED, auth_result_text((auth_result)why), sess_reason(why), 1);
        return;
    }
    json_t *extra = json_pack("{s:s, s:I, s:o}", "sub", auth_token_sub(s->tok), "expires_at",
                              (json_int_t)(auth_token_deadline_us(s->tok) / 1000), "symbols",
                              sess_patterns(s->tok));
    if (had) {
        sess_keep_ctx c = {s->tok, json_array()};
        size_t n = c.revoked ? bcast_client_retain(s->client, sess_keep, &c, auth_token_allows_all(s->tok)) : 0;
        auth_counters(s->srv->auth)->revoked_subscriptions += n;
        if (extra && n)
            json_object_set_new(extra, "revoked", c.revoked);
        else
            json_decref(c.revoked);
    }
    sess_ack(s, id, "auth", extra);
}

/* A request before the session has a token. */
static void sess_unauthenticated(sess *s, const json_t *id)
{
    auth_counters(s->srv->auth)->unauthenticated_closes++;
    auth_count_failure(s->srv->auth, AUTH_E_MISSING);
    sess_err_full(s, id, SESS_ERR_UNAUTHORIZED,
                  "authenticate first: {\"op\":\"auth\",\"token\":\"...\"} (or a token in the request)",
                  sess_reason(AUTH_E_MISSING), 0);
    sess_close(s, SESS_CLOSE_UNAUTHORIZED, "unauthorized");
}

/* Names outside the token: a forbidden error listing them (nothing
 * changes); else "*" becomes the entitled symbols known now (unless the
 * token holds "*" itself). *names / *n / *syms are replaced then (*owned
 * takes the new JSON list). Returns 0 to go on. */
static int sess_entitle(sess *s, const json_t *id, const char ***names, size_t *n,
                        const json_t **syms, json_t **owned)
{
    const auth_token *t = s->tok;
    json_t *refused = json_array();
    int star = 0;
    if (!refused)
        return -1;
    for (size_t i = 0; i < *n; i++) {
        if (!strcmp((*names)[i], "*"))
            star = 1;
        else if (!auth_token_allows(t, (*names)[i]))
            json_array_append_new(refused, json_string((*names)[i]));
    }
    if (json_array_size(refused)) {
        auth_counters(s->srv->auth)->forbidden_subscribes++;
        sbuf msg;
        sbuf_init(&msg, 512);
        sbuf_printf(&msg, "not entitled to:");
        for (size_t i = 0; i < json_array_size(refused); i++)
            sbuf_printf(&msg, "%s %s", i ? "," : "", json_string_value(json_array_get(refused, i)));
        sbuf_printf(&msg, "; nothing changed");
        sess_err_full(s, id, SESS_ERR_FORBIDDEN, msg.overflow ? "not entitled to these symbols" : msg.data,
                      json_pack("{s:o, s:o}", "symbols", refused, "allowed", sess_patterns(t)), 1);
        sbuf_free(&msg);
        return -1;
    }
    json_decref(refused);
    if (!star || auth_token_allows_all(t))
        return 0;
    bcast *b = s->srv->b;
    uint32_t nsyms = bcast_symbol_count(b);
    const char **out = malloc((*n + nsyms) * sizeof(*out) + 1);
    json_t *list = json_array();
    if (!out || !list) {
        free(out);
        json_decref(list);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*names)[i], "*"))
            out[k++] = (*names)[i];
    for (uint32_t id2 = 0; id2 < nsyms; id2++)
        if (auth_token_allows(t, bcast_symbol_name(b, id2)))
            out[k++] = bcast_symbol_name(b, id2);
    size_t distinct = tk_dedupe_names(out, k);
    if (distinct == (size_t)-1) {
        free(out);
        json_decref(list);
        return -1;
    }
    for (size_t i = 0; i < distinct; i++)
        json_array_append_new(list, json_string(out[i]));
    free(*names);
    *names = out;
    *n = distinct;
    json_decref(*owned);
    *owned = list;
    *syms = list;
    return 0;
}

/* Takes n tokens from the session's message-rate bucket
 * (limits.max_messages_per_sec, refilled continuously, holding at most a
 * second's worth). Returns 0 when there were not n. A refused charge of
 * several frames (sess_control_frames) also empties the bucket, so a ping
 * flood pays for itself; a refused message leaves what is there (< 1). */
static int sess_rate_take(sess *s, double n)
{
    double rate = s->srv->limits.max_messages_per_sec;
    int64_t now = tk_mono_us();
    if (!s->tokens_at_us) {
        s->tokens = rate;
    } else {
        s->tokens += rate * (double)(now - s->tokens_at_us) / 1e6;
        if (s->tokens > rate)
            s->tokens = rate;
    }
    s->tokens_at_us = now;
    if (s->tokens < n) {
        if (n > 1)
            s->tokens = 0;
        return 0;
    }
    s->tokens -= n;
    return 1;
}

static int sess_rate_ok(sess *s) { return sess_rate_take(s, 1); }

void sess_control_frames(sess *s, uint32_t n)
{
    if (s->closing || !n)
        return;
    s->srv->stats.control_frames_in += n;
    if (!sess_rate_take(s, n))
        sess_err(s, NULL, SESS_ERR_RATE_LIMITED,
                 "too many control frames (pings) per second; they count against "
                 "limits.max_messages_per_sec",
                 NULL);
}

/* The optional "resume" of a subscribe: {"SYMBOL": last seq seen, ...}.
 * Returns 0 and the entries (names point into res), or -1 after replying
 * with an error. */
static int sess_parse_resume(sess *s, const json_t *id, const json_t *res, bcast_resume **out,
                           size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (!res)
        return 0;
    if (!json_is_object(res)) {
        sess_err(s, id, SESS_ERR_BAD_REQUEST,
                 "\"resume\" must be an object mapping a symbol to the last seq seen", NULL);
        return -1;
    }
    size_t n = json_object_size(res);
    if (!n)
        return 0;
    bcast_resume *r = malloc(n * sizeof(*r));
    if (!r) {
        sess_err(s, id, SESS_ERR_INTERNAL, "out of memory", NULL);
        return -1;
    }
    const char *sym;
    const json_t *v;
    size_t i = 0;
    json_object_foreach((json_t *)res, sym, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            sess_err(s, id, SESS_ERR_BAD_REQUEST,
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
static int sess_parse_history(sess *s, const json_t *id, const json_t *req, size_t nsyms,
                            int *wanted, hist_query *q)
{
    const json_t *h = json_object_get(req, "history");
    char text[200];
    *wanted = 0;
    if (!h)
        return 0;
    int max_rows = s->srv->hist ? hist_max_rows(s->srv->hist) : HIST_DEFAULT_MAX_ROWS;
    const json_t *interval = json_object_get(h, "interval");
    const json_t *limit = json_object_get(h, "limit");
    memset(q, 0, sizeof(*q));
    q->interval_s = hist_parse_interval(json_string_value(interval));
    q->limit = limit ? (int)json_integer_value(limit) : SESS_HIST_DEFAULT_LIMIT;
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
    } else if (s->nhist == SESS_HIST_INFLIGHT) {
        sess_err(s, id, SESS_ERR_BUSY,
                 "history requests of this connection are still in progress; retry after their "
                 "frames",
                 NULL);
        return -1;
    } else if (s->srv->hist && !hist_can_submit(s->srv->hist)) {
        sess_err(s, id, SESS_ERR_BUSY, "too many history requests in progress; retry shortly",
                 NULL);
        return -1;
    } else {
        q->to_us = INT64_MAX;
        q->latest = 1;
        *wanted = 1;
        return 0;
    }
    sess_err(s, id, SESS_ERR_BAD_REQUEST, text, NULL);
    return -1;
}

/* Queue the history of every named symbol (they are subscribed now) and
 * park them until their frames have gone. */
static int sess_request_history(sess *s, const char *const *names, size_t n,
                              const hist_query *proto)
{
    hist_query *q = malloc(n * sizeof(*q));
    uint32_t *ids = malloc(n * sizeof(*ids));
    hist_req *r = NULL;
    if (q && ids && s->srv->hist) {
        for (size_t i = 0; i < n; i++) {
            q[i] = *proto;
            snprintf(q[i].symbol, sizeof(q[i].symbol), "%s", names[i]);
            ids[i] = bcast_symbol_id(s->srv->b, names[i]);
        }
        r = hist_submit(s->srv->hist, q, ids, n, HIST_FMT_FRAME, sess_history_done, s);
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

static void sess_subscription(sess *s, const json_t *id, const char *op, const json_t *req)
{
    int subscribe = !strcmp(op, "subscribe");
    const json_t *syms = json_object_get(req, "symbols");
    size_t n = json_array_size(syms);
    bcast_resume *resume = NULL;
    size_t nresume = 0;
    json_t *deduped = NULL; /* syms without repeats, when it had some */
    if (s->srv->auth && !s->tok) {
        sess_unauthenticated(s, id);
        return;
    }
    if (!json_is_array(syms) || n == 0) {
        sess_err(s, id, SESS_ERR_BAD_REQUEST, "\"symbols\" must be a non-empty array of strings",
                 NULL);
        return;
    }
    const json_t *epoch = subscribe ? json_object_get(req, "epoch") : NULL;
    if (epoch && !(json_is_string(epoch) && json_string_length(epoch) <= SESS_ID_MAX)) {
        sess_err(s, id, SESS_ERR_BAD_REQUEST,
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
            sess_err(s, id, SESS_ERR_BAD_REQUEST, "\"symbols\" must hold only strings", NULL);
            goto done;
        }
    }
    /* A name given twice is subscribed, acked and answered (history) once:
     * a repeated list must not cost more than the list without repeats. */
    size_t distinct = tk_dedupe_names(names, n);
    if (distinct == (size_t)-1)
        goto oom;
    if (distinct < n) {
        n = distinct;
        deduped = json_array();
        for (size_t i = 0; deduped && i < n; i++)
            json_array_append_new(deduped, json_string(names[i]));
        if (!deduped)
            goto oom;
        syms = deduped;
    }
    if (subscribe) {
        int history = 0;
        hist_query hq;
        if (sess_parse_history(s, id, req, n, &history, &hq) ||
            sess_parse_resume(s, id, json_object_get(req, "resume"), &resume, &nresume))
            goto done;
        for (size_t i = 0; history && i < n; i++)
            if (!strcmp(names[i], "*")) {
                sess_err(s, id, SESS_ERR_BAD_REQUEST,
                         "\"history\" needs named symbols, not \"*\"", NULL);
                goto done;
            }
        /* Entitlements first: a name outside the token is forbidden whether
         * or not this server knows it. */
        if (s->tok && sess_entitle(s, id, &names, &n, &syms, &deduped))
            goto done;
        size_t *unknown = malloc((n + nresume + 1) * sizeof(*unknown)); /* n is 0 for a "*" nothing entitles */
        if (!unknown)
            goto oom;
        /* Seqs are comparable only within one server instance (epoch). */
        int other_epoch = epoch && strcmp(json_string_value(epoch), bcast_epoch(s->srv->b)) != 0;
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
            sess_err(s, id, SESS_ERR_UNKNOWN_SYMBOL, msg.overflow ? "unknown symbol(s)" : msg.data,
                     list);
            sbuf_free(&msg);
        } else if (rc == BCAST_ERESUME) {
            char text[160];
            snprintf(text, sizeof(text),
                     "\"resume\" names %.40s, which \"symbols\" does not subscribe; nothing changed",
                     resume[unknown[0] - n].symbol);
            sess_err(s, id, SESS_ERR_BAD_REQUEST, text, NULL);
        } else if (rc == BCAST_ELIMIT) {
            sess_err(s, id, SESS_ERR_TOO_MANY_SUBSCRIPTIONS,
                     "the subscribe would exceed limits.max_subscriptions; nothing changed", NULL);
        } else if (rc != BCAST_OK) {
            free(unknown);
            goto oom;
        } else {
            /* The epoch is what a client names when it resumes later. */
            sess_ack(s, id, op, json_pack("{s:O, s:s}", "symbols", syms, "epoch",
                                        bcast_epoch(s->srv->b)));
            if (history && sess_request_history(s, names, n, &hq))
                sess_err(s, id, SESS_ERR_INTERNAL, "out of memory: no history sent", NULL);
        }
        free(unknown);
        goto done;
    }
    bcast_unsubscribe(s->client, names, n);
    sess_ack(s, id, op, json_pack("{s:O}", "symbols", syms));
done:
    json_decref(deduped);
    free(names);
    free(resume);
    return;
oom:
    json_decref(deduped);
    free(names);
    free(resume);
    sess_err(s, id, SESS_ERR_INTERNAL, "out of memory", NULL);
}

void sess_request(sess *s, const char *msg, size_t len)
{
    if (s->closing)
        return;
    sess_server *srv = s->srv;
    srv->stats.messages_in++;
    if (!sess_rate_ok(s)) {
        sess_err(s, NULL, SESS_ERR_RATE_LIMITED, "too many messages per second; message dropped",
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
        sess_err(s, NULL, SESS_ERR_BAD_JSON, text, NULL);
        return;
    }
    const json_t *id = json_object_get(root, "id");
    if (id && !json_is_integer(id) &&
        !(json_is_string(id) && json_string_length(id) <= SESS_ID_MAX)) {
        sess_err(s, NULL, SESS_ERR_BAD_REQUEST, "\"id\" must be an integer or a string of at most 64 bytes",
                 NULL);
    } else {
        const char *op = json_string_value(json_object_get(root, "op"));
        if (!op)
            sess_err(s, id, SESS_ERR_BAD_REQUEST, "\"op\" must be a string", NULL);
        else if (!strcmp(op, "auth"))
            sess_auth_op(s, id, root);
        else if (srv->auth && !s->tok)
            sess_unauthenticated(s, id);
        else if (!strcmp(op, "ping"))
            sess_ack(s, id, op, json_pack("{s:I}", "time", (json_int_t)tk_now_us()));
        else if (!strcmp(op, "subscribe") || !strcmp(op, "unsubscribe"))
            sess_subscription(s, id, op, root);
        else
            sess_err(s, id, SESS_ERR_UNKNOWN_OP, "unknown op (subscribe, unsubscribe, ping, auth)", NULL);
    }
    json_decref(root);
}


void sess_error(sess *s, sess_error_code code, const char *message)
{
    if (!s->closing)
        sess_err(s, NULL, code, message, NULL);
}

size_t sess_position(const sess *s, char *buf, size_t cap)
{
    return bcast_client_position(s->client, buf, cap);
}

/* Names of a csv list, as a JSON array (empty names skipped). */
static json_t *sess_csv_array(const char *csv)
{
    json_t *a = json_array();
    const char *p = csv ? csv : "";
    while (a && *p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n)
            json_array_append_new(a, json_stringn(p, n));
        p += n + (comma ? 1 : 0);
    }
    return a;
}

/* "EPOCH,SYM:seq,..." into req's "epoch" and "resume" (only symbols in
 * syms, or any known one for "*"). -1 when malformed. */
static int sess_position_into(sess *s, const char *pos, json_t *req, const json_t *syms)
{
    size_t elen = strcspn(pos, ",");
    if (!elen || elen > SESS_ID_MAX)
        return -1;
    json_object_set_new(req, "epoch", json_stringn(pos, elen));
    int star = 0;
    for (size_t i = 0; i < json_array_size(syms); i++)
        star |= !strcmp(json_string_value(json_array_get(syms, i)), "*");
    json_t *resume = json_object();
    const char *p = pos + elen;
    while (*p == ',') {
        p++;
        size_t n = strcspn(p, ",");
        const char *colon = memchr(p, ':', n);
        if (!colon || colon == p || colon - p > 64) {
            json_decref(resume);
            return -1;
        }
        char name[65];
        memcpy(name, p, (size_t)(colon - p));
        name[colon - p] = 0;
        char *end;
        unsigned long long seq = strtoull(colon + 1, &end, 10);
        if (end != p + n || end == colon + 1) {
            json_decref(resume);
            return -1;
        }
        int wanted = star && bcast_symbol_id(s->srv->b, name) != UINT32_MAX &&
                     (!s->tok || auth_token_allows(s->tok, name)); /* "*" means the entitled ones */
        for (size_t i = 0; !wanted && i < json_array_size(syms); i++)
            wanted = !strcmp(json_string_value(json_array_get(syms, i)), name);
        if (wanted)
            json_object_set_new(resume, name, json_integer((json_int_t)(seq > INT64_MAX ? INT64_MAX : seq)));
        p += n;
    }
    if (*p) {
        json_decref(resume);
        return -1;
    }
    json_object_set_new(req, "resume", resume);
    return 0;
}

int sess_subscribe_csv(sess *s, const char *symbols_csv, const char *position)
{
    if (s->closing)
        return -1;
    json_t *syms = sess_csv_array(symbols_csv);
    json_t *req = syms ? json_pack("{s:s, s:o}", "op", "subscribe", "symbols", syms) : NULL;
    if (!req) {
        sess_err(s, NULL, SESS_ERR_INTERNAL, "out of memory", NULL);
        return -1;
    }
    if (position && *position && sess_position_into(s, position, req, syms)) {
        json_decref(req);
        sess_err(s, NULL, SESS_ERR_BAD_REQUEST,
                 "the resume position (Last-Event-ID / cursor) is not one this server gave", NULL);
        return 1 + SESS_ERR_BAD_REQUEST;
    }
    /* The refusal, if any, is the error counter that moved. */
    uint64_t before[SESS_ERR_COUNT];
    memcpy(before, s->srv->stats.errors, sizeof(before));
    sess_subscription(s, NULL, "subscribe", req);
    json_decref(req);
    for (int e = 0; e < SESS_ERR_COUNT; e++)
        if (s->srv->stats.errors[e] != before[e])
            return 1 + e;
    return 0;
}

/* The "op" of a JSON frame, from its first bytes: every frame tickerd
 * writes starts {"op":"<name>" (bcast.c, history.c, the replies above). */
static sess_event sess_event_of(const char *d, size_t len)
{
    static const struct {
        const char *prefix;
        sess_event ev;
    } map[] = {
        {"{\"op\":\"snapshot\",\"reset\":true", SESS_EV_RESET},
        {"{\"op\":\"snapshot\"", SESS_EV_SNAPSHOT},
        {"{\"op\":\"update\"", SESS_EV_UPDATE},
        {"{\"op\":\"replay\"", SESS_EV_REPLAY},
        {"{\"op\":\"history\"", SESS_EV_HISTORY},
        {"{\"op\":\"ack\"", SESS_EV_ACK},
        {"{\"op\":\"error\"", SESS_EV_ERROR},
        {"{\"op\":\"reauth\"", SESS_EV_REAUTH},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        size_t n = strlen(map[i].prefix);
        if (len >= n && !memcmp(d, map[i].prefix, n))
            return map[i].ev;
    }
    return SESS_EV_OTHER;
}

static sess_event sess_event_of_bin(const unsigned char *d, size_t len)
{
    if (!len)
        return SESS_EV_OTHER;
    switch (d[0]) {
    case BCAST_BIN_SNAPSHOT: return SESS_EV_SNAPSHOT;
    case BCAST_BIN_RESET: return SESS_EV_RESET;
    case BCAST_BIN_REPLAY: return SESS_EV_REPLAY;
    case BCAST_BIN_UPDATE: return SESS_EV_UPDATE;
    default: return SESS_EV_OTHER;
    }
}

sess_out_kind sess_next(sess *s, sess_out *out)
{
    sess_server *srv = s->srv;
    free(s->handed);
    s->handed = NULL;
    free(s->handed_hist);
    s->handed_hist = NULL;
    memset(out, 0, sizeof(*out));
    if (s->reply_count) {
        sess_reply *r = s->reply_head;
        s->reply_head = r->next;
        if (!s->reply_head)
            s->reply_tail = NULL;
        s->reply_count--;
        s->handed = r;
        out->kind = SESS_OUT_REPLY;
        out->data = (const char *)r->buf + SESS_HEADROOM;
        out->len = r->len;
        out->event = sess_event_of(out->data, out->len);
        if (s->rx_paused && !s->closing && s->reply_count < SESS_REPLY_PAUSE_AT / 2)
            sess_rx_flow(s, 1);
        return out->kind;
    }
    if (s->closing)
        return SESS_OUT_NONE;
    /* A finished history whose results hold no frame (a symbol without
     * rows) only unparks: look at the next one. */
    while (sess_history_due(s)) {
        size_t len;
        char *buf = sess_take_history(s, &len);
        if (!buf)
            continue;
        s->handed_hist = buf;
        out->kind = SESS_OUT_HISTORY;
        out->data = buf + SESS_HEADROOM;
        out->len = len;
        out->event = SESS_EV_HISTORY;
        return out->kind;
    }
    size_t len = bcast_client_frame(s->client, (char *)srv->frame + SESS_HEADROOM, srv->frame_cap);
    if (!len)
        return SESS_OUT_NONE;
    out->kind = SESS_OUT_FRAME;
    out->binary = s->binary;
    out->data = (const char *)srv->frame + SESS_HEADROOM;
    out->len = len;
    out->event = s->binary ? sess_event_of_bin(srv->frame + SESS_HEADROOM, len)
                           : sess_event_of(out->data, len);
    return out->kind;
}

int sess_has_pending(const sess *s)
{
    if (s->reply_count)
        return 1;
    if (s->closing)
        return 0;
    return sess_history_due(s) || bcast_client_has_pending(s->client);
}

/* A session holding no subscription once its deadline passed. */
static void sess_subscribe_deadline(sess *s, int64_t mono)
{
    uint32_t ms = s->srv->limits.subscribe_timeout_ms;
    if (s->subscribed_once || !ms)
        return;
    if (bcast_client_subscription_count(s->client)) {
        s->subscribed_once = 1;
        return;
    }
    if (mono - s->created_us < (int64_t)ms * 1000)
        return;
    s->subscribed_once = 1; /* closing: once */
    s->srv->stats.subscribe_timeouts++;
    sess_count_error(s->srv, s->ops->name, "subscribe_timeout");
    sess_close(s, SESS_CLOSE_POLICY, "no subscription within limits.subscribe_timeout_ms");
}

/* One session's token: reauth before expiry, close at it, or the close of
 * one that never sent its auth op. */
static void sess_token_deadline(sess *s, int64_t now, int64_t mono)
{
    sess_server *srv = s->srv;
    int64_t before = auth_reauth_before_us(srv->auth);
    auth_stats *st = auth_counters(srv->auth);
    if (!s->tok) {
        if (s->auth_by_us && mono >= s->auth_by_us) {
            s->auth_by_us = 0;
            st->unauthenticated_closes++;
            auth_count_failure(srv->auth, AUTH_E_MISSING);
            sess_err_full(s, NULL, SESS_ERR_UNAUTHORIZED,
                          "no {\"op\":\"auth\"} within auth.auth_timeout_ms",
                          sess_reason(AUTH_E_MISSING), 0);
            sess_close(s, SESS_CLOSE_UNAUTHORIZED, "unauthorized");
        }
        return;
    }
    int64_t deadline = auth_token_deadline_us(s->tok);
    if (now >= deadline) {
        st->expired_closes++;
        sess_err_full(s, NULL, SESS_ERR_TOKEN_EXPIRED,
                      "the token expired; connect again with a new one", NULL, 0);
        sess_close(s, SESS_CLOSE_TOKEN_EXPIRED, "token expired");
    } else if (!s->reauth_sent && now >= deadline - before) {
        /* once per token: a new auth op with a later exp resets it */
        s->reauth_sent = 1;
        st->reauth_sent++;
        json_t *r = json_pack("{s:s, s:I, s:I}", "op", "reauth", "expires_at",
                              (json_int_t)(deadline / 1000), "in_ms",
                              (json_int_t)((deadline - now) / 1000));
        if (r)
            sess_queue_reply(s, r);
    }
}

void sess_sweep(sess_server *srv)
{
    int64_t now = tk_now_us(), mono = tk_mono_us();
    /* sess_close only marks: no session goes away during the walk */
    for (sess *s = srv->all; s; s = s->anext) {
        if (s->closing)
            continue;
        if (srv->auth)
            sess_token_deadline(s, now, mono);
        if (!s->closing)
            sess_subscribe_deadline(s, mono);
    }
}
