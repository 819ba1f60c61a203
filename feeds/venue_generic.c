/*
 * venue_generic.c — the generic JSON mapper (venue_generic.h): config paths
 * compiled once at startup, then a bounded walk per field for each response.
 *
 * Cost per body: one jansson parse (bounded by the adapter's max_body_bytes
 * and VENUE_MAX_MESSAGE) plus at most VENUE_GENERIC_PATH_SEGS hash lookups
 * per field per quote; the quotes are walked twice (check all, then emit) so
 * that a body with one bad quote emits nothing, as for the presets.
 */
#include "tickerd/venue_generic.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tickerd/symtab.h"

static int vg_fail(cfg_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int vg_fail(cfg_error *err, const char *fmt, ...)
{
    /* cfg_fail's contract without linking cfg.c (the fuzz target builds
     * this file on its own). */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- paths ---- */

int venue_generic_path_compile(const char *text, venue_generic_path *p, char *why, size_t whycap)
{
    memset(p, 0, sizeof(*p));
    size_t len = text ? strlen(text) : 0;
    if (!len)
        return snprintf(why, whycap, "empty"), -1;
    if (len >= VENUE_GENERIC_PATH_MAX)
        return snprintf(why, whycap, "longer than %d characters", VENUE_GENERIC_PATH_MAX - 1), -1;
    memcpy(p->seg, text, len + 1);
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        char c = p->seg[i];
        if (c && c != '.') {
            if (c < 0x21 || c > 0x7e)
                return snprintf(why, whycap, "character 0x%02x at %zu", (unsigned char)c, i), -1;
            continue;
        }
        if (i == start)
            return snprintf(why, whycap, "empty segment at %zu", i), -1;
        if (p->n >= VENUE_GENERIC_PATH_SEGS)
            return snprintf(why, whycap, "more than %d segments", VENUE_GENERIC_PATH_SEGS), -1;
        p->seg[i] = '\0';
        p->off[p->n] = (uint16_t)start;
        /* all digits (at most 9, so it fits) → also an array index */
        int32_t idx = 0;
        size_t k = start;
        while (k < i && k - start < 9 && p->seg[k] >= '0' && p->seg[k] <= '9')
            idx = idx * 10 + (p->seg[k++] - '0');
        p->index[p->n] = k == i ? idx : -1;
        p->n++;
        start = i + 1;
    }
    return 0;
}

/* The value at p under root, or NULL (absent, or a step through a scalar). */
static const json_t *vg_get(const json_t *root, const venue_generic_path *p)
{
    const json_t *v = root;
    for (uint8_t i = 0; v && i < p->n; i++) {
        if (json_is_array(v))
            v = p->index[i] >= 0 ? json_array_get(v, (size_t)p->index[i]) : NULL;
        else if (json_is_object(v))
            v = json_object_get(v, p->seg + p->off[i]);
        else
            v = NULL;
    }
    return v;
}

/* ---- config ---- */

static int vg_map_path(const json_t *map, const char *path, const char *key,
                       venue_generic_path *p, cfg_error *err)
{
    const json_t *v = json_object_get(map, key);
    char why[96];
    if (!v)
        return 0;
    if (!json_is_string(v))
        return vg_fail(err, "%s.map.%s: must be a path string such as \"data.0.price\"", path, key);
    if (venue_generic_path_compile(json_string_value(v), p, why, sizeof(why)))
        return vg_fail(err, "%s.map.%s: bad path \"%.80s\": %s", path, key, json_string_value(v),
                       why);
    return 0;
}

int venue_generic_parse_map(const json_t *map, const char *path, venue_generic *g, cfg_error *err)
{
    static const char *const keys[] = {"items", "symbol", "last", "bid", "ask", "volume", "open",
                                       "ts", "ts_unit", "error", "match", NULL};
    memset(g, 0, sizeof(*g));
    if (!json_is_object(map))
        return vg_fail(err, "%s.map: required for venue generic, an object of JSON paths", path);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)map, key, v) {
        size_t i = 0;
        while (keys[i] && strcmp(keys[i], key))
            i++;
        if (!keys[i])
            return vg_fail(err, "%s.map.%s: unknown key", path, key);
    }
    const json_t *sym = json_object_get(map, "symbol");
    if (json_is_string(sym) && !strcmp(json_string_value(sym), "$key"))
        g->symbol_is_key = 1;
    else if (vg_map_path(map, path, "symbol", &g->symbol, err))
        return -1;
    const json_t *items = json_object_get(map, "items");
    if (json_is_string(items) && !strcmp(json_string_value(items), "$"))
        g->items_root = 1;
    else if (vg_map_path(map, path, "items", &g->items, err))
        return -1;
    if (
        vg_map_path(map, path, "last", &g->last, err) ||
        vg_map_path(map, path, "bid", &g->bid, err) ||
        vg_map_path(map, path, "ask", &g->ask, err) ||
        vg_map_path(map, path, "volume", &g->volume, err) ||
        vg_map_path(map, path, "open", &g->open, err) ||
        vg_map_path(map, path, "ts", &g->ts, err) ||
        vg_map_path(map, path, "error", &g->error, err))
        return -1;
    if (g->symbol_is_key && !g->items.n && !g->items_root)
        return vg_fail(err, "%s.map.symbol: \"$key\" needs \"items\" (an object of quotes)", path);
    if (!g->last.n && !(g->bid.n && g->ask.n))
        return vg_fail(err, "%s.map: give \"last\", or both \"bid\" and \"ask\"", path);
    const json_t *unit = json_object_get(map, "ts_unit");
    if (unit) {
        static const char *const units[] = {"ms", "s", "us", "ns", "rfc3339"};
        static const venue_generic_ts_unit codes[] = {VENUE_GENERIC_TS_MS, VENUE_GENERIC_TS_S,
                                                      VENUE_GENERIC_TS_US, VENUE_GENERIC_TS_NS,
                                                      VENUE_GENERIC_TS_RFC3339};
        size_t i = 0;
        while (i < 5 && !(json_is_string(unit) && !strcmp(json_string_value(unit), units[i])))
            i++;
        if (i == 5)
            return vg_fail(err, "%s.map.ts_unit: must be one of ms, s, us, ns, rfc3339", path);
        if (!g->ts.n)
            return vg_fail(err, "%s.map.ts_unit: given without \"ts\"", path);
        g->ts_unit = codes[i];
    }
    const json_t *match = json_object_get(map, "match");
    if (match) {
        if (!json_is_object(match) || !json_object_size(match))
            return vg_fail(err, "%s.map.match: must be a non-empty object {\"path\": \"value\"}",
                           path);
        if (json_object_size(match) > VENUE_GENERIC_MATCH_MAX)
            return vg_fail(err, "%s.map.match: at most %d entries", path, VENUE_GENERIC_MATCH_MAX);
        json_object_foreach((json_t *)match, key, v) {
            char why[96];
            size_t i = g->nmatch;
            if (venue_generic_path_compile(key, &g->match_path[i], why, sizeof(why)))
                return vg_fail(err, "%s.map.match: bad path \"%.80s\": %s", path, key, why);
            if (!json_is_string(v) || json_string_length(v) >= VENUE_GENERIC_MATCH_VALUE_MAX)
                return vg_fail(err, "%s.map.match.%.80s: must be a string of at most %d bytes", path,
                               key, VENUE_GENERIC_MATCH_VALUE_MAX - 1);
            snprintf(g->match_value[i], sizeof(g->match_value[i]), "%s", json_string_value(v));
            g->nmatch++;
        }
    }
    return 0;
}

