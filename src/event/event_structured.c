/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Structured and batched mode: the CloudEvents JSON event format (format/json-format.md §2-§4).
 *
 * - Attributes: "Unset attributes MAY be encoded to the JSON value of null. When decoding
 *   attributes and a null value is encountered, it MUST be treated as the equivalent of unset."
 *   The spec's attributes are JSON strings. Extensions may use every type of the mapping table:
 *   string, boolean, and number with "only the integer component optionally prefixed with a
 *   minus sign" (Integer, 32-bit); each is kept as its canonical string.
 * - data (§3.1.2): "If the datacontenttype declares the data to contain JSON-formatted content
 *   ... the data member MUST be treated directly as a JSON value"; otherwise it "SHOULD be
 *   treated as an encoded content string". data_base64 is Base64 (RFC 4648), decoded with
 *   OpenSSL. "the presence of the data and data_base64 members is mutually exclusive".
 */
#include "event/event_ce.h"
#include "event/event_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "util/util_buf.h"
#include "util/util_mem.h"

/* Every spec attribute, data, data_base64, 64 extensions, and room for null members. */
#define MAX_MEMBERS 128

static int errf(struct evd_buf *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int errf(struct evd_buf *err, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		evd_buf_vprintf(err, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Decodes a string span into the event's arena. */
static int decode_string(struct evd_cloudevent *ev, const struct evd_json_span *s, const char **out,
			 size_t *out_len, const char **why)
{
	char *buf = evd_ce_alloc(ev, s->len);
	int rc = evd_json_string_decode(s, buf, out_len, why);
	*out = buf;
	return rc;
}

/*
 * Integer per the spec's type system: -?(0|[1-9][0-9]*) within 32 bits. That form is already the
 * canonical string, except "-0", which becomes "0". Returns the canonical length or 0 if invalid.
 */
static size_t canonical_integer(const struct evd_json_span *s, const char **out)
{
	const char *p = s->p, *end = s->p + s->len;
	bool neg = p < end && *p == '-';
	const char *digits = p + neg;
	size_t nd = (size_t)(end - digits);
	if (nd == 0 || nd > 10 || (*digits == '0' && nd > 1))
		return 0;
	long long v = 0;
	for (const char *d = digits; d < end; d++) {
		if (*d < '0' || *d > '9')
			return 0;
		v = v * 10 + (*d - '0');
	}
	if (v > 2147483647LL + neg)
		return 0;
	if (v == 0) {
		*out = "0";
		return 1;
	}
	*out = s->p;
	return s->len;
}

/* RFC 4648 §4 base64, strict: padded, no whitespace, no characters outside the alphabet. */
static int base64_decode(struct evd_cloudevent *ev, const char *in, size_t len, struct evd_buf *err)
{
	size_t pad = 0;
	if (len % 4)
		goto bad;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			     c == '+' || c == '/';
		if (c == '=' && i >= len - 2) {
			pad++;
			continue;
		}
		if (!alpha || pad)
			goto bad;
	}
	char *out = evd_ce_alloc(ev, len / 4 * 3);
	if (len && len > (size_t)2147483647)
		goto bad;
	/* EVP_DecodeBlock writes len/4*3 bytes, counting the padding as zero bytes. */
	int n = len ? EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in, (int)len) : 0;
	if (n < 0)
		goto bad;
	ev->data = out;
	ev->data_len = (size_t)n - pad;
	return 0;
bad:
	return errf(err, "%s: %s", "data_base64", "not valid base64 (RFC 4648)");
}

static bool key_is(const char *k, size_t kl, const char *lit)
{
	return strlen(lit) == kl && memcmp(k, lit, kl) == 0;
}

/*
 * Decodes the members of the object at *pp (pointing at '{'), moving *pp past it. Attributes are
 * set as found; data handling waits until datacontenttype is known.
 */
static int walk_object(const char **pp, const char *end, struct evd_cloudevent *ev, struct evd_buf *err)
{
	const char *keys[MAX_MEMBERS];
	size_t klens[MAX_MEMBERS], nkeys = 0;
	struct evd_json_span data = { 0 }, data_b64 = { 0 };
	bool has_data = false, has_b64 = false;
	const char *p = *pp, *why;
	int rc;

	if (p >= end || *p != '{')
		return errf(err, "not a JSON object");
	p = evd_json_skip_ws(p + 1, end);
	if (p < end && *p == '}') {
		p++;
		goto members_done;
	}
	for (;;) {
		struct evd_json_span ks, vs;
		const char *key;
		size_t kl;
		if (p >= end || *p != '"')
			return errf(err, "invalid JSON: %s", p >= end ? "unexpected end of JSON" : "expected a member name");
		if ((rc = evd_json_scan_value(&p, end, &ks, &why)) < 0)
			return errf(err, "invalid JSON: %s", why);
		if ((rc = decode_string(ev, &ks, &key, &kl, &why)) < 0)
			return errf(err, "invalid JSON: %s", why);
		p = evd_json_skip_ws(p, end);
		if (p >= end || *p != ':')
			return errf(err, "invalid JSON: %s", p >= end ? "unexpected end of JSON" : "expected ':' after a member name");
		p = evd_json_skip_ws(p + 1, end);
		if ((rc = evd_json_scan_value(&p, end, &vs, &why)) < 0)
			return errf(err, "invalid JSON: %s", why);

		for (size_t i = 0; i < nkeys; i++)
			if (klens[i] == kl && memcmp(keys[i], key, kl) == 0)
				return errf(err, "%s: %s", key, "duplicate member in the JSON object");
		if (nkeys == MAX_MEMBERS)
			return errf(err, "too many members in the JSON object (at most %d)", MAX_MEMBERS);
		keys[nkeys] = key;
		klens[nkeys++] = kl;

		int a = evd_ce_attr_lookup(key, kl);
		if (key_is(key, kl, "data")) {
			data = vs;
			has_data = true;
		} else if (key_is(key, kl, "data_base64")) {
			if (vs.type != EVD_JSON_STRING && vs.type != EVD_JSON_NULL)
				return errf(err, "%s: MUST be a base64 string, not %s", "data_base64",
					    evd_json_type_name(vs.type));
			data_b64 = vs;
			has_b64 = vs.type == EVD_JSON_STRING;
		} else if (a >= 0) {
			if (vs.type == EVD_JSON_STRING) {
				if (decode_string(ev, &vs, &ev->attr[a], &ev->attr_len[a], &why) < 0)
					return errf(err, "%s: %s", key, why);
			} else if (vs.type != EVD_JSON_NULL) {
				return errf(err, "%s: MUST be a JSON string, not %s", key,
					    evd_json_type_name(vs.type));
			}
		} else {
			if (!evd_ce_valid_name(key, kl))
				return errf(err, "%s: %s", key,
					    "invalid attribute name (must be lower-case letters a-z and "
					    "digits 0-9)");
			const char *val;
			size_t vl;
			switch (vs.type) {
			case EVD_JSON_NULL:
				goto next;
			case EVD_JSON_STRING:
				if (decode_string(ev, &vs, &val, &vl, &why) < 0)
					return errf(err, "%s: %s", key, why);
				break;
			case EVD_JSON_TRUE:
				val = "true";
				vl = 4;
				break;
			case EVD_JSON_FALSE:
				val = "false";
				vl = 5;
				break;
			case EVD_JSON_NUMBER:
				if (!(vl = canonical_integer(&vs, &val)))
					return errf(err, "%s: %s", key,
						    "MUST be an Integer (a whole number from -2147483648 to "
						    "2147483647)");
				break;
			default:
				return errf(err, "%s: MUST be a string, integer or boolean, not %s", key,
					    evd_json_type_name(vs.type));
			}
			if (ev->n_ext == EVD_CE_MAX_EXTENSIONS) {
				if (err)
					evd_buf_printf(err, "%s: too many extension attributes (at most %d)",
						       key, EVD_CE_MAX_EXTENSIONS);
				return -EINVAL;
			}
			struct evd_ce_ext *x = &ev->ext[ev->n_ext++];
			x->name = key;
			x->name_len = kl;
			x->value = vs.type == EVD_JSON_STRING ? val : evd_ce_strdup(ev, val, vl);
			x->value_len = vl;
		}
next:
		p = evd_json_skip_ws(p, end);
		if (p < end && *p == ',') {
			p = evd_json_skip_ws(p + 1, end);
			continue;
		}
		if (p < end && *p == '}') {
			p++;
			break;
		}
		return errf(err, "invalid JSON: %s", p >= end ? "unexpected end of JSON" : "expected ',' or '}'");
	}
members_done:
	*pp = p;

	if (has_data && has_b64)
		return errf(err, "%s: %s", "data, data_base64", "MUST NOT both be present");
	if ((rc = evd_ce_validate(ev, err)) < 0)
		return rc;

	const char *ct = ev->attr[EVD_CE_DATACONTENTTYPE];
	size_t ctl = ev->attr_len[EVD_CE_DATACONTENTTYPE];
	if (has_b64) {
		const char *s;
		size_t sl;
		if (decode_string(ev, &data_b64, &s, &sl, &why) < 0)
			return errf(err, "%s: %s", "data_base64", why);
		if ((rc = base64_decode(ev, s, sl, err)) < 0)
			return rc;
	} else if (has_data && data.type != EVD_JSON_NULL) {
		if (data.type == EVD_JSON_STRING && ct && !evd_ce_media_type_is_json(ct, ctl)) {
			if (decode_string(ev, &data, &ev->data, &ev->data_len, &why) < 0)
				return errf(err, "%s: %s", "data", why);
		} else {
			/* JSON content (or a non-string under a non-JSON type): the raw text, zero copy. */
			ev->data = data.p;
			ev->data_len = data.len;
		}
		if (!ct) {
			ev->attr[EVD_CE_DATACONTENTTYPE] = "application/json";
			ev->attr_len[EVD_CE_DATACONTENTTYPE] = strlen("application/json");
		}
	}
	return 0;
}

int evd_ce_decode_object(const struct evd_json_span *obj, struct evd_cloudevent *ev, struct evd_buf *err)
{
	const char *p = obj->p;
	return walk_object(&p, obj->p + obj->len, ev, err);
}

int evd_ce_decode_structured(const char *json, size_t len, struct evd_cloudevent *ev,
			     struct evd_buf *err)
{
	const char *end = json + len, *p = evd_json_skip_ws(json, end);
	evd_ce_init(ev);
	int rc = walk_object(&p, end, ev, err);
	if (rc == 0 && evd_json_skip_ws(p, end) != end)
		rc = errf(err, "invalid JSON: data after the event object");
	if (rc < 0)
		evd_ce_free(ev);
	return rc;
}

void evd_ce_free_batch(struct evd_cloudevent *events, size_t count)
{
	if (!events)
		return;
	for (size_t i = 0; i < count; i++)
		evd_ce_free(&events[i]);
	free(events);
}

int evd_ce_decode_batch(const char *json, size_t len, size_t max_events,
			struct evd_cloudevent **events, size_t *count, struct evd_buf *err)
{
	const char *end = json + len, *p = evd_json_skip_ws(json, end);
	struct evd_cloudevent *evs = NULL;
	struct evd_buf why = EVD_BUF_INIT;
	size_t n = 0, cap = 0;
	int rc = -EINVAL;

	*events = NULL;
	*count = 0;
	if (p >= end || *p != '[') {
		errf(err, "a batch MUST be a JSON array of events");
		goto fail;
	}
	p = evd_json_skip_ws(p + 1, end);
	if (p < end && *p == ']') {
		p++;
		goto done;
	}
	for (;;) {
		if (max_events && n == max_events) {
			if (err)
				evd_buf_printf(err, "batch has more than %zu events", max_events);
			goto fail;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			evs = evd_xrealloc(evs, cap * sizeof(*evs));
		}
		evd_ce_init(&evs[n]);
		if (p >= end || *p != '{') {
			struct evd_json_span s;
			const char *w = "expected a value";
			if (p < end && evd_json_scan_value(&p, end, &s, &w) == 0)
				evd_buf_printf(&why, "MUST be a JSON object, not %s", evd_json_type_name(s.type));
			else
				evd_buf_printf(&why, "invalid JSON: %s", w);
			n++;
			goto bad_event;
		}
		rc = walk_object(&p, end, &evs[n++], &why);
		if (rc < 0)
			goto bad_event;
		p = evd_json_skip_ws(p, end);
		if (p < end && *p == ',') {
			p = evd_json_skip_ws(p + 1, end);
			continue;
		}
		if (p < end && *p == ']') {
			p++;
			break;
		}
		errf(err, "invalid JSON: %s", p >= end ? "unexpected end of JSON" : "expected ',' or ']' in the batch");
		goto fail;
	}
done:
	if (evd_json_skip_ws(p, end) != end) {
		errf(err, "invalid JSON: data after the batch array");
		goto fail;
	}
	*events = evs;
	*count = n;
	evd_buf_free(&why);
	return 0;
bad_event:
	if (err)
		evd_buf_printf(err, "event %zu: %s", n - 1, why.data ? why.data : "invalid");
fail:
	evd_ce_free_batch(evs, n);
	evd_buf_free(&why);
	return -EINVAL;
}
