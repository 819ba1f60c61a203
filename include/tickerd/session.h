/*
 * session.h — the session layer between the broadcaster and the transports.
 *
 * A session is one client, whatever carries its bytes (WebSocket at /ws,
 * SSE, long-polling, Engine.IO/Socket.IO). It owns everything about a client
 * that is not framing: its bcast_client (subscriptions, conflation, resume),
 * request handling written once (subscribe / unsubscribe / resume / history /
 * ping, docs/protocol.md), the per-session limits (message rate, error
 * budget, max subscriptions via bcast), the acks and errors, and the small
 * bounded list of replies waiting to be written. A transport only turns
 * client messages into sess_request() calls and what sess_next() hands out
 * into its own framing.
 *
 * The contract with a transport:
 *  - sess_create(srv, &transport_ops, transport_arg, encoding) when a client
 *    arrives (after sess_full() said there is room), sess_destroy() when it
 *    is gone. Nothing calls back into the transport after sess_destroy.
 *  - ops.want_write(arg): the session has something to send. The transport
 *    arranges a write opportunity (lws_callback_on_writable) and then calls
 *    sess_next() — once per opportunity, or in a loop while it has room —
 *    until it returns SESS_OUT_NONE. want_write may be called from inside
 *    sess_request() and from bcast publishes (the service thread).
 *  - ops.rx_flow(arg, enable) (optional, may be NULL): pause/resume reading
 *    client messages. Called when the reply list is filling up, so a client
 *    that sends requests without reading the replies stops being read.
 *  - ops.close(arg, code, reason) (optional): the session wants the client
 *    gone (error budget exhausted, code 1008 "too many errors"). From then on
 *    sess_next() hands out only the replies still queued (so the client sees
 *    the errors that led there), then SESS_OUT_NONE; the transport closes
 *    after those (sess_replies_pending() tells whether any remain).
 *  - Transport-level bad input the session cannot see (a message over
 *    max_message_bytes, a binary frame) is reported with sess_error(), which
 *    answers in the protocol's error form and counts against the budget.
 *
 * Every buffer sess_next() hands out has SESS_HEADROOM (= LWS_PRE) writable
 * bytes before out->data, so a WebSocket transport can lws_write it in
 * place. It stays valid until the next sess_next() of any session (frames
 * share one scratch buffer) or sess_destroy(): write or copy it at once.
 *
 * Runs on the lws service thread only.
 */
#ifndef TICKERD_SESSION_H
#define TICKERD_SESSION_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include "tickerd/bcast.h"

#define SESS_HEADROOM LWS_PRE
/* Longest request "id" (string) accepted and echoed. */
#define SESS_ID_MAX 64
#define SESS_ERROR_WINDOW_US 10000000 /* the error budget's window */
#define SESS_REPLY_QUEUE 16           /* replies held per session */
#define SESS_REPLY_PAUSE_AT 8         /* ask the transport to stop reading at this many */
/* WebSocket close codes the session asks for (other transports map them). */
#define SESS_CLOSE_POLICY 1008
#define SESS_CLOSE_TRY_AGAIN_LATER 1013
/* auth.mode token (docs/protocol.md#authentication): the token expired
 * (a "reauth" message came before, and no new token); no valid token. */
#define SESS_CLOSE_TOKEN_EXPIRED 4001
#define SESS_CLOSE_UNAUTHORIZED 4002

typedef enum {
    SESS_ERR_BAD_JSON = 0,
    SESS_ERR_BAD_REQUEST,
    SESS_ERR_UNKNOWN_OP,
    SESS_ERR_UNKNOWN_SYMBOL,
    SESS_ERR_TOO_MANY_SUBSCRIPTIONS,
    SESS_ERR_MESSAGE_TOO_LARGE,
    SESS_ERR_BINARY_NOT_SUPPORTED,
    SESS_ERR_RATE_LIMITED,
    SESS_ERR_INTERNAL,
    SESS_ERR_BUSY, /* history requests at their limit: retry later */
    SESS_ERR_SYMBOL_REMOVED, /* a reload took the symbol's last feed away (not the client's fault) */
    SESS_ERR_UNAUTHORIZED, /* no token, or one that does not verify ("reason" says why) */
    SESS_ERR_FORBIDDEN,    /* symbols outside the token's entitlements ("symbols" lists them) */
    SESS_ERR_TOKEN_EXPIRED, /* the session's token expired: the close (4001) follows */
    SESS_ERR_COUNT
} sess_error_code;

