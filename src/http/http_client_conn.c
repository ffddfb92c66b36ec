/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One connection of the asynchronous client (http_client_internal.h): resolve the name off the
 * loop (uv_getaddrinfo; numeric hosts skip it), connect to each address in turn, write the
 * request as two iovecs (the head built once into a buffer kept with the connection, the body by
 * reference), parse the response with the shared parser, then hand the connection back to the
 * pool. Every failure closes the connection before the request is failed, so a body handed to
 * uv_write is never read again once the caller gets it back.
 *
 * A connection the pool reused that the peer had closed (EOF, reset or EPIPE before any byte of
 * the response) is retried once on a fresh connection: the server may close an idle connection
 * at any moment, and that race is no failure of the sink.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_client_internal.h"

/* ---- the TCP transport ------------------------------------------------------------------ */

static void tcp_on_connect(uv_connect_t *req, int status)
{
	evd_http_cconn_on_connect(req->data, status);
}

static int tcp_connect(struct evd_http_client_conn *conn, const struct sockaddr *sa)
{
	conn->connect.data = conn;
	return uv_tcp_connect(&conn->connect, &conn->tcp, sa, tcp_on_connect);
}

static void tcp_on_write(uv_write_t *req, int status)
{
	evd_http_cconn_on_written(req->data, status);
}

/*
 * A request nearly always fits the socket buffer: write it now. Every completed uv_write makes
 * libuv 1.44 re-arm the socket in epoll (uv__drain -> uv__io_stop queues an EPOLL_CTL_MOD even
 * when nothing changes), one syscall per request more; uv_try_write has no request and no
 * re-arm (the server's http_conn.c does the same). What it cannot write goes through uv_write.
 */
static int tcp_write(struct evd_http_client_conn *conn, uv_buf_t *bufs, unsigned nbufs)
{
	size_t total = 0;
	for (unsigned i = 0; i < nbufs; i++)
		total += bufs[i].len;
	int w = uv_try_write((uv_stream_t *)&conn->tcp, bufs, nbufs);
	if (w >= 0 && (size_t)w == total)
		return 1;
	if (w < 0 && w != UV_EAGAIN)
		return w;
	for (size_t skip = w > 0 ? (size_t)w : 0; skip > 0;) {
		if (skip >= bufs->len) {
			skip -= bufs->len;
			bufs++;
			nbufs--;
		} else {
			bufs->base += skip;
			bufs->len -= skip;
			skip = 0;
		}
	}
	conn->write.data = conn;
	return uv_write(&conn->write, (uv_stream_t *)&conn->tcp, bufs, nbufs, tcp_on_write);
}

static size_t tcp_write_queued(struct evd_http_client_conn *conn)
{
	return uv_stream_get_write_queue_size((uv_stream_t *)&conn->tcp);
}

static void tcp_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct evd_http_client_conn *conn = h->data;
	*buf = uv_buf_init(conn->client->readbuf, sizeof(conn->client->readbuf));
}

static void tcp_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	if (nread != 0)
		evd_http_cconn_on_read(s->data, nread, buf->base);
}

static int tcp_read_start(struct evd_http_client_conn *conn)
{
	return uv_read_start((uv_stream_t *)&conn->tcp, tcp_on_alloc, tcp_on_read);
}

static void tcp_on_close(uv_handle_t *h)
{
	evd_http_cconn_on_closed(h->data);
}

static void tcp_close(struct evd_http_client_conn *conn)
{
	if (!uv_is_closing((uv_handle_t *)&conn->tcp))
		uv_close((uv_handle_t *)&conn->tcp, tcp_on_close);
}

const struct evd_http_transport evd_http_transport_tcp = {
	.scheme = "http",
	.connect = tcp_connect,
	.write = tcp_write,
	.write_queued = tcp_write_queued,
	.read_start = tcp_read_start,
	.close = tcp_close,
};

/* ---- lifetime ----------------------------------------------------------------------------- */