/* ---- parsing ---- */

/* A price/size: a JSON number or a plain decimal string; null or absent → NAN. */
static int vg_number(const json_t *q, const venue_generic_path *p, double *out)
{
    *out = NAN;
    if (!p->n)
        return 0;
    const json_t *v = vg_get(q, p);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return isfinite(*out) ? 0 : -1;
    }
    return venue_decimal(v, out);
}

static int vg_ts(const venue_generic *g, const json_t *q, int64_t recv_us, int64_t *out)
{
    *out = recv_us;
    if (!g->ts.n)
        return 0;
    const json_t *v = vg_get(q, &g->ts);
    if (!v || json_is_null(v))
        return 0;
    if (g->ts_unit == VENUE_GENERIC_TS_RFC3339)
        return json_is_string(v) ? venue_rfc3339_us(json_string_value(v), out) : -1;
    double d;
    if (json_is_number(v))
        d = json_number_value(v);
    else if (venue_decimal(v, &d))
        return -1;
    switch (g->ts_unit) {
    case VENUE_GENERIC_TS_S: return venue_epoch_us(d, 1000000, out);
    case VENUE_GENERIC_TS_US: return venue_epoch_us(d, 1, out);
    case VENUE_GENERIC_TS_NS: return venue_epoch_us(d / 1000, 1, out);
    default: return venue_epoch_us(d, 1000, out);
    }
}

