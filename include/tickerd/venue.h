/*
 * venue.h — venue presets: the wire formats of real exchanges and price APIs
 * (Binance Spot, Coinbase Exchange, Kraken WS v2 + REST, CoinGecko, OKX v5), reduced
 * to pure functions: symbol mapping, the URL/path/subscribe text to send, and
 * parsers turning one received message into `feed_update`s. No sockets, no
 * threads, no state: a WebSocket or REST adapter owns the connection and calls
 * these. The formats follow the venues' public documentation; every choice a
 * parser makes beyond it is stated here or in the preset's file.
 *
 * Partial updates. The parsers are stateless and report only what a message
 * carries. A field the message lacks is NAN:
 *   - bid and ask are NAN when the message has no book (Binance miniTicker,
 *     Binance /ticker/price, a Coinbase ticker without best_bid/best_ask);
 *   - last is the mid (bid+ask)/2 when the message has a book but no trade
 *     price (Binance bookTicker); it is NAN only if neither is present;
 *   - volume (24 h, base units) and open (venue 24 h or session open) are NAN
 *     when absent.
 * The ADAPTER, not the parser, merges a partial update with the last known
 * values of that symbol before handing it to its sink (the normalizer rejects
 * NaN) and drops it while a required field has never been seen.
 *
 * Prices pass through unchecked beyond "is a number": zero, negative or
 * crossed prices reach the normalizer, which rejects them. A value that is the
 * wrong JSON type for its venue (a string where Kraken WS sends numbers, a
 * number where Binance sends strings), a string that is not a plain decimal,
 * or a number that overflows a double makes the whole message MALFORMED.
 *
 * All or nothing: a parser emits only when it returns VENUE_MSG_DATA, and then
 * every entry of the message was valid. A message with one bad entry emits
 * nothing and returns MALFORMED (each list is checked before any emit). A
 * well-formed data message with an empty list (Binance [], Kraken result {},
 * CoinGecko {}) is DATA with no update.
 *
 * Time: ts_us is the venue's event time in µs since the Unix epoch: epoch
 * milliseconds * 1000, epoch seconds * 1000000, RFC3339 parsed exactly to the
 * µs (finer digits are truncated). When a message has no time (Binance
 * bookTicker, Binance/Kraken REST, optional fields absent), ts_us = recv_us.
 */
#ifndef TICKERD_VENUE_H
#define TICKERD_VENUE_H

#include <stddef.h>
#include <stdint.h>

#include "tickerd/feed.h"
#include "tickerd/symtab.h"

/* What one received message was. */
typedef enum {
    VENUE_MSG_DATA = 0,  /* carried prices: emitted >= 0 updates */
    VENUE_MSG_ACK,       /* a subscription acknowledgement */
    VENUE_MSG_REJECT,    /* a subscription was rejected (err says why) */
    VENUE_MSG_HEARTBEAT, /* liveness only (Coinbase heartbeat, Kraken heartbeat/status/pong) */
    VENUE_MSG_SHUTDOWN,  /* venue announced it will drop us (Binance serverShutdown): reconnect now */
    VENUE_MSG_IGNORED,   /* well-formed but irrelevant (unknown type etc.) */
    VENUE_MSG_ERROR,     /* the venue reports an error (Binance {"code","msg"}, Coinbase type:error, Kraken error[], CoinGecko status) */
    VENUE_MSG_MALFORMED, /* not JSON, wrong types, missing fields, non-numeric prices */
} venue_msg;

/* Where parsed updates go. u (and u->symbol, which points into the parsed
 * message) is valid only during the call. A NULL emit or NULL update is
 * allowed: the message is then only classified. */
typedef struct venue_emit {
    void *arg;
    void (*update)(void *arg, const feed_update *u);
} venue_emit;

/* Largest message a parser accepts; longer ones are MALFORMED ("too large")
 * before any JSON parsing. 1 MiB messages are well inside. */
#define VENUE_MAX_MESSAGE (16u * 1024 * 1024)

/* Longest venue symbol the path/subscribe builders accept, with the NUL. */
#define VENUE_SYMBOL_MAX 64

