#ifndef TICKERD_CLUSTER_OPS_H
#define TICKERD_CLUSTER_OPS_H
/* cluster_ops — the cluster's part of /metrics (tickerd_cluster_*) and
 * /healthz ("cluster"), for any role (docs/cluster.md#metrics-and-health). */
#include <jansson.h>

#include "tickerd/cluster_edge.h"
#include "tickerd/cluster_ingest.h"

struct sbuf;

typedef struct cluster_view {
    int role; /* CFG_CLUSTER_* */
    cluster_ingest *ingest;
    cluster_edge *edge;
} cluster_view;

void cluster_render_metrics(const cluster_view *v, struct sbuf *o);
/* The "cluster" object of /healthz. *live: an edge is live while any shard
 * is up (it has nothing else to serve from); left as is for other roles. */
json_t *cluster_health_json(const cluster_view *v, int *live);

#endif
