/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The raw JetStream ceiling for the publish benchmark: one nats.c connection publishing N
 * messages of the same payload with js_PublishMsgAsync, as fast as acks allow, with a bounded
 * number in flight (the same shape as eventingd's publish path, minus HTTP and validation).
 *
 * usage: bench_js_raw URL SUBJECT COUNT PAYLOAD_BYTES MAX_PENDING [headers]
 * With "headers", every message carries CloudEvents NATS-binding headers and a unique
 * Nats-Msg-Id, as eventingd writes them. Prints one line: "raw_js_rate=<msgs/s> ...".
 */
#include <inttypes.h>
#include <nats/nats.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

int main(int argc, char **argv)
{
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
		s = js_PublishMsgAsync(js, &msg, NULL);
		if (s != NATS_OK) {
			fprintf(stderr, "publish %ld: %s\n", i, natsStatus_GetText(s));
			natsMsg_Destroy(msg);
			atomic_fetch_add(&failed, 1);
		}
	}
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = 60000;
	s = js_PublishAsyncComplete(js, &po);
	double t1 = now_s();
	if (s != NATS_OK)
		fprintf(stderr, "complete: %s\n", natsStatus_GetText(s));
	printf("raw_js_rate=%.0f acked=%ld failed=%ld seconds=%.3f headers=%s\n",
	       (double)atomic_load(&acked) / (t1 - t0), atomic_load(&acked), atomic_load(&failed),
	       t1 - t0, with_headers ? "yes" : "no");
	free(payload);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	nats_Close();
	return atomic_load(&failed) ? 1 : 0;
}
