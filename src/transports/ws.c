/* ws.c — see ws.h.
 *
 * A transport over the session layer (session.h): it reassembles client
 * messages and hands them to sess_request(), and frames what sess_next()
 * gives as WebSocket messages, one write per WRITEABLE; while anything
 * remains it asks for another WRITEABLE. Keepalive pings, stall detection
 * and the lingering close are its own. */
#include "tickerd/ws.h"

#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <stddef.h>
#include <sys/ioctl.h>

#include "tickerd/gate.h"
#include "tickerd/log.h"
#include "tickerd/util.h"
#include "tickerd/ws_rx.h"

#define WS_LINGER_US 1000000   /* longest wait for a closing peer to go quiet */
#define WS_LINGER_POLL_US 10000
#define WS_LINGER_QUIET_US 20000 /* ... and for it to have sent nothing for this long */

typedef struct ws_session ws_session;

struct ws_server {
    sess_server *srv;
    uint32_t sweeps;
    ws_limits limits;
    ws_stats stats;
    ws_session *sessions; /* every open connection, for sweep and shutdown */
    int shutting_down;
};

struct ws_session {
    struct lws *wsi;
    ws_server *ws;
    sess *sess; /* NULL for a connection refused at max_connections */
    ws_session *next, *prev;
    ws_rx rx; /* message reassembly */
    uint8_t rx_paused;
    int64_t want_write_since_us; /* 0 = not waiting for the socket */
    int outq;                    /* unsent bytes in the kernel at the last sweep */
    uint16_t close_code;
    uint8_t close_after_replies; /* send the queued replies before closing */
    const char *close_reason;
    int64_t close_by_us;         /* lingering deadline, see ws_close_now */
    int64_t heard_us;            /* last frame (or pong) from the peer: keepalive */
    uint8_t ping_due, ping_sent;
    /* Control-frame accounting (ws_count_control_frames). */
    uint64_t tcp_base;        /* bytes the kernel had received at ESTABLISHED (the handshake) */
    uint64_t wire_in;         /* wire bytes of the data frames and pongs lws delivered */
    uint64_t control_charged; /* bytes already counted as control frames */
    size_t frame_left;        /* payload of the current data frame still to come */
};

const ws_stats *ws_get_stats(const ws_server *ws) { return &ws->stats; }

ws_server *ws_create(sess_server *srv, const ws_limits *limits)
{
    ws_server *ws = calloc(1, sizeof(*ws));
    if (!ws)
        return NULL;
    ws->srv = srv;
    sess_count_error(srv, "ws", NULL); /* tickerd_clients{transport="ws"} from the start */
    ws_set_limits(ws, limits);
    return ws;
}

void ws_destroy(ws_server *ws) { free(ws); }

int ws_set_limits(ws_server *ws, const ws_limits *limits)
{
    ws->limits = *limits;
    return 0;
}

/* ---- writing ---- */

static void ws_request_write(ws_session *s)
{
    if (!s->want_write_since_us)
        s->want_write_since_us = tk_mono_us();
    lws_callback_on_writable(s->wsi);
}

static void ws_close(ws_session *s, uint16_t code, const char *reason, int after_replies)
{
    if (s->close_code)
        return;
    s->close_code = code;
    s->close_after_replies = (uint8_t)after_replies;
    s->close_reason = reason;
    s->close_by_us = tk_mono_us() + WS_LINGER_US;
    /* Keep reading (and discarding) what the peer still sends: closing a
     * socket with unread input makes the kernel answer with a reset, which
     * destroys the replies and the close frame on their way to the peer. */
    if (s->rx_paused) {
        s->rx_paused = 0;
        lws_rx_flow_control(s->wsi, 1);
    }
    lws_callback_on_writable(s->wsi);
}

/* ---- the session's side of the transport ---- */

static void ws_t_want_write(void *arg) { ws_request_write(arg); }

static void ws_t_rx_flow(void *arg, int enable)
{
    ws_session *s = arg;
    if (s->close_code || s->rx_paused == !enable)
        return;
    s->rx_paused = (uint8_t)!enable;
    lws_rx_flow_control(s->wsi, enable);
}

