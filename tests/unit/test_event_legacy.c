/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kyma's legacy event API (reference/kyma-eventing.md §2): every validation row of §2.2 with its
 * exact status and body bytes, the §2.3 conversion example, and the response bodies.
 */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>

#include "event/event_legacy.h"
#include "event/event_type.h"
#include "util/util_buf.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

#define GOOD_ID "31109198-4d69-4ae0-972d-76117f3748c8"
#define BAD_PAYLOAD(more)                                                                    \
	"{\"status\":400,\"type\":\"bad_payload_syntax\",\"message\":\"Bad payload syntax\"," \
	"\"moreInfo\":\"" more "\"}\n"
#define MISSING(f)                                                                           \
	"{\"status\":400,\"type\":\"validation_violation\",\"message\":\"Missing field\","   \
	"\"details\":[{\"field\":\"" f "\",\"type\":\"missing_field\",\"message\":\"Missing field\"}]}\n"
#define INVALID(f)                                                                           \
	"{\"status\":400,\"type\":\"validation_violation\",\"message\":\"Invalid field\","   \
	"\"details\":[{\"field\":\"" f "\",\"type\":\"invalid_field\",\"message\":\"Invalid field\"}]}\n"

static void test_rows(void)
{
	static const struct {
		const char *body, *want; /* want NULL: accepted */
	} rows[] = {
		/* row 1 */
		{ "", BAD_PAYLOAD("Bad payload syntax") },
		/* row 2: decoder errors */
		{ "   ", BAD_PAYLOAD("EOF") },
		{ "x", BAD_PAYLOAD("invalid character 'x' looking for beginning of value") },
		{ "{\"event-type\":\"a\"", BAD_PAYLOAD("unexpected EOF") },
		{ "[1]", BAD_PAYLOAD("json: cannot unmarshal array into Go value of type api.PublishRequestV1") },
		{ "\"s\"", BAD_PAYLOAD("json: cannot unmarshal string into Go value of type api.PublishRequestV1") },
		{ "{\"event-type\":1,\"data\":{}}",
		  BAD_PAYLOAD("json: cannot unmarshal number into Go struct field PublishRequestV1.event-type "
			      "of type string") },
		{ "{\"event-time\":true}",
		  BAD_PAYLOAD("json: cannot unmarshal bool into Go struct field PublishRequestV1.event-time "
			      "of type string") },
		/* row 3 */
		{ "{}", MISSING("event-type") },
		{ "null", MISSING("event-type") },
		{ "{\"event-type\":null,\"event-type-version\":\"v1\"}", MISSING("event-type") },
		/* row 4 */
		{ "{\"event-type\":\"order.created\"}", MISSING("event-type-version") },
		/* row 5: the regexp is unanchored */
		{ "{\"event-type\":\"order.created\",\"event-type-version\":\"--\"}", INVALID("event-type-version") },
		/* row 6 */
		{ "{\"event-type\":\"order.created\",\"event-type-version\":\"-v1-\"}", MISSING("event-time") },
		/* row 7 */
		{ "{\"event-type\":\"order.created\",\"event-type-version\":\"v1\",\"event-time\":\"now\"}",
		  INVALID("event-time") },
		{ "{\"event-type\":\"o\",\"event-type-version\":\"v1\",\"event-time\":\"2020-09-28t14:47:16Z\"}",
		  INVALID("event-time") },
		/* row 8 */
		{ "{\"event-type\":\"o\",\"event-type-version\":\"v1\",\"event-time\":\"2020-09-28T14:47:16.491Z\","
		  "\"event-id\":\"not-a-uuid\"}",
		  INVALID("event-id") },
		/* row 9 */
		{ "{\"event-type\":\"o\",\"event-type-version\":\"v1\",\"event-time\":\"2020-09-28T14:47:16Z\"}",
		  MISSING("data") },
		{ "{\"event-type\":\"o\",\"event-type-version\":\"v1\",\"event-time\":\"2020-09-28T14:47:16Z\","
		  "\"data\":null}",
		  MISSING("data") },
		{ "{\"event-type\":\"o\",\"event-type-version\":\"v1\",\"event-time\":\"2020-09-28T14:47:16Z\","
		  "\"data\":\"\"}",
		  MISSING("data") },
		/* accepted: case-insensitive names, unknown members, trailing bytes ignored */
		{ "{\"Event-Type\":\"o\",\"event-type-version\":\"v1\",\"event-time\":\"2020-09-28T14:47:16+02:00\","
		  "\"unknown\":[1],\"data\":0} trailing",
		  NULL },
		{ "{\"event-type\":\"o\",\"event-type-version\":\"v1\",\"event-time\":\"2020-09-28T14:47:16Z\","
		  "\"event-id\":\"" GOOD_ID "\",\"data\":\"x\"}",
		  NULL },
	};
	for (size_t i = 0; i < N(rows); i++) {
		struct evd_legacy_request req;
		struct evd_buf body = EVD_BUF_INIT;
		int status = 0;
		int rc = evd_legacy_parse(rows[i].body, strlen(rows[i].body), &req, &status, &body);
		if (rows[i].want) {
			CHECK_INT(rc, -EINVAL);
			CHECK_INT(status, 400);
			CHECK_STR(body.data, rows[i].want);
		} else {
			CHECK_INT(rc, 0);
			CHECK(body.len == 0);
			evd_legacy_request_free(&req);
		}
		evd_buf_free(&body);
	}
}

