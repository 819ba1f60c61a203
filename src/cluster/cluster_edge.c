/* cluster_edge.c — see cluster_edge.h.
 *
 * Three kinds of state, each with one owner:
 *   shared (per shard, under its lock): the loop's wishes (desired[id] and
 *     the ids that changed), the mailbox (per id a small queue of payloads in
 *     seq order), the names of newly announced symbols, state and counters;
 *   reader (per shard, its thread only): the connections, per id whether it
 *     is subscribed and the last seq it handed over, name → id;
 *   loop (the lws thread): per id its shard, whether its room is occupied,
 *     loading, stale, when its last value came.
 * The loop never waits on Redis: it takes what the reader left under a lock
 * held only for copies. */
#include "tickerd/cluster_edge.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <libwebsockets.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "tickerd/cfg.h"
#include "tickerd/cluster.h"
#include "tickerd/log.h"
#include "tickerd/symtab.h"
#include "tickerd/util.h"

#define CONNECT_TIMEOUT_MS 1000
#define EPOCH_CHECK_MS 1000 /* GET epoch on the command connection: liveness and FLUSHALL */
#define POLL_MS 200

typedef struct entry {
    uint64_t seq;
    uint16_t len;
    char enc[BCAST_ENC_MAX];
} entry;

/* One symbol's values in seq order, waiting for the loop. */
typedef struct vqueue {
    entry *e;
    uint32_t n, cap;
    uint8_t queued; /* on the shard's vorder list */
    uint8_t loaded; /* a load finished: the loop ends the symbol's loading */
} vqueue;

typedef struct rsym {
    uint64_t last;  /* last seq handed to the loop (0: none: load from the stream's end) */
    uint8_t subscribed;
    uint8_t want;
} rsym;

typedef struct shard {
    cluster_edge *e;
    int index;
    char addr[128];
    pthread_t thread;
    int started;
    int evfd;
    pthread_mutex_t lock;
    /* shared, under lock */
    uint8_t *desired, *changed_flag;
    char (*names)[SYMTAB_NAME_MAX];
    uint32_t *changed, nchanged;
    vqueue **q;
    uint32_t *vorder, nvorder;
    char (*newnames)[SYMTAB_NAME_MAX];
    uint32_t nnew;
    int stop;
    uint64_t epoch_gen;
    cluster_edge_shard_stats st;
    /* reader only */
    rsym *rs;
    symtab *byname;   /* names the reader knows an id for */
    uint32_t *byname_id;
    symtab *universe; /* names already announced to the loop */
    redisContext *sub, *cmd;
    /* loop only */
    uint64_t seen_gen;
    int up;
} shard;

struct cluster_edge {
    cluster_edge_opts o;
    norm *n;
    bcast *b;
    int src;
    shard *shards;
    int nshards;
    /* loop-side, by symbol id */
    int8_t *shard_of;
    uint8_t *occupied, *loading, *stale;
    int64_t *last_rx_us;
    entry *scratch; /* CLUSTER_EDGE_QUEUE_MAX */
    uint32_t *ids;
    char (*names)[SYMTAB_NAME_MAX];
    char epoch[17];
    cluster_edge_stats st;
};

const char *cluster_edge_state_name(int state)
{
    return state == CLUSTER_EDGE_UP ? "up" : state == CLUSTER_EDGE_NO_EPOCH ? "no_epoch" : "down";
}

/* ---- the loop's side of the room hook ---- */

static int edge_shard(cluster_edge *e, uint32_t id)
{
    if (e->shard_of[id] < 0)
        e->shard_of[id] = (int8_t)cluster_shard_of(bcast_symbol_name(e->b, id), e->nshards);
    return e->shard_of[id];
}

static void shard_wake(shard *s)
{
    uint64_t one = 1;
    ssize_t w = write(s->evfd, &one, sizeof(one));
    (void)w; /* a full counter still wakes the reader */
}

