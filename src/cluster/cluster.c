#include "tickerd/cluster.h"

#include "tickerd/cfg.h"

const char *cluster_role_name(int role)
{
    switch (role) {
    case CFG_CLUSTER_STANDALONE: return "standalone";
    case CFG_CLUSTER_INGEST: return "ingest";
    case CFG_CLUSTER_EDGE: return "edge";
    default: return "?";
    }
}

uint32_t cluster_hash(const char *symbol)
{
    /* FNV-1a: a fixed, documented hash (not the symtab's) so that a symbol's
     * shard never changes with an internal hash-table tweak. */
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)symbol; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return h;
}

int cluster_shard_of(const char *symbol, int nshards)
{
    if (nshards <= 1)
        return 0;
    return (int)(cluster_hash(symbol) % (uint32_t)nshards);
}
