/*
 * wsfeed.c — the WebSocket subscribing feed adapter (feed_ws_type) on the
 * libwebsockets client, on the service thread.
 *
 * One connection per feed to the venue preset's stream URL. Once connected it
 * sends the preset's subscribe message (Binance subscribes by URL and sends
 * none) and reads the venue's acknowledgement; lws answers protocol pings.
 * Any message — data, heartbeat or ack — proves the stream alive; a stream
 * silent for silence_timeout_ms is dropped and re-opened. Every drop is
 * followed by a reconnect after exponential backoff with full jitter (uniform
 * in [0, min(max_backoff_ms, 250 ms·2^k)], k = failures since the last data),
 * re-subscribing; a venue's announced disconnect (Binance serverShutdown)
 * reconnects at once, so a scheduled disconnect costs one reconnect.
 * Venues that drop a client which sends nothing (OKX: 30 s) get the preset's
 * text keepalive (ws_ping) every ping_interval_ms while connected.
 * Messages above max_message_bytes are discarded and counted.
 */
#include <libwebsockets.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/feed_capture.h"
#include "tickerd/feed_ws.h"
#include "tickerd/log.h"
#include "tickerd/util.h"
#include "tickerd/venue.h"

#define WSFEED_PROTOCOL "tickerd-upstream"
#define WSFEED_BACKOFF_BASE_MS 250
#define WSFEED_CHECK_US 500000
#define WSFEED_SUBSCRIBE_MAX 65536

typedef struct wsfeed_opts {
    char venue[16];
    char url[512];
    int silence_timeout_ms;
    int max_backoff_ms;
    int max_message_bytes;
    int ping_interval_ms; /* 0 = the preset's; only for presets with ws_ping */
    char capture[512]; /* "" = off */
    venue_symbol_map *symbols;
    size_t nsymbols;
} wsfeed_opts;

typedef enum { WSFEED_IDLE, WSFEED_CONNECTING, WSFEED_OPEN, WSFEED_STOPPED } wsfeed_state;

typedef struct wsfeed {
    lws_sorted_usec_list_t connect_sul; /* the next (re)connect */
    lws_sorted_usec_list_t check_sul;   /* silence watchdog */
    lws_sorted_usec_list_t ping_sul;    /* the preset's text keepalive */
    feed_env env;
    wsfeed_opts o;
    const venue_preset *preset;
    feed_capture *capture; /* raw frames, when "capture" is set */
    const char **venue_syms;
    feed_update *known;  /* last complete quote per symbol: partial messages merge in */
    struct lws *wsi;
    wsfeed_state state;
    char host[256], path[2048];
    char host_header[272]; /* host, or host:port off the scheme's default port */
    int port, tls;
    char *subscribe;     /* the subscribe message ("" = none) */
    int want_subscribe;
    size_t sub_off;      /* next line of a multi-message subscribe */
    int want_ping;
    char *rx;            /* reassembly of a message split over callbacks */
    size_t rx_len;
    int rx_skip;
    int failures;        /* since the last data: drives the backoff */
    int reconnect_now;
    int64_t last_rx_us;  /* monotonic */
    uint64_t rng;
    uint64_t updates, reconnects, rejects, venue_errors, conn_errors, malformed, oversized;
    int64_t last_update_us;
    char detail[128];
} wsfeed;

/* ---- options ---- */

static void wsfeed_free_opts(void *p)
{
    wsfeed_opts *o = p;
    if (o)
        free(o->symbols);
    free(o);
}

