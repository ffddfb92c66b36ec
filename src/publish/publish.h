/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The publish endpoint's routes (DESIGN.md §4) on publish.listen: POST /publish, the legacy
 * /{app}/v1/events, /{app}/v2/events, /{app}/events, GET /{app}/v1/events/subscribed.
 * (/healthz and /readyz are answered before requests get here, by admin.)
 *
 * Loop thread only. Created after the NATS backend object exists and before evd_nats_start (it
 * registers the async-publish ack handler); freed after the publish listener has closed AND the
 * NATS connection is closed (nats.c may call the ack handler until then). Requests still
 * waiting for an ack at free are answered 503.
 */
#ifndef EVD_PUBLISH_H
#define EVD_PUBLISH_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "http/http_server.h"

struct evd_daemon;
struct evd_publish;
struct evd_buf;

/*
 * GET /{app}/v1/events/subscribed: appends the eventsInfo JSON for app to body
 * ({"eventsInfo":[{"name":"order.created","version":"v1"}]}) and returns the HTTP status (200, or
 * 500 with Kyma's {"code":500,"error":"..."}). Loop thread. Until a provider is set, the answer is
 * {"eventsInfo":[]}.
 */
typedef int (*evd_publish_subscribed_cb)(const char *app, struct evd_buf *body, void *data);

/*
 * Whether an event stored on subject will be kept for a subscriber: true when a subscription
 * wants it, and when that is not known. Loop thread; called once per event, before the publish.
 * Events answered 2xx for which it says false are counted in eventingd_publish_unrouted_total
 * and logged at debug level (interest retention drops them at once).
 */
typedef bool (*evd_publish_wanted_cb)(const char *subject, void *data);

/* wanted may be NULL: every event counts as wanted. */
int evd_publish_new(struct evd_daemon *d, evd_publish_wanted_cb wanted, void *wanted_data,
		    struct evd_publish **out);
/* Events answered 2xx that no subscription wanted, since start (GET /v1/backend). */
uint64_t evd_publish_unrouted_total(const struct evd_publish *p);
void evd_publish_handle(struct evd_publish *p, struct evd_http_request *req);
/* The subscription registry plugs in here (NULL: back to the empty answer). */
void evd_publish_set_subscribed_provider(struct evd_publish *p, evd_publish_subscribed_cb fn,
					 void *data);
/*
 * The publish listener's evd_http_reject_cb (the server answers 413 before routing): gives the
 * legacy route Kyma's JSON 413 body, /publish a plain-text reason, and counts and logs the
 * request. p may be NULL (before the backend exists): defaults apply.
 */
void evd_publish_reject(struct evd_publish *p, const struct evd_http_request *req, int status,
			const char *reason, struct evd_buf *body, const char **content_type);
/*
 * A request the publish listener answered outside this module (/healthz, /readyz): one line in
 * publish.access_log like every other request (man 8). Before the response is sent.
 */
void evd_publish_log_access(struct evd_publish *p, const struct evd_http_request *req, int status,
			    size_t resp_bytes);
/* A reloaded configuration: reloadable publish keys take effect for new requests. */
void evd_publish_set_config(struct evd_publish *p, const struct evd_config *cfg);
/* JetStream became ready (true) or not (false). */
void evd_publish_backend_state(struct evd_publish *p, bool ready);
/*
 * nats.c closed the connection for good (evd_nats state CLOSED; it is reopened from scratch):
 * its jsCtx is gone and no ack or timeout will come for what it had pending, so every publish
 * awaiting an ack is answered 503 + Retry-After now. Late acks of those are ignored.
 */
void evd_publish_backend_lost(struct evd_publish *p);
void evd_publish_free(struct evd_publish *p);

#endif
