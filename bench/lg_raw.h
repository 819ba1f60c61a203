/*
 * lg_raw: the load tool's own WebSocket client engine, epoll and plain
 * sockets, no library on the receive path.
 *
 * Why it exists: at a million deliveries per second the lws client spent
 * 57 % of the tool's core in its byte-at-a-time frame parser (perf, N = 1,000,
 * 780k updates/s), so the tool, not the server under test, was the limit.  The
 * engine reads whole socket buffers and hands frame payloads to the caller in
 * as few pieces as the reads allow; the caller's scanner then runs memchr over
 * them.  It speaks exactly what a benchmark client needs: the RFC 6455 client
 * handshake (with Sec-WebSocket-Accept checked), masked text frames out,
 * unmasked frames in (fragmented or not), pong for ping, and the close
 * handshake.  No TLS (wss:// stays on the lws engine), no extensions.
 * LGR_SSE instead reads a Server-Sent Events stream (GET, 200,
 * text/event-stream, no chunked encoding): each "data:" line is handed over
 * as one message; the other fields and comments are skipped.
 *
 * Lifecycle: lgr_loop_new() with a fixed number of connection slots (one per
 * load connection: the caller's index is the slot), lgr_connect() per slot,
 * lgr_run() in the caller's loop, lgr_loop_free().  Every event reaches the
 * caller through struct lgr_events, on the loop's thread.
 */
#ifndef LG_RAW_H
#define LG_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lgr_loop;

enum lgr_mode { LGR_WEBSOCKET, LGR_SSE };

struct lgr_events {
	/* The upgrade succeeded: the connection is open. */
	void (*established)(void *user);
	/*
	 * A piece of a received data message, in order.  final: the last piece
	 * of the message.  The first piece of a message holds at least
	 * LGR_FIRST_PIECE_MIN bytes (or the whole message if it is shorter),
	 * so the caller can classify a message from its first piece.
	 */
	void (*receive)(void *user, const char *p, size_t len, bool final);
	/* The connection may send: write at most one message into buf, return its length (0: none). */
	size_t (*writeable)(void *user, char *buf, size_t cap);
	/* The server sent a close frame with this code (1005 if it had none). */
	void (*peer_close)(void *user, uint16_t code);
	/* An open connection is gone (after established). */
	void (*closed)(void *user);
	/* Connecting or upgrading failed (before established). */
	void (*connect_error)(void *user, const char *why);
};

#define LGR_FIRST_PIECE_MIN 64
#define LGR_MSG_MAX 4096 /* largest message lgr may send (writeable's cap) */

/* NULL if out of memory or host:port does not resolve. */
struct lgr_loop *lgr_loop_new(uint32_t slots, enum lgr_mode mode, const char *host, int port,
			      const struct lgr_events *ev);
/*
 * Start connecting slot (0..slots-1, unused or finished) for user, asking
 * for path (with its query; at most 1 KiB).  0, or -1 with connect_error
 * called.
 */
int lgr_connect(struct lgr_loop *l, uint32_t slot, const char *path, void *user);
/* Ask for one writeable callback on slot (after earlier sends have left). */
void lgr_want_write(struct lgr_loop *l, uint32_t slot);
/* Stop (paused) or resume reading slot: a stalled reader, as lws_rx_flow_control(). */
void lgr_rx_pause(struct lgr_loop *l, uint32_t slot, bool paused);
/* Wait up to timeout_ms for socket events and handle them. -1 on a fatal epoll error. */
int lgr_run(struct lgr_loop *l, int timeout_ms);
/* Close every socket (no close handshake) and free the loop. */
void lgr_loop_free(struct lgr_loop *l);

#endif
