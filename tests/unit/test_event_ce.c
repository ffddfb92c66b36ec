/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CloudEvents decoding, validation and the NATS encoding (src/event/event_ce.h), table by table.
 */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>

#include "event/event_ce.h"
#include "util/util_buf.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_percent(void)
{
	static const struct {
		const char *in, *want;
	} enc[] = {
		{ "Euro € 😀", "Euro%20%E2%82%AC%20%F0%9F%98%80" }, /* the binding's own example */
		{ "plain-ASCII_~!", "plain-ASCII_~!" },
		{ "a\"b%c", "a%22b%25c" },
		{ "line\r\nbreak\x7f", "line%0D%0Abreak%7F" },
		{ "", "" },
	};
	for (size_t i = 0; i < N(enc); i++) {
		char out[128];
		size_t n = evd_ce_percent_encode(enc[i].in, strlen(enc[i].in), out);
		CHECK_STR(out, enc[i].want);
		CHECK_INT(n, strlen(enc[i].want));
		CHECK_INT(evd_ce_percent_encoded_len(enc[i].in, strlen(enc[i].in)), strlen(enc[i].want));
		/* and back */
		char back[128];
		size_t bl = 0;
		const char *why = NULL;
		CHECK_INT(evd_ce_percent_decode(out, n, back, &bl, &why), 0);
		CHECK_STR(back, enc[i].in);
	}

	static const struct {
		const char *in, *want; /* want NULL: refused */
	} dec[] = {
		{ "Euro%20%e2%82%ac", "Euro €" },           /* lower-case hex accepted */
		{ "%41%42C", "ABC" },                       /* unnecessary encoding accepted */
		{ "\"quoted value\"", "quoted value" },     /* RFC 7230 quoted-string */
		{ "\"a \\\"b\\\" c\"", "a \"b\" c" },       /* backslash escapes inside quotes */
		{ "x\"%20\"y", "x y" },                     /* percent-decoding after unquoting */
		{ "100%", NULL },                            /* truncated escape */
		{ "%4", NULL },
		{ "%zz", NULL },
		{ "%C0%A0", NULL },                          /* overlong U+0020, the spec's example */
		{ "%ED%A0%80", NULL },                       /* a surrogate */
		{ "%FF", NULL },
		{ "%E2%82", NULL },                          /* truncated sequence */
		{ "\"open", NULL },
		{ "Ä", "Ä" },                               /* raw UTF-8 passes if valid */
	};
	for (size_t i = 0; i < N(dec); i++) {
		char out[128];
		size_t n = 0;
		const char *why = NULL;
		int rc = evd_ce_percent_decode(dec[i].in, strlen(dec[i].in), out, &n, &why);
		if (dec[i].want) {
			CHECK_INT(rc, 0);
			CHECK_STR(out, dec[i].want);
			CHECK_INT(n, strlen(dec[i].want));
		} else {
			CHECK_INT(rc, -EINVAL);
			CHECK(why != NULL);
		}
	}
}

static void test_mode(void)
{
	static const struct {
		const char *ct;
		enum evd_ce_mode want;
	} rows[] = {
		{ "application/cloudevents+json", EVD_CE_MODE_STRUCTURED },
		{ "Application/CloudEvents+JSON; charset=UTF-8", EVD_CE_MODE_STRUCTURED },
		{ "application/cloudevents-batch+json", EVD_CE_MODE_BATCH },
		{ " application/cloudevents-batch+json ;charset=utf-8", EVD_CE_MODE_BATCH },
		{ "application/cloudevents+xml", EVD_CE_MODE_UNSUPPORTED },
		{ "application/cloudevents-batch+avro", EVD_CE_MODE_UNSUPPORTED },
		{ "application/cloudevents", EVD_CE_MODE_UNSUPPORTED },
		{ "application/json", EVD_CE_MODE_BINARY },
		{ "text/plain", EVD_CE_MODE_BINARY },
		{ "", EVD_CE_MODE_BINARY },
	};
	for (size_t i = 0; i < N(rows); i++)
		CHECK_INT(evd_ce_detect_mode(rows[i].ct, strlen(rows[i].ct)), rows[i].want);
	CHECK_INT(evd_ce_detect_mode(NULL, 0), EVD_CE_MODE_BINARY);

	static const struct {
		const char *ct;
		bool json;
	} js[] = {
		{ "application/json", true },      { "text/json", true },
		{ "application/json; charset=utf-8", true }, { "application/vnd.foo+json", true },
		{ "APPLICATION/JSON", true },      { "text/plain", false },
		{ "application/jsonx", false },    { "application/+json", false },
		{ "json", false },                 { "application/xml", false },
	};
	for (size_t i = 0; i < N(js); i++)
		CHECK_INT(evd_ce_media_type_is_json(js[i].ct, strlen(js[i].ct)), js[i].json);
}

