/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Subscription registry: manifest parsing and validation (every rule with its exact
 * diagnostic), the manifest kept as JSON for the status, consumer naming against Kyma's example,
 * the directory set rules and the diff.
 * argv[1], when given, is the source root: every sample in etc/subscriptions.d must load cleanly.
 */
#include "unit.h"

#include "registry/registry_check.h"
#include "registry/registry_parse.h"
#include "registry/registry_set.h"
#include "util/util_buf.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct evd_registry_opts opts = EVD_REGISTRY_OPTS_DEFAULT;

/* Parses text as "t.yaml"; returns every diagnostic formatted, one per line. */
static char *parse(const char *text, int *rc, struct evd_sub_list *out)
{
	struct evd_diag d = EVD_DIAG_INIT;
	struct evd_buf b = EVD_BUF_INIT;
	*rc = evd_registry_parse_string("t.yaml", text, strlen(text), &opts, out, &d);
	evd_diag_format(&d, &b);
	evd_diag_free(&d);
	evd_buf_append_str(&b, "");
	return evd_buf_steal(&b);
}

/* ---- valid manifests ------------------------------------------------------------------------ */

static void test_kyma_sample(void)
{
	/* reference §4.4: Kyma's v1alpha2 sample and the consumer name computed from it. */
	const char *text = "apiVersion: eventing.kyma-project.io/v1alpha2\n"
			   "kind: Subscription\n"
			   "metadata:\n"
			   "  name: test\n"
			   "  namespace: test\n"
			   "spec:\n"
			   "  typeMatching: standard\n"
			   "  source: commerce\n"
			   "  types:\n"
			   "    - order.created.v1\n"
			   "  sink: http://test.test.svc.cluster.local\n"
			   "  config:\n"
			   "    maxInFlightMessages: \"10\"\n";
	struct evd_sub_list l = EVD_SUB_LIST_INIT;
	int rc;
	char *diag = parse(text, &rc, &l);
	CHECK_INT(rc, 0);
	CHECK_STR(diag, "");
	CHECK_INT(l.count, 1);
	if (l.count == 1) {
		const struct evd_subscription *s = l.items[0];
		CHECK_STR(s->ns, "test");
		CHECK_STR(s->name, "test");
		CHECK_INT(s->api, EVD_SUB_V1ALPHA2);
		CHECK_INT(s->type_matching, EVD_TYPE_MATCHING_STANDARD);
		CHECK_STR(s->source, "commerce");
		CHECK_INT(s->ntypes, 1);
		CHECK_STR(s->types[0].original, "order.created.v1");
		CHECK_STR(s->types[0].clean, "order.created.v1");
		CHECK_STR(s->types[0].subject, "kyma.commerce.order.created.v1");
		CHECK_STR(s->types[0].consumer, "5ddf41966d8084724770dca95a2f7452");
		CHECK_STR(s->types[0].path, "spec.types[0]");
		CHECK_INT(s->types[0].line, 10);
		CHECK_INT(s->types[0].col, 7);
		CHECK_INT(s->types[0].same_consumer_as, -1);
		CHECK_STR(s->sink.scheme, "http");
		CHECK_STR(s->sink.host, "test.test.svc.cluster.local");
		CHECK_INT(s->sink.port, 80);
		CHECK_STR(s->sink.path, "/");
		CHECK(!s->tls_pending);
		CHECK_INT(s->max_in_flight, 10);
		CHECK_INT(s->content_mode, EVD_CONTENT_BINARY);
		CHECK_INT(s->nconfig, 1);
		CHECK_STR(evd_subscription_config_get(s, "maxInFlightMessages"), "10");
		CHECK_INT(s->line, 1);
	}
	evd_sub_list_clear(&l);
	free(diag);
}

static void test_consumer_name(void)
{
	char name[EVD_SUB_CONSUMER_NAME_LEN + 1];
	CHECK_INT(evd_subscription_consumer_name("test", "test", "kyma.commerce.order.created.v1",
						 name),
		  0);
	CHECK_STR(name, "5ddf41966d8084724770dca95a2f7452");
}

#define V2 "apiVersion: eventing.kyma-project.io/v1alpha2\nkind: Subscription\nmetadata:\n  name: s\nspec:\n"
#define V1 "apiVersion: eventing.kyma-project.io/v1alpha1\nkind: Subscription\nmetadata:\n  name: s\nspec:\n"

static void test_delivery_keys(void)
{
	const char *text = V2 "  source: s\n  types: [a.b]\n  sink: http://h/\n  config:\n"
			   "    maxDeliver: \"7\"\n    retryBackoff: 250ms\n    retryMaxDelay: \"2m\"\n";
	struct evd_sub_list l = EVD_SUB_LIST_INIT;
	int rc;
	char *diag = parse(text, &rc, &l);
	CHECK_INT(rc, 0);
	CHECK_STR(diag, "");
	if (l.count == 1) {
		CHECK_INT(l.items[0]->max_deliver, 7);
		CHECK_INT(l.items[0]->retry_backoff_ms, 250);
		CHECK_INT(l.items[0]->retry_max_delay_ms, 120000);
	}
	evd_sub_list_clear(&l);
	free(diag);
	/* Absent: 0, the dispatch.* keys apply. */
	diag = parse(V2 "  source: s\n  types: [a.b]\n  sink: http://h/\n", &rc, &l);
	if (l.count == 1) {
		CHECK_INT(l.items[0]->max_deliver, 0);
		CHECK_INT(l.items[0]->retry_backoff_ms, 0);
		CHECK_INT(l.items[0]->retry_max_delay_ms, 0);
	}
	evd_sub_list_clear(&l);
	free(diag);
}


static void test_exact_and_options(void)
{
	const char *text = V2 "  typeMatching: exact\n"
			      "  source: \"/default/sap.kyma/tunas-develop\"\n"
			      "  types:\n"
			      "    - sap.kyma.custom.noapp.order.created.v1\n"
			      "  sink: https://[::1]:8443/in?x=1\n"
			      "  config:\n"
			      "    maxInFlightMessages: 5\n"
			      "    contentMode: STRUCTURED\n";
	struct evd_sub_list l = EVD_SUB_LIST_INIT;
	int rc;
	char *diag = parse(text, &rc, &l);
	CHECK_INT(rc, 0);
	CHECK_STR(diag, "t.yaml:10:9: warning: spec.sink: https sinks need TLS support, which this "
			"eventingd does not have yet: the subscription is valid but not ready, and "
			"its events wait in the stream\n");
	if (l.count == 1) {
		const struct evd_subscription *s = l.items[0];
		CHECK_STR(s->ns, "default");
		CHECK_INT(s->type_matching, EVD_TYPE_MATCHING_EXACT);
		CHECK_STR(s->types[0].clean, "sap.kyma.custom.noapp.order.created.v1");
		CHECK_STR(s->types[0].subject, "kyma.sap.kyma.custom.noapp.order.created.v1");
		CHECK(s->tls_pending);
		CHECK_STR(s->sink.host, "::1");
		CHECK_STR(s->sink.authority, "[::1]:8443");
		CHECK_INT(s->sink.port, 8443);
		CHECK_STR(s->sink.path, "/in?x=1");
		CHECK_INT(s->max_in_flight, 5);
		CHECK_INT(s->content_mode, EVD_CONTENT_STRUCTURED);
		/* Plain scalars keep their string form; the map is sorted by key. */
		CHECK_INT(s->nconfig, 2);
		CHECK_STR(s->config[0].key, "contentMode");
		CHECK_STR(s->config[1].value, "5");
		CHECK_INT(s->warnings.warnings, 1);
	}
	CHECK_INT(l.count, 1);
	evd_sub_list_clear(&l);
	free(diag);
}

