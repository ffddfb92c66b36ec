/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-consumer attempt table (dispatch_internal.h): stream sequence -> attempts so far and
 * the message being handled. A consumer holds at most MaxAckPending messages (ours or backing
 * off), so the table stays small; open addressing with backward-shift deletion keeps lookups one
 * or two probes without tombstones building up under constant churn.
 */
#include <stdbool.h>
#include <stdlib.h>

#include "dispatch/dispatch_internal.h"
#include "util/util_mem.h"

static size_t slot_of(const struct evd_dispatch_track *t, uint64_t seq)
{
	return (size_t)((seq * 0x9E3779B97F4A7C15ull) >> 20) & (t->cap - 1);
}

struct dtrack *evd_dispatch_track_find(struct evd_dispatch_track *t, uint64_t seq)
{
	if (!t->cap || !seq)
		return NULL;
	for (size_t i = slot_of(t, seq);; i = (i + 1) & (t->cap - 1)) {
		if (t->slots[i].seq == seq)
			return &t->slots[i];
		if (!t->slots[i].seq)
			return NULL;
	}
}

static void rehash(struct evd_dispatch_track *t, size_t cap)
{
	struct dtrack *old = t->slots;
	size_t oldcap = t->cap;
	t->slots = evd_xcalloc(cap, sizeof(*t->slots));
	t->cap = cap;
	t->n = 0;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].seq)
			evd_dispatch_track_put(t, &old[i]);
	free(old);
}

struct dtrack *evd_dispatch_track_put(struct evd_dispatch_track *t, const struct dtrack *v)
{
	if ((t->n + 1) * 2 > t->cap)
		rehash(t, t->cap ? t->cap * 2 : 64);
	size_t i = slot_of(t, v->seq);
	while (t->slots[i].seq)
		i = (i + 1) & (t->cap - 1);
	t->slots[i] = *v;
	t->n++;
	return &t->slots[i];
}

void evd_dispatch_track_del(struct evd_dispatch_track *t, uint64_t seq)
{
	struct dtrack *e = evd_dispatch_track_find(t, seq);
	if (!e)
		return;
	size_t i = (size_t)(e - t->slots), mask = t->cap - 1;
	for (size_t j = (i + 1) & mask; t->slots[j].seq; j = (j + 1) & mask) {
		size_t home = slot_of(t, t->slots[j].seq);
		/* j may fill the hole at i unless its home lies cyclically in (i, j]. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			t->slots[i] = t->slots[j];
			i = j;
		}
	}
	t->slots[i] = (struct dtrack){ 0 };
	t->n--;
}

static bool keep(const struct dtrack *e, uint64_t now, uint64_t age)
{
	return e->seq && (e->live || now - e->touched < age);
}

void evd_dispatch_track_gc(struct evd_dispatch_track *t, uint64_t now, uint64_t age)
{
	struct dtrack *old = t->slots;
	size_t oldcap = t->cap, n = 0, cap = 64;
	if (!oldcap)
		return;
	for (size_t i = 0; i < oldcap; i++)
		n += keep(&old[i], now, age);
	/* At most half full, and a burst (a long outage with a large maxInFlightMessages) does
	 * not keep its size. */
	while (cap < 2 * (n + 1))
		cap *= 2;
	t->slots = evd_xcalloc(cap, sizeof(*t->slots));
	t->cap = cap;
	t->n = 0;
	for (size_t i = 0; i < oldcap; i++)
		if (keep(&old[i], now, age))
			evd_dispatch_track_put(t, &old[i]);
	free(old);
}

void evd_dispatch_track_free(struct evd_dispatch_track *t)
{
	free(t->slots);
	*t = (struct evd_dispatch_track){ 0 };
}

uint32_t evd_dispatch_prior_attempts(uint64_t delivered)
{
	if (delivered <= 1)
		return 0;
	return delivered - 1 > UINT32_MAX ? UINT32_MAX : (uint32_t)(delivered - 1);
}