static void test_conversion(void)
{
	const char *body = "{ \"event-type\": \"order.created\", \"event-type-version\": \"v1\",\n"
			   "  \"event-id\": \"" GOOD_ID "\",\n"
			   "  \"event-time\": \"2020-09-28T14:47:16.491Z\", \"data\": {\"orderCode\": \"3211213\"} }";
	struct evd_legacy_request req;
	struct evd_buf err = EVD_BUF_INIT;
	int status;
	CHECK_INT(evd_legacy_parse(body, strlen(body), &req, &status, &err), 0);
	CHECK_STR(req.event_type, "order.created");
	CHECK_STR(req.event_id, GOOD_ID);

	struct evd_cloudevent a, b;
	CHECK_INT(evd_legacy_to_cloudevents(&req, "commerce", "sap.kyma.custom", &a, &b, &err), 0);
	CHECK_STR(a.attr[EVD_CE_SPECVERSION], "1.0");
	CHECK_STR(a.attr[EVD_CE_TYPE], "order.created.v1");
	CHECK_STR(a.attr[EVD_CE_SOURCE], "commerce");
	CHECK_STR(a.attr[EVD_CE_ID], GOOD_ID);
	CHECK_STR(a.attr[EVD_CE_TIME], "2020-09-28T14:47:16.491Z");
	CHECK_STR(a.attr[EVD_CE_DATACONTENTTYPE], "application/json");
	CHECK_STR(evd_ce_ext_get(&a, "eventtypeversion"), "v1");
	CHECK(a.data_len == strlen("{\"orderCode\": \"3211213\"}") &&
	      memcmp(a.data, "{\"orderCode\": \"3211213\"}", a.data_len) == 0);
	CHECK_STR(b.attr[EVD_CE_TYPE], "sap.kyma.custom.commerce.order.created.v1");
	CHECK_STR(b.attr[EVD_CE_SOURCE], "kyma");
	CHECK_STR(b.attr[EVD_CE_ID], GOOD_ID);
	CHECK_STR(evd_ce_ext_get(&b, "eventtypeversion"), "v1");

	/* the subjects of §2.3's example */
	char *subj = NULL;
	CHECK_INT(evd_event_subject_for_publish(a.attr[EVD_CE_SOURCE], a.attr[EVD_CE_TYPE], "sap.kyma.custom",
						"kyma", &subj, NULL, NULL), 0);
	CHECK_STR(subj, "kyma.commerce.order.created.v1");
	free(subj);
	CHECK_INT(evd_event_subject_for_publish(b.attr[EVD_CE_SOURCE], b.attr[EVD_CE_TYPE], "sap.kyma.custom",
						"kyma", &subj, NULL, NULL), 0);
	CHECK_STR(subj, "kyma.sap.kyma.custom.commerce.order.created.v1");
	free(subj);
	evd_ce_free(&a);
	evd_ce_free(&b);
	evd_legacy_request_free(&req);

	/* app cleaned of \W|_, event name cleaned and merged, version kept; new UUIDv4 id */
	body = "{\"event-type\":\"Account.Root-x.Created\",\"event-type-version\":\"v1\","
	       "\"event-time\":\"2020-09-28T14:47:16Z\",\"data\":\"s\"}";
	CHECK_INT(evd_legacy_parse(body, strlen(body), &req, &status, &err), 0);
	CHECK_INT(evd_legacy_to_cloudevents(&req, "commerce-mock_1", "sap.kyma.custom", &a, &b, &err), 0);
	CHECK_STR(a.attr[EVD_CE_TYPE], "Account.Root-x.Created.v1");
	CHECK_STR(a.attr[EVD_CE_SOURCE], "commerce-mock_1");
	CHECK_STR(b.attr[EVD_CE_TYPE], "sap.kyma.custom.commercemock1.AccountRootx.Created.v1");
	CHECK(a.attr_len[EVD_CE_ID] == 36 && a.attr[EVD_CE_ID][14] == '4');
	CHECK_STR(a.attr[EVD_CE_ID], b.attr[EVD_CE_ID]);
	CHECK(a.data_len == 3 && memcmp(a.data, "\"s\"", 3) == 0);
	evd_ce_free(&a);
	evd_ce_free(&b);

	/* an app that is no valid source */
	CHECK_INT(evd_legacy_to_cloudevents(&req, "a%zz", "sap.kyma.custom", &a, &b, &err), -EINVAL);
	CHECK_STR(err.data, BAD_PAYLOAD("source: invalid URL escape"));
	evd_legacy_request_free(&req);
	evd_buf_free(&err);
}

