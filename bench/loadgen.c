/*
 * tickerd-loadgen: WebSocket load generator and latency meter for tickerd and
 * the peer servers it is compared with (bench/peers/).
 *
 * This file owns the whole benchmark client: command line, symbol list, the
 * libwebsockets client context that opens N connections at a controlled ramp
 * rate, the subscribe requests and the three wire protocols it speaks
 * (--proto: tickerd's JSON, the ws peer's plain JSON, Socket.IO 4 over the
 * websocket transport), a cheap scanner for received frames, the latency
 * histogram, the optional "stalled reader" experiment, the start signal that
 * lets several processes measure one window together, and the final report
 * (human-readable or one JSON line, optionally with the raw histogram so the
 * runner can merge processes).
 *
 * Design notes
 * - Everything runs on one thread; the only other context is the SIGINT /
 *   SIGTERM handler, which just sets a flag.  A 10 ms tick drives the ramp,
 *   the phase changes and the stall schedule.
 * - Two engines move the bytes (the io_* functions choose).  The default,
 *   lg_raw.c, is our own epoll WebSocket client: at 780k updates/s the lws
 *   client spent 57 % of the tool's core in its per-byte frame parser, so the
 *   tool and not the server was the limit of every saturation row.  The lws
 *   engine (--engine lws, and wss://) is the libwebsockets client:
 * - its event loop is a libuv loop we own, handed to lws as a foreign loop
 *   (LWS_SERVER_OPTION_LIBUV, lws' evlib-uv plugin).  lws' default loop calls
 *   poll() over every socket on each turn; with ~9000 connections that
 *   kernel scan was over half of our CPU (measured with perf) and would make
 *   the load tool, not the server, the bottleneck.  libuv uses epoll.
 *   --poll keeps lws' default loop (also the fallback if the plugin is
 *   missing, and the only loop when built without LOADGEN_WITH_LIBUV).
 * - No full JSON parse on the hot path.  Update objects in tickerd frames are
 *   flat (no nested objects or arrays), so every '{' ... '}' inside the frame's
 *   outer object is one update; inside it we look for "seq": / "ts": /
 *   "symbol":".  An object cut in two by an lws rx chunk boundary is carried
 *   in a small per-connection tail buffer.  The peers send one flat update
 *   object per message (plain: the message itself; Socket.IO: the argument of
 *   42["price",{...}]), which the same scanner reads.
 * - Latency = receive time (CLOCK_REALTIME, µs) - the update's "ts".  It goes
 *   into a fixed log-linear histogram (64 sub-buckets per power of two, ~1.6 %
 *   precision, 1 µs .. ~134 s): no allocation per sample.
 * - Memory per connection: struct conn (~560 bytes incl. the tail buffer),
 *   4 bytes per subscribed symbol for the seq-gap table, plus lws' own wsi
 *   and rx buffer (RX_BUFFER_SIZE).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, getopt_long */
#endif

#include <libwebsockets.h>

#include "lg_raw.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#if defined(LOADGEN_WITH_LIBUV)
#include <uv.h>
#endif

/* ---------------------------------------------------------------- limits */

#define RX_BUFFER_SIZE 4096   /* lws per-connection rx chunk; frames arrive in pieces of at most this */
#define TAIL_MAX 512          /* longest update object we can carry across a chunk boundary */
#define SUB_MSG_MAX 4000      /* below the server's default limits.max_message_bytes (4096) */
#define SYMBOL_MAX 64
#define TICK_US 10000         /* scheduler tick: ramp granularity and phase-change precision */
#define CONNECT_GRACE_US (30 * LWS_US_PER_SEC) /* wait for slow handshakes after the last connect */
#define MAX_LOGGED_ERRORS 5   /* print only the first few connect / protocol errors */
/*
 * Handshakes in flight at once.  lws keeps every pending timeout in one
 * sorted linked list per thread and inserts by walking it from the head, so
 * thousands of simultaneous handshakes (a busy server) cost O(pending) per
 * insert: with 9000 at once the tool's loop stalled for seconds.
 */
#define MAX_INFLIGHT 256

/* ------------------------------------------------------------ histogram */

/*
 * Log-linear histogram: values 0..63 have exact buckets; above that each power
 * of two [2^e, 2^(e+1)) is split into 64 equal sub-buckets.  HIST_MAX_EXP = 27
 * covers up to 2^27 µs ≈ 134 s; larger values are clamped into the last bucket
 * (the exact maximum is tracked separately).
 */
#define HIST_SUB_BITS 6
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_EXP 27
#define HIST_BUCKETS ((HIST_MAX_EXP - HIST_SUB_BITS + 2) * HIST_SUB)

struct hist {
	uint64_t count;
	uint64_t max;
	uint64_t b[HIST_BUCKETS];
};

static unsigned hist_index(uint64_t v)
{
	if (v >= (UINT64_C(2) << HIST_MAX_EXP))
		return HIST_BUCKETS - 1;
	if (v < HIST_SUB)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v); /* e >= HIST_SUB_BITS */
	unsigned sub = (unsigned)(v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1);
	return (e - HIST_SUB_BITS + 1) * HIST_SUB + sub;
}

/* Midpoint of bucket i, used as the representative value of a percentile. */
static double hist_value(unsigned i)
{
	if (i < HIST_SUB)
		return (double)i;
	unsigned e = i / HIST_SUB + HIST_SUB_BITS - 1;
	uint64_t width = UINT64_C(1) << (e - HIST_SUB_BITS);
	uint64_t low = (uint64_t)(HIST_SUB + i % HIST_SUB) << (e - HIST_SUB_BITS);
	return (double)low + (double)(width - 1) / 2.0;
}

static void hist_record(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->count++;
	if (v > h->max)
		h->max = v;
}

static void hist_merge(struct hist *dst, const struct hist *src)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	if (src->max > dst->max)
		dst->max = src->max;
}

/* Value at quantile q (0..1) in µs; the exact max for q == 1. */
static double hist_quantile(const struct hist *h, double q)
{
	if (!h->count)
		return 0.0;
	uint64_t rank = (uint64_t)ceil(q * (double)h->count);
	if (rank < 1)
		rank = 1;
	if (rank >= h->count)
		return (double)h->max;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			double v = hist_value(i);
			return v > (double)h->max ? (double)h->max : v;
		}
	}
	return (double)h->max;
}

/* --------------------------------------------------------------- options */

enum proto { PROTO_TICKERD, PROTO_PLAIN, PROTO_SOCKETIO, PROTO_SSE };

