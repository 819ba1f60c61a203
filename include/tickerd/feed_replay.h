/*
 * feed_replay.h — the replay adapter (feeds/replay.c): plays a capture file
 * (feed_capture.h's JSONL, the format of tests/fixtures/) through the same
 * venue parser the live adapters use, paced by the recorded receive times,
 * from a thread of its own through a feed_mailbox. See docs/feeds-replay.md
 * for its options.
 */
#ifndef TICKERD_FEED_REPLAY_H
#define TICKERD_FEED_REPLAY_H

#include "tickerd/feed.h"

extern const feed_type feed_replay_type;

/* Longest capture line replay reads; a longer one is skipped as malformed. */
#define FEED_REPLAY_MAX_LINE (64u * 1024 * 1024)
/* Distinct symbols a replay without a "symbols" list accepts; further ones
 * are skipped and counted. */
#define FEED_REPLAY_MAX_SYMBOLS 1000

#endif
