/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small strict JSON scanner (RFC 8259) that records raw value spans instead of building a
 * tree. The publish path needs exactly that: the `data` member must be stored byte-exact (cJSON
 * would turn 12345678901234567890 into a double and re-print it), duplicate members must be
 * detected, and nothing needs to be allocated per value.
 */
#include "event/event_internal.h"

#include <errno.h>
#include <string.h>

#define MAX_DEPTH 256

const char *evd_json_skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

const char *evd_json_type_name(enum evd_json_type t)
{
	switch (t) {
	case EVD_JSON_NULL:
		return "null";
	case EVD_JSON_FALSE:
	case EVD_JSON_TRUE:
		return "boolean";
	case EVD_JSON_NUMBER:
		return "number";
	case EVD_JSON_STRING:
		return "string";
	case EVD_JSON_ARRAY:
		return "array";
	case EVD_JSON_OBJECT:
		return "object";
	}
	return "?";
}

static int hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* string = quotation-mark *char quotation-mark (RFC 8259 §7). p points at the opening quote. */
static int scan_string(const char **pp, const char *end, const char **why)
{
	const unsigned char *p = (const unsigned char *)*pp + 1, *e = (const unsigned char *)end;
	while (p < e) {
		unsigned c = *p;
		if (c == '"') {
			*pp = (const char *)p + 1;
			return 0;
		}
		if (c < 0x20) {
			*why = "control character in string";
			return -EINVAL;
		}
		if (c == '\\') {
			if (++p == e)
				break;
			switch (*p) {
			case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
				p++;
				break;
			case 'u': {
				unsigned v;
				if (e - p < 5 || hex4((const char *)p + 1, &v) < 0) {
					*why = "invalid \\u escape in string";
					return -EINVAL;
				}
				p += 5;
				break;
			}
			default:
				*why = "invalid escape in string";
				return -EINVAL;
			}
			continue;
		}
		if (c < 0x80) {
			p++;
			continue;
		}
		unsigned cp;
		size_t n = evd_ce_utf8_next(p, (size_t)(e - p), &cp);
		if (!n) {
			*why = "invalid UTF-8 in string";
			return -EINVAL;
		}
		p += n;
	}
	*why = "unterminated string";
	return -EINVAL;
}

/* number = [ minus ] int [ frac ] [ exp ] (RFC 8259 §6). */
static int scan_number(const char **pp, const char *end, const char **why)
{
	const char *p = *pp;
	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0') {
		p++;
	} else if (p < end && *p >= '1' && *p <= '9') {
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	} else {
		goto bad;
	}
	if (p < end && *p == '.') {
		const char *d = ++p;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		if (p == d)
			goto bad;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		const char *d = p;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		if (p == d)
			goto bad;
	}
	*pp = p;
	return 0;
bad:
	*why = "invalid number";
	return -EINVAL;
}

static int scan_literal(const char **pp, const char *end, const char *lit, size_t n, const char **why)
{
	if ((size_t)(end - *pp) < n || memcmp(*pp, lit, n) != 0) {
		*why = "invalid literal";
		return -EINVAL;
	}
	*pp += n;
	return 0;
}

static int scan(const char **pp, const char *end, int depth, enum evd_json_type *type, const char **why)
{
	const char *p = *pp;
	int rc;
	if (p >= end) {
		*why = "unexpected end of JSON";
		return -EINVAL;
	}
	if (depth > MAX_DEPTH) {
		*why = "JSON nested too deeply";
		return -EINVAL;
	}
	switch (*p) {
	case '"':
		*type = EVD_JSON_STRING;
		rc = scan_string(&p, end, why);
		break;
	case 't':
		*type = EVD_JSON_TRUE;
		rc = scan_literal(&p, end, "true", 4, why);
		break;
	case 'f':
		*type = EVD_JSON_FALSE;
		rc = scan_literal(&p, end, "false", 5, why);
		break;
	case 'n':
		*type = EVD_JSON_NULL;
		rc = scan_literal(&p, end, "null", 4, why);
		break;
	case '[':
	case '{': {
		bool obj = *p == '{';
		char close = obj ? '}' : ']';
		enum evd_json_type t;
		*type = obj ? EVD_JSON_OBJECT : EVD_JSON_ARRAY;
		p = evd_json_skip_ws(p + 1, end);
		if (p < end && *p == close) {
			p++;
			rc = 0;
			break;
		}
		for (;;) {
			if (obj) {
				if (p >= end || *p != '"') {
					*why = p >= end ? "unexpected end of JSON" : "expected a member name";
					return -EINVAL;
				}
				if ((rc = scan_string(&p, end, why)) < 0)
					return rc;
				p = evd_json_skip_ws(p, end);
				if (p >= end || *p != ':') {
					*why = p >= end ? "unexpected end of JSON" : "expected ':' after a member name";
					return -EINVAL;
				}
				p = evd_json_skip_ws(p + 1, end);
			}
			if ((rc = scan(&p, end, depth + 1, &t, why)) < 0)
				return rc;
			p = evd_json_skip_ws(p, end);
			if (p < end && *p == ',') {
				p = evd_json_skip_ws(p + 1, end);
				continue;
			}
			if (p < end && *p == close) {
				p++;
				break;
			}
			*why = p >= end ? "unexpected end of JSON" : obj ? "expected ',' or '}'" : "expected ',' or ']'";
			return -EINVAL;
		}
		rc = 0;
		break;
	}
	default:
		if (*p != '-' && (*p < '0' || *p > '9')) {
			*why = "expected a value";
			return -EINVAL;
		}
		*type = EVD_JSON_NUMBER;
		rc = scan_number(&p, end, why);
		break;
	}
	if (rc == 0)
		*pp = p;
	return rc;
}

int evd_json_scan_value(const char **p, const char *end, struct evd_json_span *out, const char **why)
{
	const char *start = *p;
	enum evd_json_type t = EVD_JSON_NULL;
	int rc = scan(p, end, 0, &t, why);
	if (rc < 0)
		return rc;
	out->p = start;
	out->len = (size_t)(*p - start);
	out->type = t;
	return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * The span was validated by the scanner, so only escapes need care here. Every escape's output is
 * no longer than its input (\uXXXX is 6 bytes for at most 3; a pair is 12 for 4), so out never
 * needs more than span.len bytes.
 */
int evd_json_string_decode(const struct evd_json_span *s, char *out, size_t *out_len, const char **why)
{
	const char *p = s->p + 1, *end = s->p + s->len - 1;
	size_t n = 0;
	while (p < end) {
		if (*p != '\\') {
			out[n++] = *p++;
			continue;
		}
		p++;
		switch (*p++) {
		case '"': out[n++] = '"'; break;
		case '\\': out[n++] = '\\'; break;
		case '/': out[n++] = '/'; break;
		case 'b': out[n++] = '\b'; break;
		case 'f': out[n++] = '\f'; break;
		case 'n': out[n++] = '\n'; break;
		case 'r': out[n++] = '\r'; break;
		case 't': out[n++] = '\t'; break;
		case 'u': {
			unsigned cp, lo;
			if (end - p < 4 || hex4(p, &cp) < 0)
				goto bad;
			p += 4;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				goto lone;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) < 0 ||
				    lo < 0xdc00 || lo > 0xdfff)
					goto lone;
				p += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			n += put_utf8(out + n, cp);
			break;
		}
		default:
			goto bad;
		}
	}
	out[n] = '\0';
	*out_len = n;
	return 0;
lone:
	*why = "unpaired UTF-16 surrogate in \\u escape";
	return -EINVAL;
bad:
	*why = "invalid escape in string";
	return -EINVAL;
}
