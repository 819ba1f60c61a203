/*
 * check.h — the unit tests' tiny harness: CHECK records a failure with its
 * location and goes on; check_done() prints "N passed, N failed" and gives the
 * exit status.
 */
#ifndef TICKERD_CHECK_H
#define TICKERD_CHECK_H

#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define RUN(test)                                                                                  \
    do {                                                                                           \
        int before = check_failed;                                                                 \
        test();                                                                                    \
        fprintf(stderr, "%s %s\n", check_failed == before ? "ok  " : "FAIL", #test);               \
    } while (0)

static inline int check_done(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