static void test_same_subject_in_one_subscription(void)
{
	const char *text = V2 "  source: shop\n"
			      "  types:\n"
			      "    - order.created.v1\n"
			      "    - order.created*.v1\n"
			      "  sink: http://127.0.0.1:8081/\n";
	struct evd_sub_list l = EVD_SUB_LIST_INIT;
	int rc;
	char *diag = parse(text, &rc, &l);
	CHECK_INT(rc, 0);
	CHECK_STR(diag, "t.yaml:9:7: warning: spec.types[1]: maps to the same NATS subject "
			"\"kyma.shop.order.created.v1\" as spec.types[0] (\"order.created.v1\"): they "
			"share one consumer, and the sink receives the events of both\n");
	if (l.count == 1) {
		const struct evd_subscription *s = l.items[0];
		CHECK_INT(s->ntypes, 2);
		CHECK_INT(s->types[1].same_consumer_as, 0);
		CHECK_STR(s->types[1].clean, "order.created.v1");
		CHECK_STR(s->types[1].consumer, s->types[0].consumer);
	}
	evd_sub_list_clear(&l);
	free(diag);
}

static void test_v1alpha1(void)
{
	/* reference §4.5: Kyma's v1alpha1 JetStream sample. */
	const char *text = "apiVersion: eventing.kyma-project.io/v1alpha1\n"
			   "kind: Subscription\n"
			   "metadata:\n"
			   "  name: test-noapp1\n"
			   "  namespace: tunas-testing\n"
			   "spec:\n"
			   "  filter:\n"
			   "    filters:\n"
			   "      - eventSource:\n"
			   "          property: source\n"
			   "          type: exact\n"
			   "          value: \"noapp\"\n"
			   "        eventType:\n"
			   "          property: type\n"
			   "          type: exact\n"
			   "          value: sap.kyma.custom.noapp.order.created.v1\n"
			   "  protocol: \"\"\n"
			   "  protocolsettings: {}\n"
			   "  sink: http://test.tunas-testing.svc.cluster.local\n";
	struct evd_sub_list l = EVD_SUB_LIST_INIT;
	int rc;
	char *diag = parse(text, &rc, &l);
	CHECK_INT(rc, 0);
	CHECK_STR(diag, "");
	CHECK_INT(l.count, 1);
	if (l.count == 1) {
		const struct evd_subscription *s = l.items[0];
		CHECK_INT(s->api, EVD_SUB_V1ALPHA1);
		CHECK_INT(s->type_matching, EVD_TYPE_MATCHING_EXACT);
		CHECK_STR(s->source, "noapp");
		CHECK_INT(s->ntypes, 1);
		CHECK_STR(s->types[0].original, "sap.kyma.custom.noapp.order.created.v1");
		CHECK_STR(s->types[0].subject, "kyma.sap.kyma.custom.noapp.order.created.v1");
		CHECK_STR(s->types[0].path, "spec.filter.filters[0].eventType.value");
		CHECK_INT(s->max_in_flight, 10);
	}
	evd_sub_list_clear(&l);
	free(diag);

	/* The prefixed cleaner merges business-object segments and strips the app name. */
	text = V1 "  filter:\n"
		  "    filters:\n"
		  "      - eventSource: {value: \"\"}\n"
		  "        eventType: {value: sap.kyma.custom.te--s__t!!app.Seg1-A.Seg2.op.v1}\n"
		  "  protocolsettings:\n"
		  "    contentMode: STRUCTURED\n"
		  "    qos: AT_LEAST_ONCE\n"
		  "  config:\n"
		  "    maxInFlightMessages: 3\n"
		  "  sink: http://127.0.0.1:8081/\n";
	diag = parse(text, &rc, &l);
	CHECK_INT(rc, 0);
	CHECK_STR(diag, "t.yaml:12:5: warning: spec.protocolsettings.qos: has no effect on "
			"eventingd (an EventMesh-only setting of Kyma)\n");
	if (l.count == 1) {
		const struct evd_subscription *s = l.items[0];
		CHECK_STR(s->source, "");
		CHECK_STR(s->types[0].original, "sap.kyma.custom.testapp.Seg1ASeg2.op.v1");
		CHECK_INT(s->max_in_flight, 3);
		CHECK_INT(s->content_mode, EVD_CONTENT_STRUCTURED);
		CHECK_STR(evd_subscription_config_get(s, "contentMode"), "STRUCTURED");
		CHECK_STR(evd_subscription_config_get(s, "maxInFlightMessages"), "3");
	}
	CHECK_INT(l.count, 1);
	evd_sub_list_clear(&l);
	free(diag);
}

/*
 * The manifest kept for the status (spec_json): YAML 1.2 core scalars in a v1alpha1 spec (here
 * in filter.dialect, which accepts anything), always valid JSON; numbers JSON can write as they
 * stand stay byte-exact; every value a string in a v1alpha2 spec.
 */
