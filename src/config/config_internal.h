/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the config module: the one table of keys (config_keys.c) that the loader, the defaults,
 * the restart comparison and the tests all read, and parsers that explain why a value is wrong.
 * Not for other areas: they use config.h.
 *
 * The table is static, read-only data; any thread.
 */
#ifndef EVD_CONFIG_INTERNAL_H
#define EVD_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

enum evd_key_type {
	EVD_KEY_STRING,   /* char * */
	EVD_KEY_BOOL,     /* bool */
	EVD_KEY_UINT,     /* uint32_t */
	EVD_KEY_SIZE,     /* uint64_t bytes */
	EVD_KEY_DURATION, /* int64_t milliseconds */
	EVD_KEY_ENUM,     /* an enum (int-sized) */
	EVD_KEY_DOUBLE,   /* double */
	EVD_KEY_URLS,     /* char *: "embedded" or comma-separated nats:// / tls:// URLs */
};

/* How a string key's value is checked beyond "not empty". */
enum evd_key_check {
	EVD_CHECK_NONE,
	EVD_CHECK_ADDR,        /* a listen address (evd_addr_parse) */
	EVD_CHECK_STREAM_NAME, /* a JetStream stream name */
	EVD_CHECK_SUBJECT,     /* a NATS subject of literal tokens */
};

struct evd_key_enum {
	const char *name;
	int value;
	bool alias; /* accepted, but not listed in messages ("warning" for "warn") */
};

/* The default is computed from other keys after loading (see config.c). */
#define EVD_KEY_COMPUTED "\x01computed"

struct evd_config_key {
	const char *name; /* dotted: "dispatch.backoff.initial" */
	enum evd_key_type type;
	size_t offset; /* of the field in struct evd_config */
	/* Defaults as text, read by the same parser as the file; NULL: unset (strings only). */
	const char *def_prod;
	const char *def_dev;
	/* Inclusive bounds: uint, size and duration use min/max, double uses fmin/fmax. */
	uint64_t min, max;
	double fmin, fmax;
	const struct evd_key_enum *enums; /* EVD_KEY_ENUM: terminated by a NULL name */
	enum evd_key_check check;
	bool reloadable;
	const char *help;
};

extern const struct evd_config_key evd_config_keys[];
extern const size_t evd_config_nkeys;

const struct evd_config_key *evd_config_key_find(const char *name);
/* True when the field of that key holds the same value in both configs. */
bool evd_config_key_equal(const struct evd_config_key *k, const struct evd_config *a,
			  const struct evd_config *b);
/* Appends the key's current value as a config file would spell it ("64KiB", "30s", "(unset)"). */
void evd_config_key_format(const struct evd_config_key *k, const struct evd_config *cfg,
			   struct evd_buf *out);

/* config_value.c: one value of one key. */
void evd_config_set_string(struct evd_config *cfg, const struct evd_config_key *k, const char *s);
/* Appends what a value of k looks like: "a size such as 64KiB", "file or memory"... */
void evd_config_append_expected(const struct evd_config_key *k, struct evd_buf *out);
/*
 * Parses text as k's type and checks its bounds and form; stores it in cfg and returns 0, or
 * returns -EINVAL with a complete message ("must be ..., got ...") in msg. URL lists are stored
 * unchecked: the loader checks them item by item (evd_config_check_url) to point at each.
 */
int evd_config_parse_store(struct evd_config *cfg, const struct evd_config_key *k,
			   const char *text, struct evd_buf *msg);
/* One nats.url item: nats:// or tls://, [user[:pw]@], host or [IPv6], [:port]. 0 or -EINVAL. */
int evd_config_check_url(const char *url, char *why, size_t whylen);

/* config_suggest.c: unknown keys. */
/* True when path names a section ("nats", "nats.tls") rather than a key. */
bool evd_config_is_section(const char *path);
/* The keys and sections directly under prefix (NULL: the top level), comma-separated. */
void evd_config_append_children(const char *prefix, struct evd_buf *out);
/* "unknown key; did you mean 'x.y'?" or "unknown key (valid here: ...)". */
void evd_config_suggest(const char *path, const char *prefix, struct evd_buf *msg);

/* As evd_parse_size()/evd_parse_duration(), with a reason in why ("" when it is plain garbage). */
int evd_parse_size_why(const char *text, uint64_t *out, char *why, size_t whylen);
int evd_parse_duration_why(const char *text, int64_t *out_ms, char *why, size_t whylen);

#endif
