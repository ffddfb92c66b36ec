/* SPDX-License-Identifier: Apache-2.0 */
#include "daemon/daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "admin/admin.h"
#include "admin/admin_metrics.h"
#include "daemon/daemon_embedded.h"
#include "daemon/daemon_notify.h"
#include "dispatch/dispatch.h"
#include "http/http_client.h"
#include "http/http_server.h"
#include "nats/nats_bridge.h"
#include "nats/nats_conn.h"
#include "publish/publish.h"
#include "registry/registry.h"
#include "util/util_log.h"
#include "util/util_mem.h"

/* Old configurations stay allocated until exit: components may hold pointers into them. */
struct retired_config {
	struct retired_config *next;
	struct evd_config *cfg;
};

struct evd_daemon {
	uv_loop_t loop;
	struct evd_daemon_opts opts;
	struct evd_config *cfg;
	struct retired_config *retired;

	uv_signal_t sig_term;
	uv_signal_t sig_int;
	uv_signal_t sig_hup;
	uv_timer_t watchdog;

	struct evd_bridge *bridge;
	struct evd_embedded *embedded;
	struct evd_nats *nats;
	struct evd_publish *publish;
	struct evd_registry *registry;
	struct evd_dispatch *dispatch;
	struct evd_http_client *http_client; /* the dispatcher's sink requests */
	struct evd_http_server *publish_srv;
	struct evd_http_server *admin_srv;
	struct evd_metrics *metrics;

	bool stopping;
	bool nats_started;
	bool embedded_backend; /* nats.url at start-up named the embedded server */
	int servers_open;
	int exit_code;
};

const struct evd_config *evd_daemon_config(const struct evd_daemon *d)
{
	return d->cfg;
}

struct evd_nats *evd_daemon_nats(struct evd_daemon *d)
{
	return d->nats;
}

uv_loop_t *evd_daemon_loop(struct evd_daemon *d)
{
	return &d->loop;
}

struct evd_embedded *evd_daemon_embedded(struct evd_daemon *d)
{
	return d->embedded;
}

struct evd_bridge *evd_daemon_bridge(struct evd_daemon *d)
{
	return d->bridge;
}

struct evd_metrics *evd_daemon_metrics(struct evd_daemon *d)
{
	return d->metrics;
}

struct evd_registry *evd_daemon_registry(struct evd_daemon *d)
{
	return d->registry;
}

struct evd_publish *evd_daemon_publish(struct evd_daemon *d)
{
	return d->publish;
}

static double metric_ready(void *data)
{
	const char *reason;
	return evd_daemon_ready(data, &reason) ? 1 : 0;
}

bool evd_daemon_ready(const struct evd_daemon *d, const char **reason)
{
	if (d->stopping) {
		*reason = "shutting down";
		return false;
	}
	if (!d->nats) {
		*reason = "NATS backend not started";
		return false;
	}
	/*
	 * A question with no side effects (publish asks it while admitting a request; the CLOSED
	 * handling lives in on_nats_state). While not ready, the connection's last error goes
	 * with the state, so that a wrong password or a TLS failure reads as such and not as
	 * "connecting". Loop thread only, hence one static buffer.
	 */
	static char text[768];
	const char *state = "NATS connection closed";
	const char *last = evd_nats_last_error(d->nats);

	switch (evd_nats_state(d->nats)) {
	case EVD_NATS_READY:
		*reason = NULL;
		return true;
	case EVD_NATS_CONNECTED:
		state = "connected to NATS, JetStream stream not ensured yet";
		break;
	case EVD_NATS_CONNECTING:
		state = "connecting to NATS";
		break;
	case EVD_NATS_DISCONNECTED:
		state = "disconnected from NATS, reconnecting";
		break;
	case EVD_NATS_CLOSED:
		break;
	}
	if (!last) {
		*reason = state;
		return false;
	}
	snprintf(text, sizeof(text), "%s (last error: %s)", state, last);
	*reason = text;
	return false;
}

