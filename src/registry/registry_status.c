/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The registry as JSON: GET /v1/subscriptions[/{ns}/{name}] on the admin listener and Kyma's
 * GET /{app}/v1/events/subscribed (registry.h). Built with cJSON (control plane, small).
 *
 * Each subscription has the shape of Kyma's Subscription resource as kubectl prints it
 * (DESIGN.md §7), so scripts written against Kyma read it unchanged: apiVersion, kind, metadata,
 * the spec as written, and a status that is Kyma's v1alpha2 status (reference §4.3: ready,
 * conditions with Kyma's types and reasons, types[]{originalType,cleanType},
 * backend.types[]{originalType,consumerName}) plus what eventingd adds under it: each consumer's
 * state and counters from the last JetStream listing with the time of that listing (the
 * counters are cached, refreshed every 10 s: a client shows their age rather than passing them
 * off as current), the settings in effect, the last error, warnings (type collisions among
 * them, which Kyma merges silently), and whatever the status_extra callback adds (delivery
 * figures). The file position is in metadata.annotations, as strings like any annotation.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "nats/nats_conn.h"
#include "registry/registry_internal.h"
#include "util/util_mem.h"

static void iso_time(int64_t ms, bool millis, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
	if (millis)
		snprintf(out + n, len - n, ".%03uZ", (unsigned)(ms % 1000));
	else
		snprintf(out + n, len - n, "Z");
}

/* RFC 3339 in UTC, or null when unknown (ms <= 0); seconds as Kubernetes writes its times. */
static void add_time(cJSON *o, const char *key, int64_t ms)
{
	char buf[40];
	if (ms <= 0) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	iso_time(ms, false, buf, sizeof(buf));
	cJSON_AddStringToObject(o, key, buf);
}

/* The same with milliseconds, for snapshot times a client turns into an age ("as of 4 s ago"). */
static void add_time_ms(cJSON *o, const char *key, int64_t ms)
{
	char buf[40];
	if (ms <= 0) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	iso_time(ms, true, buf, sizeof(buf));
	cJSON_AddStringToObject(o, key, buf);
}

static void add_str_or_null(cJSON *o, const char *key, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, key, v);
	else
		cJSON_AddNullToObject(o, key);
}

static const char *state_name(enum reg_consumer_state s)
{
	switch (s) {
	case REG_C_PENDING:
		return "pending";
	case REG_C_READY:
		return "ready";
	case REG_C_CONFLICT:
		return "conflict";
	case REG_C_ERROR:
		return "error";
	}
	return "unknown";
}

static void add_condition(cJSON *conds, const char *type, bool ok, const char *reason,
			  const char *message, int64_t since_ms)
{
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "type", type);
	cJSON_AddStringToObject(c, "status", ok ? "True" : "False");
	add_time(c, "lastTransitionTime", since_ms);
	cJSON_AddStringToObject(c, "reason", reason);
	cJSON_AddStringToObject(c, "message", message ? message : "");
	cJSON_AddItemToArray(conds, c);
}

/* Kyma's silent type collisions, as warnings: other subscriptions' types on one of s's subjects
 * (computed once per applied set, registry_set.c). */
static void collisions(const struct evd_registry *reg, const struct evd_subscription *s,
		       cJSON *warnings, struct evd_buf *first)
{
	size_t n, index = evd_registry_set_index(reg->set, s);
	const struct evd_registry_collision *c =
		index == (size_t)-1 ? NULL : evd_registry_set_collisions(reg->set, index, &n);

	for (size_t i = 0; c && i < n; i++) {
		cJSON_AddItemToArray(warnings, cJSON_CreateString(c[i].text));
		if (!first->len)
			evd_buf_append_str(first, c[i].text);
	}
}

