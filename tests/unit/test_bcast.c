/* Broadcaster: rooms, snapshots before updates, per-client conflation (one
 * pending value per symbol, latest wins, memory independent of rate), frame
 * limits, the JSON encoding of an update, resume (per-symbol rings,
 * replay / reset / up to date, ordering against live updates), and the
 * binary encoding (decoded here from the documented layout). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "tickerd/bcast.h"

static int wakes;
static void wake(void *arg)
{
    (void)arg;
    wakes++;
}

static const char *const SYMS[] = {"BTC-USD", "ETH-USD", "SOL-USD", "EUR-USD"};

static bcast *make(uint32_t max_subs, size_t max_frame)
{
    bcast_opts o = {.max_subscriptions = max_subs, .max_frame_bytes = max_frame};
    bcast *b = bcast_create(&o);
    for (uint32_t i = 0; i < 4; i++)
        bcast_symbol_added(b, i, SYMS[i]);
    return b;
}

static void publish(bcast *b, uint32_t id, double last, uint64_t seq)
{
    norm_quote q;
    memset(&q, 0, sizeof(q));
    strcpy(q.symbol, SYMS[id]);
    q.last = last;
    q.bid = last - 0.5;
    q.ask = last + 0.5;
    q.volume = 1;
    q.open = 100;
    q.seq = seq;
    q.ts_us = 1700000000000000 + (int64_t)seq;
    q.source = "sim";
    bcast_publish(b, id, &q);
}

/* Parse the client's next frame; returns its "updates" array (caller owns
 * root) and the op in *op. */
static json_t *next_frame(bcast_client *c, json_t **root, const char **op)
{
    static char buf[1 << 16];
    size_t len = bcast_client_frame(c, buf, sizeof(buf));
    *root = NULL;
    if (!len)
        return NULL;
    *root = json_loadb(buf, len, 0, NULL);
    CHECK(*root != NULL);
    if (!*root)
        return NULL;
    *op = json_string_value(json_object_get(*root, "op"));
    return json_object_get(*root, "updates");
}

static void snapshot_comes_before_updates(void)
{
    bcast *b = make(100, 65536);
    publish(b, 0, 101, 1);
    bcast_client *c = bcast_client_create(b, wake, NULL);
    const char *names[] = {"BTC-USD", "ETH-USD"};
    size_t unknown[2], nunknown;
    wakes = 0;
    CHECK(bcast_subscribe(c, names, 2, unknown, &nunknown) == BCAST_OK);
    CHECK(wakes == 1);
    publish(b, 0, 102, 2); /* lands in the due snapshot */

    json_t *root;
    const char *op;
    json_t *ups = next_frame(c, &root, &op);
    CHECK(ups && !strcmp(op, "snapshot"));
    CHECK(json_array_size(ups) == 1); /* ETH has no value yet */
    CHECK(json_number_value(json_object_get(json_array_get(ups, 0), "last")) == 102);
    json_decref(root);
    CHECK(!bcast_client_has_pending(c));

    publish(b, 1, 50, 1); /* ETH's first value arrives as an update */
    ups = next_frame(c, &root, &op);
    CHECK(ups && !strcmp(op, "update") && json_array_size(ups) == 1);
    CHECK(!strcmp(json_string_value(json_object_get(json_array_get(ups, 0), "symbol")),
                  "ETH-USD"));
    json_decref(root);
    bcast_client_destroy(c);
    bcast_destroy(b);
}

static void slow_client_gets_latest_value_once_per_symbol(void)
{
    bcast *b = make(100, 65536);
    bcast_client *c = bcast_client_create(b, wake, NULL);
    const char *names[] = {"BTC-USD", "SOL-USD"};
    size_t unknown[2], nunknown;
    bcast_subscribe(c, names, 2, unknown, &nunknown);
    json_t *root;
    const char *op;
    next_frame(c, &root, &op); /* nothing to snapshot: no values yet */
    json_decref(root);

    wakes = 0;
    /* 10,000 values while the client does not write: still one pending each. */
    for (uint64_t seq = 1; seq <= 10000; seq++) {
        publish(b, 0, 100 + (double)seq, seq);
        publish(b, 2, 200 + (double)seq, seq);
        publish(b, 1, 1, seq); /* not subscribed: must never appear */
    }
    CHECK(wakes == 1); /* one wake, however many values */
    json_t *ups = next_frame(c, &root, &op);
    CHECK(ups && json_array_size(ups) == 2);
    for (size_t i = 0; ups && i < json_array_size(ups); i++) {
        json_t *u = json_array_get(ups, i);
        const char *sym = json_string_value(json_object_get(u, "symbol"));
        CHECK(strcmp(sym, "ETH-USD") != 0);
        CHECK(json_integer_value(json_object_get(u, "seq")) == 10000);
    }
    json_decref(root);
    CHECK(!bcast_client_has_pending(c));
    CHECK(bcast_client_frame(c, (char[4096]){0}, 4096) == 0);

    /* A gap the client saw is counted as conflated. */
    publish(b, 0, 1, 10005);
    ups = next_frame(c, &root, &op);
    json_decref(root);
    CHECK(bcast_get_stats(b)->conflated == 4);
    bcast_client_destroy(c);
    bcast_destroy(b);
}

static void unsubscribe_and_rooms_stay_consistent(void)
{
    bcast *b = make(100, 65536);
    bcast_client *c1 = bcast_client_create(b, wake, NULL);
    bcast_client *c2 = bcast_client_create(b, wake, NULL);
    const char *all[] = {"BTC-USD", "ETH-USD", "SOL-USD", "EUR-USD"};
    size_t unknown[4], nunknown;
    bcast_subscribe(c1, all, 4, unknown, &nunknown);
    bcast_subscribe(c2, all, 4, unknown, &nunknown);
    CHECK(bcast_get_stats(b)->subscriptions == 8);
    const char *two[] = {"ETH-USD", "BTC-USD"};
    bcast_unsubscribe(c1, two, 2);
    CHECK(bcast_client_subscription_count(c1) == 2);
    CHECK(bcast_get_stats(b)->subscriptions == 6);
    publish(b, 0, 1, 1);
    publish(b, 3, 1, 1);
    json_t *root;
    const char *op;
    json_t *ups = next_frame(c1, &root, &op); /* snapshot: only EUR (SOL has no value) */
    CHECK(ups && json_array_size(ups) == 1);
    CHECK(ups && !strcmp(json_string_value(json_object_get(json_array_get(ups, 0), "symbol")),
                         "EUR-USD"));
    json_decref(root);
    ups = next_frame(c2, &root, &op);
    CHECK(ups && json_array_size(ups) == 2);
    json_decref(root);
    bcast_client_destroy(c2); /* removing c2 must leave c1's room links valid */
    publish(b, 3, 2, 2);
    ups = next_frame(c1, &root, &op);
    CHECK(ups && json_array_size(ups) == 1);
    json_decref(root);
    CHECK(bcast_get_stats(b)->subscriptions == 2);
    bcast_client_destroy(c1);
    CHECK(bcast_get_stats(b)->subscriptions == 0 && bcast_get_stats(b)->clients == 0);
    bcast_destroy(b);
}

static void subscribe_is_atomic_and_limited(void)
{
    bcast *b = make(2, 65536);
    bcast_client *c = bcast_client_create(b, wake, NULL);
    const char *bad[] = {"BTC-USD", "NOPE-USD", "XX-YY"};
    size_t unknown[3], nunknown;
    CHECK(bcast_subscribe(c, bad, 3, unknown, &nunknown) == BCAST_EUNKNOWN);
    CHECK(nunknown == 2 && unknown[0] == 1 && unknown[1] == 2);
    CHECK(bcast_client_subscription_count(c) == 0);
    const char *three[] = {"BTC-USD", "ETH-USD", "SOL-USD"};
    CHECK(bcast_subscribe(c, three, 3, unknown, &nunknown) == BCAST_ELIMIT);
    CHECK(bcast_client_subscription_count(c) == 0);
    const char *dup[] = {"BTC-USD", "BTC-USD", "ETH-USD"};
    CHECK(bcast_subscribe(c, dup, 3, unknown, &nunknown) == BCAST_OK);
    CHECK(bcast_client_subscription_count(c) == 2);
    /* "*" counts as one subscription, and follows symbols added later. */
    const char *star[] = {"*"};
    CHECK(bcast_subscribe(c, star, 1, unknown, &nunknown) == BCAST_OK);
    CHECK(bcast_client_subscription_count(c) == 4);
    bcast_symbol_added(b, 4, "NEW-USD");
    CHECK(bcast_client_subscription_count(c) == 5);
    bcast_unsubscribe(c, star, 1);
    CHECK(bcast_client_subscription_count(c) == 0);
    bcast_symbol_added(b, 5, "NEWER-USD");
    CHECK(bcast_client_subscription_count(c) == 0);
    bcast_client_destroy(c);
    bcast_destroy(b);
}

