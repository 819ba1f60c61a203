/* feed_capture: records come back byte for byte (valid UTF-8) through jansson,
 * invalid UTF-8 still gives a readable line, a full buffer drops and counts
 * instead of blocking or growing, a stuck file never stalls the caller, write
 * errors are counted, and an unopenable path fails at open with a reason. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "tickerd/feed_capture.h"
#include "tickerd/util.h"

static char tmpdir[256];

static void tmp_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    size_t k;
    while ((k = fread(b + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap)
            b = realloc(b, cap *= 2);
    }
    fclose(f);
    *len = n;
    return b;
}

/* Split text into lines (in place); returns the count, every line ended by '\n'. */
static size_t split_lines(char *text, size_t len, char **lines, size_t *lens, size_t max)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i < len && n < max; i++) {
        if (text[i] == '\n') {
            lines[n] = text + start;
            lens[n] = i - start;
            n++;
            start = i + 1;
        }
    }
    return n;
}

static size_t count_lines(const char *path)
{
    size_t len = 0, n = 0;
    char *t = slurp(path, &len);
    for (size_t i = 0; t && i < len; i++)
        n += t[i] == '\n';
    free(t);
    return n;
}

typedef struct rt_case {
    const char *in;
    size_t len;
    const char *want; /* what jansson must read back (NULL: in itself) */
    size_t want_len;
} rt_case;

#define S(x) x, sizeof(x) - 1

static const rt_case cases[] = {
    {S("plain {\"stream\":\"btcusdt@bookTicker\"}"), NULL, 0},
    {S("quotes \" and \\ backslashes \\\" and /slashes/"), NULL, 0},
    {S("controls \x01\x02\x07\b\f\n\r\t\x1b\x1f end"), NULL, 0},
    {S("nul \0 inside"), NULL, 0},
    {S("utf-8: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \x7f"), NULL, 0},
    {S(""), NULL, 0},
    /* invalid UTF-8: each offending byte reads back as U+00XX */
    {S("a\xff" "b"), S("a\xc3\xbf" "b")},
    {S("overlong \xc0\x80"), S("overlong \xc3\x80\xc2\x80")},
    {S("surrogate \xed\xa0\x80"), S("surrogate \xc3\xad\xc2\xa0\xc2\x80")},
    {S("too big \xf4\x90\x80\x80"), S("too big \xc3\xb4\xc2\x90\xc2\x80\xc2\x80")},
    {S("lone \x80 cont"), S("lone \xc2\x80 cont")},
    {S("truncated \xe2\x82"), S("truncated \xc3\xa2\xc2\x82")},
    {S("mixed \xe2\x82\xac\xe2\x82"), S("mixed \xe2\x82\xac\xc3\xa2\xc2\x82")},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static void test_round_trip(void)
{
    char path[512];
    tmp_path(path, sizeof(path), "rt.jsonl");
    char err[256];
    feed_capture *c = feed_capture_open(path, 16u << 20, err, sizeof(err));
    CHECK(c != NULL);
    if (!c)
        return;
    /* a 1 MiB frame with a bit of everything that needs escaping */
    size_t big_len = 1u << 20;
    char *big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++)
        big[i] = "abcdefghij0123456789\"\\{}:,\n\t"[i % 29];
    for (size_t i = 0; i < NCASES; i++)
        feed_capture_ws(c, 1711356300000000 + (int64_t)i, cases[i].in, cases[i].len);
    feed_capture_ws(c, 42, big, big_len);
    for (size_t i = 0; i < NCASES; i++)
        feed_capture_rest(c, 7 + (int64_t)i, i % 2 ? 500 : 200, i % 3 ? "BTC-USD" : NULL,
                          cases[i].in, cases[i].len);
    feed_capture_rest(c, 8, 200, "quo\"te\\hint", "{}", 2);
    CHECK(feed_capture_dropped(c) == 0);
    feed_capture_stats st;
    feed_capture_get_stats(c, &st);
    CHECK(st.records == 2 * NCASES + 2);
    feed_capture_close(c);

    size_t len;
    char *text = slurp(path, &len);
    CHECK(text != NULL);
    if (!text) {
        free(big);
        return;
    }
    char *lines[64];
    size_t lens[64];
    size_t n = split_lines(text, len, lines, lens, 64);
    CHECK(n == 2 * NCASES + 2);
    CHECK(len > 0 && text[len - 1] == '\n');
    /* the exact fixture spelling */
    CHECK(n > NCASES + 1 && lens[0] > 0 &&
          !strncmp(lines[0], "{\"t\":1711356300000000,\"frame\":\"plain {\\\"stream", 45));
    const char *r0 = "{\"t\":7,\"status\":200,\"hint\":null,\"body\":\"plain ";
    CHECK(n > NCASES + 1 && !strncmp(lines[NCASES + 1], r0, strlen(r0)));
    for (size_t i = 0; i < n; i++) {
        json_error_t je;
        json_t *root = json_loadb(lines[i], lens[i], JSON_ALLOW_NUL, &je);
        CHECK(root != NULL);
        if (!root) {
            fprintf(stderr, "line %zu: %s\n", i, je.text);
            continue;
        }
        const rt_case *k = NULL;
        const char *want;
        size_t want_len;
        int rest = i > NCASES;
        if (i < NCASES)
            k = &cases[i];
        else if (i > NCASES && i < 2 * NCASES + 1)
            k = &cases[i - NCASES - 1];
        if (k) {
            want = k->want ? k->want : k->in;
            want_len = k->want ? k->want_len : k->len;
        } else if (i == NCASES) {
            want = big;
            want_len = big_len;
        } else {
            want = "{}";
            want_len = 2;
        }
        const json_t *v = json_object_get(root, rest ? "body" : "frame");
        CHECK(json_is_string(v));
        CHECK(json_string_length(v) == want_len && !memcmp(json_string_value(v), want, want_len));
        CHECK(json_is_integer(json_object_get(root, "t")));
        CHECK(json_object_size(root) == (rest ? 4u : 2u));
        if (rest && i < 2 * NCASES + 1) {
            size_t j = i - NCASES - 1;
            CHECK(json_integer_value(json_object_get(root, "t")) == 7 + (json_int_t)j);
            CHECK(json_integer_value(json_object_get(root, "status")) == (j % 2 ? 500 : 200));
            const json_t *h = json_object_get(root, "hint");
            CHECK(j % 3 ? json_is_string(h) && !strcmp(json_string_value(h), "BTC-USD")
                        : json_is_null(h));
        } else if (rest) {
            CHECK(!strcmp(json_string_value(json_object_get(root, "hint")), "quo\"te\\hint"));
        } else if (i < NCASES) {
            CHECK(json_integer_value(json_object_get(root, "t")) ==
                  1711356300000000 + (json_int_t)i);
        }
        json_decref(root);
    }
    free(text);
    free(big);
}

