/*
 * norm.h — the normalizer: venue symbols → canonical symbols, validation, and
 * the latest-value cache with coalescing.
 *
 * Updates are validated and written into the cache as they arrive; a symbol
 * that changed is published downstream once per flush (norm_flush), however
 * many updates it received in between (coalescing). `seq` counts published
 * values per symbol, so a downstream gap in seq means values skipped after
 * this point (conflation), never here.
 *
 * Several sources per symbol: the normalizer keeps, per symbol, the latest
 * value of every source (feed) that quotes it, and publishes only the
 * *active* source's values: the highest-priority source that is fresh (its
 * last update for the symbol arrived within stale_after_ms). Updates from the
 * other sources are kept as their latest value (counted as standby). When the
 * active source changes (failover, or the preferred source taking back), the
 * new source's latest value is published at once. A symbol whose sources are
 * all stale is published once more with `stale` set, and stays stale until a
 * fresh update arrives (published with `stale_cleared`). An update whose last
 * deviates from the median of the other fresh sources' lasts by more than
 * jump_band_pct is held back (rejected as implausible).
 *
 * Priority: per-symbol overrides first (in their order), then the default
 * order (the config's feeds[] order), then any other source by id.
 *
 * Data leaves only through the sink given at creation; the normalizer knows
 * nothing of what is downstream. Single-threaded: the lws service thread.
 */
#ifndef TICKERD_NORM_H
#define TICKERD_NORM_H

#include <stddef.h>
#include <stdint.h>

#include "tickerd/feed.h"
#include "tickerd/symtab.h"

#define NORM_MAX_SOURCES 256

typedef struct norm_quote {
    char symbol[SYMTAB_NAME_MAX]; /* canonical, e.g. "BTC-USD" */
    double last, bid, ask, volume;
    double open;         /* session open: venue's, or first last of the UTC day */
    int64_t ts_us;       /* upstream event time of the latest value */
    int64_t received_us; /* local wall clock when it arrived */
    uint64_t seq;        /* values published for this symbol; 0 = none yet */
    const char *source;  /* feed name, owned by the normalizer */
    uint8_t stale;         /* no source is fresh: this is the last known value */
    uint8_t stale_cleared; /* the first value published after being stale */
    /* The value already encoded as bcast_encode_json would (seq included), or
     * NULL: a cluster edge publishes the bytes the ingest encoded, so every
     * edge sends exactly the same object (docs/cluster.md). */
    const char *enc;
    uint16_t enc_len;
} norm_quote;

typedef enum {
    NORM_REJECT_BAD_SYMBOL = 0, /* neither mapped for its source nor canonical */
    NORM_REJECT_NOT_FINITE,     /* NaN or infinite field */
    NORM_REJECT_NOT_POSITIVE,   /* price <= 0 or volume < 0 */
    NORM_REJECT_CROSSED,        /* bid > ask */
    NORM_REJECT_TIME_BACKWARDS, /* ts older than the same source's previous one */
    NORM_REJECT_SYMBOL_LIMIT,   /* max_symbols reached */
    NORM_REJECT_IMPLAUSIBLE,    /* last too far from the other fresh sources' median */
    NORM_REJECT_COUNT
} norm_reject_reason;

typedef struct norm_stats {
    uint64_t accepted;  /* valid updates written to the cache */
    uint64_t coalesced; /* accepted updates folded into a pending value */
    uint64_t published; /* values handed downstream */
    uint64_t standby;   /* accepted updates of a source that is not the active one */
    uint64_t switches;  /* active-source changes (failover and take-back) */
    uint64_t stale_symbols; /* symbols with a value but no fresh source (gauge) */
    uint64_t rejected[NORM_REJECT_COUNT];
} norm_stats;

typedef struct norm_sink {
    void *arg;
    /* A symbol became known (id is dense, from 0). */
    void (*symbol_added)(void *arg, uint32_t id, const char *symbol);
    /* A new value for symbol id; q is valid only during the call. */
    void (*publish)(void *arg, uint32_t id, const norm_quote *q);
} norm_sink;

typedef struct norm norm;

norm *norm_create(uint32_t max_symbols, int flush_interval_ms, const norm_sink *sink);
void norm_destroy(norm *n);
/* 0 = publish every accepted update at once. */
void norm_set_flush_interval(norm *n, int flush_interval_ms);
int norm_flush_interval(const norm *n);
/* A source whose last update for a symbol is older than this is stale for
 * it (default NORM_DEFAULT_STALE_AFTER_MS). */
void norm_set_stale_after(norm *n, int stale_after_ms);
/* Hold back updates deviating from the other fresh sources' median last by
 * more than pct percent; 0 = off (default NORM_DEFAULT_JUMP_BAND_PCT). */
void norm_set_jump_band(norm *n, double pct);

#define NORM_DEFAULT_STALE_AFTER_MS 10000
#define NORM_DEFAULT_JUMP_BAND_PCT 5.0

/* A per-symbol priority override: sources named by feed name, most
 * preferred first. */
typedef struct norm_priority {
    const char *symbol; /* canonical */
    const char *const *sources;
    size_t nsources;
} norm_priority;

/* Replace the priority rules: order[0..norder) is the default order of
 * sources (the config's feeds), overrides[0..noverrides) the per-symbol
 * ones. Names of sources not registered (norm_source_add) are ignored; a
 * source named nowhere ranks after every named one, by id. Call it after
 * the sources are registered. The active source of every symbol is
 * re-chosen at the next norm_check_stale (which knows the time). 0, or -1
 * when out of memory (the previous rules are kept). */
int norm_set_priorities(norm *n, const char *const *order, size_t norder,
                        const norm_priority *overrides, size_t noverrides);

/* Register a source name (a feed); returns its id, or -1 when full. The same
 * name always gets the same id. */
int norm_source_add(norm *n, const char *name);
/* Make a symbol known before it quotes, and map source's venue_symbol to
 * canonical (NULL: venue_symbol is canonical). Updates from that source
 * naming venue_symbol then count for canonical. 0 or -1 (rejected, counted). */
int norm_declare(norm *n, uint16_t source, const char *venue_symbol, const char *canonical);
/* Validate and cache one update. Returns 0 if accepted, else the reason + 1. */
int norm_ingest(norm *n, const feed_update *u);
/* The same, with the local clock given (µs since the epoch; tests). */
int norm_ingest_at(norm *n, const feed_update *u, int64_t now_us);
/* Publish every symbol that changed since the last flush. */
void norm_flush(norm *n);
/* Periodic (the app's housekeeping timer): fail symbols whose active source
 * went stale over to the next fresh source, or mark them stale when none is
 * fresh. Publishes through the same path as updates (at the next flush, or
 * at once with a flush interval of 0). O(symbols) per call. Freshness uses
 * the local wall clock (the now_us given here and to norm_ingest_at). */
void norm_check_stale(norm *n, int64_t now_us);

/* Publish a value made elsewhere (a cluster edge: the ingest's normalizer
 * made it, Redis numbered it): the symbol q->symbol is created if new, and q
 * is published as given — its seq, stale flags and encoding (q->enc) kept,
 * its source name interned. It replaces the symbol's cached value; no
 * validation, priority or coalescing applies (the ingest did that). Returns
 * the symbol id, or UINT32_MAX when refused (not canonical, the symbol limit:
 * counted as rejected). */
uint32_t norm_apply_external(norm *n, const norm_quote *q);

const norm_stats *norm_get_stats(const norm *n);
uint32_t norm_symbol_count(const norm *n);
const char *norm_reject_name(norm_reject_reason r);

#endif