typedef struct venue_preset {
    const char *name; /* "binance", "coinbase", "kraken", "coingecko" */

    /* Symbol mapping. canonical is BASE-QUOTE upper case ("BTC-USD", "BTC-USDT").
     * Binance: BTCUSDT <-> BTC-USDT (split on the longest known quote asset;
     *   lower case "btcusdt" is accepted too);
     * Coinbase: product ids are canonical already (BTC-USD);
     * Kraken: v2 BTC/USD <-> BTC-USD; v1 names and REST result keys XBTUSD,
     *   XXBTZUSD, XETHZUSD, XDGUSD -> BTC-USD, ETH-USD, DOGE-USD (XBT->BTC,
     *   XDG->DOGE, the X/Z prefixes of the classic 4-letter codes stripped);
     *   to_venue gives the v2 name;
     * CoinGecko: ids are not symbols; the mapping comes from config: both
     *   return -1.
     * Return 0, or -1 when it cannot map or out (cap bytes) is too small. */
    int (*to_canonical)(const char *venue_symbol, char *out, size_t cap);
    int (*to_venue)(const char *canonical, char *out, size_t cap);

    /* ---- WebSocket: all NULL where the venue has no WS preset (coingecko) ---- */
    const char *ws_url; /* default, e.g. "wss://stream.binance.com:9443" */
    /* Path+query to connect to for these venue symbols, e.g. Binance
     * "/stream?streams=btcusdt@bookTicker/btcusdt@miniTicker"; Coinbase "/",
     * Kraken "/v2". Returns the length, or -1 if n is 0, a symbol is not a
     * plain name of the venue (Binance [A-Za-z0-9], Coinbase [A-Za-z0-9-],
     * Kraken [A-Za-z0-9.] with one inner '/', CoinGecko [A-Za-z0-9._-]; all
     * shorter than VENUE_SYMBOL_MAX, so nothing ever needs escaping), the
     * result does not fit in cap, or (Binance) n > VENUE_BINANCE_MAX_SYMBOLS. */
    int (*ws_path)(const char *const *venue_symbols, size_t n, char *out, size_t cap);
    /* The subscribe message to send once connected: "" (length 0) when the URL
     * already subscribes (Binance combined streams, while the URL is at most
     * VENUE_BINANCE_MAX_URL_PATH; else one SUBSCRIBE); Coinbase: ticker +
     * heartbeat channels; Kraken: ticker with the symbol array. Returns the
     * length, or -1 (bad symbol, n == 0, does not fit). Several messages
     * (Bybit: at most VENUE_BYBIT_MAX_ARGS topics each) are separated by
     * '\n'; the adapter sends each line as its own text frame. */
    int (*ws_subscribe)(const char *const *venue_symbols, size_t n, char *out, size_t cap);
    /* Parse one received WebSocket text message (msg need not be
     * NUL-terminated). recv_us is the local receive time (µs epoch), the
     * ts_us of updates whose message has no time. Every update gets
     * symbol = the venue symbol exactly as the message names it and
     * source = source. err (may be NULL) always gets a NUL-terminated text:
     * a short reason for REJECT/ERROR/MALFORMED, the system state for a
     * Kraken status HEARTBEAT ("system online"), else "". */
    venue_msg (*ws_parse)(const char *msg, size_t len, uint16_t source, int64_t recv_us,
                          const venue_emit *emit, char *err, size_t errcap);
    /* Application keepalive: a text frame the adapter sends every
     * ws_ping_interval_ms while connected, for venues that drop a client
     * that has sent nothing for a while (OKX "ping" < 30 s). NULL: none
     * (lws answers protocol pings). ws_parse classifies the answer as
     * HEARTBEAT. */
    const char *ws_ping;
    int ws_ping_interval_ms;
    /* Most symbols one connection may carry (Binance 512: two streams each,
     * 1024 per connection); 0 = no limit. An adapter with more symbols opens
     * venue_ws_conns() connections, each with the venue_ws_shard() slice. */
    size_t ws_conn_symbols;
    /* The venue closes every connection after this many seconds (Binance:
     * 24 h); 0 = none known. A preset that sets it gives every data update a
     * venue_seq or the venue's own event time (never the receive time), so an
     * adapter can read the same symbols on an old and a new connection at once
     * while it replaces the old one before that limit (make-before-break),
     * dropping what is not newer than what it already emitted. */
    int ws_max_conn_age_s;

    /* ---- REST ---- */
    const char *rest_base; /* e.g. "https://api.binance.com" */
    /* Number of HTTP requests one poll of n symbols needs: Binance 1
     * (multi-symbol bookTicker), Coinbase n (one per product), Kraken 1,
     * CoinGecko 1; 0 when n is 0. */
    size_t (*rest_requests)(size_t n);
    /* Path+query of request i (0 <= i < rest_requests(n)). Returns the length
     * or -1 (bad symbol or index, does not fit). */
    int (*rest_path)(const char *const *venue_symbols, size_t n, size_t i, char *out, size_t cap);
    /* Parse a response body. Any non-2xx status is VENUE_MSG_ERROR, and so is
     * a 2xx body carrying a venue error; err then holds the venue's own
     * words ("binance error -1121: Invalid symbol.", "kraken: EQuery:Unknown
     * asset pair") or, when the body has none, "HTTP <status>". For Coinbase the
     * product id is not in the body: the caller passes the venue symbol of
     * request i in `hint` (NULL otherwise; a Coinbase body without a hint is
     * MALFORMED). Same emit/err contract as ws_parse. */
    venue_msg (*rest_parse)(long http_status, const char *body, size_t len, const char *hint,
                            uint16_t source, int64_t recv_us, const venue_emit *emit, char *err,
                            size_t errcap);
} venue_preset;

