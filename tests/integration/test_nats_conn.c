/* SPDX-License-Identifier: Apache-2.0 */
/*
 * evd_nats against a real nats-server -js (started here on a free loopback port with its own
 * store directory):
 *   1. server up first: READY, stream created with the configured settings (checked with a
 *      separate nats.c connection), backend JSON; max_bytes changed -> updated; storage change
 *      refused but still READY; SIGKILL -> DISCONNECTED; restart on the same port -> READY.
 *   2. no server at first: stays CONNECTING until the server comes up, then READY.
 *   3. close while nothing ever answered: on_closed still runs.
 * Exit 77 (skip) when nats-server is not installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nats/nats.h>
#include <uv.h>

#include "../unit/unit.h"
#include "itest_nats.h"
#include "nats/nats_bridge.h"
#include "nats/nats_conn.h"
#include "util/util_buf.h"

#define MiB (UINT64_C(1) << 20)

static char server_bin[512];
static char store_dir[] = "/tmp/evd-nats-test-XXXXXX";
static pid_t server_pid = -1;
static int server_port;
static uv_loop_t loop;

static enum evd_nats_state states[64];
static int nstates;
static bool closed_called;

static bool find_server(void)
{
	return itest_find_nats_server(server_bin, sizeof(server_bin));
}

static int free_port(void)
{
	return itest_free_port();
}

static void start_server_js(bool js)
{
	char port[16], log_path[600];
	int fd;

	snprintf(port, sizeof(port), "%d", server_port);
	snprintf(log_path, sizeof(log_path), "%s/nats-server.log", store_dir);
	server_pid = fork();
	if (server_pid < 0) {
		perror("fork");
		exit(1);
	}
	if (server_pid == 0) {
		/* The server dies with this test even when the test does not get to kill_server()
		 * (a crash, a sanitizer's halt, meson's timeout): no nats-server outlives a run. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (js)
			execl(server_bin, server_bin, "-js", "-a", "127.0.0.1", "-p", port, "-sd",
			      store_dir, (char *)NULL);
		else
			execl(server_bin, server_bin, "-a", "127.0.0.1", "-p", port, (char *)NULL);
		_exit(127);
	}
}

static void start_server(void)
{
	start_server_js(true);
}

static void kill_server(void)
{
	if (server_pid > 0) {
		kill(server_pid, SIGKILL);
		waitpid(server_pid, NULL, 0);
		server_pid = -1;
	}
}

static void on_state(struct evd_nats *n, enum evd_nats_state s, void *data)
{
	if (nstates < (int)(sizeof(states) / sizeof(states[0])))
		states[nstates++] = s;
}

static void on_closed(void *data)
{
	closed_called = true;
}

/* Runs the loop until n is in state want (or timeout); returns whether it got there. */
static bool wait_state(struct evd_nats *n, enum evd_nats_state want, int timeout_ms)
{
	uint64_t end = uv_hrtime() + unit_scaled_ms((uint64_t)timeout_ms) * 1000000u;

	while (uv_hrtime() < end) {
		uv_run(&loop, UV_RUN_NOWAIT);
		if (evd_nats_state(n) == want)
			return true;
		uv_sleep(10);
	}
	fprintf(stderr, "timed out waiting for %s, state is %s\n", evd_nats_state_name(want),
		evd_nats_state_name(evd_nats_state(n)));
	return false;
}

static void spin(int ms)
{
	uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;

	while (uv_hrtime() < end) {
		uv_run(&loop, UV_RUN_NOWAIT);
		uv_sleep(10);
	}
}

static bool saw_state(enum evd_nats_state s, int from)
{
	for (int i = from; i < nstates; i++)
		if (states[i] == s)
			return true;
	return false;
}

static void test_config(struct evd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->stream.name = (char *)"sap";
	cfg->stream.subject_prefix = (char *)"kyma";
	cfg->stream.storage = EVD_STORAGE_FILE;
	cfg->stream.retention = EVD_RETENTION_LIMITS;
	cfg->stream.discard = EVD_DISCARD_NEW;
	cfg->stream.max_bytes = 10 * MiB;
	cfg->stream.max_age = 3600 * 1000;
	cfg->stream.replicas = 1;
	cfg->stream.duplicate_window = 90 * 1000;
}

/* The stream as the server has it, through a connection of the test's own. */
static jsStreamInfo *server_stream(const char *url)
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;

	if (natsConnection_ConnectTo(&nc, url) != NATS_OK)
		return NULL;
	if (natsConnection_JetStream(&js, nc, NULL) == NATS_OK)
		js_GetStreamInfo(&si, js, "sap", NULL, &jerr);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return si;
}

