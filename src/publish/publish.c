/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The publish endpoint's routes (DESIGN.md §4) and the CloudEvents requests: POST /publish and
 * its Kyma aliases /{app}/v2/events and /{app}/events in binary, structured and batched mode.
 *
 * A request is decoded and validated completely first (a batch: every event, nothing published
 * when one is bad), then admitted against the backend state and publish.max_in_flight (503 +
 * Retry-After instead of queueing), then every event is handed to JetStream asynchronously
 * (publish_js.c); the response goes out when the last ack is in. The http server keeps responses
 * in request order per connection, so pipelined requests may complete in any order.
 */
#include "publish/publish.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/daemon.h"
#include "event/event_legacy.h"
#include "event/event_type.h"
#include "nats/nats_conn.h"
#include "publish/publish_internal.h"
#include "util/util_log.h"
#include "util/util_mem.h"

static const char *const templates[EVD_ROUTE_COUNT] = {
	[EVD_ROUTE_NONE] = "",
	[EVD_ROUTE_PUBLISH] = "/publish",
	[EVD_ROUTE_V2] = "/{application}/v2/events",
	[EVD_ROUTE_EVENTS] = "/{application}/events",
	[EVD_ROUTE_LEGACY] = "/{application}/v1/events",
	[EVD_ROUTE_SUBSCRIBED] = "/{application}/v1/events/subscribed",
};

const char *evd_pub_route_template(enum evd_pub_route r)
{
	return templates[r];
}

#define LIT_EQ(s, n, lit) ((n) == sizeof(lit) - 1 && memcmp((s), (lit), sizeof(lit) - 1) == 0)

/* Matches the path (no query) against the routes; *app is the {application} segment. */
static enum evd_pub_route match_route(const char *path, size_t len, const char **app,
				      size_t *app_len)
{
	*app = NULL;
	*app_len = 0;
	if (LIT_EQ(path, len, "/publish"))
		return EVD_ROUTE_PUBLISH;
	if (len < 2 || path[0] != '/')
		return EVD_ROUTE_NONE;
	const char *seg = memchr(path + 1, '/', len - 1);
	if (!seg || seg == path + 1)
		return EVD_ROUTE_NONE;
	*app = path + 1;
	*app_len = (size_t)(seg - (path + 1));
	size_t rest = len - (size_t)(seg - path);
	if (LIT_EQ(seg, rest, "/v1/events"))
		return EVD_ROUTE_LEGACY;
	if (LIT_EQ(seg, rest, "/v2/events"))
		return EVD_ROUTE_V2;
	if (LIT_EQ(seg, rest, "/events"))
		return EVD_ROUTE_EVENTS;
	if (LIT_EQ(seg, rest, "/v1/events/subscribed"))
		return EVD_ROUTE_SUBSCRIBED;
	return EVD_ROUTE_NONE;
}

/* ---- request records ---------------------------------------------------------------------- */

static struct evd_pub_req *req_get(struct evd_publish *p, struct evd_http_request *http)
{
	struct evd_pub_req *r = p->pool;
	if (r) {
		p->pool = r->next_free;
		p->npool--;
	} else {
		r = evd_xcalloc(1, sizeof(*r));
	}
	r->p = p;
	r->http = http;
	r->next_free = NULL;
	r->route = EVD_ROUTE_NONE;
	r->events = r->two;
	r->nevents = 0;
	r->batch = false;
	r->pending = 0;
	r->status = 0;
	r->fail_idx = 0;
	r->fail_text[0] = '\0';
	r->fail_retry = false;
	r->legacy_id[0] = '\0';
	r->unrouted = 0;
	r->unrouted_idx = 0;
	r->unrouted_subject = NULL;
	return r;
}

static void req_put(struct evd_pub_req *r)
{
	struct evd_publish *p = r->p;
	if (r->batch) {
		evd_ce_free_batch(r->events, r->nevents);
	} else {
		evd_ce_free(&r->two[0]);
		evd_ce_free(&r->two[1]);
	}
	r->events = r->two;
	r->nevents = 0;
	r->http = NULL;
	if (p->npool >= EVD_PUB_POOL) {
		free(r);
		return;
	}
	r->next_free = p->pool;
	p->pool = r;
	p->npool++;
}

