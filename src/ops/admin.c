/* admin.c — see admin.h. Not a hot path: one walk over the sessions per
 * request, built with jansson. */
#include "tickerd/admin.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/symtab.h"
#include "tickerd/util.h"

#define ADMIN_TRANSPORTS SESS_MAX_TRANSPORTS

/* One address's sessions, per transport (by index into names). */
typedef struct admin_addr {
    uint32_t total;
    uint32_t by_transport[ADMIN_TRANSPORTS];
} admin_addr;

typedef struct admin_walk {
    const char *transports[ADMIN_TRANSPORTS]; /* names as met */
    uint32_t per_transport[ADMIN_TRANSPORTS];
    symtab *addresses;
    admin_addr *addr; /* by address id */
    uint32_t addr_cap;
    sess_info slowest[ADMIN_SLOWEST]; /* most conflated first */
    char slowest_peer[ADMIN_SLOWEST][NETLIST_ADDR_TEXT];
    uint32_t nslowest;
    uint32_t sessions;
    int oom;
} admin_walk;

static int admin_transport_index(admin_walk *w, const char *name)
{
    for (int i = 0; i < ADMIN_TRANSPORTS; i++) {
        if (!w->transports[i])
            w->transports[i] = name;
        if (!strcmp(w->transports[i], name))
            return i;
    }
    return -1;
}

/* Keep the ADMIN_SLOWEST most conflated sessions, by insertion: the list is
 * short, and most sessions do not enter it. */
static void admin_keep_slowest(admin_walk *w, const sess_info *in)
{
    uint32_t at = w->nslowest;
    while (at > 0 && w->slowest[at - 1].conflated < in->conflated)
        at--;
    if (at >= ADMIN_SLOWEST)
        return;
    uint32_t last = w->nslowest < ADMIN_SLOWEST ? w->nslowest++ : ADMIN_SLOWEST - 1;
    memmove(&w->slowest[at + 1], &w->slowest[at], (last - at) * sizeof(w->slowest[0]));
    memmove(w->slowest_peer[at + 1], w->slowest_peer[at], (last - at) * sizeof(w->slowest_peer[0]));
    w->slowest[at] = *in;
    /* info.peer points into the session: copy it, the list outlives the walk's step */
    snprintf(w->slowest_peer[at], sizeof(w->slowest_peer[at]), "%s", in->peer);
}

static void admin_visit(void *arg, const sess_info *in)
{
    admin_walk *w = arg;
    w->sessions++;
    int t = admin_transport_index(w, in->transport);
    if (t >= 0)
        w->per_transport[t]++;
    admin_keep_slowest(w, in);
    if (w->oom)
        return;
    uint32_t id = symtab_intern(w->addresses, in->peer[0] ? in->peer : "unknown", NULL);
    if (id == SYMTAB_NONE) {
        w->oom = 1;
        return;
    }
    if (id >= w->addr_cap) {
        uint32_t cap = w->addr_cap ? w->addr_cap * 2 : 64;
        admin_addr *a = realloc(w->addr, cap * sizeof(*a));
        if (!a) {
            w->oom = 1;
            return;
        }
        memset(a + w->addr_cap, 0, (cap - w->addr_cap) * sizeof(*a));
        w->addr = a;
        w->addr_cap = cap;
    }
    w->addr[id].total++;
    if (t >= 0)
        w->addr[id].by_transport[t]++;
}

static json_t *admin_by_transport(const admin_walk *w, const uint32_t *counts)
{
    json_t *o = json_object();
    for (int i = 0; o && i < ADMIN_TRANSPORTS && w->transports[i]; i++)
        if (counts[i])
            json_object_set_new(o, w->transports[i], json_integer(counts[i]));
    return o;
}

static json_t *admin_connections(admin_walk *w)
{
    /* The busiest addresses first: a selection over the address table. */
    uint32_t n = symtab_count(w->addresses);
    json_t *addrs = json_array();
    uint8_t *taken = calloc(n ? n : 1, 1);
    for (uint32_t k = 0; addrs && taken && k < n && k < ADMIN_ADDRESSES; k++) {
        uint32_t best = UINT32_MAX;
        for (uint32_t i = 0; i < n; i++)
            if (!taken[i] && (best == UINT32_MAX || w->addr[i].total > w->addr[best].total))
                best = i;
        taken[best] = 1;
        json_array_append_new(addrs, json_pack("{s:s, s:i, s:o}", "address",
                                               symtab_name(w->addresses, best), "sessions",
                                               (int)w->addr[best].total, "by_transport",
                                               admin_by_transport(w, w->addr[best].by_transport)));
    }
    free(taken);
    return json_pack("{s:i, s:i, s:o, s:o}", "sessions", (int)w->sessions, "addresses", (int)n,
                     "by_transport", admin_by_transport(w, w->per_transport), "by_address",
                     addrs ? addrs : json_array());
}

