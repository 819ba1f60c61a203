#ifndef TICKERD_CLUSTER_H
#define TICKERD_CLUSTER_H
/* cluster — Redis scale-out (issue 12, docs/cluster.md): what the ingest
 * writer (cluster_ingest.h) and the edge reader (cluster_edge.h) share — the
 * role names, the symbol → shard mapping every node must agree on, the Redis
 * key names, connecting with bounded waits, the reconnect backoff, and the
 * parser of the payload (the native update object, docs/protocol.md). */
#include <stddef.h>
#include <stdint.h>

#include "tickerd/norm.h"

struct redisContext;

/* "standalone", "ingest" or "edge" for a CFG_CLUSTER_* role ("?" otherwise). */
const char *cluster_role_name(int role);

/* FNV-1a (32-bit) of the symbol name: stable across processes, builds and
 * hosts, so every node sends a symbol to the same Redis. */
uint32_t cluster_hash(const char *symbol);

/* The shard (index into cluster.redis) of a symbol; 0 when nshards <= 1. */
int cluster_shard_of(const char *symbol, int nshards);

/* Redis keys (docs/cluster.md#redis-keys). */
#define CLUSTER_KEY_EPOCH "tickerd:epoch"
#define CLUSTER_KEY_SYMBOLS "tickerd:symbols" /* a set, and the channel announcing new members */
#define CLUSTER_KEY_SEQ "tickerd:seq:"
#define CLUSTER_KEY_STREAM "tickerd:stream:"
#define CLUSTER_KEY_LAST "tickerd:last:"
#define CLUSTER_KEY_CHANNEL "tickerd:ch:"

/* Connect to "host:port" waiting at most timeout_ms for the connection and
 * then for each reply (name resolution is hiredis' blocking getaddrinfo:
 * callers are threads of their own, never the lws loop). NULL with err set. */
struct redisContext *cluster_connect(const char *hostport, int timeout_ms, char *err, size_t errlen);

/* The wait before reconnect attempt n (0, 1, ...): 100 ms doubling up to
 * 5 s, with ±25 % jitter so edges do not reconnect in step. */
int cluster_backoff_ms(unsigned attempt);

/* Parse one payload (bcast_encode_json's object) into q; q->source points
 * into src (srccap bytes). q->enc is left NULL. 0, or -1 when it is not one. */
int cluster_parse_update(const char *p, size_t len, norm_quote *q, char *src, size_t srccap);

/* The seq field of a payload; 0 when there is none. */
uint64_t cluster_payload_seq(const char *p, size_t len);

/* A random 16-hex-digit epoch (BCAST_EPOCH_LEN + 1 bytes). */
void cluster_new_epoch(char out[17]);

#endif
