/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The set of active subscriptions, computed from the subscription directory, and the difference
 * between two such sets as plain arrays of actions for the reconciler.
 *
 * Three steps, so that only the first touches the file system and the rules can be tested
 * without one:
 *   1. evd_registry_scan_dir() reads every manifest of the directory (a scan);
 *   2. evd_registry_set_next(prev, scan) applies the rules below and returns the next set;
 *   3. evd_registry_diff(prev, next) says which consumers to create, update and delete, and
 *      which subscriptions to add, remove or switch to a new definition.
 *
 * Rules (man 5 eventingd-subscription, "Live reload"):
 *   - files are *.yaml and *.yml, not hidden, not editor leftovers, taken in lexical (byte) order;
 *   - a file is all or nothing; a file that fails keeps its previous valid version active (none
 *     if it never had one), and its errors are reported on it;
 *   - a file that disappeared takes its subscriptions with it;
 *   - (namespace, name) is unique: when two files define it, the file whose definition is active
 *     in prev wins, otherwise the first file in lexical order; the other is reported as an error
 *     on its own file and ignored;
 *   - two different types of different subscriptions that map to the same NATS subject each get a
 *     warning (Kyma's silent "type collision").
 *
 * Ownership: scans, sets and diffs are owned by the caller and hold references on the
 * subscriptions they list, so each can be freed in any order. Not thread-safe: loop thread, or
 * any single thread (the subscription reference counts are plain ints).
 */
#ifndef EVD_REGISTRY_SET_H
#define EVD_REGISTRY_SET_H

#include <stdbool.h>
#include <stddef.h>

#include "registry/registry_parse.h"
#include "util/util_buf.h"
#include "util/util_diag.h"

/* One file as just read. */
struct evd_registry_scan_file {
	char *name; /* base name: the sort key */
	char *path; /* as used in diagnostics and in evd_subscription.file */
	int rc;     /* 0, -EINVAL (invalid) or -errno (unreadable) */
	struct evd_sub_list subs; /* empty unless rc == 0 */
	struct evd_diag diag;
};

struct evd_registry_scan {
	struct evd_registry_scan_file *files; /* sorted by name */
	size_t nfiles;
	int64_t newest_mtime_ms; /* of the files read (wall clock), 0 when none */
};

/* True for names the directory scan reads: "*.yaml"/"*.yml", no dot file, no editor leftover. */
bool evd_registry_file_wanted(const char *name);

struct evd_registry_scan *evd_registry_scan_new(void);
/*
 * Reads every wanted regular file (symbolic links followed) of dir. Returns 0 and a new scan in
 * *out, or -errno when the directory cannot be listed (a diagnostic goes to diag). Unreadable
 * or invalid files are not an error here: they are entries with rc != 0.
 */
int evd_registry_scan_dir(const char *dir, const struct evd_registry_opts *opts,
			  struct evd_registry_scan **out, struct evd_diag *diag);
/* Adds one file read from memory, as if it were named name in the directory (tests, checks). */
void evd_registry_scan_add_string(struct evd_registry_scan *scan, const char *name,
				  const char *text, const struct evd_registry_opts *opts);
void evd_registry_scan_free(struct evd_registry_scan *scan);

/* One file of a set. */
struct evd_registry_file {
	char *name;
	char *path;
	struct evd_sub_list subs; /* the version in effect: the latest valid one */
	bool failed;              /* the latest read failed: subs are an older version, or none */
	struct evd_diag diag;     /* the latest read's diagnostics plus the set's own */
};

/* One type of an active subscription whose subject another subscription's other type reaches. */
struct evd_registry_collision {
	size_t sub;  /* index in active */
	size_t type; /* index in its types */
	size_t other_sub, other_type;
	char *text;  /* "type collision: ..." */
};

struct evd_registry_set {
	struct evd_registry_file *files; /* sorted by name */
	size_t nfiles;
	struct evd_sub_list active; /* sorted by (namespace, name) */
	size_t errors;              /* totals over every file's diag */
	size_t warnings;
	/* Every colliding pair, sorted by (sub, type, other_sub, other_type): computed once per
	 * set, so the status (on the loop, per request) only looks its subscription's range up. */
	struct evd_registry_collision *collisions;
	size_t ncollisions;
};

/* prev is NULL at start-up. Never fails: problems are diagnostics of the files. */
struct evd_registry_set *evd_registry_set_next(const struct evd_registry_set *prev,
					       const struct evd_registry_scan *scan);
void evd_registry_set_free(struct evd_registry_set *set);
/* The collisions of active[sub]: *n entries from the returned one (NULL when none). */
const struct evd_registry_collision *evd_registry_set_collisions(const struct evd_registry_set *set,
								 size_t sub, size_t *n);
/* The index of s in active, or (size_t)-1. */
size_t evd_registry_set_index(const struct evd_registry_set *set, const struct evd_subscription *s);
struct evd_subscription *evd_registry_set_find(const struct evd_registry_set *set,
					       const char *ns, const char *name);
const struct evd_registry_file *evd_registry_set_file(const struct evd_registry_set *set,
						      const char *name);
/* Every file's diagnostics, one per line, files in name order. */
void evd_registry_set_format_diag(const struct evd_registry_set *set, struct evd_buf *out);

enum evd_registry_sub_op {
	EVD_REGISTRY_SUB_ADD,    /* new (namespace, name) */
	EVD_REGISTRY_SUB_REMOVE, /* gone */
	EVD_REGISTRY_SUB_CHANGE, /* same (namespace, name), something changed (see changed) */
	EVD_REGISTRY_SUB_KEEP,   /* same definition; new_sub may still be another object */
};

/* Bits of evd_registry_sub_action.changed. */
#define EVD_REGISTRY_CHANGED_SINK (1u << 0)          /* switch target, keep consumers */
#define EVD_REGISTRY_CHANGED_CONFIG (1u << 1)        /* raw spec.config differs */
#define EVD_REGISTRY_CHANGED_MAX_IN_FLIGHT (1u << 2) /* consumers are in update[] */
#define EVD_REGISTRY_CHANGED_CONTENT_MODE (1u << 3)
#define EVD_REGISTRY_CHANGED_TYPES (1u << 4) /* types/subjects: see create[] and remove[] */
#define EVD_REGISTRY_CHANGED_OTHER (1u << 5) /* file, id, apiVersion: nothing to do */

struct evd_registry_sub_action {
	enum evd_registry_sub_op op;
	unsigned changed;
	struct evd_subscription *old_sub; /* NULL for ADD */
	struct evd_subscription *new_sub; /* NULL for REMOVE */
};

/* One durable consumer: the type of sub at index type owns it (same_consumer_as == -1). */
struct evd_registry_consumer_action {
	struct evd_subscription *sub; /* the new one for create and update, the old for remove */
	size_t type;
	int old_max_in_flight; /* update only */
};

/*
 * Every subscription of either set appears once in subs (old order for REMOVE, new order for
 * the rest). A reconciler that loses no events walks: create[], then subs[] (switch sinks,
 * start and stop dispatching), then update[], then remove[].
 */
struct evd_registry_diff {
	struct evd_registry_sub_action *subs;
	size_t nsubs;
	struct evd_registry_consumer_action *create;
	size_t ncreate;
	struct evd_registry_consumer_action *update;
	size_t nupdate;
	struct evd_registry_consumer_action *remove;
	size_t nremove;
};

/* prev NULL means "nothing active". The diff holds its own references. */
struct evd_registry_diff *evd_registry_diff(const struct evd_registry_set *prev,
					    const struct evd_registry_set *next);
void evd_registry_diff_free(struct evd_registry_diff *diff);
/* True when applying the diff would change nothing (every subs[] entry is KEEP). */
bool evd_registry_diff_empty(const struct evd_registry_diff *diff);

#endif
