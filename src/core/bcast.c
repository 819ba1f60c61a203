/* bcast.c — see bcast.h.
 *
 * Data layout: a symbol owns a room (array of members); a client owns an array
 * of subscriptions. Member and subscription point at each other by index
 * (member.sub, sub.room_pos), so both sides swap-remove in O(1). Pending state
 * lives in the subscription as two bits (snap, pending) with per-client counts,
 * so "does this client have anything to send" is O(1) and a frame is built by
 * one walk over the client's own subscriptions.
 *
 * Resume adds one ring per symbol and two bits per subscription. The ring
 * holds the encodings of a contiguous run of seqs, seq - ring_count + 1 ..
 * seq, the value of seq x in slot x % ring_depth. A subscription is in
 * exactly one of these states:
 *   idle                      nothing due
 *   pending                   a live update is due (newer than sent_seq)
 *   snap                      a snapshot is due
 *   snap + reset              a reset snapshot is due
 *   reset (no snap)           a reset snapshot waits for the symbol's first value
 *   replay                    ring values sent_seq+1 .. seq are due
 * and, orthogonally, `parked` (history on its way): its snapshot still goes
 * out, but publishes mark nothing until bcast_unpark continues it from the
 * history's last value, exactly as a resume from that seq would.
 * publish only ever moves idle → pending, or reset → snap + reset; a
 * subscription with a snapshot or a replay due gets no update before it, since
 * those carry every value up to the current one. Frames go out by kind:
 * snapshots, then reset snapshots, then replays, then updates.
 *
 * Binary encoding: a symbol keeps its latest value in both encodings, and,
 * once a binary client has connected, a second ring of binary records beside
 * the JSON one (same seqs, its own count: it starts later). A frame is built
 * the same way in either encoding; only its envelope (struct frame) and
 * where the bytes of a value come from (sym_value, ring_value) differ. */
#include "tickerd/bcast.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct bcast_member {
    bcast_client *c;
    uint32_t sub; /* index into c->subs */
} bcast_member;

/* One published value kept for resume. */
typedef struct bcast_slot {
    int64_t at_us; /* monotonic time of its publish (the backlog window) */
    uint16_t len;
    char enc[BCAST_ENC_MAX];
} bcast_slot;
_Static_assert(sizeof(bcast_slot) == BCAST_RING_SLOT_BYTES, "BCAST_RING_SLOT_BYTES is the slot's size");

/* One value as a binary record (tickerd.bin). */
typedef struct bcast_bin_slot {
    uint8_t len;
    uint8_t enc[BCAST_BIN_MAX];
} bcast_bin_slot;

typedef struct bcast_symbol {
    uint64_t seq; /* seq of the value in enc; 0 = no value yet */
    bcast_member *members;
    uint32_t nmembers, cap;
    uint16_t enc_len;
    char enc[BCAST_ENC_MAX];
    bcast_bin_slot bin;       /* the same value, binary */
    bcast_bin_slot *bin_ring; /* binary ring: NULL until a binary client has connected */
    uint32_t bin_ring_depth;
    uint32_t bin_ring_count;  /* binary values held: seqs seq - bin_ring_count + 1 .. seq */
    bcast_slot *ring;    /* ring_depth slots; NULL before the first publish or with resume off */
    uint32_t ring_depth;
    uint32_t ring_count; /* values held: seqs seq - ring_count + 1 .. seq */
    uint8_t stale;       /* the latest value is a stale re-publication */
    uint8_t removed;     /* no configured feed serves it any more (bcast_symbols_remove) */
    uint8_t loading;     /* an edge is fetching its values: new subscriptions wait */
} bcast_symbol;

typedef struct bcast_sub {
    uint32_t sym;
    uint32_t room_pos; /* index into the symbol's members */
    uint64_t sent_seq; /* last seq this client was sent (or said it saw, when resuming) */
    uint8_t pending;   /* a newer value than sent_seq is due */
    uint8_t snap;      /* a snapshot of this symbol is due */
    uint8_t reset;     /* that snapshot (or the first value, without snap) is a reset */
    uint8_t replay;    /* ring values after sent_seq are due, before any update */
    uint8_t parked;    /* history on its way: no live update until bcast_unpark */
    uint8_t wait;      /* WAIT_*: what it gets once its symbol stops loading */
} bcast_sub;

/* A subscription made while its symbol was loading waits, outside every
 * count, for bcast_symbol_set_loading(.., 0): then a snapshot, a resume from
 * sent_seq, or a reset (another epoch). */
enum { WAIT_NONE = 0, WAIT_SNAPSHOT, WAIT_RESUME, WAIT_RESET };

