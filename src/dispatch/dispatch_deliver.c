/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Delivery (dispatch.h): messages from the bindings' subscriptions, held per subscription under
 * maxInFlightMessages, sent as sink requests, and settled by their outcome.
 *
 * Every message lent by nats_sub is one struct dmsg (pooled, so the header array, the scratch
 * for decoded header values and the structured body are reused, not allocated per event) until
 * it is settled and returned. A message is HELD (waiting for a slot of its subscription, or for
 * the byte budget) or SENDING (its request is with the HTTP client). Both are kept alive with
 * +WPI by a sweep every ack_wait/4, so JetStream does not redeliver them meanwhile.
 *
 * Attempts are counted per (consumer, stream sequence) in the binding's track table, which
 * outlives the message while it backs off in JetStream (-NAK with a delay) and is forgotten on
 * +ACK/+TERM, or when a sequence has not come back for longer than any retry delay.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_metrics.h"
#include "dispatch/dispatch_internal.h"
#include "util/util_log.h"
#include "util/util_mem.h"

/* Spare message records kept for reuse. */
#define POOL_MAX 4096
/* A failing subscription logs a warning at most this often (every attempt at debug level). */
#define FAILURE_LOG_EVERY_MS 10000

/* ---- attempts ------------------------------------------------------------------------------ */

static struct dtrack *track_find(struct dbinding *b, uint64_t seq)
{
	return evd_dispatch_track_find(&b->track, seq);
}

void dd_track_gc(struct evd_dispatch *d)
{
	uint64_t now = uv_now(d->loop);
	for (struct dbinding *b = d->bindings; b; b = b->next) {
		if (!b->track.n)
			continue;
		int64_t max_delay = d->cfg->dispatch.backoff.max;
		if (b->sub->retry_max_delay_ms > max_delay)
			max_delay = b->sub->retry_max_delay_ms;
		/* Not back after its longest delay plus a redelivery: acked by another instance,
		 * expired from the stream, or its consumer re-created. */
		uint64_t age = (uint64_t)max_delay + (uint64_t)d->cfg->dispatch.ack_wait * 2 + 60000;
		evd_dispatch_track_gc(&b->track, now, age);
	}
}

/* ---- message records ------------------------------------------------------------------------ */

static struct dmsg *dm_get(struct evd_dispatch *d)
{
	struct dmsg *dm = d->pool;
	if (dm) {
		d->pool = dm->next;
		d->npool--;
	} else {
		dm = evd_xcalloc(1, sizeof(*dm));
	}
	dm->next = dm->prev = NULL;
	return dm;
}

static void dm_put(struct evd_dispatch *d, struct dmsg *dm)
{
	dm->type = dm->id = NULL;
	dm->msg = dm->newer = NULL;
	dm->nsub = dm->newer_nsub = NULL;
	dm->b = NULL;
	dm->sub = NULL;
	if (d->npool >= POOL_MAX) {
		evd_buf_free(&dm->scratch);
		evd_buf_free(&dm->body);
		evd_buf_free(&dm->meta);
		free(dm->hdr);
		free(dm);
		return;
	}
	/* Large bodies are not kept around. */
	if (dm->body.cap > 1u << 20)
		evd_buf_free(&dm->body);
	dm->next = d->pool;
	d->pool = dm;
	d->npool++;
}

void dd_free_pool(struct evd_dispatch *d)
{
	while (d->pool) {
		struct dmsg *dm = d->pool;
		d->pool = dm->next;
		evd_buf_free(&dm->scratch);
		evd_buf_free(&dm->body);
		evd_buf_free(&dm->meta);
		free(dm->hdr);
		free(dm);
	}
	d->npool = 0;
	evd_ce_free(&d->ev);
}

static void all_link(struct evd_dispatch *d, struct dmsg *dm)
{
	dm->all_prev = NULL;
	dm->all_next = d->all;
	if (d->all)
		d->all->all_prev = dm;
	d->all = dm;
}

