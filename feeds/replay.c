/*
 * replay.c — the replay feed adapter (feed_replay_type): plays a capture file
 * (feed_capture.h; the format of tests/fixtures/) through the venue preset's own
 * parser, ws_parse for "frame" records and rest_parse for "body" records,
 * exactly as the live adapters call them, with recv_us = the recorded `t`.
 *
 * One thread per feed reads the file line by line (one line in memory at a
 * time, at most FEED_REPLAY_MAX_LINE bytes), sleeps until each record is due —
 * the recorded `t` deltas divided by `speed`, against the monotonic clock, so
 * pacing does not drift; speed 0 does not sleep — and hands updates to the
 * service thread through a feed_mailbox (latest value per symbol), mapping
 * venue symbols to canonical and completing partial quotes like the REST
 * adapter. Event times are the parser's (the recorded frame's own time, else
 * the recorded `t`). The normalizer drops a value older than the one it holds
 * for a symbol, so a looping replay shifts every time forward each pass by at
 * least the file's whole time span: times keep growing across passes.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/feed_mailbox.h"
#include "tickerd/feed_replay.h"
#include "tickerd/log.h"
#include "tickerd/symtab.h"
#include "tickerd/util.h"
#include "tickerd/venue.h"

#define REPLAY_GUESS_LINES 100     /* lines read to guess the transport */
#define REPLAY_LOG_EVERY 100       /* malformed lines / refused frames: log the 1st, 101st, ... */
#define REPLAY_PASS_PAUSE_US 1000  /* between passes of a loop, so a tiny file never spins */
#define REPLAY_KEEP_LINE_BUF (1u << 20)

typedef struct replay_opts {
    char venue[16];
    char file[512];
    char transport[8];
    double speed;
    int loop;
    int ws; /* transport resolved: 1 ws, 0 rest */
    venue_symbol_map *symbols; /* NULL: every symbol the preset maps */
    size_t nsymbols;
} replay_opts;

typedef enum { REPLAY_STARTING = 0, REPLAY_PLAYING, REPLAY_FINISHED } replay_phase;

typedef struct replay {
    feed_env env;
    replay_opts o;
    const venue_preset *preset;
    FILE *f;
    feed_mailbox *mailbox;
    /* per slot: the configured symbols, or those met so far (thread-owned) */
    venue_symbol_map *slots;
    size_t nslots, maxslots;
    feed_update *known; /* last complete value per slot (merging partials) */
    int64_t ts_shift;   /* added to every event time: grows each loop pass */
    int64_t min_ts, max_ts; /* raw event times of the current pass */
    char *line;
    size_t line_cap;
    uint64_t lineno;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_int stop;
    int running;
    atomic_int phase;
    atomic_uint_fast64_t updates, records, malformed, refused, unmapped, passes;
    atomic_int_fast64_t last_update_us;
} replay;

/* ---- reading capture lines ---- */

/* One line of f into *buf (NUL-terminated, without the '\n'). Returns 1, 0 at
 * the end of the file, or -1 for a line longer than FEED_REPLAY_MAX_LINE (or
 * one memory ran out for), which is consumed and skipped. */
static int replay_read_line(FILE *f, char **buf, size_t *cap, size_t *len)
{
    size_t n = 0;
    int c, over = 0;
    if (!*buf) {
        *buf = malloc(4096);
        if (!*buf)
            return 0; /* out of memory: treated as the end of the file */
        *cap = 4096;
    }
    while ((c = getc_unlocked(f)) != EOF && c != '\n') {
        if (over)
            continue;
        if (n + 1 >= *cap) {
            if (n >= FEED_REPLAY_MAX_LINE) {
                over = 1;
                continue;
            }
            size_t nc = *cap * 2;
            if (nc > FEED_REPLAY_MAX_LINE + 1)
                nc = FEED_REPLAY_MAX_LINE + 1;
            char *b = realloc(*buf, nc);
            if (!b) {
                over = 1;
                continue;
            }
            *buf = b;
            *cap = nc;
        }
        (*buf)[n++] = (char)c;
    }
    if (over)
        return -1;
    if (c == EOF && n == 0)
        return 0;
    (*buf)[n] = '\0';
    *len = n;
    return 1;
}

