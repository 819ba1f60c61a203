/*
 * svcwait: poll() for lws' service loop without the sub-millisecond spin
 * (why: include/tickerd/svcwait.h).
 *
 * Owns: the process's poll() symbol, the per-thread "inside lws_service"
 * flag and the count of waits it turned from spins into sleeps.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* ppoll */
#endif
#include "tickerd/svcwait.h"

#include <poll.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

static _Thread_local int in_service;
static atomic_uint_fast64_t waits;

void svcwait_enter(void) { in_service = 1; }
void svcwait_leave(void) { in_service = 0; }
uint64_t svcwait_waits(void) { return atomic_load_explicit(&waits, memory_order_relaxed); }

/*
 * poll() as libc defines it, on ppoll() (a different symbol, so no
 * recursion), plus the one change: see the header.
 */
int poll(struct pollfd *fds, nfds_t nfds, int timeout_ms)
{
    if (timeout_ms < 0)
        return ppoll(fds, nfds, NULL, NULL);
    struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
    int r = ppoll(fds, nfds, &ts, NULL);
    if (r != 0 || timeout_ms != 0 || !in_service)
        return r;
    atomic_fetch_add_explicit(&waits, 1, memory_order_relaxed);
    struct timespec slack = {0, SVCWAIT_SLACK_US * 1000L};
    return ppoll(fds, nfds, &slack, NULL);
}