static void full_frames_carry_the_rest_next_time(void)
{
    bcast *b = make(100, 1024); /* room for only a few updates per frame */
    bcast_client *c = bcast_client_create(b, wake, NULL);
    const char *star[] = {"*"};
    size_t unknown[1], nunknown;
    char name[32];
    for (uint32_t i = 4; i < 40; i++) {
        snprintf(name, sizeof(name), "S%u-USD", i);
        bcast_symbol_added(b, i, name);
    }
    bcast_subscribe(c, star, 1, unknown, &nunknown);
    char buf[1024];
    bcast_client_frame(c, buf, sizeof(buf)); /* empty snapshot pass */
    norm_quote q;
    memset(&q, 0, sizeof(q));
    q.last = q.bid = q.ask = q.open = 1;
    q.seq = 1;
    q.source = "sim";
    for (uint32_t i = 0; i < 40; i++) {
        snprintf(q.symbol, sizeof(q.symbol), "%s", i < 4 ? SYMS[i] : (sprintf(name, "S%u-USD", i), name));
        bcast_publish(b, i, &q);
    }
    size_t total = 0, frames = 0, len;
    while ((len = bcast_client_frame(c, buf, sizeof(buf))) > 0) {
        CHECK(len <= sizeof(buf));
        json_t *root = json_loadb(buf, len, 0, NULL);
        CHECK(root != NULL);
        total += json_array_size(json_object_get(root, "updates"));
        json_decref(root);
        frames++;
    }
    CHECK(total == 40);
    CHECK(frames > 1);
    bcast_client_destroy(c);
    bcast_destroy(b);
}

static void encodes_an_update_as_json_with_the_contract_keys(void)
{
    norm_quote q;
    memset(&q, 0, sizeof(q));
    strcpy(q.symbol, "BTC-USD");
    q.last = 65012.34;
    q.bid = 65012.3;
    q.ask = 65012.5;
    q.volume = 1234.5;
    q.open = 64000;
    q.seq = 42;
    q.ts_us = 1763913600123456;
    q.source = "sim";
    char buf[BCAST_ENC_MAX];
    size_t len = bcast_encode_json(buf, &q);
    CHECK(len > 0 && len < BCAST_ENC_MAX);
    json_t *j = json_loadb(buf, len, 0, NULL);
    CHECK(j != NULL);
    CHECK(!strcmp(json_string_value(json_object_get(j, "symbol")), "BTC-USD"));
    CHECK(json_number_value(json_object_get(j, "last")) == 65012.34);
    CHECK(json_number_value(json_object_get(j, "bid")) == 65012.3);
    CHECK(json_number_value(json_object_get(j, "ask")) == 65012.5);
    CHECK(json_integer_value(json_object_get(j, "seq")) == 42);
    CHECK(json_is_integer(json_object_get(j, "ts")));
    CHECK(json_integer_value(json_object_get(j, "ts")) == 1763913600123456);
    CHECK(fabs(json_number_value(json_object_get(j, "change")) - 1012.34) < 1e-6);
    CHECK(fabs(json_number_value(json_object_get(j, "change_pct")) - 1.5818) < 1e-4);
    json_decref(j);

    /* Extreme values still fit the slot and stay valid JSON. */
    memset(q.symbol, 'A', SYMTAB_NAME_MAX - 3);
    q.symbol[SYMTAB_NAME_MAX - 3] = '-';
    q.symbol[SYMTAB_NAME_MAX - 2] = 'B';
    q.symbol[SYMTAB_NAME_MAX - 1] = 0;
    q.last = q.bid = q.ask = q.volume = 1.234567890123e300;
    q.open = 1e-300; /* change_pct overflows to inf: must still encode */
    q.seq = INT64_MAX; /* jansson reads int64 only */
    q.ts_us = INT64_MIN;
    q.source = "a-feed-name-of-31-characters-xx";
    len = bcast_encode_json(buf, &q);
    CHECK(len < BCAST_ENC_MAX - 1);
    json_error_t jerr;
    j = json_loadb(buf, len, 0, &jerr);
    CHECK(j != NULL);
    if (!j)
        fprintf(stderr, "  %.*s\n  %s\n", (int)len, buf, jerr.text);
    json_decref(j);
}

static void unsubscribing_the_only_pending_symbol_keeps_the_client_wakeable(void)
{
    bcast *b = make(100, 65536);
    bcast_client *c = bcast_client_create(b, wake, NULL);
    const char *two[] = {"BTC-USD", "ETH-USD"};
    size_t unknown[2], nunknown;
    bcast_subscribe(c, two, 2, unknown, &nunknown);
    char buf[4096];
    bcast_client_frame(c, buf, sizeof(buf));
    wakes = 0;
    publish(b, 0, 1, 1); /* BTC pending, one wake */
    const char *btc[] = {"BTC-USD"};
    bcast_unsubscribe(c, btc, 1); /* ...and gone before any write */
    CHECK(!bcast_client_has_pending(c));
    publish(b, 1, 2, 1); /* ETH must wake the client again */
    CHECK(wakes == 2);
    CHECK(bcast_client_frame(c, buf, sizeof(buf)) > 0);
    bcast_client_destroy(c);
    bcast_destroy(b);
}

/* ---- resume ---- */

static bcast *make_resume(uint32_t depth, size_t max_frame)
{
    bcast_opts o = {.max_subscriptions = 100, .max_frame_bytes = max_frame, .resume_depth = depth};
    bcast *b = bcast_create(&o);
    for (uint32_t i = 0; i < 4; i++)
        bcast_symbol_added(b, i, SYMS[i]);
    return b;
}

/* One frame, flattened: its op, its reset flag, and (symbol index, seq) of
 * each update object in order. Returns the number of objects, -1 when no
 * frame was due. */
typedef struct frame_info {
    char op[16];
    int reset;
    size_t len;
    size_t n;
    uint32_t sym[4096];
    uint64_t seq[4096];
} frame_info;

static int sym_index(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, SYMS[i]))
            return i;
    return -1;
}

static long take(bcast_client *c, frame_info *f)
{
    static char buf[1 << 16];
    memset(f, 0, sizeof(*f));
    f->len = bcast_client_frame(c, buf, sizeof(buf));
    if (!f->len)
        return -1;
    json_error_t jerr;
    json_t *root = json_loadb(buf, f->len, 0, &jerr);
    CHECK(root != NULL);
    if (!root) {
        fprintf(stderr, "  %.*s\n  %s\n", (int)f->len, buf, jerr.text);
        return -1;
    }
    snprintf(f->op, sizeof(f->op), "%s", json_string_value(json_object_get(root, "op")));
    f->reset = json_is_true(json_object_get(root, "reset"));
    CHECK(json_object_get(root, "reset") == NULL || f->reset); /* present only as true */
    json_t *ups = json_object_get(root, "updates");
    for (size_t i = 0; i < json_array_size(ups) && f->n < 4096; i++, f->n++) {
        json_t *u = json_array_get(ups, i);
        f->sym[f->n] = (uint32_t)sym_index(json_string_value(json_object_get(u, "symbol")));
        f->seq[f->n] = (uint64_t)json_integer_value(json_object_get(u, "seq"));
    }
    json_decref(root);
    return (long)f->n;
}

static bcast_rc resume_sub(bcast_client *c, const char *const *names, size_t n,
                           const bcast_resume *r, size_t nr, int other_epoch)
{
    size_t unknown[16], nunknown;
    return bcast_subscribe_resume(c, names, n, r, nr, other_epoch, unknown, &nunknown);
}

static void publish_range(bcast *b, uint32_t id, uint64_t from, uint64_t to)
{
    for (uint64_t seq = from; seq <= to; seq++)
        publish(b, id, 100 + (double)seq, seq);
}

