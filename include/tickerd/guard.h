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

#define GUARD_LINE_MAX 4096  /* request line, without CRLF: longer is 414 */
#define GUARD_HEAD_MAX 8192  /* request line and header fields: longer is 431 */
#define GUARD_FIELDS_MAX 64  /* header fields + query arguments (lws keeps ~90 fragments) */
#define GUARD_HEAD_TIMEOUT_S 10 /* the whole head must arrive within this */
/* lws' header space (info.max_http_header_data) that fits every passed head. */
#define GUARD_LWS_HEADER_SPACE (GUARD_HEAD_MAX + 512)

typedef enum {
    GUARD_INCOMPLETE = 0,    /* no verdict yet: read more */
    GUARD_PASS,              /* a complete head within the limits */
    GUARD_BAD_REQUEST,       /* 400: malformed line or field, NUL or control bytes, %00 */
    GUARD_URI_TOO_LONG,      /* 414 */
    GUARD_UPGRADE_REQUIRED,  /* 426: a WebSocket upgrade that is not version 13 */
    GUARD_FIELDS_TOO_LARGE,  /* 431 */
    GUARD_VERDICT_COUNT
} guard_verdict;

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
/* Status code and reason name ("uri_too_long"...) of an error verdict. */
int guard_status(guard_verdict v);
const char *guard_reason(guard_verdict v);

/* The check itself, on the first len bytes a connection sent (pure: no
 * sockets, fuzzed by tests/fuzz/fuzz_guard_head.c). On GUARD_PASS,
 * *head_len is the head's length including its blank line. */
guard_verdict guard_check_head(const char *buf, size_t len, size_t *head_len);

#endif