static int wsfeed_parse(const json_t *obj, const char *path, void **out, cfg_error *err)
{
    static const cfg_field fields[] = {
        {"venue", CFG_STRING, offsetof(wsfeed_opts, venue), 0, 16},
        {"url", CFG_STRING, offsetof(wsfeed_opts, url), 0, 512},
        {"silence_timeout_ms", CFG_INT, offsetof(wsfeed_opts, silence_timeout_ms), 500, 3600000},
        {"max_backoff_ms", CFG_INT, offsetof(wsfeed_opts, max_backoff_ms), 100, 3600000},
        {"max_message_bytes", CFG_INT, offsetof(wsfeed_opts, max_message_bytes), 1024, 67108864},
        {"capture", CFG_STRING, offsetof(wsfeed_opts, capture), 0, 512},
        {"ping_interval_ms", CFG_INT, offsetof(wsfeed_opts, ping_interval_ms), 100, 3600000},
    };
    static const char *const handled[] = {"type", "name", "symbols", NULL};
    wsfeed_opts *o = calloc(1, sizeof(*o));
    if (!o)
        return cfg_fail(err, "%s: out of memory", path);
    o->silence_timeout_ms = 10000;
    o->max_backoff_ms = 30000;
    o->max_message_bytes = 262144;
    if (cfg_parse_fields(obj, path, fields, sizeof(fields) / sizeof(fields[0]), handled, o, err))
        goto fail;
    const venue_preset *v = venue_find(o->venue);
    if (!v || !v->ws_parse) {
        cfg_fail(err, "%s.venue: must be one of binance, coinbase, kraken, okx, bybit, bitstamp", path);
        goto fail;
    }
    if (!o->ping_interval_ms)
        o->ping_interval_ms = v->ws_ping_interval_ms;
    else if (!v->ws_ping) {
        cfg_fail(err, "%s.ping_interval_ms: venue %s has no text keepalive", path, v->name);
        goto fail;
    }
    if (!o->url[0])
        snprintf(o->url, sizeof(o->url), "%s", v->ws_url);
    if (strncmp(o->url, "ws://", 5) && strncmp(o->url, "wss://", 6)) {
        cfg_fail(err, "%s.url: must start with ws:// or wss://", path);
        goto fail;
    }
    size_t max = strcmp(v->name, "binance") ? 1000 : VENUE_BINANCE_MAX_SYMBOLS;
    if (venue_parse_symbols(json_object_get(obj, "symbols"), path, v, max, &o->symbols,
                            &o->nsymbols, err))
        goto fail;
    *out = o;
    return 0;
fail:
    wsfeed_free_opts(o);
    return -1;
}

/* ---- messages ---- */

static void wsfeed_on_update(void *arg, const feed_update *in)
{
    wsfeed *w = arg;
    long i = venue_symbol_index(w->preset, w->o.symbols, w->o.nsymbols, in->symbol);
    if (i < 0)
        return; /* not a symbol this feed asked for */
    /* Venues send partial quotes (Binance: book ticker without a last, mini
     * ticker without a book): complete each with what this feed last saw. */
    feed_update u = *in;
    feed_update_complete(&w->known[i], &u);
    if (isnan(u.bid) || isnan(u.ask) || isnan(u.last))
        return; /* nothing whole to say yet (a mini ticker before any book) */
    u.symbol = w->o.symbols[i].canonical;
    u.source = w->env.source;
    w->updates++;
    w->last_update_us = tk_now_us();
    w->env.sink.emit(w->env.sink.arg, &u);
}

static void wsfeed_set_detail(wsfeed *w, const char *what, const char *why)
{
    snprintf(w->detail, sizeof(w->detail), "%s%s%s", what, why && *why ? ": " : "",
             why ? why : "");
}