static void ring_wraps_and_replays_in_order_without_gap_or_duplicate(void)
{
    bcast *b = make_resume(8, 65536);
    publish_range(b, 0, 1, 20); /* the ring of 8 wrapped: it holds 13..20 */
    const char *btc[] = {"BTC-USD"};
    frame_info f;

    /* From 12 (the oldest replayable): exactly 13..20, in order, one frame. */
    bcast_client *c = bcast_client_create(b, wake, NULL);
    bcast_resume r = {"BTC-USD", 12};
    CHECK(resume_sub(c, btc, 1, &r, 1, 0) == BCAST_OK);
    CHECK(take(c, &f) == 8);
    CHECK(!strcmp(f.op, "replay") && !f.reset);
    for (size_t i = 0; i < f.n; i++)
        CHECK(f.sym[i] == 0 && f.seq[i] == 13 + i);
    CHECK(!bcast_client_has_pending(c));
    CHECK(bcast_get_stats(b)->replayed_out == 8 && bcast_get_stats(b)->resume_replayed == 1);

    /* Live updates then continue at the next seq: no gap, no duplicate. */
    publish(b, 0, 1, 21);
    CHECK(take(c, &f) == 1 && !strcmp(f.op, "update") && f.seq[0] == 21);
    bcast_client_destroy(c);

    /* From 17, after the ring wrapped once more. */
    publish_range(b, 0, 22, 29); /* holds 22..29 */
    c = bcast_client_create(b, wake, NULL);
    r.seq = 25;
    CHECK(resume_sub(c, btc, 1, &r, 1, 0) == BCAST_OK);
    CHECK(take(c, &f) == 4 && !strcmp(f.op, "replay"));
    CHECK(f.seq[0] == 26 && f.seq[3] == 29);
    CHECK(take(c, &f) == -1);
    bcast_client_destroy(c);
    bcast_destroy(b);
}

static void too_old_seq_ahead_and_other_epoch_get_a_reset_snapshot(void)
{
    const char *btc[] = {"BTC-USD"};
    frame_info f;
    struct {
        uint64_t seq;
        int other_epoch;
        bcast_reset_reason why;
    } cases[] = {
        {11, 0, BCAST_RESET_TOO_OLD}, /* 12 left the ring (it holds 13..20) */
        {0, 0, BCAST_RESET_TOO_OLD},
        {21, 0, BCAST_RESET_AHEAD},   /* a seq this server never published: it restarted */
        {5000, 0, BCAST_RESET_AHEAD},
        {15, 1, BCAST_RESET_EPOCH},   /* replayable, but from another server instance */
        {20, 1, BCAST_RESET_EPOCH},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bcast *b = make_resume(8, 65536);
        publish_range(b, 0, 1, 20);
        bcast_client *c = bcast_client_create(b, wake, NULL);
        bcast_resume r = {"BTC-USD", cases[i].seq};
        CHECK(resume_sub(c, btc, 1, &r, 1, cases[i].other_epoch) == BCAST_OK);
        CHECK(take(c, &f) == 1);
        CHECK(!strcmp(f.op, "snapshot") && f.reset);
        CHECK(f.seq[0] == 20); /* the current value */
        for (int why = 0; why < BCAST_RESET_COUNT; why++)
            CHECK(bcast_get_stats(b)->resume_resets[why] == (why == (int)cases[i].why));
        CHECK(take(c, &f) == -1);
        publish(b, 0, 1, 21); /* then live updates */
        CHECK(take(c, &f) == 1 && !strcmp(f.op, "update") && f.seq[0] == 21);
        CHECK(bcast_get_stats(b)->replayed_out == 0);
        bcast_client_destroy(c);
        bcast_destroy(b);
    }
}

static void up_to_date_resume_sends_nothing_then_live_updates(void)
{
    bcast *b = make_resume(8, 65536);
    publish_range(b, 0, 1, 20);
    bcast_client *c = bcast_client_create(b, wake, NULL);
    const char *btc[] = {"BTC-USD"};
    bcast_resume r = {"BTC-USD", 20};
    frame_info f;
    CHECK(resume_sub(c, btc, 1, &r, 1, 0) == BCAST_OK);
    CHECK(!bcast_client_has_pending(c));
    CHECK(take(c, &f) == -1);
    CHECK(bcast_get_stats(b)->resume_current == 1);
    publish(b, 0, 1, 21);
    CHECK(take(c, &f) == 1 && !strcmp(f.op, "update") && f.seq[0] == 21);
    CHECK(bcast_get_stats(b)->conflated == 0);
    bcast_client_destroy(c);

    /* seq 0 on a symbol with no value yet is up to date too: its first value
     * comes as an update, seq 1. */
    c = bcast_client_create(b, wake, NULL);
    const char *eth[] = {"ETH-USD"};
    bcast_resume r0 = {"ETH-USD", 0};
    CHECK(resume_sub(c, eth, 1, &r0, 1, 0) == BCAST_OK);
    CHECK(take(c, &f) == -1);
    publish(b, 1, 1, 1);
    CHECK(take(c, &f) == 1 && !strcmp(f.op, "update") && f.seq[0] == 1);
    bcast_client_destroy(c);
    bcast_destroy(b);
}

static void a_reset_of_a_symbol_without_value_waits_for_its_first_value(void)
{
    /* A restarted server that has not quoted the symbol yet: the client's seq
     * is ahead; the first value must come as a reset snapshot, not an update. */
    bcast *b = make_resume(8, 65536);
    bcast_client *c = bcast_client_create(b, wake, NULL);
    const char *eth[] = {"ETH-USD"};
    bcast_resume r = {"ETH-USD", 500};
    frame_info f;
    CHECK(resume_sub(c, eth, 1, &r, 1, 0) == BCAST_OK);
    CHECK(!bcast_client_has_pending(c)); /* nothing to send: no busy wake-ups */
    CHECK(take(c, &f) == -1);
    wakes = 0;
    publish(b, 1, 7, 1);
    CHECK(wakes == 1);
    CHECK(take(c, &f) == 1 && !strcmp(f.op, "snapshot") && f.reset && f.seq[0] == 1);
    publish(b, 1, 8, 2);
    CHECK(take(c, &f) == 1 && !strcmp(f.op, "update") && f.seq[0] == 2);
    bcast_client_destroy(c);
    bcast_destroy(b);
}

/* Frames until none is due; checks per-symbol order: everything before the
 * first update of a symbol is replay (or snapshot), seqs consecutive across
 * the seam. Publishes `extra` more values of sym 0 between the frames. */
static void replay_larger_than_a_frame_is_split_and_precedes_live_updates(void)
{
    bcast *b = make_resume(64, 1024); /* a few objects per frame */
    publish_range(b, 0, 1, 50);
    publish_range(b, 1, 1, 3);
    bcast_client *c = bcast_client_create(b, wake, NULL);
    const char *two[] = {"BTC-USD", "ETH-USD"};
    bcast_resume r = {"BTC-USD", 0};
    CHECK(resume_sub(c, two, 2, &r, 1, 0) == BCAST_OK);

    frame_info f;
    uint64_t next_btc = 1;
    int replay_frames = 0, btc_updates = 0, eth_snapshot = 0, seen_update = 0;
    uint64_t published = 50;
    while (take(c, &f) >= 0) {
        CHECK(f.len <= 1024);
        if (!strcmp(f.op, "replay")) {
            replay_frames++;
            CHECK(!seen_update); /* no update frame before the replay is over */
        } else if (!strcmp(f.op, "update")) {
            seen_update = 1;
        } else {
            CHECK(!strcmp(f.op, "snapshot") && !f.reset); /* ETH: a plain snapshot */
            CHECK(replay_frames == 0);                    /* snapshots go first */
        }
        for (size_t i = 0; i < f.n; i++) {
            if (f.sym[i] == 1) {
                eth_snapshot += !strcmp(f.op, "snapshot");
                continue;
            }
            CHECK(f.sym[i] == 0);
            CHECK(f.seq[i] == next_btc); /* consecutive: no gap, no duplicate */
            next_btc = f.seq[i] + 1;
            btc_updates += !strcmp(f.op, "update");
        }
        /* Live values keep arriving during the replay: they must wait. */
        if (published < 70)
            publish(b, 0, 1, ++published);
    }
    CHECK(replay_frames > 5);
    CHECK(eth_snapshot == 1);
    CHECK(next_btc == published + 1);
    CHECK(btc_updates > 0); /* the seam was crossed: replay, then updates, consecutive */
    publish(b, 0, 1, ++published);
    CHECK(take(c, &f) == 1 && !strcmp(f.op, "update") && f.seq[0] == published);
    CHECK(bcast_get_stats(b)->conflated == 0);
    bcast_client_destroy(c);
    bcast_destroy(b);
}

