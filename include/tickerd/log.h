/*
 * log.h — levelled logging to stderr. One process-wide level and format, set
 * at start and on reload from the service thread; lines are written with one
 * write(2) so threads never interleave within a line.
 *
 * Under systemd (stderr is the journal: $JOURNAL_STREAM names it) lines carry
 * sd-daemon's "<N>" priority prefix and no timestamp of their own (journald
 * stamps them); log.format "json" writes one JSON object per line.
 */
#ifndef TICKERD_LOG_H
#define TICKERD_LOG_H

typedef enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 } log_level;
typedef enum { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON = 1 } log_format;

void log_set_level(log_level level);
log_level log_get_level(void);
/* Parses "error|warn|info|debug"; returns -1 when unknown. */
int log_level_parse(const char *name);
const char *log_level_name(log_level level);
void log_set_format(log_format format);
/* Parses "text|json"; returns -1 when unknown. */
int log_format_parse(const char *name);
/* Decides journal mode from $JOURNAL_STREAM against stderr (call once at start). */
void log_detect_journal(void);
void log_msg(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Route libwebsockets' own warnings and errors through log_msg. */
void log_route_lws(void);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