static int replay_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

/* One capture record (see feed_capture.h), pointing into the parsed line. */
typedef struct replay_rec {
    int64_t t;
    const char *text; /* frame or body */
    size_t len;
    long status;
    const char *hint;
} replay_rec;

/* Which kind of record root is: 1 ws ("frame"), 0 rest ("body"), -1 neither. */
static int replay_kind(const json_t *root)
{
    if (!json_is_object(root) || !json_is_integer(json_object_get(root, "t")))
        return -1;
    if (json_is_string(json_object_get(root, "frame")))
        return 1;
    if (json_is_string(json_object_get(root, "body")))
        return 0;
    return -1;
}

/* Fill r from root; returns 0, or -1 with *why set when it is no valid record
 * of the expected kind. */
static int replay_decode(const json_t *root, int ws, replay_rec *r, const char **why)
{
    int kind = replay_kind(root);
    if (kind < 0) {
        *why = "not a capture record ({\"t\":int, \"frame\"|\"body\":string})";
        return -1;
    }
    if (kind != ws) {
        *why = ws ? "a rest record in a ws replay" : "a ws record in a rest replay";
        return -1;
    }
    memset(r, 0, sizeof(*r));
    r->t = json_integer_value(json_object_get(root, "t"));
    const json_t *text = json_object_get(root, ws ? "frame" : "body");
    r->text = json_string_value(text);
    r->len = json_string_length(text);
    if (!ws) {
        const json_t *status = json_object_get(root, "status");
        const json_t *hint = json_object_get(root, "hint");
        if (!json_is_integer(status)) {
            *why = "\"status\" is not an integer";
            return -1;
        }
        if (hint && !json_is_null(hint) && !json_is_string(hint)) {
            *why = "\"hint\" is neither a string nor null";
            return -1;
        }
        r->status = (long)json_integer_value(status);
        r->hint = json_is_string(hint) ? json_string_value(hint) : NULL;
    }
    return 0;
}

/* The transport of the first recognisable record among the file's first
 * REPLAY_GUESS_LINES lines: 1 ws, 0 rest, -1 none found. */
static int replay_guess(FILE *f)
{
    char *buf = NULL;
    size_t cap = 0, len;
    int kind = -1;
    for (int i = 0; i < REPLAY_GUESS_LINES && kind < 0; i++) {
        int k = replay_read_line(f, &buf, &cap, &len);
        if (k == 0)
            break;
        if (k < 0)
            continue;
        json_t *root = json_loadb(buf, len, JSON_ALLOW_NUL, NULL);
        kind = replay_kind(root);
        json_decref(root);
    }
    free(buf);
    return kind;
}

/* ---- options ---- */

static void replay_free_opts(void *p)
{
    replay_opts *o = p;
    if (o)
        free(o->symbols);
    free(o);
}

