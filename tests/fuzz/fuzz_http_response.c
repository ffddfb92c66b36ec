/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP response parser (src/http/http_response.c), alone and inside the asynchronous client
 * (src/http/http_client*.c). The input is what a sink answers.
 *
 * 1. The parser, three ways: the whole input at once, one byte at a time, and split where the
 *    input says. Every way must agree on the outcome, status, keep-alive verdict, bytes used,
 *    kept body and Retry-After (a header name or value split across reads is the classic bug),
 *    the kept body must be the prefix of the body seen, and a complete response is parsed again
 *    from what follows it, as the next response on a kept-alive connection would be.
 * 2. The client: a server on a loopback port in the same process answers one POST with the
 *    input and half-closes. on_done must run exactly once, within 5 s (a hang aborts), and agree
 *    with the parser: a complete response gives its status and body, anything else an error
 *    with status 0. The connection must then be closed by the client.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "http/http_client.h"
#include "http/http_response.h"
#include "util/util_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                                          \
	do {                                                                               \
		fprintf(stderr, "fuzz_http_response: " __VA_ARGS__);                       \
		fputc('\n', stderr);                                                       \
		abort();                                                                   \
	} while (0)

#define BODY_MAX 64
#define HANG_MS 5000

/* ---- the parser alone --------------------------------------------------------------------- */

struct outcome {
	int rc; /* 1 complete, <0 error */
	int status;
	bool keep_alive;
	size_t used;
	size_t body_len;
	char body[BODY_MAX];
	char retry_after[64];
};

/* Feeds data in pieces of at most step bytes (0: split at the positions in cuts), then EOF. */
static void parse(const char *data, size_t len, size_t step, const uint8_t *cuts, size_t ncuts,
		  bool eof, struct outcome *out)
{
	struct evd_http_response r;
	evd_http_response_init(&r);
	evd_http_response_reset(&r, false);
	r.body_max = BODY_MAX;
	size_t off = 0, ci = 0;
	int rc = 0;
	while (off < len && rc == 0) {
		size_t n = step ? step : (ci < ncuts ? (size_t)cuts[ci++] + 1 : len - off);
		if (n > len - off)
			n = len - off;
		size_t used = 0;
		rc = evd_http_response_feed(&r, data + off, n, &used);
		if (used > n)
			FAIL("used %zu of %zu bytes", used, n);
		if (rc == 0 && used != n)
			FAIL("incomplete, but %zu of %zu bytes used", used, n);
		off += used;
	}
	if (rc == 0 && eof)
		rc = evd_http_response_eof(&r);
	if (r.body.len > BODY_MAX || r.body.len > r.body_seen)
		FAIL("kept %zu body bytes of %llu seen (max %d)", r.body.len,
		     (unsigned long long)r.body_seen, BODY_MAX);
	if (rc == 1 && (r.status < 200 || r.status > 599))
		FAIL("complete with status %d", r.status);
	if (rc < 0 && !evd_http_response_error(&r)[0])
		FAIL("an error without a reason");
	memset(out, 0, sizeof(*out));
	out->rc = rc;
	out->status = rc == 1 ? r.status : 0;
	out->keep_alive = rc == 1 && r.keep_alive;
	out->used = off;
	out->body_len = r.body.len;
	memcpy(out->body, r.body.data ? r.body.data : "", r.body.len);
	snprintf(out->retry_after, sizeof(out->retry_after), "%s", r.retry_after);
	int64_t ra = evd_http_retry_after_ms(r.retry_after, strlen(r.retry_after), 784111777);
	if (ra < -1)
		FAIL("Retry-After %lld", (long long)ra);
	evd_http_response_free(&r);
}

static void same(const struct outcome *a, const struct outcome *b, const char *how)
{
	/* An error is an error, whatever the piece it was found in. */
	bool err_a = a->rc < 0, err_b = b->rc < 0;
	if (err_a != err_b || (!err_a && a->rc != b->rc))
		FAIL("%s: outcome %d, whole input %d", how, b->rc, a->rc);
	if (err_a)
		return;
	if (a->status != b->status || a->keep_alive != b->keep_alive || a->used != b->used ||
	    a->body_len != b->body_len || memcmp(a->body, b->body, a->body_len) != 0 ||
	    strcmp(a->retry_after, b->retry_after) != 0)
		FAIL("%s: status %d/%d, keep-alive %d/%d, used %zu/%zu, body %zu/%zu bytes, "
		     "Retry-After \"%s\"/\"%s\"", how, b->status, a->status, b->keep_alive,
		     a->keep_alive, b->used, a->used, b->body_len, a->body_len, b->retry_after,
		     a->retry_after);
}

static void check_parser(const char *data, size_t len)
{
	struct outcome whole, bytes, cut;
	parse(data, len, len ? len : 1, NULL, 0, true, &whole);
	parse(data, len, 1, NULL, 0, true, &bytes);
	same(&whole, &bytes, "one byte at a time");
	parse(data, len, 0, (const uint8_t *)data, len, true, &cut);
	same(&whole, &cut, "split where the input says");
	/* What follows a complete response is the next one on a kept-alive connection. */
	if (whole.rc == 1 && whole.used < len) {
		struct outcome next;
		parse(data + whole.used, len - whole.used, 7, NULL, 0, false, &next);
	}
}

/* ---- the client against a server that answers with the input ----------------------------- */

static uv_loop_t loop;
static uv_tcp_t listener;
static struct evd_http_client *client;
static char url[64];

static struct {
	const uint8_t *data;
	size_t size;
	int done;
	struct evd_http_client_result res;
	char body[BODY_MAX];
	bool server_closed;
} st;

