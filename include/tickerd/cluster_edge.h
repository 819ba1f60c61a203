#ifndef TICKERD_CLUSTER_EDGE_H
#define TICKERD_CLUSTER_EDGE_H
/* cluster_edge — the edge role's reader (docs/cluster.md): an edge runs no
 * feeds; its broadcaster is fed from Redis with the seq Redis assigned, so
 * every edge shows the same (symbol, seq, value).
 *
 * Per shard a reader thread holds two hiredis connections: one in subscribe
 * mode (the channel of every symbol some client of this edge holds — rooms
 * are reference-counted through bcast's room hook — and the channel
 * announcing new symbols), one for commands (GET epoch, SMEMBERS, XRANGE).
 * It polls the subscriber's socket together with an eventfd carrying the
 * loop's subscribe/unsubscribe wishes, fills seq gaps from the stream, and
 * hands values to the loop through a bounded per-symbol mailbox (at most
 * CLUSTER_EDGE_QUEUE_MAX values per symbol, the oldest dropped and counted
 * when full) woken with lws_cancel_service(). hiredis' synchronous API on a
 * thread of our own keeps its limits away from the loop: its blocking name
 * resolution and connect, no reconnect of its own (we reconnect with
 * backoff, re-subscribe and re-sync from the streams), and no async
 * unsubscribe bookkeeping (whose assertions 0.14 is known for).
 *
 * Loop side: cluster_edge_deliver (on every EVENT_WAIT_CANCELLED) publishes
 * what arrived through norm_apply_external; cluster_edge_tick (housekeeping)
 * marks values stale while their shard is away or silent. */
#include <stdint.h>

#include "tickerd/bcast.h"
#include "tickerd/norm.h"

struct lws_context;
struct sbuf;

typedef struct cluster_edge cluster_edge;

typedef struct cluster_edge_opts {
    const char (*redis)[128]; /* "host:port" per shard */
    int nshards;
    uint32_t max_symbols;
    uint32_t load_depth;   /* values fetched from a stream when a room opens (resume_depth) */
    int stale_after_ms;    /* a symbol silent this long (+1 s) is marked stale */
    struct lws_context *ctx;
} cluster_edge_opts;

#define CLUSTER_EDGE_QUEUE_MAX (BCAST_RESUME_DEPTH_MAX + 2)

typedef struct cluster_edge_shard_stats {
    int state;             /* CLUSTER_EDGE_* */
    char epoch[17];        /* the shard's epoch, "" until read */
    char error[128];       /* the last error, "" if none */
    uint64_t received;     /* values read from the channels */
    uint64_t filled;       /* values read from the streams (loads, gaps, re-syncs) */
    uint64_t overwritten;  /* values dropped from a full per-symbol mailbox */
    uint64_t connects;     /* successful (re)connects */
    uint64_t errors;       /* failed connects, commands, dropped connections */
    uint64_t epochs;       /* epoch changes seen (Redis restarted empty) */
} cluster_edge_shard_stats;

enum { CLUSTER_EDGE_DOWN = 0, CLUSTER_EDGE_NO_EPOCH, CLUSTER_EDGE_UP };
const char *cluster_edge_state_name(int state);

typedef struct cluster_edge_stats {
    uint64_t published;   /* values published into the broadcaster */
    uint64_t duplicates;  /* values already held (a load overlapping the channel) */
    uint64_t gaps;        /* seq jumps no stream could fill (seen as a gap by clients) */
    uint64_t resets;      /* symbols reset for a new epoch */
    uint64_t stale_marks; /* values re-published as stale (shard away or silent) */
    uint32_t stale;       /* symbols marked stale by this edge (gauge) */
    uint32_t channels;    /* symbols subscribed (gauge) */
} cluster_edge_stats;

/* Hooks itself into b (bcast_set_room_hook). NULL with err set. */
cluster_edge *cluster_edge_create(const cluster_edge_opts *o, norm *n, bcast *b, char *err,
                                  size_t errlen);
int cluster_edge_start(cluster_edge *e);
void cluster_edge_destroy(cluster_edge *e);
void cluster_edge_deliver(cluster_edge *e);
void cluster_edge_tick(cluster_edge *e, int64_t now_us);

int cluster_edge_shards(const cluster_edge *e);
const char *cluster_edge_address(const cluster_edge *e, int shard);
void cluster_edge_get_shard_stats(cluster_edge *e, int shard, cluster_edge_shard_stats *out);
const cluster_edge_stats *cluster_edge_get_stats(const cluster_edge *e);

#endif
