/* guard.c — see guard.h. */
#include "tickerd/guard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tickerd/log.h"
#include "tickerd/util.h"

#define GUARD_LINGER_S 1       /* after answering: read and discard this long, then close */
#define GUARD_REPEEK_US 10000  /* an unfinished head is looked at again after this */
#define GUARD_NONE UINT32_MAX
#define GUARD_PROBE 16         /* slots an address may sit in from its hash */

/* One IPv4 address or IPv6 /64. */
typedef struct guard_addr {
    uint8_t family;    /* 0: empty slot */
    uint8_t key[16];   /* the address (IPv6: its first 64 bits, the rest 0) */
    uint32_t conns;    /* open connections counted under it */
    uint32_t pending;  /* of those, before a complete head */
    double tokens;     /* new-connection bucket */
    int64_t refill_us; /* when tokens were last topped up: also its age for eviction */
} guard_addr;

/* One connection the serving vhost adopted: found again by its wsi when its
 * head completes and when it is destroyed. */
typedef struct guard_track {
    struct lws *wsi;     /* NULL: free, on the free list through hnext */
    uint32_t addr;       /* GUARD_NONE: counted under no address (exempt, proxy) */
    uint32_t hnext;      /* hash chain (or free list) */
    uint32_t prev, next; /* the pending list (TLS: handshake and head), by deadline */
    int64_t deadline_us;
    uint8_t pending;     /* 1 on the pending list, 2 reaped (closing), 0 head complete */
    uint8_t via_proxy;   /* its peer is a trusted proxy: count it under X-Forwarded-For */
} guard_track;

struct guard {
    struct lws_vhost *serving;
    int tls;
    guard_opts opts;
    guard_stats stats;
    guard_addr *addrs;
    uint32_t addr_mask;
    guard_track *tracks;
    uint32_t ntracks, free_track;
    uint32_t *buckets; /* wsi hash → first track */
    uint32_t bucket_mask;
    uint32_t pend_head, pend_tail;
    /* What guard_take hands the raw-file wsi it is creating (RAW_ADOPT_FILE
     * runs inside lws_adopt_descriptor_vhost). */
    uint32_t adopting_addr;
    uint8_t adopting_proxy;
    char peek[GUARD_HEAD_MAX + 1]; /* one look at a head, shared (one thread) */
};

typedef struct guard_conn {
    guard *g;
    size_t len;            /* bytes of head seen so far */
    guard_verdict verdict; /* an error verdict once decided */
    uint8_t pending;       /* counted in stats.pending (and its address's pending) */
    uint8_t via_proxy;
    uint32_t addr;         /* the address it is counted under, or GUARD_NONE */
} guard_conn;

/* ---- addresses ---- */

static uint32_t guard_hash(const uint8_t *p, size_t n, uint32_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u; /* FNV-1a */
    return h;
}

/* The key an address is counted under: IPv6 by /64 (one subscriber's
 * network: anyone with one address has 2^64 of them). */
static void guard_key(int family, const uint8_t addr[16], uint8_t key[16])
{
    memset(key, 0, 16);
    memcpy(key, addr, family == 4 ? 4 : 8);
}

/* The slot of (family, key), taken when absent: an empty slot or the oldest
 * idle one in its probe window. GUARD_NONE when the window is all live. */
static uint32_t guard_addr_get(guard *g, int family, const uint8_t key[16], int64_t now)
{
    uint32_t h = guard_hash(key, 16, 2166136261u ^ (uint32_t)family), take = GUARD_NONE;
    for (uint32_t i = 0; i < GUARD_PROBE; i++) {
        uint32_t k = (h + i) & g->addr_mask;
        guard_addr *a = &g->addrs[k];
        if (a->family == family && !memcmp(a->key, key, 16))
            return k;
        if (a->conns || a->pending)
            continue;
        if (take == GUARD_NONE || !a->family ||
            (g->addrs[take].family && a->refill_us < g->addrs[take].refill_us))
            take = k;
    }
    if (take == GUARD_NONE)
        return GUARD_NONE;
    guard_addr *a = &g->addrs[take];
    memset(a, 0, sizeof(*a));
    a->family = (uint8_t)family;
    memcpy(a->key, key, 16);
    a->tokens = g->opts.burst;
    a->refill_us = now;
    return take;
}

/* A new connection from an address: GUARD_REFUSE_COUNT when it may come in
 * (counted: conns and, with pending, pending), else why not. */
