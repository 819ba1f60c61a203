/* guard.c — see guard.h. */
#include "tickerd/guard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

/* ---- the check ---- */

static int guard_tchar(unsigned char c)
{
    /* RFC 9110 §5.6.2 token characters */
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int guard_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The request line "METHOD SP target SP HTTP/1.x" in buf[0..n) (n bytes,
 * without the line end when complete). Checks as far as the bytes go, so
 * garbage (a TLS hello on the plain port) is refused at once. Sets *args
 * to the query's '&'/';' count. */
static guard_verdict guard_check_line(const char *buf, size_t n, int complete, int *args)
{
    static const char version[] = "HTTP/1.";
    size_t i = 0;
    while (i < n && i < 32 && guard_tchar((unsigned char)buf[i]))
        i++;
    if (i == n)
        return complete || i >= 32 ? GUARD_BAD_REQUEST : GUARD_INCOMPLETE;
    if (!i || buf[i] != ' ')
        return GUARD_BAD_REQUEST;
    size_t target = ++i;
    *args = 0;
    for (; i < n && buf[i] != ' '; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c < 0x21 || c == 0x7f)
            return GUARD_BAD_REQUEST;
        if (c == '&' || c == ';')
            ++*args;
        if (c != '%')
            continue;
        /* lws decodes %XX while parsing: %00 would end its copy of the
         * path, a non-hex escape it refuses with a bare 403. */
        for (size_t k = 1; k <= 2 && i + k < n; k++)
            if (!guard_hex((unsigned char)buf[i + k]))
                return GUARD_BAD_REQUEST;
        if (i + 2 < n && buf[i + 1] == '0' && buf[i + 2] == '0')
            return GUARD_BAD_REQUEST;
    }
    if (i - target > GUARD_LINE_MAX || (i == n && n > GUARD_LINE_MAX))
        return GUARD_URI_TOO_LONG;
    if (i == n)
        return complete ? GUARD_BAD_REQUEST : GUARD_INCOMPLETE;
    if (i == target)
        return GUARD_BAD_REQUEST;
    i++; /* the SP */
    for (size_t k = 0; k < sizeof(version) - 1; k++, i++)
        if (i == n)
            return complete ? GUARD_BAD_REQUEST : GUARD_INCOMPLETE;
        else if (buf[i] != version[k])
            return GUARD_BAD_REQUEST;
    if (i == n)
        return complete ? GUARD_BAD_REQUEST : GUARD_INCOMPLETE;
    if ((buf[i] != '0' && buf[i] != '1') || i + 1 != n)
        return complete || i + 1 < n ? GUARD_BAD_REQUEST : GUARD_INCOMPLETE;
    if (n > GUARD_LINE_MAX)
        return GUARD_URI_TOO_LONG;
    return complete ? GUARD_PASS : GUARD_INCOMPLETE;
}

/* One header field line (without its line end). */
static guard_verdict guard_check_field(const char *p, size_t n, int *upgrade_ws, int *version13,
                                       int *has_version)
{
    size_t colon = 0;
    while (colon < n && guard_tchar((unsigned char)p[colon]))
        colon++;
    /* no name, a space before the colon, or a folded line (RFC 9112 §5) */
    if (!colon || colon == n || p[colon] != ':')
        return GUARD_BAD_REQUEST;
    const char *v = p + colon + 1, *end = p + n;
    for (const char *c = v; c < end; c++)
        if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
            return GUARD_BAD_REQUEST;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vlen = (size_t)(end - v);
    if (colon == 7 && !strncasecmp(p, "upgrade", 7)) {
        for (size_t k = 0; k + 9 <= vlen; k++)
            if (!strncasecmp(v + k, "websocket", 9))
                *upgrade_ws = 1;
    } else if (colon == 21 && !strncasecmp(p, "sec-websocket-version", 21)) {
        *has_version = 1;
        *version13 = vlen == 2 && !memcmp(v, "13", 2);
    }
    return GUARD_PASS;
}

static const char *guard_eol(const char *p, const char *end)
{
    return memchr(p, '\n', (size_t)(end - p));
}

/* The length of a line up to its '\n', without a CR before it. */
static size_t guard_line_len(const char *start, const char *lf)
{
    size_t n = (size_t)(lf - start);
    return n && start[n - 1] == '\r' ? n - 1 : n;
}

guard_verdict guard_check_head(const char *buf, size_t len, size_t *head_len)
{
    const char *end = buf + len;
    const char *lf = guard_eol(buf, end);
    int args = 0;
    guard_verdict v = guard_check_line(buf, lf ? guard_line_len(buf, lf) : len, lf != NULL, &args);
    if (v != GUARD_PASS)
        return v;
    if (args >= GUARD_FIELDS_MAX)
        return GUARD_URI_TOO_LONG;
    int fields = args, upgrade_ws = 0, version13 = 0, has_version = 0;
    for (const char *p = lf + 1;; p = lf + 1) {
        lf = guard_eol(p, end);
        if (!lf)
            return len > GUARD_HEAD_MAX ? GUARD_FIELDS_TOO_LARGE : GUARD_INCOMPLETE;
        if ((size_t)(lf + 1 - buf) > GUARD_HEAD_MAX)
            return GUARD_FIELDS_TOO_LARGE;
        size_t n = guard_line_len(p, lf);
        if (!n)
            break; /* the blank line: the head is complete */
        if (memchr(p, '\r', n))
            return GUARD_BAD_REQUEST; /* a bare CR inside a line */
        if (++fields > GUARD_FIELDS_MAX)
            return GUARD_FIELDS_TOO_LARGE;
        v = guard_check_field(p, n, &upgrade_ws, &version13, &has_version);
        if (v != GUARD_PASS)
            return v;
    }
    /* RFC 6455 §4.4: name the version spoken instead of accepting 8. */
    if (upgrade_ws && (!has_version || !version13))
        return GUARD_UPGRADE_REQUIRED;
    *head_len = (size_t)(lf + 1 - buf);
    return GUARD_PASS;
}

int guard_status(guard_verdict v)
{
    switch (v) {
    case GUARD_BAD_REQUEST: return 400;
    case GUARD_URI_TOO_LONG: return 414;
    case GUARD_UPGRADE_REQUIRED: return 426;
    case GUARD_FIELDS_TOO_LARGE: return 431;
    default: return 0;
    }
}

const char *guard_reason(guard_verdict v)
{
    switch (v) {
    case GUARD_BAD_REQUEST: return "bad_request";
    case GUARD_URI_TOO_LONG: return "uri_too_long";
    case GUARD_UPGRADE_REQUIRED: return "upgrade_required";
    case GUARD_FIELDS_TOO_LARGE: return "header_fields_too_large";
    default: return "";
    }
}

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
