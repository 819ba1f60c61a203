/*
 * svcwait: poll() for lws' service loop, without the sub-millisecond spin
 * and with bounded passes (why: include/tickerd/svcwait.h).
 *
 * Owns: the process's poll() symbol, the per-thread "next poll is the
 * service loop's" flag, the rotation cursor over the descriptors' writes and
 * the counters of what it changed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* ppoll */
#endif
#include "tickerd/svcwait.h"

#include <poll.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

enum { ARM_NONE, ARM_BOUND, ARM_BOUND_AND_WAIT };

static _Thread_local int armed;
static _Thread_local nfds_t cursor; /* where the next pass's writes start */
static atomic_uint_fast64_t waits, deferred;

void svcwait_enter(bool forced_pending) { armed = forced_pending ? ARM_BOUND : ARM_BOUND_AND_WAIT; }
void svcwait_leave(void) { armed = ARM_NONE; }

void svcwait_get_stats(svcwait_stats *out)
{
    out->waits = atomic_load_explicit(&waits, memory_order_relaxed);
    out->writes_deferred = atomic_load_explicit(&deferred, memory_order_relaxed);
}

/*
 * Keep the first `budget` write-only events from the cursor on (wrapping),
 * clear the rest, and move the cursor past the last one kept.  Returns the
 * number of descriptors still reporting events.
 */
static int bound_writes(struct pollfd *fds, nfds_t nfds, int ready)
{
    nfds_t budget = nfds / 4 > SVCWAIT_MIN_WRITES ? nfds / 4 : SVCWAIT_MIN_WRITES;
    if ((nfds_t)ready <= budget)
        return ready;
    nfds_t kept = 0, i = cursor < nfds ? cursor : 0, next = i;
    uint64_t cleared = 0;
    for (nfds_t k = 0; k < nfds; k++, i = i + 1 == nfds ? 0 : i + 1) {
        if (fds[i].revents != POLLOUT)
            continue; /* nothing, or a read / error / hang-up: lws sees it */
        if (kept < budget) {
            kept++;
            next = i + 1;
            continue;
        }
        fds[i].revents = 0;
        cleared++;
    }
    if (cleared) {
        cursor = next;
        atomic_fetch_add_explicit(&deferred, cleared, memory_order_relaxed);
    }
    return ready - (int)cleared;
}

/*
 * poll() as libc defines it, on ppoll() (a different symbol, so no
 * recursion), plus the two changes for the service loop's own poll.
 */
int poll(struct pollfd *fds, nfds_t nfds, int timeout_ms)
{
    int mode = armed;
    armed = ARM_NONE; /* later polls in this service call are lws' own probes */
    struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
    int r = ppoll(fds, nfds, timeout_ms < 0 ? NULL : &ts, NULL);
    if (mode == ARM_NONE || r < 0)
        return r;
    if (r == 0 && timeout_ms == 0 && mode == ARM_BOUND_AND_WAIT) {
        atomic_fetch_add_explicit(&waits, 1, memory_order_relaxed);
        struct timespec slack = {0, SVCWAIT_SLACK_US * 1000L};
        r = ppoll(fds, nfds, &slack, NULL);
        if (r <= 0)
            return r;
    }
    return bound_writes(fds, nfds, r);
}
