/* SPDX-License-Identifier: Apache-2.0 */
#include "registry/registry_set.h"
#include "util/util_mem.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* qsort() with glibc's nonnull contract kept for empty arrays (which are NULL here). */
static void sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	if (n > 1)
		qsort(base, n, size, cmp);
}

/* ---- scan ---------------------------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

bool evd_registry_file_wanted(const char *name)
{
	/*
	 * Dot files cover editors' lock and swap files (".#x.yaml", ".x.yaml.swp") and Kubernetes'
	 * ConfigMap mount links ("..data"); '~' and '#' are backup and autosave copies.
	 */
	if (name[0] == '.' || name[0] == '#' || ends_with(name, "~"))
		return false;
	return (ends_with(name, ".yaml") && strlen(name) > 5) ||
	       (ends_with(name, ".yml") && strlen(name) > 4);
}

struct evd_registry_scan *evd_registry_scan_new(void)
{
	return evd_xcalloc(1, sizeof(struct evd_registry_scan));
}

static struct evd_registry_scan_file *scan_add(struct evd_registry_scan *scan, const char *name,
					       const char *path)
{
	scan->files = evd_xrealloc(scan->files, (scan->nfiles + 1) * sizeof(*scan->files));
	struct evd_registry_scan_file *f = &scan->files[scan->nfiles++];
	memset(f, 0, sizeof(*f));
	f->name = evd_xstrdup(name);
	f->path = evd_xstrdup(path);
	return f;
}

static int scan_file_cmp(const void *a, const void *b)
{
	return strcmp(((const struct evd_registry_scan_file *)a)->name,
		      ((const struct evd_registry_scan_file *)b)->name);
}