#define MIN_ATTRS "\"specversion\":\"1.0\",\"id\":\"i1\",\"source\":\"/s\",\"type\":\"t.v1\""

/* Decodes json; returns rc, and err text in *errout (static buffer). */
static int decode(const char *json, struct evd_cloudevent *ev, const char **errout)
{
	static char last[512];
	struct evd_buf err = EVD_BUF_INIT;
	int rc = evd_ce_decode_structured(json, strlen(json), ev, &err);
	snprintf(last, sizeof(last), "%s", err.data ? err.data : "");
	evd_buf_free(&err);
	*errout = last;
	return rc;
}

static void test_structured(void)
{
	struct evd_cloudevent ev;
	const char *err;

	/* data kept byte-exact: big integers, spacing, escapes */
	const char *j1 = "{" MIN_ATTRS ",\"data\" : {\"n\": 12345678901234567890, \"s\":\"\\u00e4\"} }";
	CHECK_INT(decode(j1, &ev, &err), 0);
	CHECK(ev.data_len == strlen("{\"n\": 12345678901234567890, \"s\":\"\\u00e4\"}"));
	CHECK(ev.data && memcmp(ev.data, "{\"n\": 12345678901234567890, \"s\":\"\\u00e4\"}", ev.data_len) == 0);
	CHECK(ev.data > j1 && ev.data < j1 + strlen(j1)); /* zero copy */
	CHECK_STR(ev.attr[EVD_CE_DATACONTENTTYPE], "application/json"); /* implied, made explicit */
	CHECK_STR(ev.attr[EVD_CE_ID], "i1");
	CHECK_STR(ev.attr[EVD_CE_SOURCE], "/s");
	evd_ce_free(&ev);

	/* a JSON string under a JSON type stays JSON text (with its quotes) */
	CHECK_INT(decode("{" MIN_ATTRS ",\"data\":\"I'm just a string\"}", &ev, &err), 0);
	CHECK(ev.data_len == 19 && memcmp(ev.data, "\"I'm just a string\"", 19) == 0);
	evd_ce_free(&ev);

	/* non-JSON type: the decoded string */
	CHECK_INT(decode("{" MIN_ATTRS ",\"datacontenttype\":\"application/xml\","
			 "\"data\":\"<much wow=\\\"xml\\\"/>\"}", &ev, &err), 0);
	CHECK(ev.data_len == 17 && memcmp(ev.data, "<much wow=\"xml\"/>", 17) == 0);
	CHECK_STR(ev.attr[EVD_CE_DATACONTENTTYPE], "application/xml");
	evd_ce_free(&ev);

	/* data_base64 */
	CHECK_INT(decode("{" MIN_ATTRS ",\"datacontenttype\":\"application/octet-stream\","
			 "\"data_base64\":\"AAEC/w==\"}", &ev, &err), 0);
	CHECK(ev.data_len == 4 && memcmp(ev.data, "\x00\x01\x02\xff", 4) == 0);
	evd_ce_free(&ev);
	CHECK_INT(decode("{" MIN_ATTRS ",\"data_base64\":\"\"}", &ev, &err), 0);
	CHECK(ev.data_len == 0);
	evd_ce_free(&ev);
	CHECK_INT(decode("{" MIN_ATTRS ",\"data_base64\":\"TWE\"}", &ev, &err), -EINVAL);
	CHECK_STR(err, "data_base64: not valid base64 (RFC 4648)");
	CHECK_INT(decode("{" MIN_ATTRS ",\"data_base64\":\"T=WE\"}", &ev, &err), -EINVAL);
	CHECK_INT(decode("{" MIN_ATTRS ",\"data_base64\":\"TW E\"}", &ev, &err), -EINVAL);

	/* no data; data null = no data */
	CHECK_INT(decode("{" MIN_ATTRS ",\"data\":null}", &ev, &err), 0);
	CHECK(ev.data == NULL && ev.attr[EVD_CE_DATACONTENTTYPE] == NULL);
	evd_ce_free(&ev);

	/* extensions: canonical strings, escapes decoded */
	CHECK_INT(decode("{" MIN_ATTRS ",\"extint\":-10,\"extzero\":-0,\"extbool\":false,\"exttrue\":true,"
			 "\"extstr\":\"a\\u00e4\\ud83d\\ude00\",\"extnull\":null,"
			 "\"averyveryverylongextensionname\":\"x\",\"max\":2147483647,\"min\":-2147483648}",
			 &ev, &err), 0);
	CHECK_INT(ev.n_ext, 8);
	CHECK_STR(evd_ce_ext_get(&ev, "extint"), "-10");
	CHECK_STR(evd_ce_ext_get(&ev, "extzero"), "0");
	CHECK_STR(evd_ce_ext_get(&ev, "extbool"), "false");
	CHECK_STR(evd_ce_ext_get(&ev, "exttrue"), "true");
	CHECK_STR(evd_ce_ext_get(&ev, "extstr"), "aä😀");
	CHECK(evd_ce_ext_get(&ev, "extnull") == NULL);
	CHECK_STR(evd_ce_ext_get(&ev, "averyveryverylongextensionname"), "x");
	CHECK_STR(evd_ce_ext_get(&ev, "max"), "2147483647");
	CHECK_STR(evd_ce_ext_get(&ev, "min"), "-2147483648");
	evd_ce_free(&ev);

	/* refusals, with their reasons */
	static const struct {
		const char *json, *err;
	} bad[] = {
		{ "{\"id\":\"i\",\"source\":\"/s\",\"type\":\"t\"}", "specversion: MUST be a non-empty string" },
		{ "{\"specversion\":\"1.0\",\"id\":\"i\",\"source\":\"/s\",\"type\":\"\"}",
		  "type: MUST be a non-empty string" },
		{ "{\"specversion\":\"0.3\",\"id\":\"i\",\"source\":\"/s\",\"type\":\"t\"}",
		  "specversion: unsupported version \"0.3\" (only 1.0 is supported)" },
		{ "{\"specversion\":\"1.0\",\"id\":\"  \",\"source\":\"/s\",\"type\":\"t\"}",
		  "id: MUST be a non-empty string" },
		{ "{\"specversion\":\"1.0\",\"id\":\"i\",\"type\":\"t\"}", "source: REQUIRED" },
		{ "{\"specversion\":\"1.0\",\"id\":\"i\",\"source\":\"a@@p##p%%\",\"type\":\"t\"}",
		  "source: invalid URL escape" },
		{ "{" MIN_ATTRS ",\"id\":\"again\"}", "id: duplicate member in the JSON object" },
		{ "{" MIN_ATTRS ",\"ext\":1,\"e\\u0078t\":2}", "ext: duplicate member in the JSON object" },
		{ "{" MIN_ATTRS ",\"data\":1,\"data_base64\":\"AA==\"}",
		  "data, data_base64: MUST NOT both be present" },
		{ "{" MIN_ATTRS ",\"ext\":1.5}",
		  "ext: MUST be an Integer (a whole number from -2147483648 to 2147483647)" },
		{ "{" MIN_ATTRS ",\"ext\":2147483648}",
		  "ext: MUST be an Integer (a whole number from -2147483648 to 2147483647)" },
		{ "{" MIN_ATTRS ",\"ext\":1e3}",
		  "ext: MUST be an Integer (a whole number from -2147483648 to 2147483647)" },
		{ "{" MIN_ATTRS ",\"ext\":{\"a\":1}}", "ext: MUST be a string, integer or boolean, not object" },
		{ "{" MIN_ATTRS ",\"Ext\":\"x\"}",
		  "Ext: invalid attribute name (must be lower-case letters a-z and digits 0-9)" },
		{ "{" MIN_ATTRS ",\"ext\":\"a\\u0000b\"}", "ext: MUST NOT contain control characters" },
		{ "{" MIN_ATTRS ",\"ext\":\"\\udead\"}", "ext: unpaired UTF-16 surrogate in \\u escape" },
		{ "{" MIN_ATTRS ",\"subject\":\"\"}", "subject: if present, MUST be a non-empty string" },
		{ "{\"specversion\":\"1.0\",\"id\":25,\"source\":\"/s\",\"type\":\"t\"}",
		  "id: MUST be a JSON string, not number" },
		{ "{" MIN_ATTRS ",\"time\":\"2018-04-05T18:31Z\"}",
		  "time: if present, MUST adhere to the format specified in RFC 3339" },
		{ "{" MIN_ATTRS "", "invalid JSON: unexpected end of JSON" },
		{ "{" MIN_ATTRS "} x", "invalid JSON: data after the event object" },
		{ "[]", "not a JSON object" },
		{ "{" MIN_ATTRS ",\"data\":[1,]}", "invalid JSON: expected a value" },
		{ "{" MIN_ATTRS ",\"data\":01}", "invalid JSON: expected ',' or '}'" },
		{ "{" MIN_ATTRS ",\"data\":\"a\tb\"}", "invalid JSON: control character in string" },
		{ "{" MIN_ATTRS ",\"data\":\"\xc3\"}", "invalid JSON: invalid UTF-8 in string" },
		{ "{" MIN_ATTRS ",\"data\":tru}", "invalid JSON: invalid literal" },
	};
	for (size_t i = 0; i < N(bad); i++) {
		int rc = decode(bad[i].json, &ev, &err);
		CHECK_INT(rc, -EINVAL);
		CHECK_STR(err, bad[i].err);
		CHECK(ev.arena.head == NULL); /* freed on failure */
	}

	/* 64 extensions fine, 65 refused */
	struct evd_buf j = EVD_BUF_INIT;
	evd_buf_append_str(&j, "{" MIN_ATTRS);
	for (int i = 0; i < 64; i++)
		evd_buf_printf(&j, ",\"x%d\":%d", i, i);
	evd_buf_append_str(&j, "}");
	CHECK_INT(decode(j.data, &ev, &err), 0);
	CHECK_INT(ev.n_ext, 64);
	evd_ce_free(&ev);
	j.len--;
	evd_buf_append_str(&j, ",\"x64\":1}");
	CHECK_INT(decode(j.data, &ev, &err), -EINVAL);
	CHECK_STR(err, "x64: too many extension attributes (at most 64)");
	evd_buf_free(&j);

	/* deep nesting is refused, not a stack overflow */
	evd_buf_append_str(&j, "{" MIN_ATTRS ",\"data\":");
	for (int i = 0; i < 10000; i++)
		evd_buf_append_char(&j, '[');
	for (int i = 0; i < 10000; i++)
		evd_buf_append_char(&j, ']');
	evd_buf_append_str(&j, "}");
	CHECK_INT(decode(j.data, &ev, &err), -EINVAL);
	CHECK_STR(err, "invalid JSON: JSON nested too deeply");
	evd_buf_free(&j);
}

