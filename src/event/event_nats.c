/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How an event is stored in JetStream (DESIGN.md §4): the NATS protocol binding 1.0.3 in binary
 * content mode. "All CloudEvents attributes, including extensions, MUST be individually mapped
 * to and from distinct NATS message header", named ce-<attribute> ("datacontenttype maps to
 * ce-datacontenttype"), values percent-encoded as in the HTTP binding so that no value can
 * contain CR, LF or anything else outside printable ASCII and break the header block. The data
 * is the payload, untouched.
 *
 * Nats-Msg-Id makes JetStream store a retried publish once within the stream's duplicate window.
 * It is derived from source and id (the spec: "Consumers MAY assume that Events with identical
 * source and id are duplicates"), hashed so it stays short whatever their length.
 */
#include "event/event_ce.h"
#include "event/event_internal.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "util/util_buf.h"

static const char *const ce_keys[EVD_CE_NATTRS] = {
	[EVD_CE_SPECVERSION] = "ce-specversion",
	[EVD_CE_ID] = "ce-id",
	[EVD_CE_SOURCE] = "ce-source",
	[EVD_CE_TYPE] = "ce-type",
	[EVD_CE_DATACONTENTTYPE] = "ce-datacontenttype",
	[EVD_CE_DATASCHEMA] = "ce-dataschema",
	[EVD_CE_SUBJECT] = "ce-subject",
	[EVD_CE_TIME] = "ce-time",
};

/* The value itself when nothing needs encoding (the common case), else an encoded copy. */
static const char *encoded(struct evd_cloudevent *ev, const char *v, size_t len)
{
	size_t n = evd_ce_percent_encoded_len(v, len);
	if (n == len)
		return v;
	char *out = evd_ce_alloc(ev, n);
	evd_ce_percent_encode(v, len, out);
	return out;
}

void evd_ce_nats_msg_id(const char *source, size_t source_len, const char *id, size_t id_len,
			char out[33])
{
	evd_ce_nats_msg_id_tagged(NULL, 0, source, source_len, id, id_len, out);
}

void evd_ce_nats_msg_id_tagged(const char *tag, size_t tag_len, const char *source,
			       size_t source_len, const char *id, size_t id_len, char out[33])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	/* Only allocation failure can make these fail; an all-zero id is then still a valid id. */
	memset(md, 0, sizeof(md));
	if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
		/* "\1" cannot start a source (a URI-reference) hashed untagged: no collision. */
		if (tag) {
			EVP_DigestUpdate(ctx, "\1", 1);
			EVP_DigestUpdate(ctx, tag, tag_len);
			EVP_DigestUpdate(ctx, "", 1);
		}
		EVP_DigestUpdate(ctx, source, source_len);
		EVP_DigestUpdate(ctx, "", 1);
		EVP_DigestUpdate(ctx, id, id_len);
		EVP_DigestFinal_ex(ctx, md, &mdlen);
	}
	EVP_MD_CTX_free(ctx);
	for (int i = 0; i < 16; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[32] = '\0';
}

void evd_ce_to_nats_headers(struct evd_cloudevent *ev, struct evd_ce_nats_headers *out)
{
	size_t n = 0;
	for (int a = 0; a < EVD_CE_NATTRS; a++) {
		if (!ev->attr[a])
			continue;
		out->key[n] = ce_keys[a];
		out->value[n++] = encoded(ev, ev->attr[a], ev->attr_len[a]);
	}
	for (unsigned i = 0; i < ev->n_ext; i++) {
		const struct evd_ce_ext *x = &ev->ext[i];
		char *k = evd_ce_alloc(ev, 3 + x->name_len);
		memcpy(k, "ce-", 3);
		memcpy(k + 3, x->name, x->name_len);
		out->key[n] = k;
		out->value[n++] = encoded(ev, x->value, x->value_len);
	}
	char *id = evd_ce_alloc(ev, 32);
	evd_ce_nats_msg_id(ev->attr[EVD_CE_SOURCE] ? ev->attr[EVD_CE_SOURCE] : "",
			   ev->attr_len[EVD_CE_SOURCE], ev->attr[EVD_CE_ID] ? ev->attr[EVD_CE_ID] : "",
			   ev->attr_len[EVD_CE_ID], id);
	out->key[n] = "Nats-Msg-Id";
	out->value[n++] = id;
	out->n = n;
}

int evd_ce_decode_nats(const char *const *keys, const char *const *values, size_t n,
		       const char *payload, size_t payload_len, struct evd_cloudevent *ev,
		       struct evd_buf *err)
{
	int rc;

	/* NATS binding §3: "If ... the Content-Type header of application/cloudevents is present
	 * (matched case-insensitively), then the message is in structured mode". */
	for (size_t i = 0; i < n; i++) {
		if (strcasecmp(keys[i], "content-type") == 0 &&
		    strncasecmp(values[i], "application/cloudevents", 23) == 0)
			return evd_ce_decode_structured(payload, payload_len, ev, err);
	}

	evd_ce_init(ev);
	for (size_t i = 0; i < n; i++) {
		size_t kl = strlen(keys[i]);
		if (kl > 3 && strncasecmp(keys[i], "ce-", 3) == 0) {
			/* A key nats.c reports twice (differently cased) is one attribute given twice. */
			rc = evd_ce_add_header(ev, keys[i] + 3, kl - 3, values[i], strlen(values[i]), err);
			if (rc < 0)
				goto fail;
		}
	}
	if (!ev->attr[EVD_CE_SPECVERSION]) {
		if (err)
			evd_buf_append_str(err, "not a CloudEvent: no ce-specversion header");
		rc = -ENOMSG;
		goto fail;
	}
	if ((rc = evd_ce_validate(ev, err)) < 0)
		goto fail;
	ev->data = payload_len ? payload : NULL;
	ev->data_len = payload_len;
	return 0;
fail:
	evd_ce_free(ev);
	return rc;
}
