/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CloudEvents 1.0 in memory, and its decoders/encoders: HTTP binary mode (ce-* headers),
 * structured and batched JSON (application/cloudevents+json, application/cloudevents-batch+json),
 * and the NATS protocol binding's binary mode that eventingd stores in JetStream (DESIGN.md §4).
 *
 * Every context attribute, extensions included, is held as its canonical string (CloudEvents
 * type system: Boolean "true"/"false", Integer in decimal, Binary in base64, URI, URI-reference,
 * Timestamp in RFC 3339, String), NUL-terminated, so it can go straight into a NATS header.
 *
 * Ownership: a decoded event owns one small arena (struct evd_ce_arena) with every string the
 * decoder had to write (unescaped JSON strings, percent-decoded headers, base64-decoded data).
 * `data` points either into that arena or into the caller's input (zero copy: the structured
 * mode's raw `data` JSON text, the binary mode's HTTP body, a NATS payload); the input must
 * outlive the event, which is the case when the publish path hands the request's body along
 * until the publish is acknowledged. The struct holds no pointer into itself, so it may be
 * moved (memcpy) freely; evd_ce_free() releases the arena and leaves an empty event.
 *
 * Errors: decoders return 0, -EINVAL (an invalid event: the reason, a plain-text line naming the
 * attribute or header, e.g. "type: MUST be a non-empty string", "event 3: id: ...", is appended
 * to err when err is not NULL), or -ENOMSG (the request carries no CloudEvent at all: no
 * ce-specversion header in binary mode). Both are answered 400 by the publish API, as Kyma does.
 *
 * Pure functions: no I/O, no globals; any thread, one event per thread at a time.
 */
#ifndef EVD_EVENT_CE_H
#define EVD_EVENT_CE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util_header.h"

struct evd_buf;

/* The spec's own attributes, in the order they are validated and encoded. */
enum evd_ce_attr {
	EVD_CE_SPECVERSION,
	EVD_CE_ID,
	EVD_CE_SOURCE,
	EVD_CE_TYPE,
	EVD_CE_DATACONTENTTYPE,
	EVD_CE_DATASCHEMA,
	EVD_CE_SUBJECT,
	EVD_CE_TIME,
	EVD_CE_NATTRS
};

/*
 * At most this many extension attributes per event: more is a 400. The spec sets no limit, but
 * each one becomes a NATS header and a sink HTTP header; 64 is far above real use (Kyma's own
 * events carry one to three).
 */
#define EVD_CE_MAX_EXTENSIONS 64

struct evd_ce_ext {
	const char *name; /* [a-z0-9]+, NUL-terminated */
	size_t name_len;
	const char *value; /* canonical string, NUL-terminated */
	size_t value_len;
};

struct evd_ce_arena_block;
struct evd_ce_arena {
	struct evd_ce_arena_block *head; /* newest first; NULL until the first allocation */
};

struct evd_cloudevent {
	const char *attr[EVD_CE_NATTRS]; /* NULL when absent; NUL-terminated */
	size_t attr_len[EVD_CE_NATTRS];
	struct evd_ce_ext ext[EVD_CE_MAX_EXTENSIONS];
	unsigned n_ext;
	const char *data; /* NULL when the event has no data; not NUL-terminated in general */
	size_t data_len;
	struct evd_ce_arena arena;
};

#define EVD_CE_INIT { { NULL } }

/* Names of the spec's attributes ("specversion", "id", ...). */
const char *evd_ce_attr_name(enum evd_ce_attr a);
/* The index of a spec attribute name, or -1 (also for "data", which is no attribute). */
int evd_ce_attr_lookup(const char *name, size_t len);

void evd_ce_init(struct evd_cloudevent *ev);
/* Frees what the event owns; ev is left as after evd_ce_init. NULL-safe. */
void evd_ce_free(struct evd_cloudevent *ev);

/* An extension's value, or NULL. */
const char *evd_ce_ext_get(const struct evd_cloudevent *ev, const char *name);

/*
 * Sets an attribute (spec or extension) to a copy of value. Replaces an existing value. Returns
 * 0, or -EINVAL for an invalid name or a 65th extension (reason in err).
 */
