/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The appliance configuration (DESIGN.md §3, man 5 eventingd.yaml): one struct filled from one
 * table of keys. Every field is named after its key (publish.max_in_flight ->
 * cfg->publish.max_in_flight). Sizes are bytes, durations milliseconds.
 *
 * Loading never stops at the first mistake: every error is added to the caller's evd_diag as
 * "FILE:LINE:COL: key: message", unknown keys with a "did you mean" suggestion.
 *
 * Ownership: evd_config_load()/evd_config_defaults() return a config the caller frees with
 * evd_config_free(); its strings belong to it. Pure, any thread; the daemon uses it on the loop.
 */
#ifndef EVD_CONFIG_H
#define EVD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "evd_build_config.h"
#include "util/util_buf.h"
#include "util/util_diag.h"
#include "util/util_log.h"

#define EVD_CONFIG_DEFAULT_PATH EVD_SYSCONFDIR_STR "/eventingd/eventingd.yaml"
/* Production defaults of subscriptions.dir and state_dir (the key table's, for --help). The
 * state directory is systemd's StateDirectory=eventingd, whatever the install prefix. */
#define EVD_SUBSCRIPTIONS_DIR_DEFAULT EVD_SYSCONFDIR_STR "/eventingd/subscriptions.d"
#define EVD_STATE_DIR_DEFAULT "/var/lib/eventingd"

enum evd_stream_storage { EVD_STORAGE_FILE, EVD_STORAGE_MEMORY };
enum evd_stream_retention { EVD_RETENTION_INTEREST, EVD_RETENTION_LIMITS };
enum evd_stream_discard { EVD_DISCARD_NEW, EVD_DISCARD_OLD };

/* Where a key's value stood in the file (1-based); line 0: not in the file. */
struct evd_config_pos {
	int line, col;
};

struct evd_config {
	char *source_file; /* the file read, or NULL when only defaults apply */
	bool dev;          /* sandbox defaults (--dev, or no config file) */
	struct evd_config_pos *pos; /* per key of the table; NULL for defaults only */

	struct {
		char *listen;              /* "127.0.0.1:8080" */
		uint64_t max_request_size; /* 64 KiB */
		uint32_t max_in_flight;    /* 4096 */
		char *event_type_prefix;   /* "sap.kyma.custom" */
		bool legacy_prefixed_copy; /* true */
		char *access_log;          /* NULL: off; "-": stderr; else a file path */
	} publish;

	struct {
		char *listen; /* "127.0.0.1:9090" */
	} admin;

	struct {
		char *url; /* "embedded" or "nats://a:4222,nats://b:4222" */
		struct {
			char *binary;       /* "nats-server" */
			uint64_t max_store; /* 1 GiB */
			/* 64 MiB, or stream.max_bytes when stream.storage is memory */
			uint64_t max_memory;
		} embedded;
		char *creds;
		char *token;
		char *user;
		char *password;
		struct {
			char *ca;
			char *cert;
			char *key;
		} tls;
	} nats;

	char *state_dir; /* "/var/lib/eventingd", "./.eventingd" in dev */

	struct {
		char *name;           /* "sap" */
		char *subject_prefix; /* "kyma" */
		enum evd_stream_storage storage;
		enum evd_stream_retention retention;
		enum evd_stream_discard discard;
		uint64_t max_bytes;     /* 700 MiB */
		int64_t max_age;        /* ms, 0 = unlimited */
		uint32_t replicas;      /* 1 */
		int64_t duplicate_window; /* ms, 2 min */
	} stream;

	struct {
		char *dir;          /* "/etc/eventingd/subscriptions.d", "./subscriptions.d" in dev */
		bool prune_orphans; /* default: true when embedded, false when external */
		/* prune_orphans was given in the file (else it is the computed default, which the
		 * daemon keeps following the running backend on reload: nats.url is restart-only) */
		bool prune_orphans_explicit;
		int64_t delete_grace; /* ms, 10 s: how long a consumer deletion waits */
	} subscriptions;

