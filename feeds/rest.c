/*
 * rest.c — the REST polling feed adapter (feed_rest_type) on libcurl's multi
 * interface.
 *
 * One thread per feed runs curl_multi_poll() over every request the venue
 * preset needs for its symbols (Binance: one multi-symbol request; Coinbase:
 * one per product), each on its own reused easy handle (keep-alive). Each
 * request is re-armed after poll_interval_ms; HTTP 429/418 honour Retry-After;
 * other failures back off exponentially with full jitter up to max_backoff_ms. Bodies
 * are bounded by max_body_bytes. Parsed updates go through a feed_mailbox
 * (latest value per symbol) to the service thread, which the thread wakes.
 * With "capture" set, every response is also recorded raw (feed_capture.h).
 * Nothing here touches lws or downstream state from the curl thread.
 */
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/feed_capture.h"
#include "tickerd/feed_mailbox.h"
#include "tickerd/feed_rest.h"
#include "tickerd/log.h"
#include "tickerd/symtab.h"
#include "tickerd/util.h"
#include "tickerd/venue.h"
#include "tickerd/venue_generic.h"

#define REST_MAX_SYMBOLS 1000
#define REST_BACKOFF_BASE_MS 500
#define REST_URL_MAX 4096


typedef struct rest_opts {
    char venue[16];
    char base_url[512];
    int poll_interval_ms;
    int timeout_ms;
    int stale_after_ms;
    int max_body_bytes;
    int max_backoff_ms;
    char capture[512]; /* "" = off */
    venue_symbol_map *symbols;
    size_t nsymbols;
    /* "venue": "generic": the url template and the mapping (a plain value) */
    int generic;
    char url[VENUE_GENERIC_URL_MAX];
    venue_generic map;
} rest_opts;

typedef struct rest_request {
    struct rest *r;
    size_t index;
    CURL *easy;
    char url[REST_URL_MAX];
    char *body;
    size_t len;
    int too_large;
    int in_flight;
    int64_t due_us;   /* monotonic time of the next attempt */
    int failures;     /* consecutive, for the backoff */
} rest_request;

typedef struct rest {
    feed_env env;
    rest_opts o;
    const venue_preset *preset;
    const char **venue_syms; /* pointers into o.symbols, for the preset */
    feed_mailbox *mailbox;
    feed_capture *capture;   /* raw responses, when "capture" is set */
    feed_update *known;      /* last complete value per symbol (merging partials) */
    CURLM *multi;
    rest_request *reqs;
    size_t nreqs;
    pthread_t thread;
    atomic_int stop;
    int running;
    uint64_t rng;
    /* counters shared with the service thread */
    atomic_uint_fast64_t updates, polls_ok, http_errors, venue_errors, parse_errors, rate_limited,
        oversized;
    atomic_int_fast64_t last_ok_us, last_update_us;
    pthread_mutex_t detail_lock;
    char detail[128];
} rest;

static int curl_ready;

/* ---- options ---- */

static void rest_free_opts(void *p)
{
    rest_opts *o = p;
    if (o)
        free(o->symbols);
    free(o);
}

/* "venue": "generic": url (a template) and map are required, base_url is not
 * used. */
static int rest_parse_generic(const json_t *obj, const char *path, rest_opts *o, cfg_error *err)
{
    char why[128];
    if (o->base_url[0])
        return cfg_fail(err, "%s.base_url: not for venue generic; give the whole \"url\"", path);
    if (!o->url[0])
        return cfg_fail(err, "%s.url: required for venue generic", path);
    if (venue_generic_check_url(o->url, why, sizeof(why)))
        return cfg_fail(err, "%s.url: %s", path, why);
    return venue_generic_parse_map(json_object_get(obj, "map"), path, &o->map, err);
}