static void test_validate_table(void)
{
	static const struct {
		const char *attr, *value;
		bool ok;
	} rows[] = {
		{ "time", "2018-04-05T17:31:00Z", true },
		{ "time", "2018-04-05t17:31:00.123456789z", true },
		{ "time", "2018-04-05T18:31:00+01:00", true },
		{ "time", "2016-12-31T23:59:60Z", true },
		{ "time", "2020-02-29T00:00:00Z", true },
		{ "time", "2019-02-29T00:00:00Z", false },
		{ "time", "2018-04-05T18:31:00+25:00", false },
		{ "time", "2018-04-05T18:31:00+05", false },
		{ "time", "2018-04-05T18:31:00X", false },
		{ "time", "2018-04-05T18:31:00.Z", false },
		{ "time", "2018-04-05 18:31:00Z", false },
		{ "time", "lunchtime", false },
		{ "datacontenttype", "text/plain", true },
		{ "datacontenttype", "application/json; charset=utf-8", true },
		{ "datacontenttype", "multipart/mixed; boundary=\"a b;c\"", true },
		{ "datacontenttype", "xyz", false },
		{ "datacontenttype", "", false },
		{ "datacontenttype", "text/", false },
		{ "datacontenttype", "text/plain; charset", false },
		{ "datacontenttype", "te xt/plain", false },
		{ "dataschema", "https://cloudevents.io/dataschema", true },
		{ "dataschema", "urn:x", true },
		{ "dataschema", "/relative", false },
		{ "dataschema", "", false },
		{ "source", "#fragment", true },
		{ "source", "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", true },
		{ "source", "1-555-123-4567", true },
		{ "source", "mailto:cncf-wg-serverless@lists.cncf.io", true },
		{ "source", "//authority/path", true },
		{ "source", ":nope", false },
		{ "source", "a:b:c%", false },
		{ "source", "1a:b", false },
		{ "subject", "tests", true },
		{ "subject", "tab\there", false },
		{ "subject", "c1\xc2\x85", false }, /* U+0085 */
		{ "subject", "\xef\xbf\xbe", false }, /* U+FFFE */
		{ "subject", "\xef\xb7\x90", false }, /* U+FDD0 */
	};
	for (size_t i = 0; i < N(rows); i++) {
		struct evd_cloudevent ev;
		evd_ce_init(&ev);
		evd_ce_set(&ev, "specversion", "1.0", 3, NULL);
		evd_ce_set(&ev, "id", "x", 1, NULL);
		evd_ce_set(&ev, "source", "/s", 2, NULL);
		evd_ce_set(&ev, "type", "t", 1, NULL);
		CHECK_INT(evd_ce_set(&ev, rows[i].attr, rows[i].value, strlen(rows[i].value), NULL), 0);
		int rc = evd_ce_validate(&ev, NULL);
		if ((rc == 0) != rows[i].ok)
			fprintf(stderr, "row %zu: %s=%s\n", i, rows[i].attr, rows[i].value);
		CHECK_INT(rc, rows[i].ok ? 0 : -EINVAL);
		evd_ce_free(&ev);
	}
	struct evd_cloudevent ev;
	evd_ce_init(&ev);
	CHECK_INT(evd_ce_set(&ev, "data", "x", 1, NULL), -EINVAL);
	CHECK_INT(evd_ce_set(&ev, "My", "x", 1, NULL), -EINVAL);
	evd_ce_free(&ev);
}

