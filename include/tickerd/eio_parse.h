/*
 * eio_parse.h — the Engine.IO v4 / Socket.IO v5 packet codecs, pure (no I/O,
 * no allocation, no lws), so a libFuzzer target can drive them
 * (tests/fuzz/fuzz_sio.c). Wire facts: docs/protocol.md "Socket.IO".
 *
 * Engine.IO: a packet is one type digit ('0' open .. '6' noop) and data; a
 * polling payload joins packets with '\x1e'. Socket.IO: the data of an
 * Engine.IO message ('4') is <type>[<#attachments>-][<nsp>,][<ackId>][JSON].
 */
#ifndef TICKERD_EIO_PARSE_H
#define TICKERD_EIO_PARSE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    EIO_OPEN = 0,
    EIO_CLOSE,
    EIO_PING,
    EIO_PONG,
    EIO_MESSAGE,
    EIO_UPGRADE,
    EIO_NOOP,
} eio_type;

#define EIO_RECORD_SEP '\x1e'

/* The type of an Engine.IO packet (text form), or -1 when it has none.
 * *data and *data_len receive what follows the type digit. A packet starting
 * with 'b' (base64 binary, polling only) is reported as -1: tickerd accepts
 * no binary from clients. */
int eio_packet_parse(const char *pkt, size_t len, const char **data, size_t *data_len);

/* Walks a polling payload: sets *pkt and *pkt_len to the next packet and
 * advances *pos. Returns 1 while there is a packet, 0 at the end. An empty
 * payload has no packet; an empty record between separators is returned as
 * an empty packet (eio_packet_parse then rejects it). */
int eio_payload_next(const char *payload, size_t len, size_t *pos, const char **pkt,
                     size_t *pkt_len);

typedef enum {
    SIO_CONNECT = 0,
    SIO_DISCONNECT,
    SIO_EVENT,
    SIO_ACK,
    SIO_CONNECT_ERROR,
    SIO_BINARY_EVENT,
    SIO_BINARY_ACK,
} sio_type;

#define SIO_MAX_ATTACHMENTS 10 /* as socket.io-parser's maxAttachments */
#define SIO_MAX_NSP 128

typedef struct sio_packet {
    sio_type type;
    const char *nsp; /* "/" when absent */
    size_t nsp_len;
    int64_t ack_id; /* -1 when absent */
    unsigned attachments;
    const char *data; /* the JSON text (not validated here), may be empty */
    size_t data_len;
} sio_packet;

/* Decodes a Socket.IO packet. Returns 0, or -1 for a malformed one (unknown
 * type, bad attachment count, namespace too long, an ack id with non-digits
 * or too long, data that cannot be what the type needs: CONNECT an object or
 * nothing, EVENT/ACK an array, DISCONNECT nothing). */
int sio_packet_parse(const char *s, size_t len, sio_packet *out);

#endif
