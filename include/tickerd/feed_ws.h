/*
 * feed_ws.h — the WebSocket subscribing adapter (feeds/wsfeed.c): lws client
 * connections to venue streams, on the service thread. See docs/feeds.md.
 */
#ifndef TICKERD_FEED_WS_H
#define TICKERD_FEED_WS_H

#include <libwebsockets.h>

#include "tickerd/feed.h"

extern const feed_type feed_ws_type;
/* The lws protocol its client connections use; the app lists it on its
 * vhost so that connections can bind to it. */
const struct lws_protocols *feed_ws_protocol(void);

#endif