static int replay_parse(const json_t *obj, const char *path, void **out, cfg_error *err)
{
    static const cfg_field fields[] = {
        {"venue", CFG_STRING, offsetof(replay_opts, venue), 0, 16},
        {"file", CFG_STRING, offsetof(replay_opts, file), 0, 512},
        {"transport", CFG_STRING, offsetof(replay_opts, transport), 0, 8},
        {"speed", CFG_DOUBLE, offsetof(replay_opts, speed), 0, 1e6},
        {"loop", CFG_BOOL, offsetof(replay_opts, loop), 0, 1},
    };
    static const char *const handled[] = {"type", "name", "symbols", NULL};
    replay_opts *o = calloc(1, sizeof(*o));
    FILE *f = NULL;
    if (!o)
        return cfg_fail(err, "%s: out of memory", path);
    o->speed = 1.0;
    if (cfg_parse_fields(obj, path, fields, sizeof(fields) / sizeof(fields[0]), handled, o, err))
        goto fail;
    const venue_preset *v = venue_find(o->venue);
    if (!v) {
        cfg_fail(err, "%s.venue: must be one of binance, coinbase, kraken, coingecko, okx, bybit, bitstamp", path);
        goto fail;
    }
    if (!o->file[0]) {
        cfg_fail(err, "%s.file: required (a capture file, JSONL)", path);
        goto fail;
    }
    if (o->transport[0] && strcmp(o->transport, "ws") && strcmp(o->transport, "rest")) {
        cfg_fail(err, "%s.transport: must be \"ws\" or \"rest\"", path);
        goto fail;
    }
    f = fopen(o->file, "re");
    if (!f) {
        cfg_fail(err, "%s.file: cannot read \"%s\": %s", path, o->file, strerror(errno));
        goto fail;
    }
    if (o->transport[0]) {
        o->ws = !strcmp(o->transport, "ws");
    } else {
        int kind = replay_guess(f);
        if (kind < 0) {
            cfg_fail(err,
                     "%s.transport: no capture record in the first %d lines of \"%s\" to tell "
                     "ws (\"frame\") from rest (\"body\"); set \"ws\" or \"rest\"",
                     path, REPLAY_GUESS_LINES, o->file);
            goto fail;
        }
        o->ws = kind;
    }
    fclose(f);
    f = NULL;
    if (o->ws ? !v->ws_parse : !v->rest_parse) {
        cfg_fail(err, "%s.transport: %s has no %s format", path, v->name,
                 o->ws ? "WebSocket" : "REST");
        goto fail;
    }
    const json_t *syms = json_object_get(obj, "symbols");
    if (syms) {
        if (venue_parse_symbols(syms, path, v, FEED_REPLAY_MAX_SYMBOLS, &o->symbols, &o->nsymbols,
                                err))
            goto fail;
    } else {
        /* A preset that cannot spell symbols (CoinGecko: ids come from
         * config) cannot map what it reads either. */
        char probe[VENUE_SYMBOL_MAX];
        if (v->to_venue("BTC-USD", probe, sizeof(probe))) {
            cfg_fail(err,
                     "%s.symbols: required for %s (its ids are not symbols): e.g. "
                     "[{\"symbol\": \"BTC-USD\", \"venue\": \"bitcoin\"}]",
                     path, v->name);
            goto fail;
        }
    }
    *out = o;
    return 0;
fail:
    if (f)
        fclose(f);
    replay_free_opts(o);
    return -1;
}

/* ---- the replay thread ---- */

/* Slot of a venue symbol: the configured list (configured spelling first,
 * then the preset's mapping), or without a list the symbols met so far, a new
 * slot for a symbol the preset maps to canonical. -1: not ours. */
static long replay_slot(replay *r, const char *venue_symbol)
{
    if (r->o.symbols)
        return venue_symbol_index(r->preset, r->slots, r->nslots, venue_symbol);
    for (size_t i = 0; i < r->nslots; i++)
        if (!strcmp(r->slots[i].venue, venue_symbol))
            return (long)i;
    char canonical[SYMTAB_NAME_MAX];
    if (r->preset->to_canonical(venue_symbol, canonical, sizeof(canonical)) ||
        !symtab_is_canonical(canonical))
        return -1;
    for (size_t i = 0; i < r->nslots; i++)
        if (!strcmp(r->slots[i].canonical, canonical))
            return (long)i; /* another spelling of a known symbol (XBTUSD, XXBTZUSD) */
    if (r->nslots == r->maxslots)
        return -1;
    venue_symbol_map *s = &r->slots[r->nslots];
    strcpy(s->canonical, canonical);
    snprintf(s->venue, sizeof(s->venue), "%s", venue_symbol);
    return (long)r->nslots++;
}

