/* eio_parse.c — see eio_parse.h. Everything here reads only [s, s+len). */
#include "tickerd/eio_parse.h"

int eio_packet_parse(const char *pkt, size_t len, const char **data, size_t *data_len)
{
    if (!len || pkt[0] < '0' || pkt[0] > '6')
        return -1;
    *data = pkt + 1;
    *data_len = len - 1;
    return pkt[0] - '0';
}

int eio_payload_next(const char *payload, size_t len, size_t *pos, const char **pkt,
                     size_t *pkt_len)
{
    size_t i = *pos;
    if (i > len || (i == len && (len == 0 || payload[len - 1] != EIO_RECORD_SEP)))
        return 0;
    size_t start = i;
    while (i < len && payload[i] != EIO_RECORD_SEP)
        i++;
    *pkt = payload + start;
    *pkt_len = i - start;
    /* past the separator; a payload ending in a separator yields one more
     * (empty) record, which the caller rejects as malformed */
    *pos = i < len ? i + 1 : len + 1;
    return 1;
}

int sio_packet_parse(const char *s, size_t len, sio_packet *out)
{
    size_t i = 0;
    if (!len || s[0] < '0' || s[0] > '6')
        return -1;
    out->type = (sio_type)(s[0] - '0');
    out->nsp = "/";
    out->nsp_len = 1;
    out->ack_id = -1;
    out->attachments = 0;
    i = 1;
    if (out->type == SIO_BINARY_EVENT || out->type == SIO_BINARY_ACK) {
        unsigned n = 0;
        size_t d = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9' && d < 3) {
            n = n * 10 + (unsigned)(s[i] - '0');
            i++;
            d++;
        }
        if (!d || i >= len || s[i] != '-' || n > SIO_MAX_ATTACHMENTS)
            return -1;
        i++;
        out->attachments = n;
    }
    if (i < len && s[i] == '/') {
        /* the namespace runs to ',' or the end ("40/random" has no comma) */
        size_t start = i;
        while (i < len && s[i] != ',')
            i++;
        if (i - start > SIO_MAX_NSP)
            return -1;
        out->nsp = s + start;
        out->nsp_len = i - start;
        if (i < len)
            i++; /* the comma */
    }
    if (i < len && s[i] >= '0' && s[i] <= '9') {
        if (out->type != SIO_EVENT && out->type != SIO_ACK && out->type != SIO_BINARY_EVENT &&
            out->type != SIO_BINARY_ACK)
            return -1;
        int64_t id = 0;
        size_t d = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (++d > 15) /* beyond a JS safe integer */
                return -1;
            id = id * 10 + (s[i] - '0');
            i++;
        }
        out->ack_id = id;
    }
    out->data = s + i;
    out->data_len = len - i;
    switch (out->type) {
    case SIO_CONNECT:
        if (out->data_len && out->data[0] != '{')
            return -1;
        break;
    case SIO_DISCONNECT:
        if (out->data_len)
            return -1;
        break;
    case SIO_EVENT:
    case SIO_BINARY_EVENT:
    case SIO_ACK:
    case SIO_BINARY_ACK:
        if (!out->data_len || out->data[0] != '[')
            return -1;
        if (out->type == SIO_ACK && out->ack_id < 0)
            return -1;
        break;
    case SIO_CONNECT_ERROR:
        if (out->data_len && out->data[0] != '{' && out->data[0] != '"')
            return -1;
        break;
    }
    return 0;
}
