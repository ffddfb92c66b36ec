/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The JetStream side of reconciliation: runs on the nats bridge's worker thread only (every call
 * here blocks on a JetStream API request). See registry_reconcile.c for the rules and
 * registry_job.h for what the job carries.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry_job.h"
#include "util/util_buf.h"
#include "util/util_log.h"
#include "util/util_mem.h"

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

/* listed: list holds every consumer of the stream (NULL: there are none); else ask for this one. */
static void ensure_one(struct reg_job *job, struct reg_op *op, bool listed, jsConsumerInfoList *list)
{
	jsConsumerInfo *own = NULL, *ci = NULL;
	jsConsumerConfig cc;
	jsErrCode jerr = 0;
	natsStatus s;
	char deliver[sizeof(EVD_REGISTRY_DELIVER_PREFIX) + EVD_SUB_CONSUMER_NAME_LEN];

	if (listed) {
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
		cc.MaxDeliver = op->max_deliver;
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
	    have->MaxDeliver == op->max_deliver && str_is(have->Description, op->description)) {
		op->result = R_REBOUND;
		goto out;
	}
	/* Same consumer, other limits: JetStream updates these in place, keeping its messages. */
	cc = *have;
	cc.MaxAckPending = op->max_ack_pending;
	cc.AckWait = job->ack_wait_ns;
	cc.MaxDeliver = op->max_deliver;
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

/* Only finds them: deleting goes through the loop's deferred deletes (delete_grace), where it
 * is checked once more against the subscriptions wanted at that moment. */
static void find_orphans(struct reg_job *job, jsConsumerInfoList *list)
{
	for (int i = 0; i < list->Count; i++) {
		const jsConsumerInfo *ci = list->List[i];
		const char *name = ci->Name;
		if (!is_ours(ci) || bsearch(&name, job->keep, job->nkeep, sizeof(char *), str_ptr_cmp))
			continue;
		job->orphans = evd_xrealloc(job->orphans, (job->norphans + 1) * sizeof(char *));
		job->orphan_descs = evd_xrealloc(job->orphan_descs, (job->norphans + 1) * sizeof(char *));
		job->orphans[job->norphans] = evd_xstrdup(name);
		job->orphan_descs[job->norphans++] = evd_xstrdup(ci->Config->Description);
	}
}

static void list_free(jsConsumerInfoList *list)
{
	if (!list)
		return;
	for (int i = 0; i < list->Count; i++)
		jsConsumerInfo_Destroy(list->List[i]);
	free(list->List);
	free(list);
}

/*
 * Every consumer of the stream with its info, in a list we allocate (list_free frees it): names
 * first (js_ConsumerNames), then js_GetConsumerInfo per name. Not js_Consumers: in nats.c 3.4.1
 * its error path (src/jsm.c:3282-3295, "jsStreamInfo *si = (jsStreamInfo*) val; ...
 * jsStreamInfo_Destroy(si)") frees the jsConsumerInfo already collected as jsStreamInfo, so a
 * page after the first that fails (timeout, disconnect: above 256 consumers, nats-server's
 * JSApiListLimit) crashes the daemon. js_ConsumerNames' error path only destroys its hash of
 * copied names (jsm.c:3436, natsStrHash_Destroy; values are NULL), and its pages hold 1024
 * names (JSApiNamesLimit). The price is one request per consumer on this worker thread: 1,000
 * consumers listed in 0.1-0.5 s on loopback (the debug log says how long each listing took).
 * A consumer deleted between the two steps is simply absent; any other failure ends the
 * listing at once (a lost connection would otherwise cost one timeout per consumer).
 * NATS_NOT_FOUND without a JetStream error still means "no consumer at all". Sets
 * job->list_ok or job->list_error; returns the list sorted by name (NULL: none, or error).
 */
static jsConsumerInfoList *list_consumers(struct reg_job *job)
{
	jsConsumerNamesList *names = NULL;
	jsErrCode jerr = 0;
	int64_t t0 = nats_Now();
	natsStatus s = js_ConsumerNames(&names, job->js, job->stream, NULL, &jerr);

	if (s == NATS_NOT_FOUND && !jerr) {
		job->list_ok = true; /* nats.c: no consumer at all */
		return NULL;
	}
	if (s != NATS_OK) {
		job->list_error = nats_error("listing the stream's consumers", s, jerr);
		return NULL;
	}
	jsConsumerInfoList *list = evd_xcalloc(1, sizeof(*list));
	list->List = evd_xcalloc((size_t)names->Count + 1, sizeof(*list->List));
	for (int i = 0; i < names->Count && !job->list_error; i++) {
		jsConsumerInfo *ci = NULL;
		jerr = 0;
		s = js_GetConsumerInfo(&ci, job->js, job->stream, names->List[i], NULL, &jerr);
		if (s == NATS_OK && ci->Config && ci->Name && *ci->Name) {
			list->List[list->Count++] = ci;
		} else if (s == NATS_OK) {
			jsConsumerInfo_Destroy(ci);
			job->list_error = evd_xstrdup("listing the stream's consumers: the info of "
						      "a consumer has no name or no config");
		} else if (!not_found(s, jerr)) {
			job->list_error = nats_error("listing the stream's consumers", s, jerr);
		}
	}
	jsConsumerNamesList_Destroy(names);
	if (job->list_error || !list->Count) { /* none left: as when there were none */
		job->list_ok = !job->list_error;
		list_free(list);
		return NULL;
	}
	job->list_ok = true;
	if (list->Count > 1)
		qsort(list->List, (size_t)list->Count, sizeof(*list->List), ci_cmp);
	evd_log_debug("registry", "listed %d consumers of stream %s in %" PRId64 " ms", list->Count,
		      job->stream, nats_Now() - t0);
	return list;
}

void reg_job_worker(struct evd_bridge_item *item)
{
	struct reg_job *job = (struct reg_job *)item;
	jsConsumerInfoList *list = NULL;

	/* Not for a batch of ensures: a listing costs one request per consumer of the stream (see
	 * list_consumers), more than the ensures' own one each; 1,000 re-bound in 0.5 s, not 1.3. */
	if (job->list || job->prune)
		list = list_consumers(job);
	for (size_t i = 0; i < job->nops; i++) {
		struct reg_op *op = &job->ops[i];
		if (natsConnection_Status(job->nc) != NATS_CONN_STATUS_CONNECTED) {
			op->result = R_ERROR;
			op->message = evd_xstrdup("not connected to NATS");
			continue;
		}
		if (op->kind == OP_ENSURE)
			ensure_one(job, op, job->list_ok, list);
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
		find_orphans(job, list);
	list_free(list);
}

