/* norm.c — see norm.h. */
#include "tickerd/norm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/log.h"
#include "tickerd/util.h"

#define US_PER_DAY INT64_C(86400000000)
#define NORM_NO_SOURCE UINT16_MAX
/* Switch/stale log lines per housekeeping period before they are summed up. */
#define NORM_LOG_BURST 16

/* The latest value of one source for one symbol. */
typedef struct norm_slot {
    double last, bid, ask, volume;
    double open;      /* venue's, or first last of the UTC day from this source */
    int64_t open_day; /* UTC day that open belongs to */
    int64_t ts_us;    /* this source's event time: never goes backwards */
    int64_t received_us; /* local clock at arrival: freshness */
    uint16_t source;
    uint16_t rank; /* lower = preferred; the slots are kept sorted by it */
} norm_slot;

typedef struct norm_entry {
    norm_quote q;       /* what is (to be) published: the active source's value */
    norm_slot *slots;   /* every source quoting the symbol, by rank */
    uint16_t nslots, slots_cap;
    uint16_t active;    /* source id of the published value, NORM_NO_SOURCE = none yet */
    int32_t override;   /* index into the priority overrides, -1 = none */
    uint8_t dirty;      /* changed since last flush: id is on the dirty list */
    uint8_t stale;      /* no source fresh: published with q.stale */
    uint8_t pending_update; /* dirty with a value an update of the active source brought */
    uint8_t pending_late;   /* that value arrived a flush interval or more after its ts */
    int64_t window_ts;      /* event time of the first value of the pending window */
    int64_t window_at_us;   /* local clock when that window opened */
} norm_entry;

/* Per-symbol priority overrides: src_ids[first .. first+count). */
typedef struct norm_override {
    uint32_t first, count;
} norm_override;

struct norm {
    symtab *symbols;
    symtab *aliases;       /* "<source>\x1f<venue symbol>" → alias id */
    uint32_t *alias_to;    /* alias id → symbol id */
    uint32_t aliases_cap;
    norm_entry *entries; /* by symbol id */
    uint32_t entries_cap, max_symbols;
    uint32_t *dirty;     /* ids changed since the last flush, each once */
    uint32_t ndirty;
    int flush_interval_ms;
    int64_t stale_after_us;
    double jump_band_pct;
    char *sources[NORM_MAX_SOURCES];
    int nsources;
    uint16_t default_pos[NORM_MAX_SOURCES]; /* place in the default order, UINT16_MAX = none */
    symtab *override_names; /* canonical symbol → override index; NULL = none */
    norm_override *overrides;
    uint16_t *override_src;
    uint8_t rechoose; /* priorities changed: re-choose every active source */
    int log_budget;
    uint64_t log_suppressed;
    norm_sink sink;
    norm_stats stats;
};

static const char *const reject_names[NORM_REJECT_COUNT] = {
    "bad_symbol", "not_finite", "not_positive", "crossed", "time_backwards", "symbol_limit",
    "implausible",
};

const char *norm_reject_name(norm_reject_reason r) { return reject_names[r]; }

norm *norm_create(uint32_t max_symbols, int flush_interval_ms, const norm_sink *sink)
{
    norm *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->symbols = symtab_new(max_symbols);
    /* Each source may name each symbol its own way: bound aliases likewise. */
    n->aliases = symtab_new(max_symbols);
    if (!n->symbols || !n->aliases) {
        symtab_free(n->symbols);
        symtab_free(n->aliases);
        free(n);
        return NULL;
    }
    n->max_symbols = max_symbols;
    n->flush_interval_ms = flush_interval_ms;
    n->stale_after_us = (int64_t)NORM_DEFAULT_STALE_AFTER_MS * 1000;
    n->jump_band_pct = NORM_DEFAULT_JUMP_BAND_PCT;
    memset(n->default_pos, 0xff, sizeof(n->default_pos));
    n->log_budget = NORM_LOG_BURST;
    n->sink = *sink;
    return n;
}

void norm_destroy(norm *n)
{
    if (!n)
        return;
    for (int i = 0; i < n->nsources; i++)
        free(n->sources[i]);
    for (uint32_t id = 0; id < symtab_count(n->symbols); id++)
        free(n->entries[id].slots);
    symtab_free(n->symbols);
    symtab_free(n->aliases);
    symtab_free(n->override_names);
    free(n->overrides);
    free(n->override_src);
    free(n->alias_to);
    free(n->entries);
    free(n->dirty);
    free(n);
}

