/* cfg.c — see cfg.h. */
#include "tickerd/cfg.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/auth.h"
#include "tickerd/feed.h"
#include "tickerd/gate.h"
#include "tickerd/log.h"
#include "tickerd/symtab.h"

#define CFG_OFF(field) offsetof(cfg_t, field)

int cfg_fail(cfg_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return -1;
}

static int cfg_key_in(const char *key, const char *const *list)
{
    for (; list && *list; list++)
        if (!strcmp(key, *list))
            return 1;
    return 0;
}

static int cfg_parse_one(const json_t *v, const char *path, const cfg_field *f, void *base,
                         cfg_error *err)
{
    char *dst = (char *)base + f->offset;
    switch (f->kind) {
    case CFG_INT:
    case CFG_U64: {
        if (!json_is_integer(v))
            return cfg_fail(err, "%s.%s: must be an integer from %.0f to %.0f", path, f->key,
                            f->min, f->max);
        json_int_t i = json_integer_value(v);
        if ((double)i < f->min || (double)i > f->max)
            return cfg_fail(err, "%s.%s: %lld is out of range (%.0f to %.0f)", path, f->key,
                            (long long)i, f->min, f->max);
        if (f->kind == CFG_INT)
            *(int *)dst = (int)i;
        else
            *(uint64_t *)dst = (uint64_t)i;
        return 0;
    }
    case CFG_DOUBLE: {
        if (!json_is_number(v))
            return cfg_fail(err, "%s.%s: must be a number from %g to %g", path, f->key, f->min,
                            f->max);
        double d = json_number_value(v);
        if (!isfinite(d) || d < f->min || d > f->max)
            return cfg_fail(err, "%s.%s: %g is out of range (%g to %g)", path, f->key, d, f->min,
                            f->max);
        *(double *)dst = d;
        return 0;
    }
    case CFG_BOOL:
        if (!json_is_boolean(v))
            return cfg_fail(err, "%s.%s: must be true or false", path, f->key);
        *(int *)dst = json_is_true(v);
        return 0;
    case CFG_STRING: {
        if (!json_is_string(v))
            return cfg_fail(err, "%s.%s: must be a string", path, f->key);
        size_t n = json_string_length(v);
        if (n + 1 > (size_t)f->max)
            return cfg_fail(err, "%s.%s: longer than %.0f characters", path, f->key, f->max - 1);
        memcpy(dst, json_string_value(v), n + 1);
        return 0;
    }
    }
    return cfg_fail(err, "%s.%s: internal error", path, f->key);
}

int cfg_parse_fields(const json_t *obj, const char *path, const cfg_field *fields, size_t nfields,
                     const char *const *also_allowed, void *base, cfg_error *err)
{
    if (!json_is_object(obj))
        return cfg_fail(err, "%s: must be an object", path);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        size_t i;
        for (i = 0; i < nfields; i++)
            if (!strcmp(fields[i].key, key))
                break;
        if (i < nfields) {
            if (cfg_parse_one(v, path, &fields[i], base, err))
                return -1;
        } else if (!cfg_key_in(key, also_allowed)) {
            return cfg_fail(err, "%s.%s: unknown key", path, key);
        }
    }
    return 0;
}

