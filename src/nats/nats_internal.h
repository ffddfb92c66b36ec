/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Between nats_conn.c and nats_sub.c only: the link keeps the list of its subscriptions, so that
 * it can tell them when nats.c closed its connection (before the connection is destroyed) and so
 * that evd_nats_close drains the connection only once every subscription on it has ended.
 *
 * Loop thread for everything here.
 */
#ifndef EVD_NATS_INTERNAL_H
#define EVD_NATS_INTERNAL_H

#include <stdbool.h>

#include "nats/nats_bridge.h"
#include "nats/nats_conn.h"

/* Embedded in struct evd_nats_sub; the link's list is circular with a sentinel. */
struct evd_nats_sublink {
	struct evd_nats_sublink *prev, *next;
};

/* nats_io.c: nats.c's socket on the loop (see there). One per evd_nats, embedded. */
struct nats_io;
struct evd_nats_io_ctx {
	uv_loop_t *loop;
	uv_thread_t loop_thread;
	struct evd_bridge *bridge;
	void (*after_read)(void *data); /* loop: after each read event */
	void *data;
	uv_prepare_t prepare;
	uv_check_t check;
	struct nats_io *flush; /* loop: connections with a write wanted */
	struct nats_io *ios;   /* loop: every io the loop has polled, until it is detached */
	uv_timer_t stall;      /* while a socket is full: the write stall check (nats_io.c) */
	uv_mutex_t lock;       /* guards the wanted state of every io, and live */
	uv_cond_t cond;
	int live; /* attached and not yet detached on the loop */
};
/* Loop thread. The prepare and check handles are started (unreferenced). */
int evd_nats_io_init(struct evd_nats_io_ctx *ctx, uv_loop_t *loop, struct evd_bridge *bridge,
		     void (*after_read)(void *data), void *data);
/* Any thread, before natsConnection_Connect: natsOptions_SetEventLoop with our adapter. */
natsStatus evd_nats_io_options(struct evd_nats_io_ctx *ctx, natsOptions *o);
/* Worker thread: returns once every connection nats.c attached has been detached on the loop,
 * so that no poll callback can reach a natsConnection about to be destroyed. */
void evd_nats_io_wait_detached(struct evd_nats_io_ctx *ctx);
/* Loop: writes what nats.c buffered (the prepare/check handles call it every iteration). */
void evd_nats_io_flush(struct evd_nats_io_ctx *ctx);
/* Loop: closes the three handles (on_closed runs three times, with data as the handle's data);
 * then evd_nats_io_destroy. */
void evd_nats_io_close(struct evd_nats_io_ctx *ctx, uv_close_cb on_closed, void *data);
void evd_nats_io_destroy(struct evd_nats_io_ctx *ctx);

/* nats_conn.c */
/* Whether nats.c's socket is read on the loop (nats_io.c), so that subscriptions are synchronous
 * and drained there; false: nats.c's own threads (TLS), messages cross through the bridge. */
bool evd_nats_loop_io(const struct evd_nats *n);
struct evd_bridge *evd_nats_bridge(struct evd_nats *n);
bool evd_nats_closing(const struct evd_nats *n);
void evd_nats_link_sub(struct evd_nats *n, struct evd_nats_sublink *l);
/* Unlinks; when evd_nats_close waits for the last subscription, this lets it go on. */
void evd_nats_unlink_sub(struct evd_nats *n, struct evd_nats_sublink *l);

/* nats_sub.c: the link's connection was CLOSED by nats.c and is about to be destroyed; the
 * subscription must not touch it any more (nats.c closes the natsSubscription itself). */
void evd_nats_sub_conn_lost(struct evd_nats_sublink *l);
/* nats_sub.c: after a read event on the loop, take what nats.c queued for the subscription. */
void evd_nats_sub_drain_link(struct evd_nats_sublink *l);
/* nats_sub.c, loop, from the parser: takes msg (a status message) when its subject is one the
 * subscription matches; it is handed out with the next drain. */
bool evd_nats_sub_take_status(struct evd_nats_sublink *l, natsMsg *msg);
/* nats_sub.c: evd_nats_close closes whatever subscription its owner left open. */
void evd_nats_sub_close_link(struct evd_nats_sublink *l);

#endif