/* The preset called name, or NULL. */
const venue_preset *venue_find(const char *name);
/* Short lower-case name of a venue_msg ("data", "ack", ...) for logs. */
const char *venue_msg_name(venue_msg m);

/* The presets themselves (also reachable through venue_find). */
extern const venue_preset venue_binance;
extern const venue_preset venue_coinbase;
extern const venue_preset venue_kraken;
extern const venue_preset venue_coingecko;
extern const venue_preset venue_okx;
extern const venue_preset venue_bybit;
extern const venue_preset venue_bitstamp;

/* Binance allows 1024 streams per connection and ws_path asks for two per
 * symbol (bookTicker + miniTicker): an adapter with more symbols opens
 * several connections (ws_conn_symbols). */
#define VENUE_BINANCE_MAX_SYMBOLS 512
/* Longest Binance request target that subscribes by URL
 * (/stream?streams=...); a longer one connects to /stream and subscribes
 * with a SUBSCRIBE message instead: lws builds the client handshake in a
 * 4 KiB buffer, and a URL of 512 symbols would be ~20 KB. */
#define VENUE_BINANCE_MAX_URL_PATH 1024
/* OKX REST: up to this many symbols one /market/ticker request each (OKX
 * allows 20 per 2 s per IP), more in one /market/tickers?instType=SPOT. */
#define VENUE_OKX_REST_SINGLE 10
/* Bybit spot: topics per subscribe message (two per symbol: tickers and
 * orderbook.1). */
#define VENUE_BYBIT_MAX_ARGS 10
/* The quote currency CoinGecko prices are requested in (vs_currencies). */
#define VENUE_COINGECKO_VS "usd"

/* ---- for adapters: the WebSocket request target and Host header ----
 *
 * A configured URL may carry a path. The preset's ws_path gives the venue's
 * endpoint path P plus an optional query ("/stream?streams=...", "/v2", "/").
 * venue_ws_target joins them so the endpoint is never doubled:
 *   - no configured path (or "/")           → P             (wss://ws.kraken.com → /v2)
 *   - the configured path ends with P, on a
 *     segment boundary                      → the path as is (wss://ws.kraken.com/v2 → /v2)
 *   - P is "/" (the venue serves at its root) → the path as is
 *   - otherwise the path is a prefix        → path + P       (ws://proxy/binance → /binance/stream?...)
 * A query in the configured URL is kept; the preset's query follows it after '&'.
 * url_path is what follows the authority, with or without its leading '/'.
 * Returns the length, or -1 when it does not fit (out holds "" then). */
int venue_ws_target(const char *url_path, const char *preset_path, char *out, size_t cap);
/* The Host header value (RFC 9110 §7.2): host alone for the scheme's default
 * port (80 for ws, 443 for wss), else host:port; an IPv6 literal is
 * bracketed. Returns the length or -1 when it does not fit. */
int venue_ws_host(const char *host, int port, int tls, char *out, size_t cap);

/* ---- for adapters: spreading symbols over connections ----
 * Connections needed for n symbols at most per_conn each (per_conn 0: no
 * limit, one connection; n 0: none). */
size_t venue_ws_conns(size_t n, size_t per_conn);
/* The slice [*first, *first + *count) of the n symbols that connection k
 * (0 <= k < venue_ws_conns(n, per_conn)) carries: contiguous, in order,
 * balanced (counts differ by at most one), each <= per_conn. 0, or -1 for
 * a k out of range. */
int venue_ws_shard(size_t n, size_t per_conn, size_t k, size_t *first, size_t *count);

/* ---- for adapters: a venue feed's configured symbols ---- */

typedef struct venue_symbol_map {
    char canonical[SYMTAB_NAME_MAX]; /* BTC-USD */
    char venue[VENUE_SYMBOL_MAX];    /* as the venue spells it: XBT/USD */
} venue_symbol_map;

/* Parse a feed's "symbols": ["BTC-USD", {"symbol": "BTC-USD", "venue": "XBTUSD"}]
 * — canonical symbols spelled for the venue by its preset, or explicit
 * spellings. At most max entries. Returns 0, or -1 with err naming
 * path.symbols[i]; *out is the caller's to free either way. */
int venue_parse_symbols(const json_t *arr, const char *path, const venue_preset *v, size_t max,
                        venue_symbol_map **out, size_t *n, cfg_error *err);
