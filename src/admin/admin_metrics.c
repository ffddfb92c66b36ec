/* SPDX-License-Identifier: Apache-2.0 */
#include "admin/admin_metrics.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/util_mem.h"

#define DEFAULT_MAX_SERIES 1000
#define OVERFLOW_VALUE "_overflow_"

struct series {
	struct series *hnext; /* hash chain */
	struct series *next;  /* insertion order, for stable output */
	uint64_t hash;
	char **values;
	double value;    /* counter/gauge; histogram sum */
	uint64_t count;  /* histogram count */
	uint64_t *bucket_counts;
};

struct evd_metric {
	struct evd_metric *next;
	struct evd_metrics *owner;
	enum evd_metric_type type;
	char *name;
	char *help;
	size_t nlabels;
	char **label_names;
	double *buckets;
	size_t nbuckets;
	size_t max_series;
	size_t nseries;
	size_t nslots;
	struct series **slots;
	struct series *first;
	struct series *last;
	double (*fn)(void *data);
	void *fn_data;
};

struct evd_metrics {
	struct evd_metric *first;
	struct evd_metric *last;
	struct evd_metric *dropped;
};

static void append_family(struct evd_metrics *m, struct evd_metric *f)
{
	if (m->last)
		m->last->next = f;
	else
		m->first = f;
	m->last = f;
}

struct evd_metrics *evd_metrics_new(void)
{
	struct evd_metrics *m = evd_xcalloc(1, sizeof(*m));
	m->dropped = evd_metrics_add(m, EVD_METRIC_COUNTER, "eventingd_metrics_series_dropped_total",
				     "Label sets folded into the _overflow_ series because a "
				     "family reached its cap.",
				     0, NULL, NULL, 0, 1);
	return m;
}

static void series_free(struct series *s, size_t nlabels)
{
	for (size_t i = 0; i < nlabels; i++)
		free(s->values[i]);
	free(s->values);
	free(s->bucket_counts);
	free(s);
}

void evd_metrics_free(struct evd_metrics *m)
{
	if (!m)
		return;
	struct evd_metric *f = m->first;
	while (f) {
		struct evd_metric *next = f->next;
		struct series *s = f->first;
		while (s) {
			struct series *sn = s->next;
			series_free(s, f->nlabels);
			s = sn;
		}
		for (size_t i = 0; i < f->nlabels; i++)
			free(f->label_names[i]);
		free(f->label_names);
		free(f->buckets);
		free(f->slots);
		free(f->name);
		free(f->help);
		free(f);
		f = next;
	}
	free(m);
}

struct evd_metric *evd_metrics_add(struct evd_metrics *m, enum evd_metric_type type,
				   const char *name, const char *help, size_t nlabels,
				   const char *const *label_names, const double *buckets,
				   size_t nbuckets, size_t max_series)
{
	struct evd_metric *f = evd_xcalloc(1, sizeof(*f));
	f->owner = m;
	f->type = type;
	f->name = evd_xstrdup(name);
	f->help = evd_xstrdup(help);
	f->nlabels = nlabels;
	if (nlabels) {
		f->label_names = evd_xcalloc(nlabels, sizeof(char *));
		for (size_t i = 0; i < nlabels; i++)
			f->label_names[i] = evd_xstrdup(label_names[i]);
	}
	if (nbuckets) {
		f->buckets = evd_xcalloc(nbuckets, sizeof(double));
		memcpy(f->buckets, buckets, nbuckets * sizeof(double));
		f->nbuckets = nbuckets;
	}
	f->max_series = max_series ? max_series : DEFAULT_MAX_SERIES;
	f->nslots = 64;
	f->slots = evd_xcalloc(f->nslots, sizeof(*f->slots));
	append_family(m, f);
	return f;
}

void evd_metrics_add_gauge_fn(struct evd_metrics *m, const char *name, const char *help,
			      double (*fn)(void *data), void *data)
{
	struct evd_metric *f = evd_metrics_add(m, EVD_METRIC_GAUGE, name, help, 0, NULL, NULL, 0, 1);
	f->fn = fn;
	f->fn_data = data;
}

