/*
 * eio.h — the Engine.IO v4 server at /socket.io/ (docs/protocol.md
 * "Socket.IO"): sessions with unguessable ids, HTTP long-polling (one pending
 * GET and one pending POST per session, '\x1e'-joined payloads), WebSocket
 * (directly, or as the upgrade of a polling session: 2probe / 3probe / 5),
 * server pings every ping_interval_ms and a close when no pong comes within
 * ping_timeout_ms, max_payload_bytes on every client message and POST body
 * (413), and the reference server's 400 JSON errors.
 *
 * It only frames: what rides on it (Socket.IO, sio.c) is an eio_upper that
 * takes each client message and hands out the next message to send, so
 * polling and WebSocket carry the same bytes and conflation stays in bcast.
 * Runs on the lws service thread only.
 */
#ifndef TICKERD_EIO_H
#define TICKERD_EIO_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>


#define EIO_PROTOCOL_NAME "tickerd-eio"
#define EIO_MOUNTPOINT "/socket.io"
#define EIO_SID_LEN 20 /* 15 random bytes, base64url */

typedef struct eio_limits {
    uint32_t ping_interval_ms;  /* 25000 as the reference server */
    uint32_t ping_timeout_ms;   /* 20000 */
    uint32_t max_payload_bytes; /* one client message / one POST body */
    uint32_t max_sessions;      /* Engine.IO sessions at once */
    uint32_t max_message_room;  /* the longest message the upper sends (a frame and its wrapping) */
} eio_limits;

typedef enum {
    EIO_E_BAD_VERSION = 0, /* EIO other than 4: 400 code 5 */
    EIO_E_BAD_TRANSPORT,   /* 400 code 0 */
    EIO_E_UNKNOWN_SID,     /* 400 code 1 */
    EIO_E_BAD_METHOD,      /* handshake not a GET: 400 code 2 */
    EIO_E_BAD_REQUEST,     /* 400 code 3: polling an upgraded session, overlapping POST */
    EIO_E_DUPLICATE_GET,   /* a second pending GET: 400, session closed */
    EIO_E_TOO_LARGE,       /* POST body or WebSocket message over max_payload_bytes */
    EIO_E_INVALID_PACKET,  /* malformed Engine.IO / Socket.IO packet: session closed */
    EIO_E_PING_TIMEOUT,    /* no pong within ping_timeout_ms (includes clients that stopped polling) */
    EIO_E_TOO_MANY,        /* max_sessions reached: 503 */
    EIO_E_BAD_UPGRADE,     /* probe for a session that cannot upgrade */
    EIO_E_COUNT
} eio_error;

typedef struct eio_conn eio_conn;

/* What rides on Engine.IO. Every call is on the service thread. */
typedef struct eio_upper {
    /* A new session: returns the upper's state for it (NULL: refuse). */
    void *(*open)(void *arg, eio_conn *c);
    /* One client message (the data of a '4' packet). Returns 0, or -1 for a
     * protocol error: the session is closed (counted invalid_packet). */
    int (*message)(void *up, const char *data, size_t len);
    /* Writes the data of the next message to send at buf (at most cap
     * bytes) and returns its length; 0 when nothing is due or it would not
     * fit (then it stays due). */
    size_t (*next)(void *up, char *buf, size_t cap);
    int (*pending)(const void *up);
    /* The session is gone; nothing calls the upper for it afterwards. */
    void (*closed)(void *up);
    /* Optional: is the server full (no new sessions)? Count an error
     * (reason: eio_error_name) for /metrics. Both get upper_arg. */
    int (*full)(void *arg);
    void (*count_error)(void *arg, const char *reason);
    /* Optional: refuse this request (a browser Origin outside the policy)?
     * Asked for every polling request (answered 403, code 4 "Forbidden",
     * as the reference's allowRequest) and WebSocket at /socket.io/. */
    int (*refuse)(void *arg, struct lws *wsi);
} eio_upper;

typedef struct eio_server eio_server;

eio_server *eio_create(const eio_limits *limits, const eio_upper *upper, void *upper_arg);
void eio_destroy(eio_server *e);
void eio_set_limits(eio_server *e, const eio_limits *limits);
/* The lws protocol for the /socket.io/ mount (polling requests). */
struct lws_protocols eio_protocol(eio_server *e);
/* The mount for /socket.io/, chained before next. */
const struct lws_http_mount *eio_mount(eio_server *e, const struct lws_http_mount *next);
/* WebSocket upgrades carry no subprotocol, so lws hands them all to the
 * vhost's default protocol (p, the /ws one). This wraps p's callback: an
 * upgrade whose path is /socket.io/ is served here, anything else goes on
 * to p's own callback unchanged. Call once, before the vhost is created. */
void eio_take_upgrades(eio_server *e, struct lws_protocols *p);
/* The upper has something to send on c. */
void eio_want_write(eio_conn *c);
/* The id of c (NUL-terminated, EIO_SID_LEN chars). */
const char *eio_sid(const eio_conn *c);
/* The client's address as the handshake came from ("" if unknown). */
const char *eio_peer(const eio_conn *c);
uint32_t eio_sessions(const eio_server *e);
uint64_t eio_errors(const eio_server *e, eio_error which);
const char *eio_error_name(eio_error which);
/* Close every session (shutdown). */
void eio_shutdown(eio_server *e);

#endif
