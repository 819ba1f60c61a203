/* venue_generic: the JSON mapper's paths, config validation (errors name the
 * key), parsing contract (all or nothing, NAN for absent, MALFORMED for what
 * does not fit, venue errors, match filters) and url templates. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "got.h"
#include "tickerd/venue_generic.h"

#define RECV_US INT64_C(1711356300000000) /* 2024-03-25T08:45:00Z */
#define SOURCE 9


static char err[256];

/* Compile map (JSON text) for feeds[1]; returns the cfg_error text ("" = ok). */
static const char *compile(const char *map, venue_generic *g)
{
    static cfg_error e;
    json_error_t je;
    json_t *m = json_loads(map, 0, &je);
    e.msg[0] = '\0';
    if (!m)
        return "bad test JSON";
    if (venue_generic_parse_map(m, "feeds[1]", g, &e))
        CHECK(e.msg[0] != '\0');
    json_decref(m);
    return e.msg;
}

static venue_msg parse(const venue_generic *g, long status, const char *body, const char *hint,
                       got *out)
{
    venue_emit e = {.arg = out, .update = got_update};
    memset(out, 0, sizeof(*out));
    return venue_generic_parse(g, status, body, strlen(body), hint, SOURCE, RECV_US, &e, err,
                               sizeof(err));
}

