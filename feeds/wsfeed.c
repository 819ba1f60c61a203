/*
 * wsfeed.c — the WebSocket subscribing feed adapter (feed_ws_type) on the
 * libwebsockets client, on the service thread.
 *
 * One connection per feed to the venue preset's stream URL, or, for a venue
 * that limits symbols per connection (Binance 512), one per slice of at most
 * that many (venue_ws_shard): all of them are one feed. Once connected it
 * sends the preset's subscribe message (Binance subscribes by URL and sends
 * none unless the URL would be too long) and reads the venue's
 * acknowledgement; lws answers protocol pings.
 *
 * Connection age (venues that close connections after ws_max_conn_age_s,
 * Binance 24 h): a connection older than rotate_after_s is replaced
 * make-before-break. Each slot has room for two connections; the replacement
 * is opened beside the old one, and only once it is subscribed and has
 * delivered data is the old one closed (a close frame). While both are open
 * both deliver the same symbols: every update goes through a per-symbol order
 * check (the venue's venue_seq, else its event time) and one that is not
 * newer than what the feed already emitted is dropped and counted, so the
 * published stream has neither a gap nor a duplicate nor a step back. A
 * venue's shutdown notice opens the replacement at once; a venue that closes
 * the old one first leaves the replacement (if any) to take over, else it is
 * an ordinary reconnect with backoff.
 * Any message — data, heartbeat or ack — proves the stream alive; a stream
 * silent for silence_timeout_ms is dropped and re-opened. Every drop is
 * followed by a reconnect after exponential backoff with full jitter (uniform
 * in [0, min(max_backoff_ms, 250 ms·2^k)], k = failures since the last data),
 * re-subscribing; a venue's announced disconnect opens the replacement at
 * once: beside the announced connection where the preset orders its updates
 * (Binance serverShutdown, make-before-break, below), else after closing it
 * (OKX, Bitstamp notices), so a scheduled disconnect costs one reconnect.
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
#include "tickerd/venue_generic.h"

#define WSFEED_PROTOCOL "tickerd-upstream"
#define WSFEED_BACKOFF_BASE_MS 250
#define WSFEED_CHECK_US 500000
#define WSFEED_SUBSCRIBE_MAX 65536
#define WSFEED_MAX_SYMBOLS 1000 /* one connection's worth for every venue without a per-connection limit */
/* A venue with a per-connection limit gets at most this many connections:
 * Binance 16 x 512 = 8192 symbols (its whole spot list is a few thousand),
 * 32 sockets while every slot rotates, well inside Binance's 300 new
 * connections per 5 minutes. */
#define WSFEED_MAX_CONNS FEED_MAX_CONNS
/* Default rotation: this long before the venue's own limit (Binance: at
 * 23.5 h of a 24 h lifetime). */
#define WSFEED_ROTATE_MARGIN_S 1800

typedef struct wsfeed_opts {
    char venue[16];
    char url[512];
    int silence_timeout_ms;
    int max_backoff_ms;
    int max_message_bytes;
    int ping_interval_ms; /* 0 = the preset's; only for presets with ws_ping */
    int rotate_after_s;   /* 0 = never; only for presets with ws_max_conn_age_s */
    char capture[512]; /* "" = off */
    venue_symbol_map *symbols;
    size_t nsymbols;
    /* "venue": "generic": the subscribe template and the mapping (plain values) */
    int generic;
    char subscribe[VENUE_GENERIC_URL_MAX];
    venue_generic map;
} wsfeed_opts;

typedef enum { WSC_IDLE, WSC_CONNECTING, WSC_OPEN } wsconn_state;

struct wsfeed;
struct wsshard;

/* One upstream connection. */
typedef struct wsconn {
    struct wsshard *sh;
    lws_sorted_usec_list_t ping_sul; /* the preset's text keepalive */
    struct lws *wsi;
    wsconn_state state;
    int64_t started_us;  /* monotonic: connect issued */
    int64_t opened_us;   /* monotonic: handshake done (its age counts from here) */
    int64_t last_rx_us;  /* monotonic */
    int subscribed;      /* acknowledged, or nothing to send */
    int delivering;      /* a data message since it was subscribed */
    int retiring;        /* replaced: being closed by us */
    int64_t retired_us;  /* monotonic: when it was asked to close */
    int want_subscribe, want_ping, want_close;
    size_t sub_off;      /* next line of a multi-message subscribe */
    char *rx;            /* reassembly of a message split over callbacks */
    size_t rx_len;
    int rx_skip;
} wsconn;

/* One slice of the symbols and the (at most two) connections carrying it. */
typedef struct wsshard {
    struct wsfeed *w;
    lws_sorted_usec_list_t connect_sul; /* the next (re)connect or replacement */
    int k;
    size_t first, n;     /* symbols [first, first + n) */
    char path[2048];
    char *subscribe;     /* the subscribe message ("" = none) */
    wsconn c[2];
    int rotate;          /* a replacement is wanted (age or venue notice) */
    int failures;        /* since the last data: drives the backoff */
    int reconnect_now;
    int ever_down;       /* has dropped at least once */
    uint64_t reconnects, rotations;
    char detail[128];
} wsshard;

