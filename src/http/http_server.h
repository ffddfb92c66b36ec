/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A reusable HTTP/1.1 server on the libuv loop, parsing with llhttp: keep-alive, pipelining
 * (responses leave in request order even when a later request is answered first), and limits on
 * header size (431), body size (413, checked against Content-Length before the body is read),
 * connection count (new connections beyond it are closed at once) and idle time. Malformed
 * requests get a 400 with a plain-text reason and the connection is closed; nothing a client
 * sends can crash or hang it. Both the publish and the admin listener are instances of it.
 *
 * Requests are answered asynchronously: the handler gets a request that stays valid until it
 * calls evd_http_respond() exactly once, now or later (for example when a JetStream ack comes
 * back). If the client goes away meanwhile, the request stays valid and the response is
 * discarded; the connection's memory is freed after its last request is answered.
 *
 * Thread rules: everything here runs on the loop thread only.
 */
#ifndef EVD_HTTP_SERVER_H
#define EVD_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util/util_header.h"

struct evd_http_server;
struct evd_http_conn;

struct evd_http_request {
	/* Everything below points into memory owned by the server; valid until respond. */
	const char *method; /* "GET", "POST", ... NUL-terminated */
	const char *path;   /* without the query, not percent-decoded, NUL-terminated */
	size_t path_len;
	const char *query; /* after '?', NUL-terminated, "" if none */
	const struct evd_header *headers;
	size_t nheaders;
	const char *body; /* NUL-terminated for convenience (the NUL is not in body_len) */
	size_t body_len;
	bool keep_alive;
	uint64_t start_ns; /* uv_hrtime() when the request's first byte was parsed */
	char peer[64];     /* "127.0.0.1:53412" */
	void *user;        /* free for the handler's use until respond */
	struct evd_http_server *server;
};

/* Called once per complete request (headers and whole body read), on the loop thread. */
typedef void (*evd_http_handler_cb)(struct evd_http_request *req, void *data);

struct evd_buf;
/*
 * Optional, loop thread: the server is about to answer a request itself, before the handler saw
 * it (413 body too large, 431, 408, 400 malformed). req->method and req->path are set once the
 * request line and headers were read (path is NULL before that); the body is incomplete. The
 * callback may append a body of its own to *body and set *content_type (a static string) instead
 * of the default plain-text reason; it must not respond. Used for per-route error bodies (Kyma's
 * legacy 413 JSON) and to count and log such requests.
 */
typedef void (*evd_http_reject_cb)(const struct evd_http_request *req, int status,
				   const char *reason, struct evd_buf *body,
				   const char **content_type, void *data);

struct evd_http_limits {
	size_t max_header_size;   /* all header lines together; default 16 KiB -> 431 */
	size_t max_body_size;     /* default 64 KiB -> 413 */
	uint32_t max_connections; /* default 4096 */
	uint64_t idle_timeout_ms; /* keep-alive idle and slow-request timeout; default 60000 */
	uint32_t max_pipelined;   /* unanswered requests per connection before reading pauses; 64 */
};

struct evd_http_server_opts {
	const char *name;   /* "publish", "admin": used in logs */
	const char *listen; /* "127.0.0.1:8080"; port 0 picks a free port */
	struct evd_http_limits limits; /* zero fields take the defaults */
	evd_http_handler_cb handler;
	evd_http_reject_cb on_reject; /* NULL: plain-text reasons */
	void *data;
};

/* Binds and listens. Returns 0 or a negative libuv error (UV_EADDRINUSE...), logged. */
int evd_http_server_start(uv_loop_t *loop, const struct evd_http_server_opts *opts,
			  struct evd_http_server **out);

/* The address actually bound (useful with port 0): "127.0.0.1:41234". */
const char *evd_http_server_address(const struct evd_http_server *srv);
/* A reloaded body limit: applies to requests whose headers arrive from now on. */
void evd_http_server_set_max_body_size(struct evd_http_server *srv, size_t max_body_size);
/* Open connections right now. */
uint32_t evd_http_server_connections(const struct evd_http_server *srv);

/*
 * Stops accepting, closes idle connections, lets requests in progress be answered (closing each
 * connection after its last response), and after at most timeout_ms closes what is left. on_closed
 * is called once, on the loop, when every handle is closed; then the server is freed.
 */
void evd_http_server_stop(struct evd_http_server *srv, uint64_t timeout_ms,
			  void (*on_closed)(void *data), void *data);

/* Finds a request header by name, case-insensitively; NULL if absent. */
const struct evd_header *evd_http_request_header(const struct evd_http_request *req,
						      const char *name);

/*
 * Answers req; req is invalid afterwards. extra_headers is NULL or complete header lines each
 * ending in "\r\n" ("Retry-After: 1\r\n"). content_type may be NULL when len is 0. Date,
 * Content-Length and Connection are added by the server. The body is copied. The request body is
 * released here: nothing may point into it afterwards (events decoded from it, for example).
 */
void evd_http_respond(struct evd_http_request *req, int status, const char *content_type,
		      const char *extra_headers, const void *body, size_t len);

/* Plain-text convenience: the reason followed by "\n". */
void evd_http_respond_text(struct evd_http_request *req, int status, const char *extra_headers,
			   const char *text);

/* "OK", "No Content", "Insufficient Storage"... */
const char *evd_http_status_text(int status);

#endif
