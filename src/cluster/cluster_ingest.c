/* cluster_ingest.c — see cluster_ingest.h.
 *
 * Per shard: a table of pending values indexed by symbol id (a slot is
 * allocated at a symbol's first value, then reused: no allocation per
 * update), the ids with a value pending in arrival order, and one writer
 * thread. The thread takes up to WRITE_BATCH values at a time under the lock,
 * writes them as one pipeline of EVALSHA, and puts back whatever Redis did
 * not confirm (unless a newer value took the slot meanwhile). */
#include "tickerd/cluster_ingest.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tickerd/bcast.h"
#include "tickerd/cluster.h"
#include "tickerd/symtab.h"

#define WRITE_BATCH 256
#define CONNECT_TIMEOUT_MS 1000

/* INCR + XADD + PUBLISH in one script, so the stream and the channel carry
 * the same seq; KEYS: seq, stream, last, symbols; ARGV: the encoding before
 * and after its seq, ts, src, maxlen, channel, symbol, an epoch to create if
 * Redis has none (a Redis restarted empty starts a new epoch). A value equal
 * to the last one written from the same source (same ts, same bytes), or
 * older than it, is a second ingest's copy: not numbered again (returns 0). */
static const char LUA[] =
    "redis.call('SET', '" CLUSTER_KEY_EPOCH "', ARGV[8], 'NX')\n"
    "local v = ARGV[1] .. ARGV[2]\n"
    "local ts = tonumber(ARGV[3])\n"
    "local last = redis.call('HMGET', KEYS[3], 'src', 'ts', 'v')\n"
    "if last[1] == ARGV[4] and last[2] then\n"
    "  local lts = tonumber(last[2])\n"
    "  if ts < lts or (ts == lts and last[3] == v) then return 0 end\n"
    "end\n"
    "local seq = redis.call('INCR', KEYS[1])\n"
    "local p = ARGV[1] .. seq .. ARGV[2]\n"
    "redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], seq .. '-0', 'v', p)\n"
    "redis.call('HSET', KEYS[3], 'src', ARGV[4], 'ts', ARGV[3], 'v', v)\n"
    "if redis.call('SADD', KEYS[4], ARGV[7]) == 1 then\n"
    "  redis.call('PUBLISH', '" CLUSTER_KEY_SYMBOLS "', ARGV[7])\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[6], p)\n"
    "return seq\n";

typedef struct pending_value {
    char symbol[SYMTAB_NAME_MAX];
    char src[SYMTAB_NAME_MAX];
    char enc[BCAST_ENC_MAX]; /* the encoding without its seq digits */
    uint16_t len, split;     /* enc[0..split) goes before the seq, enc[split..len) after */
    int64_t ts_us;
    uint8_t full;
} pending_value;

typedef struct shard {
    cluster_ingest *ci;
    int index;
    char addr[128];
    pthread_t thread;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pending_value **slots; /* by symbol id; NULL until its first value */
    uint32_t *order;       /* ids with full set, in arrival order */
    uint32_t norder;
    int stop;
    cluster_shard_stats st; /* under lock */
} shard;

struct cluster_ingest {
    shard *shards;
    int n;
    uint32_t depth, max_symbols;
    char maxlen[16];
};

cluster_ingest *cluster_ingest_create(const char (*redis)[128], int n, uint32_t depth,
                                      uint32_t max_symbols, char *err, size_t errlen)
{
    cluster_ingest *ci = calloc(1, sizeof(*ci));
    if (!ci || n < 1) {
        snprintf(err, errlen, n < 1 ? "cluster.redis: no shard" : "out of memory");
        free(ci);
        return NULL;
    }
    ci->n = n;
    ci->depth = depth ? depth : 1;
    ci->max_symbols = max_symbols;
    snprintf(ci->maxlen, sizeof(ci->maxlen), "%u", ci->depth);
    ci->shards = calloc((size_t)n, sizeof(*ci->shards));
    if (!ci->shards)
        goto oom;
    for (int i = 0; i < n; i++) {
        shard *s = &ci->shards[i];
        s->ci = ci;
        s->index = i;
        snprintf(s->addr, sizeof(s->addr), "%s", redis[i]);
        s->slots = calloc(max_symbols ? max_symbols : 1, sizeof(*s->slots));
        s->order = calloc(max_symbols ? max_symbols : 1, sizeof(*s->order));
        if (!s->slots || !s->order)
            goto oom;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->cond, NULL);
    }
    return ci;
oom:
    snprintf(err, errlen, "out of memory");
    if (ci->shards)
        for (int i = 0; i < n; i++) {
            free(ci->shards[i].slots);
            free(ci->shards[i].order);
        }
    free(ci->shards);
    free(ci);
    return NULL;
}

