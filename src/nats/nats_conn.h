/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's connection to NATS and its JetStream stream.
 *
 * Connects (on the bridge's worker: natsConnection_Connect blocks) to nats.url, or to the
 * embedded server's URL, with the auth and TLS keys of the config, reconnecting forever
 * (RetryOnFailedConnect, MaxReconnect -1), global message delivery
 * (natsOptions_UseGlobalMessageDelivery: a thousand consumers must not mean a thousand threads).
 * After every (re)connect it ensures the stream of the config exists with the configured
 * settings: creates it, updates what JetStream lets be updated, and logs clearly what cannot be
 * (storage type, for example) together with the running value. Then it reports READY.
 *
 * nats.c's connection callbacks (disconnected, reconnected, closed, async error) arrive on
 * nats.c's threads and come to the loop through the bridge; the state callback runs on the loop.
 *
 * Ownership: the evd_nats owns its natsConnection and jsCtx; others may use them on any thread
 * while the state is READY (nats.c is thread-safe) and must not close them. Loop thread for every
 * function here.
 */
#ifndef EVD_NATS_CONN_H
#define EVD_NATS_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <nats/nats.h>
#include <uv.h>

#include "config/config.h"
#include "nats/nats_bridge.h"

enum evd_nats_state {
	EVD_NATS_CONNECTING,   /* first connect not done yet */
	EVD_NATS_DISCONNECTED, /* was connected; nats.c is reconnecting */
	EVD_NATS_CONNECTED,    /* connected, stream not (yet) ensured */
	EVD_NATS_READY,        /* connected and stream present with our settings */
	EVD_NATS_CLOSED,
};

struct evd_nats;

typedef void (*evd_nats_state_cb)(struct evd_nats *n, enum evd_nats_state state, void *data);

/*
 * url: the servers to use ("nats://127.0.0.1:4222[,...]"), already resolved from the config
 * (the embedded server's URL when nats.url is "embedded"). cfg is copied from as needed; it need
 * not outlive the call. Returns 0 or a negative errno.
 */
int evd_nats_new(uv_loop_t *loop, struct evd_bridge *bridge, const struct evd_config *cfg,
		 const char *url, evd_nats_state_cb on_state, void *data, struct evd_nats **out);

/* Starts connecting (asynchronously). */
int evd_nats_start(struct evd_nats *n);

enum evd_nats_state evd_nats_state(const struct evd_nats *n);
const char *evd_nats_state_name(enum evd_nats_state s);

/* Valid while READY or CONNECTED (NULL otherwise). */
natsConnection *evd_nats_connection(struct evd_nats *n);
jsCtx *evd_nats_js(struct evd_nats *n);

/* Stream settings to apply on the next ensure (SIGHUP may change reloadable stream keys). */
void evd_nats_set_config(struct evd_nats *n, const struct evd_config *cfg);

/*
 * A snapshot for GET /v1/backend and `eventingd status`, refreshed on the worker every few
 * seconds while connected (and on demand by evd_nats_refresh_info): connection state, server
 * URL, server id/version, JetStream stream name, messages, bytes, consumers, limits, and the last
 * error. Appends a JSON object to out.
 */
struct evd_buf;
void evd_nats_backend_json(const struct evd_nats *n, struct evd_buf *out);
void evd_nats_refresh_info(struct evd_nats *n);

/*
 * Drains and closes the connection on the worker (natsConnection_Drain with a timeout, then
 * Destroy), then calls on_closed on the loop and frees n.
 */
void evd_nats_close(struct evd_nats *n, void (*on_closed)(void *data), void *data);

/* Turns a natsStatus into a negative errno-style code, logging nats.c's error text. */
int evd_nats_status_to_err(natsStatus s, const char *what);

#endif
