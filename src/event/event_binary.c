/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Binary content mode: attributes in ce-* headers, data in the body. Shared by the HTTP binding
 * (§3.1) and the NATS binding 1.0.3 (§3.1), which define header names and values identically:
 * "all CloudEvents context attributes, including extensions, MUST be mapped to HTTP headers with
 * the same name as the attribute name but prefixed with ce-" and "header names are
 * case-insensitive". They differ in one point: in HTTP, datacontenttype travels as
 * Content-Type ("a ce-datacontenttype HTTP header MUST NOT also be present"), in NATS as
 * ce-datacontenttype.
 */
#include "event/event_ce.h"
#include "event/event_internal.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "util/util_buf.h"

int evd_ce_add_header(struct evd_cloudevent *ev, const char *name, size_t nlen, const char *value,
		      size_t vlen, struct evd_buf *err)
{
	const char *why;
	char *lower = evd_ce_alloc(ev, nlen);
	for (size_t i = 0; i < nlen; i++) {
		char c = name[i];
		lower[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	if (!evd_ce_valid_name(lower, nlen) || strcmp(lower, "data") == 0) {
		if (err)
			evd_buf_printf(err, "ce-%.*s: invalid attribute name (must be lower-case letters "
					    "a-z and digits 0-9, not \"data\")", (int)nlen, name);
		return -EINVAL;
	}
	char *val = evd_ce_alloc(ev, vlen);
	size_t len;
	if (evd_ce_percent_decode(value, vlen, val, &len, &why) < 0) {
		if (err)
			evd_buf_printf(err, "ce-%s: %s", lower, why);
		return -EINVAL;
	}
	int a = evd_ce_attr_lookup(lower, nlen);
	if (a >= 0) {
		if (ev->attr[a])
			goto dup;
		ev->attr[a] = val;
		ev->attr_len[a] = len;
		return 0;
	}
	for (unsigned i = 0; i < ev->n_ext; i++)
		if (ev->ext[i].name_len == nlen && memcmp(ev->ext[i].name, lower, nlen) == 0)
			goto dup;
	if (ev->n_ext == EVD_CE_MAX_EXTENSIONS) {
		if (err)
			evd_buf_printf(err, "ce-%s: too many extension attributes (at most %d)", lower,
				       EVD_CE_MAX_EXTENSIONS);
		return -EINVAL;
	}
	struct evd_ce_ext *x = &ev->ext[ev->n_ext++];
	x->name = lower;
	x->name_len = nlen;
	x->value = val;
	x->value_len = len;
	return 0;
dup:
	if (err)
		evd_buf_printf(err, "ce-%s: header given more than once", lower);
	return -EINVAL;
}

static bool name_is(const char *n, size_t nl, const char *lit)
{
	return strlen(lit) == nl && strncasecmp(n, lit, nl) == 0;
}

int evd_ce_decode_binary(const struct evd_header *headers, size_t nheaders, const char *body,
			 size_t body_len, struct evd_cloudevent *ev, struct evd_buf *err)
{
	const struct evd_header *ct = NULL;
	int rc;

	evd_ce_init(ev);
	for (size_t i = 0; i < nheaders; i++) {
		const struct evd_header *h = &headers[i];
		if (h->name_len > 3 && strncasecmp(h->name, "ce-", 3) == 0) {
			rc = evd_ce_add_header(ev, h->name + 3, h->name_len - 3, h->value, h->value_len, err);
			if (rc < 0)
				goto fail;
		} else if (name_is(h->name, h->name_len, "content-type") && h->value_len && !ct) {
			ct = h;
		}
	}
	if (!ev->attr[EVD_CE_SPECVERSION]) {
		if (err)
			evd_buf_append_str(err, "not a CloudEvent: no ce-specversion header, and the "
						"Content-Type is not application/cloudevents+json");
		rc = -ENOMSG;
		goto fail;
	}
	if (ct) {
		if (ev->attr[EVD_CE_DATACONTENTTYPE]) {
			if (err)
				evd_buf_append_str(err, "ce-datacontenttype: MUST NOT be present together "
							"with Content-Type in binary mode");
			rc = -EINVAL;
			goto fail;
		}
		ev->attr[EVD_CE_DATACONTENTTYPE] = evd_ce_strdup(ev, ct->value, ct->value_len);
		ev->attr_len[EVD_CE_DATACONTENTTYPE] = ct->value_len;
	}
	if ((rc = evd_ce_validate(ev, err)) < 0)
		goto fail;
	ev->data = body_len ? body : NULL;
	ev->data_len = body_len;
	return 0;
fail:
	evd_ce_free(ev);
	return rc;
}
