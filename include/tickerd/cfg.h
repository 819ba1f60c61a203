/*
 * cfg.h — the configuration: defaults, the JSON file (jansson), validation.
 *
 * Validation is table-driven: each section lists its keys with type and range,
 * and one routine walks a JSON object against such a table, rejecting unknown
 * keys, wrong types and out-of-range values with an error naming the key's full
 * path. Feed adapters describe their own keys with the same tables (feed.h).
 */
#ifndef TICKERD_CFG_H
#define TICKERD_CFG_H

#include "tickerd/netlist.h"
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct feed_type;

/* cluster.role: standalone runs feeds and serves; ingest also writes every value
 * to Redis; edge runs no feeds and serves what Redis carries. */
enum { CFG_CLUSTER_STANDALONE = 0, CFG_CLUSTER_INGEST = 1, CFG_CLUSTER_EDGE = 2 };
#define CFG_CLUSTER_MAX_REDIS 16

typedef struct cfg_error {
    char msg[512];
} cfg_error;

typedef enum { CFG_INT, CFG_U64, CFG_DOUBLE, CFG_BOOL, CFG_STRING } cfg_kind;

typedef struct cfg_field {
    const char *key;
    cfg_kind kind;
    size_t offset;   /* into the struct being filled */
    double min, max; /* CFG_INT/U64/DOUBLE range; CFG_STRING: max = buffer size */
} cfg_field;

/* Fill `base` from `obj` by `fields`. Keys not in `fields` are an error unless
 * listed in `also_allowed` (NULL-terminated, may be NULL). `path` prefixes key
 * names in errors ("server" → "server.port"). Returns 0 or -1 with err set. */
int cfg_parse_fields(const json_t *obj, const char *path, const cfg_field *fields, size_t nfields,
                     const char *const *also_allowed, void *base, cfg_error *err);
