/*
 * store_crash — helper of the history store's tests and figures.
 *
 *   store_crash write <db> [flush_ms] [capacity]
 *     Open the store at <db>, start it and put ticks as fast as it can (4
 *     symbols "CR0".."CR3", last = a global sequence number 0, 1, 2..., seq =
 *     last + 1, ts = wall clock), printing a progress line every 20 ms:
 *       put=<n> written=<n> dropped=<n> batches=<n> flush_us=<last flush µs>
 *     until killed (test_store --crash sends SIGKILL) or 60 s have passed.
 *
 *   store_crash bench <db> <ticks_per_batch> <batches> [symbols]
 *     The writer's throughput: for each batch, put ticks_per_batch ticks
 *     (one simulated second of market spread over the symbols) with the
 *     writer stopped, then start it and time the one transaction that writes
 *     them (stats.last_flush_us). Prints one line per batch and a summary.
 *
 *   store_crash latency <db> <ticks_per_s> <seconds> [symbols]
 *     What store_put costs the caller while the writer works: put at a paced
 *     rate with the default flush interval and print the put latency
 *     percentiles, the drops and the writer's batches.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tickerd/store.h"
#include "tickerd/util.h"

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int run_write(const char *path, int flush_ms, size_t capacity)
{
    store_opts o;
    store_opts_init(&o);
    o.flush_interval_ms = flush_ms;
    o.capacity = capacity;
    char err[256];
    store *s = store_open(path, &o, err, sizeof(err));
    if (!s || store_start(s, err, sizeof(err))) {
        fprintf(stderr, "store_crash: %s\n", err);
        return 1;
    }
    norm_quote q;
    memset(&q, 0, sizeof(q));
    q.source = "crash";
    int64_t start = tk_mono_us(), next_report = start;
    for (uint64_t i = 0;; i++) {
        snprintf(q.symbol, sizeof(q.symbol), "CR%u", (unsigned)(i % 4));
        q.ts_us = tk_now_us();
        q.received_us = q.ts_us;
        q.last = (double)i;
        q.bid = q.last - 0.5;
        q.ask = q.last + 0.5;
        q.volume = 1000;
        q.seq = i + 1;
        store_put(s, &q);
        if (i % 256)
            continue;
        int64_t now = tk_mono_us();
        if (now >= next_report) {
            store_stats st;
            store_get_stats(s, &st);
            printf("put=%" PRIu64 " written=%" PRIu64 " dropped=%" PRIu64 " batches=%" PRIu64
                   " flush_us=%" PRId64 "\n",
                   st.ticks_put, st.ticks_written, st.dropped, st.batches, st.last_flush_us);
            fflush(stdout);
            next_report = now + 20000;
        }
        if (now - start > 60 * 1000000LL)
            break;
    }
    store_close(s);
    return 0;
}

static int run_bench(const char *path, size_t per_batch, int batches, int nsym)
{
    store_opts o;
    store_opts_init(&o);
    o.capacity = per_batch;
    o.flush_interval_ms = 3600 * 1000;
    /* The simulated market is in 2023: keep it all (writes only, no trimming). */
    o.retention_ticks_s = o.retention_1s_s = o.retention_1m_s = o.retention_1h_s = 0;
    char err[256];
    store *s = store_open(path, &o, err, sizeof(err));
    if (!s) {
        fprintf(stderr, "store_crash: %s\n", err);
        return 1;
    }
    norm_quote q;
    memset(&q, 0, sizeof(q));
    q.source = "bench";
    int64_t t0 = 1700000000LL * 1000000;
    double total_s = 0, put_ns = 0, worst = 0;
    uint64_t total = 0;
    for (int b = 0; b < batches; b++) {
        int64_t p0 = tk_mono_us();
        for (size_t i = 0; i < per_batch; i++) {
            snprintf(q.symbol, sizeof(q.symbol), "SYM%03d-USD", (int)(i % (size_t)nsym));
            q.ts_us = t0 + (int64_t)b * 1000000 + (int64_t)(i * 1000000 / per_batch);
            q.last = 100.0 + (double)((i * 7919) % 1000) / 100.0;
            q.bid = q.last - 0.01;
            q.ask = q.last + 0.01;
            q.volume = 12345.678;
            q.seq = (uint64_t)b * per_batch + i + 1; /* the v2 row and run_seq upserts */
            store_put(s, &q);
        }
        put_ns += (double)(tk_mono_us() - p0) * 1000.0 / (double)per_batch;
        store_stats st;
        uint64_t before = 0;
        store_get_stats(s, &st);
        before = st.ticks_written;
        if (store_start(s, err, sizeof(err))) {
            fprintf(stderr, "store_crash: %s\n", err);
            return 1;
        }
        do {
            sleep_ms(5);
            store_get_stats(s, &st);
        } while (st.ticks_written < before + per_batch && !st.degraded);
        store_stop(s);
        if (st.degraded) {
            fprintf(stderr, "store_crash: degraded: %s\n", st.error);
            return 1;
        }
        double secs = (double)st.last_flush_us / 1e6;
        total_s += secs;
        total += st.last_flush_ticks;
        if (secs > worst)
            worst = secs;
        printf("batch %d: %" PRIu64 " ticks, %" PRIu64 " candle upserts so far, %.1f ms, "
               "%.0f ticks/s; ticks in the file: %" PRIu64 "\n",
               b + 1, st.last_flush_ticks, st.candles_written, secs * 1000,
               (double)st.last_flush_ticks / secs, st.ticks_written);
        fflush(stdout);
    }
    printf("summary: %d batch(es) of %zu ticks over %d symbols: mean %.0f ticks/s, slowest batch "
           "%.1f ms; store_put %.0f ns each\n",
           batches, per_batch, nsym, (double)total / total_s, worst * 1000,
           put_ns / batches);
    store_close(s);
    return 0;
}