struct bcast_client {
    bcast *b;
    bcast_sub *subs;
    uint32_t nsubs, cap;
    uint32_t npending, nsnap; /* nsnap counts reset snapshots too */
    uint32_t nreset, nreplay; /* subscriptions with snap + reset, with replay */
    uint32_t cursor; /* where the next frame's walk starts: fairness when full */
    uint8_t wildcard;
    uint8_t wake_requested;
    uint8_t enc; /* bcast_enc of its frames */
    uint8_t losing; /* on bcast_symbols_remove's list of clients to tell */
    bcast_client_stats st; /* this client's share of b->stats (the admin view) */
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
    uint32_t nremoved; /* symbols with removed set */
    bcast_stats stats;
    char epoch[BCAST_EPOCH_LEN + 1];
    bcast_room_fn room_fn;
    void *room_arg;
    uint8_t bin_rings; /* a binary client has connected: keep binary rings too */
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t mix64(uint64_t x)
{
    /* splitmix64's finaliser */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* An epoch unique per instance: wall clock in ns, pid, and a counter for
 * several broadcasters in one process (tests). */
static void make_epoch(bcast *b)
{
    static uint64_t instances;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = mix64((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
    x = mix64(x ^ ((uint64_t)getpid() << 20) ^ ++instances);
    snprintf(b->epoch, sizeof(b->epoch), "%016llx", (unsigned long long)x);
}

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
    if (b->opts.resume_depth > BCAST_RESUME_DEPTH_MAX)
        b->opts.resume_depth = BCAST_RESUME_DEPTH_MAX;
    make_epoch(b);
    return b;
}

static void rings_free(bcast *b)
{
    for (uint32_t i = 0; i < b->nsyms; i++) {
        free(b->syms[i].ring);
        b->syms[i].ring = NULL;
        b->syms[i].ring_depth = b->syms[i].ring_count = 0;
        free(b->syms[i].bin_ring);
        b->syms[i].bin_ring = NULL;
        b->syms[i].bin_ring_depth = b->syms[i].bin_ring_count = 0;
    }
    b->stats.ring_bytes = 0;
}

void bcast_destroy(bcast *b)
{
    if (!b)
        return;
    rings_free(b);
    for (uint32_t i = 0; i < b->nsyms; i++)
        free(b->syms[i].members);
    free(b->syms);
    symtab_free(b->names);
    free(b);
}

void bcast_set_opts(bcast *b, const bcast_opts *opts)
{
    uint32_t depth = opts->resume_depth;
    if (depth > BCAST_RESUME_DEPTH_MAX)
        depth = BCAST_RESUME_DEPTH_MAX;
    /* Rings are allocated at one size; a new depth starts them over (each
     * refills from its symbol's next publish). */
    if (depth != b->opts.resume_depth)
        rings_free(b);
    b->opts = *opts;
    b->opts.resume_depth = depth;
}

const bcast_stats *bcast_get_stats(const bcast *b) { return &b->stats; }
const char *bcast_epoch(const bcast *b) { return b->epoch; }

const char *bcast_reset_name(bcast_reset_reason r)
{
    static const char *const names[BCAST_RESET_COUNT] = {"too_old", "seq_ahead", "epoch"};
    return (unsigned)r < BCAST_RESET_COUNT ? names[r] : "unknown";
}
uint32_t bcast_symbol_count(const bcast *b) { return b->nsyms; }
uint32_t bcast_symbols_offered(const bcast *b) { return b->nsyms - b->nremoved; }
const char *bcast_symbol_status(const bcast *b, uint32_t id)
{
    const bcast_symbol *s = &b->syms[id];
    return s->removed ? "removed" : !s->seq ? "no_data" : s->stale ? "stale" : "live";
}

int bcast_symbol_removed(const bcast *b, uint32_t id) { return id < b->nsyms && b->syms[id].removed; }

/* The id of a symbol clients may use: removed ones are unknown to them. */
static uint32_t offered_id(const bcast *b, const char *name)
{
    uint32_t id = symtab_find(b->names, name);
    return id == SYMTAB_NONE || b->syms[id].removed ? SYMTAB_NONE : id;
}

uint32_t bcast_symbol_id(const bcast *b, const char *name)
{
    uint32_t id = offered_id(b, name);
    return id == SYMTAB_NONE ? UINT32_MAX : id;
}
const char *bcast_symbol_name(const bcast *b, uint32_t id) { return symtab_name(b->names, id); }

uint64_t bcast_symbol_seq(const bcast *b, uint32_t id) { return id < b->nsyms ? b->syms[id].seq : 0; }

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

/* Little-endian whatever the host: byte by byte (compilers make one store of it). */
static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return p + 8;
}

static uint8_t *put_f64(uint8_t *p, double d)
{
    uint64_t v;
    memcpy(&v, &d, sizeof(v));
    return put_u64(p, v);
}

/* A name: its length (u8), then its bytes. */
static uint8_t *put_name(uint8_t *p, const char *name)
{
    size_t n = name ? strnlen(name, BCAST_BIN_NAME_MAX) : 0;
    *p++ = (uint8_t)n;
    if (n)
        memcpy(p, name, n);
    return p + n;
}

size_t bcast_encode_bin(uint8_t *dst, const norm_quote *q)
{
    uint8_t *p = dst + 1; /* dst[0]: the record's length, known at the end */
    /* The JSON's "stale":true / "stale":false, as two bits. */
    *p++ = q->stale ? BCAST_BIN_STALE : q->stale_cleared ? BCAST_BIN_STALE_CLEARED : 0;
    p = put_u64(p, q->seq);
    p = put_u64(p, (uint64_t)q->ts_us);
    p = put_f64(p, q->last);
    p = put_f64(p, q->bid);
    p = put_f64(p, q->ask);
    p = put_f64(p, q->volume);
    p = put_f64(p, q->open);
    p = put_name(p, q->symbol);
    p = put_name(p, q->source);
    dst[0] = (uint8_t)(p - dst - 1);
    return (size_t)(p - dst);
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
    if (!s->nmembers && b->room_fn)
        b->room_fn(b->room_arg, sym, 0);
}

/* ---- client subscriptions ---- */

static int sub_reserve(bcast_client *c, uint32_t extra)
{
    if (c->nsubs + extra <= c->cap)
        return 0;
    /* The first subscribe is sized exactly (most clients subscribe once);
     * growth after that doubles. */
    uint32_t cap = c->cap ? c->cap * 2 : c->nsubs + extra;
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

/* Back to idle: nothing due. */
static void sub_clear(bcast_client *c, bcast_sub *s)
{
    if (s->pending) {
        s->pending = 0;
        c->npending--;
    }
    if (s->snap) {
        s->snap = 0;
        c->nsnap--;
        if (s->reset)
            c->nreset--;
    }
    if (s->replay) {
        s->replay = 0;
        c->nreplay--;
    }
    s->reset = 0;
    s->wait = WAIT_NONE;
}

/* Its symbol is loading: wait (see WAIT_*) instead. */
static int sub_wait_load(bcast_client *c, bcast_sub *s, int what)
{
    if (!c->b->syms[s->sym].loading)
        return 0;
    sub_clear(c, s);
    s->wait = (uint8_t)what;
    return 1;
}

static void sub_mark_snapshot(bcast_client *c, bcast_sub *s)
{
    if (sub_wait_load(c, s, WAIT_SNAPSHOT))
        return;
    sub_clear(c, s);
    s->snap = 1;
    c->nsnap++;
}

/* A reset snapshot, now if the symbol has a value, else with its first. */
static void sub_mark_reset(bcast_client *c, bcast_sub *s, bcast_reset_reason why)
{
    sub_clear(c, s);
    c->b->stats.resume_resets[why]++;
    s->reset = 1;
    if (c->b->syms[s->sym].seq) {
        s->snap = 1;
        c->nsnap++;
        c->nreset++;
    }
}

/* Does the symbol's ring in encoding e hold the value of seq x? */
static int ring_holds(const bcast_symbol *s, bcast_enc e, uint64_t x)
{
    uint32_t count = e == BCAST_ENC_BIN ? s->bin_ring_count : s->ring_count;
    return count && x <= s->seq && x + count > s->seq;
}

/* The bytes of seq x's value in encoding e (ring_holds must be true). */
static const void *ring_value(const bcast_symbol *s, bcast_enc e, uint64_t x, size_t *n)
{
    if (e == BCAST_ENC_BIN) {
        const bcast_bin_slot *slot = &s->bin_ring[x % s->bin_ring_depth];
        *n = slot->len;
        return slot->enc;
    }
    const bcast_slot *slot = &s->ring[x % s->ring_depth];
    *n = slot->len;
    return slot->enc;
}

/* The bytes of the symbol's latest value in encoding e. */
static const void *sym_value(const bcast_symbol *s, bcast_enc e, size_t *n)
{
    if (e == BCAST_ENC_BIN) {
        *n = s->bin.len;
        return s->bin.enc;
    }
    *n = s->enc_len;
    return s->enc;
}

/* Resume a subscription from seq (the last the client saw). */
static void sub_resume(bcast_client *c, bcast_sub *s, uint64_t seq, int other_epoch)
{
    bcast *b = c->b;
    const bcast_symbol *sym = &b->syms[s->sym];
    if (sub_wait_load(c, s, other_epoch ? WAIT_RESET : WAIT_RESUME)) {
        s->sent_seq = seq;
        return;
    }
    sub_clear(c, s);
    s->sent_seq = seq;
    if (other_epoch) {
        sub_mark_reset(c, s, BCAST_RESET_EPOCH);
    } else if (seq == sym->seq) {
        b->stats.resume_current++; /* up to date: live updates follow */
    } else if (seq > sym->seq) {
        sub_mark_reset(c, s, BCAST_RESET_AHEAD);
    } else if (ring_holds(sym, c->enc, seq + 1)) {
        s->replay = 1;
        c->nreplay++;
    } else {
        sub_mark_reset(c, s, BCAST_RESET_TOO_OLD);
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
    if (s->nmembers == 1 && b->room_fn)
        b->room_fn(b->room_arg, sym, 1); /* may start loading: before the snapshot below */
    if (snapshot)
        sub_mark_snapshot(c, sub);
    return 0;
}

static void sub_remove(bcast_client *c, uint32_t idx)
{
    bcast *b = c->b;
    bcast_sub *s = &c->subs[idx];
    room_remove(b, s->sym, s->room_pos);
    sub_clear(c, s);
    uint32_t last = --c->nsubs;
    if (idx != last) {
        c->subs[idx] = c->subs[last];
        bcast_sub *moved = &c->subs[idx];
        b->syms[moved->sym].members[moved->room_pos].sub = idx;
    }
    b->stats.subscriptions--;
    /* If that was all that was due, no frame will come to clear the wake
     * flag: clear it here, or later publishes would never wake the client. */
    if (!bcast_client_has_pending(c))
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

void bcast_client_set_encoding(bcast_client *c, bcast_enc enc)
{
    bcast *b = c->b;
    if (c->enc == BCAST_ENC_BIN)
        b->stats.bin_clients--;
    c->enc = (uint8_t)enc;
    if (enc == BCAST_ENC_BIN) {
        b->stats.bin_clients++;
        /* From now on, for good: a binary client that reconnects later
         * resumes from this ring, however many binary clients remain. */
        b->bin_rings = 1;
    }
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
    if (c->enc == BCAST_ENC_BIN)
        c->b->stats.bin_clients--;
    free(c->subs);
    free(c);
}

int bcast_client_has_pending(const bcast_client *c)
{
    return c->npending || c->nsnap || c->nreplay;
}
uint32_t bcast_client_subscription_count(const bcast_client *c) { return c->nsubs; }
const bcast_client_stats *bcast_client_get_stats(const bcast_client *c) { return &c->st; }

size_t bcast_client_position(const bcast_client *c, char *buf, size_t cap)
{
    if (!cap)
        return 0;
    int n = snprintf(buf, cap, "%s", c->b->epoch);
    size_t len = n > 0 ? (size_t)n : 0;
    for (uint32_t i = 0; i < c->nsubs && len < cap; i++) {
        const bcast_sub *s = &c->subs[i];
        if (!s->sent_seq)
            continue;
        n = snprintf(buf + len, cap - len, ",%s:%llu", symtab_name(c->b->names, s->sym),
                     (unsigned long long)s->sent_seq);
        if (n < 0 || (size_t)n >= cap - len) {
            buf[len] = 0; /* whole entries only */
            return (size_t)-1;
        }
        len += (size_t)n;
    }
    return len;
}

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

/* A resume entry by symbol id, sorted by id for lookup. */
typedef struct resume_at {
    uint32_t id;
    uint64_t seq;
} resume_at;

static int resume_at_cmp(const void *a, const void *b)
{
    uint32_t x = ((const resume_at *)a)->id, y = ((const resume_at *)b)->id;
    return x < y ? -1 : x > y;
}

bcast_rc bcast_subscribe(bcast_client *c, const char *const *names, size_t n, size_t *unknown,
                         size_t *nunknown)
{
    return bcast_subscribe_resume(c, names, n, NULL, 0, 0, unknown, nunknown);
}

bcast_rc bcast_subscribe_resume(bcast_client *c, const char *const *names, size_t n,
                                const bcast_resume *resume, size_t nresume, int other_epoch,
                                size_t *unknown, size_t *nunknown)
{
    bcast *b = c->b;
    int star = 0;
    uint32_t fresh = 0;
    bcast_rc rc = BCAST_OK;
    *nunknown = 0;
    uint8_t *held = held_bitmap(c);
    uint8_t *want = calloc(b->nsyms / 8 + 1, 1); /* named by this request */
    resume_at *at = nresume ? malloc(nresume * sizeof(*at)) : NULL;
    if (!held || !want || (nresume && !at)) {
        rc = BCAST_ENOMEM;
        goto out;
    }

    /* Pass 1: check everything before changing anything (atomic). Symbols
     * named twice count once: they are marked held as they are counted. */
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(names[i], "*")) {
            star = 1;
            continue;
        }
        uint32_t id = offered_id(b, names[i]);
        if (id == SYMTAB_NONE) {
            unknown[(*nunknown)++] = i;
            continue;
        }
        HOLD(want, id);
        if (!HELD(held, id)) {
            HOLD(held, id);
            fresh++;
        }
    }
    for (size_t j = 0; j < nresume; j++) {
        at[j].id = offered_id(b, resume[j].symbol);
        at[j].seq = resume[j].seq;
        if (at[j].id == SYMTAB_NONE)
            unknown[(*nunknown)++] = n + j;
    }
    if (*nunknown) {
        rc = BCAST_EUNKNOWN;
        goto out;
    }
    for (size_t j = 0; j < nresume && !star; j++)
        if (!HELD(want, at[j].id)) {
            unknown[0] = n + j;
            rc = BCAST_ERESUME;
            goto out;
        }
    /* With "*" the client holds every symbol, counted as one subscription. */
    if (!star && !c->wildcard && c->nsubs + fresh > b->opts.max_subscriptions) {
        rc = BCAST_ELIMIT;
        goto out;
    }
    if (sub_reserve(c, star ? b->nsyms : fresh)) {
        rc = BCAST_ENOMEM;
        goto out;
    }

    /* Pass 2: apply, linear too: one walk over the client's subscriptions
     * re-snapshots the requested ones it holds, then the rest are added. */
    if (star)
        memset(want, 0, b->nsyms / 8 + 1);
    for (uint32_t i = 0; i < c->nsubs; i++) {
        uint32_t id = c->subs[i].sym;
        if (star || HELD(want, id)) {
            sub_mark_snapshot(c, &c->subs[i]);
            c->subs[i].parked = 0; /* a newer request decides (see bcast_park) */
            want[id / 8] &= (uint8_t)~(1u << (id % 8));
        }
        if (star)
            HOLD(want, id); /* held: "*" must not add it again */
    }
    if (star) {
        for (uint32_t id = 0; id < b->nsyms && rc == BCAST_OK; id++)
            if (!HELD(want, id) && !b->syms[id].removed && sub_add(c, id, 1))
                rc = BCAST_ENOMEM;
        wildcard_link(c);
    } else {
        for (size_t i = 0; i < n && rc == BCAST_OK; i++) {
            uint32_t id = offered_id(b, names[i]);
            if (id != SYMTAB_NONE && HELD(want, id)) {
                want[id / 8] &= (uint8_t)~(1u << (id % 8)); /* named twice: once */
                if (sub_add(c, id, 1))
                    rc = BCAST_ENOMEM;
            }
        }
    }

    /* Pass 3: resumed symbols replace their snapshot by a replay, nothing
     * (up to date) or a reset snapshot. One walk, a binary search each. */
    if (nresume && rc == BCAST_OK) {
        qsort(at, nresume, sizeof(*at), resume_at_cmp);
        for (uint32_t i = 0; i < c->nsubs; i++) {
            resume_at key = {c->subs[i].sym, 0};
            const resume_at *r = bsearch(&key, at, nresume, sizeof(*at), resume_at_cmp);
            if (r)
                sub_resume(c, &c->subs[i], r->seq, other_epoch);
        }
    }
    if (bcast_client_has_pending(c))
        client_wake(c);
out:
    free(held);
    free(want);
    free(at);
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

size_t bcast_client_retain(bcast_client *c, int (*keep)(void *arg, const char *symbol), void *arg,
                           int keep_wildcard)
{
    size_t removed = 0;
    if (!keep_wildcard)
        wildcard_unlink(c); /* symbols added later are not subscribed any more */
    for (uint32_t i = c->nsubs; i-- > 0;)
        if (!keep(arg, symtab_name(c->b->names, c->subs[i].sym))) {
            sub_remove(c, i); /* swap-remove moves only already-visited entries */
            removed++;
        }
    return removed;
}

/* ---- the history seam ---- */

static bcast_sub *sub_find(bcast_client *c, uint32_t id)
{
    for (uint32_t i = 0; i < c->nsubs; i++)
        if (c->subs[i].sym == id)
            return &c->subs[i];
    return NULL;
}

void bcast_park(bcast_client *c, const uint32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bcast_sub *s = sub_find(c, ids[i]);
        if (!s || s->parked)
            continue;
        /* An update already due would go out before the history: drop it,
         * the unpark's replay carries that value in its place. */
        if (s->pending) {
            s->pending = 0;
            c->npending--;
        }
        s->parked = 1;
    }
    if (!bcast_client_has_pending(c))
        c->wake_requested = 0;
}

void bcast_unpark(bcast_client *c, uint32_t id, uint64_t seq)
{
    bcast_sub *s = sub_find(c, id);
    if (!s || !s->parked)
        return; /* unsubscribed, or re-subscribed since */
    s->parked = 0;
    /* The snapshot comes before the history (ws sends history only once no
     * snapshot is due); if one is still due, it carries the current value
     * and live updates follow it as usual. */
    if (!s->snap)
        sub_resume(c, s, seq == BCAST_UNPARK_LIVE ? s->sent_seq : seq, 0);
    if (bcast_client_has_pending(c))
        client_wake(c);
}

int bcast_client_snapshots_due(const bcast_client *c) { return c->nsnap != 0; }

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

int bcast_symbols_remove(bcast *b, const uint32_t *ids, size_t n, bcast_removed_fn told, void *arg)
{
    /* Everything is allocated before anything changes: the worst case is
     * every member of every room a different client. */
    size_t members = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < b->nsyms && !b->syms[ids[i]].removed)
            members += b->syms[ids[i]].nmembers;
    bcast_client **losing = malloc((members ? members : 1) * sizeof(*losing));
    const char **names = malloc((n ? n : 1) * sizeof(*names));
    if (!losing || !names) {
        free(losing);
        free(names);
        return -1;
    }
    /* Mark the symbols, and list each client holding any of them once. */
    size_t nlosing = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= b->nsyms || b->syms[ids[i]].removed)
            continue;
        bcast_symbol *s = &b->syms[ids[i]];
        s->removed = 1;
        b->nremoved++;
        for (uint32_t m = 0; m < s->nmembers; m++) {
            bcast_client *c = s->members[m].c;
            if (!c->losing) {
                c->losing = 1;
                losing[nlosing++] = c;
            }
        }
    }
    /* One walk over each such client's subscriptions drops them all and
     * names them in one notice. Only symbols removed just now can be held:
     * removed ones cannot be subscribed. */
    for (size_t k = 0; k < nlosing; k++) {
        bcast_client *c = losing[k];
        size_t nnames = 0;
        for (uint32_t i = c->nsubs; i-- > 0;) {
            uint32_t sym = c->subs[i].sym;
            if (b->syms[sym].removed) {
                names[nnames++] = symtab_name(b->names, sym);
                sub_remove(c, i); /* swap-remove moves only already-visited entries */
            }
        }
        c->losing = 0;
        if (told)
            told(c->wake_arg, names, nnames, arg);
    }
    free(losing);
    free(names);
    return 0;
}

