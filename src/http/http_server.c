/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server side that is not about one connection: binding the listener, counting connections,
 * the graceful stop, and formatting responses (status line, cached Date, Content-Length,
 * Connection). Reading, parsing and the ordered response queue live in http_conn.c.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http/http_internal.h"
#include "util/util_addr.h"
#include "util/util_log.h"
#include "util/util_mem.h"

static void on_server_handle_closed(uv_handle_t *h);

static void maybe_finish_stop(struct evd_http_server *srv)
{
	if (!srv->stopping || srv->nconns > 0)
		return;
	/* The last connection is gone before the deadline: stop now, not when the timer fires
	 * ("after at most timeout_ms"). The timer is active only between stop and its expiry. */
	if (uv_is_active((uv_handle_t *)&srv->stop_timer)) {
		uv_timer_stop(&srv->stop_timer);
		uv_close((uv_handle_t *)&srv->stop_timer, on_server_handle_closed);
		return;
	}
	if (srv->handles_open > 0)
		return;
	void (*cb)(void *) = srv->on_closed;
	void *data = srv->closed_data;
	evd_log_info(srv->name, "http server stopped");
	free(srv);
	if (cb)
		cb(data);
}

static void on_server_handle_closed(uv_handle_t *h)
{
	struct evd_http_server *srv = h->data;
	srv->handles_open--;
	maybe_finish_stop(srv);
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct evd_http_server *srv = listener->data;
	if (status < 0) {
		/* EMFILE and friends: the pending connection stays in the backlog; log and go on. */
		evd_log_warn(srv->name, "accept failed: %s", uv_strerror(status));
		return;
	}
	evd_http_conn_accept(srv);
}

static void apply_defaults(struct evd_http_limits *l)
{
	if (!l->max_header_size)
		l->max_header_size = 16 * 1024;
	if (!l->max_body_size)
		l->max_body_size = 64 * 1024;
	if (!l->max_connections)
		l->max_connections = 4096;
	if (!l->idle_timeout_ms)
		l->idle_timeout_ms = 60000;
	if (!l->max_pipelined)
		l->max_pipelined = 64;
}

int evd_http_server_start(uv_loop_t *loop, const struct evd_http_server_opts *opts,
			  struct evd_http_server **out)
{
	const char *name = opts->name ? opts->name : "http";
	struct sockaddr_storage ss;
	char err[128];
	int rc = evd_addr_parse(opts->listen ? opts->listen : "", &ss, err, sizeof(err));
	if (rc < 0) {
		evd_log_error(name, "listen address \"%s\": %s", opts->listen ? opts->listen : "",
			      err);
		return UV_EINVAL;
	}

	struct evd_http_server *srv = evd_xcalloc(1, sizeof(*srv));
	srv->loop = loop;
	snprintf(srv->name, sizeof(srv->name), "%s", name);
	srv->limits = opts->limits;
	apply_defaults(&srv->limits);
	srv->handler = opts->handler;
	srv->on_reject = opts->on_reject;
	srv->data = opts->data;
	evd_http_conn_init_settings(&srv->settings);

	rc = uv_tcp_init(loop, &srv->listener);
	if (rc < 0) {
		free(srv);
		evd_log_error(name, "uv_tcp_init: %s", uv_strerror(rc));
		return rc;
	}
	srv->listener.data = srv;
	srv->handles_open = 1;
	/* libuv sets SO_REUSEADDR on every bound TCP socket itself (uv__tcp_bind). */
	rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection);
	if (rc < 0) {
		evd_log_error(name, "cannot listen on %s: %s", opts->listen, uv_strerror(rc));
		goto fail;
	}
	int len = sizeof(ss);
	rc = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len);
	if (rc < 0)
		goto fail;
	evd_addr_format((const struct sockaddr *)&ss, srv->address, sizeof(srv->address));

	rc = uv_timer_init(loop, &srv->stop_timer);
	if (rc < 0)
		goto fail;
	srv->stop_timer.data = srv;
	srv->handles_open = 2;
	evd_log_info(srv->name, "listening on http://%s", srv->address);
	*out = srv;
	return 0;

fail:
	/* Free through the close callback; on_closed is NULL and stopping makes it free srv. */
	srv->stopping = true;
	uv_close((uv_handle_t *)&srv->listener, on_server_handle_closed);
	return rc;
}

const char *evd_http_server_address(const struct evd_http_server *srv)
{
	return srv->address;
}

void evd_http_server_set_max_body_size(struct evd_http_server *srv, size_t max_body_size)
{
	srv->limits.max_body_size = max_body_size ? max_body_size : 64 * 1024;
}

uint32_t evd_http_server_connections(const struct evd_http_server *srv)
{
	return srv->nconns;
}

void evd_http_server_conn_gone(struct evd_http_server *srv, struct evd_http_conn *conn)
{
	if (conn->prev)
		conn->prev->next = conn->next;
	else
		srv->conns = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	conn->prev = conn->next = NULL;
	srv->nconns--;
}

void evd_http_server_check_stopped(struct evd_http_server *srv)
{
	maybe_finish_stop(srv);
}

static void on_stop_timeout(uv_timer_t *t)
{
	struct evd_http_server *srv = t->data;
	if (srv->nconns)
		evd_log_warn(srv->name, "closing %u connection(s) still busy at shutdown",
			     srv->nconns);
	for (struct evd_http_conn *c = srv->conns; c; c = c->next)
		evd_http_conn_close(c);
	uv_close((uv_handle_t *)&srv->stop_timer, on_server_handle_closed);
}

