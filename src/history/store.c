/*
 * store.c — see store.h and docs/history.md.
 *
 * The ring is single-producer / single-consumer and lock-free: slots
 * [head, tail) (64-bit counters, index = counter % cap) hold queued ticks.
 * The producer (store_put, serialized among producers by plock, which the
 * writer never takes) writes the slot at tail and publishes it with a
 * release store of tail; when the ring is full it drops the new tick. The
 * writer reads [head, tail) in place, writes it in one transaction, and only
 * after the commit gives the slots back with a release store of head; a
 * failed transaction keeps them, to be retried. So store_put never waits for
 * the writer: not for the disk, and not for a lock the writer could hold
 * while it is descheduled.
 *
 * Ticks dropped while the ring is full are summed in the producer's open gap
 * (plock); the next put that finds two free slots queues a gap marker before
 * its tick, so the writer records the gap in order, in the same transaction.
 *
 * The writer's results (counters, degraded state, head) are under `slock`,
 * held only to copy a few fields; the producer never takes it.
 *
 * The writer connection `w` and everything prefixed w_ belong to whichever
 * thread writes: store_open's caller, then the writer thread between
 * pthread_create and pthread_join, then store_close's caller. The read
 * connection `r` is guarded by `rlock`.
 *
 * Functions below the writer loop return errors with a message; only the
 * loop and store_close log.
 */
#include "tickerd/store.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tickerd/log.h"
#include "tickerd/util.h"

#define ST_NAME 32
#define ST_NINT 3                            /* candle intervals */
#define ST_TRIM_BUDGET_US 100000LL           /* retention work per writer wake */
#define ST_DROP_LOG_EVERY_US (10 * 1000000LL)
#define ST_DEGRADED_LOG_EVERY_US (60 * 1000000LL)
#define ST_BUSY_TIMEOUT_MS 2000

static const int st_intervals[ST_NINT] = {1, 60, 3600};

/* ---- schema ---- */

/* Ordered migration steps: st_migrations[i] takes user_version i to i + 1,
 * in one transaction with the version bump. Never edit a released step; a
 * schema change appends one (and bumps STORE_SCHEMA_VERSION). */
static const char *const st_migrations[] = {
    /* v0 → v1 */
    "CREATE TABLE symbols(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE ticks(symbol_id INTEGER NOT NULL, ts_us INTEGER NOT NULL, last REAL, bid REAL,"
    " ask REAL, volume REAL, source TEXT);"
    "CREATE INDEX ticks_symbol_ts ON ticks(symbol_id, ts_us);"
    /* volume = number of ticks in the bucket; open_us/close_us = event times of
     * the open and close, so merges pick them by time whatever the order. */
    "CREATE TABLE candles(symbol_id INTEGER NOT NULL, interval_s INTEGER NOT NULL,"
    " start_us INTEGER NOT NULL, open REAL, high REAL, low REAL, close REAL, volume INTEGER,"
    " open_us INTEGER, close_us INTEGER,"
    " PRIMARY KEY(symbol_id, interval_s, start_us)) WITHOUT ROWID;"
    "CREATE TABLE gaps(start_us INTEGER NOT NULL, end_us INTEGER NOT NULL,"
    " ticks INTEGER NOT NULL, recorded_us INTEGER NOT NULL);",
    /* v1 → v2: the normalizer's per-symbol seq with each tick (NULL in older
     * rows), and per symbol the highest seq committed by the run (store
     * instance) that last wrote it: store_history's run_seq, one primary-key
     * lookup. An index on ticks would answer it too, but it costs every
     * insert, and seq restarts with the process, so a previous run's higher
     * values would sit in front of this run's in a (symbol_id, seq) index. */
    "ALTER TABLE ticks ADD COLUMN seq INTEGER;"
    "CREATE TABLE run_seq(symbol_id INTEGER PRIMARY KEY, run INTEGER NOT NULL,"
    " seq INTEGER NOT NULL);",
    /* v2 → v3: append here. */
};
_Static_assert(sizeof(st_migrations) / sizeof(st_migrations[0]) == STORE_SCHEMA_VERSION,
               "one migration step per schema version");

/* ---- types ---- */

/* A queued tick, or (symbol "") a gap marker: gap_n ticks dropped, with
 * event times from ts_us to gap_end_us. */
typedef struct st_tick {
    int64_t ts_us;
    double last, bid, ask, volume;
    uint64_t seq;
    int64_t gap_end_us, gap_n;
    char symbol[ST_NAME];
    char source[ST_NAME];
} st_tick;

typedef struct st_gap {
    int64_t start_us, end_us;
    uint64_t n; /* 0 = none */
} st_gap;

/* One candle being built from a batch. */
typedef struct st_acc {
    int64_t start, open_us, close_us, n; /* n == 0: empty */
    double open, high, low, close;
} st_acc;

/* Writer's symbol cache: name → id, with the batch's open candles. */
typedef struct st_sym {
    char name[ST_NAME];
    int64_t id;    /* 0 = empty slot */
    uint64_t bseq; /* highest seq of the batch's ticks, 0 = none */
    st_acc acc[ST_NINT];
} st_sym;

/* Retention tables, in trim order. */
enum { TR_TICKS = 0, TR_C1, TR_C60, TR_C3600, TR_GAPS, TR_N };

typedef struct st_trim {
    int active, table;
    size_t nids, nleft; /* symbols; those of them with old rows left in `table` */
    int64_t *ids;
    uint8_t *done;
    int64_t cutoff[TR_N]; /* 0 = keep forever */
} st_trim;

struct store {
    char path[1024];
    store_opts o;
    size_t cap;
    /* This instance's tag in run_seq.run, set by store_open and constant
     * after: one more than any in the file (read, not written, so a full disk
     * still opens, degraded). Not "ticks above the max rowid at open": a new
     * rowid is max + 1, and retention (its first pass runs before the first
     * flush) can delete the newest rows, e.g. all of them after a long
     * downtime, so this run's rowids could start below that mark. */
    int64_t run;

    /* writer connection and its statements */
    sqlite3 *w;
    sqlite3_stmt *w_tick, *w_sym_sel, *w_sym_ins, *w_candle, *w_run_seq, *w_gap, *w_trim_ticks,
        *w_trim_candles, *w_trim_gaps, *w_sym_list;
    int w_page_size;
    int64_t w_default_max_pages, w_applied_max; /* -1 = not applied yet */
    st_sym *w_syms;
    size_t w_nsyms, w_symcap;
    st_trim w_trim;

    /* read connection */
    pthread_mutex_t rlock;
    sqlite3 *r;
    sqlite3_stmt *r_sym, *r_ticks, *r_ticks_latest, *r_candles, *r_candles_latest, *r_run_seq,
        *r_gaps;

    pthread_t thread;
    int running;
    sem_t wake;              /* posted by a kick and by stop */
    atomic_int stop, kicked; /* kicked: the ring reached half full since the last flush */
    atomic_int retry_now;    /* the cap changed: a degraded writer retries at once */
    atomic_int_fast64_t max_db_bytes;

    /* the ring */
    st_tick *ring;
    atomic_uint_fast64_t head, tail;

    /* producers' side, guarded by plock */
    pthread_mutex_t plock;
    st_gap gap; /* dropped since the last marker */
    atomic_uint_fast64_t put, dropped, skipped_stale, markers_put;

    /* the writer's results, guarded by slock */
    pthread_mutex_t slock;
    store_stats st;
    uint64_t markers_done; /* gap markers whose slots were given back */
};

/* ---- small helpers ---- */

static void st_errf(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void st_errf(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || !cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

static const char *st_code_name(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_FULL: return "SQLITE_FULL";
    case SQLITE_READONLY: return "SQLITE_READONLY";
    case SQLITE_CANTOPEN: return "SQLITE_CANTOPEN";
    case SQLITE_IOERR: return "SQLITE_IOERR";
    case SQLITE_BUSY: return "SQLITE_BUSY";
    case SQLITE_LOCKED: return "SQLITE_LOCKED";
    case SQLITE_CORRUPT: return "SQLITE_CORRUPT";
    case SQLITE_NOTADB: return "SQLITE_NOTADB";
    case SQLITE_NOMEM: return "SQLITE_NOMEM";
    case SQLITE_PERM: return "SQLITE_PERM";
    case SQLITE_CONSTRAINT: return "SQLITE_CONSTRAINT";
    case SQLITE_ERROR: return "SQLITE_ERROR";
    default: return "SQLITE";
    }
}

/* The errno behind db's last I/O error, 0 = unknown. SQLite keeps it per
 * file: the WAL's (where commits write) first, then the connection's, then
 * the database file's (checkpoints). */
static int st_last_errno(sqlite3 *db)
{
    int e = 0;
    sqlite3_file *wal = NULL;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal) == SQLITE_OK && wal &&
        wal->pMethods && wal->pMethods->xFileControl)
        wal->pMethods->xFileControl(wal, SQLITE_FCNTL_LAST_ERRNO, &e);
    if (e <= 0)
        e = sqlite3_system_errno(db);
    if (e <= 0 && sqlite3_file_control(db, "main", SQLITE_FCNTL_LAST_ERRNO, &e) != SQLITE_OK)
        e = 0;
    return e > 0 ? e : 0;
}

