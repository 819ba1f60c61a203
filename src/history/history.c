/* history.c — see history.h.
 *
 * Two lists under one mutex: `queue` (submitted, FIFO) and `finished`. The
 * worker takes a request off the queue, runs its queries with no lock held,
 * renders the answers, and appends it to `finished`; hist_deliver takes the
 * whole finished list at once. A request belongs to exactly one side at a
 * time, so `cancelled` (written on the service thread only) needs no lock:
 * the worker never reads it. */
#include "tickerd/history.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/log.h"
#include "tickerd/util.h"

struct hist_req {
    hist *h;
    hist_req *next;
    hist_query *q;
    hist_result *res;
    size_t n;
    hist_format fmt;
    hist_done_fn done;
    void *arg;
    int cancelled; /* service thread only */
};

struct hist {
    store *st;
    hist_opts o;
    hist_stats stats; /* service thread; the worker adds rows/errors under mu */
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    hist_req *queue, **queue_tail;
    hist_req *finished;
    int stopping;
    store_row *rows; /* the worker's scratch: max_rows rows */
    char no_store_reason[256];
};

static const struct {
    const char *name;
    int seconds;
} intervals[] = {{"tick", 0}, {"1s", 1}, {"1m", 60}, {"1h", 3600}};

int hist_parse_interval(const char *name)
{
    for (size_t i = 0; name && i < sizeof(intervals) / sizeof(intervals[0]); i++)
        if (!strcmp(name, intervals[i].name))
            return intervals[i].seconds;
    return -1;
}

const char *hist_interval_name(int interval_s)
{
    for (size_t i = 0; i < sizeof(intervals) / sizeof(intervals[0]); i++)
        if (intervals[i].seconds == interval_s)
            return intervals[i].name;
    return "?";
}

hist *hist_create(store *st, const hist_opts *o)
{
    hist *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->st = st;
    h->o = *o;
    if (h->o.max_rows <= 0)
        h->o.max_rows = HIST_DEFAULT_MAX_ROWS;
    if (h->o.max_pending <= 0)
        h->o.max_pending = HIST_DEFAULT_MAX_PENDING;
    h->queue_tail = &h->queue;
    snprintf(h->no_store_reason, sizeof(h->no_store_reason), "%s",
             o->no_store_reason && o->no_store_reason[0] ? o->no_store_reason
                                                         : "history is not available");
    h->o.no_store_reason = NULL; /* the copy above is what counts */
    h->rows = malloc((size_t)h->o.max_rows * sizeof(*h->rows));
    if (!h->rows || pthread_mutex_init(&h->mu, NULL)) {
        free(h->rows);
        free(h);
        return NULL;
    }
    pthread_cond_init(&h->cv, NULL);
    return h;
}

int hist_max_rows(const hist *h) { return h->o.max_rows; }
void hist_get_stats(hist *h, hist_stats *out)
{
    pthread_mutex_lock(&h->mu);
    *out = h->stats;
    pthread_mutex_unlock(&h->mu);
}

/* ---- rendering (worker) ---- */

static void put_num(sbuf *o, double v)
{
    if (isfinite(v))
        sbuf_printf(o, "%.10g", v);
    else
        sbuf_append(o, "null", 4);
}

/* Four numbers, comma-separated (the middle of a row). */
static void put_nums(sbuf *o, const double v[4])
{
    for (int i = 0; i < 4; i++) {
        if (i)
            sbuf_append(o, ",", 1);
        put_num(o, v[i]);
    }
}

static void render_rows(sbuf *o, const hist_query *q, const store_row *rows, int n)
{
    sbuf_append(o, "\"rows\":[", 8);
    for (int i = 0; i < n; i++) {
        const store_row *r = &rows[i];
        sbuf_printf(o, "%s[%lld,", i ? "," : "", (long long)r->ts_us);
        if (q->interval_s == 0) {
            put_nums(o, (const double[]){r->close, r->bid, r->ask, r->volume});
            sbuf_printf(o, ",%llu]", (unsigned long long)r->seq);
        } else {
            put_nums(o, (const double[]){r->open, r->high, r->low, r->close});
            sbuf_printf(o, ",%lld]", (long long)r->count);
        }
    }
    sbuf_append(o, "]", 1);
}

