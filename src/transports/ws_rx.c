/* ws_rx.c — see ws_rx.h. */
#include "tickerd/ws_rx.h"

#include <stdlib.h>
#include <string.h>

#include "tickerd/util.h"

#define WS_RX_MIN_CAP 64

enum { WS_RX_SKIP_TOO_LARGE = 1, WS_RX_SKIP_NOMEM = 2 };

void ws_rx_init(ws_rx *rx, uint64_t *held)
{
    memset(rx, 0, sizeof(*rx));
    rx->held = held;
}

static void ws_rx_release(ws_rx *rx)
{
    if (rx->held)
        *rx->held -= rx->cap;
    free(rx->buf);
    rx->buf = NULL;
    rx->cap = rx->len = 0;
}

void ws_rx_free(ws_rx *rx) { ws_rx_release(rx); }

/* Room for extra more bytes: doubling (bounded by the limit, which the
 * caller has already checked len + extra against) keeps a message that
 * arrives in many small pieces linear, not quadratic. */
static int ws_rx_reserve(ws_rx *rx, size_t extra)
{
    size_t need = (size_t)rx->len + extra;
    if (need <= rx->cap)
        return 0;
    size_t cap = rx->cap ? (size_t)rx->cap * 2 : WS_RX_MIN_CAP;
    if (cap < need)
        cap = need;
    if (cap > rx->limit)
        cap = rx->limit;
    char *p = realloc(rx->buf, cap);
    if (!p)
        return -1;
    if (rx->held)
        *rx->held += cap - rx->cap;
    rx->buf = p;
    rx->cap = (uint32_t)cap;
    return 0;
}

ws_rx_result ws_rx_feed(ws_rx *rx, const ws_rx_piece *piece, uint32_t limit, const char **msg,
                        size_t *msg_len)
{
    if (!rx->in_msg) {
        rx->in_msg = 1;
        rx->binary = piece->binary;
        rx->skip = 0;
        rx->len = 0;
        rx->utf8 = 0;
        rx->limit = limit;
    }
    int final = piece->final_fragment && !piece->frame_remaining;

    /* Over the limit as soon as the frame header says so: discard the rest
     * of this message as it arrives, holding nothing. */
    if (!rx->binary && !rx->skip &&
        (uint64_t)rx->len + piece->len + piece->frame_remaining > rx->limit) {
        rx->skip = WS_RX_SKIP_TOO_LARGE;
        ws_rx_release(rx);
    }
    if (rx->binary || rx->skip) {
        if (!final)
            return WS_RX_MORE;
        rx->in_msg = 0;
        return rx->binary ? WS_RX_BINARY : rx->skip == WS_RX_SKIP_NOMEM ? WS_RX_NOMEM : WS_RX_TOO_LARGE;
    }
    if (tk_utf8_feed(&rx->utf8, (const unsigned char *)piece->data, piece->len) ||
        (final && rx->utf8)) {
        /* RFC 6455 §8.1: fail at once, whatever of the message is left. */
        rx->in_msg = 0;
        ws_rx_release(rx);
        return WS_RX_BAD_UTF8;
    }
    if (final && !rx->len) {
        *msg = piece->data; /* the common case: a message in one piece, no copy */
        *msg_len = piece->len;
        rx->in_msg = 0;
        return WS_RX_MESSAGE;
    }
    if (ws_rx_reserve(rx, piece->len)) {
        rx->skip = WS_RX_SKIP_NOMEM;
        ws_rx_release(rx);
        if (!final)
            return WS_RX_MORE;
        rx->in_msg = 0;
        return WS_RX_NOMEM;
    }
    if (piece->len)
        memcpy(rx->buf + rx->len, piece->data, piece->len);
    rx->len += (uint32_t)piece->len;
    if (!final)
        return WS_RX_MORE;
    rx->in_msg = 0;
    *msg = rx->buf;
    *msg_len = rx->len;
    return WS_RX_MESSAGE;
}

void ws_rx_consumed(ws_rx *rx)
{
    if (!rx->in_msg)
        ws_rx_release(rx); /* idle connections hold no buffer */
}