static void wsfeed_drop(wsfeed *w)
{
    /* Closed from outside its callbacks' return path: lws kills it on its
     * next pass and CLIENT_CLOSED schedules the reconnect. */
    if (w->wsi)
        lws_set_timeout(w->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void wsfeed_message(wsfeed *w, const char *msg, size_t len)
{
    char err[160] = "";
    venue_emit emit = {.arg = w, .update = wsfeed_on_update};
    int64_t recv_us = tk_now_us();
    feed_capture_ws(w->capture, recv_us, msg, len); /* raw, whatever it says */
    venue_msg m = w->preset->ws_parse(msg, len, w->env.source, recv_us, &emit, err, sizeof(err));
    switch (m) {
    case VENUE_MSG_DATA:
        w->failures = 0; /* the stream works: the next drop starts the backoff afresh */
        w->detail[0] = '\0';
        break;
    case VENUE_MSG_ACK:
        log_info("feed %s: subscription acknowledged", w->env.name);
        break;
    case VENUE_MSG_REJECT:
        w->rejects++;
        wsfeed_set_detail(w, "subscription rejected", err);
        log_error("feed %s: subscription rejected: %s", w->env.name, err);
        break;
    case VENUE_MSG_SHUTDOWN:
        log_info("feed %s: venue announced a disconnect; reconnecting now", w->env.name);
        w->reconnect_now = 1;
        wsfeed_drop(w);
        break;
    case VENUE_MSG_ERROR:
        w->venue_errors++;
        wsfeed_set_detail(w, "venue error", err);
        log_warn("feed %s: venue error: %s", w->env.name, err);
        break;
    case VENUE_MSG_MALFORMED:
        w->malformed++;
        if (w->malformed < 10 || w->malformed % 1000 == 0)
            log_warn("feed %s: malformed message #%llu dropped: %s", w->env.name,
                     (unsigned long long)w->malformed, err);
        break;
    case VENUE_MSG_HEARTBEAT:
    case VENUE_MSG_IGNORED:
        break;
    }
}

static void wsfeed_receive(wsfeed *w, struct lws *wsi, const char *in, size_t len)
{
    int final = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
    w->last_rx_us = tk_mono_us();
    if (!w->rx_skip && w->rx_len + len + lws_remaining_packet_payload(wsi) >
                           (size_t)w->o.max_message_bytes) {
        w->rx_skip = 1; /* bounded: the rest of this message is discarded */
        w->oversized++;
        log_warn("feed %s: message over max_message_bytes (%d) discarded", w->env.name,
                 w->o.max_message_bytes);
    }
    if (!w->rx_skip) {
        if (final && !w->rx_len) {
            wsfeed_message(w, in, len);
        } else {
            if (!w->rx)
                w->rx = malloc((size_t)w->o.max_message_bytes);
            if (w->rx) {
                memcpy(w->rx + w->rx_len, in, len);
                w->rx_len += len;
                if (final)
                    wsfeed_message(w, w->rx, w->rx_len);
            } else {
                w->rx_skip = 1;
            }
        }
    }
    if (final) {
        free(w->rx);
        w->rx = NULL;
        w->rx_len = 0;
        w->rx_skip = 0;
    }
}

/* ---- connecting ---- */

static void wsfeed_connect(lws_sorted_usec_list_t *sul);

static void wsfeed_schedule_reconnect(wsfeed *w)
{
    int64_t delay_ms = 0;
    if (!w->reconnect_now) {
        int k = w->failures < 16 ? w->failures : 16;
        int64_t ceiling = (int64_t)WSFEED_BACKOFF_BASE_MS << k;
        if (ceiling > w->o.max_backoff_ms)
            ceiling = w->o.max_backoff_ms;
        w->rng ^= w->rng << 13;
        w->rng ^= w->rng >> 7;
        w->rng ^= w->rng << 17;
        delay_ms = (int64_t)(w->rng % (uint64_t)(ceiling + 1)); /* full jitter */
    }
    w->reconnect_now = 0;
    w->failures++;
    w->reconnects++;
    log_info("feed %s: reconnecting in %lld ms", w->env.name, (long long)delay_ms);
    lws_sul_schedule(w->env.lws, 0, &w->connect_sul, wsfeed_connect, delay_ms * 1000);
}

static void wsfeed_connect(lws_sorted_usec_list_t *sul)
{
    wsfeed *w = lws_container_of(sul, wsfeed, connect_sul);
    if (w->state == WSFEED_STOPPED)
        return;
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof(i));
    i.context = w->env.lws;
    i.vhost = w->env.vhost;
    i.address = w->host;
    i.host = w->host_header;
    /* No Origin: that is a browser's header (RFC 6455 §4.1 makes it optional
     * for other clients) and venues do not expect it from a server. */
    i.origin = NULL;
    i.port = w->port;
    i.path = w->path;
    i.ssl_connection = w->tls ? LCCSCF_USE_SSL : 0;
    i.alpn = "http/1.1";
    i.local_protocol_name = WSFEED_PROTOCOL;
    i.userdata = w;
    i.pwsi = &w->wsi;
    w->state = WSFEED_CONNECTING;
    if (!lws_client_connect_via_info(&i)) {
        w->wsi = NULL;
        w->state = WSFEED_IDLE;
        wsfeed_set_detail(w, "connect failed", NULL);
        wsfeed_schedule_reconnect(w);
    }
}

static void wsfeed_check(lws_sorted_usec_list_t *sul)
{
    wsfeed *w = lws_container_of(sul, wsfeed, check_sul);
    if (w->state == WSFEED_STOPPED)
        return;
    int64_t silent_ms = (tk_mono_us() - w->last_rx_us) / 1000;
    if (w->state == WSFEED_OPEN && silent_ms > w->o.silence_timeout_ms) {
        log_warn("feed %s: silent for %lld ms; reconnecting", w->env.name, (long long)silent_ms);
        wsfeed_set_detail(w, "stream silent", NULL);
        wsfeed_drop(w);
        w->state = WSFEED_CONNECTING; /* dropping: not live any more */
    }
    lws_sul_schedule(w->env.lws, 0, &w->check_sul, wsfeed_check, WSFEED_CHECK_US);
}

/* Every ping_interval_ms while open: ask for a WRITEABLE that sends ws_ping. */
static void wsfeed_ping(lws_sorted_usec_list_t *sul)
{
    wsfeed *w = lws_container_of(sul, wsfeed, ping_sul);
    if (w->state != WSFEED_OPEN || !w->wsi)
        return; /* re-armed on the next ESTABLISHED */
    w->want_ping = 1;
    lws_callback_on_writable(w->wsi);
    lws_sul_schedule(w->env.lws, 0, &w->ping_sul, wsfeed_ping,
                     (lws_usec_t)w->o.ping_interval_ms * 1000);
}

static int wsfeed_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                           void *in, size_t len)
{
    wsfeed *w = user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        w->state = WSFEED_OPEN;
        w->last_rx_us = tk_mono_us();
        log_info("feed %s: connected to %s:%d%.60s", w->env.name, w->host, w->port, w->path);
        if (w->subscribe[0]) {
            w->want_subscribe = 1;
            w->sub_off = 0;
            lws_callback_on_writable(wsi);
        }
        w->want_ping = 0;
        if (w->preset->ws_ping)
            lws_sul_schedule(w->env.lws, 0, &w->ping_sul, wsfeed_ping,
                             (lws_usec_t)w->o.ping_interval_ms * 1000);
        return 0;

    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (w->want_subscribe) {
            /* one line of the subscribe per WRITEABLE (Bybit: 10 args each) */
            const char *line = w->subscribe + w->sub_off;
            const char *nl = strchr(line, '\n');
            size_t n = nl ? (size_t)(nl - line) : strlen(line);
            unsigned char *buf = malloc(LWS_PRE + n);
            if (!buf)
                return -1;
            memcpy(buf + LWS_PRE, line, n);
            int wrote = lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT);
            free(buf);
            if (wrote < (int)n)
                return -1;
            w->sub_off += n + (nl ? 1 : 0);
            w->want_subscribe = nl != NULL;
            if (w->want_subscribe || w->want_ping) /* one write per WRITEABLE */
                lws_callback_on_writable(wsi);
        } else if (w->want_ping) {
            size_t n = strlen(w->preset->ws_ping);
            unsigned char buf[LWS_PRE + 32];
            if (n > sizeof(buf) - LWS_PRE)
                return -1;
            memcpy(buf + LWS_PRE, w->preset->ws_ping, n);
            w->want_ping = 0;
            if (lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n)
                return -1;
        }
        return 0;

    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (w->state != WSFEED_STOPPED)
            wsfeed_receive(w, wsi, in, len);
        return 0;

    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        w->conn_errors++;
        wsfeed_set_detail(w, "connection error", in ? (const char *)in : NULL);
        log_warn("feed %s: connection error: %s", w->env.name, in ? (const char *)in : "?");
        /* fallthrough */
    case LWS_CALLBACK_CLIENT_CLOSED:
        w->wsi = NULL;
        lws_sul_cancel(&w->ping_sul);
        free(w->rx);
        w->rx = NULL;
        w->rx_len = 0;
        w->rx_skip = 0;
        if (w->state == WSFEED_STOPPED)
            return 0;
        if (reason == LWS_CALLBACK_CLIENT_CLOSED && !w->detail[0])
            wsfeed_set_detail(w, "disconnected", NULL);
        w->state = WSFEED_IDLE;
        wsfeed_schedule_reconnect(w);
        return 0;

    default:
        return 0;
    }
}