static void all_unlink(struct evd_dispatch *d, struct dmsg *dm)
{
	if (dm->all_prev)
		dm->all_prev->all_next = dm->all_next;
	else
		d->all = dm->all_next;
	if (dm->all_next)
		dm->all_next->all_prev = dm->all_prev;
}

static void held_push(struct dsub *ds, struct dmsg *dm)
{
	dm->next = NULL;
	dm->prev = ds->held_tail;
	if (ds->held_tail)
		ds->held_tail->next = dm;
	else
		ds->held_head = dm;
	ds->held_tail = dm;
	ds->nheld++;
}

static void held_unlink(struct dsub *ds, struct dmsg *dm)
{
	if (dm->prev)
		dm->prev->next = dm->next;
	else
		ds->held_head = dm->next;
	if (dm->next)
		dm->next->prev = dm->prev;
	else
		ds->held_tail = dm->prev;
	ds->nheld--;
}

/* ---- settling --------------------------------------------------------------------------------- */

static const char *settle_name(enum evd_settle k)
{
	switch (k) {
	case EVD_SETTLE_ACK: return "+ACK";
	case EVD_SETTLE_NAK: return "-NAK";
	case EVD_SETTLE_WPI: return "+WPI";
	case EVD_SETTLE_TERM: return "+TERM";
	}
	return "?";
}

static void settle(struct evd_dispatch *d, struct dmsg *dm, enum evd_settle kind, int64_t delay_ms)
{
	/* The newest copy's reply subject is the one JetStream waits for. */
	natsMsg *m = dm->newer ? dm->newer : dm->msg;
	struct evd_nats_sub *s = dm->newer ? dm->newer_nsub : dm->nsub;
	int rc = evd_nats_sub_settle(s, m, kind, delay_ms);
	if (rc == 0)
		return;
	/* A deleted consumer's replies go nowhere (expected after a removal); a lost connection
	 * means JetStream redelivers after ack_wait. */
	if (!dm->b->present || d->stopping || rc == -ENOTCONN)
		evd_log_debug("dispatch", "%s of stream sequence %" PRIu64 " (consumer %s) not sent: %s",
			      settle_name(kind), dm->seq, dm->b->name, strerror(-rc));
	else
		evd_log_warn("dispatch", "%s of stream sequence %" PRIu64 " (consumer %s) not sent: %s; "
					 "JetStream redelivers it after dispatch.ack_wait",
			     settle_name(kind), dm->seq, dm->b->name, strerror(-rc));
}

/* Settles dm (kind), returns its messages and frees it; then lets the next ones go. */
static void finish(struct evd_dispatch *d, struct dmsg *dm, enum evd_settle kind, int64_t delay_ms)
{
	struct dbinding *b = dm->b;
	struct dsub *ds = b->ds;

	settle(d, dm, kind, delay_ms);
	evd_nats_sub_msg_done(dm->nsub, dm->msg);
	if (dm->newer)
		evd_nats_sub_msg_done(dm->newer_nsub, dm->newer);
	if (kind == EVD_SETTLE_ACK || kind == EVD_SETTLE_TERM) {
		evd_dispatch_track_del(&b->track, dm->seq);
	} else {
		struct dtrack *t = track_find(b, dm->seq);
		if (t) {
			t->live = NULL;
			t->touched = uv_now(d->loop);
		}
	}
	if (dm->state == DM_SENDING) {
		ds->in_flight--;
		d->in_flight--;
		d->bytes_in_flight -= dm->bytes;
		dd_set_in_flight_metric(d);
	} else {
		held_unlink(ds, dm);
		d->held--;
	}
	all_unlink(d, dm);
	b->live--;
	evd_subscription_free(dm->sub);
	dm_put(d, dm);

	if (!d->pumping) {
		dd_pump(d, ds);
		if (d->budget_blocked)
			dd_pump_all(d);
	}
	dd_binding_maybe_free(d, b); /* may free ds */
	dd_check_stopped(d);
}

/* ---- outcomes ------------------------------------------------------------------------------- */

