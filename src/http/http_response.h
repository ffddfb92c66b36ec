/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP/1.1 response parser both clients share (the blocking http_fetch.c of the CLI and the
 * asynchronous http_client.c of the dispatcher): llhttp in response mode with one settings table,
 * a bounded header section, interim (1xx) responses skipped, the body kept up to a bound and
 * either discarded or refused past it, Retry-After picked out, and the keep-alive verdict. One
 * message at a time: the parser pauses at the end of a response, so the caller knows how many
 * bytes belonged to it.
 *
 * Ownership: the struct is embedded by its user, which calls evd_http_response_free. Pure, any
 * thread (one user at a time).
 */
#ifndef EVD_HTTP_RESPONSE_H
#define EVD_HTTP_RESPONSE_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/util_buf.h"

/* A status line plus headers longer than this is no sink we want to talk to. */
#define EVD_HTTP_RESPONSE_MAX_HEADER 65536

struct evd_http_response {
	/* Options: set after evd_http_response_init, before feeding. */
	size_t body_max;     /* body bytes kept in body */
	bool body_max_fails; /* past body_max: fail with -EFBIG (else read and discard) */
	bool keep_headers;   /* raw "Name: value\r\n" lines in headers */

	/* Results of the current message. */
	int status;
	bool complete;        /* a final response was read to its end */
	bool keep_alive;      /* when complete: the connection may carry another request */
	uint64_t bytes;       /* bytes fed for this message (interim responses included) */
	uint64_t body_seen;   /* body bytes of the final response, kept or not */
	struct evd_buf body;  /* its first body_max bytes */
	struct evd_buf headers;
	char retry_after[64]; /* the Retry-After value, NUL-terminated ("" when absent) */

	/* Private. */
	llhttp_t parser;
	bool head;
	bool in_value;
	bool field_is_retry_after;
	char field[16];
	size_t field_len; /* may exceed sizeof(field): then it is no field we look for */
	size_t retry_after_len;
	size_t header_bytes;
	const char *error; /* reason of the last failure */
};

void evd_http_response_init(struct evd_http_response *r);
/* Starts a new message (head: the request was HEAD, so no body follows). Keeps allocations. */
void evd_http_response_reset(struct evd_http_response *r, bool head);
/*
 * Feeds bytes. Returns 1 when the final response is complete (*used: bytes that belonged to it;
 * the rest is not parsed), 0 when more is needed (*used = len), -EPROTO for a malformed response,
 * -EFBIG past body_max with body_max_fails. The reason is evd_http_response_error().
 */
int evd_http_response_feed(struct evd_http_response *r, const char *data, size_t len, size_t *used);
/* The peer closed the connection: 1 when that completes the response (a body delimited by the
 * close), else -ECONNRESET (nothing or part of a response was read; see r->bytes). */
int evd_http_response_eof(struct evd_http_response *r);
const char *evd_http_response_error(const struct evd_http_response *r);
void evd_http_response_free(struct evd_http_response *r);

/*
 * Retry-After (RFC 9110 10.2.3): delta-seconds or an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37
 * GMT"), relative to now (seconds since the epoch). Returns milliseconds (0 for a date in the
 * past), or -1 when the value is neither form. Pure.
 */
int64_t evd_http_retry_after_ms(const char *value, size_t len, time_t now);

#endif
