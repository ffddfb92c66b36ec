/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Checks the CloudEvents targets share. A failed check prints what differed and aborts, which
 * libFuzzer reports as a crash with the input saved.
 */
#ifndef EVD_FUZZ_COMMON_H
#define EVD_FUZZ_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event_ce.h"
#include "util/util_buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond, ...)                                                             \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: fuzz invariant failed: %s: ", __FILE__,    \
				__LINE__, #cond);                                          \
			fprintf(stderr, __VA_ARGS__);                                      \
			fputc('\n', stderr);                                               \
			abort();                                                           \
		}                                                                          \
	} while (0)

static inline bool fuzz_same(const char *a, size_t alen, const char *b, size_t blen)
{
	if (!a || !b)
		return a == b;
	return alen == blen && memcmp(a, b, alen) == 0;
}

/* Two events hold the same attributes, extensions (in any order) and data bytes. An empty data
 * and no data are the same in the NATS binding (an empty payload). */
static inline void fuzz_check_same_event(const struct evd_cloudevent *a,
					 const struct evd_cloudevent *b, const char *what)
{
	for (int i = 0; i < EVD_CE_NATTRS; i++)
		FUZZ_ASSERT(fuzz_same(a->attr[i], a->attr_len[i], b->attr[i], b->attr_len[i]),
			    "%s: attribute %s: \"%s\" became \"%s\"", what,
			    evd_ce_attr_name((enum evd_ce_attr)i), a->attr[i] ? a->attr[i] : "(none)",
			    b->attr[i] ? b->attr[i] : "(none)");
	FUZZ_ASSERT(a->n_ext == b->n_ext, "%s: %u extensions became %u", what, a->n_ext, b->n_ext);
	for (unsigned i = 0; i < a->n_ext; i++) {
		const char *v = evd_ce_ext_get(b, a->ext[i].name);
		FUZZ_ASSERT(v && fuzz_same(a->ext[i].value, a->ext[i].value_len, v, strlen(v)),
			    "%s: extension %s: \"%s\" became \"%s\"", what, a->ext[i].name,
			    a->ext[i].value, v ? v : "(none)");
	}
	FUZZ_ASSERT(a->data_len == b->data_len &&
			    (a->data_len == 0 || memcmp(a->data, b->data, a->data_len) == 0),
		    "%s: data of %zu bytes became %zu bytes", what, a->data_len, b->data_len);
}

/*
 * A decoded event must be valid, survive the trip through JetStream (NATS binding headers and
 * back) unchanged, and survive HTTP binary mode (ce-* headers percent-encoded, then decoded).
 */
static inline void fuzz_check_round_trips(struct evd_cloudevent *ev)
{
	struct evd_buf err = EVD_BUF_INIT;
	FUZZ_ASSERT(evd_ce_validate(ev, &err) == 0, "a decoded event is invalid: %s",
		    err.data ? err.data : "");

	struct evd_ce_nats_headers h;
	evd_ce_to_nats_headers(ev, &h);
	struct evd_cloudevent back = EVD_CE_INIT;
	int rc = evd_ce_decode_nats(h.key, h.value, h.n, ev->data, ev->data_len, &back, &err);
	FUZZ_ASSERT(rc == 0, "NATS round trip refused: %d %s", rc, err.data ? err.data : "");
	fuzz_check_same_event(ev, &back, "NATS round trip");
	evd_ce_free(&back);

	/* HTTP binary mode: the NATS headers are the same ce-* headers an HTTP sink gets, except
	 * that datacontenttype travels as Content-Type there. */
	struct evd_header hh[EVD_CE_NATTRS + EVD_CE_MAX_EXTENSIONS + 1];
	size_t n = 0;
	for (size_t i = 0; i < h.n; i++) {
		const char *k = h.key[i];
		if (strncmp(k, "ce-", 3) != 0)
			continue;
		if (strcmp(k, "ce-datacontenttype") == 0)
			k = "Content-Type";
		hh[n++] = (struct evd_header){ k, strlen(k), h.value[i], strlen(h.value[i]) };
	}
	/* Content-Type is no percent-encoded header: give it the raw value. */
	for (size_t i = 0; i < n; i++)
		if (strcmp(hh[i].name, "Content-Type") == 0)
			hh[i].value = ev->attr[EVD_CE_DATACONTENTTYPE],
			hh[i].value_len = ev->attr_len[EVD_CE_DATACONTENTTYPE];
	rc = evd_ce_decode_binary(hh, n, ev->data, ev->data_len, &back, &err);
	FUZZ_ASSERT(rc == 0, "HTTP binary round trip refused: %d %s", rc, err.data ? err.data : "");
	fuzz_check_same_event(ev, &back, "HTTP binary round trip");
	evd_ce_free(&back);
	evd_buf_free(&err);
}

#endif