int evd_ce_set(struct evd_cloudevent *ev, const char *name, const char *value, size_t value_len,
	       struct evd_buf *err);
/* Copies data into the event's arena. */
void evd_ce_set_data_copy(struct evd_cloudevent *ev, const void *data, size_t len);

/* Allocates n bytes (plus a NUL the caller may use) that live as long as the event. */
char *evd_ce_alloc(struct evd_cloudevent *ev, size_t n);
char *evd_ce_strdup(struct evd_cloudevent *ev, const char *s, size_t len);

/*
 * Validation per CloudEvents 1.0 (the sdk-go rules Kyma applies, §1.4 of the reference, and the
 * conformance vectors): specversion "1.0"; id, type non-empty; source a non-empty URI-reference;
 * datacontenttype an RFC 2046 media type; dataschema an absolute URI; subject non-empty; time
 * RFC 3339; every value valid UTF-8 without control characters or noncharacters (the String
 * type); extension names [a-z0-9]+. The first failure is reported ("type: MUST be a non-empty
 * string"). The decoders below call it; use it after building an event by hand.
 */
int evd_ce_validate(const struct evd_cloudevent *ev, struct evd_buf *err);

/* True for a media type of the form * /json or * / *+json (parameters ignored), as the JSON
 * format defines "JSON-formatted content". */
bool evd_ce_media_type_is_json(const char *ct, size_t len);

/* How a /publish request carries its event(s), from its Content-Type (HTTP binding §3). */
enum evd_ce_mode {
	EVD_CE_MODE_BINARY,      /* anything else: ce-* headers (or no CloudEvent at all) */
	EVD_CE_MODE_STRUCTURED,  /* application/cloudevents+json */
	EVD_CE_MODE_BATCH,       /* application/cloudevents-batch+json */
	EVD_CE_MODE_UNSUPPORTED, /* application/cloudevents+<other format>: 415 */
};
enum evd_ce_mode evd_ce_detect_mode(const char *content_type, size_t len);

/*
 * HTTP binary mode. Header names are matched case-insensitively; every ce-<name> header becomes
 * attribute or extension <name> (lower-cased), its value unquoted (RFC 7230 quoted-string) and
 * percent-decoded as the HTTP binding §3.1.3.2 says; Content-Type becomes datacontenttype; body
 * is the data (zero copy, none when empty). -ENOMSG when there is no ce-specversion header.
 */
int evd_ce_decode_binary(const struct evd_header *headers, size_t nheaders, const char *body,
			 size_t body_len, struct evd_cloudevent *ev, struct evd_buf *err);

/*
 * Structured mode: json is one JSON object (RFC 8259, strict; duplicate members refused).
 * `data` is kept byte-exact as received when it is JSON content (zero copy into json); a JSON
 * string under a non-JSON datacontenttype becomes its decoded text; data_base64 is decoded.
 * An event with data and no datacontenttype gets "application/json" (the JSON format's SHOULD
 * for re-encoding into another binding).
 */
int evd_ce_decode_structured(const char *json, size_t len, struct evd_cloudevent *ev,
			     struct evd_buf *err);

/*
 * Batched mode: a JSON array of structured events. All are decoded and validated before this
 * returns; on error none is returned and err names the index ("event 3: id: ..."). On success
 * *events is a malloc'd array of *count events (NULL and 0 for "[]"), freed with
 * evd_ce_free_batch. At most max_events events (0: no limit), more is -EINVAL.
 */
int evd_ce_decode_batch(const char *json, size_t len, size_t max_events,
			struct evd_cloudevent **events, size_t *count, struct evd_buf *err);
void evd_ce_free_batch(struct evd_cloudevent *events, size_t count);

/* ---- Percent-encoding of header values (HTTP binding §3.1.3.2, NATS binding §3.1.3.2) ---- */

/*
 * Encodes space, '"', '%' and every byte outside 0x21..0x7E as %XY (upper case), so the value is
 * printable ASCII and can never break an HTTP or NATS header block. out must hold 3 * len + 1
 * bytes; returns the encoded length (out is NUL-terminated).
 */