int evd_daemon_load_config(const struct evd_daemon_opts *opts, struct evd_config **cfg,
			   bool quiet_ok)
{
	const char *path = opts->config_path;
	bool dev = opts->dev;
	struct evd_diag diag = EVD_DIAG_INIT;
	struct evd_buf out = EVD_BUF_INIT;
	int rc;

	if (!opts->config_explicit) {
		path = EVD_CONFIG_DEFAULT_PATH;
		if (dev || access(path, F_OK) != 0) {
			if (!dev && !quiet_ok)
				evd_log_warn("config",
					     "%s not found: using SANDBOX defaults (loopback listeners, "
					     "embedded NATS, state in ./.eventingd, subscriptions in "
					     "./subscriptions.d). Give -c FILE for a real deployment.",
					     path);
			path = NULL;
			dev = true;
		}
	}

	rc = evd_config_load(path, dev, cfg, &diag);
	evd_diag_format(&diag, &out);
	if (out.len)
		fputs(out.data, stderr);
	if (rc < 0) {
		fprintf(stderr, "eventingd: %s: %zu error%s in the configuration\n",
			path ? path : "(defaults)", diag.errors, diag.errors == 1 ? "" : "s");
		rc = EX_CONFIG;
	}
	evd_buf_free(&out);
	evd_diag_free(&diag);
	return rc;
}

int evd_daemon_check_files(const struct evd_config *cfg)
{
	struct evd_diag diag = EVD_DIAG_INIT;
	struct evd_buf out = EVD_BUF_INIT;
	int errors = evd_config_check_files(cfg, &diag);

	evd_diag_format(&diag, &out);
	if (out.len)
		fputs(out.data, stderr);
	if (errors)
		fprintf(stderr, "eventingd: %s: %d file%s named in the configuration cannot be used\n",
			cfg->source_file ? cfg->source_file : "(defaults)", errors, errors == 1 ? "" : "s");
	evd_buf_free(&out);
	evd_diag_free(&diag);
	return errors ? EX_CONFIG : 0;
}

/* --- shutdown: listeners, then NATS, then the embedded server, then the loop's own handles. */

static void on_handle_closed(uv_handle_t *h)
{
	(void)h;
}

static void close_own_handles(struct evd_daemon *d)
{
	uv_close((uv_handle_t *)&d->sig_term, on_handle_closed);
	uv_close((uv_handle_t *)&d->sig_int, on_handle_closed);
	uv_close((uv_handle_t *)&d->sig_hup, on_handle_closed);
	uv_close((uv_handle_t *)&d->watchdog, on_handle_closed);
	if (d->bridge) {
		evd_bridge_close(d->bridge);
		d->bridge = NULL;
	}
}

static void on_embedded_stopped(void *data)
{
	struct evd_daemon *d = data;
	d->embedded = NULL;
	evd_log_info("daemon", "embedded nats-server stopped");
	close_own_handles(d);
}

static void on_nats_closed(void *data)
{
	struct evd_daemon *d = data;
	d->nats = NULL;
	/* Only now: nats.c may call the publish module's ack handler until the connection is
	 * closed, and publishes acknowledged while it drained still answer their requests. */
	if (d->publish) {
		evd_publish_free(d->publish);
		d->publish = NULL;
	}
	if (d->embedded) {
		evd_embedded_stop(d->embedded, 10000, on_embedded_stopped, d);
		return;
	}
	close_own_handles(d);
}

static void on_http_client_closed(void *data)
{
	(void)data;
}

static void stop_backend(struct evd_daemon *d)
{
	/* Its work on the bridge's worker finishes before the close work queued behind it. */
	evd_registry_free(d->registry);
	d->registry = NULL;
	/* The dispatcher has stopped (its subscriptions are closed): the connection may drain. */
	evd_dispatch_free(d->dispatch);
	d->dispatch = NULL;
	if (d->http_client) {
		evd_http_client_close(d->http_client, on_http_client_closed, d);
		d->http_client = NULL;
	}
	if (d->nats) {
		evd_nats_close(d->nats, on_nats_closed, d);
		return;
	}
	on_nats_closed(d);
}

