/* test_util.c — UTF-8 validation, name de-duplication, the head check and
 * message reassembly: the pure pieces hostile input reaches first. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tickerd/guard_head.h"
#include "tickerd/util.h"
#include "tickerd/ws_rx.h"

static int utf8_ok(const char *s, size_t n)
{
    uint32_t st = 0;
    return !tk_utf8_feed(&st, (const unsigned char *)s, n) && !st;
}

static void utf8_accepts_valid_text_and_refuses_rfc3629_violations(void)
{
    CHECK(utf8_ok("plain {\"op\":1}", 15));
    CHECK(utf8_ok("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf", 13)); /* é € 😀 U+10FFFF */
    CHECK(!utf8_ok("\xc0\x80", 2));         /* overlong NUL */
    CHECK(!utf8_ok("\xe0\x80\xaf", 3));     /* overlong '/' */
    CHECK(!utf8_ok("\xed\xa0\x80", 3));     /* surrogate U+D800 */
    CHECK(!utf8_ok("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    CHECK(!utf8_ok("\xf5\x80\x80\x80", 4));
    CHECK(!utf8_ok("\xff", 1));
    CHECK(!utf8_ok("\x80", 1));             /* a lone continuation */
    CHECK(!utf8_ok("\xe2\x82", 2));         /* truncated at the end */
    /* split anywhere, the verdict is the same */
    const char *s = "a\xf0\x9f\x98\x80z";
    for (size_t cut = 0; cut <= 6; cut++) {
        uint32_t st = 0;
        CHECK(!tk_utf8_feed(&st, (const unsigned char *)s, cut));
        CHECK(!tk_utf8_feed(&st, (const unsigned char *)s + cut, 6 - cut) && !st);
    }
}

static void dedupe_keeps_first_appearances_in_order(void)
{
    const char *names[] = {"B", "A", "B", "C", "A", "A", "D"};
    CHECK(tk_dedupe_names(names, 7) == 4);
    CHECK(!strcmp(names[0], "B") && !strcmp(names[1], "A") && !strcmp(names[2], "C") &&
          !strcmp(names[3], "D"));
    const char *one[] = {"X"};
    CHECK(tk_dedupe_names(one, 1) == 1);
    enum { N = 100000 };
    const char **many = malloc(N * sizeof(*many));
    for (int i = 0; i < N; i++)
        many[i] = i % 2 ? "ETH-USD" : "BTC-USD";
    CHECK(tk_dedupe_names(many, N) == 2);
    free(many);
}

static guard_verdict head(const char *s)
{
    size_t n = 0;
    return guard_check_head(s, strlen(s), &n);
}

static void head_check_gives_each_refusal_its_status(void)
{
    CHECK(head("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n") ==
          GUARD_PASS);
    CHECK(head("GET /healthz HTTP/1.0\n\n") == GUARD_PASS); /* bare LF line ends */
    CHECK(head("GET /healthz HTTP/1.1\r\nHost: x\r\n") == GUARD_INCOMPLETE);
    CHECK(head("GE") == GUARD_INCOMPLETE);
    CHECK(head("\x16\x03\x01") == GUARD_BAD_REQUEST);
    CHECK(head("GET /a%00b HTTP/1.1\r\n\r\n") == GUARD_BAD_REQUEST);
    CHECK(head("GET /a%zz HTTP/1.1\r\n\r\n") == GUARD_BAD_REQUEST);
    CHECK(head("GET / HTTP/2.0\r\n\r\n") == GUARD_BAD_REQUEST);
    CHECK(head("GET / HTTP/1.1\r\nBad Name: v\r\n\r\n") == GUARD_BAD_REQUEST);
    CHECK(head("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\n\r\n") ==
          GUARD_UPGRADE_REQUIRED);
    CHECK(head("GET /ws HTTP/1.1\r\nUpgrade: WebSocket\r\n\r\n") == GUARD_UPGRADE_REQUIRED);
    char *big = malloc(GUARD_HEAD_MAX * 2);
    memset(big, 'a', GUARD_HEAD_MAX * 2);
    memcpy(big, "GET /", 5);
    size_t n = 0;
    CHECK(guard_check_head(big, GUARD_LINE_MAX + 100, &n) == GUARD_URI_TOO_LONG);
    int at = snprintf(big, GUARD_HEAD_MAX, "GET / HTTP/1.1\r\nX-Pad: ");
    big[at] = 'p';
    CHECK(guard_check_head(big, GUARD_HEAD_MAX + 1, &n) == GUARD_FIELDS_TOO_LARGE);
    free(big);
    CHECK(guard_status(GUARD_URI_TOO_LONG) == 414 && guard_status(GUARD_FIELDS_TOO_LARGE) == 431 &&
          guard_status(GUARD_UPGRADE_REQUIRED) == 426 && guard_status(GUARD_BAD_REQUEST) == 400);
}

static void reassembly_holds_what_arrived_not_what_was_announced(void)
{
    uint64_t held = 0;
    ws_rx rx;
    ws_rx_init(&rx, &held);
    const char *msg;
    size_t len;
    ws_rx_piece p = {.data = "{\"o", .len = 3, .frame_remaining = 0, .final_fragment = 0};
    CHECK(ws_rx_feed(&rx, &p, 1 << 20, &msg, &len) == WS_RX_MORE);
    CHECK(held > 0 && held <= 64);
    ws_rx_piece q = {.data = "p\":\"ping\"}", .len = 10, .final_fragment = 1};
    CHECK(ws_rx_feed(&rx, &q, 1 << 20, &msg, &len) == WS_RX_MESSAGE);
    CHECK(len == 13 && !memcmp(msg, "{\"op\":\"ping\"}", 13));
    ws_rx_consumed(&rx);
    CHECK(held == 0);
    /* a frame announcing more than the limit is discarded as it comes */
    ws_rx_piece big = {.data = "x", .len = 1, .frame_remaining = 2 << 20, .final_fragment = 1};
    CHECK(ws_rx_feed(&rx, &big, 1 << 20, &msg, &len) == WS_RX_MORE && held == 0);
    ws_rx_piece end = {.data = "y", .len = 1, .frame_remaining = 0, .final_fragment = 1};
    CHECK(ws_rx_feed(&rx, &end, 1 << 20, &msg, &len) == WS_RX_TOO_LARGE);
    ws_rx_piece bad = {.data = "{\"\xff\"}", .len = 5, .final_fragment = 1};
    CHECK(ws_rx_feed(&rx, &bad, 1 << 20, &msg, &len) == WS_RX_BAD_UTF8 && held == 0);
    ws_rx_free(&rx);
}

int main(void)
{
    RUN(utf8_accepts_valid_text_and_refuses_rfc3629_violations);
    RUN(dedupe_keeps_first_appearances_in_order);
    RUN(head_check_gives_each_refusal_its_status);
    RUN(reassembly_holds_what_arrived_not_what_was_announced);
    return check_done();
}
