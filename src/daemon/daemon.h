/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The running appliance: one libuv loop that owns the configuration, the listeners, the NATS
 * backend (embedded or external) and, through them, every other component. `eventingd run`
 * is evd_daemon_main().
 *
 * Lifecycle: load config -> bind listeners (READY=1 to systemd once they are bound and the config
 * is valid) -> start the embedded nats-server if configured -> connect to NATS and ensure the
 * stream (STATUS= while connecting; /readyz turns 200 when READY) -> run until SIGTERM/SIGINT,
 * which drains listeners, closes NATS, stops the child and exits 0. SIGHUP reloads.
 *
 * Loop thread only.
 */
#ifndef EVD_DAEMON_H
#define EVD_DAEMON_H

#include <stdbool.h>
#include <uv.h>

#include "config/config.h"

struct evd_daemon;
struct evd_nats;
struct evd_bridge;
struct evd_registry;
struct evd_publish;

struct evd_daemon_opts {
	const char *config_path; /* NULL: the default path */
	bool config_explicit;    /* -c given: a missing file is an error, never a silent sandbox */
	bool dev;                /* --dev */
};

/* Runs until stopped. Returns the process exit status (0, or sysexits EX_CONFIG/EX_SOFTWARE...). */
int evd_daemon_main(const struct evd_daemon_opts *opts);

/* For handlers: the current configuration (replaced on a valid SIGHUP reload). */
const struct evd_config *evd_daemon_config(const struct evd_daemon *d);
/* The NATS backend, or NULL before it exists. */
struct evd_nats *evd_daemon_nats(struct evd_daemon *d);
/* The embedded nats-server supervisor, or NULL when nats.url is external. */
struct evd_embedded *evd_daemon_embedded(struct evd_daemon *d);
/* True when connected to JetStream with the stream present; else false and a reason. */
bool evd_daemon_ready(const struct evd_daemon *d, const char **reason);
uv_loop_t *evd_daemon_loop(struct evd_daemon *d);
/* The bridge between nats.c's threads and the loop (for components that publish). */
struct evd_bridge *evd_daemon_bridge(struct evd_daemon *d);
/* The process-wide metrics registry served on GET /metrics. */
struct evd_metrics *evd_daemon_metrics(struct evd_daemon *d);
/* The subscription registry (registry/registry.h), or NULL before the backend started. */
struct evd_registry *evd_daemon_registry(struct evd_daemon *d);
/* The publish endpoint (publish/publish.h), or NULL before the backend started and after stop. */
struct evd_publish *evd_daemon_publish(struct evd_daemon *d);

/*
 * Resolves which configuration `run` and `check` use: an explicit path must exist; without -c,
 * the default path is used when it exists, else sandbox defaults (dev) with a loud warning.
 * Returns 0 and *cfg, or EX_CONFIG (78) after printing every diagnostic to stderr.
 */
int evd_daemon_load_config(const struct evd_daemon_opts *opts, struct evd_config **cfg,
			   bool quiet_ok);
/*
 * The files cfg names, as the user running this sees them (evd_config_check_files): prints
 * every diagnostic to stderr; returns 0, or EX_CONFIG (78) when one of them cannot be used.
 * `check` and `run` (before anything starts) call it.
 */
int evd_daemon_check_files(const struct evd_config *cfg);

#endif