static void on_server_closed(void *data)
{
	struct evd_daemon *d = data;
	if (--d->servers_open == 0)
		stop_backend(d);
}

static void daemon_stop(struct evd_daemon *d, const char *why)
{
	if (d->stopping) {
		evd_log_info("daemon", "%s: already stopping", why);
		return;
	}
	d->stopping = true;
	evd_log_info("daemon", "%s: stopping (draining requests in flight)", why);
	evd_notify("STOPPING=1");
	uv_timer_stop(&d->watchdog);

	uint64_t drain_ms = (uint64_t)d->cfg->dispatch.drain_timeout;
	d->servers_open = 0;
	if (d->publish_srv) {
		d->servers_open++;
		evd_http_server_stop(d->publish_srv, drain_ms, on_server_closed, d);
		d->publish_srv = NULL;
	}
	if (d->admin_srv) {
		d->servers_open++;
		evd_http_server_stop(d->admin_srv, drain_ms, on_server_closed, d);
		d->admin_srv = NULL;
	}
	/* Deliveries in flight finish within the same drain_timeout, concurrently. */
	if (d->dispatch) {
		d->servers_open++;
		evd_dispatch_stop(d->dispatch, drain_ms, on_server_closed, d);
	}
	if (d->servers_open == 0)
		stop_backend(d);
}

