/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kyma's event-type cleaners (reference/kyma-eventing.md §3), byte for byte.
 *
 * Kyma's cleaners are Go regular expressions applied with ReplaceAllString. Every character class
 * involved is ASCII-only, and in UTF-8 every byte of a multi-byte sequence is >= 0x80, so removing
 * matching bytes one by one gives the same result as Go's rune-wise replacement:
 * - `[\s.>*\/\\]` and `[\s>*\/\\]`: Go's `\s` is exactly [\t\n\f\r ] (RE2 syntax; no \v), and no
 *   non-ASCII rune matches, so non-ASCII bytes are kept;
 * - `\W|_` and `[^a-zA-Z0-9.]`: every non-ASCII rune (and every invalid byte, which Go reads as
 *   U+FFFD) matches, so removing every byte outside the allowed ASCII set is the same thing.
 */
#include "event/event_type.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util_buf.h"
#include "util/util_mem.h"

static bool is_go_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

static bool is_alnum_ascii(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Copies s without the bytes for which drop() is true. */
static char *filter(const char *s, size_t len, bool (*drop)(unsigned char))
{
	char *out = evd_xmalloc(len + 1);
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!drop(c))
			out[n++] = (char)c;
	}
	out[n] = '\0';
	return out;
}

static bool drop_source(unsigned char c)
{
	return is_go_space(c) || c == '.' || c == '>' || c == '*' || c == '/' || c == '\\';
}

static bool drop_type(unsigned char c)
{
	return is_go_space(c) || c == '>' || c == '*' || c == '/' || c == '\\';
}

/* `\W|_`: keeps [A-Za-z0-9] only. */
static bool drop_app(unsigned char c)
{
	return !is_alnum_ascii(c);
}

/* `[^a-zA-Z0-9.]` */
static bool drop_segment(unsigned char c)
{
	return !is_alnum_ascii(c) && c != '.';
}

char *evd_event_clean_source(const char *source)
{
	if (!source)
		source = "";
	return filter(source, strlen(source), drop_source);
}

char *evd_event_clean_type(const char *type)
{
	if (!type)
		type = "";
	return filter(type, strlen(type), drop_type);
}

bool evd_event_type_has_prefix(const char *type, const char *prefix)
{
	if (!type || !prefix || !*prefix)
		return false;
	return strncmp(type, prefix, strlen(prefix)) == 0;
}

/* strings.Split(s, ".") has an empty element iff s is empty, starts or ends with '.' or has "..". */
static bool has_empty_segment(const char *s)
{
	size_t len = strlen(s);
	return len == 0 || s[0] == '.' || s[len - 1] == '.' || strstr(s, "..") != NULL;
}

static char *fmt_err(const char *type, const char *prefix, const char *why)
{
	struct evd_buf b = EVD_BUF_INIT;
	evd_buf_printf(&b, "failed to parse event-type=%s with prefix=%s: %s", type, prefix, why);
	return evd_buf_steal(&b);
}

/*
 * EPP's eventtype.parse + build + cleanEventType (§3.4):
 * 1. strings.ReplaceAll(type, prefix, "") (every occurrence, not just the leading one) and
 *    strings.TrimPrefix(".");
 * 2. split on '.', at least 4 segments, none empty;
 * 3. app = seg[0], event = concat(seg[1..n-3]) "." seg[n-2], version = seg[n-1];
 * 4. "<prefix>.<clean app>.<event>.<version>" (no leading "<prefix>." when the prefix is empty);
 * 5. remove [^a-zA-Z0-9.] from the whole string (the prefix included).
 */