static guard_refusal guard_addr_admit(guard *g, uint32_t k, int pending, int64_t now)
{
    guard_addr *a = &g->addrs[k];
    const guard_opts *o = &g->opts;
    if (o->max_per_address && a->conns >= o->max_per_address)
        return GUARD_REFUSE_PER_ADDRESS;
    if (pending && o->max_pending_per_address && a->pending >= o->max_pending_per_address)
        return GUARD_REFUSE_PENDING_ADDRESS;
    if (o->rate_per_sec) {
        a->tokens += (double)(now - a->refill_us) * o->rate_per_sec / 1e6;
        if (a->tokens > o->burst)
            a->tokens = o->burst;
        a->refill_us = now;
        if (a->tokens < 1)
            return GUARD_REFUSE_RATE;
        a->tokens -= 1;
    } else {
        a->refill_us = now;
    }
    if (!a->conns)
        g->stats.addresses++;
    a->conns++;
    a->pending += pending ? 1 : 0;
    return GUARD_REFUSE_COUNT;
}

static void guard_addr_release(guard *g, uint32_t k, int pending)
{
    if (k == GUARD_NONE)
        return;
    guard_addr *a = &g->addrs[k];
    if (pending && a->pending)
        a->pending--;
    if (a->conns && !--a->conns)
        g->stats.addresses--;
}

static void guard_addr_head_done(guard *g, uint32_t k)
{
    if (k != GUARD_NONE && g->addrs[k].pending)
        g->addrs[k].pending--;
}

/* ---- tracked connections (adopted by the serving vhost) ---- */

static uint32_t guard_wsi_hash(const guard *g, const struct lws *wsi)
{
    uintptr_t v = (uintptr_t)wsi;
    return guard_hash((const uint8_t *)&v, sizeof(v), 2166136261u) & g->bucket_mask;
}

static uint32_t guard_track_find(const guard *g, const struct lws *wsi)
{
    for (uint32_t t = g->buckets[guard_wsi_hash(g, wsi)]; t != GUARD_NONE; t = g->tracks[t].hnext)
        if (g->tracks[t].wsi == wsi)
            return t;
    return GUARD_NONE;
}

static void guard_pend_unlink(guard *g, uint32_t t)
{
    guard_track *e = &g->tracks[t];
    if (e->prev != GUARD_NONE)
        g->tracks[e->prev].next = e->next;
    else
        g->pend_head = e->next;
    if (e->next != GUARD_NONE)
        g->tracks[e->next].prev = e->prev;
    else
        g->pend_tail = e->prev;
    e->prev = e->next = GUARD_NONE;
}

/* Remember wsi; 0, or -1 when every slot is taken (cannot happen while each
 * tracked connection holds a descriptor and capacity is the fd limit). */
static int guard_track_add(guard *g, struct lws *wsi, uint32_t addr, int via_proxy, int pending,
                           int64_t now)
{
    uint32_t t = g->free_track;
    if (t == GUARD_NONE)
        return -1;
    guard_track *e = &g->tracks[t];
    g->free_track = e->hnext;
    memset(e, 0, sizeof(*e));
    e->wsi = wsi;
    e->addr = addr;
    e->via_proxy = (uint8_t)via_proxy;
    e->prev = e->next = GUARD_NONE;
    uint32_t b = guard_wsi_hash(g, wsi);
    e->hnext = g->buckets[b];
    g->buckets[b] = t;
    if (pending) {
        e->pending = 1;
        e->deadline_us = now + (int64_t)g->opts.header_timeout_ms * 1000;
        e->prev = g->pend_tail;
        if (g->pend_tail != GUARD_NONE)
            g->tracks[g->pend_tail].next = t;
        else
            g->pend_head = t;
        g->pend_tail = t;
    }
    return 0;
}

static void guard_track_remove(guard *g, uint32_t t)
{
    guard_track *e = &g->tracks[t];
    uint32_t *p = &g->buckets[guard_wsi_hash(g, e->wsi)];
    while (*p != t)
        p = &g->tracks[*p].hnext;
    *p = e->hnext;
    if (e->pending == 1)
        guard_pend_unlink(g, t);
    if (e->pending)
        g->stats.pending--;
    guard_addr_release(g, e->addr, e->pending != 0);
    e->wsi = NULL;
    e->hnext = g->free_track;
    g->free_track = t;
}

/* ---- accept ---- */

/* What may come in from a peer: its address slot (or GUARD_NONE when it is
 * exempt or a trusted proxy) in *addr; GUARD_REFUSE_COUNT when admitted. */