/* "<what>: SQLITE_FULL: database or disk is full". For an I/O error or a
 * file that cannot be opened, the system's reason too ("SQLITE_IOERR: disk
 * I/O error (Read-only file system)"): SQLite's own text does not tell a
 * read-only disk from a failing one. */
static void st_sqlerr(sqlite3 *db, int rc, const char *what, char *err, size_t cap)
{
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    if (db && sqlite3_errcode(db) == SQLITE_OK)
        msg = sqlite3_errstr(rc);
    int code = (db && sqlite3_errcode(db) != SQLITE_OK ? sqlite3_errcode(db) : rc) & 0xff;
    int sys = 0;
    if (db && (code == SQLITE_IOERR || code == SQLITE_CANTOPEN))
        sys = st_last_errno(db);
    if (sys > 0)
        st_errf(err, cap, "%s: %s: %s (%s)", what, st_code_name(rc), msg, strerror(sys));
    else
        st_errf(err, cap, "%s: %s: %s", what, st_code_name(rc), msg);
}

static void st_copy_name(char *dst, const char *src)
{
    size_t n = src ? strnlen(src, ST_NAME - 1) : 0;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

static int64_t st_bucket(int64_t ts_us, int interval_s)
{
    int64_t len = (int64_t)interval_s * 1000000;
    int64_t q = ts_us / len;
    if (ts_us % len < 0)
        q--;
    return q * len;
}

static void st_gap_add(st_gap *g, int64_t ts_us)
{
    if (!g->n || ts_us < g->start_us)
        g->start_us = ts_us;
    if (!g->n || ts_us > g->end_us)
        g->end_us = ts_us;
    g->n++;
}

/* mkdir -p of path's directory. */
static int st_mkdirs(const char *path, char *err, size_t errcap)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0750) != 0) {
            int e = errno;
            struct stat sb;
            if (e != EEXIST) {
                st_errf(err, errcap, "cannot create directory %s: %s", dir, strerror(e));
                return -1;
            }
            if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
                st_errf(err, errcap, "cannot create directory %s: something else is in the way",
                        dir);
                return -1;
            }
        }
        *p = c;
        if (!c)
            break;
    }
    return 0;
}

static int st_exec(sqlite3 *db, const char *sql, const char *what, char *err, size_t errcap)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        st_sqlerr(db, rc, what, err, errcap);
        return -1;
    }
    return 0;
}

/* One integer from a single-row query; -1 with err on failure. */
static int st_query_int(sqlite3 *db, const char *sql, int64_t *out, char *err, size_t errcap)
{
    sqlite3_stmt *q;
    int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
    if (rc != SQLITE_OK) {
        st_sqlerr(db, rc, sql, err, errcap);
        return -1;
    }
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(q, 0);
    else if (rc != SQLITE_DONE)
        st_sqlerr(db, rc, sql, err, errcap);
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? 0 : -1;
}

static void st_rollback(sqlite3 *db)
{
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- schema versions ---- */

static int st_migrate(sqlite3 *db, char *err, size_t errcap)
{
    for (;;) {
        if (st_exec(db, "BEGIN IMMEDIATE", "schema upgrade", err, errcap))
            return -1;
        int64_t v = 0;
        if (st_query_int(db, "PRAGMA user_version", &v, err, errcap))
            goto fail;
        if (v > STORE_SCHEMA_VERSION) {
            st_errf(err, errcap,
                    "schema v%" PRId64 " is newer than this build's v%d (written by a newer "
                    "tickerd)",
                    v, STORE_SCHEMA_VERSION);
            goto fail;
        }
        if (v == STORE_SCHEMA_VERSION)
            return st_exec(db, "COMMIT", "schema check", err, errcap);
        if (v < 0) {
            st_errf(err, errcap, "schema version %" PRId64 " is not one of tickerd's", v);
            goto fail;
        }
        char what[64], bump[48];
        snprintf(what, sizeof(what), "schema upgrade v%" PRId64 " to v%" PRId64, v, v + 1);
        snprintf(bump, sizeof(bump), "PRAGMA user_version = %" PRId64, v + 1);
        if (st_exec(db, st_migrations[v], what, err, errcap) ||
            st_exec(db, bump, what, err, errcap) || st_exec(db, "COMMIT", what, err, errcap))
            goto fail;
    }
fail:
    st_rollback(db);
    return -1;
}

/* ---- lifecycle: open ---- */

void store_opts_init(store_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->capacity = STORE_DEFAULT_CAPACITY;
    o->flush_interval_ms = STORE_DEFAULT_FLUSH_MS;
    o->retry_interval_ms = STORE_DEFAULT_RETRY_MS;
    o->trim_interval_ms = STORE_DEFAULT_TRIM_MS;
    o->trim_batch = STORE_DEFAULT_TRIM_BATCH;
    o->retention_ticks_s = STORE_DEFAULT_RETENTION_TICKS_S;
    o->retention_1s_s = STORE_DEFAULT_RETENTION_1S_S;
    o->retention_1m_s = STORE_DEFAULT_RETENTION_1M_S;
    o->retention_1h_s = STORE_DEFAULT_RETENTION_1H_S;
}

static int st_prepare(sqlite3 *db, sqlite3_stmt **q, const char *sql, char *err, size_t errcap)
{
    int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, q, NULL);
    if (rc != SQLITE_OK) {
        st_sqlerr(db, rc, "prepare", err, errcap);
        return -1;
    }
    return 0;
}