static uint32_t max_deliver(const struct evd_dispatch *d, const struct evd_subscription *s)
{
	return s->max_deliver ? s->max_deliver : d->cfg->dispatch.max_deliver;
}

static void note_failure(struct evd_dispatch *d, struct dsub *ds, struct dmsg *dm,
			 const char *reason, bool retrying)
{
	int64_t now = dd_wall_ms();
	bool quiet = ds->last_failure_ms && now - ds->last_failure_ms < FAILURE_LOG_EVERY_MS;
	ds->last_failure_ms = now;
	free(ds->last_failure_reason);
	ds->last_failure_reason = evd_xstrdup(reason);
	if (retrying && !quiet)
		evd_log_warn("dispatch", "subscription %s/%s: delivery to %s failed: %s (attempt %u of "
					 "%u); retrying with backoff (further failures at debug level "
					 "for %d s)",
			     ds->ns, ds->name, dm->sub->sink.url, reason, dm->attempt,
			     max_deliver(d, dm->sub), FAILURE_LOG_EVERY_MS / 1000);
	else if (retrying)
		evd_log_debug("dispatch", "subscription %s/%s: delivery to %s failed: %s (attempt %u)",
			      ds->ns, ds->name, dm->sub->sink.url, reason, dm->attempt);
}

static void permanent(struct evd_dispatch *d, struct dmsg *dm, const char *reason,
		      const char *metric_reason)
{
	struct dsub *ds = dm->b->ds;
	const char *id = dm->id ? dm->id : "?";
	const char *type = dm->type ? dm->type : "?";

	note_failure(d, ds, dm, reason, false);
	ds->failed++;
	if (d->m_permanent) {
		const char *l[] = { metric_reason };
		evd_metric_add(d->m_permanent, l, 1);
	}
	/* Until dead letters exist, terminating is the only way to stop the redeliveries. */
	evd_log_warn("dispatch", "subscription %s/%s: event %s (type %s, stream sequence %" PRIu64
				 ") failed permanently after %u attempt%s: %s; terminated (+TERM)",
		     ds->ns, ds->name, id, type, dm->seq, dm->attempt, dm->attempt == 1 ? "" : "s",
		     reason);
	finish(d, dm, EVD_SETTLE_TERM, 0);
}

/* The response_code label without printf (one per attempt). */
static void code_str(int code, char out[16])
{
	if (code >= 100 && code <= 999) {
		out[0] = (char)('0' + code / 100);
		out[1] = (char)('0' + code / 10 % 10);
		out[2] = (char)('0' + code % 10);
		out[3] = '\0';
	} else {
		snprintf(out, 16, "%d", code);
	}
}