/* metadata: identity, the manifest's labels and annotations, and where it was read. */
static cJSON *metadata_json(const struct evd_subscription *s)
{
	cJSON *md = cJSON_CreateObject(), *ann;
	char line[16];

	cJSON_AddStringToObject(md, "name", s->name);
	cJSON_AddStringToObject(md, "namespace", s->ns);
	if (s->labels_json)
		cJSON_AddItemToObject(md, "labels", cJSON_Duplicate(s->labels_json, true));
	ann = s->annotations_json ? cJSON_Duplicate(s->annotations_json, true) : cJSON_CreateObject();
	/* Annotation values are strings in Kubernetes: the line too. Ours win over the file's. */
	snprintf(line, sizeof(line), "%d", s->line);
	cJSON_DeleteItemFromObjectCaseSensitive(ann, EVD_REGISTRY_ANNOTATION_FILE);
	cJSON_DeleteItemFromObjectCaseSensitive(ann, EVD_REGISTRY_ANNOTATION_LINE);
	cJSON_AddStringToObject(ann, EVD_REGISTRY_ANNOTATION_FILE, s->file);
	cJSON_AddStringToObject(ann, EVD_REGISTRY_ANNOTATION_LINE, line);
	cJSON_AddItemToObject(md, "annotations", ann);
	return md;
}

/*
 * One item: {"apiVersion","kind","metadata","spec","status"} in kubectl's order. status holds
 * Kyma's fields first (ready, conditions, types, backend.types), then eventingd's.
 */
