/* SPDX-License-Identifier: Apache-2.0 */
#include "config/config_yaml.h"
#include "util/util_mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Deep enough for any config or manifest; bounds recursion-free stack use on hostile input. */
#define YAML_MAX_DEPTH 64
/* A mapping with more keys than this finds duplicates with a hash set instead of a scan. */
#define YAML_HASH_FROM 16

static void node_free(struct evd_yaml_node *n)
{
	while (n) {
		struct evd_yaml_node *next = n->next;
		node_free(n->first);
		free(n->value);
		free(n->key);
		free(n);
		n = next;
	}
}

void evd_yaml_stream_free(struct evd_yaml_stream *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ndocs; i++)
		node_free(s->docs[i].root);
	free(s->docs);
	free(s->name);
	free(s);
}

static void add_child(struct evd_yaml_node *parent, struct evd_yaml_node *child)
{
	if (parent->last)
		parent->last->next = child;
	else
		parent->first = child;
	parent->last = child;
	parent->count++;
}

const struct evd_yaml_node *evd_yaml_map_get(const struct evd_yaml_node *map, const char *key)
{
	if (!map || map->kind != EVD_YAML_MAP)
		return NULL;
	for (const struct evd_yaml_node *c = map->first; c; c = c->next)
		if (strcmp(c->key, key) == 0)
			return c;
	return NULL;
}

bool evd_yaml_is_null(const struct evd_yaml_node *n)
{
	if (!n || n->kind != EVD_YAML_SCALAR || !n->plain)
		return false;
	return n->len == 0 || strcmp(n->value, "~") == 0 || strcmp(n->value, "null") == 0 ||
	       strcmp(n->value, "Null") == 0 || strcmp(n->value, "NULL") == 0;
}

const char *evd_yaml_kind_name(enum evd_yaml_kind kind)
{
	switch (kind) {
	case EVD_YAML_SCALAR: return "scalar";
	case EVD_YAML_MAP: return "mapping";
	case EVD_YAML_SEQ: return "sequence";
	}
	return "?";
}

/* Builder state: a stack of open collections, and for mappings the key awaiting its value. */
struct frame {
	struct evd_yaml_node *node;
	struct evd_yaml_node *pending_key; /* scalar read as a key, value not yet seen */
	/* Big mappings: the keys seen so far (pointers to strings the nodes own), open addressing,
	 * so a 60,000-key mapping is not 1.8 billion comparisons. */
	const char **keys;
	size_t keys_cap; /* a power of two, or 0 */
	size_t nkeys;
};

static size_t key_hash(const char *s)
{
	size_t h = 1469598103934665603u; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h;
}

/* true: key was there already; else it is added. */
static bool keys_insert(struct frame *f, const char *key)
{
	if ((f->nkeys + 1) * 2 > f->keys_cap) {
		size_t cap = f->keys_cap ? f->keys_cap * 2 : 64;
		const char **old = f->keys;
		size_t old_cap = f->keys_cap;
		f->keys = evd_xcalloc(cap, sizeof(*f->keys));
		f->keys_cap = cap;
		for (size_t i = 0; i < old_cap; i++) {
			if (!old[i])
				continue;
			size_t j = key_hash(old[i]) & (cap - 1);
			while (f->keys[j])
				j = (j + 1) & (cap - 1);
			f->keys[j] = old[i];
		}
		free(old);
	}
	size_t j = key_hash(key) & (f->keys_cap - 1);
	for (; f->keys[j]; j = (j + 1) & (f->keys_cap - 1))
		if (strcmp(f->keys[j], key) == 0)
			return true;
	f->keys[j] = key;
	f->nkeys++;
	return false;
}

static bool duplicate_key(struct frame *f, const char *key)
{
	if (f->node->count < YAML_HASH_FROM)
		return evd_yaml_map_get(f->node, key) != NULL;
	if (!f->keys) /* switching over: every key so far */
		for (const struct evd_yaml_node *c = f->node->first; c; c = c->next)
			keys_insert(f, c->key);
	return keys_insert(f, key);
}

static void frame_clear(struct frame *f)
{
	node_free(f->pending_key);
	f->pending_key = NULL;
	free(f->keys);
	f->keys = NULL;
	f->keys_cap = f->nkeys = 0;
}