/* Polls the server (running the loop between polls) until max_bytes is want. */
static bool wait_max_bytes(const char *url, int64_t want, int timeout_ms)
{
	uint64_t end = uv_hrtime() + unit_scaled_ms((uint64_t)timeout_ms) * 1000000u;

	while (uv_hrtime() < end) {
		jsStreamInfo *si;
		bool ok;

		spin(100);
		si = server_stream(url);
		ok = si && si->Config->MaxBytes == want;
		jsStreamInfo_Destroy(si);
		if (ok)
			return true;
	}
	return false;
}

static void close_all(struct evd_nats *n, struct evd_bridge *b)
{
	uint64_t end = uv_hrtime() + unit_scaled_ms(20000) * 1000000u;

	closed_called = false;
	evd_nats_close(n, on_closed, NULL);
	while (!closed_called && uv_hrtime() < end) {
		uv_run(&loop, UV_RUN_NOWAIT);
		uv_sleep(10);
	}
	CHECK(closed_called);
	evd_bridge_close(b);
	uv_run(&loop, UV_RUN_DEFAULT);
}

static void test_server_first(void)
{
	struct evd_config cfg;
	struct evd_bridge *b = NULL;
	struct evd_nats *n = NULL;
	struct evd_buf json = EVD_BUF_INIT;
	jsStreamInfo *si;
	char url[64];
	int mark;

	server_port = free_port();
	snprintf(url, sizeof(url), "nats://127.0.0.1:%d", server_port);
	start_server();
	test_config(&cfg);
	nstates = 0;
	CHECK_INT(evd_bridge_new(&loop, &b), 0);
	CHECK_INT(evd_nats_new(&loop, b, &cfg, url, on_state, NULL, &n), 0);
	CHECK_INT(evd_nats_state(n), EVD_NATS_CONNECTING);
	CHECK_INT(evd_nats_start(n), 0);
	CHECK(wait_state(n, EVD_NATS_READY, 20000));
	CHECK(saw_state(EVD_NATS_CONNECTED, 0));
	CHECK(evd_nats_connection(n) != NULL);
	CHECK(evd_nats_js(n) != NULL);

	si = server_stream(url);
	CHECK(si != NULL);
	if (si) {
		CHECK_INT(si->Config->SubjectsLen, 1);
		if (si->Config->SubjectsLen == 1)
			CHECK_STR(si->Config->Subjects[0], "kyma.>");
		CHECK_INT(si->Config->Storage, js_FileStorage);
		CHECK_INT(si->Config->Retention, js_LimitsPolicy);
		CHECK_INT(si->Config->Discard, js_DiscardNew);
		CHECK_INT(si->Config->MaxBytes, (int64_t)(10 * MiB));
		CHECK_INT(si->Config->MaxAge, INT64_C(3600) * 1000000000);
		CHECK_INT(si->Config->Duplicates, INT64_C(90) * 1000000000);
		CHECK_INT(si->Config->Replicas, 1);
		jsStreamInfo_Destroy(si);
	}

	evd_nats_backend_json(n, &json);
	CHECK(strstr(json.data, "\"state\":\"ready\"") != NULL);
	CHECK(strstr(json.data, "\"version\":\"2.") != NULL);
	CHECK(strstr(json.data, "\"subjects\":[\"kyma.>\"]") != NULL);
	CHECK(strstr(json.data, "\"max_bytes\":10485760") != NULL);
	CHECK(strstr(json.data, "\"usage_ratio\":0") != NULL);
	CHECK(strstr(json.data, "\"last_error\":null") != NULL);
	if (!strstr(json.data, "\"state\":\"ready\""))
		fprintf(stderr, "backend json: %s\n", json.data);
	evd_buf_reset(&json);

	/* A reload with another max_bytes: updated in place. */
	cfg.stream.max_bytes = 20 * MiB;
	evd_nats_set_config(n, &cfg);
	CHECK(wait_max_bytes(url, (int64_t)(20 * MiB), 10000));
	CHECK(wait_state(n, EVD_NATS_READY, 5000));

	/* Storage cannot change: logged, the file stream keeps running, still READY. */
	cfg.stream.storage = EVD_STORAGE_MEMORY;
	cfg.stream.max_bytes = 30 * MiB;
	evd_nats_set_config(n, &cfg);
	CHECK(wait_max_bytes(url, (int64_t)(30 * MiB), 10000));
	si = server_stream(url);
	CHECK(si && si->Config->Storage == js_FileStorage);
	jsStreamInfo_Destroy(si);
	CHECK(wait_state(n, EVD_NATS_READY, 5000));

	/* The info refresh picks up the server's view. */
	evd_nats_refresh_info(n);
	spin(300);
	evd_nats_backend_json(n, &json);
	CHECK(strstr(json.data, "\"max_bytes\":31457280") != NULL);
	CHECK(strstr(json.data, "\"storage\":\"file\"") != NULL);
	evd_buf_reset(&json);

	/* The server dies and comes back on the same port with the same store. */
	mark = nstates;
	kill_server();
	CHECK(wait_state(n, EVD_NATS_DISCONNECTED, 10000));
	CHECK(evd_nats_connection(n) == NULL);
	evd_nats_backend_json(n, &json);
	CHECK(strstr(json.data, "\"state\":\"disconnected\"") != NULL);
	evd_buf_reset(&json);
	start_server();
	CHECK(wait_state(n, EVD_NATS_READY, 30000));
	CHECK(saw_state(EVD_NATS_DISCONNECTED, mark));
	CHECK(saw_state(EVD_NATS_CONNECTED, mark));

	close_all(n, b);
	kill_server();
	evd_buf_free(&json);
}

