/*
 * tickerd-example-client: a minimal tickerd WebSocket client in C on the libwebsockets client API.
 *
 *   tickerd-example-client ws://127.0.0.1:8080/ws BTC-USD ETH-USD
 *
 * Connects, subscribes to the symbols given on the command line and prints one line per value received:
 *
 *   snapshot BTC-USD last=64999.5 seq=1234
 *   update   BTC-USD last=65000.1 seq=1236 (1 skipped)
 *
 * Acks and errors go to stderr. Exits 0 on SIGINT/SIGTERM, 1 when the connection fails or closes (no
 * reconnect: see web/tickerd-client.js for a client that does that). The protocol is docs/protocol.md; JSON
 * is parsed as it streams in with lws' own LEJP parser, so there is no other dependency. Plain ws:// only.
 */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SYMBOLS 256
#define MAX_TRACKED 1024 /* symbols whose last seq we remember, for the skipped count */

static volatile sig_atomic_t interrupted;
static int exit_code = 1;

/* What we send: one subscribe, built at start. */
static char tx[LWS_PRE + 8192];
static size_t tx_len;
static int tx_pending;

/* ---- parsing the server's messages with LEJP ---- */

static const char *const paths[] = {
    "op",                /* 1 */
    "updates[].symbol",  /* 2 */
    "updates[].last",    /* 3 */
    "updates[].seq",     /* 4 */
    "updates[].stale",   /* 5 */
    "code",              /* 6 (error) */
    "message",           /* 7 (error) */
    "req",               /* 8 (ack) */
};
enum { P_OP = 1, P_SYMBOL, P_LAST, P_SEQ, P_STALE, P_CODE, P_MESSAGE, P_REQ };

struct seen {
    char symbol[32];
    long long seq;
};

struct parse {
    struct lejp_ctx ctx;
    int active;
    char op[16];
    char code[40];
    char message[200];
    char req[16];
    /* the update object being read */
    char symbol[32];
    char last[40];
    long long seq;
    int stale;
};

static struct seen tracked[MAX_TRACKED];
static int ntracked;

static long long skipped_for(const char *symbol, long long seq)
{
    for (int i = 0; i < ntracked; i++) {
        if (!strcmp(tracked[i].symbol, symbol)) {
            long long gap = seq - tracked[i].seq - 1;
            tracked[i].seq = seq;
            return gap > 0 ? gap : 0;
        }
    }
    if (ntracked < MAX_TRACKED) {
        snprintf(tracked[ntracked].symbol, sizeof(tracked[ntracked].symbol), "%s", symbol);
        tracked[ntracked++].seq = seq;
    }
    return 0;
}

static void copy_val(char *dst, size_t size, const struct lejp_ctx *ctx)
{
    size_t n = ctx->npos < size - 1 ? ctx->npos : size - 1;
    memcpy(dst, ctx->buf, n);
    dst[n] = '\0';
}

static signed char on_json(struct lejp_ctx *ctx, char reason)
{
    struct parse *p = ctx->user;

    if (reason == LEJPCB_OBJECT_START && ctx->path_match == 0 && !strcmp(ctx->path, "updates[]")) {
        p->symbol[0] = p->last[0] = '\0';
        p->seq = -1;
        p->stale = 0;
        return 0;
    }
    if (reason == LEJPCB_OBJECT_END && !strcmp(ctx->path, "updates[]")) {
        if (p->symbol[0]) {
            /* seq gaps between updates are values skipped for us by conflation; a snapshot is a new
             * starting point ("op" comes first in the server's frames) */
            long long gap = skipped_for(p->symbol, p->seq);
            printf("%-8s %s last=%s seq=%lld%s", p->op[0] ? p->op : "value", p->symbol,
                   p->last[0] ? p->last : "-", p->seq, p->stale ? " STALE" : "");
            if (gap && !strcmp(p->op, "update"))
                printf(" (%lld skipped)", gap);
            putchar('\n');
            p->symbol[0] = '\0';
        }
        return 0;
    }
    if (!(reason & LEJP_FLAG_CB_IS_VALUE) || !ctx->path_match)
        return 0;
    if (reason == LEJPCB_VAL_STR_CHUNK)
        return 0; /* no value we read is that long */

    switch (ctx->path_match) {
    case P_OP: copy_val(p->op, sizeof(p->op), ctx); break;
    case P_SYMBOL: copy_val(p->symbol, sizeof(p->symbol), ctx); break;
    case P_LAST: copy_val(p->last, sizeof(p->last), ctx); break;
    case P_SEQ: p->seq = strtoll(ctx->buf, NULL, 10); break;
    case P_STALE: p->stale = reason == LEJPCB_VAL_TRUE; break;
    case P_CODE: copy_val(p->code, sizeof(p->code), ctx); break;
    case P_MESSAGE: copy_val(p->message, sizeof(p->message), ctx); break;
    case P_REQ: copy_val(p->req, sizeof(p->req), ctx); break;
    }
    return 0;
}