struct builder {
	const char *name;
	struct evd_diag *diag;
	struct frame stack[YAML_MAX_DEPTH];
	int depth;
	struct evd_yaml_stream *stream;
	struct evd_yaml_node *doc_root;
	int failed;
};

static struct evd_yaml_node *node_new(enum evd_yaml_kind kind, const yaml_mark_t *mark)
{
	struct evd_yaml_node *n = evd_xcalloc(1, sizeof(*n));
	n->kind = kind;
	n->line = (int)mark->line + 1;
	n->col = (int)mark->column + 1;
	return n;
}

/* Places a finished node into its parent, or as the document root. Returns 0 or -EINVAL. */
static int place(struct builder *b, struct evd_yaml_node *n)
{
	if (b->depth == 0) {
		b->doc_root = n;
		return 0;
	}
	struct frame *f = &b->stack[b->depth - 1];
	if (f->node->kind == EVD_YAML_SEQ) {
		add_child(f->node, n);
		return 0;
	}
	if (!f->pending_key) {
		if (n->kind != EVD_YAML_SCALAR) {
			evd_diag_add(b->diag, EVD_DIAG_ERROR, b->name, n->line, n->col, NULL,
				     "a mapping key must be a plain string, not a %s",
				     evd_yaml_kind_name(n->kind));
			node_free(n);
			return -EINVAL;
		}
		if (duplicate_key(f, n->value)) {
			evd_diag_add(b->diag, EVD_DIAG_ERROR, b->name, n->line, n->col, n->value,
				     "duplicate key (each key may appear once in a mapping)");
			node_free(n);
			return -EINVAL;
		}
		f->pending_key = n;
		return 0;
	}
	struct evd_yaml_node *k = f->pending_key;
	f->pending_key = NULL;
	n->key = k->value;
	k->value = NULL;
	n->key_line = k->line;
	n->key_col = k->col;
	node_free(k);
	add_child(f->node, n);
	return 0;
}

static int push(struct builder *b, struct evd_yaml_node *n)
{
	if (b->depth == YAML_MAX_DEPTH) {
		evd_diag_add(b->diag, EVD_DIAG_ERROR, b->name, n->line, n->col, NULL,
			     "nesting deeper than %d levels", YAML_MAX_DEPTH);
		node_free(n);
		return -EINVAL;
	}
	memset(&b->stack[b->depth], 0, sizeof(b->stack[b->depth]));
	b->stack[b->depth].node = n;
	b->depth++;
	return 0;
}

static int pop(struct builder *b)
{
	struct frame *f = &b->stack[--b->depth];
	frame_clear(f);
	return place(b, f->node);
}

static void unwind(struct builder *b)
{
	while (b->depth > 0) {
		struct frame *f = &b->stack[--b->depth];
		frame_clear(f);
		node_free(f->node);
	}
	node_free(b->doc_root);
	b->doc_root = NULL;
}

static int handle_event(struct builder *b, const yaml_event_t *ev)
{
	struct evd_yaml_node *n;

	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		b->doc_root = NULL;
		return 0;
	case YAML_DOCUMENT_END_EVENT: {
		struct evd_yaml_stream *s = b->stream;
		s->docs = evd_xrealloc(s->docs, (s->ndocs + 1) * sizeof(*s->docs));
		s->docs[s->ndocs].root = b->doc_root;
		s->docs[s->ndocs].line = b->doc_root ? b->doc_root->line : (int)ev->start_mark.line + 1;
		s->docs[s->ndocs].col = b->doc_root ? b->doc_root->col : 1;
		s->ndocs++;
		b->doc_root = NULL;
		return 0;
	}
	case YAML_ALIAS_EVENT:
		evd_diag_add(b->diag, EVD_DIAG_ERROR, b->name, (int)ev->start_mark.line + 1,
			     (int)ev->start_mark.column + 1, NULL,
			     "YAML aliases (*%s) are not supported; write the value out",
			     (const char *)ev->data.alias.anchor);
		return -EINVAL;
	case YAML_SCALAR_EVENT:
		if (ev->data.scalar.anchor) {
			evd_diag_add(b->diag, EVD_DIAG_ERROR, b->name, (int)ev->start_mark.line + 1,
				     (int)ev->start_mark.column + 1, NULL,
				     "YAML anchors (&%s) are not supported",
				     (const char *)ev->data.scalar.anchor);
			return -EINVAL;
		}
		n = node_new(EVD_YAML_SCALAR, &ev->start_mark);
		n->value = evd_xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
		n->len = ev->data.scalar.length;
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		return place(b, n);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT: {
		const yaml_char_t *anchor = ev->type == YAML_SEQUENCE_START_EVENT
						    ? ev->data.sequence_start.anchor
						    : ev->data.mapping_start.anchor;
		if (anchor) {
			evd_diag_add(b->diag, EVD_DIAG_ERROR, b->name, (int)ev->start_mark.line + 1,
				     (int)ev->start_mark.column + 1, NULL,
				     "YAML anchors (&%s) are not supported", (const char *)anchor);
			return -EINVAL;
		}
		n = node_new(ev->type == YAML_SEQUENCE_START_EVENT ? EVD_YAML_SEQ : EVD_YAML_MAP,
			     &ev->start_mark);
		return push(b, n);
	}
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		return pop(b);
	default:
		return 0;
	}
}

