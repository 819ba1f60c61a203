/*
 * app.h — the service: wires feeds → normalizer → broadcaster → transports
 * on one lws context, owns the timers (flush, housekeeping), and applies
 * configuration reloads. main.c only parses flags, handles signals and runs
 * the loop.
 */
#ifndef TICKERD_APP_H
#define TICKERD_APP_H

#include "tickerd/cfg.h"

typedef struct app app;

/* Build everything and start listening. Takes ownership of *cfg (it is
 * zeroed). Returns NULL with a logged reason. */
app *app_create(cfg_t *cfg);
/* Run one iteration of the event loop; returns < 0 on a fatal error. */
int app_service(app *a);
/* Actual listening port (after port 0 was resolved). */
int app_port(const app *a);
/* Apply a new configuration without dropping clients; takes ownership of
 * *cfg. Settings that need a restart are logged and keep their old value. */
int app_reload(app *a, cfg_t *cfg);
/* Start a graceful shutdown: every client is sent close 1001. */
void app_begin_shutdown(app *a);
/* Connections still open. */
unsigned app_connections(const app *a);
/* Wake the loop (async-signal-safe enough: one write to lws's pipe). */
void app_wake(app *a);
void app_destroy(app *a);

#endif
