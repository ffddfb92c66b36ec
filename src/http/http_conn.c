/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One HTTP/1.1 connection: reading into the server's shared buffer, parsing with llhttp (spans
 * are copied into the request, since llhttp spans can cross reads), the FIFO of requests whose
 * responses must leave in request order, batched writes, and the idle/linger timer.
 *
 * llhttp contract relied on here: a callback returning HPE_PAUSED makes llhttp_execute() return
 * HPE_PAUSED with llhttp_get_error_pos() at the first unparsed byte; after llhttp_resume() the
 * rest is fed again. Any other non-zero return is an error and sticks until llhttp_init().
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_internal.h"
#include "util/util_addr.h"
#include "util/util_log.h"
#include "util/util_mem.h"

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_timer(uv_timer_t *t);

/* ---- request objects ---------------------------------------------------------------------- */

static void req_free(struct evd_http_req *r)
{
	evd_buf_free(&r->raw);
	evd_buf_free(&r->body);
	evd_buf_free(&r->resp);
	free(r->offs);
	free(r->hdrs);
	free(r);
}

static struct evd_http_req *req_get(struct evd_http_conn *conn)
{
	struct evd_http_req *r = conn->freelist;
	if (r) {
		conn->freelist = r->next;
		conn->nfree--;
		evd_buf_reset(&r->raw);
		evd_buf_reset(&r->body);
		evd_buf_reset(&r->resp);
	} else {
		r = evd_xcalloc(1, sizeof(*r));
		r->conn = conn;
	}
	r->next = NULL;
	r->state = EVD_REQ_PARSING;
	r->close_after = r->in_field = r->in_trailers = r->http10 = r->head = false;
	r->url_len = 0;
	r->header_bytes = 0;
	r->nhdrs = 0;
	memset(&r->pub, 0, offsetof(struct evd_http_request, peer));
	memcpy(r->pub.peer, conn->peer, sizeof(r->pub.peer));
	r->pub.user = NULL;
	r->pub.server = conn->srv;
	return r;
}

static void req_put(struct evd_http_conn *conn, struct evd_http_req *r)
{
	if (conn->nfree >= EVD_HTTP_FREELIST || conn->closed) {
		req_free(r);
		return;
	}
	/* Keep small buffers for reuse, but do not let one large body pin its memory. */
	if (r->body.cap > 64 * 1024)
		evd_buf_free(&r->body);
	if (r->resp.cap > 64 * 1024)
		evd_buf_free(&r->resp);
	r->next = conn->freelist;
	conn->freelist = r;
	conn->nfree++;
}

static void queue_push(struct evd_http_conn *conn, struct evd_http_req *r)
{
	r->next = NULL;
	if (conn->tail)
		conn->tail->next = r;
	else
		conn->head = r;
	conn->tail = r;
	conn->nqueued++;
}

static void queue_remove(struct evd_http_conn *conn, struct evd_http_req *r)
{
	struct evd_http_req *prev = NULL;
	for (struct evd_http_req *it = conn->head; it; prev = it, it = it->next) {
		if (it != r)
			continue;
		if (prev)
			prev->next = r->next;
		else
			conn->head = r->next;
		if (conn->tail == r)
			conn->tail = prev;
		conn->nqueued--;
		return;
	}
}

/* ---- closing ------------------------------------------------------------------------------ */

static void conn_free(struct evd_http_conn *conn)
{
	while (conn->freelist) {
		struct evd_http_req *r = conn->freelist;
		conn->freelist = r->next;
		req_free(r);
	}
	evd_buf_free(&conn->pending);
	free(conn);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct evd_http_conn *conn = h->data;
	if (--conn->handles_open > 0)
		return;
	conn->closed = true;
	struct evd_http_server *srv = conn->srv;
	conn->srv = NULL;
	if (conn->cur) {
		req_free(conn->cur);
		conn->cur = NULL;
	}
	/* Responses not yet written go; requests the handler still holds stay until answered. */
	for (struct evd_http_req *r = conn->head, *next; r; r = next) {
		next = r->next;
		if (r->state != EVD_REQ_HANDLER) {
			queue_remove(conn, r);
			req_free(r);
		}
	}
	if (srv)
		evd_http_server_conn_gone(srv, conn);
	if (conn->nhandler == 0)
		conn_free(conn);
	/* Last: finishing the stop runs on_closed, which may answer (and so free) requests. */
	if (srv)
		evd_http_server_check_stopped(srv);
}

