/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The YAML node tree (config_yaml.h): any text parses or fails with a diagnostic; a tree is
 * walked completely (every count matches its children, positions are 1-based, scalars are
 * NUL-terminated at their length) and freed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_yaml.h"
#include "util/util_buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz invariant failed: %s\n", what);
		abort();
	}
}

static void walk(const struct evd_yaml_node *n, bool in_map, int depth)
{
	check(depth < 10000, "depth");
	check(n->line >= 1 && n->col >= 1, "node position");
	check((n->key != NULL) == in_map, "key iff member of a mapping");
	if (n->key)
		check(n->key_line >= 1 && n->key_col >= 1, "key position");
	if (n->kind == EVD_YAML_SCALAR) {
		check(n->value && n->value[n->len] == '\0', "scalar NUL-terminated");
		check(n->first == NULL && n->count == 0, "scalar without children");
		(void)evd_yaml_is_null(n);
		return;
	}
	check(n->kind == EVD_YAML_MAP || n->kind == EVD_YAML_SEQ, "kind");
	size_t count = 0;
	const struct evd_yaml_node *last = NULL;
	for (const struct evd_yaml_node *c = n->first; c; c = c->next) {
		walk(c, n->kind == EVD_YAML_MAP, depth + 1);
		if (n->kind == EVD_YAML_MAP)
			check(evd_yaml_map_get(n, c->key) == c, "map_get finds each key (no duplicates)");
		last = c;
		count++;
	}
	check(count == n->count, "count");
	check(last == n->last, "last");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evd_yaml_stream *s = NULL;
	struct evd_diag diag = EVD_DIAG_INIT;
	int rc = evd_yaml_parse_string("fuzz.yaml", (const char *)data, size, &s, &diag);
	if (rc == 0) {
		check(s != NULL, "a stream on success");
		for (size_t i = 0; i < s->ndocs; i++)
			if (s->docs[i].root)
				walk(s->docs[i].root, false, 0);
		evd_yaml_stream_free(s);
	} else {
		check(s == NULL && diag.errors > 0, "an error is reported");
	}
	struct evd_buf out = EVD_BUF_INIT;
	evd_diag_format(&diag, &out);
	evd_buf_free(&out);
	evd_diag_free(&diag);
	return 0;
}
