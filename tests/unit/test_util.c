/* SPDX-License-Identifier: Apache-2.0 */
#include "unit.h"

#include <stdlib.h>

#include "util/util_buf.h"
#include "util/util_diag.h"
#include "util/util_log.h"

static void test_buf(void)
{
	struct evd_buf b = EVD_BUF_INIT;
	evd_buf_append_str(&b, "hello");
	evd_buf_append_char(&b, ' ');
	evd_buf_printf(&b, "%s %d", "world", 42);
	CHECK_STR(b.data, "hello world 42");
	CHECK_INT(b.len, 14);
	evd_buf_consume(&b, 6);
	CHECK_STR(b.data, "world 42");
	/* Growth well past the first allocation keeps content and terminator. */
	for (int i = 0; i < 1000; i++)
		evd_buf_append(&b, "0123456789", 10);
	CHECK_INT(b.len, 8 + 10000);
	CHECK(b.data[b.len] == '\0');
	char *s = evd_buf_steal(&b);
	CHECK(b.data == NULL && b.len == 0);
	free(s);
	evd_buf_free(&b);

	/* Reserving in an empty buffer already yields an empty string (found by fuzz_http_request:
	 * a request with Content-Length: 0 had an unterminated body). */
	struct evd_buf r = EVD_BUF_INIT;
	evd_buf_reserve(&r, 0);
	CHECK(r.data != NULL && r.data[0] == '\0');
	evd_buf_free(&r);
}

static void test_diag(void)
{
	struct evd_diag d = EVD_DIAG_INIT;
	struct evd_buf out = EVD_BUF_INIT;
	evd_diag_add(&d, EVD_DIAG_ERROR, "a.yaml", 3, 5, "dispatch.timeout", "must be below %s",
		     "dispatch.ack_wait");
	evd_diag_add(&d, EVD_DIAG_WARNING, "a.yaml", 7, 1, NULL, "no key");
	evd_diag_format(&d, &out);
	CHECK_STR(out.data, "a.yaml:3:5: dispatch.timeout: must be below dispatch.ack_wait\n"
			    "a.yaml:7:1: warning: no key\n");
	CHECK_INT(d.errors, 1);
	CHECK_INT(d.warnings, 1);
	evd_buf_free(&out);
	evd_diag_free(&d);
}

static void test_log_levels(void)
{
	enum evd_log_level l;
	CHECK(evd_log_level_parse("debug", &l) == 0 && l == EVD_LOG_DEBUG);
	CHECK(evd_log_level_parse("WARNING", &l) == 0 && l == EVD_LOG_WARN);
	CHECK(evd_log_level_parse("verbose", &l) != 0);
	CHECK_STR(evd_log_level_name(EVD_LOG_ERROR), "error");
}

int main(void)
{
	test_buf();
	test_diag();
	test_log_levels();
	UNIT_MAIN_END();
}
