/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The registry object: its life cycle, applying a new set of subscriptions (the diff becomes
 * consumer work for registry_reconcile.c), and the metrics derived from it (registry.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin_metrics.h"
#include "registry/registry_internal.h"
#include "util/util_log.h"
#include "util/util_mem.h"

int64_t reg_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- consumers table ------------------------------------------------------------------------ */

static int consumer_cmp(const void *a, const void *b)
{
	return strcmp((*(struct reg_consumer *const *)a)->name, (*(struct reg_consumer *const *)b)->name);
}

struct reg_consumer *reg_consumer_find(const struct evd_registry *reg, const char *name)
{
	size_t lo = 0, hi = reg->nconsumers;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(reg->consumers[mid]->name, name);
		if (!c)
			return reg->consumers[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void consumer_free(struct reg_consumer *c)
{
	evd_subscription_free(c->sub);
	free(c->error);
	free(c);
}

void reg_notify(struct evd_registry *reg, const struct reg_consumer *c)
{
	if (!reg->observer || reg->closing)
		return;
	struct evd_registry_binding b = {
		.consumer = c->name,
		.sub = c->sub,
		.type = c->type,
		.present = true,
		.deliverable = c->state == REG_C_READY && !c->sub->tls_pending,
	};
	reg->observer(&b, reg->observer_data);
}

void evd_registry_set_observer(struct evd_registry *reg, evd_registry_observer_cb cb, void *data)
{
	reg->observer = cb;
	reg->observer_data = data;
	for (size_t i = 0; i < reg->nconsumers; i++)
		reg_notify(reg, reg->consumers[i]);
}

void reg_set_state(struct evd_registry *reg, struct reg_consumer *c, enum reg_consumer_state s,
		   const char *error)
{
	bool changed = c->state != s;
	if (changed) {
		c->since_ms = reg_wall_ms();
		if (s == REG_C_READY && reg->m_subscribed) {
			/* Kyma counts a subscribed type when its NATS subscription comes up. */
			const char *v[] = { c->sub->name, c->sub->ns, c->sub->types[c->type].clean,
					    c->name };
			evd_metric_add(reg->m_subscribed, v, 1);
		}
	}
	c->state = s;
	free(c->error);
	c->error = error ? evd_xstrdup(error) : NULL;
	if (changed)
		reg_notify(reg, c);
}

/* ---- readiness and metrics ------------------------------------------------------------------- */

bool reg_sub_ready(const struct evd_registry *reg, const struct evd_subscription *s)
{
	if (!reg->backend_ready || s->tls_pending)
		return false;
	for (size_t t = 0; t < s->ntypes; t++) {
		if (s->types[t].same_consumer_as >= 0)
			continue;
		const struct reg_consumer *c = reg_consumer_find(reg, s->types[t].consumer);
		if (!c || c->state != REG_C_READY)
			return false;
	}
	return true;
}

void reg_update_metrics(struct evd_registry *reg, const struct evd_subscription *s)
{
	if (!reg->m_status)
		return;
	double v = reg_sub_ready(reg, s) ? 1 : 0;
	for (size_t t = 0; t < s->ntypes; t++) {
		if (s->types[t].same_consumer_as >= 0)
			continue;
		const char *labels[] = { s->name, s->ns, s->types[t].consumer, "NATS_Jetstream",
					 reg->stream };
		evd_metric_set(reg->m_status, labels, v);
	}
}

/* A consumer that goes away takes its series along (Kyma deletes them too). */
static void remove_metric(struct evd_registry *reg, const struct evd_subscription *s, size_t t)
{
	if (!reg->m_status)
		return;
	const char *labels[] = { s->name, s->ns, s->types[t].consumer, "NATS_Jetstream", reg->stream };
	evd_metric_remove(reg->m_status, labels);
	const char *pl[] = { s->name, s->ns, s->types[t].consumer };
	evd_metric_remove(reg->m_pending, pl);
	evd_metric_remove(reg->m_ack_pending, pl);
	/* Every type of s that used this consumer counted under its own label set. */
	for (size_t k = 0; k < s->ntypes; k++) {
		if (strcmp(s->types[k].consumer, s->types[t].consumer) != 0)
			continue;
		const char *sl[] = { s->name, s->ns, s->types[k].clean, s->types[t].consumer };
		evd_metric_remove(reg->m_subscribed, sl);
	}
}

void evd_registry_counts(const struct evd_registry *reg, size_t *active, size_t *ready)
{
	*active = *ready = 0;
	for (size_t i = 0; reg->set && i < reg->set->active.count; i++) {
		(*active)++;
		if (reg_sub_ready(reg, reg->set->active.items[i]))
			(*ready)++;
	}
}

/* eventingd_subscriptions{state} and eventingd_subscription_files_failed, after any change. */
static void update_gauges(struct evd_registry *reg)
{
	size_t active, ready, failed = 0;

	if (!reg->metrics)
		return;
	evd_registry_counts(reg, &active, &ready);
	for (size_t i = 0; reg->set && i < reg->set->nfiles; i++)
		failed += reg->set->files[i].failed;
	const char *r[] = { "ready" }, *nr[] = { "not_ready" };
	evd_metric_set(reg->m_subs, r, (double)ready);
	evd_metric_set(reg->m_subs, nr, (double)(active - ready));
	evd_metric_set(reg->m_files_failed, NULL, (double)failed);
}

void reg_refresh_metrics(struct evd_registry *reg)
{
	for (size_t i = 0; reg->set && i < reg->set->active.count; i++)
		reg_update_metrics(reg, reg->set->active.items[i]);
	update_gauges(reg);
}

/* ---- applying a set ----------------------------------------------------------------------- */

static void log_sub_action(const struct evd_registry_sub_action *a)
{
	const struct evd_subscription *o = a->old_sub, *n = a->new_sub;

	switch (a->op) {
	case EVD_REGISTRY_SUB_ADD:
		evd_log_info("registry", "subscription %s/%s added from %s:%d: %zu type%s, sink %s",
			     n->ns, n->name, n->file, n->line, n->ntypes, n->ntypes == 1 ? "" : "s",
			     n->sink.url);
		break;
	case EVD_REGISTRY_SUB_REMOVE:
		evd_log_info("registry", "subscription %s/%s removed (was in %s)", o->ns, o->name,
			     o->file);
		break;
	case EVD_REGISTRY_SUB_CHANGE: {
		struct evd_buf what = EVD_BUF_INIT;
		if (a->changed & EVD_REGISTRY_CHANGED_SINK)
			evd_buf_printf(&what, "; sink %s -> %s (consumers kept)", o->sink.url,
				       n->sink.url);
		if (a->changed & EVD_REGISTRY_CHANGED_MAX_IN_FLIGHT)
			evd_buf_printf(&what, "; maxInFlightMessages %d -> %d", o->max_in_flight,
				       n->max_in_flight);
		if (a->changed & EVD_REGISTRY_CHANGED_TYPES)
			evd_buf_printf(&what, "; types %zu -> %zu", o->ntypes, n->ntypes);
		if (a->changed & EVD_REGISTRY_CHANGED_CONTENT_MODE)
			evd_buf_printf(&what, "; contentMode %s", evd_content_mode_name(n->content_mode));
		if (a->changed & EVD_REGISTRY_CHANGED_OTHER && strcmp(o->file, n->file) != 0)
			evd_buf_printf(&what, "; moved %s -> %s", o->file, n->file);
		evd_log_info("registry", "subscription %s/%s changed%s", n->ns, n->name,
			     what.len ? what.data : " (config)");
		evd_buf_free(&what);
		break;
	}
	case EVD_REGISTRY_SUB_KEEP:
		break;
	}
}

static int str_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* reg->subjects from reg->set: rebuilt whenever a set is applied (rare), read per publish. */
static void index_subjects(struct evd_registry *reg)
{
	const struct evd_sub_list *active = &reg->set->active;
	size_t n = 0;

	for (size_t i = 0; i < active->count; i++)
		n += active->items[i]->ntypes;
	reg->subjects = evd_xrealloc(reg->subjects, (n ? n : 1) * sizeof(*reg->subjects));
	n = 0;
	for (size_t i = 0; i < active->count; i++)
		for (size_t t = 0; t < active->items[i]->ntypes; t++)
			reg->subjects[n++] = active->items[i]->types[t].subject;
	qsort(reg->subjects, n, sizeof(*reg->subjects), str_ptr_cmp);
	size_t u = 0;
	for (size_t i = 0; i < n; i++)
		if (u == 0 || strcmp(reg->subjects[u - 1], reg->subjects[i]) != 0)
			reg->subjects[u++] = reg->subjects[i];
	reg->nsubjects = u;
}

bool evd_registry_wants_subject(const struct evd_registry *reg, const char *subject)
{
	if (!reg->loaded)
		return true;
	return bsearch(&subject, reg->subjects, reg->nsubjects, sizeof(*reg->subjects),
		       str_ptr_cmp) != NULL;
}

void reg_apply_set(struct evd_registry *reg, struct evd_registry_set *next)
{
	struct evd_registry_diff *diff = evd_registry_diff(reg->set, next);
	size_t removed = 0;

	for (size_t i = 0; i < diff->nsubs; i++)
		log_sub_action(&diff->subs[i]);

	/*
	 * Removed consumers leave the table and are queued for deletion. Found first, marked after:
	 * a marked entry breaks the order the binary search of reg_consumer_find relies on.
	 */
	struct reg_consumer **gone = evd_xcalloc(diff->nremove + 1, sizeof(*gone));
	for (size_t i = 0; i < diff->nremove; i++) {
		const struct evd_registry_consumer_action *a = &diff->remove[i];
		gone[i] = reg_consumer_find(reg, a->sub->types[a->type].consumer);
	}
	for (size_t i = 0; i < diff->nremove; i++) {
		const struct evd_registry_consumer_action *a = &diff->remove[i];
		if (gone[i] && gone[i]->name[0]) {
			gone[i]->name[0] = '\0'; /* compacted below */
			removed++;
		}
		struct evd_buf what = EVD_BUF_INIT;
		evd_buf_printf(&what, "%s/%s/%s", a->sub->ns, a->sub->name, a->sub->types[a->type].subject);
		reg_delete_push(reg, a->sub->types[a->type].consumer, what.data, false);
		evd_buf_free(&what);
		remove_metric(reg, a->sub, a->type);
	}
	free(gone);
	if (removed) {
		size_t j = 0;
		for (size_t i = 0; i < reg->nconsumers; i++) {
			if (reg->consumers[i]->name[0])
				reg->consumers[j++] = reg->consumers[i];
			else
				consumer_free(reg->consumers[i]);
		}
		reg->nconsumers = j;
	}

	/* New consumers: pending until the worker has created or re-bound them. */
	if (diff->ncreate) {
		reg->consumers = evd_xrealloc(reg->consumers,
					      (reg->nconsumers + diff->ncreate) * sizeof(*reg->consumers));
		for (size_t i = 0; i < diff->ncreate; i++) {
			const struct evd_registry_consumer_action *a = &diff->create[i];
			struct reg_consumer *c = evd_xcalloc(1, sizeof(*c));
			snprintf(c->name, sizeof(c->name), "%s", a->sub->types[a->type].consumer);
			c->sub = evd_subscription_ref(a->sub);
			c->type = a->type;
			c->state = REG_C_PENDING;
			c->dirty = true;
			c->since_ms = reg_wall_ms();
			reg_delete_cancel(reg, c->name);
			reg->consumers[reg->nconsumers++] = c;
		}
		qsort(reg->consumers, reg->nconsumers, sizeof(*reg->consumers), consumer_cmp);
		for (size_t i = 0; i < diff->ncreate; i++) {
			const struct evd_registry_consumer_action *a = &diff->create[i];
			const struct reg_consumer *c = reg_consumer_find(reg, a->sub->types[a->type].consumer);
			if (c)
				reg_notify(reg, c);
		}
	}

	/* Every consumer now belongs to the new definition (sink, file, config...). */
	for (size_t i = 0; i < diff->nsubs; i++) {
		struct evd_subscription *s = diff->subs[i].new_sub;
		for (size_t t = 0; s && t < s->ntypes; t++) {
			if (s->types[t].same_consumer_as >= 0)
				continue;
			struct reg_consumer *c = reg_consumer_find(reg, s->types[t].consumer);
			if (c && c->sub != s) {
				evd_subscription_free(c->sub);
				c->sub = evd_subscription_ref(s);
				c->type = t;
				reg_notify(reg, c); /* a new sink, contentMode, retry settings... */
			}
		}
	}
	for (size_t i = 0; i < diff->nupdate; i++) {
		const struct evd_registry_consumer_action *a = &diff->update[i];
		struct reg_consumer *c = reg_consumer_find(reg, a->sub->types[a->type].consumer);
		if (c) {
			c->dirty = true;
			c->retry_at = 0;
			reg_notify(reg, c);
		}
	}
	/* Removed last: the dispatcher stops taking their messages once the rest is in place. */
	for (size_t i = 0; reg->observer && i < diff->nremove; i++) {
		const struct evd_registry_consumer_action *a = &diff->remove[i];
		struct evd_registry_binding b = {
			.consumer = a->sub->types[a->type].consumer,
			.sub = a->sub,
			.type = a->type,
		};
		reg->observer(&b, reg->observer_data);
	}
	if (!evd_registry_diff_empty(diff) || !reg->loaded)
		evd_log_info("registry", "%zu subscription%s active (%zu consumer%s: %zu to create or "
					 "verify, %zu to update, %zu to delete)",
			     next->active.count, next->active.count == 1 ? "" : "s", reg->nconsumers,
			     reg->nconsumers == 1 ? "" : "s", diff->ncreate, diff->nupdate,
			     diff->nremove);
	if (!evd_registry_diff_empty(diff) || !reg->loaded)
		reg->stable_since = uv_now(reg->loop);
	evd_registry_diff_free(diff);
	evd_registry_set_free(reg->set);
	reg->set = next;
	index_subjects(reg);
	reg->loaded = true;
	reg->applied_ms = reg_wall_ms();
	reg_refresh_metrics(reg);
	reg_reconcile_kick(reg);
}

/* ---- life cycle ----------------------------------------------------------------------------- */

static const char *const status_labels[] = { "subscription_name", "subscription_namespace",
					     "consumer_name", "eventing_backend", "stream_name" };
static const char *const subscribed_labels[] = { "subscription_name", "subscription_namespace",
						 "event_type", "consumer_name" };
static const char *const state_labels[] = { "state" };
static const char *const pending_labels[] = { "subscription_name", "subscription_namespace",
					      "consumer_name" };

int evd_registry_new(uv_loop_t *loop, struct evd_bridge *bridge, struct evd_nats *nats,
		     const struct evd_config *cfg, struct evd_metrics *metrics,
		     struct evd_registry **out)
{
	struct evd_registry *reg = evd_xcalloc(1, sizeof(*reg));
	int rc;

	reg->loop = loop;
	reg->bridge = bridge;
	reg->nats = nats;
	reg->cfg = cfg;
	reg->metrics = metrics;
	reg->stream = evd_xstrdup(cfg->stream.name);
	reg->subject_prefix = evd_xstrdup(cfg->stream.subject_prefix);
	reg->event_type_prefix = evd_xstrdup(cfg->publish.event_type_prefix);
	reg->opts.subject_prefix = reg->subject_prefix;
	reg->opts.event_type_prefix = reg->event_type_prefix;
	reg->dir = evd_xstrdup(cfg->subscriptions.dir);
	reg->ack_wait_ms = cfg->dispatch.ack_wait;
	reg->max_deliver = cfg->dispatch.max_deliver;

	rc = uv_fs_event_init(loop, &reg->fs_event);
	if (rc < 0) {
		free(reg->stream);
		free(reg->subject_prefix);
		free(reg->event_type_prefix);
		free(reg->dir);
		free(reg);
		return rc;
	}
	uv_timer_init(loop, &reg->debounce_timer);
	uv_timer_init(loop, &reg->rescan_timer);
	reg->fs_event.data = reg->debounce_timer.data = reg->rescan_timer.data = reg;
	reg->open_handles = 3;
	reg_reconcile_init(reg);

	if (metrics) {
		reg->m_status = evd_metrics_add(
			metrics, EVD_METRIC_GAUGE, "eventing_ec_subscription_status",
			"1 when the subscription owning the consumer is ready, else 0 (Kyma's).", 5,
			status_labels, NULL, 0, 100000);
		reg->m_subscribed = evd_metrics_add(
			metrics, EVD_METRIC_COUNTER, "eventing_ec_event_type_subscribed_total",
			"Consumers that came up (created or re-bound), per event type (Kyma's).", 4,
			subscribed_labels, NULL, 0, 100000);
		reg->m_subs = evd_metrics_add(metrics, EVD_METRIC_GAUGE, "eventingd_subscriptions",
					      "Active subscriptions by state (ready, not_ready).", 1,
					      state_labels, NULL, 0, 2);
		reg->m_files_failed = evd_metrics_add(
			metrics, EVD_METRIC_GAUGE, "eventingd_subscription_files_failed",
			"Subscription files whose latest version has errors (not applied).", 0, NULL,
			NULL, 0, 1);
		reg->m_pending = evd_metrics_add(
			metrics, EVD_METRIC_GAUGE, "eventingd_consumer_pending",
			"Events waiting in a consumer (numPending), as of the last refresh (10 s).", 3,
			pending_labels, NULL, 0, 100000);
		reg->m_ack_pending = evd_metrics_add(
			metrics, EVD_METRIC_GAUGE, "eventingd_consumer_ack_pending",
			"Events delivered and not yet acknowledged (numAckPending; backing-off retries "
			"included), as of the last refresh (10 s).", 3, pending_labels, NULL, 0, 100000);
		update_gauges(reg);
	}
	*out = reg;
	return 0;
}

int evd_registry_start(struct evd_registry *reg)
{
	return reg_watch_start(reg);
}

void evd_registry_set_config(struct evd_registry *reg, const struct evd_config *cfg)
{
	reg->cfg = cfg;
	if (cfg->dispatch.ack_wait != reg->ack_wait_ms || cfg->dispatch.max_deliver != reg->max_deliver) {
		evd_log_info("registry", "dispatch.ack_wait or dispatch.max_deliver changed: updating "
					 "every consumer");
		reg->ack_wait_ms = cfg->dispatch.ack_wait;
		reg->max_deliver = cfg->dispatch.max_deliver;
		for (size_t i = 0; i < reg->nconsumers; i++) {
			reg->consumers[i]->dirty = true;
			reg->consumers[i]->retry_at = 0;
		}
	}
	if (cfg->subscriptions.prune_orphans && reg->backend_ready)
		reg->prune_due = true;
	reg_watch_switch(reg, cfg->subscriptions.dir);
	reg_reconcile_kick(reg);
}

void evd_registry_rescan(struct evd_registry *reg)
{
	evd_log_info("registry", "rescanning %s", reg->dir);
	reg_watch_schedule(reg, 0);
}

void evd_registry_backend_state(struct evd_registry *reg, bool ready)
{
	if (ready == reg->backend_ready)
		return;
	reg->backend_ready = ready;
	if (ready) {
		/* A new server, a restored store or a failover may have lost consumers: verify all. */
		for (size_t i = 0; i < reg->nconsumers; i++) {
			reg->consumers[i]->dirty = true;
			reg->consumers[i]->attempts = 0;
			reg->consumers[i]->retry_at = 0;
		}
		/* Failed deletes retry now; the others keep their grace period. */
		for (size_t i = 0; i < reg->ndeletes; i++)
			if (reg->deletes[i].attempts)
				reg->deletes[i].retry_at = 0;
		reg->prune_due = reg->cfg->subscriptions.prune_orphans;
		reg->refresh_due = true;
	}
	reg_refresh_metrics(reg);
	reg_reconcile_kick(reg);
}

bool evd_registry_loaded(const struct evd_registry *reg)
{
	return reg->loaded;
}

static void registry_destroy(struct evd_registry *reg)
{
	for (size_t i = 0; i < reg->nconsumers; i++)
		consumer_free(reg->consumers[i]);
	free(reg->consumers);
	for (size_t i = 0; i < reg->ndeletes; i++)
		free(reg->deletes[i].what);
	free(reg->deletes);
	evd_registry_set_free(reg->set);
	free(reg->subjects);
	free(reg->dir);
	free(reg->dir_error);
	free(reg->stream);
	free(reg->subject_prefix);
	free(reg->event_type_prefix);
	free(reg);
}

void reg_handle_closed(uv_handle_t *h)
{
	struct evd_registry *reg = h->data;
	if (--reg->open_handles == 0)
		registry_destroy(reg);
}

void evd_registry_free(struct evd_registry *reg)
{
	if (!reg || reg->closing)
		return;
	reg->closing = true;
	if (reg->ndeletes)
		evd_log_warn("registry", "stopping with %zu consumer deletion%s not done; the next "
					 "start deletes them (subscriptions.prune_orphans) or they stay",
			     reg->ndeletes, reg->ndeletes == 1 ? "" : "s");
	reg_reconcile_close(reg);
	reg_watch_close(reg);
}
