/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The nats bridge: posts from many threads arrive once each and in per-thread order; work runs
 * FIFO on one worker thread and comes back to the loop; close with work still queued drops what
 * has not started and runs what was posted. Also built under TSan (see the nats report/README).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <uv.h>

#include "nats/nats_bridge.h"
#include "unit.h"
#include "util/util_mem.h"

#define THREADS 4
#define PER_THREAD 100000

/* Each test item starts with its bridge item, so the callbacks cast back (C11 6.7.2.1p15). */
struct post_item {
	struct evd_bridge_item item;
	int thread;
	int seq;
};

struct poster {
	struct evd_bridge *bridge;
	struct post_item *items;
	int thread;
	uv_thread_t tid;
};

static int next_seq[THREADS];
static int order_errors;
static int received;
static struct evd_bridge *the_bridge;

static void on_post_loop(struct evd_bridge_item *item)
{
	struct post_item *p = (struct post_item *)item;

	if (p->seq != next_seq[p->thread])
		order_errors++;
	next_seq[p->thread] = p->seq + 1;
	if (++received == THREADS * PER_THREAD)
		evd_bridge_close(the_bridge);
}

static void poster_main(void *arg)
{
	struct poster *ps = arg;

	for (int i = 0; i < PER_THREAD; i++) {
		ps->items[i].item.on_loop = on_post_loop;
		ps->items[i].thread = ps->thread;
		ps->items[i].seq = i;
		evd_bridge_post(ps->bridge, &ps->items[i].item);
		if (i % 1000 == 0)
			uv_sleep(0); /* let the loop drain in between sometimes */
	}
}

static void test_many_posters(void)
{
	uv_loop_t loop;
	struct poster ps[THREADS];

	uv_loop_init(&loop);
	CHECK_INT(evd_bridge_new(&loop, &the_bridge), 0);
	for (int t = 0; t < THREADS; t++) {
		ps[t].bridge = the_bridge;
		ps[t].thread = t;
		ps[t].items = evd_xcalloc(PER_THREAD, sizeof(struct post_item));
		next_seq[t] = 0;
		CHECK_INT(uv_thread_create(&ps[t].tid, poster_main, &ps[t]), 0);
	}
	/* The async handle keeps the loop alive until the last item closes the bridge. */
	uv_run(&loop, UV_RUN_DEFAULT);
	for (int t = 0; t < THREADS; t++) {
		uv_thread_join(&ps[t].tid);
		CHECK_INT(next_seq[t], PER_THREAD);
		free(ps[t].items);
	}
	CHECK_INT(received, THREADS * PER_THREAD);
	CHECK_INT(order_errors, 0);
	CHECK_INT(uv_loop_close(&loop), 0);
}

/* ---- work ---- */

#define WORK_ITEMS 50

struct work_item {
	struct evd_bridge_item item;
	int index;
	uv_thread_t worker_thread; /* written on the worker, read on the loop */
	int worker_order;
	bool ran_on_worker;
	bool back_on_loop;
};

static struct work_item works[WORK_ITEMS];
static int worker_counter; /* worker thread only */
static int loop_counter;   /* loop only */
static int loop_order_errors;
static uv_thread_t loop_thread;

static void on_work_worker(struct evd_bridge_item *item)
{
	struct work_item *w = (struct work_item *)item;

	w->worker_thread = uv_thread_self();
	w->worker_order = worker_counter++;
	w->ran_on_worker = true;
	if (w->index % 10 == 0)
		uv_sleep(2);
}

static void on_work_loop(struct evd_bridge_item *item)
{
	struct work_item *w = (struct work_item *)item;
	uv_thread_t self = uv_thread_self();

	CHECK(uv_thread_equal(&self, &loop_thread));
	CHECK(!uv_thread_equal(&w->worker_thread, &loop_thread));
	if (w->index != loop_counter)
		loop_order_errors++;
	w->back_on_loop = true;
	if (++loop_counter == WORK_ITEMS) {
		CHECK_INT(evd_bridge_work_pending(the_bridge), 0);
		evd_bridge_close(the_bridge);
	}
}

static void test_work_fifo(void)
{
	uv_loop_t loop;

	uv_loop_init(&loop);
	loop_thread = uv_thread_self();
	CHECK_INT(evd_bridge_new(&loop, &the_bridge), 0);
	for (int i = 0; i < WORK_ITEMS; i++) {
		works[i].index = i;
		works[i].item.on_worker = on_work_worker;
		works[i].item.on_loop = on_work_loop;
		evd_bridge_work(the_bridge, &works[i].item);
	}
	CHECK(evd_bridge_work_pending(the_bridge) <= WORK_ITEMS);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_INT(loop_counter, WORK_ITEMS);
	CHECK_INT(loop_order_errors, 0);
	for (int i = 0; i < WORK_ITEMS; i++) {
		CHECK_INT(works[i].worker_order, i);
		CHECK(works[i].ran_on_worker && works[i].back_on_loop);
		CHECK(uv_thread_equal(&works[i].worker_thread, &works[0].worker_thread));
	}
	CHECK_INT(uv_loop_close(&loop), 0);
}

/* ---- close with pending work ---- */

struct slow_item {
	struct evd_bridge_item item;
	uv_sem_t *started;
	int ran_worker; /* worker writes; the loop reads after join (close) */
	int ran_loop;
};

static struct slow_item slow[10];
static struct post_item posted_before_close;
static int posted_ran;

static void on_slow_worker(struct evd_bridge_item *item)
{
	struct slow_item *s = (struct slow_item *)item;

	s->ran_worker++;
	if (s->started) {
		uv_sem_post(s->started);
		uv_sleep(50); /* close must wait for this one */
	}
}

static void on_slow_loop(struct evd_bridge_item *item)
{
	((struct slow_item *)item)->ran_loop++;
}

static void on_posted_loop(struct evd_bridge_item *item)
{
	posted_ran++;
}

static void test_close_with_pending(void)
{
	uv_loop_t loop;
	uv_sem_t started;

	uv_loop_init(&loop);
	uv_sem_init(&started, 0);
	CHECK_INT(evd_bridge_new(&loop, &the_bridge), 0);
	for (int i = 0; i < 10; i++) {
		slow[i].item.on_worker = on_slow_worker;
		slow[i].item.on_loop = on_slow_loop;
		slow[i].started = i == 0 ? &started : NULL;
		evd_bridge_work(the_bridge, &slow[i].item);
	}
	posted_before_close.item.on_loop = on_posted_loop;
	evd_bridge_post(the_bridge, &posted_before_close.item);
	uv_sem_wait(&started); /* item 0 is running on the worker */
	CHECK_INT(evd_bridge_work_pending(the_bridge), 9);
	evd_bridge_close(the_bridge);
	/* The running item finished and came back; the nine queued ones never started. */
	CHECK_INT(slow[0].ran_worker, 1);
	CHECK_INT(slow[0].ran_loop, 1);
	for (int i = 1; i < 10; i++) {
		CHECK_INT(slow[i].ran_worker, 0);
		CHECK_INT(slow[i].ran_loop, 0);
	}
	CHECK_INT(posted_ran, 1);
	uv_run(&loop, UV_RUN_DEFAULT); /* runs the async handle's close callback */
	CHECK_INT(uv_loop_close(&loop), 0);
	uv_sem_destroy(&started);
}

int main(void)
{
	test_many_posters();
	test_work_fifo();
	test_close_with_pending();
	UNIT_MAIN_END();
}
