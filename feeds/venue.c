/*
 * venue.c — the venue preset registry (venue_find) and the building blocks the
 * presets share: bounded JSON loading, strict decimal and number fields, exact
 * RFC3339 and epoch time conversion, pair splitting, symbol checks and a
 * bounded output buffer. The presets live in venue_<name>.c.
 */
#include "tickerd/venue.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/symtab.h"

static const venue_preset *const venue_all[] = {
    &venue_binance,
    &venue_coinbase,
    &venue_kraken,
    &venue_coingecko,
    &venue_okx,
    &venue_bybit,
    &venue_bitstamp,
};

const venue_preset *venue_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof(venue_all) / sizeof(venue_all[0]); i++)
        if (!strcmp(venue_all[i]->name, name))
            return venue_all[i];
    return NULL;
}

const char *venue_msg_name(venue_msg m)
{
    switch (m) {
    case VENUE_MSG_DATA: return "data";
    case VENUE_MSG_ACK: return "ack";
    case VENUE_MSG_REJECT: return "reject";
    case VENUE_MSG_HEARTBEAT: return "heartbeat";
    case VENUE_MSG_SHUTDOWN: return "shutdown";
    case VENUE_MSG_IGNORED: return "ignored";
    case VENUE_MSG_ERROR: return "error";
    case VENUE_MSG_MALFORMED: return "malformed";
    }
    return "?";
}

venue_msg venue_fail(venue_msg m, char *err, size_t cap, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return m;
}

void venue_update_init(feed_update *u, const char *symbol, uint16_t source, int64_t recv_us)
{
    u->symbol = symbol;
    u->last = u->bid = u->ask = u->volume = u->open = NAN;
    u->ts_us = recv_us;
    u->source = source;
    u->venue_seq = 0;
}

void venue_deliver(const venue_emit *emit, const feed_update *u)
{
    if (emit && emit->update)
        emit->update(emit->arg, u);
}

int venue_http_ok(long status) { return status >= 200 && status <= 299; }

json_t *venue_json_load(const char *msg, size_t len, char *err, size_t errcap)
{
    if (!msg)
        return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "no message"), NULL;
    if (len > VENUE_MAX_MESSAGE)
        return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "too large (%zu bytes)", len), NULL;
    /* INT_AS_REAL: jansson refuses integers beyond int64 ("too big integer"),
     * and Kraken's status carries connection_id 13834774380200032777. Every
     * time and price we read is exact as a double (epoch ms < 2^53). Without
     * JSON_DECODE_ANY the top level must be an object or array; without
     * JSON_ALLOW_NUL strings cannot hide a NUL. */
    json_error_t je;
    json_t *root = json_loadb(msg, len, JSON_DECODE_INT_AS_REAL, &je);
    if (!root)
        venue_fail(VENUE_MSG_MALFORMED, err, errcap, "not JSON: %s", je.text);
    return root;
}

/* ASCII-only classes: <ctype.h> would follow the locale. */
static int venue_isdigit(char c) { return c >= '0' && c <= '9'; }
static int venue_isalnum(char c)
{
    return venue_isdigit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}
static char venue_toupper(char c) { return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c; }
static char venue_tolower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

/* ---- numbers ---- */

#define VENUE_DECIMAL_MAX 64

/* The plain decimal grammar of the header; strtod alone would also take
 * "inf", "nan", hex floats and leading blanks. */
static int venue_is_decimal(const char *s, size_t n)
{
    size_t i = 0, digits = 0;
    if (i < n && s[i] == '-')
        i++;
    while (i < n && venue_isdigit(s[i]))
        i++, digits++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && venue_isdigit(s[i]))
            i++, digits++;
    }
    if (!digits)
        return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t exp_digits = 0;
        while (i < n && venue_isdigit(s[i]))
            i++, exp_digits++;
        if (!exp_digits)
            return 0;
    }
    return i == n;
}

int venue_decimal(const json_t *v, double *out)
{
    if (!json_is_string(v))
        return -1;
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n == 0 || n > VENUE_DECIMAL_MAX || !venue_is_decimal(s, n))
        return -1;
    char buf[VENUE_DECIMAL_MAX + 1];
    memcpy(buf, s, n);
    buf[n] = '\0';
    double d = strtod(buf, NULL);
    /* Overflow (HUGE_VAL) is refused; underflow gives 0 or a subnormal,
     * which passes on to the normalizer's "price > 0" check. */
    if (!isfinite(d))
        return -1;
    *out = d;
    return 0;
}

int venue_number(const json_t *v, double *out)
{
    if (!json_is_number(v))
        return -1;
    double d = json_number_value(v);
    if (!isfinite(d)) /* jansson refuses overflow already; belt and braces */
        return -1;
    *out = d;
    return 0;
}

