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

/* Prometheus text exposition into an sbuf: a metric's HELP and TYPE lines,
 * one unlabelled sample with them, one sample with a single label. */
void tk_metric_head(sbuf *o, const char *name, const char *type, const char *help);
void tk_metric(sbuf *o, const char *name, const char *type, const char *help, uint64_t v);
void tk_metric_labelled(sbuf *o, const char *name, const char *label, const char *value, uint64_t v);

/* Removes later repeats of a name from names[0..n) in place, keeping the
 * order of first appearance. Returns the new count, or (size_t)-1 when out
 * of memory (names unchanged). O(n log n): lists can be long (a 1 MiB
 * subscribe holds 350k names), and a repeated name must not cost twice. */
size_t tk_dedupe_names(const char **names, size_t n);

/* Incremental UTF-8 validation (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF), for text that arrives in pieces. Start with
 * *state = 0 and feed every piece; after the last one the text is valid
 * when *state is 0 again. Returns -1 at the first invalid byte (the state
 * is then meaningless), else 0. */
int tk_utf8_feed(uint32_t *state, const unsigned char *p, size_t len);

#endif
