/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The configuration loader: walks the YAML tree against the key table (config_keys.c), fills a
 * struct evd_config that starts from the defaults, and reports every problem it finds, not only
 * the first.
 *
 * Where errors point: a bad value points at the value; an unknown key, a value of the wrong shape
 * (a mapping where a scalar belongs, a scalar where a section belongs) and an empty value point at
 * the key, because the start of a block mapping is its first nested key, which would mislead. A
 * rule that ties two keys together points at the key the rule is about (dispatch.timeout for
 * "timeout < ack_wait"), or at the other key when only that one is in the file.
 */
#include "config/config.h"
#include "config/config_internal.h"
#include "config/config_yaml.h"
#include "util/util_addr.h"
#include "util/util_mem.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD_PTR(cfg, k) ((void *)((char *)(cfg) + (k)->offset))
#define EMBEDDED_MAX_MEMORY_DEFAULT (UINT64_C(64) << 20)

struct loader {
	const char *file;
	struct evd_diag *diag;
	struct evd_config *cfg;
	/* Per key (table index): the node that set it, NULL when the file left it alone. */
	const struct evd_yaml_node **seen;
	/* Per key: its value was refused, so rules across keys leave it out. */
	bool *bad;
};

static size_t key_index(const struct evd_config_key *k)
{
	return (size_t)(k - evd_config_keys);
}

static const struct evd_yaml_node *seen_by_name(const struct loader *L, const char *name)
{
	const struct evd_config_key *k = evd_config_key_find(name);
	return k ? L->seen[key_index(k)] : NULL;
}

/* ---- nats.url ---- */

static void trim(const char **s, size_t *len)
{
	while (*len && isspace((unsigned char)**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len && isspace((unsigned char)(*s)[*len - 1]))
		(*len)--;
}

/*
 * Checks a comma-separated list of URLs (or "embedded") and appends its normalised form (no
 * blanks) to out. Every bad item is reported at pos. Returns the number of errors.
 */
static int check_urls(struct loader *L, const char *path, const struct evd_yaml_node *pos,
		      const char *text, bool *saw_embedded, size_t *nurls, struct evd_buf *out)
{
	int errors = 0;
	const char *p = text;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const char *item = p;
		char why[160];

		trim(&item, &len);
		char *u = evd_xstrndup(item, len);
		if (len == 0) {
			evd_diag_add(L->diag, EVD_DIAG_ERROR, L->file, pos->line, pos->col, path,
				     "empty URL in the list \"%s\"", text);
			errors++;
		} else if (strcmp(u, "embedded") == 0) {
			*saw_embedded = true;
		} else if (evd_config_check_url(u, why, sizeof(why)) < 0) {
			evd_diag_add(L->diag, EVD_DIAG_ERROR, L->file, pos->line, pos->col, path,
				     "\"%s\" is not a NATS URL: %s", u, why);
			errors++;
		} else {
			if (out->len)
				evd_buf_append_char(out, ',');
			evd_buf_append_str(out, u);
			(*nurls)++;
		}
		free(u);
		if (!comma)
			break;
		p = comma + 1;
	}
	return errors;
}

/* ---- defaults ---- */

static void apply_defaults(struct evd_config *cfg, bool dev)
{
	cfg->dev = dev;
	for (size_t i = 0; i < evd_config_nkeys; i++) {
		const struct evd_config_key *k = &evd_config_keys[i];
		const char *def = dev ? k->def_dev : k->def_prod;
		struct evd_buf msg = EVD_BUF_INIT;

		if (def && strcmp(def, EVD_KEY_COMPUTED) == 0)
			continue;
		if (!def) {
			evd_config_set_string(cfg, k, NULL);
			continue;
		}
		if (evd_config_parse_store(cfg, k, def, &msg) < 0) {
			/* A broken default is a bug in the table, caught by the first unit test. */
			fprintf(stderr, "eventingd: bad default for %s: %s\n", k->name, msg.data);
			abort();
		}
		evd_buf_free(&msg);
	}
}

