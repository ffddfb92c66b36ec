/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loop subscriptions (nats_sub.h), two ways, chosen by the link (evd_nats_loop_io):
 *
 * On the loop (plain TCP, nats_io.c): nats.c's parser runs on the loop inside
 * natsConnection_ProcessReadEvent and appends each message to the synchronous subscription's
 * queue; right after that read event, nats_conn.c's after_read calls evd_nats_sub_drain_link,
 * which takes the queue with natsSubscription_GetPending + natsSubscription_NextMsg(.., 0)
 * (sub.c: with timeout 0 it only takes the head under the subscription's lock, never waits) and
 * hands the batch to on_msgs. No thread, no hop. A synchronous subscription has no on-complete
 * (natsSubscription_SetOnCompleteCB refuses one without a message callback), and needs none:
 * only the loop takes its messages, so once it is unsubscribed on the loop, or its connection
 * closed (GetPending then fails, and the link tells us: conn_lost), nothing more comes.
 *
 * Through the bridge (TLS: nats.c's own reader thread): an async subscription, nats.c's delivery
 * thread appends the natsMsg* to a mutex-protected vector and posts the subscription's one
 * bridge item when the vector was empty; the loop swaps the vector out whole (double buffering,
 * so no allocation per message on nats.c's thread once warm) and hands the batch to on_msgs.
 *
 * What the bridge way relies on in nats.c 3.4.1 (read in its sources, src/nats.c _deliverMsgs,
 * src/sub.c, src/conn.c, src/msg.c):
 *   - With global message delivery (nats_conn.c sets it) a subscription is bound to one delivery
 *     worker; its messages and the control message that closes it travel through that worker's
 *     one FIFO. The on-complete callback runs from the close control message, after the message
 *     callback of every earlier message has returned, and nothing of that subscription is called
 *     after it. Messages still queued behind the close are destroyed by nats.c, never delivered
 *     (JetStream redelivers them after AckWait).
 *   - natsSub_close (Unsubscribe, the connection's close: _close -> _removeAllSubscriptions, and
 *     natsConnection_Destroy) always queues that control message, so on-complete comes however
 *     the subscription ends, also when nats.c itself gives the connection up (our CLOSED).
 *   - natsSubscription_SetOnCompleteCB fails once the subscription is closed; a subscription
 *     closed between subscribe and that call would never report its end (see sub_new).
 *   - natsMsg_Destroy does not touch msg->sub (it frees the message or hands it to the GC); only
 *     the JetStream natsMsg_Ack family does, which we do not use. We still destroy the
 *     natsSubscription only after every lent message is back, as nats_sub.h promises, so a later
 *     nats.c is free to make messages refer to their subscription.
 *   - A natsSubscription holds a reference on its natsConnection (natsConn_release in
 *     _freeSubscription), so destroying our subscription after the link destroyed a CLOSED
 *     connection is safe; we only must not publish on that connection any more (conn_lost).
 *
 * Lifetime on the loop: open -> closing (evd_nats_sub_close, or nats.c closed it) -> finished
 * when nats.c's on-complete has come (`completed`) and no message is lent (`lent` == 0). Only
 * the bridge item's run finishes a subscription, and only when the item is not queued again, so
 * on_closed never runs from inside one of our calls and the item is never freed while queued.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nats/nats_internal.h"
#include "nats/nats_sub.h"
#include "util/util_log.h"
#include "util/util_mem.h"

struct evd_nats_sub {
	struct evd_bridge_item item; /* first: the bridge hands it back */
	struct evd_nats_sublink link; /* in the evd_nats's list while not finished */
	struct evd_nats *n;
	struct evd_bridge *bridge;
	natsSubscription *ns;
	natsConnection *nc; /* NULL once the link's connection was CLOSED */
	evd_nats_sub_msgs_cb on_msgs;
	evd_nats_sub_closed_cb on_closed;
	void *data;
	char *subject;

	/* Loop only. */
	bool loop_io;  /* a synchronous subscription drained on the loop */
	natsMsg **lv;  /* loop_io: the batch being taken */
	size_t lv_cap;
	natsMsg **sv;  /* loop_io: status messages taken from the parser (take_status) */
	size_t sn, sv_cap;
	size_t lent;   /* messages handed to on_msgs and not yet returned */
	bool closing;  /* evd_nats_sub_close was called (or the connection went away) */
	bool in_batch; /* on_item is running: it checks for the end itself */

	/* Shared with nats.c's delivery thread: under lock. */
	uv_mutex_t lock;
	natsMsg **v, **spare;
	size_t nv, cap, spare_cap;
	bool posted;    /* item is queued on the bridge */
	bool completed; /* nats.c's on-complete has run: nothing more will come */
	bool zombie;    /* see sub_new: nats.c closed it before we could learn its end */
};

static struct evd_nats_sub *of_link(struct evd_nats_sublink *l)
{
	return EVD_CONTAINER_OF(l, struct evd_nats_sub, link);
}

/* ---- nats.c's delivery thread: append and wake the loop, nothing else ---- */

static void post_locked(struct evd_nats_sub *s)
{
	if (!s->posted) {
		s->posted = true;
		evd_bridge_post(s->bridge, &s->item);
	}
}

static void on_nats_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	struct evd_nats_sub *s = closure;

	(void)nc;
	(void)sub;
	uv_mutex_lock(&s->lock);
	if (s->zombie) {
		uv_mutex_unlock(&s->lock);
		natsMsg_Destroy(msg);
		return;
	}
	if (s->nv == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = evd_xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->nv++] = msg;
	post_locked(s);
	uv_mutex_unlock(&s->lock);
}

static void on_nats_complete(void *closure)
{
	struct evd_nats_sub *s = closure;

	uv_mutex_lock(&s->lock);
	s->completed = true;
	post_locked(s);
	uv_mutex_unlock(&s->lock);
}

/* ---- loop ---- */

/* Loop, synchronous subscriptions: nothing more will come; on_item ends s once all is back. */
static void set_completed(struct evd_nats_sub *s)
{
	uv_mutex_lock(&s->lock);
	s->completed = true;
	post_locked(s);
	uv_mutex_unlock(&s->lock);
}

static void sub_free(struct evd_nats_sub *s)
{
	uv_mutex_destroy(&s->lock);
	free(s->v);
	free(s->spare);
	free(s->lv);
	for (size_t i = 0; i < s->sn; i++)
		natsMsg_Destroy(s->sv[i]);
	free(s->sv);
	free(s->subject);
	free(s);
}

/* The bridge item's run: deliver what came, then end the subscription if it is done. */
static void on_item(struct evd_bridge_item *item)
{
	struct evd_nats_sub *s = (struct evd_nats_sub *)item;
	natsMsg **v;
	size_t nv;
	bool completed;

	uv_mutex_lock(&s->lock);
	v = s->v;
	nv = s->nv;
	s->v = s->spare;
	s->nv = 0;
	s->spare = v;
	{
		size_t cap = s->cap;

		s->cap = s->spare_cap;
		s->spare_cap = cap;
	}
	s->posted = false;
	completed = s->completed;
	uv_mutex_unlock(&s->lock);

	if (nv) {
		s->lent += nv;
		s->in_batch = true;
		s->on_msgs(s, v, nv, s->data);
		s->in_batch = false;
	}
	if (!completed || s->lent)
		return;
	/* A msg_done during on_msgs may have queued the item again: let that run finish. */
	uv_mutex_lock(&s->lock);
	bool queued = s->posted;
	uv_mutex_unlock(&s->lock);
	if (queued)
		return;

	/* nats.c is done with s (on-complete was its last call) and no message is out. */
	natsSubscription_Destroy(s->ns);
	s->ns = NULL;
	evd_nats_unlink_sub(s->n, &s->link);
	s->on_closed(s, s->data);
	sub_free(s);
}

int evd_nats_sub_new(struct evd_nats *n, const char *subject, const char *queue,
		     evd_nats_sub_msgs_cb on_msgs, evd_nats_sub_closed_cb on_closed, void *data,
		     struct evd_nats_sub **out)
{
	natsConnection *nc = evd_nats_connection(n);
	struct evd_nats_sub *s;
	natsStatus st;
	int err;

	if (!nc || evd_nats_closing(n))
		return -ENOTCONN;
	s = evd_xcalloc(1, sizeof(*s));
	if ((err = uv_mutex_init(&s->lock)) < 0) {
		free(s);
		return err;
	}
	s->item.on_loop = on_item;
	s->n = n;
	s->bridge = evd_nats_bridge(n);
	s->nc = nc;
	s->on_msgs = on_msgs;
	s->on_closed = on_closed;
	s->data = data;
	s->subject = evd_xstrdup(subject);
	s->loop_io = evd_nats_loop_io(n);

	if (s->loop_io) {
		if (queue)
			st = natsConnection_QueueSubscribeSync(&s->ns, nc, subject, queue);
		else
			st = natsConnection_SubscribeSync(&s->ns, nc, subject);
		if (st != NATS_OK) {
			err = evd_nats_status_to_err(st, "subscribing");
			sub_free(s);
			return err;
		}
		evd_nats_link_sub(n, &s->link);
		*out = s;
		return 0;
	}
	if (queue)
		st = natsConnection_QueueSubscribe(&s->ns, nc, subject, queue, on_nats_msg, s);
	else
		st = natsConnection_Subscribe(&s->ns, nc, subject, on_nats_msg, s);
	if (st != NATS_OK) {
		err = evd_nats_status_to_err(st, "subscribing");
		sub_free(s);
		return err;
	}
	st = natsSubscription_SetOnCompleteCB(s->ns, on_nats_complete, s);
	if (st != NATS_OK) {
		/*
		 * nats.c closed the subscription in the moment since subscribing (the connection
		 * was closed): its end will never be reported, and a message callback may still be
		 * running on the delivery thread. s cannot be freed safely; it stays behind as a
		 * zombie that destroys whatever still reaches it (a few hundred bytes, once per
		 * such race).
		 */
		uv_mutex_lock(&s->lock);
		s->zombie = true;
		for (size_t i = 0; i < s->nv; i++)
			natsMsg_Destroy(s->v[i]);
		s->nv = 0;
		uv_mutex_unlock(&s->lock);
		natsSubscription_Destroy(s->ns);
		evd_log_warn("nats", "subscription to %s closed by nats.c while it was made", subject);
		return -ENOTCONN;
	}
	evd_nats_link_sub(n, &s->link);
	*out = s;
	return 0;
}

void evd_nats_sub_close(struct evd_nats_sub *s)
{
	natsStatus st;

	if (s->closing)
		return;
	s->closing = true;
	if (!s->nc)
		return; /* nats.c closed it with its connection; on-complete is on its way */
	/*
	 * Sends UNSUB (buffered, like a publish) and closes the natsSubscription, which queues
	 * the control message that ends in on-complete. When the connection is already closed
	 * nats.c has closed the subscription itself (the same end), so a failure changes nothing.
	 */
	st = natsSubscription_Unsubscribe(s->ns);
	if (st != NATS_OK && st != NATS_CONNECTION_CLOSED && st != NATS_INVALID_SUBSCRIPTION)
		evd_log_warn("nats", "unsubscribing from %s: %s", s->subject, natsStatus_GetText(st));
	if (s->loop_io)
		set_completed(s); /* only the loop takes its messages: none will come */
}

int evd_nats_sub_settle(struct evd_nats_sub *s, natsMsg *msg, enum evd_settle kind, int64_t delay_ms)
{
	const char *reply = natsMsg_GetReply(msg);
	char body[64];
	int len;
	natsStatus st;

	if (!reply || !*reply)
		return -EINVAL;
	if (!s->nc)
		return -ENOTCONN;
	/* JetStream's ack protocol (nats-server 2.9 consumer.go: processAck). */
	switch (kind) {
	case EVD_SETTLE_ACK:
		len = snprintf(body, sizeof(body), "+ACK");
		break;
	case EVD_SETTLE_NAK:
		if (delay_ms > 0)
			len = snprintf(body, sizeof(body), "-NAK {\"delay\":%" PRId64 "}",
				       delay_ms * 1000000);
		else
			len = snprintf(body, sizeof(body), "-NAK");
		break;
	case EVD_SETTLE_WPI:
		len = snprintf(body, sizeof(body), "+WPI");
		break;
	case EVD_SETTLE_TERM:
		len = snprintf(body, sizeof(body), "+TERM");
		break;
	default:
		return -EINVAL;
	}
	st = natsConnection_Publish(s->nc, reply, body, len);
	if (st == NATS_CONNECTION_CLOSED)
		return -ENOTCONN;
	return evd_nats_status_to_err(st, "settling a message");
}

void evd_nats_sub_msg_done(struct evd_nats_sub *s, natsMsg *msg)
{
	evd_nats_msg_free(msg);
	if (--s->lent || s->in_batch)
		return;
	uv_mutex_lock(&s->lock);
	if (s->completed)
		post_locked(s); /* on_item finishes s, later on the loop */
	uv_mutex_unlock(&s->lock);
}

/* ---- the link's side (nats_internal.h) ---- */

void evd_nats_sub_conn_lost(struct evd_nats_sublink *l)
{
	struct evd_nats_sub *s = of_link(l);

	s->nc = NULL;
	s->closing = true;
	if (s->loop_io)
		set_completed(s);
}

/* NATS subject matching: `*` one token, `>` the rest. */
static bool subject_matches(const char *pattern, const char *subject)
{
	while (*pattern && *subject) {
		if (pattern[0] == '>' && pattern[1] == '\0')
			return true;
		if (pattern[0] == '*' && (pattern[1] == '.' || pattern[1] == '\0')) {
			pattern++;
			while (*subject && *subject != '.')
				subject++;
		} else {
			size_t t = strcspn(pattern, ".");
			if (strncmp(pattern, subject, t) != 0 || (subject[t] != '.' && subject[t] != '\0'))
				return false;
			pattern += t;
			subject += t;
		}
		if (*pattern != *subject)
			return false;
		if (*pattern == '.') {
			pattern++;
			subject++;
		}
	}
	return *pattern == '\0' && *subject == '\0';
}

bool evd_nats_sub_take_status(struct evd_nats_sublink *l, natsMsg *msg)
{
	struct evd_nats_sub *s = of_link(l);
	const char *subject = natsMsg_GetSubject(msg);

	if (!s->loop_io || !s->nc || s->closing || !subject || !subject_matches(s->subject, subject))
		return false;
	if (s->sn == s->sv_cap) {
		s->sv_cap = s->sv_cap ? 2 * s->sv_cap : 16;
		s->sv = evd_xrealloc(s->sv, s->sv_cap * sizeof(*s->sv));
	}
	s->sv[s->sn++] = msg;
	return true;
}

void evd_nats_sub_drain_link(struct evd_nats_sublink *l)
{
	struct evd_nats_sub *s = of_link(l);
	natsMsg *m;
	size_t n = 0;
	int pending = 0;

	if (!s->loop_io || s->nc == NULL || !s->ns)
		return;
	uv_mutex_lock(&s->lock);
	bool completed = s->completed;
	uv_mutex_unlock(&s->lock);
	if (completed)
		return;
	/* GetPending first: NextMsg on an empty queue records an error text (nats_setError). */
	if (natsSubscription_GetPending(s->ns, &pending, NULL) != NATS_OK) {
		set_completed(s); /* nats.c closed it with its connection */
		return;
	}
	if (pending < 0)
		pending = 0;
	size_t want = (size_t)pending + s->sn;
	if (!want)
		return;
	if (want > s->lv_cap) {
		s->lv_cap = want > 2 * s->lv_cap ? want : 2 * s->lv_cap;
		s->lv = evd_xrealloc(s->lv, s->lv_cap * sizeof(*s->lv));
	}
	for (size_t i = 0; i < s->sn; i++)
		s->lv[n++] = s->sv[i];
	s->sn = 0;
	/* A status left in the queue makes NextMsg fail (NATS_NO_RESPONDERS): go on past it. */
	for (int k = 0; k < pending; k++) {
		natsStatus st = natsSubscription_NextMsg(&m, s->ns, 0);
		if (st == NATS_OK)
			s->lv[n++] = m;
		else if (st != NATS_NO_RESPONDERS)
			break;
	}
	if (!n)
		return;
	s->lent += n;
	s->in_batch = true;
	s->on_msgs(s, s->lv, n, s->data);
	s->in_batch = false;
	if (s->lent == 0) {
		uv_mutex_lock(&s->lock);
		if (s->completed)
			post_locked(s);
		uv_mutex_unlock(&s->lock);
	}
}

void evd_nats_sub_close_link(struct evd_nats_sublink *l)
{
	evd_nats_sub_close(of_link(l));
}