/* JSON string contents: symbols are canonical names (no quotes or
 * backslashes, checked by symtab), error texts come from SQLite; keep both
 * safe anyway. */
static void put_str(sbuf *o, const char *s)
{
    sbuf_append(o, "\"", 1);
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
            sbuf_append(o, " ", 1);
        else
            sbuf_append(o, s, 1);
    sbuf_append(o, "\"", 1);
}

static void render(hist *h, const hist_req *r, const hist_query *q, hist_result *res,
                   const store_row *rows, int n, const char *error)
{
    static const char zeros[64];
    sbuf o;
    sbuf_init(&o, h->o.headroom + (size_t)(n > 0 ? n : 0) * 192 + 1024);
    sbuf_append(&o, zeros, h->o.headroom < sizeof(zeros) ? h->o.headroom : sizeof(zeros));
    if (r->fmt == HIST_FMT_API && res->status != 200) {
        sbuf_printf(&o, "{\"error\":\"%s\",\"message\":",
                    res->status == 404 ? "unknown_symbol" : "history_unavailable");
        put_str(&o, error ? error : "");
        sbuf_append(&o, "}", 1);
    } else {
        sbuf_append(&o, "{", 1);
        if (r->fmt == HIST_FMT_FRAME)
            sbuf_append(&o, "\"op\":\"history\",", 15);
        sbuf_append(&o, "\"symbol\":", 9);
        put_str(&o, q->symbol);
        sbuf_printf(&o, ",\"interval\":\"%s\",\"columns\":%s,", hist_interval_name(q->interval_s),
                    q->interval_s ? "[\"t\",\"open\",\"high\",\"low\",\"close\",\"count\"]"
                                  : "[\"t\",\"last\",\"bid\",\"ask\",\"volume\",\"seq\"]");
        render_rows(&o, q, rows, n > 0 ? n : 0);
        sbuf_printf(&o, ",\"seq\":%llu", (unsigned long long)res->seq);
        if (r->fmt == HIST_FMT_API) {
            /* Paging forward: a full page of the earliest rows may have more. */
            if (!q->latest && n == q->limit && n > 0)
                sbuf_printf(&o, ",\"next\":%lld", (long long)rows[n - 1].ts_us + 1);
            else
                sbuf_append(&o, ",\"next\":null", 12);
        }
        if (error) {
            sbuf_append(&o, ",\"error\":", 9);
            put_str(&o, error);
        }
        sbuf_append(&o, "}", 1);
    }
    if (o.overflow) {
        sbuf_free(&o);
        return; /* buf stays NULL: the requester reports it */
    }
    res->buf = o.data;
    res->len = o.len - (h->o.headroom < sizeof(zeros) ? h->o.headroom : sizeof(zeros));
}

/* Returns the rows found, -1 on a store error. */
static int run_query(hist *h, const hist_req *r, const hist_query *q, hist_result *res)
{
    char err[256] = "";
    int n = -1;
    res->status = 503;
    if (h->st) {
        store_query sq = {
            .symbol = q->symbol,
            .interval_s = q->interval_s,
            .from_us = q->from_us,
            .to_us = q->to_us,
            .limit = q->limit < h->o.max_rows ? q->limit : h->o.max_rows,
            .latest = q->latest,
        };
        n = store_history(h->st, &sq, h->rows, h->o.max_rows, &res->seq, err, sizeof(err));
        if (n >= 0)
            res->status = 200;
    } else {
        snprintf(err, sizeof(err), "%s", h->no_store_reason);
    }
    render(h, r, q, res, h->rows, n, res->status == 200 ? NULL : err);
    return n;
}

