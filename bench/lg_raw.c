/*
 * lg_raw: the load tool's epoll WebSocket client engine (see lg_raw.h).
 *
 * Owns: the connection slots, their sockets and the one epoll set, the client
 * handshake, the receive-side frame parser (or the event-stream reader), masked sends with a small bounded
 * remainder buffer per connection, and the list of connections that asked to
 * write.
 *
 * Design notes
 * - Level-triggered epoll, at most READS_PER_EVENT reads of one shared
 *   256 KiB buffer per readable socket per turn: one busy connection cannot
 *   starve the others, and the next turn comes back to it.
 * - Payloads are handed over straight from the read buffer; only the first
 *   LGR_FIRST_PIECE_MIN bytes of a message may be copied (into the slot's
 *   head buffer) when a read ends just after a message began, so the caller
 *   always sees enough of a message to tell what it is.
 * - Sends are rare (the subscribe requests, pongs, the close reply) and
 *   small: each goes out with one send(); what the socket does not take waits
 *   in a per-slot buffer capped at OUT_MAX (a connection that exceeds it is
 *   dropped: no unbounded queue, even in the bench).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strcasestr, memmem */
#endif

#include "lg_raw.h"

#include <openssl/evp.h>

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF (256 * 1024)
#define READS_PER_EVENT 4
#define EVENTS_MAX 1024
#define HS_MAX 2048            /* the server's 101 response must fit */
#define OUT_MAX (64 * 1024)    /* unsent bytes one connection may hold */
#define HANDSHAKE_TIMEOUT_MS 20000
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum slot_state { ST_FREE, ST_CONNECTING, ST_UPGRADING, ST_OPEN };
/* Where an event-stream reader is within a line. */
enum sse_state { SSE_LINE_START, SSE_DATA, SSE_SKIP };

struct lgr_conn {
	int fd;
	uint8_t state;
	bool paused, want_write, queued;
	uint32_t events;     /* the epoll mask registered now */
	void *user;
	int64_t started_ms;
	char *hs;            /* connecting: the request; upgrading: the response so far (HS_MAX) */
	uint16_t hs_len;
	char accept[32];     /* the Sec-WebSocket-Accept we expect */
	/* frame parser */
	uint8_t hdr[14], hdr_len, hdr_need;
	uint8_t op;          /* opcode of the frame being read */
	bool fin, in_payload;
	bool msg_open;       /* a data message started and has not ended */
	bool msg_started;    /* its first piece was handed over */
	uint64_t left;       /* payload bytes of the frame not yet read */
	uint8_t head_len, head_need;
	char head[LGR_FIRST_PIECE_MIN];
	uint8_t ctl_len;
	char ctl[125];       /* a control frame's payload */
	uint8_t sse, field_len; /* event stream: enum sse_state, bytes of the line's field name */
	char field[6];       /* the start of a line, to tell "data: " */
	char *out;           /* unsent bytes: out[out_off .. out_len) */
	uint32_t out_len, out_off;
};

struct lgr_loop {
	int ep;
	uint32_t slots;
	struct lgr_conn *c;
	/*
	 * Slots that asked to write, each at most once among those not yet
	 * served; a slot served in this turn may ask again before the served
	 * part is removed, hence room for 2 x slots.
	 */
	uint32_t *wlist, wcount;
	struct lgr_events ev;
	enum lgr_mode mode;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char host[300];          /* the Host (and Origin) header's value */
	uint64_t rnd;
	int64_t next_timeout_scan_ms;
	char rbuf[READ_BUF];
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* xorshift64: masks and handshake keys need to vary, not to be secret */
static uint64_t rnd_next(struct lgr_loop *l)
{
	l->rnd ^= l->rnd << 13;
	l->rnd ^= l->rnd >> 7;
	l->rnd ^= l->rnd << 17;
	return l->rnd;
}

static void update_events(struct lgr_loop *l, struct lgr_conn *c)
{
	uint32_t want = 0;
	if (c->state == ST_CONNECTING || c->out_off < c->out_len)
		want |= EPOLLOUT;
	if (c->state == ST_UPGRADING || (c->state == ST_OPEN && !c->paused))
		want |= EPOLLIN;
	if (want == c->events)
		return;
	struct epoll_event e = { .events = want, .data.u32 = (uint32_t)(c - l->c) };
	if (!epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &e))
		c->events = want;
}

