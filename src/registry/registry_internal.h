/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The registry's private state, shared by registry.c, registry_watch.c, registry_reconcile.c
 * and registry_status.c. Loop thread only, except where a field says otherwise.
 *
 * Consumers are tracked by name (Kyma's name, unique per (namespace, name, subject)) in a
 * sorted array: results coming back from the worker look their consumer up by name, so a
 * consumer that was removed meanwhile is simply not found, and no pointer crosses threads.
 */
#ifndef EVD_REGISTRY_INTERNAL_H
#define EVD_REGISTRY_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "registry/registry.h"
#include "registry/registry_set.h"

struct evd_metric;
struct reg_scan_job;
struct reg_job;

enum reg_consumer_state {
	REG_C_PENDING,  /* not verified against JetStream yet */
	REG_C_READY,    /* exists with our settings */
	REG_C_CONFLICT, /* exists with settings we cannot use or change: left alone */
	REG_C_ERROR,    /* the last attempt failed (NATS down...): retried with backoff */
};

/* One durable consumer that the active set wants. */
struct reg_consumer {
	char name[EVD_SUB_CONSUMER_NAME_LEN + 1];
	struct evd_subscription *sub; /* reference: the definition in effect */
	size_t type;                  /* the type of sub that owns the consumer */
	enum reg_consumer_state state;
	bool dirty;    /* must be (re)verified or updated */
	bool busy;     /* an ensure for it is on the worker */
	char *error;   /* state ERROR or CONFLICT: why */
	unsigned attempts;
	uint64_t retry_at; /* uv_now() */
	int64_t since_ms;  /* wall clock of the last state change */
	/* From the last answer of JetStream about it. */
	bool have_info;
	int64_t info_ms; /* wall clock when that answer arrived: the counters' age in the status */
	int64_t created_ns;
	uint64_t num_pending;
	int64_t num_ack_pending;
	int64_t num_redelivered;
};

/*
 * A consumer to delete (its type or subscription is gone, or an orphan). Never at once: a file
 * read while empty or half-written looks like deleted subscriptions, so a deletion waits
 * subscriptions.delete_grace (retry_at) and is dropped whenever the consumer is wanted again
 * (checked when it is queued, when it is due, and when a running one comes back).
 */
struct reg_delete {
	char name[EVD_SUB_CONSUMER_NAME_LEN + 1];
	char *what; /* "<ns>/<name>/<subject>", for the log */
	bool busy;
	bool orphan; /* found by a prune, owned by no subscription of any set */
	unsigned attempts;
	uint64_t retry_at; /* uv_now(): the end of the grace period, then of the backoff */
};

struct evd_registry {
	uv_loop_t *loop;
	struct evd_bridge *bridge;
	struct evd_nats *nats;
	const struct evd_config *cfg;
	struct evd_metrics *metrics;

	/* Start-up values of restart keys. */
	char *stream;
	struct evd_registry_opts opts;
	char *subject_prefix, *event_type_prefix;

	/* ---- watch (registry_watch.c) */
	char *dir;                /* subscriptions.dir being watched */
	uv_fs_event_t fs_event;   /* on dir; inactive while dir is missing */
	bool fs_event_active;
	uv_timer_t debounce_timer;
	uint64_t debounce_first;  /* uv_now() of the first event of a burst, 0 when none */
	ino_t watch_ino;          /* the directory the watch is on */
	dev_t watch_dev;
	uv_timer_t rescan_timer;  /* periodic safety net */
	struct reg_scan_job *scan; /* on the thread pool, or NULL */
	uint64_t settle_first;    /* uv_now() of the first scan put off for a fresh file, or 0 */
	bool scan_again;          /* a change arrived while scanning */
	int dir_err;              /* 0, or -errno of the last listing */
	char *dir_error;          /* its message */
	bool dir_warned;
	uint64_t scans;
	int64_t last_scan_ms;     /* wall clock */

	/* ---- the applied set */
	struct evd_registry_set *set; /* NULL before the first scan */
	/* Every subject a type of set's active subscriptions maps to, sorted, unique; the strings
	 * belong to set's subscriptions (evd_registry_wants_subject looks them up per publish). */
	const char **subjects;
	size_t nsubjects;
	bool loaded;
	int64_t applied_ms;
	uint64_t stable_since; /* uv_now() of the last change of the set or directory state */

	/* ---- reconcile (registry_reconcile.c) */
	struct reg_consumer **consumers; /* sorted by name */
	size_t nconsumers;
	struct reg_delete *deletes;
	size_t ndeletes;
	bool backend_ready;
	bool prune_due;
	bool refresh_due;
	struct reg_job *job;      /* on the worker, or NULL */
	uv_timer_t retry_timer;   /* earliest retry_at */
	uv_timer_t refresh_timer; /* consumer info refresh */
	int64_t ack_wait_ms;
	uint32_t max_deliver;
	uint64_t reconcile_started; /* uv_now() when work appeared after idling */
	uint64_t last_reconcile_ms; /* how long the last burst of work took */
	size_t pruned_total;

	/* ---- status (registry_status.c) */
	evd_registry_status_extra_cb *status_extra; /* or NULL */
	void *status_extra_data;

	/* ---- metrics */
	struct evd_metric *m_status;     /* eventing_ec_subscription_status */
	struct evd_metric *m_subscribed; /* eventing_ec_event_type_subscribed_total */
	struct evd_metric *m_subs;       /* eventingd_subscriptions{state} */
	struct evd_metric *m_files_failed;
	struct evd_metric *m_pending;     /* eventingd_consumer_pending, from the cached info */
	struct evd_metric *m_ack_pending; /* eventingd_consumer_ack_pending */

	/* ---- the observer (the dispatcher) */
	evd_registry_observer_cb observer;
	void *observer_data;

	int open_handles;
	bool closing;
};

/* registry.c */
void reg_apply_set(struct evd_registry *reg, struct evd_registry_set *next);
struct reg_consumer *reg_consumer_find(const struct evd_registry *reg, const char *name);
int64_t reg_wall_ms(void);
void reg_set_state(struct evd_registry *reg, struct reg_consumer *c, enum reg_consumer_state s,
		   const char *error);
bool reg_sub_ready(const struct evd_registry *reg, const struct evd_subscription *s);
void reg_update_metrics(struct evd_registry *reg, const struct evd_subscription *s);
/* Every subscription's metrics and the gauges, after a batch of changes. */
void reg_refresh_metrics(struct evd_registry *reg);
void reg_handle_closed(uv_handle_t *h);
/* Tells the observer the level of c (present). */
void reg_notify(struct evd_registry *reg, const struct reg_consumer *c);

/* registry_watch.c */
int reg_watch_start(struct evd_registry *reg);
void reg_watch_switch(struct evd_registry *reg, const char *dir);
void reg_watch_schedule(struct evd_registry *reg, uint64_t delay_ms);
void reg_watch_close(struct evd_registry *reg);

/* registry_reconcile.c */
void reg_reconcile_init(struct evd_registry *reg);
/* Queues a deferred deletion (subscriptions.delete_grace) unless one is queued already. */
void reg_delete_push(struct evd_registry *reg, const char *name, const char *what, bool orphan);
/* A consumer wanted again: drops its queued deletion (a running one is settled when it returns). */
void reg_delete_cancel(struct evd_registry *reg, const char *name);
void reg_reconcile_kick(struct evd_registry *reg);
void reg_reconcile_close(struct evd_registry *reg);
/* The consumer config text for status and logs: the settings eventingd asks for. */
/* The server-side MaxDeliver of a consumer of s (s NULL: with the global dispatch.max_deliver). */
int64_t reg_max_deliver(const struct evd_registry *reg, const struct evd_subscription *s);

#endif