static const struct lws_protocols wsfeed_protocol = {
    .name = WSFEED_PROTOCOL,
    .callback = wsfeed_callback,
    .rx_buffer_size = 4096,
};

const struct lws_protocols *feed_ws_protocol(void) { return &wsfeed_protocol; }

/* ---- lifecycle ---- */

static void wsfeed_destroy(void *self);

static int wsfeed_split_url(wsfeed *w)
{
    char buf[512];
    const char *prot, *addr, *path;
    snprintf(buf, sizeof(buf), "%s", w->o.url);
    if (lws_parse_uri(buf, &prot, &addr, &w->port, &path))
        return -1;
    w->tls = !strcmp(prot, "wss");
    snprintf(w->host, sizeof(w->host), "%s", addr);
    /* The configured path is honoured, a proxy prefix kept, and the preset's
     * endpoint never doubled (wss://ws.kraken.com/v2 is /v2, not /v2/v2):
     * venue_ws_target says how. */
    char stream[sizeof(w->path) - 256];
    if (w->preset->ws_path(w->venue_syms, w->o.nsymbols, stream, sizeof(stream)) < 0)
        return -1;
    if (venue_ws_target(path, stream, w->path, sizeof(w->path)) < 0)
        return -1;
    /* RFC 9110: Host carries the port unless it is the scheme's default. */
    if (venue_ws_host(w->host, w->port, w->tls, w->host_header, sizeof(w->host_header)) < 0)
        return -1;
    return 0;
}

