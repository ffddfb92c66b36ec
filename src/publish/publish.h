/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The publish endpoint's routes (DESIGN.md §4) on publish.listen: POST /publish, the legacy
 * /{app}/v1/events, /{app}/v2/events, /{app}/events, GET /{app}/v1/events/subscribed.
 * (/healthz and /readyz are answered before requests get here, by admin.)
 *
 * Loop thread only. Created after the NATS backend object exists; freed after the publish
 * listener has closed (so no request is still waiting for an ack).
 */
#ifndef EVD_PUBLISH_H
#define EVD_PUBLISH_H

#include <stdbool.h>

#include "config/config.h"
#include "http/http_server.h"

struct evd_daemon;
struct evd_publish;

int evd_publish_new(struct evd_daemon *d, struct evd_publish **out);
void evd_publish_handle(struct evd_publish *p, struct evd_http_request *req);
/* A reloaded configuration: reloadable publish keys take effect for new requests. */
void evd_publish_set_config(struct evd_publish *p, const struct evd_config *cfg);
/* JetStream became ready (true) or not (false). */
void evd_publish_backend_state(struct evd_publish *p, bool ready);
void evd_publish_free(struct evd_publish *p);

#endif