static int st_prepare_all(store *s, char *err, size_t errcap)
{
    return st_prepare(s->w, &s->w_tick,
                      "INSERT INTO ticks(symbol_id, ts_us, last, bid, ask, volume, source, seq)"
                      " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                      err, errcap) ||
           st_prepare(s->w, &s->w_sym_sel, "SELECT id FROM symbols WHERE name = ?1", err,
                      errcap) ||
           st_prepare(s->w, &s->w_sym_ins, "INSERT INTO symbols(name) VALUES(?1)", err, errcap) ||
           st_prepare(s->w, &s->w_candle,
                      "INSERT INTO candles(symbol_id, interval_s, start_us, open, high, low, close,"
                      " volume, open_us, close_us) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                      " ON CONFLICT(symbol_id, interval_s, start_us) DO UPDATE SET"
                      " open = CASE WHEN excluded.open_us < open_us THEN excluded.open"
                      " ELSE open END,"
                      " open_us = min(open_us, excluded.open_us),"
                      " high = max(high, excluded.high), low = min(low, excluded.low),"
                      " close = CASE WHEN excluded.close_us >= close_us THEN excluded.close"
                      " ELSE close END,"
                      " close_us = max(close_us, excluded.close_us),"
                      " volume = volume + excluded.volume",
                      err, errcap) ||
           /* Another run's row is replaced: its seq means nothing to this one. */
           st_prepare(s->w, &s->w_run_seq,
                      "INSERT INTO run_seq(symbol_id, run, seq) VALUES(?1, ?2, ?3)"
                      " ON CONFLICT(symbol_id) DO UPDATE SET"
                      " seq = CASE WHEN run = excluded.run THEN max(seq, excluded.seq)"
                      " ELSE excluded.seq END,"
                      " run = excluded.run",
                      err, errcap) ||
           st_prepare(s->w, &s->w_gap,
                      "INSERT INTO gaps(start_us, end_us, ticks, recorded_us)"
                      " VALUES(?1, ?2, ?3, ?4)",
                      err, errcap) ||
           st_prepare(s->w, &s->w_trim_ticks,
                      "DELETE FROM ticks WHERE rowid IN (SELECT rowid FROM ticks"
                      " WHERE symbol_id = ?1 AND ts_us < ?2 LIMIT ?3)",
                      err, errcap) ||
           st_prepare(s->w, &s->w_trim_candles,
                      "DELETE FROM candles WHERE symbol_id = ?1 AND interval_s = ?4 AND start_us IN"
                      " (SELECT start_us FROM candles WHERE symbol_id = ?1 AND interval_s = ?4"
                      " AND start_us < ?2 LIMIT ?3)",
                      err, errcap) ||
           st_prepare(s->w, &s->w_trim_gaps,
                      "DELETE FROM gaps WHERE rowid IN (SELECT rowid FROM gaps"
                      " WHERE end_us < ?2 LIMIT ?3)",
                      err, errcap) ||
           st_prepare(s->w, &s->w_sym_list, "SELECT id FROM symbols ORDER BY id", err, errcap) ||
           st_prepare(s->r, &s->r_sym, "SELECT id FROM symbols WHERE name = ?1", err, errcap) ||
           /* The _latest twins walk the same index backwards (no sort); their
            * order is the exact reverse, so a page's rows are the same either way. */
           st_prepare(s->r, &s->r_ticks,
                      "SELECT ts_us, last, bid, ask, volume, source, seq FROM ticks"
                      " WHERE symbol_id = ?1 AND ts_us >= ?2 AND ts_us < ?3"
                      " ORDER BY ts_us, rowid LIMIT ?4",
                      err, errcap) ||
           st_prepare(s->r, &s->r_ticks_latest,
                      "SELECT ts_us, last, bid, ask, volume, source, seq FROM ticks"
                      " WHERE symbol_id = ?1 AND ts_us >= ?2 AND ts_us < ?3"
                      " ORDER BY ts_us DESC, rowid DESC LIMIT ?4",
                      err, errcap) ||
           st_prepare(s->r, &s->r_candles,
                      "SELECT start_us, open, high, low, close, volume FROM candles"
                      " WHERE symbol_id = ?1 AND interval_s = ?5 AND start_us >= ?2"
                      " AND start_us < ?3 ORDER BY start_us LIMIT ?4",
                      err, errcap) ||
           st_prepare(s->r, &s->r_candles_latest,
                      "SELECT start_us, open, high, low, close, volume FROM candles"
                      " WHERE symbol_id = ?1 AND interval_s = ?5 AND start_us >= ?2"
                      " AND start_us < ?3 ORDER BY start_us DESC LIMIT ?4",
                      err, errcap) ||
           st_prepare(s->r, &s->r_run_seq,
                      "SELECT seq FROM run_seq WHERE symbol_id = ?1 AND run = ?2", err, errcap) ||
           st_prepare(s->r, &s->r_gaps,
                      "SELECT start_us, end_us, ticks, recorded_us FROM gaps"
                      " WHERE end_us >= ?1 AND start_us < ?2 ORDER BY start_us, rowid LIMIT ?3",
                      err, errcap);
}

static void st_finalize_all(store *s)
{
    sqlite3_stmt **all[] = {
        &s->w_tick,       &s->w_sym_sel,        &s->w_sym_ins,    &s->w_candle,
        &s->w_run_seq,    &s->w_gap,            &s->w_trim_ticks, &s->w_trim_candles,
        &s->w_trim_gaps,  &s->w_sym_list,       &s->r_sym,        &s->r_ticks,
        &s->r_ticks_latest, &s->r_candles,      &s->r_candles_latest, &s->r_run_seq,
        &s->r_gaps,
    };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        sqlite3_finalize(*all[i]);
        *all[i] = NULL;
    }
}

static void st_free(store *s)
{
    st_finalize_all(s);
    if (s->r)
        sqlite3_close(s->r);
    if (s->w)
        sqlite3_close(s->w);
    free(s->w_trim.ids);
    free(s->w_trim.done);
    free(s->w_syms);
    free(s->ring);
    free(s);
}

static int st_open_db(const char *path, int flags, sqlite3 **db, char *err, size_t errcap)
{
    int rc = sqlite3_open_v2(path, db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        char what[1100], dir[1024];
        snprintf(what, sizeof(what), "cannot open %s", path);
        snprintf(dir, sizeof(dir), "%s", path);
        char *slash = strrchr(dir, '/');
        struct stat sb;
        if (slash)
            *(slash == dir ? slash + 1 : slash) = '\0';
        /* SQLite falls back to opening read-only, so its errno is then that
         * of the fallback (ENOENT): say why the file cannot be created. */
        if ((flags & SQLITE_OPEN_CREATE) && stat(path, &sb) != 0 && errno == ENOENT && slash &&
            access(dir, W_OK) != 0)
            st_errf(err, errcap, "cannot create %s: %s", path, strerror(errno));
        else
            st_sqlerr(*db, rc, what, err, errcap);
        return -1;
    }
    sqlite3_extended_result_codes(*db, 1);
    sqlite3_busy_timeout(*db, ST_BUSY_TIMEOUT_MS);
    return 0;
}

store *store_open(const char *path, const store_opts *opts, char *err, size_t errcap)
{
    char dummy[1];
    if (!err || !errcap) {
        err = dummy;
        errcap = sizeof(dummy);
    }
    err[0] = '\0';
    if (!path || !path[0] || !strcmp(path, ":memory:")) {
        st_errf(err, errcap, "no history file given");
        return NULL;
    }
    if (strlen(path) >= sizeof(((store *)0)->path)) {
        st_errf(err, errcap, "history path too long");
        return NULL;
    }
    if (!sqlite3_threadsafe()) {
        st_errf(err, errcap, "SQLite was built without thread support");
        return NULL;
    }
    store *s = calloc(1, sizeof(*s));
    if (!s) {
        st_errf(err, errcap, "out of memory");
        return NULL;
    }
    snprintf(s->path, sizeof(s->path), "%s", path);
    if (opts)
        s->o = *opts;
    else
        store_opts_init(&s->o);
    if (!s->o.capacity)
        s->o.capacity = STORE_DEFAULT_CAPACITY;
    if (s->o.capacity < 2)
        s->o.capacity = 2; /* a gap marker and the tick after it */
    if (s->o.flush_interval_ms <= 0)
        s->o.flush_interval_ms = STORE_DEFAULT_FLUSH_MS;
    if (s->o.retry_interval_ms <= 0)
        s->o.retry_interval_ms = STORE_DEFAULT_RETRY_MS;
    if (s->o.trim_interval_ms <= 0)
        s->o.trim_interval_ms = STORE_DEFAULT_TRIM_MS;
    if (s->o.trim_batch <= 0)
        s->o.trim_batch = STORE_DEFAULT_TRIM_BATCH;
    s->cap = s->o.capacity;
    atomic_init(&s->max_db_bytes, s->o.max_db_bytes > 0 ? s->o.max_db_bytes : 0);
    atomic_init(&s->head, 0);
    atomic_init(&s->tail, 0);
    atomic_init(&s->stop, 0);
    atomic_init(&s->kicked, 0);
    atomic_init(&s->retry_now, 0);
    atomic_init(&s->put, 0);
    atomic_init(&s->dropped, 0);
    atomic_init(&s->skipped_stale, 0);
    atomic_init(&s->markers_put, 0);
    s->w_applied_max = -1;
    s->ring = calloc(s->cap, sizeof(*s->ring));
    if (!s->ring) {
        st_errf(err, errcap, "cannot allocate a history queue of %zu ticks", s->cap);
        free(s);
        return NULL;
    }
    if (st_mkdirs(path, err, errcap) ||
        st_open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &s->w, err, errcap))
        goto fail;
    int64_t v = 0;
    char mode[16] = "";
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(s->w, "PRAGMA journal_mode=WAL", -1, &q, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        const unsigned char *m = sqlite3_column_text(q, 0);
        snprintf(mode, sizeof(mode), "%s", m ? (const char *)m : "");
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        st_sqlerr(s->w, rc, path, err, errcap);
    sqlite3_finalize(q);
    if (rc != SQLITE_OK)
        goto fail;
    if (strcmp(mode, "wal")) {
        st_errf(err, errcap, "%s: cannot switch to WAL mode (journal_mode is %s)", path, mode);
        goto fail;
    }
    /* synchronous=NORMAL: commits are not fsynced, checkpoints are (crash
     * safe, durable up to the last checkpoint on power loss). The WAL file is
     * cut back to 64 MiB after a checkpoint that let it grow past that. */
    if (st_exec(s->w, "PRAGMA synchronous=NORMAL", path, err, errcap) ||
        st_exec(s->w, "PRAGMA journal_size_limit=67108864", path, err, errcap) ||
        st_migrate(s->w, err, errcap) ||
        st_query_int(s->w, "SELECT coalesce(max(run), 0) + 1 FROM run_seq", &s->run, err,
                     errcap) ||
        st_query_int(s->w, "PRAGMA page_size", &v, err, errcap))
        goto fail;
    s->w_page_size = (int)v;
    if (st_query_int(s->w, "PRAGMA max_page_count", &s->w_default_max_pages, err, errcap) ||
        st_open_db(path, SQLITE_OPEN_READONLY, &s->r, err, errcap) ||
        st_prepare_all(s, err, errcap))
        goto fail;
    if (sem_init(&s->wake, 0, 0)) {
        st_errf(err, errcap, "cannot create the writer's semaphore: %s", strerror(errno));
        goto fail;
    }
    pthread_mutex_init(&s->plock, NULL);
    pthread_mutex_init(&s->slock, NULL);
    pthread_mutex_init(&s->rlock, NULL);
    return s;
fail:
    st_free(s);
    return NULL;
}