static void conn_unref(struct evd_http_client_conn *conn)
{
	if (--conn->pending > 0)
		return;
	struct evd_http_client *c = conn->client;
	struct evd_http_origin *o = conn->origin;
	if (conn->ai)
		uv_freeaddrinfo(conn->ai);
	evd_buf_free(&conn->head);
	evd_http_response_free(&conn->resp);
	if (conn->aprev)
		conn->aprev->anext = conn->anext;
	else
		c->conns = conn->anext;
	if (conn->anext)
		conn->anext->aprev = conn->aprev;
	free(conn);
	evd_http_client_conn_gone(c, o);
}

void evd_http_cconn_on_closed(struct evd_http_client_conn *conn)
{
	conn_unref(conn);
}

static void on_timer_closed(uv_handle_t *h)
{
	conn_unref(h->data);
}

static void idle_unlink(struct evd_http_client_conn *conn)
{
	if (conn->state != EVD_HCC_IDLE)
		return;
	struct evd_http_origin *o = conn->origin;
	if (conn->iprev)
		conn->iprev->inext = conn->inext;
	else
		o->idle = conn->inext;
	if (conn->inext)
		conn->inext->iprev = conn->iprev;
	conn->iprev = conn->inext = NULL;
}

struct evd_http_client_request *evd_http_cconn_close(struct evd_http_client_conn *conn)
{
	if (conn->state == EVD_HCC_CLOSING)
		return NULL;
	idle_unlink(conn);
	conn->state = EVD_HCC_CLOSING;
	if (conn->counted) {
		conn->counted = false;
		conn->origin->nconns--;
		/* A slot is free: a waiter may open a connection now. */
		if (conn->origin->wait_head)
			evd_http_client_mark_dirty(conn->client, conn->origin);
	}
	if (conn->pending > 2) /* resolution in flight: its callback frees the list */
		uv_cancel((uv_req_t *)&conn->gai);
	uv_close((uv_handle_t *)&conn->timer, on_timer_closed);
	conn->origin->transport->close(conn);
	struct evd_http_client_request *req = conn->req;
	conn->req = NULL;
	if (req)
		req->priv_[1] = NULL;
	return req;
}

/* ---- failures ----------------------------------------------------------------------------- */

static bool stale_error(int err)
{
	return err == UV_EOF || err == UV_ECONNRESET || err == UV_EPIPE || err == UV_ECONNABORTED;
}

/* Closes the connection and fails its request, or retries it once on a fresh connection when a
 * reused connection turned out closed before any byte of the response. */
static void conn_fail(struct evd_http_client_conn *conn, int err, enum evd_http_client_phase phase,
		      const char *detail)
{
	struct evd_http_client *c = conn->client;
	struct evd_http_origin *o = conn->origin;
	bool reused = conn->reused, no_byte = conn->resp.bytes == 0;
	uint64_t start = conn->start_ns;
	uint64_t elapsed_us = (uv_hrtime() - start) / 1000;
	struct evd_http_client_request *req = evd_http_cconn_close(conn);
	if (!req)
		return;
	if (reused && no_byte && stale_error(err) && !(HCR_FLAGS(req) & HCR_RETRIED) &&
	    !c->closing) {
		req->priv_[3] = (void *)(HCR_FLAGS(req) | HCR_RETRIED);
		uint64_t deadline = c->cfg.timeout_ms ? uv_now(c->loop) + c->cfg.timeout_ms : 0;
		evd_http_cconn_new(c, o, req, start, NULL, NULL, deadline);
		return;
	}
	if (err == UV_EOF)
		err = UV_ECONNRESET;
	evd_http_client_fail_later(c, req, err, phase, detail);
	req->priv_[0] = (void *)(uintptr_t)elapsed_us;
}

static void on_timer(uv_timer_t *t)
{
	struct evd_http_client_conn *conn = t->data;
	if (conn->state == EVD_HCC_IDLE) {
		evd_http_cconn_close(conn);
		return;
	}
	const char *what = conn->state == EVD_HCC_RESOLVING ? "resolving the name"
			 : conn->state == EVD_HCC_CONNECTING ? "connecting"
			 : conn->writing ? "sending the request"
			 : conn->resp.bytes ? "reading the response" : "waiting for the response";
	conn_fail(conn, UV_ETIMEDOUT, EVD_HCP_TIMEOUT, what);
}

