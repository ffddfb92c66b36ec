/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP server and the fetch client over loopback: the server's loop runs on its own thread,
 * the test talks raw bytes over sockets from the main thread, so every byte on the wire is what
 * the test says it is.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "http/http_fetch.h"
#include "http/http_internal.h"
#include "http/http_server.h"
#include "unit.h"
#include "util/util_addr.h"

/* ---- the server under test ---------------------------------------------------------------- */

struct delayed {
	uv_timer_t timer;
	struct evd_http_request *req;
};

static struct evd_http_request *held; /* "/hold" parks a request here (loop thread only) */
static unsigned holds_seen;           /* "/hold" requests handled: the test thread waits on it */
/* "/inspect": the body capacity an answered request still holds while queued (white box). */
static size_t _Atomic inspect_cap = (size_t)-1;

static void on_delayed_closed(uv_handle_t *h)
{
	free(h);
}

static void echo(struct evd_http_request *req)
{
	char out[2048];
	int n = snprintf(out, sizeof(out), "%s %s %s %s", req->method, req->path, req->query,
			 req->body);
	evd_http_respond(req, 200, "text/plain", "X-Test: 1\r\n", out, (size_t)n);
}

static void on_delay(uv_timer_t *t)
{
	struct delayed *d = (struct delayed *)t;
	echo(d->req);
	uv_close((uv_handle_t *)t, on_delayed_closed);
}

static void handler(struct evd_http_request *req, void *data)
{
	uv_loop_t *loop = data;
	if (strncmp(req->path, "/delay/", 7) == 0) {
		struct delayed *d = calloc(1, sizeof(*d));
		d->req = req;
		uv_timer_init(loop, &d->timer);
		uv_timer_start(&d->timer, on_delay, strtoull(req->path + 7, NULL, 10), 0);
	} else if (strcmp(req->path, "/hold") == 0) {
		held = req;
		__atomic_add_fetch(&holds_seen, 1, __ATOMIC_RELEASE);
	} else if (strcmp(req->path, "/release") == 0) {
		if (held)
			evd_http_respond_text(held, 200, NULL, "late");
		evd_http_respond_text(req, 200, NULL, held ? "released" : "nothing held");
		held = NULL;
	} else if (strcmp(req->path, "/header") == 0) {
		const struct evd_header *h = evd_http_request_header(req, req->query);
		char v[256];
		snprintf(v, sizeof(v), "[%.*s]", h ? (int)h->value_len : 4, h ? h->value : "none");
		evd_http_respond_text(req, 200, NULL, v);
	} else if (strcmp(req->path, "/inspect") == 0) {
		/* Answered, but queued behind a held request: the object stays alive meanwhile. */
		struct evd_http_req *ir = (struct evd_http_req *)req;
		evd_http_respond_text(req, 200, NULL, "inspected");
		inspect_cap = ir->body.cap;
	} else if (strcmp(req->path, "/empty") == 0) {
		evd_http_respond(req, 204, NULL, NULL, NULL, 0);
	} else {
		echo(req);
	}
}

struct test_server {
	uv_loop_t loop;
	uv_async_t stop_async;
	pthread_t thread;
	struct evd_http_server *srv;
	char addr[64];
};

static void on_server_closed(void *data)
{
	struct test_server *ts = data;
	/* The server is gone; a request it handed out is still answerable (and just freed). */
	if (held)
		evd_http_respond_text(held, 200, NULL, "after stop");
	held = NULL;
	uv_close((uv_handle_t *)&ts->stop_async, NULL);
}

static bool answer_held_on_stop; /* set before the stop is sent, read on the loop */

static void on_answer_held(uv_timer_t *t)
{
	if (held)
		evd_http_respond_text(held, 200, NULL, "answered while stopping");
	held = NULL;
	uv_close((uv_handle_t *)t, on_delayed_closed);
}

static void on_stop_async(uv_async_t *a)
{
	struct test_server *ts = a->data;
	evd_http_server_stop(ts->srv, 500, on_server_closed, ts);
	if (answer_held_on_stop) {
		uv_timer_t *t = calloc(1, sizeof(*t));
		uv_timer_init(&ts->loop, t);
		uv_timer_start(t, on_answer_held, 100, 0);
	}
}

