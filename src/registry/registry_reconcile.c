/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Consumers against JetStream (registry.h has the settings), the loop side: what to do, when,
 * and what the answers mean. Every nats.c call blocks, so the calls themselves (registry_js.c)
 * run on the nats bridge's worker thread (evd_bridge_work), never on the loop.
 *
 * One job at a time: the loop gathers what is due (consumers marked dirty, deletions) into a
 * batch of at most BATCH operations, copies everything the worker needs into the job (names,
 * subjects, settings: no subscription or registry pointer is touched off the loop), and applies
 * the results when the job comes back, looking each consumer up by name: one that was removed
 * meanwhile is simply not found. Then it gathers the next batch. A thousand consumers are a few
 * batches on one thread, not a thousand threads.
 *
 * Every REFRESH_EVERY_MS, and before pruning, a job lists the stream's consumers (their names,
 * then each one's info: registry_js.c says why not js_Consumers): the listing refreshes the
 * pending counters shown in the status, notices consumers deleted behind our back
 * (re-created), and finds orphans to prune. A batch of ensures does not list: at one request
 * per consumer of the stream a listing costs more than the ensures' own request each.
 *
 * Ensure (create-or-verify) of one consumer:
 *   missing                     -> js_AddConsumer (deliver policy new)
 *   exists, our settings        -> kept ("re-bound"): nothing is lost across restarts
 *   exists, limits differ       -> js_UpdateConsumer in place (MaxAckPending, AckWait,
 *                                  MaxDeliver, description): JetStream allows these
 *   exists, incompatible        -> left alone and reported (CONFLICT): a Kyma consumer has flow
 *                                  control, heartbeats and an _INBOX deliver subject, which
 *                                  nats.c refuses for queue subscriptions and JetStream cannot
 *                                  change; deleting it would drop its pending events silently.
 *
 * Delete: never at once. A file read while empty or half-written is valid YAML with fewer
 * subscriptions, so a consumer no longer wanted waits subscriptions.delete_grace and is deleted
 * only if no subscription of the set applied by then wants it; a delete that fails is retried,
 * but dropped once the consumer is wanted again, and one that was running when the consumer
 * came back leaves it to be verified (re-created) again.
 *
 * Prune (subscriptions.prune_orphans), after the start-up reconcile and after each reconnect,
 * only when every file of the directory was read without errors (a broken file's consumers
 * cannot be told from orphans), no scan is due or running, and the set has been stable for
 * delete_grace (a directory being filled): a consumer is ours when it has our deliver group or
 * deliver subject prefix AND its name is Kyma's hash of its description "<ns>/<name>/<subject>";
 * ours and wanted by no active subscription -> queued as a deferred delete like any other.
 * Anything else is never touched.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_metrics.h"
#include "nats/nats_bridge.h"
#include "nats/nats_conn.h"
#include "registry/registry_job.h"
#include "util/util_buf.h"
#include "util/util_log.h"
#include "util/util_mem.h"

#define BATCH 256
#define REFRESH_EVERY_MS 10000  /* pending counters in the status */
#define RETRY_MIN_MS 1000
#define RETRY_MAX_MS 60000
#define CONFLICT_RETRY_MS 60000 /* someone may delete the conflicting consumer */

int64_t reg_max_deliver(const struct evd_registry *reg, const struct evd_subscription *s)
{
	uint32_t n = reg->max_deliver;
	/* A subscription's own maxDeliver above the global one must not be cut short by the
	 * server: its backstop rises with it (DESIGN §5). */
	if (s && s->max_deliver > n)
		n = s->max_deliver;
	return (int64_t)n + EVD_REGISTRY_MAX_DELIVER_MARGIN;
}

static void job_free(struct reg_job *job)
{
	for (size_t i = 0; i < job->nops; i++) {
		free(job->ops[i].subject);
		free(job->ops[i].description);
		free(job->ops[i].message);
	}
	free(job->ops);
	for (size_t i = 0; i < job->nkeep; i++)
		free(job->keep[i]);
	free(job->keep);
	for (size_t i = 0; i < job->norphans; i++) {
		free(job->orphans[i]);
		free(job->orphan_descs[i]);
	}
	free(job->orphans);
	free(job->orphan_descs);
	free(job->infos);
	free(job->list_error);
	free(job->stream);
	free(job);
}