void evd_http_conn_close(struct evd_http_conn *conn)
{
	if (conn->closing)
		return;
	conn->closing = true;
	conn->read_done = true;
	uv_close((uv_handle_t *)&conn->tcp, on_handle_closed);
	uv_close((uv_handle_t *)&conn->timer, on_handle_closed);
}

void evd_http_conn_discard(struct evd_http_req *req)
{
	struct evd_http_conn *conn = req->conn;
	queue_remove(conn, req);
	req_free(req);
	if (conn->closed && conn->nhandler == 0)
		conn_free(conn);
}

static void read_stop(struct evd_http_conn *conn)
{
	if (conn->reading) {
		uv_read_stop((uv_stream_t *)&conn->tcp);
		conn->reading = false;
	}
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	/* One buffer per server is enough: libuv calls on_read right after this, and on_read
	 * copies everything it keeps. */
	struct evd_http_conn *conn = h->data;
	buf->base = conn->srv->readbuf;
	buf->len = sizeof(conn->srv->readbuf);
}

static void read_start(struct evd_http_conn *conn)
{
	if (conn->reading || conn->closing)
		return;
	if (uv_read_start((uv_stream_t *)&conn->tcp, alloc_cb, on_read) < 0) {
		evd_http_conn_close(conn);
		return;
	}
	conn->reading = true;
}

static void on_shutdown(uv_shutdown_t *sr, int status)
{
	struct evd_http_conn *conn = sr->data;
	if (conn->closing)
		return;
	if (status < 0) {
		evd_http_conn_close(conn);
		return;
	}
	/* Drain what the client still sends until it closes or the linger time is over. */
	read_start(conn);
	uv_timer_start(&conn->timer, on_timer, EVD_HTTP_LINGER_MS, 0);
}

/* The final response is out: half-close, so the client sees it before we close for good. */
static void finish(struct evd_http_conn *conn)
{
	if (conn->eof || conn->draining) {
		evd_http_conn_close(conn);
		return;
	}
	conn->read_done = true;
	conn->lingering = true;
	conn->shutdown_req.data = conn;
	if (uv_shutdown(&conn->shutdown_req, (uv_stream_t *)&conn->tcp, on_shutdown) < 0)
		evd_http_conn_close(conn);
}

void evd_http_conn_drain(struct evd_http_conn *conn)
{
	conn->draining = true;
	conn->read_done = true;
	read_stop(conn);
	if (conn->nqueued == 0)
		evd_http_conn_close(conn);
}

/* ---- writing ------------------------------------------------------------------------------ */

static void parse_pending(struct evd_http_conn *conn);

static void on_write(uv_write_t *wr, int status)
{
	struct evd_http_conn *conn = wr->data;
	conn->writing = false;
	if (conn->closing)
		return; /* on_handle_closed frees the requests */
	if (status < 0) {
		evd_http_conn_close(conn);
		return;
	}
	bool close = false;
	for (uint32_t i = 0; i < conn->nwriting; i++) {
		struct evd_http_req *r = conn->head;
		conn->head = r->next;
		if (!conn->head)
			conn->tail = NULL;
		conn->nqueued--;
		close |= r->close_after;
		req_put(conn, r);
	}
	conn->nwriting = 0;
	if (close || (conn->read_done && conn->nqueued == 0)) {
		finish(conn);
		return;
	}
	evd_http_conn_flush(conn);
	if (conn->paused && !conn->read_done && conn->nqueued < conn->srv->limits.max_pipelined)
		parse_pending(conn);
	if (!conn->closing && conn->nqueued == 0 && !conn->cur)
		uv_timer_start(&conn->timer, on_timer, conn->srv->limits.idle_timeout_ms, 0);
}

void evd_http_conn_flush(struct evd_http_conn *conn)
{
	if (conn->writing || conn->closing || conn->in_parse || conn->lingering)
		return;
	uint32_t n = 0;
	for (struct evd_http_req *r = conn->head; r && r->state == EVD_REQ_READY; r = r->next) {
		conn->wbufs[n++] = uv_buf_init(r->resp.data, (unsigned int)r->resp.len);
		r->state = EVD_REQ_WRITING;
		if (r->close_after || n == EVD_HTTP_WRITE_BATCH)
			break;
	}
	if (n == 0)
		return;
	conn->nwriting = n;
	conn->writing = true;
	conn->write_req.data = conn;
	if (uv_write(&conn->write_req, (uv_stream_t *)&conn->tcp, conn->wbufs, n, on_write) < 0) {
		conn->writing = false;
		evd_http_conn_close(conn);
	}
}