/* What the order check remembers per symbol. */
typedef struct wsorder {
    uint64_t seq;     /* last venue_seq emitted */
    int64_t event_us; /* last event time emitted by an update without one */
} wsorder;

typedef struct wsfeed {
    lws_sorted_usec_list_t check_sul;   /* silence watchdog, rotation clock */
    feed_env env;
    wsfeed_opts o;
    const venue_preset *preset;
    feed_capture *capture; /* raw frames, when "capture" is set */
    const char **venue_syms;
    uint32_t *by_venue;  /* symbol indices sorted by venue spelling (lookup per update) */
    feed_update *known;  /* last complete quote per symbol: partial messages merge in */
    wsorder *order;      /* NULL unless the preset allows overlapping connections */
    wsshard *shards;
    size_t nshards;
    int stopped;
    char host[256];
    char host_header[272]; /* host, or host:port off the scheme's default port */
    int port, tls;
    uint64_t rng;
    uint64_t updates, rejects, venue_errors, conn_errors, malformed, oversized;
    uint64_t rotations, stale_dropped;
    int64_t last_overlap_ms;
    int64_t last_update_us;
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
        {"rotate_after_s", CFG_INT, offsetof(wsfeed_opts, rotate_after_s), 0, 86400},
        {"subscribe", CFG_STRING, offsetof(wsfeed_opts, subscribe), 0, VENUE_GENERIC_URL_MAX},
    };
    static const char *const handled[] = {"type", "name", "symbols", "map", NULL};
    wsfeed_opts *o = calloc(1, sizeof(*o));
    if (!o)
        return cfg_fail(err, "%s: out of memory", path);
    o->silence_timeout_ms = 10000;
    o->max_backoff_ms = 30000;
    o->max_message_bytes = 262144;
    o->rotate_after_s = -1; /* not given */
    if (cfg_parse_fields(obj, path, fields, sizeof(fields) / sizeof(fields[0]), handled, o, err))
        goto fail;
    o->generic = !strcmp(o->venue, "generic");
    const venue_preset *v = o->generic ? &venue_generic_preset : venue_find(o->venue);
    if (!v || (!v->ws_parse && !o->generic)) {
        cfg_fail(err, "%s.venue: must be one of binance, coinbase, kraken, okx, bybit, bitstamp, generic",
                 path);
        goto fail;
    }
    if (o->generic) {
        char why[160];
        if (!o->url[0]) {
            cfg_fail(err, "%s.url: required for venue generic", path);
            goto fail;
        }
        if (venue_generic_check_subscribe(o->subscribe, why, sizeof(why))) {
            cfg_fail(err, "%s.subscribe: %s", path, why);
            goto fail;
        }
        if (venue_generic_parse_map(json_object_get(obj, "map"), path, &o->map, err))
            goto fail;
    } else if (o->subscribe[0] || json_object_get(obj, "map")) {
        cfg_fail(err, "%s.%s: only for \"venue\": \"generic\" (a preset knows its messages)", path,
                 o->subscribe[0] ? "subscribe" : "map");
        goto fail;
    }
    if (!o->ping_interval_ms)
        o->ping_interval_ms = v->ws_ping_interval_ms;
    else if (!v->ws_ping) {
        cfg_fail(err, "%s.ping_interval_ms: venue %s has no text keepalive", path, v->name);
        goto fail;
    }
    if (o->rotate_after_s < 0) {
        o->rotate_after_s = v->ws_max_conn_age_s > WSFEED_ROTATE_MARGIN_S
                                ? v->ws_max_conn_age_s - WSFEED_ROTATE_MARGIN_S
                                : 0;
    } else if (!v->ws_max_conn_age_s) {
        cfg_fail(err, "%s.rotate_after_s: venue %s has no connection age limit", path, v->name);
        goto fail;
    } else if (o->rotate_after_s >= v->ws_max_conn_age_s) {
        cfg_fail(err, "%s.rotate_after_s: must be below %s's connection lifetime of %d s (0 = off)",
                 path, v->name, v->ws_max_conn_age_s);
        goto fail;
    }
    if (!o->url[0])
        snprintf(o->url, sizeof(o->url), "%s", v->ws_url);
    if (strncmp(o->url, "ws://", 5) && strncmp(o->url, "wss://", 6)) {
        cfg_fail(err, "%s.url: must start with ws:// or wss://", path);
        goto fail;
    }
    size_t max = v->ws_conn_symbols ? v->ws_conn_symbols * WSFEED_MAX_CONNS : WSFEED_MAX_SYMBOLS;
    if (venue_parse_symbols(json_object_get(obj, "symbols"), path, v, max, &o->symbols,
                            &o->nsymbols, err))
        goto fail;
    /* One stream for every symbol: a quote must say which it is. */
    if (o->generic && o->nsymbols > 1 && !o->map.symbol.n && !o->map.symbol_is_key) {
        cfg_fail(err, "%s.map.symbol: required with %zu symbols on one stream", path, o->nsymbols);
        goto fail;
    }
    if (o->generic) {
        char probe[WSFEED_SUBSCRIBE_MAX];
        const char **syms = malloc(o->nsymbols * sizeof(*syms));
        int n = -1;
        for (size_t i = 0; syms && i < o->nsymbols; i++)
            syms[i] = o->symbols[i].venue;
        if (syms)
            n = venue_generic_subscribe(o->subscribe, syms, o->nsymbols, probe, sizeof(probe));
        free(syms);
        if (n < 0) {
            cfg_fail(err, "%s.subscribe: the messages for %zu symbols exceed %d bytes", path,
                     o->nsymbols, WSFEED_SUBSCRIBE_MAX);
            goto fail;
        }
    }
    *out = o;
    return 0;