static void test_bodies(void)
{
	struct evd_buf b = EVD_BUF_INIT;
	evd_legacy_success_body(&b, GOOD_ID);
	CHECK_STR(b.data, "{\"event-id\":\"" GOOD_ID "\",\"status\":\"\",\"reason\":\"\"}\n");
	evd_buf_reset(&b);
	evd_legacy_too_large_body(&b);
	CHECK_STR(b.data, "{\"status\":413,\"type\":\"request_body_too_large\",\"message\":\"Request body too "
			  "large\",\"moreInfo\":\"http: request body too large\"}\n");
	evd_buf_reset(&b);
	evd_legacy_backend_error_body(&b, 507, "insufficient resources on target stream");
	CHECK_STR(b.data, "{\"status\":507,\"message\":\"insufficient resources on target stream\"}\n");
	evd_buf_reset(&b);
	/* Go's encoder escapes <, >, & and control characters */
	evd_legacy_backend_error_body(&b, 500, "a<b>&\"c\"\n\x01");
	CHECK_STR(b.data, "{\"status\":500,\"message\":\"a\\u003cb\\u003e\\u0026\\\"c\\\"\\n\\u0001\"}\n");
	evd_buf_free(&b);

	char u1[37], u2[37];
	CHECK_INT(evd_legacy_uuid4(u1), 0);
	CHECK_INT(evd_legacy_uuid4(u2), 0);
	CHECK(strcmp(u1, u2) != 0);
	CHECK(strlen(u1) == 36 && u1[8] == '-' && u1[14] == '4' && strchr("89ab", u1[19]));

	const char *app;
	size_t n = evd_legacy_app_from_path("/commerce/v1/events", 19, &app);
	CHECK(n == 8 && memcmp(app, "commerce", 8) == 0);
	n = evd_legacy_app_from_path("//x/v1", 6, &app);
	CHECK(n == 1 && app[0] == 'x');
	CHECK_INT(evd_legacy_app_from_path("/commerce", 9, &app), 0);
}

int main(void)
{
	test_rows();
	test_conversion();
	test_bodies();
	UNIT_MAIN_END();
}
