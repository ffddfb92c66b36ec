/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One batch of consumer work for the nats bridge's worker (registry_reconcile.c builds it on the
 * loop, registry_js.c runs it on the worker, registry_reconcile.c applies the results on the
 * loop). The job owns copies of everything the worker reads: no subscription, registry or other
 * loop-owned object is touched off the loop. Fields marked "results" are written by the worker
 * only, and read by the loop only after the bridge has posted the job back (its mutex orders
 * the accesses).
 */
#ifndef EVD_REGISTRY_JOB_H
#define EVD_REGISTRY_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include <nats/nats.h>

#include "nats/nats_bridge.h"
#include "registry/registry_internal.h"

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
	int64_t max_deliver; /* ensure: the server-side backstop (reg_max_deliver) */
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
	struct reg_op *ops;
	size_t nops;
	bool list;  /* return every consumer's counters */
	bool prune; /* find our consumers not in keep (the loop queues their deletion) */
	char **keep; /* sorted */
	size_t nkeep;
	/* Results. */
	bool list_ok;
	char *list_error;
	struct reg_info *infos; /* sorted by name */
	size_t ninfos;
	char **orphans;      /* names of our consumers not in keep */
	char **orphan_descs; /* their descriptions, "<ns>/<name>/<subject>" */
	size_t norphans;
};

/* Worker thread: runs the batch (nats.c calls that block). */
void reg_job_worker(struct evd_bridge_item *item);

#endif