static const cfg_field server_fields[] = {
    {"bind", CFG_STRING, CFG_OFF(server.bind), 0, sizeof(((cfg_t *)0)->server.bind)},
    {"port", CFG_INT, CFG_OFF(server.port), 0, 65535},
    {"web_root", CFG_STRING, CFG_OFF(server.web_root), 0, sizeof(((cfg_t *)0)->server.web_root)},
    {"max_connections", CFG_INT, CFG_OFF(server.max_connections), 1, 1000000},
    {"event_loop", CFG_STRING, CFG_OFF(server.event_loop), 0, sizeof(((cfg_t *)0)->server.event_loop)},
    {"allowed_origins", CFG_STRING, CFG_OFF(server.access.allowed_origins), 0,
     sizeof(((cfg_t *)0)->server.access.allowed_origins)},
    {"metrics_allowed_addresses", CFG_STRING, CFG_OFF(server.access.metrics_allowed_addresses), 0,
     sizeof(((cfg_t *)0)->server.access.metrics_allowed_addresses)},
    {"health_allowed_addresses", CFG_STRING, CFG_OFF(server.access.health_allowed_addresses), 0,
     sizeof(((cfg_t *)0)->server.access.health_allowed_addresses)},
};
static const cfg_field auth_fields[] = {
    {"algorithm", CFG_STRING, CFG_OFF(auth.algorithm), 0, sizeof(((cfg_t *)0)->auth.algorithm)},
    {"secret", CFG_STRING, CFG_OFF(auth.secret), 0, sizeof(((cfg_t *)0)->auth.secret)},
    {"secret_file", CFG_STRING, CFG_OFF(auth.secret_file), 0, sizeof(((cfg_t *)0)->auth.secret_file)},
    {"public_key_file", CFG_STRING, CFG_OFF(auth.public_key_file), 0,
     sizeof(((cfg_t *)0)->auth.public_key_file)},
    {"issuer", CFG_STRING, CFG_OFF(auth.issuer), 0, sizeof(((cfg_t *)0)->auth.issuer)},
    {"audience", CFG_STRING, CFG_OFF(auth.audience), 0, sizeof(((cfg_t *)0)->auth.audience)},
    {"leeway_s", CFG_INT, CFG_OFF(auth.leeway_s), 0, 300},
    {"reauth_before_s", CFG_INT, CFG_OFF(auth.reauth_before_s), 1, 86400},
    {"auth_timeout_ms", CFG_INT, CFG_OFF(auth.auth_timeout_ms), 100, 600000},
};
static const cfg_field normalizer_fields[] = {
    {"flush_interval_ms", CFG_INT, CFG_OFF(normalizer.flush_interval_ms), 0, 60000},
    {"max_symbols", CFG_INT, CFG_OFF(normalizer.max_symbols), 1, 10000000},
    {"stale_after_ms", CFG_INT, CFG_OFF(normalizer.stale_after_ms), 100, 3600000},
    {"jump_band_pct", CFG_DOUBLE, CFG_OFF(normalizer.jump_band_pct), 0, 1000},
};
static const cfg_field broadcast_fields[] = {
    {"max_frame_bytes", CFG_INT, CFG_OFF(broadcast.max_frame_bytes), 1024, 16777216},
    {"stall_timeout_ms", CFG_INT, CFG_OFF(broadcast.stall_timeout_ms), 100, 3600000},
    {"ping_interval_s", CFG_INT, CFG_OFF(broadcast.ping_interval_s), 1, 3600},
    {"resume_depth", CFG_INT, CFG_OFF(broadcast.resume_depth), 0, 4096},
    {"backlog_ms", CFG_INT, CFG_OFF(broadcast.backlog_ms), 0, 60000},
    {"permessage_deflate", CFG_BOOL, CFG_OFF(broadcast.permessage_deflate), 0, 0},
};
static const cfg_field limits_fields[] = {
    {"max_subscriptions", CFG_INT, CFG_OFF(limits.max_subscriptions), 1, 10000000},
    {"max_message_bytes", CFG_INT, CFG_OFF(limits.max_message_bytes), 64, 1048576},
    {"max_messages_per_sec", CFG_INT, CFG_OFF(limits.max_messages_per_sec), 1, 1000000},
    {"max_errors", CFG_INT, CFG_OFF(limits.max_errors), 1, 1000000},
    {"max_connections_per_address", CFG_INT, CFG_OFF(limits.max_connections_per_address), 0, 1000000},
    {"new_connections_per_sec", CFG_INT, CFG_OFF(limits.new_connections_per_sec), 0, 1000000},
    {"new_connections_burst", CFG_INT, CFG_OFF(limits.new_connections_burst), 1, 1000000},
    {"max_pending_heads", CFG_INT, CFG_OFF(limits.max_pending_heads), 0, 1000000},
    {"max_pending_heads_per_address", CFG_INT, CFG_OFF(limits.max_pending_heads_per_address), 0, 1000000},
    {"header_timeout_ms", CFG_INT, CFG_OFF(limits.header_timeout_ms), 100, 600000},
    {"max_header_bytes", CFG_INT, CFG_OFF(limits.max_header_bytes), 1024, 8192},
    {"subscribe_timeout_ms", CFG_INT, CFG_OFF(limits.subscribe_timeout_ms), 0, 86400000},
};
static const cfg_field tls_fields[] = {
    {"cert", CFG_STRING, CFG_OFF(server.tls.cert), 0, sizeof(((cfg_t *)0)->server.tls.cert)},
    {"key", CFG_STRING, CFG_OFF(server.tls.key), 0, sizeof(((cfg_t *)0)->server.tls.key)},
    {"ca", CFG_STRING, CFG_OFF(server.tls.ca), 0, sizeof(((cfg_t *)0)->server.tls.ca)},
    {"redirect_port", CFG_INT, CFG_OFF(server.tls.redirect_port), 0, 65535},
};
static const cfg_field history_fields[] = {
    {"enabled", CFG_BOOL, CFG_OFF(history.enabled), 0, 0},
    {"path", CFG_STRING, CFG_OFF(history.path), 0, sizeof(((cfg_t *)0)->history.path)},
    {"flush_interval_ms", CFG_INT, CFG_OFF(history.flush_interval_ms), 10, 60000},
    {"queue_capacity", CFG_INT, CFG_OFF(history.queue_capacity), 64, 16777216},
    {"max_db_mb", CFG_INT, CFG_OFF(history.max_db_mb), 0, 1048576},
    {"max_rows", CFG_INT, CFG_OFF(history.max_rows), 10, 10000},
    {"retention_ticks_s", CFG_INT, CFG_OFF(history.retention_ticks_s), 0, 2147483647},
    {"retention_1s_s", CFG_INT, CFG_OFF(history.retention_1s_s), 0, 2147483647},
    {"retention_1m_s", CFG_INT, CFG_OFF(history.retention_1m_s), 0, 2147483647},
    {"retention_1h_s", CFG_INT, CFG_OFF(history.retention_1h_s), 0, 2147483647},
};
static const cfg_field socketio_fields[] = {
    {"ping_interval_ms", CFG_INT, CFG_OFF(socketio.ping_interval_ms), 100, 3600000},
    {"ping_timeout_ms", CFG_INT, CFG_OFF(socketio.ping_timeout_ms), 100, 3600000},
};
static const cfg_field api_fields[] = {
    {"cors_origins", CFG_STRING, CFG_OFF(api.cors_origins), 0,
     sizeof(((cfg_t *)0)->api.cors_origins)},
    {"sse_heartbeat_s", CFG_INT, CFG_OFF(api.sse_heartbeat_s), 1, 3600},
    {"sse_retry_ms", CFG_INT, CFG_OFF(api.sse_retry_ms), 100, 3600000},
    {"poll_hold_s", CFG_INT, CFG_OFF(api.poll_hold_s), 1, 300},
};
#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