void norm_set_flush_interval(norm *n, int ms)
{
    n->flush_interval_ms = ms;
    if (ms == 0)
        norm_flush(n); /* nothing may wait for a flush that no longer comes */
}

int norm_flush_interval(const norm *n) { return n->flush_interval_ms; }

void norm_set_stale_after(norm *n, int ms) { n->stale_after_us = (int64_t)ms * 1000; }
void norm_set_jump_band(norm *n, double pct) { n->jump_band_pct = pct; }

int norm_source_add(norm *n, const char *name)
{
    for (int i = 0; i < n->nsources; i++)
        if (!strcmp(n->sources[i], name))
            return i;
    if (n->nsources == NORM_MAX_SOURCES)
        return -1;
    char *copy = strdup(name);
    if (!copy)
        return -1;
    n->sources[n->nsources] = copy;
    return n->nsources++;
}

/* The alias key of (source, venue symbol); 0 when it does not fit. */
static int norm_alias_key(char *key, uint16_t source, const char *venue_symbol)
{
    int len = snprintf(key, SYMTAB_NAME_MAX, "%u\x1f%s", (unsigned)source, venue_symbol);
    return len > 0 && len < SYMTAB_NAME_MAX;
}

/* Canonical symbol → symbol id, creating the cache entry on first sight.
 * Returns SYMTAB_NONE with *reason set when refused. */
static uint32_t norm_resolve(norm *n, const char *canonical, norm_reject_reason *reason)
{
    if (!symtab_is_canonical(canonical)) {
        *reason = NORM_REJECT_BAD_SYMBOL;
        return SYMTAB_NONE;
    }
    uint32_t id = symtab_find(n->symbols, canonical);
    if (id != SYMTAB_NONE)
        return id;
    /* Grow the per-id arrays before interning, so a failed allocation leaves
     * no name without its entry. */
    uint32_t next = symtab_count(n->symbols);
    if (next >= n->max_symbols) {
        *reason = NORM_REJECT_SYMBOL_LIMIT;
        return SYMTAB_NONE;
    }
    if (next >= n->entries_cap) {
        uint32_t cap = n->entries_cap ? n->entries_cap * 2 : 64;
        norm_entry *e = realloc(n->entries, (size_t)cap * sizeof(*e));
        if (e)
            n->entries = e;
        uint32_t *d = e ? realloc(n->dirty, (size_t)cap * sizeof(*d)) : NULL;
        if (d)
            n->dirty = d;
        if (!e || !d) {
            *reason = NORM_REJECT_SYMBOL_LIMIT;
            return SYMTAB_NONE;
        }
        n->entries_cap = cap;
    }
    id = symtab_intern(n->symbols, canonical, NULL);
    if (id == SYMTAB_NONE) {
        *reason = NORM_REJECT_SYMBOL_LIMIT;
        return SYMTAB_NONE;
    }
    norm_entry *e = &n->entries[id];
    memset(e, 0, sizeof(*e));
    strcpy(e->q.symbol, canonical);
    e->q.open = NAN;
    e->active = NORM_NO_SOURCE;
    e->override = -1;
    if (n->override_names) {
        uint32_t o = symtab_find(n->override_names, canonical);
        e->override = o == SYMTAB_NONE ? -1 : (int32_t)o;
    }
    if (n->sink.symbol_added)
        n->sink.symbol_added(n->sink.arg, id, e->q.symbol);
    return id;
}

/* Symbol id for an update's symbol: the source's mapping if it declared
 * one, else the symbol itself when canonical. */
static uint32_t norm_lookup(norm *n, uint16_t source, const char *venue_symbol,
                            norm_reject_reason *reason)
{
    char key[SYMTAB_NAME_MAX];
    if (symtab_count(n->aliases) && norm_alias_key(key, source, venue_symbol)) {
        uint32_t alias = symtab_find(n->aliases, key);
        if (alias != SYMTAB_NONE)
            return n->alias_to[alias];
    }
    return norm_resolve(n, venue_symbol, reason);
}