static void test_batch(void)
{
	struct evd_cloudevent *evs;
	size_t n;
	struct evd_buf err = EVD_BUF_INIT;

	CHECK_INT(evd_ce_decode_batch(" [ ] ", 5, 0, &evs, &n, &err), 0);
	CHECK(evs == NULL && n == 0);

	const char *ok = "[{" MIN_ATTRS ",\"data\":1},{" MIN_ATTRS "},{" MIN_ATTRS ",\"data\":\"x\"}]";
	CHECK_INT(evd_ce_decode_batch(ok, strlen(ok), 0, &evs, &n, &err), 0);
	CHECK_INT(n, 3);
	if (n == 3) {
		CHECK(evs[0].data_len == 1 && evs[0].data[0] == '1');
		CHECK(evs[1].data == NULL);
		CHECK(evs[2].data_len == 3);
	}
	evd_ce_free_batch(evs, n);
	CHECK_INT(evd_ce_decode_batch(ok, strlen(ok), 2, &evs, &n, &err), -EINVAL);
	CHECK_STR(err.data, "batch has more than 2 events");
	evd_buf_reset(&err);

	static const struct {
		const char *json, *err;
	} bad[] = {
		{ "[{" MIN_ATTRS "},{" MIN_ATTRS "},{\"specversion\":\"1.0\",\"source\":\"/s\",\"type\":\"t\"}]",
		  "event 2: id: MUST be a non-empty string" },
		{ "[\"not an object\",{" MIN_ATTRS "}]", "event 0: MUST be a JSON object, not string" },
		{ "{" MIN_ATTRS "}", "a batch MUST be a JSON array of events" },
		{ "[{" MIN_ATTRS "}", "invalid JSON: unexpected end of JSON" },
		{ "[{" MIN_ATTRS "} {}]", "invalid JSON: expected ',' or ']' in the batch" },
		{ "[{" MIN_ATTRS "}] x", "invalid JSON: data after the batch array" },
	};
	for (size_t i = 0; i < N(bad); i++) {
		evd_buf_reset(&err);
		CHECK_INT(evd_ce_decode_batch(bad[i].json, strlen(bad[i].json), 0, &evs, &n, &err), -EINVAL);
		CHECK_STR(err.data, bad[i].err);
		CHECK(evs == NULL && n == 0);
	}
	evd_buf_free(&err);
}

