/*
 * admin.h — the operator's read-only view (docs/api.md#admin): /api/admin's
 * JSON, which the page at /admin renders. Sessions by transport and by
 * address, the slowest clients (by the values conflation skipped for them),
 * feeds with their state, last error and reconnects, the history store, the
 * broadcaster's totals. It only reads what the other modules expose; the
 * HTTP module decides who may see it (admin.enabled, admin.allowed_addresses).
 */
#ifndef TICKERD_ADMIN_H
#define TICKERD_ADMIN_H
#include "tickerd/http.h"

/* How many of the slowest clients and of the busiest addresses are listed. */
#define ADMIN_SLOWEST 20
#define ADMIN_ADDRESSES 50

struct sbuf;
/* Append the /api/admin document to out. 0, or -1 when out of memory. */
int admin_render(const http_sources *src, struct sbuf *out);

#endif
