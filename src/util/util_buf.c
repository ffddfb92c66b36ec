/* SPDX-License-Identifier: Apache-2.0 */
#include "util/util_buf.h"
#include "util/util_mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void evd_buf_reserve(struct evd_buf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra + 1)
		cap *= 2;
	b->data = evd_xrealloc(b->data, cap);
	b->cap = cap;
	/* A first allocation must be terminated too: "always NUL-terminated" (the HTTP server
	 * reserves a request body from Content-Length, and a 0-byte body is handed on as is). */
	b->data[b->len] = '\0';
}

void evd_buf_append(struct evd_buf *b, const void *data, size_t len)
{
	evd_buf_reserve(b, len);
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void evd_buf_append_str(struct evd_buf *b, const char *s)
{
	evd_buf_append(b, s, strlen(s));
}

void evd_buf_append_char(struct evd_buf *b, char c)
{
	evd_buf_reserve(b, 1);
	b->data[b->len++] = c;
	b->data[b->len] = '\0';
}

void evd_buf_vprintf(struct evd_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	evd_buf_reserve(b, 64);
	int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	if (n >= 0 && (size_t)n >= b->cap - b->len) {
		evd_buf_reserve(b, (size_t)n);
		n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
	}
	va_end(ap2);
	if (n > 0)
		b->len += (size_t)n;
}

void evd_buf_printf(struct evd_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	evd_buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void evd_buf_reset(struct evd_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void evd_buf_consume(struct evd_buf *b, size_t n)
{
	if (n >= b->len) {
		evd_buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

void evd_buf_free(struct evd_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

char *evd_buf_steal(struct evd_buf *b)
{
	char *d = b->data;
	if (!d)
		d = evd_xstrdup("");
	b->data = NULL;
	b->len = b->cap = 0;
	return d;
}
