/* Broadcaster: rooms, snapshots before updates, per-client conflation (one
 * pending value per symbol, latest wins, memory independent of rate), frame
 * limits and the JSON encoding of an update. */
#include <jansson.h>
#include <math.h>
#include <string.h>

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

int main(void)
{
    RUN(snapshot_comes_before_updates);
    RUN(slow_client_gets_latest_value_once_per_symbol);
    RUN(unsubscribe_and_rooms_stay_consistent);
    RUN(subscribe_is_atomic_and_limited);
    RUN(full_frames_carry_the_rest_next_time);
    RUN(encodes_an_update_as_json_with_the_contract_keys);
    RUN(unsubscribing_the_only_pending_symbol_keeps_the_client_wakeable);
    return check_done();
}
