/* guard_head.c — see guard_head.h. */
#include "tickerd/guard_head.h"

#include <string.h>
#include <strings.h>

static int guard_tchar(unsigned char c)
{
    /* RFC 9110 §5.6.2 token characters */
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int guard_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The request line "METHOD SP target SP HTTP/1.x" in buf[0..n) (n bytes,
 * without the line end when complete). Checks as far as the bytes go, so
 * garbage (a TLS hello on the plain port) is refused at once. Sets *args
 * to the query's '&'/';' count. */
static guard_verdict guard_check_line(const char *buf, size_t n, int complete, int *args)
{
    static const char version[] = "HTTP/1.";
    size_t i = 0;
    while (i < n && i < 32 && guard_tchar((unsigned char)buf[i]))
        i++;
    if (i == n)
        return complete || i >= 32 ? GUARD_BAD_REQUEST : GUARD_INCOMPLETE;
    if (!i || buf[i] != ' ')
        return GUARD_BAD_REQUEST;
    size_t target = ++i;
    *args = 0;
    for (; i < n && buf[i] != ' '; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c < 0x21 || c == 0x7f)
            return GUARD_BAD_REQUEST;
        if (c == '&' || c == ';')
            ++*args;
        if (c != '%')
            continue;
        /* lws decodes %XX while parsing: %00 would end its copy of the
         * path, a non-hex escape it refuses with a bare 403. */
        for (size_t k = 1; k <= 2 && i + k < n; k++)
            if (!guard_hex((unsigned char)buf[i + k]))
                return GUARD_BAD_REQUEST;
        if (i + 2 < n && buf[i + 1] == '0' && buf[i + 2] == '0')
            return GUARD_BAD_REQUEST;
    }
    if (i - target > GUARD_LINE_MAX || (i == n && n > GUARD_LINE_MAX))
        return GUARD_URI_TOO_LONG;
    if (i == n)
        return complete ? GUARD_BAD_REQUEST : GUARD_INCOMPLETE;
    if (i == target)
        return GUARD_BAD_REQUEST;
    i++; /* the SP */
    for (size_t k = 0; k < sizeof(version) - 1; k++, i++)
        if (i == n)
            return complete ? GUARD_BAD_REQUEST : GUARD_INCOMPLETE;
        else if (buf[i] != version[k])
            return GUARD_BAD_REQUEST;
    if (i == n)
        return complete ? GUARD_BAD_REQUEST : GUARD_INCOMPLETE;
    if ((buf[i] != '0' && buf[i] != '1') || i + 1 != n)
        return complete || i + 1 < n ? GUARD_BAD_REQUEST : GUARD_INCOMPLETE;
    if (n > GUARD_LINE_MAX)
        return GUARD_URI_TOO_LONG;
    return complete ? GUARD_PASS : GUARD_INCOMPLETE;
}

/* One header field line (without its line end). */
static guard_verdict guard_check_field(const char *p, size_t n, int *upgrade_ws, int *version13,
                                       int *has_version)
{
    size_t colon = 0;
    while (colon < n && guard_tchar((unsigned char)p[colon]))
        colon++;
    /* no name, a space before the colon, or a folded line (RFC 9112 §5) */
    if (!colon || colon == n || p[colon] != ':')
        return GUARD_BAD_REQUEST;
    const char *v = p + colon + 1, *end = p + n;
    for (const char *c = v; c < end; c++)
        if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
            return GUARD_BAD_REQUEST;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vlen = (size_t)(end - v);
    if (colon == 7 && !strncasecmp(p, "upgrade", 7)) {
        for (size_t k = 0; k + 9 <= vlen; k++)
            if (!strncasecmp(v + k, "websocket", 9))
                *upgrade_ws = 1;
    } else if (colon == 21 && !strncasecmp(p, "sec-websocket-version", 21)) {
        *has_version = 1;
        *version13 = vlen == 2 && !memcmp(v, "13", 2);
    }
    return GUARD_PASS;
}

static const char *guard_eol(const char *p, const char *end)
{
    return memchr(p, '\n', (size_t)(end - p));
}

/* The length of a line up to its '\n', without a CR before it. */
static size_t guard_line_len(const char *start, const char *lf)
{
    size_t n = (size_t)(lf - start);
    return n && start[n - 1] == '\r' ? n - 1 : n;
}

guard_verdict guard_check_head(const char *buf, size_t len, size_t *head_len)
{
    return guard_check_head_max(buf, len, GUARD_HEAD_MAX, head_len);
}

guard_verdict guard_check_head_max(const char *buf, size_t len, size_t max_head, size_t *head_len)
{
    const char *end = buf + len;
    const char *lf = guard_eol(buf, end);
    int args = 0;
    /* An unfinished line may end in the CR of its CRLF: leave it out. */
    size_t line = lf ? guard_line_len(buf, lf) : len && buf[len - 1] == '\r' ? len - 1 : len;
    guard_verdict v = guard_check_line(buf, line, lf != NULL, &args);
    if (v != GUARD_PASS)
        return v;
    if (args >= GUARD_FIELDS_MAX)
        return GUARD_URI_TOO_LONG;
    int fields = args, upgrade_ws = 0, version13 = 0, has_version = 0;
    for (const char *p = lf + 1;; p = lf + 1) {
        lf = guard_eol(p, end);
        if (!lf)
            return len > max_head ? GUARD_FIELDS_TOO_LARGE : GUARD_INCOMPLETE;
        if ((size_t)(lf + 1 - buf) > max_head)
            return GUARD_FIELDS_TOO_LARGE;
        size_t n = guard_line_len(p, lf);
        if (!n)
            break; /* the blank line: the head is complete */
        if (memchr(p, '\r', n))
            return GUARD_BAD_REQUEST; /* a bare CR inside a line */
        if (++fields > GUARD_FIELDS_MAX)
            return GUARD_FIELDS_TOO_LARGE;
        v = guard_check_field(p, n, &upgrade_ws, &version13, &has_version);
        if (v != GUARD_PASS)
            return v;
    }
    /* RFC 6455 §4.4: name the version spoken instead of accepting 8. */
    if (upgrade_ws && (!has_version || !version13))
        return GUARD_UPGRADE_REQUIRED;
    *head_len = (size_t)(lf + 1 - buf);
    return GUARD_PASS;
}

int guard_status(guard_verdict v)
{
    switch (v) {
    case GUARD_BAD_REQUEST: return 400;
    case GUARD_URI_TOO_LONG: return 414;
    case GUARD_UPGRADE_REQUIRED: return 426;
    case GUARD_FIELDS_TOO_LARGE: return 431;
    default: return 0;
    }
}

const char *guard_reason(guard_verdict v)
{
    switch (v) {
    case GUARD_BAD_REQUEST: return "bad_request";
    case GUARD_URI_TOO_LONG: return "uri_too_long";
    case GUARD_UPGRADE_REQUIRED: return "upgrade_required";
    case GUARD_FIELDS_TOO_LARGE: return "header_fields_too_large";
    default: return "";
    }
}