static void test_server_later(void)
{
	struct evd_config cfg;
	struct evd_bridge *b = NULL;
	struct evd_nats *n = NULL;
	jsStreamInfo *si;
	char url[64];

	server_port = free_port();
	snprintf(url, sizeof(url), "nats://127.0.0.1:%d", server_port);
	test_config(&cfg);
	cfg.stream.max_bytes = 5 * MiB; /* the store dir still holds "sap" from test 1 */
	nstates = 0;
	CHECK_INT(evd_bridge_new(&loop, &b), 0);
	CHECK_INT(evd_nats_new(&loop, b, &cfg, url, on_state, NULL, &n), 0);
	CHECK_INT(evd_nats_start(n), 0);
	spin(1500);
	CHECK_INT(evd_nats_state(n), EVD_NATS_CONNECTING);
	CHECK(evd_nats_connection(n) == NULL);
	CHECK_INT(nstates, 0);

	start_server();
	CHECK(wait_state(n, EVD_NATS_READY, 30000));
	si = server_stream(url);
	CHECK(si && si->Config->MaxBytes == (int64_t)(5 * MiB));
	jsStreamInfo_Destroy(si);

	close_all(n, b);
	kill_server();
}

/* A server without JetStream: CONNECTED with a clear last_error, READY once JetStream is on. */
static void test_no_jetstream(void)
{
	struct evd_config cfg;
	struct evd_bridge *b = NULL;
	struct evd_nats *n = NULL;
	struct evd_buf json = EVD_BUF_INIT;
	char url[64];

	server_port = free_port();
	snprintf(url, sizeof(url), "nats://127.0.0.1:%d", server_port);
	test_config(&cfg);
	start_server_js(false);
	nstates = 0;
	CHECK_INT(evd_bridge_new(&loop, &b), 0);
	CHECK_INT(evd_nats_new(&loop, b, &cfg, url, on_state, NULL, &n), 0);
	CHECK_INT(evd_nats_start(n), 0);
	CHECK(wait_state(n, EVD_NATS_CONNECTED, 20000));
	spin(4000); /* at least one retry of the ensure */
	CHECK_INT(evd_nats_state(n), EVD_NATS_CONNECTED);
	evd_nats_backend_json(n, &json);
	CHECK(strstr(json.data, "JetStream is not enabled") != NULL);
	CHECK(strstr(json.data, "\"stream\":null") != NULL);
	if (!strstr(json.data, "JetStream is not enabled"))
		fprintf(stderr, "backend json: %s\n", json.data);
	evd_buf_free(&json);

	kill_server();
	start_server_js(true);
	CHECK(wait_state(n, EVD_NATS_READY, 30000));
	close_all(n, b);
	kill_server();
}

static void test_close_never_connected(void)
{
	struct evd_config cfg;
	struct evd_bridge *b = NULL;
	struct evd_nats *n = NULL;
	char url[64];

	snprintf(url, sizeof(url), "nats://127.0.0.1:%d", free_port());
	test_config(&cfg);
	CHECK_INT(evd_bridge_new(&loop, &b), 0);
	CHECK_INT(evd_nats_new(&loop, b, &cfg, url, on_state, NULL, &n), 0);
	CHECK_INT(evd_nats_start(n), 0);
	spin(300);
	close_all(n, b);
}

int main(void)
{
	if (!find_server()) {
		printf("nats-server not found: skipped\n");
		return 77;
	}
	if (!mkdtemp(store_dir)) {
		perror("mkdtemp");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&loop);

	test_server_first();
	test_server_later();
	test_no_jetstream();
	test_close_never_connected();

	CHECK_INT(uv_loop_close(&loop), 0);
	kill_server();
	if (unit_failed) {
		char log_path[600];

		snprintf(log_path, sizeof(log_path), "%s/nats-server.log", store_dir);
		fprintf(stderr, "nats-server log kept in %s\n", log_path);
	} else {
		itest_remove_tree(store_dir);
	}
	nats_Close();
	UNIT_MAIN_END();
}
