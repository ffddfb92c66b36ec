/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Stored NATS messages (evd_ce_decode_nats), which the dispatcher reads back from the stream:
 * any NATS client may write to the stream's subjects, so the header block is arbitrary. The
 * input is a whole message as it travels: an optional header block ("NATS/1.0\r\n", lines,
 * "\r\n") and the payload. It is decoded twice:
 *
 * - as the dispatcher will: nats.c parses the block (natsMsg_create with the header length,
 *   then natsMsgHeader_Keys / natsMsgHeader_Get, which keep the first value of a key);
 * - with the block split by hand into "key:value" lines (every line, duplicates and odd keys
 *   included), which reaches what nats.c's parser would refuse.
 *
 * A decoded event is valid and survives the NATS and HTTP binary round trips unchanged; a
 * refusal says why (or is -ENOMSG: no ce-specversion, not a CloudEvent).
 */
#include <nats/nats.h>

#include "fuzz_common.h"

/* nats.c 3.4's own constructor for a message with a raw header block (src/msg.c), the one it
 * uses for received messages; not in its public header (publish_js.c declares it the same way). */
natsStatus natsMsg_create(natsMsg **newMsg, const char *subject, int subjLen, const char *reply,
			  int replyLen, const char *buf, int bufLen, int hdrLen);

#define MAX_HEADERS 128

int LLVMFuzzerInitialize(int *argc, char ***argv);

/* natsMsg_Destroy hands the message to nats.c's garbage collector, which needs the library
 * opened (as evd_nats_new does in the daemon). */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return nats_Open(-1) == NATS_OK ? 0 : -1;
}

static void decode(const char *const *keys, const char *const *values, size_t n,
		   const char *payload, size_t payload_len)
{
	struct evd_cloudevent ev = EVD_CE_INIT;
	struct evd_buf err = EVD_BUF_INIT;
	int rc = evd_ce_decode_nats(keys, values, n, payload, payload_len, &ev, &err);
	if (rc == 0)
		fuzz_check_round_trips(&ev);
	else
		FUZZ_ASSERT((rc == -EINVAL && err.len > 0) || rc == -ENOMSG,
			    "refused (%d) without a reason", rc);
	evd_ce_free(&ev);
	evd_buf_free(&err);
}

static void through_nats_c(const char *data, size_t size, size_t hdr_len)
{
	natsMsg *m = NULL;
	if (size > INT32_MAX ||
	    natsMsg_create(&m, "kyma.fuzz", 9, NULL, 0, data, (int)size, (int)hdr_len) != NATS_OK)
		return;
	const char **keys = NULL;
	int count = 0;
	natsStatus s = natsMsgHeader_Keys(m, &keys, &count);
	const char *values[MAX_HEADERS];
	if (s == NATS_OK && count <= MAX_HEADERS) {
		int n = 0;
		for (int i = 0; i < count; i++)
			if (natsMsgHeader_Get(m, keys[i], &values[n]) == NATS_OK)
				keys[n++] = keys[i];
		decode(keys, values, (size_t)n, natsMsg_GetData(m),
		       (size_t)natsMsg_GetDataLength(m));
	} else if (s == NATS_NOT_FOUND) {
		decode(NULL, NULL, 0, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
	}
	free((void *)keys);
	natsMsg_Destroy(m);
}

static void by_hand(const char *block, size_t len, const char *payload, size_t payload_len)
{
	char *copy = malloc(len + 1);
	if (!copy)
		return;
	memcpy(copy, block, len);
	copy[len] = '\0';
	const char *keys[MAX_HEADERS], *values[MAX_HEADERS];
	size_t n = 0;
	char *save = NULL;
	/* The first line is the status line ("NATS/1.0"); the rest are headers. */
	char *line = strtok_r(copy, "\n", &save);
	while (line && (line = strtok_r(NULL, "\n", &save)) && n < MAX_HEADERS) {
		size_t l = strlen(line);
		if (l && line[l - 1] == '\r')
			line[--l] = '\0';
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = '\0';
		char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		keys[n] = line;
		values[n++] = v;
	}
	decode(keys, values, n, payload, payload_len);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	size_t hdr_len = 0;
	if (size >= 12 && memcmp(p, "NATS/1.0", 8) == 0) {
		const char *end = memmem(p, size, "\r\n\r\n", 4);
		if (!end)
			return 0; /* nats-server would not deliver it: no end of the header block */
		hdr_len = (size_t)(end - p) + 4;
	}
	through_nats_c(p, size, hdr_len);
	by_hand(p, hdr_len, p + hdr_len, size - hdr_len);
	return 0;
}
