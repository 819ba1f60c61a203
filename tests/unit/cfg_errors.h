/* cfg_errors.h — the config tests' check that a bad config is refused with
 * an error naming what is wrong. */
#ifndef TICKERD_TEST_CFG_ERRORS_H
#define TICKERD_TEST_CFG_ERRORS_H
#include <stdio.h>
#include <string.h>

#include "tickerd/cfg.h"

/* Is json refused, with an error that mentions expect? (Says why not.) */
static inline int error_names(const char *json, const char *expect)
{
    cfg_t c;
    cfg_error err = {{0}};
    if (!cfg_load_string(&c, json, &err)) {
        cfg_free(&c);
        fprintf(stderr, "  accepted: %s\n", json);
        return 0;
    }
    if (!strstr(err.msg, expect)) {
        fprintf(stderr, "  error \"%s\" does not mention \"%s\"\n", err.msg, expect);
        return 0;
    }
    return 1;
}
#endif
