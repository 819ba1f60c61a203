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