static void *server_main(void *arg)
{
	struct test_server *ts = arg;
	uv_run(&ts->loop, UV_RUN_DEFAULT);
	return NULL;
}

static void server_start(struct test_server *ts, const struct evd_http_limits *limits)
{
	memset(ts, 0, sizeof(*ts));
	uv_loop_init(&ts->loop);
	uv_async_init(&ts->loop, &ts->stop_async, on_stop_async);
	ts->stop_async.data = ts;
	struct evd_http_server_opts o = {
		.name = "test", .listen = "127.0.0.1:0", .handler = handler, .data = &ts->loop,
	};
	if (limits)
		o.limits = *limits;
	int rc = evd_http_server_start(&ts->loop, &o, &ts->srv);
	CHECK_INT(rc, 0);
	snprintf(ts->addr, sizeof(ts->addr), "%s", evd_http_server_address(ts->srv));
	pthread_create(&ts->thread, NULL, server_main, ts);
}

static void server_stop(struct test_server *ts)
{
	uv_async_send(&ts->stop_async);
	pthread_join(ts->thread, NULL);
	CHECK_INT(uv_loop_close(&ts->loop), 0);
}

/* ---- a raw client ------------------------------------------------------------------------- */

struct client {
	int fd;
	bool head; /* the next response answers HEAD: no body */
	char buf[65536];
	size_t len;
};

struct response {
	int status;
	char headers[4096];
	char body[4096];
	size_t body_len;
};

static int client_open(struct client *c, const char *addr)
{
	struct sockaddr_storage ss;
	c->len = 0;
	c->head = false;
	if (evd_addr_parse(addr, &ss, NULL, 0) < 0)
		return -1;
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return connect(c->fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in));
}

static void client_send(struct client *c, const char *s)
{
	size_t n = strlen(s);
	CHECK_INT(send(c->fd, s, n, MSG_NOSIGNAL), (long long)n);
}

/* Reads more input; 0 on EOF, -1 on error or timeout. */
static ssize_t client_fill(struct client *c)
{
	if (c->len == sizeof(c->buf))
		return -1;
	ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	if (n > 0)
		c->len += (size_t)n;
	return n;
}

/* Reads one response (Content-Length bodies only, which is all the server sends). */
static int client_response(struct client *c, struct response *r)
{
	memset(r, 0, sizeof(*r));
	char *end;
	while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
		if (client_fill(c) <= 0)
			return -1;
	size_t hlen = (size_t)(end - c->buf) + 4;
	if (hlen >= sizeof(r->headers))
		return -1;
	memcpy(r->headers, c->buf, hlen);
	r->status = atoi(r->headers + 9);
	const char *cl = strcasestr(r->headers, "\r\nContent-Length: ");
	size_t blen = cl && !c->head ? strtoul(cl + 18, NULL, 10) : 0;
	while (c->len < hlen + blen)
		if (client_fill(c) <= 0)
			return -1;
	if (blen >= sizeof(r->body))
		return -1;
	memcpy(r->body, c->buf + hlen, blen);
	r->body_len = blen;
	memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
	c->len -= hlen + blen;
	return 0;
}