/* ---- loop thread --------------------------------------------------------------------------- */

static uint64_t backoff_ms(unsigned attempts)
{
	uint64_t ms = RETRY_MIN_MS;
	for (unsigned i = 1; i < attempts && ms < RETRY_MAX_MS; i++)
		ms *= 2;
	return ms < RETRY_MAX_MS ? ms : RETRY_MAX_MS;
}

static int info_cmp(const void *a, const void *b)
{
	return strcmp(((const struct reg_info *)a)->name, ((const struct reg_info *)b)->name);
}

static void store_info(struct evd_registry *reg, struct reg_consumer *c, const struct reg_info *info)
{
	/* The cached counters as gauges: no JetStream request per scrape. */
	if (reg->m_pending) {
		const char *l[] = { c->sub->name, c->sub->ns, c->name };
		evd_metric_set(reg->m_pending, l, (double)info->num_pending);
		evd_metric_set(reg->m_ack_pending, l, (double)info->num_ack_pending);
	}
	c->have_info = true;
	c->info_ms = reg_wall_ms();
	c->created_ns = info->created_ns;
	c->num_pending = info->num_pending;
	c->num_ack_pending = info->num_ack_pending;
	c->num_redelivered = info->num_redelivered;
}

static void apply_listing(struct evd_registry *reg, struct reg_job *job)
{
	for (size_t i = 0; i < reg->nconsumers; i++) {
		struct reg_consumer *c = reg->consumers[i];
		struct reg_info key;
		snprintf(key.name, sizeof(key.name), "%s", c->name);
		const struct reg_info *info =
			job->ninfos ? bsearch(&key, job->infos, job->ninfos, sizeof(key), info_cmp) : NULL;
		if (info) {
			store_info(reg, c, info);
		} else if (c->state == REG_C_READY && !c->busy && !c->dirty) {
			const struct evd_subscription *s = c->sub;
			evd_log_warn("registry", "consumer %s of %s/%s (%s) disappeared from stream %s; "
						 "re-creating it (events published meanwhile are lost)",
				     c->name, s->ns, s->name, s->types[c->type].subject, reg->stream);
			c->have_info = false;
			reg_set_state(reg, c, REG_C_PENDING, "consumer disappeared; re-creating it");
			c->dirty = true;
			c->retry_at = 0;
		}
	}
}

static void apply_ensure(struct evd_registry *reg, struct reg_op *op, uint64_t now)
{
	struct reg_consumer *c = reg_consumer_find(reg, op->name);

	if (!c)
		return; /* removed meanwhile: its deletion is queued */
	c->busy = false;
	if (op->have_info)
		store_info(reg, c, &op->info);
	const struct evd_subscription *s = c->sub;
	const char *subject = s->types[c->type].subject;
	switch (op->result) {
	case R_CREATED:
	case R_REBOUND:
	case R_UPDATED:
		if (op->result == R_CREATED)
			evd_log_info("registry", "created consumer %s for %s/%s (%s, maxAckPending %" PRId64 ")",
				     c->name, s->ns, s->name, subject, op->max_ack_pending);
		else if (op->result == R_UPDATED)
			evd_log_info("registry", "updated consumer %s of %s/%s in place (maxAckPending %" PRId64
						 ", ackWait %" PRId64 " ms, maxDeliver %" PRId64 ")",
				     c->name, s->ns, s->name, op->max_ack_pending,
				     reg->ack_wait_ms, op->max_deliver);
		else
			evd_log_debug("registry", "re-bound consumer %s of %s/%s (%s)", c->name, s->ns,
				      s->name, subject);
		if (c->state == REG_C_ERROR || c->state == REG_C_CONFLICT)
			evd_log_info("registry", "consumer %s of %s/%s is fine again", c->name, s->ns,
				     s->name);
		c->attempts = 0;
		reg_set_state(reg, c, REG_C_READY, NULL);
		break;
	case R_CONFLICT:
		if (c->state != REG_C_CONFLICT || !c->error || strcmp(c->error, op->message) != 0)
			evd_log_error("registry", "subscription %s/%s: %s", s->ns, s->name, op->message);
		reg_set_state(reg, c, REG_C_CONFLICT, op->message);
		c->dirty = true;
		c->retry_at = now + CONFLICT_RETRY_MS;
		break;
	default: {
		bool same = c->state == REG_C_ERROR && c->error && strcmp(c->error, op->message) == 0;
		c->attempts++;
		if (!same)
			evd_log_warn("registry", "consumer %s of %s/%s: %s; retrying", c->name, s->ns,
				     s->name, op->message);
		reg_set_state(reg, c, REG_C_ERROR, op->message);
		c->dirty = true;
		c->retry_at = now + backoff_ms(c->attempts);
		break;
	}
	}
}