static void live_update_never_overtakes_a_replay(void)
{
    /* Two symbols resumed, one plain: the plain one's update must wait until
     * the replays are out (frames go by kind), and the resumed ones' values
     * published meanwhile end up in their replay, never in an update ahead of it. */
    bcast *b = make_resume(16, 65536);
    publish_range(b, 0, 1, 10);
    publish_range(b, 2, 1, 10);
    publish_range(b, 3, 1, 10);
    bcast_client *c = bcast_client_create(b, wake, NULL);
    const char *three[] = {"BTC-USD", "SOL-USD", "EUR-USD"};
    bcast_resume r[] = {{"BTC-USD", 4}, {"SOL-USD", 9}};
    CHECK(resume_sub(c, three, 3, r, 2, 0) == BCAST_OK);
    publish(b, 0, 1, 11);
    publish(b, 2, 1, 11);
    publish(b, 3, 1, 11);
    frame_info f;
    CHECK(take(c, &f) == 1 && !strcmp(f.op, "snapshot") && !f.reset && f.sym[0] == 3 &&
          f.seq[0] == 11);
    CHECK(take(c, &f) == 9 && !strcmp(f.op, "replay"));
    uint64_t last[4] = {4, 0, 9, 0};
    for (size_t i = 0; i < f.n; i++) {
        CHECK(f.seq[i] == last[f.sym[i]] + 1);
        last[f.sym[i]] = f.seq[i];
    }
    CHECK(last[0] == 11 && last[2] == 11);
    CHECK(take(c, &f) == -1);
    bcast_client_destroy(c);
    bcast_destroy(b);
}

static void a_replay_that_falls_behind_the_ring_ends_in_a_reset(void)
{
    bcast *b = make_resume(16, 1024);
    publish_range(b, 0, 1, 16);
    bcast_client *c = bcast_client_create(b, wake, NULL);
    const char *btc[] = {"BTC-USD"};
    bcast_resume r = {"BTC-USD", 0};
    CHECK(resume_sub(c, btc, 1, &r, 1, 0) == BCAST_OK);
    frame_info f;
    long n = take(c, &f);
    CHECK(n > 0 && n < 16 && !strcmp(f.op, "replay") && f.seq[n - 1] == (uint64_t)n);
    publish_range(b, 0, 17, 40); /* the reader is slow: the ring now holds 25..40 */
    CHECK(take(c, &f) == 1 && !strcmp(f.op, "snapshot") && f.reset && f.seq[0] == 40);
    CHECK(bcast_get_stats(b)->resume_resets[BCAST_RESET_TOO_OLD] == 1);
    CHECK(bcast_get_stats(b)->resume_replayed == 0);
    CHECK(take(c, &f) == -1);
    bcast_client_destroy(c);
    bcast_destroy(b);
}

static void ring_memory_is_bounded_and_allocated_once(void)
{
    bcast *b = make_resume(32, 65536);
    CHECK(bcast_get_stats(b)->ring_bytes == 0); /* lazily: nothing before a publish */
    publish(b, 0, 1, 1);
    CHECK(bcast_get_stats(b)->ring_bytes == 32 * (uint64_t)BCAST_RING_SLOT_BYTES);
    for (uint32_t id = 0; id < 4; id++)
        publish_range(b, id, id ? 1 : 2, 20000);
    CHECK(bcast_get_stats(b)->ring_bytes == 4 * 32 * (uint64_t)BCAST_RING_SLOT_BYTES);

    /* A client resuming everything holds nothing more than its subscriptions:
     * the replay is read from the rings as frames are built. */
    bcast_client *c = bcast_client_create(b, wake, NULL);
    const char *star[] = {"*"};
    bcast_resume r[] = {{"BTC-USD", 19990}, {"ETH-USD", 19980}, {"SOL-USD", 1}};
    CHECK(resume_sub(c, star, 1, r, 3, 0) == BCAST_OK);
    frame_info f;
    size_t replayed = 0, resets = 0, snaps = 0;
    while (take(c, &f) >= 0) {
        if (!strcmp(f.op, "replay"))
            replayed += f.n;
        else if (f.reset)
            resets += f.n;
        else
            snaps += f.n;
    }
    CHECK(replayed == 10 + 20);
    CHECK(resets == 1 && snaps == 1); /* SOL too old; EUR not resumed */
    CHECK(bcast_get_stats(b)->ring_bytes == 4 * 32 * (uint64_t)BCAST_RING_SLOT_BYTES);
    bcast_client_destroy(c);

    /* A reload with another depth drops the rings; they refill lazily. */
    bcast_opts o = {.max_subscriptions = 100, .max_frame_bytes = 65536, .resume_depth = 8};
    bcast_set_opts(b, &o);
    CHECK(bcast_get_stats(b)->ring_bytes == 0);
    c = bcast_client_create(b, wake, NULL);
    const char *btc[] = {"BTC-USD"};
    bcast_resume rb = {"BTC-USD", 19999};
    CHECK(resume_sub(c, btc, 1, &rb, 1, 0) == BCAST_OK);
    CHECK(take(c, &f) == 1 && f.reset && f.seq[0] == 20000);
    publish_range(b, 0, 20001, 20010);
    CHECK(bcast_get_stats(b)->ring_bytes == 8 * (uint64_t)BCAST_RING_SLOT_BYTES);
    bcast_client_destroy(c);

    /* Depth 0: no rings at all; every resume that is not up to date resets. */
    o.resume_depth = 0;
    bcast_set_opts(b, &o);
    publish_range(b, 0, 20011, 20020);
    CHECK(bcast_get_stats(b)->ring_bytes == 0);
    c = bcast_client_create(b, wake, NULL);
    rb.seq = 20019;
    CHECK(resume_sub(c, btc, 1, &rb, 1, 0) == BCAST_OK);
    CHECK(take(c, &f) == 1 && f.reset && f.seq[0] == 20020);
    bcast_client_destroy(c);
    bcast_destroy(b);
}

static void resume_must_name_subscribed_known_symbols(void)
{
    bcast *b = make_resume(8, 65536);
    publish_range(b, 0, 1, 5);
    bcast_client *c = bcast_client_create(b, wake, NULL);
    const char *btc[] = {"BTC-USD"};
    size_t unknown[4], nunknown;
    bcast_resume other = {"ETH-USD", 1};
    CHECK(bcast_subscribe_resume(c, btc, 1, &other, 1, 0, unknown, &nunknown) == BCAST_ERESUME);
    CHECK(unknown[0] == 1);
    bcast_resume bad[] = {{"BTC-USD", 1}, {"NOPE-USD", 3}};
    CHECK(bcast_subscribe_resume(c, btc, 1, bad, 2, 0, unknown, &nunknown) == BCAST_EUNKNOWN);
    CHECK(nunknown == 1 && unknown[0] == 2);
    CHECK(bcast_client_subscription_count(c) == 0 && !bcast_client_has_pending(c));

    /* A resume of a symbol already subscribed restarts it from that seq; a
     * later plain subscribe of it turns the replay back into a snapshot. */
    CHECK(bcast_subscribe(c, btc, 1, unknown, &nunknown) == BCAST_OK);
    frame_info f;
    CHECK(take(c, &f) == 1 && !strcmp(f.op, "snapshot"));
    bcast_resume r = {"BTC-USD", 2};
    CHECK(resume_sub(c, btc, 1, &r, 1, 0) == BCAST_OK);
    CHECK(bcast_subscribe(c, btc, 1, unknown, &nunknown) == BCAST_OK);
    CHECK(take(c, &f) == 1 && !strcmp(f.op, "snapshot") && !f.reset && f.seq[0] == 5);
    CHECK(resume_sub(c, btc, 1, &r, 1, 0) == BCAST_OK);
    CHECK(take(c, &f) == 3 && !strcmp(f.op, "replay") && f.seq[0] == 3);

    /* Unsubscribing in the middle of a replay leaves nothing due. */
    bcast_resume r1 = {"BTC-USD", 1};
    CHECK(resume_sub(c, btc, 1, &r1, 1, 0) == BCAST_OK);
    CHECK(bcast_client_has_pending(c));
    bcast_unsubscribe(c, btc, 1);
    CHECK(!bcast_client_has_pending(c));
    wakes = 0;
    publish(b, 0, 1, 6);
    CHECK(wakes == 0 && take(c, &f) == -1);
    bcast_client_destroy(c);
    bcast_destroy(b);
}

