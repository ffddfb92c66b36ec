/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kyma's legacy event API (POST /{app}/v1/events): a body is parsed or refused with a 400 and a
 * JSON error body; an accepted one converts to two valid CloudEvents (or a JSON 400 body), each
 * of which survives the NATS and HTTP binary round trips.
 */
#include <cjson/cJSON.h>

#include "event/event_legacy.h"
#include "fuzz_common.h"

static void check_json_body(const struct evd_buf *b, const char *what)
{
	FUZZ_ASSERT(b->len > 0 && b->data[b->len - 1] == '\n', "%s: no body or no final newline",
		    what);
	cJSON *j = cJSON_ParseWithLength(b->data, b->len);
	FUZZ_ASSERT(j != NULL, "%s: body is not JSON: %s", what, b->data);
	cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evd_legacy_request req;
	struct evd_buf err = EVD_BUF_INIT;
	int status = 0;
	int rc = evd_legacy_parse((const char *)data, size, &req, &status, &err);
	if (rc != 0) {
		FUZZ_ASSERT(rc == -EINVAL && status == 400, "refused with %d, status %d", rc, status);
		check_json_body(&err, "parse error");
		evd_buf_free(&err);
		return 0;
	}
	struct evd_cloudevent std = EVD_CE_INIT, pre = EVD_CE_INIT;
	rc = evd_legacy_to_cloudevents(&req, "my-app", "sap.kyma.custom", &std, &pre, &err);
	if (rc == 0) {
		fuzz_check_round_trips(&std);
		fuzz_check_round_trips(&pre);
		struct evd_buf ok = EVD_BUF_INIT;
		evd_legacy_success_body(&ok, std.attr[EVD_CE_ID]);
		check_json_body(&ok, "success");
		evd_buf_free(&ok);
		evd_ce_free(&std);
		evd_ce_free(&pre);
	} else {
		FUZZ_ASSERT(rc == -EINVAL, "conversion failed with %d", rc);
		check_json_body(&err, "conversion error");
	}
	evd_legacy_request_free(&req);
	evd_buf_free(&err);
	return 0;
}