static void *worker(void *arg)
{
    hist *h = arg;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->queue && !h->stopping)
            pthread_cond_wait(&h->cv, &h->mu);
        if (!h->queue)
            break; /* stopping, and nothing left to answer */
        hist_req *r = h->queue;
        h->queue = r->next;
        if (!h->queue)
            h->queue_tail = &h->queue;
        pthread_mutex_unlock(&h->mu);

        uint64_t rows = 0, errors = 0;
        for (size_t i = 0; i < r->n; i++) {
            int n = run_query(h, r, &r->q[i], &r->res[i]);
            if (n > 0)
                rows += (uint64_t)n;
            else if (n < 0 && h->st)
                errors++;
        }

        pthread_mutex_lock(&h->mu);
        h->stats.rows += rows;
        h->stats.errors += errors;
        r->next = h->finished;
        h->finished = r;
        if (h->o.wake)
            h->o.wake(h->o.wake_arg);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

int hist_start(hist *h)
{
    if (h->started)
        return 0;
    h->stopping = 0;
    if (pthread_create(&h->thread, NULL, worker, h))
        return -1;
    h->started = 1;
    return 0;
}

void hist_stop(hist *h)
{
    if (!h || !h->started)
        return;
    pthread_mutex_lock(&h->mu);
    h->stopping = 1;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
    h->started = 0;
}

void hist_req_free(hist_req *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->res[i].buf);
    pthread_mutex_lock(&r->h->mu);
    r->h->stats.pending--;
    pthread_mutex_unlock(&r->h->mu);
    free(r->q);
    free(r->res);
    free(r);
}

void hist_destroy(hist *h)
{
    if (!h)
        return;
    /* The worker answers everything queued before it exits, so only the
     * finished list is left; its requesters are gone (or cancelled). */
    hist_stop(h);
    while (h->queue) { /* only when the worker never ran */
        hist_req *r = h->queue;
        h->queue = r->next;
        hist_req_free(r);
    }
    while (h->finished) {
        hist_req *r = h->finished;
        h->finished = r->next;
        hist_req_free(r);
    }
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h->rows);
    free(h);
}

/* ---- service thread ---- */

hist_req *hist_submit(hist *h, const hist_query *q, const uint32_t *tags, size_t n,
                      hist_format fmt, hist_done_fn done, void *arg)
{
    pthread_mutex_lock(&h->mu);
    int full = h->stats.pending >= (uint32_t)h->o.max_pending;
    h->stats.busy += (uint64_t)full;
    pthread_mutex_unlock(&h->mu);
    if (full)
        return NULL;
    hist_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->h = h;
    r->q = malloc(n * sizeof(*r->q));
    r->res = calloc(n, sizeof(*r->res));
    if (!r->q || !r->res) {
        free(r->q);
        free(r->res);
        free(r);
        return NULL;
    }
    memcpy(r->q, q, n * sizeof(*q));
    for (size_t i = 0; i < n; i++)
        r->res[i].sym_id = tags ? tags[i] : 0;
    r->n = n;
    r->fmt = fmt;
    r->done = done;
    r->arg = arg;
    pthread_mutex_lock(&h->mu);
    h->stats.pending++;
    h->stats.requests++;
    h->stats.queries += n;
    *h->queue_tail = r;
    h->queue_tail = &r->next;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    return r;
}

int hist_can_submit(hist *h)
{
    pthread_mutex_lock(&h->mu);
    int ok = h->stats.pending < (uint32_t)h->o.max_pending;
    pthread_mutex_unlock(&h->mu);
    return ok;
}

void hist_cancel(hist_req *r)
{
    if (r)
        r->cancelled = 1;
}

void hist_deliver(hist *h)
{
    pthread_mutex_lock(&h->mu);
    hist_req *list = h->finished;
    h->finished = NULL;
    pthread_mutex_unlock(&h->mu);
    /* The worker pushes at the head: reverse for first-come order. */
    hist_req *ordered = NULL;
    while (list) {
        hist_req *next = list->next;
        list->next = ordered;
        ordered = list;
        list = next;
    }
    while (ordered) {
        hist_req *r = ordered;
        ordered = r->next;
        r->next = NULL;
        if (r->cancelled)
            hist_req_free(r);
        else
            r->done(r->arg, r);
    }
}

size_t hist_req_count(const hist_req *r) { return r->n; }
hist_result *hist_req_result(hist_req *r, size_t i) { return &r->res[i]; }
