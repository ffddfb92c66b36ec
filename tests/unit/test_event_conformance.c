/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CloudEvents JSON-format conformance vectors, two sets in the same format (a "tests" list of
 * {id, event} or {id, batch}; an event or batch given as a JSON string is the raw body):
 *   - the project's own, tests/data/cloudevents-json/ (written for eventingd from the spec;
 *     always there, always run: missing is a failure);
 *   - the official ones (cloudevents/conformance, format/json/), kept outside the repository in
 *     shared/conformance/cloudevents-json/ beside the checkout: run when found; when not found
 *     the test says so and passes, except under CI=true, where it fails (CI must run them).
 * Every valid event must decode in structured mode, survive the NATS binary-mode encoding
 * unchanged, and decode in HTTP binary mode when its attributes are sent as ce- headers; every
 * invalid one must be refused; batches likewise.
 *
 * Arguments: the project's directory, then candidate directories of the official vectors (the
 * first that holds them is used).
 */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <strings.h>

#include <cJSON.h>

#include "event/event_ce.h"
#include "util/util_buf.h"

static char *slurp(const char *dir, const char *name)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct evd_buf b = EVD_BUF_INIT;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		evd_buf_append(&b, chunk, n);
	fclose(f);
	return evd_buf_steal(&b);
}

static bool same_event(const struct evd_cloudevent *a, const struct evd_cloudevent *b)
{
	for (int i = 0; i < EVD_CE_NATTRS; i++) {
		if (!a->attr[i] != !b->attr[i])
			return false;
		if (a->attr[i] && strcmp(a->attr[i], b->attr[i]) != 0)
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

/* NATS encoding and back. */
static void check_nats_roundtrip(struct evd_cloudevent *ev, const char *id)
{
	struct evd_ce_nats_headers h;
	struct evd_cloudevent back;
	struct evd_buf err = EVD_BUF_INIT;
	evd_ce_to_nats_headers(ev, &h);
	int rc = evd_ce_decode_nats(h.key, h.value, h.n, ev->data, ev->data_len, &back, &err);
	if (rc != 0)
		fprintf(stderr, "%s: NATS decode: %s\n", id, err.data);
	CHECK_INT(rc, 0);
	if (rc == 0) {
		if (!same_event(ev, &back))
			fprintf(stderr, "%s: NATS round trip changed the event\n", id);
		CHECK(same_event(ev, &back));
		evd_ce_free(&back);
	}
	evd_buf_free(&err);
}

/* HTTP binary mode: ce- headers percent-encoded, datacontenttype as Content-Type, data as body. */
static void check_binary(struct evd_cloudevent *ev, const char *id)
{
	struct evd_header hs[EVD_CE_NATTRS + EVD_CE_MAX_EXTENSIONS];
	char *owned[EVD_CE_NATTRS + EVD_CE_MAX_EXTENSIONS * 2];
	size_t n = 0, no = 0;
	for (int a = 0; a < EVD_CE_NATTRS; a++) {
		if (!ev->attr[a])
			continue;
		if (a == EVD_CE_DATACONTENTTYPE) {
			hs[n++] = (struct evd_header){ "Content-Type", 12, ev->attr[a], ev->attr_len[a] };
			continue;
		}
		struct evd_buf name = EVD_BUF_INIT;
		evd_buf_printf(&name, "ce-%s", evd_ce_attr_name(a));
		char *v = malloc(3 * ev->attr_len[a] + 1);
		size_t vl = evd_ce_percent_encode(ev->attr[a], ev->attr_len[a], v);
		hs[n++] = (struct evd_header){ name.data, name.len, v, vl };
		owned[no++] = evd_buf_steal(&name);
		owned[no++] = v;
	}
	for (unsigned i = 0; i < ev->n_ext; i++) {
		struct evd_buf name = EVD_BUF_INIT;
		evd_buf_printf(&name, "ce-%s", ev->ext[i].name);
		char *v = malloc(3 * ev->ext[i].value_len + 1);
		size_t vl = evd_ce_percent_encode(ev->ext[i].value, ev->ext[i].value_len, v);
		hs[n++] = (struct evd_header){ name.data, name.len, v, vl };
		owned[no++] = evd_buf_steal(&name);
		owned[no++] = v;
	}
	struct evd_cloudevent back;
	struct evd_buf err = EVD_BUF_INIT;
	int rc = evd_ce_decode_binary(hs, n, ev->data, ev->data_len, &back, &err);
	if (rc != 0)
		fprintf(stderr, "%s: binary decode: %s\n", id, err.data);
	CHECK_INT(rc, 0);
	if (rc == 0) {
		CHECK(same_event(ev, &back));
		evd_ce_free(&back);
	}
	evd_buf_free(&err);
	for (size_t i = 0; i < no; i++)
		free(owned[i]);
}

/* The request body a vector stands for: a JSON string is the raw body, else the JSON itself. */
static char *body_of(const cJSON *v)
{
	if (cJSON_IsString(v))
		return strdup(v->valuestring);
	return cJSON_PrintUnformatted(v);
}

static void run_events(const char *dir, const char *file, bool valid)
{
	char *text = slurp(dir, file);
	CHECK(text != NULL);
	cJSON *root = cJSON_Parse(text);
	CHECK(root != NULL);
	const cJSON *tests = cJSON_GetObjectItemCaseSensitive(root, "tests"), *t;
	int count = 0;
	cJSON_ArrayForEach(t, tests)
	{
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "id"));
		char *json = body_of(cJSON_GetObjectItemCaseSensitive(t, "event"));
		struct evd_cloudevent ev;
		struct evd_buf err = EVD_BUF_INIT;
		int rc = evd_ce_decode_structured(json, strlen(json), &ev, &err);
		count++;
		if ((rc == 0) != valid)
			fprintf(stderr, "%s/%s: %s (%s)\n", file, id, valid ? "refused" : "accepted",
				err.data ? err.data : "");
		CHECK_INT(rc, valid ? 0 : -EINVAL);
		if (rc == 0) {
			check_nats_roundtrip(&ev, id);
			check_binary(&ev, id);
			evd_ce_free(&ev);
		} else {
			printf("%-40s refused: %s\n", id, err.data);
		}
		evd_buf_free(&err);
		free(json);
	}
	CHECK(count > 0);
	cJSON_Delete(root);
	free(text);
}