static void test_manifest_json(void)
{
	static const struct {
		const char *yaml, *json;
	} rows[] = {
		{ "1", "1" },
		{ "-0", "-0" },
		{ "12345678901234567890", "12345678901234567890" },
		{ "1.5e-3", "1.5e-3" },
		{ "+1", "1" },
		{ "007", "7" },
		{ ".5", "0.5" },
		{ "1.", "1" },
		{ "0x1F", "\"0x1F\"" },
		{ "1_000", "\"1_000\"" },
		{ "1e", "\"1e\"" },
		{ "-x", "\"-x\"" },
		{ "--1", "\"--1\"" },
		{ ".inf", "\".inf\"" },
		{ ".", "\".\"" },
		{ "1.2.3", "\"1.2.3\"" },
		{ "\"1\"", "\"1\"" },
		{ "'true'", "\"true\"" },
		{ "true", "true" },
		{ "False", "false" },
		{ "~", "null" },
		{ "null", "null" },
		{ "yes", "\"yes\"" }, /* YAML 1.1's boolean is a string in 1.2 */
		{ "a \"b\" \\ c", "\"a \\\"b\\\" \\\\ c\"" },
		{ "{a: [1, x]}", "{\"a\":[1,\"x\"]}" },
		{ "[]", "[]" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct evd_buf text = EVD_BUF_INIT;
		evd_buf_printf(&text, "apiVersion: eventing.kyma-project.io/v1alpha1\n"
				      "kind: Subscription\nmetadata: {name: m}\n"
				      "spec:\n  sink: http://127.0.0.1/\n  filter:\n"
				      "    dialect: %s\n    filters:\n"
				      "      - eventSource: {value: noapp}\n"
				      "        eventType: {value: sap.kyma.custom.noapp.order.created.v1}\n",
			       rows[i].yaml);
		struct evd_sub_list l = EVD_SUB_LIST_INIT;
		int rc;
		char *diag = parse(text.data, &rc, &l);
		CHECK_INT(rc, 0);
		CHECK_INT(l.count, 1);
		if (l.count == 1) {
			const cJSON *f = cJSON_GetObjectItem(l.items[0]->spec_json, "filter");
			char *got = cJSON_PrintUnformatted(cJSON_GetObjectItem(f, "dialect"));
			CHECK_STR(got, rows[i].json);
			/* What the status prints is JSON a client can read back. */
			char *all = cJSON_PrintUnformatted(l.items[0]->spec_json);
			cJSON *back = cJSON_Parse(all);
			CHECK(back != NULL);
			cJSON_Delete(back);
			cJSON_free(all);
			cJSON_free(got);
		}
		if (rc)
			fprintf(stderr, "%s\n", diag);
		free(diag);
		evd_sub_list_clear(&l);
		evd_buf_free(&text);
	}

	/* v1alpha2: strings throughout; labels and annotations too; no metadata extras: NULL. */
	const char *v2 = "apiVersion: eventing.kyma-project.io/v1alpha2\nkind: Subscription\n"
			 "metadata:\n  name: m\n  labels: {n: 1, b: true}\n"
			 "spec:\n  source: s\n  types: [a.b]\n  sink: http://127.0.0.1/\n"
			 "  config: {maxInFlightMessages: 3, contentMode: ~}\n";
	struct evd_sub_list l = EVD_SUB_LIST_INIT;
	int rc;
	char *diag = parse(v2, &rc, &l);
	CHECK_INT(rc, 0);
	CHECK_INT(l.count, 1);
	if (l.count == 1) {
		char *got = cJSON_PrintUnformatted(l.items[0]->spec_json);
		CHECK_STR(got, "{\"source\":\"s\",\"types\":[\"a.b\"],\"sink\":\"http://127.0.0.1/\","
			       "\"config\":{\"maxInFlightMessages\":\"3\",\"contentMode\":null}}");
		cJSON_free(got);
		got = cJSON_PrintUnformatted(l.items[0]->labels_json);
		CHECK_STR(got, "{\"n\":\"1\",\"b\":\"true\"}");
		cJSON_free(got);
		CHECK(l.items[0]->annotations_json == NULL);
	}
	free(diag);
	evd_sub_list_clear(&l);
}

static void test_multi_document(void)
{
	const char *text = "---\n"
			   "---\n"
			   "# only a comment\n"
			   "---\n" V2 "  source: a\n  types: [a.b]\n  sink: http://h/\n"
			   "---\n"
			   "apiVersion: eventing.kyma-project.io/v1alpha2\nkind: Subscription\n"
			   "metadata: {name: s, namespace: other}\n"
			   "spec: {source: a, types: [a.b], sink: \"http://h/\"}\n"
			   "status:\n  ready: true\n";
	struct evd_sub_list l = EVD_SUB_LIST_INIT;
	int rc;
	char *diag = parse(text, &rc, &l);
	CHECK_INT(rc, 0);
	CHECK_STR(diag, "");
	CHECK_INT(l.count, 2);
	if (l.count == 2) {
		CHECK_STR(l.items[0]->ns, "default");
		CHECK_INT(l.items[0]->line, 5);
		CHECK_STR(l.items[1]->ns, "other");
	}
	evd_sub_list_clear(&l);
	free(diag);
}

/* ---- validation: one row per rule, with the exact diagnostic --------------------------------- */

struct bad_case {
	const char *text;
	const char *diag;
};

/* V2 takes lines 1-5, so the first line of spec is line 6. */
static const struct bad_case bad_cases[] = {
	/* Kyma's messages (reference §4.2). */
	{ V2 "  source: s\n  types:\n    - a.b\n    - x\n  sink: http://h/\n",
	  "t.yaml:9:7: spec.types[1]: must have minimum 2 segments\n" },
	{ V2 "  source: s\n  types:\n    - a.b\n    - a.b\n  sink: http://h/\n",
	  "t.yaml:9:7: spec.types[1]: must not have duplicate types\n" },
	{ V2 "  source: s\n  types:\n    - \"\"\n  sink: http://h/\n",
	  "t.yaml:8:7: spec.types[0]: must not be of length zero\n" },
	{ V2 "  source: s\n  types: []\n  sink: http://h/\n",
	  "t.yaml:7:10: spec.types: must not be empty\n" },
	{ V2 "  source: s\n  types: [sap.kyma.custom.app.order.created.v1]\n  sink: http://h/\n",
	  "t.yaml:7:11: spec.types[0]: must not have sap.kyma.custom as type prefix\n" },
	{ V2 "  typeMatching: Exact\n  source: s\n  types: [a.b]\n  sink: http://h/\n",
	  "t.yaml:6:17: spec.typeMatching: must be a valid TypeMatching value exact or standard\n" },
	{ V2 "  source: \"\"\n  types: [a.b]\n  sink: http://h/\n",
	  "t.yaml:6:11: spec.source: must not be empty\n" },
	{ V2 "  source: s%ourc%e\n  types: [a.b]\n  sink: http://h/\n",
	  "t.yaml:6:11: spec.source: must be valid as per RFC 3986 (invalid URL escape)\n" },
	{ V2 "  source: \"a b:c\"\n  types: [a.b]\n  sink: http://h/\n",
	  "t.yaml:6:11: spec.source: must be valid as per RFC 3986 (first path segment in URL "
	  "cannot contain colon)\n" },
	{ V2 "  source: s\n  types: [a.b]\n  sink: \"\"\n",
	  "t.yaml:8:9: spec.sink: must not be empty\n" },
	{ V2 "  source: s\n  types: [a.b]\n  sink: ftp://h/\n",
	  "t.yaml:8:9: spec.sink: must have URL scheme 'http' or 'https'\n" },
	{ V2 "  source: s\n  types: [a.b]\n  sink: http://h/\n  config:\n    maxInFlightMessages: "
	     "ten\n",
	  "t.yaml:10:26: spec.config.maxInFlightMessages: maxInFlightMessages must be a "
	  "stringified int value\n" },
	/* The dispatcher's keys (strings, as Kyma's map). */
	{ V2 "  source: s\n  types: [a.b]\n  sink: http://h/\n  config:\n    maxDeliver: \"0\"\n",
	  "t.yaml:10:17: spec.config.maxDeliver: maxDeliver must be a stringified int value from 1 "
	  "to 1000000 (delivery attempts before an event counts as failed)\n" },
	{ V2 "  source: s\n  types: [a.b]\n  sink: http://h/\n  config:\n    retryBackoff: soon\n",
	  "t.yaml:10:19: spec.config.retryBackoff: retryBackoff must be a duration from 1ms to 7d, "
	  "such as \"500ms\", \"10s\" or \"5m\"\n" },
	{ V2 "  source: s\n  types: [a.b]\n  sink: http://h/\n  config:\n    retryMaxDelay: \"8d\"\n",
	  "t.yaml:10:20: spec.config.retryMaxDelay: retryMaxDelay must be a duration from 1ms to 7d, "
	  "such as \"500ms\", \"10s\" or \"5m\"\n" },
	{ V2 "  source: s\n  types: [a.b]\n  sink: http://h/\n  config:\n    retryBackoff: 1m\n"
	     "    retryMaxDelay: 10s\n",
	  "t.yaml:10:19: spec.config.retryBackoff: retryBackoff must not be longer than "
	  "retryMaxDelay\n" },
	/* Required fields. */
	{ V2 "  types: [a.b]\n  sink: http://h/\n", "t.yaml:6:3: spec.source: Required value\n" },
	{ V2 "  source: s\n  sink: http://h/\n", "t.yaml:6:3: spec.types: Required value\n" },
	{ V2 "  source: s\n  types: [a.b]\n", "t.yaml:6:3: spec.sink: Required value\n" },
	{ "apiVersion: eventing.kyma-project.io/v1alpha2\nkind: Subscription\nmetadata:\n  "
	  "namespace: x\nspec: {source: s, types: [a.b], sink: \"http://h/\"}\n",
	  "t.yaml:4:3: metadata.name: Required value\n" },
	{ "kind: Subscription\nmetadata: {name: s}\nspec: {source: s, types: [a.b], sink: x}\n",
	  "t.yaml:1:1: apiVersion: Required value\n" },
	/* eventingd's additions. */
	{ V2 "  source: s\n  types: [a.b]\n  sink: http://h/\n  config:\n    maxInFlightMessages: "
	     "\"0\"\n",
	  "t.yaml:10:26: spec.config.maxInFlightMessages: must be at least 1 (eventingd's rule: it "
	  "is the number of events delivered at once; Kyma passed 0 and negative values to NATS "
	  "unchanged)\n" },
	{ V2 "  typeMatching: exact\n  source: s\n  types: [a.*.b, \"a.b c\", a.>]\n  sink: "
	     "http://h/\n",
	  "t.yaml:8:11: spec.types[0]: must not contain whitespace, '*' or '>' with typeMatching "
	  "exact (exact types are not cleaned, and these would make the NATS subject a wildcard)\n"
	  "t.yaml:8:18: spec.types[1]: must not contain whitespace, '*' or '>' with typeMatching "
	  "exact (exact types are not cleaned, and these would make the NATS subject a wildcard)\n"
	  "t.yaml:8:27: spec.types[2]: must not contain whitespace, '*' or '>' with typeMatching "
	  "exact (exact types are not cleaned, and these would make the NATS subject a "
	  "wildcard)\n" },
	{ V2 "  source: s\n  types: [a.*.b]\n  sink: http://h/\n",
	  "t.yaml:7:11: spec.types[0]: maps to NATS subject \"kyma.s.a..b\", which has an empty "
	  "segment\n" },
	/* Every error in one pass: a bad sink or a bad type does not hide a subject error. */
	{ V2 "  source: s\n  types: [a.*.b, x, c.d]\n  sink: ftp://h/\n",
	  "t.yaml:7:11: spec.types[0]: maps to NATS subject \"kyma.s.a..b\", which has an empty "
	  "segment\n"
	  "t.yaml:7:18: spec.types[1]: must have minimum 2 segments\n"
	  "t.yaml:8:9: spec.sink: must have URL scheme 'http' or 'https'\n" },
	{ V2 "  source: \"///\"\n  types: [a.b]\n  sink: ftp://h/\n",
	  "t.yaml:6:11: spec.source: must keep at least one character once whitespace, '.', '>', "
	  "'*', '/' and '\\' are removed (it becomes a segment of the NATS subject)\n"
	  "t.yaml:8:9: spec.sink: must have URL scheme 'http' or 'https'\n" },
	{ V2 "  source: \"///\"\n  types: [a.b]\n  sink: http://h/\n",
	  "t.yaml:6:11: spec.source: must keep at least one character once whitespace, '.', '>', "
	  "'*', '/' and '\\' are removed (it becomes a segment of the NATS subject)\n" },
	{ V2 "  source: s\n  types: [a.b]\n  sink: http://\n",
	  "t.yaml:8:9: spec.sink: must have a host\n" },
	{ V2 "  source: s\n  types: [a.b]\n  sink: http://h:99999/\n",
	  "t.yaml:8:9: spec.sink: must have a port number from 1 to 65535 after ':'\n" },
	{ V2 "  source: s\n  types: [a.b]\n  sink: http://u:p@h/\n",
	  "t.yaml:8:9: spec.sink: must not contain user information ('user@'); credentials in the "
	  "sink URL are not supported\n" },
	/* Unknown fields, shapes, identity. */
	{ V2 "  source: s\n  tpyes: [a.b]\n  types: [a.b]\n  sink: http://h/\n",
	  "t.yaml:7:3: spec.tpyes: unknown field (did you mean \"types\"?)\n" },
	{ V2 "  source: s\n  types: [a.b]\n  sink: http://h/\n  config:\n    retries: \"3\"\n",
	  "t.yaml:10:5: spec.config.retries: unknown field\n" },
	{ V2 "  source: s\n  types: [a.b]\n  sink: http://h/\nextra: 1\n",
	  "t.yaml:9:1: extra: unknown field\n" },
	{ "apiVersion: eventing.kyma-project.io/v1alpha2\nkind: Function\nmetadata: {name: s}\n"
	  "spec: {source: s, types: [a.b], sink: \"http://h/\"}\n",
	  "t.yaml:2:7: kind: must be Subscription, not \"Function\"\n" },
	{ "apiVersion: eventing.kyma-project.io/v1\nkind: Subscription\nmetadata: {name: s}\n"
	  "spec: {}\n",
	  "t.yaml:1:13: apiVersion: must be eventing.kyma-project.io/v1alpha2 (or the older "
	  "eventing.kyma-project.io/v1alpha1)\n" },
	{ "apiVersion: eventing.kyma-project.io/v1alpha2\nkind: Subscription\nmetadata: {name: "
	  "My_Sub, namespace: -x}\nspec: {source: s, types: [a.b], sink: \"http://h/\"}\n",
	  "t.yaml:3:18: metadata.name: " EVD_DNS1123_SUBDOMAIN_MSG "\n"
	  "t.yaml:3:37: metadata.namespace: " EVD_DNS1123_LABEL_MSG "\n" },
	{ V2 "  source: s\n  types: a.b\n  sink: http://h/\n",
	  "t.yaml:7:10: spec.types: must be a list of strings, not a scalar\n" },
	{ V2 "  source: s\n  types: [a.b, {x: 1}]\n  sink: http://h/\n",
	  "t.yaml:7:16: spec.types[1]: must be a string, not a mapping\n" },
	{ "- a\n", "t.yaml:1:1: a Subscription manifest must be a mapping, not a sequence\n" },
	{ V2 "  source: a\n  types: [a.b]\n  sink: http://h/\n---\n" V2
	     "  source: b\n  types: [a.b]\n  sink: http://h/\n",
	  "t.yaml:13:9: metadata.name: subscription default/s is already defined in this file at "
	  "line 4\n" },
	/* v1alpha1. */
	{ V1 "  filter:\n    filters:\n      - eventSource: {value: a}\n        eventType: {value: "
	     "sap.kyma.custom.app.o.created.v1}\n      - eventSource: {value: b}\n        "
	     "eventType: {value: sap.kyma.custom.app.o.deleted.v1}\n  sink: http://h/\n",
	  "t.yaml:10:30: spec.filter.filters[1].eventSource.value: subscription contains more than "
	  "1 eventSource\n" },
	{ V1 "  filter:\n    filters:\n      - eventSource: {value: a}\n        eventType: {value: "
	     "order.created.v1}\n  sink: http://h/\n",
	  "t.yaml:9:28: spec.filter.filters[0].eventType.value: failed to parse "
	  "event-type=order.created.v1 with prefix=sap.kyma.custom: prefix not found\n" },
	{ V1 "  filter:\n    filters: []\n  sink: http://h/\n  config:\n    maxInFlightMessages: "
	     "0\n",
	  "t.yaml:7:14: spec.filter.filters: must not be empty\n"
	  "t.yaml:10:26: spec.config.maxInFlightMessages: should be greater than or equal to 1\n" },
	{ V1 "  filter:\n    filters:\n      - eventSource: {value: a}\n        eventType: {value: "
	     "sap.kyma.custom.app.o.created.v1}\n  sink: http://h/\n  config:\n    "
	     "maxInFlightMessages: \"4\"\n",
	  "t.yaml:12:26: spec.config.maxInFlightMessages: must be an integer (v1alpha1)\n" },
	{ V1 "  sink: http://h/\n", "t.yaml:6:3: spec.filter: Required value\n" },
	{ V1 "  source: a\n  filter:\n    filters: []\n  sink: http://h/\n",
	  "t.yaml:6:3: spec.source: unknown field\n"
	  "t.yaml:8:14: spec.filter.filters: must not be empty\n" },
};

static void test_bad(void)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct evd_sub_list l = EVD_SUB_LIST_INIT;
		int rc;
		char *diag = parse(bad_cases[i].text, &rc, &l);
		if (rc != -EINVAL || strcmp(diag, bad_cases[i].diag) != 0)
			fprintf(stderr, "bad case %zu:\n", i);
		CHECK_INT(rc, -EINVAL);
		CHECK_STR(diag, bad_cases[i].diag);
		CHECK_INT(l.count, 0);
		evd_sub_list_clear(&l);
		free(diag);
	}
}

