/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Subscription manifests to struct evd_subscription. The order of the checks and their messages
 * follow Kyma's validator (EM:internal/controller/eventing/subscription/validator/spec.go), so a
 * manifest Kyma refuses is refused here with the same words; where eventingd is stricter (a NATS
 * subject must stay valid, maxInFlightMessages must be positive) the message says why.
 */
#include "registry/registry_parse.h"
#include "registry/registry_check.h"
#include "config/config.h"
#include "config/config_yaml.h"
#include "event/event_type.h"
#include "util/util_buf.h"
#include "util/util_mem.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API_V1ALPHA2 "eventing.kyma-project.io/v1alpha2"
#define API_V1ALPHA1 "eventing.kyma-project.io/v1alpha1"
/* Field paths longer than this (only through absurd keys) are cut in diagnostics. */
#define PATH_MAX_LEN 256

enum field_use {
	FIELD_USED,      /* read by the code below */
	FIELD_IGNORED,   /* accepted, no effect, no warning (Kubernetes bookkeeping) */
	FIELD_EVENTMESH, /* Kyma EventMesh-only: accepted with a warning when set */
};

struct field {
	const char *name;
	enum field_use use;
};

static const struct field top_fields[] = {
	{ "apiVersion", FIELD_USED }, { "kind", FIELD_USED }, { "metadata", FIELD_USED },
	{ "spec", FIELD_USED },       { "status", FIELD_IGNORED },
};

/* What `kubectl get -o yaml` adds to metadata is accepted, so exported manifests load as-is. */
static const struct field metadata_fields[] = {
	{ "name", FIELD_USED },
	{ "namespace", FIELD_USED },
	{ "labels", FIELD_IGNORED },
	{ "annotations", FIELD_IGNORED },
	{ "uid", FIELD_IGNORED },
	{ "resourceVersion", FIELD_IGNORED },
	{ "generation", FIELD_IGNORED },
	{ "creationTimestamp", FIELD_IGNORED },
	{ "deletionTimestamp", FIELD_IGNORED },
	{ "deletionGracePeriodSeconds", FIELD_IGNORED },
	{ "managedFields", FIELD_IGNORED },
	{ "finalizers", FIELD_IGNORED },
	{ "ownerReferences", FIELD_IGNORED },
	{ "selfLink", FIELD_IGNORED },
	{ "generateName", FIELD_IGNORED },
};

static const struct field spec_v2_fields[] = {
	{ "id", FIELD_USED },
	{ "sink", FIELD_USED },
	{ "typeMatching", FIELD_USED },
	{ "source", FIELD_USED },
	{ "types", FIELD_USED },
	{ "config", FIELD_USED },
	{ "protocol", FIELD_EVENTMESH },
	{ "protocolsettings", FIELD_EVENTMESH },
	{ "exemptHandshake", FIELD_EVENTMESH },
	{ "qos", FIELD_EVENTMESH },
	{ "webhookAuth", FIELD_EVENTMESH },
};

static const struct field spec_v1_fields[] = {
	{ "id", FIELD_USED },
	{ "sink", FIELD_USED },
	{ "filter", FIELD_USED },
	{ "config", FIELD_USED },
	{ "protocol", FIELD_EVENTMESH },
	{ "protocolsettings", FIELD_USED }, /* contentMode is used; the rest warns below */
	{ "exemptHandshake", FIELD_EVENTMESH },
	{ "qos", FIELD_EVENTMESH },
	{ "webhookAuth", FIELD_EVENTMESH },
};

static const struct field protocolsettings_fields[] = {
	{ "contentMode", FIELD_USED },
	{ "exemptHandshake", FIELD_EVENTMESH },
	{ "qos", FIELD_EVENTMESH },
	{ "webhookAuth", FIELD_EVENTMESH },
};

static const struct field filter_fields[] = {
	{ "dialect", FIELD_IGNORED },
	{ "filters", FIELD_USED },
};

static const struct field filter_item_fields[] = {
	{ "eventSource", FIELD_USED },
	{ "eventType", FIELD_USED },
};

static const struct field filter_value_fields[] = {
	{ "type", FIELD_IGNORED },
	{ "property", FIELD_IGNORED },
	{ "value", FIELD_USED },
};

/*
 * spec.config keys (v1alpha2). Later delivery options are added here: keep this the one table.
 * Kyma's config is a map[string]string, so every value is read as a string.
 */
static const struct field config_v2_fields[] = {
	{ "maxInFlightMessages", FIELD_USED },
	{ "contentMode", FIELD_USED },
	{ "maxDeliver", FIELD_USED },
	{ "retryBackoff", FIELD_USED },
	{ "retryMaxDelay", FIELD_USED },
	{ "protocol", FIELD_EVENTMESH },
	{ "exemptHandshake", FIELD_EVENTMESH },
	{ "qos", FIELD_EVENTMESH },
	{ "type", FIELD_EVENTMESH },
	{ "grantType", FIELD_EVENTMESH },
	{ "clientId", FIELD_EVENTMESH },
	{ "clientSecret", FIELD_EVENTMESH },
	{ "tokenUrl", FIELD_EVENTMESH },
	{ "scope", FIELD_EVENTMESH },
};

static const struct field config_v1_fields[] = {
	{ "maxInFlightMessages", FIELD_USED },
};