static int rest_parse(const json_t *obj, const char *path, void **out, cfg_error *err)
{
    static const cfg_field fields[] = {
        {"venue", CFG_STRING, offsetof(rest_opts, venue), 0, 16},
        {"base_url", CFG_STRING, offsetof(rest_opts, base_url), 0, 512},
        {"poll_interval_ms", CFG_INT, offsetof(rest_opts, poll_interval_ms), 50, 3600000},
        {"timeout_ms", CFG_INT, offsetof(rest_opts, timeout_ms), 100, 120000},
        {"stale_after_ms", CFG_INT, offsetof(rest_opts, stale_after_ms), 100, 3600000},
        {"max_body_bytes", CFG_INT, offsetof(rest_opts, max_body_bytes), 1024, 67108864},
        {"max_backoff_ms", CFG_INT, offsetof(rest_opts, max_backoff_ms), 100, 3600000},
        {"capture", CFG_STRING, offsetof(rest_opts, capture), 0, 512},
        {"url", CFG_STRING, offsetof(rest_opts, url), 0, VENUE_GENERIC_URL_MAX},
    };
    static const char *const handled[] = {"type", "name", "symbols", "map", NULL};
    rest_opts *o = calloc(1, sizeof(*o));
    if (!o)
        return cfg_fail(err, "%s: out of memory", path);
    o->poll_interval_ms = 1000;
    o->timeout_ms = 5000;
    o->stale_after_ms = 10000;
    o->max_body_bytes = 1 << 20;
    o->max_backoff_ms = 30000;
    if (cfg_parse_fields(obj, path, fields, sizeof(fields) / sizeof(fields[0]), handled, o, err))
        goto fail;
    const venue_preset *v = venue_find(o->venue);
    o->generic = !strcmp(o->venue, "generic");
    if (o->generic) {
        v = &venue_generic_preset;
        if (rest_parse_generic(obj, path, o, err))
            goto fail;
    } else if (o->url[0] || json_object_get(obj, "map")) {
        cfg_fail(err, "%s.%s: only for \"venue\": \"generic\" (a preset has base_url)", path,
                 o->url[0] ? "url" : "map");
        goto fail;
    }
    if (!v || (!v->rest_parse && !o->generic)) {
        cfg_fail(err, "%s.venue: must be one of binance, coinbase, kraken, coingecko, okx, bybit, bitstamp, generic", path);
        goto fail;
    }
    /* venue generic: the url template says where (base_url was refused above) */
    if (!o->generic && !o->base_url[0])
        snprintf(o->base_url, sizeof(o->base_url), "%s", v->rest_base);
    if (!o->generic && strncmp(o->base_url, "http://", 7) && strncmp(o->base_url, "https://", 8)) {
        cfg_fail(err, "%s.base_url: must start with http:// or https://", path);
        goto fail;
    }
    if (venue_parse_symbols(json_object_get(obj, "symbols"), path, v, REST_MAX_SYMBOLS,
                            &o->symbols, &o->nsymbols, err))
        goto fail;
    /* Without a symbol in the body or the request, a quote can only be the
     * feed's one symbol. */
    if (o->generic && !o->map.symbol.n && !o->map.symbol_is_key &&
        venue_generic_requests(o->url, o->nsymbols) != o->nsymbols) {
        cfg_fail(err, "%s.map.symbol: required with %zu symbols unless the url has {symbol}", path,
                 o->nsymbols);
        goto fail;
    }
    if (o->generic) {
        char probe[REST_URL_MAX];
        const char *syms[REST_MAX_SYMBOLS];
        for (size_t i = 0; i < o->nsymbols; i++)
            syms[i] = o->symbols[i].venue;
        for (size_t i = 0; i < venue_generic_requests(o->url, o->nsymbols); i++)
            if (venue_generic_url(o->url, syms, o->nsymbols, i, probe, sizeof(probe)) < 0) {
                cfg_fail(err, "%s.url: with these symbols the url is longer than %d bytes, or a "
                              "symbol is not URL-safe ([A-Za-z0-9./_-])", path, REST_URL_MAX - 1);
                goto fail;
            }
    }
    *out = o;
    return 0;
fail:
    rest_free_opts(o);
    return -1;
}

/* ---- the curl thread ---- */

static size_t rest_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    rest_request *q = arg;
    size_t n = size * nmemb;
    if (q->len + n > (size_t)q->r->o.max_body_bytes) {
        q->too_large = 1;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    char *b = realloc(q->body, q->len + n + 1);
    if (!b)
        return 0;
    q->body = b;
    memcpy(q->body + q->len, data, n);
    q->len += n;
    q->body[q->len] = '\0';
    return n;
}

static uint64_t rest_rand(rest *r)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return r->rng;
}

static void rest_set_detail(rest *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rest_set_detail(rest *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&r->detail_lock);
    vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
    pthread_mutex_unlock(&r->detail_lock);
    va_end(ap);
}