/* EventMesh-only keys load, with a warning each. */
static void test_eventmesh_warnings(void)
{
	const char *text = V2 "  source: s\n"
			      "  types: [a.b]\n"
			      "  sink: http://h/\n"
			      "  protocol: BEB\n"
			      "  config:\n"
			      "    qos: AT_LEAST_ONCE\n"
			      "    contentMode: JSON\n"
			      "    clientSecret: x\n"
			      "    exemptHandshake: \"true\"\n";
	struct evd_sub_list l = EVD_SUB_LIST_INIT;
	int rc;
	char *diag = parse(text, &rc, &l);
	CHECK_INT(rc, 0);
	CHECK_STR(diag,
		  "t.yaml:9:3: warning: spec.protocol: has no effect on eventingd (an EventMesh-only "
		  "setting of Kyma)\n"
		  "t.yaml:11:5: warning: spec.config.qos: has no effect on eventingd (an "
		  "EventMesh-only setting of Kyma)\n"
		  "t.yaml:12:18: warning: spec.config.contentMode: contentMode \"JSON\" has no effect "
		  "on eventingd (an EventMesh-only value of Kyma; eventingd delivers BINARY or "
		  "STRUCTURED), events are delivered in BINARY mode\n"
		  "t.yaml:13:5: warning: spec.config.clientSecret: has no effect on eventingd (an "
		  "EventMesh-only setting of Kyma)\n"
		  "t.yaml:14:5: warning: spec.config.exemptHandshake: has no effect on eventingd (an "
		  "EventMesh-only setting of Kyma)\n");
	CHECK_INT(l.count, 1);
	if (l.count == 1) {
		CHECK_INT(l.items[0]->content_mode, EVD_CONTENT_BINARY);
		CHECK_INT(l.items[0]->warnings.warnings, 5);
		CHECK_STR(evd_subscription_config_get(l.items[0], "qos"), "AT_LEAST_ONCE");
	}
	evd_sub_list_clear(&l);
	free(diag);
}

