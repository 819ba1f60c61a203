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
 *
 * Backlog: a client only a little behind on a symbol (its oldest unsent
 * value published at most backlog_ms ago, still in the symbol's ring, see
 * below) is sent every value rather than only the latest, so a client that
 * keeps up loses nothing even with coalescing off; one further behind — a
 * slow client, or every client of an overloaded server — converges to the
 * latest value, which keeps frames small exactly when writes are scarce.
 * Either way the per-client state is the same: the last seq sent.
 *
 * Resume: each symbol also keeps a fixed ring of its last resume_depth
 * encodings (allocated on its first publish, filled by one memcpy per
 * publish, never grown). A client that subscribes with the last seq it saw
 * per symbol gets, in "replay" frames, the values after that seq straight
 * from the ring (the same encoded bytes), or a snapshot frame marked
 * "reset":true when the ring no longer holds them, when the seq is ahead of
 * the server's, or when the client's seqs come from another server instance
 * (epoch). Per client this is still O(subscriptions): a resumed subscription
 * holds only its position (the last seq sent) while its replay is due.
 *
 * Encodings: a client reads JSON frames (the default) or binary ones
 * (tickerd.bin, docs/protocol.md). Each publish encodes the value once per
 * encoding; a client's frame concatenates the encodings of its own. The
 * binary resume rings exist only once a binary client has connected.
 */
#ifndef TICKERD_BCAST_H
#define TICKERD_BCAST_H

#include <stddef.h>
#include <stdint.h>

#include "tickerd/norm.h"

/* Upper bound of one encoded update object (see bcast_encode_json). */
#define BCAST_ENC_MAX 384
/* Frame envelope around the concatenated updates (the longest is a reset
 * snapshot's: {"op":"snapshot","reset":true,"updates":[...]}). */
#define BCAST_FRAME_OVERHEAD 48

/* Frame encodings (docs/protocol.md#binary-encoding). */
typedef enum { BCAST_ENC_JSON = 0, BCAST_ENC_BIN } bcast_enc;
/* Binary layout: a frame is a header (kind u8, reserved u8, count u16 LE)
 * and count update records; a record is its length (u8) and the fields
 * after it. Names are at most BCAST_BIN_NAME_MAX bytes. */
#define BCAST_BIN_HEAD 4
#define BCAST_BIN_MAX_COUNT 65535
#define BCAST_BIN_NAME_MAX 31
#define BCAST_BIN_FIXED 59 /* record bytes before the symbol's name: len .. open, name length */
/* Upper bound of one binary record (see bcast_encode_bin). */
#define BCAST_BIN_MAX (BCAST_BIN_FIXED + BCAST_BIN_NAME_MAX + 1 + BCAST_BIN_NAME_MAX)
/* The header's kind byte. */
enum { BCAST_BIN_SNAPSHOT = 1, BCAST_BIN_RESET = 2, BCAST_BIN_REPLAY = 3, BCAST_BIN_UPDATE = 4 };
/* A record's flags byte. */
enum { BCAST_BIN_STALE = 1, BCAST_BIN_STALE_CLEARED = 2 };

typedef struct bcast bcast;
typedef struct bcast_client bcast_client;

typedef struct bcast_opts {
    uint32_t max_subscriptions; /* per client; "*" counts as one */
    size_t max_frame_bytes;
    uint32_t resume_depth; /* ring entries per symbol; 0 = no ring (resume always resets) */
    /* A client whose oldest unsent value of a symbol was published at most
     * this long ago gets every value from there on (from the ring) instead
     * of only the latest; a client further behind converges to the latest
     * value and the skipped ones count as conflated. 0 = latest value only.
     * Needs the ring (resume_depth). */
    uint32_t backlog_ms;
} bcast_opts;

