/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The in-memory CloudEvent: its arena, attribute access and content-mode detection.
 *
 * The arena is a list of blocks, bump-allocated, so strings never move once written (the event
 * hands out pointers into it) and a typical event costs one malloc for all its decoded strings.
 * Its size is bounded by the input it was decoded from, which the HTTP server's body limit
 * bounds in turn.
 */
#include "event/event_ce.h"
#include "event/event_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/util_buf.h"
#include "util/util_mem.h"

struct evd_ce_arena_block {
	struct evd_ce_arena_block *next;
	size_t cap, used;
	char mem[];
};

/*
 * Fits a typical event's decoded strings (a few hundred bytes) in one allocation. Kept (with the
 * block header) under 1 KiB: glibc serves that from tcache/small bins, while every request of
 * 1 KiB or more first consolidates the fast bins (malloc_consolidate was 4% of the publish path).
 */
#define ARENA_BLOCK (1000 - sizeof(struct evd_ce_arena_block))

static const char *const attr_names[EVD_CE_NATTRS] = {
	[EVD_CE_SPECVERSION] = "specversion",
	[EVD_CE_ID] = "id",
	[EVD_CE_SOURCE] = "source",
	[EVD_CE_TYPE] = "type",
	[EVD_CE_DATACONTENTTYPE] = "datacontenttype",
	[EVD_CE_DATASCHEMA] = "dataschema",
	[EVD_CE_SUBJECT] = "subject",
	[EVD_CE_TIME] = "time",
};

const char *evd_ce_attr_name(enum evd_ce_attr a)
{
	return (unsigned)a < EVD_CE_NATTRS ? attr_names[a] : "?";
}

int evd_ce_attr_lookup(const char *name, size_t len)
{
	for (int i = 0; i < EVD_CE_NATTRS; i++)
		if (strlen(attr_names[i]) == len && memcmp(attr_names[i], name, len) == 0)
			return i;
	return -1;
}

void evd_ce_init(struct evd_cloudevent *ev)
{
	memset(ev, 0, sizeof(*ev));
}

void evd_ce_free(struct evd_cloudevent *ev)
{
	if (!ev)
		return;
	struct evd_ce_arena_block *b = ev->arena.head;
	while (b) {
		struct evd_ce_arena_block *next = b->next;
		free(b);
		b = next;
	}
	evd_ce_init(ev);
}

char *evd_ce_alloc(struct evd_cloudevent *ev, size_t n)
{
	struct evd_ce_arena_block *b = ev->arena.head;
	size_t need = n + 1;
	if (!b || b->cap - b->used < need) {
		size_t cap = need > ARENA_BLOCK ? need : ARENA_BLOCK;
		b = evd_xmalloc(sizeof(*b) + cap);
		b->cap = cap;
		b->used = 0;
		b->next = ev->arena.head;
		ev->arena.head = b;
	}
	char *p = b->mem + b->used;
	b->used += need;
	p[n] = '\0';
	return p;
}

char *evd_ce_strdup(struct evd_cloudevent *ev, const char *s, size_t len)
{
	char *p = evd_ce_alloc(ev, len);
	memcpy(p, s, len);
	return p;
}

const char *evd_ce_ext_get(const struct evd_cloudevent *ev, const char *name)
{
	size_t len = strlen(name);
	for (unsigned i = 0; i < ev->n_ext; i++)
		if (ev->ext[i].name_len == len && memcmp(ev->ext[i].name, name, len) == 0)
			return ev->ext[i].value;
	return NULL;
}