static void cfg_free_feeds(cfg_t *cfg)
{
    for (size_t i = 0; i < cfg->nfeeds; i++)
        if (cfg->feeds[i].type && cfg->feeds[i].opts)
            cfg->feeds[i].type->free_opts(cfg->feeds[i].opts);
    free(cfg->feeds);
    cfg->feeds = NULL;
    cfg->nfeeds = 0;
}

static void cfg_free_priority(cfg_t *cfg)
{
    for (size_t i = 0; i < cfg->normalizer.npriority; i++)
        free(cfg->normalizer.priority[i].feeds);
    free(cfg->normalizer.priority);
    cfg->normalizer.priority = NULL;
    cfg->normalizer.npriority = 0;
}

void cfg_free(cfg_t *cfg)
{
    cfg_free_feeds(cfg);
    cfg_free_priority(cfg);
}

static int cfg_valid_feed_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 31)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static int cfg_parse_feed(const json_t *obj, const char *path, feed_cfg *out, cfg_error *err)
{
    if (!json_is_object(obj))
        return cfg_fail(err, "%s: must be an object", path);
    const json_t *type = json_object_get(obj, "type");
    if (!json_is_string(type))
        return cfg_fail(err, "%s.type: required string (\"sim\", \"rest\" or \"ws\")", path);
    out->type = feed_type_find(json_string_value(type));
    if (!out->type)
        return cfg_fail(err, "%s.type: unknown feed type \"%s\"", path, json_string_value(type));
    const json_t *name = json_object_get(obj, "name");
    const char *n = name ? json_string_value(name) : out->type->name;
    if (!n || !cfg_valid_feed_name(n))
        return cfg_fail(err, "%s.name: must be 1-31 characters of [A-Za-z0-9_-]", path);
    strcpy(out->name, n);
    return out->type->parse(obj, path, &out->opts, err);
}

static int cfg_parse_feeds(cfg_t *cfg, const json_t *arr, cfg_error *err)
{
    if (!json_is_array(arr))
        return cfg_fail(err, "feeds: must be an array");
    if (json_array_size(arr) > 64)
        return cfg_fail(err, "feeds: at most 64 feeds");
    cfg_free_feeds(cfg);
    size_t n = json_array_size(arr);
    cfg->feeds = calloc(n ? n : 1, sizeof(*cfg->feeds));
    if (!cfg->feeds)
        return cfg_fail(err, "feeds: out of memory");
    for (size_t i = 0; i < n; i++) {
        char path[32];
        snprintf(path, sizeof(path), "feeds[%zu]", i);
        if (cfg_parse_feed(json_array_get(arr, i), path, &cfg->feeds[i], err))
            return -1;
        cfg->nfeeds = i + 1;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(cfg->feeds[j].name, cfg->feeds[i].name))
                return cfg_fail(err, "%s.name: duplicate feed name \"%s\"", path,
                                cfg->feeds[i].name);
    }
    return 0;
}

/* normalizer.priority: {"BTC-USD": ["feed-a", "feed-b"], ...}. The names are
 * checked against feeds[] once the whole file is read (cfg_check_priority). */