typedef struct sess_limits {
    uint32_t max_sessions;         /* server.max_connections: every transport together */
    uint32_t max_message_bytes;    /* limits.max_message_bytes (the transport enforces it) */
    uint32_t max_messages_per_sec; /* limits.max_messages_per_sec */
    uint32_t max_errors;           /* limits.max_errors within SESS_ERROR_WINDOW_US, then close */
    uint32_t max_frame_bytes;      /* broadcast.max_frame_bytes: largest update frame */
    uint32_t subscribe_timeout_ms; /* limits.subscribe_timeout_ms: close a session that never
                                    * subscribes within this (0 = never; see sess_sweep) */
} sess_limits;

/* Per transport (by sess_transport.name), for tickerd_clients{transport}
 * and tickerd_transport_errors_total{transport,reason}. */
#define SESS_MAX_TRANSPORTS 8
#define SESS_MAX_REASONS 16
typedef struct sess_transport_stats {
    const char *name; /* NULL: unused slot */
    uint32_t sessions; /* current (gauge) */
    const char *reasons[SESS_MAX_REASONS]; /* string literals, as counted */
    uint64_t errors[SESS_MAX_REASONS];
} sess_transport_stats;

/* Counters over every session of every transport. */
typedef struct sess_stats {
    uint64_t messages_in;
    uint64_t control_frames_in; /* pings counted by the transports (sess_control_frames) */
    uint64_t errors[SESS_ERR_COUNT];
    uint64_t abuse_closes;    /* closed for repeated errors */
    uint64_t replies_dropped; /* reply list overflow (should stay 0) */
    uint64_t subscribe_timeouts; /* closed: no subscription within subscribe_timeout_ms */
    sess_transport_stats transports[SESS_MAX_TRANSPORTS];
} sess_stats;

/* What sess_next() hands out. */
typedef enum {
    SESS_OUT_NONE = 0, /* nothing due now */
    SESS_OUT_REPLY,    /* a control reply: JSON text ({"op":"ack"|"error",...}) */
    SESS_OUT_FRAME,    /* a bcast frame: snapshot / update / replay (JSON, or binary when out->binary) */
    SESS_OUT_HISTORY,  /* a history frame (JSON text, {"op":"history",...}) */
} sess_out_kind;

/* The frame's "op" as a transport that names events needs it (SSE). */
typedef enum {
    SESS_EV_ACK = 0,
    SESS_EV_ERROR,
    SESS_EV_SNAPSHOT,
    SESS_EV_RESET, /* a snapshot marked "reset":true */
    SESS_EV_REPLAY,
    SESS_EV_UPDATE,
    SESS_EV_HISTORY,
    SESS_EV_REAUTH, /* {"op":"reauth",...}: the token expires soon */
    SESS_EV_OTHER,
} sess_event;

typedef struct sess_out {
    sess_out_kind kind;
    sess_event event;
    uint8_t binary; /* the bytes are a binary frame (tickerd.bin encoding) */
    const char *data; /* SESS_HEADROOM writable bytes before it */
    size_t len;
} sess_out;

typedef struct sess_transport {
    const char *name; /* "ws", "sse", "poll", "eio": metric label */
    void (*want_write)(void *arg);
    void (*rx_flow)(void *arg, int enable);                        /* may be NULL */
    void (*close)(void *arg, uint16_t code, const char *reason);   /* may be NULL */
} sess_transport;

typedef struct sess_server sess_server;
typedef struct sess sess;
struct hist;
struct gate;

sess_server *sess_server_create(bcast *b, const sess_limits *limits);
void sess_server_destroy(sess_server *srv);
/* Applies to every session at once (a reload); -1 when out of memory. */
int sess_set_limits(sess_server *srv, const sess_limits *limits);
const sess_limits *sess_get_limits(const sess_server *srv);
/* History reads for subscribes that ask for "history"; NULL: such a
 * subscribe gets history frames with an error. */
void sess_set_history(sess_server *srv, struct hist *h);
const sess_stats *sess_get_stats(const sess_server *srv);
bcast *sess_bcast(const sess_server *srv);
/* Is the server at max_sessions (every transport counted)? A transport
 * refuses the newcomer in its protocol's own way. */
int sess_full(const sess_server *srv);
const char *sess_error_name(sess_error_code code);
/* Count a transport-level error (reason: a string literal such as
 * "unknown_sid", "bad_packet", "server_full", "reaped", "too_large"; a
 * metric label) for the transport named transport. Also registers the
 * transport for tickerd_clients{transport} (call with reason NULL to only
 * register, so a transport shows up at 0 before its first client). */
void sess_count_error(sess_server *srv, const char *transport, const char *reason);

/* A reload removed symbols ids[0..n) (no feed serves them any more): every
 * session holding any of them loses those subscriptions and is told in one
 * error reply, code "symbol_removed", listing them in "symbols" (id null;
 * not counted against its error budget). Returns the sessions told, or -1
 * when out of memory (nothing changed). */
