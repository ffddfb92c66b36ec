/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shared response parser (http_response.h). llhttp calls back with spans of the input; a
 * header name or value may arrive in several pieces when it straddles two reads, so names are
 * matched as they accumulate and only the one header we look for (Retry-After) is copied.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/http_response.h"

#define RETRY_AFTER "retry-after"
#define RETRY_AFTER_LEN (sizeof(RETRY_AFTER) - 1)

static struct evd_http_response *resp_of(llhttp_t *p)
{
	return p->data;
}

static int count_header(struct evd_http_response *r, size_t len)
{
	r->header_bytes += len;
	if (r->header_bytes > EVD_HTTP_RESPONSE_MAX_HEADER) {
		r->error = "response header section too large";
		return -1;
	}
	return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t len)
{
	return count_header(resp_of(p), len);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct evd_http_response *r = resp_of(p);
	if (count_header(r, len) < 0)
		return -1;
	if (r->in_value || r->field_len == 0) {
		if (r->keep_headers && r->in_value)
			evd_buf_append(&r->headers, "\r\n", 2);
		r->in_value = false;
		r->field_len = 0;
	}
	if (r->field_len + len <= sizeof(r->field))
		memcpy(r->field + r->field_len, at, len);
	r->field_len += len;
	if (r->keep_headers)
		evd_buf_append(&r->headers, at, len);
	return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct evd_http_response *r = resp_of(p);
	if (count_header(r, len) < 0)
		return -1;
	if (!r->in_value) {
		r->in_value = true;
		r->field_is_retry_after = r->field_len == RETRY_AFTER_LEN &&
					  strncasecmp(r->field, RETRY_AFTER, RETRY_AFTER_LEN) == 0;
		if (r->field_is_retry_after)
			r->retry_after_len = 0; /* a repeated header: the last one counts */
		if (r->keep_headers)
			evd_buf_append(&r->headers, ": ", 2);
	}
	if (r->field_is_retry_after) {
		/* A longer value is no valid Retry-After: keep a prefix, which fails to parse. */
		size_t room = sizeof(r->retry_after) - 1 - r->retry_after_len;
		size_t n = len < room ? len : room;
		memcpy(r->retry_after + r->retry_after_len, at, n);
		r->retry_after_len += n;
		r->retry_after[r->retry_after_len] = '\0';
	}
	if (r->keep_headers)
		evd_buf_append(&r->headers, at, len);
	return 0;
}

static int on_headers_complete(llhttp_t *p)
{
	struct evd_http_response *r = resp_of(p);
	if (r->keep_headers && r->in_value)
		evd_buf_append(&r->headers, "\r\n", 2);
	r->in_value = false;
	r->field_len = 0;
	r->status = llhttp_get_status_code(p);
	if (r->status < 100 || r->status > 599) {
		/* llhttp takes any number ("20", "2000"); RFC 9110 15 says three digits, 1xx to
		 * 5xx, and a caller classifying by hundreds must not see anything else. */
		r->error = "invalid status code";
		return -1;
	}
	if (r->status == 101) {
		/* We never ask to upgrade; llhttp would stop parsing HTTP here. */
		r->error = "unexpected 101 Switching Protocols";
		return -1;
	}
	/* No body follows a response to HEAD, nor a 204 or 304, whatever Content-Length says
	 * (RFC 9112 6.3; llhttp 8 would read one for 204 and 304): 1 tells llhttp so. Bytes a
	 * broken server sends anyway are left over, and the connection is not reused. */
	return (r->head && r->status >= 200) || r->status == 204 || r->status == 304 ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
	struct evd_http_response *r = resp_of(p);
	r->body_seen += len;
	if (r->body.len < r->body_max) {
		size_t room = r->body_max - r->body.len;
		evd_buf_append(&r->body, at, len < room ? len : room);
	}
	if (r->body_seen > r->body_max && r->body_max_fails) {
		r->error = "response body too large";
		return -1;
	}
	return 0;
}

static int on_message_complete(llhttp_t *p)
{
	struct evd_http_response *r = resp_of(p);
	if (r->status >= 100 && r->status < 200) {
		/* An interim response (100 Continue, 103 Early Hints): the final one follows. Its
		 * headers do not count towards the final response's. */
		evd_buf_reset(&r->headers);
		r->status = 0;
		r->retry_after[0] = '\0';
		r->retry_after_len = 0;
		r->header_bytes = 0;
		return 0;
	}
	r->complete = true;
	r->keep_alive = llhttp_should_keep_alive(p);
	/* Stop at the end of this response: what follows is no answer to our request. */
	return HPE_PAUSED;
}

static llhttp_settings_t settings;
static bool settings_ready;

void evd_http_response_init(struct evd_http_response *r)
{
	memset(r, 0, sizeof(*r));
	/* Idempotent and the same on every thread: a race would write identical bytes. */
	if (!settings_ready) {
		llhttp_settings_t s;
		llhttp_settings_init(&s);
		s.on_status = on_status;
		s.on_header_field = on_header_field;
		s.on_header_value = on_header_value;
		s.on_headers_complete = on_headers_complete;
		s.on_body = on_body;
		s.on_message_complete = on_message_complete;
		settings = s;
		settings_ready = true;
	}
	llhttp_init(&r->parser, HTTP_RESPONSE, &settings);
	r->parser.data = r;
}

