/* log.c — see log.h. */
#include "tickerd/log.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile log_level current_level = LOG_INFO;
static volatile log_format current_format = LOG_FORMAT_TEXT;
static int journal; /* stderr is the journal: no own timestamp, "<N>" prefixes */
static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* syslog priorities: err, warning, info, debug */
static const int level_prio[] = {3, 4, 6, 7};

void log_set_format(log_format format) { current_format = format; }

int log_format_parse(const char *name)
{
    if (!strcmp(name, "text"))
        return LOG_FORMAT_TEXT;
    if (!strcmp(name, "json"))
        return LOG_FORMAT_JSON;
    return -1;
}

/* systemd sets JOURNAL_STREAM=dev:ino of the stream it connected; it is
 * inherited by children whose stderr may be elsewhere, hence the comparison. */
void log_detect_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    journal = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && !fstat(STDERR_FILENO, &st) &&
              (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_set_level(log_level level) { current_level = level; }
log_level log_get_level(void) { return current_level; }
const char *log_level_name(log_level level) { return level_names[level]; }

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, level_names[i]))
            return i;
    return -1;
}

static void log_vmsg(log_level level, const char *fmt, va_list ap)
{
    char line[2048], msg[1800], ts[64] = "";
    size_t n = 0;
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t mlen = m < 0 ? 0 : (size_t)m >= sizeof(msg) ? sizeof(msg) - 1 : (size_t)m;
    while (mlen > 0 && msg[mlen - 1] == '\n')
        msg[--mlen] = '\0';
    if (!journal) {
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(tv.tv_usec / 1000));
    }
    if (journal)
        n = (size_t)snprintf(line, sizeof(line), "<%d>", level_prio[level]);
    if (current_format == LOG_FORMAT_JSON) {
        /* jansson escapes the message; the timestamp is left to journald there */
        json_t *o = journal ? json_pack("{s:s, s:s%}", "level", level_names[level], "msg", msg, mlen)
                            : json_pack("{s:s, s:s, s:s%}", "ts", ts, "level", level_names[level],
                                        "msg", msg, mlen);
        size_t w = o ? json_dumpb(o, line + n, sizeof(line) - n - 1, JSON_COMPACT) : 0;
        json_decref(o);
        if (!w || w > sizeof(line) - n - 1) /* too long even escaped: text */
            n += (size_t)snprintf(line + n, sizeof(line) - n - 1, "%s %.1700s", level_names[level], msg);
        else
            n += w;
    } else if (journal) {
        n += (size_t)snprintf(line + n, sizeof(line) - n - 1, "%s", msg);
    } else {
        n += (size_t)snprintf(line + n, sizeof(line) - n - 1, "%s %-5s %s", ts, level_names[level],
                              msg);
    }
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void log_msg(log_level level, const char *fmt, ...)
{
    if (level > current_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

static void lws_emit(int lws_level, const char *line)
{
    /* lws 4.1.6 logs every adoption of a socket with bytes already read
     * (each connection the guard passes) at error level: not an error. */
    if (strstr(line, "adopt_socket_readbuf:"))
        return;
    log_msg(lws_level == LLL_ERR ? LOG_ERROR : LOG_WARN, "lws: %s", line);
}

void log_route_lws(void)
{
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_emit);
}