static void test_appends(void)
{
    char path[512];
    tmp_path(path, sizeof(path), "append.jsonl");
    for (int round = 0; round < 2; round++) {
        feed_capture *c = feed_capture_open(path, 0, NULL, 0);
        CHECK(c != NULL);
        feed_capture_ws(c, round, "x", 1);
        feed_capture_close(c);
    }
    CHECK(count_lines(path) == 2);
}

static void test_periodic_flush(void)
{
    char path[512];
    tmp_path(path, sizeof(path), "flush.jsonl");
    feed_capture *c = feed_capture_open(path, 4096, NULL, 0);
    CHECK(c != NULL);
    feed_capture_ws(c, 1, "{\"a\":1}", 7);
    /* on disk within the flush period, without closing */
    int64_t deadline = tk_mono_us() + 20LL * FEED_CAPTURE_FLUSH_MS * 1000;
    while (count_lines(path) < 1 && tk_mono_us() < deadline)
        usleep(10000);
    CHECK(count_lines(path) == 1);
    feed_capture_close(c);
}

static void test_dropped(void)
{
    char path[512];
    tmp_path(path, sizeof(path), "tiny.jsonl");
    feed_capture *c = feed_capture_open(path, 64, NULL, 0);
    CHECK(c != NULL);
    char frame[200];
    memset(frame, 'z', sizeof(frame));
    /* larger than the whole buffer: always dropped */
    feed_capture_ws(c, 1, frame, sizeof(frame));
    CHECK(feed_capture_dropped(c) == 1);
    /* a burst into a 64-byte buffer: what fits is written, the rest counted */
    for (int i = 0; i < 2000; i++)
        feed_capture_ws(c, i, frame, 20);
    feed_capture_stats st;
    feed_capture_get_stats(c, &st);
    CHECK(st.records + st.dropped == 2001);
    CHECK(st.dropped >= 1);
    feed_capture_close(c);
    CHECK(count_lines(path) == st.records);
}

/* ---- a file that stops taking data: the caller must not notice ---- */

typedef struct reader {
    int fd;
    size_t bytes, lines;
} reader;

static void *drain(void *arg)
{
    reader *r = arg;
    char buf[65536];
    ssize_t k;
    while ((k = read(r->fd, buf, sizeof(buf))) > 0 || (k < 0 && errno == EINTR)) {
        for (ssize_t i = 0; i < k; i++)
            r->lines += buf[i] == '\n';
        r->bytes += k > 0 ? (size_t)k : 0;
    }
    return NULL;
}

