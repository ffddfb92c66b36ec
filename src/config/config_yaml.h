/* SPDX-License-Identifier: Apache-2.0 */
/*
 * YAML read into a small node tree that remembers where every node stood (1-based line and
 * column), so the configuration loader and the subscription registry can name FILE:LINE:COL in
 * every error. libyaml's event parser feeds it; anchors and aliases are refused (neither our
 * config nor Kyma manifests need them, and they make positions ambiguous); a key that appears
 * twice in one mapping is an error.
 *
 * Ownership: evd_yaml_parse_*() returns a tree the caller frees with evd_yaml_stream_free().
 * Nodes point into the tree; they live as long as it does. Pure functions, any thread.
 */
#ifndef EVD_CONFIG_YAML_H
#define EVD_CONFIG_YAML_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util_diag.h"

enum evd_yaml_kind {
	EVD_YAML_SCALAR,
	EVD_YAML_MAP,
	EVD_YAML_SEQ,
};

struct evd_yaml_node {
	enum evd_yaml_kind kind;
	int line; /* where the value starts */
	int col;
	/* Scalars: the value (NUL-terminated, len excludes the NUL). */
	char *value;
	size_t len;
	bool plain; /* unquoted: only plain scalars can be null, true, numbers... */
	/* Members of a mapping: their key and where it stood. NULL for sequence items and roots. */
	char *key;
	int key_line;
	int key_col;
	/* Maps and sequences: children in document order. */
	struct evd_yaml_node *first;
	struct evd_yaml_node *last;
	size_t count;
	struct evd_yaml_node *next;
};

struct evd_yaml_doc {
	struct evd_yaml_node *root; /* NULL for an empty document */
	int line;
	int col;
};

struct evd_yaml_stream {
	char *name; /* file name used in diagnostics */
	struct evd_yaml_doc *docs;
	size_t ndocs;
};

/*
 * Configurations and subscription manifests are small; a bigger text is refused before parsing
 * (the daemon reads the subscription directory every 30 s).
 */
#define EVD_YAML_MAX_BYTES (1024 * 1024)

/*
 * Reads a whole file. On a syntax error adds a diagnostic to diag (with the position libyaml
 * reports) and returns -EINVAL; an unreadable file is -errno with a diagnostic at 1:1, a text
 * over EVD_YAML_MAX_BYTES (either function) -EFBIG with a diagnostic at 1:1.
 * *out is set only on success.
 */
int evd_yaml_parse_file(const char *path, struct evd_yaml_stream **out, struct evd_diag *diag);
int evd_yaml_parse_string(const char *name, const char *text, size_t len,
			  struct evd_yaml_stream **out, struct evd_diag *diag);
void evd_yaml_stream_free(struct evd_yaml_stream *s);

/* The member of a mapping with that key, or NULL. */
const struct evd_yaml_node *evd_yaml_map_get(const struct evd_yaml_node *map, const char *key);
/* True for a plain scalar that YAML 1.2 core reads as null ("", "~", "null", "Null", "NULL"). */
bool evd_yaml_is_null(const struct evd_yaml_node *n);
const char *evd_yaml_kind_name(enum evd_yaml_kind kind);

#endif