void evd_publish_log_access(struct evd_publish *p, const struct evd_http_request *req, int status,
			    size_t resp_bytes)
{
	if (p->access)
		evd_access_log_line(p->access, req, status, resp_bytes);
}

void evd_pub_respond(struct evd_pub_req *r, int status, const char *ctype, const char *extra,
		     const void *body, size_t len)
{
	struct evd_publish *p = r->p;
	struct evd_http_request *http = r->http;
	if (r->route != EVD_ROUTE_NONE)
		evd_pub_metrics_request(p, r->route, http->method, status, http->start_ns);
	if (p->access)
		evd_access_log_line(p->access, http, status, len);
	evd_http_respond(http, status, ctype, extra, body, len);
	req_put(r);
}

void evd_pub_respond_text(struct evd_pub_req *r, int status, const char *extra, const char *text)
{
	size_t n = strlen(text);
	char small[320];
	char *buf = n + 2 <= sizeof(small) ? small : evd_xmalloc(n + 1);
	memcpy(buf, text, n);
	buf[n] = '\n';
	evd_pub_respond(r, status, "text/plain; charset=utf-8", extra, buf, n + 1);
	if (buf != small)
		free(buf);
}

/* ---- preparing events --------------------------------------------------------------------- */

/* Request headers that become extensions (evd_ce_tracing: the table the dispatcher uses to send
 * them back as headers). */
static int add_tracing(const struct evd_http_request *http, struct evd_cloudevent *ev,
		       struct evd_buf *err)
{
	bool added = false;
	for (size_t i = 0; i < http->nheaders; i++) {
		const struct evd_header *h = &http->headers[i];
		char c = h->name[0];
		if (c != 't' && c != 'T' && c != 'x' && c != 'X')
			continue;
		for (size_t k = 0; k < evd_ce_ntracing; k++) {
			const struct evd_ce_tracing *tr = &evd_ce_tracing[k];
			if (h->name_len != tr->header_len ||
			    strncasecmp(h->name, tr->header, h->name_len) != 0)
				continue;
			/* An extension the event carries itself wins over the transport's header. */
			if (h->value_len == 0 || evd_ce_ext_get(ev, tr->ext))
				break;
			if (evd_ce_set(ev, tr->ext, h->value, h->value_len, err) < 0)
				return -EINVAL;
			added = true;
			break;
		}
	}
	if (added && evd_ce_validate(ev, err) < 0)
		return -EINVAL;
	return 0;
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

/*
 * Kyma's naming for (source, type), remembered: real traffic has few distinct pairs, and the
 * cleaners allocate several strings per call. Direct-mapped; a collision simply recomputes.
 * Only successes are kept (errors are rare and carry their own text).
 */
static const struct evd_pub_naming *naming_for(struct evd_publish *p, const char *source,
					       const char *type, struct evd_buf *err)
{
	uint64_t h = fnv1a(fnv1a(0xcbf29ce484222325ull, source) * 31, type);
	struct evd_pub_naming *n = &p->naming[h % EVD_PUB_NAMING_CACHE];
	if (n->source && n->hash == h && strcmp(n->source, source) == 0 && strcmp(n->type, type) == 0)
		return n;
	char *subject = NULL, *clean = NULL, *why = NULL;
	if (evd_event_subject_for_publish(source, type, p->type_prefix, p->subject_prefix, &subject,
					  &clean, &why) < 0) {
		evd_buf_append_str(err, why ? why : "invalid event type");
		free(why);
		return NULL;
	}
	free(n->source);
	free(n->type);
	free(n->subject);
	free(n->clean_type);
	n->hash = h;
	n->source = evd_xstrdup(source);
	n->type = evd_xstrdup(type);
	n->subject = subject;
	n->prefixed = evd_event_type_has_prefix(type, p->type_prefix);
	n->clean_type = clean;
	return n;
}

int evd_pub_prepare(struct evd_publish *p, const struct evd_http_request *http,
		    struct evd_cloudevent *ev, const char **subject, struct evd_buf *err)
{
	const char *type = ev->attr[EVD_CE_TYPE];