size_t evd_ce_percent_encode(const char *in, size_t len, char *out);
/* Bytes evd_ce_percent_encode would write for in, without the NUL. */
size_t evd_ce_percent_encoded_len(const char *in, size_t len);
/*
 * Undoes RFC 7230 double-quoting (backslash escapes inside quotes), then one round of
 * percent-decoding; the result must be valid UTF-8 (overlong forms refused). out must hold len + 1
 * bytes; *out_len gets the decoded length, out is NUL-terminated. Returns 0 or -EINVAL with a
 * reason in *why (a static string).
 */
int evd_ce_percent_decode(const char *in, size_t len, char *out, size_t *out_len, const char **why);

/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF). */
bool evd_ce_utf8_valid(const char *s, size_t len);

/* ---- JetStream storage: NATS binding binary mode ---- */

/*
 * Header keys and values for natsMsgHeader_Set(), as parallel arrays of C strings: "ce-<name>"
 * for every attribute (datacontenttype included) and extension, each value percent-encoded;
 * then "Nats-Msg-Id". Strings live in the event's arena (valid until evd_ce_free).
 */
struct evd_ce_nats_headers {
	const char *key[EVD_CE_NATTRS + EVD_CE_MAX_EXTENSIONS + 1];
	const char *value[EVD_CE_NATTRS + EVD_CE_MAX_EXTENSIONS + 1];
	size_t n;
};
void evd_ce_to_nats_headers(struct evd_cloudevent *ev, struct evd_ce_nats_headers *out);

/* 32 lowercase hex chars (first 128 bits of SHA-256(source "\0" id)) + NUL into out[33]. */
void evd_ce_nats_msg_id(const char *source, size_t source_len, const char *id, size_t id_len,
			char out[33]);
/*
 * The same over (tag, source, id): for a second copy of an event that must be stored besides the
 * first (the legacy API's prefixed copy, whose source is "kyma" for every application). Any
 * thread.
 */
void evd_ce_nats_msg_id_tagged(const char *tag, size_t tag_len, const char *source,
			       size_t source_len, const char *id, size_t id_len, char out[33]);

/*
 * The reverse, for the dispatcher: keys/values as read from a NATS message (natsMsgHeader_Keys /
 * _Get; a key given twice keeps the first value). ce-* keys case-insensitively; other keys are
 * ignored except a Content-Type starting with "application/cloudevents", which means structured
 * mode: the payload is then decoded as structured JSON. Data points into payload (zero copy).
 */
int evd_ce_decode_nats(const char *const *keys, const char *const *values, size_t n,
		       const char *payload, size_t payload_len, struct evd_cloudevent *ev,
		       struct evd_buf *err);

/* ---- Encoding for receivers (event_encode.c) ---- */

/*
 * Tracing context that travels as transport headers, not as attributes (Kyma's EPP and dispatcher,
 * reference §6): the publish side turns these request headers into extensions, the dispatcher
 * turns the extensions back into sink request headers. header is as sent (compare
 * case-insensitively), ext the extension name.
 */
struct evd_ce_tracing {
	const char *header;
	size_t header_len;
	const char *ext;
	size_t ext_len;
};
extern const struct evd_ce_tracing evd_ce_tracing[];
extern const size_t evd_ce_ntracing;
/* The entry whose extension is name, or NULL. */
const struct evd_ce_tracing *evd_ce_tracing_by_ext(const char *name, size_t len);

/* True when data is exactly one JSON value (RFC 8259, strict), whitespace around it allowed. */
bool evd_ce_data_is_json_value(const char *data, size_t len);

/* Leave the tracing extensions out (they travel as headers). */
#define EVD_CE_ENCODE_NO_TRACING 1u
/*
 * Appends ev as one application/cloudevents+json object: attributes and extensions as JSON
 * strings (their canonical strings), then data byte-exact: JSON-formatted content (a JSON
 * datacontenttype, or none) that is one JSON value is written as it is; other valid UTF-8 text as
 * a JSON string; anything else as data_base64.
 */
void evd_ce_encode_structured(const struct evd_cloudevent *ev, unsigned flags, struct evd_buf *out);

#endif
