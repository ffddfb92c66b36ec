/* SPDX-License-Identifier: Apache-2.0 */
/*
 * evd_nats_sub against a real nats-server -js (free loopback port, own store directory), with a
 * push consumer whose deliver subject and deliver group are the dispatcher's
 * (_EVD.deliver.<consumer>, group "eventingd"); messages are published and the consumer is
 * inspected through a separate nats.c connection of the test's own:
 *   1. messages reach the loop in order; ACK removes them (num_ack_pending); a message without
 *      a reply subject cannot be settled.
 *   2. NAK with a delay: redelivered, not before the delay.
 *   3. WPI keeps a message past AckWait without redelivery; TERM ends it (num_ack_pending).
 *   4. close with lent messages: on_closed waits until they are returned, never runs inside a
 *      call, and no message is handed out after it.
 *   5. the server is killed and restarted: the subscription lives on (nats.c resubscribes) and
 *      messages published afterwards arrive.
 *   6. evd_nats_close with a subscription left open: it is closed, on_closed runs, then the link.
 *   7. the link's connection CLOSED by nats.c (the server comes back with other credentials):
 *      the subscription ends by itself, settle says -ENOTCONN, a new one works after READY.
 *   9. (before 8) a server that stops reading (SIGSTOP) while the loop writes to it: the loop
 *      drops the connection within seconds (nats_io.c's write stall check; nats.c's pings would
 *      take 20 s and more), never blocks, and is READY again after SIGCONT.
 *   8. over TLS (nats.tls.ca): the link keeps nats.c's threads and the messages cross through
 *      the bridge; the same receive / ACK / close (needs openssl to make the certificates).
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
#include <sys/wait.h>
#include <unistd.h>

#include <nats/nats.h>
#include <uv.h>

#include "../unit/unit.h"
#include "itest_nats.h"
#include "nats/nats_bridge.h"
#include "nats/nats_conn.h"
#include "nats/nats_internal.h"
#include "nats/nats_sub.h"

#define DELIVER "_EVD.deliver.c1"
#define GROUP "eventingd"
#define CONSUMER "c1"
#define ACK_WAIT_MS 3000
#define MAX_MSGS 256

static char server_bin[512];
static char store_dir[] = "/tmp/evd-nats-sub-test-XXXXXX";
static pid_t server_pid = -1;
static int server_port;
static char url[64];
static uv_loop_t loop;

/* What the subscription callbacks saw. */
static natsMsg *got[MAX_MSGS];
static uint64_t got_ns[MAX_MSGS];
static int ngot;
static int closed_calls;
static int msgs_after_close;
static bool in_call; /* the test is inside one of evd_nats_sub_*: on_closed must not run then */
static bool closed_inside_call;
static bool nats_closed;

static bool find_server(void)
{
	return itest_find_nats_server(server_bin, sizeof(server_bin));
}

static int free_port(void)
{
	return itest_free_port();
}

static bool tls; /* start_server with the certificates of make_certs */

/* pass: NULL for no authorization, else user "evd" with that password. */
static void start_server(const char *pass)
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
		fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (tls) {
			char cert[600], key[600];

			snprintf(cert, sizeof(cert), "%s/srv.pem", store_dir);
			snprintf(key, sizeof(key), "%s/srv.key", store_dir);
			execl(server_bin, server_bin, "-js", "-a", "127.0.0.1", "-p", port, "-sd",
			      store_dir, "--tls", "--tlscert", cert, "--tlskey", key, (char *)NULL);
		} else if (pass)
			execl(server_bin, server_bin, "-js", "-a", "127.0.0.1", "-p", port, "-sd",
			      store_dir, "--user", "evd", "--pass", pass, (char *)NULL);
		else
			execl(server_bin, server_bin, "-js", "-a", "127.0.0.1", "-p", port, "-sd",
			      store_dir, (char *)NULL);
		_exit(127);
	}
}

static void kill_server(void)
{
	if (server_pid > 0) {
		kill(server_pid, SIGKILL);
		waitpid(server_pid, NULL, 0);
		server_pid = -1;
	}
}

static void spin(int ms)
{
	uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;

	while (uv_hrtime() < end) {
		uv_run(&loop, UV_RUN_NOWAIT);
		uv_sleep(5);
	}
}

