/* feed_mailbox.c — see feed_mailbox.h. One mutex guards the slots; the
 * service thread copies the pending values out under it and emits them after
 * unlocking, so the producer never waits on downstream work. */
#include "tickerd/feed_mailbox.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/symtab.h"

typedef struct mailbox_slot {
    feed_update u;
    char symbol[SYMTAB_NAME_MAX];
    uint8_t full;
} mailbox_slot;

struct feed_mailbox {
    pthread_mutex_t lock;
    struct lws_context *ctx;
    mailbox_slot *slots, *out; /* out: the drain's private copy */
    uint32_t *pending;         /* slot indices with full set, in arrival order */
    size_t nslots, npending;
    uint64_t overwritten;
};

/* A symbol that does not fit, or a slot out of range, is a bug in the
 * adapter: refuse it visibly (counted as overwritten) rather than rename it. */

feed_mailbox *feed_mailbox_create(size_t slots, struct lws_context *ctx)
{
    feed_mailbox *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->ctx = ctx;
    m->nslots = slots;
    m->slots = calloc(slots ? slots : 1, sizeof(*m->slots));
    m->out = calloc(slots ? slots : 1, sizeof(*m->out));
    m->pending = calloc(slots ? slots : 1, sizeof(*m->pending));
    if (!m->slots || !m->out || !m->pending || pthread_mutex_init(&m->lock, NULL)) {
        free(m->slots);
        free(m->out);
        free(m->pending);
        free(m);
        return NULL;
    }
    return m;
}

void feed_mailbox_destroy(feed_mailbox *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m->slots);
    free(m->out);
    free(m->pending);
    free(m);
}

void feed_mailbox_put(feed_mailbox *m, size_t slot, const feed_update *u)
{
    pthread_mutex_lock(&m->lock);
    if (slot >= m->nslots || strlen(u->symbol) >= SYMTAB_NAME_MAX) {
        m->overwritten++;
        pthread_mutex_unlock(&m->lock);
        return;
    }
    mailbox_slot *s = &m->slots[slot];
    s->u = *u;
    strcpy(s->symbol, u->symbol);
    s->u.symbol = s->symbol;
    int wake = 0;
    if (s->full) {
        m->overwritten++;
    } else {
        s->full = 1;
        m->pending[m->npending++] = (uint32_t)slot;
        wake = m->npending == 1; /* wakeups coalesce: one per empty→non-empty */
    }
    pthread_mutex_unlock(&m->lock);
    if (wake)
        lws_cancel_service(m->ctx);
}

size_t feed_mailbox_drain(feed_mailbox *m, const feed_sink *sink)
{
    pthread_mutex_lock(&m->lock);
    size_t n = m->npending;
    for (size_t i = 0; i < n; i++) {
        mailbox_slot *s = &m->slots[m->pending[i]];
        m->out[i] = *s;
        m->out[i].u.symbol = m->out[i].symbol;
        s->full = 0;
    }
    m->npending = 0;
    pthread_mutex_unlock(&m->lock);
    for (size_t i = 0; i < n; i++)
        sink->emit(sink->arg, &m->out[i].u);
    return n;
}

uint64_t feed_mailbox_overwritten(feed_mailbox *m)
{
    pthread_mutex_lock(&m->lock);
    uint64_t v = m->overwritten;
    pthread_mutex_unlock(&m->lock);
    return v;
}