struct options {
	char url[512];
	char host[256];       /* from --url */
	char path[256];
	int port;
	bool tls;             /* wss:// */
	uint32_t n;           /* connections */
	uint32_t k;           /* symbols per connection */
	uint32_t s;           /* symbol universe */
	double duration_s;
	double warmup_s;
	double ramp;          /* connections per second */
	const char *symbols_arg;
	const char *prefix;
	bool json;
	bool quiet;
	bool verbose;
	bool poll;            /* lws' built-in poll() loop instead of libuv */
	bool lws;             /* the lws client engine instead of lg_raw (implied by --poll) */
	double stall_fraction;
	double stall_after_s; /* relative to the start of the measurement */
	double stall_for_s;
	double connect_for_s; /* end the connect phase after this long, whatever is still pending (0: no) */
	enum proto proto;
	uint32_t first_index; /* global index of our first connection (several processes) */
	bool wait_signal;     /* after warm-up, print READY and measure only on SIGUSR1 */
	bool hist;            /* add the raw latency histograms to the JSON report */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tickerd-loadgen [options]\n"
		"  --url URL              ws://HOST:PORT/PATH or wss://HOST:PORT/PATH (default\n"
		"                         ws://127.0.0.1:8080/ws); wss accepts any certificate, self-signed\n"
		"                         included, and checks no host name: it measures, it does not trust\n"
		"  -n N                   connections to open (default 100)\n"
		"  -k K                   symbols each connection subscribes to, 0..S (default 10)\n"
		"  -s S                   size of the symbol universe (default 100; with --symbols: a cap)\n"
		"  --duration SEC         measured interval (default 10)\n"
		"  --warmup SEC           run this long after connecting before measuring (default 2)\n"
		"  --ramp PER_SEC         connection attempts per second (default 2000)\n"
		"  --symbols FILE|LIST    symbol names: a file (whitespace/comma separated, '#' comments)\n"
		"                         or a comma list; default: generated PREFIX00001-USD .. PREFIX%%05d-USD\n"
		"  --symbols-prefix G     prefix of generated names (default G)\n"
		"  --stall-fraction F     fraction 0..1 of connections that stop reading ...\n"
		"  --stall-after SEC      ... this long after the measurement starts (default 0) ...\n"
		"  --stall-for SEC        ... for this long, then read again (required with F > 0)\n"
		"  --json                 print one JSON object line instead of the human report\n"
		"  -q, --quiet            no per-second progress on stderr\n"
		"  --proto P              tickerd (default) | plain (the ws peer) | socketio (Socket.IO 4,\n"
		"                         websocket transport; URL path /socket.io/?EIO=4&transport=websocket)\n"
		"                         | sse (tickerd's Server-Sent Events: --url http://HOST:PORT/sse, each\n"
		"                         connection asks for its symbols in ?symbols=; raw engine only)\n"
		"  --first-index I        number our connections from I (symbols and stall choice follow\n"
		"                         the global index: several processes split one experiment)\n"
		"  --wait-signal          print CONNECTED on stderr when the connect phase ends, READY\n"
		"                         after the warm-up, and start measuring on SIGUSR1 (several\n"
		"                         processes measure one window)\n"
		"  --hist                 add the raw latency histograms to the JSON report\n"
		"  --connect-for SEC      end the connect phase after SEC even if connections are still\n"
		"                         pending or not attempted (a server that cannot take them all)\n"
		"  --engine E             raw (default: lg_raw, epoll, no WebSocket library) | lws (the\n"
		"                         libwebsockets client, libuv loop; 2-3x the tool's CPU per byte)\n"
		"  --poll                 the lws engine on lws' poll() loop (slower at large N)\n"
		"  -v, --verbose          let libwebsockets log warnings\n"
		"  -h, --help             this text\n"
		"Connection i subscribes to symbols (i*K + j) mod S, j = 0..K-1.\n"
		"Exit status: 0 ok, 1 more than 1%% of connections failed, 2 bad arguments.\n");
}

static bool parse_num(const char *arg, double min, double max, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(arg, &end);
	if (errno || end == arg || *end || !isfinite(v) || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool parse_count(const char *arg, double min, double max, uint32_t *out)
{
	double v;
	if (!parse_num(arg, min, max, &v) || v != floor(v))
		return false;
	*out = (uint32_t)v;
	return true;
}

/* Split ws[s]://host:port/path (http:// for --proto sse) into opt->host/port/path and opt->tls. */
static bool parse_url(struct options *o)
{
	char buf[sizeof o->url];
	const char *prot, *ads, *path;
	int port = 80;

	snprintf(buf, sizeof buf, "%s", o->url); /* the default port: 80 for ws, 443 for wss */
	if (lws_parse_uri(buf, &prot, &ads, &port, &path) || !*ads || port <= 0 || port > 65535)
		return false;
	if (o->proto == PROTO_SSE ? strcmp(prot, "http") : (strcmp(prot, "ws") && strcmp(prot, "wss")))
		return false;
	o->tls = !strcmp(prot, "wss");
	snprintf(o->host, sizeof o->host, "%s", ads);
	snprintf(o->path, sizeof o->path, "/%s", path); /* lws_parse_uri drops the leading '/' */
	o->port = port;
	return true;
}

enum {
	OPT_URL = 256, OPT_DURATION, OPT_WARMUP, OPT_RAMP, OPT_SYMBOLS, OPT_PREFIX, OPT_JSON,
	OPT_STALL_FRACTION, OPT_STALL_AFTER, OPT_STALL_FOR, OPT_POLL, OPT_PROTO, OPT_FIRST_INDEX,
	OPT_WAIT_SIGNAL, OPT_HIST, OPT_CONNECT_FOR, OPT_ENGINE,
};

static bool parse_proto(const char *arg, enum proto *out)
{
	static const char *const names[] = { "tickerd", "plain", "socketio", "sse" };
	for (int i = 0; i < 4; i++)
		if (!strcmp(arg, names[i])) {
			*out = (enum proto)i;
			return true;
		}
	return false;
}

/* Returns 0 to run, 1 for --help, -1 on a bad argument (message already printed). */
static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, OPT_URL },
		{ "duration", required_argument, NULL, OPT_DURATION },
		{ "warmup", required_argument, NULL, OPT_WARMUP },
		{ "ramp", required_argument, NULL, OPT_RAMP },
		{ "symbols", required_argument, NULL, OPT_SYMBOLS },
		{ "symbols-prefix", required_argument, NULL, OPT_PREFIX },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "stall-fraction", required_argument, NULL, OPT_STALL_FRACTION },
		{ "stall-after", required_argument, NULL, OPT_STALL_AFTER },
		{ "stall-for", required_argument, NULL, OPT_STALL_FOR },
		{ "poll", no_argument, NULL, OPT_POLL },
		{ "engine", required_argument, NULL, OPT_ENGINE },
		{ "proto", required_argument, NULL, OPT_PROTO },
		{ "first-index", required_argument, NULL, OPT_FIRST_INDEX },
		{ "wait-signal", no_argument, NULL, OPT_WAIT_SIGNAL },
		{ "hist", no_argument, NULL, OPT_HIST },
		{ "connect-for", required_argument, NULL, OPT_CONNECT_FOR },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool s_given = false, ok = true;
	int c;

	*o = (struct options){
		.url = "ws://127.0.0.1:8080/ws", .n = 100, .k = 10, .s = 100, .duration_s = 10,
		.warmup_s = 2, .ramp = 2000, .prefix = "G",
	};
	opterr = 0;
	while (ok && (c = getopt_long(argc, argv, "n:k:s:qvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': ok = parse_count(optarg, 1, 1000000, &o->n); break;
		case 'k': ok = parse_count(optarg, 0, 1000000, &o->k); break;
		case 's': ok = parse_count(optarg, 1, 1000000, &o->s); s_given = true; break;
		case OPT_URL:
			ok = strlen(optarg) < sizeof o->url;
			if (ok)
				snprintf(o->url, sizeof o->url, "%s", optarg);
			break;
		case OPT_DURATION: ok = parse_num(optarg, 0.1, 86400, &o->duration_s); break;
		case OPT_WARMUP: ok = parse_num(optarg, 0, 86400, &o->warmup_s); break;
		case OPT_RAMP: ok = parse_num(optarg, 1, 1e6, &o->ramp); break;
		case OPT_SYMBOLS: o->symbols_arg = optarg; break;
		case OPT_PREFIX: o->prefix = optarg; ok = strlen(optarg) < SYMBOL_MAX - 16; break;
		case OPT_JSON: o->json = true; break;
		case OPT_STALL_FRACTION: ok = parse_num(optarg, 0, 1, &o->stall_fraction); break;
		case OPT_STALL_AFTER: ok = parse_num(optarg, 0, 86400, &o->stall_after_s); break;
		case OPT_STALL_FOR: ok = parse_num(optarg, 0, 86400, &o->stall_for_s); break;
		case OPT_POLL: o->poll = o->lws = true; break;
		case OPT_ENGINE:
			ok = !strcmp(optarg, "raw") || !strcmp(optarg, "lws");
			o->lws = o->lws || !strcmp(optarg, "lws");
			break;
		case OPT_PROTO: ok = parse_proto(optarg, &o->proto); break;
		case OPT_FIRST_INDEX: ok = parse_count(optarg, 0, 100000000, &o->first_index); break;
		case OPT_WAIT_SIGNAL: o->wait_signal = true; break;
		case OPT_HIST: o->hist = true; break;
		case OPT_CONNECT_FOR: ok = parse_num(optarg, 0, 86400, &o->connect_for_s); break;
		case 'q': o->quiet = true; break;
		case 'v': o->verbose = true; break;
		case 'h': return 1;
		default: ok = false; break;
		}
	}
	if (!ok) {
		if (c == '?' || c == ':')
			fprintf(stderr, "tickerd-loadgen: unknown option or missing value: %s\n",
				argv[optind - 1]);
		else
			fprintf(stderr, "tickerd-loadgen: bad value for %s: %s\n", argv[optind - 2],
				optarg ? optarg : "");
		return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "tickerd-loadgen: unexpected argument: %s\n", argv[optind]);
		return -1;
	}
	if (!parse_url(o)) {
		fprintf(stderr, "tickerd-loadgen: --url must look like %s\n",
			o->proto == PROTO_SSE ? "http://HOST:PORT/PATH" : "ws://HOST:PORT/PATH or wss://...");
		return -1;
	}
	if (o->proto == PROTO_SSE && o->lws) {
		fprintf(stderr, "tickerd-loadgen: --proto sse needs the raw engine\n");
		return -1;
	}
	o->lws = o->lws || o->tls; /* lg_raw speaks no TLS */
	if (o->stall_fraction > 0 && o->stall_for_s <= 0) {
		fprintf(stderr, "tickerd-loadgen: --stall-fraction needs --stall-for SEC > 0\n");
		return -1;
	}
	if (o->symbols_arg && !s_given)
		o->s = UINT32_MAX; /* with --symbols, -s only caps the list */
	return 0;
}