fail:
    wsfeed_free_opts(o);
    return -1;
}

/* ---- small helpers ---- */

static wsconn *wsconn_other(wsconn *c) { return c == &c->sh->c[0] ? &c->sh->c[1] : &c->sh->c[0]; }

/* "feed x" or "feed x: connection 2/3" for logs. */
static const char *wsshard_name(const wsshard *sh, char *buf, size_t cap)
{
    if (sh->w->nshards > 1)
        snprintf(buf, cap, "feed %s: connection %d/%zu", sh->w->env.name, sh->k + 1,
                 sh->w->nshards);
    else
        snprintf(buf, cap, "feed %s", sh->w->env.name);
    return buf;
}
#define SHNAME(sh) wsshard_name((sh), (char[96]){0}, 96)

static void wsshard_set_detail(wsshard *sh, const char *what, const char *why)
{
    snprintf(sh->detail, sizeof(sh->detail), "%s%s%s", what, why && *why ? ": " : "",
             why ? why : "");
}

static int wsfeed_cmp_venue(const void *a, const void *b, void *arg);

/* The configured symbol an update names: binary search over the venue
 * spellings (an update per message, thousands of symbols), then the preset's
 * mapping for spellings the venue varies (Kraken XXBTZUSD). */
static long wsfeed_index(const wsfeed *w, const char *venue_symbol)
{
    size_t lo = 0, hi = w->o.nsymbols;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(w->o.symbols[w->by_venue[mid]].venue, venue_symbol) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < w->o.nsymbols && !strcmp(w->o.symbols[w->by_venue[lo]].venue, venue_symbol))
        return (long)w->by_venue[lo];
    return venue_symbol_index(w->preset, w->o.symbols, w->o.nsymbols, venue_symbol);
}

/* ---- messages ---- */