/* Defaults that depend on other keys, for the keys the file did not set. */
static void apply_computed(struct evd_config *cfg, const struct loader *L)
{
	cfg->subscriptions.prune_orphans_explicit = L && seen_by_name(L, "subscriptions.prune_orphans");
	if (!cfg->subscriptions.prune_orphans_explicit)
		cfg->subscriptions.prune_orphans = evd_config_embedded(cfg);
	/*
	 * JetStream reserves a memory stream's max_bytes in the server's memory store up front;
	 * a fixed 64 MiB made the default 700 MiB memory stream fail forever ("insufficient
	 * memory resources available").
	 */
	if (!L || !seen_by_name(L, "nats.embedded.max_memory"))
		cfg->nats.embedded.max_memory = cfg->stream.storage == EVD_STORAGE_MEMORY
							? cfg->stream.max_bytes
							: EMBEDDED_MAX_MEMORY_DEFAULT;
	if (!L || !seen_by_name(L, "deadletters.stream") || !cfg->deadletters.stream) {
		struct evd_buf b = EVD_BUF_INIT;
		evd_buf_printf(&b, "%s-dlq", cfg->stream.name);
		free(cfg->deadletters.stream);
		cfg->deadletters.stream = evd_buf_steal(&b);
	}
}

struct evd_config *evd_config_defaults(bool dev)
{
	struct evd_config *cfg = evd_xcalloc(1, sizeof(*cfg));
	apply_defaults(cfg, dev);
	apply_computed(cfg, NULL);
	return cfg;
}

void evd_config_free(struct evd_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < evd_config_nkeys; i++) {
		const struct evd_config_key *k = &evd_config_keys[i];
		if (k->type == EVD_KEY_STRING || k->type == EVD_KEY_URLS)
			free(*(char **)FIELD_PTR(cfg, k));
	}
	free(cfg->source_file);
	free(cfg->pos);
	free(cfg);
}

bool evd_config_embedded(const struct evd_config *cfg)
{
	return cfg->nats.url && strcmp(cfg->nats.url, "embedded") == 0;
}

int evd_config_restart_keys(const struct evd_config *old, const struct evd_config *cur,
			    struct evd_buf *out)
{
	int n = 0;
	for (size_t i = 0; i < evd_config_nkeys; i++) {
		const struct evd_config_key *k = &evd_config_keys[i];
		const char *def = cur->dev ? k->def_dev : k->def_prod;
		if (k->reloadable || evd_config_key_equal(k, old, cur))
			continue;
		/* A computed default that moved with the key it follows (nats.embedded.max_memory
		 * with stream.max_bytes) is not a change the user made: naming it misleads. */
		if (def && strcmp(def, EVD_KEY_COMPUTED) == 0 && !(cur->pos && cur->pos[i].line))
			continue;
		if (out->len)
			evd_buf_append_str(out, ", ");
		evd_buf_append_str(out, k->name);
		n++;
	}
	return n;
}

void evd_config_keep_restart_keys(const struct evd_config *running, struct evd_config *next)
{
	for (size_t i = 0; i < evd_config_nkeys; i++) {
		const struct evd_config_key *k = &evd_config_keys[i];
		const void *from = (const char *)running + k->offset;
		void *to = FIELD_PTR(next, k);

		if (k->reloadable)
			continue;
		switch (k->type) {
		case EVD_KEY_STRING:
		case EVD_KEY_URLS: evd_config_set_string(next, k, *(char *const *)from); break;
		case EVD_KEY_BOOL: memcpy(to, from, sizeof(bool)); break;
		case EVD_KEY_UINT: memcpy(to, from, sizeof(uint32_t)); break;
		case EVD_KEY_SIZE: memcpy(to, from, sizeof(uint64_t)); break;
		case EVD_KEY_DURATION: memcpy(to, from, sizeof(int64_t)); break;
		case EVD_KEY_ENUM: memcpy(to, from, sizeof(int)); break;
		case EVD_KEY_DOUBLE: memcpy(to, from, sizeof(double)); break;
		}
	}
}