/* --------------------------------------------------------------- symbols */

struct symtab {
	char **name;
	uint16_t *len;
	uint32_t n;
	uint32_t *slot;  /* open-addressing hash: index + 1, 0 = empty */
	uint32_t mask;
};

static struct symtab g_sym;

static uint32_t fnv1a(const char *s, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h;
}

/* Names go into a JSON string unescaped, so accept only plain printable ASCII. */
static bool symbol_ok(const char *s, size_t len)
{
	if (!len || len >= SYMBOL_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] <= ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\\' || s[i] == ',')
			return false;
	return true;
}

static bool sym_add(const char *s, size_t len)
{
	if (!symbol_ok(s, len)) {
		fprintf(stderr, "tickerd-loadgen: bad symbol name '%.*s'\n", (int)len, s);
		return false;
	}
	char **nn = realloc(g_sym.name, (g_sym.n + 1) * sizeof *nn);
	uint16_t *nl = realloc(g_sym.len, (g_sym.n + 1) * sizeof *nl);
	if (nn)
		g_sym.name = nn;
	if (nl)
		g_sym.len = nl;
	if (!nn || !nl || !(g_sym.name[g_sym.n] = strndup(s, len)))
		return false;
	g_sym.len[g_sym.n++] = (uint16_t)len;
	return true;
}

/* Splits text on whitespace and commas; '#' starts a comment up to the end of line. */
static bool sym_add_text(const char *p, uint32_t cap)
{
	while (*p && g_sym.n < cap) {
		if (*p == '#') {
			while (*p && *p != '\n')
				p++;
			continue;
		}
		if (*p == ',' || *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
			p++;
			continue;
		}
		size_t len = strcspn(p, ", \t\r\n#");
		if (!sym_add(p, len))
			return false;
		p += len;
	}
	return true;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	while (buf) {
		len += fread(buf + len, 1, cap - len - 1, f);
		if (len < cap - 1)
			break;
		char *nb = realloc(buf, cap *= 2);
		if (!nb)
			free(buf);
		buf = nb;
	}
	if (buf)
		buf[len] = '\0';
	fclose(f);
	return buf;
}

static bool sym_index(void)
{
	uint32_t size = 16;
	while (size < 2 * g_sym.n)
		size <<= 1;
	g_sym.slot = calloc(size, sizeof *g_sym.slot);
	if (!g_sym.slot)
		return false;
	g_sym.mask = size - 1;
	for (uint32_t i = 0; i < g_sym.n; i++) {
		uint32_t h = fnv1a(g_sym.name[i], g_sym.len[i]) & g_sym.mask;
		while (g_sym.slot[h])
			h = (h + 1) & g_sym.mask;
		g_sym.slot[h] = i + 1;
	}
	return true;
}

/* Index of a symbol name, or -1 if it is not in our universe. */
static int64_t sym_lookup(const char *s, size_t len)
{
	uint32_t h = fnv1a(s, len) & g_sym.mask;
	for (uint32_t v; (v = g_sym.slot[h]); h = (h + 1) & g_sym.mask)
		if (g_sym.len[v - 1] == len && !memcmp(g_sym.name[v - 1], s, len))
			return v - 1;
	return -1;
}

/*
 * Symbols from --symbols (a file if one exists by that name, else a comma
 * list; -s caps the count), or generated PREFIX%05d-USD names as the server's
 * sim feed makes with generated_symbols = S.
 */
static bool load_symbols(struct options *o)
{
	if (o->symbols_arg) {
		char *text = read_file(o->symbols_arg);
		bool ok = sym_add_text(text ? text : o->symbols_arg, o->s);
		free(text);
		if (!ok)
			return false;
		if (!g_sym.n) {
			fprintf(stderr, "tickerd-loadgen: --symbols gave no names\n");
			return false;
		}
		o->s = g_sym.n;
	} else {
		char name[SYMBOL_MAX];
		for (uint32_t i = 1; i <= o->s; i++) {
			int len = snprintf(name, sizeof name, "%s%05u-USD", o->prefix, i);
			if (!sym_add(name, (size_t)len))
				return false;
		}
	}
	if (o->k > o->s) {
		fprintf(stderr, "tickerd-loadgen: -k %u exceeds the %u symbols available\n", o->k, o->s);
		return false;
	}
	if (!sym_index()) {
		fprintf(stderr, "tickerd-loadgen: out of memory\n");
		return false;
	}
	return true;
}

/* ------------------------------------------------------------- run state */

enum conn_state { CS_IDLE, CS_CONNECTING, CS_OPEN, CS_CLOSED, CS_FAILED };
enum msg_kind {
	MK_NONE, MK_UPDATE, MK_SNAPSHOT, MK_ACK, MK_ERROR, MK_OTHER,
	MK_EIO_OPEN, MK_EIO_PING, MK_SIO_CONNECT, MK_IGNORED, /* Socket.IO / Engine.IO packets */
};
/* Control messages a Socket.IO connection owes the server (struct conn .out bits). */
enum { OUT_SIO_CONNECT = 1, OUT_PONG = 2 };
enum phase { PH_CONNECT, PH_WARMUP, PH_MEASURE, PH_DONE };

struct conn {
	struct lws *wsi;
	uint32_t *last_seq;  /* per subscribed symbol: last seq + 1, 0 = none yet; NULL if no memory */
	uint32_t idx;
	uint32_t sub_next;   /* next of our K symbols to put in a subscribe request */
	uint16_t subs_sent;  /* subscribe requests sent (ids 1..subs_sent) */
	uint16_t acks;
	uint16_t close_code; /* from the server's close frame; 1006 if none */
	uint16_t tail_len;
	uint8_t state;
	uint8_t kind;        /* kind of the message being received, MK_NONE between messages */
	bool in_obj;         /* an update object started in an earlier chunk (its start is in tail) */
	bool skip_obj;       /* that object did not fit in tail: drop it up to its '}' */
	bool stall;          /* chosen for the stall experiment */
	bool stall_closed;   /* closed by the server after its stall began */
	bool can_subscribe;  /* the protocol's handshake is done (Socket.IO: "40" answered) */
	uint8_t out;         /* OUT_* control messages due */
	char tail[TAIL_MAX];
};

/* Monotonic counters; the measured window is the difference of two copies. */
struct counters {
	uint64_t bytes, frames, update_frames, snapshot_frames, updates, snapshot_updates;
	uint64_t acks, errors, unparsed, seq_skipped, seq_backwards;
};

static struct {
	struct options o;
	struct lws_context *ctx;
#if defined(LOADGEN_WITH_LIBUV)
	uv_loop_t loop;
#endif
	bool use_uv;
	struct lgr_loop *raw; /* the raw engine; NULL with the lws engine */
	struct conn *conns;
	lws_sorted_usec_list_t tick;
	enum phase phase;
	bool done;
	lws_usec_t t_start, t_phase, t_last_connect, t_measure_start, measured_us, t_next_progress;
	double cpu_at_measure, cpu_measured; /* our own CPU seconds: was the tool the bottleneck? */
	uint32_t started, established, connect_errors, closed, subscribed, stalled_n;
	uint32_t closed_1001, closed_1008, closed_1013, closed_other, closed_stalled;
	int stall_state; /* 0 before, 1 stalled, 2 resumed */
	bool said_ready; /* --wait-signal: READY printed */
	unsigned logged_errors;
	struct counters tot, at_measure, at_end, at_progress;
	struct hist lat_ok, lat_stalled; /* measured window only; by the connection's stall flag */
} g;