static void wsfeed_on_update(void *arg, const feed_update *in)
{
    wsconn *c = arg;
    wsfeed *w = c->sh->w;
    long i = wsfeed_index(w, in->symbol);
    if (i < 0)
        return; /* not a symbol this feed asked for */
    if (w->order) {
        /* Two connections may carry this symbol (a replacement beside the
         * old one): emit only what is newer than anything emitted so far,
         * whichever connection brings it first. Book tickers are ordered by
         * the venue's update id, the others by the venue's event time. */
        wsorder *ord = &w->order[i];
        if (in->venue_seq) {
            if (in->venue_seq <= ord->seq) {
                w->stale_dropped++;
                return;
            }
            ord->seq = in->venue_seq;
        } else {
            if (in->ts_us <= ord->event_us) {
                w->stale_dropped++;
                return;
            }
            ord->event_us = in->ts_us;
        }
    }
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

static void wsconn_drop(wsconn *c)
{
    /* Closed from outside its callbacks' return path: lws kills it on its
     * next pass and CLIENT_CLOSED decides what follows. */
    if (c->wsi)
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void wsshard_want_replacement(wsshard *sh, const char *why);

/* c became live (subscribed and delivering): if it was opened to replace the
 * other connection of its slot, that one goes now, with a close frame. */
static void wsconn_live(wsconn *c)
{
    wsshard *sh = c->sh;
    wsconn *old = wsconn_other(c);
    c->delivering = 1;
    sh->failures = 0; /* the stream works: the next drop starts the backoff afresh */
    sh->detail[0] = '\0';
    if (old->state == WSC_IDLE || old->retiring || !sh->rotate)
        return;
    sh->rotate = 0;
    sh->reconnect_now = 0; /* a venue notice, if any, is answered */
    old->retiring = 1;
    old->retired_us = tk_mono_us();
    if (old->state == WSC_OPEN && old->wsi) {
        old->want_close = 1;
        lws_callback_on_writable(old->wsi);
    } else {
        wsconn_drop(old);
    }
    log_info("%s: replacement live after %lld ms; closing the old connection", SHNAME(sh),
             (long long)((tk_mono_us() - c->started_us) / 1000));
}

static void wsconn_message(wsconn *c, const char *msg, size_t len)
{
    wsshard *sh = c->sh;
    wsfeed *w = sh->w;
    char err[160] = "";
    venue_emit emit = {.arg = c, .update = wsfeed_on_update};
    int64_t recv_us = tk_now_us();
    feed_capture_ws(w->capture, recv_us, msg, len); /* raw, whatever it says */
    /* generic: with one symbol and no symbol path, every quote is that symbol's */
    venue_msg m = w->o.generic
                      ? venue_generic_parse(&w->o.map, 0, msg, len,
                                            w->o.nsymbols == 1 ? w->venue_syms[0] : NULL,
                                            w->env.source, recv_us, &emit, err, sizeof(err))
                      : w->preset->ws_parse(msg, len, w->env.source, recv_us, &emit, err, sizeof(err));
    switch (m) {
    case VENUE_MSG_DATA:
        /* Data only flows for subscribed streams, so it also proves the
         * subscription of a venue whose ack we did not see first. */
        c->subscribed = 1;
        if (!c->delivering) {
            wsconn_live(c);
        } else {
            sh->failures = 0;
            sh->detail[0] = '\0';
        }
        break;
    case VENUE_MSG_ACK:
        c->subscribed = 1;
        log_info("%s: subscription acknowledged", SHNAME(sh));
        break;
    case VENUE_MSG_REJECT:
        w->rejects++;
        wsshard_set_detail(sh, "subscription rejected", err);
        log_error("%s: subscription rejected: %s", SHNAME(sh), err);
        break;
    case VENUE_MSG_SHUTDOWN:
        log_info("%s: venue announced a disconnect; reconnecting now", SHNAME(sh));
        sh->reconnect_now = 1;
        if (c->retiring)
            break;
        if (w->order)
            wsshard_want_replacement(sh, "venue notice");
        else
            wsconn_drop(c); /* no order to tell copies apart: break, then make */
        break;
    case VENUE_MSG_ERROR:
        w->venue_errors++;
        wsshard_set_detail(sh, "venue error", err);
        log_warn("%s: venue error: %s", SHNAME(sh), err);
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

static void wsconn_receive(wsconn *c, struct lws *wsi, const char *in, size_t len)
{
    wsfeed *w = c->sh->w;
    int final = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
    c->last_rx_us = tk_mono_us();
    if (!c->rx_skip && c->rx_len + len + lws_remaining_packet_payload(wsi) >
                           (size_t)w->o.max_message_bytes) {
        c->rx_skip = 1; /* bounded: the rest of this message is discarded */
        w->oversized++;
        log_warn("feed %s: message over max_message_bytes (%d) discarded", w->env.name,
                 w->o.max_message_bytes);
    }
    if (!c->rx_skip) {
        if (final && !c->rx_len) {
            wsconn_message(c, in, len);
        } else {
            if (!c->rx)
                c->rx = malloc((size_t)w->o.max_message_bytes);
            if (c->rx) {
                memcpy(c->rx + c->rx_len, in, len);
                c->rx_len += len;
                if (final)
                    wsconn_message(c, c->rx, c->rx_len);
            } else {
                c->rx_skip = 1;
            }
        }
    }
    if (final) {
        free(c->rx);
        c->rx = NULL;
        c->rx_len = 0;
        c->rx_skip = 0;
    }
}

/* ---- connecting ---- */

static void wsshard_connect(lws_sorted_usec_list_t *sul);

static void wsshard_schedule_reconnect(wsshard *sh)
{
    wsfeed *w = sh->w;
    int64_t delay_ms = 0;
    if (!sh->reconnect_now) {
        int k = sh->failures < 16 ? sh->failures : 16;
        int64_t ceiling = (int64_t)WSFEED_BACKOFF_BASE_MS << k;
        if (ceiling > w->o.max_backoff_ms)
            ceiling = w->o.max_backoff_ms;
        w->rng ^= w->rng << 13;
        w->rng ^= w->rng >> 7;
        w->rng ^= w->rng << 17;
        delay_ms = (int64_t)(w->rng % (uint64_t)(ceiling + 1)); /* full jitter */
    }
    sh->reconnect_now = 0;
    sh->failures++;
    sh->reconnects++;
    sh->ever_down = 1;
    log_info("%s: reconnecting in %lld ms", SHNAME(sh), (long long)delay_ms);
    lws_sul_schedule(w->env.lws, 0, &sh->connect_sul, wsshard_connect, delay_ms * 1000);
}

/* Open a second connection beside the working one (make-before-break). */
static void wsshard_want_replacement(wsshard *sh, const char *why)
{
    if (sh->rotate || (sh->c[0].state != WSC_IDLE && sh->c[1].state != WSC_IDLE))
        return; /* one is on its way already */
    sh->rotate = 1;
    log_info("%s: opening a replacement connection (%s)", SHNAME(sh), why);
    lws_sul_schedule(sh->w->env.lws, 0, &sh->connect_sul, wsshard_connect, 1);
}

static void wsshard_connect(lws_sorted_usec_list_t *sul)
{
    wsshard *sh = lws_container_of(sul, wsshard, connect_sul);
    wsfeed *w = sh->w;
    if (w->stopped)
        return;
    wsconn *c = sh->c[0].state == WSC_IDLE ? &sh->c[0] : &sh->c[1];
    wsconn *other = wsconn_other(c);
    if (c->state != WSC_IDLE || (other->state != WSC_IDLE && !sh->rotate))
        return; /* nothing to open (a reconnect overtaken by a replacement) */
    if (other->state == WSC_IDLE && w->order) {
        /* A fresh start, nothing to overlap with: forget the order of this
         * slice, so a venue that restarted its counters is not ignored. */
        for (size_t i = sh->first; i < sh->first + sh->n; i++)
            w->order[i] = (wsorder){0, 0};
    }
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
    i.path = sh->path;
    i.ssl_connection = w->tls ? LCCSCF_USE_SSL : 0;
    i.alpn = "http/1.1";
    i.local_protocol_name = WSFEED_PROTOCOL;
    i.userdata = c;
    i.pwsi = &c->wsi;
    c->state = WSC_CONNECTING;
    c->started_us = c->last_rx_us = tk_mono_us();
    c->opened_us = 0;
    c->subscribed = c->delivering = c->retiring = 0;
    c->want_subscribe = c->want_ping = c->want_close = 0;
    if (!lws_client_connect_via_info(&i)) {
        c->wsi = NULL;
        c->state = WSC_IDLE;
        wsshard_set_detail(sh, "connect failed", NULL);
        wsshard_schedule_reconnect(sh);
    }
}

/* Every WSFEED_CHECK_US: silence, a replacement that does not come up, and
 * connections old enough to be replaced. */
static void wsfeed_check(lws_sorted_usec_list_t *sul)
{
    wsfeed *w = lws_container_of(sul, wsfeed, check_sul);
    if (w->stopped)
        return;
    int64_t now = tk_mono_us();
    for (size_t s = 0; s < w->nshards; s++) {
        wsshard *sh = &w->shards[s];
        for (int j = 0; j < 2; j++) {
            wsconn *c = &sh->c[j], *other = &sh->c[1 - j];
            if (c->retiring && now - c->retired_us > 2000000) {
                wsconn_drop(c); /* its close frame never went out: cut it */
                continue;
            }
            if (c->state != WSC_OPEN || c->retiring)
                continue;
            int64_t silent_ms = (now - c->last_rx_us) / 1000;
            if (silent_ms > w->o.silence_timeout_ms) {
                log_warn("%s: silent for %lld ms; reconnecting", SHNAME(sh), (long long)silent_ms);
                wsshard_set_detail(sh, "stream silent", NULL);
                c->delivering = 0; /* dropping: not live any more */
                wsconn_drop(c);
            } else if (sh->rotate && !c->delivering && other->state == WSC_OPEN &&
                       (now - c->started_us) / 1000 > w->o.silence_timeout_ms) {
                /* a replacement that never delivered: try again later, the
                 * old connection keeps serving meanwhile */
                log_warn("%s: replacement not live after %d ms; retrying", SHNAME(sh),
                         w->o.silence_timeout_ms);
                wsconn_drop(c);
            } else if (w->o.rotate_after_s && c->delivering && other->state == WSC_IDLE &&
                       now - c->opened_us >= (int64_t)w->o.rotate_after_s * 1000000) {
                wsshard_want_replacement(sh, "connection age");
            }
        }
    }
    lws_sul_schedule(w->env.lws, 0, &w->check_sul, wsfeed_check, WSFEED_CHECK_US);
}

/* Every ping_interval_ms while open: ask for a WRITEABLE that sends ws_ping. */
static void wsconn_ping(lws_sorted_usec_list_t *sul)
{
    wsconn *c = lws_container_of(sul, wsconn, ping_sul);
    wsfeed *w = c->sh->w;
    if (c->state != WSC_OPEN || !c->wsi || w->stopped)
        return; /* re-armed on the next ESTABLISHED */
    c->want_ping = 1;
    lws_callback_on_writable(c->wsi);
    lws_sul_schedule(w->env.lws, 0, &c->ping_sul, wsconn_ping,
                     (lws_usec_t)w->o.ping_interval_ms * 1000);
}

/* A connection is gone (closed, failed, or killed by us). */
static void wsconn_closed(wsconn *c, int failed)
{
    wsshard *sh = c->sh;
    wsfeed *w = sh->w;
    wsconn *other = wsconn_other(c);
    int was_retiring = c->retiring, was_live = c->delivering;
    int64_t opened = c->opened_us;
    c->wsi = NULL;
    c->state = WSC_IDLE;
    c->subscribed = c->delivering = c->retiring = 0;
    c->want_subscribe = c->want_ping = c->want_close = 0;
    lws_sul_cancel(&c->ping_sul);
    free(c->rx);
    c->rx = NULL;
    c->rx_len = 0;
    c->rx_skip = 0;
    if (w->stopped)
        return;
    if (was_retiring) {
        /* make-before-break done: the replacement was live before this went */
        sh->rotations++;
        w->rotations++;
        w->last_overlap_ms = other->opened_us ? (tk_mono_us() - other->opened_us) / 1000 : 0;
        log_info("%s: connection replaced without a gap (overlap %lld ms, old one %lld s old)",
                 SHNAME(sh), (long long)w->last_overlap_ms,
                 (long long)(opened ? (tk_mono_us() - opened) / 1000000 : 0));
        return;
    }
    if (other->state != WSC_IDLE) {
        if (sh->rotate && other->opened_us && opened && other->opened_us < opened) {
            /* the replacement failed; the old one still serves */
            log_warn("%s: replacement connection %s; retrying", SHNAME(sh),
                     failed ? "failed" : "closed");
            wsshard_schedule_reconnect(sh);
        } else if (sh->rotate && !other->opened_us && opened) {
            /* the replacement is still connecting and this one (the old) is
             * gone: the venue closed it first; the replacement takes over */
            sh->rotate = 0;
            sh->reconnects++;
            log_info("%s: the venue closed the connection before its replacement was live; "
                     "the replacement takes over",
                     SHNAME(sh));
        } else if (sh->rotate && !opened) {
            /* the replacement failed before its handshake */
            log_warn("%s: replacement connection failed; retrying", SHNAME(sh));
            wsshard_schedule_reconnect(sh);
        } else {
            /* the old one went first, the replacement is open: it takes over */
            sh->rotate = 0;
            if (!was_live || !other->delivering)
                sh->reconnects++;
            log_info("%s: connection closed; its replacement takes over", SHNAME(sh));
        }
        return;
    }
    sh->rotate = 0;
    if (!failed && !sh->detail[0])
        wsshard_set_detail(sh, "disconnected", NULL);
    wsshard_schedule_reconnect(sh);
}

static int wsfeed_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                           void *in, size_t len)
{
    wsconn *c = user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED: {
        wsshard *sh = c->sh;
        wsfeed *w = sh->w;
        c->state = WSC_OPEN;
        c->opened_us = c->last_rx_us = tk_mono_us();
        log_info("%s: connected to %s:%d%.60s", SHNAME(sh), w->host, w->port, sh->path);
        c->subscribed = !sh->subscribe[0];
        if (sh->subscribe[0]) {
            c->want_subscribe = 1;
            c->sub_off = 0;
            lws_callback_on_writable(wsi);
        }
        c->want_ping = 0;
        if (w->preset->ws_ping)
            lws_sul_schedule(w->env.lws, 0, &c->ping_sul, wsconn_ping,
                             (lws_usec_t)w->o.ping_interval_ms * 1000);
        return 0;
    }

    case LWS_CALLBACK_CLIENT_WRITEABLE: {
        wsshard *sh = c->sh;
        if (c->want_close) {
            /* the replaced connection: a normal close, not a dropped socket */
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"replaced", 8);
            return -1;
        }
        if (c->want_subscribe) {
            /* one line of the subscribe per WRITEABLE (Bybit: 10 args each) */
            const char *line = sh->subscribe + c->sub_off;
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
            c->sub_off += n + (nl ? 1 : 0);
            c->want_subscribe = nl != NULL;
            if (c->want_subscribe || c->want_ping) /* one write per WRITEABLE */
                lws_callback_on_writable(wsi);
        } else if (c->want_ping) {
            const char *ping = sh->w->preset->ws_ping;
            size_t n = strlen(ping);
            unsigned char buf[LWS_PRE + 32];
            if (n > sizeof(buf) - LWS_PRE)
                return -1;
            memcpy(buf + LWS_PRE, ping, n);
            c->want_ping = 0;
            if (lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n)
                return -1;
        }
        return 0;
    }

    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (c && !c->sh->w->stopped)
            wsconn_receive(c, wsi, in, len);
        return 0;

    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (!c)
            return 0;
        if (!c->sh->w->stopped) {
            c->sh->w->conn_errors++;
            wsshard_set_detail(c->sh, "connection error", in ? (const char *)in : NULL);
            log_warn("%s: connection error: %s", SHNAME(c->sh), in ? (const char *)in : "?");
        }
        wsconn_closed(c, 1);
        return 0;

    case LWS_CALLBACK_CLIENT_CLOSED:
        if (c)
            wsconn_closed(c, 0);
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
     * venue_ws_target says how. Each slice has its own (Binance names its
     * streams in the URL). */
    for (size_t k = 0; k < w->nshards; k++) {
        wsshard *sh = &w->shards[k];
        char stream[sizeof(sh->path) - 256] = ""; /* generic: the configured path as it is */
        if (w->preset->ws_path &&
            w->preset->ws_path(w->venue_syms + sh->first, sh->n, stream, sizeof(stream)) < 0)
            return -1;
        if (venue_ws_target(path, stream, sh->path, sizeof(sh->path)) < 0)
            return -1;
    }
    /* RFC 9110: Host carries the port unless it is the scheme's default. */
    if (venue_ws_host(w->host, w->port, w->tls, w->host_header, sizeof(w->host_header)) < 0)
        return -1;
    return 0;
}

static int wsfeed_cmp_venue(const void *a, const void *b, void *arg)
{
    const venue_symbol_map *m = arg;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    int r = strcmp(m[x].venue, m[y].venue);
    return r ? r : (x > y) - (x < y); /* the first of duplicates first */
}

/* qsort_r is not C11: a small insertion-free merge sort over the indices. */
static void wsfeed_sort_index(uint32_t *a, uint32_t *tmp, size_t n, const venue_symbol_map *m)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    wsfeed_sort_index(a, tmp, h, m);
    wsfeed_sort_index(a + h, tmp, n - h, m);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = wsfeed_cmp_venue(&a[i], &a[j], (void *)m) <= 0 ? a[i++] : a[j++];
    while (i < h)
        tmp[k++] = a[i++];
    while (j < n)
        tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof(*a));
}