/* Runs the loop until *flag or timeout. */
static bool wait_for(const bool *flag, int timeout_ms)
{
	uint64_t end = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;

	while (!*flag && uv_hrtime() < end) {
		uv_run(&loop, UV_RUN_NOWAIT);
		if (!*flag)
			uv_sleep(5);
	}
	return *flag;
}

static bool wait_msgs(int want, int timeout_ms)
{
	uint64_t end = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;

	while (ngot < want && uv_hrtime() < end) {
		uv_run(&loop, UV_RUN_NOWAIT);
		uv_sleep(5);
	}
	if (ngot < want)
		fprintf(stderr, "timed out: %d of %d messages\n", ngot, want);
	return ngot >= want;
}

static bool wait_closed(int want, int timeout_ms)
{
	uint64_t end = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;

	while (closed_calls < want && uv_hrtime() < end) {
		uv_run(&loop, UV_RUN_NOWAIT);
		uv_sleep(5);
	}
	return closed_calls >= want;
}

static bool wait_state(struct evd_nats *n, enum evd_nats_state want, int timeout_ms)
{
	uint64_t end = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;

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

static void on_msgs(struct evd_nats_sub *s, natsMsg **msgs, size_t n, void *data)
{
	(void)s;
	(void)data;
	if (closed_calls)
		msgs_after_close += (int)n;
	for (size_t i = 0; i < n; i++) {
		if (ngot < MAX_MSGS) {
			got_ns[ngot] = uv_hrtime();
			got[ngot++] = msgs[i];
		} else {
			evd_nats_sub_msg_done(s, msgs[i]);
		}
	}
}

static void on_sub_closed(struct evd_nats_sub *s, void *data)
{
	(void)s;
	(void)data;
	closed_calls++;
	if (in_call)
		closed_inside_call = true;
}

static void on_nats_closed(void *data)
{
	(void)data;
	nats_closed = true;
}

/* Payload of got[i] as a string (the test publishes short text). */
static const char *payload(int i)
{
	static char buf[64];

	snprintf(buf, sizeof(buf), "%.*s", natsMsg_GetDataLength(got[i]), natsMsg_GetData(got[i]));
	return buf;
}

static void settle(struct evd_nats_sub *s, int i, enum evd_settle k, int64_t delay_ms)
{
	in_call = true;
	CHECK_INT(evd_nats_sub_settle(s, got[i], k, delay_ms), 0);
	in_call = false;
}

static void done(struct evd_nats_sub *s, int i)
{
	in_call = true;
	evd_nats_sub_msg_done(s, got[i]);
	in_call = false;
	got[i] = NULL;
}

/* Runs the loop until a message with payload text came (returns its index, -1 on timeout).
 * Others are acknowledged and returned: a server killed with SIGKILL may not have stored every
 * acknowledgement, so old messages may come again. */
static int wait_payload(struct evd_nats_sub *s, const char *text, int timeout_ms)
{
	uint64_t end = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
	int seen = 0;

	while (uv_hrtime() < end) {
		uv_run(&loop, UV_RUN_NOWAIT);
		for (; seen < ngot; seen++) {
			if (strcmp(payload(seen), text) == 0)
				return seen;
			evd_nats_sub_settle(s, got[seen], EVD_SETTLE_ACK, 0);
			done(s, seen);
		}
		uv_sleep(5);
	}
	fprintf(stderr, "timed out waiting for message \"%s\"\n", text);
	return -1;
}

/* Returns every message still lent. */
static void done_all(struct evd_nats_sub *s)
{
	for (int i = 0; i < ngot; i++)
		if (got[i])
			done(s, i);
}

static void reset_got(void)
{
	ngot = 0;
	memset(got, 0, sizeof(got));
}

/* ---- the test's own connection: stream messages and consumer info ---- */

static natsConnection *tnc;
static jsCtx *tjs;

static void test_connect(const char *user, const char *pass)
{
	natsOptions *o = NULL;
	char ca[600];

	natsOptions_Create(&o);
	natsOptions_SetURL(o, url);
	if (tls) {
		snprintf(ca, sizeof(ca), "%s/ca.pem", store_dir);
		natsOptions_SetSecure(o, true);
		natsOptions_LoadCATrustedCertificates(o, ca);
	}
	if (user)
		natsOptions_SetUserInfo(o, user, pass);
	natsOptions_SetMaxReconnect(o, 60);
	natsOptions_SetReconnectWait(o, 250);
	if (natsConnection_Connect(&tnc, o) != NATS_OK) {
		fprintf(stderr, "test connection failed\n");
		exit(1);
	}
	natsOptions_Destroy(o);
	natsConnection_JetStream(&tjs, tnc, NULL);
}

static void test_disconnect(void)
{
	jsCtx_Destroy(tjs);
	natsConnection_Destroy(tnc);
	tjs = NULL;
	tnc = NULL;
}

static void add_consumer(void)
{
	jsConsumerConfig cc;
	jsConsumerInfo *ci = NULL;
	jsErrCode jerr = 0;

	jsConsumerConfig_Init(&cc);
	cc.Durable = CONSUMER;
	cc.DeliverSubject = DELIVER;
	cc.DeliverGroup = GROUP;
	cc.AckPolicy = js_AckExplicit;
	cc.AckWait = (int64_t)ACK_WAIT_MS * 1000000;
	cc.FilterSubject = "kyma.>";
	CHECK_INT(js_AddConsumer(&ci, tjs, "sap", &cc, NULL, &jerr), NATS_OK);
	jsConsumerInfo_Destroy(ci);
}

static void publish(const char *text)
{
	jsPubAck *pa = NULL;
	natsStatus s = js_Publish(&pa, tjs, "kyma.t", text, (int)strlen(text), NULL, NULL);

	if (s != NATS_OK)
		fprintf(stderr, "publish %s: %s\n", text, natsStatus_GetText(s));
	CHECK_INT(s, NATS_OK);
	jsPubAck_Destroy(pa);
}

/* num_ack_pending of the consumer, or -1. */
static int64_t ack_pending(void)
{
	jsConsumerInfo *ci = NULL;
	jsErrCode jerr = 0;
	int64_t n = -1;

	if (js_GetConsumerInfo(&ci, tjs, "sap", CONSUMER, NULL, &jerr) == NATS_OK)
		n = ci->NumAckPending;
	jsConsumerInfo_Destroy(ci);
	return n;
}

static bool wait_ack_pending(int64_t want, int timeout_ms)
{
	uint64_t end = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
	int64_t n = -1;

	while (uv_hrtime() < end) {
		spin(20);
		if ((n = ack_pending()) == want)
			return true;
	}
	fprintf(stderr, "num_ack_pending %lld, want %lld\n", (long long)n, (long long)want);
	return false;
}

/* As wait_ack_pending(0), acknowledging whatever else comes meanwhile: after a server was killed
 * with SIGKILL (the store is reused), a message of an earlier part may be delivered again after
 * the one a part waits for, and nobody else would acknowledge it. The message the part acked
 * itself (payload acked) must not come again: that would be a lost +ACK. */
static bool wait_all_acked(struct evd_nats_sub *s, const char *acked, int timeout_ms)
{
	uint64_t end = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
	int64_t n = -1;

	while (uv_hrtime() < end) {
		spin(20);
		for (int i = 0; i < ngot; i++) {
			if (got[i]) {
				if (strcmp(payload(i), acked) == 0) {
					fprintf(stderr, "\"%s\" came again: its +ACK was lost\n", acked);
					return false;
				}
				evd_nats_sub_settle(s, got[i], EVD_SETTLE_ACK, 0);
				done(s, i);
			}
		}
		if ((n = ack_pending()) == 0)
			return true;
	}
	fprintf(stderr, "num_ack_pending %lld, want 0\n", (long long)n);
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
	cfg->stream.max_bytes = 10 << 20;
	cfg->stream.replicas = 1;
}

static void close_link(struct evd_nats *n, struct evd_bridge *b)
{
	nats_closed = false;
	evd_nats_close(n, on_nats_closed, NULL);
	CHECK(wait_for(&nats_closed, 20000));
	evd_bridge_close(b);
	uv_run(&loop, UV_RUN_DEFAULT);
}

static void test_settle_and_lifetime(void)
{
	struct evd_config cfg;
	struct evd_bridge *b = NULL;
	struct evd_nats *n = NULL;
	struct evd_nats_sub *s = NULL, *s2 = NULL;
	char text[32];

	server_port = free_port();
	snprintf(url, sizeof(url), "nats://127.0.0.1:%d", server_port);
	start_server(NULL);
	test_config(&cfg);
	CHECK_INT(evd_bridge_new(&loop, &b), 0);
	CHECK_INT(evd_nats_new(&loop, b, &cfg, url, NULL, NULL, &n), 0);
	/* Not connected yet: refused, and no callback ever runs. */
	CHECK_INT(evd_nats_sub_new(n, DELIVER, GROUP, on_msgs, on_sub_closed, NULL, &s), -ENOTCONN);
	CHECK_INT(evd_nats_start(n), 0);
	CHECK(wait_state(n, EVD_NATS_READY, 20000));
	CHECK(evd_nats_loop_io(n)); /* plain TCP: the socket on the loop */
	test_connect(NULL, NULL);
	add_consumer();

	CHECK_INT(evd_nats_sub_new(n, DELIVER, GROUP, on_msgs, on_sub_closed, NULL, &s), 0);
	/* 1. order and ACK */
	reset_got();
	for (int i = 0; i < 20; i++) {
		snprintf(text, sizeof(text), "m%d", i);
		publish(text);
	}
	CHECK(wait_msgs(20, 10000));
	for (int i = 0; i < ngot && i < 20; i++) {
		snprintf(text, sizeof(text), "m%d", i);
		CHECK_STR(payload(i), text);
	}
	CHECK(wait_ack_pending(20, 10000));
	for (int i = 0; i < 15; i++) {
		settle(s, i, EVD_SETTLE_ACK, 0);
		done(s, i);
	}
	CHECK(wait_ack_pending(5, 10000));
	for (int i = 15; i < 20; i++) {
		settle(s, i, EVD_SETTLE_ACK, 0);
		done(s, i);
	}
	CHECK(wait_ack_pending(0, 10000));
	{
		/* A message without a reply subject cannot be acknowledged. */
		natsMsg *m = NULL;

		natsMsg_Create(&m, "x", NULL, "y", 1);
		CHECK_INT(evd_nats_sub_settle(s, m, EVD_SETTLE_ACK, 0), -EINVAL);
		natsMsg_Destroy(m);
	}

	/* 2. NAK with a delay: back after the delay, not before. */
	reset_got();
	publish("nak");
	CHECK(wait_msgs(1, 10000));
	uint64_t t0 = uv_hrtime();
	settle(s, 0, EVD_SETTLE_NAK, 1500);
	done(s, 0);
	CHECK(wait_msgs(2, 15000));
	if (ngot >= 2) {
		CHECK_STR(payload(1), "nak");
		CHECK(got_ns[1] - t0 >= 1400 * 1000000ull);
		settle(s, 1, EVD_SETTLE_NAK, 0); /* plain NAK: at once */
		done(s, 1);
		CHECK(wait_msgs(3, 10000));
		if (ngot >= 3) {
			settle(s, 2, EVD_SETTLE_ACK, 0);
			done(s, 2);
		}
	}
	CHECK(wait_ack_pending(0, 10000));

	/* 3. WPI holds a message past AckWait; TERM ends one. */
	reset_got();
	publish("wpi");
	publish("term");
	CHECK(wait_msgs(2, 10000));
	settle(s, 1, EVD_SETTLE_TERM, 0);
	done(s, 1);
	CHECK(wait_ack_pending(1, 10000));
	for (int k = 0; k < 5; k++) { /* 5 s > ACK_WAIT_MS */
		spin(1000);
		settle(s, 0, EVD_SETTLE_WPI, 0);
	}
	spin(500);
	CHECK_INT(ngot, 2); /* neither redelivered */
	settle(s, 0, EVD_SETTLE_ACK, 0);
	done(s, 0);
	CHECK(wait_ack_pending(0, 10000));
	spin(ACK_WAIT_MS + 500);
	CHECK_INT(ngot, 2); /* the TERMed one stays gone */

	/* 5. (before 4, the subscription is still open) server killed and restarted. */
	reset_got();
	kill_server();
	CHECK(wait_state(n, EVD_NATS_DISCONNECTED, 10000));
	start_server(NULL);
	CHECK(wait_state(n, EVD_NATS_READY, 30000));
	publish("after-restart"); /* the test connection reconnects by itself */
	{
		int i = wait_payload(s, "after-restart", 15000);

		CHECK(i >= 0);
		if (i >= 0) {
			settle(s, i, EVD_SETTLE_ACK, 0);
			done(s, i);
		}
	}
	CHECK(wait_all_acked(s, "after-restart", 10000));

	/* 4. close with lent messages. */
	reset_got();
	publish("lent1");
	publish("lent2");
	CHECK(wait_msgs(2, 10000));
	closed_calls = msgs_after_close = 0;
	closed_inside_call = false;
	in_call = true;
	evd_nats_sub_close(s);
	evd_nats_sub_close(s); /* idempotent */
	in_call = false;
	publish("after-close"); /* not for this subscription any more */
	spin(500);
	CHECK_INT(closed_calls, 0);
	settle(s, 0, EVD_SETTLE_ACK, 0);
	done(s, 0);
	spin(300);
	CHECK_INT(closed_calls, 0);
	settle(s, 1, EVD_SETTLE_ACK, 0);
	done(s, 1);
	CHECK_INT(closed_calls, 0); /* not from inside the call */
	CHECK(wait_closed(1, 5000));
	CHECK(!closed_inside_call);
	spin(300);
	CHECK_INT(closed_calls, 1);
	CHECK_INT(msgs_after_close, 0);
	CHECK_INT(ngot, 2);

	/* 6. a new subscription gets the message published meanwhile; evd_nats_close with it
	 * still open closes it first. */
	reset_got();
	closed_calls = 0;
	CHECK_INT(evd_nats_sub_new(n, DELIVER, GROUP, on_msgs, on_sub_closed, NULL, &s2), 0);
	{
		int i = wait_payload(s2, "after-close", 10000);

		CHECK(i >= 0);
		if (i >= 0) {
			settle(s2, i, EVD_SETTLE_ACK, 0);
			done(s2, i);
		}
	}
	CHECK(wait_ack_pending(0, 10000));
	test_disconnect();
	close_link(n, b);
	CHECK_INT(closed_calls, 1);
	kill_server();
}

/* 7. nats.c gives the connection up (authorization violation on reconnect): CLOSED. */
static void test_connection_closed(void)
{
	struct evd_config cfg;
	struct evd_bridge *b = NULL;
	struct evd_nats *n = NULL;
	struct evd_nats_sub *s = NULL;

	start_server("one");
	test_config(&cfg);
	cfg.nats.user = (char *)"evd";
	cfg.nats.password = (char *)"one";
	CHECK_INT(evd_bridge_new(&loop, &b), 0);
	CHECK_INT(evd_nats_new(&loop, b, &cfg, url, NULL, NULL, &n), 0);
	CHECK_INT(evd_nats_start(n), 0);
	CHECK(wait_state(n, EVD_NATS_READY, 20000));
	test_connect("evd", "one");
	reset_got();
	closed_calls = 0;
	CHECK_INT(evd_nats_sub_new(n, DELIVER, GROUP, on_msgs, on_sub_closed, NULL, &s), 0);
	publish("held");
	CHECK(wait_msgs(1, 10000));
	test_disconnect();

	kill_server();
	start_server("two");
	CHECK(wait_state(n, EVD_NATS_CLOSED, 30000));
	/* The connection is gone: the held message cannot be settled; the sub ends once it is back. */
	CHECK_INT(evd_nats_sub_settle(s, got[0], EVD_SETTLE_ACK, 0), -ENOTCONN);
	spin(300);
	CHECK_INT(closed_calls, 0);
	done_all(s); /* AckWait may have brought "held" again meanwhile */
	CHECK(wait_closed(1, 10000));
	in_call = true;
	CHECK_INT(evd_nats_sub_new(n, DELIVER, GROUP, on_msgs, on_sub_closed, NULL, &s), -ENOTCONN);
	in_call = false;

	/* The server takes the old password again: READY, and a new subscription gets the message
	 * that was never acknowledged. */
	kill_server();
	start_server("one");
	CHECK(wait_state(n, EVD_NATS_READY, 60000));
	reset_got();
	closed_calls = 0;
	CHECK_INT(evd_nats_sub_new(n, DELIVER, GROUP, on_msgs, on_sub_closed, NULL, &s), 0);
	{
		int i = wait_payload(s, "held", 15000);

		CHECK(i >= 0);
		if (i >= 0) {
			settle(s, i, EVD_SETTLE_ACK, 0);
			done(s, i);
		}
	}
	evd_nats_sub_close(s);
	done_all(s);
	CHECK(wait_closed(1, 10000));
	close_link(n, b);
	kill_server();
}

/* A CA and a server certificate for 127.0.0.1 in store_dir; false when openssl is missing. */
static bool make_certs(void)
{
	char cmd[4096];

	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && printf 'subjectAltName=IP:127.0.0.1\\n' > ext.cnf && "
		 "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 "
		 "-subj /CN=evd-test-ca && "
		 "openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 && "
		 "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem "
		 "-days 1 -extfile ext.cnf",
		 store_dir);
	if (system("command -v openssl >/dev/null 2>&1") != 0)
		return false;
	strncat(cmd, " >/dev/null 2>&1", sizeof(cmd) - strlen(cmd) - 1);
	return system(cmd) == 0;
}

