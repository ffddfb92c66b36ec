/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Diagnostics collected while reading a file: every error (and warning) is kept, not only the
 * first, and printed as "FILE:LINE:COL: key: message" (1-based line and column), the form editors
 * and CI logs jump to.
 *
 * Owned by the caller; not thread-safe.
 */
#ifndef EVD_UTIL_DIAG_H
#define EVD_UTIL_DIAG_H

#include <stdarg.h>
#include <stddef.h>

#include "util/util_buf.h"

enum evd_diag_severity {
	EVD_DIAG_ERROR = 0,
	EVD_DIAG_WARNING = 1,
};

struct evd_diag_entry {
	enum evd_diag_severity severity;
	char *file;
	int line;
	int col;
	char *key;     /* dotted path such as "dispatch.timeout" or "spec.types[1]"; may be NULL */
	char *message;
};

struct evd_diag {
	struct evd_diag_entry *entries;
	size_t count;
	size_t cap;
	size_t errors;
	size_t warnings;
};

#define EVD_DIAG_INIT { NULL, 0, 0, 0, 0 }

void evd_diag_add(struct evd_diag *d, enum evd_diag_severity sev, const char *file, int line,
		  int col, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));
void evd_diag_vadd(struct evd_diag *d, enum evd_diag_severity sev, const char *file, int line,
		   int col, const char *key, const char *fmt, va_list ap)
	__attribute__((format(printf, 7, 0)));
/* Appends every entry of src to dst. */
void evd_diag_merge(struct evd_diag *dst, const struct evd_diag *src);
/* One line per entry: "FILE:LINE:COL: key: message" ("warning: " before key for warnings). */
void evd_diag_format(const struct evd_diag *d, struct evd_buf *out);
/* Formats one entry without trailing newline. */
void evd_diag_format_entry(const struct evd_diag_entry *e, struct evd_buf *out);
void evd_diag_clear(struct evd_diag *d);
void evd_diag_free(struct evd_diag *d);

#endif
