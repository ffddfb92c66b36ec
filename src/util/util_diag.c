/* SPDX-License-Identifier: Apache-2.0 */
#include "util/util_diag.h"
#include "util/util_mem.h"

#include <stdarg.h>
#include <stdlib.h>

void evd_diag_add(struct evd_diag *d, enum evd_diag_severity sev, const char *file, int line,
		  int col, const char *key, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	evd_diag_vadd(d, sev, file, line, col, key, fmt, ap);
	va_end(ap);
}

void evd_diag_vadd(struct evd_diag *d, enum evd_diag_severity sev, const char *file, int line,
		   int col, const char *key, const char *fmt, va_list ap)
{
	struct evd_buf msg = EVD_BUF_INIT;
	evd_buf_vprintf(&msg, fmt, ap);

	if (d->count == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 8;
		d->entries = evd_xrealloc(d->entries, d->cap * sizeof(*d->entries));
	}
	struct evd_diag_entry *e = &d->entries[d->count++];
	e->severity = sev;
	e->file = evd_xstrdup(file ? file : "-");
	e->line = line;
	e->col = col;
	e->key = key ? evd_xstrdup(key) : NULL;
	e->message = evd_buf_steal(&msg);
	if (sev == EVD_DIAG_ERROR)
		d->errors++;
	else
		d->warnings++;
}

void evd_diag_merge(struct evd_diag *dst, const struct evd_diag *src)
{
	for (size_t i = 0; i < src->count; i++) {
		const struct evd_diag_entry *e = &src->entries[i];
		evd_diag_add(dst, e->severity, e->file, e->line, e->col, e->key, "%s", e->message);
	}
}

void evd_diag_format_entry(const struct evd_diag_entry *e, struct evd_buf *out)
{
	evd_buf_printf(out, "%s:%d:%d: ", e->file, e->line, e->col);
	if (e->severity == EVD_DIAG_WARNING)
		evd_buf_append_str(out, "warning: ");
	if (e->key && e->key[0])
		evd_buf_printf(out, "%s: ", e->key);
	evd_buf_append_str(out, e->message);
}

void evd_diag_format(const struct evd_diag *d, struct evd_buf *out)
{
	for (size_t i = 0; i < d->count; i++) {
		evd_diag_format_entry(&d->entries[i], out);
		evd_buf_append_char(out, '\n');
	}
}

void evd_diag_clear(struct evd_diag *d)
{
	for (size_t i = 0; i < d->count; i++) {
		free(d->entries[i].file);
		free(d->entries[i].key);
		free(d->entries[i].message);
	}
	d->count = d->errors = d->warnings = 0;
}

void evd_diag_free(struct evd_diag *d)
{
	evd_diag_clear(d);
	free(d->entries);
	d->entries = NULL;
	d->cap = 0;
}
