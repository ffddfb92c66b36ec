/* SPDX-License-Identifier: Apache-2.0 */
#include "registry/registry_check.h"
#include "util/util_mem.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One RFC 1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, of length n. */
static bool label_ok(const char *s, size_t n)
{
	if (n == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

const char *evd_registry_check_dns1123_subdomain(const char *s)
{
	if (strlen(s) > 253)
		return "must be no more than 253 characters";
	for (const char *p = s;;) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		if (!label_ok(p, n))
			return EVD_DNS1123_SUBDOMAIN_MSG;
		if (!dot)
			return NULL;
		p = dot + 1;
	}
}

const char *evd_registry_check_dns1123_label(const char *s)
{
	if (strlen(s) > 63)
		return "must be no more than 63 characters";
	return label_ok(s, strlen(s)) ? NULL : EVD_DNS1123_LABEL_MSG;
}

bool evd_registry_atoi(const char *s, long long *out)
{
	const char *p = s;
	bool neg = false;
	unsigned long long v = 0;

	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	if (!*p)
		return false;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (unsigned)(*p - '0');
		/* Go's int is 64 bits: anything beyond is a range error there too. */
		if (v > (unsigned long long)LLONG_MAX + (neg ? 1 : 0))
			return false;
	}
	*out = neg ? (long long)(0 - v) : (long long)v;
	return true;
}

static bool is_hex(char c)
{
	return isxdigit((unsigned char)c) != 0;
}

/* Control characters and broken %-escapes make Go's url.Parse fail anywhere in the string. */
static const char *check_chars(const char *s)
{
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c == 0x7f)
			return "invalid control character in URL";
		if (c == '%' && !(is_hex(p[1]) && is_hex(p[2])))
			return "invalid URL escape";
	}
	return NULL;
}

const char *evd_registry_check_uri_reference(const char *s)
{
	const char *why = check_chars(s);
	if (why)
		return why;
	/* Go's getScheme: letters, then letters/digits/+-. up to ':'; a leading ':' is an error. */
	if (s[0] == ':')
		return "missing protocol scheme";
	for (size_t i = 0; s[i]; i++) {
		char c = s[i];
		if (isalpha((unsigned char)c))
			continue;
		if ((isdigit((unsigned char)c) || c == '+' || c == '-' || c == '.') && i > 0)
			continue;
		if (c == ':')
			return NULL; /* a scheme: an absolute URI */
		break;
	}
	/* No scheme: url.Parse refuses a colon in the first path segment of a relative reference. */
	size_t n = strcspn(s, "?#");
	if (s[0] != '/') {
		size_t seg = strcspn(s, "/?#");
		if (memchr(s, ':', seg < n ? seg : n))
			return "first path segment in URL cannot contain colon";
	}
	return NULL;
}

void evd_registry_sink_clear(struct evd_sink *k)
{
	free(k->url);
	free(k->scheme);
	free(k->host);
	free(k->authority);
	free(k->path);
	memset(k, 0, sizeof(*k));
}

static bool host_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_' || c == '~';
}

const char *evd_registry_parse_sink(const char *url, struct evd_sink *out)
{
	const char *why = check_chars(url);
	const char *auth, *auth_end, *host, *host_end, *port_s = NULL;
	bool tls = strncmp(url, "https://", 8) == 0;
	long port;

	memset(out, 0, sizeof(*out));
	if (why)
		return why;
	auth = url + (tls ? 8 : 7);
	auth_end = auth + strcspn(auth, "/?#");
	if (strchr(url, '#'))
		return "must not have a fragment ('#')";
	if (strpbrk(url, " \t\r\n\v\f"))
		return "must not contain whitespace (percent-encode it)";
	if (memchr(auth, '@', (size_t)(auth_end - auth)))
		return "must not contain user information ('user@'); credentials in the sink URL are "
		       "not supported";
	if (auth == auth_end)
		return "must have a host";
	if (*auth == '[') {
		host = auth + 1;
		host_end = memchr(host, ']', (size_t)(auth_end - host));
		if (!host_end || host_end == host)
			return "has an unterminated IPv6 literal in its host";
		for (const char *p = host; p < host_end; p++)
			if (!is_hex(*p) && *p != ':' && *p != '.')
				return "has an invalid IPv6 literal in its host";
		if (host_end + 1 < auth_end) {
			if (host_end[1] != ':')
				return "has an invalid character after the IPv6 literal in its host";
			port_s = host_end + 2;
		}
	} else {
		host = auth;
		host_end = memchr(auth, ':', (size_t)(auth_end - auth));
		if (host_end)
			port_s = host_end + 1;
		else
			host_end = auth_end;
		if (host == host_end)
			return "must have a host";
		for (const char *p = host; p < host_end; p++)
			if (!host_char(*p))
				return "has an invalid character in its host name";
	}
	if (port_s) {
		char *end;
		if (port_s == auth_end || !isdigit((unsigned char)*port_s))
			return "must have a port number from 1 to 65535 after ':'";
		port = strtol(port_s, &end, 10);
		if (end != auth_end || port < 1 || port > 65535)
			return "must have a port number from 1 to 65535 after ':'";
	} else {
		port = tls ? 443 : 80;
	}

	out->url = evd_xstrdup(url);
	out->scheme = evd_xstrdup(tls ? "https" : "http");
	out->host = evd_xstrndup(host, (size_t)(host_end - host));
	out->authority = evd_xstrndup(auth, (size_t)(auth_end - auth));
	out->port = (uint16_t)port;
	if (*auth_end == '/') {
		out->path = evd_xstrdup(auth_end);
	} else {
		/* "http://h?q" asks for "/?q": the request target always starts with '/'. */
		size_t n = strlen(auth_end);
		out->path = evd_xmalloc(n + 2);
		out->path[0] = '/';
		memcpy(out->path + 1, auth_end, n + 1);
	}
	out->tls = tls;
	return NULL;
}

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return SIZE_MAX;
	size_t row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] == b[j - 1] ? 0 : 1);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

const char *evd_registry_nearest(const char *key, const char *const *candidates, size_t n)
{
	const char *best = NULL;
	size_t best_d = 3;
	for (size_t i = 0; i < n; i++) {
		if (strcasecmp(key, candidates[i]) == 0)
			return candidates[i];
		size_t d = edit_distance(key, candidates[i]);
		if (d < best_d) {
			best_d = d;
			best = candidates[i];
		}
	}
	return best;
}