int bcast_symbol_restore(bcast *b, uint32_t id)
{
    if (id >= b->nsyms || !b->syms[id].removed)
        return 0;
    bcast_symbol *s = &b->syms[id];
    s->removed = 0;
    b->nremoved--;
    /* "*" means every symbol offered: wildcard clients take it back, with a
     * snapshot when it has a value. */
    int rc = 0;
    for (bcast_client *c = b->wildcards; c; c = c->wnext) {
        if (sub_add(c, id, s->seq != 0))
            rc = -1;
        else if (bcast_client_has_pending(c))
            client_wake(c);
    }
    return rc;
}

/* Keep the value just encoded (s->enc, seq s->seq) for resume. The ring is
 * allocated once, at the symbol's first publish; after that a publish costs
 * one copy of the encoding. */
static void ring_push(bcast *b, bcast_symbol *s, uint64_t prev_seq)
{
    if (!s->ring) {
        uint32_t depth = b->opts.resume_depth;
        s->ring = malloc((size_t)depth * sizeof(*s->ring));
        if (!s->ring)
            return; /* no ring: this symbol's resumes reset (tried again next time) */
        s->ring_depth = depth;
        s->ring_count = 0;
        b->stats.ring_bytes += (uint64_t)depth * sizeof(*s->ring);
    }
    /* The ring holds a contiguous run of seqs; the normalizer's grow by 1, so
     * this only restarts it if a seq ever jumps. */
    if (s->seq != prev_seq + 1)
        s->ring_count = 0;
    bcast_slot *slot = &s->ring[s->seq % s->ring_depth];
    slot->at_us = mono_us();
    slot->len = s->enc_len;
    memcpy(slot->enc, s->enc, s->enc_len);
    if (s->ring_count < s->ring_depth)
        s->ring_count++;
}

