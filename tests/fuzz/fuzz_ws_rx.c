/* fuzz_ws_rx.c — libFuzzer over WebSocket message reassembly (ws_rx.h).
 * The input is a script of pieces as lws would deliver them: per piece a
 * flags byte (bit 0 final fragment, bit 1 binary, bits 2-7 how much of the
 * frame is still to come), a length byte, then that many bytes. Checked:
 * the bytes held always equal the buffer's capacity and never exceed the
 * limit, a handed-out message is within the limit and valid UTF-8, and an
 * idle reassembler holds nothing. */
#define CHECK(c) ((c) ? (void)0 : __builtin_trap())
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/util.h"
#include "tickerd/ws_rx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint32_t limit = 1 + data[0] * 4u; /* 1..1021 bytes */
    uint64_t held = 0;
    ws_rx rx;
    ws_rx_init(&rx, &held);
    size_t pos = 1;
    while (pos + 2 <= size) {
        uint8_t flags = data[pos], len = data[pos + 1];
        pos += 2;
        if (len > size - pos)
            len = (uint8_t)(size - pos);
        char *piece = malloc(len ? len : 1); /* exact size: ASan catches over-reads */
        if (!piece)
            break;
        memcpy(piece, data + pos, len);
        pos += len;
        ws_rx_piece p = {
            .data = piece,
            .len = len,
            .frame_remaining = (size_t)(flags >> 2) * 16,
            .final_fragment = flags & 1,
            .binary = (flags >> 1) & 1,
        };
        const char *msg = NULL;
        size_t msg_len = 0;
        ws_rx_result r = ws_rx_feed(&rx, &p, limit, &msg, &msg_len);
        CHECK(held == rx.cap && rx.cap <= limit);
        if (r == WS_RX_MESSAGE) {
            uint32_t st = 0;
            CHECK(msg_len <= limit);
            CHECK(tk_utf8_feed(&st, (const unsigned char *)msg, msg_len) == 0 && st == 0);
            ws_rx_consumed(&rx);
            CHECK(held == 0);
        }
        if (r != WS_RX_MORE)
            CHECK(!rx.in_msg && held == 0);
        free(piece);
    }
    ws_rx_free(&rx);
    CHECK(held == 0);
    return 0;
}