static void complete(struct evd_dispatch *d, struct dmsg *dm, const struct evd_http_client_result *res)
{
	struct dbinding *b = dm->b;
	struct dsub *ds = b->ds;
	const struct evd_subscription *s = dm->sub;
	char reason[192];
	int code;

	enum evd_dispatch_verdict v = evd_dispatch_classify(res->status, res->err, res->err_text,
							     reason, sizeof(reason), &code);
	if (v != EVD_DV_REQUEUE && d->m_delivery) {
		char codebuf[16];
		code_str(code, codebuf);
		const char *type = dm->type ? dm->type : "";
		const char *l[] = { s->name, s->ns, type, s->sink.url, codebuf, b->name };
		evd_metric_add(d->m_delivery, l, 1);
		evd_metric_observe(d->m_duration, l, (double)res->duration_ns / 1e9);
	}
	switch (v) {
	case EVD_DV_ACK:
		ds->delivered++;
		ds->last_success_ms = dd_wall_ms();
		finish(d, dm, EVD_SETTLE_ACK, 0);
		return;
	case EVD_DV_REQUEUE:
		/* Not an attempt: back to JetStream for the next start (or another instance). */
		finish(d, dm, EVD_SETTLE_NAK, 0);
		return;
	case EVD_DV_PERMANENT:
		permanent(d, dm, reason, "http_status");
		return;
	case EVD_DV_RETRY:
		break;
	}
	if (dm->attempt >= max_deliver(d, s)) {
		char why[256];
		snprintf(why, sizeof(why), "%s; maxDeliver (%u) attempts made", reason, max_deliver(d, s));
		permanent(d, dm, why, "max_deliver");
		return;
	}
	struct evd_dispatch_backoff bo = {
		.initial_ms = s->retry_backoff_ms ? s->retry_backoff_ms : d->cfg->dispatch.backoff.initial,
		.max_ms = s->retry_max_delay_ms ? s->retry_max_delay_ms : d->cfg->dispatch.backoff.max,
		.factor = d->cfg->dispatch.backoff.factor,
	};
	if (bo.initial_ms > bo.max_ms)
		bo.initial_ms = bo.max_ms;
	int64_t delay = evd_dispatch_backoff_ms(&bo, dm->attempt, res->retry_after_ms,
						(double)(random() % 1000000) / 1e6);
	struct dtrack *t = track_find(b, dm->seq);
	if (t)
		t->attempts = dm->attempt;
	ds->retries++;
	if (d->m_retries)
		evd_metric_add(d->m_retries, NULL, 1);
	note_failure(d, ds, dm, reason, true);
	evd_log_debug("dispatch", "stream sequence %" PRIu64 " of consumer %s: retry in %" PRId64 " ms",
		      dm->seq, b->name, delay);
	finish(d, dm, EVD_SETTLE_NAK, delay);
}

static void on_request_done(struct evd_http_client_request *req, const struct evd_http_client_result *res)
{
	struct dmsg *dm = req->data;
	complete(dm->b->d, dm, res);
}

/* ---- sending -------------------------------------------------------------------------------- */

/* NATS header keys and values of m (nats.c lifts them on first use). */
static int msg_headers(natsMsg *m, const char ***keys, const char **vals_small, size_t nsmall,
		       const char ***vals, size_t *n)
{
	int count = 0;
	*keys = NULL;
	*vals = vals_small;
	*n = 0;
	natsStatus st = natsMsgHeader_Keys(m, keys, &count);
	if (st == NATS_NOT_FOUND)
		return 0;
	if (st != NATS_OK)
		return -EINVAL;
	if ((size_t)count > nsmall)
		*vals = evd_xcalloc((size_t)count, sizeof(char *));
	for (int i = 0; i < count; i++)
		if (natsMsgHeader_Get(m, (*keys)[i], &(*vals)[i]) != NATS_OK)
			(*vals)[i] = "";
	*n = (size_t)count;
	return 0;
}

