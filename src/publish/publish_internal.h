/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to src/publish/: the module object, the per-request record and the pieces the files
 * share.
 *
 *   publish.c         routes, /publish (binary, structured, batch), responses, lifecycle
 *   publish_legacy.c  POST /{app}/v1/events (Kyma's legacy API) and GET .../subscribed
 *   publish_js.c      asynchronous JetStream publishing: natsMsg building, the ack inbox
 *                     subscription, the loop-side id -> request map, timeouts and completion
 *   publish_metrics.c Kyma's eventing_epp_* metrics and ours
 *   publish_access.c  the optional access log (buffered, written off the loop by uv_fs_write)
 *
 * Ownership: struct evd_publish owns everything here. A request record (struct evd_pub_req) lives
 * from the handler call until its response is sent; records are pooled. Loop thread only.
 */
#ifndef EVD_PUBLISH_INTERNAL_H
#define EVD_PUBLISH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "event/event_ce.h"
#include "http/http_server.h"
#include "publish/publish.h"
#include "util/util_buf.h"

struct evd_metric;
struct evd_pub_acks;
struct evd_access_log;

/* How long JetStream may take to acknowledge a publish before the request gets 503 (the event
 * may still be stored: a retry is safe thanks to Nats-Msg-Id). */
#define EVD_PUB_ACK_WAIT_MS 5000
/*
 * Bytes of publishes awaiting an ack, at most (besides publish.max_in_flight, which counts
 * messages: 4096 events of 64 KiB would be 256 MiB held by nats.c and the socket buffers). It
 * bounds what a stalled server can make us hold and what nats.c must write before it notices a
 * stall (nats_conn.c's write deadline); ordinary traffic never comes near it (the 512-byte
 * benchmark keeps well under 1 MiB in flight).
 */
#define EVD_PUB_MAX_BYTES_IN_FLIGHT (32u * 1024 * 1024)
/* Published bytes after which publish_js.c has nats.c write at once instead of at the end of
 * the loop iteration (evd_nats_flush): bounds nats.c's write buffer under large batches. */
#define EVD_PUB_FLUSH_BYTES (256u * 1024)
/* Events in one batched request at most (Kyma has no batches at all). */
#define EVD_PUB_MAX_BATCH 1024
/* Remembered (source, type) -> subject results. */
#define EVD_PUB_NAMING_CACHE 256
/* Request records kept for reuse. */
#define EVD_PUB_POOL 256

enum evd_pub_route {
	EVD_ROUTE_NONE,
	EVD_ROUTE_PUBLISH,    /* /publish */
	EVD_ROUTE_V2,         /* /{application}/v2/events */
	EVD_ROUTE_EVENTS,     /* /{application}/events */
	EVD_ROUTE_LEGACY,     /* /{application}/v1/events */
	EVD_ROUTE_SUBSCRIBED, /* /{application}/v1/events/subscribed */
	EVD_ROUTE_COUNT
};

/* The route template, as the path label of Kyma's metrics. */
const char *evd_pub_route_template(enum evd_pub_route r);

struct evd_pub_req {
	struct evd_publish *p;
	struct evd_http_request *http;
	struct evd_pub_req *next_free;
	enum evd_pub_route route;
	struct evd_cloudevent two[2]; /* one event, or the legacy pair */
	struct evd_cloudevent *events; /* two, or a batch array */
	size_t nevents;
	bool batch;
	size_t pending;  /* publishes awaiting their ack */
	int status;      /* the first failure (lowest event index), 0 while all succeed */
	size_t fail_idx;
	char fail_text[200];
	bool fail_retry; /* add Retry-After */
	uint64_t publish_ns;
	char legacy_id[40];
	/* Events no subscription wants (a legacy pair counts as one), and the first of them. */
	size_t unrouted;
	size_t unrouted_idx;
	const char *unrouted_subject; /* in that event's arena */
};

struct evd_pub_naming {
	uint64_t hash;
	char *source, *type; /* NULL: empty slot */
	char *subject;
	char *clean_type;
	bool prefixed;
};

struct evd_publish {
	struct evd_daemon *daemon;
	const struct evd_config *cfg; /* the current configuration (reload replaces it) */
	char *type_prefix;            /* publish.event_type_prefix (restart-only) */
	char *subject_prefix;         /* stream.subject_prefix (restart-only) */
	uint32_t max_in_flight;       /* effective, clamped to the nats.c budget */
	int64_t max_pending;          /* the in-flight bound this process was sized for at start */
	bool legacy_copy;
	bool backend_ready;
	char backend_url[256];        /* destination_service label (credentials redacted) */

	size_t in_flight;       /* publishes awaiting an ack */
	size_t bytes_in_flight; /* their NATS message sizes (headers + payload) */
	size_t unflushed;       /* bytes handed to nats.c since the last evd_nats_flush */
	struct evd_pub_req *pool;
	size_t npool;

	evd_publish_subscribed_cb subscribed;
	void *subscribed_data;
	evd_publish_wanted_cb wanted; /* NULL: everything is wanted */
	void *wanted_data;
	uint64_t unrouted_total;

	struct evd_pub_acks *acks;
	struct evd_pub_map {
		struct evd_pub_slot {
			uint64_t id; /* the publish's reply token; 0: empty */
			const char *subject; /* in the request's events (valid until it completes) */
			struct evd_pub_req *req;
			uint32_t idx;
			uint32_t bytes; /* counted in bytes_in_flight */
		} *slots;
		size_t cap, n; /* cap a power of two */
	} map;

	struct evd_access_log *access;
	struct evd_buf scratch; /* a NATS header block + payload being built (publish_js.c) */
	struct evd_pub_naming naming[EVD_PUB_NAMING_CACHE];

	struct {
		struct evd_metric *published;   /* eventing_epp_event_type_published_total */
		struct evd_metric *backend_ms;  /* eventing_epp_backend_duration_milliseconds */
		struct evd_metric *req_seconds; /* eventing_epp_requests_duration_seconds */
		struct evd_metric *requests;    /* eventing_epp_requests_total */
		struct evd_metric *health;      /* eventing_epp_health */
		struct evd_metric *duplicates;  /* eventingd_publish_duplicates_total */
		struct evd_metric *shed;        /* eventingd_publish_shed_total */
		struct evd_metric *unrouted;    /* eventingd_publish_unrouted_total */
	} m;
};

/* ---- publish.c ---- */
/* Answers the request and recycles its record. body may be NULL (len 0). */
void evd_pub_respond(struct evd_pub_req *r, int status, const char *ctype, const char *extra,
		     const void *body, size_t len);
void evd_pub_respond_text(struct evd_pub_req *r, int status, const char *extra, const char *text);
/* Prepares one event for JetStream: tracing extensions from the HTTP request, Kyma's naming
 * (subject, originaltype or the cleaned prefixed type). 0 with *subject in the event's arena, or
 * -EINVAL with the reason in err. */
int evd_pub_prepare(struct evd_publish *p, const struct evd_http_request *http,
		    struct evd_cloudevent *ev, const char **subject, struct evd_buf *err);
/* Notes which of events [0, n) no subscription wants, by their subjects; a legacy request's
 * copies are one event, wanted if either subject is. Before evd_pub_admit. */
void evd_pub_note_unrouted(struct evd_pub_req *r, const char *const *subjects, size_t n);
/* 0 when the backend can take n more publishes; else answers 503 (shed or unavailable) itself
 * through respond_unavailable and returns -EAGAIN. */
int evd_pub_admit(struct evd_pub_req *r, size_t n);

/* ---- publish_legacy.c ---- */
void evd_pub_legacy(struct evd_pub_req *r, const char *app, size_t app_len);
void evd_pub_subscribed(struct evd_pub_req *r, const char *app, size_t app_len);
/* The response of a completed legacy request (success or backend failure). */
void evd_pub_legacy_done(struct evd_pub_req *r);
/* A legacy-shaped 503 (shed/unavailable). */
void evd_pub_legacy_unavailable(struct evd_pub_req *r, const char *text);

/* ---- publish_js.c ---- */
int evd_pub_js_init(struct evd_publish *p);
/* Publishes event i of r on subject; on success r->pending and p->in_flight grow. On a failure
 * to even hand it to nats.c, records the failure on r (503) and returns a negative errno. */
int evd_pub_js_publish(struct evd_pub_req *r, size_t i, const char *subject);
/* Loop thread: the backend is READY; (re)subscribes the ack inbox when needed. */
void evd_pub_js_backend_ready(struct evd_publish *p);
/* Loop thread, at free: answers what is still waiting with 503, releases the ack inbox. */
void evd_pub_js_shutdown(struct evd_publish *p);
/* Loop thread: nats.c closed the connection; answers what is still waiting with 503. */
void evd_pub_js_backend_lost(struct evd_publish *p);
/* A request whose publishes are all answered: respond (publish.c / publish_legacy.c). */
void evd_pub_complete(struct evd_pub_req *r);
/* Records the outcome of one publish on its request. */
void evd_pub_fail(struct evd_pub_req *r, size_t idx, int status, bool retry, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* ---- publish_metrics.c ---- */
void evd_pub_metrics_init(struct evd_publish *p);
void evd_pub_metrics_request(struct evd_publish *p, enum evd_pub_route route,
			     const char *method, int status, uint64_t start_ns);
void evd_pub_metrics_published(struct evd_publish *p, const struct evd_cloudevent *ev);
void evd_pub_metrics_backend(struct evd_publish *p, int status, uint64_t start_ns);
void evd_pub_metrics_shed(struct evd_publish *p, const char *reason);
void evd_pub_metrics_duplicate(struct evd_publish *p);
/* n events of a request on route were answered 2xx but no subscription wants them. */
void evd_pub_metrics_unrouted(struct evd_publish *p, enum evd_pub_route route, size_t n);

/* ---- publish_access.c ---- */
/* path NULL: off; "-": stderr; else a file, opened now (reopened on every reload, so log
 * rotation works with SIGHUP). Returns 0 or a negative errno (logged). */
int evd_access_log_open(uv_loop_t *loop, const char *path, struct evd_access_log **out);
void evd_access_log_line(struct evd_access_log *a, const struct evd_http_request *req,
			 int status, size_t resp_bytes);
/* Flushes synchronously and closes (the object frees itself once its handles are closed). */
void evd_access_log_close(struct evd_access_log *a);

#endif