static void test_checks(void)
{
	static const struct {
		const char *s;
		bool ok;
		long long v;
	} atoi_cases[] = {
		{ "10", true, 10 }, { "+7", true, 7 }, { "-3", true, -3 }, { "", false, 0 },
		{ " 1", false, 0 }, { "1.0", false, 0 }, { "9223372036854775807", true, 9223372036854775807LL },
		{ "9223372036854775808", false, 0 }, { "-", false, 0 },
	};
	for (size_t i = 0; i < sizeof(atoi_cases) / sizeof(atoi_cases[0]); i++) {
		long long v = 0;
		CHECK_INT(evd_registry_atoi(atoi_cases[i].s, &v), atoi_cases[i].ok);
		if (atoi_cases[i].ok)
			CHECK_INT(v, atoi_cases[i].v);
	}
	CHECK(evd_registry_check_dns1123_subdomain("a.b-c.d") == NULL);
	CHECK(evd_registry_check_dns1123_subdomain("a..b") != NULL);
	CHECK(evd_registry_check_dns1123_subdomain("a-") != NULL);
	CHECK(evd_registry_check_dns1123_label("a.b") != NULL);
	CHECK(evd_registry_check_uri_reference("/default/sap.kyma/id") == NULL);
	CHECK(evd_registry_check_uri_reference("https://x.y/z") == NULL);
	CHECK(evd_registry_check_uri_reference("urn:a:b") == NULL);
	CHECK(evd_registry_check_uri_reference(":x") != NULL);
	struct evd_sink k;
	CHECK(evd_registry_parse_sink("http://h?q=1", &k) == NULL);
	CHECK_STR(k.path, "/?q=1");
	CHECK_STR(k.authority, "h");
	evd_registry_sink_clear(&k);
	CHECK(evd_registry_parse_sink("http://h/#frag", &k) != NULL);
	CHECK(evd_registry_parse_sink("http://h b/", &k) != NULL);
	CHECK(evd_registry_parse_sink("http://[::1/", &k) != NULL);
	CHECK(evd_registry_file_wanted("a.yaml"));
	CHECK(evd_registry_file_wanted("a.yml"));
	static const char *const unwanted[] = { ".a.yaml", "a.yaml~", ".#a.yaml", "a.yaml.swp",
						"#a.yaml#", ".yaml", "a.json", "a.yaml.bak" };
	for (size_t i = 0; i < sizeof(unwanted) / sizeof(unwanted[0]); i++)
		CHECK(!evd_registry_file_wanted(unwanted[i]));
}