static void edge_room(void *arg, uint32_t id, int occupied)
{
    cluster_edge *e = arg;
    if (id >= e->o.max_symbols)
        return;
    shard *s = &e->shards[edge_shard(e, id)];
    e->occupied[id] = (uint8_t)occupied;
    if (occupied) {
        e->st.channels++;
        /* Hold new subscriptions back until the stream's recent values are
         * in (a value this edge kept from before may be old); with the shard
         * away, serve what it has (stale) instead of nothing. */
        if (s->up) {
            e->loading[id] = 1;
            bcast_symbol_set_loading(e->b, id, 1);
        }
    } else {
        e->st.channels--;
        e->loading[id] = 0; /* no member left to wait */
    }
    pthread_mutex_lock(&s->lock);
    s->desired[id] = (uint8_t)occupied;
    if (!s->names[id][0])
        snprintf(s->names[id], sizeof(s->names[id]), "%s", bcast_symbol_name(e->b, id));
    if (!s->changed_flag[id]) {
        s->changed_flag[id] = 1;
        s->changed[s->nchanged++] = id;
    }
    pthread_mutex_unlock(&s->lock);
    shard_wake(s);
}

/* ---- reader thread ---- */

static void reader_error(shard *s, const char *what, const char *detail)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s: %s%s", s->addr, what, detail ? detail : "");
    pthread_mutex_lock(&s->lock);
    s->st.errors++;
    size_t n = strnlen(buf, sizeof(s->st.error) - 1); /* cut, not overflowed */
    memcpy(s->st.error, buf, n);
    s->st.error[n] = 0;
    pthread_mutex_unlock(&s->lock);
}

static void reader_set_state(shard *s, int state)
{
    pthread_mutex_lock(&s->lock);
    int changed = s->st.state != state;
    s->st.state = state;
    pthread_mutex_unlock(&s->lock);
    if (changed)
        lws_cancel_service(s->e->o.ctx);
}

static void reader_drop(shard *s)
{
    if (s->sub)
        redisFree(s->sub);
    if (s->cmd)
        redisFree(s->cmd);
    s->sub = s->cmd = NULL;
    for (uint32_t id = 0; id < s->e->o.max_symbols; id++)
        s->rs[id].subscribed = 0;
    reader_set_state(s, CLUSTER_EDGE_DOWN);
}

/* Append one value to id's queue (caller holds the lock). */
static void queue_push(shard *s, uint32_t id, uint64_t seq, const char *p, size_t len)
{
    if (len == 0 || len >= BCAST_ENC_MAX)
        return;
    vqueue *q = s->q[id];
    if (!q && !(q = s->q[id] = calloc(1, sizeof(*q))))
        return;
    if (q->n == q->cap) {
        uint32_t cap = q->cap ? q->cap * 2 : 2;
        if (cap > CLUSTER_EDGE_QUEUE_MAX)
            cap = CLUSTER_EDGE_QUEUE_MAX;
        entry *ne = cap > q->cap ? realloc(q->e, (size_t)cap * sizeof(*ne)) : NULL;
        if (ne) {
            q->e = ne;
            q->cap = cap;
        } else {
            /* Full: the oldest goes (latest-value semantics), counted. */
            if (!q->n)
                return;
            memmove(q->e, q->e + 1, (size_t)(q->n - 1) * sizeof(*q->e));
            q->n--;
            s->st.overwritten++;
        }
    }
    entry *en = &q->e[q->n++];
    en->seq = seq;
    en->len = (uint16_t)len;
    memcpy(en->enc, p, len);
    if (!q->queued) {
        q->queued = 1;
        s->vorder[s->nvorder++] = id;
    }
}

static void queue_loaded(shard *s, uint32_t id)
{
    vqueue *q = s->q[id];
    if (!q && !(q = s->q[id] = calloc(1, sizeof(*q))))
        return;
    q->loaded = 1;
    if (!q->queued) {
        q->queued = 1;
        s->vorder[s->nvorder++] = id;
    }
}

/* Hand stream entries (an XRANGE/XREVRANGE reply) with seq > last over, in
 * seq order. Returns how many. */
static uint32_t reader_push_entries(shard *s, uint32_t id, redisReply *r, int reversed)
{
    uint32_t pushed = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return 0;
    pthread_mutex_lock(&s->lock);
    for (size_t k = 0; k < r->elements; k++) {
        redisReply *en = r->element[reversed ? r->elements - 1 - k : k];
        if (en->type != REDIS_REPLY_ARRAY || en->elements != 2)
            continue;
        redisReply *fv = en->element[1];
        if (fv->type != REDIS_REPLY_ARRAY || fv->elements < 2 || fv->element[1]->type != REDIS_REPLY_STRING)
            continue;
        const char *p = fv->element[1]->str;
        size_t len = fv->element[1]->len;
        uint64_t seq = cluster_payload_seq(p, len);
        if (!seq || seq <= s->rs[id].last)
            continue;
        queue_push(s, id, seq, p, len);
        s->rs[id].last = seq;
        pushed++;
    }
    s->st.filled += pushed;
    pthread_mutex_unlock(&s->lock);
    return pushed;
}