static void replay_complain(replay *r, atomic_uint_fast64_t *counter, const char *what,
                            const char *why)
{
    uint_fast64_t n = atomic_fetch_add(counter, 1) + 1;
    if (n % REPLAY_LOG_EVERY == 1)
        log_warn("feed %s: %s:%" PRIu64 ": %s: %s (%" PRIuFAST64 " so far; logged every %d)",
                 r->env.name, r->o.file, r->lineno, what, why, n, REPLAY_LOG_EVERY);
}

static void replay_on_update(void *arg, const feed_update *in)
{
    replay *r = arg;
    long i = replay_slot(r, in->symbol);
    if (i < 0) { /* not configured, not mappable, or over FEED_REPLAY_MAX_SYMBOLS */
        replay_complain(r, &r->unmapped, "symbol ignored", in->symbol);
        return;
    }
    if (in->ts_us < r->min_ts)
        r->min_ts = in->ts_us;
    if (in->ts_us > r->max_ts)
        r->max_ts = in->ts_us;
    feed_update u = *in;
    u.ts_us += r->ts_shift;
    feed_update_complete(&r->known[i], &u);
    if (isnan(u.last) || isnan(u.bid) || isnan(u.ask))
        return; /* a price never seen yet for this symbol */
    u.symbol = r->slots[i].canonical;
    u.source = r->env.source;
    feed_mailbox_put(r->mailbox, (size_t)i, &u);
    atomic_fetch_add(&r->updates, 1);
    atomic_store(&r->last_update_us, tk_now_us());
}

/* Sleep until the monotonic time due (µs) or until stopped; 0 when stopping. */
static int replay_sleep_until(replay *r, int64_t due)
{
    pthread_mutex_lock(&r->lock);
    while (!atomic_load(&r->stop)) {
        int64_t now = tk_mono_us();
        if (now >= due)
            break;
        struct timespec ts = {.tv_sec = due / 1000000, .tv_nsec = (due % 1000000) * 1000};
        pthread_cond_timedwait(&r->cond, &r->lock, &ts);
    }
    int go = !atomic_load(&r->stop);
    pthread_mutex_unlock(&r->lock);
    return go;
}

static void replay_play(replay *r, const replay_rec *rec)
{
    char err[160] = "";
    venue_emit emit = {.arg = r, .update = replay_on_update};
    venue_msg m;
    if (r->o.ws)
        m = r->preset->ws_parse(rec->text, rec->len, r->env.source, rec->t, &emit, err,
                                sizeof(err));
    else
        m = r->preset->rest_parse(rec->status, rec->text, rec->len, rec->hint, r->env.source,
                                  rec->t, &emit, err, sizeof(err));
    if (m == VENUE_MSG_MALFORMED || m == VENUE_MSG_ERROR || m == VENUE_MSG_REJECT)
        replay_complain(r, &r->refused, venue_msg_name(m), err[0] ? err : "(no detail)");
}

/* Recorded µs from the start of the replay to real µs at this speed (capped
 * at ~3 years so an absurd speed cannot overflow). */
static int64_t replay_delay_us(const replay *r, int64_t recorded_us)
{
    double d = (double)recorded_us / r->o.speed;
    return d > 1e14 ? (int64_t)1e14 : (int64_t)d;
}

