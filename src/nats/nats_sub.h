/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A core NATS (queue) subscription whose messages reach the loop thread in batches: the intake
 * of the dispatcher (_EVD.deliver.<consumer>, group "eventingd"), and whatever else wants
 * messages on the loop. How the messages cross (bridge vector, or read on the loop itself) is
 * nats/'s business and is the same mechanism as the publish acks (issue 9).
 *
 * Lifetime: evd_nats_sub_new subscribes on the link's current connection. evd_nats_sub_close
 * unsubscribes; messages that still arrive are handed to on_msgs as usual until on_closed.
 * natsSubscription_Destroy runs only after nats.c is done with the subscription (its on-complete
 * callback has fired; for a subscription read on the loop, nats_sub.c: once it is unsubscribed
 * or its connection closed) AND every message handed out was returned with
 * evd_nats_sub_msg_done (nats.c's natsMsg may refer to its subscription); then on_closed(s, data)
 * runs on the loop and s is freed when it returns.
 * When the link's connection is CLOSED by nats.c (evd_nats state EVD_NATS_CLOSED), every sub on
 * it ends the same way (on_closed, once its messages are done); the owner subscribes anew on the
 * next READY. No callback runs after on_closed.
 *
 * Threads: every function here is loop-thread only; on_msgs and on_closed run on the loop.
 */
#ifndef EVD_NATS_SUB_H
#define EVD_NATS_SUB_H

#include <stddef.h>
#include <stdint.h>
#include <nats/nats.h>

struct evd_nats;
struct evd_nats_sub;

/* msgs[0..n) in arrival order. Each natsMsg is lent to the callee until it passes it to
 * evd_nats_sub_msg_done (which destroys it); the array itself is valid only during the call. */
typedef void (*evd_nats_sub_msgs_cb)(struct evd_nats_sub *s, natsMsg **msgs, size_t n, void *data);
typedef void (*evd_nats_sub_closed_cb)(struct evd_nats_sub *s, void *data);

/* queue: NULL for a plain subscription. Returns 0 or a negative errno (-ENOTCONN when the link
 * is not CONNECTED/READY); on error no callback ever runs. */
int evd_nats_sub_new(struct evd_nats *n, const char *subject, const char *queue,
		     evd_nats_sub_msgs_cb on_msgs, evd_nats_sub_closed_cb on_closed, void *data,
		     struct evd_nats_sub **out);

/* Idempotent. on_closed follows (asynchronously, never from inside this call). */
void evd_nats_sub_close(struct evd_nats_sub *s);

/* JetStream acknowledgement of a message delivered by a push consumer, by publishing to its
 * reply subject on the subscription's connection (nats.c 3.4.1's natsMsg_Ack family dereferences
 * JetStream state a core subscription lacks). EVD_SETTLE_NAK with delay_ms > 0 sends
 * `-NAK {"delay":<ns>}`. Does not destroy msg (a +WPI'd message stays lent). Returns 0 or a
 * negative errno (a message without a reply subject: -EINVAL; connection gone: -ENOTCONN). */
enum evd_settle { EVD_SETTLE_ACK, EVD_SETTLE_NAK, EVD_SETTLE_WPI, EVD_SETTLE_TERM };
int evd_nats_sub_settle(struct evd_nats_sub *s, natsMsg *msg, enum evd_settle kind, int64_t delay_ms);

/* Returns a lent message: destroys it. May let a closing sub finish (on_closed later, on the
 * loop, never from inside this call). */
void evd_nats_sub_msg_done(struct evd_nats_sub *s, natsMsg *msg);

#endif