/* Read id's recent values from its stream: the last load_depth when this
 * edge holds none of it, else everything after the last it handed over (a
 * re-sync after a reconnect or a gap). 0, or -1 when the command failed. */
static int reader_load(shard *s, uint32_t id, const char *name)
{
    redisReply *r;
    if (!s->rs[id].last)
        r = redisCommand(s->cmd, "XREVRANGE " CLUSTER_KEY_STREAM "%s + - COUNT %u", name,
                         s->e->o.load_depth ? s->e->o.load_depth : 1);
    else
        r = redisCommand(s->cmd, "XRANGE " CLUSTER_KEY_STREAM "%s %llu-0 + COUNT %u", name,
                         (unsigned long long)s->rs[id].last + 1, CLUSTER_EDGE_QUEUE_MAX - 2);
    if (!r) {
        reader_error(s, "XRANGE: ", s->cmd->errstr);
        return -1;
    }
    reader_push_entries(s, id, r, !s->rs[id].last);
    freeReplyObject(r);
    pthread_mutex_lock(&s->lock);
    queue_loaded(s, id);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int reader_send(shard *s, const char *cmd, const char *arg)
{
    if (redisAppendCommand(s->sub, "%s %s", cmd, arg) != REDIS_OK)
        return -1;
    int done = 0;
    while (!done)
        if (redisBufferWrite(s->sub, &done) != REDIS_OK)
            return -1;
    return 0;
}

static int reader_subscribe(shard *s, uint32_t id, const char *name)
{
    char ch[64];
    snprintf(ch, sizeof(ch), CLUSTER_KEY_CHANNEL "%s", name);
    if (reader_send(s, "SUBSCRIBE", ch))
        return -1;
    s->rs[id].subscribed = 1;
    return 0;
}

/* Announce symbols of the universe the loop has not heard of. */
static void reader_announce(shard *s, const char *name, size_t len)
{
    char buf[SYMTAB_NAME_MAX];
    if (!len || len >= sizeof(buf))
        return;
    memcpy(buf, name, len);
    buf[len] = 0;
    int added = 0;
    if (symtab_intern(s->universe, buf, &added) == SYMTAB_NONE || !added)
        return;
    pthread_mutex_lock(&s->lock);
    if (s->nnew < s->e->o.max_symbols)
        snprintf(s->newnames[s->nnew++], SYMTAB_NAME_MAX, "%s", buf);
    pthread_mutex_unlock(&s->lock);
}

/* The epoch Redis holds now: 1 if one was read (in out), 0 if Redis has
 * none yet, -1 on failure. */
static int reader_get_epoch(shard *s, char out[17])
{
    redisReply *r = redisCommand(s->cmd, "GET " CLUSTER_KEY_EPOCH);
    if (!r) {
        reader_error(s, "GET epoch: ", s->cmd->errstr);
        return -1;
    }
    int rc = 0;
    if (r->type == REDIS_REPLY_STRING) {
        snprintf(out, 17, "%s", r->str);
        rc = 1;
    } else if (r->type != REDIS_REPLY_NIL) {
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

/* Take an epoch: a different one than before means every seq starts over
 * (Redis restarted empty or was flushed): forget what was handed over and
 * what waits in the mailbox, so nothing of the old epoch follows the change. */
static void reader_take_epoch(shard *s, const char *epoch)
{
    pthread_mutex_lock(&s->lock);
    if (strcmp(s->st.epoch, epoch)) {
        if (s->st.epoch[0])
            s->st.epochs++;
        snprintf(s->st.epoch, sizeof(s->st.epoch), "%s", epoch);
        s->epoch_gen++;
        for (uint32_t i = 0; i < s->nvorder; i++) {
            vqueue *q = s->q[s->vorder[i]];
            q->n = 0;
            q->queued = 0;
            q->loaded = 0;
        }
        s->nvorder = 0;
        for (uint32_t id = 0; id < s->e->o.max_symbols; id++)
            s->rs[id].last = 0;
    }
    pthread_mutex_unlock(&s->lock);
}

/* Apply the loop's wishes: subscribe what a room wants, unsubscribe what no
 * room holds any more. The load follows the subscribe's confirmation, so no
 * value published in between is missed. */
static int reader_apply_wishes(shard *s)
{
    for (;;) {
        uint32_t id;
        uint8_t want;
        char name[SYMTAB_NAME_MAX];
        pthread_mutex_lock(&s->lock);
        if (!s->nchanged) {
            pthread_mutex_unlock(&s->lock);
            return 0;
        }
        id = s->changed[--s->nchanged];
        s->changed_flag[id] = 0;
        want = s->desired[id];
        memcpy(name, s->names[id], sizeof(name));
        pthread_mutex_unlock(&s->lock);

        s->rs[id].want = want;
        int added = 0;
        uint32_t k = symtab_intern(s->byname, name, &added);
        if (k != SYMTAB_NONE)
            s->byname_id[k] = id;
        if (!s->sub)
            continue; /* applied at the next connect */
        char ch[64];
        snprintf(ch, sizeof(ch), CLUSTER_KEY_CHANNEL "%s", name);
        if (want && !s->rs[id].subscribed) {
            if (reader_subscribe(s, id, name))
                return -1;
        } else if (!want && s->rs[id].subscribed) {
            if (reader_send(s, "UNSUBSCRIBE", ch))
                return -1;
            s->rs[id].subscribed = 0;
            s->rs[id].last = 0; /* not followed any more: the next room loads afresh */
        }
    }
}

static uint32_t reader_id_of_channel(shard *s, const char *ch, size_t len)
{
    size_t plen = strlen(CLUSTER_KEY_CHANNEL);
    char name[SYMTAB_NAME_MAX];
    if (len <= plen || len - plen >= sizeof(name) || memcmp(ch, CLUSTER_KEY_CHANNEL, plen))
        return UINT32_MAX;
    memcpy(name, ch + plen, len - plen);
    name[len - plen] = 0;
    uint32_t k = symtab_find(s->byname, name);
    return k == SYMTAB_NONE ? UINT32_MAX : s->byname_id[k];
}

/* One reply on the subscriber connection. */
static int reader_on_push(shard *s, redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    const char *kind = r->element[0]->str;
    redisReply *ch = r->element[1], *p = r->element[2];
    if (ch->type != REDIS_REPLY_STRING)
        return 0;
    if (!strcmp(kind, "subscribe")) {
        uint32_t id = reader_id_of_channel(s, ch->str, ch->len);
        if (id != UINT32_MAX && s->rs[id].subscribed)
            return reader_load(s, id, ch->str + strlen(CLUSTER_KEY_CHANNEL));
        return 0;
    }
    if (strcmp(kind, "message") || p->type != REDIS_REPLY_STRING)
        return 0;
    if (!strcmp(ch->str, CLUSTER_KEY_SYMBOLS)) {
        reader_announce(s, p->str, p->len);
        return 0;
    }
    uint32_t id = reader_id_of_channel(s, ch->str, ch->len);
    if (id == UINT32_MAX || !s->rs[id].subscribed)
        return 0; /* unsubscribed meanwhile */
    uint64_t seq = cluster_payload_seq(p->str, p->len);
    rsym *rs = &s->rs[id];
    if (!seq || seq <= rs->last)
        return 0; /* the load already had it */
    if (rs->last && seq > rs->last + 1) {
        /* Values missed (Redis dropped us, a reconnect): from the stream. */
        redisReply *x = redisCommand(s->cmd, "XRANGE " CLUSTER_KEY_STREAM "%s %llu-0 %llu-0",
                                     ch->str + strlen(CLUSTER_KEY_CHANNEL),
                                     (unsigned long long)rs->last + 1, (unsigned long long)seq - 1);
        if (!x) {
            reader_error(s, "XRANGE: ", s->cmd->errstr);
            return -1;
        }
        reader_push_entries(s, id, x, 0);
        freeReplyObject(x);
    }
    pthread_mutex_lock(&s->lock);
    queue_push(s, id, seq, p->str, p->len);
    s->st.received++;
    pthread_mutex_unlock(&s->lock);
    rs->last = seq;
    return 0;
}

/* Wait ms for the eventfd (or stop); returns the stop flag. */
static int reader_sleep(shard *s, int ms)
{
    struct pollfd pfd = {.fd = s->evfd, .events = POLLIN};
    if (poll(&pfd, 1, ms) > 0) {
        uint64_t v;
        ssize_t rd = read(s->evfd, &v, sizeof(v));
        (void)rd;
    }
    pthread_mutex_lock(&s->lock);
    int stop = s->stop;
    pthread_mutex_unlock(&s->lock);
    return stop;
}

/* Connect both connections and subscribe: 0 up, 1 no epoch yet, -1 failed. */
static int reader_connect(shard *s)
{
    char err[512];
    s->cmd = cluster_connect(s->addr, CONNECT_TIMEOUT_MS, err, sizeof(err));
    s->sub = s->cmd ? cluster_connect(s->addr, CONNECT_TIMEOUT_MS, err, sizeof(err)) : NULL;
    if (!s->cmd || !s->sub) {
        reader_error(s, "connect: ", err + strlen(s->addr) + (strlen(err) > strlen(s->addr) ? 2 : 0));
        reader_drop(s);
        return -1;
    }
    char epoch[17];
    int got = reader_get_epoch(s, epoch);
    if (got < 0) {
        reader_drop(s);
        return -1;
    }
    if (!got) {
        /* No ingest has written to this Redis yet: wait for its epoch
         * before following anything (its seqs would start a new epoch). */
        redisFree(s->sub);
        s->sub = NULL;
        reader_set_state(s, CLUSTER_EDGE_NO_EPOCH);
        return 1;
    }
    reader_take_epoch(s, epoch);
    if (reader_send(s, "SUBSCRIBE", CLUSTER_KEY_SYMBOLS))
        goto fail;
    redisReply *m = redisCommand(s->cmd, "SMEMBERS " CLUSTER_KEY_SYMBOLS);
    if (!m)
        goto fail;
    if (m->type == REDIS_REPLY_ARRAY)
        for (size_t k = 0; k < m->elements; k++)
            if (m->element[k]->type == REDIS_REPLY_STRING)
                reader_announce(s, m->element[k]->str, m->element[k]->len);
    freeReplyObject(m);
    for (uint32_t id = 0; id < s->e->o.max_symbols; id++) {
        if (!s->rs[id].want)
            continue;
        char name[SYMTAB_NAME_MAX];
        pthread_mutex_lock(&s->lock);
        memcpy(name, s->names[id], sizeof(name));
        pthread_mutex_unlock(&s->lock);
        if (reader_subscribe(s, id, name))
            goto fail;
    }
    pthread_mutex_lock(&s->lock);
    s->st.connects++;
    s->st.error[0] = 0;
    pthread_mutex_unlock(&s->lock);
    reader_set_state(s, CLUSTER_EDGE_UP);
    return 0;
fail:
    reader_error(s, "subscribe: ", s->sub ? s->sub->errstr : "");
    reader_drop(s);
    return -1;
}

static void *reader_main(void *arg)
{
    shard *s = arg;
    unsigned attempt = 0;
    int64_t next_check = 0;
    while (1) {
        pthread_mutex_lock(&s->lock);
        int stop = s->stop;
        pthread_mutex_unlock(&s->lock);
        if (stop)
            break;
        if (!s->sub) {
            /* Wishes are remembered while away, applied at the connect. */
            reader_apply_wishes(s);
            if (s->cmd) {
                redisFree(s->cmd);
                s->cmd = NULL;
            }
            int rc = reader_connect(s);
            if (rc) {
                if (rc > 0) {
                    redisFree(s->cmd);
                    s->cmd = NULL;
                }
                if (reader_sleep(s, rc > 0 ? POLL_MS : cluster_backoff_ms(attempt++)))
                    break;
                continue;
            }
            attempt = 0;
            lws_cancel_service(s->e->o.ctx);
        }
        struct pollfd pfd[2] = {{.fd = s->sub->fd, .events = POLLIN}, {.fd = s->evfd, .events = POLLIN}};
        int n = poll(pfd, 2, POLL_MS);
        int fail = 0;
        if (n < 0 && errno != EINTR)
            fail = 1;
        if (n > 0 && (pfd[1].revents & POLLIN)) {
            uint64_t v;
            ssize_t rd = read(s->evfd, &v, sizeof(v));
            (void)rd;
        }
        if (!fail && reader_apply_wishes(s))
            fail = 1;
        if (!fail && n > 0 && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            if (redisBufferRead(s->sub) != REDIS_OK) {
                reader_error(s, "subscriber connection lost: ", s->sub->errstr);
                fail = 1;
            }
            void *reply;
            while (!fail && redisGetReplyFromReader(s->sub, &reply) == REDIS_OK && reply) {
                if (reader_on_push(s, reply))
                    fail = 1;
                freeReplyObject(reply);
            }
            lws_cancel_service(s->e->o.ctx);
        }
        int64_t now = tk_mono_us() / 1000;
        if (!fail && now >= next_check) {
            next_check = now + EPOCH_CHECK_MS;
            char epoch[17];
            int got = reader_get_epoch(s, epoch);
            if (got < 0) {
                fail = 1;
            } else if (got == 0 || strcmp(epoch, s->st.epoch)) {
                /* Flushed (or restarted between two checks): start over. */
                reader_error(s, "epoch changed", NULL);
                fail = 1;
            }
        }
        if (fail)
            reader_drop(s);
    }
    reader_drop(s);
    return NULL;
}

/* ---- loop side ---- */

cluster_edge *cluster_edge_create(const cluster_edge_opts *o, norm *n, bcast *b, char *err,
                                  size_t errlen)
{
    cluster_edge *e = calloc(1, sizeof(*e));
    if (!e)
        goto oom;
    e->o = *o;
    e->n = n;
    e->b = b;
    e->nshards = o->nshards;
    uint32_t m = o->max_symbols ? o->max_symbols : 1;
    e->o.max_symbols = m;
    e->src = norm_source_add(n, "redis");
    e->shard_of = malloc(m);
    e->occupied = calloc(m, 1);
    e->loading = calloc(m, 1);
    e->stale = calloc(m, 1);
    e->last_rx_us = calloc(m, sizeof(*e->last_rx_us));
    e->scratch = malloc(CLUSTER_EDGE_QUEUE_MAX * sizeof(*e->scratch));
    e->ids = malloc(m * sizeof(*e->ids));
    e->names = malloc((size_t)m * sizeof(*e->names));
    e->shards = calloc((size_t)o->nshards, sizeof(*e->shards));
    if (!e->shard_of || !e->occupied || !e->loading || !e->stale || !e->last_rx_us || !e->scratch ||
        !e->ids || !e->names || !e->shards || e->src < 0)
        goto oom;
    memset(e->shard_of, 0xff, m);
    for (int i = 0; i < o->nshards; i++) {
        shard *s = &e->shards[i];
        s->e = e;
        s->index = i;
        s->evfd = -1;
        snprintf(s->addr, sizeof(s->addr), "%s", o->redis[i]);
        pthread_mutex_init(&s->lock, NULL);
        s->desired = calloc(m, 1);
        s->changed_flag = calloc(m, 1);
        s->names = calloc(m, sizeof(*s->names));
        s->changed = malloc(m * sizeof(*s->changed));
        s->q = calloc(m, sizeof(*s->q));
        s->vorder = malloc(m * sizeof(*s->vorder));
        s->newnames = malloc((size_t)m * sizeof(*s->newnames));
        s->rs = calloc(m, sizeof(*s->rs));
        s->byname = symtab_new(m);
        s->byname_id = malloc(m * sizeof(*s->byname_id));
        s->universe = symtab_new(m);
        s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (!s->desired || !s->changed_flag || !s->names || !s->changed || !s->q || !s->vorder ||
            !s->newnames || !s->rs || !s->byname || !s->byname_id || !s->universe || s->evfd < 0)
            goto oom;
    }
    bcast_set_room_hook(b, edge_room, e);
    return e;
oom:
    snprintf(err, errlen, "cluster edge: out of memory");
    cluster_edge_destroy(e);
    return NULL;
}

int cluster_edge_start(cluster_edge *e)
{
    for (int i = 0; i < e->nshards; i++) {
        if (pthread_create(&e->shards[i].thread, NULL, reader_main, &e->shards[i]))
            return -1;
        e->shards[i].started = 1;
    }
    return 0;
}

void cluster_edge_destroy(cluster_edge *e)
{
    if (!e)
        return;
    if (e->b)
        bcast_set_room_hook(e->b, NULL, NULL);
    for (int i = 0; e->shards && i < e->nshards; i++) {
        shard *s = &e->shards[i];
        pthread_mutex_lock(&s->lock);
        s->stop = 1;
        pthread_mutex_unlock(&s->lock);
        if (s->evfd >= 0)
            shard_wake(s);
        if (s->started)
            pthread_join(s->thread, NULL);
        if (s->q)
            for (uint32_t id = 0; id < e->o.max_symbols; id++)
                if (s->q[id]) {
                    free(s->q[id]->e);
                    free(s->q[id]);
                }
        free(s->q);
        free(s->desired);
        free(s->changed_flag);
        free(s->names);
        free(s->changed);
        free(s->vorder);
        free(s->newnames);
        free(s->rs);
        symtab_free(s->byname);
        free(s->byname_id);
        symtab_free(s->universe);
        if (s->evfd >= 0)
            close(s->evfd);
        pthread_mutex_destroy(&s->lock);
    }
    free(e->shards);
    free(e->shard_of);
    free(e->occupied);
    free(e->loading);
    free(e->stale);
    free(e->last_rx_us);
    free(e->scratch);
    free(e->ids);
    free(e->names);
    free(e);
}

/* Re-publish symbol id's value in place (same seq) with stale set or cleared. */
static void edge_restamp(cluster_edge *e, uint32_t id, int stale)
{
    size_t len;
    const char *enc = bcast_symbol_json(e->b, id, &len);
    norm_quote q;
    char src[SYMTAB_NAME_MAX];
    if (!enc || cluster_parse_update(enc, len, &q, src, sizeof(src)))
        return;
    if (stale == q.stale)
        return;
    q.stale = (uint8_t)stale;
    q.stale_cleared = (uint8_t)!stale;
    norm_apply_external(e->n, &q);
}

/* The cluster epoch: the shards' epochs as one (a restart of any shard
 * changes it), or "" until every shard has one. */
static void edge_update_epoch(cluster_edge *e, char eps[][17])
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a 64 offset basis (the documented hash: an outside tool can compute it) */
    for (int i = 0; i < e->nshards; i++) {
        if (!eps[i][0])
            return;
        for (const char *p = eps[i]; *p; p++) {
            h ^= (unsigned char)*p;
            h *= 1099511628211ull;
        }
    }
    char epoch[17];
    if (e->nshards == 1)
        memcpy(epoch, eps[0], sizeof(epoch));
    else
        snprintf(epoch, sizeof(epoch), "%016llx", (unsigned long long)h);
    epoch[16] = 0;
    if (strcmp(epoch, e->epoch)) {
        snprintf(e->epoch, sizeof(e->epoch), "%s", epoch);
        bcast_set_epoch(e->b, epoch);
        log_info("cluster: epoch %s", epoch);
    }
}

static void edge_publish(cluster_edge *e, uint32_t id, const entry *en, int64_t now)
{
    uint64_t cur = bcast_symbol_seq(e->b, id);
    if (cur && en->seq <= cur) {
        e->st.duplicates++;
        return;
    }
    norm_quote q;
    char src[SYMTAB_NAME_MAX];
    if (cluster_parse_update(en->enc, en->len, &q, src, sizeof(src)) || q.seq != en->seq)
        return;
    if (cur && en->seq > cur + 1)
        e->st.gaps++;
    q.enc = en->enc;
    q.enc_len = en->len;
    if (e->stale[id]) {
        e->stale[id] = 0;
        e->st.stale--;
        if (!q.stale) {
            /* This edge had marked it stale: say it is fresh again. */
            q.stale_cleared = 1;
            q.enc = NULL;
            q.enc_len = 0;
        }
    }
    if (norm_apply_external(e->n, &q) != UINT32_MAX) {
        e->st.published++;
        e->last_rx_us[id] = now;
    }
}

void cluster_edge_deliver(cluster_edge *e)
{
    int64_t now = tk_now_us();
    char eps[CFG_CLUSTER_MAX_REDIS][17];
    for (int i = 0; i < e->nshards; i++) {
        shard *s = &e->shards[i];
        pthread_mutex_lock(&s->lock);
        int up = s->st.state == CLUSTER_EDGE_UP;
        uint64_t gen = s->epoch_gen;
        memcpy(eps[i], s->st.epoch, sizeof(eps[i]));
        uint32_t nnew = s->nnew;
        memcpy(e->names, s->newnames, (size_t)nnew * sizeof(*e->names));
        s->nnew = 0;
        uint32_t nids = s->nvorder;
        memcpy(e->ids, s->vorder, (size_t)nids * sizeof(*e->ids));
        for (uint32_t k = 0; k < nids; k++)
            s->q[e->ids[k]]->queued = 0;
        s->nvorder = 0;
        pthread_mutex_unlock(&s->lock);

        s->up = up;
        /* New epoch first: nothing of the old one may follow it. */
        if (gen != s->seen_gen) {
            int had = s->seen_gen != 0;
            s->seen_gen = gen;
            if (had) {
                uint32_t nsym = bcast_symbol_count(e->b);
                for (uint32_t id = 0; id < nsym && id < e->o.max_symbols; id++) {
                    if (edge_shard(e, id) != i)
                        continue;
                    bcast_symbol_reset(e->b, id, BCAST_RESET_EPOCH);
                    if (e->stale[id]) {
                        e->stale[id] = 0;
                        e->st.stale--;
                    }
                    e->st.resets++;
                }
                log_warn("cluster: shard %s has a new epoch %s (Redis restarted empty?): its "
                         "symbols reset",
                         s->addr, eps[i]);
            }
        }
        /* Symbols of the universe: made known (a "*" client takes them). */
        for (uint32_t k = 0; k < nnew; k++) {
            if (norm_declare(e->n, (uint16_t)e->src, e->names[k], NULL))
                log_warn("cluster: symbol %s refused (normalizer.max_symbols?)", e->names[k]);
        }
        for (uint32_t k = 0; k < nids; k++) {
            uint32_t id = e->ids[k];
            pthread_mutex_lock(&s->lock);
            vqueue *q = s->q[id];
            uint32_t n = q->n;
            memcpy(e->scratch, q->e, (size_t)n * sizeof(*q->e));
            int loaded = q->loaded;
            q->n = 0;
            q->loaded = 0;
            if (q->cap > 4 && !q->queued) {
                /* A load's room is given back: a quiet queue stays small. */
                free(q->e);
                q->e = NULL;
                q->cap = 0;
            }
            pthread_mutex_unlock(&s->lock);
            if (id >= bcast_symbol_count(e->b))
                continue;
            for (uint32_t j = 0; j < n; j++)
                edge_publish(e, id, &e->scratch[j], now);
            if (loaded && e->loading[id]) {
                e->loading[id] = 0;
                bcast_symbol_set_loading(e->b, id, 0);
            }
        }
    }
    edge_update_epoch(e, eps);
}

void cluster_edge_tick(cluster_edge *e, int64_t now_us)
{
    cluster_edge_deliver(e);
    int64_t silent = ((int64_t)e->o.stale_after_ms + 1000) * 1000;
    uint32_t nsym = bcast_symbol_count(e->b);
    for (uint32_t id = 0; id < nsym && id < e->o.max_symbols; id++) {
        shard *s = &e->shards[edge_shard(e, id)];
        if (!s->up && e->loading[id]) {
            /* Away: the waiting subscriptions get what this edge has. */
            e->loading[id] = 0;
            bcast_symbol_set_loading(e->b, id, 0);
        }
        if (e->stale[id] || !bcast_symbol_seq(e->b, id))
            continue;
        if (!s->up || (e->last_rx_us[id] && now_us - e->last_rx_us[id] > silent)) {
            edge_restamp(e, id, 1);
            e->stale[id] = 1;
            e->st.stale++;
            e->st.stale_marks++;
        }
    }
}

int cluster_edge_shards(const cluster_edge *e) { return e->nshards; }
const char *cluster_edge_address(const cluster_edge *e, int i) { return e->shards[i].addr; }
const cluster_edge_stats *cluster_edge_get_stats(const cluster_edge *e) { return &e->st; }

void cluster_edge_get_shard_stats(cluster_edge *e, int i, cluster_edge_shard_stats *out)
{
    shard *s = &e->shards[i];
    pthread_mutex_lock(&s->lock);
    *out = s->st;
    pthread_mutex_unlock(&s->lock);
}