static void *replay_thread(void *arg)
{
    replay *r = arg;
    int64_t start_us = 0, t0 = 0, pace_shift = 0;
    int started = 0;
    while (!atomic_load(&r->stop)) {
        int64_t first_t = 0, last_t = 0;
        uint64_t n = 0;
        r->min_ts = INT64_MAX;
        r->max_ts = INT64_MIN;
        r->lineno = 0;
        rewind(r->f);
        for (;;) {
            size_t len = 0;
            int k = replay_read_line(r->f, &r->line, &r->line_cap, &len);
            if (k == 0 || atomic_load(&r->stop))
                break;
            r->lineno++;
            if (k < 0) {
                replay_complain(r, &r->malformed, "malformed line", "longer than the limit");
                continue;
            }
            if (replay_blank(r->line, len))
                continue;
            json_error_t jerr;
            json_t *root = json_loadb(r->line, len, JSON_ALLOW_NUL, &jerr);
            replay_rec rec;
            const char *why = jerr.text;
            if (!root || replay_decode(root, r->o.ws, &rec, &why)) {
                replay_complain(r, &r->malformed, "malformed line", why);
                json_decref(root);
                continue;
            }
            if (!started) {
                started = 1;
                t0 = rec.t;
                start_us = tk_mono_us();
            }
            if (!n++)
                first_t = rec.t;
            last_t = rec.t;
            if (r->o.speed > 0 &&
                !replay_sleep_until(r, start_us + replay_delay_us(r, rec.t - t0 + pace_shift))) {
                json_decref(root);
                break;
            }
            atomic_store(&r->phase, REPLAY_PLAYING);
            replay_play(r, &rec);
            atomic_fetch_add(&r->records, 1);
            json_decref(root);
            if (r->line_cap > REPLAY_KEEP_LINE_BUF) { /* do not keep a huge line's buffer */
                free(r->line);
                r->line = NULL;
                r->line_cap = 0;
            }
        }
        if (atomic_load(&r->stop))
            break;
        uint_fast64_t passes = atomic_fetch_add(&r->passes, 1) + 1;
        if (!r->o.loop || !n) {
            atomic_store(&r->phase, REPLAY_FINISHED);
            log_info("feed %s: %s finished: %" PRIuFAST64 " records, %" PRIuFAST64
                     " updates, %" PRIuFAST64 " malformed lines, %" PRIuFAST64
                     " refused by the %s parser, %" PRIuFAST64 " updates of other symbols",
                     r->env.name, r->o.file, (uint_fast64_t)atomic_load(&r->records),
                     (uint_fast64_t)atomic_load(&r->updates),
                     (uint_fast64_t)atomic_load(&r->malformed),
                     (uint_fast64_t)atomic_load(&r->refused), r->preset->name,
                     (uint_fast64_t)atomic_load(&r->unmapped));
            break;
        }
        /* The next pass starts one average record gap after this one ended,
         * and its event times are shifted past every time of this pass. */
        int64_t span = last_t - first_t;
        if (span < 0)
            span = 0;
        int64_t gap = n > 1 ? span / (int64_t)(n - 1) : 1000000;
        if (gap < 1)
            gap = 1;
        pace_shift += span + gap;
        int64_t ts_span = r->max_ts >= r->min_ts ? r->max_ts - r->min_ts + 1 : 0;
        r->ts_shift += span + gap > ts_span ? span + gap : ts_span;
        log_debug("feed %s: pass %" PRIuFAST64 " of %s done (%" PRIu64 " records); event times "
                  "now shifted by %" PRId64 " µs",
                  r->env.name, passes, r->o.file, n, r->ts_shift);
        if (!replay_sleep_until(r, tk_mono_us() + REPLAY_PASS_PAUSE_US))
            break;
    }
    return NULL;
}

/* ---- lifecycle (service thread) ---- */

static void replay_destroy(void *self);

static void *replay_create(const void *opts, const feed_env *env)
{
    const replay_opts *o = opts;
    replay *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->env = *env;
    r->o = *o;
    r->o.symbols = NULL;
    r->preset = venue_find(o->venue);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    r->maxslots = o->symbols ? o->nsymbols : FEED_REPLAY_MAX_SYMBOLS;
    r->slots = calloc(r->maxslots, sizeof(*r->slots));
    r->known = calloc(r->maxslots, sizeof(*r->known));
    if (o->symbols)
        r->o.symbols = calloc(o->nsymbols, sizeof(*o->symbols));
    if (!r->preset || !r->slots || !r->known || (o->symbols && !r->o.symbols))
        goto fail;
    r->f = fopen(o->file, "re");
    if (!r->f) {
        log_error("feed %s: cannot read %s: %s", env->name, o->file, strerror(errno));
        goto fail;
    }
    for (size_t i = 0; i < r->maxslots; i++) {
        r->known[i].bid = r->known[i].ask = r->known[i].last = NAN;
        r->known[i].volume = r->known[i].open = NAN;
    }
    if (o->symbols) {
        memcpy(r->o.symbols, o->symbols, o->nsymbols * sizeof(*o->symbols));
        memcpy(r->slots, o->symbols, o->nsymbols * sizeof(*o->symbols));
        r->nslots = o->nsymbols;
        for (size_t i = 0; i < o->nsymbols; i++)
            env->sink.declare(env->sink.arg, env->source, r->slots[i].canonical, NULL);
    }
    r->mailbox = feed_mailbox_create(r->maxslots, env->lws);
    if (!r->mailbox)
        goto fail;
    return r;
fail:
    replay_destroy(r);
    return NULL;
}