static void start(struct evd_dispatch *d, struct dmsg *dm)
{
	struct dbinding *b = dm->b;
	struct dsub *ds = b->ds;
	struct dtrack *t = track_find(b, dm->seq);
	const char **keys, **vals, *vals_small[96];
	size_t nkeys;
	struct evd_buf err = EVD_BUF_INIT;

	dm->attempt = (t ? t->attempts : 0) + 1;
	dm->state = DM_SENDING;
	dm->sub = evd_subscription_ref(b->sub);
	dm->bytes = 0;
	ds->in_flight++;
	d->in_flight++;

	const char *data = natsMsg_GetData(dm->msg);
	size_t len = (size_t)natsMsg_GetDataLength(dm->msg);
	int rc = msg_headers(dm->msg, &keys, vals_small, sizeof(vals_small) / sizeof(vals_small[0]),
			     &vals, &nkeys);
	if (rc == 0)
		rc = evd_ce_decode_nats(keys, vals, nkeys, data, len, &d->ev, &err);
	if (rc < 0) {
		/* Anything may write to the stream's subjects; such a message never gets better. */
		struct evd_buf why = EVD_BUF_INIT;
		evd_buf_printf(&why, "not a CloudEvent: %s", err.len ? err.data : "unreadable NATS headers");
		free(keys);
		if (vals != vals_small)
			free(vals);
		evd_buf_free(&err);
		dd_set_in_flight_metric(d);
		permanent(d, dm, why.data, "not_cloudevent");
		evd_buf_free(&why);
		return;
	}
	evd_buf_free(&err);
	/* Type (metrics, logs) and id (logs) outlive the scratch event. */
	const struct evd_cloudevent *ev = &d->ev;
	evd_buf_reset(&dm->meta);
	evd_buf_append(&dm->meta, ev->attr[EVD_CE_TYPE], ev->attr_len[EVD_CE_TYPE] + 1);
	evd_buf_append(&dm->meta, ev->attr[EVD_CE_ID], ev->attr_len[EVD_CE_ID] + 1);
	dm->type = dm->meta.data;
	dm->id = dm->meta.data + ev->attr_len[EVD_CE_TYPE] + 1;
	size_t need = nkeys > EVD_DISPATCH_STRUCTURED_HEADERS ? nkeys : EVD_DISPATCH_STRUCTURED_HEADERS;
	if (dm->hdr_cap < need) {
		free(dm->hdr);
		dm->hdr_cap = need;
		dm->hdr = evd_xcalloc(dm->hdr_cap, sizeof(*dm->hdr));
	}

	size_t nh;
	const char *body;
	size_t body_len;
	if (dm->sub->content_mode == EVD_CONTENT_STRUCTURED) {
		nh = evd_dispatch_build_structured(&d->ev, dm->hdr, &dm->body);
		body = dm->body.data ? dm->body.data : "";
		body_len = dm->body.len;
	} else {
		nh = evd_dispatch_build_binary(keys, vals, nkeys, dm->hdr, &dm->scratch);
		body = data ? data : "";
		body_len = len;
	}
	free(keys);
	if (vals != vals_small)
		free(vals);
	evd_ce_free(&d->ev);

	memset(&dm->req, 0, sizeof(dm->req));
	dm->req.url = dm->sub->sink.url;
	dm->req.method = "POST";
	dm->req.headers = dm->hdr;
	dm->req.nheaders = nh;
	dm->req.body = body;
	dm->req.body_len = body_len;
	dm->req.on_done = on_request_done;
	dm->req.data = dm;
	dm->bytes = body_len;
	d->bytes_in_flight += body_len;
	dd_set_in_flight_metric(d);

	rc = evd_http_client_send(d->http, &dm->req);
	if (rc < 0) {
		/* Refused before it started (the client is closing, a URL it cannot use): an attempt
		 * that failed, so backoff and maxDeliver apply. */
		struct evd_http_client_result res = { 0 };
		char text[128];
		snprintf(text, sizeof(text), "request not sent: %s", strerror(-rc));
		res.err = rc == -ESHUTDOWN ? UV_ECANCELED : rc;
		res.err_text = text;
		res.retry_after_ms = -1;
		complete(d, dm, &res);
	}
}

void dd_pump(struct evd_dispatch *d, struct dsub *ds)
{
	if (d->stopping || d->pumping)
		return;
	d->pumping = true;
	while (ds->held_head && ds->in_flight < ds->sub->max_in_flight) {
		struct dmsg *dm = ds->held_head;
		size_t len = (size_t)natsMsg_GetDataLength(dm->msg);
		if (d->bytes_in_flight && d->bytes_in_flight + len > EVD_DISPATCH_MAX_BYTES_IN_FLIGHT) {
			d->budget_blocked = true;
			break;
		}
		held_unlink(ds, dm);
		d->held--;
		start(d, dm);
	}
	d->pumping = false;
}

void dd_pump_all(struct evd_dispatch *d)
{
	d->budget_blocked = false;
	for (struct dsub *ds = d->subs; ds && !d->budget_blocked; ds = ds->next)
		dd_pump(d, ds);
}

/* ---- intake --------------------------------------------------------------------------------- */

