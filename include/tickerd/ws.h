/*
 * ws.h — the WebSocket transport for the broadcaster (subprotocols
 * "tickerd.json", the default, and "tickerd.bin" at /ws, see docs/protocol.md).
 * The subprotocol picks the encoding of update frames; control messages are
 * JSON text in both.
 *
 * It owns everything per connection that is not conflation: reassembly of
 * client messages under a size limit, the per-connection rate limit and error
 * budget, the small bounded queue of control replies (ack/error), stall
 * detection and closing. Subscriptions and update frames belong to bcast.
 * Runs on the lws service thread only.
 */
#ifndef TICKERD_WS_H
#define TICKERD_WS_H

#include <libwebsockets.h>
#include <stdint.h>

#include "tickerd/bcast.h"

#define WS_PROTOCOL_NAME "tickerd.json"
#define WS_PROTOCOL_BIN "tickerd.bin"
/* Receive buffer per connection: client messages are small; longer ones are
 * reassembled (up to max_message_bytes) in a buffer that exists only while a
 * fragmented message is in flight. */
#define WS_RX_BUFFER_SIZE 256

typedef enum {
    WS_ERR_BAD_JSON = 0,
    WS_ERR_BAD_REQUEST,
    WS_ERR_UNKNOWN_OP,
    WS_ERR_UNKNOWN_SYMBOL,
    WS_ERR_TOO_MANY_SUBSCRIPTIONS,
    WS_ERR_MESSAGE_TOO_LARGE,
    WS_ERR_BINARY_NOT_SUPPORTED,
    WS_ERR_RATE_LIMITED,
    WS_ERR_INTERNAL,
    WS_ERR_BUSY, /* history requests at their limit: retry later */
    WS_ERR_COUNT
} ws_error_code;

typedef struct ws_limits {
    uint32_t max_connections;
    uint32_t max_message_bytes;
    uint32_t max_messages_per_sec;
    uint32_t max_errors;      /* within WS_ERROR_WINDOW_US, then close 1008 */
    uint32_t stall_timeout_ms;
    uint32_t max_frame_bytes; /* largest update frame */
    uint8_t permessage_deflate; /* accept the extension from new connections */
} ws_limits;

typedef struct ws_stats {
    uint64_t messages_in;
    uint64_t errors[WS_ERR_COUNT];
    uint64_t bytes_out;
    uint64_t abuse_closes;          /* closed 1008 for repeated errors */
    uint64_t stall_closes;          /* closed 1008 for accepting nothing */
    uint64_t connections_rejected;  /* closed 1013 at max_connections */
    uint64_t replies_dropped;       /* reply queue overflow (should stay 0) */
    uint32_t sessions;
} ws_stats;

typedef struct ws_server ws_server;

struct hist;
ws_server *ws_create(bcast *b, const ws_limits *limits);
/* History reads for subscribes that ask for "history"; NULL: such a
 * subscribe gets history frames with an error. */
void ws_set_history(ws_server *ws, struct hist *h);
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
const char *ws_error_name(ws_error_code code);

#endif