/* The slot is finished: close its socket and tell the caller how it ended. */
static void conn_drop(struct lgr_loop *l, struct lgr_conn *c, const char *why)
{
	uint8_t was = c->state;
	void *user = c->user;

	close(c->fd);
	free(c->hs);
	free(c->out);
	bool queued = c->queued;
	memset(c, 0, sizeof *c);
	c->fd = -1;
	c->queued = queued; /* the write list still names it; it is skipped there */
	if (was == ST_OPEN)
		l->ev.closed(user);
	else
		l->ev.connect_error(user, why);
}

/* Unsent bytes wait in c->out, at most OUT_MAX of them. */
static int out_append(struct lgr_loop *l, struct lgr_conn *c, const char *b, size_t n)
{
	size_t pending = c->out_len - c->out_off;
	if (pending + n > OUT_MAX) {
		conn_drop(l, c, "send buffer full");
		return -1;
	}
	char *o = malloc(pending + n);
	if (!o) {
		conn_drop(l, c, "out of memory");
		return -1;
	}
	if (pending)
		memcpy(o, c->out + c->out_off, pending);
	memcpy(o + pending, b, n);
	free(c->out);
	c->out = o;
	c->out_off = 0;
	c->out_len = (uint32_t)(pending + n);
	update_events(l, c);
	return 0;
}

static int conn_write(struct lgr_loop *l, struct lgr_conn *c, const char *b, size_t n)
{
	if (c->out_off < c->out_len) /* keep the byte order: behind what waits */
		return out_append(l, c, b, n);
	ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL);
	if (w < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			conn_drop(l, c, strerror(errno));
			return -1;
		}
		w = 0;
	}
	return (size_t)w < n ? out_append(l, c, b + w, n - (size_t)w) : 0;
}

/* One masked frame (RFC 6455 5.3: every client frame is masked). */
static int conn_send(struct lgr_loop *l, struct lgr_conn *c, uint8_t op, const char *p, size_t len)
{
	char f[14 + LGR_MSG_MAX];
	size_t h = 0;
	if (len > LGR_MSG_MAX)
		return -1;
	f[h++] = (char)(0x80 | op);
	if (len < 126) {
		f[h++] = (char)(0x80 | len);
	} else {
		f[h++] = (char)(0x80 | 126);
		f[h++] = (char)(len >> 8);
		f[h++] = (char)len;
	}
	uint32_t m = (uint32_t)rnd_next(l);
	memcpy(f + h, &m, 4);
	const char *mk = f + h;
	h += 4;
	for (size_t i = 0; i < len; i++)
		f[h + i] = (char)(p[i] ^ mk[i & 3]);
	return conn_write(l, c, f, h + len);
}

static void queue_write(struct lgr_loop *l, struct lgr_conn *c)
{
	if (c->queued)
		return;
	c->queued = true;
	l->wlist[l->wcount++] = (uint32_t)(c - l->c);
}

/* ------------------------------------------------------------ frames in */

static void control_frame(struct lgr_loop *l, struct lgr_conn *c)
{
	if (c->op == 0x9) { /* ping: the pong echoes its payload */
		conn_send(l, c, 0xA, c->ctl, c->ctl_len);
	} else if (c->op == 0x8) {
		uint16_t code = c->ctl_len >= 2 ? (uint16_t)((uint8_t)c->ctl[0] << 8 | (uint8_t)c->ctl[1])
						: 1005;
		l->ev.peer_close(c->user, code);
		char reply[2] = { (char)(code >> 8), (char)code };
		if (!conn_send(l, c, 0x8, reply, code == 1005 ? 0 : 2))
			conn_drop(l, c, "closed by server");
	} /* pong: nothing to do */
	c->ctl_len = 0;
}

