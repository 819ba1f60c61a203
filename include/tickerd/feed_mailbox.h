/*
 * feed_mailbox.h — the bounded handoff from an adapter's own thread to the
 * lws service thread, with latest-value semantics.
 *
 * One slot per symbol the adapter produces (fixed at creation). put() from the
 * producer thread overwrites the slot's pending value — a newer price replaces
 * an older one that was never delivered, and that is counted — so memory is
 * bounded by the symbol count and the producer never blocks on the consumer.
 * The first put into an empty mailbox wakes the loop with lws_cancel_service();
 * the service thread then drains every pending value into the feed's sink.
 */
#ifndef TICKERD_FEED_MAILBOX_H
#define TICKERD_FEED_MAILBOX_H

#include <stddef.h>
#include <stdint.h>

#include "tickerd/feed.h"

struct lws_context;
typedef struct feed_mailbox feed_mailbox;

feed_mailbox *feed_mailbox_create(size_t slots, struct lws_context *ctx);
void feed_mailbox_destroy(feed_mailbox *m);
/* Producer thread. u->symbol is copied (truncated to 31 bytes). */
void feed_mailbox_put(feed_mailbox *m, size_t slot, const feed_update *u);
/* Service thread: emit every pending value to sink; returns how many. */
size_t feed_mailbox_drain(feed_mailbox *m, const feed_sink *sink);
/* Values replaced before delivery (latest-value semantics), any thread. */
uint64_t feed_mailbox_overwritten(feed_mailbox *m);

#endif
