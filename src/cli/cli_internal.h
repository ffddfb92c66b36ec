/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pieces shared by the subcommands in src/cli/, and the pure parts of `publish` and `display`
 * that the unit tests call directly (building a request, formatting an event). Not for other
 * areas.
 *
 * Ownership: every function writes into caller-owned buffers; nothing is retained. Pure apart
 * from evd_cli_read_file (reads a file or stdin) and evd_cli_listen_url (reads the config).
 * Any thread; the CLI has one.
 */
#ifndef EVD_CLI_INTERNAL_H
#define EVD_CLI_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "daemon/daemon.h"
#include "event/event_ce.h"
#include "util/util_buf.h"

/* What `publish` reads from the command line. Strings are borrowed (argv, a file's buffer). */
struct evd_cli_event {
	const char *type;
	const char *source;
	const char *id;
	const char *content_type; /* NULL: derived from the data (see evd_cli_publish_build) */
	const char *data;         /* NULL: no data */
	size_t data_len;
	const char *ext_name[EVD_CE_MAX_EXTENSIONS];
	const char *ext_value[EVD_CE_MAX_EXTENSIONS];
	size_t n_ext;
};

/*
 * "http://<addr>" for a listen address as the config writes it: a wildcard (":8080",
 * "0.0.0.0:8080") is reached on 127.0.0.1, "[::]:8080" on [::1]. No trailing slash.
 */
void evd_cli_url_from_listen(const char *listen, char *out, size_t len);

/*
 * Reads the configuration `run` would use (-c FILE, the default path, or sandbox defaults) and
 * writes the base URL of its publish (admin == false) or admin listener. Returns 0, or EX_CONFIG
 * after the configuration's diagnostics went to stderr.
 */
int evd_cli_listen_url(const struct evd_daemon_opts *opts, bool admin, char *out, size_t len);

/*
 * Reads a whole file ("-": stdin) into out (NUL-terminated; the NUL is not counted in len).
 * Returns 0 or a negative errno (-EFBIG beyond max bytes).
 */
int evd_cli_read_file(const char *path, size_t max, struct evd_buf *out);

/*
 * True when text is exactly one JSON value (RFC 8259; whitespace around it allowed). *start and
 * *len (either may be NULL) get the value without the surrounding whitespace.
 */
bool evd_cli_json_value(const char *text, size_t len, size_t *start, size_t *value_len);

/* True for a name `--extension` accepts: [a-z0-9]+ and none of the attributes that have their
 * own option (specversion, id, source, type, datacontenttype) nor data/data_base64. */
bool evd_cli_extension_name_ok(const char *name, const char **why);

/*
 * The request `publish` sends. The content type is ev->content_type, else application/json when
 * the data is one JSON value, else text/plain (no content type without data).
 * - Binary mode: header lines ("Content-Type: ...\r\nce-specversion: 1.0\r\n..."), every ce-*
 *   value percent-encoded as the HTTP binding §3.1.3.2 says; the body is the data as given.
 * - Structured mode: Content-Type application/cloudevents+json and one JSON object whose
 *   attributes cJSON writes. JSON data (a JSON content type and a JSON value) is inserted raw,
 *   byte for byte (cJSON would turn large integers into doubles); other data goes as a JSON
 *   string when it is UTF-8 without NUL bytes, else as data_base64.
 * Returns 0, or -EINVAL with a reason in err: data that is no JSON value under a JSON content
 * type (given, or derived: without ev->content_type, data whose first non-blank byte is '{' or
 * '[' must be JSON), in either mode; or a content type with control characters.
 */
int evd_cli_publish_build(const struct evd_cli_event *ev, bool structured, struct evd_buf *headers,
			  struct evd_buf *body, char *err, size_t errlen);

/*
 * The readable form `display` prints for one event: a title line ("cloudevents.Event" and the
 * origin in parentheses when not NULL), the context attributes in spec order, the extensions
 * sorted by name, then the data: JSON re-indented (tokens byte for byte, so numbers stay as
 * sent), UTF-8 text as is, anything else as base64. Every section line is indented two spaces.
 */
void evd_cli_display_format(const struct evd_cloudevent *ev, const char *origin,
			    struct evd_buf *out);

/*
 * `eventingd status`, the pure parts. evd_cli_parse_time reads an RFC 3339 time
 * ("2026-12-01T14:50:03Z", with optional fraction and numeric offset) as milliseconds since the
 * epoch, or -1. evd_cli_age writes how long before now_ms then_ms was, the way status shows
 * the age of cached figures: "4 s ago", "3 min ago", "2 h ago", "5 d ago"; a time ahead of
 * now_ms (clocks that disagree a little) is "0 s ago", then_ms < 0 (unknown) is "-".
 */
int64_t evd_cli_parse_time(const char *text);
void evd_cli_age(int64_t now_ms, int64_t then_ms, char *out, size_t len);
/*
 * Prints the BACKEND block from GET /v1/backend and the SUBSCRIPTIONS table from
 * GET /v1/subscriptions (either may be NULL), ages relative to now_ms (wall clock, ms).
 */
struct cJSON;
void evd_cli_status_print(FILE *out, const struct cJSON *backend, const struct cJSON *subs,
			  int64_t now_ms);

#endif
