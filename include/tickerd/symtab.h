/*
 * symtab.h — a string → dense id map (open addressing, FNV-1a). Ids are given
 * out 0, 1, 2, ... in insertion order and never reused, so callers index their
 * own per-symbol arrays by id. Capacity is bounded at creation.
 */
#ifndef TICKERD_SYMTAB_H
#define TICKERD_SYMTAB_H

#include <stdint.h>

#define SYMTAB_NAME_MAX 32 /* including the NUL */
#define SYMTAB_NONE UINT32_MAX

typedef struct symtab symtab;

symtab *symtab_new(uint32_t max_entries);
void symtab_free(symtab *t);
/* Id of name, or SYMTAB_NONE. */
uint32_t symtab_find(const symtab *t, const char *name);
/* Id of name, inserting it when absent; SYMTAB_NONE when full or name is
 * too long. *added tells whether it was inserted. */
uint32_t symtab_intern(symtab *t, const char *name, int *added);
uint32_t symtab_count(const symtab *t);
const char *symtab_name(const symtab *t, uint32_t id);

/* True for a canonical symbol BASE-QUOTE: [A-Z0-9]+ '-' [A-Z0-9]+, shorter
 * than SYMTAB_NAME_MAX. */
int symtab_is_canonical(const char *s);

#endif
