/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one place where nats.c's threads meet the libuv loop.
 *
 * nats.c runs threads of its own even though its socket is read and written on the loop
 * (nats_conn.h): the connection-callback, reconnect and ping-timer threads, the delivery pool
 * that carries replies to management requests, and, for a TLS connection, the socket reader
 * and flusher. Code on those threads does nothing but evd_bridge_post(): push an intrusive item
 * onto a mutex-protected list and uv_async_send(). The loop drains the whole list in one go
 * (uv_async_send calls coalesce) and runs each item's callback on the loop thread, in the order
 * posted.
 *
 * Blocking JetStream management calls (js_AddStream, js_AddConsumer, js_GetStreamInfo, Flush,
 * connect...) never run on the loop: evd_bridge_work() runs them on one dedicated worker thread
 * of ours, in submission order, and posts the item back to the loop when done. (libuv's shared
 * pool is not used: a NATS outage makes each call block for seconds and would starve
 * uv_getaddrinfo and uv_fs.)
 *
 * Ownership: items are embedded in the caller's objects (no allocation per post); the caller
 * keeps an item alive until its callback has run. The bridge is created and closed on the loop.
 */
#ifndef EVD_NATS_BRIDGE_H
#define EVD_NATS_BRIDGE_H

#include <uv.h>

struct evd_bridge;
struct evd_bridge_item;

typedef void (*evd_bridge_cb)(struct evd_bridge_item *item);

struct evd_bridge_item {
	struct evd_bridge_item *next; /* owned by the bridge while queued */
	evd_bridge_cb on_loop;        /* runs on the loop thread */
	evd_bridge_cb on_worker;      /* evd_bridge_work only: runs on the worker thread first */
};

/* Loop thread. Returns 0 or a negative libuv error. */
int evd_bridge_new(uv_loop_t *loop, struct evd_bridge **out);

/* Any thread. item->on_loop(item) will run on the loop thread. Never blocks on I/O. */
void evd_bridge_post(struct evd_bridge *b, struct evd_bridge_item *item);

/*
 * Loop thread. item->on_worker(item) runs on the management worker thread (FIFO with other
 * work), then item->on_loop(item) on the loop thread.
 */
void evd_bridge_work(struct evd_bridge *b, struct evd_bridge_item *item);

/* Items waiting for the worker (for status and tests). Loop thread. */
unsigned evd_bridge_work_pending(const struct evd_bridge *b);

/*
 * Loop thread. Waits for the worker to finish the item it is running (queued work that has not
 * started is dropped without callbacks), stops the worker thread, runs callbacks already posted,
 * closes the async handle and frees the bridge from its close callback. Posts that arrive after
 * this are ignored; callers stop their nats.c users first.
 */
void evd_bridge_close(struct evd_bridge *b);

#endif