static void epochs_differ_per_instance(void)
{
    bcast *a = make_resume(8, 65536), *b = make_resume(8, 65536);
    const char *ea = bcast_epoch(a), *eb = bcast_epoch(b);
    CHECK(strlen(ea) == BCAST_EPOCH_LEN && strlen(eb) == BCAST_EPOCH_LEN);
    CHECK(strspn(ea, "0123456789abcdef") == BCAST_EPOCH_LEN);
    CHECK(strcmp(ea, eb) != 0);
    bcast_destroy(a);
    bcast_destroy(b);
}

/* ---- binary encoding (tickerd.bin) ---- */

/* One record of a binary frame, decoded by the layout in docs/protocol.md
 * (written from the document, not from bcast.c). */
typedef struct bin_rec {
    uint8_t flags;
    uint64_t seq;
    int64_t ts;
    double last, bid, ask, volume, open;
    char symbol[32], src[32];
} bin_rec;

typedef struct bin_frame {
    int kind;
    size_t n;
    bin_rec rec[64];
} bin_frame;

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static double get_f64(const uint8_t *p)
{
    uint64_t v = get_u64(p);
    double d;
    memcpy(&d, &v, sizeof(d));
    return d;
}

/* A length-prefixed name inside [p, end); returns the byte after it, NULL
 * when it overruns. */
static const uint8_t *get_name(const uint8_t *p, const uint8_t *end, char *out)
{
    if (p >= end || p + 1 + p[0] > end || p[0] > 31)
        return NULL;
    memcpy(out, p + 1, p[0]);
    out[p[0]] = 0;
    return p + 1 + p[0];
}

/* Decode a whole frame; -1 when it is malformed (every byte must be
 * accounted for). */
static int decode_bin(const uint8_t *buf, size_t len, bin_frame *f)
{
    memset(f, 0, sizeof(*f));
    if (len < 4 || buf[1] != 0)
        return -1;
    f->kind = buf[0];
    size_t count = (size_t)buf[2] | (size_t)buf[3] << 8;
    const uint8_t *p = buf + 4, *end = buf + len;
    for (; f->n < count; f->n++) {
        if (p >= end || f->n == 64)
            return -1;
        const uint8_t *rec_end = p + 1 + p[0];
        if (rec_end > end || p[0] < 58 + 2)
            return -1;
        bin_rec *r = &f->rec[f->n];
        r->flags = p[1];
        r->seq = get_u64(p + 2);
        r->ts = (int64_t)get_u64(p + 10);
        r->last = get_f64(p + 18);
        r->bid = get_f64(p + 26);
        r->ask = get_f64(p + 34);
        r->volume = get_f64(p + 42);
        r->open = get_f64(p + 50);
        const uint8_t *q = get_name(p + 58, rec_end, r->symbol);
        if (!q || !get_name(q, rec_end, r->src))
            return -1;
        p = rec_end; /* fields a later version appends would be skipped here */
    }
    return p == end ? (int)f->n : -1;
}

static long take_bin(bcast_client *c, bin_frame *f)
{
    static uint8_t buf[1 << 16];
    size_t len = bcast_client_frame(c, (char *)buf, sizeof(buf));
    if (!len)
        return -1;
    long n = decode_bin(buf, len, f);
    CHECK(n >= 0);
    return n;
}

static norm_quote quote(uint32_t id, double last, uint64_t seq)
{
    norm_quote q;
    memset(&q, 0, sizeof(q));
    strcpy(q.symbol, SYMS[id]);
    q.last = last;
    q.bid = last - 0.25;
    q.ask = last + 0.125;
    q.volume = 1234.5 + (double)id;
    q.open = 100.0 / 3; /* not exact in decimal: the binary form carries every bit */
    q.seq = seq;
    q.ts_us = 1763913600123456 + (int64_t)seq;
    q.source = "sim";
    return q;
}

static bcast_client *bin_client(bcast *b)
{
    bcast_client *c = bcast_client_create(b, wake, NULL);
    bcast_client_set_encoding(c, BCAST_ENC_BIN);
    return c;
}

static void binary_frames_round_trip_every_field(void)
{
    bcast *b = make(100, 65536);
    bcast_client *c = bin_client(b);
    CHECK(bcast_get_stats(b)->bin_clients == 1);
    norm_quote q0 = quote(0, 65012.34, 7), q1 = quote(1, 3400.5, 3), q2 = quote(2, 150.25, 9);
    q1.stale = 1;         /* "stale":true */
    q2.stale_cleared = 1; /* "stale":false */
    q2.source = "a-feed-name-of-31-characters-xx";
    bcast_publish(b, 0, &q0);
    bcast_publish(b, 1, &q1);
    bcast_publish(b, 2, &q2);
    const char *names[] = {"BTC-USD", "ETH-USD", "SOL-USD", "EUR-USD"};
    size_t unknown[4], nunknown;
    CHECK(bcast_subscribe(c, names, 4, unknown, &nunknown) == BCAST_OK);

    bin_frame f;
    CHECK(take_bin(c, &f) == 3); /* EUR-USD has no value yet */
    CHECK(f.kind == BCAST_BIN_SNAPSHOT);
    const norm_quote *want[] = {&q0, &q1, &q2};
    for (size_t i = 0; i < f.n; i++) {
        const bin_rec *r = &f.rec[i];
        int k = sym_index(r->symbol);
        CHECK(k >= 0 && k < 3);
        if (k < 0 || k >= 3)
            continue;
        const norm_quote *q = want[k];
        CHECK(r->seq == q->seq && r->ts == q->ts_us);
        CHECK(r->last == q->last && r->bid == q->bid && r->ask == q->ask);
        CHECK(r->volume == q->volume && r->open == q->open); /* bit for bit */
        CHECK(!strcmp(r->src, q->source));
        CHECK(r->flags == (k == 1 ? BCAST_BIN_STALE : k == 2 ? BCAST_BIN_STALE_CLEARED : 0));
    }

    /* Several updates in one frame, then the symbol without value arrives
     * as an update too. */
    norm_quote u0 = quote(0, 65013, 8), u3 = quote(3, 1.0825, 1);
    bcast_publish(b, 0, &u0);
    bcast_publish(b, 3, &u3);
    CHECK(take_bin(c, &f) == 2);
    CHECK(f.kind == BCAST_BIN_UPDATE);
    uint64_t seen = 0;
    for (size_t i = 0; i < f.n; i++) {
        int k = sym_index(f.rec[i].symbol);
        seen |= 1u << k;
        CHECK(f.rec[i].seq == (k == 0 ? 8 : 1) && f.rec[i].flags == 0);
        CHECK(f.rec[i].last == (k == 0 ? 65013 : 1.0825));
    }
    CHECK(seen == ((1u << 0) | (1u << 3)));
    CHECK(take_bin(c, &f) == -1);
    bcast_client_destroy(c);
    CHECK(bcast_get_stats(b)->bin_clients == 0);
    bcast_destroy(b);
}

static void one_publish_serves_json_and_binary_clients_alike(void)
{
    bcast *b = make(100, 65536);
    bcast_client *j = bcast_client_create(b, wake, NULL), *c = bin_client(b);
    const char *names[] = {"BTC-USD", "ETH-USD"};
    size_t unknown[2], nunknown;
    CHECK(bcast_subscribe(j, names, 2, unknown, &nunknown) == BCAST_OK);
    CHECK(bcast_subscribe(c, names, 2, unknown, &nunknown) == BCAST_OK);
    publish(b, 0, 101.5, 1);
    publish(b, 1, 202.25, 1);
    publish(b, 0, 102.75, 2);

    frame_info fj;
    bin_frame fb;
    CHECK(take(j, &fj) == 2 && !strcmp(fj.op, "snapshot"));
    CHECK(take_bin(c, &fb) == 2 && fb.kind == BCAST_BIN_SNAPSHOT);
    for (size_t i = 0; i < 2; i++) {
        int k = sym_index(fb.rec[i].symbol);
        /* the same values, in the same order (one walk, one cursor rule) */
        CHECK((uint32_t)k == fj.sym[i] && fb.rec[i].seq == fj.seq[i]);
        CHECK(fb.rec[i].last == (k == 0 ? 102.75 : 202.25));
    }
    bcast_client_destroy(j);
    bcast_client_destroy(c);
    bcast_destroy(b);
}

