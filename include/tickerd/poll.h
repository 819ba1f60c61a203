/*
 * poll.h — plain HTTP long-polling: GET /api/poll?symbols=A,B&since=<cursor>
 * (docs/protocol.md#http-long-polling).
 *
 * A transport over the session layer (session.h). Each request is one
 * short-lived session: subscribe to the URL's symbols resuming from the
 * cursor (a position token, sess_position), hold the request (bounded by
 * api.poll_hold_s) until something newer than the cursor is due, then
 * answer {"cursor": next, "frames": [every frame due]} and free the session.
 * So nothing is kept between polls — the cursor is the client's whole state,
 * and a client that never polls again costs nothing — and a held request is
 * bounded like any session (server.max_connections counts it). A cursor the
 * ring no longer reaches, or one from another server run, gets an explicit
 * reset snapshot, never a silent gap. Runs on the lws service thread only.
 */
#ifndef TICKERD_POLL_H
#define TICKERD_POLL_H

#include <libwebsockets.h>
#include <stdint.h>

#include "tickerd/session.h"

#define POLL_PROTOCOL_NAME "tickerd-poll"
/* Largest answer: frames stop being added (the rest is due at the next
 * poll) before the body would pass this. */
#define POLL_BODY_MAX (1u << 20)

typedef struct poll_limits {
    uint32_t hold_ms;         /* api.poll_hold_s */
    uint32_t max_frame_bytes; /* broadcast.max_frame_bytes */
} poll_limits;

typedef struct poll_stats {
    uint64_t answered;  /* polls answered with frames */
    uint64_t timeouts;  /* polls answered empty after the hold */
    uint32_t held;      /* requests waiting now (gauge) */
} poll_stats;

typedef struct poll_server poll_server;

/* cors_origins: api.cors_origins, read at each request (a reload applies). */
poll_server *poll_create(sess_server *srv, const poll_limits *limits, const char *cors_origins);
void poll_destroy(poll_server *p);
void poll_set_limits(poll_server *p, const poll_limits *limits);
struct lws_protocols poll_protocol(poll_server *p);
/* The /api/poll mount (LWSMPRO_CALLBACK to this protocol), chained before next. */
const struct lws_http_mount *poll_mount(poll_server *p, const struct lws_http_mount *next);
/* Answer every held request now (server going away). */
void poll_shutdown(poll_server *p);
const poll_stats *poll_get_stats(const poll_server *p);

#endif
