/* got.h — the unit tests' collector of emitted feed updates: the parsers'
 * emit callback copies each update (and its symbol, which is only valid
 * during the call) into a fixed array. */
#ifndef TICKERD_TEST_GOT_H
#define TICKERD_TEST_GOT_H
#include <stdio.h>

#include "tickerd/feed.h"

#define GOT_MAX 16

typedef struct got {
    int n; /* updates emitted, also those beyond GOT_MAX (not kept) */
    feed_update u[GOT_MAX];
    char sym[GOT_MAX][64];
} got;

static inline void got_update(void *arg, const feed_update *u)
{
    got *g = arg;
    if (g->n < GOT_MAX) {
        g->u[g->n] = *u;
        snprintf(g->sym[g->n], sizeof(g->sym[0]), "%s", u->symbol);
        g->u[g->n].symbol = g->sym[g->n];
    }
    g->n++;
}
#endif
