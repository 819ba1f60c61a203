/* guard.c — see guard.h. */
#include "tickerd/guard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tickerd/log.h"

#define GUARD_LINGER_S 1       /* after answering: read and discard this long, then close */
#define GUARD_REPEEK_US 10000  /* an unfinished head is looked at again after this */

struct guard {
    struct lws_vhost *serving;
    guard_stats stats;
    char peek[GUARD_HEAD_MAX + 1]; /* one look at a head, shared (one thread) */
};

typedef struct guard_conn {
    guard *g;
    size_t len;            /* bytes of head seen so far */
    guard_verdict verdict; /* an error verdict once decided */
    uint8_t pending;       /* counted in stats.pending */
} guard_conn;

/* ---- the connection ----
 *
 * The guard must read the head without consuming it: lws 4.1.6 mishandles
 * a socket adopted with bytes already read when the request has a body (it
 * parses the head a second time as the body and spins). So the accepted
 * raw socket is traded at once for a raw *file* wsi on the same descriptor
 * (a dup), whose POLLIN lws only reports, and the guard looks with
 * MSG_PEEK. A head that passes leaves every byte in the kernel for the
 * serving vhost, which adopts another dup as a fresh connection. */

static int guard_fd(struct lws *wsi) { return lws_get_socket_fd(wsi); }

static void guard_not_pending(guard_conn *c)
{
    if (c->pending) {
        c->pending = 0;
        c->g->stats.pending--;
    }
}

/* The accepted socket, before lws has read anything: hand its descriptor
 * to a raw-file wsi. Returns -1 so lws closes the raw-socket wsi (a raw
 * socket closes without shutdown(), and the dup keeps the connection). */
static int guard_take(struct lws *wsi, guard *g)
{
    int fd = dup(guard_fd(wsi));
    if (fd < 0)
        return -1;
    lws_sock_file_fd_type d = {.filefd = fd};
    if (!lws_adopt_descriptor_vhost(g->serving, LWS_ADOPT_RAW_FILE_DESC, d, GUARD_PROTOCOL_NAME,
                                    NULL)) {
        close(fd);
        log_warn("guard: could not watch an accepted connection");
    }
    return -1;
}

static int guard_answer(struct lws *wsi, guard_conn *c)
{
    static const struct {
        const char *status, *extra, *message;
    } answers[GUARD_VERDICT_COUNT] = {
        [GUARD_BAD_REQUEST] = {"400 Bad Request", "",
                               "malformed request line or header field (control byte, NUL or %00)"},
        [GUARD_URI_TOO_LONG] = {"414 URI Too Long", "",
                                "request line over 4096 bytes or query over 64 arguments"},
        [GUARD_UPGRADE_REQUIRED] = {"426 Upgrade Required",
                                    "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
                                    "WebSocket version 13 only (RFC 6455)"},
        [GUARD_FIELDS_TOO_LARGE] = {"431 Request Header Fields Too Large", "",
                                    "request head over 8192 bytes or 64 fields"},
    };
    char body[200], out[512];
    int blen = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"message\":\"%s\"}\n",
                        guard_reason(c->verdict), answers[c->verdict].message);
    int n = snprintf(out, sizeof(out),
                     "HTTP/1.1 %s\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n"
                     "Connection: close\r\n\r\n%s",
                     answers[c->verdict].status, answers[c->verdict].extra, blen, body);
    /* A few hundred bytes into a socket that has sent nothing: it fits. */
    if (send(guard_fd(wsi), out, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n)
        return -1;
    /* FIN after the answer, then keep reading (and dropping) what the
     * client still sends until it closes or GUARD_LINGER_S passes: closing
     * with unread input would make the kernel reset the connection and the
     * client could lose the answer (nginx's lingering close). */
    shutdown(guard_fd(wsi), SHUT_WR);
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, GUARD_LINGER_S);
    return 0;
}