#define H(n, v) { n, sizeof(n) - 1, v, sizeof(v) - 1 }

static void test_binary(void)
{
	struct evd_cloudevent ev;
	struct evd_buf err = EVD_BUF_INIT;
	const struct evd_header h1[] = {
		H("Host", "x"),
		H("CE-SpecVersion", "1.0"),
		H("ce-id", "A%20B"),
		H("Ce-Source", "\"/my source\""),
		H("ce-type", "order.created.v1"),
		H("ce-MyExt", "Euro%20%E2%82%AC"),
		H("Content-Type", "application/json; charset=utf-8"),
	};
	const char body[] = "{\"a\":1}";
	CHECK_INT(evd_ce_decode_binary(h1, N(h1), body, 7, &ev, &err), 0);
	CHECK_STR(ev.attr[EVD_CE_ID], "A B");
	CHECK_STR(ev.attr[EVD_CE_SOURCE], "/my source");
	CHECK_STR(ev.attr[EVD_CE_DATACONTENTTYPE], "application/json; charset=utf-8");
	CHECK_STR(evd_ce_ext_get(&ev, "myext"), "Euro €");
	CHECK(ev.data == body && ev.data_len == 7);
	evd_ce_free(&ev);

	/* empty body: no data */
	CHECK_INT(evd_ce_decode_binary(h1, N(h1), "", 0, &ev, &err), 0);
	CHECK(ev.data == NULL);
	evd_ce_free(&ev);

	/* no ce-specversion: not a CloudEvent at all */
	const struct evd_header h2[] = { H("Content-Type", "application/json"), H("ce-id", "1") };
	CHECK_INT(evd_ce_decode_binary(h2, N(h2), "{}", 2, &ev, &err), -ENOMSG);
	CHECK_STR(err.data, "not a CloudEvent: no ce-specversion header, and the Content-Type is not "
			    "application/cloudevents+json");
	CHECK(ev.arena.head == NULL);

	static const struct {
		struct evd_header extra;
		const char *err;
	} bad[] = {
		{ H("ce-id", "2"), "ce-id: header given more than once" },
		{ H("ce-ext", "%C0%A0"), "ce-ext: not valid UTF-8 after percent-decoding" },
		{ H("ce-ext", "50%"), "ce-ext: malformed percent-encoding" },
		{ H("ce-ext", "a%0Ab"), "ext: MUST NOT contain control characters" },
		{ H("ce-my.ext", "x"), "ce-my.ext: invalid attribute name (must be lower-case letters a-z "
				       "and digits 0-9, not \"data\")" },
		{ H("ce-data", "x"), "ce-data: invalid attribute name (must be lower-case letters a-z and "
				     "digits 0-9, not \"data\")" },
		{ H("ce-datacontenttype", "text/plain"),
		  "ce-datacontenttype: MUST NOT be present together with Content-Type in binary mode" },
		{ H("ce-time", "yesterday"), "time: if present, MUST adhere to the format specified in RFC 3339" },
	};
	for (size_t i = 0; i < N(bad); i++) {
		struct evd_header hs[] = {
			H("ce-specversion", "1.0"), H("ce-id", "1"), H("ce-source", "/s"), H("ce-type", "t"),
			H("content-type", "application/json"), bad[i].extra,
		};
		evd_buf_reset(&err);
		CHECK_INT(evd_ce_decode_binary(hs, N(hs), NULL, 0, &ev, &err), -EINVAL);
		CHECK_STR(err.data, bad[i].err);
	}

	/* ce-datacontenttype alone is accepted (no Content-Type) */
	const struct evd_header h3[] = {
		H("ce-specversion", "1.0"), H("ce-id", "1"), H("ce-source", "/s"), H("ce-type", "t"),
		H("ce-datacontenttype", "text/plain"),
	};
	CHECK_INT(evd_ce_decode_binary(h3, N(h3), "x", 1, &ev, &err), 0);
	CHECK_STR(ev.attr[EVD_CE_DATACONTENTTYPE], "text/plain");
	evd_ce_free(&ev);
	evd_buf_free(&err);
}