void cluster_ingest_put(cluster_ingest *ci, uint32_t id, const norm_quote *q, const char *enc,
                        size_t len)
{
    if (id >= ci->max_symbols || !enc || len >= BCAST_ENC_MAX)
        return;
    /* Cut the seq's digits out: Redis writes its own there. */
    const char *at = NULL;
    for (size_t i = 0; i + 7 <= len; i++)
        if (!memcmp(enc + i, ",\"seq\":", 7)) {
            at = enc + i + 7;
            break;
        }
    if (!at)
        return;
    const char *after = at;
    while (after < enc + len && *after >= '0' && *after <= '9')
        after++;
    shard *s = &ci->shards[cluster_shard_of(q->symbol, ci->n)];
    pthread_mutex_lock(&s->lock);
    pending_value *v = s->slots[id];
    if (!v)
        v = s->slots[id] = calloc(1, sizeof(*v)); /* once per symbol */
    if (!v) {
        s->st.errors++;
        pthread_mutex_unlock(&s->lock);
        return;
    }
    if (v->full) {
        s->st.overwritten++;
    } else {
        v->full = 1;
        s->order[s->norder++] = id;
        s->st.pending++;
    }
    snprintf(v->symbol, sizeof(v->symbol), "%s", q->symbol);
    snprintf(v->src, sizeof(v->src), "%s", q->source ? q->source : "?");
    v->split = (uint16_t)(at - enc);
    memcpy(v->enc, enc, v->split);
    memcpy(v->enc + v->split, after, (size_t)(enc + len - after));
    v->len = (uint16_t)(v->split + (enc + len - after));
    v->ts_us = q->ts_us;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void shard_error(shard *s, const char *what)
{
    pthread_mutex_lock(&s->lock);
    s->st.errors++;
    s->st.connected = 0;
    size_t n = strnlen(what, sizeof(s->st.error) - 1); /* cut, not overflowed */
    memcpy(s->st.error, what, n);
    s->st.error[n] = 0;
    pthread_mutex_unlock(&s->lock);
}

/* Wait ms or until stopped; returns the stop flag. */
static int shard_sleep(shard *s, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    while (!s->stop && pthread_cond_timedwait(&s->cond, &s->lock, &until) != ETIMEDOUT)
        ;
    int stop = s->stop;
    pthread_mutex_unlock(&s->lock);
    return stop;
}

/* Connect, load the script and make sure the epoch exists. */
static redisContext *shard_connect(shard *s, char *sha, size_t shacap, const char *epoch)
{
    char err[512];
    redisContext *c = cluster_connect(s->addr, CONNECT_TIMEOUT_MS, err, sizeof(err));
    if (!c) {
        shard_error(s, err);
        return NULL;
    }
    redisReply *r = redisCommand(c, "SCRIPT LOAD %s", LUA);
    if (!r || r->type != REDIS_REPLY_STRING) {
        snprintf(err, sizeof(err), "%s: SCRIPT LOAD: %s", s->addr,
                 r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
        goto fail;
    }
    snprintf(sha, shacap, "%s", r->str);
    freeReplyObject(r);
    r = redisCommand(c, "SET %s %s NX", CLUSTER_KEY_EPOCH, epoch);
    if (r)
        freeReplyObject(r);
    r = redisCommand(c, "GET %s", CLUSTER_KEY_EPOCH);
    if (!r || r->type != REDIS_REPLY_STRING) {
        snprintf(err, sizeof(err), "%s: GET %s failed", s->addr, CLUSTER_KEY_EPOCH);
        goto fail;
    }
    pthread_mutex_lock(&s->lock);
    snprintf(s->st.epoch, sizeof(s->st.epoch), "%s", r->str);
    s->st.connected = 1;
    s->st.connects++;
    s->st.error[0] = 0;
    pthread_mutex_unlock(&s->lock);
    freeReplyObject(r);
    return c;
fail:
    if (r)
        freeReplyObject(r);
    redisFree(c);
    shard_error(s, err);
    return NULL;
}

typedef struct batch_item {
    uint32_t id;
    pending_value v;
} batch_item;

static void *shard_main(void *arg)
{
    shard *s = arg;
    cluster_ingest *ci = s->ci;
    batch_item *batch = malloc(WRITE_BATCH * sizeof(*batch));
    redisContext *c = NULL;
    char sha[64] = "";
    char epoch[17];
    unsigned attempt = 0;
    if (!batch) {
        shard_error(s, "out of memory");
        return NULL;
    }
    while (1) {
        if (!c) {
            cluster_new_epoch(epoch);
            c = shard_connect(s, sha, sizeof(sha), epoch);
            if (!c) {
                if (shard_sleep(s, cluster_backoff_ms(attempt++)))
                    break;
                continue;
            }
            attempt = 0;
        }
        /* Take a batch. */
        pthread_mutex_lock(&s->lock);
        while (!s->stop && !s->norder)
            pthread_cond_wait(&s->cond, &s->lock);
        if (s->stop) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        uint32_t n = s->norder < WRITE_BATCH ? s->norder : WRITE_BATCH;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t id = s->order[i];
            batch[i].id = id;
            batch[i].v = *s->slots[id];
            s->slots[id]->full = 0;
        }
        memmove(s->order, s->order + n, (s->norder - n) * sizeof(*s->order));
        s->norder -= n;
        s->st.pending -= n;
        pthread_mutex_unlock(&s->lock);

        /* One pipeline: every command appended, then every reply read. */
        for (uint32_t i = 0; i < n; i++) {
            const pending_value *v = &batch[i].v;
            char k_seq[64], k_stream[64], k_last[64], ch[64], ts[24];
            snprintf(k_seq, sizeof(k_seq), CLUSTER_KEY_SEQ "%s", v->symbol);
            snprintf(k_stream, sizeof(k_stream), CLUSTER_KEY_STREAM "%s", v->symbol);
            snprintf(k_last, sizeof(k_last), CLUSTER_KEY_LAST "%s", v->symbol);
            snprintf(ch, sizeof(ch), CLUSTER_KEY_CHANNEL "%s", v->symbol);
            snprintf(ts, sizeof(ts), "%lld", (long long)v->ts_us);
            const char *argv[] = {"EVALSHA", sha, "4", k_seq, k_stream, k_last,
                                  CLUSTER_KEY_SYMBOLS, v->enc, v->enc + v->split, ts, v->src,
                                  ci->maxlen, ch, v->symbol, epoch};
            size_t argl[15];
            for (int k = 0; k < 15; k++)
                argl[k] = strlen(argv[k]);
            argl[7] = v->split;
            argl[8] = (size_t)(v->len - v->split);
            redisAppendCommandArgv(c, 15, argv, argl);
        }
        uint32_t done = 0, published = 0, dups = 0;
        const char *failure = NULL;
        char why[512];
        for (; done < n; done++) {
            redisReply *r = NULL;
            if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) {
                snprintf(why, sizeof(why), "%s: %s", s->addr, c->errstr);
                failure = why;
                break;
            }
            if (r->type == REDIS_REPLY_INTEGER) {
                if (r->integer > 0)
                    published++;
                else
                    dups++;
            } else {
                /* NOSCRIPT (a restarted Redis) or a script error: reconnect
                 * (which loads the script again) and write it again. */
                snprintf(why, sizeof(why), "%s: %s", s->addr,
                         r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
                failure = why;
                freeReplyObject(r);
                break;
            }
            freeReplyObject(r);
        }
        pthread_mutex_lock(&s->lock);
        s->st.published += published;
        s->st.duplicates += dups;
        if (failure) {
            /* Put back what was not confirmed, unless a newer value came. */
            for (uint32_t i = done; i < n; i++) {
                uint32_t id = batch[i].id;
                pending_value *slot = s->slots[id];
                if (!slot->full) {
                    *slot = batch[i].v;
                    slot->full = 1;
                    s->order[s->norder++] = id;
                    s->st.pending++;
                }
            }
        }
        pthread_mutex_unlock(&s->lock);
        if (failure) {
            shard_error(s, failure);
            redisFree(c);
            c = NULL;
        }
    }
    if (c)
        redisFree(c);
    free(batch);
    return NULL;
}

int cluster_ingest_start(cluster_ingest *ci)
{
    for (int i = 0; i < ci->n; i++) {
        if (pthread_create(&ci->shards[i].thread, NULL, shard_main, &ci->shards[i]))
            return -1;
        ci->shards[i].started = 1;
    }
    return 0;
}

void cluster_ingest_destroy(cluster_ingest *ci)
{
    if (!ci)
        return;
    for (int i = 0; i < ci->n; i++) {
        shard *s = &ci->shards[i];
        pthread_mutex_lock(&s->lock);
        s->stop = 1;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        if (s->started)
            pthread_join(s->thread, NULL);
        for (uint32_t id = 0; id < ci->max_symbols; id++)
            free(s->slots[id]);
        free(s->slots);
        free(s->order);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->cond);
    }
    free(ci->shards);
    free(ci);
}

int cluster_ingest_shards(const cluster_ingest *ci) { return ci->n; }
const char *cluster_ingest_address(const cluster_ingest *ci, int shard)
{
    return ci->shards[shard].addr;
}

void cluster_ingest_get_stats(cluster_ingest *ci, int i, cluster_shard_stats *out)
{
    shard *s = &ci->shards[i];
    pthread_mutex_lock(&s->lock);
    *out = s->st;
    pthread_mutex_unlock(&s->lock);
}