/* The binary form of the value just published, and its ring while binary
 * clients have been seen. Encoded whether or not a binary client exists:
 * one that connects later needs the current value for its snapshot, and
 * this fixed-layout copy costs what keeping the quote for it would (tens of
 * ns against about a µs for the JSON). The ring, which costs memory, waits
 * for the first binary client. */
static void bin_publish(bcast *b, bcast_symbol *s, const norm_quote *q, uint64_t prev_seq)
{
    s->bin.len = (uint8_t)bcast_encode_bin(s->bin.enc, q);
    if (!b->bin_rings || !b->opts.resume_depth)
        return;
    if (!s->bin_ring) {
        uint32_t depth = b->opts.resume_depth;
        s->bin_ring = malloc((size_t)depth * sizeof(*s->bin_ring));
        if (!s->bin_ring)
            return; /* binary resumes of this symbol reset (tried again next time) */
        s->bin_ring_depth = depth;
        s->bin_ring_count = 0;
        b->stats.ring_bytes += (uint64_t)depth * sizeof(*s->bin_ring);
    }
    if (s->seq != prev_seq + 1) /* as in ring_push */
        s->bin_ring_count = 0;
    bcast_bin_slot *slot = &s->bin_ring[s->seq % s->bin_ring_depth];
    memcpy(slot, &s->bin, 1 + (size_t)s->bin.len); /* the used bytes: len, then the record */
    if (s->bin_ring_count < s->bin_ring_depth)
        s->bin_ring_count++;
}