static int parse(yaml_parser_t *parser, const char *name, struct evd_yaml_stream **out,
		 struct evd_diag *diag)
{
	struct builder b = { .name = name, .diag = diag };
	int rc = 0;
	bool done = false;

	b.stream = evd_xcalloc(1, sizeof(*b.stream));
	b.stream->name = evd_xstrdup(name);

	while (!done) {
		yaml_event_t ev;
		if (!yaml_parser_parse(parser, &ev)) {
			const yaml_mark_t *m = parser->problem_mark.line || parser->problem_mark.column
						       ? &parser->problem_mark
						       : &parser->context_mark;
			evd_diag_add(diag, EVD_DIAG_ERROR, name, (int)m->line + 1, (int)m->column + 1,
				     NULL, "YAML syntax error: %s%s%s",
				     parser->problem ? parser->problem : "unknown problem",
				     parser->context ? " " : "",
				     parser->context ? parser->context : "");
			rc = -EINVAL;
			break;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		rc = handle_event(&b, &ev);
		yaml_event_delete(&ev);
		if (rc)
			break;
	}
	if (rc) {
		unwind(&b);
		evd_yaml_stream_free(b.stream);
		return rc;
	}
	*out = b.stream;
	return 0;
}

static int too_big(const char *name, struct evd_diag *diag)
{
	evd_diag_add(diag, EVD_DIAG_ERROR, name, 1, 1, NULL,
		     "larger than %d KiB: configurations and subscription manifests are small; "
		     "split the file", EVD_YAML_MAX_BYTES / 1024);
	return -EFBIG;
}

int evd_yaml_parse_string(const char *name, const char *text, size_t len,
			  struct evd_yaml_stream **out, struct evd_diag *diag)
{
	yaml_parser_t parser;
	if (len > EVD_YAML_MAX_BYTES)
		return too_big(name, diag);
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	int rc = parse(&parser, name, out, diag);
	yaml_parser_delete(&parser);
	return rc;
}

int evd_yaml_parse_file(const char *path, struct evd_yaml_stream **out, struct evd_diag *diag)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		int err = errno;
		evd_diag_add(diag, EVD_DIAG_ERROR, path, 1, 1, NULL, "cannot read: %s", strerror(err));
		return -err;
	}
	/* Read at most one byte over the limit, whatever the file is (a pipe, a growing file). */
	size_t cap = 4096, len = 0;
	char *text = evd_xmalloc(cap);
	int err = 0;
	for (;;) {
		size_t n = fread(text + len, 1, cap - len, f);
		len += n;
		if (len < cap) {
			if (ferror(f))
				err = errno ? errno : EIO;
			break;
		}
		if (len > EVD_YAML_MAX_BYTES)
			break;
		cap *= 2;
		text = evd_xrealloc(text, cap);
	}
	fclose(f);
	int rc;
	if (err) {
		evd_diag_add(diag, EVD_DIAG_ERROR, path, 1, 1, NULL, "cannot read: %s", strerror(err));
		rc = -err;
	} else {
		rc = evd_yaml_parse_string(path, text, len, out, diag);
	}
	free(text);
	return rc;
}