static void *wsfeed_create(const void *opts, const feed_env *env)
{
    const wsfeed_opts *o = opts;
    wsfeed *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->env = *env;
    w->o = *o;
    w->o.symbols = calloc(o->nsymbols, sizeof(*o->symbols));
    w->venue_syms = calloc(o->nsymbols, sizeof(*w->venue_syms));
    w->known = calloc(o->nsymbols, sizeof(*w->known));
    w->subscribe = malloc(WSFEED_SUBSCRIBE_MAX);
    w->preset = venue_find(o->venue);
    w->rng = (uint64_t)tk_now_us() | 1;
    if (!w->o.symbols || !w->venue_syms || !w->known || !w->subscribe || !w->preset)
        goto fail;
    memcpy(w->o.symbols, o->symbols, o->nsymbols * sizeof(*o->symbols));
    for (size_t i = 0; i < o->nsymbols; i++) {
        w->venue_syms[i] = w->o.symbols[i].venue;
        w->known[i].bid = w->known[i].ask = w->known[i].last = NAN;
        w->known[i].volume = w->known[i].open = NAN;
        env->sink.declare(env->sink.arg, env->source, w->o.symbols[i].canonical, NULL);
    }
    if (o->capture[0]) {
        char cerr[160];
        /* Room for two of the largest messages, never less than the default. */
        size_t bytes = 2 * (size_t)o->max_message_bytes + 4096;
        w->capture = feed_capture_open(
            o->capture, bytes > FEED_CAPTURE_DEFAULT_BUFFER ? bytes : FEED_CAPTURE_DEFAULT_BUFFER,
            cerr, sizeof(cerr));
        if (!w->capture) {
            log_error("feed %s: capture: %s", env->name, cerr);
            goto fail;
        }
    }
    if (wsfeed_split_url(w)) {
        log_error("feed %s: cannot build the stream URL from %s", env->name, o->url);
        goto fail;
    }
    if (w->preset->ws_subscribe(w->venue_syms, o->nsymbols, w->subscribe, WSFEED_SUBSCRIBE_MAX) <
        0) {
        log_error("feed %s: subscribe message too large", env->name);
        goto fail;
    }
    return w;
fail:
    wsfeed_destroy(w);
    return NULL;
}