	*subject = NULL;
	if (add_tracing(http, ev, err) < 0)
		return -EINVAL;
	const struct evd_pub_naming *n = naming_for(p, ev->attr[EVD_CE_SOURCE], type, err);
	if (!n)
		return -EINVAL;
	/* The event's arena outlives the publish; the cache entry may be replaced meanwhile. */
	*subject = evd_ce_strdup(ev, n->subject, strlen(n->subject));
	/* Kyma: a prefixed type is published cleaned; a standard one as published, with the
	 * published type also in originaltype (its sinks get that back as the type). */
	if (n->prefixed)
		return evd_ce_set(ev, "type", n->clean_type, strlen(n->clean_type), err);
	return evd_ce_set(ev, "originaltype", type, ev->attr_len[EVD_CE_TYPE], err);
}

/* What n events of r will add to bytes_in_flight, about: the payloads come from the body (a
 * batch shares it, a single event or the legacy pair each carry it once). */
static size_t admit_bytes(const struct evd_pub_req *r, size_t n)
{
	return (r->http->body_len + 256) * (r->batch ? 1 : n);
}

int evd_pub_admit(struct evd_pub_req *r, size_t n)
{
	struct evd_publish *p = r->p;
	char text[200];
	if (!p->backend_ready) {
		const char *reason = NULL;
		if (evd_daemon_ready(p->daemon, &reason))
			reason = "not ready";
		snprintf(text, sizeof(text), "JetStream unavailable: %s; retry later",
			 reason ? reason : "not ready");
		evd_pub_metrics_shed(p, "backend_unavailable");
	} else if (p->in_flight > 0 && p->in_flight + n > p->max_in_flight) {
		snprintf(text, sizeof(text),
			 "overloaded: %zu publishes await JetStream acknowledgements "
			 "(publish.max_in_flight %u); retry later",
			 p->in_flight, p->max_in_flight);
		evd_pub_metrics_shed(p, "max_in_flight");
	} else if (p->bytes_in_flight > 0 &&
		   p->bytes_in_flight + admit_bytes(r, n) > EVD_PUB_MAX_BYTES_IN_FLIGHT) {
		snprintf(text, sizeof(text),
			 "overloaded: %zu bytes of publishes await JetStream acknowledgements "
			 "(at most %u); retry later",
			 p->bytes_in_flight, EVD_PUB_MAX_BYTES_IN_FLIGHT);
		evd_pub_metrics_shed(p, "max_bytes_in_flight");
	} else {
		r->publish_ns = uv_hrtime();
		return 0;
	}
	if (r->route == EVD_ROUTE_LEGACY)
		evd_pub_legacy_unavailable(r, text);
	else
		evd_pub_respond_text(r, 503, "Retry-After: 1\r\n", text);
	return -EAGAIN;
}

void evd_pub_note_unrouted(struct evd_pub_req *r, const char *const *subjects, size_t n)
{
	struct evd_publish *p = r->p;
	if (!p->wanted)
		return;
	if (r->route == EVD_ROUTE_LEGACY) {
		/* One event, stored on its standard and (maybe) its prefixed subject. */
		for (size_t i = 0; i < n; i++)
			if (p->wanted(subjects[i], p->wanted_data))
				return;
		r->unrouted = 1;
		r->unrouted_idx = 0;
		r->unrouted_subject = subjects[0];
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (p->wanted(subjects[i], p->wanted_data))
			continue;
		if (r->unrouted++ == 0) {
			r->unrouted_idx = i;
			r->unrouted_subject = subjects[i];
		}
	}
}

/* At most max-1 bytes of s, control characters as '?': attributes come from clients. */
static const char *printable(const char *s, char *out, size_t max)
{
	size_t i = 0;
	for (; s && s[i] && i + 1 < max; i++)
		out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	out[i] = '\0';
	return out;
}

/* A request answered 2xx stored events no subscription wants: count them, say so at debug. */
static void count_unrouted(struct evd_pub_req *r)
{
	struct evd_publish *p = r->p;
	p->unrouted_total += r->unrouted;
	evd_pub_metrics_unrouted(p, r->route, r->unrouted);
	if (evd_log_threshold < EVD_LOG_DEBUG)
		return;
	const struct evd_cloudevent *ev = &r->events[r->unrouted_idx];
	/* The type as published: standard types keep it in originaltype. */
	const char *type = evd_ce_ext_get(ev, "originaltype");
	char id[80], t[160], src[160], more[64] = "";
	if (r->unrouted > 1)
		snprintf(more, sizeof(more), " (and %zu more events of this batch)", r->unrouted - 1);
	evd_log_debug("publish",
		      "event \"%s\" of type \"%s\" from source \"%s\" stored on %s%s, but no "
		      "subscription wants that subject: %s",
		      printable(ev->attr[EVD_CE_ID], id, sizeof(id)),
		      printable(type ? type : ev->attr[EVD_CE_TYPE], t, sizeof(t)),
		      printable(ev->attr[EVD_CE_SOURCE], src, sizeof(src)), r->unrouted_subject, more,
		      p->cfg->stream.retention == EVD_RETENTION_INTEREST
			      ? "interest retention drops it at once (eventingd_publish_unrouted_total)"
			      : "it stays until the stream's limits remove it "
				"(eventingd_publish_unrouted_total)");
}

void evd_pub_complete(struct evd_pub_req *r)
{
	if (r->status == 0 && r->unrouted)
		count_unrouted(r);
	if (r->route == EVD_ROUTE_LEGACY) {
		evd_pub_legacy_done(r);
		return;
	}
	if (r->status == 0) {
		evd_pub_respond(r, 204, NULL, NULL, NULL, 0);
		return;
	}
	char text[320];
	if (r->batch)
		snprintf(text, sizeof(text),
			 "event %zu: %s (other events of the batch may be stored; retrying the whole "
			 "batch is safe)",
			 r->fail_idx, r->fail_text);
	else
		snprintf(text, sizeof(text), "%s", r->fail_text);
	evd_pub_respond_text(r, r->status, r->fail_retry ? "Retry-After: 1\r\n" : NULL, text);
}

/* Publishes r->events[0..n) on subjects; completes r at once if nothing went out. */
static void publish_all(struct evd_pub_req *r, const char **subjects)
{
	for (size_t i = 0; i < r->nevents; i++)
		if (evd_pub_js_publish(r, i, subjects[i]) < 0)
			break; /* nats.c refused: the rest would fail the same way */
	if (r->pending == 0)
		evd_pub_complete(r);
}

static void publish_cloudevents(struct evd_pub_req *r)
{
	struct evd_publish *p = r->p;
	struct evd_http_request *http = r->http;
	const struct evd_header *ct = evd_http_request_header(http, "Content-Type");
	struct evd_buf err = EVD_BUF_INIT;
	const char *one_subject = NULL, **subjects = &one_subject;
	int rc = 0;

	switch (evd_ce_detect_mode(ct ? ct->value : "", ct ? ct->value_len : 0)) {
	case EVD_CE_MODE_UNSUPPORTED:
		evd_buf_printf(&err, "unsupported CloudEvents format \"%.*s\": only "
				     "application/cloudevents+json and application/cloudevents-batch+json",
			       (int)(ct->value_len > 100 ? 100 : ct->value_len), ct->value);
		evd_pub_respond_text(r, 415, NULL, err.data);
		goto out;
	case EVD_CE_MODE_BINARY:
		rc = evd_ce_decode_binary(http->headers, http->nheaders, http->body, http->body_len,
					  &r->two[0], &err);
		r->nevents = rc == 0;
		break;
	case EVD_CE_MODE_STRUCTURED:
		rc = evd_ce_decode_structured(http->body, http->body_len, &r->two[0], &err);
		r->nevents = rc == 0;
		break;
	case EVD_CE_MODE_BATCH: {
		struct evd_cloudevent *evs = NULL;
		size_t n = 0;
		rc = evd_ce_decode_batch(http->body, http->body_len, EVD_PUB_MAX_BATCH, &evs, &n, &err);
		if (rc == 0) {
			r->batch = true;
			r->events = evs;
			r->nevents = n;
		}
		break;
	}
	}
	if (rc < 0) {
		evd_pub_respond_text(r, 400, NULL, err.len ? err.data : "not a valid CloudEvent");
		goto out;
	}
	if (r->nevents == 0) { /* an empty batch */
		evd_pub_respond(r, 204, NULL, NULL, NULL, 0);
		goto out;
	}
	if (r->nevents > 1)
		subjects = evd_xcalloc(r->nevents, sizeof(*subjects));
	for (size_t i = 0; i < r->nevents; i++) {
		if (evd_pub_prepare(p, http, &r->events[i], &subjects[i], &err) < 0) {
			if (r->batch) {
				char text[64];
				snprintf(text, sizeof(text), "event %zu: ", i);
				struct evd_buf b = EVD_BUF_INIT;
				evd_buf_printf(&b, "%s%s", text, err.data);
				evd_pub_respond_text(r, 400, NULL, b.data);
				evd_buf_free(&b);
			} else {
				evd_pub_respond_text(r, 400, NULL, err.data);
			}
			goto free_subjects;
		}
	}
	evd_pub_note_unrouted(r, subjects, r->nevents);
	if (evd_pub_admit(r, r->nevents) == 0)
		publish_all(r, subjects);
free_subjects:
	if (subjects != &one_subject)
		free(subjects);
out:
	evd_buf_free(&err);
}

/* ---- the public API ----------------------------------------------------------------------- */

void evd_publish_handle(struct evd_publish *p, struct evd_http_request *req)
{
	const char *app;
	size_t app_len;
	enum evd_pub_route route = match_route(req->path, req->path_len, &app, &app_len);
	struct evd_pub_req *r = req_get(p, req);

	if (route == EVD_ROUTE_NONE) {
		evd_pub_respond_text(r, 404, NULL,
				     "no such route: the publish endpoint serves POST /publish, POST "
				     "/{application}/v1/events, /v2/events and /events, and GET "
				     "/{application}/v1/events/subscribed");
		return;
	}
	r->route = route;
	bool get = route == EVD_ROUTE_SUBSCRIBED;
	if (strcmp(req->method, get ? "GET" : "POST") != 0) {
		char text[160];
		snprintf(text, sizeof(text), "method %s not allowed on %s: use %s", req->method,
			 templates[route], get ? "GET" : "POST");
		evd_pub_respond_text(r, 405, get ? "Allow: GET\r\n" : "Allow: POST\r\n", text);
		return;
	}
	switch (route) {
	case EVD_ROUTE_LEGACY:
		evd_pub_legacy(r, app, app_len);
		return;
	case EVD_ROUTE_SUBSCRIBED:
		evd_pub_subscribed(r, app, app_len);
		return;
	default:
		publish_cloudevents(r);
		return;
	}
}

void evd_publish_reject(struct evd_publish *p, const struct evd_http_request *req, int status,
			const char *reason, struct evd_buf *body, const char **content_type)
{
	const char *app;
	size_t app_len;
	(void)reason;
	if (!req->path || !req->method)
		return;
	enum evd_pub_route route = match_route(req->path, req->path_len, &app, &app_len);
	if (route == EVD_ROUTE_NONE)
		return;
	if (status == 413 && route == EVD_ROUTE_LEGACY) {
		evd_legacy_too_large_body(body);
		*content_type = "application/json";
	} else if (status == 413 && p) {
		evd_buf_printf(body, "request body exceeds publish.max_request_size (%llu bytes)\n",
			       (unsigned long long)p->cfg->publish.max_request_size);
	}
	if (p) {
		evd_pub_metrics_request(p, route, req->method, status, req->start_ns);
		if (p->access)
			evd_access_log_line(p->access, req, status, body->len);
	}
}

static void apply_config(struct evd_publish *p, const struct evd_config *cfg)
{
	p->cfg = cfg;
	p->legacy_copy = cfg->publish.legacy_prefixed_copy;
	uint32_t want = cfg->publish.max_in_flight;
	/* The bound sized at start (max_pending); keep room for a batch under it. */
	int64_t room = p->max_pending - EVD_PUB_MAX_BATCH - 2;
	if ((int64_t)want > room) {
		evd_log_warn("publish",
			     "publish.max_in_flight %u is above what this process started with "
			     "allows (%lld); using %lld until a restart",
			     want, (long long)room, (long long)room);
		want = (uint32_t)room;
	}
	p->max_in_flight = want;
}

int evd_publish_new(struct evd_daemon *d, evd_publish_wanted_cb wanted, void *wanted_data,
		    struct evd_publish **out)
{
	const struct evd_config *cfg = evd_daemon_config(d);
	struct evd_publish *p = evd_xcalloc(1, sizeof(*p));
	int rc;

