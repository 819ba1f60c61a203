/*
 * ws_rx.h — reassembly of one WebSocket client message from the pieces lws
 * hands to LWS_CALLBACK_RECEIVE, under a size limit, with UTF-8 validation
 * of text messages (RFC 6455 §8.1).
 *
 * Why its own module: it is the part of a transport that hostile input
 * reaches first, so it is kept free of lws and sockets and fuzzed on its
 * own (tests/fuzz/fuzz_ws_rx.c).
 *
 * Memory: a message that arrives in one piece is handed out in place (no
 * copy). Otherwise the buffer grows with the bytes actually received, never
 * with what a frame header announces (a client that declares 1 MiB and
 * sends 3 bytes holds a few bytes), and is freed when the message completes
 * or is discarded. Every byte held is also counted in *held (a gauge shared
 * by the connections of a transport, for /metrics).
 */
#ifndef TICKERD_WS_RX_H
#define TICKERD_WS_RX_H

#include <stddef.h>
#include <stdint.h>

typedef struct ws_rx {
    char *buf;
    uint32_t len, cap;
    uint32_t limit;  /* max message bytes, fixed when the message began (reload-proof) */
    uint32_t utf8;   /* tk_utf8_feed state over the message so far */
    uint8_t in_msg, binary, skip;
    uint64_t *held;  /* bytes held by every ws_rx of the transport; may be NULL */
} ws_rx;

/* One piece as lws delivers it. */
typedef struct ws_rx_piece {
    const char *data;
    size_t len;
    size_t frame_remaining; /* lws_remaining_packet_payload(): bytes of this frame still to come */
    uint8_t final_fragment; /* lws_is_final_fragment() */
    uint8_t binary;         /* lws_frame_is_binary(): meaningful on a message's first piece */
} ws_rx_piece;

typedef enum {
    WS_RX_MORE = 0,     /* the message is not complete yet */
    WS_RX_MESSAGE,      /* *msg, *msg_len: a complete text message, valid until ws_rx_consumed */
    WS_RX_TOO_LARGE,    /* a message over the limit ended (its bytes were discarded) */
    WS_RX_BINARY,       /* a binary message ended (discarded) */
    WS_RX_BAD_UTF8,     /* invalid UTF-8: fail the connection (1007); feed nothing more */
    WS_RX_NOMEM,        /* out of memory: the message was discarded */
} ws_rx_result;

void ws_rx_init(ws_rx *rx, uint64_t *held);
/* One piece; limit (max message bytes) is read when a message begins, so a
 * change applies from the next message on. */
ws_rx_result ws_rx_feed(ws_rx *rx, const ws_rx_piece *piece, uint32_t limit, const char **msg,
                        size_t *msg_len);
/* The message handed out has been handled: frees its buffer. */
void ws_rx_consumed(ws_rx *rx);
/* Frees what is held (call when the connection closes). */
void ws_rx_free(ws_rx *rx);

#endif