/* ---- the producer side ---- */

static size_t st_slot(const store *s, uint64_t counter)
{
    return (size_t)(counter % s->cap);
}

/* Queue the open gap's marker in the slot at tail (the caller has checked
 * there is room and publishes tail). */
static void st_push_marker(store *s, uint64_t tail)
{
    st_tick *g = &s->ring[st_slot(s, tail)];
    memset(g, 0, sizeof(*g));
    g->ts_us = s->gap.start_us;
    g->gap_end_us = s->gap.end_us;
    g->gap_n = (int64_t)s->gap.n;
    s->gap = (st_gap){0};
    atomic_fetch_add_explicit(&s->markers_put, 1, memory_order_relaxed);
}

int store_put(store *s, const norm_quote *q)
{
    if (!s || !q || !q->symbol[0])
        return -1;
    if (q->stale) {
        atomic_fetch_add_explicit(&s->skipped_stale, 1, memory_order_relaxed);
        return 0;
    }
    int64_t ts = q->ts_us ? q->ts_us : q->received_us;
    pthread_mutex_lock(&s->plock);
    uint64_t tail = atomic_load_explicit(&s->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&s->head, memory_order_acquire);
    uint64_t room = s->cap - (tail - head), need = s->gap.n ? 2 : 1;
    atomic_fetch_add_explicit(&s->put, 1, memory_order_relaxed);
    if (room < need) { /* full: this tick is dropped, counted, and becomes part of a gap */
        st_gap_add(&s->gap, ts);
        atomic_fetch_add_explicit(&s->dropped, 1, memory_order_relaxed);
        pthread_mutex_unlock(&s->plock);
        return 1;
    }
    if (s->gap.n) /* the gap before this tick, in order */
        st_push_marker(s, tail++);
    st_tick *t = &s->ring[st_slot(s, tail++)];
    t->ts_us = ts;
    t->last = q->last;
    t->bid = q->bid;
    t->ask = q->ask;
    t->volume = q->volume;
    t->seq = q->seq;
    t->gap_end_us = t->gap_n = 0;
    st_copy_name(t->symbol, q->symbol);
    st_copy_name(t->source, q->source);
    atomic_store_explicit(&s->tail, tail, memory_order_release);
    uint64_t half = s->cap > 1 ? s->cap / 2 : 1;
    int kick = tail - head >= half &&
               !atomic_exchange_explicit(&s->kicked, 1, memory_order_relaxed);
    pthread_mutex_unlock(&s->plock);
    if (kick)
        sem_post(&s->wake); /* half full: flush now rather than at the interval */
    return 0;
}

/* ---- the writer: symbols and candles ---- */

static uint64_t st_hash(const char *name)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a 64 */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

static st_sym *st_sym_slot(st_sym *tab, size_t cap, const char *name)
{
    size_t i = st_hash(name) & (cap - 1);
    while (tab[i].id && strcmp(tab[i].name, name))
        i = (i + 1) & (cap - 1);
    return &tab[i];
}

/* Forget every cached id and open candle (after a rollback ids may name rows
 * that were never committed). */
static void st_syms_reset(store *s)
{
    if (s->w_syms)
        memset(s->w_syms, 0, s->w_symcap * sizeof(*s->w_syms));
    s->w_nsyms = 0;
}

static int st_sym_grow(store *s)
{
    size_t ncap = s->w_symcap ? s->w_symcap * 2 : 256;
    st_sym *nt = calloc(ncap, sizeof(*nt));
    if (!nt)
        return -1;
    for (size_t i = 0; i < s->w_symcap; i++)
        if (s->w_syms[i].id)
            *st_sym_slot(nt, ncap, s->w_syms[i].name) = s->w_syms[i];
    free(s->w_syms);
    s->w_syms = nt;
    s->w_symcap = ncap;
    return 0;
}

/* The cache entry of name, looked up or inserted in the database (inside
 * the batch's transaction). NULL with err on failure. */
static st_sym *st_sym_get(store *s, const char *name, char *err, size_t errcap)
{
    if (s->w_symcap) {
        st_sym *e = st_sym_slot(s->w_syms, s->w_symcap, name);
        if (e->id)
            return e;
    }
    if ((s->w_nsyms + 1) * 2 > s->w_symcap && st_sym_grow(s)) {
        st_errf(err, errcap, "symbol cache: out of memory");
        return NULL;
    }
    int64_t id = 0;
    sqlite3_bind_text(s->w_sym_sel, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s->w_sym_sel);
    if (rc == SQLITE_ROW)
        id = sqlite3_column_int64(s->w_sym_sel, 0);
    sqlite3_reset(s->w_sym_sel);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        st_sqlerr(s->w, rc, "look up symbol", err, errcap);
        return NULL;
    }
    if (!id) {
        sqlite3_bind_text(s->w_sym_ins, 1, name, -1, SQLITE_STATIC);
        rc = sqlite3_step(s->w_sym_ins);
        sqlite3_reset(s->w_sym_ins);
        if (rc != SQLITE_DONE) {
            st_sqlerr(s->w, rc, "insert symbol", err, errcap);
            return NULL;
        }
        id = sqlite3_last_insert_rowid(s->w);
    }
    st_sym *e = st_sym_slot(s->w_syms, s->w_symcap, name);
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->id = id;
    s->w_nsyms++;
    return e;
}

static int st_candle_put(store *s, int64_t sym_id, int interval_s, const st_acc *a, char *err,
                         size_t errcap)
{
    sqlite3_stmt *q = s->w_candle;
    sqlite3_bind_int64(q, 1, sym_id);
    sqlite3_bind_int(q, 2, interval_s);
    sqlite3_bind_int64(q, 3, a->start);
    sqlite3_bind_double(q, 4, a->open);
    sqlite3_bind_double(q, 5, a->high);
    sqlite3_bind_double(q, 6, a->low);
    sqlite3_bind_double(q, 7, a->close);
    sqlite3_bind_int64(q, 8, a->n);
    sqlite3_bind_int64(q, 9, a->open_us);
    sqlite3_bind_int64(q, 10, a->close_us);
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE) {
        st_sqlerr(s->w, rc, "upsert candle", err, errcap);
        return -1;
    }
    return 0;
}

/* Fold one tick into e's open candle of interval i; a tick of another bucket
 * first writes the open candle out (the upsert merges rows of one bucket). */
static int st_acc_add(store *s, st_sym *e, int i, const st_tick *t, uint64_t *ncandles, char *err,
                      size_t errcap)
{
    st_acc *a = &e->acc[i];
    int64_t b = st_bucket(t->ts_us, st_intervals[i]);
    if (a->n && a->start != b) {
        if (st_candle_put(s, e->id, st_intervals[i], a, err, errcap))
            return -1;
        (*ncandles)++;
        a->n = 0;
    }
    if (!a->n) {
        *a = (st_acc){.start = b, .open_us = t->ts_us, .close_us = t->ts_us, .n = 1,
                      .open = t->last, .high = t->last, .low = t->last, .close = t->last};
        return 0;
    }
    if (t->ts_us < a->open_us) {
        a->open = t->last;
        a->open_us = t->ts_us;
    }
    if (t->ts_us >= a->close_us) {
        a->close = t->last;
        a->close_us = t->ts_us;
    }
    if (t->last > a->high)
        a->high = t->last;
    if (t->last < a->low)
        a->low = t->last;
    a->n++;
    return 0;
}

static void st_bind_real(sqlite3_stmt *q, int i, double v)
{
    if (isfinite(v))
        sqlite3_bind_double(q, i, v);
    else
        sqlite3_bind_null(q, i);
}

/* ---- the writer: one batch ---- */

static int st_apply_max(store *s, char *err, size_t errcap)
{
    int64_t want = atomic_load(&s->max_db_bytes);
    if (want == s->w_applied_max)
        return 0;
    int64_t pages = s->w_default_max_pages;
    if (want > 0) {
        pages = want / (s->w_page_size > 0 ? s->w_page_size : 4096);
        if (pages < 1)
            pages = 1; /* SQLite raises it to the current size */
        if (pages > s->w_default_max_pages)
            pages = s->w_default_max_pages;
    }
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %" PRId64, pages);
    if (st_exec(s->w, sql, "set max_page_count", err, errcap))
        return -1;
    s->w_applied_max = want;
    return 0;
}

/* Write ring slots [from, to) in one transaction. *nticks, *ncandles: what
 * it holds. 0, or -1 with err (rolled back). */