static cJSON *sub_json(const struct evd_registry *reg, const struct evd_subscription *s)
{
	cJSON *o = cJSON_CreateObject(), *st, *arr, *item;
	bool ready = reg_sub_ready(reg, s), active = reg->backend_ready;
	const char *error = NULL;
	size_t nready = 0, nowned = 0;
	int64_t active_since = 0, first_since = 0, oldest_info = 0;
	bool all_info = true;

	cJSON_AddStringToObject(o, "apiVersion", s->api_version ? s->api_version : "");
	cJSON_AddStringToObject(o, "kind", "Subscription");
	cJSON_AddItemToObject(o, "metadata", metadata_json(s));
	cJSON_AddItemToObject(o, "spec", s->spec_json ? cJSON_Duplicate(s->spec_json, true)
						       : cJSON_CreateObject());
	st = cJSON_AddObjectToObject(o, "status");
	cJSON_AddBoolToObject(st, "ready", ready);

	/* Consumers first: they decide "Subscription active". */
	cJSON *backend = cJSON_CreateObject(), *btypes = cJSON_AddArrayToObject(backend, "types");
	cJSON *consumers = cJSON_AddArrayToObject(backend, "consumers");
	for (size_t t = 0; t < s->ntypes; t++) {
		const struct evd_sub_type *ty = &s->types[t];
		item = cJSON_CreateObject();
		cJSON_AddStringToObject(item, "originalType", ty->original);
		cJSON_AddStringToObject(item, "consumerName", ty->consumer);
		cJSON_AddItemToArray(btypes, item);
		if (ty->same_consumer_as >= 0)
			continue;
		const struct reg_consumer *c = reg_consumer_find(reg, ty->consumer);
		nowned++;
		item = cJSON_CreateObject();
		cJSON_AddStringToObject(item, "name", ty->consumer);
		cJSON_AddStringToObject(item, "subject", ty->subject);
		cJSON_AddStringToObject(item, "state", c ? state_name(c->state) : "pending");
		all_info &= c && c->have_info;
		if (c) {
			nready += c->state == REG_C_READY;
			if (c->state != REG_C_READY && c->error && !error)
				error = c->error;
			active_since = c->since_ms > active_since ? c->since_ms : active_since;
			if (!first_since || c->since_ms < first_since)
				first_since = c->since_ms;
			cJSON_AddBoolToObject(item, "exists", c->have_info);
			if (c->have_info) {
				add_time(item, "created", c->created_ns / 1000000);
				cJSON_AddNumberToObject(item, "numPending", (double)c->num_pending);
				cJSON_AddNumberToObject(item, "numAckPending", (double)c->num_ack_pending);
				cJSON_AddNumberToObject(item, "numRedelivered", (double)c->num_redelivered);
				add_time_ms(item, "refreshedAt", c->info_ms);
				if (!oldest_info || c->info_ms < oldest_info)
					oldest_info = c->info_ms;
			}
			add_str_or_null(item, "error", c->error);
		}
		cJSON_AddItemToArray(consumers, item);
	}
	/* The counters of every consumer are at least this old (null: some have none yet). */
	add_time_ms(backend, "refreshedAt", all_info ? oldest_info : 0);

	cJSON *conds = cJSON_AddArrayToObject(st, "conditions");
	add_condition(conds, "Subscription spec valid", true,
		      "Subscription spec has no validation errors", "", first_since);
	char msg[512];
	if (!reg->backend_ready) {
		snprintf(msg, sizeof(msg), "JetStream is not ready (%s): consumers cannot be created "
					   "or verified until it is",
			 reg->nats ? evd_nats_state_name(evd_nats_state(reg->nats)) : "no backend");
		error = error ? error : msg;
	} else if (nready < nowned) {
		active = false;
		if (!error) {
			snprintf(msg, sizeof(msg), "creating or verifying consumers: %zu of %zu ready",
				 nready, nowned);
			error = msg;
		}
	}
	add_condition(conds, "Subscription active", active && nready == nowned,
		      active && nready == nowned ? "NATS Subscription active"
						 : "NATS Subscription not active",
		      active && nready == nowned ? "" : error, active_since);

	cJSON *warnings = cJSON_CreateArray();
	struct evd_buf collision = EVD_BUF_INIT;
	for (size_t i = 0; i < s->warnings.count; i++) {
		struct evd_buf b = EVD_BUF_INIT;
		evd_diag_format_entry(&s->warnings.entries[i], &b);
		cJSON_AddItemToArray(warnings, cJSON_CreateString(b.data));
		evd_buf_free(&b);
	}
	collisions(reg, s, warnings, &collision);
	if (collision.len)
		add_condition(conds, "Subscription type collision", false, "Types share a NATS subject",
			      collision.data, reg->applied_ms);
	evd_buf_free(&collision);
	const struct evd_registry_file *f = NULL;
	for (size_t i = 0; i < reg->set->nfiles && !f; i++)
		if (strcmp(reg->set->files[i].path, s->file) == 0)
			f = &reg->set->files[i];
	if (f && f->failed) {
		struct evd_buf b = EVD_BUF_INIT;
		evd_buf_printf(&b, "%s has errors (see files[]): this is its previous version, still "
				   "active", f->path);
		cJSON_AddItemToArray(warnings, cJSON_CreateString(b.data));
		evd_buf_free(&b);
	}
	if (s->tls_pending && !error)
		error = "https sinks need TLS support, which this eventingd does not have yet: the "
			"consumer keeps the events until it does";

	arr = cJSON_AddArrayToObject(st, "types");
	for (size_t t = 0; t < s->ntypes; t++) {
		item = cJSON_CreateObject();
		cJSON_AddStringToObject(item, "originalType", s->types[t].original);
		cJSON_AddStringToObject(item, "cleanType", s->types[t].clean);
		cJSON_AddItemToArray(arr, item);
	}
	cJSON_AddItemToObject(st, "backend", backend);
	/* The settings in effect, defaults applied (Kyma's v1alpha1 status had config too). */
	cJSON *config = cJSON_AddObjectToObject(st, "config");
	cJSON_AddNumberToObject(config, "maxInFlightMessages", s->max_in_flight);
	cJSON_AddStringToObject(config, "contentMode", evd_content_mode_name(s->content_mode));
	add_str_or_null(st, "lastError", ready ? NULL : error);
	cJSON_AddItemToObject(st, "warnings", warnings);
	if (reg->status_extra)
		reg->status_extra(reg->status_extra_data, s->ns, s->name, st);
	return o;
}

void evd_registry_set_status_extra(struct evd_registry *reg, evd_registry_status_extra_cb *cb,
				   void *data)
{
	reg->status_extra = cb;
	reg->status_extra_data = cb ? data : NULL;
}

static cJSON *diag_strings(const struct evd_diag *d, enum evd_diag_severity sev)
{
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; i < d->count; i++) {
		if (d->entries[i].severity != sev)
			continue;
		struct evd_buf b = EVD_BUF_INIT;
		evd_diag_format_entry(&d->entries[i], &b);
		cJSON_AddItemToArray(arr, cJSON_CreateString(b.data));
		evd_buf_free(&b);
	}
	return arr;
}