int venue_opt_decimal(const json_t *obj, const char *key, double *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = NAN;
        return 0;
    }
    return venue_decimal(v, out);
}

int venue_opt_number(const json_t *obj, const char *key, double *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = NAN;
        return 0;
    }
    return venue_number(v, out);
}

/* ---- time ---- */

/* n decimal digits at s as an int, or -1. */
static int venue_digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!venue_isdigit(s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil): exact, no timegm() and no TZ environment involved. */
static int64_t venue_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int venue_days_in_month(int y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return dm[m - 1] + (m == 2 && leap);
}

int venue_rfc3339_us(const char *s, int64_t *out)
{
    if (!s)
        return -1;
    /* "YYYY-MM-DDTHH:MM:SS" is 19 characters; strnlen keeps every read below
     * inside the string whatever its length. */
    size_t n = strnlen(s, 20);
    if (n < 20) /* at least 19 + a zone designator */
        return -1;
    int y = venue_digits(s, 4), mo = venue_digits(s + 5, 2), d = venue_digits(s + 8, 2);
    int h = venue_digits(s + 11, 2), mi = venue_digits(s + 14, 2), sec = venue_digits(s + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || s[4] != '-' || s[7] != '-')
        return -1;
    if (d > venue_days_in_month(y, mo))
        return -1;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        return -1;
    /* sec 60 is a leap second: counted as the next second's 0, as timegm does */
    if (h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60 || s[13] != ':' || s[16] != ':')
        return -1;
    const char *p = s + 19;
    int64_t frac = 0;
    if (*p == '.') {
        p++;
        int nd = 0;
        for (; venue_isdigit(*p); p++, nd++)
            if (nd < 6) /* µs; nanoseconds (Advanced Trade) are truncated */
                frac = frac * 10 + (*p - '0');
        if (!nd)
            return -1;
        for (; nd < 6; nd++)
            frac *= 10;
    }
    int64_t offset_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        /* strnlen again: p may be the terminator's neighbour */
        if (strnlen(p, 6) < 6 || p[3] != ':')
            return -1;
        int oh = venue_digits(p + 1, 2), om = venue_digits(p + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -1;
        offset_s = sign * (oh * 3600 + om * 60);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    int64_t t = venue_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_s;
    *out = t * 1000000 + frac;
    return 0;
}

int venue_epoch_us(double v, int64_t unit_us, int64_t *out)
{
    if (unit_us <= 0 || !isfinite(v) || v < 0 || v >= (double)(INT64_MAX / unit_us))
        return -1;
    *out = (int64_t)v * unit_us; /* bounded above: cannot overflow */
    return 0;
}

/* ---- symbols ---- */

int venue_symbol_ok(const char *s)
{
    if (!s)
        return 0;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= VENUE_SYMBOL_MAX - 1 ||
            !(venue_isalnum(c) || c == '.' || c == '/' || c == '_' || c == '-'))
            return 0;
    }
    return n > 0;
}

int venue_split_pair(const char *pair, const char *const *quotes, char *out, size_t cap)
{
    if (!pair || !out || !cap)
        return -1;
    char up[SYMTAB_NAME_MAX];
    size_t n = 0;
    for (; pair[n]; n++) {
        if (n >= sizeof(up) - 1 || !venue_isalnum(pair[n]))
            return -1;
        up[n] = venue_toupper(pair[n]);
    }
    up[n] = '\0';
    size_t best = 0;
    for (size_t i = 0; quotes[i]; i++) {
        size_t q = strlen(quotes[i]);
        if (q > best && q < n && !memcmp(up + n - q, quotes[i], q))
            best = q;
    }
    if (!best)
        return -1;
    int w = snprintf(out, cap, "%.*s-%s", (int)(n - best), up, up + n - best);
    if (w < 0 || (size_t)w >= cap || !symtab_is_canonical(out)) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

/* ---- bounded output ---- */

void venue_out_init(venue_out *o, char *buf, size_t cap)
{
    o->p = buf;
    o->cap = buf ? cap : 0;
    o->len = 0;
    o->full = o->cap == 0;
    if (o->cap)
        o->p[0] = '\0';
}

/* case_: 0 as is, 'l' lower, 'u' upper */
static void venue_out_put(venue_out *o, const char *s, char case_)
{
    if (o->full)
        return;
    size_t n = strlen(s);
    if (n >= o->cap - o->len) {
        o->full = 1;
        return;
    }
    for (size_t i = 0; i < n; i++)
        o->p[o->len + i] = case_ == 'l'   ? venue_tolower(s[i])
                           : case_ == 'u' ? venue_toupper(s[i])
                                          : s[i];
    o->len += n;
    o->p[o->len] = '\0';
}

void venue_out_puts(venue_out *o, const char *s) { venue_out_put(o, s, 0); }

void venue_out_lower(venue_out *o, const char *s) { venue_out_put(o, s, 'l'); }

void venue_out_upper(venue_out *o, const char *s) { venue_out_put(o, s, 'u'); }

int venue_out_end(venue_out *o)
{
    if (o->full || o->len > INT32_MAX) {
        if (o->cap)
            o->p[0] = '\0';
        return -1;
    }
    return (int)o->len;
}

void venue_out_quoted_list(venue_out *o, const char *const *syms, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        venue_out_puts(o, i ? ",\"" : "\"");
        venue_out_puts(o, syms[i]);
        venue_out_puts(o, "\"");
    }
}

