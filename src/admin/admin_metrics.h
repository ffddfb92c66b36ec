/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small Prometheus metrics registry (text exposition format 0.0.4): counters, gauges and
 * histograms with labels, plus gauges read from a callback at scrape time.
 *
 * Label values often come from untrusted input (event types and sources), so every family has
 * a cap on its number of label sets; past it, new label sets are counted in one series whose
 * labels all read "_overflow_" and eventingd_metrics_series_dropped_total is incremented.
 *
 * Loop thread only (no locking): the hot path is one hash lookup and an add.
 * Ownership: the registry owns its families; families live until evd_metrics_free().
 */
#ifndef EVD_ADMIN_METRICS_H
#define EVD_ADMIN_METRICS_H

#include <stddef.h>

#include "util/util_buf.h"

enum evd_metric_type {
	EVD_METRIC_COUNTER,
	EVD_METRIC_GAUGE,
	EVD_METRIC_HISTOGRAM,
};

struct evd_metrics;
struct evd_metric;

struct evd_metrics *evd_metrics_new(void);
void evd_metrics_free(struct evd_metrics *m);

/*
 * Declares a family. label_names: nlabels names (NULL when nlabels is 0). buckets: histogram
 * upper bounds, ascending (+Inf is implicit). max_series: cap on label sets (0: 1000).
 */
struct evd_metric *evd_metrics_add(struct evd_metrics *m, enum evd_metric_type type,
				   const char *name, const char *help, size_t nlabels,
				   const char *const *label_names, const double *buckets,
				   size_t nbuckets, size_t max_series);

/* A gauge whose value is read at scrape time. */
void evd_metrics_add_gauge_fn(struct evd_metrics *m, const char *name, const char *help,
			      double (*fn)(void *data), void *data);

/* label_values: as many as the family has labels (NULL when none). */
void evd_metric_add(struct evd_metric *f, const char *const *label_values, double v);
void evd_metric_set(struct evd_metric *f, const char *const *label_values, double v);
void evd_metric_observe(struct evd_metric *f, const char *const *label_values, double v);
/*
 * Forgets one series (a subscription that was deleted); nothing if it does not exist. A family
 * whose every series was removed renders only its HELP and TYPE lines.
 */
void evd_metric_remove(struct evd_metric *f, const char *const *label_values);
/* Forgets every series whose labels match label_values, where a NULL value matches any (all
 * series of a consumer whose other labels vary). Returns how many. */
size_t evd_metric_remove_matching(struct evd_metric *f, const char *const *label_values);
/* Current value of one series (counters and gauges; 0 if absent): for status and tests. */
double evd_metric_get(struct evd_metric *f, const char *const *label_values);

void evd_metrics_render(struct evd_metrics *m, struct evd_buf *out);

#endif