static volatile sig_atomic_t g_interrupted, g_go;

static void on_sigint(int sig)
{
	(void)sig;
	g_interrupted = 1;
}

static void on_sigusr1(int sig)
{
	(void)sig;
	g_go = 1;
}

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int64_t realtime_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool conn_subscribed(const struct conn *c)
{
	return c->can_subscribe && c->sub_next == g.o.k && c->acks >= c->subs_sent;
}

/* ----------------------------------------------------- frame scanning */

static const char *find(const char *p, size_t len, const char *needle, size_t nlen)
{
	return memmem(p, len, needle, nlen);
}

static uint64_t parse_uint(const char *p, const char *end, bool *ok)
{
	uint64_t v = 0;
	while (p < end && *p == ' ')
		p++;
	*ok = p < end && *p >= '0' && *p <= '9';
	while (p < end && *p >= '0' && *p <= '9')
		v = v * 10 + (uint64_t)(*p++ - '0');
	return v;
}

/*
 * Seq bookkeeping for one (connection, symbol): connection i subscribed to
 * symbols (i*K + j) mod S, so a symbol's slot j follows from its index.
 */
static void track_seq(struct conn *c, const char *obj, size_t len, uint64_t seq)
{
	static const char key[] = "\"symbol\":\"";
	const char *s = find(obj, len, key, sizeof key - 1);
	if (!s)
		return;
	s += sizeof key - 1;
	const char *e = memchr(s, '"', len - (size_t)(s - obj));
	if (!e)
		return;
	int64_t gi = sym_lookup(s, (size_t)(e - s));
	if (gi < 0)
		return;
	uint64_t S = g.o.s, base = (uint64_t)c->idx * g.o.k % S;
	uint64_t j = ((uint64_t)gi + S - base) % S;
	if (j >= g.o.k)
		return;

	uint32_t cur = (uint32_t)seq + 1, last = c->last_seq[j];
	c->last_seq[j] = cur;
	if (!last || c->kind != MK_UPDATE)
		return; /* a snapshot only sets the baseline */
	uint32_t d = cur - last; /* modular: wrap-safe */
	if (d > UINT32_C(0x80000000))
		g.tot.seq_backwards++;
	else if (d > 1)
		g.tot.seq_skipped += d - 1;
}

/* One complete update object {...} of an update or snapshot frame. */
static void handle_object(struct conn *c, const char *obj, size_t len, int64_t now_us)
{
	const char *end = obj + len, *ps = find(obj, len, "\"seq\":", 6),
		   *pt = find(obj, len, "\"ts\":", 5);
	bool ok_s, ok_t;
	if (!ps || !pt) {
		g.tot.unparsed++;
		return;
	}
	uint64_t seq = parse_uint(ps + 6, end, &ok_s);
	int64_t ts = (int64_t)parse_uint(pt + 5, end, &ok_t);
	if (!ok_s || !ok_t) {
		g.tot.unparsed++;
		return;
	}
	if (c->kind == MK_UPDATE) {
		g.tot.updates++;
		/* only update frames carry fresh values; a snapshot's ts may be old */
		if (g.phase == PH_MEASURE) {
			int64_t lat = now_us - ts;
			hist_record(c->stall ? &g.lat_stalled : &g.lat_ok, lat > 0 ? (uint64_t)lat : 0);
		}
	} else {
		g.tot.snapshot_updates++;
	}
	if (c->last_seq)
		track_seq(c, obj, len, seq);
}

/* Keep the start of an unfinished object for the next chunk, or give up on it. */
static void carry_tail(struct conn *c, const char *p, size_t len)
{
	c->in_obj = true;
	if (c->skip_obj)
		return;
	if ((size_t)c->tail_len + len > TAIL_MAX) {
		c->skip_obj = true;
		g.tot.unparsed++;
		return;
	}
	memcpy(c->tail + c->tail_len, p, len);
	c->tail_len = (uint16_t)(c->tail_len + len);
}

/* Every '{'...'}' inside the frame's outer object is one flat update object. */
static void scan_objects(struct conn *c, const char *p, const char *end, int64_t now_us)
{
	if (c->in_obj) {
		const char *q = memchr(p, '}', (size_t)(end - p));
		if (!q) {
			carry_tail(c, p, (size_t)(end - p));
			return;
		}
		carry_tail(c, p, (size_t)(q + 1 - p));
		if (!c->skip_obj)
			handle_object(c, c->tail, c->tail_len, now_us);
		c->in_obj = c->skip_obj = false;
		c->tail_len = 0;
		p = q + 1;
	}
	for (;;) {
		const char *o = memchr(p, '{', (size_t)(end - p));
		if (!o)
			return;
		const char *q = memchr(o, '}', (size_t)(end - o));
		if (!q) {
			carry_tail(c, o, (size_t)(end - o));
			return;
		}
		handle_object(c, o, (size_t)(q + 1 - o), now_us);
		p = q + 1;
	}
}

/*
 * tickerd: the kind from "op" (it comes first in tickerd frames); the update
 * objects of an update or snapshot start after the frame's own outer '{'.
 */
static enum msg_kind classify_tickerd(const char *p, size_t len, size_t *scan_from)
{
	static const struct { const char *v; enum msg_kind k; } ops[] = {
		{ "update\"", MK_UPDATE }, { "snapshot\"", MK_SNAPSHOT },
		{ "ack\"", MK_ACK }, { "error\"", MK_ERROR },
	};
	const char *op = find(p, len, "\"op\":\"", 6);
	if (!op)
		return MK_OTHER;
	op += 6;
	size_t left = len - (size_t)(op - p);
	for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
		size_t l = strlen(ops[i].v);
		if (left >= l && !memcmp(op, ops[i].v, l)) {
			const char *o = memchr(p, '{', len);
			*scan_from = o ? (size_t)(o + 1 - p) : len;
			return ops[i].k;
		}
	}
	return MK_OTHER;
}

/* The ws peer: replies carry "op" like tickerd's; any other message is one flat update object. */
static enum msg_kind classify_plain(const char *p, size_t len, size_t *scan_from)
{
	if (len >= 6 && !memcmp(p, "{\"op\":", 6))
		return classify_tickerd(p, len, scan_from);
	*scan_from = 0;
	return MK_UPDATE;
}

/*
 * Socket.IO 4 over Engine.IO 4, one Engine.IO packet per WebSocket message:
 * "0{...}" open, "2" ping, "4" + a Socket.IO packet: "40{...}" connected,
 * "42[...]" event, "43<id>[...]" acknowledgement, "44{...}" connect error.
 */
static enum msg_kind classify_socketio(const char *p, size_t len, size_t *scan_from)
{
	/* The Node peer emits "price" with one flat update object; tickerd's
	 * /socket.io/ emits "update" / "snapshot" carrying the native frame,
	 * whose update objects start after its own outer '{'. */
	static const struct { const char *v; enum msg_kind k; bool wrapped; } events[] = {
		{ "42[\"price\",", MK_UPDATE, false },
		{ "42[\"update\",", MK_UPDATE, true },
		{ "42[\"snapshot\",", MK_SNAPSHOT, true },
	};
	if (!len)
		return MK_OTHER;
	if (p[0] == '0')
		return MK_EIO_OPEN;
	if (p[0] == '2')
		return MK_EIO_PING;
	if (p[0] != '4' || len < 2)
		return p[0] == '4' ? MK_OTHER : MK_IGNORED; /* 1 close, 3 pong, 6 noop */
	switch (p[1]) {
	case '0': return MK_SIO_CONNECT;
	case '3': return MK_ACK;
	case '4': return MK_ERROR;
	case '2':
		for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
			size_t l = strlen(events[i].v);
			if (len < l || memcmp(p, events[i].v, l))
				continue;
			const char *o = events[i].wrapped ? memchr(p + l, '{', len - l) : NULL;
			*scan_from = !events[i].wrapped ? l : o ? (size_t)(o + 1 - p) : len;
			return events[i].k;
		}
		return MK_IGNORED; /* another event */
	default: return MK_IGNORED; /* 41 disconnect, binary events */
	}
}

