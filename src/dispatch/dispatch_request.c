/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A sink request from a stored event (DESIGN.md §6 "Sending"). Binary mode passes the stored
 * ce-* headers through byte for byte: they were percent-encoded at publish exactly as the HTTP
 * binding (§3.1.3.2) wants, so nothing is decoded and re-encoded per event. Only what becomes
 * another header is decoded: ce-datacontenttype (Content-Type carries the media type itself,
 * HTTP binding §3.1.1) and the tracing extensions (Kyma's dispatcher sends them as traceparent,
 * X-B3-* ... and not as ce-* headers, reference §6).
 */
#include <string.h>
#include <strings.h>

#include "dispatch/dispatch_internal.h"

static void set(struct evd_header *h, const char *name, size_t nlen, const char *value, size_t vlen)
{
	h->name = name;
	h->name_len = nlen;
	h->value = value;
	h->value_len = vlen;
}

/* A header value: no control characters but tab (the decoded form may have any). */
static bool plain_value(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

/* What a ce-* key becomes: 0 passed through, 1 Content-Type, 2 a tracing header (*tr). */
static int kind_of(const char *name, size_t nl, const struct evd_ce_tracing **tr)
{
	*tr = NULL;
	if (nl == 15 && strncasecmp(name, "datacontenttype", 15) == 0)
		return 1;
	/* Extension names are lower case; a writer's other casing is matched too. */
	char lower[32];
	if (nl >= sizeof(lower))
		return 0;
	for (size_t j = 0; j < nl; j++)
		lower[j] = (char)((name[j] >= 'A' && name[j] <= 'Z') ? name[j] + 32 : name[j]);
	*tr = evd_ce_tracing_by_ext(lower, nl);
	return *tr ? 2 : 0;
}

size_t evd_dispatch_build_binary(const char *const *keys, const char *const *values, size_t n,
				 struct evd_header *out, struct evd_buf *scratch)
{
	size_t nh = 0, need = 0;
	const struct evd_ce_tracing *tr;

	/* Decoded values only shrink: one reservation for those decoded keeps every pointer into
	 * scratch valid (and scratch small: most values pass through). */
	for (size_t i = 0; i < n; i++) {
		size_t kl = strlen(keys[i]);
		if (kl > 3 && strncasecmp(keys[i], "ce-", 3) == 0 && kind_of(keys[i] + 3, kl - 3, &tr))
			need += strlen(values[i]) + 1;
	}
	evd_buf_reset(scratch);
	if (need)
		evd_buf_reserve(scratch, need + 1);

	for (size_t i = 0; i < n; i++) {
		const char *k = keys[i], *v = values[i];
		size_t kl = strlen(k), vl = strlen(v);
		if (kl <= 3 || strncasecmp(k, "ce-", 3) != 0)
			continue; /* Nats-Msg-Id and whatever else a writer added */
		int kind = kind_of(k + 3, kl - 3, &tr);
		if (!kind) {
			set(&out[nh++], k, kl, v, vl);
			continue;
		}
		char *dec = scratch->data + scratch->len;
		size_t dl = 0;
		const char *why;
		const char *val = v;
		size_t val_len = vl;
		if (evd_ce_percent_decode(v, vl, dec, &dl, &why) == 0 && plain_value(dec, dl)) {
			scratch->len += dl + 1;
			val = dec;
			val_len = dl;
		}
		if (kind == 1)
			set(&out[nh++], "Content-Type", 12, val, val_len);
		else
			set(&out[nh++], tr->header, tr->header_len, val, val_len);
	}
	return nh;
}

size_t evd_dispatch_build_structured(const struct evd_cloudevent *ev, struct evd_header *out,
				     struct evd_buf *body)
{
	static const char ct[] = "application/cloudevents+json; charset=utf-8";
	size_t nh = 0;

	evd_buf_reset(body);
	evd_ce_encode_structured(ev, EVD_CE_ENCODE_NO_TRACING, body);
	set(&out[nh++], "Content-Type", 12, ct, sizeof(ct) - 1);
	for (unsigned i = 0; i < ev->n_ext && nh < EVD_DISPATCH_STRUCTURED_HEADERS; i++) {
		const struct evd_ce_ext *x = &ev->ext[i];
		const struct evd_ce_tracing *tr = evd_ce_tracing_by_ext(x->name, x->name_len);
		/* Validated Strings: no control characters, so a plain header value. */
		if (tr)
			set(&out[nh++], tr->header, tr->header_len, x->value, x->value_len);
	}
	return nh;
}