void evd_registry_scan_add_string(struct evd_registry_scan *scan, const char *name,
				  const char *text, const struct evd_registry_opts *opts)
{
	struct evd_registry_scan_file *f = scan_add(scan, name, name);
	f->rc = evd_registry_parse_string(f->path, text, strlen(text), opts, &f->subs, &f->diag);
	sort(scan->files, scan->nfiles, sizeof(*scan->files), scan_file_cmp);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int evd_registry_scan_dir(const char *dir, const struct evd_registry_opts *opts,
			  struct evd_registry_scan **out, struct evd_diag *diag)
{
	char **names = NULL;
	size_t nnames = 0;
	struct dirent *de;
	DIR *dp = opendir(dir);

	if (!dp) {
		int err = errno;
		evd_diag_add(diag, EVD_DIAG_ERROR, dir, 1, 1, "subscriptions.dir",
			     "cannot list the subscription directory: %s", strerror(err));
		return -err;
	}
	while ((de = readdir(dp))) {
		if (!evd_registry_file_wanted(de->d_name))
			continue;
		names = evd_xrealloc(names, (nnames + 1) * sizeof(*names));
		names[nnames++] = evd_xstrdup(de->d_name);
	}
	closedir(dp);
	sort(names, nnames, sizeof(*names), name_cmp);

	struct evd_registry_scan *scan = evd_registry_scan_new();
	for (size_t i = 0; i < nnames; i++) {
		struct evd_buf path = EVD_BUF_INIT;
		struct stat st;
		evd_buf_printf(&path, "%s/%s", dir, names[i]);
		/*
		 * Directories and sockets named like manifests are not files. A name stat() cannot
		 * follow (a dangling link, no permission) is a file that failed: dropping it would
		 * remove its subscriptions and make the directory look clean to pruning. Only a name
		 * gone since the listing (lstat fails too) is skipped.
		 */
		if (stat(path.data, &st) == 0) {
			if (S_ISREG(st.st_mode)) {
				int64_t mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 +
						   st.st_mtim.tv_nsec / 1000000;
				if (mtime_ms > scan->newest_mtime_ms)
					scan->newest_mtime_ms = mtime_ms;
				struct evd_registry_scan_file *f = scan_add(scan, names[i], path.data);
				f->rc = evd_registry_parse_file(f->path, opts, &f->subs, &f->diag);
			}
		} else {
			int err = errno;
			if (err != ENOENT || lstat(path.data, &st) == 0) {
				struct evd_registry_scan_file *f = scan_add(scan, names[i], path.data);
				evd_diag_add(&f->diag, EVD_DIAG_ERROR, f->path, 1, 1, NULL,
					     "cannot read: %s", strerror(err));
				f->rc = -err;
			}
		}
		evd_buf_free(&path);
		free(names[i]);
	}
	free(names);
	*out = scan;
	return 0;
}

void evd_registry_scan_free(struct evd_registry_scan *scan)
{
	if (!scan)
		return;
	for (size_t i = 0; i < scan->nfiles; i++) {
		free(scan->files[i].name);
		free(scan->files[i].path);
		evd_sub_list_clear(&scan->files[i].subs);
		evd_diag_free(&scan->files[i].diag);
	}
	free(scan->files);
	free(scan);
}

/* ---- set ----------------------------------------------------------------------------------- */

static int sub_cmp(const struct evd_subscription *a, const struct evd_subscription *b)
{
	int c = strcmp(a->ns, b->ns);
	return c ? c : strcmp(a->name, b->name);
}

static int sub_ptr_cmp(const void *a, const void *b)
{
	return sub_cmp(*(struct evd_subscription *const *)a, *(struct evd_subscription *const *)b);
}

struct evd_subscription *evd_registry_set_find(const struct evd_registry_set *set,
					       const char *ns, const char *name)
{
	if (!set)
		return NULL;
	size_t lo = 0, hi = set->active.count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct evd_subscription *s = set->active.items[mid];
		int c = strcmp(s->ns, ns);
		if (!c)
			c = strcmp(s->name, name);
		if (!c)
			return s;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct evd_registry_file *evd_registry_set_file(const struct evd_registry_set *set,
						      const char *name)
{
	for (size_t i = 0; set && i < set->nfiles; i++)
		if (strcmp(set->files[i].name, name) == 0)
			return &set->files[i];
	return NULL;
}

/* A subscription that claims its (namespace, name) from a file. */
struct claim {
	struct evd_subscription *sub;
	struct evd_registry_file *file;
	size_t order; /* the file's index: lexical order */
};

static int claim_cmp(const void *a, const void *b)
{
	const struct claim *x = a, *y = b;
	int c = sub_cmp(x->sub, y->sub);
	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Resolves (namespace, name) claimed by several files; winners go to set->active. */
static void pick_winners(struct evd_registry_set *set, const struct evd_registry_set *prev)
{
	struct claim *claims = NULL;
	size_t n = 0;

	for (size_t i = 0; i < set->nfiles; i++) {
		struct evd_registry_file *f = &set->files[i];
		claims = evd_xrealloc(claims, (n + f->subs.count + 1) * sizeof(*claims));
		for (size_t j = 0; j < f->subs.count; j++)
			claims[n++] = (struct claim){ f->subs.items[j], f, i };
	}
	sort(claims, n, sizeof(*claims), claim_cmp);

	for (size_t i = 0; i < n;) {
		size_t end = i + 1, win = i;
		bool by_active = false;
		while (end < n && sub_cmp(claims[end].sub, claims[i].sub) == 0)
			end++;
		const struct evd_subscription *was = end - i > 1
			? evd_registry_set_find(prev, claims[i].sub->ns, claims[i].sub->name)
			: NULL;
		for (size_t k = i; was && k < end; k++)
			if (strcmp(was->file, claims[k].file->path) == 0) {
				win = k;
				by_active = true;
			}
		evd_sub_list_push(&set->active, evd_subscription_ref(claims[win].sub));
		for (size_t k = i; k < end; k++) {
			if (k == win)
				continue;
			const struct evd_subscription *w = claims[win].sub, *l = claims[k].sub;
			evd_diag_add(&claims[k].file->diag, EVD_DIAG_ERROR, l->file, l->line, l->col,
				     "metadata.name",
				     "subscription %s/%s is also defined in %s:%d, which wins (%s); "
				     "this definition is ignored",
				     l->ns, l->name, w->file, w->line,
				     by_active ? "it was active first" : "it comes first in lexical order");
		}
		i = end;
	}
	free(claims);
}

struct subject_ref {
	const char *subject;
	struct evd_subscription *sub;
	size_t index; /* of sub in active */
	size_t type;
	struct evd_registry_file *file;
};

static int collision_cmp(const void *a, const void *b)
{
	const struct evd_registry_collision *x = a, *y = b;
	if (x->sub != y->sub)
		return x->sub < y->sub ? -1 : 1;
	if (x->type != y->type)
		return x->type < y->type ? -1 : 1;
	if (x->other_sub != y->other_sub)
		return x->other_sub < y->other_sub ? -1 : 1;
	return x->other_type < y->other_type ? -1 : x->other_type > y->other_type;
}

static int subject_ref_cmp(const void *a, const void *b)
{
	return strcmp(((const struct subject_ref *)a)->subject,
		      ((const struct subject_ref *)b)->subject);
}

static struct evd_registry_file *file_of(struct evd_registry_set *set,
					 const struct evd_subscription *s)
{
	for (size_t i = 0; i < set->nfiles; i++)
		if (strcmp(set->files[i].path, s->file) == 0)
			return &set->files[i];
	return NULL;
}

/*
 * Kyma's type collisions (reference §3.5): different types that reach one subject make each
 * subscriber receive the other's events. Kyma says nothing; eventingd warns on both sides.
 */
static void warn_collisions(struct evd_registry_set *set)
{
	struct subject_ref *refs = NULL;
	size_t n = 0;

	for (size_t i = 0; i < set->active.count; i++) {
		struct evd_subscription *s = set->active.items[i];
		struct evd_registry_file *f = file_of(set, s);
		refs = evd_xrealloc(refs, (n + s->ntypes + 1) * sizeof(*refs));
		for (size_t t = 0; t < s->ntypes; t++)
			refs[n++] = (struct subject_ref){ s->types[t].subject, s, i, t, f };
	}
	sort(refs, n, sizeof(*refs), subject_ref_cmp);
	for (size_t i = 0; i < n;) {
		size_t end = i + 1;
		while (end < n && strcmp(refs[end].subject, refs[i].subject) == 0)
			end++;
		for (size_t k = i; k < end; k++) {
			const struct evd_sub_type *mine = &refs[k].sub->types[refs[k].type];
			for (size_t o = i; o < end; o++) {
				const struct evd_sub_type *other = &refs[o].sub->types[refs[o].type];
				if (refs[o].sub == refs[k].sub ||
				    strcmp(other->original, mine->original) == 0)
					continue;
				struct evd_buf text = EVD_BUF_INIT;
				evd_buf_printf(&text, "type collision: \"%s\" maps to NATS subject \"%s\", "
						      "as type \"%s\" of subscription %s/%s (%s:%d) does; "
						      "both subscribers receive the events of both types",
					       mine->original, mine->subject, other->original,
					       refs[o].sub->ns, refs[o].sub->name, refs[o].sub->file,
					       other->line);
				set->collisions = evd_xrealloc(set->collisions, (set->ncollisions + 1) *
									       sizeof(*set->collisions));
				set->collisions[set->ncollisions++] = (struct evd_registry_collision){
					refs[k].index, refs[k].type, refs[o].index, refs[o].type,
					evd_buf_steal(&text)
				};
			}
			for (size_t o = i; o < end; o++) {
				const struct evd_sub_type *other = &refs[o].sub->types[refs[o].type];
				if (refs[o].sub == refs[k].sub ||
				    strcmp(other->original, mine->original) == 0)
					continue;
				if (refs[k].file)
					evd_diag_add(&refs[k].file->diag, EVD_DIAG_WARNING,
						     refs[k].sub->file, mine->line, mine->col, mine->path,
						     "type collision: \"%s\" maps to NATS subject \"%s\", "
						     "as type \"%s\" of subscription %s/%s (%s:%d) does; "
						     "both subscribers receive the events of both types",
						     mine->original, mine->subject, other->original,
						     refs[o].sub->ns, refs[o].sub->name, refs[o].sub->file,
						     other->line);
				break; /* one warning per type is enough to find the others */
			}
		}
		i = end;
	}
	free(refs);
	if (set->ncollisions > 1)
		qsort(set->collisions, set->ncollisions, sizeof(*set->collisions), collision_cmp);
}

const struct evd_registry_collision *evd_registry_set_collisions(const struct evd_registry_set *set,
								 size_t sub, size_t *n)
{
	size_t lo = 0, hi = set ? set->ncollisions : 0;

	*n = 0;
	while (lo < hi) { /* the first entry of sub or later */
		size_t mid = lo + (hi - lo) / 2;
		if (set->collisions[mid].sub < sub)
			lo = mid + 1;
		else
			hi = mid;
	}
	while (lo + *n < set->ncollisions && set->collisions[lo + *n].sub == sub)
		(*n)++;
	return *n ? &set->collisions[lo] : NULL;
}

size_t evd_registry_set_index(const struct evd_registry_set *set, const struct evd_subscription *s)
{
	size_t lo = 0, hi = set ? set->active.count : 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = sub_cmp(set->active.items[mid], s);
		if (!c)
			return set->active.items[mid] == s ? mid : (size_t)-1;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (size_t)-1;
}

struct evd_registry_set *evd_registry_set_next(const struct evd_registry_set *prev,
					       const struct evd_registry_scan *scan)
{
	struct evd_registry_set *set = evd_xcalloc(1, sizeof(*set));

	set->files = evd_xcalloc(scan->nfiles ? scan->nfiles : 1, sizeof(*set->files));
	for (size_t i = 0; i < scan->nfiles; i++) {
		const struct evd_registry_scan_file *sf = &scan->files[i];
		struct evd_registry_file *f = &set->files[set->nfiles++];
		f->name = evd_xstrdup(sf->name);
		f->path = evd_xstrdup(sf->path);
		evd_diag_merge(&f->diag, &sf->diag);
		const struct evd_sub_list *from = &sf->subs;
		if (sf->rc != 0) {
			const struct evd_registry_file *old = evd_registry_set_file(prev, sf->name);
			f->failed = true;
			from = old ? &old->subs : NULL;
			if (from && from->count)
				evd_diag_add(&f->diag, EVD_DIAG_WARNING, f->path, 1, 1, NULL,
					     "the file has errors: its previous version (%zu "
					     "subscription%s) stays active",
					     from->count, from->count == 1 ? "" : "s");
		}
		for (size_t j = 0; from && j < from->count; j++)
			evd_sub_list_push(&f->subs, evd_subscription_ref(from->items[j]));
	}
	pick_winners(set, prev);
	sort(set->active.items, set->active.count, sizeof(*set->active.items), sub_ptr_cmp);
	warn_collisions(set);
	for (size_t i = 0; i < set->nfiles; i++) {
		set->errors += set->files[i].diag.errors;
		set->warnings += set->files[i].diag.warnings;
	}
	return set;
}

void evd_registry_set_free(struct evd_registry_set *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->nfiles; i++) {
		free(set->files[i].name);
		free(set->files[i].path);
		evd_sub_list_clear(&set->files[i].subs);
		evd_diag_free(&set->files[i].diag);
	}
	free(set->files);
	evd_sub_list_clear(&set->active);
	for (size_t i = 0; i < set->ncollisions; i++)
		free(set->collisions[i].text);
	free(set->collisions);
	free(set);
}

void evd_registry_set_format_diag(const struct evd_registry_set *set, struct evd_buf *out)
{
	for (size_t i = 0; i < set->nfiles; i++)
		evd_diag_format(&set->files[i].diag, out);
}

/* ---- diff ---------------------------------------------------------------------------------- */

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool config_eq(const struct evd_subscription *a, const struct evd_subscription *b)
{
	if (a->nconfig != b->nconfig)
		return false;
	for (size_t i = 0; i < a->nconfig; i++)
		if (strcmp(a->config[i].key, b->config[i].key) != 0 ||
		    strcmp(a->config[i].value, b->config[i].value) != 0)
			return false;
	return true;
}

static bool types_eq(const struct evd_subscription *a, const struct evd_subscription *b)
{
	if (a->ntypes != b->ntypes)
		return false;
	for (size_t i = 0; i < a->ntypes; i++)
		if (strcmp(a->types[i].original, b->types[i].original) != 0 ||
		    strcmp(a->types[i].subject, b->types[i].subject) != 0)
			return false;
	return true;
}

static unsigned changes(const struct evd_subscription *a, const struct evd_subscription *b)
{
	unsigned c = 0;
	if (a == b)
		return 0;
	if (strcmp(a->sink.url, b->sink.url) != 0)
		c |= EVD_REGISTRY_CHANGED_SINK;
	if (!config_eq(a, b))
		c |= EVD_REGISTRY_CHANGED_CONFIG;
	if (a->max_in_flight != b->max_in_flight)
		c |= EVD_REGISTRY_CHANGED_MAX_IN_FLIGHT;
	if (a->content_mode != b->content_mode)
		c |= EVD_REGISTRY_CHANGED_CONTENT_MODE;
	if (!types_eq(a, b) || a->type_matching != b->type_matching || !str_eq(a->source, b->source))
		c |= EVD_REGISTRY_CHANGED_TYPES;
	if (strcmp(a->file, b->file) != 0 || !str_eq(a->id, b->id) ||
	    !str_eq(a->api_version, b->api_version))
		c |= EVD_REGISTRY_CHANGED_OTHER;
	return c;
}

/* The index of the type of s that owns consumer name, or -1. */
static long owner_of(const struct evd_subscription *s, const char *consumer)
{
	for (size_t i = 0; s && i < s->ntypes; i++)
		if (s->types[i].same_consumer_as < 0 && strcmp(s->types[i].consumer, consumer) == 0)
			return (long)i;
	return -1;
}

static void push_consumer(struct evd_registry_consumer_action **arr, size_t *n,
			  struct evd_subscription *s, size_t type, int old_mif)
{
	*arr = evd_xrealloc(*arr, (*n + 1) * sizeof(**arr));
	(*arr)[*n] = (struct evd_registry_consumer_action){ evd_subscription_ref(s), type, old_mif };
	(*n)++;
}

static void push_sub(struct evd_registry_diff *d, enum evd_registry_sub_op op, unsigned changed,
		     struct evd_subscription *old_sub, struct evd_subscription *new_sub)
{
	d->subs = evd_xrealloc(d->subs, (d->nsubs + 1) * sizeof(*d->subs));
	d->subs[d->nsubs++] = (struct evd_registry_sub_action){
		op, changed, old_sub ? evd_subscription_ref(old_sub) : NULL,
		new_sub ? evd_subscription_ref(new_sub) : NULL
	};
}

/* Consumers of one (namespace, name) before (a, may be NULL) and after (b, may be NULL). */
static void diff_consumers(struct evd_registry_diff *d, struct evd_subscription *a,
			   struct evd_subscription *b)
{
	for (size_t i = 0; b && i < b->ntypes; i++) {
		if (b->types[i].same_consumer_as >= 0)
			continue;
		long o = owner_of(a, b->types[i].consumer);
		if (o < 0)
			push_consumer(&d->create, &d->ncreate, b, i, 0);
		else if (a->max_in_flight != b->max_in_flight || a->max_deliver != b->max_deliver)
			/* maxDeliver can raise the consumer's server-side backstop (registry.h). */
			push_consumer(&d->update, &d->nupdate, b, i, a->max_in_flight);
	}
	for (size_t i = 0; a && i < a->ntypes; i++)
		if (a->types[i].same_consumer_as < 0 && owner_of(b, a->types[i].consumer) < 0)
			push_consumer(&d->remove, &d->nremove, a, i, 0);
}

struct evd_registry_diff *evd_registry_diff(const struct evd_registry_set *prev,
					    const struct evd_registry_set *next)
{
	struct evd_registry_diff *d = evd_xcalloc(1, sizeof(*d));
	size_t na = prev ? prev->active.count : 0, nb = next ? next->active.count : 0;
	size_t i = 0, j = 0;

	/* Both lists are sorted by (namespace, name): one merge pass. */
	while (i < na || j < nb) {
		struct evd_subscription *a = i < na ? prev->active.items[i] : NULL;
		struct evd_subscription *b = j < nb ? next->active.items[j] : NULL;
		int c = !a ? 1 : !b ? -1 : sub_cmp(a, b);
		if (c < 0) {
			push_sub(d, EVD_REGISTRY_SUB_REMOVE, 0, a, NULL);
			diff_consumers(d, a, NULL);
			i++;
		} else if (c > 0) {
			push_sub(d, EVD_REGISTRY_SUB_ADD, 0, NULL, b);
			diff_consumers(d, NULL, b);
			j++;
		} else {
			unsigned ch = changes(a, b);
			push_sub(d, ch ? EVD_REGISTRY_SUB_CHANGE : EVD_REGISTRY_SUB_KEEP, ch, a, b);
			diff_consumers(d, a, b);
			i++;
			j++;
		}
	}
	return d;
}

static void consumers_free(struct evd_registry_consumer_action *arr, size_t n)
{
	for (size_t i = 0; i < n; i++)
		evd_subscription_free(arr[i].sub);
	free(arr);
}

void evd_registry_diff_free(struct evd_registry_diff *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->nsubs; i++) {
		evd_subscription_free(d->subs[i].old_sub);
		evd_subscription_free(d->subs[i].new_sub);
	}
	free(d->subs);
	consumers_free(d->create, d->ncreate);
	consumers_free(d->update, d->nupdate);
	consumers_free(d->remove, d->nremove);
	free(d);
}

bool evd_registry_diff_empty(const struct evd_registry_diff *d)
{
	for (size_t i = 0; i < d->nsubs; i++)
		if (d->subs[i].op != EVD_REGISTRY_SUB_KEEP)
			return false;
	return d->ncreate == 0 && d->nupdate == 0 && d->nremove == 0;
}