static int st_write_batch(store *s, uint64_t from, uint64_t to, uint64_t *nticks,
                          uint64_t *ncandles, char *err, size_t errcap)
{
    *nticks = *ncandles = 0;
    if (st_apply_max(s, err, errcap) || st_exec(s->w, "BEGIN IMMEDIATE", "begin", err, errcap))
        return -1;
    int rc;
    for (uint64_t c = from; c < to; c++) {
        const st_tick *t = &s->ring[st_slot(s, c)];
        if (!t->symbol[0]) { /* a gap marker */
            sqlite3_bind_int64(s->w_gap, 1, t->ts_us);
            sqlite3_bind_int64(s->w_gap, 2, t->gap_end_us);
            sqlite3_bind_int64(s->w_gap, 3, t->gap_n);
            sqlite3_bind_int64(s->w_gap, 4, tk_now_us());
            rc = sqlite3_step(s->w_gap);
            sqlite3_reset(s->w_gap);
            if (rc != SQLITE_DONE) {
                st_sqlerr(s->w, rc, "insert gap", err, errcap);
                goto fail;
            }
            continue;
        }
        st_sym *e = st_sym_get(s, t->symbol, err, errcap);
        if (!e)
            goto fail;
        sqlite3_stmt *q = s->w_tick;
        sqlite3_bind_int64(q, 1, e->id);
        sqlite3_bind_int64(q, 2, t->ts_us);
        st_bind_real(q, 3, t->last);
        st_bind_real(q, 4, t->bid);
        st_bind_real(q, 5, t->ask);
        st_bind_real(q, 6, t->volume);
        sqlite3_bind_text(q, 7, t->source, -1, SQLITE_STATIC);
        if (t->seq)
            sqlite3_bind_int64(q, 8, (int64_t)t->seq);
        else
            sqlite3_bind_null(q, 8);
        rc = sqlite3_step(q);
        sqlite3_reset(q);
        if (rc != SQLITE_DONE) {
            st_sqlerr(s->w, rc, "insert tick", err, errcap);
            goto fail;
        }
        (*nticks)++;
        if (t->seq > e->bseq)
            e->bseq = t->seq;
        if (!isfinite(t->last))
            continue; /* no price: nothing for the candles */
        for (int k = 0; k < ST_NINT; k++)
            if (st_acc_add(s, e, k, t, ncandles, err, errcap))
                goto fail;
    }
    for (size_t i = 0; i < s->w_symcap; i++) {
        st_sym *e = &s->w_syms[i];
        if (e->id && e->bseq) { /* in this transaction: readers see it with the ticks */
            sqlite3_bind_int64(s->w_run_seq, 1, e->id);
            sqlite3_bind_int64(s->w_run_seq, 2, s->run);
            sqlite3_bind_int64(s->w_run_seq, 3, (int64_t)e->bseq);
            rc = sqlite3_step(s->w_run_seq);
            sqlite3_reset(s->w_run_seq);
            if (rc != SQLITE_DONE) {
                st_sqlerr(s->w, rc, "upsert run seq", err, errcap);
                goto fail;
            }
            e->bseq = 0;
        }
        for (int k = 0; e->id && k < ST_NINT; k++) {
            if (!e->acc[k].n)
                continue;
            if (st_candle_put(s, e->id, st_intervals[k], &e->acc[k], err, errcap))
                goto fail;
            (*ncandles)++;
            e->acc[k].n = 0;
        }
    }
    if (st_exec(s->w, "COMMIT", "commit", err, errcap))
        goto fail;
    return 0;
fail:
    st_rollback(s->w);
    st_syms_reset(s);
    return -1;
}

typedef enum { ST_IDLE = 0, ST_COMMITTED, ST_FAILED } st_result;

/* Write what the ring holds now; on success give the slots back, on failure
 * keep them (the next attempt retries them) and mark the store degraded.
 * *recovered: this commit ended a degraded state (for the log). */
static st_result st_flush(store *s, int *recovered, char *err, size_t errcap)
{
    *recovered = 0;
    uint64_t head = atomic_load_explicit(&s->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&s->tail, memory_order_acquire);
    if (head == tail)
        return ST_IDLE;
    int64_t t0 = tk_mono_us();
    uint64_t nticks = 0, ncandles = 0;
    if (st_write_batch(s, head, tail, &nticks, &ncandles, err, errcap)) {
        pthread_mutex_lock(&s->slock);
        s->st.failed_batches++;
        if (!s->st.degraded) {
            s->st.degraded = 1;
            s->st.degraded_since_us = tk_now_us();
        }
        snprintf(s->st.error, sizeof(s->st.error), "%s", err);
        pthread_mutex_unlock(&s->slock);
        return ST_FAILED;
    }
    int64_t dt = tk_mono_us() - t0;
    pthread_mutex_lock(&s->slock);
    atomic_store_explicit(&s->head, tail, memory_order_release); /* the slots are free again */
    s->markers_done += (tail - head) - nticks;
    s->st.ticks_written += nticks;
    s->st.candles_written += ncandles;
    s->st.batches++;
    s->st.last_flush_us = dt;
    s->st.last_flush_ticks = nticks;
    s->st.last_commit_us = tk_now_us();
    if (s->st.degraded) {
        *recovered = 1;
        s->st.degraded = 0;
        s->st.degraded_since_us = 0;
        s->st.error[0] = '\0';
    }
    pthread_mutex_unlock(&s->slock);
    return ST_COMMITTED;
}

/* ---- the writer: retention ---- */

static int st_trim_begin(store *s, int64_t now_wall, char *err, size_t errcap)
{
    st_trim *tr = &s->w_trim;
    const int64_t keep[TR_N - 1] = {s->o.retention_ticks_s, s->o.retention_1s_s,
                                    s->o.retention_1m_s, s->o.retention_1h_s};
    int64_t longest = 0;
    int forever = 0;
    for (int i = 0; i < TR_N - 1; i++) {
        tr->cutoff[i] = keep[i] > 0 ? now_wall - keep[i] * 1000000 : 0;
        if (keep[i] <= 0)
            forever = 1;
        else if (keep[i] > longest)
            longest = keep[i];
    }
    /* Gaps describe ticks and candles: kept as long as the longest of them. */
    tr->cutoff[TR_GAPS] = forever ? 0 : now_wall - longest * 1000000;
    tr->nids = 0;
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s->w_sym_list)) == SQLITE_ROW) {
        if (tr->nids == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            int64_t *p = realloc(tr->ids, ncap * sizeof(*p));
            uint8_t *d = p ? realloc(tr->done, ncap) : NULL;
            if (p)
                tr->ids = p;
            if (d)
                tr->done = d;
            if (!p || !d) {
                sqlite3_reset(s->w_sym_list);
                st_errf(err, errcap, "retention: out of memory");
                return -1;
            }
            cap = ncap;
        }
        tr->ids[tr->nids++] = sqlite3_column_int64(s->w_sym_list, 0);
    }
    sqlite3_reset(s->w_sym_list);
    if (rc != SQLITE_DONE) {
        st_sqlerr(s->w, rc, "retention: list symbols", err, errcap);
        return -1;
    }
    tr->active = 1;
    tr->table = -1;
    tr->nleft = 0;
    return 0;
}

/* One DELETE of at most `limit` rows: of symbol `id` in table tr->table, or
 * of the gaps table. Rows deleted, or -1 with err. */
static int st_trim_delete(store *s, int64_t id, int limit, char *err, size_t errcap)
{
    st_trim *tr = &s->w_trim;
    sqlite3_stmt *q = tr->table == TR_TICKS  ? s->w_trim_ticks
                      : tr->table == TR_GAPS ? s->w_trim_gaps
                                             : s->w_trim_candles;
    if (tr->table != TR_GAPS)
        sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, tr->cutoff[tr->table]);
    sqlite3_bind_int(q, 3, limit);
    if (tr->table >= TR_C1 && tr->table <= TR_C3600)
        sqlite3_bind_int(q, 4, st_intervals[tr->table - TR_C1]);
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE) {
        st_sqlerr(s->w, rc, "retention: delete", err, errcap);
        return -1;
    }
    return sqlite3_changes(s->w);
}

/* Retention work for about ST_TRIM_BUDGET_US, in rounds: one transaction
 * deletes the oldest rows of every symbol still having expired ones in the
 * current table, trim_batch rows in all, shared among them. Rows of the same
 * time slice sit on the same pages, so a round rewrites few pages and holds
 * the write lock briefly. Returns rows deleted, or -1 with err (the pass
 * ends; the next starts at the next interval). */
