/*
 * venue_generic.h — the generic JSON mapper: for a REST source that is not
 * worth a preset, the config names where in the response each field sits
 * (dotted paths with array indexes, "data.0.c"), and this module turns a
 * response into feed_updates with the same contract as the presets' parsers
 * (venue.h: bounded input, all or nothing, NAN for an absent field,
 * VENUE_MSG_MALFORMED for anything that does not fit the mapping).
 *
 * A mapping is a fixed-size value with no pointers (paths are stored inline),
 * so an adapter may copy it with its options. The config ("map" object of a
 * feed with "venue": "generic"):
 *   items    path to the list of quotes: an array (one quote per element) or,
 *            with symbol "$key", an object (one quote per member, the key is
 *            the symbol); "$": the body itself is that list or object;
 *            absent: the whole body is one quote
 *   symbol   path (relative to a quote) to the symbol string, or "$key";
 *            absent: the symbol of the request (url with {symbol}) or the
 *            feed's only symbol
 *   last, bid, ask, volume, open
 *            paths to numbers: JSON numbers or decimal strings; null or an
 *            absent member is "absent"; "last" or both "bid" and "ask" required
 *   ts       path to the event time; absent: the receive time
 *   ts_unit  "ms" (default), "s", "us", "ns" (numbers or decimal strings) or
 *            "rfc3339" (a string)
 *   error    path to a venue error: a present value that is not null, false,
 *            0, "" or empty makes the body a VENUE_MSG_ERROR with its text
 *   match    {path: "value", ...} (at most VENUE_GENERIC_MATCH_MAX): a body
 *            whose members are not these strings is VENUE_MSG_IGNORED
 * Paths: 1..VENUE_GENERIC_PATH_SEGS segments of printable ASCII separated by
 * '.', no empty segment, shorter than VENUE_GENERIC_PATH_MAX; an all-digit
 * segment indexes an array (and names a member of an object).
 */
#ifndef TICKERD_VENUE_GENERIC_H
#define TICKERD_VENUE_GENERIC_H

#include <stddef.h>
#include <stdint.h>

#include "tickerd/cfg.h"
#include "tickerd/venue.h"

#define VENUE_GENERIC_PATH_MAX 256
#define VENUE_GENERIC_PATH_SEGS 16
#define VENUE_GENERIC_MATCH_MAX 4
#define VENUE_GENERIC_MATCH_VALUE_MAX 64
/* Longest url template, with the NUL. */
#define VENUE_GENERIC_URL_MAX 2048

typedef struct venue_generic_path {
    uint8_t n;                              /* segments; 0 = not configured */
    uint16_t off[VENUE_GENERIC_PATH_SEGS];  /* segment i starts at seg + off[i] */
    int32_t index[VENUE_GENERIC_PATH_SEGS]; /* array index, or -1 for a name */
    char seg[VENUE_GENERIC_PATH_MAX];       /* the segments, NUL-separated */
} venue_generic_path;

typedef enum {
    VENUE_GENERIC_TS_MS = 0,
    VENUE_GENERIC_TS_S,
    VENUE_GENERIC_TS_US,
    VENUE_GENERIC_TS_NS,
    VENUE_GENERIC_TS_RFC3339,
} venue_generic_ts_unit;

typedef struct venue_generic {
    venue_generic_path items, symbol, last, bid, ask, volume, open, ts, error;
    int items_root;    /* items "$": the body itself is the list (or object) of quotes */
    int symbol_is_key; /* symbol "$key": the member name of an items object */
    venue_generic_ts_unit ts_unit;
    size_t nmatch;
    venue_generic_path match_path[VENUE_GENERIC_MATCH_MAX];
    char match_value[VENUE_GENERIC_MATCH_MAX][VENUE_GENERIC_MATCH_VALUE_MAX];
} venue_generic;

/* Compile the "map" object at config path `path` (e.g. "feeds[1]") into g.
 * Returns 0, or -1 with err naming the key ("feeds[1].map.last: bad path
 * \"data..c\": empty segment"). */
int venue_generic_parse_map(const json_t *map, const char *path, venue_generic *g, cfg_error *err);
/* One path alone: 0, or -1 with why (a short reason). */
int venue_generic_path_compile(const char *text, venue_generic_path *p, char *why, size_t whycap);

/* Parse one response body (REST: http_status as received; 0 = no status, a
 * WebSocket message). A non-2xx status is VENUE_MSG_ERROR. Data not found
 * where the mapping says is MALFORMED for a response with a status or when
 * `match` is configured, and IGNORED otherwise (a WebSocket source's acks).
 * hint: the symbol of the request (url with {symbol}), used when the mapping
 * has no symbol path; NULL otherwise. Same emit/err contract as venue.h. */
venue_msg venue_generic_parse(const venue_generic *g, long http_status, const char *body,
                              size_t len, const char *hint, uint16_t source, int64_t recv_us,
                              const venue_emit *emit, char *err, size_t errcap);

/* The url template: "{symbol}" (one request per symbol) or "{symbols}" (one
 * request, the symbols comma-separated), not both, no other '{'. Returns 0, or
 * -1 with why. */
int venue_generic_check_url(const char *tmpl, char *why, size_t whycap);
/* Requests per poll of n symbols: n with {symbol}, else 1 (0 when n is 0). */
size_t venue_generic_requests(const char *tmpl, size_t n);
/* The url of request i with the placeholders filled in (the symbols pass
 * venue_symbol_ok, so nothing needs escaping). The length, or -1. */
int venue_generic_url(const char *tmpl, const char *const *syms, size_t n, size_t i, char *out,
                      size_t cap);

/* A WebSocket source's subscribe template (a "ws" feed's "subscribe"): one
 * message, JSON or not, where "{symbols}" becomes the JSON array of the
 * symbols (["BTC-USD","ETH-USD"]) and "{symbol}" one symbol (the template is
 * then sent once per symbol, so "{symbol}" usually sits inside quotes); other
 * braces are the message's own. Not both placeholders, no line breaks.
 * Returns 0, or -1 with why. */
int venue_generic_check_subscribe(const char *tmpl, char *why, size_t whycap);
/* The messages for n symbols, joined by '\n' (wsfeed sends one per line).
 * The length, or -1 when they do not fit cap. */
int venue_generic_subscribe(const char *tmpl, const char *const *syms, size_t n, char *out,
                            size_t cap);

/* The symbol mapping of the generic venue: a canonical symbol is its own
 * spelling; others come from {"symbol", "venue"} in the config. No parsers:
 * adapters call venue_generic_parse with the feed's mapping. */
extern const venue_preset venue_generic_preset;

#endif
