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
 * 3. Readiness from epoll (server.event_loop "epoll", experimental: a resume
 *    test failed in about 1 ASan run of 9 with it, cause not found yet).  poll()
 *    asks the kernel about every descriptor on every call: at 10,000
 *    clients and four passes per rotation that was 16 % of the server's CPU
 *    (tcp_poll over 40,000 sockets per rotation).  The service loop's poll
 *    is answered from two epoll sets that mirror lws' array instead: a
 *    level-triggered read set (every descriptor, EPOLLIN when asked; errors
 *    and hang-ups) and a one-shot write set (descriptors asking for
 *    POLLOUT), nested in the read set so one wait covers both.  Each call
 *    compares the array with what the sets hold (a walk over memory; only
 *    differences cost an epoll_ctl, and a writer costs one to re-arm per
 *    frame), takes every read event, and takes the next budget's worth of
 *    writers from the write set's ready list, which epoll keeps in rotation.
 *    So a rotation over N writers costs the kernel N readiness checks, not
 *    4 N, and idle connections cost nothing per wake-up.  tickerd also defines
 *    close(), to drop a descriptor from the sets before its number is reused.
 *    If the sets cannot follow (no kernel memory, a descriptor past the
 *    limit) the loop falls back to poll(), counted in /metrics.
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

typedef enum svcwait_readiness {
    SVCWAIT_POLL,  /* poll() over lws' array (server.event_loop "poll") */
    SVCWAIT_EPOLL, /* the epoll sets (3. above) */
} svcwait_readiness;

/*
 * Before lws' context exists (its descriptors must all be seen by the sets)
 * and before other threads start.  SVCWAIT_EPOLL: -1 if the sets cannot be
 * made (then the loop polls).  svcwait_stop() after the context is gone.
 */
int svcwait_start(svcwait_readiness mode);
void svcwait_stop(void);

/*
 * Around each lws_service() call on the service thread.  forced_pending:
 * lws has buffered work that wants a zero-timeout poll
 * (!lws_service_adjust_timeout(ctx, 1, tsi)).
 */
void svcwait_enter(bool forced_pending);
void svcwait_leave(void);

typedef struct svcwait_stats {
    uint64_t waits;          /* zero-timeout polls that found nothing and waited */
    uint64_t writes_deferred; /* descriptors waiting to write left for a later pass */
    uint64_t epoll_failures;  /* times the epoll sets could not follow (then: poll) */
    bool epoll;               /* readiness comes from the epoll sets now */
} svcwait_stats;

void svcwait_get_stats(svcwait_stats *out);

#endif
