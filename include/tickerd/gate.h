/*
 * gate.h — who may come in, checked once for every transport before it
 * serves: the browser Origin policy (server.allowed_origins), the token a
 * request carries (Authorization: Bearer, ?token=; verified by auth.h), the
 * address lists of /metrics and /healthz, and the entitlements of the HTTP
 * APIs (401 / 403 with JSON bodies). The session layer (session.h) holds
 * the gate so that every transport reaches the same one (sess_gate).
 *
 * Origin policy: a request with an Origin header (a browser's) is allowed
 * when the origin matches an entry of server.allowed_origins —
 * "same-origin" (the request's Host), "localhost" (http(s) on localhost,
 * 127.0.0.1 or [::1], any port), "null", "*", an exact origin
 * "https://desk.example:8443" or a subdomain wildcard (a host starting "*." after the scheme) —
 * or is listed in api.cors_origins (an explicit cross-origin grant). A
 * request without Origin is not a browser's and is not refused for that.
 * WebSocket upgrades (/ws, /socket.io/) are refused before the upgrade
 * (LWS_CALLBACK_HTTP_CONFIRM_UPGRADE) with 403 and a JSON body, /sse,
 * /api/poll and Engine.IO polling before their first byte.
 * Runs on the lws service thread only.
 */
#ifndef TICKERD_GATE_H
#define TICKERD_GATE_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include "tickerd/auth.h"
#include "tickerd/cfg.h"
#include "tickerd/util.h"

#define GATE_TOKEN_BUF (AUTH_TOKEN_MAX + 16)

typedef enum { GATE_T_WS = 0, GATE_T_SSE, GATE_T_POLL, GATE_T_SOCKETIO, GATE_T_COUNT } gate_transport;
typedef enum { GATE_EP_METRICS = 0, GATE_EP_HEALTHZ, GATE_EP_COUNT } gate_endpoint;

typedef struct gate_stats {
    uint64_t origin_refused[GATE_T_COUNT];
    uint64_t address_refused[GATE_EP_COUNT];
} gate_stats;

typedef struct gate gate;

/* a is the auth object (not owned; NULL = mode none). The lists were
 * validated by the config (gate_check_*); -1 only when out of memory. */
gate *gate_create(auth *a, const cfg_access *acc, const char *cors_origins);
/* A reload: the next requests see the new lists. */
void gate_configure(gate *g, const cfg_access *acc, const char *cors_origins);
void gate_destroy(gate *g);
auth *gate_auth(const gate *g);
const gate_stats *gate_get_stats(const gate *g);

/* Config validation (cfg.c): 0, or -1 with what is wrong in err. */
int gate_check_origins(const char *list, char *err, size_t cap);
int gate_check_addresses(const char *list, char *err, size_t cap);
/* The policy itself, pure (tests): may a page from origin talk to a server
 * reached as host (the Host header, may be NULL)? */
int gate_origin_allowed(const gate *g, const char *origin, const char *host);

/* The request's Origin against the policy; a refusal is counted for t. */
int gate_origin_ok(gate *g, struct lws *wsi, gate_transport t);
/* The token of a request: "Authorization: Bearer X", else the token= query
 * argument. Its length, 0 when there is none, -1 when it does not fit. */
int gate_token(struct lws *wsi, char *buf, size_t cap);
/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: the Origin (every upgrade) and, at
 * /ws, a token the request carries (one that does not verify is 401, a sub
 * at its max_conns 429; none is fine: the client may send an auth op).
 * Returns 0 to go on with the upgrade, 1 when refused (answered). */
int gate_upgrade(gate *g, struct lws *wsi);
/* WWW-Authenticate: Bearer for a 401 (RFC 6750 §3). */
int gate_www_authenticate(struct lws *wsi, unsigned char **p, unsigned char *end);
/* {"op":"error","code":"unauthorized","reason":...,"message":...}: the
 * streaming endpoints' 401 body. Its length (truncated to cap - 1). */
size_t gate_unauthorized_json(char *buf, size_t cap, auth_result r);
/* The HTTP endpoints (http.c): the address lists for /metrics and /healthz,
 * the token and entitlements for /api/symbols, /api/snapshot and
 * /api/history. Returns 0 to serve (*tok: the verified token, NULL in mode
 * none; the caller frees it and shows only what it entitles), or the HTTP
 * status with the JSON error in body. */
int gate_http(gate *g, struct lws *wsi, const char *uri, sbuf *body, auth_token **tok);
/* The gate's and auth's counters, Prometheus text. */
void gate_render_metrics(const gate *g, sbuf *o);

#endif