static void binary_frames_split_at_max_frame_bytes(void)
{
    /* A record of "G00001-USD" from "sim" is 58 + 1 + 10 + 1 + 3 = 73 bytes:
     * a 1024-byte frame holds the 4-byte header and 13 of them. */
    bcast_opts o = {.max_subscriptions = 100, .max_frame_bytes = 1024};
    bcast *b = bcast_create(&o);
    const char *names[40];
    char store[40][16];
    for (uint32_t i = 0; i < 40; i++) {
        snprintf(store[i], sizeof(store[i]), "G%05u-USD", i + 1);
        names[i] = store[i];
        bcast_symbol_added(b, i, store[i]);
        norm_quote q = quote(0, 10 + i, 1);
        strcpy(q.symbol, store[i]);
        bcast_publish(b, i, &q);
    }
    bcast_client *c = bin_client(b);
    size_t unknown[40], nunknown;
    CHECK(bcast_subscribe(c, names, 40, unknown, &nunknown) == BCAST_OK);
    static uint8_t buf[4096];
    size_t total = 0, frames = 0, len;
    bin_frame f;
    while ((len = bcast_client_frame(c, (char *)buf, sizeof(buf))) > 0) {
        CHECK(len <= 1024);
        CHECK(decode_bin(buf, len, &f) > 0 && f.kind == BCAST_BIN_SNAPSHOT);
        CHECK(f.n == (frames < 3 ? 13 : 1));
        CHECK(len == 4 + f.n * 73);
        total += f.n;
        frames++;
    }
    CHECK(total == 40 && frames == 4);
    bcast_client_destroy(c);
    bcast_destroy(b);
}

static void binary_resume_replays_and_resets_from_its_own_ring(void)
{
    bcast *b = make_resume(8, 65536);
    const char *btc[] = {"BTC-USD"};
    bin_frame f;
    frame_info fj;
    publish_range(b, 0, 1, 5); /* before any binary client: JSON ring only */
    uint64_t json_ring_bytes = bcast_get_stats(b)->ring_bytes;

    /* The first binary client starts the binary rings; what was published
     * before exists only in JSON, so a binary resume from there resets while
     * a JSON resume replays. */
    bcast_client *first = bin_client(b);
    publish_range(b, 0, 6, 10);
    CHECK(bcast_get_stats(b)->ring_bytes > json_ring_bytes);
    bcast_resume from3 = {"BTC-USD", 3};
    CHECK(resume_sub(first, btc, 1, &from3, 1, 0) == BCAST_OK);
    CHECK(take_bin(first, &f) == 1 && f.kind == BCAST_BIN_RESET && f.rec[0].seq == 10);
    bcast_client *j = bcast_client_create(b, wake, NULL);
    CHECK(resume_sub(j, btc, 1, &from3, 1, 0) == BCAST_OK);
    CHECK(take(j, &fj) == 7 && !strcmp(fj.op, "replay"));

    /* From inside the binary ring: a replay frame, every value in order. */
    bcast_client *c = bin_client(b);
    bcast_resume from7 = {"BTC-USD", 7};
    CHECK(resume_sub(c, btc, 1, &from7, 1, 0) == BCAST_OK);
    CHECK(take_bin(c, &f) == 3 && f.kind == BCAST_BIN_REPLAY);
    for (size_t i = 0; i < f.n; i++)
        CHECK(f.rec[i].seq == 8 + i && f.rec[i].last == 108 + (double)i);
    publish(b, 0, 111, 11);
    CHECK(take_bin(c, &f) == 1 && f.kind == BCAST_BIN_UPDATE && f.rec[0].seq == 11);

    /* Another instance's seqs: a reset snapshot, as in JSON. */
    bcast_client *d = bin_client(b);
    CHECK(resume_sub(d, btc, 1, &from7, 1, 1) == BCAST_OK);
    CHECK(take_bin(d, &f) == 1 && f.kind == BCAST_BIN_RESET && f.rec[0].seq == 11);

    /* The binary ring stays when binary clients leave: a later one resumes. */
    bcast_client_destroy(first);
    bcast_client_destroy(c);
    bcast_client_destroy(d);
    publish(b, 0, 112, 12);
    bcast_client *e = bin_client(b);
    bcast_resume from10 = {"BTC-USD", 10};
    CHECK(resume_sub(e, btc, 1, &from10, 1, 0) == BCAST_OK);
    CHECK(take_bin(e, &f) == 2 && f.kind == BCAST_BIN_REPLAY && f.rec[1].seq == 12);
    bcast_client_destroy(e);
    bcast_client_destroy(j);
    bcast_destroy(b);
}

static void binary_backlog_and_unpark_read_the_binary_ring(void)
{
    bcast_opts o = {.max_subscriptions = 100, .max_frame_bytes = 65536, .resume_depth = 64,
                    .backlog_ms = 1000};
    bcast *b = bcast_create(&o);
    for (uint32_t i = 0; i < 4; i++)
        bcast_symbol_added(b, i, SYMS[i]);
    bcast_client *c = bin_client(b);
    const char *names[] = {"BTC-USD"};
    size_t unknown[1], nunknown;
    bin_frame f;
    publish(b, 0, 101, 1);
    CHECK(bcast_subscribe(c, names, 1, unknown, &nunknown) == BCAST_OK);
    CHECK(take_bin(c, &f) == 1 && f.kind == BCAST_BIN_SNAPSHOT);

    /* A few behind: each value, consecutive, in one update frame. */
    publish_range(b, 0, 2, 5);
    CHECK(take_bin(c, &f) == 4 && f.kind == BCAST_BIN_UPDATE);
    for (size_t i = 0; i < f.n; i++)
        CHECK(f.rec[i].seq == 2 + i && f.rec[i].last == 102 + (double)i);

    /* Parked for a history that ends at 7: unpark replays 8.. from the ring. */
    uint32_t id = 0;
    bcast_park(c, &id, 1);
    publish_range(b, 0, 6, 10);
    CHECK(take_bin(c, &f) == -1);
    bcast_unpark(c, 0, 7);
    CHECK(take_bin(c, &f) == 3 && f.kind == BCAST_BIN_REPLAY);
    for (size_t i = 0; i < f.n; i++)
        CHECK(f.rec[i].seq == 8 + i);
    bcast_client_destroy(c);
    bcast_destroy(b);
}

static void json_only_broadcasters_keep_no_binary_ring(void)
{
    bcast *b = make_resume(8, 65536);
    publish_range(b, 0, 1, 3);
    uint64_t before = bcast_get_stats(b)->ring_bytes;
    bcast_client *c = bcast_client_create(b, wake, NULL);
    bcast_client_set_encoding(c, BCAST_ENC_JSON); /* explicit JSON changes nothing */
    publish_range(b, 0, 4, 6);
    CHECK(bcast_get_stats(b)->ring_bytes == before);
    CHECK(bcast_get_stats(b)->bin_clients == 0);
    bcast_client_destroy(c);
    bcast_destroy(b);
}
/* The history seam: a parked subscription gets its snapshot, then nothing
 * until unpark, which continues right after the history's last seq. */
static bcast *make_ring(uint32_t depth)
{
    bcast_opts o = {.max_subscriptions = 100, .max_frame_bytes = 65536, .resume_depth = depth};
    bcast *b = bcast_create(&o);
    for (uint32_t i = 0; i < 4; i++)
        bcast_symbol_added(b, i, SYMS[i]);
    return b;
}

static void collect_seqs(bcast_client *c, const char *want_op, uint64_t *seqs, size_t *n)
{
    json_t *root;
    const char *op;
    json_t *ups;
    while ((ups = next_frame(c, &root, &op))) {
        CHECK(!strcmp(op, want_op));
        for (size_t i = 0; i < json_array_size(ups); i++)
            seqs[(*n)++] = (uint64_t)json_integer_value(json_object_get(json_array_get(ups, i), "seq"));
        json_decref(root);
    }
}