static guard_refusal guard_admit_peer(guard *g, int fd, uint32_t *addr, uint8_t *via_proxy)
{
    uint8_t peer[16], key[16];
    int family = netlist_peer_addr(fd, peer);
    *addr = GUARD_NONE;
    *via_proxy = 0;
    if (g->opts.max_pending && g->stats.pending >= g->opts.max_pending)
        return GUARD_REFUSE_PENDING;
    if (!family)
        return GUARD_REFUSE_COUNT; /* not an IP peer: nothing to count under */
    if (netlist_match_addr(&g->opts.trusted_proxies, family, peer)) {
        *via_proxy = 1; /* counted under the client it forwards, at its head */
        return GUARD_REFUSE_COUNT;
    }
    if (netlist_match_addr(&g->opts.exempt, family, peer))
        return GUARD_REFUSE_COUNT;
    guard_key(family, peer, key);
    int64_t now = tk_mono_us();
    uint32_t k = guard_addr_get(g, family, key, now);
    if (k == GUARD_NONE)
        return GUARD_REFUSE_TABLE_FULL;
    guard_refusal r = guard_addr_admit(g, k, 1, now);
    if (r == GUARD_REFUSE_COUNT)
        *addr = k;
    return r;
}

/* A refusal at accept over plain HTTP: a short answer written at once and
 * the socket closed (no lingering: a flood is not owed the resources). */
static void guard_refuse_plain(int fd, guard_refusal r)
{
    static const char fmt[] =
        "HTTP/1.1 %s\r\nRetry-After: 1\r\nContent-Type: application/json\r\n"
        "Content-Length: %d\r\nConnection: close\r\n\r\n%s";
    char body[160], out[400];
    int server_wide = r == GUARD_REFUSE_PENDING || r == GUARD_REFUSE_TABLE_FULL;
    int blen = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"message\":\"%s\"}\n",
                        server_wide ? "server_busy" : "too_many_connections",
                        server_wide ? "too many connections in progress; retry"
                                    : "too many connections from this address; retry later");
    int n = snprintf(out, sizeof(out), fmt,
                     server_wide ? "503 Service Unavailable" : "429 Too Many Requests", blen, body);
    if (send(fd, out, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        return; /* it is being closed either way */
}

/* ---- the connection (plain HTTP) ----
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
        guard_addr_head_done(c->g, c->addr);
    }
}

/* TLS: the serving vhost adopts the accepted socket (a dup) at once and
 * does the handshake; the guard keeps its count and deadline. */
static void guard_adopt_tls(guard *g, int fd, uint32_t addr, uint8_t via_proxy)
{
    int64_t now = tk_mono_us();
    g->stats.pending++;
    /* On failure lws closes fd itself (and has destroyed the wsi). */
    struct lws *w = lws_adopt_socket_vhost(g->serving, fd);
    if (!w || guard_track_add(g, w, addr, via_proxy, 1, now)) {
        if (w) /* untracked: it is open but no longer counted */
            log_warn("guard: connection table full; a connection goes uncounted");
        g->stats.pending--;
        guard_addr_release(g, addr, 1);
    }
}

/* The accepted socket, before lws has read anything: count it against its
 * address, then hand its descriptor to a raw-file wsi (plain) or to the
 * serving vhost (TLS). Returns -1 so lws closes the raw-socket wsi (a raw
 * socket closes without shutdown(), and the dup keeps the connection). */
static int guard_take(struct lws *wsi, guard *g)
{
    uint32_t addr;
    uint8_t via_proxy;
    g->stats.accepted++;
    guard_refusal r = guard_admit_peer(g, guard_fd(wsi), &addr, &via_proxy);
    if (r != GUARD_REFUSE_COUNT) {
        g->stats.refused[r]++;
        if (!g->tls)
            guard_refuse_plain(guard_fd(wsi), r);
        return -1;
    }
    int fd = dup(guard_fd(wsi));
    if (fd < 0) {
        guard_addr_release(g, addr, 1);
        return -1;
    }
    if (g->tls) {
        guard_adopt_tls(g, fd, addr, via_proxy);
        return -1;
    }
    g->adopting_addr = addr;
    g->adopting_proxy = via_proxy;
    lws_sock_file_fd_type d = {.filefd = fd};
    struct lws *w = lws_adopt_descriptor_vhost(g->serving, LWS_ADOPT_RAW_FILE_DESC, d,
                                               GUARD_PROTOCOL_NAME, NULL);
    if (!w) {
        close(fd);
        /* RAW_ADOPT_FILE took the count only if it ran (then CLOSE_FILE gave it back) */
        if (g->adopting_addr != GUARD_NONE)
            guard_addr_release(g, addr, 1);
        log_warn("guard: could not watch an accepted connection");
    }
    g->adopting_addr = GUARD_NONE;
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
        [GUARD_FIELDS_TOO_LARGE] = {"431 Request Header Fields Too Large", "", NULL},
    };
    char body[200], out[512], msg[80];
    const char *message = answers[c->verdict].message;
    if (!message) {
        snprintf(msg, sizeof(msg), "request head over %u bytes or 64 fields",
                 c->g->opts.max_header_bytes);
        message = msg;
    }
    int blen = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"message\":\"%s\"}\n",
                        guard_reason(c->verdict), message);
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
 * just been accepted; its bytes are all still unread. Its address count
 * goes with it. Returns -1 to close this wsi's own descriptor. */