static void on_sigterm(uv_signal_t *h, int signum)
{
	struct evd_daemon *d = h->data;
	daemon_stop(d, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* --- reload */

static void daemon_reload(struct evd_daemon *d)
{
	struct evd_config *next = NULL;
	struct evd_buf keys = EVD_BUF_INIT;

	evd_notify("RELOADING=1");
	evd_log_info("daemon", "SIGHUP: reloading %s",
		     d->cfg->source_file ? d->cfg->source_file : "(sandbox defaults)");
	if (evd_daemon_load_config(&d->opts, &next, true) != 0) {
		evd_log_error("daemon", "reload failed: the configuration above has errors; "
					"keeping the running configuration");
		if (d->registry)
			evd_registry_rescan(d->registry);
		evd_notify("READY=1");
		return;
	}
	if (evd_config_restart_keys(d->cfg, next, &keys) > 0)
		evd_log_warn("daemon", "changed keys that take effect only after a restart: %s; "
				       "keeping their running values until then",
			     keys.data);
	evd_buf_free(&keys);
	/*
	 * Every component then sees the values that run: a new stream.subject_prefix given to the
	 * stream but not to publish made every publish 504, a new stream.name looped on
	 * "subjects overlap" (issue 10).
	 */
	evd_config_keep_restart_keys(d->cfg, next);
	/*
	 * The computed default of prune_orphans depends on the backend, which is the one started
	 * with (nats.url is a restart key): a reload that only names another server must not turn
	 * pruning on while still connected to a shared external cluster.
	 */
	if (!next->subscriptions.prune_orphans_explicit)
		next->subscriptions.prune_orphans = d->embedded_backend;

	evd_log_setup(next->log.level, next->log.format);
	if (d->nats)
		evd_nats_set_config(d->nats, next);
	if (d->publish)
		evd_publish_set_config(d->publish, next);
	if (d->dispatch)
		evd_dispatch_set_config(d->dispatch, next);
	if (d->publish_srv)
		evd_http_server_set_max_body_size(d->publish_srv,
						  (size_t)next->publish.max_request_size);
	if (d->registry) {
		/* Rescan first: a pending scan keeps the kick of set_config from pruning (a new
		 * prune_orphans) with the set read before the signal. */
		evd_registry_rescan(d->registry);
		evd_registry_set_config(d->registry, next);
	}

	struct retired_config *r = evd_xcalloc(1, sizeof(*r));
	r->cfg = d->cfg;
	r->next = d->retired;
	d->retired = r;
	d->cfg = next;
	evd_log_info("daemon", "configuration reloaded");
	evd_notify("READY=1");
}

static void on_sighup(uv_signal_t *h, int signum)
{
	(void)signum;
	struct evd_daemon *d = h->data;
	if (!d->stopping)
		daemon_reload(d);
}

static void on_watchdog(uv_timer_t *t)
{
	(void)t;
	evd_notify("WATCHDOG=1");
}

/* --- backend */

static void on_nats_state(struct evd_nats *n, enum evd_nats_state state, void *data)
{
	struct evd_daemon *d = data;
	(void)n;
	switch (state) {
	case EVD_NATS_READY:
		evd_log_info("daemon", "JetStream ready: stream \"%s\"", d->cfg->stream.name);
		evd_notify("STATUS=ready: JetStream connected, stream present");
		break;
	case EVD_NATS_CONNECTING:
		evd_notify("STATUS=connecting to NATS");
		break;
	case EVD_NATS_CONNECTED:
		evd_notify("STATUS=connected to NATS, ensuring the stream");
		break;
	case EVD_NATS_DISCONNECTED:
		evd_notify("STATUS=disconnected from NATS, reconnecting");
		break;
	case EVD_NATS_CLOSED:
		/* nats.c gave the connection up (evd_nats reconnects from scratch): nothing pending
		 * on it will ever be acknowledged. */
		evd_notify("STATUS=NATS connection closed, connecting again");
		if (d->publish) {
			evd_publish_backend_state(d->publish, false);
			evd_publish_backend_lost(d->publish);
		}
		break;
	}
	if (d->publish)
		evd_publish_backend_state(d->publish, state == EVD_NATS_READY);
	if (d->registry)
		evd_registry_backend_state(d->registry, state == EVD_NATS_READY);
	if (d->dispatch)
		evd_dispatch_backend_state(d->dispatch, state);
}

static void on_embedded_up(void *data)
{
	struct evd_daemon *d = data;
	evd_log_debug("daemon", "embedded nats-server accepts connections at %s",
		      evd_embedded_url(d->embedded));
	/*
	 * Connect once the child accepts connections: connecting earlier only makes nats.c wait a
	 * reconnect interval. Later restarts of the child are nats.c's ordinary reconnects.
	 */
	if (!d->nats_started && d->nats && !d->stopping) {
		d->nats_started = true;
		if (evd_nats_start(d->nats) < 0)
			daemon_stop(d, "NATS connection failure");
	}
}

/* GET /{app}/v1/events/subscribed answers from the registry (Kyma's reference §1.7). */
static int on_subscribed(const char *app, struct evd_buf *body, void *data)
{
	struct evd_daemon *d = data;
	if (d->registry)
		evd_registry_subscribed_json(d->registry, app, d->cfg->publish.event_type_prefix, body);
	else
		evd_buf_append_str(body, "{\"eventsInfo\":[]}");
	return 200;
}

/*
 * Whether a subscription wants events on subject (the publish module counts those nobody
 * wants): the registry's answer, handed to publish at its creation so publish needs no registry.
 */
static bool on_subject_wanted(const char *subject, void *data)
{
	struct evd_daemon *d = data;
	return !d->registry || evd_registry_wants_subject(d->registry, subject);
}

/* Each subscription's status gets the dispatcher's delivery figures. */
static void on_status_extra(void *data, const char *ns, const char *name, struct cJSON *status)
{
	evd_dispatch_status_json(data, ns, name, status);
}

static int start_backend(struct evd_daemon *d)
{
	const char *url = d->cfg->nats.url;
	int rc;

	d->embedded_backend = evd_config_embedded(d->cfg);
	if (d->embedded_backend) {
		rc = evd_embedded_new(&d->loop, d->cfg, &d->embedded);
		if (rc < 0)
			return rc;
		url = evd_embedded_url(d->embedded);
		rc = evd_embedded_start(d->embedded, on_embedded_up, d);
		if (rc < 0)
			return rc;
	}
	rc = evd_nats_new(&d->loop, d->bridge, d->cfg, url, on_nats_state, d, &d->nats);
	if (rc < 0)
		return rc;
	rc = evd_registry_new(&d->loop, d->bridge, d->nats, d->cfg, d->metrics, &d->registry);
	if (rc < 0)
		return rc;
	struct evd_http_client_config hc = { .max_conns_per_origin = 1, .timeout_ms = 15000,
					     .idle_timeout_ms = 10000, .max_response_body = 1024 };
	rc = evd_http_client_new(&d->loop, &hc, &d->http_client); /* the dispatcher configures it */
	if (rc < 0)
		return rc;
	struct evd_dispatch_deps dd = { .loop = &d->loop, .cfg = d->cfg, .nats = d->nats,
					.metrics = d->metrics, .http = d->http_client };
	rc = evd_dispatch_new(&dd, &d->dispatch);
	if (rc < 0)
		return rc;
	evd_registry_set_observer(d->registry, evd_dispatch_on_binding, d->dispatch);
	evd_registry_set_status_extra(d->registry, on_status_extra, d->dispatch);
	rc = evd_publish_new(d, on_subject_wanted, d, &d->publish);
	if (rc < 0)
		return rc;
	evd_publish_set_subscribed_provider(d->publish, on_subscribed, d);
	rc = evd_registry_start(d->registry);
	if (rc < 0)
		return rc;
	evd_notifyf("STATUS=connecting to NATS at %s", url);
	if (d->embedded)
		return 0; /* on_embedded_up starts the connection */
	d->nats_started = true;
	return evd_nats_start(d->nats);
}

/* --- listeners */

static void on_admin_request(struct evd_http_request *req, void *data)
{
	evd_admin_handle(data, req);
}

static void on_publish_request(struct evd_http_request *req, void *data)
{
	struct evd_daemon *d = data;
	char text[800];
	const char *extra;
	int status = evd_admin_health(d, req, text, sizeof(text), &extra);

	if (status) {
		/* Probes are requests too: the access log promises one line per request. */
		if (d->publish)
			evd_publish_log_access(d->publish, req, status, strlen(text) + 1);
		evd_http_respond_text(req, status, extra, text);
		return;
	}
	if (d->publish) {
		evd_publish_handle(d->publish, req);
		return;
	}
	evd_http_respond_text(req, 503, "Retry-After: 1\r\n", "publish endpoint not started");
}

static void on_publish_reject(const struct evd_http_request *req, int status, const char *reason,
			      struct evd_buf *body, const char **content_type, void *data)
{
	struct evd_daemon *d = data;
	evd_publish_reject(d->publish, req, status, reason, body, content_type);
}

static int start_listeners(struct evd_daemon *d)
{
	struct evd_http_server_opts po = {
		.name = "publish",
		.listen = d->cfg->publish.listen,
		.limits = { .max_body_size = d->cfg->publish.max_request_size },
		.handler = on_publish_request,
		.on_reject = on_publish_reject,
		.data = d,
	};
	struct evd_http_server_opts ao = {
		.name = "admin",
		.listen = d->cfg->admin.listen,
		.limits = { .max_body_size = 1 << 20 },
		.handler = on_admin_request,
		.data = d,
	};
	int rc = evd_http_server_start(&d->loop, &po, &d->publish_srv);
	if (rc < 0)
		return rc;
	rc = evd_http_server_start(&d->loop, &ao, &d->admin_srv);
	if (rc < 0)
		return rc;
	evd_log_info("daemon", "publish endpoint on http://%s, admin on http://%s",
		     evd_http_server_address(d->publish_srv), evd_http_server_address(d->admin_srv));
	return 0;
}

static void on_noop_closed(void *data)
{
	(void)data;
}

static void walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

int evd_daemon_main(const struct evd_daemon_opts *opts)
{
	struct evd_daemon *d = evd_xcalloc(1, sizeof(*d));
	int rc;

	d->opts = *opts;
	rc = evd_daemon_load_config(opts, &d->cfg, false);
	if (rc == 0 && (rc = evd_daemon_check_files(d->cfg)) != 0)
		evd_config_free(d->cfg);
	if (rc != 0) {
		free(d);
		return rc;
	}
	evd_log_setup(d->cfg->log.level, d->cfg->log.format);
	if (d->cfg->dev)
		evd_log_warn("daemon", "running as a SANDBOX (--dev): loopback only, state in %s, "
				       "subscriptions in %s; not for production",
			     d->cfg->state_dir, d->cfg->subscriptions.dir);
	evd_log_info("daemon", "eventingd %s starting (config: %s)", EVD_VERSION,
		     d->cfg->source_file ? d->cfg->source_file : "sandbox defaults");

	d->metrics = evd_metrics_new();
	evd_metrics_add_gauge_fn(d->metrics, "eventingd_ready",
				 "1 while connected to JetStream with the stream present.",
				 metric_ready, d);

	/* A peer closing mid-write must be an error return, not a process-killing signal. */
	signal(SIGPIPE, SIG_IGN);

	uv_loop_init(&d->loop);
	uv_signal_init(&d->loop, &d->sig_term);
	uv_signal_init(&d->loop, &d->sig_int);
	uv_signal_init(&d->loop, &d->sig_hup);
	uv_timer_init(&d->loop, &d->watchdog);
	d->sig_term.data = d->sig_int.data = d->sig_hup.data = d->watchdog.data = d;
	uv_signal_start(&d->sig_term, on_sigterm, SIGTERM);
	uv_signal_start(&d->sig_int, on_sigterm, SIGINT);
	uv_signal_start(&d->sig_hup, on_sighup, SIGHUP);

	rc = evd_bridge_new(&d->loop, &d->bridge);
	if (rc < 0) {
		evd_log_error("daemon", "cannot start the NATS bridge: %s", uv_strerror(rc));
		d->exit_code = EX_OSERR;
		goto fail;
	}
	rc = start_listeners(d);
	if (rc < 0) {
		d->exit_code = rc == UV_EADDRINUSE || rc == UV_EACCES ? EX_UNAVAILABLE : EX_OSERR;
		goto fail;
	}
	/* Listeners are bound and the config is valid: that is what READY=1 promises. */
	evd_notify("READY=1");

	uint64_t wd = evd_notify_watchdog_usec();
	if (wd) {
		uint64_t every = wd / 2000;
		uv_timer_start(&d->watchdog, on_watchdog, every ? every : 1, every ? every : 1);
	}

	rc = start_backend(d);
	if (rc < 0) {
		evd_log_error("daemon", "cannot start the NATS backend");
		d->exit_code = EX_UNAVAILABLE;
		daemon_stop(d, "start-up failure");
	}

	uv_run(&d->loop, UV_RUN_DEFAULT);
	goto done;

fail:
	/* Start-up failed before anything asynchronous began: close what exists and leave. */
	if (d->publish_srv)
		evd_http_server_stop(d->publish_srv, 0, on_noop_closed, NULL);
	if (d->admin_srv)
		evd_http_server_stop(d->admin_srv, 0, on_noop_closed, NULL);
	close_own_handles(d);
	uv_run(&d->loop, UV_RUN_DEFAULT);
done:
	uv_walk(&d->loop, walk_close, NULL);
	uv_run(&d->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&d->loop) != 0)
		evd_log_debug("daemon", "loop closed with handles still open");
	rc = d->exit_code;
	evd_log_info("daemon", "stopped (exit %d)", rc);
	evd_metrics_free(d->metrics);
	evd_config_free(d->cfg);
	while (d->retired) {
		struct retired_config *r = d->retired;
		d->retired = r->next;
		evd_config_free(r->cfg);
		free(r);
	}
	free(d);
	return rc;
}
