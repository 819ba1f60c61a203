/*
 * svcwait: poll() for lws' service loop, answered from epoll, without the
 * sub-millisecond spin and with bounded passes (why: include/tickerd/svcwait.h).
 *
 * Owns: the process's poll() and close() symbols, the epoll sets that
 * mirror lws' descriptor array, the per-thread "next poll is the service
 * loop's" flag, the rotation cursor of the plain-poll mode and the counters
 * of what it changed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* ppoll, epoll_pwait2 */
#endif
#include "tickerd/svcwait.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { ARM_NONE, ARM_BOUND, ARM_BOUND_AND_WAIT };

/* What one descriptor is registered for in the epoll sets. */
enum { REG_RD = 1, /* in the read set (always, once seen: errors and hang-ups come from it) */
       REG_IN = 2, /* ... with EPOLLIN */
       REG_OUT = 4, /* in the write set */
       REG_ARMED = 8 /* ... and armed: its one-shot EPOLLOUT has not fired yet */ };

/* The write set's own entry in the read set (no descriptor has this value). */
#define WRITE_SET_TAG UINT64_MAX

typedef struct sw_slot {
    atomic_uchar reg; /* REG_*; close() clears it from any thread */
    uint32_t idx;     /* position in lws' array at the last scan */
    uint32_t scan;    /* the scan that last saw the descriptor */
} sw_slot;

/*
 * The epoll side.  One service thread: everything but slots[].reg is touched
 * only by the thread inside svcwait_enter()/svcwait_leave().
 */
static struct {
    int rd, wr;         /* read set (holds the write set's fd too), write set */
    sw_slot *slots;     /* by descriptor number, `cap` of them */
    struct epoll_event *evs;
    size_t cap;
    uint32_t scan;
    bool on;            /* svcwait_start(SVCWAIT_EPOLL) succeeded and nothing failed since */
} ep = {.rd = -1, .wr = -1};

/* ep.slots for close(), on any thread: set once the table is complete. */
static _Atomic(sw_slot *) published;

static _Thread_local int armed;
static _Thread_local nfds_t cursor; /* plain-poll mode: where the next pass's writes start */
static atomic_uint_fast64_t waits, deferred, epoll_failures;

void svcwait_enter(bool forced_pending) { armed = forced_pending ? ARM_BOUND : ARM_BOUND_AND_WAIT; }
void svcwait_leave(void) { armed = ARM_NONE; }

void svcwait_get_stats(svcwait_stats *out)
{
    out->waits = atomic_load_explicit(&waits, memory_order_relaxed);
    out->writes_deferred = atomic_load_explicit(&deferred, memory_order_relaxed);
    out->epoll_failures = atomic_load_explicit(&epoll_failures, memory_order_relaxed);
    out->epoll = ep.on;
}

static nfds_t write_budget(nfds_t nfds)
{
    return nfds / 4 > SVCWAIT_MIN_WRITES ? nfds / 4 : SVCWAIT_MIN_WRITES;
}

int svcwait_start(svcwait_readiness mode)
{
    if (mode != SVCWAIT_EPOLL)
        return 0;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY)
        return -1;
    ep.cap = (size_t)rl.rlim_cur;
    ep.slots = calloc(ep.cap, sizeof *ep.slots);
    ep.evs = calloc(ep.cap + 1, sizeof *ep.evs);
    ep.rd = epoll_create1(EPOLL_CLOEXEC);
    ep.wr = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event tag = {.events = EPOLLIN, .data.u64 = WRITE_SET_TAG};
    if (!ep.slots || !ep.evs || ep.rd < 0 || ep.wr < 0 || epoll_ctl(ep.rd, EPOLL_CTL_ADD, ep.wr, &tag)) {
        svcwait_stop();
        return -1;
    }
    ep.on = true;
    atomic_store_explicit(&published, ep.slots, memory_order_release);
    return 0;
}

void svcwait_stop(void)
{
    ep.on = false;
    atomic_store_explicit(&published, NULL, memory_order_release);
    if (ep.rd >= 0)
        close(ep.rd);
    if (ep.wr >= 0)
        close(ep.wr);
    ep.rd = ep.wr = -1;
    free(ep.slots);
    free(ep.evs);
    ep.slots = NULL;
    ep.evs = NULL;
    ep.cap = 0;
}

