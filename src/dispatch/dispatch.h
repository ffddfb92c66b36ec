/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The push dispatcher (DESIGN.md §6): every event stored in a subscription's consumers is POSTed
 * to the subscription's sink, at least once, and settled in JetStream by its outcome.
 *
 *   bindings (dispatch.c)   the registry's observer (registry.h, level-based) says which
 *                           consumers may deliver; each such consumer gets one core queue
 *                           subscription (nats_sub.h) on _EVD.deliver.<consumer>, group
 *                           eventingd, on the link's current connection, re-made after a CLOSED.
 *   delivery                messages are counted per subscription across its types: at most
 *   (dispatch_deliver.c)    maxInFlightMessages are sent at once, the rest are held (and kept
 *                           alive with +WPI); each attempt is one HTTP request (http_client.h,
 *                           binary or structured mode, dispatch_request.c); the outcome settles
 *                           the message: 2xx +ACK; 408/429/5xx/timeouts/connection errors
 *                           -NAK {"delay"} with capped exponential backoff and jitter
 *                           (dispatch_policy.c), so a retry comes back through JetStream and
 *                           survives restarts; 3xx/other 4xx, a message that is no CloudEvent,
 *                           and maxDeliver attempts are permanent: logged, counted, +TERM.
 *
 * Attempts are counted here, per (consumer, stream sequence), not by the server: a redelivery of
 * a message already held or being sent (its ack wait ran out meanwhile) is not a new attempt: the
 * newest copy's reply subject is kept to settle with, the older copy is dropped. After a restart
 * the count starts from the server's delivery count.
 *
 * Ownership: the daemon creates the dispatcher after the registry and hands it the loop, the
 * configuration (which must stay allocated while current), the NATS link, the metrics registry
 * and the HTTP client; it owns none of them. Subscription objects are referenced on the loop only;
 * nats.c threads never see them (nats_sub.h brings messages to the loop).
 *
 * Threads: loop thread only, for every function here.
 */
#ifndef EVD_DISPATCH_H
#define EVD_DISPATCH_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <uv.h>

#include "config/config.h"
#include "nats/nats_conn.h"
#include "registry/registry.h"

struct evd_dispatch;
struct evd_http_client;
struct evd_metrics;

struct evd_dispatch_deps {
	uv_loop_t *loop;
	const struct evd_config *cfg;
	struct evd_nats *nats;
	struct evd_metrics *metrics;   /* may be NULL */
	struct evd_http_client *http;  /* the sink requests' client (the daemon closes it) */
};

int evd_dispatch_new(const struct evd_dispatch_deps *deps, struct evd_dispatch **out);

/* The registry's observer (evd_registry_set_observer(reg, evd_dispatch_on_binding, d)). */
void evd_dispatch_on_binding(const struct evd_registry_binding *b, void *data);

/* The NATS link's state: bindings subscribe while READY, and again after a CLOSED. */
void evd_dispatch_backend_state(struct evd_dispatch *d, enum evd_nats_state state);

/* A reloaded configuration (backoff, max_deliver, timeout, connections per sink...): applies to
 * the next attempt. cfg must stay allocated while current. */
void evd_dispatch_set_config(struct evd_dispatch *d, const struct evd_config *cfg);

/*
 * SIGTERM: stops taking messages (unsubscribes every binding, -NAKs held messages at once so a
 * restart or another instance gets them), lets attempts in flight finish for up to drain_ms,
 * then cancels the rest (-NAK). on_stopped(data) runs on the loop once nothing is in flight and
 * every subscription is closed: then the NATS connection may drain. Called once.
 */
void evd_dispatch_stop(struct evd_dispatch *d, uint64_t drain_ms, void (*on_stopped)(void *data),
		       void *data);

/* Frees the dispatcher (after evd_dispatch_stop's on_stopped, or before anything subscribed).
 * NULL-safe. */
void evd_dispatch_free(struct evd_dispatch *d);

/*
 * Adds the delivery figures of subscription ns/name under status (the registry's status_extra
 * hook): "delivery": {"delivered","failed","retries","inFlight","lastSuccess","lastFailure",
 * "lastFailureReason"}. delivered: events acknowledged after a 2xx; failed: events that failed
 * permanently (terminated); retries: attempts that failed and were scheduled again; inFlight:
 * requests being sent now; lastSuccess/lastFailure: ISO 8601 times of the last 2xx and of the
 * last failed attempt (null when none); lastFailureReason: why that attempt failed (null when
 * none). Zeros and nulls for a subscription the dispatcher has not seen.
 */
void evd_dispatch_status_json(struct evd_dispatch *d, const char *ns, const char *name,
			      cJSON *status);

/* Attempts being sent now, messages held (tests and status). */
void evd_dispatch_counts(const struct evd_dispatch *d, size_t *in_flight, size_t *held);

#endif