static void parked_symbol_continues_after_the_history_seq(void)
{
    bcast *b = make_ring(64);
    for (uint64_t s = 1; s <= 5; s++)
        publish(b, 0, 100 + (double)s, s);
    bcast_client *c = bcast_client_create(b, wake, NULL);
    const char *names[] = {"BTC-USD"};
    uint32_t id = 0;
    size_t unknown[1], nunknown;
    CHECK(bcast_subscribe(c, names, 1, unknown, &nunknown) == BCAST_OK);
    bcast_park(c, &id, 1);
    CHECK(bcast_client_snapshots_due(c));
    uint64_t seqs[64];
    size_t n = 0;
    collect_seqs(c, "snapshot", seqs, &n);
    CHECK(n == 1 && seqs[0] == 5);
    CHECK(!bcast_client_snapshots_due(c));
    for (uint64_t s = 6; s <= 9; s++) /* parked: no update frames */
        publish(b, 0, 100 + (double)s, s);
    CHECK(!bcast_client_has_pending(c));
    /* The history reached seq 3 (the file lags): 4..9 come as a replay. */
    bcast_unpark(c, 0, 3);
    n = 0;
    collect_seqs(c, "replay", seqs, &n);
    CHECK(n == 6);
    for (size_t i = 0; i < n; i++)
        CHECK(seqs[i] == 4 + i);
    publish(b, 0, 110, 10);
    n = 0;
    collect_seqs(c, "update", seqs, &n);
    CHECK(n == 1 && seqs[0] == 10);
    bcast_client_destroy(c);
    bcast_destroy(b);
}

static void unpark_without_history_or_ring_follows_live_or_resets(void)
{
    bcast *b = make_ring(4);
    publish(b, 0, 101, 1);
    bcast_client *c = bcast_client_create(b, wake, NULL);
    const char *names[] = {"BTC-USD"};
    uint32_t id = 0;
    size_t unknown[1], nunknown;
    uint64_t seqs[64];
    size_t n = 0;
    CHECK(bcast_subscribe(c, names, 1, unknown, &nunknown) == BCAST_OK);
    bcast_park(c, &id, 1);
    collect_seqs(c, "snapshot", seqs, &n);
    publish(b, 0, 102, 2);
    /* No history (an error frame): live continues after the snapshot, with
     * what was published meanwhile replayed. */
    bcast_unpark(c, 0, BCAST_UNPARK_LIVE);
    n = 0;
    collect_seqs(c, "replay", seqs, &n);
    CHECK(n == 1 && seqs[0] == 2);

    /* A history older than the ring reaches: a reset snapshot. */
    bcast_park(c, &id, 1);
    for (uint64_t s = 3; s <= 12; s++)
        publish(b, 0, 100 + (double)s, s);
    bcast_unpark(c, 0, 2);
    json_t *root;
    const char *op;
    json_t *ups = next_frame(c, &root, &op);
    CHECK(ups && !strcmp(op, "snapshot"));
    CHECK(json_is_true(json_object_get(root, "reset")));
    CHECK(json_integer_value(json_object_get(json_array_get(ups, 0), "seq")) == 12);
    json_decref(root);
    /* Unparking what is not parked, or not subscribed, changes nothing. */
    bcast_unpark(c, 0, 1);
    bcast_unpark(c, 3, 1);
    CHECK(!bcast_client_has_pending(c));
    bcast_client_destroy(c);
    bcast_destroy(b);
}

static void a_client_a_little_behind_gets_every_value_a_late_one_the_latest(void)
{
    bcast_opts o = {.max_subscriptions = 100, .max_frame_bytes = 65536, .resume_depth = 64,
                    .backlog_ms = 50};
    bcast *b = bcast_create(&o);
    for (uint32_t i = 0; i < 4; i++)
        bcast_symbol_added(b, i, SYMS[i]);
    publish(b, 0, 101, 1);
    bcast_client *c = bcast_client_create(b, wake, NULL);
    const char *names[] = {"BTC-USD"};
    size_t unknown[1], nunknown;
    uint64_t seqs[64];
    size_t n = 0;
    CHECK(bcast_subscribe(c, names, 1, unknown, &nunknown) == BCAST_OK);
    collect_seqs(c, "snapshot", seqs, &n);
    for (uint64_t s = 2; s <= 5; s++)
        publish(b, 0, 100 + (double)s, s);
    n = 0;
    collect_seqs(c, "update", seqs, &n); /* 4 behind: all of them, in order */
    CHECK(n == 4);
    for (size_t i = 0; i < n; i++)
        CHECK(seqs[i] == 2 + i);
    CHECK(bcast_get_stats(b)->conflated == 0);
    for (uint64_t s = 6; s <= 20; s++)
        publish(b, 0, 100 + (double)s, s);
    struct timespec pause = {0, 80 * 1000000L};
    nanosleep(&pause, NULL);
    n = 0;
    collect_seqs(c, "update", seqs, &n); /* seq 6 is 80 ms old > 50: the latest only */
    CHECK(n == 1 && seqs[0] == 20);
    CHECK(bcast_get_stats(b)->conflated == 14);
    bcast_client_destroy(c);
    bcast_destroy(b);
}

typedef struct removed_notice {
    int calls;
    size_t n;
    char names[4][16];
} removed_notice;

static void on_removed(void *wake_arg, const char *const *names, size_t n, void *arg)
{
    removed_notice *r = wake_arg;
    (void)arg;
    r->calls++;
    r->n = n;
    for (size_t i = 0; i < n && i < 4; i++)
        snprintf(r->names[i], sizeof(r->names[i]), "%s", names[i]);
}

static void removed_symbols_end_their_rooms_and_come_back_with_their_seq(void)
{
    bcast *b = make(100, 65536);
    publish(b, 1, 50, 7);
    removed_notice ra = {0}, rs = {0}, rn = {0};
    bcast_client *a = bcast_client_create(b, wake, &ra);    /* ETH-USD and BTC-USD */
    bcast_client *star = bcast_client_create(b, wake, &rs); /* "*" */
    bcast_client *none = bcast_client_create(b, wake, &rn); /* SOL-USD only */
    const char *an[] = {"ETH-USD", "BTC-USD"}, *sn[] = {"*"}, *nn[] = {"SOL-USD"};
    size_t unknown[4], nunknown;
    CHECK(bcast_subscribe(a, an, 2, unknown, &nunknown) == BCAST_OK);
    CHECK(bcast_subscribe(star, sn, 1, unknown, &nunknown) == BCAST_OK);
    CHECK(bcast_subscribe(none, nn, 1, unknown, &nunknown) == BCAST_OK);
    CHECK(bcast_client_subscription_count(star) == 4);
    uint64_t subs = bcast_get_stats(b)->subscriptions;

    uint32_t gone[] = {1, 3}; /* ETH-USD, EUR-USD */
    CHECK(bcast_symbols_remove(b, gone, 2, on_removed, NULL) == 0);
    CHECK(ra.calls == 1 && ra.n == 1 && !strcmp(ra.names[0], "ETH-USD"));
    CHECK(rs.calls == 1 && rs.n == 2);
    CHECK(rn.calls == 0);
    CHECK(bcast_client_subscription_count(a) == 1 && bcast_client_subscription_count(star) == 2);
    CHECK(bcast_get_stats(b)->subscriptions == subs - 3);
    CHECK(bcast_symbols_offered(b) == 2 && bcast_symbol_count(b) == 4);
    CHECK(!strcmp(bcast_symbol_status(b, 1), "removed"));
    CHECK(bcast_symbol_id(b, "ETH-USD") == UINT32_MAX);
    /* a removed symbol is unknown to subscribe and to resume */
    CHECK(bcast_subscribe(none, an, 1, unknown, &nunknown) == BCAST_EUNKNOWN && nunknown == 1);
    /* removing again tells nobody */
    ra.calls = rs.calls = 0;
    CHECK(bcast_symbols_remove(b, gone, 1, on_removed, NULL) == 0);
    CHECK(ra.calls == 0 && rs.calls == 0);
    /* publishes of a removed symbol reach nobody */
    publish(b, 1, 51, 8);

    /* restored: "*" takes it back with a snapshot carrying the kept seq */
    CHECK(bcast_symbol_restore(b, 1) == 0);
    CHECK(bcast_symbols_offered(b) == 3);
    CHECK(bcast_client_subscription_count(star) == 3);
    json_t *root;
    const char *op;
    int saw = 0;
    for (json_t *ups; (ups = next_frame(star, &root, &op)) != NULL || root; json_decref(root)) {
        size_t i;
        json_t *u;
        json_array_foreach(ups, i, u)
            if (!strcmp(json_string_value(json_object_get(u, "symbol")), "ETH-USD")) {
                saw++;
                CHECK(!strcmp(op, "snapshot"));
                CHECK(json_integer_value(json_object_get(u, "seq")) == 8);
            }
    }
    CHECK(saw == 1);
    CHECK(bcast_subscribe(a, an, 1, unknown, &nunknown) == BCAST_OK);
    bcast_client_destroy(a);
    bcast_client_destroy(star);
    bcast_client_destroy(none);
    CHECK(bcast_get_stats(b)->subscriptions == 0);
    bcast_destroy(b);
}


