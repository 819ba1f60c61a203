/* util.c — the bounded string builder declared in util.h. */
#include "tickerd/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sbuf_init(sbuf *b, size_t limit)
{
    memset(b, 0, sizeof(*b));
    b->limit = limit;
}

void sbuf_free(sbuf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static int sbuf_reserve(sbuf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need > b->limit) {
        b->overflow = 1;
        return -1;
    }
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    if (cap > b->limit)
        cap = b->limit;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->overflow = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void sbuf_append(sbuf *b, const char *s, size_t n)
{
    if (b->overflow || sbuf_reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sbuf_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(tmp)) {
        sbuf_append(b, tmp, (size_t)n);
        return;
    }
    /* Rare long line: format straight into the buffer. */
    if (b->overflow || sbuf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* ---- name lists ---- */

typedef struct tk_name_ref {
    const char *name;
    size_t at;
} tk_name_ref;

static int tk_name_ref_cmp(const void *a, const void *b)
{
    const tk_name_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->at > y->at) - (x->at < y->at); /* first appearance first */
}

size_t tk_dedupe_names(const char **names, size_t n)
{
    if (n < 2)
        return n;
    tk_name_ref *refs = malloc(n * sizeof(*refs));
    if (!refs)
        return (size_t)-1;
    for (size_t i = 0; i < n; i++)
        refs[i] = (tk_name_ref){names[i], i};
    qsort(refs, n, sizeof(*refs), tk_name_ref_cmp);
    /* Mark repeats by clearing their slot, then close the gaps in order. */
    for (size_t i = 1; i < n; i++)
        if (!strcmp(refs[i].name, refs[i - 1].name))
            names[refs[i].at] = NULL;
    free(refs);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (names[i])
            names[kept++] = names[i];
    return kept;
}

/* ---- UTF-8 ---- */

/* The state packs what the sequence in progress still needs: the count of
 * continuation bytes left (bits 0-7) and the allowed range of the next one
 * (bits 8-15 low bound, 16-23 high bound), which is narrower than 80..BF
 * right after E0, ED, F0 and F4 (overlongs, surrogates, > U+10FFFF). */
int tk_utf8_feed(uint32_t *state, const unsigned char *p, size_t len)
{
    uint32_t st = *state;
    for (size_t i = 0; i < len; i++) {
        unsigned c = p[i];
        if (st) {
            unsigned lo = (st >> 8) & 0xff, hi = (st >> 16) & 0xff, left = st & 0xff;
            if (c < lo || c > hi)
                return -1;
            st = left > 1 ? (0xbfu << 16 | 0x80u << 8 | (left - 1)) : 0;
            continue;
        }
        if (c < 0x80)
            continue;
        unsigned lo = 0x80, hi = 0xbf, need;
        if (c >= 0xc2 && c <= 0xdf)
            need = 1;
        else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else
            return -1;
        st = hi << 16 | lo << 8 | need;
    }
    *state = st;
    return 0;
}

void tk_metric_head(sbuf *o, const char *name, const char *type, const char *help)
{
    sbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void tk_metric(sbuf *o, const char *name, const char *type, const char *help, uint64_t v)
{
    tk_metric_head(o, name, type, help);
    sbuf_printf(o, "%s %llu\n", name, (unsigned long long)v);
}

void tk_metric_labelled(sbuf *o, const char *name, const char *label, const char *value, uint64_t v)
{
    sbuf_printf(o, "%s{%s=\"%s\"} %llu\n", name, label, value, (unsigned long long)v);
}