static int guard_pass(struct lws *wsi, guard_conn *c)
{
    guard *g = c->g;
    guard_not_pending(c);
    g->stats.passed++;
    uint32_t addr = c->addr;
    c->addr = GUARD_NONE; /* from here the tracked wsi (or this function) gives it back */
    int fd = dup(guard_fd(wsi));
    if (fd < 0) {
        log_warn("guard: out of descriptors; connection dropped");
        guard_addr_release(g, addr, 0);
        return -1;
    }
    /* On failure lws closes fd itself. */
    struct lws *w = lws_adopt_socket_vhost(g->serving, fd);
    if (!w) {
        log_warn("guard: the serving vhost could not adopt a connection");
        guard_addr_release(g, addr, 0);
    } else if (guard_track_add(g, w, addr, c->via_proxy, 0, 0)) {
        log_warn("guard: connection table full; a connection goes uncounted");
        guard_addr_release(g, addr, 0);
    }
    return -1;
}

static int guard_readable(struct lws *wsi, guard_conn *c)
{
    guard *g = c->g;
    if (c->verdict)
        return guard_discard(wsi, g); /* answered: lingering */
    size_t want = g->opts.max_header_bytes + 1;
    ssize_t n = recv(guard_fd(wsi), g->peek, want, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return -1; /* gone before finishing its head */
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    c->len = (size_t)n;
    size_t head_len = 0;
    guard_verdict v = guard_check_head_max(g->peek, (size_t)n, g->opts.max_header_bytes, &head_len);
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
        c->addr = g->adopting_addr;
        c->via_proxy = g->adopting_proxy;
        g->adopting_addr = GUARD_NONE; /* taken: CLOSE_FILE gives it back */
        g->stats.pending++;
        /* Slowloris: a head trickled byte by byte is cut off here. */
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK,
                        (int)((g->opts.header_timeout_ms + 999) / 1000));
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
        guard_addr_release(c->g, c->addr, 0);
        memset(c, 0, sizeof(*c));
        return 0;
    default:
        return 0;
    }
}

/* ---- the serving vhost's side ---- */

/* The client a trusted proxy forwards: the rightmost X-Forwarded-For entry
 * that is not itself a trusted proxy (the ones left of it are whatever the
 * client claimed). 0 when the header is absent or names no address. */
static int guard_forwarded(guard *g, struct lws *wsi, uint8_t addr[16])
{
    char xff[512];
    int n = lws_hdr_copy(wsi, xff, sizeof(xff), WSI_TOKEN_X_FORWARDED_FOR);
    if (n <= 0)
        return 0;
    int family = 0;
    for (char *end = xff + n; end > xff;) {
        char *start = end;
        while (start > xff && start[-1] != ',')
            start--;
        char item[NETLIST_ADDR_TEXT + 8];
        const char *s = start, *e = end;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        end = start > xff ? start - 1 : xff;
        if ((size_t)(e - s) >= sizeof(item))
            return family;
        memcpy(item, s, (size_t)(e - s));
        item[e - s] = 0;
        uint8_t a[16];
        int f = netlist_parse_addr(item, a);
        if (!f)
            return family; /* garbage (or a port): stop at what is known */
        memcpy(addr, a, 16);
        family = f;
        if (!netlist_match_addr(&g->opts.trusted_proxies, f, a))
            return f;
    }
    return family;
}