/* Kind of message from its first chunk; *scan_from: where its update objects start. */
static enum msg_kind classify(const char *p, size_t len, size_t *scan_from)
{
	*scan_from = len;
	switch (g.o.proto) {
	case PROTO_PLAIN: return classify_plain(p, len, scan_from);
	case PROTO_SOCKETIO: return classify_socketio(p, len, scan_from);
	default: return classify_tickerd(p, len, scan_from); /* SSE: its data lines are tickerd frames */
	}
}

/* Returns the offset of the first update object (len if none). */
static size_t on_message_start(struct conn *c, const char *p, size_t len)
{
	size_t from;
	c->kind = (uint8_t)classify(p, len, &from);
	c->in_obj = c->skip_obj = false;
	c->tail_len = 0;
	if (c->kind == MK_ERROR) {
		g.tot.errors++;
		if (g.logged_errors++ < MAX_LOGGED_ERRORS)
			fprintf(stderr, "tickerd-loadgen: conn %u: server error: %.*s\n", c->idx,
				(int)(len > 300 ? 300 : len), p);
	} else if (c->kind == MK_OTHER) {
		g.tot.unparsed++;
	}
	return from;
}

static void start_subscribing(struct conn *c);

/* ---------------------------------------------- the engine's three verbs */

static uint32_t conn_slot(const struct conn *c)
{
	return (uint32_t)(c - g.conns);
}

/* One writeable callback for c, soon. */
static void io_want_write(struct conn *c)
{
	if (g.raw)
		lgr_want_write(g.raw, conn_slot(c));
	else if (c->wsi)
		lws_callback_on_writable(c->wsi);
}

/* Stop or resume reading c (the stall experiment). */
static void io_rx_flow(struct conn *c, bool enable)
{
	if (g.raw)
		lgr_rx_pause(g.raw, conn_slot(c), !enable);
	else if (c->wsi)
		lws_rx_flow_control(c->wsi, enable);
}

static void queue_out(struct conn *c, uint8_t what)
{
	c->out |= what;
	io_want_write(c);
}

static void on_message_end(struct conn *c)
{
	g.tot.frames++;
	switch (c->kind) {
	case MK_UPDATE: g.tot.update_frames++; break;
	case MK_SNAPSHOT: g.tot.snapshot_frames++; break;
	case MK_EIO_OPEN: queue_out(c, OUT_SIO_CONNECT); break;
	case MK_EIO_PING: queue_out(c, OUT_PONG); break;
	case MK_SIO_CONNECT: start_subscribing(c); break;
	case MK_ACK:
		g.tot.acks++;
		c->acks++;
		if (c->acks == c->subs_sent && conn_subscribed(c))
			g.subscribed++; /* every subscribe request acked */
		break;
	default: break;
	}
	c->kind = MK_NONE;
}

static void on_receive(struct conn *c, const char *in, size_t len, bool final)
{
	int64_t now_us = realtime_us(); /* one clock read per chunk */
	const char *p = in, *end = in + len;

	g.tot.bytes += len;
	if (c->kind == MK_NONE)
		p += on_message_start(c, in, len);
	if (c->kind == MK_UPDATE || c->kind == MK_SNAPSHOT)
		scan_objects(c, p, end, now_us);
	if (final)
		on_message_end(c);
}

/* ---------------------------------------------------------- subscribing */

/*
 * Next subscribe request for c into out; advances c->sub_next.  tickerd and
 * the ws peer: {"op":"subscribe","symbols":[...],"id":N}; Socket.IO: an event
 * with acknowledgement id N, 42N["subscribe",[...]].
 */
static size_t build_subscribe(struct conn *c, char *out, size_t cap)
{
	uint64_t base = (uint64_t)c->idx * g.o.k % g.o.s;
	unsigned id = ++c->subs_sent;
	bool sio = g.o.proto == PROTO_SOCKETIO, first = true;
	size_t len = sio ? (size_t)snprintf(out, cap, "42%u[\"subscribe\",[", id)
			 : (size_t)snprintf(out, cap, "{\"op\":\"subscribe\",\"symbols\":[");

	while (c->sub_next < g.o.k) {
		uint32_t si = (uint32_t)((base + c->sub_next) % g.o.s);
		size_t nl = g_sym.len[si];
		if (len + nl + 4 + 32 > cap) /* 32: room for the closing "],"id":N}" */
			break;
		if (!first)
			out[len++] = ',';
		out[len++] = '"';
		memcpy(out + len, g_sym.name[si], nl);
		len += nl;
		out[len++] = '"';
		first = false;
		c->sub_next++;
	}
	len += sio ? (size_t)snprintf(out + len, cap - len, "]]")
		   : (size_t)snprintf(out + len, cap - len, "],\"id\":%u}", id);
	return len;
}

/* Socket.IO control messages: "40" (connect to the main namespace) and "3" (pong). */
static size_t build_control(struct conn *c, char *out)
{
	if (c->out & OUT_SIO_CONNECT) {
		c->out &= (uint8_t)~OUT_SIO_CONNECT;
		memcpy(out, "40", 2);
		return 2;
	}
	c->out &= (uint8_t)~OUT_PONG;
	out[0] = '3';
	return 1;
}

static bool subscribe_due(const struct conn *c)
{
	return c->can_subscribe && c->sub_next < g.o.k;
}

/*
 * One message per writeable callback (see lws notes): control first, then
 * subscribe requests; asks for the next callback while more are due.
 */
static size_t next_message(struct conn *c, char *text, size_t cap)
{
	size_t len = 0;
	if (c->out)
		len = build_control(c, text);
	else if (subscribe_due(c))
		len = build_subscribe(c, text, cap < SUB_MSG_MAX ? cap : SUB_MSG_MAX);
	if (c->out || subscribe_due(c))
		io_want_write(c);
	return len;
}

static int on_writeable(struct conn *c, struct lws *wsi)
{
	static unsigned char buf[LWS_PRE + SUB_MSG_MAX];
	size_t len = next_message(c, (char *)buf + LWS_PRE, SUB_MSG_MAX);
	return len && lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_TEXT) < (int)len ? -1 : 0;
}

/* The protocol's handshake is done: send the subscribe requests (K = 0: none needed). */
static void start_subscribing(struct conn *c)
{
	c->can_subscribe = true;
	if (!g.o.k)
		g.subscribed++;
	else
		io_want_write(c);
}

/* ----------------------------------------------------- connection events */

static void on_connect_error(struct conn *c, const char *why)
{
	if (c->state != CS_CONNECTING)
		return;
	c->state = CS_FAILED;
	c->wsi = NULL;
	g.connect_errors++;
	if (g.logged_errors++ < MAX_LOGGED_ERRORS)
		fprintf(stderr, "tickerd-loadgen: conn %u: connect error: %s\n", c->idx,
			why ? why : "(unknown)");
}

static void on_established(struct conn *c, struct lws *wsi)
{
	c->state = CS_OPEN;
	c->wsi = wsi;
	g.established++;
	/* 4 bytes per subscribed symbol; without them we just skip gap counting */
	if (g.o.k)
		c->last_seq = calloc(g.o.k, sizeof *c->last_seq);
	if (c->stall && g.stall_state == 1)
		io_rx_flow(c, false);
	if (g.o.proto == PROTO_SSE) {
		c->can_subscribe = true; /* the request's ?symbols= was the subscription */
		c->sub_next = g.o.k;
		g.subscribed++;
	} else if (g.o.proto != PROTO_SOCKETIO) {
		start_subscribing(c); /* Socket.IO: after the open packet and "40" */
	}
}

static void on_closed(struct conn *c)
{
	if (g.phase == PH_DONE || c->state != CS_OPEN)
		return; /* our own shutdown, not the server's doing */
	c->state = CS_CLOSED;
	c->wsi = NULL;
	if (!c->close_code)
		c->close_code = 1006; /* no close frame: abnormal closure */
	g.closed++;
	if (c->stall && g.stall_state) {
		c->stall_closed = true;
		g.closed_stalled++;
	}
	switch (c->close_code) {
	case 1001: g.closed_1001++; break;
	case 1008: g.closed_1008++; break;
	case 1013: g.closed_1013++; break;
	default: g.closed_other++; break;
	}
}

static void on_peer_close(struct conn *c, uint16_t code)
{
	c->close_code = code;
}

/* ------------------------------------------------------ the lws engine */

/*
 * lws 4.1.6 (lib/roles/ws/client-parser-ws.c) rewrites a received close code
 * of 1012..1015 (and other codes it deems reserved) to 1002 before this
 * callback, so tickerd's 1013 "server full" arrives here as 1002.  We never
 * provoke a protocol error (the real 1002), so count it as 1013.
 */
