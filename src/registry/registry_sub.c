/* SPDX-License-Identifier: Apache-2.0 */
#include "registry/registry_sub.h"
#include "registry/registry_check.h"
#include "util/util_mem.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct evd_subscription *evd_subscription_new(void)
{
	struct evd_subscription *s = evd_xcalloc(1, sizeof(*s));
	s->refs = 1;
	s->max_in_flight = EVD_SUB_DEFAULT_MAX_IN_FLIGHT;
	return s;
}

struct evd_subscription *evd_subscription_ref(struct evd_subscription *s)
{
	s->refs++;
	return s;
}

void evd_subscription_free(struct evd_subscription *s)
{
	if (!s || --s->refs > 0)
		return;
	free(s->ns);
	free(s->name);
	free(s->file);
	free(s->api_version);
	free(s->id);
	free(s->source);
	for (size_t i = 0; i < s->ntypes; i++) {
		free(s->types[i].original);
		free(s->types[i].clean);
		free(s->types[i].subject);
		free(s->types[i].consumer);
		free(s->types[i].path);
	}
	free(s->types);
	evd_registry_sink_clear(&s->sink);
	for (size_t i = 0; i < s->nconfig; i++) {
		free(s->config[i].key);
		free(s->config[i].value);
	}
	free(s->config);
	evd_diag_free(&s->warnings);
	cJSON_Delete(s->spec_json);
	cJSON_Delete(s->labels_json);
	cJSON_Delete(s->annotations_json);
	free(s);
}

const char *evd_subscription_config_get(const struct evd_subscription *s, const char *key)
{
	for (size_t i = 0; i < s->nconfig; i++)
		if (strcmp(s->config[i].key, key) == 0)
			return s->config[i].value;
	return NULL;
}

void evd_subscription_key(const struct evd_subscription *s, char *out, size_t size)
{
	snprintf(out, size, "%s/%s", s->ns, s->name);
}

int evd_subscription_consumer_name(const char *ns, const char *name, const char *subject,
				   char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int rc = -EIO;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (!ctx)
		return -ENOMEM;
	/* The description Kyma gives the consumer is the hashed string itself. */
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, ns, strlen(ns)) != 1 || EVP_DigestUpdate(ctx, "/", 1) != 1 ||
	    EVP_DigestUpdate(ctx, name, strlen(name)) != 1 || EVP_DigestUpdate(ctx, "/", 1) != 1 ||
	    EVP_DigestUpdate(ctx, subject, strlen(subject)) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen * 2 < EVD_SUB_CONSUMER_NAME_LEN)
		goto fail;
	for (size_t i = 0; i < EVD_SUB_CONSUMER_NAME_LEN / 2; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0xf];
	}
	out[EVD_SUB_CONSUMER_NAME_LEN] = '\0';
	rc = 0;
fail:
	EVP_MD_CTX_free(ctx);
	return rc;
}

const char *evd_type_matching_name(enum evd_type_matching m)
{
	return m == EVD_TYPE_MATCHING_EXACT ? "exact" : "standard";
}

const char *evd_content_mode_name(enum evd_content_mode m)
{
	return m == EVD_CONTENT_STRUCTURED ? "STRUCTURED" : "BINARY";
}
