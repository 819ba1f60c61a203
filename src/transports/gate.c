/* gate.c — see gate.h. */
#include "tickerd/gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tickerd/netlist.h"

/* An address list: empty = any address. */
typedef netlist gate_list;

struct gate {
    auth *auth;
    char origins[sizeof(((cfg_access *)0)->allowed_origins)];
    char cors[512];
    gate_list lists[GATE_EP_COUNT];
    gate_stats stats;
};

static const char *const transport_names[GATE_T_COUNT] = {"ws", "sse", "poll", "socketio"};
static const char *const endpoint_names[GATE_EP_COUNT] = {"metrics", "healthz"};

auth *gate_auth(const gate *g) { return g ? g->auth : NULL; }
const gate_stats *gate_get_stats(const gate *g) { return &g->stats; }

/* ---- address lists ---- */

/* Calls fn for each trimmed, non-empty comma-separated entry; stops at the
 * first nonzero return and gives it back. */
static int gate_each(const char *list, int (*fn)(void *arg, const char *e, size_t n), void *arg)
{
    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, ",");
        const char *e = p;
        size_t m = n;
        while (m && (*e == ' ' || *e == '\t'))
            e++, m--;
        while (m && (e[m - 1] == ' ' || e[m - 1] == '\t'))
            m--;
        if (m) {
            int rc = fn(arg, e, m);
            if (rc)
                return rc;
        }
        p += n + (p[n] == ',');
    }
    return 0;
}

typedef struct gate_parse_ctx {
    gate_list *list;
    char *err;
    size_t cap;
} gate_parse_ctx;

static int gate_add_net(void *arg, const char *e, size_t n)
{
    gate_parse_ctx *c = arg;
    char entry[NETLIST_ADDR_TEXT + 5]; /* an address and "/128" */
    const char *why = "not an IP address or CIDR block (10.0.0.0/8, ::1)";
    if (n < sizeof(entry)) {
        memcpy(entry, e, n);
        entry[n] = 0;
        if (!netlist_add(c->list, entry, &why))
            return 0;
    }
    snprintf(c->err, c->cap, "\"%.*s\": %s", (int)(n > 64 ? 64 : n), e, why);
    return -1;
}

static int gate_parse_list(const char *list, gate_list *out, char *err, size_t cap)
{
    memset(out, 0, sizeof(*out));
    gate_parse_ctx c = {out, err, cap};
    return gate_each(list, gate_add_net, &c) ? -1 : 0;
}

int gate_check_addresses(const char *list, char *err, size_t cap)
{
    gate_list l;
    return gate_parse_list(list, &l, err, cap);
}

static int gate_peer_allowed(const gate_list *l, struct lws *wsi)
{
    return !l->n || netlist_match_fd(l, lws_get_socket_fd(wsi), NULL, 0);
}

/* ---- origins ---- */

typedef struct gate_origin {
    const char *scheme, *host, *port; /* not terminated: lengths below */
    size_t scheme_len, host_len, port_len;
} gate_origin;

/* "scheme://host[:port]" with scheme http or https and nothing after the
 * authority (browsers send no path). allow_wild: host may start "*.". */
static int gate_parse_origin(const char *s, size_t n, gate_origin *o, int allow_wild)
{
    memset(o, 0, sizeof(*o));
    const char *sep = NULL;
    for (size_t i = 0; i + 2 < n; i++)
        if (s[i] == ':' && s[i + 1] == '/' && s[i + 2] == '/') {
            sep = s + i;
            break;
        }
    if (!sep)
        return -1;
    o->scheme = s;
    o->scheme_len = (size_t)(sep - s);
    if (!((o->scheme_len == 4 && !strncasecmp(s, "http", 4)) ||
          (o->scheme_len == 5 && !strncasecmp(s, "https", 5))))
        return -1;
    const char *a = sep + 3, *end = s + n;
    if (a == end)
        return -1;
    const char *colon;
    if (*a == '[') { /* [v6] */
        const char *rb = memchr(a, ']', (size_t)(end - a));
        if (!rb)
            return -1;
        colon = rb + 1 < end ? rb + 1 : NULL;
        if (colon && *colon != ':')
            return -1;
        o->host = a;
        o->host_len = (size_t)(rb + 1 - a);
    } else {
        colon = memchr(a, ':', (size_t)(end - a));
        o->host = a;
        o->host_len = (size_t)((colon ? colon : end) - a);
        for (size_t i = 0; i < o->host_len; i++) {
            char c = a[i];
            int wild = allow_wild && i == 0 && c == '*' && o->host_len > 2 && a[1] == '.';
            if (!wild && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                           c == '-' || c == '.'))
                return -1;
        }
    }
    if (!o->host_len)
        return -1;
    if (colon) {
        o->port = colon + 1;
        o->port_len = (size_t)(end - o->port);
        if (!o->port_len || o->port_len > 5)
            return -1;
        for (size_t i = 0; i < o->port_len; i++)
            if (o->port[i] < '0' || o->port[i] > '9')
                return -1;
    }
    return 0;
}

