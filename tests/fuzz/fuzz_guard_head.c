/* fuzz_guard_head.c — libFuzzer over the listener guard's head check
 * (guard_head.h): the input is the first bytes a connection sends. Every
 * verdict must be stable as more bytes arrive (a verdict reached on a prefix
 * is the verdict on the whole), a passed head must end in its blank line
 * and fit lws' header space, and nothing may be read past the input. */
#define CHECK(c) ((c) ? (void)0 : __builtin_trap())
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/guard_head.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy, so ASan sees any read past the end */
    char *in = malloc(size ? size : 1);
    if (!in)
        return 0;
    memcpy(in, data, size);
    size_t head = 0;
    guard_verdict whole = guard_check_head(in, size, &head);
    CHECK(whole < GUARD_VERDICT_COUNT);
    if (whole == GUARD_PASS) {
        CHECK(head >= 4 && head <= size && head <= GUARD_HEAD_MAX);
        CHECK(in[head - 1] == '\n');
    }
    if (whole != GUARD_INCOMPLETE)
        CHECK(guard_status(whole) || whole == GUARD_PASS);
    /* Prefixes: once decided, the verdict holds for every longer input. */
    for (size_t cut = 0; cut < size; cut += 1 + cut / 8) {
        size_t h = 0;
        guard_verdict v = guard_check_head(in, cut, &h);
        if (v != GUARD_INCOMPLETE)
            CHECK(v == whole && (v != GUARD_PASS || h == head));
    }
    free(in);
    return 0;
}
