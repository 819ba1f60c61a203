/*
 * bcast.h — the broadcaster: per-symbol rooms, per-client conflation, frames.
 *
 * Each published value is encoded once (JSON) into its symbol's slot; every
 * subscriber is only *marked* pending. When a client's transport can write, it
 * asks for one frame: the latest encoding of each pending symbol, concatenated.
 * So a client holds at most one pending value per subscribed symbol — memory is
 * O(its subscriptions) whatever the feed rate — and a slow client simply skips
 * intermediate values (visible to it as seq gaps) without delaying anyone.
 *
 * The broadcaster does no I/O. A transport (ws.c today; SSE or long-polling
 * later) creates a bcast_client with a wake callback, and in its writable
 * callback calls bcast_client_frame(); after writing it asks again while
 * bcast_client_has_pending() is true. Single-threaded: the service thread.
 */
#ifndef TICKERD_BCAST_H
#define TICKERD_BCAST_H

#include <stddef.h>
#include <stdint.h>

#include "tickerd/norm.h"

/* Upper bound of one encoded update object (see bcast_encode_json). */
#define BCAST_ENC_MAX 384
/* Frame envelope around the concatenated updates. */
#define BCAST_FRAME_OVERHEAD 32

typedef struct bcast bcast;
typedef struct bcast_client bcast_client;

typedef struct bcast_opts {
    uint32_t max_subscriptions; /* per client; "*" counts as one */
    size_t max_frame_bytes;
} bcast_opts;

typedef struct bcast_stats {
    uint64_t updates_out;   /* update objects sent in "update" frames */
    uint64_t snapshots_out; /* update objects sent in "snapshot" frames */
    uint64_t conflated;     /* values a client skipped (seq gaps it saw) */
    uint64_t frames_out;
    uint64_t subscriptions; /* current room memberships (gauge) */
    uint32_t clients;       /* current clients (gauge) */
} bcast_stats;

typedef enum {
    BCAST_OK = 0,
    BCAST_EUNKNOWN, /* a symbol is not known; nothing changed */
    BCAST_ELIMIT,   /* would exceed max_subscriptions; nothing changed */
    BCAST_ENOMEM,
} bcast_rc;

typedef void (*bcast_wake_fn)(void *arg);

bcast *bcast_create(const bcast_opts *opts);
void bcast_destroy(bcast *b);
void bcast_set_opts(bcast *b, const bcast_opts *opts);
const bcast_stats *bcast_get_stats(const bcast *b);

/* --- from the normalizer (wired by the app) --- */
int bcast_symbol_added(bcast *b, uint32_t id, const char *symbol);
void bcast_publish(bcast *b, uint32_t id, const norm_quote *q);

/* --- read side, for HTTP endpoints --- */
uint32_t bcast_symbol_count(const bcast *b);
const char *bcast_symbol_name(const bcast *b, uint32_t id);
/* Latest encoded value of symbol id; NULL when it has none yet. */
const char *bcast_symbol_json(const bcast *b, uint32_t id, size_t *len);

/* --- clients (from transports) --- */
bcast_client *bcast_client_create(bcast *b, bcast_wake_fn wake, void *wake_arg);
void bcast_client_destroy(bcast_client *c);
/* Subscribe to names (canonical symbols or "*"), atomically. On
 * BCAST_EUNKNOWN, unknown[0..*nunknown) holds the indices of unknown names
 * (unknown must have room for n). Newly and re-subscribed symbols get a
 * snapshot before any update. */
bcast_rc bcast_subscribe(bcast_client *c, const char *const *names, size_t n, size_t *unknown,
                         size_t *nunknown);
/* Unsubscribe from names; "*" removes every subscription. Unknown or
 * unsubscribed names are ignored. */
void bcast_unsubscribe(bcast_client *c, const char *const *names, size_t n);
int bcast_client_has_pending(const bcast_client *c);
uint32_t bcast_client_subscription_count(const bcast_client *c);
/* Write the client's next frame into buf (at most cap bytes): a snapshot
 * frame while snapshots are due, else an update frame. Returns its length,
 * 0 when nothing is due. */
size_t bcast_client_frame(bcast_client *c, char *buf, size_t cap);

/* Encode one quote as a JSON object; returns its length (< BCAST_ENC_MAX). */
size_t bcast_encode_json(char *dst, const norm_quote *q);

#endif