static int gate_eq(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && !strncasecmp(a, b, an);
}

/* The port as the origin means it: none = the scheme's default. */
static void gate_port_of(const gate_origin *o, const char **p, size_t *n)
{
    if (o->port_len) {
        *p = o->port;
        *n = o->port_len;
    } else {
        *p = o->scheme_len == 5 ? "443" : "80";
        *n = o->scheme_len == 5 ? 3 : 2;
    }
}

static int gate_same_origin(const gate_origin *o, const char *host)
{
    if (!host || !*host)
        return 0;
    /* Host is "name[:port]" or "[v6][:port]" */
    size_t hn = strlen(host);
    const char *colon = NULL;
    if (host[0] == '[') {
        const char *rb = strchr(host, ']');
        if (!rb)
            return 0;
        colon = rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = strrchr(host, ':');
    }
    size_t name_len = colon ? (size_t)(colon - host) : hn;
    gate_origin h = {.scheme = o->scheme, .scheme_len = o->scheme_len, .host = host,
                     .host_len = name_len, .port = colon ? colon + 1 : NULL,
                     .port_len = colon ? hn - name_len - 1 : 0};
    const char *p1, *p2;
    size_t n1, n2;
    gate_port_of(o, &p1, &n1);
    gate_port_of(&h, &p2, &n2);
    return gate_eq(o->host, o->host_len, h.host, h.host_len) && gate_eq(p1, n1, p2, n2);
}

static int gate_is_local(const gate_origin *o)
{
    return gate_eq(o->host, o->host_len, "localhost", 9) ||
           gate_eq(o->host, o->host_len, "127.0.0.1", 9) || gate_eq(o->host, o->host_len, "[::1]", 5);
}

typedef struct gate_match_ctx {
    const char *origin;
    size_t origin_len;
    gate_origin parsed;
    int parsed_ok;
    const char *host;
} gate_match_ctx;

/* 1 when entry e allows the origin (stops the walk). */
static int gate_entry_match(void *arg, const char *e, size_t n)
{
    gate_match_ctx *c = arg;
    if (n == 1 && *e == '*')
        return 1;
    if (gate_eq(e, n, "null", 4))
        return c->origin_len == 4 && !memcmp(c->origin, "null", 4);
    if (!c->parsed_ok)
        return 0; /* an Origin that is not scheme://host[:port] matches only "*" / "null" */
    if (gate_eq(e, n, "same-origin", 11))
        return gate_same_origin(&c->parsed, c->host);
    if (gate_eq(e, n, "localhost", 9))
        return gate_is_local(&c->parsed);
    gate_origin w;
    if (gate_parse_origin(e, n, &w, 1))
        return 0;
    const char *p1, *p2;
    size_t n1, n2;
    gate_port_of(&w, &p1, &n1);
    gate_port_of(&c->parsed, &p2, &n2);
    if (!gate_eq(w.scheme, w.scheme_len, c->parsed.scheme, c->parsed.scheme_len) ||
        !gate_eq(p1, n1, p2, n2))
        return 0;
    if (w.host[0] == '*') { /* "*.example.com": any subdomain, not the name itself */
        size_t sl = w.host_len - 1; /* ".example.com" */
        return c->parsed.host_len > sl &&
               gate_eq(c->parsed.host + c->parsed.host_len - sl, sl, w.host + 1, sl);
    }
    return gate_eq(w.host, w.host_len, c->parsed.host, c->parsed.host_len);
}

typedef struct gate_check_ctx {
    char *err;
    size_t cap;
} gate_check_ctx;

static int gate_entry_valid(void *arg, const char *e, size_t n)
{
    gate_check_ctx *c = arg;
    gate_origin o;
    if ((n == 1 && *e == '*') || gate_eq(e, n, "null", 4) || gate_eq(e, n, "same-origin", 11) ||
        gate_eq(e, n, "localhost", 9) || !gate_parse_origin(e, n, &o, 1))
        return 0;
    snprintf(c->err, c->cap,
             "\"%.*s\" is not an origin (scheme://host[:port], https://*.example.com), "
             "\"same-origin\", \"localhost\", \"null\" or \"*\"",
             (int)(n > 80 ? 80 : n), e);
    return -1;
}