/* ---- set and diff -------------------------------------------------------------------------- */

/* A whole-file manifest for subscription name (namespace default). */
static char *manifest(const char *name, const char *source, const char *types,
		      const char *sink, const char *mif)
{
	struct evd_buf b = EVD_BUF_INIT;
	evd_buf_printf(&b,
		       "apiVersion: eventing.kyma-project.io/v1alpha2\nkind: Subscription\n"
		       "metadata: {name: %s}\nspec:\n  source: %s\n  types: [%s]\n  sink: %s\n"
		       "  config: {maxInFlightMessages: \"%s\"}\n",
		       name, source, types, sink, mif);
	return evd_buf_steal(&b);
}

struct file_def {
	const char *name;
	const char *text; /* NULL: use the manifest fields below */
	const char *sub, *source, *types, *sink, *mif;
};

static struct evd_registry_set *next_set(const struct evd_registry_set *prev,
					 const struct file_def *files, size_t n)
{
	struct evd_registry_scan *scan = evd_registry_scan_new();
	for (size_t i = 0; i < n; i++) {
		char *m = files[i].text ? NULL
					: manifest(files[i].sub, files[i].source, files[i].types,
						   files[i].sink, files[i].mif);
		evd_registry_scan_add_string(scan, files[i].name, files[i].text ? files[i].text : m,
					     &opts);
		free(m);
	}
	struct evd_registry_set *set = evd_registry_set_next(prev, scan);
	evd_registry_scan_free(scan);
	return set;
}

static char *set_diag(const struct evd_registry_set *set)
{
	struct evd_buf b = EVD_BUF_INIT;
	evd_registry_set_format_diag(set, &b);
	evd_buf_append_str(&b, "");
	return evd_buf_steal(&b);
}

#define NFILES(a) (sizeof(a) / sizeof((a)[0]))

static void test_set_rules(void)
{
	/* Start-up: both files define default/x; lexical order wins. */
	const struct file_def f1[] = {
		{ "b.yaml", NULL, "x", "s", "a.b", "http://b/", "10" },
		{ "a.yaml", NULL, "x", "s", "a.b", "http://a/", "10" },
	};
	struct evd_registry_set *s1 = next_set(NULL, f1, NFILES(f1));
	char *d = set_diag(s1);
	CHECK_INT(s1->nfiles, 2);
	CHECK_STR(s1->files[0].name, "a.yaml");
	CHECK_INT(s1->active.count, 1);
	CHECK_STR(evd_registry_set_find(s1, "default", "x")->sink.url, "http://a/");
	CHECK_STR(d, "b.yaml:1:1: metadata.name: subscription default/x is also defined in "
		     "a.yaml:1, which wins (it comes first in lexical order); this definition is "
		     "ignored\n");
	CHECK_INT(s1->errors, 1);
	free(d);

	/* a.yaml breaks: its previous version stays active, and keeps winning over b.yaml. */
	const struct file_def f2[] = {
		{ "a.yaml", "apiVersion: eventing.kyma-project.io/v1alpha2\nkind: Subscription\n"
			    "metadata: {name: x}\nspec: {source: s, types: [a], sink: \"http://c/\"}\n" },
		{ "b.yaml", NULL, "x", "s", "a.b", "http://b/", "10" },
	};
	struct evd_registry_set *s2 = next_set(s1, f2, NFILES(f2));
	d = set_diag(s2);
	CHECK_STR(d, "a.yaml:4:27: spec.types[0]: must have minimum 2 segments\n"
		     "a.yaml:1:1: warning: the file has errors: its previous version (1 "
		     "subscription) stays active\n"
		     "b.yaml:1:1: metadata.name: subscription default/x is also defined in "
		     "a.yaml:1, which wins (it was active first); this definition is ignored\n");
	CHECK(s2->files[0].failed);
	CHECK(evd_registry_set_find(s2, "default", "x") == evd_registry_set_find(s1, "default", "x"));
	struct evd_registry_diff *df = evd_registry_diff(s1, s2);
	CHECK(evd_registry_diff_empty(df));
	evd_registry_diff_free(df);
	free(d);

	/* a.yaml is deleted: b.yaml's definition takes over (sink switch, same consumer). */
	const struct file_def f3[] = {
		{ "b.yaml", NULL, "x", "s", "a.b", "http://b/", "10" },
	};
	struct evd_registry_set *s3 = next_set(s2, f3, NFILES(f3));
	d = set_diag(s3);
	CHECK_STR(d, "");
	CHECK_STR(evd_registry_set_find(s3, "default", "x")->sink.url, "http://b/");
	df = evd_registry_diff(s2, s3);
	CHECK_INT(df->nsubs, 1);
	CHECK_INT(df->subs[0].op, EVD_REGISTRY_SUB_CHANGE);
	CHECK_INT(df->subs[0].changed, EVD_REGISTRY_CHANGED_SINK | EVD_REGISTRY_CHANGED_OTHER);
	CHECK_INT(df->ncreate + df->nupdate + df->nremove, 0);
	evd_registry_diff_free(df);
	free(d);

	/* A lexically earlier file now defines x too: the active one (b.yaml) still wins. */
	const struct file_def f4[] = {
		{ "0.yaml", NULL, "x", "s", "a.b", "http://zero/", "10" },
		{ "b.yaml", NULL, "x", "s", "a.b", "http://b/", "10" },
	};
	struct evd_registry_set *s4 = next_set(s3, f4, NFILES(f4));
	d = set_diag(s4);
	CHECK_STR(d, "0.yaml:1:1: metadata.name: subscription default/x is also defined in "
		     "b.yaml:1, which wins (it was active first); this definition is ignored\n");
	CHECK_STR(evd_registry_set_find(s4, "default", "x")->sink.url, "http://b/");
	free(d);

	/* A new file that is bad from the start contributes nothing. */
	const struct file_def f5[] = {
		{ "b.yaml", NULL, "x", "s", "a.b", "http://b/", "10" },
		{ "c.yaml", "kind: [\n" },
	};
	struct evd_registry_set *s5 = next_set(s4, f5, NFILES(f5));
	CHECK_INT(s5->active.count, 1);
	CHECK(s5->files[1].failed);
	CHECK_INT(s5->files[1].subs.count, 0);
	CHECK_INT(s5->errors, 1);

	/* Everything deleted: the diff removes the subscription and its consumer. */
	struct evd_registry_set *s6 = next_set(s5, NULL, 0);
	df = evd_registry_diff(s5, s6);
	CHECK_INT(df->nsubs, 1);
	CHECK_INT(df->subs[0].op, EVD_REGISTRY_SUB_REMOVE);
	CHECK_INT(df->nremove, 1);
	if (df->nremove == 1)
		CHECK_STR(df->remove[0].sub->types[df->remove[0].type].subject, "kyma.s.a.b");
	evd_registry_diff_free(df);

	evd_registry_set_free(s1);
	evd_registry_set_free(s3); /* any order: sets hold their own references */
	evd_registry_set_free(s2);
	evd_registry_set_free(s4);
	evd_registry_set_free(s6);
	evd_registry_set_free(s5);
}

