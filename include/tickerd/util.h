/*
 * util.h — small helpers shared by every module: clocks and a bounded string
 * builder. Nothing here allocates behind the caller's back except sbuf, whose
 * growth is capped by the limit given at init.
 */
#ifndef TICKERD_UTIL_H
#define TICKERD_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define TK_VERSION "0.1.0"

/* Wall clock in µs since the Unix epoch (comparable with upstream `ts`). */
static inline int64_t tk_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Monotonic clock in µs: for timeouts and rates, immune to clock steps. */
static inline int64_t tk_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Growable text buffer with a hard cap; once the cap is hit further appends
 * are dropped and `overflow` is set, so callers check once at the end. */
typedef struct sbuf {
    char *data;
    size_t len, cap, limit;
    int overflow;
} sbuf;

void sbuf_init(sbuf *b, size_t limit);
void sbuf_free(sbuf *b);
void sbuf_append(sbuf *b, const char *s, size_t n);
void sbuf_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
