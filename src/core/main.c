/*
 * main.c — tickerd's entry point: command-line flags, signals, the run loop.
 * Everything else lives in app.c and the modules it wires.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#if defined(TICKERD_WITH_SYSTEMD)
#include <systemd/sd-daemon.h>
#endif

#include "tickerd/app.h"
#include "tickerd/cfg.h"
#include "tickerd/check.h"
#include "tickerd/log.h"
#include "tickerd/store.h"
#include "tickerd/tls.h"
#include "tickerd/util.h"

#define EXIT_CONFIG 2
#define SHUTDOWN_GRACE_US 1500000 /* SIGTERM → exit within 2 s, with margin */

static volatile sig_atomic_t got_term, got_hup;
static app *volatile running_app;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        got_hup = 1;
    else
        got_term = 1;
    if (running_app)
        app_wake(running_app);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tickerd [options]\n"
            "  -c, --config FILE      read configuration from FILE (default: built-in defaults,\n"
            "                         the same as etc/tickerd.json)\n"
            "      --bind ADDR        listen address (server.bind)\n"
            "      --port N           listen port, 0 = pick a free one (server.port)\n"
            "      --log-level LEVEL  error, warn, info or debug (log.level)\n"
            "      --check-history FILE\n"
            "                         check a history file (read-only, safe while tickerd runs):\n"
            "                         integrity, schema version and row counts on one line;\n"
            "                         exit 0 ok, 1 damaged, 2 cannot open\n"
            "      --check-config FILE\n"
            "                         validate FILE as startup would (keys, types, ranges, venue\n"
            "                         presets, the files it opens, the port it binds); print every\n"
            "                         problem with its key path; exit 0 ok, 2 problems\n"
            "      --running          with --check-config: skip the bind check (the running\n"
            "                         service holds the port; used before a reload)\n"
            "  -h, --help             show this help\n"
            "      --version          show the version\n"
            "Signals: SIGTERM/SIGINT stop (clients get close 1001), SIGHUP reloads the config.\n");
}

typedef struct cli {
    const char *config;
    const char *bind;
    const char *port;
    const char *log_level;
    const char *check_history; /* --check-history FILE: check it and exit */
    const char *check_config;  /* --check-config FILE: validate it and exit */
    int running;               /* --running: --check-config skips the bind check */
} cli;

/* Returns -1 to exit 0 (help/version), 0 to run, EXIT_CONFIG on a bad flag. */
static int cli_parse(int argc, char **argv, cli *c)
{
    enum { OPT_BIND = 256, OPT_PORT, OPT_LOG_LEVEL, OPT_VERSION, OPT_CHECK_HISTORY,
           OPT_CHECK_CONFIG, OPT_RUNNING };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"bind", required_argument, NULL, OPT_BIND},
        {"port", required_argument, NULL, OPT_PORT},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {"check-history", required_argument, NULL, OPT_CHECK_HISTORY},
        {"check-config", required_argument, NULL, OPT_CHECK_CONFIG},
        {"running", no_argument, NULL, OPT_RUNNING},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            c->config = optarg;
            break;
        case OPT_BIND:
            c->bind = optarg;
            break;
        case OPT_PORT:
            c->port = optarg;
            break;
        case OPT_LOG_LEVEL:
            c->log_level = optarg;
            break;
        case OPT_CHECK_HISTORY:
            c->check_history = optarg;
            break;
        case OPT_CHECK_CONFIG:
            c->check_config = optarg;
            break;
        case OPT_RUNNING:
            c->running = 1;
            break;
        case 'h':
            usage(stdout);
            return -1;
        case OPT_VERSION:
            printf("tickerd %s\n", TK_VERSION);
            return -1;
        default:
            usage(stderr);
            return EXIT_CONFIG;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tickerd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return EXIT_CONFIG;
    }
    return 0;
}

/* Load the file (or defaults) and overlay the flags. */
static int load_config(const cli *c, cfg_t *cfg, cfg_error *err)
{
    if (c->config ? cfg_load_file(cfg, c->config, err) : cfg_defaults(cfg))
        return c->config ? -1 : cfg_fail(err, "out of memory");
    if (c->bind) {
        if (strlen(c->bind) >= sizeof(cfg->server.bind))
            goto bad_bind;
        strcpy(cfg->server.bind, c->bind);
    }
    if (c->port) {
        char *end;
        errno = 0;
        long p = strtol(c->port, &end, 10);
        if (errno || *end || end == c->port || p < 0 || p > 65535) {
            cfg_free(cfg);
            return cfg_fail(err, "--port: must be an integer from 0 to 65535");
        }
        cfg->server.port = (int)p;
    }
    if (c->log_level) {
        int l = log_level_parse(c->log_level);
        if (l < 0) {
            cfg_free(cfg);
            return cfg_fail(err, "--log-level: must be one of error, warn, info, debug");
        }
        cfg->log.level = l;
    }
    return 0;
bad_bind:
    cfg_free(cfg);
    return cfg_fail(err, "--bind: address too long");
}

