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
 * Data leaves only through the sink given at creation; the normalizer knows
 * nothing of what is downstream. Single-threaded: the lws service thread.
 */
#ifndef TICKERD_NORM_H
#define TICKERD_NORM_H

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
} norm_quote;

typedef enum {
    NORM_REJECT_BAD_SYMBOL = 0, /* neither mapped for its source nor canonical */
    NORM_REJECT_NOT_FINITE,     /* NaN or infinite field */
    NORM_REJECT_NOT_POSITIVE,   /* price <= 0 or volume < 0 */
    NORM_REJECT_CROSSED,        /* bid > ask */
    NORM_REJECT_TIME_BACKWARDS, /* ts older than the cached value's */
    NORM_REJECT_SYMBOL_LIMIT,   /* max_symbols reached */
    NORM_REJECT_COUNT
} norm_reject_reason;

typedef struct norm_stats {
    uint64_t accepted;  /* valid updates written to the cache */
    uint64_t coalesced; /* accepted updates folded into a pending value */
    uint64_t published; /* values handed downstream */
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

/* Register a source name (a feed); returns its id, or -1 when full. The same
 * name always gets the same id. */
int norm_source_add(norm *n, const char *name);
/* Make a symbol known before it quotes, and map source's venue_symbol to
 * canonical (NULL: venue_symbol is canonical). Updates from that source
 * naming venue_symbol then count for canonical. 0 or -1 (rejected, counted). */
int norm_declare(norm *n, uint16_t source, const char *venue_symbol, const char *canonical);
/* Validate and cache one update. Returns 0 if accepted, else the reason + 1. */
int norm_ingest(norm *n, const feed_update *u);
/* Publish every symbol that changed since the last flush. */
void norm_flush(norm *n);

const norm_stats *norm_get_stats(const norm *n);
uint32_t norm_symbol_count(const norm *n);
const char *norm_reject_name(norm_reject_reason r);

#endif