/* The session gives up on the client: its errors go out, then the close. */
static void ws_t_close(void *arg, uint16_t code, const char *reason)
{
    ws_close(arg, code, reason, 1);
}

static const sess_transport ws_transport = {
    .name = "ws",
    .want_write = ws_t_want_write,
    .rx_flow = ws_t_rx_flow,
    .close = ws_t_close,
};

/* Close with the chosen code, or return 0 to try again shortly. lws sends
 * the close frame and closes the socket soon after (at once, or when the
 * peer's next frame arrives instead of its close); if the peer's input is
 * still unread then, the kernel answers with a reset and the peer loses the
 * replies and the close frame in flight. So first linger, reading and
 * discarding, until the input is drained and the peer has been quiet for
 * WS_LINGER_QUIET_US (a client pipelining a burst of requests is still
 * sending), or WS_LINGER_US has passed (as nginx's lingering_close does). */
static int ws_close_now(ws_session *s)
{
    int unread = 0;
    int64_t now = tk_mono_us();
    if (now < s->close_by_us &&
        (now - s->heard_us < WS_LINGER_QUIET_US ||
         (!ioctl(lws_get_socket_fd(s->wsi), FIONREAD, &unread) && unread > 0))) {
        lws_set_timer_usecs(s->wsi, WS_LINGER_POLL_US);
        return 0;
    }
    const char *reason = s->close_reason ? s->close_reason : "";
    lws_close_reason(s->wsi, (enum lws_close_status)s->close_code, (unsigned char *)reason,
                     strlen(reason));
    return -1;
}

static int ws_writeable(ws_session *s)
{
    ws_server *ws = s->ws;
    if (s->close_code && !(s->close_after_replies && s->sess && sess_replies_pending(s->sess)))
        return ws_close_now(s);
    s->want_write_since_us = 0;
    size_t len = 0;
    sess_out out;
    if (s->ping_due) {
        /* A payload, because lws 4.1.6 does not report an empty pong. */
        unsigned char ping[LWS_PRE + 4] = {[LWS_PRE] = 't', 'k', 'd', 'p'};
        s->ping_due = 0;
        s->ping_sent = 1;
        if (lws_write(s->wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 4)
            return -1;
    } else if (s->sess && sess_next(s->sess, &out) != SESS_OUT_NONE) {
        /* out.data has SESS_HEADROOM (LWS_PRE) bytes in front: write in place. */
        len = out.len;
        enum lws_write_protocol type = out.binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT;
        if (lws_write(s->wsi, (unsigned char *)out.data, len, type) < (int)len)
            return -1;
    }
    ws->stats.bytes_out += len;
    if (s->sess && sess_has_pending(s->sess))
        ws_request_write(s);
    else if (s->close_code)
        lws_callback_on_writable(s->wsi); /* replies flushed: now close */
    return 0;
}

/* ---- control frames ----
 *
 * lws 4.1.6 answers pings itself and tells the protocol nothing about them,
 * yet a ping flood costs a write per ping. So they are counted from the
 * outside: the kernel's count of bytes received on the connection, minus
 * the bytes not read yet, minus the wire size of every data frame and pong
 * lws delivered, is what went into control frames; each 6 bytes of it (the
 * smallest client ping: 2 header bytes and the 4-byte mask) count as one
 * frame against the message rate. That over-counts pings that carry a
 * payload, which only a flood sends in numbers. (With permessage-deflate
 * the delivered bytes are inflated ones, so pings there go uncounted.) */
#define WS_CLIENT_FRAME_HEADER 6 /* 2 bytes + the mask, payloads under 126 bytes */
#define WS_CONTROL_EVERY 4       /* sweeps: each connection is looked at once a second */

static void ws_count_data_frame(ws_session *s, size_t len)
{
    size_t remaining = lws_remaining_packet_payload(s->wsi);
    if (!s->frame_left) { /* the first piece of a frame: its header too */
        size_t total = len + remaining;
        s->wire_in += WS_CLIENT_FRAME_HEADER + (total < 126 ? 0 : total < 65536 ? 2 : 8);
    }
    s->wire_in += len;
    s->frame_left = remaining;
}

/* Bytes the kernel has received on the connection and lws has read (0 when
 * unknown); also checking the unread part costs a second call, so only
 * when there is something to explain (read_at_least). */
static uint64_t ws_bytes_read(ws_session *s, uint64_t read_at_least)
{
    int fd = lws_get_socket_fd(s->wsi);
    struct tcp_info ti;
    socklen_t tl = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) ||
        tl < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
        return 0;
    uint64_t got = ti.tcpi_bytes_received;
    if (got - s->tcp_base <= read_at_least && read_at_least)
        return got;
    int unread = 0;
    if (ioctl(fd, SIOCINQ, &unread) || unread < 0)
        unread = 0;
    return got - (uint64_t)unread;
}