static void on_continue_written(uv_write_t *wr, int status)
{
	free(wr);
}

/* ---- parsing ------------------------------------------------------------------------------ */

static int count_header_bytes(struct evd_http_conn *conn, struct evd_http_req *r, size_t len)
{
	r->header_bytes += len;
	if (r->header_bytes > conn->srv->limits.max_header_size) {
		conn->err_status = 431;
		return -1;
	}
	return 0;
}

static int on_message_begin(llhttp_t *p)
{
	struct evd_http_conn *conn = p->data;
	conn->cur = req_get(conn);
	conn->cur->pub.start_ns = uv_hrtime();
	return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
	struct evd_http_conn *conn = p->data;
	struct evd_http_req *r = conn->cur;
	if (count_header_bytes(conn, r, len) < 0)
		return -1;
	evd_buf_append(&r->raw, at, len);
	r->url_len += (uint32_t)len;
	return 0;
}

static int on_url_complete(llhttp_t *p)
{
	struct evd_http_conn *conn = p->data;
	evd_buf_append_char(&conn->cur->raw, '\0');
	return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct evd_http_conn *conn = p->data;
	struct evd_http_req *r = conn->cur;
	if (count_header_bytes(conn, r, len + 4) < 0) /* + ": " and CRLF */
		return -1;
	if (r->in_trailers)
		return 0;
	if (!r->in_field) {
		if (r->nhdrs == r->hdrs_cap) {
			r->hdrs_cap = r->hdrs_cap ? r->hdrs_cap * 2 : 16;
			r->offs = evd_xrealloc(r->offs, r->hdrs_cap * sizeof(*r->offs));
			r->hdrs = evd_xrealloc(r->hdrs, r->hdrs_cap * sizeof(*r->hdrs));
		}
		struct evd_http_hdr_off *o = &r->offs[r->nhdrs++];
		o->name_off = o->value_off = (uint32_t)r->raw.len;
		o->name_len = o->value_len = 0;
		r->in_field = true;
	}
	evd_buf_append(&r->raw, at, len);
	r->offs[r->nhdrs - 1].name_len += (uint32_t)len;
	return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct evd_http_conn *conn = p->data;
	struct evd_http_req *r = conn->cur;
	if (count_header_bytes(conn, r, len) < 0)
		return -1;
	if (r->in_trailers)
		return 0;
	struct evd_http_hdr_off *o = &r->offs[r->nhdrs - 1];
	if (r->in_field) {
		r->in_field = false;
		o->value_off = (uint32_t)r->raw.len;
	}
	evd_buf_append(&r->raw, at, len);
	o->value_len += (uint32_t)len;
	return 0;
}

static void send_continue(struct evd_http_conn *conn)
{
	static char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
	uv_buf_t b = uv_buf_init(msg, sizeof(msg) - 1);
	uv_write_t *wr = evd_xmalloc(sizeof(*wr));
	if (uv_write(wr, (uv_stream_t *)&conn->tcp, &b, 1, on_continue_written) < 0)
		free(wr);
}