static int cfg_parse_priority(cfg_t *cfg, const json_t *obj, cfg_error *err)
{
    if (!json_is_object(obj))
        return cfg_fail(err, "normalizer.priority: must be an object mapping a symbol to an "
                             "array of feed names");
    cfg_free_priority(cfg);
    size_t n = json_object_size(obj);
    if (!n)
        return 0;
    cfg->normalizer.priority = calloc(n, sizeof(*cfg->normalizer.priority));
    if (!cfg->normalizer.priority)
        return cfg_fail(err, "normalizer.priority: out of memory");
    const char *sym;
    json_t *arr;
    json_object_foreach((json_t *)obj, sym, arr) {
        if (!symtab_is_canonical(sym))
            return cfg_fail(err, "normalizer.priority.%.40s: not a canonical symbol (BASE-QUOTE)",
                            sym);
        size_t m = json_is_array(arr) ? json_array_size(arr) : 0;
        if (!json_is_array(arr) || m < 1 || m > 64)
            return cfg_fail(err, "normalizer.priority.%s: must be an array of 1 to 64 feed names",
                            sym);
        cfg_priority *p = &cfg->normalizer.priority[cfg->normalizer.npriority];
        p->feeds = calloc(m, sizeof(*p->feeds));
        if (!p->feeds)
            return cfg_fail(err, "normalizer.priority.%s: out of memory", sym);
        strcpy(p->symbol, sym);
        cfg->normalizer.npriority++;
        for (size_t i = 0; i < m; i++) {
            const char *name = json_string_value(json_array_get(arr, i));
            if (!name || !cfg_valid_feed_name(name))
                return cfg_fail(err, "normalizer.priority.%s[%zu]: must be a feed name", sym, i);
            for (size_t j = 0; j < i; j++)
                if (!strcmp(p->feeds[j], name))
                    return cfg_fail(err, "normalizer.priority.%s[%zu]: \"%s\" is listed twice",
                                    sym, i, name);
            strcpy(p->feeds[i], name);
            p->nfeeds = i + 1;
        }
    }
    return 0;
}

static int cfg_check_priority(const cfg_t *cfg, cfg_error *err)
{
    for (size_t i = 0; i < cfg->normalizer.npriority; i++) {
        const cfg_priority *p = &cfg->normalizer.priority[i];
        for (size_t j = 0; j < p->nfeeds; j++) {
            size_t k = 0;
            while (k < cfg->nfeeds && strcmp(cfg->feeds[k].name, p->feeds[j]))
                k++;
            if (k == cfg->nfeeds)
                return cfg_fail(err, "normalizer.priority.%s[%zu]: no feed is named \"%s\"",
                                p->symbol, j, p->feeds[j]);
        }
    }
    return 0;
}

static int cfg_parse_normalizer(cfg_t *cfg, const json_t *obj, cfg_error *err)
{
    static const char *const also[] = {"priority", NULL};
    if (cfg_parse_fields(obj, "normalizer", normalizer_fields, NFIELDS(normalizer_fields), also,
                         cfg, err))
        return -1;
    const json_t *prio = json_object_get(obj, "priority");
    return prio ? cfg_parse_priority(cfg, prio, err) : 0;
}

static int cfg_parse_log(cfg_t *cfg, const json_t *obj, cfg_error *err)
{
    struct {
        char level[16], format[16];
    } v = {"", ""};
    static const cfg_field f[] = {
        {"level", CFG_STRING, 0, 0, 16},
        {"format", CFG_STRING, 16, 0, 16},
    };
    if (cfg_parse_fields(obj, "log", f, 2, NULL, &v, err))
        return -1;
    if (v.level[0]) {
        int l = log_level_parse(v.level);
        if (l < 0)
            return cfg_fail(err, "log.level: must be one of error, warn, info, debug");
        cfg->log.level = l;
    }
    if (v.format[0]) {
        int fm = log_format_parse(v.format);
        if (fm < 0)
            return cfg_fail(err, "log.format: must be \"text\" or \"json\"");
        cfg->log.format = fm;
    }
    return 0;
}

/* A JSON array of addresses and networks into l (replacing its entries). */
static int cfg_parse_netlist(const json_t *list, const char *path, netlist *l, cfg_error *err)
{
    if (!json_is_array(list))
        return cfg_fail(err, "%s: must be an array of addresses or networks "
                             "(\"127.0.0.1\", \"10.0.0.0/8\", \"::1\")", path);
    memset(l, 0, sizeof(*l));
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v) {
        const char *why = "must be a string";
        if (!json_is_string(v) || netlist_add(l, json_string_value(v), &why))
            return cfg_fail(err, "%s[%zu]: %s", path, i, why);
    }
    return 0;
}