/* The frame header is complete: check it and start reading its payload. */
static int frame_begin(struct lgr_loop *l, struct lgr_conn *c)
{
	const uint8_t *h = c->hdr;
	uint8_t l7 = h[1] & 0x7f;
	c->op = h[0] & 0x0f;
	c->fin = h[0] & 0x80;
	if (l7 == 126)
		c->left = (uint64_t)h[2] << 8 | h[3];
	else if (l7 == 127)
		c->left = (uint64_t)h[2] << 56 | (uint64_t)h[3] << 48 | (uint64_t)h[4] << 40 |
			  (uint64_t)h[5] << 32 | (uint64_t)h[6] << 24 | (uint64_t)h[7] << 16 |
			  (uint64_t)h[8] << 8 | h[9];
	else
		c->left = l7;
	bool control = c->op & 0x8;
	const char *bad = (h[0] & 0x70) ? "reserved bits set"
			: (h[1] & 0x80) ? "masked frame from the server"
			: control && (!c->fin || c->left > 125) ? "bad control frame"
			: !control && c->op == 0 && !c->msg_open ? "continuation without a message"
			: !control && c->op != 0 && c->msg_open ? "new message inside a fragmented one"
			: !control && c->op > 2 ? "unknown opcode" : NULL;
	if (bad) {
		conn_drop(l, c, bad);
		return -1;
	}
	c->hdr_len = 0;
	c->in_payload = true;
	if (!control) {
		c->msg_open = true;
		if (!c->msg_started) {
			c->head_len = 0;
			c->head_need = (uint8_t)(c->left < LGR_FIRST_PIECE_MIN ? c->left : LGR_FIRST_PIECE_MIN);
		}
	}
	return 0;
}

static void frame_end(struct lgr_loop *l, struct lgr_conn *c)
{
	c->in_payload = false;
	if (c->op & 0x8) {
		control_frame(l, c);
		return;
	}
	if (!c->msg_started && c->fin) /* an empty message, or a short last frame */
		l->ev.receive(c->user, c->head, c->head_len, true);
	if (c->fin)
		c->msg_open = c->msg_started = false;
}

/* Consume n received bytes of frames; stops early if the slot was dropped. */
static void frames_input(struct lgr_loop *l, struct lgr_conn *c, const char *p, size_t n)
{
	while (c->state == ST_OPEN) {
		if (!c->in_payload) {
			while (n && (c->hdr_len < 2 || c->hdr_len < c->hdr_need)) {
				c->hdr[c->hdr_len++] = (uint8_t)*p++;
				n--;
				if (c->hdr_len == 2) {
					uint8_t l7 = c->hdr[1] & 0x7f;
					c->hdr_need = (uint8_t)(2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) +
								((c->hdr[1] & 0x80) ? 4 : 0));
				}
			}
			if (c->hdr_len < 2 || c->hdr_len < c->hdr_need || frame_begin(l, c))
				return;
		}
		if (!c->left) {
			frame_end(l, c);
			continue;
		}
		if (!n)
			return;
		size_t take = n < c->left ? n : (size_t)c->left;
		if (c->op & 0x8) {
			memcpy(c->ctl + c->ctl_len, p, take);
			c->ctl_len = (uint8_t)(c->ctl_len + take);
		} else if (!c->msg_started) {
			size_t hn = c->head_need - c->head_len;
			take = take < hn ? take : hn;
			memcpy(c->head + c->head_len, p, take);
			c->head_len = (uint8_t)(c->head_len + take);
			if (c->head_len == c->head_need) {
				c->msg_started = true;
				l->ev.receive(c->user, c->head, c->head_len, c->fin && c->left == take);
			}
		} else {
			l->ev.receive(c->user, p, take, c->fin && c->left == take);
		}
		p += take;
		n -= take;
		c->left -= take;
		if (!c->left)
			frame_end(l, c);
	}
}

/* ---------------------------------------------------------- event stream */

/*
 * tickerd writes one "data: <compact JSON>" line per event (docs/protocol.md),
 * so each data line is one message; multi-line data would arrive as several.
 */