long sess_symbols_removed(sess_server *srv, const uint32_t *ids, size_t n);
/* The client's address, for the admin view (transports call one of these
 * right after sess_create): as text, or from the connected socket. */
void sess_set_peer(sess *s, const char *peer);
void sess_set_peer_fd(sess *s, int fd);
/* One session as the admin view shows it. */
typedef struct sess_info {
    const char *transport; /* "ws", "sse", "poll", "socketio" */
    const char *peer;      /* "" when unknown */
    int64_t age_ms;
    uint32_t subscriptions;
    uint64_t frames_out, values_out;
    uint64_t conflated; /* values it skipped: the measure of a slow client */
    uint32_t replies_queued;
    int behind;         /* something is due that it has not taken yet */
} sess_info;
typedef void (*sess_each_fn)(void *arg, const sess_info *info);
/* fn for every session (service thread; fn must not create or destroy any). */
void sess_each(const sess_server *srv, sess_each_fn fn, void *arg);
/* The gate (gate.h) every transport checks requests with, and through it
 * the auth object: in auth.mode token every session must hold a verified
 * token before it is served (sess_authenticate, or an {"op":"auth"}
 * message), subscribes are limited to the token's symbols, and the token's
 * expiry ends the session (see sess_sweep). */
void sess_set_gate(sess_server *srv, struct gate *g);
struct gate *sess_gate(const sess_server *srv);
/* Does a session need a token (auth.mode token)? */
int sess_auth_required(const sess_server *srv);
/* Authenticate s with a token (a header's or query's, a Socket.IO CONNECT
 * payload's): verified, then counted against its sub's max_conns. Returns
 * 0 (AUTH_OK; always in mode none), else the auth_result refusing it
 * (counted); the session is unchanged then. */
int sess_authenticate(sess *s, const char *token, size_t len);
/* A refused token on a session that has no other: the unauthorized error
 * (with "reason") and the close (4002) after it. */
void sess_auth_refused(sess *s, int why);
/* The sessions' deadlines, called periodically (every few hundred ms): a
 * session subscribed to nothing limits.subscribe_timeout_ms after it began
 * is closed (1008, the reason names the key: it holds a descriptor and takes
 * nothing); and tokens' lifetimes: a "reauth" message auth.reauth_before_s
 * before a session's token expires, the token_expired error and close (4001)
 * at expiry, the close (4002) of a session that sent no auth op within
 * auth.auth_timeout_ms. */
void sess_sweep(sess_server *srv);

/* A new session. NULL when out of memory. */
sess *sess_create(sess_server *srv, const sess_transport *ops, void *arg, bcast_enc enc);
/* Releases everything the session holds (history requests included). */
void sess_destroy(sess *s);
/* One client message (a JSON text request). Replies are queued; want_write
 * follows. Ignored once the session is closing. */
void sess_request(sess *s, const char *msg, size_t len);
/* A transport-level error: answered as {"op":"error",...} and counted
 * against the error budget (which may close the session). */
void sess_error(sess *s, sess_error_code code, const char *message);
/* n control frames (WebSocket pings) the client sent, which lws answers
 * itself: they count against the message rate like requests, and a
 * session over it gets a rate_limited error (counted against the error
 * budget, so a flood ends in a 1008 close). */
void sess_control_frames(sess *s, uint32_t n);
/* The next thing to write, see sess_out. Returns out->kind. */
sess_out_kind sess_next(sess *s, sess_out *out);
/* Is anything due (replies, history, frames)? */
int sess_has_pending(const sess *s);
int sess_replies_pending(const sess *s);
/* The session asked to close (ops.close was called). */
int sess_closing(const sess *s);
bcast_client *sess_client(sess *s);

/* For transports without a message channel (SSE, long-polling: symbols in
 * the URL): a subscribe of symbols_csv ("A,B" or "*") through the same
 * checks and replies as {"op":"subscribe",...}. position, when not NULL or
 * "", is a token from sess_position() (a Last-Event-ID, a poll cursor): its
 * epoch and seqs become the subscribe's "epoch" and "resume" (entries for
 * symbols not subscribed here are ignored), so the client gets a replay or
 * an explicit reset, never a silent gap. Returns 0 when subscribed, else
 * 1 + the refusal's sess_error_code (the error reply is queued; a
 * malformed position is a bad_request), so a transport can pick its HTTP
 * status without parsing the reply. */
int sess_subscribe_csv(sess *s, const char *symbols_csv, const char *position);
/* The session's position token ("EPOCH,SYM:seq,..."; bcast_client_position):
 * what a client names to resume after what it was sent. Its length, or
 * (size_t)-1 when cap is too small. */
size_t sess_position(const sess *s, char *buf, size_t cap);

#endif
