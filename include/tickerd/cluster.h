#ifndef TICKERD_CLUSTER_H
#define TICKERD_CLUSTER_H
/* cluster — Redis scale-out (issue 12, docs/cluster.md). First slice: the
 * role names and the symbol → shard mapping every ingest and edge must agree
 * on. The ingest writer and edge reader threads are not built yet. */
#include <stddef.h>
#include <stdint.h>

/* "standalone", "ingest" or "edge" for a CFG_CLUSTER_* role ("?" otherwise). */
const char *cluster_role_name(int role);

/* FNV-1a (32-bit) of the symbol name: stable across processes, builds and
 * hosts, so every node sends a symbol to the same Redis. */
uint32_t cluster_hash(const char *symbol);

/* The shard (index into cluster.redis) of a symbol; 0 when nshards <= 1. */
int cluster_shard_of(const char *symbol, int nshards);

#endif