static void test_never_blocks(void)
{
    char path[512];
    tmp_path(path, sizeof(path), "fifo");
    CHECK(mkfifo(path, 0600) == 0);
    /* a reader that never reads: once the pipe is full, every write blocks */
    int rfd = open(path, O_RDONLY | O_NONBLOCK);
    CHECK(rfd >= 0);
    feed_capture *c = feed_capture_open(path, 256 * 1024, NULL, 0);
    CHECK(c != NULL);
    if (!c || rfd < 0)
        return;
    char frame[1024];
    memset(frame, 'q', sizeof(frame));
    int64_t worst = 0, t0 = tk_mono_us();
    for (int i = 0; i < 20000; i++) {
        int64_t a = tk_mono_us();
        feed_capture_ws(c, i, frame, sizeof(frame));
        int64_t d = tk_mono_us() - a;
        if (d > worst)
            worst = d;
    }
    int64_t total = tk_mono_us() - t0;
    fprintf(stderr, "  20000 x 1 KiB into a stuck pipe: %.1f ms total, worst call %.2f ms\n",
            total / 1000.0, worst / 1000.0);
    CHECK(total < 2000000);
    CHECK(worst < 200000);
    feed_capture_stats st;
    feed_capture_get_stats(c, &st);
    CHECK(st.dropped > 0);
    CHECK(st.records + st.dropped == 20000);
    /* now let it drain and close: every accepted record arrives whole */
    int fl = fcntl(rfd, F_GETFL);
    fcntl(rfd, F_SETFL, fl & ~O_NONBLOCK);
    reader rd = {.fd = rfd};
    pthread_t t;
    pthread_create(&t, NULL, drain, &rd);
    feed_capture_close(c);
    pthread_join(t, NULL);
    close(rfd);
    CHECK(rd.lines == st.records);
    unlink(path);
}

static void test_write_errors(void)
{
    if (access("/dev/full", W_OK))
        return;
    feed_capture *c = feed_capture_open("/dev/full", 0, NULL, 0);
    CHECK(c != NULL);
    if (!c)
        return;
    char frame[4096];
    memset(frame, 'f', sizeof(frame));
    for (int i = 0; i < 100; i++)
        feed_capture_ws(c, i, frame, sizeof(frame));
    /* 400 KiB overflow the stdio buffer: the writes fail (ENOSPC), counted */
    feed_capture_stats st;
    int64_t deadline = tk_mono_us() + 5000000;
    do {
        usleep(5000);
        feed_capture_get_stats(c, &st);
    } while (!st.write_errors && tk_mono_us() < deadline);
    CHECK(st.write_errors > 0);
    CHECK(st.records == 100);
    feed_capture_close(c); /* the last flush fails too: logged, no hang, no crash */
}

static void test_open_fails(void)
{
    char err[256] = "";
    feed_capture *c = feed_capture_open("/nonexistent-tickerd-dir/cap.jsonl", 0, err, sizeof(err));
    CHECK(c == NULL);
    CHECK(strstr(err, "cannot open") != NULL);
    CHECK(strstr(err, "/nonexistent-tickerd-dir/cap.jsonl") != NULL);
    c = feed_capture_open("", 0, err, sizeof(err));
    CHECK(c == NULL && err[0]);
    /* a directory is not a file */
    c = feed_capture_open(tmpdir, 0, err, sizeof(err));
    CHECK(c == NULL && strstr(err, "cannot open"));
    CHECK(feed_capture_dropped(NULL) == 0);
    feed_capture_ws(NULL, 0, "x", 1); /* no-ops */
    feed_capture_close(NULL);
}

/* ---- two producers at once ---- */

typedef struct producer {
    feed_capture *c;
    int id;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    char frame[64];
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(frame, sizeof(frame), "{\"p\":%d,\"i\":%d,\"s\":\"\\\"\xc3\xa9\"}",
                         p->id, i);
        if (p->id)
            feed_capture_ws(p->c, i, frame, (size_t)n);
        else
            feed_capture_rest(p->c, i, 200, "ETH-USD", frame, (size_t)n);
    }
    return NULL;
}

static void test_two_producers(void)
{
    char path[512];
    tmp_path(path, sizeof(path), "two.jsonl");
    feed_capture *c = feed_capture_open(path, 1u << 20, NULL, 0);
    CHECK(c != NULL);
    producer p[2] = {{c, 0}, {c, 1}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, produce, &p[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    feed_capture_stats st;
    feed_capture_get_stats(c, &st);
    feed_capture_close(c);
    CHECK(st.records + st.dropped == 10000);
    size_t len;
    char *text = slurp(path, &len);
    size_t good = 0, lines = 0, start = 0;
    for (size_t i = 0; text && i < len; i++) {
        if (text[i] != '\n')
            continue;
        lines++;
        json_t *root = json_loadb(text + start, i - start, 0, NULL);
        const json_t *v = json_object_get(root, json_object_get(root, "body") ? "body" : "frame");
        json_t *inner = v ? json_loads(json_string_value(v), 0, NULL) : NULL;
        good += inner && json_is_integer(json_object_get(inner, "i"));
        json_decref(inner);
        json_decref(root);
        start = i + 1;
    }
    free(text);
    CHECK(lines == st.records);
    CHECK(good == st.records);
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tickerd-test-capture-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_round_trip);
    RUN(test_appends);
    RUN(test_periodic_flush);
    RUN(test_dropped);
    RUN(test_never_blocks);
    RUN(test_write_errors);
    RUN(test_open_fails);
    RUN(test_two_producers);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd))
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_done();
}
