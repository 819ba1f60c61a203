/*
 * history.h — history reads off the event loop.
 *
 * The store answers history queries from disk, which the service thread must
 * never wait on. So requests (a subscribe's history frames, an /api/history
 * page) go to one worker thread of this module through a bounded queue; the
 * worker runs the query and renders the finished JSON text, and hands the
 * request back through a second list, waking the loop with the `wake` callback
 * (the app passes lws_cancel_service). On the service thread hist_deliver()
 * then calls each request's `done`.
 *
 * Memory is bounded by configuration: at most max_pending requests exist at
 * once (hist_submit returns NULL beyond that: the caller answers "busy"), and
 * each holds at most max_rows rows per query and HIST_MAX_TOTAL_ROWS in all.
 *
 * A requester that goes away first (a client closing) calls hist_cancel():
 * `done` is then never called and the request is freed when the worker is
 * through with it. Everything except the worker's own work runs on the
 * service thread.
 */
#ifndef TICKERD_HISTORY_H
#define TICKERD_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "tickerd/store.h"

/* Rows one request may ask for over all its queries (a subscribe's symbols). */
#define HIST_MAX_TOTAL_ROWS 10000
#define HIST_DEFAULT_MAX_ROWS 2000
#define HIST_DEFAULT_MAX_PENDING 64

typedef enum {
    HIST_FMT_FRAME, /* {"op":"history","symbol":..,"interval":..,"columns":..,"rows":..,"seq":..} */
    HIST_FMT_API,   /* the /api/history body: the same fields without "op", plus "next" */
} hist_format;

typedef struct hist_query {
    char symbol[32];
    int interval_s;         /* 0 ticks; 1, 60, 3600 candles */
    int64_t from_us, to_us; /* [from, to) by event time */
    int limit;
    int latest;             /* the newest `limit` rows of the range, else the earliest */
} hist_query;

/* One query's answer: JSON text after `headroom` spare bytes (lws's LWS_PRE,
 * so the transport writes it in place). */
typedef struct hist_result {
    char *buf;         /* headroom + len bytes; NULL when rendering failed (OOM) */
    size_t len;
    uint64_t seq;      /* the seam: seq of the newest value in the rows (this run), 0 = none */
    int status;        /* 200, 404 unknown symbol (API only), 503 store failing */
    uint32_t sym_id;   /* the caller's tag (the broadcaster's symbol id) */
} hist_result;

typedef struct hist hist;
typedef struct hist_req hist_req;
typedef void (*hist_done_fn)(void *arg, hist_req *r);

typedef struct hist_opts {
    int max_rows;    /* per query; <= 0: HIST_DEFAULT_MAX_ROWS */
    int max_pending; /* requests in existence; <= 0: HIST_DEFAULT_MAX_PENDING */
    size_t headroom; /* spare bytes before each result's text */
    void (*wake)(void *arg); /* called from the worker when results are ready */
    void *wake_arg;
    const char *no_store_reason; /* without a store: why (copied); answers carry it */
} hist_opts;

typedef struct hist_stats {
    uint64_t requests, queries, rows, busy, errors;
    uint32_t pending; /* gauge */
} hist_stats;

/* st may be NULL (history disabled): every query then answers 503. */
hist *hist_create(store *st, const hist_opts *o);
int hist_start(hist *h);
/* Join the worker; requests still queued are answered 503 at the next
 * hist_deliver (or freed by hist_destroy). */
void hist_stop(hist *h);
void hist_destroy(hist *h);
int hist_max_rows(const hist *h);
void hist_get_stats(hist *h, hist_stats *out);

/* "tick", "1s", "1m", "1h" → 0, 1, 60, 3600; -1 when unknown. */
int hist_parse_interval(const char *name);
const char *hist_interval_name(int interval_s);

/* Queue n queries (copied) as one request. NULL when max_pending requests
 * exist already (busy) or out of memory. tags[i] becomes results[i].sym_id. */
hist_req *hist_submit(hist *h, const hist_query *q, const uint32_t *tags, size_t n,
                      hist_format fmt, hist_done_fn done, void *arg);
/* Would hist_submit accept a request now (fewer than max_pending exist)? */
int hist_can_submit(hist *h);
/* The requester is gone: no `done` call; freed once the worker is through. */
void hist_cancel(hist_req *r);
/* Service thread: call `done` for every finished request. */
void hist_deliver(hist *h);

/* After `done`: the answers, in query order. The requester owns r and frees
 * it with hist_req_free (it may take result buffers, setting buf to NULL). */
size_t hist_req_count(const hist_req *r);
hist_result *hist_req_result(hist_req *r, size_t i);
void hist_req_free(hist_req *r);

#endif
