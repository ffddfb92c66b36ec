/* SPDX-License-Identifier: Apache-2.0 */
#include "unit.h"

#include "config/config_yaml.h"

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

int main(void)
{
	test_positions();
	test_errors();
	UNIT_MAIN_END();
}