/* True when the server closes the connection (EOF or reset) with nothing more to read. */
static bool client_sees_close(struct client *c)
{
	ssize_t n;
	while ((n = client_fill(c)) > 0)
		;
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

static void client_close(struct client *c)
{
	close(c->fd);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until the handler has parked a request (holds_seen passed before): a fixed sleep after
 * sending "/hold" raced the server thread on a loaded machine. */
static bool wait_hold_after(unsigned before)
{
	int64_t end = now_ms() + (int64_t)unit_scaled_ms(5000);
	while (__atomic_load_n(&holds_seen, __ATOMIC_ACQUIRE) == before) {
		if (now_ms() >= end)
			return false;
		usleep(1000);
	}
	return true;
}

static unsigned holds_now(void)
{
	return __atomic_load_n(&holds_seen, __ATOMIC_ACQUIRE);
}

/* One request on a fresh connection; returns the status. */
static int one_shot(const char *addr, const char *request, struct response *r)
{
	struct client c;
	if (client_open(&c, addr) < 0)
		return -1;
	client_send(&c, request);
	int rc = client_response(&c, r);
	client_close(&c);
	return rc < 0 ? -1 : r->status;
}

/* ---- tests -------------------------------------------------------------------------------- */

static char big_header[3000];

struct exchange {
	const char *request;
	int status;
	const char *body;    /* substring expected in the body, or NULL */
	const char *header;  /* substring expected in the response head, or NULL */
	bool closes;         /* the server closes the connection after the response */
};

static void test_exchanges(const char *addr)
{
	memset(big_header, 'a', sizeof(big_header) - 1);
	static char oversize[4000];
	snprintf(oversize, sizeof(oversize), "GET / HTTP/1.1\r\nX-Big: %s\r\n\r\n", big_header);
	const struct exchange table[] = {
		{ "GET /echo?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", 200, "GET /echo x=1 ", "\r\nDate: ",
		  false },
		{ "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 200, "POST /echo  hello",
		  "\r\nContent-Length: 17\r\n", false },
		{ "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n"
		  "0\r\nX-Trailer: t\r\n\r\n", 200, "POST /echo  hello world", "X-Test: 1\r\n", false },
		{ "GET /header?X-Thing HTTP/1.1\r\nX-Thing:   spaced value  \r\n\r\n", 200,
		  "[spaced value]", "Content-Type: text/plain; charset=utf-8\r\n", false },
		{ "GET /header?x-thing HTTP/1.1\r\nX-Thing:\r\nOther: 1\r\n\r\n", 200, "[]", NULL,
		  false },
		{ "GET /header?absent HTTP/1.1\r\n\r\n", 200, "[none]", NULL, false },
		{ "GET /empty HTTP/1.1\r\n\r\n", 204, NULL, NULL, false },
		{ "HEAD /echo HTTP/1.1\r\n\r\n", 200, NULL, "Content-Length: 12\r\n", false },
		{ "GET /echo HTTP/1.0\r\n\r\n", 200, "GET /echo", "Connection: close\r\n", true },
		{ "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200, "GET /echo",
		  "Connection: keep-alive\r\n", false },
		{ "GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n", 200, "GET /echo",
		  "Connection: close\r\n", true },
		{ oversize, 431, "exceed 1024 bytes", "Connection: close\r\n", true },
		{ "POST /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", 413, "exceeds 1000 bytes",
		  "Connection: close\r\n", true },
		{ "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n", 413, NULL, NULL,
		  true },
		{ "BLAH / HTTP/1.1\r\n\r\n", 400, "HPE_", "Connection: close\r\n", true },
		{ "GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400, "HPE_INVALID_HEADER_TOKEN", NULL, true },
		{ "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, "HPE_", NULL,
		  true },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		const struct exchange *e = &table[i];
		struct client c;
		struct response r;
		CHECK_INT(client_open(&c, addr), 0);
		client_send(&c, e->request);
		c.head = strncmp(e->request, "HEAD", 4) == 0;
		if (e->status == 413 && strstr(e->request, "chunked")) {
			/* A chunk of 1001 bytes: the body limit trips while the body arrives. */
			char chunk[1100];
			memset(chunk, 'b', 1001);
			chunk[1001] = '\0';
			client_send(&c, chunk);
		}
		int rc = client_response(&c, &r);
		c.head = false;
		CHECK_INT(rc, 0);
		if (r.status != e->status)
			fprintf(stderr, "row %zu: %s\n%s%s\n", i, e->request, r.headers, r.body);
		CHECK_INT(r.status, e->status);
		if (e->body && !strstr(r.body, e->body)) {
			fprintf(stderr, "row %zu: body \"%s\" lacks \"%s\"\n", i, r.body, e->body);
			CHECK(false);
		}
		if (e->header && !strstr(r.headers, e->header)) {
			fprintf(stderr, "row %zu: head \"%s\" lacks \"%s\"\n", i, r.headers, e->header);
			CHECK(false);
		}
		if (strncmp(e->request, "HEAD", 4) == 0)
			CHECK_INT(r.body_len, 0);
		if (e->closes) {
			CHECK(client_sees_close(&c));
		} else {
			/* Still open: a second request on the same connection works. */
			client_send(&c, "GET /echo?again HTTP/1.1\r\n\r\n");
			CHECK_INT(client_response(&c, &r), 0);
			CHECK_STR(r.body, "GET /echo again ");
		}
		client_close(&c);
	}
}

static void test_pipelining(const char *addr)
{
	/* Answered in reverse order by the handler (300, 150, 0 ms); max_pipelined is 2, so the
	 * third request is only parsed after the first response went out. */
	struct client c;
	struct response r;
	CHECK_INT(client_open(&c, addr), 0);
	client_send(&c, "GET /delay/300 HTTP/1.1\r\n\r\n"
			"POST /delay/150 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
			"GET /delay/0?last HTTP/1.1\r\n\r\n"
			"GET /echo?four HTTP/1.1\r\n\r\n");
	const char *want[] = { "GET /delay/300  ", "POST /delay/150  abc", "GET /delay/0 last ",
			       "GET /echo four " };
	for (size_t i = 0; i < 4; i++) {
		CHECK_INT(client_response(&c, &r), 0);
		CHECK_INT(r.status, 200);
		CHECK_STR(r.body, want[i]);
	}
	client_close(&c);

	/* Many small requests in one write, answered at once: all come back, in order. */
	char many[64 * 40];
	size_t off = 0;
	for (int i = 0; i < 40; i++)
		off += (size_t)snprintf(many + off, sizeof(many) - off, "GET /echo?%d HTTP/1.1\r\n\r\n", i);
	CHECK_INT(client_open(&c, addr), 0);
	client_send(&c, many);
	for (int i = 0; i < 40; i++) {
		char w[32];
		snprintf(w, sizeof(w), "GET /echo %d ", i);
		CHECK_INT(client_response(&c, &r), 0);
		CHECK_STR(r.body, w);
	}
	client_close(&c);
}

/*
 * An answered request waiting behind a slow one (pipelining) no longer holds its body: a fresh
 * server with room for big bodies; /hold stays unanswered until /release comes on another
 * connection.
 */
static void test_body_released_when_answered(void)
{
	struct test_server ts;
	struct evd_http_limits limits = {
		.max_body_size = 64 * 1024,
		.max_pipelined = 4,
	};
	static char req[40 * 1024];
	struct client c, c2;
	struct response r;

	server_start(&ts, &limits);
	int n = snprintf(req, sizeof(req),
			 "GET /hold HTTP/1.1\r\n\r\nPOST /inspect HTTP/1.1\r\nContent-Length: %d\r\n\r\n",
			 32 * 1024);
	memset(req + n, 'x', 32 * 1024);
	req[n + 32 * 1024] = '\0';
	CHECK_INT(client_open(&c, ts.addr), 0);
	client_send(&c, req);
	int64_t end = now_ms() + 5000;
	while (inspect_cap == (size_t)-1 && now_ms() < end)
		usleep(1000);
	CHECK(inspect_cap != (size_t)-1);
	CHECK(inspect_cap <= EVD_HTTP_KEEP_BODY);
	CHECK_INT(client_open(&c2, ts.addr), 0);
	client_send(&c2, "GET /release HTTP/1.1\r\n\r\n");
	CHECK_INT(client_response(&c2, &r), 0);
	CHECK_STR(r.body, "released\n");
	CHECK_INT(client_response(&c, &r), 0);
	CHECK_STR(r.body, "late\n");
	CHECK_INT(client_response(&c, &r), 0);
	CHECK_STR(r.body, "inspected\n");
	client_close(&c);
	client_close(&c2);
	server_stop(&ts);
}

static void test_continue(const char *addr)
{
	struct client c;
	struct response r;
	CHECK_INT(client_open(&c, addr), 0);
	client_send(&c, "POST /echo HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
	CHECK_INT(client_response(&c, &r), 0);
	CHECK_INT(r.status, 100);
	CHECK_STR(r.headers, "HTTP/1.1 100 Continue\r\n\r\n");
	client_send(&c, "hello");
	CHECK_INT(client_response(&c, &r), 0);
	CHECK_INT(r.status, 200);
	CHECK_STR(r.body, "POST /echo  hello");
	client_close(&c);

	/* Over the limit: no 100, straight 413. */
	CHECK_INT(one_shot(addr, "POST /echo HTTP/1.1\r\nContent-Length: 99999\r\n"
				 "Expect: 100-continue\r\n\r\n", &r), 413);
}

static void test_idle(const char *addr)
{
	/* Nothing sent: closed after the idle timeout (300 ms). */
	struct client c;
	struct response r;
	CHECK_INT(client_open(&c, addr), 0);
	int64_t t0 = now_ms();
	CHECK(client_sees_close(&c));
	int64_t took = now_ms() - t0;
	CHECK(took >= 250 && took < (int64_t)unit_scaled_ms(3000));
	client_close(&c);

	/* A request that never completes: 408 then close. Trickling bytes does not extend it. */
	CHECK_INT(client_open(&c, addr), 0);
	t0 = now_ms();
	client_send(&c, "GET /echo HTTP/1.1\r\n");
	usleep(150 * 1000);
	client_send(&c, "X-A: 1\r\n");
	CHECK_INT(client_response(&c, &r), 0);
	CHECK_INT(r.status, 408);
	took = now_ms() - t0;
	CHECK(took >= 250 && took < (int64_t)unit_scaled_ms(3000));
	CHECK(client_sees_close(&c));
	client_close(&c);

	/* A handler slower than the idle timeout is not the client's fault. */
	CHECK_INT(one_shot(addr, "GET /delay/700 HTTP/1.1\r\n\r\n", &r), 200);
}

static void test_max_connections(const char *addr)
{
	struct client c[4], extra;
	struct response r;
	for (int i = 0; i < 4; i++) {
		CHECK_INT(client_open(&c[i], addr), 0);
		client_send(&c[i], "GET /echo HTTP/1.1\r\n\r\n");
		CHECK_INT(client_response(&c[i], &r), 0);
	}
	CHECK_INT(client_open(&extra, addr), 0);
	/* The extra connection sent nothing, so the server's close after the 503 is a FIN, not a
	 * reset: the 503 arrives, with Retry-After like every 503, and it is never served. */
	CHECK_INT(client_response(&extra, &r), 0);
	CHECK_INT(r.status, 503);
	CHECK(strstr(r.headers, "\r\nRetry-After: 1\r\n") != NULL);
	CHECK(client_sees_close(&extra));
	client_close(&extra);
	for (int i = 0; i < 4; i++)
		client_close(&c[i]);
	/* Once the server has noticed the closes, a new connection is served again. */
	int status = -1;
	for (int tries = 0; tries < 50 && status != 200; tries++) {
		status = one_shot(addr, "GET /echo HTTP/1.1\r\n\r\n", &r);
		if (status != 200)
			usleep(20 * 1000);
	}
	CHECK_INT(status, 200);
}

static void test_disconnect_pending(const char *addr)
{
	struct client c;
	struct response r;
	CHECK_INT(client_open(&c, addr), 0);
	unsigned h0 = holds_now();
	client_send(&c, "GET /hold HTTP/1.1\r\n\r\n");
	CHECK(wait_hold_after(h0));
	client_close(&c);
	usleep(50 * 1000);
	/* Answering the held request of the vanished client must be harmless (ASan watches). */
	CHECK_INT(one_shot(addr, "GET /release HTTP/1.1\r\n\r\n", &r), 200);
	CHECK_STR(r.body, "released\n");

}

/* Stop with an idle and a busy connection: the idle one closes at once, the busy one gets its
 * response (with Connection: close) and then closes. */
static void test_graceful_stop(struct test_server *ts)
{
	struct client idle, busy;
	struct response r;
	CHECK_INT(client_open(&idle, ts->addr), 0);
	client_send(&idle, "GET /echo HTTP/1.1\r\n\r\n");
	CHECK_INT(client_response(&idle, &r), 0);
	CHECK_INT(client_open(&busy, ts->addr), 0);
	unsigned h0 = holds_now();
	client_send(&busy, "GET /hold HTTP/1.1\r\n\r\n");
	CHECK(wait_hold_after(h0));
	answer_held_on_stop = true;
	uv_async_send(&ts->stop_async);
	CHECK(client_sees_close(&idle));
	CHECK_INT(client_response(&busy, &r), 0);
	CHECK_INT(r.status, 200);
	CHECK_STR(r.body, "answered while stopping\n");
	CHECK(strstr(r.headers, "Connection: close\r\n") != NULL);
	CHECK(client_sees_close(&busy));
	client_close(&idle);
	client_close(&busy);
	pthread_join(ts->thread, NULL);
	CHECK_INT(uv_loop_close(&ts->loop), 0);
	answer_held_on_stop = false;
}

/* A request still held when the stop timeout expires: the connection is closed by force, the
 * server finishes, and answering the request afterwards only frees it. */
static void test_forced_stop(void)
{
	struct test_server ts;
	struct client c;
	server_start(&ts, NULL);
	CHECK_INT(client_open(&c, ts.addr), 0);
	unsigned h0 = holds_now();
	client_send(&c, "GET /hold HTTP/1.1\r\n\r\n");
	CHECK(wait_hold_after(h0));
	client_close(&c);
	server_stop(&ts);
	CHECK(held == NULL);
}

/* Stopping a server without connections finishes at once, not when the stop timeout (500 ms
 * here) expires: "after at most timeout_ms". */
static void test_quick_stop(void)
{
	struct test_server ts;
	struct client c;
	struct response r;
	server_start(&ts, NULL);
	CHECK_INT(client_open(&c, ts.addr), 0);
	client_send(&c, "GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n");
	CHECK_INT(client_response(&c, &r), 0);
	CHECK(client_sees_close(&c));
	client_close(&c);
	uint64_t t0 = uv_hrtime();
	server_stop(&ts);
	uint64_t ms = (uv_hrtime() - t0) / 1000000;
	if (ms >= 300)
		fprintf(stderr, "idle stop took %llu ms\n", (unsigned long long)ms);
	CHECK(ms < 300);
}

/* An IPv6 listener and an IPv6 fetch URL; skipped where the host has no ::1. */
static void test_ipv6(void)
{
	int probe = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	bool ok = probe >= 0 && bind(probe, (struct sockaddr *)&sin6, sizeof(sin6)) == 0;
	if (probe >= 0)
		close(probe);
	if (!ok) {
		fprintf(stderr, "no IPv6 loopback, skipping the IPv6 test\n");
		return;
	}
	struct test_server ts;
	memset(&ts, 0, sizeof(ts));
	uv_loop_init(&ts.loop);
	uv_async_init(&ts.loop, &ts.stop_async, on_stop_async);
	ts.stop_async.data = &ts;
	struct evd_http_server_opts o = {
		.name = "test6", .listen = "[::1]:0", .handler = handler, .data = &ts.loop,
	};
	CHECK_INT(evd_http_server_start(&ts.loop, &o, &ts.srv), 0);
	const char *a = evd_http_server_address(ts.srv);
	CHECK(strncmp(a, "[::1]:", 6) == 0);
	pthread_create(&ts.thread, NULL, server_main, &ts);
	char url[128], err[256];
	snprintf(url, sizeof(url), "http://%s/echo?v6", a);
	struct evd_http_fetch_result res;
	CHECK_INT(evd_http_fetch("GET", url, NULL, NULL, 0, 2000, &res, err, sizeof(err)), 0);
	CHECK_INT(res.status, 200);
	CHECK_STR(res.body.data, "GET /echo v6 ");
	evd_http_fetch_result_free(&res);
	server_stop(&ts);
}

/* Whatever arrives, the server answers 400 or closes; it never crashes or hangs. */
/*
 * Bytes that are not HTTP get a 400 and a close, never a hang or silence. Random junk is
 * sometimes a request (or the start of one), so of it only this is asserted: whatever comes
 * back is HTTP responses, the connection closes, and the invalid ones among it got 400s.
 */
static bool starts_with_400(const struct client *c)
{
	return c->len >= 13 && memcmp(c->buf, "HTTP/1.1 400 ", 13) == 0;
}

static void test_garbage(const char *addr)
{
	static const char *const invalid[] = {
		"NOT HTTP AT ALL\r\n\r\n",
		"\x01\x02\x03\x04\r\n\r\n",
		"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	};
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		struct client c;
		CHECK_INT(client_open(&c, addr), 0);
		client_send(&c, invalid[i]);
		CHECK(client_sees_close(&c));
		if (!starts_with_400(&c))
			fprintf(stderr, "garbage row %zu: got %zu bytes: %.*s\n", i, c.len,
				(int)(c.len < 80 ? c.len : 80), c.buf);
		CHECK(starts_with_400(&c));
		client_close(&c);
	}

	unsigned seed = 12345;
	int answered_400 = 0;
	for (int i = 0; i < 200; i++) {
		char junk[512];
		size_t n = 1 + (size_t)(rand_r(&seed) % (sizeof(junk) - 1));
		for (size_t k = 0; k < n; k++) {
			/* Mostly plausible request bytes, some binary. */
			const char alphabet[] = "GET POST / HTTP/1.1\r\n:Content-Length: 0123chunked";
			junk[k] = rand_r(&seed) % 4 ? alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)]
						    : (char)rand_r(&seed);
		}
		struct client c;
		CHECK_INT(client_open(&c, addr), 0);
		send(c.fd, junk, n, MSG_NOSIGNAL);
		shutdown(c.fd, SHUT_WR);
		CHECK(client_sees_close(&c));
		CHECK(c.len == 0 || (c.len >= 9 && memcmp(c.buf, "HTTP/1.1 ", 9) == 0));
		if (memmem(c.buf, c.len, "HTTP/1.1 400 ", 13))
			answered_400++;
		client_close(&c);
	}
	/* Most of it is no request at all: far more than a few must have been refused. */
	CHECK(answered_400 > 100);
}

/* ---- fetch -------------------------------------------------------------------------------- */

struct canned {
	int lfd;
	const char *reply; /* NULL: read the request and never answer */
	pthread_t thread;
	char port[16];
};

static void *canned_main(void *arg)
{
	struct canned *cs = arg;
	int fd = accept(cs->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	char buf[4096];
	size_t len = 0;
	while (len < sizeof(buf) - 1) {
		ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n"))
			break;
	}
	if (cs->reply)
		send(fd, cs->reply, strlen(cs->reply), MSG_NOSIGNAL);
	else
		usleep(400 * 1000);
	close(fd);
	return NULL;
}

static void canned_start(struct canned *cs, const char *reply)
{
	cs->reply = reply;
	cs->lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	bind(cs->lfd, (struct sockaddr *)&sin, sizeof(sin));
	listen(cs->lfd, 4);
	socklen_t sl = sizeof(sin);
	getsockname(cs->lfd, (struct sockaddr *)&sin, &sl);
	snprintf(cs->port, sizeof(cs->port), "%u", ntohs(sin.sin_port));
	pthread_create(&cs->thread, NULL, canned_main, cs);
}

static void canned_stop(struct canned *cs)
{
	pthread_join(cs->thread, NULL);
	close(cs->lfd);
}

static void test_fetch(const char *addr)
{
	struct evd_http_fetch_result res;
	char err[256], url[128];

	snprintf(url, sizeof(url), "http://%s/echo?y=2", addr);
	CHECK_INT(evd_http_fetch("GET", url, "X-A: b\r\n", NULL, 0, 2000, &res, err, sizeof(err)),
		  0);
	CHECK_INT(res.status, 200);
	CHECK_STR(res.body.data, "GET /echo y=2 ");
	CHECK(strstr(res.headers.data, "X-Test: 1\r\n") != NULL);
	CHECK(strstr(res.headers.data, "Connection: close\r\n") != NULL);
	evd_http_fetch_result_free(&res);

	snprintf(url, sizeof(url), "http://%s/echo", addr);
	CHECK_INT(evd_http_fetch("POST", url, NULL, "data", 4, 2000, &res, err, sizeof(err)), 0);
	CHECK_INT(res.status, 200);
	CHECK_STR(res.body.data, "POST /echo  data");
	evd_http_fetch_result_free(&res);

	CHECK_INT(evd_http_fetch("HEAD", url, NULL, NULL, 0, 2000, &res, err, sizeof(err)), 0);
	CHECK_INT(res.status, 200);
	CHECK_INT(res.body.len, 0);
	evd_http_fetch_result_free(&res);

	/* Errors of the request itself are responses too. */
	snprintf(url, sizeof(url), "http://%s/empty", addr);
	CHECK_INT(evd_http_fetch("GET", url, NULL, NULL, 0, 2000, &res, err, sizeof(err)), 0);
	CHECK_INT(res.status, 204);
	evd_http_fetch_result_free(&res);

	const struct {
		const char *reply;
		int rc, status;
		const char *body;
	} canned_table[] = {
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
		  0, 200, "abcde" },
		{ "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close", 0, 200,
		  "until close" },
		{ "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\n"
		  "Content-Length: 4\r\n\r\nbusy", 0, 503, "busy" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", -ECONNRESET, 0, NULL },
		{ "garbage\r\n\r\n", -EPROTO, 0, NULL },
		{ NULL, -ETIMEDOUT, 0, NULL },
	};
	for (size_t i = 0; i < sizeof(canned_table) / sizeof(canned_table[0]); i++) {
		struct canned cs;
		canned_start(&cs, canned_table[i].reply);
		snprintf(url, sizeof(url), "http://127.0.0.1:%s/x", cs.port);
		err[0] = '\0';
		int rc = evd_http_fetch("GET", url, NULL, NULL, 0, 200, &res, err, sizeof(err));
		CHECK_INT(rc, canned_table[i].rc);
		if (rc != canned_table[i].rc)
			fprintf(stderr, "canned row %zu: %s\n", i, err);
		if (rc == 0) {
			CHECK_INT(res.status, canned_table[i].status);
			CHECK_STR(res.body.data, canned_table[i].body);
		} else {
			CHECK(err[0] != '\0');
		}
		evd_http_fetch_result_free(&res);
		canned_stop(&cs);
	}

	/* Bad URLs and refused connections. */
	CHECK_INT(evd_http_fetch("GET", "https://127.0.0.1:1/", NULL, NULL, 0, 200, &res, err,
				 sizeof(err)), -EINVAL);
	CHECK_INT(evd_http_fetch("GET", "http://example.com/", NULL, NULL, 0, 200, &res, err,
				 sizeof(err)), -EINVAL);
	struct canned closed;
	canned_start(&closed, "");
	snprintf(url, sizeof(url), "http://127.0.0.1:%s/", closed.port);
	/* Connect once so the canned thread exits, then the port is closed. */
	evd_http_fetch("GET", url, NULL, NULL, 0, 200, &res, err, sizeof(err));
	evd_http_fetch_result_free(&res);
	canned_stop(&closed);
	CHECK_INT(evd_http_fetch("GET", url, NULL, NULL, 0, 200, &res, err, sizeof(err)),
		  -ECONNREFUSED);
}

static void test_status_text(void)
{
	const int codes[] = { 100, 200, 201, 202, 204, 400, 401, 403, 404, 405, 408, 409, 411,
			      413, 414, 415, 429, 431, 500, 501, 502, 503, 504, 507 };
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		const char *t = evd_http_status_text(codes[i]);
		CHECK(strcmp(t, "Unknown") && strcmp(t, "Client Error") && strcmp(t, "Server Error"));
	}
	CHECK_STR(evd_http_status_text(507), "Insufficient Storage");
	CHECK_STR(evd_http_status_text(204), "No Content");
}

int main(void)
{
	struct test_server ts;
	struct evd_http_limits limits = {
		.max_header_size = 1024,
		.max_body_size = 1000,
		.max_connections = 4,
		.idle_timeout_ms = 300,
		.max_pipelined = 2,
	};
	test_status_text();
	test_body_released_when_answered();
	server_start(&ts, &limits);
	test_exchanges(ts.addr);
	test_pipelining(ts.addr);
	test_continue(ts.addr);
	test_idle(ts.addr);
	test_max_connections(ts.addr);
	test_fetch(ts.addr);
	test_disconnect_pending(ts.addr);
	test_garbage(ts.addr);
	test_graceful_stop(&ts);
	test_forced_stop();
	test_quick_stop();
	test_ipv6();
	UNIT_MAIN_END();
}
