/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One value of one key: parsing by the key's type, bounds, and the checks of strings that name
 * things (listen addresses, stream names, subjects, NATS URLs). Messages say what the value
 * should look like ("must be a size such as 64KiB, got ...") because that is what the reader
 * of a diagnostic needs; the loader adds file, position and key.
 */
#include "config/config.h"
#include "config/config_internal.h"
#include "util/util_addr.h"
#include "util/util_mem.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FIELD_PTR(cfg, k) ((void *)((char *)(cfg) + (k)->offset))

void evd_config_set_string(struct evd_config *cfg, const struct evd_config_key *k, const char *s)
{
	char **p = FIELD_PTR(cfg, k);
	free(*p);
	*p = s ? evd_xstrdup(s) : NULL;
}

/* "file or memory", "one of error, warn, info or debug" (aliases are accepted, not listed). */
static void append_enum_names(const struct evd_config_key *k, struct evd_buf *out)
{
	size_t n = 0, i = 0;
	for (const struct evd_key_enum *e = k->enums; e->name; e++)
		n += !e->alias;
	if (n > 2)
		evd_buf_append_str(out, "one of ");
	for (const struct evd_key_enum *e = k->enums; e->name; e++) {
		if (e->alias)
			continue;
		evd_buf_printf(out, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ", e->name);
		i++;
	}
}

/* What a key's value should look like, for "must be ..." messages. */
void evd_config_append_expected(const struct evd_config_key *k, struct evd_buf *out)
{
	switch (k->type) {
	case EVD_KEY_STRING:
		switch (k->check) {
		case EVD_CHECK_ADDR:
			evd_buf_append_str(out, "an address such as 127.0.0.1:8080");
			return;
		case EVD_CHECK_STREAM_NAME:
			evd_buf_append_str(out, "a stream name without spaces, '.', '*', '>', '/' or '\\'");
			return;
		case EVD_CHECK_SUBJECT:
			evd_buf_append_str(out, "dot-separated subject tokens such as kyma, without spaces, '*' or '>'");
			return;
		case EVD_CHECK_NONE:
			break;
		}
		evd_buf_append_str(out, "a string");
		return;
	case EVD_KEY_BOOL: evd_buf_append_str(out, "true or false"); return;
	case EVD_KEY_UINT: evd_buf_append_str(out, "a whole number such as 64"); return;
	case EVD_KEY_SIZE: evd_buf_append_str(out, "a size such as 64KiB"); return;
	case EVD_KEY_DURATION: evd_buf_append_str(out, "a duration such as 30s or 1h30m"); return;
	case EVD_KEY_DOUBLE: evd_buf_append_str(out, "a number such as 1.5"); return;
	case EVD_KEY_ENUM:
		append_enum_names(k, out);
		return;
	case EVD_KEY_URLS:
		evd_buf_append_str(out, "\"embedded\" or comma-separated nats:// or tls:// URLs");
		return;
	}
}

static void format_number(const struct evd_config_key *k, uint64_t v, char *out, size_t outlen)
{
	if (k->type == EVD_KEY_SIZE)
		evd_format_size(v, out, outlen);
	else if (k->type == EVD_KEY_DURATION)
		evd_format_duration((int64_t)v, out, outlen);
	else
		snprintf(out, outlen, "%" PRIu64, v);
}

static bool stream_name_ok(const char *s)
{
	if (!*s || strlen(s) > 255)
		return false;
	for (; *s; s++)
		if (isspace((unsigned char)*s) || strchr(".*>/\\", *s))
			return false;
	return true;
}

static bool subject_ok(const char *s)
{
	bool token_empty = true;
	for (; *s; s++) {
		if (isspace((unsigned char)*s) || *s == '*' || *s == '>')
			return false;
		if (*s == '.') {
			if (token_empty)
				return false;
			token_empty = true;
		} else {
			token_empty = false;
		}
	}
	return !token_empty;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Appends the percent-decoded [s, s+len) to out; -EINVAL with why on a bad escape or a NUL. */
static int pct_decode(const char *s, size_t len, const char *what, struct evd_buf *out, char *why,
		      size_t whylen)
{
	for (size_t i = 0; i < len; i++) {
		int hi, lo;

		if (s[i] != '%') {
			evd_buf_append_char(out, s[i]);
			continue;
		}
		if (i + 2 >= len) {
			snprintf(why, whylen, "%s: \"%%\" must start an escape of two hex digits (write %%25 for a %%)",
				 what);
			return -EINVAL;
		}
		hi = hexval(s[i + 1]);
		lo = hexval(s[i + 2]);
		if (hi < 0 || lo < 0) {
			snprintf(why, whylen, "%s: \"%%%c%c\" is not an escape of two hex digits (write %%25 for a %%)",
				 what, s[i + 1], s[i + 2]);
			return -EINVAL;
		}
		if (hi == 0 && lo == 0) {
			snprintf(why, whylen, "%s: %%00 (a NUL byte) cannot be passed on", what);
			return -EINVAL;
		}
		evd_buf_append_char(out, (char)(hi * 16 + lo));
		i += 2;
	}
	return 0;
}

int evd_config_url_decode(const char *url, char **out, char *why, size_t whylen)
{
	struct evd_buf b = EVD_BUF_INIT;
	const char *scheme = strstr(url, "://");
	const char *ui = scheme ? scheme + 3 : url;
	/* The last '@', as nats.c's natsUrl_Create takes it: a raw '@' in a password still works. */
	const char *at = strrchr(ui, '@');
	const char *colon;
	size_t user_len;

	if (!at) {
		*out = evd_xstrdup(url);
		return 0;
	}
	colon = memchr(ui, ':', (size_t)(at - ui));
	user_len = colon ? (size_t)(colon - ui) : (size_t)(at - ui);
	evd_buf_append(&b, url, (size_t)(ui - url));
	if (pct_decode(ui, user_len, colon ? "user name" : "token", &b, why, whylen) < 0)
		goto fail;
	/* nats.c ends the user name at the first ':' of the user-info. */
	if (memchr(b.data + (ui - url), ':', b.len - (size_t)(ui - url))) {
		snprintf(why, whylen, "%s: a \":\" (%%3A) cannot be passed to nats.c in a URL; use %s",
			 colon ? "user name" : "token", colon ? "nats.user and nats.password" : "nats.token");
		goto fail;
	}
	if (colon) {
		evd_buf_append_char(&b, ':');
		if (pct_decode(colon + 1, (size_t)(at - colon - 1), "password", &b, why, whylen) < 0)
			goto fail;
	}
	evd_buf_append_str(&b, at);
	*out = evd_buf_steal(&b);
	return 0;
fail:
	evd_buf_free(&b);
	return -EINVAL;
}

/*
 * One URL of nats.url: nats:// or tls://, optional user[:password]@ (percent-encoded as RFC 3986
 * says, evd_config_url_decode), a host name, IPv4 or [IPv6] address, and an optional port (nats.c
 * defaults to 4222). Returns 0 or -EINVAL with why.
 */
int evd_config_check_url(const char *u, char *why, size_t whylen)
{
	const char *p;
	char *decoded = NULL;

	if (evd_config_url_decode(u, &decoded, why, whylen) < 0)
		return -EINVAL;
	free(decoded);
	if (strncasecmp(u, "nats://", 7) == 0) {
		p = u + 7;
	} else if (strncasecmp(u, "tls://", 6) == 0) {
		p = u + 6;
	} else {
		const char *sep = strstr(u, "://");
		if (sep)
			snprintf(why, whylen, "unsupported scheme \"%.*s\" (use nats:// or tls://)",
				 (int)(sep - u), u);
		else
			snprintf(why, whylen, "needs a scheme: nats://HOST:PORT or tls://HOST:PORT");
		return -EINVAL;
	}
	const char *at = strrchr(p, '@');
	if (at)
		p = at + 1;

	const char *host = p;
	size_t hostlen;
	if (*p == '[') {
		const char *end = strchr(p, ']');
		char addr[64];
		struct in6_addr a6;
		hostlen = end ? (size_t)(end - p - 1) : 0;
		if (!end || hostlen == 0 || hostlen >= sizeof(addr)) {
			snprintf(why, whylen, "bad IPv6 address (write it as [ADDRESS]:PORT)");
			return -EINVAL;
		}
		memcpy(addr, p + 1, hostlen);
		addr[hostlen] = '\0';
		if (inet_pton(AF_INET6, addr, &a6) != 1) {
			snprintf(why, whylen, "\"%s\" is not an IPv6 address", addr);
			return -EINVAL;
		}
		p = end + 1;
	} else {
		while (isalnum((unsigned char)*p) || *p == '-' || *p == '.' || *p == '_')
			p++;
		hostlen = (size_t)(p - host);
		if (hostlen == 0) {
			snprintf(why, whylen, "needs a host name or address");
			return -EINVAL;
		}
		if (host[0] == '-' || host[0] == '.' || p[-1] == '-') {
			snprintf(why, whylen, "\"%.*s\" is not a host name", (int)hostlen, host);
			return -EINVAL;
		}
	}
	if (*p == ':') {
		char *end;
		p++;
		errno = 0;
		long port = isdigit((unsigned char)*p) ? strtol(p, &end, 10) : -1;
		if (port < 1 || port > 65535 || errno) {
			snprintf(why, whylen, "port must be a number from 1 to 65535");
			return -EINVAL;
		}
		p = end;
	}
	if (*p == '/' && p[1] == '\0')
		p++;
	if (*p) {
		snprintf(why, whylen, "unexpected \"%s\" after the host and port", p);
		return -EINVAL;
	}
	return 0;
}

/*
 * Parses text as the key's type and checks its bounds. On success stores it in cfg and returns
 * 0; otherwise returns -EINVAL and puts a complete message in msg.
 */
int evd_config_parse_store(struct evd_config *cfg, const struct evd_config_key *k, const char *text,
			    struct evd_buf *msg)
{
	char why[160] = "";
	uint64_t num = 0;
	void *field = FIELD_PTR(cfg, k);

	switch (k->type) {
	case EVD_KEY_STRING:
		if (!*text) {
			evd_buf_append_str(msg, "must not be empty");
			return -EINVAL;
		}
		if (k->check == EVD_CHECK_ADDR) {
			struct sockaddr_storage ss;
			if (evd_addr_parse(text, &ss, why, sizeof(why)) < 0)
				goto bad;
		} else if ((k->check == EVD_CHECK_STREAM_NAME && !stream_name_ok(text)) ||
			   (k->check == EVD_CHECK_SUBJECT && !subject_ok(text))) {
			goto bad;
		}
		evd_config_set_string(cfg, k, text);
		return 0;
	case EVD_KEY_URLS:
		/* Checked by the loader (which can point at each item); defaults are trusted. */
		evd_config_set_string(cfg, k, text);
		return 0;
	case EVD_KEY_BOOL:
		if (strcasecmp(text, "true") == 0)
			*(bool *)field = true;
		else if (strcasecmp(text, "false") == 0)
			*(bool *)field = false;
		else
			goto bad;
		return 0;
	case EVD_KEY_ENUM:
		for (const struct evd_key_enum *e = k->enums; e->name; e++) {
			if (strcmp(text, e->name) == 0) {
				*(int *)field = e->value;
				return 0;
			}
		}
		goto bad;
	case EVD_KEY_DOUBLE: {
		char *end;
		errno = 0;
		double d = strtod(text, &end);
		/* Plain decimals only: strtod would also take "0x10", "inf" and " 2". */
		if (!*text || *end || errno || !isfinite(d) ||
		    strspn(text, "0123456789.eE+-") != strlen(text))
			goto bad;
		if (d < k->fmin || d > k->fmax) {
			evd_buf_printf(msg, "must be between %g and %g, got %s", k->fmin, k->fmax, text);
			return -EINVAL;
		}
		*(double *)field = d;
		return 0;
	}
	case EVD_KEY_UINT: {
		const char *p = text;
		if (!isdigit((unsigned char)*p))
			goto bad;
		for (; isdigit((unsigned char)*p); p++) {
			if (num > (UINT64_MAX - 9) / 10) {
				num = UINT64_MAX; /* out of any bound below */
				while (isdigit((unsigned char)p[1]))
					p++;
			} else {
				num = num * 10 + (uint64_t)(*p - '0');
			}
		}
		if (*p)
			goto bad;
		break;
	}
	case EVD_KEY_SIZE:
		if (evd_parse_size_why(text, &num, why, sizeof(why)) < 0)
			goto bad;
		break;
	case EVD_KEY_DURATION: {
		int64_t ms;
		if (evd_parse_duration_why(text, &ms, why, sizeof(why)) < 0)
			goto bad;
		num = (uint64_t)ms;
		break;
	}
	}

	/* uint, size, duration: bounds, then store. */
	if (num < k->min || num > k->max) {
		char lo[32], hi[32], got[32];
		format_number(k, k->min, lo, sizeof(lo));
		format_number(k, k->max, hi, sizeof(hi));
		/* A whole number is quoted as written; sizes and durations as we would write them. */
		if (k->type != EVD_KEY_UINT && num <= k->max)
			format_number(k, num, got, sizeof(got));
		else
			snprintf(got, sizeof(got), "%.31s", text);
		/* Keys without a bound of their own stop at what JetStream can hold. */
		bool open_ended = k->max == UINT64_MAX || k->max == (uint64_t)INT64_MAX;
		if (open_ended && num < k->min)
			evd_buf_printf(msg, "must be at least %s, got %s", lo, got);
		else if (open_ended)
			evd_buf_printf(msg, "must be at most %s (JetStream's limit), got %s", hi, got);
		else
			evd_buf_printf(msg, "must be between %s and %s, got %s", lo, hi, got);
		return -EINVAL;
	}
	if (k->type == EVD_KEY_UINT)
		*(uint32_t *)field = (uint32_t)num;
	else if (k->type == EVD_KEY_SIZE)
		*(uint64_t *)field = num;
	else
		*(int64_t *)field = (int64_t)num;
	return 0;

bad:
	evd_buf_append_str(msg, "must be ");
	evd_config_append_expected(k, msg);
	evd_buf_printf(msg, ", got \"%s\"", text);
	if (why[0])
		evd_buf_printf(msg, " (%s)", why);
	return -EINVAL;
}