static int on_headers_complete(llhttp_t *p)
{
	struct evd_http_conn *conn = p->data;
	struct evd_http_req *r = conn->cur;
	struct evd_http_request *pub = &r->pub;
	r->in_trailers = true;
	r->in_field = false;

	/* raw does not grow any more (trailers are not stored), so pointers into it are stable. */
	pub->method = llhttp_method_name((llhttp_method_t)p->method);
	char *url = r->raw.data;
	char *q = memchr(url, '?', r->url_len);
	if (q) {
		*q = '\0';
		pub->path_len = (size_t)(q - url);
		pub->query = q + 1;
	} else {
		pub->path_len = r->url_len;
		pub->query = "";
	}
	pub->path = url;
	if (r->nhdrs > 0) {
		for (size_t i = 0; i < r->nhdrs; i++) {
			const struct evd_http_hdr_off *o = &r->offs[i];
			const char *v = r->raw.data + o->value_off;
			size_t vl = o->value_len;
			while (vl && (*v == ' ' || *v == '\t'))
				v++, vl--;
			while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				vl--;
			r->hdrs[i] = (struct evd_http_header){ r->raw.data + o->name_off, o->name_len,
							       v, vl };
		}
	}
	pub->headers = r->hdrs;
	pub->nheaders = r->nhdrs;
	pub->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
	r->http10 = p->http_major == 1 && p->http_minor == 0;
	r->head = p->method == HTTP_HEAD;

	bool has_body = (p->flags & F_CHUNKED) || p->content_length > 0;
	if (p->flags & F_CONTENT_LENGTH) {
		if (p->content_length > conn->srv->limits.max_body_size) {
			conn->err_status = 413;
			return -1;
		}
		evd_buf_reserve(&r->body, (size_t)p->content_length);
	}
	if (has_body && conn->nqueued == 0 && !(p->http_major == 1 && p->http_minor == 0)) {
		/* Only at the head of the queue: a 100 must not overtake earlier responses. A client
		 * whose Expect we skip sends the body after its own short wait. */
		const struct evd_http_header *h = evd_http_request_header(pub, "Expect");
		if (h && h->value_len == 12 && strncasecmp(h->value, "100-continue", 12) == 0)
			send_continue(conn);
	}
	return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
	struct evd_http_conn *conn = p->data;
	struct evd_http_req *r = conn->cur;
	if (r->body.len + len > conn->srv->limits.max_body_size) {
		conn->err_status = 413;
		return -1;
	}
	evd_buf_append(&r->body, at, len);
	return 0;
}

static int on_message_complete(llhttp_t *p)
{
	struct evd_http_conn *conn = p->data;
	struct evd_http_server *srv = conn->srv;
	struct evd_http_req *r = conn->cur;
	conn->cur = NULL;
	r->pub.body = r->body.data ? r->body.data : "";
	r->pub.body_len = r->body.len;
	r->state = EVD_REQ_HANDLER;
	queue_push(conn, r);
	conn->nhandler++;
	if (!r->pub.keep_alive)
		conn->read_done = true;
	srv->handler(&r->pub, srv->data);
	if (conn->read_done)
		return HPE_PAUSED;
	if (conn->nqueued >= srv->limits.max_pipelined) {
		conn->paused = true;
		return HPE_PAUSED;
	}
	return 0;
}

void evd_http_conn_init_settings(llhttp_settings_t *s)
{
	llhttp_settings_init(s);
	s->on_message_begin = on_message_begin;
	s->on_url = on_url;
	s->on_url_complete = on_url_complete;
	s->on_header_field = on_header_field;
	s->on_header_value = on_header_value;
	s->on_headers_complete = on_headers_complete;
	s->on_body = on_body;
	s->on_message_complete = on_message_complete;
}

/* The parser refused the input (or the request timed out): answer in order, then close. */
static void reject(struct evd_http_conn *conn, int status, const char *reason)
{
	struct evd_http_req *r = conn->cur ? conn->cur : req_get(conn);
	conn->cur = NULL;
	r->close_after = true;
	r->pub.keep_alive = false;
	r->head = false;
	char text[256];
	int n = snprintf(text, sizeof(text), "%s: %s\n", evd_http_status_text(status), reason);
	evd_http_format(r, status, "text/plain; charset=utf-8", NULL, text,
			n < (int)sizeof(text) ? (size_t)n : sizeof(text) - 1);
	r->state = EVD_REQ_READY;
	queue_push(conn, r);
	conn->read_done = true;
	read_stop(conn);
	evd_log_debug(conn->srv->name, "%s: %d %s", conn->peer, status, reason);
}

/* Runs the parser over data and deals with what made it stop. */
static void execute(struct evd_http_conn *conn, const char *data, size_t len, bool from_pending)
{
	conn->in_parse = true;
	llhttp_errno_t err = llhttp_execute(&conn->parser, data, len);
	conn->in_parse = false;
	if (conn->closing)
		return;
	size_t used;
	char reason[160];
	switch (err) {
	case HPE_OK:
		if (from_pending)
			evd_buf_reset(&conn->pending);
		break;
	case HPE_PAUSED:
		used = (size_t)(llhttp_get_error_pos(&conn->parser) - data);
		read_stop(conn);
		if (conn->read_done)
			evd_buf_reset(&conn->pending);
		else if (from_pending)
			evd_buf_consume(&conn->pending, used);
		else
			evd_buf_append(&conn->pending, data + used, len - used);
		break;
	case HPE_PAUSED_UPGRADE:
		conn->read_done = true;
		read_stop(conn);
		evd_buf_reset(&conn->pending);
		break;
	default:
		if (conn->err_status == 413) {
			snprintf(reason, sizeof(reason), "body exceeds %zu bytes",
				 conn->srv->limits.max_body_size);
		} else if (conn->err_status == 431) {
			snprintf(reason, sizeof(reason), "header fields exceed %zu bytes",
				 conn->srv->limits.max_header_size);
		} else {
			snprintf(reason, sizeof(reason), "%s: %s", llhttp_errno_name(err),
				 llhttp_get_error_reason(&conn->parser));
		}
		reject(conn, conn->err_status ? conn->err_status : 400, reason);
		evd_buf_reset(&conn->pending);
		break;
	}
	evd_http_conn_flush(conn);
}