static void ws_count_control_frames(ws_session *s)
{
    if (!s->sess || s->close_code || s->rx_paused || !s->tcp_base)
        return;
    uint64_t explained = s->wire_in + s->control_charged;
    uint64_t read = ws_bytes_read(s, explained);
    if (read < s->tcp_base || read - s->tcp_base <= explained)
        return;
    uint64_t frames = (read - s->tcp_base - explained) / WS_CLIENT_FRAME_HEADER;
    if (!frames)
        return;
    s->control_charged += frames * WS_CLIENT_FRAME_HEADER;
    sess_control_frames(s->sess, frames > UINT32_MAX ? UINT32_MAX : (uint32_t)frames);
}

static void ws_receive(ws_session *s, const char *in, size_t len)
{
    ws_server *ws = s->ws;
    ws_rx_piece piece = {
        .data = in,
        .len = len,
        .frame_remaining = lws_remaining_packet_payload(s->wsi),
        .final_fragment = (uint8_t)lws_is_final_fragment(s->wsi),
        .binary = (uint8_t)lws_frame_is_binary(s->wsi),
    };
    const char *msg;
    size_t msg_len;
    switch (ws_rx_feed(&s->rx, &piece, ws->limits.max_message_bytes, &msg, &msg_len)) {
    case WS_RX_MORE:
        break;
    case WS_RX_MESSAGE:
        sess_request(s->sess, msg, msg_len);
        ws_rx_consumed(&s->rx);
        break;
    case WS_RX_TOO_LARGE:
        sess_error(s->sess, SESS_ERR_MESSAGE_TOO_LARGE,
                   "message larger than limits.max_message_bytes; discarded");
        break;
    case WS_RX_NOMEM:
        sess_error(s->sess, SESS_ERR_INTERNAL, "out of memory; message discarded");
        break;
    case WS_RX_BINARY:
        sess_error(s->sess, SESS_ERR_BINARY_NOT_SUPPORTED,
                   "binary frames are not supported; send JSON text");
        break;
    case WS_RX_BAD_UTF8:
        /* RFC 6455 §8.1: 1007, after the error reply says why. */
        ws->stats.utf8_closes++;
        sess_count_error(ws->srv, "ws", "bad_utf8");
        sess_error(s->sess, SESS_ERR_BAD_JSON, "text frame is not valid UTF-8; closing (1007)");
        ws_close(s, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "invalid UTF-8", 1);
        break;
    }
}

/* ---- connection lifecycle ---- */

static void ws_link(ws_session *s)
{
    ws_server *ws = s->ws;
    s->next = ws->sessions;
    if (s->next)
        s->next->prev = s;
    ws->sessions = s;
    ws->stats.sessions++;
}

static void ws_unlink(ws_session *s)
{
    ws_server *ws = s->ws;
    if (s->prev)
        s->prev->next = s->next;
    else
        ws->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    ws->stats.sessions--;
}