static void start_deadline(struct evd_http_client_conn *conn)
{
	if (!conn->deadline)
		return;
	uint64_t now = uv_now(conn->client->loop);
	uv_timer_start(&conn->timer, on_timer, conn->deadline > now ? conn->deadline - now : 0, 0);
}

/* ---- connecting --------------------------------------------------------------------------- */

static void try_connect(struct evd_http_client_conn *conn, const struct sockaddr *sa)
{
	conn->state = EVD_HCC_CONNECTING;
	int rc = conn->origin->transport->connect(conn, sa);
	if (rc < 0) /* e.g. an IPv6 address on a host without IPv6: the next address may do */
		evd_http_cconn_on_connect(conn, rc);
}

static void on_resolved(uv_getaddrinfo_t *gai, int status, struct addrinfo *ai)
{
	struct evd_http_client_conn *conn = gai->data;
	if (conn->state == EVD_HCC_CLOSING) {
		if (ai)
			uv_freeaddrinfo(ai);
		conn_unref(conn);
		return;
	}
	conn->pending--;
	if (status < 0) {
		conn_fail(conn, status, EVD_HCP_RESOLVE, uv_strerror(status));
		return;
	}
	conn->ai = ai;
	conn->ai_next = ai->ai_next;
	try_connect(conn, ai->ai_addr);
}

void evd_http_cconn_new(struct evd_http_client *c, struct evd_http_origin *o,
		       struct evd_http_client_request *req, uint64_t start_ns,
		       struct addrinfo *ai, struct addrinfo *ai_next, uint64_t deadline)
{
	struct evd_http_client_conn *conn = calloc(1, sizeof(*conn));
	if (!conn)
		abort(); /* control-plane allocation (STYLE.md) */
	conn->client = c;
	conn->origin = o;
	conn->state = EVD_HCC_RESOLVING;
	uv_tcp_init(c->loop, &conn->tcp);
	conn->tcp.data = conn;
	uv_timer_init(c->loop, &conn->timer);
	conn->timer.data = conn;
	conn->pending = 2;
	conn->anext = c->conns;
	if (c->conns)
		c->conns->aprev = conn;
	c->conns = conn;
	conn->counted = true;
	o->nconns++;
	o->nobjs++;
	c->nobjs++;
	evd_http_response_init(&conn->resp);
	conn->resp.body_max = c->cfg.max_response_body;
	conn->req = req;
	conn->start_ns = start_ns;
	conn->deadline = deadline;
	req->priv_[0] = o;
	req->priv_[1] = conn;
	hcr_set_state(req, EVD_HCR_ACTIVE);
	start_deadline(conn);

	if (ai) { /* the next address of a name that resolved to several */
		conn->ai = ai;
		conn->ai_next = ai_next->ai_next;
		try_connect(conn, ai_next->ai_addr);
	} else if (o->numeric) {
		try_connect(conn, (const struct sockaddr *)&o->addr);
	} else {
		/* No AI_ADDRCONFIG: it ignores loopback addresses, so on a host with nothing but
		 * lo "localhost" would not resolve. An address we cannot reach fails fast and the
		 * next is tried. */
		struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
		conn->gai.data = conn;
		conn->pending++;
		int rc = uv_getaddrinfo(c->loop, &conn->gai, on_resolved, o->host, o->port_str,
					&hints);
		if (rc < 0) {
			conn->pending--;
			conn_fail(conn, rc, EVD_HCP_RESOLVE, uv_strerror(rc));
		}
	}
}

static void send_request(struct evd_http_client_conn *conn);