static int64_t st_trim_step(store *s, char *err, size_t errcap)
{
    st_trim *tr = &s->w_trim;
    int64_t deadline = tk_mono_us() + ST_TRIM_BUDGET_US, total = 0;
    while (tr->active && tk_mono_us() < deadline) {
        if (!tr->nleft) { /* next table with a retention */
            do
                tr->table++;
            while (tr->table < TR_N && !tr->cutoff[tr->table]);
            if (tr->table >= TR_N) {
                tr->active = 0;
                break;
            }
            tr->nleft = tr->table == TR_GAPS ? 1 : tr->nids;
            if (tr->nids)
                memset(tr->done, 0, tr->nids);
            continue;
        }
        int per = tr->nleft >= (size_t)s->o.trim_batch ? 1 : s->o.trim_batch / (int)tr->nleft;
        if (st_exec(s->w, "BEGIN IMMEDIATE", "retention: begin", err, errcap))
            goto fail;
        int64_t round = 0;
        if (tr->table == TR_GAPS) {
            int n = st_trim_delete(s, 0, per, err, errcap);
            if (n < 0)
                goto fail;
            round += n;
            if (n < per)
                tr->nleft = 0;
        } else {
            for (size_t i = 0; i < tr->nids; i++) {
                if (tr->done[i])
                    continue;
                int n = st_trim_delete(s, tr->ids[i], per, err, errcap);
                if (n < 0)
                    goto fail;
                round += n;
                if (n < per) {
                    tr->done[i] = 1;
                    tr->nleft--;
                }
            }
        }
        if (st_exec(s->w, "COMMIT", "retention: commit", err, errcap))
            goto fail;
        total += round;
    }
    return total;
fail:
    st_rollback(s->w);
    tr->active = 0;
    return -1;
}

/* ---- the writer thread ---- */

typedef struct st_logstate {
    int64_t last_drop_log, last_degraded_log, last_trim_log;
    uint64_t drops_logged;
} st_logstate;

static void st_log_after_flush(store *s, st_logstate *lg, st_result r, int recovered,
                               const char *err)
{
    pthread_mutex_lock(&s->slock);
    uint64_t failed = s->st.failed_batches;
    pthread_mutex_unlock(&s->slock);
    uint64_t dropped = atomic_load(&s->dropped);
    uint64_t depth = atomic_load(&s->tail) - atomic_load(&s->head);
    int64_t now = tk_mono_us();
    if (r == ST_FAILED) {
        if (!lg->last_degraded_log) {
            log_error("history %s: writes failing, degraded (up to %zu ticks wait in memory, retry "
                      "every %d ms): %s",
                      s->path, s->cap, s->o.retry_interval_ms, err);
            lg->last_degraded_log = now;
        } else if (now - lg->last_degraded_log >= ST_DEGRADED_LOG_EVERY_US) {
            log_warn("history %s: still degraded, %" PRIu64 " failed batch(es), %" PRIu64
                     " tick(s) dropped, %" PRIu64 " queued: %s",
                     s->path, failed, dropped, depth, err);
            lg->last_degraded_log = now;
        }
    } else if (recovered) {
        log_info("history %s: writes recovered after %" PRIu64 " failed batch(es); %" PRIu64
                 " tick(s) dropped so far",
                 s->path, failed, dropped);
        lg->last_degraded_log = 0;
        lg->drops_logged = dropped;
    }
    if (dropped != lg->drops_logged && !lg->last_degraded_log &&
        (!lg->last_drop_log || now - lg->last_drop_log >= ST_DROP_LOG_EVERY_US)) {
        log_warn("history %s: %" PRIu64 " tick(s) dropped so far (queue of %zu full: the writer "
                 "is slower than the feed)",
                 s->path, dropped, s->cap);
        lg->drops_logged = dropped;
        lg->last_drop_log = now;
    }
}

static void *st_thread(void *arg)
{
    store *s = arg;
    st_logstate lg = {0};
    char err[256];
    int64_t now = tk_mono_us();
    int64_t next_flush = now + (int64_t)s->o.flush_interval_ms * 1000;
    int64_t next_trim = now; /* the first retention pass right away */
    int degraded = 0;
    for (;;) {
        now = tk_mono_us();
        if (atomic_exchange(&s->retry_now, 0) && degraded)
            next_flush = now; /* e.g. SQLITE_FULL at the cap, and the cap was raised */
        int stop = atomic_load(&s->stop);
        int flush_due = stop || now >= next_flush || (atomic_load(&s->kicked) && !degraded);
        int trim_due = !stop && (s->w_trim.active || now >= next_trim);
        if (!flush_due && !trim_due) {
            int64_t due = next_flush < next_trim ? next_flush : next_trim;
            struct timespec ts = {.tv_sec = due / 1000000, .tv_nsec = (due % 1000000) * 1000};
            sem_clockwait(&s->wake, CLOCK_MONOTONIC, &ts);
            continue;
        }
        if (flush_due) {
            atomic_store(&s->kicked, 0);
            int recovered = 0;
            st_result r = st_flush(s, &recovered, err, sizeof(err));
            if (r == ST_FAILED)
                degraded = 1;
            else if (r == ST_COMMITTED)
                degraded = 0;
            st_log_after_flush(s, &lg, r, recovered, err);
            /* Flushes keep a steady cadence from their starts, so what a kill
             * can lose is one interval plus the commit under way, not plus
             * the previous commit's duration as well. Retries count from the
             * failure. */
            if (degraded)
                next_flush = tk_mono_us() + (int64_t)s->o.retry_interval_ms * 1000;
            else
                next_flush = now + (int64_t)s->o.flush_interval_ms * 1000;
        }
        if (stop)
            break;
        if (trim_due) {
            int64_t rows = 0;
            if (!s->w_trim.active) {
                next_trim = now + (int64_t)s->o.trim_interval_ms * 1000;
                if (st_trim_begin(s, tk_now_us(), err, sizeof(err)))
                    rows = -1;
            }
            if (rows >= 0)
                rows = st_trim_step(s, err, sizeof(err));
            pthread_mutex_lock(&s->slock);
            if (rows > 0)
                s->st.rows_trimmed += (uint64_t)rows;
            if (rows < 0)
                s->st.trim_errors++;
            pthread_mutex_unlock(&s->slock);
            if (rows < 0 && !degraded &&
                (!lg.last_trim_log || tk_mono_us() - lg.last_trim_log >= ST_DROP_LOG_EVERY_US)) {
                log_warn("history %s: %s (retried at the next pass)", s->path, err);
                lg.last_trim_log = tk_mono_us();
            }
        }
    }
    return NULL;
}

/* ---- lifecycle: start, stop, close ---- */

int store_start(store *s, char *err, size_t errcap)
{
    if (!s) {
        st_errf(err, errcap, "no store");
        return -1;
    }
    if (s->running)
        return 0;
    atomic_store(&s->stop, 0);
    int rc = pthread_create(&s->thread, NULL, st_thread, s);
    if (rc) {
        st_errf(err, errcap, "cannot start the history writer: %s", strerror(rc));
        return -1;
    }
    s->running = 1;
    return 0;
}

void store_stop(store *s)
{
    if (!s || !s->running)
        return;
    atomic_store(&s->stop, 1);
    sem_post(&s->wake);
    pthread_join(s->thread, NULL);
    s->running = 0;
    atomic_store(&s->stop, 0);
}

void store_close(store *s)
{
    if (!s)
        return;
    store_stop(s);
    /* No writer thread now: this thread owns the ring's both ends. A gap
     * still open (drops with no put after them) gets its marker if there is
     * room; with none, the flush below makes some. */
    char err[256];
    int recovered = 0;
    st_result r = ST_IDLE;
    for (int pass = 0; pass < 2 && r != ST_FAILED; pass++) {
        uint64_t tail = atomic_load(&s->tail);
        if (s->gap.n && tail - atomic_load(&s->head) < s->cap) {
            st_push_marker(s, tail);
            atomic_store(&s->tail, tail + 1);
        }
        r = st_flush(s, &recovered, err, sizeof(err));
    }
    if (r == ST_FAILED) {
        uint64_t lost = 0;
        for (uint64_t c = atomic_load(&s->head); c < atomic_load(&s->tail); c++)
            lost += s->ring[st_slot(s, c)].symbol[0] != '\0';
        atomic_fetch_add(&s->dropped, lost);
        atomic_store(&s->head, atomic_load(&s->tail));
        log_error("history %s: closing with %" PRIu64 " tick(s) unwritten, lost: %s", s->path,
                  lost, err);
    } else if (recovered) {
        log_info("history %s: writes recovered at close", s->path);
    }
    uint64_t dropped = atomic_load(&s->dropped);
    if (dropped)
        log_warn("history %s: %" PRIu64 " tick(s) dropped in all (see the gaps table)", s->path,
                 dropped);
    sem_destroy(&s->wake);
    pthread_mutex_destroy(&s->plock);
    pthread_mutex_destroy(&s->slock);
    pthread_mutex_destroy(&s->rlock);
    st_free(s);
}