struct sconn {
	uv_tcp_t tcp;
	uv_write_t write;
	uv_shutdown_t shutdown;
	char buf[4096];
	size_t have;
	bool answered;
};

static void on_sconn_closed(uv_handle_t *h)
{
	free(h->data);
	st.server_closed = true;
}

static void on_salloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct sconn *s = h->data;
	size_t room = sizeof(s->buf) - s->have;
	*b = uv_buf_init(s->buf + s->have, (unsigned)(room ? room : sizeof(s->buf)));
	if (!room)
		s->have = 0; /* a request this long is not ours: keep reading anyway */
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
}

static void on_swritten(uv_write_t *req, int status)
{
	struct sconn *s = req->data;
	if (status == 0)
		uv_shutdown(&s->shutdown, (uv_stream_t *)&s->tcp, on_shutdown);
}

static void on_sread(uv_stream_t *stream, ssize_t n, const uv_buf_t *b)
{
	struct sconn *s = stream->data;
	if (n < 0) {
		/* The client closed: a reset from here leaves no TIME_WAIT behind. */
		if (!uv_is_closing((uv_handle_t *)&s->tcp))
			uv_tcp_close_reset(&s->tcp, on_sconn_closed);
		return;
	}
	s->have += (size_t)n;
	if (!s->answered && memmem(s->buf, s->have, "\r\n\r\n", 4)) {
		s->answered = true;
		uv_buf_t out = uv_buf_init((char *)(uintptr_t)st.data, (unsigned)st.size);
		s->write.data = s;
		if (st.size)
			uv_write(&s->write, stream, &out, 1, on_swritten);
		else
			uv_shutdown(&s->shutdown, stream, on_shutdown);
	}
}

static void on_connection(uv_stream_t *server, int status)
{
	struct sconn *s = calloc(1, sizeof(*s));
	uv_tcp_init(&loop, &s->tcp);
	s->tcp.data = s;
	if (uv_accept(server, (uv_stream_t *)&s->tcp) < 0)
		FAIL("accept");
	uv_read_start((uv_stream_t *)&s->tcp, on_salloc, on_sread);
}

static void on_done(struct evd_http_client_request *req, const struct evd_http_client_result *res)
{
	st.done++;
	st.res = *res;
	if (res->body_len > BODY_MAX)
		FAIL("%zu body bytes kept, max %d", res->body_len, BODY_MAX);
	memcpy(st.body, res->body, res->body_len);
	if (res->err && !res->err_text)
		FAIL("an error without a text");
	if ((res->err != 0) == (res->status != 0))
		FAIL("status %d with err %d", res->status, res->err);
}

static void setup(void)
{
	evd_log_setup(EVD_LOG_ERROR, EVD_LOG_TEXT);
	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&loop);
	uv_tcp_init(&loop, &listener);
	struct sockaddr_in sa;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	if (uv_tcp_bind(&listener, (const struct sockaddr *)&sa, 0) < 0 ||
	    uv_listen((uv_stream_t *)&listener, 128, on_connection) < 0)
		FAIL("cannot listen");
	int len = sizeof(sa);
	uv_tcp_getsockname(&listener, (struct sockaddr *)&sa, &len);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/sink?x=1", ntohs(sa.sin_port));
	struct evd_http_client_config cfg = { .max_conns_per_origin = 1, .timeout_ms = 60000,
					      .idle_timeout_ms = 60000,
					      .max_response_body = BODY_MAX };
	if (evd_http_client_new(&loop, &cfg, &client) < 0)
		FAIL("cannot create the client");
}

static void check_client(const uint8_t *data, size_t size)
{
	memset(&st, 0, sizeof(st));
	st.data = data;
	st.size = size;
	static const struct evd_header h[] = { { "Content-Type", 12, "application/json", 16 } };
	struct evd_http_client_request req = {
		.url = url, .method = "POST", .headers = h, .nheaders = 1,
		.body = "{}", .body_len = 2, .on_done = on_done,
	};
	if (evd_http_client_send(client, &req) < 0)
		FAIL("send refused");
	uint64_t t0 = uv_now(&loop);
	while (!st.done || !st.server_closed) {
		uv_run(&loop, UV_RUN_ONCE);
		if (uv_now(&loop) - t0 > HANG_MS)
			FAIL("no end after %d ms (on_done %d, server connection %s)", HANG_MS,
			     st.done, st.server_closed ? "closed" : "open");
	}
	if (st.done != 1)
		FAIL("on_done ran %d times", st.done);

	/* The client saw the input and then the server's close: the parser must agree. */
	struct outcome want;
	parse((const char *)data, size, 4096, NULL, 0, true, &want);
	if (want.rc == 1) {
		if (st.res.err || st.res.status != want.status || st.res.body_len != want.body_len ||
		    memcmp(st.body, want.body, want.body_len) != 0)
			FAIL("client: status %d err %d (%s), %zu body bytes; parser: status %d, "
			     "%zu body bytes", st.res.status, st.res.err,
			     st.res.err ? st.res.err_text : "", st.res.body_len, want.status,
			     want.body_len);
		if ((st.res.retry_after_ms < 0) !=
		    (evd_http_retry_after_ms(want.retry_after, strlen(want.retry_after),
					     time(NULL)) < 0))
			FAIL("client: Retry-After %lld for \"%s\"",
			     (long long)st.res.retry_after_ms, want.retry_after);
	} else if (st.res.err == 0) {
		FAIL("client: status %d where the parser fails (%d)", st.res.status, want.rc);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!client)
		setup();
	check_parser((const char *)data, size);
	check_client(data, size);
	return 0;
}
