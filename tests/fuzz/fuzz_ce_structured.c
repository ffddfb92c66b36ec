/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Structured mode (application/cloudevents+json): any input is decoded or refused with a
 * reason; a decoded event is valid and survives the NATS and HTTP binary round trips unchanged.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evd_cloudevent ev = EVD_CE_INIT;
	struct evd_buf err = EVD_BUF_INIT;
	int rc = evd_ce_decode_structured((const char *)data, size, &ev, &err);
	if (rc == 0)
		fuzz_check_round_trips(&ev);
	else
		FUZZ_ASSERT(rc == -EINVAL && err.len > 0, "refused (%d) without a reason", rc);
	evd_ce_free(&ev);
	evd_buf_free(&err);
	return 0;
}
