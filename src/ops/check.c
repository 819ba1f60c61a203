/*
 * check.c — see check.h. Owns the environment checks of --check-config; the
 * same conditions app_create would fail on, tested without side effects
 * (nothing is created, the test socket is closed at once).
 */
#include "tickerd/check.h"

#include <errno.h>
#include <libgen.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tickerd/tls.h"

static int check_say(check_report_fn report, void *arg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int check_say(check_report_fn report, void *arg, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    report(arg, msg);
    return 1;
}

/* Mirrors app_resolve_web_root: an explicit web_root must hold index.html; the
 * built-in candidates are the source tree's web/ and the installed data dir. */
static int check_web_root(const cfg_t *cfg, check_report_fn report, void *arg)
{
    const char *candidates[] = {cfg->server.web_root, TICKERD_WEB_ROOT, TICKERD_DATA_WEB_ROOT,
                                "/usr/share/tickerd/web"};
    for (size_t i = cfg->server.web_root[0] ? 0 : 1; i < 4; i++) {
        char index[600];
        snprintf(index, sizeof(index), "%s/index.html", candidates[i]);
        if (!access(index, R_OK))
            return 0;
        if (i == 0)
            break;
    }
    return check_say(report, arg, "server.web_root: no readable index.html in %s",
                     cfg->server.web_root[0] ? cfg->server.web_root
                                             : TICKERD_WEB_ROOT " or " TICKERD_DATA_WEB_ROOT);
}

/* History is not fatal at startup (tickerd runs live-only), but an operator
 * asking whether the config is right wants to know it would be unavailable. */
static int check_history(const cfg_t *cfg, check_report_fn report, void *arg)
{
    if (!cfg->history.enabled)
        return 0;
    char path[512], dir[512];
    if (cfg_history_path(cfg, path, sizeof(path)))
        return check_say(report, arg,
                         "history.path: empty and no state directory (STATE_DIRECTORY, "
                         "XDG_STATE_HOME or HOME) to put history.db in");
    if (!access(path, F_OK))
        return access(path, R_OK | W_OK)
                   ? check_say(report, arg, "history.path: %s: %s", path, strerror(errno))
                   : 0;
    /* The store creates missing directories on start (mkdir -p, and
     * StateDirectory= under systemd): what must hold is that the nearest
     * directory that exists is one tickerd can write into. */
    snprintf(dir, sizeof(dir), "%s", path);
    char *d = dirname(dir);
    struct stat st;
    while (stat(d, &st)) {
        if (errno != ENOENT || !strcmp(d, "/") || !strcmp(d, "."))
            return check_say(report, arg, "history.path: directory %s: %s", d, strerror(errno));
        d = dirname(d);
    }
    if (!S_ISDIR(st.st_mode))
        return check_say(report, arg, "history.path: %s is not a directory", d);
    if (access(d, W_OK))
        return check_say(report, arg, "history.path: directory %s: %s", d, strerror(errno));
    return 0;
}

static int check_bind(const cfg_t *cfg, check_report_fn report, void *arg)
{
    char port[8];
    snprintf(port, sizeof(port), "%d", cfg->server.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(cfg->server.bind[0] ? cfg->server.bind : NULL, port, &hints, &res);
    if (rc)
        return check_say(report, arg, "server.bind: \"%s\": %s", cfg->server.bind,
                         gai_strerror(rc));
    int problems = 0;
    int fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
    int one = 1;
    /* lws sets SO_REUSEADDR too: a port in TIME_WAIT is not a problem. */
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        bind(fd, res->ai_addr, res->ai_addrlen))
        problems = check_say(report, arg, "server.port: cannot bind %s:%d: %s", cfg->server.bind,
                             cfg->server.port, strerror(errno));
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return problems;
}

/* server.tls: the files startup would refuse (unreadable, mismatched, expired). */
static int check_tls(const cfg_t *cfg, check_report_fn report, void *arg)
{
    char err[1200];
    if (!cfg->server.tls.cert[0])
        return 0;
    if (!tls_check(cfg->server.tls.cert, cfg->server.tls.key, cfg->server.tls.ca, err, sizeof(err)))
        return 0;
    return check_say(report, arg, "%s", err);
}

int check_env(const cfg_t *cfg, int skip_bind, check_report_fn report, void *arg)
{
    int n = check_web_root(cfg, report, arg) + check_history(cfg, report, arg) +
            check_tls(cfg, report, arg);
    if (!skip_bind)
        n += check_bind(cfg, report, arg);
    return n;
}
