/* SPDX-License-Identifier: Apache-2.0 */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "config/config_yaml.h"
#include "util/util_buf.h"

static void test_positions(void)
{
	const char *text = "a: 1\n"
			   "b:\n"
			   "  c: \"x\"\n"
			   "  d: [1, 2]\n"
			   "---\n"
			   "e: ~\n";
	struct evd_yaml_stream *s = NULL;
	struct evd_diag d = EVD_DIAG_INIT;
	CHECK_INT(evd_yaml_parse_string("t.yaml", text, strlen(text), &s, &d), 0);
	if (!s)
		return;
	CHECK_INT(s->ndocs, 2);
	const struct evd_yaml_node *root = s->docs[0].root;
	const struct evd_yaml_node *a = evd_yaml_map_get(root, "a");
	CHECK(a && a->kind == EVD_YAML_SCALAR && a->plain);
	CHECK_STR(a->value, "1");
	CHECK_INT(a->key_line, 1);
	CHECK_INT(a->key_col, 1);
	CHECK_INT(a->col, 4);
	const struct evd_yaml_node *c = evd_yaml_map_get(evd_yaml_map_get(root, "b"), "c");
	CHECK(c && !c->plain);
	CHECK_INT(c->key_line, 3);
	CHECK_INT(c->key_col, 3);
	const struct evd_yaml_node *dn = evd_yaml_map_get(evd_yaml_map_get(root, "b"), "d");
	CHECK(dn && dn->kind == EVD_YAML_SEQ && dn->count == 2);
	CHECK(evd_yaml_is_null(evd_yaml_map_get(s->docs[1].root, "e")));
	evd_yaml_stream_free(s);
	evd_diag_free(&d);
}

static void test_errors(void)
{
	static const struct {
		const char *text;
		int line, col;
		const char *needle;
	} cases[] = {
		{ "a: 1\na: 2\n", 2, 1, "duplicate key" },
		{ "a: &x 1\nb: *x\n", 1, 4, "anchors" },
		{ "a: [1, 2\n", 2, 1, "YAML syntax error" },
		{ "a:\n  - b\n c: 1\n", 3, 2, "YAML syntax error" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct evd_yaml_stream *s = NULL;
		struct evd_diag d = EVD_DIAG_INIT;
		int rc = evd_yaml_parse_string("t.yaml", cases[i].text, strlen(cases[i].text), &s, &d);
		CHECK(rc < 0);
		CHECK(s == NULL);
		CHECK_INT(d.errors, 1);
		if (d.count) {
			CHECK_INT(d.entries[0].line, cases[i].line);
			CHECK_INT(d.entries[0].col, cases[i].col);
			CHECK(strstr(d.entries[0].message, cases[i].needle) != NULL);
			if (!strstr(d.entries[0].message, cases[i].needle))
				fprintf(stderr, "  case %zu: %s\n", i, d.entries[0].message);
		}
		evd_diag_free(&d);
	}
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A huge mapping: duplicates are found with a hash set, not a scan per key (that took 5 s). */
static void test_big_mapping(void)
{
	struct evd_buf b = EVD_BUF_INIT;
	for (int i = 0; i < 60000; i++)
		evd_buf_printf(&b, "k%d: %d\n", i, i);
	struct evd_yaml_stream *s = NULL;
	struct evd_diag d = EVD_DIAG_INIT;
	double t0 = now_s();
	CHECK_INT(evd_yaml_parse_string("t.yaml", b.data, b.len, &s, &d), 0);
	double took = now_s() - t0;
	/* A scan per key took 5 s; the bound grows with EVD_TEST_TIME_SCALE (sanitizer builds). */
	double bound = (double)unit_scaled_ms(1000) / 1000.0;
	if (took >= bound)
		fprintf(stderr, "  60000 keys took %.2f s\n", took);
	CHECK(took < bound);
	CHECK(s && s->ndocs == 1 && s->docs[0].root->count == 60000);
	CHECK(s && evd_yaml_map_get(s->docs[0].root, "k59999") != NULL);
	evd_yaml_stream_free(s);
	s = NULL;
	/* A duplicate far into it is still found, where it stands. */
	evd_buf_append_str(&b, "k123: again\n");
	CHECK_INT(evd_yaml_parse_string("t.yaml", b.data, b.len, &s, &d), -EINVAL);
	CHECK(s == NULL);
	CHECK_INT(d.errors, 1);
	if (d.count) {
		CHECK_INT(d.entries[0].line, 60001);
		CHECK(strstr(d.entries[0].message, "duplicate key") != NULL);
	}
	evd_diag_free(&d);
	evd_buf_free(&b);
}

/* Texts over EVD_YAML_MAX_BYTES are refused at 1:1, from memory and from a file. */
static void test_too_big(void)
{
	size_t len = EVD_YAML_MAX_BYTES + 1;
	char *text = malloc(len);
	memset(text, '#', len); /* one long comment: valid YAML, just too big */
	struct evd_yaml_stream *s = NULL;
	struct evd_diag d = EVD_DIAG_INIT;
	CHECK_INT(evd_yaml_parse_string("t.yaml", text, len, &s, &d), -EFBIG);
	CHECK(s == NULL);
	CHECK_INT(evd_yaml_parse_string("t.yaml", text, len - 1, &s, &d), 0);
	evd_yaml_stream_free(s);
	s = NULL;

	char path[] = "/tmp/evd-yaml-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK(write(fd, text, len) == (ssize_t)len);
	close(fd);
	evd_diag_free(&d);
	CHECK_INT(evd_yaml_parse_file(path, &s, &d), -EFBIG);
	CHECK(s == NULL);
	struct evd_buf out = EVD_BUF_INIT;
	evd_diag_format(&d, &out);
	struct evd_buf want = EVD_BUF_INIT;
	evd_buf_printf(&want, "%s:1:1: larger than 1024 KiB: configurations and subscription "
			      "manifests are small; split the file\n", path);
	CHECK_STR(out.data, want.data);
	evd_buf_free(&out);
	evd_buf_free(&want);
	evd_diag_free(&d);
	/* Exactly the limit still parses. */
	CHECK_INT(truncate(path, (off_t)(len - 1)), 0);
	CHECK_INT(evd_yaml_parse_file(path, &s, &d), 0);
	evd_yaml_stream_free(s);
	evd_diag_free(&d);
	unlink(path);
	free(text);
}

int main(void)
{
	test_positions();
	test_errors();
	test_big_mapping();
	test_too_big();
	UNIT_MAIN_END();
}
