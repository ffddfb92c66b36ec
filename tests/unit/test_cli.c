/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pure parts of the CLI: listen address -> URL, the request `publish` builds (checked by
 * decoding it again with the server's decoders), the form `display` prints, and the text of
 * `eventingd status` (times, ages, the table).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "unit.h"

static void test_url_from_listen(void)
{
	static const struct {
		const char *listen, *url;
	} rows[] = {
		{ "127.0.0.1:8080", "http://127.0.0.1:8080" },
		{ ":8080", "http://127.0.0.1:8080" },
		{ "0.0.0.0:9090", "http://127.0.0.1:9090" },
		{ "[::]:8080", "http://[::1]:8080" },
		{ "[::1]:8080", "http://[::1]:8080" },
		{ "localhost:8080/", "http://localhost:8080" },
		/* Every wildcard the config accepts goes to loopback. */
		{ "*:18491", "http://127.0.0.1:18491" },
		{ "[::0]:8080", "http://[::1]:8080" },
		{ "[0:0::0]:8080", "http://[::1]:8080" },
		{ "192.168.1.2:80", "http://192.168.1.2:80" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char out[128];
		evd_cli_url_from_listen(rows[i].listen, out, sizeof(out));
		CHECK_STR(out, rows[i].url);
	}
}

static void test_json_value(void)
{
	static const struct {
		const char *text;
		bool ok;
		size_t start, len;
	} rows[] = {
		{ "{}", true, 0, 2 },
		{ " [1, 2]\n", true, 1, 6 },
		{ "\"s\"", true, 0, 3 },
		{ "12345678901234567890", true, 0, 20 },
		{ "null", true, 0, 4 },
		{ "", false, 0, 0 },
		{ "   ", false, 0, 0 },
		{ "plain text", false, 0, 0 },
		{ "{\"a\":1} x", false, 0, 0 },
		{ "{\"a\":", false, 0, 0 },
		{ "[1,]", false, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t s = 99, l = 99;
		bool ok = evd_cli_json_value(rows[i].text, strlen(rows[i].text), &s, &l);
		CHECK_INT(ok, rows[i].ok);
		if (ok && rows[i].ok) {
			CHECK_INT(s, rows[i].start);
			CHECK_INT(l, rows[i].len);
		}
	}
	/* A NUL byte is never JSON text, even when what precedes it is. */
	CHECK(!evd_cli_json_value("{}\0", 3, NULL, NULL));
}

static void test_extension_names(void)
{
	static const struct {
		const char *name;
		bool ok;
	} rows[] = {
		{ "foo", true }, { "a1b2", true }, { "subject", true }, { "time", true },
		{ "", false }, { "Foo", false }, { "foo-bar", false }, { "foo_bar", false },
		{ "id", false }, { "type", false }, { "source", false }, { "specversion", false },
		{ "datacontenttype", false }, { "data", false },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const char *why = NULL;
		bool ok = evd_cli_extension_name_ok(rows[i].name, &why);
		if (ok != rows[i].ok)
			fprintf(stderr, "extension name \"%s\"\n", rows[i].name);
		CHECK_INT(ok, rows[i].ok);
		CHECK(ok || why != NULL);
	}
}

/* Splits "Name: value\r\n" lines into headers pointing into lines (modified in place). */
static size_t split_headers(char *lines, struct evd_header *h, size_t max)
{
	size_t n = 0;
	char *save = NULL;
	for (char *l = strtok_r(lines, "\r\n", &save); l && n < max; l = strtok_r(NULL, "\r\n", &save)) {
		char *colon = strchr(l, ':');
		if (!colon)
			continue;
		char *v = colon + 1;
		while (*v == ' ')
			v++;
		h[n++] = (struct evd_header){ l, (size_t)(colon - l), v, strlen(v) };
	}
	return n;
}

struct publish_row {
	const char *name;
	bool structured;
	const char *content_type; /* given */
	const char *data;         /* NULL: none */
	size_t data_len;          /* 0: strlen */
	int rc;
	const char *want_ct;      /* datacontenttype after decoding, NULL: none */
	const char *want_data;    /* NULL: same as data */
	const char *body_has;     /* substring of the request body */
};

static void test_publish_build(void)
{
	static const struct publish_row rows[] = {
		{ "binary json", false, NULL, "{\"n\": 12345678901234567890}", 0, 0, "application/json",
		  NULL, "12345678901234567890" },
		{ "binary text", false, NULL, "hello world", 0, 0, "text/plain", NULL, "hello world" },
		{ "binary no data", false, NULL, NULL, 0, 0, NULL, NULL, NULL },
		/* Broken JSON is refused before sending, in binary mode too (issue 7). */
		{ "binary explicit ct, not json", false, "application/json", "nojson", 0, -EINVAL,
		  NULL, NULL, NULL },
		{ "binary broken json object", false, NULL, "{\"id\":", 0, -EINVAL, NULL, NULL,
		  NULL },
		{ "binary broken json array", false, NULL, " \n[1, 2", 0, -EINVAL, NULL, NULL, NULL },
		{ "structured broken json", true, NULL, "{\"id\":", 0, -EINVAL, NULL, NULL, NULL },
		{ "binary +json ct, broken", false, "application/vnd.x+json; charset=utf-8", "[", 0,
		  -EINVAL, NULL, NULL, NULL },
		/* An explicit non-JSON content type sends the same text as it is. */
		{ "binary text ct, broken json", false, "text/plain", "{\"id\":", 0, 0, "text/plain",
		  NULL, "{\"id\":" },
		{ "structured text ct, broken json", true, "text/plain", "{\"id\":", 0, 0,
		  "text/plain", NULL, "\"data\":\"{\\\"id\\\":\"" },
		{ "binary octet-stream ct, broken json", false, "application/octet-stream", "[x", 0, 0,
		  "application/octet-stream", NULL, "[x" },
		/* Text that does not open an object or array is text. */
		{ "binary text starting with a brace later", false, NULL, "a {b", 0, 0, "text/plain",
		  NULL, "a {b" },
		{ "structured json raw", true, NULL, " {\"n\": 12345678901234567890}\n", 0, 0,
		  "application/json", "{\"n\": 12345678901234567890}",
		  "\"data\":{\"n\": 12345678901234567890}" },
		{ "structured text", true, NULL, "plain \"quoted\" text", 0, 0, "text/plain", NULL,
		  "\"data\":\"plain \\\"quoted\\\" text\"" },
		{ "structured json string data", true, NULL, "\"just a string\"", 0, 0,
		  "application/json", NULL, "\"data\":\"just a string\"" },
		{ "structured bytes", true, "application/octet-stream", "\x00\x01\xff", 3, 0,
		  "application/octet-stream", NULL, "\"data_base64\":\"AAH/\"" },
		{ "structured json ct but text", true, "application/json", "not json", 0, -EINVAL,
		  NULL, NULL, NULL },
		{ "structured +json ct but text", true, "application/vnd.x+json", "{", 0, -EINVAL,
		  NULL, NULL, NULL },
		{ "structured text ct with json text", true, "text/plain", "[1]", 0, 0, "text/plain",
		  NULL, "\"data\":\"[1]\"" },
		{ "control char in ct", false, "text/plain\r\nX: y", "x", 0, -EINVAL, NULL, NULL,
		  NULL },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct publish_row *r = &rows[i];
		struct evd_cli_event ev = {
			.type = "com.example.created.v1",
			.source = "/my app",
			.id = "id-1",
			.content_type = r->content_type,
			.data = r->data,
			.data_len = r->data ? (r->data_len ? r->data_len : strlen(r->data)) : 0,
			.ext_name = { "foo", "subject" },
			.ext_value = { "b\xc3\xa4r %20 \"q\"", "sub" },
			.n_ext = 2,
		};
		struct evd_buf headers = EVD_BUF_INIT, body = EVD_BUF_INIT, derr = EVD_BUF_INIT;
		struct evd_cloudevent out = EVD_CE_INIT;
		char err[256] = "";
		fprintf(stderr, "-- %s\n", r->name);
		int rc = evd_cli_publish_build(&ev, r->structured, &headers, &body, err, sizeof(err));
		CHECK_INT(rc, r->rc);
		if (rc != 0 || r->rc != 0) {
			CHECK(rc == 0 || err[0] != '\0');
			goto next;
		}
		if (r->body_has)
			CHECK(body.data && strstr(body.data, r->body_has) != NULL);
		if (r->structured) {
			CHECK(strstr(headers.data, "Content-Type: application/cloudevents+json") != NULL);
			rc = evd_ce_decode_structured(body.data, body.len, &out, &derr);
		} else {
			struct evd_header h[32];
			size_t nh = split_headers(headers.data, h, 32);
			rc = evd_ce_decode_binary(h, nh, body.data, body.len, &out, &derr);
		}
		CHECK_INT(rc, 0);
		if (rc != 0) {
			fprintf(stderr, "decode: %s\n", derr.data ? derr.data : "");
			goto next;
		}
		CHECK_STR(out.attr[EVD_CE_ID], "id-1");
		CHECK_STR(out.attr[EVD_CE_SOURCE], "/my app");
		CHECK_STR(out.attr[EVD_CE_TYPE], "com.example.created.v1");
		CHECK_STR(out.attr[EVD_CE_SUBJECT], "sub");
		CHECK_STR(evd_ce_ext_get(&out, "foo"), "b\xc3\xa4r %20 \"q\"");
		if (r->want_ct)
			CHECK_STR(out.attr[EVD_CE_DATACONTENTTYPE], r->want_ct);
		else
			CHECK(out.attr[EVD_CE_DATACONTENTTYPE] == NULL);
		if (r->data) {
			const char *want = r->want_data ? r->want_data : r->data;
			size_t wl = r->want_data ? strlen(want) : ev.data_len;
			CHECK_INT(out.data_len, wl);
			CHECK(out.data && out.data_len == wl && memcmp(out.data, want, wl) == 0);
		} else {
			CHECK(out.data == NULL);
		}
next:
		evd_ce_free(&out);
		evd_buf_free(&headers);
		evd_buf_free(&body);
		evd_buf_free(&derr);
	}
}

static void test_display_format(void)
{
	static const struct {
		const char *name;
		const char *ct;
		const char *data;
		size_t data_len;
		const char *want;
	} rows[] = {
		{ "json", "application/json", "{\"b\":[1,{},[ ]],\"a\":12345678901234567890}", 0,
		  "cloudevents.Event (test)\n"
		  "Context Attributes,\n"
		  "  specversion: 1.0\n"
		  "  id: 42\n"
		  "  source: /src\n"
		  "  type: t.v1\n"
		  "  datacontenttype: application/json\n"
		  "Extensions,\n"
		  "  alpha: 1\n"
		  "  zulu: last\n"
		  "Data,\n"
		  "  {\n"
		  "    \"b\": [\n"
		  "      1,\n"
		  "      {},\n"
		  "      []\n"
		  "    ],\n"
		  "    \"a\": 12345678901234567890\n"
		  "  }\n" },
		{ "text", "text/plain", "line one\nline \"two\"", 0,
		  "cloudevents.Event (test)\n"
		  "Context Attributes,\n"
		  "  specversion: 1.0\n"
		  "  id: 42\n"
		  "  source: /src\n"
		  "  type: t.v1\n"
		  "  datacontenttype: text/plain\n"
		  "Extensions,\n"
		  "  alpha: 1\n"
		  "  zulu: last\n"
		  "Data,\n"
		  "  line one\n"
		  "  line \"two\"\n" },
		{ "bytes", "application/octet-stream", "\x00\x01\xff", 3,
		  "cloudevents.Event (test)\n"
		  "Context Attributes,\n"
		  "  specversion: 1.0\n"
		  "  id: 42\n"
		  "  source: /src\n"
		  "  type: t.v1\n"
		  "  datacontenttype: application/octet-stream\n"
		  "Extensions,\n"
		  "  alpha: 1\n"
		  "  zulu: last\n"
		  "Data,\n"
		  "  (3 bytes, base64) AAH/\n" },
		{ "json ct, not json", "application/json", "{oops", 0,
		  "cloudevents.Event (test)\n"
		  "Context Attributes,\n"
		  "  specversion: 1.0\n"
		  "  id: 42\n"
		  "  source: /src\n"
		  "  type: t.v1\n"
		  "  datacontenttype: application/json\n"
		  "Extensions,\n"
		  "  alpha: 1\n"
		  "  zulu: last\n"
		  "Data,\n"
		  "  {oops\n" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct evd_cloudevent ev = EVD_CE_INIT;
		struct evd_buf out = EVD_BUF_INIT, err = EVD_BUF_INIT;
		evd_ce_set(&ev, "specversion", "1.0", 3, &err);
		evd_ce_set(&ev, "id", "42", 2, &err);
		evd_ce_set(&ev, "source", "/src", 4, &err);
		evd_ce_set(&ev, "type", "t.v1", 4, &err);
		evd_ce_set(&ev, "datacontenttype", rows[i].ct, strlen(rows[i].ct), &err);
		evd_ce_set(&ev, "zulu", "last", 4, &err);
		evd_ce_set(&ev, "alpha", "1", 1, &err);
		evd_ce_set_data_copy(&ev, rows[i].data,
				     rows[i].data_len ? rows[i].data_len : strlen(rows[i].data));
		CHECK_INT(err.len, 0);
		evd_cli_display_format(&ev, "test", &out);
		if (!out.data || strcmp(out.data, rows[i].want) != 0)
			fprintf(stderr, "-- %s\n", rows[i].name);
		CHECK_STR(out.data, rows[i].want);
		evd_ce_free(&ev);
		evd_buf_free(&out);
		evd_buf_free(&err);
	}

	/* No data, no extensions: only the attributes. */
	struct evd_cloudevent ev = EVD_CE_INIT;
	struct evd_buf out = EVD_BUF_INIT;
	evd_ce_set(&ev, "specversion", "1.0", 3, NULL);
	evd_ce_set(&ev, "id", "1", 1, NULL);
	evd_ce_set(&ev, "source", "s", 1, NULL);
	evd_ce_set(&ev, "type", "t", 1, NULL);
	evd_cli_display_format(&ev, NULL, &out);
	CHECK_STR(out.data, "cloudevents.Event\nContext Attributes,\n  specversion: 1.0\n  id: 1\n"
			    "  source: s\n  type: t\n");
	evd_ce_free(&ev);
	evd_buf_free(&out);
}

static void test_status_times(void)
{
	static const struct {
		const char *text;
		int64_t ms;
	} times[] = {
		{ "1970-01-01T00:00:00Z", 0 },
		{ "2026-12-01T14:50:03Z", 1796136603000 },
		{ "2026-12-01T14:50:03.123Z", 1796136603123 },
		{ "2026-12-01T14:50:03.1Z", 1796136603100 },
		{ "2026-12-01T14:50:03.123456789Z", 1796136603123 },
		{ "2026-12-01T15:50:03+01:00", 1796136603000 },
		{ "2026-12-01T13:20:03.5-01:30", 1796136603500 },
		{ "2026-12-01T14:50:03", -1 },
		{ "2026-12-01 14:50:03Z", -1 },
		{ "2026-12-01T14:50:03.Z", -1 },
		{ "2026-12-01T14:50:03Zx", -1 },
		{ "", -1 },
		{ NULL, -1 },
	};
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++)
		CHECK_INT(evd_cli_parse_time(times[i].text), times[i].ms);

	static const struct {
		int64_t now, then;
		const char *age;
	} ages[] = {
		{ 10000, 10000, "0 s ago" },    { 10000, 5900, "4 s ago" },
		{ 10000, 12000, "0 s ago" },    /* clocks that disagree a little */
		{ 200000, 80001, "119 s ago" }, { 200000, 80000, "2 min ago" },
		{ 7200000, 1, "119 min ago" },  { 7300000, 0, "2 h ago" },
		{ 200000000, 0, "2 d ago" },    { 10000, -1, "-" },
	};
	for (size_t i = 0; i < sizeof(ages) / sizeof(ages[0]); i++) {
		char out[32];
		evd_cli_age(ages[i].now, ages[i].then, out, sizeof(out));
		CHECK_STR(out, ages[i].age);
	}
}

/* The whole text of `eventingd status` from fixed documents and a fixed clock. */
static void test_status_print(void)
{
	static const char backend[] =
		"{\"mode\":\"embedded\",\"nats\":{\"state\":\"ready\",\"url\":\"nats://127.0.0.1:4222\","
		"\"server\":{\"name\":\"n1\",\"version\":\"2.9.10\"},\"stream\":{\"name\":\"sap\","
		"\"storage\":\"file\",\"retention\":\"interest\",\"discard\":\"new\",\"messages\":5,"
		"\"bytes\":100,\"consumers\":3,\"max_bytes\":1000,"
		"\"refreshed_at\":\"2026-12-01T14:50:07.000Z\"},\"last_error\":null},"
		"\"publish\":{\"unrouted_total\":4}}";
	static const char subs[] =
		"{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":["
		/* Counters for both consumers, and the dispatcher's figures. */
		"{\"metadata\":{\"name\":\"orders\",\"namespace\":\"default\"},"
		"\"spec\":{\"sink\":\"http://127.0.0.1:1/\"},\"status\":{\"ready\":true,"
		"\"types\":[{},{}],\"backend\":{\"consumers\":["
		"{\"numPending\":2,\"numAckPending\":1},{\"numPending\":0,\"numAckPending\":0}],"
		"\"refreshedAt\":\"2026-12-01T14:50:06.400Z\"},\"lastError\":null,\"warnings\":[],"
		"\"delivery\":{\"delivered\":120,\"failed\":2,\"lastFailure\":\"2026-12-01T14:49:00Z\","
		"\"lastFailureReason\":\"HTTP 500\"}}},"
		/* A consumer without counters yet, no dispatcher: dashes. */
		"{\"metadata\":{\"name\":\"new-one\",\"namespace\":\"team\"},"
		"\"spec\":{\"sink\":\"http://127.0.0.1:2/x\"},\"status\":{\"ready\":false,"
		"\"types\":[{}],\"backend\":{\"consumers\":[{\"numPending\":4,\"numAckPending\":0},"
		"{\"exists\":false}],\"refreshedAt\":null},"
		"\"lastError\":\"creating or verifying consumers: 1 of 2 ready\","
		"\"warnings\":[\"w1\"]}}],"
		"\"directory\":\"/etc/eventingd/subscriptions.d\",\"directoryError\":null,"
		"\"summary\":{\"subscriptions\":2,\"ready\":1,\"files\":2,\"filesFailed\":0},"
		"\"files\":[],\"deleting\":[{\"consumer\":\"abc\",\"namespace\":\"default\","
		"\"name\":\"gone\",\"subject\":\"kyma.a.b.v1\",\"state\":\"deleting in 3 s\"}]}";
	cJSON *b = cJSON_Parse(backend), *s = cJSON_Parse(subs);
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	CHECK(b && s && out);
	evd_cli_status_print(out, b, s, evd_cli_parse_time("2026-12-01T14:50:10.500Z"));
	fclose(out);
	CHECK_STR(text,
		  "BACKEND\n"
		  "  mode        embedded\n"
		  "  state       ready\n"
		  "  url         nats://127.0.0.1:4222\n"
		  "  server      n1 (nats-server 2.9.10)\n"
		  "  stream      sap (file, interest retention, discard new)\n"
		  "  as of       3 s ago\n"
		  "  messages    5\n"
		  "  bytes       100 of 1000 (10.0%)\n"
		  "  consumers   3\n"
		  "  unrouted    4 events stored that no subscription wanted\n"
		  "\n"
		  "SUBSCRIPTIONS  /etc/eventingd/subscriptions.d: 2 active, 1 ready, 0 of 2 files failed\n"
		  "  NAMESPACE/NAME  READY  TYPES  PENDING  AS OF    DELIVERED  FAILED  SINK\n"
		  "  default/orders  yes        2        3  4 s ago        120       2  http://127.0.0.1:1/\n"
		  "      last delivery failure (70 s ago): HTTP 500\n"
		  "  team/new-one    no         1        -  -                -       -  http://127.0.0.1:2/x\n"
		  "      error: creating or verifying consumers: 1 of 2 ready\n"
		  "      warning: w1\n"
		  "  consumer abc of default/gone (kyma.a.b.v1): deleting in 3 s\n");
	free(text);
	cJSON_Delete(b);
	cJSON_Delete(s);
}

int main(void)
{
	test_url_from_listen();
	test_json_value();
	test_extension_names();
	test_publish_build();
	test_display_format();
	test_status_times();
	test_status_print();
	UNIT_MAIN_END();
}
