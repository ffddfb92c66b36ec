/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP binary mode. The input is header lines ("name:value", split on '\n' and the first ':'),
 * an empty line, then the body, so seeds read like requests. A decoded event is valid and
 * survives the NATS and HTTP binary round trips unchanged; a refusal says why.
 */
#include "fuzz_common.h"

#define MAX_HEADERS 128

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	struct evd_header h[MAX_HEADERS];
	size_t n = 0;
	const char *body = end;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		if (eol == p) { /* the empty line: the body follows */
			body = p + 1;
			break;
		}
		if (n == MAX_HEADERS)
			return 0;
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		const char *v = colon ? colon + 1 : eol;
		/* As the HTTP server hands values over: surrounding blanks removed. */
		while (v < eol && (*v == ' ' || *v == '\t'))
			v++;
		const char *ve = eol;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		h[n++] = (struct evd_header){ p, (size_t)((colon ? colon : eol) - p), v,
						   (size_t)(ve - v) };
		p = nl ? nl + 1 : end;
	}
	struct evd_cloudevent ev = EVD_CE_INIT;
	struct evd_buf err = EVD_BUF_INIT;
	int rc = evd_ce_decode_binary(h, n, body, (size_t)(end - body), &ev, &err);
	if (rc == 0)
		fuzz_check_round_trips(&ev);
	else
		FUZZ_ASSERT((rc == -EINVAL && err.len > 0) || rc == -ENOMSG,
			    "refused (%d) without a reason", rc);
	evd_ce_free(&ev);
	evd_buf_free(&err);
	return 0;
}