/* Index into m of the configured symbol an update names (the configured
 * spelling first, then the preset's mapping: Kraken answers XBTUSD with
 * XXBTZUSD), or -1 for a symbol the feed did not ask for. */
/* Each configured symbol's canonical name (feed_type.symbols). */
void venue_symbols_each(const venue_symbol_map *m, size_t n, void (*each)(void *arg, const char *canonical),
                        void *arg);
long venue_symbol_index(const venue_preset *v, const venue_symbol_map *m, size_t n,
                        const char *venue_symbol);

/* ---- building blocks shared by the presets (feeds/venue_*.c) ----
 * Exported for the presets and their tests; adapters need none of them. */

/* Parse msg[0..len) as a JSON object or array (jansson, integers decoded as
 * doubles so 64-bit ids such as Kraken's connection_id never fail the parse;
 * jansson bounds nesting at 2048). Returns the root (json_decref it) or NULL
 * with err set ("not JSON: ...", "too large"). */
json_t *venue_json_load(const char *msg, size_t len, char *err, size_t errcap);

/* A price or size sent as a JSON string: a plain decimal
 * -?(D+(.D*)?|.D+)([eE][+-]?D+)? of at most 64 characters, converted with
 * strtod (the process keeps the "C" numeric locale). Returns 0, or -1 when v
 * is not such a string or the value overflows a double. */
int venue_decimal(const json_t *v, double *out);
/* A price sent as a JSON number. Returns 0, or -1 when v is not a number. */
int venue_number(const json_t *v, double *out);
/* Like the two above for an optional member of obj: an absent key (or JSON
 * null) gives NAN and 0; a present key must be valid. */
int venue_opt_decimal(const json_t *obj, const char *key, double *out);
int venue_opt_number(const json_t *obj, const char *key, double *out);

/* RFC3339 date-time "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" ('t', 'z'
 * and ' ' as separator accepted) to µs since the epoch, exactly: fraction
 * digits beyond the sixth are truncated. Returns 0, or -1 if not valid. */
int venue_rfc3339_us(const char *s, int64_t *out);
/* An epoch time v counted in units of unit_us µs (1000 for milliseconds,
 * 1000000 for seconds) to µs. Returns 0, or -1 when v is not finite,
 * negative, or too large for int64 µs. Fractions of the unit are truncated. */
int venue_epoch_us(double v, int64_t unit_us, int64_t *out);

/* Split a concatenated pair ("BTCUSDT") on the longest quote of `quotes`
 * (NULL-terminated, upper case) that leaves a non-empty base; both halves are
 * [A-Z0-9] after upper-casing. Writes "BASE-QUOTE". Returns 0 or -1. */
int venue_split_pair(const char *pair, const char *const *quotes, char *out, size_t cap);
/* True when s is 1..VENUE_SYMBOL_MAX-1 characters of [A-Za-z0-9./_-], safe to
 * put in a URL path, a query and a JSON string without escaping. */
int venue_symbol_ok(const char *s);

/* Write printf-style text into err (if err && cap) and return m. */
venue_msg venue_fail(venue_msg m, char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* An update for symbol with every price field NAN, ts_us = recv_us. */
void venue_update_init(feed_update *u, const char *symbol, uint16_t source, int64_t recv_us);
/* Hand u to emit (if any). */
void venue_deliver(const venue_emit *emit, const feed_update *u);
/* True for 200..299. */
int venue_http_ok(long status);

/* Bounded output for the path/subscribe builders: appends that do not fit set
 * `full` and are dropped, so the caller checks once at the end. */
typedef struct venue_out {
    char *p;
    size_t cap, len;
    int full;
} venue_out;

void venue_out_init(venue_out *o, char *buf, size_t cap);
/* Append syms[0..n) as a JSON list body: "a","b" (callers have checked that
 * the symbols need no escaping). */
void venue_out_quoted_list(venue_out *o, const char *const *syms, size_t n);
/* True when n > 0 and every syms[i] passes ok(). */
int venue_all_ok(const char *const *syms, size_t n, int (*ok)(const char *));
void venue_out_puts(venue_out *o, const char *s);
/* s lower-cased (Binance stream names) / upper-cased (Binance REST). */
void venue_out_lower(venue_out *o, const char *s);
void venue_out_upper(venue_out *o, const char *s);
/* The final length, or -1 when something did not fit (out holds "" then). */
int venue_out_end(venue_out *o);
/* A WebSocket path that does not depend on the symbols (the venues that
 * subscribe by message): path into out once every symbol passes ok();
 * the length, or -1. */
int venue_fixed_path(const char *const *syms, size_t n, int (*ok)(const char *), const char *path,
                     char *out, size_t cap);

#endif
