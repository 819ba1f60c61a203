/*
 * sim.c — the simulated market feed (feed_sim_type).
 *
 * Each symbol follows geometric Brownian motion in real time with its own
 * annualised volatility: mid *= exp(-σ²dt/2 + σ√dt·Z). Quotes sit on the tick
 * grid around the mid with a spread that breathes ±25 % around the configured
 * one; each update is a trade printed at the bid or the ask, whose size is
 * added to the symbol's volume. A timer on the lws service thread emits
 * `rate` updates per second in total, spread uniformly over the symbols.
 */
#include <libwebsockets.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/feed_sim.h"
#include "tickerd/symtab.h"
#include "tickerd/util.h"

#define SIM_SECONDS_PER_YEAR 31557600.0
#define SIM_MIN_PERIOD_US 1000    /* at most 1000 timer runs per second */
#define SIM_MAX_PERIOD_US 100000  /* slow rates still tick every 100 ms */
#define SIM_MEAN_TRADE_NOTIONAL 5000.0

typedef struct sim_symbol_cfg {
    char symbol[SYMTAB_NAME_MAX];
    double price, volatility, spread_bps, tick;
} sim_symbol_cfg;

typedef struct sim_opts {
    int rate;
    uint64_t seed;
    int include_defaults;
    int generated_symbols;
    sim_symbol_cfg *symbols;
    size_t nsymbols;
} sim_opts;

/* The embedded default market: 7 crypto pairs, 8 US equities, 5 FX pairs. */
static const sim_symbol_cfg sim_defaults[FEED_SIM_DEFAULT_SYMBOLS] = {
    {"BTC-USD", 65000.00, 0.60, 0.5, 0.01},  {"ETH-USD", 3400.00, 0.70, 1.0, 0.01},
    {"SOL-USD", 150.00, 0.90, 2.0, 0.01},    {"XRP-USD", 0.5500, 0.80, 3.0, 0.0001},
    {"ADA-USD", 0.4500, 0.85, 4.0, 0.0001},  {"DOGE-USD", 0.15000, 1.00, 5.0, 0.00001},
    {"LTC-USD", 80.00, 0.75, 3.0, 0.01},     {"AAPL-USD", 190.00, 0.25, 1.5, 0.01},
    {"MSFT-USD", 420.00, 0.25, 1.2, 0.01},   {"NVDA-USD", 120.00, 0.50, 2.0, 0.01},
    {"AMZN-USD", 180.00, 0.30, 1.5, 0.01},   {"GOOGL-USD", 170.00, 0.30, 1.5, 0.01},
    {"TSLA-USD", 240.00, 0.60, 2.0, 0.01},   {"SPY-USD", 550.00, 0.15, 0.5, 0.01},
    {"EUR-USD", 1.08500, 0.07, 0.8, 0.00001}, {"GBP-USD", 1.27000, 0.08, 1.0, 0.00001},
    {"USD-JPY", 151.200, 0.09, 1.0, 0.001},  {"AUD-USD", 0.66000, 0.10, 1.5, 0.00001},
    {"USD-CHF", 0.88000, 0.08, 1.5, 0.00001}, {"USD-CAD", 1.36000, 0.07, 1.2, 0.00001},
};

typedef struct sim_symbol {
    sim_symbol_cfg cfg;
    double mid, volume;
    int64_t last_us; /* monotonic time of the last step */
    int quoted;      /* has emitted at least once */
} sim_symbol;

typedef struct sim {
    lws_sorted_usec_list_t sul; /* first: the timer recovers us from it */
    feed_env env;
    int rate;
    sim_symbol *syms;
    size_t nsyms;
    uint64_t rng[4];
    double credit;      /* updates owed but not yet emitted */
    int64_t last_tick_us;
    int running;
    uint64_t updates;
    int64_t last_update_us;
} sim;

/* ---- random numbers: xoshiro256** seeded by splitmix64 ---- */

static uint64_t sim_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t sim_next(sim *s)
{
    uint64_t *r = s->rng;
    uint64_t out = sim_rotl(r[1] * 5, 7) * 9, t = r[1] << 17;
    r[2] ^= r[0];
    r[3] ^= r[1];
    r[1] ^= r[2];
    r[0] ^= r[3];
    r[2] ^= t;
    r[3] = sim_rotl(r[3], 45);
    return out;
}

static void sim_seed(sim *s, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        s->rng[i] = z ^ (z >> 31);
    }
}

/* Uniform in (0, 1). */
static double sim_uniform(sim *s) { return ((sim_next(s) >> 11) + 0.5) * 0x1.0p-53; }