static uint64_t grace_ms(const struct evd_registry *reg)
{
	return reg->cfg->subscriptions.delete_grace > 0 ? (uint64_t)reg->cfg->subscriptions.delete_grace
							: 0;
}

void reg_delete_push(struct evd_registry *reg, const char *name, const char *what, bool orphan)
{
	uint64_t grace = grace_ms(reg);

	for (size_t i = 0; i < reg->ndeletes; i++)
		if (strcmp(reg->deletes[i].name, name) == 0)
			return;
	reg->deletes = evd_xrealloc(reg->deletes, (reg->ndeletes + 1) * sizeof(*reg->deletes));
	struct reg_delete *d = &reg->deletes[reg->ndeletes++];
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->what = evd_xstrdup(what);
	d->orphan = orphan;
	d->retry_at = uv_now(reg->loop) + grace;
	if (grace)
		evd_log_info("registry", "consumer %s (%s)%s: deleting it in %" PRIu64 " s unless it "
					 "is wanted again (subscriptions.delete_grace)",
			     name, what, orphan ? " is an orphan no subscription owns" : " is no longer wanted",
			     (grace + 999) / 1000);
}

static void delete_drop(struct evd_registry *reg, size_t i)
{
	free(reg->deletes[i].what);
	reg->deletes[i] = reg->deletes[--reg->ndeletes];
}

void reg_delete_cancel(struct evd_registry *reg, const char *name)
{
	for (size_t i = 0; i < reg->ndeletes; i++) {
		if (strcmp(reg->deletes[i].name, name) != 0 || reg->deletes[i].busy)
			continue;
		evd_log_info("registry", "consumer %s (%s) is wanted again: not deleting it",
			     name, reg->deletes[i].what);
		delete_drop(reg, i);
		return;
	}
}

static void apply_delete(struct evd_registry *reg, struct reg_op *op, uint64_t now)
{
	for (size_t i = 0; i < reg->ndeletes; i++) {
		struct reg_delete *d = &reg->deletes[i];
		if (strcmp(d->name, op->name) != 0 || !d->busy)
			continue;
		d->busy = false;
		struct reg_consumer *c = reg_consumer_find(reg, d->name);
		if (op->result == R_DELETED || op->result == R_ABSENT) {
			if (d->orphan && op->result == R_DELETED) {
				evd_log_info("registry", "pruned orphan consumer %s (%s): no subscription "
							 "owns it", d->name, d->what);
				reg->pruned_total++;
			} else {
				evd_log_info("registry", "deleted consumer %s (%s)%s", d->name, d->what,
					     op->result == R_ABSENT ? ": it did not exist" : "");
			}
		} else if (!c) {
			d->attempts++;
			if (d->attempts == 1)
				evd_log_warn("registry", "consumer %s (%s): %s; retrying", d->name,
					     d->what, op->message);
			d->retry_at = now + backoff_ms(d->attempts);
			return;
		}
		if (c) {
			/* Wanted again while the delete ran: whatever it did, the consumer must be
			 * verified (re-created when it is gone) before it counts as ready. */
			evd_log_info("registry", "consumer %s is wanted again after its deletion was "
						 "sent; verifying it", d->name);
			if (op->result == R_DELETED)
				c->have_info = false;
			reg_set_state(reg, c, REG_C_PENDING, "deleted and wanted again; re-creating it");
			c->dirty = true;
			c->retry_at = 0;
		}
		delete_drop(reg, i);
		return;
	}
}