/* 9. The write stall check of the loop model. */
static void test_write_stall(void)
{
	struct evd_config cfg;
	struct evd_bridge *b = NULL;
	struct evd_nats *n = NULL;
	static char big[64 * 1024];
	uint64_t t0, t1;
	int sent = 0;

	server_port = free_port();
	snprintf(url, sizeof(url), "nats://127.0.0.1:%d", server_port);
	start_server(NULL);
	test_config(&cfg);
	CHECK_INT(evd_bridge_new(&loop, &b), 0);
	CHECK_INT(evd_nats_new(&loop, b, &cfg, url, NULL, NULL, &n), 0);
	CHECK_INT(evd_nats_start(n), 0);
	CHECK(wait_state(n, EVD_NATS_READY, 20000));
	memset(big, 'x', sizeof(big));
	kill(server_pid, SIGSTOP);
	/* 16 MiB at most, more than the socket buffers on both sides hold, written by the loop. */
	t0 = uv_hrtime();
	while (sent < 256 && evd_nats_state(n) == EVD_NATS_READY) {
		natsConnection *nc = evd_nats_connection(n);

		if (!nc || natsConnection_Publish(nc, "stall.test", big, (int)sizeof(big)) != NATS_OK)
			break;
		sent++;
		uv_run(&loop, UV_RUN_NOWAIT);
	}
	t1 = uv_hrtime();
	CHECK(t1 - t0 < 2000000000ull); /* the loop never waited for the server */
	CHECK(wait_state(n, EVD_NATS_DISCONNECTED, 8000));
	kill(server_pid, SIGCONT);
	CHECK(wait_state(n, EVD_NATS_READY, 30000));
	close_link(n, b);
	kill_server();
}

