/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Encoding an event for a receiver: the structured mode of the JSON event format (the dispatcher's
 * contentMode STRUCTURED, `eventingd publish --structured`), and the tracing extensions that travel
 * as transport headers (the publish side reads them from request headers, the dispatcher writes
 * them as sink request headers: one table for both).
 *
 * data stays byte-exact (json-format.md §3.1): JSON-formatted content is written as the JSON value
 * it is, never re-printed (cJSON would turn a large integer into a double); other text becomes a
 * JSON string; bytes that are no text become data_base64.
 */
#include "event/event_ce.h"
#include "event/event_internal.h"

#include <limits.h>
#include <string.h>

#include <openssl/evp.h>

#include "util/util_buf.h"

/*
 * Kyma's EPP reads these request headers into extensions (pkg/tracing/helpers.go) and its
 * dispatcher sends the extensions back as these headers (EM:pkg/tracing/tracing.go), plus
 * tracestate: W3C Trace Context travels as the pair.
 */
const struct evd_ce_tracing evd_ce_tracing[] = {
	{ "traceparent", 11, "traceparent", 11 },
	{ "tracestate", 10, "tracestate", 10 },
	{ "X-B3-TraceId", 12, "b3traceid", 9 },
	{ "X-B3-ParentSpanId", 17, "b3parentspanid", 14 },
	{ "X-B3-SpanId", 11, "b3spanid", 8 },
	{ "X-B3-Sampled", 12, "b3sampled", 9 },
	{ "X-B3-Flags", 10, "b3flags", 7 },
};
const size_t evd_ce_ntracing = sizeof(evd_ce_tracing) / sizeof(evd_ce_tracing[0]);

const struct evd_ce_tracing *evd_ce_tracing_by_ext(const char *name, size_t len)
{
	if (len < 7 || (name[0] != 't' && name[0] != 'b'))
		return NULL;
	for (size_t i = 0; i < evd_ce_ntracing; i++)
		if (evd_ce_tracing[i].ext_len == len && memcmp(evd_ce_tracing[i].ext, name, len) == 0)
			return &evd_ce_tracing[i];
	return NULL;
}

/* A JSON string literal of s (valid UTF-8 expected: other bytes are copied as they are). */
static void json_string(struct evd_buf *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	evd_buf_reserve(out, len + 2);
	evd_buf_append_char(out, '"');
	size_t run = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		evd_buf_append(out, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"': evd_buf_append(out, "\\\"", 2); break;
		case '\\': evd_buf_append(out, "\\\\", 2); break;
		case '\n': evd_buf_append(out, "\\n", 2); break;
		case '\r': evd_buf_append(out, "\\r", 2); break;
		case '\t': evd_buf_append(out, "\\t", 2); break;
		default: {
			char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			evd_buf_append(out, u, 6);
		}
		}
	}
	evd_buf_append(out, s + run, len - run);
	evd_buf_append_char(out, '"');
}

bool evd_ce_data_is_json_value(const char *data, size_t len)
{
	const char *p = data, *end = data + len, *why;
	struct evd_json_span span;
	if (!len || memchr(data, '\0', len))
		return false;
	p = evd_json_skip_ws(p, end);
	if (p == end || evd_json_scan_value(&p, end, &span, &why) < 0)
		return false;
	return evd_json_skip_ws(p, end) == end;
}

void evd_ce_encode_structured(const struct evd_cloudevent *ev, unsigned flags, struct evd_buf *out)
{
	bool first = true;

	evd_buf_append_char(out, '{');
	for (int a = 0; a < EVD_CE_NATTRS; a++) {
		if (!ev->attr[a])
			continue;
		if (!first)
			evd_buf_append_char(out, ',');
		first = false;
		json_string(out, evd_ce_attr_name((enum evd_ce_attr)a), strlen(evd_ce_attr_name((enum evd_ce_attr)a)));
		evd_buf_append_char(out, ':');
		json_string(out, ev->attr[a], ev->attr_len[a]);
	}
	for (unsigned i = 0; i < ev->n_ext; i++) {
		const struct evd_ce_ext *x = &ev->ext[i];
		if ((flags & EVD_CE_ENCODE_NO_TRACING) && evd_ce_tracing_by_ext(x->name, x->name_len))
			continue;
		if (!first)
			evd_buf_append_char(out, ',');
		first = false;
		json_string(out, x->name, x->name_len);
		evd_buf_append_char(out, ':');
		json_string(out, x->value, x->value_len);
	}
	if (ev->data) {
		const char *ct = ev->attr[EVD_CE_DATACONTENTTYPE];
		/* json-format.md §3.1: no datacontenttype means JSON ("application/json" implied). */
		bool json_ct = !ct || evd_ce_media_type_is_json(ct, ev->attr_len[EVD_CE_DATACONTENTTYPE]);
		if (!first)
			evd_buf_append_char(out, ',');
		if (json_ct && evd_ce_data_is_json_value(ev->data, ev->data_len)) {
			/* The value itself, without the whitespace around it. */
			const char *b = evd_json_skip_ws(ev->data, ev->data + ev->data_len);
			size_t n = ev->data_len - (size_t)(b - ev->data);
			while (n && (b[n - 1] == ' ' || b[n - 1] == '\t' || b[n - 1] == '\n' ||
				     b[n - 1] == '\r'))
				n--;
			evd_buf_append(out, "\"data\":", 7);
			evd_buf_append(out, b, n);
		} else if (!memchr(ev->data, '\0', ev->data_len) &&
			   evd_ce_utf8_valid(ev->data, ev->data_len)) {
			evd_buf_append(out, "\"data\":", 7);
			json_string(out, ev->data, ev->data_len);
		} else if (ev->data_len <= (size_t)INT_MAX / 4 * 3) { /* EVP_EncodeBlock counts in int */
			evd_buf_append(out, "\"data_base64\":\"", 15);
			size_t n = 4 * ((ev->data_len + 2) / 3);
			evd_buf_reserve(out, n + 2);
			EVP_EncodeBlock((unsigned char *)out->data + out->len,
					(const unsigned char *)ev->data, (int)ev->data_len);
			out->len += n;
			out->data[out->len] = '\0';
			evd_buf_append_char(out, '"');
		}
	}
	evd_buf_append_char(out, '}');
}
