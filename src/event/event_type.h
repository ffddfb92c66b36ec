/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kyma's event-type naming (reference/kyma-eventing.md §3), used by the publish path (which
 * subject an event goes to) and by the subscription registry (which subject a consumer filters
 * on), so both always agree.
 *
 * - standard: source cleaned of [\s.>*\/\\], type cleaned of [\s>*\/\\];
 *   subject "<prefix>.<cleanSource>.<cleanType>" (prefix = stream.subject_prefix, "kyma").
 * - exact: type verbatim; subject "<prefix>.<type>".
 * - prefixed ("sap.kyma.custom..." types at /publish, and v1alpha1 subscriptions): the v1alpha1
 *   cleaner of §3.4; subject "<prefix>.<cleaned>".
 *
 * Pure functions, any thread. Returned strings are malloc'd and owned by the caller.
 */
#ifndef EVD_EVENT_TYPE_H
#define EVD_EVENT_TYPE_H

#include <stdbool.h>
#include <stddef.h>

/* CleanSource of §3.2: removes whitespace, '.', '>', '*', '/', '\'. */
char *evd_event_clean_source(const char *source);
/* CleanEventType of §3.2: removes whitespace, '>', '*', '/', '\' (dots kept). */
char *evd_event_clean_type(const char *type);

/*
 * The v1alpha1 cleaner of §3.4 for a type starting with prefix (e.g. "sap.kyma.custom").
 * Returns 0 and the cleaned type in *out, or -EINVAL with Kyma's message in *err
 * ("failed to parse event-type=<t> with prefix=<p>: invalid format" / "prefix not found").
 */
int evd_event_clean_prefixed(const char *type, const char *prefix, char **out, char **err);

/* True when type starts with prefix (and prefix is non-empty). */
bool evd_event_type_has_prefix(const char *type, const char *prefix);

/*
 * The subject for a published event, as the Event Publisher Proxy computes it:
 * - type with the prefix: subject "<subject_prefix>.<cleaned>", *clean_type = cleaned;
 * - otherwise: subject "<subject_prefix>.<cleanSource>.<cleanType>", *clean_type = cleanType.
 * A cleaned source or type that leaves an empty segment (e.g. "a..b", source "///") is -EINVAL
 * with the reason in *err ("event type cannot have empty segments after cleaning: <type>").
 * Callers that only need some outputs pass NULL for the others.
 */
int evd_event_subject_for_publish(const char *source, const char *type, const char *type_prefix,
				  const char *subject_prefix, char **subject, char **clean_type,
				  char **err);

/* The subject a subscription's type maps to: standard (cleaned with source) or exact. */
char *evd_event_subject_standard(const char *subject_prefix, const char *source, const char *type);
char *evd_event_subject_exact(const char *subject_prefix, const char *type);

#endif
