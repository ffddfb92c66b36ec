/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CloudEvents 1.0 validation: the REQUIRED/OPTIONAL attribute constraints of the spec, the type
 * system's canonical forms, and the naming convention ("attribute names MUST consist of
 * lower-case letters ('a' to 'z') or digits ('0' to '9') from the ASCII character set"; the
 * 20-character limit is only a SHOULD, so longer names are accepted, DESIGN.md §4).
 *
 * Error texts follow sdk-go's event.Validate() where Kyma's clients see them ("type: MUST be a
 * non-empty string", reference §1.4); one line, the first failure in attribute order.
 */
#include "event/event_ce.h"
#include "event/event_internal.h"

#include <errno.h>
#include <string.h>

#include "util/util_buf.h"

bool evd_ce_valid_name(const char *s, size_t len)
{
	if (!len)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			return false;
	}
	return true;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int num(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/*
 * RFC 3339 §5.6 date-time: full-date "T" full-time, full-time = partial-time time-offset,
 * time-offset = "Z" / ("+" / "-") HH ":" MM; "T" and "Z" may be lower case (§5.6 NOTE); a
 * fraction of any length; second 60 allowed (leap second).
 */
static int check_time(const char *s, size_t len, bool go)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && (go || s[10] != 't')) ||
	    s[13] != ':' || s[16] != ':')
		return -EINVAL;
	int y = num(s, 4), mo = num(s + 5, 2), d = num(s + 8, 2);
	int h = num(s + 11, 2), mi = num(s + 14, 2), sec = num(s + 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h < 0 || h > 23 || mi < 0 ||
	    mi > 59 || sec < 0 || sec > (go ? 59 : 60))
		return -EINVAL;
	if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return -EINVAL;
	size_t i = 19;
	if (s[i] == '.') {
		size_t start = ++i;
		while (i < len && is_digit(s[i]))
			i++;
		if (i == start)
			return -EINVAL;
	}
	if (i == len)
		return -EINVAL;
	if (s[i] == 'Z' || (!go && s[i] == 'z'))
		return i + 1 == len ? 0 : -EINVAL;
	if ((s[i] != '+' && s[i] != '-') || len - i != 6 || s[i + 3] != ':')
		return -EINVAL;
	int oh = num(s + i + 1, 2), om = num(s + i + 4, 2);
	if (oh < 0 || oh > 23 || om < 0 || om > 59)
		return -EINVAL;
	return 0;
}

int evd_ce_check_time(const char *s, size_t len)
{
	return check_time(s, len, false);
}

/*
 * Go's time.Parse(time.RFC3339, s), which Kyma's legacy API uses: upper-case 'T' and 'Z' only,
 * no leap second; a fraction is accepted although the layout has none.
 */
int evd_ce_check_time_go(const char *s, size_t len)
{
	return check_time(s, len, true);
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Length of a valid RFC 3986 scheme followed by ':' at s, or 0. */
static size_t scheme_len(const char *s, size_t len)
{
	if (!len || !is_alpha(s[0]))
		return 0;
	for (size_t i = 1; i < len; i++) {
		char c = s[i];
		if (c == ':')
			return i;
		if (!(is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.'))
			return 0;
	}
	return 0;
}

static bool is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/*
 * A URI-reference as Go's net/url.Parse accepts it, which is what Kyma checks (sdk-go SetSource):
 * laxer than RFC 3986's grammar (a space in a path passes, as it does for Kyma's clients), but no
 * control characters, every '%' starts a valid escape, no leading ':' ("missing protocol
 * scheme"), and a relative reference's first segment has no ':' (RFC 3986 §4.2). Kyma's own test
 * case "a@@p##p%%" is refused for its "%%".
 */
static const char *uri_ref_error(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return "invalid control character in URL";
		if (c == '%' && (i + 2 >= len || !is_hex(s[i + 1]) || !is_hex(s[i + 2])))
			return "invalid URL escape";
	}
	if (len && s[0] == ':')
		return "missing protocol scheme";
	if (!scheme_len(s, len)) {
		for (size_t i = 0; i < len && s[i] != '/' && s[i] != '?' && s[i] != '#'; i++)
			if (s[i] == ':')
				return "first path segment in URL cannot contain colon";
	}
	return NULL;
}

/* RFC 2045 §5.1 token characters: printable ASCII except SPACE and tspecials. */
static bool is_token_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("()<>@,;:\\\"/[]?=", c);
}

static size_t token(const char *s, size_t i, size_t len)
{
	size_t j = i;
	while (j < len && is_token_char((unsigned char)s[j]))
		j++;
	return j - i;
}

static size_t skip_ows(const char *s, size_t i, size_t len)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	return i;
}

