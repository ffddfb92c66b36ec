/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The running registry without NATS (nats NULL: status only): a directory read on the thread
 * pool and applied on the loop, a rescan after an edit, the status JSON (Kyma's resource shape,
 * the spec as written, Kyma's conditions while JetStream is not there, the status_extra hook),
 * the metrics, and Kyma's /v1/events/subscribed answer.
 */
#include "unit.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/admin_metrics.h"
#include "registry/registry.h"
#include "util/util_buf.h"
#include "util/util_mem.h"

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
}

static const char *std_sub(const char *name, const char *source, const char *types)
{
	static char buf[1024];
	snprintf(buf, sizeof(buf),
		 "apiVersion: eventing.kyma-project.io/v1alpha2\nkind: Subscription\n"
		 "metadata:\n  name: %s\nspec:\n  source: %s\n  types: %s\n"
		 "  sink: http://127.0.0.1:1/\n",
		 name, source, types);
	return buf;
}

/* Runs the loop until the registry has applied n scans (each scan is one pool job). */
static void run_until_scans(uv_loop_t *loop, struct evd_registry *reg, double n)
{
	for (int i = 0; i < 200; i++) {
		struct evd_buf b = EVD_BUF_INIT;
		evd_registry_status_json(reg, &b);
		cJSON *root = cJSON_Parse(b.data);
		double scans = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "summary"), "scans")->valuedouble;
		cJSON_Delete(root);
		evd_buf_free(&b);
		if (scans >= n)
			return;
		uv_run(loop, UV_RUN_ONCE);
	}
}

/* A stand-in for the dispatcher's delivery figures: adds status.delivery to default/one only. */
static int extra_calls;
static void add_delivery(void *data, const char *ns, const char *name, cJSON *status)
{
	CHECK_STR((const char *)data, "dispatch");
	extra_calls++;
	if (strcmp(ns, "default") != 0 || strcmp(name, "one") != 0)
		return;
	cJSON *d = cJSON_AddObjectToObject(status, "delivery");
	cJSON_AddNumberToObject(d, "delivered", 42);
	cJSON_AddNumberToObject(d, "failed", 1);
}

/* item.status.key */
static cJSON *st_get(const cJSON *item, const char *key)
{
	return cJSON_GetObjectItem(cJSON_GetObjectItem(item, "status"), key);
}

/* The JSON text of a node, for comparing a whole subtree (caller frees). */
static char *text(const cJSON *o)
{
	return o ? cJSON_PrintUnformatted(o) : strdup("(missing)");
}

static cJSON *status(struct evd_registry *reg)
{
	struct evd_buf b = EVD_BUF_INIT;
	evd_registry_status_json(reg, &b);
	cJSON *root = cJSON_Parse(b.data);
	evd_buf_free(&b);
	return root;
}

