#ifndef TICKERD_CLUSTER_INGEST_H
#define TICKERD_CLUSTER_INGEST_H
/* cluster_ingest — the ingest role's writer (docs/cluster.md): every value
 * the normalizer publishes also goes to its symbol's Redis shard, where one
 * Lua script numbers it (INCR: the cluster's seq, whatever this process'
 * normalizer counted), appends it to the symbol's capped stream and publishes
 * it on the symbol's channel.
 *
 * Threads: cluster_ingest_put runs on the lws loop and only copies the value
 * into a per-shard table holding the latest pending value per symbol (a newer
 * one replaces it, counted as overwritten), then signals the shard's writer
 * thread, which pipelines the scripts and reconnects with backoff. While a
 * shard is away its table keeps exactly one value per symbol, written when
 * it returns. The loop never waits on Redis. */
#include <stddef.h>
#include <stdint.h>

#include "tickerd/norm.h"

struct sbuf;

typedef struct cluster_ingest cluster_ingest;

typedef struct cluster_shard_stats {
    uint64_t published;   /* values Redis numbered */
    uint64_t duplicates;  /* values Redis already had (another ingest wrote them first) */
    uint64_t overwritten; /* pending values replaced by a newer one before being written */
    uint64_t errors;      /* failed connects and commands */
    uint64_t connects;    /* successful (re)connects */
    uint32_t pending;     /* values waiting to be written (gauge) */
    int connected;
    char epoch[17];     /* the cluster epoch as read at the last connect */
    char error[128];    /* the last error, "" if none */
} cluster_shard_stats;

/* redis[0..n): "host:port" per shard; depth: the streams' MAXLEN (about);
 * max_symbols bounds the tables. NULL with err set. */
cluster_ingest *cluster_ingest_create(const char (*redis)[128], int n, uint32_t depth,
                                      uint32_t max_symbols, char *err, size_t errlen);
/* Start the writer threads. 0 or -1. */
int cluster_ingest_start(cluster_ingest *ci);
/* Stop and join the threads; values still pending are dropped (counted). */
void cluster_ingest_destroy(cluster_ingest *ci);

/* From the loop: symbol id's new value q, already encoded as enc[0..len)
 * (bcast_encode_json, with this process' seq: Redis puts its own there). */
void cluster_ingest_put(cluster_ingest *ci, uint32_t id, const norm_quote *q, const char *enc,
                        size_t len);

int cluster_ingest_shards(const cluster_ingest *ci);
void cluster_ingest_get_stats(cluster_ingest *ci, int shard, cluster_shard_stats *out);
/* The shard's "host:port". */
const char *cluster_ingest_address(const cluster_ingest *ci, int shard);

#endif
