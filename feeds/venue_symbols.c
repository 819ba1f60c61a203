/*
 * venue_symbols.c — what adapters share about a venue feed's configured
 * symbols (venue.h, "for adapters"): parsing the "symbols" list against a
 * preset, and finding which configured symbol an update names. Kept apart
 * from the parsers in venue.c because it needs the config machinery, which
 * the parsers (and their fuzz targets) do not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/symtab.h"
#include "tickerd/venue.h"

int venue_parse_symbols(const json_t *arr, const char *path, const venue_preset *v, size_t max,
                        venue_symbol_map **out, size_t *n, cfg_error *err)
{
    *out = NULL;
    *n = 0;
    if (!json_is_array(arr) || !json_array_size(arr))
        return cfg_fail(err, "%s.symbols: required, a non-empty array", path);
    if (json_array_size(arr) > max)
        return cfg_fail(err, "%s.symbols: at most %zu symbols", path, max);
    venue_symbol_map *m = calloc(json_array_size(arr), sizeof(*m));
    if (!m)
        return cfg_fail(err, "%s.symbols: out of memory", path);
    *out = m;
    *n = json_array_size(arr);
    for (size_t i = 0; i < *n; i++) {
        static const cfg_field f[] = {
            {"symbol", CFG_STRING, offsetof(venue_symbol_map, canonical), 0, SYMTAB_NAME_MAX},
            {"venue", CFG_STRING, offsetof(venue_symbol_map, venue), 0, VENUE_SYMBOL_MAX},
        };
        const json_t *e = json_array_get(arr, i);
        char p[96];
        snprintf(p, sizeof(p), "%s.symbols[%zu]", path, i);
        if (json_is_string(e))
            snprintf(m[i].canonical, sizeof(m[i].canonical), "%s", json_string_value(e));
        else if (cfg_parse_fields(e, p, f, 2, NULL, &m[i], err))
            return -1;
        if (!symtab_is_canonical(m[i].canonical))
            return cfg_fail(err, "%s: \"%s\" is not a canonical symbol (BASE-QUOTE)", p,
                            m[i].canonical);
        if (!m[i].venue[0] && v->to_venue(m[i].canonical, m[i].venue, sizeof(m[i].venue)))
            return cfg_fail(err, "%s: no %s spelling known for %s; give {\"symbol\",\"venue\"}",
                            p, v->name, m[i].canonical);
    }
    return 0;
}

long venue_symbol_index(const venue_preset *v, const venue_symbol_map *m, size_t n,
                        const char *venue_symbol)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(m[i].venue, venue_symbol))
            return (long)i;
    char canonical[SYMTAB_NAME_MAX];
    if (v->to_canonical(venue_symbol, canonical, sizeof(canonical)))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(m[i].canonical, canonical))
            return (long)i;
    return -1;
}

void venue_symbols_each(const venue_symbol_map *m, size_t n, void (*each)(void *arg, const char *canonical),
                        void *arg)
{
    for (size_t i = 0; i < n; i++)
        each(arg, m[i].canonical);
}