static void message_start(struct parse *p)
{
    memset(p, 0, sizeof(*p));
    lejp_construct(&p->ctx, on_json, p, paths, (unsigned char)LWS_ARRAY_SIZE(paths));
    p->active = 1;
}

static void message_end(struct parse *p)
{
    if (!strcmp(p->op, "ack"))
        fprintf(stderr, "ack: %s\n", p->req);
    else if (!strcmp(p->op, "error"))
        fprintf(stderr, "error: %s: %s\n", p->code, p->message);
    lejp_destruct(&p->ctx);
    p->active = 0;
}

/* ---- the connection ---- */

static struct parse rx;

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    (void)user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        fprintf(stderr, "connection failed: %s\n", in ? (const char *)in : "(no reason)");
        interrupted = 1;
        break;

    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        fprintf(stderr, "connected\n");
        tx_pending = 1;
        lws_callback_on_writable(wsi);
        break;

    case LWS_CALLBACK_CLIENT_WRITEABLE:
        /* one lws_write per WRITEABLE; ask for another if more were queued */
        if (tx_pending) {
            int n = lws_write(wsi, (unsigned char *)tx + LWS_PRE, tx_len, LWS_WRITE_TEXT);
            if (n < (int)tx_len) {
                fprintf(stderr, "write failed\n");
                return -1;
            }
            tx_pending = 0;
        }
        break;

    case LWS_CALLBACK_CLIENT_RECEIVE: {
        if (lws_frame_is_binary(wsi))
            break; /* the protocol is text frames only */
        if (!rx.active)
            message_start(&rx);
        int r = lejp_parse(&rx.ctx, in, (int)len);
        if (r < LEJP_CONTINUE) {
            fprintf(stderr, "bad JSON from the server: %s\n", lejp_error_to_string(r));
            lejp_destruct(&rx.ctx);
            rx.active = 0; /* what is left of this message parses as garbage; the next one starts clean */
            break;
        }
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi))
            message_end(&rx);
        break;
    }

    case LWS_CALLBACK_CLIENT_CLOSED:
        fprintf(stderr, "connection closed\n");
        interrupted = 1;
        break;

    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"tickerd-example", callback, 0, 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
    exit_code = 0;
}

static int build_subscribe(int nsym, char **symbols)
{
    char *out = tx + LWS_PRE;
    size_t cap = sizeof(tx) - LWS_PRE;
    int n = snprintf(out, cap, "{\"op\":\"subscribe\",\"id\":1,\"symbols\":[");
    for (int i = 0; i < nsym && n > 0 && (size_t)n < cap; i++) {
        for (const char *c = symbols[i]; *c; c++) {
            if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20) {
                fprintf(stderr, "not a symbol: %s\n", symbols[i]);
                return -1;
            }
        }
        n += snprintf(out + n, cap - (size_t)n, "%s\"%s\"", i ? "," : "", symbols[i]);
    }
    if (n > 0 && (size_t)n < cap)
        n += snprintf(out + n, cap - (size_t)n, "]}");
    if (n <= 0 || (size_t)n >= cap) {
        fprintf(stderr, "too many symbols for one request\n");
        return -1;
    }
    tx_len = (size_t)n;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc - 2 > MAX_SYMBOLS) {
        fprintf(stderr, "usage: %s ws://HOST:PORT/ws SYMBOL... (at most %d symbols)\n", argv[0],
                MAX_SYMBOLS);
        return 2;
    }
    char url[512];
    snprintf(url, sizeof(url), "%s", argv[1]);
    const char *scheme, *host, *path;
    int port;
    if (lws_parse_uri(url, &scheme, &host, &port, &path) || strcmp(scheme, "ws")) {
        fprintf(stderr, "expected a ws:// URL, got %s\n", argv[1]);
        return 2;
    }
    char full_path[512];
    snprintf(full_path, sizeof(full_path), "/%s", path); /* lws_parse_uri drops the leading '/' */
    if (build_subscribe(argc - 2, argv + 2))
        return 2;

    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    lws_set_log_level(LLL_ERR, NULL);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx) {
        fprintf(stderr, "lws context creation failed\n");
        return 1;
    }

    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = ctx;
    ci.address = host;
    ci.port = port;
    ci.path = full_path;
    ci.host = host;
    ci.origin = host;
    ci.protocol = "tickerd.json"; /* the subprotocol of the JSON encoding (optional) */
    ci.local_protocol_name = protocols[0].name;
    if (!lws_client_connect_via_info(&ci)) {
        fprintf(stderr, "cannot connect to %s\n", argv[1]);
        lws_context_destroy(ctx);
        return 1;
    }

    while (!interrupted && lws_service(ctx, 0) >= 0)
        ;

    if (rx.active)
        lejp_destruct(&rx.ctx);
    lws_context_destroy(ctx);
    return exit_code;
}
