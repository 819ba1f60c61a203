/*
 * feed_capture.c — see feed_capture.h.
 *
 * A ring of `cap` bytes holds whole formatted records between `head` and
 * head+len (mod cap). A producer measures its record first (outside the lock),
 * then under the lock either drops it (not enough free space) or formats it
 * straight into the free space and advances len. The writer takes the filled
 * region [head, head+len) under the lock, writes it with the lock released —
 * producers only ever write into free space, so the region is its own until
 * it gives it back by advancing head — and then frees it. The lock is never
 * held across I/O or logging.
 */
#include "tickerd/feed_capture.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tickerd/log.h"
#include "tickerd/util.h"

#define CAP_STDIO_BUFFER (64 * 1024)
#define CAP_LOG_EVERY_US (10 * 1000000LL)
#define CAP_IDLE_WAIT_US 1000000LL

struct feed_capture {
    char path[512];
    FILE *f;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* guarded by lock */
    char *buf;
    size_t cap, head, len;
    int waiting, stop;
    uint64_t records, dropped;
    /* the writer's, read by anyone */
    atomic_uint_fast64_t bytes, write_errors;
};

/* ---- formatting ---- */

/* Where formatted bytes go: counted only (measuring pass), or also copied into
 * the ring at pos, wrapping at cap. */
typedef struct cap_out {
    char *ring;
    size_t cap, pos;
    size_t n;
} cap_out;

static void cap_put(cap_out *o, const char *s, size_t n)
{
    if (o->ring && n) {
        size_t first = o->cap - o->pos;
        if (first > n)
            first = n;
        memcpy(o->ring + o->pos, s, first);
        memcpy(o->ring, s + first, n - first);
        o->pos += n;
        if (o->pos >= o->cap)
            o->pos -= o->cap;
    }
    o->n += n;
}

/* Length of the valid UTF-8 sequence (2-4 bytes) starting at s, or 0:
 * overlong forms, UTF-16 surrogates and code points above U+10FFFF are
 * invalid (RFC 3629). */
static size_t cap_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t more;
    if (c >= 0xC2 && c <= 0xDF) {
        more = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        more = 2;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        more = 3;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n <= more || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i <= more; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return more + 1;
}

/* text as the inside of a JSON string (see feed_capture.h: Escaping). Runs of
 * bytes that need no escape go out in one piece. */
static void cap_put_escaped(cap_out *o, const char *text, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)text;
    size_t run = 0, i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = cap_utf8_seq(s + i, len - i);
            if (k) {
                i += k;
                continue;
            }
        }
        cap_put(o, text + run, i - run);
        char esc[6] = {'\\', 0};
        size_t m = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default: /* control characters and bytes of invalid UTF-8: \u00XX */
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            m = 6;
        }
        cap_put(o, esc, m);
        run = ++i;
    }
    cap_put(o, text + run, len - run);
}

typedef struct cap_rec {
    int rest;
    int64_t t;
    long status;
    const char *hint;
    const char *text;
    size_t len;
} cap_rec;

static void cap_format(cap_out *o, const cap_rec *r)
{
    char head[80];
    int n;
    if (!r->rest) {
        n = snprintf(head, sizeof(head), "{\"t\":%" PRId64 ",\"frame\":\"", r->t);
        cap_put(o, head, (size_t)n);
    } else {
        n = snprintf(head, sizeof(head), "{\"t\":%" PRId64 ",\"status\":%ld,\"hint\":", r->t,
                     r->status);
        cap_put(o, head, (size_t)n);
        if (r->hint) {
            cap_put(o, "\"", 1);
            cap_put_escaped(o, r->hint, strlen(r->hint));
            cap_put(o, "\"", 1);
        } else {
            cap_put(o, "null", 4);
        }
        cap_put(o, ",\"body\":\"", 9);
    }
    cap_put_escaped(o, r->text ? r->text : "", r->text ? r->len : 0);
    cap_put(o, "\"}\n", 3);
}

/* ---- producers (any thread) ---- */