struct raw_type {
	char *value;
	bool bad; /* already reported: no subject is built for it */
	int line;
	int col;
	char path[PATH_MAX_LEN];
};

/* One document being read. */
struct doc {
	const char *file;
	const struct evd_registry_opts *opts;
	struct evd_diag *diag;
	size_t errors_before;
	struct evd_subscription *sub;
	int name_line;
	int name_col;

	bool type_matching_ok;
	bool have_source;
	bool source_bad; /* already reported */
	int source_line;
	int source_col;
	char source_path[PATH_MAX_LEN];

	struct raw_type *types;
	size_t ntypes;
	int types_line; /* where "must not be empty" goes */
	int types_col;
	const char *types_path;
};

static void error_at(struct doc *d, int line, int col, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void warn_at(struct doc *d, int line, int col, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void error_at(struct doc *d, int line, int col, const char *path, const char *fmt, ...)
{
	struct evd_buf b = EVD_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	evd_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	evd_diag_add(d->diag, EVD_DIAG_ERROR, d->file, line, col, path, "%s", b.data);
	evd_buf_free(&b);
}

/* Warnings go to the file's diagnostics and stay with the subscription for its status. */
static void warn_at(struct doc *d, int line, int col, const char *path, const char *fmt, ...)
{
	struct evd_buf b = EVD_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	evd_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	evd_diag_add(d->diag, EVD_DIAG_WARNING, d->file, line, col, path, "%s", b.data);
	evd_diag_add(&d->sub->warnings, EVD_DIAG_WARNING, d->file, line, col, path, "%s", b.data);
	evd_buf_free(&b);
}

static bool doc_failed(const struct doc *d)
{
	return d->diag->errors > d->errors_before;
}

/* Formats a field path into a PATH_MAX_LEN buffer; a too long path is cut, on purpose. */
static void path_fmt(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void path_fmt(char *out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out, PATH_MAX_LEN, fmt, ap);
	va_end(ap);
}

static void join(char *out, const char *prefix, const char *key)
{
	if (prefix && prefix[0])
		path_fmt(out, "%s.%s", prefix, key);
	else
		path_fmt(out, "%s", key);
}

static bool is_empty(const struct evd_yaml_node *n)
{
	if (n->kind == EVD_YAML_SCALAR)
		return n->len == 0 || evd_yaml_is_null(n);
	return n->count == 0;
}

/* The string a scalar holds (null reads as ""), or NULL after an error for other kinds. */
static const char *str_value(struct doc *d, const struct evd_yaml_node *n, const char *path)
{
	if (n->kind != EVD_YAML_SCALAR) {
		error_at(d, n->line, n->col, path, "must be a string, not a %s",
			 evd_yaml_kind_name(n->kind));
		return NULL;
	}
	return evd_yaml_is_null(n) ? "" : n->value;
}

static bool want_map(struct doc *d, const struct evd_yaml_node *n, const char *path)
{
	if (n->kind == EVD_YAML_MAP || evd_yaml_is_null(n))
		return true;
	error_at(d, n->line, n->col, path, "must be a mapping, not a %s",
		 evd_yaml_kind_name(n->kind));
	return false;
}

/*
 * Checks every key of a mapping against a table: unknown keys are errors (with the nearest
 * valid key), EventMesh-only keys warn when they hold something.
 */
static void walk_fields(struct doc *d, const struct evd_yaml_node *map, const char *prefix,
			const struct field *fields, size_t nfields)
{
	const char *names[32];
	for (size_t i = 0; i < nfields && i < EVD_ARRAY_SIZE(names); i++)
		names[i] = fields[i].name;

	for (const struct evd_yaml_node *c = map->first; c; c = c->next) {
		char path[PATH_MAX_LEN];
		const struct field *f = NULL;
		join(path, prefix, c->key);
		for (size_t i = 0; i < nfields; i++)
			if (strcmp(fields[i].name, c->key) == 0)
				f = &fields[i];
		if (!f) {
			const char *near = evd_registry_nearest(c->key, names, nfields);
			if (near)
				error_at(d, c->key_line, c->key_col, path,
					 "unknown field (did you mean \"%s\"?)", near);
			else
				error_at(d, c->key_line, c->key_col, path, "unknown field");
			continue;
		}
		if (f->use == FIELD_EVENTMESH && !is_empty(c))
			warn_at(d, c->key_line, c->key_col, path,
				"has no effect on eventingd (an EventMesh-only setting of Kyma)");
	}
}

#define WALK(d, map, prefix, table) walk_fields(d, map, prefix, table, EVD_ARRAY_SIZE(table))

/* Required member: reports "Required value" at the mapping when it is missing. */
static const struct evd_yaml_node *required(struct doc *d, const struct evd_yaml_node *map,
					    const char *prefix, const char *key)
{
	const struct evd_yaml_node *n = evd_yaml_map_get(map, key);
	if (!n) {
		char path[PATH_MAX_LEN];
		join(path, prefix, key);
		error_at(d, map->line, map->col, path, "Required value");
	}
	return n;
}

static void config_put(struct doc *d, const char *key, const char *value, int line, int col)
{
	struct evd_subscription *s = d->sub;
	s->config = evd_xrealloc(s->config, (s->nconfig + 1) * sizeof(*s->config));
	s->config[s->nconfig].key = evd_xstrdup(key);
	s->config[s->nconfig].value = evd_xstrdup(value);
	s->config[s->nconfig].line = line;
	s->config[s->nconfig].col = col;
	s->nconfig++;
}

static int config_cmp(const void *a, const void *b)
{
	return strcmp(((const struct evd_sub_config *)a)->key, ((const struct evd_sub_config *)b)->key);
}

/* BINARY and STRUCTURED are delivery modes here; Kyma's other values were EventMesh-only. */
static void content_mode(struct doc *d, const struct evd_yaml_node *n, const char *value,
			 const char *path)
{
	if (strcmp(value, "BINARY") == 0)
		d->sub->content_mode = EVD_CONTENT_BINARY;
	else if (strcmp(value, "STRUCTURED") == 0)
		d->sub->content_mode = EVD_CONTENT_STRUCTURED;
	else if (value[0])
		warn_at(d, n->line, n->col, path,
			"contentMode \"%s\" has no effect on eventingd (an EventMesh-only value of "
			"Kyma; eventingd delivers BINARY or STRUCTURED), events are delivered in "
			"BINARY mode",
			value);
}

static void max_in_flight_set(struct doc *d, const struct evd_yaml_node *n, long long v,
			      const char *path)
{
	if (v < 1)
		error_at(d, n->line, n->col, path,
			 "must be at least 1 (eventingd's rule: it is the number of events "
			 "delivered at once; Kyma passed 0 and negative values to NATS unchanged)");
	else if (v > INT_MAX)
		error_at(d, n->line, n->col, path, "must be at most %d", INT_MAX);
	else
		d->sub->max_in_flight = (int)v;
}

static void config_v2(struct doc *d, const struct evd_yaml_node *cfg)
{
	if (!want_map(d, cfg, "spec.config") || cfg->kind != EVD_YAML_MAP)
		return;
	WALK(d, cfg, "spec.config", config_v2_fields);
	for (const struct evd_yaml_node *c = cfg->first; c; c = c->next) {
		char path[PATH_MAX_LEN];
		join(path, "spec.config", c->key);
		const char *v = str_value(d, c, path);
		if (!v)
			continue;
		config_put(d, c->key, v, c->line, c->col);
		if (strcmp(c->key, "maxInFlightMessages") == 0) {
			long long n;
			if (!evd_registry_atoi(v, &n))
				error_at(d, c->line, c->col, path,
					 "maxInFlightMessages must be a stringified int value");
			else
				max_in_flight_set(d, c, n, path);
		} else if (strcmp(c->key, "contentMode") == 0) {
			content_mode(d, c, v, path);
		} else if (strcmp(c->key, "maxDeliver") == 0) {
			long long n;
			if (!evd_registry_atoi(v, &n) || n < 1 || n > 1000000)
				error_at(d, c->line, c->col, path,
					 "maxDeliver must be a stringified int value from 1 to 1000000 "
					 "(delivery attempts before an event counts as failed)");
			else
				d->sub->max_deliver = (uint32_t)n;
		} else if (strcmp(c->key, "retryBackoff") == 0 ||
			   strcmp(c->key, "retryMaxDelay") == 0) {
			int64_t ms;
			bool first = c->key[5] == 'B';
			if (evd_parse_duration(v, &ms) < 0 || ms < 1 || ms > 7LL * 24 * 3600 * 1000)
				error_at(d, c->line, c->col, path,
					 "%s must be a duration from 1ms to 7d, such as \"500ms\", "
					 "\"10s\" or \"5m\"", c->key);
			else if (first)
				d->sub->retry_backoff_ms = ms;
			else
				d->sub->retry_max_delay_ms = ms;
		}
	}
	if (d->sub->retry_backoff_ms && d->sub->retry_max_delay_ms &&
	    d->sub->retry_backoff_ms > d->sub->retry_max_delay_ms) {
		const struct evd_yaml_node *c = evd_yaml_map_get(cfg, "retryBackoff");
		error_at(d, c->line, c->col, "spec.config.retryBackoff",
			 "retryBackoff must not be longer than retryMaxDelay");
	}
}

static void add_type(struct doc *d, const char *value, int line, int col, const char *path)
{
	d->types = evd_xrealloc(d->types, (d->ntypes + 1) * sizeof(*d->types));
	struct raw_type *t = &d->types[d->ntypes++];
	t->value = evd_xstrdup(value);
	t->line = line;
	t->col = col;
	path_fmt(t->path, "%s", path);
}

static void set_source(struct doc *d, const char *value, const struct evd_yaml_node *n,
		       const char *path)
{
	free(d->sub->source);
	d->sub->source = evd_xstrdup(value);
	d->have_source = true;
	d->source_line = n->line;
	d->source_col = n->col;
	path_fmt(d->source_path, "%s", path);
}

static void spec_v2(struct doc *d, const struct evd_yaml_node *spec)
{
	const struct evd_yaml_node *n;
	const char *v;

	WALK(d, spec, "spec", spec_v2_fields);

	d->type_matching_ok = true;
	if ((n = evd_yaml_map_get(spec, "typeMatching")) &&
	    (v = str_value(d, n, "spec.typeMatching"))) {
		if (strcmp(v, "exact") == 0) {
			d->sub->type_matching = EVD_TYPE_MATCHING_EXACT;
		} else if (strcmp(v, "standard") != 0) {
			error_at(d, n->line, n->col, "spec.typeMatching",
				 "must be a valid TypeMatching value exact or standard");
			d->type_matching_ok = false;
		}
	}
	if ((n = required(d, spec, "spec", "source")) && (v = str_value(d, n, "spec.source")))
		set_source(d, v, n, "spec.source");

	d->types_path = "spec.types";
	d->types_line = spec->line;
	d->types_col = spec->col;
	if (!(n = required(d, spec, "spec", "types"))) {
		d->types_path = NULL; /* already reported */
	} else {
		d->types_line = n->line;
		d->types_col = n->col;
		if (n->kind == EVD_YAML_SEQ) {
			size_t i = 0;
			for (const struct evd_yaml_node *t = n->first; t; t = t->next, i++) {
				char path[PATH_MAX_LEN];
				path_fmt(path, "spec.types[%zu]", i);
				if ((v = str_value(d, t, path)))
					add_type(d, v, t->line, t->col, path);
			}
		} else if (!evd_yaml_is_null(n)) {
			error_at(d, n->line, n->col, "spec.types", "must be a list of strings, not a %s",
				 evd_yaml_kind_name(n->kind));
			d->types_path = NULL; /* already reported */
		}
	}
	if ((n = evd_yaml_map_get(spec, "id")) && (v = str_value(d, n, "spec.id")))
		d->sub->id = evd_xstrdup(v);
	if ((n = evd_yaml_map_get(spec, "config")))
		config_v2(d, n);
}

/* One filters[i].eventSource or .eventType: a mapping whose value is returned. */
static const struct evd_yaml_node *filter_value(struct doc *d, const struct evd_yaml_node *item,
						const char *prefix, const char *key)
{
	char path[PATH_MAX_LEN];
	const struct evd_yaml_node *n = required(d, item, prefix, key);
	join(path, prefix, key);
	if (!n || !want_map(d, n, path))
		return NULL;
	if (n->kind != EVD_YAML_MAP) {
		error_at(d, n->line, n->col, path, "Required value");
		return NULL;
	}
	WALK(d, n, path, filter_value_fields);
	const struct evd_yaml_node *v = required(d, n, path, "value");
	char vpath[PATH_MAX_LEN];
	join(vpath, path, "value");
	if (v && v->kind != EVD_YAML_SCALAR) {
		str_value(d, v, vpath); /* reports it */
		return NULL;
	}
	return v;
}

/*
 * v1alpha1 → v1alpha2 as Kyma converted it (KY-EC:api/v1alpha1/subscription_conversion.go
 * setV2SpecTypes): exact matching, one source (the first non-empty one; a different one later
 * is an error), each type cleaned by the prefixed cleaner.
 */
static void spec_v1_filters(struct doc *d, const struct evd_yaml_node *filter)
{
	if (!want_map(d, filter, "spec.filter") || filter->kind != EVD_YAML_MAP)
		return;
	WALK(d, filter, "spec.filter", filter_fields);
	const struct evd_yaml_node *filters = required(d, filter, "spec.filter", "filters");
	if (!filters)
		return;
	d->types_path = "spec.filter.filters";
	d->types_line = filters->line;
	d->types_col = filters->col;
	if (filters->kind != EVD_YAML_SEQ) {
		if (!evd_yaml_is_null(filters)) {
			error_at(d, filters->line, filters->col, "spec.filter.filters",
				 "must be a list, not a %s", evd_yaml_kind_name(filters->kind));
			d->types_path = NULL;
		}
		return;
	}
	/* A filter whose type fails to convert is reported as such, not as "no types". */
	if (filters->count > 0)
		d->types_path = NULL;
	size_t i = 0;
	for (const struct evd_yaml_node *item = filters->first; item; item = item->next, i++) {
		char prefix[PATH_MAX_LEN], spath[PATH_MAX_LEN], tpath[PATH_MAX_LEN];
		path_fmt(prefix, "spec.filter.filters[%zu]", i);
		if (!want_map(d, item, prefix))
			continue;
		if (item->kind != EVD_YAML_MAP) {
			error_at(d, item->line, item->col, prefix, "Required value");
			continue;
		}
		WALK(d, item, prefix, filter_item_fields);
		const struct evd_yaml_node *src = filter_value(d, item, prefix, "eventSource");
		const struct evd_yaml_node *typ = filter_value(d, item, prefix, "eventType");
		path_fmt(spath, "%s.eventSource.value", prefix);
		path_fmt(tpath, "%s.eventType.value", prefix);
		if (src) {
			const char *sv = evd_yaml_is_null(src) ? "" : src->value;
			if (!d->have_source || d->sub->source[0] == '\0')
				set_source(d, sv, src, spath);
			if (d->sub->source[0] && strcmp(sv, d->sub->source) != 0)
				error_at(d, src->line, src->col, spath,
					 "subscription contains more than 1 eventSource");
		}
		if (typ) {
			const char *tv = evd_yaml_is_null(typ) ? "" : typ->value;
			char *clean = NULL, *why = NULL;
			if (evd_event_clean_prefixed(tv, d->opts->event_type_prefix, &clean, &why) == 0)
				add_type(d, clean, typ->line, typ->col, tpath);
			else
				error_at(d, typ->line, typ->col, tpath, "%s",
					 why ? why : "cannot be converted from v1alpha1");
			free(clean);
			free(why);
		}
	}
}

static void spec_v1(struct doc *d, const struct evd_yaml_node *spec)
{
	const struct evd_yaml_node *n;
	const char *v;

	WALK(d, spec, "spec", spec_v1_fields);
	d->sub->type_matching = EVD_TYPE_MATCHING_EXACT;
	d->type_matching_ok = true;
	d->types_path = "spec.filter.filters";
	d->types_line = spec->line;
	d->types_col = spec->col;

	if ((n = evd_yaml_map_get(spec, "id")) && (v = str_value(d, n, "spec.id")))
		d->sub->id = evd_xstrdup(v);
	if ((n = required(d, spec, "spec", "filter")))
		spec_v1_filters(d, n);
	else
		d->types_path = NULL; /* already reported */
	if (!d->have_source) {
		d->sub->source = evd_xstrdup("");
		d->have_source = true;
		d->source_line = spec->line;
		d->source_col = spec->col;
		path_fmt(d->source_path, "spec.filter");
	}

	n = evd_yaml_map_get(spec, "protocolsettings");
	if (n && want_map(d, n, "spec.protocolsettings") && n->kind == EVD_YAML_MAP) {
		WALK(d, n, "spec.protocolsettings", protocolsettings_fields);
		const struct evd_yaml_node *cm = evd_yaml_map_get(n, "contentMode");
		if (cm && (v = str_value(d, cm, "spec.protocolsettings.contentMode"))) {
			/* Kyma's conversion moved it to config.contentMode. */
			if (v[0])
				config_put(d, "contentMode", v, cm->line, cm->col);
			content_mode(d, cm, v, "spec.protocolsettings.contentMode");
		}
	}

	n = evd_yaml_map_get(spec, "config");
	if (n && want_map(d, n, "spec.config") && n->kind == EVD_YAML_MAP) {
		WALK(d, n, "spec.config", config_v1_fields);
		const struct evd_yaml_node *m = evd_yaml_map_get(n, "maxInFlightMessages");
		long long val;
		/* An integer in v1alpha1's schema (minimum 1), unlike v1alpha2's strings. */
		if (m && (m->kind != EVD_YAML_SCALAR || !m->plain ||
			  !evd_registry_atoi(m->value, &val))) {
			error_at(d, m->line, m->col, "spec.config.maxInFlightMessages",
				 "must be an integer (v1alpha1)");
		} else if (m && val < 1) {
			error_at(d, m->line, m->col, "spec.config.maxInFlightMessages",
				 "should be greater than or equal to 1");
		} else if (m) {
			max_in_flight_set(d, m, val, "spec.config.maxInFlightMessages");
			config_put(d, "maxInFlightMessages", m->value, m->line, m->col);
		}
	}
}

static void metadata(struct doc *d, const struct evd_yaml_node *md)
{
	const struct evd_yaml_node *n;
	const char *v, *why;

	WALK(d, md, "metadata", metadata_fields);
	if ((n = required(d, md, "metadata", "name")) && (v = str_value(d, n, "metadata.name"))) {
		d->name_line = n->line;
		d->name_col = n->col;
		if (!v[0])
			error_at(d, n->line, n->col, "metadata.name", "Required value");
		else if ((why = evd_registry_check_dns1123_subdomain(v)))
			error_at(d, n->line, n->col, "metadata.name", "%s", why);
		else
			d->sub->name = evd_xstrdup(v);
	}
	v = "";
	n = evd_yaml_map_get(md, "namespace");
	if (n && (v = str_value(d, n, "metadata.namespace")) && v[0] &&
	    (why = evd_registry_check_dns1123_label(v)))
		error_at(d, n->line, n->col, "metadata.namespace", "%s", why);
	d->sub->ns = evd_xstrdup(v && v[0] ? v : "default");
}

static void sink(struct doc *d, const struct evd_yaml_node *spec)
{
	const struct evd_yaml_node *n = required(d, spec, "spec", "sink");
	const char *v, *why;

	if (!n || !(v = str_value(d, n, "spec.sink")))
		return;
	if (!v[0]) {
		error_at(d, n->line, n->col, "spec.sink", "must not be empty");
		return;
	}
	if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
		error_at(d, n->line, n->col, "spec.sink", "must have URL scheme 'http' or 'https'");
		return;
	}
	if ((why = evd_registry_parse_sink(v, &d->sub->sink))) {
		error_at(d, n->line, n->col, "spec.sink", "%s", why);
		return;
	}
	if (d->sub->sink.tls) {
		d->sub->tls_pending = true;
		warn_at(d, n->line, n->col, "spec.sink",
			"https sinks need TLS support, which this eventingd does not have yet: the "
			"subscription is valid but not ready, and its events wait in the stream");
	}
}

static size_t count_segments(const char *s)
{
	size_t n = 1;
	for (; *s; s++)
		n += *s == '.';
	return n;
}

/* A NATS subject needs non-empty tokens (and no whitespace, which the cleaners remove). */
static bool subject_ok(const char *s)
{
	if (!s[0] || s[0] == '.')
		return false;
	for (; *s; s++)
		if (*s == '.' && (s[1] == '.' || s[1] == '\0'))
			return false;
	return true;
}

/* Kyma's checks of source and types, in Kyma's order (validator/spec.go validateSpec). */
static void validate_source_types(struct doc *d)
{
	struct evd_subscription *s = d->sub;
	bool exact = s->type_matching == EVD_TYPE_MATCHING_EXACT;

	if (d->have_source && d->type_matching_ok) {
		const char *why;
		if (!s->source[0] && !exact) {
			error_at(d, d->source_line, d->source_col, d->source_path,
				 "must not be empty");
			d->source_bad = true;
		} else if (s->source[0] && (why = evd_registry_check_uri_reference(s->source))) {
			error_at(d, d->source_line, d->source_col, d->source_path,
				 "must be valid as per RFC 3986 (%s)", why);
			d->source_bad = true;
		}
	}
	if (d->ntypes == 0 && d->types_path) {
		error_at(d, d->types_line, d->types_col, d->types_path, "must not be empty");
		return;
	}
	for (size_t i = 0; i < d->ntypes; i++) {
		struct raw_type *t = &d->types[i];
		bool dup = false;
		for (size_t j = 0; j < i; j++)
			dup |= strcmp(d->types[j].value, t->value) == 0;
		size_t errors = d->diag->errors;
		if (!t->value[0])
			error_at(d, t->line, t->col, t->path, "must not be of length zero");
		else if (dup)
			error_at(d, t->line, t->col, t->path, "must not have duplicate types");
		else if (count_segments(t->value) < 2)
			error_at(d, t->line, t->col, t->path, "must have minimum 2 segments");
		else if (d->type_matching_ok && !exact &&
			 strncmp(t->value, EVD_REGISTRY_KYMA_TYPE_PREFIX,
				 strlen(EVD_REGISTRY_KYMA_TYPE_PREFIX)) == 0)
			error_at(d, t->line, t->col, t->path,
				 "must not have " EVD_REGISTRY_KYMA_TYPE_PREFIX " as type prefix");
		else if (d->type_matching_ok && exact && strpbrk(t->value, " \t\r\n\v\f*>"))
			error_at(d, t->line, t->col, t->path,
				 "must not contain whitespace, '*' or '>' with typeMatching exact (exact "
				 "types are not cleaned, and these would make the NATS subject a "
				 "wildcard)");
		t->bad = d->diag->errors > errors;
	}
}

/*
 * Subjects and consumer names. Runs on a spec with errors too, for the types and source that
 * were fine, so that every error is reported in one pass (a bad sink does not hide a type that
 * maps to no subject); the caller drops the subscription when anything failed.
 */
static void build_types(struct doc *d)
{
	struct evd_subscription *s = d->sub;
	const char *prefix = d->opts->subject_prefix;
	bool exact = s->type_matching == EVD_TYPE_MATCHING_EXACT;

	if (!d->type_matching_ok || !d->ntypes)
		return;
	if (!exact && (!d->have_source || d->source_bad || !s->source))
		return; /* reported already: no subject can be built */
	if (!exact) {
		char *cs = evd_event_clean_source(s->source);
		bool empty = !cs || !cs[0];
		free(cs);
		if (empty) {
			error_at(d, d->source_line, d->source_col, d->source_path,
				 "must keep at least one character once whitespace, '.', '>', '*', "
				 "'/' and '\\' are removed (it becomes a segment of the NATS subject)");
			return;
		}
	}
	s->types = evd_xcalloc(d->ntypes, sizeof(*s->types));
	for (size_t i = 0; i < d->ntypes; i++) {
		const struct raw_type *r = &d->types[i];
		struct evd_sub_type *t = &s->types[s->ntypes++];
		t->original = evd_xstrdup(r->value);
		t->path = evd_xstrdup(r->path);
		t->line = r->line;
		t->col = r->col;
		t->same_consumer_as = -1;
		if (r->bad)
			continue;
		if (exact) {
			t->clean = evd_xstrdup(r->value);
			t->subject = evd_event_subject_exact(prefix, r->value);
		} else {
			t->clean = evd_event_clean_type(r->value);
			t->subject = evd_event_subject_standard(prefix, s->source, r->value);
		}
		if (!t->clean || !t->subject) {
			error_at(d, r->line, r->col, r->path, "cannot be mapped to a NATS subject");
			continue;
		}
		if (!subject_ok(t->subject)) {
			error_at(d, r->line, r->col, r->path,
				 "maps to NATS subject \"%s\", which has an empty segment", t->subject);
			continue;
		}
		char name[EVD_SUB_CONSUMER_NAME_LEN + 1];
		if (!s->name)
			continue; /* reported already (metadata.name) */
		if (evd_subscription_consumer_name(s->ns, s->name, t->subject, name) != 0) {
			error_at(d, r->line, r->col, r->path, "cannot compute the consumer name");
			continue;
		}
		t->consumer = evd_xstrdup(name);
		for (size_t j = 0; j < i; j++) {
			if (s->types[j].subject && strcmp(s->types[j].subject, t->subject) == 0) {
				t->same_consumer_as = (int)j;
				warn_at(d, r->line, r->col, r->path,
					"maps to the same NATS subject \"%s\" as %s (\"%s\"): they share "
					"one consumer, and the sink receives the events of both",
					t->subject, d->types[j].path, d->types[j].value);
				break;
			}
		}
	}
}

static void sort_by_position(struct evd_diag *diag, size_t from);

/* ---- the manifest as written, for the status ------------------------------------------------ */

/* A JSON number literal (RFC 8259 §6), which can go into the JSON byte for byte. */
static bool json_number(const char *v)
{
	if (*v == '-')
		v++;
	if (*v == '0')
		v++;
	else if (*v >= '1' && *v <= '9')
		while (*v >= '0' && *v <= '9')
			v++;
	else
		return false;
	if (*v == '.') {
		if (!(*++v >= '0' && *v <= '9'))
			return false;
		while (*v >= '0' && *v <= '9')
			v++;
	}
	if (*v == 'e' || *v == 'E') {
		v++;
		if (*v == '+' || *v == '-')
			v++;
		if (!(*v >= '0' && *v <= '9'))
			return false;
		while (*v >= '0' && *v <= '9')
			v++;
	}
	return *v == '\0';
}

/*
 * A YAML node as JSON. Plain scalars follow the YAML 1.2 core schema (null, booleans, decimal
 * numbers; a number JSON can write as is stays byte-exact, so large integers are not rounded);
 * everything else is a string. strings: every non-null scalar is a string, as in Kyma's
 * v1alpha2 spec (all strings, config a map[string]string) and in labels and annotations, so
 * `maxInFlightMessages: 10` shows as "10" like kubectl would show it. The recursion is bounded:
 * config_yaml.c refuses nesting deeper than 64 levels.
 */
static cJSON *yaml_json(const struct evd_yaml_node *n, bool strings)
{
	cJSON *o;

	switch (n->kind) {
	case EVD_YAML_MAP:
		o = cJSON_CreateObject();
		for (const struct evd_yaml_node *c = n->first; c; c = c->next)
			cJSON_AddItemToObject(o, c->key, yaml_json(c, strings));
		return o;
	case EVD_YAML_SEQ:
		o = cJSON_CreateArray();
		for (const struct evd_yaml_node *c = n->first; c; c = c->next)
			cJSON_AddItemToArray(o, yaml_json(c, strings));
		return o;
	case EVD_YAML_SCALAR:
		break;
	}
	if (evd_yaml_is_null(n))
		return cJSON_CreateNull();
	if (!n->plain || strings)
		return cJSON_CreateString(n->value);
	if (!strcmp(n->value, "true") || !strcmp(n->value, "True") || !strcmp(n->value, "TRUE"))
		return cJSON_CreateTrue();
	if (!strcmp(n->value, "false") || !strcmp(n->value, "False") || !strcmp(n->value, "FALSE"))
		return cJSON_CreateFalse();
	if (json_number(n->value))
		return cJSON_CreateRaw(n->value);
	/* YAML numbers JSON cannot write as they stand: "+1", "007", ".5", "1.". */
	const char *v = n->value + (n->value[0] == '+' || n->value[0] == '-');
	if ((*v >= '0' && *v <= '9') || (*v == '.' && v[1] >= '0' && v[1] <= '9')) {
		char *end;
		double d = strtod(n->value, &end);
		if (!*end && strspn(v, "0123456789.eE+-") == strlen(v))
			return cJSON_CreateNumber(d);
	}
	return cJSON_CreateString(n->value);
}

/* What the status shows of the manifest: the spec, labels and annotations as written. */
static void keep_manifest(struct doc *d, const struct evd_yaml_node *root)
{
	const struct evd_yaml_node *spec = evd_yaml_map_get(root, "spec");
	const struct evd_yaml_node *md = evd_yaml_map_get(root, "metadata");
	const struct evd_yaml_node *n;

	if (spec)
		d->sub->spec_json = yaml_json(spec, d->sub->api == EVD_SUB_V1ALPHA2);
	if (md && md->kind == EVD_YAML_MAP) {
		if ((n = evd_yaml_map_get(md, "labels")) && n->kind == EVD_YAML_MAP)
			d->sub->labels_json = yaml_json(n, true);
		if ((n = evd_yaml_map_get(md, "annotations")) && n->kind == EVD_YAML_MAP)
			d->sub->annotations_json = yaml_json(n, true);
	}
}

static struct evd_subscription *parse_doc(const char *file, const struct evd_registry_opts *opts,
					  const struct evd_yaml_doc *ydoc, struct evd_diag *diag,
					  int *name_line, int *name_col)
{
	const struct evd_yaml_node *root = ydoc->root, *n;
	struct doc d = { .file = file, .opts = opts, .diag = diag, .errors_before = diag->errors };
	const char *v;

	if (!root || evd_yaml_is_null(root))
		return NULL; /* an empty document, or a lone "---" */
	d.sub = evd_subscription_new();
	d.sub->file = evd_xstrdup(file);
	d.sub->line = root->line;
	d.sub->col = root->col;
	d.name_line = root->line;
	d.name_col = root->col;
	if (root->kind != EVD_YAML_MAP) {
		error_at(&d, root->line, root->col, NULL,
			 "a Subscription manifest must be a mapping, not a %s",
			 evd_yaml_kind_name(root->kind));
		goto fail;
	}
	WALK(&d, root, NULL, top_fields);

	if ((n = required(&d, root, NULL, "kind")) && (v = str_value(&d, n, "kind")) &&
	    strcmp(v, "Subscription") != 0)
		error_at(&d, n->line, n->col, "kind", "must be Subscription, not \"%s\"", v);
	if ((n = required(&d, root, NULL, "apiVersion")) && (v = str_value(&d, n, "apiVersion"))) {
		d.sub->api_version = evd_xstrdup(v);
		if (strcmp(v, API_V1ALPHA1) == 0) {
			d.sub->api = EVD_SUB_V1ALPHA1;
		} else if (strcmp(v, API_V1ALPHA2) != 0) {
			error_at(&d, n->line, n->col, "apiVersion",
				 "must be " API_V1ALPHA2 " (or the older " API_V1ALPHA1 ")");
			goto fail; /* the spec's shape depends on it */
		}
	}
	if (!d.sub->api_version)
		goto fail;
	if ((n = required(&d, root, NULL, "metadata")) && want_map(&d, n, "metadata")) {
		if (n->kind == EVD_YAML_MAP)
			metadata(&d, n);
		else
			error_at(&d, n->line, n->col, "metadata.name", "Required value");
	}
	if (!(n = required(&d, root, NULL, "spec")) || !want_map(&d, n, "spec"))
		goto fail;
	if (n->kind != EVD_YAML_MAP) {
		error_at(&d, n->line, n->col, "spec", "Required value");
		goto fail;
	}
	if (d.sub->api == EVD_SUB_V1ALPHA1)
		spec_v1(&d, n);
	else
		spec_v2(&d, n);
	validate_source_types(&d);
	sink(&d, n);
	if (d.sub->nconfig > 1)
		qsort(d.sub->config, d.sub->nconfig, sizeof(*d.sub->config), config_cmp);
	build_types(&d);
	if (doc_failed(&d) || !d.sub->name)
		goto fail;

	sort_by_position(&d.sub->warnings, 0);
	keep_manifest(&d, root);
	*name_line = d.name_line;
	*name_col = d.name_col;
	for (size_t i = 0; i < d.ntypes; i++)
		free(d.types[i].value);
	free(d.types);
	return d.sub;
fail:
	for (size_t i = 0; i < d.ntypes; i++)
		free(d.types[i].value);
	free(d.types);
	evd_subscription_free(d.sub);
	return NULL;
}

void evd_sub_list_push(struct evd_sub_list *l, struct evd_subscription *s)
{
	l->items = evd_xrealloc(l->items, (l->count + 1) * sizeof(*l->items));
	l->items[l->count++] = s;
}

void evd_sub_list_clear(struct evd_sub_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		evd_subscription_free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->count = 0;
}

/*
 * Checks run field by field in Kyma's order, not line by line; reports read best in file order,
 * as a compiler's do. Stable (insertion sort): entries at one position keep their order.
 */
static void sort_by_position(struct evd_diag *diag, size_t from)
{
	for (size_t i = from + 1; i < diag->count; i++) {
		struct evd_diag_entry e = diag->entries[i];
		size_t j = i;
		while (j > from && (diag->entries[j - 1].line > e.line ||
				    (diag->entries[j - 1].line == e.line &&
				     diag->entries[j - 1].col > e.col))) {
			diag->entries[j] = diag->entries[j - 1];
			j--;
		}
		diag->entries[j] = e;
	}
}

static int parse_stream(const struct evd_yaml_stream *ys, const char *file,
			const struct evd_registry_opts *opts, struct evd_sub_list *out,
			struct evd_diag *diag)
{
	struct evd_sub_list got = EVD_SUB_LIST_INIT;
	size_t errors_before = diag->errors, count_before = diag->count;
	int *lines = NULL; /* where each kept subscription's name stands */

	for (size_t i = 0; i < ys->ndocs; i++) {
		int name_line = 0, name_col = 0;
		struct evd_subscription *s =
			parse_doc(file, opts, &ys->docs[i], diag, &name_line, &name_col);
		if (!s)
			continue;
		/* (namespace, name) is the identity: twice in one file is the file's own error. */
		bool dup = false;
		for (size_t j = 0; j < got.count && !dup; j++) {
			if (strcmp(got.items[j]->ns, s->ns) == 0 &&
			    strcmp(got.items[j]->name, s->name) == 0) {
				evd_diag_add(diag, EVD_DIAG_ERROR, file, name_line, name_col,
					     "metadata.name",
					     "subscription %s/%s is already defined in this file at "
					     "line %d",
					     s->ns, s->name, lines[j]);
				dup = true;
			}
		}
		if (dup) {
			evd_subscription_free(s);
			continue;
		}
		lines = evd_xrealloc(lines, (got.count + 1) * sizeof(*lines));
		lines[got.count] = name_line;
		evd_sub_list_push(&got, s);
	}
	free(lines);
	sort_by_position(diag, count_before);
	if (diag->errors > errors_before) {
		evd_sub_list_clear(&got);
		return -EINVAL;
	}
	for (size_t i = 0; i < got.count; i++)
		evd_sub_list_push(out, got.items[i]);
	free(got.items);
	return 0;
}

int evd_registry_parse_string(const char *name, const char *text, size_t len,
			      const struct evd_registry_opts *opts, struct evd_sub_list *out,
			      struct evd_diag *diag)
{
	struct evd_yaml_stream *ys = NULL;
	int rc = evd_yaml_parse_string(name, text, len, &ys, diag);
	if (rc)
		return rc;
	rc = parse_stream(ys, name, opts, out, diag);
	evd_yaml_stream_free(ys);
	return rc;
}

int evd_registry_parse_file(const char *path, const struct evd_registry_opts *opts,
			    struct evd_sub_list *out, struct evd_diag *diag)
{
	struct evd_yaml_stream *ys = NULL;
	int rc = evd_yaml_parse_file(path, &ys, diag);
	if (rc)
		return rc;
	rc = parse_stream(ys, path, opts, out, diag);
	evd_yaml_stream_free(ys);
	return rc;
}
