/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An asynchronous HTTP/1.1 client on the loop, for the dispatcher's sink requests: uv_tcp +
 * llhttp in response mode, names resolved with uv_getaddrinfo (off the loop), a keep-alive pool
 * per origin (scheme, host, port) of at most max_conns_per_origin connections; requests beyond
 * that wait in a FIFO per origin. Requests always carry Content-Length (never chunked, no Expect),
 * Host, and no redirect is followed (a 3xx is just a status). A connection the peer closed while
 * idle, found closed when the request is written or before any response byte arrives, is retried
 * once on a fresh connection before the request fails. Response bodies are read and discarded
 * past max_response_body (the first bytes are kept for logs). https:// is refused with
 * -EPROTONOSUPPORT today; the transport is a small vtable so a TLS layer can be added.
 *
 * Details the names below do not say:
 * - A connection is kept alive unless the response says otherwise (Connection: close, HTTP/1.0
 *   without keep-alive, a body delimited by the close), bytes follow the response, or the
 *   response came before the whole request was written (a server answering early, e.g. 413:
 *   the answer counts and the connection is closed). A 1xx interim response is skipped; a 204
 *   or 304 has no body whatever its Content-Length says; 101 is a malformed response.
 * - Idle connections keep reading, so a close by the peer is noticed at once; they are reused
 *   most recent first and closed after idle_timeout_ms (0: never kept).
 * - A name is resolved for every new connection (no cache of ours: the system's resolver
 *   decides); each address is tried in turn within the same attempt ("localhost" may be ::1
 *   and 127.0.0.1).
 * - The once-retry on a fresh connection starts a new timeout_ms; duration_ns counts from the
 *   first assignment.
 * - The request is written with one uv_write of two buffers: the head (built in a buffer the
 *   connection keeps) and body by reference, never copied. Steady state allocates nothing per
 *   request.
 *
 * Threads: loop thread only. Ownership: the caller owns req and everything it points to until
 * on_done has run (on_done may send the same req again, or free it).
 */
#ifndef EVD_HTTP_CLIENT_H
#define EVD_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util/util_header.h"

struct evd_http_client;

struct evd_http_client_config {
	unsigned max_conns_per_origin; /* >= 1 (dispatch.max_connections_per_sink; 0 acts as 1) */
	uint64_t timeout_ms;           /* per attempt, from the moment a connection is assigned
					* (connect included) to the end of the response
					* (dispatch.timeout); waiting for a free connection does not count;
					* 0: none */
	uint64_t idle_timeout_ms;      /* an idle keep-alive connection is closed after this
					* (0: connections are not kept) */
	size_t max_response_body;      /* bytes of the response body kept for the caller */
};

struct evd_http_client_result {
	int status;             /* HTTP status, or 0 when no response was read (err set) */
	int err;                /* 0, or a negative libuv error: UV_ETIMEDOUT, UV_ECONNREFUSED,
				 * UV_ECONNRESET, UV_EAI_*, UV_ECANCELED (close/cancel), UV_EPROTO
				 * (malformed response), ... */
	const char *err_text;   /* human-readable reason when err != 0 (valid during on_done):
				 * "<phase>: <detail>", e.g. "connecting: connection refused",
				 * "timed out: waiting for the response", "canceled"; never
				 * the URL (it may carry a secret in its query) */
	int64_t retry_after_ms; /* Retry-After (delta-seconds or HTTP-date), -1 when absent/invalid */
	const char *body;       /* the first max_response_body bytes, valid during on_done */
	size_t body_len;
	uint64_t duration_ns;   /* from connection assignment to completion (0 for a request
				 * cancelled while it waited for a connection) */
};

struct evd_http_client_request;
typedef void (*evd_http_client_done_cb)(struct evd_http_client_request *req,
					 const struct evd_http_client_result *res);

struct evd_http_client_request {
	/* Set by the caller. */
	const char *url;                  /* "http://host[:port][/path][?query]" */
	const char *method;               /* "POST" */
	const struct evd_header *headers; /* without Host, Content-Length, Connection,
					   * Transfer-Encoding, Expect (refused: -EINVAL) */
	size_t nheaders;
	const char *body;
	size_t body_len;
	evd_http_client_done_cb on_done;
	void *data;
	/* Private to the client (zero-initialise). */
	struct evd_http_client_request *next_;
	void *priv_[4];
};

int evd_http_client_new(uv_loop_t *loop, const struct evd_http_client_config *cfg,
			struct evd_http_client **out);
/* Applies to requests started from now on (idle connections above the new cap are closed). */
void evd_http_client_set_config(struct evd_http_client *c, const struct evd_http_client_config *cfg);
/* 0: on_done runs exactly once, later (never from inside this call). <0 (-EINVAL bad URL,
 * method or header, CR/LF in a value, req already in flight; -EPROTONOSUPPORT https;
 * -ESHUTDOWN closing): on_done never runs. URLs: no userinfo; the fragment is not sent. */
int evd_http_client_send(struct evd_http_client *c, struct evd_http_client_request *req);
/* on_done follows with err UV_ECANCELED (asynchronously) unless it already ran or is running. */
void evd_http_client_cancel(struct evd_http_client *c, struct evd_http_client_request *req);
/* Cancels every request (UV_ECANCELED, asynchronously, before on_closed), closes every
 * connection, frees c, then on_closed(data) from a libuv close callback. send returns
 * -ESHUTDOWN meanwhile. */
void evd_http_client_close(struct evd_http_client *c, void (*on_closed)(void *data), void *data);

#endif
