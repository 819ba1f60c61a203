/*
 * guard_head.h — the check of a connection's first request head that the
 * listener's guard (guard.h) applies: request line, header fields, sizes,
 * the WebSocket version. Pure (no sockets, no lws), so it is fuzzed on its
 * own (tests/fuzz/fuzz_guard_head.c).
 */
#ifndef TICKERD_GUARD_HEAD_H
#define TICKERD_GUARD_HEAD_H

#include <stddef.h>

#define GUARD_LINE_MAX 4096  /* request line, without CRLF: longer is 414 */
#define GUARD_HEAD_MAX 8192  /* request line and header fields: longer is 431 */
#define GUARD_FIELDS_MAX 64  /* header fields + query arguments (lws keeps ~90 fragments) */
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

/* The check itself, on the first len bytes a connection sent (pure: no
 * sockets, fuzzed by tests/fuzz/fuzz_guard_head.c). On GUARD_PASS,
 * *head_len is the head's length including its blank line. */
guard_verdict guard_check_head(const char *buf, size_t len, size_t *head_len);
/* The same with a smaller head limit (limits.max_header_bytes, at most
 * GUARD_HEAD_MAX; the request line's own limit stays GUARD_LINE_MAX). */
guard_verdict guard_check_head_max(const char *buf, size_t len, size_t max_head, size_t *head_len);

/* Status code and reason name ("uri_too_long"...) of an error verdict
 * (0 and "" for the others). */
int guard_status(guard_verdict v);
const char *guard_reason(guard_verdict v);

#endif
