/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kyma's legacy event API, POST /{application}/v1/events (reference/kyma-eventing.md §2):
 * parsing and validation in Kyma's order with its exact JSON error bodies, conversion to the two
 * CloudEvents Kyma publishes for every legacy event, and the response bodies.
 *
 * Every response body here is what Go's json.Encoder writes: compact JSON plus a trailing "\n",
 * Content-Type application/json.
 *
 * Ownership: a parsed request owns its strings (evd_legacy_request_free); its data points into the
 * caller's body (zero copy) and the CloudEvents built from it point there too, so the body must
 * outlive them. Pure functions apart from the random bytes of a generated id; any thread.
 */
#ifndef EVD_EVENT_LEGACY_H
#define EVD_EVENT_LEGACY_H

#include <stddef.h>

#include "event/event_ce.h"

struct evd_buf;

struct evd_legacy_request {
	char *event_type;         /* "" when absent */
	char *event_type_version; /* "" when absent */
	char *event_id;           /* "" when absent: one is generated at conversion */
	char *event_time;         /* "" when absent */
	const char *data;         /* the raw JSON text of "data", pointing into the body */
	size_t data_len;
};

/*
 * Parses and validates a legacy request body in Kyma's order (§2.2 rows 1-9). Returns 0, or
 * -EINVAL with the HTTP status in *status (400) and the exact response body appended to
 * err_body. On error req holds nothing to free.
 */
int evd_legacy_parse(const char *body, size_t len, struct evd_legacy_request *req, int *status,
		     struct evd_buf *err_body);
void evd_legacy_request_free(struct evd_legacy_request *req);

/*
 * The two CloudEvents of §2.3, both valid and ready for the publish path:
 * - standard: source = app, type = "<event-type>.<version>" (the publish path then cleans it and
 *   adds originaltype as for /publish), extension eventtypeversion, datacontenttype
 *   application/json, time, id;
 * - prefixed: type "<prefix>.<app cleaned of \W|_>.<event name cleaned and merged>.<version>",
 *   source "kyma", same extension, datacontenttype, time and id.
 * Both carry the same id (the request's event-id or one new UUIDv4; Kyma draws a separate one
 * for each copy, which only makes the two copies harder to correlate). On error (for example an
 * application name that is not a valid source) -EINVAL with the Kyma-style 400 body in err_body
 * (bad_payload_syntax, moreInfo = the reason) and nothing to free.
 */
int evd_legacy_to_cloudevents(const struct evd_legacy_request *req, const char *app,
			      const char *type_prefix, struct evd_cloudevent *standard,
			      struct evd_cloudevent *prefixed, struct evd_buf *err_body);

/* {"event-id":"<id>","status":"","reason":""}\n */
void evd_legacy_success_body(struct evd_buf *out, const char *event_id);
/* {"status":413,"type":"request_body_too_large",...}\n (row 2b, for the server's body limit) */
void evd_legacy_too_large_body(struct evd_buf *out);
/* 400 {"status":400,"type":"bad_payload_syntax","message":"Bad payload syntax","moreInfo":...}\n
 * (a converted event that fails Kyma's naming, §2.3) */
void evd_legacy_bad_payload_body(struct evd_buf *out, const char *more_info);
/* {"status":<status>,"message":"<message>"}\n: a backend failure (§2.4) */
void evd_legacy_backend_error_body(struct evd_buf *out, int status, const char *message);

/* A random UUIDv4 (RFC 4122, OpenSSL RAND_bytes), lower-case, into out[37]. */
int evd_legacy_uuid4(char out[37]);

/* The application of a legacy path: the first segment of "/{app}/v1/events"; "" if none. */
size_t evd_legacy_app_from_path(const char *path, size_t len, const char **app);

#endif