static void events_input(struct lgr_loop *l, struct lgr_conn *c, const char *p, size_t n)
{
	while (n && c->state == ST_OPEN) {
		if (c->sse == SSE_LINE_START) {
			char ch = *p++;
			n--;
			if (ch == '\n') { /* an empty line ends an event; a short line ends here */
				c->field_len = 0;
				continue;
			}
			c->field[c->field_len++] = ch;
			if (c->field_len == sizeof c->field) {
				c->field_len = 0;
				c->sse = memcmp(c->field, "data: ", 6) ? SSE_SKIP : SSE_DATA;
				c->msg_started = false;
				c->head_len = 0;
			}
			continue;
		}
		const char *q = memchr(p, '\n', n);
		size_t run = q ? (size_t)(q - p) : n;
		if (c->sse == SSE_DATA && !c->msg_started) {
			size_t h = LGR_FIRST_PIECE_MIN - c->head_len;
			h = run < h ? run : h;
			memcpy(c->head + c->head_len, p, h);
			c->head_len = (uint8_t)(c->head_len + h);
			p += h;
			n -= h;
			run -= h;
			if (c->head_len < LGR_FIRST_PIECE_MIN && !q)
				continue; /* n is 0: wait for more of the line */
			c->msg_started = true;
			bool final = q && !run;
			l->ev.receive(c->user, c->head, c->head_len, final);
			if (!final && (run || q))
				l->ev.receive(c->user, p, run, q != NULL);
		} else if (c->sse == SSE_DATA) {
			l->ev.receive(c->user, p, run, q != NULL);
		}
		p += run;
		n -= run;
		if (q) { /* the line's '\n' */
			p++;
			n--;
			c->sse = SSE_LINE_START;
		}
	}
}

/* ------------------------------------------------------------ handshake */

/* Sec-WebSocket-Accept for key: base64(SHA-1(key + GUID)), RFC 6455 4.2.2. */
static void expected_accept(const char *key, char *out, size_t cap)
{
	char in[64];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int n = snprintf(in, sizeof in, "%s%s", key, WS_GUID);
	if (!EVP_Digest(in, (size_t)n, md, &mdlen, EVP_sha1(), NULL) || cap < 4 * ((mdlen + 2) / 3) + 1) {
		out[0] = '\0';
		return;
	}
	EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
}

/* The request for path into c->hs (sent once connected). */
static int build_request(struct lgr_loop *l, struct lgr_conn *c, const char *path)
{
	int n;
	if (l->mode == LGR_SSE) {
		n = snprintf(c->hs, HS_MAX,
			     "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n"
			     "Origin: http://%s\r\n\r\n", path, l->host, l->host);
	} else {
		unsigned char raw[16];
		char key[32];
		for (int i = 0; i < 16; i += 8) {
			uint64_t r = rnd_next(l);
			memcpy(raw + i, &r, 8);
		}
		EVP_EncodeBlock((unsigned char *)key, raw, 16);
		expected_accept(key, c->accept, sizeof c->accept);
		n = snprintf(c->hs, HS_MAX,
			     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\nOrigin: http://%s\r\n\r\n",
			     path, l->host, key, l->host);
	}
	if (n < 0 || n >= HS_MAX)
		return -1;
	c->hs_len = (uint16_t)n;
	return 0;
}

static void send_request(struct lgr_loop *l, struct lgr_conn *c)
{
	size_t n = c->hs_len;
	c->hs_len = 0; /* the buffer now collects the response */
	c->state = ST_UPGRADING;
	update_events(l, c);
	conn_write(l, c, c->hs, n);
}