void bcast_publish(bcast *b, uint32_t id, const norm_quote *q)
{
    if (id >= b->nsyms)
        return;
    bcast_symbol *s = &b->syms[id];
    uint64_t prev_seq = s->seq;
    /* Encode once; every subscriber's frame copies these bytes. */
    if (q->enc && q->enc_len && q->enc_len < BCAST_ENC_MAX) {
        memcpy(s->enc, q->enc, q->enc_len);
        s->enc_len = q->enc_len;
    } else {
        s->enc_len = (uint16_t)bcast_encode_json(s->enc, q);
    }
    s->seq = q->seq;
    s->stale = q->stale;
    /* The same seq again: the value re-published in place (a stale mark).
     * The ring keeps its run (prev_seq - 1 makes the slot the run's next). */
    int again = prev_seq && q->seq == prev_seq;
    if (b->opts.resume_depth) {
        if (again && s->ring_count)
            s->ring_count--;
        ring_push(b, s, again ? prev_seq - 1 : prev_seq);
    }
    if (again && s->bin_ring_count)
        s->bin_ring_count--;
    bin_publish(b, s, q, again ? prev_seq - 1 : prev_seq);
    for (uint32_t i = 0; i < s->nmembers; i++) {
        bcast_client *c = s->members[i].c;
        bcast_sub *sub = &c->subs[s->members[i].sub];
        if (again && sub->sent_seq == q->seq && !sub->wait)
            sub->sent_seq = q->seq - 1; /* sent it before: send it again */
        if (sub->wait)
            continue; /* gets it when its symbol stops loading */
        /* A due snapshot or replay will carry this value anyway; a parked
         * subscription gets it with its unpark (replayed from the ring). */
        if (sub->parked)
            continue;
        if (!sub->pending && !sub->snap && !sub->replay) {
            if (sub->reset) {
                /* A reset waiting for the symbol's first value: this is it. */
                sub->snap = 1;
                c->nsnap++;
                c->nreset++;
            } else {
                sub->pending = 1;
                c->npending++;
            }
        }
        client_wake(c);
    }
}

