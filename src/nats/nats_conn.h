/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's connection to NATS and its JetStream stream; and the I/O model of src/nats/.
 *
 * I/O model (issue 9). One libuv loop hosts the appliance, NATS included: for a plain TCP
 * connection nats.c runs with an external event loop (nats_io.c, our adapter) and SendAsap, so
 * it starts neither its reader nor its flusher thread. The loop reads the socket
 * (natsConnection_ProcessReadEvent parses on the loop) and writes it once per loop iteration
 * (everything published in that iteration goes out in one send). Messages for eventingd's own
 * subscriptions -- JetStream's publish acks and the dispatcher's deliveries alike, both
 * nats_sub.h -- are synchronous subscriptions drained on the loop right after each read event:
 * a publish's ack reaches its HTTP request without crossing a thread. What still runs on other
 * threads comes in through the bridge (nats_bridge.h), the one way in: connection events
 * (nats.c's callback thread), the blocking JetStream management calls (our worker; their
 * replies travel nats.c's delivery thread), nats.c's reconnect and ping-timer threads asking the
 * loop to poll or write. Chosen by measurement (tests/bench/publish_bench.py; the figures are
 * in nats_conn.c, loop_io_possible): against the old model (nats.c reader -> delivery thread ->
 * bridge -> loop, flusher sleeping 1 ms) it halves eventingd's CPU per event and the p50 at 16
 * connections; SendAsap alone, or nats.c's socket on the loop with acks still crossing threads,
 * gained little.
 * A TLS connection (nats.tls.* or a tls:// URL) keeps nats.c's threads, because nats.c's
 * SSL_read/SSL_write wait inside the call without a deadline: there, writes have a deadline
 * (WRITE_DEADLINE_MS) and subscription messages cross through the bridge, with the same API.
 *
 * Connects (on the bridge's worker: natsConnection_Connect blocks) to nats.url, or to the
 * embedded server's URL, with the auth and TLS keys of the config, reconnecting forever
 * (RetryOnFailedConnect, MaxReconnect -1), global message delivery
 * (natsOptions_UseGlobalMessageDelivery: a thousand consumers must not mean a thousand threads).
 * When nats.c closes the connection all the same (it does on an authorization violation during a
 * reconnect), the state goes CLOSED, the connection and jsCtx are destroyed on the worker and a
 * new connection is made from scratch, backing off from 2 s to 30 s while the server refuses us.
 * Nothing blocks the loop on a server that stops reading: on the loop, writes never block (the
 * socket is non-blocking; what it does not take stays buffered) and a socket that takes nothing
 * for a second is shut down so nats.c reconnects (nats_io.c, WRITE_STALL_MS); with TLS, nats.c's
 * writes have a deadline (WRITE_DEADLINE_MS).
 * After every (re)connect it ensures the stream of the config exists with the configured
 * settings: creates it, updates what JetStream lets be updated, and logs clearly what cannot be
 * (storage type, for example) together with the running value. Then it reports READY.
 *
 * nats.c's connection callbacks (disconnected, reconnected, closed, async error) arrive on
 * nats.c's threads and come to the loop through the bridge; the state callback runs on the loop.
 *
 * Ownership: the evd_nats owns its natsConnection and jsCtx; others may use them while the
 * state is READY and must not close them: the jsCtx on the bridge worker (blocking management
 * calls), the connection on the loop (publishing; with the loop model nats.c's socket is the
 * loop's). Loop thread for every function here.
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
	EVD_NATS_CLOSED,       /* nats.c gave the connection up (an authorization violation on
				* reconnect...): its nc and jsCtx are dead, nothing pending on them
				* will be acknowledged. A connection from scratch follows (CONNECTING). */
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

/*
 * The last error reported about the connection or the stream (what /v1/backend shows as
 * last_error: the server's own words for a refused connection), or NULL. Cleared once READY.
 * Valid until the next call into n.
 */
const char *evd_nats_last_error(const struct evd_nats *n);

/* Valid while READY or CONNECTED (NULL otherwise); fetch them anew for every use, since the
 * connection changes after a CLOSED. */
natsConnection *evd_nats_connection(struct evd_nats *n);
jsCtx *evd_nats_js(struct evd_nats *n);

/*
 * Stream settings to apply on the next ensure (SIGHUP may change reloadable stream keys). When
 * connected, that ensure starts at once (the state stays READY while it runs).
 */
void evd_nats_set_config(struct evd_nats *n, const struct evd_config *cfg);

/*
 * A snapshot for GET /v1/backend and `eventingd status`, refreshed on the worker every few
 * seconds while connected (and on demand by evd_nats_refresh_info): connection state, server
 * URL, server id/version, JetStream stream name, messages, bytes, consumers, limits, and the last
 * error (what keeps the connection from READY, in the server's words when it refused us; null
 * once READY). Appends a JSON object to out:
 *   {"state":"ready","url":"nats://...",
 *    "server":{"id":..,"url":..,"version":..,"name":..},
 *    "stream":{"name","subjects":[..],"storage","retention","discard","messages","bytes",
 *              "consumers","max_bytes","max_age_ms","replicas","duplicate_window_ms",
 *              "usage_ratio","refreshed_at"} | null,
 *    "last_error":"..." | null}
 * Unknown strings are null; max_bytes, max_age_ms and usage_ratio (bytes / max_bytes) are null
 * when unlimited; refreshed_at is when the stream figures were fetched (RFC 3339, UTC, with
 * milliseconds), so a client can show their age. URLs never carry credentials. Never blocks: it
 * prints the cached snapshot.
 */
struct evd_buf;
void evd_nats_backend_json(const struct evd_nats *n, struct evd_buf *out);
void evd_nats_refresh_info(struct evd_nats *n);

/*
 * Drains and closes the connection on the worker (natsConnection_Drain with a timeout, then
 * Destroy), then frees n and calls on_closed(data) on the loop. The close work queues behind any
 * work already submitted; it returns only after nats.c has run its closed callback, since nats.c
 * may call ours until then. Users of the connection and jsCtx (subscriptions, publishes) must be
 * stopped before: owners close their evd_nats_subs first (nats_sub.h). A subscription still open
 * is closed here, and the drain starts only after its on_closed (so after its owner returned
 * every lent message); nothing is drained or destroyed under a live subscription. The bridge must
 * stay open until on_closed has run. No state callback is made for this close. nats_Close() is
 * left to the process exit.
 */
void evd_nats_close(struct evd_nats *n, void (*on_closed)(void *data), void *data);

/*
 * A stream as eventingd wants it (nats_stream.c). The main stream comes from the stream.* keys;
 * the dead-letter stream builds its own. Strings owned by the spec (evd_nats_stream_spec_free).
 */
struct evd_nats_stream_spec {
	char *name;
	char *subject; /* the one subject filter, "<prefix>.>" */
	enum evd_stream_storage storage;
	enum evd_stream_retention retention;
	enum evd_stream_discard discard;
	uint64_t max_bytes;       /* 0: unlimited */
	int64_t max_age;          /* ms, 0: unlimited */
	uint32_t replicas;        /* 0 counts as 1 */
	int64_t duplicate_window; /* ms, 0: the server's default */
};

/* The main stream of cfg: stream.name with subjects ["<stream.subject_prefix>.>"]. */
void evd_nats_stream_spec_from_config(struct evd_nats_stream_spec *spec, const struct evd_config *cfg);
void evd_nats_stream_spec_copy(struct evd_nats_stream_spec *dst, const struct evd_nats_stream_spec *src);
void evd_nats_stream_spec_free(struct evd_nats_stream_spec *spec);

/*
 * Worker thread only (blocks on JetStream requests). Makes the stream exist with spec's
 * settings: creates it when missing, updates what JetStream lets be updated (subjects, max_bytes,
 * max_age, discard, replicas, duplicate window) and logs an error for what it does not (storage,
 * retention) naming the key, the running and the configured value and what to do. A failed
 * update is logged and the stream that runs is kept. Returns 0 with *si_out set to the running
 * stream's info (caller frees with jsStreamInfo_Destroy, on any thread), or a negative errno
 * (logged; e.g. -EHOSTUNREACH when JetStream is not enabled).
 */
int evd_nats_ensure_stream_conf(jsCtx *js, const struct evd_nats_stream_spec *spec,
				jsStreamInfo **si_out);

/* Names for logs and JSON: "file", "interest", "new"... */
const char *evd_nats_storage_name(jsStorageType t);
const char *evd_nats_retention_name(jsRetentionPolicy r);
const char *evd_nats_discard_name(jsDiscardPolicy d);

/*
 * Any thread. A copy of a comma-separated URL list for logs and status, with the user-info part
 * of each URL ("user:password@", "token@") replaced by three asterisks. Caller frees.
 */
char *evd_nats_redact_urls(const char *urls);

/*
 * Loop thread. Writes now what nats.c has buffered for the connection (the loop model writes
 * once per loop iteration anyway). A publisher that hands over a lot in one go (a batch) calls
 * it every few hundred KiB, so nats.c's write buffer, which grows to hold one iteration's
 * publishes and never shrinks, stays small. No-op for a TLS connection (nats.c flushes itself).
 */
void evd_nats_flush(struct evd_nats *n);

/*
 * Any thread. Destroys a message that is ours alone (published already, or taken from a
 * subscription), freeing it on the caller's thread: natsMsg_Destroy would hand it to nats.c's
 * garbage-collector thread (a lock and a wake-up per message). Falls back to natsMsg_Destroy
 * when the build cannot use natsMsg_free (meson.build: EVD_NATS_MSG_FREE).
 */
void evd_nats_msg_free(natsMsg *m);

/* Turns a natsStatus into a negative errno-style code, logging nats.c's error text. */
int evd_nats_status_to_err(natsStatus s, const char *what);

#endif