/* ---- unknown keys and suggestions ---- */
static void report_unknown(struct loader *L, const struct evd_yaml_node *n, const char *path,
			   const char *prefix)
{
	struct evd_buf msg = EVD_BUF_INIT;

	if (strchr(n->key, '.') && (evd_config_key_find(path) || evd_config_is_section(path)))
		evd_buf_printf(&msg, "dotted keys are not expanded; nest it: write \"%.*s:\" and "
				     "under it \"%s:\"",
			       (int)(strchr(n->key, '.') - n->key), n->key, strchr(n->key, '.') + 1);
	else
		evd_config_suggest(path, prefix, &msg);
	evd_diag_add(L->diag, EVD_DIAG_ERROR, L->file, n->key_line, n->key_col, path, "%s", msg.data);
	evd_buf_free(&msg);
}

/* ---- the walk ---- */

static void set_urls(struct loader *L, const struct evd_config_key *k, const struct evd_yaml_node *n)
{
	struct evd_buf norm = EVD_BUF_INIT;
	bool embedded = false;
	size_t nurls = 0;
	int errors = 0;

	if (n->kind == EVD_YAML_SEQ) {
		for (const struct evd_yaml_node *item = n->first; item; item = item->next) {
			if (item->kind != EVD_YAML_SCALAR) {
				evd_diag_add(L->diag, EVD_DIAG_ERROR, L->file, item->line, item->col,
					     k->name, "list items must be URLs, got a %s",
					     evd_yaml_kind_name(item->kind));
				errors++;
				continue;
			}
			errors += check_urls(L, k->name, item, item->value, &embedded, &nurls, &norm);
		}
	} else if (strspn(n->value, " \t") == n->len) {
		evd_diag_add(L->diag, EVD_DIAG_ERROR, L->file, n->line, n->col, k->name,
			     "must be \"embedded\" or at least one nats:// or tls:// URL, got an empty value");
		errors++;
	} else {
		errors += check_urls(L, k->name, n, n->value, &embedded, &nurls, &norm);
	}
	if (!errors && embedded && nurls) {
		evd_diag_add(L->diag, EVD_DIAG_ERROR, L->file, n->line, n->col, k->name,
			     "\"embedded\" cannot be combined with URLs");
		errors++;
	}
	if (!errors && !embedded && !nurls) {
		evd_diag_add(L->diag, EVD_DIAG_ERROR, L->file, n->line, n->col, k->name,
			     "must be \"embedded\" or at least one nats:// or tls:// URL");
		errors++;
	}
	if (!errors)
		evd_config_set_string(L->cfg, k, embedded ? "embedded" : norm.data);
	evd_buf_free(&norm);
}

