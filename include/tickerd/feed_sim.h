/*
 * feed_sim.h — the simulated market adapter (feeds/sim.c): geometric Brownian
 * motion per symbol, driven by an lws timer on the service thread.
 */
#ifndef TICKERD_FEED_SIM_H
#define TICKERD_FEED_SIM_H

#include "tickerd/feed.h"

extern const feed_type feed_sim_type;

/* Number of built-in default symbols (crypto, US equities, FX). */
#define FEED_SIM_DEFAULT_SYMBOLS 20

#endif