/* Bytes of the server's response to the upgrade; frames may follow it in the same read. */
static void upgrade_input(struct lgr_loop *l, struct lgr_conn *c, const char *p, size_t n)
{
	size_t before = c->hs_len, room = HS_MAX - 1 - before, take = n < room ? n : room;
	memcpy(c->hs + before, p, take);
	c->hs_len = (uint16_t)(before + take);
	c->hs[c->hs_len] = '\0';
	char *end = strstr(c->hs, "\r\n\r\n");
	if (!end) {
		if (c->hs_len == HS_MAX - 1)
			conn_drop(l, c, "upgrade response too long");
		return;
	}
	size_t used = (size_t)(end + 4 - c->hs) - before; /* of p */
	end[2] = '\0';
	const char *acc = strcasestr(c->hs, "\r\nSec-WebSocket-Accept:");
	bool sse = l->mode == LGR_SSE;
	if (strncmp(c->hs, sse ? "HTTP/1.1 200" : "HTTP/1.1 101", 12)) {
		char why[80];
		snprintf(why, sizeof why, "upgrade refused: %.40s", c->hs);
		*strchrnul(why, '\r') = '\0';
		conn_drop(l, c, why);
		return;
	}
	if (acc) {
		acc += 23;
		while (*acc == ' ')
			acc++;
	}
	if (!sse && (!acc || strncmp(acc, c->accept, strlen(c->accept)) || !c->accept[0])) {
		conn_drop(l, c, "bad Sec-WebSocket-Accept");
		return;
	}
	free(c->hs);
	c->hs = NULL;
	c->state = ST_OPEN;
	update_events(l, c);
	l->ev.established(c->user);
	if (c->state == ST_OPEN && used < n)
		(sse ? events_input : frames_input)(l, c, p + used, n - used);
}

/* --------------------------------------------------------------- events */

static void conn_connected(struct lgr_loop *l, struct lgr_conn *c)
{
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
		conn_drop(l, c, strerror(err ? err : errno));
		return;
	}
	send_request(l, c);
}

static void conn_readable(struct lgr_loop *l, struct lgr_conn *c)
{
	for (int i = 0; i < READS_PER_EVENT && c->state >= ST_UPGRADING; i++) {
		ssize_t r = recv(c->fd, l->rbuf, READ_BUF, 0);
		if (r == 0) {
			conn_drop(l, c, "closed by server");
			return;
		}
		if (r < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				conn_drop(l, c, strerror(errno));
			return;
		}
		if (c->state == ST_UPGRADING)
			upgrade_input(l, c, l->rbuf, (size_t)r);
		else if (l->mode == LGR_SSE)
			events_input(l, c, l->rbuf, (size_t)r);
		else
			frames_input(l, c, l->rbuf, (size_t)r);
		if (r < READ_BUF)
			return; /* drained: another recv would only say EAGAIN */
	}
}

static void conn_flush(struct lgr_loop *l, struct lgr_conn *c)
{
	size_t pending = c->out_len - c->out_off;
	if (pending) {
		ssize_t w = send(c->fd, c->out + c->out_off, pending, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				conn_drop(l, c, strerror(errno));
			return;
		}
		c->out_off += (uint32_t)w;
		if (c->out_off < c->out_len)
			return;
		free(c->out);
		c->out = NULL;
		c->out_len = c->out_off = 0;
	}
	update_events(l, c);
	if (c->want_write)
		queue_write(l, c);
}

