/* bcast.c — see bcast.h.
 *
 * Data layout: a symbol owns a room (array of members); a client owns an array
 * of subscriptions. Member and subscription point at each other by index
 * (member.sub, sub.room_pos), so both sides swap-remove in O(1). Pending state
 * lives in the subscription as two bits (snap, pending) with per-client counts,
 * so "does this client have anything to send" is O(1) and a frame is built by
 * one walk over the client's own subscriptions. */
#include "tickerd/bcast.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bcast_member {
    bcast_client *c;
    uint32_t sub; /* index into c->subs */
} bcast_member;

typedef struct bcast_symbol {
    uint64_t seq; /* seq of the value in enc; 0 = no value yet */
    bcast_member *members;
    uint32_t nmembers, cap;
    uint16_t enc_len;
    char enc[BCAST_ENC_MAX];
} bcast_symbol;

typedef struct bcast_sub {
    uint32_t sym;
    uint32_t room_pos; /* index into the symbol's members */
    uint64_t sent_seq; /* last seq this client was sent */
    uint8_t pending;   /* a newer value than sent_seq is due */
    uint8_t snap;      /* a snapshot of this symbol is due */
} bcast_sub;

struct bcast_client {
    bcast *b;
    bcast_sub *subs;
    uint32_t nsubs, cap;
    uint32_t npending, nsnap;
    uint32_t cursor; /* where the next frame's walk starts: fairness when full */
    uint8_t wildcard;
    uint8_t wake_requested;
    bcast_wake_fn wake;
    void *wake_arg;
    bcast_client *wnext, *wprev; /* list of wildcard clients */
};

struct bcast {
    bcast_opts opts;
    symtab *names;
    bcast_symbol *syms;
    uint32_t nsyms, syms_cap;
    bcast_client *wildcards;
    bcast_stats stats;
};

bcast *bcast_create(const bcast_opts *opts)
{
    bcast *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->opts = *opts;
    b->names = symtab_new(UINT32_MAX - 1);
    if (!b->names) {
        free(b);
        return NULL;
    }
    return b;
}

void bcast_destroy(bcast *b)
{
    if (!b)
        return;
    for (uint32_t i = 0; i < b->nsyms; i++)
        free(b->syms[i].members);
    free(b->syms);
    symtab_free(b->names);
    free(b);
}

void bcast_set_opts(bcast *b, const bcast_opts *opts) { b->opts = *opts; }
const bcast_stats *bcast_get_stats(const bcast *b) { return &b->stats; }
uint32_t bcast_symbol_count(const bcast *b) { return b->nsyms; }
const char *bcast_symbol_name(const bcast *b, uint32_t id) { return symtab_name(b->names, id); }

const char *bcast_symbol_json(const bcast *b, uint32_t id, size_t *len)
{
    if (id >= b->nsyms || !b->syms[id].seq)
        return NULL;
    *len = b->syms[id].enc_len;
    return b->syms[id].enc;
}

size_t bcast_encode_json(char *dst, const norm_quote *q)
{
    double change = q->last - q->open;
    /* Prices are finite and positive (the normalizer checks), but a ratio of
     * extremes is not: keep the output valid JSON whatever comes in. */
    double pct = 100.0 * change / q->open;
    if (!isfinite(pct))
        pct = 0;
    int n = snprintf(dst, BCAST_ENC_MAX,
                     "{\"symbol\":\"%s\",\"last\":%.10g,\"bid\":%.10g,\"ask\":%.10g,"
                     "\"volume\":%.10g,\"open\":%.10g,\"change\":%.10g,\"change_pct\":%.6g,"
                     "\"seq\":%llu,\"ts\":%lld,\"src\":\"%s\"%s}",
                     q->symbol, q->last, q->bid, q->ask, q->volume, q->open, change, pct, (unsigned long long)q->seq, (long long)q->ts_us,
                     q->source,
                     /* Present only while stale, and false once on recovery. */
                     q->stale ? ",\"stale\":true" : q->stale_cleared ? ",\"stale\":false" : "");
    /* Every field is bounded (symbol and source names < 32, %.10g < 18), so
     * this cannot truncate; the clamp only guards against a future field. */
    return n < BCAST_ENC_MAX ? (size_t)n : BCAST_ENC_MAX - 1;
}

/* ---- rooms ---- */

