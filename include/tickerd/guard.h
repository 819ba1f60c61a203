/*
 * guard.h — the listener's front door: every accepted connection's first
 * request head is read and checked here before lws' HTTP parser sees it.
 *
 * Why: lws 4.1.6 answers a request line or header block over its header
 * space, or a NUL in the path, by closing the connection with no status
 * line, and it accepts WebSocket upgrades of version 8. Clients and proxies
 * are owed a reason (RFC 9110 §15.5.15, RFC 6585 §5, RFC 6455 §4.4). So the
 * listener's vhost binds accepted sockets to this protocol, which looks at
 * the head with MSG_PEEK (at most GUARD_HEAD_MAX + 1 bytes, within a
 * deadline), answers 400 / 414 / 426 / 431 itself, and lets the serving
 * vhost adopt a connection whose head passes, with every byte still unread
 * (see guard.c for why nothing is read).
 *
 * Only a connection's first request passes here; later requests on a
 * keep-alive connection meet lws' own limits (header space is sized so that
 * every head the guard passes fits).
 * Runs on the lws service thread only.
 */
#ifndef TICKERD_GUARD_H
#define TICKERD_GUARD_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include "tickerd/guard_head.h"

typedef struct guard_stats {
    uint64_t rejected[GUARD_VERDICT_COUNT]; /* by verdict (the error ones) */
    uint64_t head_timeouts;                 /* closed: no complete head in time */
    uint64_t passed;
    uint32_t pending;                       /* gauge: connections still sending a head */
} guard_stats;

typedef struct guard guard;

guard *guard_create(void);
void guard_destroy(guard *g);
/* Where passed connections go (the vhost that serves HTTP and WebSocket). */
void guard_set_target(guard *g, struct lws_vhost *serving);
/* The protocol to name in the listening vhost's listen_accept_protocol. */
struct lws_protocols guard_protocol(guard *g);
#define GUARD_PROTOCOL_NAME "tickerd-guard"
const guard_stats *guard_get_stats(const guard *g);

#endif
