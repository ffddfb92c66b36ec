/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A server answering every request with a small 200, for load tools:
 *   build/tests/bench/bench_http_server 127.0.0.1:18080 &
 *   wrk -t2 -c64 -d10s http://127.0.0.1:18080/
 * Not part of `meson test`. Runs until killed.
 */
#include <stdio.h>
#include <uv.h>

#include "http/http_server.h"
#include "util/util_log.h"

static void handler(struct evd_http_request *req, void *data)
{
	evd_http_respond(req, 200, "text/plain", NULL, "ok\n", 3);
}

int main(int argc, char **argv)
{
	uv_loop_t *loop = uv_default_loop();
	struct evd_http_server *srv;
	struct evd_http_server_opts o = {
		.name = "bench",
		.listen = argc > 1 ? argv[1] : "127.0.0.1:0",
		.handler = handler,
	};
	if (evd_http_server_start(loop, &o, &srv) < 0)
		return 1;
	printf("%s\n", evd_http_server_address(srv));
	fflush(stdout);
	return uv_run(loop, UV_RUN_DEFAULT);
}