static double sim_normal(sim *s)
{
    return sqrt(-2.0 * log(sim_uniform(s))) * cos(6.283185307179586 * sim_uniform(s));
}

/* ---- options ---- */

static void sim_free_opts(void *p)
{
    sim_opts *o = p;
    if (o)
        free(o->symbols);
    free(o);
}

static int sim_parse_symbol(const json_t *obj, const char *path, sim_symbol_cfg *out,
                            cfg_error *err)
{
    static const cfg_field fields[] = {
        {"symbol", CFG_STRING, offsetof(sim_symbol_cfg, symbol), 0, SYMTAB_NAME_MAX},
        {"price", CFG_DOUBLE, offsetof(sim_symbol_cfg, price), 1e-9, 1e12},
        {"volatility", CFG_DOUBLE, offsetof(sim_symbol_cfg, volatility), 0, 10},
        {"spread_bps", CFG_DOUBLE, offsetof(sim_symbol_cfg, spread_bps), 0, 10000},
        {"tick", CFG_DOUBLE, offsetof(sim_symbol_cfg, tick), 1e-12, 1e6},
    };
    memset(out, 0, sizeof(*out));
    out->price = out->volatility = out->spread_bps = out->tick = NAN;
    if (cfg_parse_fields(obj, path, fields, 5, NULL, out, err))
        return -1;
    if (!out->symbol[0])
        return cfg_fail(err, "%s.symbol: required", path);
    if (!symtab_is_canonical(out->symbol))
        return cfg_fail(err, "%s.symbol: \"%s\" is not a canonical symbol (BASE-QUOTE, A-Z0-9)",
                        path, out->symbol);
    const char *missing = isnan(out->price)        ? "price"
                          : isnan(out->volatility) ? "volatility"
                          : isnan(out->spread_bps) ? "spread_bps"
                          : isnan(out->tick)       ? "tick"
                                                   : NULL;
    if (missing)
        return cfg_fail(err, "%s.%s: required", path, missing);
    return 0;
}

static int sim_parse(const json_t *obj, const char *path, void **opts_out, cfg_error *err)
{
    static const cfg_field fields[] = {
        {"rate", CFG_INT, offsetof(sim_opts, rate), 1, 1000000},
        {"seed", CFG_U64, offsetof(sim_opts, seed), 0, 9007199254740992.0},
        {"include_defaults", CFG_BOOL, offsetof(sim_opts, include_defaults), 0, 1},
        {"generated_symbols", CFG_INT, offsetof(sim_opts, generated_symbols), 0, 1000000},
    };
    static const char *const handled[] = {"type", "name", "symbols", NULL};
    sim_opts *o = calloc(1, sizeof(*o));
    if (!o)
        return cfg_fail(err, "%s: out of memory", path);
    o->rate = 200;
    o->include_defaults = 1;
    if (cfg_parse_fields(obj, path, fields, 4, handled, o, err))
        goto fail;
    const json_t *syms = json_object_get(obj, "symbols");
    if (syms) {
        char p[64];
        if (!json_is_array(syms)) {
            cfg_fail(err, "%s.symbols: must be an array", path);
            goto fail;
        }
        o->nsymbols = json_array_size(syms);
        o->symbols = calloc(o->nsymbols ? o->nsymbols : 1, sizeof(*o->symbols));
        if (!o->symbols) {
            cfg_fail(err, "%s.symbols: out of memory", path);
            goto fail;
        }
        for (size_t i = 0; i < o->nsymbols; i++) {
            snprintf(p, sizeof(p), "%s.symbols[%zu]", path, i);
            if (sim_parse_symbol(json_array_get(syms, i), p, &o->symbols[i], err))
                goto fail;
        }
    }
    if (!o->include_defaults && !o->generated_symbols && !o->nsymbols) {
        cfg_fail(err, "%s.symbols: no symbols (include_defaults is false, nothing generated)",
                 path);
        goto fail;
    }
    *opts_out = o;
    return 0;
fail:
    sim_free_opts(o);
    return -1;
}

/* ---- the market ---- */

