/* feed.c — the adapter registry and the feed handle (see feed.h). */
#include "tickerd/feed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/feed_replay.h"
#include "tickerd/feed_rest.h"
#include "tickerd/feed_sim.h"
#include "tickerd/feed_ws.h"

static const feed_type *const feed_types[] = {
    &feed_sim_type,
    &feed_rest_type,
    &feed_ws_type,
    &feed_replay_type,
};

struct feed {
    char name[32];
    const feed_type *type;
    void *self;
    int started;
    /* The last reason the feed was down, kept after it recovers (status
     * says only why it is down now): sampled by feed_note_status. */
    char last_error[sizeof(((feed_status *)0)->detail)];
    int64_t last_error_us;
    int was_down; /* at the previous sample */
};

const feed_type *feed_type_find(const char *name)
{
    for (size_t i = 0; i < sizeof(feed_types) / sizeof(feed_types[0]); i++)
        if (!strcmp(feed_types[i]->name, name))
            return feed_types[i];
    return NULL;
}

const char *feed_state_name(feed_state s)
{
    switch (s) {
    case FEED_STARTING:
        return "starting";
    case FEED_LIVE:
        return "live";
    case FEED_DOWN:
        return "down";
    }
    return "?";
}

feed *feed_create(const feed_cfg *cfg, const feed_env *env)
{
    feed *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    strcpy(f->name, cfg->name);
    f->type = cfg->type;
    f->self = f->type->create(cfg->opts, env);
    if (!f->self) {
        free(f);
        return NULL;
    }
    return f;
}

int feed_cfg_symbols(const feed_cfg *cfg, feed_symbol_fn each, void *arg)
{
    if (!cfg->type || !cfg->type->symbols)
        return -1;
    return cfg->type->symbols(cfg->opts, each, arg);
}

int feed_start(feed *f)
{
    int rc = f->type->start(f->self);
    f->started = rc == 0;
    return rc;
}

int feed_reload(feed *f, const feed_cfg *cfg)
{
    if (cfg->type != f->type)
        return -1;
    return f->type->reload(f->self, cfg->opts);
}

void feed_stop(feed *f)
{
    if (f->started)
        f->type->stop(f->self);
    f->started = 0;
}

void feed_destroy(feed *f)
{
    if (!f)
        return;
    feed_stop(f);
    f->type->destroy(f->self);
    free(f);
}

const char *feed_name(const feed *f) { return f->name; }
const feed_type *feed_get_type(const feed *f) { return f->type; }
void feed_get_status(const feed *f, feed_status *st)
{
    memset(st, 0, sizeof(*st));
    f->type->status(f->self, st);
}

void feed_note_status(feed *f, int64_t now_us)
{
    feed_status st;
    feed_get_status(f, &st);
    /* "connecting" is a state, not an error. */
    int down = st.state != FEED_LIVE && st.detail[0] && strcmp(st.detail, "connecting");
    if (down && (!f->was_down || strcmp(st.detail, f->last_error))) {
        memcpy(f->last_error, st.detail, sizeof(f->last_error));
        f->last_error_us = now_us;
    }
    f->was_down = down;
}

const char *feed_last_error(const feed *f, int64_t *at_us)
{
    *at_us = f->last_error_us;
    return f->last_error;
}

void feed_wake(feed *f)
{
    if (f->started && f->type->wake)
        f->type->wake(f->self);
}

void feed_update_complete(feed_update *known, feed_update *u)
{
    int made_up_book = known->bid == known->ask && known->ask == known->last;
    if (isnan(u->bid) && isnan(u->ask) && !isnan(u->last) && (isnan(known->bid) || made_up_book))
        u->bid = u->ask = u->last;
    if (isnan(u->bid))
        u->bid = known->bid;
    if (isnan(u->ask))
        u->ask = known->ask;
    if (isnan(u->last))
        u->last = !isnan(u->bid) && !isnan(u->ask) ? (u->bid + u->ask) / 2 : known->last;
    if (isnan(u->volume))
        u->volume = isnan(known->volume) ? 0 : known->volume;
    if (isnan(u->open))
        u->open = known->open;
    if (u->ts_us < known->ts_us)
        u->ts_us = known->ts_us;
    *known = *u;
}
