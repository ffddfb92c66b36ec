/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Subscription manifests through the registry's parser (evd_registry_parse_string), not only the
 * YAML layer: any text is accepted or refused with at least one error and nothing returned (a
 * file is all or nothing). What it accepts is what the registry turns into JetStream consumers,
 * so each accepted subscription is checked for what the registry relies on:
 *
 * - namespace and name non-empty, at least one type, maxInFlightMessages >= 1;
 * - every type has a clean type, a subject nats-server accepts as a consumer filter (non-empty
 *   tokens, no whitespace; with standard matching no wildcard at all) and, unless it shares an
 *   earlier type's subject (same_consumer_as, which must then point at that type), the consumer
 *   name sha256("<ns>/<name>/<subject>")[:32], distinct from the other owners';
 * - v1alpha2 subjects are the ones the publish path builds (evd_event_subject_standard/_exact);
 * - the sink is http or https with a port and a path starting with '/'.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event_type.h"
#include "fuzz_common.h"
#include "registry/registry_parse.h"
#include "registry/registry_sub.h"
#include "util/util_diag.h"

static bool subject_ok(const char *s, bool wildcards_allowed)
{
	if (!*s)
		return false;
	const char *tok = s;
	for (const char *p = s;; p++) {
		if (*p == '.' || *p == '\0') {
			size_t len = (size_t)(p - tok);
			if (len == 0)
				return false;
			if (!wildcards_allowed && len == 1 && (*tok == '*' || *tok == '>'))
				return false;
			if (*p == '\0')
				return true;
			tok = p + 1;
		} else if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\f' || *p == '\r') {
			return false;
		}
	}
}

static void check_sub(const struct evd_subscription *s)
{
	FUZZ_ASSERT(s->ns && *s->ns && s->name && *s->name, "namespace/name empty");
	FUZZ_ASSERT(s->ntypes >= 1 && s->types, "%s/%s: no types", s->ns, s->name);
	FUZZ_ASSERT(s->max_in_flight >= 1, "%s/%s: maxInFlightMessages %d", s->ns, s->name,
		    s->max_in_flight);
	FUZZ_ASSERT(s->sink.scheme && ((strcmp(s->sink.scheme, "http") == 0 && !s->sink.tls) ||
					(strcmp(s->sink.scheme, "https") == 0 && s->sink.tls)),
		    "%s/%s: sink scheme", s->ns, s->name);
	FUZZ_ASSERT(s->sink.host && s->sink.port > 0 && s->sink.path && s->sink.path[0] == '/',
		    "%s/%s: sink \"%s\"", s->ns, s->name, s->sink.url ? s->sink.url : "");
	for (size_t i = 0; i < s->ntypes; i++) {
		const struct evd_sub_type *t = &s->types[i];
		FUZZ_ASSERT(t->original && t->clean && t->subject && t->consumer && t->path,
			    "%s/%s: type %zu incomplete", s->ns, s->name, i);
		/* Exact types with whitespace, '*' or '>' are refused; standard ones are cleaned. */
		FUZZ_ASSERT(subject_ok(t->subject, false), "%s/%s: subject \"%s\" of \"%s\"", s->ns,
			    s->name, t->subject, t->original);
		if (s->api == EVD_SUB_V1ALPHA2) {
			char *want = s->type_matching == EVD_TYPE_MATCHING_EXACT
					     ? evd_event_subject_exact("kyma", t->original)
					     : evd_event_subject_standard("kyma", s->source, t->original);
			FUZZ_ASSERT(strcmp(want, t->subject) == 0,
				    "%s/%s: subject \"%s\", the publish path's \"%s\"", s->ns, s->name,
				    t->subject, want);
			free(want);
		}
		char name[EVD_SUB_CONSUMER_NAME_LEN + 1];
		FUZZ_ASSERT(evd_subscription_consumer_name(s->ns, s->name, t->subject, name) == 0 &&
				    strcmp(name, t->consumer) == 0,
			    "%s/%s: consumer %s for \"%s\"", s->ns, s->name, t->consumer, t->subject);
		if (t->same_consumer_as >= 0) {
			FUZZ_ASSERT((size_t)t->same_consumer_as < i &&
					    s->types[t->same_consumer_as].same_consumer_as < 0 &&
					    strcmp(s->types[t->same_consumer_as].subject, t->subject) == 0,
				    "%s/%s: type %zu shares with %d", s->ns, s->name, i,
				    t->same_consumer_as);
		} else {
			FUZZ_ASSERT(t->same_consumer_as == -1, "same_consumer_as %d", t->same_consumer_as);
			for (size_t j = 0; j < i; j++)
				FUZZ_ASSERT(strcmp(s->types[j].subject, t->subject) != 0,
					    "%s/%s: types %zu and %zu own one subject", s->ns, s->name, j, i);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct evd_registry_opts opts = EVD_REGISTRY_OPTS_DEFAULT;
	struct evd_sub_list l = EVD_SUB_LIST_INIT;
	struct evd_diag diag = EVD_DIAG_INIT;
	int rc = evd_registry_parse_string("fuzz.yaml", (const char *)data, size, &opts, &l, &diag);
	if (rc == 0) {
		FUZZ_ASSERT(diag.errors == 0, "accepted with %zu errors", diag.errors);
		for (size_t i = 0; i < l.count; i++)
			check_sub(l.items[i]);
		/* One consumer per subscription and subject: two subscriptions of a file never
		 * share one (they would fight over its configuration). */
		for (size_t i = 0; i < l.count; i++)
			for (size_t j = 0; j < i; j++)
				FUZZ_ASSERT(strcmp(l.items[i]->ns, l.items[j]->ns) != 0 ||
						    strcmp(l.items[i]->name, l.items[j]->name) != 0,
					    "%s/%s twice in one file", l.items[i]->ns, l.items[i]->name);
	} else {
		FUZZ_ASSERT(rc == -EINVAL && diag.errors > 0 && l.count == 0,
			    "refused (%d) with %zu errors and %zu subscriptions", rc, diag.errors,
			    l.count);
	}
	struct evd_buf out = EVD_BUF_INIT;
	evd_diag_format(&diag, &out);
	evd_buf_free(&out);
	evd_diag_free(&diag);
	evd_sub_list_clear(&l);
	return 0;
}
