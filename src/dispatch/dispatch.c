/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The dispatcher's life cycle, its bindings (one per consumer the registry told about) and its
 * per-subscription figures (dispatch.h). Delivery itself is dispatch_deliver.c.
 *
 * A binding subscribes while its level says so: present, deliverable (verified, sink not
 * https), the NATS link READY and the dispatcher not stopping. Anything else closes its
 * subscription; a subscription that nats_sub closed on its own (the connection was CLOSED) is
 * made again on the next READY. Held messages of a binding that stops are -NAKed at once;
 * attempts in flight finish and settle on their own subscription, which stays open until its
 * last message is returned (nats_sub.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin_metrics.h"
#include "dispatch/dispatch_internal.h"
#include "util/util_log.h"
#include "util/util_mem.h"

/* The +WPI sweep runs every ack_wait/4 (bounded), so a message is kept alive before ack_wait/2. */
#define WPI_MIN_TICK_MS 50
#define WPI_MAX_TICK_MS 10000
#define TRACK_GC_EVERY_MS 60000

int64_t dd_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- subscriptions ------------------------------------------------------------------------- */

static struct dsub *dsub_find(struct evd_dispatch *d, const char *ns, const char *name)
{
	for (struct dsub *s = d->subs; s; s = s->next)
		if (strcmp(s->ns, ns) == 0 && strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

static struct dsub *dsub_get(struct evd_dispatch *d, struct evd_subscription *sub)
{
	struct dsub *s = dsub_find(d, sub->ns, sub->name);
	if (s)
		return s;
	s = evd_xcalloc(1, sizeof(*s));
	s->ns = evd_xstrdup(sub->ns);
	s->name = evd_xstrdup(sub->name);
	s->sub = evd_subscription_ref(sub);
	s->next = d->subs;
	d->subs = s;
	return s;
}

static void dsub_maybe_free(struct evd_dispatch *d, struct dsub *s)
{
	if (s->nbindings || s->in_flight || s->nheld)
		return;
	for (struct dsub **pp = &d->subs; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	evd_subscription_free(s->sub);
	free(s->ns);
	free(s->name);
	free(s->last_failure_reason);
	free(s);
}

/* ---- bindings ------------------------------------------------------------------------------ */

static struct dbinding *binding_find(struct evd_dispatch *d, const char *name)
{
	for (struct dbinding *b = d->bindings; b; b = b->next)
		if (strcmp(b->name, name) == 0)
			return b;
	return NULL;
}

static void on_sub_closed(struct evd_nats_sub *s, void *data)
{
	struct dbinding *b = data;
	struct evd_dispatch *d = b->d;

	b->nsubs_open--;
	if (b->nsub == s)
		b->nsub = NULL; /* closed by the link (CLOSED connection): subscribe again when READY */
	if (!b->present) {
		dd_binding_maybe_free(d, b);
	} else if (b->deliverable && d->nats_ready && !d->stopping && !b->nsub) {
		int rc = evd_nats_sub_new(d->nats, b->subject, EVD_REGISTRY_DELIVER_GROUP, dd_on_msgs,
					  on_sub_closed, b, &b->nsub);
		if (rc == 0)
			b->nsubs_open++;
	}
	dd_check_stopped(d);
}

/* Makes b's subscription match its level. */
static void binding_apply(struct evd_dispatch *d, struct dbinding *b)
{
	bool want = b->present && b->deliverable && d->nats_ready && !d->stopping;

	if (want && !b->nsub) {
		int rc = evd_nats_sub_new(d->nats, b->subject, EVD_REGISTRY_DELIVER_GROUP, dd_on_msgs,
					  on_sub_closed, b, &b->nsub);
		if (rc < 0) {
			b->nsub = NULL;
			/* Not connected: the next READY subscribes. */
			evd_log_debug("dispatch", "cannot subscribe to %s yet: %s", b->subject,
				      strerror(-rc));
			return;
		}
		b->nsubs_open++;
		evd_log_debug("dispatch", "delivering %s/%s (consumer %s) to %s", b->sub->ns,
			      b->sub->name, b->name, b->sub->sink.url);
	} else if (!want && b->nsub) {
		struct evd_nats_sub *s = b->nsub;
		b->nsub = NULL;
		evd_nats_sub_close(s);
	}
	if (!want)
		dd_release_held(d, b);
}

void dd_binding_maybe_free(struct evd_dispatch *d, struct dbinding *b)
{
	if (b->present || b->nsubs_open || b->live)
		return;
	for (struct dbinding **pp = &d->bindings; *pp; pp = &(*pp)->next) {
		if (*pp == b) {
			*pp = b->next;
			break;
		}
	}
	struct dsub *ds = b->ds;
	if (d->m_delivery) {
		/* A consumer that goes away takes its series along (as Kyma's do). */
		const char *l[] = { NULL, NULL, NULL, NULL, NULL, b->name };
		evd_metric_remove_matching(d->m_delivery, l);
		evd_metric_remove_matching(d->m_duration, l);
	}
	ds->nbindings--;
	evd_subscription_free(b->sub);
	evd_dispatch_track_free(&b->track);
	free(b);
	dsub_maybe_free(d, ds);
}

void evd_dispatch_on_binding(const struct evd_registry_binding *rb, void *data)
{
	struct evd_dispatch *d = data;
	struct dbinding *b = binding_find(d, rb->consumer);

	if (!b) {
		if (!rb->present)
			return;
		b = evd_xcalloc(1, sizeof(*b));
		b->d = d;
		snprintf(b->name, sizeof(b->name), "%s", rb->consumer);
		snprintf(b->subject, sizeof(b->subject), "%s%s", EVD_REGISTRY_DELIVER_PREFIX, rb->consumer);
		b->sub = evd_subscription_ref(rb->sub);
		b->ds = dsub_get(d, rb->sub);
		b->ds->nbindings++;
		b->next = d->bindings;
		d->bindings = b;
	}
	if (b->sub != rb->sub) {
		/* A new definition: its sink, limits and settings apply to the next attempt. */
		evd_subscription_free(b->sub);
		b->sub = evd_subscription_ref(rb->sub);
		if (b->ds->sub != rb->sub) {
			evd_subscription_free(b->ds->sub);
			b->ds->sub = evd_subscription_ref(rb->sub);
		}
	}
	b->type = rb->type;
	b->present = rb->present;
	b->deliverable = rb->present && rb->deliverable;
	binding_apply(d, b);
	if (b->present)
		dd_pump(d, b->ds); /* maxInFlightMessages may have grown */
	else
		dd_binding_maybe_free(d, b);
}

void evd_dispatch_backend_state(struct evd_dispatch *d, enum evd_nats_state state)
{
	bool ready = state == EVD_NATS_READY;
	if (ready == d->nats_ready)
		return;
	d->nats_ready = ready;
	if (state == EVD_NATS_CLOSED) {
		/* The connection is dead: held messages can only be returned (they come back after
		 * ack_wait); nats_sub closes the subscriptions and the next READY makes new ones. */
		for (struct dbinding *b = d->bindings; b; b = b->next)
			dd_release_held(d, b);
	}
	if (!ready)
		return; /* a reconnecting connection keeps its subscriptions (nats.c resubscribes) */
	for (struct dbinding *b = d->bindings; b; b = b->next)
		binding_apply(d, b);
}

/* ---- timers -------------------------------------------------------------------------------- */

static uint64_t wpi_tick_ms(const struct evd_dispatch *d)
{
	uint64_t t = (uint64_t)d->cfg->dispatch.ack_wait / 4;
	return t < WPI_MIN_TICK_MS ? WPI_MIN_TICK_MS : t > WPI_MAX_TICK_MS ? WPI_MAX_TICK_MS : t;
}

static void on_wpi_timer(uv_timer_t *t)
{
	struct evd_dispatch *d = t->data;
	dd_wpi_sweep(d);
	uint64_t now = uv_now(d->loop);
	if (now - d->last_gc >= TRACK_GC_EVERY_MS) {
		d->last_gc = now;
		dd_track_gc(d);
	}
}

/* ---- life cycle ---------------------------------------------------------------------------- */

static void http_config(const struct evd_config *cfg, struct evd_http_client_config *hc)
{
	memset(hc, 0, sizeof(*hc));
	hc->max_conns_per_origin = cfg->dispatch.max_connections_per_sink;
	hc->timeout_ms = (uint64_t)cfg->dispatch.timeout;
	/* Kyma's transport keeps idle connections 10 s (IdleConnTimeout). */
	hc->idle_timeout_ms = 10000;
	hc->max_response_body = 1024;
}

static const char *const delivery_labels[] = { "subscription_name", "subscription_namespace",
					       "event_type", "sink", "response_code",
					       "consumer_name" };
static const char *const reason_labels[] = { "reason" };
/* Kyma's dispatch duration buckets: 0.002 * 2^n, n = 0..9 (reference §7.2). */
static const double duration_buckets[] = { 0.002, 0.004, 0.008, 0.016, 0.032,
					   0.064, 0.128, 0.256, 0.512, 1.024 };

int evd_dispatch_new(const struct evd_dispatch_deps *deps, struct evd_dispatch **out)
{
	struct evd_dispatch *d = evd_xcalloc(1, sizeof(*d));
	struct evd_http_client_config hc;

	d->loop = deps->loop;
	d->cfg = deps->cfg;
	d->nats = deps->nats;
	d->metrics = deps->metrics;
	d->http = deps->http;
	http_config(d->cfg, &hc);
	evd_http_client_set_config(d->http, &hc);

	uv_timer_init(d->loop, &d->wpi_timer);
	uv_timer_init(d->loop, &d->drain_timer);
	d->wpi_timer.data = d->drain_timer.data = d;
	d->open_handles = 2;
	d->last_gc = uv_now(d->loop);
	srandom((unsigned)(uv_hrtime() ^ (uintptr_t)d)); /* retry jitter only */
	uint64_t tick = wpi_tick_ms(d);
	uv_timer_start(&d->wpi_timer, on_wpi_timer, tick, tick);

	if (d->metrics) {
		d->m_delivery = evd_metrics_add(
			d->metrics, EVD_METRIC_COUNTER, "eventing_ec_nats_delivery_per_subscription_total",
			"Delivery attempts per subscription, event type, sink and response code (Kyma's; "
			"500 when no response came).",
			6, delivery_labels, NULL, 0, 100000);
		d->m_duration = evd_metrics_add(
			d->metrics, EVD_METRIC_HISTOGRAM,
			"eventing_ec_nats_subscriber_dispatch_duration_seconds",
			"Duration of delivery attempts to sinks (Kyma's buckets).", 6, delivery_labels,
			duration_buckets, sizeof(duration_buckets) / sizeof(duration_buckets[0]), 100000);
		d->m_in_flight = evd_metrics_add(d->metrics, EVD_METRIC_GAUGE,
						 "eventingd_dispatch_in_flight",
						 "Delivery attempts being sent to sinks now.", 0, NULL,
						 NULL, 0, 1);
		d->m_retries = evd_metrics_add(d->metrics, EVD_METRIC_COUNTER,
					       "eventingd_dispatch_retries_total",
					       "Failed attempts scheduled again (-NAK with a delay).",
					       0, NULL, NULL, 0, 1);
		d->m_permanent = evd_metrics_add(
			d->metrics, EVD_METRIC_COUNTER, "eventingd_dispatch_permanent_failures_total",
			"Events that failed for good (terminated), by reason: http_status (3xx, 4xx), "
			"max_deliver, not_cloudevent.",
			1, reason_labels, NULL, 0, 8);
		dd_set_in_flight_metric(d);
	}
	*out = d;
	return 0;
}

void dd_set_in_flight_metric(struct evd_dispatch *d)
{
	if (d->m_in_flight)
		evd_metric_set(d->m_in_flight, NULL, (double)d->in_flight);
}

void evd_dispatch_set_config(struct evd_dispatch *d, const struct evd_config *cfg)
{
	struct evd_http_client_config hc;
	d->cfg = cfg;
	http_config(cfg, &hc);
	evd_http_client_set_config(d->http, &hc);
	uint64_t tick = wpi_tick_ms(d);
	uv_timer_start(&d->wpi_timer, on_wpi_timer, tick, tick);
}

void dd_check_stopped(struct evd_dispatch *d)
{
	if (!d->stopping || d->drained_called || d->in_flight)
		return;
	/* on_stopped never runs inside evd_dispatch_stop (the daemon counts it as pending first):
	 * until the first callback after it, the drain timer says so. */
	if (!d->stop_returned)
		return;
	for (struct dbinding *b = d->bindings; b; b = b->next)
		if (b->nsubs_open)
			return;
	d->drained_called = true;
	uv_timer_stop(&d->drain_timer);
	evd_log_info("dispatch", "stopped: nothing in flight, every subscription closed");
	if (d->on_stopped)
		d->on_stopped(d->stopped_data);
}

static void on_drain_timer(uv_timer_t *t)
{
	struct evd_dispatch *d = t->data;
	if (d->in_flight)
		evd_log_warn("dispatch", "dispatch.drain_timeout passed with %zu attempt%s in flight: "
					 "cancelling them (the events come back at the next start)",
			     d->in_flight, d->in_flight == 1 ? "" : "s");
	dd_cancel_all(d);
	dd_check_stopped(d); /* nothing was left: the stop completes here, never inside the call */
}

void evd_dispatch_stop(struct evd_dispatch *d, uint64_t drain_ms, void (*on_stopped)(void *data),
		       void *data)
{
	if (d->stopping)
		return;
	d->stopping = true;
	d->on_stopped = on_stopped;
	d->stopped_data = data;
	if (d->in_flight || d->held)
		evd_log_info("dispatch", "stopping: %zu attempt%s in flight may finish within %" PRIu64
					 " ms, %zu held event%s go back to JetStream",
			     d->in_flight, d->in_flight == 1 ? "" : "s", drain_ms, d->held,
			     d->held == 1 ? "" : "s");
	for (struct dbinding *b = d->bindings; b; b = b->next)
		binding_apply(d, b);
	/* With nothing in flight and nothing subscribed, nothing else will call back: the timer
	 * ends the stop at once (asynchronously). */
	bool idle = !d->in_flight;
	for (struct dbinding *b = d->bindings; b && idle; b = b->next)
		idle = !b->nsubs_open;
	uv_timer_start(&d->drain_timer, on_drain_timer, idle ? 0 : drain_ms, 0);
	d->stop_returned = true;
}

static void on_handle_closed(uv_handle_t *h)
{
	struct evd_dispatch *d = h->data;
	if (--d->open_handles)
		return;
	while (d->bindings) {
		struct dbinding *b = d->bindings;
		d->bindings = b->next;
		evd_subscription_free(b->sub);
		evd_dispatch_track_free(&b->track);
		free(b);
	}
	while (d->subs) {
		struct dsub *s = d->subs;
		d->subs = s->next;
		evd_subscription_free(s->sub);
		free(s->ns);
		free(s->name);
		free(s->last_failure_reason);
		free(s);
	}
	dd_free_pool(d);
	free(d);
}

void evd_dispatch_free(struct evd_dispatch *d)
{
	if (!d || d->freeing)
		return;
	d->freeing = true;
	if (!d->drained_called) {
		/* Freed without a stop (start-up failure): nothing may be left subscribed. */
		for (struct dbinding *b = d->bindings; b; b = b->next)
			if (b->nsubs_open || b->live)
				evd_log_error("dispatch", "freed with consumer %s still subscribed", b->name);
	}
	uv_close((uv_handle_t *)&d->wpi_timer, on_handle_closed);
	uv_close((uv_handle_t *)&d->drain_timer, on_handle_closed);
}

/* ---- status -------------------------------------------------------------------------------- */

static void add_time(cJSON *o, const char *key, int64_t ms)
{
	if (!ms) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	char buf[40];
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)(ms % 1000));
	cJSON_AddStringToObject(o, key, buf);
}

void evd_dispatch_status_json(struct evd_dispatch *d, const char *ns, const char *name,
			      cJSON *status)
{
	const struct dsub *s = d ? dsub_find(d, ns, name) : NULL;
	cJSON *o = cJSON_AddObjectToObject(status, "delivery");
	if (!o)
		return;
	cJSON_AddNumberToObject(o, "delivered", s ? (double)s->delivered : 0);
	cJSON_AddNumberToObject(o, "failed", s ? (double)s->failed : 0);
	cJSON_AddNumberToObject(o, "retries", s ? (double)s->retries : 0);
	cJSON_AddNumberToObject(o, "inFlight", s ? s->in_flight : 0);
	add_time(o, "lastSuccess", s ? s->last_success_ms : 0);
	add_time(o, "lastFailure", s ? s->last_failure_ms : 0);
	if (s && s->last_failure_reason)
		cJSON_AddStringToObject(o, "lastFailureReason", s->last_failure_reason);
	else
		cJSON_AddNullToObject(o, "lastFailureReason");
}

void evd_dispatch_counts(const struct evd_dispatch *d, size_t *in_flight, size_t *held)
{
	*in_flight = d->in_flight;
	*held = d->held;
}