/* One value of y, as the market made it ago_us before now. */
static void sim_emit(sim *s, sim_symbol *y, int64_t now_mono, int64_t now_real, int64_t ago_us)
{
    const sim_symbol_cfg *c = &y->cfg;
    int64_t at_mono = now_mono - ago_us;
    double dt = (double)(at_mono - y->last_us) / 1e6 / SIM_SECONDS_PER_YEAR;
    y->last_us = at_mono;
    if (dt > 0) {
        double sig = c->volatility;
        y->mid *= exp(-0.5 * sig * sig * dt + sig * sqrt(dt) * sim_normal(s));
    }
    /* Keep the mid on the grid's scale: a symbol never falls to zero. */
    if (y->mid < 10 * c->tick)
        y->mid = 10 * c->tick;

    double half = y->mid * c->spread_bps / 2e4 * (0.75 + 0.5 * sim_uniform(s));
    double bid = floor((y->mid - half) / c->tick) * c->tick;
    double ask = ceil((y->mid + half) / c->tick) * c->tick;
    if (ask <= bid)
        ask = bid + c->tick;
    if (bid <= 0) {
        bid = c->tick;
        ask = 2 * c->tick;
    }
    double last = sim_uniform(s) < 0.5 ? bid : ask;
    y->volume += -log(sim_uniform(s)) * SIM_MEAN_TRADE_NOTIONAL / last;

    feed_update u = {
        .symbol = c->symbol,
        .last = last,
        .bid = bid,
        .ask = ask,
        .volume = y->volume,
        .open = NAN,
        /* never before the last value: the two clocks are read apart */
        .ts_us = now_real - ago_us > s->last_update_us ? now_real - ago_us : s->last_update_us,
        .source = s->env.source,
    };
    y->quoted = 1;
    s->updates++;
    s->last_update_us = u.ts_us;
    s->env.sink.emit(s->env.sink.arg, &u);
}

static int64_t sim_period_us(int rate)
{
    int64_t p = 1000000 / rate;
    return p < SIM_MIN_PERIOD_US ? SIM_MIN_PERIOD_US : p > SIM_MAX_PERIOD_US ? SIM_MAX_PERIOD_US : p;
}

static void sim_tick(lws_sorted_usec_list_t *sul)
{
    sim *s = lws_container_of(sul, sim, sul);
    int64_t now = tk_mono_us();
    s->credit += (double)s->rate * (double)(now - s->last_tick_us) / 1e6;
    s->last_tick_us = now;
    /* After a stall (debugger, suspended VM) do not fire a huge burst: owe
     * at most a quarter second's worth. */
    if (s->credit > s->rate / 4.0 + 1)
        s->credit = s->rate / 4.0 + 1;
    /*
     * The values owed happened over the time since the last tick, one each
     * time the credit crossed a whole number: each carries that moment as
     * its event time, like a venue's values waiting in a socket.  So a late
     * tick (the loop was busy writing) yields values spread in market time,
     * which the normalizer coalesces by event time, and latency measured
     * from ts includes the time they waited for the loop.
     */
    int64_t real = tk_now_us();
    while (s->credit >= 1 && s->nsyms) {
        s->credit -= 1;
        sim_emit(s, &s->syms[sim_next(s) % s->nsyms], now, real,
                 (int64_t)(s->credit * 1e6 / (double)s->rate));
    }
    lws_sul_schedule(s->env.lws, 0, &s->sul, sim_tick, sim_period_us(s->rate));
}

static void sim_symbol_init(sim *s, sim_symbol *y, const sim_symbol_cfg *c, int64_t now)
{
    y->cfg = *c;
    y->mid = c->price;
    y->volume = 5e8 / c->price * (0.5 + sim_uniform(s));
    y->last_us = now;
}

/* The name of generated symbol i (from 0). */
static void sim_generated_name(char *buf, size_t cap, size_t i)
{
    snprintf(buf, cap, "G%05zu-USD", i + 1);
}

/* Build the symbol set for opts, keeping the state of symbols that survive a
 * reload so their prices continue. Declares new symbols downstream. */
