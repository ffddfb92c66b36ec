/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one table of configuration keys (DESIGN.md §3, man 5 eventingd.yaml). The loader, the
 * defaults, the restart comparison, the sample file test and the man page test all read it, so a
 * key added here is a key everywhere. Defaults are written as text and go through the same parser
 * as the file, so a default can never be a value the file could not hold.
 *
 * The FIELD_* macros check at compile time that each key's field has the C type its key type
 * writes (a _Generic with no default association fails to compile on a mismatch).
 */
#include "config/config_internal.h"
#include "util/util_mem.h"

#include <inttypes.h>
#include <stddef.h>
#include <string.h>

#define OFF(f) offsetof(struct evd_config, f)
#define FIELD(f) (((struct evd_config *)0)->f)
#define FIELD_STR(f) _Generic(FIELD(f), char *: OFF(f))
#define FIELD_BOOL(f) _Generic(FIELD(f), bool: OFF(f))
#define FIELD_U32(f) _Generic(FIELD(f), uint32_t: OFF(f))
#define FIELD_U64(f) _Generic(FIELD(f), uint64_t: OFF(f))
#define FIELD_MS(f) _Generic(FIELD(f), int64_t: OFF(f))
#define FIELD_DBL(f) _Generic(FIELD(f), double: OFF(f))
/* Enums are compatible with their underlying integer type; the loader writes them as int. */
#define FIELD_ENUM(f) (OFF(f) + 0 * sizeof(char[sizeof(FIELD(f)) == sizeof(int) ? 1 : -1]))

#define KIB (UINT64_C(1) << 10)
#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)
#define SEC UINT64_C(1000)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)
#define NO_MAX UINT64_MAX
#define JS_MAX ((uint64_t)INT64_MAX) /* JetStream keeps byte limits in an int64 */

static const struct evd_key_enum storage_enums[] = {
	{ "file", EVD_STORAGE_FILE, false },
	{ "memory", EVD_STORAGE_MEMORY, false },
	{ NULL, 0, false },
};
static const struct evd_key_enum retention_enums[] = {
	{ "interest", EVD_RETENTION_INTEREST, false },
	{ "limits", EVD_RETENTION_LIMITS, false },
	{ NULL, 0, false },
};
static const struct evd_key_enum discard_enums[] = {
	{ "new", EVD_DISCARD_NEW, false },
	{ "old", EVD_DISCARD_OLD, false },
	{ NULL, 0, false },
};
static const struct evd_key_enum level_enums[] = {
	{ "error", EVD_LOG_ERROR, false }, { "warn", EVD_LOG_WARN, false },
	{ "info", EVD_LOG_INFO, false },   { "debug", EVD_LOG_DEBUG, false },
	{ "warning", EVD_LOG_WARN, true }, { NULL, 0, false },
};
static const struct evd_key_enum format_enums[] = {
	{ "text", EVD_LOG_TEXT, false },
	{ "json", EVD_LOG_JSON, false },
	{ NULL, 0, false },
};

#define SUBSCRIPTIONS_DIR EVD_SUBSCRIPTIONS_DIR_DEFAULT