static void paths_compile_with_indexes_and_refuse_bad_syntax(void)
{
    venue_generic_path p;
    char why[96];
    CHECK(venue_generic_path_compile("data.0.c", &p, why, sizeof(why)) == 0);
    CHECK(p.n == 3 && !strcmp(p.seg + p.off[0], "data") && p.index[0] == -1);
    CHECK(!strcmp(p.seg + p.off[1], "0") && p.index[1] == 0 && p.index[2] == -1);
    CHECK(venue_generic_path_compile("a.12x", &p, why, sizeof(why)) == 0 && p.index[1] == -1);
    CHECK(venue_generic_path_compile("$key", &p, why, sizeof(why)) == 0); /* a plain name as a path */
    const char *bad[] = {"", "a..b", ".a", "a.", "a b", "a.\x01"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(venue_generic_path_compile(bad[i], &p, why, sizeof(why)) == -1 && why[0]);
    char deep[64] = "";
    for (int i = 0; i < 17; i++)
        strcat(deep, i ? ".a" : "a");
    CHECK(venue_generic_path_compile(deep, &p, why, sizeof(why)) == -1 && strstr(why, "segments"));
    char longp[300];
    memset(longp, 'x', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    CHECK(venue_generic_path_compile(longp, &p, why, sizeof(why)) == -1);
}

static void map_errors_name_the_key(void)
{
    venue_generic g;
    CHECK(!strcmp(compile("{\"last\":\"data.0.c\"}", &g), ""));
    CHECK(strstr(compile("{\"last\":\"data..c\"}", &g), "feeds[1].map.last: bad path"));
    CHECK(strstr(compile("{\"last\":\"c\",\"bid\":7}", &g), "feeds[1].map.bid: must be a path"));
    CHECK(strstr(compile("{\"last\":\"c\",\"bogus\":\"x\"}", &g), "feeds[1].map.bogus: unknown key"));
    CHECK(strstr(compile("{\"bid\":\"b\"}", &g), "feeds[1].map: give \"last\""));
    CHECK(!strcmp(compile("{\"bid\":\"b\",\"ask\":\"a\"}", &g), ""));
    CHECK(strstr(compile("{\"last\":\"c\",\"symbol\":\"$key\"}", &g), "feeds[1].map.symbol"));
    CHECK(strstr(compile("{\"last\":\"c\",\"ts\":\"t\",\"ts_unit\":\"hours\"}", &g),
                 "feeds[1].map.ts_unit"));
    CHECK(strstr(compile("{\"last\":\"c\",\"ts_unit\":\"s\"}", &g), "feeds[1].map.ts_unit"));
    CHECK(strstr(compile("{\"last\":\"c\",\"match\":{\"type\":1}}", &g), "feeds[1].map.match.type"));
    CHECK(strstr(compile("{\"last\":\"c\",\"match\":{\"a..b\":\"x\"}}", &g), "feeds[1].map.match"));
    CHECK(strstr(compile("{\"last\":\"c\",\"match\":{}}", &g), "feeds[1].map.match"));
    CHECK(strstr(compile("{\"last\":\"c\",\"match\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\",\"d\":\"4\",\"e\":\"5\"}}", &g),
                 "at most"));
    cfg_error e;
    CHECK(venue_generic_parse_map(NULL, "feeds[0]", &g, &e) == -1 && strstr(e.msg, "feeds[0].map"));
}

static void items_array_with_string_and_number_fields(void)
{
    venue_generic g;
    got o;
    CHECK(!strcmp(compile("{\"items\":\"result.quotes\",\"symbol\":\"sym\",\"last\":\"px.last\","
                          "\"bid\":\"px.bid\",\"ask\":\"px.ask\",\"volume\":\"vol24\",\"ts\":\"updated\","
                          "\"error\":\"error.message\"}",
                          &g),
                  ""));
    const char *body = "{\"ok\":true,\"result\":{\"quotes\":["
                       "{\"sym\":\"BTC-USD\",\"px\":{\"last\":\"67200.5\",\"bid\":\"67200.4\",\"ask\":\"67200.6\"},"
                       "\"vol24\":1234.5,\"updated\":1711356299123},"
                       "{\"sym\":\"ETH-USD\",\"px\":{\"last\":3448,\"bid\":null,\"ask\":\"3448.1\"},\"updated\":null}]}}";
    CHECK(parse(&g, 200, body, NULL, &o) == VENUE_MSG_DATA && o.n == 2);
    CHECK(!strcmp(o.sym[0], "BTC-USD") && o.u[0].last == 67200.5 && o.u[0].bid == 67200.4 &&
          o.u[0].ask == 67200.6 && o.u[0].volume == 1234.5 &&
          o.u[0].ts_us == INT64_C(1711356299123000) && o.u[0].source == SOURCE);
    CHECK(!strcmp(o.sym[1], "ETH-USD") && o.u[1].last == 3448 && isnan(o.u[1].bid) &&
          isnan(o.u[1].volume) && isnan(o.u[1].open) && o.u[1].ts_us == RECV_US);
    /* all or nothing: one bad quote, nothing emitted */
    CHECK(parse(&g, 200, "{\"result\":{\"quotes\":[{\"sym\":\"BTC-USD\",\"px\":{\"last\":\"1\"}},"
                         "{\"sym\":\"ETH-USD\",\"px\":{\"last\":{\"v\":\"1\"}}}]}}",
                NULL, &o) == VENUE_MSG_MALFORMED &&
          o.n == 0 && strstr(err, "quote 1: last"));
    CHECK(parse(&g, 200, "{\"result\":{\"quotes\":[{\"sym\":\"BTC-USD\",\"px\":{\"last\":\"1e999\"}}]}}",
                NULL, &o) == VENUE_MSG_MALFORMED);
    CHECK(parse(&g, 200, "{\"result\":{\"quotes\":[{\"sym\":7,\"px\":{\"last\":\"1\"}}]}}", NULL, &o) ==
              VENUE_MSG_MALFORMED &&
          strstr(err, "symbol"));
    CHECK(parse(&g, 200, "{\"result\":{\"quotes\":[{\"sym\":\"A-B\",\"px\":{}}]}}", NULL, &o) ==
          VENUE_MSG_MALFORMED);
    CHECK(parse(&g, 200, "{\"result\":{\"quotes\":[]}}", NULL, &o) == VENUE_MSG_DATA && o.n == 0);
    CHECK(parse(&g, 200, "{\"result\":{\"quotes\":{}}}", NULL, &o) == VENUE_MSG_MALFORMED &&
          strstr(err, "items"));
    CHECK(parse(&g, 200, "{\"result\":", NULL, &o) == VENUE_MSG_MALFORMED && strstr(err, "not JSON"));
    /* venue errors: in a 200 and with an error status */
    CHECK(parse(&g, 200, "{\"ok\":false,\"error\":{\"message\":\"unknown id X\"}}", NULL, &o) ==
              VENUE_MSG_ERROR &&
          strstr(err, "unknown id X") && o.n == 0);
    CHECK(parse(&g, 503, "{\"error\":{\"message\":\"down\"}}", NULL, &o) == VENUE_MSG_ERROR &&
          strstr(err, "HTTP 503: down"));
    CHECK(parse(&g, 502, "<html>", NULL, &o) == VENUE_MSG_ERROR && !strcmp(err, "HTTP 502"));
}

static void object_of_quotes_keyed_by_symbol_and_time_units(void)
{
    venue_generic g;
    got o;
    CHECK(!strcmp(compile("{\"items\":\"prices\",\"symbol\":\"$key\",\"last\":\"p\",\"ts\":\"t\","
                          "\"ts_unit\":\"s\",\"error\":\"errors\"}",
                          &g),
                  ""));
    CHECK(parse(&g, 200, "{\"errors\":[],\"prices\":{\"bitcoin\":{\"p\":67187.3,\"t\":1711356300},"
                         "\"ethereum\":{\"p\":\"3448.2\",\"t\":\"1711356299\"}}}",
                NULL, &o) == VENUE_MSG_DATA &&
          o.n == 2);
    CHECK(!strcmp(o.sym[0], "bitcoin") && o.u[0].ts_us == RECV_US && o.u[0].last == 67187.3);
    CHECK(!strcmp(o.sym[1], "ethereum") && o.u[1].ts_us == RECV_US - 1000000);
    CHECK(parse(&g, 200, "{\"errors\":[\"EQuery\"],\"prices\":{}}", NULL, &o) == VENUE_MSG_ERROR);
    CHECK(parse(&g, 200, "{\"prices\":{\"x\":{\"p\":1,\"t\":-5}}}", NULL, &o) == VENUE_MSG_MALFORMED &&
          strstr(err, "ts"));
    /* "$": the body is the object of quotes (CoinGecko /simple/price) */
    CHECK(!strcmp(compile("{\"items\":\"$\",\"symbol\":\"$key\",\"last\":\"usd\",\"volume\":\"usd_24h_vol\","
                          "\"ts\":\"last_updated_at\",\"ts_unit\":\"s\"}", &g), ""));
    CHECK(parse(&g, 200, "{\"bitcoin\":{\"usd\":67187.3358936566,\"usd_24h_vol\":31260929299.5248,"
                         "\"last_updated_at\":1711356300}}", NULL, &o) == VENUE_MSG_DATA &&
          o.n == 1 && !strcmp(o.sym[0], "bitcoin") && o.u[0].volume > 3e10 && o.u[0].ts_us == RECV_US);
    CHECK(parse(&g, 200, "[]", NULL, &o) == VENUE_MSG_MALFORMED);
    CHECK(!strcmp(compile("{\"items\":\"$\",\"symbol\":\"s\",\"last\":\"p\"}", &g), ""));
    CHECK(parse(&g, 200, "[{\"s\":\"A-B\",\"p\":1},{\"s\":\"C-D\",\"p\":2}]", NULL, &o) == VENUE_MSG_DATA && o.n == 2);
    struct { const char *unit, *ts; int64_t want; } u[] = {
        {"ms", "1711356300123", INT64_C(1711356300123000)},
        {"us", "1711356300123456", INT64_C(1711356300123456)},
        {"ns", "1711356300123456000", INT64_C(1711356300123456)},
        {"rfc3339", "\"2024-03-25T08:45:00.5Z\"", INT64_C(1711356300500000)},
    };
    for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
        char map[160], body[160];
        snprintf(map, sizeof(map), "{\"last\":\"p\",\"ts\":\"t\",\"ts_unit\":\"%s\"}", u[i].unit);
        snprintf(body, sizeof(body), "{\"p\":1.5,\"t\":%s}", u[i].ts);
        CHECK(!strcmp(compile(map, &g), ""));
        CHECK(parse(&g, 200, body, "BTC-USD", &o) == VENUE_MSG_DATA && o.n == 1);
        /* ns as a double: a few hundred ns of rounding at most */
        CHECK(llabs(o.u[0].ts_us - u[i].want) <= 1);
    }
    CHECK(parse(&g, 200, "{\"p\":1.5,\"t\":1711356300}", "BTC-USD", &o) == VENUE_MSG_MALFORMED);
}

static void one_quote_per_request_uses_the_hint_and_the_mid(void)
{
    venue_generic g;
    got o;
    CHECK(!strcmp(compile("{\"bid\":\"data.0.b\",\"ask\":\"data.0.a\",\"ts\":\"data.0.t\",\"ts_unit\":\"rfc3339\"}", &g), ""));
    CHECK(parse(&g, 200, "{\"data\":[{\"b\":99.5,\"a\":100.5,\"t\":\"2024-03-25T08:44:59Z\"}]}", "SOL-USD", &o) ==
              VENUE_MSG_DATA &&
          o.n == 1 && !strcmp(o.sym[0], "SOL-USD") && o.u[0].last == 100 &&
          o.u[0].ts_us == RECV_US - 1000000);
    CHECK(parse(&g, 200, "{\"data\":[{\"b\":1,\"a\":2}]}", NULL, &o) == VENUE_MSG_MALFORMED &&
          strstr(err, "symbol"));
    CHECK(parse(&g, 200, "{\"data\":[]}", "SOL-USD", &o) == VENUE_MSG_MALFORMED);
    CHECK(parse(&g, 200, "[1,2]", "SOL-USD", &o) == VENUE_MSG_MALFORMED);
}

static void websocket_messages_match_or_are_ignored(void)
{
    venue_generic g;
    got o;
    CHECK(!strcmp(compile("{\"symbol\":\"s\",\"last\":\"p\"}", &g), ""));
    CHECK(parse(&g, 0, "{\"type\":\"ack\"}", NULL, &o) == VENUE_MSG_IGNORED && o.n == 0);
    CHECK(parse(&g, 0, "{\"s\":\"BTC-USD\",\"p\":2}", NULL, &o) == VENUE_MSG_DATA && o.n == 1);
    CHECK(parse(&g, 0, "nope", NULL, &o) == VENUE_MSG_MALFORMED);
    CHECK(!strcmp(compile("{\"symbol\":\"s\",\"last\":\"p\",\"match\":{\"ev.type\":\"trade\"}}", &g), ""));
    CHECK(parse(&g, 0, "{\"ev\":{\"type\":\"hello\"},\"s\":\"BTC-USD\",\"p\":2}", NULL, &o) ==
          VENUE_MSG_IGNORED);
    CHECK(parse(&g, 0, "{\"ev\":{\"type\":\"trade\"},\"s\":\"BTC-USD\"}", NULL, &o) ==
          VENUE_MSG_MALFORMED);
    CHECK(parse(&g, 0, "{\"ev\":{\"type\":\"trade\"},\"s\":\"BTC-USD\",\"p\":\"2.5\"}", NULL, &o) ==
              VENUE_MSG_DATA &&
          o.u[0].last == 2.5);
}

static void survives_hostile_bodies(void)
{
    venue_generic g;
    got o;
    CHECK(!strcmp(compile("{\"items\":\"a.0.b.1\",\"symbol\":\"s\",\"last\":\"x.y.z\"}", &g), ""));
    size_t n = 100000;
    char *deep = malloc(2 * n + 1);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = '\0';
    CHECK(parse(&g, 200, deep, NULL, &o) == VENUE_MSG_MALFORMED);
    free(deep);
    CHECK(parse(&g, 200, "{\"a\":\"str\"}", NULL, &o) == VENUE_MSG_MALFORMED);
    CHECK(parse(&g, 200, "{\"a\":[{\"b\":[0,[{\"s\":\"Q-R\",\"x\":{\"y\":{\"z\":\"1\"}}}]]}]}", NULL, &o) ==
              VENUE_MSG_DATA &&
          o.n == 1);
    char sym[200];
    memset(sym, 'A', sizeof(sym));
    char body[400];
    snprintf(body, sizeof(body), "{\"a\":[{\"b\":[0,[{\"s\":\"%.150s\",\"x\":{\"y\":{\"z\":1}}}]]}]}", sym);
    CHECK(parse(&g, 200, body, NULL, &o) == VENUE_MSG_MALFORMED); /* symbol too long */
    CHECK(venue_generic_parse(&g, 200, NULL, 0, NULL, SOURCE, RECV_US, NULL, err, sizeof(err)) ==
          VENUE_MSG_MALFORMED);
}

static void url_templates(void)
{
    char why[128], out[256];
    const char *syms[] = {"BTC-USD", "ETH-USD"};
    CHECK(venue_generic_check_url("http://h/q?ids={symbols}", why, sizeof(why)) == 0);
    CHECK(venue_generic_check_url("https://h/q/{symbol}", why, sizeof(why)) == 0);
    CHECK(venue_generic_check_url("http://h/q", why, sizeof(why)) == 0);
    CHECK(venue_generic_check_url("ftp://h/q", why, sizeof(why)) == -1);
    CHECK(venue_generic_check_url("http://h/{symbol}/{symbols}", why, sizeof(why)) == -1);
    CHECK(venue_generic_check_url("http://h/{sym}", why, sizeof(why)) == -1 && strstr(why, "{sym}"));
    CHECK(venue_generic_check_url("http://h/x}", why, sizeof(why)) == -1);
    CHECK(venue_generic_requests("http://h/{symbol}", 2) == 2);
    CHECK(venue_generic_requests("http://h/{symbols}", 2) == 1);
    CHECK(venue_generic_requests("http://h/", 0) == 0);
    CHECK(venue_generic_url("http://h/q?ids={symbols}&x=1", syms, 2, 0, out, sizeof(out)) > 0 &&
          !strcmp(out, "http://h/q?ids=BTC-USD,ETH-USD&x=1"));
    CHECK(venue_generic_url("http://h/q/{symbol}", syms, 2, 1, out, sizeof(out)) > 0 &&
          !strcmp(out, "http://h/q/ETH-USD"));
    CHECK(venue_generic_url("http://h/q/{symbol}", syms, 2, 2, out, sizeof(out)) == -1);
    CHECK(venue_generic_url("http://h/q/{symbols}", syms, 2, 0, out, 10) == -1);
    const char *bad[] = {"BTC USD"};
    CHECK(venue_generic_url("http://h/q/{symbol}", bad, 1, 0, out, sizeof(out)) == -1);
    /* the symbol mapping: canonical symbols are their own spelling */
    CHECK(venue_generic_preset.to_venue("BTC-USD", out, sizeof(out)) == 0 && !strcmp(out, "BTC-USD"));
    CHECK(venue_generic_preset.to_canonical("btcusd", out, sizeof(out)) == -1);
}

int main(void)
{
    RUN(paths_compile_with_indexes_and_refuse_bad_syntax);
    RUN(map_errors_name_the_key);
    RUN(items_array_with_string_and_number_fields);
    RUN(object_of_quotes_keyed_by_symbol_and_time_units);
    RUN(one_quote_per_request_uses_the_hint_and_the_mid);
    RUN(websocket_messages_match_or_are_ignored);
    RUN(survives_hostile_bodies);
    RUN(url_templates);
    return check_done();
}