int gate_check_origins(const char *list, char *err, size_t cap)
{
    gate_check_ctx c = {err, cap};
    return gate_each(list, gate_entry_valid, &c) ? -1 : 0;
}

int gate_origin_allowed(const gate *g, const char *origin, const char *host)
{
    gate_match_ctx c = {.origin = origin, .origin_len = strlen(origin), .host = host};
    c.parsed_ok = !gate_parse_origin(origin, c.origin_len, &c.parsed, 0);
    return gate_each(g->origins, gate_entry_match, &c) == 1 ||
           gate_each(g->cors, gate_entry_match, &c) == 1;
}

int gate_origin_ok(gate *g, struct lws *wsi, gate_transport t)
{
    char origin[256], host[256];
    int n = lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0)
        return 1; /* not a browser */
    if (n <= 0) {
        g->stats.origin_refused[t]++; /* longer than any origin */
        return 0;
    }
    if (lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST) <= 0)
        host[0] = 0;
    if (gate_origin_allowed(g, origin, host))
        return 1;
    g->stats.origin_refused[t]++;
    return 0;
}

/* ---- lifecycle ---- */

void gate_configure(gate *g, const cfg_access *acc, const char *cors_origins)
{
    char err[160];
    snprintf(g->origins, sizeof(g->origins), "%s", acc->allowed_origins);
    snprintf(g->cors, sizeof(g->cors), "%s", cors_origins ? cors_origins : "");
    /* validated with the config: a list that fails here stays as it was */
    gate_list l;
    if (!gate_parse_list(acc->metrics_allowed_addresses, &l, err, sizeof(err)))
        g->lists[GATE_EP_METRICS] = l;
    if (!gate_parse_list(acc->health_allowed_addresses, &l, err, sizeof(err)))
        g->lists[GATE_EP_HEALTHZ] = l;
}

gate *gate_create(auth *a, const cfg_access *acc, const char *cors_origins)
{
    gate *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->auth = auth_enabled(a) ? a : NULL;
    gate_configure(g, acc, cors_origins);
    return g;
}

void gate_destroy(gate *g) { free(g); }

/* ---- answers ---- */

int gate_token(struct lws *wsi, char *buf, size_t cap)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) > 0) {
        int n = lws_hdr_copy(wsi, buf, (int)cap, WSI_TOKEN_HTTP_AUTHORIZATION);
        if (n < 0)
            return -1;
        if (n > 7 && !strncasecmp(buf, "Bearer ", 7)) {
            const char *t = buf + 7;
            while (*t == ' ')
                t++;
            size_t len = strlen(t);
            memmove(buf, t, len + 1);
            return (int)len;
        }
        /* another scheme (Basic ...): not ours; a query token may still come */
    }
    buf[0] = 0;
    if (lws_get_urlarg_by_name(wsi, "token=", buf, (int)cap)) {
        size_t len = strlen(buf + 6);
        memmove(buf, buf + 6, len + 1);
        return len ? (int)len : 0;
    }
    /* lws leaves nothing when the argument did not fit: was there one? */
    char probe[8];
    return lws_get_urlarg_by_name(wsi, "token=", probe, sizeof(probe)) ? -1 : 0;
}

int gate_www_authenticate(struct lws *wsi, unsigned char **p, unsigned char *end)
{
    static const char v[] = "Bearer realm=\"tickerd\"";
    return lws_add_http_header_by_name(wsi, (const unsigned char *)"www-authenticate:",
                                       (const unsigned char *)v, (int)sizeof(v) - 1, p, end);
}