static int room_reserve(bcast_symbol *s, uint32_t extra)
{
    if (s->nmembers + extra <= s->cap)
        return 0;
    uint32_t cap = s->cap ? s->cap : 4;
    while (cap < s->nmembers + extra)
        cap *= 2;
    bcast_member *m = realloc(s->members, (size_t)cap * sizeof(*m));
    if (!m)
        return -1;
    s->members = m;
    s->cap = cap;
    return 0;
}

static void room_remove(bcast *b, uint32_t sym, uint32_t pos)
{
    bcast_symbol *s = &b->syms[sym];
    uint32_t last = --s->nmembers;
    if (pos != last) {
        s->members[pos] = s->members[last];
        bcast_member *moved = &s->members[pos];
        moved->c->subs[moved->sub].room_pos = pos;
    }
}

/* ---- client subscriptions ---- */

static int sub_reserve(bcast_client *c, uint32_t extra)
{
    if (c->nsubs + extra <= c->cap)
        return 0;
    uint32_t cap = c->cap ? c->cap : 4;
    while (cap < c->nsubs + extra)
        cap *= 2;
    bcast_sub *s = realloc(c->subs, (size_t)cap * sizeof(*s));
    if (!s)
        return -1;
    c->subs = s;
    c->cap = cap;
    return 0;
}

static void client_wake(bcast_client *c)
{
    if (!c->wake_requested) {
        c->wake_requested = 1;
        c->wake(c->wake_arg);
    }
}

static void sub_mark_snapshot(bcast_client *c, bcast_sub *s)
{
    if (s->pending) {
        s->pending = 0;
        c->npending--;
    }
    if (!s->snap) {
        s->snap = 1;
        c->nsnap++;
    }
}

/* Add a subscription to sym; capacity must have been reserved. */
static int sub_add(bcast_client *c, uint32_t sym, int snapshot)
{
    bcast *b = c->b;
    bcast_symbol *s = &b->syms[sym];
    if (sub_reserve(c, 1) || room_reserve(s, 1))
        return -1;
    uint32_t idx = c->nsubs++;
    bcast_sub *sub = &c->subs[idx];
    memset(sub, 0, sizeof(*sub));
    sub->sym = sym;
    sub->room_pos = s->nmembers;
    s->members[s->nmembers++] = (bcast_member){c, idx};
    b->stats.subscriptions++;
    if (snapshot)
        sub_mark_snapshot(c, sub);
    return 0;
}

static void sub_remove(bcast_client *c, uint32_t idx)
{
    bcast *b = c->b;
    bcast_sub *s = &c->subs[idx];
    room_remove(b, s->sym, s->room_pos);
    if (s->pending)
        c->npending--;
    if (s->snap)
        c->nsnap--;
    uint32_t last = --c->nsubs;
    if (idx != last) {
        c->subs[idx] = c->subs[last];
        bcast_sub *moved = &c->subs[idx];
        b->syms[moved->sym].members[moved->room_pos].sub = idx;
    }
    b->stats.subscriptions--;
    /* If that was all that was due, no frame will come to clear the wake
     * flag: clear it here, or later publishes would never wake the client. */
    if (!c->npending && !c->nsnap)
        c->wake_requested = 0;
}

static void wildcard_link(bcast_client *c)
{
    if (c->wildcard)
        return;
    c->wildcard = 1;
    c->wprev = NULL;
    c->wnext = c->b->wildcards;
    if (c->wnext)
        c->wnext->wprev = c;
    c->b->wildcards = c;
}

static void wildcard_unlink(bcast_client *c)
{
    if (!c->wildcard)
        return;
    c->wildcard = 0;
    if (c->wprev)
        c->wprev->wnext = c->wnext;
    else
        c->b->wildcards = c->wnext;
    if (c->wnext)
        c->wnext->wprev = c->wprev;
}

bcast_client *bcast_client_create(bcast *b, bcast_wake_fn wake, void *wake_arg)
{
    bcast_client *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->b = b;
    c->wake = wake;
    c->wake_arg = wake_arg;
    b->stats.clients++;
    return c;
}

void bcast_client_destroy(bcast_client *c)
{
    if (!c)
        return;
    while (c->nsubs)
        sub_remove(c, c->nsubs - 1);
    wildcard_unlink(c);
    c->b->stats.clients--;
    free(c->subs);
    free(c);
}