/* A venue error: present and not null/false/0/""/[]/{}. */
static int vg_truthy(const json_t *v)
{
    if (!v || json_is_null(v) || json_is_false(v))
        return 0;
    if (json_is_string(v))
        return json_string_length(v) > 0;
    if (json_is_number(v))
        return json_number_value(v) != 0;
    if (json_is_array(v))
        return json_array_size(v) > 0;
    if (json_is_object(v))
        return json_object_size(v) > 0;
    return 1;
}

static void vg_error_text(const json_t *v, char *out, size_t cap)
{
    if (json_is_string(v)) {
        snprintf(out, cap, "%.120s", json_string_value(v));
        return;
    }
    /* compact and bounded: the error of a hostile body must not flood logs */
    char buf[128];
    size_t n = json_dumpb(v, buf, sizeof(buf) - 1, JSON_COMPACT | JSON_ENCODE_ANY);
    if (n >= sizeof(buf) - 1)
        n = sizeof(buf) - 1; /* truncated (json_dumpb says how much it wanted) */
    buf[n] = '\0';
    snprintf(out, cap, "%s", buf);
}

/* One quote to an update (symbol in key when the quote is an object member). */
static int vg_quote(const venue_generic *g, const json_t *q, const char *key, const char *hint,
                    uint16_t source, int64_t recv_us, feed_update *u, const char **why)
{
    const char *sym = NULL;
    if (g->symbol_is_key) {
        sym = key;
    } else if (g->symbol.n) {
        const json_t *s = vg_get(q, &g->symbol);
        sym = json_string_value(s);
        if (!sym)
            return *why = "symbol: not a string", -1;
    } else {
        sym = hint;
    }
    if (!sym || !*sym || strlen(sym) >= VENUE_SYMBOL_MAX)
        return *why = "no usable symbol", -1;
    venue_update_init(u, sym, source, recv_us);
    if (vg_number(q, &g->last, &u->last))
        return *why = "last: not a number", -1;
    if (vg_number(q, &g->bid, &u->bid))
        return *why = "bid: not a number", -1;
    if (vg_number(q, &g->ask, &u->ask))
        return *why = "ask: not a number", -1;
    if (vg_number(q, &g->volume, &u->volume))
        return *why = "volume: not a number", -1;
    if (vg_number(q, &g->open, &u->open))
        return *why = "open: not a number", -1;
    if (vg_ts(g, q, recv_us, &u->ts_us))
        return *why = "ts: not a time in ts_unit", -1;
    if (isnan(u->last) && (isnan(u->bid) || isnan(u->ask)))
        return *why = "no last and no bid/ask", -1;
    if (isnan(u->last))
        u->last = (u->bid + u->ask) / 2; /* venue.h: a book without a trade price */
    return 0;
}