static int cfg_parse_server(cfg_t *cfg, const json_t *obj, cfg_error *err)
{
    static const char *const also[] = {"tls", "trusted_proxies", NULL};
    if (cfg_parse_fields(obj, "server", server_fields, NFIELDS(server_fields), also, cfg, err))
        return -1;
    const json_t *tls = json_object_get(obj, "tls");
    if (tls && cfg_parse_fields(tls, "server.tls", tls_fields, NFIELDS(tls_fields), NULL, cfg, err))
        return -1;
    const json_t *tp = json_object_get(obj, "trusted_proxies");
    return tp ? cfg_parse_netlist(tp, "server.trusted_proxies", &cfg->server.trusted_proxies, err)
              : 0;
}

static int cfg_parse_limits(cfg_t *cfg, const json_t *obj, cfg_error *err)
{
    static const char *const also[] = {"exempt_addresses", NULL};
    if (cfg_parse_fields(obj, "limits", limits_fields, NFIELDS(limits_fields), also, cfg, err))
        return -1;
    const json_t *ex = json_object_get(obj, "exempt_addresses");
    return ex ? cfg_parse_netlist(ex, "limits.exempt_addresses", &cfg->limits.exempt_addresses, err)
              : 0;
}

/* server.tls: a key needs its certificate and the other way round. Whether
 * the files are readable, match and are valid now is tls_check's (startup,
 * --check-config, reload). */
static int cfg_check_tls(const cfg_t *cfg, cfg_error *err)
{
    const struct cfg_tls *t = &cfg->server.tls;
    if (t->cert[0] && !t->key[0])
        return cfg_fail(err, "server.tls.key: required with server.tls.cert");
    if (t->key[0] && !t->cert[0])
        return cfg_fail(err, "server.tls.cert: required with server.tls.key");
    if (t->ca[0] && !t->cert[0])
        return cfg_fail(err, "server.tls.ca: needs server.tls.cert and server.tls.key");
    if (t->redirect_port && !t->cert[0])
        return cfg_fail(err, "server.tls.redirect_port: needs server.tls.cert and server.tls.key");
    if (t->redirect_port && t->redirect_port == cfg->server.port)
        return cfg_fail(err, "server.tls.redirect_port: %d is server.port", t->redirect_port);
    return 0;
}

static const cfg_field admin_fields[] = {
    {"enabled", CFG_BOOL, CFG_OFF(admin.enabled), 0, 0},
};

static int cfg_parse_admin(cfg_t *cfg, const json_t *obj, cfg_error *err)
{
    static const char *const also[] = {"allowed_addresses", NULL};
    if (cfg_parse_fields(obj, "admin", admin_fields, NFIELDS(admin_fields), also, cfg, err))
        return -1;
    const json_t *list = json_object_get(obj, "allowed_addresses");
    /* The file's list replaces the default one. */
    return list ? cfg_parse_netlist(list, "admin.allowed_addresses", &cfg->admin.allowed_addresses,
                                    err)
                : 0;
}

/* auth: the keys, then the key material itself (a file that cannot be
 * read, a key of the wrong kind): refused here, with the key's name, so a
 * bad key stops the start (exit 2), fails a reload and shows in
 * --check-config like any other bad value. */
static int cfg_parse_auth(cfg_t *cfg, const json_t *obj, cfg_error *err)
{
    static const char *const also[] = {"mode", NULL};
    if (cfg_parse_fields(obj, "auth", auth_fields, NFIELDS(auth_fields), also, cfg, err))
        return -1;
    const json_t *mode = json_object_get(obj, "mode");
    if (mode) {
        const char *m = json_string_value(mode);
        if (m && !strcmp(m, "none"))
            cfg->auth.mode = CFG_AUTH_NONE;
        else if (m && !strcmp(m, "token"))
            cfg->auth.mode = CFG_AUTH_TOKEN;
        else
            return cfg_fail(err, "auth.mode: must be \"none\" or \"token\"");
    }
    if (cfg->auth.mode != CFG_AUTH_TOKEN)
        return 0;
    auth *a = auth_create(&cfg->auth, err->msg, sizeof(err->msg));
    if (!a)
        return -1;
    auth_destroy(a);
    return 0;
}

static int cfg_check_access(const cfg_t *cfg, cfg_error *err)
{
    char why[200];
    if (gate_check_origins(cfg->server.access.allowed_origins, why, sizeof(why)))
        return cfg_fail(err, "server.allowed_origins: %s", why);
    if (gate_check_addresses(cfg->server.access.metrics_allowed_addresses, why, sizeof(why)))
        return cfg_fail(err, "server.metrics_allowed_addresses: %s", why);
    if (gate_check_addresses(cfg->server.access.health_allowed_addresses, why, sizeof(why)))
        return cfg_fail(err, "server.health_allowed_addresses: %s", why);
    return 0;
}