static json_t *admin_slowest(const admin_walk *w)
{
    json_t *a = json_array();
    for (uint32_t i = 0; a && i < w->nslowest; i++) {
        const sess_info *s = &w->slowest[i];
        json_array_append_new(
            a, json_pack("{s:s, s:s, s:I, s:i, s:I, s:I, s:I, s:b, s:i}", "transport", s->transport,
                         "address", w->slowest_peer[i], "age_ms", (json_int_t)s->age_ms,
                         "subscriptions", (int)s->subscriptions, "conflated",
                         (json_int_t)s->conflated, "frames_out", (json_int_t)s->frames_out,
                         "values_out", (json_int_t)s->values_out, "behind", s->behind,
                         "replies_queued", (int)s->replies_queued));
    }
    return a;
}

static json_t *admin_feeds(const http_sources *src, int64_t now)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < *src->nfeeds; i++) {
        const feed *f = (*src->feeds)[i];
        feed_status st;
        feed_get_status(f, &st);
        int64_t err_at;
        const char *err = feed_last_error(f, &err_at);
        json_t *j = json_pack(
            "{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "name", feed_name(f), "type",
            feed_get_type(f)->name, "state", feed_state_name(st.state), "updates",
            (json_int_t)st.updates, "errors", (json_int_t)st.errors, "reconnects",
            (json_int_t)st.reconnects, "rate_limited", (json_int_t)st.rate_limited, "malformed",
            (json_int_t)st.malformed, "oversized", (json_int_t)st.oversized);
        if (j && st.last_update_us)
            json_object_set_new(j, "last_update_age_ms", json_integer((now - st.last_update_us) / 1000));
        if (j && st.detail[0])
            json_object_set_new(j, "detail", json_string(st.detail));
        if (j && err_at) {
            json_object_set_new(j, "last_error", json_string(err));
            json_object_set_new(j, "last_error_age_ms", json_integer((now - err_at) / 1000));
        }
        json_array_append_new(a, j);
    }
    return a;
}

static json_t *admin_broadcast(const http_sources *src)
{
    const bcast *b = *src->bcast;
    const bcast_stats *bs = bcast_get_stats(b);
    uint32_t stale = 0, removed = 0;
    for (uint32_t id = 0; id < bcast_symbol_count(b); id++) {
        const char *st = bcast_symbol_status(b, id);
        stale += !strcmp(st, "stale");
        removed += !strcmp(st, "removed");
    }
    return json_pack("{s:s, s:i, s:i, s:i, s:I, s:I, s:I, s:I}", "epoch", bcast_epoch(b), "symbols",
                     (int)bcast_symbols_offered(b), "stale_symbols", (int)stale, "removed_symbols",
                     (int)removed, "frames_out", (json_int_t)bs->frames_out, "updates_out",
                     (json_int_t)bs->updates_out, "conflated", (json_int_t)bs->conflated,
                     "subscriptions", (json_int_t)bs->subscriptions);
}

int admin_render(const http_sources *src, sbuf *o)
{
    admin_walk *w = calloc(1, sizeof(*w));
    if (!w)
        return -1;
    w->addresses = symtab_new(UINT32_MAX - 1);
    if (!w->addresses) {
        free(w);
        return -1;
    }
    sess_each(*src->sess, admin_visit, w);
    int64_t now = tk_now_us();
    const sess_limits *lim = sess_get_limits(*src->sess);
    json_t *root = json_pack(
        "{s:{s:s, s:I, s:i}, s:o, s:o, s:o, s:o, s:o}", "server", "version", TK_VERSION, "uptime_s",
        (json_int_t)((now - src->started_us) / 1000000), "max_connections", (int)lim->max_sessions,
        "connections", admin_connections(w), "slowest_clients", admin_slowest(w), "feeds",
        admin_feeds(src, now), "history", http_history_json(src, now), "broadcast",
        admin_broadcast(src));
    if (root && w->oom)
        json_object_set_new(root, "incomplete", json_string("out of memory grouping addresses"));
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    symtab_free(w->addresses);
    free(w->addr);
    free(w);
    if (!text)
        return -1;
    sbuf_append(o, text, strlen(text));
    free(text);
    return 0;
}