void dd_on_msgs(struct evd_nats_sub *s, natsMsg **msgs, size_t n, void *data)
{
	struct dbinding *b = data;
	struct evd_dispatch *d = b->d;
	uint64_t now = uv_now(d->loop);

	for (size_t i = 0; i < n; i++) {
		natsMsg *m = msgs[i];
		struct evd_dispatch_meta meta;

		if (d->stopping || !b->deliverable || s != b->nsub) {
			/* Stopping, removed, or a subscription being closed: back to JetStream now. */
			int rc = evd_nats_sub_settle(s, m, EVD_SETTLE_NAK, 0);
			if (rc < 0)
				evd_log_debug("dispatch", "-NAK on consumer %s not sent: %s", b->name,
					      strerror(-rc));
			evd_nats_sub_msg_done(s, m);
			continue;
		}
		if (evd_dispatch_parse_reply(natsMsg_GetReply(m), &meta) < 0) {
			evd_log_warn("dispatch", "a message on %s without a JetStream reply subject "
						 "(\"%s\"): ignored (only JetStream should publish there)",
				     b->subject, natsMsg_GetReply(m) ? natsMsg_GetReply(m) : "");
			evd_nats_sub_msg_done(s, m);
			continue;
		}
		struct dtrack *t = track_find(b, meta.stream_seq);
		if (t && t->live) {
			/* A redelivery of a message that is ours (its ack wait ran out while it was
			 * held or being sent): one attempt, settled with the newest reply. */
			struct dmsg *dm = t->live;
			t->touched = now;
			dm->progress_at = now;
			if (dm->state == DM_HELD) {
				evd_nats_sub_msg_done(dm->nsub, dm->msg);
				dm->msg = m;
				dm->nsub = s;
			} else {
				if (dm->newer)
					evd_nats_sub_msg_done(dm->newer_nsub, dm->newer);
				dm->newer = m;
				dm->newer_nsub = s;
			}
			dm->delivered = meta.delivered;
			evd_log_debug("dispatch", "stream sequence %" PRIu64 " of consumer %s redelivered "
						  "while ours (delivery %" PRIu64 "): kept as one",
				      meta.stream_seq, b->name, meta.delivered);
			continue;
		}
		if (!t) {
			/* After a restart the server's count is all there is: every earlier delivery
			 * counts as an attempt. */
			struct dtrack nt = { .seq = meta.stream_seq,
					     .attempts = evd_dispatch_prior_attempts(meta.delivered) };
			t = evd_dispatch_track_put(&b->track, &nt);
		}
		struct dmsg *dm = dm_get(d);
		dm->b = b;
		dm->msg = m;
		dm->nsub = s;
		dm->seq = meta.stream_seq;
		dm->delivered = meta.delivered;
		dm->state = DM_HELD;
		dm->progress_at = now;
		t->live = dm;
		t->touched = now;
		b->live++;
		all_link(d, dm);
		held_push(b->ds, dm);
		d->held++;
	}
	dd_pump(d, b->ds);
}

void dd_release_held(struct evd_dispatch *d, struct dbinding *b)
{
	struct dsub *ds = b->ds;
	bool was = d->pumping;
	d->pumping = true; /* no pumping from finish() while the queue is walked */
	for (struct dmsg *dm = ds->held_head, *next; dm; dm = next) {
		next = dm->next;
		if (dm->b == b)
			finish(d, dm, EVD_SETTLE_NAK, 0);
	}
	d->pumping = was;
}

void dd_wpi_sweep(struct evd_dispatch *d)
{
	uint64_t now = uv_now(d->loop);
	uint64_t every = (uint64_t)d->cfg->dispatch.ack_wait / 4;
	for (struct dmsg *dm = d->all; dm; dm = dm->all_next) {
		if (now - dm->progress_at < every)
			continue;
		settle(d, dm, EVD_SETTLE_WPI, 0);
		dm->progress_at = now;
	}
}

void dd_cancel_all(struct evd_dispatch *d)
{
	/* Cancelling completes asynchronously (http_client.h), so the list stays intact here. */
	for (struct dmsg *dm = d->all; dm; dm = dm->all_next)
		if (dm->state == DM_SENDING)
			evd_http_client_cancel(d->http, &dm->req);
}
