/*
 * store.h — the price-history store: every published value (a tick) and the
 * 1 s / 1 min / 1 h candles built from them, in one SQLite file (WAL mode).
 * The store observes the flow; it never sits in it. See docs/history.md.
 *
 * Writes never happen on the caller's thread. store_put (the lws service
 * thread, once per published value) copies the quote into a bounded
 * lock-free ring (single producer / single consumer; the writer takes no
 * lock the producer could wait for) and returns. A writer thread of the
 * store's own writes what the ring holds every flush_interval_ms (sooner
 * once it is half full) in ONE transaction: the ticks, the candle rows they
 * touch (merged with the rows already in the file), and a `gaps` row for
 * ticks dropped in between; only after the commit are the slots given back.
 *
 * When the ring is full, the NEW tick is dropped: store_put returns 1 (the
 * producer is told), stats.dropped counts it, and the run of drops is
 * recorded as a gap (start, end, count) in order with the ticks around it.
 * Queued ticks are never discarded: what is in the ring reaches the file.
 *
 * Failures (disk full, read-only file, I/O error, lock held elsewhere) roll
 * the batch back and keep its ticks in the ring, and make the store
 * *degraded*: the error text is in stats.error, store_put goes on as before
 * (dropping once the ring is full), and the writer retries the same ticks
 * every retry_interval_ms. The first batch that commits clears the degraded
 * state. Nothing here aborts the process.
 *
 * Durability: a commit is in the WAL before the writer moves on
 * (synchronous=NORMAL), so a killed process (kill -9) loses only what was
 * still queued (about one flush interval of ticks, never more than the ring
 * holds) and never leaves a corrupt file; power loss may also lose the
 * commits since the last checkpoint (the WAL is synced at checkpoints).
 * Reopening continues: a bucket's candle row is merged, never duplicated.
 *
 * Reads use a read-only connection of their own (WAL: readers never wait for
 * the writer, nor the writer for them). store_history may block on disk: call
 * it from a worker thread, never from the event loop. Calls serialize on one
 * mutex of the store.
 *
 * Memory: capacity × 128 bytes for the ring (8 MiB by default), plus the
 * writer's symbol cache and SQLite's page caches.
 *
 * Lifecycle: store_open (caller's thread; creates the directory, the file
 * and the schema, or upgrades an older schema in place) → store_start (the
 * writer thread) → store_put* / store_history* / store_get_stats* →
 * store_stop (final flush, join) → store_close (flush what is left, close).
 * store_put is accepted before store_start and after store_stop: the ticks
 * wait in the ring for the next start or for store_close.
 */
#ifndef TICKERD_STORE_H
#define TICKERD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "tickerd/norm.h"

#define STORE_SCHEMA_VERSION 2 /* PRAGMA user_version written by this build */

#define STORE_DEFAULT_CAPACITY 65536 /* ticks in the ring */
#define STORE_DEFAULT_FLUSH_MS 1000
#define STORE_DEFAULT_RETRY_MS 5000  /* degraded: next attempt after this */
#define STORE_DEFAULT_TRIM_MS 60000  /* a retention pass starts at most this often */
#define STORE_DEFAULT_TRIM_BATCH 2000 /* rows per DELETE statement */

#define STORE_DEFAULT_RETENTION_TICKS_S (24LL * 3600)          /* 24 h */
#define STORE_DEFAULT_RETENTION_1S_S (7LL * 24 * 3600)         /* 7 days */
#define STORE_DEFAULT_RETENTION_1M_S (90LL * 24 * 3600)        /* 90 days */
#define STORE_DEFAULT_RETENTION_1H_S (10LL * 365 * 24 * 3600)  /* 10 years */