/* ---- reads ---- */

/* Step q (bound) into out[0..n); rows come in the statement's order. The
 * count, or -1 with err. */
static int st_read_rows(store *s, sqlite3_stmt *q, int candles, store_row *out, int n, char *err,
                        size_t errcap)
{
    int got = 0, rc = SQLITE_DONE;
    while (got < n && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        store_row *o = &out[got++];
        memset(o, 0, sizeof(*o));
        o->ts_us = sqlite3_column_int64(q, 0);
        if (candles) {
            o->open = sqlite3_column_double(q, 1);
            o->high = sqlite3_column_double(q, 2);
            o->low = sqlite3_column_double(q, 3);
            o->close = sqlite3_column_double(q, 4);
            o->count = sqlite3_column_int64(q, 5);
            o->bid = o->ask = o->volume = NAN;
        } else {
            double last = sqlite3_column_type(q, 1) == SQLITE_NULL ? NAN
                                                                   : sqlite3_column_double(q, 1);
            o->open = o->high = o->low = o->close = last;
            o->bid = sqlite3_column_type(q, 2) == SQLITE_NULL ? NAN : sqlite3_column_double(q, 2);
            o->ask = sqlite3_column_type(q, 3) == SQLITE_NULL ? NAN : sqlite3_column_double(q, 3);
            o->volume =
                sqlite3_column_type(q, 4) == SQLITE_NULL ? NAN : sqlite3_column_double(q, 4);
            o->count = 1;
            st_copy_name(o->source, (const char *)sqlite3_column_text(q, 5));
            o->seq = (uint64_t)sqlite3_column_int64(q, 6); /* NULL (pre-v2 row) reads 0 */
        }
    }
    if (got == n)
        rc = SQLITE_DONE;
    if (rc != SQLITE_DONE)
        st_sqlerr(s->r, rc, "history query", err, errcap);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc == SQLITE_DONE ? got : -1;
}

/* The id of symbol (0 = unknown), inside the caller's read transaction. 0,
 * or -1 with err. */
static int st_read_id(store *s, const char *symbol, int64_t *id, char *err, size_t errcap)
{
    *id = 0;
    sqlite3_bind_text(s->r_sym, 1, symbol, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s->r_sym);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(s->r_sym, 0);
    sqlite3_reset(s->r_sym);
    sqlite3_clear_bindings(s->r_sym);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        st_sqlerr(s->r, rc, "history: look up symbol", err, errcap);
        return -1;
    }
    return 0;
}

/* This run's highest committed seq for symbol id, 0 = none (no row, or the
 * row of an earlier run). 0, or -1 with err. */
static int st_read_run_seq(store *s, int64_t id, uint64_t *out, char *err, size_t errcap)
{
    *out = 0;
    sqlite3_bind_int64(s->r_run_seq, 1, id);
    sqlite3_bind_int64(s->r_run_seq, 2, s->run);
    int rc = sqlite3_step(s->r_run_seq);
    if (rc == SQLITE_ROW)
        *out = (uint64_t)sqlite3_column_int64(s->r_run_seq, 0);
    sqlite3_reset(s->r_run_seq);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        st_sqlerr(s->r, rc, "history: run seq", err, errcap);
        return -1;
    }
    return 0;
}

int store_history(store *s, const store_query *q, store_row *out, int cap, uint64_t *run_seq,
                  char *err, size_t errcap)
{
    if (err && errcap)
        err[0] = '\0';
    if (run_seq)
        *run_seq = 0;
    if (!s || !q || !q->symbol || (cap > 0 && !out)) {
        st_errf(err, errcap, "bad arguments");
        return -1;
    }
    int iv = q->interval_s;
    if (iv != 0 && iv != 1 && iv != 60 && iv != 3600) {
        st_errf(err, errcap, "interval %d s is not kept (0 = ticks, 1, 60, 3600)", iv);
        return -1;
    }
    int n = cap;
    if (q->limit > 0 && q->limit < n)
        n = q->limit;
    if (n < 0 || q->from_us >= q->to_us)
        n = 0;
    if (!n && !run_seq)
        return 0;
    pthread_mutex_lock(&s->rlock);
    /* One read transaction: the rows and run_seq come from the same WAL
     * snapshot, whatever the writer commits meanwhile. */
    int64_t id = 0;
    int got = 0;
    uint64_t rs = 0;
    if (st_exec(s->r, "BEGIN", "history: begin", err, errcap) ||
        st_read_id(s, q->symbol, &id, err, errcap))
        goto fail;
    if (id && n) {
        sqlite3_stmt *st = iv ? (q->latest ? s->r_candles_latest : s->r_candles)
                              : (q->latest ? s->r_ticks_latest : s->r_ticks);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, q->from_us);
        sqlite3_bind_int64(st, 3, q->to_us);
        sqlite3_bind_int(st, 4, n);
        if (iv)
            sqlite3_bind_int(st, 5, iv);
        if ((got = st_read_rows(s, st, iv != 0, out, n, err, errcap)) < 0)
            goto fail;
    }
    if (id && run_seq && st_read_run_seq(s, id, &rs, err, errcap))
        goto fail;
    if (st_exec(s->r, "COMMIT", "history: end", err, errcap))
        goto fail;
    pthread_mutex_unlock(&s->rlock);
    if (q->latest) /* newest first from the query: hand them back oldest first */
        for (int i = 0, j = got - 1; i < j; i++, j--) {
            store_row t = out[i];
            out[i] = out[j];
            out[j] = t;
        }
    if (run_seq)
        *run_seq = rs;
    return got;
fail:
    st_rollback(s->r);
    pthread_mutex_unlock(&s->rlock);
    return -1;
}

int store_gaps(store *s, int64_t from_us, int64_t to_us, store_gap *out, int cap, char *err,
               size_t errcap)
{
    if (err && errcap)
        err[0] = '\0';
    if (!s || (cap > 0 && !out)) {
        st_errf(err, errcap, "bad arguments");
        return -1;
    }
    if (cap <= 0 || from_us >= to_us)
        return 0;
    pthread_mutex_lock(&s->rlock);
    sqlite3_stmt *q = s->r_gaps;
    sqlite3_bind_int64(q, 1, from_us);
    sqlite3_bind_int64(q, 2, to_us);
    sqlite3_bind_int(q, 3, cap);
    int got = 0, rc = SQLITE_DONE;
    while (got < cap && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        store_gap *g = &out[got++];
        g->start_us = sqlite3_column_int64(q, 0);
        g->end_us = sqlite3_column_int64(q, 1);
        g->ticks = sqlite3_column_int64(q, 2);
        g->recorded_us = sqlite3_column_int64(q, 3);
    }
    if (got == cap)
        rc = SQLITE_DONE;
    if (rc != SQLITE_DONE)
        st_sqlerr(s->r, rc, "gaps query", err, errcap);
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->rlock);
    return rc == SQLITE_DONE ? got : -1;
}

/* ---- stats ---- */

void store_get_stats(store *s, store_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (!s)
        return;
    uint64_t tail = atomic_load(&s->tail), markers = atomic_load(&s->markers_put);
    pthread_mutex_lock(&s->slock);
    *st = s->st;
    uint64_t head = atomic_load(&s->head), markers_done = s->markers_done;
    pthread_mutex_unlock(&s->slock);
    st->ticks_put = atomic_load(&s->put);
    st->dropped = atomic_load(&s->dropped);
    st->skipped_stale = atomic_load(&s->skipped_stale);
    st->queue_depth = (tail - head) - (markers - markers_done); /* ticks, not gap markers */
    st->queue_capacity = s->cap;
}

void store_set_max_db_bytes(store *s, int64_t bytes)
{
    if (!s)
        return;
    bytes = bytes > 0 ? bytes : 0;
    if (atomic_exchange(&s->max_db_bytes, bytes) == bytes)
        return;
    atomic_store(&s->retry_now, 1);
    sem_post(&s->wake); /* a writer degraded at the old cap tries the new one now */
}

/* ---- the operator's check (tickerd --check-history) ---- */

#define ST_CHECK_MAX_PROBLEMS 3

typedef struct st_check {
    sqlite3 *db;
    char problems[768];
    int nproblems;  /* damage found (the file's fault) */
    char cannot[256]; /* an error that is not the file's fault: cannot open or read */
} st_check;

static void st_check_problem(st_check *ck, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void st_check_problem(st_check *ck, const char *fmt, ...)
{
    if (ck->nproblems++ >= ST_CHECK_MAX_PROBLEMS)
        return;
    size_t len = strlen(ck->problems);
    if (len && len + 2 < sizeof(ck->problems)) {
        memcpy(ck->problems + len, "; ", 3);
        len += 2;
    }
    if (len + 1 >= sizeof(ck->problems))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ck->problems + len, sizeof(ck->problems) - len, fmt, ap);
    va_end(ap);
    for (char *p = ck->problems + len; *p; p++) /* one line */
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
}