/* type "/" subtype *( OWS ";" OWS attribute "=" ( token / quoted-string ) ), RFC 2045 §5.1. */
static bool media_type_valid(const char *s, size_t len)
{
	size_t i = skip_ows(s, 0, len), n;
	if (!(n = token(s, i, len)))
		return false;
	i += n;
	if (i == len || s[i++] != '/')
		return false;
	if (!(n = token(s, i, len)))
		return false;
	i = skip_ows(s, i + n, len);
	while (i < len) {
		if (s[i++] != ';')
			return false;
		i = skip_ows(s, i, len);
		if (i == len)
			return true; /* a trailing ';' is tolerated, as Go's mime package does */
		if (!(n = token(s, i, len)))
			return false;
		i += n;
		if (i == len || s[i++] != '=')
			return false;
		if (i < len && s[i] == '"') {
			for (i++; i < len && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
			if (i >= len)
				return false;
			i++;
		} else {
			if (!(n = token(s, i, len)))
				return false;
			i += n;
		}
		i = skip_ows(s, i, len);
	}
	return true;
}

static int fail(struct evd_buf *err, const char *attr, const char *msg)
{
	if (err)
		evd_buf_printf(err, "%s: %s", attr, msg);
	return -EINVAL;
}

int evd_ce_validate(const struct evd_cloudevent *ev, struct evd_buf *err)
{
	const char *why;

	/* String type first: every value must be usable as text before its form is checked. */
	for (int a = 0; a < EVD_CE_NATTRS; a++)
		if (ev->attr[a] && evd_ce_check_string(ev->attr[a], ev->attr_len[a], &why) < 0)
			return fail(err, evd_ce_attr_name(a), why);
	for (unsigned i = 0; i < ev->n_ext; i++) {
		const struct evd_ce_ext *x = &ev->ext[i];
		if (!evd_ce_valid_name(x->name, x->name_len) || strcmp(x->name, "data") == 0)
			return fail(err, x->name, "invalid attribute name (must be lower-case letters a-z "
						  "and digits 0-9, not \"data\")");
		if (evd_ce_check_string(x->value, x->value_len, &why) < 0)
			return fail(err, x->name, why);
	}

	const char *sv = ev->attr[EVD_CE_SPECVERSION];
	if (!sv || !*sv)
		return fail(err, "specversion", "MUST be a non-empty string");
	if (strcmp(sv, "1.0") != 0) {
		if (err)
			evd_buf_printf(err, "specversion: unsupported version \"%s\" (only 1.0 is supported)",
				       sv);
		return -EINVAL;
	}
	/* sdk-go trims id before the emptiness check. */
	const char *id = ev->attr[EVD_CE_ID];
	size_t il = id ? ev->attr_len[EVD_CE_ID] : 0;
	while (il && (*id == ' ' || *id == '\t')) {
		id++;
		il--;
	}
	if (!il)
		return fail(err, "id", "MUST be a non-empty string");
	if (!ev->attr[EVD_CE_SOURCE] || !ev->attr_len[EVD_CE_SOURCE])
		return fail(err, "source", "REQUIRED");
	if ((why = uri_ref_error(ev->attr[EVD_CE_SOURCE], ev->attr_len[EVD_CE_SOURCE])) != NULL)
		return fail(err, "source", why);
	if (!ev->attr[EVD_CE_TYPE] || !ev->attr_len[EVD_CE_TYPE])
		return fail(err, "type", "MUST be a non-empty string");

	const char *ct = ev->attr[EVD_CE_DATACONTENTTYPE];
	if (ct && !media_type_valid(ct, ev->attr_len[EVD_CE_DATACONTENTTYPE]))
		return fail(err, "datacontenttype", "if present, MUST adhere to the format specified in "
						    "RFC 2046");
	const char *ds = ev->attr[EVD_CE_DATASCHEMA];
	if (ds) {
		size_t dl = ev->attr_len[EVD_CE_DATASCHEMA];
		if (!dl || !scheme_len(ds, dl) || uri_ref_error(ds, dl))
			return fail(err, "dataschema", "if present, MUST be a non-empty absolute URI");
	}
	if (ev->attr[EVD_CE_SUBJECT] && !ev->attr_len[EVD_CE_SUBJECT])
		return fail(err, "subject", "if present, MUST be a non-empty string");
	if (ev->attr[EVD_CE_TIME] && evd_ce_check_time(ev->attr[EVD_CE_TIME], ev->attr_len[EVD_CE_TIME]) < 0)
		return fail(err, "time", "if present, MUST adhere to the format specified in RFC 3339");
	return 0;
}