norm_quote latency_sink; /* the control's copy goes here */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int run_latency(const char *path, int rate, int seconds, int nsym)
{
    store_opts o;
    store_opts_init(&o);
    o.retention_ticks_s = o.retention_1s_s = o.retention_1m_s = o.retention_1h_s = 0;
    char err[256];
    store *s = store_open(path, &o, err, sizeof(err));
    if (!s || store_start(s, err, sizeof(err))) {
        fprintf(stderr, "store_crash: %s\n", err);
        return 1;
    }
    size_t total = (size_t)rate * (size_t)seconds, n = 0;
    int64_t *lat = malloc(total * sizeof(*lat)), *ctl = malloc(total * sizeof(*ctl));
    if (!lat || !ctl)
        return 1;
    /* Control: the same paced loop timing an uncontended lock + copy, to tell
     * the store's cost from the scheduler's (preemption on a busy machine). */
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    norm_quote q;
    memset(&q, 0, sizeof(q));
    q.source = "latency";
    int64_t start = tk_mono_us();
    while (n < total) {
        int64_t due = start + (int64_t)((double)n * 1e6 / rate);
        int64_t now = tk_mono_us();
        if (now < due) {
            if (due - now > 200)
                sleep_ms(0 + (int)((due - now) / 1000));
            continue;
        }
        snprintf(q.symbol, sizeof(q.symbol), "SYM%03d-USD", (int)(n % (size_t)nsym));
        q.ts_us = tk_now_us();
        q.last = 100.0 + (double)(n % 1000) / 100.0;
        q.bid = q.last - 0.01;
        q.ask = q.last + 0.01;
        q.volume = 1;
        q.seq = n + 1;
        int64_t t0 = tk_mono_us();
        store_put(s, &q);
        int64_t t1 = tk_mono_us();
        pthread_mutex_lock(&m);
        latency_sink = q;
        pthread_mutex_unlock(&m);
        ctl[n] = tk_mono_us() - t1;
        lat[n++] = t1 - t0;
    }
    store_stats st;
    store_get_stats(s, &st);
    qsort(lat, n, sizeof(*lat), cmp_i64);
    qsort(ctl, n, sizeof(*ctl), cmp_i64);
    printf("latency: %zu puts at %d/s over %d symbols: p50 %" PRId64 " us, p99 %" PRId64
           " us, p99.9 %" PRId64 " us, max %" PRId64 " us; %" PRIu64 " batches, last %" PRId64
           " us for %" PRIu64 " ticks, %" PRIu64 " dropped\n",
           n, rate, nsym, lat[n / 2], lat[n * 99 / 100], lat[n * 999 / 1000], lat[n - 1],
           st.batches, st.last_flush_us, st.last_flush_ticks, st.dropped);
    printf("control (uncontended lock + copy, same loop): p99 %" PRId64 " us, p99.9 %" PRId64
           " us, max %" PRId64 " us\n",
           ctl[n * 99 / 100], ctl[n * 999 / 1000], ctl[n - 1]);
    free(lat);
    free(ctl);
    store_close(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "write"))
        return run_write(argv[2], argc > 3 ? atoi(argv[3]) : 100,
                         argc > 4 ? (size_t)atol(argv[4]) : 20000);
    if (argc >= 5 && !strcmp(argv[1], "bench"))
        return run_bench(argv[2], (size_t)atol(argv[3]), atoi(argv[4]),
                         argc > 5 ? atoi(argv[5]) : 20);
    if (argc >= 5 && !strcmp(argv[1], "latency"))
        return run_latency(argv[2], atoi(argv[3]), atoi(argv[4]), argc > 5 ? atoi(argv[5]) : 20);
    fprintf(stderr, "usage: store_crash write <db> [flush_ms] [capacity]\n"
                    "       store_crash bench <db> <ticks_per_batch> <batches> [symbols]\n"
                    "       store_crash latency <db> <ticks_per_s> <seconds> [symbols]\n");
    return 2;
}