/* clang-format off */
const struct evd_config_key evd_config_keys[] = {
	{ "publish.listen", EVD_KEY_STRING, FIELD_STR(publish.listen),
	  "127.0.0.1:8080", "127.0.0.1:8080", .check = EVD_CHECK_ADDR,
	  .help = "Address of the publish endpoint, HOST:PORT (empty host or * for all interfaces)." },
	{ "publish.max_request_size", EVD_KEY_SIZE, FIELD_U64(publish.max_request_size),
	  "64KiB", "64KiB", .min = 1 * KIB, .max = 1 * GIB, .reloadable = true,
	  .help = "Largest request accepted, a whole batch included; larger requests get 413." },
	{ "publish.max_in_flight", EVD_KEY_UINT, FIELD_U32(publish.max_in_flight),
	  "4096", "4096", .min = 1, .max = 1000000, .reloadable = true,
	  .help = "Publishes awaiting a JetStream acknowledgement; beyond it requests get 503 with Retry-After." },
	{ "publish.event_type_prefix", EVD_KEY_STRING, FIELD_STR(publish.event_type_prefix),
	  "sap.kyma.custom", "sap.kyma.custom", .check = EVD_CHECK_SUBJECT,
	  .help = "Kyma's prefix of prefixed (legacy-style) event types." },
	{ "publish.legacy_prefixed_copy", EVD_KEY_BOOL, FIELD_BOOL(publish.legacy_prefixed_copy),
	  "true", "true", .reloadable = true,
	  .help = "Also publish legacy events on the prefixed subject, as Kyma does." },
	{ "publish.access_log", EVD_KEY_STRING, FIELD_STR(publish.access_log),
	  NULL, NULL, .reloadable = true,
	  .help = "Access log of the publish endpoint: unset for none, \"-\" for standard error, or a file path." },

	{ "admin.listen", EVD_KEY_STRING, FIELD_STR(admin.listen),
	  "127.0.0.1:9090", "127.0.0.1:9090", .check = EVD_CHECK_ADDR,
	  .help = "Address of the admin endpoint: metrics, health and the status API." },

	{ "nats.url", EVD_KEY_URLS, FIELD_STR(nats.url),
	  "embedded", "embedded",
	  .help = "\"embedded\" to run nats-server as a child, or comma-separated nats:// or tls:// URLs of an external server or cluster." },
	{ "nats.embedded.binary", EVD_KEY_STRING, FIELD_STR(nats.embedded.binary),
	  "nats-server", "nats-server",
	  .help = "The embedded server program: a name looked up in PATH, or a path." },
	{ "nats.embedded.max_store", EVD_KEY_SIZE, FIELD_U64(nats.embedded.max_store),
	  "1GiB", "1GiB", .min = 1 * MIB, .max = JS_MAX,
	  .help = "JetStream file-store limit of the embedded server; must hold stream.max_bytes plus deadletters.max_bytes." },
	{ "nats.embedded.max_memory", EVD_KEY_SIZE, FIELD_U64(nats.embedded.max_memory),
	  EVD_KEY_COMPUTED, EVD_KEY_COMPUTED, .min = 1 * MIB, .max = JS_MAX,
	  .help = "JetStream memory-store limit of the embedded server; default 64MiB, or stream.max_bytes when stream.storage is memory." },
	{ "nats.creds", EVD_KEY_STRING, FIELD_STR(nats.creds), NULL, NULL,
	  .help = "Credentials file (JWT and NKey seed) for an external server." },
	{ "nats.token", EVD_KEY_STRING, FIELD_STR(nats.token), NULL, NULL,
	  .help = "Authentication token for an external server." },
	{ "nats.user", EVD_KEY_STRING, FIELD_STR(nats.user), NULL, NULL,
	  .help = "User name for an external server; needs nats.password." },
	{ "nats.password", EVD_KEY_STRING, FIELD_STR(nats.password), NULL, NULL,
	  .help = "Password for nats.user." },
	{ "nats.tls.ca", EVD_KEY_STRING, FIELD_STR(nats.tls.ca), NULL, NULL,
	  .help = "CA certificates (PEM) that verify an external server." },
	{ "nats.tls.cert", EVD_KEY_STRING, FIELD_STR(nats.tls.cert), NULL, NULL,
	  .help = "Client certificate (PEM) for an external server; needs nats.tls.key." },
	{ "nats.tls.key", EVD_KEY_STRING, FIELD_STR(nats.tls.key), NULL, NULL,
	  .help = "Private key (PEM) of nats.tls.cert." },

	{ "state_dir", EVD_KEY_STRING, FIELD_STR(state_dir),
	  EVD_STATE_DIR_DEFAULT, "./.eventingd",
	  .help = "Directory of the embedded JetStream store and local state." },

	/*
	 * SIGHUP, decided per key (issue 10). The name, the subjects, storage and retention are
	 * restart-only: publish, the registry's consumers and the stream would all have to move
	 * at once, and JetStream cannot change storage or retention in place; the daemon keeps
	 * their running values until a restart (evd_config_keep_restart_keys). The limits are
	 * reloadable: the next ensure updates them in place (js_UpdateStream), and a refused
	 * update is logged and leaves the running stream as it was.
	 */
	{ "stream.name", EVD_KEY_STRING, FIELD_STR(stream.name),
	  "sap", "sap", .check = EVD_CHECK_STREAM_NAME,
	  .help = "JetStream stream that holds the events (Kyma's name)." },
	{ "stream.subject_prefix", EVD_KEY_STRING, FIELD_STR(stream.subject_prefix),
	  "kyma", "kyma", .check = EVD_CHECK_SUBJECT,
	  .help = "First subject token(s) of every event (Kyma's name)." },
	{ "stream.storage", EVD_KEY_ENUM, FIELD_ENUM(stream.storage),
	  "file", "file", .enums = storage_enums,
	  .help = "Where JetStream keeps the stream." },
	{ "stream.retention", EVD_KEY_ENUM, FIELD_ENUM(stream.retention),
	  "interest", "interest", .enums = retention_enums,
	  .help = "interest drops an event once every consumer has it (Kyma); limits keeps it until max_bytes or max_age." },
	{ "stream.discard", EVD_KEY_ENUM, FIELD_ENUM(stream.discard),
	  "new", "new", .enums = discard_enums, .reloadable = true,
	  .help = "When the stream is full: new refuses publishes (507), old drops the oldest events." },
	{ "stream.max_bytes", EVD_KEY_SIZE, FIELD_U64(stream.max_bytes),
	  "700MiB", "700MiB", .min = 1 * MIB, .max = JS_MAX, .reloadable = true,
	  .help = "Size limit of the stream." },
	{ "stream.max_age", EVD_KEY_DURATION, FIELD_MS(stream.max_age),
	  "0", "0", .min = 0, .max = NO_MAX, .reloadable = true,
	  .help = "Age limit of events in the stream; 0 is unlimited." },
	{ "stream.replicas", EVD_KEY_UINT, FIELD_U32(stream.replicas),
	  "1", "1", .min = 1, .max = 5, .reloadable = true,
	  .help = "Copies of the stream in a JetStream cluster; 1 with the embedded server." },
	{ "stream.duplicate_window", EVD_KEY_DURATION, FIELD_MS(stream.duplicate_window),
	  "2m", "2m", .min = 100, .max = NO_MAX, .reloadable = true,
	  .help = "A publish retried with the same source and id within this window is stored once." },

	{ "subscriptions.dir", EVD_KEY_STRING, FIELD_STR(subscriptions.dir),
	  SUBSCRIPTIONS_DIR, "./subscriptions.d", .reloadable = true,
	  .help = "Directory of subscription manifests (*.yaml)." },
	{ "subscriptions.prune_orphans", EVD_KEY_BOOL, FIELD_BOOL(subscriptions.prune_orphans),
	  EVD_KEY_COMPUTED, EVD_KEY_COMPUTED, .reloadable = true,
	  .help = "Delete consumers no subscription owns; default true with the embedded server, false with an external one." },
	{ "subscriptions.delete_grace", EVD_KEY_DURATION, FIELD_MS(subscriptions.delete_grace),
	  "10s", "10s", .min = 0, .max = 1 * DAY, .reloadable = true,
	  .help = "How long a consumer whose subscription or type went away waits before it is deleted; a file that comes back meanwhile keeps it." },

	{ "dispatch.ack_wait", EVD_KEY_DURATION, FIELD_MS(dispatch.ack_wait),
	  "30s", "30s", .min = 1 * SEC, .max = 1 * DAY, .reloadable = true,
	  .help = "How long JetStream waits for an acknowledgement before it redelivers." },
	{ "dispatch.max_deliver", EVD_KEY_UINT, FIELD_U32(dispatch.max_deliver),
	  "100", "100", .min = 1, .max = 1000000, .reloadable = true,
	  .help = "Delivery attempts before an event goes to dead letters." },
	{ "dispatch.timeout", EVD_KEY_DURATION, FIELD_MS(dispatch.timeout),
	  "15s", "15s", .min = 100, .max = 1 * DAY, .reloadable = true,
	  .help = "Time limit of one delivery to a sink; must stay below dispatch.ack_wait." },
	{ "dispatch.backoff.initial", EVD_KEY_DURATION, FIELD_MS(dispatch.backoff.initial),
	  "1s", "1s", .min = 1, .max = 1 * DAY, .reloadable = true,
	  .help = "Delay before the first retry." },
	{ "dispatch.backoff.max", EVD_KEY_DURATION, FIELD_MS(dispatch.backoff.max),
	  "5m", "5m", .min = 1, .max = 7 * DAY, .reloadable = true,
	  .help = "Longest delay between retries." },
	{ "dispatch.backoff.factor", EVD_KEY_DOUBLE, FIELD_DBL(dispatch.backoff.factor),
	  "2", "2", .fmin = 1, .fmax = 100, .reloadable = true,
	  .help = "Each retry waits this many times longer than the one before (with jitter)." },
	{ "dispatch.max_connections_per_sink", EVD_KEY_UINT, FIELD_U32(dispatch.max_connections_per_sink),
	  "64", "64", .min = 1, .max = 4096, .reloadable = true,
	  .help = "Open HTTP connections to one sink at most." },
	{ "dispatch.drain_timeout", EVD_KEY_DURATION, FIELD_MS(dispatch.drain_timeout),
	  "10s", "10s", .min = 0, .max = 1 * HOUR, .reloadable = true,
	  .help = "On shutdown, how long requests and deliveries in progress may finish." },
	{ "dispatch.max_event_age", EVD_KEY_DURATION, FIELD_MS(dispatch.max_event_age),
	  "24h", "24h", .min = 1 * MIN, .max = NO_MAX, .reloadable = true,
	  .help = "Undelivered events older than this go to dead letters, so one dead sink cannot fill the stream." },

	{ "deadletters.stream", EVD_KEY_STRING, FIELD_STR(deadletters.stream),
	  EVD_KEY_COMPUTED, EVD_KEY_COMPUTED, .check = EVD_CHECK_STREAM_NAME,
	  .help = "JetStream stream of dead letters; default <stream.name>-dlq." },
	{ "deadletters.max_bytes", EVD_KEY_SIZE, FIELD_U64(deadletters.max_bytes),
	  "256MiB", "256MiB", .min = 1 * MIB, .max = JS_MAX,
	  .help = "Size limit of the dead-letter stream." },
	{ "deadletters.max_age", EVD_KEY_DURATION, FIELD_MS(deadletters.max_age),
	  "7d", "7d", .min = 0, .max = NO_MAX,
	  .help = "Age limit of dead letters; 0 is unlimited." },

	{ "log.level", EVD_KEY_ENUM, FIELD_ENUM(log.level),
	  "info", "info", .enums = level_enums, .reloadable = true,
	  .help = "Least important messages logged." },
	{ "log.format", EVD_KEY_ENUM, FIELD_ENUM(log.format),
	  "text", "text", .enums = format_enums, .reloadable = true,
	  .help = "text for people, json (one object per line) for log collectors." },
};
/* clang-format on */