void evd_http_cconn_on_connect(struct evd_http_client_conn *conn, int status)
{
	if (conn->state == EVD_HCC_CLOSING)
		return;
	if (status < 0) {
		if (conn->ai_next) {
			/* The name has more addresses ("localhost" is ::1 and 127.0.0.1): try the
			 * next on a fresh socket, within the same deadline. The new connection
			 * takes the address list. */
			struct evd_http_client *c = conn->client;
			struct evd_http_origin *o = conn->origin;
			struct addrinfo *ai = conn->ai, *next = conn->ai_next;
			uint64_t start = conn->start_ns, deadline = conn->deadline;
			conn->ai = NULL;
			struct evd_http_client_request *req = evd_http_cconn_close(conn);
			if (req)
				evd_http_cconn_new(c, o, req, start, ai, next, deadline);
			else
				uv_freeaddrinfo(ai);
			return;
		}
		conn_fail(conn, status, EVD_HCP_CONNECT, uv_strerror(status));
		return;
	}
	if (conn->ai) {
		uv_freeaddrinfo(conn->ai);
		conn->ai = conn->ai_next = NULL;
	}
	uv_tcp_nodelay(&conn->tcp, 1);
	int rc = conn->origin->transport->read_start(conn);
	if (rc < 0) {
		conn_fail(conn, rc, EVD_HCP_CONNECT, uv_strerror(rc));
		return;
	}
	conn->read_started = true;
	send_request(conn);
}

/* ---- the exchange ------------------------------------------------------------------------- */

static void build_head(struct evd_http_client_conn *conn, const struct evd_http_client_request *req)
{
	struct evd_buf *h = &conn->head;
	const char *path = HCR_PATH(req);
	size_t plen = strcspn(path, "#");
	evd_buf_reset(h);
	evd_buf_printf(h, "%s %s%.*s HTTP/1.1\r\nHost: %s\r\nContent-Length: %zu\r\n", req->method,
		       plen == 0 || path[0] == '?' ? "/" : "", (int)plen, path,
		       conn->origin->authority, req->body_len);
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct evd_header *x = &req->headers[i];
		evd_buf_append(h, x->name, x->name_len);
		evd_buf_append(h, ": ", 2);
		evd_buf_append(h, x->value, x->value_len);
		evd_buf_append(h, "\r\n", 2);
	}
	evd_buf_append(h, "\r\n", 2);
}

static void send_request(struct evd_http_client_conn *conn)
{
	struct evd_http_client_request *req = conn->req;
	conn->state = EVD_HCC_ACTIVE;
	evd_http_response_reset(&conn->resp, strcmp(req->method, "HEAD") == 0);
	conn->resp.body_max = conn->client->cfg.max_response_body;
	build_head(conn, req);
	uv_buf_t bufs[2] = {
		uv_buf_init(conn->head.data, (unsigned)conn->head.len),
		uv_buf_init((char *)(uintptr_t)req->body, (unsigned)req->body_len),
	};
	/* uv_buf_t's length is a size_t on Unix; uv_buf_init takes an unsigned int. */
	bufs[1].len = req->body_len;
	int rc = conn->origin->transport->write(conn, bufs, req->body_len ? 2 : 1);
	if (rc < 0) {
		conn_fail(conn, rc, EVD_HCP_SEND, uv_strerror(rc));
		return;
	}
	conn->writing = rc == 0;
}

void evd_http_cconn_assign(struct evd_http_client_conn *conn, struct evd_http_client_request *req)
{
	struct evd_http_client *c = conn->client;
	idle_unlink(conn);
	conn->req = req;
	conn->start_ns = uv_hrtime();
	conn->deadline = c->cfg.timeout_ms ? uv_now(c->loop) + c->cfg.timeout_ms : 0;
	req->priv_[0] = conn->origin;
	req->priv_[1] = conn;
	hcr_set_state(req, EVD_HCR_ACTIVE);
	uv_timer_stop(&conn->timer);
	start_deadline(conn);
	send_request(conn);
}

