/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A growable byte buffer, always NUL-terminated (the NUL is not counted in len), so its data can
 * be handed to C string functions. Growth aborts on OOM: buffers driven by untrusted input are
 * bounded by their callers' budgets before they grow (STYLE.md, "Ownership").
 *
 * Owned by whoever embeds it; not thread-safe.
 */
#ifndef EVD_UTIL_BUF_H
#define EVD_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct evd_buf {
	char *data;
	size_t len;
	size_t cap;
};

#define EVD_BUF_INIT { NULL, 0, 0 }

void evd_buf_reserve(struct evd_buf *b, size_t extra);
void evd_buf_append(struct evd_buf *b, const void *data, size_t len);
void evd_buf_append_str(struct evd_buf *b, const char *s);
void evd_buf_append_char(struct evd_buf *b, char c);
void evd_buf_printf(struct evd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void evd_buf_vprintf(struct evd_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Keeps the allocation, forgets the content. */
void evd_buf_reset(struct evd_buf *b);
/* Drops the first n bytes (consumed input), moving the rest to the front. */
void evd_buf_consume(struct evd_buf *b, size_t n);
void evd_buf_free(struct evd_buf *b);
/* Hands the data to the caller (who frees it with free()); the buffer is left empty. */
char *evd_buf_steal(struct evd_buf *b);

#endif
