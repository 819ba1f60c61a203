/* test_eio_parse.c — the Engine.IO / Socket.IO packet codecs (eio_parse.h)
 * on the wire examples of the specs and on malformed input. */
#include <string.h>

#include "check.h"
#include "tickerd/eio_parse.h"

#define S(x) x, strlen(x)

static void test_eio_packet(void)
{
    const char *d;
    size_t dl;
    CHECK(eio_packet_parse(S("4hello"), &d, &dl) == EIO_MESSAGE && dl == 5 && !memcmp(d, "hello", 5));
    CHECK(eio_packet_parse(S("2probe"), &d, &dl) == EIO_PING && dl == 5);
    CHECK(eio_packet_parse(S("3"), &d, &dl) == EIO_PONG && dl == 0);
    CHECK(eio_packet_parse(S("6"), &d, &dl) == EIO_NOOP);
    CHECK(eio_packet_parse(S("7"), &d, &dl) == -1);
    CHECK(eio_packet_parse(S("bAQID"), &d, &dl) == -1);
    CHECK(eio_packet_parse("", 0, &d, &dl) == -1);
}

static void test_payload(void)
{
    const char *p = "4hello\x1e" "2\x1e" "4world";
    size_t pos = 0, n;
    const char *pkt;
    int count = 0;
    while (eio_payload_next(p, strlen(p), &pos, &pkt, &n)) {
        if (count == 0)
            CHECK(n == 6 && !memcmp(pkt, "4hello", 6));
        if (count == 1)
            CHECK(n == 1 && pkt[0] == '2');
        if (count == 2)
            CHECK(n == 6 && !memcmp(pkt, "4world", 6));
        count++;
    }
    CHECK(count == 3);
    pos = 0;
    CHECK(eio_payload_next("", 0, &pos, &pkt, &n) == 0);
    /* a trailing separator leaves an empty (invalid) record */
    pos = 0;
    count = 0;
    while (eio_payload_next(S("3\x1e"), &pos, &pkt, &n))
        count++;
    CHECK(count == 2);
}

static void test_sio(void)
{
    sio_packet p;
    CHECK(sio_packet_parse(S("0"), &p) == 0 && p.type == SIO_CONNECT && p.nsp_len == 1 && p.data_len == 0);
    CHECK(sio_packet_parse(S("0{\"token\":\"123\"}"), &p) == 0 && p.data_len == 15);
    CHECK(sio_packet_parse(S("0/admin,"), &p) == 0 && p.nsp_len == 6 && !memcmp(p.nsp, "/admin", 6));
    CHECK(sio_packet_parse(S("0/random"), &p) == 0 && p.nsp_len == 7);
    CHECK(sio_packet_parse(S("2[\"hello\",1]"), &p) == 0 && p.type == SIO_EVENT && p.ack_id == -1);
    CHECK(sio_packet_parse(S("213[\"subscribe\",[\"BTC-USD\"]]"), &p) == 0 && p.ack_id == 13 &&
          p.data[0] == '[');
    CHECK(sio_packet_parse(S("2/admin,456[\"x\"]"), &p) == 0 && p.ack_id == 456 && p.nsp_len == 6);
    CHECK(sio_packet_parse(S("3/admin,13[\"bar\"]"), &p) == 0 && p.type == SIO_ACK && p.ack_id == 13);
    CHECK(sio_packet_parse(S("1"), &p) == 0 && p.type == SIO_DISCONNECT);
    CHECK(sio_packet_parse(S("51-[\"baz\",{\"_placeholder\":true,\"num\":0}]"), &p) == 0 &&
          p.attachments == 1);
    /* malformed */
    CHECK(sio_packet_parse(S("2abc[\"x\"]"), &p) == -1);
    CHECK(sio_packet_parse(S("2"), &p) == -1);
    CHECK(sio_packet_parse(S("2{}"), &p) == -1);
    CHECK(sio_packet_parse(S("3[]"), &p) == -1);
    CHECK(sio_packet_parse(S("1x"), &p) == -1);
    CHECK(sio_packet_parse(S("0[]"), &p) == -1);
    CHECK(sio_packet_parse(S("511-[\"x\"]"), &p) == -1);
    CHECK(sio_packet_parse(S("5[\"x\"]"), &p) == -1);
    CHECK(sio_packet_parse(S("9"), &p) == -1);
    CHECK(sio_packet_parse("", 0, &p) == -1);
    CHECK(sio_packet_parse(S("21234567890123456[\"x\"]"), &p) == -1);
}

int main(void)
{
    RUN(test_eio_packet);
    RUN(test_payload);
    RUN(test_sio);
    return check_done();
}
