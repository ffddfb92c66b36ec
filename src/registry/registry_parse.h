/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reads subscription manifests: one YAML file holding one or more Kyma Subscription documents
 * (apiVersion eventing.kyma-project.io/v1alpha2, or v1alpha1 converted as Kyma converted it),
 * validated with Kyma's rules and messages (reference/kyma-eventing.md §4.2) plus eventingd's
 * own (man 5 eventingd-subscription). Every problem is reported as FILE:LINE:COL with the field
 * path as key ("spec.types[1]: must have minimum 2 segments"), not only the first.
 *
 * A file is all or nothing: if any document has an error, no subscription of the file is
 * returned, so the registry can keep the file's previous version active.
 *
 * Pure apart from reading the file; any thread. Results are owned by the caller.
 */
#ifndef EVD_REGISTRY_PARSE_H
#define EVD_REGISTRY_PARSE_H

#include <stddef.h>

#include "registry/registry_sub.h"
#include "util/util_diag.h"

struct evd_registry_opts {
	const char *subject_prefix;    /* stream.subject_prefix: "kyma" */
	const char *event_type_prefix; /* publish.event_type_prefix: the v1alpha1 type cleaner's */
};

#define EVD_REGISTRY_OPTS_DEFAULT { "kyma", "sap.kyma.custom" }

/* The prefix Kyma refuses in standard types; hard-coded there too (validator/spec.go). */
#define EVD_REGISTRY_KYMA_TYPE_PREFIX "sap.kyma.custom"

/* A list of subscriptions; each item holds one reference. */
struct evd_sub_list {
	struct evd_subscription **items;
	size_t count;
};

#define EVD_SUB_LIST_INIT { NULL, 0 }

/* Appends s, taking over the caller's reference. */
void evd_sub_list_push(struct evd_sub_list *l, struct evd_subscription *s);
/* Drops every reference and empties the list. */
void evd_sub_list_clear(struct evd_sub_list *l);

/*
 * Parses every document of a file. Errors and warnings go to diag (the file name in them is
 * path as given). Returns 0 with the subscriptions appended to out (in document order; empty
 * documents are skipped), -EINVAL when the file has an error (out unchanged), or -errno when it
 * cannot be read.
 */
int evd_registry_parse_file(const char *path, const struct evd_registry_opts *opts,
			    struct evd_sub_list *out, struct evd_diag *diag);
int evd_registry_parse_string(const char *name, const char *text, size_t len,
			      const struct evd_registry_opts *opts, struct evd_sub_list *out,
			      struct evd_diag *diag);

#endif