int main(void)
{
	char dir[] = "/tmp/evd-registry-live-XXXXXX";
	uv_loop_t loop;
	struct evd_registry *reg = NULL;
	struct evd_metrics *metrics = evd_metrics_new();

	CHECK(mkdtemp(dir) != NULL);
	write_file(dir, "a.yaml", std_sub("one", "commerce", "[order.created.v1, order.paid.v2]"));
	write_file(dir, "b.yaml", std_sub("two", "commerce", "[order.created.v1]"));
	write_file(dir, "c.yaml",
		   "apiVersion: eventing.kyma-project.io/v1alpha2\nkind: Subscription\n"
		   "metadata:\n  name: three\nspec:\n  typeMatching: exact\n  source: \"\"\n"
		   "  types: [sap.kyma.custom.commerce.order.shipped.v3, sap.kyma.custom.other.x.v1,\n"
		   "          commerce.order.created.v1]\n"
		   "  sink: http://127.0.0.1:1/\n");
	/* v1alpha2 fields are strings in Kyma, whatever YAML would make of them. */
	write_file(dir, "d.yaml",
		   "apiVersion: eventing.kyma-project.io/v1alpha2\nkind: Subscription\n"
		   "metadata:\n  name: four\nspec:\n  id: 12345678901234567890\n  source: shop\n"
		   "  types: [order.created.v1]\n  sink: http://127.0.0.1:1/\n"
		   "  config: {maxInFlightMessages: 7}\n");
	/* v1alpha1: the spec as written (not the conversion), YAML's types kept. */
	write_file(dir, "e.yaml",
		   "# a comment\n"
		   "apiVersion: eventing.kyma-project.io/v1alpha1\nkind: Subscription\n"
		   "metadata:\n  name: five\n  namespace: legacy\n"
		   "  labels: {app: shop, tier: 1}\n"
		   "  annotations: {note: hi, eventingd/line: \"999\"}\n"
		   "spec:\n  sink: http://127.0.0.1:1/\n  filter:\n    filters:\n"
		   "      - eventSource: {property: source, type: exact, value: noapp}\n"
		   "        eventType: {property: type, type: exact,\n"
		   "                    value: sap.kyma.custom.noapp.order.created.v1}\n"
		   "  config:\n    maxInFlightMessages: 5\n");

	struct evd_config *cfg = evd_config_defaults(true);
	free(cfg->subscriptions.dir);
	cfg->subscriptions.dir = evd_xstrdup(dir);
	uv_loop_init(&loop);
	CHECK_INT(evd_registry_new(&loop, NULL, NULL, cfg, metrics, &reg), 0);
	static char tag[] = "dispatch";
	evd_registry_set_status_extra(reg, add_delivery, tag);
	CHECK_INT(evd_registry_start(reg), 0);
	/* Before the first scan nobody knows: every subject counts as wanted (publish counts
	 * nothing as unrouted). */
	CHECK(evd_registry_wants_subject(reg, "kyma.nobody.x.v1"));
	run_until_scans(&loop, reg, 1);
	CHECK(evd_registry_loaded(reg));

	/* Subjects the active subscriptions' consumers filter on, standard and exact. */
	CHECK(evd_registry_wants_subject(reg, "kyma.commerce.order.created.v1"));
	CHECK(evd_registry_wants_subject(reg, "kyma.commerce.order.paid.v2"));
	CHECK(evd_registry_wants_subject(reg, "kyma.shop.order.created.v1"));
	CHECK(evd_registry_wants_subject(reg, "kyma.sap.kyma.custom.commerce.order.shipped.v3"));
	CHECK(!evd_registry_wants_subject(reg, "kyma.nobody.x.v1"));
	CHECK(!evd_registry_wants_subject(reg, "kyma.commerce.order.shipped.v3"));
	CHECK(!evd_registry_wants_subject(reg, "kyma.commerce.order.created"));
	CHECK(!evd_registry_wants_subject(reg, "kyma.commerce.order.created.v1.x"));

	size_t active, ready;
	evd_registry_counts(reg, &active, &ready);
	CHECK_INT(active, 5);
	CHECK_INT(ready, 0); /* no JetStream */

	/* Kyma's subscribed answer: standard by source, exact by prefix, deduplicated. */
	struct evd_buf b = EVD_BUF_INIT;
	evd_registry_subscribed_json(reg, "commerce", "sap.kyma.custom", &b);
	CHECK_STR(b.data, "{\"eventsInfo\":[{\"name\":\"order.created\",\"version\":\"v1\"},"
			  "{\"name\":\"order.paid\",\"version\":\"v2\"},"
			  "{\"name\":\"order.shipped\",\"version\":\"v3\"}]}\n");
	evd_buf_reset(&b);
	evd_registry_subscribed_json(reg, "nobody", "sap.kyma.custom", &b);
	CHECK_STR(b.data, "{\"eventsInfo\":[]}\n");

	/* One subscription: Kyma's resource shape; not active without JetStream. */
	evd_buf_reset(&b);
	extra_calls = 0;
	CHECK_INT(evd_registry_subscription_json(reg, "default", "one", &b), 0);
	CHECK_INT(extra_calls, 1);
	cJSON *s = cJSON_Parse(b.data);
	CHECK_STR(cJSON_GetObjectItem(s, "apiVersion")->valuestring,
		  "eventing.kyma-project.io/v1alpha2");
	CHECK_STR(cJSON_GetObjectItem(s, "kind")->valuestring, "Subscription");
	cJSON *md = cJSON_GetObjectItem(s, "metadata");
	CHECK_STR(cJSON_GetObjectItem(md, "name")->valuestring, "one");
	CHECK_STR(cJSON_GetObjectItem(md, "namespace")->valuestring, "default");
	CHECK(cJSON_GetObjectItem(md, "labels") == NULL);
	cJSON *ann = cJSON_GetObjectItem(md, "annotations");
	CHECK(strstr(cJSON_GetObjectItem(ann, "eventingd/file")->valuestring, "/a.yaml") != NULL);
	CHECK_STR(cJSON_GetObjectItem(ann, "eventingd/line")->valuestring, "1");
	char *t = text(cJSON_GetObjectItem(s, "spec"));
	CHECK_STR(t, "{\"source\":\"commerce\",\"types\":[\"order.created.v1\",\"order.paid.v2\"],"
		     "\"sink\":\"http://127.0.0.1:1/\"}");
	free(t);
	CHECK(cJSON_IsFalse(st_get(s, "ready")));
	cJSON *conds = st_get(s, "conditions");
	CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(conds, 0), "type")->valuestring,
		  "Subscription spec valid");
	CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(conds, 0), "status")->valuestring, "True");
	CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(conds, 1), "reason")->valuestring,
		  "NATS Subscription not active");
	CHECK(strstr(st_get(s, "lastError")->valuestring, "JetStream is not ready") != NULL);
	cJSON *types = st_get(s, "types");
	CHECK_INT(cJSON_GetArraySize(types), 2);
	CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(types, 1), "cleanType")->valuestring,
		  "order.paid.v2");
	cJSON *backend = st_get(s, "backend");
	cJSON *bt = cJSON_GetObjectItem(backend, "types");
	CHECK_INT(strlen(cJSON_GetObjectItem(cJSON_GetArrayItem(bt, 0), "consumerName")->valuestring), 32);
	/* No JetStream, so no counters yet: no snapshot time either. */
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(backend, "refreshedAt")));
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(backend, "consumers")), 2);
	t = text(st_get(s, "config"));
	CHECK_STR(t, "{\"maxInFlightMessages\":10,\"contentMode\":\"BINARY\"}");
	free(t);
	/* What the hook added, after the registry's own fields. */
	t = text(st_get(s, "delivery"));
	CHECK_STR(t, "{\"delivered\":42,\"failed\":1}");
	free(t);
	cJSON_Delete(s);
	evd_buf_reset(&b);
	CHECK_INT(evd_registry_subscription_json(reg, "default", "nope", &b), -ENOENT);
	CHECK_INT(b.len, 0);

	/* v1alpha2 spec values are strings, as in Kyma's CRD (a YAML integer is shown as "7"). */
	evd_buf_reset(&b);
	CHECK_INT(evd_registry_subscription_json(reg, "default", "four", &b), 0);
	s = cJSON_Parse(b.data);
	t = text(cJSON_GetObjectItem(s, "spec"));
	CHECK_STR(t, "{\"id\":\"12345678901234567890\",\"source\":\"shop\","
		     "\"types\":[\"order.created.v1\"],\"sink\":\"http://127.0.0.1:1/\",\"config\":{\"maxInFlightMessages\":\"7\"}}");
	free(t);
	CHECK_INT(cJSON_GetObjectItem(st_get(s, "config"), "maxInFlightMessages")->valueint, 7);
	CHECK(st_get(s, "delivery") == NULL); /* the hook knows nothing of it */
	cJSON_Delete(s);

	/* v1alpha1: the v1alpha1 spec as written; status.types has the converted type. */
	evd_buf_reset(&b);
	CHECK_INT(evd_registry_subscription_json(reg, "legacy", "five", &b), 0);
	s = cJSON_Parse(b.data);
	CHECK_STR(cJSON_GetObjectItem(s, "apiVersion")->valuestring,
		  "eventing.kyma-project.io/v1alpha1");
	t = text(cJSON_GetObjectItem(s, "spec"));
	CHECK_STR(t, "{\"sink\":\"http://127.0.0.1:1/\",\"filter\":{\"filters\":[{\"eventSource\":"
		     "{\"property\":\"source\",\"type\":\"exact\",\"value\":\"noapp\"},\"eventType\":"
		     "{\"property\":\"type\",\"type\":\"exact\",\"value\":"
		     "\"sap.kyma.custom.noapp.order.created.v1\"}}]},\"config\":{\"maxInFlightMessages\":5}}");
	free(t);
	md = cJSON_GetObjectItem(s, "metadata");
	t = text(cJSON_GetObjectItem(md, "labels"));
	CHECK_STR(t, "{\"app\":\"shop\",\"tier\":\"1\"}");
	free(t);
	/* The file's annotations are kept; eventingd's own position wins over a stale one. */
	ann = cJSON_GetObjectItem(md, "annotations");
	CHECK_STR(cJSON_GetObjectItem(ann, "note")->valuestring, "hi");
	CHECK_STR(cJSON_GetObjectItem(ann, "eventingd/line")->valuestring, "2");
	cJSON *t0 = cJSON_GetArrayItem(st_get(s, "types"), 0);
	CHECK_STR(cJSON_GetObjectItem(t0, "originalType")->valuestring,
		  "sap.kyma.custom.noapp.order.created.v1");
	cJSON_Delete(s);

	/* The list: Kubernetes' List around the same items; the hook runs for each. */
	extra_calls = 0;
	cJSON *root0 = status(reg);
	CHECK_INT(extra_calls, 5);
	CHECK_STR(cJSON_GetObjectItem(root0, "apiVersion")->valuestring, "v1");
	CHECK_STR(cJSON_GetObjectItem(root0, "kind")->valuestring, "List");
	cJSON *items = cJSON_GetObjectItem(root0, "items");
	CHECK_INT(cJSON_GetArraySize(items), 5);
	/* Sorted by (namespace, name): default/four, one, three, two, legacy/five. */
	CHECK_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(items, 1), "metadata"),
				      "name")->valuestring, "one");
	CHECK(cJSON_IsNumber(cJSON_GetObjectItem(st_get(cJSON_GetArrayItem(items, 1), "delivery"),
						  "delivered")));
	CHECK(cJSON_IsArray(cJSON_GetObjectItem(root0, "files")));
	CHECK(cJSON_IsArray(cJSON_GetObjectItem(root0, "deleting")));
	cJSON_Delete(root0);
	/* Unhooked: nothing added. */
	evd_registry_set_status_extra(reg, NULL, NULL);
	extra_calls = 0;
	evd_buf_reset(&b);
	evd_registry_subscription_json(reg, "default", "one", &b);
	CHECK(strstr(b.data, "\"delivery\"") == NULL);
	CHECK_INT(extra_calls, 0);

	/* Type collision (reference §3.5): "two" and "three" share kyma.commerce.order.created.v1. */
	evd_buf_reset(&b);
	evd_registry_subscription_json(reg, "default", "three", &b);
	s = cJSON_Parse(b.data);
	conds = st_get(s, "conditions");
	CHECK_INT(cJSON_GetArraySize(conds), 3);
	CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(conds, 2), "type")->valuestring,
		  "Subscription type collision");
	CHECK(cJSON_GetArraySize(st_get(s, "warnings")) >= 1);
	cJSON_Delete(s);

	/* A broken edit: previous version active, the file reported; the metric counts it. */
	write_file(dir, "b.yaml", "apiVersion: [\n");
	evd_registry_rescan(reg);
	run_until_scans(&loop, reg, 2);
	cJSON *root = status(reg);
	cJSON *files = cJSON_GetObjectItem(root, "files"), *f;
	int failed = 0;
	cJSON_ArrayForEach(f, files)
	{
		if (cJSON_IsTrue(cJSON_GetObjectItem(f, "failed"))) {
			failed++;
			CHECK(cJSON_IsTrue(cJSON_GetObjectItem(f, "previousVersionActive")));
			CHECK(strstr(cJSON_GetArrayItem(cJSON_GetObjectItem(f, "errors"), 0)->valuestring,
				     "/b.yaml:2:1: ") != NULL);
		}
	}
	CHECK_INT(failed, 1);
	CHECK_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "summary"), "subscriptions")->valueint, 5);
	cJSON_Delete(root);
	evd_buf_reset(&b);
	evd_metrics_render(metrics, &b);
	CHECK(strstr(b.data, "eventingd_subscription_files_failed 1\n") != NULL);
	CHECK(strstr(b.data, "eventingd_subscriptions{state=\"not_ready\"} 5\n") != NULL);
	CHECK(strstr(b.data, "eventing_ec_subscription_status{subscription_name=\"one\","
			     "subscription_namespace=\"default\",consumer_name=\"") != NULL);

	/* Deleted: gone from the set and from the metrics. */
	char path[600];
	snprintf(path, sizeof(path), "%s/a.yaml", dir);
	unlink(path);
	evd_registry_rescan(reg);
	run_until_scans(&loop, reg, 3);
	evd_registry_counts(reg, &active, &ready);
	CHECK_INT(active, 4);
	/* Only "one" wanted order.paid.v2; order.created.v1 is still wanted by the others. */
	CHECK(!evd_registry_wants_subject(reg, "kyma.commerce.order.paid.v2"));
	CHECK(evd_registry_wants_subject(reg, "kyma.commerce.order.created.v1"));
	evd_buf_reset(&b);
	evd_metrics_render(metrics, &b);
	CHECK(strstr(b.data, "subscription_name=\"one\"") == NULL);

	evd_buf_free(&b);
	evd_registry_free(reg);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_INT(uv_loop_close(&loop), 0);
	evd_config_free(cfg);
	evd_metrics_free(metrics);
	const char *names[] = { "b.yaml", "c.yaml", "d.yaml", "e.yaml" };
	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
	UNIT_MAIN_END();
}
