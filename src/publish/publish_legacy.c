/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kyma's legacy routes (reference/kyma-eventing.md §1.7, §2): POST /{app}/v1/events and
 * GET /{app}/v1/events/subscribed. Parsing, validation order, the exact bodies and the conversion
 * are event_legacy.c's; this file runs the request through the publish path.
 *
 * Every legacy event is published twice while publish.legacy_prefixed_copy is on (the default),
 * as Kyma does: on its standard subject (kyma.<app>.<type>.<version>, what v1alpha2 / standard
 * subscriptions filter on) and on the prefixed subject (kyma.sap.kyma.custom.<app>.<type>.<version>,
 * what old v1alpha1-style "exact" subscriptions on full sap.kyma.custom types filter on), so both
 * kinds of subscriber receive it. Turn it off when no subscription uses prefixed types: it halves
 * the stream traffic of legacy events. If either publish fails, the client gets the error; a
 * retry is safe since each copy keeps its Nats-Msg-Id across retries and JetStream drops the
 * duplicate. The two copies have different Msg-Ids (publish_js.c): the prefixed copy's source is
 * "kyma" for every application, so (source, id) alone would make it a duplicate of the
 * standard copy of an application named "kyma" or of another application's prefixed copy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event_legacy.h"
#include "publish/publish_internal.h"
#include "util/util_mem.h"

static void respond_json(struct evd_pub_req *r, int status, const char *extra,
			 const struct evd_buf *body)
{
	evd_pub_respond(r, status, "application/json", extra, body->data, body->len);
}

void evd_pub_legacy_unavailable(struct evd_pub_req *r, const char *text)
{
	struct evd_buf body = EVD_BUF_INIT;
	evd_legacy_backend_error_body(&body, 503, text);
	respond_json(r, 503, "Retry-After: 1\r\n", &body);
	evd_buf_free(&body);
}

void evd_pub_legacy_done(struct evd_pub_req *r)
{
	struct evd_buf body = EVD_BUF_INIT;
	if (r->status == 0) {
		evd_legacy_success_body(&body, r->legacy_id);
		respond_json(r, 200, NULL, &body);
	} else {
		/* Kyma's messages where Kyma has the same status (§1.5), ours otherwise. */
		const char *msg = r->status == 507   ? "insufficient resources on target stream"
				  : r->status == 504 ? "cannot send to stream"
						     : r->fail_text;
		evd_legacy_backend_error_body(&body, r->status, msg);
		respond_json(r, r->status, r->fail_retry ? "Retry-After: 1\r\n" : NULL, &body);
	}
	evd_buf_free(&body);
}

void evd_pub_legacy(struct evd_pub_req *r, const char *app_seg, size_t app_len)
{
	struct evd_publish *p = r->p;
	struct evd_http_request *http = r->http;
	struct evd_legacy_request lr;
	struct evd_buf body = EVD_BUF_INIT, err = EVD_BUF_INIT;
	const char *subjects[2] = { NULL, NULL };
	char *app = evd_xmalloc(app_len + 1);
	int status;

	memcpy(app, app_seg, app_len);
	app[app_len] = '\0';
	if (evd_legacy_parse(http->body, http->body_len, &lr, &status, &body) < 0) {
		respond_json(r, status, NULL, &body);
		goto out;
	}
	int rc = evd_legacy_to_cloudevents(&lr, app, p->type_prefix, &r->two[0], &r->two[1], &body);
	evd_legacy_request_free(&lr);
	if (rc < 0) {
		respond_json(r, 400, NULL, &body);
		goto out;
	}
	r->events = r->two;
	r->nevents = p->legacy_copy ? 2 : 1;
	if (!p->legacy_copy)
		evd_ce_free(&r->two[1]);
	snprintf(r->legacy_id, sizeof(r->legacy_id), "%s", r->two[0].attr[EVD_CE_ID]);
	for (size_t i = 0; i < r->nevents; i++) {
		if (evd_pub_prepare(p, http, &r->two[i], &subjects[i], &err) < 0) {
			evd_legacy_bad_payload_body(&body, err.len ? err.data : "invalid event");
			respond_json(r, 400, NULL, &body);
			goto out;
		}
	}
	evd_pub_note_unrouted(r, subjects, r->nevents);
	if (evd_pub_admit(r, r->nevents) < 0)
		goto out;
	for (size_t i = 0; i < r->nevents; i++)
		if (evd_pub_js_publish(r, i, subjects[i]) < 0)
			break;
	if (r->pending == 0)
		evd_pub_complete(r);
out:
	free(app);
	evd_buf_free(&body);
	evd_buf_free(&err);
}

void evd_pub_subscribed(struct evd_pub_req *r, const char *app_seg, size_t app_len)
{
	struct evd_publish *p = r->p;
	struct evd_buf body = EVD_BUF_INIT;
	char *app = evd_xmalloc(app_len + 1);
	int status = 200;

	memcpy(app, app_seg, app_len);
	app[app_len] = '\0';
	if (p->subscribed)
		status = p->subscribed(app, &body, p->subscribed_data);
	else
		evd_buf_append_str(&body, "{\"eventsInfo\":[]}\n");
	respond_json(r, status, NULL, &body);
	free(app);
	evd_buf_free(&body);
}