static void *wsfeed_create(const void *opts, const feed_env *env)
{
    const wsfeed_opts *o = opts;
    wsfeed *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->env = *env;
    w->o = *o;
    w->preset = o->generic ? &venue_generic_preset : venue_find(o->venue);
    w->o.symbols = calloc(o->nsymbols, sizeof(*o->symbols));
    w->venue_syms = calloc(o->nsymbols, sizeof(*w->venue_syms));
    w->known = calloc(o->nsymbols, sizeof(*w->known));
    w->by_venue = calloc(o->nsymbols, sizeof(*w->by_venue));
    uint32_t *tmp = calloc(o->nsymbols, sizeof(*tmp));
    w->nshards = w->preset ? venue_ws_conns(o->nsymbols, w->preset->ws_conn_symbols) : 0;
    w->shards = w->nshards <= WSFEED_MAX_CONNS ? calloc(w->nshards, sizeof(*w->shards)) : NULL;
    if (w->preset && w->preset->ws_max_conn_age_s)
        w->order = calloc(o->nsymbols, sizeof(*w->order));
    w->rng = (uint64_t)tk_now_us() | 1;
    w->last_overlap_ms = -1;
    if (!w->o.symbols || !w->venue_syms || !w->known || !w->by_venue || !tmp || !w->shards ||
        !w->preset || (w->preset->ws_max_conn_age_s && !w->order)) {
        free(tmp);
        goto fail;
    }
    memcpy(w->o.symbols, o->symbols, o->nsymbols * sizeof(*o->symbols));
    for (size_t i = 0; i < o->nsymbols; i++) {
        w->venue_syms[i] = w->o.symbols[i].venue;
        w->by_venue[i] = (uint32_t)i;
        w->known[i].bid = w->known[i].ask = w->known[i].last = NAN;
        w->known[i].volume = w->known[i].open = NAN;
        env->sink.declare(env->sink.arg, env->source, w->o.symbols[i].canonical, NULL);
    }
    wsfeed_sort_index(w->by_venue, tmp, o->nsymbols, w->o.symbols);
    free(tmp);
    for (size_t k = 0; k < w->nshards; k++) {
        wsshard *sh = &w->shards[k];
        sh->w = w;
        sh->k = (int)k;
        sh->c[0].sh = sh->c[1].sh = sh;
        venue_ws_shard(o->nsymbols, w->preset->ws_conn_symbols, k, &sh->first, &sh->n);
        sh->subscribe = malloc(WSFEED_SUBSCRIBE_MAX);
        if (!sh->subscribe)
            goto fail;
        const char *const *syms = w->venue_syms + sh->first;
        int n = o->generic ? venue_generic_subscribe(o->subscribe, syms, sh->n, sh->subscribe,
                                                     WSFEED_SUBSCRIBE_MAX)
                           : w->preset->ws_subscribe(syms, sh->n, sh->subscribe, WSFEED_SUBSCRIBE_MAX);
        if (n < 0) {
            log_error("feed %s: subscribe message too large", env->name);
            goto fail;
        }
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
    if (w->nshards > 1)
        log_info("feed %s: %zu symbols over %zu connections (at most %zu each)", env->name,
                 o->nsymbols, w->nshards, w->preset->ws_conn_symbols);
    return w;
fail:
    w->stopped = 1; /* nothing started: destroy must not stop anything */
    wsfeed_destroy(w);
    return NULL;
}

static int wsfeed_start(void *self)
{
    wsfeed *w = self;
    w->stopped = 0;
    for (size_t k = 0; k < w->nshards; k++)
        lws_sul_schedule(w->env.lws, 0, &w->shards[k].connect_sul, wsshard_connect, 1);
    lws_sul_schedule(w->env.lws, 0, &w->check_sul, wsfeed_check, WSFEED_CHECK_US);
    return 0;
}

static void wsfeed_stop(void *self)
{
    wsfeed *w = self;
    w->stopped = 1;
    lws_sul_cancel(&w->check_sul);
    for (size_t k = 0; k < w->nshards; k++) {
        wsshard *sh = &w->shards[k];
        lws_sul_cancel(&sh->connect_sul);
        for (int j = 0; j < 2; j++) {
            wsconn *c = &sh->c[j];
            lws_sul_cancel(&c->ping_sul);
            /* Outside any callback of this wsi: close it now, so no callback
             * can reach w after it is freed (CLOSED sees stopped). */
            struct lws *wsi = c->wsi;
            c->wsi = NULL;
            if (wsi)
                lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
            c->state = WSC_IDLE;
        }
    }
}

static void wsfeed_destroy(void *self)
{
    wsfeed *w = self;
    if (!w)
        return;
    if (!w->stopped)
        wsfeed_stop(w);
    feed_capture_close(w->capture);
    for (size_t k = 0; w->shards && k < w->nshards; k++) {
        free(w->shards[k].subscribe);
        free(w->shards[k].c[0].rx);
        free(w->shards[k].c[1].rx);
    }
    free(w->shards);
    free(w->o.symbols);
    free(w->venue_syms);
    free(w->known);
    free(w->by_venue);
    free(w->order);
    free(w);
}

static int wsfeed_reload(void *self, const void *opts)
{
    (void)self;
    (void)opts;
    return -1; /* the app restarts a feed whose settings may have changed */
}

/* A slice is up while one of its connections is open, subscribed, delivering
 * and not silent. */
static int wsshard_up(const wsshard *sh, int64_t now)
{
    for (int j = 0; j < 2; j++) {
        const wsconn *c = &sh->c[j];
        if (c->state == WSC_OPEN && c->delivering &&
            (now - c->last_rx_us) / 1000 <= sh->w->o.silence_timeout_ms)
            return 1;
    }
    return 0;
}

static void wsfeed_status(const void *self, feed_status *st)
{
    const wsfeed *w = self;
    int64_t now = tk_mono_us();
    st->updates = w->updates;
    st->last_update_us = w->last_update_us;
    st->errors = w->venue_errors + w->rejects + w->conn_errors;
    st->malformed = w->malformed;
    st->oversized = w->oversized;
    st->captured_dropped = w->capture ? feed_capture_dropped(w->capture) : 0;
    st->rotations = w->rotations;
    st->stale_dropped = w->stale_dropped;
    st->last_overlap_ms = w->last_overlap_ms;
    st->nconns = (uint32_t)w->nshards;
    int all_up = 1;
    const wsshard *bad = NULL, *down = NULL;
    for (size_t k = 0; k < w->nshards; k++) {
        const wsshard *sh = &w->shards[k];
        feed_conn_status *cs = &st->conns[k];
        int up = wsshard_up(sh, now);
        st->reconnects += sh->reconnects;
        cs->symbols = (uint32_t)sh->n;
        cs->up = (uint8_t)up;
        cs->overlapping = sh->c[0].state != WSC_IDLE && sh->c[1].state != WSC_IDLE;
        cs->reconnects = sh->reconnects;
        cs->rotations = sh->rotations;
        cs->age_ms = -1;
        for (int j = 0; j < 2; j++)
            if (sh->c[j].state == WSC_OPEN && (now - sh->c[j].opened_us) / 1000 > cs->age_ms)
                cs->age_ms = (now - sh->c[j].opened_us) / 1000;
        if (!up) {
            all_up = 0;
            if (!bad && (sh->ever_down || sh->detail[0]))
                bad = sh;
            if (!down)
                down = sh;
        }
    }
    /* Live only when every slice is: a slice that is down leaves its symbols
     * without quotes (their per-symbol failover happens in the normalizer);
     * the per-connection gauges in /metrics say which one. */
    if (all_up && w->updates && !w->stopped)
        st->state = FEED_LIVE;
    else if (w->stopped || bad)
        st->state = FEED_DOWN;
    else
        st->state = FEED_STARTING;
    if (st->state != FEED_LIVE) {
        const wsshard *sh = bad ? bad : down;
        const char *d = sh && sh->detail[0] ? sh->detail : "connecting";
        if (sh && w->nshards > 1)
            snprintf(st->detail, sizeof(st->detail), "connection %d/%zu: %.80s", sh->k + 1,
                     w->nshards, d);
        else
            snprintf(st->detail, sizeof(st->detail), "%s", d);
    }
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