int norm_declare(norm *n, uint16_t source, const char *venue_symbol, const char *canonical)
{
    norm_reject_reason reason = NORM_REJECT_BAD_SYMBOL;
    uint32_t id = norm_resolve(n, canonical ? canonical : venue_symbol, &reason);
    if (id == SYMTAB_NONE)
        goto refused;
    if (canonical && strcmp(canonical, venue_symbol)) {
        char key[SYMTAB_NAME_MAX];
        reason = NORM_REJECT_SYMBOL_LIMIT;
        if (!norm_alias_key(key, source, venue_symbol))
            goto refused;
        uint32_t need = symtab_count(n->aliases) + 1;
        if (need > n->aliases_cap) {
            uint32_t cap = n->aliases_cap ? n->aliases_cap * 2 : 64;
            uint32_t *to = realloc(n->alias_to, (size_t)cap * sizeof(*to));
            if (!to)
                goto refused;
            n->alias_to = to;
            n->aliases_cap = cap;
        }
        uint32_t alias = symtab_intern(n->aliases, key, NULL);
        if (alias == SYMTAB_NONE)
            goto refused;
        n->alias_to[alias] = id; /* a re-declaration may re-point it */
    }
    return 0;
refused:
    n->stats.rejected[reason]++;
    return -1;
}

/* ---- priority ---- */

static uint16_t norm_rank(const norm *n, const norm_entry *e, uint16_t source)
{
    if (source >= NORM_MAX_SOURCES)
        return UINT16_MAX; /* never registered: last */
    if (e->override >= 0) {
        const norm_override *o = &n->overrides[e->override];
        for (uint32_t i = 0; i < o->count; i++)
            if (n->override_src[o->first + i] == source)
                return (uint16_t)i;
    }
    if (n->default_pos[source] != UINT16_MAX)
        return (uint16_t)(NORM_MAX_SOURCES + n->default_pos[source]);
    return (uint16_t)(2 * NORM_MAX_SOURCES + source);
}

static void norm_sort_slots(norm_entry *e)
{
    for (uint16_t i = 1; i < e->nslots; i++) {
        norm_slot s = e->slots[i];
        uint16_t j = i;
        for (; j > 0 && e->slots[j - 1].rank > s.rank; j--)
            e->slots[j] = e->slots[j - 1];
        e->slots[j] = s;
    }
}

static int norm_source_find(const norm *n, const char *name)
{
    for (int i = 0; i < n->nsources; i++)
        if (!strcmp(n->sources[i], name))
            return i;
    return -1;
}

int norm_set_priorities(norm *n, const char *const *order, size_t norder,
                        const norm_priority *overrides, size_t noverrides)
{
    size_t total = 0;
    for (size_t i = 0; i < noverrides; i++)
        total += overrides[i].nsources;
    symtab *names = noverrides ? symtab_new((uint32_t)noverrides + 1) : NULL;
    norm_override *ov = noverrides ? calloc(noverrides, sizeof(*ov)) : NULL;
    uint16_t *src = total ? calloc(total, sizeof(*src)) : NULL;
    if ((noverrides && (!names || !ov)) || (total && !src)) {
        symtab_free(names);
        free(ov);
        free(src);
        return -1;
    }
    uint32_t used = 0;
    for (size_t i = 0; i < noverrides; i++) {
        int added = 0;
        uint32_t k = symtab_intern(names, overrides[i].symbol, &added);
        if (k == SYMTAB_NONE || !added)
            continue; /* not a symbol, or listed twice: the first wins */
        ov[k].first = used;
        for (size_t j = 0; j < overrides[i].nsources; j++) {
            int id = norm_source_find(n, overrides[i].sources[j]);
            int dup = 0;
            for (uint32_t m = ov[k].first; id >= 0 && m < used; m++)
                dup |= src[m] == id;
            if (id >= 0 && !dup)
                src[used++] = (uint16_t)id;
        }
        ov[k].count = used - ov[k].first;
    }
    symtab_free(n->override_names);
    free(n->overrides);
    free(n->override_src);
    n->override_names = names;
    n->overrides = ov;
    n->override_src = src;

    memset(n->default_pos, 0xff, sizeof(n->default_pos));
    uint16_t pos = 0;
    for (size_t i = 0; i < norder; i++) {
        int id = norm_source_find(n, order[i]);
        if (id >= 0 && n->default_pos[id] == UINT16_MAX)
            n->default_pos[id] = pos++;
    }

    for (uint32_t id = 0; id < symtab_count(n->symbols); id++) {
        norm_entry *e = &n->entries[id];
        e->override = -1;
        if (names) {
            uint32_t k = symtab_find(names, e->q.symbol);
            e->override = k == SYMTAB_NONE ? -1 : (int32_t)k;
        }
        for (uint16_t i = 0; i < e->nslots; i++)
            e->slots[i].rank = norm_rank(n, e, e->slots[i].source);
        norm_sort_slots(e);
    }
    n->rechoose = 1; /* at the next norm_check_stale, which knows the time */
    return 0;
}

