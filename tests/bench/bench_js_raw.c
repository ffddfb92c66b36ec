/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The raw JetStream ceiling for the publish benchmark: one nats.c connection publishing N
 * messages of the same payload with js_PublishMsgAsync, as fast as acks allow, with a bounded
 * number in flight (the same shape as eventingd's publish path, minus HTTP and validation).
 *
 * usage: bench_js_raw URL SUBJECT COUNT PAYLOAD_BYTES MAX_PENDING [headers]
 * With "headers", every message carries CloudEvents NATS-binding headers and a unique
 * Nats-Msg-Id, as eventingd writes them. Prints one line: "raw_js_rate=<msgs/s> ...".
 *
 * Two more modes serve the dispatcher's benchmark (tests/bench/dispatch_bench.py):
 *
 * usage: bench_js_raw ce URL SUBJECT COUNT PAYLOAD_BYTES MAX_PENDING [SOURCE TYPE]
 *   puts COUNT events straight into JetStream as eventingd stores them (CloudEvents NATS binding,
 *   binary mode: ce-specversion, ce-id, ce-source, ce-type, ce-originaltype, ce-datacontenttype,
 *   a unique Nats-Msg-Id; a JSON payload of PAYLOAD_BYTES). Prints "ce_published=<n> ...".
 *
 * usage: bench_js_raw consume URL STREAM SUBJECT COUNT PAYLOAD_BYTES MAX_ACK_PENDING
 *   the raw push-consume-with-ack ceiling: creates a durable push consumer on SUBJECT (explicit
 *   ack, MaxAckPending, deliver group, as eventingd's), puts COUNT events as above, then takes
 *   them with a core queue subscription on the deliver subject and acks each by publishing +ACK
 *   to its reply subject (what eventingd does), and times that part only. Prints
 *   "raw_consume_rate=<msgs/s> ...". The consumer is deleted at the end.
 */
#include <inttypes.h>
#include <nats/nats.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_long acked, failed;

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	(void)js;
	(void)closure;
	if (pa)
		atomic_fetch_add(&acked, 1);
	else if (pae)
		atomic_fetch_add(&failed, 1);
	natsMsg_Destroy(msg);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- modes for the dispatcher's benchmark ---------------------------------------------------- */

static int connect_js(const char *url, int64_t max_pending, natsConnection **nc, jsCtx **js)
{
	jsOptions jo;
	natsStatus s = natsConnection_ConnectTo(nc, url);
	if (s != NATS_OK) {
		fprintf(stderr, "connect %s: %s\n", url, natsStatus_GetText(s));
		return -1;
	}
	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = max_pending;
	jo.PublishAsync.AckHandler = on_ack;
	jo.PublishAsync.StallWait = 5000;
	s = natsConnection_JetStream(js, *nc, &jo);
	if (s != NATS_OK) {
		fprintf(stderr, "jetstream: %s\n", natsStatus_GetText(s));
		return -1;
	}
	return 0;
}

/* COUNT binary-mode CloudEvents as eventingd stores them; ids unique per run (pid + time), so
 * JetStream's duplicate window never folds two runs. Returns the number acknowledged. */
/* js_PublishMsgAsync, counting (and freeing) a message nats.c refused. */
static void publish_async(jsCtx *js, natsMsg *msg, long i)
{
	natsStatus s = js_PublishMsgAsync(js, &msg, NULL);
	if (s != NATS_OK) {
		fprintf(stderr, "publish %ld: %s\n", i, natsStatus_GetText(s));
		natsMsg_Destroy(msg);
		atomic_fetch_add(&failed, 1);
	}
}

/* Waits up to max_wait_ms for every pending ack. */
static void publish_complete(jsCtx *js, int64_t max_wait_ms)
{
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = max_wait_ms;
	natsStatus s = js_PublishAsyncComplete(js, &po);
	if (s != NATS_OK)
		fprintf(stderr, "complete: %s\n", natsStatus_GetText(s));
}

static long put_events(jsCtx *js, const char *subject, long count, size_t size, const char *source,
		       const char *type)
{
	char *payload = malloc(size + 1);
	/* {"data":"xxx…"} of exactly size bytes (at least the frame). */
	size_t frame = strlen("{\"data\":\"\"}");
	size_t fill = size > frame ? size - frame : 0;
	memcpy(payload, "{\"data\":\"", 9);
	memset(payload + 9, 'x', fill);
	memcpy(payload + 9 + fill, "\"}", 2);
	size_t len = 9 + fill + 2;
	char run[32];
	snprintf(run, sizeof(run), "%ld-%ld", (long)getpid(), (long)time(NULL));
	atomic_store(&acked, 0);
	atomic_store(&failed, 0);
	for (long i = 0; i < count; i++) {
		natsMsg *msg = NULL;
		char id[64];
		snprintf(id, sizeof(id), "%s-%ld", run, i);
		natsMsg_Create(&msg, subject, NULL, payload, (int)len);
		natsMsgHeader_Set(msg, "ce-specversion", "1.0");
		natsMsgHeader_Set(msg, "ce-id", id);
		natsMsgHeader_Set(msg, "ce-source", source);
		natsMsgHeader_Set(msg, "ce-type", type);
		natsMsgHeader_Set(msg, "ce-originaltype", type);
		natsMsgHeader_Set(msg, "ce-datacontenttype", "application/json");
		natsMsgHeader_Set(msg, "Nats-Msg-Id", id);
		publish_async(js, msg, i);
	}
	publish_complete(js, 120000);
	free(payload);
	return atomic_load(&acked);
}

static int ce_main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: bench_js_raw ce URL SUBJECT COUNT PAYLOAD_BYTES MAX_PENDING [SOURCE TYPE]\n");
		return 64;
	}
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	if (connect_js(argv[1], atoll(argv[5]), &nc, &js) < 0)
		return 1;
	double t0 = now_s();
	long n = put_events(js, argv[2], atol(argv[3]), (size_t)atol(argv[4]),
			    argc > 7 ? argv[6] : "bench", argc > 7 ? argv[7] : "order.created.v1");
	double t1 = now_s();
	printf("ce_published=%ld failed=%ld seconds=%.3f rate=%.0f\n", n, atomic_load(&failed), t1 - t0,
	       (double)n / (t1 - t0));
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	nats_Close();
	return atomic_load(&failed) ? 1 : 0;
}

