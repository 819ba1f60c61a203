/* cluster_ops.c — see cluster_ops.h. */
#include "tickerd/cluster_ops.h"

#include "tickerd/cfg.h"
#include "tickerd/cluster.h"
#include "tickerd/util.h"

/* One per-shard series: name{shard="host:port"} v for every shard. */
#define PER_SHARD(o, name, type, help, n, addr_of, value_of)                                      \
    do {                                                                                           \
        tk_metric_head(o, name, type, help);                                                                 \
        for (int i_ = 0; i_ < (n); i_++)                                                           \
            sbuf_printf(o, "%s{shard=\"%s\"} %llu\n", name, addr_of(i_),                           \
                        (unsigned long long)(value_of));                                           \
    } while (0)

void cluster_render_metrics(const cluster_view *v, struct sbuf *o)
{
    tk_metric_head(o, "tickerd_cluster_role", "gauge", "This node's cluster.role (the label; value 1)");
    sbuf_printf(o, "tickerd_cluster_role{role=\"%s\"} 1\n", cluster_role_name(v->role));
    if (v->ingest) {
        int n = cluster_ingest_shards(v->ingest);
        cluster_shard_stats st[CFG_CLUSTER_MAX_REDIS];
        for (int i = 0; i < n; i++)
            cluster_ingest_get_stats(v->ingest, i, &st[i]);
#define ADDR(i) cluster_ingest_address(v->ingest, i)
        PER_SHARD(o, "tickerd_cluster_connected", "gauge", "1 while the shard's Redis is connected",
                  n, ADDR, st[i_].connected);
        PER_SHARD(o, "tickerd_cluster_published_total", "counter",
                  "Values written to Redis and numbered by it", n, ADDR, st[i_].published);
        PER_SHARD(o, "tickerd_cluster_duplicates_total", "counter",
                  "Values Redis already had from another ingest (not numbered again)", n, ADDR,
                  st[i_].duplicates);
        PER_SHARD(o, "tickerd_cluster_overwritten_total", "counter",
                  "Pending values replaced by a newer one before being written (Redis slow or away)",
                  n, ADDR, st[i_].overwritten);
        PER_SHARD(o, "tickerd_cluster_pending", "gauge", "Values waiting to be written", n, ADDR,
                  st[i_].pending);
        PER_SHARD(o, "tickerd_cluster_errors_total", "counter", "Failed connects and commands", n,
                  ADDR, st[i_].errors);
        PER_SHARD(o, "tickerd_cluster_connects_total", "counter", "Successful (re)connects", n,
                  ADDR, st[i_].connects);
#undef ADDR
    }
    if (v->edge) {
        int n = cluster_edge_shards(v->edge);
        cluster_edge_shard_stats st[CFG_CLUSTER_MAX_REDIS];
        for (int i = 0; i < n; i++)
            cluster_edge_get_shard_stats(v->edge, i, &st[i]);
        const cluster_edge_stats *es = cluster_edge_get_stats(v->edge);
#define ADDR(i) cluster_edge_address(v->edge, i)
        PER_SHARD(o, "tickerd_cluster_connected", "gauge",
                  "1 while the shard's Redis is connected and has an epoch", n, ADDR,
                  st[i_].state == CLUSTER_EDGE_UP);
        PER_SHARD(o, "tickerd_cluster_received_total", "counter", "Values read from the channels",
                  n, ADDR, st[i_].received);
        PER_SHARD(o, "tickerd_cluster_filled_total", "counter",
                  "Values read from the streams (loads, gap fills, re-syncs)", n, ADDR,
                  st[i_].filled);
        PER_SHARD(o, "tickerd_cluster_overwritten_total", "counter",
                  "Values dropped from a full per-symbol mailbox (the loop fell behind)", n, ADDR,
                  st[i_].overwritten);
        PER_SHARD(o, "tickerd_cluster_errors_total", "counter",
                  "Failed connects and commands, dropped connections", n, ADDR, st[i_].errors);
        PER_SHARD(o, "tickerd_cluster_connects_total", "counter", "Successful (re)connects", n,
                  ADDR, st[i_].connects);
        PER_SHARD(o, "tickerd_cluster_epoch_changes_total", "counter",
                  "New epochs seen (Redis restarted empty or flushed)", n, ADDR, st[i_].epochs);
#undef ADDR
        tk_metric(o, "tickerd_cluster_values_published_total", "counter",
              "Values published into this edge's broadcaster", es->published);
        tk_metric(o, "tickerd_cluster_duplicates_total", "counter",
              "Values already held (a load overlapping the channel)", es->duplicates);
        tk_metric(o, "tickerd_cluster_gaps_total", "counter",
              "Seq jumps no stream could fill (clients see the gap, as after conflation)", es->gaps);
        tk_metric(o, "tickerd_cluster_resets_total", "counter",
              "Symbols reset for a new epoch (subscribers get a reset snapshot)", es->resets);
        tk_metric(o, "tickerd_cluster_stale_marks_total", "counter",
              "Values re-sent marked stale (shard away, or no value for stale_after_ms + 1 s)",
              es->stale_marks);
        tk_metric(o, "tickerd_cluster_stale_symbols", "gauge", "Symbols this edge marks stale",
              es->stale);
        tk_metric(o, "tickerd_cluster_channels", "gauge", "Symbol channels subscribed", es->channels);
    }
}

json_t *cluster_health_json(const cluster_view *v, int *live)
{
    json_t *shards = json_array();
    json_t *root = json_pack("{s:s, s:o}", "role", cluster_role_name(v->role), "shards", shards);
    if (!root)
        return NULL;
    if (v->ingest) {
        for (int i = 0; i < cluster_ingest_shards(v->ingest); i++) {
            cluster_shard_stats st;
            cluster_ingest_get_stats(v->ingest, i, &st);
            json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I}", "redis",
                                  cluster_ingest_address(v->ingest, i), "state",
                                  st.connected ? "up" : "down", "epoch", st.epoch, "pending",
                                  (json_int_t)st.pending, "published", (json_int_t)st.published);
            if (j && st.error[0])
                json_object_set_new(j, "error", json_string(st.error));
            json_array_append_new(shards, j);
        }
    }
    if (v->edge) {
        int any = 0;
        for (int i = 0; i < cluster_edge_shards(v->edge); i++) {
            cluster_edge_shard_stats st;
            cluster_edge_get_shard_stats(v->edge, i, &st);
            any |= st.state == CLUSTER_EDGE_UP;
            json_t *j = json_pack("{s:s, s:s, s:s, s:I}", "redis", cluster_edge_address(v->edge, i),
                                  "state", cluster_edge_state_name(st.state), "epoch", st.epoch,
                                  "received", (json_int_t)st.received);
            if (j && st.error[0])
                json_object_set_new(j, "error", json_string(st.error));
            json_array_append_new(shards, j);
        }
        json_object_set_new(root, "stale_symbols",
                            json_integer(cluster_edge_get_stats(v->edge)->stale));
        *live = any;
    }
    return root;
}
