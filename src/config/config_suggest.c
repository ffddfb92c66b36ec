/* SPDX-License-Identifier: Apache-2.0 */
/*
 * "Did you mean": for an unknown key, the nearest keys or sections of the table. A key whose last
 * name matches exactly but sits at another level (publish.ack_wait for dispatch.ack_wait) is the
 * best guess; otherwise the smallest edit distance over the whole path, or over the last name
 * plus one for the move, within a limit that grows with the name's length.
 */
#include "config/config_internal.h"
#include "util/util_mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SUGGESTIONS 3

/* Optimal string alignment distance: Levenshtein plus adjacent transpositions ("levle"). */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 128 || lb > 128)
		return SIZE_MAX;
	size_t *d = evd_xmalloc((la + 1) * (lb + 1) * sizeof(*d));
#define D(i, j) d[(i) * (lb + 1) + (j)]
	for (size_t i = 0; i <= la; i++)
		D(i, 0) = i;
	for (size_t j = 0; j <= lb; j++)
		D(0, j) = j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t v = D(i - 1, j) + 1;
			if (D(i, j - 1) + 1 < v)
				v = D(i, j - 1) + 1;
			if (D(i - 1, j - 1) + cost < v)
				v = D(i - 1, j - 1) + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    D(i - 2, j - 2) + 1 < v)
				v = D(i - 2, j - 2) + 1;
			D(i, j) = v;
		}
	}
	size_t r = D(la, lb);
#undef D
	free(d);
	return r;
}

static const char *leaf(const char *path)
{
	const char *dot = strrchr(path, '.');
	return dot ? dot + 1 : path;
}

/* Calls fn for every key and every section ("nats", "nats.tls"), each once. */
static void for_each_name(void (*fn)(const char *name, void *arg), void *arg)
{
	for (size_t i = 0; i < evd_config_nkeys; i++) {
		const char *name = evd_config_keys[i].name;
		for (const char *dot = strchr(name, '.'); dot; dot = strchr(dot + 1, '.')) {
			size_t n = (size_t)(dot - name);
			bool dup = false;
			for (size_t j = 0; j < i && !dup; j++)
				dup = strncmp(evd_config_keys[j].name, name, n) == 0 &&
				      evd_config_keys[j].name[n] == '.';
			if (!dup) {
				char *section = evd_xstrndup(name, n);
				fn(section, arg);
				free(section);
			}
		}
		fn(name, arg);
	}
}

bool evd_config_is_section(const char *path)
{
	size_t n = strlen(path);
	for (size_t i = 0; i < evd_config_nkeys; i++)
		if (strncmp(evd_config_keys[i].name, path, n) == 0 && evd_config_keys[i].name[n] == '.')
			return true;
	return false;
}

struct suggest {
	const char *path;
	size_t best;
	size_t limit;
	char *names[MAX_SUGGESTIONS];
	size_t count;
};

static void suggest_one(const char *name, void *arg)
{
	struct suggest *s = arg;
	const char *pl = leaf(s->path), *nl = leaf(name);
	size_t score;

	if (strcmp(name, s->path) == 0)
		return;
	if (strcmp(pl, nl) == 0) {
		score = 0; /* the right key at the wrong nesting level */
	} else {
		size_t full = edit_distance(s->path, name);
		size_t part = edit_distance(pl, nl);
		score = part == SIZE_MAX ? full : part + 1; /* +1: it also moved */
		if (full < score)
			score = full;
	}
	if (score > s->limit || score > s->best)
		return;
	if (score < s->best) {
		for (size_t i = 0; i < s->count; i++)
			free(s->names[i]);
		s->count = 0;
		s->best = score;
	}
	if (s->count < MAX_SUGGESTIONS)
		s->names[s->count++] = evd_xstrdup(name);
}

struct children {
	const char *prefix;
	struct evd_buf *out;
	size_t n;
};

static void child_one(const char *name, void *arg)
{
	struct children *c = arg;
	size_t pl = c->prefix ? strlen(c->prefix) : 0;
	if (c->prefix && (strncmp(name, c->prefix, pl) != 0 || name[pl] != '.'))
		return;
	const char *rest = c->prefix ? name + pl + 1 : name;
	if (strchr(rest, '.'))
		return;
	evd_buf_printf(c->out, "%s%s", c->n++ ? ", " : "", rest);
}

/* The immediate keys and sections under prefix (NULL: the top level), comma-separated. */
void evd_config_append_children(const char *prefix, struct evd_buf *out)
{
	struct children c = { prefix, out, 0 };
	for_each_name(child_one, &c);
}

void evd_config_suggest(const char *path, const char *prefix, struct evd_buf *msg)
{
	size_t ll = strlen(leaf(path));
	struct suggest s = { .path = path, .best = SIZE_MAX, .limit = ll <= 3 ? 1 : ll <= 6 ? 2 : 3 };

	for_each_name(suggest_one, &s);
	evd_buf_append_str(msg, "unknown key");
	if (s.count) {
		evd_buf_append_str(msg, "; did you mean ");
		for (size_t i = 0; i < s.count; i++) {
			evd_buf_printf(msg, "%s'%s'", i == 0 ? "" : i + 1 == s.count ? " or " : ", ",
				       s.names[i]);
			free(s.names[i]);
		}
		evd_buf_append_char(msg, '?');
	} else {
		evd_buf_append_str(msg, " (valid here: ");
		evd_config_append_children(prefix, msg);
		evd_buf_append_char(msg, ')');
	}
}
