/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pure parts of the nats wrapper: URL redaction for logs and status, natsStatus -> errno,
 * state and policy names. The connection itself is tested in tests/integration/test_nats_conn.c.
 */
#include <errno.h>
#include <stdlib.h>

#include "nats/nats_conn.h"
#include "unit.h"
#include "util/util_log.h"

static void test_redact(void)
{
	static const struct {
		const char *in, *want;
	} rows[] = {
		{ "", "" },
		{ "nats://127.0.0.1:4222", "nats://127.0.0.1:4222" },
		{ "nats://user:secret@h:4222", "nats://***@h:4222" },
		{ "nats://token@h:4222", "nats://***@h:4222" },
		{ "nats://a:4222,nats://u:p@b:4222,tls://c", "nats://a:4222,nats://***@b:4222,tls://c" },
		{ "u:p@h:4222", "***@h:4222" },
		/* nats.c's natsUrl_Create ends the user-info at the last '@' of a URL, '/' or not:
		 * "h:4222/x" is user-info to it, so it is hidden (a raw '/' in a password). */
		{ "nats://h:4222/x@y", "nats://***@y" },
		{ "nats://u:p/w@h:4222,nats://v:q@@k", "nats://***@h:4222,nats://***@k" },
		{ "nats://u:p@ss@h:4222", "nats://***@h:4222" }, /* the last '@' ends the user info */
		{ "nats://[::1]:4222", "nats://[::1]:4222" },
		{ ",", "," },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *got = evd_nats_redact_urls(rows[i].in);

		CHECK_STR(got, rows[i].want);
		free(got);
	}
}

static void test_status(void)
{
	static const struct {
		natsStatus s;
		int want;
	} rows[] = {
		{ NATS_OK, 0 },
		{ NATS_TIMEOUT, -ETIMEDOUT },
		{ NATS_NO_MEMORY, -ENOMEM },
		{ NATS_NOT_FOUND, -ENOENT },
		{ NATS_INVALID_ARG, -EINVAL },
		{ NATS_CONNECTION_CLOSED, -ENOTCONN },
		{ NATS_NOT_YET_CONNECTED, -ENOTCONN },
		{ NATS_NO_RESPONDERS, -EHOSTUNREACH },
		{ NATS_MAX_PAYLOAD, -EMSGSIZE },
		{ NATS_NOT_PERMITTED, -EPERM },
		{ NATS_SSL_ERROR, -EPROTO },
		{ NATS_IO_ERROR, -EIO },
		{ NATS_ERR, -EIO },
	};

	evd_log_setup(EVD_LOG_ERROR + 0, EVD_LOG_TEXT);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		CHECK_INT(evd_nats_status_to_err(rows[i].s, "test"), rows[i].want);
}

static void test_names(void)
{
	CHECK_STR(evd_nats_state_name(EVD_NATS_CONNECTING), "connecting");
	CHECK_STR(evd_nats_state_name(EVD_NATS_DISCONNECTED), "disconnected");
	CHECK_STR(evd_nats_state_name(EVD_NATS_CONNECTED), "connected");
	CHECK_STR(evd_nats_state_name(EVD_NATS_READY), "ready");
	CHECK_STR(evd_nats_state_name(EVD_NATS_CLOSED), "closed");
	CHECK_STR(evd_nats_storage_name(js_FileStorage), "file");
	CHECK_STR(evd_nats_storage_name(js_MemoryStorage), "memory");
	CHECK_STR(evd_nats_retention_name(js_LimitsPolicy), "limits");
	CHECK_STR(evd_nats_retention_name(js_InterestPolicy), "interest");
	CHECK_STR(evd_nats_retention_name(js_WorkQueuePolicy), "workqueue");
	CHECK_STR(evd_nats_discard_name(js_DiscardNew), "new");
	CHECK_STR(evd_nats_discard_name(js_DiscardOld), "old");
}

static void test_spec(void)
{
	struct evd_config cfg = { 0 };
	struct evd_nats_stream_spec a, b;

	cfg.stream.name = (char *)"sap";
	cfg.stream.subject_prefix = (char *)"kyma";
	cfg.stream.storage = EVD_STORAGE_MEMORY;
	cfg.stream.retention = EVD_RETENTION_INTEREST;
	cfg.stream.discard = EVD_DISCARD_OLD;
	cfg.stream.max_bytes = 1024;
	cfg.stream.max_age = 60000;
	cfg.stream.replicas = 3;
	cfg.stream.duplicate_window = 120000;
	evd_nats_stream_spec_from_config(&a, &cfg);
	CHECK_STR(a.name, "sap");
	CHECK_STR(a.subject, "kyma.>");
	evd_nats_stream_spec_copy(&b, &a);
	evd_nats_stream_spec_free(&a);
	CHECK_STR(b.subject, "kyma.>");
	CHECK_INT(b.storage, EVD_STORAGE_MEMORY);
	CHECK_INT(b.retention, EVD_RETENTION_INTEREST);
	CHECK_INT(b.discard, EVD_DISCARD_OLD);
	CHECK_INT(b.max_bytes, 1024);
	CHECK_INT(b.max_age, 60000);
	CHECK_INT(b.replicas, 3);
	CHECK_INT(b.duplicate_window, 120000);
	evd_nats_stream_spec_free(&b);
	CHECK(b.name == NULL && b.subject == NULL);
}

int main(void)
{
	test_redact();
	test_status();
	test_names();
	test_spec();
	UNIT_MAIN_END();
}