int bcast_client_has_pending(const bcast_client *c) { return c->npending || c->nsnap; }
uint32_t bcast_client_subscription_count(const bcast_client *c) { return c->nsubs; }

/* Which symbols the client holds, as a bitmap over all symbols, so that a
 * subscribe is linear in (request + subscriptions), not quadratic. Freed by
 * the caller. NULL on OOM. */
static uint8_t *held_bitmap(const bcast_client *c)
{
    uint8_t *held = calloc(c->b->nsyms / 8 + 1, 1);
    if (held)
        for (uint32_t i = 0; i < c->nsubs; i++)
            held[c->subs[i].sym / 8] |= (uint8_t)(1u << (c->subs[i].sym % 8));
    return held;
}

#define HELD(bits, id) ((bits)[(id) / 8] & (1u << ((id) % 8)))
#define HOLD(bits, id) ((bits)[(id) / 8] |= (uint8_t)(1u << ((id) % 8)))

bcast_rc bcast_subscribe(bcast_client *c, const char *const *names, size_t n, size_t *unknown,
                         size_t *nunknown)
{
    bcast *b = c->b;
    int star = 0;
    uint32_t fresh = 0;
    *nunknown = 0;
    uint8_t *held = held_bitmap(c);
    if (!held)
        return BCAST_ENOMEM;

    /* Pass 1: check everything before changing anything (atomic). Symbols
     * named twice count once: they are marked held as they are counted. */
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(names[i], "*")) {
            star = 1;
            continue;
        }
        uint32_t id = symtab_find(b->names, names[i]);
        if (id == SYMTAB_NONE) {
            unknown[(*nunknown)++] = i;
        } else if (!HELD(held, id)) {
            HOLD(held, id);
            fresh++;
        }
    }
    free(held);
    if (*nunknown)
        return BCAST_EUNKNOWN;
    /* With "*" the client holds every symbol, counted as one subscription. */
    if (!star && !c->wildcard && c->nsubs + fresh > b->opts.max_subscriptions)
        return BCAST_ELIMIT;
    if (sub_reserve(c, star ? b->nsyms : fresh))
        return BCAST_ENOMEM;

    /* Pass 2: apply, linear too: one walk over the client's subscriptions
     * re-snapshots the requested ones it holds, then the rest are added. */
    uint8_t *want = calloc(b->nsyms / 8 + 1, 1);
    if (!want)
        return BCAST_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        uint32_t id = star ? SYMTAB_NONE : symtab_find(b->names, names[i]);
        if (id != SYMTAB_NONE)
            HOLD(want, id);
    }
    for (uint32_t i = 0; i < c->nsubs; i++) {
        uint32_t id = c->subs[i].sym;
        if (star || HELD(want, id)) {
            sub_mark_snapshot(c, &c->subs[i]);
            want[id / 8] &= (uint8_t)~(1u << (id % 8));
        }
        if (star)
            HOLD(want, id); /* held: "*" must not add it again */
    }
    bcast_rc rc = BCAST_OK;
    if (star) {
        for (uint32_t id = 0; id < b->nsyms && rc == BCAST_OK; id++)
            if (!HELD(want, id) && sub_add(c, id, 1))
                rc = BCAST_ENOMEM;
        wildcard_link(c);
    } else {
        for (size_t i = 0; i < n && rc == BCAST_OK; i++) {
            uint32_t id = symtab_find(b->names, names[i]);
            if (id != SYMTAB_NONE && HELD(want, id)) {
                want[id / 8] &= (uint8_t)~(1u << (id % 8)); /* named twice: once */
                if (sub_add(c, id, 1))
                    rc = BCAST_ENOMEM;
            }
        }
    }
    free(want);
    if (c->nsnap)
        client_wake(c);
    return rc;
}

void bcast_unsubscribe(bcast_client *c, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(names[i], "*")) {
            while (c->nsubs)
                sub_remove(c, c->nsubs - 1);
            wildcard_unlink(c);
            return;
        }
    }
    /* One walk over the subscriptions, whatever the request's size. */
    uint8_t *drop = calloc(c->b->nsyms / 8 + 1, 1);
    if (!drop)
        return;
    for (size_t i = 0; i < n; i++) {
        uint32_t id = symtab_find(c->b->names, names[i]);
        if (id != SYMTAB_NONE)
            HOLD(drop, id);
    }
    for (uint32_t i = c->nsubs; i-- > 0;)
        if (HELD(drop, c->subs[i].sym))
            sub_remove(c, i); /* swap-remove moves only already-visited entries */
    free(drop);
}