static int sim_build(sim *s, const sim_opts *o)
{
    size_t n = (o->include_defaults ? FEED_SIM_DEFAULT_SYMBOLS : 0) + o->nsymbols +
               (size_t)o->generated_symbols;
    sim_symbol *syms = calloc(n ? n : 1, sizeof(*syms));
    if (!syms)
        return -1;
    int64_t now = tk_mono_us();
    size_t k = 0;
    /* Name indexes keep building linear for large generated sets. */
    symtab *seen = symtab_new((uint32_t)n + 1), *old_names = NULL;
    if (s->nsyms) {
        old_names = symtab_new((uint32_t)s->nsyms);
        for (size_t m = 0; old_names && m < s->nsyms; m++)
            symtab_intern(old_names, s->syms[m].cfg.symbol, NULL);
    }
    if (!seen || (s->nsyms && !old_names)) {
        symtab_free(seen);
        symtab_free(old_names);
        free(syms);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        sim_symbol_cfg c;
        if (o->include_defaults && i < FEED_SIM_DEFAULT_SYMBOLS) {
            c = sim_defaults[i];
        } else if (i < (o->include_defaults ? FEED_SIM_DEFAULT_SYMBOLS : 0) + o->nsymbols) {
            c = o->symbols[i - (o->include_defaults ? FEED_SIM_DEFAULT_SYMBOLS : 0)];
        } else {
            /* Generated symbols for benchmarks: log-uniform prices 1..1000. */
            memset(&c, 0, sizeof(c));
            sim_generated_name(c.symbol, sizeof(c.symbol), i - (n - (size_t)o->generated_symbols));
            c.price = exp(log(1000.0) * sim_uniform(s));
            c.volatility = 0.3 + 0.5 * sim_uniform(s);
            c.spread_bps = 2.0;
            c.tick = 0.01;
        }
        int added;
        if (symtab_intern(seen, c.symbol, &added) == SYMTAB_NONE || !added)
            continue; /* a symbol listed twice is simulated once */
        uint32_t was = old_names ? symtab_find(old_names, c.symbol) : SYMTAB_NONE;
        sim_symbol *old = was == SYMTAB_NONE ? NULL : &s->syms[was];
        if (old) {
            syms[k] = *old;
            syms[k].cfg = c;
        } else {
            sim_symbol_init(s, &syms[k], &c, now);
            s->env.sink.declare(s->env.sink.arg, s->env.source, c.symbol, NULL);
        }
        k++;
    }
    symtab_free(seen);
    symtab_free(old_names);
    free(s->syms);
    s->syms = syms;
    s->nsyms = k;
    s->rate = o->rate;
    return 0;
}

static void *sim_create(const void *opts, const feed_env *env)
{
    const sim_opts *o = opts;
    sim *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->env = *env;
    sim_seed(s, o->seed ? o->seed : (uint64_t)tk_now_us());
    if (sim_build(s, o)) {
        free(s);
        return NULL;
    }
    return s;
}

static int sim_start(void *self)
{
    sim *s = self;
    int64_t now = tk_mono_us();
    /* One quote per symbol at once, so the first subscriber gets a full
     * snapshot instead of waiting for the random walk to reach each symbol. */
    for (size_t i = 0; i < s->nsyms; i++)
        sim_emit(s, &s->syms[i], now, tk_now_us(), 0);
    s->last_tick_us = now;
    s->running = 1;
    lws_sul_schedule(s->env.lws, 0, &s->sul, sim_tick, sim_period_us(s->rate));
    return 0;
}

static int sim_reload(void *self, const void *opts)
{
    sim *s = self;
    if (sim_build(s, opts))
        return -1;
    /* Give symbols added by the reload a first quote at once. */
    if (s->running) {
        int64_t now = tk_mono_us();
        for (size_t i = 0; i < s->nsyms; i++)
            if (!s->syms[i].quoted)
                sim_emit(s, &s->syms[i], now, tk_now_us(), 0);
    }
    return 0;
}

static void sim_stop(void *self)
{
    sim *s = self;
    lws_sul_cancel(&s->sul);
    s->running = 0;
}

static void sim_destroy(void *self)
{
    sim *s = self;
    free(s->syms);
    free(s);
}

static void sim_status(const void *self, feed_status *st)
{
    const sim *s = self;
    st->state = !s->running ? FEED_DOWN : s->updates ? FEED_LIVE : FEED_STARTING;
    st->updates = s->updates;
    st->last_update_us = s->last_update_us;
    if (!s->running)
        snprintf(st->detail, sizeof(st->detail), "stopped");
}

static int sim_symbols(const void *opts, feed_symbol_fn each, void *arg)
{
    const sim_opts *o = opts;
    for (size_t i = 0; o->include_defaults && i < FEED_SIM_DEFAULT_SYMBOLS; i++)
        each(arg, sim_defaults[i].symbol);
    for (size_t i = 0; i < o->nsymbols; i++)
        each(arg, o->symbols[i].symbol);
    for (size_t i = 0; i < (size_t)o->generated_symbols; i++) {
        char name[sizeof(o->symbols[0].symbol)];
        sim_generated_name(name, sizeof(name), i);
        each(arg, name);
    }
    return 0;
}

const feed_type feed_sim_type = {
    .name = "sim",
    .parse = sim_parse,
    .free_opts = sim_free_opts,
    .create = sim_create,
    .start = sim_start,
    .reload = sim_reload,
    .stop = sim_stop,
    .destroy = sim_destroy,
    .status = sim_status,
    .symbols = sim_symbols,
};