static void set_value(struct loader *L, const struct evd_config_key *k,
		      const struct evd_yaml_node *n)
{
	struct evd_buf msg = EVD_BUF_INIT;
	const char *def = L->cfg->dev ? k->def_dev : k->def_prod;
	bool computed = def && strcmp(def, EVD_KEY_COMPUTED) == 0;

	L->seen[key_index(k)] = n;
	if (n->kind == EVD_YAML_SEQ && k->type == EVD_KEY_URLS) {
		set_urls(L, k, n);
		return;
	}
	if (n->kind != EVD_YAML_SCALAR) {
		evd_buf_append_str(&msg, "must be ");
		evd_config_append_expected(k, &msg);
		evd_buf_printf(&msg, ", got a %s", evd_yaml_kind_name(n->kind));
		evd_diag_add(L->diag, EVD_DIAG_ERROR, L->file, n->key_line, n->key_col, k->name, "%s",
			     msg.data);
		goto out;
	}
	if (evd_yaml_is_null(n) || (!def && !computed && n->len == 0)) {
		if (!def) { /* optional: null, "" or nothing at all means unset */
			evd_config_set_string(L->cfg, k, NULL);
		} else if (computed) {
			L->seen[key_index(k)] = NULL;
		} else {
			evd_buf_append_str(&msg, "must be ");
			evd_config_append_expected(k, &msg);
			evd_buf_append_str(&msg, ", got an empty value (remove the key to keep the default)");
			evd_diag_add(L->diag, EVD_DIAG_ERROR, L->file, n->key_line, n->key_col, k->name,
				     "%s", msg.data);
		}
		goto out;
	}
	if (k->type == EVD_KEY_URLS) {
		set_urls(L, k, n);
		goto out;
	}
	if (evd_config_parse_store(L->cfg, k, n->value, &msg) < 0)
		evd_diag_add(L->diag, EVD_DIAG_ERROR, L->file, n->line, n->col, k->name, "%s", msg.data);
out:
	evd_buf_free(&msg);
}

static void set_key(struct loader *L, const struct evd_config_key *k, const struct evd_yaml_node *n)
{
	size_t errors0 = L->diag->errors;
	set_value(L, k, n);
	if (L->diag->errors != errors0)
		L->bad[key_index(k)] = true;
}

static void walk(struct loader *L, const struct evd_yaml_node *map, const char *prefix)
{
	for (const struct evd_yaml_node *c = map->first; c; c = c->next) {
		struct evd_buf path = EVD_BUF_INIT;
		const struct evd_config_key *k;

		if (prefix)
			evd_buf_printf(&path, "%s.%s", prefix, c->key);
		else
			evd_buf_append_str(&path, c->key);

		if (strchr(c->key, '.')) {
			report_unknown(L, c, path.data, prefix);
		} else if ((k = evd_config_key_find(path.data))) {
			set_key(L, k, c);
		} else if (evd_config_is_section(path.data)) {
			if (c->kind == EVD_YAML_MAP) {
				walk(L, c, path.data);
			} else if (!evd_yaml_is_null(c)) { /* "nats:" with every key commented out */
				struct evd_buf msg = EVD_BUF_INIT;
				evd_buf_append_str(&msg, "must be a mapping of keys (");
				evd_config_append_children(path.data, &msg);
				evd_buf_printf(&msg, "), got a %s", evd_yaml_kind_name(c->kind));
				evd_diag_add(L->diag, EVD_DIAG_ERROR, L->file, c->key_line, c->key_col,
					     path.data, "%s", msg.data);
				evd_buf_free(&msg);
			}
		} else {
			report_unknown(L, c, path.data, prefix);
		}
		evd_buf_free(&path);
	}
}

/* ---- rules across keys ---- */

