/*
 * svcwait: keeps lws' poll() loop from spinning while it waits for a timer
 * less than a millisecond away.
 *
 * lws 4.1.6 (_lws_plat_service_tsi, lib/plat/unix/unix-service.c) turns the
 * time to its next timer into poll()'s millisecond timeout by truncation, so
 * a timer 0.97 ms away becomes poll(fds, n, 0), and the loop calls poll()
 * again and again until the timer is due.  With the sim feed's 1 ms tick that
 * was 40,000 poll() calls per second and most of a core at 20,000
 * deliveries/s (perf: 80 % of the CPU in do_sys_poll / tcp_poll).
 *
 * The fix lives where the truncation happens: tickerd defines poll() (the
 * executable's definition is the one libwebsockets binds to), and on the
 * service thread only, inside svcwait_enter() / svcwait_leave(), a
 * zero-timeout poll() that finds nothing ready waits up to
 * SVCWAIT_SLACK_US for a socket event instead of returning at once.  A timer
 * may so fire up to that much late; every socket event still wakes the loop
 * at once.  Every other caller (curl's threads, lws outside the service
 * call) gets poll() unchanged.
 */
#ifndef TICKERD_SVCWAIT_H
#define TICKERD_SVCWAIT_H

#include <stdint.h>

#define SVCWAIT_SLACK_US 500

/* Around each lws_service() call on the service thread. */
void svcwait_enter(void);
void svcwait_leave(void);

/* How many zero-timeout polls found nothing and waited instead (since start). */
uint64_t svcwait_waits(void);

#endif
