/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One Subscription, as read from a Kyma manifest (man 5 eventingd-subscription; Kyma behaviour in
 * reference/kyma-eventing.md §4). v1alpha1 manifests are converted to this v1alpha2 shape when
 * they are read, so nothing after the parser knows which version a file used.
 *
 * Ownership: reference counted, because a file that fails to re-validate keeps its previous
 * subscriptions active, so one subscription can belong to the previous and the next active set
 * (and to a diff) at the same time. evd_subscription_new() returns one reference;
 * evd_subscription_ref() adds one; evd_subscription_free() drops one and frees the object with
 * the last. A subscription is never modified once the parser has returned it, so every holder
 * may read it freely. Not thread-safe: loop thread only (the count is a plain int).
 */
#ifndef EVD_REGISTRY_SUB_H
#define EVD_REGISTRY_SUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util_diag.h"

/* Kyma's default for spec.config.maxInFlightMessages (DEFAULT_MAX_IN_FLIGHT_MESSAGES). */
#define EVD_SUB_DEFAULT_MAX_IN_FLIGHT 10
/* Length of a consumer name: the first 32 hex digits of a SHA-256. */
#define EVD_SUB_CONSUMER_NAME_LEN 32

enum evd_type_matching {
	EVD_TYPE_MATCHING_STANDARD = 0,
	EVD_TYPE_MATCHING_EXACT,
};

enum evd_content_mode {
	EVD_CONTENT_BINARY = 0,
	EVD_CONTENT_STRUCTURED,
};

enum evd_sub_api {
	EVD_SUB_V1ALPHA2 = 0,
	EVD_SUB_V1ALPHA1,
};

/* One entry of spec.types (v1alpha1: one filters[].eventType.value). */
struct evd_sub_type {
	/* status.types[].originalType; for v1alpha1 the converted (cleaned) type, as in Kyma. */
	char *original;
	char *clean;    /* status.types[].cleanType */
	char *subject;  /* the consumer's filter subject */
	char *consumer; /* durable name, EVD_SUB_CONSUMER_NAME_LEN hex digits */
	/*
	 * Index of an earlier type of this subscription with the same subject (they share
	 * that type's consumer), or -1 when this type owns its consumer. Reconcilers create
	 * consumers only for owners.
	 */
	int same_consumer_as;
	/* Where it was written: "spec.types[1]", "spec.filter.filters[0].eventType.value". */
	char *path;
	int line;
	int col;
};

/* spec.sink, parsed. */
struct evd_sink {
	char *url;       /* as written */
	char *scheme;    /* "http" or "https" */
	char *host;      /* without the brackets of an IPv6 literal */
	char *authority; /* host[:port] as written, for the Host header */
	uint16_t port;   /* explicit, or 80/443 */
	char *path;      /* request target: path and query, "/" when empty */
	bool tls;        /* https */
};

/* One spec.config entry: Kyma's map[string]string, kept as strings, sorted by key. */
struct cJSON;

struct evd_sub_config {
	char *key;
	char *value;
	int line;
	int col;
};

struct evd_subscription {
	int refs;

	char *ns;   /* metadata.namespace, "default" when absent */
	char *name; /* metadata.name */
	char *file; /* the file it came from (diagnostics, and which file owns it in a set) */
	int line;   /* where its document starts */
	int col;

	enum evd_sub_api api;    /* which apiVersion the manifest used */
	char *api_version;       /* as written */
	char *id;                /* spec.id, unused (NULL when absent) */
	enum evd_type_matching type_matching;
	char *source;            /* spec.source ("" allowed for exact) */

	struct evd_sub_type *types;
	size_t ntypes;

	struct evd_sink sink;
	/* An https sink: valid, but not ready until eventingd supports TLS; its events wait. */
	bool tls_pending;

	int max_in_flight; /* config.maxInFlightMessages, >= 1, default 10 */
	enum evd_content_mode content_mode;
	/* Delivery settings of spec.config (strings there, as Kyma's map); 0: the dispatch.* key. */
	uint32_t max_deliver;        /* config.maxDeliver: attempts before a permanent failure */
	int64_t retry_backoff_ms;    /* config.retryBackoff: delay before the first retry */
	int64_t retry_max_delay_ms;  /* config.retryMaxDelay: longest delay between retries */

	struct evd_sub_config *config; /* raw spec.config, sorted by key */
	size_t nconfig;

	struct evd_diag warnings; /* this subscription's own warnings (EventMesh keys, ...) */

	/*
	 * The manifest as written, for the status API, which shows each subscription as kubectl
	 * shows the resource: spec (v1alpha1: the v1alpha1 spec, not the conversion) and
	 * metadata.labels / metadata.annotations (NULL when absent). cJSON trees owned by the
	 * subscription; like everything here, never modified after parsing. Not compared by the
	 * diff: what matters for consumers and delivery is in the fields above.
	 */
	struct cJSON *spec_json;
	struct cJSON *labels_json;
	struct cJSON *annotations_json;
};

struct evd_subscription *evd_subscription_new(void);
struct evd_subscription *evd_subscription_ref(struct evd_subscription *s);
/* Drops one reference; NULL-safe. */
void evd_subscription_free(struct evd_subscription *s);

/* The spec.config value for key, or NULL. */
const char *evd_subscription_config_get(const struct evd_subscription *s, const char *key);

/* "ns/name" into a caller buffer of at least EVD_SUB_KEY_MAX bytes (truncated if longer). */
#define EVD_SUB_KEY_MAX 320
void evd_subscription_key(const struct evd_subscription *s, char *out, size_t size);

/*
 * Kyma's consumer name (EM:pkg/backend/jetstream/utils.go computeConsumerName): the first 32 hex
 * digits of sha256("<ns>/<name>/<subject>"). out must hold EVD_SUB_CONSUMER_NAME_LEN + 1 bytes.
 * Returns 0, or -EIO if libcrypto fails.
 */
int evd_subscription_consumer_name(const char *ns, const char *name, const char *subject,
				   char *out);

const char *evd_type_matching_name(enum evd_type_matching m);
const char *evd_content_mode_name(enum evd_content_mode m);

#endif
