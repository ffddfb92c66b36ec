/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One HTTP/1.1 connection's life: accept (or refuse beyond max_connections), reading into the
 * server's shared buffer, writing ready responses from the head of the FIFO in one batch, the
 * idle/slow-request timer, lingering close, and freeing only when both handles are closed and
 * the handler has answered every request. Parsing is in http_parse.c.
 */
#include <stdlib.h>

#include "http/http_internal.h"
#include "util/util_addr.h"
#include "util/util_log.h"
#include "util/util_mem.h"

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_timer(uv_timer_t *t);

/* ---- closing ------------------------------------------------------------------------------ */

static void conn_free(struct evd_http_conn *conn)
{
	while (conn->freelist) {
		struct evd_http_req *r = conn->freelist;
		conn->freelist = r->next;
		evd_http_req_free(r);
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
		evd_http_req_free(conn->cur);
		conn->cur = NULL;
	}
	/* Responses not yet written go; requests the handler still holds stay until answered. */
	for (struct evd_http_req *r = conn->head, *next; r; r = next) {
		next = r->next;
		if (r->state != EVD_REQ_HANDLER) {
			evd_http_queue_remove(conn, r);
			evd_http_req_free(r);
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
	evd_http_queue_remove(conn, req);
	evd_http_req_free(req);
	if (conn->closed && conn->nhandler == 0)
		conn_free(conn);
}

void evd_http_conn_read_stop(struct evd_http_conn *conn)
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

void evd_http_conn_read_start(struct evd_http_conn *conn)
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
	evd_http_conn_read_start(conn);
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
	evd_http_conn_read_stop(conn);
	if (conn->nqueued == 0)
		evd_http_conn_close(conn);
}

/* ---- writing ------------------------------------------------------------------------------ */

static void write_done(struct evd_http_conn *conn, int status)
{
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
		evd_http_req_put(conn, r);
	}
	conn->nwriting = 0;
	if (close || (conn->read_done && conn->nqueued == 0)) {
		finish(conn);
		return;
	}
	evd_http_conn_flush(conn);
	if (conn->paused && !conn->read_done && conn->nqueued < conn->srv->limits.max_pipelined)
		evd_http_conn_parse_pending(conn);
	if (!conn->closing && conn->nqueued == 0 && !conn->cur)
		uv_timer_start(&conn->timer, on_timer, conn->srv->limits.idle_timeout_ms, 0);
}

static void on_write(uv_write_t *wr, int status)
{
	write_done(wr->data, status);
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
	/*
	 * Responses nearly always fit the socket buffer: write them now. Every completed uv_write
	 * makes libuv 1.44 re-arm the socket in epoll (uv__drain -> uv__io_stop queues an
	 * EPOLL_CTL_MOD even when nothing changes): one epoll_ctl per response, as costly as the
	 * write itself on the publish path. uv_try_write has no request and no re-arm; what it
	 * cannot write goes through uv_write as before. write_done may run from here; the recursion
	 * write_done -> flush is bounded by the responses queued on this connection.
	 */
	size_t total = 0;
	for (uint32_t i = 0; i < n; i++)
		total += conn->wbufs[i].len;
	int w = uv_try_write((uv_stream_t *)&conn->tcp, conn->wbufs, n);
	if (w >= 0 && (size_t)w == total) {
		write_done(conn, 0);
		return;
	}
	if (w < 0 && w != UV_EAGAIN) {
		write_done(conn, w);
		return;
	}
	uv_buf_t *b = conn->wbufs;
	uint32_t nb = n;
	for (size_t skip = w > 0 ? (size_t)w : 0; skip > 0;) {
		if (skip >= b->len) {
			skip -= b->len;
			b++;
			nb--;
		} else {
			b->base += skip;
			b->len -= skip;
			skip = 0;
		}
	}
	conn->write_req.data = conn;
	if (uv_write(&conn->write_req, (uv_stream_t *)&conn->tcp, b, nb, on_write) < 0) {
		conn->writing = false;
		evd_http_conn_close(conn);
	}
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct evd_http_conn *conn = s->data;
	if (nread == 0 || conn->closing)
		return;
	if (nread < 0) {
		/* EOF: answer what is queued, then close; a half-read request is dropped. */
		conn->eof = true;
		evd_http_conn_read_stop(conn);
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
	evd_http_conn_execute(conn, buf->base, (size_t)nread, false);
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
		evd_http_conn_reject(conn, 408, "request not completed in time");
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
		 * never be served; the 503 is best effort. Like every 503 of ours it says when to
		 * come back (Retry-After), so a client retries instead of giving up. */
		uv_tcp_t *t = evd_xmalloc(sizeof(*t));
		uv_tcp_init(srv->loop, t);
		if (uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)t) == 0) {
			static char msg[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
					    "Retry-After: 1\r\nConnection: close\r\n\r\n";
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
	evd_http_conn_read_start(conn);
}
