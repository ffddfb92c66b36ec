/* SPDX-License-Identifier: Apache-2.0 */
#include "unit.h"

#include "admin/admin_metrics.h"

static double forty_two(void *data)
{
	(void)data;
	return 42;
}

int main(void)
{
	struct evd_metrics *m = evd_metrics_new();
	static const char *const labels[] = { "code", "path" };
	static const double buckets[] = { 0.001, 0.01, 0.1 };
	struct evd_metric *c = evd_metrics_add(m, EVD_METRIC_COUNTER, "t_requests_total", "Requests.",
					       2, labels, NULL, 0, 3);
	struct evd_metric *h = evd_metrics_add(m, EVD_METRIC_HISTOGRAM, "t_duration_seconds",
					       "Durations.", 0, NULL, buckets, 3, 0);
	evd_metrics_add_gauge_fn(m, "t_answer", "The answer.", forty_two, NULL);

	const char *a[] = { "204", "/publish" };
	const char *b[] = { "400", "/pub\"lish\n" };
	evd_metric_add(c, a, 1);
	evd_metric_add(c, a, 2);
	evd_metric_add(c, b, 1);
	CHECK(evd_metric_get(c, a) == 3);
	/* The cap of 3 label sets: the 4th and 5th fold into one _overflow_ series. */
	const char *x[] = { "500", "/x" }, *y[] = { "501", "/y" }, *z[] = { "502", "/z" };
	evd_metric_add(c, x, 1);
	evd_metric_add(c, y, 1);
	evd_metric_add(c, z, 1);
	const char *of[] = { "_overflow_", "_overflow_" };
	CHECK(evd_metric_get(c, of) == 2);
	CHECK(evd_metric_get(c, y) == 0);

	evd_metric_observe(h, NULL, 0.0005);
	evd_metric_observe(h, NULL, 0.05);
	evd_metric_observe(h, NULL, 5);

	struct evd_buf out = EVD_BUF_INIT;
	evd_metrics_render(m, &out);
	CHECK(strstr(out.data, "t_requests_total{code=\"204\",path=\"/publish\"} 3\n") != NULL);
	CHECK(strstr(out.data, "t_requests_total{code=\"400\",path=\"/pub\\\"lish\\n\"} 1\n") != NULL);
	CHECK(strstr(out.data, "eventingd_metrics_series_dropped_total 2\n") != NULL);
	CHECK(strstr(out.data, "t_duration_seconds_bucket{le=\"0.001\"} 1\n") != NULL);
	CHECK(strstr(out.data, "t_duration_seconds_bucket{le=\"0.1\"} 2\n") != NULL);
	CHECK(strstr(out.data, "t_duration_seconds_bucket{le=\"+Inf\"} 3\n") != NULL);
	CHECK(strstr(out.data, "t_duration_seconds_count 3\n") != NULL);
	CHECK(strstr(out.data, "# TYPE t_duration_seconds histogram\n") != NULL);
	CHECK(strstr(out.data, "t_answer 42\n") != NULL);

	/* Many series force rehashing; every one stays findable. */
	struct evd_metric *big = evd_metrics_add(m, EVD_METRIC_GAUGE, "t_big", "Big.", 1, labels,
						 NULL, 0, 5000);
	char name[32];
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		const char *v[] = { name };
		evd_metric_set(big, v, i);
	}
	int ok = 1;
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		const char *v[] = { name };
		ok &= evd_metric_get(big, v) == i;
	}
	CHECK(ok);

	/* Removed series disappear from lookups and from the output; the rest stay findable. */
	for (int i = 0; i < 3000; i += 2) {
		snprintf(name, sizeof(name), "s%d", i);
		const char *v[] = { name };
		evd_metric_remove(big, v);
	}
	const char *gone[] = { "nope" };
	evd_metric_remove(big, gone);
	ok = 1;
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		const char *v[] = { name };
		ok &= evd_metric_get(big, v) == (i % 2 ? i : 0);
	}
	CHECK(ok);
	const char *last[] = { "s2999" }, *first[] = { "s1" };
	evd_metric_remove(big, last);
	evd_metric_remove(big, first);
	evd_metric_set(big, last, 7);
	evd_buf_reset(&out);
	evd_metrics_render(m, &out);
	CHECK(strstr(out.data, "t_big{code=\"s0\"}") == NULL);
	CHECK(strstr(out.data, "t_big{code=\"s1\"}") == NULL);
	CHECK(strstr(out.data, "t_big{code=\"s3\"} 3\n") != NULL);
	CHECK(strstr(out.data, "t_big{code=\"s2999\"} 7\n") != NULL);

	/* Removing by a partial label set: NULL matches any value. */
	static const char *const two[] = { "sub", "code" };
	struct evd_metric *hd = evd_metrics_add(m, EVD_METRIC_HISTOGRAM, "t_dur", "h", 2, two,
					       (const double[]){ 1, 2 }, 2, 100);
	const char *a1[] = { "a", "200" }, *a2[] = { "a", "503" }, *b1[] = { "b", "200" };
	evd_metric_observe(hd, a1, 0.5);
	evd_metric_observe(hd, a2, 1.5);
	evd_metric_observe(hd, b1, 0.5);
	const char *all_a[] = { "a", NULL };
	CHECK_INT(evd_metric_remove_matching(hd, all_a), 2);
	CHECK_INT(evd_metric_remove_matching(hd, all_a), 0);
	CHECK(evd_metric_get(hd, b1) == 1);
	CHECK(evd_metric_get(hd, a1) == 0);
	evd_buf_reset(&out);
	evd_metrics_render(m, &out);
	CHECK(strstr(out.data, "sub=\"a\"") == NULL);
	CHECK(strstr(out.data, "t_dur_count{sub=\"b\",code=\"200\"} 1\n") != NULL);
	evd_buf_free(&out);
	evd_metrics_free(m);
	UNIT_MAIN_END();
}