/* Largest resume_depth accepted (broadcast.resume_depth). */
#define BCAST_RESUME_DEPTH_MAX 4096
/* Bytes of ring memory per entry (the encoding's slot plus its length). */
#define BCAST_RING_SLOT_BYTES (BCAST_ENC_MAX + 16) /* its time, length, padding */
/* Characters of an epoch string (hex), without the terminator. */
#define BCAST_EPOCH_LEN 16

/* Why a resumed symbol got a reset snapshot instead of a replay. */
typedef enum {
    BCAST_RESET_TOO_OLD = 0, /* the ring no longer holds seq+1 (or a replay fell behind it) */
    BCAST_RESET_AHEAD,       /* the client's seq is above the server's: not this server's seqs */
    BCAST_RESET_EPOCH,       /* the client named another server instance's epoch */
    BCAST_RESET_COUNT
} bcast_reset_reason;

typedef struct bcast_stats {
    uint64_t updates_out;   /* update objects sent in "update" frames */
    uint64_t snapshots_out; /* update objects sent in "snapshot" frames */
    uint64_t conflated;     /* values a client skipped (seq gaps it saw) */
    uint64_t frames_out;
    uint64_t subscriptions; /* current room memberships (gauge) */
    uint32_t clients;       /* current clients (gauge) */
    uint32_t bin_clients;   /* of which read the binary encoding (gauge) */
    /* resume */
    uint64_t replayed_out;      /* update objects sent in "replay" frames */
    uint64_t resume_replayed;   /* resumed symbols whose replay completed */
    uint64_t resume_current;    /* resumed symbols already up to date (nothing to replay) */
    uint64_t resume_resets[BCAST_RESET_COUNT]; /* resumed symbols given a reset snapshot */
    uint64_t ring_bytes;        /* memory held by the resume rings (gauge) */
} bcast_stats;

typedef enum {
    BCAST_OK = 0,
    BCAST_EUNKNOWN, /* a symbol is not known; nothing changed */
    BCAST_ELIMIT,   /* would exceed max_subscriptions; nothing changed */
    BCAST_ENOMEM,
    BCAST_ERESUME,  /* a resume entry names a symbol the request does not subscribe; nothing changed */
} bcast_rc;

/* One entry of a resume request: the last seq the client saw for symbol
 * (0 = it saw none). */
typedef struct bcast_resume {
    const char *symbol;
    uint64_t seq;
} bcast_resume;

typedef void (*bcast_wake_fn)(void *arg);

bcast *bcast_create(const bcast_opts *opts);
void bcast_destroy(bcast *b);
/* A changed resume_depth drops every ring (refilled at the symbols' next
 * publishes); replays in progress then end in a reset. */
void bcast_set_opts(bcast *b, const bcast_opts *opts);
const bcast_stats *bcast_get_stats(const bcast *b);
/* This server instance's epoch: BCAST_EPOCH_LEN hex characters, different
 * for every bcast_create. Seqs are only comparable within one epoch. */
const char *bcast_epoch(const bcast *b);
/* "too_old", "seq_ahead", "epoch" (metric labels). */
const char *bcast_reset_name(bcast_reset_reason r);

/* --- from the normalizer (wired by the app) --- */
int bcast_symbol_added(bcast *b, uint32_t id, const char *symbol);
/* q->seq is normally the previous seq + 1; a seq that jumps restarts the
 * symbol's resume ring there. The same seq again re-publishes the value in
 * place (a cluster edge marking it stale or fresh without a new seq): its
 * ring slot is replaced and every subscriber is sent it again. q->enc, when
 * set, is used as the JSON encoding instead of encoding q. */
void bcast_publish(bcast *b, uint32_t id, const norm_quote *q);

/* --- the cluster edge's seams (docs/cluster.md) --- */
/* fn(arg, id, 1) when a symbol's room gains its first member, fn(arg, id, 0)
 * when it loses its last: an edge holds a Redis channel per occupied room.
 * Called from inside subscribe/unsubscribe; fn may call
 * bcast_symbol_set_loading and nothing else of this broadcaster. */
