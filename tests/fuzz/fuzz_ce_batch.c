/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Batched mode (application/cloudevents-batch+json): all events or none; every event of an
 * accepted batch is valid and survives the NATS and HTTP binary round trips unchanged.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evd_cloudevent *events = (struct evd_cloudevent *)1; /* must be overwritten */
	size_t count = 99;
	struct evd_buf err = EVD_BUF_INIT;
	int rc = evd_ce_decode_batch((const char *)data, size, 100, &events, &count, &err);
	if (rc == 0) {
		FUZZ_ASSERT(count <= 100, "%zu events over the limit of 100", count);
		FUZZ_ASSERT((count == 0) == (events == NULL), "count %zu, events %p", count,
			    (void *)events);
		for (size_t i = 0; i < count; i++)
			fuzz_check_round_trips(&events[i]);
		evd_ce_free_batch(events, count);
	} else {
		FUZZ_ASSERT(rc == -EINVAL && err.len > 0, "refused (%d) without a reason", rc);
	}
	evd_buf_free(&err);
	return 0;
}