/* FNV-1a over the label values, each followed by a 0xff separator (never valid in UTF-8). */
static uint64_t hash_values(const char *const *values, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++) {
		for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++)
			h = (h ^ *p) * 1099511628211ULL;
		h = (h ^ 0xff) * 1099511628211ULL;
	}
	return h;
}

static bool values_equal(char **a, const char *const *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

static void rehash(struct evd_metric *f)
{
	size_t nslots = f->nslots * 2;
	struct series **slots = evd_xcalloc(nslots, sizeof(*slots));
	for (struct series *s = f->first; s; s = s->next) {
		size_t i = s->hash & (nslots - 1);
		s->hnext = slots[i];
		slots[i] = s;
	}
	free(f->slots);
	f->slots = slots;
	f->nslots = nslots;
}

static struct series *lookup(struct evd_metric *f, const char *const *values, bool create)
{
	static const char *const overflow[16] = {
		OVERFLOW_VALUE, OVERFLOW_VALUE, OVERFLOW_VALUE, OVERFLOW_VALUE,
		OVERFLOW_VALUE, OVERFLOW_VALUE, OVERFLOW_VALUE, OVERFLOW_VALUE,
		OVERFLOW_VALUE, OVERFLOW_VALUE, OVERFLOW_VALUE, OVERFLOW_VALUE,
		OVERFLOW_VALUE, OVERFLOW_VALUE, OVERFLOW_VALUE, OVERFLOW_VALUE,
	};
	uint64_t h = hash_values(values, f->nlabels);
	for (struct series *s = f->slots[h & (f->nslots - 1)]; s; s = s->hnext)
		if (s->hash == h && values_equal(s->values, values, f->nlabels))
			return s;
	if (!create)
		return NULL;
	if (f->nseries >= f->max_series && f->nlabels > 0 && f->nlabels <= 16 &&
	    values != overflow) {
		if (f != f->owner->dropped)
			evd_metric_add(f->owner->dropped, NULL, 1);
		return lookup(f, overflow, true);
	}
	struct series *s = evd_xcalloc(1, sizeof(*s));
	s->hash = h;
	if (f->nlabels) {
		s->values = evd_xcalloc(f->nlabels, sizeof(char *));
		for (size_t i = 0; i < f->nlabels; i++)
			s->values[i] = evd_xstrdup(values[i] ? values[i] : "");
	}
	if (f->type == EVD_METRIC_HISTOGRAM)
		s->bucket_counts = evd_xcalloc(f->nbuckets + 1, sizeof(uint64_t));
	size_t i = h & (f->nslots - 1);
	s->hnext = f->slots[i];
	f->slots[i] = s;
	if (f->last)
		f->last->next = s;
	else
		f->first = s;
	f->last = s;
	if (++f->nseries > f->nslots)
		rehash(f);
	return s;
}

void evd_metric_add(struct evd_metric *f, const char *const *label_values, double v)
{
	lookup(f, label_values, true)->value += v;
}

void evd_metric_set(struct evd_metric *f, const char *const *label_values, double v)
{
	lookup(f, label_values, true)->value = v;
}

void evd_metric_observe(struct evd_metric *f, const char *const *label_values, double v)
{
	struct series *s = lookup(f, label_values, true);
	s->value += v;
	s->count++;
	for (size_t i = 0; i < f->nbuckets; i++) {
		if (v <= f->buckets[i]) {
			s->bucket_counts[i]++;
			return;
		}
	}
	s->bucket_counts[f->nbuckets]++;
}

void evd_metric_remove(struct evd_metric *f, const char *const *label_values)
{
	struct series *s = lookup(f, label_values, false), **pp, *prev = NULL;
	if (!s)
		return;
	for (pp = &f->slots[s->hash & (f->nslots - 1)]; *pp != s; pp = &(*pp)->hnext)
		;
	*pp = s->hnext;
	for (struct series *it = f->first; it != s; it = it->next)
		prev = it;
	if (prev)
		prev->next = s->next;
	else
		f->first = s->next;
	if (f->last == s)
		f->last = prev;
	f->nseries--;
	series_free(s, f->nlabels);
}

size_t evd_metric_remove_matching(struct evd_metric *f, const char *const *label_values)
{
	size_t n = 0;
	for (struct series *s = f->first, *next; s; s = next) {
		next = s->next;
		bool match = true;
		for (size_t i = 0; i < f->nlabels && match; i++)
			match = !label_values[i] || strcmp(label_values[i], s->values[i]) == 0;
		if (match) {
			evd_metric_remove(f, (const char *const *)s->values);
			n++;
		}
	}
	return n;
}

double evd_metric_get(struct evd_metric *f, const char *const *label_values)
{
	struct series *s = lookup(f, label_values, false);
	if (!s)
		return 0;
	return f->type == EVD_METRIC_HISTOGRAM ? (double)s->count : s->value;
}

/* Label values escape backslash, double quote and newline (exposition format). */
static void append_label_value(struct evd_buf *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			evd_buf_append_char(out, '\\');
		if (*v == '\n') {
			evd_buf_append_str(out, "\\n");
			continue;
		}
		evd_buf_append_char(out, *v);
	}
}