static void rest_on_update(void *arg, const feed_update *in)
{
    rest *r = arg;
    long i = venue_symbol_index(r->preset, r->o.symbols, r->o.nsymbols, in->symbol);
    if (i < 0)
        return; /* a symbol we did not ask for */
    feed_update u = *in;
    feed_update_complete(&r->known[i], &u);
    u.symbol = r->o.symbols[i].canonical;
    u.source = r->env.source;
    feed_mailbox_put(r->mailbox, (size_t)i, &u);
    atomic_fetch_add(&r->updates, 1);
    atomic_store(&r->last_update_us, tk_now_us());
}

static void rest_schedule(rest_request *q, int64_t now, int64_t delay_ms)
{
    q->due_us = now + delay_ms * 1000;
}

static int64_t rest_backoff_ms(rest *r, rest_request *q)
{
    /* Exponential backoff with full jitter: uniform in [0, min(cap, base·2^k)]. */
    int k = q->failures < 16 ? q->failures : 16;
    int64_t ceiling = (int64_t)REST_BACKOFF_BASE_MS << k;
    if (ceiling > r->o.max_backoff_ms)
        ceiling = r->o.max_backoff_ms;
    int64_t d = (int64_t)(rest_rand(r) % (uint64_t)(ceiling + 1));
    return d < r->o.poll_interval_ms ? r->o.poll_interval_ms : d;
}

static void rest_done(rest *r, rest_request *q, CURLcode rc, int64_t now)
{
    long status = 0;
    curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(r->multi, q->easy);
    q->in_flight = 0;

    if (rc != CURLE_OK) {
        atomic_fetch_add(q->too_large ? &r->oversized : &r->http_errors, 1);
        q->failures++;
        rest_set_detail(r, "%s: %s", q->too_large ? "body over max_body_bytes" : "transfer failed",
                        curl_easy_strerror(rc));
        log_warn("feed %s: %s: %s", r->o.venue, q->url,
                 q->too_large ? "response larger than max_body_bytes" : curl_easy_strerror(rc));
        rest_schedule(q, now, rest_backoff_ms(r, q));
        return;
    }
    /* A response arrived: capture it raw, whatever it says. */
    const char *hint = r->nreqs == r->o.nsymbols ? r->venue_syms[q->index] : NULL;
    int64_t recv_us = tk_now_us();
    feed_capture_rest(r->capture, recv_us, status, hint, q->body ? q->body : "", q->len);
    if (status == 429 || status == 418) {
        curl_off_t retry_s = 0;
        curl_easy_getinfo(q->easy, CURLINFO_RETRY_AFTER, &retry_s);
        atomic_fetch_add(&r->rate_limited, 1);
        q->failures++;
        int64_t wait_ms = retry_s > 0 ? (int64_t)retry_s * 1000 : rest_backoff_ms(r, q);
        rest_set_detail(r, "rate limited (HTTP %ld), retrying in %lld ms", status,
                        (long long)wait_ms);
        log_warn("feed %s: HTTP %ld from %s; next try in %lld ms", r->o.venue, status, q->url,
                 (long long)wait_ms);
        rest_schedule(q, now, wait_ms);
        return;
    }
    char err[160] = "";
    venue_emit emit = {.arg = r, .update = rest_on_update};
    venue_msg m = r->o.generic
                      ? venue_generic_parse(&r->o.map, status, q->body ? q->body : "", q->len,
                                            hint, r->env.source, recv_us, &emit, err, sizeof(err))
                      : r->preset->rest_parse(status, q->body ? q->body : "", q->len, hint,
                                              r->env.source, recv_us, &emit, err, sizeof(err));
    if (m == VENUE_MSG_DATA && status >= 200 && status < 300) {
        atomic_fetch_add(&r->polls_ok, 1);
        atomic_store(&r->last_ok_us, tk_now_us());
        q->failures = 0;
        rest_schedule(q, now, r->o.poll_interval_ms);
        return;
    }
    if (m == VENUE_MSG_MALFORMED)
        atomic_fetch_add(&r->parse_errors, 1);
    else if (status >= 200 && status < 300)
        atomic_fetch_add(&r->venue_errors, 1);
    else
        atomic_fetch_add(&r->http_errors, 1);
    q->failures++;
    rest_set_detail(r, "HTTP %ld: %s", status, err[0] ? err : "unexpected response");
    log_warn("feed %s: HTTP %ld from %s: %s", r->o.venue, status, q->url,
             err[0] ? err : "unexpected response");
    rest_schedule(q, now, rest_backoff_ms(r, q));
}