static void cross_error(struct loader *L, const struct evd_yaml_node *n, const char *key,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void cross_error(struct loader *L, const struct evd_yaml_node *n, const char *key,
			const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	evd_diag_vadd(L->diag, EVD_DIAG_ERROR, L->file, n ? n->line : 1, n ? n->col : 1, key, fmt,
		      ap);
	va_end(ap);
}

/* Where a set key stood: its value, or for a key given as a section its key. */
static const struct evd_yaml_node *seen_key(const struct loader *L, const char *name)
{
	return seen_by_name(L, name);
}

/* True when none of the keys (NULL-terminated) had its value refused. */
static bool valid(const struct loader *L, ...)
{
	va_list ap;
	bool ok = true;
	va_start(ap, L);
	for (const char *name; ok && (name = va_arg(ap, const char *));)
		ok = !L->bad[key_index(evd_config_key_find(name))];
	va_end(ap);
	return ok;
}

/* A diagnostic at a key's own position (1:1 if it is not in the file, which rules avoid). */
static void key_diag(struct loader *L, enum evd_diag_severity sev, const struct evd_yaml_node *n,
		     const char *key, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void key_diag(struct loader *L, enum evd_diag_severity sev, const struct evd_yaml_node *n,
		     const char *key, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	evd_diag_vadd(L->diag, sev, L->file, n ? n->key_line : 1, n ? n->key_col : 1, key, fmt, ap);
	va_end(ap);
}

static void check_pair(struct loader *L, const char *a, const char *b)
{
	const struct evd_yaml_node *na = seen_key(L, a), *nb = seen_key(L, b);
	const struct evd_config_key *ka = evd_config_key_find(a), *kb = evd_config_key_find(b);
	bool has_a = *(char **)FIELD_PTR(L->cfg, ka) != NULL;
	bool has_b = *(char **)FIELD_PTR(L->cfg, kb) != NULL;
	if (has_a && !has_b)
		key_diag(L, EVD_DIAG_ERROR, na, a, "needs %s as well", b);
	else if (has_b && !has_a)
		key_diag(L, EVD_DIAG_ERROR, nb, b, "needs %s as well", a);
}

static void cross_check(struct loader *L)
{
	struct evd_config *c = L->cfg;
	const struct evd_yaml_node *n;
	char x[32], y[32], z[32];

	if (valid(L, "dispatch.timeout", "dispatch.ack_wait", NULL) &&
	    c->dispatch.timeout >= c->dispatch.ack_wait) {
		evd_format_duration(c->dispatch.timeout, x, sizeof(x));
		evd_format_duration(c->dispatch.ack_wait, y, sizeof(y));
		if ((n = seen_key(L, "dispatch.timeout")))
			cross_error(L, n, "dispatch.timeout",
				    "must be less than dispatch.ack_wait (%s), got %s", y, x);
		else
			cross_error(L, seen_key(L, "dispatch.ack_wait"), "dispatch.ack_wait",
				    "must be greater than dispatch.timeout (%s), got %s", x, y);
	}
	if (valid(L, "dispatch.backoff.initial", "dispatch.backoff.max", NULL) &&
	    c->dispatch.backoff.initial > c->dispatch.backoff.max) {
		evd_format_duration(c->dispatch.backoff.initial, x, sizeof(x));
		evd_format_duration(c->dispatch.backoff.max, y, sizeof(y));
		if ((n = seen_key(L, "dispatch.backoff.initial")))
			cross_error(L, n, "dispatch.backoff.initial",
				    "must not exceed dispatch.backoff.max (%s), got %s", y, x);
		else
			cross_error(L, seen_key(L, "dispatch.backoff.max"), "dispatch.backoff.max",
				    "must not be less than dispatch.backoff.initial (%s), got %s", x, y);
	}
	if (valid(L, "stream.max_age", "stream.duplicate_window", NULL) && c->stream.max_age &&
	    c->stream.duplicate_window > c->stream.max_age) {
		/* nats-server refuses a duplicate window longer than the stream's max age. */
		evd_format_duration(c->stream.duplicate_window, x, sizeof(x));
		evd_format_duration(c->stream.max_age, y, sizeof(y));
		if ((n = seen_key(L, "stream.duplicate_window")))
			cross_error(L, n, "stream.duplicate_window",
				    "must not exceed stream.max_age (%s), got %s", y, x);
		else
			cross_error(L, seen_key(L, "stream.max_age"), "stream.max_age",
				    "must be 0 (unlimited) or at least stream.duplicate_window (%s), got %s",
				    x, y);
	}
	if (valid(L, "stream.name", "deadletters.stream", NULL) &&
	    strcmp(c->deadletters.stream, c->stream.name) == 0) {
		n = seen_key(L, "deadletters.stream");
		cross_error(L, n ? n : seen_key(L, "stream.name"), n ? "deadletters.stream" : "stream.name",
			    "the stream and the dead-letter stream must have different names (\"%s\")",
			    c->stream.name);
	}
	if (c->publish.listen && c->admin.listen) {
		struct sockaddr_storage a, b;
		char fa[64], fb[64];
		if (evd_addr_parse(c->publish.listen, &a, NULL, 0) == 0 &&
		    evd_addr_parse(c->admin.listen, &b, NULL, 0) == 0) {
			evd_addr_format((struct sockaddr *)&a, fa, sizeof(fa));
			evd_addr_format((struct sockaddr *)&b, fb, sizeof(fb));
			/* Port 0 (any free port, as tests use) never collides. */
			if (strcmp(fa, fb) == 0 && !strstr(fa, "]:0") && strcmp(strrchr(fa, ':'), ":0")) {
				n = seen_key(L, "admin.listen");
				cross_error(L, n ? n : seen_key(L, "publish.listen"),
					    n ? "admin.listen" : "publish.listen",
					    "publish.listen and admin.listen must differ (both %s)", fa);
			}
		}
	}

	/* A refused nats.url keeps "embedded": judging the rest against it would mislead. */
	if (evd_config_embedded(c) && valid(L, "nats.url", NULL)) {
		if (valid(L, "stream.replicas", NULL) && c->stream.replicas > 1)
			cross_error(L, seen_key(L, "stream.replicas"), "stream.replicas",
				    "must be 1 with the embedded nats-server (a single node), got %" PRIu32,
				    c->stream.replicas);
		/* JetStream reserves each stream's max_bytes in the server's store up front. */
		uint64_t need = c->deadletters.max_bytes;
		if (c->stream.storage == EVD_STORAGE_FILE)
			need += c->stream.max_bytes;
		if (valid(L, "nats.embedded.max_store", "stream.max_bytes", "deadletters.max_bytes",
			  "stream.storage", NULL) &&
		    c->nats.embedded.max_store < need) {
			const char *names[] = { "nats.embedded.max_store", "stream.max_bytes",
						"deadletters.max_bytes" };
			evd_format_size(c->nats.embedded.max_store, x, sizeof(x));
			evd_format_size(c->stream.max_bytes, y, sizeof(y));
			evd_format_size(c->deadletters.max_bytes, z, sizeof(z));
			for (size_t i = 0; i < EVD_ARRAY_SIZE(names); i++) {
				if ((n = seen_key(L, names[i]))) {
					cross_error(L, n, names[i],
						    "nats.embedded.max_store (%s) cannot hold %s%s%s "
						    "deadletters.max_bytes (%s)",
						    x, c->stream.storage == EVD_STORAGE_FILE ? "stream.max_bytes (" : "",
						    c->stream.storage == EVD_STORAGE_FILE ? y : "",
						    c->stream.storage == EVD_STORAGE_FILE ? ") plus" : "", z);
					break;
				}
			}
		}
		if (valid(L, "nats.embedded.max_memory", "stream.max_bytes", "stream.storage", NULL) &&
		    c->stream.storage == EVD_STORAGE_MEMORY &&
		    c->nats.embedded.max_memory < c->stream.max_bytes) {
			evd_format_size(c->nats.embedded.max_memory, x, sizeof(x));
			evd_format_size(c->stream.max_bytes, y, sizeof(y));
			cross_error(L, seen_key(L, "nats.embedded.max_memory"), "nats.embedded.max_memory",
				    "cannot hold the memory stream's stream.max_bytes (%s), got %s "
				    "(leave it out to size it from stream.max_bytes)", y, x);
		}
		/* Auth and TLS are for external servers; the embedded one listens on loopback only. */
		static const char *const external_only[] = {
			"nats.creds", "nats.token", "nats.user", "nats.password",
			"nats.tls.ca", "nats.tls.cert", "nats.tls.key",
		};
		for (size_t i = 0; i < EVD_ARRAY_SIZE(external_only); i++) {
			const struct evd_config_key *k = evd_config_key_find(external_only[i]);
			n = seen_key(L, external_only[i]);
			if (n && *(char **)FIELD_PTR(c, k))
				key_diag(L, EVD_DIAG_WARNING, n, k->name,
					 "only used with an external nats.url; ignored with the embedded server");
		}
	}

	check_pair(L, "nats.user", "nats.password");
	check_pair(L, "nats.tls.cert", "nats.tls.key");
	if ((c->nats.creds != NULL) + (c->nats.token != NULL) + (c->nats.user != NULL) > 1) {
		const char *first = c->nats.creds ? "nats.creds" : "nats.token";
		const char *second = c->nats.creds && c->nats.token ? "nats.token" : "nats.user";
		key_diag(L, EVD_DIAG_ERROR, seen_key(L, second), second,
			 "cannot be combined with %s; choose one way to authenticate", first);
	}
}

/* ---- entry point ---- */

static int diag_order(const struct evd_diag_entry *a, const struct evd_diag_entry *b)
{
	return a->line != b->line ? (a->line > b->line) - (a->line < b->line)
				  : (a->col > b->col) - (a->col < b->col);
}

/* Puts the entries from index first on in file order (stable: insertion sort, lists are short). */
static void sort_diag(struct evd_diag *d, size_t first)
{
	for (size_t i = first + 1; i < d->count; i++) {
		struct evd_diag_entry e = d->entries[i];
		size_t j = i;
		while (j > first && diag_order(&d->entries[j - 1], &e) > 0) {
			d->entries[j] = d->entries[j - 1];
			j--;
		}
		d->entries[j] = e;
	}
}

int evd_config_load(const char *path, bool dev, struct evd_config **out, struct evd_diag *diag)
{
	struct evd_yaml_stream *s = NULL;
	struct evd_config *cfg = NULL;
	struct loader L = { .file = path, .diag = diag };
	size_t errors0 = diag->errors, count0 = diag->count;
	int rc;

	if (!path) {
		*out = evd_config_defaults(dev);
		return 0;
	}
	rc = evd_yaml_parse_file(path, &s, diag);
	if (rc < 0)
		return rc;

	cfg = evd_xcalloc(1, sizeof(*cfg));
	apply_defaults(cfg, dev);
	cfg->source_file = evd_xstrdup(path);
	L.cfg = cfg;
	L.seen = evd_xcalloc(evd_config_nkeys, sizeof(*L.seen));
	L.bad = evd_xcalloc(evd_config_nkeys, sizeof(*L.bad));

	if (s->ndocs > 1)
		evd_diag_add(diag, EVD_DIAG_ERROR, path, s->docs[1].line, s->docs[1].col, NULL,
			     "a configuration file holds one YAML document, found %zu", 
			     s->ndocs);
	const struct evd_yaml_node *root = s->ndocs ? s->docs[0].root : NULL;
	if (root && root->kind == EVD_YAML_MAP) {
		walk(&L, root, NULL);
	} else if (root && !evd_yaml_is_null(root)) {
		struct evd_buf msg = EVD_BUF_INIT;
		evd_config_append_children(NULL, &msg);
		evd_diag_add(diag, EVD_DIAG_ERROR, path, root->line, root->col, NULL,
			     "the top level must be a mapping of keys (%s), got a %s", msg.data,
			     evd_yaml_kind_name(root->kind));
		evd_buf_free(&msg);
	}
	apply_computed(cfg, &L);
	cross_check(&L);
	cfg->pos = evd_xcalloc(evd_config_nkeys, sizeof(*cfg->pos));
	for (size_t i = 0; i < evd_config_nkeys; i++) {
		if (L.seen[i]) {
			cfg->pos[i].line = L.seen[i]->line;
			cfg->pos[i].col = L.seen[i]->col;
		}
	}
	sort_diag(diag, count0);

	free(L.seen);
	free(L.bad);
	evd_yaml_stream_free(s);
	if (diag->errors != errors0) {
		evd_config_free(cfg);
		return -EINVAL;
	}
	*out = cfg;
	return 0;
}