static void conn_event(struct lgr_loop *l, struct lgr_conn *c, uint32_t events)
{
	if (c->state == ST_CONNECTING) {
		conn_connected(l, c);
		return;
	}
	if (events & EPOLLOUT)
		conn_flush(l, c);
	if (c->state >= ST_UPGRADING && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		conn_readable(l, c);
}

/* Each slot that asked, once: what a callback asks for now waits for the next turn. */
static void run_writes(struct lgr_loop *l)
{
	char buf[LGR_MSG_MAX];
	uint32_t n0 = l->wcount;
	for (uint32_t i = 0; i < n0; i++) {
		struct lgr_conn *c = &l->c[l->wlist[i]];
		c->queued = false;
		if (c->state != ST_OPEN || !c->want_write || c->out_off < c->out_len)
			continue; /* gone, or it asks again once its remainder has left */
		c->want_write = false;
		size_t len = l->ev.writeable(c->user, buf, sizeof buf);
		if (len && c->state == ST_OPEN)
			conn_send(l, c, 0x1, buf, len);
	}
	memmove(l->wlist, l->wlist + n0, (l->wcount - n0) * sizeof *l->wlist);
	l->wcount -= n0;
}

static void reap_handshakes(struct lgr_loop *l, int64_t now)
{
	if (now < l->next_timeout_scan_ms)
		return;
	l->next_timeout_scan_ms = now + 1000;
	for (uint32_t i = 0; i < l->slots; i++) {
		struct lgr_conn *c = &l->c[i];
		if ((c->state == ST_CONNECTING || c->state == ST_UPGRADING) &&
		    now - c->started_ms > HANDSHAKE_TIMEOUT_MS)
			conn_drop(l, c, "handshake timeout");
	}
}

/* ------------------------------------------------------------------ API */

struct lgr_loop *lgr_loop_new(uint32_t slots, enum lgr_mode mode, const char *host, int port,
			      const struct lgr_events *ev)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	char portstr[16];
	snprintf(portstr, sizeof portstr, "%d", port);
	if (getaddrinfo(host, portstr, &hints, &ai) || !ai)
		return NULL;

	struct lgr_loop *l = calloc(1, sizeof *l);
	if (!l) {
		freeaddrinfo(ai);
		return NULL;
	}
	memcpy(&l->addr, ai->ai_addr, ai->ai_addrlen);
	l->addr_len = ai->ai_addrlen;
	freeaddrinfo(ai);
	l->slots = slots;
	l->mode = mode;
	l->ev = *ev;
	l->rnd = (uint64_t)mono_ms() * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
	l->rnd |= 1;
	bool v6 = strchr(host, ':');
	snprintf(l->host, sizeof l->host, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
	l->c = calloc(slots, sizeof *l->c);
	l->wlist = calloc(2 * (size_t)slots, sizeof *l->wlist);
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	if (!l->c || !l->wlist || l->ep < 0) {
		lgr_loop_free(l);
		return NULL;
	}
	for (uint32_t i = 0; i < slots; i++)
		l->c[i].fd = -1;
	return l;
}

int lgr_connect(struct lgr_loop *l, uint32_t slot, const char *path, void *user)
{
	struct lgr_conn *c = &l->c[slot];
	int one = 1;
	if (c->state != ST_FREE)
		return -1;
	c->user = user;
	c->started_ms = mono_ms();
	c->state = ST_CONNECTING; /* from here conn_drop reports a connect error */
	c->hs = malloc(HS_MAX);
	if (!c->hs || build_request(l, c, path)) {
		conn_drop(l, c, c->hs ? "path too long" : "out of memory");
		return -1;
	}
	c->fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		conn_drop(l, c, strerror(errno));
		return -1;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->events = EPOLLOUT;
	struct epoll_event e = { .events = EPOLLOUT, .data.u32 = slot };
	if ((connect(c->fd, (struct sockaddr *)&l->addr, l->addr_len) && errno != EINPROGRESS) ||
	    epoll_ctl(l->ep, EPOLL_CTL_ADD, c->fd, &e)) {
		conn_drop(l, c, strerror(errno));
		return -1;
	}
	return 0;
}

void lgr_want_write(struct lgr_loop *l, uint32_t slot)
{
	struct lgr_conn *c = &l->c[slot];
	if (c->state != ST_OPEN)
		return;
	c->want_write = true;
	if (c->out_off == c->out_len)
		queue_write(l, c);
}

void lgr_rx_pause(struct lgr_loop *l, uint32_t slot, bool paused)
{
	struct lgr_conn *c = &l->c[slot];
	c->paused = paused;
	if (c->state == ST_OPEN)
		update_events(l, c);
}

int lgr_run(struct lgr_loop *l, int timeout_ms)
{
	struct epoll_event ev[EVENTS_MAX];
	int n = epoll_wait(l->ep, ev, EVENTS_MAX, l->wcount ? 0 : timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -1;
	for (int i = 0; i < n; i++) {
		struct lgr_conn *c = &l->c[ev[i].data.u32];
		if (c->state != ST_FREE) /* not dropped earlier in this turn */
			conn_event(l, c, ev[i].events);
	}
	run_writes(l);
	reap_handshakes(l, mono_ms());
	return n;
}

void lgr_loop_free(struct lgr_loop *l)
{
	if (!l)
		return;
	for (uint32_t i = 0; l->c && i < l->slots; i++) {
		if (l->c[i].fd >= 0)
			close(l->c[i].fd);
		free(l->c[i].hs);
		free(l->c[i].out);
	}
	if (l->ep >= 0)
		close(l->ep);
	free(l->c);
	free(l->wlist);
	free(l);
}
