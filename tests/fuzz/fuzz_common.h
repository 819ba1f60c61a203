/* fuzz_common.h — what the venue fuzz targets share: the emit callback that
 * checks every update a parser hands out. */
#ifndef TICKERD_FUZZ_COMMON_H
#define TICKERD_FUZZ_COMMON_H
#include <stdlib.h>
#include <string.h>

#include "tickerd/feed.h"

#define FUZZ_SOURCE 7

static inline void fuzz_update(void *arg, const feed_update *u)
{
    size_t *n = arg;
    /* strlen reads the whole symbol: ASan reports one that dangles */
    if (!u->symbol || !strlen(u->symbol) || u->source != FUZZ_SOURCE)
        abort();
    (*n)++;
}
#endif