/* ---- cluster edge seams ---- */

static int room_events[4], room_last_occupied = -1;
static bcast *room_b;
static void room_hook(void *arg, uint32_t id, int occupied)
{
    (void)arg;
    room_events[id]++;
    room_last_occupied = occupied;
    if (occupied)
        bcast_symbol_set_loading(room_b, id, 1); /* what an edge does */
}

static void edge_rooms_load_before_snapshots_and_resumes(void)
{
    bcast_opts o = {.max_subscriptions = 100, .max_frame_bytes = 65536, .resume_depth = 16};
    bcast *b = bcast_create(&o);
    for (uint32_t i = 0; i < 4; i++)
        bcast_symbol_added(b, i, SYMS[i]);
    room_b = b;
    memset(room_events, 0, sizeof(room_events));
    bcast_set_room_hook(b, room_hook, NULL);
    publish(b, 0, 100, 7); /* an old value the edge held */

    bcast_client *c = bcast_client_create(b, wake, NULL);
    bcast_client *r = bcast_client_create(b, wake, NULL);
    const char *names[] = {"BTC-USD"};
    size_t unknown[2], nunknown;
    CHECK(bcast_subscribe(c, names, 1, unknown, &nunknown) == BCAST_OK);
    CHECK(room_events[0] == 1 && room_last_occupied == 1);
    /* Loading: no snapshot of the old value. */
    CHECK(!bcast_client_has_pending(c));
    bcast_resume res = {"BTC-USD", 9};
    CHECK(bcast_subscribe_resume(r, names, 1, &res, 1, 0, unknown, &nunknown) == BCAST_OK);
    CHECK(room_events[0] == 1); /* already occupied */
    CHECK(!bcast_client_has_pending(r));
    /* The load: values 8..12 (a jump from 7 restarts the ring at 8). */
    for (uint64_t q = 8; q <= 12; q++)
        publish(b, 0, 100 + (double)q, q);
    CHECK(!bcast_client_has_pending(c) && !bcast_client_has_pending(r));
    bcast_symbol_set_loading(b, 0, 0);

    json_t *root;
    const char *op;
    json_t *ups = next_frame(c, &root, &op);
    CHECK(ups && !strcmp(op, "snapshot") && json_array_size(ups) == 1);
    CHECK(json_integer_value(json_object_get(json_array_get(ups, 0), "seq")) == 12);
    json_decref(root);
    ups = next_frame(r, &root, &op);
    CHECK(ups && !strcmp(op, "replay") && json_array_size(ups) == 3);
    CHECK(json_integer_value(json_object_get(json_array_get(ups, 0), "seq")) == 10);
    json_decref(root);

    /* Same seq again: re-sent in place (a stale mark), the ring kept. */
    norm_quote q;
    memset(&q, 0, sizeof(q));
    strcpy(q.symbol, "BTC-USD");
    q.last = q.bid = q.ask = q.open = 112;
    q.seq = 12;
    q.stale = 1;
    q.source = "sim";
    bcast_publish(b, 0, &q);
    ups = next_frame(c, &root, &op);
    CHECK(ups && !strcmp(op, "update") && json_array_size(ups) == 1);
    json_t *u = json_array_get(ups, 0);
    CHECK(json_integer_value(json_object_get(u, "seq")) == 12);
    CHECK(json_is_true(json_object_get(u, "stale")));
    json_decref(root);
    bcast_client *late = bcast_client_create(b, wake, NULL);
    bcast_resume res2 = {"BTC-USD", 10};
    CHECK(bcast_subscribe_resume(late, names, 1, &res2, 1, 0, unknown, &nunknown) == BCAST_OK);
    ups = next_frame(late, &root, &op);
    CHECK(ups && !strcmp(op, "replay") && json_array_size(ups) == 2);
    json_decref(root);

    /* A pre-encoded value is sent byte for byte. */
    const char *enc = "{\"symbol\":\"BTC-USD\",\"seq\":13,\"x\":1}";
    memset(&q, 0, sizeof(q));
    strcpy(q.symbol, "BTC-USD");
    q.last = q.bid = q.ask = q.open = 113;
    q.seq = 13;
    q.source = "sim";
    q.enc = enc;
    q.enc_len = (uint16_t)strlen(enc);
    bcast_publish(b, 0, &q);
    size_t len;
    const char *got = bcast_symbol_json(b, 0, &len);
    CHECK(got && len == strlen(enc) && !memcmp(got, enc, len));

    /* A reset (Redis restarted empty): the next value, seq 1, is a reset snapshot. */
    while (bcast_client_frame(c, (char[4096]){0}, 4096))
        ;
    bcast_symbol_reset(b, 0, BCAST_RESET_EPOCH);
    CHECK(!bcast_client_has_pending(c));
    publish(b, 0, 50, 1);
    ups = next_frame(c, &root, &op);
    CHECK(ups && !strcmp(op, "snapshot") && json_is_true(json_object_get(root, "reset")));
    CHECK(json_integer_value(json_object_get(json_array_get(ups, 0), "seq")) == 1);
    json_decref(root);

    bcast_set_epoch(b, "00112233445566778899");
    CHECK(!strcmp(bcast_epoch(b), "0011223344556677"));

    bcast_client_destroy(c);
    bcast_client_destroy(r);
    CHECK(room_events[0] == 1);
    bcast_client_destroy(late);
    CHECK(room_events[0] == 2 && room_last_occupied == 0);
    bcast_destroy(b);
}

int main(void)
{
    RUN(snapshot_comes_before_updates);
    RUN(slow_client_gets_latest_value_once_per_symbol);
    RUN(unsubscribe_and_rooms_stay_consistent);
    RUN(subscribe_is_atomic_and_limited);
    RUN(full_frames_carry_the_rest_next_time);
    RUN(encodes_an_update_as_json_with_the_contract_keys);
    RUN(unsubscribing_the_only_pending_symbol_keeps_the_client_wakeable);
    RUN(ring_wraps_and_replays_in_order_without_gap_or_duplicate);
    RUN(too_old_seq_ahead_and_other_epoch_get_a_reset_snapshot);
    RUN(up_to_date_resume_sends_nothing_then_live_updates);
    RUN(a_reset_of_a_symbol_without_value_waits_for_its_first_value);
    RUN(replay_larger_than_a_frame_is_split_and_precedes_live_updates);
    RUN(live_update_never_overtakes_a_replay);
    RUN(a_replay_that_falls_behind_the_ring_ends_in_a_reset);
    RUN(ring_memory_is_bounded_and_allocated_once);
    RUN(resume_must_name_subscribed_known_symbols);
    RUN(epochs_differ_per_instance);
    RUN(parked_symbol_continues_after_the_history_seq);
    RUN(unpark_without_history_or_ring_follows_live_or_resets);
    RUN(a_client_a_little_behind_gets_every_value_a_late_one_the_latest);
    RUN(binary_frames_round_trip_every_field);
    RUN(one_publish_serves_json_and_binary_clients_alike);
    RUN(binary_frames_split_at_max_frame_bytes);
    RUN(binary_resume_replays_and_resets_from_its_own_ring);
    RUN(json_only_broadcasters_keep_no_binary_ring);
    RUN(binary_backlog_and_unpark_read_the_binary_ring);
    RUN(removed_symbols_end_their_rooms_and_come_back_with_their_seq);
    RUN(edge_rooms_load_before_snapshots_and_resumes);
    return check_done();
}
