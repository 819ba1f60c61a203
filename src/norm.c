/* norm.c — see norm.h. */
#include "tickerd/norm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/util.h"

#define US_PER_DAY INT64_C(86400000000)

typedef struct norm_entry {
    norm_quote q;
    int64_t open_day; /* UTC day the session open belongs to */
    uint8_t dirty;    /* changed since last flush: id is on the dirty list */
} norm_entry;

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
    char *sources[NORM_MAX_SOURCES];
    int nsources;
    norm_sink sink;
    norm_stats stats;
};

static const char *const reject_names[NORM_REJECT_COUNT] = {
    "bad_symbol", "not_finite", "not_positive", "crossed", "time_backwards", "symbol_limit",
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
    n->sink = *sink;
    return n;
}

void norm_destroy(norm *n)
{
    if (!n)
        return;
    for (int i = 0; i < n->nsources; i++)
        free(n->sources[i]);
    symtab_free(n->symbols);
    symtab_free(n->aliases);
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
    e->open_day = -1;
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

static void norm_publish(norm *n, uint32_t id)
{
    norm_entry *e = &n->entries[id];
    e->dirty = 0;
    e->q.seq++;
    n->stats.published++;
    n->sink.publish(n->sink.arg, id, &e->q);
}

static int norm_reject(norm *n, norm_reject_reason r)
{
    n->stats.rejected[r]++;
    return (int)r + 1;
}

int norm_ingest(norm *n, const feed_update *u)
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

    norm_reject_reason reason;
    uint32_t id = norm_lookup(n, u->source, u->symbol, &reason);
    if (id == SYMTAB_NONE)
        return norm_reject(n, reason);
    norm_entry *e = &n->entries[id];
    if (u->ts_us < e->q.ts_us)
        return norm_reject(n, NORM_REJECT_TIME_BACKWARDS);

    norm_quote *q = &e->q;
    q->last = u->last;
    q->bid = u->bid;
    q->ask = u->ask;
    q->volume = u->volume;
    q->ts_us = u->ts_us;
    q->received_us = tk_now_us();
    q->source = u->source < n->nsources ? n->sources[u->source] : "?";
    if (!isnan(u->open)) {
        q->open = u->open;
    } else {
        /* Session open = first trade of the UTC day, for venues that do not
         * send one (24/7 crypto has no exchange session). */
        int64_t day = u->ts_us / US_PER_DAY;
        if (day != e->open_day) {
            e->open_day = day;
            q->open = u->last;
        }
    }
    n->stats.accepted++;

    if (n->flush_interval_ms == 0) {
        norm_publish(n, id);
    } else if (e->dirty) {
        n->stats.coalesced++;
    } else {
        e->dirty = 1;
        n->dirty[n->ndirty++] = id;
    }
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

const norm_stats *norm_get_stats(const norm *n) { return &n->stats; }
uint32_t norm_symbol_count(const norm *n) { return symtab_count(n->symbols); }