static bool same_event(const struct evd_cloudevent *a, const struct evd_cloudevent *b)
{
	for (int i = 0; i < EVD_CE_NATTRS; i++) {
		if (!a->attr[i] != !b->attr[i])
			return false;
		if (a->attr[i] && (a->attr_len[i] != b->attr_len[i] ||
				   memcmp(a->attr[i], b->attr[i], a->attr_len[i]) != 0))
			return false;
	}
	if (a->n_ext != b->n_ext)
		return false;
	for (unsigned i = 0; i < a->n_ext; i++) {
		const char *v = evd_ce_ext_get(b, a->ext[i].name);
		if (!v || strcmp(v, a->ext[i].value) != 0)
			return false;
	}
	return a->data_len == b->data_len && (!a->data_len || memcmp(a->data, b->data, a->data_len) == 0);
}

static void test_nats(void)
{
	struct evd_cloudevent ev, back;
	struct evd_buf err = EVD_BUF_INIT;
	const char *json = "{\"specversion\":\"1.0\",\"id\":\"minimal\",\"source\":\"https://cloudevents.io\","
			   "\"type\":\"t\",\"subject\":\"line\\r\\nbreak? no: a \\\"quote\\\" and €\","
			   "\"ext\":\"100% sure\",\"num\":7,\"data\":{\"x\":1}}";
	CHECK_INT(evd_ce_decode_structured(json, strlen(json), &ev, &err), -EINVAL); /* CR LF refused */
	evd_buf_reset(&err);
	json = "{\"specversion\":\"1.0\",\"id\":\"minimal\",\"source\":\"https://cloudevents.io\","
	       "\"type\":\"t\",\"subject\":\"a \\\"quote\\\" and €\","
	       "\"ext\":\"100% sure\",\"num\":7,\"data\":{\"x\":1}}";
	CHECK_INT(evd_ce_decode_structured(json, strlen(json), &ev, &err), 0);

	struct evd_ce_nats_headers h;
	evd_ce_to_nats_headers(&ev, &h);
	CHECK_INT(h.n, 6 + 2 + 1); /* 6 attributes, 2 extensions, Nats-Msg-Id */
	bool seen_ct = false, seen_id = false;
	for (size_t i = 0; i < h.n; i++) {
		for (const char *c = h.value[i]; *c; c++)
			CHECK(*c > 0x20 && *c < 0x7f && *c != '"');
		if (strcmp(h.key[i], "ce-datacontenttype") == 0) {
			seen_ct = true;
			CHECK_STR(h.value[i], "application/json");
		}
		if (strcmp(h.key[i], "ce-subject") == 0)
			CHECK_STR(h.value[i], "a%20%22quote%22%20and%20%E2%82%AC");
		if (strcmp(h.key[i], "ce-ext") == 0)
			CHECK_STR(h.value[i], "100%25%20sure");
		if (strcmp(h.key[i], "Nats-Msg-Id") == 0) {
			seen_id = true;
			CHECK_STR(h.value[i], "3cfbb162df17385e2f77211edcb38280");
		}
	}
	CHECK(seen_ct && seen_id);

	/* back, with keys in another case as another client might write them */
	const char *keys[64], *vals[64];
	for (size_t i = 0; i < h.n; i++) {
		keys[i] = h.key[i];
		vals[i] = h.value[i];
	}
	keys[0] = "CE-SPECVERSION";
	CHECK_INT(evd_ce_decode_nats(keys, vals, h.n, ev.data, ev.data_len, &back, &err), 0);
	CHECK(same_event(&ev, &back));
	evd_ce_free(&back);

	/* not a CloudEvent */
	const char *k2[] = { "Nats-Msg-Id" }, *v2[] = { "x" };
	CHECK_INT(evd_ce_decode_nats(k2, v2, 1, "", 0, &back, &err), -ENOMSG);

	/* structured mode in NATS (Content-Type application/cloudevents+json) */
	const char *k3[] = { "Content-Type" }, *v3[] = { "application/cloudevents+json" };
	CHECK_INT(evd_ce_decode_nats(k3, v3, 1, json, strlen(json), &back, &err), 0);
	CHECK(same_event(&ev, &back));
	evd_ce_free(&back);
	evd_ce_free(&ev);

	char id[33];
	evd_ce_nats_msg_id("https://cloudevents.io", 22, "minimal", 7, id);
	CHECK_STR(id, "3cfbb162df17385e2f77211edcb38280");
	evd_buf_free(&err);
}