typedef struct store_opts {
    size_t capacity;       /* ring size in ticks (min 2); 0 = STORE_DEFAULT_CAPACITY */
    int flush_interval_ms; /* <= 0: STORE_DEFAULT_FLUSH_MS */
    int retry_interval_ms; /* <= 0: STORE_DEFAULT_RETRY_MS */
    int trim_interval_ms;  /* <= 0: STORE_DEFAULT_TRIM_MS */
    int trim_batch;        /* <= 0: STORE_DEFAULT_TRIM_BATCH */
    /* Retention in seconds by event time (ticks' ts_us, candles' start);
     * 0 = keep forever. A zeroed struct keeps everything forever: start
     * from store_opts_init. */
    int64_t retention_ticks_s;
    int64_t retention_1s_s; /* 1 s candles */
    int64_t retention_1m_s; /* 1 min candles */
    int64_t retention_1h_s; /* 1 h candles */
    /* Cap on the database size (SQLite max_page_count, rounded down to whole
     * pages and never below the current size); 0 = none. Writes that need
     * more space fail with SQLITE_FULL and the store is degraded until
     * retention frees pages or the cap is raised (store_set_max_db_bytes). */
    int64_t max_db_bytes;
} store_opts;

/* One row of history. Ticks: ts_us is the value's event time, open = high =
 * low = close = last, count = 1. Candles: ts_us is the bucket start, OHLC of
 * `last` by event time, count = ticks in the bucket (the candles.volume
 * column), bid = ask = volume = NAN, source "", seq 0. */
typedef struct store_row {
    int64_t ts_us;
    double open, high, low, close;
    double bid, ask;
    double volume;   /* ticks: the venue's 24 h volume as quoted */
    int64_t count;
    uint64_t seq;    /* ticks: norm_quote.seq as put (it restarts with the
                        process: compare it only within one run, see run_seq);
                        0 for rows written before schema v2 and for candles */
    char source[32]; /* ticks: the feed that gave the value */
} store_row;

/* Ticks dropped (ring full) between two batches: `ticks` of them, with event
 * times within [start_us, end_us]. */
typedef struct store_gap {
    int64_t start_us, end_us;
    int64_t ticks;
    int64_t recorded_us; /* wall clock of the batch that recorded it */
} store_gap;

typedef struct store_stats {
    uint64_t ticks_put;       /* accepted by store_put */
    uint64_t ticks_written;   /* committed to the ticks table */
    uint64_t candles_written; /* candle row upserts committed */
    uint64_t batches;         /* committed write transactions */
    uint64_t failed_batches;  /* write transactions rolled back (their ticks stay queued) */
    uint64_t dropped;         /* ticks lost: refused by a full ring, or unwritable at close */
    uint64_t skipped_stale;   /* stale re-publications (q->stale) not stored */
    uint64_t rows_trimmed;    /* rows deleted by retention */
    uint64_t trim_errors;     /* failed retention DELETEs */
    uint64_t queue_depth;     /* ticks queued, not yet committed (<= queue_capacity) */
    uint64_t queue_capacity;
    int64_t last_flush_us;    /* duration of the last committed batch (µs) */
    uint64_t last_flush_ticks; /* ticks in it */
    int64_t last_commit_us;   /* wall clock of the last commit, 0 = none yet */
    int degraded;             /* writes are failing; see error */
    int64_t degraded_since_us; /* wall clock, 0 when not degraded */
    char error[256];          /* e.g. "SQLITE_FULL: database or disk is full", "" when healthy */
} store_stats;
/* ticks_put == ticks_written + dropped + queue_depth (exact when no put runs
 * concurrently with store_get_stats). */

typedef struct store store;

/* The defaults above, retention included. */
void store_opts_init(store_opts *o);

/* Open (creating the parent directory, mode 0750, and the file if missing)
 * the history file at path, switch it to WAL, create or upgrade the schema
 * and open the read connection. opts NULL = defaults. Blocks on disk (call it
 * at start-up). Returns NULL with a reason in err on failure, e.g. a schema
 * newer than this build, or a path that cannot be created. */
store *store_open(const char *path, const store_opts *opts, char *err, size_t errcap);
/* Start the writer thread. 0, or -1 with err. */
int store_start(store *s, char *err, size_t errcap);
/* Queue one published value (copied; q is not kept). Never blocks on disk or
 * on the writer (no lock shared with it). Returns 0 when queued, 1 when the
 * ring was full and this tick was dropped (counted, recorded as a gap), -1
 * when s or q is NULL or the symbol empty. A quote with `stale` set is a
 * re-publication of a known value: not stored, counted in skipped_stale. The
 * tick's time is q->ts_us (q->received_us when that is 0); q->seq is stored
 * with it (0 = none) and feeds store_history's run_seq. Any thread;
 * concurrent producers serialize on a mutex of their own. */
