/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small string validators the subscription parser needs: Kubernetes object names, Go's
 * strconv.Atoi, the URI-reference check Kyma applies to spec.source (through the CloudEvents
 * SDK's url.Parse), and the sink URL parser. Internal to src/registry.
 *
 * Each check returns NULL when the string is fine, or a static English reason that the caller
 * appends to a diagnostic. Pure functions, any thread.
 */
#ifndef EVD_REGISTRY_CHECK_H
#define EVD_REGISTRY_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "registry/registry_sub.h"

/* Kubernetes' own messages (apimachinery validation.IsDNS1123Subdomain / IsDNS1123Label). */
#define EVD_DNS1123_SUBDOMAIN_MSG                                                               \
	"a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' " \
	"or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "    \
	"regex used for validation is "                                                        \
	"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
#define EVD_DNS1123_LABEL_MSG                                                                   \
	"a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "  \
	"and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', " \
	"regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"

/* metadata.name: at most 253 characters, dot-separated RFC 1123 labels. */
const char *evd_registry_check_dns1123_subdomain(const char *s);
/* metadata.namespace: one RFC 1123 label, at most 63 characters. */
const char *evd_registry_check_dns1123_label(const char *s);

/* Go's strconv.Atoi on a 64-bit platform: optional sign, decimal digits, no spaces. */
bool evd_registry_atoi(const char *s, long long *out);

/* Would Go's url.Parse accept s (the CloudEvents SDK's check of a source)? */
const char *evd_registry_check_uri_reference(const char *s);

/*
 * Parses an http:// or https:// URL with a host into out (fields malloc'd; on failure out is left
 * empty). The caller has already checked the scheme prefix.
 */
const char *evd_registry_parse_sink(const char *url, struct evd_sink *out);
void evd_registry_sink_clear(struct evd_sink *s);

/* The candidate nearest to key (edit distance <= 2, or equal ignoring case), or NULL. */
const char *evd_registry_nearest(const char *key, const char *const *candidates, size_t n);

#endif