int evd_ce_set(struct evd_cloudevent *ev, const char *name, const char *value, size_t value_len,
	       struct evd_buf *err)
{
	size_t nlen = strlen(name);
	int a = evd_ce_attr_lookup(name, nlen);
	if (a >= 0) {
		ev->attr[a] = evd_ce_strdup(ev, value, value_len);
		ev->attr_len[a] = value_len;
		return 0;
	}
	if (!evd_ce_valid_name(name, nlen) || strcmp(name, "data") == 0) {
		if (err)
			evd_buf_printf(err, "%s: invalid attribute name (must be lower-case letters a-z "
					    "and digits 0-9, not \"data\")", name);
		return -EINVAL;
	}
	for (unsigned i = 0; i < ev->n_ext; i++) {
		if (ev->ext[i].name_len == nlen && memcmp(ev->ext[i].name, name, nlen) == 0) {
			ev->ext[i].value = evd_ce_strdup(ev, value, value_len);
			ev->ext[i].value_len = value_len;
			return 0;
		}
	}
	if (ev->n_ext == EVD_CE_MAX_EXTENSIONS) {
		if (err)
			evd_buf_printf(err, "%s: too many extension attributes (at most %d)", name,
				       EVD_CE_MAX_EXTENSIONS);
		return -EINVAL;
	}
	struct evd_ce_ext *x = &ev->ext[ev->n_ext++];
	x->name = evd_ce_strdup(ev, name, nlen);
	x->name_len = nlen;
	x->value = evd_ce_strdup(ev, value, value_len);
	x->value_len = value_len;
	return 0;
}

void evd_ce_set_data_copy(struct evd_cloudevent *ev, const void *data, size_t len)
{
	char *p = evd_ce_alloc(ev, len);
	if (len)
		memcpy(p, data, len);
	ev->data = p;
	ev->data_len = len;
}

/* The media type without parameters and surrounding whitespace. */
static void media_type_core(const char *ct, size_t len, const char **start, size_t *n)
{
	const char *semi = memchr(ct, ';', len);
	size_t l = semi ? (size_t)(semi - ct) : len;
	while (l && (*ct == ' ' || *ct == '\t')) {
		ct++;
		l--;
	}
	while (l && (ct[l - 1] == ' ' || ct[l - 1] == '\t'))
		l--;
	*start = ct;
	*n = l;
}

static bool ends_with_ci(const char *s, size_t n, const char *suffix)
{
	size_t sl = strlen(suffix);
	return n >= sl && strncasecmp(s + n - sl, suffix, sl) == 0;
}

bool evd_ce_media_type_is_json(const char *ct, size_t len)
{
	const char *s;
	size_t n;
	media_type_core(ct, len, &s, &n);
	const char *slash = memchr(s, '/', n);
	if (!slash || slash == s)
		return false;
	size_t sub = n - (size_t)(slash + 1 - s);
	const char *subtype = slash + 1;
	if (sub == 4 && strncasecmp(subtype, "json", 4) == 0)
		return true;
	return sub > 5 && ends_with_ci(subtype, sub, "+json");
}

/*
 * HTTP binding §3.2/§3.3 and the JSON format §3/§4: structured mode is announced by the media
 * type application/cloudevents+<format>, batched mode by application/cloudevents-batch+<format>.
 * Media types are case-insensitive (RFC 2045 §5.1).
 */
enum evd_ce_mode evd_ce_detect_mode(const char *content_type, size_t len)
{
	const char *s;
	size_t n;
	if (!content_type)
		return EVD_CE_MODE_BINARY;
	media_type_core(content_type, len, &s, &n);
	static const char structured[] = "application/cloudevents+";
	static const char batch[] = "application/cloudevents-batch+";
	if (n >= sizeof(batch) - 1 && strncasecmp(s, batch, sizeof(batch) - 1) == 0) {
		size_t fl = n - (sizeof(batch) - 1);
		return fl == 4 && strncasecmp(s + sizeof(batch) - 1, "json", 4) == 0 ? EVD_CE_MODE_BATCH
										      : EVD_CE_MODE_UNSUPPORTED;
	}
	if (n >= sizeof(structured) - 1 && strncasecmp(s, structured, sizeof(structured) - 1) == 0) {
		size_t fl = n - (sizeof(structured) - 1);
		return fl == 4 && strncasecmp(s + sizeof(structured) - 1, "json", 4) == 0
			       ? EVD_CE_MODE_STRUCTURED
			       : EVD_CE_MODE_UNSUPPORTED;
	}
	/* "application/cloudevents" alone (no format suffix) names no format we can read. */
	if (n == sizeof(structured) - 2 && strncasecmp(s, structured, n) == 0)
		return EVD_CE_MODE_UNSUPPORTED;
	return EVD_CE_MODE_BINARY;
}
