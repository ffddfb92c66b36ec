/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kyma's type cleaners and the subject builders (event_type.h), which decide the NATS subject an
 * event is stored under and the one a consumer filters on. The input is up to three lines:
 * source, type, and the type prefix of the v1alpha1 cleaner (publish.event_type_prefix; an
 * absent third line means "sap.kyma.custom"). Checked beyond "no crash":
 *
 * - each cleaner removes exactly the bytes of its class (output = input minus those bytes) and
 *   is idempotent;
 * - a subject evd_event_subject_for_publish accepts is one nats-server accepts for a publish:
 *   non-empty tokens, no whitespace, no wildcard token; it is the standard subject (or the
 *   prefixed one) the registry would build for the same source and type, so a subscription
 *   and the publish path always agree; a refusal is -EINVAL with a reason;
 * - the v1alpha1 cleaner's output has only [A-Za-z0-9.] and at least 4 segments.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event_type.h"
#include "fuzz_common.h"

static bool go_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

static void check_cleaned(const char *in, const char *out, bool drop_dots, const char *what)
{
	const char *o = out;
	for (const char *i = in; *i; i++) {
		unsigned char c = (unsigned char)*i;
		bool drop = go_space(c) || c == '>' || c == '*' || c == '/' || c == '\\' ||
			    (drop_dots && c == '.');
		if (drop)
			continue;
		FUZZ_ASSERT(*o == *i, "%s of \"%s\" is \"%s\": kept byte 0x%02x missing", what, in,
			    out, c);
		o++;
	}
	FUZZ_ASSERT(*o == '\0', "%s of \"%s\" is \"%s\": extra bytes", what, in, out);
}

/* nats-server's isValidSubject for a publish (server/sublist.go): no empty token, no
 * whitespace of "\t\n\f\r ", no "*" or ">" token (a wildcard cannot be published to). */
static bool nats_publish_subject_ok(const char *s)
{
	if (!*s)
		return false;
	const char *tok = s;
	for (const char *p = s;; p++) {
		if (*p == '.' || *p == '\0') {
			size_t len = (size_t)(p - tok);
			if (len == 0 || (len == 1 && (*tok == '*' || *tok == '>')))
				return false;
			if (*p == '\0')
				return true;
			tok = p + 1;
		} else if (go_space((unsigned char)*p)) {
			return false;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* NUL-terminated copy, split into lines (a NUL in the input ends its line early: the
	 * functions take C strings, as the HTTP and YAML layers hand them over). */
	char *buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	char *field[3] = { buf, NULL, NULL };
	for (int i = 1; i < 3 && field[i - 1]; i++) {
		char *nl = strchr(field[i - 1], '\n');
		if (nl) {
			*nl = '\0';
			field[i] = nl + 1;
		}
	}
	const char *source = field[0];
	const char *type = field[1] ? field[1] : "";
	const char *prefix = field[2] ? field[2] : "sap.kyma.custom";

	char *cs = evd_event_clean_source(source);
	char *ct = evd_event_clean_type(type);
	check_cleaned(source, cs, true, "clean_source");
	check_cleaned(type, ct, false, "clean_type");
	char *cs2 = evd_event_clean_source(cs), *ct2 = evd_event_clean_type(ct);
	FUZZ_ASSERT(strcmp(cs, cs2) == 0 && strcmp(ct, ct2) == 0, "cleaners not idempotent");
	free(cs2);
	free(ct2);

	/* The v1alpha1 cleaner. */
	char *pclean = NULL, *perr = NULL;
	int prc = evd_event_clean_prefixed(type, prefix, &pclean, &perr);
	if (prc == 0) {
		FUZZ_ASSERT(pclean != NULL, "prefixed: 0 without a result");
		size_t seg = 1;
		for (const char *p = pclean; *p; p++) {
			unsigned char c = (unsigned char)*p;
			FUZZ_ASSERT((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
					    (c >= '0' && c <= '9') || c == '.',
				    "prefixed: byte 0x%02x in \"%s\"", c, pclean);
			seg += c == '.';
		}
		FUZZ_ASSERT(seg >= 4 || !*prefix, "prefixed: \"%s\" has %zu segments", pclean, seg);
	} else {
		FUZZ_ASSERT(prc == -EINVAL && perr && *perr && !pclean, "prefixed: refused (%d) without a reason",
			    prc);
	}

	/* The publish path's subject, against the registry's builders. */
	char *subject = NULL, *clean = NULL, *err = NULL;
	int rc = evd_event_subject_for_publish(source, type, prefix, "kyma", &subject, &clean, &err);
	if (rc == 0) {
		FUZZ_ASSERT(subject && clean && !err, "subject: 0 without results");
		FUZZ_ASSERT(nats_publish_subject_ok(subject),
			    "source \"%s\", type \"%s\": subject \"%s\" is no valid NATS subject",
			    source, type, subject);
		if (evd_event_type_has_prefix(type, prefix)) {
			FUZZ_ASSERT(prc == 0 && strcmp(clean, pclean) == 0,
				    "prefixed type cleaned differently");
			FUZZ_ASSERT(strncmp(subject, "kyma.", 5) == 0 &&
					    strcmp(subject + 5, pclean) == 0,
				    "prefixed subject \"%s\"", subject);
		} else {
			char *std = evd_event_subject_standard("kyma", source, type);
			FUZZ_ASSERT(strcmp(std, subject) == 0,
				    "publish subject \"%s\", subscription subject \"%s\"", subject, std);
			FUZZ_ASSERT(strcmp(clean, ct) == 0, "clean type \"%s\" vs \"%s\"", clean, ct);
			free(std);
		}
	} else {
		FUZZ_ASSERT(rc == -EINVAL && err && *err && !subject && !clean,
			    "subject: refused (%d) without a reason", rc);
	}
	free(subject);
	free(clean);
	free(err);
	free(pclean);
	free(perr);

	/* Exact matching: the type verbatim behind the prefix. */
	char *exact = evd_event_subject_exact("kyma", type);
	FUZZ_ASSERT(strncmp(exact, "kyma.", 5) == 0 && strcmp(exact + 5, type) == 0, "exact \"%s\"",
		    exact);
	free(exact);
	free(cs);
	free(ct);
	free(buf);
	return 0;
}
