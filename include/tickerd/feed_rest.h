/*
 * feed_rest.h — the REST polling adapter (feeds/rest.c): libcurl multi in a
 * thread of its own, venue presets from venue.h, handoff through a
 * feed_mailbox. See docs/feeds.md for its options.
 */
#ifndef TICKERD_FEED_REST_H
#define TICKERD_FEED_REST_H

#include "tickerd/feed.h"

extern const feed_type feed_rest_type;

#endif
