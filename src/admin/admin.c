/* SPDX-License-Identifier: Apache-2.0 */
#include "admin/admin.h"

#include <stdio.h>
#include <string.h>

#include "admin/admin_metrics.h"
#include "daemon/daemon.h"
#include "daemon/daemon_embedded.h"
#include "nats/nats_conn.h"
#include "publish/publish.h"
#include "registry/registry.h"
#include "util/util_buf.h"

static bool path_is(const struct evd_http_request *req, const char *path)
{
	return strcmp(req->path, path) == 0;
}

static bool method_is_get(const struct evd_http_request *req)
{
	return strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
}

int evd_admin_health(struct evd_daemon *d, const struct evd_http_request *req, char *text,
		     size_t len, const char **extra)
{
	const char *reason = NULL;

	*extra = NULL;
	if (!path_is(req, "/healthz") && !path_is(req, "/readyz"))
		return 0;
	if (!method_is_get(req)) {
		*extra = "Allow: GET, HEAD\r\n";
		snprintf(text, len, "method not allowed: use GET");
		return 405;
	}
	if (path_is(req, "/healthz")) {
		/* Liveness: answered by the loop, so a 200 proves the loop turns. */
		snprintf(text, len, "ok");
		return 200;
	}
	if (evd_daemon_ready(d, &reason)) {
		snprintf(text, len, "ready");
		return 200;
	}
	*extra = "Retry-After: 1\r\n";
	snprintf(text, len, "not ready: %s", reason);
	return 503;
}

bool evd_admin_handle_health(struct evd_daemon *d, struct evd_http_request *req)
{
	char text[800];
	const char *extra;
	int status = evd_admin_health(d, req, text, sizeof(text), &extra);

	if (status) {
		evd_http_respond_text(req, status, extra, text);
		return true;
	}
	return false;
}

static void respond_backend(struct evd_daemon *d, struct evd_http_request *req)
{
	struct evd_buf out = EVD_BUF_INIT;
	struct evd_nats *n = evd_daemon_nats(d);

	struct evd_embedded *e = evd_daemon_embedded(d);

	evd_buf_printf(&out, "{\"mode\":\"%s\",", e ? "embedded" : "external");
	if (e)
		evd_buf_printf(&out, "\"embedded\":{\"url\":\"%s\",\"pid\":%d,\"restarts\":%u},",
			       evd_embedded_url(e), evd_embedded_pid(e), evd_embedded_restarts(e));
	evd_buf_append_str(&out, "\"nats\":");
	if (n)
		evd_nats_backend_json(n, &out);
	else
		evd_buf_append_str(&out, "null");
	/* What the backend did with what was published: events no subscription wanted. */
	struct evd_publish *p = evd_daemon_publish(d);
	if (p)
		evd_buf_printf(&out, ",\"publish\":{\"unrouted_total\":%llu}",
			       (unsigned long long)evd_publish_unrouted_total(p));
	evd_buf_append_str(&out, "}\n");
	evd_http_respond(req, 200, "application/json", NULL, out.data, out.len);
	evd_buf_free(&out);
}

/* /v1/subscriptions and /v1/subscriptions/{ns}/{name}; the JSON comes from the registry. */
static void respond_subscriptions(struct evd_daemon *d, struct evd_http_request *req,
				  const char *rest)
{
	struct evd_registry *reg = evd_daemon_registry(d);
	struct evd_buf out = EVD_BUF_INIT;
	char ns[256], name[256];

	if (!reg) {
		evd_http_respond_text(req, 503, "Retry-After: 1\r\n", "subscription registry not started");
		return;
	}
	if (!*rest) {
		evd_registry_status_json(reg, &out);
		evd_http_respond(req, 200, "application/json", NULL, out.data, out.len);
		evd_buf_free(&out);
		return;
	}
	const char *slash = strchr(rest, '/');
	size_t nslen = slash ? (size_t)(slash - rest) : 0;
	if (!slash || !nslen || nslen >= sizeof(ns) || !slash[1] || strchr(slash + 1, '/') ||
	    strlen(slash + 1) >= sizeof(name)) {
		static const char usage[] = "{\"error\":\"use /v1/subscriptions/{namespace}/{name}\"}\n";
		evd_http_respond(req, 404, "application/json", NULL, usage, sizeof(usage) - 1);
		return;
	}
	memcpy(ns, rest, nslen);
	ns[nslen] = '\0';
	snprintf(name, sizeof(name), "%s", slash + 1);
	if (evd_registry_subscription_json(reg, ns, name, &out) < 0) {
		evd_registry_not_found_json(ns, name, &out);
		evd_http_respond(req, 404, "application/json", NULL, out.data, out.len);
		evd_buf_free(&out);
		return;
	}
	evd_http_respond(req, 200, "application/json", NULL, out.data, out.len);
	evd_buf_free(&out);
}

void evd_admin_handle(struct evd_daemon *d, struct evd_http_request *req)
{
	if (evd_admin_handle_health(d, req))
		return;

	if (path_is(req, "/metrics")) {
		if (!method_is_get(req))
			goto method;
		struct evd_buf out = EVD_BUF_INIT;
		evd_metrics_render(evd_daemon_metrics(d), &out);
		evd_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, out.data,
				 out.len);
		evd_buf_free(&out);
		return;
	}
	if (path_is(req, "/v1/backend")) {
		if (!method_is_get(req))
			goto method;
		respond_backend(d, req);
		return;
	}
	if (path_is(req, "/v1/subscriptions") || strncmp(req->path, "/v1/subscriptions/", 18) == 0) {
		if (!method_is_get(req))
			goto method;
		respond_subscriptions(d, req, req->path[17] ? req->path + 18 : "");
		return;
	}
	evd_http_respond_text(req, 404, NULL,
			      "no such route: the admin listener serves /healthz, /readyz, "
			      "/metrics, /v1/backend and /v1/subscriptions");
	return;
method:
	evd_http_respond_text(req, 405, "Allow: GET, HEAD\r\n", "method not allowed: use GET");
}