void evd_http_cconn_idle(struct evd_http_client_conn *conn)
{
	struct evd_http_origin *o = conn->origin;
	conn->state = EVD_HCC_IDLE;
	conn->iprev = NULL;
	conn->inext = o->idle;
	if (o->idle)
		o->idle->iprev = conn;
	o->idle = conn;
	uv_timer_stop(&conn->timer);
	uv_timer_start(&conn->timer, on_timer, conn->client->cfg.idle_timeout_ms, 0);
}

/* The response is complete and the request written: hand the result over, then the connection
 * back to the pool (or close it). */
static void finish(struct evd_http_client_conn *conn, bool leftover)
{
	struct evd_http_client *c = conn->client;
	struct evd_http_client_request *req = conn->req;
	struct evd_http_response *r = &conn->resp;
	/* A write whose bytes are all out but whose callback is still due (libuv runs it on the
	 * next turn of the loop, and the answer may come first) is no obstacle to keep-alive: the
	 * connection only waits for that callback before it carries another request. */
	bool unsent = conn->writing && conn->origin->transport->write_queued(conn) > 0;
	bool keep = r->keep_alive && !leftover && !unsent && !c->closing;
	conn->reused = true;
	uv_timer_stop(&conn->timer);
	if (!keep) {
		/* Closed first: then a write still in flight (a server that answered early) can no
		 * longer read the caller's body once on_done has run. */
		evd_http_cconn_close(conn);
	} else {
		conn->req = NULL;
		conn->state = EVD_HCC_PARKED; /* on no list: nothing may take it yet */
	}
	struct evd_http_client_result res = {
		.status = r->status,
		.retry_after_ms = r->retry_after[0]
					  ? evd_http_retry_after_ms(r->retry_after,
								    strlen(r->retry_after),
								    time(NULL))
					  : -1,
		.body = r->body.data ? r->body.data : "",
		.body_len = r->body.len,
		.duration_ns = uv_hrtime() - conn->start_ns,
	};
	/* The connection stays allocated during on_done: a closing one waits for its handles'
	 * callbacks, and a kept one is in no list yet, so neither send nor close frees it. */
	evd_http_client_complete(c, req, &res);
	if (keep && conn->state == EVD_HCC_PARKED) {
		if (conn->writing)
			conn->release_on_written = true;
		else
			evd_http_client_conn_free_slot(conn);
	}
}

void evd_http_cconn_on_written(struct evd_http_client_conn *conn, int status)
{
	conn->writing = false;
	if (conn->state == EVD_HCC_CLOSING)
		return;
	if (conn->release_on_written) { /* the response came before this callback */
		conn->release_on_written = false;
		if (status < 0)
			evd_http_cconn_close(conn);
		else
			evd_http_client_conn_free_slot(conn);
		return;
	}
	if (status < 0)
		conn_fail(conn, status, EVD_HCP_SEND, uv_strerror(status));
}

void evd_http_cconn_on_read(struct evd_http_client_conn *conn, ssize_t nread, const char *data)
{
	if (conn->state == EVD_HCC_CLOSING)
		return;
	if (conn->state != EVD_HCC_ACTIVE) {
		/* Idle: the peer closed, or sent bytes nobody asked for. Either way the connection
		 * cannot carry another request. */
		evd_http_cconn_close(conn);
		return;
	}
	int rc;
	size_t used = 0;
	if (nread < 0 && nread != UV_EOF) {
		conn_fail(conn, (int)nread, EVD_HCP_RECEIVE, uv_strerror((int)nread));
		return;
	}
	rc = nread == UV_EOF ? evd_http_response_eof(&conn->resp)
			     : evd_http_response_feed(&conn->resp, data, (size_t)nread, &used);
	if (rc == 0)
		return;
	if (rc < 0) {
		if (rc == -ECONNRESET)
			conn_fail(conn, UV_EOF, EVD_HCP_RECEIVE, evd_http_response_error(&conn->resp));
		else
			conn_fail(conn, UV_EPROTO, EVD_HCP_RECEIVE,
				  evd_http_response_error(&conn->resp));
		return;
	}
	/* Bytes after the response: the connection is not reused. */
	finish(conn, nread == UV_EOF || used < (size_t)nread);
}
