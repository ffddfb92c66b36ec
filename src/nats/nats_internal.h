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

/* nats_conn.c */
struct evd_bridge *evd_nats_bridge(struct evd_nats *n);
bool evd_nats_closing(const struct evd_nats *n);
void evd_nats_link_sub(struct evd_nats *n, struct evd_nats_sublink *l);
/* Unlinks; when evd_nats_close waits for the last subscription, this lets it go on. */
void evd_nats_unlink_sub(struct evd_nats *n, struct evd_nats_sublink *l);

/* nats_sub.c: the link's connection was CLOSED by nats.c and is about to be destroyed; the
 * subscription must not touch it any more (nats.c closes the natsSubscription itself). */
void evd_nats_sub_conn_lost(struct evd_nats_sublink *l);
/* nats_sub.c: evd_nats_close closes whatever subscription its owner left open. */
void evd_nats_sub_close_link(struct evd_nats_sublink *l);

#endif