static int ws_path_ok(struct lws *wsi)
{
    char uri[64];
    int n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
    return n == 3 && !memcmp(uri, "/ws", 3);
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    ws_session *s = user;
    const struct lws_protocols *proto = lws_get_protocol(wsi);
    ws_server *ws = proto ? proto->user : NULL;

    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        /* Every upgrade, /socket.io/ ones too: Origin (and a /ws token)
         * before the 101, so a refusal is an HTTP status with a body. */
        return ws ? gate_upgrade(sess_gate(ws->srv), wsi) : 0;

    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* (the Origin again: an upgrade that reached here unchecked) */
        return ws_path_ok(wsi) && (!ws || !sess_gate(ws->srv) ||
                                   gate_origin_ok(sess_gate(ws->srv), wsi, GATE_T_WS))
                   ? 0
                   : 1;

    case LWS_CALLBACK_CONFIRM_EXTENSION_OKAY:
        /* Clients offer permessage-deflate unasked (browsers always): take
         * it only when configured. Asked per connection during the
         * handshake (user is not set up yet), so a reload applies to the
         * next connections. Nonzero refuses. */
        return ws && ws->limits.permessage_deflate && !strcmp(in, "permessage-deflate") ? 0 : 1;

    case LWS_CALLBACK_ESTABLISHED:
        memset(s, 0, sizeof(*s));
        s->wsi = wsi;
        s->ws = ws;
        s->heard_us = tk_mono_us();
        ws_rx_init(&s->rx, &ws->stats.rx_bytes_held);
        s->tcp_base = ws_bytes_read(s, 0);
        /* Linked before anything can fail: CLOSED follows ESTABLISHED always
         * and unlinks. Refused connections linger until closed but do not
         * count against the limit (bcast's client count is the live one). */
        ws_link(s);
        if (ws->shutting_down) {
            ws_close(s, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down", 0);
            return 0;
        }
        if (sess_full(ws->srv)) {
            ws->stats.connections_rejected++;
            sess_count_error(ws->srv, "ws", "server_full");
            ws_close(s, SESS_CLOSE_TRY_AGAIN_LATER, "server full", 0);
            return 0;
        }
        /* The subprotocol the client named chose the encoding (ws_protocol). */
        s->sess = sess_create(ws->srv, &ws_transport, s, (bcast_enc)proto->id);
        if (!s->sess)
            return -1;
        sess_set_peer_fd(s->sess, lws_get_socket_fd(wsi));
        if (sess_auth_required(ws->srv)) {
            /* a token in the request (checked before the upgrade, verified
             * again to start the session); without one the first message
             * must be {"op":"auth"} (docs/protocol.md#authentication) */
            char tok[GATE_TOKEN_BUF];
            int n = gate_token(wsi, tok, sizeof(tok));
            int why = n < 0 ? AUTH_E_MALFORMED : n ? sess_authenticate(s->sess, tok, (size_t)n) : 0;
            if (n < 0)
                auth_count_failure(gate_auth(sess_gate(ws->srv)), AUTH_E_MALFORMED);
            if (why)
                sess_auth_refused(s->sess, why);
        }
        return 0;

    case LWS_CALLBACK_RECEIVE:
        s->heard_us = tk_mono_us();
        s->ping_sent = 0;
        ws_count_data_frame(s, len);
        if (!s->close_code && s->sess)
            ws_receive(s, in, len);
        return 0;

    case LWS_CALLBACK_RECEIVE_PONG:
        s->heard_us = tk_mono_us();
        s->ping_sent = 0;
        s->wire_in += WS_CLIENT_FRAME_HEADER + len;
        return 0;

    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ws_writeable(s);

    case LWS_CALLBACK_TIMER: /* lingering before a close: look again */
        lws_callback_on_writable(wsi);
        return 0;

    case LWS_CALLBACK_CLOSED:
        if (!s->ws)
            return 0;
        ws_unlink(s);
        sess_destroy(s->sess);
        ws_rx_free(&s->rx);
        memset(s, 0, sizeof(*s));
        return 0;

    default:
        /* As the vhost's default protocol this one also inherits keep-alive
         * HTTP connections between transactions: let lws serve them. */
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

struct lws_protocols ws_protocol(ws_server *ws, bcast_enc enc)
{
    struct lws_protocols p = {
        .name = enc == BCAST_ENC_BIN ? WS_PROTOCOL_BIN : WS_PROTOCOL_NAME,
        .callback = ws_callback,
        .per_session_data_size = sizeof(ws_session),
        .rx_buffer_size = WS_RX_BUFFER_SIZE,
        /* Without it lws 4.1.6 caps every send() at rx_buffer_size (+ 20):
         * a 2 KB frame went out in 8 sends of 276 bytes, the rest copied to
         * lws' buflist, one more poll() pass per piece (issue 13). With it a
         * frame is one send(); a socket that takes only part of it leaves
         * the rest in the buflist as before (bounded: one frame). */
        .tx_packet_size = WS_TX_PACKET_SIZE,
        .id = enc,
        .user = ws,
    };
    return p;
}

const struct lws_extension *ws_extensions(void)
{
    /* One zlib stream per connection that negotiates it: CPU and memory per
     * client, measured in docs/performance.md#encodings. */
    static const struct lws_extension exts[] = {
        {"permessage-deflate", lws_extension_callback_pm_deflate,
         "permessage-deflate; client_no_context_takeover; client_max_window_bits"},
        {NULL, NULL, NULL},
    };
    return exts;
}

/* Keepalive, ours rather than lws' validity timers: lws 4.1.6 keeps those in
 * one sorted list and re-inserts a connection's timer as it is confirmed, an
 * O(connections) walk that cost 13 % of the CPU at 10k clients. Here it is
 * one comparison per connection per sweep. A peer silent for ping_interval
 * is pinged; silent (no pong either) for twice that, it is gone. */
static void ws_keepalive(ws_session *s, int64_t now, int64_t interval)
{
    if (!interval || s->close_code || now - s->heard_us < interval)
        return;
    if (now - s->heard_us >= 2 * interval) {
        s->ws->stats.ping_timeouts++;
        sess_count_error(s->ws->srv, "ws", "no_pong");
        s->close_code = LWS_CLOSE_STATUS_GOINGAWAY;
        s->close_reason = "no pong";
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    } else if (!s->ping_sent && !s->ping_due) {
        s->ping_due = 1;
        lws_callback_on_writable(s->wsi);
    }
}

void ws_sweep(ws_server *ws)
{
    int64_t now = tk_mono_us();
    int64_t limit = (int64_t)ws->limits.stall_timeout_ms * 1000;
    int64_t ping_us = (int64_t)ws->limits.ping_interval_ms * 1000;
    uint32_t turn = ws->sweeps++ % WS_CONTROL_EVERY, i = 0;
    for (ws_session *s = ws->sessions; s; s = s->next) {
        ws_keepalive(s, now, ping_us);
        if (i++ % WS_CONTROL_EVERY == turn)
            ws_count_control_frames(s);
        if (!s->want_write_since_us)
            continue;
        /* Slow is not stalled: while lws drains a partly sent frame no
         * WRITEABLE comes, so also watch the kernel's send queue shrink --
         * but only once it has waited half the timeout. Under load nearly
         * every connection waits for its turn in the poll pass, and an
         * ioctl per connection per sweep was as many syscalls as the writes
         * themselves at 10k clients (docs/performance.md, issue 13). The
         * first look takes the baseline (-1: none), the next ones compare: a
         * connection is closed once it has waited the whole timeout and taken
         * no bytes for (at least) its second half. */
        if (now - s->want_write_since_us < limit / 2) {
            s->outq = -1;
            continue;
        }
        int outq = 0;
        if (!ioctl(lws_get_socket_fd(s->wsi), SIOCOUTQ, &outq) && s->outq >= 0 && outq < s->outq)
            s->want_write_since_us = now;
        s->outq = outq;
        if (now - s->want_write_since_us < limit)
            continue;
        /* The peer has taken no bytes for (the second half of) the timeout: dead or frozen.
         * Its socket cannot take a close frame either, so drop it now. */
        ws->stats.stall_closes++;
        sess_count_error(ws->srv, "ws", "stalled");
        log_info("ws: closing a stalled connection (nothing accepted for %u ms)",
                 ws->limits.stall_timeout_ms);
        s->want_write_since_us = 0;
        s->close_code = LWS_CLOSE_STATUS_POLICY_VIOLATION;
        s->close_reason = "stalled";
        s->close_after_replies = 0;
        s->close_by_us = 0; /* no lingering: it reads nothing anyway */
        lws_close_reason(s->wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *)"stalled", 7);
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

void ws_shutdown(ws_server *ws)
{
    ws->shutting_down = 1; /* and refuse newcomers the same way */
    for (ws_session *s = ws->sessions; s; s = s->next)
        ws_close(s, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down", 0);
}