	p->daemon = d;
	p->wanted = wanted;
	p->wanted_data = wanted_data;
	p->type_prefix = evd_xstrdup(cfg->publish.event_type_prefix);
	p->subject_prefix = evd_xstrdup(cfg->stream.subject_prefix);
	p->max_in_flight = cfg->publish.max_in_flight;
	rc = evd_pub_js_init(p);
	if (rc < 0)
		goto fail;
	apply_config(p, cfg);
	evd_pub_metrics_init(p);
	if (cfg->publish.access_log &&
	    evd_access_log_open(evd_daemon_loop(d), cfg->publish.access_log, &p->access) < 0)
		evd_log_warn("publish", "continuing without the access log");
	*out = p;
	return 0;
fail:
	free(p->type_prefix);
	free(p->subject_prefix);
	free(p);
	return rc;
}

void evd_publish_set_config(struct evd_publish *p, const struct evd_config *cfg)
{
	apply_config(p, cfg);
	/* Reopened on every reload, so `kill -HUP` after log rotation starts a new file. */
	if (p->access) {
		evd_access_log_close(p->access);
		p->access = NULL;
	}
	if (cfg->publish.access_log &&
	    evd_access_log_open(evd_daemon_loop(p->daemon), cfg->publish.access_log, &p->access) < 0)
		evd_log_warn("publish", "continuing without the access log");
}

void evd_publish_backend_state(struct evd_publish *p, bool ready)
{
	p->backend_ready = ready;
	if (ready) {
		evd_pub_js_backend_ready(p);
		struct evd_nats *n = evd_daemon_nats(p->daemon);
		natsConnection *nc = n ? evd_nats_connection(n) : NULL;
		char url[256] = "";
		if (nc && natsConnection_GetConnectedUrl(nc, url, sizeof(url)) == NATS_OK) {
			char *shown = evd_nats_redact_urls(url);
			snprintf(p->backend_url, sizeof(p->backend_url), "%s", shown);
			free(shown);
		}
	}
}

void evd_publish_backend_lost(struct evd_publish *p)
{
	p->backend_ready = false;
	evd_pub_js_backend_lost(p);
}

uint64_t evd_publish_unrouted_total(const struct evd_publish *p)
{
	return p->unrouted_total;
}

void evd_publish_set_subscribed_provider(struct evd_publish *p, evd_publish_subscribed_cb fn,
					 void *data)
{
	p->subscribed = fn;
	p->subscribed_data = data;
}

void evd_publish_free(struct evd_publish *p)
{
	if (!p)
		return;
	evd_pub_js_shutdown(p);
	while (p->pool) {
		struct evd_pub_req *r = p->pool;
		p->pool = r->next_free;
		free(r);
	}
	if (p->access)
		evd_access_log_close(p->access);
	evd_buf_free(&p->scratch);
	for (size_t i = 0; i < EVD_PUB_NAMING_CACHE; i++) {
		free(p->naming[i].source);
		free(p->naming[i].type);
		free(p->naming[i].subject);
		free(p->naming[i].clean_type);
	}
	free(p->type_prefix);
	free(p->subject_prefix);
	free(p);
}
