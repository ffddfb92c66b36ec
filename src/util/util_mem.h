/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Allocation helpers for control-plane memory: they abort on OOM (redis, mosquitto). Memory sized
 * by untrusted input is checked against a budget before it is asked for, so these never turn a
 * large request into a crash.
 */
#ifndef EVD_UTIL_MEM_H
#define EVD_UTIL_MEM_H

#include <stddef.h>

void *evd_xmalloc(size_t n);
void *evd_xcalloc(size_t count, size_t size);
void *evd_xrealloc(void *p, size_t n);
char *evd_xstrdup(const char *s);
char *evd_xstrndup(const char *s, size_t n);

#define EVD_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* Through void *: the member really is inside a suitably aligned type (clang -Wcast-align). */
#define EVD_CONTAINER_OF(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#endif
