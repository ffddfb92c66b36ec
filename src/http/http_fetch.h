/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small blocking HTTP/1.1 client for the command-line subcommands (status, publish,
 * deadletters): one request, one response, Connection: close, a timeout. Never used by the
 * daemon's loop (the dispatcher has its own asynchronous client).
 */
#ifndef EVD_HTTP_FETCH_H
#define EVD_HTTP_FETCH_H

#include <stddef.h>

#include "util/util_buf.h"

struct evd_http_fetch_result {
	int status;
	struct evd_buf headers; /* raw header block, "Name: value\r\n" lines */
	struct evd_buf body;
};

/*
 * url: "http://host:port/path?query" (numeric host or localhost). extra_headers: NULL or lines
 * ending in "\r\n". Returns 0 when a response was read (any status), or a negative errno with a
 * reason in err.
 */
int evd_http_fetch(const char *method, const char *url, const char *extra_headers,
		   const void *body, size_t body_len, int timeout_ms,
		   struct evd_http_fetch_result *res, char *err, size_t errlen);
void evd_http_fetch_result_free(struct evd_http_fetch_result *res);

#endif
