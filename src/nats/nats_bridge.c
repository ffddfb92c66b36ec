/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats.c threads -> loop, and loop -> management worker -> loop (see nats_bridge.h).
 *
 * Two intrusive singly linked FIFOs, each with head and tail pointers:
 *   - the post list (any thread appends, the loop swaps it out whole under the lock and then runs
 *     the callbacks without holding it, so a callback may post again without deadlock);
 *   - the work list (the loop appends, the worker pops one item at a time).
 * The item's `next` field is the only link, so posting allocates nothing. An item is on at most
 * one list at a time: the worker pops it before running on_worker and only then posts it back.
 *
 * uv_async_send() is the only libuv call made off the loop thread; libuv documents it as
 * thread-safe and coalescing ("multiple calls ... may be coalesced into one callback").
 */
#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>

#include "nats/nats_bridge.h"
#include "util/util_mem.h"

struct evd_bridge_list {
	struct evd_bridge_item *head;
	struct evd_bridge_item *tail;
};

struct evd_bridge {
	uv_loop_t *loop;
	uv_async_t async; /* loop-owned; the bridge is freed in its close callback */

	uv_mutex_t post_lock; /* guards posted and closed */
	struct evd_bridge_list posted;
	bool closed; /* posts after close are ignored */

	uv_mutex_t work_lock; /* guards work, work_count, stop; with work_cond */
	uv_cond_t work_cond;
	struct evd_bridge_list work;
	unsigned work_count;
	bool stop;
	uv_thread_t worker;
};

static void list_append(struct evd_bridge_list *l, struct evd_bridge_item *item)
{
	item->next = NULL;
	if (l->tail)
		l->tail->next = item;
	else
		l->head = item;
	l->tail = item;
}

static struct evd_bridge_item *list_pop(struct evd_bridge_list *l)
{
	struct evd_bridge_item *item = l->head;

	if (item) {
		l->head = item->next;
		if (!l->head)
			l->tail = NULL;
		item->next = NULL;
	}
	return item;
}

/* Loop thread: takes everything posted so far and runs it in order. */
static void bridge_drain(struct evd_bridge *b)
{
	struct evd_bridge_item *item, *next;

	uv_mutex_lock(&b->post_lock);
	item = b->posted.head;
	b->posted.head = b->posted.tail = NULL;
	uv_mutex_unlock(&b->post_lock);

	for (; item; item = next) {
		/* Read next before the callback: the callback may free or re-post the item. */
		next = item->next;
		item->next = NULL;
		item->on_loop(item);
	}
}

static void on_async(uv_async_t *async)
{
	bridge_drain(async->data);
}

static void worker_main(void *arg)
{
	struct evd_bridge *b = arg;
	struct evd_bridge_item *item;

	for (;;) {
		uv_mutex_lock(&b->work_lock);
		while (!b->stop && !b->work.head)
			uv_cond_wait(&b->work_cond, &b->work_lock);
		if (b->stop) {
			uv_mutex_unlock(&b->work_lock);
			return;
		}
		item = list_pop(&b->work);
		b->work_count--;
		uv_mutex_unlock(&b->work_lock);

		if (item->on_worker)
			item->on_worker(item);
		evd_bridge_post(b, item);
	}
}

static void on_async_closed_early(uv_handle_t *h)
{
	free(h->data);
}

int evd_bridge_new(uv_loop_t *loop, struct evd_bridge **out)
{
	struct evd_bridge *b = evd_xcalloc(1, sizeof(*b));
	int stage = 0;
	int err;

	b->loop = loop;
	if ((err = uv_mutex_init(&b->post_lock)) < 0)
		goto fail;
	stage = 1;
	if ((err = uv_mutex_init(&b->work_lock)) < 0)
		goto fail;
	stage = 2;
	if ((err = uv_cond_init(&b->work_cond)) < 0)
		goto fail;
	stage = 3;
	if ((err = uv_async_init(loop, &b->async, on_async)) < 0)
		goto fail;
	b->async.data = b;
	stage = 4;
	if ((err = uv_thread_create(&b->worker, worker_main, b)) < 0)
		goto fail;
	*out = b;
	return 0;

fail:
	if (stage >= 3)
		uv_cond_destroy(&b->work_cond);
	if (stage >= 2)
		uv_mutex_destroy(&b->work_lock);
	if (stage >= 1)
		uv_mutex_destroy(&b->post_lock);
	if (stage >= 4) {
		/* The async handle must be closed before the memory goes: free in its callback. */
		uv_close((uv_handle_t *)&b->async, on_async_closed_early);
		return err;
	}
	free(b);
	return err;
}

void evd_bridge_post(struct evd_bridge *b, struct evd_bridge_item *item)
{
	bool wake = false;

	assert(item->on_loop);
	uv_mutex_lock(&b->post_lock);
	if (!b->closed) {
		/* A non-empty list already has a wake-up on its way. */
		wake = b->posted.head == NULL;
		list_append(&b->posted, item);
		/*
		 * uv_async_send under the lock: close sets `closed` under the same lock before it
		 * closes the handle, so no send can race with uv_close.
		 */
		if (wake)
			uv_async_send(&b->async);
	}
	uv_mutex_unlock(&b->post_lock);
}

void evd_bridge_work(struct evd_bridge *b, struct evd_bridge_item *item)
{
	assert(item->on_loop && item->on_worker);
	uv_mutex_lock(&b->work_lock);
	list_append(&b->work, item);
	b->work_count++;
	uv_cond_signal(&b->work_cond);
	uv_mutex_unlock(&b->work_lock);
}

unsigned evd_bridge_work_pending(const struct evd_bridge *b)
{
	struct evd_bridge *mb = (struct evd_bridge *)b; /* the lock is not part of the value */
	unsigned n;

	uv_mutex_lock(&mb->work_lock);
	n = mb->work_count;
	uv_mutex_unlock(&mb->work_lock);
	return n;
}

static void on_async_closed(uv_handle_t *h)
{
	struct evd_bridge *b = h->data;

	uv_mutex_destroy(&b->post_lock);
	uv_mutex_destroy(&b->work_lock);
	uv_cond_destroy(&b->work_cond);
	free(b);
}

void evd_bridge_close(struct evd_bridge *b)
{
	/* Queued work that has not started is dropped: the worker sees `stop` before popping. */
	uv_mutex_lock(&b->work_lock);
	b->stop = true;
	b->work.head = b->work.tail = NULL;
	b->work_count = 0;
	uv_cond_signal(&b->work_cond);
	uv_mutex_unlock(&b->work_lock);
	/* The item the worker was running has been posted back by the time join returns. */
	uv_thread_join(&b->worker);

	bridge_drain(b);

	uv_mutex_lock(&b->post_lock);
	b->closed = true;
	uv_mutex_unlock(&b->post_lock);
	/* Posts that slipped in between the drain and `closed` still run, in order. */
	bridge_drain(b);

	uv_close((uv_handle_t *)&b->async, on_async_closed);
}