static void lws_peer_close(struct conn *c, const void *in, size_t len)
{
	const uint8_t *p = in;
	if (len < 2)
		return;
	uint16_t code = (uint16_t)(p[0] << 8 | p[1]);
	on_peer_close(c, code == 1002 ? 1013 : code);
}

static int lg_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		       size_t len)
{
	struct conn *c = wsi ? lws_get_opaque_user_data(wsi) : NULL;

	if (c) {
		switch (reason) {
		case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
			on_connect_error(c, in);
			break;
		case LWS_CALLBACK_CLIENT_ESTABLISHED:
			on_established(c, wsi);
			break;
		case LWS_CALLBACK_CLIENT_RECEIVE:
			on_receive(c, in, len, lws_is_final_fragment(wsi));
			break;
		case LWS_CALLBACK_CLIENT_WRITEABLE:
			if (on_writeable(c, wsi))
				return -1;
			break;
		case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
			lws_peer_close(c, in, len);
			break;
		case LWS_CALLBACK_CLIENT_CLOSED:
			on_closed(c);
			break;
		case LWS_CALLBACK_WSI_DESTROY:
			/*
			 * The catch-all: a connection the server dropped at
			 * accept can go away without CONNECTION_ERROR, and
			 * would otherwise hold an in-flight slot for good.
			 */
			if (g.phase != PH_DONE)
				on_connect_error(c, "closed before established");
			on_closed(c);
			break;
		default:
			break;
		}
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols g_protocols[] = {
	{ .name = "tickerd-loadgen", .callback = lg_callback, .rx_buffer_size = RX_BUFFER_SIZE },
	{ .name = NULL },
};

/* ------------------------------------------------------ the raw engine */

/* SSE: the URL's path plus ?symbols= (or &symbols=) with the connection's K symbols. */
static void sse_path(const struct conn *c, char *out, size_t cap)
{
	uint64_t base = (uint64_t)c->idx * g.o.k % g.o.s;
	size_t len = (size_t)snprintf(out, cap, "%s%csymbols=", g.o.path,
				      strchr(g.o.path, '?') ? '&' : '?');
	for (uint32_t j = 0; j < g.o.k && len < cap; j++) {
		uint32_t si = (uint32_t)((base + j) % g.o.s);
		len += (size_t)snprintf(out + len, cap - len, "%s%s", j ? "," : "", g_sym.name[si]);
	}
}

static void raw_established(void *user)
{
	on_established(user, NULL);
}

static void raw_receive(void *user, const char *p, size_t len, bool final)
{
	on_receive(user, p, len, final);
}

static size_t raw_writeable(void *user, char *buf, size_t cap)
{
	return next_message(user, buf, cap);
}

static void raw_peer_close(void *user, uint16_t code)
{
	on_peer_close(user, code);
}

static void raw_closed(void *user)
{
	on_closed(user);
}

static void raw_connect_error(void *user, const char *why)
{
	on_connect_error(user, why);
}

static const struct lgr_events g_raw_events = {
	.established = raw_established,
	.receive = raw_receive,
	.writeable = raw_writeable,
	.peer_close = raw_peer_close,
	.closed = raw_closed,
	.connect_error = raw_connect_error,
};

static void connect_one(struct conn *c)
{
	static char host_hdr[300];

	if (g.raw) {
		char path[1024];
		c->state = CS_CONNECTING;
		g.started++;
		if (g.o.proto == PROTO_SSE)
			sse_path(c, path, sizeof path);
		/* a failure has called on_connect_error */
		lgr_connect(g.raw, conn_slot(c), g.o.proto == PROTO_SSE ? path : g.o.path, c);
		return;
	}
	struct lws_client_connect_info i;

	snprintf(host_hdr, sizeof host_hdr, "%s:%d", g.o.host, g.o.port);
	memset(&i, 0, sizeof i);
	i.context = g.ctx;
	i.address = g.o.host;
	i.port = g.o.port;
	i.path = g.o.path;
	i.host = host_hdr;
	i.origin = host_hdr;
	i.protocol = NULL; /* no subprotocol: the server's default JSON encoding */
	i.local_protocol_name = g_protocols[0].name;
	i.opaque_user_data = c;
	i.pwsi = &c->wsi;
	/* A load tool measures the server: a test certificate is fine. */
	if (g.o.tls)
		i.ssl_connection = LCCSCF_USE_SSL | LCCSCF_ALLOW_SELFSIGNED |
				   LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK | LCCSCF_ALLOW_EXPIRED |
				   LCCSCF_ALLOW_INSECURE;

	c->state = CS_CONNECTING;
	g.started++;
	/* an immediate failure may or may not have gone through CONNECTION_ERROR */
	if (!lws_client_connect_via_info(&i) && c->state == CS_CONNECTING)
		on_connect_error(c, "lws_client_connect_via_info failed");
}

/* ------------------------------------------------------ phases and tick */

static const char *phase_name(enum phase p)
{
	static const char *const names[] = { "connect", "warmup", "measure", "done" };
	return names[p];
}

static void set_phase(enum phase p, lws_usec_t now)
{
	if (p == PH_MEASURE) {
		g.at_measure = g.tot;
		g.t_measure_start = now;
		g.cpu_at_measure = cpu_seconds();
	} else if (p == PH_DONE) {
		if (g.phase == PH_MEASURE) {
			g.measured_us = now - g.t_measure_start;
			g.cpu_measured = cpu_seconds() - g.cpu_at_measure;
		} else {
			g.at_measure = g.tot; /* stopped before measuring: an empty window */
			g.measured_us = 0;
		}
		g.at_end = g.tot;
		g.done = true;
#if defined(LOADGEN_WITH_LIBUV)
		if (g.use_uv)
			uv_stop(&g.loop); /* lws itself is shut down after the loop returns */
#endif
	}
	g.phase = p;
	g.t_phase = now;
}

/* Start as many connections as the ramp rate and MAX_INFLIGHT allow by now. */
static void ramp(lws_usec_t now)
{
	double due = (double)(now - g.t_start) * g.o.ramp / 1e6 + 1;
	uint32_t target = due >= g.o.n ? g.o.n : (uint32_t)due;
	while (g.started < target &&
	       g.started - g.established - g.connect_errors < MAX_INFLIGHT) {
		connect_one(&g.conns[g.started]);
		g.t_last_connect = now;
	}
}

static void stall_apply(int enable)
{
	for (uint32_t i = 0; i < g.o.n; i++) {
		struct conn *c = &g.conns[i];
		if (c->stall && c->state == CS_OPEN)
			io_rx_flow(c, enable);
	}
}

/* The stall window is relative to the start of the measurement. */
static void stall_control(lws_usec_t now)
{
	lws_usec_t since = now - g.t_phase;
	if (!g.stalled_n)
		return;
	if (g.stall_state == 0 && since >= (lws_usec_t)(g.o.stall_after_s * 1e6)) {
		stall_apply(0);
		g.stall_state = 1;
	} else if (g.stall_state == 1 &&
		   since >= (lws_usec_t)((g.o.stall_after_s + g.o.stall_for_s) * 1e6)) {
		stall_apply(1);
		g.stall_state = 2;
	}
}

static void progress(lws_usec_t now)
{
	if (g.o.quiet || now < g.t_next_progress)
		return;
	double dt = (double)(now - g.t_next_progress + LWS_US_PER_SEC) / 1e6;
	struct counters d = g.tot, p = g.at_progress;
	fprintf(stderr,
		"[%6.1fs %-7s] open %u/%u err %u closed %u subscribed %u | %.0f upd/s %.0f fr/s "
		"%.2f MB/s%s\n",
		(double)(now - g.t_start) / 1e6, phase_name(g.phase),
		g.established - g.closed, g.o.n, g.connect_errors, g.closed, g.subscribed,
		(double)(d.updates - p.updates) / dt, (double)(d.frames - p.frames) / dt,
		(double)(d.bytes - p.bytes) / dt / 1e6, g.stall_state == 1 ? " [stalling]" : "");
	g.at_progress = g.tot;
	g.t_next_progress = now + LWS_US_PER_SEC;
}

/*
 * With --wait-signal the warm-up ends only on SIGUSR1: the runner starts
 * several load processes' measurements together once each said READY.
 */
static void say_phase(const char *word)
{
	if (!g.o.wait_signal)
		return;
	fprintf(stderr, "%s\n", word);
	fflush(stderr);
}

static bool start_signalled(void)
{
	if (!g.o.wait_signal)
		return true;
	if (!g.said_ready) {
		say_phase("READY");
		g.said_ready = true;
	}
	return g_go;
}

/*
 * Every connection attempted and settled (or the last attempt 30 s ago), or
 * --connect-for elapsed: then the rest (not attempted, or still pending) are
 * abandoned and count as failed.
 */
static bool connect_phase_over(lws_usec_t now)
{
	if (g.o.connect_for_s > 0 && now - g.t_start >= (lws_usec_t)(g.o.connect_for_s * 1e6))
		return true;
	return g.started == g.o.n && (g.established + g.connect_errors == g.o.n ||
				      now - g.t_last_connect > CONNECT_GRACE_US);
}

/* Every TICK_US, whichever engine runs. */
static void tick_step(lws_usec_t now)
{
	if (g_interrupted) {
		set_phase(PH_DONE, now); /* report whatever was measured so far */
		return;
	}
	switch (g.phase) {
	case PH_CONNECT:
		ramp(now);
		if (connect_phase_over(now)) {
			set_phase(PH_WARMUP, now);
			say_phase("CONNECTED");
		}
		break;
	case PH_WARMUP:
		if (now - g.t_phase >= (lws_usec_t)(g.o.warmup_s * 1e6) && start_signalled())
			set_phase(PH_MEASURE, now);
		break;
	case PH_MEASURE:
		stall_control(now);
		if (now - g.t_phase >= (lws_usec_t)(g.o.duration_s * 1e6))
			set_phase(PH_DONE, now);
		break;
	case PH_DONE:
		break;
	}
	progress(now);
}

static void tick(lws_sorted_usec_list_t *sul)
{
	(void)sul;
	tick_step(lws_now_usecs());
	if (g.phase != PH_DONE)
		lws_sul_schedule(g.ctx, 0, &g.tick, tick, TICK_US);
}

/* The raw engine's loop: socket events until the next tick is due. */
static void run_raw(void)
{
	lws_usec_t next = lws_now_usecs();
	while (!g.done) {
		lws_usec_t now = lws_now_usecs();
		if (now >= next) {
			tick_step(now);
			next = now + TICK_US;
			continue;
		}
		if (lgr_run(g.raw, (int)((next - now + 999) / 1000)) < 0) {
			fprintf(stderr, "tickerd-loadgen: epoll_wait: %s\n", strerror(errno));
			set_phase(PH_DONE, now);
		}
	}
}

/* --------------------------------------------------------------- report */

struct report {
	double duration_s;
	uint32_t failed, open_at_end;
	struct counters m; /* measured window */
	struct hist all;
};

/*
 * A connection failed if it never got established, if its subscription was
 * not acknowledged, or if the server closed it during the run — except a
 * deliberately stalled connection closed after its stall began: that is the
 * server's stall timeout doing its job.  (Such a close rarely arrives as
 * 1008: the close frame queues behind the data the peer is not reading, so
 * we usually see the TCP reset, 1006, once we read again.)
 */
static void summarize(struct report *r)
{
	memset(r, 0, sizeof *r);
	for (uint32_t i = 0; i < g.o.n; i++) {
		const struct conn *c = &g.conns[i];
		if (c->state == CS_OPEN)
			r->open_at_end++;
		if (c->state == CS_OPEN ? !conn_subscribed(c) : !c->stall_closed)
			r->failed++;
	}
	const uint64_t *a = (const uint64_t *)&g.at_end, *b = (const uint64_t *)&g.at_measure;
	uint64_t *m = (uint64_t *)&r->m;
	for (size_t i = 0; i < sizeof r->m / sizeof(uint64_t); i++)
		m[i] = a[i] - b[i];
	hist_merge(&r->all, &g.lat_ok);
	hist_merge(&r->all, &g.lat_stalled);
	r->duration_s = (double)g.measured_us / 1e6;
}

static double per_s(uint64_t v, double s)
{
	return s > 0 ? (double)v / s : 0.0;
}

static double ms(double us)
{
	return us / 1000.0;
}

/* {"max_us":M,"b":[[bucket,count],...]}: non-empty buckets, for merging processes. */
static void print_hist_json(const char *key, const struct hist *h)
{
	bool first = true;
	printf(",\"%s\":{\"max_us\":%llu,\"b\":[", key, (unsigned long long)h->max);
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		if (!h->b[i])
			continue;
		printf("%s[%u,%llu]", first ? "" : ",", i, (unsigned long long)h->b[i]);
		first = false;
	}
	printf("]}");
}

static void print_json(const struct report *r)
{
	const struct counters *m = &r->m;
	double d = r->duration_s;
	printf("{\"requested\":%u,\"connected\":%u,\"connect_errors\":%u,\"closed\":%u,"
	       "\"failed\":%u,\"subscribed\":%u,\"updates_per_s\":%.1f,\"frames_per_s\":%.1f,"
	       "\"updates_per_frame\":%.3f,\"bytes_per_s\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
	       "\"p999_ms\":%.3f,\"max_ms\":%.3f,\"samples\":%llu,\"seq_skipped\":%llu,"
	       "\"seq_backwards\":%llu,\"server_errors\":%llu,\"duration_s\":%.3f,"
	       "\"loadgen_cpu\":%.3f,\"in_flight\":%u,\"interrupted\":%s",
	       g.o.n, g.established, g.connect_errors, g.closed, r->failed, g.subscribed,
	       per_s(m->updates, d), per_s(m->frames, d),
	       m->update_frames ? (double)m->updates / (double)m->update_frames : 0.0,
	       per_s(m->bytes, d), ms(hist_quantile(&r->all, 0.50)),
	       ms(hist_quantile(&r->all, 0.99)), ms(hist_quantile(&r->all, 0.999)),
	       ms((double)r->all.max), (unsigned long long)r->all.count,
	       (unsigned long long)m->seq_skipped, (unsigned long long)m->seq_backwards,
	       (unsigned long long)g.tot.errors, d, d > 0 ? g.cpu_measured / d : 0.0,
	       g.started - g.established - g.connect_errors, g_interrupted ? "true" : "false");
	if (g.stalled_n) {
		const struct hist *h[2] = { &g.lat_ok, &g.lat_stalled };
		const char *pre[2] = { "nonstalled_", "stalled_" };
		printf(",\"stalled_connections\":%u,\"stalled_closed\":%u", g.stalled_n,
		       g.closed_stalled);
		for (int i = 0; i < 2; i++)
			printf(",\"%sp50_ms\":%.3f,\"%sp99_ms\":%.3f,\"%sp999_ms\":%.3f,"
			       "\"%smax_ms\":%.3f,\"%ssamples\":%llu",
			       pre[i], ms(hist_quantile(h[i], 0.50)), pre[i],
			       ms(hist_quantile(h[i], 0.99)), pre[i], ms(hist_quantile(h[i], 0.999)),
			       pre[i], ms((double)h[i]->max), pre[i], (unsigned long long)h[i]->count);
	}
	if (g.o.hist) {
		printf(",\"hist_sub_bits\":%d", HIST_SUB_BITS);
		print_hist_json("hist_ok", &g.lat_ok);
		print_hist_json("hist_stalled", &g.lat_stalled);
	}
	printf("}\n");
}

static void print_latency(const char *label, const struct hist *h)
{
	printf("%-12s p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms  (%llu samples)\n",
	       label, ms(hist_quantile(h, 0.50)), ms(hist_quantile(h, 0.99)),
	       ms(hist_quantile(h, 0.999)), ms((double)h->max), (unsigned long long)h->count);
}

static void print_human(const struct report *r)
{
	const struct counters *m = &r->m;
	double d = r->duration_s;
	uint64_t seen = m->updates + m->seq_skipped;

	printf("tickerd-loadgen %s  n=%u k=%u s=%u  measured %.2f s after %.1f s warmup%s\n",
	       g.o.url, g.o.n, g.o.k, g.o.s, d, g.o.warmup_s, g_interrupted ? " (interrupted)" : "");
	printf("connections  requested %u, established %u, connect errors %u, subscribed %u, "
	       "open at end %u, failed %u\n",
	       g.o.n, g.established, g.connect_errors, g.subscribed, r->open_at_end, r->failed);
	printf("closed       %u by server (1001 shutdown %u, 1008 policy %u, 1013 full %u, other %u)\n",
	       g.closed, g.closed_1001, g.closed_1008, g.closed_1013, g.closed_other);
	if (g.closed_stalled)
		printf("             %u of them stalled connections (expected once a stall outlasts the "
		       "server's broadcast.stall_timeout_ms)\n", g.closed_stalled);
	printf("throughput   %.0f updates/s, %.0f frames/s, %.2f updates/frame, %.2f MB/s payload\n",
	       per_s(m->updates, d), per_s(m->frames, d),
	       m->update_frames ? (double)m->updates / (double)m->update_frames : 0.0,
	       per_s(m->bytes, d) / 1e6);
	print_latency("latency", &r->all);
	if (g.stalled_n) {
		print_latency("  non-stalled", &g.lat_ok);
		printf("  (%u connections stalled %.1f s from t+%.1f s)\n", g.stalled_n,
		       g.o.stall_for_s, g.o.stall_after_s);
		print_latency("  stalled", &g.lat_stalled);
	}
	printf("sequence     %llu values skipped by conflation (%.2f%%), %llu went backwards\n",
	       (unsigned long long)m->seq_skipped,
	       seen ? 100.0 * (double)m->seq_skipped / (double)seen : 0.0,
	       (unsigned long long)m->seq_backwards);
	printf("load tool    %.0f%% of one CPU during the measurement%s\n",
	       d > 0 ? 100.0 * g.cpu_measured / d : 0.0,
	       d > 0 && g.cpu_measured / d > 0.9 ? " (saturated: results are a lower bound)" : "");
	if (g.tot.errors || g.tot.unparsed) /* whole run: subscribe errors come before measuring */
		printf("protocol     %llu error replies, %llu unparsed frames/objects (whole run)\n",
		       (unsigned long long)g.tot.errors, (unsigned long long)g.tot.unparsed);
}

/* ----------------------------------------------------------------- main */

/* Raise the soft fd limit to the hard one: each connection needs an fd. */
static rlim_t raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur;
}

