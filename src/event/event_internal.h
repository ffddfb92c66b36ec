/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to src/event/: the strict JSON scanner and helpers the decoders share. Pure functions,
 * any thread.
 */
#ifndef EVD_EVENT_INTERNAL_H
#define EVD_EVENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "event/event_ce.h"

/* ---- event_percent.c ---- */

/* One UTF-8 sequence at s (len > 0 bytes available): its length and code point, 0 if invalid. */
size_t evd_ce_utf8_next(const unsigned char *s, size_t len, unsigned *cp);
/* The spec's String type: valid UTF-8, no control characters, no noncharacters. */
int evd_ce_check_string(const char *s, size_t len, const char **why);

/* ---- event_json.c: RFC 8259, strict ---- */

enum evd_json_type {
	EVD_JSON_NULL,
	EVD_JSON_FALSE,
	EVD_JSON_TRUE,
	EVD_JSON_NUMBER,
	EVD_JSON_STRING,
	EVD_JSON_ARRAY,
	EVD_JSON_OBJECT,
};

/* A value's raw text: for strings, the span includes the quotes. */
struct evd_json_span {
	const char *p;
	size_t len;
	enum evd_json_type type;
};

/* Skips JSON whitespace (space, tab, LF, CR). */
const char *evd_json_skip_ws(const char *p, const char *end);

/*
 * Checks one complete JSON value starting at *p (no leading whitespace) and moves *p past it.
 * Strings must be valid UTF-8 without raw control characters; nesting is limited to 256 levels.
 * Returns 0 or -EINVAL with a static reason in *why.
 */
int evd_json_scan_value(const char **p, const char *end, struct evd_json_span *out, const char **why);

/*
 * Decodes a JSON string span (with its quotes) into out (which must hold span.len bytes): escapes
 * resolved, \u surrogate pairs joined, lone surrogates refused. out is NUL-terminated.
 */
int evd_json_string_decode(const struct evd_json_span *s, char *out, size_t *out_len, const char **why);

/* Human name of a JSON type for error messages ("number", "object", ...). */
const char *evd_json_type_name(enum evd_json_type t);

/* ---- event_structured.c ---- */

/* Decodes one structured event from an object span (already scanned). */
int evd_ce_decode_object(const struct evd_json_span *obj, struct evd_cloudevent *ev, struct evd_buf *err);

/* ---- event_binary.c ---- */

/*
 * Adds the attribute named by a ce- header's suffix (any case; lower-cased) with its value
 * unquoted and percent-decoded. A repeated attribute, a bad name or value: -EINVAL, err says
 * which header.
 */
int evd_ce_add_header(struct evd_cloudevent *ev, const char *name, size_t nlen, const char *value,
		      size_t vlen, struct evd_buf *err);

/* ---- event_validate.c ---- */

bool evd_ce_valid_name(const char *s, size_t len);
int evd_ce_check_time(const char *s, size_t len);
int evd_ce_check_time_go(const char *s, size_t len);

#endif