/* ---- publishing ---- */

/* Hand e->q to the sink (the symbol's dirty mark is the caller's business). */
static void norm_emit(norm *n, uint32_t id)
{
    norm_entry *e = &n->entries[id];
    e->q.seq++;
    n->stats.published++;
    n->sink.publish(n->sink.arg, id, &e->q);
    e->q.stale_cleared = 0;
}

static void norm_publish(norm *n, uint32_t id)
{
    n->entries[id].dirty = 0;
    norm_emit(n, id);
}

/* The symbol's value changed: publish it now or at the next flush. replaces:
 * the new value replaces one awaiting the flush (counted as coalesced). */
static void norm_touch(norm *n, uint32_t id, int replaces)
{
    norm_entry *e = &n->entries[id];
    if (n->flush_interval_ms == 0) {
        norm_publish(n, id);
    } else if (e->dirty) {
        if (replaces)
            n->stats.coalesced++;
    } else {
        e->dirty = 1;
        n->dirty[n->ndirty++] = id;
    }
}

static int norm_reject(norm *n, norm_reject_reason r)
{
    n->stats.rejected[r]++;
    return (int)r + 1;
}

static int norm_fresh(const norm *n, const norm_slot *s, int64_t now_us)
{
    return now_us - s->received_us <= n->stale_after_us;
}

static norm_slot *norm_slot_find(norm_entry *e, uint16_t source)
{
    for (uint16_t i = 0; i < e->nslots; i++)
        if (e->slots[i].source == source)
            return &e->slots[i];
    return NULL;
}

static const char *norm_source_name(const norm *n, uint16_t source)
{
    return source < n->nsources ? n->sources[source] : "?";
}

/* A slot for source, in rank order; allocated on a source's first value for
 * the symbol, never more slots than there are sources. */
static norm_slot *norm_slot_add(norm *n, norm_entry *e, uint16_t source)
{
    if (e->nslots == e->slots_cap) {
        uint32_t cap = e->slots_cap ? 2u * e->slots_cap : 1;
        if (cap > (uint32_t)n->nsources)
            cap = (uint32_t)n->nsources;
        if (cap <= e->nslots)
            cap = e->nslots + 1u; /* a source id not registered: still bounded */
        norm_slot *s = realloc(e->slots, (size_t)cap * sizeof(*s));
        if (!s)
            return NULL;
        e->slots = s;
        e->slots_cap = (uint16_t)cap;
    }
    uint16_t rank = norm_rank(n, e, source);
    uint16_t pos = e->nslots;
    while (pos > 0 && e->slots[pos - 1].rank > rank) {
        e->slots[pos] = e->slots[pos - 1];
        pos--;
    }
    e->nslots++;
    norm_slot *s = &e->slots[pos];
    memset(s, 0, sizeof(*s));
    s->source = source;
    s->rank = rank;
    s->open = NAN;
    s->open_day = -1;
    return s;
}

#define NORM_LOG(n, ...)                                                                           \
    do {                                                                                           \
        if ((n)->log_budget > 0) {                                                                 \
            (n)->log_budget--;                                                                     \
            log_info(__VA_ARGS__);                                                                 \
        } else {                                                                                   \
            (n)->log_suppressed++;                                                                 \
        }                                                                                          \
    } while (0)

static void norm_copy(norm_quote *q, const norm_slot *s, const char *source)
{
    q->last = s->last;
    q->bid = s->bid;
    q->ask = s->ask;
    q->volume = s->volume;
    q->open = s->open;
    q->ts_us = s->ts_us;
    q->received_us = s->received_us;
    q->source = source;
}

/* Make the highest-priority fresh source the active one. updated: the slot
 * an update was just written to (NULL from the periodic check). */
