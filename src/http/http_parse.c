/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Turning bytes into requests: the llhttp callbacks (spans are copied into the request, since
 * llhttp spans can cross reads), the limits checked while parsing (431, 413, 400), Expect:
 * 100-continue, and the reusable request objects and the per-connection FIFO they queue in.
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
#include "util/util_log.h"
#include "util/util_mem.h"

/* ---- request objects ---------------------------------------------------------------------- */

void evd_http_req_free(struct evd_http_req *r)
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

void evd_http_req_put(struct evd_http_conn *conn, struct evd_http_req *r)
{
	if (conn->nfree >= EVD_HTTP_FREELIST || conn->closed) {
		evd_http_req_free(r);
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

void evd_http_queue_remove(struct evd_http_conn *conn, struct evd_http_req *r)
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

/* ---- parsing ------------------------------------------------------------------------------ */

static void on_continue_written(uv_write_t *wr, int status)
{
	free(wr);
}

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
			r->hdrs[i] = (struct evd_header){ r->raw.data + o->name_off, o->name_len,
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
		const struct evd_header *h = evd_http_request_header(pub, "Expect");
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
void evd_http_conn_reject(struct evd_http_conn *conn, int status, const char *reason)
{
	struct evd_http_req *r = conn->cur ? conn->cur : req_get(conn);
	conn->cur = NULL;
	r->close_after = true;
	r->pub.keep_alive = false;
	r->head = false;
	struct evd_buf own = EVD_BUF_INIT;
	const char *ctype = "text/plain; charset=utf-8";
	if (conn->srv->on_reject)
		conn->srv->on_reject(&r->pub, status, reason, &own, &ctype, conn->srv->data);
	if (own.len) {
		evd_http_format(r, status, ctype, NULL, own.data, own.len);
	} else {
		char text[256];
		int n = snprintf(text, sizeof(text), "%s: %s\n", evd_http_status_text(status),
				 reason);
		evd_http_format(r, status, "text/plain; charset=utf-8", NULL, text,
				n < (int)sizeof(text) ? (size_t)n : sizeof(text) - 1);
	}
	evd_buf_free(&own);
	r->state = EVD_REQ_READY;
	queue_push(conn, r);
	conn->read_done = true;
	evd_http_conn_read_stop(conn);
	evd_log_debug(conn->srv->name, "%s: %d %s", conn->peer, status, reason);
}

/* Runs the parser over data and deals with what made it stop. */
void evd_http_conn_execute(struct evd_http_conn *conn, const char *data, size_t len,
			   bool from_pending)
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
		evd_http_conn_read_stop(conn);
		if (conn->read_done)
			evd_buf_reset(&conn->pending);
		else if (from_pending)
			evd_buf_consume(&conn->pending, used);
		else
			evd_buf_append(&conn->pending, data + used, len - used);
		break;
	case HPE_PAUSED_UPGRADE:
		conn->read_done = true;
		evd_http_conn_read_stop(conn);
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
		evd_http_conn_reject(conn, conn->err_status ? conn->err_status : 400, reason);
		evd_buf_reset(&conn->pending);
		break;
	}
	evd_http_conn_flush(conn);
}

void evd_http_conn_parse_pending(struct evd_http_conn *conn)
{
	conn->paused = false;
	llhttp_resume(&conn->parser);
	if (conn->pending.len)
		evd_http_conn_execute(conn, conn->pending.data, conn->pending.len, true);
	if (!conn->paused && !conn->read_done)
		evd_http_conn_read_start(conn);
}