const size_t evd_config_nkeys = EVD_ARRAY_SIZE(evd_config_keys);

const struct evd_config_key *evd_config_key_find(const char *name)
{
	for (size_t i = 0; i < evd_config_nkeys; i++)
		if (strcmp(evd_config_keys[i].name, name) == 0)
			return &evd_config_keys[i];
	return NULL;
}

#define AT(cfg, k, T) ((const T *)(const void *)((const char *)(cfg) + (k)->offset))

bool evd_config_key_equal(const struct evd_config_key *k, const struct evd_config *a,
			  const struct evd_config *b)
{
	switch (k->type) {
	case EVD_KEY_STRING:
	case EVD_KEY_URLS: {
		const char *x = *AT(a, k, char *), *y = *AT(b, k, char *);
		return x == y || (x && y && strcmp(x, y) == 0);
	}
	case EVD_KEY_BOOL: return *AT(a, k, bool) == *AT(b, k, bool);
	case EVD_KEY_UINT: return *AT(a, k, uint32_t) == *AT(b, k, uint32_t);
	case EVD_KEY_SIZE: return *AT(a, k, uint64_t) == *AT(b, k, uint64_t);
	case EVD_KEY_DURATION: return *AT(a, k, int64_t) == *AT(b, k, int64_t);
	case EVD_KEY_ENUM: return *AT(a, k, int) == *AT(b, k, int);
	case EVD_KEY_DOUBLE: return *AT(a, k, double) == *AT(b, k, double);
	}
	return false;
}