/*
 * Robustness: every prefix and many single-byte mutations of rich inputs go through the decoders
 * from exactly-sized heap copies, so ASan sees any read past the end. Nothing may crash or leak;
 * every result is either a valid event or a refusal with a reason.
 */
static void test_robustness(void)
{
	static const char *inputs[] = {
		"{\"specversion\":\"1.0\",\"id\":\"i\\u00e4\\ud83d\\ude00\",\"source\":\"/s\",\"type\":\"t\","
		"\"time\":\"2018-04-05T17:31:00.5+01:00\",\"ext\":-12,\"b\":true,\"n\":null,"
		"\"datacontenttype\":\"text/plain; charset=\\\"utf-8\\\"\",\"data\":\"x\\n\"}",
		"[{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
		"\"data\":{\"a\":[1,2.5e-3,{\"b\":null}],\"c\":\"\\\"\"}},"
		"{\"specversion\":\"1.0\",\"id\":\"2\",\"source\":\"/s\",\"type\":\"t\",\"data_base64\":\"AAE=\"}]",
	};
	unsigned seed = 12345;
	for (size_t k = 0; k < N(inputs); k++) {
		size_t len = strlen(inputs[k]);
		for (size_t cut = 0; cut <= len; cut++) {
			for (int m = 0; m < 4; m++) {
				char *copy = malloc(cut ? cut : 1);
				memcpy(copy, inputs[k], cut);
				if (m && cut) {
					seed = seed * 1103515245 + 12345;
					copy[(seed >> 8) % cut] = (char)(seed >> 16);
				}
				struct evd_buf err = EVD_BUF_INIT;
				struct evd_cloudevent ev, *evs;
				size_t n;
				int rc = evd_ce_decode_structured(copy, cut, &ev, &err);
				CHECK(rc == 0 || (rc == -EINVAL && err.len > 0));
				if (rc == 0)
					evd_ce_free(&ev);
				evd_buf_reset(&err);
				rc = evd_ce_decode_batch(copy, cut, 0, &evs, &n, &err);
				CHECK(rc == 0 || (rc == -EINVAL && err.len > 0));
				if (rc == 0)
					evd_ce_free_batch(evs, n);
				char out[512];
				size_t ol;
				const char *why;
				if (cut < 500)
					(void)evd_ce_percent_decode(copy, cut, out, &ol, &why);
				evd_buf_free(&err);
				free(copy);
			}
		}
	}
	/* the full first input decodes */
	struct evd_cloudevent ev;
	CHECK_INT(evd_ce_decode_structured(inputs[0], strlen(inputs[0]), &ev, NULL), 0);
	CHECK_STR(ev.attr[EVD_CE_ID], "iä😀");
	CHECK(ev.data_len == 2 && memcmp(ev.data, "x\n", 2) == 0);
	evd_ce_free(&ev);
}

int main(void)
{
	test_robustness();
	test_percent();
	test_mode();
	test_structured();
	test_validate_table();
	test_batch();
	test_binary();
	test_nats();
	UNIT_MAIN_END();
}
