/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The publish endpoint's metrics on the admin listener's GET /metrics: Kyma's EPP families
 * (reference/kyma-eventing.md §7.1, same names, labels and buckets, so existing dashboards work)
 * and ours (eventingd_publish_*). Loop thread only, like the registry.
 */
#include <stdio.h>
#include <string.h>

#include "admin/admin_metrics.h"
#include "daemon/daemon.h"
#include "publish/publish_internal.h"

/* event_type and event_source come from untrusted input: at most this many label sets. */
#define PUBLISHED_MAX_SERIES 1000

static const double backend_buckets[] = { 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024 };
static const double request_buckets[] = { 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.05,
					   0.075, 0.1,   0.15,  0.2,   0.25,  0.3,   0.35,
					   0.4,   0.45,  0.5,   0.6,   0.7,   0.8,   0.9,
					   1,     1.5,   2,     3,     5 };

#define N(a) (sizeof(a) / sizeof((a)[0]))

static double in_flight(void *data)
{
	const struct evd_publish *p = data;
	return (double)p->in_flight;
}

void evd_pub_metrics_init(struct evd_publish *p)
{
	struct evd_metrics *m = evd_daemon_metrics(p->daemon);
	static const char *const published_labels[] = { "event_type", "event_source", "code" };
	static const char *const backend_labels[] = { "code", "destination_service" };
	static const char *const request_labels[] = { "code", "method", "path" };
	static const char *const shed_labels[] = { "reason" };

	if (!m)
		return;
	p->m.published = evd_metrics_add(
		m, EVD_METRIC_COUNTER, "eventing_epp_event_type_published_total",
		"The total number of events published for a given event type.", 3, published_labels,
		NULL, 0, PUBLISHED_MAX_SERIES);
	p->m.backend_ms = evd_metrics_add(
		m, EVD_METRIC_HISTOGRAM, "eventing_epp_backend_duration_milliseconds",
		"The duration of sending events to the messaging server in milliseconds.", 2,
		backend_labels, backend_buckets, N(backend_buckets), 0);
	p->m.req_seconds = evd_metrics_add(
		m, EVD_METRIC_HISTOGRAM, "eventing_epp_requests_duration_seconds",
		"The duration of processing an incoming request (includes sending to the backend).",
		3, request_labels, request_buckets, N(request_buckets), 0);
	p->m.requests = evd_metrics_add(m, EVD_METRIC_COUNTER, "eventing_epp_requests_total",
					"The total number of requests.", 3, request_labels, NULL, 0,
					0);
	p->m.health = evd_metrics_add(m, EVD_METRIC_GAUGE, "eventing_epp_health",
				      "The current health of the system. `1` indicates a "
				      "healthy system.",
				      0, NULL, NULL, 0, 0);
	evd_metric_set(p->m.health, NULL, 1);
	p->m.duplicates = evd_metrics_add(
		m, EVD_METRIC_COUNTER, "eventingd_publish_duplicates_total",
		"Publishes JetStream recognised as duplicates (same source and id within the "
		"stream's duplicate window): answered as stored, stored once.",
		0, NULL, NULL, 0, 0);
	p->m.shed = evd_metrics_add(m, EVD_METRIC_COUNTER, "eventingd_publish_shed_total",
				    "Requests answered 503 without publishing, by reason "
				    "(max_in_flight, max_bytes_in_flight, backend_unavailable).",
				    1, shed_labels, NULL, 0, 0);
	static const char *const unrouted_labels[] = { "path" };
	p->m.unrouted = evd_metrics_add(
		m, EVD_METRIC_COUNTER, "eventingd_publish_unrouted_total",
		"Events answered 2xx whose subject no active subscription wants (with interest "
		"retention JetStream drops them at once), by route template.",
		1, unrouted_labels, NULL, 0, 0);
	evd_metrics_add_gauge_fn(m, "eventingd_publish_in_flight",
				 "Publishes awaiting a JetStream acknowledgement.", in_flight, p);
}

static void code_str(char out[8], int status)
{
	snprintf(out, 8, "%d", status);
}

void evd_pub_metrics_request(struct evd_publish *p, enum evd_pub_route route,
			     const char *method, int status, uint64_t start_ns)
{
	if (!p->m.requests)
		return;
	char code[8], lower[16];
	size_t i = 0;
	code_str(code, status);
	/* promhttp's method label is lower case. */
	for (; method[i] && i < sizeof(lower) - 1; i++)
		lower[i] = (char)(method[i] >= 'A' && method[i] <= 'Z' ? method[i] + 32 : method[i]);
	lower[i] = '\0';
	const char *labels[] = { code, lower, evd_pub_route_template(route) };
	double secs = (double)(uv_hrtime() - start_ns) / 1e9;
	evd_metric_observe(p->m.req_seconds, labels, secs);
	evd_metric_add(p->m.requests, labels, 1);
}

void evd_pub_metrics_published(struct evd_publish *p, const struct evd_cloudevent *ev)
{
	if (!p->m.published)
		return;
	/* Kyma counts the original type when the event carries originaltype. */
	const char *type = evd_ce_ext_get(ev, "originaltype");
	const char *labels[] = { type ? type : ev->attr[EVD_CE_TYPE],
				 ev->attr[EVD_CE_SOURCE] ? ev->attr[EVD_CE_SOURCE] : "", "204" };
	evd_metric_add(p->m.published, labels, 1);
}

void evd_pub_metrics_backend(struct evd_publish *p, int status, uint64_t start_ns)
{
	if (!p->m.backend_ms)
		return;
	char code[8];
	code_str(code, status);
	const char *labels[] = { code, p->backend_url };
	/* Kyma observes whole milliseconds. */
	evd_metric_observe(p->m.backend_ms, labels, (double)((uv_hrtime() - start_ns) / 1000000));
}

void evd_pub_metrics_shed(struct evd_publish *p, const char *reason)
{
	if (p->m.shed)
		evd_metric_add(p->m.shed, &reason, 1);
}

void evd_pub_metrics_duplicate(struct evd_publish *p)
{
	if (p->m.duplicates)
		evd_metric_add(p->m.duplicates, NULL, 1);
}

void evd_pub_metrics_unrouted(struct evd_publish *p, enum evd_pub_route route, size_t n)
{
	if (!p->m.unrouted)
		return;
	const char *path = evd_pub_route_template(route);
	evd_metric_add(p->m.unrouted, &path, (double)n);
}