static void print_into(cJSON *o, struct evd_buf *out)
{
	char *text = cJSON_PrintUnformatted(o);
	evd_buf_append_str(out, text);
	evd_buf_append_char(out, '\n');
	cJSON_free(text);
	cJSON_Delete(o);
}

void evd_registry_status_json(struct evd_registry *reg, struct evd_buf *out)
{
	cJSON *root = cJSON_CreateObject(), *subs, *files, *sum;
	size_t active = 0, ready = 0, failed = 0;

	/* kubectl's list: apiVersion, items, kind, metadata; eventingd's members after them. */
	cJSON_AddStringToObject(root, "apiVersion", "v1");
	subs = cJSON_AddArrayToObject(root, "items");
	cJSON_AddStringToObject(root, "kind", "List");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(root, "metadata"), "resourceVersion", "");
	cJSON_AddStringToObject(root, "directory", reg->dir);
	add_str_or_null(root, "directoryError", reg->dir_error);
	cJSON_AddBoolToObject(root, "loaded", reg->loaded);
	add_time(root, "lastScan", reg->last_scan_ms);
	add_time(root, "lastApplied", reg->applied_ms);
	sum = cJSON_AddObjectToObject(root, "summary");
	files = cJSON_AddArrayToObject(root, "files");
	for (size_t i = 0; reg->set && i < reg->set->active.count; i++) {
		const struct evd_subscription *s = reg->set->active.items[i];
		active++;
		ready += reg_sub_ready(reg, s);
		cJSON_AddItemToArray(subs, sub_json(reg, s));
	}
	for (size_t i = 0; reg->set && i < reg->set->nfiles; i++) {
		const struct evd_registry_file *f = &reg->set->files[i];
		cJSON *fo = cJSON_CreateObject();
		failed += f->failed;
		cJSON_AddStringToObject(fo, "file", f->path);
		cJSON_AddBoolToObject(fo, "failed", f->failed);
		cJSON_AddNumberToObject(fo, "subscriptions", (double)f->subs.count);
		cJSON_AddBoolToObject(fo, "previousVersionActive", f->failed && f->subs.count > 0);
		cJSON_AddItemToObject(fo, "errors", diag_strings(&f->diag, EVD_DIAG_ERROR));
		cJSON_AddItemToObject(fo, "warnings", diag_strings(&f->diag, EVD_DIAG_WARNING));
		cJSON_AddItemToArray(files, fo);
	}
	/* Deletions waiting for subscriptions.delete_grace (or retrying): "deleting in N s". */
	cJSON *deleting = cJSON_AddArrayToObject(root, "deleting");
	uint64_t now = uv_now(reg->loop);
	for (size_t i = 0; i < reg->ndeletes; i++) {
		const struct reg_delete *d = &reg->deletes[i];
		cJSON *o = cJSON_CreateObject();
		char state[64];
		uint64_t in_s = d->retry_at > now ? (d->retry_at - now + 999) / 1000 : 0;
		const char *slash = strchr(d->what, '/');
		const char *slash2 = slash ? strchr(slash + 1, '/') : NULL;
		cJSON_AddStringToObject(o, "consumer", d->name);
		if (slash2 && !d->orphan) {
			char *ns = evd_xstrndup(d->what, (size_t)(slash - d->what));
			char *name = evd_xstrndup(slash + 1, (size_t)(slash2 - slash - 1));
			cJSON_AddStringToObject(o, "namespace", ns);
			cJSON_AddStringToObject(o, "name", name);
			cJSON_AddStringToObject(o, "subject", slash2 + 1);
			free(ns);
			free(name);
		} else {
			cJSON_AddStringToObject(o, "description", d->what);
		}
		cJSON_AddBoolToObject(o, "orphan", d->orphan);
		if (d->busy)
			snprintf(state, sizeof(state), "deleting now");
		else if (d->attempts)
			snprintf(state, sizeof(state), "deleting in %" PRIu64 " s (retry %u)", in_s,
				 d->attempts);
		else
			snprintf(state, sizeof(state), "deleting in %" PRIu64 " s", in_s);
		cJSON_AddStringToObject(o, "state", state);
		cJSON_AddNumberToObject(o, "inSeconds", (double)in_s);
		cJSON_AddItemToArray(deleting, o);
	}
	cJSON_AddNumberToObject(sum, "subscriptions", (double)active);
	cJSON_AddNumberToObject(sum, "ready", (double)ready);
	cJSON_AddNumberToObject(sum, "notReady", (double)(active - ready));
	cJSON_AddNumberToObject(sum, "files", reg->set ? (double)reg->set->nfiles : 0);
	cJSON_AddNumberToObject(sum, "filesFailed", (double)failed);
	cJSON_AddNumberToObject(sum, "consumers", (double)reg->nconsumers);
	cJSON_AddNumberToObject(sum, "consumerDeletesPending", (double)reg->ndeletes);
	cJSON_AddBoolToObject(sum, "backendReady", reg->backend_ready);
	cJSON_AddBoolToObject(sum, "reconciling", reg->reconcile_started != 0);
	cJSON_AddNumberToObject(sum, "lastReconcileMs", (double)reg->last_reconcile_ms);
	cJSON_AddNumberToObject(sum, "orphansPruned", (double)reg->pruned_total);
	cJSON_AddNumberToObject(sum, "scans", (double)reg->scans);
	print_into(root, out);
}