/* Walk the quotes: check every one (emit NULL), or emit them all. */
static int vg_walk(const venue_generic *g, const json_t *list, const char *hint, uint16_t source,
                   int64_t recv_us, const venue_emit *emit, size_t *bad_at, const char **why)
{
    feed_update u;
    if (!g->items.n && !g->items_root) {
        if (vg_quote(g, list, NULL, hint, source, recv_us, &u, why))
            return *bad_at = 0, -1;
        if (emit)
            venue_deliver(emit, &u);
        return 0;
    }
    if (g->symbol_is_key) {
        const char *key;
        const json_t *q;
        size_t i = 0;
        json_object_foreach((json_t *)list, key, q) {
            if (vg_quote(g, q, key, hint, source, recv_us, &u, why))
                return *bad_at = i, -1;
            if (emit)
                venue_deliver(emit, &u);
            i++;
        }
        return 0;
    }
    for (size_t i = 0; i < json_array_size(list); i++) {
        if (vg_quote(g, json_array_get(list, i), NULL, hint, source, recv_us, &u, why))
            return *bad_at = i, -1;
        if (emit)
            venue_deliver(emit, &u);
    }
    return 0;
}

venue_msg venue_generic_parse(const venue_generic *g, long http_status, const char *body,
                              size_t len, const char *hint, uint16_t source, int64_t recv_us,
                              const venue_emit *emit, char *err, size_t errcap)
{
    venue_fail(VENUE_MSG_DATA, err, errcap, "%s", "");
    json_t *root = venue_json_load(body, len, err, errcap);
    const json_t *e = root && g->error.n ? vg_get(root, &g->error) : NULL;
    char text[160];
    venue_msg r = VENUE_MSG_DATA;
    if (http_status && !venue_http_ok(http_status)) {
        if (vg_truthy(e)) {
            vg_error_text(e, text, sizeof(text));
            r = venue_fail(VENUE_MSG_ERROR, err, errcap, "HTTP %ld: %s", http_status, text);
        } else {
            r = venue_fail(VENUE_MSG_ERROR, err, errcap, "HTTP %ld", http_status);
        }
        json_decref(root);
        return r;
    }
    if (!root)
        return VENUE_MSG_MALFORMED;
    if (vg_truthy(e)) {
        vg_error_text(e, text, sizeof(text));
        json_decref(root);
        return venue_fail(VENUE_MSG_ERROR, err, errcap, "venue error: %s", text);
    }
    for (size_t i = 0; i < g->nmatch; i++) {
        const char *s = json_string_value(vg_get(root, &g->match_path[i]));
        if (!s || strcmp(s, g->match_value[i])) {
            json_decref(root);
            return VENUE_MSG_IGNORED;
        }
    }
    /* A response to a request, or a message that matched: it must carry the
     * data. An unmatched WebSocket message (an ack, a pong) need not. */
    int strict = http_status != 0 || g->nmatch > 0;
    int has_items = g->items.n || g->items_root;
    const json_t *list = g->items.n ? vg_get(root, &g->items) : root;
    int list_ok = has_items ? (g->symbol_is_key ? json_is_object(list) : json_is_array(list))
                            : json_is_object(list) || json_is_array(list);
    size_t bad_at = 0;
    const char *why = "";
    if (!list_ok) {
        r = strict ? venue_fail(VENUE_MSG_MALFORMED, err, errcap, "items: not an %s",
                                g->symbol_is_key ? "object" : "array")
                   : VENUE_MSG_IGNORED;
    } else if (vg_walk(g, list, hint, source, recv_us, NULL, &bad_at, &why)) {
        r = strict || has_items ? venue_fail(VENUE_MSG_MALFORMED, err, errcap, "quote %zu: %s",
                                              bad_at, why)
                                 : VENUE_MSG_IGNORED;
    } else {
        vg_walk(g, list, hint, source, recv_us, emit, &bad_at, &why);
    }
    json_decref(root);
    return r;
}

/* ---- url templates ---- */