/* cluster: {"role": "standalone"|"ingest"|"edge", "redis": ["host:port", ...]}.
 * The redis list is ordered: its index is the shard (docs/cluster.md). */
static int cfg_parse_cluster(cfg_t *cfg, const json_t *v, cfg_error *err)
{
    if (!json_is_object(v))
        return cfg_fail(err, "cluster: must be an object");
    const char *key;
    json_t *x;
    json_object_foreach((json_t *)v, key, x) {
        if (!strcmp(key, "role")) {
            const char *r = json_string_value(x);
            if (r && !strcmp(r, "standalone"))
                cfg->cluster.role = CFG_CLUSTER_STANDALONE;
            else if (r && !strcmp(r, "ingest"))
                cfg->cluster.role = CFG_CLUSTER_INGEST;
            else if (r && !strcmp(r, "edge"))
                cfg->cluster.role = CFG_CLUSTER_EDGE;
            else
                return cfg_fail(err, "cluster.role: must be \"standalone\", \"ingest\" or \"edge\"");
        } else if (!strcmp(key, "redis")) {
            if (!json_is_array(x) || json_array_size(x) > CFG_CLUSTER_MAX_REDIS)
                return cfg_fail(err, "cluster.redis: must be a list of at most %d \"host:port\"",
                                CFG_CLUSTER_MAX_REDIS);
            size_t i;
            json_t *e;
            cfg->cluster.nredis = 0;
            json_array_foreach(x, i, e) {
                const char *s = json_string_value(e);
                const char *colon = s ? strrchr(s, ':') : NULL;
                char *end;
                long port = colon ? strtol(colon + 1, &end, 10) : 0;
                if (!s || !colon || colon == s || *end || port < 1 || port > 65535 ||
                    strlen(s) >= sizeof(cfg->cluster.redis[0]))
                    return cfg_fail(err, "cluster.redis[%zu]: must be \"host:port\"", i);
                strcpy(cfg->cluster.redis[cfg->cluster.nredis++], s);
            }
        } else {
            return cfg_fail(err, "cluster.%s: unknown key", key);
        }
    }
    if (cfg->cluster.role != CFG_CLUSTER_STANDALONE && cfg->cluster.nredis == 0)
        return cfg_fail(err, "cluster.redis: ingest and edge need at least one \"host:port\"");
    return 0;
}

static int cfg_apply_json(cfg_t *cfg, const json_t *root, cfg_error *err)
{
    if (!json_is_object(root))
        return cfg_fail(err, "(top level): must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)root, key, v) {
        int rc;
        if (!strcmp(key, "server"))
            rc = cfg_parse_server(cfg, v, err);
        else if (!strcmp(key, "normalizer"))
            rc = cfg_parse_normalizer(cfg, v, err);
        else if (!strcmp(key, "broadcast"))
            rc = cfg_parse_fields(v, key, broadcast_fields, NFIELDS(broadcast_fields), NULL, cfg,
                                  err);
        else if (!strcmp(key, "limits"))
            rc = cfg_parse_limits(cfg, v, err);
        else if (!strcmp(key, "log"))
            rc = cfg_parse_log(cfg, v, err);
        else if (!strcmp(key, "history"))
            rc = cfg_parse_fields(v, key, history_fields, NFIELDS(history_fields), NULL, cfg, err);
        else if (!strcmp(key, "socketio"))
            rc = cfg_parse_fields(v, key, socketio_fields, NFIELDS(socketio_fields), NULL, cfg, err);
        else if (!strcmp(key, "api"))
            rc = cfg_parse_fields(v, key, api_fields, NFIELDS(api_fields), NULL, cfg, err);
        else if (!strcmp(key, "admin"))
            rc = cfg_parse_admin(cfg, v, err);
        else if (!strcmp(key, "feeds"))
            rc = cfg_parse_feeds(cfg, v, err);
        else if (!strcmp(key, "auth"))
            rc = cfg_parse_auth(cfg, v, err);
        else if (!strcmp(key, "cluster"))
            rc = cfg_parse_cluster(cfg, v, err);
        else
            rc = cfg_fail(err, "%s: unknown key", key);
        if (rc)
            return -1;
    }
    if (strcmp(cfg->server.event_loop, "epoll") && strcmp(cfg->server.event_loop, "poll") &&
        strcmp(cfg->server.event_loop, "libuv"))
        return cfg_fail(err, "server.event_loop: must be \"epoll\", \"poll\" or \"libuv\"");
    if (cfg_check_access(cfg, err) || cfg_check_tls(cfg, err))
        return -1;
    return cfg_check_priority(cfg, err);
}