int evd_event_clean_prefixed(const char *type, const char *prefix, char **out, char **err)
{
	struct evd_buf rest = EVD_BUF_INIT, built = EVD_BUF_INIT;
	const char **seg = NULL;
	int rc = -EINVAL;

	*out = NULL;
	if (err)
		*err = NULL;
	if (!type)
		type = "";
	if (!prefix)
		prefix = "";
	size_t plen = strlen(prefix);
	if (strncmp(type, prefix, plen) != 0) {
		if (err)
			*err = fmt_err(type, prefix, "prefix not found");
		goto fail;
	}

	/* Step 1. ReplaceAll with an empty "old" inserts "" between runes: a no-op. */
	if (plen == 0) {
		evd_buf_append_str(&rest, type);
	} else {
		const char *p = type, *hit;
		while ((hit = strstr(p, prefix)) != NULL) {
			evd_buf_append(&rest, p, (size_t)(hit - p));
			p = hit + plen;
		}
		evd_buf_append_str(&rest, p);
	}
	evd_buf_append(&rest, "", 0); /* rest.data is never NULL from here on */
	char *r = rest.data[0] == '.' ? rest.data + 1 : rest.data;

	/* Step 2. */
	size_t nseg = 1;
	for (const char *c = r; *c; c++)
		nseg += *c == '.';
	if (nseg < 4 || has_empty_segment(r)) {
		if (err)
			*err = fmt_err(type, prefix, "invalid format");
		goto fail;
	}
	seg = evd_xmalloc(nseg * sizeof(*seg));
	size_t i = 0;
	seg[i++] = r;
	for (char *c = r; *c; c++) {
		if (*c == '.') {
			*c = '\0';
			seg[i++] = c + 1;
		}
	}

	/* Steps 3 and 4. */
	if (plen) {
		evd_buf_append_str(&built, prefix);
		evd_buf_append_char(&built, '.');
	}
	char *app = filter(seg[0], strlen(seg[0]), drop_app);
	evd_buf_append_str(&built, app);
	free(app);
	evd_buf_append_char(&built, '.');
	for (i = 1; i + 2 < nseg; i++)
		evd_buf_append_str(&built, seg[i]);
	evd_buf_printf(&built, ".%s.%s", seg[nseg - 2], seg[nseg - 1]);

	/* Step 5. */
	*out = filter(built.data, built.len, drop_segment);
	rc = 0;
fail:
	free(seg);
	evd_buf_free(&rest);
	evd_buf_free(&built);
	return rc;
}

static char *empty_segments_err(const char *subject)
{
	struct evd_buf b = EVD_BUF_INIT;
	evd_buf_printf(&b, "event type cannot have empty segments after cleaning: %s", subject);
	return evd_buf_steal(&b);
}

int evd_event_subject_for_publish(const char *source, const char *type, const char *type_prefix,
				  const char *subject_prefix, char **subject, char **clean_type,
				  char **err)
{
	struct evd_buf subj = EVD_BUF_INIT;
	char *clean = NULL;
	int rc;

	if (subject)
		*subject = NULL;
	if (clean_type)
		*clean_type = NULL;
	if (err)
		*err = NULL;
	if (!subject_prefix)
		subject_prefix = "";

	if (evd_event_type_has_prefix(type, type_prefix)) {
		rc = evd_event_clean_prefixed(type, type_prefix, &clean, err);
		if (rc < 0)
			goto fail;
		evd_buf_printf(&subj, "%s.%s", subject_prefix, clean);
	} else {
		char *cs = evd_event_clean_source(source);
		clean = evd_event_clean_type(type);
		evd_buf_printf(&subj, "%s.%s.%s", subject_prefix, cs, clean);
		free(cs);
	}
	/*
	 * EPP checks this for the standard path only; a prefixed type whose app or a segment cleans
	 * to nothing ("sap.kyma.custom.--.order.created.v1") would make an invalid NATS subject, so
	 * it is refused the same way here.
	 */
	if (has_empty_segment(subj.data)) {
		rc = -EINVAL;
		if (err)
			*err = empty_segments_err(subj.data);
		goto fail;
	}
	if (subject)
		*subject = evd_buf_steal(&subj);
	if (clean_type) {
		*clean_type = clean;
		clean = NULL;
	}
	rc = 0;
fail:
	free(clean);
	evd_buf_free(&subj);
	return rc;
}

char *evd_event_subject_standard(const char *subject_prefix, const char *source, const char *type)
{
	struct evd_buf b = EVD_BUF_INIT;
	char *cs = evd_event_clean_source(source);
	char *ct = evd_event_clean_type(type);
	evd_buf_printf(&b, "%s.%s.%s", subject_prefix ? subject_prefix : "", cs, ct);
	free(cs);
	free(ct);
	return evd_buf_steal(&b);
}

char *evd_event_subject_exact(const char *subject_prefix, const char *type)
{
	struct evd_buf b = EVD_BUF_INIT;
	evd_buf_printf(&b, "%s.%s", subject_prefix ? subject_prefix : "", type ? type : "");
	return evd_buf_steal(&b);
}