/* Reads and drops what is there; -1 once the peer has closed. */
static int guard_discard(struct lws *wsi, guard *g)
{
    for (int i = 0; i < 16; i++) {
        ssize_t n = recv(guard_fd(wsi), g->peek, sizeof(g->peek), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return -1;
        if (n < 0)
            return 0;
    }
    return 0;
}

/* A head that passed: the serving vhost adopts the connection as if it had
 * just been accepted; its bytes are all still unread. Returns -1 to close
 * this wsi's own descriptor. */
static int guard_pass(struct lws *wsi, guard_conn *c)
{
    guard *g = c->g;
    guard_not_pending(c);
    g->stats.passed++;
    int fd = dup(guard_fd(wsi));
    if (fd < 0) {
        log_warn("guard: out of descriptors; connection dropped");
        return -1;
    }
    /* On failure lws closes fd itself. */
    if (!lws_adopt_socket_vhost(g->serving, fd))
        log_warn("guard: the serving vhost could not adopt a connection");
    return -1;
}

static int guard_readable(struct lws *wsi, guard_conn *c)
{
    guard *g = c->g;
    if (c->verdict)
        return guard_discard(wsi, g); /* answered: lingering */
    ssize_t n = recv(guard_fd(wsi), g->peek, sizeof(g->peek), MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return -1; /* gone before finishing its head */
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    c->len = (size_t)n;
    size_t head_len = 0;
    guard_verdict v = guard_check_head(g->peek, (size_t)n, &head_len);
    if (v == GUARD_PASS)
        return guard_pass(wsi, c);
    if (v == GUARD_INCOMPLETE) {
        /* Unread bytes keep POLLIN raised: stop watching for a moment
         * rather than spin while the rest of the head is on its way. */
        lws_rx_flow_control(wsi, 0);
        lws_set_timer_usecs(wsi, GUARD_REPEEK_US);
        return 0;
    }
    c->verdict = v;
    g->stats.rejected[v]++;
    guard_not_pending(c);
    if (guard_discard(wsi, g))
        return -1;
    return guard_answer(wsi, c);
}

static int guard_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len)
{
    guard_conn *c = user;
    const struct lws_protocols *proto = lws_get_protocol(wsi);
    guard *g = proto ? proto->user : NULL;
    (void)in;
    (void)len;

    switch (reason) {
    case LWS_CALLBACK_RAW_ADOPT: /* accepted by the listening vhost */
        return g ? guard_take(wsi, g) : -1;
    case LWS_CALLBACK_RAW_ADOPT_FILE:
        memset(c, 0, sizeof(*c));
        c->g = g;
        c->pending = 1;
        g->stats.pending++;
        /* Slowloris: a head trickled byte by byte is cut off here. */
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, GUARD_HEAD_TIMEOUT_S);
        return 0;
    case LWS_CALLBACK_RAW_RX_FILE:
        return c->g ? guard_readable(wsi, c) : -1;
    case LWS_CALLBACK_TIMER: /* look again after a pause */
        if (c->g && !c->verdict)
            lws_rx_flow_control(wsi, 1);
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (!c->g)
            return 0;
        if (c->pending && c->len)
            c->g->stats.head_timeouts++; /* gave up (or timed out) mid-head */
        guard_not_pending(c);
        memset(c, 0, sizeof(*c));
        return 0;
    default:
        return 0;
    }
}

guard *guard_create(void) { return calloc(1, sizeof(guard)); }

void guard_destroy(guard *g) { free(g); }

void guard_set_target(guard *g, struct lws_vhost *serving) { g->serving = serving; }

const guard_stats *guard_get_stats(const guard *g) { return &g->stats; }

struct lws_protocols guard_protocol(guard *g)
{
    struct lws_protocols p = {
        .name = GUARD_PROTOCOL_NAME,
        .callback = guard_callback,
        .per_session_data_size = sizeof(guard_conn),
        .user = g,
    };
    return p;
}