static atomic_long consumed;
static natsConnection *consume_nc;

/* nats.c's delivery thread: ack by publishing to the reply subject, as eventingd does. */
static void on_consume(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	(void)nc;
	(void)sub;
	(void)closure;
	const char *reply = natsMsg_GetReply(msg);
	if (reply)
		natsConnection_Publish(consume_nc, reply, "+ACK", 4);
	atomic_fetch_add(&consumed, 1);
	natsMsg_Destroy(msg);
}

static int consume_main(int argc, char **argv)
{
	if (argc < 7) {
		fprintf(stderr, "usage: bench_js_raw consume URL STREAM SUBJECT COUNT PAYLOAD_BYTES MAX_ACK_PENDING\n");
		return 64;
	}
	const char *stream = argv[2], *subject = argv[3];
	long count = atol(argv[4]);
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	if (connect_js(argv[1], 8192, &nc, &js) < 0)
		return 1;
	consume_nc = nc;

	char durable[64], deliver[96];
	snprintf(durable, sizeof(durable), "evdbenchraw%ld", (long)getpid());
	snprintf(deliver, sizeof(deliver), "_EVDBENCH.deliver.%s", durable);
	jsConsumerConfig cc;
	jsConsumerConfig_Init(&cc);
	cc.Durable = durable;
	cc.DeliverSubject = deliver;
	cc.DeliverGroup = "eventingd";
	cc.FilterSubject = subject;
	cc.AckPolicy = js_AckExplicit;
	cc.AckWait = (int64_t)30 * 1000000000;
	cc.MaxAckPending = atoll(argv[6]);
	cc.DeliverPolicy = js_DeliverNew;
	jsConsumerInfo *ci = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_AddConsumer(&ci, js, stream, &cc, NULL, &jerr);
	if (s != NATS_OK) {
		fprintf(stderr, "add consumer: %s (%d)\n", natsStatus_GetText(s), (int)jerr);
		return 1;
	}
	jsConsumerInfo_Destroy(ci);

	long put = put_events(js, subject, count, (size_t)atol(argv[5]), "benchraw", "order.created.v1");
	if (put != count)
		fprintf(stderr, "only %ld of %ld events stored\n", put, count);

	natsSubscription *sub = NULL;
	double t0 = now_s();
	s = natsConnection_QueueSubscribe(&sub, nc, deliver, "eventingd", on_consume, NULL);
	if (s == NATS_OK)
		s = natsSubscription_SetPendingLimits(sub, -1, -1);
	if (s != NATS_OK) {
		fprintf(stderr, "subscribe: %s\n", natsStatus_GetText(s));
		return 1;
	}
	double last_change = t0;
	long last = 0;
	while (atomic_load(&consumed) < put && now_s() - last_change < 30) {
		nats_Sleep(1);
		long c = atomic_load(&consumed);
		if (c != last) {
			last = c;
			last_change = now_s();
		}
	}
	natsConnection_Flush(nc);
	long got = atomic_load(&consumed);
	double t1 = got == put ? now_s() : last_change;
	printf("raw_consume_rate=%.0f consumed=%ld stored=%ld seconds=%.3f max_ack_pending=%s\n",
	       (double)got / (t1 - t0), got, put, t1 - t0, argv[6]);
	natsSubscription_Unsubscribe(sub);
	natsSubscription_Destroy(sub);
	js_DeleteConsumer(js, stream, durable, NULL, NULL);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	nats_Close();
	return got == put ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "ce") == 0)
		return ce_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "consume") == 0)
		return consume_main(argc - 1, argv + 1);
	if (argc < 6) {
		fprintf(stderr, "usage: %s URL SUBJECT COUNT PAYLOAD_BYTES MAX_PENDING [headers]\n", argv[0]);
		return 64;
	}
	const char *url = argv[1], *subject = argv[2];
	long count = atol(argv[3]);
	size_t size = (size_t)atol(argv[4]);
	int64_t max_pending = atoll(argv[5]);
	int with_headers = argc > 6 && strcmp(argv[6], "headers") == 0;

	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	jsOptions jo;
	natsStatus s = natsConnection_ConnectTo(&nc, url);
	if (s != NATS_OK) {
		fprintf(stderr, "connect %s: %s\n", url, natsStatus_GetText(s));
		return 1;
	}
	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = max_pending;
	jo.PublishAsync.AckHandler = on_ack;
	jo.PublishAsync.StallWait = 5000;
	s = natsConnection_JetStream(&js, nc, &jo);
	if (s != NATS_OK) {
		fprintf(stderr, "jetstream: %s\n", natsStatus_GetText(s));
		return 1;
	}

	char *payload = malloc(size);
	memset(payload, 'x', size);
	double t0 = now_s();
	for (long i = 0; i < count; i++) {
		natsMsg *msg = NULL;
		natsMsg_Create(&msg, subject, NULL, payload, (int)size);
		if (with_headers) {
			char id[40];
			snprintf(id, sizeof(id), "%ld", i);
			natsMsgHeader_Set(msg, "ce-specversion", "1.0");
			natsMsgHeader_Set(msg, "ce-type", "order.created.v1");
			natsMsgHeader_Set(msg, "ce-source", "bench");
			natsMsgHeader_Set(msg, "ce-id", id);
			natsMsgHeader_Set(msg, "ce-datacontenttype", "application/json");
			natsMsgHeader_Set(msg, "Nats-Msg-Id", id);
		}
		publish_async(js, msg, i);
	}
	publish_complete(js, 60000);
	double t1 = now_s();
	printf("raw_js_rate=%.0f acked=%ld failed=%ld seconds=%.3f headers=%s\n",
	       (double)atomic_load(&acked) / (t1 - t0), atomic_load(&acked), atomic_load(&failed),
	       t1 - t0, with_headers ? "yes" : "no");
	free(payload);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	nats_Close();
	return atomic_load(&failed) ? 1 : 0;
}