/* Each connection needs a descriptor: use all the process may have. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* systemd's Type=notify: READY once listening, RELOADING/READY around a
 * SIGHUP, STOPPING on SIGTERM, and WATCHDOG=1 at half of WatchdogSec= from the
 * service loop itself, so a wedged loop gets the service restarted. All are
 * no-ops when not started by systemd (no $NOTIFY_SOCKET). */
#if defined(TICKERD_WITH_SYSTEMD)
#define notify(s) sd_notify(0, s)
#else
#define notify(s) ((void)0)
#endif

static int64_t watchdog_interval_us(void)
{
#if defined(TICKERD_WITH_SYSTEMD)
    uint64_t us = 0;
    if (sd_watchdog_enabled(0, &us) > 0)
        return (int64_t)(us / 2);
#endif
    return 0;
}

static void check_print(void *arg, const char *msg)
{
    fprintf(stderr, "%s: %s\n", (const char *)arg, msg);
}

/* --check-config: the file's own problems (all of them), then, when the file
 * loads, what it points at. Exit 0 ok, 2 when anything is wrong. */
static int check_config(cli *c)
{
    const char *file = c->check_config;
    int problems = cfg_check_file(file, check_print, (void *)file);
    if (!problems) {
        cfg_t cfg;
        cfg_error err;
        c->config = file;
        if (load_config(c, &cfg, &err)) { /* a bad --bind/--port/--log-level */
            check_print((void *)file, err.msg);
            return EXIT_CONFIG;
        }
        problems = check_env(&cfg, c->running, check_print, (void *)file);
        cfg_free(&cfg);
    }
    if (problems) {
        fprintf(stderr, "%s: %d problem%s\n", file, problems, problems == 1 ? "" : "s");
        return EXIT_CONFIG;
    }
    printf("%s: ok\n", file);
    return 0;
}

static void reload(app *a, const cli *c)
{
    cfg_t cfg;
    cfg_error err;
    if (!c->config) {
        log_info("SIGHUP: no --config file to reload");
        return;
    }
    log_info("SIGHUP: reloading %s", c->config);
    if (load_config(c, &cfg, &err)) {
        log_error("reload failed, keeping the running configuration: config error: %s", err.msg);
        return;
    }
    app_reload(a, &cfg);
}

int main(int argc, char **argv)
{
    cli c = {0};
    int rc = cli_parse(argc, argv, &c);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (c.check_history) { /* an operator's command: no config, no server */
        char report[1536];
        rc = store_check(c.check_history, report, sizeof(report));
        fprintf(rc == STORE_CHECK_OK ? stdout : stderr, "%s\n", report);
        return rc;
    }

    if (c.check_config)
        return check_config(&c);

    cfg_t cfg;
    cfg_error err;
    if (load_config(&c, &cfg, &err)) {
        fprintf(stderr, "tickerd: config error: %s\n", err.msg);
        return EXIT_CONFIG;
    }
    /* Before lws sees them: an unreadable, mismatched or expired certificate
     * is a configuration error naming its key, not a failed vhost. */
    char tls_err[1200];
    if (cfg.server.tls.cert[0] &&
        tls_check(cfg.server.tls.cert, cfg.server.tls.key, cfg.server.tls.ca, tls_err,
                  sizeof(tls_err))) {
        fprintf(stderr, "tickerd: config error: %s\n", tls_err);
        cfg_free(&cfg);
        return EXIT_CONFIG;
    }
    log_detect_journal();
    log_set_level((log_level)cfg.log.level);
    log_set_format((log_format)cfg.log.format);
    log_route_lws();
    raise_fd_limit();

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    app *a = app_create(&cfg);
    if (!a)
        return 1;
    running_app = a;
    notify("READY=1");
    const int64_t wd_us = watchdog_interval_us();
    int64_t wd_next = wd_us ? tk_mono_us() + wd_us : 0;

    int64_t deadline = 0;
    while (!deadline || (app_connections(a) && tk_mono_us() < deadline)) {
        if (app_service(a) < 0) {
            log_error("event loop failed");
            break;
        }
        if (wd_us && tk_mono_us() >= wd_next) {
            notify("WATCHDOG=1");
            wd_next = tk_mono_us() + wd_us;
        }
        if (got_hup) {
            got_hup = 0;
            notify("RELOADING=1");
            reload(a, &c);
            notify("READY=1");
        }
        if (got_term && !deadline) {
            notify("STOPPING=1");
            deadline = tk_mono_us() + SHUTDOWN_GRACE_US;
            app_begin_shutdown(a);
        }
    }
    running_app = NULL;
    app_destroy(a);
    log_info("stopped");
    return 0;
}
