/* symtab.c — see symtab.h. The hash index holds ids; names live in a dense
 * array so that id → name is a plain index. Both grow by doubling up to the
 * bound given at creation. */
#include "tickerd/symtab.h"

#include <stdlib.h>
#include <string.h>

typedef struct symtab_name_slot {
    char s[SYMTAB_NAME_MAX];
} symtab_name_slot;

struct symtab {
    uint32_t *index; /* hash slots holding id + 1; 0 = empty */
    uint32_t mask;
    symtab_name_slot *names;
    uint32_t count, names_cap, max;
};

static uint32_t symtab_hash(const char *s)
{
    uint32_t h = 2166136261u;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 16777619u;
    return h;
}

symtab *symtab_new(uint32_t max_entries)
{
    symtab *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->max = max_entries;
    t->mask = 63;
    t->index = calloc(t->mask + 1, sizeof(*t->index));
    if (!t->index) {
        free(t);
        return NULL;
    }
    return t;
}

void symtab_free(symtab *t)
{
    if (!t)
        return;
    free(t->index);
    free(t->names);
    free(t);
}

uint32_t symtab_find(const symtab *t, const char *name)
{
    for (uint32_t i = symtab_hash(name) & t->mask;; i = (i + 1) & t->mask) {
        uint32_t slot = t->index[i];
        if (!slot)
            return SYMTAB_NONE;
        if (!strcmp(t->names[slot - 1].s, name))
            return slot - 1;
    }
}

/* Keep the load factor under 1/2 so probes stay short. */
static int symtab_grow_index(symtab *t)
{
    uint32_t nmask = t->mask * 2 + 1;
    uint32_t *nindex = calloc((size_t)nmask + 1, sizeof(*nindex));
    if (!nindex)
        return -1;
    for (uint32_t id = 0; id < t->count; id++) {
        uint32_t i = symtab_hash(t->names[id].s) & nmask;
        while (nindex[i])
            i = (i + 1) & nmask;
        nindex[i] = id + 1;
    }
    free(t->index);
    t->index = nindex;
    t->mask = nmask;
    return 0;
}

uint32_t symtab_intern(symtab *t, const char *name, int *added)
{
    if (added)
        *added = 0;
    if (strlen(name) >= SYMTAB_NAME_MAX)
        return SYMTAB_NONE;
    uint32_t id = symtab_find(t, name);
    if (id != SYMTAB_NONE)
        return id;
    if (t->count >= t->max)
        return SYMTAB_NONE;
    if ((t->count + 1) * 2 > t->mask + 1 && symtab_grow_index(t))
        return SYMTAB_NONE;
    if (t->count == t->names_cap) {
        uint32_t ncap = t->names_cap ? t->names_cap * 2 : 64;
        symtab_name_slot *n = realloc(t->names, (size_t)ncap * sizeof(*n));
        if (!n)
            return SYMTAB_NONE;
        t->names = n;
        t->names_cap = ncap;
    }
    id = t->count++;
    strcpy(t->names[id].s, name);
    uint32_t i = symtab_hash(name) & t->mask;
    while (t->index[i])
        i = (i + 1) & t->mask;
    t->index[i] = id + 1;
    if (added)
        *added = 1;
    return id;
}

uint32_t symtab_count(const symtab *t) { return t->count; }

const char *symtab_name(const symtab *t, uint32_t id)
{
    return id < t->count ? t->names[id].s : NULL;
}

int symtab_is_canonical(const char *s)
{
    size_t len = 0, dash = 0, dash_at = 0;
    for (; s[len]; len++) {
        char c = s[len];
        if (c == '-') {
            dash++;
            dash_at = len;
        } else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
            return 0;
        }
    }
    return dash == 1 && dash_at > 0 && dash_at < len - 1 && len < SYMTAB_NAME_MAX;
}
