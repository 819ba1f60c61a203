/*
 * guard.h — the listener's front door: every accepted connection is counted
 * against its address here, and (plain HTTP) its first request head is read
 * and checked before lws' HTTP parser sees it.
 *
 * Why the head: lws 4.1.6 answers a request line or header block over its
 * header space, or a NUL in the path, by closing the connection with no
 * status line, and it accepts WebSocket upgrades of version 8. Clients and
 * proxies are owed a reason (RFC 9110 §15.5.15, RFC 6585 §5, RFC 6455 §4.4).
 * So the listener's vhost binds accepted sockets to this protocol, which
 * looks at the head with MSG_PEEK (at most limits.max_header_bytes + 1
 * bytes, within limits.header_timeout_ms), answers 400 / 414 / 426 / 431
 * itself, and lets the serving vhost adopt a connection whose head passes,
 * with every byte still unread (see guard.c for why nothing is read).
 * With TLS (server.tls.*) the head is encrypted: the guard counts the
 * connection and hands it to the serving vhost at once, lws does the
 * handshake, and the guard still owns its deadline (guard_sweep) and learns
 * of its complete head from guard_front.
 *
 * Why the address (limits.*, docs/security.md): one address opening
 * connections as fast as it can must not take the server from the others.
 * Each IPv4 address or IPv6 /64 has a count of open connections, a count of
 * unfinished heads and a token bucket of new connections, in a table of fixed
 * size (its live entries are bounded by the descriptors the process may
 * hold; idle ones are evicted oldest first), so no number of addresses grows
 * it. A connection over a limit is refused at accept: closed (TLS), or
 * answered a short 429 / 503 (plain). A peer in server.trusted_proxies is
 * counted under the client address its X-Forwarded-For names once its head
 * is complete (guard_front).
 *
 * Only a connection's first request passes the head check; later requests on
 * a keep-alive connection meet lws' own limits (header space is sized so that
 * every head the guard passes fits).
 * Runs on the lws service thread only.
 */
#ifndef TICKERD_GUARD_H
#define TICKERD_GUARD_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include "tickerd/guard_head.h"
#include "tickerd/netlist.h"

/* Why a connection was refused at accept (or, behind a proxy, at its head). */
typedef enum {
    GUARD_REFUSE_PER_ADDRESS = 0, /* limits.max_connections_per_address */
    GUARD_REFUSE_RATE,            /* limits.new_connections_per_sec / _burst */
    GUARD_REFUSE_PENDING,         /* limits.max_pending_heads (server-wide) */
    GUARD_REFUSE_PENDING_ADDRESS, /* limits.max_pending_heads_per_address */
    GUARD_REFUSE_TABLE_FULL,      /* no room to count a new address (should stay 0) */
    GUARD_REFUSE_COUNT
} guard_refusal;

typedef struct guard_opts {
    uint32_t max_per_address;      /* 0 = no cap */
    uint32_t rate_per_sec;         /* 0 = no rate limit */
    uint32_t burst;
    uint32_t max_pending;          /* 0 = no cap */
    uint32_t max_pending_per_address;
    uint32_t header_timeout_ms;
    uint32_t max_header_bytes;     /* <= GUARD_HEAD_MAX */
    netlist exempt;                /* per-address limits do not apply */
    netlist trusted_proxies;       /* X-Forwarded-For believed from these */
} guard_opts;

typedef struct guard_stats {
    uint64_t rejected[GUARD_VERDICT_COUNT]; /* by verdict (the error ones) */
    uint64_t head_timeouts;                 /* closed: no complete head in time */
    uint64_t accepted; /* every connection the listener accepted, refused ones too */
    uint64_t passed;
    uint64_t refused[GUARD_REFUSE_COUNT];   /* by reason */
    uint64_t forwarded;                     /* connections counted under a forwarded address */
    uint64_t forwarded_ignored;             /* X-Forwarded-For from a peer not trusted */
    uint32_t pending;                       /* gauge: connections before a complete head */
    uint32_t addresses;                     /* gauge: addresses with open connections */
} guard_stats;

typedef struct guard guard;

/* capacity: the most connections that can be open at once (the process's
 * descriptor limit); it sizes the tables. NULL when out of memory. */
guard *guard_create(size_t capacity, const guard_opts *opts);
void guard_destroy(guard *g);
/* Applies at once (a reload); connections already counted stay counted. */
void guard_set_opts(guard *g, const guard_opts *opts);
/* Where passed connections go (the vhost that serves HTTP and WebSocket);
 * tls: that vhost does TLS, so connections go to it at accept. */
void guard_set_target(guard *g, struct lws_vhost *serving, int tls);
/* The protocol to name in the listening vhost's listen_accept_protocol. */
struct lws_protocols guard_protocol(guard *g);
#define GUARD_PROTOCOL_NAME "tickerd-guard"

/* From the serving vhost's first protocol (every wsi passes there): a
 * request head complete (LWS_CALLBACK_FILTER_HTTP_CONNECTION,
 * LWS_CALLBACK_HTTP_CONFIRM_UPGRADE) and the wsi gone
 * (LWS_CALLBACK_WSI_DESTROY). Returns -1 when the connection is to be
 * refused (over a limit under its forwarded address: the caller answers or
 * closes), else 0. Other reasons and unknown wsi are ignored. */
int guard_front(guard *g, struct lws *wsi, enum lws_callback_reasons reason);
/* TLS: close connections whose handshake and head are not complete by
 * limits.header_timeout_ms. Call periodically (every few hundred ms). */
void guard_sweep(guard *g);
const char *guard_refusal_name(guard_refusal r);
const guard_stats *guard_get_stats(const guard *g);

#endif