/* ---- frames ---- */

typedef enum { FRAME_SNAPSHOT, FRAME_RESET, FRAME_REPLAY, FRAME_UPDATE, FRAME_NONE } frame_kind;

static const char *const frame_head[] = {
    [FRAME_SNAPSHOT] = "{\"op\":\"snapshot\",\"updates\":[",
    [FRAME_RESET] = "{\"op\":\"snapshot\",\"reset\":true,\"updates\":[",
    [FRAME_REPLAY] = "{\"op\":\"replay\",\"updates\":[",
    [FRAME_UPDATE] = "{\"op\":\"update\",\"updates\":[",
};
#define FRAME_HEAD_MAX 48

static const uint8_t frame_bin_kind[] = {
    [FRAME_SNAPSHOT] = BCAST_BIN_SNAPSHOT,
    [FRAME_RESET] = BCAST_BIN_RESET,
    [FRAME_REPLAY] = BCAST_BIN_REPLAY,
    [FRAME_UPDATE] = BCAST_BIN_UPDATE,
};

/* A frame being assembled in one client's encoding: JSON
 * {"op":...,"updates":[v1,v2]} or binary header + v1 v2. */
typedef struct frame {
    char *buf;
    size_t len, cap;
    uint32_t count;
    bcast_enc enc;
} frame;