static void test_diff(void)
{
	const struct file_def before[] = {
		{ "a.yaml", NULL, "keep", "s", "a.b", "http://k/", "10" },
		{ "b.yaml", NULL, "mif", "s", "a.b, c.d", "http://m/", "10" },
		{ "c.yaml", NULL, "sink", "s", "a.b", "http://old/", "10" },
		{ "d.yaml", NULL, "types", "s", "a.b, c.d", "http://t/", "10" },
		{ "e.yaml", NULL, "gone", "s", "a.b", "http://g/", "10" },
	};
	const struct file_def after[] = {
		{ "a.yaml", NULL, "keep", "s", "a.b", "http://k/", "10" },
		{ "b.yaml", NULL, "mif", "s", "a.b, c.d", "http://m/", "20" },
		{ "c.yaml", NULL, "sink", "s", "a.b", "http://new/", "10" },
		{ "d.yaml", NULL, "types", "s", "c.d, e.f", "http://t/", "10" },
		{ "f.yaml", NULL, "new", "s", "a.b", "http://n/", "10" },
	};
	struct evd_registry_set *s1 = next_set(NULL, before, NFILES(before));
	struct evd_registry_set *s2 = next_set(s1, after, NFILES(after));
	struct evd_registry_diff *df = evd_registry_diff(s1, s2);

	static const struct {
		const char *name;
		enum evd_registry_sub_op op;
		unsigned changed;
	} want_subs[] = {
		{ "gone", EVD_REGISTRY_SUB_REMOVE, 0 },
		{ "keep", EVD_REGISTRY_SUB_KEEP, 0 },
		{ "mif", EVD_REGISTRY_SUB_CHANGE,
		  EVD_REGISTRY_CHANGED_CONFIG | EVD_REGISTRY_CHANGED_MAX_IN_FLIGHT },
		{ "new", EVD_REGISTRY_SUB_ADD, 0 },
		{ "sink", EVD_REGISTRY_SUB_CHANGE, EVD_REGISTRY_CHANGED_SINK },
		{ "types", EVD_REGISTRY_SUB_CHANGE, EVD_REGISTRY_CHANGED_TYPES },
	};
	CHECK_INT(df->nsubs, NFILES(want_subs));
	for (size_t i = 0; i < df->nsubs && i < NFILES(want_subs); i++) {
		const struct evd_registry_sub_action *a = &df->subs[i];
		const struct evd_subscription *s = a->new_sub ? a->new_sub : a->old_sub;
		CHECK_STR(s->name, want_subs[i].name);
		CHECK_INT(a->op, want_subs[i].op);
		CHECK_INT(a->changed, want_subs[i].changed);
	}

	/* Consumers: "<sub>:<subject>" per action, in walk order. */
	struct evd_buf b = EVD_BUF_INIT;
	const struct {
		const char *label;
		const struct evd_registry_consumer_action *arr;
		size_t n;
	} lists[] = { { "create", df->create, df->ncreate },
		      { "update", df->update, df->nupdate },
		      { "remove", df->remove, df->nremove } };
	for (size_t l = 0; l < NFILES(lists); l++)
		for (size_t i = 0; i < lists[l].n; i++) {
			const struct evd_registry_consumer_action *c = &lists[l].arr[i];
			evd_buf_printf(&b, "%s %s:%s %d\n", lists[l].label, c->sub->name,
				       c->sub->types[c->type].subject, c->old_max_in_flight);
		}
	evd_buf_append_str(&b, "");
	CHECK_STR(b.data, "create new:kyma.s.a.b 0\n"
			  "create types:kyma.s.e.f 0\n"
			  "update mif:kyma.s.a.b 10\n"
			  "update mif:kyma.s.c.d 10\n"
			  "remove gone:kyma.s.a.b 0\n"
			  "remove types:kyma.s.a.b 0\n");
	evd_buf_free(&b);
	CHECK(!evd_registry_diff_empty(df));
	evd_registry_diff_free(df);

	/* From nothing: every consumer is created. */
	df = evd_registry_diff(NULL, s1);
	CHECK_INT(df->ncreate, 7);
	CHECK_INT(df->nsubs, 5);
	evd_registry_diff_free(df);
	evd_registry_set_free(s2);
	evd_registry_set_free(s1);
}