/* 8. TLS: nats.c's threads, messages through the bridge, the same API. */
static void test_tls(void)
{
	struct evd_config cfg;
	struct evd_bridge *b = NULL;
	struct evd_nats *n = NULL;
	struct evd_nats_sub *s = NULL;
	char ca[600];

	if (!make_certs()) {
		printf("openssl missing or failed: TLS part skipped\n");
		return;
	}
	tls = true;
	server_port = free_port();
	snprintf(url, sizeof(url), "nats://127.0.0.1:%d", server_port);
	snprintf(ca, sizeof(ca), "%s/ca.pem", store_dir);
	start_server(NULL);
	test_config(&cfg);
	cfg.nats.tls.ca = ca;
	CHECK_INT(evd_bridge_new(&loop, &b), 0);
	CHECK_INT(evd_nats_new(&loop, b, &cfg, url, NULL, NULL, &n), 0);
	CHECK_INT(evd_nats_start(n), 0);
	CHECK(wait_state(n, EVD_NATS_READY, 20000));
	CHECK(!evd_nats_loop_io(n)); /* TLS: nats.c's threads, the bridge way */
	test_connect(NULL, NULL);
	reset_got();
	closed_calls = 0;
	CHECK_INT(evd_nats_sub_new(n, DELIVER, GROUP, on_msgs, on_sub_closed, NULL, &s), 0);
	publish("over-tls");
	{
		int i = wait_payload(s, "over-tls", 15000);

		CHECK(i >= 0);
		if (i >= 0) {
			settle(s, i, EVD_SETTLE_ACK, 0);
			done(s, i);
		}
	}
	CHECK(wait_all_acked(s, "over-tls", 10000));
	in_call = true;
	evd_nats_sub_close(s);
	in_call = false;
	done_all(s);
	CHECK(wait_closed(1, 10000));
	CHECK(!closed_inside_call);
	test_disconnect();
	close_link(n, b);
	kill_server();
	tls = false;
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

	test_settle_and_lifetime();
	test_connection_closed();
	test_write_stall();
	test_tls();

	CHECK_INT(uv_loop_close(&loop), 0);
	kill_server();
	if (unit_failed)
		fprintf(stderr, "nats-server log kept in %s/nats-server.log\n", store_dir);
	else
		itest_remove_tree(store_dir);
	nats_Close();
	UNIT_MAIN_END();
}
