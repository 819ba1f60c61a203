/* cluster.c — see cluster.h. */
#include "tickerd/cluster.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tickerd/cfg.h"

const char *cluster_role_name(int role)
{
    switch (role) {
    case CFG_CLUSTER_STANDALONE: return "standalone";
    case CFG_CLUSTER_INGEST: return "ingest";
    case CFG_CLUSTER_EDGE: return "edge";
    default: return "?";
    }
}

uint32_t cluster_hash(const char *symbol)
{
    /* FNV-1a: a fixed, documented hash (not the symtab's) so that a symbol's
     * shard never changes with an internal hash-table tweak. */
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)symbol; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return h;
}

int cluster_shard_of(const char *symbol, int nshards)
{
    if (nshards <= 1)
        return 0;
    return (int)(cluster_hash(symbol) % (uint32_t)nshards);
}

struct redisContext *cluster_connect(const char *hostport, int timeout_ms, char *err, size_t errlen)
{
    char host[128];
    snprintf(host, sizeof(host), "%s", hostport);
    char *colon = strrchr(host, ':');
    int port = colon ? atoi(colon + 1) : 0;
    if (!colon || port <= 0 || port > 65535) {
        snprintf(err, errlen, "%s: not host:port", hostport);
        return NULL;
    }
    *colon = 0;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (!c) {
        snprintf(err, errlen, "%s: out of memory", hostport);
        return NULL;
    }
    if (c->err) {
        snprintf(err, errlen, "%s: %s", hostport, c->errstr);
        redisFree(c);
        return NULL;
    }
    /* A Redis that stops answering (DEBUG SLEEP, a frozen host) fails a
     * command after the timeout instead of holding the thread forever. */
    if (redisSetTimeout(c, tv) != REDIS_OK || redisEnableKeepAlive(c) != REDIS_OK) {
        snprintf(err, errlen, "%s: %s", hostport, c->errstr);
        redisFree(c);
        return NULL;
    }
    return c;
}

int cluster_backoff_ms(unsigned attempt)
{
    int ms = 100;
    for (unsigned i = 0; i < attempt && ms < 5000; i++)
        ms *= 2;
    if (ms > 5000)
        ms = 5000;
    int jitter = ms / 4;
    return ms - jitter + (jitter ? rand() % (2 * jitter + 1) : 0);
}

void cluster_new_epoch(char out[17])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    x ^= (uint64_t)getpid() << 32;
    /* splitmix64's finaliser */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    snprintf(out, 17, "%016llx", (unsigned long long)x);
}

/* ---- the payload: {"symbol":"S","last":..,"bid":..,"ask":..,"volume":..,
 * "open":..,"change":..,"change_pct":..,"seq":N,"ts":N,"src":"F"[,"stale":b]}
 * — our own encoding, so a strict reader of exactly that (no allocation, no
 * general JSON parser on the hot path). */

typedef struct cursor {
    const char *p, *end;
} cursor;

static int lit(cursor *c, const char *s)
{
    size_t n = strlen(s);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n))
        return -1;
    c->p += n;
    return 0;
}

static int str(cursor *c, char *out, size_t cap)
{
    if (lit(c, "\""))
        return -1;
    size_t n = 0;
    while (c->p < c->end && *c->p != '"') {
        if (*c->p == '\\' || n + 1 >= cap)
            return -1; /* names never need escaping */
        out[n++] = *c->p++;
    }
    out[n] = 0;
    return lit(c, "\"");
}

static int num(cursor *c, double *v)
{
    char tmp[48];
    size_t n = 0;
    while (c->p + n < c->end && n < sizeof(tmp) - 1 && c->p[n] && strchr("0123456789+-.eEinfa", c->p[n]))
        n++;
    if (!n)
        return -1;
    memcpy(tmp, c->p, n);
    tmp[n] = 0;
    char *e;
    *v = strtod(tmp, &e);
    if (e != tmp + n)
        return -1;
    c->p += n;
    return 0;
}

int cluster_parse_update(const char *p, size_t len, norm_quote *q, char *src, size_t srccap)
{
    cursor c = {p, p + len};
    double seq, ts, change, pct;
    memset(q, 0, sizeof(*q));
    if (lit(&c, "{\"symbol\":") || str(&c, q->symbol, sizeof(q->symbol)) || lit(&c, ",\"last\":") ||
        num(&c, &q->last) || lit(&c, ",\"bid\":") || num(&c, &q->bid) || lit(&c, ",\"ask\":") ||
        num(&c, &q->ask) || lit(&c, ",\"volume\":") || num(&c, &q->volume) ||
        lit(&c, ",\"open\":") || num(&c, &q->open) || lit(&c, ",\"change\":") || num(&c, &change) ||
        lit(&c, ",\"change_pct\":") || num(&c, &pct) || lit(&c, ",\"seq\":") || num(&c, &seq) ||
        lit(&c, ",\"ts\":") || num(&c, &ts) || lit(&c, ",\"src\":") || str(&c, src, srccap))
        return -1;
    if (!lit(&c, ",\"stale\":true"))
        q->stale = 1;
    else if (!lit(&c, ",\"stale\":false"))
        q->stale_cleared = 1;
    if (lit(&c, "}") || c.p != c.end || !(seq >= 1) || seq > 9e15 || !isfinite(ts))
        return -1;
    q->seq = (uint64_t)seq;
    q->ts_us = (int64_t)ts;
    q->source = src;
    return 0;
}

uint64_t cluster_payload_seq(const char *p, size_t len)
{
    const char *end = p + len;
    for (const char *s = p; s + 6 < end; s++) {
        if (!memcmp(s, "\"seq\":", 6)) {
            uint64_t v = 0;
            for (s += 6; s < end && *s >= '0' && *s <= '9'; s++)
                v = v * 10 + (uint64_t)(*s - '0');
            return v;
        }
    }
    return 0;
}