static void append_number(struct evd_buf *out, double v)
{
	if (isinf(v))
		evd_buf_append_str(out, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 1e15)
		evd_buf_printf(out, "%.0f", v);
	else
		evd_buf_printf(out, "%.9g", v);
}

static void append_labels(struct evd_buf *out, const struct evd_metric *f,
			  const struct series *s, const char *le)
{
	if (f->nlabels == 0 && !le)
		return;
	evd_buf_append_char(out, '{');
	for (size_t i = 0; i < f->nlabels; i++) {
		if (i)
			evd_buf_append_char(out, ',');
		evd_buf_printf(out, "%s=\"", f->label_names[i]);
		append_label_value(out, s->values[i]);
		evd_buf_append_char(out, '"');
	}
	if (le)
		evd_buf_printf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
	evd_buf_append_char(out, '}');
}

void evd_metrics_render(struct evd_metrics *m, struct evd_buf *out)
{
	static const char *const type_names[] = { "counter", "gauge", "histogram" };
	for (struct evd_metric *f = m->first; f; f = f->next) {
		evd_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
			       type_names[f->type]);
		if (f->fn) {
			evd_buf_printf(out, "%s ", f->name);
			append_number(out, f->fn(f->fn_data));
			evd_buf_append_char(out, '\n');
			continue;
		}
		if (f->nlabels == 0 && !f->first && f->type != EVD_METRIC_HISTOGRAM) {
			evd_buf_printf(out, "%s 0\n", f->name);
			continue;
		}
		for (struct series *s = f->first; s; s = s->next) {
			if (f->type != EVD_METRIC_HISTOGRAM) {
				evd_buf_append_str(out, f->name);
				append_labels(out, f, s, NULL);
				evd_buf_append_char(out, ' ');
				append_number(out, s->value);
				evd_buf_append_char(out, '\n');
				continue;
			}
			uint64_t cum = 0;
			char le[32];
			for (size_t i = 0; i <= f->nbuckets; i++) {
				cum += s->bucket_counts[i];
				if (i < f->nbuckets)
					snprintf(le, sizeof(le), "%g", f->buckets[i]);
				else
					strcpy(le, "+Inf");
				evd_buf_printf(out, "%s_bucket", f->name);
				append_labels(out, f, s, le);
				evd_buf_printf(out, " %llu\n", (unsigned long long)cum);
			}
			evd_buf_printf(out, "%s_sum", f->name);
			append_labels(out, f, s, NULL);
			evd_buf_append_char(out, ' ');
			append_number(out, s->value);
			evd_buf_printf(out, "\n%s_count", f->name);
			append_labels(out, f, s, NULL);
			evd_buf_printf(out, " %llu\n", (unsigned long long)s->count);
		}
	}
}