static int guard_head_done(guard *g, struct lws *wsi)
{
    uint32_t t = guard_track_find(g, wsi);
    if (t == GUARD_NONE)
        return 0; /* not adopted through the guard, or a later request */
    guard_track *e = &g->tracks[t];
    if (e->pending == 1) {
        guard_pend_unlink(g, t);
        e->pending = 0;
        g->stats.pending--;
        guard_addr_head_done(g, e->addr);
    }
    if (!e->via_proxy) {
        /* Anyone can write the header: from a peer not trusted it is noted
         * and not believed. */
        if (lws_hdr_total_length(wsi, WSI_TOKEN_X_FORWARDED_FOR) > 0)
            g->stats.forwarded_ignored++;
        return 0;
    }
    if (e->addr != GUARD_NONE)
        return 0; /* counted at its first request already */
    uint8_t client[16], key[16];
    int family = guard_forwarded(g, wsi, client);
    if (!family || netlist_match_addr(&g->opts.exempt, family, client))
        return 0;
    guard_key(family, client, key);
    int64_t now = tk_mono_us();
    uint32_t k = guard_addr_get(g, family, key, now);
    guard_refusal r = k == GUARD_NONE ? GUARD_REFUSE_TABLE_FULL : guard_addr_admit(g, k, 0, now);
    if (r != GUARD_REFUSE_COUNT) {
        g->stats.refused[r]++;
        return -1;
    }
    e->addr = k;
    g->stats.forwarded++;
    return 0;
}

int guard_front(guard *g, struct lws *wsi, enum lws_callback_reasons reason)
{
    if (!g)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return guard_head_done(g, wsi);
    case LWS_CALLBACK_WSI_DESTROY: {
        uint32_t t = guard_track_find(g, wsi);
        if (t != GUARD_NONE)
            guard_track_remove(g, t);
        return 0;
    }
    default:
        return 0;
    }
}

void guard_sweep(guard *g)
{
    int64_t now = tk_mono_us();
    while (g->pend_head != GUARD_NONE && g->tracks[g->pend_head].deadline_us <= now) {
        uint32_t t = g->pend_head;
        guard_pend_unlink(g, t);
        g->tracks[t].pending = 2; /* counted as pending until it is gone */
        g->stats.head_timeouts++;
        lws_set_timeout(g->tracks[t].wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

/* ---- life ---- */

static uint32_t guard_pow2(size_t n)
{
    uint32_t p = 1024;
    while (p < n && p < (1u << 24))
        p <<= 1;
    return p;
}

guard *guard_create(size_t capacity, const guard_opts *opts)
{
    guard *g = calloc(1, sizeof(guard));
    if (!g)
        return NULL;
    if (capacity < 1024)
        capacity = 1024;
    if (capacity > (1u << 22))
        capacity = 1u << 22;
    uint32_t naddr = guard_pow2(capacity * 2), nb = guard_pow2(capacity);
    g->addrs = calloc(naddr, sizeof(*g->addrs));
    g->tracks = calloc(capacity, sizeof(*g->tracks));
    g->buckets = malloc(nb * sizeof(*g->buckets));
    if (!g->addrs || !g->tracks || !g->buckets) {
        guard_destroy(g);
        return NULL;
    }
    g->addr_mask = naddr - 1;
    g->bucket_mask = nb - 1;
    g->ntracks = (uint32_t)capacity;
    for (uint32_t i = 0; i < nb; i++)
        g->buckets[i] = GUARD_NONE;
    for (uint32_t i = 0; i < g->ntracks; i++)
        g->tracks[i].hnext = i + 1 < g->ntracks ? i + 1 : GUARD_NONE;
    g->free_track = 0;
    g->pend_head = g->pend_tail = GUARD_NONE;
    g->adopting_addr = GUARD_NONE;
    guard_set_opts(g, opts);
    return g;
}

void guard_destroy(guard *g)
{
    if (!g)
        return;
    free(g->addrs);
    free(g->tracks);
    free(g->buckets);
    free(g);
}

void guard_set_opts(guard *g, const guard_opts *opts)
{
    g->opts = *opts;
    if (!g->opts.max_header_bytes || g->opts.max_header_bytes > GUARD_HEAD_MAX)
        g->opts.max_header_bytes = GUARD_HEAD_MAX;
    if (!g->opts.burst)
        g->opts.burst = 1;
    if (!g->opts.header_timeout_ms)
        g->opts.header_timeout_ms = 10000;
}

void guard_set_target(guard *g, struct lws_vhost *serving, int tls)
{
    g->serving = serving;
    g->tls = tls;
}

const guard_stats *guard_get_stats(const guard *g) { return &g->stats; }

const char *guard_refusal_name(guard_refusal r)
{
    switch (r) {
    case GUARD_REFUSE_PER_ADDRESS: return "per_address";
    case GUARD_REFUSE_RATE: return "rate";
    case GUARD_REFUSE_PENDING: return "pending";
    case GUARD_REFUSE_PENDING_ADDRESS: return "pending_per_address";
    case GUARD_REFUSE_TABLE_FULL: return "table_full";
    default: return "";
    }
}

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
