/* fuzz_session.c — libFuzzer over what a client sends the session layer
 * (session.h): the input's lines are client messages (subscribe,
 * unsubscribe, resume, ping, auth, history, anything), given to one session
 * in order with a publish between each, every reply and frame drained and
 * checked. An input whose first byte is '?' is instead the query of /sse or
 * /api/poll: its first line the symbols list, its second the position
 * (Last-Event-ID / since cursor), given to sess_subscribe_csv. ASan/UBSan
 * catch bad memory use; CHECK tests the session's promises: replies are
 * JSON objects, frames fit max_frame_bytes, the error budget closes, the
 * reply list stays bounded. */
#define CHECK(c) ((c) ? (void)0 : __builtin_trap())
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/bcast.h"
#include "tickerd/log.h"
#include "tickerd/session.h"

#define FRAME_MAX 8192
#define LINES_MAX 64

static const char *const SYMS[] = {"BTC-USD", "ETH-USD", "SOL-USD", "AAPL-USD"};
enum { NSYMS = sizeof(SYMS) / sizeof(SYMS[0]) };
static bcast *b;
static sess_server *srv;
static uint64_t seqs[NSYMS];

static void want_write(void *arg) { (void)arg; }
static const sess_transport ops = {.name = "fuzz", .want_write = want_write};

static void publish(uint32_t id)
{
    norm_quote q;
    memset(&q, 0, sizeof(q));
    strcpy(q.symbol, SYMS[id]);
    q.last = 100 + (double)seqs[id];
    q.bid = q.last - 0.5;
    q.ask = q.last + 0.5;
    q.volume = 1;
    q.open = 100;
    q.seq = ++seqs[id];
    q.ts_us = 1700000000000000 + (int64_t)q.seq;
    q.source = "fuzz";
    bcast_publish(b, id, &q);
}

static void setup(void)
{
    log_set_level(LOG_ERROR);
    bcast_opts bo = {.max_subscriptions = 3, .max_frame_bytes = FRAME_MAX, .resume_depth = 8,
                     .backlog_ms = 100};
    b = bcast_create(&bo);
    CHECK(b);
    for (uint32_t i = 0; i < NSYMS; i++) {
        CHECK(bcast_symbol_added(b, i, SYMS[i]) == 0);
        publish(i);
    }
    sess_limits sl = {.max_sessions = 4, .max_message_bytes = 4096, .max_messages_per_sec = 1000000,
                      .max_errors = 8, .max_frame_bytes = FRAME_MAX};
    srv = sess_server_create(b, &sl);
    CHECK(srv);
}

/* Everything the session has to send, checked. */
static void drain(sess *s)
{
    sess_out out;
    for (int guard = 0; guard < 1000; guard++) {
        sess_out_kind k = sess_next(s, &out);
        if (k == SESS_OUT_NONE)
            return;
        CHECK(out.data && out.len);
        if (k == SESS_OUT_FRAME) {
            CHECK(out.len <= FRAME_MAX);
        } else {
            json_t *j = json_loadb(out.data, out.len, 0, NULL);
            CHECK(json_is_object(j) && json_is_string(json_object_get(j, "op")));
            json_decref(j);
        }
        CHECK(sess_replies_pending(s) <= SESS_REPLY_QUEUE);
    }
    CHECK(0); /* a session never has unbounded output */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!b)
        setup();
    char *in = malloc(size + 1);
    CHECK(in);
    memcpy(in, data, size);
    in[size] = 0;
    sess *s = sess_create(srv, &ops, NULL, BCAST_ENC_JSON);
    CHECK(s);
    if (size && in[0] == '?') {
        char *pos = strchr(in + 1, '\n');
        if (pos)
            *pos++ = 0;
        sess_subscribe_csv(s, in + 1, pos);
        drain(s);
    } else {
        char *line = in;
        for (int n = 0; line && n < LINES_MAX; n++) {
            char *next = memchr(line, '\n', (size_t)(in + size - line));
            size_t len = next ? (size_t)(next - line) : (size_t)(in + size - line);
            sess_request(s, line, len);
            publish((uint32_t)n % NSYMS);
            drain(s);
            line = next ? next + 1 : NULL;
        }
    }
    CHECK(bcast_client_subscription_count(sess_client(s)) <= NSYMS);
    sess_destroy(s);
    free(in);
    return 0;
}