int store_put(store *s, const norm_quote *q);
/* Ask the writer for a last flush, wait for it and join it. Waits for the
 * disk. No-op when not started. */
void store_stop(store *s);
/* store_stop, write what the ring still holds (counted as dropped and logged
 * if that fails), close the connections, free. NULL is a no-op. No
 * store_put or store_history call may be running or follow. */
void store_close(store *s);

typedef struct store_query {
    const char *symbol;
    int interval_s;         /* 0 = ticks, 1 / 60 / 3600 = candles */
    int64_t from_us, to_us; /* [from_us, to_us) by event time (ticks' ts_us, candles' start) */
    int limit;              /* rows wanted: at most min(limit, cap); <= 0 = cap */
    int latest;             /* 0: the earliest `limit` rows of the range; 1: the newest `limit`
                               rows; either way returned oldest first */
} store_query;

/* Rows of q, oldest first (ties on ts_us in write order). Returns the count
 * (0 for an unknown symbol) or -1 with err. Page forwards with from_us = the
 * last row's ts_us + 1 (latest = 0), backwards with to_us = the first row's
 * ts_us (latest = 1); rows sharing that ts_us across the page edge are
 * skipped, which only ticks with equal event times can have.
 *
 * run_seq (may be NULL): the highest `seq` among this symbol's ticks written
 * by THIS store instance (since store_open; seq restarts with the process, so
 * older runs' values mean nothing to the caller), 0 when none. It is read in
 * the same read transaction as the rows (one WAL snapshot), so the two agree
 * even while the writer commits. The seam: no tick with seq > run_seq is in
 * the rows (nor counted in a candle), and, with a symbol's ticks put in seq
 * order (as the normalizer publishes them), every tick of this run up to
 * run_seq whose event time falls in the range is — unless the page ends
 * first (latest = 0 and `limit` rows returned). So a caller that asks for the
 * newest rows up to now and then sends live values with seq > run_seq has
 * neither a gap nor a duplicate at the seam. Not in the file at all: ticks
 * dropped on a full ring (recorded, see store_gaps) and stale
 * re-publications. Costs two primary-key lookups on top of the rows.
 *
 * Blocks on disk: not on the event loop. Thread-safe (calls serialize). */
int store_history(store *s, const store_query *q, store_row *out, int cap, uint64_t *run_seq,
                  char *err, size_t errcap);
/* Recorded gaps whose range overlaps [from_us, to_us), oldest first, at most
 * cap. Returns the count or -1 with err. Same threading as store_history. */
int store_gaps(store *s, int64_t from_us, int64_t to_us, store_gap *out, int cap, char *err,
               size_t errcap);

/* Counters, gauges and the degraded state; any thread, never waits on disk. */
void store_get_stats(store *s, store_stats *st);
/* Change max_db_bytes (0 = no cap); applied by the writer before its next
 * batch. A writer degraded (e.g. at the old cap) retries at once rather than
 * at its next retry_interval_ms. Any thread. */
void store_set_max_db_bytes(store *s, int64_t bytes);

/* The operator's check (tickerd --check-history FILE): open path read-only
 * (never creating it, never writing the database; SQLite may create the
 * -wal/-shm files next to it), run PRAGMA integrity_check and a few checks
 * of tickerd's own (schema version, every row's symbol known, candles whose
 * low <= open, close <= high), and write a one-line summary to report:
 * "ok" or the first problems, the schema version and the row counts.
 * Safe while tickerd writes the file (a WAL reader waits for no one).
 * Returns 0 when ok, 1 when the file is damaged or not a history file, 2 when
 * it cannot be opened or read (missing, no permission, locked). Blocks on
 * disk for as long as reading the whole file takes. */
#define STORE_CHECK_OK 0
#define STORE_CHECK_CORRUPT 1
#define STORE_CHECK_CANNOT_OPEN 2
int store_check(const char *path, char *report, size_t cap);

#endif
