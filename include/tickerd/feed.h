/*
 * feed.h — the feed adapter interface.
 *
 * A feed adapter turns one upstream source into `feed_update`s and hands them
 * to its sink. Adapters never see the normalizer, the broadcaster or clients:
 * the sink is the only way out, so REST-polling, WebSocket-subscribing and
 * simulated sources plug in without touching anything downstream.
 *
 * Threading: `emit` and `declare` must be called on the lws service thread
 * (timers and lws client callbacks run there). An adapter that owns a thread
 * (libcurl multi, say) hands its updates to the service thread through a
 * bounded latest-value structure woken with lws_cancel_service().
 *
 * Lifecycle, as in h2o/libuv: parse (config) → create → start → [reload]* →
 * stop → destroy.
 */
#ifndef TICKERD_FEED_H
#define TICKERD_FEED_H

#include <jansson.h>
#include <stdint.h>

#include "tickerd/cfg.h"

struct lws_context;
struct lws_vhost;

/* One price observation from upstream. All prices are in quote currency. */
typedef struct feed_update {
    const char *symbol; /* venue symbol; valid only during the emit call */
    double last, bid, ask;
    double volume;     /* 24 h or session volume, base units */
    double open;       /* session open if the venue gives one, else NAN */
    int64_t ts_us;     /* upstream event time, µs since the Unix epoch */
    uint16_t source;   /* source id the feed was created with */
    /* The venue's own order of this symbol's updates of one stream (Binance
     * bookTicker "u"), 0 when the message has none. An adapter reading the
     * same symbol on two connections at once drops what is not newer. */
    uint64_t venue_seq;
} feed_update;

/* Complete a partial update u (a field the message lacked is NAN, venue.h)
 * with known, the last complete value the feed saw for the symbol, then make
 * u the new known value (known starts with every price NAN). A message without
 * a book takes the known book, or a book of bid = ask = last when none was
 * ever seen (or the known one was itself made up that way: price-only sources);
 * a missing last becomes the mid; missing volume the known one, else 0; missing
 * open the known one. ts_us never goes back behind known's. A price never seen
 * stays NAN (drop such an update, or the normalizer rejects it as not_finite).
 * Adapter threads call it on their own state; it touches nothing else. */
void feed_update_complete(feed_update *known, feed_update *u);

typedef struct feed_sink {
    void *arg;
    /* Deliver one update (service thread). */
    void (*emit)(void *arg, const feed_update *u);
    /* Announce a venue symbol before its first update, so clients can
     * subscribe to it at once, and say which canonical symbol it is
     * (canonical NULL: the venue symbol already is canonical). Updates may
     * then name the venue symbol; the normalizer maps it. Returns 0, or -1 if
     * it was refused. */
    int (*declare)(void *arg, uint16_t source, const char *venue_symbol, const char *canonical);
} feed_sink;

typedef enum { FEED_STARTING = 0, FEED_LIVE, FEED_DOWN } feed_state;

typedef void (*feed_symbol_fn)(void *arg, const char *canonical);

/* Most upstream connections one feed reports on (feed_status.conns). */
#define FEED_MAX_CONNS 16

/* One upstream connection slot of a feed that spreads its symbols over
 * several (Binance above 512 symbols), for /metrics. */
typedef struct feed_conn_status {
    uint32_t symbols;    /* symbols this connection carries */
    uint8_t up;          /* open, subscribed and delivering */
    uint8_t overlapping; /* a replacement is open beside the current one */
    int64_t age_ms;      /* of the oldest open connection of the slot, -1 none */
    uint64_t reconnects, rotations;
} feed_conn_status;

typedef struct feed_status {
    feed_state state;
    uint64_t updates;       /* emitted since start */
    int64_t last_update_us; /* wall clock of the last emit, 0 = never */
    char detail[128];       /* human-readable reason for DOWN, or "" */
    /* Failures, for /metrics (0 where an adapter has no such thing). */
    uint64_t errors;        /* transport/HTTP failures, venue errors, rejected subscriptions */
    uint64_t rate_limited;  /* HTTP 429/418 answers */
    uint64_t malformed;     /* messages or bodies that could not be parsed, dropped */
    uint64_t oversized;     /* messages or bodies over the size limit, dropped */
    uint64_t reconnects;    /* connections re-opened */
    uint64_t captured_dropped; /* capture records dropped (buffer full) */
    /* Connection replacement (WebSocket feeds; 0 elsewhere). */
    uint64_t rotations;     /* connections replaced make-before-break */
    uint64_t stale_dropped; /* updates not newer than one already emitted (overlap, venue replays) */
    int64_t last_overlap_ms; /* how long the last replacement ran beside the old one, -1 none */
    uint32_t nconns;        /* entries of conns (0: not a multi-connection adapter) */
    feed_conn_status conns[FEED_MAX_CONNS];
} feed_status;

typedef struct feed_env {
    struct lws_context *lws;
    struct lws_vhost *vhost; /* for client connections */
    char name[32];           /* the feed's configured name, for logs */
    feed_sink sink;
    uint16_t source; /* id to stamp on every update */
} feed_env;

typedef struct feed_type {
    const char *name; /* the config's "type" */
    /* Parse the adapter's keys of one feeds[] object ("type" and "name" are
     * handled by cfg). path is e.g. "feeds[0]". */
    int (*parse)(const json_t *obj, const char *path, void **opts, cfg_error *err);
    void (*free_opts)(void *opts);
    /* opts is valid only during create and reload: copy what you keep. */
    void *(*create)(const void *opts, const feed_env *env);
    int (*start)(void *self);
    /* Apply new options to a running feed (SIGHUP); keeps state it can. */
    int (*reload)(void *self, const void *opts);
    void (*stop)(void *self);
    void (*destroy)(void *self);
    void (*status)(const void *self, feed_status *st);
    /* Optional: the service loop was woken (lws_cancel_service); adapters
     * with a thread of their own drain their feed_mailbox here. */
    void (*wake)(void *self);
    /* Optional: the canonical symbols a feed with these opts serves, each
     * through each(arg, canonical); -1 when the config alone does not say
     * (a replay without a list). A reload compares these sets to find the
     * symbols no feed serves any more. */
    int (*symbols)(const void *opts, feed_symbol_fn each, void *arg);
} feed_type;

/* The registry of adapter types known to this build. */
const feed_type *feed_type_find(const char *name);
const char *feed_state_name(feed_state s);

/* The canonical symbols cfg's feed serves (feed_type.symbols); -1 when its
 * type cannot say from the config. */
int feed_cfg_symbols(const feed_cfg *cfg, feed_symbol_fn each, void *arg);

/* A running feed instance: an opaque handle over one adapter. */
typedef struct feed feed;

feed *feed_create(const feed_cfg *cfg, const feed_env *env);
int feed_start(feed *f);
int feed_reload(feed *f, const feed_cfg *cfg);
void feed_stop(feed *f);
void feed_destroy(feed *f);
const char *feed_name(const feed *f);
const feed_type *feed_get_type(const feed *f);
void feed_get_status(const feed *f, feed_status *st);
void feed_wake(feed *f);
/* Sample f's status (the app's housekeeping, a few times a second) to keep
 * its last error: why it was last down, and since when (wall clock, µs).
 * feed_last_error gives it ("" and 0: never down). */
void feed_note_status(feed *f, int64_t now_us);
const char *feed_last_error(const feed *f, int64_t *at_us);

#endif
