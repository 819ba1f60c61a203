/*
 * check.h — `tickerd --check-config FILE`: everything startup would refuse,
 * found without starting. cfg_check_file covers the file itself (keys, types,
 * ranges, feeds and venue presets); check_env covers what the loaded config
 * points at: the web root, the history file's directory, the port to bind.
 */
#ifndef TICKERD_CHECK_H
#define TICKERD_CHECK_H

#include "tickerd/cfg.h"

typedef void (*check_report_fn)(void *arg, const char *msg);

/* Checks cfg's files and listen address. `skip_bind`: the running service
 * holds the port (a check before a reload; bind and port cannot change live
 * anyway). Each problem is reported as "key.path: why". Returns the count. */
int check_env(const cfg_t *cfg, int skip_bind, check_report_fn report, void *arg);

#endif