/*
 * Why close() is ours: a closed descriptor leaves the epoll sets, and the
 * next socket usually gets the same number (the lowest free one) before the
 * next scan.  Without this the scan would take the new socket for the old
 * one, registered already, and never add it.
 */
int close(int fd)
{
    sw_slot *s = atomic_load_explicit(&published, memory_order_acquire);
    if (s && fd >= 0 && (size_t)fd < ep.cap) {
        unsigned reg = atomic_exchange_explicit(&s[fd].reg, 0, memory_order_relaxed);
        /* Removed while the number still names the file: a dup() of it (the
         * guard watches heads on one) would keep the entry alive otherwise,
         * reporting the old socket's events under a number reused since. */
        if (reg & REG_RD)
            epoll_ctl(ep.rd, EPOLL_CTL_DEL, fd, NULL);
        if (reg & REG_OUT)
            epoll_ctl(ep.wr, EPOLL_CTL_DEL, fd, NULL);
    }
    return (int)syscall(SYS_close, fd);
}

/* One epoll_ctl; ADD/MOD/DEL that find the other state already are fine. */
static int ctl(int set, int op, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)fd};
    if (!epoll_ctl(set, op, fd, &ev))
        return 0;
    if (op == EPOLL_CTL_ADD && errno == EEXIST)
        return epoll_ctl(set, EPOLL_CTL_MOD, fd, &ev);
    if (op == EPOLL_CTL_MOD && errno == ENOENT)
        return epoll_ctl(set, EPOLL_CTL_ADD, fd, &ev);
    return op == EPOLL_CTL_DEL && errno == ENOENT ? 0 : -1;
}

/*
 * Make the epoll sets say what lws' array asks for, clear every revents, and
 * note each descriptor's position.  Only differences cost a system call:
 * lws edits `events` in its array.  Write interest is one-shot: a writer is
 * armed once and reported once, and re-armed (one epoll_ctl) when it asks
 * again; a writer that stopped asking is not removed (that would be a second
 * call per frame) but fires once more and is masked.  Returns how many
 * descriptors want to write, or -1 (then the caller polls the array
 * itself).
 */
static long sync_sets(struct pollfd *fds, nfds_t nfds)
{
    long writers = 0;
    ep.scan++;
    for (nfds_t i = 0; i < nfds; i++) {
        int fd = fds[i].fd;
        fds[i].revents = 0;
        if (fd < 0)
            continue;
        if ((size_t)fd >= ep.cap)
            return -1;
        sw_slot *s = &ep.slots[fd];
        s->idx = (uint32_t)i;
        s->scan = ep.scan;
        unsigned have = atomic_load_explicit(&s->reg, memory_order_relaxed), reg = have;
        unsigned want_rd = REG_RD | (fds[i].events & POLLIN ? REG_IN : 0u);
        if ((have & (REG_RD | REG_IN)) != want_rd) {
            if (ctl(ep.rd, have & REG_RD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, want_rd & REG_IN ? EPOLLIN : 0))
                return -1;
            reg = (reg & ~(unsigned)(REG_RD | REG_IN)) | want_rd;
        }
        if (fds[i].events & POLLOUT) {
            writers++;
            if (!(have & REG_ARMED)) {
                if (ctl(ep.wr, have & REG_OUT ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, EPOLLOUT | EPOLLONESHOT))
                    return -1;
                reg |= REG_OUT | REG_ARMED;
            }
        }
        if (reg != have)
            atomic_store_explicit(&s->reg, (unsigned char)reg, memory_order_relaxed);
    }
    return writers;
}

static short poll_bits(uint32_t e)
{
    return (short)((e & EPOLLIN ? POLLIN : 0) | (e & EPOLLOUT ? POLLOUT : 0) | (e & EPOLLERR ? POLLERR : 0) |
                   (e & EPOLLHUP ? POLLHUP : 0) | (e & EPOLLPRI ? POLLPRI : 0));
}

/*
 * Copy n epoll events into the array's revents.  Returns how many array
 * entries gained their first event, and sets *write_set when the write set
 * reported itself ready.
 */