static void on_job_loop(struct evd_bridge_item *item)
{
	struct reg_job *job = (struct reg_job *)item;
	struct evd_registry *reg = job->reg;

	if (!reg) {
		job_free(job);
		return;
	}
	reg->job = NULL;
	uint64_t now = uv_now(reg->loop);
	bool stream_changed = false;

	/* The listing was taken before this job's own ensures: look at it first. */
	if (job->list && job->list_ok)
		apply_listing(reg, job);
	for (size_t i = 0; i < job->nops; i++) {
		stream_changed |= job->ops[i].result == R_CREATED || job->ops[i].result == R_DELETED;
		if (job->ops[i].kind == OP_ENSURE)
			apply_ensure(reg, &job->ops[i], now);
		else
			apply_delete(reg, &job->ops[i], now);
	}
	if (job->list) {
		if (job->list_ok)
			reg->refresh_due = false;
		else
			evd_log_warn("registry", "%s", job->list_error ? job->list_error : "listing failed");
	}
	if (job->prune && job->list_ok) {
		/* The set may have changed while the listing ran: what is wanted now is kept. */
		for (size_t i = 0; i < job->norphans; i++)
			if (!reg_consumer_find(reg, job->orphans[i]))
				reg_delete_push(reg, job->orphans[i], job->orphan_descs[i], true);
		reg->prune_due = false;
	}
	job_free(job);
	/* The stream's consumer count in GET /v1/backend is a snapshot refreshed every few
	 * seconds: refresh it now, so it does not show the count from before this change next to
	 * subscriptions that are already ready (one request per batch; ignored while one runs). */
	if (stream_changed && reg->nats)
		evd_nats_refresh_info(reg->nats);
	reg_refresh_metrics(reg);
	reg_reconcile_kick(reg);
}

static void submit(struct evd_registry *reg, struct reg_job *job)
{
	job->reg = reg;
	job->js = evd_nats_js(reg->nats);
	job->nc = evd_nats_connection(reg->nats);
	job->stream = evd_xstrdup(reg->stream);
	job->ack_wait_ns = reg->ack_wait_ms * NS_PER_MS;
	job->item.on_worker = reg_job_worker;
	job->item.on_loop = on_job_loop;
	reg->job = job;
	evd_bridge_work(reg->bridge, &job->item);
}

static struct reg_op *add_op(struct reg_job *job, enum op_kind kind, const char *name)
{
	job->ops = evd_xrealloc(job->ops, (job->nops + 1) * sizeof(*job->ops));
	struct reg_op *op = &job->ops[job->nops++];
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	snprintf(op->name, sizeof(op->name), "%s", name);
	return op;
}

/*
 * Every file was read cleanly, nothing is left to verify, and the set is the latest one and has
 * not changed for delete_grace: orphans can be told apart. A set applied a moment ago may be a
 * directory that is being filled (created, then files copied in) or a file being written, and a
 * scan waiting or running may bring back what looks orphaned now. *wake: when to look again
 * (UINT64_MAX: a change will kick).
 */
static bool can_prune(const struct evd_registry *reg, uint64_t now, uint64_t *wake)
{
	*wake = UINT64_MAX;
	if (!reg->loaded || reg->dir_err || reg->scan || reg->scan_again ||
	    uv_is_active((const uv_handle_t *)&reg->debounce_timer))
		return false;
	for (size_t i = 0; i < reg->set->nfiles; i++)
		if (reg->set->files[i].failed)
			return false;
	for (size_t i = 0; i < reg->nconsumers; i++)
		if (reg->consumers[i]->dirty && reg->consumers[i]->state != REG_C_CONFLICT)
			return false;
	if (reg->ndeletes)
		return false;
	if (now - reg->stable_since < grace_ms(reg)) {
		*wake = reg->stable_since + grace_ms(reg);
		return false;
	}
	return true;
}

static void on_retry_timer(uv_timer_t *t)
{
	reg_reconcile_kick(t->data);
}

static void on_refresh_timer(uv_timer_t *t)
{
	struct evd_registry *reg = t->data;
	reg->refresh_due = true;
	reg_reconcile_kick(reg);
}