void evd_config_key_format(const struct evd_config_key *k, const struct evd_config *cfg,
			   struct evd_buf *out)
{
	char tmp[64];

	switch (k->type) {
	case EVD_KEY_STRING:
	case EVD_KEY_URLS: {
		const char *s = *AT(cfg, k, char *);
		evd_buf_append_str(out, s ? s : "(unset)");
		return;
	}
	case EVD_KEY_BOOL: evd_buf_append_str(out, *AT(cfg, k, bool) ? "true" : "false"); return;
	case EVD_KEY_UINT: evd_buf_printf(out, "%" PRIu32, *AT(cfg, k, uint32_t)); return;
	case EVD_KEY_SIZE:
		evd_format_size(*AT(cfg, k, uint64_t), tmp, sizeof(tmp));
		evd_buf_append_str(out, tmp);
		return;
	case EVD_KEY_DURATION:
		evd_format_duration(*AT(cfg, k, int64_t), tmp, sizeof(tmp));
		evd_buf_append_str(out, tmp);
		return;
	case EVD_KEY_ENUM:
		for (const struct evd_key_enum *e = k->enums; e->name; e++) {
			if (!e->alias && e->value == *AT(cfg, k, int)) {
				evd_buf_append_str(out, e->name);
				return;
			}
		}
		evd_buf_append_str(out, "?");
		return;
	case EVD_KEY_DOUBLE: evd_buf_printf(out, "%g", *AT(cfg, k, double)); return;
	}
}