/*
 * Spread exactly round(N * F) stalled connections evenly over the global
 * index range (so processes splitting one experiment stall the same share).
 */
static void pick_stalled(void)
{
	double f = g.o.stall_fraction;
	for (uint32_t i = 0; i < g.o.n; i++) {
		uint32_t gi = g.o.first_index + i;
		g.conns[i].idx = gi;
		g.conns[i].stall = f > 0 && floor((gi + 1.0) * f + 0.5) > floor(gi * f + 0.5);
		g.stalled_n += g.conns[i].stall;
	}
}

static struct lws_context *create_context(rlim_t fds, void *uv_loop)
{
	struct lws_context_creation_info info;
	void *loops[1] = { uv_loop };

	memset(&info, 0, sizeof info);
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = g_protocols;
	/*
	 * Keep this equal to the process limit: below it lws 4.1.6 switches
	 * wsi_from_fd() to a linear scan of its fd table (lib/plat/unix/
	 * unix-fds.c), i.e. O(N) per socket event.  The table itself is only
	 * 8 bytes per fd.
	 */
	info.fd_limit_per_thread = (unsigned)(fds > 1000000 ? 1000000 : fds);
	info.pt_serv_buf_size = 32768; /* one socket read can fill several rx chunks */
	info.connect_timeout_secs = 20;
	info.timeout_secs = 20;
	info.pcontext = &g.ctx; /* lws NULLs it once a (libuv) destroy has completed */
	/* wss://: lws makes the client SSL_CTX only with OpenSSL's global init. */
	if (g.o.tls)
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	if (uv_loop) {
		info.options |= LWS_SERVER_OPTION_LIBUV;
		info.foreign_loops = loops; /* only read during creation */
	}
	return lws_create_context(&info);
}