/* An SQLite error while checking: damage (corrupt, not a database) is a
 * problem of the file; anything else means the check could not be done. */
static void st_check_error(st_check *ck, int rc, const char *what)
{
    int code = rc & 0xff;
    const char *msg = sqlite3_errcode(ck->db) != SQLITE_OK ? sqlite3_errmsg(ck->db)
                                                            : sqlite3_errstr(rc);
    if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB)
        st_check_problem(ck, "%s: %s: %s", what, st_code_name(rc), msg);
    else if (!ck->cannot[0])
        st_errf(ck->cannot, sizeof(ck->cannot), "%s: %s: %s", what, st_code_name(rc), msg);
}

/* The n integers of a one-row query, or -1 after st_check_error. */
static int st_check_ints(st_check *ck, const char *sql, const char *what, int64_t *out, int n)
{
    memset(out, 0, (size_t)n * sizeof(*out));
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(ck->db, sql, -1, &q, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW)
        for (int i = 0; i < n; i++)
            out[i] = sqlite3_column_int64(q, i);
    if (rc != SQLITE_ROW)
        st_check_error(ck, rc, what);
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? 0 : -1;
}

static int st_check_int(st_check *ck, const char *sql, const char *what, int64_t *out)
{
    return st_check_ints(ck, sql, what, out, 1);
}

/* "2025-11-23T10:04:05Z" from µs since the epoch. */
static void st_check_time(int64_t us, char *out, size_t cap)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, cap, "%" PRId64 " us", us);
}

int store_check(const char *path, char *report, size_t cap)
{
    char dummy[1];
    if (!report || !cap) {
        report = dummy;
        cap = sizeof(dummy);
    }
    report[0] = '\0';
    if (!path || !path[0]) {
        st_errf(report, cap, "no history file given");
        return STORE_CHECK_CANNOT_OPEN;
    }
    struct stat sb;
    if (stat(path, &sb) != 0) {
        st_errf(report, cap, "%s: cannot open: %s", path, strerror(errno));
        return STORE_CHECK_CANNOT_OPEN;
    }
    if (!S_ISREG(sb.st_mode)) {
        st_errf(report, cap, "%s: cannot open: not a regular file", path);
        return STORE_CHECK_CANNOT_OPEN;
    }
    st_check ck;
    memset(&ck, 0, sizeof(ck));
    /* Read-only: never creates the database nor writes it. */
    int rc = sqlite3_open_v2(path, &ck.db, SQLITE_OPEN_READONLY, NULL);
    if (rc != SQLITE_OK) {
        st_errf(report, cap, "%s: cannot open: %s: %s", path, st_code_name(rc),
                ck.db ? sqlite3_errmsg(ck.db) : sqlite3_errstr(rc));
        sqlite3_close(ck.db);
        return STORE_CHECK_CANNOT_OPEN;
    }
    sqlite3_extended_result_codes(ck.db, 1);
    sqlite3_busy_timeout(ck.db, ST_BUSY_TIMEOUT_MS);

    int64_t version = -1, nsym = -1, nticks = -1, newest = 0, ngaps = -1, gap_ticks = 0;
    int64_t ncandles[ST_NINT] = {-1, -1, -1};
    int tables = 0;
    /* One read transaction: every figure comes from the same snapshot, even
     * while tickerd commits. */
    rc = sqlite3_exec(ck.db, "BEGIN", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        st_check_error(&ck, rc, "begin");
    int readable = !ck.cannot[0] &&
                   !st_check_int(&ck, "PRAGMA user_version", "schema version", &version);
    if (!readable)
        version = -1; /* not a database at all, or not readable: nothing more to ask */
    if (readable) {
        /* integrity_check: b-trees, free list, indexes against their tables,
         * NOT NULL columns. Its first rows name the first problems. */
        sqlite3_stmt *q = NULL;
        rc = sqlite3_prepare_v2(ck.db, "PRAGMA integrity_check(10)", -1, &q, NULL);
        while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
            const char *m = (const char *)sqlite3_column_text(q, 0);
            /* A row may hold several messages, one a line, after a
             * "*** in database main ***" header line. */
            while (m && *m && strcmp(m, "ok")) {
                size_t n = strcspn(m, "\n");
                if (strncmp(m, "*** in database", 15))
                    st_check_problem(&ck, "%.*s", (int)n, m);
                m += n + (m[n] == '\n');
            }
            rc = SQLITE_OK;
        }
        if (rc != SQLITE_DONE)
            st_check_error(&ck, rc, "integrity_check");
        sqlite3_finalize(q);
    }
    int64_t t = 0;
    if (readable && !ck.cannot[0] &&
        !st_check_int(&ck,
                      "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN"
                      " ('symbols', 'ticks', 'candles', 'gaps', 'run_seq')",
                      "list tables", &t))
        tables = (int)t;
    int want = version >= 2 ? 5 : 4;
    if (!ck.cannot[0] && version >= 0 && tables < want) {
        if (version == 0 && tables == 0)
            st_check_problem(&ck, "not a tickerd history file (schema v0, no history tables)");
        else
            st_check_problem(&ck, "schema v%" PRId64 " but %d of its %d tables", version, tables,
                             want);
    }
    if (!ck.cannot[0] && tables >= 4) {
        /* tickerd's own invariants along with the counts (one scan per
         * table): every row names a known symbol; candles are of a kept
         * interval, aligned, with a consistent OHLC and at least one tick. */
        int64_t v[4];
        st_check_int(&ck, "SELECT count(*) FROM symbols", "count symbols", &nsym);
        if (!st_check_ints(&ck,
                           "SELECT count(*), coalesce(max(ts_us), 0),"
                           " coalesce(sum(symbol_id NOT IN (SELECT id FROM symbols)), 0)"
                           " FROM ticks",
                           "read ticks", v, 3)) {
            nticks = v[0];
            newest = v[1];
            if (v[2])
                st_check_problem(&ck, "%" PRId64 " tick(s) of no known symbol", v[2]);
        }
        if (!st_check_ints(&ck,
                           "SELECT coalesce(sum(interval_s = 1), 0),"
                           " coalesce(sum(interval_s = 60), 0),"
                           " coalesce(sum(interval_s = 3600), 0),"
                           " coalesce(sum(symbol_id NOT IN (SELECT id FROM symbols)"
                           " OR interval_s NOT IN (1, 60, 3600)"
                           " OR start_us % (interval_s * 1000000) != 0 OR volume < 1"
                           " OR NOT (low <= open AND open <= high AND low <= close"
                           " AND close <= high)), 0) FROM candles",
                           "read candles", v, 4)) {
            for (int i = 0; i < ST_NINT; i++)
                ncandles[i] = v[i];
            if (v[3])
                st_check_problem(&ck, "%" PRId64 " inconsistent candle row(s)", v[3]);
        }
        if (!st_check_ints(&ck, "SELECT count(*), coalesce(sum(ticks), 0) FROM gaps", "read gaps",
                           v, 2)) {
            ngaps = v[0];
            gap_ticks = v[1];
        }
    }
    sqlite3_exec(ck.db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(ck.db);

    if (ck.cannot[0]) {
        st_errf(report, cap, "%s: cannot check: %s", path, ck.cannot);
        return STORE_CHECK_CANNOT_OPEN;
    }
    char more[16] = "", summary[384] = "", newest_s[40] = "none";
    if (ck.nproblems > ST_CHECK_MAX_PROBLEMS)
        snprintf(more, sizeof(more), " (and more)");
    if (newest)
        st_check_time(newest, newest_s, sizeof(newest_s));
    if (tables >= 4)
        snprintf(summary, sizeof(summary),
                 "schema v%" PRId64 "%s, %" PRId64 " symbols, %" PRId64 " ticks (newest %s),"
                 " candles 1s %" PRId64 " / 1m %" PRId64 " / 1h %" PRId64 ", %" PRId64
                 " gaps (%" PRId64 " ticks dropped)",
                 version, version > STORE_SCHEMA_VERSION ? " (newer than this build's)" : "",
                 nsym, nticks, newest_s, ncandles[0], ncandles[1], ncandles[2], ngaps,
                 gap_ticks);
    else if (version >= 0)
        snprintf(summary, sizeof(summary), "schema v%" PRId64, version);
    if (ck.nproblems) {
        st_errf(report, cap, "%s: CORRUPT: %s%s%s%s", path, ck.problems, more,
                summary[0] ? "; " : "", summary);
        return STORE_CHECK_CORRUPT;
    }
    st_errf(report, cap, "%s: ok: %s", path, summary);
    return STORE_CHECK_OK;
}