static void rest_start_request(rest *r, rest_request *q)
{
    free(q->body);
    q->body = NULL;
    q->len = 0;
    q->too_large = 0;
    if (curl_multi_add_handle(r->multi, q->easy) == CURLM_OK)
        q->in_flight = 1;
}

static void *rest_thread(void *arg)
{
    rest *r = arg;
    while (!atomic_load(&r->stop)) {
        int64_t now = tk_mono_us();
        for (size_t i = 0; i < r->nreqs; i++)
            if (!r->reqs[i].in_flight && r->reqs[i].due_us <= now)
                rest_start_request(r, &r->reqs[i]);
        int running = 0;
        curl_multi_perform(r->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(r->multi, &left))) {
            rest_request *q = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&q);
            if (msg->msg == CURLMSG_DONE && q)
                rest_done(r, q, msg->data.result, tk_mono_us());
        }
        /* Sleep until the next request is due (completions above may just
         * have re-armed some), or curl has socket work, or we are woken. */
        now = tk_mono_us();
        int64_t next = now + 1000000;
        for (size_t i = 0; i < r->nreqs; i++)
            if (!r->reqs[i].in_flight && r->reqs[i].due_us < next)
                next = r->reqs[i].due_us;
        int wait_ms = next > now ? (int)((next - now + 999) / 1000) : 0;
        curl_multi_poll(r->multi, NULL, 0, wait_ms, NULL);
    }
    return NULL;
}

/* ---- lifecycle (service thread) ---- */

static void rest_destroy(void *self);