static const char *vg_find(const char *s, const char *what) { return strstr(s, what); }

int venue_generic_check_url(const char *tmpl, char *why, size_t whycap)
{
    if (!tmpl || (strncmp(tmpl, "http://", 7) && strncmp(tmpl, "https://", 8)))
        return snprintf(why, whycap, "must start with http:// or https://"), -1;
    int one = 0, all = 0;
    for (const char *p = tmpl; (p = strchr(p, '{'));) {
        if (!strncmp(p, "{symbol}", 8))
            one++, p += 8;
        else if (!strncmp(p, "{symbols}", 9))
            all++, p += 9;
        else
            return snprintf(why, whycap, "unknown placeholder at \"%.20s\" (use {symbol} or {symbols})",
                            p), -1;
    }
    if (one && all)
        return snprintf(why, whycap, "use {symbol} or {symbols}, not both"), -1;
    if (strchr(tmpl, '}') && !one && !all)
        return snprintf(why, whycap, "a '}' without a placeholder"), -1;
    return 0;
}

size_t venue_generic_requests(const char *tmpl, size_t n)
{
    return !n ? 0 : vg_find(tmpl, "{symbol}") ? n : 1;
}

int venue_generic_url(const char *tmpl, const char *const *syms, size_t n, size_t i, char *out,
                      size_t cap)
{
    venue_out o;
    venue_out_init(&o, out, cap);
    if (i >= venue_generic_requests(tmpl, n) || !venue_all_ok(syms, n, venue_symbol_ok))
        return -1;
    for (const char *p = tmpl; *p;) {
        if (!strncmp(p, "{symbol}", 8)) {
            venue_out_puts(&o, syms[i]);
            p += 8;
        } else if (!strncmp(p, "{symbols}", 9)) {
            for (size_t k = 0; k < n; k++) {
                if (k)
                    venue_out_puts(&o, ",");
                venue_out_puts(&o, syms[k]);
            }
            p += 9;
        } else {
            char c[2] = {*p++, '\0'};
            venue_out_puts(&o, c);
        }
    }
    return venue_out_end(&o);
}

int venue_generic_check_subscribe(const char *tmpl, char *why, size_t whycap)
{
    if (strpbrk(tmpl, "\r\n"))
        return snprintf(why, whycap, "one message: no line breaks"), -1;
    if (vg_find(tmpl, "{symbol}") && vg_find(tmpl, "{symbols}"))
        return snprintf(why, whycap, "use {symbol} or {symbols}, not both"), -1;
    return 0;
}

int venue_generic_subscribe(const char *tmpl, const char *const *syms, size_t n, char *out,
                            size_t cap)
{
    venue_out o;
    venue_out_init(&o, out, cap);
    if (!venue_all_ok(syms, n, venue_symbol_ok))
        return -1;
    size_t messages = vg_find(tmpl, "{symbol}") ? n : 1;
    for (size_t i = 0; i < messages; i++) {
        if (i)
            venue_out_puts(&o, "\n");
        for (const char *p = tmpl; *p;) {
            if (!strncmp(p, "{symbol}", 8)) {
                venue_out_puts(&o, syms[i]); /* venue_symbol_ok: nothing to escape */
                p += 8;
            } else if (!strncmp(p, "{symbols}", 9)) {
                venue_out_puts(&o, "[");
                venue_out_quoted_list(&o, syms, n);
                venue_out_puts(&o, "]");
                p += 9;
            } else {
                char c[2] = {*p++, '\0'};
                venue_out_puts(&o, c);
            }
        }
    }
    return venue_out_end(&o);
}

/* ---- the symbol mapping ---- */

static int vg_identity(const char *s, char *out, size_t cap)
{
    if (!s || !out || !symtab_is_canonical(s) || strlen(s) >= cap)
        return -1;
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

const venue_preset venue_generic_preset = {
    .name = "generic",
    .to_canonical = vg_identity,
    .to_venue = vg_identity,
};
