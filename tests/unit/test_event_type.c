/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kyma's event-type naming (reference/kyma-eventing.md §3): every example of §3.2 and §3.4, plus
 * the rows of Kyma's own unit tests (EM pkg/backend/cleaner/jetstream_unit_test.go,
 * EPP pkg/cloudevents/eventtype/clean_test.go, parse and build tests).
 */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>

#include "event/event_type.h"

static void test_clean_source(void)
{
	static const struct {
		const char *in, *want;
	} rows[] = {
		{ "/default/sap.kyma/id", "defaultsapkymaid" },
		{ "source1", "source1" },
		{ "source1-Part1/2-Part*2\\3-Ä.te--<>  <>s__t!!a@  \t @*p##p%%",
		  "source1-Part12-Part23-Äte--<<s__t!!a@@p##p%%" },
		{ "t!!a@@p##p%Ä", "t!!a@@p##p%Ä" },
		{ "a\nb\rc\fd\ve", "abcd\ve" }, /* Go's \s has no \v */
		{ "///", "" },
		{ "", "" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *got = evd_event_clean_source(rows[i].in);
		CHECK_STR(got, rows[i].want);
		free(got);
	}
}

static void test_clean_type(void)
{
	static const struct {
		const char *in, *want;
	} rows[] = {
		{ "o-rder.creat ed.v1", "o-rder.created.v1" },
		{ "order.payment*success.v1", "order.paymentsuccess.v1" },
		{ "prefix.  testapp.\tSegment1.Segment2>*.Segment3<.Segment4>>-Part1/2-Part2\\3-Ä."
		  "Segment5-Part1-Ä.v1",
		  "prefix.testapp.Segment1.Segment2.Segment3<.Segment4-Part12-Part23-Ä.Segment5-Part1-Ä.v1" },
		{ "order!!.created<<.v1##", "order!!.created<<.v1##" },
		{ "Order-$.third.R-e-c-e-i-v-e-d.v1", "Order-$.third.R-e-c-e-i-v-e-d.v1" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *got = evd_event_clean_type(rows[i].in);
		CHECK_STR(got, rows[i].want);
		free(got);
	}
}

static void test_clean_prefixed(void)
{
	static const struct {
		const char *prefix, *in, *want, *err;
	} rows[] = {
		/* EPP clean_test.go */
		{ "", "testapp.Segment1-Part1-Part2-Ä.Segment2-Part1-Part2-Ä.v1",
		  "testapp.Segment1Part1Part2.Segment2Part1Part2.v1", NULL },
		{ "prefix", "prefix.testapp.Segment1-Part1-Part2-Ä.Segment2-Part1-Part2-Ä.v1",
		  "prefix.testapp.Segment1Part1Part2.Segment2Part1Part2.v1", NULL },
		{ "prefix",
		  "prefix.testapp.Segment1.Segment2.Segment3.Segment4-Part1-Part2-Ä.Segment5-Part1-Part2-Ä.v1",
		  "prefix.testapp.Segment1Segment2Segment3Segment4Part1Part2.Segment5Part1Part2.v1", NULL },
		{ "prefix", "prefix.te--s__t!!a@@p##p%%.Segment1-Part1-Part2-Ä.Segment2-Part1-Part2-Ä.v1",
		  "prefix.testapp.Segment1Part1Part2.Segment2Part1Part2.v1", NULL },
		{ "prefix",
		  "prefix.te--s__t!!a@@p##p%%.Segment1.Segment2.Segment3.Segment4-Part1-Part2-Ä."
		  "Segment5-Part1-Part2-Ä.v1",
		  "prefix.testapp.Segment1Segment2Segment3Segment4Part1Part2.Segment5Part1Part2.v1", NULL },
		{ "prefix", "prefix.test-app.Segment1-Part1-Part2-Ä.Segment2-Part1-Part2-Ä.v1",
		  "prefix.testapp.Segment1Part1Part2.Segment2Part1Part2.v1", NULL },
		{ "prefix", "invalid.prefix.testapp.Segment1-Part1-Part2-Ä.Segment2-Part1-Part2-Ä.v1", NULL,
		  "failed to parse event-type=invalid.prefix.testapp.Segment1-Part1-Part2-Ä."
		  "Segment2-Part1-Part2-Ä.v1 with prefix=prefix: prefix not found" },
		{ "prefix", "testapp.Segment1-Part1-Part2-Ä.Segment2-Part1-Part2-Ä.v1", NULL,
		  "failed to parse event-type=testapp.Segment1-Part1-Part2-Ä.Segment2-Part1-Part2-Ä.v1 "
		  "with prefix=prefix: prefix not found" },
		{ "prefix", "prefix.testapp.Segment1-Part1-Part2-Ä.v1", NULL,
		  "failed to parse event-type=prefix.testapp.Segment1-Part1-Part2-Ä.v1 with "
		  "prefix=prefix: invalid format" },
		/* EM parse and build tests */
		{ "missing.prefix", "prefix.test.app.name.123.order.created.v1", NULL,
		  "failed to parse event-type=prefix.test.app.name.123.order.created.v1 with "
		  "prefix=missing.prefix: prefix not found" },
		{ "prefix", "prefix.order.created.v1", NULL,
		  "failed to parse event-type=prefix.order.created.v1 with prefix=prefix: invalid format" },
		{ "", "application.order.created.v1", "application.order.created.v1", NULL },
		{ "prefix", "prefix.test_app-123.Segment1.Segment2.v1", "prefix.testapp123.Segment1.Segment2.v1",
		  NULL },
		{ "prefix", "prefix.test_app-123.Segment1.Segment2.Segment3.Segment4.Segment5.v1",
		  "prefix.testapp123.Segment1Segment2Segment3Segment4.Segment5.v1", NULL },
		/* Kyma's defaults and its quirks */
		{ "sap.kyma.custom", "sap.kyma.custom.commerce.order.created.v1",
		  "sap.kyma.custom.commerce.order.created.v1", NULL },
		{ "sap.kyma.custom", "sap.kyma.custom.commerce-mock.Account.Root.Created.v1",
		  "sap.kyma.custom.commercemock.AccountRoot.Created.v1", NULL },
		/* every occurrence of the prefix goes (strings.ReplaceAll) */
		{ "sap.kyma.custom", "sap.kyma.custom.app.sap.kyma.custom.order.created.v1", NULL,
		  "failed to parse event-type=sap.kyma.custom.app.sap.kyma.custom.order.created.v1 with "
		  "prefix=sap.kyma.custom: invalid format" },
		{ "sap.kyma.custom", "sap.kyma.custom.app.order..created.v1", NULL,
		  "failed to parse event-type=sap.kyma.custom.app.order..created.v1 with "
		  "prefix=sap.kyma.custom: invalid format" },
		{ "sap.kyma.custom", "sap.kyma.custom.app.order.created.v1.", NULL,
		  "failed to parse event-type=sap.kyma.custom.app.order.created.v1. with "
		  "prefix=sap.kyma.custom: invalid format" },
		/* the version is cleaned by the last step too */
		{ "sap.kyma.custom", "sap.kyma.custom.app.order.created.v-1", "sap.kyma.custom.app.order.created.v1",
		  NULL },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *out = (char *)"untouched", *err = (char *)"untouched";
		int rc = evd_event_clean_prefixed(rows[i].in, rows[i].prefix, &out, &err);
		if (rows[i].want) {
			CHECK_INT(rc, 0);
			CHECK_STR(out, rows[i].want);
			CHECK(err == NULL);
			free(out);
		} else {
			CHECK_INT(rc, -EINVAL);
			CHECK(out == NULL);
			CHECK_STR(err, rows[i].err);
			free(err);
		}
	}
	/* err may be NULL */
	char *out = NULL;
	CHECK_INT(evd_event_clean_prefixed("x.a.b.c", "sap", &out, NULL), -EINVAL);
}

static void test_has_prefix(void)
{
	CHECK(evd_event_type_has_prefix("sap.kyma.custom.a.b.c.v1", "sap.kyma.custom"));
	CHECK(evd_event_type_has_prefix("sap.kyma.customer.a.b.v1", "sap.kyma.custom"));
	CHECK(!evd_event_type_has_prefix("order.created.v1", "sap.kyma.custom"));
	CHECK(!evd_event_type_has_prefix("order.created.v1", ""));
	CHECK(!evd_event_type_has_prefix("order.created.v1", NULL));
	CHECK(!evd_event_type_has_prefix(NULL, "sap"));
}

static void test_subject_for_publish(void)
{
	static const struct {
		const char *source, *type, *subject, *clean, *err;
	} rows[] = {
		{ "source1", "order.created.v1", "kyma.source1.order.created.v1", "order.created.v1", NULL },
		{ "source1", "o-rder.creat ed.v1", "kyma.source1.o-rder.created.v1", "o-rder.created.v1", NULL },
		{ "/default/sap.kyma/id", "order.created.v1", "kyma.defaultsapkymaid.order.created.v1",
		  "order.created.v1", NULL },
		{ "inapp", "order.payment*success.v1", "kyma.inapp.order.paymentsuccess.v1",
		  "order.paymentsuccess.v1", NULL },
		{ "commerce", "sap.kyma.custom.commerce.order.created.v1",
		  "kyma.sap.kyma.custom.commerce.order.created.v1", "sap.kyma.custom.commerce.order.created.v1",
		  NULL },
		{ "kyma", "sap.kyma.custom.te--s__t!!a@@p##p%%.Segment1-Part1-Part2-Ä.Segment2-Part1-Part2-Ä.v1",
		  "kyma.sap.kyma.custom.testapp.Segment1Part1Part2.Segment2Part1Part2.v1",
		  "sap.kyma.custom.testapp.Segment1Part1Part2.Segment2Part1Part2.v1", NULL },
		{ "app", "a..b", NULL, NULL, "event type cannot have empty segments after cleaning: kyma.app.a..b" },
		{ "///", "order.created.v1", NULL, NULL,
		  "event type cannot have empty segments after cleaning: kyma..order.created.v1" },
		{ "app", "order.created.v1.", NULL, NULL,
		  "event type cannot have empty segments after cleaning: kyma.app.order.created.v1." },
		{ "app", "order. .v1", NULL, NULL,
		  "event type cannot have empty segments after cleaning: kyma.app.order..v1" },
		{ "app", "sap.kyma.custom.app.order.v1", NULL, NULL,
		  "failed to parse event-type=sap.kyma.custom.app.order.v1 with prefix=sap.kyma.custom: "
		  "invalid format" },
		{ "app", "sap.kyma.custom.--.order.created.v1", NULL, NULL,
		  "event type cannot have empty segments after cleaning: kyma.sap.kyma.custom..order.created.v1" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *subject = NULL, *clean = NULL, *err = NULL;
		int rc = evd_event_subject_for_publish(rows[i].source, rows[i].type, "sap.kyma.custom", "kyma",
						       &subject, &clean, &err);
		if (rows[i].subject) {
			CHECK_INT(rc, 0);
			CHECK_STR(subject, rows[i].subject);
			CHECK_STR(clean, rows[i].clean);
			CHECK(err == NULL);
		} else {
			CHECK_INT(rc, -EINVAL);
			CHECK(subject == NULL && clean == NULL);
			CHECK_STR(err, rows[i].err);
		}
		free(subject);
		free(clean);
		free(err);
	}
	/* Outputs may be NULL. */
	char *subject = NULL;
	CHECK_INT(evd_event_subject_for_publish("a", "b.c", "sap.kyma.custom", "kyma", &subject, NULL, NULL), 0);
	CHECK_STR(subject, "kyma.a.b.c");
	free(subject);
	CHECK_INT(evd_event_subject_for_publish("a", "b..c", "sap.kyma.custom", "kyma", NULL, NULL, NULL),
		  -EINVAL);
}

static void test_subscription_subjects(void)
{
	char *s = evd_event_subject_standard("kyma", "/default/sap.kyma/id", "o-rder.creat ed.v1");
	CHECK_STR(s, "kyma.defaultsapkymaid.o-rder.created.v1");
	free(s);
	s = evd_event_subject_exact("kyma", "sap.kyma.custom.commerce.order.created.v1");
	CHECK_STR(s, "kyma.sap.kyma.custom.commerce.order.created.v1");
	free(s);
	s = evd_event_subject_exact("kyma", "commerce.order.created.v1");
	CHECK_STR(s, "kyma.commerce.order.created.v1");
	free(s);
}

int main(void)
{
	test_clean_source();
	test_clean_type();
	test_clean_prefixed();
	test_has_prefix();
	test_subject_for_publish();
	test_subscription_subjects();
	UNIT_MAIN_END();
}
