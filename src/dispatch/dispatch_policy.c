/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The dispatcher's rules as pure functions (dispatch_internal.h): what an attempt's result means
 * (DESIGN.md §6 "Outcomes", Knative's data-plane table minus its 404/409 retries: a sink that
 * answers 4xx will answer it again), how long to wait before the next attempt, and where a
 * message sits in its consumer (the ack reply subject).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "dispatch/dispatch_internal.h"

enum evd_dispatch_verdict evd_dispatch_classify(int status, int err, const char *err_text,
						char *reason, size_t reason_len, int *code)
{
	if (status == 0) {
		/* Kyma's dispatcher labels transport errors 500. */
		*code = 500;
		if (err == UV_ECANCELED) {
			snprintf(reason, reason_len, "cancelled (eventingd is stopping)");
			return EVD_DV_REQUEUE;
		}
		if (err == UV_ETIMEDOUT)
			snprintf(reason, reason_len, "timeout (dispatch.timeout)");
		else if (err_text && *err_text)
			snprintf(reason, reason_len, "%s", err_text);
		else
			snprintf(reason, reason_len, "%s (%s)", err ? uv_strerror(err) : "no response",
				 err ? uv_err_name(err) : "?");
		return EVD_DV_RETRY;
	}
	*code = status;
	snprintf(reason, reason_len, "HTTP %d", status);
	if (status >= 200 && status <= 299)
		return EVD_DV_ACK;
	if (status == 408 || status == 429 || (status >= 500 && status <= 599))
		return EVD_DV_RETRY;
	if (status >= 300 && status <= 499)
		return EVD_DV_PERMANENT;
	/* 1xx as a final answer, or a status outside the registry: a broken sink, maybe mended. */
	return EVD_DV_RETRY;
}

int64_t evd_dispatch_backoff_ms(const struct evd_dispatch_backoff *b, unsigned attempt,
				int64_t retry_after_ms, double rnd)
{
	double max = b->max_ms > 0 ? (double)b->max_ms : 1;
	double d = b->initial_ms > 0 ? (double)b->initial_ms : 1;
	double f = b->factor >= 1 ? b->factor : 1;

	for (unsigned i = 1; i < attempt && d < max; i++)
		d *= f;
	/* Jitter only adds (a retry never comes before its nominal delay), so sinks that failed
	 * together do not come back together. */
	if (rnd > 0 && rnd < 1)
		d += d * 0.25 * rnd;
	if (d > max)
		d = max;
	if (retry_after_ms >= 0 && (double)retry_after_ms > d)
		d = (double)retry_after_ms < max ? (double)retry_after_ms : max;
	int64_t ms = (int64_t)d;
	return ms >= 1 ? ms : 1;
}

static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	if (len == 0 || len > 20)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		uint64_t n = v * 10 + (uint64_t)(s[i] - '0');
		if (n / 10 != v)
			return false;
		v = n;
	}
	*out = v;
	return true;
}

int evd_dispatch_parse_reply(const char *reply, struct evd_dispatch_meta *out)
{
	const char *tok[16];
	size_t len[16], n = 0;
	const char *p = reply;

	if (!reply || strncmp(reply, "$JS.ACK.", 8) != 0)
		return -EINVAL;
	for (;;) {
		const char *dot = strchr(p, '.');
		if (n == 16)
			return -EINVAL;
		tok[n] = p;
		len[n] = dot ? (size_t)(dot - p) : strlen(p);
		n++;
		if (!dot)
			break;
		p = dot + 1;
	}
	/* nats.c (js.c _getMetaData): 9 tokens is v1; v2 adds domain and account hash after
	 * "$JS.ACK" (and may end with a random token), so at least 11. */
	size_t base;
	if (n == 9)
		base = 2;
	else if (n >= 11)
		base = 4;
	else
		return -EINVAL;
	/* base: stream, +1 consumer, +2 delivered, +3 stream seq, +4 consumer seq, +5 time. */
	uint64_t ts;
	if (!parse_u64(tok[base + 2], len[base + 2], &out->delivered) ||
	    !parse_u64(tok[base + 3], len[base + 3], &out->stream_seq) ||
	    !parse_u64(tok[base + 5], len[base + 5], &ts))
		return -EINVAL;
	out->timestamp_ns = (int64_t)ts;
	return 0;
}