int cfg_history_path(const cfg_t *cfg, char *out, size_t cap)
{
    const char *dir;
    int n;
    if (cfg->history.path[0])
        n = snprintf(out, cap, "%s", cfg->history.path);
    else if ((dir = getenv("STATE_DIRECTORY")) && dir[0])
        n = snprintf(out, cap, "%s/history.db", dir);
    else if ((dir = getenv("XDG_STATE_HOME")) && dir[0])
        n = snprintf(out, cap, "%s/tickerd/history.db", dir);
    else if ((dir = getenv("HOME")) && dir[0])
        n = snprintf(out, cap, "%s/.local/state/tickerd/history.db", dir);
    else
        return -1;
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

int cfg_defaults(cfg_t *cfg)
{
    const char *why;
    memset(cfg, 0, sizeof(*cfg));
    strcpy(cfg->server.bind, "127.0.0.1");
    cfg->server.port = 8080;
    cfg->server.max_connections = 10000;
    strcpy(cfg->server.event_loop, "poll");
    strcpy(cfg->server.access.allowed_origins, "same-origin,localhost");
    cfg->auth.mode = CFG_AUTH_NONE;
    cfg->auth.leeway_s = 5;
    cfg->auth.reauth_before_s = 30;
    cfg->auth.auth_timeout_ms = 10000;
    cfg->log.level = LOG_INFO;
    cfg->log.format = LOG_FORMAT_TEXT;
    cfg->normalizer.flush_interval_ms = 10;
    cfg->normalizer.max_symbols = 10000;
    cfg->normalizer.stale_after_ms = 10000;
    cfg->normalizer.jump_band_pct = 5.0;
    cfg->broadcast.max_frame_bytes = 65536;
    cfg->broadcast.stall_timeout_ms = 30000;
    cfg->broadcast.ping_interval_s = 30;
    cfg->broadcast.resume_depth = 64;
    cfg->broadcast.backlog_ms = 1000;
    cfg->broadcast.permessage_deflate = 0; /* measured: costs more CPU than it saves on loopback (performance.md) */
    cfg->limits.max_subscriptions = 1000;
    cfg->limits.max_message_bytes = 4096;
    cfg->limits.max_messages_per_sec = 50;
    cfg->limits.max_errors = 20;
    /* Per-address defaults (docs/security.md#defaults): room for a NAT of
     * browsers, far below what one address could take of the fd table. */
    cfg->limits.max_connections_per_address = 256;
    cfg->limits.new_connections_per_sec = 20;
    cfg->limits.new_connections_burst = 100;
    cfg->limits.max_pending_heads = 4096;
    cfg->limits.max_pending_heads_per_address = 32;
    cfg->limits.header_timeout_ms = 10000;
    cfg->limits.max_header_bytes = 8192;
    cfg->limits.subscribe_timeout_ms = 60000;
    /* Loopback is the operator's own tools, benchmarks or a proxy on the same
     * host (list it in server.trusted_proxies to limit the clients behind it). */
    netlist_add(&cfg->limits.exempt_addresses, "127.0.0.0/8", &why);
    netlist_add(&cfg->limits.exempt_addresses, "::1", &why);
    cfg->socketio.ping_interval_ms = 25000;
    cfg->socketio.ping_timeout_ms = 20000;
    cfg->api.sse_heartbeat_s = 15;
    cfg->api.sse_retry_ms = 2000;
    cfg->api.poll_hold_s = 25;
    netlist_add(&cfg->admin.allowed_addresses, "127.0.0.1/8", &why);
    netlist_add(&cfg->admin.allowed_addresses, "::1", &why);
    cfg->history.enabled = 1;
    cfg->history.flush_interval_ms = 1000;
    cfg->history.queue_capacity = 65536;
    cfg->history.max_rows = 2000;
    cfg->history.retention_ticks_s = 24 * 3600;
    cfg->history.retention_1s_s = 7 * 24 * 3600;
    cfg->history.retention_1m_s = 90 * 24 * 3600;
    cfg->history.retention_1h_s = 10 * 365 * 24 * 3600;

    /* The embedded default feed: the simulator with its own defaults. */
    cfg_error err;
    json_t *sim = json_pack("[{s:s, s:s}]", "type", "sim", "name", "sim");
    int rc = sim ? cfg_parse_feeds(cfg, sim, &err) : -1;
    json_decref(sim);
    if (rc)
        cfg_free(cfg);
    return rc;
}

static int cfg_load_json(cfg_t *cfg, json_t *root, cfg_error *err)
{
    if (cfg_defaults(cfg)) {
        json_decref(root);
        return cfg_fail(err, "out of memory");
    }
    int rc = cfg_apply_json(cfg, root, err);
    json_decref(root);
    if (rc)
        cfg_free(cfg);
    return rc;
}

int cfg_load_file(cfg_t *cfg, const char *path, cfg_error *err)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        memset(cfg, 0, sizeof(*cfg));
        if (jerr.line < 0)
            return cfg_fail(err, "%s: cannot read: %s", path, jerr.text);
        return cfg_fail(err, "%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column,
                        jerr.text);
    }
    return cfg_load_json(cfg, root, err);
}