#if defined(LOADGEN_WITH_LIBUV)

/* libuv, unless --poll or lws cannot load its libuv plugin. */
static bool start_lws(rlim_t fds)
{
	g.use_uv = !g.o.poll && !uv_loop_init(&g.loop);
	if (g.use_uv && !(g.ctx = create_context(fds, &g.loop))) {
		fprintf(stderr, "tickerd-loadgen: libuv event loop unavailable, using poll()\n");
		uv_loop_close(&g.loop);
		g.use_uv = false;
	}
	if (!g.use_uv)
		g.ctx = create_context(fds, NULL);
	return g.ctx != NULL;
}

static void run_loop(void)
{
	if (g.use_uv)
		uv_run(&g.loop, UV_RUN_DEFAULT); /* until the tick's uv_stop() */
	else
		while (!g.done && lws_service(g.ctx, 0) >= 0)
			;
}

/*
 * With a foreign libuv loop, lws closes its handles asynchronously: keep
 * running the loop until they are gone (then lws has NULLed g.ctx).
 */
static void stop_lws(void)
{
	lws_sul_cancel(&g.tick);
	lws_context_destroy(g.ctx);
	if (!g.use_uv)
		return;
	uv_run(&g.loop, UV_RUN_DEFAULT);
	if (g.ctx)
		lws_context_destroy(g.ctx);
	uv_loop_close(&g.loop);
}

#else /* poll() only */

static bool start_lws(rlim_t fds)
{
	if (!g.o.poll && g.o.n > 1000)
		fprintf(stderr, "tickerd-loadgen: built without libuv: poll() over %u sockets "
				"costs much CPU\n", g.o.n);
	g.ctx = create_context(fds, NULL);
	return g.ctx != NULL;
}

static void run_loop(void)
{
	while (!g.done && lws_service(g.ctx, 0) >= 0)
		;
}

static void stop_lws(void)
{
	lws_sul_cancel(&g.tick);
	lws_context_destroy(g.ctx);
}

#endif

int main(int argc, char **argv)
{
	struct report r;
	int rc = parse_args(argc, argv, &g.o);

	if (rc) {
		usage(rc > 0 ? stdout : stderr);
		return rc > 0 ? 0 : 2;
	}
	if (!load_symbols(&g.o)) {
		usage(stderr);
		return 2;
	}
	rlim_t fds = raise_fd_limit();
	if ((rlim_t)g.o.n + 64 > fds)
		fprintf(stderr, "tickerd-loadgen: warning: fd limit %llu is too low for %u connections\n",
			(unsigned long long)fds, g.o.n);

	g.conns = calloc(g.o.n, sizeof *g.conns);
	if (!g.conns) {
		fprintf(stderr, "tickerd-loadgen: out of memory\n");
		return 1;
	}
	pick_stalled();

	signal(SIGINT, on_sigint);
	signal(SIGTERM, on_sigint);
	signal(SIGUSR1, on_sigusr1);
	signal(SIGPIPE, SIG_IGN);
	lws_set_log_level(g.o.verbose ? LLL_ERR | LLL_WARN | LLL_NOTICE : LLL_ERR, NULL);

	enum lgr_mode mode = g.o.proto == PROTO_SSE ? LGR_SSE : LGR_WEBSOCKET;
	if (!g.o.lws && !(g.raw = lgr_loop_new(g.o.n, mode, g.o.host, g.o.port, &g_raw_events))) {
		fprintf(stderr, "tickerd-loadgen: cannot resolve %s or out of memory\n", g.o.host);
		return 1;
	}
	if (g.o.lws && !start_lws(fds)) {
		fprintf(stderr, "tickerd-loadgen: lws_create_context failed\n");
		return 1;
	}
	g.t_start = lws_now_usecs();
	g.t_next_progress = g.t_start + LWS_US_PER_SEC;
	set_phase(PH_CONNECT, g.t_start);
	if (g.raw) {
		run_raw();
	} else {
		lws_sul_schedule(g.ctx, 0, &g.tick, tick, 1);
		run_loop();
	}
	if (!g.done)
		set_phase(PH_DONE, lws_now_usecs());

	summarize(&r);
	if (g.raw)
		lgr_loop_free(g.raw);
	else
		stop_lws();

	if (g.o.json)
		print_json(&r);
	else
		print_human(&r);

	for (uint32_t i = 0; i < g.o.n; i++)
		free(g.conns[i].last_seq);
	free(g.conns);
	return (uint64_t)r.failed * 100 > g.o.n ? 1 : 0;
}
