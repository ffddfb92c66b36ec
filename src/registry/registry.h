/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The running subscription registry (man 5 eventingd-subscription, DESIGN.md §5): the daemon's
 * view of subscriptions.dir, kept live, and the JetStream consumers reconciled from it.
 *
 *   watch (registry_watch.c)   uv_fs_event on the directory, SIGHUP (evd_registry_rescan) and a
 *                              periodic rescan; debounced; the directory is read and parsed on
 *                              libuv's thread pool (short file reads) and the result applied on
 *                              the loop: evd_registry_set_next() then evd_registry_diff().
 *   reconcile                  only the diff goes to JetStream, on the nats bridge's worker
 *   (registry_reconcile.c)     thread, in batches: create-or-verify (re-bind) consumers, update
 *                              MaxAckPending/AckWait/MaxDeliver in place, delete removed ones,
 *                              prune orphans; failures retried with backoff; everything
 *                              re-verified after each NATS reconnect.
 *   status (registry_status.c) Kyma-shaped JSON for the admin API and /v1/events/subscribed.
 *
 * Consumers (all settings in one place, registry_reconcile.c): durable = Kyma's name, description
 * "<ns>/<name>/<subject>", filter = subject, deliver policy new, explicit ack, AckWait =
 * dispatch.ack_wait, MaxAckPending = maxInFlightMessages, MaxDeliver = dispatch.max_deliver +
 * EVD_REGISTRY_MAX_DELIVER_MARGIN (a server-side backstop: the dispatcher counts attempts itself),
 * deliver subject EVD_REGISTRY_DELIVER_PREFIX + name (outside the stream's subjects), deliver group
 * EVD_REGISTRY_DELIVER_GROUP, no heartbeat, no flow control, replay instant.
 *
 * Ownership: the daemon owns the registry; it holds references on the subscriptions of its
 * current set. Loop thread only, for every function here.
 */
#ifndef EVD_REGISTRY_H
#define EVD_REGISTRY_H

#include <stdbool.h>
#include <uv.h>

#include "config/config.h"
#include "registry/registry_sub.h"
#include "util/util_buf.h"

#define EVD_REGISTRY_DELIVER_PREFIX "_EVD.deliver."
#define EVD_REGISTRY_DELIVER_GROUP "eventingd"
#define EVD_REGISTRY_MAX_DELIVER_MARGIN 10
/* metadata.annotations of each status item: where the manifest was read (values are strings). */
#define EVD_REGISTRY_ANNOTATION_FILE "eventingd/file"
#define EVD_REGISTRY_ANNOTATION_LINE "eventingd/line"

struct evd_bridge;
struct evd_nats;
struct evd_metrics;
struct evd_registry;

/*
 * Creates the registry; nothing happens until evd_registry_start(). cfg must stay allocated
 * while it is current (the daemon keeps retired configurations until exit). nats may be NULL
 * (no reconciliation: status only, for tests); metrics may be NULL.
 */
int evd_registry_new(uv_loop_t *loop, struct evd_bridge *bridge, struct evd_nats *nats,
		     const struct evd_config *cfg, struct evd_metrics *metrics,
		     struct evd_registry **out);
/* Starts watching subscriptions.dir and reads it at once. */
int evd_registry_start(struct evd_registry *reg);
/*
 * A reloaded configuration: a new subscriptions.dir switches the watch and rescans; a new
 * dispatch.ack_wait or dispatch.max_deliver updates every consumer; prune_orphans applies to
 * the next prune. Stream and prefix keys are restart keys and keep their start-up values.
 */
void evd_registry_set_config(struct evd_registry *reg, const struct evd_config *cfg);
/* Reads the directory again now (SIGHUP). */
void evd_registry_rescan(struct evd_registry *reg);
/* The NATS backend became ready (true: verify every consumer, prune) or not (false). */
void evd_registry_backend_state(struct evd_registry *reg, bool ready);
/*
 * Stops watching and reconciling and frees the registry (handles are closed asynchronously; work
 * already on the bridge's worker finishes there and is discarded). NULL-safe. Call before the
 * NATS connection is closed.
 */
void evd_registry_free(struct evd_registry *reg);

/*
 * True when a type of an active subscription maps to subject, i.e. a consumer of eventingd's
 * filters on it (filter subjects are plain: standard types are cleaned of '*' and '>', exact
 * types may not hold them), so interest retention keeps an event stored there. Also true
 * before the first scan is applied, when the answer is not known yet. A binary search: cheap
 * enough for every publish.
 */
bool evd_registry_wants_subject(const struct evd_registry *reg, const char *subject);

/*
 * The dispatcher's view of one consumer, level-based: each call says what is true now, not what
 * changed, so a receiver that makes its state match every call is right whatever it missed or was
 * told twice. An observer is told, on the loop, about every consumer of every applied set in the
 * set's order (created, switched to a new definition, updated, removed) and about every state
 * change of a consumer (verified, failed, re-created...).
 *
 * consumer is Kyma's name (the deliver subject is EVD_REGISTRY_DELIVER_PREFIX + consumer); sub is
 * the definition in effect (for a removed consumer, the last one), valid during the call: take a
 * reference (evd_subscription_ref) to keep it. type is the index of the type of sub that owns the
 * consumer (other types with the same subject share it).
 */
struct evd_registry_binding {
	const char *consumer;
	struct evd_subscription *sub;
	size_t type;
	bool present;     /* in the table; false once removed (its deletion is queued) */
	bool deliverable; /* present, verified against JetStream, and its sink is not tls_pending */
};
typedef void (*evd_registry_observer_cb)(const struct evd_registry_binding *b, void *data);
/* One observer (the daemon wires the dispatcher); told at once about every current consumer. */
void evd_registry_set_observer(struct evd_registry *reg, evd_registry_observer_cb cb, void *data);

/* True once the first scan has been applied. */
bool evd_registry_loaded(const struct evd_registry *reg);
/* How many subscriptions are active, and how many of them are ready. */
void evd_registry_counts(const struct evd_registry *reg, size_t *active, size_t *ready);

/*
 * GET /v1/subscriptions: a Kubernetes list, {"apiVersion":"v1","kind":"List","metadata":{...},
 * "items":[...]}, plus eventingd's "directory", "directoryError", "loaded", "lastScan",
 * "lastApplied", "summary", "files" and "deleting". Each item has the shape of Kyma's
 * Subscription resource as `kubectl get subscription -o json` prints it (DESIGN.md §7):
 * apiVersion (the manifest's), kind, metadata {name, namespace, labels, annotations: the
 * manifest's plus "eventingd/file" and "eventingd/line"}, spec (as written), status: Kyma's
 * (ready, conditions, types, backend.types; reference §4.3) plus eventingd's (backend.consumers
 * with their counters and "refreshedAt", backend.refreshedAt, config, lastError, warnings) and
 * whatever the status_extra callback adds. eventingd-subscription(5), STATUS, lists every field.
 */
void evd_registry_status_json(struct evd_registry *reg, struct evd_buf *out);
/* GET /v1/subscriptions/{ns}/{name}: one item as above; 0, or -ENOENT (nothing appended) when
 * unknown. */
int evd_registry_subscription_json(struct evd_registry *reg, const char *ns, const char *name,
				   struct evd_buf *out);
/*
 * Lets another component add fields to each subscription's status without the registry knowing
 * it (dependencies point down: the daemon wires the dispatcher's delivery figures here, which
 * it keeps by namespace/name). status_json and subscription_json call cb(data, ns, name, status)
 * once per item, on the loop thread, after the registry's own fields: cb may add members to the
 * status object (cJSON owns what is added; replacing the registry's own members is allowed but
 * not expected), must not keep the pointer, and must not call back into the registry. A
 * subscription cb knows nothing of gets nothing added. cb NULL removes it; data is borrowed and
 * must outlive the registry or the next call. Loop thread.
 */
struct cJSON;
typedef void evd_registry_status_extra_cb(void *data, const char *ns, const char *name,
					  struct cJSON *status);
void evd_registry_set_status_extra(struct evd_registry *reg, evd_registry_status_extra_cb *cb,
				   void *data);
/* The 404 body for an unknown one: {"error":"no subscription <ns>/<name>"} (JSON-escaped). */
void evd_registry_not_found_json(const char *ns, const char *name, struct evd_buf *out);
/*
 * Kyma's GET /{app}/v1/events/subscribed body (reference §1.7): {"eventsInfo":[{"name","version"}]}
 * from every active subscription: standard types whose spec.source is app, exact types starting
 * with "<prefix>.<app>." (stripped); name and version split at the last dot; deduplicated, in
 * first-seen order. prefix is publish.event_type_prefix.
 */
void evd_registry_subscribed_json(struct evd_registry *reg, const char *app, const char *prefix,
				  struct evd_buf *out);

#endif