static void parse_pending(struct evd_http_conn *conn)
{
	conn->paused = false;
	llhttp_resume(&conn->parser);
	if (conn->pending.len)
		execute(conn, conn->pending.data, conn->pending.len, true);
	if (!conn->paused && !conn->read_done)
		read_start(conn);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct evd_http_conn *conn = s->data;
	if (nread == 0 || conn->closing)
		return;
	if (nread < 0) {
		/* EOF: answer what is queued, then close; a half-read request is dropped. */
		conn->eof = true;
		read_stop(conn);
		if (nread != UV_EOF || conn->lingering || conn->nqueued == 0)
			evd_http_conn_close(conn);
		else
			conn->read_done = true;
		return;
	}
	if (conn->read_done)
		return; /* lingering: discard */
	if (!conn->cur) /* a new request has idle_timeout_ms to arrive completely */
		uv_timer_start(&conn->timer, on_timer, conn->srv->limits.idle_timeout_ms, 0);
	execute(conn, buf->base, (size_t)nread, false);
}

static void on_timer(uv_timer_t *t)
{
	struct evd_http_conn *conn = t->data;
	if (conn->closing)
		return;
	if (conn->nhandler > 0 && !conn->lingering) {
		/* The application is still working on a request; that is not the client's fault. */
		uv_timer_start(&conn->timer, on_timer, conn->srv->limits.idle_timeout_ms, 0);
		return;
	}
	if (conn->cur && conn->nqueued == 0 && !conn->read_done) {
		reject(conn, 408, "request not completed in time");
		evd_http_conn_flush(conn);
		/* If the client does not even read the 408, the next expiry closes. */
		uv_timer_start(&conn->timer, on_timer, conn->srv->limits.idle_timeout_ms, 0);
		return;
	}
	evd_http_conn_close(conn);
}

static void on_reject_closed(uv_handle_t *h)
{
	free(h);
}

void evd_http_conn_accept(struct evd_http_server *srv)
{
	if (srv->stopping || srv->nconns >= srv->limits.max_connections) {
		/* Accept and close at once, so the backlog does not fill with connections that will
		 * never be served; the 503 is best effort. */
		uv_tcp_t *t = evd_xmalloc(sizeof(*t));
		uv_tcp_init(srv->loop, t);
		if (uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)t) == 0) {
			static char msg[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
					    "Connection: close\r\n\r\n";
			uv_buf_t b = uv_buf_init(msg, sizeof(msg) - 1);
			(void)uv_try_write((uv_stream_t *)t, &b, 1);
			evd_log_debug(srv->name, "connection refused: %u connections open",
				      srv->nconns);
		}
		uv_close((uv_handle_t *)t, on_reject_closed);
		return;
	}

	struct evd_http_conn *conn = evd_xcalloc(1, sizeof(*conn));
	conn->srv = srv;
	uv_tcp_init(srv->loop, &conn->tcp);
	uv_timer_init(srv->loop, &conn->timer);
	conn->tcp.data = conn->timer.data = conn;
	conn->handles_open = 2;
	conn->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = conn;
	srv->conns = conn;
	srv->nconns++;
	if (uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&conn->tcp) < 0) {
		evd_http_conn_close(conn);
		return;
	}
	uv_tcp_nodelay(&conn->tcp, 1);
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&ss, &len) == 0)
		evd_addr_format((const struct sockaddr *)&ss, conn->peer, sizeof(conn->peer));
	llhttp_init(&conn->parser, HTTP_REQUEST, &srv->settings);
	conn->parser.data = conn;
	uv_timer_start(&conn->timer, on_timer, srv->limits.idle_timeout_ms, 0);
	read_start(conn);
}