static void cap_submit(feed_capture *c, const cap_rec *r)
{
    cap_out o = {0};
    cap_format(&o, r); /* measure, outside the lock */
    size_t need = o.n;
    pthread_mutex_lock(&c->lock);
    if (c->stop || need > c->cap - c->len) {
        c->dropped++;
        pthread_mutex_unlock(&c->lock);
        return;
    }
    o = (cap_out){.ring = c->buf, .cap = c->cap, .pos = (c->head + c->len) % c->cap};
    cap_format(&o, r);
    c->len += need;
    c->records++;
    if (c->waiting)
        pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

void feed_capture_ws(feed_capture *c, int64_t recv_us, const char *frame, size_t len)
{
    if (!c)
        return;
    cap_rec r = {.rest = 0, .t = recv_us, .text = frame, .len = len};
    cap_submit(c, &r);
}

void feed_capture_rest(feed_capture *c, int64_t recv_us, long status, const char *hint,
                       const char *body, size_t len)
{
    if (!c)
        return;
    cap_rec r = {.rest = 1, .t = recv_us, .status = status, .hint = hint, .text = body, .len = len};
    cap_submit(c, &r);
}

uint64_t feed_capture_dropped(feed_capture *c)
{
    if (!c)
        return 0;
    pthread_mutex_lock(&c->lock);
    uint64_t d = c->dropped;
    pthread_mutex_unlock(&c->lock);
    return d;
}

void feed_capture_get_stats(feed_capture *c, feed_capture_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    st->records = c->records;
    st->dropped = c->dropped;
    pthread_mutex_unlock(&c->lock);
    st->bytes = atomic_load(&c->bytes);
    st->write_errors = atomic_load(&c->write_errors);
}

/* ---- the writer thread ---- */

typedef struct cap_writer {
    int64_t last_flush_us, last_err_log_us, last_drop_log_us;
    uint64_t drops_logged;
    int unflushed;
} cap_writer;

static void cap_io_error(feed_capture *c, cap_writer *w, const char *what)
{
    int e = errno;
    atomic_fetch_add(&c->write_errors, 1);
    clearerr(c->f);
    int64_t now = tk_mono_us();
    if (!w->last_err_log_us || now - w->last_err_log_us >= CAP_LOG_EVERY_US) {
        w->last_err_log_us = now;
        log_error("capture %s: %s failed: %s (%" PRIuFAST64 " write errors so far)", c->path, what,
                  strerror(e), (uint_fast64_t)atomic_load(&c->write_errors));
    }
}

static void cap_write(feed_capture *c, cap_writer *w, const char *p, size_t n)
{
    if (!n)
        return;
    if (fwrite(p, 1, n, c->f) != n)
        cap_io_error(c, w, "write");
    atomic_fetch_add(&c->bytes, n);
    w->unflushed = 1;
}

static void cap_flush(feed_capture *c, cap_writer *w)
{
    if (w->unflushed && fflush(c->f))
        cap_io_error(c, w, "flush");
    w->unflushed = 0;
    w->last_flush_us = tk_mono_us();
}

static void cap_log_drops(feed_capture *c, cap_writer *w, uint64_t dropped)
{
    int64_t now = tk_mono_us();
    if (dropped == w->drops_logged ||
        (w->last_drop_log_us && now - w->last_drop_log_us < CAP_LOG_EVERY_US))
        return;
    log_warn("capture %s: %" PRIu64 " record(s) dropped so far (buffer full)", c->path, dropped);
    w->drops_logged = dropped;
    w->last_drop_log_us = now;
}

static void *cap_thread(void *arg)
{
    feed_capture *c = arg;
    cap_writer w = {.last_flush_us = tk_mono_us()};
    pthread_mutex_lock(&c->lock);
    for (;;) {
        uint64_t dropped = c->dropped;
        if (!c->len) {
            if (c->stop)
                break;
            int64_t now = tk_mono_us();
            int64_t due = w.unflushed ? w.last_flush_us + FEED_CAPTURE_FLUSH_MS * 1000LL
                                      : now + CAP_IDLE_WAIT_US;
            if (due <= now) {
                pthread_mutex_unlock(&c->lock);
                cap_flush(c, &w);
                cap_log_drops(c, &w, dropped);
                pthread_mutex_lock(&c->lock);
                continue;
            }
            struct timespec ts = {.tv_sec = due / 1000000, .tv_nsec = (due % 1000000) * 1000};
            c->waiting = 1;
            pthread_cond_timedwait(&c->cond, &c->lock, &ts);
            c->waiting = 0;
            continue;
        }
        size_t head = c->head, n = c->len;
        pthread_mutex_unlock(&c->lock);
        size_t first = c->cap - head < n ? c->cap - head : n;
        cap_write(c, &w, c->buf + head, first);
        cap_write(c, &w, c->buf, n - first);
        if (tk_mono_us() - w.last_flush_us >= FEED_CAPTURE_FLUSH_MS * 1000LL)
            cap_flush(c, &w);
        cap_log_drops(c, &w, dropped);
        pthread_mutex_lock(&c->lock);
        c->head = (head + n) % c->cap;
        c->len -= n;
    }
    uint64_t dropped = c->dropped;
    pthread_mutex_unlock(&c->lock);
    cap_flush(c, &w);
    w.last_drop_log_us = 0;
    cap_log_drops(c, &w, dropped);
    return NULL;
}

/* ---- lifecycle ---- */

feed_capture *feed_capture_open(const char *path, size_t buffer_bytes, char *err, size_t errcap)
{
    char dummy[1];
    if (!err || !errcap) {
        err = dummy;
        errcap = sizeof(dummy);
    }
    err[0] = '\0';
    if (!path || !path[0]) {
        snprintf(err, errcap, "no capture file given");
        return NULL;
    }
    feed_capture *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    snprintf(c->path, sizeof(c->path), "%s", path);
    c->cap = buffer_bytes ? buffer_bytes : FEED_CAPTURE_DEFAULT_BUFFER;
    c->buf = malloc(c->cap);
    if (!c->buf) {
        snprintf(err, errcap, "cannot allocate a %zu-byte capture buffer", c->cap);
        free(c);
        return NULL;
    }
    c->f = fopen(path, "ae");
    if (!c->f) {
        snprintf(err, errcap, "cannot open %s: %s", path, strerror(errno));
        free(c->buf);
        free(c);
        return NULL;
    }
    setvbuf(c->f, NULL, _IOFBF, CAP_STDIO_BUFFER);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&c->thread, NULL, cap_thread, c);
    if (rc) {
        snprintf(err, errcap, "cannot start the capture writer: %s", strerror(rc));
        pthread_cond_destroy(&c->cond);
        pthread_mutex_destroy(&c->lock);
        fclose(c->f);
        free(c->buf);
        free(c);
        return NULL;
    }
    return c;
}

void feed_capture_close(feed_capture *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->stop = 1;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    if (fclose(c->f)) {
        atomic_fetch_add(&c->write_errors, 1);
        log_error("capture %s: close failed: %s", c->path, strerror(errno));
    }
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    free(c->buf);
    free(c);
}