typedef void (*bcast_room_fn)(void *arg, uint32_t id, int occupied);
void bcast_set_room_hook(bcast *b, bcast_room_fn fn, void *arg);
/* While a symbol is loading (an edge fetching its recent values from Redis),
 * new subscriptions to it wait: no snapshot of a value that may be old, no
 * resume decision against a ring still being filled. Values published
 * meanwhile fill the ring. Clearing it gives every waiting subscription what
 * it would have got at once: its snapshot, its replay or reset. */
void bcast_symbol_set_loading(bcast *b, uint32_t id, int loading);
/* Forget the symbol's value and seq (its seqs start over: a Redis restarted
 * empty, or a gap no stream fills); every subscriber gets the next value as a
 * reset snapshot ("reset":true), counted under why. */
void bcast_symbol_reset(bcast *b, uint32_t id, bcast_reset_reason why);
/* Replace the epoch (an edge takes the cluster's from Redis); at most
 * BCAST_EPOCH_LEN characters are kept. */
void bcast_set_epoch(bcast *b, const char *epoch);

/* A reload removed symbols ids[0..n) from every feed: they stop being
 * offered (unknown to subscribe, left out of "*", bcast_symbol_id says
 * UINT32_MAX, status "removed"), and every client holding any of them loses
 * those subscriptions. told(wake_arg, names, nnames, arg) is called once per
 * such client with the names it lost, so its session can say so. Values and
 * seqs are kept: a symbol restored later continues its seq. 0, or -1 when
 * out of memory (nothing changed). */
typedef void (*bcast_removed_fn)(void *wake_arg, const char *const *names, size_t nnames,
                                 void *arg);
int bcast_symbols_remove(bcast *b, const uint32_t *ids, size_t n, bcast_removed_fn told, void *arg);
/* Offer a removed symbol again (a reload brought a feed of it back):
 * wildcard clients take it back with a snapshot. -1 when out of memory for
 * some wildcard client (that client misses it). */
int bcast_symbol_restore(bcast *b, uint32_t id);
int bcast_symbol_removed(const bcast *b, uint32_t id);
/* --- read side, for HTTP endpoints --- */
/* Symbol ids are dense: 0 .. bcast_symbol_count() - 1, removed ones included. */
uint32_t bcast_symbol_count(const bcast *b);
/* Symbols offered to clients: the count less the removed ones. */
uint32_t bcast_symbols_offered(const bcast *b);
const char *bcast_symbol_name(const bcast *b, uint32_t id);
/* "live", "stale" (no fresh source: the last known value), "no_data", or
 * "removed" (bcast_symbols_remove). */
const char *bcast_symbol_status(const bcast *b, uint32_t id);
/* Seq of symbol id's latest value; 0 when it has none. */
uint64_t bcast_symbol_seq(const bcast *b, uint32_t id);
/* Latest encoded value of symbol id; NULL when it has none yet. */
const char *bcast_symbol_json(const bcast *b, uint32_t id, size_t *len);

/* --- clients (from transports) --- */
bcast_client *bcast_client_create(bcast *b, bcast_wake_fn wake, void *wake_arg);
void bcast_client_destroy(bcast_client *c);
/* The encoding of the client's frames (BCAST_ENC_JSON until set). */
void bcast_client_set_encoding(bcast_client *c, bcast_enc enc);
/* Subscribe to names (canonical symbols or "*"), atomically. On
 * BCAST_EUNKNOWN, unknown[0..*nunknown) holds the indices of unknown names
 * (unknown must have room for n). Newly and re-subscribed symbols get a
 * snapshot before any update. */
bcast_rc bcast_subscribe(bcast_client *c, const char *const *names, size_t n, size_t *unknown,
                         size_t *nunknown);