static void run_batches(const char *dir, const char *file, bool valid)
{
	char *text = slurp(dir, file);
	CHECK(text != NULL);
	cJSON *root = cJSON_Parse(text);
	CHECK(root != NULL);
	const cJSON *tests = cJSON_GetObjectItemCaseSensitive(root, "tests"), *t;
	int count = 0;
	cJSON_ArrayForEach(t, tests)
	{
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "id"));
		const cJSON *batch = cJSON_GetObjectItemCaseSensitive(t, "batch");
		char *json = body_of(batch);
		struct evd_cloudevent *evs = NULL;
		size_t n = 0;
		struct evd_buf err = EVD_BUF_INIT;
		int rc = evd_ce_decode_batch(json, strlen(json), 0, &evs, &n, &err);
		count++;
		if ((rc == 0) != valid)
			fprintf(stderr, "%s/%s: %s (%s)\n", file, id, valid ? "refused" : "accepted",
				err.data ? err.data : "");
		CHECK_INT(rc, valid ? 0 : -EINVAL);
		if (rc == 0) {
			CHECK_INT(n, cJSON_GetArraySize(batch));
			for (size_t i = 0; i < n; i++)
				check_nats_roundtrip(&evs[i], id);
			evd_ce_free_batch(evs, n);
		} else {
			printf("%-40s refused: %s\n", id, err.data);
		}
		evd_buf_free(&err);
		free(json);
	}
	CHECK(count > 0);
	cJSON_Delete(root);
	free(text);
}

static bool has_vectors(const char *dir)
{
	char *probe = slurp(dir, "valid-events.json");
	free(probe);
	return probe != NULL;
}

static void run_dir(const char *dir)
{
	int before = unit_passed + unit_failed;
	printf("vectors from %s\n", dir);
	run_events(dir, "valid-events.json", true);
	run_events(dir, "invalid-events.json", false);
	run_batches(dir, "valid-batches.json", true);
	run_batches(dir, "invalid-batches.json", false);
	printf("%d checks on the vectors of %s\n", unit_passed + unit_failed - before, dir);
}

/* CI=true (or 1), as CI services and .ci/run set it. */
static bool in_ci(void)
{
	const char *ci = getenv("CI");
	return ci && (strcasecmp(ci, "true") == 0 || strcmp(ci, "1") == 0);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: test_event_conformance OWN_DIR [OFFICIAL_DIR...]\n");
		return 2;
	}
	/* The project's own vectors: part of the repository, so never skipped. */
	CHECK(has_vectors(argv[1]));
	if (has_vectors(argv[1]))
		run_dir(argv[1]);
	else
		fprintf(stderr, "%s: the project's vectors are missing\n", argv[1]);

	const char *official = NULL;
	for (int i = 2; i < argc && !official; i++)
		if (has_vectors(argv[i]))
			official = argv[i];
	if (official) {
		run_dir(official);
	} else if (in_ci()) {
		unit_failed++;
		fprintf(stderr, "CI: the official CloudEvents vectors (shared/conformance/"
				"cloudevents-json/ beside the checkout) are missing:");
		for (int i = 2; i < argc; i++)
			fprintf(stderr, " %s", argv[i]);
		fprintf(stderr, "\n");
	} else {
		printf("official vectors not found beside the checkout (../shared/conformance/"
		       "cloudevents-json): only the project's own ran (CI=true makes this a failure)\n");
	}
	UNIT_MAIN_END();
}