size_t gate_unauthorized_json(char *buf, size_t cap, auth_result r)
{
    int n = snprintf(buf, cap, "{\"op\":\"error\",\"code\":\"unauthorized\",\"reason\":\"%s\",\"message\":\"%s\"}",
                     auth_result_name(r), auth_result_text(r));
    if (n < 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

/* Status, JSON type and body in one write, while the request is being
 * handled (as lws_return_http_status does it for HTTP/1). */
static int gate_answer(struct lws *wsi, unsigned status, const char *body, size_t len)
{
    unsigned char buf[LWS_PRE + 2048], *start = buf + LWS_PRE, *p = start,
                                       *end = buf + sizeof(buf) - 1;
    char clen[24];
    int cl = snprintf(clen, sizeof(clen), "%zu", len);
    if (lws_add_http_header_status(wsi, status, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                     (const unsigned char *)"application/json", 16, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, (const unsigned char *)clen,
                                     cl, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        (status == 401 && gate_www_authenticate(wsi, &p, end)) ||
        lws_finalize_http_header(wsi, &p, end) || (size_t)(end - p) < len)
        return -1;
    memcpy(p, body, len);
    p += len;
    int n = (int)(p - start);
    return lws_write(wsi, start, (size_t)n, LWS_WRITE_HTTP) == n ? 0 : -1;
}

static int gate_is_ws_path(struct lws *wsi, int *socketio)
{
    char uri[64];
    int n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
    *socketio = n >= 10 && !strncmp(uri, "/socket.io", 10);
    return n == 3 && !memcmp(uri, "/ws", 3);
}

int gate_upgrade(gate *g, struct lws *wsi)
{
    if (!g)
        return 0;
    int sio = 0, ws = gate_is_ws_path(wsi, &sio);
    if (!gate_origin_ok(g, wsi, sio ? GATE_T_SOCKETIO : GATE_T_WS)) {
        static const char body[] =
            "{\"op\":\"error\",\"code\":\"forbidden_origin\",\"message\":\"this page's Origin may "
            "not open a connection here (server.allowed_origins)\"}";
        return gate_answer(wsi, 403, body, sizeof(body) - 1) ? -1 : 1;
    }
    if (!ws || !g->auth)
        return 0;
    char tok[GATE_TOKEN_BUF];
    int n = gate_token(wsi, tok, sizeof(tok));
    if (!n)
        return 0; /* the first message must then be {"op":"auth",...} */
    auth_result why = AUTH_E_MALFORMED;
    auth_token *t = n > 0 ? auth_verify(g->auth, tok, (size_t)n, tk_now_us(), &why) : NULL;
    if (n < 0)
        auth_count_failure(g->auth, why);
    if (t && !auth_would_admit(g->auth, t)) {
        why = AUTH_E_MAX_CONNS;
        auth_count_failure(g->auth, why);
        auth_token_free(t);
        t = NULL;
    }
    if (t) {
        /* verified again (and counted) when the session starts */
        auth_token_free(t);
        return 0;
    }
    char body[512];
    size_t len = gate_unauthorized_json(body, sizeof(body), why);
    return gate_answer(wsi, why == AUTH_E_MAX_CONNS ? 429 : 401, body, len) ? -1 : 1;
}

/* ---- HTTP endpoints ---- */

static void gate_json_error(sbuf *o, const char *code, const char *reason, const char *msg)
{
    sbuf_printf(o, "{\"error\":\"%s\",", code);
    if (reason)
        sbuf_printf(o, "\"reason\":\"%s\",", reason);
    sbuf_printf(o, "\"message\":\"%s\"}", msg);
}

/* The names of a comma-separated list the token does not entitle, as a
 * JSON array body ({"error":"forbidden",...}); 0 when all are entitled. */
static int gate_entitled(gate *g, const auth_token *t, const char *list, sbuf *o)
{
    sbuf bad;
    sbuf_init(&bad, 16 << 10);
    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, ",");
        char name[AUTH_PATTERN_MAX + 1];
        if (n && n < sizeof(name)) {
            memcpy(name, p, n);
            name[n] = 0;
            if (strcmp(name, "*") && !auth_token_allows(t, name)) {
                int safe = 1; /* echoed: printable names only */
                for (const char *c = name; safe && *c; c++)
                    safe = *c > 0x20 && *c < 0x7f && *c != '"' && *c != '\\';
                sbuf_printf(&bad, "%s\"%s\"", bad.len ? "," : "", safe ? name : "?");
            }
        } else if (n) {
            sbuf_printf(&bad, "%s\"?\"", bad.len ? "," : "");
        }
        p += n + (p[n] == ',');
    }
    int refused = bad.len > 0;
    if (refused) {
        auth_counters(g->auth)->forbidden_requests++;
        sbuf_printf(o, "{\"error\":\"forbidden\",\"message\":\"the token does not entitle these "
                       "symbols\",\"symbols\":[%.*s]}",
                    (int)bad.len, bad.data ? bad.data : "");
    }
    sbuf_free(&bad);
    return refused;
}

int gate_http(gate *g, struct lws *wsi, const char *uri, sbuf *body, auth_token **tok)
{
    *tok = NULL;
    if (!g)
        return 0;
    for (int ep = 0; ep < GATE_EP_COUNT; ep++) {
        static const char *const paths[GATE_EP_COUNT] = {"/metrics", "/healthz"};
        if (strcmp(uri, paths[ep]))
            continue;
        if (gate_peer_allowed(&g->lists[ep], wsi))
            return 0;
        g->stats.address_refused[ep]++;
        char msg[160];
        snprintf(msg, sizeof(msg), "this address may not read %s (server.%s_allowed_addresses)",
                 paths[ep], ep == GATE_EP_METRICS ? "metrics" : "health");
        gate_json_error(body, "forbidden", NULL, msg);
        return 403;
    }
    if (strncmp(uri, "/api/", 5) || !g->auth)
        return 0;
    char buf[GATE_TOKEN_BUF];
    int n = gate_token(wsi, buf, sizeof(buf));
    auth_result why = n ? AUTH_E_MALFORMED : AUTH_E_MISSING;
    auth_token *t = n > 0 ? auth_verify(g->auth, buf, (size_t)n, tk_now_us(), &why) : NULL;
    if (n <= 0)
        auth_count_failure(g->auth, why);
    if (!t) {
        gate_json_error(body, "unauthorized", auth_result_name(why), auth_result_text(why));
        return 401;
    }
    char arg[8192];
    const char *list = NULL;
    if (!strcmp(uri, "/api/snapshot"))
        list = lws_get_urlarg_by_name(wsi, "symbols=", arg, sizeof(arg));
    else if (!strcmp(uri, "/api/history"))
        list = lws_get_urlarg_by_name(wsi, "symbol=", arg, sizeof(arg));
    if (list && gate_entitled(g, t, list, body)) {
        auth_token_free(t);
        return 403;
    }
    *tok = t;
    return 0;
}

/* ---- metrics ---- */

void gate_render_metrics(const gate *g, sbuf *o)
{
    if (!g)
        return;
    tk_metric_head(o, "tickerd_origin_refused_total", "counter",
                   "Streaming requests refused for their browser Origin (server.allowed_origins), by "
                   "transport");
    for (int t = 0; t < GATE_T_COUNT; t++)
        tk_metric_labelled(o, "tickerd_origin_refused_total", "transport", transport_names[t],
                           g->stats.origin_refused[t]);
    tk_metric_head(o, "tickerd_address_refused_total", "counter",
                   "Requests refused by an address list (server.*_allowed_addresses), by endpoint");
    for (int e = 0; e < GATE_EP_COUNT; e++)
        tk_metric_labelled(o, "tickerd_address_refused_total", "endpoint", endpoint_names[e],
                           g->stats.address_refused[e]);
    static const auth_stats none;
    const auth_stats *s = g->auth ? auth_get_stats(g->auth) : &none;
    tk_metric_head(o, "tickerd_auth_failures_total", "counter",
                   "Tokens refused (auth.mode token), by reason");
    for (int r = 1; r < AUTH_E_COUNT; r++)
        tk_metric_labelled(o, "tickerd_auth_failures_total", "reason", auth_result_name((auth_result)r),
                           s->failures[r]);
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } m[] = {
        {"tickerd_auth_accepted_total", "counter", "Sessions authenticated by a token, re-auths included",
         offsetof(auth_stats, accepted)},
        {"tickerd_auth_forbidden_subscribes_total", "counter",
         "Subscribes refused (forbidden) for symbols outside the token", offsetof(auth_stats, forbidden_subscribes)},
        {"tickerd_auth_forbidden_requests_total", "counter",
         "HTTP API requests answered 403 for symbols outside the token", offsetof(auth_stats, forbidden_requests)},
        {"tickerd_auth_reauth_sent_total", "counter", "reauth messages sent before a token's expiry",
         offsetof(auth_stats, reauth_sent)},
        {"tickerd_auth_expired_closes_total", "counter",
         "Sessions closed (4001) because their token expired", offsetof(auth_stats, expired_closes)},
        {"tickerd_auth_unauthenticated_closes_total", "counter",
         "Sessions closed (4002) without a valid token", offsetof(auth_stats, unauthenticated_closes)},
        {"tickerd_auth_revoked_subscriptions_total", "counter",
         "Subscriptions dropped because a new token no longer entitles them",
         offsetof(auth_stats, revoked_subscriptions)},
    };
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        tk_metric(o, m[i].name, m[i].type, m[i].help,
                  *(const uint64_t *)((const char *)s + m[i].off));
    tk_metric(o, "tickerd_auth_sessions", "gauge", "Sessions holding a token", s->sessions);
}
