/* feed_mailbox: a producer thread hands updates to the lws service thread;
 * the consumer always ends with the newest value of every slot, memory is
 * bounded by the slot count, overwrites are counted, and the wake-up reaches
 * a protocol through EVENT_WAIT_CANCELLED with its .user intact. */
#include <libwebsockets.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "tickerd/feed_mailbox.h"

#define SLOTS 10
#define PUTS 200000

typedef struct consumer {
    feed_mailbox *m;
    double last[SLOTS];
    uint64_t received, wakes;
    int done;
} consumer;

static void on_emit(void *arg, const feed_update *u)
{
    consumer *c = arg;
    int slot = u->symbol[1] - '0';
    if (slot >= 0 && slot < SLOTS) {
        /* Values of one slot only ever grow: never an older one after a newer. */
        if (u->last < c->last[slot])
            check_failed++;
        c->last[slot] = u->last;
    }
    c->received++;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    (void)user;
    (void)in;
    (void)len;
    if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
        consumer *c = lws_get_protocol(wsi)->user;
        feed_sink sink = {.arg = c, .emit = on_emit};
        c->wakes++;
        feed_mailbox_drain(c->m, &sink);
    }
    return 0;
}

typedef struct producer {
    feed_mailbox *m;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    char sym[8];
    for (int i = 1; i <= PUTS; i++) {
        snprintf(sym, sizeof(sym), "S%d-USD", i % SLOTS);
        feed_update u = {.symbol = sym, .last = i, .bid = i, .ask = i, .open = NAN, .ts_us = i};
        feed_mailbox_put(p->m, (size_t)(i % SLOTS), &u);
    }
    return NULL;
}

static void hands_latest_values_across_threads(void)
{
    static consumer c;
    struct lws_protocols protocols[] = {
        {"mailbox-test", callback, 0, 0, 0, &c, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
    };
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context *ctx = lws_create_context(&info);
    CHECK(ctx != NULL);
    if (!ctx)
        return;
    c.m = feed_mailbox_create(SLOTS, ctx);
    producer p = {c.m};
    pthread_t t;
    pthread_create(&t, NULL, produce, &p);
    /* Serve until the producer is done and every slot shows its final value. */
    int finished = 0;
    for (int loops = 0; loops < 200000 && !finished; loops++) {
        lws_service(ctx, 0);
        finished = 1;
        for (int s = 0; s < SLOTS; s++)
            finished &= c.last[s] >= PUTS - SLOTS + 1;
    }
    pthread_join(t, NULL);
    CHECK(finished);
    for (int s = 0; s < SLOTS; s++) {
        int expect = PUTS - ((PUTS - s) % SLOTS);
        CHECK(c.last[s] == expect);
    }
    CHECK(c.wakes > 0);
    /* Everything put was either delivered or counted as overwritten. */
    CHECK(c.received + feed_mailbox_overwritten(c.m) == PUTS);
    fprintf(stderr, "  %llu delivered, %llu overwritten, %llu wakes\n",
            (unsigned long long)c.received, (unsigned long long)feed_mailbox_overwritten(c.m),
            (unsigned long long)c.wakes);
    feed_mailbox_destroy(c.m);
    lws_context_destroy(ctx);
}

int main(void)
{
    RUN(hands_latest_values_across_threads);
    return check_done();
}