int cfg_load_string(cfg_t *cfg, const char *text, cfg_error *err)
{
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        memset(cfg, 0, sizeof(*cfg));
        return cfg_fail(err, "invalid JSON at %d:%d: %s", jerr.line, jerr.column, jerr.text);
    }
    return cfg_load_json(cfg, root, err);
}

/* ---- --check-config: every problem, not just the first ---- */

static int cfg_drop_feed(json_t *root, const char *index)
{
    json_t *arr = json_object_get(root, "feeds");
    size_t i = strtoul(index, NULL, 10);
    json_t *ph = json_pack("{s:s, s:s+}", "type", "sim", "name", "check-", index);
    if (!arr || i >= json_array_size(arr) || !ph) {
        json_decref(ph);
        return -1;
    }
    return json_array_set_new(arr, i, ph);
}

/* Removes the node an error message names ("feeds[1].rate: ...") from root so
 * the next pass can get past it. When the node itself is absent (a required key
 * is missing) its parent goes instead. Returns 0 when something was removed. */
static int cfg_drop_path(json_t *root, const char *msg)
{
    const char *colon = strstr(msg, ": ");
    if (!colon || colon == msg || msg[0] == '(' || colon - msg >= 256)
        return -1;
    char path[256];
    memcpy(path, msg, (size_t)(colon - msg));
    path[colon - msg] = '\0';
    /* Split into segments: object keys and [index]es. */
    char *seg[32];
    int isidx[32], n = 0;
    for (char *p = path; *p && n < 32;) {
        if (*p == '.') {
            *p++ = '\0';
            continue;
        }
        if (*p == '[') {
            *p++ = '\0';
            seg[n] = p;
            isidx[n++] = 1;
            char *e = strchr(p, ']');
            if (!e)
                return -1;
            *e = '\0';
            p = e + 1;
            continue;
        }
        seg[n] = p;
        isidx[n++] = 0;
        p += strcspn(p, ".["); /* the next round's '.' or '[' ends this key */
    }
    /* A feed whose type is wrong or missing says nothing more: it becomes a
     * placeholder (keeping the later feeds' indices as the operator wrote them). */
    int in_feed = n >= 2 && !isidx[0] && !strcmp(seg[0], "feeds") && isidx[1];
    if (in_feed && (n == 2 || (n == 3 && !strcmp(seg[2], "type"))))
        return cfg_drop_feed(root, seg[1]);
    for (; n > 0; n--) {
        if (in_feed && n == 3) {
            /* a feed's key: remove it, or, when missing (required), the feed */
            json_t *f = json_array_get(json_object_get(root, "feeds"), strtoul(seg[1], NULL, 10));
            if (f && !json_object_del(f, seg[2]))
                return 0;
            return cfg_drop_feed(root, seg[1]);
        }
        json_t *parent = root;
        for (int i = 0; parent && i < n - 1; i++)
            parent = isidx[i] ? json_array_get(parent, strtoul(seg[i], NULL, 10))
                              : json_object_get(parent, seg[i]);
        if (!parent)
            continue;
        if (isidx[n - 1] ? !json_array_remove(parent, strtoul(seg[n - 1], NULL, 10))
                         : !json_object_del(parent, seg[n - 1]))
            return 0;
    }
    return -1;
}

int cfg_check_file(const char *path, void (*report)(void *arg, const char *msg), void *arg)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        char msg[600];
        if (jerr.line < 0)
            snprintf(msg, sizeof(msg), "%s: cannot read: %s", path, jerr.text);
        else
            snprintf(msg, sizeof(msg), "%s:%d:%d: invalid JSON: %s", path, jerr.line,
                     jerr.column, jerr.text);
        report(arg, msg);
        return 1;
    }
    int problems = 0;
    char last[512] = "";
    /* Each pass finds the first problem, reports it and cuts it out; bounded
     * so that an error that cannot be cut out ends the walk. */
    for (int pass = 0; pass < 64; pass++) {
        cfg_t cfg;
        cfg_error err;
        json_incref(root);
        if (!cfg_load_json(&cfg, root, &err)) {
            cfg_free(&cfg);
            break;
        }
        if (strcmp(err.msg, last)) { /* a missing required key can recur once */
            report(arg, err.msg);
            problems++;
        }
        snprintf(last, sizeof(last), "%s", err.msg);
        if (cfg_drop_path(root, err.msg))
            break;
    }
    json_decref(root);
    return problems;
}
