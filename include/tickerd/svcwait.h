/*
 * svcwait: how lws' poll() service loop waits, and how much one pass of it
 * serves.
 *
 * 1. No sub-millisecond spin.  lws 4.1.6 (_lws_plat_service_tsi,
 *    lib/plat/unix/unix-service.c) turns the time to its next timer into
 *    poll()'s millisecond timeout by truncation, so a timer 0.97 ms away
 *    becomes poll(fds, n, 0), and the loop calls poll() again and again
 *    until the timer is due.  With the sim feed's 1 ms tick that was 40,000
 *    poll() calls per second and most of a core at 20,000 deliveries/s
 *    (perf: 80 % of the CPU in do_sys_poll / tcp_poll).  A zero-timeout
 *    poll that finds nothing ready now waits up to SVCWAIT_SLACK_US for a
 *    socket event instead, unless lws has buffered work of its own to do
 *    (then its zero timeout is meant).  A timer may so fire up to that much
 *    late; every socket event still wakes the loop at once.
 *
 * 2. Bounded passes.  lws services every ready descriptor of one poll()
 *    before it runs its timers again, and writing 10,000 clients takes
 *    80 ms or more: the feed timers, the normalizer's flush and every venue
 *    socket waited a whole pass, so a value waited up to two passes (one to
 *    be read, one to be written).  A pass now serves at most a quarter of
 *    the descriptors' writes (at least SVCWAIT_MIN_WRITES): descriptors
 *    ready only to write beyond that are left for the next pass, in
 *    rotation so every client gets its turn.  Reads, errors and hang-ups are
 *    always served.  Level-triggered poll() reports the deferred ones again.
 *
 * The fix lives where the loop is: tickerd defines poll() (the executable's
 * definition is the one libwebsockets binds to), and only the service
 * loop's own poll(), the first inside svcwait_enter() / svcwait_leave() on
 * the service thread, is changed.  Every other caller (curl's threads, lws'
 * accept loop probing its listener, lws outside the service call) gets
 * poll() as libc defines it.
 */
#ifndef TICKERD_SVCWAIT_H
#define TICKERD_SVCWAIT_H

#include <stdbool.h>
#include <stdint.h>

#define SVCWAIT_SLACK_US 500
#define SVCWAIT_MIN_WRITES 512

/*
 * Around each lws_service() call on the service thread.  forced_pending:
 * lws has buffered work that wants a zero-timeout poll
 * (!lws_service_adjust_timeout(ctx, 1, tsi)).
 */
void svcwait_enter(bool forced_pending);
void svcwait_leave(void);

typedef struct svcwait_stats {
    uint64_t waits;          /* zero-timeout polls that found nothing and waited */
    uint64_t writes_deferred; /* write-ready descriptors left for a later pass */
} svcwait_stats;

void svcwait_get_stats(svcwait_stats *out);

#endif