static void norm_choose(norm *n, uint32_t id, int64_t now_us, const norm_slot *updated)
{
    norm_entry *e = &n->entries[id];
    const norm_slot *best = NULL;
    for (uint16_t i = 0; i < e->nslots && !best; i++)
        if (norm_fresh(n, &e->slots[i], now_us))
            best = &e->slots[i];

    if (!best) {
        if (e->active != NORM_NO_SOURCE && !e->stale) {
            e->stale = 1;
            e->q.stale = 1;
            e->q.stale_cleared = 0;
            n->stats.stale_symbols++;
            NORM_LOG(n, "%s: no fresh source for %lld ms; marked stale (last value from %s)",
                     e->q.symbol, (long long)(n->stale_after_us / 1000), e->q.source);
            norm_touch(n, id, 0);
        }
        return;
    }
    if (updated && updated != best)
        n->stats.standby++;
    if (best->source == e->active && best != updated && !e->stale)
        return; /* nothing new to publish */

    const char *name = norm_source_name(n, best->source);
    int same_stream = updated == best && best->source == e->active && !e->stale;
    if (best->source != e->active && e->active != NORM_NO_SOURCE) {
        n->stats.switches++;
        const norm_slot *old = norm_slot_find(e, e->active);
        if (e->stale)
            NORM_LOG(n, "%s: source %s -> %s (fresh again after being stale)", e->q.symbol,
                     norm_source_name(n, e->active), name);
        else if (!old || !norm_fresh(n, old, now_us))
            NORM_LOG(n, "%s: source %s -> %s (failover: %s silent for more than %lld ms)",
                     e->q.symbol, norm_source_name(n, e->active), name,
                     norm_source_name(n, e->active), (long long)(n->stale_after_us / 1000));
        else
            NORM_LOG(n, "%s: source %s -> %s (take-back by the preferred source)", e->q.symbol,
                     norm_source_name(n, e->active), name);
    } else if (e->stale) {
        NORM_LOG(n, "%s: fresh again from %s", e->q.symbol, name);
    }
    e->active = best->source;
    if (e->stale) {
        e->stale = 0;
        e->q.stale = 0;
        e->q.stale_cleared = 1;
        n->stats.stale_symbols--;
    }
    /*
     * Coalescing merges only values less than a flush interval apart, in
     * event time and in arrival time, however busy the loop is:
     * - Late values coalesce in market time, not arrival time: of values a
     *   busy loop reads in one burst (a venue's socket, a late sim tick),
     *   two that fall in different flush intervals of event time (windows
     *   at multiples of flush_interval_ms, as the flush timer's would be)
     *   are each published when either arrived a flush interval or more
     *   after its event time, so the load on the fan-out does not coarsen
     *   the data.
     * - A flush overdue: the pending value has waited a whole interval, so a
     *   punctual flush timer would have published it already; a pass of the
     *   loop that runs the timers late (thousands of writes) must not widen
     *   the window.
     * Either way the pending value goes out now and the new one waits for the
     * flush.  Values on time otherwise coalesce by the flush timer alone (so
     * a steady stream publishes once per interval, not once per timer and
     * once per window), and only within one source's stream: a value a
     * failover or a stale check made pending waits for the flush as before.
     */
    int replaces = 1;
    int64_t window_us = (int64_t)n->flush_interval_ms * 1000;
    int late = window_us > 0 && now_us - best->ts_us >= window_us;
    if (e->dirty && e->pending_update && same_stream && window_us > 0 &&
        (((late || e->pending_late) && best->ts_us / window_us != e->window_ts / window_us) ||
         now_us - e->window_at_us >= window_us)) {
        norm_emit(n, id); /* stays on the dirty list for the new value */
        replaces = 0;
    }
    if (!e->dirty || !replaces) { /* a new window opens */
        e->window_ts = best->ts_us;
        e->window_at_us = now_us;
    }
    norm_copy(&e->q, best, name);
    norm_touch(n, id, replaces);
    e->pending_update = (uint8_t)(updated == best);
    e->pending_late = (uint8_t)late;
}

int norm_ingest(norm *n, const feed_update *u) { return norm_ingest_at(n, u, tk_now_us()); }

