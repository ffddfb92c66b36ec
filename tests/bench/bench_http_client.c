/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The asynchronous HTTP client under load: POSTs of a fixed body to one URL with a fixed number
 * of requests in flight, through a pool of at most C connections, and prints the rate and the
 * latency percentiles (from connection assignment to response, as the client measures it).
 * Compare with wrk against the same server for the HTTP ceiling:
 *   build/tests/bench/bench_http_client http://127.0.0.1:18080/ 200000 100 64 512
 *   wrk -t1 -c64 -d10s -s tests/bench/post512.lua http://127.0.0.1:18080/
 * Arguments: URL, requests, in flight, max connections, body bytes. Not part of `meson test`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "http/http_client.h"

static struct evd_http_client *client;
static size_t total, sent, done, failed, nonok;
static uint64_t *lat;
static char *body;
static size_t body_len;
static const char *url;

static const struct evd_header headers[] = {
	{ "Content-Type", 12, "application/json", 16 },
	{ "ce-specversion", 14, "1.0", 3 },
	{ "ce-type", 7, "order.created.v1", 16 },
	{ "ce-source", 9, "bench", 5 },
	{ "ce-id", 5, "1", 1 },
};

static void on_closed(void *data)
{
}

static void on_done(struct evd_http_client_request *req, const struct evd_http_client_result *res);

static void send_one(struct evd_http_client_request *req)
{
	*req = (struct evd_http_client_request){
		.url = url, .method = "POST", .headers = headers,
		.nheaders = sizeof(headers) / sizeof(headers[0]), .body = body,
		.body_len = body_len, .on_done = on_done,
	};
	sent++;
	if (evd_http_client_send(client, req) < 0) {
		fprintf(stderr, "bad URL\n");
		exit(2);
	}
}

static void on_done(struct evd_http_client_request *req, const struct evd_http_client_result *res)
{
	if (res->err) {
		if (failed++ < 5)
			fprintf(stderr, "error: %s\n", res->err_text);
	} else if (res->status < 200 || res->status > 299) {
		nonok++;
	}
	lat[done++] = res->duration_ns;
	if (sent < total)
		send_one(req);
	else if (done == total)
		evd_http_client_close(client, on_closed, NULL);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: %s URL REQUESTS IN_FLIGHT MAX_CONNS BODY_BYTES\n", argv[0]);
		return 2;
	}
	url = argv[1];
	total = strtoul(argv[2], NULL, 10);
	size_t inflight = strtoul(argv[3], NULL, 10);
	struct evd_http_client_config cfg = {
		.max_conns_per_origin = (unsigned)strtoul(argv[4], NULL, 10),
		.timeout_ms = 15000,
		.idle_timeout_ms = 30000,
		.max_response_body = 1024,
	};
	body_len = strtoul(argv[5], NULL, 10);
	body = malloc(body_len + 1);
	memset(body, 'x', body_len);
	lat = calloc(total, sizeof(*lat));
	struct evd_http_client_request *reqs = calloc(inflight, sizeof(*reqs));
	uv_loop_t *loop = uv_default_loop();
	evd_http_client_new(loop, &cfg, &client);
	uint64_t t0 = uv_hrtime();
	for (size_t i = 0; i < inflight && sent < total; i++)
		send_one(&reqs[i]);
	uv_run(loop, UV_RUN_DEFAULT);
	double secs = (double)(uv_hrtime() - t0) / 1e9;
	qsort(lat, done, sizeof(*lat), cmp_u64);
	printf("%zu requests in %.2f s: %.0f req/s, %zu errors, %zu non-2xx, latency p50 %.2f ms "
	       "p99 %.2f ms\n", done, secs, (double)done / secs, failed, nonok,
	       (double)lat[done / 2] / 1e6, (double)lat[done * 99 / 100] / 1e6);
	free(reqs);
	free(lat);
	free(body);
	return failed ? 1 : 0;
}
