/* fuzz_sio.c — libFuzzer over the Engine.IO / Socket.IO packet codecs
 * (eio_parse.h): the input is a polling payload; each record is decoded as an
 * Engine.IO packet and, for messages, as a Socket.IO packet. ASan/UBSan catch
 * any read outside the input; CHECK (kept under NDEBUG) tests the decoders'
 * promises. */
#define CHECK(c) ((c) ? (void)0 : __builtin_trap())
#include <stddef.h>
#include <stdint.h>

#include "tickerd/eio_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    size_t pos = 0, n, records = 0;
    const char *pkt;
    while (eio_payload_next(in, size, &pos, &pkt, &n)) {
        CHECK(pkt >= in && pkt + n <= in + size);
        CHECK(++records <= size + 1);
        const char *d;
        size_t dl;
        int t = eio_packet_parse(pkt, n, &d, &dl);
        if (t != EIO_MESSAGE)
            continue;
        sio_packet p;
        if (sio_packet_parse(d, dl, &p) == 0) {
            CHECK(p.data >= d && p.data + p.data_len <= d + dl);
            CHECK(p.nsp_len <= SIO_MAX_NSP && p.attachments <= SIO_MAX_ATTACHMENTS);
        }
    }
    return 0;
}
