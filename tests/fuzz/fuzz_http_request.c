/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP server's request parsing and connection handling, driven for real: one server on a
 * loopback port (kept for the whole run), and per input one client connection on the same loop
 * that sends the input, half-closes, and reads until the server closes. No change to src/http
 * was needed for this (its parser is tied to a connection), and the target covers what a
 * parse-only entry point could not: pipelining, the response queue, limits, lingering close.
 *
 * Checked per input: the server answers and closes (an input that leaves the connection open
 * for 5 s is a hang: abort), what comes back is a well-formed sequence of HTTP responses (llhttp
 * in response mode), one final response per request handed to the handler (plus at most one
 * error response), in order, and every request the handler saw is sane (NUL-terminated
 * strings, header spans readable).
 *
 * The client closes with a reset (SO_LINGER 0) once the server has closed, so a long run does
 * not leave tens of thousands of loopback ports in TIME_WAIT.
 */
#include <llhttp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "http/http_server.h"
#include "util/util_buf.h"
#include "util/util_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                                          \
	do {                                                                               \
		fprintf(stderr, "fuzz_http_request: " __VA_ARGS__);                        \
		fputc('\n', stderr);                                                       \
		abort();                                                                   \
	} while (0)

#define MAX_HANDLED 256
#define HANG_MS 5000

static uv_loop_t loop;
static struct evd_http_server *srv;
static struct sockaddr_storage srv_addr;

/* Per input. */
static struct {
	bool head[MAX_HANDLED]; /* requests the handler saw, in order: HEAD or not */
	size_t handled;
	struct evd_http_request *held[MAX_HANDLED]; /* answered from a timer, later */
	size_t nheld;
	bool client_done;
	struct evd_buf resp;
} st;

static uv_timer_t later_timer;

static void answer(struct evd_http_request *req)
{
	char body[128];
	int n = snprintf(body, sizeof(body), "%s %zu headers %zu bytes\n", req->method,
			 req->nheaders, req->body_len);
	evd_http_respond(req, req->path_len > 1 && req->path[1] == 'e' ? 204 : 200, "text/plain",
			 NULL, body, (size_t)n);
}

static void on_later(uv_timer_t *t)
{
	/* Answered newest first: responses must still leave in request order. */
	while (st.nheld)
		answer(st.held[--st.nheld]);
}

static void handler(struct evd_http_request *req, void *data)
{
	if (st.handled == MAX_HANDLED)
		FAIL("more than %d requests from one input", MAX_HANDLED);
	/* Touch everything the request exposes: ASan sees a bad span here. */
	size_t sum = strlen(req->method) + strlen(req->query);
	if (req->body[req->body_len] != '\0')
		FAIL("body not NUL-terminated");
	if (req->path[req->path_len] != '\0')
		FAIL("path not NUL-terminated at its length");
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct evd_header *h = &req->headers[i];
		for (size_t j = 0; j < h->name_len; j++)
			sum += (unsigned char)h->name[j];
		for (size_t j = 0; j < h->value_len; j++)
			sum += (unsigned char)h->value[j];
		if (h->value_len && (h->value[0] == ' ' || h->value[h->value_len - 1] == ' '))
			FAIL("header value not trimmed");
	}
	(void)sum;
	(void)evd_http_request_header(req, "Content-Type");
	st.head[st.handled++] = strcmp(req->method, "HEAD") == 0;
	if (req->path_len > 1 && req->path[1] == 'l') { /* "/later...": answer from a timer */
		st.held[st.nheld++] = req;
		uv_timer_start(&later_timer, on_later, 0, 0);
		return;
	}
	answer(req);
}

/* ---- the client ---------------------------------------------------------------------------- */

struct client {
	uv_tcp_t tcp;
	uv_connect_t connect;
	uv_write_t write;
	uv_shutdown_t shutdown;
	char buf[65536];
};

static void on_client_closed(uv_handle_t *h)
{
	st.client_done = true;
}