	struct {
		int64_t ack_wait; /* ms, 30 s */
		uint32_t max_deliver; /* 100 */
		int64_t timeout;  /* ms, 15 s; must stay below ack_wait */
		struct {
			int64_t initial; /* ms, 1 s */
			int64_t max;     /* ms, 5 min */
			double factor;   /* 2 */
		} backoff;
		uint32_t max_connections_per_sink; /* 64 */
		int64_t drain_timeout;             /* ms, 10 s */
		int64_t max_event_age;             /* ms, 24 h */
	} dispatch;

	struct {
		char *stream;       /* "<stream.name>-dlq" */
		uint64_t max_bytes; /* 256 MiB */
		int64_t max_age;    /* ms, 7 d */
	} deadletters;

	struct {
		enum evd_log_level level;   /* info */
		enum evd_log_format format; /* text */
	} log;
};

/*
 * Reads path (NULL: defaults only) over the defaults for dev or production. Returns 0, or
 * -EINVAL with every problem in diag (warnings may be added on success too), or the negative
 * errno of an unreadable file (-ENOENT...) with one diagnostic. *out is set only on success.
 */
int evd_config_load(const char *path, bool dev, struct evd_config **out, struct evd_diag *diag);
/* Defaults only (dev or production); never fails. */
struct evd_config *evd_config_defaults(bool dev);
void evd_config_free(struct evd_config *cfg);

/*
 * The files the configuration names, looked at by the user running this (`eventingd check`,
 * and `run` before it starts anything): nats.creds and nats.tls.* (with an external nats.url)
 * must be readable regular files, publish.access_log must be writable or creatable in an
 * existing directory, the embedded nats.embedded.binary must be found. Each problem is added to
 * diag at the key's position, naming the file and the reason. Run as root, a credentials file
 * that only its owner or group may read gets a warning: the systemd unit's DynamicUser cannot
 * read it (LoadCredential=, eventingd(8)). Paths under /run/credentials/ other than this
 * process's $CREDENTIALS_DIRECTORY exist only inside the service: a warning says they are
 * checked at start-up. Returns the number of errors added. Any thread.
 */
int evd_config_check_files(const struct evd_config *cfg, struct evd_diag *diag);

/* True when nats.url is "embedded". */
bool evd_config_embedded(const struct evd_config *cfg);

/*
 * Compares a running config with a newly loaded one and appends to out, separated by ", ", the
 * keys that differ but only take effect after a restart (reloadable: no in the key table); a
 * computed default the file does not set is left out (it follows another key). Returns how many.
 */
int evd_config_restart_keys(const struct evd_config *old, const struct evd_config *cur,
			    struct evd_buf *out);

/*
 * One URL of nats.url with its user-info percent-decoded (RFC 3986 3.2.1: "nats://evd:p%40ss@h"
 * gives user "evd", password "p@ss"), in the form nats.c's URL parser takes (it splits at the
 * last '@' and the first ':', and decodes nothing). Refuses a bad escape, %00, and a ':' in a
 * decoded user name or token (nats.c would cut it there). Returns 0 with *out (caller frees), or
 * -EINVAL with why.
 */
int evd_config_url_decode(const char *url, char **out, char *why, size_t whylen);

/*
 * Copies into next the running value of every key that is not reloadable, so that after a
 * SIGHUP the daemon's configuration is the one that runs (DESIGN.md §3: a restart key takes
 * effect at the next start, not half-way through the running components). Call
 * evd_config_restart_keys first to report what differs.
 */
void evd_config_keep_restart_keys(const struct evd_config *running, struct evd_config *next);

/* Parsers shared with other readers (subscription files): 0 or -EINVAL. */
int evd_parse_size(const char *text, uint64_t *out);        /* "64KiB", "1GiB", "512" (bytes) */
int evd_parse_duration(const char *text, int64_t *out_ms);  /* "250ms", "30s", "2m", "1h", "7d" */
/* Formats for man pages, logs and status: "64KiB", "30s", "2m"; exact when possible. */
void evd_format_size(uint64_t bytes, char *out, size_t outlen);
void evd_format_duration(int64_t ms, char *out, size_t outlen);

#endif
