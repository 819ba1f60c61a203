/* Cluster (issue 12): the symbol -> shard mapping is the documented FNV-1a, so
 * every ingest and edge agrees on it, and the cluster config is validated with
 * errors naming the key. */
#include <string.h>

#include "cfg_errors.h"
#include "check.h"
#include "tickerd/cfg.h"
#include "tickerd/cluster.h"

static void hash_is_fnv1a(void)
{
    /* The FNV-1a 32-bit reference vectors: a different hash would move symbols
     * between shards and split a running cluster. */
    CHECK(cluster_hash("") == 2166136261u);
    CHECK(cluster_hash("a") == 0xe40c292cu);
    CHECK(cluster_hash("foobar") == 0xbf9cf968u);
}

static void shard_is_in_range_and_stable(void)
{
    const char *syms[] = {"BTC-USD", "ETH-USD", "SOL-USD", "DOGE-USD", "XRP-USD", "ADA-USD"};
    int seen[3] = {0};
    for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
        int s = cluster_shard_of(syms[i], 3);
        CHECK(s >= 0 && s < 3);
        CHECK(s == (int)(cluster_hash(syms[i]) % 3u));
        CHECK(cluster_shard_of(syms[i], 3) == s);
        if (s >= 0 && s < 3)
            seen[s] = 1;
        CHECK(cluster_shard_of(syms[i], 1) == 0);
        CHECK(cluster_shard_of(syms[i], 0) == 0);
    }
    CHECK(seen[0] + seen[1] + seen[2] >= 2); /* six symbols do not all land on one shard */
}

static void config_parses(void)
{
    cfg_t c;
    cfg_error err = {{0}};
    CHECK(cfg_load_string(&c, "{}", &err) == 0);
    CHECK(c.cluster.role == CFG_CLUSTER_STANDALONE);
    CHECK(c.cluster.nredis == 0);
    cfg_free(&c);
    CHECK(cfg_load_string(&c,
                          "{\"cluster\":{\"role\":\"edge\","
                          "\"redis\":[\"127.0.0.1:6379\",\"redis-b:6380\"]}}",
                          &err) == 0);
    CHECK(c.cluster.role == CFG_CLUSTER_EDGE);
    CHECK(c.cluster.nredis == 2);
    CHECK(!strcmp(c.cluster.redis[1], "redis-b:6380"));
    CHECK(!strcmp(cluster_role_name(c.cluster.role), "edge"));
    cfg_free(&c);
}

static void bad_cluster_config_names_the_key(void)
{
    CHECK(error_names("{\"cluster\":{\"role\":\"master\"}}", "cluster.role"));
    CHECK(error_names("{\"cluster\":{\"role\":1}}", "cluster.role"));
    CHECK(error_names("{\"cluster\":{\"role\":\"ingest\"}}", "cluster.redis"));
    CHECK(error_names("{\"cluster\":{\"role\":\"edge\",\"redis\":\"h:1\"}}", "cluster.redis"));
    CHECK(error_names("{\"cluster\":{\"redis\":[\"nohost\"]}}", "cluster.redis[0]"));
    CHECK(error_names("{\"cluster\":{\"redis\":[\"h:1\",\":6379\"]}}", "cluster.redis[1]"));
    CHECK(error_names("{\"cluster\":{\"redis\":[\"h:0\"]}}", "cluster.redis[0]"));
    CHECK(error_names("{\"cluster\":{\"redis\":[\"h:70000\"]}}", "cluster.redis[0]"));
    CHECK(error_names("{\"cluster\":{\"redis\":[\"h:12x\"]}}", "cluster.redis[0]"));
    CHECK(error_names("{\"cluster\":{\"shards\":2}}", "cluster.shards"));
    CHECK(error_names("{\"cluster\":[]}", "cluster"));
}

int main(void)
{
    RUN(hash_is_fnv1a);
    RUN(shard_is_in_range_and_stable);
    RUN(config_parses);
    RUN(bad_cluster_config_names_the_key);
    return check_done();
}