static void frame_open(frame *f, bcast_enc enc, frame_kind k, char *buf, size_t cap)
{
    *f = (frame){.buf = buf, .cap = cap, .enc = enc};
    if (enc == BCAST_ENC_BIN) {
        buf[0] = (char)frame_bin_kind[k];
        buf[1] = buf[2] = buf[3] = 0; /* reserved; the count, at frame_close */
        f->len = BCAST_BIN_HEAD;
    } else {
        f->len = strlen(frame_head[k]);
        memcpy(buf, frame_head[k], f->len);
    }
}

/* Append one encoded value; 0 when the frame (closed) would exceed cap. */
static int frame_add(frame *f, const void *enc, size_t n)
{
    if (f->enc == BCAST_ENC_BIN) {
        if (f->len + n > f->cap || f->count == BCAST_BIN_MAX_COUNT)
            return 0;
    } else {
        if (f->len + 1 + n + 2 > f->cap) /* a comma, the value, "]}" */
            return 0;
        if (f->count)
            f->buf[f->len++] = ',';
    }
    memcpy(f->buf + f->len, enc, n);
    f->len += n;
    f->count++;
    return 1;
}

/* Finish the frame; returns its length. */
static size_t frame_close(frame *f)
{
    if (f->enc == BCAST_ENC_BIN) {
        f->buf[2] = (char)(f->count & 0xff);
        f->buf[3] = (char)(f->count >> 8);
    } else {
        f->buf[f->len++] = ']';
        f->buf[f->len++] = '}';
    }
    return f->len;
}

/* Plain snapshots first (as before resume existed), then reset snapshots,
 * then replays; updates only when none of those is due. */
static frame_kind next_kind(const bcast_client *c)
{
    if (c->nsnap > c->nreset)
        return FRAME_SNAPSHOT;
    if (c->nreset)
        return FRAME_RESET;
    if (c->nreplay)
        return FRAME_REPLAY;
    return c->npending ? FRAME_UPDATE : FRAME_NONE;
}

static uint32_t due_of_kind(const bcast_client *c, frame_kind k)
{
    switch (k) {
    case FRAME_SNAPSHOT: return c->nsnap - c->nreset;
    case FRAME_RESET: return c->nreset;
    case FRAME_REPLAY: return c->nreplay;
    case FRAME_UPDATE: return c->npending;
    default: return 0;
    }
}

static int sub_due(const bcast_sub *s, frame_kind k)
{
    switch (k) {
    case FRAME_SNAPSHOT: return s->snap && !s->reset;
    case FRAME_RESET: return s->snap && s->reset;
    case FRAME_REPLAY: return s->replay;
    case FRAME_UPDATE: return s->pending;
    default: return 0;
    }
}

/* Is value x of sym in the client's ring and recent enough to send as
 * backlog? The time is the JSON ring's (always kept when rings are on; the
 * binary ring, started later, holds no more than it). now is read once per
 * frame, when first needed. */
static int in_backlog_window(const bcast *b, const bcast_symbol *sym, bcast_enc enc, uint64_t x,
                             int64_t *now)
{
    if (!b->opts.backlog_ms || !ring_holds(sym, enc, x) || !ring_holds(sym, BCAST_ENC_JSON, x))
        return 0;
    if (!*now)
        *now = mono_us();
    return *now - sym->ring[x % sym->ring_depth].at_us <= (int64_t)b->opts.backlog_ms * 1000;
}

/* Add the ring's values after s->sent_seq up to the symbol's latest, moving
 * sent_seq along (replays and backlogs; the ring holds sent_seq + 1).
 * Returns 1 when the frame filled before the last of them. */
static int frame_add_ring_run(frame *f, const bcast_symbol *sym, bcast_enc enc, bcast_sub *s)
{
    size_t n;
    while (s->sent_seq < sym->seq) {
        const void *v = ring_value(sym, enc, s->sent_seq + 1, &n);
        if (!frame_add(f, v, n))
            return 1;
        s->sent_seq++;
    }
    return 0;
}

/* One frame of kind k. Everything due of that kind that fits goes in; when
 * nothing could be sent (symbols without a value, replays that became
 * resets), no subscription of kind k is left due. */