int cfg_fail(cfg_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct feed_cfg {
    char name[32];
    const struct feed_type *type;
    void *opts; /* owned; parsed and freed by type */
} feed_cfg;

/* normalizer.priority: one symbol's sources (feed names), most preferred first. */
typedef struct cfg_priority {
    char symbol[32];     /* canonical */
    char (*feeds)[32];   /* owned */
    size_t nfeeds;
} cfg_priority;

/* auth.*: who may read what (include/tickerd/auth.h). */
typedef struct cfg_auth {
    int mode;               /* CFG_AUTH_NONE or CFG_AUTH_TOKEN */
    char algorithm[8];      /* "" = from the key; else HS256, RS256 or ES256 */
    char secret[512];       /* HS256 key, or */
    char secret_file[512];  /* a file holding it, or */
    char public_key_file[512]; /* an RSA / EC P-256 public key (PEM, or a certificate) */
    char issuer[256];       /* "" = any; else the "iss" a token must carry */
    char audience[256];     /* "" = any; else a value the token's "aud" must hold */
    int leeway_s;           /* clock skew allowed on exp / nbf */
    int reauth_before_s;    /* the "reauth" message goes this long before expiry */
    int auth_timeout_ms;    /* a /ws client without a token must send its auth op within this */
} cfg_auth;
enum { CFG_AUTH_NONE = 0, CFG_AUTH_TOKEN = 1 };

/* server.* keys the gate applies (src/transports/gate.c); reloadable. */
typedef struct cfg_access {
    char allowed_origins[1024];           /* browser Origins allowed to stream */
    char metrics_allowed_addresses[512];  /* "" = any peer may read /metrics */
    char health_allowed_addresses[512];   /* "" = any peer may read /healthz */
} cfg_access;

typedef struct cfg_t {
    struct {
        char bind[64];
        int port;
        char web_root[512];
        int max_connections;
        char event_loop[8]; /* "epoll" / "poll": lws' own loop, readiness from epoll sets or poll()
                             * (svcwait.h); "libuv": lws' libuv loop, when its plugin loads */
        cfg_access access;
        struct cfg_tls {
            char cert[512]; /* PEM certificate (chain); "" = plain HTTP */
            char key[512];  /* PEM private key */
            char ca[512];   /* PEM CA bundle: client certificates required when set */
            int redirect_port; /* 0 = none; else a plain listener answering 301 to https */
        } tls;
        netlist trusted_proxies; /* peers whose X-Forwarded-For is believed */
    } server;
    cfg_auth auth;
    struct {
        int level; /* log_level */
        int format; /* log_format: text or json */
    } log;
    struct {
        int flush_interval_ms;
        int max_symbols;
        int stale_after_ms;
        double jump_band_pct;
        cfg_priority *priority; /* owned; per-symbol overrides of the feeds[] order */
        size_t npriority;
    } normalizer;
    struct {
        int max_frame_bytes;
        int stall_timeout_ms;
        int ping_interval_s;
        int resume_depth; /* values kept per symbol for resuming clients; 0 = off */
        int backlog_ms;   /* a client this little behind gets every value, not the latest */
        int permessage_deflate; /* accept the WebSocket compression extension */
    } broadcast;
    struct {
        int max_subscriptions;
        int max_message_bytes;
        int max_messages_per_sec;
        int max_errors;
        /* The listener's per-address accounting (guard.h); 0 turns one off. */
        int max_connections_per_address;   /* open at once, per IPv4 address or IPv6 /64 */
        int new_connections_per_sec;       /* per address: token bucket rate */
        int new_connections_burst;         /* per address: token bucket size */
        int max_pending_heads;             /* unfinished handshakes/heads, server-wide */
        int max_pending_heads_per_address; /* the same, per address */
        int header_timeout_ms;             /* the first request head (and TLS handshake) */
        int max_header_bytes;              /* request line + header fields (431 above) */
        int subscribe_timeout_ms;          /* /ws, Socket.IO: close a session idle this long */
        netlist exempt_addresses;          /* per-address limits do not apply to these */
    } limits;
    struct {
        int enabled;
        char path[512]; /* "" = the state directory's history.db (see cfg_history_path) */
        int flush_interval_ms;
        int queue_capacity;  /* ticks waiting for the writer */
        int max_db_mb;       /* 0 = no cap */
        int max_rows;        /* per history query (subscribe or /api/history page) */
        int retention_ticks_s, retention_1s_s, retention_1m_s, retention_1h_s; /* 0 = forever */
    } history;
    struct {
        int ping_interval_ms; /* Engine.IO heartbeat at /socket.io/ (the reference's 25000 / 20000) */
        int ping_timeout_ms;
    } socketio;
    struct {
        char cors_origins[512]; /* "" none, "*" any, else a comma-separated list of origins */
        int sse_heartbeat_s; /* /sse: a comment line after this much silence */
        int sse_retry_ms;    /* /sse: the "retry:" EventSource waits before reconnecting */
        int poll_hold_s;     /* /api/poll: longest hold of a request with nothing new */
    } api;
    struct {
        int enabled;               /* /admin and /api/admin exist (off by default) */
        netlist allowed_addresses; /* peers that may read them (default loopback) */
    } admin;
    struct {
        int role;            /* CFG_CLUSTER_STANDALONE | _INGEST | _EDGE (docs/cluster.md) */
        char redis[CFG_CLUSTER_MAX_REDIS][128]; /* "host:port" per shard */
        int nredis;
    } cluster;
    feed_cfg *feeds;
    size_t nfeeds;
} cfg_t;

/* Where the history file goes when history.path is "": $STATE_DIRECTORY
 * (systemd's StateDirectory=), else $XDG_STATE_HOME/tickerd, else
 * ~/.local/state/tickerd, each + "/history.db". Writes it to out; -1 when
 * none of those is set. */
int cfg_history_path(const cfg_t *cfg, char *out, size_t cap);

/* Built-in defaults, including the default `sim` feed. Returns 0 or -1 (OOM). */
int cfg_defaults(cfg_t *cfg);
/* Defaults overlaid with the file at path. On error *cfg is left freed. */
int cfg_load_file(cfg_t *cfg, const char *path, cfg_error *err);
/* Same, from JSON text (tests). */
int cfg_load_string(cfg_t *cfg, const char *text, cfg_error *err);
void cfg_free(cfg_t *cfg);
/* --check-config: validates the file as cfg_load_file does but reports every
 * problem (each message starts with its key path), not only the first. Returns
 * the number of problems found. */
int cfg_check_file(const char *path, void (*report)(void *arg, const char *msg), void *arg);

#endif
