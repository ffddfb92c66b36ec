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

/* As evd_parse_size()/evd_parse_duration(), with a reason in why ("" when it is plain garbage). */
int evd_parse_size_why(const char *text, uint64_t *out, char *why, size_t whylen);
int evd_parse_duration_why(const char *text, int64_t *out_ms, char *why, size_t whylen);

#endif
