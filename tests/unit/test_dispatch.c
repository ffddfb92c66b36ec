/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The dispatcher's pure parts (dispatch_internal.h): outcome classification, backoff with jitter
 * and Retry-After, the JetStream reply subject, and sink requests built byte-exact in binary and
 * structured mode (with the structured encoder of src/event/).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "dispatch/dispatch_internal.h"
#include "unit.h"

static void test_classify(void)
{
	static const struct {
		int status, err;
		enum evd_dispatch_verdict want;
		int code;
	} rows[] = {
		{ 200, 0, EVD_DV_ACK, 200 },
		{ 202, 0, EVD_DV_ACK, 202 },
		{ 204, 0, EVD_DV_ACK, 204 },
		{ 299, 0, EVD_DV_ACK, 299 },
		{ 408, 0, EVD_DV_RETRY, 408 },
		{ 429, 0, EVD_DV_RETRY, 429 },
		{ 500, 0, EVD_DV_RETRY, 500 },
		{ 502, 0, EVD_DV_RETRY, 502 },
		{ 503, 0, EVD_DV_RETRY, 503 },
		{ 599, 0, EVD_DV_RETRY, 599 },
		{ 301, 0, EVD_DV_PERMANENT, 301 },
		{ 302, 0, EVD_DV_PERMANENT, 302 },
		{ 307, 0, EVD_DV_PERMANENT, 307 },
		{ 400, 0, EVD_DV_PERMANENT, 400 },
		{ 401, 0, EVD_DV_PERMANENT, 401 },
		{ 404, 0, EVD_DV_PERMANENT, 404 },
		{ 409, 0, EVD_DV_PERMANENT, 409 },
		{ 413, 0, EVD_DV_PERMANENT, 413 },
		{ 499, 0, EVD_DV_PERMANENT, 499 },
		{ 0, UV_ETIMEDOUT, EVD_DV_RETRY, 500 },
		{ 0, UV_ECONNREFUSED, EVD_DV_RETRY, 500 },
		{ 0, UV_ECONNRESET, EVD_DV_RETRY, 500 },
		{ 0, UV_EAI_NONAME, EVD_DV_RETRY, 500 },
		{ 0, UV_EPROTO, EVD_DV_RETRY, 500 },
		{ 0, UV_ECANCELED, EVD_DV_REQUEUE, 500 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char reason[128];
		int code = -1;
		enum evd_dispatch_verdict v = evd_dispatch_classify(rows[i].status, rows[i].err, NULL,
								     reason, sizeof(reason), &code);
		if (v != rows[i].want)
			fprintf(stderr, "row %zu: status %d err %d\n", i, rows[i].status, rows[i].err);
		CHECK_INT(v, rows[i].want);
		CHECK_INT(code, rows[i].code);
		CHECK(reason[0] != '\0');
	}
	char reason[128];
	int code;
	evd_dispatch_classify(503, 0, NULL, reason, sizeof(reason), &code);
	CHECK_STR(reason, "HTTP 503");
	evd_dispatch_classify(0, UV_ECONNREFUSED, "connect: connection refused", reason,
			      sizeof(reason), &code);
	CHECK_STR(reason, "connect: connection refused");
	evd_dispatch_classify(0, UV_ETIMEDOUT, NULL, reason, sizeof(reason), &code);
	CHECK_STR(reason, "timeout (dispatch.timeout)");
}

static void test_backoff(void)
{
	struct evd_dispatch_backoff b = { .initial_ms = 1000, .max_ms = 300000, .factor = 2 };
	/* Without jitter: initial * factor^(attempt-1), capped. */
	CHECK_INT(evd_dispatch_backoff_ms(&b, 1, -1, 0), 1000);
	CHECK_INT(evd_dispatch_backoff_ms(&b, 2, -1, 0), 2000);
	CHECK_INT(evd_dispatch_backoff_ms(&b, 3, -1, 0), 4000);
	CHECK_INT(evd_dispatch_backoff_ms(&b, 9, -1, 0), 256000);
	CHECK_INT(evd_dispatch_backoff_ms(&b, 10, -1, 0), 300000);
	CHECK_INT(evd_dispatch_backoff_ms(&b, 1000000, -1, 0), 300000);
	/* Jitter adds up to 25 %, never beyond the max. */
	for (int i = 0; i < 100; i++) {
		double r = i / 100.0;
		int64_t v = evd_dispatch_backoff_ms(&b, 2, -1, r);
		CHECK(v >= 2000 && v <= 2500);
		v = evd_dispatch_backoff_ms(&b, 20, -1, r);
		CHECK(v == 300000);
	}
	/* Retry-After is a floor... */
	CHECK_INT(evd_dispatch_backoff_ms(&b, 1, 5000, 0), 5000);
	CHECK_INT(evd_dispatch_backoff_ms(&b, 3, 1000, 0), 4000);
	CHECK_INT(evd_dispatch_backoff_ms(&b, 1, 0, 0), 1000);
	/* ...capped by the max. */
	CHECK_INT(evd_dispatch_backoff_ms(&b, 1, 3600000, 0), 300000);
	/* Factor 1 is a constant delay; degenerate settings still give at least 1 ms. */
	struct evd_dispatch_backoff c = { .initial_ms = 200, .max_ms = 1000, .factor = 1 };
	CHECK_INT(evd_dispatch_backoff_ms(&c, 7, -1, 0), 200);
	struct evd_dispatch_backoff z = { 0 };
	CHECK_INT(evd_dispatch_backoff_ms(&z, 1, -1, 0), 1);
	/* Initial above max: the max. */
	struct evd_dispatch_backoff m = { .initial_ms = 5000, .max_ms = 1000, .factor = 2 };
	CHECK_INT(evd_dispatch_backoff_ms(&m, 1, -1, 0), 1000);
}

static void test_reply(void)
{
	struct evd_dispatch_meta m;
	CHECK_INT(evd_dispatch_parse_reply("$JS.ACK.sap.c1.3.1042.7.1700000000000000000.5", &m), 0);
	CHECK_INT(m.delivered, 3);
	CHECK_INT(m.stream_seq, 1042);
	CHECK_INT(m.timestamp_ns, 1700000000000000000LL);
	/* v2: domain and account hash first, a random token last. */
	CHECK_INT(evd_dispatch_parse_reply("$JS.ACK._.AHASH.sap.c1.1.77.9.1700000000000000001.0.xyz", &m), 0);
	CHECK_INT(m.delivered, 1);
	CHECK_INT(m.stream_seq, 77);
	CHECK_INT(evd_dispatch_parse_reply("$JS.ACK.dom.AHASH.sap.c1.2.78.10.1700000000000000002.0", &m), 0);
	CHECK_INT(m.delivered, 2);
	CHECK_INT(m.stream_seq, 78);
	CHECK_INT(evd_dispatch_parse_reply(NULL, &m), -EINVAL);
	CHECK_INT(evd_dispatch_parse_reply("", &m), -EINVAL);
	CHECK_INT(evd_dispatch_parse_reply("_INBOX.abc", &m), -EINVAL);
	CHECK_INT(evd_dispatch_parse_reply("$JS.ACK.sap.c1.3.x.7.1.5", &m), -EINVAL);
	CHECK_INT(evd_dispatch_parse_reply("$JS.ACK.sap.c1.3.4.7.1", &m), -EINVAL);
	CHECK_INT(evd_dispatch_parse_reply("$JS.ACK.a.b.sap.c1.3.4.7.1", &m), -EINVAL);
	CHECK_INT(evd_dispatch_parse_reply("$JS.ACK.sap.c1.99999999999999999999999.4.7.1.5", &m), -EINVAL);
}

static const struct evd_header *hdr(const struct evd_header *h, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (h[i].name_len == strlen(name) && memcmp(h[i].name, name, h[i].name_len) == 0)
			return &h[i];
	return NULL;
}

static bool hdr_is(const struct evd_header *h, size_t n, const char *name, const char *value)
{
	const struct evd_header *x = hdr(h, n, name);
	return x && x->value_len == strlen(value) && memcmp(x->value, value, x->value_len) == 0;
}

static void test_binary(void)
{
	const char *keys[] = { "ce-specversion", "ce-id", "ce-source", "ce-type",
			       "ce-datacontenttype", "ce-time", "ce-originaltype", "ce-b3traceid",
			       "ce-traceparent", "ce-tracestate", "Nats-Msg-Id", "ce-subject",
			       "X-Other" };
	const char *vals[] = { "1.0", "a%20b%25c", "/shop", "order.created.v1",
			       "application/json;%20charset=utf-8", "2026-12-01T10:00:00Z",
			       "order.created.v1", "463ac35c9f6413ad",
			       "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			       "a=1,%20b=2", "0123456789abcdef0123456789abcdef", "%E2%82%AC", "x" };
	struct evd_header out[16];
	struct evd_buf scratch = EVD_BUF_INIT;
	size_t n = evd_dispatch_build_binary(keys, vals, sizeof(keys) / sizeof(keys[0]), out, &scratch);

	CHECK_INT(n, 11); /* everything but Nats-Msg-Id and X-Other */
	/* ce-* byte for byte: still percent-encoded, as the HTTP binding wants. */
	CHECK(hdr_is(out, n, "ce-id", "a%20b%25c"));
	CHECK(hdr_is(out, n, "ce-specversion", "1.0"));
	CHECK(hdr_is(out, n, "ce-source", "/shop"));
	CHECK(hdr_is(out, n, "ce-type", "order.created.v1"));
	CHECK(hdr_is(out, n, "ce-time", "2026-12-01T10:00:00Z"));
	CHECK(hdr_is(out, n, "ce-originaltype", "order.created.v1"));
	CHECK(hdr_is(out, n, "ce-subject", "%E2%82%AC"));
	/* datacontenttype: Content-Type, decoded. */
	CHECK(hdr_is(out, n, "Content-Type", "application/json; charset=utf-8"));
	CHECK(!hdr(out, n, "ce-datacontenttype"));
	/* Tracing extensions: their headers, not ce-*. */
	CHECK(hdr_is(out, n, "X-B3-TraceId", "463ac35c9f6413ad"));
	CHECK(hdr_is(out, n, "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
	CHECK(hdr_is(out, n, "tracestate", "a=1, b=2"));
	CHECK(!hdr(out, n, "ce-b3traceid"));
	CHECK(!hdr(out, n, "ce-traceparent"));
	CHECK(!hdr(out, n, "Nats-Msg-Id"));
	CHECK(!hdr(out, n, "X-Other"));
	/* Pointers into the stored values, not copies (byte for byte, no work per header). */
	CHECK(hdr(out, n, "ce-id")->value == vals[1]);

	/* A tracing value that decodes to a control character stays encoded. */
	const char *k2[] = { "ce-tracestate", "CE-DataContentType" };
	const char *v2[] = { "a%0Ab", "text/plain" };
	n = evd_dispatch_build_binary(k2, v2, 2, out, &scratch);
	CHECK_INT(n, 2);
	CHECK(hdr_is(out, n, "tracestate", "a%0Ab"));
	CHECK(hdr_is(out, n, "Content-Type", "text/plain"));
	evd_buf_free(&scratch);
}

static void test_structured(void)
{
	struct evd_cloudevent ev;
	struct evd_buf err = EVD_BUF_INIT, body = EVD_BUF_INIT;
	struct evd_header out[16];
	const char *keys[] = { "ce-specversion", "ce-id", "ce-source", "ce-type",
			       "ce-datacontenttype", "ce-traceparent", "ce-myext", "Nats-Msg-Id" };
	const char *vals[] = { "1.0", "id%22q", "shop", "t.v1", "application/json", "00-abc-def-01",
			       "x%20y", "ffff" };
	const char data[] = " {\"n\": 12345678901234567890, \"s\":\"\\u00e9\"}\n";

	CHECK_INT(evd_ce_decode_nats(keys, vals, 8, data, sizeof(data) - 1, &ev, &err), 0);
	size_t n = evd_dispatch_build_structured(&ev, out, &body);
	CHECK_INT(n, 2);
	CHECK(hdr_is(out, n, "Content-Type", "application/cloudevents+json; charset=utf-8"));
	CHECK(hdr_is(out, n, "traceparent", "00-abc-def-01"));
	CHECK_STR(body.data, "{\"specversion\":\"1.0\",\"id\":\"id\\\"q\",\"source\":\"shop\","
			     "\"type\":\"t.v1\",\"datacontenttype\":\"application/json\","
			     "\"myext\":\"x y\",\"data\":{\"n\": 12345678901234567890, "
			     "\"s\":\"\\u00e9\"}}");
	evd_ce_free(&ev);

	/* Text under a non-JSON type: a JSON string. */
	const char *k2[] = { "ce-specversion", "ce-id", "ce-source", "ce-type", "ce-datacontenttype" };
	const char *v2[] = { "1.0", "1", "s", "t", "text/plain" };
	CHECK_INT(evd_ce_decode_nats(k2, v2, 5, "line1\n\"two\"", 11, &ev, &err), 0);
	evd_dispatch_build_structured(&ev, out, &body);
	CHECK_STR(body.data, "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\","
			     "\"datacontenttype\":\"text/plain\",\"data\":\"line1\\n\\\"two\\\"\"}");
	evd_ce_free(&ev);

	/* Bytes that are no text: data_base64. */
	v2[4] = "application/octet-stream";
	CHECK_INT(evd_ce_decode_nats(k2, v2, 5, "\xff\x00\x01", 3, &ev, &err), 0);
	evd_dispatch_build_structured(&ev, out, &body);
	CHECK_STR(body.data, "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\","
			     "\"datacontenttype\":\"application/octet-stream\",\"data_base64\":\"/wAB\"}");
	evd_ce_free(&ev);

	/* JSON content type but no JSON value stored (binary publish of anything): a string. */
	v2[4] = "application/json";
	CHECK_INT(evd_ce_decode_nats(k2, v2, 5, "{nope", 5, &ev, &err), 0);
	evd_dispatch_build_structured(&ev, out, &body);
	CHECK_STR(body.data, "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\","
			     "\"datacontenttype\":\"application/json\",\"data\":\"{nope\"}");
	evd_ce_free(&ev);

	/* No data at all: no data member. */
	CHECK_INT(evd_ce_decode_nats(k2, v2, 4, NULL, 0, &ev, &err), 0);
	evd_dispatch_build_structured(&ev, out, &body);
	CHECK_STR(body.data, "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\"}");
	evd_ce_free(&ev);

	/* What the receiver decodes is what was stored (round trip through the decoder). */
	CHECK_INT(evd_ce_decode_nats(keys, vals, 8, data, sizeof(data) - 1, &ev, &err), 0);
	evd_dispatch_build_structured(&ev, out, &body);
	struct evd_cloudevent back;
	CHECK_INT(evd_ce_decode_structured(body.data, body.len, &back, &err), 0);
	CHECK_STR(back.attr[EVD_CE_ID], "id\"q");
	CHECK_STR(evd_ce_ext_get(&back, "myext"), "x y");
	CHECK(evd_ce_ext_get(&back, "traceparent") == NULL);
	CHECK(back.data_len == strlen("{\"n\": 12345678901234567890, \"s\":\"\\u00e9\"}") &&
	      memcmp(back.data, "{\"n\": 12345678901234567890, \"s\":\"\\u00e9\"}", back.data_len) == 0);
	evd_ce_free(&back);
	evd_ce_free(&ev);

	evd_buf_free(&body);
	evd_buf_free(&err);
}

/* The attempt table against a plain array, through inserts, deletes and garbage collection. */
static void test_track(void)
{
	struct evd_dispatch_track t = { 0 };
	enum { N = 5000 };
	static uint32_t ref[N + 1]; /* attempts + 1 when present, 0 when absent */
	unsigned bad = 0;
	uint64_t x = 88172645463325252ull;

	CHECK(evd_dispatch_track_find(&t, 1) == NULL);
	evd_dispatch_track_del(&t, 1); /* absent: nothing */
	for (int round = 0; round < 200000; round++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t seq = 1 + x % N;
		struct dtrack *e = evd_dispatch_track_find(&t, seq);
		if ((e != NULL) != (ref[seq] != 0) || (e && e->attempts + 1 != ref[seq])) {
			bad++;
			continue;
		}
		if (x & 0x100) {
			if (e) {
				evd_dispatch_track_del(&t, seq);
				ref[seq] = 0;
			}
		} else if (e) {
			e->attempts++; /* a failed attempt: the entry stays while it backs off */
			ref[seq]++;
		} else {
			struct dtrack v = { .seq = seq, .attempts = (uint32_t)(x % 3) };
			evd_dispatch_track_put(&t, &v);
			ref[seq] = v.attempts + 1;
		}
	}
	CHECK_INT(bad, 0);
	size_t n = 0;
	for (size_t i = 1; i <= N; i++)
		n += ref[i] != 0;
	CHECK_INT(t.n, n);
	CHECK(t.n * 2 <= t.cap);

	/* gc forgets only what is neither live nor recent. */
	evd_dispatch_track_free(&t);
	struct dmsg *live = (struct dmsg *)&t; /* any non-NULL pointer: never dereferenced */
	for (uint64_t s = 1; s <= 1000; s++) {
		struct dtrack v = { .seq = s, .attempts = 1, .touched = s <= 500 ? 100 : 5000,
				    .live = s % 100 == 0 ? live : NULL };
		evd_dispatch_track_put(&t, &v);
	}
	evd_dispatch_track_gc(&t, 10000, 6000);
	/* Kept: touched at 5000 (age 5000 < 6000), and the live ones among the old. */
	CHECK_INT(t.n, 500 + 5);
	CHECK(evd_dispatch_track_find(&t, 100) != NULL);
	CHECK(evd_dispatch_track_find(&t, 101) == NULL);
	CHECK(evd_dispatch_track_find(&t, 501) != NULL);
	evd_dispatch_track_gc(&t, 100000, 6000);
	CHECK_INT(t.n, 10); /* only the live ones */
	CHECK(t.cap <= 64);
	evd_dispatch_track_free(&t);

	/* After a restart JetStream's count is all there is. */
	CHECK_INT(evd_dispatch_prior_attempts(0), 0);
	CHECK_INT(evd_dispatch_prior_attempts(1), 0);
	CHECK_INT(evd_dispatch_prior_attempts(2), 1);
	CHECK_INT(evd_dispatch_prior_attempts(101), 100);
	CHECK_INT(evd_dispatch_prior_attempts(UINT64_MAX), UINT32_MAX);
}

int main(void)
{
	fprintf(stderr, "-- attempt table\n");
	test_track();
	fprintf(stderr, "-- classify\n");
	test_classify();
	fprintf(stderr, "-- backoff\n");
	test_backoff();
	fprintf(stderr, "-- reply subject\n");
	test_reply();
	fprintf(stderr, "-- binary request\n");
	test_binary();
	fprintf(stderr, "-- structured request\n");
	test_structured();
	UNIT_MAIN_END();
}