int norm_ingest_at(norm *n, const feed_update *u, int64_t now_us)
{
    /* Validate before touching the symbol table, so garbage cannot create
     * symbols. */
    if (!isfinite(u->last) || !isfinite(u->bid) || !isfinite(u->ask) || !isfinite(u->volume) ||
        isinf(u->open))
        return norm_reject(n, NORM_REJECT_NOT_FINITE);
    if (u->last <= 0 || u->bid <= 0 || u->ask <= 0 || u->volume < 0 ||
        (!isnan(u->open) && u->open <= 0))
        return norm_reject(n, NORM_REJECT_NOT_POSITIVE);
    if (u->bid > u->ask)
        return norm_reject(n, NORM_REJECT_CROSSED);

    norm_reject_reason reason = NORM_REJECT_BAD_SYMBOL; /* set by norm_lookup when it refuses */
    uint32_t id = norm_lookup(n, u->source, u->symbol, &reason);
    if (id == SYMTAB_NONE)
        return norm_reject(n, reason);
    norm_entry *e = &n->entries[id];
    norm_slot *s = norm_slot_find(e, u->source);
    /* Sources' clocks differ: each source's own time must not go back. */
    if (s && u->ts_us < s->ts_us)
        return norm_reject(n, NORM_REJECT_TIME_BACKWARDS);

    if (n->jump_band_pct > 0 && e->nslots > (s ? 1 : 0)) {
        /* The median last of the other fresh sources; none: nothing to compare. */
        double others[NORM_MAX_SOURCES];
        int k = 0;
        for (uint16_t i = 0; i < e->nslots; i++) {
            const norm_slot *o = &e->slots[i];
            if (o == s || !norm_fresh(n, o, now_us))
                continue;
            int j = k++;
            for (; j > 0 && others[j - 1] > o->last; j--)
                others[j] = others[j - 1];
            others[j] = o->last;
        }
        if (k) {
            double median = k % 2 ? others[k / 2] : (others[k / 2 - 1] + others[k / 2]) / 2;
            if (fabs(u->last - median) > median * n->jump_band_pct / 100.0)
                return norm_reject(n, NORM_REJECT_IMPLAUSIBLE);
        }
    }
    if (!s) {
        s = norm_slot_add(n, e, u->source);
        if (!s)
            return norm_reject(n, NORM_REJECT_SYMBOL_LIMIT);
    }

    s->last = u->last;
    s->bid = u->bid;
    s->ask = u->ask;
    s->volume = u->volume;
    s->ts_us = u->ts_us;
    s->received_us = now_us;
    if (!isnan(u->open)) {
        s->open = u->open;
    } else {
        /* Session open = first trade of the UTC day, for venues that do not
         * send one (24/7 crypto has no exchange session). */
        int64_t day = u->ts_us / US_PER_DAY;
        if (day != s->open_day) {
            s->open_day = day;
            s->open = u->last;
        }
    }
    n->stats.accepted++;
    norm_choose(n, id, now_us, s);
    return 0;
}

void norm_flush(norm *n)
{
    /* Publishing may not add to the dirty list (the sink is downstream), so a
     * plain walk is safe. */
    for (uint32_t i = 0; i < n->ndirty; i++)
        norm_publish(n, n->dirty[i]);
    n->ndirty = 0;
}

void norm_check_stale(norm *n, int64_t now_us)
{
    if (n->log_suppressed)
        log_info("%llu more source switch/stale events not logged one by one "
                 "(see tickerd_source_switches_total, tickerd_symbols_stale)",
                 (unsigned long long)n->log_suppressed);
    n->log_suppressed = 0;
    n->log_budget = NORM_LOG_BURST;
    int all = n->rechoose;
    n->rechoose = 0;
    for (uint32_t id = 0; id < symtab_count(n->symbols); id++) {
        norm_entry *e = &n->entries[id];
        if (e->active == NORM_NO_SOURCE || e->stale)
            continue;
        const norm_slot *a = norm_slot_find(e, e->active);
        if (all || !a || !norm_fresh(n, a, now_us))
            norm_choose(n, id, now_us, NULL);
    }
}

uint32_t norm_apply_external(norm *n, const norm_quote *q)
{
    norm_reject_reason reason = NORM_REJECT_BAD_SYMBOL;
    uint32_t id = norm_resolve(n, q->symbol, &reason);
    if (id == SYMTAB_NONE) {
        norm_reject(n, reason);
        return UINT32_MAX;
    }
    norm_entry *e = &n->entries[id];
    int src = q->source ? norm_source_add(n, q->source) : -1;
    e->q = *q;
    strcpy(e->q.symbol, symtab_name(n->symbols, id));
    e->q.source = src >= 0 ? n->sources[src] : "?";
    n->stats.accepted++;
    n->stats.published++;
    n->sink.publish(n->sink.arg, id, &e->q);
    /* The encoding belongs to the caller: not kept past the call. */
    e->q.enc = NULL;
    e->q.enc_len = 0;
    return id;
}

const norm_stats *norm_get_stats(const norm *n) { return &n->stats; }
uint32_t norm_symbol_count(const norm *n) { return symtab_count(n->symbols); }