int evd_registry_subscription_json(struct evd_registry *reg, const char *ns, const char *name,
				   struct evd_buf *out)
{
	const struct evd_subscription *s = evd_registry_set_find(reg->set, ns, name);
	if (!s)
		return -ENOENT;
	print_into(sub_json(reg, s), out);
	return 0;
}

void evd_registry_not_found_json(const char *ns, const char *name, struct evd_buf *out)
{
	cJSON *o = cJSON_CreateObject();
	struct evd_buf msg = EVD_BUF_INIT;
	evd_buf_printf(&msg, "no subscription %s/%s", ns, name);
	cJSON_AddStringToObject(o, "error", msg.data);
	evd_buf_free(&msg);
	print_into(o, out);
}

/* Kyma's subscribed processor: one {name, version} per event type, deduplicated. */
static void add_event(cJSON *arr, const char *type)
{
	const char *dot = strrchr(type, '.');
	char *name = dot ? evd_xstrndup(type, (size_t)(dot - type)) : evd_xstrdup(type);
	const char *version = dot ? dot + 1 : "";
	cJSON *it;

	cJSON_ArrayForEach(it, arr)
	{
		if (strcmp(cJSON_GetObjectItemCaseSensitive(it, "name")->valuestring, name) == 0 &&
		    strcmp(cJSON_GetObjectItemCaseSensitive(it, "version")->valuestring, version) == 0) {
			free(name);
			return;
		}
	}
	it = cJSON_CreateObject();
	cJSON_AddStringToObject(it, "name", name);
	cJSON_AddStringToObject(it, "version", version);
	cJSON_AddItemToArray(arr, it);
	free(name);
}

void evd_registry_subscribed_json(struct evd_registry *reg, const char *app, const char *prefix,
				  struct evd_buf *out)
{
	cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "eventsInfo");
	struct evd_buf want = EVD_BUF_INIT;

	evd_buf_printf(&want, "%s.%s.", prefix, app);
	for (size_t i = 0; reg->set && i < reg->set->active.count; i++) {
		const struct evd_subscription *s = reg->set->active.items[i];
		for (size_t t = 0; t < s->ntypes; t++) {
			const char *type = s->types[t].original;
			if (s->type_matching == EVD_TYPE_MATCHING_STANDARD) {
				if (s->source && strcmp(s->source, app) == 0)
					add_event(arr, type);
			} else if (strncmp(type, want.data, want.len) == 0 && type[want.len]) {
				add_event(arr, type + want.len);
			}
		}
	}
	evd_buf_free(&want);
	print_into(root, out);
}