static void test_collisions(void)
{
	const struct file_def files[] = {
		{ "a.yaml", NULL, "one", "shop", "order.created.v1", "http://a/", "10" },
		{ "b.yaml", NULL, "two", "shop", "\"order.created*.v1\"", "http://b/", "10" },
		{ "c.yaml", NULL, "three", "shop", "order.created.v1", "http://c/", "10" },
	};
	struct evd_registry_set *s = next_set(NULL, files, NFILES(files));
	char *d = set_diag(s);
	/* Same original type in "one" and "three" is ordinary fan-out, not a collision. */
	CHECK_STR(d, "a.yaml:6:11: warning: spec.types[0]: type collision: \"order.created.v1\" "
		     "maps to NATS subject \"kyma.shop.order.created.v1\", as type "
		     "\"order.created*.v1\" of subscription default/two (b.yaml:6) does; both "
		     "subscribers receive the events of both types\n"
		     "b.yaml:6:11: warning: spec.types[0]: type collision: \"order.created*.v1\" "
		     "maps to NATS subject \"kyma.shop.order.created.v1\", as type "
		     "\"order.created.v1\" of subscription default/one (a.yaml:6) does; both "
		     "subscribers receive the events of both types\n"
		     "c.yaml:6:11: warning: spec.types[0]: type collision: \"order.created.v1\" "
		     "maps to NATS subject \"kyma.shop.order.created.v1\", as type "
		     "\"order.created*.v1\" of subscription default/two (b.yaml:6) does; both "
		     "subscribers receive the events of both types\n");
	CHECK_INT(s->errors, 0);
	CHECK_INT(s->active.count, 3);
	/* The pairs, once per set, for the status: active is (one, three, two) by name; "two"
	 * collides with both others, each of them with "two" only. */
	CHECK_INT(s->ncollisions, 4);
	static const size_t want_n[] = { 1, 1, 2 };
	for (size_t i = 0; i < s->active.count && i < 3; i++) {
		size_t n = 99;
		const struct evd_registry_collision *c = evd_registry_set_collisions(s, i, &n);
		CHECK_INT(n, want_n[i]);
		CHECK_INT(evd_registry_set_index(s, s->active.items[i]), i);
		for (size_t k = 0; c && k < n; k++) {
			CHECK_INT(c[k].sub, i);
			CHECK(strncmp(c[k].text, "type collision: ", 16) == 0);
		}
	}
	size_t n = 0;
	const struct evd_registry_collision *two = evd_registry_set_collisions(s, 2, &n);
	CHECK(two && n == 2 && two[0].other_sub == 0 && two[1].other_sub == 1);
	CHECK(evd_registry_set_collisions(s, 3, &n) == NULL && n == 0);
	free(d);
	evd_registry_set_free(s);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
}

static void test_scan_dir(void)
{
	char dir[] = "/tmp/evd-registry-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char *m = manifest("x", "s", "a.b", "http://h/", "10");
	char *m2 = manifest("y", "s", "a.b", "http://h/", "10");
	static const char *const ignored[] = { ".hidden.yaml", "x.yaml~", ".#x.yaml", "x.yaml.swp",
					       "notes.txt" };
	for (size_t i = 0; i < NFILES(ignored); i++)
		write_file(dir, ignored[i], "not: [valid\n");
	write_file(dir, "b.yaml", m);
	write_file(dir, "a.yml", m2);
	char sub[600];
	snprintf(sub, sizeof(sub), "%s/d.yaml", dir);
	CHECK_INT(mkdir(sub, 0700), 0);

	struct evd_registry_scan *scan = NULL;
	struct evd_diag d = EVD_DIAG_INIT;
	CHECK_INT(evd_registry_scan_dir(dir, &opts, &scan, &d), 0);
	CHECK_INT(d.count, 0);
	if (scan) {
		CHECK_INT(scan->nfiles, 2);
		if (scan->nfiles == 2) {
			CHECK_STR(scan->files[0].name, "a.yml");
			CHECK_STR(scan->files[1].name, "b.yaml");
			CHECK_INT(scan->files[0].rc, 0);
			CHECK_INT(scan->files[1].subs.count, 1);
		}
		struct evd_registry_set *set = evd_registry_set_next(NULL, scan);
		CHECK_INT(set->active.count, 2);
		CHECK_INT(set->errors, 0);
		evd_registry_set_free(set);
	}
	evd_registry_scan_free(scan);

	/* b.yaml becomes a dangling link: a failed file whose previous version stays active, not a
	 * file that vanished (which would delete its consumers and let pruning run). */
	{
		struct evd_registry_scan *s1 = NULL, *s2 = NULL;
		CHECK_INT(evd_registry_scan_dir(dir, &opts, &s1, &d), 0);
		struct evd_registry_set *prev = s1 ? evd_registry_set_next(NULL, s1) : NULL;
		snprintf(sub, sizeof(sub), "%s/b.yaml", dir);
		unlink(sub);
		CHECK_INT(symlink("/nonexistent/evd-target.yaml", sub), 0);
		CHECK_INT(evd_registry_scan_dir(dir, &opts, &s2, &d), 0);
		if (s2 && prev) {
			CHECK_INT(s2->nfiles, 2);
			struct evd_registry_set *next = evd_registry_set_next(prev, s2);
			const struct evd_registry_file *f = evd_registry_set_file(next, "b.yaml");
			CHECK(f && f->failed);
			CHECK_INT(next->active.count, 2);
			struct evd_buf text = EVD_BUF_INIT;
			if (f)
				evd_diag_format(&f->diag, &text);
			char want[700];
			snprintf(want, sizeof(want), "%s:1:1: cannot read: No such file or directory", sub);
			CHECK(text.data && strstr(text.data, want) != NULL);
			evd_buf_free(&text);
			evd_registry_set_free(next);
		}
		evd_registry_set_free(prev);
		evd_registry_scan_free(s1);
		evd_registry_scan_free(s2);
	}

	/* Clean up what this test made. */
	for (size_t i = 0; i < NFILES(ignored); i++) {
		snprintf(sub, sizeof(sub), "%s/%s", dir, ignored[i]);
		unlink(sub);
	}
	snprintf(sub, sizeof(sub), "%s/b.yaml", dir);
	unlink(sub);
	snprintf(sub, sizeof(sub), "%s/a.yml", dir);
	unlink(sub);
	snprintf(sub, sizeof(sub), "%s/d.yaml", dir);
	rmdir(sub);
	rmdir(dir);

	CHECK_INT(evd_registry_scan_dir(dir, &opts, &scan, &d), -ENOENT);
	CHECK_INT(d.errors, 1);
	evd_diag_free(&d);
	free(m);
	free(m2);
}

/* Every shipped sample loads without errors (and is what the man page shows). */
static void test_samples(const char *root)
{
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/etc/subscriptions.d", root);
	struct evd_registry_scan *scan = NULL;
	struct evd_diag d = EVD_DIAG_INIT;
	CHECK_INT(evd_registry_scan_dir(dir, &opts, &scan, &d), 0);
	if (scan) {
		struct evd_registry_set *set = evd_registry_set_next(NULL, scan);
		char *text = set_diag(set);
		CHECK_STR(text, "");
		CHECK_INT(set->nfiles, 3);
		CHECK_INT(set->active.count, 3);
		for (size_t i = 0; i < set->nfiles; i++)
			CHECK(!set->files[i].failed);
		for (size_t i = 0; i < set->active.count; i++)
			CHECK_STR(set->active.items[i]->sink.authority, "127.0.0.1:8081");
		free(text);
		evd_registry_set_free(set);
	}
	evd_registry_scan_free(scan);
	evd_diag_free(&d);
}

int main(int argc, char **argv)
{
	test_kyma_sample();
	test_consumer_name();
	test_delivery_keys();
	test_exact_and_options();
	test_same_subject_in_one_subscription();
	test_v1alpha1();
	test_manifest_json();
	test_multi_document();
	test_bad();
	test_eventmesh_warnings();
	test_checks();
	test_set_rules();
	test_diff();
	test_collisions();
	test_scan_dir();
	if (argc > 1)
		test_samples(argv[1]);
	UNIT_MAIN_END();
}