static void *rest_create(const void *opts, const feed_env *env)
{
    const rest_opts *o = opts;
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT); /* once, before any thread */
        curl_ready = 1;
    }
    rest *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->env = *env;
    r->o = *o;
    r->o.symbols = calloc(o->nsymbols, sizeof(*o->symbols));
    r->venue_syms = calloc(o->nsymbols, sizeof(*r->venue_syms));
    r->known = calloc(o->nsymbols, sizeof(*r->known));
    r->preset = o->generic ? &venue_generic_preset : venue_find(o->venue);
    r->rng = (uint64_t)tk_now_us() | 1;
    pthread_mutex_init(&r->detail_lock, NULL);
    if (!r->o.symbols || !r->venue_syms || !r->known || !r->preset)
        goto fail;
    if (o->capture[0]) {
        char err[600];
        /* Room for a whole max_body_bytes response even if escaping doubles
         * it; a record that does not fit is dropped and counted. */
        size_t bytes = 2 * (size_t)o->max_body_bytes + 4096;
        r->capture = feed_capture_open(o->capture, bytes > FEED_CAPTURE_DEFAULT_BUFFER
                                                       ? bytes
                                                       : FEED_CAPTURE_DEFAULT_BUFFER,
                                       err, sizeof(err));
        if (!r->capture) {
            log_error("feed %s: capture: %s", env->name, err);
            goto fail;
        }
    }
    memcpy(r->o.symbols, o->symbols, o->nsymbols * sizeof(*o->symbols));
    for (size_t i = 0; i < o->nsymbols; i++) {
        r->venue_syms[i] = r->o.symbols[i].venue;
        r->known[i].bid = r->known[i].ask = r->known[i].last = NAN;
        r->known[i].volume = r->known[i].open = NAN;
        env->sink.declare(env->sink.arg, env->source, r->o.symbols[i].canonical, NULL);
    }
    r->mailbox = feed_mailbox_create(o->nsymbols, env->lws);
    r->multi = curl_multi_init();
    r->nreqs = o->generic ? venue_generic_requests(o->url, o->nsymbols)
                          : r->preset->rest_requests(o->nsymbols);
    r->reqs = calloc(r->nreqs, sizeof(*r->reqs));
    if (!r->mailbox || !r->multi || !r->reqs)
        goto fail;
    for (size_t i = 0; i < r->nreqs; i++) {
        rest_request *q = &r->reqs[i];
        char path[REST_URL_MAX - 512];
        q->r = r;
        q->index = i;
        if (o->generic) {
            if (venue_generic_url(o->url, r->venue_syms, o->nsymbols, i, q->url, sizeof(q->url)) < 0)
                goto fail;
        } else {
            if (r->preset->rest_path(r->venue_syms, o->nsymbols, i, path, sizeof(path)) < 0)
                goto fail;
            snprintf(q->url, sizeof(q->url), "%s%s", r->o.base_url, path);
        }
        q->easy = curl_easy_init();
        if (!q->easy)
            goto fail;
        curl_easy_setopt(q->easy, CURLOPT_URL, q->url);
        curl_easy_setopt(q->easy, CURLOPT_PRIVATE, q);
        curl_easy_setopt(q->easy, CURLOPT_WRITEFUNCTION, rest_on_body);
        curl_easy_setopt(q->easy, CURLOPT_WRITEDATA, q);
        curl_easy_setopt(q->easy, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
        curl_easy_setopt(q->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)o->timeout_ms);
        curl_easy_setopt(q->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(q->easy, CURLOPT_ACCEPT_ENCODING, "");
        curl_easy_setopt(q->easy, CURLOPT_USERAGENT, "tickerd/" TK_VERSION);
        curl_easy_setopt(q->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    }
    return r;
fail:
    rest_destroy(r);
    return NULL;
}

static int rest_start(void *self)
{
    rest *r = self;
    if (pthread_create(&r->thread, NULL, rest_thread, r))
        return -1;
    r->running = 1;
    return 0;
}

static void rest_stop(void *self)
{
    rest *r = self;
    if (!r->running)
        return;
    atomic_store(&r->stop, 1);
    curl_multi_wakeup(r->multi);
    pthread_join(r->thread, NULL);
    r->running = 0;
}

static void rest_destroy(void *self)
{
    rest *r = self;
    if (!r)
        return;
    rest_stop(r);
    for (size_t i = 0; r->reqs && i < r->nreqs; i++) {
        if (r->reqs[i].easy) {
            if (r->reqs[i].in_flight)
                curl_multi_remove_handle(r->multi, r->reqs[i].easy);
            curl_easy_cleanup(r->reqs[i].easy);
        }
        free(r->reqs[i].body);
    }
    free(r->reqs);
    if (r->multi)
        curl_multi_cleanup(r->multi);
    feed_mailbox_destroy(r->mailbox);
    feed_capture_close(r->capture);
    pthread_mutex_destroy(&r->detail_lock);
    free(r->o.symbols);
    free(r->venue_syms);
    free(r->known);
    free(r);
}

static int rest_reload(void *self, const void *opts)
{
    (void)self;
    (void)opts;
    return -1; /* the app restarts a feed whose settings changed */
}

static void rest_wake(void *self)
{
    rest *r = self;
    feed_mailbox_drain(r->mailbox, &r->env.sink);
}

static void rest_status(const void *self, feed_status *st)
{
    rest *r = (rest *)self;
    int64_t last_ok = atomic_load(&r->last_ok_us);
    st->updates = atomic_load(&r->updates);
    st->last_update_us = atomic_load(&r->last_update_us);
    st->errors = atomic_load(&r->http_errors) + atomic_load(&r->venue_errors);
    st->rate_limited = atomic_load(&r->rate_limited);
    st->malformed = atomic_load(&r->parse_errors);
    st->oversized = atomic_load(&r->oversized);
    st->captured_dropped = r->capture ? feed_capture_dropped(r->capture) : 0;
    if (!r->running)
        st->state = FEED_DOWN;
    else if (!last_ok)
        st->state = atomic_load(&r->http_errors) + atomic_load(&r->venue_errors) ? FEED_DOWN
                                                                              : FEED_STARTING;
    else
        st->state = tk_now_us() - last_ok <= (int64_t)r->o.stale_after_ms * 1000 ? FEED_LIVE
                                                                                 : FEED_DOWN;
    if (st->state != FEED_LIVE) {
        pthread_mutex_lock(&r->detail_lock);
        snprintf(st->detail, sizeof(st->detail), "%s", r->detail);
        pthread_mutex_unlock(&r->detail_lock);
    }
}

static int rest_symbols(const void *opts, feed_symbol_fn each, void *arg)
{
    const rest_opts *o = opts;
    venue_symbols_each(o->symbols, o->nsymbols, each, arg);
    return 0;
}

const feed_type feed_rest_type = {
    .name = "rest",
    .parse = rest_parse,
    .free_opts = rest_free_opts,
    .create = rest_create,
    .start = rest_start,
    .reload = rest_reload,
    .stop = rest_stop,
    .destroy = rest_destroy,
    .status = rest_status,
    .symbols = rest_symbols,
    .wake = rest_wake,
};