/* The same, resuming: resume[0..nresume) gives the last seq seen per symbol;
 * each must name a symbol subscribed by this request (any known symbol when
 * names holds "*"), else BCAST_ERESUME with unknown[0] = n + the index of
 * the first such entry. Unknown symbols in resume are
 * reported in unknown[] as n + their index (unknown needs room for
 * n + nresume). other_epoch: the seqs come from another server instance, so
 * every resumed symbol gets a reset snapshot. A resumed symbol then gets,
 * before any update: nothing (seq is current), a replay of every value after
 * seq (the ring holds them), or a reset snapshot. */
bcast_rc bcast_subscribe_resume(bcast_client *c, const char *const *names, size_t n,
                                const bcast_resume *resume, size_t nresume, int other_epoch,
                                size_t *unknown, size_t *nunknown);
/* Unsubscribe from names; "*" removes every subscription. Unknown or
 * unsubscribed names are ignored. */
void bcast_unsubscribe(bcast_client *c, const char *const *names, size_t n);
/* Keep only the subscriptions keep(arg, symbol) says yes to (a narrower
 * entitlement); a wildcard client stops being one unless keep_wildcard.
 * Returns how many were removed. */
size_t bcast_client_retain(bcast_client *c, int (*keep)(void *arg, const char *symbol), void *arg,
                           int keep_wildcard);
int bcast_client_has_pending(const bcast_client *c);
/* Is any snapshot (plain or reset) still due? */
int bcast_client_snapshots_due(const bcast_client *c);

/* The history seam (history on subscribe). bcast_park: the client's
 * subscriptions to ids[0..n) get their snapshot as usual but no live update
 * until bcast_unpark(id, seq), where seq is the last value the client's
 * history holds (0: none of this server run). Unpark continues exactly after
 * it, like a resume from seq: a replay of every later value from the ring,
 * nothing when seq is current, or a reset snapshot ("reset":true) when the
 * ring no longer reaches back. Ids the client does not hold are ignored; a
 * later subscribe naming the symbol again unparks it. */
void bcast_park(bcast_client *c, const uint32_t *ids, size_t n);
void bcast_unpark(bcast_client *c, uint32_t id, uint64_t seq);
/* For bcast_unpark when there is no history to join: live updates simply
 * follow what the client was last sent. */
#define BCAST_UNPARK_LIVE UINT64_MAX
/* Symbol id of a known name, or UINT32_MAX. */
uint32_t bcast_symbol_id(const bcast *b, const char *name);
uint32_t bcast_client_subscription_count(const bcast_client *c);
/* One client's counters (the admin view's slowest clients). */
typedef struct bcast_client_stats {
    uint64_t frames_out;
    uint64_t values_out; /* update objects in its frames, of every kind */
    uint64_t conflated;  /* values it skipped: how far behind it has been */
} bcast_client_stats;
const bcast_client_stats *bcast_client_get_stats(const bcast_client *c);
/* The client's position as text, for transports whose clients resume by a
 * token (SSE's Last-Event-ID, the long-poll cursor): "EPOCH,SYM:seq,..."
 * with the last seq sent (or resumed from) of every subscription that has
 * one. Returns its length, or (size_t)-1 when cap is too small (buf then
 * holds the entries that fit). Parse it back with sess_parse_position. */
size_t bcast_client_position(const bcast_client *c, char *buf, size_t cap);
/* Write the client's next frame into buf (at most cap bytes): snapshot
 * frames while snapshots are due, then reset snapshot frames, then replay
 * frames, else an update frame. Returns its length, 0 when nothing is due. */
size_t bcast_client_frame(bcast_client *c, char *buf, size_t cap);

/* Encode one quote as a JSON object; returns its length (< BCAST_ENC_MAX). */
size_t bcast_encode_json(char *dst, const norm_quote *q);
/* Encode one quote as a binary record; returns its length (<= BCAST_BIN_MAX). */
size_t bcast_encode_bin(uint8_t *dst, const norm_quote *q);

#endif
