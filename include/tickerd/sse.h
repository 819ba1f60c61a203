/*
 * sse.h — the Server-Sent Events transport: GET /sse?symbols=A,B (or "*"),
 * text/event-stream (docs/protocol.md#server-sent-events).
 *
 * A transport over the session layer (session.h): the URL's symbols are the
 * session's one subscribe; each frame sess_next() hands out becomes one event
 * named after its kind (snapshot, reset, replay, update; ack and error for
 * replies) with an "id:" that is the session's position (sess_position), so
 * a reconnecting EventSource resumes through Last-Event-ID: a replay or an
 * explicit reset, never a silent gap. It owns the stream's framing, "retry:",
 * comment heartbeats, CORS and stall detection. Slow readers are conflated by
 * bcast like any client. Runs on the lws service thread only.
 */
#ifndef TICKERD_SSE_H
#define TICKERD_SSE_H

#include <libwebsockets.h>
#include <stdint.h>

#include "tickerd/session.h"

#define SSE_PROTOCOL_NAME "tickerd-sse"
/* Longest "id:" written; a position that does not fit is sent as the epoch
 * alone (a reconnect then gets fresh snapshots). */
#define SSE_ID_MAX 2048 /* well under lws' 4096 bytes of request headers */

typedef struct sse_limits {
    uint32_t heartbeat_ms;     /* api.sse_heartbeat_s */
    uint32_t retry_ms;         /* api.sse_retry_ms */
    uint32_t stall_timeout_ms; /* broadcast.stall_timeout_ms */
    uint32_t max_frame_bytes;  /* broadcast.max_frame_bytes */
} sse_limits;

typedef struct sse_stats {
    uint64_t bytes_out;
    uint64_t events_out;
    uint32_t sessions;
} sse_stats;

typedef struct sse_server sse_server;

/* cors_origins: api.cors_origins, read at each request (a reload applies). */
sse_server *sse_create(sess_server *srv, const sse_limits *limits, const char *cors_origins);
void sse_destroy(sse_server *sse);
int sse_set_limits(sse_server *sse, const sse_limits *limits);
struct lws_protocols sse_protocol(sse_server *sse);
/* The /sse mount (LWSMPRO_CALLBACK to this protocol), chained before next. */
const struct lws_http_mount *sse_mount(sse_server *sse, const struct lws_http_mount *next);
/* Heartbeats and stalled readers; call periodically (every few hundred ms). */
void sse_sweep(sse_server *sse);
/* End every stream (server going away). */
void sse_shutdown(sse_server *sse);
const sse_stats *sse_get_stats(const sse_server *sse);

#endif