void reg_reconcile_kick(struct evd_registry *reg)
{
	uint64_t now, next_retry = UINT64_MAX;
	bool waiting = false;
	struct reg_job *job;

	if (reg->closing || reg->job || !reg->nats || !reg->backend_ready || !reg->loaded)
		return;
	if (!evd_nats_js(reg->nats) || !evd_nats_connection(reg->nats))
		return;
	now = uv_now(reg->loop);
	job = evd_xcalloc(1, sizeof(*job));
	for (size_t i = 0; i < reg->nconsumers && job->nops < BATCH; i++) {
		struct reg_consumer *c = reg->consumers[i];
		if (!c->dirty || c->busy)
			continue;
		if (c->retry_at > now) {
			next_retry = c->retry_at < next_retry ? c->retry_at : next_retry;
			/* A conflict is a steady state, not work in progress. */
			waiting |= c->state != REG_C_CONFLICT;
			continue;
		}
		const struct evd_subscription *s = c->sub;
		const struct evd_sub_type *t = &s->types[c->type];
		struct reg_op *op = add_op(job, OP_ENSURE, c->name);
		struct evd_buf desc = EVD_BUF_INIT;
		evd_buf_printf(&desc, "%s/%s/%s", s->ns, s->name, t->subject);
		op->description = evd_buf_steal(&desc);
		op->subject = evd_xstrdup(t->subject);
		op->max_ack_pending = s->max_in_flight;
		op->max_deliver = reg_max_deliver(reg, s);
		c->dirty = false;
		c->busy = true;
	}
	/* Wanted again (a delete waiting for a retry included): a wanted consumer is never deleted. */
	for (size_t i = 0; i < reg->ndeletes;) {
		if (!reg->deletes[i].busy && reg_consumer_find(reg, reg->deletes[i].name))
			reg_delete_cancel(reg, reg->deletes[i].name); /* moves the last one to i */
		else
			i++;
	}
	for (size_t i = 0; i < reg->ndeletes && job->nops < BATCH; i++) {
		struct reg_delete *d = &reg->deletes[i];
		if (d->busy)
			continue;
		if (d->retry_at > now) {
			next_retry = d->retry_at < next_retry ? d->retry_at : next_retry;
			waiting = true;
			continue;
		}
		add_op(job, OP_DELETE, d->name);
		d->busy = true;
	}
	uint64_t prune_wake = UINT64_MAX;
	if (!job->nops && reg->prune_due && reg->cfg->subscriptions.prune_orphans &&
	    can_prune(reg, now, &prune_wake)) {
		job->prune = job->list = true;
		job->keep = evd_xcalloc(reg->nconsumers + 1, sizeof(char *));
		for (size_t i = 0; i < reg->nconsumers; i++)
			job->keep[job->nkeep++] = evd_xstrdup(reg->consumers[i]->name);
		/* consumers[] is sorted by name, so keep[] is too. */
	} else if (!job->nops && reg->refresh_due) {
		job->list = true;
	}
	if (prune_wake < next_retry)
		next_retry = prune_wake;
	if (next_retry != UINT64_MAX)
		uv_timer_start(&reg->retry_timer, on_retry_timer, next_retry - now, 0);
	if (!job->nops && !job->list) {
		if (reg->reconcile_started && !waiting) {
			reg->last_reconcile_ms = now - reg->reconcile_started;
			reg->reconcile_started = 0;
			evd_log_info("registry", "in step with JetStream after %" PRIu64 " ms (%zu consumer%s)",
				     reg->last_reconcile_ms, reg->nconsumers, reg->nconsumers == 1 ? "" : "s");
		}
		job_free(job);
		return;
	}
	if (job->nops && !reg->reconcile_started)
		reg->reconcile_started = now;
	submit(reg, job);
}

void reg_reconcile_init(struct evd_registry *reg)
{
	uv_timer_init(reg->loop, &reg->retry_timer);
	uv_timer_init(reg->loop, &reg->refresh_timer);
	reg->retry_timer.data = reg->refresh_timer.data = reg;
	reg->open_handles += 2;
	if (reg->nats)
		uv_timer_start(&reg->refresh_timer, on_refresh_timer, REFRESH_EVERY_MS, REFRESH_EVERY_MS);
}

void reg_reconcile_close(struct evd_registry *reg)
{
	if (reg->job) {
		/* It finishes on the worker (before the NATS close queued behind it) and frees itself. */
		reg->job->reg = NULL;
		reg->job = NULL;
	}
	uv_close((uv_handle_t *)&reg->retry_timer, reg_handle_closed);
	uv_close((uv_handle_t *)&reg->refresh_timer, reg_handle_closed);
}
