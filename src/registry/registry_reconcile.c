/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Consumers against JetStream (registry.h has the settings). Every nats.c call here blocks, so
 * it runs on the nats bridge's worker thread (evd_bridge_work), never on the loop.
 *
 * One job at a time: the loop gathers what is due (consumers marked dirty, deletions) into a
 * batch of at most BATCH operations, copies everything the worker needs into the job (names,
 * subjects, settings: no subscription or registry pointer is touched off the loop), and applies
 * the results when the job comes back, looking each consumer up by name: one that was removed
 * meanwhile is simply not found. Then it gathers the next batch. A thousand consumers are a few
 * batches on one thread, not a thousand threads.
 *
 * A batch with more than a few consumers to verify first lists the stream's consumers
 * (js_Consumers, 256 per page), so re-binding after a restart or reconnect costs a few requests
 * instead of one per consumer. The same listing refreshes the pending counters shown in the
 * status, notices consumers deleted behind our back (re-created), and finds orphans to prune.
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
 * Prune (subscriptions.prune_orphans), after the start-up reconcile and after each reconnect,
 * only when every file of the directory was read without errors (a broken file's consumers
 * cannot be told from orphans): a consumer is ours when it has our deliver group or deliver
 * subject prefix AND its name is Kyma's hash of its description "<ns>/<name>/<subject>"; ours
 * and wanted by no active subscription -> deleted. Anything else is never touched.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "nats/nats_bridge.h"
#include "nats/nats_conn.h"
#include "registry/registry_internal.h"
#include "util/util_buf.h"
#include "util/util_log.h"
#include "util/util_mem.h"

#define BATCH 256
#define LIST_THRESHOLD 4        /* verifying more consumers than this in a batch: list first */
#define REFRESH_EVERY_MS 10000  /* pending counters in the status */
#define RETRY_MIN_MS 1000
#define RETRY_MAX_MS 60000
#define CONFLICT_RETRY_MS 60000 /* someone may delete the conflicting consumer */
#define NS_PER_MS INT64_C(1000000)

enum op_kind { OP_ENSURE, OP_DELETE };
enum op_result { R_NONE, R_REBOUND, R_CREATED, R_UPDATED, R_CONFLICT, R_ERROR, R_DELETED, R_ABSENT };

struct reg_info {
	char name[EVD_SUB_CONSUMER_NAME_LEN + 1];
	int64_t created_ns;
	uint64_t num_pending;
	int64_t num_ack_pending;
	int64_t num_redelivered;
};

struct reg_op {
	enum op_kind kind;
	char name[EVD_SUB_CONSUMER_NAME_LEN + 1];
	char *subject;     /* ensure */
	char *description; /* ensure: "<ns>/<name>/<subject>" */
	int64_t max_ack_pending;
	/* Results. */
	enum op_result result;
	char *message;
	bool have_info;
	struct reg_info info;
};

struct reg_job {
	struct evd_bridge_item item; /* first: the item pointer is the job pointer */
	struct evd_registry *reg;    /* NULL once the registry is gone */
	jsCtx *js;
	natsConnection *nc;
	char *stream;
	int64_t ack_wait_ns;
	int64_t max_deliver;
	struct reg_op *ops;
	size_t nops;
	bool list;  /* return every consumer's counters */
	bool prune; /* delete our consumers not in keep */
	char **keep; /* sorted */
	size_t nkeep;
	/* Results. */
	bool list_ok;
	char *list_error;
	struct reg_info *infos; /* sorted by name */
	size_t ninfos;
	char **pruned; /* "name (description)" */
	size_t npruned;
	size_t prune_failed;
};

int64_t reg_max_deliver(const struct evd_registry *reg)
{
	return (int64_t)reg->max_deliver + EVD_REGISTRY_MAX_DELIVER_MARGIN;
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
	for (size_t i = 0; i < job->npruned; i++)
		free(job->pruned[i]);
	free(job->pruned);
	free(job->infos);
	free(job->list_error);
	free(job->stream);
	free(job);
}

/* ---- worker thread ------------------------------------------------------------------------- */