static int merge(struct pollfd *fds, int n, bool from_write_set, bool *write_set)
{
    int fresh = 0;
    for (int k = 0; k < n; k++) {
        if (ep.evs[k].data.u64 == WRITE_SET_TAG) {
            *write_set = true;
            continue;
        }
        int fd = (int)ep.evs[k].data.u64;
        sw_slot *s = &ep.slots[fd];
        if (s->scan != ep.scan) {
            /* Left lws' array without being closed: no longer ours to report. */
            epoll_ctl(ep.rd, EPOLL_CTL_DEL, fd, NULL);
            epoll_ctl(ep.wr, EPOLL_CTL_DEL, fd, NULL);
            atomic_store_explicit(&s->reg, 0, memory_order_relaxed);
            continue;
        }
        if (from_write_set) /* one-shot: disarmed until the next scan re-arms it */
            atomic_fetch_and_explicit(&s->reg, (unsigned char)~REG_ARMED, memory_order_relaxed);
        struct pollfd *p = &fds[s->idx];
        short bits = (short)(poll_bits(ep.evs[k].events) & (p->events | POLLERR | POLLHUP));
        fresh += bits && !p->revents;
        p->revents |= bits;
    }
    return fresh;
}

static int wait_rd(int timeout_ms, long slack_us)
{
    if (slack_us) {
        struct timespec ts = {0, slack_us * 1000L};
        return epoll_pwait2(ep.rd, ep.evs, (int)ep.cap + 1, &ts, NULL);
    }
    return epoll_wait(ep.rd, ep.evs, (int)ep.cap + 1, timeout_ms);
}

/*
 * The service loop's poll, from the epoll sets: every read, error and
 * hang-up, and the writes of the next `budget` writers in the write set's
 * ready list.  A writer reported leaves that list and joins its tail when
 * re-armed, so the passes take the writers in rotation.  Returns < -1
 * when the sets could not be kept (the caller polls instead).
 */
static int epoll_pass(struct pollfd *fds, nfds_t nfds, int timeout_ms, int mode)
{
    long writers = sync_sets(fds, nfds);
    if (writers < 0)
        return -2;
    int n = wait_rd(timeout_ms, 0);
    if (n == 0 && timeout_ms == 0 && mode == ARM_BOUND_AND_WAIT) {
        atomic_fetch_add_explicit(&waits, 1, memory_order_relaxed);
        n = wait_rd(0, SVCWAIT_SLACK_US);
    }
    if (n < 0)
        return errno == EINTR ? -1 : -2;
    bool write_set = false;
    int ready = merge(fds, n, false, &write_set);
    if (!write_set)
        return ready;
    int budget = (int)write_budget(nfds);
    int w = epoll_wait(ep.wr, ep.evs, budget, 0);
    if (w < 0)
        return errno == EINTR ? ready : -2;
    if (w == budget && writers > w)
        atomic_fetch_add_explicit(&deferred, (uint64_t)(writers - w), memory_order_relaxed);
    return ready + merge(fds, w, true, &write_set);
}

/*
 * Plain-poll mode: keep the first `budget` write-only events from the cursor
 * on (wrapping), clear the rest, and move the cursor past the last one kept.
 * Returns the number of descriptors still reporting events.
 */
static int bound_writes(struct pollfd *fds, nfds_t nfds, int ready)
{
    nfds_t budget = write_budget(nfds);
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
 * recursion), except for the service loop's own poll.
 */
int poll(struct pollfd *fds, nfds_t nfds, int timeout_ms)
{
    int mode = armed;
    armed = ARM_NONE; /* later polls in this service call are lws' own probes */
    if (mode != ARM_NONE && ep.on) {
        int r = epoll_pass(fds, nfds, timeout_ms, mode);
        if (r >= -1)
            return r;
        /* The sets could not follow the array (no memory for the kernel's
         * entries, a descriptor past the limit): poll from here on. */
        atomic_fetch_add_explicit(&epoll_failures, 1, memory_order_relaxed);
        ep.on = false;
        timeout_ms = 0; /* the time may have been spent already */
    }
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