/* ---- symbols and publishing ---- */

int bcast_symbol_added(bcast *b, uint32_t id, const char *symbol)
{
    /* The normalizer hands out dense ids in order; we mirror them. */
    if (id != b->nsyms)
        return -1;
    if (b->nsyms == b->syms_cap) {
        uint32_t cap = b->syms_cap ? b->syms_cap * 2 : 64;
        bcast_symbol *s = realloc(b->syms, (size_t)cap * sizeof(*s));
        if (!s)
            return -1;
        b->syms = s;
        b->syms_cap = cap;
    }
    if (symtab_intern(b->names, symbol, NULL) != id)
        return -1;
    memset(&b->syms[id], 0, sizeof(b->syms[id]));
    b->nsyms++;
    /* Wildcard clients follow new symbols; the first value arrives as an
     * update (there is nothing to snapshot yet). */
    for (bcast_client *c = b->wildcards; c; c = c->wnext)
        sub_add(c, id, 0);
    return 0;
}

void bcast_publish(bcast *b, uint32_t id, const norm_quote *q)
{
    if (id >= b->nsyms)
        return;
    bcast_symbol *s = &b->syms[id];
    /* Encode once; every subscriber's frame copies these bytes. */
    s->enc_len = (uint16_t)bcast_encode_json(s->enc, q);
    s->seq = q->seq;
    for (uint32_t i = 0; i < s->nmembers; i++) {
        bcast_client *c = s->members[i].c;
        bcast_sub *sub = &c->subs[s->members[i].sub];
        /* A due snapshot will carry this value anyway. */
        if (!sub->pending && !sub->snap) {
            sub->pending = 1;
            c->npending++;
        }
        client_wake(c);
    }
}

size_t bcast_client_frame(bcast_client *c, char *buf, size_t cap)
{
    static const char head_snap[] = "{\"op\":\"snapshot\",\"updates\":[";
    static const char head_upd[] = "{\"op\":\"update\",\"updates\":[";
    bcast *b = c->b;
    int snapshot = c->nsnap > 0;
    const char *head = snapshot ? head_snap : head_upd;
    size_t len = snapshot ? sizeof(head_snap) - 1 : sizeof(head_upd) - 1;
    uint32_t count = 0;

    if (cap > b->opts.max_frame_bytes)
        cap = b->opts.max_frame_bytes;
    c->wake_requested = 0;
    if ((!c->nsnap && !c->npending) || !c->nsubs || cap < len + BCAST_ENC_MAX + 2)
        return 0;
    memcpy(buf, head, len);

    uint32_t i = c->cursor < c->nsubs ? c->cursor : 0;
    for (uint32_t walked = 0; walked < c->nsubs && (snapshot ? c->nsnap : c->npending);
         walked++, i = i + 1 == c->nsubs ? 0 : i + 1) {
        bcast_sub *s = &c->subs[i];
        if (snapshot ? !s->snap : !s->pending)
            continue;
        bcast_symbol *sym = &b->syms[s->sym];
        if (sym->seq > s->sent_seq || snapshot) {
            if (!sym->seq) {
                /* Nothing to snapshot yet: its first value comes as update. */
                s->snap = 0;
                c->nsnap--;
                continue;
            }
            if (len + 1 + sym->enc_len + 2 > cap)
                break; /* frame full: the rest stays pending for next time */
            if (count)
                buf[len++] = ',';
            memcpy(buf + len, sym->enc, sym->enc_len);
            len += sym->enc_len;
            count++;
            if (!snapshot && s->sent_seq && sym->seq > s->sent_seq + 1)
                b->stats.conflated += sym->seq - s->sent_seq - 1;
            s->sent_seq = sym->seq;
        }
        if (s->snap) {
            s->snap = 0;
            c->nsnap--;
        }
        if (s->pending) {
            s->pending = 0;
            c->npending--;
        }
    }
    c->cursor = i;
    /* The transport asks to write again while anything is pending. */
    c->wake_requested = bcast_client_has_pending(c) ? 1 : 0;
    if (!count)
        return 0;
    buf[len++] = ']';
    buf[len++] = '}';
    b->stats.frames_out++;
    if (snapshot)
        b->stats.snapshots_out += count;
    else
        b->stats.updates_out += count;
    return len;
}
