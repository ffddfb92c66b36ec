/* SPDX-License-Identifier: Apache-2.0 */
#include "util/util_mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
	fprintf(stderr, "eventingd: out of memory allocating %zu bytes\n", n);
	abort();
}

void *evd_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *evd_xcalloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);
	if (!p)
		oom(count * size);
	return p;
}

void *evd_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *evd_xstrdup(const char *s)
{
	return evd_xstrndup(s, strlen(s));
}

char *evd_xstrndup(const char *s, size_t n)
{
	char *p = evd_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}