static int wsfeed_start(void *self)
{
    wsfeed *w = self;
    w->state = WSFEED_IDLE;
    w->last_rx_us = tk_mono_us();
    lws_sul_schedule(w->env.lws, 0, &w->connect_sul, wsfeed_connect, 1);
    lws_sul_schedule(w->env.lws, 0, &w->check_sul, wsfeed_check, WSFEED_CHECK_US);
    return 0;
}

static void wsfeed_stop(void *self)
{
    wsfeed *w = self;
    w->state = WSFEED_STOPPED;
    lws_sul_cancel(&w->connect_sul);
    lws_sul_cancel(&w->check_sul);
    lws_sul_cancel(&w->ping_sul);
    /* Outside any callback of this wsi: close it now, so no callback can
     * reach w after it is freed (CLOSED sees STOPPED and does nothing). */
    if (w->wsi)
        lws_set_timeout(w->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
    w->wsi = NULL;
}

static void wsfeed_destroy(void *self)
{
    wsfeed *w = self;
    if (!w)
        return;
    if (w->state != WSFEED_STOPPED)
        wsfeed_stop(w);
    feed_capture_close(w->capture);
    free(w->rx);
    free(w->subscribe);
    free(w->o.symbols);
    free(w->venue_syms);
    free(w->known);
    free(w);
}

static int wsfeed_reload(void *self, const void *opts)
{
    (void)self;
    (void)opts;
    return -1; /* the app restarts a feed whose settings may have changed */
}

static void wsfeed_status(const void *self, feed_status *st)
{
    const wsfeed *w = self;
    st->updates = w->updates;
    st->last_update_us = w->last_update_us;
    st->errors = w->venue_errors + w->rejects + w->conn_errors;
    st->malformed = w->malformed;
    st->oversized = w->oversized;
    st->reconnects = w->reconnects;
    st->captured_dropped = w->capture ? feed_capture_dropped(w->capture) : 0;
    int64_t silent_ms = (tk_mono_us() - w->last_rx_us) / 1000;
    if (w->state == WSFEED_OPEN && silent_ms <= w->o.silence_timeout_ms && w->updates)
        st->state = FEED_LIVE;
    else if (w->state == WSFEED_STOPPED || w->reconnects || w->detail[0])
        st->state = FEED_DOWN;
    else
        st->state = FEED_STARTING;
    if (st->state != FEED_LIVE)
        snprintf(st->detail, sizeof(st->detail), "%s", w->detail[0] ? w->detail : "connecting");
}

static int wsfeed_symbols(const void *opts, feed_symbol_fn each, void *arg)
{
    const wsfeed_opts *o = opts;
    venue_symbols_each(o->symbols, o->nsymbols, each, arg);
    return 0;
}

const feed_type feed_ws_type = {
    .name = "ws",
    .parse = wsfeed_parse,
    .free_opts = wsfeed_free_opts,
    .create = wsfeed_create,
    .start = wsfeed_start,
    .reload = wsfeed_reload,
    .stop = wsfeed_stop,
    .destroy = wsfeed_destroy,
    .status = wsfeed_status,
    .symbols = wsfeed_symbols,
};