static size_t frame_build(bcast_client *c, frame_kind k, char *buf, size_t cap)
{
    bcast *b = c->b;
    bcast_enc enc = (bcast_enc)c->enc;
    frame f;
    size_t n;
    int64_t now = 0;
    frame_open(&f, enc, k, buf, cap);

    uint32_t i = c->cursor < c->nsubs ? c->cursor : 0;
    for (uint32_t walked = 0; walked < c->nsubs && due_of_kind(c, k);
         walked++, i = i + 1 == c->nsubs ? 0 : i + 1) {
        bcast_sub *s = &c->subs[i];
        if (!sub_due(s, k))
            continue;
        bcast_symbol *sym = &b->syms[s->sym];
        if (k == FRAME_SNAPSHOT || k == FRAME_RESET) {
            if (!sym->seq) {
                /* Nothing to snapshot yet: the first value comes as an update,
                 * or after a reset as a reset snapshot (see bcast_publish). */
                int reset = s->reset;
                sub_clear(c, s);
                s->reset = (uint8_t)reset;
                continue;
            }
            const void *v = sym_value(sym, enc, &n);
            if (!frame_add(&f, v, n))
                break; /* frame full: the rest stays due for next time */
            s->sent_seq = sym->seq;
            sub_clear(c, s);
        } else if (k == FRAME_REPLAY) {
            if (s->sent_seq >= sym->seq) { /* nothing left (not reached: see below) */
                s->replay = 0;
                c->nreplay--;
                b->stats.resume_replayed++;
                continue;
            }
            if (!ring_holds(sym, enc, s->sent_seq + 1)) {
                /* The ring moved past this replay (a slow reader, a small
                 * ring) or was dropped by a reload: the client gets a reset. */
                sub_mark_reset(c, s, BCAST_RESET_TOO_OLD);
                continue;
            }
            int full = frame_add_ring_run(&f, sym, enc, s);
            if (s->sent_seq == sym->seq) {
                s->replay = 0;
                c->nreplay--;
                b->stats.resume_replayed++;
            }
            if (full)
                break; /* the next frame goes on from this symbol */
        } else {
            int full = 0;
            uint64_t behind = sym->seq - s->sent_seq;
            if (sym->seq > s->sent_seq && s->sent_seq && behind > 1 &&
                in_backlog_window(b, sym, enc, s->sent_seq + 1, &now)) {
                /* A little behind: every value it missed, from the ring (the
                 * same bytes), so a client that keeps up loses nothing. */
                full = frame_add_ring_run(&f, sym, enc, s);
            } else if (sym->seq > s->sent_seq) {
                /* Far behind (or no ring): converge to the latest value. */
                const void *v = sym_value(sym, enc, &n);
                if (!frame_add(&f, v, n))
                    break;
                if (s->sent_seq && behind > 1) {
                    b->stats.conflated += behind - 1;
                    c->st.conflated += behind - 1;
                }
                s->sent_seq = sym->seq;
            }
            if (full)
                break; /* the next frame goes on from this symbol */
            s->pending = 0;
            c->npending--;
        }
    }
    c->cursor = i;
    if (!f.count)
        return 0;
    b->stats.frames_out++;
    c->st.frames_out++;
    c->st.values_out += f.count;
    if (k == FRAME_REPLAY)
        b->stats.replayed_out += f.count;
    else if (k == FRAME_UPDATE)
        b->stats.updates_out += f.count;
    else
        b->stats.snapshots_out += f.count;
    return frame_close(&f);
}

size_t bcast_client_frame(bcast_client *c, char *buf, size_t cap)
{
    if (cap > c->b->opts.max_frame_bytes)
        cap = c->b->opts.max_frame_bytes;
    c->wake_requested = 0;
    size_t len = 0;
    if (cap >= FRAME_HEAD_MAX + BCAST_ENC_MAX + 2) {
        /* A kind that yields no frame leaves none of its kind due (see
         * frame_build), so this tries each kind at most once or twice (a
         * replay that turned into resets makes reset snapshots due). */
        for (int tries = 0; !len && tries < 6; tries++) {
            frame_kind k = next_kind(c);
            if (k == FRAME_NONE)
                break;
            len = frame_build(c, k, buf, cap);
        }
    }
    /* The transport asks to write again while anything is pending. */
    c->wake_requested = bcast_client_has_pending(c) ? 1 : 0;
    return len;
}

/* ---- the cluster edge's seams ---- */

void bcast_set_room_hook(bcast *b, bcast_room_fn fn, void *arg)
{
    b->room_fn = fn;
    b->room_arg = arg;
}

void bcast_symbol_set_loading(bcast *b, uint32_t id, int loading)
{
    if (id >= b->nsyms)
        return;
    bcast_symbol *s = &b->syms[id];
    s->loading = loading ? 1 : 0;
    if (loading)
        return;
    for (uint32_t i = 0; i < s->nmembers; i++) {
        bcast_client *c = s->members[i].c;
        bcast_sub *sub = &c->subs[s->members[i].sub];
        int what = sub->wait;
        sub->wait = WAIT_NONE;
        if (what == WAIT_SNAPSHOT)
            sub_mark_snapshot(c, sub);
        else if (what == WAIT_RESUME)
            sub_resume(c, sub, sub->sent_seq, 0);
        else if (what == WAIT_RESET)
            sub_mark_reset(c, sub, BCAST_RESET_EPOCH);
        else
            continue;
        if (bcast_client_has_pending(c))
            client_wake(c);
    }
}

void bcast_symbol_reset(bcast *b, uint32_t id, bcast_reset_reason why)
{
    if (id >= b->nsyms)
        return;
    bcast_symbol *s = &b->syms[id];
    s->seq = 0;
    s->stale = 0;
    s->ring_count = 0;
    s->bin_ring_count = 0;
    for (uint32_t i = 0; i < s->nmembers; i++) {
        bcast_client *c = s->members[i].c;
        bcast_sub *sub = &c->subs[s->members[i].sub];
        if (sub->wait)
            continue; /* decided when the loading ends, against the new seqs */
        /* The reset waits for the symbol's next value (it has none now). */
        sub_mark_reset(c, sub, why);
        sub->sent_seq = 0;
        if (!bcast_client_has_pending(c))
            c->wake_requested = 0;
    }
}

void bcast_set_epoch(bcast *b, const char *epoch)
{
    snprintf(b->epoch, sizeof(b->epoch), "%s", epoch);
}