int venue_all_ok(const char *const *syms, size_t n, int (*ok)(const char *))
{
    if (!syms || n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!ok(syms[i]))
            return 0;
    return 1;
}

int venue_fixed_path(const char *const *syms, size_t n, int (*ok)(const char *), const char *path,
                     char *out, size_t cap)
{
    venue_out o;
    venue_out_init(&o, out, cap);
    if (!venue_all_ok(syms, n, ok))
        return -1;
    venue_out_puts(&o, path);
    return venue_out_end(&o);
}

/* ---- WebSocket request target and Host ---- */

int venue_ws_target(const char *url_path, const char *preset_path, char *out, size_t cap)
{
    if (!out || !cap || !preset_path)
        return -1;
    out[0] = '\0';
    const char *up = url_path ? url_path : "";
    while (*up == '/')
        up++;
    /* split both into path and query */
    const char *uq = strchr(up, '?');
    size_t ulen = uq ? (size_t)(uq - up) : strlen(up);
    while (ulen && up[ulen - 1] == '/')
        ulen--;
    const char *pq = strchr(preset_path, '?');
    size_t plen = pq ? (size_t)(pq - preset_path) : strlen(preset_path);
    const char *p = preset_path;
    while (plen && *p == '/')
        p++, plen--;
    while (plen && p[plen - 1] == '/')
        plen--;
    /* p[0..plen) is the endpoint without slashes ("v2", "stream", "" for root) */
    int keep = 0; /* 1: the configured path already names the endpoint */
    if (!plen)
        keep = 1;
    else if (ulen >= plen && !memcmp(up + ulen - plen, p, plen) &&
             (ulen == plen || up[ulen - plen - 1] == '/'))
        keep = 1;
    venue_out o;
    venue_out_init(&o, out, cap);
    venue_out_puts(&o, "/");
    char seg[1024];
    if (ulen >= sizeof(seg) || plen >= sizeof(seg))
        return venue_out_init(&o, out, cap), -1;
    memcpy(seg, up, ulen);
    seg[ulen] = '\0';
    venue_out_puts(&o, seg);
    if (!keep) {
        if (ulen)
            venue_out_puts(&o, "/");
        memcpy(seg, p, plen);
        seg[plen] = '\0';
        venue_out_puts(&o, seg);
    }
    int q = 0;
    if (uq && uq[1]) {
        venue_out_puts(&o, uq);
        q = 1;
    }
    if (pq && pq[1]) {
        venue_out_puts(&o, q ? "&" : "?");
        venue_out_puts(&o, pq + 1);
    }
    return venue_out_end(&o);
}

int venue_ws_host(const char *host, int port, int tls, char *out, size_t cap)
{
    if (!host || !out || !cap)
        return -1;
    int v6 = strchr(host, ':') != NULL && host[0] != '[';
    int dflt = port == (tls ? 443 : 80) || port <= 0;
    int w = dflt ? snprintf(out, cap, v6 ? "[%s]" : "%s", host)
                 : snprintf(out, cap, v6 ? "[%s]:%d" : "%s:%d", host, port);
    if (w < 0 || (size_t)w >= cap) {
        out[0] = '\0';
        return -1;
    }
    return w;
}

/* ---- spreading symbols over connections ---- */

size_t venue_ws_conns(size_t n, size_t per_conn)
{
    if (!n)
        return 0;
    if (!per_conn)
        return 1;
    return n / per_conn + (n % per_conn != 0);
}

int venue_ws_shard(size_t n, size_t per_conn, size_t k, size_t *first, size_t *count)
{
    size_t conns = venue_ws_conns(n, per_conn);
    if (k >= conns || !first || !count)
        return -1;
    /* Balanced: 1500 over 512 each is 500/500/500, not 512/512/476, so no
     * connection runs at the venue's limit when it need not. */
    size_t base = n / conns, extra = n % conns;
    *first = k * base + (k < extra ? k : extra);
    *count = base + (k < extra);
    return 0;
}
