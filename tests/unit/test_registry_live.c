/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The running registry without NATS (nats NULL: status only): a directory read on the thread
 * pool and applied on the loop, a rescan after an edit, the status JSON (Kyma's conditions while
 * JetStream is not there), the metrics, and Kyma's /v1/events/subscribed answer.
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
	write_file(dir, "d.yaml", std_sub("four", "shop", "[order.created.v1]"));

	struct evd_config *cfg = evd_config_defaults(true);
	free(cfg->subscriptions.dir);
	cfg->subscriptions.dir = evd_xstrdup(dir);
	uv_loop_init(&loop);
	CHECK_INT(evd_registry_new(&loop, NULL, NULL, cfg, metrics, &reg), 0);
	CHECK_INT(evd_registry_start(reg), 0);
	run_until_scans(&loop, reg, 1);
	CHECK(evd_registry_loaded(reg));

	size_t active, ready;
	evd_registry_counts(reg, &active, &ready);
	CHECK_INT(active, 4);
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

	/* One subscription: Kyma's shape; not active without JetStream. */
	evd_buf_reset(&b);
	CHECK_INT(evd_registry_subscription_json(reg, "default", "one", &b), 0);
	cJSON *s = cJSON_Parse(b.data);
	CHECK(cJSON_IsFalse(cJSON_GetObjectItem(s, "ready")));
	cJSON *conds = cJSON_GetObjectItem(s, "conditions");
	CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(conds, 0), "type")->valuestring,
		  "Subscription spec valid");
	CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(conds, 0), "status")->valuestring, "True");
	CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(conds, 1), "reason")->valuestring,
		  "NATS Subscription not active");
	CHECK(strstr(cJSON_GetObjectItem(s, "lastError")->valuestring, "JetStream is not ready") != NULL);
	cJSON *types = cJSON_GetObjectItem(s, "types");
	CHECK_INT(cJSON_GetArraySize(types), 2);
	CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(types, 1), "cleanType")->valuestring,
		  "order.paid.v2");
	cJSON *bt = cJSON_GetObjectItem(cJSON_GetObjectItem(s, "backend"), "types");
	CHECK_INT(strlen(cJSON_GetObjectItem(cJSON_GetArrayItem(bt, 0), "consumerName")->valuestring), 32);
	cJSON_Delete(s);
	evd_buf_reset(&b);
	CHECK_INT(evd_registry_subscription_json(reg, "default", "nope", &b), -ENOENT);
	CHECK_INT(b.len, 0);

	/* Type collision (reference §3.5): "two" and "three" share kyma.commerce.order.created.v1. */
	evd_buf_reset(&b);
	evd_registry_subscription_json(reg, "default", "three", &b);
	s = cJSON_Parse(b.data);
	conds = cJSON_GetObjectItem(s, "conditions");
	CHECK_INT(cJSON_GetArraySize(conds), 3);
	CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(conds, 2), "type")->valuestring,
		  "Subscription type collision");
	CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(s, "warnings")) >= 1);
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
	CHECK_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "summary"), "subscriptions")->valueint, 4);
	cJSON_Delete(root);
	evd_buf_reset(&b);
	evd_metrics_render(metrics, &b);
	CHECK(strstr(b.data, "eventingd_subscription_files_failed 1\n") != NULL);
	CHECK(strstr(b.data, "eventingd_subscriptions{state=\"not_ready\"} 4\n") != NULL);
	CHECK(strstr(b.data, "eventing_ec_subscription_status{subscription_name=\"one\","
			     "subscription_namespace=\"default\",consumer_name=\"") != NULL);

	/* Deleted: gone from the set and from the metrics. */
	char path[600];
	snprintf(path, sizeof(path), "%s/a.yaml", dir);
	unlink(path);
	evd_registry_rescan(reg);
	run_until_scans(&loop, reg, 3);
	evd_registry_counts(reg, &active, &ready);
	CHECK_INT(active, 3);
	evd_buf_reset(&b);
	evd_metrics_render(metrics, &b);
	CHECK(strstr(b.data, "subscription_name=\"one\"") == NULL);

	evd_buf_free(&b);
	evd_registry_free(reg);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_INT(uv_loop_close(&loop), 0);
	evd_config_free(cfg);
	evd_metrics_free(metrics);
	const char *names[] = { "b.yaml", "c.yaml", "d.yaml" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
	UNIT_MAIN_END();
}