void evd_http_server_stop(struct evd_http_server *srv, uint64_t timeout_ms,
			  void (*on_closed)(void *data), void *data)
{
	if (srv->stopping)
		return;
	srv->stopping = true;
	srv->on_closed = on_closed;
	srv->closed_data = data;
	uv_close((uv_handle_t *)&srv->listener, on_server_handle_closed);
	/* Draining may close (and unlink) the connection, so fetch next first. */
	for (struct evd_http_conn *c = srv->conns, *next; c; c = next) {
		next = c->next;
		evd_http_conn_drain(c);
	}
	uv_timer_start(&srv->stop_timer, on_stop_timeout, timeout_ms, 0);
}

const char *evd_http_server_date(struct evd_http_server *srv)
{
	/* time() is a vDSO call; formatting happens at most once per second. */
	time_t now = time(NULL);
	if (now != srv->date_sec) {
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(srv->date, sizeof(srv->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		srv->date_sec = now;
	}
	return srv->date;
}

const struct evd_header *evd_http_request_header(const struct evd_http_request *req,
						      const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct evd_header *h = &req->headers[i];
		if (h->name_len == n && strncasecmp(h->name, name, n) == 0)
			return h;
	}
	return NULL;
}

static void append_uint(struct evd_buf *b, size_t v)
{
	char tmp[24];
	char *p = tmp + sizeof(tmp);
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	evd_buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

#define APPEND_LIT(b, s) evd_buf_append((b), (s), sizeof(s) - 1)

void evd_http_format(struct evd_http_req *req, int status, const char *content_type,
		     const char *extra_headers, const void *body, size_t len)
{
	struct evd_http_conn *conn = req->conn;
	struct evd_buf *b = &req->resp;
	bool close = req->close_after || !req->pub.keep_alive ||
		     (conn->draining && req == conn->tail && !conn->cur);
	req->close_after = close;

	evd_buf_reset(b);
	evd_buf_reserve(b, 160 + len + (extra_headers ? strlen(extra_headers) : 0));
	APPEND_LIT(b, "HTTP/1.1 ");
	append_uint(b, (size_t)status);
	evd_buf_append_char(b, ' ');
	evd_buf_append_str(b, evd_http_status_text(status));
	APPEND_LIT(b, "\r\nDate: ");
	evd_buf_append_str(b, evd_http_server_date(conn->srv));
	APPEND_LIT(b, "\r\n");
	/* RFC 9110 8.6: no Content-Length in 1xx and 204 responses. */
	bool no_body = status < 200 || status == 204 || status == 304;
	if (!no_body) {
		APPEND_LIT(b, "Content-Length: ");
		append_uint(b, len);
		APPEND_LIT(b, "\r\n");
	}
	if (content_type && len) {
		APPEND_LIT(b, "Content-Type: ");
		evd_buf_append_str(b, content_type);
		APPEND_LIT(b, "\r\n");
	}
	if (close)
		APPEND_LIT(b, "Connection: close\r\n");
	else if (req->http10)
		APPEND_LIT(b, "Connection: keep-alive\r\n");
	if (extra_headers)
		evd_buf_append_str(b, extra_headers);
	APPEND_LIT(b, "\r\n");
	if (!no_body && !req->head && len)
		evd_buf_append(b, body, len);
}

void evd_http_respond(struct evd_http_request *pub, int status, const char *content_type,
		      const char *extra_headers, const void *body, size_t len)
{
	struct evd_http_req *req = (struct evd_http_req *)pub;
	struct evd_http_conn *conn = req->conn;
	assert(req->state == EVD_REQ_HANDLER); /* exactly one response per request */
	conn->nhandler--;
	if (conn->closing || conn->closed) {
		/* The client went away: the response has nowhere to go. */
		evd_http_conn_discard(req);
		return;
	}
	evd_http_format(req, status, content_type, extra_headers, body, len);
	/*
	 * The handler is done with the request (it is invalid for it now) and the response is a
	 * copy: release the body at once rather than when the response is written. A slow request
	 * at the head of a pipelined connection would otherwise pin the bodies of every request
	 * answered behind it (max_connections x max_pipelined x max_body_size at worst).
	 */
	if (req->body.cap > EVD_HTTP_KEEP_BODY)
		evd_buf_free(&req->body);
	else
		evd_buf_reset(&req->body);
	req->pub.body = "";
	req->pub.body_len = 0;
	req->state = EVD_REQ_READY;
	evd_http_conn_flush(conn);
}

void evd_http_respond_text(struct evd_http_request *req, int status, const char *extra_headers,
			   const char *text)
{
	/* Format into a small stack buffer when it fits: this is the hot path for errors. */
	char small[256];
	size_t n = strlen(text);
	if (n + 2 <= sizeof(small)) {
		memcpy(small, text, n);
		small[n] = '\n';
		evd_http_respond(req, status, "text/plain; charset=utf-8", extra_headers, small,
				 n + 1);
		return;
	}
	char *big = evd_xmalloc(n + 1);
	memcpy(big, text, n);
	big[n] = '\n';
	evd_http_respond(req, status, "text/plain; charset=utf-8", extra_headers, big, n + 1);
	free(big);
}

const char *evd_http_status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	case 507: return "Insufficient Storage";
	default: return status >= 500 ? "Server Error" : status >= 400 ? "Client Error" : "Unknown";
	}
}
