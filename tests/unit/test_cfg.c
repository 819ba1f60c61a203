/* Configuration: etc/tickerd.json is exactly the built-in defaults, and every
 * kind of bad input is refused with an error naming the key. */
#include <string.h>

#include "cfg_errors.h"
#include "check.h"
#include "tickerd/cfg.h"

static void shipped_file_equals_builtin_defaults(void)
{
    cfg_t def, file;
    cfg_error err;
    CHECK(cfg_defaults(&def) == 0);
    int rc = cfg_load_file(&file, TICKERD_SOURCE_DIR "/etc/tickerd.json", &err);
    CHECK(rc == 0);
    if (rc) {
        fprintf(stderr, "  %s\n", err.msg);
        cfg_free(&def);
        return;
    }
    CHECK(!memcmp(&def.server, &file.server, sizeof(def.server)));
    CHECK(!memcmp(&def.log, &file.log, sizeof(def.log)));
    CHECK(!memcmp(&def.normalizer, &file.normalizer, sizeof(def.normalizer)));
    CHECK(!memcmp(&def.broadcast, &file.broadcast, sizeof(def.broadcast)));
    CHECK(!memcmp(&def.limits, &file.limits, sizeof(def.limits)));
    CHECK(!memcmp(&def.socketio, &file.socketio, sizeof(def.socketio)));
    CHECK(!memcmp(&def.auth, &file.auth, sizeof(def.auth)));
    CHECK(def.nfeeds == 1 && file.nfeeds == 1);
    CHECK(!strcmp(def.feeds[0].name, file.feeds[0].name));
    CHECK(def.feeds[0].type == file.feeds[0].type);
    cfg_free(&def);
    cfg_free(&file);
}

static void overrides_apply_and_missing_keys_keep_defaults(void)
{
    cfg_t c;
    cfg_error err;
    CHECK(cfg_load_string(&c, "{\"server\":{\"port\":0},\"normalizer\":{\"flush_interval_ms\":0}}",
                          &err) == 0);
    CHECK(c.server.port == 0);
    CHECK(c.normalizer.flush_interval_ms == 0);
    CHECK(c.limits.max_subscriptions == 1000);
    CHECK(c.nfeeds == 1);
    cfg_free(&c);
}

static void bad_config_names_the_key(void)
{
    CHECK(error_names("{\"server\":{\"prot\":1}}", "server.prot"));
    CHECK(error_names("{\"bogus\":1}", "bogus"));
    CHECK(error_names("{\"normalizer\":{\"flush_interval_ms\":\"x\"}}",
                      "normalizer.flush_interval_ms"));
    CHECK(error_names("{\"limits\":{\"max_subscriptions\":0}}", "limits.max_subscriptions"));
    CHECK(error_names("{\"server\":{\"port\":70000}}", "server.port"));
    CHECK(error_names("{\"server\":{\"port\":1.5}}", "server.port"));
    CHECK(error_names("{\"log\":{\"level\":\"loud\"}}", "log.level"));
    CHECK(error_names("{\"server\":[]}", "server"));
    CHECK(error_names("{\"feeds\":{}}", "feeds"));
    CHECK(error_names("{\"feeds\":[{\"type\":\"nope\"}]}", "feeds[0].type"));
    CHECK(error_names("{\"feeds\":[{\"type\":\"sim\",\"rate\":0}]}", "feeds[0].rate"));
    CHECK(error_names("{\"feeds\":[{\"type\":\"sim\",\"speed\":1}]}", "feeds[0].speed"));
    CHECK(error_names("{\"feeds\":[{\"type\":\"sim\",\"name\":\"a b\"}]}", "feeds[0].name"));
    CHECK(error_names("{\"feeds\":[{\"type\":\"sim\"},{\"type\":\"sim\"}]}", "feeds[1].name"));
    CHECK(error_names("{\"feeds\":[{\"type\":\"sim\",\"symbols\":[{\"symbol\":\"X-Y\"}]}]}",
                      "feeds[0].symbols[0].price"));
    CHECK(error_names("{\"feeds\":[{\"type\":\"sim\",\"symbols\":[{\"symbol\":\"bad\",\"price\":1,"
                      "\"volatility\":1,\"spread_bps\":1,\"tick\":0.01}]}]}",
                      "feeds[0].symbols[0].symbol"));
    CHECK(error_names("{\"feeds\":[{\"type\":\"sim\",\"include_defaults\":false}]}",
                      "feeds[0].symbols"));
    CHECK(error_names("{\"server\":{\"port\":1}, \"server\":{\"port\":2}}", "duplicate"));
    CHECK(error_names("[1]", "top level"));
    CHECK(error_names("{", "invalid JSON"));
    /* issue 11: server.tls, server.trusted_proxies, the per-address limits */
    CHECK(error_names("{\"server\":{\"tls\":{\"cert\":\"/x.pem\"}}}", "server.tls.key: required"));
    CHECK(error_names("{\"server\":{\"tls\":{\"key\":\"/x.pem\"}}}", "server.tls.cert: required"));
    CHECK(error_names("{\"server\":{\"tls\":{\"redirect_port\":81}}}", "server.tls.redirect_port"));
    CHECK(error_names("{\"server\":{\"tls\":{\"bogus\":1}}}", "server.tls.bogus: unknown key"));
    CHECK(error_names("{\"server\":{\"trusted_proxies\":[\"10.0.0.0/33\"]}}",
                      "server.trusted_proxies[0]: prefix length"));
    CHECK(error_names("{\"limits\":{\"exempt_addresses\":\"127.0.0.1\"}}",
                      "limits.exempt_addresses: must be an array"));
    CHECK(error_names("{\"limits\":{\"max_header_bytes\":100000}}", "limits.max_header_bytes"));
    CHECK(error_names("{\"limits\":{\"new_connections_burst\":0}}", "limits.new_connections_burst"));
}

static void unreadable_file_is_an_error(void)
{
    cfg_t c;
    cfg_error err;
    CHECK(cfg_load_file(&c, "/nonexistent/tickerd.json", &err) == -1);
    CHECK(strstr(err.msg, "/nonexistent/tickerd.json") != NULL);
}

static void example_configs_are_valid(void)
{
    const char *files[] = {"binance", "coinbase", "kraken", "coingecko"};
    for (int i = 0; i < 4; i++) {
        char path[512];
        snprintf(path, sizeof(path), TICKERD_SOURCE_DIR "/etc/examples/%s.json", files[i]);
        cfg_t c;
        cfg_error err;
        int rc = cfg_load_file(&c, path, &err);
        CHECK(rc == 0);
        if (rc)
            fprintf(stderr, "  %s\n", err.msg);
        else
            cfg_free(&c);
    }
}

int main(void)
{
    RUN(shipped_file_equals_builtin_defaults);
    RUN(overrides_apply_and_missing_keys_keep_defaults);
    RUN(bad_config_names_the_key);
    RUN(unreadable_file_is_an_error);
    RUN(example_configs_are_valid);
    return check_done();
}