/* "what: nats.c's status text: its detail (JetStream error N)". */
static char *nats_error(const char *what, natsStatus s, jsErrCode jerr)
{
	struct evd_buf b = EVD_BUF_INIT;
	natsStatus last = NATS_OK;
	const char *text = nats_GetLastError(&last);

	evd_buf_printf(&b, "%s: %s", what, natsStatus_GetText(s));
	if (text && *text && last == s)
		evd_buf_printf(&b, ": %s", text);
	if (jerr)
		evd_buf_printf(&b, " (JetStream error %d)", (int)jerr);
	return evd_buf_steal(&b);
}

static bool not_found(natsStatus s, jsErrCode jerr)
{
	return s == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr;
}

static int ci_cmp(const void *a, const void *b)
{
	return strcmp((*(jsConsumerInfo *const *)a)->Name, (*(jsConsumerInfo *const *)b)->Name);
}

static jsConsumerInfo *list_find(jsConsumerInfoList *list, const char *name)
{
	size_t lo = 0, hi = list ? (size_t)list->Count : 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(list->List[mid]->Name, name);
		if (!c)
			return list->List[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void copy_info(struct reg_info *out, const jsConsumerInfo *ci)
{
	snprintf(out->name, sizeof(out->name), "%s", ci->Name ? ci->Name : "");
	out->created_ns = ci->Created;
	out->num_pending = ci->NumPending;
	out->num_ack_pending = ci->NumAckPending;
	out->num_redelivered = ci->NumRedelivered;
}

static bool str_is(const char *a, const char *b)
{
	return a && strcmp(a, b) == 0;
}

/* Why an existing consumer cannot be used as ours ("" when it can). */
static void incompatibilities(const jsConsumerConfig *cc, const struct reg_op *op,
			      struct evd_buf *why)
{
	char deliver[sizeof(EVD_REGISTRY_DELIVER_PREFIX) + EVD_SUB_CONSUMER_NAME_LEN];

	snprintf(deliver, sizeof(deliver), "%s%s", EVD_REGISTRY_DELIVER_PREFIX, op->name);
	if (!cc->DeliverSubject || !*cc->DeliverSubject)
		evd_buf_append_str(why, "; it is a pull consumer");
	else if (strcmp(cc->DeliverSubject, deliver) != 0)
		evd_buf_printf(why, "; it delivers to \"%s\", not \"%s\"", cc->DeliverSubject, deliver);
	if (!str_is(cc->DeliverGroup, EVD_REGISTRY_DELIVER_GROUP))
		evd_buf_printf(why, "; its deliver group is \"%s\", not \"%s\"",
			       cc->DeliverGroup ? cc->DeliverGroup : "", EVD_REGISTRY_DELIVER_GROUP);
	if (cc->FlowControl)
		evd_buf_append_str(why, "; it has flow control");
	if (cc->Heartbeat > 0)
		evd_buf_printf(why, "; it has idle heartbeats every %" PRId64 " ms",
			       cc->Heartbeat / NS_PER_MS);
	if (!str_is(cc->FilterSubject, op->subject))
		evd_buf_printf(why, "; it filters \"%s\", not \"%s\"",
			       cc->FilterSubject ? cc->FilterSubject : "", op->subject);
	if (cc->AckPolicy != js_AckExplicit)
		evd_buf_append_str(why, "; its ack policy is not explicit");
}

static void ensure_one(struct reg_job *job, struct reg_op *op, jsConsumerInfoList *list)
{
	jsConsumerInfo *own = NULL, *ci = NULL;
	jsConsumerConfig cc;
	jsErrCode jerr = 0;
	natsStatus s;
	char deliver[sizeof(EVD_REGISTRY_DELIVER_PREFIX) + EVD_SUB_CONSUMER_NAME_LEN];

	if (list) {
		ci = list_find(list, op->name);
	} else {
		s = js_GetConsumerInfo(&own, job->js, job->stream, op->name, NULL, &jerr);
		if (s == NATS_OK) {
			ci = own;
		} else if (!not_found(s, jerr)) {
			op->result = R_ERROR;
			op->message = nats_error("reading the consumer", s, jerr);
			return;
		}
	}
	if (!ci) {
		snprintf(deliver, sizeof(deliver), "%s%s", EVD_REGISTRY_DELIVER_PREFIX, op->name);
		jsConsumerConfig_Init(&cc);
		cc.Durable = op->name;
		cc.Description = op->description;
		cc.DeliverPolicy = js_DeliverNew;
		cc.AckPolicy = js_AckExplicit;
		cc.AckWait = job->ack_wait_ns;
		cc.MaxDeliver = job->max_deliver;
		cc.FilterSubject = op->subject;
		cc.ReplayPolicy = js_ReplayInstant;
		cc.MaxAckPending = op->max_ack_pending;
		cc.DeliverSubject = deliver;
		cc.DeliverGroup = EVD_REGISTRY_DELIVER_GROUP;
		/* No FlowControl and no Heartbeat: nats.c refuses queue subscriptions with them. */
		jerr = 0;
		s = js_AddConsumer(&own, job->js, job->stream, &cc, NULL, &jerr);
		if (s == NATS_OK) {
			op->result = R_CREATED;
			op->have_info = true;
			copy_info(&op->info, own);
			goto out;
		}
		/* Created meanwhile by another instance, with other settings? Look at it. */
		char *add_error = nats_error("creating the consumer", s, jerr);
		jerr = 0;
		if (js_GetConsumerInfo(&own, job->js, job->stream, op->name, NULL, &jerr) != NATS_OK) {
			op->result = R_ERROR;
			op->message = add_error;
			return;
		}
		free(add_error);
		ci = own;
	}

	op->have_info = true;
	copy_info(&op->info, ci);
	struct evd_buf why = EVD_BUF_INIT;
	incompatibilities(ci->Config, op, &why);
	if (why.len) {
		op->result = R_CONFLICT;
		struct evd_buf msg = EVD_BUF_INIT;
		evd_buf_printf(&msg, "consumer %s exists in stream %s with settings eventingd cannot "
				     "use or change (%s): eventingd needs a push consumer without flow "
				     "control and heartbeats, delivering to its deliver group. A "
				     "consumer left by Kyma? Delete it (nats consumer rm %s %s; its "
				     "pending events are lost) and eventingd creates its own",
			       op->name, job->stream, why.data + 2, job->stream, op->name);
		op->message = evd_buf_steal(&msg);
		evd_buf_free(&why);
		goto out;
	}
	evd_buf_free(&why);
	const jsConsumerConfig *have = ci->Config;
	if (have->MaxAckPending == op->max_ack_pending && have->AckWait == job->ack_wait_ns &&
	    have->MaxDeliver == job->max_deliver && str_is(have->Description, op->description)) {
		op->result = R_REBOUND;
		goto out;
	}
	/* Same consumer, other limits: JetStream updates these in place, keeping its messages. */
	cc = *have;
	cc.MaxAckPending = op->max_ack_pending;
	cc.AckWait = job->ack_wait_ns;
	cc.MaxDeliver = job->max_deliver;
	cc.Description = op->description;
	jsConsumerInfo *upd = NULL;
	jerr = 0;
	s = js_UpdateConsumer(&upd, job->js, job->stream, &cc, NULL, &jerr);
	if (s != NATS_OK) {
		op->result = R_ERROR;
		op->message = nats_error("updating the consumer", s, jerr);
		goto out;
	}
	op->result = R_UPDATED;
	copy_info(&op->info, upd);
	jsConsumerInfo_Destroy(upd);
out:
	jsConsumerInfo_Destroy(own);
}

static void delete_one(struct reg_job *job, struct reg_op *op)
{
	jsErrCode jerr = 0;
	natsStatus s = js_DeleteConsumer(job->js, job->stream, op->name, NULL, &jerr);

	if (s == NATS_OK)
		op->result = R_DELETED;
	else if (not_found(s, jerr))
		op->result = R_ABSENT;
	else {
		op->result = R_ERROR;
		op->message = nats_error("deleting the consumer", s, jerr);
	}
}

static int str_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Ours: our deliver group or subject, and named as Kyma names "<ns>/<name>/<subject>". */
static bool is_ours(const jsConsumerInfo *ci)
{
	const jsConsumerConfig *cc = ci->Config;
	char name[EVD_SUB_CONSUMER_NAME_LEN + 1];

	if (!cc || !ci->Name || !cc->Description)
		return false;
	if (!str_is(cc->DeliverGroup, EVD_REGISTRY_DELIVER_GROUP) &&
	    !(cc->DeliverSubject && strncmp(cc->DeliverSubject, EVD_REGISTRY_DELIVER_PREFIX,
					    strlen(EVD_REGISTRY_DELIVER_PREFIX)) == 0))
		return false;
	const char *d = cc->Description, *s1 = strchr(d, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
	if (!s2)
		return false;
	char *ns = evd_xstrndup(d, (size_t)(s1 - d));
	char *n = evd_xstrndup(s1 + 1, (size_t)(s2 - s1 - 1));
	int rc = evd_subscription_consumer_name(ns, n, s2 + 1, name);
	free(ns);
	free(n);
	return rc == 0 && strcmp(name, ci->Name) == 0;
}

static void prune(struct reg_job *job, jsConsumerInfoList *list)
{
	for (int i = 0; i < list->Count; i++) {
		const jsConsumerInfo *ci = list->List[i];
		const char *name = ci->Name;
		if (!is_ours(ci) || bsearch(&name, job->keep, job->nkeep, sizeof(char *), str_ptr_cmp))
			continue;
		jsErrCode jerr = 0;
		natsStatus s = js_DeleteConsumer(job->js, job->stream, name, NULL, &jerr);
		if (s != NATS_OK && !not_found(s, jerr)) {
			char *e = nats_error("pruning an orphan consumer", s, jerr);
			evd_log_warn("registry", "consumer %s (%s): %s", name, ci->Config->Description, e);
			free(e);
			job->prune_failed++;
			continue;
		}
		struct evd_buf b = EVD_BUF_INIT;
		evd_buf_printf(&b, "%s (%s)", name, ci->Config->Description);
		job->pruned = evd_xrealloc(job->pruned, (job->npruned + 1) * sizeof(char *));
		job->pruned[job->npruned++] = evd_buf_steal(&b);
	}
}

static void on_job_worker(struct evd_bridge_item *item)
{
	struct reg_job *job = (struct reg_job *)item;
	jsConsumerInfoList *list = NULL;
	size_t nensure = 0;

	for (size_t i = 0; i < job->nops; i++)
		nensure += job->ops[i].kind == OP_ENSURE;
	if (job->list || job->prune || nensure > LIST_THRESHOLD) {
		jsErrCode jerr = 0;
		natsStatus s = js_Consumers(&list, job->js, job->stream, NULL, &jerr);
		if (s == NATS_OK) {
			job->list_ok = true;
			if (list->Count > 1)
				qsort(list->List, (size_t)list->Count, sizeof(*list->List), ci_cmp);
		} else if (s == NATS_NOT_FOUND && !jerr) {
			job->list_ok = true; /* nats.c: no consumer at all */
			list = NULL;
		} else {
			job->list_error = nats_error("listing the stream's consumers", s, jerr);
			list = NULL;
		}
	}
	for (size_t i = 0; i < job->nops; i++) {
		struct reg_op *op = &job->ops[i];
		if (natsConnection_Status(job->nc) != NATS_CONN_STATUS_CONNECTED) {
			op->result = R_ERROR;
			op->message = evd_xstrdup("not connected to NATS");
			continue;
		}
		if (op->kind == OP_ENSURE)
			ensure_one(job, op, job->list_ok ? list : NULL);
		else
			delete_one(job, op);
	}
	/* An empty listing is a list too: nothing exists, so every ensure above created. */
	if (job->list_ok && list && job->list) {
		job->infos = evd_xcalloc((size_t)list->Count + 1, sizeof(*job->infos));
		for (int i = 0; i < list->Count; i++)
			copy_info(&job->infos[job->ninfos++], list->List[i]);
	}
	if (job->list_ok && list && job->prune)
		prune(job, list);
	jsConsumerInfoList_Destroy(list);
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

static void store_info(struct reg_consumer *c, const struct reg_info *info)
{
	c->have_info = true;
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
			store_info(c, info);
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
		store_info(c, &op->info);
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
				     reg->ack_wait_ms, reg_max_deliver(reg));
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

static void apply_delete(struct evd_registry *reg, struct reg_op *op, uint64_t now)
{
	for (size_t i = 0; i < reg->ndeletes; i++) {
		struct reg_delete *d = &reg->deletes[i];
		if (strcmp(d->name, op->name) != 0 || !d->busy)
			continue;
		d->busy = false;
		if (op->result == R_DELETED || op->result == R_ABSENT) {
			evd_log_info("registry", "deleted consumer %s (%s)%s", d->name, d->what,
				     op->result == R_ABSENT ? ": it did not exist" : "");
			free(d->what);
			reg->deletes[i] = reg->deletes[--reg->ndeletes];
		} else {
			d->attempts++;
			if (d->attempts == 1)
				evd_log_warn("registry", "consumer %s (%s): %s; retrying", d->name,
					     d->what, op->message);
			d->retry_at = now + backoff_ms(d->attempts);
		}
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

	/* The listing was taken before this job's own ensures: look at it first. */
	if (job->list && job->list_ok)
		apply_listing(reg, job);
	for (size_t i = 0; i < job->nops; i++) {
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
	if (job->prune) {
		for (size_t i = 0; i < job->npruned; i++)
			evd_log_info("registry", "pruned orphan consumer %s: no subscription owns it",
				     job->pruned[i]);
		reg->pruned_total += job->npruned;
		if (job->list_ok && !job->prune_failed)
			reg->prune_due = false;
	}
	job_free(job);
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
	job->max_deliver = reg_max_deliver(reg);
	job->item.on_worker = on_job_worker;
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

/* Every file was read cleanly and nothing is left to verify: orphans can be told apart. */
static bool can_prune(const struct evd_registry *reg)
{
	if (!reg->loaded || reg->dir_err || reg->scan)
		return false;
	for (size_t i = 0; i < reg->set->nfiles; i++)
		if (reg->set->files[i].failed)
			return false;
	for (size_t i = 0; i < reg->nconsumers; i++)
		if (reg->consumers[i]->dirty && reg->consumers[i]->state != REG_C_CONFLICT)
			return false;
	return reg->ndeletes == 0;
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
		c->dirty = false;
		c->busy = true;
	}
	for (size_t i = 0; i < reg->ndeletes && job->nops < BATCH; i++) {
		struct reg_delete *d = &reg->deletes[i];
		if (d->busy)
			continue;
		if (d->retry_at > now) {
			next_retry = d->retry_at < next_retry ? d->retry_at : next_retry;
			continue;
		}
		add_op(job, OP_DELETE, d->name);
		d->busy = true;
	}
	if (!job->nops && reg->prune_due && reg->cfg->subscriptions.prune_orphans && can_prune(reg)) {
		job->prune = job->list = true;
		job->keep = evd_xcalloc(reg->nconsumers + 1, sizeof(char *));
		for (size_t i = 0; i < reg->nconsumers; i++)
			job->keep[job->nkeep++] = evd_xstrdup(reg->consumers[i]->name);
		/* consumers[] is sorted by name, so keep[] is too. */
	} else if (!job->nops && reg->refresh_due) {
		job->list = true;
	}
	if (next_retry != UINT64_MAX)
		uv_timer_start(&reg->retry_timer, on_retry_timer, next_retry - now, 0);
	if (!job->nops && !job->list) {
		if (reg->reconcile_started) {
			reg->last_reconcile_ms = now - reg->reconcile_started;
			reg->reconcile_started = 0;
			evd_log_info("registry", "reconciled %zu consumer%s in %" PRIu64 " ms", reg->nconsumers,
				     reg->nconsumers == 1 ? "" : "s", reg->last_reconcile_ms);
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