static int replay_start(void *self)
{
    replay *r = self;
    if (pthread_create(&r->thread, NULL, replay_thread, r))
        return -1;
    r->running = 1;
    log_info("feed %s: replaying %s (%s, %s) at %gx%s", r->env.name, r->o.file, r->preset->name,
             r->o.ws ? "ws" : "rest", r->o.speed, r->o.loop ? ", looping" : "");
    return 0;
}

static void replay_stop(void *self)
{
    replay *r = self;
    if (!r->running)
        return;
    pthread_mutex_lock(&r->lock);
    atomic_store(&r->stop, 1);
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    r->running = 0;
}

static void replay_destroy(void *self)
{
    replay *r = self;
    if (!r)
        return;
    replay_stop(r);
    if (r->f)
        fclose(r->f);
    feed_mailbox_destroy(r->mailbox);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r->o.symbols);
    free(r->slots);
    free(r->known);
    free(r->line);
    free(r);
}

/* Same settings: keep playing. Changed: the app restarts the feed (from the
 * start of the file; see docs/feeds-replay.md about event times). */
static int replay_reload(void *self, const void *opts)
{
    const replay *r = self;
    const replay_opts *o = opts;
    if (strcmp(r->o.venue, o->venue) || strcmp(r->o.file, o->file) || r->o.ws != o->ws ||
        r->o.speed != o->speed || r->o.loop != o->loop || r->o.nsymbols != o->nsymbols ||
        !r->o.symbols != !o->symbols ||
        (o->symbols && memcmp(r->o.symbols, o->symbols, o->nsymbols * sizeof(*o->symbols))))
        return -1;
    return 0;
}

static void replay_wake(void *self)
{
    replay *r = self;
    feed_mailbox_drain(r->mailbox, &r->env.sink);
}

static void replay_status(const void *self, feed_status *st)
{
    replay *r = (replay *)self;
    st->updates = atomic_load(&r->updates);
    st->last_update_us = atomic_load(&r->last_update_us);
    st->malformed = atomic_load(&r->malformed) + atomic_load(&r->refused);
    int phase = atomic_load(&r->phase);
    if (phase == REPLAY_FINISHED) {
        st->state = FEED_DOWN;
        snprintf(st->detail, sizeof(st->detail), "finished");
    } else if (!r->running) {
        st->state = FEED_DOWN;
        snprintf(st->detail, sizeof(st->detail), "stopped");
    } else {
        st->state = phase == REPLAY_PLAYING ? FEED_LIVE : FEED_STARTING;
    }
}

static int replay_symbols(const void *opts, feed_symbol_fn each, void *arg)
{
    const replay_opts *o = opts;
    if (!o->symbols)
        return -1; /* every symbol the file holds: not known before it is read */
    venue_symbols_each(o->symbols, o->nsymbols, each, arg);
    return 0;
}

const feed_type feed_replay_type = {
    .name = "replay",
    .parse = replay_parse,
    .free_opts = replay_free_opts,
    .create = replay_create,
    .start = replay_start,
    .reload = replay_reload,
    .stop = replay_stop,
    .destroy = replay_destroy,
    .status = replay_status,
    .symbols = replay_symbols,
    .wake = replay_wake,
};