void evd_http_response_reset(struct evd_http_response *r, bool head)
{
	llhttp_reset(&r->parser);
	r->parser.data = r;
	r->head = head;
	r->status = 0;
	r->complete = false;
	r->keep_alive = false;
	r->bytes = 0;
	r->body_seen = 0;
	evd_buf_reset(&r->body);
	evd_buf_reset(&r->headers);
	r->retry_after[0] = '\0';
	r->retry_after_len = 0;
	r->in_value = false;
	r->field_is_retry_after = false;
	r->field_len = 0;
	r->header_bytes = 0;
	r->error = NULL;
}

int evd_http_response_feed(struct evd_http_response *r, const char *data, size_t len, size_t *used)
{
	*used = 0;
	if (r->complete)
		return 1;
	if (r->error)
		return -EPROTO;
	llhttp_errno_t e = llhttp_execute(&r->parser, data, len);
	if (e == HPE_PAUSED && r->complete) {
		*used = (size_t)(llhttp_get_error_pos(&r->parser) - data);
		r->bytes += *used;
		return 1;
	}
	*used = len;
	r->bytes += len;
	if (e == HPE_OK)
		return 0;
	bool too_big = r->error && r->body_max_fails && r->body_seen > r->body_max;
	if (!r->error)
		r->error = llhttp_get_error_reason(&r->parser);
	if (!r->error)
		r->error = llhttp_errno_name(e);
	return too_big ? -EFBIG : -EPROTO;
}

int evd_http_response_eof(struct evd_http_response *r)
{
	if (r->complete)
		return 1;
	if (r->error)
		return -EPROTO;
	/* llhttp_finish completes a body that runs until the close; in the middle of anything
	 * else it reports an error, and before the first byte it does nothing. */
	llhttp_errno_t e = llhttp_finish(&r->parser);
	if ((e == HPE_OK || e == HPE_PAUSED) && r->complete) {
		r->keep_alive = false;
		return 1;
	}
	r->error = r->bytes ? "the connection closed before the response was complete"
			    : "the connection closed without a response";
	return -ECONNRESET;
}

const char *evd_http_response_error(const struct evd_http_response *r)
{
	return r->error ? r->error : "no error";
}

void evd_http_response_free(struct evd_http_response *r)
{
	evd_buf_free(&r->body);
	evd_buf_free(&r->headers);
}

/* ---- Retry-After ------------------------------------------------------------------------- */

static int two_digits(const char *s)
{
	if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]))
		return -1;
	return (s[0] - '0') * 10 + (s[1] - '0');
}

/* IMF-fixdate = day-name "," SP date1 SP time-of-day SP GMT: exactly 29 characters. */
static int parse_imf_fixdate(const char *v, size_t len, time_t *out)
{
	static const char days[] = "SunMonTueWedThuFriSat";
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	if (len != 29 || v[3] != ',' || v[4] != ' ' || v[7] != ' ' || v[11] != ' ' ||
	    v[16] != ' ' || v[19] != ':' || v[22] != ':' || v[25] != ' ' ||
	    memcmp(v + 26, "GMT", 3) != 0)
		return -1;
	bool day_ok = false;
	for (int i = 0; i < 7; i++)
		day_ok |= memcmp(v, days + 3 * i, 3) == 0;
	int mon = -1;
	for (int i = 0; i < 12; i++)
		if (memcmp(v + 8, months + 3 * i, 3) == 0)
			mon = i;
	int mday = two_digits(v + 5), y1 = two_digits(v + 12), y2 = two_digits(v + 14);
	int hh = two_digits(v + 17), mm = two_digits(v + 20), ss = two_digits(v + 23);
	if (!day_ok || mon < 0 || mday < 1 || mday > 31 || y1 < 0 || y2 < 0 || hh < 0 || hh > 23 ||
	    mm < 0 || mm > 59 || ss < 0 || ss > 60)
		return -1;
	struct tm tm = { .tm_year = y1 * 100 + y2 - 1900, .tm_mon = mon, .tm_mday = mday,
			 .tm_hour = hh, .tm_min = mm, .tm_sec = ss };
	*out = timegm(&tm);
	return 0;
}

int64_t evd_http_retry_after_ms(const char *value, size_t len, time_t now)
{
	while (len && (*value == ' ' || *value == '\t'))
		value++, len--;
	while (len && (value[len - 1] == ' ' || value[len - 1] == '\t'))
		len--;
	if (len == 0)
		return -1;
	if (isdigit((unsigned char)value[0])) {
		int64_t s = 0;
		for (size_t i = 0; i < len; i++) {
			if (!isdigit((unsigned char)value[i]))
				return -1;
			/* Saturate at about three years: no caller waits longer than its cap. */
			s = s * 10 + (value[i] - '0');
			if (s > 100000000)
				s = 100000000;
		}
		return s * 1000;
	}
	time_t t;
	if (parse_imf_fixdate(value, len, &t) < 0)
		return -1;
	return t <= now ? 0 : (int64_t)(t - now) * 1000;
}
