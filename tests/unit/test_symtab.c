/* symtab: dense ids, lookups across growth, bounds, canonical symbols. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "tickerd/symtab.h"

static void interns_and_finds_across_growth(void)
{
    symtab *t = symtab_new(10000);
    char name[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "S%d-USD", i);
        int added;
        CHECK(symtab_intern(t, name, &added) == (uint32_t)i);
        CHECK(added);
    }
    int ok = 1;
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "S%d-USD", i);
        ok &= symtab_find(t, name) == (uint32_t)i;
        ok &= !strcmp(symtab_name(t, (uint32_t)i), name);
    }
    CHECK(ok);
    CHECK(symtab_find(t, "NOPE-USD") == SYMTAB_NONE);
    int added = 1;
    CHECK(symtab_intern(t, "S7-USD", &added) == 7 && !added);
    symtab_free(t);
}

static void refuses_beyond_its_bound_and_long_names(void)
{
    symtab *t = symtab_new(2);
    CHECK(symtab_intern(t, "A-B", NULL) == 0);
    CHECK(symtab_intern(t, "C-D", NULL) == 1);
    CHECK(symtab_intern(t, "E-F", NULL) == SYMTAB_NONE);
    CHECK(symtab_intern(t, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-B", NULL) == SYMTAB_NONE);
    CHECK(symtab_count(t) == 2);
    symtab_free(t);
}

static void recognises_canonical_symbols(void)
{
    CHECK(symtab_is_canonical("BTC-USD"));
    CHECK(symtab_is_canonical("G00001-USD"));
    CHECK(!symtab_is_canonical("btc-usd"));
    CHECK(!symtab_is_canonical("BTCUSD"));
    CHECK(!symtab_is_canonical("BTC-USD-X"));
    CHECK(!symtab_is_canonical("-USD"));
    CHECK(!symtab_is_canonical("BTC-"));
    CHECK(!symtab_is_canonical(""));
    CHECK(!symtab_is_canonical("XBT/USD"));
}

int main(void)
{
    RUN(interns_and_finds_across_growth);
    RUN(refuses_beyond_its_bound_and_long_names);
    RUN(recognises_canonical_symbols);
    return check_done();
}
