/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Header-value encoding of the CloudEvents HTTP binding §3.1.3.2, which the NATS binding 1.0.3
 * §3.1.3.2 repeats word for word:
 *
 *   "The following characters MUST be percent-encoded: Space (U+0020), Double-quote (U+0022),
 *    Percent (U+0025), Any characters outside the printable ASCII range of U+0021-U+007E
 *    inclusive." ... "Encode the character using UTF-8 ... Encode each byte within the sequence
 *    as %xy" ... "Percent-encoding SHOULD be performed using upper-case for values A-F, but
 *    decoding MUST accept lower-case values."
 *
 *   "When decoding ... any header value MUST first be unescaped with respect to double-quoted
 *    strings, as described in RFC7230, section 3.2.6. A single round of percent-decoding MUST
 *    then be performed ... values that have been unnecessarily percent-encoded MUST be accepted,
 *    but encoded byte sequences which are invalid in UTF-8 MUST be rejected."
 *
 * Working byte-wise is exact: a non-ASCII character's UTF-8 bytes are all >= 0x80, so encoding
 * every byte outside 0x21..0x7E encodes every such character as the spec describes.
 */
#include "event/event_ce.h"
#include "event/event_internal.h"

#include <errno.h>

static const char hexdig[] = "0123456789ABCDEF";

static bool must_encode(unsigned char c)
{
	return c <= 0x20 || c >= 0x7f || c == '"' || c == '%';
}

size_t evd_ce_percent_encoded_len(const char *in, size_t len)
{
	size_t n = len;
	for (size_t i = 0; i < len; i++)
		n += must_encode((unsigned char)in[i]) ? 2 : 0;
	return n;
}

size_t evd_ce_percent_encode(const char *in, size_t len, char *out)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (must_encode(c)) {
			out[n++] = '%';
			out[n++] = hexdig[c >> 4];
			out[n++] = hexdig[c & 15];
		} else {
			out[n++] = (char)c;
		}
	}
	out[n] = '\0';
	return n;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int evd_ce_percent_decode(const char *in, size_t len, char *out, size_t *out_len, const char **why)
{
	size_t n = 0;
	bool quoted = false;

	/* RFC 7230 §3.2.6: quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE. */
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (c == '"') {
			quoted = !quoted;
			continue;
		}
		if (quoted && c == '\\') {
			if (++i == len)
				break;
			c = in[i];
		}
		out[n++] = c;
	}
	if (quoted) {
		*why = "unterminated double-quoted string";
		return -EINVAL;
	}

	/* One round of percent-decoding, in place (the output never grows). */
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (out[i] != '%') {
			out[m++] = out[i];
			continue;
		}
		if (i + 2 >= n) {
			*why = "malformed percent-encoding";
			return -EINVAL;
		}
		int h = hexval((unsigned char)out[i + 1]), l = hexval((unsigned char)out[i + 2]);
		if (h < 0 || l < 0) {
			*why = "malformed percent-encoding";
			return -EINVAL;
		}
		out[m++] = (char)(h << 4 | l);
		i += 2;
	}
	out[m] = '\0';
	if (!evd_ce_utf8_valid(out, m)) {
		*why = "not valid UTF-8 after percent-decoding";
		return -EINVAL;
	}
	*out_len = m;
	return 0;
}

/* Decodes one UTF-8 sequence at s[0..len); returns its length or 0 if invalid. */
size_t evd_ce_utf8_next(const unsigned char *s, size_t len, unsigned *cp)
{
	unsigned c = s[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	size_t n;
	unsigned min;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		min = 0x80;
		c &= 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		min = 0x800;
		c &= 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		min = 0x10000;
		c &= 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

bool evd_ce_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		unsigned cp;
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t n = evd_ce_utf8_next(p + i, len - i, &cp);
		if (!n)
			return false;
		i += n;
	}
	return true;
}

/*
 * The String type of the spec ("Type System"): disallowed are the control characters
 * U+0000-U+001F and U+007F-U+009F, noncharacters (U+FDD0-U+FDEF and the last two code points of
 * every plane) and unpaired surrogates (impossible in valid UTF-8).
 */
int evd_ce_check_string(const char *s, size_t len, const char **why)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		unsigned cp;
		size_t n = evd_ce_utf8_next(p + i, len - i, &cp);
		if (!n) {
			*why = "not valid UTF-8";
			return -EINVAL;
		}
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
			*why = "MUST NOT contain control characters";
			return -EINVAL;
		}
		if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe) {
			*why = "MUST NOT contain Unicode noncharacters";
			return -EINVAL;
		}
		i += n;
	}
	return 0;
}
