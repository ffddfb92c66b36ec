/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A header field as name and value with lengths, not NUL-terminated: the one shape both the HTTP
 * server and client and the event model use, so the event model needs no transport header.
 * Ownership: the strings belong to whoever built the array (a parsed request, a stored message).
 */
#ifndef EVD_UTIL_HEADER_H
#define EVD_UTIL_HEADER_H

#include <stddef.h>

struct evd_header {
	const char *name; /* as sent (compare case-insensitively) */
	size_t name_len;
	const char *value; /* leading and trailing whitespace removed */
	size_t value_len;
};

#endif
