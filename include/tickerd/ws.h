/*
 * ws.h — the WebSocket transport for the broadcaster (subprotocols
 * "tickerd.json", the default, and "tickerd.bin" at /ws, see docs/protocol.md).
 * The subprotocol picks the encoding of update frames; control messages are
 * JSON text in both.
 *
 * A transport over the session layer (session.h), which owns requests,
 * limits, replies and the bcast client. This owns what is WebSocket:
 * reassembly of client messages under a size limit, framing, keepalive
 * pings, stall detection and the lingering close.
 * Runs on the lws service thread only.
 */
#ifndef TICKERD_WS_H
#define TICKERD_WS_H

#include <libwebsockets.h>
#include <stdint.h>

#include "tickerd/bcast.h"
#include "tickerd/session.h"

#define WS_PROTOCOL_NAME "tickerd.json"
#define WS_PROTOCOL_BIN "tickerd.bin"
/* Receive buffer per connection: client messages are small; longer ones are
 * reassembled (up to max_message_bytes) in a buffer that exists only while a
 * fragmented message is in flight. */
#define WS_RX_BUFFER_SIZE 256
/* Largest single send() lws may try: above any frame (broadcast.max_frame_bytes
 * is at most 16 MiB), so a frame goes to the kernel in one call (ws_protocol). */
#define WS_TX_PACKET_SIZE ((size_t)32 << 20)

typedef struct ws_limits {
    uint32_t max_message_bytes; /* limits.max_message_bytes: reassembly bound */
    uint32_t stall_timeout_ms;
    uint32_t ping_interval_ms; /* ping a peer silent this long; gone after twice it (0 = off) */
    uint8_t permessage_deflate; /* accept the extension from new connections */
} ws_limits;

/* What only this transport counts; request counters are the session
 * layer's (sess_get_stats). */
typedef struct ws_stats {
    uint64_t bytes_out;
    uint64_t stall_closes;          /* closed 1008 for accepting nothing */
    uint64_t connections_rejected;  /* closed 1013 at max_connections */
    uint64_t ping_timeouts;         /* closed: silent, no pong, for twice ping_interval */
    uint64_t utf8_closes;           /* closed 1007: a text message that is not UTF-8 */
    uint64_t rx_bytes_held;         /* gauge: bytes held reassembling unfinished messages */
    uint32_t sessions;
} ws_stats;

typedef struct ws_server ws_server;

/* Sessions (request handling, limits, bcast clients) come from srv. */
ws_server *ws_create(sess_server *srv, const ws_limits *limits);
void ws_destroy(ws_server *ws);
int ws_set_limits(ws_server *ws, const ws_limits *limits);
/* The lws protocol entry for this transport in encoding enc (its .user is
 * ws, its .id enc): one for tickerd.json, one for tickerd.bin. */
struct lws_protocols ws_protocol(ws_server *ws, bcast_enc enc);
/* The vhost's extensions: permessage-deflate, which each connection accepts
 * only while limits.permessage_deflate is set. */
const struct lws_extension *ws_extensions(void);
/* Close stalled peers; call periodically (every few hundred ms). */
void ws_sweep(ws_server *ws);
/* Close every connection with 1001 (server going away). */
void ws_shutdown(ws_server *ws);
const ws_stats *ws_get_stats(const ws_server *ws);

#endif
