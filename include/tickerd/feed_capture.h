/*
 * feed_capture.h — raw capture of what a feed adapter receives, for replay
 * (feeds/replay.c) and for fixtures (tests/fixtures/, one .jsonl per capture).
 *
 * One JSON object per line (JSONL), in the fixture formats:
 *   WebSocket: {"t":<recv µs epoch>,"frame":"<the received text>"}
 *   REST:      {"t":<recv µs epoch>,"status":<HTTP status>,"hint":"<venue symbol>"|null,
 *               "body":"<the response body>"}
 * `hint` is the venue symbol of a per-symbol request (Coinbase), else null.
 *
 * Escaping. The text is written byte for byte as a JSON string: '"' and '\\'
 * are escaped, \b \f \n \r \t use their short forms, other bytes below 0x20
 * (NUL included) become \u00XX, and valid UTF-8 sequences are copied as they
 * are. A byte >= 0x80 that is not part of a valid UTF-8 sequence (overlong
 * forms, surrogates and code points above U+10FFFF count as invalid) is
 * written as \u00XX of the byte, so every line is valid JSON and valid UTF-8
 * that jansson reads back (with JSON_ALLOW_NUL when the text held a NUL);
 * such a byte reads back as the character U+00XX (two bytes of UTF-8), so
 * only text that was valid UTF-8 round-trips byte for byte.
 *
 * Never blocks on disk. The capture calls come from the lws service thread
 * and from adapter threads: each formats its record straight into a bounded
 * in-memory ring (buffer_bytes) under a mutex that is never held across I/O,
 * and a writer thread of the capture's own, woken with a condition variable,
 * appends the ring to the file with fwrite and flushes at least every
 * FEED_CAPTURE_FLUSH_MS. A record that does not fit in the free space (the
 * disk is slower than the feed, or the record is larger than the whole
 * buffer) is dropped whole and counted; memory never grows. Write errors
 * (disk full, say) are counted and logged at most every 10 s, and the
 * writer keeps going; a failed write may leave a partial line, which replay
 * skips as malformed.
 *
 * One capture per file: two captures appending to the same file may
 * interleave inside lines.
 */
#ifndef TICKERD_FEED_CAPTURE_H
#define TICKERD_FEED_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#define FEED_CAPTURE_DEFAULT_BUFFER (4u * 1024 * 1024)
#define FEED_CAPTURE_FLUSH_MS 200

typedef struct feed_capture feed_capture;

typedef struct feed_capture_stats {
    uint64_t records;      /* accepted into the buffer */
    uint64_t dropped;      /* refused: the buffer was full (or the record larger than it) */
    uint64_t bytes;        /* handed to the file */
    uint64_t write_errors; /* failed fwrite/fflush calls */
} feed_capture_stats;

/* Open path for appending (created if absent) and start the writer thread.
 * buffer_bytes 0 means FEED_CAPTURE_DEFAULT_BUFFER. Returns NULL with a
 * reason in err ("cannot open <path>: <strerror>") on failure. */
feed_capture *feed_capture_open(const char *path, size_t buffer_bytes, char *err, size_t errcap);
/* Record one received WebSocket text frame (any bytes, len of them). */
void feed_capture_ws(feed_capture *c, int64_t recv_us, const char *frame, size_t len);
/* Record one completed HTTP response; hint may be NULL (written as null). */
void feed_capture_rest(feed_capture *c, int64_t recv_us, long status, const char *hint,
                       const char *body, size_t len);
/* Records dropped because the buffer was full; any thread. */
uint64_t feed_capture_dropped(feed_capture *c);
void feed_capture_get_stats(feed_capture *c, feed_capture_stats *st);
/* Write out everything buffered, flush, join the writer, close the file.
 * NULL is a no-op. Waits for the disk (call it when the feed is torn down). */
void feed_capture_close(feed_capture *c);

#endif