static void client_close(struct client *c)
{
	if (!uv_is_closing((uv_handle_t *)&c->tcp))
		uv_tcp_close_reset(&c->tcp, on_client_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct client *c = h->data;
	*b = uv_buf_init(c->buf, sizeof(c->buf));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct client *c = s->data;
	if (n > 0)
		evd_buf_append(&st.resp, b->base, (size_t)n);
	else if (n < 0) /* EOF, or a reset from the server: either way it is done */
		client_close(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
}

static void on_write(uv_write_t *req, int status)
{
	struct client *c = req->data;
	if (status == 0)
		uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown);
}

static const uint8_t *in_data;
static size_t in_size;

static void on_connect(uv_connect_t *req, int status)
{
	struct client *c = req->data;
	if (status < 0)
		FAIL("cannot connect to the server: %s", uv_strerror(status));
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	uv_buf_t b = uv_buf_init((char *)(uintptr_t)in_data, (unsigned)in_size);
	c->write.data = c;
	uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, on_write);
}

/* ---- checking the responses ---------------------------------------------------------------- */

struct resp_check {
	size_t finals;
	size_t interim;
};

static int on_resp_headers(llhttp_t *p)
{
	struct resp_check *rc = p->data;
	if (llhttp_get_status_code(p) < 200)
		return 0;
	/* A response to HEAD has Content-Length but no body: 1 tells llhttp so. */
	return rc->finals < st.handled && st.head[rc->finals] ? 1 : 0;
}

static int on_resp_complete(llhttp_t *p)
{
	struct resp_check *rc = p->data;
	if (llhttp_get_status_code(p) < 200)
		rc->interim++;
	else
		rc->finals++;
	return 0;
}

static void check_responses(void)
{
	llhttp_settings_t s;
	llhttp_settings_init(&s);
	s.on_headers_complete = on_resp_headers;
	s.on_message_complete = on_resp_complete;
	struct resp_check rc = { 0 };
	llhttp_t p;
	llhttp_init(&p, HTTP_RESPONSE, &s);
	p.data = &rc;
	llhttp_errno_t e = llhttp_execute(&p, st.resp.data ? st.resp.data : "", st.resp.len);
	if (e == HPE_OK)
		e = llhttp_finish(&p);
	if (e != HPE_OK)
		FAIL("malformed response stream (%s: %s) after %zu responses:\n%s",
		     llhttp_errno_name(e), llhttp_get_error_reason(&p), rc.finals,
		     st.resp.data ? st.resp.data : "");
	/* Every request the handler saw was answered; at most one more (the error that ended the
	 * connection). */
	if (rc.finals < st.handled || rc.finals > st.handled + 1)
		FAIL("%zu responses for %zu handled requests:\n%s", rc.finals, st.handled,
		     st.resp.data ? st.resp.data : "");
}

/* ---- the target ---------------------------------------------------------------------------- */

static void setup(void)
{
	evd_log_setup(EVD_LOG_ERROR, EVD_LOG_TEXT);
	signal(SIGPIPE, SIG_IGN); /* libuv writes to sockets with write(2) */
	uv_loop_init(&loop);
	uv_timer_init(&loop, &later_timer);
	struct evd_http_server_opts o = {
		.name = "fuzz",
		.listen = "127.0.0.1:0",
		/* Small limits, so short inputs reach 413, 431 and the pipelining pause. */
		.limits = { .max_header_size = 1024, .max_body_size = 512, .max_pipelined = 4,
			    .idle_timeout_ms = 10000 },
		.handler = handler,
	};
	if (evd_http_server_start(&loop, &o, &srv) < 0)
		FAIL("cannot start the server");
	const char *a = evd_http_server_address(srv);
	uv_ip4_addr("127.0.0.1", atoi(strrchr(a, ':') + 1), (struct sockaddr_in *)&srv_addr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!srv)
		setup();
	if (size == 0)
		return 0; /* nothing to send: the client would only connect and close */
	st.handled = st.nheld = 0;
	st.client_done = false;
	evd_buf_reset(&st.resp);
	in_data = data;
	in_size = size;

	struct client *c = calloc(1, sizeof(*c));
	uv_tcp_init(&loop, &c->tcp);
	c->tcp.data = c;
	c->connect.data = c;
	uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&srv_addr, on_connect);

	uint64_t t0 = uv_now(&loop);
	while (!st.client_done || st.nheld || evd_http_server_connections(srv) > 0) {
		uv_run(&loop, UV_RUN_ONCE);
		if (uv_now(&loop) - t0 > HANG_MS)
			FAIL("the connection is still open after %d ms (client %s, %zu held, %u "
			     "server connections)", HANG_MS, st.client_done ? "done" : "open",
			     st.nheld, evd_http_server_connections(srv));
	}
	free(c);
	check_responses();
	return 0;
}
